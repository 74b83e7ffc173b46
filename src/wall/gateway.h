/* The gateway: the only listening sockets. Accepts agents' tunnels (TLS 1.3, pinned or
 * CA-verified certificates), accepts visitors on each service's public listeners, and hands
 * each visitor to a tunnel of an agent allowed to serve the service. */
#ifndef NETWALL_GATEWAY_H
#define NETWALL_GATEWAY_H

#include "core/daemon.h"

/* The gateway daemon, run by daemon_run (core/daemon.h) from a [gateway] config file. */
extern const struct daemon_role gateway_role;

#endif
