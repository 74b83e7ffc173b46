/* The TLS pipe under a tunnel (pipe.h): a BIO of our own between OpenSSL and the socket,
 * and the record I/O through it. */
#include "wall/pipe.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/tls.h"
#include "core/xalloc.h"

/* ---- the BIO: records go into p->cipher, and come from p->cin ---- */

static int cipher_bio_write(BIO *b, const char *data, int len)
{
	struct pipe *p = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (p->cipher.len >= PIPE_CIPHER_HIGH) {
		BIO_set_retry_write(b);
		return -1;
	}
	buf_append(&p->cipher, data, (size_t)len);
	return len;
}

/* TLS input: OpenSSL reads records from p->cin, which pipe_fill() tops up with large
 * read()s. Reading the socket ourselves costs one copy; OpenSSL's own read-ahead moves its
 * buffer's tail to the front on every record, which costs several. */
static int cipher_bio_read(BIO *b, char *out, int len)
{
	struct pipe *p = BIO_get_data(b);
	size_t n = p->cin.len < (size_t)len ? p->cin.len : (size_t)len;

	BIO_clear_retry_flags(b);
	if (n == 0) {
		if (p->sock_eof)
			return 0;
		BIO_set_retry_read(b);
		return -1;
	}
	memcpy(out, buf_head(&p->cin), n);
	buf_consume(&p->cin, n);
	return (int)n;
}

static long cipher_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *cipher_bio_method(void)
{
	static BIO_METHOD *m;

	if (m == NULL) {
		m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "netwall-cipher");
		if (m == NULL || BIO_meth_set_write(m, cipher_bio_write) != 1 ||
		    BIO_meth_set_read(m, cipher_bio_read) != 1 ||
		    BIO_meth_set_ctrl(m, cipher_bio_ctrl) != 1)
			log_fatal("event=bug what=bio_method");
	}
	return m;
}

void pipe_init(struct pipe *p, int fd, SSL *ssl)
{
	BIO *bio = BIO_new(cipher_bio_method());

	if (bio == NULL)
		xalloc_fail("BIO");
	p->fd = fd;
	p->ssl = ssl;
	BIO_set_data(bio, p);
	BIO_set_init(bio, 1);
	SSL_set_bio(ssl, bio, bio);
}

void pipe_free(struct pipe *p)
{
	SSL_free(p->ssl);
	p->ssl = NULL;
	close(p->fd);
	p->fd = -1;
	buf_free(&p->cipher);
	buf_free(&p->cin);
}

/* ---- output ---- */

int pipe_encrypt(struct pipe *p, struct buf *plain)
{
	int moved = 0;

	while (plain->len > 0 && p->cipher.len < PIPE_CIPHER_HIGH) {
		size_t len = plain->len > INT_MAX ? INT_MAX : plain->len;
		int n;
		ERR_clear_error();
		n = SSL_write(p->ssl, buf_head(plain), (int)len);
		if (n > 0) {
			buf_consume(plain, (size_t)n);
			moved = 1;
			continue;
		}
		if (SSL_get_error(p->ssl, n) == SSL_ERROR_WANT_WRITE)
			break;
		return -1;
	}
	return moved;
}

int pipe_send(struct pipe *p, const char **reason)
{
	ssize_t n;

	if (p->cipher.len == 0)
		return 0;
	n = write(p->fd, buf_head(&p->cipher), p->cipher.len);
	if (n > 0) {
		buf_consume(&p->cipher, (size_t)n);
		return 1;
	}
	if (n == -1 && errno == EINTR)
		return 1;
	if (n == -1 && errno != EAGAIN) {
		*reason = errno == EPIPE || errno == ECONNRESET ? "reset" : "write_error";
		return -1;
	}
	return 0;
}

/* ---- input ---- */

int pipe_fill(struct pipe *p)
{
	ssize_t n;

	if (p->sock_eof)
		return -1;
	if (p->cin.len >= PIPE_RAW_CHUNK)
		return 1;
	n = read(p->fd, buf_tail(&p->cin, PIPE_RAW_CHUNK), PIPE_RAW_CHUNK);
	if (n > 0) {
		buf_commit(&p->cin, (size_t)n);
		return 1;
	}
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	p->sock_eof = true;
	return -1;
}

size_t pipe_read(struct pipe *p, uint8_t *out, size_t len, enum pipe_end *end,
		 const char **reason, char *detail, size_t dlen)
{
	for (;;) {
		int n, err;
		ERR_clear_error();
		n = SSL_read(p->ssl, out, len > INT_MAX ? INT_MAX : (int)len);
		if (n > 0)
			return (size_t)n;
		err = SSL_get_error(p->ssl, n);
		if (err == SSL_ERROR_WANT_READ) {
			if (pipe_fill(p) == 0) {
				*end = PIPE_AGAIN;
				return 0;
			}
			continue; /* -1: once more, so OpenSSL sees the EOF */
		}
		if (err == SSL_ERROR_WANT_WRITE) {
			*end = PIPE_BLOCKED;
			return 0;
		}
		if (p->sock_eof || err == SSL_ERROR_ZERO_RETURN ||
		    (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
			ERR_clear_error();
			*end = PIPE_EOF;
		} else {
			*reason = tls_failure_reason(detail, dlen);
			*end = PIPE_FAILED;
		}
		return 0;
	}
}

int pipe_handshake_result(struct pipe *p, int rc, const char *reject, const char **reason,
			  char *detail, size_t dlen)
{
	int err = SSL_get_error(p->ssl, rc);

	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return 0;
	if (reject[0]) {
		ERR_clear_error();
		*reason = reject;
		detail[0] = '\0';
	} else if (p->sock_eof || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
		ERR_clear_error();
		*reason = "eof";
		detail[0] = '\0';
	} else {
		*reason = tls_failure_reason(detail, dlen);
	}
	return -1;
}
