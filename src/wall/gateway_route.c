/* A listen address shared by services told apart by name (see gateway_route.h): each
 * visitor waits with its first bytes until they name a service. */
#include "wall/gateway_route.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/sock.h"
#include "core/xalloc.h"
#include "wall/budget.h"
#include "wall/gateway_state.h"
#include "wall/share.h"
#include "wall/sni.h"

#define ROUTE_BUF_FIRST 2048 /* a visitor's first buffer; doubled up to the cap as needed */
#define ROUTE_ALERT_UNRECOGNIZED_NAME 112 /* TLS AlertDescription (RFC 6066 3) */

/* The unrouted reasons' labels, in the order of enum gw_unrouted. */
const char *const gateway_route_reasons[GW_UNR_COUNT] = {
	"unknown_name", "no_name", "malformed", "too_big", "timeout", "memory", "closed"
};

struct route_wait {
	struct gateway_route *r;
	struct route_wait *prev, *next;
	int fd;
	struct sockaddr_storage ss;
	struct listener_src *src; /* of the route's set, while it waits */
	struct event *ev, *tmo;
	uint8_t *buf;
	size_t len, size;
	size_t need; /* TLS: the length worth reading before the next try */
	size_t from; /* HTTP: where the next try starts, */
	char host[SNI_NAME_MAX + 1]; /* ... and the Host read so far */
};

struct gateway_route {
	struct gateway *gw;
	enum config_route kind;
	const struct gateway_route_ops *ops;
	struct listener_set *set;
	struct listener *l;
	struct route_wait *waits;
	size_t nwaits;
	char where[ADDR_STRLEN]; /* the address, for logs and the status page */
};

static void route_wait_free(struct route_wait *w)
{
	struct gateway_route *r = w->r;

	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		r->waits = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	r->nwaits--;
	loop_free_event(&w->ev);
	loop_free_event(&w->tmo);
	share_give(w->len, 0);
	listener_set_release(r->set, w->src);
	free(w->buf);
	free(w);
}

/* The answer to a visitor no service takes: a fatal TLS alert in a record of the version
 * its ClientHello's record had, or an HTTP status; at most one write, never waited on. */
static void route_answer(struct route_wait *w, enum gw_unrouted why)
{
	static const char http_421[] = "HTTP/1.1 421 Misdirected Request\r\n"
				       "Content-Type: text/plain\r\nContent-Length: 31\r\n"
				       "Connection: close\r\n\r\nno service for this host name\r\n";
	static const char http_431[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
				       "Content-Type: text/plain\r\nContent-Length: 25\r\n"
				       "Connection: close\r\n\r\nrequest head too large\r\n";
	static const char http_400[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
				       "Content-Length: 13\r\nConnection: close\r\n\r\nbad request\r\n";
	const void *p = NULL;
	size_t n = 0;
	uint8_t alert[7];

	if (w->r->kind == CONFIG_ROUTE_SNI && (why == GW_UNR_UNKNOWN_NAME || why == GW_UNR_NO_NAME)) {
		memcpy(alert, (const uint8_t[]){ 21, 3, 1, 0, 2, 2, ROUTE_ALERT_UNRECOGNIZED_NAME },
		       sizeof(alert));
		alert[2] = w->buf[2]; /* the ClientHello's record: 22, 3, minor */
		p = alert;
		n = sizeof(alert);
	} else if (w->r->kind == CONFIG_ROUTE_HOST) {
		if (why == GW_UNR_UNKNOWN_NAME || why == GW_UNR_NO_NAME)
			p = http_421, n = sizeof(http_421) - 1;
		else if (why == GW_UNR_TOO_BIG)
			p = http_431, n = sizeof(http_431) - 1;
		else if (why == GW_UNR_MALFORMED)
			p = http_400, n = sizeof(http_400) - 1;
	}
	if (n > 0 && write(w->fd, p, n) == -1)
		log_debug("event=route_answer_failed errno=%d", errno);
}

/* Turns the visitor away: counted, listed, logged (the name escaped), answered, closed. */
static void route_refuse(struct route_wait *w, enum gw_unrouted why, const char *name)
{
	struct gateway_route *r = w->r;
	struct gateway *gw = r->gw;
	char peer[ADDR_STRLEN], esc[LOG_VALUE_SIZE(SNI_NAME_MAX)];

	gw->unrouted[why]++;
	if (why != GW_UNR_CLOSED) {
		r->ops->refused(gw, (struct sockaddr *)&w->ss, r->where, gateway_route_reasons[why]);
		addr_format((struct sockaddr *)&w->ss, peer, sizeof(peer));
		log_limited(&gw->rate_reject, LOG_WARN,
			    "event=visitor_unrouted listen=%s peer=%s reason=%s name=%s", r->where,
			    peer, gateway_route_reasons[why],
			    log_value(esc, sizeof(esc), name != NULL ? name : ""));
		route_answer(w, why);
	}
	shutdown(w->fd, SHUT_WR);
	close(w->fd);
	route_wait_free(w);
}

/* The service of the route's address and kind that takes name (NULL: none sent): an exact
 * name first, then a pattern, then the default. */
static struct gw_service *route_pick(struct gateway_route *r, const char *name)
{
	struct gateway *gw = r->gw;
	struct gw_service *exact = NULL, *pattern = NULL, *def = NULL;

	for (size_t i = 0; i < gw->nsvcs; i++) {
		struct gw_service *s = gw->svcs[i];
		bool here = false;
		if (s->removed || s->cfg.route != r->kind)
			continue;
		for (size_t j = 0; j < s->cfg.nlisten && !here; j++)
			here = addr_equal(&s->cfg.listen[j], listener_addr(r->l));
		if (!here)
			continue;
		if (s->cfg.is_default && def == NULL)
			def = s;
		for (size_t j = 0; name != NULL && j < s->cfg.nnames; j++) {
			const char *p = s->cfg.names[j];
			if (p[0] != '*' && strcmp(p, name) == 0 && exact == NULL)
				exact = s;
			else if (p[0] == '*' && pattern == NULL && sni_match(p, name))
				pattern = s;
		}
	}
	return exact != NULL ? exact : pattern != NULL ? pattern : def;
}

/* The name is read (or cannot be): pick and hand over, or refuse. */
static void route_decide(struct route_wait *w, enum sni_result res, const char *name)
{
	struct gateway_route *r = w->r;
	struct gw_service *svc;
	enum gw_unrouted why;
	int fd = w->fd;

	if (res == SNI_TOO_BIG) {
		route_refuse(w, GW_UNR_TOO_BIG, NULL);
		return;
	}
	svc = route_pick(r, res == SNI_NAME ? name : NULL);
	if (svc == NULL) {
		why = res == SNI_NAME ? GW_UNR_UNKNOWN_NAME
		      : res == SNI_NONE ? GW_UNR_NO_NAME
					 : GW_UNR_MALFORMED;
		route_refuse(w, why, res == SNI_NAME ? name : NULL);
		return;
	}
	/* the visitor leaves the route: its fd and its bytes' budget go to the driver */
	w->fd = -1;
	r->ops->visit(r->gw, svc, r->l, fd, (struct sockaddr *)&w->ss, w->buf, w->len);
	w->len = 0;
	route_wait_free(w);
}

/* Reads what the visitor sent, within its cap and the budget. Returns the bytes read, 0 at
 * EOF, -1 on EAGAIN (nothing to do), -2 when the budget has no room. */
static ssize_t route_read(struct route_wait *w, size_t cap)
{
	size_t want = cap - w->len;
	uint64_t room = budget_room();
	ssize_t n;

	if (room == 0)
		return -2;
	if (want > room)
		want = (size_t)room;
	if (w->len == w->size) { /* grown only once full: held memory follows bytes read */
		w->size = w->size * 2 < cap ? w->size * 2 : cap;
		w->buf = xrealloc(w->buf, w->size);
	}
	if (want > w->size - w->len)
		want = w->size - w->len;
	n = read(w->fd, w->buf + w->len, want);
	if (n > 0) {
		if (!budget_take((uint64_t)n))
			log_fatal("event=bug what=route_read_over_budget");
		w->len += (size_t)n;
	}
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return -1;
	return n == -1 ? 0 : n;
}

static void route_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct route_wait *w = arg;
	bool tls = w->r->kind == CONFIG_ROUTE_SNI;
	size_t cap = tls ? SNI_HELLO_CAP : SNI_HTTP_CAP;
	char name[SNI_NAME_MAX + 1];
	enum sni_result res;
	ssize_t n;

	(void)fd;
	(void)what;
	n = route_read(w, cap);
	if (n == -1)
		return;
	if (n == -2) {
		route_refuse(w, GW_UNR_MEMORY, NULL);
		return;
	}
	if (n == 0) {
		route_refuse(w, GW_UNR_CLOSED, NULL); /* gone before it named anything */
		return;
	}
	if (tls && w->len < w->need)
		return;
	res = tls ? sni_client_hello(w->buf, w->len, cap, name, &w->need)
		  : sni_http_host(w->buf, w->len, cap, w->host, &w->from);
	if (res != SNI_NEED_MORE)
		route_decide(w, res, tls ? name : w->host);
}

static void route_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	route_refuse(arg, GW_UNR_TIMEOUT, NULL);
}

/* A visitor admitted by the route's set: it waits for its name. */
static void route_on_accept(void *arg, int fd, const struct sockaddr *sa, struct listener_src *src)
{
	struct gateway_route *r = arg;
	struct route_wait *w;
	struct timeval tv = clock_tv(r->gw->cfg->route_timeout);

	if (r->gw->draining) {
		listener_set_refuse(r->set, src, sa, "draining");
		sock_abort(fd);
		return;
	}
	w = xcalloc(1, sizeof(*w));
	w->r = r;
	w->fd = fd;
	memcpy(&w->ss, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						     : sizeof(struct sockaddr_in));
	w->src = src;
	w->size = ROUTE_BUF_FIRST;
	w->buf = xmalloc(w->size);
	w->need = 5; /* a TLS record's header */
	w->ev = event_new(r->gw->base, fd, EV_READ | EV_PERSIST, route_on_read, w);
	w->tmo = evtimer_new(r->gw->base, route_on_timeout, w);
	if (w->ev == NULL || w->tmo == NULL || event_add(w->ev, NULL) == -1 ||
	    evtimer_add(w->tmo, &tv) == -1)
		xalloc_fail("event");
	w->next = r->waits;
	if (w->next != NULL)
		w->next->prev = w;
	r->waits = w;
	r->nwaits++;
}

static void route_on_refused(void *arg, const struct sockaddr *sa, enum listener_reason why)
{
	struct gateway_route *r = arg;

	r->ops->refused(r->gw, sa, r->where, listener_reason_names[why]);
}

struct gateway_route *gateway_route_new(struct gateway *gw, const struct addr *a,
					enum config_route kind, const struct listener_limits *lim,
					const struct gateway_route_ops *ops, char *err,
					size_t errlen)
{
	struct gateway_route *r = xcalloc(1, sizeof(*r));
	char name[ADDR_STRLEN + 16];

	r->gw = gw;
	r->kind = kind;
	r->ops = ops;
	addr_format((const struct sockaddr *)&a->ss, r->where, sizeof(r->where));
	snprintf(name, sizeof(name), "listen=%s", r->where);
	r->set = listener_set_new("visitor_rejected", name, lim);
	r->l = listener_new(gw->base, a, r->set, route_on_accept, route_on_refused, r, err, errlen);
	if (r->l == NULL) {
		listener_set_free(r->set);
		free(r);
		return NULL;
	}
	return r;
}

void gateway_route_free(struct gateway_route *r)
{
	if (r == NULL)
		return;
	while (r->waits != NULL) {
		struct route_wait *w = r->waits;
		close(w->fd);
		route_wait_free(w);
	}
	listener_free(r->l);
	listener_set_free(r->set);
	free(r);
}

void gateway_route_set_limits(struct gateway_route *r, const struct listener_limits *lim)
{
	listener_set_limits(r->set, lim);
}

void gateway_route_enable(struct gateway_route *r, bool on)
{
	listener_enable(r->l, on);
}

const struct addr *gateway_route_addr(const struct gateway_route *r)
{
	return listener_addr(r->l);
}

enum config_route gateway_route_kind(const struct gateway_route *r)
{
	return r->kind;
}

size_t gateway_route_waiting(const struct gateway_route *r)
{
	return r->nwaits;
}
