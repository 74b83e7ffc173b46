/* Unit tests for core/log: the escape every peer value passes before a log line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/log.h"

static void test_plain_kept(void **state)
{
	char out[64];

	assert_string_equal(log_value(out, sizeof(out), "MSG00001"), "MSG00001");
	assert_string_equal(log_value(out, sizeof(out), ""), "");
}

static void test_field_breakers_escaped(void **state)
{
	char out[128];

	/* A quote, a space and '=' could end the field and forge another one. */
	assert_string_equal(log_value(out, sizeof(out), "a\" level=error x=\""),
			    "a%22%20level%3Derror%20x%3D%22");
	assert_string_equal(log_value(out, sizeof(out), "100%\\\n\x7f\xc3\xa9"),
			    "100%25%5C%0A%7F%C3%A9");
	assert_null(strchr(out, ' '));
}

static void test_cut_at_whole_escape(void **state)
{
	char out[9];

	/* "abcd" fits; " " needs three more bytes: cut, marked. */
	assert_string_equal(log_value(out, sizeof(out), "abcde fgh"), "abcde%..");
	assert_string_equal(log_value(out, sizeof(out), "a b c d e"), "a%20b%..");
	for (size_t len = 1; len <= sizeof(out); len++) {
		char small[9];

		memset(small, 'X', sizeof(small));
		log_value(small, len, "\"\"\"\"\"\"\"");
		assert_true(strlen(small) < len);
		/* Only whole escapes or the cut mark. */
		for (size_t i = 0; small[i] != '\0'; i += 3)
			assert_int_equal(small[i], '%');
	}
}

/* Bytes with NULs (a certificate's CN): each NUL is %00, the rest as log_value. */
static void test_bytes_with_nul(void **state)
{
	char out[LOG_VALUE_SIZE(16)];

	(void)state;
	assert_string_equal(log_valuen(out, sizeof(out), "clinic\0.evil", 12), "clinic%00.evil");
	assert_string_equal(log_valuen(out, sizeof(out), "ab", 1), "a");
	assert_string_equal(log_valuen(out, 8, "\0\0\0\0", 4), "%00%..");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_kept),
		cmocka_unit_test(test_field_breakers_escaped),
		cmocka_unit_test(test_cut_at_whole_escape),
		cmocka_unit_test(test_bytes_with_nul),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
