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
/* The old process drains after a handover: it stops polling the visitor listeners (the
 * new process polls them) but keeps them, so that visitors admitted and waiting for their
 * first byte (first_byte_timeout) are still served. */
void gateway_handover_drain(struct gateway *gw);
/* ... and is idle once those have gone too. True when no handover happened. */
bool gateway_handover_idle(struct gateway *gw);
/* A tunnel said hello: one that reaches the old process in a handover moves on too. */
void gateway_handover_tunnel_up(struct gateway *gw, struct tunnel *t);

#endif
