/* Health checks of the agent's targets and the pick of a target for a new stream.
 *
 * A check is one non-blocking connection on the agent's loop, bounded by health_timeout:
 * "tcp" connects and closes (a target with tls = on is not handshaken: the connect is the
 * check); "http /PATH" connects, does the TLS handshake of the target's service (with its
 * verification), sends GET PATH HTTP/1.1 with Host and Connection: close, and reads until
 * the status line is whole, at most HEALTH_ANSWER_MAX bytes: 2xx and 3xx are healthy. The
 * rest of the answer is never read, so an endless body costs nothing. The next check starts
 * health_interval after one ends.
 *
 * State: unknown (counts as up) until the first result, which decides; then health_fall
 * failures in a row take a target down and health_rise successes bring it back. A
 * visitor's connect or TLS handshake that fails counts as a failure and brings the next
 * check forward (the stream itself is dialled once more, to another target not down:
 * agent.c, stream.c); health_fall of those with no stream reaching the target in between
 * take it down even when its checks pass (a tcp check does not see TLS). A check that gets
 * no socket for the agent's own shortage (EMFILE, ENOBUFS...) counts as local_error and
 * moves nothing. Streams go to targets known up, to unknown ones only when none is.
 *
 * Every transition is logged (event=target_down / target_up). A service with every target
 * down is withdrawn at once; it is announced again once a target has stayed back for
 * health_hold() (each change starts that wait over), so a flapping target does not make
 * the gateways ask again at every check. */
#include "wall/health.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/page.h"
#include "core/sock.h"
#include "core/tls.h"
#include "core/xalloc.h"

#define HEALTH_REQUEST_MAX (CONFIG_LABEL_MAX * 2 + 128) /* the GET request we send */
#define HEALTH_HOLD_MIN 1.0 /* seconds a service is back before it is announced again */

enum health_state { HEALTH_UNKNOWN = 0, HEALTH_UP, HEALTH_DOWN };

enum health_result {
	HEALTH_OK = 0,
	HEALTH_CONNECT_FAILED,
	HEALTH_TIMEOUT,
	HEALTH_TLS_FAILED,
	HEALTH_BAD_STATUS,
	HEALTH_BAD_ANSWER,
	HEALTH_STREAM_FAILED,
	HEALTH_LOCAL_ERROR, /* no socket for the check: the agent's own shortage */
	HEALTH_NRESULTS
};

static const char *const health_result_names[HEALTH_NRESULTS] = {
	"ok", "connect_failed", "timeout", "tls_failed", "bad_status", "bad_answer",
	"stream_connect_failed", "local_error",
};

static const char *const health_state_names[] = { "unknown", "up", "down" };

/* One target of one service. */
struct health_ep {
	struct health *h;
	uint64_t key; /* never reused: a stream's failure names its target by it */
	size_t svc;   /* index of its service in h->cfg->targets */
	const struct config_target *tg;
	const struct config_endpoint *e;
	SSL_CTX *tls; /* the service's TLS context, or NULL */
	enum health_state state;
	unsigned oks, fails; /* consecutive results */
	unsigned stream_fails; /* visitors' failed connects since one reached it or it rose */
	uint64_t results[HEALTH_NRESULTS];
	uint64_t streams;
	const char *reason; /* the last failure's name */
	struct event *timer; /* the next check, or the timeout of the check in flight */
	/* the check in flight */
	int fd;
	SSL *ssl;
	struct event *io;
	bool connecting, handshaking;
	char req[HEALTH_REQUEST_MAX];
	size_t reqlen, reqoff;
	char ans[HEALTH_ANSWER_MAX];
	size_t anslen;
};

struct health_svc {
	struct health *h;
	struct health_ep *ep[CONFIG_MAX_TARGETS];
	size_t nep;
	size_t rr; /* where the next pick starts */
	bool any_up;  /* a target is not down */
	bool up;      /* announced: any_up, and so for health_hold() since it last changed */
	struct event *hold; /* announces it again once the hold-down has passed */
};

struct health {
	struct event_base *base;
	void (*changed)(void *arg);
	void *arg;
	const struct config_agentd *cfg;
	struct health_svc *svcs; /* one per cfg->targets */
	size_t nsvcs;
	uint64_t next_key;
};

static void health_on_timer(evutil_socket_t fd, short what, void *arg);
static void health_on_io(evutil_socket_t fd, short what, void *arg);
static void health_svc_changed(struct health *h, size_t i);
static void health_ep_free(struct health_ep *ep);

static bool health_on(const struct health_ep *ep)
{
	return ep->tg->health == CONFIG_HEALTH_TCP || ep->tg->health == CONFIG_HEALTH_HTTP;
}

static void health_arm(struct health_ep *ep, double seconds)
{
	struct timeval tv = clock_tv(seconds);

	if (ep->timer == NULL) {
		ep->timer = evtimer_new(ep->h->base, health_on_timer, ep);
		if (ep->timer == NULL)
			xalloc_fail("event");
	}
	evtimer_add(ep->timer, &tv);
}

/* Ends the check in flight, if any: its socket is closed, nothing else changes. */
static void health_cancel(struct health_ep *ep)
{
	loop_free_event(&ep->io);
	if (ep->ssl != NULL) {
		SSL_free(ep->ssl);
		ep->ssl = NULL;
		ERR_clear_error();
	}
	if (ep->fd != -1) {
		close(ep->fd);
		ep->fd = -1;
	}
	ep->connecting = ep->handshaking = false;
	ep->reqoff = ep->anslen = 0;
}

static void health_log(const struct health_ep *ep, bool up)
{
	char target[LOG_VALUE_SIZE(CONFIG_LABEL_MAX)];

	log_value(target, sizeof(target), ep->e->label);
	if (up)
		log_info("event=target_up service=%s target=%s", ep->tg->name, target);
	else
		log_warn("event=target_down service=%s target=%s reason=%s", ep->tg->name, target,
			 ep->reason);
}

/* Counts a result and moves the target's state by it. */
static void health_result(struct health_ep *ep, enum health_result r)
{
	enum health_state was = ep->state;

	ep->results[r]++;
	if (r == HEALTH_LOCAL_ERROR)
		return; /* says nothing about the target */
	if (r == HEALTH_OK) {
		ep->fails = 0;
		ep->oks++;
		if (ep->state == HEALTH_UNKNOWN ||
		    (ep->state == HEALTH_DOWN && ep->oks >= ep->tg->health_rise)) {
			ep->state = HEALTH_UP;
			ep->stream_fails = 0;
		}
	} else {
		ep->oks = 0;
		ep->fails++;
		if (r == HEALTH_STREAM_FAILED)
			ep->stream_fails++; /* checks that pass between them do not wipe these */
		ep->reason = health_result_names[r];
		if (ep->state == HEALTH_UNKNOWN ||
		    (ep->state == HEALTH_UP && (ep->fails >= ep->tg->health_fall ||
						ep->stream_fails >= ep->tg->health_fall)))
			ep->state = HEALTH_DOWN;
	}
	if (ep->state != was) {
		health_log(ep, ep->state == HEALTH_UP);
		health_svc_changed(ep->h, ep->svc);
	}
}

/* The check in flight ended with r: the next one starts health_interval from now. */
static void health_done(struct health_ep *ep, enum health_result r)
{
	health_cancel(ep);
	health_arm(ep, ep->tg->health_interval);
	health_result(ep, r);
}

static void health_wait(struct health_ep *ep, short what)
{
	loop_free_event(&ep->io);
	ep->io = event_new(ep->h->base, ep->fd, what, health_on_io, ep);
	if (ep->io == NULL)
		xalloc_fail("event");
	event_add(ep->io, NULL);
}

/* The request of an http check: GET PATH with the Host the target expects. */
static void health_request(struct health_ep *ep)
{
	const char *host = ep->tg->tls_server_name != NULL    ? ep->tg->tls_server_name
			   : ep->e->kind == CONFIG_TARGET_TCP ? ep->e->label
							      : "localhost";
	int n = snprintf(ep->req, sizeof(ep->req),
			 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: netwall-health\r\n"
			 "Connection: close\r\n\r\n",
			 ep->tg->health_path, host);

	ep->reqlen = n > 0 && (size_t)n < sizeof(ep->req) ? (size_t)n : 0;
	ep->reqoff = 0;
}

/* Is the status line whole yet? 1: healthy, 0: not yet, -1 with *r set: failed. */
static int health_status(struct health_ep *ep, enum health_result *r)
{
	const char *end = memchr(ep->ans, '\n', ep->anslen);
	unsigned code;

	if (end == NULL) {
		*r = HEALTH_BAD_ANSWER;
		return ep->anslen == sizeof(ep->ans) ? -1 : 0;
	}
	/* "HTTP/1.x NNN" then a space (the reason) or CR: not "HTTP/1.1 2000" */
	if (end - ep->ans < 12 || memcmp(ep->ans, "HTTP/1.", 7) != 0 || ep->ans[8] != ' ' ||
	    ep->ans[9] < '1' || ep->ans[9] > '5' || ep->ans[10] < '0' || ep->ans[10] > '9' ||
	    ep->ans[11] < '0' || ep->ans[11] > '9' || (ep->ans[12] != ' ' && ep->ans[12] != '\r')) {
		*r = HEALTH_BAD_ANSWER;
		return -1;
	}
	code = (unsigned)(ep->ans[9] - '0') * 100 + (unsigned)(ep->ans[10] - '0') * 10 +
	       (unsigned)(ep->ans[11] - '0');
	*r = HEALTH_BAD_STATUS;
	return code >= 200 && code < 400 ? 1 : -1;
}

/* A read or write that returned n <= 0: true if it only has to wait (ep->io is then set
 * to wake it), false if the check failed. */
static bool health_again(struct health_ep *ep, int n, short what)
{
	if (ep->ssl != NULL) {
		int err = SSL_get_error(ep->ssl, n);
		if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
			return false;
		health_wait(ep, err == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
		return true;
	}
	if (n != -1 || (errno != EAGAIN && errno != EINTR))
		return false;
	health_wait(ep, what);
	return true;
}

/* Sends the request, then reads the answer's head. Returns a result, or -1 to wait for
 * what ep->io now waits for. */
static int health_exchange(struct health_ep *ep)
{
	enum health_result r;
	int n, st;

	while (ep->reqoff < ep->reqlen) {
		size_t left = ep->reqlen - ep->reqoff;
		n = ep->ssl ? SSL_write(ep->ssl, ep->req + ep->reqoff, (int)left)
			    : (int)write(ep->fd, ep->req + ep->reqoff, left);
		if (n <= 0)
			return health_again(ep, n, EV_WRITE) ? -1 : HEALTH_BAD_ANSWER;
		ep->reqoff += (size_t)n;
	}
	for (;;) {
		size_t room = sizeof(ep->ans) - ep->anslen;
		n = ep->ssl ? SSL_read(ep->ssl, ep->ans + ep->anslen, (int)room)
			    : (int)read(ep->fd, ep->ans + ep->anslen, room);
		if (n <= 0) /* or closed before its status line */
			return health_again(ep, n, EV_READ) ? -1 : HEALTH_BAD_ANSWER;
		ep->anslen += (size_t)n;
		st = health_status(ep, &r);
		if (st != 0)
			return st == 1 ? HEALTH_OK : (int)r;
	}
}

/* The TLS handshake of an http check. Returns 0 when done, -1 to wait, else a result. */
static int health_handshake(struct health_ep *ep)
{
	int rc, err;

	ERR_clear_error();
	rc = SSL_do_handshake(ep->ssl);
	if (rc == 1) {
		ep->handshaking = false;
		return 0;
	}
	err = SSL_get_error(ep->ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		health_wait(ep, err == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
		return -1;
	}
	return HEALTH_TLS_FAILED;
}

/* The connect is done: a tcp check has its answer; an http one goes on. */
static void health_step(struct health_ep *ep)
{
	int r;

	if (ep->connecting) {
		int err = sock_error(ep->fd);
		ep->connecting = false;
		if (err != 0 || ep->tg->health == CONFIG_HEALTH_TCP) {
			health_done(ep, err != 0 ? HEALTH_CONNECT_FAILED : HEALTH_OK);
			return;
		}
		if (ep->tls != NULL) {
			const char *name = ep->tg->tls_server_name ? ep->tg->tls_server_name
								   : ep->e->host;
			ep->ssl = SSL_new(ep->tls);
			if (ep->ssl == NULL || SSL_set_fd(ep->ssl, ep->fd) != 1)
				xalloc_fail("SSL");
			SSL_set_connect_state(ep->ssl);
			SSL_set_tlsext_host_name(ep->ssl, name);
			SSL_set1_host(ep->ssl, name);
			ep->handshaking = true;
		}
		health_request(ep);
	}
	if (ep->handshaking && (r = health_handshake(ep)) != 0) {
		if (r > 0)
			health_done(ep, (enum health_result)r);
		return;
	}
	r = health_exchange(ep);
	if (r >= 0)
		health_done(ep, (enum health_result)r);
}

static void health_on_io(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	health_step(arg);
}

static void health_start(struct health_ep *ep)
{
	const struct config_endpoint *e = ep->e;
	struct timeval tv = clock_tv(ep->tg->health_timeout);

	health_cancel(ep);
	ep->fd = e->kind == CONFIG_TARGET_TCP
			 ? sock_connect((const struct sockaddr *)&e->addr.ss, e->addr.len)
			 : sock_connect_unix(e->unix_path);
	if (ep->fd == -1) {
		health_done(ep, sock_local_error(errno) ? HEALTH_LOCAL_ERROR : HEALTH_CONNECT_FAILED);
		return;
	}
	ep->connecting = true;
	evtimer_add(ep->timer, &tv); /* the check's deadline */
	health_wait(ep, EV_WRITE);
}

/* The timer: a check is due, or the one in flight took health_timeout. */
static void health_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct health_ep *ep = arg;

	(void)fd;
	(void)what;
	if (ep->fd != -1)
		health_done(ep, HEALTH_TIMEOUT);
	else if (health_on(ep))
		health_start(ep);
}

/* ---- services ---- */

/* How long a service whose targets were all down must have a target up before it is
 * announced again: health_interval * health_rise, at least HEALTH_HOLD_MIN seconds. */
static double health_hold(const struct config_target *tg)
{
	double d = tg->health_interval * tg->health_rise;

	return d > HEALTH_HOLD_MIN ? d : HEALTH_HOLD_MIN;
}

static bool health_any_up(const struct health_svc *s)
{
	for (size_t i = 0; i < s->nep; i++)
		if (s->ep[i]->state != HEALTH_DOWN)
			return true;
	return false;
}

static void health_on_hold(evutil_socket_t fd, short what, void *arg)
{
	struct health_svc *s = arg;

	(void)fd;
	(void)what;
	if (s->any_up && !s->up) {
		s->up = true;
		s->h->changed(s->h->arg);
	}
}

/* A target of service i changed state. A service with every target down is withdrawn at
 * once; one with a target back is announced again only once that has held for
 * health_hold() since its last change (each change starts the wait over on the one
 * timer), so a flapping target costs the gateways one withdraw, not a re-hello a check. */
static void health_svc_changed(struct health *h, size_t i)
{
	struct health_svc *s = &h->svcs[i];
	struct timeval tv;
	bool any = health_any_up(s);

	if (any == s->any_up)
		return;
	s->any_up = any;
	if (!any) {
		if (s->hold != NULL)
			evtimer_del(s->hold);
		if (s->up) {
			s->up = false;
			h->changed(h->arg);
		}
		return;
	}
	if (s->hold == NULL) {
		s->hold = evtimer_new(h->base, health_on_hold, s);
		if (s->hold == NULL)
			xalloc_fail("event");
	}
	tv = clock_tv(health_hold(&h->cfg->targets[i]));
	evtimer_add(s->hold, &tv);
}

static void health_svcs_free(struct health_svc *svcs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < svcs[i].nep; j++)
			health_ep_free(svcs[i].ep[j]);
		loop_free_event(&svcs[i].hold);
	}
	free(svcs);
}

/* ---- targets ---- */

static struct health_ep *health_ep_new(struct health *h)
{
	struct health_ep *ep = xcalloc(1, sizeof(*ep));

	ep->h = h;
	ep->key = ++h->next_key;
	ep->fd = -1;
	return ep;
}

static void health_ep_free(struct health_ep *ep)
{
	if (ep == NULL)
		return;
	health_cancel(ep);
	loop_free_event(&ep->timer);
	free(ep);
}

static bool health_same(const struct config_endpoint *a, const struct config_endpoint *b)
{
	if (a->kind != b->kind)
		return false;
	return a->kind == CONFIG_TARGET_UNIX ? strcmp(a->unix_path, b->unix_path) == 0
					     : addr_equal(&a->addr, &b->addr);
}

/* Takes the target of old that is e of service name out of old, or returns NULL. */
static struct health_ep *health_take(struct health_svc *old, size_t nold, const char *name,
				     const struct config_endpoint *e)
{
	for (size_t i = 0; i < nold; i++) {
		struct health_svc *s = &old[i];
		for (size_t j = 0; j < s->nep; j++) {
			struct health_ep *ep = s->ep[j];
			if (ep == NULL || strcmp(ep->tg->name, name) != 0 || !health_same(ep->e, e))
				continue;
			s->ep[j] = NULL;
			return ep;
		}
	}
	return NULL;
}

struct health *health_new(struct event_base *base, void (*changed)(void *arg), void *arg)
{
	struct health *h = xcalloc(1, sizeof(*h));

	h->base = base;
	h->changed = changed;
	h->arg = arg;
	return h;
}

void health_apply(struct health *h, const struct config_agentd *cfg, SSL_CTX *const *tls)
{
	struct health_svc *old = h->svcs;
	size_t nold = h->nsvcs;

	h->svcs = xcalloc(cfg->ntargets + 1, sizeof(*h->svcs));
	h->nsvcs = cfg->ntargets;
	h->cfg = cfg;
	for (size_t i = 0; i < cfg->ntargets; i++) {
		const struct config_target *tg = &cfg->targets[i];
		struct health_svc *s = &h->svcs[i];
		s->h = h;
		s->nep = tg->nep;
		for (size_t j = 0; j < tg->nep; j++) {
			struct health_ep *ep = health_take(old, nold, tg->name, &tg->ep[j]);
			if (ep == NULL)
				ep = health_ep_new(h);
			health_cancel(ep);
			ep->svc = i;
			ep->tg = tg;
			ep->e = &tg->ep[j];
			ep->tls = tls[i];
			s->ep[j] = ep;
			if (health_on(ep)) {
				health_arm(ep, 0);
			} else {
				loop_free_event(&ep->timer);
				ep->state = HEALTH_UNKNOWN; /* never checked: always picked */
			}
		}
		s->any_up = s->up = health_any_up(s); /* a reload announces at once */
	}
	health_svcs_free(old, nold);
}

void health_free(struct health *h)
{
	if (h == NULL)
		return;
	health_svcs_free(h->svcs, h->nsvcs);
	free(h);
}

int health_pick(struct health *h, size_t svc, uint64_t avoid, uint64_t *key)
{
	struct health_svc *s = &h->svcs[svc];

	/* targets known up first; those not checked yet only when none is known up */
	for (int pass = HEALTH_UP; pass >= (int)HEALTH_UNKNOWN; pass--) {
		for (size_t k = 0; k < s->nep; k++) {
			size_t i = (s->rr + k) % s->nep;
			if ((int)s->ep[i]->state != pass || s->ep[i]->key == avoid)
				continue;
			s->rr = i + 1;
			s->ep[i]->streams++;
			*key = s->ep[i]->key;
			return (int)i;
		}
	}
	return -1;
}

bool health_service_up(const struct health *h, size_t svc)
{
	return h->svcs[svc].up;
}

int health_connect_failed(struct health *h, uint64_t key)
{
	for (size_t i = 0; i < h->nsvcs; i++) {
		for (size_t j = 0; j < h->svcs[i].nep; j++) {
			struct health_ep *ep = h->svcs[i].ep[j];
			if (ep->key != key)
				continue;
			if (health_on(ep)) {
				if (ep->fd == -1)
					health_arm(ep, 0); /* check now */
				health_result(ep, HEALTH_STREAM_FAILED);
			}
			return (int)i;
		}
	}
	return -1;
}

void health_stream_ok(struct health *h, uint64_t key)
{
	for (size_t i = 0; i < h->nsvcs; i++)
		for (size_t j = 0; j < h->svcs[i].nep; j++)
			if (h->svcs[i].ep[j]->key == key)
				h->svcs[i].ep[j]->stream_fails = 0;
}

/* ---- views ---- */

static void health_up_read(struct metric_out *o, void *base)
{
	const struct health *h = base;

	for (size_t i = 0; i < h->nsvcs; i++)
		for (size_t j = 0; j < h->svcs[i].nep; j++) {
			const struct health_ep *ep = h->svcs[i].ep[j];
			metric_emit2(o, ep->tg->name, ep->e->label, ep->state != HEALTH_DOWN);
		}
}

static void health_streams_read(struct metric_out *o, void *base)
{
	const struct health *h = base;

	for (size_t i = 0; i < h->nsvcs; i++)
		for (size_t j = 0; j < h->svcs[i].nep; j++) {
			const struct health_ep *ep = h->svcs[i].ep[j];
			metric_emit2(o, ep->tg->name, ep->e->label, ep->streams);
		}
}

static void health_checks_read(struct metric_out *o, void *base)
{
	const struct health *h = base;

	for (size_t i = 0; i < h->nsvcs; i++)
		for (size_t j = 0; j < h->svcs[i].nep; j++) {
			const struct health_ep *ep = h->svcs[i].ep[j];
			if (!health_on(ep))
				continue;
			for (size_t r = 0; r < HEALTH_NRESULTS; r++)
				metric_emit3(o, ep->tg->name, ep->e->label, health_result_names[r],
					     ep->results[r]);
		}
}

static const struct metric health_metrics[] = {
	{ "netwall_agent_target_up", METRIC_GAUGE,
	  "1 if a service's target takes new streams (up, or not checked), 0 if down.", "service",
	  METRIC_READ(health_up_read), .label2 = "target" },
	{ "netwall_agent_target_streams_total", METRIC_COUNTER,
	  "Streams sent to a service's target.", "service", METRIC_READ(health_streams_read),
	  .label2 = "target" },
	{ "netwall_agent_target_checks_total", METRIC_COUNTER,
	  "Health checks of a service's target, by result (visitors' failed connects included).",
	  "service", METRIC_READ(health_checks_read), .label2 = "target", .label3 = "result" },
};

void health_register_metrics(struct metrics *m, struct health *h)
{
	metrics_add(m, health_metrics, sizeof(health_metrics) / sizeof(health_metrics[0]), h);
}

json_t *health_json(const struct health *h)
{
	json_t *out = json_object();

	for (size_t i = 0; i < h->nsvcs; i++) {
		json_t *list = json_array();
		for (size_t j = 0; j < h->svcs[i].nep; j++) {
			const struct health_ep *ep = h->svcs[i].ep[j];
			json_array_append_new(
				list, json_pack("{s:s,s:s,s:b,s:I,s:s?}", "target", ep->e->label,
						"state", health_on(ep) ? health_state_names[ep->state]
								       : "unchecked",
						"up", ep->state != HEALTH_DOWN, "streams",
						(json_int_t)ep->streams, "last_failure", ep->reason));
		}
		json_object_set_new(out, h->cfg->targets[i].name, list);
	}
	return out;
}

void health_page(struct evbuffer *out, const struct health *h)
{
	evbuffer_add_printf(out, "<h2>Services</h2><table id=\"targets\"><tr><th>service</th>"
				 "<th>target</th><th>state</th><th>streams</th><th>last failure"
				 "</th></tr>\n");
	for (size_t i = 0; i < h->nsvcs; i++) {
		for (size_t j = 0; j < h->svcs[i].nep; j++) {
			const struct health_ep *ep = h->svcs[i].ep[j];
			const char *st = health_on(ep) ? health_state_names[ep->state] : "unchecked";
			evbuffer_add_printf(out, "<tr><td>%s</td><td>", ep->tg->name);
			page_esc(out, ep->e->label);
			evbuffer_add_printf(out,
					    "%s</td><td class=\"%s\">%s</td><td class=\"n\">%llu"
					    "</td><td>%s</td></tr>\n",
					    ep->tg->tls ? " (TLS)" : "",
					    ep->state == HEALTH_DOWN ? "down" : "up", st,
					    (unsigned long long)ep->streams,
					    ep->reason ? ep->reason : "");
		}
	}
	evbuffer_add_printf(out, "</table>\n");
}
