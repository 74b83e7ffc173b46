/* Event loop glue on libevent. */
#ifndef NETWALL_LOOP_H
#define NETWALL_LOOP_H

#include <event2/event.h>

/* The process's one event loop: two priorities (I/O first, then the output flushes that
 * batch a turn's writes), millisecond timers, SIGPIPE ignored. Exits on failure. */
struct event_base *loop_new(void);

/* Frees *ev if set (libevent's event_free does not accept NULL) and clears it. */
void loop_free_event(struct event **ev);

#endif
