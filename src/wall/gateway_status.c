/* The gateway's admin views: its metric tables (tunnels up, visitors per service, refusals,
 * with the streams', tunnels' and budget's tables), its part of /status (tunnels and
 * services), the status page's body (tiles, the services, tunnels and refused sources
 * tables, the visitors chart) and /healthz. Read-only over struct gateway. */
#include "wall/gateway_status.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/admin.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "core/page.h"
#include "wall/budget.h"
#include "wall/gateway_route.h"
#include "wall/gateway_state.h"
#include "wall/stream.h"
#include "wall/tunnel.h"

/* The reason label of netwall_rejected_total, in the order of enum gw_reject. */
static const char *const gw_reject_reasons[GW_REJ_COUNT] = { "source", "limit", "per_source",
							      "first_byte", "no_agent" };

/* ---- metrics ---- */

static uint64_t gws_tunnels_up_count(const struct gateway *gw)
{
	uint64_t up = 0;

	for (size_t i = 0; i < gw->ntunnels; i++)
		up += tunnel_is_up(gw->tunnels[i]);
	return up;
}

static void gws_tunnels_up(struct metric_out *o, void *base)
{
	metric_emit(o, NULL, gws_tunnels_up_count(base));
}

/* One sample per service of the uint64_t at off in struct gw_service. */
static void gws_per_service(struct metric_out *o, const struct gateway *gw, size_t off)
{
	for (size_t i = 0; i < gw->nsvcs; i++) {
		const struct gw_service *s = gw->svcs[i];
		metric_emit(o, s->cfg.name, *(const uint64_t *)((const char *)s + off));
	}
}

static void gws_connections(struct metric_out *o, void *base)
{
	gws_per_service(o, base, offsetof(struct gw_service, connections));
}

static void gws_open(struct metric_out *o, void *base)
{
	gws_per_service(o, base, offsetof(struct gw_service, open));
}

static void gws_bytes_in(struct metric_out *o, void *base)
{
	gws_per_service(o, base, offsetof(struct gw_service, bytes[0]));
}

static void gws_bytes_out(struct metric_out *o, void *base)
{
	gws_per_service(o, base, offsetof(struct gw_service, bytes[1]));
}

static void gws_rate_limited(struct metric_out *o, void *base)
{
	gws_per_service(o, base, offsetof(struct gw_service, rate.throttled));
}

static void gws_rejected(struct metric_out *o, void *base)
{
	const struct gateway *gw = base;

	for (size_t i = 0; i < gw->nsvcs; i++)
		for (size_t r = 0; r < GW_REJ_COUNT; r++)
			metric_emit2(o, gw->svcs[i]->cfg.name, gw_reject_reasons[r],
				     gw->svcs[i]->rejected[r]);
}

static const struct metric gws_metrics[] = {
	{ "netwall_tunnels_up", METRIC_GAUGE, "Agent tunnels connected and serving.", NULL,
	  METRIC_READ(gws_tunnels_up) },
	{ "netwall_connections_total", METRIC_COUNTER, "Visitors accepted per service.",
	  "service", METRIC_READ(gws_connections) },
	{ "netwall_connections_open", METRIC_GAUGE, "Visitors open per service.", "service",
	  METRIC_READ(gws_open) },
	{ "netwall_service_bytes_in_total", METRIC_COUNTER,
	  "Bytes read from visitors, per service.", "service", METRIC_READ(gws_bytes_in) },
	{ "netwall_service_bytes_out_total", METRIC_COUNTER,
	  "Bytes written to visitors, per service.", "service", METRIC_READ(gws_bytes_out) },
	{ "netwall_service_rate_limited_total", METRIC_COUNTER,
	  "Times a visitor's stream waited for rate_limit or visitor_rate_limit, per service.",
	  "service", METRIC_READ(gws_rate_limited) },
	{ "netwall_rejected_total", METRIC_COUNTER, "Visitors refused, by service and reason.",
	  "service", METRIC_READ(gws_rejected), .label2 = "reason" },
	{ "netwall_gateway_visitors_unrouted_total", METRIC_COUNTER,
	  "Visitors of a shared address that no service took, by reason.", "reason",
	  METRIC_FIELDS(struct gateway, unrouted, gateway_route_reasons, GW_UNR_COUNT) },
};

static void gws_register_metrics(struct metrics *m, void *arg)
{
	metrics_add(m, gws_metrics, sizeof(gws_metrics) / sizeof(gws_metrics[0]), arg);
	tstream_register_metrics(m, TSTREAM_VISITORS);
	tunnel_register_metrics(m);
	budget_register_metrics(m);
}

/* ---- /status ---- */

static json_t *gws_status_json(void *arg)
{
	const struct gateway *gw = arg;
	json_t *tunnels = json_array(), *services = json_array();

	for (size_t i = 0; i < gw->ntunnels; i++) {
		const struct tunnel *t = gw->tunnels[i];
		json_array_append_new(tunnels, json_pack("{s:s,s:s,s:i,s:b,s:I}", "agent",
							 tunnel_peer(t), "peer", tunnel_peer_addr(t),
							 "slot", (int)tunnel_slot(t), "up",
							 tunnel_is_up(t), "streams",
							 (json_int_t)tunnel_nstreams(t)));
	}
	for (size_t i = 0; i < gw->nsvcs; i++)
		json_array_append_new(services, json_pack("{s:s,s:I}", "name", gw->svcs[i]->cfg.name,
							  "open", (json_int_t)gw->svcs[i]->open));
	return json_pack("{s:b,s:o,s:o}", "draining", gw->draining, "tunnels", tunnels,
			 "services", services);
}

/* ---- the page ---- */

static bool gw_agent_up(const struct gateway *gw, const char *agent, const char *service)
{
	for (size_t i = 0; i < gw->ntunnels; i++) {
		const struct tunnel *t = gw->tunnels[i];
		if (tunnel_is_up(t) && strcmp(tunnel_peer(t), agent) == 0 &&
		    tunnel_serves(t, service))
			return true;
	}
	return false;
}

static void gw_page_services(struct evbuffer *out, const struct gateway *gw)
{
	char in[32], outb[32], a[ADDR_STRLEN];

	evbuffer_add_printf(out, "<h2>Services</h2><table id=\"services\"><tr><th>service</th>"
				 "<th>listens on</th><th>agents</th><th>open</th><th>accepted</th>"
				 "<th>bytes in</th><th>bytes out</th><th>refused: source / limit / per source / silent / "
				 "no agent</th></tr>\n");
	for (size_t i = 0; i < gw->nsvcs; i++) {
		const struct gw_service *s = gw->svcs[i];
		evbuffer_add_printf(out, "<tr data-service=\"%s\"><td>%s</td><td>", s->cfg.name,
				    s->cfg.name);
		for (size_t k = 0; k < s->cfg.nlisten; k++) {
			addr_format((const struct sockaddr *)&s->cfg.listen[k].ss, a, sizeof(a));
			evbuffer_add_printf(out, "%s%s", k ? "<br>" : "", a);
		}
		evbuffer_add_printf(out, "</td><td>");
		for (size_t k = 0; k < s->cfg.nagents; k++) {
			bool up = gw_agent_up(gw, s->cfg.agents[k], s->cfg.name);
			evbuffer_add_printf(out, "%s<span class=\"%s\">%s %s</span>", k ? "<br>" : "",
					    up ? "up" : "down", s->cfg.agents[k],
					    up ? "up" : "down");
		}
		page_bytes(in, sizeof(in), s->bytes[0]);
		page_bytes(outb, sizeof(outb), s->bytes[1]);
		evbuffer_add_printf(out,
				    "</td><td class=\"n open\">%llu</td><td class=\"n accepted\">%llu"
				    "</td><td class=\"n\">%s</td><td class=\"n\">%s</td>"
				    "<td class=\"n refused\">%llu / %llu / %llu / %llu / %llu</td></tr>\n",
				    (unsigned long long)s->open, (unsigned long long)s->connections,
				    in, outb, (unsigned long long)s->rejected[GW_REJ_SOURCE],
				    (unsigned long long)s->rejected[GW_REJ_LIMIT],
				    (unsigned long long)s->rejected[GW_REJ_PER_SOURCE],
				    (unsigned long long)s->rejected[GW_REJ_FIRST_BYTE],
				    (unsigned long long)s->rejected[GW_REJ_NO_AGENT]);
	}
	evbuffer_add_printf(out, "</table>\n");
}

static void gw_page_tunnels(struct evbuffer *out, const struct gateway *gw)
{
	evbuffer_add_printf(out, "<h2>Agent tunnels</h2><table id=\"tunnels\"><tr><th>agent</th>"
				 "<th>from</th><th>slot</th><th>state</th><th>streams</th>"
				 "<th>connected for</th></tr>\n");
	for (size_t i = 0; i < gw->ntunnels; i++) {
		const struct tunnel *t = gw->tunnels[i];
		bool up = tunnel_is_up(t);
		evbuffer_add_printf(out, "<tr><td>");
		page_esc(out, tunnel_peer(t)[0] ? tunnel_peer(t) : "(handshaking)");
		evbuffer_add_printf(out,
				    "</td><td>%s</td><td class=\"n\">%u</td><td class=\"%s\">%s</td>"
				    "<td class=\"n\">%zu</td><td class=\"n\">%.0f s</td></tr>\n",
				    tunnel_peer_addr(t), tunnel_slot(t), up ? "up" : "down",
				    up ? "up" : tunnel_is_established(t) ? "not serving" : "handshake",
				    tunnel_nstreams(t), tunnel_age(t));
	}
	if (gw->ntunnels == 0)
		evbuffer_add_printf(out, "<tr><td colspan=\"6\" class=\"none\">no agent is "
					 "connected</td></tr>\n");
	evbuffer_add_printf(out, "</table>\n");
}

static void gw_page_refused(struct evbuffer *out, const struct gateway *gw)
{
	bool any = false;

	evbuffer_add_printf(out, "<h2>Refused sources (latest %d)</h2><table id=\"refused\"><tr>"
				 "<th>source</th><th>service</th><th>reason</th><th>times</th>"
				 "<th>last (UTC)</th></tr>\n",
			    GW_REFUSED_KEPT);
	for (size_t i = 0; i < GW_REFUSED_KEPT; i++) {
		const struct gw_refused *r = &gw->refused[i];
		char when[32];
		if (r->count == 0)
			continue;
		any = true;
		page_time(when, sizeof(when), r->last);
		evbuffer_add_printf(out, "<tr><td>");
		page_esc(out, r->host);
		evbuffer_add_printf(out,
				    "</td><td>%s</td><td>%s</td><td class=\"n\">%llu</td><td>%s</td>"
				    "</tr>\n",
				    r->service, r->reason, (unsigned long long)r->count, when);
	}
	if (!any)
		evbuffer_add_printf(out, "<tr><td colspan=\"5\" class=\"none\">none</td></tr>\n");
	evbuffer_add_printf(out, "</table>\n");
}

static void gw_page_body(struct evbuffer *out, const struct metrics *m, void *arg)
{
	struct gateway *gw = arg;
	uint64_t up = gws_tunnels_up_count(gw), open = 0, total = 0, refused = 0, b[2] = { 0, 0 };
	char bin[32], bout[32];

	(void)m; /* the tiles keep the ids the page has always had */
	for (size_t i = 0; i < gw->nsvcs; i++) {
		const struct gw_service *s = gw->svcs[i];
		open += s->open;
		total += s->connections;
		for (size_t r = 0; r < GW_REJ_COUNT; r++)
			refused += s->rejected[r];
		b[0] += s->bytes[0];
		b[1] += s->bytes[1];
	}
	page_bytes(bin, sizeof(bin), b[0]);
	page_bytes(bout, sizeof(bout), b[1]);
	evbuffer_add_printf(out, "<div class=\"tiles\">");
	page_tile_text(out, "state", "state", gw->draining ? "draining" : "serving");
	page_tile(out, "tunnels_up", "agent tunnels up", up);
	page_tile(out, "visitors_open", "visitors now", open);
	page_tile(out, "visitors_total", "visitors accepted", total);
	page_tile(out, "refused_total", "visitors refused", refused);
	page_tile_text(out, "bytes_in", "from visitors", bin);
	page_tile_text(out, "bytes_out", "to visitors", bout);
	evbuffer_add_printf(out, "</div>\n");
	gw_page_services(out, gw);
	gw_page_tunnels(out, gw);
	gw_page_refused(out, gw);
	page_chart(out, "visits_chart", "Visitors per minute", &gw->visits, clock_wall());
}

static int gw_health(char *why, size_t len, void *arg)
{
	struct gateway *gw = arg;

	if (gw->draining) {
		snprintf(why, len, "draining");
		return -1;
	}
	return 0;
}

const struct admin_ops gateway_status_ops = {
	.role = "gateway",
	.register_metrics = gws_register_metrics,
	.page_body = gw_page_body,
	.status_json = gws_status_json,
	.health = gw_health,
};
