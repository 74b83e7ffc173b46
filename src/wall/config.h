/* The gateway's and the agent's configuration: structures, loading and validation.
 * docs/config.md documents every key. */
#ifndef NETWALL_CONFIG_H
#define NETWALL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/daemon.h"
#include "core/conf.h"
#include "core/log.h"
#include "core/tls.h"
#include "wall/config_types.h"
#include "wall/tunnel.h"

#define CONFIG_HANDOVER_PATH_MAX 107 /* a Unix socket's path (sun_path, less its NUL) */

/* Load and validate. On error returns NULL and, if msgs is non-NULL, hands over a
 * malloc'd string of "file:line: message" lines (caller frees). */
struct config_gateway *config_gateway_load(const char *file, char **msgs);
void config_gateway_free(struct config_gateway *g);
struct config_agentd *config_agent_load(const char *file, char **msgs);
void config_agent_free(struct config_agentd *a);

/* Which daemon a file configures: 'g' ([gateway]), 'a' ([agent]), 'i' ([intake]), 'c'
 * ([chat]), or 0. */
int config_kind(const char *file);

const struct config_agent *config_find_agent(const struct config_gateway *g, const char *name);
const struct config_service *config_find_service(const struct config_gateway *g,
						 const char *name);
const struct config_target *config_find_target(const struct config_agentd *a, const char *name);

/* Loads the TLS material a config names (certificate, key, CA bundles) the way the daemon
 * will. Returns 0, or -1 with msgs set to malloc'd "file:line: message" lines. */
int config_gateway_check_tls(const char *file, const struct config_gateway *g, char **msgs);
int config_agent_check_tls(const char *file, const struct config_agentd *a, char **msgs);

#endif
