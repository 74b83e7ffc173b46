/* A stream's socket I/O, plain or TLS (stream_io.h): one read into s->in or one write
 * from s->out, with OpenSSL's wants turned into EAGAIN. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <unistd.h>

#include "core/xalloc.h"
#include "wall/stream_io.h"
#include "wall/stream_state.h"

/* One read from the socket into s->in (stream_io.h). */
ssize_t stream_io_read(struct tstream *s, size_t room)
{
	struct evbuffer_iovec v;
	int n, err;

	if (s->ssl == NULL) {
		/* one read() into reserved space: evbuffer_read would ask FIONREAD first */
		ssize_t r;
		if (evbuffer_reserve_space(s->in, (ev_ssize_t)room, &v, 1) < 1)
			xalloc_fail("evbuffer");
		r = read(s->fd, v.iov_base, v.iov_len < room ? v.iov_len : room);
		if (r > 0) {
			v.iov_len = (size_t)r;
			evbuffer_commit_space(s->in, &v, 1);
		}
		return r;
	}
	if (evbuffer_reserve_space(s->in, (ev_ssize_t)(room < 16384 ? room : 16384), &v, 1) < 1)
		xalloc_fail("evbuffer");
	ERR_clear_error();
	n = SSL_read(s->ssl, v.iov_base, (int)(v.iov_len < room ? v.iov_len : room));
	if (n > 0) {
		v.iov_len = (size_t)n;
		evbuffer_commit_space(s->in, &v, 1);
		return n;
	}
	err = SSL_get_error(s->ssl, n);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0))
		return 0;
	ERR_clear_error();
	errno = ECONNRESET;
	return -1;
}

/* One write of s->out to the socket (stream_io.h). */
ssize_t stream_io_write(struct tstream *s, size_t max)
{
	struct evbuffer_iovec v;
	int n, err;

	if (s->ssl == NULL)
		return evbuffer_write_atmost(s->out, s->fd, max > INT32_MAX ? -1 : (ev_ssize_t)max);
	if (evbuffer_peek(s->out, -1, NULL, &v, 1) < 1)
		return 0;
	if (v.iov_len > max)
		v.iov_len = max;
	ERR_clear_error();
	n = SSL_write(s->ssl, v.iov_base, (int)(v.iov_len > 65536 ? 65536 : v.iov_len));
	if (n > 0) {
		evbuffer_drain(s->out, (size_t)n);
		return n;
	}
	err = SSL_get_error(s->ssl, n);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	ERR_clear_error();
	errno = EPIPE;
	return -1;
}
