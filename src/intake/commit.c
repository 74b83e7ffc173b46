/* Group commit. The loop thread queues requests; one thread takes everything queued (up to
 * COMMIT_MAX_BATCH) and writes it with one store_put, so the messages that arrived while
 * the previous transaction was being made durable share the next one. Finished requests
 * go back on a second list, and an eventfd wakes the loop, which runs their done
 * callbacks in submission order. The loop's event base is only ever touched from the
 * loop thread (no libevent threading support is assumed). */
#include "intake/commit.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "intake/indexer.h"

#define COMMIT_DEPTH_EVERY 1.0  /* seconds: queue depth is read at most this often */
#define COMMIT_COUNTS_EVERY 5.0 /* seconds: counts by state (a scan) at most this often */

/* The figures /metrics, /status and the status page show (queue depth, counts by state) are
 * read by a second thread on its own connection, the census: a count is a scan (on a store
 * of a million messages, tens of milliseconds to seconds), and made by the committer it
 * would hold every sender's ACK for that long. In WAL mode (and on PostgreSQL) the census
 * reads while the committer writes. */

struct commit {
	struct event_base *base;
	struct store *store; /* the committer thread's alone once it runs */
	void (*after)(void *arg);
	void *after_arg;

	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct indexer *indexer;    /* merges the keys each commit leaves pending */
	struct store *census_store; /* the census thread's alone */
	pthread_t census;
	pthread_cond_t census_wake;
	bool census_running;
	/* under lock */
	struct commit_req *queue, *queue_tail; /* submitted, not yet taken */
	struct commit_req *done, *done_tail;   /* committed, done not yet run */
	bool stop;
	struct commit_stats stats;
	struct commit_snapshot snap;
	bool want_depth, want_counts; /* the loop asked for fresher figures */
	double depth_tried, counts_tried; /* when the census last read them, even if it failed */
	struct log_rate census_rate;      /* census thread only */

	int efd;
	struct event *ev;
	size_t pending; /* loop thread only: submitted, done not yet run */

	size_t queued; /* under lock: requests in queue */

	/* committer thread only */
	struct commit_req *batch[COMMIT_MAX_BATCH];
	struct store_msg msgs[COMMIT_MAX_BATCH];
	const void *seen[2 * COMMIT_MAX_BATCH]; /* sources of the last two batches */
	size_t nseen[2];
	unsigned cur;
	size_t expect; /* distinct sources in the last two batches */
};

/* Remembers the sources of the batch just taken and counts the distinct ones of the last
 * two batches (committer thread). */
static void commit_note_sources(struct commit *c, size_t n)
{
	const void **mine = c->seen + c->cur * COMMIT_MAX_BATCH;
	const void **other = c->seen + (1 - c->cur) * COMMIT_MAX_BATCH;
	size_t distinct = 0;

	for (size_t i = 0; i < n; i++)
		mine[i] = c->batch[i]->source;
	c->nseen[c->cur] = n;
	c->cur = 1 - c->cur;
	/* quadratic but over at most a few dozen senders in practice; capped below */
	for (size_t i = 0; i < n + c->nseen[c->cur] && distinct < 64; i++) {
		const void *s = i < n ? mine[i] : other[i - n];
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = (j < n ? mine[j] : other[j - n]) == s;
		if (!dup && s != NULL)
			distinct++;
	}
	c->expect = distinct;
}

/* Writes one batch: requests batch[0..n) in order. Called in the committer thread. */
static void commit_batch(struct commit *c, size_t n)
{
	char err[sizeof(c->batch[0]->err)] = "";
	uint64_t rows = 0, dups = 0;
	size_t keys = 0;
	int64_t newest = 0;
	bool received = false;
	int rc;

	for (size_t i = 0; i < n; i++) {
		c->msgs[i] = c->batch[i]->msg;
		if (c->msgs[i].received_ms > newest)
			newest = c->msgs[i].received_ms;
	}
	rc = store_put(c->store, c->msgs, n, err, sizeof(err));
	for (size_t i = 0; i < n; i++) {
		struct commit_req *r = c->batch[i];

		r->msg = c->msgs[i];
		r->rc = rc;
		if (rc == -1) {
			memcpy(r->err, err, sizeof(r->err));
			continue;
		}
		r->err[0] = '\0';
		if (r->msg.duplicate) {
			dups++;
			continue;
		}
		rows++;
		keys += r->msg.keys;
		if (r->msg.state == STORE_RECEIVED)
			received = true;
	}
	explicit_bzero(c->msgs, n * sizeof(c->msgs[0]));
	indexer_added(c->indexer, keys);

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n; i++) {
		c->batch[i]->next = NULL;
		if (c->done_tail != NULL)
			c->done_tail->next = c->batch[i];
		else
			c->done = c->batch[i];
		c->done_tail = c->batch[i];
	}
	if (rc == -1) {
		c->stats.failures++;
	} else {
		c->stats.transactions++;
		c->stats.rows += rows;
		c->stats.dups += dups;
	}
	if (n > c->stats.max_batch)
		c->stats.max_batch = n;
	if (newest > c->stats.last_received_ms)
		c->stats.last_received_ms = newest;
	pthread_mutex_unlock(&c->lock);

	uint64_t one = 1;
	while (write(c->efd, &one, sizeof(one)) == -1 && errno == EINTR)
		; /* EAGAIN: the counter is already far from zero, the loop will wake */
	if (received && c->after != NULL)
		c->after(c->after_arg);
}

/* Reads the figures the loop asked for, if they are old enough (census thread, called and
 * returning with the lock held). Reading them here keeps a slow database from stalling the
 * loop thread, which serves /metrics and /status from the snapshot, and the committer. */
static void commit_refresh(struct commit *c)
{
	double now = clock_mono();
	bool depth = c->want_depth && now - c->depth_tried >= COMMIT_DEPTH_EVERY;
	bool counts = c->want_counts && now - c->counts_tried >= COMMIT_COUNTS_EVERY;
	uint64_t d = 0, by[STORE_NSTATES] = { 0 };
	int64_t oldest = 0;
	char err[128];
	int n = 0, drc = 0;

	/* the flags are cleared even when the figures are too fresh to read again: the next
	 * scrape asks anew, and the thread must not spin (holding the lock) until they age */
	c->want_depth = c->want_counts = false;
	if (!depth && !counts)
		return;
	if (depth)
		c->depth_tried = now;
	if (counts)
		c->counts_tried = now;
	pthread_mutex_unlock(&c->lock);
	if (depth && (drc = store_queue_depth(c->census_store, &d, err, sizeof(err))) == -1)
		log_limited(&c->census_rate, LOG_WARN,
			    "event=census_failed what=queue_depth error=\"%s\"", err);
	if (depth && drc == 0 &&
	    (drc = store_oldest_undelivered(c->census_store, &oldest, err, sizeof(err))) == -1)
		log_limited(&c->census_rate, LOG_WARN,
			    "event=census_failed what=oldest_undelivered error=\"%s\"", err);
	if (counts && (n = store_count_states(c->census_store, by, err, sizeof(err))) == -1)
		log_limited(&c->census_rate, LOG_WARN,
			    "event=census_failed what=counts error=\"%s\"", err);
	pthread_mutex_lock(&c->lock);
	/* the times are those of the last good read: /status shows how old the figures are */
	if (depth && drc == 0) {
		c->snap.depth = d;
		c->snap.oldest_ms = oldest;
		c->snap.depth_ok = true;
		c->snap.depth_at = now;
	}
	if (counts && n == 0) {
		memcpy(c->snap.by_state, by, sizeof(by));
		c->snap.counts_ok = true;
		c->snap.counts_at = now;
	}
}

static void *commit_census(void *arg)
{
	struct commit *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		if (!c->want_depth && !c->want_counts) {
			pthread_cond_wait(&c->census_wake, &c->lock);
			continue;
		}
		commit_refresh(c);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void *commit_main(void *arg)
{
	struct commit *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		size_t n = 0;

		while (c->queue == NULL && !c->stop)
			pthread_cond_wait(&c->wake, &c->lock);
		if (c->queue == NULL && c->stop)
			break; /* stopping, and nothing left to write */
		if (c->queue == NULL)
			continue;
		/* gather: wait briefly for the other recent senders' next messages */
		if (!c->stop && c->queued < c->expect && c->queued < COMMIT_MAX_BATCH) {
			double until = c->queue->queued_at + COMMIT_GATHER_US / 1e6;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			double left = until - clock_mono();
			if (left > 0) {
				long ns = ts.tv_nsec + (long)(left * 1e9);
				ts.tv_sec += ns / 1000000000L;
				ts.tv_nsec = ns % 1000000000L;
				while (!c->stop && c->queued < c->expect &&
				       pthread_cond_timedwait(&c->wake, &c->lock, &ts) == 0)
					;
			}
		}
		while (c->queue != NULL && n < COMMIT_MAX_BATCH) {
			c->batch[n++] = c->queue;
			c->queue = c->queue->next;
		}
		c->queued -= n;
		if (c->queue == NULL)
			c->queue_tail = NULL;
		commit_note_sources(c, n);
		pthread_mutex_unlock(&c->lock);
		commit_batch(c, n);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Runs the done callbacks of everything committed so far, in order (loop thread). */
static void run_done(struct commit *c)
{
	struct commit_req *r, *next;

	pthread_mutex_lock(&c->lock);
	r = c->done;
	c->done = c->done_tail = NULL;
	pthread_mutex_unlock(&c->lock);
	for (; r != NULL; r = next) {
		next = r->next; /* done may free r */
		r->next = NULL;
		c->pending--;
		r->done(r, r->arg);
	}
}

static void on_eventfd(evutil_socket_t fd, short what, void *arg)
{
	struct commit *c = arg;
	uint64_t v;

	while (read(fd, &v, sizeof(v)) == -1 && errno == EINTR)
		;
	run_done(c);
}

struct commit *commit_new(struct event_base *base, const char *spec,
			  void (*after)(void *arg), void *after_arg, char *err, size_t errlen)
{
	struct commit *c = xcalloc(1, sizeof(*c));
	sigset_t all, old;
	int rc;

	c->base = base;
	c->after = after;
	c->after_arg = after_arg;
	c->efd = -1;
	/* "nothing received since" counts from the start until something is */
	c->stats.last_received_ms = clock_wall_ms();
	c->store = store_open(spec, err, errlen);
	if (c->store == NULL)
		goto fail;
	c->census_store = store_open(spec, err, errlen);
	if (c->census_store == NULL)
		goto fail;
	c->indexer = indexer_new(spec, err, errlen);
	if (c->indexer == NULL)
		goto fail;
	c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->efd == -1) {
		if (err != NULL)
			snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	c->ev = event_new(base, c->efd, EV_READ | EV_PERSIST, on_eventfd, c);
	if (c->ev == NULL || event_add(c->ev, NULL) == -1) {
		if (err != NULL)
			snprintf(err, errlen, "cannot watch the commit eventfd");
		goto fail;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	pthread_cond_init(&c->census_wake, NULL);
	/* signals stay with the loop thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&c->thread, NULL, commit_main, c);
	if (rc == 0) {
		/* without a census the figures stay unread; commits go on */
		c->census_running = pthread_create(&c->census, NULL, commit_census, c) == 0;
		if (!c->census_running)
			log_warn("event=census_failed (queue depth and counts will not be read)");
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		if (err != NULL)
			snprintf(err, errlen, "commit thread: %s", strerror(rc));
		pthread_cond_destroy(&c->census_wake);
		pthread_cond_destroy(&c->wake);
		pthread_mutex_destroy(&c->lock);
		goto fail;
	}
	return c;
fail:
	if (c->ev != NULL)
		event_free(c->ev);
	if (c->efd != -1)
		close(c->efd);
	indexer_free(c->indexer);
	store_close(c->census_store);
	store_close(c->store);
	free(c);
	return NULL;
}

void commit_submit(struct commit *c, struct commit_req *r)
{
	r->next = NULL;
	r->rc = 0;
	r->err[0] = '\0';
	c->pending++;
	r->queued_at = clock_mono();
	pthread_mutex_lock(&c->lock);
	c->queued++;
	if (c->queue_tail != NULL)
		c->queue_tail->next = r;
	else
		c->queue = r;
	c->queue_tail = r;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
}

size_t commit_pending(const struct commit *c)
{
	return c->pending;
}

void commit_stats(struct commit *c, struct commit_stats *out)
{
	struct indexer_stats ix;

	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	pthread_mutex_unlock(&c->lock);
	indexer_stats(c->indexer, &ix);
	out->keys_pending = ix.pending;
	out->keys_merged = ix.merged;
	out->merge_failures = ix.failures;
}

void commit_snapshot(struct commit *c, bool counts, struct commit_snapshot *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->snap;
	c->want_depth = true;
	if (counts)
		c->want_counts = true;
	pthread_cond_signal(&c->census_wake);
	pthread_mutex_unlock(&c->lock);
}

void commit_free(struct commit *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->wake);
	pthread_cond_signal(&c->census_wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL); /* the thread writes what is queued first */
	if (c->census_running)
		pthread_join(c->census, NULL);
	run_done(c);
	indexer_free(c->indexer); /* after the committer: it counts keys to the indexer */
	event_free(c->ev);
	close(c->efd);
	store_close(c->census_store);
	store_close(c->store);
	pthread_cond_destroy(&c->census_wake);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
