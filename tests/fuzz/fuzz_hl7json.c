/* Fuzz target for the JSON body (hl7/hl7json.h) on wide fields: the one place a field can
 * be walked once per part. scripts/fuzz.sh runs it with a per-input time limit
 * (-timeout=2), so a path that is quadratic in the parts of a field is a finding.
 *
 * Input: two bytes A and B, then a message. The message is parsed and its JSON checked; if
 * it parses, it is widened: a segment is added, named PID when B & 64 (the first PID when
 * the message has none: PID-3 gives the identifiers), else ZAM, with 1 + B % 64 fields,
 * each the last bytes of the message's last line (up to 8, CR and LF left out) repeated
 * 1 + 256 * A times (the whole segment cut to 256 KiB), e.g. 65,281 "^" in one field, or
 * 64 fields of "x^" 2048 times (at HL7JSON_MAX_PARTS). That message is parsed and checked
 * as well.
 *
 * Checks, for every field of every segment after MSH against the parser's own index: over
 * HL7JSON_MAX_PARTS parts (separators + 1) it is {"raw": the field} (byte-exact when ASCII);
 * otherwise {"repetitions": one per repetition} when it holds a repetition separator, an
 * array of one entry per component when it holds a component or subcomponent separator, a
 * string or null when it holds none; "raw" is the message; patient.identifiers has at most
 * HL7JSON_MAX_PARTS entries. With -DFUZZ_STANDALONE it runs the files named on its command
 * line. */
#include <jansson.h>
#include <stdbool.h>

#include "common.h"
#include "hl7/hl7.h"
#include "hl7/hl7json.h"

#define WIDE_MAX (256 * 1024) /* bytes of the added segment at most */

static size_t count(struct hl7_str v, char c)
{
	size_t n = 0;

	for (size_t i = 0; c != 0 && i < v.len; i++)
		n += v.p[i] == c;
	return n;
}

static bool ascii(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)p[i] >= 0x80)
			return false;
	}
	return true;
}

static void check_field(const struct hl7_msg *m, struct hl7_str f, json_t *v)
{
	const struct hl7_delims *d = &m->d;
	size_t nrep = count(f, d->rep), ncomp = count(f, d->comp), nsub = count(f, d->sub);
	json_t *raw;

	check(v != NULL);
	if (f.len > 0 && nrep + ncomp + nsub + 1 > HL7JSON_MAX_PARTS) {
		raw = json_object_get(v, "raw");
		check(json_is_object(v) && json_object_size(v) == 1 && json_is_string(raw));
		check(json_string_length(raw) >= f.len);
		if (ascii(f.p, f.len))
			check(json_string_length(raw) == f.len &&
			      memcmp(json_string_value(raw), f.p, f.len) == 0);
		return;
	}
	check(json_object_get(v, "raw") == NULL);
	if (nrep > 0) {
		json_t *a = json_object_get(v, "repetitions");

		check(json_is_object(v) && json_object_size(v) == 1);
		check(json_is_array(a) && json_array_size(a) == nrep + 1);
	} else if (ncomp + nsub > 0) {
		check(json_is_array(v) && json_array_size(v) == ncomp + 1);
	} else {
		check(json_is_string(v) || json_is_null(v));
	}
}

static void check_json(const struct hl7_msg *m)
{
	json_error_t jerr;
	json_t *o, *segs, *seg, *fields, *ids, *raw;
	size_t len, k = 0;
	char *s = hl7json_message(m, 1, &len);

	check(s != NULL && strlen(s) == len);
	o = json_loadb(s, len, JSON_ALLOW_NUL, &jerr);
	if (o == NULL)
		fprintf(stderr, "json: %s at %d\n", jerr.text, jerr.position);
	check(o != NULL && json_is_object(o));
	segs = json_object_get(o, "segments");
	check(json_is_array(segs));
	for (unsigned si = 0; si < m->nsegs; si++) {
		if (strcmp(m->segs[si].name, "MSH") == 0)
			continue;
		seg = json_array_get(segs, k++);
		fields = json_object_get(seg, "fields");
		check(json_is_array(fields) && json_array_size(fields) == m->segs[si].nfields);
		for (unsigned f = 1; f <= m->segs[si].nfields; f++) {
			struct hl7_str v;

			check(hl7_field(m, si, f, &v));
			check_field(m, v, json_array_get(fields, f - 1));
		}
	}
	check(json_array_size(segs) == k);
	if (hl7_seg_find(m, "PID", 1) >= 0) {
		ids = json_object_get(json_object_get(o, "patient"), "identifiers");
		check(json_is_array(ids) && json_array_size(ids) <= HL7JSON_MAX_PARTS);
	}
	raw = json_object_get(o, "raw");
	check(json_is_string(raw) && json_string_length(raw) >= m->len);
	json_decref(o);
	hl7json_free(s, len);
}

/* The message p[0..n) with a segment name of nf fields of the unit repeated reps times. */
static char *widen(const struct hl7_msg *m, const char *p, size_t n, const char *name,
		   unsigned reps, unsigned nf, size_t *outlen)
{
	const char *end = p + n, *u;
	size_t ul, o, cap;
	char *w;

	while (end > p && (end[-1] == '\r' || end[-1] == '\n'))
		end--;
	for (u = end; u > p && end - u < 8 && u[-1] != '\r' && u[-1] != '\n'; u--)
		;
	ul = (size_t)(end - u);
	if (ul == 0)
		return NULL;
	cap = n + 5 + WIDE_MAX;
	w = malloc(cap);
	check(w != NULL);
	memcpy(w, p, n);
	o = n;
	w[o++] = '\r';
	memcpy(w + o, name, 3);
	o += 3;
	for (unsigned f = 0; f < nf && o < n + 4 + WIDE_MAX; f++) {
		w[o++] = m->d.field;
		for (unsigned r = 0; r < reps && o + ul <= n + 4 + WIDE_MAX; r++, o += ul)
			memcpy(w + o, u, ul);
	}
	*outlen = o;
	return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hl7_msg m;
	char *p, *w;
	size_t n, wl;
	unsigned reps, nf;

	if (size < 2)
		return 0;
	reps = 1 + 256u * data[0];
	nf = 1 + data[1] % 64u;
	n = size - 2;
	p = fuzz_dup(data + 2, n, 0);
	hl7_msg_init(&m);
	if (hl7_parse(&m, p, n, NULL) == 0) {
		check_json(&m);
		w = widen(&m, p, n, data[1] & 64 ? "PID" : "ZAM", reps, nf, &wl);
		if (w != NULL) {
			/* the widened text may not parse (a unit holding a CR-less name, too many
			 * fields): that is the parser's business, tested elsewhere */
			if (hl7_parse(&m, w, wl, NULL) == 0)
				check_json(&m);
			free(w);
		}
	}
	hl7_msg_free(&m);
	free(p);
	return 0;
}
