/* The intake's admin views: its metric tables (rendered by core/metrics.c as /metrics, the
 * "metrics" of /status and nothing on the page), the rest of /status, the HTML status page
 * (tiles, the per-minute chart, the last errors) and the health check. Reads the intake's
 * counters; changes nothing. */
#include "intake/status.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/page.h"
#include "intake/browse.h"
#include "intake/state.h"
#include "intake/store.h"

/* One rendering's figures, in metrics_scratch memory: the loop's own counters copied as
 * they are, the committer's and the delivery worker's taken once under their locks. */
struct status_snap {
	uint64_t conns_open, held, budget;
	uint64_t oldest_age;    /* seconds the oldest undelivered message has waited, 0: none */
	uint64_t last_received; /* Unix seconds of the newest message handed to the store */
	struct intake_stats st;
	struct commit_stats cs;
	struct commit_snapshot store;
	struct deliver_stats ds;
};

/* Stored messages by the state they were stored in (counters of their own, not an array). */
static void status_read_stored(struct metric_out *o, void *base)
{
	const struct status_snap *s = base;

	metric_emit(o, "received", s->st.accepted);
	metric_emit(o, "ignored", s->st.ignored);
	metric_emit(o, "rejected", s->st.rejected_stored);
}

static void status_read_ack_seconds(struct metric_out *o, void *base)
{
	const struct status_snap *s = base;

	metric_emit_hist(o, intake_buckets, s->st.hist, INTAKE_NBUCKETS, s->st.hist_sum);
}

/* Messages in the store by state: no samples until the committer has counted once. */
static void status_read_states(struct metric_out *o, void *base)
{
	const struct status_snap *s = base;

	for (int i = 0; i < STORE_NSTATES && s->store.counts_ok; i++)
		metric_emit(o, store_state_name(i), s->store.by_state[i]);
}

#define SNAP struct status_snap

/* Connections and memory. */
static const struct metric status_conn_metrics[] = {
	{ "netwall_intake_connections_open", METRIC_GAUGE, "MLLP connections open", NULL,
	  METRIC_FIELD(SNAP, conns_open) },
	{ "netwall_intake_connections_total", METRIC_COUNTER, "MLLP connections accepted", NULL,
	  METRIC_FIELD(SNAP, st.conns_total) },
	{ "netwall_intake_connections_refused_total", METRIC_COUNTER,
	  "connections refused (allowlist, max_connections)", NULL,
	  METRIC_FIELD(SNAP, st.conns_refused) },
	{ "netwall_intake_memory_held_bytes", METRIC_GAUGE,
	  "bytes peers make the intake hold (partial frames, unfed input, messages awaiting "
	  "answers, unread ACKs), counted against memory_budget",
	  NULL, METRIC_FIELD(SNAP, held) },
	{ "netwall_intake_stalled_frames_total", METRIC_COUNTER,
	  "partial frames closed while reading was stopped at memory_budget, their senders "
	  "silent",
	  NULL, METRIC_FIELD(SNAP, st.stalled) },
	{ "netwall_intake_memory_budget_bytes", METRIC_GAUGE, "memory_budget", NULL,
	  METRIC_FIELD(SNAP, budget) },
	{ "netwall_intake_memory_waits_total", METRIC_COUNTER,
	  "times reading stopped at memory_budget (all connections, or one whose next bytes "
	  "did not fit)",
	  NULL, METRIC_FIELD(SNAP, st.memory_waits) },
};

/* Frames and messages, by what became of them, and the ACK latency. */
static const struct metric status_message_metrics[] = {
	{ "netwall_intake_frames_total", METRIC_COUNTER, "MLLP frames received", NULL,
	  METRIC_FIELD(SNAP, st.frames) },
	{ "netwall_intake_junk_bytes_total", METRIC_COUNTER, "bytes skipped between MLLP frames",
	  NULL, METRIC_FIELD(SNAP, st.junk_bytes) },
	{ "netwall_intake_messages_received_total", METRIC_COUNTER, "HL7 messages received",
	  NULL, METRIC_FIELD(SNAP, st.received) },
	{ "netwall_intake_messages_stored_total", METRIC_COUNTER,
	  "messages stored, by the state they were stored in", "state",
	  METRIC_READ(status_read_stored) },
	{ "netwall_intake_messages_accepted_total", METRIC_COUNTER,
	  "messages accepted for delivery (stored, acknowledged AA/CA)", NULL,
	  METRIC_FIELD(SNAP, st.accepted) },
	{ "netwall_intake_duplicates_total", METRIC_COUNTER,
	  "messages already stored, answered with the original ACK", NULL,
	  METRIC_FIELD(SNAP, st.duplicates) },
	{ "netwall_intake_reused_control_id_total", METRIC_COUNTER,
	  "messages whose key (MSH-3, MSH-4, MSH-10) was stored for a different message: "
	  "stored flagged, or answered AR 205",
	  NULL, METRIC_FIELD(SNAP, st.reused) },
	{ "netwall_intake_rejected_total", METRIC_COUNTER,
	  "messages answered with an error or not answered, by reason", "reason",
	  METRIC_FIELDS(SNAP, st.reasons, intake_reason_names, R_NREASONS) },
	{ "netwall_intake_warnings_total", METRIC_COUNTER,
	  "messages stored that were read leniently, by the tolerance applied (a byte order "
	  "mark, MSH-11 or MSH-12 missing, segments not ended by CR alone)",
	  "kind", METRIC_FIELDS(SNAP, st.warnings, intake_warning_names, W_NWARNINGS) },
	{ "netwall_intake_ack_seconds", METRIC_HISTOGRAM,
	  "time from a complete frame to its ACK being queued", NULL,
	  METRIC_READ(status_read_ack_seconds) },
};

/* The store (committer) and the delivery worker. */
static const struct metric status_store_metrics[] = {
	{ "netwall_intake_keys_pending", METRIC_GAUGE,
	  "search keys committed and not yet merged into the sorted index (read from both)",
	  NULL, METRIC_FIELD(SNAP, cs.keys_pending) },
	{ "netwall_intake_keys_merged_total", METRIC_COUNTER,
	  "search keys merged into the sorted index", NULL, METRIC_FIELD(SNAP, cs.keys_merged) },
	{ "netwall_intake_key_merge_failures_total", METRIC_COUNTER,
	  "merges of pending search keys that failed (retried)", NULL,
	  METRIC_FIELD(SNAP, cs.merge_failures) },
	{ "netwall_intake_store_transactions_total", METRIC_COUNTER,
	  "group-committed store transactions", NULL, METRIC_FIELD(SNAP, cs.transactions) },
	{ "netwall_intake_store_failures_total", METRIC_COUNTER,
	  "store transactions that failed (answered AE)", NULL, METRIC_FIELD(SNAP, cs.failures) },
	{ "netwall_intake_store_batch_max", METRIC_GAUGE, "most messages in one transaction",
	  NULL, METRIC_FIELD(SNAP, cs.max_batch) },
	{ "netwall_intake_messages", METRIC_GAUGE,
	  "messages in the store, by state (counted by the committer)", "state",
	  METRIC_READ(status_read_states) },
	{ "netwall_intake_queue_depth", METRIC_GAUGE, "delivery jobs waiting", NULL,
	  METRIC_FIELD(SNAP, store.depth) },
	{ "netwall_intake_oldest_undelivered_seconds", METRIC_GAUGE,
	  "age of the oldest message waiting for delivery (0: none)", NULL,
	  METRIC_FIELD(SNAP, oldest_age) },
	{ "netwall_intake_last_received_timestamp_seconds", METRIC_GAUGE,
	  "Unix time the newest message handed to the store was received (the start until one "
	  "is)",
	  NULL, METRIC_FIELD(SNAP, last_received) },
	{ "netwall_intake_delivery_attempts_total", METRIC_COUNTER, "POSTs to the EMAR API", NULL,
	  METRIC_FIELD(SNAP, ds.attempts) },
	{ "netwall_intake_delivery_failures_total", METRIC_COUNTER,
	  "delivery attempts that did not deliver", NULL, METRIC_FIELD(SNAP, ds.failures) },
	{ "netwall_intake_delivered_total", METRIC_COUNTER, "messages delivered", NULL,
	  METRIC_FIELD(SNAP, ds.delivered) },
	{ "netwall_intake_dead_letters_total", METRIC_COUNTER, "messages dead-lettered", NULL,
	  METRIC_FIELD(SNAP, ds.dead) },
	{ "netwall_intake_deliveries_in_flight", METRIC_GAUGE,
	  "Deliveries posted and not yet answered", NULL, METRIC_FIELD(SNAP, ds.in_flight) },
	{ "netwall_intake_delivery_body_bytes", METRIC_GAUGE,
	  "Bytes of request bodies in flight (bounded by a quarter of memory_budget)", NULL,
	  METRIC_FIELD(SNAP, ds.body_bytes) },
};

#undef SNAP

#define STATUS_NMETRICS(t) (sizeof(t) / sizeof(*(t)))

/* The registry for one request: the figures taken once, the tables over them. */
static void status_register_metrics(struct metrics *m, void *arg)
{
	struct intake *in = arg;
	struct status_snap *s = metrics_scratch(m, sizeof(*s));
	int64_t now_ms = clock_wall_ms();

	s->conns_open = in->nconns;
	s->held = in->held;
	s->budget = in->cfg->memory_budget;
	s->st = in->st;
	commit_stats(in->commit, &s->cs);
	commit_snapshot(in->commit, true, &s->store);
	if (s->store.depth_ok && s->store.oldest_ms > 0 && now_ms > s->store.oldest_ms)
		s->oldest_age = (uint64_t)(now_ms - s->store.oldest_ms) / 1000;
	s->last_received = (uint64_t)s->cs.last_received_ms / 1000;
	if (in->deliver != NULL)
		deliver_stats(in->deliver, &s->ds);
	metrics_add(m, status_conn_metrics, STATUS_NMETRICS(status_conn_metrics), s);
	metrics_add(m, status_message_metrics, STATUS_NMETRICS(status_message_metrics), s);
	metrics_add(m, status_store_metrics, STATUS_NMETRICS(status_store_metrics), s);
	prune_metrics_add(in->prune, m);
}

/* /status's own keys: the store, the connections, the counts by state and their age
 * (-1 until the committer has counted once), to a tenth of a second. */
static json_t *status_json(void *arg)
{
	struct intake *in = arg;
	struct commit_snapshot snap;
	json_t *states = json_object();

	commit_snapshot(in->commit, true, &snap);
	for (int i = 0; i < STORE_NSTATES; i++)
		json_object_set_new(states, store_state_name(i),
				    json_integer((json_int_t)snap.by_state[i]));
	return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:o,s:f}", "store", in->store_kind,
			 "connections", (json_int_t)in->nconns, "received",
			 (json_int_t)in->st.received, "duplicates", (json_int_t)in->st.duplicates,
			 "reused_control_id", (json_int_t)in->st.reused, "queue_depth",
			 (json_int_t)snap.depth, "states", states, "counts_age_s",
			 snap.counts_ok ? round((clock_mono() - snap.counts_at) * 10) / 10 : -1.0);
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

static void intake_page(struct evbuffer *out, const struct metrics *m, void *arg)
{
	struct intake *in = arg;
	const struct intake_stats *s = &in->st;
	struct commit_snapshot snap;
	struct deliver_stats ds = { 0 };
	uint64_t rejected = s->rejected_stored;
	char p50[24], p99[24];

	(void)m; /* its tiles keep the ids and labels the page always had */
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
	page_tile(out, "warnings", "read with warnings", s->warned);
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

const struct admin_ops status_admin_ops = {
	.role = "intake",
	.register_metrics = status_register_metrics,
	.page_body = intake_page,
	.status_json = status_json,
	.health = intake_health,
	.route = browse_route,
};
