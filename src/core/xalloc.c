#include "core/xalloc.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

void xalloc_fail(const char *what)
{
	/* the log module formats on the stack: it needs no memory to say so */
	log_error("event=out_of_memory what=%s", what);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		xalloc_fail("malloc");
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		xalloc_fail("calloc");
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		xalloc_fail("realloc");
	return q;
}

void *xreallocarray(void *p, size_t n, size_t size)
{
	void *q = reallocarray(p, n ? n : 1, size ? size : 1);

	if (q == NULL)
		xalloc_fail("reallocarray");
	return q;
}

char *xstrdup(const char *s)
{
	return s != NULL ? xmemdup(s, strlen(s) + 1) : NULL;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (p == NULL)
		xalloc_fail("strndup");
	return p;
}

void *xmemdup(const void *p, size_t n)
{
	void *q = xmalloc(n);

	if (n > 0)
		memcpy(q, p, n);
	return q;
}
