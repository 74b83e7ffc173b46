/* The intake's MLLP connections: admission (core/listener, and behind a proxy the
 * address its PROXY header names), the PROXY header read before TLS, the TLS handshake,
 * one timer per connection (handshake, frame, idle, write and closing deadlines), the pump
 * that feeds the framer within the budget, and closing after the last answer. */
#include "intake/conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/proxy.h"
#include "core/sock.h"
#include "core/tls.h"
#include "core/xalloc.h"
#include "intake/budget.h"
#include "intake/pipeline.h"

/* The connection's next deadline but the write timeout's. */
static double conn_due(const struct conn *c)
{
	const struct intake_config *cfg = c->in->cfg;

	if (c->closing)
		return c->started + INTAKE_CLOSE_GRACE; /* started is reset when closing begins */
	if (!conn_ready(c))
		return c->started + cfg->frame_timeout;
	if (mllp_partial(&c->f))
		return c->frame_start + cfg->frame_timeout;
	return c->last_frame + cfg->idle_timeout;
}

/* True while ACKs wait to be written and the peer has taken none of them for
 * write_timeout: a peer that never reads would hold its unread ACKs, and the budget, for
 * ever. */
static bool conn_write_stalled(const struct conn *c, double now)
{
	return c->bev != NULL && !c->closing &&
	       evbuffer_get_length(bufferevent_get_output(c->bev)) > 0 &&
	       now >= c->out_progress + c->in->cfg->write_timeout;
}

/* Arms the connection's one timer for its next deadline. */
static void conn_arm(struct conn *c)
{
	double now = clock_mono(), due = conn_due(c);
	struct timeval tv;

	if (c->bev != NULL && !c->closing &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) > 0 &&
	    c->out_progress + c->in->cfg->write_timeout < due)
		due = c->out_progress + c->in->cfg->write_timeout;
	tv = clock_tv(due > now ? due - now : 0);
	evtimer_add(c->timer, &tv);
}

/* The output buffer changed: the peer took ACK bytes, or ACKs began to wait (loop thread). */
static void conn_out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;

	(void)b;
	if (info->n_deleted > 0 || (info->orig_size == 0 && info->n_added > 0))
		c->out_progress = clock_mono();
}

/* The admission limits: of the sockets (accepted) and, behind a proxy, of the addresses
 * its headers name (sources). */
void conn_limits(const struct intake_config *cfg, bool sockets,
			  struct listener_limits *lim)
{
	bool by_source = !sockets || !cfg->proxy;

	memset(lim, 0, sizeof(*lim));
	if (sockets)
		lim->max_connections = (unsigned)cfg->max_connections;
	if (by_source) {
		lim->max_per_source = (unsigned)cfg->max_per_source;
		lim->v4_prefix = cfg->source_prefix_v4;
		lim->v6_prefix = cfg->source_prefix_v6;
		lim->allow = cfg->allow;
		lim->nallow = cfg->nallow;
	}
}

static bool intake_proxy_trusted(const struct intake *in, const struct sockaddr *sa)
{
	for (size_t i = 0; i < in->cfg->nproxy_from; i++)
		if (addr_cidr_match(&in->cfg->proxy_from[i], sa))
			return true;
	return false;
}

/* Starts closing: nothing more is read; what was read is answered, the answers are
 * written, then the connection closes (or after INTAKE_CLOSE_GRACE). */
void conn_finish(struct conn *c, const char *reason)
{
	if (c->closing)
		return;
	c->closing = true;
	c->close_reason = reason;
	c->started = clock_mono();
	budget_drop_overdraft(c);
	if (c->bev == NULL) { /* still before TLS: nothing was read, nothing to answer */
		conn_close(c, reason);
		return;
	}
	bufferevent_disable(c->bev, EV_READ);
	conn_arm(c);
	conn_maybe_close(c);
}

/* Once everything read is answered and written: on plain TCP, send FIN and wait (within
 * the closing grace) for the peer's, discarding what it still sends, so that closing with
 * unread bytes does not turn into a reset that could destroy ACKs already on their way; a
 * sender whose messages were not answered sends them again. Otherwise close. */
void conn_maybe_close(struct conn *c)
{
	if (c->jobs != 0 || evbuffer_get_length(bufferevent_get_output(c->bev)) != 0)
		return;
	if (c->in->tls != NULL || c->eof) {
		conn_close(c, c->close_reason);
		return;
	}
	if (!c->shut) {
		c->shut = true;
		shutdown(bufferevent_getfd(c->bev), SHUT_WR);
		evbuffer_drain(bufferevent_get_input(c->bev),
			       evbuffer_get_length(bufferevent_get_input(c->bev)));
		bufferevent_enable(c->bev, EV_READ);
	}
}

static int conn_proxy_source(struct conn *c, const struct sockaddr_storage *srcp);

/* Reads a PROXY header at the start of the connection. Returns 1 when done, 0 for more
 * bytes, -1 when the connection was closed. */
static int conn_proxy(struct conn *c, struct evbuffer *inb)
{
	size_t have = evbuffer_get_length(inb);
	size_t n = have < PROXY_V2_MAX ? have : PROXY_V2_MAX;
	struct sockaddr_storage src, dst;
	const uint8_t *p = evbuffer_pullup(inb, (ev_ssize_t)n);
	int used = proxy_decode(p, n, &src, &dst);

	if (used == 0 && n < PROXY_V2_MAX && !c->eof)
		return 0;
	if (used <= 0) {
		conn_close(c, c->eof ? "closed_in_proxy_header" : "bad_proxy_header");
		return -1;
	}
	evbuffer_drain(inb, (size_t)used);
	return conn_proxy_source(c, &src);
}

/* The source a PROXY header named: recorded, then checked against allow and
 * max_per_source. Returns 1, or -1 when the connection was closed. */
static int conn_proxy_source(struct conn *c, const struct sockaddr_storage *srcp)
{
	struct intake *in = c->in;
	struct sockaddr_storage src = *srcp;
	enum listener_reason why;

	c->proxy_done = true;
	if (src.ss_family != AF_UNSPEC) { /* LOCAL and UNKNOWN keep the socket's address */
		c->src = src;
		addr_format((struct sockaddr *)&src, c->peer, sizeof(c->peer));
	}
	c->proxy_src = listener_set_admit(in->sources, (struct sockaddr *)&c->src, &why);
	if (c->proxy_src == NULL) {
		in->st.conns_refused++;
		log_limited(&in->rate, LOG_WARN, "event=refused peer=%s reason=%s", c->peer,
			    listener_reason_names[why]);
		conn_close(c, listener_reason_names[why]);
		return -1;
	}
	c->last_frame = clock_mono();
	return 1;
}

/* Feeds what was read to the framer while the connection may take more work. */
void conn_pump(struct conn *c)
{
	struct intake *in = c->in;
	struct evbuffer *inb = bufferevent_get_input(c->bev);
	struct evbuffer *outb = bufferevent_get_output(c->bev);
	size_t max_bytes = in->cfg->max_message > INTAKE_INFLIGHT_BYTES ? in->cfg->max_message
									: INTAKE_INFLIGHT_BYTES;
	bool room = true;

	if (c->closing)
		return;
	if (!c->tls_ready)
		goto arm;
	/* plain TCP: the header arrives through the bufferevent (with TLS, conn_pre_cb read it
	 * from the socket before the handshake) */
	if (in->cfg->proxy && !c->proxy_done) {
		int r = conn_proxy(c, inb);
		if (r == -1)
			return;
		if (r == 0)
			goto arm;
	}
	for (;;) {
		struct evbuffer_iovec v;
		size_t used = 0;
		enum mllp_result r;
		uint64_t junk = c->f.junk;
		bool was_partial = mllp_partial(&c->f);

		room = c->jobs < in->cfg->max_inflight && c->inflight_msgs < INTAKE_INFLIGHT_MSGS &&
		       c->inflight_bytes < max_bytes && evbuffer_get_length(outb) < INTAKE_OUT_MAX &&
		       (!in->paused || c == in->overdraft);
		if (!room || evbuffer_get_length(inb) == 0 ||
		    evbuffer_peek(inb, INTAKE_READ_CHUNK, NULL, &v, 1) < 1)
			break;
		if (v.iov_len > INTAKE_READ_CHUNK)
			v.iov_len = INTAKE_READ_CHUNK;
		if (!budget_fits(in, c, v.iov_len)) {
			/* this connection waits for bytes to go; others may still fit */
			if (!c->starved) {
				c->starved = true;
				in->nstarved++;
				in->st.memory_waits++;
				budget_watch_close(c);
			}
			budget_want_overdraft(in);
			room = false;
			break;
		}
		r = mllp_feed(&c->f, v.iov_base, v.iov_len, &used);
		evbuffer_drain(inb, used);
		in->st.junk_bytes += c->f.junk - junk;
		if (r != MLLP_MORE) {
			size_t len;
			const uint8_t *fr = mllp_frame(&c->f, &len);
			c->last_frame = clock_mono();
			pipeline_frame(c, fr, len, r == MLLP_OVERSIZE);
			if (c->f.frame.cap > INTAKE_FRAMER_KEPT)
				mllp_trim(&c->f); /* copied: a large buffer is not kept */
			budget_drop_overdraft(c);
		} else if (!was_partial && mllp_partial(&c->f)) {
			c->frame_start = clock_mono();
		}
	}
	budget_account(c);
	if (room && !c->eof && !in->draining && (!in->paused || c == in->overdraft))
		bufferevent_enable(c->bev, EV_READ);
	else
		bufferevent_disable(c->bev, EV_READ);
	if (c->eof && evbuffer_get_length(inb) == 0) {
		conn_finish(c, mllp_partial(&c->f) ? "closed_mid_frame" : "closed");
		return;
	}
arm:
	conn_arm(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->shut) { /* closing: what the peer still sends is not read as messages */
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
		budget_account(c);
		return;
	}
	conn_pump(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	budget_account(c); /* unread ACK bytes went */
	/* the output drained: more may be read, or a closing connection may go */
	if (c->closing)
		conn_maybe_close(c);
	else
		conn_pump(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) { /* the TLS handshake is done */
		c->tls_ready = true;
		c->last_frame = clock_mono();
		conn_pump(c);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		c->eof = true;
		if (c->closing)
			conn_maybe_close(c);
		else
			conn_pump(c);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		char detail[256];
		const char *why = bufferevent_get_openssl_error(bev) != 0
					  ? tls_failure_reason(detail, sizeof(detail))
					  : "socket_error";
		conn_close(c, why);
	}
}

static bool in_proxy(const struct conn *c)
{
	return c->in->cfg->proxy && !c->proxy_done;
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	double now = clock_mono();

	(void)fd;
	(void)what;
	if (c->closing) {
		conn_close(c, c->close_reason);
		return;
	}
	if (conn_write_stalled(c, now)) {
		/* as if it had closed: what it sent is answered and stored, its ACKs wait
		 * INTAKE_CLOSE_GRACE more, then the connection and its bytes go */
		conn_finish(c, "write_timeout");
		return;
	}
	if (now < conn_due(c)) { /* woken for the write timeout, and bytes were taken */
		conn_arm(c);
		return;
	}
	if (c->jobs > 0 && conn_ready(c) && !mllp_partial(&c->f)) {
		/* waiting for the store, not for the peer */
		c->last_frame = clock_mono();
		conn_arm(c);
		return;
	}
	conn_close(c, !conn_ready(c) ? (in_proxy(c) ? "proxy_timeout" : "handshake_timeout")
		      : mllp_partial(&c->f) ? "frame_timeout"
					    : "idle_timeout");
}

void conn_close(struct conn *c, const char *reason)
{
	struct intake *in = c->in;

	log_limited(&in->rate, strcmp(reason, "closed") == 0 ? LOG_DEBUG : LOG_INFO,
		    "event=closed peer=%s reason=%s pending=%u", c->peer, reason, c->jobs);
	in->held -= c->held; /* the orphans' share comes back below */
	if (c->starved)
		in->nstarved--;
	budget_drop_overdraft(c);
	for (struct job *jb = c->head, *next; jb != NULL; jb = next) {
		next = jb->next;
		jb->c = NULL;
		if (jb->pending == 0) {
			pipeline_job_free(jb);
		} else { /* still being stored: held until its last answer comes */
			in->held += jb->held;
			in->orphans_held += jb->held;
		}
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		in->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	in->nconns--;
	listener_set_release(in->accepted, c->sock_src);
	listener_set_release(in->sources, c->proxy_src);
	loop_free_event(&c->timer);
	loop_free_event(&c->closed_ev);
	if (c->bev != NULL) {
		evbuffer_remove_cb(bufferevent_get_output(c->bev), conn_out_cb, c);
		bufferevent_free(c->bev);
	} else {
		loop_free_event(&c->pre);
		close(c->fd);
	}
	mllp_free(&c->f);
	free(c);
	budget_released(in);
}

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

/* c's bufferevent is made: its callbacks are set and reading starts, unless the budget
 * stopped it (then the resume turns it on). */
static void conn_bev_start(struct conn *c)
{
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	if (evbuffer_add_cb(bufferevent_get_output(c->bev), conn_out_cb, c) == NULL)
		xalloc_fail("evbuffer callback");
	bufferevent_set_max_single_read(c->bev, INTAKE_READ_MAX);
	if (!c->in->paused)
		bufferevent_enable(c->bev, EV_READ);
}

/* TLS behind a proxy: the PROXY header comes first, in the clear. It is read from the
 * socket with MSG_PEEK, then exactly its bytes are taken, so that the TLS bufferevent
 * starts on the first byte of the handshake (edge-triggered: a partial header waits for
 * more bytes, not in a busy loop). */
static void conn_pre_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct intake *in = c->in;
	uint8_t hdr[PROXY_V2_MAX];
	struct sockaddr_storage src, dst;
	ssize_t n = recv(fd, hdr, sizeof(hdr), MSG_PEEK);
	int used;
	SSL *ssl;

	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c, "closed_in_proxy_header");
		return;
	}
	used = proxy_decode(hdr, (size_t)n, &src, &dst);
	if (used == 0 && (size_t)n < sizeof(hdr))
		return;
	if (used <= 0 || recv(fd, hdr, (size_t)used, 0) != used) {
		conn_close(c, "bad_proxy_header");
		return;
	}
	loop_free_event(&c->pre);
	if (conn_proxy_source(c, &src) == -1)
		return;
	ssl = SSL_new(in->tls);
	if (ssl == NULL)
		xalloc_fail("SSL");
	c->bev = bufferevent_openssl_socket_new(in->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		xalloc_fail("bufferevent");
	conn_bev_start(c);
	conn_arm(c);
}

void conn_refused(void *arg, const struct sockaddr *sa, enum listener_reason r)
{
	struct intake *in = arg;

	(void)sa;
	(void)r;
	in->st.conns_total++;
	in->st.conns_refused++;
}

/* A connection the listener admitted: fd is ours, src its count in in->accepted. */
void conn_accept(void *arg, int fd, const struct sockaddr *sa, struct listener_src *src)
{
	struct intake *in = arg;
	struct conn *c;

	in->st.conns_total++;
	if (in->cfg->proxy && !intake_proxy_trusted(in, sa)) {
		in->st.conns_refused++;
		listener_set_refuse(in->accepted, src, sa, "untrusted_proxy");
		close(fd);
		return;
	}
	sock_nodelay(fd);
	c = xcalloc(1, sizeof(*c));
	c->in = in;
	c->sock_src = src;
	memcpy(&c->src, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						      : sizeof(struct sockaddr_in));
	addr_format(sa, c->peer, sizeof(c->peer));
	mllp_init(&c->f, in->cfg->max_message);
	c->started = c->last_frame = clock_mono();
	c->fd = fd;
	if (in->tls != NULL && in->cfg->proxy) {
		c->pre = event_new(in->base, fd, EV_READ | EV_PERSIST | EV_ET, conn_pre_cb, c);
		if (c->pre == NULL || event_add(c->pre, NULL) == -1)
			xalloc_fail("event");
	} else if (in->tls != NULL) {
		SSL *ssl = SSL_new(in->tls);
		if (ssl == NULL)
			xalloc_fail("SSL");
		c->bev = bufferevent_openssl_socket_new(in->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
							BEV_OPT_CLOSE_ON_FREE);
	} else {
		c->bev = bufferevent_socket_new(in->base, fd, BEV_OPT_CLOSE_ON_FREE);
		c->tls_ready = true;
	}
	if (c->bev == NULL && c->pre == NULL)
		xalloc_fail("bufferevent");
	c->timer = evtimer_new(in->base, conn_timer_cb, c);
	if (c->timer == NULL)
		xalloc_fail("event");
	if (c->bev != NULL)
		conn_bev_start(c);
	c->next = in->conns;
	if (in->conns != NULL)
		in->conns->prev = c;
	in->conns = c;
	in->nconns++;
	if (in->nconns > in->peak)
		in->peak = in->nconns;
	conn_arm(c);
	log_debug("event=connected peer=%s", c->peer);
}

const struct intake_upcalls conn_upcalls = {
	.pump = conn_pump,
	.close = conn_close,
	.maybe_close = conn_maybe_close,
};
