/* The HL7 v2 parser: one pass indexes segments and fields as offsets; everything below the
 * field is found on demand. The pass looks at 16 bytes at a time for the three bytes that
 * matter (the field separator, CR and LF), so indexing runs near memory speed. */
#include "hl7/hl7.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/num.h"
#include "core/log.h"

#define SEGS_INIT 64
#define FIELDS_INIT 1024

static const char empty_view[1] = "";

/* Fills err, if given. fmt never receives message content. */
static void __attribute__((format(printf, 6, 7)))
set_err(struct hl7_error *err, enum hl7_code code, const char *seg, unsigned seq, unsigned field,
	const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	err->code = code;
	snprintf(err->segment, sizeof(err->segment), "%s", seg);
	err->seq = seq;
	err->field = field;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
}

static void *grow(void *p, uint32_t *cap, uint32_t init, size_t elem)
{
	size_t n = *cap ? (size_t)*cap * 2 : init;
	void *q = realloc(p, n * elem);

	if (q == NULL)
		log_fatal("event=oom bytes=%zu", n * elem);
	*cap = (uint32_t)n;
	return q;
}

void hl7_msg_init(struct hl7_msg *m)
{
	memset(m, 0, sizeof(*m));
}

void hl7_msg_free(struct hl7_msg *m)
{
	if (m == NULL)
		return;
	free(m->segs);
	free(m->fields);
	memset(m, 0, sizeof(*m));
}

/* A delimiter is printable ASCII and not a letter or digit. */
static bool delim_ok(unsigned char c)
{
	if (c < 0x21 || c > 0x7e)
		return false;
	return !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'));
}

static bool name_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Reads MSH-1 and MSH-2 at data[s..len), which starts with "MSH". */
static int parse_delims(const char *data, size_t len, size_t s, struct hl7_delims *d,
			struct hl7_error *err)
{
	const unsigned char *p = (const unsigned char *)data;
	char enc[5];
	size_t n = 0, i;

	memset(d, 0, sizeof(*d));
	if (len - s < 4 || p[s + 3] == '\r' || p[s + 3] == '\n') {
		set_err(err, HL7_REQUIRED_FIELD, "MSH", 1, 1, "MSH-1 field separator missing");
		return -1;
	}
	if (!delim_ok(p[s + 3])) {
		set_err(err, HL7_DATA_TYPE, "MSH", 1, 1, "MSH-1 field separator malformed");
		return -1;
	}
	d->field = (char)p[s + 3];
	for (i = s + 4; i < len && p[i] != (unsigned char)d->field && p[i] != '\r' && p[i] != '\n';
	     i++) {
		if (n == sizeof(enc) || !delim_ok(p[i]) || p[i] == (unsigned char)d->field ||
		    memchr(enc, p[i], n) != NULL) {
			set_err(err, HL7_DATA_TYPE, "MSH", 1, 2, "MSH-2 encoding characters malformed");
			return -1;
		}
		enc[n++] = (char)p[i];
	}
	if (n < 2) {
		set_err(err, HL7_DATA_TYPE, "MSH", 1, 2, "MSH-2 encoding characters malformed");
		return -1;
	}
	d->comp = enc[0];
	d->rep = enc[1];
	d->esc = n > 2 ? enc[2] : 0;
	d->sub = n > 3 ? enc[3] : 0;
	d->trunc = n > 4 ? enc[4] : 0;
	return 0;
}

/* The state of the indexing pass. Counts are size_t so that stores into the uint32_t index
 * cannot alias them and the compiler keeps them in registers. */
struct scan {
	struct hl7_msg *m;
	struct hl7_fld *f; /* m->fields */
	size_t nf;         /* fields used */
	size_t stop;       /* the hot path stops here: capacity, or the segment's field limit */
	size_t seg_start;  /* offset of the current segment */
	size_t fld_start;  /* offset of the current field */
	size_t nsegs;
	bool in_name; /* the current segment's name has not ended yet */
	char fs;
	unsigned quirks; /* the line endings seen, HL7_QUIRK_CR/LF/CRLF */
	struct hl7_error *err;
};

static void scan_stop(struct scan *s)
{
	size_t lim = s->m->segs[s->nsegs - 1].field0 + (size_t)HL7_MAX_FIELDS;

	s->stop = s->m->fieldcap < lim ? s->m->fieldcap : lim;
}

/* Slow path of adding a field: grows the index or reports the limit. */
static int field_room(struct scan *s)
{
	struct hl7_seg *g = &s->m->segs[s->nsegs - 1];

	if (s->nf - g->field0 >= HL7_MAX_FIELDS) {
		set_err(s->err, HL7_DATA_TYPE, g->name, (unsigned)s->nsegs, HL7_MAX_FIELDS + 1,
			"more than %d fields in a segment", HL7_MAX_FIELDS);
		return -1;
	}
	s->m->fields = grow(s->m->fields, &s->m->fieldcap, FIELDS_INIT, sizeof(*s->m->fields));
	s->f = s->m->fields;
	scan_stop(s);
	return 0;
}

static inline int push_field(struct scan *s, size_t off, size_t len)
{
	if (__builtin_expect(s->nf >= s->stop, 0) && field_room(s) == -1)
		return -1;
	s->f[s->nf].off = (uint32_t)off;
	s->f[s->nf].len = (uint32_t)len;
	s->nf++;
	return 0;
}

static void seg_close(struct scan *s, size_t i)
{
	struct hl7_seg *g = &s->m->segs[s->nsegs - 1];

	g->len = (uint32_t)(i - g->off);
	g->nfields = (uint32_t)(s->nf - g->field0);
	s->seg_start = i + 1;
	s->in_name = true;
}

/* Notes how the line ending at i ends: CR alone, LF alone, or CR LF (noted at its LF; the
 * CR before it ended the segment, the LF ends an empty line). The end of the data (i ==
 * len) is no terminator. Called once per line, never per field. */
static void note_end(struct scan *s, size_t i, unsigned char c)
{
	const char *p = s->m->data;

	if (i >= s->m->len)
		return;
	if (c == '\n')
		s->quirks |= i > 0 && p[i - 1] == '\r' ? HL7_QUIRK_CRLF : HL7_QUIRK_LF;
	else if (i + 1 >= s->m->len || p[i + 1] != '\n')
		s->quirks |= HL7_QUIRK_CR;
}

/* The segment name ended at i with byte c (the field separator or a terminator). */
static int seg_name(struct scan *s, size_t i, unsigned char c)
{
	const unsigned char *p = (const unsigned char *)s->m->data + s->seg_start;
	size_t n = i - s->seg_start, k;
	struct hl7_seg *g;

	if (c != (unsigned char)s->fs) {
		note_end(s, i, c);
		/* an empty line, or one of blanks only, is skipped */
		for (k = 0; k < n && (p[k] == ' ' || p[k] == '\t'); k++)
			;
		if (k == n) {
			s->seg_start = i + 1;
			return 0;
		}
	}
	if (n != 3 || !name_char(p[0]) || !name_char(p[1]) || !name_char(p[2])) {
		set_err(s->err, HL7_SEGMENT_SEQUENCE, "", (unsigned)s->nsegs + 1, 0,
			"segment %u name malformed", (unsigned)s->nsegs + 1);
		return -1;
	}
	if (s->nsegs >= HL7_MAX_SEGMENTS) {
		set_err(s->err, HL7_SEGMENT_SEQUENCE, "", (unsigned)s->nsegs + 1, 0,
			"more than %d segments", HL7_MAX_SEGMENTS);
		return -1;
	}
	if (s->nsegs == s->m->segcap)
		s->m->segs = grow(s->m->segs, &s->m->segcap, SEGS_INIT, sizeof(*s->m->segs));
	g = &s->m->segs[s->nsegs++];
	g->off = (uint32_t)s->seg_start;
	g->len = 0;
	g->field0 = (uint32_t)s->nf;
	g->nfields = 0;
	memcpy(g->name, p, 3);
	g->name[3] = '\0';
	scan_stop(s);
	if (c != (unsigned char)s->fs) {
		seg_close(s, i);
		return 0;
	}
	s->in_name = false;
	s->fld_start = i + 1;
	/* MSH-1 is the field separator itself */
	if (memcmp(g->name, "MSH", 3) == 0)
		return push_field(s, i, 1);
	return 0;
}

static inline int on_special(struct scan *s, size_t i, unsigned char c)
{
	if (__builtin_expect(s->in_name, 0))
		return seg_name(s, i, c);
	if (push_field(s, s->fld_start, i - s->fld_start) == -1)
		return -1;
	s->fld_start = i + 1;
	if (c != (unsigned char)s->fs) {
		note_end(s, i, c);
		seg_close(s, i);
	}
	return 0;
}

static int scan_all(struct scan *s, size_t i, size_t len)
{
	const unsigned char *p = (const unsigned char *)s->m->data;
	const unsigned char fs = (unsigned char)s->fs;

#ifdef __SSE2__
	const __m128i vfs = _mm_set1_epi8((char)fs);
	const __m128i vcr = _mm_set1_epi8('\r');
	const __m128i vlf = _mm_set1_epi8('\n');

	for (; i + 16 <= len; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		__m128i hit = _mm_or_si128(_mm_cmpeq_epi8(v, vfs),
					   _mm_or_si128(_mm_cmpeq_epi8(v, vcr), _mm_cmpeq_epi8(v, vlf)));
		unsigned mask = (unsigned)_mm_movemask_epi8(hit);

		while (mask != 0) {
			unsigned b = (unsigned)__builtin_ctz(mask);

			mask &= mask - 1;
			if (on_special(s, i + b, p[i + b]) == -1)
				return -1;
		}
	}
#endif
	for (; i < len; i++) {
		unsigned char c = p[i];

		if ((c == fs || c == '\r' || c == '\n') && on_special(s, i, c) == -1)
			return -1;
	}
	/* the end of the data ends the last segment */
	return on_special(s, len, '\r');
}

/* Empties m for data and returns where its first segment starts: past a byte order mark
 * (noted in m->quirks) and leading CR and LF. */
static size_t msg_reset(struct hl7_msg *m, const char *data, size_t len)
{
	static const char bom[3] = {'\xef', '\xbb', '\xbf'};
	size_t start = 0;

	m->data = data;
	m->len = len;
	m->nsegs = 0;
	m->nfields = 0;
	m->quirks = 0;
	m->charset.p = empty_view;
	m->charset.len = 0;
	memset(&m->d, 0, sizeof(m->d));
	/* Windows tools write one before MSH: it is no part of the message */
	if (len >= sizeof(bom) && memcmp(data, bom, sizeof(bom)) == 0) {
		start = sizeof(bom);
		m->quirks |= HL7_QUIRK_BOM;
	}
	while (start < len && (data[start] == '\r' || data[start] == '\n'))
		start++;
	return start;
}

int hl7_parse(struct hl7_msg *m, const char *data, size_t len, struct hl7_error *err)
{
	struct scan s;
	struct hl7_str f18;
	size_t start = msg_reset(m, data, len);
	int si;

	if (err != NULL)
		memset(err, 0, sizeof(*err));
	if (len >= UINT32_MAX) {
		set_err(err, HL7_DATA_TYPE, "", 0, 0, "message of %zu bytes too large", len);
		return -1;
	}
	if (len - start < 3 || memcmp(data + start, "MSH", 3) != 0) {
		set_err(err, HL7_SEGMENT_SEQUENCE, "", 1, 0, "message does not start with MSH");
		return -1;
	}
	if (parse_delims(data, len, start, &m->d, err) == -1)
		return -1;
	if (m->fields == NULL)
		m->fields = grow(NULL, &m->fieldcap, FIELDS_INIT, sizeof(*m->fields));
	if (m->segs == NULL)
		m->segs = grow(NULL, &m->segcap, SEGS_INIT, sizeof(*m->segs));

	memset(&s, 0, sizeof(s));
	s.m = m;
	s.f = m->fields;
	s.stop = 0; /* no segment yet: the first field goes through field_room's checks */
	s.seg_start = start;
	s.in_name = true;
	s.fs = m->d.field;
	s.err = err;
	if (scan_all(&s, start, len) == -1) {
		m->nsegs = 0;
		m->nfields = 0;
		return -1;
	}
	m->nsegs = (uint32_t)s.nsegs;
	m->nfields = (uint32_t)s.nf;
	m->quirks |= s.quirks;

	si = 0; /* the first segment is MSH */
	if (hl7_field(m, (unsigned)si, 18, &f18))
		hl7_rep(&m->d, f18, 1, &m->charset);
	return 0;
}

/* The delimiters of a header whose MSH-2 is malformed: the standard's encoding characters
 * after the sender's own field separator; the one that equals it (if any) becomes '|',
 * which then is not the separator. */
static void header_delims(struct hl7_delims *d, char fs)
{
	char enc[4] = {'^', '~', '\\', '&'};

	for (size_t k = 0; k < sizeof(enc); k++)
		if (enc[k] == fs)
			enc[k] = '|';
	d->field = fs;
	d->comp = enc[0];
	d->rep = enc[1];
	d->esc = enc[2];
	d->sub = enc[3];
	d->trunc = 0;
}

int hl7_parse_header(struct hl7_msg *m, const char *data, size_t len)
{
	size_t start = msg_reset(m, data, len), eol, p, nf, cap;
	const char *q;
	struct hl7_seg *g;

	if (len >= UINT32_MAX || len - start < 4 || memcmp(data + start, "MSH", 3) != 0 ||
	    !delim_ok((unsigned char)data[start + 3]))
		return -1;
	for (eol = start + 3; eol < len && data[eol] != '\r' && data[eol] != '\n'; eol++)
		;
	if (parse_delims(data, len, start, &m->d, NULL) == -1)
		header_delims(&m->d, data[start + 3]);
	if (m->fields == NULL)
		m->fields = grow(NULL, &m->fieldcap, FIELDS_INIT, sizeof(*m->fields));
	if (m->segs == NULL)
		m->segs = grow(NULL, &m->segcap, SEGS_INIT, sizeof(*m->segs));
	cap = m->fieldcap < HL7_MAX_FIELDS ? m->fieldcap : HL7_MAX_FIELDS;
	/* MSH-1 is the separator itself; then every field up to the end of the line */
	m->fields[0].off = (uint32_t)(start + 3);
	m->fields[0].len = 1;
	nf = 1;
	for (p = start + 4; nf < cap; p = (size_t)(q - data) + 1) {
		q = p < eol ? memchr(data + p, m->d.field, eol - p) : NULL;
		m->fields[nf].off = (uint32_t)p;
		m->fields[nf].len = (uint32_t)((q != NULL ? (size_t)(q - data) : eol) - p);
		nf++;
		if (q == NULL)
			break;
	}
	g = &m->segs[0];
	g->off = (uint32_t)start;
	g->len = (uint32_t)(eol - start);
	g->field0 = 0;
	g->nfields = (uint32_t)nf;
	memcpy(g->name, "MSH", 4);
	m->nsegs = 1;
	m->nfields = (uint32_t)nf;
	return 0;
}

int hl7_seg_find(const struct hl7_msg *m, const char *name, unsigned n)
{
	if (n == 0)
		return -1;
	for (uint32_t i = 0; i < m->nsegs; i++) {
		if (memcmp(m->segs[i].name, name, 4) == 0 && --n == 0)
			return (int)i;
	}
	return -1;
}

bool hl7_field(const struct hl7_msg *m, unsigned si, unsigned f, struct hl7_str *out)
{
	const struct hl7_fld *fl;

	out->p = empty_view;
	out->len = 0;
	if (si >= m->nsegs || f == 0 || f > m->segs[si].nfields)
		return false;
	fl = &m->fields[m->segs[si].field0 + f - 1];
	out->p = m->data + fl->off;
	out->len = fl->len;
	return true;
}

/* The n-th (1-based) part of v split at delim; delim 0 means v is one part. */
static bool nth(struct hl7_str v, char delim, unsigned n, struct hl7_str *out)
{
	const char *p = v.p, *end = v.p + v.len, *q;

	out->p = empty_view;
	out->len = 0;
	if (n == 0 || v.len == 0)
		return false;
	for (; n > 1; n--) {
		q = delim ? memchr(p, delim, (size_t)(end - p)) : NULL;
		if (q == NULL)
			return false;
		p = q + 1;
	}
	q = delim ? memchr(p, delim, (size_t)(end - p)) : NULL;
	out->p = p;
	out->len = (size_t)((q ? q : end) - p);
	return true;
}

bool hl7_rep(const struct hl7_delims *d, struct hl7_str field, unsigned r, struct hl7_str *out)
{
	return nth(field, d->rep, r, out);
}

bool hl7_comp(const struct hl7_delims *d, struct hl7_str rep, unsigned c, struct hl7_str *out)
{
	return nth(rep, d->comp, c, out);
}

bool hl7_sub(const struct hl7_delims *d, struct hl7_str comp, unsigned s, struct hl7_str *out)
{
	return nth(comp, d->sub, s, out);
}

unsigned hl7_reps(const struct hl7_delims *d, struct hl7_str field)
{
	const char *p = field.p, *end = field.p + field.len, *q;
	unsigned n = 1;

	if (field.len == 0)
		return 0;
	while ((q = memchr(p, d->rep, (size_t)(end - p))) != NULL) {
		n++;
		p = q + 1;
	}
	return n;
}

void hl7_iter_init(struct hl7_iter *it, struct hl7_str v, char delim)
{
	it->p = v.p;
	it->end = v.p + v.len;
	it->delim = delim;
	it->done = v.len == 0;
}

bool hl7_iter_next(struct hl7_iter *it, struct hl7_str *out)
{
	const char *q;

	if (it->done) {
		out->p = empty_view;
		out->len = 0;
		return false;
	}
	/* parts are short: a plain loop beats a call to memchr */
	for (q = it->p; q < it->end && *q != it->delim; q++)
		;
	out->p = it->p;
	if (q == it->end || it->delim == 0) {
		out->len = (size_t)(it->end - it->p);
		it->done = true;
	} else {
		out->len = (size_t)(q - it->p);
		it->p = q + 1;
	}
	return true;
}

/* A path number: 1 to 999999, no sign, no leading zero. */
static int path_num(const char **s, unsigned *out)
{
	const char *p = *s;
	unsigned v = 0;
	int n = 0;

	if (*p < '1' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		if (++n > 6)
			return -1;
		v = v * 10 + (unsigned)(*p - '0');
		p++;
	}
	*s = p;
	*out = v;
	return 0;
}

int hl7_get(const struct hl7_msg *m, const char *path, struct hl7_str *out)
{
	char name[4];
	unsigned occ = 1, f, r = 0, c = 0, sc = 0;
	const char *p = path;
	struct hl7_str v;
	int si;

	out->p = empty_view;
	out->len = 0;
	for (int i = 0; i < 3; i++) {
		if (!name_char((unsigned char)p[i]))
			return -1;
		name[i] = p[i];
	}
	name[3] = '\0';
	p += 3;
	if (*p == '(') {
		p++;
		if (path_num(&p, &occ) == -1 || *p++ != ')')
			return -1;
	}
	if (*p++ != '-' || path_num(&p, &f) == -1)
		return -1;
	if (*p == '[') {
		p++;
		if (path_num(&p, &r) == -1 || *p++ != ']')
			return -1;
	}
	if (*p == '.') {
		p++;
		if (path_num(&p, &c) == -1)
			return -1;
		if (*p == '.') {
			p++;
			if (path_num(&p, &sc) == -1)
				return -1;
		}
	}
	if (*p != '\0')
		return -1;

	si = hl7_seg_find(m, name, occ);
	if (si < 0 || !hl7_field(m, (unsigned)si, f, &v))
		return 0;
	if (f <= 2 && memcmp(name, "MSH", 4) == 0) {
		/* the delimiters themselves are never split */
		if (r > 1 || c > 1 || sc > 1)
			return 0;
		*out = v;
		return v.len > 0;
	}
	if (!hl7_rep(&m->d, v, r ? r : 1, &v))
		return 0;
	if (c && !hl7_comp(&m->d, v, c, &v))
		return 0;
	if (sc && !hl7_sub(&m->d, v, sc, &v))
		return 0;
	if (v.len == 0)
		return 0;
	*out = v;
	return 1;
}

bool hl7_is_null(struct hl7_str v)
{
	return v.len == 2 && v.p[0] == '"' && v.p[1] == '"';
}

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (num_hexdigit((unsigned char)s[i]) < 0)
			return false;
	}
	return true;
}

/* True if s[0..n) is an optional sign (when sign) then digits only. */
static bool num_arg(const char *s, size_t n, bool sign)
{
	size_t i = 0;

	if (sign && n > 0 && (s[0] == '+' || s[0] == '-'))
		i = 1;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
	}
	return true;
}

/* The output of an escape sequence s[0..n) (between the escape characters): writes it to
 * *c (len 1) and returns 1, returns 0 for a sequence that is dropped, -1 for one that is
 * unknown or malformed (copied literally). */
static int escape_seq(const struct hl7_delims *d, const char *s, size_t n, char *c)
{
	if (n == 0)
		return -1;
	if (n == 1) {
		switch (s[0]) {
		case 'F': *c = d->field; return 1;
		case 'S': *c = d->comp; return 1;
		case 'T': *c = d->sub ? d->sub : 0; return d->sub ? 1 : -1;
		case 'R': *c = d->rep; return 1;
		case 'E': *c = d->esc; return 1;
		case 'P': *c = d->trunc; return d->trunc ? 1 : -1;
		case 'H':
		case 'N': return 0;
		default: return -1;
		}
	}
	switch (s[0]) {
	case 'C':
		return n == 5 && all_hex(s + 1, 4) ? 0 : -1;
	case 'M':
		return (n == 5 || n == 7) && all_hex(s + 1, n - 1) ? 0 : -1;
	case 'Z':
		return 0;
	case '.':
		break;
	default:
		return -1;
	}
	if (n < 3)
		return -1;
	if (memcmp(s, ".br", 3) == 0 && n == 3) {
		*c = '\n';
		return 1;
	}
	if (memcmp(s, ".sp", 3) == 0 && num_arg(s + 3, n - 3, false)) {
		*c = '\n';
		return 1;
	}
	if ((memcmp(s, ".in", 3) == 0 || memcmp(s, ".ti", 3) == 0) && num_arg(s + 3, n - 3, true))
		return 0;
	if (memcmp(s, ".sk", 3) == 0 && num_arg(s + 3, n - 3, false))
		return 0;
	if (n == 3 && (memcmp(s, ".ce", 3) == 0 || memcmp(s, ".fi", 3) == 0 ||
		       memcmp(s, ".nf", 3) == 0))
		return 0;
	return -1;
}

static void put(char *out, size_t cap, size_t *n, const char *p, size_t len)
{
	if (*n < cap)
		memcpy(out + *n, p, cap - *n < len ? cap - *n : len);
	*n += len;
}

/* Decodes v, writing at most cap bytes; returns the full decoded length. */
static size_t decode(const struct hl7_delims *d, struct hl7_str v, char *out, size_t cap)
{
	const char *p = v.p, *end = v.p + v.len, *e, *close;
	size_t n = 0;
	char c;

	if (d->esc == 0) {
		put(out, cap, &n, p, v.len);
		return n;
	}
	while (p < end) {
		e = memchr(p, d->esc, (size_t)(end - p));
		if (e == NULL) {
			put(out, cap, &n, p, (size_t)(end - p));
			break;
		}
		put(out, cap, &n, p, (size_t)(e - p));
		close = memchr(e + 1, d->esc, (size_t)(end - e - 1));
		if (close == NULL) {
			/* unterminated: the rest is literal */
			put(out, cap, &n, e, (size_t)(end - e));
			break;
		}
		if (e[1] == 'X' && close - e > 2 && (close - e - 2) % 2 == 0 &&
		    all_hex(e + 2, (size_t)(close - e - 2))) {
			for (const char *h = e + 2; h < close; h += 2) {
				c = (char)(num_hexdigit((unsigned char)h[0]) << 4 | num_hexdigit((unsigned char)h[1]));
				put(out, cap, &n, &c, 1);
			}
		} else {
			switch (escape_seq(d, e + 1, (size_t)(close - e - 1), &c)) {
			case 1:
				put(out, cap, &n, &c, 1);
				break;
			case 0:
				break;
			default:
				put(out, cap, &n, e, (size_t)(close - e + 1));
				break;
			}
		}
		p = close + 1;
	}
	return n;
}

size_t hl7_unescape(const struct hl7_delims *d, struct hl7_str v, char *out, size_t outlen)
{
	size_t n = decode(d, v, out, outlen);

	return n < outlen ? n : outlen;
}

size_t hl7_copy(const struct hl7_delims *d, struct hl7_str v, char *out, size_t outlen)
{
	size_t n;

	if (outlen == 0)
		return decode(d, v, NULL, 0);
	n = decode(d, v, out, outlen - 1);
	out[n < outlen - 1 ? n : outlen - 1] = '\0';
	return n;
}

/* True if data[i..len) begins a segment named name (3 characters, not followed by another
 * name character). */
static bool seg_is(const char *data, size_t len, size_t i, const char *name)
{
	if (len - i < 3 || memcmp(data + i, name, 3) != 0)
		return false;
	return len - i == 3 || !name_char((unsigned char)data[i + 3]);
}

bool hl7_is_batch(const char *data, size_t len)
{
	size_t i = 0;

	while (i < len && (data[i] == '\r' || data[i] == '\n'))
		i++;
	return seg_is(data, len, i, "FHS") || seg_is(data, len, i, "BHS");
}

static bool batch_seg(const char *data, size_t len, size_t i)
{
	return seg_is(data, len, i, "FHS") || seg_is(data, len, i, "BHS") ||
	       seg_is(data, len, i, "BTS") || seg_is(data, len, i, "FTS");
}

/* The offset after the terminator(s) of the line at i. */
static size_t next_line(const char *data, size_t len, size_t i)
{
	while (i < len && data[i] != '\r' && data[i] != '\n')
		i++;
	while (i < len && (data[i] == '\r' || data[i] == '\n'))
		i++;
	return i;
}

int hl7_batch_next(const char *data, size_t len, size_t *pos, struct hl7_str *msg)
{
	size_t i = *pos, start;

	msg->p = empty_view;
	msg->len = 0;
	/* skip batch envelope segments and empty lines */
	while (i < len) {
		if (data[i] == '\r' || data[i] == '\n')
			i++;
		else if (batch_seg(data, len, i))
			i = next_line(data, len, i);
		else
			break;
	}
	if (i >= len) {
		*pos = len;
		return 0;
	}
	start = i;
	i = next_line(data, len, i);
	while (i < len && !seg_is(data, len, i, "MSH") && !batch_seg(data, len, i))
		i = next_line(data, len, i);
	msg->p = data + start;
	msg->len = i - start;
	*pos = i;
	return 1;
}

bool hl7_is_ack(const struct hl7_msg *m)
{
	struct hl7_str v;

	return hl7_get(m, "MSH-9.1", &v) == 1 && v.len == 3 && memcmp(v.p, "ACK", 3) == 0;
}
