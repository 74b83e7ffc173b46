/* netwall send: one connection thread. It takes the next message from the shared
 * index, sends it in an MLLP frame (plain TCP or TLS), waits for its ACK with poll()
 * deadlines, and retries with backoff under --retry-for. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "cli/send.h"
#include "core/clock.h"
#include "core/sock.h"
#include "hl7/ack.h"

/* --- connections --------------------------------------------------------------------- */

/* Waits until fd is ready for events or the deadline passes (then errno is ETIMEDOUT). */
static int conn_wait(int fd, short events, double deadline)
{
	for (;;) {
		double left = deadline - clock_mono();
		struct pollfd pfd = {.fd = fd, .events = events};
		int n;

		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		n = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (n == -1 && errno != EINTR)
			return -1;
		if (n > 0)
			return 0;
	}
}

/* Waits for what OpenSSL asked for after a call on c->ssl returned rc. Returns 0 to call
 * again, -1 if the connection failed (errno ETIMEDOUT for the deadline, else EPIPE). */
static int conn_tls_wait(struct send_conn *c, int rc, double deadline)
{
	switch (SSL_get_error(c->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return conn_wait(c->fd, POLLIN, deadline);
	case SSL_ERROR_WANT_WRITE:
		return conn_wait(c->fd, POLLOUT, deadline);
	default:
		errno = EPIPE;
		return -1;
	}
}

/* After a failed read or write on a TLS connection: says why, when OpenSSL knows (an alert
 * from the server, such as a refused client certificate). */
static void conn_tls_failed(struct send_conn *c)
{
	char detail[256];
	const char *why;

	if (c->ssl == NULL || ERR_peek_error() == 0)
		return;
	why = tls_failure_reason(detail, sizeof(detail));
	send_problem(c->s, "TLS connection to %s failed: %s (%s)", c->s->target, why, detail);
}

static void conn_close(struct send_conn *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl); /* no close_notify: the connection is failing or done */
		c->ssl = NULL;
	}
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
	mllp_free(&c->mllp);
	mllp_init(&c->mllp, SEND_MAX_ACK);
	c->inoff = c->inlen = 0;
}

static int conn_tls(struct send_conn *c, double deadline)
{
	struct send *s = c->s;
	const char *name = s->o.server_name ? s->o.server_name : s->host;
	struct in6_addr ip;
	char detail[256];
	int rc;

	c->ssl = SSL_new(s->tls);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		send_problem(s, "cannot set up TLS");
		return -1;
	}
	if (inet_pton(AF_INET, name, &ip) != 1 && inet_pton(AF_INET6, name, &ip) != 1)
		SSL_set_tlsext_host_name(c->ssl, name);
	if (s->verify && SSL_set1_host(c->ssl, name) != 1) {
		send_problem(s, "cannot verify the server name %s", name);
		return -1;
	}
	while ((rc = SSL_connect(c->ssl)) != 1) {
		if (conn_tls_wait(c, rc, deadline) == -1) {
			const char *why = tls_failure_reason(detail, sizeof(detail));

			if (errno == ETIMEDOUT)
				send_problem(s, "TLS handshake with %s timed out", s->target);
			else if (SSL_get_verify_result(c->ssl) != X509_V_OK)
				send_problem(s, "TLS handshake with %s: server certificate not "
					     "verified: %s", s->target,
					     X509_verify_cert_error_string(
						     SSL_get_verify_result(c->ssl)));
			else
				send_problem(s, "TLS handshake with %s failed: %s (%s)", s->target,
					     why, detail);
			return -1;
		}
	}
	if (s->o.fingerprint != NULL) {
		X509 *x = SSL_get0_peer_certificate(c->ssl);
		uint8_t fp[TLS_FP_LEN];

		if (x == NULL || tls_fingerprint(x, fp) == -1 ||
		    CRYPTO_memcmp(fp, s->pin, TLS_FP_LEN) != 0) {
			send_problem(s, "%s: server certificate does not match --fingerprint",
				     s->target);
			return -1;
		}
	}
	return 0;
}

/* Connects to the first address of the target that answers, within the deadline. */
static int conn_open(struct send_conn *c, double deadline)
{
	struct send *s = c->s;
	int err = 0;

	for (struct addrinfo *ai = s->ai; ai != NULL; ai = ai->ai_next) {
		c->fd = sock_connect(ai->ai_addr, ai->ai_addrlen);
		if (c->fd == -1) {
			err = errno;
			continue;
		}
		if (errno == EINPROGRESS && conn_wait(c->fd, POLLOUT, deadline) == -1)
			err = errno;
		else
			err = sock_error(c->fd);
		if (err == 0)
			break;
		close(c->fd);
		c->fd = -1;
	}
	if (c->fd == -1) {
		send_problem(s, "cannot connect to %s: %s", s->target, strerror(err));
		return -1;
	}
	if (s->tls != NULL && conn_tls(c, deadline) == -1) {
		conn_close(c);
		return -1;
	}
	return 0;
}

/* True if a plain connection kept from the last message was closed by the peer meanwhile
 * (an idle timeout), so the next message goes on a fresh one instead of failing. */
static bool conn_stale(struct send_conn *c)
{
	char b;
	ssize_t n;

	if (c->ssl != NULL)
		return false; /* TLS 1.3 tickets make a healthy socket readable; see the read */
	n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR);
}

static int conn_write(struct send_conn *c, const uint8_t *p, size_t len, double deadline)
{
	while (len > 0) {
		if (c->ssl != NULL) {
			size_t n;
			int rc = SSL_write_ex(c->ssl, p, len, &n);

			if (rc == 1) {
				p += n;
				len -= n;
			} else if (conn_tls_wait(c, rc, deadline) == -1) {
				conn_tls_failed(c);
				return -1;
			}
		} else {
			ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

			if (n >= 0) {
				p += n;
				len -= (size_t)n;
			} else if (errno == EAGAIN) {
				if (conn_wait(c->fd, POLLOUT, deadline) == -1)
					return -1;
			} else if (errno != EINTR) {
				return -1;
			}
		}
	}
	return 0;
}

/* Reads what the server sent into c->in. Returns 0, or -1 with errno ETIMEDOUT at the
 * deadline or EPIPE when the connection ended. */
static int conn_read(struct send_conn *c, double deadline)
{
	for (;;) {
		if (c->ssl != NULL) {
			size_t n;
			int rc = SSL_read_ex(c->ssl, c->in, sizeof(c->in), &n);

			if (rc == 1) {
				c->inoff = 0;
				c->inlen = n;
				return 0;
			}
			if (conn_tls_wait(c, rc, deadline) == -1) {
				conn_tls_failed(c);
				return -1;
			}
		} else {
			ssize_t n = recv(c->fd, c->in, sizeof(c->in), 0);

			if (n > 0) {
				c->inoff = 0;
				c->inlen = (size_t)n;
				return 0;
			}
			if (n == 0) {
				errno = EPIPE;
				return -1;
			}
			if (errno == EAGAIN) {
				if (conn_wait(c->fd, POLLIN, deadline) == -1)
					return -1;
			} else if (errno != EINTR) {
				errno = EPIPE;
				return -1;
			}
		}
	}
}

static enum send_outcome conn_code(const char code[3])
{
	for (int i = SEND_AA; i <= SEND_CR; i++) {
		if (strcmp(code, send_outcome_names[i]) == 0)
			return (enum send_outcome)i;
	}
	return SEND_BADACK;
}

static int conn_rank(enum send_outcome o)
{
	return send_rejected(o) ? 2 : send_errored(o) ? 1 : 0;
}

/* A batch is answered by a batch of ACKs, one per message or none at all (enhanced mode
 * acknowledges only what MSH-15 asks for, such as errors only): the worst code counts, and
 * a batch with no ACK in it reads as CA. */
static enum send_outcome conn_batch_ack(const char *p, size_t len)
{
	enum send_outcome worst = SEND_CA, o;
	struct hl7_str span;
	size_t pos = 0;
	char code[3], ctrl[SEND_CTRL_MAX];

	while (hl7_batch_next(p, len, &pos, &span) == 1) {
		if (ack_parse(span.p, span.len, code, ctrl, sizeof(ctrl)) == -1)
			return SEND_BADACK;
		o = conn_code(code);
		if (conn_rank(o) > conn_rank(worst))
			worst = o;
	}
	return worst;
}

/* Waits for the next frame and reads it as the ACK for m. */
static enum send_outcome conn_ack(struct send_conn *c, const struct send_msg *m, double deadline)
{
	for (;;) {
		while (c->inoff < c->inlen) {
			size_t used, flen;
			enum mllp_result r = mllp_feed(&c->mllp, c->in + c->inoff,
						       c->inlen - c->inoff, &used);
			const uint8_t *fr;
			char code[3], ctrl[SEND_CTRL_MAX];

			c->inoff += used;
			if (r == MLLP_MORE)
				break;
			if (r == MLLP_OVERSIZE)
				return SEND_BADACK;
			fr = mllp_frame(&c->mllp, &flen);
			if (hl7_is_batch((const char *)fr, flen))
				return conn_batch_ack((const char *)fr, flen);
			if (ack_parse((const char *)fr, flen, code, ctrl, sizeof(ctrl)) == -1)
				return SEND_BADACK;
			if (ctrl[0] != '\0' && strcmp(m->ctrl, "-") != 0 &&
			    strncmp(ctrl, m->ctrl, sizeof(ctrl) - 1) != 0) {
				char shown[SEND_CTRL_MAX];

				for (size_t i = 0; i < sizeof(shown); i++) {
					unsigned char ch = (unsigned char)ctrl[i];

					bool ok = ch == '\0' || (ch > 0x20 && ch < 0x7f);

					shown[i] = ok ? ctrl[i] : '?';
					if (ch == '\0')
						break;
				}
				send_problem(c->s, "%s:%u: the ACK names control ID %s, not %s",
					     m->src->name, m->n, shown, m->ctrl);
			}
			return conn_code(code);
		}
		if (conn_read(c, deadline) == -1)
			return errno == ETIMEDOUT ? SEND_TIMEOUT : SEND_CLOSED;
	}
}

static double conn_rand(struct send_conn *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return (double)(c->rng >> 11) / 9007199254740992.0;
}

static void conn_sleep(double seconds)
{
	struct timespec ts = {.tv_sec = (time_t)seconds};

	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Sends m and waits for its ACK, retrying as --retry-for allows; sets m->out. */
static void conn_send(struct send_conn *c, struct send_msg *m)
{
	struct send *s = c->s;
	enum send_outcome out;

	for (;;) {
		double t0 = clock_mono(), deadline = t0 + s->o.timeout, now, left, delay;

		if (c->fd != -1 && conn_stale(c))
			conn_close(c);
		if (c->fd == -1 && conn_open(c, deadline) == -1) {
			out = SEND_NOCONN;
		} else {
			buf_consume(&c->out, c->out.len);
			mllp_wrap(&c->out, buf_head(&m->src->text) + m->off, m->len);
			bool ne = strcmp(m->accept, "NE") == 0, er = strcmp(m->accept, "ER") == 0;
			if (conn_write(c, buf_head(&c->out), c->out.len, deadline) == -1) {
				out = errno == ETIMEDOUT ? SEND_TIMEOUT : SEND_CLOSED;
			} else if (ne) {
				out = SEND_SENT; /* the message asks for no accept ACK */
			} else if (er) {
				/* an ACK comes only on error: silence for a moment means none */
				double d = t0 + SEND_ER_WAIT < deadline ? t0 + SEND_ER_WAIT : deadline;
				out = conn_ack(c, m, d);
				if (out == SEND_TIMEOUT) {
					out = SEND_SENT;
					conn_close(c); /* a late error ACK must not answer the next one */
				}
			} else {
				out = conn_ack(c, m, deadline);
			}
			m->latency = clock_mono() - t0;
			buf_release(&c->out);
		}
		if (!send_accepted(out) && !send_rejected(out) && !send_errored(out))
			conn_close(c); /* a late ACK must not be taken for the next message's */
		if (send_accepted(out) || send_rejected(out)) {
			c->fail_since = -1;
			backoff_reset(&c->backoff);
			break;
		}
		if (s->o.retry_for <= 0)
			break;
		now = clock_mono();
		if (c->fail_since < 0)
			c->fail_since = now;
		left = c->fail_since + s->o.retry_for - now;
		if (left <= 0)
			break;
		delay = backoff_next(&c->backoff, conn_rand(c));
		conn_sleep(delay < left ? delay : left);
	}
	m->out = out;
}

void *conn_main(void *arg)
{
	struct send_conn *c = arg;
	struct send *s = c->s;

	for (;;) {
		size_t i;

		pthread_mutex_lock(&s->lock);
		i = s->next < s->nmsgs ? s->next++ : s->nmsgs;
		pthread_mutex_unlock(&s->lock);
		if (i == s->nmsgs)
			break;
		conn_send(c, &s->msgs[i]);
		send_report(s, &s->msgs[i]);
	}
	conn_close(c);
	mllp_free(&c->mllp);
	buf_free(&c->out);
	explicit_bzero(c->in, sizeof(c->in));
	return NULL;
}
