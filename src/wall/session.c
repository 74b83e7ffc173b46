/* The HTTP/2 session of a tunnel (nghttp2): its callbacks, the hello exchange, the requests
 * that open streams, and retirement when stream IDs run short. It runs inside the tunnel's
 * event handlers (tunnel.c), which hold the tunnel (busy) while it does: a session that
 * finds the tunnel broken marks it dead (session_fail), and the handler frees it on its
 * way out. */
#include "wall/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/clock.h"
#include "core/conf.h"
#include "core/log.h"
#include "core/proxy.h"
#include "core/xalloc.h"
#include "wall/share.h"
#include "wall/stream.h"
#include "wall/tunnel_state.h"

#ifdef NETWALL_TEST_HOOKS
static bool session_hook_spent; /* NETWALL_TEST_STREAM_ID applies until a tunnel retires */
#endif

/* Marks t closed for reason, as tunnel_close() would; the handler that holds t frees it. */
static void session_fail(struct tunnel *t, const char *reason)
{
	if (t->dead)
		return;
	t->dead = true;
	t->close_reason = reason;
}

/* Output is batched: everything a turn of the loop produced goes out in one flush. An event
 * activated during a turn joins the end of the turn's active queue, so the flush runs after
 * the I/O callbacks that were already due. It must not have a lower priority: libevent runs
 * lower priorities only in turns with no higher-priority work, so under steady load the
 * flush (and with it PINGs and window updates) would starve. */
void session_flush_soon(struct tunnel *t)
{
	if (t->flush_on || t->dead)
		return;
	t->flush_on = true;
	event_active(t->flush_ev, EV_WRITE, 0);
}

/* ---- nghttp2 callbacks ---- */

static ssize_t h2_send(nghttp2_session *h2, const uint8_t *data, size_t len, int flags,
		       void *user)
{
	struct tunnel *t = user;

	(void)h2;
	(void)flags;
	if (t->plain.len >= TUNNEL_PLAIN_HIGH)
		return NGHTTP2_ERR_WOULDBLOCK;
	buf_append(&t->plain, data, len);
	return (ssize_t)len;
}

static int h2_send_data(nghttp2_session *h2, nghttp2_frame *frame, const uint8_t *framehd,
			size_t length, nghttp2_data_source *source, void *user)
{
	struct tunnel *t = user;

	(void)source;
	if (t->plain.len >= TUNNEL_PLAIN_HIGH)
		return NGHTTP2_ERR_WOULDBLOCK;
	return tstream_send_data(nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id),
				 framehd, length);
}

static void h2_copy_header(char *dst, size_t dstlen, const uint8_t *v, size_t vlen)
{
	if (vlen >= dstlen)
		vlen = dstlen - 1;
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
}

#define HDR_IS(name, namelen, lit) ((namelen) == sizeof(lit) - 1 && memcmp(name, lit, namelen) == 0)

static int h2_on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
			size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
			void *user)
{
	struct tunnel *t = user;
	int32_t id = frame->hd.stream_id;
	struct tstream *s = nghttp2_session_get_stream_user_data(h2, id);

	(void)flags;
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (t->role == TUNNEL_GATEWAY && id == t->hello_id) {
		if (HDR_IS(name, namelen, ":status"))
			h2_copy_header(t->hello_status, sizeof(t->hello_status), value, valuelen);
		else if (HDR_IS(name, namelen, "x-netwall-instance"))
			h2_copy_header(t->instance, sizeof(t->instance), value, valuelen);
		else if (HDR_IS(name, namelen, "x-netwall-slot"))
			t->slot = (unsigned)strtoul((const char *)value, NULL, 10) & 0xffff;
		else if (HDR_IS(name, namelen, "x-netwall-services")) {
			free(t->services);
			t->services = xstrndup((const char *)value, valuelen);
		}
		return 0;
	}
	if (s == NULL)
		return 0;
	if (t->role == TUNNEL_GATEWAY) {
		if (HDR_IS(name, namelen, ":status"))
			tstream_on_response(s, valuelen == 3 ? (const char *)value : "bad");
		return 0;
	}
	if (s->req == NULL)
		return 0;
	if (HDR_IS(name, namelen, ":method"))
		h2_copy_header(s->req->method, sizeof(s->req->method), value, valuelen);
	else if (HDR_IS(name, namelen, ":path"))
		h2_copy_header(s->req->path, sizeof(s->req->path), value, valuelen);
	else if (HDR_IS(name, namelen, ":authority"))
		h2_copy_header(s->req->service, sizeof(s->req->service), value, valuelen);
	else if (HDR_IS(name, namelen, "x-netwall-src"))
		h2_copy_header(s->req->src, sizeof(s->req->src), value, valuelen);
	else if (HDR_IS(name, namelen, "x-netwall-dst"))
		h2_copy_header(s->req->dst, sizeof(s->req->dst), value, valuelen);
	else if (HDR_IS(name, namelen, "x-netwall-proxy"))
		h2_copy_header(s->req->proxy, sizeof(s->req->proxy), value, valuelen);
	return 0;
}

static int h2_on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
	struct tunnel *t = user;
	struct tstream *s;

	if (t->role != TUNNEL_AGENT || frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	s = tstream_new(&t->sink);
	s->id = frame->hd.stream_id;
	s->req = xcalloc(1, sizeof(*s->req));
	nghttp2_session_set_stream_user_data(h2, s->id, s);
	return 0;
}

/* Peer-supplied addresses are numeric only, never resolved. */
static int session_parse_addr(const char *s, struct sockaddr_storage *out)
{
	struct addr a;

	if (addr_parse_numeric(s, &a) == -1)
		return -1;
	memcpy(out, &a.ss, sizeof(*out));
	return 0;
}

static void session_answer_hello(struct tunnel *t, int32_t id)
{
	char slot[8];
	const char *svc = t->services ? t->services : "";
	nghttp2_nv nva[] = {
		{ (uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"x-netwall-instance", (uint8_t *)t->instance, 18, strlen(t->instance),
		  NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"x-netwall-slot", (uint8_t *)slot, 14, 0, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"x-netwall-services", (uint8_t *)svc, 18, strlen(svc),
		  NGHTTP2_NV_FLAG_NONE },
	};

	snprintf(slot, sizeof(slot), "%u", t->slot);
	nva[2].valuelen = strlen(slot);
	if (nghttp2_submit_response(t->sink.h2, id, nva, 4, NULL) == 0)
		t->hello_answered = true;
}

/* Agent: a complete request header block arrived on stream s. */
static void session_on_request(struct tunnel *t, struct tstream *s)
{
	struct tstream_req *r = s->req;
	struct tunnel_visit v;
	int rc = 0;

	if (strcmp(r->method, "GET") == 0 && strcmp(r->path, "/netwall/hello") == 0) {
		session_answer_hello(t, s->id);
		nghttp2_session_set_stream_user_data(t->sink.h2, s->id, NULL);
		tstream_free(s);
		return;
	}
	memset(&v, 0, sizeof(v));
	v.service = r->service;
	v.proxy = strcmp(r->proxy, "v1") == 0 ? 1 : strcmp(r->proxy, "v2") == 0 ? 2 : 0;
	if (strcmp(r->method, "CONNECT") != 0 || r->service[0] == '\0' ||
	    session_parse_addr(r->src, &v.src) == -1 || session_parse_addr(r->dst, &v.dst) == -1) {
		log_warn("event=bad_stream_request stream=%d", s->id);
		tstream_refuse(s);
		return;
	}
	if (v.proxy == 1)
		rc = proxy_v1_encode((char *)r->hdr, sizeof(r->hdr), (struct sockaddr *)&v.src,
				     (struct sockaddr *)&v.dst);
	else if (v.proxy == 2)
		rc = proxy_v2_encode(r->hdr, sizeof(r->hdr), (struct sockaddr *)&v.src,
				     (struct sockaddr *)&v.dst);
	if (rc < 0) {
		tstream_refuse(s);
		return;
	}
	r->hdrlen = (size_t)rc;
	tstream_set_source(s, (const struct sockaddr *)&v.src);
	t->ops->visit(t, s, &v, t->arg);
}

static void session_send_hello(struct tunnel *t)
{
	nghttp2_nv nva[] = {
		{ (uint8_t *)":method", (uint8_t *)"GET", 7, 3, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":scheme", (uint8_t *)"https", 7, 5, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":authority", (uint8_t *)"netwall", 10, 7, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":path", (uint8_t *)"/netwall/hello", 5, 14, NGHTTP2_NV_FLAG_NONE },
	};
	int32_t id = nghttp2_submit_request(t->sink.h2, NULL, nva, 4, NULL, NULL);

	if (id < 0) {
		session_fail(t, "protocol_error");
		return;
	}
	t->hello_id = id;
	t->hello_status[0] = '\0';
	session_flush_soon(t);
}

/* Is list (the agent's x-netwall-services) a comma list of config names, or empty? */
static bool session_services_ok(const char *list)
{
	char name[CONF_NAME_MAX + 1];

	for (const char *p = list; *p;) {
		size_t len = strcspn(p, ",");
		if (len == 0 || len > CONF_NAME_MAX)
			return false;
		memcpy(name, p, len);
		name[len] = '\0';
		if (!conf_name_ok(name))
			return false;
		p += len;
		if (*p == ',' && *++p == '\0')
			return false;
	}
	return true;
}

static void session_on_hello(struct tunnel *t)
{
	t->hello_id = -1;
	if (strcmp(t->hello_status, "200") != 0 || t->instance[0] == '\0' ||
	    (t->services != NULL && !session_services_ok(t->services))) {
		log_warn("event=bad_hello peer=%s agent=%s", t->addr, t->peer);
		session_fail(t, "bad_hello");
		return;
	}
	if (t->state == TUNNEL_HELLO)
		t->state = TUNNEL_UP;
	t->ops->up(t, t->arg);
}

static int h2_on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
	struct tunnel *t = user;
	int32_t id = frame->hd.stream_id;
	struct tstream *s = id ? nghttp2_session_get_stream_user_data(h2, id) : NULL;

	switch (frame->hd.type) {
	case NGHTTP2_HEADERS:
		if (t->role == TUNNEL_AGENT && frame->headers.cat == NGHTTP2_HCAT_REQUEST && s) {
			session_on_request(t, s);
			s = nghttp2_session_get_stream_user_data(h2, id);
		} else if (t->role == TUNNEL_GATEWAY && id == t->hello_id &&
			   frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
			session_on_hello(t);
		}
		if (s != NULL && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
			tstream_remote_eof(s);
		break;
	case NGHTTP2_DATA:
		if (s != NULL && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
			tstream_remote_eof(s);
		break;
	case NGHTTP2_SETTINGS:
		/* Agent: the gateway's first SETTINGS proves it accepted our certificate (in
		 * TLS 1.3 the client finishes its handshake before the server has checked it). */
		if (t->role == TUNNEL_AGENT && t->state == TUNNEL_HELLO &&
		    !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
			t->state = TUNNEL_UP;
			t->ops->up(t, t->arg);
		}
		break;
	case NGHTTP2_PING:
		if (t->role == TUNNEL_GATEWAY && !(frame->hd.flags & NGHTTP2_FLAG_ACK) &&
		    memcmp(frame->ping.opaque_data, TUNNEL_PING_REHELLO, 8) == 0 &&
		    t->hello_id <= 0 && t->state == TUNNEL_UP)
			session_send_hello(t);
		if (t->role == TUNNEL_AGENT && !(frame->hd.flags & NGHTTP2_FLAG_ACK) &&
		    memcmp(frame->ping.opaque_data, TUNNEL_PING_MOVE, 8) == 0 &&
		    t->state == TUNNEL_UP && !t->moved) {
			t->moved = true;
			if (t->ops->draining != NULL)
				t->ops->draining(t, t->arg);
		}
		break;
	case NGHTTP2_WINDOW_UPDATE:
		/* sockets stopped for want of window read again; a connection-level update
		 * (rare: the connection window is large) may open any of them */
		if (s != NULL) {
			tstream_window_opened(s);
		} else if (id == 0) {
			for (struct tstream *x = t->sink.streams; x != NULL; x = x->next)
				tstream_window_opened(x);
		}
		break;
	case NGHTTP2_GOAWAY:
		if (t->state == TUNNEL_UP || t->state == TUNNEL_HELLO) {
			t->state = TUNNEL_DRAIN;
			if (t->ops->draining != NULL)
				t->ops->draining(t, t->arg);
		}
		break;
	default:
		break;
	}
	return 0;
}

static int h2_on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data,
			    size_t len, void *user)
{
	struct tstream *s = nghttp2_session_get_stream_user_data(h2, id);

	(void)flags;
	(void)user;
	/* Window comes back when the bytes are written to the socket (stream.c); bytes with
	 * nowhere to go are dropped and their window returned now. */
	if (s == NULL || s->fd == -1) {
		nghttp2_session_consume(h2, id, len);
		return 0;
	}
	tstream_on_data(s, data, len);
	return 0;
}

/* Gateway: a visitor's stream exists once its HEADERS have gone out; now it can be granted
 * its first window, and its visitor read as far as the agent's window allows. */
static int h2_on_frame_send(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
	struct tunnel *t = user;
	struct tstream *s;

	if (t->role != TUNNEL_GATEWAY || frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	s = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
	if (s != NULL) {
		tstream_grant(s);
		tstream_window_opened(s); /* a peer that grants by SETTINGS sends no update */
	}
	return 0;
}

static int h2_on_stream_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user)
{
	struct tunnel *t = user;
	struct tstream *s = nghttp2_session_get_stream_user_data(h2, id);

	if (id == t->hello_id) {
		/* a re-hello that crossed the agent's GOAWAY is refused: the tunnel is draining,
		 * not broken */
		t->hello_id = -1;
		if (t->state != TUNNEL_DRAIN && code != NGHTTP2_REFUSED_STREAM)
			session_fail(t, "bad_hello");
		return 0;
	}
	if (s != NULL)
		tstream_h2_closed(s, code);
	return 0;
}

static nghttp2_session_callbacks *h2_callbacks(void)
{
	static nghttp2_session_callbacks *cb;

	if (cb == NULL) {
		if (nghttp2_session_callbacks_new(&cb) != 0)
			xalloc_fail("nghttp2_session_callbacks");
		nghttp2_session_callbacks_set_send_callback(cb, h2_send);
		nghttp2_session_callbacks_set_send_data_callback(cb, h2_send_data);
		nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
		nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2_on_begin_headers);
		nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_on_frame_recv);
		nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_on_data_chunk);
		nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_stream_close);
		nghttp2_session_callbacks_set_on_frame_send_callback(cb, h2_on_frame_send);
	}
	return cb;
}

/* The TLS handshake is done: starts the HTTP/2 session (our SETTINGS; the gateway's hello). */
void session_start(struct tunnel *t)
{
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, TUNNEL_MAX_STREAMS },
		/* streams are granted window one by one, as the budget allows (stream.c) */
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 0 },
		{ NGHTTP2_SETTINGS_MAX_FRAME_SIZE, TUNNEL_FRAME_MAX },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, TUNNEL_HEADERS_MAX },
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
	};
	nghttp2_option *opt;
	int rc;

	if (nghttp2_option_new(&opt) != 0)
		xalloc_fail("nghttp2_option");
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_peer_max_concurrent_streams(opt, TUNNEL_MAX_STREAMS);
	/* no priorities are used: closed streams need not be kept for the tree */
	nghttp2_option_set_no_closed_streams(opt, 1);
	/* Agent: every RST_STREAM from the gateway is a visitor that reset or left. nghttp2's
	 * defence against rapid-reset floods (GOAWAY past 1,000 in a burst, then 33 a second)
	 * would let any visitor close the tunnel for all by resetting connections fast; the
	 * gateway is authenticated and admits visitors by its own limits. */
	nghttp2_option_set_stream_reset_rate_limit(opt, UINT64_MAX, 1); /* 2^64: never spent */
	if (t->role == TUNNEL_GATEWAY)
		rc = nghttp2_session_client_new2(&t->sink.h2, h2_callbacks(), t, opt);
	else
		rc = nghttp2_session_server_new2(&t->sink.h2, h2_callbacks(), t, opt);
	nghttp2_option_del(opt);
	if (rc != 0)
		xalloc_fail("nghttp2_session");
	nghttp2_submit_settings(t->sink.h2, NGHTTP2_FLAG_NONE, iv,
				t->role == TUNNEL_GATEWAY ? 5 : 4);
	nghttp2_session_set_local_window_size(t->sink.h2, NGHTTP2_FLAG_NONE, 0, TUNNEL_CONN_WINDOW);
	if (t->role == TUNNEL_GATEWAY) {
		t->state = TUNNEL_HELLO;
		session_send_hello(t);
#ifdef NETWALL_TEST_HOOKS
		/* test build only: start stream IDs near retirement instead of opening 2^30
		 * streams (until the first tunnel retires: replacements start afresh, as in life) */
		const char *first = getenv("NETWALL_TEST_STREAM_ID");
		if (first != NULL && !session_hook_spent)
			nghttp2_session_set_next_stream_id(t->sink.h2, (int32_t)strtol(first, NULL, 10));
#endif
	} else {
		t->state = TUNNEL_HELLO; /* up when the gateway's SETTINGS arrive */
	}
	session_flush_soon(t);
}

/* Gateway: HTTP/2 stream IDs are 31 bits and never reused. Past TUNNEL_RETIRE_ID (plus a
 * stagger per slot, so an agent's tunnels do not retire together) a tunnel says GOAWAY, on
 * which the agent dials a fresh tunnel for the slot and leaves this one to finish its
 * streams; the gateway prefers other tunnels from then on, stops giving this one streams
 * at all TUNNEL_RETIRE_GRACE IDs later, and closes it once it is empty. */
static uint32_t session_retire_id(const struct tunnel *t)
{
	return (uint32_t)TUNNEL_RETIRE_ID + (t->slot % 16) * (uint32_t)TUNNEL_RETIRE_STAGGER;
}

bool session_retiring(const struct tunnel *t)
{
	return t->role == TUNNEL_GATEWAY && t->sink.h2 != NULL &&
	       (t->retire_forced ||
		nghttp2_session_get_next_stream_id(t->sink.h2) > session_retire_id(t));
}

bool session_retired(const struct tunnel *t)
{
	return t->role == TUNNEL_GATEWAY && t->sink.h2 != NULL &&
	       nghttp2_session_get_next_stream_id(t->sink.h2) >
		       session_retire_id(t) + (uint32_t)TUNNEL_RETIRE_GRACE;
}

void session_retire(struct tunnel *t)
{
	if (!t->retire_sent) {
		t->retire_sent = true;
#ifdef NETWALL_TEST_HOOKS
		session_hook_spent = true;
#endif
		t->retire_at = clock_mono();
		log_info("event=tunnel_retiring peer=%s agent=%s slot=%u reason=%s streams=%zu",
			 t->addr, t->peer, t->slot, t->retire_forced ? "handover" : "stream_ids_used",
			 t->sink.nstreams);
		nghttp2_submit_goaway(t->sink.h2, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
		session_flush_soon(t);
	} else if (t->sink.nstreams == 0 && clock_mono() - t->retire_at >= TUNNEL_RETIRE_WAIT) {
		log_info("event=tunnel_retired peer=%s agent=%s slot=%u reason=%s", t->addr,
			 t->peer, t->slot, t->retire_forced ? "handover" : "stream_ids_used");
		session_fail(t, "retired");
	}
}

/* Agent: its services changed; a PING asks the gateway to say hello again. */
void session_rehello(struct tunnel *t)
{
	if (t->sink.h2 != NULL && t->state == TUNNEL_UP) {
		nghttp2_submit_ping(t->sink.h2, NGHTTP2_FLAG_NONE,
				    (const uint8_t *)TUNNEL_PING_REHELLO);
		session_flush_soon(t);
	}
}

/* Gateway: the CONNECT request of a visitor's stream (tunnel_open, which has checked that
 * the tunnel is up). */
int session_open(struct tunnel *t, int fd, const struct tunnel_visit *v, void *owner)
{
	char src[ADDR_STRLEN], dst[ADDR_STRLEN];
	const char *proxy = v->proxy == 1 ? "v1" : v->proxy == 2 ? "v2" : "off";
	nghttp2_nv nva[] = {
		{ (uint8_t *)":method", (uint8_t *)"CONNECT", 7, 7, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":authority", (uint8_t *)v->service, 10, strlen(v->service),
		  NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"x-netwall-src", (uint8_t *)src, 13, 0, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"x-netwall-dst", (uint8_t *)dst, 13, 0, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"x-netwall-proxy", (uint8_t *)proxy, 15, strlen(proxy),
		  NGHTTP2_NV_FLAG_NONE },
	};
	nghttp2_data_provider prd;
	struct tstream *s;
	int32_t id;

	addr_format((const struct sockaddr *)&v->src, src, sizeof(src));
	addr_format((const struct sockaddr *)&v->dst, dst, sizeof(dst));
	nva[2].valuelen = strlen(src);
	nva[3].valuelen = strlen(dst);
	s = tstream_new(&t->sink);
	prd.source.ptr = s;
	prd.read_callback = tstream_provide;
	id = nghttp2_submit_request(t->sink.h2, NULL, nva, 5, &prd, s);
	if (id < 0) {
		tstream_free(s);
		return -1;
	}
	s->id = id;
	s->fd = fd;
	s->owner = owner;
	s->provider = true;
	s->idle_limit = v->idle_timeout;
	s->bytes = v->bytes;
	s->last_io = clock_mono();
	tstream_preload(s, v->early, v->nearly);
	tstream_set_source(s, (const struct sockaddr *)&v->src);
	tstream_set_rate(s, v->rate, v->visitor_rate);
	if (session_retiring(t))
		session_retire(t);
	tstream_start(s);
	session_flush_soon(t);
	return 0;
}

