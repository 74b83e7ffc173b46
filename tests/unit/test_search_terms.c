/* Unit tests for the terms of a search (intake/search_terms.c): the audit record's
 * description of a search cannot be forged by a term's value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "intake/search_terms.h"

static void describe(const struct store_filter *f, const char *sender, char *out, size_t len)
{
	search_terms_describe(f, sender, out, len);
}

static void test_plain_values_as_they_are(void **state)
{
	struct store_filter f = {.state = -1, .limit = 50, .patient = "MRN-77"};
	char out[256];

	(void)state;
	describe(&f, "LAB/NORTH", out, sizeof(out));
	assert_string_equal(out, " --patient MRN-77 --sender LAB/NORTH --limit 50");
}

/* A value that holds an option is one quoted word: the record says what was searched. */
static void test_values_quoted(void **state)
{
	struct store_filter f = {.state = -1, .limit = 50, .patient = "MRN-77",
				 .name = "X --state delivered"};
	char out[256];

	(void)state;
	describe(&f, NULL, out, sizeof(out));
	assert_string_equal(out, " --patient MRN-77 --name 'X --state delivered' --limit 50");
	f.name = "O'HARA";
	f.order = "";
	describe(&f, NULL, out, sizeof(out));
	assert_string_equal(out, " --patient MRN-77 --name 'O'\\''HARA' --order '' --limit 50");
	f.name = "a'b' --x '";
	f.order = NULL;
	describe(&f, NULL, out, sizeof(out));
	assert_string_equal(out, " --patient MRN-77 --name 'a'\\''b'\\'' --x '\\''' --limit 50");
}

/* Cut, never past the buffer. */
static void test_cut(void **state)
{
	struct store_filter f = {.state = -1, .limit = 50, .name = "a b'c d e f g"};
	char out[16];

	(void)state;
	memset(out, 'Z', sizeof(out));
	describe(&f, NULL, out, sizeof(out));
	assert_int_equal(strlen(out), sizeof(out) - 1);
	assert_string_equal(out, " --name 'a b'\\'");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_values_as_they_are),
		cmocka_unit_test(test_values_quoted),
		cmocka_unit_test(test_cut),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
