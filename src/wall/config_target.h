/* An agent's [service NAME] (struct config_target, wall/config.h): its targets, the TLS to
 * them and their health checks. config.c reads the file and hands each key of such a section
 * here. docs/config.md documents every key. */
#ifndef NETWALL_CONFIG_TARGET_H
#define NETWALL_CONFIG_TARGET_H

#include "core/conf.h"
#include "wall/config.h"

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
