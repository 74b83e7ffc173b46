/* The intake's admin endpoints: Prometheus /metrics, the /status JSON, the HTML status
 * page (tiles, the per-minute chart, the last errors) and the health check. Reads the
 * intake's counters; changes nothing. */
#include "intake/status.h"

#include <event2/buffer.h>
#include <stdio.h>

#include "core/clock.h"
#include "core/page.h"
#include "intake/state.h"
#include "intake/store.h"

/* /metrics: connections and memory. */
static void intake_metrics_conns(struct evbuffer *out, const struct intake *in)
{
	const struct intake_stats *s = &in->st;

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
}

/* /metrics: frames and messages, by what became of them. */
static void intake_metrics_messages(struct evbuffer *out, const struct intake_stats *s)
{
	char labels[64];

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
}

/* /metrics: the ACK latency histogram. */
static void intake_metrics_latency(struct evbuffer *out, const struct intake_stats *s)
{
	uint64_t cum = 0;

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
}

/* /metrics: the store (committer) and the delivery worker. */
static void intake_metrics_store(struct evbuffer *out, const struct intake *in)
{
	struct commit_stats cs;
	struct commit_snapshot snap;
	struct deliver_stats ds = { 0 };
	char labels[64];

	commit_stats(in->commit, &cs);
	commit_snapshot(in->commit, true, &snap);
	if (in->deliver != NULL)
		deliver_stats(in->deliver, &ds);
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

static void intake_metrics(struct evbuffer *out, void *arg)
{
	const struct intake *in = arg;

	intake_metrics_conns(out, in);
	intake_metrics_messages(out, &in->st);
	intake_metrics_latency(out, &in->st);
	intake_metrics_store(out, in);
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

const struct admin_ops status_admin_ops = {
	.role = "intake",
	.page = intake_page,
	.metrics = intake_metrics,
	.status = intake_status,
	.health = intake_health,
};
