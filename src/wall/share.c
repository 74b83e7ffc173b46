/* The window and the budget a stream waits for (share.h): the budget's queue, the source
 * networks' shares of the window, the streams parked on them, and the grant of a stream's
 * first window. The policy is told at the top of stream.c ("Memory", "Shares"). */
#include "wall/share.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "wall/budget.h"
#include "wall/stream_state.h"

/* stream.c: starts reading a stream that waited for the budget (share_set_reader) */
static bool (*share_reader)(struct tstream *s);

/* Streams waiting for the budget, oldest first, across all tunnels; wake_ev runs the queue
 * on the loop turn after bytes are given back. It exists while the queue is not empty. */
static struct tstream *wait_head, *wait_tail;
static struct event *wake_ev;

/* The shares, by source network: a hash table that doubles when it holds as many shares as
 * buckets. Each stream holds a reference to its share; a share goes with its last stream. */
struct tshare {
	struct tshare *next; /* in its bucket */
	uint8_t key[17];     /* family length, then the network's bytes (host bits zero) */
	uint64_t win;        /* window granted to its streams */
	size_t refs;         /* streams holding it */
	struct tstream *park_head, *park_tail;
	struct tshare *pk_prev, *pk_next; /* on the list of shares with parked streams */
};
static struct tshare **share_b;
static size_t share_n, share_used; /* buckets (a power of two), shares */
static struct tshare *parked_head, *parked_tail; /* shares with parked streams, in turn */

/* ---- shares ---- */

static void stream_share_key(const struct sockaddr *sa, uint8_t key[17])
{
	const uint8_t *p;
	unsigned len, bits;

	memset(key, 0, 17);
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		p = IN6_IS_ADDR_V4MAPPED(in6) ? in6->s6_addr + 12 : in6->s6_addr;
		len = IN6_IS_ADDR_V4MAPPED(in6) ? 4 : 16;
	} else if (sa->sa_family == AF_INET) {
		p = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		len = 4;
	} else {
		return;
	}
	bits = len == 4 ? STREAM_SHARE_V4 : STREAM_SHARE_V6;
	key[0] = (uint8_t)len;
	memcpy(key + 1, p, bits / 8);
}

/* FNV-1a over the key: sources are peer-chosen, but a bucket's chain is bounded by the
 * streams open, as the listener's per-source table is by its connections. */
static size_t stream_share_hash(const uint8_t key[17], size_t n)
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 17; i++)
		h = (h ^ key[i]) * 16777619u;
	return h & (n - 1);
}

static void stream_share_grow(void)
{
	size_t n = share_n ? share_n * 2 : 64;
	struct tshare **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < share_n; i++) {
		for (struct tshare *x = share_b[i], *next; x != NULL; x = next) {
			size_t h = stream_share_hash(x->key, n);
			next = x->next;
			x->next = b[h];
			b[h] = x;
		}
	}
	free(share_b);
	share_b = b;
	share_n = n;
}

/* Attaches s to the share of source sa (once, before its first grant). */
void tstream_set_source(struct tstream *s, const struct sockaddr *sa)
{
	uint8_t key[17];
	struct tshare *x;
	size_t h;

	if (s->share != NULL)
		return;
	stream_share_key(sa, key);
	if (share_used >= share_n)
		stream_share_grow();
	h = stream_share_hash(key, share_n);
	for (x = share_b[h]; x != NULL; x = x->next)
		if (memcmp(x->key, key, 17) == 0)
			break;
	if (x == NULL) {
		x = xcalloc(1, sizeof(*x));
		memcpy(x->key, key, 17);
		x->next = share_b[h];
		share_b[h] = x;
		share_used++;
	}
	x->refs++;
	s->share = x;
}

static void stream_share_put(struct tshare *x)
{
	struct tshare **pp;

	if (x == NULL || --x->refs > 0)
		return;
	if (x->win != 0 || x->park_head != NULL)
		log_fatal("event=bug what=stream_share_put win=%llu", (unsigned long long)x->win);
	pp = &share_b[stream_share_hash(x->key, share_n)];
	while (*pp != x)
		pp = &(*pp)->next;
	*pp = x->next;
	share_used--;
	free(x);
}

/* The most window one share may hold now. */
static uint64_t stream_share_cap(void)
{
	uint64_t cap = budget_limit() / STREAM_SHARE_DIV;

	return cap > STREAM_WINDOW_FIRST ? cap : STREAM_WINDOW_FIRST;
}

/* May n more bytes of window go to s's share? Shares bite under contention only: while the
 * windows granted stay within a quarter of the budget (half their half), any may; past it,
 * a share may hold stream_share_cap() (and one holding none always may). */
static bool stream_share_fits(const struct tstream *s, uint64_t n)
{
	return s->share == NULL || s->share->win == 0 || budget_window() + n <= budget_limit() / 4 ||
	       s->share->win + n <= stream_share_cap();
}

static void stream_park(struct tstream *s)
{
	struct tshare *x = s->share;

	if (s->parked)
		return;
	s->parked = true;
	s->park_prev = x->park_tail;
	s->park_next = NULL;
	if (x->park_tail != NULL) {
		x->park_tail->park_next = s;
	} else {
		x->park_head = s;
		x->pk_prev = parked_tail;
		x->pk_next = NULL;
		if (parked_tail != NULL)
			parked_tail->pk_next = x;
		else
			parked_head = x;
		parked_tail = x;
	}
	x->park_tail = s;
	budget_note_wait();
}

static void stream_unpark(struct tstream *s)
{
	struct tshare *x = s->share;

	if (!s->parked)
		return;
	if (s->park_prev != NULL)
		s->park_prev->park_next = s->park_next;
	else
		x->park_head = s->park_next;
	if (s->park_next != NULL)
		s->park_next->park_prev = s->park_prev;
	else
		x->park_tail = s->park_prev;
	s->park_prev = s->park_next = NULL;
	s->parked = false;
	if (x->park_head != NULL)
		return;
	if (x->pk_prev != NULL)
		x->pk_prev->pk_next = x->pk_next;
	else
		parked_head = x->pk_next;
	if (x->pk_next != NULL)
		x->pk_next->pk_prev = x->pk_prev;
	else
		parked_tail = x->pk_prev;
	x->pk_prev = x->pk_next = NULL;
}

static void stream_wait(struct tstream *s, unsigned want);

/* Window was given back or granted: the oldest parked stream of share x, if x has room
 * now, goes to the budget's queue, which grants it on the next turn; so does the oldest of
 * the next share in turn, if the windows are back within a quarter of the budget. Each
 * grant calls this again, so parked streams are granted one by one while there is room; a
 * stream taken off the list that is freed or refused before its grant calls it instead
 * (share_release, stream_on_wake), or the chain would end there with streams still parked
 * and no window left to give back that could wake them. */
static void stream_share_next(struct tshare *x)
{
	struct tstream *p = x != NULL ? x->park_head : NULL;

	if (p != NULL && stream_share_fits(p, STREAM_WINDOW_LEAST)) {
		stream_unpark(p);
		stream_wait(p, STREAM_WANT_GRANT);
		event_active(wake_ev, EV_WRITE, 0);
	}
	x = parked_head;
	if (x == NULL || budget_window() + STREAM_WINDOW_LEAST > budget_limit() / 4)
		return;
	p = x->park_head;
	stream_unpark(p); /* x leaves the list if p was its last; else it goes to the back */
	if (x->park_head != NULL && x != parked_tail) {
		parked_head = x->pk_next;
		parked_head->pk_prev = NULL;
		x->pk_prev = parked_tail;
		x->pk_next = NULL;
		parked_tail->pk_next = x;
		parked_tail = x;
	}
	stream_wait(p, STREAM_WANT_GRANT);
	event_active(wake_ev, EV_WRITE, 0);
}

/* The budget was raised (a reload): the streams waiting for it, queued or parked, are
 * woken as if bytes had been given back. */
void tstream_budget_raised(void)
{
	if (wait_head != NULL)
		event_active(wake_ev, EV_WRITE, 0);
	stream_share_next(NULL);
}


static void stream_on_wake(evutil_socket_t fd, short what, void *arg);

/* Queues s for the budget (want: STREAM_WANT_*); each time it joins counts as one wait. */
static void stream_wait(struct tstream *s, unsigned want)
{
	s->wants |= want;
	if (s->waiting)
		return;
	if (wake_ev == NULL) {
		wake_ev = event_new(s->t->base, -1, 0, stream_on_wake, NULL);
		if (wake_ev == NULL)
			xalloc_fail("event");
	}
	s->waiting = true;
	s->wait_prev = wait_tail;
	s->wait_next = NULL;
	if (wait_tail != NULL)
		wait_tail->wait_next = s;
	else
		wait_head = s;
	wait_tail = s;
	budget_note_wait();
}

static void stream_unwait(struct tstream *s)
{
	if (!s->waiting)
		return;
	if (s->wait_prev != NULL)
		s->wait_prev->wait_next = s->wait_next;
	else
		wait_head = s->wait_next;
	if (s->wait_next != NULL)
		s->wait_next->wait_prev = s->wait_prev;
	else
		wait_tail = s->wait_prev;
	s->wait_prev = s->wait_next = NULL;
	s->waiting = false;
	if (wait_head == NULL)
		loop_free_event(&wake_ev);
}

/* Gives bytes read and window back to the budget; the queue runs on the next turn. */
void share_give(uint64_t in, uint64_t win)
{
	budget_give(in);
	budget_give_window(win);
	if (wait_head != NULL && in + win > 0)
		event_active(wake_ev, EV_WRITE, 0);
}

/* Wakes the queue in order while the budget has room for the next one: a grant is taken
 * here; a reader is counted as STREAM_WINDOW_FIRST against the room until it reads. One
 * pass at most: a stream that finds no room again goes to the back. */
static void stream_on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct tstream *last = wait_tail;
	uint64_t promised = 0;

	(void)fd;
	(void)what;
	(void)arg;
	while (wait_head != NULL && budget_room() >= promised + STREAM_WINDOW_LEAST) {
		struct tstream *s = wait_head;
		unsigned want = s->wants;
		s->wants = 0;
		stream_unwait(s);
		if (want & STREAM_WANT_GRANT) {
			tstream_grant(s);
			if (s->win == 0 && !s->parked && !s->waiting)
				stream_share_next(s->share); /* refused: the next one's turn */
		}
		if ((want & STREAM_WANT_READ) && share_reader != NULL && share_reader(s))
			promised += STREAM_WINDOW_FIRST;
		if (s == last)
			break;
	}
}

/* Grants the peer the stream's first window, or parks the stream until its share has room,
 * or queues it until the budget has. The stream must already exist in the HTTP/2 session. */
void tstream_grant(struct tstream *s)
{
	struct tstream_sink *t = s->t;

	uint32_t first = STREAM_WINDOW_FIRST;

	if (s->win > 0 || s->parked || s->h2_closed || s->remote_eof || t->h2 == NULL || s->id <= 0)
		return;
	if (budget_window() + first > budget_limit() / 4 || !stream_share_fits(s, first))
		first = STREAM_WINDOW_LEAST;
	if (!stream_share_fits(s, first)) {
		stream_park(s);
		return;
	}
	if (!budget_take_window(first)) {
		stream_wait(s, STREAM_WANT_GRANT);
		return;
	}
	s->win = first;
	if (s->share != NULL)
		s->share->win += first;
	stream_share_next(s->share);
	nghttp2_session_set_local_window_size(t->h2, NGHTTP2_FLAG_NONE, s->id, (int32_t)s->win);
	t->flush(t->arg);
}


void share_set_reader(bool (*read_again)(struct tstream *s))
{
	share_reader = read_again;
}

void share_wait(struct tstream *s, unsigned want)
{
	stream_wait(s, want);
}

/* Doubles, in stream_grow, the window of s by inc, if the windows granted stay under 3/8
 * of the budget (the last eighth of their half is kept for first windows) and its share
 * has room. */
bool share_widen(struct tstream *s, uint32_t inc)
{
	if (budget_window() + inc > budget_limit() / 8 * 3 || !stream_share_fits(s, inc) ||
	    !budget_take_window(inc))
		return false;
	if (s->share != NULL)
		s->share->win += inc;
	return true;
}

void share_release(struct tstream *s)
{
	bool granting = s->waiting && (s->wants & STREAM_WANT_GRANT);

	stream_unwait(s);
	stream_unpark(s);
	share_give(s->in_held, s->win);
	if (s->share != NULL)
		s->share->win -= s->win;
	if (s->win > 0 || granting)
		stream_share_next(s->share); /* window back, or its turn unused: the next one */
	if (s->share != NULL) {
		stream_share_put(s->share);
		s->share = NULL;
	}
	s->win = 0;
	s->in_held = 0;
}
