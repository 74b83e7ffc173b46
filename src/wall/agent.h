/* The agent: inside the private network, it only dials out. It keeps `tunnels` TLS
 * connections to every configured gateway, reconnecting forever with exponential backoff
 * and jitter, and connects each stream the gateway opens to the service's local target. */
#ifndef NETWALL_AGENT_H
#define NETWALL_AGENT_H

#include <event2/event.h>

#include "wall/config.h"

struct agent;

/* Takes ownership of cfg. Returns NULL and logs on failure. */
struct agent *agent_new(struct event_base *base, const char *path, struct config_agentd *cfg);
void agent_free(struct agent *ag);
int agent_run(struct agent *ag);

#endif
