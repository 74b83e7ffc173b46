#include "wall/gateway.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/admin.h"
#include "core/clock.h"
#include "core/lifecycle.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/page.h"
#include "core/sock.h"
#include "core/tls.h"
#include "core/xalloc.h"
#include "wall/budget.h"
#include "wall/share.h"
#include "wall/stream.h"
#include "wall/tunnel.h"

#define GW_MAX_TUNNELS 4096     /* agents' connections, handshaking ones included */
#define GW_MAX_PENDING 256        /* connections in their handshake, all together */
#define GW_MAX_PENDING_PER_NET 16  /* ... from one /24 or /64 */
#define GW_REFUSED_KEPT 16      /* refused sources the status page lists */
#define GW_PER_SOURCE_MIN 8     /* the default max_per_source: a quarter of max_connections, */
#define GW_PER_SOURCE_MAX 256   /* ... at least 8 (or all, if fewer), at most 256 */
#define GW_AGENT_CN_MAX 64      /* CA mode: an agent's CN, bytes (RFC 5280 ub-common-name);
				 * longer is refused, not cut */
#define GW_CN_SHOWN 128         /* bytes of a refused CN that reach the log */
#define GW_SERVICES_SHOWN 512   /* bytes of an agent's services list that reach the log */

struct gw_service;

struct gw_listener {
	struct gateway *gw;
	struct gw_service *svc; /* NULL: the agents' tunnel listener */
	struct listener *l;
};

/* A visitor's stream owner: its service and the count of its source network. */
struct gw_visitor {
	struct gw_service *svc;
	struct listener_src *src;
};

struct gw_service {
	struct gateway *gw;
	struct config_service cfg;
	struct gw_listener *ls[CONFIG_MAX_LIST];
	size_t nls;
	uint64_t open;
	uint64_t connections;
	struct listener_set *set; /* admission: max_connections, max_per_source, allow */
	uint64_t rej_source, rej_limit, rej_per_source, rej_first_byte, rej_no_agent;
	uint64_t bytes[2]; /* read from, written to visitors (tunnel_visit.bytes) */
	unsigned rr;
	bool removed; /* gone from the config; freed when its last visitor leaves */
};

struct gateway {
	struct event_base *base;
	const char *path;
	struct config_gateway *cfg;
	SSL_CTX *ctx;
	struct gw_listener *tls[CONFIG_MAX_LIST];
	size_t ntls;
	struct gw_service **svcs;
	size_t nsvcs;
	struct listener_set *tunnel_set; /* the tunnel listeners: no limits of its own */
	struct tunnel *tunnels[GW_MAX_TUNNELS];
	size_t ntunnels;
	struct admin *admin;
	struct lifecycle *life;
	bool draining;
	int status;
	struct log_rate rate_reject;
	struct minutes visits; /* visitors accepted per minute, for the status page */
	struct gw_refused {    /* the sources refused lately, for the status page */
		char host[ADDR_STRLEN];
		char service[CONF_NAME_MAX + 1];
		const char *reason;
		uint64_t count;
		double last; /* wall clock */
	} refused[GW_REFUSED_KEPT];
};

static const struct tunnel_ops gw_tunnel_ops;

/* ---- agent authentication ---- */

/* Escapes a CN for the log: log_value on each run of bytes between NULs, "%00" for each
 * NUL, at most GW_CN_SHOWN bytes ("%.." after a cut). */
static void gw_escape_cn(char *out, size_t len, const unsigned char *cn, size_t n)
{
	char seg[GW_CN_SHOWN + 1];
	bool cut = n > GW_CN_SHOWN;
	size_t off = 0, k = 0;

	if (cut)
		n = GW_CN_SHOWN;
	out[0] = '\0';
	for (;;) {
		size_t m = strnlen((const char *)cn + k, n - k);
		memcpy(seg, cn + k, m);
		seg[m] = '\0';
		log_value(out + off, len - off, seg);
		off += strlen(out + off);
		k += m;
		if (k >= n)
			break;
		k++; /* the NUL */
		off += (size_t)snprintf(out + off, len - off, "%s", len - off > 3 ? "%00" : "");
	}
	if (cut && len - off > 3)
		snprintf(out + off, len - off, "%%..");
}

/* The agent name a CA-signed certificate carries: its subject must have exactly one CN, of
 * at most GW_AGENT_CN_MAX bytes and with no NUL. Returns NULL with the name in name, or
 * what is wrong ("cn_missing", "cn_unreadable", "cn_twice", "cn_nul", "cn_too_long");
 * shown gets the first CN escaped for the log either way. */
static const char *gw_agent_cn(X509 *leaf, char name[GW_AGENT_CN_MAX + 1], char *shown,
			       size_t shownlen)
{
	X509_NAME *subj = X509_get_subject_name(leaf);
	int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	const char *problem = NULL;
	unsigned char *utf8 = NULL;
	int n;

	snprintf(shown, shownlen, "-");
	if (i < 0)
		return "cn_missing";
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)));
	if (n < 0)
		return "cn_unreadable";
	gw_escape_cn(shown, shownlen, utf8, (size_t)n);
	if (X509_NAME_get_index_by_NID(subj, NID_commonName, i) >= 0)
		problem = "cn_twice";
	else if (memchr(utf8, '\0', (size_t)n) != NULL)
		problem = "cn_nul";
	else if (n > GW_AGENT_CN_MAX)
		problem = "cn_too_long";
	else {
		memcpy(name, utf8, (size_t)n);
		name[n] = '\0';
	}
	OPENSSL_free(utf8);
	return problem;
}

static int gw_verify(X509_STORE_CTX *xs, void *arg)
{
	struct gateway *gw = arg;
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tunnel *t = tunnel_from_ssl(ssl);
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);
	const struct config_gateway *cfg = gw->cfg;
	const char *reason = "unknown_certificate";
	uint8_t fp[TLS_FP_LEN];

	if (leaf == NULL || tls_fingerprint(leaf, fp) == -1)
		goto reject;
	for (size_t i = 0; i < cfg->nagents; i++) {
		if (cfg->agents[i].has_fp && memcmp(cfg->agents[i].fp, fp, TLS_FP_LEN) == 0) {
			tunnel_set_peer(t, cfg->agents[i].name);
			return 1;
		}
	}
	if (cfg->c.ca != NULL) {
		char cn[GW_AGENT_CN_MAX + 1], shown[LOG_VALUE_SIZE(GW_CN_SHOWN)];
		const struct config_agent *ag;
		const char *problem;
		if (X509_verify_cert(xs) != 1) {
			int err = X509_STORE_CTX_get_error(xs);
			if (err == X509_V_ERR_CERT_REVOKED)
				reason = "revoked";
			log_limited(&gw->rate_reject, LOG_INFO,
				    "event=agent_certificate_refused peer=%s error=\"%s\"",
				    tunnel_peer_addr(t), X509_verify_cert_error_string(err));
			goto reject;
		}
		problem = gw_agent_cn(leaf, cn, shown, sizeof(shown));
		if (problem != NULL) {
			log_limited(&gw->rate_reject, LOG_WARN,
				    "event=agent_name_refused peer=%s problem=%s cn=%s",
				    tunnel_peer_addr(t), problem, shown);
			reason = "bad_agent_name";
			goto reject;
		}
		ag = config_find_agent(cfg, cn);
		if (ag != NULL && !ag->has_fp) {
			tunnel_set_peer(t, ag->name);
			return 1;
		}
	}
reject:
	tunnel_set_reject(t, reason);
	X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
	return 0;
}

/* CA mode, on reload: does t's agent certificate still verify against ctx (its CRL
 * included)? Returns 0, or the X509_V_ERR_* that now fails it. */
static int gw_reverify(SSL_CTX *ctx, const struct tunnel *t)
{
	X509 *leaf = tunnel_peer_cert(t);
	X509_STORE_CTX *xs = X509_STORE_CTX_new();
	int err = X509_V_ERR_UNSPECIFIED;

	if (leaf != NULL && xs != NULL &&
	    X509_STORE_CTX_init(xs, SSL_CTX_get_cert_store(ctx), leaf, tunnel_peer_chain(t)) == 1 &&
	    X509_STORE_CTX_set_default(xs, "ssl_client") == 1)
		err = X509_verify_cert(xs) == 1 ? 0 : X509_STORE_CTX_get_error(xs);
	X509_STORE_CTX_free(xs);
	ERR_clear_error();
	return err;
}

static SSL_CTX *gw_ctx(struct gateway *gw, const struct config_gateway *cfg)
{
	char err[512];
	SSL_CTX *ctx = tls_ctx_server(cfg->c.cert, cfg->c.key, err, sizeof(err));

	if (ctx == NULL) {
		log_error("event=tls_setup_failed error=\"%s\"", err);
		return NULL;
	}
	if ((cfg->c.ca != NULL && tls_ctx_load_ca(ctx, cfg->c.ca, err, sizeof(err)) == -1) ||
	    (cfg->crl != NULL && tls_ctx_load_crl(ctx, cfg->crl, err, sizeof(err)) == -1)) {
		log_error("event=tls_setup_failed error=\"%s\"", err);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, gw_verify, gw);
	return ctx;
}

/* ---- tunnels ---- */

static bool gw_list_has(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; *p;) {
		size_t len = strcspn(p, ",");
		if (len == n && memcmp(p, name, n) == 0)
			return true;
		p += len;
		p += *p == ',';
	}
	return false;
}

static void gw_tunnel_up(struct tunnel *t, void *arg)
{
	struct gateway *gw = arg;
	char services[LOG_VALUE_SIZE(GW_SERVICES_SHOWN)];

	/* A reconnecting agent replaces its stale registration at once: same identity and
	 * slot, or another instance (the process restarted) of the same identity. */
	for (size_t i = gw->ntunnels; i-- > 0;) { /* backwards: closing swaps the last in */
		struct tunnel *u = gw->tunnels[i];
		if (u == t || strcmp(tunnel_peer(u), tunnel_peer(t)) != 0 ||
		    tunnel_instance(u)[0] == '\0')
			continue;
		if (strcmp(tunnel_instance(u), tunnel_instance(t)) != 0 ||
		    (tunnel_slot(u) == tunnel_slot(t) && !tunnel_is_retiring(u)))
			tunnel_close(u, "replaced");
	}
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
		if (!tunnel_is_up(t) || !gw_list_has(tunnel_services(t), svc->cfg.name))
			continue;
		for (size_t j = 0; j < svc->cfg.nagents && !allowed; j++)
			allowed = strcmp(svc->cfg.agents[j], tunnel_peer(t)) == 0;
		if (!allowed)
			continue;
		/* a retiring tunnel only when nothing else can take the visitor */
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

/* The listener refused a visitor (allowlist, max_connections, max_per_source). */
static void gw_on_refused(void *arg, const struct sockaddr *sa, enum listener_reason r)
{
	struct gw_listener *gl = arg;
	struct gw_service *svc = gl->svc;

	if (svc == NULL)
		return;
	if (r == LISTENER_NOT_ALLOWED)
		svc->rej_source++;
	else if (r == LISTENER_MAX_CONNECTIONS)
		svc->rej_limit++;
	else if (r == LISTENER_FIRST_BYTE_TIMEOUT)
		svc->rej_first_byte++;
	else
		svc->rej_per_source++;
	gw_note_refused(gl->gw, sa, svc->cfg.name, listener_reason_names[r]);
}

static void gw_on_visitor(struct gw_listener *gl, int fd, const struct sockaddr *sa,
			  struct listener_src *src)
{
	struct gw_service *svc = gl->svc;
	struct gw_visitor *vis;
	struct tunnel_visit v;
	socklen_t len = sizeof(v.dst);
	struct tunnel *t;

	memset(&v, 0, sizeof(v));
	v.service = svc->cfg.name;
	v.proxy = svc->cfg.proxy;
	v.idle_timeout = svc->cfg.idle_timeout;
	v.bytes = svc->bytes;
	memcpy(&v.src, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						     : sizeof(struct sockaddr_in));
	/* the address the visitor reached: the listener's own, unless it is a wildcard */
	if (!listener_wildcard(gl->l) || getsockname(fd, (struct sockaddr *)&v.dst, &len) == -1)
		memcpy(&v.dst, &listener_addr(gl->l)->ss, sizeof(v.dst));
	sock_nodelay(fd);
	vis = xmalloc(sizeof(*vis));
	vis->svc = svc;
	vis->src = src;
	t = gw_pick(svc->gw, svc);
	if (t == NULL || tunnel_open(t, fd, &v, vis) == -1) {
		free(vis);
		svc->rej_no_agent++;
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
	} else if (gl->gw->draining) {
		listener_set_refuse(gl->svc->set, src, sa, "draining");
		sock_abort(fd);
	} else {
		gw_on_visitor(gl, fd, sa, src);
	}
}

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
			svc->cfg = cfg->services[i];
			gw_limits(&svc->cfg, &lim);
			snprintf(name, sizeof(name), "service=%s", svc->cfg.name);
			svc->set = listener_set_new("visitor_rejected", name, &lim);
		}
		if (gw_sync_listeners(gw, svc, svc->ls, &svc->nls, cfg->services[i].listen,
				      cfg->services[i].nlisten) == -1) {
			if (old == NULL)
				gw_service_unref(svc);
			goto fail;
		}
		next[i] = svc;
	}
	if (gw_sync_listeners(gw, NULL, tls, &ntls, cfg->listen, cfg->nlisten) == -1)
		goto fail;
	/* every bind succeeded: only now do the services take their new settings */
	for (i = 0; i < cfg->nservices; i++) {
		next[i]->cfg = cfg->services[i];
		gw_limits(&next[i]->cfg, &lim);
		listener_set_limits(next[i]->set, &lim);
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

/* ---- admin ---- */

static void gw_metrics(struct evbuffer *out, void *arg)
{
	struct gateway *gw = arg;
	char labels[160];
	uint64_t up = 0;

	for (size_t i = 0; i < gw->ntunnels; i++)
		up += tunnel_is_up(gw->tunnels[i]);
	admin_family(out, "netwall_tunnels_up", "gauge", "Agent tunnels connected and serving.");
	admin_sample(out, "netwall_tunnels_up", "", up);
	tunnel_stats_render(out, "visitors");
	admin_family(out, "netwall_connections_total", "counter", "Visitors accepted per service.");
	for (size_t i = 0; i < gw->nsvcs; i++) {
		snprintf(labels, sizeof(labels), "service=\"%s\"", gw->svcs[i]->cfg.name);
		admin_sample(out, "netwall_connections_total", labels, gw->svcs[i]->connections);
	}
	admin_family(out, "netwall_connections_open", "gauge", "Visitors open per service.");
	for (size_t i = 0; i < gw->nsvcs; i++) {
		snprintf(labels, sizeof(labels), "service=\"%s\"", gw->svcs[i]->cfg.name);
		admin_sample(out, "netwall_connections_open", labels, gw->svcs[i]->open);
	}
	admin_family(out, "netwall_service_bytes_in_total", "counter",
		     "Bytes read from visitors, per service.");
	for (size_t i = 0; i < gw->nsvcs; i++) {
		snprintf(labels, sizeof(labels), "service=\"%s\"", gw->svcs[i]->cfg.name);
		admin_sample(out, "netwall_service_bytes_in_total", labels, gw->svcs[i]->bytes[0]);
	}
	admin_family(out, "netwall_service_bytes_out_total", "counter",
		     "Bytes written to visitors, per service.");
	for (size_t i = 0; i < gw->nsvcs; i++) {
		snprintf(labels, sizeof(labels), "service=\"%s\"", gw->svcs[i]->cfg.name);
		admin_sample(out, "netwall_service_bytes_out_total", labels, gw->svcs[i]->bytes[1]);
	}
	admin_family(out, "netwall_rejected_total", "counter",
		     "Visitors refused, by service and reason.");
	for (size_t i = 0; i < gw->nsvcs; i++) {
		struct gw_service *s = gw->svcs[i];
		const char *reasons[] = { "source", "limit", "per_source", "first_byte",
					  "no_agent" };
		uint64_t vals[] = { s->rej_source, s->rej_limit, s->rej_per_source,
				    s->rej_first_byte, s->rej_no_agent };
		for (size_t r = 0; r < 5; r++) {
			snprintf(labels, sizeof(labels), "service=\"%s\",reason=\"%s\"", s->cfg.name,
				 reasons[r]);
			admin_sample(out, "netwall_rejected_total", labels, vals[r]);
		}
	}
}

static void gw_status(struct evbuffer *out, void *arg)
{
	struct gateway *gw = arg;

	evbuffer_add_printf(out, "{\"role\":\"gateway\",\"draining\":%s,\"tunnels\":[",
			    gw->draining ? "true" : "false");
	for (size_t i = 0; i < gw->ntunnels; i++) {
		struct tunnel *t = gw->tunnels[i];
		evbuffer_add_printf(out,
				    "%s{\"agent\":\"%s\",\"peer\":\"%s\",\"slot\":%u,\"up\":%s,"
				    "\"streams\":%zu}",
				    i ? "," : "", tunnel_peer(t), tunnel_peer_addr(t), tunnel_slot(t),
				    tunnel_is_up(t) ? "true" : "false", tunnel_nstreams(t));
	}
	evbuffer_add_printf(out, "],\"services\":[");
	for (size_t i = 0; i < gw->nsvcs; i++)
		evbuffer_add_printf(out, "%s{\"name\":\"%s\",\"open\":%llu}", i ? "," : "",
				    gw->svcs[i]->cfg.name, (unsigned long long)gw->svcs[i]->open);
	evbuffer_add_printf(out, "]}\n");
}

static bool gw_agent_up(const struct gateway *gw, const char *agent, const char *service)
{
	for (size_t i = 0; i < gw->ntunnels; i++) {
		const struct tunnel *t = gw->tunnels[i];
		if (tunnel_is_up(t) && strcmp(tunnel_peer(t), agent) == 0 &&
		    gw_list_has(tunnel_services(t), service))
			return true;
	}
	return false;
}

static void gw_page_services(struct evbuffer *out, const struct gateway *gw)
{
	char in[32], outb[32], a[ADDR_STRLEN];

	evbuffer_add_printf(out, "<h2>Services</h2><table id=\"services\"><tr><th>service</th>"
				 "<th>listens on</th><th>agents</th><th>open</th><th>accepted</th>"
				 "<th>bytes in</th><th>bytes out</th><th>refused: source / limit / per source / silent / "
				 "no agent</th></tr>\n");
	for (size_t i = 0; i < gw->nsvcs; i++) {
		const struct gw_service *s = gw->svcs[i];
		evbuffer_add_printf(out, "<tr data-service=\"%s\"><td>%s</td><td>", s->cfg.name,
				    s->cfg.name);
		for (size_t k = 0; k < s->cfg.nlisten; k++) {
			addr_format((const struct sockaddr *)&s->cfg.listen[k].ss, a, sizeof(a));
			evbuffer_add_printf(out, "%s%s", k ? "<br>" : "", a);
		}
		evbuffer_add_printf(out, "</td><td>");
		for (size_t k = 0; k < s->cfg.nagents; k++) {
			bool up = gw_agent_up(gw, s->cfg.agents[k], s->cfg.name);
			evbuffer_add_printf(out, "%s<span class=\"%s\">%s %s</span>", k ? "<br>" : "",
					    up ? "up" : "down", s->cfg.agents[k],
					    up ? "up" : "down");
		}
		page_bytes(in, sizeof(in), s->bytes[0]);
		page_bytes(outb, sizeof(outb), s->bytes[1]);
		evbuffer_add_printf(out,
				    "</td><td class=\"n open\">%llu</td><td class=\"n accepted\">%llu"
				    "</td><td class=\"n\">%s</td><td class=\"n\">%s</td>"
				    "<td class=\"n refused\">%llu / %llu / %llu / %llu / %llu</td></tr>\n",
				    (unsigned long long)s->open, (unsigned long long)s->connections,
				    in, outb, (unsigned long long)s->rej_source,
				    (unsigned long long)s->rej_limit,
				    (unsigned long long)s->rej_per_source,
				    (unsigned long long)s->rej_first_byte,
				    (unsigned long long)s->rej_no_agent);
	}
	evbuffer_add_printf(out, "</table>\n");
}

static void gw_page_tunnels(struct evbuffer *out, const struct gateway *gw)
{
	evbuffer_add_printf(out, "<h2>Agent tunnels</h2><table id=\"tunnels\"><tr><th>agent</th>"
				 "<th>from</th><th>slot</th><th>state</th><th>streams</th>"
				 "<th>connected for</th></tr>\n");
	for (size_t i = 0; i < gw->ntunnels; i++) {
		const struct tunnel *t = gw->tunnels[i];
		bool up = tunnel_is_up(t);
		evbuffer_add_printf(out, "<tr><td>");
		page_esc(out, tunnel_peer(t)[0] ? tunnel_peer(t) : "(handshaking)");
		evbuffer_add_printf(out,
				    "</td><td>%s</td><td class=\"n\">%u</td><td class=\"%s\">%s</td>"
				    "<td class=\"n\">%zu</td><td class=\"n\">%.0f s</td></tr>\n",
				    tunnel_peer_addr(t), tunnel_slot(t), up ? "up" : "down",
				    up ? "up" : tunnel_is_established(t) ? "not serving" : "handshake",
				    tunnel_nstreams(t), tunnel_age(t));
	}
	if (gw->ntunnels == 0)
		evbuffer_add_printf(out, "<tr><td colspan=\"6\" class=\"none\">no agent is "
					 "connected</td></tr>\n");
	evbuffer_add_printf(out, "</table>\n");
}

static void gw_page_refused(struct evbuffer *out, const struct gateway *gw)
{
	bool any = false;

	evbuffer_add_printf(out, "<h2>Refused sources (latest %d)</h2><table id=\"refused\"><tr>"
				 "<th>source</th><th>service</th><th>reason</th><th>times</th>"
				 "<th>last (UTC)</th></tr>\n",
			    GW_REFUSED_KEPT);
	for (size_t i = 0; i < GW_REFUSED_KEPT; i++) {
		const struct gw_refused *r = &gw->refused[i];
		char when[32];
		if (r->count == 0)
			continue;
		any = true;
		page_time(when, sizeof(when), r->last);
		evbuffer_add_printf(out, "<tr><td>");
		page_esc(out, r->host);
		evbuffer_add_printf(out,
				    "</td><td>%s</td><td>%s</td><td class=\"n\">%llu</td><td>%s</td>"
				    "</tr>\n",
				    r->service, r->reason, (unsigned long long)r->count, when);
	}
	if (!any)
		evbuffer_add_printf(out, "<tr><td colspan=\"5\" class=\"none\">none</td></tr>\n");
	evbuffer_add_printf(out, "</table>\n");
}

static void gw_page(struct evbuffer *out, void *arg)
{
	struct gateway *gw = arg;
	uint64_t up = 0, open = 0, total = 0, refused = 0, b[2] = { 0, 0 };
	char bin[32], bout[32];

	for (size_t i = 0; i < gw->ntunnels; i++)
		up += tunnel_is_up(gw->tunnels[i]);
	for (size_t i = 0; i < gw->nsvcs; i++) {
		const struct gw_service *s = gw->svcs[i];
		open += s->open;
		total += s->connections;
		refused += s->rej_source + s->rej_limit + s->rej_per_source + s->rej_first_byte +
			   s->rej_no_agent;
		b[0] += s->bytes[0];
		b[1] += s->bytes[1];
	}
	page_bytes(bin, sizeof(bin), b[0]);
	page_bytes(bout, sizeof(bout), b[1]);
	evbuffer_add_printf(out, "<div class=\"tiles\">");
	page_tile_text(out, "state", "state", gw->draining ? "draining" : "serving");
	page_tile(out, "tunnels_up", "agent tunnels up", up);
	page_tile(out, "visitors_open", "visitors now", open);
	page_tile(out, "visitors_total", "visitors accepted", total);
	page_tile(out, "refused_total", "visitors refused", refused);
	page_tile_text(out, "bytes_in", "from visitors", bin);
	page_tile_text(out, "bytes_out", "to visitors", bout);
	evbuffer_add_printf(out, "</div>\n");
	gw_page_services(out, gw);
	gw_page_tunnels(out, gw);
	gw_page_refused(out, gw);
	page_chart(out, "visits_chart", "Visitors per minute", &gw->visits, clock_wall());
}

static int gw_health(char *why, size_t len, void *arg)
{
	struct gateway *gw = arg;

	if (gw->draining) {
		snprintf(why, len, "draining");
		return -1;
	}
	return 0;
}

static const struct admin_ops gw_admin_ops = {
	.role = "gateway",
	.page = gw_page,
	.metrics = gw_metrics,
	.status = gw_status,
	.health = gw_health,
};

static int gw_admin(struct gateway *gw, const struct config_gateway *cfg)
{
	char err[256];

	return admin_reconfigure(&gw->admin, gw->base, cfg->c.d.admin_on ? &cfg->c.d.admin : NULL,
				 cfg->c.d.admin_token, &gw_admin_ops, gw, err, sizeof(err));
}

/* ---- signals ---- */

static void gw_reload(void *arg)
{
	struct gateway *gw = arg;
	char *msgs = NULL;
	struct config_gateway *cfg = config_gateway_load(gw->path, &msgs);
	SSL_CTX *ctx;

	if (cfg == NULL) {
		for (char *line = strtok(msgs, "\n"); line; line = strtok(NULL, "\n"))
			log_error("event=reload_failed error=\"%s\"", line);
		free(msgs);
		return;
	}
	ctx = gw_ctx(gw, cfg);
	if (ctx == NULL || gw_apply(gw, cfg) == -1) {
		log_error("event=reload_failed error=\"kept the running configuration\"");
		SSL_CTX_free(ctx);
		config_gateway_free(cfg);
		return;
	}
	SSL_CTX_free(gw->ctx);
	gw->ctx = ctx;
	config_gateway_free(gw->cfg);
	gw->cfg = cfg;
	log_set_level(cfg->c.d.log_level);
	budget_set_limit(cfg->c.memory_budget);
	tstream_budget_raised(); /* streams waiting for a budget now larger */
	gw_admin(gw, cfg);
	/* Tunnels of agents no longer allowed, whose certificate changed, or (CA mode) whose
	 * certificate no longer verifies, say because the CRL now revokes it, go. So do those
	 * still in their handshake: their SSL verifies against the old context's store (the
	 * old CRL); the agent dials again and meets the new one. */
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
		else if (!ag->has_fp && (err = gw_reverify(ctx, t)) != 0)
			tunnel_close(t, err == X509_V_ERR_CERT_REVOKED ? "revoked" : "not_allowed");
	}
	log_info("event=reloaded services=%zu agents=%zu", cfg->nservices, cfg->nagents);
}

/* SIGTERM: no new visitors; the streams in hand get drain_timeout to finish. */
static double gw_drain(void *arg)
{
	struct gateway *gw = arg;

	gw->draining = true;
	for (size_t i = 0; i < gw->nsvcs; i++) {
		for (size_t j = 0; j < gw->svcs[i]->nls; j++)
			gw_listener_free(gw->svcs[i]->ls[j]);
		gw->svcs[i]->nls = 0;
	}
	log_info("event=drain_started streams=%llu", (unsigned long long)tstream_stats.streams_open);
	return gw->cfg->c.drain_timeout;
}

static bool gw_idle(void *arg)
{
	(void)arg;
	return tstream_stats.streams_open == 0;
}

static const struct lifecycle_ops gw_lifecycle_ops = {
	.reload = gw_reload,
	.drain = gw_drain,
	.idle = gw_idle,
	.housekeeping = tunnel_housekeeping,
};

struct gateway *gateway_new(struct event_base *base, const char *path, struct config_gateway *cfg)
{
	struct gateway *gw = xcalloc(1, sizeof(*gw));

	gw->base = base;
	gw->path = path;
	gw->cfg = cfg;
	gw->tunnel_set = listener_set_new("handshake_failed", "listener=tunnel",
					  &(struct listener_limits){ 0 });
	budget_set_limit(cfg->c.memory_budget);
	gw->ctx = gw_ctx(gw, cfg);
	if (gw->ctx == NULL || gw_apply(gw, cfg) == -1 || gw_admin(gw, cfg) == -1) {
		gateway_free(gw);
		return NULL;
	}
	gw->life = lifecycle_new(base, &gw_lifecycle_ops, gw);
	for (size_t i = 0; i < gw->ntls; i++) {
		char a[ADDR_STRLEN];
		addr_format((const struct sockaddr *)&listener_addr(gw->tls[i]->l)->ss, a, sizeof(a));
		log_info("event=listening what=tunnel addr=%s", a);
	}
	for (size_t i = 0; i < gw->nsvcs; i++) {
		for (size_t j = 0; j < gw->svcs[i]->nls; j++) {
			char a[ADDR_STRLEN];
			addr_format((const struct sockaddr *)&listener_addr(gw->svcs[i]->ls[j]->l)->ss,
				    a, sizeof(a));
			log_info("event=listening what=service service=%s addr=%s",
				 gw->svcs[i]->cfg.name, a);
		}
	}
	return gw;
}

int gateway_run(struct gateway *gw)
{
	event_base_dispatch(gw->base);
	return gw->status;
}

void gateway_free(struct gateway *gw)
{
	if (gw == NULL)
		return;
	while (gw->ntunnels > 0)
		tunnel_close(gw->tunnels[gw->ntunnels - 1], "shutdown");
	for (size_t i = 0; i < gw->nsvcs; i++)
		gw_service_unref(gw->svcs[i]);
	free(gw->svcs);
	for (size_t i = 0; i < gw->ntls; i++)
		gw_listener_free(gw->tls[i]);
	listener_set_free(gw->tunnel_set);
	admin_free(gw->admin);
	lifecycle_free(gw->life);
	SSL_CTX_free(gw->ctx);
	config_gateway_free(gw->cfg);
	free(gw);
}
