/* The gateway's state, shared by its rooms: gateway.c (tunnels, listeners, services, the
 * role), gateway_auth.c (agents' certificates), gateway_route.c (shared addresses) and
 * gateway_status.c (the admin views). Types
 * only: each room's functions stay in its own file. */
#ifndef NETWALL_GATEWAY_STATE_H
#define NETWALL_GATEWAY_STATE_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/conf.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/page.h"
#include "wall/config.h"
#include "wall/rate.h"
#include "wall/tunnel.h"

#define GW_MAX_TUNNELS 4096     /* agents' connections, handshaking ones included */
#define GW_REFUSED_KEPT 16      /* refused sources the status page lists */

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

/* Visitors refused, by reason: the order of gw_reject_reasons (gateway_status.c). */
enum gw_reject {
	GW_REJ_SOURCE = 0,
	GW_REJ_LIMIT,
	GW_REJ_PER_SOURCE,
	GW_REJ_FIRST_BYTE,
	GW_REJ_NO_AGENT,
	GW_REJ_COUNT
};

/* Visitors of a shared address that no service took, by reason: the order of
 * gateway_route_reasons (gateway_route.c). */
enum gw_unrouted {
	GW_UNR_UNKNOWN_NAME = 0, /* a name no service has, and no default */
	GW_UNR_NO_NAME,          /* no name sent, and no default */
	GW_UNR_MALFORMED,        /* not TLS (not HTTP/1.x), and no default */
	GW_UNR_TOO_BIG,          /* the name not within the cap */
	GW_UNR_TIMEOUT,          /* the name not within route_timeout */
	GW_UNR_MEMORY,           /* the memory budget had no room for its bytes */
	GW_UNR_CLOSED,           /* the visitor left before naming a service */
	GW_UNR_COUNT
};

struct gateway_route;

struct gw_service {
	struct gateway *gw;
	struct config_service cfg;
	struct gw_listener *ls[CONFIG_MAX_LIST];
	size_t nls;
	uint64_t open;
	uint64_t connections;
	struct listener_set *set; /* admission: max_connections, max_per_source, allow */
	uint64_t rejected[GW_REJ_COUNT];
	uint64_t bytes[2]; /* read from, written to visitors (tunnel_visit.bytes) */
	struct rate_share rate; /* rate_limit's buckets, each way (tunnel_visit.rate) */
	unsigned rr;
	bool removed; /* gone from the config; freed when its last visitor leaves */
};

struct gateway {
	struct event_base *base;
	struct config_gateway *cfg;
	SSL_CTX *ctx;
	struct gw_listener *tls[CONFIG_MAX_LIST];
	size_t ntls;
	struct gw_service **svcs;
	size_t nsvcs;
	struct listener_set *tunnel_set; /* the tunnel listeners: no limits of its own */
	struct gateway_route **routes; /* the addresses shared by services told apart by name */
	size_t nroutes;
	uint64_t unrouted[GW_UNR_COUNT];
	struct tunnel *tunnels[GW_MAX_TUNNELS];
	size_t ntunnels;
	bool draining;
	bool handed_over; /* a handover retired the tunnels (wall/gateway_handover.c) */
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

#endif
