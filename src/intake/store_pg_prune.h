/* The PostgreSQL backend's pruning (store_pg_prune.c): the pruning index (at open),
 * removing messages, their stored size. For store_pg.c; the last four signatures are
 * store_ops'. */
#ifndef NETWALL_STORE_PG_PRUNE_H
#define NETWALL_STORE_PG_PRUNE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "intake/store_int.h"

struct pg_store;

/* Creates the pruning index if missing (once, on a store made before it). 0 or -1. */
int store_pg_prune_index(struct pg_store *p, char *err, size_t errlen);

int store_pg_prune(struct store *s, const struct store_prune *sel,
		   const struct store_audit_row *a, uint64_t *bytes, char *err, size_t errlen);
int store_pg_prune_bytes(struct store *s, uint64_t *bytes, char *err, size_t errlen);
int store_pg_prune_compact(struct store *s, char *err, size_t errlen);
int store_pg_prune_turn(struct store *s, bool take, char *err, size_t errlen);

#endif
