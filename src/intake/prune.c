/* Retention. A thread of its own, on a store connection of its own (as the committer's
 * census), removes the delivered, ignored and rejected messages last changed more than
 * retain_days ago, and, while the stored messages pass retain_bytes, the least recently
 * changed of them whatever their age. It works in transactions of PRUNE_BATCH messages
 * with a pause between them, so the committer (on SQLite one writer at a time) keeps its
 * turn and senders keep their ACKs. A pass runs at start, every PRUNE_EVERY seconds and at
 * each reload; a reload also ends a pass under way after its batch, and the next selects
 * with the new settings. Intakes sharing a PostgreSQL store take turns: a pass starts only
 * with the store's pruning turn, and is skipped while another process holds it. Received,
 * failed and dead messages are never removed here. */
#include "intake/prune.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "intake/store.h"

#define PRUNE_EVERY 60.0 /* seconds between passes */
#define PRUNE_BATCH 200  /* messages per transaction: an ACK waits for one at most */
#define PRUNE_PAUSE 0.02 /* seconds between two transactions of a pass, at least */
/* ... and at least this many times as long as the last transaction took: the pruner holds
 * the writer (SQLite has one) a third of the time at most, the committer has the rest */
#define PRUNE_YIELD 2.0
#define PRUNE_DAY_MS 86400000.0

struct prune {
	struct store *store; /* the thread's alone once it runs */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* on CLOCK_MONOTONIC */
	/* under lock */
	double retain_days;
	uint64_t retain_bytes;
	bool stop, kick;
	uint64_t messages, bytes; /* removed since start */
};

/* The metrics' view: the counters copied once under the lock. */
struct prune_snap {
	uint64_t messages, bytes;
};

static const struct metric prune_metrics[] = {
	{ "netwall_intake_pruned_total", METRIC_COUNTER,
	  "messages removed by retention (retain_days, retain_bytes)", NULL,
	  METRIC_FIELD(struct prune_snap, messages) },
	{ "netwall_intake_pruned_bytes_total", METRIC_COUNTER,
	  "stored bytes of the messages removed by retention", NULL,
	  METRIC_FIELD(struct prune_snap, bytes) },
};

/* Waits until seconds have passed, stop, or with kicks a kick (called and returning with
 * the lock held). Returns true when stopping. */
static bool prune_wait(struct prune *p, double seconds, bool kicks)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)seconds;
	ts.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (!p->stop && !(kicks && p->kick) && pthread_cond_timedwait(&p->wake, &p->lock, &ts) != ETIMEDOUT)
		;
	return p->stop;
}

/* The selection of one pass; false when retention is off or has nothing to do. */
static bool prune_select(struct prune *p, double days, uint64_t limit, struct store_prune *sel)
{
	char err[256];
	uint64_t total = 0;

	*sel = (struct store_prune){ .state = -1, .max = PRUNE_BATCH };
	if (days > 0)
		sel->before_ms = clock_wall_ms() - (int64_t)(days * PRUNE_DAY_MS);
	if (limit > 0) {
		if (store_bytes(p->store, &total, err, sizeof(err)) == -1)
			log_warn("event=prune_failed what=bytes error=\"%s\"", err);
		else if (total > limit)
			sel->excess = total - limit;
	}
	return sel->before_ms != 0 || sel->excess != 0;
}

/* One pass: batches until nothing is left to remove (or stop, or a reload), with the
 * store's pruning turn held. Lock not held. */
static void prune_batches(struct prune *p, double days, uint64_t limit)
{
	struct store_prune sel;
	char what[96], err[256];
	struct store_audit a = { .who = "intake", .via = "intake", .action = "prune", .what = what };
	uint64_t n = 0, bytes = 0;
	double t0 = clock_mono();

	if (!prune_select(p, days, limit, &sel))
		return;
	snprintf(what, sizeof(what), "retain_days=%g retain_bytes=%llu", days,
		 (unsigned long long)limit);
	for (;;) {
		uint64_t b;
		double t = clock_mono();
		int got = store_prune(p->store, &sel, &a, &b, err, sizeof(err));
		bool stop;

		if (got == -1)
			log_warn("event=prune_failed error=\"%s\"", err);
		if (got <= 0)
			break;
		n += (uint64_t)got;
		bytes += b;
		sel.excess = sel.excess > b ? sel.excess - b : 0;
		pthread_mutex_lock(&p->lock);
		p->messages += (uint64_t)got;
		p->bytes += b;
		t = (clock_mono() - t) * PRUNE_YIELD;
		/* a reload ends the pass after the batch under way: the next pass, at once,
		 * selects with the new settings (retention off stops here) */
		stop = (sel.before_ms == 0 && sel.excess == 0) ||
		       prune_wait(p, t > PRUNE_PAUSE ? t : PRUNE_PAUSE, true) || p->kick;
		pthread_mutex_unlock(&p->lock);
		if (stop)
			break;
	}
	if (n == 0)
		return;
	if (store_compact(p->store, err, sizeof(err)) == -1)
		log_warn("event=prune_failed what=compact error=\"%s\"", err);
	log_info("event=pruned messages=%llu bytes=%llu seconds=%.1f", (unsigned long long)n,
		 (unsigned long long)bytes, clock_mono() - t0);
}

/* One pass, when the store's pruning turn is this process's; skipped (and said) when
 * another process's pass is under way. Lock not held. */
static void prune_pass(struct prune *p, double days, uint64_t limit)
{
	char err[256];
	int turn;

	if (days <= 0 && limit == 0)
		return;
	turn = store_prune_turn(p->store, true, err, sizeof(err));
	if (turn == -1)
		log_warn("event=prune_failed what=turn error=\"%s\"", err);
	else if (turn == 0)
		log_info("event=prune_skipped why=another_process");
	if (turn != 1)
		return;
	prune_batches(p, days, limit);
	if (store_prune_turn(p->store, false, err, sizeof(err)) == -1)
		log_warn("event=prune_failed what=turn error=\"%s\"", err);
}

static void *prune_main(void *arg)
{
	struct prune *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		double days = p->retain_days;
		uint64_t limit = p->retain_bytes;

		p->kick = false;
		pthread_mutex_unlock(&p->lock);
		prune_pass(p, days, limit);
		pthread_mutex_lock(&p->lock);
		prune_wait(p, PRUNE_EVERY, true);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct prune *prune_new(const char *spec, double retain_days, uint64_t retain_bytes, char *err,
			size_t errlen)
{
	struct prune *p = xcalloc(1, sizeof(*p));
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	p->retain_days = retain_days;
	p->retain_bytes = retain_bytes;
	p->store = store_open(spec, err, errlen);
	/* a removal lost to a crash only brings messages back: no fsync of its own */
	if (p->store == NULL || store_relax(p->store, err, errlen) == -1) {
		store_close(p->store);
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->wake, &ca);
	pthread_condattr_destroy(&ca);
	sigfillset(&all); /* signals stay with the loop thread */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&p->thread, NULL, prune_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		err_set(err, errlen, "prune thread: %s", strerror(rc));
		pthread_cond_destroy(&p->wake);
		pthread_mutex_destroy(&p->lock);
		store_close(p->store);
		free(p);
		return NULL;
	}
	return p;
}

void prune_set(struct prune *p, double retain_days, uint64_t retain_bytes)
{
	pthread_mutex_lock(&p->lock);
	p->retain_days = retain_days;
	p->retain_bytes = retain_bytes;
	p->kick = true;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
}

void prune_metrics_add(struct prune *p, struct metrics *m)
{
	struct prune_snap *s = metrics_scratch(m, sizeof(*s));

	pthread_mutex_lock(&p->lock);
	s->messages = p->messages;
	s->bytes = p->bytes;
	pthread_mutex_unlock(&p->lock);
	metrics_add(m, prune_metrics, sizeof(prune_metrics) / sizeof(prune_metrics[0]), s);
}

void prune_free(struct prune *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL); /* a transaction under way is finished first */
	store_close(p->store);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
