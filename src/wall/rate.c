/* Token buckets and a stream's pacing (rate.h). */
#include "wall/rate.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/xalloc.h"

#define RATE_BURST_MIN 16384.0 /* a bucket holds at least this, */
#define RATE_BURST_DIV 8.0     /* ... or an eighth of a second's worth */
#define RATE_CHUNK 4096        /* a paused stream waits for this much (or what it wants) */

struct rate_pace {
	struct rate_bucket own[2];
	struct rate_share *svc; /* NULL: no service limit */
	struct event *ev[2];
	rate_resume_fn resume;
	void *arg;
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
	for (int d = 0; d < 2; d++)
		event_free(p->ev[d]);
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

size_t rate_pace_allow(struct rate_pace *p, int dir, size_t want)
{
	double now = clock_mono(), wait;
	size_t room = rate_bucket_room(&p->own[dir], now), need;
	struct rate_bucket *sb = p->svc != NULL ? &p->svc->b[dir] : NULL;

	if (sb != NULL) {
		size_t r = rate_bucket_room(sb, now);
		room = r < room ? r : room;
	}
	need = want < RATE_CHUNK ? want : RATE_CHUNK;
	if (room >= need)
		return room < want ? room : want;
	wait = rate_bucket_wait(&p->own[dir], need);
	if (sb != NULL)
		wait = fmax(wait, rate_bucket_wait(sb, need));
	if (p->svc != NULL)
		p->svc->throttled++;
	if (!evtimer_pending(p->ev[dir], NULL)) {
		struct timeval tv = clock_tv(fmax(wait, 0.001));
		evtimer_add(p->ev[dir], &tv);
	}
	return 0;
}

void rate_pace_spent(struct rate_pace *p, int dir, size_t n)
{
	p->own[dir].tokens -= p->own[dir].rate > 0 ? (double)n : 0;
	if (p->svc != NULL && p->svc->b[dir].rate > 0)
		p->svc->b[dir].tokens -= (double)n;
}
