/* An agent's [service NAME]: the list of targets, TLS to them, health checks. */
#include "wall/config_target.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

#define CONFIG_HEALTH_INTERVAL 5.0 /* health_interval's default, seconds */
#define CONFIG_HEALTH_TIMEOUT 2.0  /* health_timeout's default, seconds */
#define CONFIG_HEALTH_COUNT 2      /* health_fall's and health_rise's default */

void config_target_defaults(struct config_target *t)
{
	t->tls_verify = true;
	t->health_interval = CONFIG_HEALTH_INTERVAL;
	t->health_timeout = CONFIG_HEALTH_TIMEOUT;
	t->health_fall = CONFIG_HEALTH_COUNT;
	t->health_rise = CONFIG_HEALTH_COUNT;
}

/* One address of "target = A, B, ...": appended to t's; the same address twice, or more
 * than CONFIG_MAX_TARGETS, is an error. */
static void ag_target_item(struct conf *cf, struct config_target *t, const char *v)
{
	struct config_endpoint *e;
	uint16_t port;

	if (t->nep == CONFIG_MAX_TARGETS) {
		conf_error(cf, "target: more than %d addresses in [service %s]", CONFIG_MAX_TARGETS,
			   t->name);
		return;
	}
	e = &t->ep[t->nep];
	memset(e, 0, sizeof(*e));
	if (strncmp(v, "unix:", 5) == 0 && v[5] == '\0') {
		conf_error(cf, "target: empty Unix socket path");
		return;
	}
	if (strncmp(v, "unix:", 5) == 0) {
		e->kind = CONFIG_TARGET_UNIX;
		e->unix_path = conf_path(cf, v + 5);
		snprintf(e->host, sizeof(e->host), "localhost");
	} else {
		char err[300];
		e->kind = CONFIG_TARGET_TCP;
		if (addr_parse(v, &e->addr, err, sizeof(err)) == -1) {
			conf_error(cf, "target: %s", err);
			return;
		}
		if (addr_split(v, e->host, sizeof(e->host), &port) == -1)
			e->host[0] = '\0';
	}
	snprintf(e->label, sizeof(e->label), "%s", v);
	for (size_t i = 0; i < t->nep; i++) {
		const struct config_endpoint *o = &t->ep[i];
		if (o->kind == e->kind &&
		    (e->kind == CONFIG_TARGET_UNIX ? strcmp(o->unix_path, e->unix_path) == 0
						   : addr_equal(&o->addr, &e->addr))) {
			conf_error(cf, "target: %s given twice in [service %s]", v, t->name);
			free(e->unix_path);
			e->unix_path = NULL;
			return;
		}
	}
	t->nep++;
}

/* "target = A, B": each comma-separated address, spaces around it trimmed. */
static void ag_target_list(struct conf *cf, struct config_target *t, const char *v)
{
	char item[CONFIG_LABEL_MAX];

	if (v[0] == '\0') {
		conf_error(cf, "target: empty value (want HOST:PORT or unix:PATH)");
		return;
	}
	for (const char *p = v;; p++) {
		size_t n = strcspn(p, ",");
		size_t lead = strspn(p, " \t");

		lead = lead < n ? lead : n;
		while (n > lead && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n - lead == 0 || n - lead >= sizeof(item)) {
			conf_error(cf, "target: an empty or overlong address in the list");
			return;
		}
		memcpy(item, p + lead, n - lead);
		item[n - lead] = '\0';
		ag_target_item(cf, t, item);
		p += strcspn(p, ",");
		if (*p == '\0')
			return;
	}
}

/* "health_check = off | tcp | http /PATH". */
static void ag_health_key(struct conf *cf, struct config_target *t, const char *v)
{
	if (strcmp(v, "off") == 0) {
		t->health = CONFIG_HEALTH_OFF;
	} else if (strcmp(v, "tcp") == 0) {
		t->health = CONFIG_HEALTH_TCP;
	} else if (strncmp(v, "http ", 5) == 0) {
		const char *path = v + 5 + strspn(v + 5, " \t");
		bool ok = path[0] == '/' && strlen(path) < sizeof(t->health_path);

		for (const char *p = path; ok && *p; p++)
			ok = *p > 0x20 && *p < 0x7f; /* one token of the request line */
		if (!ok) {
			conf_error(cf, "health_check: want http /PATH (printable, no spaces), got "
				       "'%s'",
				   v);
			return;
		}
		t->health = CONFIG_HEALTH_HTTP;
		snprintf(t->health_path, sizeof(t->health_path), "%s", path);
	} else {
		conf_error(cf, "health_check: want off, tcp or http /PATH, got '%s'", v);
	}
}

/* The health keys of [service NAME]; returns 0 if key is none of them. */
static int ag_health_keys(struct conf *cf, struct config_target *t, const char *key,
			  const char *v)
{
	uint64_t n;

	if (strcmp(key, "health_check") == 0) {
		ag_health_key(cf, t, v);
	} else if (strcmp(key, "health_interval") == 0) {
		conf_seconds(cf, key, v, 0.05, 3600, &t->health_interval);
	} else if (strcmp(key, "health_timeout") == 0) {
		conf_seconds(cf, key, v, 0.05, 600, &t->health_timeout);
	} else if (strcmp(key, "health_fall") == 0) {
		n = t->health_fall;
		conf_count(cf, key, v, 1, 100, &n);
		t->health_fall = (unsigned)n;
	} else if (strcmp(key, "health_rise") == 0) {
		n = t->health_rise;
		conf_count(cf, key, v, 1, 100, &n);
		t->health_rise = (unsigned)n;
	} else {
		return 0;
	}
	return 1;
}

/* A key of an agent's [service NAME]: target, tls*, health_*. */
void config_target_key(struct conf *cf, struct config_target *t, const char *section,
			  const char *key, const char *v)
{
	if (ag_health_keys(cf, t, key, v))
		return;
	if (strcmp(key, "target") == 0) {
		ag_target_list(cf, t, v);
	} else if (strcmp(key, "tls") == 0) {
		t->tls_line = cf->line;
		if (conf_bool(v, &t->tls) == -1)
			conf_error(cf, "tls: want on or off, got '%s'", v);
	} else if (strcmp(key, "tls_verify") == 0) {
		if (conf_bool(v, &t->tls_verify) == -1)
			conf_error(cf, "tls_verify: want on or off, got '%s'", v);
	} else if (strcmp(key, "tls_ca") == 0) {
		free(t->tls_ca);
		t->tls_ca = conf_path(cf, v);
	} else if (strcmp(key, "tls_server_name") == 0) {
		free(t->tls_server_name);
		t->tls_server_name = xstrdup(v);
	} else {
		conf_error(cf, "unknown key '%s' in [%s]", key, section);
	}
}

void config_target_check(struct conf *cf, struct config_target *t)
{
	bool unix_tls = false;

	cf->line = t->line;
	if (t->nep == 0)
		conf_error(cf, "[service %s]: missing required key 'target'", t->name);
	for (size_t j = 0; j < t->nep; j++)
		unix_tls = unix_tls || t->ep[j].kind == CONFIG_TARGET_UNIX;
	if (unix_tls && t->tls && t->tls_server_name == NULL && t->tls_verify)
		conf_error(cf, "[service %s]: TLS to a Unix socket needs tls_server_name", t->name);
	if (t->health == CONFIG_HEALTH_DEFAULT)
		t->health = t->nep > 1 ? CONFIG_HEALTH_TCP : CONFIG_HEALTH_OFF;
}

void config_target_clear(struct config_target *t)
{
	for (size_t j = 0; j < t->nep; j++)
		free(t->ep[j].unix_path);
	free(t->tls_ca);
	free(t->tls_server_name);
}
