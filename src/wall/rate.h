/* Token buckets for rate_limit and visitor_rate_limit (the gateway's [service]): a service's
 * visitors together, and each visitor alone, move at most so many bytes a second in each
 * direction. A stream asks before each read and write how much it may move; when a bucket
 * is short it is paused, and a timer resumes it once the bucket has refilled. */
#ifndef NETWALL_RATE_H
#define NETWALL_RATE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { RATE_FROM_VISITOR = 0, RATE_TO_VISITOR = 1 };

struct rate_bucket {
	double rate;   /* bytes per second; 0: no limit */
	double burst;  /* the most it holds: an eighth of a second's worth, at least 16 KiB */
	double tokens;
	double last;   /* monotonic time of the last refill */
};

/* A service's buckets, one per direction, its visitor_rate_limit (its streams' own buckets
 * follow it when a reload changes it), and how often they paused a stream. Streams its
 * bucket pauses wait in its queue, oldest first, and one timer wakes as many as the
 * refilled bucket can serve: not every paused stream at every refill. */
struct rate_pace;
struct rate_share {
	struct rate_bucket b[2];
	uint64_t visitor_rate;
	uint64_t throttled;
	struct rate_pace *head[2], *tail[2];
	size_t queued[2];
	struct event *ev[2];
};

/* The share's timers, on base; rate_share_free frees them (its queues are empty by then:
 * a service outlives its streams). */
void rate_share_init(struct rate_share *s, struct event_base *base);
void rate_share_free(struct rate_share *s);

/* Sets a bucket's rate (0: none). A bucket keeps its tokens, up to the new burst. */
void rate_bucket_set(struct rate_bucket *b, uint64_t rate, double now);

/* Refills b to now and returns the whole bytes it holds (SIZE_MAX without a limit). */
size_t rate_bucket_room(struct rate_bucket *b, double now);

/* Seconds until b holds n bytes (0 if it does). */
double rate_bucket_wait(const struct rate_bucket *b, size_t n);

/* One stream's pacing: its own buckets (visitor_rate_limit) and its service's. */
typedef void (*rate_resume_fn)(void *arg, int dir);
struct rate_pace *rate_pace_new(struct event_base *base, struct rate_share *service,
				uint64_t visitor_rate, rate_resume_fn resume, void *arg);
void rate_pace_free(struct rate_pace *p);

/* How many of want bytes dir may move now. 0: paused; resume(arg, dir) is called once the
 * buckets can give a useful amount (min(want, 4 KiB, a sixteenth of a second's worth)). */
size_t rate_pace_allow(struct rate_pace *p, int dir, size_t want);

/* n bytes moved (n <= what rate_pace_allow said). */
void rate_pace_spent(struct rate_pace *p, int dir, size_t n);

/* The most dir's buckets hold (SIZE_MAX without a limit): a stream's receive window
 * grows no larger, since the bucket would not let more out at once. */
size_t rate_pace_burst(const struct rate_pace *p, int dir);

/* Is a direction paused, waiting for its timer? (Such a stream is not idle: it has bytes
 * the bucket holds back.) */
bool rate_pace_waiting(const struct rate_pace *p);

#endif
