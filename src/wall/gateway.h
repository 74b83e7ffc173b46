/* The gateway: the only listening sockets. Accepts agents' tunnels (TLS 1.3, pinned or
 * CA-verified certificates), accepts visitors on each service's public listeners, and hands
 * each visitor to a tunnel of an agent allowed to serve the service. */
#ifndef NETWALL_GATEWAY_H
#define NETWALL_GATEWAY_H

#include <event2/event.h>

#include "wall/config.h"

struct gateway;

/* Takes ownership of cfg. Binds every listener; returns NULL and logs on failure. */
struct gateway *gateway_new(struct event_base *base, const char *path, struct config_gateway *cfg);
void gateway_free(struct gateway *gw);

/* Runs the loop until SIGTERM/SIGINT has drained the gateway. Returns the exit status. */
int gateway_run(struct gateway *gw);

#endif
