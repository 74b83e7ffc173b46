/* The intake's pipeline: a complete MLLP frame becomes a job, its messages are parsed
 * (leniently, each tolerance a warning stored with the message, unless strict), their
 * headers (MSH-9..12, the dedupe key MSH-3, MSH-4, MSH-10) validated and routed, their
 * ACKs built (a refusal names its message whenever its header splits at MSH-1) and their
 * store requests submitted to the committer; when the store has answered for every
 * message, the frames are answered in the order they came. */
#include "intake/pipeline.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "hl7/ack.h"
#include "hl7/hl7.h"
#include "hl7/mllp.h"
#include "intake/budget.h"
#include "intake/store.h"

/* Writes v in base 36 as exactly width characters (v modulo 36^width, zero-padded). */
void pipeline_base36(char *out, size_t width, uint64_t v)
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
	pipeline_base36(seq, w, v);
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

/* MSH-9 type and MSH-10 control ID, the fields the intake cannot work without: present
 * and sane. Fills the type and control ID of j. Returns 0, or -1 with e filled. */
static int intake_validate_type(const struct hl7_msg *m, struct jmsg *j, char trigger[4],
				struct hl7_error *e)
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
	return 0;
}

/* MSH-11 processing ID, one of processing_ids, and MSH-12 version, 2.x. Either missing is
 * read as Mirth and HAPI read it (MSH-11 as P, MSH-12 as unknown: stored empty, and the
 * ACK echoes the empty field) and noted in j->warn; strict refuses it as before. Fills
 * the version of j. Returns 0, or -1 with e filled. */
static int intake_validate_ids(const struct intake_config *cfg, const struct hl7_msg *m,
			       struct jmsg *j, struct hl7_error *e)
{
	struct hl7_str v = { 0 };
	char pid = 'P';

	if (hl7_get(m, "MSH-11.1", &v) == 1 && v.len > 0) {
		pid = v.len == 1 ? v.p[0] : '\0';
	} else if (cfg->strict) {
		intake_error(e, HL7_REQUIRED_FIELD, 11, "MSH-11 processing ID missing");
		return -1;
	} else {
		j->warn |= 1u << W_MSH11;
	}
	if (pid == '\0' || strchr(cfg->processing_ids, pid) == NULL) {
		intake_error(e, HL7_UNSUPPORTED_PROCESSING_ID, 11,
			     "MSH-11 processing ID not accepted");
		return -1;
	}
	j->version[0] = '\0';
	if (hl7_get(m, "MSH-12.1", &v) != 1 || v.len == 0) {
		if (cfg->strict) {
			intake_error(e, HL7_REQUIRED_FIELD, 12, "MSH-12 version ID missing");
			return -1;
		}
		j->warn |= 1u << W_MSH12;
		return 0;
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
	return 0;
}

/* The header as the intake needs it: MSH-9, MSH-10, MSH-11 and MSH-12 (see above), and the
 * rest of the dedupe key, MSH-3 and MSH-4 (may be empty). Fills the key and type fields of
 * j. Returns 0, or -1 with e filled. */
static int intake_validate(const struct intake_config *cfg, const struct hl7_msg *m,
			   struct jmsg *j, char trigger[4], struct hl7_error *e)
{
	struct hl7_str v = { 0 };

	if (intake_validate_type(m, j, trigger, e) == -1 ||
	    intake_validate_ids(cfg, m, j, e) == -1)
		return -1;
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

/* The warnings the parser's quirks make: a byte order mark; segments ended by LF, by CR LF,
 * or by more than one kind of ending (CR alone is the standard's). */
static unsigned intake_quirk_warnings(unsigned q)
{
	unsigned w = 0, ends = q & (HL7_QUIRK_CR | HL7_QUIRK_LF | HL7_QUIRK_CRLF);

	if (q & HL7_QUIRK_BOM)
		w |= 1u << W_BOM;
	if ((ends & (ends - 1)) != 0)
		w |= 1u << W_MIXED;
	else if (ends == HL7_QUIRK_LF)
		w |= 1u << W_LF;
	else if (ends == HL7_QUIRK_CRLF)
		w |= 1u << W_CRLF;
	return w;
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

void pipeline_job_free(struct job *jb)
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
		pipeline_job_free(jb);
	}
	if (direct && evbuffer_get_length(out) > 0) {
		evbuffer_write(out, bufferevent_getfd(c->bev));
		if (evbuffer_get_length(out) > 0) /* the rest, or all of it after an error */
			evbuffer_add_buffer(queued, out);
	}
	budget_account(c);
}

/* The store failed for j: nothing was stored, its ACK becomes an AE (or CE) so that the
 * sender retries. */
static void jmsg_store_failed(struct intake *in, struct conn *c, struct job *jb, struct jmsg *j)
{
	char ctrl[LOG_VALUE_SIZE(INTAKE_KEY_MAX)], type[LOG_VALUE_SIZE(sizeof(j->type))];
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
}

/* j was already stored: it is answered with the stored ACK. */
static void jmsg_duplicate(struct intake *in, struct conn *c, struct jmsg *j)
{
	char ctrl[LOG_VALUE_SIZE(INTAKE_KEY_MAX)], type[LOG_VALUE_SIZE(sizeof(j->type))];
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
}

/* j's key was stored for another message: this one is kept too (or refused AR 205),
 * never taken for a duplicate. The sender and control ID only: the two messages' content
 * is never logged. */
static void jmsg_reused(struct intake *in, struct conn *c, struct jmsg *j, bool refused)
{
	char ctrl[LOG_VALUE_SIZE(INTAKE_KEY_MAX)];
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

/* j was stored as a new message: counted by the state it was stored in. */
static void jmsg_stored(struct intake *in, struct conn *c, struct jmsg *j)
{
	char ctrl[LOG_VALUE_SIZE(INTAKE_KEY_MAX)], type[LOG_VALUE_SIZE(sizeof(j->type))];
	bool refused = j->req.msg.reused && j->req.msg.reuse_ack != NULL;

	if (j->req.msg.reused)
		jmsg_reused(in, c, j, refused);
	if (refused)
		in->st.rejected_stored++;
	else if (j->req.msg.state == STORE_RECEIVED)
		in->st.accepted++;
	else if (j->req.msg.state == STORE_IGNORED)
		in->st.ignored++;
	else
		in->st.rejected_stored++;
	log_debug("event=stored peer=%s control_id=%s type=%s id=%lld state=%s warnings=%s",
		  c->peer, log_value(ctrl, sizeof(ctrl), j->ctrl),
		  log_value(type, sizeof(type), j->type), (long long)j->req.msg.id,
		  store_state_name(refused ? STORE_REJECTED : j->req.msg.state),
		  j->warn != 0 ? j->warnings : "");
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
		if (jb->pending == 0) {
			in = jb->in;
			in->held -= jb->held;
			in->orphans_held -= jb->held;
			pipeline_job_free(jb);
			budget_released(in);
		}
		return;
	}
	in = c->in;
	if (j->req.rc == -1)
		jmsg_store_failed(in, c, jb, j);
	else if (j->req.msg.duplicate)
		jmsg_duplicate(in, c, j);
	else
		jmsg_stored(in, c, j);
	if (jb->pending == 0 && jb == c->head) {
		conn_answer(c);
		if (c->closing)
			in->up->maybe_close(c);
		else
			in->up->pump(c);
	}
}

/* j's warnings as the store keeps them (their names, comma-separated), counted by kind;
 * NULL for none. The raw bytes stay as sent: the warnings say what was read leniently. */
static const char *jmsg_warnings(struct intake *in, struct jmsg *j)
{
	size_t n = 0;

	if (j->warn == 0)
		return NULL;
	in->st.warned++;
	for (unsigned k = 0; k < W_NWARNINGS; k++) {
		const char *name = intake_warning_names[k];
		size_t len = strlen(name);

		if ((j->warn & 1u << k) == 0)
			continue;
		in->st.warnings[k]++;
		if (n + (n > 0) + len >= sizeof(j->warnings))
			break; /* cannot happen: every name fits (INTAKE_WARNINGS_LEN) */
		if (n > 0)
			j->warnings[n++] = ',';
		memcpy(j->warnings + n, name, len + 1);
		n += len;
	}
	return j->warnings;
}

/* Fills j's store request (its ACK built, the message parsed and routed act): the key,
 * the raw bytes in its job's frame, the ACKs to store with it. */
static void jmsg_request(struct conn *c, struct job *jb, struct jmsg *j, const char *data,
			 enum intake_action act)
{
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
		.warnings = jmsg_warnings(c->in, j),
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

/* Answers bytes hl7_parse refused, or with strict a message it read only past a byte order
 * mark: an AR (CR in enhanced mode) that names the message whenever its header splits at
 * MSH-1 (hl7_parse_header: MSA-2, MSH-3..6, MSH-11, MSH-12, as for any other AR), else one
 * with default delimiters; nothing for what reads as an acknowledgement. */
static void intake_unparsed(struct intake *in, struct conn *c, struct jmsg *j,
			    struct hl7_msg *m, const struct hl7_error *e, const char *id)
{
	const char *data = (const char *)j->job->frame + j->raw_off;
	char ctrl[LOG_VALUE_SIZE(INTAKE_KEY_MAX)];
	struct hl7_str v;
	bool named = hl7_parse_header(m, data, j->raw_len) == 0;

	/* the control ID for the log and the page only when it is a sane key */
	if (named && hl7_get(m, "MSH-10", &v) == 1 && !intake_copy_key(v, j->ctrl))
		j->ctrl[0] = '\0';
	in->st.reasons[R_PARSE]++;
	intake_note(in, R_PARSE, j->ctrl, c->peer, e->text);
	log_limited(&in->rate, LOG_WARN,
		    "event=rejected reason=parse peer=%s size=%zu code=%d control_id=%s "
		    "error=\"%s\"",
		    c->peer, j->raw_len, (int)e->code, log_value(ctrl, sizeof(ctrl), j->ctrl),
		    e->text);
	if (named) {
		/* -1: an acknowledgement, which is never answered */
		j->want = ack_build(&j->ack, m, ACK_REJECT, e, id, time(NULL)) == 0;
	} else {
		ack_build_unparsed(&j->ack, e, id, time(NULL));
		j->want = true;
	}
}

/* Parses j into m and notes what the parse read leniently. Returns 0, or -1 when j was
 * answered as unparsable (with strict, also a message behind a byte order mark, with the
 * error it got before the mark was skipped). */
static int intake_parse(struct intake *in, struct conn *c, struct jmsg *j, struct hl7_msg *m,
			const char *id)
{
	const char *data = (const char *)j->job->frame + j->raw_off;
	struct hl7_error e;

	if (hl7_parse(m, data, j->raw_len, &e) == -1) {
		intake_unparsed(in, c, j, m, &e, id);
		return -1;
	}
	if (in->cfg->strict && (m->quirks & HL7_QUIRK_BOM)) {
		intake_error(&e, HL7_SEGMENT_SEQUENCE, 0, "message does not start with MSH");
		e.seq = 1;
		intake_unparsed(in, c, j, m, &e, id);
		return -1;
	}
	j->warn = intake_quirk_warnings(m->quirks);
	return 0;
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
	if (intake_parse(in, c, j, m, id) == -1)
		return;
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
	jmsg_request(c, jb, j, data, act);
}

/* Answers a frame that cannot be taken as it is (over the size limit, a batch over
 * INTAKE_BATCH_MAX) with one AR built from its (first message's) header, read whole or
 * split at MSH-1 (hl7_parse_header), never for an ACK. */
static void conn_refuse_frame(struct conn *c, struct job *jb, struct hl7_msg *m,
			      const char *why)
{
	struct intake *in = c->in;
	const char *p = (const char *)jb->frame;
	struct hl7_str first = { p, jb->len };
	struct hl7_error e;
	size_t pos = 0;
	char id[21];
	bool parsed;

	jb->batch = false;
	jb->n = 1;
	jb->msgs = xcalloc(1, sizeof(*jb->msgs));
	in->st.received++;
	minutes_add(&in->per_minute, clock_wall(), 1);
	intake_ack_id(in, id);
	if (hl7_is_batch(p, jb->len))
		hl7_batch_next(p, jb->len, &pos, &first);
	parsed = hl7_parse(m, first.p, first.len, &e) == 0;
	intake_error(&e, HL7_INTERNAL, 0, why);
	if (parsed || hl7_parse_header(m, first.p, first.len) == 0) {
		if (hl7_is_ack(m))
			return;
		ack_build(&jb->msgs[0].ack, m, ACK_REJECT, &e, id, time(NULL));
		/* what hl7_parse refused is answered whatever its MSH-15 says, as below */
		jb->msgs[0].want = !parsed || ack_wanted(m, ACK_REJECT);
	} else {
		ack_build_unparsed(&jb->msgs[0].ack, &e, id, time(NULL));
		jb->msgs[0].want = true;
	}
}

/* A complete frame (or the first max_message bytes of an oversize one). */
void pipeline_frame(struct conn *c, const uint8_t *p, size_t len, bool oversize)
{
	struct intake *in = c->in;
	struct job *jb = xcalloc(1, sizeof(*jb));
	struct hl7_msg m;
	struct hl7_str span;
	size_t pos = 0, n = 0;

	jb->frame = xmalloc(len ? len : 1);
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
