/* The SQLite backend's pruning (store_sqlite_prune.c): the file's vacuum mode and the
 * pruning index (at open), removing messages, their stored size, giving space back. For
 * store_sqlite.c; the last four signatures are store_ops'. */
#ifndef NETWALL_STORE_SQLITE_PRUNE_H
#define NETWALL_STORE_SQLITE_PRUNE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "intake/store_int.h"

struct sqlite_store;

/* auto_vacuum = INCREMENTAL: before anything else on a new file (no effect on others). */
void store_sqlite_prune_mode(struct sqlite_store *q);
/* Creates the pruning index if missing (once, on a store made before it). 0 or -1. */
int store_sqlite_prune_index(struct sqlite_store *q, char *err, size_t errlen);

int store_sqlite_prune(struct store *s, const struct store_prune *p,
		       const struct store_audit_row *a, uint64_t *bytes, char *err, size_t errlen);
int store_sqlite_prune_bytes(struct store *s, uint64_t *bytes, char *err, size_t errlen);
int store_sqlite_prune_compact(struct store *s, char *err, size_t errlen);
int store_sqlite_prune_turn(struct store *s, bool take, char *err, size_t errlen);

#endif
