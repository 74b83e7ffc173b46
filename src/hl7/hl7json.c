/* The JSON form of a message (shape in hl7json.h), written straight into one buffer: no
 * tree of values, so what a message costs to convert is its output, a few times its size
 * (a tree took some 100 bytes per part: 50 MiB for 1 MiB of "^"). Strings are made valid
 * UTF-8 and escaped in the same pass. The buffer holds patient data: it is wiped whenever
 * it moves, and by hl7json_free. jansson is not used here; its allocator is still set by
 * hl7json_init, once per process, to one that wipes each block before freeing it, for the
 * other users of jansson in the process. */
#include "hl7/hl7json.h"

#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/utf8.h"
#include "core/xalloc.h"

/* The output and scratch space for decoding one value (grows to the largest value). */
struct hj {
	const struct hl7_msg *m;
	bool latin1;
	char *out; /* the JSON text so far */
	size_t len, cap;
	char *dec; /* hl7_unescape output */
	size_t deccap;
};

static void hj_release(void *p)
{
	if (p == NULL)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

static void hj_alloc_init(void)
{
	json_set_alloc_funcs(xmalloc, hj_release);
}

size_t hl7json_utf8(const char *p, size_t len, int latin1, char *out, size_t outcap)
{
	const unsigned char *s = (const unsigned char *)p;
	size_t o = 0;

	for (size_t i = 0; i < len;) {
		size_t k = latin1 ? (s[i] < 0x80) : utf8_seq(s + i, len - i, NULL);
		size_t need = k > 0 ? k : latin1 ? 2 : 3;

		if (o + need > outcap)
			break;
		if (k > 0) {
			memcpy(out + o, s + i, k);
			o += k;
			i += k;
		} else if (latin1) {
			out[o++] = (char)(0xc0 | (s[i] >> 6));
			out[o++] = (char)(0x80 | (s[i] & 0x3f));
			i++;
		} else {
			out[o++] = (char)0xef; /* U+FFFD REPLACEMENT CHARACTER */
			out[o++] = (char)0xbf;
			out[o++] = (char)0xbd;
			i++;
		}
	}
	return o;
}

static void hj_grow(char **p, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	if (*p != NULL)
		explicit_bzero(*p, *cap);
	free(*p);
	*cap = need < 256 ? 256 : need;
	*p = xmalloc(*cap);
}

/* Room for n more bytes of output. The old block is wiped once copied. */
static void hj_room(struct hj *h, size_t n)
{
	size_t cap = h->cap ? h->cap : 4096;
	char *q;

	if (n <= h->cap - h->len)
		return;
	while (cap - h->len < n) {
		if (cap > SIZE_MAX / 2)
			log_fatal("hl7json: output of %zu bytes", h->len);
		cap *= 2;
	}
	q = xmalloc(cap);
	if (h->len > 0)
		memcpy(q, h->out, h->len);
	if (h->out != NULL)
		explicit_bzero(h->out, h->len);
	free(h->out);
	h->out = q;
	h->cap = cap;
}

static void hj_put(struct hj *h, const char *p, size_t n)
{
	hj_room(h, n);
	memcpy(h->out + h->len, p, n);
	h->len += n;
}

static void hj_puts(struct hj *h, const char *s)
{
	hj_put(h, s, strlen(s));
}

static void hj_putc(struct hj *h, char c)
{
	hj_room(h, 1);
	h->out[h->len++] = c;
}

/* Writes p[0..n) as a JSON string: UTF-8 as hl7json_utf8 makes it, '"', '\\' and control
 * characters escaped. At most 6 bytes out per byte in, plus the quotes; room is taken as it
 * goes (not 6n up front, which would be 6 MiB for the "raw" of a 1 MiB message). */
static void hj_json_str(struct hj *h, const char *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF"; /* as jansson writes it */
	const unsigned char *s = (const unsigned char *)p;
	char *o, *lim;

	hj_putc(h, '"');
	o = h->out + h->len;
	lim = h->out + h->cap;
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t k;

		if (lim - o < 6) { /* the most one step writes */
			h->len = (size_t)(o - h->out);
			hj_room(h, 6 + (n - i < 65536 ? n - i : 65536));
			o = h->out + h->len;
			lim = h->out + h->cap;
		}
		if (c < 0x80) {
			i++;
			if (c >= 0x20 && c != '"' && c != '\\') {
				*o++ = (char)c;
				continue;
			}
			*o++ = '\\';
			switch (c) {
			case '"': *o++ = '"'; break;
			case '\\': *o++ = '\\'; break;
			case '\b': *o++ = 'b'; break;
			case '\f': *o++ = 'f'; break;
			case '\n': *o++ = 'n'; break;
			case '\r': *o++ = 'r'; break;
			case '\t': *o++ = 't'; break;
			default:
				*o++ = 'u';
				*o++ = '0';
				*o++ = '0';
				*o++ = hex[c >> 4];
				*o++ = hex[c & 15];
				break;
			}
			continue;
		}
		if (h->latin1) {
			*o++ = (char)(0xc0 | (c >> 6));
			*o++ = (char)(0x80 | (c & 0x3f));
			i++;
		} else if ((k = utf8_seq(s + i, n - i, NULL)) > 0) {
			memcpy(o, s + i, k);
			o += k;
			i += k;
		} else {
			*o++ = (char)0xef; /* U+FFFD REPLACEMENT CHARACTER */
			*o++ = (char)0xbf;
			*o++ = (char)0xbd;
			i++;
		}
	}
	h->len = (size_t)(o - h->out);
	hj_putc(h, '"');
}

/* A JSON string of v, decoded when decode. */
static void hj_text(struct hj *h, struct hl7_str v, bool decode)
{
	size_t n = v.len;

	if (decode && n > 0) {
		hj_grow(&h->dec, &h->deccap, n);
		n = hl7_unescape(&h->m->d, v, h->dec, h->deccap);
		hj_json_str(h, h->dec, n);
		return;
	}
	hj_json_str(h, v.p, n);
}

/* A leaf value: null for the explicit null, else the decoded string. */
static void hj_leaf(struct hj *h, struct hl7_str v)
{
	if (hl7_is_null(v))
		hj_puts(h, "null");
	else
		hj_text(h, v, true);
}

static bool hj_has(struct hl7_str v, char c)
{
	return c != 0 && v.len > 0 && memchr(v.p, c, v.len) != NULL;
}

/* The parts field would be split into: one more than its separators of all three kinds.
 * Stops counting past HL7JSON_MAX_PARTS. */
static size_t hj_parts(const struct hl7_delims *d, struct hl7_str field)
{
	size_t n = 1;

	for (size_t i = 0; i < field.len && n <= HL7JSON_MAX_PARTS; i++) {
		char c = field.p[i];

		n += c == d->rep || c == d->comp || (d->sub != 0 && c == d->sub);
	}
	return n;
}

/* Every part below walks its view once with hl7_iter: never hl7_rep/comp/sub by index in a
 * loop, which rescans from the start each time. */
static void hj_component(struct hj *h, struct hl7_str comp)
{
	struct hl7_iter it;
	struct hl7_str sub;
	bool first = true;

	if (!hj_has(comp, h->m->d.sub)) {
		hj_leaf(h, comp);
		return;
	}
	hj_putc(h, '[');
	hl7_iter_init(&it, comp, h->m->d.sub);
	while (hl7_iter_next(&it, &sub)) {
		if (!first)
			hj_putc(h, ',');
		first = false;
		hj_leaf(h, sub);
	}
	hj_putc(h, ']');
}

static void hj_value(struct hj *h, struct hl7_str rep)
{
	const struct hl7_delims *d = &h->m->d;
	struct hl7_iter it;
	struct hl7_str comp;
	bool first = true;

	if (!hj_has(rep, d->comp) && !hj_has(rep, d->sub)) {
		hj_leaf(h, rep);
		return;
	}
	hj_putc(h, '[');
	hl7_iter_init(&it, rep, d->comp);
	while (hl7_iter_next(&it, &comp)) {
		if (!first)
			hj_putc(h, ',');
		first = false;
		hj_component(h, comp);
	}
	hj_putc(h, ']');
}

static void hj_field(struct hj *h, struct hl7_str field)
{
	const struct hl7_delims *d = &h->m->d;
	struct hl7_iter it;
	struct hl7_str rep;
	bool first = true;

	if (hj_parts(d, field) > HL7JSON_MAX_PARTS) {
		hj_puts(h, "{\"raw\":");
		hj_text(h, field, false);
		hj_putc(h, '}');
		return;
	}
	if (!hj_has(field, d->rep)) {
		hj_value(h, field);
		return;
	}
	hj_puts(h, "{\"repetitions\":[");
	hl7_iter_init(&it, field, d->rep);
	while (hl7_iter_next(&it, &rep)) {
		if (!first)
			hj_putc(h, ',');
		first = false;
		hj_value(h, rep);
	}
	hj_puts(h, "]}");
}

/* Component c (1-based), then subcomponent s of it (0: the whole component), of the view v.
 * Absent parts give an empty view. One scan of v: callers pass constant positions. */
static struct hl7_str hj_part(const struct hl7_delims *d, struct hl7_str v, unsigned c, unsigned s)
{
	struct hl7_str out;

	if (c > 0) {
		if (!hl7_comp(d, v, c, &out))
			return (struct hl7_str){ "", 0 };
		v = out;
	}
	if (s > 0) {
		if (!hl7_sub(d, v, s, &out))
			return (struct hl7_str){ "", 0 };
		v = out;
	}
	return v;
}

/* The view at segment si, field f, repetition r (0: the whole field), component c,
 * subcomponent s (0: the whole level above). Absent parts give an empty view. */
static struct hl7_str hj_at(const struct hl7_msg *m, int si, unsigned f, unsigned r, unsigned c,
			    unsigned s)
{
	struct hl7_str v = { "", 0 }, out;

	if (si < 0 || !hl7_field(m, (unsigned)si, f, &v))
		return (struct hl7_str){ "", 0 };
	if (r > 0) {
		if (!hl7_rep(&m->d, v, r, &out))
			return (struct hl7_str){ "", 0 };
		v = out;
	}
	return hj_part(&m->d, v, c, s);
}

/* ,"key":value (no comma when first) with value the leaf v. key needs no escaping. */
static void hj_set(struct hj *h, const char *key, struct hl7_str v, bool first)
{
	if (!first)
		hj_putc(h, ',');
	hj_putc(h, '"');
	hj_puts(h, key);
	hj_puts(h, "\":");
	hj_leaf(h, v);
}

static void hj_patient(struct hj *h)
{
	const struct hl7_msg *m = h->m;
	int pid = hl7_seg_find(m, "PID", 1);
	struct hl7_str f3;

	if (pid < 0) {
		hj_puts(h, "null");
		return;
	}
	hj_puts(h, "{\"identifiers\":[");
	if (hl7_field(m, (unsigned)pid, 3, &f3)) {
		struct hl7_iter it;
		struct hl7_str rep;
		size_t n = 0;

		hl7_iter_init(&it, f3, m->d.rep);
		while (n < HL7JSON_MAX_PARTS && hl7_iter_next(&it, &rep)) {
			struct hl7_str auth = hj_part(&m->d, rep, 4, 1);

			if (auth.len == 0)
				auth = hj_part(&m->d, rep, 4, 2);
			if (n++ > 0)
				hj_putc(h, ',');
			hj_putc(h, '{');
			hj_set(h, "id", hj_part(&m->d, rep, 1, 0), true);
			hj_set(h, "authority", auth, false);
			hj_set(h, "type", hj_part(&m->d, rep, 5, 0), false);
			hj_putc(h, '}');
		}
	}
	hj_puts(h, "],\"name\":{");
	hj_set(h, "family", hj_at(m, pid, 5, 1, 1, 1), true);
	hj_set(h, "given", hj_at(m, pid, 5, 1, 2, 0), false);
	hj_set(h, "middle", hj_at(m, pid, 5, 1, 3, 0), false);
	hj_putc(h, '}');
	hj_set(h, "birth_date", hj_at(m, pid, 7, 1, 1, 0), false);
	hj_set(h, "sex", hj_at(m, pid, 8, 1, 0, 0), false);
	hj_putc(h, '}');
}

static void hj_segments(struct hj *h)
{
	const struct hl7_msg *m = h->m;
	bool first = true;

	hj_putc(h, '[');
	for (uint32_t si = 0; si < m->nsegs; si++) {
		const struct hl7_seg *sg = &m->segs[si];
		struct hl7_str name = { sg->name, strnlen(sg->name, sizeof(sg->name)) };

		if (strcmp(sg->name, "MSH") == 0)
			continue;
		if (!first)
			hj_putc(h, ',');
		first = false;
		hj_puts(h, "{\"name\":");
		hj_text(h, name, false);
		hj_puts(h, ",\"fields\":[");
		for (unsigned f = 1; f <= sg->nfields; f++) {
			struct hl7_str v;

			if (!hl7_field(m, si, f, &v))
				break;
			if (f > 1)
				hj_putc(h, ',');
			hj_field(h, v);
		}
		hj_puts(h, "]}");
	}
	hj_putc(h, ']');
}

/* True when MSH-18 names ISO 8859-1 (HL7 table 0211 "8859/1", DICOM-style "ISO_IR 100"). */
static bool hj_is_latin1(struct hl7_str cs)
{
	static const char *const names[] = { "8859/1", "ISO IR100", "ISO_IR 100", "ISO-8859-1" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (cs.len == strlen(names[i]) && strncasecmp(cs.p, names[i], cs.len) == 0)
			return true;
	}
	return false;
}

void hl7json_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, hj_alloc_init);
}

char *hl7json_message(const struct hl7_msg *m, int64_t id, size_t *len)
{
	struct hj h = { .m = m };
	int msh = hl7_seg_find(m, "MSH", 1);
	struct hl7_str trig, raw = { m->data, m->len };
	char num[32];

	hl7json_init();
	*len = 0;
	if (msh < 0)
		return NULL;
	h.latin1 = hj_is_latin1(m->charset);
	/* the message twice (a field and "raw") and some room: one allocation, usually */
	hj_room(&h, 2 * m->len + 4096);
	snprintf(num, sizeof(num), "{\"id\":%lld", (long long)id);
	hj_puts(&h, num);
	hj_set(&h, "control_id", hj_at(m, msh, 10, 1, 0, 0), false);
	trig = hj_at(m, msh, 9, 1, 2, 0);
	{
		char t1[32], t2[32], ty[66];
		struct hl7_str type;

		hl7_copy(&m->d, hj_at(m, msh, 9, 1, 1, 0), t1, sizeof(t1));
		hl7_copy(&m->d, trig, t2, sizeof(t2));
		type.p = ty;
		type.len = (size_t)snprintf(ty, sizeof(ty), "%s%s%s", t1, t2[0] ? "^" : "", t2);
		hj_puts(&h, ",\"type\":");
		hj_text(&h, type, false);
	}
	hj_set(&h, "message_type", hj_at(m, msh, 9, 1, 1, 0), false);
	hj_set(&h, "trigger", trig, false);
	hj_set(&h, "structure", hj_at(m, msh, 9, 1, 3, 0), false);
	hj_set(&h, "sending_application", hj_at(m, msh, 3, 1, 1, 0), false);
	hj_set(&h, "sending_facility", hj_at(m, msh, 4, 1, 1, 0), false);
	hj_set(&h, "receiving_application", hj_at(m, msh, 5, 1, 1, 0), false);
	hj_set(&h, "receiving_facility", hj_at(m, msh, 6, 1, 1, 0), false);
	hj_set(&h, "datetime", hj_at(m, msh, 7, 1, 1, 0), false);
	hj_set(&h, "version", hj_at(m, msh, 12, 1, 1, 0), false);
	hj_set(&h, "charset", m->charset, false);
	hj_puts(&h, ",\"patient\":");
	hj_patient(&h);
	hj_puts(&h, ",\"segments\":");
	hj_segments(&h);
	hj_puts(&h, ",\"raw\":");
	hj_text(&h, raw, false);
	hj_putc(&h, '}');
	hj_putc(&h, '\0');

	if (h.dec != NULL)
		explicit_bzero(h.dec, h.deccap);
	free(h.dec);
	*len = h.len - 1;
	return h.out;
}

void hl7json_free(char *json, size_t len)
{
	if (json == NULL)
		return;
	explicit_bzero(json, len);
	free(json);
}
