#include "wall/agent.h"

#include <errno.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/admin.h"
#include "core/backoff.h"
#include "core/clock.h"
#include "core/daemon.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/page.h"
#include "core/sock.h"
#include "core/tls.h"
#include "core/xalloc.h"
#include "wall/budget.h"
#include "wall/config.h"
#include "wall/health.h"
#include "wall/share.h"
#include "wall/stream.h"
#include "wall/tunnel.h"

#define AG_SERVICE_SHOWN 256 /* bytes of a requested service name that reach the log (the
			      * gateway's :authority is kept up to STREAM_HDR_MAX) */
#define AG_STABLE 5.0     /* seconds a tunnel must live before backoff starts over */

struct agent;

/* One tunnel slot: a connection to one gateway, redialled whenever it is lost. */
struct ag_dialer {
	struct agent *ag;
	size_t gw;     /* index into cfg->gateways */
	unsigned slot; /* 0 .. tunnels-1 */
	struct backoff bo;
	int fd;                /* while connecting */
	struct event *ev;      /* connect wait or backoff timer */
	struct tunnel *t;
	double up_since;
	unsigned failures;
};

struct agent {
	struct event_base *base;
	struct config_agentd *cfg;
	SSL_CTX *ctx;
	SSL_CTX **target_tls; /* per cfg->targets[i], NULL unless tls = on */
	char instance[33];
	char *services;
	struct ag_dialer *dialers;
	size_t ndialers;
	struct health *health;   /* the targets' health and the pick of one per stream */
	struct tunnel **retired; /* tunnels the gateway retired, finishing their streams */
	size_t nretired;
	bool draining;
	bool holding; /* taking over: tunnels announce no service until the old agent may go */
	struct log_rate rate_dial, rate_visit;
};

static const struct tunnel_ops ag_tunnel_ops;
static void ag_dial(struct ag_dialer *d);

/* ---- gateway authentication ---- */

/* The pin of the gateway the tunnel on ssl dials: its own, else gateway_fingerprint's;
 * NULL when the CA verifies it. */
static const uint8_t *ag_pin(const struct agent *ag, SSL *ssl)
{
	const struct config_agentd *cfg = ag->cfg;
	struct tunnel *t = ssl != NULL ? tunnel_from_ssl(ssl) : NULL;

	for (size_t i = 0; i < ag->ndialers && t != NULL; i++) {
		const struct ag_dialer *d = &ag->dialers[i];

		if (d->t == t && cfg->gateway_pinned[d->gw])
			return cfg->gateway_pin[d->gw];
	}
	return cfg->has_pin ? cfg->gateway_fp : NULL;
}

static int ag_verify(X509_STORE_CTX *xs, void *arg)
{
	struct agent *ag = arg;
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	const uint8_t *pin = ag_pin(ag, ssl);
	uint8_t fp[TLS_FP_LEN];

	if (pin != NULL) {
		if (leaf != NULL && tls_fingerprint(leaf, fp) == 0 &&
		    memcmp(fp, pin, TLS_FP_LEN) == 0)
			return 1;
		X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
		return 0;
	}
	return X509_verify_cert(xs);
}

static SSL_CTX *ag_ctx(struct agent *ag, const struct config_agentd *cfg)
{
	char err[512];
	SSL_CTX *ctx = tls_ctx_client(cfg->c.cert, cfg->c.key, err, sizeof(err));

	if (ctx == NULL) {
		log_error("event=tls_setup_failed error=\"%s\"", err);
		return NULL;
	}
	if (cfg->c.ca != NULL && tls_ctx_load_ca(ctx, cfg->c.ca, err, sizeof(err)) == -1) {
		log_error("event=tls_setup_failed error=\"%s\"", err);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, ag_verify, ag);
	return ctx;
}

static SSL_CTX **ag_target_ctxs(const struct config_agentd *cfg)
{
	SSL_CTX **v = xcalloc(cfg->ntargets + 1, sizeof(*v));
	char err[512];

	for (size_t i = 0; i < cfg->ntargets; i++) {
		const struct config_target *tg = &cfg->targets[i];
		if (!tg->tls)
			continue;
		v[i] = tls_ctx_target(tg->tls_ca, tg->tls_verify, err, sizeof(err));
		if (v[i] == NULL) {
			log_error("event=tls_setup_failed service=%s error=\"%s\"", tg->name, err);
			for (size_t j = 0; j < i; j++)
				SSL_CTX_free(v[j]);
			free(v);
			return NULL;
		}
	}
	return v;
}

static void ag_target_ctxs_free(SSL_CTX **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		SSL_CTX_free(v[i]);
	free(v);
}

/* The comma-separated service list the hello announces: every service with a target up. */
static char *ag_services(const struct agent *ag)
{
	const struct config_agentd *cfg = ag->cfg;
	size_t len = 1, off = 0;
	char *s;

	for (size_t i = 0; i < cfg->ntargets; i++)
		len += strlen(cfg->targets[i].name) + 1;
	s = xcalloc(1, len);
	for (size_t i = 0; i < cfg->ntargets; i++) {
		size_t n = strlen(cfg->targets[i].name);
		if (!health_service_up(ag->health, i))
			continue;
		if (off > 0)
			s[off++] = ',';
		memcpy(s + off, cfg->targets[i].name, n);
		off += n;
	}
	return s;
}

/* Tells every tunnel's gateway the services now announced (a re-hello if they changed). */
static void ag_announce(struct agent *ag)
{
	for (size_t i = 0; i < ag->ndialers; i++)
		if (ag->dialers[i].t != NULL)
			tunnel_set_hello(ag->dialers[i].t, ag->instance, ag->dialers[i].slot,
					 ag->holding ? "" : ag->services);
}

/* A target changed state (health.c): a service whose targets are all down is no longer
 * announced, so the gateway sends its visitors elsewhere or refuses them at once. */
static void ag_health_changed(void *arg)
{
	struct agent *ag = arg;
	char *now = ag_services(ag);

	if (ag->services != NULL && strcmp(now, ag->services) == 0) {
		free(now);
		return;
	}
	free(ag->services);
	ag->services = now;
	log_info("event=services_announced services=%s", ag->services);
	ag_announce(ag);
}

/* ---- dialing ---- */

static double ag_rand01(void)
{
	uint32_t r = 0;

	RAND_bytes((unsigned char *)&r, sizeof(r));
	return (double)r / 4294967296.0;
}

static void ag_gateway_name(const struct ag_dialer *d, char *buf, size_t len)
{
	addr_format((const struct sockaddr *)&d->ag->cfg->gateways[d->gw].ss, buf, len);
}

static void ag_on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ag_dial(arg);
}

static void ag_retry_later(struct ag_dialer *d)
{
	double delay = backoff_next(&d->bo, ag_rand01());
	struct timeval tv = clock_tv(delay);

	if (d->ag->draining)
		return;
	loop_free_event(&d->ev);
	d->ev = evtimer_new(d->ag->base, ag_on_retry, d);
	if (d->ev == NULL)
		xalloc_fail("event");
	evtimer_add(d->ev, &tv);
}

static void ag_dial_failed(struct ag_dialer *d, const char *why)
{
	char gw[ADDR_STRLEN];

	ag_gateway_name(d, gw, sizeof(gw));
	d->failures++;
	log_limited(&d->ag->rate_dial, d->failures == 1 ? LOG_WARN : LOG_DEBUG,
		    "event=dial_failed gateway=%s slot=%u error=\"%s\" attempts=%u", gw, d->slot,
		    why, d->failures);
	ag_retry_later(d);
}

static void ag_on_connected(evutil_socket_t fd, short what, void *arg)
{
	struct ag_dialer *d = arg;
	struct agent *ag = d->ag;
	int err;

	loop_free_event(&d->ev);
	d->ev = NULL;
	d->fd = -1;
	if (what & EV_TIMEOUT) {
		close(fd);
		ag_dial_failed(d, "connect timeout");
		return;
	}
	err = sock_error(fd);
	if (err != 0) {
		close(fd);
		ag_dial_failed(d, strerror(err));
		return;
	}
	d->t = tunnel_new(ag->base, TUNNEL_AGENT, fd, ag->ctx, &ag->cfg->c.tp, &ag_tunnel_ops, ag);
	tunnel_set_user(d->t, d);
	tunnel_set_hello(d->t, ag->instance, d->slot, ag->holding ? "" : ag->services);
	if (ag->cfg->c.ca != NULL)
		tunnel_set_server_name(d->t, ag->cfg->server_name ? ag->cfg->server_name
								  : ag->cfg->gateway_host[d->gw]);
}

static void ag_dial(struct ag_dialer *d)
{
	struct agent *ag = d->ag;
	const struct addr *a = &ag->cfg->gateways[d->gw];
	struct timeval tv = clock_tv(ag->cfg->c.tp.handshake_timeout);
	int fd;

	loop_free_event(&d->ev);
	d->ev = NULL;
	if (ag->draining)
		return;
	fd = sock_connect((const struct sockaddr *)&a->ss, a->len);
	if (fd == -1) {
		ag_dial_failed(d, strerror(errno));
		return;
	}
	d->fd = fd;
	d->ev = event_new(ag->base, fd, EV_WRITE, ag_on_connected, d);
	if (d->ev == NULL)
		xalloc_fail("event");
	event_add(d->ev, &tv);
}

static void ag_dialer_stop(struct ag_dialer *d)
{
	loop_free_event(&d->ev);
	d->ev = NULL;
	if (d->fd != -1) {
		close(d->fd);
		d->fd = -1;
	}
	if (d->t != NULL)
		tunnel_close(d->t, "shutdown");
}

/* ---- tunnel callbacks ---- */

static void ag_tunnel_up(struct tunnel *t, void *arg)
{
	struct ag_dialer *d = tunnel_user(t);
	char gw[ADDR_STRLEN];

	(void)arg;
	ag_gateway_name(d, gw, sizeof(gw));
	d->up_since = clock_mono();
	log_info("event=tunnel_up gateway=%s slot=%u attempts=%u", gw, d->slot, d->failures + 1);
	d->failures = 0;
}

static void ag_tunnel_down(struct tunnel *t, const char *reason, void *arg)
{
	struct ag_dialer *d = tunnel_user(t);
	char gw[ADDR_STRLEN];

	if (d == NULL) {
		struct agent *ag = arg;
		for (size_t i = 0; i < ag->nretired; i++) {
			if (ag->retired[i] == t) {
				ag->retired[i] = ag->retired[--ag->nretired];
				break;
			}
		}
		return;
	}
	d->t = NULL;
	ag_gateway_name(d, gw, sizeof(gw));
	if (d->up_since > 0) {
		log_info("event=tunnel_down gateway=%s slot=%u reason=%s", gw, d->slot, reason);
		if (clock_mono() - d->up_since >= AG_STABLE)
			backoff_reset(&d->bo);
		d->up_since = 0;
		ag_retry_later(d);
	} else {
		ag_dial_failed(d, reason);
	}
}

/* The gateway retires this tunnel (GOAWAY): its streams finish on it, and the slot dials a
 * replacement now, so the slot never goes without a tunnel. */
static void ag_tunnel_draining(struct tunnel *t, void *arg)
{
	struct agent *ag = arg;
	struct ag_dialer *d = tunnel_user(t);
	struct tunnel **v;

	if (d == NULL || ag->draining)
		return;
	v = xrealloc(ag->retired, (ag->nretired + 1) * sizeof(*v));
	ag->retired = v;
	ag->retired[ag->nretired++] = t;
	tunnel_set_user(t, NULL);
	d->t = NULL;
	d->up_since = 0;
	log_info("event=tunnel_retiring slot=%u streams=%zu", d->slot, tunnel_nstreams(t));
	ag_dial(d);
}

/* The stream target for address i of service tg, picked as key. */
static void ag_target(const struct agent *ag, const struct config_target *tg, int i, uint64_t key,
		      struct tstream_target *out);

/* A visitor's connect failed (stream.c): the target is told; a first connect dials another
 * target of the service that is not down, if there is one. */
static bool ag_connect_failed(void *arg, uint64_t key, struct tstream_target *next)
{
	struct agent *ag = arg;
	int svc = health_connect_failed(ag->health, key);
	uint64_t other = 0;
	int i;

	if (svc == -1 || next == NULL || ag->draining)
		return false;
	i = health_pick(ag->health, (size_t)svc, key, &other);
	if (i == -1)
		return false;
	ag_target(ag, &ag->cfg->targets[svc], i, other, next);
	return true;
}

/* A visitor's stream reached its target (stream.c): the target is told. */
static void ag_reached(void *arg, uint64_t key)
{
	struct agent *ag = arg;

	health_stream_ok(ag->health, key);
}

static void ag_target(const struct agent *ag, const struct config_target *tg, int i, uint64_t key,
		      struct tstream_target *out)
{
	const struct config_endpoint *e = &tg->ep[i];

	memset(out, 0, sizeof(*out));
	if (e->kind == CONFIG_TARGET_TCP) {
		out->sa = (const struct sockaddr *)&e->addr.ss;
		out->salen = e->addr.len;
	} else {
		out->unix_path = e->unix_path;
	}
	out->tls = ag->target_tls[tg - ag->cfg->targets];
	out->tls_name = tg->tls_server_name ? tg->tls_server_name : e->host;
	out->connect_timeout = ag->cfg->connect_timeout;
	out->failed = ag_connect_failed;
	out->reached = ag_reached;
	out->failed_arg = (void *)ag;
	out->failed_key = key;
}

static void ag_visit(struct tunnel *t, struct tstream *s, const struct tunnel_visit *v, void *arg)
{
	struct agent *ag = arg;
	const struct config_target *tg = config_find_target(ag->cfg, v->service);
	struct tstream_target target;
	uint64_t key = 0;
	int i = -1;

	(void)t;
	if (tg != NULL && !ag->draining)
		i = health_pick(ag->health, (size_t)(tg - ag->cfg->targets), 0, &key);
	if (i == -1) {
		char shown[LOG_VALUE_SIZE(AG_SERVICE_SHOWN)];
		log_limited(&ag->rate_visit, LOG_WARN, "event=stream_refused service=%s reason=%s",
			    log_value(shown, sizeof(shown), v->service),
			    tg == NULL     ? "unknown_service"
			    : ag->draining ? "draining"
					   : "no_target_up");
		tstream_refuse(s);
		return;
	}
	ag_target(ag, tg, i, key, &target);
	tstream_connect(s, &target);
}

static const struct tunnel_ops ag_tunnel_ops = {
	.up = ag_tunnel_up,
	.draining = ag_tunnel_draining,
	.down = ag_tunnel_down,
	.visit = ag_visit,
};

/* ---- admin ---- */

static uint64_t ag_tunnels_up_count(const struct agent *ag)
{
	uint64_t up = 0;

	for (size_t i = 0; i < ag->ndialers; i++)
		up += ag->dialers[i].t != NULL && tunnel_is_up(ag->dialers[i].t);
	return up;
}

static void ag_tunnels_up(struct metric_out *o, void *base)
{
	metric_emit(o, NULL, ag_tunnels_up_count(base));
}

static void ag_tunnels_configured(struct metric_out *o, void *base)
{
	const struct agent *ag = base;

	metric_emit(o, NULL, ag->ndialers);
}

static const struct metric ag_metrics[] = {
	{ "netwall_tunnels_up", METRIC_GAUGE, "Tunnels connected to gateways.", NULL,
	  METRIC_READ(ag_tunnels_up) },
	{ "netwall_tunnels_configured", METRIC_GAUGE, "Tunnels the agent keeps.", NULL,
	  METRIC_READ(ag_tunnels_configured) },
};

static void ag_register_metrics(struct metrics *m, void *arg)
{
	struct agent *ag = arg;

	metrics_add(m, ag_metrics, sizeof(ag_metrics) / sizeof(ag_metrics[0]), arg);
	tstream_register_metrics(m, TSTREAM_TARGETS);
	health_register_metrics(m, ag->health);
	tunnel_register_metrics(m);
	budget_register_metrics(m);
}

static json_t *ag_status_json(void *arg)
{
	struct agent *ag = arg;
	json_t *tunnels = json_array();

	for (size_t i = 0; i < ag->ndialers; i++) {
		struct ag_dialer *d = &ag->dialers[i];
		char gw[ADDR_STRLEN];
		ag_gateway_name(d, gw, sizeof(gw));
		json_array_append_new(tunnels, json_pack("{s:s,s:i,s:b,s:I}", "gateway", gw, "slot",
							 (int)d->slot, "up",
							 d->t != NULL && tunnel_is_up(d->t),
							 "streams",
							 (json_int_t)(d->t ? tunnel_nstreams(d->t)
									   : 0)));
	}
	return json_pack("{s:s,s:o,s:s,s:o}", "instance", ag->instance, "tunnels", tunnels,
			 "announced", ag->services, "services", health_json(ag->health));
}

static void ag_page_body(struct evbuffer *out, const struct metrics *m, void *arg)
{
	struct agent *ag = arg;
	uint64_t up = ag_tunnels_up_count(ag);
	char bin[32], bout[32], a[ADDR_STRLEN];

	(void)m; /* the tiles keep the ids the page has always had */
	page_bytes(bin, sizeof(bin), tstream_stats.bytes_in);
	page_bytes(bout, sizeof(bout), tstream_stats.bytes_out);
	evbuffer_add_printf(out, "<div class=\"tiles\">");
	page_tile_text(out, "state", "state", ag->draining ? "draining" : "serving");
	page_tile(out, "tunnels_up", "tunnels up", up);
	page_tile(out, "tunnels_configured", "tunnels kept", ag->ndialers);
	page_tile(out, "streams_open", "streams now", tstream_stats.streams_open);
	page_tile(out, "streams_total", "streams carried", tstream_stats.streams_total);
	page_tile_text(out, "bytes_in", "from targets", bin);
	page_tile_text(out, "bytes_out", "to targets", bout);
	evbuffer_add_printf(out, "</div>\n<h2>Tunnels to the gateway</h2><table id=\"tunnels\">"
				 "<tr><th>gateway</th><th>slot</th><th>state</th><th>streams</th>"
				 "</tr>\n");
	for (size_t i = 0; i < ag->ndialers; i++) {
		struct ag_dialer *d = &ag->dialers[i];
		bool on = d->t != NULL && tunnel_is_up(d->t);
		ag_gateway_name(d, a, sizeof(a));
		evbuffer_add_printf(out, "<tr><td>");
		page_esc(out, a);
		evbuffer_add_printf(out,
				    "</td><td class=\"n\">%u</td><td class=\"%s\">%s</td>"
				    "<td class=\"n\">%zu</td></tr>\n",
				    d->slot, on ? "up" : "down", on ? "up" : "connecting",
				    d->t ? tunnel_nstreams(d->t) : (size_t)0);
	}
	evbuffer_add_printf(out, "</table>\n");
	health_page(out, ag->health);
}

static int ag_health(char *why, size_t len, void *arg)
{
	struct agent *ag = arg;

	for (size_t i = 0; i < ag->ndialers; i++)
		if (ag->dialers[i].t != NULL && tunnel_is_up(ag->dialers[i].t))
			return 0;
	snprintf(why, len, "no tunnel up");
	return -1;
}

static const struct admin_ops ag_admin_ops = {
	.role = "agent",
	.register_metrics = ag_register_metrics,
	.page_body = ag_page_body,
	.status_json = ag_status_json,
	.health = ag_health,
};

/* ---- the role ---- */

static void ag_start_dialers(struct agent *ag)
{
	const struct config_agentd *cfg = ag->cfg;

	ag->ndialers = cfg->ngateways * cfg->tunnels;
	ag->dialers = xcalloc(ag->ndialers, sizeof(*ag->dialers));
	for (size_t i = 0; i < ag->ndialers; i++) {
		struct ag_dialer *d = &ag->dialers[i];
		d->ag = ag;
		d->gw = i / cfg->tunnels;
		/* a slot names the dialer among all of them, not only among one gateway's: one
		 * gateway may be two addresses (a name with an A and an AAAA record), and the
		 * gateway replaces a registration of the same instance and slot */
		d->slot = (unsigned)i;
		d->fd = -1;
		d->bo.initial = cfg->backoff_initial;
		d->bo.max = cfg->backoff_max;
		ag_dial(d);
	}
}

static void ag_stop_dialers(struct agent *ag)
{
	for (size_t i = 0; i < ag->ndialers; i++) {
		struct ag_dialer *d = &ag->dialers[i];
		if (d->t != NULL)
			tunnel_set_user(d->t, NULL);
		ag_dialer_stop(d);
	}
	free(ag->dialers);
	ag->dialers = NULL;
	ag->ndialers = 0;
}

/* True if the settings that shape the tunnels themselves are unchanged. */
static bool ag_same_tunnels(const struct config_agentd *a, const struct config_agentd *b)
{
	if (a->ngateways != b->ngateways || a->tunnels != b->tunnels ||
	    a->has_pin != b->has_pin || memcmp(a->gateway_fp, b->gateway_fp, TLS_FP_LEN) != 0)
		return false;
	for (size_t i = 0; i < a->ngateways; i++)
		if (!addr_equal(&a->gateways[i], &b->gateways[i]) ||
		    a->gateway_pinned[i] != b->gateway_pinned[i] ||
		    memcmp(a->gateway_pin[i], b->gateway_pin[i], TLS_FP_LEN) != 0)
			return false;
	if (strcmp(a->c.cert, b->c.cert) != 0 || strcmp(a->c.key, b->c.key) != 0)
		return false;
	if ((a->c.ca == NULL) != (b->c.ca == NULL) || (a->c.ca && strcmp(a->c.ca, b->c.ca) != 0))
		return false;
	return true;
}

/* SIGHUP's new config: the TLS contexts, the services and the tunnels follow it (the
 * tunnels are redialled only if what shapes them changed), or nothing changes and -1
 * leaves cfg to the caller. The log level and the admin listener are the runner's. */
static int ag_apply(void *arg, void *config)
{
	struct agent *ag = arg;
	struct config_agentd *cfg = config;
	SSL_CTX *ctx = ag_ctx(ag, cfg);
	SSL_CTX **tls = ctx ? ag_target_ctxs(cfg) : NULL;
	bool same;

	if (ctx == NULL || tls == NULL) {
		SSL_CTX_free(ctx);
		return -1;
	}
	same = ag_same_tunnels(ag->cfg, cfg);
	if (!same)
		ag_stop_dialers(ag);
	health_apply(ag->health, cfg, tls); /* before the old config and contexts go */
	ag_target_ctxs_free(ag->target_tls, ag->cfg->ntargets);
	ag->target_tls = tls;
	SSL_CTX_free(ag->ctx);
	ag->ctx = ctx;
	config_agent_free(ag->cfg);
	ag->cfg = cfg;
	free(ag->services);
	ag->services = ag_services(ag);
	budget_set_limit(cfg->c.memory_budget);
	tstream_budget_raised(); /* streams waiting for a budget now larger */
	if (same) {
		ag_announce(ag);
	} else {
		ag_start_dialers(ag);
	}
	log_info("event=reloaded services=%s tunnels_kept=%s", ag->services, same ? "yes" : "no");
	return 0;
}

/* SIGTERM: GOAWAY on every tunnel, no redialling; streams in hand get drain_timeout. */
static double ag_drain(void *arg)
{
	struct agent *ag = arg;

	ag->draining = true;
	log_info("event=drain_started streams=%llu", (unsigned long long)tstream_stats.streams_open);
	for (size_t i = 0; i < ag->ndialers; i++) {
		struct ag_dialer *d = &ag->dialers[i];
		loop_free_event(&d->ev);
		if (d->fd != -1) {
			close(d->fd);
			d->fd = -1;
		}
		if (d->t != NULL)
			tunnel_drain(d->t);
	}
	for (size_t i = 0; i < ag->nretired; i++)
		tunnel_drain(ag->retired[i]);
	return ag->cfg->c.drain_timeout;
}

static bool ag_idle(void *arg)
{
	struct agent *ag = arg;

	for (size_t i = 0; i < ag->ndialers; i++)
		if (ag->dialers[i].t != NULL)
			return false;
	return ag->nretired == 0;
}

/* A new process taking over (core/handover.h). Its tunnels first announce no service, so
 * that the gateways give it no visitor while it might still fail; once every slot has
 * said hello, they announce the services (the gateways ask again), and once every slot
 * has answered that, the gateways give the new visitors to it, and the old agent may
 * drain. */
/* Taking over (handover): tunnels announce no service until the old agent may go. */
static void ag_hold(struct agent *ag, bool hold)
{
	ag->holding = hold;
	ag_announce(ag);
}

static void ag_handover_hold(void *arg)
{
	ag_hold(arg, true);
}

static bool ag_handover_ready(void *arg)
{
	struct agent *ag = arg;

	for (size_t i = 0; i < ag->ndialers; i++)
		if (ag->dialers[i].t == NULL || !tunnel_hello_answered(ag->dialers[i].t))
			return false;
	if (!ag->holding)
		return true;
	ag_hold(ag, false); /* every slot is up: now with the services */
	return false;
}

static void ag_handover_serve(void *arg)
{
	struct agent *ag = arg;

	if (ag->holding) /* not ready in time: serve with what is up */
		ag_hold(ag, false);
}

static void ag_free(void *arg)
{
	struct agent *ag = arg;

	if (ag == NULL)
		return;
	ag_stop_dialers(ag);
	while (ag->nretired > 0)
		tunnel_close(ag->retired[ag->nretired - 1], "shutdown");
	free(ag->retired);
	health_free(ag->health);
	ag_target_ctxs_free(ag->target_tls, ag->cfg->ntargets);
	SSL_CTX_free(ag->ctx);
	free(ag->services);
	config_agent_free(ag->cfg);
	free(ag);
}

/* Takes ownership of cfg and starts dialling. NULL once the reason is logged. */
static void *ag_new(struct event_base *base, void *config)
{
	struct config_agentd *cfg = config;
	struct agent *ag = xcalloc(1, sizeof(*ag));
	uint8_t rnd[16];

	ag->base = base;
	ag->cfg = cfg;
	budget_set_limit(cfg->c.memory_budget);
	/* not an allocation: without randomness the instance name, which tells the gateway a
	 * restarted agent from the same one reconnecting, could repeat; nothing can go on */
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		abort();
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(ag->instance + 2 * i, 3, "%02x", rnd[i]);
	ag->ctx = ag_ctx(ag, cfg);
	ag->target_tls = ag->ctx ? ag_target_ctxs(cfg) : NULL;
	if (ag->ctx == NULL || ag->target_tls == NULL) {
		ag_free(ag);
		return NULL;
	}
	ag->health = health_new(base, ag_health_changed, ag);
	health_apply(ag->health, cfg, ag->target_tls);
	ag->services = ag_services(ag);
	log_info("event=starting instance=%s gateways=%zu tunnels=%u services=%s", ag->instance,
		 cfg->ngateways, cfg->tunnels, ag->services);
	ag_start_dialers(ag);
	return ag;
}

static void *ag_load(const char *file, char **msgs)
{
	return config_agent_load(file, msgs);
}

static struct daemon_conf *ag_conf(void *cfg)
{
	return &((struct config_agentd *)cfg)->c.d;
}

static void ag_cfg_free(void *cfg)
{
	config_agent_free(cfg);
}

const struct daemon_role agent_role = {
	.name = "agent",
	.load = ag_load,
	.conf = ag_conf,
	.cfg_free = ag_cfg_free,
	.new = ag_new,
	.apply = ag_apply,
	.drain = ag_drain,
	.idle = ag_idle,
	.housekeeping = tunnel_housekeeping,
	.free = ag_free,
	.admin = &ag_admin_ops,
	.handover_hold = ag_handover_hold,
	.handover_ready = ag_handover_ready,
	.handover_serve = ag_handover_serve,
};
