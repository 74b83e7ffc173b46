/* The indexer (indexer.c): a thread that merges the keys store_put leaves pending into
 * the sorted search index, off the committer's path. */
#ifndef NETWALL_INDEXER_H
#define NETWALL_INDEXER_H
#include <stddef.h>
#include <stdint.h>

#include "intake/store.h"

struct indexer;

struct indexer_stats {
	uint64_t pending;  /* keys committed and not yet merged, as the indexer counts them */
	uint64_t merged;   /* keys merged since start */
	uint64_t failures; /* merges that failed */
};

/* Opens its own connection to spec and starts the thread. NULL with err filled. */
struct indexer *indexer_new(const char *spec, char *err, size_t errlen);
/* The committer stored keys more keys (any thread). */
void indexer_added(struct indexer *x, size_t keys);
void indexer_stats(struct indexer *x, struct indexer_stats *out);
/* Stops the thread (a merge under way finishes first), closes, frees. Accepts NULL. */
void indexer_free(struct indexer *x);

#endif
