/* Unit tests for wall/rate: the token bucket's arithmetic (the pacing of streams is tested
 * through the gateway with iperf3, tests/integration/test_rate_limit.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "wall/rate.h"

static void test_new_bucket_starts_full_with_a_floor(void **state)
{
	struct rate_bucket b = { 0 };

	(void)state;
	rate_bucket_set(&b, 1000000, 10.0); /* an eighth of a second's worth */
	assert_int_equal(rate_bucket_room(&b, 10.0), 125000);
	rate_bucket_set(&b, 0, 10.0);
	rate_bucket_set(&b, 2048, 10.0);    /* at least 16 KiB */
	assert_int_equal(rate_bucket_room(&b, 10.0), 16384);
}

static void test_refills_at_its_rate_up_to_its_burst(void **state)
{
	struct rate_bucket b = { 0 };

	(void)state;
	/* powers of two, so that the arithmetic is exact */
	rate_bucket_set(&b, 1 << 20, 0.0);
	b.tokens = 0;
	assert_int_equal(rate_bucket_room(&b, 0.0), 0);
	assert_int_equal(rate_bucket_room(&b, 1.0 / 1024), 1024);
	assert_int_equal(rate_bucket_room(&b, 11.0 / 1024), 11264);
	assert_int_equal(rate_bucket_room(&b, 100.0), 131072); /* not more than the burst */
	/* time that runs backwards takes nothing */
	assert_int_equal(rate_bucket_room(&b, 50.0), 131072);
}

static void test_wait_until_n_bytes(void **state)
{
	struct rate_bucket b = { 0 };

	(void)state;
	rate_bucket_set(&b, 1000000, 0.0);
	b.tokens = 500;
	assert_true(fabs(rate_bucket_wait(&b, 4096) - 0.003596) < 1e-9);
	assert_true(rate_bucket_wait(&b, 100) == 0);
	/* more than the burst: waits only for the burst, which it can hold */
	assert_true(fabs(rate_bucket_wait(&b, 1 << 20) - (125000 - 500) / 1e6) < 1e-9);
}

static void test_no_limit(void **state)
{
	struct rate_bucket b = { 0 };

	(void)state;
	assert_int_equal(rate_bucket_room(&b, 1.0), SIZE_MAX);
	assert_true(rate_bucket_wait(&b, 1 << 30) == 0);
}

static void test_lowered_rate_keeps_at_most_the_new_burst(void **state)
{
	struct rate_bucket b = { 0 };

	(void)state;
	rate_bucket_set(&b, 8000000, 0.0); /* burst 1,000,000, full */
	rate_bucket_set(&b, 1000000, 0.0); /* burst 125,000 */
	assert_int_equal(rate_bucket_room(&b, 0.0), 125000);
	b.tokens = 10;
	rate_bucket_set(&b, 2000000, 0.0); /* raised: keeps its 10 */
	assert_int_equal(rate_bucket_room(&b, 0.0), 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_bucket_starts_full_with_a_floor),
		cmocka_unit_test(test_refills_at_its_rate_up_to_its_burst),
		cmocka_unit_test(test_wait_until_n_bytes),
		cmocka_unit_test(test_no_limit),
		cmocka_unit_test(test_lowered_rate_keeps_at_most_the_new_burst),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
