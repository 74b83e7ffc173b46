/* The gateway's running part: the agents' tunnels (admission of handshakes, replacement of
 * stale registrations), the visitors' listeners and their services, the pick of a tunnel
 * for each visitor, and the daemon role (build, reload, drain, free). Agents' certificates
 * are gateway_auth.c's, the admin views gateway_status.c's. */
#include "wall/gateway.h"

#include <netinet/in.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/daemon.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/page.h"
#include "core/sock.h"
#include "core/tls.h"
#include "core/xalloc.h"
#include "wall/budget.h"
#include "wall/gateway_auth.h"
#include "wall/gateway_handover.h"
#include "wall/gateway_route.h"
#include "wall/gateway_state.h"
#include "wall/gateway_status.h"
#include "wall/share.h"
#include "wall/stream.h"
#include "wall/tunnel.h"

#define GW_MAX_PENDING 256        /* connections in their handshake, all together */
#define GW_MAX_PENDING_PER_NET 16  /* ... from one /24 or /64 */
#define GW_PER_SOURCE_MIN 8     /* the default max_per_source: a quarter of max_connections, */
#define GW_PER_SOURCE_MAX 256   /* ... at least 8 (or all, if fewer), at most 256 */
#define GW_SERVICES_SHOWN 512   /* bytes of an agent's services list that reach the log */
#define GW_SUPERSEDE_PROBE 2.0  /* seconds an agent's other instance has to answer a PING */

static const struct tunnel_ops gw_tunnel_ops;

/* ---- tunnels ---- */

static void gw_tunnel_up(struct tunnel *t, void *arg)
{
	struct gateway *gw = arg;
	char services[LOG_VALUE_SIZE(GW_SERVICES_SHOWN)];

	/* A reconnecting agent replaces its stale registration at once: same identity and
	 * slot. Another instance of the same identity is a new process: it takes the new
	 * visitors, while the old one's tunnels finish their streams (it may be handing over)
	 * or, if it is gone without a close, fail a PING and close. A tunnel of the slot moved in
	 * a handover that came back retires: it closes once empty. */
	for (size_t i = gw->ntunnels; i-- > 0;) { /* backwards: closing swaps the last in */
		struct tunnel *u = gw->tunnels[i];
		if (u == t || strcmp(tunnel_peer(u), tunnel_peer(t)) != 0 ||
		    tunnel_instance(u)[0] == '\0')
			continue;
		if (strcmp(tunnel_instance(u), tunnel_instance(t)) != 0)
			tunnel_supersede(u, GW_SUPERSEDE_PROBE);
		else if (tunnel_slot(u) == tunnel_slot(t) && tunnel_is_moved(u))
			tunnel_retire(u);
		else if (tunnel_slot(u) == tunnel_slot(t) && !tunnel_is_retiring(u))
			tunnel_close(u, "replaced");
	}
	gateway_handover_tunnel_up(gw, t);
	log_info("event=tunnel_up agent=%s peer=%s slot=%u services=%s", tunnel_peer(t),
		 tunnel_peer_addr(t), tunnel_slot(t),
		 log_value(services, sizeof(services), tunnel_services(t)));
}

static void gw_tunnel_draining(struct tunnel *t, void *arg)
{
	(void)arg;
	log_info("event=tunnel_draining agent=%s peer=%s slot=%u", tunnel_peer(t),
		 tunnel_peer_addr(t), tunnel_slot(t));
}

static void gw_tunnel_down(struct tunnel *t, const char *reason, void *arg)
{
	struct gateway *gw = arg;

	for (size_t i = 0; i < gw->ntunnels; i++) {
		if (gw->tunnels[i] == t) {
			gw->tunnels[i] = gw->tunnels[--gw->ntunnels];
			break;
		}
	}
	if (tunnel_instance(t)[0] != '\0')
		log_info("event=tunnel_down agent=%s peer=%s slot=%u reason=%s", tunnel_peer(t),
			 tunnel_peer_addr(t), tunnel_slot(t), reason);
}

static void gw_service_unref(struct gw_service *svc);

static void gw_stream_done(struct tunnel *t, void *owner, void *arg)
{
	struct gw_visitor *vis = owner;
	struct gw_service *svc;

	(void)t;
	(void)arg;
	if (vis == NULL)
		return;
	svc = vis->svc;
	listener_set_release(svc->set, vis->src);
	free(vis);
	svc->open--;
	if (svc->removed && svc->open == 0)
		gw_service_unref(svc);
}

static const struct tunnel_ops gw_tunnel_ops = {
	.up = gw_tunnel_up,
	.draining = gw_tunnel_draining,
	.down = gw_tunnel_down,
	.stream_done = gw_stream_done,
};

/* Picks the tunnel for a new visitor: among up tunnels of agents allowed for the service
 * that announced it, the one with the fewest streams, starting the scan at a rotating
 * index so ties spread. */
static struct tunnel *gw_pick(struct gateway *gw, struct gw_service *svc)
{
	struct tunnel *best = NULL;
	size_t n = gw->ntunnels;

	for (size_t k = 0; k < n; k++) {
		struct tunnel *t = gw->tunnels[(svc->rr + k) % n];
		bool allowed = false;
		if (!tunnel_is_up(t) || !tunnel_serves(t, svc->cfg.name))
			continue;
		for (size_t j = 0; j < svc->cfg.nagents && !allowed; j++)
			allowed = strcmp(svc->cfg.agents[j], tunnel_peer(t)) == 0;
		if (!allowed)
			continue;
		/* a retiring tunnel only when nothing else can take the visitor, and never a spent
		 * one (tunnel.h) */
		if (tunnel_is_spent(t))
			continue;
		if (best == NULL || (tunnel_is_retiring(best) && !tunnel_is_retiring(t)) ||
		    (tunnel_is_retiring(best) == tunnel_is_retiring(t) &&
		     tunnel_nstreams(t) < tunnel_nstreams(best)))
			best = t;
	}
	svc->rr++;
	return best;
}

/* ---- listeners ---- */

/* Counts a refusal of host for the status page: a known (host, service, reason) goes up,
 * a new one takes the place of the least recent. */
static void gw_note_refused(struct gateway *gw, const struct sockaddr *sa, const char *service,
			    const char *reason)
{
	struct gw_refused *r = &gw->refused[0];
	char host[ADDR_STRLEN];

	addr_format_host(sa, host, sizeof(host));
	for (size_t i = 0; i < GW_REFUSED_KEPT; i++) {
		struct gw_refused *x = &gw->refused[i];
		if (x->count > 0 && x->reason == reason && strcmp(x->host, host) == 0 &&
		    strcmp(x->service, service) == 0) {
			r = x;
			goto found;
		}
		if (x->last < r->last)
			r = x;
	}
	memset(r, 0, sizeof(*r));
	snprintf(r->host, sizeof(r->host), "%s", host);
	snprintf(r->service, sizeof(r->service), "%s", service);
	r->reason = reason;
found:
	r->count++;
	r->last = clock_wall();
}

/* A service's admission refused a visitor (allowlist, max_connections, max_per_source). */
static void gw_service_refused(struct gw_service *svc, const struct sockaddr *sa,
			       enum listener_reason r)
{
	if (r == LISTENER_NOT_ALLOWED)
		svc->rejected[GW_REJ_SOURCE]++;
	else if (r == LISTENER_MAX_CONNECTIONS)
		svc->rejected[GW_REJ_LIMIT]++;
	else if (r == LISTENER_FIRST_BYTE_TIMEOUT)
		svc->rejected[GW_REJ_FIRST_BYTE]++;
	else
		svc->rejected[GW_REJ_PER_SOURCE]++;
	gw_note_refused(svc->gw, sa, svc->cfg.name, listener_reason_names[r]);
}

/* The listener refused a visitor. */
static void gw_on_refused(void *arg, const struct sockaddr *sa, enum listener_reason r)
{
	struct gw_listener *gl = arg;

	if (gl->svc != NULL)
		gw_service_refused(gl->svc, sa, r);
}

/* Hands the visitor on fd, admitted by svc's set (src), to a tunnel, with the bytes early
 * already read from it (their budget count passes to the stream, or is given back). */
static void gw_visit(struct gw_service *svc, const struct listener *l, int fd,
		     const struct sockaddr *sa, struct listener_src *src, const uint8_t *early,
		     size_t nearly)
{
	struct gw_visitor *vis;
	struct tunnel_visit v;
	socklen_t len = sizeof(v.dst);
	struct tunnel *t;

	memset(&v, 0, sizeof(v));
	v.service = svc->cfg.name;
	v.proxy = svc->cfg.proxy;
	v.idle_timeout = svc->cfg.idle_timeout;
	v.bytes = svc->bytes;
	v.rate = &svc->rate;
	v.visitor_rate = svc->cfg.visitor_rate_limit;
	v.early = early;
	v.nearly = nearly;
	memcpy(&v.src, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						     : sizeof(struct sockaddr_in));
	/* the address the visitor reached: the listener's own, unless it is a wildcard */
	if (!listener_wildcard(l) || getsockname(fd, (struct sockaddr *)&v.dst, &len) == -1)
		memcpy(&v.dst, &listener_addr(l)->ss, sizeof(v.dst));
	sock_nodelay(fd);
	vis = xmalloc(sizeof(*vis));
	vis->svc = svc;
	vis->src = src;
	t = gw_pick(svc->gw, svc);
	if (t == NULL || tunnel_open(t, fd, &v, vis) == -1) {
		free(vis);
		share_give(nearly, 0);
		svc->rejected[GW_REJ_NO_AGENT]++;
		gw_note_refused(svc->gw, sa, svc->cfg.name, "no_agent");
		listener_set_refuse(svc->set, src, sa, "no_agent");
		sock_abort(fd);
		return;
	}
	svc->open++;
	svc->connections++;
	minutes_add(&svc->gw->visits, clock_wall(), 1);
	if (log_enabled(LOG_DEBUG)) {
		char peer[ADDR_STRLEN];
		addr_format(sa, peer, sizeof(peer));
		log_debug("event=visitor service=%s peer=%s agent=%s", svc->cfg.name, peer,
			  tunnel_peer(t));
	}
}

static void gw_evict(struct gateway *gw, struct tunnel *t)
{
	tunnel_stats.handshake_failures++;
	log_limited(&gw->rate_reject, LOG_WARN, "event=handshake_failed peer=%s reason=evicted",
		    tunnel_peer_addr(t));
	tunnel_close(t, "evicted");
}

/* Handshakes not yet done: one network (a /24 or a /64) may hold GW_MAX_PENDING_PER_NET of
 * them, and all together GW_MAX_PENDING; past either, the oldest (of that network, or of
 * all) is dropped to make room, never the newest: a real agent finishes its handshake in
 * milliseconds, while a squatter holds its slot for the timeout, so silent connections
 * from the agent's own network cannot lock it out. Returns the reason to refuse the new
 * connection, or NULL. */
static const char *gw_admit_pending(struct gateway *gw, const struct sockaddr *sa)
{
	struct tunnel *oldest = NULL, *oldest_net = NULL;
	unsigned same = 0, pending = 0;

	for (size_t i = 0; i < gw->ntunnels; i++) {
		struct tunnel *t = gw->tunnels[i];
		if (tunnel_is_established(t))
			continue;
		pending++;
		if (oldest == NULL || tunnel_age(t) > tunnel_age(oldest))
			oldest = t;
		if (!addr_same_net((const struct sockaddr *)tunnel_peer_sockaddr(t), sa, 24, 64))
			continue;
		same++;
		if (oldest_net == NULL || tunnel_age(t) > tunnel_age(oldest_net))
			oldest_net = t;
	}
	if (same >= GW_MAX_PENDING_PER_NET) {
		gw_evict(gw, oldest_net);
		pending--;
		if (oldest == oldest_net)
			oldest = NULL;
	}
	if (pending >= GW_MAX_PENDING && oldest != NULL)
		gw_evict(gw, oldest);
	if (gw->ntunnels == GW_MAX_TUNNELS)
		return "tunnels_full";
	return NULL;
}

static void gw_on_agent(struct gw_listener *gl, int fd, const struct sockaddr *sa)
{
	struct gateway *gw = gl->gw;
	char peer[ADDR_STRLEN];
	struct tunnel *t;
	const char *refuse = gw->draining ? "draining" : gw_admit_pending(gw, sa);

	if (refuse != NULL) {
		addr_format(sa, peer, sizeof(peer));
		tunnel_stats.handshake_failures++;
		log_limited(&gw->rate_reject, LOG_WARN, "event=handshake_failed peer=%s reason=%s",
			    peer, refuse);
		close(fd);
		return;
	}
	sock_nodelay(fd);
	t = tunnel_new(gw->base, TUNNEL_GATEWAY, fd, gw->ctx, &gw->cfg->c.tp, &gw_tunnel_ops, gw);
	gw->tunnels[gw->ntunnels++] = t;
}

static void gw_on_accept(void *arg, int fd, const struct sockaddr *sa, struct listener_src *src)
{
	struct gw_listener *gl = arg;

	if (gl->svc == NULL) {
		/* tunnels are admitted by their own pending-handshake rules (gw_admit_pending) */
		listener_set_release(gl->gw->tunnel_set, src);
		gw_on_agent(gl, fd, sa);
	} else if (gl->gw->draining && !gl->gw->handed_over) {
		listener_set_refuse(gl->svc->set, src, sa, "draining");
		sock_abort(fd);
	} else {
		gw_visit(gl->svc, gl->l, fd, sa, src, NULL, 0);
	}
}

/* A visitor of a shared address named svc: admitted by svc's limits, then handed over. */
static void gw_route_visit(struct gateway *gw, struct gw_service *svc, const struct listener *l,
			   int fd, const struct sockaddr *sa, const uint8_t *early, size_t nearly)
{
	enum listener_reason why = LISTENER_REFUSED_BY_OWNER;
	bool refuse = gw->draining && !gw->handed_over;
	struct listener_src *src = refuse ? NULL : listener_set_admit(svc->set, sa, &why);
	char peer[ADDR_STRLEN];

	if (src == NULL) {
		if (!refuse)
			gw_service_refused(svc, sa, why);
		addr_format(sa, peer, sizeof(peer));
		log_limited(&gw->rate_reject, LOG_WARN,
			    "event=visitor_rejected service=%s peer=%s reason=%s", svc->cfg.name,
			    peer, refuse ? "draining" : listener_reason_names[why]);
		share_give(nearly, 0);
		close(fd);
		return;
	}
	gw_visit(svc, l, fd, sa, src, early, nearly);
}

static const struct gateway_route_ops gw_route_ops = {
	.visit = gw_route_visit,
	.refused = gw_note_refused,
};

static struct gw_listener *gw_listen(struct gateway *gw, struct gw_service *svc,
				     const struct addr *a)
{
	struct gw_listener *gl = xcalloc(1, sizeof(*gl));
	char err[256];

	gl->gw = gw;
	gl->svc = svc;
	gl->l = listener_new(gw->base, a, svc != NULL ? svc->set : gw->tunnel_set, gw_on_accept,
			     gw_on_refused, gl, err, sizeof(err));
	if (gl->l == NULL) {
		log_error("event=listen_failed service=%s error=\"%s\"",
			  svc ? svc->cfg.name : "(tunnel)", err);
		free(gl);
		return NULL;
	}
	return gl;
}

static void gw_listener_free(struct gw_listener *gl)
{
	if (gl == NULL)
		return;
	listener_free(gl->l);
	free(gl);
}

/* Makes *ls listen exactly on want[], keeping listeners whose address stays. Listeners
 * are opened before any is closed, so a failure changes nothing. */
static int gw_sync_listeners(struct gateway *gw, struct gw_service *svc, struct gw_listener **ls,
			     size_t *nls, const struct addr *want, size_t nwant)
{
	struct gw_listener *next[CONFIG_MAX_LIST] = { 0 };
	bool kept[CONFIG_MAX_LIST] = { 0 };

	for (size_t i = 0; i < nwant; i++) {
		for (size_t j = 0; j < *nls && next[i] == NULL; j++) {
			if (!kept[j] && addr_equal(listener_addr(ls[j]->l), &want[i])) {
				next[i] = ls[j];
				kept[j] = true;
			}
		}
		if (next[i] == NULL && (next[i] = gw_listen(gw, svc, &want[i])) == NULL) {
			for (size_t k = 0; k < i; k++) {
				bool old = false;
				for (size_t j = 0; j < *nls; j++)
					old |= ls[j] == next[k];
				if (!old)
					gw_listener_free(next[k]);
			}
			return -1;
		}
	}
	for (size_t j = 0; j < *nls; j++)
		if (!kept[j])
			gw_listener_free(ls[j]);
	memcpy(ls, next, sizeof(next));
	*nls = nwant;
	for (size_t i = 0; i < nwant; i++)
		ls[i]->svc = svc;
	return 0;
}

/* ---- services ---- */

static void gw_service_unref(struct gw_service *svc)
{
	for (size_t i = 0; i < svc->nls; i++)
		gw_listener_free(svc->ls[i]);
	listener_set_free(svc->set);
	rate_share_free(&svc->rate);
	free(svc);
}

/* The admission limits of a service. max_per_source defaults to a quarter of
 * max_connections, at least GW_PER_SOURCE_MIN (or max_connections when smaller), at most
 * GW_PER_SOURCE_MAX. */
static void gw_limits(const struct config_service *c, struct listener_limits *lim)
{
	uint64_t floor = c->max_connections < GW_PER_SOURCE_MIN ? c->max_connections
								 : GW_PER_SOURCE_MIN;
	uint64_t share = c->max_connections / 4;

	if (share < floor)
		share = floor;
	if (share > GW_PER_SOURCE_MAX)
		share = GW_PER_SOURCE_MAX;
	memset(lim, 0, sizeof(*lim));
	lim->max_connections = (unsigned)c->max_connections;
	lim->max_per_source = (unsigned)(c->max_per_source != 0 ? c->max_per_source : share);
	lim->first_byte_timeout = c->first_byte_timeout;
	lim->v4_prefix = c->source_prefix_v4;
	lim->v6_prefix = c->source_prefix_v6;
	lim->allow = c->allow;
	lim->nallow = c->nallow;
}

static struct gw_service *gw_find_service(struct gateway *gw, const char *name)
{
	for (size_t i = 0; i < gw->nsvcs; i++)
		if (strcmp(gw->svcs[i]->cfg.name, name) == 0)
			return gw->svcs[i];
	return NULL;
}

/* The waiting visitors' limits of shared address a: the sum of its services'
 * max_connections, the largest max_per_source, the first service's source networks; no
 * allowlist (each service's own applies once the name picks it). */
static void gw_route_limits(const struct config_gateway *cfg, const struct addr *a,
			    struct listener_limits *lim)
{
	struct listener_limits one;
	bool first = true;

	memset(lim, 0, sizeof(*lim));
	for (size_t i = 0; i < cfg->nservices; i++) {
		const struct config_service *c = &cfg->services[i];
		bool here = false;
		for (size_t j = 0; j < c->nlisten && !here; j++)
			here = addr_equal(&c->listen[j], a);
		if (!here || c->route == CONFIG_ROUTE_NONE)
			continue;
		gw_limits(c, &one);
		lim->max_connections += one.max_connections;
		if (one.max_per_source > lim->max_per_source)
			lim->max_per_source = one.max_per_source;
		if (first) {
			lim->v4_prefix = one.v4_prefix;
			lim->v6_prefix = one.v6_prefix;
			first = false;
		}
	}
}

/* The route of a (and kind) among r[0..n), not yet taken; NULL if none. */
static struct gateway_route *gw_find_route(struct gateway_route **r, size_t n, bool *taken,
					   const struct addr *a, enum config_route kind)
{
	for (size_t i = 0; i < n; i++) {
		if (!taken[i] && gateway_route_kind(r[i]) == kind &&
		    addr_equal(gateway_route_addr(r[i]), a)) {
			taken[i] = true;
			return r[i];
		}
	}
	return NULL;
}

/* Makes gw->routes the shared addresses of cfg, keeping those that stay (their waiting
 * visitors too). On failure nothing has changed. */
static int gw_sync_routes(struct gateway *gw, const struct config_gateway *cfg)
{
	struct gateway_route **next = NULL;
	bool *taken = xcalloc(gw->nroutes + 1, sizeof(*taken));
	size_t nnext = 0;
	struct listener_limits lim;
	char err[256];

	for (size_t i = 0; i < cfg->nservices; i++) {
		const struct config_service *c = &cfg->services[i];
		for (size_t j = 0; c->route != CONFIG_ROUTE_NONE && j < c->nlisten; j++) {
			struct gateway_route *r = NULL;
			for (size_t k = 0; k < nnext && r == NULL; k++)
				if (addr_equal(gateway_route_addr(next[k]), &c->listen[j]))
					r = next[k];
			if (r != NULL)
				continue;
			gw_route_limits(cfg, &c->listen[j], &lim);
			r = gw_find_route(gw->routes, gw->nroutes, taken, &c->listen[j], c->route);
			if (r != NULL)
				gateway_route_set_limits(r, &lim);
			else if ((r = gateway_route_new(gw, &c->listen[j], c->route, &lim,
							&gw_route_ops, err, sizeof(err))) == NULL)
				goto fail;
			next = xrealloc(next, (nnext + 1) * sizeof(*next));
			next[nnext++] = r;
		}
	}
	for (size_t k = 0; k < gw->nroutes; k++)
		if (!taken[k])
			gateway_route_free(gw->routes[k]);
	free(gw->routes);
	free(taken);
	gw->routes = next;
	gw->nroutes = nnext;
	return 0;
fail:
	log_error("event=listen_failed what=shared error=\"%s\"", err);
	for (size_t k = 0; k < nnext; k++) {
		bool old = false;
		for (size_t m = 0; m < gw->nroutes; m++)
			old |= gw->routes[m] == next[k];
		if (!old)
			gateway_route_free(next[k]);
	}
	free(next);
	free(taken);
	return -1;
}

/* Applies cfg's listeners and services. On failure nothing has changed. */
static int gw_apply(struct gateway *gw, const struct config_gateway *cfg)
{
	struct gw_service **next = xcalloc(cfg->nservices + 1, sizeof(*next));
	struct gw_listener *tls[CONFIG_MAX_LIST];
	struct listener_limits lim;
	size_t ntls = gw->ntls;
	size_t i;

	memcpy(tls, gw->tls, sizeof(tls));
	for (i = 0; i < cfg->nservices; i++) {
		struct gw_service *old = gw_find_service(gw, cfg->services[i].name);
		struct gw_service *svc = old;
		if (svc == NULL) {
			char name[CONF_NAME_MAX + 16];
			svc = xcalloc(1, sizeof(*svc));
			svc->gw = gw;
			rate_share_init(&svc->rate, gw->base);
			svc->cfg = cfg->services[i];
			gw_limits(&svc->cfg, &lim);
			snprintf(name, sizeof(name), "service=%s", svc->cfg.name);
			svc->set = listener_set_new("visitor_rejected", name, &lim);
		}
		/* a service routed by name listens through its address's route */
		if (gw_sync_listeners(gw, svc, svc->ls, &svc->nls, cfg->services[i].listen,
				      cfg->services[i].route != CONFIG_ROUTE_NONE
					      ? 0
					      : cfg->services[i].nlisten) == -1) {
			if (old == NULL)
				gw_service_unref(svc);
			goto fail;
		}
		next[i] = svc;
	}
	if (gw_sync_routes(gw, cfg) == -1 ||
	    gw_sync_listeners(gw, NULL, tls, &ntls, cfg->listen, cfg->nlisten) == -1)
		goto fail;
	/* every bind succeeded: only now do the services take their new settings */
	for (i = 0; i < cfg->nservices; i++) {
		next[i]->cfg = cfg->services[i];
		gw_limits(&next[i]->cfg, &lim);
		listener_set_limits(next[i]->set, &lim);
		for (int d = 0; d < 2; d++)
			rate_bucket_set(&next[i]->rate.b[d], next[i]->cfg.rate_limit, clock_mono());
		next[i]->rate.visitor_rate = next[i]->cfg.visitor_rate_limit;
	}
	memcpy(gw->tls, tls, sizeof(tls));
	gw->ntls = ntls;
	for (size_t k = 0; k < gw->nsvcs; k++) {
		struct gw_service *svc = gw->svcs[k];
		bool stays = false;
		for (size_t j = 0; j < cfg->nservices; j++)
			stays |= next[j] == svc;
		if (stays)
			continue;
		for (size_t j = 0; j < svc->nls; j++)
			gw_listener_free(svc->ls[j]);
		svc->nls = 0;
		svc->removed = true;
		if (svc->open == 0)
			gw_service_unref(svc);
	}
	free(gw->svcs);
	gw->svcs = next;
	gw->nsvcs = cfg->nservices;
	return 0;
fail:
	/* services created in this pass that were not kept are freed; kept ones are intact
	 * except for listeners already synced, which match the new config: acceptable, as a
	 * failed bind is reported and the operator fixes the address. */
	for (size_t k = 0; k < i; k++)
		if (gw_find_service(gw, next[k]->cfg.name) == NULL)
			gw_service_unref(next[k]);
	free(next);
	return -1;
}

/* ---- the role ---- */

/* Tunnels of agents no longer allowed, whose certificate changed, or (CA mode) whose
 * certificate no longer verifies against ctx, say because the CRL now revokes it, go. So do
 * those still in their handshake: their SSL verifies against the old context's store (the
 * old CRL); the agent dials again and meets the new one. */
static void gw_recheck_tunnels(struct gateway *gw, const struct config_gateway *cfg, SSL_CTX *ctx)
{
	for (size_t i = gw->ntunnels; i-- > 0;) {
		struct tunnel *t = gw->tunnels[i];
		const struct config_agent *ag = config_find_agent(cfg, tunnel_peer(t));
		uint8_t fp[TLS_FP_LEN];
		int err;
		if (!tunnel_is_established(t)) {
			tunnel_close(t, "reload");
			continue;
		}
		if (tunnel_peer(t)[0] == '\0')
			continue;
		if (ag == NULL || (ag->has_fp && (tunnel_peer_fingerprint(t, fp) == -1 ||
						  memcmp(fp, ag->fp, TLS_FP_LEN) != 0)) ||
		    (!ag->has_fp && cfg->c.ca == NULL))
			tunnel_close(t, "not_allowed");
		else if (!ag->has_fp && (err = gateway_auth_reverify(ctx, t)) != 0)
			tunnel_close(t, err == X509_V_ERR_CERT_REVOKED ? "revoked" : "not_allowed");
	}
}

/* SIGHUP's new config: listeners, services and the TLS context follow it, or nothing
 * changes and -1 leaves cfg to the caller. The log level and the admin listener are the
 * runner's (core/daemon.c). */
static int gw_apply_config(void *arg, void *config)
{
	struct gateway *gw = arg;
	struct config_gateway *cfg = config;
	SSL_CTX *ctx = gateway_auth_ctx(gw, cfg);

	if (ctx == NULL || gw_apply(gw, cfg) == -1) {
		SSL_CTX_free(ctx);
		return -1;
	}
	SSL_CTX_free(gw->ctx);
	gw->ctx = ctx;
	config_gateway_free(gw->cfg);
	gw->cfg = cfg;
	budget_set_limit(cfg->c.memory_budget);
	tstream_budget_raised(); /* streams waiting for a budget now larger */
	gw_recheck_tunnels(gw, cfg, ctx);
	log_info("event=reloaded services=%zu agents=%zu", cfg->nservices, cfg->nagents);
	return 0;
}

/* SIGTERM: no new visitors; the streams in hand get drain_timeout to finish. */
static double gw_drain(void *arg)
{
	struct gateway *gw = arg;

	gw->draining = true;
	for (size_t i = 0; i < gw->nsvcs && !gw->handed_over; i++) {
		for (size_t j = 0; j < gw->svcs[i]->nls; j++)
			gw_listener_free(gw->svcs[i]->ls[j]);
		gw->svcs[i]->nls = 0;
	}
	/* as the services' listeners: after a handover the visitors still waiting for their
	 * name stay with this process while it drains */
	for (size_t i = 0; i < gw->nroutes && !gw->handed_over; i++)
		gateway_route_free(gw->routes[i]);
	if (!gw->handed_over)
		gw->nroutes = 0;
	gateway_handover_drain(gw);
	log_info("event=drain_started streams=%llu", (unsigned long long)tstream_stats.streams_open);
	return gw->cfg->c.drain_timeout;
}

static bool gw_idle(void *arg)
{
	return tstream_stats.streams_open == 0 && gateway_handover_idle(arg);
}

static void gw_free(void *arg)
{
	struct gateway *gw = arg;

	if (gw == NULL)
		return;
	for (size_t i = 0; i < gw->nroutes; i++)
		gateway_route_free(gw->routes[i]);
	free(gw->routes);
	while (gw->ntunnels > 0)
		tunnel_close(gw->tunnels[gw->ntunnels - 1], "shutdown");
	for (size_t i = 0; i < gw->nsvcs; i++)
		gw_service_unref(gw->svcs[i]);
	free(gw->svcs);
	for (size_t i = 0; i < gw->ntls; i++)
		gw_listener_free(gw->tls[i]);
	listener_set_free(gw->tunnel_set);
	SSL_CTX_free(gw->ctx);
	config_gateway_free(gw->cfg);
	free(gw);
}

static void gw_log_listeners(const struct gateway *gw)
{
	char a[ADDR_STRLEN];

	for (size_t i = 0; i < gw->ntls; i++) {
		addr_format((const struct sockaddr *)&listener_addr(gw->tls[i]->l)->ss, a, sizeof(a));
		log_info("event=listening what=tunnel addr=%s", a);
	}
	for (size_t i = 0; i < gw->nsvcs; i++) {
		for (size_t j = 0; j < gw->svcs[i]->nls; j++) {
			addr_format((const struct sockaddr *)&listener_addr(gw->svcs[i]->ls[j]->l)->ss,
				    a, sizeof(a));
			log_info("event=listening what=service service=%s addr=%s",
				 gw->svcs[i]->cfg.name, a);
		}
	}
	for (size_t i = 0; i < gw->nroutes; i++) {
		const struct gateway_route *r = gw->routes[i];
		addr_format((const struct sockaddr *)&gateway_route_addr(r)->ss, a, sizeof(a));
		log_info("event=listening what=shared by=%s addr=%s",
			 gateway_route_kind(r) == CONFIG_ROUTE_SNI ? "sni" : "host", a);
	}
}

/* Takes ownership of cfg; binds every listener. NULL once the reason is logged. */
static void *gw_new(struct event_base *base, void *config)
{
	struct config_gateway *cfg = config;
	struct gateway *gw = xcalloc(1, sizeof(*gw));

	gw->base = base;
	gw->cfg = cfg;
	gw->tunnel_set = listener_set_new("handshake_failed", "listener=tunnel",
					  &(struct listener_limits){ 0 });
	budget_set_limit(cfg->c.memory_budget);
	gw->ctx = gateway_auth_ctx(gw, cfg);
	if (gw->ctx == NULL || gw_apply(gw, cfg) == -1) {
		gw_free(gw);
		return NULL;
	}
	gw_log_listeners(gw);
	return gw;
}

static void *gw_load(const char *file, char **msgs)
{
	return config_gateway_load(file, msgs);
}

static struct daemon_conf *gw_conf(void *cfg)
{
	return &((struct config_gateway *)cfg)->c.d;
}

static void gw_cfg_free(void *cfg)
{
	config_gateway_free(cfg);
}

const struct daemon_role gateway_role = {
	.name = "gateway",
	.load = gw_load,
	.conf = gw_conf,
	.cfg_free = gw_cfg_free,
	.new = gw_new,
	.apply = gw_apply_config,
	.drain = gw_drain,
	.idle = gw_idle,
	.housekeeping = tunnel_housekeeping,
	.free = gw_free,
	.admin = &gateway_status_ops,
	.handover_taken = gateway_handover_taken,
	.handover_aborted = gateway_handover_aborted,
	.handover_hold = gateway_handover_hold,
	.handover_ready = gateway_handover_ready,
	.handover_serve = gateway_handover_serve,
};
