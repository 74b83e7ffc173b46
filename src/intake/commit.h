/* Group commit: one thread owns a store connection and writes, in one transaction, every
 * message that queued up while the previous transaction was committing, so concurrent
 * senders share fsyncs. Requests come from the event loop thread; their results go back to
 * it through an eventfd the loop watches, and each request's done callback runs there.
 *
 * Ownership: a submitted request belongs to the committer until its done callback runs (in
 * the loop thread); the submitter must keep it alive, even if its connection closes, and
 * frees it from done at the earliest. */
#ifndef NETWALL_COMMIT_H
#define NETWALL_COMMIT_H
#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "intake/store.h"

#define COMMIT_MAX_BATCH 512 /* messages per transaction at most */
/* Gathering: when the last two transactions carried messages from more sources than are
 * queued now, the committer waits for the others' next messages, at most this long after
 * the oldest queued one arrived. Senders that wait for each ACK otherwise settle into
 * groups that alternate between transactions, each paying its own fsync. One sender
 * never waits. */
#define COMMIT_GATHER_US 300

struct commit_req {
	struct store_msg msg; /* in and out (duplicate, id, orig_ack) */
	int rc;               /* 0 stored (or found duplicate), -1 the transaction failed */
	char err[128];        /* why, when rc is -1; no message content */
	void (*done)(struct commit_req *r, void *arg);
	void *arg;
	const void *source;      /* who sent it (a connection), a hint for gathering */
	struct commit_req *next; /* the committer's queue link */
	double queued_at;        /* the committer's */
};

struct commit_stats {
	uint64_t transactions;
	uint64_t rows;     /* messages written (new) */
	uint64_t dups;     /* duplicates found */
	uint64_t failures; /* failed transactions */
	uint64_t max_batch;
	uint64_t keys_pending;   /* search keys committed, not yet merged (indexer.h) */
	uint64_t keys_merged;    /* merged since start */
	uint64_t merge_failures; /* merges that failed */
	/* when the newest message handed to the store was received (stored, found a duplicate,
	 * or lost with a failed transaction), Unix ms; commit_new's time until the first */
	int64_t last_received_ms;
};

/* Figures read from the store by the committer thread for /metrics and /status. */
struct commit_snapshot {
	bool depth_ok, counts_ok; /* read at least once */
	uint64_t depth;           /* delivery jobs waiting */
	int64_t oldest_ms;        /* received_ms of the oldest of them (Unix ms), 0: none */
	uint64_t by_state[STORE_NSTATES];
	double depth_at, counts_at; /* clock_mono() of the reads */
};

struct commit;

/* Opens its own connection to spec and starts the thread. after (may be NULL) is called
 * in the committer thread after each commit that stored a RECEIVED message, e.g. to wake
 * the delivery worker. Returns NULL with err filled. */
struct commit *commit_new(struct event_base *base, const char *spec,
			  void (*after)(void *arg), void *after_arg, char *err, size_t errlen);

/* Queues r (loop thread only). */
void commit_submit(struct commit *c, struct commit_req *r);

/* Requests queued or being committed. */
size_t commit_pending(const struct commit *c);

void commit_stats(struct commit *c, struct commit_stats *out);

/* Copies the last snapshot into out and asks the committer for a fresher one (the queue
 * depth and its oldest message at most every second; with counts, the counts by state at most every 5 s), so
 * a scrape shows figures at most one scrape old and never waits for the database. */
void commit_snapshot(struct commit *c, bool counts, struct commit_snapshot *out);

/* Must not be called from a done callback. Commits what is queued, runs the remaining done callbacks, stops the thread, closes the
 * connection and frees. Accepts NULL. */
void commit_free(struct commit *c);

#endif
