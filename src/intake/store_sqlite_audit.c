/* The SQLite backend's audit trail: one INSERT in a write transaction of its own, durable
 * (synchronous=FULL) before the content it records is shown; the list newest first. The
 * table's triggers refuse UPDATE and DELETE (store_sqlite_schema.c). */
#include "intake/store_sqlite_audit.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/xalloc.h"
#include "intake/store_sqlite_conn.h"

#define AUDIT_COLS "id, at_ms, who, via, action, what, message_ids, messages, reason"

int store_sqlite_audit_insert(struct sqlite_store *q, const struct store_audit_row *r)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(q->db,
				    "INSERT INTO audit (at_ms, who, via, action, what, message_ids, "
				    "messages, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
				    -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, r->at_ms);
	sqlite3_bind_text(st, 2, r->who, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->via, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, r->action, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, r->what, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, r->message_ids, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)r->messages);
	if (r->reason != NULL)
		sqlite3_bind_text(st, 8, r->reason, -1, SQLITE_STATIC);
	rc = store_sqlite_conn_run(q, st);
	sqlite3_finalize(st);
	return rc;
}

int store_sqlite_audit_add(struct store *s, const struct store_audit_row *r, char *err,
			   size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	int rc;

	if (store_sqlite_conn_begin(q, err, errlen) == -1)
		return -1;
	rc = store_sqlite_audit_insert(q, r);
	if (rc != SQLITE_OK) {
		store_sqlite_conn_fail(q, rc, "audit", err, errlen);
		store_sqlite_conn_rollback(q);
		return -1;
	}
	return store_sqlite_conn_commit(q, err, errlen);
}

/* A text column in memory of its own; NULL for NULL. */
static char *text_dup(sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return NULL;
	return store_strndup(sqlite3_column_text(st, col), (size_t)sqlite3_column_bytes(st, col));
}

int store_sqlite_audit_list(struct store *s, int64_t before_id, size_t limit,
			    struct store_audit_row **rows, char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	struct store_audit_row *out = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(q->db,
				    "SELECT " AUDIT_COLS " FROM audit WHERE ?1 = 0 OR id < ?1 "
				    "ORDER BY id DESC LIMIT ?2",
				    -1, &st, NULL);

	if (rc != SQLITE_OK)
		return store_sqlite_conn_fail(q, rc, "audit list", err, errlen);
	sqlite3_bind_int64(st, 1, before_id);
	sqlite3_bind_int64(st, 2, limit > 0 && limit < INT64_MAX ? (sqlite3_int64)limit : -1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_audit_row *r;

		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			out = xrealloc(out, cap * sizeof(*out));
		}
		r = &out[n++];
		r->id = sqlite3_column_int64(st, 0);
		r->at_ms = sqlite3_column_int64(st, 1);
		r->who = text_dup(st, 2);
		r->via = text_dup(st, 3);
		r->action = text_dup(st, 4);
		r->what = text_dup(st, 5);
		r->message_ids = text_dup(st, 6);
		r->messages = (uint64_t)sqlite3_column_int64(st, 7);
		r->reason = text_dup(st, 8);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		store_audit_rows_free(out, n);
		return store_sqlite_conn_fail(q, rc, "audit list", err, errlen);
	}
	*rows = out;
	return (int)n;
}
