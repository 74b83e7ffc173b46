/* The gateway's and the agent's configuration as loaded: the structures only, shared by
 * config.c (loading, validation) and config_route.c (the services sharing an address).
 * docs/config.md documents every key. */
#ifndef NETWALL_CONFIG_TYPES_H
#define NETWALL_CONFIG_TYPES_H

#include <stdbool.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/daemon.h"
#include "core/tls.h"
#include "wall/config_target.h"
#include "wall/sni.h"
#include "wall/tunnel.h"

#define CONFIG_MAX_LIST 64 /* listeners, agents, allow entries, gateways per config */

struct config_agent {
	char name[CONF_NAME_MAX + 1];
	int line;
	bool has_fp;
	uint8_t fp[TLS_FP_LEN];
};

/* How the services that share a listen address tell their visitors apart. */
enum config_route {
	CONFIG_ROUTE_NONE = 0, /* a listen address of its own */
	CONFIG_ROUTE_SNI,      /* the server_name of the visitor's TLS ClientHello */
	CONFIG_ROUTE_HOST,     /* the Host header of its first HTTP/1.x request */
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
	enum config_route route;   /* sni or host given */
	char names[CONFIG_MAX_LIST][SNI_NAME_MAX + 1]; /* sni or host: names, "*.x" patterns */
	size_t nnames;
	bool is_default; /* default = yes: takes the names no service of its address has */
	int route_line;  /* where sni or host was set */
	int default_line; /* where default was set */
	int fbt_line;    /* where first_byte_timeout was set */
	uint64_t rate_limit;         /* bytes a second each way, all visitors together; 0: none */
	uint64_t visitor_rate_limit; /* ... each visitor alone; 0: none */
};

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
	double route_timeout; /* seconds a visitor of a shared address has to send its name */
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

#endif
