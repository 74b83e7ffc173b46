/* MLLP framing. The scan inside a frame is two memchr() passes (for <FS>, then for <VT> before
 * it), so the bytes of a message are looked at by the C library's vectorised search and copied
 * once, never switched on one by one. */
#include "hl7/mllp.h"

#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

void mllp_init(struct mllp *f, size_t max)
{
	memset(f, 0, sizeof(*f));
	f->state = MLLP_BETWEEN;
	f->max = max;
}

void mllp_free(struct mllp *f)
{
	buf_free(&f->frame);
	f->state = MLLP_BETWEEN;
	f->ready = false;
	f->after_fs = false;
}

/* Empties the frame buffer, keeping its memory for the next frame. */
static void mllp_clear(struct mllp *f)
{
	buf_consume(&f->frame, f->frame.len);
}

size_t mllp_cap_after(const struct mllp *f, size_t n)
{
	const struct buf *b = &f->frame;
	size_t need = b->len + n, cap;

	if (need > f->max)
		need = f->max;
	if (need <= b->cap)
		return b->cap;
	cap = b->cap ? b->cap : 4096;
	while (cap < need)
		cap *= 2;
	return cap > f->max ? f->max : cap;
}

/* Makes room for n more bytes of the frame (len + n <= max), growing as mllp_cap_after
 * says: doubling, but never past max, so a framer holds at most max bytes. */
static void mllp_reserve(struct mllp *f, size_t n)
{
	struct buf *b = &f->frame;
	size_t cap = mllp_cap_after(f, n), len = b->len;
	uint8_t *p;

	if (cap <= b->cap)
		return; /* buf_tail moves the bytes to the front if it has to */
	p = xmalloc(cap);
	if (len > 0)
		memcpy(p, buf_head(b), len);
	buf_free(b); /* wipes the old copy */
	b->data = p;
	b->len = len;
	b->cap = cap;
}

/* Keeps what fits under the limit of p[0..n) and switches to MLLP_SKIP once it overflows. */
static void mllp_keep(struct mllp *f, const uint8_t *p, size_t n)
{
	size_t room;

	if (f->state != MLLP_IN)
		return;
	room = f->max - f->frame.len;
	if (n > room) {
		mllp_reserve(f, room);
		buf_append(&f->frame, p, room);
		f->state = MLLP_SKIP;
		return;
	}
	mllp_reserve(f, n);
	buf_append(&f->frame, p, n);
}

enum mllp_result mllp_feed(struct mllp *f, const uint8_t *p, size_t len, size_t *used)
{
	size_t i = 0;

	if (f->ready) {
		mllp_clear(f);
		f->ready = false;
	}
	while (i < len) {
		const uint8_t *fs, *vt;
		size_t n = len - i;

		if (f->after_fs) {
			f->after_fs = false;
			if (p[i] == MLLP_CR) {
				i++;
				continue;
			}
		}
		if (f->state == MLLP_BETWEEN) {
			vt = memchr(p + i, MLLP_VT, n);
			if (vt == NULL) {
				f->junk += n;
				break;
			}
			f->junk += (size_t)(vt - (p + i));
			i = (size_t)(vt - p) + 1;
			mllp_clear(f);
			f->state = MLLP_IN;
			continue;
		}
		/* MLLP_IN or MLLP_SKIP: the frame runs to the first <FS>, unless a <VT> comes
		 * first and restarts it. */
		fs = memchr(p + i, MLLP_FS, n);
		vt = memchr(p + i, MLLP_VT, fs != NULL ? (size_t)(fs - (p + i)) : n);
		if (vt != NULL) {
			f->restarts++;
			mllp_clear(f);
			f->state = MLLP_IN;
			i = (size_t)(vt - p) + 1;
			continue;
		}
		if (fs == NULL) {
			mllp_keep(f, p + i, n);
			break;
		}
		mllp_keep(f, p + i, (size_t)(fs - (p + i)));
		i = (size_t)(fs - p) + 1;
		*used = i;
		f->ready = true;
		f->after_fs = true;
		if (f->state == MLLP_SKIP) {
			f->state = MLLP_BETWEEN;
			return MLLP_OVERSIZE;
		}
		f->state = MLLP_BETWEEN;
		return MLLP_FRAME;
	}
	*used = len;
	return MLLP_MORE;
}

const uint8_t *mllp_frame(const struct mllp *f, size_t *len)
{
	static const uint8_t empty[1];

	if (!f->ready || f->frame.data == NULL) {
		*len = 0;
		return empty;
	}
	*len = f->frame.len;
	return buf_head(&f->frame);
}

bool mllp_partial(const struct mllp *f)
{
	return f->state != MLLP_BETWEEN;
}

void mllp_wrap(struct buf *out, const void *data, size_t len)
{
	uint8_t *p = buf_tail(out, len + 3);

	p[0] = MLLP_VT;
	if (len)
		memcpy(p + 1, data, len);
	p[len + 1] = MLLP_FS;
	p[len + 2] = MLLP_CR;
	buf_commit(out, len + 3);
}

void mllp_trim(struct mllp *f)
{
	if (f->state != MLLP_BETWEEN)
		return;
	f->ready = false;
	buf_free(&f->frame);
}
