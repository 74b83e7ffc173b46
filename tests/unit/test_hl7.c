/* Unit tests for hl7/hl7: the parser, field paths, escapes, batches and limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl7/hl7.h"

#define DATA "tests/data/"

static char *load(const char *name, size_t *len)
{
	char path[256];
	FILE *f;
	char *p;
	long n;

	snprintf(path, sizeof(path), DATA "%s", name);
	f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	p = malloc((size_t)n + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	p[n] = '\0';
	*len = (size_t)n;
	return p;
}

/* The value at path as a NUL-terminated raw string, "<absent>" or "<bad path>". */
static const char *get(const struct hl7_msg *m, const char *path)
{
	static char out[512];
	struct hl7_str v;
	int rc = hl7_get(m, path, &v);

	if (rc == -1)
		return "<bad path>";
	if (rc == 0) {
		assert_int_equal(v.len, 0);
		return "<absent>";
	}
	assert_true(v.len < sizeof(out));
	memcpy(out, v.p, v.len);
	out[v.len] = '\0';
	return out;
}

static void parse_ok(struct hl7_msg *m, const char *s)
{
	struct hl7_error err;

	if (hl7_parse(m, s, strlen(s), &err) != 0)
		fail_msg("parse failed: %d %s", err.code, err.text);
}

/* Every sample: parses, with the segment count and header fields the source table gives. */
struct sample {
	const char *file;
	unsigned nsegs;
	const char *msh9, *msh10, *msh12;
};

static const struct sample samples[] = {
	{"ack_aa_v22_hapi_expected.hl7", 2, "ACK", "225", "2.2"},
	{"ack_aa_v231_pythonhl7_docs.hl7", 2, "ACK^A01", "A234244", "2.3.1"},
	{"adt_a01_v22_hapi_generateack_input.hl7", 3, "ADT^A01", "LABGL1199510021852632", "2.2"},
	{"adt_a01_v23_pythonhl7_medicaid.hl7", 9, "ADT^A01", "Q150084616T145947960", "2.3"},
	{"adt_a01_v26_hl7apy_validation.hl7", 6, "ADT^A01^ADT_A01", "0123456789", "2.6"},
	{"adt_a01_v28_ms_fhirconv_01.hl7", 24, "ADT^A01^ADT_A01", "MSG00001", "2.8"},
	{"adt_a02_v28_ms_fhirconv_01.hl7", 14, "ADT^A02^ADT_A02", "MSG00001", "2.8"},
	{"adt_a03_v25_hapi_italian.hl7", 5, "ADT^A03", "263206", "2.5"},
	{"adt_a03_v28_ms_fhirconv_01.hl7", 24, "ADT^A03^ADT_A03", "MSG00001", "2.8"},
	{"adt_a04_v231_mirth_simplesender.hl7", 11, "ADT^A04", "603266", "2.3.1"},
	{"adt_a04_v25_simplehl7_epic.hl7", 4, "ADT^A04", "1817457", "2.5"},
	{"adt_a08_v23_google.hl7", 6, "ADT^A08", "8899-39", "2.3"},
	{"adt_a08_v28_ms_fhirconv_01.hl7", 24, "ADT^A08^ADT_A08", "MSG00001", "2.8"},
	{"adt_a31_v231_mirth_simplesender.hl7", 5, "ADT^A31", "603261", "2.3.1"},
	{"dft_p03_ms_fhirconv_01.hl7", 19, "DFT^P03^DFT_P03", "MSG00001", "2.8"},
	{"malformed_lf_line_endings_adt_a04_simplehl7.hl7", 4, "ADT^A04", "1817457", "2.5"},
	{"oml_o21_v251_hapi_first_of_stream.hl7", 10, "OML^O21^OML_O21", "msgOP123", "2.5.1"},
	{"oml_o21_v251_nist_loi_trunc_char.hl7", 6, "OML^O21^OML_O21", "NIST-LOI_5.0_1.1-NG", "2.5.1"},
	{"oml_o33_v25_hl7apy_lab_order.hl7", 7, "OML^O33^OML_O33", "978226056138290600", "2.5"},
	{"omp_o09_v251_lfh_minimal.hl7", 4, "OMP^O09", "MSGID_bae9ce6a-e35d-4ff5-8d50-c5dde19cc1aa",
	 "2.5.1"},
	{"omp_o09_v251_lfh_multi_order_obx.hl7", 10, "OMP^O09",
	 "MSGID_bae9ce6a-e35d-4ff5-8d50-c5dde19cc1aa", "2.5.1"},
	{"orm_o01_v23_simplehl7.hl7", 5, "ORM^O01", "MSGID20060307110114", "2.3"},
	{"orm_o01_v25_google_paml.hl7", 10, "ORM^O01^ORM_O01", "42513186:13838e5a5ba:-1be8", "2.5"},
	{"oru_r01_ms_fhirconv_01.hl7", 29, "ORU^R01^ORU_R01",
	 "2.16.840.1.114222.4.3.3.5.1.2-20120314235954.325", "2.5.1"},
	{"oru_r01_v23_simplehl7_lipid.hl7", 9, "ORU^R01", "Q335939501T337311002", "2.3"},
	{"oru_r01_v24_pythonhl7_ghh_lab.hl7", 5, "ORU^R01", "CNTRL-3456", "2.4"},
	{"oru_r01_v26_lfh_multiline_tx.hl7", 8, "ORU^R01^ORU_R01", "MSGID00231", "2.6"},
	{"qry_q01_v21_hapi_with_dsc.hl7", 3, "QRY^Q01", "161875RIQ40113085843", "2.1"},
	{"ras_o17_v25_hapi_escapes_zsegments.hl7", 10, "RAS^O17^RAS_O17", "00001", "2.5"},
	{"rde_o01_v25_google_simple.hl7", 5, "RDE^O01", "5339", "2.5"},
	{"rde_o11_v251_nhapi_exactdata.hl7", 8, "RDE^O11^RDE_O11", "EF010000000071000000_4", "2.5.1"},
	{"rde_o11_v26_lfh_medreq.hl7", 6, "RDE^O11^RDE_O11", "MSGID221xx0xcnvMed31", "2.6"},
	{"rde_o11_v28_ms_fhirconv_01.hl7", 29, "RDE^O11^RDE_O11", "MSG00001", "2.8"},
	{"rde_o25_v28_ms_fhirconv_01.hl7", 29, "RDE^O25^RDE_O25", "MSG00001", "2.8"},
	{"rds_o13_v28_ms_fhirconv_01.hl7", 28, "RDS^O13^RDS_O13", "MSG00001", "2.8"},
	{"siu_s12_nodehl7_epic_covid_vaccine.hl7", 9, "SIU^S12", "521", "<absent>"},
	{"vxu_v04_v26_lfh_rxa.hl7", 12, "VXU^V04^VXU_V04", "MSG.Valid_01", "2.6"},
};

/* The iterator yields exactly what the numbered lookups give. */
static void iter_matches(struct hl7_str v, char delim, bool (*nth)(const struct hl7_delims *,
								  struct hl7_str, unsigned,
								  struct hl7_str *),
			 const struct hl7_delims *d)
{
	struct hl7_iter it;
	struct hl7_str a, b;
	unsigned i = 1;

	hl7_iter_init(&it, v, delim);
	for (; hl7_iter_next(&it, &a); i++) {
		assert_true(nth(d, v, i, &b));
		assert_ptr_equal(a.p, b.p);
		assert_int_equal(a.len, b.len);
	}
	assert_false(nth(d, v, i, &b));
	assert_false(hl7_iter_next(&it, &a));
	assert_int_equal(a.len, 0);
}

/* Walks every field down to subcomponents and decodes each; the views must stay inside the
 * message and the segments must not contain a terminator. */
static void walk(const struct hl7_msg *m)
{
	char buf[4096];

	for (unsigned si = 0; si < m->nsegs; si++) {
		const struct hl7_seg *g = &m->segs[si];
		struct hl7_str f, r, c, s;

		assert_true(g->off + g->len <= m->len);
		assert_null(memchr(m->data + g->off, '\r', g->len));
		assert_null(memchr(m->data + g->off, '\n', g->len));
		assert_memory_equal(m->data + g->off, g->name, 3);
		for (unsigned fi = 1; hl7_field(m, si, fi, &f); fi++) {
			assert_true(f.p >= m->data && f.p + f.len <= m->data + g->off + g->len);
			iter_matches(f, m->d.rep, hl7_rep, &m->d);
			for (unsigned ri = 1; hl7_rep(&m->d, f, ri, &r); ri++) {
				iter_matches(r, m->d.comp, hl7_comp, &m->d);
				for (unsigned ci = 1; hl7_comp(&m->d, r, ci, &c); ci++) {
					iter_matches(c, m->d.sub, hl7_sub, &m->d);
					for (unsigned k = 1; hl7_sub(&m->d, c, k, &s); k++)
						assert_true(hl7_unescape(&m->d, s, buf,
									 sizeof(buf)) <= s.len);
				}
			}
		}
	}
}

static void test_samples(void **state)
{
	struct hl7_msg m;
	struct hl7_error err;

	hl7_msg_init(&m);
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		const struct sample *s = &samples[i];
		size_t len;
		char *data = load(s->file, &len);

		if (hl7_parse(&m, data, len, &err) != 0)
			fail_msg("%s: %d %s", s->file, err.code, err.text);
		if (m.nsegs != s->nsegs)
			fail_msg("%s: %u segments", s->file, m.nsegs);
		assert_string_equal(m.segs[0].name, "MSH");
		assert_string_equal(get(&m, "MSH-1"), "|");
		assert_string_equal(get(&m, "MSH-9"), s->msh9);
		assert_string_equal(get(&m, "MSH-10"), s->msh10);
		assert_string_equal(get(&m, "MSH-12"), s->msh12);
		assert_int_equal(hl7_is_ack(&m), strncmp(s->file, "ack_", 4) == 0);
		assert_false(hl7_is_batch(data, len));
		walk(&m);
		free(data);
	}
	hl7_msg_free(&m);
}

/* Values deeper in the samples, by path. */
static void test_sample_values(void **state)
{
	struct hl7_msg m;
	size_t len;
	char *d;

	hl7_msg_init(&m);

	d = load("adt_a01_v23_pythonhl7_medicaid.hl7", &len);
	assert_int_equal(hl7_parse(&m, d, len, NULL), 0);
	assert_string_equal(get(&m, "MSH-2"), "^~\\&");
	assert_string_equal(get(&m, "MSH-3"), "HNAM_PM");
	assert_string_equal(get(&m, "MSH-9.1"), "ADT");
	assert_string_equal(get(&m, "MSH-9.2"), "A01");
	assert_string_equal(get(&m, "MSH-9.3"), "<absent>");
	assert_string_equal(get(&m, "PID-4[2].1"), "184737");
	assert_string_equal(get(&m, "PID-4[2].5"), "DONOR ");
	assert_string_equal(get(&m, "PID-4[3].1"), "Q2147670");
	assert_string_equal(get(&m, "PID-4[4]"), "<absent>");
	assert_string_equal(get(&m, "PID-3[2].4"), "MSH_EMPI");
	assert_string_equal(get(&m, "PID-5.2"), "MELLODIAL");
	assert_string_equal(get(&m, "PV1-5"), " 863968");
	assert_string_equal(get(&m, "IN1-4"), "HIP COMP MCAID");
	assert_string_equal(get(&m, "IN1(2)-4"), "MEDICAID");
	assert_string_equal(get(&m, "IN1(3)-1"), "0003");
	assert_string_equal(get(&m, "IN1(4)-1"), "<absent>");
	assert_string_equal(get(&m, "IN2(2)-3"), "\"\"");
	{
		struct hl7_str v;

		assert_int_equal(hl7_get(&m, "PV1-9", &v), 1);
		assert_true(hl7_is_null(v));
		assert_int_equal(hl7_get(&m, "PV1-8", &v), 1);
		assert_false(hl7_is_null(v));
		assert_int_equal(hl7_field(&m, 0, 1, &v), true);
		assert_int_equal(hl7_reps(&m.d, v), 1);
		assert_true(hl7_field(&m, (unsigned)hl7_seg_find(&m, "PID", 1), 4, &v));
		assert_int_equal(hl7_reps(&m.d, v), 3);
	}
	assert_int_equal(hl7_seg_find(&m, "IN1", 3), 8);
	assert_int_equal(hl7_seg_find(&m, "IN1", 0), -1);
	assert_int_equal(hl7_seg_find(&m, "ZZZ", 1), -1);
	free(d);

	d = load("adt_a03_v25_hapi_italian.hl7", &len);
	assert_int_equal(hl7_parse(&m, d, len, NULL), 0);
	assert_string_equal(get(&m, "PID-3[3].5"), "SSN");
	assert_string_equal(get(&m, "PID-3[3].7"), "20070103");
	assert_string_equal(get(&m, "PID-3[4].1"), "<absent>");
	assert_string_equal(get(&m, "PID-3[4].5"), "TEAM");
	assert_string_equal(get(&m, "PV1-3.11"), "OSPEDALE MAGGIORE DI LODI&LODI");
	assert_string_equal(get(&m, "PV1-3.11.1"), "OSPEDALE MAGGIORE DI LODI");
	assert_string_equal(get(&m, "PV1-3.11.2"), "LODI");
	assert_string_equal(get(&m, "PV1-3.11.3"), "<absent>");
	assert_string_equal(get(&m, "PR1-7"), "<absent>");
	free(d);

	d = load("oru_r01_v24_pythonhl7_ghh_lab.hl7", &len);
	assert_int_equal(hl7_parse(&m, d, len, NULL), 0);
	assert_string_equal(get(&m, "OBX(2)-3.1"), "1553-5");
	assert_string_equal(get(&m, "OBX(2)-5.2"), "182");
	assert_string_equal(get(&m, "OBX(2)-5.1"), "<absent>");
	assert_string_equal(get(&m, "OBX-2"), "SN");
	assert_string_equal(get(&m, "OBX(3)-2"), "<absent>");
	assert_string_equal(get(&m, "OBR-15.9"), "LEVEL SEVEN HEALTHCARE, INC.");
	free(d);

	d = load("rde_o11_v251_nhapi_exactdata.hl7", &len);
	assert_int_equal(hl7_parse(&m, d, len, NULL), 0);
	assert_string_equal(get(&m, "MSH-11"), "T^T");
	assert_string_equal(get(&m, "MSH-11.2"), "T");
	assert_string_equal(get(&m, "PID-3[2].5"), "MR");
	assert_string_equal(get(&m, "RXR-1.2"), "Oral");
	assert_string_equal(get(&m, "RXE-2.2"), "Oseltamivir");
	free(d);

	d = load("omp_o09_v251_lfh_multi_order_obx.hl7", &len);
	assert_int_equal(hl7_parse(&m, d, len, NULL), 0);
	assert_string_equal(get(&m, "OBX(3)-13"), " ");
	assert_string_equal(get(&m, "OBX(3)-12"), "F");
	assert_string_equal(get(&m, "OBX(4)-5"), "obs report");
	assert_string_equal(get(&m, "RXO(2)-1.1"), "RX800006");
	free(d);

	d = load("qry_q01_v21_hapi_with_dsc.hl7", &len);
	assert_int_equal(hl7_parse(&m, d, len, NULL), 0);
	assert_int_equal(m.d.sub, '}');
	assert_string_equal(get(&m, "DSC-1"), "<absent>");
	assert_int_equal(m.segs[2].nfields, 1);
	free(d);

	d = load("siu_s12_nodehl7_epic_covid_vaccine.hl7", &len);
	assert_int_equal(hl7_parse(&m, d, len, NULL), 0);
	assert_string_equal(get(&m, "MSH-8"), "ESBCKGRND");
	assert_string_equal(get(&m, "MSH-11"), "<absent>");
	assert_string_equal(get(&m, "ZPD-1"), "Cent Amer In");
	free(d);

	/* MSH-18 charset */
	d = load("batch_bhs_bts_pythonhl7_one_msg.hl7", &len);
	{
		size_t pos = 0;
		struct hl7_str msg;

		assert_int_equal(hl7_batch_next(d, len, &pos, &msg), 1);
		assert_int_equal(hl7_parse(&m, msg.p, msg.len, NULL), 0);
		assert_int_equal(m.charset.len, 5);
		assert_memory_equal(m.charset.p, "ASCII", 5);
	}
	free(d);
	hl7_msg_free(&m);
}

/* The LF sample is the same message as the CR one, only with LF line endings: same index. */
static void test_line_endings(void **state)
{
	struct hl7_msg a, b;
	size_t la, lb;
	char *cr = load("adt_a04_v25_simplehl7_epic.hl7", &la);
	char *lf = load("malformed_lf_line_endings_adt_a04_simplehl7.hl7", &lb);

	assert_non_null(memchr(lf, '\n', lb));
	assert_null(memchr(lf, '\r', lb));
	hl7_msg_init(&a);
	hl7_msg_init(&b);
	assert_int_equal(hl7_parse(&a, cr, la, NULL), 0);
	assert_int_equal(hl7_parse(&b, lf, lb, NULL), 0);
	assert_int_equal(a.nsegs, b.nsegs);
	assert_int_equal(a.nfields, b.nfields);
	assert_string_equal(get(&b, "PV1-3.1"), "168 ");
	assert_string_equal(get(&b, "PV1-3[2]"), "219");
	assert_string_equal(get(&b, "PID-18[2]"), "1129086");
	free(cr);
	free(lf);

	/* CRLF, blank lines, a leading newline, blanks-only lines, no final terminator */
	parse_ok(&a, "\r\nMSH|^~\\&|A|B\r\n\r\nPID|1|X\r\n  \r\n\nOBX|1\r\n");
	assert_int_equal(a.nsegs, 3);
	assert_string_equal(get(&a, "PID-2"), "X");
	assert_string_equal(get(&a, "OBX-1"), "1");
	assert_string_equal(get(&a, "MSH-4"), "B");
	parse_ok(&a, "MSH|^~\\&|A\rPID|1|X");
	assert_int_equal(a.nsegs, 2);
	assert_string_equal(get(&a, "PID-2"), "X");
	parse_ok(&a, "MSH|^~\\&\r");
	assert_int_equal(a.nsegs, 1);
	assert_int_equal(a.segs[0].nfields, 2);
	assert_string_equal(get(&a, "MSH-2"), "^~\\&");
	assert_string_equal(get(&a, "MSH-3"), "<absent>");
	hl7_msg_free(&a);
	hl7_msg_free(&b);
}

static void test_odd_delimiters(void **state)
{
	struct hl7_msg m;

	hl7_msg_init(&m);
	parse_ok(&m, "MSH#$*!@%#APP#FAC#####ADT$A01$ADT_A01#42#P#2.5\r"
		     "PID#1##A$B@C!D%E*X$Y#\r");
	assert_int_equal(m.d.field, '#');
	assert_int_equal(m.d.comp, '$');
	assert_int_equal(m.d.rep, '*');
	assert_int_equal(m.d.esc, '!');
	assert_int_equal(m.d.sub, '@');
	assert_int_equal(m.d.trunc, '%');
	assert_string_equal(get(&m, "MSH-1"), "#");
	assert_string_equal(get(&m, "MSH-2"), "$*!@%");
	assert_string_equal(get(&m, "MSH-3"), "APP");
	assert_string_equal(get(&m, "MSH-9.2"), "A01");
	assert_string_equal(get(&m, "MSH-10"), "42");
	assert_string_equal(get(&m, "PID-3.1"), "A");
	assert_string_equal(get(&m, "PID-3.2"), "B@C!D%E");
	assert_string_equal(get(&m, "PID-3.2.2"), "C!D%E");
	assert_string_equal(get(&m, "PID-3[2].2"), "Y");
	walk(&m);
	assert_string_equal(get(&m, "PID-4"), "<absent>");
	{
		struct hl7_str v;
		char out[32];
		size_t n;

		v.p = "a!F!b!S!c!R!d!E!e!T!f!P!g";
		v.len = strlen(v.p);
		n = hl7_unescape(&m.d, v, out, sizeof(out));
		assert_int_equal(n, 13);
		assert_memory_equal(out, "a#b$c*d!e@f%g", 13);
	}
	/* two encoding characters only: no escape, no subcomponents */
	parse_ok(&m, "MSH|^~|A\\B&C|F\r");
	assert_int_equal(m.d.esc, 0);
	assert_int_equal(m.d.sub, 0);
	assert_string_equal(get(&m, "MSH-3"), "A\\B&C");
	assert_string_equal(get(&m, "MSH-3.1.1"), "A\\B&C");
	assert_string_equal(get(&m, "MSH-3.1.2"), "<absent>");
	walk(&m);
	{
		struct hl7_str v = {"\\F\\", 3};
		char out[8];

		assert_int_equal(hl7_unescape(&m.d, v, out, sizeof(out)), 3);
		assert_memory_equal(out, "\\F\\", 3);
	}
	hl7_msg_free(&m);
}

static void expect_error(const char *s, enum hl7_code code, const char *text)
{
	struct hl7_msg m;
	struct hl7_error err;

	hl7_msg_init(&m);
	if (hl7_parse(&m, s, strlen(s), &err) != -1)
		fail_msg("accepted a bad message (%s expected)", text);
	assert_int_equal(err.code, code);
	if (strstr(err.text, text) == NULL)
		fail_msg("error text '%s', wanted '%s'", err.text, text);
	assert_int_equal(m.nsegs, 0);
	hl7_msg_free(&m);
}

static void test_malformed(void **state)
{
	static const char *const bad_msh2[] = {
		"MSH|^|A|B\r",        /* one encoding character */
		"MSH||A|B\r",         /* none */
		"MSH|^^\\&|A\r",      /* repeated */
		"MSH|^~\\^|A\r",      /* repeated */
		"MSH|^~\\&#$|A\r",    /* six */
		"MSH|^~A&|A\r",       /* alphanumeric */
		"MSH|^~1&|A\r",       /* digit */
		"MSH|^~ &|A\r",       /* blank */
		"MSH|^~\\\t|A\r",     /* control */
		"MSH|^~\\\x80|A\r",   /* not ASCII */
		"MSH|^",              /* cut short */
	};
	struct hl7_msg m;
	struct hl7_error err;

	for (size_t i = 0; i < sizeof(bad_msh2) / sizeof(bad_msh2[0]); i++)
		expect_error(bad_msh2[i], HL7_DATA_TYPE, "MSH-2 encoding characters malformed");
	expect_error("MSHA^~\\&|A\r", HL7_DATA_TYPE, "MSH-1 field separator malformed");
	expect_error("MSH ^~\\&|A\r", HL7_DATA_TYPE, "MSH-1 field separator malformed");
	expect_error("MSH", HL7_REQUIRED_FIELD, "MSH-1 field separator missing");
	expect_error("MSH\r", HL7_REQUIRED_FIELD, "MSH-1 field separator missing");
	expect_error("", HL7_SEGMENT_SEQUENCE, "does not start with MSH");
	expect_error("\r\n", HL7_SEGMENT_SEQUENCE, "does not start with MSH");
	expect_error("PID|1\rMSH|^~\\&|A\r", HL7_SEGMENT_SEQUENCE, "does not start with MSH");
	expect_error("msh|^~\\&|A\r", HL7_SEGMENT_SEQUENCE, "does not start with MSH");
	expect_error("BHS|^~\\&|A\rMSH|^~\\&|A\r", HL7_SEGMENT_SEQUENCE, "does not start with MSH");
	/* segment names: 3 characters, A-Z and 0-9 */
	expect_error("MSH|^~\\&|A\rPI|1\r", HL7_SEGMENT_SEQUENCE, "segment 2 name malformed");
	expect_error("MSH|^~\\&|A\rPIDX|1\r", HL7_SEGMENT_SEQUENCE, "segment 2 name malformed");
	expect_error("MSH|^~\\&|A\rpid|1\r", HL7_SEGMENT_SEQUENCE, "segment 2 name malformed");
	expect_error("MSH|^~\\&|A\rPID|1\r P1|2", HL7_SEGMENT_SEQUENCE, "segment 3 name malformed");
	expect_error("MSHX|^~\\&|A\r", HL7_DATA_TYPE, "MSH-1 field separator malformed");

	/* the error names the place and carries no content */
	hl7_msg_init(&m);
	assert_int_equal(hl7_parse(&m, "MSH|^~\\&|SECRET\rPID|X\rpid|SECRET", 31, &err), -1);
	assert_string_equal(err.segment, "");
	assert_int_equal(err.seq, 3);
	assert_null(strstr(err.text, "SECRET"));
	assert_int_equal(hl7_parse(&m, "MSH|^|SECRET", 12, &err), -1);
	assert_string_equal(err.segment, "MSH");
	assert_int_equal(err.seq, 1);
	assert_int_equal(err.field, 2);
	/* a failed parse leaves nothing to look up; the next parse works */
	assert_int_equal(hl7_seg_find(&m, "MSH", 1), -1);
	parse_ok(&m, "MSH|^~\\&|A\r");
	assert_int_equal(m.nsegs, 1);
	hl7_msg_free(&m);
}

/* How each segment ended is noted; a byte order mark at the start is skipped, never taken
 * into a view, and noted. */
static void test_quirks(void **state)
{
	static const struct {
		const char *s;
		unsigned quirks;
		unsigned nsegs;
	} cases[] = {
		{"MSH|^~\\&|A|B|||2024||ADT^A01|Q1|P|2.5\rPID|1\r", HL7_QUIRK_CR, 2},
		{"MSH|^~\\&|A|B|||2024||ADT^A01|Q1|P|2.5\nPID|1\n", HL7_QUIRK_LF, 2},
		{"MSH|^~\\&|A|B|||2024||ADT^A01|Q1|P|2.5\r\nPID|1\r\n", HL7_QUIRK_CRLF, 2},
		{"MSH|^~\\&|A|B|||2024||ADT^A01|Q1|P|2.5\rPID|1\nPV1|1\r\nOBX|1",
		 HL7_QUIRK_CR | HL7_QUIRK_LF | HL7_QUIRK_CRLF, 4},
		{"MSH|^~\\&|A|B|||2024||ADT^A01|Q1|P|2.5", 0, 1},
		{"MSH|^~\\&|A|B|||2024||ADT^A01|Q1|P|2.5\r\rPID|1", HL7_QUIRK_CR, 2},
		{"\r\nMSH|^~\\&|A|B|||2024||ADT^A01|Q1|P|2.5\rPID|1", HL7_QUIRK_CR, 2},
		{"\xef\xbb\xbf" "MSH|^~\\&|A|B|||2024||ADT^A01|Q1|P|2.5\rPID|1\r",
		 HL7_QUIRK_BOM | HL7_QUIRK_CR, 2},
		{"\xef\xbb\xbf" "\r\nMSH|^~\\&|A|B|||2024||ADT^A01|Q1|P|2.5\nPID|1",
		 HL7_QUIRK_BOM | HL7_QUIRK_LF, 2},
	};
	struct hl7_msg m;
	char *big, *p;
	size_t n = 0;

	hl7_msg_init(&m);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		parse_ok(&m, cases[i].s);
		if (m.quirks != cases[i].quirks)
			fail_msg("case %zu: quirks %#x, want %#x", i, m.quirks, cases[i].quirks);
		assert_int_equal(m.nsegs, cases[i].nsegs);
		assert_string_equal(get(&m, "MSH-10"), "Q1");
		assert_string_equal(get(&m, "MSH-1"), "|");
		assert_memory_equal(m.data + m.segs[0].off, "MSH", 3);
	}
	/* the mark is skipped only at the very start, and only whole */
	expect_error("\r\xef\xbb\xbf" "MSH|^~\\&|A\r", HL7_SEGMENT_SEQUENCE, "does not start with MSH");
	expect_error("\xef\xbb" "MSH|^~\\&|A\r", HL7_SEGMENT_SEQUENCE, "does not start with MSH");
	expect_error("\xef\xbb\xbf", HL7_SEGMENT_SEQUENCE, "does not start with MSH");
	expect_error("\xef\xbb\xbf" "PID|1\r", HL7_SEGMENT_SEQUENCE, "does not start with MSH");
	expect_error("\xef\xbb\xbf\xef\xbb\xbf" "MSH|^~\\&|A\r", HL7_SEGMENT_SEQUENCE,
		     "does not start with MSH");

	/* CR LF at every position against the 16-byte blocks of the fast path */
	big = malloc(64 * 40 + 64);
	assert_non_null(big);
	p = big;
	p += sprintf(p, "MSH|^~\\&|A\r\n");
	for (unsigned k = 0; k < 40; k++)
		p += sprintf(p, "OBX|%u|%.*s\r\n", k, (int)(k % 17), "xxxxxxxxxxxxxxxxx");
	n = (size_t)(p - big);
	assert_int_equal(hl7_parse(&m, big, n, NULL), 0);
	assert_int_equal(m.nsegs, 41);
	assert_int_equal(m.quirks, HL7_QUIRK_CRLF);
	/* cut before the last LF: the last segment ends in CR alone */
	assert_int_equal(hl7_parse(&m, big, n - 1, NULL), 0);
	assert_int_equal(m.quirks, HL7_QUIRK_CRLF | HL7_QUIRK_CR);
	free(big);
	hl7_msg_free(&m);
}

static int header(struct hl7_msg *m, const char *s)
{
	return hl7_parse_header(m, s, strlen(s));
}

/* What hl7_parse refuses, the header reader still splits at MSH-1 for the answer. */
static void test_parse_header(void **state)
{
	static const char c1[] = "MSH|^^\\&|SA|SF|RA|RF|2024||ADT^A01|C1|P|2.5\rPID|1";
	static const char *const unreadable[] = {
		"", "\r\n", "MSH", "MSH\r", "MSHA^~\\&|A|B\r", "MSH ^~\\&|A\r",
		"PID|1\rMSH|^~\\&|A|B|||1||ADT^A01|C|P|2.5\r", "msh|^~\\&|A\r",
		"\xef\xbb\xbf" "PID|1\r", "MSH\x01^~\\&\r",
	};
	struct hl7_msg m;
	struct hl7_error err;
	struct hl7_str v;
	char *wide;
	size_t n;

	hl7_msg_init(&m);
	/* a malformed MSH-2: the standard's delimiters after the sender's MSH-1 */
	assert_int_equal(hl7_parse(&m, c1, strlen(c1), &err), -1);
	assert_int_equal(header(&m, c1), 0);
	assert_int_equal(m.nsegs, 1);
	assert_int_equal(m.segs[0].nfields, 12);
	assert_int_equal(m.d.field, '|');
	assert_int_equal(m.d.comp, '^');
	assert_int_equal(m.d.rep, '~');
	assert_int_equal(m.d.esc, '\\');
	assert_int_equal(m.d.sub, '&');
	assert_int_equal(m.d.trunc, 0);
	assert_string_equal(get(&m, "MSH-2"), "^^\\&");
	assert_string_equal(get(&m, "MSH-3"), "SA");
	assert_string_equal(get(&m, "MSH-6"), "RF");
	assert_string_equal(get(&m, "MSH-9.2"), "A01");
	assert_string_equal(get(&m, "MSH-10"), "C1");
	assert_string_equal(get(&m, "MSH-12"), "2.5");
	assert_string_equal(get(&m, "MSH-13"), "<absent>");
	assert_int_equal(hl7_seg_find(&m, "PID", 1), -1);

	/* MSH-2 well formed, the refusal was later: the sender's own delimiters */
	assert_int_equal(header(&m, "\xef\xbb\xbf\r\nMSH#$*!@#A#B#C#D#1##ORU$R01#C2#T#2.3\npid#1"), 0);
	assert_int_equal(m.quirks, HL7_QUIRK_BOM);
	assert_int_equal(m.segs[0].off, 5);
	assert_int_equal(m.d.field, '#');
	assert_int_equal(m.d.comp, '$');
	assert_int_equal(m.d.sub, '@');
	assert_string_equal(get(&m, "MSH-9.2"), "R01");
	assert_string_equal(get(&m, "MSH-10"), "C2");
	assert_string_equal(get(&m, "MSH-12"), "2.3");

	/* a separator that is one of ^~\& takes '|' in its place */
	assert_int_equal(header(&m, "MSH~^^\\&~A~B~C~D~1~~ADT^A04~C3~P~2.4"), 0);
	assert_int_equal(m.d.field, '~');
	assert_int_equal(m.d.comp, '^');
	assert_int_equal(m.d.rep, '|');
	assert_string_equal(get(&m, "MSH-10"), "C3");
	assert_int_equal(header(&m, "MSH^~~\\&^A^B^C^D^1^^ADT|A04^C4"), 0);
	assert_int_equal(m.d.comp, '|');
	assert_string_equal(get(&m, "MSH-9.2"), "A04");
	assert_string_equal(get(&m, "MSH-10"), "C4");

	/* the line ends at the first CR or LF; an empty last field counts */
	assert_int_equal(header(&m, "MSH|"), 0);
	assert_int_equal(m.segs[0].nfields, 2);
	assert_string_equal(get(&m, "MSH-1"), "|");

	/* an MSH of more fields than a segment may have: the first HL7_MAX_FIELDS */
	wide = malloc(64 + 2 * HL7_MAX_FIELDS);
	assert_non_null(wide);
	n = (size_t)sprintf(wide, "MSH|^|A|B|C|D|1||ADT^A01|C5");
	for (unsigned k = 0; k < HL7_MAX_FIELDS; k++)
		wide[n++] = '|';
	assert_int_equal(hl7_parse_header(&m, wide, n), 0);
	assert_int_equal(m.segs[0].nfields, HL7_MAX_FIELDS);
	assert_int_equal(hl7_get(&m, "MSH-10", &v), 1);
	assert_int_equal(v.len, 2);
	free(wide);

	for (size_t i = 0; i < sizeof(unreadable) / sizeof(unreadable[0]); i++) {
		if (header(&m, unreadable[i]) != -1)
			fail_msg("read a header from unreadable input %zu", i);
		assert_int_equal(m.nsegs, 0);
		assert_int_equal(hl7_seg_find(&m, "MSH", 1), -1);
	}
	/* the same struct parses whole messages again */
	parse_ok(&m, "MSH|^~\\&|A\rPID|1\r");
	assert_int_equal(m.nsegs, 2);
	hl7_msg_free(&m);
}

static char *repeat_msg(const char *head, const char *unit, size_t n, size_t *len)
{
	size_t hl = strlen(head), ul = strlen(unit);
	char *p = malloc(hl + ul * n + 1);

	assert_non_null(p);
	memcpy(p, head, hl);
	for (size_t i = 0; i < n; i++)
		memcpy(p + hl + i * ul, unit, ul);
	*len = hl + ul * n;
	p[*len] = '\0';
	return p;
}

static void test_limits(void **state)
{
	struct hl7_msg m;
	struct hl7_error err;
	size_t len;
	char *p;

	hl7_msg_init(&m);
	/* fields: MSH-1 counts, so "MSH|^~\&" plus n separators has n + 2 fields */
	p = repeat_msg("MSH|^~\\&", "|", HL7_MAX_FIELDS - 2, &len);
	assert_int_equal(hl7_parse(&m, p, len, &err), 0);
	assert_int_equal(m.segs[0].nfields, HL7_MAX_FIELDS);
	free(p);
	p = repeat_msg("MSH|^~\\&", "|", HL7_MAX_FIELDS - 1, &len);
	assert_int_equal(hl7_parse(&m, p, len, &err), -1);
	assert_int_equal(err.code, HL7_DATA_TYPE);
	assert_string_equal(err.segment, "MSH");
	assert_int_equal(err.field, HL7_MAX_FIELDS + 1);
	free(p);
	p = repeat_msg("MSH|^~\\&\rPID", "|x", HL7_MAX_FIELDS, &len);
	assert_int_equal(hl7_parse(&m, p, len, &err), 0);
	assert_int_equal(m.segs[1].nfields, HL7_MAX_FIELDS);
	free(p);
	p = repeat_msg("MSH|^~\\&\rPID", "|x", HL7_MAX_FIELDS + 1, &len);
	assert_int_equal(hl7_parse(&m, p, len, &err), -1);
	assert_string_equal(err.segment, "PID");
	assert_int_equal(err.seq, 2);
	free(p);
	/* segments */
	p = repeat_msg("MSH|^~\\&", "\rNTE|1", HL7_MAX_SEGMENTS - 1, &len);
	assert_int_equal(hl7_parse(&m, p, len, &err), 0);
	assert_int_equal(m.nsegs, HL7_MAX_SEGMENTS);
	assert_string_equal(get(&m, "NTE(65535)-1"), "1");
	free(p);
	p = repeat_msg("MSH|^~\\&", "\rNTE|1", HL7_MAX_SEGMENTS, &len);
	assert_int_equal(hl7_parse(&m, p, len, &err), -1);
	assert_int_equal(err.code, HL7_SEGMENT_SEQUENCE);
	assert_non_null(strstr(err.text, "more than 65536 segments"));
	free(p);
	/* empty lines do not count as segments */
	p = repeat_msg("MSH|^~\\&", "\r\n", HL7_MAX_SEGMENTS * 2, &len);
	assert_int_equal(hl7_parse(&m, p, len, &err), 0);
	assert_int_equal(m.nsegs, 1);
	free(p);
	hl7_msg_free(&m);
}

/* The index is reused: a big message then a small one, and fields grow by doubling. */
static void test_reuse(void **state)
{
	struct hl7_msg m;
	size_t len;
	char *p = repeat_msg("MSH|^~\\&", "\rOBX|1|2|3|4|5|6|7|8|9", 2000, &len);
	uint32_t cap;

	hl7_msg_init(&m);
	assert_int_equal(hl7_parse(&m, p, len, NULL), 0);
	assert_int_equal(m.nfields, 2 + 2000 * 9);
	assert_string_equal(get(&m, "OBX(2000)-9"), "9");
	cap = m.fieldcap;
	parse_ok(&m, "MSH|^~\\&|A\r");
	assert_int_equal(m.fieldcap, cap);
	assert_int_equal(m.nfields, 3);
	assert_string_equal(get(&m, "OBX-1"), "<absent>");
	free(p);
	hl7_msg_free(&m);
	hl7_msg_free(&m);
	hl7_msg_free(NULL);
}

static void test_paths(void **state)
{
	static const char *const bad[] = {
		"",       "PID",     "PID-",     "PID-0",   "PID-01",   "PID-3.",  "PID-3..1",
		"PID-3[", "PID-3[]", "PID-3[0]", "PID-3[1", "PID(0)-3", "PID()-3", "PID(1-3",
		"pid-3",  "PI-3",    "PIDX-3",   "PID-3.0", "PID-3.1.0", "PID-3.1.1.1", "PID-3x",
		"PID-1234567", "PID-3[1].1[2]", "PID-+3", "PID--3", "PID 3", "PID-3 ",
	};
	struct hl7_msg m;
	struct hl7_str v;

	hl7_msg_init(&m);
	parse_ok(&m, "MSH|^~\\&|A^B&C~D|F\rPID|1||a^b&c&d^e~f^g~~h|\r");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (hl7_get(&m, bad[i], &v) != -1)
			fail_msg("path '%s' accepted", bad[i]);
	}
	walk(&m);
	assert_string_equal(get(&m, "PID-3"), "a^b&c&d^e");
	assert_string_equal(get(&m, "PID-3[1]"), "a^b&c&d^e");
	assert_string_equal(get(&m, "PID-3.2"), "b&c&d");
	assert_string_equal(get(&m, "PID-3.2.3"), "d");
	assert_string_equal(get(&m, "PID-3.2.4"), "<absent>");
	assert_string_equal(get(&m, "PID-3[2].2"), "g");
	assert_string_equal(get(&m, "PID-3[3]"), "<absent>");
	assert_string_equal(get(&m, "PID-3[4]"), "h");
	assert_string_equal(get(&m, "PID-3[5]"), "<absent>");
	assert_string_equal(get(&m, "PID-2"), "<absent>");
	assert_string_equal(get(&m, "PID-4"), "<absent>");
	assert_string_equal(get(&m, "PID-5"), "<absent>");
	assert_string_equal(get(&m, "PID(1)-1"), "1");
	assert_string_equal(get(&m, "PID(2)-1"), "<absent>");
	assert_string_equal(get(&m, "PV1-1"), "<absent>");
	assert_string_equal(get(&m, "PID-999999"), "<absent>");
	/* MSH-1 and MSH-2 are never split */
	assert_string_equal(get(&m, "MSH-1"), "|");
	assert_string_equal(get(&m, "MSH-2"), "^~\\&");
	assert_string_equal(get(&m, "MSH-2.1"), "^~\\&");
	assert_string_equal(get(&m, "MSH-2[1].1.1"), "^~\\&");
	assert_string_equal(get(&m, "MSH-2.2"), "<absent>");
	assert_string_equal(get(&m, "MSH-2[2]"), "<absent>");
	assert_string_equal(get(&m, "MSH-3"), "A^B&C");
	assert_string_equal(get(&m, "MSH-3[2]"), "D");
	assert_string_equal(get(&m, "MSH-3.2.2"), "C");
	assert_string_equal(get(&m, "MSH-4"), "F");
	/* hl7_field keeps empty fields as present */
	assert_true(hl7_field(&m, 1, 2, &v));
	assert_int_equal(v.len, 0);
	assert_true(hl7_field(&m, 1, 4, &v));
	assert_false(hl7_field(&m, 1, 5, &v));
	assert_false(hl7_field(&m, 1, 0, &v));
	assert_false(hl7_field(&m, 7, 1, &v));
	assert_true(hl7_field(&m, 1, 3, &v));
	assert_int_equal(hl7_reps(&m.d, v), 4);
	assert_false(hl7_rep(&m.d, v, 0, &v));
	v.len = 0;
	assert_int_equal(hl7_reps(&m.d, v), 0);
	assert_false(hl7_rep(&m.d, v, 1, &v));
	hl7_msg_free(&m);
}

static void unesc(const struct hl7_delims *d, const char *in, const char *want)
{
	struct hl7_str v = {in, strlen(in)};
	char out[256];
	size_t n = hl7_unescape(d, v, out, sizeof(out));

	assert_true(n <= v.len);
	if (n != strlen(want) || memcmp(out, want, n) != 0)
		fail_msg("unescape gave '%.*s' wanted '%s'", (int)n, out, want);
}

static void test_unescape(void **state)
{
	static const struct hl7_delims d = {'|', '^', '~', '\\', '&', 0};
	static const struct hl7_delims d7 = {'|', '^', '~', '\\', '&', '#'};

	unesc(&d, "", "");
	unesc(&d, "plain", "plain");
	unesc(&d, "a\\F\\b", "a|b");
	unesc(&d, "\\S\\\\R\\\\T\\\\E\\", "^~&\\");
	unesc(&d, "\\X0D0A\\", "\r\n");
	unesc(&d, "x\\X41ff\\y", "xA\xffy");
	unesc(&d, "\\X414\\", "\\X414\\");  /* odd hex digits: literal */
	unesc(&d, "\\XG1\\", "\\XG1\\");    /* not hex: literal */
	unesc(&d, "\\X\\", "\\X\\");        /* no digits: literal */
	unesc(&d, "line1\\.br\\line2", "line1\nline2");
	unesc(&d, "a\\.sp\\b\\.sp2\\c", "a\nb\nc");
	unesc(&d, "\\H\\bold\\N\\", "bold");
	unesc(&d, "\\.in+4\\\\.ti-2\\\\.sk3\\\\.ce\\\\.fi\\\\.nf\\x", "x");
	unesc(&d, "\\.in\\\\.sk\\y", "y");
	unesc(&d, "\\.inx\\", "\\.inx\\");
	unesc(&d, "\\.zz\\", "\\.zz\\");
	unesc(&d, "\\C2842\\a\\M2442\\b\\M244234\\c\\Zanything\\", "abc");
	unesc(&d, "\\C284\\", "\\C284\\");
	unesc(&d, "\\Q\\", "\\Q\\");       /* unknown: literal */
	unesc(&d, "\\\\", "\\\\");          /* empty sequence: literal */
	unesc(&d, "abc\\F", "abc\\F");      /* unterminated */
	unesc(&d, "abc\\", "abc\\");
	unesc(&d, "\\F\\x\\", "|x\\");
	unesc(&d, "\\P\\", "\\P\\");        /* no truncation character: literal */
	unesc(&d7, "\\P\\", "#");
	unesc(&d, "\\T\\", "&");

	/* truncation: never writes past outlen */
	{
		struct hl7_str v = {"ab\\F\\cd", 7};
		char out[4] = {'x', 'x', 'x', 'x'};
		char s[4];

		assert_int_equal(hl7_unescape(&d, v, out, 3), 3);
		assert_memory_equal(out, "ab|x", 4);
		assert_int_equal(hl7_copy(&d, v, s, sizeof(s)), 5);
		assert_string_equal(s, "ab|");
		assert_int_equal(hl7_copy(&d, v, NULL, 0), 5);
		assert_int_equal(hl7_copy(&d, v, s, 1), 5);
		assert_string_equal(s, "");
	}
	/* explicit null */
	{
		struct hl7_str a = {"\"\"", 2}, b = {"\"", 1}, c = {"\"\"\"", 3};

		assert_true(hl7_is_null(a));
		assert_false(hl7_is_null(b));
		assert_false(hl7_is_null(c));
	}
	/* the sample with escapes */
	{
		struct hl7_msg m;
		struct hl7_str v;
		size_t len;
		char *p = load("ras_o17_v25_hapi_escapes_zsegments.hl7", &len);
		char out[128];

		hl7_msg_init(&m);
		assert_int_equal(hl7_parse(&m, p, len, NULL), 0);
		assert_int_equal(hl7_get(&m, "PV1-3", &v), 1);
		assert_int_equal(hl7_copy(&m.d, v, out, sizeof(out)), 32);
		assert_string_equal(out, "Acme Hospital|3rd Floor Room 124");
		assert_int_equal(hl7_get(&m, "RXA(2)-5", &v), 1);
		hl7_copy(&m.d, v, out, sizeof(out));
		assert_string_equal(out, "0002|Advil|http://acme.org/meds");
		assert_string_equal(get(&m, "RXA-9[2].2"), "Tylenol note 2");
		assert_string_equal(get(&m, "ZXC(2)-1"), "Some ZXC value 2");
		assert_string_equal(get(&m, "MSH-3"), "<absent>");
		hl7_msg_free(&m);
		free(p);
	}
}

static void test_batches(void **state)
{
	struct hl7_msg m;
	struct hl7_str msg;
	size_t len, pos;
	char *p;
	int n;

	hl7_msg_init(&m);
	p = load("batch_bhs_two_msgs_pythonhl7.hl7", &len);
	assert_true(hl7_is_batch(p, len));
	pos = 0;
	assert_int_equal(hl7_batch_next(p, len, &pos, &msg), 1);
	assert_int_equal(hl7_parse(&m, msg.p, msg.len, NULL), 0);
	assert_int_equal(m.nsegs, 6);
	assert_string_equal(get(&m, "MSH-10"), "12334456778890");
	assert_string_equal(get(&m, "PV1-2"), "O");
	assert_int_equal(hl7_batch_next(p, len, &pos, &msg), 1);
	assert_int_equal(hl7_parse(&m, msg.p, msg.len, NULL), 0);
	assert_int_equal(m.nsegs, 6);
	assert_string_equal(get(&m, "MSH-10"), "12334456778891");
	assert_int_equal(hl7_batch_next(p, len, &pos, &msg), 0);
	assert_int_equal(pos, len);
	assert_int_equal(hl7_batch_next(p, len, &pos, &msg), 0);
	free(p);

	p = load("batch_bhs_bts_pythonhl7_one_msg.hl7", &len);
	assert_true(hl7_is_batch(p, len));
	pos = 0;
	for (n = 0; hl7_batch_next(p, len, &pos, &msg) == 1; n++) {
		assert_int_equal(hl7_parse(&m, msg.p, msg.len, NULL), 0);
		assert_string_equal(get(&m, "MSH-10"), "12334456778890");
		assert_int_equal(hl7_seg_find(&m, "BTS", 1), -1);
	}
	assert_int_equal(n, 1);
	free(p);

	/* FHS/BHS/BTS/FTS, LF endings, and a plain run of messages */
	{
		static const char f[] = "FHS|^~\\&|A\nBHS|^~\\&|A\nMSH|^~\\&|A||||||X|1\nPID|1\n"
					"MSH|^~\\&|A||||||X|2\nBTS|2\nFTS|1\n";
		static const char run[] = "MSH|^~\\&|||||||X|a\rMSH|^~\\&|||||||X|b\r";
		static const char junk[] = "BHS|^~\\&\rPID|1\rMSH|^~\\&|||||||X|c\rBTS|1";
		const char *want[] = {"1", "2"};

		assert_true(hl7_is_batch(f, sizeof(f) - 1));
		pos = 0;
		for (n = 0; hl7_batch_next(f, sizeof(f) - 1, &pos, &msg) == 1; n++) {
			assert_true(n < 2);
			assert_int_equal(hl7_parse(&m, msg.p, msg.len, NULL), 0);
			assert_string_equal(get(&m, "MSH-10"), want[n]);
		}
		assert_int_equal(n, 2);
		assert_false(hl7_is_batch(run, sizeof(run) - 1));
		pos = 0;
		assert_int_equal(hl7_batch_next(run, sizeof(run) - 1, &pos, &msg), 1);
		assert_int_equal(msg.len, 19);
		assert_int_equal(hl7_batch_next(run, sizeof(run) - 1, &pos, &msg), 1);
		assert_int_equal(hl7_parse(&m, msg.p, msg.len, NULL), 0);
		assert_string_equal(get(&m, "MSH-10"), "b");
		assert_int_equal(hl7_batch_next(run, sizeof(run) - 1, &pos, &msg), 0);
		/* something other than MSH in a batch comes out as its own span, which the
		 * parser then rejects rather than it being dropped unseen */
		pos = 0;
		assert_int_equal(hl7_batch_next(junk, sizeof(junk) - 1, &pos, &msg), 1);
		assert_int_equal(hl7_parse(&m, msg.p, msg.len, NULL), -1);
		assert_int_equal(hl7_batch_next(junk, sizeof(junk) - 1, &pos, &msg), 1);
		assert_int_equal(hl7_parse(&m, msg.p, msg.len, NULL), 0);
		assert_string_equal(get(&m, "MSH-10"), "c");
		assert_int_equal(hl7_batch_next(junk, sizeof(junk) - 1, &pos, &msg), 0);
		assert_false(hl7_is_batch("BH", 2));
		assert_false(hl7_is_batch("BHSX|", 5));
		pos = 0;
		assert_int_equal(hl7_batch_next("", 0, &pos, &msg), 0);
	}
	hl7_msg_free(&m);
}

/* The iterator over a field of 500,000 components, empty ones among them: every part in
 * order, each view right after the previous separator, then nothing. */
static void test_iter_wide(void **state)
{
	const size_t n = 500000;
	char *f = malloc(2 * n);
	struct hl7_iter it;
	struct hl7_str v = { f, 2 * n - 1 }, a;
	const char *next = f;
	size_t k = 0;

	assert_non_null(f);
	for (size_t i = 0; i < n; i++) {
		f[2 * i] = i % 3 == 0 ? '^' : 'x';
		if (i + 1 < n)
			f[2 * i + 1] = '^';
	}
	/* parts: "x" or "" (where a '^' stands in for the letter) */
	hl7_iter_init(&it, v, '^');
	while (hl7_iter_next(&it, &a)) {
		assert_ptr_equal(a.p, next);
		assert_true(a.len <= 1);
		assert_true(a.len == 0 || a.p[0] == 'x');
		next = a.p + a.len + 1;
		k++;
	}
	assert_int_equal(k, n + (n + 2) / 3);
	assert_ptr_equal(next, f + 2 * n);
	assert_false(hl7_iter_next(&it, &a));
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_samples),	    cmocka_unit_test(test_sample_values),
		cmocka_unit_test(test_line_endings), cmocka_unit_test(test_odd_delimiters),
		cmocka_unit_test(test_malformed),    cmocka_unit_test(test_limits),
		cmocka_unit_test(test_reuse),	    cmocka_unit_test(test_paths),
		cmocka_unit_test(test_unescape),     cmocka_unit_test(test_batches),
		cmocka_unit_test(test_iter_wide),   cmocka_unit_test(test_quirks),
		cmocka_unit_test(test_parse_header),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
