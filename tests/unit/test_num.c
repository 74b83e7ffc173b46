/* Unit tests for core/num: the strict number parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>

#include "core/num.h"

static void test_u64_accepts(void **state)
{
	uint64_t v = 99;

	assert_int_equal(num_u64("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(num_u64("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(num_u64("65535", 1, 65535, &v), 0);
	assert_int_equal(v, 65535);
	assert_int_equal(num_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
	/* leading zeros are still base 10, never octal */
	assert_int_equal(num_u64("010", 0, 100, &v), 0);
	assert_int_equal(v, 10);
}

static void test_u64_bounds_inclusive(void **state)
{
	uint64_t v = 0;

	assert_int_equal(num_u64("5", 5, 5, &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(num_u64("4", 5, 10, &v), -1);
	assert_int_equal(num_u64("11", 5, 10, &v), -1);
	assert_int_equal(num_u64("10", 5, 10, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(num_u64("65536", 1, 65535, &v), -1);
	assert_int_equal(num_u64("0", 1, 65535, &v), -1);
}

static void test_u64_rejects(void **state)
{
	static const char *const bad[] = {
		"",    "-1",    "+1",    " 1",  "1 ",  "1x",  "x1", "0x10", "1.0",
		"1e3", "1,000", "1_000", "\t1", "1\n", "--1",
		"\xd9\xa1", /* ARABIC-INDIC DIGIT ONE */
		"18446744073709551616",      /* UINT64_MAX + 1 */
		"99999999999999999999999999", /* far beyond */
		"-18446744073709551615",      /* strtoull would wrap this */
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (num_u64(bad[i], 0, UINT64_MAX, &v) != -1)
			fail_msg("num_u64 accepted '%s'", bad[i]);
	}
	assert_int_equal(num_u64(NULL, 0, 10, &v), -1);
}

static void test_u64_failure_leaves_out(void **state)
{
	uint64_t v = 7;

	assert_int_equal(num_u64("12", 0, 10, &v), -1);
	assert_int_equal(v, 7);
	assert_int_equal(num_u64("1x", 0, 10, &v), -1);
	assert_int_equal(v, 7);
}

static void test_seconds_accepts(void **state)
{
	double v = -1;

	assert_int_equal(num_seconds("2", 0, 10, &v), 0);
	assert_true(v == 2.0);
	assert_int_equal(num_seconds("0.25", 0, 10, &v), 0);
	assert_true(v == 0.25);
	assert_int_equal(num_seconds("0", 0, 10, &v), 0);
	assert_true(v == 0.0);
	assert_int_equal(num_seconds("10.5", 0, 11, &v), 0);
	assert_true(v == 10.5);
	assert_int_equal(num_seconds("007.5", 0, 10, &v), 0);
	assert_true(v == 7.5);
}

static void test_seconds_bounds(void **state)
{
	double v = 0;

	assert_int_equal(num_seconds("0.5", 0.5, 1, &v), 0);
	assert_true(v == 0.5);
	assert_int_equal(num_seconds("1", 0.5, 1, &v), 0);
	assert_int_equal(num_seconds("0.49", 0.5, 1, &v), -1);
	assert_int_equal(num_seconds("1.01", 0.5, 1, &v), -1);
	assert_int_equal(num_seconds("301", 0, 300, &v), -1);
}

static void test_seconds_rejects(void **state)
{
	static const char *const bad[] = {
		"",    "-1",  "+1",   " 1",  "1 ", "1s",   ".5",  "1.2.3", "nan", "NaN",
		"inf", "infinity", "1,5", "1e999",
	};
	double v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (num_seconds(bad[i], 0, 1e300, &v) != -1)
			fail_msg("num_seconds accepted '%s'", bad[i]);
	}
	assert_int_equal(num_seconds(NULL, 0, 10, &v), -1);
}

static void test_seconds_rejects_hex(void **state)
{
	double v = 0;

	/* "decimal number of seconds": strtod's hexadecimal floats are not decimal */
	if (num_seconds("0x10", 0, 100, &v) != -1)
		fail_msg("num_seconds accepted \"0x10\" as %g", v);
	if (num_seconds("0x1p3", 0, 100, &v) != -1)
		fail_msg("num_seconds accepted \"0x1p3\" as %g", v);
	if (num_seconds("0X1", 0, 100, &v) != -1)
		fail_msg("num_seconds accepted \"0X1\" as %g", v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_u64_accepts),
		cmocka_unit_test(test_u64_bounds_inclusive),
		cmocka_unit_test(test_u64_rejects),
		cmocka_unit_test(test_u64_failure_leaves_out),
		cmocka_unit_test(test_seconds_accepts),
		cmocka_unit_test(test_seconds_bounds),
		cmocka_unit_test(test_seconds_rejects),
		cmocka_unit_test(test_seconds_rejects_hex),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
