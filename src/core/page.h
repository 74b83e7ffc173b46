/* The admin status page: an HTML shell with a few KB of CSS that reloads itself (no
 * scripts), escaping, number tiles, and a per-minute bar chart drawn as inline SVG. Every
 * figure a test or a scraper may read carries an id. */
#ifndef NETWALL_PAGE_H
#define NETWALL_PAGE_H

#include <event2/buffer.h>
#include <stdint.h>

#define PAGE_MINUTES 60 /* the chart spans the last hour */

/* Counts per wall-clock minute over the last hour. Zero-initialised is empty. */
struct minutes {
	int64_t last; /* minute number (Unix time / 60) of the newest count */
	uint32_t n[PAGE_MINUTES];
};

/* Adds k to the minute holding now (Unix seconds). */
void minutes_add(struct minutes *m, double now, uint32_t k);
/* Fills out with the last hour's counts, oldest first; out[PAGE_MINUTES - 1] is now's minute. */
void minutes_series(const struct minutes *m, double now, uint32_t out[PAGE_MINUTES]);

/* The document around a daemon's part: head, style, header with role and uptime. */
void page_begin(struct evbuffer *out, const char *role, double uptime);
void page_end(struct evbuffer *out);

/* Appends s with &, <, >, " and ' escaped; control bytes become '?'. */
void page_esc(struct evbuffer *out, const char *s);

/* A figure with a label: <div class="tile" id="ID"><b>VALUE</b>LABEL</div>. */
void page_tile(struct evbuffer *out, const char *id, const char *label, uint64_t value);
/* The same with a preformatted value (e.g. "1.2 ms"). */
void page_tile_text(struct evbuffer *out, const char *id, const char *label, const char *value);

/* A bar per minute of the last hour, titled, with the hour's total. */
void page_chart(struct evbuffer *out, const char *id, const char *title,
		const struct minutes *m, double now);

/* "2026-11-23 04:31:07" (UTC) for Unix time t. */
void page_time(char *buf, size_t len, double t);

/* "12.3 MiB" style sizes. */
void page_bytes(char *buf, size_t len, uint64_t n);

#endif
