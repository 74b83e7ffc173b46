/* Delivery: a worker thread with its own store connection claims due jobs, POSTs each
 * message as JSON (hl7json.h) to the EMAR's API with libcurl (a multi handle, several
 * transfers at once), and records the outcome: 2xx delivered; 4xx dead-lettered at once
 * with the response kept; 5xx, timeouts and network errors retried with exponential
 * backoff and jitter until max_attempts, then dead-lettered. Jobs are leased, so several
 * workers (threads or processes on one PostgreSQL) never deliver one message at the same
 * time. Nothing here logs message content. */
#ifndef NETWALL_DELIVER_H
#define NETWALL_DELIVER_H
#include <stddef.h>
#include <stdint.h>

struct deliver_conf {
	const char *store;        /* store spec, as for store_open */
	const char *url;          /* http:// or https:// endpoint */
	const char *token_file;   /* bearer token file, or NULL */
	const char *ca_file;      /* CA bundle for https, or NULL for the system's */
	double timeout;           /* seconds per attempt (whole transfer) */
	double connect_timeout;   /* seconds */
	unsigned max_attempts;    /* then dead-letter */
	double backoff_min;       /* seconds before the 2nd attempt */
	double backoff_max;       /* ceiling of the doubling */
	unsigned concurrency;     /* transfers in flight at most */
	size_t body_budget;       /* request body bytes in flight at most (one transfer always
				   * may run); 0: no bound but concurrency */
	double poll;              /* seconds between queue scans when idle */
	const char *owner;        /* lease owner: unique per process, e.g. host:pid:boot */
};

struct deliver_stats {
	uint64_t attempts;
	uint64_t delivered;
	uint64_t failures; /* attempts that did not deliver */
	uint64_t dead;     /* dead-lettered */
	uint64_t in_flight;
	uint64_t body_bytes; /* request bodies in flight */
};

struct deliver;

/* Starts the worker. Returns NULL with err filled (bad URL, store unreachable). */
struct deliver *deliver_new(const struct deliver_conf *c, char *err, size_t errlen);
/* Thread-safe, cheap: new jobs are due now. */
void deliver_kick(struct deliver *d);
/* Thread-safe snapshot of the counters. */
void deliver_stats(struct deliver *d, struct deliver_stats *out);
/* Stops taking jobs, gives in-flight transfers up to grace seconds, records their outcome
 * (unfinished ones keep their lease, which expires), joins the thread and frees. */
void deliver_free(struct deliver *d, double grace);

#endif
