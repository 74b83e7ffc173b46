/* Fuzz target for the MLLP framer: the same bytes fed in one piece, in three pieces cut at
 * two points chosen from the input, and byte by byte must give the same frames, results and
 * counters; no frame is longer than the limit or holds a <VT> or <FS>. The three-piece run
 * also trims the framer between pieces, as the intake does on idle connections. What was
 * framed, wrapped again with mllp_wrap, frames the same.
 * Built by scripts/fuzz.sh (or `make fuzz`); with -DFUZZ_STANDALONE it is a plain program
 * that runs the files named on its command line through the same checks. */
#include <stdbool.h>

#include "common.h"
#include "hl7/mllp.h"

/* Every result and frame of one run, as one byte string. */
struct run {
	struct buf log;
	uint64_t junk, restarts;
	size_t events;
};

static void run_feed(struct run *r, struct mllp *f, const uint8_t *p, size_t len)
{
	while (len > 0) {
		size_t used = 0, flen;
		enum mllp_result res = mllp_feed(f, p, len, &used);
		const uint8_t *fr;
		uint8_t head[1 + sizeof(size_t)];

		check(used <= len);
		if (res == MLLP_MORE) {
			check(used == len);
			return;
		}
		check(res == MLLP_FRAME || res == MLLP_OVERSIZE);
		check(used > 0);
		fr = mllp_frame(f, &flen);
		check(flen <= f->max);
		check(res == MLLP_FRAME || flen == f->max);
		check(memchr(fr, MLLP_VT, flen) == NULL && memchr(fr, MLLP_FS, flen) == NULL);
		check(!mllp_partial(f));
		head[0] = (uint8_t)res;
		memcpy(head + 1, &flen, sizeof(flen));
		buf_append(&r->log, head, sizeof(head));
		buf_append(&r->log, fr, flen);
		r->events++;
		p += used;
		len -= used;
	}
}

/* Feeds data[0..len) cut at the ascending offsets cuts[0..ncuts), to a fresh framer.
 * Every piece is a copy of exactly its bytes, so a read past a piece is caught. */
static void run_split(struct run *r, size_t max, const uint8_t *data, size_t len,
		      const size_t *cuts, size_t ncuts, bool trim)
{
	struct mllp f;
	size_t from = 0;

	memset(r, 0, sizeof(*r));
	mllp_init(&f, max);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;
		uint8_t *piece = malloc(to - from ? to - from : 1);

		check(piece != NULL);
		memcpy(piece, data + from, to - from);
		run_feed(r, &f, piece, to - from);
		free(piece);
		from = to;
		if (trim) {
			size_t flen;

			mllp_trim(&f);
			if (!mllp_partial(&f)) {
				check(f.frame.data == NULL);
				(void)mllp_frame(&f, &flen);
				check(flen == 0);
			}
		}
	}
	r->junk = f.junk;
	r->restarts = f.restarts;
	mllp_trim(&f);
	check(mllp_partial(&f) || f.frame.data == NULL);
	mllp_free(&f);
}

static void run_same(const struct run *a, const struct run *b)
{
	check(a->log.len == b->log.len);
	check(a->log.len == 0 || memcmp(buf_head(&a->log), buf_head(&b->log), a->log.len) == 0);
	check(a->events == b->events);
	check(a->junk == b->junk);
	check(a->restarts == b->restarts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, part;
	size_t cuts[2], max, *every;

	/* The first three bytes choose the limit and the two cut points. */
	if (size < 3)
		return 0;
	max = 1 + data[0] % 64;
	if (data[0] & 0x80)
		max = 1u << 20;
	cuts[0] = data[1];
	cuts[1] = (size_t)data[2] * 7;
	data += 3;
	size -= 3;
	cuts[0] = size ? cuts[0] % (size + 1) : 0;
	cuts[1] = size ? cuts[1] % (size + 1) : 0;
	if (cuts[0] > cuts[1]) {
		size_t t = cuts[0];

		cuts[0] = cuts[1];
		cuts[1] = t;
	}

	run_split(&whole, max, data, size, NULL, 0, false);
	run_split(&part, max, data, size, cuts, 2, true);
	run_same(&whole, &part);
	buf_free(&part.log);

	every = malloc((size ? size : 1) * sizeof(*every));
	check(every != NULL);
	for (size_t i = 0; i < size; i++)
		every[i] = i;
	run_split(&part, max, data, size, every, size, false);
	run_same(&whole, &part);
	free(every);
	buf_free(&part.log);

	/* what was framed, wrapped again and framed, gives the same frames */
	if (whole.events > 0) {
		struct buf wrapped = {0};
		const uint8_t *p = buf_head(&whole.log), *end = p + whole.log.len;

		while (p < end) {
			size_t flen;

			memcpy(&flen, p + 1, sizeof(flen));
			mllp_wrap(&wrapped, p + 1 + sizeof(flen), flen);
			p += 1 + sizeof(flen) + flen;
		}
		run_split(&part, max, buf_head(&wrapped), wrapped.len, NULL, 0, false);
		check(part.events == whole.events);
		check(part.junk == 0 && part.restarts == 0);
		buf_free(&part.log);
		buf_free(&wrapped);
	}
	buf_free(&whole.log);
	return 0;
}
