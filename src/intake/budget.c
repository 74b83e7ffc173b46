/* The intake's memory budget: what each connection holds (its framer's buffer, unfed
 * input, frames awaiting answers, unread ACKs) is counted against memory_budget; at the
 * budget reading stops, one connection may read past it to finish its frame, and senders
 * silent in the middle of a frame are closed so that they do not hold everyone else. */
#include "intake/budget.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xalloc.h"

/* What c holds now: the framer's buffer (its capacity: what is allocated), the input not
 * fed yet, the frames awaiting answers with their ACKs, the answers not yet written. */
static size_t conn_held(const struct conn *c)
{
	size_t n = c->f.frame.cap + c->jobs_held;

	if (c->bev != NULL)
		n += evbuffer_get_length(bufferevent_get_input(c->bev)) +
		     evbuffer_get_length(bufferevent_get_output(c->bev));
	return n;
}

/* Bytes went: connections stopped for the budget are pumped again, from the loop (the
 * caller may be inside a connection's callback). */
static size_t intake_limit(const struct intake *in, const struct conn *c);

void budget_released(struct intake *in)
{
	struct conn *o = in->overdraft;

	if (in->resume_ev == NULL)
		return;
	if ((in->paused || in->nstarved > 0) &&
	    in->held + INTAKE_READ_MAX <= in->cfg->memory_budget)
		event_active(in->resume_ev, EV_TIMEOUT, 0);
	else if (o != NULL && o->starved && in->held + INTAKE_READ_MAX <= intake_limit(in, o))
		event_active(in->resume_ev, EV_TIMEOUT, 0);
}

/* At the budget with nobody allowed past it: the resume event chooses one connection. */
void budget_want_overdraft(struct intake *in)
{
	if (in->overdraft != NULL || in->pick || in->resume_ev == NULL ||
	    !(in->paused || in->nstarved > 0))
		return;
	in->pick = true;
	event_active(in->resume_ev, EV_TIMEOUT, 0);
}

/* c no longer reads past the budget (its frame is whole, or it closes): another may. */
void budget_drop_overdraft(struct conn *c)
{
	if (c->in->overdraft != c)
		return;
	c->in->overdraft = NULL;
	budget_want_overdraft(c->in);
}

/* How much c is worth reading past the budget: a partial frame whose next bytes are
 * already read (a sender still sending) 3, a partial frame 2, bytes read and not framed 1,
 * else 0. */
static int conn_overdraft_rank(const struct conn *c)
{
	bool input = evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;

	if (c->closing || c->shut || !conn_ready(c))
		return 0;
	if (mllp_partial(&c->f))
		return input ? 3 : 2;
	return input ? 1 : 0;
}

/* Chooses the connection that may read past the budget: the best ranked, the oldest
 * partial frame among equals. Linear in the connections; run once per frame read past the
 * budget and once per wait for it, never per byte. */
static void intake_pick_overdraft(struct intake *in)
{
	struct conn *best = NULL;
	int best_rank = 0;

	if (in->overdraft != NULL)
		return;
	for (struct conn *c = in->conns; c != NULL; c = c->next) {
		int r = c->bev != NULL ? conn_overdraft_rank(c) : 0;

		if (r > best_rank ||
		    (r == best_rank && r > 0 && c->frame_start < best->frame_start)) {
			best = c;
			best_rank = r;
		}
	}
	in->overdraft = best;
}

/* Brings c's share of in->held up to date; call after anything that changes it. */
static void intake_pause(struct intake *in);

void budget_account(struct conn *c)
{
	struct intake *in = c->in;
	size_t now = conn_held(c), was = c->held;

	in->held = in->held - was + now;
	c->held = now;
	if (now < was)
		budget_released(in);
	else if (in->held + INTAKE_READ_MAX > in->cfg->memory_budget)
		intake_pause(in); /* one more read anywhere could pass the budget */
}

/* True if feeding k more bytes to c's framer keeps the budget: the framer's buffer may
 * grow (doubling, as buf_tail does) and the frame may complete and be copied into a job
 * with its ACKs; one more socket read is kept room for. */
static size_t intake_limit(const struct intake *in, const struct conn *c)
{
	size_t budget = (size_t)in->cfg->memory_budget;

	return c == in->overdraft ? budget + c->f.max + INTAKE_OVERDRAFT_SLACK : budget;
}

bool budget_fits(const struct intake *in, const struct conn *c, size_t k)
{
	const struct buf *b = &c->f.frame;
	size_t cap = c->f.state != MLLP_SKIP ? mllp_cap_after(&c->f, k) : b->cap;
	size_t len = b->len + k < c->f.max ? b->len + k : c->f.max;
	size_t held = in->held - c->held + conn_held(c); /* c as it is now, mid-pump */
	size_t grow = cap - b->cap;

	/* the job: the frame (a copy, unless the framer's buffer is freed with it), its
	 * records and ACKs (a few KiB) */
	if (cap <= INTAKE_FRAMER_KEPT)
		grow += len;
	grow += 8192;
	return held + grow + INTAKE_READ_MAX <= intake_limit(in, c);
}

/* The peer closed (or shut its side) while its connection was not read for the budget
 * (loop callback). With a partial frame or bytes still unread, the connection goes at once
 * and what it held with it, instead of holding the budget until frame_timeout: nothing
 * of it was acknowledged, so a sender that still wants an answer sends it again. With
 * neither, nothing is held: the close is seen when reading resumes. */
static void conn_closed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint8_t b;

	(void)what;
	if (c->closing)
		return;
	if (recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0 && !mllp_partial(&c->f))
		return;
	c->eof = true;
	c->in->up->close(c, "closed_while_waiting");
}

/* Watches for the peer's close while c is not read for the budget (once: the event is
 * level-triggered, and reading again sees the close anyway). */
void budget_watch_close(struct conn *c)
{
	struct intake *in = c->in;

	if (c->bev == NULL || c->closed_ev != NULL ||
	    !(event_base_get_features(in->base) & EV_FEATURE_EARLY_CLOSE))
		return;
	c->closed_ev = event_new(in->base, bufferevent_getfd(c->bev), EV_CLOSED, conn_closed_cb, c);
	if (c->closed_ev == NULL || event_add(c->closed_ev, NULL) == -1)
		xalloc_fail("event");
}

/* True if c's sender has stopped in the middle of a frame: nothing of it waits to be read,
 * in our buffer or in the socket. */
static bool conn_sender_silent(const struct conn *c)
{
	int n = 0;

	if (c->bev == NULL || c->closing || !mllp_partial(&c->f) ||
	    evbuffer_get_length(bufferevent_get_input(c->bev)) != 0)
		return false;
	return ioctl(bufferevent_getfd(c->bev), FIONREAD, &n) == 0 && n == 0;
}

/* While reading is stopped at the budget, every INTAKE_STALL_LOOK: a partial frame whose
 * sender was silent at two looks in a row, its frame no longer for it, is closed. Nothing of
 * it was acknowledged, and its bytes are what stops everyone else: without this, senders
 * that start large frames and stop would hold the budget until frame_timeout, and every
 * other sender with them. A sender we stopped reading is not silent (its bytes wait in the
 * socket), so a frame still coming is never taken for a stalled one. Linear in the
 * connections, once a second while paused. */
void budget_stall_cb(evutil_socket_t fd, short what, void *arg)
{
	struct intake *in = arg;
	struct timeval tv = clock_tv(INTAKE_STALL_LOOK);

	(void)fd;
	(void)what;
	if (!in->paused)
		return;
	for (struct conn *c = in->conns, *next; c != NULL; c = next) {
		next = c->next;
		if (!conn_sender_silent(c)) {
			c->stall_len = 0;
		} else if (c->stall_len != c->f.frame.len) {
			c->stall_len = c->f.frame.len; /* silent now: look again next time */
		} else {
			in->st.stalled++;
			in->up->close(c, "stalled_at_budget");
		}
	}
	if (in->paused)
		evtimer_add(in->stall_ev, &tv);
}

/* Stops reading on every connection: the budget is reached. */
static void intake_pause(struct intake *in)
{
	struct timeval tv = clock_tv(INTAKE_STALL_LOOK);

	if (in->paused)
		return;
	in->paused = true;
	if (in->stall_ev != NULL && !evtimer_pending(in->stall_ev, NULL))
		evtimer_add(in->stall_ev, &tv);
	in->st.memory_waits++;
	log_limited(&in->rate, LOG_WARN, "event=memory_budget_reached held=%zu budget=%llu",
		    in->held, (unsigned long long)in->cfg->memory_budget);
	for (struct conn *c = in->conns; c != NULL; c = c->next) {
		if (c->bev != NULL && !c->shut && !c->closing && c != in->overdraft) {
			bufferevent_disable(c->bev, EV_READ);
			budget_watch_close(c);
		}
	}
	budget_want_overdraft(in);
}

/* The resume event: reading starts again where the budget allows (loop callback). */
void budget_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct intake *in = arg;
	bool all = in->paused; /* else only the starved ones were stopped */

	(void)fd;
	(void)what;
	if (in->pick) {
		in->pick = false;
		intake_pick_overdraft(in);
	}
	if (in->held + INTAKE_READ_MAX > in->cfg->memory_budget) {
		/* at the budget: only the one connection allowed past it reads */
		struct conn *c = in->overdraft;
		if (c != NULL && in->held + INTAKE_READ_MAX <= intake_limit(in, c)) {
			if (c->starved) {
				c->starved = false;
				in->nstarved--;
			}
			loop_free_event(&c->closed_ev);
			in->up->pump(c);
		}
		return;
	}
	in->paused = false;
	for (struct conn *c = in->conns, *next; c != NULL && !in->paused; c = next) {
		next = c->next; /* conn_pump may close c, never another */
		if (!all && !c->starved)
			continue;
		if (c->starved) {
			c->starved = false;
			in->nstarved--;
		}
		loop_free_event(&c->closed_ev);
		if (c->bev == NULL || c->closing)
			continue;
		if (!c->tls_ready)
			bufferevent_enable(c->bev, EV_READ); /* the handshake */
		else
			in->up->pump(c);
	}
}
