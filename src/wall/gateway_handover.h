/* The gateway's steps of a handover (core/handover.h), as daemon_role hooks (arg: the
 * struct gateway). */
#ifndef NETWALL_GATEWAY_HANDOVER_H
#define NETWALL_GATEWAY_HANDOVER_H

#include <stdbool.h>

struct gateway;
struct tunnel;

void gateway_handover_taken(void *arg);
void gateway_handover_aborted(void *arg);
void gateway_handover_hold(void *arg);
bool gateway_handover_ready(void *arg);
void gateway_handover_serve(void *arg);
/* A tunnel said hello: one that reaches the old process in a handover moves on too. */
void gateway_handover_tunnel_up(struct gateway *gw, struct tunnel *t);

#endif
