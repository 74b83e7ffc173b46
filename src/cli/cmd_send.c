/* netwall send: an MLLP client. Reads HL7 v2 messages from files or stdin, sends each in an
 * MLLP frame over one or more connections (plain TCP or TLS), waits for its ACK before
 * sending the next on that connection, and prints the ACK code of every message.
 *
 * One thread per connection with blocking semantics built from non-blocking sockets and
 * poll() deadlines; the threads take the next message from a shared index, so a slow
 * connection does not hold back the others. Message text never reaches the terminal or the
 * log: only sources, positions, MSH-10 control IDs, ACK codes and timings. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cli/cli.h"
#include "core/addr.h"
#include "core/backoff.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/num.h"
#include "core/sock.h"
#include "core/tls.h"
#include "core/xalloc.h"
#include "hl7/ack.h"
#include "hl7/hl7.h"
#include "hl7/mllp.h"

/* Limits. */
#define SEND_MAX_INPUT (1024u << 20) /* bytes read from one file or from stdin */
#define SEND_MAX_ACK (1u << 20)      /* an ACK frame; a longer answer is not an ACK */
#define SEND_MAX_CONNS 1024          /* -c */
#define SEND_CTRL_MAX 64             /* MSH-10 as printed, NUL included; longer is cut */
#define SEND_BAR_MIN 20              /* more messages than this get a progress bar */
#define SEND_BAR_TICK 0.1            /* seconds between progress bar updates */
#define SEND_BACKOFF_FIRST 0.1       /* --retry-for: first delay, doubling ... */
#define SEND_BACKOFF_MAX 2.0         /* ... up to this */

static const char send_usage[] =
	"usage: netwall send [OPTIONS] HOST:PORT [FILE...|-]\n"
	"\n"
	"Sends HL7 v2 messages over MLLP and prints one line per message:\n"
	"  SOURCE:N MSH-10 CODE\n"
	"where CODE is the ACK's MSA-1 (AA CA AE CE AR CR) or, when no usable ACK came,\n"
	"timeout, closed (connection lost), noconn (cannot connect) or badack (the answer is\n"
	"not an ACK); sent when the message's MSH-15 asks for no accept ACK (NE, or ER and\n"
	"none came within a second). A summary goes to stderr. Exit status: 0 if every\n"
	"message got AA or CA (or was sent as its MSH-15 asked), 1 otherwise, 2 for usage\n"
	"errors.\n"
	"\n"
	"Each FILE (or stdin, for - or no FILE) holds one or more messages: a message starts at\n"
	"each line beginning with MSH; a file starting with FHS or BHS is one batch, sent as one\n"
	"frame. LF and CRLF line ends become CR; blank lines are ignored. HOST is a name, an\n"
	"IPv4 address or a bracketed IPv6 address ([::1]:2575).\n"
	"\n"
	"  -c, --connections N    connections in parallel (default 1); each waits for an\n"
	"                         ACK before sending its next message\n"
	"  --timeout SECONDS      wait this long for each ACK (default 30)\n"
	"  --retry-for SECONDS    on a lost connection, a missing ACK or AE/CE, reconnect\n"
	"                         with backoff and resend until accepted or SECONDS pass\n"
	"                         without an accepted message (default 0: no retries)\n"
	"  --tls                  speak TLS (1.3 preferred, 1.2 allowed); the server is\n"
	"                         verified against the system CAs unless --ca or\n"
	"                         --fingerprint says otherwise\n"
	"  --ca FILE              verify the server with this PEM CA bundle\n"
	"  --cert FILE --key FILE present this client certificate\n"
	"  --server-name NAME     expected server name (SNI and verification; default HOST)\n"
	"  --fingerprint SHA256   pin the server certificate (then CAs are not consulted\n"
	"                         unless --ca is given too)\n"
	"  --json                 print one JSON object per message instead\n"
	"  -q, --quiet            print only messages not accepted; no summary, no progress\n"
	"  -v, --verbose          print every message even while a progress bar is shown\n"
	"  -h, --help             this text\n";

enum send_outcome {
	SEND_AA = 0,
	SEND_CA,
	SEND_AE,
	SEND_CE,
	SEND_AR,
	SEND_CR,
	SEND_TIMEOUT, /* no ACK within --timeout */
	SEND_CLOSED,  /* the connection failed or closed before the ACK */
	SEND_NOCONN,  /* no connection (refused, unreachable, TLS handshake failed) */
	SEND_BADACK,  /* the answer was not a parsable ACK, or over SEND_MAX_ACK */
	SEND_SENT,    /* sent; MSH-15 asked for no accept ACK (NE), or only on error (ER) and
		       * none came within SEND_ER_WAIT */
	SEND_NOUTCOMES,
};

static const char *const send_outcome_names[SEND_NOUTCOMES] = {
	"AA", "CA", "AE", "CE", "AR", "CR", "timeout", "closed", "noconn", "badack", "sent",
};

#define SEND_ER_WAIT 1.0 /* seconds an MSH-15 ER message waits for an error ACK */

/* Accepted, or sent as the message itself asked (no accept ACK wanted). */
static bool send_accepted(enum send_outcome o)
{
	return o == SEND_AA || o == SEND_CA || o == SEND_SENT;
}

static bool send_rejected(enum send_outcome o)
{
	return o == SEND_AR || o == SEND_CR;
}

static bool send_errored(enum send_outcome o)
{
	return o == SEND_AE || o == SEND_CE;
}

struct send_opts {
	unsigned conns;
	double timeout, retry_for;
	bool tls, json, quiet, verbose;
	const char *ca, *cert, *key, *server_name, *fingerprint;
};

/* One input (a file or stdin): its messages, normalised to CR-terminated segments. */
struct send_src {
	const char *name;
	struct buf text;
};

struct send_msg {
	const struct send_src *src;
	size_t off, len; /* in src->text */
	unsigned n;      /* 1-based position in its source */
	char ctrl[SEND_CTRL_MAX];
	char accept[3]; /* MSH-15 (accept acknowledgment type): "NE", "ER", ... or "" */
	enum send_outcome out;
	double latency; /* seconds from sending (the last attempt) to its ACK */
};

struct send {
	struct send_opts o;
	const char *target;
	char host[256];
	uint16_t port;
	struct addrinfo *ai;
	SSL_CTX *tls;
	bool verify;
	uint8_t pin[TLS_FP_LEN];

	struct send_src *srcs;
	size_t nsrcs;
	struct send_msg *msgs;
	size_t nmsgs, msgcap;

	/* Shared between the connection threads, under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t next, done;
	unsigned counts[SEND_NOUTCOMES];
	bool bar, bar_drawn;
	bool out_tty; /* stdout is a terminal too: clear the bar before a message line */
	char last_err[256];
	double start;
};

struct send_conn {
	struct send *s;
	pthread_t thread;
	int fd;
	SSL *ssl;
	struct mllp mllp;
	struct buf out;
	uint8_t in[16384];
	size_t inoff, inlen;
	double fail_since; /* start of the current run without an accepted message, or -1 */
	struct backoff backoff;
	uint64_t rng;
};

/* --- input --------------------------------------------------------------------------- */

static int send_read_all(int fd, struct buf *b, char *err, size_t errlen)
{
	for (;;) {
		ssize_t n;

		if (b->len >= SEND_MAX_INPUT) {
			snprintf(err, errlen, "larger than %u MiB", SEND_MAX_INPUT >> 20);
			return -1;
		}
		n = read(fd, buf_tail(b, 65536), 65536);
		if (n == 0)
			return 0;
		if (n == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s", strerror(errno));
			return -1;
		}
		buf_commit(b, (size_t)n);
	}
}

static bool send_seg_is(const uint8_t *p, size_t len, const char *name)
{
	return len >= 3 && memcmp(p, name, 3) == 0;
}

/* Copies field `want` (10 for MSH-10) of the MSH segment at p[0..len) into out, printable:
 * a byte that is not visible ASCII becomes '?'; an empty or absent field leaves out as it
 * was. */
static void send_msh_field(const uint8_t *p, size_t len, unsigned want, char *out,
			   size_t outlen)
{
	size_t i, k = 0;
	unsigned field = 1; /* "MSH" is field 0; p[3] separates it from MSH-2 */
	uint8_t sep;

	if (len < 4)
		return;
	sep = p[3];
	for (i = 3; i < len && field < want; i++) {
		if (p[i] == sep)
			field++;
	}
	if (field < want)
		return;
	/* i is now just past the separator before the field (MSH-1 counts as field 1) */
	for (; i < len && p[i] != sep && p[i] != MLLP_CR && k + 1 < outlen; i++)
		out[k++] = (p[i] > 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	if (k > 0)
		out[k] = '\0';
}

static void send_msg_add(struct send *s, struct send_src *src, size_t off, unsigned n)
{
	struct send_msg *m;

	if (s->nmsgs == s->msgcap) {
		size_t cap = s->msgcap ? s->msgcap * 2 : 64;
		s->msgs = xreallocarray(s->msgs, cap, sizeof(*s->msgs));
		s->msgcap = cap;
	}
	m = &s->msgs[s->nmsgs++];
	memset(m, 0, sizeof(*m));
	m->src = src;
	m->off = off;
	m->n = n;
}

/* Ends the message being built (the last in s->msgs) at the end of src->text and reads its
 * control ID from its first MSH segment. */
static void send_msg_end(struct send *s, struct send_src *src)
{
	struct send_msg *m = &s->msgs[s->nmsgs - 1];
	const uint8_t *p = buf_head(&src->text) + m->off;
	size_t pos = 0;

	m->len = src->text.len - m->off;
	memcpy(m->ctrl, "-", 2);
	while (pos < m->len) {
		const uint8_t *cr = memchr(p + pos, MLLP_CR, m->len - pos);
		size_t seglen = (size_t)(cr - (p + pos)); /* every segment ends with CR here */

		if (send_seg_is(p + pos, seglen, "MSH")) {
			send_msh_field(p + pos, seglen, 10, m->ctrl, sizeof(m->ctrl));
			/* a batch is always answered (by a batch): its MSH-15s do not count */
			if (!send_seg_is(p, m->len, "FHS") && !send_seg_is(p, m->len, "BHS"))
				send_msh_field(p + pos, seglen, 15, m->accept, sizeof(m->accept));
			break;
		}
		pos += seglen + 1;
	}
}

/* Refuses bytes that would break the framing (<VT>, <FS>) or that no HL7 text holds (NUL),
 * naming the line of the first. Lines end as send_split sees them: LF, CR or CRLF. */
static int send_check_bytes(const uint8_t *raw, size_t len, char *err, size_t errlen)
{
	static const uint8_t bad[] = {MLLP_VT, MLLP_FS, 0};
	size_t at = len;
	unsigned line = 1;

	for (size_t i = 0; i < sizeof(bad); i++) {
		const uint8_t *p = memchr(raw, bad[i], at);

		if (p != NULL)
			at = (size_t)(p - raw);
	}
	if (at == len)
		return 0;
	for (size_t i = 0; i < at; i++) {
		if (raw[i] == '\n' || (raw[i] == '\r' && (i + 1 == len || raw[i + 1] != '\n')))
			line++;
	}
	snprintf(err, errlen, "line %u: byte 0x%02x cannot be sent over MLLP", line, raw[at]);
	return -1;
}

/* Splits the bytes of one input into messages (see the usage text), appending them to
 * s->msgs with their text in src->text. Returns 0, or -1 with err filled ("LINE: why"). */
static int send_split(struct send *s, struct send_src *src, const uint8_t *raw, size_t len,
		      char *err, size_t errlen)
{
	size_t pos = 0, first = s->nmsgs;
	unsigned line = 0, n = 0;
	bool batch = false, any = false;

	if (send_check_bytes(raw, len, err, errlen) == -1)
		return -1;
	if (len >= 3 && memcmp(raw, "\xef\xbb\xbf", 3) == 0)
		pos = 3; /* a UTF-8 byte order mark */
	while (pos < len) {
		const uint8_t *p = raw + pos;
		size_t end = pos, blank = 0, seglen;

		line++;
		for (; end < len && raw[end] != '\n' && raw[end] != '\r'; end++) {
			if (raw[end] == ' ' || raw[end] == '\t')
				blank++;
		}
		seglen = end - pos;

		pos = end;
		if (pos < len && raw[pos] == '\r' && pos + 1 < len && raw[pos + 1] == '\n')
			pos++;
		if (pos < len)
			pos++;
		if (blank == seglen)
			continue;
		if (!any) {
			batch = send_seg_is(p, seglen, "FHS") || send_seg_is(p, seglen, "BHS");
			if (!batch && !send_seg_is(p, seglen, "MSH")) {
				snprintf(err, errlen, "line %u: a message must start with MSH "
					 "(a batch with FHS or BHS)", line);
				goto fail;
			}
		}
		if (!any || (!batch && send_seg_is(p, seglen, "MSH"))) {
			if (any)
				send_msg_end(s, src);
			send_msg_add(s, src, src->text.len, ++n);
		}
		any = true;
		buf_append(&src->text, p, seglen);
		buf_append(&src->text, "\r", 1);
	}
	if (!any) {
		snprintf(err, errlen, "no HL7 message in it");
		goto fail;
	}
	send_msg_end(s, src);
	return 0;
fail:
	s->nmsgs = first;
	return -1;
}

static int send_load(struct send *s, const char *name)
{
	struct send_src *src;
	struct buf raw = {0};
	char err[256];
	int fd = 0, rc = -1;

	if (strcmp(name, "-") != 0) {
		fd = open(name, O_RDONLY | O_CLOEXEC);
		if (fd == -1) {
			fprintf(stderr, "netwall send: %s: %s\n", name, strerror(errno));
			return -1;
		}
	}
	src = &s->srcs[s->nsrcs++];
	src->name = name;
	if (send_read_all(fd, &raw, err, sizeof(err)) == -1 ||
	    send_split(s, src, buf_head(&raw), raw.len, err, sizeof(err)) == -1) {
		fprintf(stderr, "netwall send: %s: %s\n", name, err);
		goto out;
	}
	rc = 0;
out:
	buf_free(&raw);
	if (fd > 0)
		close(fd);
	return rc;
}

/* --- output -------------------------------------------------------------------------- */

static void send_json_str(FILE *f, const char *v)
{
	putc('"', f);
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			putc(c, f);
	}
	putc('"', f);
}

/* Clears the progress bar line, if one is on the screen. Under s->lock. */
static void send_bar_clear(struct send *s)
{
	if (s->bar_drawn) {
		fputs("\r\033[K", stderr);
		s->bar_drawn = false;
	}
}

static void send_bar_draw(struct send *s)
{
	enum { WIDTH = 30 };
	double t = clock_mono() - s->start;
	size_t fill = s->nmsgs ? s->done * WIDTH / s->nmsgs : WIDTH;
	unsigned bad = 0;
	char bar[WIDTH + 1];

	for (int i = 0; i < SEND_NOUTCOMES; i++)
		bad += send_accepted((enum send_outcome)i) ? 0 : s->counts[i];
	for (size_t i = 0; i < WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[WIDTH] = '\0';
	fprintf(stderr, "\r[%s] %zu/%zu %3.0f%% %6.0f msg/s  not accepted %u\033[K", bar, s->done,
		s->nmsgs, s->nmsgs ? 100.0 * (double)s->done / (double)s->nmsgs : 100.0,
		t > 0 ? (double)s->done / t : 0.0, bad);
	s->bar_drawn = true;
}

/* Records m's outcome and prints its line. Takes s->lock. */
static void send_report(struct send *s, const struct send_msg *m)
{
	bool show;

	pthread_mutex_lock(&s->lock);
	s->counts[m->out]++;
	s->done++;
	show = !send_accepted(m->out) || (!s->o.quiet && (!s->bar || s->o.verbose));
	if (show) {
		if (s->out_tty)
			send_bar_clear(s);
		if (s->o.json) {
			fputs("{\"source\":", stdout);
			send_json_str(stdout, m->src->name);
			printf(",\"n\":%u,\"control_id\":", m->n);
			send_json_str(stdout, m->ctrl);
			printf(",\"code\":\"%s\",\"latency_ms\":%.3f}\n",
			       send_outcome_names[m->out], m->latency * 1e3);
		} else {
			printf("%s:%u %s %s\n", m->src->name, m->n, m->ctrl,
			       send_outcome_names[m->out]);
		}
	}
	if (s->done == s->nmsgs)
		pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Prints a connection-level problem on stderr, unless it repeats the last one printed. */
static void send_problem(struct send *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void send_problem(struct send *s, const char *fmt, ...)
{
	char line[sizeof(s->last_err)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&s->lock);
	if (strcmp(line, s->last_err) != 0) {
		memcpy(s->last_err, line, sizeof(line));
		send_bar_clear(s);
		fprintf(stderr, "netwall send: %s\n", line);
	}
	pthread_mutex_unlock(&s->lock);
}

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

static void *conn_main(void *arg)
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

/* --- setup --------------------------------------------------------------------------- */

static SSL_CTX *send_tls_ctx(struct send *s)
{
	char err[512];
	SSL_CTX *ctx;

	if (s->o.fingerprint != NULL && tls_fingerprint_parse(s->o.fingerprint, s->pin) == -1) {
		fprintf(stderr, "netwall send: --fingerprint wants 64 hex digits (SHA-256)\n");
		return NULL;
	}
	s->verify = s->o.fingerprint == NULL || s->o.ca != NULL;
	ctx = tls_ctx_target(s->o.ca, s->verify, err, sizeof(err));
	if (ctx == NULL) {
		fprintf(stderr, "netwall send: %s\n", err);
		return NULL;
	}
	if (s->o.cert != NULL) {
		if (SSL_CTX_use_certificate_chain_file(ctx, s->o.cert) != 1) {
			fprintf(stderr, "netwall send: %s: cannot load certificate\n", s->o.cert);
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, s->o.key, SSL_FILETYPE_PEM) != 1) {
			fprintf(stderr, "netwall send: %s: cannot load private key\n", s->o.key);
			goto fail;
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			fprintf(stderr, "netwall send: %s does not match %s\n", s->o.key,
				s->o.cert);
			goto fail;
		}
	}
	ERR_clear_error();
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

static int send_resolve(struct send *s)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	char port[8];
	int rc;

	snprintf(port, sizeof(port), "%u", s->port);
	rc = getaddrinfo(s->host, port, &hints, &s->ai);
	if (rc != 0) {
		fprintf(stderr, "netwall send: cannot resolve %s: %s\n", s->host, gai_strerror(rc));
		return 1;
	}
	return 0;
}

/* If argv[*i] is the option name, sets *val to its value, given as the next argument or
 * after '=', and returns 1; returns 0 for another argument and -1 if the value is missing. */
static int send_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return 0;
	if (argv[*i][n] == '=') {
		*val = argv[*i] + n + 1;
		return 1;
	}
	if (argv[*i][n] != '\0')
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*val = argv[++*i];
	return 1;
}

/* Sets option valued[k] (see send_args) to val. Returns 0, or -1 after saying what is wrong. */
static int send_opt_set(struct send *s, size_t k, const char *val)
{
	uint64_t v;

	switch (k) {
	case 0:
	case 1:
		if (num_u64(val, 1, SEND_MAX_CONNS, &v) == -1) {
			fprintf(stderr, "netwall send: -c wants 1 to %u\n", SEND_MAX_CONNS);
			return -1;
		}
		s->o.conns = (unsigned)v;
		return 0;
	case 2:
		if (num_seconds(val, 0.001, 86400, &s->o.timeout) == -1) {
			fputs("netwall send: --timeout wants seconds, more than 0\n", stderr);
			return -1;
		}
		return 0;
	case 3:
		if (num_seconds(val, 0, 30 * 86400, &s->o.retry_for) == -1) {
			fputs("netwall send: --retry-for wants seconds\n", stderr);
			return -1;
		}
		return 0;
	case 4:
		s->o.ca = val;
		return 0;
	case 5:
		s->o.cert = val;
		return 0;
	case 6:
		s->o.key = val;
		return 0;
	case 7:
		s->o.server_name = val;
		return 0;
	default:
		s->o.fingerprint = val;
		return 0;
	}
}

/* Parses the command line into s and the list of inputs. Returns 0, or the exit status. */
static int send_args(struct send *s, int argc, char **argv, const char ***files, size_t *nfiles)
{
	static const char *const valued[] = {"-c", "--connections", "--timeout", "--retry-for",
					     "--ca", "--cert", "--key", "--server-name",
					     "--fingerprint"};
	bool opts = true, stdin_seen = false;

	*files = xcalloc((size_t)argc + 1, sizeof(**files));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		size_t k;
		int r = 0;

		if (!opts || a[0] != '-' || a[1] == '\0') {
			if (s->target == NULL) {
				s->target = a;
			} else {
				if (strcmp(a, "-") == 0) {
					if (stdin_seen) {
						fputs("netwall send: - given twice\n", stderr);
						return 2;
					}
					stdin_seen = true;
				}
				(*files)[(*nfiles)++] = a;
			}
			continue;
		}
		if (strcmp(a, "--") == 0) {
			opts = false;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(send_usage, stdout);
			return -1;
		} else if (strcmp(a, "--tls") == 0) {
			s->o.tls = true;
		} else if (strcmp(a, "--json") == 0) {
			s->o.json = true;
		} else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
			s->o.quiet = true;
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			s->o.verbose = true;
		} else {
			for (k = 0; k < sizeof(valued) / sizeof(valued[0]); k++) {
				r = send_opt(argc, argv, &i, valued[k], &val);
				if (r != 0)
					break;
			}
			if (r == -1) {
				fprintf(stderr, "netwall send: %s needs a value\n", a);
				return 2;
			}
			if (r == 0) {
				fprintf(stderr, "netwall send: unknown option '%s'\n%s", a,
					send_usage);
				return 2;
			}
			if (send_opt_set(s, k, val) == -1)
				return 2;
		}
	}
	if (s->target == NULL) {
		fputs("netwall send: HOST:PORT is required (see netwall send --help)\n", stderr);
		return 2;
	}
	if (addr_split(s->target, s->host, sizeof(s->host), &s->port) == -1) {
		fprintf(stderr, "netwall send: '%s' is not HOST:PORT (e.g. 127.0.0.1:2575, "
				"[::1]:2575, emar.example:2575)\n",
			s->target);
		return 2;
	}
	if ((s->o.cert == NULL) != (s->o.key == NULL)) {
		fputs("netwall send: --cert and --key go together\n", stderr);
		return 2;
	}
	if (!s->o.tls && (s->o.ca || s->o.cert || s->o.server_name || s->o.fingerprint)) {
		fputs("netwall send: --ca, --cert, --key, --server-name and --fingerprint need "
		      "--tls\n",
		      stderr);
		return 2;
	}
	if (*nfiles == 0)
		(*files)[(*nfiles)++] = "-";
	return 0;
}

static void send_summary(struct send *s, double seconds)
{
	const unsigned *n = s->counts;
	unsigned none = n[SEND_TIMEOUT] + n[SEND_CLOSED] + n[SEND_NOCONN] + n[SEND_BADACK];

	fprintf(stderr,
		"sent %zu, accepted %u (AA/CA), errors %u (AE/CE), rejected %u (AR/CR), "
		"no answer %u, no ACK requested %u in %.2f s (%.0f msg/s)\n",
		s->nmsgs, n[SEND_AA] + n[SEND_CA], n[SEND_AE] + n[SEND_CE],
		n[SEND_AR] + n[SEND_CR], none, n[SEND_SENT], seconds,
		seconds > 0 ? (double)s->nmsgs / seconds : 0.0);
}

/* Runs the connection threads and, on a terminal, the progress bar until every message has
 * an outcome. Returns 0, or -1 if no thread could be started. */
static int send_run(struct send *s)
{
	unsigned nconn = s->o.conns < s->nmsgs ? s->o.conns : (unsigned)s->nmsgs;
	struct send_conn *conns = xcalloc(nconn, sizeof(*conns));
	pthread_condattr_t ca;
	unsigned started = 0;
	int rc = 0;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	s->start = clock_mono();
	for (unsigned i = 0; i < nconn; i++) {
		struct send_conn *c = &conns[i];

		c->s = s;
		c->fd = -1;
		c->fail_since = -1;
		c->backoff.initial = SEND_BACKOFF_FIRST;
		c->backoff.max = SEND_BACKOFF_MAX;
		c->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)(s->start * 1e9);
		c->rng ^= (uint64_t)(i + 1) * 0x9e3779b97f4a7c15u;
		c->rng |= 1;
		mllp_init(&c->mllp, SEND_MAX_ACK);
		if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
			fprintf(stderr, "netwall send: cannot start connection thread %u\n", i + 1);
			mllp_free(&c->mllp);
			break;
		}
		started++;
	}
	if (started == 0) {
		rc = -1;
		goto out;
	}
	pthread_mutex_lock(&s->lock);
	while (s->done < s->nmsgs) {
		struct timespec ts;

		if (s->bar)
			send_bar_draw(s);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)(SEND_BAR_TICK * 1e9);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	}
	if (s->bar) {
		send_bar_draw(s);
		fputc('\n', stderr);
		s->bar_drawn = false;
	}
	pthread_mutex_unlock(&s->lock);
out:
	for (unsigned i = 0; i < started; i++)
		pthread_join(conns[i].thread, NULL);
	pthread_cond_destroy(&s->cond);
	free(conns);
	return rc;
}

int cmd_send_main(int argc, char **argv)
{
	struct send s;
	const char **files = NULL;
	size_t nfiles = 0;
	int rc;

	memset(&s, 0, sizeof(s));
	s.o.conns = 1;
	s.o.timeout = 30;
	pthread_mutex_init(&s.lock, NULL);
	rc = send_args(&s, argc, argv, &files, &nfiles);
	if (rc != 0) {
		rc = rc == -1 ? 0 : rc;
		goto out;
	}
	rc = 1;
	s.srcs = xcalloc(nfiles, sizeof(*s.srcs));
	for (size_t i = 0; i < nfiles; i++) {
		if (send_load(&s, files[i]) == -1)
			rc = -1; /* go on, so every bad file is named at once */
	}
	if (rc == -1) {
		rc = 1;
		goto out;
	}
	rc = send_resolve(&s);
	if (rc != 0)
		goto out;
	rc = 1;
	if (s.o.tls && (s.tls = send_tls_ctx(&s)) == NULL)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	s.bar = !s.o.quiet && s.nmsgs > SEND_BAR_MIN && isatty(STDERR_FILENO);
	s.out_tty = isatty(STDOUT_FILENO);
	if (send_run(&s) == -1)
		goto out;
	fflush(stdout);
	if (!s.o.quiet)
		send_summary(&s, clock_mono() - s.start);
	rc = s.counts[SEND_AA] + s.counts[SEND_CA] + s.counts[SEND_SENT] == s.nmsgs ? 0 : 1;
out:
	fflush(stdout);
	for (size_t i = 0; i < s.nsrcs; i++)
		buf_free(&s.srcs[i].text);
	free(s.srcs);
	free(s.msgs);
	free(files);
	if (s.ai != NULL)
		freeaddrinfo(s.ai);
	SSL_CTX_free(s.tls);
	pthread_mutex_destroy(&s.lock);
	return rc;
}
