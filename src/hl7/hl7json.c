/* The JSON form of a message (shape in hl7json.h), built with jansson. Every string that
 * goes into the tree is already valid UTF-8 (hl7json_utf8), so the unchecked jansson
 * constructors are safe. jansson's own copies hold patient data too: its allocator is set,
 * once per process, to one that wipes each block before freeing it. */
#include "hl7/hl7json.h"

#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* Scratch space for decoding one value; grows to the largest value, wiped at the end. */
struct hj {
	const struct hl7_msg *m;
	bool latin1;
	char *dec; /* hl7_unescape output */
	size_t deccap;
	char *utf; /* UTF-8 output */
	size_t utfcap;
};

static void *hj_alloc(size_t n)
{
	void *p = malloc(n);

	if (p == NULL && n > 0)
		log_fatal("out of memory");
	return p;
}

static void hj_release(void *p)
{
	if (p == NULL)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

static void hj_alloc_init(void)
{
	json_set_alloc_funcs(hj_alloc, hj_release);
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 if it is not one:
 * overlong forms, surrogates and code points above U+10FFFF are invalid. */
static size_t hj_utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t need;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

size_t hl7json_utf8(const char *p, size_t len, int latin1, char *out, size_t outcap)
{
	const unsigned char *s = (const unsigned char *)p;
	size_t o = 0;

	for (size_t i = 0; i < len;) {
		size_t k = latin1 ? (s[i] < 0x80) : hj_utf8_seq(s + i, len - i);
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
	*p = hj_alloc(*cap);
}

/* A JSON string of v, decoded when decode, converted to UTF-8. */
static json_t *hj_text(struct hj *h, struct hl7_str v, bool decode)
{
	const char *src = v.p;
	size_t n = v.len, u;

	if (n == 0)
		return json_string_nocheck("");
	if (decode) {
		hj_grow(&h->dec, &h->deccap, n);
		n = hl7_unescape(&h->m->d, v, h->dec, h->deccap);
		src = h->dec;
	}
	hj_grow(&h->utf, &h->utfcap, 3 * n + 3);
	u = hl7json_utf8(src, n, h->latin1, h->utf, h->utfcap);
	return json_stringn_nocheck(h->utf, u);
}

/* A leaf value: null for the explicit null, else the decoded string. */
static json_t *hj_leaf(struct hj *h, struct hl7_str v)
{
	if (hl7_is_null(v))
		return json_null();
	return hj_text(h, v, true);
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
static json_t *hj_component(struct hj *h, struct hl7_str comp)
{
	struct hl7_iter it;
	struct hl7_str sub;
	json_t *a;

	if (!hj_has(comp, h->m->d.sub))
		return hj_leaf(h, comp);
	a = json_array();
	hl7_iter_init(&it, comp, h->m->d.sub);
	while (hl7_iter_next(&it, &sub))
		json_array_append_new(a, hj_leaf(h, sub));
	return a;
}

static json_t *hj_value(struct hj *h, struct hl7_str rep)
{
	const struct hl7_delims *d = &h->m->d;
	struct hl7_iter it;
	struct hl7_str comp;
	json_t *a;

	if (!hj_has(rep, d->comp) && !hj_has(rep, d->sub))
		return hj_leaf(h, rep);
	a = json_array();
	hl7_iter_init(&it, rep, d->comp);
	while (hl7_iter_next(&it, &comp))
		json_array_append_new(a, hj_component(h, comp));
	return a;
}

static json_t *hj_field(struct hj *h, struct hl7_str field)
{
	const struct hl7_delims *d = &h->m->d;
	struct hl7_iter it;
	struct hl7_str rep;
	json_t *o, *a;

	if (hj_parts(d, field) > HL7JSON_MAX_PARTS) {
		o = json_object();
		json_object_set_new_nocheck(o, "raw", hj_text(h, field, false));
		return o;
	}
	if (!hj_has(field, d->rep))
		return hj_value(h, field);
	a = json_array();
	hl7_iter_init(&it, field, d->rep);
	while (hl7_iter_next(&it, &rep))
		json_array_append_new(a, hj_value(h, rep));
	o = json_object();
	json_object_set_new_nocheck(o, "repetitions", a);
	return o;
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

static void hj_set(struct hj *h, json_t *o, const char *key, struct hl7_str v)
{
	json_object_set_new_nocheck(o, key, hj_leaf(h, v));
}

static json_t *hj_patient(struct hj *h)
{
	const struct hl7_msg *m = h->m;
	int pid = hl7_seg_find(m, "PID", 1);
	json_t *p, *ids, *name;
	struct hl7_str f3;

	if (pid < 0)
		return json_null();
	p = json_object();
	ids = json_array();
	if (hl7_field(m, (unsigned)pid, 3, &f3)) {
		struct hl7_iter it;
		struct hl7_str rep;
		size_t n = 0;

		hl7_iter_init(&it, f3, m->d.rep);
		while (n++ < HL7JSON_MAX_PARTS && hl7_iter_next(&it, &rep)) {
			json_t *id = json_object();
			struct hl7_str auth = hj_part(&m->d, rep, 4, 1);

			if (auth.len == 0)
				auth = hj_part(&m->d, rep, 4, 2);
			hj_set(h, id, "id", hj_part(&m->d, rep, 1, 0));
			hj_set(h, id, "authority", auth);
			hj_set(h, id, "type", hj_part(&m->d, rep, 5, 0));
			json_array_append_new(ids, id);
		}
	}
	json_object_set_new_nocheck(p, "identifiers", ids);
	name = json_object();
	hj_set(h, name, "family", hj_at(m, pid, 5, 1, 1, 1));
	hj_set(h, name, "given", hj_at(m, pid, 5, 1, 2, 0));
	hj_set(h, name, "middle", hj_at(m, pid, 5, 1, 3, 0));
	json_object_set_new_nocheck(p, "name", name);
	hj_set(h, p, "birth_date", hj_at(m, pid, 7, 1, 1, 0));
	hj_set(h, p, "sex", hj_at(m, pid, 8, 1, 0, 0));
	return p;
}

static json_t *hj_segments(struct hj *h)
{
	const struct hl7_msg *m = h->m;
	json_t *segs = json_array();

	for (uint32_t si = 0; si < m->nsegs; si++) {
		const struct hl7_seg *sg = &m->segs[si];
		json_t *seg, *fields;
		struct hl7_str name = { sg->name, strnlen(sg->name, sizeof(sg->name)) };

		if (strcmp(sg->name, "MSH") == 0)
			continue;
		seg = json_object();
		fields = json_array();
		json_object_set_new_nocheck(seg, "name", hj_text(h, name, false));
		for (unsigned f = 1; f <= sg->nfields; f++) {
			struct hl7_str v;

			if (!hl7_field(m, si, f, &v))
				break;
			json_array_append_new(fields, hj_field(h, v));
		}
		json_object_set_new_nocheck(seg, "fields", fields);
		json_array_append_new(segs, seg);
	}
	return segs;
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
	json_t *o = NULL;
	char *out = NULL;
	size_t n;

	hl7json_init();
	*len = 0;
	if (msh < 0)
		return NULL;
	h.latin1 = hj_is_latin1(m->charset);
	o = json_object();
	json_object_set_new_nocheck(o, "id", json_integer((json_int_t)id));
	hj_set(&h, o, "control_id", hj_at(m, msh, 10, 1, 0, 0));
	trig = hj_at(m, msh, 9, 1, 2, 0);
	{
		char t1[32], t2[32], ty[66];
		struct hl7_str type;

		hl7_copy(&m->d, hj_at(m, msh, 9, 1, 1, 0), t1, sizeof(t1));
		hl7_copy(&m->d, trig, t2, sizeof(t2));
		type.p = ty;
		type.len = (size_t)snprintf(ty, sizeof(ty), "%s%s%s", t1, t2[0] ? "^" : "", t2);
		json_object_set_new_nocheck(o, "type", hj_text(&h, type, false));
	}
	hj_set(&h, o, "message_type", hj_at(m, msh, 9, 1, 1, 0));
	hj_set(&h, o, "trigger", trig);
	hj_set(&h, o, "structure", hj_at(m, msh, 9, 1, 3, 0));
	hj_set(&h, o, "sending_application", hj_at(m, msh, 3, 1, 1, 0));
	hj_set(&h, o, "sending_facility", hj_at(m, msh, 4, 1, 1, 0));
	hj_set(&h, o, "receiving_application", hj_at(m, msh, 5, 1, 1, 0));
	hj_set(&h, o, "receiving_facility", hj_at(m, msh, 6, 1, 1, 0));
	hj_set(&h, o, "datetime", hj_at(m, msh, 7, 1, 1, 0));
	hj_set(&h, o, "version", hj_at(m, msh, 12, 1, 1, 0));
	hj_set(&h, o, "charset", m->charset);
	json_object_set_new_nocheck(o, "patient", hj_patient(&h));
	json_object_set_new_nocheck(o, "segments", hj_segments(&h));
	json_object_set_new_nocheck(o, "raw", hj_text(&h, raw, false));

	n = json_dumpb(o, NULL, 0, JSON_COMPACT);
	out = hj_alloc(n + 1);
	if (json_dumpb(o, out, n, JSON_COMPACT) != n)
		log_fatal("hl7json: dump size changed");
	out[n] = '\0';
	*len = n;

	json_decref(o);
	if (h.dec != NULL)
		explicit_bzero(h.dec, h.deccap);
	if (h.utf != NULL)
		explicit_bzero(h.utf, h.utfcap);
	free(h.dec);
	free(h.utf);
	return out;
}

void hl7json_free(char *json, size_t len)
{
	if (json == NULL)
		return;
	explicit_bzero(json, len);
	free(json);
}
