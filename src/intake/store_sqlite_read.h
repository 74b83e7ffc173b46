/* The SQLite backend's reads (store_sqlite_read.c): listing and searching, one message,
 * counts. For store_sqlite.c's table of operations; the signatures are store_ops'. */
#ifndef NETWALL_STORE_SQLITE_READ_H
#define NETWALL_STORE_SQLITE_READ_H
#include <stddef.h>
#include <stdint.h>

#include "intake/store_int.h"

int store_sqlite_read_list(struct store *s, const struct store_filter *f, struct store_row **rows,
			   char *err, size_t errlen);
int store_sqlite_read_get(struct store *s, int64_t id, struct store_row *row, char *err,
			  size_t errlen);
int store_sqlite_read_counts(struct store *s, struct store_count **out, char *err, size_t errlen);
int store_sqlite_read_states(struct store *s, uint64_t out[STORE_NSTATES], char *err,
			     size_t errlen);
int store_sqlite_read_depth(struct store *s, uint64_t *n, char *err, size_t errlen);
int store_sqlite_read_oldest(struct store *s, int64_t *received_ms, char *err, size_t errlen);

#endif
