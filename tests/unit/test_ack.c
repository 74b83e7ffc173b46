/* Unit tests for hl7/ack: building acknowledgements and reading them back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl7/ack.h"

#define NOW ((time_t)1700000000) /* 2023-11-14 22:13:20 UTC */

static const char v23[] = "MSH|^~\\&|SAPP|SFAC|RAPP|RFAC|20200101||RDE^O11^RDE_O11|CTRL-1|P^T|"
			  "2.3|||\rPID|1||SECRET\r";

/* The ACK as text with CR shown as newline, for readable comparisons. */
static const char *text(struct buf *b)
{
	static char s[2048];
	size_t n = b->len < sizeof(s) - 1 ? b->len : sizeof(s) - 1;

	memcpy(s, buf_head(b), n);
	s[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r')
			s[i] = '\n';
	}
	return s;
}

static void parse(struct hl7_msg *m, const char *s)
{
	struct hl7_error err;

	if (hl7_parse(m, s, strlen(s), &err) != 0)
		fail_msg("parse: %s", err.text);
}

static struct hl7_error mkerr(enum hl7_code code, const char *seg, unsigned seq, unsigned field,
			      const char *txt)
{
	struct hl7_error e;

	memset(&e, 0, sizeof(e));
	e.code = code;
	snprintf(e.segment, sizeof(e.segment), "%s", seg);
	e.seq = seq;
	e.field = field;
	snprintf(e.text, sizeof(e.text), "%s", txt);
	return e;
}

static void test_original_accept(void **state)
{
	struct hl7_msg m;
	struct buf b = {0};

	hl7_msg_init(&m);
	parse(&m, v23);
	assert_false(ack_enhanced(&m));
	assert_true(ack_wanted(&m, ACK_ACCEPT));
	assert_true(ack_wanted(&m, ACK_ERROR));
	assert_true(ack_wanted(&m, ACK_REJECT));
	assert_int_equal(ack_build(&b, &m, ACK_ACCEPT, NULL, "NW1", NOW), 0);
	assert_string_equal(text(&b), "MSH|^~\\&|RAPP|RFAC|SAPP|SFAC|20231114221320+0000||ACK^O11^ACK|"
				      "NW1|P^T|2.3\n"
				      "MSA|AA|CTRL-1\n");
	/* appends, does not replace */
	assert_int_equal(ack_build(&b, &m, ACK_ACCEPT, NULL, "NW2", NOW), 0);
	assert_non_null(strstr(text(&b), "NW2"));
	buf_free(&b);
	hl7_msg_free(&m);
}

static void test_original_errors(void **state)
{
	struct hl7_msg m;
	struct buf b = {0};
	struct hl7_error e = mkerr(HL7_REQUIRED_FIELD, "PID", 2, 3, "PID-3 missing");

	hl7_msg_init(&m);
	parse(&m, v23);
	assert_int_equal(ack_build(&b, &m, ACK_ERROR, &e, "NW1", NOW), 0);
	assert_string_equal(text(&b), "MSH|^~\\&|RAPP|RFAC|SAPP|SFAC|20231114221320+0000||ACK^O11^ACK|"
				      "NW1|P^T|2.3\n"
				      "MSA|AE|CTRL-1|PID-3 missing\n"
				      "ERR|PID^2^3^101&PID-3 missing&HL70357\n");
	assert_null(strstr(text(&b), "SECRET"));
	b.len = 0;
	e = mkerr(HL7_UNSUPPORTED_TYPE, "MSH", 1, 9, "message type not accepted");
	assert_int_equal(ack_build(&b, &m, ACK_REJECT, &e, "NW2", NOW), 0);
	assert_non_null(strstr(text(&b), "\nMSA|AR|CTRL-1|message type not accepted\n"));
	assert_non_null(strstr(text(&b), "\nERR|MSH^1^9^200&message type not accepted&HL70357\n"));
	/* an error without a place, and without a code */
	b.len = 0;
	e = mkerr(HL7_OK, "", 0, 0, "storage unavailable");
	assert_int_equal(ack_build(&b, &m, ACK_ERROR, &e, "NW3", NOW), 0);
	assert_non_null(strstr(text(&b), "\nERR|^^^207&storage unavailable&HL70357\n"));
	buf_free(&b);
	hl7_msg_free(&m);
}

static void test_err_by_version(void **state)
{
	static const char v25[] = "MSH|^~\\&|S|F|R|G|2020||ADT^A01|C9|P|2.5.1\r";
	static const char v24[] = "MSH|^~\\&|S|F|R|G|2020||ADT^A01|C9|P|2.4\r";
	static const char v210[] = "MSH|^~\\&|S|F|R|G|2020||ADT^A01|C9|P|2.10^X\r";
	static const char nov[] = "MSH|^~\\&|S|F|R|G|2020||ADT^A01|C9|P\r";
	struct hl7_msg m;
	struct buf b = {0};
	struct hl7_error e = mkerr(HL7_DATA_TYPE, "PID", 2, 7, "PID-7 malformed");

	hl7_msg_init(&m);
	parse(&m, v25);
	assert_int_equal(ack_build(&b, &m, ACK_ERROR, &e, "A", NOW), 0);
	assert_non_null(strstr(text(&b), "\nERR||PID^2^7|102^PID-7 malformed^HL70357|E\n"));
	b.len = 0;
	parse(&m, v210);
	assert_int_equal(ack_build(&b, &m, ACK_ERROR, &e, "A", NOW), 0);
	assert_non_null(strstr(text(&b), "|2.10^X\n"));
	assert_non_null(strstr(text(&b), "\nERR||PID^2^7|102^PID-7 malformed^HL70357|E\n"));
	b.len = 0;
	parse(&m, v24);
	assert_int_equal(ack_build(&b, &m, ACK_ERROR, &e, "A", NOW), 0);
	assert_non_null(strstr(text(&b), "\nERR|PID^2^7^102&PID-7 malformed&HL70357\n"));
	/* an unknown version gets both forms, which 2.5 and later still accept */
	b.len = 0;
	parse(&m, nov);
	assert_int_equal(ack_build(&b, &m, ACK_ERROR, &e, "A", NOW), 0);
	assert_non_null(strstr(text(&b), "\nERR|PID^2^7^102&PID-7 malformed&HL70357|PID^2^7|"
					 "102^PID-7 malformed^HL70357|E\n"));
	/* 2.5 without a location: ERR-2 empty */
	b.len = 0;
	parse(&m, v25);
	e = mkerr(HL7_INTERNAL, "", 0, 0, "internal error");
	assert_int_equal(ack_build(&b, &m, ACK_ERROR, &e, "A", NOW), 0);
	assert_non_null(strstr(text(&b), "\nERR|||207^internal error^HL70357|E\n"));
	buf_free(&b);
	hl7_msg_free(&m);
}

/* Enhanced mode: MSA-1 C*, and MSH-15 decides which are sent. */
static void test_enhanced_matrix(void **state)
{
	static const struct {
		const char *msh15;
		bool aa, ae, ar;
	} rows[] = {
		{"AL", true, true, true},  {"NE", false, false, false}, {"ER", false, true, true},
		{"SU", true, false, false}, {"", true, true, true},	  {"XX", true, true, true},
	};
	struct hl7_msg m;
	struct buf b = {0};
	struct hl7_error e = mkerr(HL7_INTERNAL, "", 0, 0, "x");
	char msg[256];

	hl7_msg_init(&m);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		snprintf(msg, sizeof(msg), "MSH|^~\\&|S|F|R|G|2020||ADT^A01|C%zu|P|2.5|||%s|AL\r",
			 i, rows[i].msh15);
		parse(&m, msg);
		assert_true(ack_enhanced(&m));
		assert_int_equal(ack_wanted(&m, ACK_ACCEPT), rows[i].aa);
		assert_int_equal(ack_wanted(&m, ACK_ERROR), rows[i].ae);
		assert_int_equal(ack_wanted(&m, ACK_REJECT), rows[i].ar);
	}
	/* MSH-15 alone makes it enhanced too, and NE there means none */
	parse(&m, "MSH|^~\\&|S|F|R|G|2020||ADT^A08|C|P|2.3|||NE\r");
	assert_true(ack_enhanced(&m));
	assert_false(ack_wanted(&m, ACK_ACCEPT));
	assert_false(ack_wanted(&m, ACK_REJECT));

	parse(&m, "MSH|^~\\&|S|F|R|G|2020||ADT^A01|C7|P|2.5|||AL|NE\r");
	assert_int_equal(ack_build(&b, &m, ACK_ACCEPT, NULL, "N", NOW), 0);
	assert_non_null(strstr(text(&b), "\nMSA|CA|C7\n"));
	/* the ACK's own MSH-15/16 stay empty: MSH ends at MSH-12 */
	assert_non_null(strstr(text(&b), "|N|P|2.5\nMSA"));
	b.len = 0;
	assert_int_equal(ack_build(&b, &m, ACK_ERROR, &e, "N", NOW), 0);
	assert_non_null(strstr(text(&b), "\nMSA|CE|C7|x\n"));
	b.len = 0;
	assert_int_equal(ack_build(&b, &m, ACK_REJECT, &e, "N", NOW), 0);
	assert_non_null(strstr(text(&b), "\nMSA|CR|C7|x\n"));
	buf_free(&b);
	hl7_msg_free(&m);
}

static void test_header_fields(void **state)
{
	struct hl7_msg m;
	struct buf b = {0};

	hl7_msg_init(&m);
	/* no trigger: MSH-9 is just ACK; empty MSH-3..6; MSH-11/12 absent */
	parse(&m, "MSH|^~\\&|||||2020||QRY|Q1\r");
	assert_int_equal(ack_build(&b, &m, ACK_ACCEPT, NULL, "N", NOW), 0);
	assert_string_equal(text(&b), "MSH|^~\\&|||||20231114221320+0000||ACK|N||\nMSA|AA|Q1\n");
	/* components in MSH-3..6 (HD) are copied whole */
	b.len = 0;
	parse(&m, "MSH|^~\\&|A^1^ISO|B&x|C|D^2|2020||VXU^V04^VXU_V04|Z|P|2.6\r");
	assert_int_equal(ack_build(&b, &m, ACK_ACCEPT, NULL, "N", NOW), 0);
	assert_string_equal(text(&b), "MSH|^~\\&|C|D^2|A^1^ISO|B&x|20231114221320+0000||"
				      "ACK^V04^ACK|N|P|2.6\nMSA|AA|Z\n");
	/* the sender's delimiters, the control ID escaped in them */
	b.len = 0;
	parse(&m, "MSH#$*!@#S#F#R#G#2020##ADT$A01#C$1#P#2.5\r");
	assert_int_equal(ack_build(&b, &m, ACK_ACCEPT, NULL, "N#$", NOW), 0);
	assert_string_equal(text(&b), "MSH#$*!@#R#G#S#F#20231114221320+0000##ACK$A01$ACK#N!F!!S!#P#"
				      "2.5\nMSA#AA#C$1\n");
	/* and the error text too */
	b.len = 0;
	{
		struct hl7_error e = mkerr(HL7_INTERNAL, "PID", 1, 2, "a|b^c~d\\e&f");

		parse(&m, "MSH|^~\\&|S|F|R|G|2020||ADT^A01|C|P|2.5\r");
		assert_int_equal(ack_build(&b, &m, ACK_ERROR, &e, "N", NOW), 0);
		assert_non_null(strstr(text(&b), "\nMSA|AE|C|a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\n"));
	}
	buf_free(&b);
	hl7_msg_free(&m);
}

/* Found by fuzzing: with only two encoding characters there is no escape character, so
 * delimiters in what we write cannot be escaped and are dropped; a backslash that is the
 * component separator is a delimiter like any other. */
static void test_no_escape_character(void **state)
{
	static const char two[] = "MSH|^&||\\~|||20090926173004||X^Y|C1|P|2.5\r";
	static const char bs[] = "MSH|\\~|||||2009||A\\B|C2\r";
	struct hl7_msg m;
	struct buf b = {0};
	char code[3], ctrl[16];

	hl7_msg_init(&m);
	parse(&m, two);
	assert_int_equal(m.d.esc, 0);
	assert_int_equal(m.d.rep, '&');
	assert_int_equal(ack_build(&b, &m, ACK_ACCEPT, NULL, "ACK|1^2&3~4", NOW), 0);
	assert_string_equal(text(&b), "MSH|^&||||\\~|20231114221320+0000||ACK^Y^ACK|ACK123~4|P|2.5\n"
				      "MSA|AA|C1\n");
	assert_int_equal(ack_parse((const char *)buf_head(&b), b.len, code, ctrl, sizeof(ctrl)), 0);
	assert_string_equal(ctrl, "C1");
	b.len = 0;
	parse(&m, bs);
	assert_int_equal(m.d.comp, '\\');
	assert_int_equal(ack_build(&b, &m, ACK_ACCEPT, NULL, "ACK|1^2\\3", NOW), 0);
	assert_string_equal(text(&b), "MSH|\\~|||||20231114221320+0000||ACK\\B\\ACK|ACK1^23||\n"
				      "MSA|AA|C2\n");
	/* found by fuzzing: '+' as a delimiter; MSH-7 then goes without its offset */
	b.len = 0;
	parse(&m, "MSH+|\\&");
	assert_int_equal(ack_build(&b, &m, ACK_ACCEPT, NULL, "ACK|1^2", NOW), 0);
	assert_string_equal(text(&b), "MSH+|\\&+++++20231114221320++ACK+ACK&S&1^2++\nMSA+AA+\n");
	assert_int_equal(ack_parse((const char *)buf_head(&b), b.len, code, ctrl, sizeof(ctrl)), 0);
	assert_string_equal(code, "AA");
	buf_free(&b);
	hl7_msg_free(&m);
}

static void test_never_ack_an_ack(void **state)
{
	struct hl7_msg m;
	struct buf b = {0};
	struct hl7_error e = mkerr(HL7_INTERNAL, "", 0, 0, "x");

	hl7_msg_init(&m);
	parse(&m, "MSH|^~\\&|S|F|R|G|2020||ACK^A01|C|P|2.3\rMSA|AA|X\r");
	assert_true(hl7_is_ack(&m));
	assert_false(ack_wanted(&m, ACK_ACCEPT));
	assert_false(ack_wanted(&m, ACK_REJECT));
	assert_int_equal(ack_build(&b, &m, ACK_ACCEPT, NULL, "N", NOW), -1);
	assert_int_equal(ack_build(&b, &m, ACK_REJECT, &e, "N", NOW), -1);
	assert_int_equal(b.len, 0);
	parse(&m, "MSH|^~\\&|S|F|R|G|2020||ACK|C|P|2.2|||AL\rMSA|AA|X\r");
	assert_false(ack_wanted(&m, ACK_ACCEPT));
	assert_int_equal(ack_build(&b, &m, ACK_ACCEPT, NULL, "N", NOW), -1);
	buf_free(&b);
	hl7_msg_free(&m);
}

static void test_unparsed(void **state)
{
	struct buf b = {0};
	struct hl7_error e = mkerr(HL7_DATA_TYPE, "MSH", 1, 2, "MSH-2 encoding characters malformed");
	char code[3], ctrl[16];

	ack_build_unparsed(&b, &e, "U1", NOW);
	assert_string_equal(text(&b),
			    "MSH|^~\\&|||||20231114221320+0000||ACK|U1|P|2.5\n"
			    "MSA|AR||MSH-2 encoding characters malformed\n"
			    "ERR|MSH^1^2^102&MSH-2 encoding characters malformed&HL70357|MSH^1^2|"
			    "102^MSH-2 encoding characters malformed^HL70357|E\n");
	assert_int_equal(ack_parse((const char *)buf_head(&b), b.len, code, ctrl, sizeof(ctrl)), 0);
	assert_string_equal(code, "AR");
	assert_string_equal(ctrl, "");
	buf_free(&b);
}

/* A message only its header could be read of: the AR still names it (MSA-2, MSH-3..6
 * swapped, MSH-11 and MSH-12), in the delimiters the header was read with, never in its
 * malformed MSH-2. */
static void test_header_only(void **state)
{
	static const char bad2[] = "MSH|^^\\&|SA|SF|RA|RF|2024||ADT^A01|C1|P|2.5\rPID|1";
	static const char caret[] = "MSH^~~\\&^SA^SF^RA^RF^2024^^ADT|A01^C4^P^2.3\r";
	static const char later[] = "\xef\xbb\xbf" "MSH|^~\\&|SA|SF|RA|RF|2024||ORU^R01|C3|T|2.6|||AL|NE"
				    "\rpid|1";
	static const char ack[] = "MSH|^^\\&|S|F|R|G|2020||ACK^A01|C|P|2.3\rMSA|AA|X";
	struct hl7_error e2 = mkerr(HL7_DATA_TYPE, "MSH", 1, 2, "MSH-2 encoding characters malformed");
	struct hl7_error e3 = mkerr(HL7_SEGMENT_SEQUENCE, "", 2, 0, "segment 2 name malformed");
	struct hl7_msg m, a;
	struct buf b = {0};
	char code[3], ctrl[16];

	hl7_msg_init(&m);
	hl7_msg_init(&a);
	assert_int_equal(hl7_parse_header(&m, bad2, strlen(bad2)), 0);
	assert_int_equal(ack_build(&b, &m, ACK_REJECT, &e2, "U1", NOW), 0);
	assert_string_equal(text(&b), "MSH|^~\\&|RA|RF|SA|SF|20231114221320+0000||ACK^A01^ACK|U1|P|2.5\n"
				      "MSA|AR|C1|MSH-2 encoding characters malformed\n"
				      "ERR||MSH^1^2|102^MSH-2 encoding characters malformed^HL70357|E\n");
	assert_int_equal(ack_parse((const char *)buf_head(&b), b.len, code, ctrl, sizeof(ctrl)), 0);
	assert_string_equal(code, "AR");
	assert_string_equal(ctrl, "C1");
	assert_int_equal(hl7_parse(&a, (const char *)buf_head(&b), b.len, NULL), 0);

	/* a separator among ^~\&: '|' stands in for the one it took */
	b.len = 0;
	assert_int_equal(hl7_parse_header(&m, caret, strlen(caret)), 0);
	assert_int_equal(ack_build(&b, &m, ACK_REJECT, &e2, "U2", NOW), 0);
	assert_string_equal(text(&b), "MSH^|~\\&^RA^RF^SA^SF^20231114221320+0000^^ACK|A01|ACK^U2^P^2.3\n"
				      "MSA^AR^C4^MSH-2 encoding characters malformed\n"
				      "ERR^MSH|1|2|102&MSH-2 encoding characters malformed&HL70357\n");
	assert_int_equal(ack_parse((const char *)buf_head(&b), b.len, code, ctrl, sizeof(ctrl)), 0);
	assert_string_equal(ctrl, "C4");

	/* MSH-2 well formed, a later segment refused; a byte order mark; enhanced mode */
	b.len = 0;
	assert_int_equal(hl7_parse_header(&m, later, strlen(later)), 0);
	assert_int_equal(ack_build(&b, &m, ACK_REJECT, &e3, "U3", NOW), 0);
	assert_string_equal(text(&b), "MSH|^~\\&|RA|RF|SA|SF|20231114221320+0000||ACK^R01^ACK|U3|T|2.6\n"
				      "MSA|CR|C3|segment 2 name malformed\n"
				      "ERR|||100^segment 2 name malformed^HL70357|E\n");

	/* never an answer to what reads as an acknowledgement */
	b.len = 0;
	assert_int_equal(hl7_parse_header(&m, ack, strlen(ack)), 0);
	assert_int_equal(ack_build(&b, &m, ACK_REJECT, &e2, "U4", NOW), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	hl7_msg_free(&m);
	hl7_msg_free(&a);
}

static void test_parse(void **state)
{
	static const char *const bad[] = {
		"",
		"PID|1\r",
		"MSH|^~\\&|S|F|R|G|2020||ACK|C|P|2.3\r",               /* no MSA */
		"MSH|^~\\&|S|F|R|G|2020||ACK|C|P|2.3\rMSA\r",          /* no MSA-1 */
		"MSH|^~\\&|S|F|R|G|2020||ACK|C|P|2.3\rMSA|OK|X\r",     /* unknown code */
		"MSH|^~\\&|S|F|R|G|2020||ACK|C|P|2.3\rMSA|AAA|X\r",
		"MSH|^|S\rMSA|AA|X\r",
	};
	char code[3], ctrl[8];
	size_t len;
	FILE *f;
	char data[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ack_parse(bad[i], strlen(bad[i]), code, ctrl, sizeof(ctrl)) != -1)
			fail_msg("ack_parse accepted bad input %zu", i);
	}
	/* the sample ACKs */
	f = fopen("tests/data/ack_aa_v231_pythonhl7_docs.hl7", "rb");
	assert_non_null(f);
	len = fread(data, 1, sizeof(data), f);
	fclose(f);
	assert_int_equal(ack_parse(data, len, code, ctrl, sizeof(ctrl)), 0);
	assert_string_equal(code, "AA");
	assert_string_equal(ctrl, "234242");
	f = fopen("tests/data/ack_aa_v22_hapi_expected.hl7", "rb");
	assert_non_null(f);
	len = fread(data, 1, sizeof(data), f);
	fclose(f);
	assert_int_equal(ack_parse(data, len, code, ctrl, sizeof(ctrl)), 0);
	assert_string_equal(code, "AA");
	assert_string_equal(ctrl, "LABGL11"); /* truncated to fit */
	/* escapes in MSA-2 are decoded; other delimiters and line endings work */
	{
		static const char s[] = "MSH#$*!@#S\nMSA#CE#a!F!b\n";

		assert_int_equal(ack_parse(s, sizeof(s) - 1, code, ctrl, sizeof(ctrl)), 0);
		assert_string_equal(code, "CE");
		assert_string_equal(ctrl, "a#b");
		assert_int_equal(ack_parse(s, sizeof(s) - 1, code, NULL, 0), 0);
	}
}

/* Every sample: its ACK parses, and reads back with its MSH-10; the AA for the HAPI input
 * has HAPI's MSA (HAPI leaves MSH-3..6 empty and MSH-9 bare where we swap and name the
 * trigger, as ack.h says). */
static void test_samples_round_trip(void **state)
{
	DIR *dir = opendir("tests/data");
	struct dirent *de;
	struct hl7_msg m, a;
	struct buf b = {0};
	unsigned n = 0;

	assert_non_null(dir);
	hl7_msg_init(&m);
	hl7_msg_init(&a);
	while ((de = readdir(dir)) != NULL) {
		char path[512], *data, code[3], ctrl[128], want[128];
		struct hl7_str msg, v;
		struct hl7_error e = mkerr(HL7_UNSUPPORTED_EVENT, "MSH", 1, 9, "event not accepted");
		size_t len, pos = 0;
		FILE *f;
		long sz;

		if (strstr(de->d_name, ".hl7") == NULL)
			continue;
		snprintf(path, sizeof(path), "tests/data/%s", de->d_name);
		f = fopen(path, "rb");
		assert_non_null(f);
		fseek(f, 0, SEEK_END);
		sz = ftell(f);
		rewind(f);
		data = malloc((size_t)sz);
		assert_non_null(data);
		assert_int_equal(fread(data, 1, (size_t)sz, f), (size_t)sz);
		fclose(f);
		while (hl7_batch_next(data, (size_t)sz, &pos, &msg) == 1) {
			assert_int_equal(hl7_parse(&m, msg.p, msg.len, NULL), 0);
			for (int k = ACK_ACCEPT; k <= ACK_REJECT; k++) {
				b.len = 0;
				if (ack_build(&b, &m, (enum ack_code)k, k ? &e : NULL, "ACK-1",
					      NOW) == -1) {
					assert_true(hl7_is_ack(&m));
					continue;
				}
				n++;
				len = b.len;
				assert_int_equal(hl7_parse(&a, (const char *)buf_head(&b), len,
							   NULL),
						 0);
				assert_true(hl7_is_ack(&a));
				assert_int_equal(ack_parse((const char *)buf_head(&b), len, code,
							   ctrl, sizeof(ctrl)),
						 0);
				assert_int_equal(code[0], ack_enhanced(&m) ? 'C' : 'A');
				assert_int_equal(code[1], "AER"[k]);
				hl7_get(&m, "MSH-10", &v);
				hl7_copy(&m.d, v, want, sizeof(want));
				assert_string_equal(ctrl, want);
				assert_null(hl7_get(&a, "PID-1", &v) == 1 ? "PID copied" : NULL);
				assert_int_equal(hl7_seg_find(&a, "ERR", 1) >= 0, k != ACK_ACCEPT);
			}
		}
		if (strcmp(de->d_name, "adt_a01_v22_hapi_generateack_input.hl7") == 0) {
			pos = 0;
			assert_int_equal(hl7_batch_next(data, (size_t)sz, &pos, &msg), 1);
			hl7_parse(&m, msg.p, msg.len, NULL);
			b.len = 0;
			assert_int_equal(ack_build(&b, &m, ACK_ACCEPT, NULL, "225", NOW), 0);
			assert_string_equal(text(&b), "MSH|^~\\&|DMCRES||LABGL1||20231114221320+0000||"
						      "ACK^A01^ACK|"
						      "225|P|2.2\nMSA|AA|LABGL1199510021852632\n");
		}
		free(data);
	}
	closedir(dir);
	assert_true(n >= 3 * 36);
	buf_free(&b);
	hl7_msg_free(&m);
	hl7_msg_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_original_accept), cmocka_unit_test(test_original_errors),
		cmocka_unit_test(test_err_by_version),	cmocka_unit_test(test_enhanced_matrix),
		cmocka_unit_test(test_header_fields),	cmocka_unit_test(test_never_ack_an_ack),
		cmocka_unit_test(test_unparsed),	cmocka_unit_test(test_parse),
		cmocka_unit_test(test_header_only),
		cmocka_unit_test(test_samples_round_trip), cmocka_unit_test(test_no_escape_character),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
