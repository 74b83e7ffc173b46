#include "intake/intake_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conf.h"
#include "core/num.h"
#include "core/tls.h"
#include "core/xalloc.h"

#define INTAKE_MESSAGE_MIN 1024u                 /* max_message: 1 KiB .. 64 MiB */
#define INTAKE_MESSAGE_MAX (64u * 1024 * 1024)
/* memory_budget: 1 MiB .. 64 GiB; the default fits a small VM beside its database */
#define INTAKE_BUDGET_MIN (1024u * 1024)
#define INTAKE_BUDGET_MAX (64ull * 1024 * 1024 * 1024)
#define INTAKE_BUDGET_DEFAULT (64u * 1024 * 1024) /* or 4 x max_message, if more */
#define INTAKE_BUDGET_FACTOR 4u
#define INTAKE_RETAIN_DAYS_MAX 36500.0         /* retain_days: 0 (keep) .. 100 years */
#define INTAKE_RETAIN_BYTES_MAX (1ull << 50)   /* retain_bytes: 0 (no bound) .. 1 PiB */

/* The pharmacy message families and ADT: accepted when no [route] says otherwise. */
static const char *const intake_default_accept[] = { "RDE", "RDS", "RAS", "RGV", "OMP",
						     "ADT" };

struct intake_load {
	struct intake_config *c;
	char section[32];
	bool seen_intake, seen_route, seen_proxy_from, seen_budget;
	int intake_line;
};

static void intake_defaults(struct intake_config *c)
{

	c->tls_min = 12;
	c->max_message = 1024 * 1024;
	c->max_connections = 1024;
	c->max_inflight = 64;
	c->max_per_source = 64;
	/* one host usually holds a whole IPv6 /64: counted by /128 it could open
	 * max_per_source connections from every one of its addresses */
	c->source_prefix_v4 = 32;
	c->source_prefix_v6 = 64;
	c->memory_budget = INTAKE_BUDGET_DEFAULT;
	/* a PROXY header is believed from loopback (an agent on this host) unless told */
	addr_cidr_parse("127.0.0.0/8", &c->proxy_from[c->nproxy_from++]);
	addr_cidr_parse("::1", &c->proxy_from[c->nproxy_from++]);
	c->idle_timeout = 600;
	c->frame_timeout = 30;
	c->write_timeout = 30;
	memcpy(c->processing_ids, "PTD", 4);
	c->default_action = INTAKE_IGNORE;
	c->deliver_timeout = 10;
	c->connect_timeout = 5;
	c->backoff_min = 1;
	c->backoff_max = 300;
	c->poll = 1;
	c->max_attempts = 10;
	c->concurrency = 8;
	daemon_conf_defaults(&c->d, "127.0.0.1:9102");
	c->drain_timeout = 10;
}

static void intake_file(struct conf *cf, const char *key, const char *v, char **out, int *line)
{
	if (v[0] == '\0') {
		conf_error(cf, "%s: empty value (want a file path)", key);
		return;
	}
	free(*out);
	*out = conf_path(cf, v);
	if (line != NULL)
		*line = cf->line;
}

static int intake_listen_item(const char *item, void *arg)
{
	struct conf *cf = arg;
	struct intake_config *c = ((struct intake_load *)cf->user)->c;
	char err[300];

	if (c->nlisten == INTAKE_MAX_LIST) {
		conf_error(cf, "listen: more than %d addresses", INTAKE_MAX_LIST);
		return -1;
	}
	if (addr_parse(item, &c->listen[c->nlisten], err, sizeof(err)) == -1) {
		conf_error(cf, "listen: %s", err);
		return -1;
	}
	c->nlisten++;
	return 0;
}

static int intake_proxy_from_item(const char *item, void *arg)
{
	struct conf *cf = arg;
	struct intake_config *c = ((struct intake_load *)cf->user)->c;

	if (c->nproxy_from == INTAKE_MAX_LIST) {
		conf_error(cf, "proxy_from: more than %d entries", INTAKE_MAX_LIST);
		return -1;
	}
	if (addr_cidr_parse(item, &c->proxy_from[c->nproxy_from]) == -1) {
		conf_error(cf, "proxy_from: '%s' is not an address or CIDR range", item);
		return -1;
	}
	c->nproxy_from++;
	return 0;
}

static int intake_allow_item(const char *item, void *arg)
{
	struct conf *cf = arg;
	struct intake_config *c = ((struct intake_load *)cf->user)->c;

	if (c->nallow == INTAKE_MAX_LIST) {
		conf_error(cf, "allow: more than %d entries", INTAKE_MAX_LIST);
		return -1;
	}
	if (addr_cidr_parse(item, &c->allow[c->nallow]) == -1) {
		conf_error(cf, "allow: '%s' is not an address or CIDR range", item);
		return -1;
	}
	c->nallow++;
	return 0;
}

/* A pattern is "*", "TYPE" or "TYPE^TRIGGER" with 3-character alphanumeric parts. */
static bool intake_pattern_ok(const char *p)
{
	size_t n = strlen(p);

	if (strcmp(p, "*") == 0)
		return true;
	if (n != 3 && n != 7)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool alnum = (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9');
		if (i == 3 ? p[i] != '^' : !alnum)
			return false;
	}
	return true;
}

struct intake_rule_arg {
	struct conf *cf;
	enum intake_action action;
};

static int intake_rule_item(const char *item, void *arg)
{
	struct intake_rule_arg *ra = arg;
	struct intake_config *c = ((struct intake_load *)ra->cf->user)->c;
	struct intake_rule *r;

	if (!intake_pattern_ok(item)) {
		conf_error(ra->cf, "'%s' is not a message type (want TYPE, TYPE^TRIGGER or *, "
				   "e.g. RDE^O11)", item);
		return -1;
	}
	if (c->nrules == INTAKE_MAX_LIST * 3) {
		conf_error(ra->cf, "more than %d routing patterns", INTAKE_MAX_LIST * 3);
		return -1;
	}
	c->rules = xrealloc(c->rules, (c->nrules + 1) * sizeof(*c->rules));
	r = &c->rules[c->nrules++];
	snprintf(r->pattern, sizeof(r->pattern), "%s", item);
	r->action = ra->action;
	return 0;
}

static int intake_action_parse(const char *v, enum intake_action *out)
{
	if (strcmp(v, "accept") == 0)
		*out = INTAKE_ACCEPT;
	else if (strcmp(v, "ignore") == 0)
		*out = INTAKE_IGNORE;
	else if (strcmp(v, "reject") == 0)
		*out = INTAKE_REJECT;
	else
		return -1;
	return 0;
}

static void intake_on_section(struct conf *cf, const char *section)
{
	struct intake_load *l = cf->user;

	snprintf(l->section, sizeof(l->section), "%s", section);
	if (strcmp(section, "intake") == 0) {
		l->seen_intake = true;
		l->intake_line = cf->line;
	} else if (strcmp(section, "route") == 0) {
		l->seen_route = true;
	} else if (strcmp(section, "deliver") != 0) {
		conf_error(cf, "unknown section [%s] (want [intake], [route] or [deliver])",
			   section);
	}
}

/* True after the first proxy_from line; marks it seen. */
static bool l_proxy_from_seen(struct conf *cf)
{
	struct intake_load *l = cf->user;
	bool seen = l->seen_proxy_from;

	l->seen_proxy_from = true;
	return seen;
}

/* The [intake] keys of TLS: tls, cert, key, client_ca, client_certs, tls_min. Returns
 * false for any other key. */
static bool intake_key_tls(struct conf *cf, struct intake_config *c, const char *key,
			   const char *v)
{
	if (strcmp(key, "tls") == 0) {
		if (conf_bool(v, &c->tls) == -1)
			conf_error(cf, "tls: want on or off, got '%s'", v);
	} else if (strcmp(key, "cert") == 0) {
		intake_file(cf, key, v, &c->cert, &c->cert_line);
	} else if (strcmp(key, "key") == 0) {
		intake_file(cf, key, v, &c->key, &c->key_line);
	} else if (strcmp(key, "client_ca") == 0) {
		intake_file(cf, key, v, &c->client_ca, &c->ca_line);
	} else if (strcmp(key, "client_certs") == 0) {
		if (strcmp(v, "off") == 0)
			c->client_certs = INTAKE_CERTS_OFF;
		else if (strcmp(v, "optional") == 0)
			c->client_certs = INTAKE_CERTS_OPTIONAL;
		else if (strcmp(v, "required") == 0)
			c->client_certs = INTAKE_CERTS_REQUIRED;
		else
			conf_error(cf, "client_certs: want off, optional or required, got '%s'", v);
	} else if (strcmp(key, "tls_min") == 0) {
		if (strcmp(v, "1.2") == 0)
			c->tls_min = 12;
		else if (strcmp(v, "1.3") == 0)
			c->tls_min = 13;
		else
			conf_error(cf, "tls_min: want 1.2 or 1.3, got '%s'", v);
	} else {
		return false;
	}
	return true;
}

/* processing_ids: some of P, T and D, each once. */
static void intake_processing_ids(struct conf *cf, struct intake_config *c, const char *v)
{
	char ids[sizeof(c->processing_ids)] = "";
	size_t len = strlen(v);
	bool ok = true;
	size_t n = 0;

	for (size_t i = 0; i < len && ok; i++) {
		if (v[i] == ',' || v[i] == ' ')
			continue;
		ok = (v[i] == 'P' || v[i] == 'T' || v[i] == 'D') &&
		     strchr(ids, v[i]) == NULL;
		if (ok)
			ids[n++] = v[i];
	}
	if (!ok || n == 0)
		conf_error(cf, "processing_ids: want some of P, T and D, got '%s'", v);
	else
		memcpy(c->processing_ids, ids, sizeof(ids));
}

static void intake_key_intake(struct conf *cf, struct intake_config *c, const char *key,
			      const char *v)
{
	if (intake_key_tls(cf, c, key, v))
		return;
	if (strcmp(key, "listen") == 0) {
		conf_list(v, intake_listen_item, cf); /* repeatable */
	} else if (strcmp(key, "proxy") == 0) {
		if (conf_bool(v, &c->proxy) == -1)
			conf_error(cf, "proxy: want on or off, got '%s'", v);
	} else if (strcmp(key, "proxy_from") == 0) {
		if (!l_proxy_from_seen(cf))
			c->nproxy_from = 0; /* the first one replaces the loopback default */
		conf_list(v, intake_proxy_from_item, cf); /* repeatable */
	} else if (strcmp(key, "max_per_source") == 0) {
		conf_count(cf, key, v, 0, 1000000, &c->max_per_source);
	} else if (strcmp(key, "source_prefix_v4") == 0) {
		conf_count(cf, key, v, 8, 32, &c->source_prefix_v4);
	} else if (strcmp(key, "source_prefix_v6") == 0) {
		conf_count(cf, key, v, 16, 128, &c->source_prefix_v6);
	} else if (strcmp(key, "memory_budget") == 0) {
		conf_count(cf, key, v, INTAKE_BUDGET_MIN, INTAKE_BUDGET_MAX, &c->memory_budget);
		((struct intake_load *)cf->user)->seen_budget = true;
	} else if (strcmp(key, "on_reused_control_id") == 0) {
		if (strcmp(v, "store") == 0)
			c->reuse_reject = false;
		else if (strcmp(v, "reject") == 0)
			c->reuse_reject = true;
		else
			conf_error(cf, "on_reused_control_id: want store or reject, got '%s'", v);
	} else if (strcmp(key, "allow") == 0) {
		conf_list(v, intake_allow_item, cf); /* repeatable */
	} else if (strcmp(key, "store") == 0) {
		if (v[0] == '\0') {
			conf_error(cf, "store: empty value (want a SQLite file or postgresql://...)");
			return;
		}
		free(c->store);
		if (strncmp(v, "postgresql://", 13) == 0 || strncmp(v, "postgres://", 11) == 0)
			c->store = xstrdup(v);
		else
			c->store = conf_path(cf, v);
	} else if (strcmp(key, "max_message") == 0) {
		conf_count(cf, key, v, INTAKE_MESSAGE_MIN, INTAKE_MESSAGE_MAX, &c->max_message);
	} else if (strcmp(key, "max_connections") == 0) {
		conf_count(cf, key, v, 1, 1000000, &c->max_connections);
	} else if (strcmp(key, "max_inflight") == 0) {
		conf_count(cf, key, v, 1, 4096, &c->max_inflight);
	} else if (strcmp(key, "idle_timeout") == 0) {
		conf_seconds(cf, key, v, 0.1, 86400, &c->idle_timeout);
	} else if (strcmp(key, "frame_timeout") == 0) {
		conf_seconds(cf, key, v, 0.1, 3600, &c->frame_timeout);
	} else if (strcmp(key, "write_timeout") == 0) {
		conf_seconds(cf, key, v, 0.1, 3600, &c->write_timeout);
	} else if (strcmp(key, "processing_ids") == 0) {
		intake_processing_ids(cf, c, v);
	} else if (strcmp(key, "strict") == 0) {
		if (conf_bool(v, &c->strict) == -1)
			conf_error(cf, "strict: want on or off, got '%s'", v);
	} else if (strcmp(key, "browse") == 0) {
		if (conf_bool(v, &c->browse) == -1)
			conf_error(cf, "browse: want on or off, got '%s'", v);
	} else if (daemon_conf_key(cf, &c->d, key, v)) {
		/* admin, admin_token_file, log_level, user, allow_root, seccomp */
	} else if (strcmp(key, "drain_timeout") == 0) {
		conf_seconds(cf, key, v, 0, 3600, &c->drain_timeout);
	} else if (strcmp(key, "retain_days") == 0) {
		if (num_seconds(v, 0, INTAKE_RETAIN_DAYS_MAX, &c->retain_days) == -1)
			conf_error(cf, "retain_days: want days between 0 and %g (0: keep), got '%s'",
				   INTAKE_RETAIN_DAYS_MAX, v);
	} else if (strcmp(key, "retain_bytes") == 0) {
		conf_count(cf, key, v, 0, INTAKE_RETAIN_BYTES_MAX, &c->retain_bytes);
	} else {
		conf_error(cf, "unknown key '%s' in [intake]", key);
	}
}

static void intake_key_route(struct conf *cf, struct intake_config *c, const char *key,
			     const char *v)
{
	struct intake_rule_arg ra = { cf, INTAKE_ACCEPT };

	if (strcmp(key, "default") == 0) {
		if (intake_action_parse(v, &c->default_action) == -1)
			conf_error(cf, "default: want accept, ignore or reject, got '%s'", v);
		return;
	}
	if (intake_action_parse(key, &ra.action) == -1) {
		conf_error(cf, "unknown key '%s' in [route] (want accept, ignore, reject or "
			       "default)", key);
		return;
	}
	conf_list(v, intake_rule_item, &ra);
}

static void intake_key_deliver(struct conf *cf, struct intake_config *c, const char *key,
			       const char *v)
{
	if (strcmp(key, "url") == 0) {
		if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
			conf_error(cf, "url: want an http:// or https:// URL, got '%s'", v);
			return;
		}
		free(c->url);
		c->url = xstrdup(v);
	} else if (strcmp(key, "token_file") == 0) {
		intake_file(cf, key, v, &c->token_file, NULL);
	} else if (strcmp(key, "ca") == 0) {
		intake_file(cf, key, v, &c->deliver_ca, NULL);
	} else if (strcmp(key, "timeout") == 0) {
		conf_seconds(cf, key, v, 0.1, 3600, &c->deliver_timeout);
	} else if (strcmp(key, "connect_timeout") == 0) {
		conf_seconds(cf, key, v, 0.1, 600, &c->connect_timeout);
	} else if (strcmp(key, "backoff_min") == 0) {
		conf_seconds(cf, key, v, 0.01, 86400, &c->backoff_min);
	} else if (strcmp(key, "backoff_max") == 0) {
		conf_seconds(cf, key, v, 0.01, 7 * 86400, &c->backoff_max);
	} else if (strcmp(key, "poll") == 0) {
		conf_seconds(cf, key, v, 0.01, 3600, &c->poll);
	} else if (strcmp(key, "max_attempts") == 0) {
		conf_count(cf, key, v, 1, 1000, &c->max_attempts);
	} else if (strcmp(key, "concurrency") == 0) {
		conf_count(cf, key, v, 1, 256, &c->concurrency);
	} else {
		conf_error(cf, "unknown key '%s' in [deliver]", key);
	}
}

static void intake_on_key(struct conf *cf, const char *section, const char *key, const char *v)
{
	struct intake_load *l = cf->user;

	if (strcmp(section, "intake") == 0)
		intake_key_intake(cf, l->c, key, v);
	else if (strcmp(section, "route") == 0)
		intake_key_route(cf, l->c, key, v);
	else if (strcmp(section, "deliver") == 0)
		intake_key_deliver(cf, l->c, key, v);
	else if (section[0] == '\0')
		conf_error(cf, "key '%s' outside a section", key);
}

static void intake_check(struct conf *cf, struct intake_config *c, const struct intake_load *l)
{
	struct intake_rule_arg ra = { cf, INTAKE_ACCEPT };

	cf->line = l->seen_intake ? l->intake_line : 1;
	if (!l->seen_intake) {
		conf_error(cf, "missing [intake] section");
		return;
	}
	if (c->nlisten == 0)
		conf_error(cf, "[intake]: missing required key 'listen'");
	if (c->store == NULL)
		conf_error(cf, "[intake]: missing required key 'store'");
	if (c->tls && (c->cert == NULL || c->key == NULL))
		conf_error(cf, "[intake]: tls = on needs 'cert' and 'key'");
	if (c->client_certs != INTAKE_CERTS_OFF && c->client_ca == NULL)
		conf_error(cf, "[intake]: client_certs needs 'client_ca'");
	if (c->client_certs != INTAKE_CERTS_OFF && !c->tls)
		conf_error(cf, "[intake]: client_certs needs tls = on");
	if (c->processing_ids[0] == '\0')
		conf_error(cf, "[intake]: processing_ids is empty");
	/* one connection must be able to hold a whole frame twice over (the framer's buffer
	 * and the message's copy awaiting its answer) with room to spare */
	if (!l->seen_budget && c->memory_budget < INTAKE_BUDGET_FACTOR * c->max_message)
		c->memory_budget = INTAKE_BUDGET_FACTOR * c->max_message;
	if (c->memory_budget < INTAKE_BUDGET_FACTOR * c->max_message)
		conf_error(cf, "[intake]: memory_budget (%llu) is less than %u x max_message (%llu)",
			   (unsigned long long)c->memory_budget, INTAKE_BUDGET_FACTOR,
			   (unsigned long long)c->max_message);
	if (c->browse && c->d.admin_tokens == NULL)
		conf_error(cf, "browse: on needs admin_token_file (its pages show patient data)");
	if (c->backoff_max < c->backoff_min)
		conf_error(cf, "[deliver]: backoff_max is shorter than backoff_min");
	if (!l->seen_route)
		for (size_t i = 0; i < sizeof(intake_default_accept) / sizeof(*intake_default_accept);
		     i++)
			intake_rule_item(intake_default_accept[i], &ra);
}

struct intake_config *intake_config_load(const char *file, char **msgs)
{
	struct intake_config *c = xcalloc(1, sizeof(*c));
	struct intake_load l = { .c = c };
	struct conf cf = { .file = file, .user = &l, .on_section = intake_on_section,
			   .on_key = intake_on_key };

	intake_defaults(c);
	c->file = xstrdup(file);
	conf_load(&cf);
	if (cf.errors == 0)
		intake_check(&cf, c, &l);
	if (cf.errors) {
		if (msgs != NULL)
			*msgs = xstrndup((const char *)buf_head(&cf.msgs), cf.msgs.len);
		conf_done(&cf);
		intake_config_free(c);
		return NULL;
	}
	conf_done(&cf);
	return c;
}

void intake_config_free(struct intake_config *c)
{
	if (c == NULL)
		return;
	free(c->file);
	free(c->cert);
	free(c->key);
	free(c->client_ca);
	free(c->store);
	free(c->rules);
	free(c->url);
	free(c->token_file);
	free(c->deliver_ca);
	daemon_conf_free(&c->d);
	free(c);
}

enum intake_action intake_config_route(const struct intake_config *c, const char *type,
				       const char *trigger)
{
	for (size_t i = 0; i < c->nrules; i++) {
		const char *p = c->rules[i].pattern;
		if (strcmp(p, "*") == 0 ||
		    (strncmp(p, type, 3) == 0 && type[3] == '\0' &&
		     (p[3] == '\0' || strcmp(p + 4, trigger) == 0)))
			return c->rules[i].action;
	}
	return c->default_action;
}

int intake_config_check_tls(const char *file, const struct intake_config *c, char **msgs)
{
	char err[512], line[600];
	SSL_CTX *ctx;

	if (!c->tls)
		return 0;
	ctx = tls_ctx_server(c->cert, c->key, err, sizeof(err));
	if (ctx == NULL) {
		snprintf(line, sizeof(line), "%s:%d: %s\n", file,
			 strstr(err, c->key) ? c->key_line : c->cert_line, err);
		*msgs = xstrdup(line);
		return -1;
	}
	if (c->client_ca != NULL && tls_ctx_load_ca(ctx, c->client_ca, err, sizeof(err)) == -1) {
		snprintf(line, sizeof(line), "%s:%d: %s\n", file, c->ca_line, err);
		*msgs = xstrdup(line);
		SSL_CTX_free(ctx);
		return -1;
	}
	SSL_CTX_free(ctx);
	return 0;
}
