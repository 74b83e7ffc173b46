/* Unit tests for hl7/hl7json: the JSON form of a message, read back with jansson. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl7/hl7.h"
#include "hl7/hl7json.h"

#define DATA_DIR "tests/data/"

static char *read_sample(const char *name, size_t *len)
{
	char path[512];
	FILE *f;
	char *p;
	long n;

	snprintf(path, sizeof(path), DATA_DIR "%s", name);
	f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	p[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return p;
}

/* Parses data, builds its JSON, loads it back. */
static json_t *to_json(const char *data, size_t len, int64_t id)
{
	struct hl7_msg m;
	struct hl7_error err;
	json_error_t jerr;
	json_t *j;
	size_t n = 0;
	char *s;

	hl7_msg_init(&m);
	if (hl7_parse(&m, data, len, &err) != 0)
		fail_msg("parse failed: %s", err.text);
	s = hl7json_message(&m, id, &n);
	assert_non_null(s);
	assert_int_equal(strlen(s), n);
	j = json_loadb(s, n, 0, &jerr);
	if (j == NULL)
		fail_msg("invalid JSON: %s at %d", jerr.text, jerr.position);
	hl7json_free(s, n);
	hl7_msg_free(&m);
	return j;
}

static const char *str_at(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v))
		fail_msg("%s is not a string", key);
	return json_string_value(v);
}

/* fields[f - 1] of the n-th segment named name (1-based). */
static json_t *field_of(json_t *j, const char *name, unsigned n, unsigned f)
{
	json_t *segs = json_object_get(j, "segments"), *s;
	size_t i;

	json_array_foreach(segs, i, s) {
		if (strcmp(str_at(s, "name"), name) == 0 && --n == 0)
			return json_array_get(json_object_get(s, "fields"), f - 1);
	}
	fail_msg("no segment %s", name);
	return NULL;
}

static void assert_json_str(json_t *v, const char *want)
{
	if (!json_is_string(v))
		fail_msg("not a string, want \"%s\"", want);
	assert_string_equal(json_string_value(v), want);
}

static void test_rde_header_and_patient(void **state)
{
	size_t len;
	char *data = read_sample("rde_o11_v251_nhapi_exactdata.hl7", &len);
	json_t *j = to_json(data, len, 42), *p, *ids, *id, *name, *f;

	assert_int_equal(json_integer_value(json_object_get(j, "id")), 42);
	assert_string_equal(str_at(j, "control_id"), "EF010000000071000000_4");
	assert_string_equal(str_at(j, "type"), "RDE^O11");
	assert_string_equal(str_at(j, "message_type"), "RDE");
	assert_string_equal(str_at(j, "trigger"), "O11");
	assert_string_equal(str_at(j, "structure"), "RDE_O11");
	assert_string_equal(str_at(j, "sending_application"), "EXACTDATA");
	assert_string_equal(str_at(j, "sending_facility"), "");
	assert_string_equal(str_at(j, "receiving_application"), "ALL");
	assert_string_equal(str_at(j, "receiving_facility"), "ALL");
	assert_string_equal(str_at(j, "datetime"), "20101217181500");
	assert_string_equal(str_at(j, "version"), "2.5.1");
	assert_string_equal(str_at(j, "charset"), "");

	p = json_object_get(j, "patient");
	assert_true(json_is_object(p));
	ids = json_object_get(p, "identifiers");
	assert_int_equal(json_array_size(ids), 2);
	id = json_array_get(ids, 0);
	assert_string_equal(str_at(id, "id"), "7010566270");
	assert_string_equal(str_at(id, "authority"), "");
	assert_string_equal(str_at(id, "type"), "DODID");
	id = json_array_get(ids, 1);
	assert_string_equal(str_at(id, "id"), "EM010000008000000");
	assert_string_equal(str_at(id, "type"), "MR");
	name = json_object_get(p, "name");
	assert_string_equal(str_at(name, "family"), "ZZEDConner");
	assert_string_equal(str_at(name, "given"), "Dean");
	assert_string_equal(str_at(name, "middle"), "J");
	assert_string_equal(str_at(p, "birth_date"), "19810611");
	assert_string_equal(str_at(p, "sex"), "MALE");

	/* MSH is not among the segments; PID comes first, fields[0] is PID-1 */
	assert_string_equal(str_at(json_array_get(json_object_get(j, "segments"), 0), "name"),
			    "PID");
	assert_json_str(field_of(j, "PID", 1, 1), "1");
	assert_json_str(field_of(j, "PID", 1, 2), "");
	f = field_of(j, "PID", 1, 3);
	assert_true(json_is_object(f));
	f = json_object_get(f, "repetitions");
	assert_int_equal(json_array_size(f), 2);
	assert_int_equal(json_array_size(json_array_get(f, 0)), 5);
	assert_json_str(json_array_get(json_array_get(f, 0), 0), "7010566270");
	assert_json_str(json_array_get(json_array_get(f, 0), 4), "DODID");
	/* ORC-1, RXE-2.2 */
	assert_json_str(field_of(j, "ORC", 1, 1), "NW");
	assert_json_str(json_array_get(field_of(j, "RXE", 1, 2), 1), "Oseltamivir");
	/* raw is the message as given */
	assert_int_equal(strlen(str_at(j, "raw")), len);
	assert_memory_equal(str_at(j, "raw"), data, len);

	json_decref(j);
	free(data);
}

static void test_ras_escapes_and_z_segments(void **state)
{
	size_t len;
	char *data = read_sample("ras_o17_v25_hapi_escapes_zsegments.hl7", &len);
	json_t *j = to_json(data, len, 7), *ids, *f;

	assert_string_equal(str_at(j, "type"), "RAS^O17");
	assert_string_equal(str_at(j, "sending_application"), "");
	ids = json_object_get(json_object_get(j, "patient"), "identifiers");
	assert_int_equal(json_array_size(ids), 2);
	assert_string_equal(str_at(json_array_get(ids, 0), "authority"), "http://acme.org/mrns");
	assert_string_equal(str_at(json_array_get(ids, 1), "type"), "SB");
	assert_string_equal(str_at(json_object_get(json_object_get(j, "patient"), "name"), "given"),
			    "John");

	/* \F\ decodes to the field separator */
	assert_json_str(field_of(j, "PV1", 1, 3), "Acme Hospital|3rd Floor Room 124");
	assert_json_str(field_of(j, "ORC", 1, 2), "0001|http://acme.org/medorders");
	assert_json_str(field_of(j, "RXA", 1, 5), "0001|Tylenol|http://acme.org/meds");
	assert_json_str(field_of(j, "RXA", 2, 5), "0002|Advil|http://acme.org/meds");
	/* repetitions of components */
	f = json_object_get(field_of(j, "RXA", 1, 9), "repetitions");
	assert_int_equal(json_array_size(f), 2);
	assert_json_str(json_array_get(json_array_get(f, 0), 0), "");
	assert_json_str(json_array_get(json_array_get(f, 1), 1), "Tylenol note 2");
	/* one repetition: a plain component array */
	assert_json_str(json_array_get(field_of(j, "RXA", 2, 9), 1), "Advil note");
	/* Z segments come through like any other */
	assert_json_str(field_of(j, "ZZZ", 1, 1), "Some ZZZ value 1");
	assert_json_str(field_of(j, "ZXC", 2, 1), "Some ZXC value 2");

	json_decref(j);
	free(data);
}

static void test_nulls_subcomponents_hex(void **state)
{
	static const char msg[] = "MSH|^~\\&|APP^1.2.3^ISO|FAC|||20240101||RDE^O11^RDE_O11|C1|P|2.5\r"
				  "PID|1||\"\"||\"\"^Ann||\"\"\r"
				  "ZAA|a&b^c|\\X41\\\\X4243\\|x\\E\\y|^^|\"\"^x&\"\"|\r";
	json_t *j = to_json(msg, sizeof(msg) - 1, 1), *f, *p;

	assert_string_equal(str_at(j, "sending_application"), "APP");
	p = json_object_get(j, "patient");
	/* PID-3 is the explicit null: one repetition whose id is null */
	f = json_object_get(p, "identifiers");
	assert_int_equal(json_array_size(f), 1);
	assert_true(json_is_null(json_object_get(json_array_get(f, 0), "id")));
	assert_true(json_is_null(json_object_get(json_object_get(p, "name"), "family")));
	assert_string_equal(str_at(json_object_get(p, "name"), "given"), "Ann");
	assert_true(json_is_null(json_object_get(p, "birth_date")));

	assert_true(json_is_null(field_of(j, "PID", 1, 3)));
	/* ZAA-1 a&b^c: [["a","b"],"c"] */
	f = field_of(j, "ZAA", 1, 1);
	assert_int_equal(json_array_size(f), 2);
	assert_int_equal(json_array_size(json_array_get(f, 0)), 2);
	assert_json_str(json_array_get(json_array_get(f, 0), 1), "b");
	assert_json_str(json_array_get(f, 1), "c");
	assert_json_str(field_of(j, "ZAA", 1, 2), "ABC");
	assert_json_str(field_of(j, "ZAA", 1, 3), "x\\y");
	f = field_of(j, "ZAA", 1, 4);
	assert_int_equal(json_array_size(f), 3);
	/* ""^x&"": [null, ["x", null]] */
	f = field_of(j, "ZAA", 1, 5);
	assert_true(json_is_null(json_array_get(f, 0)));
	assert_true(json_is_null(json_array_get(json_array_get(f, 1), 1)));
	/* the trailing empty field is kept */
	assert_json_str(field_of(j, "ZAA", 1, 6), "");
	json_decref(j);
}

static void test_invalid_utf8_replaced(void **state)
{
	static const char msg[] = "MSH|^~\\&|A|F|||20240101||ADT^A01|C2|P|2.5\r"
				  "PID|1||X||Caf\xe9^J\xc3\xbcrgen||\\XFF\\|\xed\xa0\x80\r";
	json_t *j = to_json(msg, sizeof(msg) - 1, 2), *name;

	name = json_object_get(json_object_get(j, "patient"), "name");
	assert_string_equal(str_at(name, "family"), "Caf\xef\xbf\xbd");
	assert_string_equal(str_at(name, "given"), "J\xc3\xbcrgen");
	assert_string_equal(str_at(json_object_get(j, "patient"), "birth_date"), "\xef\xbf\xbd");
	/* a UTF-16 surrogate encoded in UTF-8 is not valid UTF-8 */
	assert_string_equal(str_at(json_object_get(j, "patient"), "sex"),
			    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	assert_non_null(strstr(str_at(j, "raw"), "Caf\xef\xbf\xbd^J\xc3\xbcrgen"));
	json_decref(j);
}

static void test_latin1_converted(void **state)
{
	static const char msg[] = "MSH|^~\\&|A|F|||20240101||ADT^A01|C3|P|2.5||||||8859/1\r"
				  "PID|1||X||M\xfcller^Ren\xe9\r";
	json_t *j = to_json(msg, sizeof(msg) - 1, 3), *name;

	assert_string_equal(str_at(j, "charset"), "8859/1");
	name = json_object_get(json_object_get(j, "patient"), "name");
	assert_string_equal(str_at(name, "family"), "M\xc3\xbcller");
	assert_string_equal(str_at(name, "given"), "Ren\xc3\xa9");
	json_decref(j);
}

static void test_no_pid(void **state)
{
	static const char msg[] = "MSH|^~\\&|A|F|||20240101||ACK|C4|P|2.5\rMSA|AA|X\r";
	json_t *j = to_json(msg, sizeof(msg) - 1, 4);

	assert_true(json_is_null(json_object_get(j, "patient")));
	assert_string_equal(str_at(j, "type"), "ACK");
	assert_string_equal(str_at(j, "trigger"), "");
	assert_int_equal(json_array_size(json_object_get(j, "segments")), 1);
	json_decref(j);
}

static void test_utf8_helper(void **state)
{
	char out[64];
	size_t n;

	n = hl7json_utf8("ab\x80", 3, 0, out, sizeof(out));
	assert_int_equal(n, 5);
	assert_memory_equal(out, "ab\xef\xbf\xbd", 5);
	/* overlong '/' and a truncated sequence at the end */
	n = hl7json_utf8("\xc0\xaf\xe2\x82", 4, 0, out, sizeof(out));
	assert_int_equal(n, 12);
	n = hl7json_utf8("\xf0\x9f\x92\x8a", 4, 0, out, sizeof(out));
	assert_int_equal(n, 4);
	n = hl7json_utf8("\xe9", 1, 1, out, sizeof(out));
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\xc3\xa9", 2);
	/* never past outcap, even for a 4-byte character: it is left out whole */
	memset(out, 'X', sizeof(out));
	n = hl7json_utf8("a\xf0\x9f\x92\x8a", 5, 0, out, 4);
	assert_int_equal(n, 1);
	assert_int_equal(out[4], 'X');
	n = hl7json_utf8("a\xf0\x9f\x92\x8a", 5, 0, out, 5);
	assert_int_equal(n, 5);
	n = hl7json_utf8("ab\xe9", 3, 1, out, 4);
	assert_int_equal(n, 4);
}

/* Every parsable sample gives valid JSON that names the same control ID. */
static void test_all_samples(void **state)
{
	DIR *dir = opendir(DATA_DIR);
	struct dirent *e;
	unsigned done = 0;

	assert_non_null(dir);
	while ((e = readdir(dir)) != NULL) {
		struct hl7_msg m;
		struct hl7_error err;
		struct hl7_str cid;
		char want[128];
		size_t len, pos = 0;
		struct hl7_str one;
		char *data;
		json_t *j;

		if (strstr(e->d_name, ".hl7") == NULL)
			continue;
		data = read_sample(e->d_name, &len);
		if (!hl7_batch_next(data, len, &pos, &one)) {
			free(data);
			continue;
		}
		hl7_msg_init(&m);
		if (hl7_parse(&m, one.p, one.len, &err) != 0) {
			hl7_msg_free(&m);
			free(data);
			continue;
		}
		want[0] = '\0';
		if (hl7_get(&m, "MSH-10", &cid) == 1)
			hl7_copy(&m.d, cid, want, sizeof(want));
		hl7_msg_free(&m);
		j = to_json(one.p, one.len, 9);
		if (strcmp(str_at(j, "control_id"), want) != 0)
			fail_msg("%s: control_id differs", e->d_name);
		assert_true(json_is_array(json_object_get(j, "segments")));
		json_decref(j);
		free(data);
		done++;
	}
	closedir(dir);
	assert_true(done >= 20);
}

/* A message whose ZRX-1 (where 'Z') or PID-3 (where 'P') is unit n times and then "x", so
 * n separators when unit is "x" and one. The caller frees it. */
static char *wide_msg(const char *unit, size_t n, char where, size_t *len)
{
	static const char head[] = "MSH|^~\\&|APP|FAC|EMAR|WARD|20260101120000||RDE^O11^RDE_O11|"
				   "W1|P|2.5.1\rPID|1||";
	static const char mid[] = "||DOE^JOHN||19700101|F\rZRX|";
	static const char tail[] = "|after\r";
	size_t ul = strlen(unit), cap = sizeof(head) + sizeof(mid) + sizeof(tail) + 32 + ul * n;
	char *p = malloc(cap), *o = p;

	assert_non_null(p);
	o += snprintf(o, cap, "%s", head);
	if (where == 'P') {
		for (size_t i = 0; i < n; i++, o += ul)
			memcpy(o, unit, ul);
		*o++ = 'x';
	} else {
		o += snprintf(o, cap - (size_t)(o - p), "123^^^HOSP^MR");
	}
	o += snprintf(o, cap - (size_t)(o - p), "%s", mid);
	if (where == 'Z') {
		for (size_t i = 0; i < n; i++, o += ul)
			memcpy(o, unit, ul);
		*o++ = 'x';
	} else {
		o += snprintf(o, cap - (size_t)(o - p), "plain");
	}
	o += snprintf(o, cap - (size_t)(o - p), "%s", tail);
	*len = (size_t)(o - p);
	return p;
}

/* The text of a field: unit n times and "x", NUL-terminated. The caller frees it. */
static char *wide_field(const char *unit, size_t n)
{
	size_t ul = strlen(unit);
	char *p = malloc(ul * n + 2);

	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		memcpy(p + i * ul, unit, ul);
	p[ul * n] = 'x';
	p[ul * n + 1] = '\0';
	return p;
}

/* Thread CPU seconds to build the JSON of data once (the least of five runs: the machine is
 * shared, and the least is the one least disturbed). */
static double json_cpu(const char *data, size_t len)
{
	struct hl7_msg m;
	struct hl7_error err;
	double best = 1e30;

	hl7_msg_init(&m);
	if (hl7_parse(&m, data, len, &err) != 0)
		fail_msg("parse failed: %s", err.text);
	for (int i = 0; i < 5; i++) {
		struct timespec a, b;
		size_t n;
		char *s;
		double t;

		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
		s = hl7json_message(&m, 1, &n);
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
		assert_non_null(s);
		hl7json_free(s, n);
		t = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
		if (t < best)
			best = t;
	}
	hl7_msg_free(&m);
	return best;
}

/* Building the JSON is linear in the separators of a field, at each level: four times the
 * separators take well under the 16 times a rescan from the start of the field would. */
static void test_wide_fields_linear(void **state)
{
	static const struct {
		const char *unit;
		char where;
	} cases[] = { { "x^", 'Z' }, { "x~", 'Z' }, { "x&", 'Z' }, { "x^y&z~", 'Z' }, { "I~", 'P' } };
	const size_t n = 25000;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t l1, l4;
		char *m1 = wide_msg(cases[i].unit, n, cases[i].where, &l1);
		char *m4 = wide_msg(cases[i].unit, 4 * n, cases[i].where, &l4);
		double t1 = json_cpu(m1, l1), t4 = json_cpu(m4, l4);

		print_message("%s in %s: %zu separators %.6f s, %zu separators %.6f s, ratio %.2f\n",
			      cases[i].unit, cases[i].where == 'Z' ? "ZRX-1" : "PID-3", n, t1, 4 * n,
			      t4, t4 / t1);
		if (!(t4 < 8 * t1))
			fail_msg("%s: 4x the separators took %.1fx the time", cases[i].unit, t4 / t1);
		free(m1);
		free(m4);
	}
}

/* A field over HL7JSON_MAX_PARTS comes whole, as {"raw": text}; the next field and the
 * message around it are as usual. 1 MiB of 500,000 components, 200,000 repetitions,
 * 500,000 subcomponents. */
static void test_wide_fields_raw(void **state)
{
	static const struct {
		const char *unit;
		size_t n;
	} cases[] = { { "x^", 500000 }, { "x~", 200000 }, { "x&", 500000 } };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len;
		char *data = wide_msg(cases[i].unit, cases[i].n, 'Z', &len);
		char *want = wide_field(cases[i].unit, cases[i].n);
		json_t *j = to_json(data, len, 5), *f;

		f = field_of(j, "ZRX", 1, 1);
		assert_true(json_is_object(f));
		assert_int_equal(json_object_size(f), 1);
		assert_string_equal(str_at(f, "raw"), want);
		assert_json_str(field_of(j, "ZRX", 1, 2), "after");
		assert_json_str(json_array_get(field_of(j, "PID", 1, 5), 1), "JOHN");
		assert_string_equal(str_at(json_object_get(json_object_get(j, "patient"), "name"),
					   "family"),
				    "DOE");
		assert_int_equal(strlen(str_at(j, "raw")), len);
		assert_memory_equal(str_at(j, "raw"), data, len);
		json_decref(j);
		free(want);
		free(data);
	}
}

/* HL7JSON_MAX_PARTS parts, counted over all three separators, are still split; one more is
 * not. */
static void test_parts_limit(void **state)
{
	size_t len;
	char *data, *want;
	json_t *j, *f;

	/* "a^b&c~" 1365 times and "x": 4095 separators, 4096 parts */
	data = wide_msg("a^b&c~", (HL7JSON_MAX_PARTS - 1) / 3, 'Z', &len);
	j = to_json(data, len, 6);
	f = json_object_get(field_of(j, "ZRX", 1, 1), "repetitions");
	assert_int_equal(json_array_size(f), (HL7JSON_MAX_PARTS - 1) / 3 + 1);
	assert_json_str(json_array_get(json_array_get(json_array_get(f, 0), 1), 1), "c");
	assert_json_str(json_array_get(f, (HL7JSON_MAX_PARTS - 1) / 3), "x");
	json_decref(j);
	free(data);

	/* just over: 4096 separators */
	data = wide_msg("x^", HL7JSON_MAX_PARTS - 1, 'Z', &len);
	j = to_json(data, len, 6);
	assert_int_equal(json_array_size(field_of(j, "ZRX", 1, 1)), HL7JSON_MAX_PARTS);
	json_decref(j);
	free(data);
	data = wide_msg("x^", HL7JSON_MAX_PARTS, 'Z', &len);
	want = wide_field("x^", HL7JSON_MAX_PARTS);
	j = to_json(data, len, 6);
	assert_string_equal(str_at(field_of(j, "ZRX", 1, 1), "raw"), want);
	json_decref(j);
	free(want);
	free(data);
}

/* PID-3 of 200,000 repetitions: the first HL7JSON_MAX_PARTS are the identifiers, the field
 * itself comes whole. */
static void test_wide_pid3(void **state)
{
	size_t len;
	char *data = wide_msg("I~", 200000, 'P', &len);
	json_t *j = to_json(data, len, 8), *ids;

	ids = json_object_get(json_object_get(j, "patient"), "identifiers");
	assert_int_equal(json_array_size(ids), HL7JSON_MAX_PARTS);
	assert_string_equal(str_at(json_array_get(ids, 0), "id"), "I");
	assert_string_equal(str_at(json_array_get(ids, HL7JSON_MAX_PARTS - 1), "id"), "I");
	assert_string_equal(str_at(json_array_get(ids, 0), "type"), "");
	assert_true(json_is_object(field_of(j, "PID", 1, 3)));
	assert_non_null(json_object_get(field_of(j, "PID", 1, 3), "raw"));
	assert_string_equal(str_at(json_object_get(json_object_get(j, "patient"), "name"),
				   "given"),
			    "JOHN");
	json_decref(j);
	free(data);
}

/* Strings are escaped for JSON: quotes, backslashes and every control character, decoded
 * ones included (\X00\ is \u0000 in the text). */
static void test_json_escaping(void **state)
{
	static const char msg[] = "MSH|^~\\&|A|F|||20240101||ADT^A01|C5|P|2.5\r"
				  "ZES|q\"b|t\tb\\.br\\\\X01\\\\X1F\\|\\E\\x|\\X00\\|\x7f\r";
	struct hl7_msg m;
	json_t *j;
	char *s;
	size_t n;

	hl7_msg_init(&m);
	assert_int_equal(hl7_parse(&m, msg, sizeof(msg) - 1, NULL), 0);
	s = hl7json_message(&m, 11, &n);
	assert_non_null(strstr(s, "\"\\u0000\""));
	assert_non_null(strstr(s, "\"t\\tb\\n\\u0001\\u001F\""));
	j = json_loadb(s, n, JSON_ALLOW_NUL, NULL);
	assert_non_null(j);
	assert_json_str(field_of(j, "ZES", 1, 1), "q\"b");
	assert_json_str(field_of(j, "ZES", 1, 2), "t\tb\n\x01\x1f");
	assert_json_str(field_of(j, "ZES", 1, 3), "\\x");
	assert_json_str(field_of(j, "ZES", 1, 5), "\x7f");
	assert_memory_equal(str_at(j, "raw"), msg, sizeof(msg) - 1);
	assert_int_equal(json_string_length(field_of(j, "ZES", 1, 4)), 1);
	json_decref(j);
	hl7json_free(s, n);
	hl7_msg_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rde_header_and_patient),
		cmocka_unit_test(test_ras_escapes_and_z_segments),
		cmocka_unit_test(test_nulls_subcomponents_hex),
		cmocka_unit_test(test_invalid_utf8_replaced),
		cmocka_unit_test(test_latin1_converted),
		cmocka_unit_test(test_no_pid),
		cmocka_unit_test(test_utf8_helper),
		cmocka_unit_test(test_json_escaping),
		cmocka_unit_test(test_all_samples),
		cmocka_unit_test(test_wide_fields_linear),
		cmocka_unit_test(test_parts_limit),
		cmocka_unit_test(test_wide_pid3),
		cmocka_unit_test(test_wide_fields_raw),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
