/* Allocation that does not return on failure. A daemon out of memory logs one line and
 * aborts: no caller carries an error path for it, and none can stay half-set-up (a
 * listener open to all, a process still root) for want of a few bytes. */
#ifndef NETWALL_XALLOC_H
#define NETWALL_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);          /* NULL stays NULL */
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);

/* Aborts with one line naming what could not be had (out of memory, or a library object
 * that could not be made: an event, a buffer). */
void xalloc_fail(const char *what) __attribute__((noreturn));

/* Checks a library constructor's result: p, or xalloc_fail(what) when it is NULL. */
static inline void *xcheck(void *p, const char *what)
{
	if (p == NULL)
		xalloc_fail(what);
	return p;
}

#endif
