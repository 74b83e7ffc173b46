/* A tunnel's lifetime (tunnel.h): set-up, the event handlers that move its bytes (TLS
 * records through the pipe, pipe.c; frames through the HTTP/2 session, session.c), liveness,
 * and the close that frees it once no handler holds it. */
#include "wall/tunnel.h"

#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/tls.h"
#include "core/xalloc.h"
#include "wall/pipe.h"
#include "wall/session.h"
#include "wall/stream.h"
#include "wall/tunnel_state.h"

#define TUNNEL_TICK 0.25 /* seconds between liveness checks */

struct tunnel_stats tunnel_stats;
static struct log_rate tunnel_fail_rate;

void tunnel_housekeeping(void *unused)
{
	(void)unused;
	loop_trim(tstream_stats.streams_open, &tstream_stats.streams_peak);
}

static const struct metric tunnel_metrics[] = {
	{ "netwall_handshake_failures_total", METRIC_COUNTER, "Tunnel TLS handshakes that failed.",
	  NULL, METRIC_FIELD(struct tunnel_stats, handshake_failures) },
};

void tunnel_register_metrics(struct metrics *m)
{
	metrics_add(m, tunnel_metrics, sizeof(tunnel_metrics) / sizeof(tunnel_metrics[0]),
		    &tunnel_stats);
}

/* ---- lifetime ---- */

static void tunnel_destroy(struct tunnel *t)
{
	while (t->sink.streams != NULL)
		tstream_kill(t->sink.streams);
	if (t->ops->down != NULL)
		t->ops->down(t, t->close_reason ? t->close_reason : "closed", t->arg);
	if (t->sink.h2 != NULL)
		nghttp2_session_del(t->sink.h2);
	loop_free_event(&t->rev);
	loop_free_event(&t->wev);
	loop_free_event(&t->timer);
	loop_free_event(&t->flush_ev);
	pipe_free(&t->pipe);
	buf_free(&t->plain);
	if (t->rbuf != NULL)
		explicit_bzero(t->rbuf, TUNNEL_RBUF);
	free(t->rbuf);
	free(t->services);
	free(t);
}

/* Held by each event handler of the tunnel and of its streams: a tunnel closed meanwhile
 * is freed when the last lets go. */
static void tunnel_busy(struct tunnel *t)
{
	t->busy++;
}

static void tunnel_unbusy(struct tunnel *t)
{
	if (--t->busy == 0 && t->dead)
		tunnel_destroy(t);
}

void tunnel_close(struct tunnel *t, const char *reason)
{
	if (t->dead)
		return;
	t->dead = true;
	t->close_reason = reason;
	tunnel_busy(t);
	tunnel_unbusy(t);
}

static void tunnel_handshake_failed(struct tunnel *t, const char *reason, const char *detail)
{
	tunnel_stats.handshake_failures++;
	log_limited(&tunnel_fail_rate, LOG_WARN, "event=handshake_failed peer=%s reason=%s%s%s",
		    t->addr, reason, detail[0] ? " detail=" : "", detail);
	tunnel_close(t, reason);
}

/* ---- output ---- */

static void tunnel_want_write(struct tunnel *t, bool on)
{
	if (on == t->wev_on)
		return;
	t->wev_on = on;
	if (on)
		event_add(t->wev, NULL);
	else
		event_del(t->wev);
}

/* Moves bytes along: HTTP/2 frames into plain, plain through TLS into cipher, cipher into
 * the socket; until the socket is full or nothing is left. */
static void tunnel_flush(struct tunnel *t)
{
	bool progress = true;
	const char *reason;
	int rc;

	while (progress && !t->dead) {
		progress = false;
		if (t->sink.h2 != NULL && t->plain.len < TUNNEL_PLAIN_HIGH &&
		    nghttp2_session_want_write(t->sink.h2)) {
			size_t before = t->plain.len;
			if (nghttp2_session_send(t->sink.h2) != 0) {
				tunnel_close(t, "protocol_error");
				return;
			}
			progress = t->plain.len != before;
		}
		if (t->state != TUNNEL_HANDSHAKE) {
			rc = pipe_encrypt(&t->pipe, &t->plain);
			if (rc == -1) {
				tunnel_close(t, "tls_error");
				return;
			}
			progress = progress || rc == 1;
		}
		rc = pipe_send(&t->pipe, &reason);
		if (rc == -1) {
			tunnel_close(t, reason);
			return;
		}
		progress = progress || rc == 1;
	}
	tunnel_want_write(t, t->pipe.cipher.len > 0);
	if (t->read_blocked && t->pipe.cipher.len < PIPE_CIPHER_HIGH) {
		t->read_blocked = false;
		event_active(t->rev, EV_READ, 0);
	}
	if (t->state == TUNNEL_DRAIN && t->role == TUNNEL_AGENT && t->sink.nstreams == 0 &&
	    t->pipe.cipher.len == 0 && t->plain.len == 0)
		tunnel_close(t, "drained");
}

static void tunnel_flush_dirty(struct tunnel *t)
{
	while (t->sink.dirty != NULL && !t->dead) {
		struct tstream *s = t->sink.dirty;
		t->sink.dirty = s->dirty_next;
		s->dirty = false;
		s->dirty_next = NULL;
		tstream_flush(s);
	}
}

static void tunnel_on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel *t = arg;

	(void)fd;
	(void)what;
	t->flush_on = false;
	tunnel_busy(t);
	tunnel_flush_dirty(t);
	tunnel_flush(t);
	tunnel_unbusy(t);
}

/* The TLS handshake is done: the gateway takes only agents it knows by their certificate
 * (the verify callback named the peer); then the HTTP/2 session starts. */
static void tunnel_established(struct tunnel *t)
{
	if (t->role == TUNNEL_GATEWAY && t->peer[0] == '\0') {
		tunnel_handshake_failed(t, "unknown_certificate", "");
		return;
	}
	t->established = true;
	t->last_rx = clock_mono();
	session_start(t);
}

static void tunnel_handshake(struct tunnel *t)
{
	char detail[160];
	const char *reason;
	int rc;

	ERR_clear_error();
	rc = SSL_do_handshake(t->pipe.ssl);
	tunnel_flush(t); /* handshake records */
	if (t->dead)
		return;
	if (rc == 1) {
		tunnel_established(t);
		return;
	}
	if (pipe_handshake_result(&t->pipe, rc, t->reject, &reason, detail, sizeof(detail)) == -1)
		tunnel_handshake_failed(t, reason, detail);
}

/* Feeds what the peer sent to the HTTP/2 session; returns -1 if it closed the tunnel. */
static int tunnel_recv(struct tunnel *t, size_t n)
{
	ssize_t rv;

	t->last_rx = clock_mono();
	rv = nghttp2_session_mem_recv(t->sink.h2, t->rbuf, n);
	if (rv < 0) {
		log_warn("event=protocol_error peer=%s agent=%s detail=%s", t->addr, t->peer,
			 nghttp2_strerror((int)rv));
		tunnel_close(t, "protocol_error");
		return -1;
	}
	return 0;
}

/* Decrypts and hands to the session at most TUNNEL_READ_BUDGET bytes, then lets others
 * run (the read event is fired again if input is left). */
static void tunnel_read(struct tunnel *t)
{
	size_t budget = TUNNEL_READ_BUDGET, since_flush = 0;
	char detail[160];
	const char *reason = "tls_error";
	enum pipe_end end = PIPE_AGAIN;

	if (t->rbuf == NULL)
		t->rbuf = xmalloc(TUNNEL_RBUF);
	while (budget > 0 && !t->dead) {
		size_t n = pipe_read(&t->pipe, t->rbuf, TUNNEL_RBUF, &end, &reason, detail,
				     sizeof(detail));
		if (n == 0)
			break;
		if (tunnel_recv(t, n) == -1)
			return;
		budget = n > budget ? 0 : budget - n;
		since_flush += n;
		if (since_flush >= TUNNEL_FLUSH_EVERY) {
			/* keep the pipeline moving: bytes to the sockets, window updates to the
			 * peer, before decrypting more */
			since_flush = 0;
			tunnel_flush_dirty(t);
			tunnel_flush(t);
		}
	}
	if (end == PIPE_EOF || end == PIPE_FAILED) {
		if (end == PIPE_FAILED)
			log_info("event=tunnel_error peer=%s reason=%s detail=%s", t->addr, reason,
				 detail);
		tunnel_close(t, end == PIPE_EOF ? "eof" : reason);
		return;
	}
	/* PIPE_BLOCKED: OpenSSL must answer (a KeyUpdate) but the TLS output queue is full:
	 * resume reading once tunnel_flush has drained it */
	if (end == PIPE_BLOCKED)
		t->read_blocked = true;
	if (budget == 0 && t->pipe.cin.len > 0)
		event_active(t->rev, EV_READ, 0);
	tunnel_flush_dirty(t);
	tunnel_flush(t);
}

static void tunnel_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel *t = arg;

	(void)fd;
	(void)what;
	tunnel_busy(t);
	if (t->state == TUNNEL_HANDSHAKE) {
		pipe_fill(&t->pipe);
		tunnel_handshake(t);
	} else {
		tunnel_read(t);
	}
	tunnel_unbusy(t);
}

static void tunnel_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel *t = arg;

	(void)fd;
	(void)what;
	tunnel_busy(t);
	if (t->state == TUNNEL_HANDSHAKE)
		tunnel_handshake(t);
	else
		tunnel_flush(t);
	tunnel_unbusy(t);
}

static void tunnel_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel *t = arg;
	double now = clock_mono();

	(void)fd;
	(void)what;
	tunnel_busy(t);
	if (t->state == TUNNEL_HANDSHAKE) {
		if (now - t->t0 > t->p.handshake_timeout)
			tunnel_handshake_failed(t, "timeout", "");
	} else if (t->state == TUNNEL_HELLO && now - t->t0 > t->p.handshake_timeout) {
		tunnel_close(t, "hello_timeout");
	} else if (t->probe_at > 0 && t->last_rx < t->probe_at &&
		   now - t->probe_at > t->probe_within) {
		tunnel_close(t, "replaced");
	} else if (t->state == TUNNEL_UP && session_retiring(t)) {
		session_retire(t);
	} else if (now - t->last_rx > t->p.peer_timeout) {
		log_info("event=peer_timeout peer=%s silent_s=%.1f", t->addr, now - t->last_rx);
		tunnel_close(t, "peer_timeout");
	} else if (now - t->last_rx >= t->p.ping_interval &&
		   now - t->last_ping >= t->p.ping_interval) {
		t->last_ping = now;
		nghttp2_submit_ping(t->sink.h2, NGHTTP2_FLAG_NONE, NULL);
		session_flush_soon(t);
	}
	if (!t->dead && ++t->ticks % 4 == 0)
		tstream_expire_idle(&t->sink, now);
	if (!t->dead && t->plain.len == 0 && t->pipe.cipher.len == 0 && t->pipe.cin.len == 0 &&
	    now - t->last_rx > 1) {
		buf_release(&t->plain);
		buf_release(&t->pipe.cipher);
		buf_release(&t->pipe.cin);
		if (t->rbuf != NULL) {
			explicit_bzero(t->rbuf, TUNNEL_RBUF);
			free(t->rbuf);
			t->rbuf = NULL;
		}
	}
	tunnel_unbusy(t);
}

/* ---- what its streams see of it (struct tstream_sink) ---- */

static void tunnel_sink_flush(void *arg)
{
	session_flush_soon(arg);
}

static void tunnel_sink_busy(void *arg)
{
	tunnel_busy(arg);
}

static void tunnel_sink_unbusy(void *arg)
{
	tunnel_unbusy(arg);
}

static void tunnel_sink_done(void *arg, void *owner)
{
	struct tunnel *t = arg;

	if (t->ops->stream_done != NULL)
		t->ops->stream_done(t, owner, t->arg);
}

/* The last stream has gone: the flush closes a drained tunnel. */
static void tunnel_sink_emptied(void *arg)
{
	struct tunnel *t = arg;

	if (t->state == TUNNEL_DRAIN)
		session_flush_soon(t);
}

static void tunnel_sink_init(struct tunnel *t)
{
	struct tstream_sink *k = &t->sink;

	k->base = t->base;
	k->plain = &t->plain;
	k->stream_window = t->p.stream_window;
	k->agent = t->role == TUNNEL_AGENT;
	k->arg = t;
	k->flush = tunnel_sink_flush;
	k->busy = tunnel_sink_busy;
	k->unbusy = tunnel_sink_unbusy;
	k->done = tunnel_sink_done;
	k->emptied = tunnel_sink_emptied;
}

struct tunnel *tunnel_new(struct event_base *base, enum tunnel_role role, int fd, SSL_CTX *ctx,
			  const struct tunnel_params *p, const struct tunnel_ops *ops, void *arg)
{
	struct tunnel *t = xcalloc(1, sizeof(*t));
	socklen_t sl = sizeof(t->peer_ss);
	struct timeval tick = clock_tv(TUNNEL_TICK);
	SSL *ssl = SSL_new(ctx);

	if (ssl == NULL)
		xalloc_fail("SSL");
	t->base = base;
	t->role = role;
	t->p = *p;
	t->ops = ops;
	t->arg = arg;
	t->hello_id = -1;
	t->t0 = clock_mono();
	tunnel_sink_init(t);
	if (getpeername(fd, (struct sockaddr *)&t->peer_ss, &sl) == 0)
		addr_format((struct sockaddr *)&t->peer_ss, t->addr, sizeof(t->addr));
	else
		snprintf(t->addr, sizeof(t->addr), "?");
	pipe_init(&t->pipe, fd, ssl);
	SSL_set_app_data(ssl, t);
	if (role == TUNNEL_GATEWAY)
		SSL_set_accept_state(ssl);
	else
		SSL_set_connect_state(ssl);
	t->rev = event_new(base, fd, EV_READ | EV_PERSIST, tunnel_on_read, t);
	t->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, tunnel_on_write, t);
	t->timer = event_new(base, -1, EV_PERSIST, tunnel_on_tick, t);
	t->flush_ev = event_new(base, -1, 0, tunnel_on_flush, t);
	if (t->rev == NULL || t->wev == NULL || t->timer == NULL || t->flush_ev == NULL)
		xalloc_fail("event");
	event_add(t->rev, NULL);
	event_add(t->timer, &tick);
	if (role == TUNNEL_AGENT)
		tunnel_want_write(t, true); /* the client speaks first */
	return t;
}

void tunnel_drain(struct tunnel *t)
{
	if (t->sink.h2 == NULL || t->state == TUNNEL_HANDSHAKE) {
		tunnel_close(t, "drained");
		return;
	}
	if (t->state != TUNNEL_DRAIN) {
		t->state = TUNNEL_DRAIN;
		nghttp2_submit_goaway(t->sink.h2, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(t->sink.h2),
				      NGHTTP2_NO_ERROR, NULL, 0);
	}
	session_flush_soon(t);
}

void tunnel_set_hello(struct tunnel *t, const char *instance, unsigned slot, const char *services)
{
	bool changed = t->services == NULL || strcmp(t->services, services) != 0;

	snprintf(t->instance, sizeof(t->instance), "%s", instance);
	t->slot = slot;
	if (!changed)
		return;
	free(t->services);
	t->services = xstrdup(services);
	t->hello_answered = false; /* until the gateway has asked again */
	session_rehello(t);
}

int tunnel_open(struct tunnel *t, int fd, const struct tunnel_visit *v, void *owner)
{
	if (t->dead || t->state != TUNNEL_UP)
		return -1;
	return session_open(t, fd, v, owner);
}

void tunnel_move(struct tunnel *t)
{
	if (t->moved || t->state != TUNNEL_UP || t->dead)
		return;
	t->moved = true;
	nghttp2_submit_ping(t->sink.h2, NGHTTP2_FLAG_NONE, (const uint8_t *)TUNNEL_PING_MOVE);
	session_flush_soon(t);
}

bool tunnel_is_moved(const struct tunnel *t)
{
	return t->moved;
}

void tunnel_retire(struct tunnel *t)
{
	if (t->retire_forced)
		return;
	t->retire_forced = true;
	if (t->state == TUNNEL_UP)
		session_retire(t);
}

void tunnel_supersede(struct tunnel *t, double within)
{
	if (t->superseded || t->sink.h2 == NULL)
		return;
	t->superseded = true;
	t->probe_at = clock_mono();
	t->probe_within = within;
	nghttp2_submit_ping(t->sink.h2, NGHTTP2_FLAG_NONE, NULL);
	session_flush_soon(t);
}

bool tunnel_is_spent(const struct tunnel *t)
{
	return t->retire_sent && t->sink.nstreams == 0;
}

bool tunnel_is_retiring(const struct tunnel *t)
{
	return session_retiring(t) || t->superseded;
}

void tunnel_set_server_name(struct tunnel *t, const char *name)
{
	SSL_set_tlsext_host_name(t->pipe.ssl, name);
	SSL_set1_host(t->pipe.ssl, name);
}

int tunnel_peer_fingerprint(const struct tunnel *t, uint8_t fp[32])
{
	X509 *x = SSL_get0_peer_certificate(t->pipe.ssl);

	if (x == NULL)
		return -1;
	return tls_fingerprint(x, fp);
}

X509 *tunnel_peer_cert(const struct tunnel *t)
{
	return SSL_get0_peer_certificate(t->pipe.ssl);
}

STACK_OF(X509) *tunnel_peer_chain(const struct tunnel *t)
{
	return SSL_get_peer_cert_chain(t->pipe.ssl);
}

struct tunnel *tunnel_from_ssl(SSL *ssl)
{
	return SSL_get_app_data(ssl);
}

void tunnel_set_peer(struct tunnel *t, const char *name)
{
	snprintf(t->peer, sizeof(t->peer), "%s", name);
}

void tunnel_set_reject(struct tunnel *t, const char *reason)
{
	snprintf(t->reject, sizeof(t->reject), "%s", reason);
}

const char *tunnel_peer(const struct tunnel *t)
{
	return t->peer;
}

const char *tunnel_peer_addr(const struct tunnel *t)
{
	return t->addr;
}

const struct sockaddr_storage *tunnel_peer_sockaddr(const struct tunnel *t)
{
	return &t->peer_ss;
}

const char *tunnel_instance(const struct tunnel *t)
{
	return t->instance;
}

unsigned tunnel_slot(const struct tunnel *t)
{
	return t->slot;
}

const char *tunnel_services(const struct tunnel *t)
{
	return t->services ? t->services : "";
}

bool tunnel_serves(const struct tunnel *t, const char *service)
{
	size_t n = strlen(service);

	for (const char *p = tunnel_services(t); *p;) {
		size_t len = strcspn(p, ",");
		if (len == n && memcmp(p, service, n) == 0)
			return true;
		p += len;
		p += *p == ',';
	}
	return false;
}

bool tunnel_is_up(const struct tunnel *t)
{
	return !t->dead && t->state == TUNNEL_UP && !session_retired(t);
}

double tunnel_age(const struct tunnel *t)
{
	return clock_mono() - t->t0;
}

bool tunnel_hello_answered(const struct tunnel *t)
{
	return t->hello_answered;
}

bool tunnel_is_established(const struct tunnel *t)
{
	return t->established;
}

size_t tunnel_nstreams(const struct tunnel *t)
{
	return t->sink.nstreams;
}

void *tunnel_user(const struct tunnel *t)
{
	return t->user;
}

void tunnel_set_user(struct tunnel *t, void *user)
{
	t->user = user;
}
