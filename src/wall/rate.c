/* Token buckets and a stream's pacing (rate.h). */
#include "wall/rate.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/xalloc.h"

#define RATE_BURST_MIN 16384.0 /* a bucket holds at least this, */
#define RATE_BURST_DIV 8.0     /* ... or an eighth of a second's worth */
#define RATE_CHUNK 4096        /* a paused stream waits for this much, or what it wants, */
#define RATE_CHUNK_DIV 16.0    /* ... or a sixteenth of a second's worth, whichever is less */
#define RATE_WAKE_MAX 64       /* waiters told at one wake; the next wake tells the rest */

struct rate_pace {
	struct rate_bucket own[2];
	struct rate_share *svc; /* NULL: no service limit */
	struct event *ev[2];    /* waits for its own bucket */
	rate_resume_fn resume;
	void *arg;
	struct rate_pace *qprev[2], *qnext[2]; /* in its service's queue */
	size_t need[2]; /* the bytes it waits for there */
	bool queued[2];
	bool woken[2]; /* taken off the queue for its turn: it goes first */
};

void rate_bucket_set(struct rate_bucket *b, uint64_t rate, double now)
{
	bool was = b->rate > 0;

	b->rate = (double)rate;
	b->burst = fmax(b->rate / RATE_BURST_DIV, RATE_BURST_MIN);
	if (!was) {
		b->tokens = b->burst; /* a new bucket starts full */
		b->last = now;
	} else if (b->tokens > b->burst) {
		b->tokens = b->burst;
	}
}

size_t rate_bucket_room(struct rate_bucket *b, double now)
{
	if (b->rate <= 0)
		return SIZE_MAX;
	if (now > b->last) {
		b->tokens = fmin(b->burst, b->tokens + (now - b->last) * b->rate);
		b->last = now;
	}
	return b->tokens < 1 ? 0 : (size_t)b->tokens;
}

double rate_bucket_wait(const struct rate_bucket *b, size_t n)
{
	double need = fmin((double)n, b->burst) - b->tokens;

	return b->rate <= 0 || need <= 0 ? 0 : need / b->rate;
}

static void rate_on_timer_in(evutil_socket_t fd, short what, void *arg);
static void rate_on_timer_out(evutil_socket_t fd, short what, void *arg);
static void rate_share_on_timer_in(evutil_socket_t fd, short what, void *arg);
static void rate_share_on_timer_out(evutil_socket_t fd, short what, void *arg);

void rate_share_init(struct rate_share *s, struct event_base *base)
{
	s->ev[RATE_FROM_VISITOR] = evtimer_new(base, rate_share_on_timer_in, s);
	s->ev[RATE_TO_VISITOR] = evtimer_new(base, rate_share_on_timer_out, s);
	if (s->ev[0] == NULL || s->ev[1] == NULL)
		xalloc_fail("event");
}

void rate_share_free(struct rate_share *s)
{
	for (int d = 0; d < 2; d++) {
		if (s->ev[d] != NULL)
			event_free(s->ev[d]);
		s->ev[d] = NULL;
	}
}

static void rate_queue_add(struct rate_share *s, struct rate_pace *p, int d)
{
	p->qnext[d] = NULL;
	p->qprev[d] = s->tail[d];
	if (s->tail[d] != NULL)
		s->tail[d]->qnext[d] = p;
	else
		s->head[d] = p;
	s->tail[d] = p;
	s->queued[d]++;
	p->queued[d] = true;
}

static void rate_queue_del(struct rate_share *s, struct rate_pace *p, int d)
{
	if (!p->queued[d])
		return;
	if (p->qprev[d] != NULL)
		p->qprev[d]->qnext[d] = p->qnext[d];
	else
		s->head[d] = p->qnext[d];
	if (p->qnext[d] != NULL)
		p->qnext[d]->qprev[d] = p->qprev[d];
	else
		s->tail[d] = p->qprev[d];
	s->queued[d]--;
	p->queued[d] = false;
}

/* Arms the share's timer for the queue's head, unless it is armed. */
static void rate_share_arm(struct rate_share *s, int d)
{
	struct timeval tv;

	if (s->head[d] == NULL || evtimer_pending(s->ev[d], NULL))
		return;
	tv = clock_tv(fmax(rate_bucket_wait(&s->b[d], s->head[d]->need[d]), 0.001));
	evtimer_add(s->ev[d], &tv);
}

/* The share's bucket has refilled: the oldest waiters it can serve get their turn (at least
 * the first, at most RATE_WAKE_MAX), each told to try again; those that still find it short
 * queue again. They are taken off the queue and the timer armed for the rest before any is
 * told: a waiter told may end its stream, and the last stream of a service removed by a
 * reload frees the service and this share with it, so nothing here is touched after. A
 * waiter told frees at most its own pace: the others in turn[] stay valid. */
static void rate_share_wake(struct rate_share *s, int d)
{
	struct rate_pace *turn[RATE_WAKE_MAX];
	size_t room = rate_bucket_room(&s->b[d], clock_mono()), n = 0;

	while (n < RATE_WAKE_MAX && s->head[d] != NULL &&
	       (n == 0 || room >= s->head[d]->need[d])) {
		struct rate_pace *p = s->head[d];
		room = room > p->need[d] ? room - p->need[d] : 0;
		rate_queue_del(s, p, d);
		p->woken[d] = true;
		turn[n++] = p;
	}
	rate_share_arm(s, d);
	for (size_t k = 0; k < n; k++)
		turn[k]->resume(turn[k]->arg, d);
}

static void rate_share_on_timer_in(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	rate_share_wake(arg, RATE_FROM_VISITOR);
}

static void rate_share_on_timer_out(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	rate_share_wake(arg, RATE_TO_VISITOR);
}

struct rate_pace *rate_pace_new(struct event_base *base, struct rate_share *service,
				uint64_t visitor_rate, rate_resume_fn resume, void *arg)
{
	struct rate_pace *p = xcalloc(1, sizeof(*p));
	double now = clock_mono();

	p->svc = service;
	p->resume = resume;
	p->arg = arg;
	for (int d = 0; d < 2; d++) {
		rate_bucket_set(&p->own[d], visitor_rate, now);
		p->ev[d] = evtimer_new(base, d == RATE_FROM_VISITOR ? rate_on_timer_in
								  : rate_on_timer_out, p);
		if (p->ev[d] == NULL)
			xalloc_fail("event");
	}
	return p;
}

void rate_pace_free(struct rate_pace *p)
{
	if (p == NULL)
		return;
	for (int d = 0; d < 2; d++) {
		if (p->svc != NULL)
			rate_queue_del(p->svc, p, d);
		event_free(p->ev[d]);
	}
	free(p);
}

static void rate_on_timer_in(evutil_socket_t fd, short what, void *arg)
{
	struct rate_pace *p = arg;

	(void)fd;
	(void)what;
	p->resume(p->arg, RATE_FROM_VISITOR);
}

static void rate_on_timer_out(evutil_socket_t fd, short what, void *arg)
{
	struct rate_pace *p = arg;

	(void)fd;
	(void)what;
	p->resume(p->arg, RATE_TO_VISITOR);
}

/* The bytes worth waiting for: a paused stream wakes for no less, and a slow bucket does
 * not make it wait seconds for a whole chunk. */
static size_t rate_need(const struct rate_bucket *b, size_t need)
{
	double part = b->rate / RATE_CHUNK_DIV;

	if (b->rate > 0 && part < (double)need)
		need = part < 1 ? 1 : (size_t)part;
	return need;
}

/* Its own bucket is short: its own timer. */
static size_t rate_pause_own(struct rate_pace *p, int dir, size_t need)
{
	struct timeval tv = clock_tv(fmax(rate_bucket_wait(&p->own[dir], need), 0.001));

	if (!evtimer_pending(p->ev[dir], NULL))
		evtimer_add(p->ev[dir], &tv);
	return 0;
}

/* The service's bucket is short, or others wait for it first: the service's queue. */
static size_t rate_pause_shared(struct rate_pace *p, int dir, size_t need)
{
	struct rate_share *s = p->svc;

	p->need[dir] = need;
	if (!p->queued[dir])
		rate_queue_add(s, p, dir);
	rate_share_arm(s, dir);
	return 0;
}

size_t rate_pace_allow(struct rate_pace *p, int dir, size_t want)
{
	double now = clock_mono();
	struct rate_share *s = p->svc;
	size_t room, own, need = want < RATE_CHUNK ? want : RATE_CHUNK;
	bool turn = p->woken[dir];

	p->woken[dir] = false;
	if (s != NULL && (double)s->visitor_rate != p->own[dir].rate)
		rate_bucket_set(&p->own[dir], s->visitor_rate, now); /* a reload changed it */
	own = rate_bucket_room(&p->own[dir], now);
	need = rate_need(&p->own[dir], need);
	if (own < need) {
		if (s != NULL)
			s->throttled++;
		return rate_pause_own(p, dir, need);
	}
	if (s == NULL || s->b[dir].rate <= 0)
		return own < want ? own : want;
	need = rate_need(&s->b[dir], need);
	room = rate_bucket_room(&s->b[dir], now);
	/* the queue goes first: a stream that did not wait does not take the tokens the
	 * waiting ones were woken for */
	if (p->queued[dir] || (s->head[dir] != NULL && !turn) || room < need) {
		s->throttled++;
		return rate_pause_shared(p, dir, need);
	}
	room = room < own ? room : own;
	return room < want ? room : want;
}

void rate_pace_spent(struct rate_pace *p, int dir, size_t n)
{
	p->own[dir].tokens -= p->own[dir].rate > 0 ? (double)n : 0;
	if (p->svc != NULL && p->svc->b[dir].rate > 0)
		p->svc->b[dir].tokens -= (double)n;
}

size_t rate_pace_burst(const struct rate_pace *p, int dir)
{
	double b = p->own[dir].rate > 0 ? p->own[dir].burst : HUGE_VAL;

	if (p->svc != NULL && p->svc->b[dir].rate > 0)
		b = fmin(b, p->svc->b[dir].burst);
	return isinf(b) ? SIZE_MAX : (size_t)b;
}

bool rate_pace_waiting(const struct rate_pace *p)
{
	return evtimer_pending(p->ev[0], NULL) || evtimer_pending(p->ev[1], NULL) ||
	       p->queued[0] || p->queued[1];
}
