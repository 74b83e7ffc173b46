/* The bytes of one stream: a local socket (visitor on the gateway, target on the agent)
 * pumped to and from its HTTP/2 stream. EOF travels as END_STREAM and becomes
 * shutdown(SHUT_WR) on the far side; errors travel as RST_STREAM and become a TCP reset.
 *
 * Memory (budget.h): every stream starts with no receive window (SETTINGS_INITIAL_WINDOW_SIZE
 * is 0) and is granted STREAM_WINDOW_FIRST (STREAM_WINDOW_LEAST once a quarter of the budget
 * is window) when the budget has room for it. Window, stream and connection level, is
 * returned only as bytes are written to the socket, so what the peer can make us hold for a
 * stream is its window, held against the budget from grant to free. A stream whose socket
 * keeps up doubles its window, up to stream_window (stream_grow); a reader that stops holds
 * what it had. Windows take at most half the budget, so sockets can always be read. A
 * socket is read only up to what the peer's window lets us send (at most STREAM_IN_CAP) and
 * while the budget has room; the bytes read are held until framed. A stream that finds the
 * budget full waits on a queue, woken in order as bytes are given back. Source networks'
 * shares of the window: share.h.
 *
 * Hang-ups: a socket that is neither read nor written (its stream waits for window or for
 * the budget) is polled each second for its peer hanging up. A reset ends the stream.
 * A close (FIN) ends it when the far side answered but never gave it window (the far side
 * keeps it waiting for its budget or share): the peer gave up before a byte could move, and
 * the bytes it left cannot be read without the budget that is missing. Any other FIN is a
 * half-close, read in turn. */
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/sock.h"
#include "core/tls.h"
#include "core/xalloc.h"
#include "wall/budget.h"
#include "wall/rate.h"
#include "wall/share.h"
#include "wall/stream.h"
#include "wall/stream_io.h"
#include "wall/stream_state.h"


static struct log_rate stream_log_rate;

struct tstream_stats tstream_stats;

static bool stream_read_again(struct tstream *s);
static void stream_on_read(evutil_socket_t fd, short what, void *arg);
static void stream_on_write(evutil_socket_t fd, short what, void *arg);
static void stream_reset(struct tstream *s, uint32_t code);


struct tstream *tstream_new(struct tstream_sink *t)
{
	struct tstream *s = xcalloc(1, sizeof(*s));

	share_set_reader(stream_read_again);
	s->t = t;
	s->fd = -1;
	s->in = evbuffer_new();
	s->out = evbuffer_new();
	if (s->in == NULL || s->out == NULL)
		xalloc_fail("evbuffer");
	s->next = t->streams;
	if (t->streams != NULL)
		t->streams->prev = s;
	t->streams = s;
	t->nstreams++;
	return s;
}

/* OpenSSL may hold decrypted bytes a short read left behind: the socket will not say so,
 * so the read event is fired by hand. */
static void stream_kick_tls(struct tstream *s)
{
	if (s->ssl != NULL && s->reading && !s->handshaking && SSL_has_pending(s->ssl))
		event_active(s->rev, EV_READ, 0);
}

static void stream_set_reading(struct tstream *s, bool on)
{
	if (on == s->reading || s->fd == -1)
		return;
	s->reading = on;
	if (on) {
		event_add(s->rev, NULL);
		stream_kick_tls(s);
	} else {
		event_del(s->rev);
	}
}

static void stream_set_writing(struct tstream *s, bool on)
{
	if (on == s->writing || s->fd == -1)
		return;
	s->writing = on;
	if (on)
		event_add(s->wev, NULL);
	else
		event_del(s->wev);
}

/* Has the peer of a socket that is neither read nor written hung up? A reset ends the
 * stream; so does a close before the far side ever gave the stream window (see the top of
 * this file). Checked with poll(), not with a libevent watch: an edge-triggered watch
 * shares the descriptor's one trigger mode with rev and wev. */
static void stream_check_hangup(struct tstream *s)
{
	struct pollfd p = { .fd = s->fd, .events = POLLRDHUP };

	if (s->fd == -1 || s->reading || s->writing || s->connecting || s->handshaking ||
	    poll(&p, 1, 0) != 1)
		return;
	if (p.revents & POLLERR) {
		log_debug("event=stream_hangup stream=%d how=reset", s->id);
		stream_reset(s, NGHTTP2_CONNECT_ERROR);
	} else if ((p.revents & (POLLRDHUP | POLLHUP)) && s->peer_ready && !s->peer_opened) {
		log_debug("event=stream_hangup stream=%d how=closed_without_window", s->id);
		stream_reset(s, NGHTTP2_CANCEL);
	}
}


static bool stream_may_read(const struct tstream *s)
{
	return s->fd != -1 && !s->rd_eof && !s->rd_err && !s->connecting && !s->handshaking;
}

/* The budget's queue has room for s, which waited to read (share_set_reader). */
static bool stream_read_again(struct tstream *s)
{
	if (!stream_may_read(s))
		return false;
	stream_set_reading(s, true);
	return true;
}

/* Doubles the window of a stream whose socket took a whole window without blocking and
 * with the kernel keeping at most an eighth of it unsent (a reader that stops reading may
 * be absorbed by a send buffer of megabytes before the socket blocks; a reader slower than
 * the tunnel gains nothing from a larger window anyway), up to stream_window, while the
 * windows granted stay under 3/8 of the budget (the last eighth of their half is kept for
 * first windows) and its share has room. */
static void stream_grow(struct tstream *s)
{
	struct tstream_sink *t = s->t;
	uint32_t inc;

	if (s->win == 0 || s->drained < s->win)
		return;
	if (!s->blocked && sock_unsent(s->fd) > s->win / 8)
		s->blocked = true;
	inc = t->stream_window > s->win ? t->stream_window - s->win : 0;
	if (inc > s->win)
		inc = s->win;
	if (s->pace != NULL && rate_pace_burst(s->pace, RATE_TO_VISITOR) < (size_t)s->win + inc)
		inc = 0; /* more window than the bucket lets out at once would only sit here */
	if (!s->blocked && inc > 0 && !s->h2_closed && t->h2 != NULL && share_widen(s, inc)) {
		s->win += inc;
		nghttp2_session_set_local_window_size(t->h2, NGHTTP2_FLAG_NONE, s->id,
						      (int32_t)s->win);
		t->flush(t->arg);
	}
	s->drained = 0;
	s->blocked = false;
}

/* How many unframed bytes the socket may be read up to: what the peer's windows (stream and
 * connection) let us send now, at most STREAM_IN_CAP. A stream the peer gives no window
 * reads nothing, so what a stalled peer costs stays on its side; the window update that
 * opens it starts the reading again (tstream_window_opened). */
static size_t stream_in_cap(struct tstream *s)
{
	struct tstream_sink *t = s->t;
	int32_t w, c;

	if (t->h2 == NULL || s->id <= 0 || s->h2_closed)
		return 0;
	w = nghttp2_session_get_stream_remote_window_size(t->h2, s->id);
	if (w > 0)
		s->peer_opened = true;
	c = nghttp2_session_get_remote_window_size(t->h2);
	if (c < w)
		w = c;
	if (w <= 0)
		return 0;
	return (size_t)w < STREAM_IN_CAP ? (size_t)w : STREAM_IN_CAP;
}

/* Reads again if the socket may be read, the peer's window leaves room and the budget has
 * some; otherwise notes what it waits for. */
static void stream_resume_reading(struct tstream *s)
{
	if (!stream_may_read(s) || s->reading)
		return;
	if (evbuffer_get_length(s->in) >= stream_in_cap(s))
		s->win_blocked = true;
	else if (budget_room() > 0)
		stream_set_reading(s, true);
	else
		share_wait(s, STREAM_WANT_READ);
}

void tstream_window_opened(struct tstream *s)
{
	if (s->t->h2 != NULL && s->id > 0 && !s->h2_closed &&
	    nghttp2_session_get_stream_remote_window_size(s->t->h2, s->id) > 0)
		s->peer_opened = true;
	if (!s->win_blocked)
		return;
	s->win_blocked = false;
	stream_resume_reading(s);
}

/* A rate bucket (rate.h) that paused the stream has refilled. */
static void stream_paced(void *arg, int dir)
{
	struct tstream *s = arg;
	struct tstream_sink *t = s->t;

	t->busy(t->arg);
	if (dir == RATE_FROM_VISITOR)
		stream_resume_reading(s);
	else
		tstream_flush(s);
	t->unbusy(t->arg);
}

void tstream_set_rate(struct tstream *s, struct rate_share *service, uint64_t visitor_rate)
{
	if ((service == NULL || (service->b[0].rate <= 0 && service->b[1].rate <= 0)) &&
	    visitor_rate == 0)
		return;
	s->pace = rate_pace_new(s->t->base, service, visitor_rate, stream_paced, s);
}

/* The socket's read and write events (not added yet). */
static void stream_watch(struct tstream *s)
{
	struct event_base *base = s->t->base;

	s->rev = event_new(base, s->fd, EV_READ | EV_PERSIST, stream_on_read, s);
	s->wev = event_new(base, s->fd, EV_WRITE | EV_PERSIST, stream_on_write, s);
	if (s->rev == NULL || s->wev == NULL)
		xalloc_fail("event");
}

void tstream_start(struct tstream *s)
{
	stream_watch(s);
	s->counted = true;
	tstream_stats.streams_open++;
	tstream_stats.streams_total++;
	if (tstream_stats.streams_open > tstream_stats.streams_peak)
		tstream_stats.streams_peak = tstream_stats.streams_open;
	if (s->connecting)
		stream_set_writing(s, true);
	else if (s->owner != NULL || s->provider)
		stream_set_reading(s, true);
	if (s->t->agent)
		tstream_grant(s); /* the gateway grants when its HEADERS have gone out */
}

/* Frees the socket's events and TLS and closes it: gracefully, or with a reset when hard
 * is set. */
static void stream_drop_socket(struct tstream *s, bool hard)
{
	loop_free_event(&s->rev);
	loop_free_event(&s->wev);
	loop_free_event(&s->tmo);
	s->reading = s->writing = false;
	if (s->ssl != NULL) {
		if (!hard)
			SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
		s->ssl = NULL;
		ERR_clear_error();
	}
	if (hard)
		sock_abort(s->fd);
	else
		close(s->fd);
	s->fd = -1;
}

/* Closes the socket (stream_drop_socket); the stream counts as open no more. */
static void stream_close_fd(struct tstream *s, bool hard)
{
	struct tstream_sink *t = s->t;

	if (s->fd == -1)
		return;
	stream_drop_socket(s, hard);
	if (s->counted) {
		s->counted = false;
		tstream_stats.streams_open--;
		t->done(t->arg, s->owner);
	}
}

void tstream_free(struct tstream *s)
{
	struct tstream_sink *t = s->t;
	size_t unsent = evbuffer_get_length(s->out);

	stream_close_fd(s, true);
	share_release(s);
	/* bytes received and never written still hold connection window: give it back */
	if (unsent > 0 && t->h2 != NULL && s->id > 0)
		nghttp2_session_consume_connection(t->h2, unsent);
	if (!s->h2_closed && s->id > 0 && t->h2 != NULL)
		nghttp2_session_set_stream_user_data(t->h2, s->id, NULL);
	if (s->dirty) {
		struct tstream **pp = &t->dirty;
		while (*pp != s)
			pp = &(*pp)->dirty_next;
		*pp = s->dirty_next;
	}
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		t->streams = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	t->nstreams--;
	if (t->nstreams == 0)
		t->emptied(t->arg); /* a drained tunnel closes */
	evbuffer_free(s->in);
	evbuffer_free(s->out);
	rate_pace_free(s->pace);
	if (s->req != NULL) {
		explicit_bzero(s->req, sizeof(*s->req));
		free(s->req);
	}
	free(s);
}

void tstream_kill(struct tstream *s)
{
	if (s->fd != -1)
		tstream_stats.resets++;
	tstream_free(s);
}

/* Ends the stream both ways with a reset: RST_STREAM to the peer, TCP RST to the socket. */
static void stream_reset(struct tstream *s, uint32_t code)
{
	struct tstream_sink *t = s->t;

	if (!s->h2_closed && s->id > 0 && t->h2 != NULL) {
		nghttp2_submit_rst_stream(t->h2, NGHTTP2_FLAG_NONE, s->id, code);
		t->flush(t->arg);
	}
	tstream_stats.resets++;
	tstream_free(s);
}

void tstream_refuse(struct tstream *s)
{
	stream_reset(s, NGHTTP2_REFUSED_STREAM);
}

ssize_t tstream_provide(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
			uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct tstream *s = nghttp2_session_get_stream_user_data(h2, id);
	size_t avail, n;

	(void)buf;
	(void)src;
	(void)user;
	if (s == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	avail = evbuffer_get_length(s->in);
	if (avail == 0 && s->rd_err) {
		/* what was read before the socket failed has gone out: now the reset */
		nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_CONNECT_ERROR);
		return NGHTTP2_ERR_DEFERRED;
	}
	if (avail == 0) {
		if (!s->rd_eof) {
			s->deferred = true;
			return NGHTTP2_ERR_DEFERRED;
		}
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		s->eof_sent = true;
		return 0;
	}
	n = avail < len ? avail : len;
	*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	if (s->rd_eof && n == avail) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		s->eof_sent = true;
	}
	return (ssize_t)n;
}

void tstream_preload(struct tstream *s, const uint8_t *p, size_t n)
{
	if (n == 0)
		return;
	if (evbuffer_add(s->in, p, n) == -1)
		xalloc_fail("evbuffer");
	s->in_held += n;
	tstream_stats.bytes_in += n;
	if (s->bytes != NULL)
		s->bytes[0] += n;
}

int tstream_send_data(struct tstream *s, const uint8_t *framehd, size_t length)
{
	struct tstream_sink *t;
	uint8_t *p;

	if (s == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	t = s->t;
	p = buf_tail(t->plain, 9 + length);
	memcpy(p, framehd, 9);
	if (evbuffer_remove(s->in, p + 9, length) != (int)length)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	buf_commit(t->plain, 9 + length);
	s->in_held -= length;
	share_give(length, 0);
	stream_resume_reading(s);
	return 0;
}

/* s has bytes for its socket: the tunnel writes them out at the end of its turn
 * (it takes them off t->dirty). */
static void stream_mark_dirty(struct tstream *s)
{
	struct tstream_sink *t = s->t;

	if (s->dirty)
		return;
	s->dirty = true;
	s->dirty_next = t->dirty;
	t->dirty = s;
}

void tstream_on_data(struct tstream *s, const uint8_t *data, size_t len)
{
	evbuffer_add(s->out, data, len);
	stream_mark_dirty(s);
}

void tstream_remote_eof(struct tstream *s)
{
	s->remote_eof = true;
	stream_mark_dirty(s);
}

void tstream_h2_closed(struct tstream *s, uint32_t code)
{
	s->h2_closed = true;
	if (code != NGHTTP2_NO_ERROR) {
		tstream_stats.resets++;
		tstream_free(s);
		return;
	}
	if (s->fd == -1 || evbuffer_get_length(s->out) == 0) {
		if (s->fd != -1 && !s->wr_shut)
			shutdown(s->fd, SHUT_WR);
		stream_close_fd(s, false);
		tstream_free(s);
	}
}

void tstream_on_response(struct tstream *s, const char *status)
{
	if (memcmp(status, "200", 3) != 0) {
		stream_reset(s, NGHTTP2_CANCEL);
		return;
	}
	/* the agent grants a stream's window before it answers: if none came, it keeps the
	 * stream waiting, and a visitor that hung up meanwhile is gone for good */
	s->peer_ready = true;
}

/* Resets the streams of t that carried nothing, either way, for their idle limit, and those
 * whose socket, neither read nor written, was hung up on (stream_check_hangup). */
void tstream_expire_idle(struct tstream_sink *t, double now)
{
	struct tstream *s = t->streams, *next;

	for (; s != NULL; s = next) {
		next = s->next;
		if (s->idle_limit > 0 && s->fd != -1 && now - s->last_io > s->idle_limit &&
		    (s->pace == NULL || !rate_pace_waiting(s->pace))) {
			log_debug("event=stream_idle_timeout stream=%d idle_s=%.1f", s->id,
				  now - s->last_io);
			tstream_stats.idle_timeouts++;
			stream_reset(s, NGHTTP2_CANCEL);
		} else {
			stream_check_hangup(s);
		}
	}
}

/* ---- socket side ---- */

static void stream_read(struct tstream *s)
{
	struct tstream_sink *t = s->t;
	size_t have = evbuffer_get_length(s->in), cap = stream_in_cap(s);
	size_t room = have < cap ? cap - have : 0;
	uint64_t spare = budget_room();
	bool short_of_budget = false;
	size_t want;
	ssize_t n;

	if (room == 0) {
		stream_set_reading(s, false);
		s->win_blocked = true;
		return;
	}
	if (spare == 0) {
		stream_set_reading(s, false);
		share_wait(s, STREAM_WANT_READ);
		return;
	}
	if (room >= spare) {
		room = (size_t)spare;
		short_of_budget = true;
	}
	/* Read sizes adapt: small for request/response traffic (a large reservation would be
	 * allocated and freed for every message), growing while reads come back full. */
	if (s->rhint == 0)
		s->rhint = STREAM_READ_MIN;
	want = room < s->rhint ? room : s->rhint;
	if (s->pace != NULL && (want = rate_pace_allow(s->pace, RATE_FROM_VISITOR, want)) == 0) {
		stream_set_reading(s, false); /* its timer reads again (stream_paced) */
		return;
	}
	n = stream_io_read(s, want);
	if (n > 0 && s->pace != NULL)
		rate_pace_spent(s->pace, RATE_FROM_VISITOR, (size_t)n);
	if (n > 0) {
		if ((size_t)n == want && s->rhint < STREAM_READ_CHUNK)
			s->rhint *= 2;
		else if ((size_t)n < want / 4 && s->rhint > STREAM_READ_MIN)
			s->rhint /= 2;
		if (!budget_take((uint64_t)n))
			log_fatal("event=bug what=stream_read_over_budget");
		s->in_held += (size_t)n;
		tstream_stats.bytes_in += (uint64_t)n;
		if (s->bytes != NULL)
			s->bytes[0] += (uint64_t)n;
		if (s->idle_limit > 0)
			s->last_io = clock_mono();
		if ((size_t)n >= room) {
			stream_set_reading(s, false);
			if (short_of_budget)
				share_wait(s, STREAM_WANT_READ);
			else
				s->win_blocked = true;
		} else {
			stream_kick_tls(s);
		}
	} else if (n == 0) {
		s->rd_eof = true;
		stream_set_reading(s, false);
	} else if (errno == EAGAIN || errno == EINTR) {
		return;
	} else {
		log_debug("event=stream_read_error stream=%d errno=%d", s->id, errno);
		if (evbuffer_get_length(s->in) == 0 || !s->provider) {
			stream_reset(s, NGHTTP2_CONNECT_ERROR);
			return;
		}
		/* deliver the bytes read before the error, then reset (tstream_provide) */
		s->rd_err = true;
		stream_set_reading(s, false);
	}
	if (s->provider && s->deferred) {
		s->deferred = false;
		nghttp2_session_resume_data(t->h2, s->id);
	}
	t->flush(t->arg);
}

void tstream_flush(struct tstream *s)
{
	struct tstream_sink *t = s->t;

	if (s->fd == -1 || s->connecting || s->handshaking)
		return;
	while (evbuffer_get_length(s->out) > 0) {
		size_t max = SIZE_MAX;
		ssize_t n;
		if (s->pace != NULL &&
		    (max = rate_pace_allow(s->pace, RATE_TO_VISITOR, evbuffer_get_length(s->out))) == 0) {
			stream_set_writing(s, false); /* its timer writes again (stream_paced) */
			s->blocked = true; /* the window does not grow past what the bucket lets out */
			return;
		}
		n = stream_io_write(s, max);
		if (n > 0 && s->pace != NULL)
			rate_pace_spent(s->pace, RATE_TO_VISITOR, (size_t)n);
		if (n > 0) {
			tstream_stats.bytes_out += (uint64_t)n;
			if (s->bytes != NULL)
				s->bytes[1] += (uint64_t)n;
			if (s->idle_limit > 0)
				s->last_io = clock_mono();
			/* written out: the window, both levels, goes back to the peer */
			if (t->h2 != NULL) {
				if (s->h2_closed)
					nghttp2_session_consume_connection(t->h2, (size_t)n);
				else
					nghttp2_session_consume(t->h2, s->id, (size_t)n);
				t->flush(t->arg);
			}
			s->drained += (uint32_t)n;
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			s->blocked = true;
			stream_set_writing(s, true);
			return;
		}
		log_debug("event=stream_write_error stream=%d errno=%d", s->id, errno);
		stream_reset(s, NGHTTP2_CANCEL);
		return;
	}
	stream_set_writing(s, false);
	stream_grow(s);
	if (s->remote_eof && !s->wr_shut) {
		s->wr_shut = true;
		if (s->ssl != NULL)
			SSL_shutdown(s->ssl);
		else
			shutdown(s->fd, SHUT_WR);
	}
	if (s->h2_closed) {
		stream_close_fd(s, false);
		tstream_free(s);
	}
}

/* ---- agent: connecting to the target ---- */

static void stream_established(struct tstream *s)
{
	struct tstream_sink *t = s->t;
	nghttp2_nv nv = { (uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE };
	nghttp2_data_provider prd = { .source.ptr = NULL, .read_callback = tstream_provide };

	loop_free_event(&s->tmo);
	if (s->req != NULL) {
		explicit_bzero(s->req, sizeof(*s->req));
		free(s->req);
		s->req = NULL;
	}
	s->failed = NULL; /* from here on bytes go to the target: no other may take over */
	if (s->reached != NULL)
		s->reached(s->failed_arg, s->failed_key);
	if (nghttp2_submit_response(t->h2, s->id, &nv, 1, &prd) != 0) {
		stream_reset(s, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	s->provider = true;
	stream_set_writing(s, false);
	stream_set_reading(s, true);
	stream_mark_dirty(s);
	t->flush(t->arg);
}

/* The connect or the handshake failed before a byte of the visitor's went to the target
 * (the caller logged why): whoever chose it is told, and may name another target for a
 * first connect (the stream keeps its window and the bytes the peer sent; the PROXY header
 * is written again on the new socket; only the socket changes); else, and for a failure
 * that is the process's own (local), the stream is reset. */
static void stream_connect_failed(struct tstream *s, bool local)
{
	struct tstream_target next;

	memset(&next, 0, sizeof(next));
	if (local || s->failed == NULL ||
	    !s->failed(s->failed_arg, s->failed_key, s->redialled ? NULL : &next)) {
		stream_reset(s, NGHTTP2_CONNECT_ERROR);
		return;
	}
	if (s->fd != -1)
		stream_drop_socket(s, true);
	s->connecting = s->handshaking = false;
	s->redialled = true;
	tstream_connect(s, &next);
}

static void stream_handshake(struct tstream *s)
{
	char detail[160];
	int rc, err;

	ERR_clear_error();
	rc = SSL_do_handshake(s->ssl);
	if (rc == 1) {
		s->handshaking = false;
		stream_established(s);
		return;
	}
	err = SSL_get_error(s->ssl, rc);
	if (err == SSL_ERROR_WANT_READ) {
		stream_set_writing(s, false);
		stream_set_reading(s, true);
		return;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		stream_set_writing(s, true);
		return;
	}
	log_limited(&stream_log_rate, LOG_WARN, "event=target_tls_failed stream=%d reason=%s detail=%s",
		    s->id, tls_failure_reason(detail, sizeof(detail)), detail);
	stream_connect_failed(s, false);
}

static void stream_connected(struct tstream *s)
{
	int err = sock_error(s->fd);

	if (err != 0) {
		log_limited(&stream_log_rate, LOG_WARN,
			    "event=target_connect_failed stream=%d error=\"%s\"", s->id, strerror(err));
		stream_connect_failed(s, false);
		return;
	}
	s->connecting = false;
	if (s->req != NULL && s->req->hdrlen > 0 &&
	    write(s->fd, s->req->hdr, s->req->hdrlen) != (ssize_t)s->req->hdrlen) {
		stream_reset(s, NGHTTP2_CONNECT_ERROR);
		return;
	}
	if (s->ssl != NULL) {
		s->handshaking = true;
		stream_handshake(s);
	} else {
		stream_established(s);
	}
}

/* connect_timeout passed before the stream reached its target: in the connect or in the
 * TLS handshake (the timer is freed once established). */
static void stream_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct tstream *s = arg;
	struct tstream_sink *t = s->t;

	(void)fd;
	(void)what;
	t->busy(t->arg);
	if (s->handshaking)
		log_limited(&stream_log_rate, LOG_WARN,
			    "event=target_tls_failed stream=%d reason=handshake_timeout", s->id);
	else
		log_limited(&stream_log_rate, LOG_WARN,
			    "event=target_connect_failed stream=%d error=\"timeout\"", s->id);
	stream_connect_failed(s, false);
	t->unbusy(t->arg);
}

void tstream_connect(struct tstream *s, const struct tstream_target *tg)
{
	struct timeval tv = clock_tv(tg->connect_timeout);
	bool pending;
	int fd, err;

	s->failed = tg->failed;
	s->reached = tg->reached;
	s->failed_arg = tg->failed_arg;
	s->failed_key = tg->failed_key;
	fd = tg->sa != NULL ? sock_connect(tg->sa, tg->salen) : sock_connect_unix(tg->unix_path);
	err = errno;
	pending = err == EINPROGRESS;
	if (fd == -1) {
		log_limited(&stream_log_rate, LOG_WARN,
			    "event=target_connect_failed stream=%d error=\"%s\"%s", s->id,
			    strerror(err), sock_local_error(err) ? " local=yes" : "");
		stream_connect_failed(s, sock_local_error(err));
		return;
	}
	s->fd = fd;
	s->connecting = true;
	if (tg->tls != NULL) {
		s->ssl = SSL_new(tg->tls);
		if (s->ssl == NULL || SSL_set_fd(s->ssl, fd) != 1)
			xalloc_fail("SSL");
		SSL_set_connect_state(s->ssl);
		if (tg->tls_name != NULL) {
			SSL_set_tlsext_host_name(s->ssl, tg->tls_name);
			SSL_set1_host(s->ssl, tg->tls_name);
		}
	}
	s->tmo = evtimer_new(s->t->base, stream_on_timeout, s);
	if (s->tmo == NULL)
		xalloc_fail("event");
	evtimer_add(s->tmo, &tv);
	s->connecting = pending;
	if (!s->counted) {
		tstream_start(s); /* waits for writability while the connect is pending */
	} else { /* a second target's socket */
		stream_watch(s);
		if (pending)
			stream_set_writing(s, true);
	}
	if (!pending) {
		s->connecting = true;
		stream_connected(s);
	}
}

/* ---- events ---- */

static void stream_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct tstream *s = arg;
	struct tstream_sink *t = s->t;

	(void)fd;
	(void)what;
	t->busy(t->arg);
	if (s->handshaking)
		stream_handshake(s);
	else
		stream_read(s);
	t->unbusy(t->arg);
}

static void stream_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct tstream *s = arg;
	struct tstream_sink *t = s->t;

	(void)fd;
	(void)what;
	t->busy(t->arg);
	if (s->connecting)
		stream_connected(s);
	else if (s->handshaking)
		stream_handshake(s);
	else
		tstream_flush(s);
	t->unbusy(t->arg);
}
