/* Unit tests for hl7/mllp: the MLLP framer fed the same bytes in every possible split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "hl7/mllp.h"

#define VT "\x0b"
#define FS "\x1c"
#define CR "\x0d"

#define MSG1 "MSH|^~\\&|RX|PHARM|EMAR|WARD|20240101120000||RDE^O11|C1|P|2.5" CR "PID|1||123" CR
#define MSG2 "MSH|^~\\&|RX|PHARM|EMAR|WARD|20240101120001||RDS^O13|C2|P|2.5" CR
#define MSG3 "MSH|^~\\&|RX|PHARM|EMAR|WARD|20240101120002||RAS^O17|C3|P|2.5" CR "RXA|0|1" CR

/* Three frames with junk, NULs and stray line ends around them; the second frame has no CR
 * after its FS. Junk: 5 before the first frame, 4 after it (the CR right after FS is not
 * junk), 0 after the second, 3 at the end: 12. */
static const char stream[] = "ab\0\0\n" VT MSG1 FS CR "\r\n\0x" VT MSG2 FS VT MSG3 FS CR "\0zz";
#define STREAM_LEN (sizeof(stream) - 1)
#define STREAM_JUNK 12

/* What a framer gave for a run of input: every result and frame, in order, as one byte string,
 * so that two runs compare with memcmp. */
struct run {
	struct buf log;
	unsigned frames, oversize;
	uint64_t junk, restarts;
};

static void run_event(struct run *r, struct mllp *f, enum mllp_result res)
{
	const uint8_t *p;
	size_t len;
	uint8_t head[1 + sizeof(size_t)];

	p = mllp_frame(f, &len);
	assert_true(len <= f->max);
	head[0] = (uint8_t)res;
	memcpy(head + 1, &len, sizeof(len));
	buf_append(&r->log, head, sizeof(head));
	buf_append(&r->log, p, len);
	if (res == MLLP_FRAME)
		r->frames++;
	else
		r->oversize++;
}

/* Feeds p[0..len) to f, everything it returns logged into r. */
static void run_feed(struct run *r, struct mllp *f, const uint8_t *p, size_t len)
{
	while (len > 0) {
		size_t used = 0;
		enum mllp_result res = mllp_feed(f, p, len, &used);

		assert_true(used <= len);
		if (res == MLLP_MORE) {
			assert_int_equal(used, len);
			return;
		}
		assert_true(used > 0);
		run_event(r, f, res);
		p += used;
		len -= used;
	}
}

/* Feeds data in pieces cut at cuts[0..ncuts) (ascending offsets) with a fresh framer. */
static void run_split(struct run *r, size_t max, const void *data, size_t len, const size_t *cuts,
		      size_t ncuts)
{
	const uint8_t *p = data;
	struct mllp f;
	size_t from = 0;

	memset(r, 0, sizeof(*r));
	mllp_init(&f, max);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;

		run_feed(r, &f, p + from, to - from);
		from = to;
	}
	r->junk = f.junk;
	r->restarts = f.restarts;
	assert_false(mllp_partial(&f));
	mllp_free(&f);
}

static void run_same(const struct run *a, const struct run *b)
{
	assert_int_equal(a->log.len, b->log.len);
	assert_memory_equal(buf_head(&a->log), buf_head(&b->log), a->log.len);
	assert_int_equal(a->frames, b->frames);
	assert_int_equal(a->oversize, b->oversize);
	assert_int_equal(a->junk, b->junk);
	assert_int_equal(a->restarts, b->restarts);
}

static void run_free(struct run *r)
{
	buf_free(&r->log);
}

/* Feeds s and expects exactly the frames given (NULL-terminated) and nothing else. */
static void expect_frames(struct mllp *f, const char *s, size_t len, const char *const *want)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t k = 0;

	while (len > 0) {
		size_t used, flen;
		const uint8_t *fr;
		enum mllp_result res = mllp_feed(f, p, len, &used);

		if (res == MLLP_MORE)
			break;
		assert_int_equal(res, MLLP_FRAME);
		assert_non_null(want[k]);
		fr = mllp_frame(f, &flen);
		assert_int_equal(flen, strlen(want[k]));
		assert_memory_equal(fr, want[k], flen);
		k++;
		p += used;
		len -= used;
	}
	assert_null(want[k]);
}

static void test_one_shot(void **state)
{
	static const char *const want[] = {MSG1, MSG2, MSG3, NULL};
	struct mllp f;

	mllp_init(&f, 4096);
	expect_frames(&f, stream, STREAM_LEN, want);
	assert_int_equal(f.junk, STREAM_JUNK);
	assert_int_equal(f.restarts, 0);
	assert_false(mllp_partial(&f));
	mllp_free(&f);
}

static void test_every_split(void **state)
{
	struct run whole, part;

	run_split(&whole, 4096, stream, STREAM_LEN, NULL, 0);
	assert_int_equal(whole.frames, 3);
	for (size_t a = 0; a <= STREAM_LEN; a++) {
		run_split(&part, 4096, stream, STREAM_LEN, &a, 1);
		run_same(&whole, &part);
		run_free(&part);
	}
	run_free(&whole);
}

static void test_every_pair_of_splits(void **state)
{
	struct run whole, part;
	size_t cuts[2];

	run_split(&whole, 4096, stream, STREAM_LEN, NULL, 0);
	for (cuts[0] = 0; cuts[0] <= STREAM_LEN; cuts[0]++) {
		for (cuts[1] = cuts[0]; cuts[1] <= STREAM_LEN; cuts[1]++) {
			run_split(&part, 4096, stream, STREAM_LEN, cuts, 2);
			run_same(&whole, &part);
			run_free(&part);
		}
	}
	run_free(&whole);
}

static void test_byte_by_byte(void **state)
{
	struct run whole, part;
	size_t cuts[STREAM_LEN];

	for (size_t i = 0; i < STREAM_LEN; i++)
		cuts[i] = i;
	run_split(&whole, 4096, stream, STREAM_LEN, NULL, 0);
	run_split(&part, 4096, stream, STREAM_LEN, cuts, STREAM_LEN);
	run_same(&whole, &part);
	run_free(&part);
	run_free(&whole);
}

/* Splits are also invariant when frames go over the limit: every split of a stream with an
 * oversize frame (and a VT inside it) gives the same results. */
static void test_every_split_oversize(void **state)
{
	static const char s[] = "j" VT "0123456789abcdefXYZ" FS CR VT "0123456789abcdef" FS CR
				VT "0123456789abcdefghij" VT "short" FS "\0";
	struct run whole, part;
	size_t cuts[2];

	run_split(&whole, 16, s, sizeof(s) - 1, NULL, 0);
	assert_int_equal(whole.frames, 2);
	assert_int_equal(whole.oversize, 1);
	assert_int_equal(whole.restarts, 1);
	for (cuts[0] = 0; cuts[0] < sizeof(s); cuts[0]++) {
		for (cuts[1] = cuts[0]; cuts[1] < sizeof(s); cuts[1]++) {
			run_split(&part, 16, s, sizeof(s) - 1, cuts, 2);
			run_same(&whole, &part);
			run_free(&part);
		}
	}
	run_free(&whole);
}

static void test_coalesced(void **state)
{
	static const char s[] = VT "one" FS CR VT "two" FS CR VT "three" FS CR;
	const uint8_t *p = (const uint8_t *)s;
	size_t len = sizeof(s) - 1, used, flen;
	const uint8_t *fr;
	struct mllp f;

	mllp_init(&f, 64);
	assert_int_equal(mllp_feed(&f, p, len, &used), MLLP_FRAME);
	assert_int_equal(used, 5); /* up to and including the FS */
	fr = mllp_frame(&f, &flen);
	assert_int_equal(flen, 3);
	assert_memory_equal(fr, "one", 3);
	p += used;
	len -= used;
	assert_int_equal(mllp_feed(&f, p, len, &used), MLLP_FRAME);
	assert_int_equal(used, 6); /* the CR of the first frame, then VT two FS */
	fr = mllp_frame(&f, &flen);
	assert_memory_equal(fr, "two", 3);
	p += used;
	len -= used;
	assert_int_equal(mllp_feed(&f, p, len, &used), MLLP_FRAME);
	fr = mllp_frame(&f, &flen);
	assert_int_equal(flen, 5);
	assert_memory_equal(fr, "three", 5);
	p += used;
	len -= used;
	assert_int_equal(len, 1);
	assert_int_equal(mllp_feed(&f, p, len, &used), MLLP_MORE);
	assert_int_equal(used, 1);
	assert_int_equal(f.junk, 0);
	mllp_free(&f);
}

static void test_vt_restart(void **state)
{
	static const char s[] = VT "MSH|partial" VT "MSH|whole" FS CR;
	static const char *const want[] = {"MSH|whole", NULL};
	struct mllp f;

	mllp_init(&f, 64);
	expect_frames(&f, s, sizeof(s) - 1, want);
	assert_int_equal(f.restarts, 1);
	assert_int_equal(f.junk, 0);
	mllp_free(&f);

	/* the restart arriving in a later read than the partial frame */
	mllp_init(&f, 64);
	expect_frames(&f, VT "MSH|part", 9, (const char *const[]){NULL});
	assert_true(mllp_partial(&f));
	expect_frames(&f, VT VT "ok" FS, 5, (const char *const[]){"ok", NULL});
	assert_int_equal(f.restarts, 2);
	mllp_free(&f);
}

static void test_fs_without_cr(void **state)
{
	static const char s[] = VT "a" FS VT "b" FS "x" VT "c" FS;
	static const char *const want[] = {"a", "b", "c", NULL};
	struct mllp f;

	mllp_init(&f, 64);
	expect_frames(&f, s, sizeof(s) - 1, want);
	assert_int_equal(f.junk, 1); /* the "x" */
	assert_false(mllp_partial(&f));
	mllp_free(&f);
}

static void test_empty_frame(void **state)
{
	static const char *const want[] = {"", "a", NULL};
	struct mllp f;

	mllp_init(&f, 64);
	expect_frames(&f, VT FS CR VT "a" FS CR, 7, want);
	mllp_free(&f);
}

/* A frame of max bytes is a frame; one more byte makes it oversize, and what follows it is
 * not affected. */
static void test_oversize_just_over(void **state)
{
	static const char s[] = VT "0123456789abcdef" FS CR VT "0123456789abcdefg" FS CR
				VT "next" FS CR;
	const uint8_t *p = (const uint8_t *)s, *fr;
	size_t len = sizeof(s) - 1, used, flen;
	struct mllp f;

	mllp_init(&f, 16);
	assert_int_equal(mllp_feed(&f, p, len, &used), MLLP_FRAME);
	fr = mllp_frame(&f, &flen);
	assert_int_equal(flen, 16);
	p += used;
	len -= used;
	assert_int_equal(mllp_feed(&f, p, len, &used), MLLP_OVERSIZE);
	fr = mllp_frame(&f, &flen);
	assert_int_equal(flen, 16);
	assert_memory_equal(fr, "0123456789abcdef", 16);
	p += used;
	len -= used;
	assert_int_equal(mllp_feed(&f, p, len, &used), MLLP_FRAME);
	fr = mllp_frame(&f, &flen);
	assert_int_equal(flen, 4);
	assert_memory_equal(fr, "next", 4);
	assert_int_equal(f.junk, 0);
	mllp_free(&f);
}

/* A frame far over the limit, arriving in small reads, never holds more than max bytes. */
static void test_oversize_far_over(void **state)
{
	enum { BIG = 200000, MAX = 100 };
	static uint8_t s[1 + BIG + 2 + 1 + 4 + 2];
	size_t len = sizeof(s), off = 0, flen;
	const uint8_t *fr;
	unsigned oversize = 0, frames = 0;
	struct mllp f;

	s[0] = MLLP_VT;
	for (size_t i = 0; i < BIG; i++)
		s[1 + i] = (uint8_t)('A' + i % 26);
	memcpy(s + 1 + BIG, FS CR VT "next" FS CR, 9);
	mllp_init(&f, MAX);
	while (off < len) {
		size_t n = len - off < 997 ? len - off : 997, used;

		while (n > 0) {
			enum mllp_result res = mllp_feed(&f, s + off, n, &used);

			assert_true(f.frame.len <= MAX);
			off += used;
			n -= used;
			if (res == MLLP_OVERSIZE) {
				fr = mllp_frame(&f, &flen);
				assert_int_equal(flen, MAX);
				assert_memory_equal(fr, s + 1, MAX);
				oversize++;
			} else if (res == MLLP_FRAME) {
				fr = mllp_frame(&f, &flen);
				assert_int_equal(flen, 4);
				assert_memory_equal(fr, "next", 4);
				frames++;
			}
		}
	}
	assert_int_equal(oversize, 1);
	assert_int_equal(frames, 1);
	assert_true(f.frame.cap < BIG);
	mllp_free(&f);
}

static void test_partial(void **state)
{
	const uint8_t *p;
	size_t used;
	struct mllp f;

	mllp_init(&f, 8);
	assert_false(mllp_partial(&f));
	p = (const uint8_t *)"junk";
	assert_int_equal(mllp_feed(&f, p, 4, &used), MLLP_MORE);
	assert_false(mllp_partial(&f));
	p = (const uint8_t *)VT;
	assert_int_equal(mllp_feed(&f, p, 1, &used), MLLP_MORE);
	assert_true(mllp_partial(&f));
	p = (const uint8_t *)"MSH|0123456789"; /* over the limit: skipping, still partial */
	assert_int_equal(mllp_feed(&f, p, 14, &used), MLLP_MORE);
	assert_true(mllp_partial(&f));
	p = (const uint8_t *)FS;
	assert_int_equal(mllp_feed(&f, p, 1, &used), MLLP_OVERSIZE);
	assert_false(mllp_partial(&f));
	p = (const uint8_t *)CR;
	assert_int_equal(mllp_feed(&f, p, 1, &used), MLLP_MORE);
	assert_false(mllp_partial(&f));
	assert_int_equal(f.junk, 4);
	mllp_free(&f);
}

static void test_frame_dropped_at_next_feed(void **state)
{
	size_t used, flen;
	struct mllp f;

	mllp_init(&f, 8);
	assert_int_equal(mllp_feed(&f, (const uint8_t *)VT "ab" FS, 4, &used), MLLP_FRAME);
	mllp_frame(&f, &flen);
	assert_int_equal(flen, 2);
	assert_int_equal(mllp_feed(&f, (const uint8_t *)"", 0, &used), MLLP_MORE);
	assert_int_equal(used, 0);
	mllp_frame(&f, &flen);
	assert_int_equal(flen, 0);
	mllp_free(&f);
}

static void test_wrap_round_trip(void **state)
{
	static const char *const msgs[] = {MSG1, "", MSG2, "x", MSG3, NULL};
	struct buf out = {0};
	struct mllp f;

	for (size_t i = 0; msgs[i] != NULL; i++)
		mllp_wrap(&out, msgs[i], strlen(msgs[i]));
	assert_int_equal(buf_head(&out)[0], MLLP_VT);
	assert_int_equal(buf_head(&out)[out.len - 2], MLLP_FS);
	assert_int_equal(buf_head(&out)[out.len - 1], MLLP_CR);
	mllp_init(&f, 4096);
	expect_frames(&f, (const char *)buf_head(&out), out.len, msgs);
	assert_int_equal(f.junk, 0);
	assert_int_equal(f.restarts, 0);
	mllp_free(&f);
	buf_free(&out);
}

static void test_junk_counting(void **state)
{
	struct mllp f;

	mllp_init(&f, 64);
	/* the CR right after FS is not junk; a second one is; a stray FS and a NUL are */
	expect_frames(&f, VT "a" FS CR CR FS "\0" VT "b" FS, 10,
		      (const char *const[]){"a", "b", NULL});
	assert_int_equal(f.junk, 3);
	/* what follows the last FS is junk when it is not a CR */
	expect_frames(&f, "zz", 2, (const char *const[]){NULL});
	assert_int_equal(f.junk, 5);
	expect_frames(&f, "", 0, (const char *const[]){NULL});
	assert_int_equal(f.junk, 5);
	mllp_free(&f);

	/* a CR after a stray FS (one that ended no frame) is junk too */
	mllp_init(&f, 64);
	expect_frames(&f, FS CR CR, 3, (const char *const[]){NULL});
	assert_int_equal(f.junk, 3);
	mllp_free(&f);
}

static void test_trim(void **state)
{
	size_t used;
	struct mllp f;

	mllp_init(&f, 64);
	mllp_trim(&f); /* nothing allocated yet */
	assert_int_equal(mllp_feed(&f, (const uint8_t *)VT "abc" FS CR, 6, &used), MLLP_FRAME);
	assert_non_null(f.frame.data);
	mllp_trim(&f);
	assert_null(f.frame.data);
	/* a frame in progress keeps its bytes */
	expect_frames(&f, CR VT "par", 5, (const char *const[]){NULL});
	mllp_trim(&f);
	assert_non_null(f.frame.data);
	expect_frames(&f, "tial" FS, 5, (const char *const[]){"partial", NULL});
	mllp_trim(&f);
	assert_null(f.frame.data);
	assert_int_equal(f.junk, 0);
	mllp_free(&f);
	mllp_free(&f); /* twice is harmless */
}

/* The frame buffer doubles from 4 KiB but never passes max (a max that is no power of
 * two too), and mllp_cap_after says what it will be. */
static void test_buffer_never_passes_max(void **state)
{
	const size_t max = 100000;
	static uint8_t chunk[7000];
	size_t used, fed = 0;
	struct mllp f;

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	mllp_init(&f, max);
	assert_int_equal(mllp_cap_after(&f, 10), 4096);
	assert_int_equal(mllp_feed(&f, (const uint8_t *)VT, 1, &used), MLLP_MORE);
	while (fed < max + sizeof(chunk)) {
		size_t want = mllp_cap_after(&f, sizeof(chunk));
		assert_int_equal(mllp_feed(&f, chunk, sizeof(chunk), &used), MLLP_MORE);
		fed += sizeof(chunk);
		assert_true(f.frame.cap <= max);
		assert_int_equal(f.frame.cap, want);
	}
	assert_int_equal(f.frame.cap, max);
	assert_int_equal(f.frame.len, max);
	assert_int_equal(mllp_cap_after(&f, 1 << 20), max);
	assert_int_equal(mllp_feed(&f, (const uint8_t *)FS, 1, &used), MLLP_OVERSIZE);
	mllp_free(&f);

	/* under 4 KiB: max at once */
	mllp_init(&f, 1024);
	assert_int_equal(mllp_cap_after(&f, 10), 1024);
	mllp_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_shot),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_every_pair_of_splits),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_every_split_oversize),
		cmocka_unit_test(test_coalesced),
		cmocka_unit_test(test_vt_restart),
		cmocka_unit_test(test_fs_without_cr),
		cmocka_unit_test(test_empty_frame),
		cmocka_unit_test(test_oversize_just_over),
		cmocka_unit_test(test_oversize_far_over),
		cmocka_unit_test(test_partial),
		cmocka_unit_test(test_frame_dropped_at_next_feed),
		cmocka_unit_test(test_wrap_round_trip),
		cmocka_unit_test(test_junk_counting),
		cmocka_unit_test(test_trim),
		cmocka_unit_test(test_buffer_never_passes_max),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
