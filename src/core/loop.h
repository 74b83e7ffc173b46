/* Event loop glue on libevent. */
#ifndef NETWALL_LOOP_H
#define NETWALL_LOOP_H

#include <event2/event.h>
#include <stdint.h>

#define LOOP_HOUSEKEEPING 2.0 /* seconds between housekeeping turns (heap trim) */

/* The process's one event loop: one priority (see tunnel_schedule_flush for why),
 * millisecond timers, SIGPIPE ignored, the descriptor limit raised to its hard limit.
 * Exits on failure. */
struct event_base *loop_new(void);

/* Frees *ev if set (libevent's event_free does not accept NULL) and clears it. */
void loop_free_event(struct event **ev);

/* Gives freed heap back to the kernel once the number of live connections has fallen
 * below half of its peak since the last trim (glibc keeps freed memory in its arenas, and a
 * burst of visitors would leave the daemon large). *peak is the high-water mark the caller
 * keeps up to date; it is reset to live after a trim. Call it from a slow timer. */
void loop_trim(uint64_t live, uint64_t *peak);

#endif
