/* Fuzz target for the HL7 parser and the ACK builder: arbitrary bytes as a peer sends them.
 * Every field is walked down to subcomponents and decoded, a few paths are looked up, batches
 * are split, and the ACK for whatever parsed must itself parse and read back.
 * Built by `make fuzz`; with -DFUZZ_STANDALONE it is a plain program that runs the files
 * named on its command line through the same checks. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl7/ack.h"
#include "hl7/hl7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static const char *const paths[] = {
	"MSH-1", "MSH-2", "MSH-9.1", "MSH-9.2", "MSH-10", "MSH-12", "PID-3[2].1", "OBX(2)-5.1",
	"PID-5.1.2", "MSH-2[2]", "ZZZ(99)-999.9.9",
};

static void inside(const struct hl7_msg *m, struct hl7_str v)
{
	check(v.len == 0 || (v.p >= m->data && v.p + v.len <= m->data + m->len));
}

static void decode(const struct hl7_msg *m, struct hl7_str v)
{
	char *out = malloc(v.len ? v.len : 1);
	char small[4];
	size_t n, full;

	check(out != NULL);
	n = hl7_unescape(&m->d, v, out, v.len);
	check(n <= v.len);
	full = hl7_copy(&m->d, v, small, sizeof(small));
	check(full == n);
	check(small[n < 3 ? n : 3] == '\0');
	free(out);
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
	check(!nth(&m->d, v, i, &b));
	return i - 1;
}

static void walk(const struct hl7_msg *m)
{
	struct hl7_str f, r, c, s;

	check(m->nsegs >= 1 && m->nsegs <= HL7_MAX_SEGMENTS);
	check(strcmp(m->segs[0].name, "MSH") == 0);
	for (unsigned si = 0; si < m->nsegs; si++) {
		const struct hl7_seg *g = &m->segs[si];

		check(g->off + (size_t)g->len <= m->len);
		check(memcmp(m->data + g->off, g->name, 3) == 0);
		check(memchr(m->data + g->off, '\r', g->len) == NULL);
		check(memchr(m->data + g->off, '\n', g->len) == NULL);
		check(g->nfields <= HL7_MAX_FIELDS);
		for (unsigned fi = 1; hl7_field(m, si, fi, &f); fi++) {
			check(f.len == 0 || (f.p >= m->data + g->off &&
					     f.p + f.len <= m->data + g->off + g->len));
			check(parts(m, f, m->d.rep, hl7_rep) == hl7_reps(&m->d, f));
			decode(m, f);
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
}

/* The ACK for m parses, is an ACK, and reads back with m's code and MSH-10. */
static void ack_round_trip(const struct hl7_msg *m, enum ack_code code)
{
	static const struct hl7_error e = {HL7_DATA_TYPE, "PID", 2, 3, "PID-3 ^malformed|"};
	struct hl7_msg a;
	struct hl7_error err;
	struct buf b = {0};
	struct hl7_str v;
	char got[3], ctrl[64], want[64];

	if (ack_build(&b, m, code, code == ACK_ACCEPT ? NULL : &e, "ACK|1^2", 0) == -1) {
		check(hl7_is_ack(m));
		check(!ack_wanted(m, code));
		check(b.len == 0);
		return;
	}
	hl7_msg_init(&a);
	check(hl7_parse(&a, (const char *)buf_head(&b), b.len, &err) == 0);
	check(hl7_is_ack(&a));
	check(a.d.field == m->d.field && a.d.comp == m->d.comp && a.d.rep == m->d.rep);
	check((hl7_seg_find(&a, "ERR", 1) >= 0) == (code != ACK_ACCEPT));
	check(ack_parse((const char *)buf_head(&b), b.len, got, ctrl, sizeof(ctrl)) == 0);
	check(got[0] == (ack_enhanced(m) ? 'C' : 'A') && got[1] == "AER"[code]);
	hl7_get(m, "MSH-10", &v);
	hl7_copy(&m->d, v, want, sizeof(want));
	check(strcmp(ctrl, want) == 0);
	check(hl7_get(&a, "MSH-10", &v) == 1);
	hl7_copy(&a.d, v, ctrl, sizeof(ctrl));
	/* without an escape character the delimiters in it cannot be written and are dropped */
	{
		const char *id = "ACK|1^2";
		char exp[8];
		size_t n = 0;

		for (; *id != '\0'; id++) {
			if (m->d.esc || (*id != m->d.field && *id != m->d.comp && *id != m->d.rep &&
					 *id != m->d.sub && *id != m->d.trunc))
				exp[n++] = *id;
		}
		exp[n] = '\0';
		check(strcmp(ctrl, exp) == 0);
	}
	hl7_msg_free(&a);
	buf_free(&b);
}

static void unparsed(const struct hl7_error *err)
{
	struct buf b = {0};
	char code[3], ctrl[8];

	ack_build_unparsed(&b, err, "U", 0);
	check(ack_parse((const char *)buf_head(&b), b.len, code, ctrl, sizeof(ctrl)) == 0);
	check(strcmp(code, "AR") == 0 && ctrl[0] == '\0');
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *p = malloc(size ? size : 1); /* exactly size bytes, so a read past the end is caught */
	struct hl7_msg m;
	struct hl7_error err;
	struct hl7_str span;
	size_t pos = 0, last = 0;

	check(p != NULL);
	if (size)
		memcpy(p, data, size);
	hl7_msg_init(&m);
	if (hl7_parse(&m, p, size, &err) == 0) {
		walk(&m);
		for (int k = ACK_ACCEPT; k <= ACK_REJECT; k++)
			ack_round_trip(&m, (enum ack_code)k);
	} else {
		check(err.code != HL7_OK && err.text[0] != '\0');
		check(m.nsegs == 0);
		unparsed(&err);
	}
	/* batches: spans move forward, stay inside, and each parses or fails cleanly */
	while (hl7_batch_next(p, size, &pos, &span) == 1) {
		check(span.len > 0 && span.p >= p && span.p + span.len <= p + size);
		check(pos > last && pos <= size);
		last = pos;
		if (hl7_parse(&m, span.p, span.len, &err) == 0)
			walk(&m);
	}
	check(pos == size);
	hl7_msg_free(&m);
	free(p);
	return 0;
}

#ifdef FUZZ_STANDALONE
int main(int argc, char **argv)
{
	static uint8_t buf[1 << 20];

	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		size_t n;

		if (f == NULL) {
			perror(argv[i]);
			return 1;
		}
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, n);
	}
	return 0;
}
#endif
