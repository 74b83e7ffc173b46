/* Fuzz target for the HL7 parser, the ACK builder and reader, and the JSON form: arbitrary
 * bytes as a peer sends them.
 *
 * - ack_parse reads the input as a peer's ACK.
 * - What parses is walked down to subcomponents (every iterator agrees with the numbered
 *   accessors, every view lies inside the message), every field is decoded, and hl7_get
 *   agrees with that walk for paths built from the message's own segments.
 * - The ACK for it, in each of AA/AE/AR, must parse, be an ACK, carry the message's MSH-10
 *   as MSA-2, and read back the control ID, error text and segment given to ack_build
 *   (taken from the message, so escaping meets every delimiter): unescape(escape(s)) == s.
 * - hl7json_message gives JSON that jansson reads back, with one entry per segment and the
 *   message as "raw"; hl7json_utf8 always writes valid UTF-8.
 * - What does not parse gets the unparsed AR, which must read back, and is read as far as
 *   its header (hl7_parse_header), whose AR must name it; batches are split and each part
 *   parsed.
 * Built by scripts/fuzz.sh (or `make fuzz`); with -DFUZZ_STANDALONE it is a plain program
 * that runs the files named on its command line through the same checks. */
#include <jansson.h>
#include <stdbool.h>

#include "common.h"
#include "hl7/ack.h"
#include "hl7/hl7.h"
#include "hl7/hl7json.h"

static const char *const paths[] = {
	"MSH-1", "MSH-2", "MSH-9.1", "MSH-9.2", "MSH-10", "MSH-12", "PID-3[2].1", "OBX(2)-5.1",
	"PID-5.1.2", "MSH-2[2]", "ZZZ(99)-999.9.9",
};

static void inside(const struct hl7_msg *m, struct hl7_str v)
{
	check(v.len == 0 || (v.p >= m->data && v.p + v.len <= m->data + m->len));
}

static bool same(struct hl7_str a, struct hl7_str b)
{
	return a.len == b.len && (a.len == 0 || a.p == b.p);
}

static void decode(const struct hl7_msg *m, struct hl7_str v)
{
	char *out = malloc(v.len ? v.len : 1), *cut = malloc(v.len / 2 + 1);
	char small[4];
	size_t n, full, k;

	check(out != NULL && cut != NULL);
	n = hl7_unescape(&m->d, v, out, v.len);
	check(n <= v.len);
	full = hl7_copy(&m->d, v, small, sizeof(small));
	check(full == n);
	check(small[n < 3 ? n : 3] == '\0');
	check(memcmp(small, out, n < 3 ? n : 3) == 0);
	/* less room cuts the same output */
	k = hl7_unescape(&m->d, v, cut, v.len / 2 + 1);
	check(k == (n < v.len / 2 + 1 ? n : v.len / 2 + 1));
	check(memcmp(cut, out, k) == 0);
	check(hl7_copy(&m->d, v, NULL, 0) == n);
	if (hl7_is_null(v))
		check(v.len == 2);
	free(out);
	free(cut);
}

/* The parts an iterator yields are exactly the numbered ones. */
static unsigned parts(const struct hl7_msg *m, struct hl7_str v, char delim,
		      bool (*nth)(const struct hl7_delims *, struct hl7_str, unsigned,
				  struct hl7_str *))
{
	struct hl7_iter it;
	struct hl7_str a, b;
	unsigned i = 1;

	hl7_iter_init(&it, v, delim);
	while (hl7_iter_next(&it, &a)) {
		check(nth(&m->d, v, i, &b) && a.p == b.p && a.len == b.len);
		inside(m, a);
		i++;
	}
	check(!hl7_iter_next(&it, &a) && a.len == 0);
	check(!nth(&m->d, v, i, &b) && b.len == 0);
	return i - 1;
}

/* hl7_get for one path built from coordinates agrees with the walk through the accessors.
 * occ is the segment's occurrence; r, c, s are 0 when left out of the path. */
static void path_agrees(const struct hl7_msg *m, unsigned si, unsigned occ, unsigned f,
			unsigned r, unsigned c, unsigned s, bool write_occ)
{
	const struct hl7_seg *g = &m->segs[si];
	char path[64];
	size_t n;
	struct hl7_str v, got;
	bool present;
	int rc;

	n = (size_t)snprintf(path, sizeof(path), "%s", g->name);
	if (write_occ || occ > 1)
		n += (size_t)snprintf(path + n, sizeof(path) - n, "(%u)", occ);
	n += (size_t)snprintf(path + n, sizeof(path) - n, "-%u", f);
	if (r)
		n += (size_t)snprintf(path + n, sizeof(path) - n, "[%u]", r);
	if (c)
		n += (size_t)snprintf(path + n, sizeof(path) - n, ".%u", c);
	if (c && s)
		snprintf(path + n, sizeof(path) - n, ".%u", s);
	else
		s = 0;

	present = hl7_field(m, si, f, &v);
	if (present && f <= 2 && strcmp(g->name, "MSH") == 0) {
		present = r <= 1 && c <= 1 && s <= 1;
	} else if (present) {
		present = hl7_rep(&m->d, v, r ? r : 1, &v);
		if (present && c)
			present = hl7_comp(&m->d, v, c, &v);
		if (present && s)
			present = hl7_sub(&m->d, v, s, &v);
	}
	present = present && v.len > 0;
	rc = hl7_get(m, path, &got);
	check(rc == (present ? 1 : 0));
	if (present)
		check(same(got, v));
	else
		check(got.len == 0);
}

static void paths_agree(const struct hl7_msg *m)
{
	unsigned limit = m->nsegs < 24 ? m->nsegs : 24;

	for (unsigned si = 0; si < limit; si++) {
		const struct hl7_seg *g = &m->segs[si];
		unsigned occ = 1, nf = g->nfields < 20 ? g->nfields : 20;

		for (unsigned k = 0; k < si; k++)
			occ += strcmp(m->segs[k].name, g->name) == 0;
		check(hl7_seg_find(m, g->name, occ) == (int)si);
		for (unsigned f = 1; f <= nf + 1; f++) {
			unsigned h = si * 31 + f * 7;

			path_agrees(m, si, occ, f, 0, 0, 0, false);
			path_agrees(m, si, occ, f, h % 3, 1 + h % 4, h % 3, (h & 1) != 0);
			path_agrees(m, si, occ, f, 1 + (h >> 2) % 3, (h >> 3) % 3, 1 + h % 2, false);
		}
	}
}

static void walk(const struct hl7_msg *m)
{
	struct hl7_str f, r, c, s;

	check(m->nsegs >= 1 && m->nsegs <= HL7_MAX_SEGMENTS);
	check(strcmp(m->segs[0].name, "MSH") == 0);
	check(m->d.field != 0 && m->d.comp != 0 && m->d.rep != 0);
	check(m->d.sub == 0 || m->d.esc != 0);
	inside(m, m->charset);
	for (unsigned si = 0; si < m->nsegs; si++) {
		const struct hl7_seg *g = &m->segs[si];
		bool msh = strcmp(g->name, "MSH") == 0;

		check(g->off + (size_t)g->len <= m->len);
		check(memcmp(m->data + g->off, g->name, 3) == 0);
		check(memchr(m->data + g->off, '\r', g->len) == NULL);
		check(memchr(m->data + g->off, '\n', g->len) == NULL);
		check(g->nfields <= HL7_MAX_FIELDS);
		check(!hl7_field(m, si, 0, &f) && !hl7_field(m, si, g->nfields + 1, &f));
		for (unsigned fi = 1; hl7_field(m, si, fi, &f); fi++) {
			check(f.len == 0 || (f.p >= m->data + g->off &&
					     f.p + f.len <= m->data + g->off + g->len));
			check(memchr(f.p, m->d.field, f.len) == NULL || (msh && fi == 1));
			decode(m, f);
			if (msh && fi <= 2)
				continue; /* MSH-1 and MSH-2 are never split */
			check(parts(m, f, m->d.rep, hl7_rep) == hl7_reps(&m->d, f));
			for (unsigned ri = 1; hl7_rep(&m->d, f, ri, &r); ri++) {
				parts(m, r, m->d.comp, hl7_comp);
				for (unsigned ci = 1; hl7_comp(&m->d, r, ci, &c); ci++) {
					parts(m, c, m->d.sub, hl7_sub);
					for (unsigned k = 1; hl7_sub(&m->d, c, k, &s); k++)
						decode(m, s);
				}
			}
		}
	}
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		int rc = hl7_get(m, paths[i], &f);

		check(rc == 0 || rc == 1);
		check(rc == 1 ? f.len > 0 : f.len == 0);
		inside(m, f);
	}
	paths_agree(m);
}

/* s as it reads back after ack_build escaped it for d: CR and LF are dropped, and so are
 * the delimiters when there is no escape character to write them with. */
static void expected_text(const struct hl7_delims *d, const char *s, char *out)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		char ch = *s;

		if (ch == '\r' || ch == '\n')
			continue;
		if (!d->esc && (ch == d->field || ch == d->comp || ch == d->rep ||
				(d->sub && ch == d->sub) || (d->trunc && ch == d->trunc)))
			continue;
		out[n++] = ch;
	}
	out[n] = '\0';
}

/* The value at path in a, decoded, equals want (when a has it; must when must). */
static void reads_back(const struct hl7_msg *a, const char *path, const char *want, bool must)
{
	struct hl7_str v;
	char got[256];
	int rc = hl7_get(a, path, &v);

	check(rc == 0 || rc == 1);
	if (must)
		check(rc == 1);
	if (rc == 1) {
		check(hl7_copy(&a->d, v, got, sizeof(got)) < sizeof(got));
		check(strcmp(got, want) == 0);
	}
}

/* A decoded value of m as a C string of at most len - 1 bytes (cut at a NUL). */
static void value(const struct hl7_msg *m, const char *path, char *out, size_t len)
{
	struct hl7_str v;

	hl7_get(m, path, &v);
	hl7_copy(&m->d, v, out, len);
}

/* Whether an ACK is due, as ack.h says: never for an ACK, always in original mode, and in
 * enhanced mode (MSH-15 or MSH-16 valued) as MSH-15 asks. */
static void wanted(const struct hl7_msg *m)
{
	struct hl7_str v15, v16;
	bool enh, ack = hl7_is_ack(m);
	int r15 = hl7_get(m, "MSH-15", &v15);

	enh = r15 == 1 || hl7_get(m, "MSH-16", &v16) == 1;
	check(ack_enhanced(m) == enh);
	for (int k = ACK_ACCEPT; k <= ACK_REJECT; k++) {
		bool want = true;

		if (ack)
			want = false;
		else if (enh && r15 == 1 && v15.len == 2 && memcmp(v15.p, "NE", 2) == 0)
			want = false;
		else if (enh && r15 == 1 && v15.len == 2 && memcmp(v15.p, "ER", 2) == 0)
			want = k != ACK_ACCEPT;
		else if (enh && r15 == 1 && v15.len == 2 && memcmp(v15.p, "SU", 2) == 0)
			want = k == ACK_ACCEPT;
		check(ack_wanted(m, (enum ack_code)k) == want);
	}
}

/* The ACK for m parses, is an ACK, and reads back with m's code and MSH-10, and with the
 * control ID, error text and error segment it was given. */
static void ack_round_trip(const struct hl7_msg *m, enum ack_code code, time_t now)
{
	struct hl7_error e = {HL7_DATA_TYPE, "", 2, 3, ""};
	struct hl7_msg a;
	struct hl7_error err;
	struct buf b = {0};
	struct hl7_str v;
	char got[3], ctrl[64], want[64], id[48], exp[256];

	value(m, "MSH-10", id, sizeof(id));
	if (id[0] == '\0')
		snprintf(id, sizeof(id), "ACK|1^2~3\\4&5#6\r\n7");
	value(m, "MSH-3", e.text, sizeof(e.text));
	value(m, "MSH-4", e.segment, sizeof(e.segment));
	if (code == ACK_REJECT)
		e.code = HL7_OK; /* written as 207 */
	if (ack_build(&b, m, code, code == ACK_ACCEPT ? NULL : &e, id, now) == -1) {
		check(hl7_is_ack(m));
		check(!ack_wanted(m, code));
		check(b.len == 0);
		return;
	}
	check(!hl7_is_ack(m));
	if (!ack_enhanced(m))
		check(ack_wanted(m, code));
	check(b.len > 0 && memchr(buf_head(&b), '\n', b.len) == NULL);
	hl7_msg_init(&a);
	check(hl7_parse(&a, (const char *)buf_head(&b), b.len, &err) == 0);
	check(hl7_is_ack(&a));
	check(memcmp(&a.d, &m->d, sizeof(a.d)) == 0);
	check((hl7_seg_find(&a, "ERR", 1) >= 0) == (code != ACK_ACCEPT));
	check(hl7_seg_find(&a, "MSA", 1) == 1);
	check(ack_parse((const char *)buf_head(&b), b.len, got, ctrl, sizeof(ctrl)) == 0);
	check(got[0] == (ack_enhanced(m) ? 'C' : 'A') && got[1] == "AER"[code] && got[2] == '\0');
	/* the header: sender and receiver swapped, MSH-11 and MSH-12 copied, the trigger kept */
	for (unsigned i = 0; i < 6; i++) {
		static const unsigned pairs[6][2] = {{3, 5}, {4, 6}, {5, 3}, {6, 4}, {11, 11}, {12, 12}};
		struct hl7_str x, y;

		check(hl7_field(&a, 0, pairs[i][0], &x));
		hl7_field(m, 0, pairs[i][1], &y);
		check(x.len == y.len && memcmp(x.p, y.p, x.len) == 0);
	}
	{
		struct hl7_str t, at;

		check(hl7_get(&a, "MSH-9.1", &at) == 1 && at.len == 3);
		if (hl7_get(m, "MSH-9.2", &t) == 1)
			check(hl7_get(&a, "MSH-9.2", &at) == 1 && at.len == t.len &&
			      memcmp(at.p, t.p, t.len) == 0 && hl7_get(&a, "MSH-9.3", &at) == 1);
		else
			check(hl7_get(&a, "MSH-9.2", &at) == 0);
	}
	/* MSA-2 is the message's MSH-10 */
	value(m, "MSH-10", want, sizeof(want));
	check(strcmp(ctrl, want) == 0);
	/* what ack_build was given reads back */
	expected_text(&m->d, id, exp);
	reads_back(&a, "MSH-10", exp, exp[0] != '\0');
	if (code != ACK_ACCEPT) {
		expected_text(&m->d, e.text, exp);
		reads_back(&a, "MSA-3", exp, exp[0] != '\0');
		reads_back(&a, "ERR-1.4.2", exp, false);
		reads_back(&a, "ERR-3.2", exp, exp[0] != '\0' && hl7_get(&a, "ERR-3", &v) == 1);
		/* HL7_OK is no error code: it is written as 207, application internal error */
		reads_back(&a, "ERR-3.1", code == ACK_REJECT ? "207" : "102", false);
		check(hl7_get(&a, "ERR-1", &v) == 1 || hl7_get(&a, "ERR-3.1", &v) == 1);
		expected_text(&m->d, e.segment, exp);
		reads_back(&a, "ERR-2.1", exp, false);
	}
	hl7_msg_free(&a);
	buf_free(&b);
}

static void unparsed(const struct hl7_error *err)
{
	struct buf b = {0};
	char code[3], ctrl[8];

	check(err->code != HL7_OK && err->text[0] != '\0');
	check(memchr(err->segment, '\0', sizeof(err->segment)) != NULL);
	check(memchr(err->text, '\0', sizeof(err->text)) != NULL);
	ack_build_unparsed(&b, err, "U|^~\\&", 0);
	check(ack_parse((const char *)buf_head(&b), b.len, code, ctrl, sizeof(ctrl)) == 0);
	check(strcmp(code, "AR") == 0 && ctrl[0] == '\0');
	buf_free(&b);
}

/* What hl7_parse refused, read as far as its header: one MSH segment inside the first line,
 * split at MSH-1 alone; the refusal built from it parses back and names the message (MSA-2
 * its MSH-10, MSH-3..6 swapped, MSH-11/12 echoed, the header's delimiters), unless the
 * header reads as an ACK, which gets nothing. */
static void header(const char *p, size_t size, const struct hl7_error *err)
{
	static const unsigned pairs[6][2] = {{3, 5}, {4, 6}, {5, 3}, {6, 4}, {11, 11}, {12, 12}};
	struct hl7_msg h, a;
	struct buf b = {0};
	struct hl7_str x, y;
	const struct hl7_delims *d;
	int msa;

	hl7_msg_init(&h);
	hl7_msg_init(&a);
	if (hl7_parse_header(&h, p, size) == -1) {
		check(h.nsegs == 0);
		goto out;
	}
	d = &h.d;
	check(h.nsegs == 1 && strcmp(h.segs[0].name, "MSH") == 0);
	check(h.segs[0].nfields >= 2 && h.segs[0].nfields <= HL7_MAX_FIELDS);
	check(memchr(h.data + h.segs[0].off, '\r', h.segs[0].len) == NULL);
	check(memchr(h.data + h.segs[0].off, '\n', h.segs[0].len) == NULL);
	check(d->field && d->comp && d->rep && d->field != d->comp && d->field != d->rep &&
	      d->comp != d->rep && d->field != d->esc && d->field != d->sub);
	for (unsigned f = 1; hl7_field(&h, 0, f, &x); f++) {
		inside(&h, x);
		check(f == 1 || memchr(x.p, d->field, x.len) == NULL);
	}
	if (ack_build(&b, &h, ACK_REJECT, err, "H1", 0) == -1) {
		check(hl7_is_ack(&h) && b.len == 0);
		goto out;
	}
	check(hl7_parse(&a, (const char *)buf_head(&b), b.len, NULL) == 0);
	check(hl7_is_ack(&a) && memcmp(&a.d, d, sizeof(a.d)) == 0);
	for (unsigned i = 0; i < 6; i++) {
		check(hl7_field(&a, 0, pairs[i][0], &x));
		hl7_field(&h, 0, pairs[i][1], &y);
		check(x.len == y.len && memcmp(x.p, y.p, x.len) == 0);
	}
	msa = hl7_seg_find(&a, "MSA", 1);
	check(msa == 1 && hl7_seg_find(&a, "ERR", 1) == 2);
	check(hl7_field(&a, (unsigned)msa, 1, &x) && x.len == 2 && x.p[1] == 'R');
	hl7_field(&a, (unsigned)msa, 2, &x);
	hl7_field(&h, 0, 10, &y);
	check(x.len == y.len && memcmp(x.p, y.p, x.len) == 0);
out:
	buf_free(&b);
	hl7_msg_free(&a);
	hl7_msg_free(&h);
}

static void utf8(const uint8_t *data, size_t size)
{
	size_t cap = 3 * size + 3, hi = 0, n;
	char *out = malloc(cap);

	check(out != NULL);
	for (size_t i = 0; i < size; i++)
		hi += data[i] >= 0x80;
	n = hl7json_utf8((const char *)data, size, 0, out, cap);
	check(n >= size && n <= 3 * size && utf8_valid((const unsigned char *)out, n));
	if (utf8_valid(data, size))
		check(n == size && (size == 0 || memcmp(out, data, size) == 0));
	n = hl7json_utf8((const char *)data, size, 1, out, cap);
	check(n == size + hi && utf8_valid((const unsigned char *)out, n));
	free(out);
}

static void json(const struct hl7_msg *m, int64_t id)
{
	static const char *const keys[] = {
		"control_id", "type", "message_type", "trigger", "structure", "sending_application",
		"sending_facility", "receiving_application", "receiving_facility", "datetime",
		"version", "charset",
	};
	json_error_t jerr;
	json_t *o, *segs, *raw, *v;
	size_t len, k = 0, hi = 0;
	char *s = hl7json_message(m, id, &len);

	check(s != NULL && strlen(s) == len);
	o = json_loadb(s, len, JSON_ALLOW_NUL, &jerr);
	if (o == NULL)
		fprintf(stderr, "json: %s at %d\n", jerr.text, jerr.position);
	check(o != NULL && json_is_object(o));
	check(json_integer_value(json_object_get(o, "id")) == id);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		v = json_object_get(o, keys[i]);
		check(v != NULL && (json_is_string(v) || json_is_null(v)));
	}
	/* values as hl7_get and hl7_unescape give them (when plain ASCII) */
	for (size_t i = 0; i < 2; i++) {
		static const char *const at[2][2] = {{"control_id", "MSH-10"}, {"version", "MSH-12.1"}};
		struct hl7_str hv;
		char dec[256];
		size_t dn, hi2 = 0;

		v = json_object_get(o, at[i][0]);
		hl7_get(m, at[i][1], &hv);
		if (hl7_is_null(hv)) {
			check(json_is_null(v));
			continue;
		}
		check(json_is_string(v));
		if (hv.len >= sizeof(dec))
			continue;
		dn = hl7_unescape(&m->d, hv, dec, sizeof(dec));
		for (size_t j = 0; j < dn; j++)
			hi2 += (unsigned char)dec[j] >= 0x80;
		if (hi2 == 0)
			check(json_string_length(v) == dn && memcmp(json_string_value(v), dec, dn) == 0);
	}
	v = json_object_get(o, "patient");
	check(v != NULL && json_is_null(v) == (hl7_seg_find(m, "PID", 1) < 0));
	segs = json_object_get(o, "segments");
	check(segs != NULL && json_is_array(segs));
	for (unsigned si = 0; si < m->nsegs; si++) {
		json_t *seg;

		if (strcmp(m->segs[si].name, "MSH") == 0)
			continue;
		seg = json_array_get(segs, k++);
		check(seg != NULL);
		v = json_object_get(seg, "name");
		check(json_is_string(v) && strcmp(json_string_value(v), m->segs[si].name) == 0);
		check(json_array_size(json_object_get(seg, "fields")) == m->segs[si].nfields);
	}
	check(json_array_size(segs) == k);
	raw = json_object_get(o, "raw");
	check(raw != NULL && json_is_string(raw));
	for (size_t i = 0; i < m->len; i++)
		hi += (unsigned char)m->data[i] >= 0x80;
	check(json_string_length(raw) >= m->len);
	if (hi == 0)
		check(json_string_length(raw) == m->len &&
		      memcmp(json_string_value(raw), m->data, m->len) == 0);
	json_decref(o);
	hl7json_free(s, len);
}

/* The input read as a peer's ACK. */
static void peer_ack(const char *p, size_t size)
{
	char code[3], ctrl[64], small[4];

	if (ack_parse(p, size, code, ctrl, sizeof(ctrl)) == 0) {
		check(strlen(code) == 2 && (code[0] == 'A' || code[0] == 'C'));
		check(strchr("AER", code[1]) != NULL);
		check(strlen(ctrl) < sizeof(ctrl));
		check(ack_parse(p, size, code, small, sizeof(small)) == 0);
		check(strncmp(small, ctrl, sizeof(small) - 1) == 0);
	} else {
		check(ack_parse(p, size, code, small, sizeof(small)) == -1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *p = fuzz_dup(data, size, 0); /* exactly size bytes: a read past the end is caught */
	struct hl7_msg m;
	struct hl7_error err;
	struct hl7_str span;
	size_t pos = 0, last = 0;
	char path[25];
	size_t plen = size < sizeof(path) - 1 ? size : sizeof(path) - 1;
	int rc;

	(void)hl7_is_batch(p, size);
	peer_ack(p, size);
	utf8(data, size);
	hl7_msg_init(&m);
	if (hl7_parse(&m, p, size, &err) == 0) {
		check(err.code == HL7_OK);
		walk(&m);
		json(&m, (int64_t)size - 7);
		wanted(&m);
		ack_round_trip(&m, ACK_ACCEPT, 0);
		ack_round_trip(&m, ACK_ERROR, 1700000000);
		ack_round_trip(&m, ACK_REJECT, 4102444800);
		/* the last bytes as a path: malformed ones are -1, never a crash */
		memcpy(path, p + size - plen, plen);
		path[plen] = '\0';
		rc = hl7_get(&m, path, &span);
		check(rc >= -1 && rc <= 1 && (rc == 1) == (span.len > 0));
	} else {
		check(m.nsegs == 0);
		unparsed(&err);
		header(p, size, &err);
	}
	/* batches: spans move forward, stay inside, and each parses or fails cleanly */
	while (hl7_batch_next(p, size, &pos, &span) == 1) {
		check(span.len > 0 && span.p >= p && span.p + span.len <= p + size);
		check(pos > last && pos <= size);
		last = pos;
		/* a span that is the whole input was walked above */
		if (hl7_parse(&m, span.p, span.len, &err) == 0 && span.len != size)
			walk(&m);
	}
	check(pos == size);
	hl7_msg_free(&m);
	free(p);
	return 0;
}
