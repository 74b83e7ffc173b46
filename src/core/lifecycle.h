/* A daemon's life on its loop: SIGHUP reloads; the first SIGTERM or SIGINT starts a drain
 * that ends the loop once the daemon reports it has nothing left to finish, or its drain
 * timeout passes; a slow housekeeping timer runs alongside. Shared by every daemon. */
#ifndef NETWALL_LIFECYCLE_H
#define NETWALL_LIFECYCLE_H

#include <event2/event.h>
#include <stdbool.h>

#define LIFECYCLE_DRAIN_TICK 0.1 /* seconds between "finished yet?" checks while draining */

struct lifecycle_ops {
	void (*reload)(void *arg);
	/* Stop taking new work. Returns how long the work in hand may take, in seconds. */
	double (*drain)(void *arg);
	/* True once nothing is left to finish. */
	bool (*idle)(void *arg);
	/* Every LOOP_HOUSEKEEPING seconds; may be NULL. */
	void (*housekeeping)(void *arg);
};

struct lifecycle;

struct lifecycle *lifecycle_new(struct event_base *base, const struct lifecycle_ops *ops,
				void *arg);
void lifecycle_free(struct lifecycle *lc);
bool lifecycle_draining(const struct lifecycle *lc);
/* Starts the drain as SIGTERM does (once; later calls do nothing); why names the cause in
 * the log ("signal=TERM", "reason=handover"). */
void lifecycle_drain(struct lifecycle *lc, const char *why);

#endif
