/* A gateway listen address shared by services told apart by name (config: sni, host,
 * default). Each visitor waits here, its bytes held, until the name it sends (the
 * server_name of its TLS ClientHello, the Host of its first HTTP/1.x request) picks a
 * service; the driver (gateway.c) then admits it by that service's limits and hands it to a
 * tunnel with the bytes read so far, untouched. A name no service takes, with no default,
 * is refused: a TLS unrecognized_name alert, or HTTP 421.
 *
 * Limits: at most SNI_HELLO_CAP (TLS) or SNI_HTTP_CAP (HTTP) bytes held per visitor, each
 * taken from the memory budget (wall/budget.h) as it is read; the whole read within the
 * gateway's route_timeout; the visitors waiting admitted by the address's own listener_set
 * (the driver's limits: the sum of the services' max_connections, the largest
 * max_per_source) and counted there only while they wait. */
#ifndef NETWALL_GATEWAY_ROUTE_H
#define NETWALL_GATEWAY_ROUTE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/addr.h"
#include "core/listener.h"
#include "wall/config_types.h"

struct gateway;
struct gw_service;
struct gateway_route;

/* The labels of netwall_gateway_visitors_unrouted_total, in the order of enum gw_unrouted
 * (gateway_state.h). */
extern const char *const gateway_route_reasons[];

/* What the route asks of its driver. */
struct gateway_route_ops {
	/* The visitor on fd chose svc: admit and hand it over. Ownership of fd passes, and so
	 * does the budget taken for early[0..nearly) (given back by the callee if the visitor
	 * goes no further); early is the route's, valid during the call. l is the listener
	 * the visitor reached. */
	void (*visit)(struct gateway *gw, struct gw_service *svc, const struct listener *l,
		      int fd, const struct sockaddr *sa, const uint8_t *early, size_t nearly);
	/* A visitor refused here, for the status page's list (service: the address). */
	void (*refused)(struct gateway *gw, const struct sockaddr *sa, const char *service,
			const char *reason);
};

/* Listens on a for services routed by kind; NULL with err filled if a cannot be bound. */
struct gateway_route *gateway_route_new(struct gateway *gw, const struct addr *a,
					enum config_route kind, const struct listener_limits *lim,
					const struct gateway_route_ops *ops, char *err,
					size_t errlen);
/* Closes the listener and every visitor still waiting for its name. Accepts NULL. */
void gateway_route_free(struct gateway_route *r);
/* A reload's limits for the waiting visitors. */
void gateway_route_set_limits(struct gateway_route *r, const struct listener_limits *lim);
/* Whether the address accepts new visitors (a handover holds it off); those waiting stay. */
void gateway_route_enable(struct gateway_route *r, bool on);
const struct addr *gateway_route_addr(const struct gateway_route *r);
enum config_route gateway_route_kind(const struct gateway_route *r);
/* Visitors waiting for their name. */
size_t gateway_route_waiting(const struct gateway_route *r);

#endif
