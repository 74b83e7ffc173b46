/* Unit tests for core/backoff: exponential reconnect delays with jitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "core/backoff.h"

/* Delays are small multiples of powers of two, so these comparisons are exact. */
#define assert_delay(got, want)                                                                    \
	do {                                                                                       \
		double got_ = (got), want_ = (want);                                               \
		if (!(fabs(got_ - want_) <= 1e-9 * (want_ > 1 ? want_ : 1)))                      \
			fail_msg("delay %.9f, want %.9f", got_, want_);                            \
	} while (0)

static void test_doubles_to_cap_low_jitter(void **state)
{
	struct backoff b = { .initial = 1, .max = 30 };
	static const double steps[] = { 1, 2, 4, 8, 16, 30, 30, 30 };

	/* rand01 = 0 gives exactly half of each step */
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		assert_delay(backoff_next(&b, 0), steps[i] * 0.5);
}

static void test_doubles_to_cap_high_jitter(void **state)
{
	struct backoff b = { .initial = 0.25, .max = 4 };
	static const double steps[] = { 0.25, 0.5, 1, 2, 4, 4, 4 };

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		double d = backoff_next(&b, 0.5);
		assert_delay(d, steps[i] * 0.75);
	}
}

static void test_jitter_bounds(void **state)
{
	for (int k = 0; k <= 1000; k++) {
		double r = k < 1000 ? k / 1000.0 : nextafter(1.0, 0.0);
		struct backoff b = { .initial = 2, .max = 60 };

		for (int step = 0; step < 8; step++) {
			double full = fmin(60, 2 * pow(2, step));
			double d = backoff_next(&b, r);
			if (!(d >= 0.5 * full && d < full + 1e-12))
				fail_msg("rand01=%g attempt %d: delay %g outside [%g, %g)", r,
					 step, d, 0.5 * full, full);
			/* and the spread is the linear map 50..100 % */
			assert_delay(d, full * (0.5 + r / 2));
		}
	}
}

static void test_rand_out_of_range_clamped(void **state)
{
	struct backoff b = { .initial = 8, .max = 8 };
	double d;

	d = backoff_next(&b, -3);
	assert_delay(d, 4);
	d = backoff_next(&b, 1.0);
	assert_true(d < 8 && d > 7.99);
	d = backoff_next(&b, 1e9);
	assert_true(d < 8 && d > 7.99);
}

static void test_reset(void **state)
{
	struct backoff b = { .initial = 1, .max = 100 };

	for (int i = 0; i < 5; i++)
		(void)backoff_next(&b, 0);
	assert_delay(backoff_next(&b, 0), 16);
	backoff_reset(&b);
	assert_int_equal(b.attempt, 0);
	assert_delay(backoff_next(&b, 0), 0.5);
	assert_delay(backoff_next(&b, 0), 1);
	/* reset keeps the configuration */
	assert_delay(b.initial, 1);
	assert_delay(b.max, 100);
}

static void test_many_attempts_stay_at_cap(void **state)
{
	struct backoff b = { .initial = 0.001, .max = 5 };
	double d = 0;

	for (int i = 0; i < 10000; i++) {
		d = backoff_next(&b, 0);
		assert_true(isfinite(d));
		assert_true(d <= 2.5);
	}
	assert_delay(d, 2.5);
	assert_true(b.attempt <= 64);
}

static void test_initial_above_max(void **state)
{
	struct backoff b = { .initial = 10, .max = 3 };

	assert_delay(backoff_next(&b, 0), 1.5);
	assert_delay(backoff_next(&b, 0), 1.5);
}

static void test_non_decreasing(void **state)
{
	struct backoff b = { .initial = 0.1, .max = 10 };
	double prev = 0;

	for (int i = 0; i < 20; i++) {
		double d = backoff_next(&b, 0.3);
		assert_true(d >= prev);
		prev = d;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doubles_to_cap_low_jitter),
		cmocka_unit_test(test_doubles_to_cap_high_jitter),
		cmocka_unit_test(test_jitter_bounds),
		cmocka_unit_test(test_rand_out_of_range_clamped),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_many_attempts_stay_at_cap),
		cmocka_unit_test(test_initial_above_max),
		cmocka_unit_test(test_non_decreasing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
