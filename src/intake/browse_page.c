/* The message browser's HTML: the shell and one stored message (intake/browse_page.h). */
#include "intake/browse_page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/page.h"
#include "core/xalloc.h"
#include "hl7/hl7.h"

static const char browse_style[] =
	"body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem;"
	"color:#1b1f24;background:#f6f7f9}h1{font-size:1.4rem}h2{font-size:1.05rem}"
	"table{border-collapse:collapse;background:#fff;width:100%;margin-bottom:.8rem}"
	"th,td{border:1px solid #d0d7de;padding:.2rem .5rem;text-align:left;vertical-align:top}"
	"th{background:#eef1f4;font-weight:600}td.f{white-space:nowrap;width:9rem;color:#57606a}"
	"pre{background:#fff;border:1px solid #d0d7de;padding:.5rem;white-space:pre-wrap;"
	"word-break:break-all}form.search{display:flex;flex-wrap:wrap;gap:.4rem}"
	"form.search label{display:flex;flex-direction:column;font-size:.85rem;color:#57606a}"
	".meta{color:#57606a}.none{color:#57606a;font-style:italic}";

void browse_page_esc(struct evbuffer *out, const char *p, size_t n)
{
	size_t a = 0;

	for (size_t i = 0; i < n; i++) {
		const char *rep = NULL;
		unsigned char ch = (unsigned char)p[i];

		switch (ch) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default:
			if (ch < 0x20 || ch == 0x7f)
				rep = "?";
		}
		if (rep == NULL)
			continue;
		evbuffer_add(out, p + a, i - a);
		evbuffer_add(out, rep, strlen(rep));
		a = i + 1;
	}
	evbuffer_add(out, p + a, n - a);
}

void browse_page_begin(struct evbuffer *out, const char *title, const char *who)
{
	evbuffer_add_printf(out, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
				 "<meta name=\"viewport\" content=\"width=device-width\">"
				 "<meta name=\"referrer\" content=\"no-referrer\"><title>");
	page_esc(out, title);
	evbuffer_add_printf(out, "</title><style>%s</style></head>\n<body><header><h1>", browse_style);
	page_esc(out, title);
	evbuffer_add_printf(out, "</h1><span class=\"meta\">netwall intake &middot; signed in as "
				 "<span id=\"who\">");
	page_esc(out, who);
	evbuffer_add_printf(out, "</span> &middot; every page is recorded in the audit trail "
				 "&middot; <a href=\"/messages\">search</a> &middot; "
				 "<a href=\"/\">status</a></span></header>\n");
}

void browse_page_end(struct evbuffer *out)
{
	evbuffer_add_printf(out, "</body></html>\n");
}

/* "2026-11-22 10:15:00" (UTC) for ms, "-" for 0. */
static void browse_time(char *buf, size_t len, int64_t ms)
{
	if (ms == 0)
		snprintf(buf, len, "-");
	else
		page_time(buf, len, (double)ms / 1000);
}

/* A decoded value: escapes undone, then HTML-escaped. */
static void browse_value(struct evbuffer *out, const struct hl7_delims *d, struct hl7_str v)
{
	char *tmp = xmalloc(v.len + 1);
	size_t n = hl7_unescape(d, v, tmp, v.len + 1);

	browse_page_esc(out, tmp, n);
	explicit_bzero(tmp, v.len + 1);
	free(tmp);
}

/* Bytes of a page around the message's fields: the header table, the replay form, the
 * ACK (ours, a few hundred bytes), the note and the end. The fields stop this far short of
 * the page's ceiling. */
#define BROWSE_PAGE_TAIL (16 * 1024)
#define BROWSE_ROW_BYTES 128 /* a row's markup, its value aside */
#define BROWSE_ESC_MAX 6     /* bytes one byte may become escaped ("&quot;") */

/* Whether n bytes of a value, escaped, and a row's markup still fit out under max. */
static bool browse_fits(const struct evbuffer *out, size_t max, size_t n)
{
	size_t have = evbuffer_get_length(out);

	return have < max && max - have > BROWSE_ROW_BYTES &&
	       n <= (max - have - BROWSE_ROW_BYTES) / BROWSE_ESC_MAX;
}

/* One row: <tr><td class="f">NAME-F[r].c</td><td>value</td></tr>; false, with nothing
 * added, when it would not fit under max. */
static bool browse_field_row(struct evbuffer *out, size_t max, const struct hl7_msg *m,
			     const char *name, unsigned f, int r, int c, struct hl7_str v)
{
	if (!browse_fits(out, max, v.len))
		return false;
	evbuffer_add_printf(out, "<tr><td class=\"f\">%s-%u", name, f);
	if (r > 0)
		evbuffer_add_printf(out, "[%d]", r);
	if (c > 0)
		evbuffer_add_printf(out, ".%d", c);
	evbuffer_add_printf(out, "</td><td>");
	if (hl7_is_null(v))
		evbuffer_add_printf(out, "&quot;&quot; (null)");
	else
		browse_value(out, &m->d, v);
	evbuffer_add_printf(out, "</td></tr>\n");
	return true;
}

/* Every valued field of segment si, its repetitions and components as netwall messages
 * show numbers them; each field walked once (hl7_iter). False when a row would not fit
 * under max: the segment's table is closed there. */
static bool browse_segment(struct evbuffer *out, size_t max, const struct hl7_msg *m,
			   unsigned si)
{
	const char *name = m->segs[si].name;
	bool fits = browse_fits(out, max, 0);

	if (!fits)
		return false;
	evbuffer_add_printf(out, "<table class=\"seg\"><tr><th colspan=\"2\">%s</th></tr>\n",
			    name);
	for (unsigned f = 1; fits && f <= m->segs[si].nfields; f++) {
		struct hl7_iter ri, ci;
		struct hl7_str v, rep, comp;
		bool reps;
		int r = 0;

		if (!hl7_field(m, si, f, &v) || v.len == 0)
			continue;
		if (si == 0 && f <= 2) { /* MSH-1 and MSH-2: the delimiters, as they are */
			if (!(fits = browse_fits(out, max, v.len)))
				break;
			evbuffer_add_printf(out, "<tr><td class=\"f\">%s-%u</td><td>", name, f);
			browse_page_esc(out, v.p, v.len);
			evbuffer_add_printf(out, "</td></tr>\n");
			continue;
		}
		reps = memchr(v.p, m->d.rep, v.len) != NULL;
		hl7_iter_init(&ri, v, m->d.rep);
		while (fits && hl7_iter_next(&ri, &rep)) {
			bool comps = rep.len > 0 && memchr(rep.p, m->d.comp, rep.len) != NULL;
			int c = 0;

			r++;
			hl7_iter_init(&ci, rep, m->d.comp);
			while (fits && hl7_iter_next(&ci, &comp)) {
				c++;
				if (comp.len > 0)
					fits = browse_field_row(out, max, m, name, f, reps ? r : 0,
								comps ? c : 0, comp);
			}
		}
	}
	evbuffer_add_printf(out, "</table>\n");
	return fits;
}

/* Bytes as received, a line per segment; false when a line would not fit under max (the
 * lines stop there). */
static bool browse_lines(struct evbuffer *out, size_t max, const char *id, const char *p,
			 size_t n)
{
	bool fits = true;

	evbuffer_add_printf(out, "<pre id=\"%s\">", id);
	for (size_t a = 0, i = 0; i <= n; i++) {
		if (i < n && p[i] != '\r' && p[i] != '\n')
			continue;
		if (!(fits = browse_fits(out, max, i - a)))
			break;
		browse_page_esc(out, p + a, i - a);
		if (i < n)
			evbuffer_add(out, "\n", 1);
		a = i + 1;
	}
	evbuffer_add_printf(out, "</pre>\n");
	return fits;
}

/* A header row with a text value. */
static void browse_row(struct evbuffer *out, const char *id, const char *label, const char *v)
{
	evbuffer_add_printf(out, "<tr><th>%s</th><td id=\"%s\">", label, id);
	page_esc(out, v != NULL && v[0] != '\0' ? v : "-");
	evbuffer_add_printf(out, "</td></tr>\n");
}

static void browse_header(struct evbuffer *out, const struct store_row *r)
{
	char t1[32], t2[32], n[64], sender[140];

	browse_time(t1, sizeof(t1), r->received_ms);
	browse_time(t2, sizeof(t2), r->updated_ms);
	snprintf(sender, sizeof(sender), "%s%s%s", r->app, r->facility[0] ? "/" : "", r->facility);
	evbuffer_add_printf(out, "<table id=\"header\">\n");
	snprintf(n, sizeof(n), "%lld", (long long)r->id);
	browse_row(out, "id", "id", n);
	browse_row(out, "state", "state", store_state_name(r->state));
	browse_row(out, "type", "type (MSH-9)", r->type);
	browse_row(out, "control_id", "control ID (MSH-10)", r->control_id);
	browse_row(out, "version", "version (MSH-12)", r->version);
	browse_row(out, "sender", "sender (MSH-3/MSH-4)", sender);
	browse_row(out, "message_date", "message date (MSH-7)", r->message_date);
	browse_row(out, "received", "received (UTC)", t1);
	browse_row(out, "peer", "from", r->peer);
	snprintf(n, sizeof(n), "%zu", r->raw_len);
	browse_row(out, "size", "bytes", n);
	browse_row(out, "warnings", "read with warnings", r->warnings ? r->warnings : "none");
	browse_row(out, "reused", "control ID reused", r->reused ? "yes" : "no");
	snprintf(n, sizeof(n), "%u", r->attempts);
	browse_row(out, "attempts", "delivery attempts", n);
	snprintf(n, sizeof(n), "%d", r->http_status);
	browse_row(out, "http_status", "last HTTP status", r->http_status ? n : "-");
	browse_row(out, "detail", "delivery detail", r->detail);
	browse_row(out, "updated", "updated (UTC)", t2);
	evbuffer_add_printf(out, "</table>\n");
}

void browse_page_message(struct evbuffer *out, const struct store_row *r, const char *csrf,
			 size_t max)
{
	struct hl7_msg m;
	struct hl7_error e;
	size_t upto = max > 2 * BROWSE_PAGE_TAIL ? max - BROWSE_PAGE_TAIL : max / 2;
	bool whole = true;

	browse_header(out, r);
	if (csrf != NULL)
		evbuffer_add_printf(out, "<form method=\"post\" action=\"/messages/%lld/replay\" "
					 "id=\"replay\"><input type=\"hidden\" name=\"csrf\" "
					 "value=\"%s\"><button type=\"submit\">Replay (deliver "
					 "again)</button></form>\n",
				    (long long)r->id, csrf);
	evbuffer_add_printf(out, "<h2>Segments, field by field</h2>\n<div id=\"fields\">\n");
	hl7_msg_init(&m);
	if (hl7_parse(&m, r->raw, r->raw_len, &e) == 0) {
		for (unsigned si = 0; whole && si < m.nsegs; si++)
			whole = browse_segment(out, upto, &m, si);
	} else {
		evbuffer_add_printf(out, "<p class=\"none\">does not parse (");
		page_esc(out, e.text);
		evbuffer_add_printf(out, "); as received:</p>\n");
		whole = browse_lines(out, upto, "raw", r->raw, r->raw_len);
	}
	hl7_msg_free(&m);
	if (!whole)
		evbuffer_add_printf(out, "<p class=\"none\" id=\"truncated\">page truncated at %zu "
					 "bytes: the rest is not listed; use netwall messages show "
					 "%lld</p>\n",
				    upto, (long long)r->id);
	evbuffer_add_printf(out, "</div>\n<h2>The ACK it got</h2>\n");
	browse_lines(out, max - BROWSE_ROW_BYTES, "ack", r->ack, r->ack_len);
}
