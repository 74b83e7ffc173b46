/* The SQLite backend's audit trail (store_sqlite_audit.c): appending a record, listing
 * them. For store_sqlite.c's table of operations; the signatures are store_ops'. */
#ifndef NETWALL_STORE_SQLITE_AUDIT_H
#define NETWALL_STORE_SQLITE_AUDIT_H
#include <stddef.h>
#include <stdint.h>

#include "intake/store_int.h"
#include "intake/store_sqlite_conn.h"

/* Appends r inside the caller's write transaction; SQLITE_OK or the error code. */
int store_sqlite_audit_insert(struct sqlite_store *q, const struct store_audit_row *r);
int store_sqlite_audit_add(struct store *s, const struct store_audit_row *r, char *err,
			   size_t errlen);
int store_sqlite_audit_list(struct store *s, int64_t before_id, size_t limit,
			    struct store_audit_row **rows, char *err, size_t errlen);

#endif
