/* An agent's [service NAME] (struct config_target, wall/config.h): its targets, the TLS to
 * them and their health checks. config.c reads the file and hands each key of such a section
 * here; wall/config.h includes this header. docs/config.md documents every key. */
#ifndef NETWALL_CONFIG_TARGET_H
#define NETWALL_CONFIG_TARGET_H

#include <stdbool.h>

#include "core/addr.h"
#include "core/conf.h"

enum config_target_kind { CONFIG_TARGET_TCP = 0, CONFIG_TARGET_UNIX };

#define CONFIG_MAX_TARGETS 16 /* addresses per agent service */
#define CONFIG_LABEL_MAX 256  /* a target's address as written (config lines are shorter) */

/* How a service's targets are checked. DEFAULT is resolved when the file is read: tcp for
 * a service with several targets, off for one. */
enum config_health { CONFIG_HEALTH_DEFAULT = 0, CONFIG_HEALTH_OFF, CONFIG_HEALTH_TCP,
		     CONFIG_HEALTH_HTTP };

/* One address of an agent service. */
struct config_endpoint {
	enum config_target_kind kind;
	struct addr addr;
	char *unix_path;
	char host[256]; /* the target's host, the default TLS server name and HTTP Host */
	char label[CONFIG_LABEL_MAX]; /* "HOST:PORT" or "unix:PATH", as written */
};

/* An agent service: its targets and how to reach and check them. */
struct config_target {
	char name[CONF_NAME_MAX + 1];
	int line;
	struct config_endpoint ep[CONFIG_MAX_TARGETS];
	size_t nep;
	bool tls;
	bool tls_verify;
	char *tls_ca;
	int tls_line; /* where tls was set */
	char *tls_server_name;
	enum config_health health;
	char health_path[CONFIG_LABEL_MAX]; /* CONFIG_HEALTH_HTTP: the path GET asks for */
	double health_interval, health_timeout; /* seconds */
	unsigned health_fall, health_rise; /* consecutive results that change a target's state */
};


/* Fills a new section's defaults (t is zeroed). */
void config_target_defaults(struct config_target *t);
/* One key of the section named section; errors go through conf_error. */
void config_target_key(struct conf *cf, struct config_target *t, const char *section,
		       const char *key, const char *v);
/* After the file is read: a target is required, a Unix socket under TLS needs its server
 * name, and health_check's default is resolved (tcp with several targets, else off). */
void config_target_check(struct conf *cf, struct config_target *t);
/* Frees what t holds, not t. */
void config_target_clear(struct config_target *t);

#endif
