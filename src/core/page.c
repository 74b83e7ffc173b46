#include "core/page.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE_REFRESH 5 /* seconds between reloads */

static const char page_style[] =
	"body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem;"
	"color:#1b1f24;background:#f6f7f9}"
	"header{display:flex;align-items:baseline;gap:1rem;flex-wrap:wrap}"
	"h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.05rem;margin:1.4rem 0 .5rem}"
	".meta{color:#57606a}"
	".tiles{display:flex;flex-wrap:wrap;gap:.5rem}"
	".tile{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.4rem .7rem;"
	"min-width:7rem;color:#57606a}"
	".tile b{display:block;font-size:1.3rem;color:#1b1f24;font-variant-numeric:tabular-nums}"
	"table{border-collapse:collapse;background:#fff;width:100%}"
	"th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left}"
	"td.n{text-align:right;font-variant-numeric:tabular-nums}"
	"th{background:#eef1f4;font-weight:600}"
	".up{color:#1a7f37}.down{color:#cf222e}.none{color:#57606a;font-style:italic}"
	"svg{background:#fff;border:1px solid #d0d7de;border-radius:6px}"
	"svg rect{fill:#0969da}svg text{font-size:10px;fill:#57606a}"
	"footer{margin-top:1.5rem;color:#57606a}";

void minutes_add(struct minutes *m, double now, uint32_t k)
{
	int64_t min = (int64_t)(now / 60);

	if (min > m->last) {
		int64_t gap = min - m->last;
		for (int64_t i = 1; i <= gap && i <= PAGE_MINUTES; i++)
			m->n[(m->last + i) % PAGE_MINUTES] = 0;
		m->last = min;
	} else if (min <= m->last - PAGE_MINUTES) {
		return; /* the clock went back more than the hour kept */
	}
	m->n[min % PAGE_MINUTES] += k;
}

void minutes_series(const struct minutes *m, double now, uint32_t out[PAGE_MINUTES])
{
	int64_t min = (int64_t)(now / 60);

	for (int i = 0; i < PAGE_MINUTES; i++) {
		int64_t at = min - (PAGE_MINUTES - 1) + i;
		out[i] = at <= m->last && at > m->last - PAGE_MINUTES && at >= 0
				 ? m->n[at % PAGE_MINUTES]
				 : 0;
	}
}

void page_esc(struct evbuffer *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': evbuffer_add(out, "&amp;", 5); break;
		case '<': evbuffer_add(out, "&lt;", 4); break;
		case '>': evbuffer_add(out, "&gt;", 4); break;
		case '"': evbuffer_add(out, "&quot;", 6); break;
		case '\'': evbuffer_add(out, "&#39;", 5); break;
		default:
			if ((unsigned char)*s < 0x20 || *s == 0x7f)
				evbuffer_add(out, "?", 1);
			else
				evbuffer_add(out, s, 1);
		}
	}
}

static void page_duration(char *buf, size_t len, double s)
{
	uint64_t t = s > 0 ? (uint64_t)s : 0;

	if (t >= 86400)
		snprintf(buf, len, "%" PRIu64 " d %" PRIu64 " h", t / 86400, t % 86400 / 3600);
	else if (t >= 3600)
		snprintf(buf, len, "%" PRIu64 " h %" PRIu64 " min", t / 3600, t % 3600 / 60);
	else if (t >= 60)
		snprintf(buf, len, "%" PRIu64 " min %" PRIu64 " s", t / 60, t % 60);
	else
		snprintf(buf, len, "%" PRIu64 " s", t);
}

void page_time(char *buf, size_t len, double t)
{
	time_t at = (time_t)t;
	struct tm tm;

	if (gmtime_r(&at, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "?");
}

void page_begin(struct evbuffer *out, const char *role, double uptime)
{
	char host[256] = "", up[64], when[32];

	gethostname(host, sizeof(host) - 1);
	page_duration(up, sizeof(up), uptime);
	page_time(when, sizeof(when), (double)time(NULL));
	evbuffer_add_printf(out,
			    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
			    "<meta http-equiv=\"refresh\" content=\"%d\">"
			    "<meta name=\"viewport\" content=\"width=device-width\">"
			    "<title>netwall %s</title><style>%s</style></head>\n<body><header>"
			    "<h1>netwall <span id=\"role\">%s</span></h1><span class=\"meta\">",
			    PAGE_REFRESH, role, page_style, role);
	page_esc(out, host);
	evbuffer_add_printf(out,
			    " &middot; pid %d &middot; up <span id=\"uptime\">%s</span> &middot; "
			    "<span id=\"updated\">%s UTC</span></span></header>\n",
			    (int)getpid(), up, when);
}

void page_end(struct evbuffer *out)
{
	evbuffer_add_printf(out, "<footer>Refreshes every %d s &middot; <a href=\"/metrics\">"
				 "/metrics</a> &middot; <a href=\"/status\">/status</a> &middot; "
				 "<a href=\"/healthz\">/healthz</a></footer>\n</body></html>\n",
			    PAGE_REFRESH);
}

void page_tile_text(struct evbuffer *out, const char *id, const char *label, const char *value)
{
	evbuffer_add_printf(out, "<div class=\"tile\" id=\"%s\"><b>", id);
	page_esc(out, value);
	evbuffer_add_printf(out, "</b>%s</div>", label);
}

void page_tile(struct evbuffer *out, const char *id, const char *label, uint64_t value)
{
	char v[24];

	snprintf(v, sizeof(v), "%" PRIu64, value);
	page_tile_text(out, id, label, v);
}

void page_bytes(char *buf, size_t len, uint64_t n)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", n);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
}

void page_chart(struct evbuffer *out, const char *id, const char *title,
		const struct minutes *m, double now)
{
	enum { W = 6, GAP = 1, H = 80, TOP = 14, BOTTOM = 14 };
	uint32_t s[PAGE_MINUTES], max = 0;
	uint64_t total = 0;
	int width = PAGE_MINUTES * (W + GAP);

	minutes_series(m, now, s);
	for (int i = 0; i < PAGE_MINUTES; i++) {
		if (s[i] > max)
			max = s[i];
		total += s[i];
	}
	evbuffer_add_printf(out,
			    "<h2>%s</h2><svg id=\"%s\" data-total=\"%" PRIu64 "\" width=\"%d\" "
			    "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">"
			    "<text x=\"2\" y=\"10\">max %u/min</text>"
			    "<text x=\"%d\" y=\"10\" text-anchor=\"end\">%" PRIu64
			    " in the last hour</text>",
			    title, id, total, width, H + TOP + BOTTOM, width, H + TOP + BOTTOM, title,
			    max, width - 2, total);
	for (int i = 0; i < PAGE_MINUTES; i++) {
		int h = max ? (int)((uint64_t)s[i] * H / max) : 0;
		if (s[i] > 0 && h == 0)
			h = 1;
		if (h > 0)
			evbuffer_add_printf(out,
					    "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\">"
					    "<title>%d min ago: %u</title></rect>",
					    i * (W + GAP), TOP + H - h, W, h, PAGE_MINUTES - 1 - i,
					    s[i]);
	}
	evbuffer_add_printf(out,
			    "<text x=\"2\" y=\"%d\">-60 min</text><text x=\"%d\" y=\"%d\" "
			    "text-anchor=\"end\">now</text></svg>\n",
			    H + TOP + BOTTOM - 2, width - 2, H + TOP + BOTTOM - 2);
}
