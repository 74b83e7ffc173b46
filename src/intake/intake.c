#include "intake/intake.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/admin.h"
#include "core/clock.h"
#include "core/lifecycle.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/page.h"
#include "core/proxy.h"
#include "core/sock.h"
#include "core/tls.h"
#include "core/xalloc.h"
#include "hl7/ack.h"
#include "intake/commit.h"
#include "intake/deliver.h"
#include "hl7/hl7.h"
#include "hl7/mllp.h"
#include "intake/store.h"

#define INTAKE_READ_CHUNK 65536        /* bytes fed to the framer per step */
#define INTAKE_READ_MAX 16384          /* bytes one socket read may add to a connection's input;
					* reading is on only while this much fits the budget */
#define INTAKE_OUT_MAX (1024 * 1024)   /* unread ACK bytes before we stop reading */
#define INTAKE_KEY_MAX 63              /* MSH-3, MSH-4, MSH-10 bytes (the dedupe key) */
#define INTAKE_BATCH_MAX 4096          /* messages in one batch frame; more: AR for the batch */
#define INTAKE_INFLIGHT_MSGS 4096      /* messages awaiting their answer per connection */
#define INTAKE_INFLIGHT_BYTES (4u << 20) /* frame bytes awaiting their answer per connection,
					   * at least one max_message */
#define INTAKE_FRAMER_KEPT 65536      /* a framer buffer larger than this is freed as soon as
				       * its frame is copied into its job */
#define INTAKE_OVERDRAFT_SLACK 65536  /* past memory_budget + max_message for the one
				       * connection read past the budget: its unframed input
				       * and the records of its frame */
#define INTAKE_CLOSE_GRACE 5.0         /* seconds a closing connection gets to take its ACKs */
#define INTAKE_STALL_LOOK 1.0          /* seconds between looks for stalled partial frames while
					* reading is stopped at memory_budget */
#define INTAKE_ERRORS_KEPT 20         /* last errors on the status page */

/* ACK latency histogram bounds, seconds. */
static const double intake_buckets[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
					 0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
					 1,      2.5,     5 };
#define INTAKE_NBUCKETS (sizeof(intake_buckets) / sizeof(*intake_buckets))

/* Why a message or a connection was refused; labels of netwall_intake_rejected_total. */
enum intake_reason {
	R_PARSE = 0, /* not a parsable HL7 message */
	R_HEADER,    /* MSH-9/10/11/12 missing or unsupported */
	R_ROUTE,     /* routing says reject */
	R_TOO_BIG,   /* frame over max_message */
	R_ACK_INPUT, /* an acknowledgement sent to us */
	R_STORE,     /* the store failed: AE */
	R_NREASONS,
	R_REUSED = R_NREASONS, /* status page only: a control ID reused for another message */
};
static const char *const intake_reason_names[] = { "parse",   "header",    "route",
						   "too_big", "ack_input", "store",
						   "reused_control_id" };

struct intake_stats {
	uint64_t frames, received, accepted, ignored, rejected_stored, duplicates;
	uint64_t reused; /* stored (or, with reject, refused) with a reused control ID */
	uint64_t reasons[R_NREASONS];
	uint64_t conns_total, conns_refused, junk_bytes;
	uint64_t memory_waits; /* times reading stopped at memory_budget */
	uint64_t stalled;      /* partial frames closed at the budget, their senders silent */
	uint64_t hist[INTAKE_NBUCKETS + 1];
	double hist_sum;
	uint64_t hist_count;
};

/* An error for the status page: control IDs, peers and reasons, never message content. */
struct intake_err {
	double at; /* wall clock; 0: empty slot */
	const char *reason;
	char ctrl[LOG_VALUE_SIZE(INTAKE_KEY_MAX)]; /* made log-safe; "" when unknown */
	char peer[ADDR_STRLEN];
	char detail[96];
};


struct conn;

/* One message of a frame, and its store request. */
struct jmsg {
	struct commit_req req;
	struct job *job;
	bool stored;     /* goes to the store (else the ack is final) */
	char peer[ADDR_STRLEN]; /* for the store: the connection may be gone by then */
	bool want;       /* an ACK is to be sent for it */
	bool want_accept, want_error; /* MSH-15 asks for an accept / an error answer (a
				       * duplicate is answered as its stored ACK's MSA-1 says) */
	bool enhanced;   /* the sender asked for enhanced mode */
	struct buf ack;  /* the ACK built for it */
	struct buf reuse_ack; /* on_reused_control_id = reject: the AR 205 sent instead */
	bool want_reuse;      /* an ACK is to be sent for the AR 205 */
	size_t raw_off;  /* the message within the job's frame */
	size_t raw_len;
	char app[INTAKE_KEY_MAX + 1], fac[INTAKE_KEY_MAX + 1], ctrl[INTAKE_KEY_MAX + 1];
	char type[8], version[16];
};

/* One frame: answered when all its messages are. */
struct job {
	struct conn *c; /* NULL once the connection is gone */
	struct job *next;
	uint8_t *frame;
	size_t len;
	struct intake *in;
	bool batch;
	unsigned n, pending;
	size_t held; /* bytes counted against memory_budget: frame, ACKs, message records */
	double t0;
	struct jmsg *msgs;
};

struct conn {
	struct intake *in;
	struct conn *prev, *next;
	struct bufferevent *bev; /* NULL while pre reads a PROXY header before TLS */
	struct event *pre;
	int fd;
	struct event *timer;
	struct mllp f;
	char peer[ADDR_STRLEN];
	struct sockaddr_storage src;
	struct listener_src *sock_src;  /* its count in in->accepted (the socket's address) */
	struct listener_src *proxy_src; /* behind a proxy: in->sources (the header's address) */
	bool proxy_done;
	bool tls_ready; /* the handshake is done (at once for plain TCP) */
	bool eof;
	struct job *head, *tail; /* frames in arrival order, answered in that order */
	unsigned jobs;
	size_t inflight_msgs, inflight_bytes;
	size_t jobs_held; /* the held bytes of the jobs in head..tail */
	double frame_start;  /* when the frame in progress began */
	size_t stall_len;    /* the partial frame's length at the last look that found its
			      * sender silent (0: not found so), see intake_stall_cb */
	double last_frame;   /* when the last frame completed (or the connection came) */
	double started;      /* accept time: TLS handshake and PROXY header must finish in time */
	size_t held;         /* bytes counted against memory_budget (conn_account) */
	bool starved;        /* not read: its next bytes do not fit memory_budget */
	struct event *closed_ev; /* while not read for the budget: the peer's close */
	double out_progress; /* when the peer last took ACK bytes, or they began waiting */
	bool closing;        /* answering what it has, then closed */
	bool shut;           /* FIN sent after the last answer; waiting for the peer's */
	const char *close_reason;
};

struct intake {
	struct event_base *base;
	const char *path;
	struct intake_config *cfg;
	struct lifecycle *life;
	struct admin *admin;
	struct minutes per_minute;                    /* messages received, for the page */
	struct intake_err errs[INTAKE_ERRORS_KEPT]; /* a ring, newest at errs_next - 1 */
	size_t errs_next;
	SSL_CTX *tls;
	struct listener **ls;
	/* Admission (core/listener): the sockets accepted, by max_connections and, without a
	 * proxy, allow and max_per_source; behind a proxy the addresses its headers name, by
	 * allow and max_per_source. */
	struct listener_set *accepted, *sources;
	size_t nls;
	struct commit *commit;
	struct deliver *deliver;
	const char *store_kind; /* "sqlite" or "postgresql" */
	struct conn *conns;
	uint64_t nconns;
	uint64_t peak;
	bool draining;
	int status;
	char ack_prefix[12]; /* 11 characters */
	uint64_t ack_seq;
	char owner[128];
	struct intake_stats st;
	struct log_rate rate;
	struct evbuffer *scratch; /* ACKs on their way to a socket (loop thread) */
	/* memory_budget: bytes peers made the intake hold, over all connections (partial
	 * frames, unfed input, messages awaiting answers, unread ACKs) and the jobs of closed
	 * connections still being stored. At the budget nothing is read until bytes go. */
	size_t held;
	size_t orphans_held;
	bool paused;              /* reading stopped on every connection for the budget */
	size_t nstarved;          /* connections whose next bytes do not fit the budget */
	struct event *resume_ev;  /* run from the loop once bytes were released */
	struct event *stall_ev;   /* while paused: looks for stalled partial frames */
	/* The one connection that may read past the budget, by at most its max_message plus
	 * INTAKE_OVERDRAFT_SLACK, until its frame is whole: at the budget, the oldest partial
	 * frame. Without it, connections that all hold a partial frame none of whose next
	 * bytes fit would wait for one another until frame_timeout. */
	struct conn *overdraft;
	bool pick; /* the resume event is to choose the overdraft connection */
};

static void conn_close(struct conn *c, const char *reason);
static void conn_pump(struct conn *c);
static bool conn_ready(const struct conn *c);

/* ---- the memory budget ---- */

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

static void intake_released(struct intake *in)
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
static void intake_want_overdraft(struct intake *in)
{
	if (in->overdraft != NULL || in->pick || in->resume_ev == NULL ||
	    !(in->paused || in->nstarved > 0))
		return;
	in->pick = true;
	event_active(in->resume_ev, EV_TIMEOUT, 0);
}

/* c no longer reads past the budget (its frame is whole, or it closes): another may. */
static void intake_drop_overdraft(struct conn *c)
{
	if (c->in->overdraft != c)
		return;
	c->in->overdraft = NULL;
	intake_want_overdraft(c->in);
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

static void conn_account(struct conn *c)
{
	struct intake *in = c->in;
	size_t now = conn_held(c), was = c->held;

	in->held = in->held - was + now;
	c->held = now;
	if (now < was)
		intake_released(in);
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

static bool intake_fits(const struct intake *in, const struct conn *c, size_t k)
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

static void conn_close(struct conn *c, const char *reason);

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
	conn_close(c, "closed_while_waiting");
}

/* Watches for the peer's close while c is not read for the budget (once: the event is
 * level-triggered, and reading again sees the close anyway). */
static void conn_watch_close(struct conn *c)
{
	struct intake *in = c->in;

	if (c->bev == NULL || c->closed_ev != NULL ||
	    !(event_base_get_features(in->base) & EV_FEATURE_EARLY_CLOSE))
		return;
	c->closed_ev = event_new(in->base, bufferevent_getfd(c->bev), EV_CLOSED, conn_closed_cb, c);
	if (c->closed_ev == NULL || event_add(c->closed_ev, NULL) == -1)
		abort();
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
static void intake_stall_cb(evutil_socket_t fd, short what, void *arg)
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
			conn_close(c, "stalled_at_budget");
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
			conn_watch_close(c);
		}
	}
	intake_want_overdraft(in);
}

/* The resume event: reading starts again where the budget allows (loop callback). */
static void intake_resume_cb(evutil_socket_t fd, short what, void *arg)
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
			conn_pump(c);
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
			conn_pump(c);
	}
}

/* ---- ACKs and log text ---- */

/* Writes v in base 36 as exactly width characters (v modulo 36^width, zero-padded). */
static void base36(char *out, size_t width, uint64_t v)
{
	for (size_t i = width; i > 0; i--) {
		out[i - 1] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[v % 36];
		v /= 36;
	}
	out[width] = '\0';
}

/* A new ACK control ID, unique across processes and restarts: 6 characters of the start
 * second, 5 of the process ID, then a counter of at most 9; 20 characters at most, the
 * oldest versions' limit. */
static void intake_ack_id(struct intake *in, char out[21])
{
	char seq[10];
	uint64_t v = ++in->ack_seq;
	size_t w = 1;

	for (uint64_t x = v / 36; x != 0 && w < 9; x /= 36)
		w++;
	base36(seq, w, v);
	memcpy(out, in->ack_prefix, 11);
	memcpy(out + 11, seq, w + 1);
}

/* Keeps an error for the status page; detail is our own text (parser and store errors
 * carry no message content, as for the log). */
static void intake_note(struct intake *in, enum intake_reason r, const char *ctrl,
			const char *peer, const char *detail)
{
	struct intake_err *e = &in->errs[in->errs_next++ % INTAKE_ERRORS_KEPT];

	e->at = clock_wall();
	e->reason = intake_reason_names[r];
	log_value(e->ctrl, sizeof(e->ctrl), ctrl != NULL ? ctrl : "");
	snprintf(e->peer, sizeof(e->peer), "%s", peer);
	snprintf(e->detail, sizeof(e->detail), "%s", detail);
}

static void intake_error(struct hl7_error *e, enum hl7_code code, unsigned field,
			 const char *text)
{
	memset(e, 0, sizeof(*e));
	e->code = code;
	if (field != 0) {
		memcpy(e->segment, "MSH", 4);
		e->seq = 1;
		e->field = field;
	}
	snprintf(e->text, sizeof(e->text), "%s", text);
}

/* ---- validation and routing ---- */

static bool intake_alnum3(struct hl7_str v)
{
	if (v.len != 3)
		return false;
	for (size_t i = 0; i < 3; i++)
		if (!((v.p[i] >= 'A' && v.p[i] <= 'Z') || (v.p[i] >= '0' && v.p[i] <= '9')))
			return false;
	return true;
}

/* Copies a dedupe key part (raw, still escaped). Refuses control characters (a NUL would
 * cut the key short and make two messages one) and more than INTAKE_KEY_MAX bytes. */
static bool intake_copy_key(struct hl7_str v, char *out)
{
	if (v.len > INTAKE_KEY_MAX)
		return false;
	for (size_t i = 0; i < v.len; i++)
		if ((unsigned char)v.p[i] < 0x20 || v.p[i] == 0x7f)
			return false;
	if (v.len > 0)
		memcpy(out, v.p, v.len);
	out[v.len] = '\0';
	return true;
}

/* MSH-9 type, MSH-10 control ID, MSH-11 processing ID and MSH-12 version present and sane.
 * Fills the key and type fields of j. Returns 0, or -1 with e filled. */
static int intake_validate(const struct intake_config *cfg, const struct hl7_msg *m,
			   struct jmsg *j, char trigger[4], struct hl7_error *e)
{
	struct hl7_str v = { 0 }, t = { 0 };

	if (hl7_get(m, "MSH-9.1", &v) != 1 || !intake_alnum3(v)) {
		intake_error(e, v.len == 0 ? HL7_REQUIRED_FIELD : HL7_DATA_TYPE, 9,
			     "MSH-9 message type missing or malformed");
		return -1;
	}
	memcpy(j->type, v.p, 3);
	j->type[3] = '\0';
	trigger[0] = '\0';
	if (hl7_get(m, "MSH-9.2", &t) == 1 && t.len > 0) {
		if (!intake_alnum3(t)) {
			intake_error(e, HL7_DATA_TYPE, 9, "MSH-9 trigger event malformed");
			return -1;
		}
		memcpy(trigger, t.p, 3);
		trigger[3] = '\0';
		snprintf(j->type + 3, sizeof(j->type) - 3, "^%s", trigger);
	}
	if (hl7_get(m, "MSH-10", &v) != 1 || v.len == 0 || hl7_is_null(v)) {
		intake_error(e, HL7_REQUIRED_FIELD, 10, "MSH-10 control ID missing");
		return -1;
	}
	if (!intake_copy_key(v, j->ctrl)) {
		intake_error(e, HL7_DATA_TYPE, 10,
			     "MSH-10 control ID too long or holds control characters");
		return -1;
	}
	if (hl7_get(m, "MSH-11.1", &v) != 1 || v.len == 0) {
		intake_error(e, HL7_REQUIRED_FIELD, 11, "MSH-11 processing ID missing");
		return -1;
	}
	if (v.len != 1 || v.p[0] == '\0' || strchr(cfg->processing_ids, v.p[0]) == NULL) {
		intake_error(e, HL7_UNSUPPORTED_PROCESSING_ID, 11,
			     "MSH-11 processing ID not accepted");
		return -1;
	}
	if (hl7_get(m, "MSH-12.1", &v) != 1 || v.len == 0) {
		intake_error(e, HL7_REQUIRED_FIELD, 12, "MSH-12 version ID missing");
		return -1;
	}
	if (v.len < 3 || v.len >= sizeof(j->version) || v.p[0] != '2' || v.p[1] != '.' ||
	    v.p[2] < '0' || v.p[2] > '9') {
		intake_error(e, HL7_UNSUPPORTED_VERSION, 12, "MSH-12 version is not 2.x");
		return -1;
	}
	memcpy(j->version, v.p, v.len);
	j->version[v.len] = '\0';
	for (size_t i = 0; i < v.len; i++)
		if ((unsigned char)j->version[i] < 0x20)
			j->version[i] = '_';
	v.len = 0;
	hl7_get(m, "MSH-3", &v);
	if (!intake_copy_key(v, j->app)) {
		intake_error(e, HL7_DATA_TYPE, 3,
			     "MSH-3 longer than 63 bytes or holds control characters");
		return -1;
	}
	v.len = 0;
	hl7_get(m, "MSH-4", &v);
	if (!intake_copy_key(v, j->fac)) {
		intake_error(e, HL7_DATA_TYPE, 4,
			     "MSH-4 longer than 63 bytes or holds control characters");
		return -1;
	}
	return 0;
}

/* ---- the pipeline ---- */

static void intake_observe(struct intake *in, double seconds)
{
	size_t i = 0;

	while (i < INTAKE_NBUCKETS && seconds > intake_buckets[i])
		i++;
	in->st.hist[i]++;
	in->st.hist_sum += seconds;
	in->st.hist_count++;
}

static void job_free(struct job *jb)
{
	for (unsigned i = 0; i < jb->n; i++) {
		buf_free(&jb->msgs[i].ack);
		buf_free(&jb->msgs[i].reuse_ack);
		buf_free(&jb->msgs[i].req.msg.orig_ack);
	}
	free(jb->msgs);
	if (jb->frame != NULL)
		explicit_bzero(jb->frame, jb->len);
	free(jb->frame);
	free(jb);
}

/* The ACK bytes a message answers with: the original's for a duplicate, the AR 205 for a
 * reused control ID refused (on_reused_control_id = reject). */
static const struct buf *jmsg_ack(const struct jmsg *j)
{
	if (j->stored && j->req.rc == 0 && j->req.msg.duplicate)
		return &j->req.msg.orig_ack;
	if (j->stored && j->req.rc == 0 && j->req.msg.reused && j->req.msg.reuse_ack != NULL)
		return &j->reuse_ack;
	return &j->ack;
}

static void conn_maybe_close(struct conn *c);

/* Writes the answers of the finished frames at the head of the queue, in order: one MLLP
 * frame per frame received (a batch gets BHS, its ACKs, BTS), none when nothing is to be
 * sent (an ACK received, MSH-15 NE). */
static void conn_answer(struct conn *c)
{
	struct intake *in = c->in;
	struct evbuffer *queued = bufferevent_get_output(c->bev);
	/* Plain TCP with nothing queued: ACKs are assembled aside and written at once, not
	 * through the bufferevent, whose write event would cost two epoll_ctl calls and a
	 * loop turn per ACK. What the socket does not take is queued on the bufferevent. */
	bool direct = in->tls == NULL && evbuffer_get_length(queued) == 0;
	struct evbuffer *out = direct ? in->scratch : queued;
	double now = clock_mono();

	while (c->head != NULL && c->head->pending == 0) {
		struct job *jb = c->head;
		unsigned nacks = 0;

		c->head = jb->next;
		if (c->head == NULL)
			c->tail = NULL;
		c->jobs--;
		c->inflight_msgs -= jb->n;
		c->inflight_bytes -= jb->len;
		c->jobs_held -= jb->held;
		for (unsigned i = 0; i < jb->n; i++)
			if (jb->msgs[i].want && jmsg_ack(&jb->msgs[i])->len > 0)
				nacks++;
		if (nacks > 0 || jb->batch) {
			static const uint8_t vt = MLLP_VT, end[2] = { MLLP_FS, MLLP_CR };
			static const char bhs[] = "BHS|^~\\&\r";
			evbuffer_add(out, &vt, 1);
			if (jb->batch)
				evbuffer_add(out, bhs, sizeof(bhs) - 1);
			for (unsigned i = 0; i < jb->n; i++) {
				const struct buf *a = jmsg_ack(&jb->msgs[i]);
				if (jb->msgs[i].want && a->len > 0)
					evbuffer_add(out, buf_head(a), a->len);
			}
			if (jb->batch)
				evbuffer_add_printf(out, "BTS|%u\r", nacks);
			evbuffer_add(out, end, 2);
			intake_observe(in, now - jb->t0);
		}
		job_free(jb);
	}
	if (direct && evbuffer_get_length(out) > 0) {
		evbuffer_write(out, bufferevent_getfd(c->bev));
		if (evbuffer_get_length(out) > 0) /* the rest, or all of it after an error */
			evbuffer_add_buffer(queued, out);
	}
	conn_account(c);
}

/* A message's store request finished (loop thread). */
static void jmsg_done(struct commit_req *r, void *arg)
{
	struct jmsg *j = arg;
	struct job *jb = j->job;
	struct intake *in;
	struct conn *c = jb->c;
	char ctrl[LOG_VALUE_SIZE(INTAKE_KEY_MAX)], type[LOG_VALUE_SIZE(sizeof(j->type))];

	(void)r;
	jb->pending--;
	if (c == NULL) {
		if (jb->pending == 0) {
			in = jb->in;
			in->held -= jb->held;
			in->orphans_held -= jb->held;
			job_free(jb);
			intake_released(in);
		}
		return;
	}
	in = c->in;
	if (j->req.rc == -1) {
		struct hl7_msg m;
		struct hl7_error e;
		char id[21];

		in->st.reasons[R_STORE]++;
		intake_note(in, R_STORE, j->ctrl, c->peer, "not stored: answered AE");
		log_limited(&in->rate, LOG_WARN,
			    "event=store_failed peer=%s control_id=%s type=%s error=\"%s\"",
			    c->peer, log_value(ctrl, sizeof(ctrl), j->ctrl),
			    log_value(type, sizeof(type), j->type), j->req.err);
		/* AE (or CE): nothing was stored, the sender is to retry */
		buf_free(&j->ack);
		hl7_msg_init(&m);
		if (hl7_parse(&m, (const char *)jb->frame + j->raw_off, j->raw_len, &e) == 0) {
			intake_error(&e, HL7_INTERNAL, 0, "message not stored, retry later");
			intake_ack_id(in, id);
			ack_build(&j->ack, &m, ACK_ERROR, &e, id, time(NULL));
			j->want = ack_wanted(&m, ACK_ERROR);
		}
		hl7_msg_free(&m);
	} else if (j->req.msg.duplicate) {
		char code[3], actrl[2];

		/* the stored answer decides, not this copy's parse: under MSH-15 = ER a
		 * retransmission of a refused message gets its error again, never silence */
		if (ack_parse((const char *)buf_head(&j->req.msg.orig_ack), j->req.msg.orig_ack.len,
			      code, actrl, sizeof(actrl)) == 0)
			j->want = code[1] == 'A' ? j->want_accept : j->want_error;
		in->st.duplicates++;
		log_limited(&in->rate, LOG_INFO, "event=duplicate peer=%s control_id=%s type=%s id=%lld",
			    c->peer, log_value(ctrl, sizeof(ctrl), j->ctrl),
			    log_value(type, sizeof(type), j->type), (long long)j->req.msg.id);
	} else {
		bool refused = j->req.msg.reused && j->req.msg.reuse_ack != NULL;

		if (j->req.msg.reused) {
			/* the key was stored for another message: this one is kept too (or
			 * refused AR 205), never taken for a duplicate. The sender and control
			 * ID only: the two messages' content is never logged */
			char sender[2 * INTAKE_KEY_MAX + 2];
			char sender_v[LOG_VALUE_SIZE(sizeof(sender))];

			in->st.reused++;
			snprintf(sender, sizeof(sender), "%s/%s", j->app, j->fac);
			intake_note(in, R_REUSED, j->ctrl, c->peer,
				    refused ? "control ID reused: answered AR 205"
					    : "control ID reused: stored as a new message");
			log_limited(&in->rate, LOG_WARN,
				    "event=reused_control_id peer=%s control_id=%s sender=%s id=%lld "
				    "action=%s",
				    c->peer, log_value(ctrl, sizeof(ctrl), j->ctrl),
				    log_value(sender_v, sizeof(sender_v), sender),
				    (long long)j->req.msg.id, refused ? "rejected" : "stored");
			if (refused)
				j->want = j->want_reuse;
		}
		if (refused)
			in->st.rejected_stored++;
		else if (j->req.msg.state == STORE_RECEIVED)
			in->st.accepted++;
		else if (j->req.msg.state == STORE_IGNORED)
			in->st.ignored++;
		else
			in->st.rejected_stored++;
		log_debug("event=stored peer=%s control_id=%s type=%s id=%lld state=%s", c->peer,
			  log_value(ctrl, sizeof(ctrl), j->ctrl), log_value(type, sizeof(type), j->type),
			  (long long)j->req.msg.id,
			  store_state_name(refused ? STORE_REJECTED : j->req.msg.state));
	}
	if (jb->pending == 0 && jb == c->head) {
		conn_answer(c);
		if (c->closing)
			conn_maybe_close(c);
		else
			conn_pump(c);
	}
}

/* Handles one message of a frame: answers it at once (a NAK, or nothing for an ACK) or
 * builds its ACK and queues it for the store. */
static void intake_message(struct intake *in, struct conn *c, struct job *jb, struct jmsg *j,
			   struct hl7_msg *m)
{
	const char *data = (const char *)jb->frame + j->raw_off;
	struct hl7_error e = { 0 };
	char trigger[4], base[4], id[21];
	enum intake_action act;
	enum ack_code code = ACK_ACCEPT;

	in->st.received++;
	minutes_add(&in->per_minute, clock_wall(), 1);
	intake_ack_id(in, id);
	if (hl7_parse(m, data, j->raw_len, &e) == -1) {
		in->st.reasons[R_PARSE]++;
		intake_note(in, R_PARSE, NULL, c->peer, e.text);
		log_limited(&in->rate, LOG_WARN,
			    "event=rejected reason=parse peer=%s size=%zu code=%d error=\"%s\"",
			    c->peer, j->raw_len, (int)e.code, e.text);
		ack_build_unparsed(&j->ack, &e, id, time(NULL));
		j->want = true;
		return;
	}
	if (hl7_is_ack(m)) {
		in->st.reasons[R_ACK_INPUT]++;
		log_limited(&in->rate, LOG_WARN, "event=ignored reason=ack_input peer=%s size=%zu",
			    c->peer, j->raw_len);
		return;
	}
	j->enhanced = ack_enhanced(m);
	if (intake_validate(in->cfg, m, j, trigger, &e) == -1) {
		in->st.reasons[R_HEADER]++;
		intake_note(in, R_HEADER, j->ctrl, c->peer, e.text);
		log_limited(&in->rate, LOG_WARN,
			    "event=rejected reason=header peer=%s size=%zu code=%d error=\"%s\"",
			    c->peer, j->raw_len, (int)e.code, e.text);
		ack_build(&j->ack, m, ACK_REJECT, &e, id, time(NULL));
		j->want = ack_wanted(m, ACK_REJECT);
		return;
	}
	memcpy(base, j->type, 3);
	base[3] = '\0';
	act = intake_config_route(in->cfg, base, trigger);
	if (act == INTAKE_REJECT) {
		in->st.reasons[R_ROUTE]++;
		intake_note(in, R_ROUTE, j->ctrl, c->peer, j->type);
		intake_error(&e, HL7_UNSUPPORTED_TYPE, 9, "message type not accepted here");
		code = ACK_REJECT;
	}
	ack_build(&j->ack, m, code, code == ACK_ACCEPT ? NULL : &e, id, time(NULL));
	j->want = ack_wanted(m, code);
	j->want_accept = ack_wanted(m, ACK_ACCEPT);
	j->want_error = ack_wanted(m, ACK_REJECT);
	if (in->cfg->reuse_reject && code == ACK_ACCEPT) {
		/* built now, while the message is parsed; sent only if the store finds the key
		 * stored for another message (the same ACK control ID: one of them goes out) */
		intake_error(&e, HL7_DUPLICATE_KEY, 10,
			     "MSH-10 control ID already used for a different message");
		ack_build(&j->reuse_ack, m, ACK_REJECT, &e, id, time(NULL));
		j->want_reuse = ack_wanted(m, ACK_REJECT);
	}
	j->stored = true;
	memcpy(j->peer, c->peer, sizeof(j->peer));
	j->req.msg = (struct store_msg){
		.app = j->app,
		.facility = j->fac,
		.control_id = j->ctrl,
		.type = j->type,
		.version = j->version,
		.peer = j->peer,
		.state = act == INTAKE_ACCEPT ? STORE_RECEIVED
			 : act == INTAKE_IGNORE ? STORE_IGNORED
						: STORE_REJECTED,
		.raw = data,
		.raw_len = j->raw_len,
		.ack = buf_head(&j->ack),
		.ack_len = j->ack.len,
		.reuse_ack = j->reuse_ack.len > 0 ? buf_head(&j->reuse_ack) : NULL,
		.reuse_ack_len = j->reuse_ack.len,
		.received_ms = clock_wall_ms(),
	};
	/* the digest here, in the loop thread (linear, like the parse just done), not in
	 * the committer, whose time every sender waits for */
	store_digest(data, j->raw_len, j->req.msg.digest);
	j->req.msg.digest_set = true;
	j->req.done = jmsg_done;
	j->req.arg = j;
	j->req.source = c;
	jb->pending++;
}

/* Answers a frame that cannot be taken as it is (over the size limit, a batch over
 * INTAKE_BATCH_MAX) with one AR built from its header if that parses, never for an ACK. */
static void conn_refuse_frame(struct conn *c, struct job *jb, struct hl7_msg *m,
			      const char *why)
{
	struct intake *in = c->in;
	const char *p = (const char *)jb->frame;
	struct hl7_str first = { p, jb->len };
	struct hl7_error e;
	size_t pos = 0;
	char id[21];

	jb->batch = false;
	jb->n = 1;
	jb->msgs = xcalloc(1, sizeof(*jb->msgs));
	in->st.received++;
	minutes_add(&in->per_minute, clock_wall(), 1);
	intake_ack_id(in, id);
	if (hl7_is_batch(p, jb->len))
		hl7_batch_next(p, jb->len, &pos, &first);
	if (hl7_parse(m, first.p, first.len, &e) == 0) {
		if (hl7_is_ack(m))
			return;
		intake_error(&e, HL7_INTERNAL, 0, why);
		ack_build(&jb->msgs[0].ack, m, ACK_REJECT, &e, id, time(NULL));
		jb->msgs[0].want = ack_wanted(m, ACK_REJECT);
	} else {
		intake_error(&e, HL7_INTERNAL, 0, why);
		ack_build_unparsed(&jb->msgs[0].ack, &e, id, time(NULL));
		jb->msgs[0].want = true;
	}
}

/* A complete frame (or the first max_message bytes of an oversize one). */
static void conn_frame(struct conn *c, const uint8_t *p, size_t len, bool oversize)
{
	struct intake *in = c->in;
	struct job *jb = calloc(1, sizeof(*jb));
	struct hl7_msg m;
	struct hl7_str span;
	size_t pos = 0, n = 0;

	if (jb == NULL || (jb->frame = malloc(len ? len : 1)) == NULL)
		abort();
	memcpy(jb->frame, p, len);
	jb->len = len;
	jb->c = c;
	jb->in = in;
	jb->t0 = clock_mono();
	in->st.frames++;
	hl7_msg_init(&m);
	jb->batch = hl7_is_batch((const char *)p, len);
	if (jb->batch)
		while (n <= INTAKE_BATCH_MAX && hl7_batch_next((const char *)p, len, &pos, &span) == 1)
			n++;
	if (oversize || n > INTAKE_BATCH_MAX) {
		in->st.reasons[R_TOO_BIG]++;
		intake_note(in, R_TOO_BIG, NULL, c->peer,
			    oversize ? "over max_message" : "batch over 4096 messages");
		log_limited(&in->rate, LOG_WARN,
			    "event=rejected reason=too_big peer=%s size=%zu limit=%s", c->peer, len,
			    oversize ? "max_message" : "batch_messages");
		conn_refuse_frame(c, jb, &m, oversize ? "message larger than the receiver's limit"
						      : "batch holds too many messages");
		goto queue;
	}
	jb->n = jb->batch ? (unsigned)n : 1;
	jb->msgs = xcalloc(jb->n ? jb->n : 1, sizeof(*jb->msgs));
	if (!jb->batch) {
		jb->msgs[0].raw_len = len;
	} else {
		pos = 0;
		for (unsigned i = 0; i < jb->n && hl7_batch_next((const char *)p, len, &pos, &span);
		     i++) {
			jb->msgs[i].raw_off = (size_t)((const uint8_t *)span.p - p);
			jb->msgs[i].raw_len = span.len;
		}
	}
	for (unsigned i = 0; i < jb->n; i++) {
		jb->msgs[i].job = jb;
		intake_message(in, c, jb, &jb->msgs[i], &m);
	}
queue:
	hl7_msg_free(&m);
	if (c->tail != NULL)
		c->tail->next = jb;
	else
		c->head = jb;
	c->tail = jb;
	c->jobs++;
	c->inflight_msgs += jb->n;
	c->inflight_bytes += jb->len;
	jb->held = sizeof(*jb) + jb->len + jb->n * sizeof(*jb->msgs);
	for (unsigned i = 0; i < jb->n; i++)
		jb->held += jb->msgs[i].ack.cap + jb->msgs[i].reuse_ack.cap;
	c->jobs_held += jb->held;
	/* submit after queueing: done callbacks run later, in the loop */
	for (unsigned i = 0; i < jb->n; i++)
		if (jb->msgs[i].stored)
			commit_submit(in->commit, &jb->msgs[i].req);
	if (jb->pending == 0 && jb == c->head)
		conn_answer(c);
}

/* ---- connections ---- */

/* Ready: the TLS handshake and the PROXY header (whichever apply) are done. */
static bool conn_ready(const struct conn *c)
{
	return c->tls_ready && (!c->in->cfg->proxy || c->proxy_done);
}

/* The connection's next deadline but the write timeout's. */
static double conn_due(const struct conn *c)
{
	const struct intake_config *cfg = c->in->cfg;

	if (c->closing)
		return c->started + INTAKE_CLOSE_GRACE; /* started is reset when closing begins */
	if (!conn_ready(c))
		return c->started + cfg->frame_timeout;
	if (mllp_partial(&c->f))
		return c->frame_start + cfg->frame_timeout;
	return c->last_frame + cfg->idle_timeout;
}

/* True while ACKs wait to be written and the peer has taken none of them for
 * write_timeout: a peer that never reads would hold its unread ACKs, and the budget, for
 * ever. */
static bool conn_write_stalled(const struct conn *c, double now)
{
	return c->bev != NULL && !c->closing &&
	       evbuffer_get_length(bufferevent_get_output(c->bev)) > 0 &&
	       now >= c->out_progress + c->in->cfg->write_timeout;
}

/* Arms the connection's one timer for its next deadline. */
static void conn_arm(struct conn *c)
{
	double now = clock_mono(), due = conn_due(c);
	struct timeval tv;

	if (c->bev != NULL && !c->closing &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) > 0 &&
	    c->out_progress + c->in->cfg->write_timeout < due)
		due = c->out_progress + c->in->cfg->write_timeout;
	tv = clock_tv(due > now ? due - now : 0);
	evtimer_add(c->timer, &tv);
}

/* The output buffer changed: the peer took ACK bytes, or ACKs began to wait (loop thread). */
static void conn_out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;

	(void)b;
	if (info->n_deleted > 0 || (info->orig_size == 0 && info->n_added > 0))
		c->out_progress = clock_mono();
}

/* The admission limits: of the sockets (accepted) and, behind a proxy, of the addresses
 * its headers name (sources). */
static void intake_limits(const struct intake_config *cfg, bool sockets,
			  struct listener_limits *lim)
{
	bool by_source = !sockets || !cfg->proxy;

	memset(lim, 0, sizeof(*lim));
	if (sockets)
		lim->max_connections = (unsigned)cfg->max_connections;
	if (by_source) {
		lim->max_per_source = (unsigned)cfg->max_per_source;
		lim->v4_prefix = cfg->source_prefix_v4;
		lim->v6_prefix = cfg->source_prefix_v6;
		lim->allow = cfg->allow;
		lim->nallow = cfg->nallow;
	}
}

static bool intake_proxy_trusted(const struct intake *in, const struct sockaddr *sa)
{
	for (size_t i = 0; i < in->cfg->nproxy_from; i++)
		if (addr_cidr_match(&in->cfg->proxy_from[i], sa))
			return true;
	return false;
}

/* Starts closing: nothing more is read; what was read is answered, the answers are
 * written, then the connection closes (or after INTAKE_CLOSE_GRACE). */
static void conn_finish(struct conn *c, const char *reason)
{
	if (c->closing)
		return;
	c->closing = true;
	c->close_reason = reason;
	c->started = clock_mono();
	intake_drop_overdraft(c);
	if (c->bev == NULL) { /* still before TLS: nothing was read, nothing to answer */
		conn_close(c, reason);
		return;
	}
	bufferevent_disable(c->bev, EV_READ);
	conn_arm(c);
	conn_maybe_close(c);
}

/* Once everything read is answered and written: on plain TCP, send FIN and wait (within
 * the closing grace) for the peer's, discarding what it still sends, so that closing with
 * unread bytes does not turn into a reset that could destroy ACKs already on their way; a
 * sender whose messages were not answered sends them again. Otherwise close. */
static void conn_maybe_close(struct conn *c)
{
	if (c->jobs != 0 || evbuffer_get_length(bufferevent_get_output(c->bev)) != 0)
		return;
	if (c->in->tls != NULL || c->eof) {
		conn_close(c, c->close_reason);
		return;
	}
	if (!c->shut) {
		c->shut = true;
		shutdown(bufferevent_getfd(c->bev), SHUT_WR);
		evbuffer_drain(bufferevent_get_input(c->bev),
			       evbuffer_get_length(bufferevent_get_input(c->bev)));
		bufferevent_enable(c->bev, EV_READ);
	}
}

static int conn_proxy_source(struct conn *c, const struct sockaddr_storage *srcp);

/* Reads a PROXY header at the start of the connection. Returns 1 when done, 0 for more
 * bytes, -1 when the connection was closed. */
static int conn_proxy(struct conn *c, struct evbuffer *inb)
{
	size_t have = evbuffer_get_length(inb);
	size_t n = have < PROXY_V2_MAX ? have : PROXY_V2_MAX;
	struct sockaddr_storage src, dst;
	const uint8_t *p = evbuffer_pullup(inb, (ev_ssize_t)n);
	int used = proxy_decode(p, n, &src, &dst);

	if (used == 0 && n < PROXY_V2_MAX && !c->eof)
		return 0;
	if (used <= 0) {
		conn_close(c, c->eof ? "closed_in_proxy_header" : "bad_proxy_header");
		return -1;
	}
	evbuffer_drain(inb, (size_t)used);
	return conn_proxy_source(c, &src);
}

/* The source a PROXY header named: recorded, then checked against allow and
 * max_per_source. Returns 1, or -1 when the connection was closed. */
static int conn_proxy_source(struct conn *c, const struct sockaddr_storage *srcp)
{
	struct intake *in = c->in;
	struct sockaddr_storage src = *srcp;
	enum listener_reason why;

	c->proxy_done = true;
	if (src.ss_family != AF_UNSPEC) { /* LOCAL and UNKNOWN keep the socket's address */
		c->src = src;
		addr_format((struct sockaddr *)&src, c->peer, sizeof(c->peer));
	}
	c->proxy_src = listener_set_admit(in->sources, (struct sockaddr *)&c->src, &why);
	if (c->proxy_src == NULL) {
		in->st.conns_refused++;
		log_limited(&in->rate, LOG_WARN, "event=refused peer=%s reason=%s", c->peer,
			    listener_reason_names[why]);
		conn_close(c, listener_reason_names[why]);
		return -1;
	}
	c->last_frame = clock_mono();
	return 1;
}

/* Feeds what was read to the framer while the connection may take more work. */
static void conn_pump(struct conn *c)
{
	struct intake *in = c->in;
	struct evbuffer *inb = bufferevent_get_input(c->bev);
	struct evbuffer *outb = bufferevent_get_output(c->bev);
	size_t max_bytes = in->cfg->max_message > INTAKE_INFLIGHT_BYTES ? in->cfg->max_message
									: INTAKE_INFLIGHT_BYTES;
	bool room = true;

	if (c->closing)
		return;
	if (!c->tls_ready)
		goto arm;
	/* plain TCP: the header arrives through the bufferevent (with TLS, conn_pre_cb read it
	 * from the socket before the handshake) */
	if (in->cfg->proxy && !c->proxy_done) {
		int r = conn_proxy(c, inb);
		if (r == -1)
			return;
		if (r == 0)
			goto arm;
	}
	for (;;) {
		struct evbuffer_iovec v;
		size_t used = 0;
		enum mllp_result r;
		uint64_t junk = c->f.junk;
		bool was_partial = mllp_partial(&c->f);

		room = c->jobs < in->cfg->max_inflight && c->inflight_msgs < INTAKE_INFLIGHT_MSGS &&
		       c->inflight_bytes < max_bytes && evbuffer_get_length(outb) < INTAKE_OUT_MAX &&
		       (!in->paused || c == in->overdraft);
		if (!room || evbuffer_get_length(inb) == 0 ||
		    evbuffer_peek(inb, INTAKE_READ_CHUNK, NULL, &v, 1) < 1)
			break;
		if (v.iov_len > INTAKE_READ_CHUNK)
			v.iov_len = INTAKE_READ_CHUNK;
		if (!intake_fits(in, c, v.iov_len)) {
			/* this connection waits for bytes to go; others may still fit */
			if (!c->starved) {
				c->starved = true;
				in->nstarved++;
				in->st.memory_waits++;
				conn_watch_close(c);
			}
			intake_want_overdraft(in);
			room = false;
			break;
		}
		r = mllp_feed(&c->f, v.iov_base, v.iov_len, &used);
		evbuffer_drain(inb, used);
		in->st.junk_bytes += c->f.junk - junk;
		if (r != MLLP_MORE) {
			size_t len;
			const uint8_t *fr = mllp_frame(&c->f, &len);
			c->last_frame = clock_mono();
			conn_frame(c, fr, len, r == MLLP_OVERSIZE);
			if (c->f.frame.cap > INTAKE_FRAMER_KEPT)
				mllp_trim(&c->f); /* copied: a large buffer is not kept */
			intake_drop_overdraft(c);
		} else if (!was_partial && mllp_partial(&c->f)) {
			c->frame_start = clock_mono();
		}
	}
	conn_account(c);
	if (room && !c->eof && !in->draining && (!in->paused || c == in->overdraft))
		bufferevent_enable(c->bev, EV_READ);
	else
		bufferevent_disable(c->bev, EV_READ);
	if (c->eof && evbuffer_get_length(inb) == 0) {
		conn_finish(c, mllp_partial(&c->f) ? "closed_mid_frame" : "closed");
		return;
	}
arm:
	conn_arm(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->shut) { /* closing: what the peer still sends is not read as messages */
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
		conn_account(c);
		return;
	}
	conn_pump(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	conn_account(c); /* unread ACK bytes went */
	/* the output drained: more may be read, or a closing connection may go */
	if (c->closing)
		conn_maybe_close(c);
	else
		conn_pump(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) { /* the TLS handshake is done */
		c->tls_ready = true;
		c->last_frame = clock_mono();
		conn_pump(c);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		c->eof = true;
		if (c->closing)
			conn_maybe_close(c);
		else
			conn_pump(c);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		char detail[256];
		const char *why = bufferevent_get_openssl_error(bev) != 0
					  ? tls_failure_reason(detail, sizeof(detail))
					  : "socket_error";
		conn_close(c, why);
	}
}

static bool in_proxy(const struct conn *c)
{
	return c->in->cfg->proxy && !c->proxy_done;
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	double now = clock_mono();

	(void)fd;
	(void)what;
	if (c->closing) {
		conn_close(c, c->close_reason);
		return;
	}
	if (conn_write_stalled(c, now)) {
		/* as if it had closed: what it sent is answered and stored, its ACKs wait
		 * INTAKE_CLOSE_GRACE more, then the connection and its bytes go */
		conn_finish(c, "write_timeout");
		return;
	}
	if (now < conn_due(c)) { /* woken for the write timeout, and bytes were taken */
		conn_arm(c);
		return;
	}
	if (c->jobs > 0 && conn_ready(c) && !mllp_partial(&c->f)) {
		/* waiting for the store, not for the peer */
		c->last_frame = clock_mono();
		conn_arm(c);
		return;
	}
	conn_close(c, !conn_ready(c) ? (in_proxy(c) ? "proxy_timeout" : "handshake_timeout")
		      : mllp_partial(&c->f) ? "frame_timeout"
					    : "idle_timeout");
}

static void conn_close(struct conn *c, const char *reason)
{
	struct intake *in = c->in;

	log_limited(&in->rate, strcmp(reason, "closed") == 0 ? LOG_DEBUG : LOG_INFO,
		    "event=closed peer=%s reason=%s pending=%u", c->peer, reason, c->jobs);
	in->held -= c->held; /* the orphans' share comes back below */
	if (c->starved)
		in->nstarved--;
	intake_drop_overdraft(c);
	for (struct job *jb = c->head, *next; jb != NULL; jb = next) {
		next = jb->next;
		jb->c = NULL;
		if (jb->pending == 0) {
			job_free(jb);
		} else { /* still being stored: held until its last answer comes */
			in->held += jb->held;
			in->orphans_held += jb->held;
		}
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		in->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	in->nconns--;
	listener_set_release(in->accepted, c->sock_src);
	listener_set_release(in->sources, c->proxy_src);
	loop_free_event(&c->timer);
	loop_free_event(&c->closed_ev);
	if (c->bev != NULL) {
		evbuffer_remove_cb(bufferevent_get_output(c->bev), conn_out_cb, c);
		bufferevent_free(c->bev);
	} else {
		loop_free_event(&c->pre);
		close(c->fd);
	}
	mllp_free(&c->f);
	free(c);
	intake_released(in);
}

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

/* TLS behind a proxy: the PROXY header comes first, in the clear. It is read from the
 * socket with MSG_PEEK, then exactly its bytes are taken, so that the TLS bufferevent
 * starts on the first byte of the handshake (edge-triggered: a partial header waits for
 * more bytes, not in a busy loop). */
static void conn_pre_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct intake *in = c->in;
	uint8_t hdr[PROXY_V2_MAX];
	struct sockaddr_storage src, dst;
	ssize_t n = recv(fd, hdr, sizeof(hdr), MSG_PEEK);
	int used;
	SSL *ssl;

	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c, "closed_in_proxy_header");
		return;
	}
	used = proxy_decode(hdr, (size_t)n, &src, &dst);
	if (used == 0 && (size_t)n < sizeof(hdr))
		return;
	if (used <= 0 || recv(fd, hdr, (size_t)used, 0) != used) {
		conn_close(c, "bad_proxy_header");
		return;
	}
	loop_free_event(&c->pre);
	if (conn_proxy_source(c, &src) == -1)
		return;
	ssl = SSL_new(in->tls);
	if (ssl == NULL)
		abort();
	c->bev = bufferevent_openssl_socket_new(in->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		abort();
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	if (evbuffer_add_cb(bufferevent_get_output(c->bev), conn_out_cb, c) == NULL)
		abort();
	bufferevent_set_max_single_read(c->bev, INTAKE_READ_MAX);
	if (!in->paused) /* else the resume turns it on */
		bufferevent_enable(c->bev, EV_READ);
	conn_arm(c);
}

static void intake_refused(void *arg, const struct sockaddr *sa, enum listener_reason r)
{
	struct intake *in = arg;

	(void)sa;
	(void)r;
	in->st.conns_total++;
	in->st.conns_refused++;
}

/* A connection the listener admitted: fd is ours, src its count in in->accepted. */
static void intake_accept(void *arg, int fd, const struct sockaddr *sa, struct listener_src *src)
{
	struct intake *in = arg;
	struct conn *c;

	in->st.conns_total++;
	if (in->cfg->proxy && !intake_proxy_trusted(in, sa)) {
		in->st.conns_refused++;
		listener_set_refuse(in->accepted, src, sa, "untrusted_proxy");
		close(fd);
		return;
	}
	sock_nodelay(fd);
	c = xcalloc(1, sizeof(*c));
	c->in = in;
	c->sock_src = src;
	memcpy(&c->src, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						      : sizeof(struct sockaddr_in));
	addr_format(sa, c->peer, sizeof(c->peer));
	mllp_init(&c->f, in->cfg->max_message);
	c->started = c->last_frame = clock_mono();
	c->fd = fd;
	if (in->tls != NULL && in->cfg->proxy) {
		c->pre = event_new(in->base, fd, EV_READ | EV_PERSIST | EV_ET, conn_pre_cb, c);
		if (c->pre == NULL || event_add(c->pre, NULL) == -1)
			abort();
	} else if (in->tls != NULL) {
		SSL *ssl = SSL_new(in->tls);
		if (ssl == NULL)
			abort();
		c->bev = bufferevent_openssl_socket_new(in->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
							BEV_OPT_CLOSE_ON_FREE);
	} else {
		c->bev = bufferevent_socket_new(in->base, fd, BEV_OPT_CLOSE_ON_FREE);
		c->tls_ready = true;
	}
	if (c->bev == NULL && c->pre == NULL)
		abort();
	c->timer = evtimer_new(in->base, conn_timer_cb, c);
	if (c->bev != NULL) {
		bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
		if (evbuffer_add_cb(bufferevent_get_output(c->bev), conn_out_cb, c) == NULL)
			abort();
		bufferevent_set_max_single_read(c->bev, INTAKE_READ_MAX);
		if (!in->paused) /* else the resume turns it on */
			bufferevent_enable(c->bev, EV_READ);
	}
	c->next = in->conns;
	if (in->conns != NULL)
		in->conns->prev = c;
	in->conns = c;
	in->nconns++;
	if (in->nconns > in->peak)
		in->peak = in->nconns;
	conn_arm(c);
	log_debug("event=connected peer=%s", c->peer);
}

/* ---- admin ---- */

static void intake_metrics(struct evbuffer *out, void *arg)
{
	struct intake *in = arg;
	struct intake_stats *s = &in->st;
	struct commit_stats cs;
	struct commit_snapshot snap;
	struct deliver_stats ds = { 0 };
	uint64_t cum = 0;
	char labels[64];

	commit_stats(in->commit, &cs);
	commit_snapshot(in->commit, true, &snap);
	if (in->deliver != NULL)
		deliver_stats(in->deliver, &ds);
	admin_family(out, "netwall_intake_connections_open", "gauge", "MLLP connections open");
	admin_sample(out, "netwall_intake_connections_open", "", in->nconns);
	admin_family(out, "netwall_intake_connections_total", "counter", "MLLP connections accepted");
	admin_sample(out, "netwall_intake_connections_total", "", s->conns_total);
	admin_family(out, "netwall_intake_connections_refused_total", "counter",
		     "connections refused (allowlist, max_connections)");
	admin_sample(out, "netwall_intake_connections_refused_total", "", s->conns_refused);
	admin_metric(out, "netwall_intake_memory_held_bytes", "gauge",
		     "bytes peers make the intake hold (partial frames, unfed input, messages "
		     "awaiting answers, unread ACKs), counted against memory_budget", in->held);
	admin_metric(out, "netwall_intake_stalled_frames_total", "counter",
		     "partial frames closed while reading was stopped at memory_budget, their "
		     "senders silent", in->st.stalled);
	admin_metric(out, "netwall_intake_memory_budget_bytes", "gauge",
		     "memory_budget", in->cfg->memory_budget);
	admin_metric(out, "netwall_intake_memory_waits_total", "counter",
		     "times reading stopped at memory_budget (all connections, or one whose "
		     "next bytes did not fit)", s->memory_waits);
	admin_family(out, "netwall_intake_frames_total", "counter", "MLLP frames received");
	admin_sample(out, "netwall_intake_frames_total", "", s->frames);
	admin_family(out, "netwall_intake_junk_bytes_total", "counter",
		     "bytes skipped between MLLP frames");
	admin_sample(out, "netwall_intake_junk_bytes_total", "", s->junk_bytes);
	admin_family(out, "netwall_intake_messages_received_total", "counter",
		     "HL7 messages received");
	admin_sample(out, "netwall_intake_messages_received_total", "", s->received);
	admin_family(out, "netwall_intake_messages_stored_total", "counter",
		     "messages stored, by the state they were stored in");
	admin_sample(out, "netwall_intake_messages_stored_total", "state=\"received\"", s->accepted);
	admin_sample(out, "netwall_intake_messages_stored_total", "state=\"ignored\"", s->ignored);
	admin_sample(out, "netwall_intake_messages_stored_total", "state=\"rejected\"",
		     s->rejected_stored);
	admin_family(out, "netwall_intake_messages_accepted_total", "counter",
		     "messages accepted for delivery (stored, acknowledged AA/CA)");
	admin_sample(out, "netwall_intake_messages_accepted_total", "", s->accepted);
	admin_family(out, "netwall_intake_duplicates_total", "counter",
		     "messages already stored, answered with the original ACK");
	admin_sample(out, "netwall_intake_duplicates_total", "", s->duplicates);
	admin_family(out, "netwall_intake_reused_control_id_total", "counter",
		     "messages whose key (MSH-3, MSH-4, MSH-10) was stored for a different "
		     "message: stored flagged, or answered AR 205");
	admin_sample(out, "netwall_intake_reused_control_id_total", "", s->reused);
	admin_family(out, "netwall_intake_rejected_total", "counter",
		     "messages answered with an error or not answered, by reason");
	for (int i = 0; i < R_NREASONS; i++) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", intake_reason_names[i]);
		admin_sample(out, "netwall_intake_rejected_total", labels, s->reasons[i]);
	}
	admin_family(out, "netwall_intake_ack_seconds", "histogram",
		     "time from a complete frame to its ACK being queued");
	for (size_t i = 0; i < INTAKE_NBUCKETS; i++) {
		cum += s->hist[i];
		evbuffer_add_printf(out, "netwall_intake_ack_seconds_bucket{le=\"%g\"} %llu\n",
				    intake_buckets[i], (unsigned long long)cum);
	}
	cum += s->hist[INTAKE_NBUCKETS];
	evbuffer_add_printf(out, "netwall_intake_ack_seconds_bucket{le=\"+Inf\"} %llu\n",
			    (unsigned long long)cum);
	evbuffer_add_printf(out, "netwall_intake_ack_seconds_sum %.6f\n", s->hist_sum);
	evbuffer_add_printf(out, "netwall_intake_ack_seconds_count %llu\n",
			    (unsigned long long)s->hist_count);
	admin_family(out, "netwall_intake_store_transactions_total", "counter",
		     "group-committed store transactions");
	admin_sample(out, "netwall_intake_store_transactions_total", "", cs.transactions);
	admin_family(out, "netwall_intake_store_failures_total", "counter",
		     "store transactions that failed (answered AE)");
	admin_sample(out, "netwall_intake_store_failures_total", "", cs.failures);
	admin_family(out, "netwall_intake_store_batch_max", "gauge",
		     "most messages in one transaction");
	admin_sample(out, "netwall_intake_store_batch_max", "", cs.max_batch);
	admin_family(out, "netwall_intake_messages", "gauge",
		     "messages in the store, by state (counted by the committer)");
	for (int i = 0; i < STORE_NSTATES && snap.counts_ok; i++) {
		snprintf(labels, sizeof(labels), "state=\"%s\"", store_state_name(i));
		admin_sample(out, "netwall_intake_messages", labels, snap.by_state[i]);
	}
	admin_family(out, "netwall_intake_queue_depth", "gauge", "delivery jobs waiting");
	admin_sample(out, "netwall_intake_queue_depth", "", snap.depth);
	admin_metric(out, "netwall_intake_delivery_attempts_total", "counter",
		     "POSTs to the EMAR API", ds.attempts);
	admin_metric(out, "netwall_intake_delivery_failures_total", "counter",
		     "delivery attempts that did not deliver", ds.failures);
	admin_metric(out, "netwall_intake_delivered_total", "counter",
		     "messages delivered", ds.delivered);
	admin_family(out, "netwall_intake_dead_letters_total", "counter",
		     "messages dead-lettered");
	admin_sample(out, "netwall_intake_dead_letters_total", "", ds.dead);
	admin_metric(out, "netwall_intake_deliveries_in_flight", "gauge",
		     "Deliveries posted and not yet answered", ds.in_flight);
	admin_metric(out, "netwall_intake_delivery_body_bytes", "gauge",
		     "Bytes of request bodies in flight (bounded by a quarter of memory_budget)",
		     ds.body_bytes);
}

static void intake_status(struct evbuffer *out, void *arg)
{
	struct intake *in = arg;
	struct commit_snapshot snap;

	commit_snapshot(in->commit, true, &snap);
	evbuffer_add_printf(out, "{\"role\":\"intake\",\"store\":\"%s\",\"connections\":%llu,"
				 "\"received\":%llu,\"duplicates\":%llu,\"reused_control_id\":%llu,"
				 "\"queue_depth\":%llu,\"states\":{",
			    in->store_kind, (unsigned long long)in->nconns,
			    (unsigned long long)in->st.received,
			    (unsigned long long)in->st.duplicates, (unsigned long long)in->st.reused,
			    (unsigned long long)snap.depth);
	for (int i = 0; i < STORE_NSTATES; i++)
		evbuffer_add_printf(out, "%s\"%s\":%llu", i ? "," : "", store_state_name(i),
				    (unsigned long long)snap.by_state[i]);
	evbuffer_add_printf(out, "},\"counts_age_s\":%.1f}\n",
			    snap.counts_ok ? clock_mono() - snap.counts_at : -1.0);
}

/* The upper bound of the histogram bucket holding quantile q, as text ("<= 1 ms"). */
static void intake_quantile(const struct intake_stats *s, double q, char *buf, size_t len)
{
	uint64_t want = (uint64_t)(q * (double)s->hist_count + 0.5), cum = 0;

	if (s->hist_count == 0) {
		snprintf(buf, len, "-");
		return;
	}
	if (want == 0)
		want = 1;
	for (size_t i = 0; i < INTAKE_NBUCKETS; i++) {
		cum += s->hist[i];
		if (cum >= want) {
			snprintf(buf, len, "\u2264 %g ms", intake_buckets[i] * 1000);
			return;
		}
	}
	snprintf(buf, len, "> %g s", intake_buckets[INTAKE_NBUCKETS - 1]);
}

static void intake_page_errors(struct evbuffer *out, const struct intake *in)
{
	size_t shown = 0;

	evbuffer_add_printf(out, "<h2>Last errors (newest first; control IDs and reasons only)"
				 "</h2><table id=\"errors\"><tr><th>time (UTC)</th><th>reason</th>"
				 "<th>control ID</th><th>from</th><th>detail</th></tr>\n");
	for (size_t k = 1; k <= INTAKE_ERRORS_KEPT; k++) {
		const struct intake_err *e =
			&in->errs[(in->errs_next + INTAKE_ERRORS_KEPT - k) % INTAKE_ERRORS_KEPT];
		char when[32];
		if (e->at == 0)
			continue;
		shown++;
		page_time(when, sizeof(when), e->at);
		evbuffer_add_printf(out, "<tr><td>%s</td><td class=\"reason\">%s</td><td>", when,
				    e->reason);
		page_esc(out, e->ctrl);
		evbuffer_add_printf(out, "</td><td>");
		page_esc(out, e->peer);
		evbuffer_add_printf(out, "</td><td>");
		page_esc(out, e->detail);
		evbuffer_add_printf(out, "</td></tr>\n");
	}
	if (shown == 0)
		evbuffer_add_printf(out, "<tr><td colspan=\"5\" class=\"none\">none</td></tr>\n");
	evbuffer_add_printf(out, "</table>\n");
}

static void intake_page(struct evbuffer *out, void *arg)
{
	struct intake *in = arg;
	const struct intake_stats *s = &in->st;
	struct commit_snapshot snap;
	struct deliver_stats ds = { 0 };
	uint64_t rejected = s->rejected_stored;
	char p50[24], p99[24];

	commit_snapshot(in->commit, true, &snap);
	if (in->deliver != NULL)
		deliver_stats(in->deliver, &ds);
	for (int i = 0; i < R_NREASONS; i++)
		if (i != R_ROUTE && i != R_ACK_INPUT)
			rejected += s->reasons[i]; /* routing rejections are stored ones */
	intake_quantile(s, 0.5, p50, sizeof(p50));
	intake_quantile(s, 0.99, p99, sizeof(p99));
	evbuffer_add_printf(out, "<h2>Since start</h2><div class=\"tiles\">");
	page_tile_text(out, "state", "state", in->draining ? "draining" : "receiving");
	page_tile(out, "connections", "MLLP connections", in->nconns);
	page_tile(out, "received", "received", s->received);
	page_tile(out, "accepted", "accepted (AA)", s->accepted);
	page_tile(out, "ignored", "ignored", s->ignored);
	page_tile(out, "rejected", "rejected or failed", rejected);
	page_tile(out, "duplicates", "duplicates", s->duplicates);
	page_tile(out, "reused_control_id", "control ID reused", s->reused);
	page_tile(out, "delivered_now", "delivered", ds.delivered);
	page_tile_text(out, "ack_p50", "ACK latency p50", p50);
	page_tile_text(out, "ack_p99", "ACK latency p99", p99);
	evbuffer_add_printf(out, "</div>\n<h2>In the store (%s)</h2><div class=\"tiles\">",
			    in->store_kind);
	if (snap.counts_ok) {
		page_tile(out, "store_waiting", "waiting for delivery",
			  snap.by_state[STORE_RECEIVED]);
		page_tile(out, "store_retrying", "retrying", snap.by_state[STORE_FAILED]);
		page_tile(out, "store_delivered", "delivered", snap.by_state[STORE_DELIVERED]);
		page_tile(out, "store_dead", "dead-lettered", snap.by_state[STORE_DEAD]);
		page_tile(out, "store_ignored", "ignored", snap.by_state[STORE_IGNORED]);
		page_tile(out, "store_rejected", "rejected", snap.by_state[STORE_REJECTED]);
	} else {
		page_tile_text(out, "store_counting", "being counted", "...");
	}
	page_tile(out, "queue_depth", "queue depth", snap.depth);
	evbuffer_add_printf(out, "</div>\n");
	page_chart(out, "received_chart", "Messages received per minute", &in->per_minute,
		   clock_wall());
	intake_page_errors(out, in);
}

static int intake_health(char *why, size_t len, void *arg)
{
	struct intake *in = arg;

	if (in->draining) {
		snprintf(why, len, "draining");
		return -1;
	}
	return 0;
}

static const struct admin_ops intake_admin_ops = {
	.role = "intake",
	.page = intake_page,
	.metrics = intake_metrics,
	.status = intake_status,
	.health = intake_health,
};

/* ---- life ---- */

static void intake_listeners_free(struct intake *in)
{
	for (size_t i = 0; i < in->nls; i++)
		listener_free(in->ls[i]);
	free(in->ls);
	in->ls = NULL;
	in->nls = 0;
}

static void intake_reload(void *arg)
{
	struct intake *in = arg;
	char *msgs = NULL;
	struct listener_limits lim;
	struct intake_config *cfg = intake_config_load(in->path, &msgs);

	if (cfg == NULL) {
		log_error("event=reload_failed file=%s (keeping the running config)", in->path);
		fputs(msgs, stderr);
		free(msgs);
		return;
	}
	/* routing, limits, timeouts and the log level apply at once; listeners, TLS, store
	 * and delivery settings need a restart */
	in->cfg->nrules = 0;
	free(in->cfg->rules);
	in->cfg->rules = cfg->rules;
	in->cfg->nrules = cfg->nrules;
	cfg->rules = NULL;
	in->cfg->default_action = cfg->default_action;
	in->cfg->max_connections = cfg->max_connections;
	in->cfg->max_inflight = cfg->max_inflight;
	in->cfg->idle_timeout = cfg->idle_timeout;
	in->cfg->frame_timeout = cfg->frame_timeout;
	in->cfg->write_timeout = cfg->write_timeout;
	memcpy(in->cfg->processing_ids, cfg->processing_ids, sizeof(cfg->processing_ids));
	in->cfg->nallow = cfg->nallow;
	memcpy(in->cfg->allow, cfg->allow, sizeof(cfg->allow));
	in->cfg->d.log_level = cfg->d.log_level;
	in->cfg->max_message = cfg->max_message; /* for connections accepted from now on */
	in->cfg->max_per_source = cfg->max_per_source;
	in->cfg->source_prefix_v4 = cfg->source_prefix_v4;
	in->cfg->source_prefix_v6 = cfg->source_prefix_v6;
	in->cfg->memory_budget = cfg->memory_budget;
	intake_limits(in->cfg, true, &lim);
	listener_set_limits(in->accepted, &lim);
	intake_limits(in->cfg, false, &lim);
	listener_set_limits(in->sources, &lim);
	in->cfg->reuse_reject = cfg->reuse_reject;
	in->cfg->drain_timeout = cfg->drain_timeout;
	log_set_level(cfg->d.log_level);
	/* the admin listener follows its address and token (a rotated token applies at once) */
	if (in->admin != NULL || cfg->d.admin_on) {
		char err[256];
		admin_reconfigure(&in->admin, in->base, cfg->d.admin_on ? &cfg->d.admin : NULL,
				  cfg->d.admin_token, &intake_admin_ops, in, err, sizeof(err));
	}
	intake_config_free(cfg);
	log_info("event=reloaded file=%s rules=%zu", in->path, in->cfg->nrules);
}

static double intake_drain(void *arg)
{
	struct intake *in = arg;

	in->draining = true;
	intake_listeners_free(in);
	log_info("event=draining connections=%llu", (unsigned long long)in->nconns);
	/* every connection answers what it has read, writes it out, and closes */
	for (struct conn *c = in->conns, *next; c != NULL; c = next) {
		next = c->next;
		conn_finish(c, "draining");
	}
	return in->cfg->drain_timeout;
}

static bool intake_idle(void *arg)
{
	struct intake *in = arg;

	return in->conns == NULL && commit_pending(in->commit) == 0;
}

static void intake_housekeeping(void *arg)
{
	struct intake *in = arg;

	for (struct conn *c = in->conns; c != NULL; c = c->next) {
		if (c->jobs == 0) {
			mllp_trim(&c->f);
			conn_account(c);
		}
	}
	loop_trim(in->nconns, &in->peak);
}

static const struct lifecycle_ops intake_lifecycle_ops = {
	.reload = intake_reload,
	.drain = intake_drain,
	.idle = intake_idle,
	.housekeeping = intake_housekeeping,
};

static SSL_CTX *intake_tls(const struct intake_config *cfg)
{
	char err[512];
	SSL_CTX *ctx = tls_ctx_server(cfg->cert, cfg->key, err, sizeof(err));

	if (ctx == NULL) {
		log_error("event=tls_failed error=\"%s\"", err);
		return NULL;
	}
	/* pharmacy systems lag behind: TLS 1.2 is allowed unless tls_min says 1.3 */
	SSL_CTX_set_min_proto_version(ctx, cfg->tls_min == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
	if (cfg->client_certs != INTAKE_CERTS_OFF) {
		if (tls_ctx_load_ca(ctx, cfg->client_ca, err, sizeof(err)) == -1) {
			log_error("event=tls_failed error=\"%s\"", err);
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx,
				   SSL_VERIFY_PEER | (cfg->client_certs == INTAKE_CERTS_REQUIRED
							      ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT
							      : 0),
				   NULL);
	}
	return ctx;
}

static void intake_kick(void *arg)
{
	struct intake *in = arg;

	if (in->deliver != NULL)
		deliver_kick(in->deliver);
}

static int intake_listen(struct intake *in)
{
	struct listener_limits lim;
	char err[300], a[ADDR_STRLEN];

	intake_limits(in->cfg, true, &lim);
	in->accepted = listener_set_new("refused", "listener=mllp", &lim);
	intake_limits(in->cfg, false, &lim);
	in->sources = listener_set_new("refused", "listener=mllp", &lim);
	in->ls = xcalloc(in->cfg->nlisten, sizeof(*in->ls));
	for (size_t i = 0; i < in->cfg->nlisten; i++) {
		struct listener *l = listener_new(in->base, &in->cfg->listen[i], in->accepted,
						  intake_accept, intake_refused, in, err,
						  sizeof(err));
		addr_format((const struct sockaddr *)&in->cfg->listen[i].ss, a, sizeof(a));
		if (l == NULL) {
			log_error("event=listen_failed addr=%s error=\"%s\"", a, err);
			return -1;
		}
		in->ls[in->nls++] = l;
		log_info("event=listening what=mllp addr=%s tls=%s proxy=%s", a,
			 in->tls ? "on" : "off", in->cfg->proxy ? "on" : "off");
	}
	return 0;
}

struct intake *intake_new(struct event_base *base, const char *path, struct intake_config *cfg)
{
	struct intake *in = xcalloc(1, sizeof(*in));
	struct store *reader;
	char err[512], host[64] = "host", t[16], p[8];
	struct deliver_conf dc;

	in->base = base;
	in->path = path;
	in->cfg = cfg;
	base36(t, 6, (uint64_t)time(NULL));
	base36(p, 5, (uint64_t)getpid());
	memcpy(in->ack_prefix, t, 6);
	memcpy(in->ack_prefix + 6, p, 6);
	gethostname(host, sizeof(host) - 1);
	snprintf(in->owner, sizeof(in->owner), "%s:%d:%s", host, (int)getpid(), t);
	if (cfg->tls && (in->tls = intake_tls(cfg)) == NULL)
		goto fail;
	/* the committer opens its own connection; this one checks the store (and creates the
	 * schema) before anything is listening, then goes */
	reader = store_open(cfg->store, err, sizeof(err));
	if (reader == NULL) {
		log_error("event=store_failed store=%s error=\"%s\"",
			  strncmp(cfg->store, "postgres", 8) == 0 ? "postgresql" : cfg->store, err);
		goto fail;
	}
	in->store_kind = store_kind(reader);
	store_close(reader);
	in->commit = commit_new(base, cfg->store, intake_kick, in, err, sizeof(err));
	if (in->commit == NULL) {
		log_error("event=store_failed error=\"%s\"", err);
		goto fail;
	}
	if (cfg->url != NULL) {
		dc = (struct deliver_conf){
			.store = cfg->store,
			.url = cfg->url,
			.token_file = cfg->token_file,
			.ca_file = cfg->deliver_ca,
			.timeout = cfg->deliver_timeout,
			.connect_timeout = cfg->connect_timeout,
			.max_attempts = (unsigned)cfg->max_attempts,
			.backoff_min = cfg->backoff_min,
			.backoff_max = cfg->backoff_max,
			.concurrency = (unsigned)cfg->concurrency,
			/* the delivery worker's share of the budget: bodies in flight */
			.body_budget = (size_t)(cfg->memory_budget / 4),
			.poll = cfg->poll,
			.owner = in->owner,
		};
		in->deliver = deliver_new(&dc, err, sizeof(err));
		if (in->deliver == NULL) {
			log_error("event=deliver_failed error=\"%s\"", err);
			goto fail;
		}
	}
	in->resume_ev = event_new(base, -1, 0, intake_resume_cb, in);
	in->stall_ev = evtimer_new(base, intake_stall_cb, in);
	if (in->stall_ev == NULL)
		abort();
	if (in->resume_ev == NULL)
		abort();
	in->scratch = evbuffer_new();
	if (in->scratch == NULL)
		abort();
	if (intake_listen(in) == -1)
		goto fail;
	if (cfg->d.admin_on) {
		in->admin = admin_new(base, &cfg->d.admin, cfg->d.admin_token, &intake_admin_ops, in, err, sizeof(err));
		if (in->admin == NULL) {
			log_error("event=admin_failed error=\"%s\"", err);
			goto fail;
		}
	}
	in->life = lifecycle_new(base, &intake_lifecycle_ops, in);
	log_info("event=started store=%s deliver=%s rules=%zu", in->store_kind,
		 cfg->url != NULL ? "on" : "off", cfg->nrules);
	return in;
fail:
	intake_free(in);
	return NULL;
}

int intake_run(struct intake *in)
{
	event_base_dispatch(in->base);
	return in->status;
}

void intake_free(struct intake *in)
{
	if (in == NULL)
		return;
	intake_listeners_free(in);
	if (in->scratch != NULL)
		evbuffer_free(in->scratch);
	while (in->conns != NULL)
		conn_close(in->conns, "shutdown");
	listener_set_free(in->accepted); /* every connection gave its count back */
	listener_set_free(in->sources);
	commit_free(in->commit); /* runs the last done callbacks: their jobs are orphans now */
	loop_free_event(&in->resume_ev);
	loop_free_event(&in->stall_ev);
	if (in->deliver != NULL)
		deliver_free(in->deliver, 2.0);
	admin_free(in->admin);
	lifecycle_free(in->life);
	SSL_CTX_free(in->tls);
	intake_config_free(in->cfg);
	free(in);
}
