/* MLLP framing: <VT> message <FS><CR>. A state machine fed whatever the socket gave, so
 * any split or coalescing of reads yields the same frames. Bytes between frames (junk,
 * NULs, stray CRs) are skipped and counted. A <VT> inside a frame restarts it (the sender
 * gave up on the partial one). <FS> ends the frame at once; the <CR> that should follow is
 * skipped when it comes, so a sender that omits it is still answered.
 *
 * A frame longer than the limit is not kept: its first max bytes are, so the caller can
 * still read the header and reject it; the rest is skipped up to <FS> (a <VT> in the skipped
 * part restarts as anywhere else in a frame). Memory per framer is therefore bounded by max. */
#ifndef NETWALL_MLLP_H
#define NETWALL_MLLP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"

#define MLLP_VT 0x0b
#define MLLP_FS 0x1c
#define MLLP_CR 0x0d

enum mllp_result {
	MLLP_MORE = 0,  /* everything given was consumed; no complete frame yet */
	MLLP_FRAME,     /* a frame is complete: mllp_frame() gives it */
	MLLP_OVERSIZE,  /* a frame over the limit ended: mllp_frame() gives its first max bytes */
};

enum mllp_state {
	MLLP_BETWEEN = 0, /* outside a frame, waiting for <VT> */
	MLLP_IN,          /* inside a frame */
	MLLP_SKIP,        /* inside an oversize frame, discarding until <FS> */
};

struct mllp {
	enum mllp_state state;
	size_t max;          /* frame size limit in bytes */
	struct buf frame;    /* the frame being received (without <VT>/<FS>) */
	bool ready;          /* a frame was returned and is dropped at the next feed */
	bool after_fs;       /* the next byte may be the <CR> closing the last frame */
	uint64_t junk;       /* bytes skipped between frames (not counting a closing <CR>) */
	uint64_t restarts;   /* frames abandoned by a new <VT> */
};

void mllp_init(struct mllp *f, size_t max);
/* Wipes and frees the frame buffer. */
void mllp_free(struct mllp *f);

/* Feeds p[0..len). Consumes bytes up to and including the end of the first frame that
 * completes and returns MLLP_FRAME or MLLP_OVERSIZE with *used set; the caller handles
 * the frame and calls again with the rest. Returns MLLP_MORE, with *used = len, when all
 * len bytes were consumed without completing one. A frame returned stays valid until the next call. */
enum mllp_result mllp_feed(struct mllp *f, const uint8_t *p, size_t len, size_t *used);

/* The frame completed by the last mllp_feed. */
const uint8_t *mllp_frame(const struct mllp *f, size_t *len);

/* True while a frame is partly received (for the partial-frame timeout). */
bool mllp_partial(const struct mllp *f);

/* Appends <VT> data <FS><CR> to out. */
void mllp_wrap(struct buf *out, const void *data, size_t len);

/* The frame buffer's capacity once n more bytes of a frame are kept: it doubles from 4 KiB
 * and never passes max. For budgets: what feeding n bytes may allocate. */
size_t mllp_cap_after(const struct mllp *f, size_t n);

/* Releases the frame buffer's memory when no frame is in progress (idle connections). The
 * frame last returned is dropped with it. */
void mllp_trim(struct mllp *f);

#endif
