/* The indexer: one thread with its own store connection that moves the keys store_put
 * left pending into the sorted index searches walk (store_merge_keys), in batches, while
 * the committer is quiet. Written with each message, the keys cost a commit one page per
 * key (random identifiers land on random pages: 16 senders lost 60 % of their ACK rate);
 * appended, a page or two per commit, and the sorted inserts are made here, off the path
 * of every ACK, as PostgreSQL's GIN indexes keep a pending list. A search reads the pending
 * keys too (a scan), so the indexer keeps them short: it merges once the committer has
 * been quiet for INDEXER_QUIET, once keys have waited INDEXER_EVERY, and at once, between
 * commits, when more than INDEXER_HIGH are pending. Keys pending at start are merged
 * first. */
#include "intake/indexer.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xalloc.h"

#define INDEXER_BATCH 1024   /* keys per merge transaction (whole messages: a few more): on a
			     * store of a million messages 4,096 held the writer long enough to
			     * raise the ACK p99 under load from 20 to 40-49 ms */
#define INDEXER_HIGH 65536   /* keys pending: merge even while commits keep coming */
#define INDEXER_QUIET 0.5    /* seconds without a commit: merge what is pending */
#define INDEXER_EVERY 10.0   /* seconds a key may wait for a quiet moment */
#define INDEXER_RETRY 1.0    /* seconds after a failed merge */

struct indexer {
	struct store *store; /* the thread's alone */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* on CLOCK_MONOTONIC */
	/* under lock */
	bool stop;
	uint64_t pending;     /* keys committed and not yet merged, as counted here */
	uint64_t added;       /* keys committed since start */
	uint64_t merged;      /* keys merged since start */
	uint64_t failures;    /* merges that failed */
	double last_commit;   /* clock_mono() of the last commit with keys */
	double pending_since; /* clock_mono() when pending last left 0 */
	struct log_rate rate; /* thread only */
};

/* When the pending keys are due a merge (under lock): 0 now, a later clock_mono() time,
 * or -1 never (none pending). */
static double indexer_due(const struct indexer *x)
{
	double quiet, every;

	if (x->pending == 0)
		return -1;
	if (x->pending >= INDEXER_HIGH)
		return 0;
	quiet = x->last_commit + INDEXER_QUIET;
	every = x->pending_since + INDEXER_EVERY;
	return quiet < every ? quiet : every;
}

/* Waits on the condition until clock_mono() time at (under lock); at < 0: no limit. */
static void indexer_wait(struct indexer *x, double at)
{
	struct timespec ts;
	double left;

	if (at < 0) {
		pthread_cond_wait(&x->wake, &x->lock);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	left = at - clock_mono();
	if (left <= 0)
		return;
	ts.tv_sec += (time_t)left;
	ts.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&x->wake, &x->lock, &ts);
}

/* One merge, the lock released while it runs (thread, called and returning with it). */
static void indexer_merge(struct indexer *x)
{
	uint64_t added = x->added;
	char err[128];
	int n;

	pthread_mutex_unlock(&x->lock);
	n = store_merge_keys(x->store, INDEXER_BATCH, err, sizeof(err));
	if (n == -1)
		log_limited(&x->rate, LOG_WARN, "event=index_merge_failed error=\"%s\"", err);
	pthread_mutex_lock(&x->lock);
	if (n == -1) {
		x->failures++;
		indexer_wait(x, clock_mono() + INDEXER_RETRY);
		return;
	}
	x->merged += (uint64_t)n;
	if (n < INDEXER_BATCH) {
		/* none left but what was committed meanwhile (counted whether or not this
		 * merge took it: the next one finds out) */
		x->pending = x->added - added;
		x->pending_since = clock_mono();
	} else {
		x->pending = x->pending > (uint64_t)n ? x->pending - (uint64_t)n : 1;
	}
}

static void *indexer_main(void *arg)
{
	struct indexer *x = arg;

	pthread_mutex_lock(&x->lock);
	while (!x->stop) {
		double due = indexer_due(x);

		if (due != 0 && (due < 0 || due > clock_mono())) {
			indexer_wait(x, due);
			continue;
		}
		indexer_merge(x);
	}
	pthread_mutex_unlock(&x->lock);
	return NULL;
}

struct indexer *indexer_new(const char *spec, char *err, size_t errlen)
{
	struct indexer *x = xcalloc(1, sizeof(*x));
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	x->store = store_open(spec, err, errlen);
	if (x->store == NULL) {
		free(x);
		return NULL;
	}
	/* whatever an earlier run left pending is merged first */
	x->pending = INDEXER_HIGH;
	x->last_commit = x->pending_since = clock_mono();
	pthread_mutex_init(&x->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&x->wake, &ca);
	pthread_condattr_destroy(&ca);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* signals stay with the loop thread */
	rc = pthread_create(&x->thread, NULL, indexer_main, x);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		err_set(err, errlen, "indexer thread: %s", strerror(rc));
		pthread_cond_destroy(&x->wake);
		pthread_mutex_destroy(&x->lock);
		store_close(x->store);
		free(x);
		return NULL;
	}
	return x;
}

void indexer_added(struct indexer *x, size_t keys)
{
	if (keys == 0)
		return;
	pthread_mutex_lock(&x->lock);
	bool first = x->pending == 0; /* the thread waits with no time limit */

	if (first)
		x->pending_since = clock_mono();
	x->pending += keys;
	x->added += keys;
	x->last_commit = clock_mono();
	if (first || x->pending >= INDEXER_HIGH)
		pthread_cond_signal(&x->wake);
	pthread_mutex_unlock(&x->lock);
}

void indexer_stats(struct indexer *x, struct indexer_stats *out)
{
	pthread_mutex_lock(&x->lock);
	out->pending = x->pending;
	out->merged = x->merged;
	out->failures = x->failures;
	pthread_mutex_unlock(&x->lock);
}

void indexer_free(struct indexer *x)
{
	if (x == NULL)
		return;
	pthread_mutex_lock(&x->lock);
	x->stop = true; /* what is pending stays in the store, merged at the next start */
	pthread_cond_signal(&x->wake);
	pthread_mutex_unlock(&x->lock);
	pthread_join(x->thread, NULL);
	store_close(x->store);
	pthread_cond_destroy(&x->wake);
	pthread_mutex_destroy(&x->lock);
	free(x);
}
