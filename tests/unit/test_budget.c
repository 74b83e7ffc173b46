/* Unit tests for wall/budget: the process's memory budget. The budget is process-wide, so
 * each test gives back everything it took. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/buffer.h>
#include <string.h>

#include "core/metrics.h"
#include "wall/budget.h"

#define KiB 1024u

static int setup(void **state)
{
	(void)state;
	budget_set_limit(64 * KiB);
	return budget_held() == 0 ? 0 : -1;
}

/* Takes fit up to the limit exactly; one byte over is refused and takes nothing. */
static void test_take_up_to_the_limit(void **state)
{
	assert_int_equal(budget_room(), 64 * KiB);
	assert_true(budget_take(60 * KiB));
	assert_int_equal(budget_room(), 4 * KiB);
	assert_false(budget_take(4 * KiB + 1));
	assert_int_equal(budget_held(), 60 * KiB);
	assert_true(budget_take(4 * KiB));
	assert_int_equal(budget_room(), 0);
	assert_false(budget_take(1));
	budget_give(64 * KiB);
	assert_int_equal(budget_held(), 0);
	assert_int_equal(budget_room(), 64 * KiB);
}

/* Window may take half the budget and no more, however much room is left; it counts in
 * held, and giving it back frees both. */
static void test_window_takes_at_most_half(void **state)
{
	assert_true(budget_take_window(32 * KiB));
	assert_int_equal(budget_window(), 32 * KiB);
	assert_int_equal(budget_held(), 32 * KiB);
	assert_false(budget_take_window(1));
	assert_true(budget_take(32 * KiB)); /* the other half is for bytes read */
	budget_give(32 * KiB);
	budget_give_window(16 * KiB);
	assert_true(budget_take_window(16 * KiB));
	assert_false(budget_take_window(1));
	budget_give_window(32 * KiB);
	assert_int_equal(budget_window(), 0);
	assert_int_equal(budget_held(), 0);
}

/* Bytes read can fill the budget so that window finds no room, even below its half. */
static void test_window_needs_room_too(void **state)
{
	assert_true(budget_take(60 * KiB));
	assert_false(budget_take_window(8 * KiB));
	assert_int_equal(budget_window(), 0);
	assert_true(budget_take_window(4 * KiB));
	budget_give_window(4 * KiB);
	budget_give(60 * KiB);
	assert_int_equal(budget_held(), 0);
}

/* A lower limit takes nothing back: nothing more is taken until held is under it. */
static void test_lowering_the_limit(void **state)
{
	assert_true(budget_take(48 * KiB));
	budget_set_limit(32 * KiB);
	assert_int_equal(budget_limit(), 32 * KiB);
	assert_int_equal(budget_room(), 0);
	assert_false(budget_take(1));
	budget_give(20 * KiB);
	assert_int_equal(budget_room(), 4 * KiB);
	assert_true(budget_take(4 * KiB));
	budget_give(32 * KiB);
	budget_set_limit(64 * KiB);
}

/* The metrics: the budget, what is held now, window, the high-water mark, and waits. */
static void test_render(void **state)
{
	struct evbuffer *out = evbuffer_new();
	struct metrics *m = metrics_new();
	char *text;
	size_t len;

	assert_true(budget_take(10 * KiB));
	budget_give(10 * KiB);
	budget_note_wait();
	budget_register_metrics(m);
	metrics_prometheus(m, out);
	metrics_free(m);
	len = evbuffer_get_length(out);
	text = (char *)evbuffer_pullup(out, -1);
	text[len - 1] = '\0';
	assert_non_null(strstr(text, "# TYPE netwall_memory_budget_bytes gauge\nnetwall_memory_budget_bytes 65536\n"));
	assert_non_null(strstr(text, "\nnetwall_memory_held_bytes 0\n"));
	assert_non_null(strstr(text, "\nnetwall_memory_window_bytes 0\n"));
	assert_non_null(strstr(text, "# TYPE netwall_memory_waits_total counter\nnetwall_memory_waits_total 1"));
	/* the peak is the most held since the start: the first test filled the 64 KiB */
	assert_non_null(strstr(text, "\nnetwall_memory_held_peak_bytes 65536\n"));
	evbuffer_free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_take_up_to_the_limit, setup),
		cmocka_unit_test_setup(test_window_takes_at_most_half, setup),
		cmocka_unit_test_setup(test_window_needs_room_too, setup),
		cmocka_unit_test_setup(test_lowering_the_limit, setup),
		cmocka_unit_test_setup(test_render, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
