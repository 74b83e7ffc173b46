#include "wall/tunnel.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/admin.h"
#include "core/clock.h"
#include "core/conf.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/tls.h"
#include "core/xalloc.h"
#include "wall/budget.h"
#include "wall/tunnel_int.h"

#define TUNNEL_TICK 0.25 /* seconds between liveness checks */

struct tunnel_stats tunnel_stats;
static struct log_rate tunnel_fail_rate;
#ifdef NETWALL_TEST_HOOKS
static bool tunnel_hook_spent; /* NETWALL_TEST_STREAM_ID applies until a tunnel retires */
#endif

void tunnel_housekeeping(void *unused)
{
	(void)unused;
	loop_trim(tunnel_stats.streams_open, &tunnel_stats.streams_peak);
}

void tunnel_stats_render(struct evbuffer *out, const char *local)
{
	char help[96];

	admin_family(out, "netwall_streams_open", "gauge", "Streams open.");
	admin_sample(out, "netwall_streams_open", "", tunnel_stats.streams_open);
	admin_family(out, "netwall_streams_total", "counter", "Streams opened.");
	admin_sample(out, "netwall_streams_total", "", tunnel_stats.streams_total);
	snprintf(help, sizeof(help), "Bytes read from %s.", local);
	admin_family(out, "netwall_bytes_in_total", "counter", help);
	admin_sample(out, "netwall_bytes_in_total", "", tunnel_stats.bytes_in);
	snprintf(help, sizeof(help), "Bytes written to %s.", local);
	admin_family(out, "netwall_bytes_out_total", "counter", help);
	admin_sample(out, "netwall_bytes_out_total", "", tunnel_stats.bytes_out);
	admin_family(out, "netwall_stream_resets_total", "counter", "Streams ended by a reset.");
	admin_sample(out, "netwall_stream_resets_total", "", tunnel_stats.resets);
	admin_family(out, "netwall_handshake_failures_total", "counter",
		     "Tunnel TLS handshakes that failed.");
	admin_sample(out, "netwall_handshake_failures_total", "", tunnel_stats.handshake_failures);
	admin_family(out, "netwall_stream_idle_timeouts_total", "counter",
		     "Streams reset after carrying nothing for idle_timeout.");
	admin_sample(out, "netwall_stream_idle_timeouts_total", "", tunnel_stats.idle_timeouts);
	budget_render(out);
}

/* ---- TLS output: records go into t->cipher, written in large chunks ---- */

static int cipher_bio_write(BIO *b, const char *data, int len)
{
	struct tunnel *t = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (t->cipher.len >= TUNNEL_CIPHER_HIGH) {
		BIO_set_retry_write(b);
		return -1;
	}
	buf_append(&t->cipher, data, (size_t)len);
	return len;
}

/* TLS input: OpenSSL reads records from t->cin, which tunnel_fill() tops up with large
 * read()s. Reading the socket ourselves costs one copy; OpenSSL's own read-ahead moves its
 * buffer's tail to the front on every record, which costs several. */
static int cipher_bio_read(BIO *b, char *out, int len)
{
	struct tunnel *t = BIO_get_data(b);
	size_t n = t->cin.len < (size_t)len ? t->cin.len : (size_t)len;

	BIO_clear_retry_flags(b);
	if (n == 0) {
		if (t->sock_eof)
			return 0;
		BIO_set_retry_read(b);
		return -1;
	}
	memcpy(out, buf_head(&t->cin), n);
	buf_consume(&t->cin, n);
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

/* ---- lifetime ---- */

static void tunnel_destroy(struct tunnel *t)
{
	while (t->streams != NULL)
		tstream_kill(t->streams);
	if (t->ops->down != NULL)
		t->ops->down(t, t->close_reason ? t->close_reason : "closed", t->arg);
	if (t->h2 != NULL)
		nghttp2_session_del(t->h2);
	loop_free_event(&t->rev);
	loop_free_event(&t->wev);
	loop_free_event(&t->timer);
	loop_free_event(&t->flush_ev);
	SSL_free(t->ssl);
	close(t->fd);
	buf_free(&t->plain);
	buf_free(&t->cipher);
	buf_free(&t->cin);
	if (t->rbuf != NULL)
		explicit_bzero(t->rbuf, TUNNEL_RBUF);
	free(t->rbuf);
	free(t->services);
	free(t);
}

void tunnel_busy(struct tunnel *t)
{
	t->busy++;
}

void tunnel_unbusy(struct tunnel *t)
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

	while (progress && !t->dead) {
		progress = false;
		if (t->h2 != NULL && t->plain.len < TUNNEL_PLAIN_HIGH &&
		    nghttp2_session_want_write(t->h2)) {
			size_t before = t->plain.len;
			if (nghttp2_session_send(t->h2) != 0) {
				tunnel_close(t, "protocol_error");
				return;
			}
			progress = t->plain.len != before;
		}
		while (t->plain.len > 0 && t->cipher.len < TUNNEL_CIPHER_HIGH &&
		       t->state != TUNNEL_HANDSHAKE) {
			size_t len = t->plain.len > INT_MAX ? INT_MAX : t->plain.len;
			int n;
			ERR_clear_error();
			n = SSL_write(t->ssl, buf_head(&t->plain), (int)len);
			if (n > 0) {
				buf_consume(&t->plain, (size_t)n);
				progress = true;
				continue;
			}
			if (SSL_get_error(t->ssl, n) == SSL_ERROR_WANT_WRITE)
				break;
			tunnel_close(t, "tls_error");
			return;
		}
		if (t->cipher.len > 0) {
			ssize_t n = write(t->fd, buf_head(&t->cipher), t->cipher.len);
			if (n > 0) {
				buf_consume(&t->cipher, (size_t)n);
				progress = true;
			} else if (n == -1 && errno == EINTR) {
				progress = true;
			} else if (n == -1 && errno != EAGAIN) {
				tunnel_close(t, errno == EPIPE || errno == ECONNRESET ? "reset"
										: "write_error");
				return;
			}
		}
	}
	tunnel_want_write(t, t->cipher.len > 0);
	if (t->read_blocked && t->cipher.len < TUNNEL_CIPHER_HIGH) {
		t->read_blocked = false;
		event_active(t->rev, EV_READ, 0);
	}
	if (t->state == TUNNEL_DRAIN && t->role == TUNNEL_AGENT && t->nstreams == 0 &&
	    t->cipher.len == 0 && t->plain.len == 0)
		tunnel_close(t, "drained");
}

void tunnel_mark_dirty(struct tunnel *t, struct tstream *s)
{
	if (s->dirty)
		return;
	s->dirty = true;
	s->dirty_next = t->dirty;
	t->dirty = s;
}

static void tunnel_flush_dirty(struct tunnel *t)
{
	while (t->dirty != NULL && !t->dead) {
		struct tstream *s = t->dirty;
		t->dirty = s->dirty_next;
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

/* Output is batched: everything a turn of the loop produced goes out in one flush. An event
 * activated during a turn joins the end of the turn's active queue, so the flush runs after
 * the I/O callbacks that were already due. It must not have a lower priority: libevent runs
 * lower priorities only in turns with no higher-priority work, so under steady load the
 * flush (and with it PINGs and window updates) would starve. */
void tunnel_schedule_flush(struct tunnel *t)
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
			t->slot = (unsigned)strtoul((const char *)value, NULL, 10) & 0xff;
		else if (HDR_IS(name, namelen, "x-netwall-services")) {
			free(t->services);
			t->services = strndup((const char *)value, valuelen);
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
	s = tstream_new(t);
	s->id = frame->hd.stream_id;
	s->req = xcalloc(1, sizeof(*s->req));
	nghttp2_session_set_stream_user_data(h2, s->id, s);
	return 0;
}

/* Peer-supplied addresses are numeric only, never resolved. */
static int tunnel_parse_addr(const char *s, struct sockaddr_storage *out)
{
	struct addr a;

	if (addr_parse_numeric(s, &a) == -1)
		return -1;
	memcpy(out, &a.ss, sizeof(*out));
	return 0;
}

static void tunnel_answer_hello(struct tunnel *t, int32_t id)
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
	nghttp2_submit_response(t->h2, id, nva, 4, NULL);
}

/* Agent: a complete request header block arrived on stream s. */
static void tunnel_on_request(struct tunnel *t, struct tstream *s)
{
	struct tstream_req *r = s->req;
	struct tunnel_visit v;
	int rc = 0;

	if (strcmp(r->method, "GET") == 0 && strcmp(r->path, "/netwall/hello") == 0) {
		tunnel_answer_hello(t, s->id);
		nghttp2_session_set_stream_user_data(t->h2, s->id, NULL);
		tstream_free(s);
		return;
	}
	memset(&v, 0, sizeof(v));
	v.service = r->service;
	v.proxy = strcmp(r->proxy, "v1") == 0 ? 1 : strcmp(r->proxy, "v2") == 0 ? 2 : 0;
	if (strcmp(r->method, "CONNECT") != 0 || r->service[0] == '\0' ||
	    tunnel_parse_addr(r->src, &v.src) == -1 || tunnel_parse_addr(r->dst, &v.dst) == -1) {
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

static void tunnel_send_hello(struct tunnel *t)
{
	nghttp2_nv nva[] = {
		{ (uint8_t *)":method", (uint8_t *)"GET", 7, 3, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":scheme", (uint8_t *)"https", 7, 5, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":authority", (uint8_t *)"netwall", 10, 7, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":path", (uint8_t *)"/netwall/hello", 5, 14, NGHTTP2_NV_FLAG_NONE },
	};
	int32_t id = nghttp2_submit_request(t->h2, NULL, nva, 4, NULL, NULL);

	if (id < 0) {
		tunnel_close(t, "protocol_error");
		return;
	}
	t->hello_id = id;
	t->hello_status[0] = '\0';
	tunnel_schedule_flush(t);
}

/* Is list (the agent's x-netwall-services) a comma list of config names, or empty? */
static bool tunnel_services_ok(const char *list)
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

static void tunnel_on_hello(struct tunnel *t)
{
	t->hello_id = -1;
	if (strcmp(t->hello_status, "200") != 0 || t->instance[0] == '\0' ||
	    (t->services != NULL && !tunnel_services_ok(t->services))) {
		log_warn("event=bad_hello peer=%s agent=%s", t->addr, t->peer);
		tunnel_close(t, "bad_hello");
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
			tunnel_on_request(t, s);
			s = nghttp2_session_get_stream_user_data(h2, id);
		} else if (t->role == TUNNEL_GATEWAY && id == t->hello_id &&
			   frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
			tunnel_on_hello(t);
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
			tunnel_send_hello(t);
		break;
	case NGHTTP2_WINDOW_UPDATE:
		/* sockets stopped for want of window read again; a connection-level update
		 * (rare: the connection window is large) may open any of them */
		if (s != NULL) {
			tstream_window_opened(s);
		} else if (id == 0) {
			for (struct tstream *x = t->streams; x != NULL; x = x->next)
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
			tunnel_close(t, "bad_hello");
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
			abort();
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

/* ---- handshake and input ---- */

static void tunnel_established(struct tunnel *t)
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

	if (t->role == TUNNEL_GATEWAY && t->peer[0] == '\0') {
		tunnel_handshake_failed(t, "unknown_certificate", "");
		return;
	}
	t->established = true;
	t->last_rx = clock_mono();
	if (nghttp2_option_new(&opt) != 0)
		abort();
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_peer_max_concurrent_streams(opt, TUNNEL_MAX_STREAMS);
	/* no priorities are used: closed streams need not be kept for the tree */
	nghttp2_option_set_no_closed_streams(opt, 1);
	if (t->role == TUNNEL_GATEWAY)
		rc = nghttp2_session_client_new2(&t->h2, h2_callbacks(), t, opt);
	else
		rc = nghttp2_session_server_new2(&t->h2, h2_callbacks(), t, opt);
	nghttp2_option_del(opt);
	if (rc != 0)
		abort();
	nghttp2_submit_settings(t->h2, NGHTTP2_FLAG_NONE, iv,
				t->role == TUNNEL_GATEWAY ? 5 : 4);
	nghttp2_session_set_local_window_size(t->h2, NGHTTP2_FLAG_NONE, 0, TUNNEL_CONN_WINDOW);
	if (t->role == TUNNEL_GATEWAY) {
		t->state = TUNNEL_HELLO;
		tunnel_send_hello(t);
#ifdef NETWALL_TEST_HOOKS
		/* test build only: start stream IDs near retirement instead of opening 2^30
		 * streams (until the first tunnel retires: replacements start afresh, as in life) */
		const char *first = getenv("NETWALL_TEST_STREAM_ID");
		if (first != NULL && !tunnel_hook_spent)
			nghttp2_session_set_next_stream_id(t->h2, (int32_t)strtol(first, NULL, 10));
#endif
	} else {
		t->state = TUNNEL_HELLO; /* up when the gateway's SETTINGS arrive */
	}
	tunnel_schedule_flush(t);
}

static void tunnel_handshake(struct tunnel *t)
{
	char detail[160];
	int rc, err;

	ERR_clear_error();
	rc = SSL_do_handshake(t->ssl);
	tunnel_flush(t); /* handshake records */
	if (t->dead)
		return;
	if (rc == 1) {
		tunnel_established(t);
		return;
	}
	err = SSL_get_error(t->ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return;
	if (t->reject[0]) {
		ERR_clear_error();
		tunnel_handshake_failed(t, t->reject, "");
	} else if (t->sock_eof || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
		ERR_clear_error();
		tunnel_handshake_failed(t, "eof", "");
	} else {
		const char *reason = tls_failure_reason(detail, sizeof(detail));
		tunnel_handshake_failed(t, reason, detail);
	}
}

/* One read() from the socket into t->cin. Returns 1 if bytes came, 0 if none are ready,
 * -1 at EOF or on an error (t->sock_eof is then set, and the BIO reports EOF). */
static int tunnel_fill(struct tunnel *t)
{
	ssize_t n;

	if (t->sock_eof)
		return -1;
	if (t->cin.len >= TUNNEL_RAW_CHUNK)
		return 1;
	n = read(t->fd, buf_tail(&t->cin, TUNNEL_RAW_CHUNK), TUNNEL_RAW_CHUNK);
	if (n > 0) {
		buf_commit(&t->cin, (size_t)n);
		return 1;
	}
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	t->sock_eof = true;
	return -1;
}

static void tunnel_read(struct tunnel *t)
{
	size_t budget = TUNNEL_READ_BUDGET, since_flush = 0;
	char detail[160];

	if (t->rbuf == NULL && (t->rbuf = malloc(TUNNEL_RBUF)) == NULL)
		abort();
	while (budget > 0 && !t->dead) {
		int n, err;
		ERR_clear_error();
		n = SSL_read(t->ssl, t->rbuf, TUNNEL_RBUF);
		if (n > 0) {
			ssize_t rv;
			t->last_rx = clock_mono();
			rv = nghttp2_session_mem_recv(t->h2, t->rbuf, (size_t)n);
			if (rv < 0) {
				log_warn("event=protocol_error peer=%s agent=%s detail=%s", t->addr,
					 t->peer, nghttp2_strerror((int)rv));
				tunnel_close(t, "protocol_error");
				return;
			}
			budget = (size_t)n > budget ? 0 : budget - (size_t)n;
			since_flush += (size_t)n;
			if (since_flush >= TUNNEL_FLUSH_EVERY) {
				/* keep the pipeline moving: bytes to the sockets, window
				 * updates to the peer, before decrypting more */
				since_flush = 0;
				tunnel_flush_dirty(t);
				tunnel_flush(t);
			}
			continue;
		}
		err = SSL_get_error(t->ssl, n);
		if (err == SSL_ERROR_WANT_READ) {
			if (tunnel_fill(t) == 0)
				break; /* -1: go round once more so OpenSSL sees the EOF */
			continue;
		}
		if (err == SSL_ERROR_WANT_WRITE) {
			/* OpenSSL must answer (a KeyUpdate) but the TLS output queue is full:
			 * resume reading once tunnel_flush has drained it */
			t->read_blocked = true;
			break;
		}
		if (t->sock_eof || err == SSL_ERROR_ZERO_RETURN ||
		    (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
			ERR_clear_error();
			tunnel_close(t, "eof");
		} else {
			const char *reason = tls_failure_reason(detail, sizeof(detail));
			log_info("event=tunnel_error peer=%s reason=%s detail=%s", t->addr, reason,
				 detail);
			tunnel_close(t, reason);
		}
		return;
	}
	if (budget == 0 && t->cin.len > 0)
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
		tunnel_fill(t);
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

/* Gateway: HTTP/2 stream IDs are 31 bits and never reused. Past TUNNEL_RETIRE_ID (plus a
 * stagger per slot, so an agent's tunnels do not retire together) a tunnel says GOAWAY, on
 * which the agent dials a fresh tunnel for the slot and leaves this one to finish its
 * streams; the gateway prefers other tunnels from then on, stops giving this one streams
 * at all TUNNEL_RETIRE_GRACE IDs later, and closes it once it is empty. */
static uint32_t tunnel_retire_id(const struct tunnel *t)
{
	return (uint32_t)TUNNEL_RETIRE_ID + (t->slot % 16) * (uint32_t)TUNNEL_RETIRE_STAGGER;
}

bool tunnel_is_retiring(const struct tunnel *t)
{
	return t->role == TUNNEL_GATEWAY && t->h2 != NULL &&
	       nghttp2_session_get_next_stream_id(t->h2) > tunnel_retire_id(t);
}

static bool tunnel_retired(const struct tunnel *t)
{
	return t->role == TUNNEL_GATEWAY && t->h2 != NULL &&
	       nghttp2_session_get_next_stream_id(t->h2) >
		       tunnel_retire_id(t) + (uint32_t)TUNNEL_RETIRE_GRACE;
}

static void tunnel_retire(struct tunnel *t)
{
	if (!t->retire_sent) {
		t->retire_sent = true;
#ifdef NETWALL_TEST_HOOKS
		tunnel_hook_spent = true;
#endif
		t->retire_at = clock_mono();
		log_info("event=tunnel_retiring peer=%s agent=%s slot=%u reason=stream_ids_used "
			 "streams=%zu",
			 t->addr, t->peer, t->slot, t->nstreams);
		nghttp2_submit_goaway(t->h2, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
		tunnel_schedule_flush(t);
	} else if (t->nstreams == 0 && clock_mono() - t->retire_at >= TUNNEL_RETIRE_WAIT) {
		log_info("event=tunnel_retired peer=%s agent=%s slot=%u reason=stream_ids_used",
			 t->addr, t->peer, t->slot);
		tunnel_close(t, "retired");
	}
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
	} else if (t->state == TUNNEL_UP && tunnel_is_retiring(t)) {
		tunnel_retire(t);
	} else if (now - t->last_rx > t->p.peer_timeout) {
		log_info("event=peer_timeout peer=%s silent_s=%.1f", t->addr, now - t->last_rx);
		tunnel_close(t, "peer_timeout");
	} else if (now - t->last_rx >= t->p.ping_interval &&
		   now - t->last_ping >= t->p.ping_interval) {
		t->last_ping = now;
		nghttp2_submit_ping(t->h2, NGHTTP2_FLAG_NONE, NULL);
		tunnel_schedule_flush(t);
	}
	if (!t->dead && ++t->ticks % 4 == 0)
		tstream_expire_idle(t, now);
	if (!t->dead && t->plain.len == 0 && t->cipher.len == 0 && t->cin.len == 0 && now - t->last_rx > 1) {
		buf_release(&t->plain);
		buf_release(&t->cipher);
		buf_release(&t->cin);
		if (t->rbuf != NULL) {
			explicit_bzero(t->rbuf, TUNNEL_RBUF);
			free(t->rbuf);
			t->rbuf = NULL;
		}
	}
	tunnel_unbusy(t);
}

struct tunnel *tunnel_new(struct event_base *base, enum tunnel_role role, int fd, SSL_CTX *ctx,
			  const struct tunnel_params *p, const struct tunnel_ops *ops, void *arg)
{
	struct tunnel *t = xcalloc(1, sizeof(*t));
	socklen_t sl = sizeof(t->peer_ss);
	struct timeval tick = clock_tv(TUNNEL_TICK);
	BIO *bio;

	t->base = base;
	t->role = role;
	t->fd = fd;
	t->p = *p;
	t->ops = ops;
	t->arg = arg;
	t->hello_id = -1;
	t->t0 = clock_mono();
	if (getpeername(fd, (struct sockaddr *)&t->peer_ss, &sl) == 0)
		addr_format((struct sockaddr *)&t->peer_ss, t->addr, sizeof(t->addr));
	else
		snprintf(t->addr, sizeof(t->addr), "?");
	t->ssl = SSL_new(ctx);
	bio = BIO_new(cipher_bio_method());
	if (t->ssl == NULL || bio == NULL)
		abort();
	BIO_set_data(bio, t);
	BIO_set_init(bio, 1);
	SSL_set_bio(t->ssl, bio, bio);
	SSL_set_app_data(t->ssl, t);
	if (role == TUNNEL_GATEWAY)
		SSL_set_accept_state(t->ssl);
	else
		SSL_set_connect_state(t->ssl);
	t->rev = event_new(base, fd, EV_READ | EV_PERSIST, tunnel_on_read, t);
	t->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, tunnel_on_write, t);
	t->timer = event_new(base, -1, EV_PERSIST, tunnel_on_tick, t);
	t->flush_ev = event_new(base, -1, 0, tunnel_on_flush, t);
	if (t->rev == NULL || t->wev == NULL || t->timer == NULL || t->flush_ev == NULL)
		abort();
	event_add(t->rev, NULL);
	event_add(t->timer, &tick);
	if (role == TUNNEL_AGENT)
		tunnel_want_write(t, true); /* the client speaks first */
	return t;
}

void tunnel_drain(struct tunnel *t)
{
	if (t->h2 == NULL || t->state == TUNNEL_HANDSHAKE) {
		tunnel_close(t, "drained");
		return;
	}
	if (t->state != TUNNEL_DRAIN) {
		t->state = TUNNEL_DRAIN;
		nghttp2_submit_goaway(t->h2, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(t->h2),
				      NGHTTP2_NO_ERROR, NULL, 0);
	}
	tunnel_schedule_flush(t);
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
	if (t->h2 != NULL && t->state == TUNNEL_UP) {
		nghttp2_submit_ping(t->h2, NGHTTP2_FLAG_NONE,
				    (const uint8_t *)TUNNEL_PING_REHELLO);
		tunnel_schedule_flush(t);
	}
}

int tunnel_open(struct tunnel *t, int fd, const struct tunnel_visit *v, void *owner)
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

	if (t->dead || t->state != TUNNEL_UP)
		return -1;
	addr_format((const struct sockaddr *)&v->src, src, sizeof(src));
	addr_format((const struct sockaddr *)&v->dst, dst, sizeof(dst));
	nva[2].valuelen = strlen(src);
	nva[3].valuelen = strlen(dst);
	s = tstream_new(t);
	prd.source.ptr = s;
	prd.read_callback = tstream_provide;
	id = nghttp2_submit_request(t->h2, NULL, nva, 5, &prd, s);
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
	tstream_set_source(s, (const struct sockaddr *)&v->src);
	if (tunnel_is_retiring(t))
		tunnel_retire(t);
	tstream_start(s);
	tunnel_schedule_flush(t);
	return 0;
}

void tunnel_set_server_name(struct tunnel *t, const char *name)
{
	SSL_set_tlsext_host_name(t->ssl, name);
	SSL_set1_host(t->ssl, name);
}

int tunnel_peer_fingerprint(const struct tunnel *t, uint8_t fp[32])
{
	X509 *x = SSL_get0_peer_certificate(t->ssl);

	if (x == NULL)
		return -1;
	return tls_fingerprint(x, fp);
}

X509 *tunnel_peer_cert(const struct tunnel *t)
{
	return SSL_get0_peer_certificate(t->ssl);
}

STACK_OF(X509) *tunnel_peer_chain(const struct tunnel *t)
{
	return SSL_get_peer_cert_chain(t->ssl);
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

bool tunnel_is_up(const struct tunnel *t)
{
	return !t->dead && t->state == TUNNEL_UP && !tunnel_retired(t);
}

double tunnel_age(const struct tunnel *t)
{
	return clock_mono() - t->t0;
}

bool tunnel_is_established(const struct tunnel *t)
{
	return t->established;
}

size_t tunnel_nstreams(const struct tunnel *t)
{
	return t->nstreams;
}

void *tunnel_user(const struct tunnel *t)
{
	return t->user;
}

void tunnel_set_user(struct tunnel *t, void *user)
{
	t->user = user;
}
