/* The byte buffer: one linear region with bounds-checked accessors. Live bytes are
 * data[off .. off + len); views returned by buf_head() and buf_tail() are valid until the
 * next call that changes the buffer. Owners release drained buffers when idle, so an idle
 * connection holds none. */
#ifndef NETWALL_BUF_H
#define NETWALL_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t off;
	size_t len;
	size_t cap;
};

/* Makes room for n more bytes at the tail and returns a pointer to it; aborts on OOM. */
uint8_t *buf_tail(struct buf *b, size_t n);
/* Declares n bytes written at the tail (n <= the room asked of buf_tail). */
void buf_commit(struct buf *b, size_t n);
void buf_append(struct buf *b, const void *p, size_t n);
static inline const uint8_t *buf_head(const struct buf *b)
{
	return b->data + b->off;
}
/* Drops n bytes from the head. The memory stays for reuse; see buf_release. */
void buf_consume(struct buf *b, size_t n);
/* Frees the memory of an empty buffer (called from idle timers). */
void buf_release(struct buf *b);
/* Wipes (the bytes may be patient data) and frees. Safe on a zeroed buffer. */
void buf_free(struct buf *b);

#endif
