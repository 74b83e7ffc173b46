#include "core/admin.h"

#include <event2/bufferevent.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
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
 * request: the listener costs at most 32 x 8 KiB of a peer's bytes, for 5 s. One request
 * per connection (Connection: close), GET and HEAD only, no body. */
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
	struct admin_conn *prev, *next;
};

struct admin {
	struct listener *l;
	struct listener_set *set;
	struct event_base *base;
	struct admin_conn *conns;
	const struct admin_ops *ops;
	void *arg;
	char *token;
};

static double admin_started; /* when the first listener of the process began */

static bool admin_same(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	/* the length is no secret; the bytes are compared in constant time */
	return alen == blen && CRYPTO_memcmp(a, b, blen) == 0;
}

bool admin_authorized(const char *auth, const char *token)
{
	/* a user name of up to 255 bytes, ':', the longest token */
	unsigned char dec[3 * ADMIN_BASIC_MAX / 4 + 4];
	size_t len, pad = 0;
	int n;
	const char *colon;

	if (token == NULL)
		return true;
	if (auth == NULL)
		return false;
	if (strncasecmp(auth, "Bearer ", 7) == 0) {
		auth += 7;
		while (*auth == ' ')
			auth++;
		return admin_same(auth, strlen(auth), token);
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
	if (colon == NULL)
		return false;
	return admin_same(colon + 1, (size_t)n - (size_t)(colon + 1 - (const char *)dec), token);
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

/* A bare request line and header block, NUL-terminated, up to and without the blank line:
 * "METHOD TARGET HTTP/1.x" then "Name: value" lines. Fills the method, target and the
 * Authorization value (NULL if absent), cutting them in place. Returns -1 if malformed. */
static int admin_parse(char *req, char **method, char **target, const char **auth)
{
	char *line = req, *end, *sp1, *sp2;

	*auth = NULL;
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
	*method = line;
	*target = sp1 + 1;
	while (end != NULL) {
		char *colon;
		line = end + 1;
		end = strchr(line, '\n');
		if (end != NULL)
			*end = '\0';
		if (end > line && end[-1] == '\r')
			end[-1] = '\0';
		colon = strchr(line, ':');
		if (colon == NULL || colon - line != 13 || strncasecmp(line, "Authorization", 13) != 0)
			continue;
		for (colon++; *colon == ' ' || *colon == '\t'; colon++)
			;
		/* the field value without its trailing whitespace */
		for (char *e = colon + strlen(colon); e > colon && (e[-1] == ' ' || e[-1] == '\t');)
			*--e = '\0';
		*auth = colon;
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

static void admin_handle(struct admin_conn *c, const char *method, const char *uri,
			 const char *auth)
{
	struct admin *adm = c->adm;
	bool head = strcmp(method, "HEAD") == 0;
	struct evbuffer *body = evbuffer_new();
	char why[256] = "";

	if (body == NULL)
		xalloc_fail("evbuffer");
	if (!head && strcmp(method, "GET") != 0) {
		evbuffer_add_printf(body, "method not allowed\n");
		admin_reply(c, false, 405, "Method Not Allowed", "text/plain",
			    "Allow: GET, HEAD\r\n", body);
	} else if (strcmp(uri, "/healthz") != 0 && !admin_authorized(auth, adm->token)) {
		evbuffer_add_printf(body, "unauthorized: send Authorization: Bearer TOKEN "
					  "(the token in admin_token_file)\n");
		admin_reply(c, head, 401, "Unauthorized", "text/plain",
			    "WWW-Authenticate: Basic realm=\"netwall\", charset=\"UTF-8\"\r\n",
			    body);
	} else if (strcmp(uri, "/") == 0 && adm->ops->page_body != NULL) {
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
		evbuffer_add_printf(body, "not found: try /, /healthz, /metrics, /status\n");
		admin_reply(c, head, 404, "Not Found", "text/plain", NULL, body);
	}
	evbuffer_free(body);
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
	char req[ADMIN_MAX_HEADERS + 1];
	char *method, *target;
	const char *auth;
	size_t end;

	if (len > ADMIN_MAX_HEADERS)
		len = ADMIN_MAX_HEADERS;
	evbuffer_copyout(in, req, len);
	end = admin_header_end(req, len);
	if (end == 0) {
		if (evbuffer_get_length(in) >= ADMIN_MAX_HEADERS)
			admin_reply(c, false, 431, "Request Header Fields Too Large", "text/plain",
				    NULL, NULL);
		goto out;
	}
	req[end] = '\0';
	if (memchr(req, '\0', end) != NULL || admin_parse(req, &method, &target, &auth) == -1)
		admin_reply(c, false, 400, "Bad Request", "text/plain", NULL, NULL);
	else
		admin_handle(c, method, target, auth);
out:
	/* the copy may hold the token, whichever way the request went */
	OPENSSL_cleanse(req, len);
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
	(void)bev;
	(void)what;
	admin_conn_free(arg);
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
	/* never more than the header limit (and one byte to tell it was passed) held */
	bufferevent_setwatermark(c->bev, EV_READ, 0, ADMIN_MAX_HEADERS);
	bufferevent_setcb(c->bev, admin_on_read, admin_on_write, admin_on_event, c);
	bufferevent_enable(c->bev, EV_READ);
	evtimer_add(c->deadline, &tv);
	c->next = adm->conns;
	if (c->next != NULL)
		c->next->prev = c;
	adm->conns = c;
}

struct admin *admin_new(struct event_base *base, const struct addr *a, const char *token,
			const struct admin_ops *ops, void *arg, char *err, size_t errlen)
{
	struct admin *adm = xcalloc(1, sizeof(*adm));
	struct listener_limits lim = { .max_connections = ADMIN_MAX_CONNECTIONS,
				       .max_per_source = ADMIN_MAX_PER_SOURCE };

	if (admin_started == 0)
		admin_started = clock_mono();
	adm->base = base;
	adm->ops = ops;
	adm->arg = arg;
	adm->token = xstrdup(token);
	if (token == NULL && !admin_is_loopback(a)) {
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
	if (adm->token != NULL)
		OPENSSL_cleanse(adm->token, strlen(adm->token));
	free(adm->token);
	free(adm);
}

int admin_reconfigure(struct admin **adm, struct event_base *base, const struct addr *a,
		      const char *token, const struct admin_ops *ops, void *arg, char *err,
		      size_t errlen)
{
	if (*adm != NULL && a != NULL && addr_equal(listener_addr((*adm)->l), a)) {
		if ((*adm)->token != NULL)
			OPENSSL_cleanse((*adm)->token, strlen((*adm)->token));
		free((*adm)->token);
		(*adm)->token = xstrdup(token);
		return 0;
	}
	admin_free(*adm);
	*adm = NULL;
	if (a == NULL)
		return 0;
	*adm = admin_new(base, a, token, ops, arg, err, errlen);
	if (*adm == NULL) {
		log_error("event=admin_failed error=\"%s\"", err);
		return -1;
	}
	return 0;
}
