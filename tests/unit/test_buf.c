/* Unit tests for core/buf: the linear byte buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"

static void fill_pattern(uint8_t *p, size_t n, size_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((seed + i) * 131 + 7);
}

static void test_zeroed_is_empty(void **state)
{
	struct buf b = { 0 };

	assert_int_equal(b.len, 0);
	buf_free(&b); /* safe on a zeroed buffer */
	assert_null(b.data);
	buf_release(&b);
	assert_null(b.data);
}

static void test_append_and_head(void **state)
{
	struct buf b = { 0 };

	buf_append(&b, "hello", 5);
	assert_int_equal(b.len, 5);
	assert_memory_equal(buf_head(&b), "hello", 5);
	buf_append(&b, " world", 6);
	assert_int_equal(b.len, 11);
	assert_memory_equal(buf_head(&b), "hello world", 11);
	buf_free(&b);
}

static void test_append_nothing(void **state)
{
	struct buf b = { 0 };

	buf_append(&b, "", 0);
	assert_int_equal(b.len, 0);
	buf_append(&b, "ab", 2);
	buf_append(&b, "", 0);
	assert_int_equal(b.len, 2);
	assert_memory_equal(buf_head(&b), "ab", 2);
	buf_free(&b);
}

static void test_consume(void **state)
{
	struct buf b = { 0 };

	buf_append(&b, "abcdef", 6);
	buf_consume(&b, 2);
	assert_int_equal(b.len, 4);
	assert_memory_equal(buf_head(&b), "cdef", 4);
	buf_consume(&b, 0);
	assert_int_equal(b.len, 4);
	buf_consume(&b, 4);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.off, 0); /* drained: the next bytes go to the start */
	buf_append(&b, "xy", 2);
	assert_ptr_equal(buf_head(&b), b.data);
	assert_memory_equal(buf_head(&b), "xy", 2);
	buf_free(&b);
}

static void test_tail_commit(void **state)
{
	struct buf b = { 0 };
	uint8_t *t;

	buf_append(&b, "ab", 2);
	t = buf_tail(&b, 100);
	assert_non_null(t);
	assert_ptr_equal(t, buf_head(&b) + b.len);
	assert_true(b.cap - b.off - b.len >= 100);
	memset(t, 'z', 100); /* all of the room asked for is writable */
	buf_commit(&b, 3);
	assert_int_equal(b.len, 5);
	assert_memory_equal(buf_head(&b), "abzzz", 5);
	buf_commit(&b, 0);
	assert_int_equal(b.len, 5);
	buf_free(&b);
}

static void test_growth_keeps_bytes(void **state)
{
	struct buf b = { 0 };
	uint8_t *big = malloc(100000);

	assert_non_null(big);
	fill_pattern(big, 100000, 1);
	buf_append(&b, big, 10);
	assert_int_equal(b.cap, 4096);
	buf_append(&b, big + 10, 99990);
	assert_int_equal(b.len, 100000);
	assert_true(b.cap >= 100000);
	assert_int_equal(b.cap, 131072); /* doubling from 4096 */
	assert_memory_equal(buf_head(&b), big, 100000);
	buf_free(&b);
	free(big);
}

static void test_compacts_before_growing(void **state)
{
	struct buf b = { 0 };
	uint8_t data[4096];

	fill_pattern(data, sizeof(data), 3);
	buf_append(&b, data, 3000);
	assert_int_equal(b.cap, 4096);
	buf_consume(&b, 2000);
	assert_int_equal(b.off, 2000);
	/* 1000 live + 2000 new fit in 4096 once moved to the front */
	buf_append(&b, data + 3000, 1096);
	buf_append(&b, data, 904);
	assert_int_equal(b.cap, 4096);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.len, 3000);
	assert_memory_equal(buf_head(&b), data + 2000, 2096);
	assert_memory_equal(buf_head(&b) + 2096, data, 904);
	buf_free(&b);
}

static void test_grows_with_offset(void **state)
{
	struct buf b = { 0 };
	uint8_t data[8192];

	fill_pattern(data, sizeof(data), 9);
	buf_append(&b, data, 3000);
	buf_consume(&b, 1000);
	buf_append(&b, data + 3000, 5000);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.len, 7000);
	assert_true(b.cap >= 7000);
	assert_memory_equal(buf_head(&b), data + 1000, 7000);
	buf_free(&b);
}

static void test_release_only_when_empty(void **state)
{
	struct buf b = { 0 };

	buf_append(&b, "keep", 4);
	buf_release(&b);
	assert_non_null(b.data);
	assert_int_equal(b.len, 4);
	assert_memory_equal(buf_head(&b), "keep", 4);
	buf_consume(&b, 4);
	buf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
	assert_int_equal(b.off, 0);
	/* and it is usable again */
	buf_append(&b, "again", 5);
	assert_memory_equal(buf_head(&b), "again", 5);
	buf_free(&b);
}

static void test_free_resets(void **state)
{
	struct buf b = { 0 };

	buf_append(&b, "secret", 6);
	buf_consume(&b, 1);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	buf_free(&b); /* twice is fine */
	assert_null(b.data);
}

/* Random appends, tail writes and consumes against a plain array as the model. */
static void test_against_model(void **state)
{
	struct buf b = { 0 };
	size_t mcap = 1 << 20, mhead = 0, mlen = 0;
	uint8_t *model = malloc(mcap), chunk[9000];
	unsigned seed = 12345;

	assert_non_null(model);
	for (int round = 0; round < 5000; round++) {
		size_t n;
		seed = seed * 1103515245u + 12345u;
		n = (seed >> 8) % sizeof(chunk);
		switch ((seed >> 4) % 4) {
		case 0:
		case 1:
			if (mhead + mlen + n > mcap) {
				memmove(model, model + mhead, mlen);
				mhead = 0;
			}
			if (mlen + n > mcap)
				break;
			fill_pattern(chunk, n, (size_t)round);
			buf_append(&b, chunk, n);
			memcpy(model + mhead + mlen, chunk, n);
			mlen += n;
			break;
		case 2: {
			size_t used = n / 2;
			uint8_t *t;
			if (mhead + mlen + n > mcap) {
				memmove(model, model + mhead, mlen);
				mhead = 0;
			}
			if (mlen + n > mcap)
				break;
			t = buf_tail(&b, n);
			fill_pattern(t, n, (size_t)round * 7);
			buf_commit(&b, used);
			fill_pattern(model + mhead + mlen, used, (size_t)round * 7);
			mlen += used;
			break;
		}
		default:
			n = mlen ? n % (mlen + 1) : 0;
			buf_consume(&b, n);
			mhead += n;
			mlen -= n;
			break;
		}
		assert_int_equal(b.len, mlen);
		assert_true(b.off + b.len <= b.cap);
		if (mlen > 0)
			assert_memory_equal(buf_head(&b), model + mhead, mlen);
	}
	buf_free(&b);
	free(model);
}

/* Runs fn in a child and returns its exit status, or -1 if it did not exit normally. */
static int child_status(void (*fn)(void))
{
	pid_t pid;
	int st;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* the library logs the failure to stderr; keep the test output clean */
		if (freopen("/dev/null", "w", stderr) == NULL)
			_exit(100);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void consume_too_much(void)
{
	struct buf b = { 0 };

	buf_append(&b, "abc", 3);
	buf_consume(&b, 4);
}

static void commit_too_much(void)
{
	struct buf b = { 0 };

	(void)buf_tail(&b, 10);
	buf_commit(&b, b.cap + 1);
}

static void test_overflow_is_fatal(void **state)
{
	assert_int_equal(child_status(consume_too_much), 1);
	assert_int_equal(child_status(commit_too_much), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zeroed_is_empty),
		cmocka_unit_test(test_append_and_head),
		cmocka_unit_test(test_append_nothing),
		cmocka_unit_test(test_consume),
		cmocka_unit_test(test_tail_commit),
		cmocka_unit_test(test_growth_keeps_bytes),
		cmocka_unit_test(test_compacts_before_growing),
		cmocka_unit_test(test_grows_with_offset),
		cmocka_unit_test(test_release_only_when_empty),
		cmocka_unit_test(test_free_resets),
		cmocka_unit_test(test_against_model),
		cmocka_unit_test(test_overflow_is_fatal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
