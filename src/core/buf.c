#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

uint8_t *buf_tail(struct buf *b, size_t n)
{
	size_t need = b->len + n;

	if (b->off + need <= b->cap)
		return b->data + b->off + b->len;
	if (need <= b->cap && b->off > 0) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
		return b->data + b->len;
	}
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < need)
		cap *= 2;
	uint8_t *p = malloc(cap);
	if (p == NULL)
		log_fatal("event=oom bytes=%zu", cap);
	if (b->len)
		memcpy(p, b->data + b->off, b->len);
	if (b->data != NULL)
		explicit_bzero(b->data, b->cap); /* as buf_free: the old copy is live data too */
	free(b->data);
	b->data = p;
	b->off = 0;
	b->cap = cap;
	return b->data + b->len;
}

void buf_commit(struct buf *b, size_t n)
{
	if (b->off + b->len + n > b->cap)
		log_fatal("event=bug what=buf_commit_overflow");
	b->len += n;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return; /* an unallocated buffer has no tail to copy to, even for nothing */
	memcpy(buf_tail(b, n), p, n);
	b->len += n;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n > b->len)
		log_fatal("event=bug what=buf_consume_overflow");
	b->off += n;
	b->len -= n;
	if (b->len == 0)
		b->off = 0;
}

void buf_release(struct buf *b)
{
	if (b->len == 0)
		buf_free(b);
}

void buf_free(struct buf *b)
{
	if (b->data != NULL)
		explicit_bzero(b->data, b->cap);
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}
