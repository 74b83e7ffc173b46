#include "hl7/intake.h"

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
#include <unistd.h>

#include "core/admin.h"
#include "core/clock.h"
#include "core/lifecycle.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/proxy.h"
#include "core/sock.h"
#include "core/tls.h"
#include "hl7/ack.h"
#include "hl7/commit.h"
#include "hl7/deliver.h"
#include "hl7/hl7.h"
#include "hl7/mllp.h"
#include "hl7/store.h"

#define INTAKE_READ_CHUNK 65536        /* bytes fed to the framer per step */
#define INTAKE_OUT_MAX (1024 * 1024)   /* unread ACK bytes before we stop reading */
#define INTAKE_KEY_MAX 63              /* MSH-3, MSH-4, MSH-10 bytes (the dedupe key) */
#define INTAKE_DEPTH_EVERY 1.0         /* seconds between queue depth reads for /metrics */

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
	R_NREASONS
};
static const char *const intake_reason_names[] = { "parse",   "header",    "route",
						   "too_big", "ack_input", "store" };

struct intake_stats {
	uint64_t frames, received, accepted, ignored, rejected_stored, duplicates;
	uint64_t reasons[R_NREASONS];
	uint64_t conns_total, conns_refused, junk_bytes;
	uint64_t hist[INTAKE_NBUCKETS + 1];
	double hist_sum;
	uint64_t hist_count;
};

struct intake_listener {
	struct intake *in;
	struct event *ev;
	int fd;
	struct addr a;
};

struct conn;

/* One message of a frame, and its store request. */
struct jmsg {
	struct commit_req req;
	struct job *job;
	bool stored;     /* goes to the store (else the ack is final) */
	bool want;       /* an ACK is to be sent for it */
	bool enhanced;   /* the sender asked for enhanced mode */
	struct buf ack;  /* the ACK built for it */
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
	bool batch;
	unsigned n, pending;
	double t0;
	struct jmsg *msgs;
};

struct conn {
	struct intake *in;
	struct conn *prev, *next;
	struct bufferevent *bev;
	struct event *timer;
	struct mllp f;
	char peer[ADDR_STRLEN];
	struct sockaddr_storage src;
	bool proxy_done;
	bool eof;
	struct job *head, *tail; /* frames in arrival order, answered in that order */
	unsigned jobs;
};

struct intake {
	struct event_base *base;
	const char *path;
	struct intake_config *cfg;
	struct lifecycle *life;
	struct admin *admin;
	SSL_CTX *tls;
	struct intake_listener **ls;
	size_t nls;
	struct commit *commit;
	struct deliver *deliver;
	struct store *reader; /* for /metrics and /status only */
	uint64_t depth;
	double depth_at;
	struct conn *conns;
	uint64_t nconns;
	uint64_t peak;
	bool draining;
	int status;
	char ack_prefix[11]; /* at most 10 characters */
	uint64_t ack_seq;
	char owner[128];
	struct intake_stats st;
	struct log_rate rate;
};

static void conn_close(struct conn *c, const char *reason);
static void conn_pump(struct conn *c);

/* ---- ACKs ---- */

static void base36(char *out, size_t len, uint64_t v)
{
	char tmp[16];
	size_t n = 0;

	do {
		tmp[n++] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[v % 36];
		v /= 36;
	} while (v != 0 && n < sizeof(tmp));
	if (n >= len)
		n = len - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n] = '\0';
}

/* A new ACK control ID, unique across processes and restarts: the start second and the
 * process ID, then a counter; at most 20 characters, the oldest versions' limit. */
static void intake_ack_id(struct intake *in, char out[21])
{
	char seq[10];
	size_t n = strnlen(in->ack_prefix, 10);

	base36(seq, sizeof(seq), ++in->ack_seq);
	memcpy(out, in->ack_prefix, n);
	memcpy(out + n, seq, strlen(seq) + 1);
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

static bool intake_copy_key(struct hl7_str v, char *out)
{
	if (v.len > INTAKE_KEY_MAX)
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
	if (hl7_get(m, "MSH-10", &v) != 1 || v.len == 0 || !intake_copy_key(v, j->ctrl)) {
		intake_error(e, HL7_REQUIRED_FIELD, 10, "MSH-10 control ID missing or too long");
		return -1;
	}
	if (hl7_get(m, "MSH-11.1", &v) != 1 || v.len == 0) {
		intake_error(e, HL7_REQUIRED_FIELD, 11, "MSH-11 processing ID missing");
		return -1;
	}
	if (v.len != 1 || strchr(cfg->processing_ids, v.p[0]) == NULL) {
		intake_error(e, HL7_UNSUPPORTED_PROCESSING_ID, 11,
			     "MSH-11 processing ID not accepted");
		return -1;
	}
	if (hl7_get(m, "MSH-12.1", &v) != 1 || v.len == 0) {
		intake_error(e, HL7_REQUIRED_FIELD, 12, "MSH-12 version ID missing");
		return -1;
	}
	if (v.len < 3 || v.len >= sizeof(j->version) || v.p[0] != '2' || v.p[1] != '.') {
		intake_error(e, HL7_UNSUPPORTED_VERSION, 12, "MSH-12 version is not 2.x");
		return -1;
	}
	memcpy(j->version, v.p, v.len);
	j->version[v.len] = '\0';
	hl7_get(m, "MSH-3", &v);
	if (!intake_copy_key(v, j->app)) {
		intake_error(e, HL7_DATA_TYPE, 3, "MSH-3 longer than 63 bytes");
		return -1;
	}
	hl7_get(m, "MSH-4", &v);
	if (!intake_copy_key(v, j->fac)) {
		intake_error(e, HL7_DATA_TYPE, 4, "MSH-4 longer than 63 bytes");
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
		buf_free(&jb->msgs[i].req.msg.orig_ack);
	}
	free(jb->msgs);
	if (jb->frame != NULL)
		explicit_bzero(jb->frame, jb->len);
	free(jb->frame);
	free(jb);
}

/* The ACK bytes a message answers with: the original's for a duplicate. */
static const struct buf *jmsg_ack(const struct jmsg *j)
{
	if (j->stored && j->req.rc == 0 && j->req.msg.duplicate)
		return &j->req.msg.orig_ack;
	return &j->ack;
}

/* Writes the answers of the finished frames at the head of the queue, in order. */
static void conn_answer(struct conn *c)
{
	struct intake *in = c->in;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	double now = clock_mono();

	while (c->head != NULL && c->head->pending == 0) {
		struct job *jb = c->head;
		struct buf resp = { 0 };
		unsigned nacks = 0;

		c->head = jb->next;
		if (c->head == NULL)
			c->tail = NULL;
		c->jobs--;
		if (jb->batch) {
			static const char bhs[] = "BHS|^~\\&\r";
			buf_append(&resp, bhs, sizeof(bhs) - 1);
		}
		for (unsigned i = 0; i < jb->n; i++) {
			const struct buf *a = jmsg_ack(&jb->msgs[i]);
			if (!jb->msgs[i].want || a->len == 0)
				continue;
			buf_append(&resp, buf_head(a), a->len);
			nacks++;
		}
		if (jb->batch) {
			char bts[32];
			int n = snprintf(bts, sizeof(bts), "BTS|%u\r", nacks);
			buf_append(&resp, bts, (size_t)n);
		}
		if (nacks > 0 || jb->batch) {
			struct buf framed = { 0 };
			mllp_wrap(&framed, buf_head(&resp), resp.len);
			evbuffer_add(out, buf_head(&framed), framed.len);
			buf_free(&framed);
			intake_observe(in, now - jb->t0);
		}
		buf_free(&resp);
		job_free(jb);
	}
}

/* A message's store request finished (loop thread). */
static void jmsg_done(struct commit_req *r, void *arg)
{
	struct jmsg *j = arg;
	struct job *jb = j->job;
	struct intake *in;
	struct conn *c = jb->c;

	(void)r;
	jb->pending--;
	if (c == NULL) {
		if (jb->pending == 0)
			job_free(jb);
		return;
	}
	in = c->in;
	if (j->req.rc == -1) {
		struct hl7_msg m;
		struct hl7_error e;
		char id[21];

		in->st.reasons[R_STORE]++;
		log_limited(&in->rate, LOG_WARN,
			    "event=store_failed peer=%s control_id=%s type=%s error=\"%s\"",
			    c->peer, j->ctrl, j->type, j->req.err);
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
		in->st.duplicates++;
		log_info("event=duplicate peer=%s control_id=%s type=%s id=%lld", c->peer, j->ctrl,
			 j->type, (long long)j->req.msg.id);
	} else {
		if (j->req.msg.state == STORE_RECEIVED)
			in->st.accepted++;
		else if (j->req.msg.state == STORE_IGNORED)
			in->st.ignored++;
		else
			in->st.rejected_stored++;
		log_debug("event=stored peer=%s control_id=%s type=%s id=%lld state=%s", c->peer,
			  j->ctrl, j->type, (long long)j->req.msg.id,
			  store_state_name(j->req.msg.state));
	}
	if (jb->pending == 0 && jb == c->head) {
		conn_answer(c);
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
	intake_ack_id(in, id);
	if (hl7_parse(m, data, j->raw_len, &e) == -1) {
		in->st.reasons[R_PARSE]++;
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
		intake_error(&e, HL7_UNSUPPORTED_TYPE, 9, "message type not accepted here");
		code = ACK_REJECT;
	}
	ack_build(&j->ack, m, code, code == ACK_ACCEPT ? NULL : &e, id, time(NULL));
	j->want = ack_wanted(m, code);
	j->stored = true;
	j->req.msg = (struct store_msg){
		.app = j->app,
		.facility = j->fac,
		.control_id = j->ctrl,
		.type = j->type,
		.version = j->version,
		.peer = c->peer,
		.state = act == INTAKE_ACCEPT ? STORE_RECEIVED
			 : act == INTAKE_IGNORE ? STORE_IGNORED
						: STORE_REJECTED,
		.raw = data,
		.raw_len = j->raw_len,
		.ack = buf_head(&j->ack),
		.ack_len = j->ack.len,
		.received_ms = (int64_t)time(NULL) * 1000,
	};
	j->req.done = jmsg_done;
	j->req.arg = j;
	j->job = jb;
	jb->pending++;
}

/* A complete frame (or the first max_message bytes of an oversize one). */
static void conn_frame(struct conn *c, const uint8_t *p, size_t len, bool oversize)
{
	struct intake *in = c->in;
	struct job *jb = calloc(1, sizeof(*jb));
	struct hl7_msg m;
	struct hl7_str span;
	size_t pos = 0, cap = 1;

	if (jb == NULL || (jb->frame = malloc(len ? len : 1)) == NULL)
		abort();
	memcpy(jb->frame, p, len);
	jb->len = len;
	jb->c = c;
	jb->t0 = clock_mono();
	in->st.frames++;
	hl7_msg_init(&m);
	if (oversize) {
		struct hl7_error e;
		char id[21];
		jb->n = 1;
		jb->msgs = calloc(1, sizeof(*jb->msgs));
		if (jb->msgs == NULL)
			abort();
		in->st.received++;
		in->st.reasons[R_TOO_BIG]++;
		log_limited(&in->rate, LOG_WARN,
			    "event=rejected reason=too_big peer=%s limit=%llu", c->peer,
			    (unsigned long long)in->cfg->max_message);
		intake_error(&e, HL7_INTERNAL, 0, "message larger than the receiver's limit");
		intake_ack_id(in, id);
		/* the header sits at the start: answer with what it says, if it parses */
		if (hl7_parse(&m, (const char *)p, len, &e) == 0 && !hl7_is_ack(&m)) {
			intake_error(&e, HL7_INTERNAL, 0, "message larger than the receiver's limit");
			ack_build(&jb->msgs[0].ack, &m, ACK_REJECT, &e, id, time(NULL));
			jb->msgs[0].want = ack_wanted(&m, ACK_REJECT);
		} else {
			intake_error(&e, HL7_INTERNAL, 0, "message larger than the receiver's limit");
			ack_build_unparsed(&jb->msgs[0].ack, &e, id, time(NULL));
			jb->msgs[0].want = true;
		}
		goto queue;
	}
	jb->batch = hl7_is_batch((const char *)p, len);
	jb->msgs = calloc(cap, sizeof(*jb->msgs));
	if (jb->msgs == NULL)
		abort();
	if (!jb->batch) {
		jb->n = 1;
		jb->msgs[0].raw_len = len;
	} else {
		while (hl7_batch_next((const char *)p, len, &pos, &span) == 1) {
			if (jb->n == cap) {
				cap *= 2;
				jb->msgs = realloc(jb->msgs, cap * sizeof(*jb->msgs));
				if (jb->msgs == NULL)
					abort();
				memset(jb->msgs + jb->n, 0, (cap - jb->n) * sizeof(*jb->msgs));
			}
			jb->msgs[jb->n].raw_off = (size_t)((const uint8_t *)span.p - p);
			jb->msgs[jb->n].raw_len = span.len;
			jb->n++;
		}
	}
	for (unsigned i = 0; i < jb->n; i++)
		intake_message(in, c, jb, &jb->msgs[i], &m);
queue:
	hl7_msg_free(&m);
	if (c->tail != NULL)
		c->tail->next = jb;
	else
		c->head = jb;
	c->tail = jb;
	c->jobs++;
	/* submit after queueing: done callbacks run later, in the loop */
	for (unsigned i = 0; i < jb->n; i++)
		if (jb->msgs[i].stored)
			commit_submit(in->commit, &jb->msgs[i].req);
	if (jb->pending == 0 && jb == c->head)
		conn_answer(c);
}

/* ---- connections ---- */

static void conn_arm(struct conn *c)
{
	struct timeval tv = clock_tv(mllp_partial(&c->f) ? c->in->cfg->frame_timeout
							  : c->in->cfg->idle_timeout);

	evtimer_add(c->timer, &tv);
}

static bool intake_allowed(const struct intake *in, const struct sockaddr *sa)
{
	if (in->cfg->nallow == 0)
		return true;
	for (size_t i = 0; i < in->cfg->nallow; i++)
		if (addr_cidr_match(&in->cfg->allow[i], sa))
			return true;
	return false;
}

/* Reads a PROXY header at the start of the connection. Returns 1 when done, 0 for more
 * bytes, -1 when the connection is to be closed. */
static int conn_proxy(struct conn *c, struct evbuffer *inb)
{
	size_t have = evbuffer_get_length(inb);
	size_t n = have < PROXY_V2_MAX ? have : PROXY_V2_MAX;
	struct sockaddr_storage src, dst;
	const uint8_t *p = evbuffer_pullup(inb, (ev_ssize_t)n);
	int used = proxy_decode(p, n, &src, &dst);

	if (used == 0 && n < PROXY_V2_MAX)
		return 0;
	if (used <= 0) {
		conn_close(c, "bad_proxy_header");
		return -1;
	}
	evbuffer_drain(inb, (size_t)used);
	c->proxy_done = true;
	if (src.ss_family != AF_UNSPEC) {
		c->src = src;
		addr_format((struct sockaddr *)&src, c->peer, sizeof(c->peer));
	}
	if (!intake_allowed(c->in, (struct sockaddr *)&c->src)) {
		c->in->st.conns_refused++;
		conn_close(c, "not_allowed");
		return -1;
	}
	return 1;
}

/* Feeds what was read to the framer while the connection may take more work. */
static void conn_pump(struct conn *c)
{
	struct intake *in = c->in;
	struct evbuffer *inb = bufferevent_get_input(c->bev);
	struct evbuffer *outb = bufferevent_get_output(c->bev);

	if (in->cfg->proxy && !c->proxy_done && conn_proxy(c, inb) != 1)
		return;
	while (evbuffer_get_length(inb) > 0 && c->jobs < in->cfg->max_inflight &&
	       evbuffer_get_length(outb) < INTAKE_OUT_MAX) {
		struct evbuffer_iovec v;
		size_t used = 0;
		enum mllp_result r;
		uint64_t junk = c->f.junk;

		if (evbuffer_peek(inb, INTAKE_READ_CHUNK, NULL, &v, 1) < 1)
			break;
		if (v.iov_len > INTAKE_READ_CHUNK)
			v.iov_len = INTAKE_READ_CHUNK;
		r = mllp_feed(&c->f, v.iov_base, v.iov_len, &used);
		evbuffer_drain(inb, used);
		in->st.junk_bytes += c->f.junk - junk;
		if (r != MLLP_MORE) {
			size_t len;
			const uint8_t *fr = mllp_frame(&c->f, &len);
			conn_frame(c, fr, len, r == MLLP_OVERSIZE);
		}
	}
	if (c->jobs < in->cfg->max_inflight && evbuffer_get_length(outb) < INTAKE_OUT_MAX)
		bufferevent_enable(c->bev, EV_READ);
	else
		bufferevent_disable(c->bev, EV_READ);
	if (c->eof && c->jobs == 0 && evbuffer_get_length(inb) == 0)
		conn_close(c, mllp_partial(&c->f) ? "closed_mid_frame" : "closed");
	else
		conn_arm(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	conn_pump(arg);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	/* the output drained: more may be read */
	conn_pump(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_EOF) {
		c->eof = true;
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

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->jobs > 0) { /* waiting for the store, not for the peer */
		conn_arm(c);
		return;
	}
	conn_close(c, mllp_partial(&c->f) ? "frame_timeout" : "idle_timeout");
}

static void conn_close(struct conn *c, const char *reason)
{
	struct intake *in = c->in;

	log_limited(&in->rate, strcmp(reason, "closed") == 0 ? LOG_DEBUG : LOG_INFO,
		    "event=closed peer=%s reason=%s pending=%u", c->peer, reason, c->jobs);
	for (struct job *jb = c->head, *next; jb != NULL; jb = next) {
		next = jb->next;
		jb->c = NULL;
		if (jb->pending == 0)
			job_free(jb);
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		in->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	in->nconns--;
	loop_free_event(&c->timer);
	bufferevent_free(c->bev);
	mllp_free(&c->f);
	free(c);
}

static void intake_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct intake_listener *l = arg;
	struct intake *in = l->in;

	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct conn *c;
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		char peer[ADDR_STRLEN];

		if (fd == -1) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_limited(&in->rate, LOG_WARN, "event=accept_failed error=\"%s\"",
					    strerror(errno));
			return;
		}
		addr_format((struct sockaddr *)&ss, peer, sizeof(peer));
		in->st.conns_total++;
		if (in->nconns >= in->cfg->max_connections ||
		    (!in->cfg->proxy && !intake_allowed(in, (struct sockaddr *)&ss))) {
			in->st.conns_refused++;
			log_limited(&in->rate, LOG_WARN, "event=refused peer=%s reason=%s", peer,
				    in->nconns >= in->cfg->max_connections ? "max_connections"
									   : "not_allowed");
			close(fd);
			continue;
		}
		sock_nodelay(fd);
		c = calloc(1, sizeof(*c));
		if (c == NULL)
			abort();
		c->in = in;
		c->src = ss;
		memcpy(c->peer, peer, sizeof(peer));
		mllp_init(&c->f, in->cfg->max_message);
		if (in->tls != NULL) {
			SSL *ssl = SSL_new(in->tls);
			if (ssl == NULL)
				abort();
			c->bev = bufferevent_openssl_socket_new(in->base, fd, ssl,
								BUFFEREVENT_SSL_ACCEPTING,
								BEV_OPT_CLOSE_ON_FREE);
		} else {
			c->bev = bufferevent_socket_new(in->base, fd, BEV_OPT_CLOSE_ON_FREE);
		}
		if (c->bev == NULL)
			abort();
		c->timer = evtimer_new(in->base, conn_timer_cb, c);
		bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
		bufferevent_enable(c->bev, EV_READ);
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
}

/* ---- admin ---- */

static void intake_refresh_depth(struct intake *in)
{
	double now = clock_mono();
	char err[256];

	if (in->reader == NULL || now - in->depth_at < INTAKE_DEPTH_EVERY)
		return;
	in->depth_at = now;
	if (store_queue_depth(in->reader, &in->depth, err, sizeof(err)) == -1)
		log_limited(&in->rate, LOG_WARN, "event=store_read_failed error=\"%s\"", err);
}

static void intake_metrics(struct evbuffer *out, void *arg)
{
	struct intake *in = arg;
	struct intake_stats *s = &in->st;
	struct commit_stats cs;
	struct deliver_stats ds = { 0 };
	uint64_t cum = 0;
	char labels[64];

	commit_stats(in->commit, &cs);
	if (in->deliver != NULL)
		deliver_stats(in->deliver, &ds);
	intake_refresh_depth(in);
	admin_family(out, "netwall_intake_connections_open", "gauge", "MLLP connections open");
	admin_sample(out, "netwall_intake_connections_open", "", in->nconns);
	admin_family(out, "netwall_intake_connections_total", "counter", "MLLP connections accepted");
	admin_sample(out, "netwall_intake_connections_total", "", s->conns_total);
	admin_family(out, "netwall_intake_connections_refused_total", "counter",
		     "connections refused (allowlist, max_connections)");
	admin_sample(out, "netwall_intake_connections_refused_total", "", s->conns_refused);
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
	admin_family(out, "netwall_intake_queue_depth", "gauge", "delivery jobs waiting");
	admin_sample(out, "netwall_intake_queue_depth", "", in->depth);
	admin_family(out, "netwall_intake_delivery_attempts_total", "counter",
		     "POSTs to the EMAR API");
	admin_sample(out, "netwall_intake_delivery_attempts_total", "", ds.attempts);
	admin_family(out, "netwall_intake_delivery_failures_total", "counter",
		     "delivery attempts that did not deliver");
	admin_sample(out, "netwall_intake_delivery_failures_total", "", ds.failures);
	admin_family(out, "netwall_intake_delivered_total", "counter", "messages delivered");
	admin_sample(out, "netwall_intake_delivered_total", "", ds.delivered);
	admin_family(out, "netwall_intake_dead_letters_total", "counter",
		     "messages dead-lettered");
	admin_sample(out, "netwall_intake_dead_letters_total", "", ds.dead);
}

static void intake_status(struct evbuffer *out, void *arg)
{
	struct intake *in = arg;
	struct store_count *cnt = NULL;
	char err[256];
	int n = in->reader != NULL ? store_counts(in->reader, &cnt, err, sizeof(err)) : -1;
	uint64_t by[STORE_NSTATES] = { 0 };

	intake_refresh_depth(in);
	for (int i = 0; i < n; i++)
		by[cnt[i].state] += cnt[i].n;
	free(cnt);
	evbuffer_add_printf(out, "{\"role\":\"intake\",\"store\":\"%s\",\"connections\":%llu,"
				 "\"received\":%llu,\"duplicates\":%llu,\"queue_depth\":%llu,"
				 "\"states\":{",
			    store_kind(in->reader), (unsigned long long)in->nconns,
			    (unsigned long long)in->st.received,
			    (unsigned long long)in->st.duplicates, (unsigned long long)in->depth);
	for (int i = 0; i < STORE_NSTATES; i++)
		evbuffer_add_printf(out, "%s\"%s\":%llu", i ? "," : "", store_state_name(i),
				    (unsigned long long)by[i]);
	evbuffer_add_printf(out, "}}\n");
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
	.metrics = intake_metrics,
	.status = intake_status,
	.health = intake_health,
};

/* ---- life ---- */

static void intake_listeners_free(struct intake *in)
{
	for (size_t i = 0; i < in->nls; i++) {
		loop_free_event(&in->ls[i]->ev);
		close(in->ls[i]->fd);
		free(in->ls[i]);
	}
	free(in->ls);
	in->ls = NULL;
	in->nls = 0;
}

static void intake_reload(void *arg)
{
	struct intake *in = arg;
	char *msgs = NULL;
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
	memcpy(in->cfg->processing_ids, cfg->processing_ids, sizeof(cfg->processing_ids));
	in->cfg->nallow = cfg->nallow;
	memcpy(in->cfg->allow, cfg->allow, sizeof(cfg->allow));
	in->cfg->log_level = cfg->log_level;
	log_set_level(cfg->log_level);
	intake_config_free(cfg);
	log_info("event=reloaded file=%s rules=%zu", in->path, in->cfg->nrules);
}

static double intake_drain(void *arg)
{
	struct intake *in = arg;

	in->draining = true;
	intake_listeners_free(in);
	log_info("event=draining connections=%llu", (unsigned long long)in->nconns);
	return in->cfg->drain_timeout;
}

static bool intake_idle(void *arg)
{
	struct intake *in = arg;

	for (struct conn *c = in->conns; c != NULL; c = c->next)
		if (c->jobs > 0)
			return false;
	return commit_pending(in->commit) == 0;
}

static void intake_housekeeping(void *arg)
{
	struct intake *in = arg;

	for (struct conn *c = in->conns; c != NULL; c = c->next)
		if (c->jobs == 0)
			mllp_trim(&c->f);
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
	char err[300], a[ADDR_STRLEN];

	in->ls = calloc(in->cfg->nlisten, sizeof(*in->ls));
	if (in->ls == NULL)
		abort();
	for (size_t i = 0; i < in->cfg->nlisten; i++) {
		struct intake_listener *l = calloc(1, sizeof(*l));
		if (l == NULL)
			abort();
		l->in = in;
		l->a = in->cfg->listen[i];
		addr_format((struct sockaddr *)&l->a.ss, a, sizeof(a));
		l->fd = sock_listen(&l->a, err, sizeof(err));
		if (l->fd == -1) {
			log_error("event=listen_failed addr=%s error=\"%s\"", a, err);
			free(l);
			return -1;
		}
		l->ev = event_new(in->base, l->fd, EV_READ | EV_PERSIST, intake_accept_cb, l);
		event_add(l->ev, NULL);
		in->ls[in->nls++] = l;
		log_info("event=listening what=mllp addr=%s tls=%s proxy=%s", a,
			 in->tls ? "on" : "off", in->cfg->proxy ? "on" : "off");
	}
	return 0;
}

struct intake *intake_new(struct event_base *base, const char *path, struct intake_config *cfg)
{
	struct intake *in = calloc(1, sizeof(*in));
	char err[512], host[64] = "host", t[16], p[8];
	struct deliver_conf dc;

	if (in == NULL)
		abort();
	in->base = base;
	in->path = path;
	in->cfg = cfg;
	base36(t, sizeof(t), (uint64_t)time(NULL));
	base36(p, sizeof(p), (uint64_t)getpid());
	snprintf(in->ack_prefix, sizeof(in->ack_prefix), "%.6s%.4s", t, p);
	gethostname(host, sizeof(host) - 1);
	snprintf(in->owner, sizeof(in->owner), "%s:%d:%s", host, (int)getpid(), t);
	if (cfg->tls && (in->tls = intake_tls(cfg)) == NULL)
		goto fail;
	in->reader = store_open(cfg->store, err, sizeof(err));
	if (in->reader == NULL) {
		log_error("event=store_failed store=%s error=\"%s\"",
			  strncmp(cfg->store, "postgres", 8) == 0 ? "postgresql" : cfg->store, err);
		goto fail;
	}
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
			.poll = cfg->poll,
			.owner = in->owner,
		};
		in->deliver = deliver_new(&dc, err, sizeof(err));
		if (in->deliver == NULL) {
			log_error("event=deliver_failed error=\"%s\"", err);
			goto fail;
		}
	}
	if (intake_listen(in) == -1)
		goto fail;
	if (cfg->admin_on) {
		in->admin = admin_new(base, &cfg->admin, &intake_admin_ops, in, err, sizeof(err));
		if (in->admin == NULL) {
			log_error("event=admin_failed error=\"%s\"", err);
			goto fail;
		}
	}
	in->life = lifecycle_new(base, &intake_lifecycle_ops, in);
	log_info("event=started store=%s deliver=%s rules=%zu", store_kind(in->reader),
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
	while (in->conns != NULL)
		conn_close(in->conns, "shutdown");
	commit_free(in->commit); /* runs the last done callbacks: their jobs are orphans now */
	if (in->deliver != NULL)
		deliver_free(in->deliver, 2.0);
	store_close(in->reader);
	admin_free(in->admin);
	lifecycle_free(in->life);
	SSL_CTX_free(in->tls);
	intake_config_free(in->cfg);
	free(in);
}
