/* The HTTP/2 session of a tunnel (session.c), as tunnel.c drives it. */
#ifndef NETWALL_SESSION_H
#define NETWALL_SESSION_H

#include <stdbool.h>

#include "wall/tunnel_types.h"

/* The TLS handshake is done: creates the nghttp2 session and queues our SETTINGS (and, on
 * the gateway, the hello). */
void session_start(struct tunnel *t);

/* Schedules a flush of t's output at the end of this turn of the loop. */
void session_flush_soon(struct tunnel *t);

/* Gateway: stream IDs nearly used up (retiring), or past the grace as well (retired). */
bool session_retiring(const struct tunnel *t);
bool session_retired(const struct tunnel *t);

/* Gateway: says GOAWAY the first time; closes t once it is empty and has waited. */
void session_retire(struct tunnel *t);

/* Agent: asks the gateway for a new hello (its services changed). */
void session_rehello(struct tunnel *t);

/* Gateway: tunnel_open on an up tunnel. */
int session_open(struct tunnel *t, int fd, const struct tunnel_visit *v, void *owner);

#endif
