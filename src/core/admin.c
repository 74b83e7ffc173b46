#include "core/admin.h"

#include <event2/bufferevent.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/loop.h"
#include "core/page.h"
#include "core/xalloc.h"

/* A request is read, answered and closed within ADMIN_TIMEOUT of its accept, however
 * its bytes trickle in or its answer is read out; at most ADMIN_MAX_CONNECTIONS are open
 * (ADMIN_MAX_PER_SOURCE from one source), each holding at most ADMIN_MAX_HEADERS of
 * request and ADMIN_MAX_BODY of body: the listener costs at most 32 x 9 KiB of a peer's
 * bytes, for 5 s. One request per connection (Connection: close); GET and HEAD, and POST
 * (with a Content-Length, no chunks) only to the daemon's own pages. A request the daemon
 * answers later (admin_defer) holds its connection, and nothing more of the peer's bytes,
 * up to ADMIN_LATER_TIMEOUT; its answer then has ADMIN_TIMEOUT to be read out. */
#define ADMIN_TIMEOUT 5          /* seconds from accept to the last byte of the answer */
#define ADMIN_MAX_CONNECTIONS 32
#define ADMIN_MAX_PER_SOURCE 8
#define ADMIN_MAX_HEADERS 8192   /* request line and header bytes, the blank line included */
#define ADMIN_BASIC_MAX (4 * ((255 + 1 + ADMIN_TOKEN_MAX + 2) / 3)) /* base64 of user:token */

struct admin_conn {
	struct admin *adm;
	struct bufferevent *bev;
	struct event *deadline;
	struct listener_src *src;
	struct admin_later *later; /* while the daemon's answer is awaited */
	size_t held;               /* bytes of a deferred answer it writes (admin_later_held) */
	struct admin_conn *prev, *next;
};

/* A deferred answer's handle: the daemon holds it; the connection may go first. */
struct admin_later {
	struct admin_conn *c; /* NULL once the connection is gone */
	bool head;
	size_t reserved; /* of admin_later_held, until the answer comes */
};

struct admin {
	struct listener *l;
	struct listener_set *set;
	struct event_base *base;
	struct admin_conn *conns;
	const struct admin_ops *ops;
	void *arg;
	struct tokens *tokens;
};

/* The parts of a request the listener reads, cut in place in its copy. */
struct admin_head {
	char *method, *target;
	const char *auth, *host, *origin, *fetch_site, *content_type;
	long long content_length; /* -1: absent */
	bool chunked;             /* a Transfer-Encoding was sent: refused */
};

static double admin_started; /* when the first listener of the process began */
/* Bytes every deferred answer of the process holds, whichever listener it came by (a
 * reload may replace the listener while its answers are made): reserved while awaited,
 * then the answer's own size until it is written out or its connection goes. At most
 * ADMIN_LATER_BYTES. Loop thread. */
static size_t admin_later_held;

bool admin_authorized(const char *auth, const struct tokens *tokens, const struct token **by)
{
	/* a user name of up to 255 bytes, ':', the longest token */
	unsigned char dec[3 * ADMIN_BASIC_MAX / 4 + 4];
	size_t len, pad = 0;
	int n;
	const char *colon;
	const struct token *hit = NULL;

	if (by != NULL)
		*by = NULL;
	if (tokens == NULL)
		return true;
	if (auth == NULL)
		return false;
	if (strncasecmp(auth, "Bearer ", 7) == 0) {
		auth += 7;
		while (*auth == ' ')
			auth++;
		hit = tokens_match(tokens, auth, strlen(auth));
		goto out;
	}
	if (strncasecmp(auth, "Basic ", 6) != 0)
		return false;
	auth += 6;
	while (*auth == ' ')
		auth++;
	len = strlen(auth);
	if (len == 0 || len % 4 != 0 || len > ADMIN_BASIC_MAX)
		return false;
	n = EVP_DecodeBlock(dec, (const unsigned char *)auth, (int)len);
	if (n < 0)
		return false;
	pad = (auth[len - 1] == '=') + (auth[len - 2] == '=');
	n -= (int)pad;
	colon = memchr(dec, ':', (size_t)n);
	if (colon != NULL)
		hit = tokens_match(tokens, colon + 1,
				   (size_t)n - (size_t)(colon + 1 - (const char *)dec));
	OPENSSL_cleanse(dec, sizeof(dec));
out:
	if (by != NULL)
		*by = hit;
	return hit != NULL;
}

static bool admin_is_loopback(const struct addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr) >> 24) == 127;
	if (a->ss.ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
	return false;
}

/* ---- connections ---- */

/* Wipes what evb holds (a request's bytes, the Authorization header among them). */
static void admin_wipe(struct evbuffer *evb)
{
	struct evbuffer_iovec v[8];
	int n = evbuffer_peek(evb, -1, NULL, v, 8);

	for (int i = 0; i < n && i < 8; i++)
		OPENSSL_cleanse(v[i].iov_base, v[i].iov_len);
}

static void admin_conn_free(struct admin_conn *c)
{
	struct admin *adm = c->adm;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		adm->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (c->later != NULL)
		c->later->c = NULL; /* the daemon's answer, when it comes, is dropped */
	admin_later_held -= c->held;
	listener_set_release(adm->set, c->src);
	loop_free_event(&c->deadline);
	admin_wipe(bufferevent_get_input(c->bev)); /* it may hold the token */
	bufferevent_free(c->bev);
	free(c);
}

/* Sends one answer and closes once it is written. body may be NULL (no body). */
static void admin_reply(struct admin_conn *c, bool head, int code, const char *reason,
			const char *type, const char *extra, struct evbuffer *body)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t len = body != NULL ? evbuffer_get_length(body) : 0;

	bufferevent_disable(c->bev, EV_READ);
	evbuffer_add_printf(out,
			    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			    "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
			    code, reason, type, len, extra != NULL ? extra : "");
	if (body != NULL && !head)
		evbuffer_add_buffer(out, body);
}

/* Takes the header line "Name: value" (cut in place) into h if it is one the listener
 * reads. Returns -1 when it makes the request malformed (a second Content-Length, a bad
 * one, whitespace between the name and its colon: RFC 9112 5.1, as a proxy in front might
 * read "Transfer-Encoding : chunked" otherwise than the listener). */
static int admin_header(char *line, struct admin_head *h)
{
	static const struct {
		const char *name;
		size_t off;
	} known[] = {
		{"Authorization", offsetof(struct admin_head, auth)},
		{"Host", offsetof(struct admin_head, host)},
		{"Origin", offsetof(struct admin_head, origin)},
		{"Sec-Fetch-Site", offsetof(struct admin_head, fetch_site)},
		{"Content-Type", offsetof(struct admin_head, content_type)},
	};
	char *colon = strchr(line, ':'), *v;
	size_t nlen;

	if (colon == NULL)
		return 0;
	nlen = (size_t)(colon - line);
	if (nlen == 0 || strcspn(line, " \t") < nlen)
		return -1;
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	/* the field value without its trailing whitespace */
	for (char *e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t');)
		*--e = '\0';
	if (nlen == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0)
		h->chunked = true;
	if (nlen == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
		char *end;
		long long n;

		if (h->content_length != -1 || *v < '0' || *v > '9')
			return -1;
		n = strtoll(v, &end, 10);
		if (*end != '\0' || n < 0)
			return -1;
		h->content_length = n;
	}
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strlen(known[i].name) == nlen && strncasecmp(line, known[i].name, nlen) == 0)
			*(const char **)((char *)h + known[i].off) = v;
	return 0;
}

/* A bare request line and header block, NUL-terminated, up to and without the blank line:
 * "METHOD TARGET HTTP/1.x" then "Name: value" lines. Fills h, cutting its parts in place.
 * Returns -1 if malformed. */
static int admin_parse(char *req, struct admin_head *h)
{
	char *line = req, *end, *sp1, *sp2;

	memset(h, 0, sizeof(*h));
	h->content_length = -1;
	while (*line == '\r' || *line == '\n') /* RFC 9112 2.2: empty lines before a request */
		line++;
	end = strchr(line, '\n');
	if (end != NULL)
		*end = '\0';
	if (end > line && end[-1] == '\r')
		end[-1] = '\0';
	sp1 = strchr(line, ' ');
	sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
	if (sp1 == NULL || sp2 == NULL ||
	    (strcmp(sp2 + 1, "HTTP/1.1") != 0 && strcmp(sp2 + 1, "HTTP/1.0") != 0))
		return -1;
	*sp1 = *sp2 = '\0';
	h->method = line;
	h->target = sp1 + 1;
	while (end != NULL) {
		line = end + 1;
		end = strchr(line, '\n');
		if (end != NULL)
			*end = '\0';
		if (end > line && end[-1] == '\r')
			end[-1] = '\0';
		if (admin_header(line, h) == -1)
			return -1;
	}
	return 0;
}

/* The daemon's metrics for one request (empty if it registers none). */
static struct metrics *admin_registry(struct admin *adm)
{
	struct metrics *m = metrics_new();

	if (adm->ops->register_metrics != NULL)
		adm->ops->register_metrics(m, adm->arg);
	return m;
}

static void admin_metrics_text(struct admin *adm, struct evbuffer *out)
{
	struct metrics *m = admin_registry(adm);

	metrics_prometheus(m, out);
	metrics_free(m);
}

/* {"role": ..., the daemon's own keys, "metrics": {...}}, one line. */
static void admin_status(struct admin *adm, struct evbuffer *out)
{
	struct metrics *m;
	json_t *j;
	char *s;

	m = admin_registry(adm);
	j = json_pack("{s:s}", "role", adm->ops->role);
	if (adm->ops->status_json != NULL) {
		json_t *own = adm->ops->status_json(adm->arg);
		/* the daemon's keys join "role", never replace it; a part that could not be
		 * made is left out rather than taking the daemon down */
		if (own != NULL)
			json_object_update_missing(j, own);
		json_decref(own);
	}
	json_object_set_new(j, "metrics", metrics_json(m));
	/* nine digits: 0.1 stays 0.1, not 0.10000000000000001 */
	s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
	if (s == NULL)
		xalloc_fail("json");
	evbuffer_add_printf(out, "%s\n", s);
	free(s);
	json_decref(j);
	metrics_free(m);
}

/* A daemon's own page (ops->route): 1 once answered, 0 when the path is none of them. */
static int admin_route(struct admin_conn *c, const struct admin_head *h, const char *body,
		       size_t body_len, const struct token *by)
{
	struct admin *adm = c->adm;
	char path[ADMIN_MAX_TARGET + 1];
	const char *q = strchr(h->target, '?');
	size_t plen = q != NULL ? (size_t)(q - h->target) : strlen(h->target);
	struct admin_req req = {.method = h->method, .path = path, .query = q ? q + 1 : "",
				.token = by, .host = h->host, .origin = h->origin,
				.fetch_site = h->fetch_site, .content_type = h->content_type,
				.body = body, .body_len = body_len, .conn = c};
	struct admin_resp resp = {.code = 500, .reason = "Internal Server Error",
				  .type = "text/plain"};
	int rc;

	if (adm->ops->route == NULL)
		return 0;
	memcpy(path, h->target, plen);
	path[plen] = '\0';
	resp.body = evbuffer_new();
	if (resp.body == NULL)
		xalloc_fail("evbuffer");
	rc = adm->ops->route(&req, &resp, adm->arg);
	if (rc == ADMIN_ROUTE_LATER && c->later != NULL) {
		/* the request is read: what it left in the input (the token) goes now, and
		 * whatever else the peer sends is dropped (admin_on_read) */
		struct evbuffer *in = bufferevent_get_input(c->bev);
		admin_wipe(in);
		evbuffer_drain(in, evbuffer_get_length(in));
	} else if (rc != 0) {
		/* answered; a route that said "later" without admin_defer gets resp's 500
		 * rather than a connection left waiting */
		admin_reply(c, strcmp(h->method, "HEAD") == 0, resp.code, resp.reason, resp.type,
			    resp.headers, resp.body);
	}
	evbuffer_free(resp.body);
	return rc;
}

struct admin_later *admin_defer(const struct admin_req *req, size_t reserve)
{
	struct admin_conn *c = req->conn;
	struct admin_later *l;
	struct timeval tv = clock_tv(ADMIN_LATER_TIMEOUT);

	if (reserve > ADMIN_LATER_BYTES - admin_later_held)
		return NULL;
	l = xcalloc(1, sizeof(*l));
	l->reserved = reserve;
	admin_later_held += reserve;
	l->c = c;
	l->head = strcmp(req->method, "HEAD") == 0;
	c->later = l;
	evtimer_add(c->deadline, &tv); /* from now, in place of the accept's */
	return l;
}

void admin_later_answer(struct admin_later *l, const struct admin_resp *resp)
{
	struct admin_conn *c = l->c;
	struct timeval tv = clock_tv(ADMIN_TIMEOUT);

	admin_later_held -= l->reserved;
	if (c != NULL) {
		c->later = NULL;
		if (resp != NULL)
			admin_reply(c, l->head, resp->code, resp->reason, resp->type, resp->headers,
				    resp->body);
		else
			admin_reply(c, l->head, 503, "Service Unavailable", "text/plain", NULL,
				    NULL);
		/* the answer's bytes count until they are written out or the client goes */
		c->held = evbuffer_get_length(bufferevent_get_output(c->bev));
		admin_later_held += c->held;
		evtimer_add(c->deadline, &tv); /* to be read out */
	}
	free(l);
}

/* /, /healthz, /metrics, /status: 1 once answered, 0 when uri is none of them. */
static int admin_own(struct admin_conn *c, bool head, const char *uri, struct evbuffer *body)
{
	struct admin *adm = c->adm;
	char why[256] = "";

	if (strcmp(uri, "/") == 0 && adm->ops->page_body != NULL) {
		struct metrics *m = admin_registry(adm);
		page_begin(body, adm->ops->role, clock_mono() - admin_started);
		adm->ops->page_body(body, m, adm->arg);
		page_end(body);
		metrics_free(m);
		admin_reply(c, head, 200, "OK", "text/html; charset=utf-8", NULL, body);
	} else if (strcmp(uri, "/healthz") == 0) {
		if (adm->ops->health == NULL || adm->ops->health(why, sizeof(why), adm->arg) == 0) {
			evbuffer_add_printf(body, "ok\n");
			admin_reply(c, head, 200, "OK", "text/plain", NULL, body);
		} else {
			evbuffer_add_printf(body, "unhealthy: %s\n", why);
			admin_reply(c, head, 503, "Service Unavailable", "text/plain", NULL, body);
		}
	} else if (strcmp(uri, "/metrics") == 0) {
		admin_metrics_text(adm, body);
		admin_reply(c, head, 200, "OK", "text/plain; version=0.0.4", NULL, body);
	} else if (strcmp(uri, "/status") == 0) {
		admin_status(adm, body);
		admin_reply(c, head, 200, "OK", "application/json", NULL, body);
	} else {
		return 0;
	}
	return 1;
}

static void admin_handle(struct admin_conn *c, const struct admin_head *h, const char *body,
			 size_t body_len)
{
	struct admin *adm = c->adm;
	const char *uri = h->target;
	bool head = strcmp(h->method, "HEAD") == 0;
	bool post = strcmp(h->method, "POST") == 0 && adm->ops->route != NULL;
	struct evbuffer *out = evbuffer_new();
	const struct token *by = NULL;

	if (out == NULL)
		xalloc_fail("evbuffer");
	if (!head && !post && strcmp(h->method, "GET") != 0) {
		evbuffer_add_printf(out, "method not allowed\n");
		admin_reply(c, false, 405, "Method Not Allowed", "text/plain",
			    adm->ops->route != NULL ? "Allow: GET, HEAD, POST\r\n"
						    : "Allow: GET, HEAD\r\n",
			    out);
	} else if (strcmp(uri, "/healthz") != 0 && !admin_authorized(h->auth, adm->tokens, &by)) {
		evbuffer_add_printf(out, "unauthorized: send Authorization: Bearer TOKEN "
					 "(a token in admin_token_file)\n");
		admin_reply(c, head, 401, "Unauthorized", "text/plain",
			    "WWW-Authenticate: Basic realm=\"netwall\", charset=\"UTF-8\"\r\n",
			    out);
	} else if ((post || admin_own(c, head, uri, out) == 0) &&
		   admin_route(c, h, body, body_len, by) == 0) {
		evbuffer_add_printf(out, "not found: try /, /healthz, /metrics, /status\n");
		admin_reply(c, head, 404, "Not Found", "text/plain", NULL, out);
	}
	evbuffer_free(out);
}

/* Refuses what the listener does not take before it is looked at: a target too long, a
 * body too long or chunked, a POST without a length. Returns 0 when the request may be
 * handled (its body, if any, being content_length bytes). */
static int admin_refuse(struct admin_conn *c, const struct admin_head *h)
{
	if (strlen(h->target) > ADMIN_MAX_TARGET)
		admin_reply(c, false, 414, "URI Too Long", "text/plain", NULL, NULL);
	else if (h->chunked)
		admin_reply(c, false, 501, "Not Implemented", "text/plain", NULL, NULL);
	else if (h->content_length > ADMIN_MAX_BODY)
		admin_reply(c, false, 413, "Content Too Large", "text/plain", NULL, NULL);
	else if (strcmp(h->method, "POST") == 0 && h->content_length == -1)
		admin_reply(c, false, 411, "Length Required", "text/plain", NULL, NULL);
	else
		return 0;
	return -1;
}

/* The end of the header block in in's first len bytes: the offset just past the blank
 * line (CRLF CRLF, or bare LFs), or 0 if it has not come yet. */
static size_t admin_header_end(const char *p, size_t len)
{
	for (size_t i = 1; i < len; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i - 1] == '\n')
			return i + 1;
		if (i >= 2 && p[i - 1] == '\r' && p[i - 2] == '\n')
			return i + 1;
	}
	return 0;
}

static void admin_on_read(struct bufferevent *bev, void *arg)
{
	struct admin_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	char req[ADMIN_MAX_HEADERS + ADMIN_MAX_BODY + 1];
	struct admin_head h;
	size_t end, blen;
	char body[ADMIN_MAX_BODY + 1];

	if (c->later != NULL) { /* one request per connection: the rest is not read */
		admin_wipe(in);
		evbuffer_drain(in, len);
		return;
	}
	if (len > ADMIN_MAX_HEADERS + ADMIN_MAX_BODY)
		len = ADMIN_MAX_HEADERS + ADMIN_MAX_BODY;
	evbuffer_copyout(in, req, len);
	end = admin_header_end(req, len < ADMIN_MAX_HEADERS ? len : ADMIN_MAX_HEADERS);
	if (end == 0) {
		if (len >= ADMIN_MAX_HEADERS)
			admin_reply(c, false, 431, "Request Header Fields Too Large", "text/plain",
				    NULL, NULL);
		goto out;
	}
	/* the body, kept aside before the header block is cut in place */
	blen = len - end; /* at most ADMIN_MAX_BODY of it is kept: no longer body is taken */
	if (blen > ADMIN_MAX_BODY)
		blen = ADMIN_MAX_BODY;
	memcpy(body, req + end, blen);
	req[end] = '\0';
	if (memchr(req, '\0', end) != NULL || admin_parse(req, &h) == -1) {
		admin_reply(c, false, 400, "Bad Request", "text/plain", NULL, NULL);
	} else if (admin_refuse(c, &h) == 0) {
		size_t want = h.content_length > 0 ? (size_t)h.content_length : 0;

		if (blen < want)
			goto out; /* the rest of the body is still to come */
		body[want] = '\0';
		if (memchr(body, '\0', want) != NULL)
			admin_reply(c, false, 400, "Bad Request", "text/plain", NULL, NULL);
		else
			admin_handle(c, &h, body, want);
	}
out:
	/* the copies may hold the token, whichever way the request went */
	OPENSSL_cleanse(req, len);
	OPENSSL_cleanse(body, sizeof(body));
}

static void admin_on_write(struct bufferevent *bev, void *arg)
{
	struct admin_conn *c = arg;

	/* written out after the answer: done */
	if (!(bufferevent_get_enabled(bev) & EV_READ))
		admin_conn_free(c);
}

static void admin_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct admin_conn *c = arg;

	/* a client that half-closed after its request (nc -N, some proxies) still waits for
	 * the answer: the end of its input frees nothing while the answer is awaited */
	if (c->later != NULL && (what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		bufferevent_disable(bev, EV_READ);
		return;
	}
	admin_conn_free(c);
}

static void admin_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	admin_conn_free(arg);
}

static void admin_on_accept(void *arg, int fd, const struct sockaddr *sa,
			    struct listener_src *src)
{
	struct admin *adm = arg;
	struct admin_conn *c = xcalloc(1, sizeof(*c));
	struct timeval tv = clock_tv(ADMIN_TIMEOUT);

	(void)sa;
	c->adm = adm;
	c->src = src;
	c->bev = bufferevent_socket_new(adm->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->deadline = evtimer_new(adm->base, admin_on_deadline, c);
	if (c->bev == NULL || c->deadline == NULL)
		xalloc_fail("event");
	/* never more than the header and body limits held */
	bufferevent_setwatermark(c->bev, EV_READ, 0, ADMIN_MAX_HEADERS + ADMIN_MAX_BODY);
	bufferevent_setcb(c->bev, admin_on_read, admin_on_write, admin_on_event, c);
	bufferevent_enable(c->bev, EV_READ);
	evtimer_add(c->deadline, &tv);
	c->next = adm->conns;
	if (c->next != NULL)
		c->next->prev = c;
	adm->conns = c;
}

struct admin *admin_new(struct event_base *base, const struct addr *a,
			const struct tokens *tokens, const struct admin_ops *ops, void *arg,
			char *err, size_t errlen)
{
	struct admin *adm = xcalloc(1, sizeof(*adm));
	struct listener_limits lim = { .max_connections = ADMIN_MAX_CONNECTIONS,
				       .max_per_source = ADMIN_MAX_PER_SOURCE };

	if (admin_started == 0)
		admin_started = clock_mono();
	adm->base = base;
	adm->ops = ops;
	adm->arg = arg;
	adm->tokens = tokens_copy(tokens);
	if (tokens == NULL && !admin_is_loopback(a)) {
		char where[ADDR_STRLEN];
		addr_format((const struct sockaddr *)&a->ss, where, sizeof(where));
		log_warn("event=admin_exposed addr=%s (not loopback and no admin_token_file: "
			 "whoever reaches it reads the status)",
			 where);
	}
	adm->set = listener_set_new("admin_refused", "listener=admin", &lim);
	adm->l = listener_new(base, a, adm->set, admin_on_accept, NULL, adm, err, errlen);
	if (adm->l == NULL)
		goto fail;
	return adm;
fail:
	admin_free(adm);
	return NULL;
}

void admin_free(struct admin *adm)
{
	if (adm == NULL)
		return;
	while (adm->conns != NULL)
		admin_conn_free(adm->conns);
	listener_free(adm->l);
	listener_set_free(adm->set);
	tokens_free(adm->tokens);
	free(adm);
}

int admin_reconfigure(struct admin **adm, struct event_base *base, const struct addr *a,
		      const struct tokens *tokens, const struct admin_ops *ops, void *arg,
		      char *err, size_t errlen)
{
	if (*adm != NULL && a != NULL && addr_equal(listener_addr((*adm)->l), a)) {
		tokens_free((*adm)->tokens);
		(*adm)->tokens = tokens_copy(tokens);
		return 0;
	}
	admin_free(*adm);
	*adm = NULL;
	if (a == NULL)
		return 0;
	*adm = admin_new(base, a, tokens, ops, arg, err, errlen);
	if (*adm == NULL) {
		log_error("event=admin_failed error=\"%s\"", err);
		return -1;
	}
	return 0;
}
