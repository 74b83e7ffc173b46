/* The SQLite backend's pruning: messages removed in one write transaction with their
 * search keys, their delivery jobs and the audit record that names them, then the pages
 * they held given back to the file (auto_vacuum = INCREMENTAL, set on every new file; the
 * file shrinks when the write-ahead log is checkpointed). A file made before that keeps
 * auto_vacuum NONE: its freed pages are reused, never returned. */
#include "intake/store_sqlite_prune.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "intake/store_sqlite_audit.h"
#include "intake/store_sqlite_conn.h"

/* What retention removes; what a purge may remove besides: the dead letters. */
#define PRUNABLE "('delivered', 'ignored', 'rejected')"
#define REMOVABLE "('delivered', 'ignored', 'rejected', 'dead')"

/* The prunable messages by when they last changed, with their size: retention picks the
 * least recently changed and sums their sizes from the index alone. */
#define PRUNE_INDEX                                                                                \
	"CREATE INDEX IF NOT EXISTS messages_prune ON messages (updated_ms, size) WHERE state IN " \
	PRUNABLE

/* SQLite gives a new row the highest id + 1: the newest message is never removed, so that
 * an id the audit trail names, or the EMAR was sent, is never given to another message. */
#define NOT_NEWEST " AND id < (SELECT max(id) FROM messages)"

/* The candidates: ?1 changed before, ?2 how many, ?3 the state, ?4 the message. */
static const char *const pick_sql[3] = {
	"SELECT id, size, updated_ms FROM messages INDEXED BY messages_prune WHERE state IN "
	PRUNABLE " AND updated_ms < ?1" NOT_NEWEST " ORDER BY updated_ms LIMIT ?2",
	"SELECT id, size, updated_ms FROM messages WHERE state = ?3 AND updated_ms < ?1"
	NOT_NEWEST " ORDER BY id LIMIT ?2",
	"SELECT id, size, updated_ms FROM messages WHERE id = ?4 AND state IN " REMOVABLE
	" AND updated_ms < ?1" NOT_NEWEST " LIMIT ?2",
};

/* Removing one message: its keys (merged or pending), its job, then itself (the foreign
 * keys point at it). */
#define REMOVE_STEPS 4
static const char *const remove_sql[REMOVE_STEPS] = {
	"DELETE FROM message_keys_pending WHERE message_id = ?1",
	"DELETE FROM message_keys WHERE message_id = ?1",
	"DELETE FROM deliveries WHERE message_id = ?1",
	"DELETE FROM messages WHERE id = ?1 AND state IN " REMOVABLE,
};

void store_sqlite_prune_mode(struct sqlite_store *q)
{
	/* takes effect on a file without tables only; on an older file it changes nothing */
	sqlite3_exec(q->db, "PRAGMA auto_vacuum = INCREMENTAL", NULL, NULL, NULL);
}

int store_sqlite_prune_index(struct sqlite_store *q, char *err, size_t errlen)
{
	int rc = sqlite3_exec(q->db, PRUNE_INDEX, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return store_sqlite_conn_fail(q, rc, "schema: the pruning index", err, errlen);
	return 0;
}

/* Reads the candidates into ids[] (p->max of room), keeping those p takes, and no more
 * than STORE_PRUNE_BYTES of them (one at least); *bytes their sizes. Returns the number kept or -1 (rc in *rcp). */
static int pick(struct sqlite_store *q, const struct store_prune *p, int64_t *ids,
		uint64_t *bytes, int *rcp)
{
	int which = p->id != 0 ? 2 : p->state == -1 ? 0 : 1, rc, n = 0;
	bool retain = which == 0;
	int64_t bound = p->before_ms != 0 && !(retain && p->excess > 0) ? p->before_ms : INT64_MAX;
	sqlite3_stmt *st = NULL;

	rc = sqlite3_prepare_v2(q->db, pick_sql[which], -1, &st, NULL);
	if (rc != SQLITE_OK) {
		*rcp = rc;
		return -1;
	}
	sqlite3_bind_int64(st, 1, bound);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)p->max);
	if (which == 1)
		sqlite3_bind_text(st, 3, store_state_name(p->state), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, p->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t size = (uint64_t)sqlite3_column_int64(st, 1);
		int64_t changed = sqlite3_column_int64(st, 2);

		/* oldest first: once one is young enough and the excess is covered, all are */
		if (retain && !(p->before_ms != 0 && changed < p->before_ms) && *bytes >= p->excess)
			break;
		if (n > 0 && *bytes + size > STORE_PRUNE_BYTES) /* the rest in the next */
			break;
		ids[n++] = sqlite3_column_int64(st, 0);
		*bytes += size;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		*rcp = rc;
		return -1;
	}
	return n;
}

/* Removes messages ids[0..n) with their keys and jobs: the one place that knows which rows
 * a message has. Returns the number of messages removed, -1 (rc in *rcp). */
static int remove_ids(struct sqlite_store *q, const int64_t *ids, int n, int *rcp)
{
	sqlite3_stmt *st[REMOVE_STEPS] = {NULL};
	int rc = SQLITE_OK, removed = 0;

	for (int k = 0; k < REMOVE_STEPS && rc == SQLITE_OK; k++)
		rc = sqlite3_prepare_v2(q->db, remove_sql[k], -1, &st[k], NULL);
	for (int i = 0; i < n && rc == SQLITE_OK; i++) {
		for (int k = 0; k < REMOVE_STEPS && rc == SQLITE_OK; k++) {
			sqlite3_bind_int64(st[k], 1, ids[i]);
			rc = store_sqlite_conn_run(q, st[k]);
		}
		removed += sqlite3_changes(q->db);
	}
	for (int k = 0; k < REMOVE_STEPS; k++)
		sqlite3_finalize(st[k]);
	*rcp = rc;
	return rc == SQLITE_OK ? removed : -1;
}

/* Appends a, naming ids[0..n), inside the caller's transaction. */
static int audit(struct sqlite_store *q, const struct store_audit_row *a, const int64_t *ids,
		 int n)
{
	struct buf list = {0};
	struct store_audit_row r = *a;
	int rc;

	for (int i = 0; i < n; i++) {
		char num[24];
		int len = snprintf(num, sizeof(num), "%s%lld", i ? "," : "", (long long)ids[i]);

		buf_append(&list, num, (size_t)len);
	}
	buf_append(&list, "", 1);
	r.message_ids = (char *)buf_head(&list);
	r.messages = (uint64_t)n;
	rc = store_sqlite_audit_insert(q, &r);
	buf_free(&list);
	return rc;
}

int store_sqlite_prune(struct store *s, const struct store_prune *p,
		       const struct store_audit_row *a, uint64_t *bytes, char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	int64_t *ids = xmalloc(p->max * sizeof(*ids));
	int rc = SQLITE_OK, n, removed = 0;

	if (store_sqlite_conn_begin(q, err, errlen) == -1) {
		free(ids);
		return -1;
	}
	n = pick(q, p, ids, bytes, &rc);
	if (n > 0)
		removed = remove_ids(q, ids, n, &rc);
	if (n > 0 && removed > 0)
		rc = audit(q, a, ids, n);
	/* the freed pages go back to the file in the same transaction */
	if (removed > 0 && rc == SQLITE_OK)
		rc = sqlite3_exec(q->db, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
	free(ids);
	if (n == -1 || removed == -1 || rc != SQLITE_OK) {
		*bytes = 0;
		store_sqlite_conn_fail(q, rc, "prune", err, errlen);
		store_sqlite_conn_rollback(q);
		return -1;
	}
	if (removed == 0) {
		*bytes = 0;
		store_sqlite_conn_rollback(q); /* nothing was written */
		return 0;
	}
	if (store_sqlite_conn_commit(q, err, errlen) == -1) {
		*bytes = 0;
		return -1;
	}
	return removed;
}

int store_sqlite_prune_bytes(struct store *s, uint64_t *bytes, char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(
		q->db,
		"SELECT (SELECT coalesce(sum(size), 0) FROM messages INDEXED BY messages_prune "
		"WHERE state IN " PRUNABLE ") + (SELECT coalesce(sum(size), 0) FROM messages "
		"WHERE state IN ('received', 'failed', 'dead'))",
		-1, &st, NULL);

	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*bytes = (uint64_t)sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return store_sqlite_conn_fail(q, rc, "stored bytes", err, errlen);
	return 0;
}

int store_sqlite_prune_turn(struct store *s, bool take, char *err, size_t errlen)
{
	(void)s;
	(void)err;
	(void)errlen;
	return take ? 1 : 0; /* one process writes a SQLite store: the turn is always its own */
}

int store_sqlite_prune_compact(struct store *s, char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	/* PASSIVE: never waits for the writer; the file shrinks once the log is all copied */
	int rc = sqlite3_exec(q->db, "PRAGMA wal_checkpoint(PASSIVE)", NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return store_sqlite_conn_fail(q, rc, "checkpoint", err, errlen);
	return 0;
}
