/* The agent: inside the private network, it only dials out. It keeps `tunnels` TLS
 * connections to every configured gateway, reconnecting forever with exponential backoff
 * and jitter, and connects each stream the gateway opens to the service's local target. */
#ifndef NETWALL_AGENT_H
#define NETWALL_AGENT_H

#include "core/daemon.h"

/* The agent daemon, run by daemon_run (core/daemon.h) from an [agent] config file. */
extern const struct daemon_role agent_role;

#endif
