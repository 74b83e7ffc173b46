/* The message browser's worker: one thread with a store connection of its own (opened on
 * its first job, again after a failed open), so that a store that does not answer holds
 * the browser's pages and never the event loop, which answers every sender's ACKs. The
 * loop submits jobs into a bounded queue; each finished job goes back to the loop through
 * an eventfd (as the committer's requests do, intake/commit.c), whose done callback runs
 * there, in submission order. The loop's event base is touched from the loop thread only.
 *
 * Ownership: a submitted job belongs to the worker until its done callback runs (loop
 * thread); done frees it. */
#ifndef NETWALL_BROWSE_WORKER_H
#define NETWALL_BROWSE_WORKER_H
#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#define BROWSE_WORKER_QUEUE 4 /* jobs waiting (the one running not counted); more: refused */

struct store;

struct browse_job {
	/* Worker thread: does the job on the worker's connection, s (NULL when the store
	 * cannot be opened). Touches nothing the loop owns. */
	void (*run)(struct browse_job *j, struct store *s);
	/* Loop thread: after run, or without it (ran false) when the worker stops first or
	 * the job waited longer than max_wait seconds (its requester has gone). Frees j. */
	void (*done)(struct browse_job *j, bool ran);
	double max_wait;
	/* the worker's */
	double queued_at;
	bool ran;
	struct browse_job *next;
};

struct browse_worker;

/* Starts the thread (its connection to spec opens on the first job). Returns NULL with err
 * filled. */
struct browse_worker *browse_worker_new(struct event_base *base, const char *spec, char *err,
					size_t errlen);

/* Whether BROWSE_WORKER_QUEUE jobs already wait (loop thread): a submit now would fail,
 * and one after a false answer cannot, the loop thread being the only one to queue. */
bool browse_worker_full(struct browse_worker *w);

/* Queues j (loop thread). Returns 0, or -1 when BROWSE_WORKER_QUEUE jobs already wait: j
 * is then still the caller's. */
int browse_worker_submit(struct browse_worker *w, struct browse_job *j);

/* Stops the thread: the running job's store call is interrupted (store_interrupt), so it
 * fails at once rather than at the store's own bound; then runs the done callback of every
 * job, those never run with ran false, and frees w. Loop thread. Accepts NULL. */
void browse_worker_free(struct browse_worker *w);

#endif
