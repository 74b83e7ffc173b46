#include "wall/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/num.h"
#include "wall/config_route.h"
#include "core/xalloc.h"
#include "wall/config_target.h"

#define CONFIG_WINDOW_MIN (64u * 1024) /* stream_window: 64 KiB .. 1 GiB, both included */
#define CONFIG_WINDOW_MAX (1u << 30)
#define CONFIG_RATE_MIN 1024u                   /* rate_limit: 1 KiB/s .. 1 TB/s, or 0 */
#define CONFIG_RATE_MAX 1000000000000ull
#define CONFIG_BUDGET_MIN (1ull << 20) /* memory_budget: 1 MiB .. 1 TiB, both included */
#define CONFIG_BUDGET_MAX (1ull << 40)
#define CONFIG_BUDGET_DEFAULT (64ull << 20) /* a small VM's share */

static void *config_push(void *arr, size_t *n, size_t size)
{
	char *p = xrealloc(arr, (*n + 1) * size);

	memset(p + *n * size, 0, size);
	(*n)++;
	return p;
}

static void config_common_defaults(struct config_common *c, uint16_t admin_port)
{
	daemon_conf_defaults(&c->d, admin_port == 9100 ? "127.0.0.1:9100" : "127.0.0.1:9101");
	c->tp.ping_interval = 1;
	c->tp.peer_timeout = 3;
	c->tp.handshake_timeout = 5;
	c->tp.stream_window = 4u * 1024 * 1024;
	c->drain_timeout = 10;
	c->memory_budget = CONFIG_BUDGET_DEFAULT;
}

static void config_common_free(struct config_common *c)
{
	free(c->cert);
	free(c->key);
	free(c->ca);
	daemon_conf_free(&c->d);
}

static void config_addr(struct conf *cf, const char *key, const char *v, struct addr *out)
{
	char err[300];

	if (addr_parse(v, out, err, sizeof(err)) == -1)
		conf_error(cf, "%s: %s", key, err);
}

/* Keys shared by [gateway] and [agent]. Returns 1 if key was one of them. */
static int config_common_key(struct conf *cf, struct config_common *c, const char *key,
			     const char *v)
{
	uint64_t n;

	if ((strcmp(key, "cert") == 0 || strcmp(key, "key") == 0 || strcmp(key, "ca") == 0) &&
	    v[0] == '\0') {
		conf_error(cf, "%s: empty value (want a file path)", key);
		return 1;
	}
	if (strcmp(key, "cert") == 0) {
		free(c->cert);
		c->cert = conf_path(cf, v);
		c->cert_line = cf->line;
	} else if (strcmp(key, "key") == 0) {
		free(c->key);
		c->key = conf_path(cf, v);
		c->key_line = cf->line;
	} else if (strcmp(key, "ca") == 0) {
		free(c->ca);
		c->ca = conf_path(cf, v);
		c->ca_line = cf->line;
	} else if (daemon_conf_key(cf, &c->d, key, v)) {
		/* admin, admin_token_file, log_level, user, allow_root, seccomp */
	} else if (strcmp(key, "ping_interval") == 0) {
		conf_seconds(cf, key, v, 0.05, 3600, &c->tp.ping_interval);
	} else if (strcmp(key, "peer_timeout") == 0) {
		conf_seconds(cf, key, v, 0.1, 3600, &c->tp.peer_timeout);
	} else if (strcmp(key, "handshake_timeout") == 0) {
		conf_seconds(cf, key, v, 0.1, 600, &c->tp.handshake_timeout);
	} else if (strcmp(key, "drain_timeout") == 0) {
		conf_seconds(cf, key, v, 0, 3600, &c->drain_timeout);
	} else if (strcmp(key, "handover") == 0) {
		free(c->d.handover);
		c->d.handover = v[0] != '\0' ? conf_path(cf, v) : NULL;
		if (c->d.handover == NULL || strlen(c->d.handover) > CONFIG_HANDOVER_PATH_MAX)
			conf_error(cf, "handover: want a socket path of at most %d bytes",
				   CONFIG_HANDOVER_PATH_MAX);
	} else if (strcmp(key, "stream_window") == 0) {
		if (num_u64(v, CONFIG_WINDOW_MIN, CONFIG_WINDOW_MAX, &n) == -1)
			conf_error(cf, "stream_window: want bytes between %u and %u, got '%s'",
				   CONFIG_WINDOW_MIN, CONFIG_WINDOW_MAX, v);
		else
			c->tp.stream_window = (uint32_t)n;
	} else if (strcmp(key, "memory_budget") == 0) {
		if (num_u64(v, CONFIG_BUDGET_MIN, CONFIG_BUDGET_MAX, &n) == -1)
			conf_error(cf, "memory_budget: want bytes between %llu and %llu, got '%s'",
				   CONFIG_BUDGET_MIN, CONFIG_BUDGET_MAX, v);
		else
			c->memory_budget = n;
	} else {
		return 0;
	}
	return 1;
}

static void config_common_check(struct conf *cf, const struct config_common *c,
				const char *section)
{
	if (c->cert == NULL)
		conf_error(cf, "[%s]: missing required key 'cert'", section);
	if (c->key == NULL)
		conf_error(cf, "[%s]: missing required key 'key'", section);
	if (c->tp.peer_timeout <= c->tp.ping_interval)
		conf_error(cf, "[%s]: peer_timeout must be longer than ping_interval", section);
}

/* ---- gateway ---- */

struct gw_load {
	struct config_gateway *g;
	struct config_agent *agent;     /* section being read */
	struct config_service *service; /* section being read */
	bool in_gateway, seen_gateway, bad_section;
	int gateway_line; /* where [gateway] starts: missing keys are reported there */
};

static void gw_on_section(struct conf *cf, const char *section)
{
	struct gw_load *l = cf->user;
	struct config_gateway *g = l->g;
	char kind[32];
	const char *name;

	l->agent = NULL;
	l->service = NULL;
	l->in_gateway = false;
	l->bad_section = false;
	conf_section_split(section, kind, sizeof(kind), &name);
	if (strcmp(section, "gateway") == 0) {
		if (l->seen_gateway)
			conf_error(cf, "[gateway] appears twice");
		l->in_gateway = l->seen_gateway = true;
		l->gateway_line = cf->line;
	} else if (strcmp(kind, "agent") == 0 && conf_name_ok(name)) {
		if (config_find_agent(g, name) != NULL)
			conf_error(cf, "[agent %s] appears twice", name);
		g->agents = config_push(g->agents, &g->nagents, sizeof(*g->agents));
		l->agent = &g->agents[g->nagents - 1];
		snprintf(l->agent->name, sizeof(l->agent->name), "%s", name);
		l->agent->line = cf->line;
	} else if (strcmp(kind, "service") == 0 && conf_name_ok(name)) {
		if (config_find_service(g, name) != NULL)
			conf_error(cf, "[service %s] appears twice", name);
		g->services = config_push(g->services, &g->nservices, sizeof(*g->services));
		l->service = &g->services[g->nservices - 1];
		snprintf(l->service->name, sizeof(l->service->name), "%s", name);
		l->service->line = cf->line;
		l->service->max_connections = 10000;
		l->service->source_prefix_v4 = 32;
		l->service->source_prefix_v6 = 64;
		l->service->idle_timeout = 3600;
	} else {
		l->bad_section = true;
		conf_error(cf, "unknown section [%s] (want [gateway], [agent NAME] or "
			       "[service NAME]; names are letters, digits, '.', '_', '-')",
			   section);
	}
}

struct list_ctx {
	struct conf *cf;
	struct config_service *s;
};

static int gw_agent_item(const char *item, void *arg)
{
	struct list_ctx *x = arg;

	if (!conf_name_ok(item)) {
		conf_error(x->cf, "agents: bad agent name '%s'", item);
		return -1;
	}
	if (x->s->nagents == CONFIG_MAX_LIST) {
		conf_error(x->cf, "agents: more than %d", CONFIG_MAX_LIST);
		return -1;
	}
	snprintf(x->s->agents[x->s->nagents++], CONF_NAME_MAX + 1, "%s", item);
	return 0;
}

static int gw_allow_item(const char *item, void *arg)
{
	struct list_ctx *x = arg;

	if (x->s->nallow == CONFIG_MAX_LIST) {
		conf_error(x->cf, "allow: more than %d entries", CONFIG_MAX_LIST);
		return -1;
	}
	if (addr_cidr_parse(item, &x->s->allow[x->s->nallow]) == -1) {
		conf_error(x->cf, "allow: bad address or CIDR '%s' (e.g. 203.0.113.0/24, "
				  "2001:db8::/32; host bits must be zero)",
			   item);
		return -1;
	}
	x->s->nallow++;
	return 0;
}

/* A key of [gateway], past the keys every daemon of the wall shares. */
static void gw_gateway_key(struct conf *cf, struct config_gateway *g, const char *key,
			   const char *v)
{
	if (config_common_key(cf, &g->c, key, v))
		return;
	if (strcmp(key, "listen") == 0) {
		if (g->nlisten == CONFIG_MAX_LIST)
			conf_error(cf, "listen: more than %d", CONFIG_MAX_LIST);
		else
			config_addr(cf, key, v, &g->listen[g->nlisten++]);
	} else if (strcmp(key, "route_timeout") == 0) {
		conf_seconds(cf, key, v, 0.1, 600, &g->route_timeout);
	} else if (strcmp(key, "crl") == 0) {
		if (v[0] == '\0') {
			conf_error(cf, "crl: empty value (want a file path)");
		} else {
			free(g->crl);
			g->crl = conf_path(cf, v);
			g->crl_line = cf->line;
		}
	} else {
		conf_error(cf, "unknown key '%s' in [gateway]", key);
	}
}

/* A key of [agent NAME]. */
static void gw_agent_key(struct conf *cf, struct config_agent *ag, const char *section,
			 const char *key, const char *v)
{
	if (strcmp(key, "fingerprint") == 0) {
		if (tls_fingerprint_parse(v, ag->fp) == -1)
			conf_error(cf, "fingerprint: want 64 hex digits (SHA-256), got '%s'", v);
		else
			ag->has_fp = true;
	} else {
		conf_error(cf, "unknown key '%s' in [%s]", key, section);
	}
}

/* A key of [service NAME] that is a number or a duration; returns 0 if key is none. */
static int gw_service_limit(struct conf *cf, struct config_service *s, const char *key,
			    const char *v)
{
	uint64_t n;

	if (strcmp(key, "max_connections") == 0) {
		if (num_u64(v, 1, 1000000, &n) == -1)
			conf_error(cf, "max_connections: want 1..1000000, got '%s'", v);
		else
			s->max_connections = n;
	} else if (strcmp(key, "max_per_source") == 0) {
		if (num_u64(v, 1, 1000000, &n) == -1)
			conf_error(cf, "max_per_source: want 1..1000000, got '%s'", v);
		else
			s->max_per_source = n;
	} else if (strcmp(key, "source_prefix_v4") == 0) {
		if (num_u64(v, 8, 32, &n) == -1)
			conf_error(cf, "source_prefix_v4: want 8..32, got '%s'", v);
		else
			s->source_prefix_v4 = (unsigned)n;
	} else if (strcmp(key, "source_prefix_v6") == 0) {
		if (num_u64(v, 16, 128, &n) == -1)
			conf_error(cf, "source_prefix_v6: want 16..128, got '%s'", v);
		else
			s->source_prefix_v6 = (unsigned)n;
	} else if (strcmp(key, "idle_timeout") == 0) {
		conf_seconds(cf, key, v, 0, 7 * 86400, &s->idle_timeout);
	} else if (strcmp(key, "first_byte_timeout") == 0) {
		conf_seconds(cf, key, v, 0, 3600, &s->first_byte_timeout);
		s->fbt_line = cf->line;
	} else if (strcmp(key, "rate_limit") == 0 || strcmp(key, "visitor_rate_limit") == 0) {
		if (num_u64(v, 0, CONFIG_RATE_MAX, &n) == -1 || (n > 0 && n < CONFIG_RATE_MIN))
			conf_error(cf, "%s: want bytes a second, 0 (no limit) or %u .. %llu, got '%s'",
				   key, CONFIG_RATE_MIN, CONFIG_RATE_MAX, v);
		else if (key[0] == 'r')
			s->rate_limit = n;
		else
			s->visitor_rate_limit = n;
	} else {
		return 0;
	}
	return 1;
}

/* A key of [service NAME]. */
static void gw_service_key(struct conf *cf, struct config_service *s, const char *section,
			   const char *key, const char *v)
{
	struct list_ctx x = { cf, s };

	if (gw_service_limit(cf, s, key, v))
		return;
	if (strcmp(key, "listen") == 0) {
		if (s->nlisten == CONFIG_MAX_LIST)
			conf_error(cf, "listen: more than %d", CONFIG_MAX_LIST);
		else
			config_addr(cf, key, v, &s->listen[s->nlisten++]);
	} else if (strcmp(key, "agents") == 0) {
		conf_list(v, gw_agent_item, &x);
	} else if (strcmp(key, "allow") == 0) {
		if (v[0] == '\0')
			conf_error(cf, "allow: empty value (omit the key to allow everyone)");
		else
			conf_list(v, gw_allow_item, &x);
	} else if (strcmp(key, "sni") == 0 || strcmp(key, "host") == 0) {
		config_route_names(cf, s, key, v);
	} else if (strcmp(key, "default") == 0) {
		if (conf_bool(v, &s->is_default) == -1)
			conf_error(cf, "default: want yes or no, got '%s'", v);
		s->default_line = cf->line;
	} else if (strcmp(key, "proxy_protocol") == 0) {
		if (strcmp(v, "off") == 0)
			s->proxy = 0;
		else if (strcmp(v, "v1") == 0)
			s->proxy = 1;
		else if (strcmp(v, "v2") == 0)
			s->proxy = 2;
		else
			conf_error(cf, "proxy_protocol: want off, v1 or v2, got '%s'", v);
	} else {
		conf_error(cf, "unknown key '%s' in [%s]", key, section);
	}
}

static void gw_on_key(struct conf *cf, const char *section, const char *key, const char *v)
{
	struct gw_load *l = cf->user;

	if (l->bad_section)
		return;
	if (l->in_gateway)
		gw_gateway_key(cf, l->g, key, v);
	else if (l->agent != NULL)
		gw_agent_key(cf, l->agent, section, key, v);
	else if (l->service != NULL)
		gw_service_key(cf, l->service, section, key, v);
	else
		conf_error(cf, "key '%s' outside any section", key);
}

static void gw_check(struct conf *cf, struct config_gateway *g, bool seen, int line)
{
	cf->line = seen ? line : 1;
	if (!seen) {
		conf_error(cf, "missing [gateway] section");
		return;
	}
	config_common_check(cf, &g->c, "gateway");
	if (g->crl != NULL && g->c.ca == NULL) {
		cf->line = g->crl_line;
		conf_error(cf, "crl: needs 'ca' (a CRL revokes certificates the CA signed)");
		cf->line = line;
	}
	if (g->nlisten == 0)
		conf_error(cf, "[gateway]: missing required key 'listen' (the agents' address)");
	for (size_t i = 0; i < g->nagents; i++) {
		cf->line = g->agents[i].line;
		if (!g->agents[i].has_fp && g->c.ca == NULL)
			conf_error(cf, "[agent %s]: missing 'fingerprint' (required unless [gateway] "
				       "sets 'ca')",
				   g->agents[i].name);
	}
	for (size_t i = 0; i < g->nservices; i++) {
		struct config_service *s = &g->services[i];
		cf->line = s->line;
		if (s->nlisten == 0)
			conf_error(cf, "[service %s]: missing required key 'listen'", s->name);
		if (s->nagents == 0)
			conf_error(cf, "[service %s]: missing required key 'agents'", s->name);
		for (size_t j = 0; j < s->nagents; j++)
			if (config_find_agent(g, s->agents[j]) == NULL)
				conf_error(cf, "[service %s]: agent '%s' has no [agent %s] section",
					   s->name, s->agents[j], s->agents[j]);
		for (size_t j = 0; j < s->nlisten; j++)
			for (size_t k = 0; k < g->nlisten; k++)
				if (addr_equal(&s->listen[j], &g->listen[k]))
					conf_error(cf, "[service %s]: listen address is also the "
						       "gateway's tunnel address",
						   s->name);
	}
	config_route_check(cf, g->services, g->nservices);
}

struct config_gateway *config_gateway_load(const char *file, char **msgs)
{
	struct config_gateway *g = xcalloc(1, sizeof(*g));
	struct gw_load l = { .g = g };
	struct conf cf = { .file = file, .user = &l, .on_section = gw_on_section,
			   .on_key = gw_on_key };

	config_common_defaults(&g->c, 9100);
	g->route_timeout = 10;
	conf_load(&cf);
	if (cf.errors == 0 || l.seen_gateway)
		gw_check(&cf, g, l.seen_gateway, l.gateway_line);
	if (cf.errors) {
		if (msgs != NULL)
			*msgs = xstrndup((const char *)buf_head(&cf.msgs), cf.msgs.len);
		conf_done(&cf);
		config_gateway_free(g);
		return NULL;
	}
	conf_done(&cf);
	return g;
}

void config_gateway_free(struct config_gateway *g)
{
	if (g == NULL)
		return;
	config_common_free(&g->c);
	free(g->crl);
	free(g->agents);
	free(g->services);
	free(g);
}

const struct config_agent *config_find_agent(const struct config_gateway *g, const char *name)
{
	for (size_t i = 0; i < g->nagents; i++)
		if (strcmp(g->agents[i].name, name) == 0)
			return &g->agents[i];
	return NULL;
}

const struct config_service *config_find_service(const struct config_gateway *g,
						 const char *name)
{
	for (size_t i = 0; i < g->nservices; i++)
		if (strcmp(g->services[i].name, name) == 0)
			return &g->services[i];
	return NULL;
}

/* ---- agent ---- */

struct ag_load {
	struct config_agentd *a;
	struct config_target *target;
	bool in_agent, seen_agent, bad_section;
	int agent_line;
};

static void ag_on_section(struct conf *cf, const char *section)
{
	struct ag_load *l = cf->user;
	struct config_agentd *a = l->a;
	char kind[32];
	const char *name;

	l->target = NULL;
	l->in_agent = false;
	l->bad_section = false;
	conf_section_split(section, kind, sizeof(kind), &name);
	if (strcmp(section, "agent") == 0) {
		if (l->seen_agent)
			conf_error(cf, "[agent] appears twice");
		l->in_agent = l->seen_agent = true;
		l->agent_line = cf->line;
	} else if (strcmp(kind, "service") == 0 && conf_name_ok(name)) {
		if (config_find_target(a, name) != NULL)
			conf_error(cf, "[service %s] appears twice", name);
		a->targets = config_push(a->targets, &a->ntargets, sizeof(*a->targets));
		l->target = &a->targets[a->ntargets - 1];
		snprintf(l->target->name, sizeof(l->target->name), "%s", name);
		l->target->line = cf->line;
		config_target_defaults(l->target);
	} else {
		l->bad_section = true;
		conf_error(cf, "unknown section [%s] (want [agent] or [service NAME])", section);
	}
}

/* "gateway = HOST:PORT [SHA256]": an address, and the pin of that gateway's certificate
 * when it has a key of its own. The same address twice is an error. */
/* "gateway = HOST:PORT [SHA256]". A name that resolves to several addresses (DNS round
 * robin in front of several gateways) is a gateway per address, sharing the line's pin:
 * every gateway a visitor may reach needs this agent's tunnels. */
static void ag_gateway_key(struct conf *cf, struct config_agentd *a, const char *v)
{
	size_t i = a->ngateways, n = strcspn(v, " \t");
	struct addr found[CONFIG_MAX_LIST];
	bool pinned = false;
	uint8_t pin[TLS_FP_LEN];
	char addr[300], err[300], host[256];
	uint16_t port;
	int nfound;

	if (n >= sizeof(addr)) {
		conf_error(cf, "gateway: address too long");
		return;
	}
	memcpy(addr, v, n);
	addr[n] = '\0';
	v += n + strspn(v + n, " \t");
	if (v[0] != '\0') {
		if (tls_fingerprint_parse(v, pin) == -1) {
			conf_error(cf, "gateway: want HOST:PORT and optionally the gateway's SHA-256 "
				       "(64 hex digits), got '%s' after the address", v);
			return;
		}
		pinned = true;
	}
	if ((nfound = addr_resolve(addr, found, CONFIG_MAX_LIST, err, sizeof(err))) == -1) {
		conf_error(cf, "gateway: %s", err);
		return;
	}
	if (i + (size_t)nfound > CONFIG_MAX_LIST) {
		conf_error(cf, "gateway: %s makes more than %d gateway addresses in all (it has %d)",
			   addr, CONFIG_MAX_LIST, nfound);
		return;
	}
	/* in a fixed order: a resolver that rotates its answers (DNS round robin) does not
	 * make a reload see other gateways and redial every tunnel */
	qsort(found, (size_t)nfound, sizeof(found[0]), addr_cmp);
	if (addr_split(addr, host, sizeof(host), &port) == -1)
		host[0] = '\0';
	for (int f = 0; f < nfound; f++) {
		for (size_t k = 0; k < a->ngateways; k++) {
			if (addr_equal(&a->gateways[k], &found[f])) {
				conf_error(cf, "gateway: %s given twice", addr);
				return;
			}
		}
		a->gateways[i] = found[f];
		a->gateway_pinned[i] = pinned;
		if (pinned)
			memcpy(a->gateway_pin[i], pin, TLS_FP_LEN);
		snprintf(a->gateway_host[i], sizeof(a->gateway_host[i]), "%s", host);
		a->ngateways = ++i;
	}
}

static void ag_on_key(struct conf *cf, const char *section, const char *key, const char *v)
{
	struct ag_load *l = cf->user;
	struct config_agentd *a = l->a;
	uint64_t n;

	if (l->bad_section)
		return;
	if (l->target != NULL) {
		config_target_key(cf, l->target, section, key, v);
		return;
	}
	if (!l->in_agent) {
		conf_error(cf, "key '%s' outside any section", key);
		return;
	}
	if (config_common_key(cf, &a->c, key, v))
		return;
	if (strcmp(key, "gateway") == 0) {
		ag_gateway_key(cf, a, v);
	} else if (strcmp(key, "gateway_fingerprint") == 0) {
		uint8_t fp[TLS_FP_LEN];

		if (tls_fingerprint_parse(v, fp) == -1)
			conf_error(cf, "gateway_fingerprint: want 64 hex digits (SHA-256), got '%s'",
				   v);
		else if (a->has_pin)
			conf_error(cf, "gateway_fingerprint: given twice (a gateway with a key of "
				       "its own takes its pin on its line: gateway = HOST:PORT SHA256)");
		else
			memcpy(a->gateway_fp, fp, TLS_FP_LEN);
		a->has_pin = true;
	} else if (strcmp(key, "server_name") == 0) {
		free(a->server_name);
		a->server_name = xstrdup(v);
	} else if (strcmp(key, "tunnels") == 0) {
		if (num_u64(v, 1, 16, &n) == -1)
			conf_error(cf, "tunnels: want 1..16, got '%s'", v);
		else
			a->tunnels = (unsigned)n;
	} else if (strcmp(key, "backoff_initial") == 0) {
		conf_seconds(cf, key, v, 0.01, 60, &a->backoff_initial);
	} else if (strcmp(key, "backoff_max") == 0) {
		conf_seconds(cf, key, v, 0.01, 3600, &a->backoff_max);
	} else if (strcmp(key, "connect_timeout") == 0) {
		conf_seconds(cf, key, v, 0.1, 600, &a->connect_timeout);
	} else {
		conf_error(cf, "unknown key '%s' in [agent]", key);
	}
}

static void ag_check(struct conf *cf, struct config_agentd *a, bool seen, int line)
{
	cf->line = seen ? line : 1;
	if (!seen) {
		conf_error(cf, "missing [agent] section");
		return;
	}
	config_common_check(cf, &a->c, "agent");
	if (a->ngateways == 0)
		conf_error(cf, "[agent]: missing required key 'gateway'");
	if (a->c.ca == NULL && !a->has_pin) {
		bool all = a->ngateways > 0;

		for (size_t i = 0; i < a->ngateways; i++)
			all = all && a->gateway_pinned[i];
		if (!all)
			conf_error(cf, "[agent]: set 'gateway_fingerprint' (pinned) or 'ca' to "
				       "verify the gateway, or pin each gateway on its line");
	}
	if (a->backoff_max < a->backoff_initial)
		conf_error(cf, "[agent]: backoff_max is shorter than backoff_initial");
	if (a->ntargets == 0)
		conf_error(cf, "no [service NAME] section: the agent would serve nothing");
	for (size_t i = 0; i < a->ntargets; i++)
		config_target_check(cf, &a->targets[i]);
}

struct config_agentd *config_agent_load(const char *file, char **msgs)
{
	struct config_agentd *a = xcalloc(1, sizeof(*a));
	struct ag_load l = { .a = a };
	struct conf cf = { .file = file, .user = &l, .on_section = ag_on_section,
			   .on_key = ag_on_key };

	config_common_defaults(&a->c, 9101);
	a->tunnels = 2;
	a->backoff_initial = 0.1;
	a->backoff_max = 2;
	a->connect_timeout = 5;
	conf_load(&cf);
	if (cf.errors == 0 || l.seen_agent)
		ag_check(&cf, a, l.seen_agent, l.agent_line);
	if (cf.errors) {
		if (msgs != NULL)
			*msgs = xstrndup((const char *)buf_head(&cf.msgs), cf.msgs.len);
		conf_done(&cf);
		config_agent_free(a);
		return NULL;
	}
	conf_done(&cf);
	return a;
}

void config_agent_free(struct config_agentd *a)
{
	if (a == NULL)
		return;
	config_common_free(&a->c);
	for (size_t i = 0; i < a->ntargets; i++) {
		config_target_clear(&a->targets[i]);
	}
	free(a->targets);
	free(a->server_name);
	free(a);
}

const struct config_target *config_find_target(const struct config_agentd *a, const char *name)
{
	for (size_t i = 0; i < a->ntargets; i++)
		if (strcmp(a->targets[i].name, name) == 0)
			return &a->targets[i];
	return NULL;
}

int config_kind(const char *file)
{
	char line[512];
	FILE *f = fopen(file, "r");
	int kind = 0;

	if (f == NULL)
		return 0;
	for (int n = 1; kind == 0 && fgets(line, sizeof(line), f) != NULL; n++) {
		const char *p = line;
		if (n == 1 && strncmp(p, "\xef\xbb\xbf", 3) == 0)
			p += 3; /* a UTF-8 byte order mark, as conf_load skips it */
		p += strspn(p, " \t");
		if (strncmp(p, "[gateway]", 9) == 0)
			kind = 'g';
		else if (strncmp(p, "[agent]", 7) == 0)
			kind = 'a';
		else if (strncmp(p, "[intake]", 8) == 0)
			kind = 'i';
		else if (strncmp(p, "[chat]", 6) == 0)
			kind = 'c';
	}
	fclose(f);
	return kind;
}

/* ---- TLS material ---- */

static void config_tls_error(struct buf *out, const char *file, int line, const char *err)
{
	char head[64];

	snprintf(head, sizeof(head), ":%d: ", line);
	buf_append(out, file, strlen(file));
	buf_append(out, head, strlen(head));
	buf_append(out, err, strlen(err));
	buf_append(out, "\n", 1);
}

static void config_check_common(const char *file, const struct config_common *c, bool server,
				struct buf *out)
{
	char err[512];
	SSL_CTX *ctx = server ? tls_ctx_server(c->cert, c->key, err, sizeof(err))
			      : tls_ctx_client(c->cert, c->key, err, sizeof(err));

	if (ctx == NULL) {
		/* name the line of whichever file OpenSSL could not use */
		config_tls_error(out, file, strstr(err, c->key) ? c->key_line : c->cert_line, err);
		return;
	}
	if (c->ca != NULL && tls_ctx_load_ca(ctx, c->ca, err, sizeof(err)) == -1)
		config_tls_error(out, file, c->ca_line, err);
	SSL_CTX_free(ctx);
}

static int config_check_done(struct buf *out, char **msgs)
{
	if (out->len == 0)
		return 0;
	*msgs = xstrndup((const char *)buf_head(out), out->len);
	buf_free(out);
	return -1;
}

int config_gateway_check_tls(const char *file, const struct config_gateway *g, char **msgs)
{
	struct buf out = { 0 };
	char err[512];

	config_check_common(file, &g->c, true, &out);
	if (g->crl != NULL) {
		SSL_CTX *ctx = tls_ctx_server(g->c.cert, g->c.key, err, sizeof(err));
		if (ctx != NULL && tls_ctx_load_crl(ctx, g->crl, err, sizeof(err)) == -1)
			config_tls_error(&out, file, g->crl_line, err);
		SSL_CTX_free(ctx);
	}
	return config_check_done(&out, msgs);
}

int config_agent_check_tls(const char *file, const struct config_agentd *a, char **msgs)
{
	struct buf out = { 0 };
	char err[512];

	config_check_common(file, &a->c, false, &out);
	for (size_t i = 0; i < a->ntargets; i++) {
		const struct config_target *t = &a->targets[i];
		SSL_CTX *ctx;
		if (!t->tls)
			continue;
		ctx = tls_ctx_target(t->tls_ca, t->tls_verify, err, sizeof(err));
		if (ctx == NULL)
			config_tls_error(&out, file, t->tls_line, err);
		SSL_CTX_free(ctx);
	}
	return config_check_done(&out, msgs);
}
