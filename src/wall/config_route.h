/* A gateway's services that share a listen address and tell their visitors apart by the
 * name they send (sni, host, default; docs/config.md): their keys and their checks, for
 * config.c. */
#ifndef NETWALL_CONFIG_ROUTE_H
#define NETWALL_CONFIG_ROUTE_H

#include <stddef.h>

#include "core/conf.h"
#include "wall/config_types.h"

/* sni = NAMES or host = NAMES of [service NAME] s: names lower-cased, patterns checked. */
void config_route_names(struct conf *cf, struct config_service *s, const char *key,
			const char *v);

/* Checks the services svcs[0..n) once all are loaded: services
 * sharing a listen address are all routed by sni or all by host (a default without names
 * takes its neighbours' way), repeat no name, and have one default at most; a default has
 * a way; first_byte_timeout is not set where route_timeout applies. Errors go to cf at the
 * line of the key that made them. */
void config_route_check(struct conf *cf, struct config_service *svcs, size_t n);

#endif
