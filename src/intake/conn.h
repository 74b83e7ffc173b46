/* The intake's MLLP connections: admitted by core/listener, PROXY header, TLS, the
 * connection's timers, reading into the framer, writing ACKs, closing. */
#ifndef NETWALL_INTAKE_CONN_H
#define NETWALL_INTAKE_CONN_H
#include "intake/state.h"

/* conn_pump, conn_close and conn_maybe_close, for budget.c and pipeline.c. */
extern const struct intake_upcalls conn_upcalls;

/* Feeds what was read to the framer while the connection may take more work. */
void conn_pump(struct conn *c);
/* Closes c at once; what it still waits for from the store is held until answered. */
void conn_close(struct conn *c, const char *reason);
/* Starts closing: nothing more is read; what was read is answered and written first. */
void conn_finish(struct conn *c, const char *reason);
/* A closing connection goes once everything read is answered and written. */
void conn_maybe_close(struct conn *c);
/* The admission limits of cfg: of the sockets (sockets) or, behind a proxy, of the
 * addresses its headers name. */
void conn_limits(const struct intake_config *cfg, bool sockets, struct listener_limits *lim);
/* Listener callbacks, arg the intake: a connection admitted (fd is ours), one refused. */
void conn_accept(void *arg, int fd, const struct sockaddr *sa, struct listener_src *src);
void conn_refused(void *arg, const struct sockaddr *sa, enum listener_reason r);

#endif
