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
#include "wall/config_target.h"
#include "wall/tunnel.h"

#define CONFIG_MAX_LIST 64 /* listeners, agents, allow entries, gateways per config */

struct config_agent {
	char name[CONF_NAME_MAX + 1];
	int line;
	bool has_fp;
	uint8_t fp[TLS_FP_LEN];
};

struct config_service {
	char name[CONF_NAME_MAX + 1];
	int line;
	struct addr listen[CONFIG_MAX_LIST];
	size_t nlisten;
	char agents[CONFIG_MAX_LIST][CONF_NAME_MAX + 1];
	size_t nagents;
	struct addr_cidr allow[CONFIG_MAX_LIST];
	size_t nallow;
	uint64_t max_connections;
	uint64_t max_per_source; /* 0: the default, a quarter of max_connections, at most 256 */
	unsigned source_prefix_v4, source_prefix_v6; /* a source network for max_per_source */
	int proxy; /* 0, 1 or 2 */
	double idle_timeout; /* seconds, 0: none */
	double first_byte_timeout; /* seconds a visitor may stay silent at first, 0: no limit */
	uint64_t rate_limit;         /* bytes a second each way, all visitors together; 0: none */
	uint64_t visitor_rate_limit; /* ... each visitor alone; 0: none */
};

#define CONFIG_HANDOVER_PATH_MAX 107 /* a Unix socket's path (sun_path, less its NUL) */

struct config_common {
	char *cert;
	char *key;
	char *ca;
	int cert_line, key_line, ca_line; /* where they were set, for later errors */
	struct daemon_conf d; /* admin, log level, user, filter */
	struct tunnel_params tp;
	double drain_timeout;
	uint64_t memory_budget; /* bytes; see wall/budget.h */
};

struct config_gateway {
	struct config_common c;
	char *crl; /* CA mode: PEM CRLs checked at each agent's handshake, or NULL */
	int crl_line;
	struct addr listen[CONFIG_MAX_LIST];
	size_t nlisten;
	struct config_agent *agents;
	size_t nagents;
	struct config_service *services;
	size_t nservices;
};

struct config_agentd {
	struct config_common c;
	struct addr gateways[CONFIG_MAX_LIST];
	char gateway_host[CONFIG_MAX_LIST][256];
	size_t ngateways;
	/* a gateway's own pin ("gateway = HOST:PORT SHA256"), else gateway_fingerprint's */
	bool gateway_pinned[CONFIG_MAX_LIST];
	uint8_t gateway_pin[CONFIG_MAX_LIST][TLS_FP_LEN];
	bool has_pin; /* gateway_fingerprint: the pin of the gateways without their own */
	uint8_t gateway_fp[TLS_FP_LEN];
	char *server_name;
	unsigned tunnels;
	double backoff_initial;
	double backoff_max;
	double connect_timeout;
	struct config_target *targets;
	size_t ntargets;
};

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
