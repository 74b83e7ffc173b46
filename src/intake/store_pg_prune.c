/* The PostgreSQL backend's pruning: retention passes of the intakes sharing a store take
 * turns (a session advisory lock); in one transaction, the candidates are locked (FOR
 * UPDATE SKIP LOCKED: a purge meanwhile takes others, and a replay waits), then their
 * keys, jobs and rows are deleted by id arrays and the audit record naming them appended.
 * Batches stay small (in messages and in bytes) so autovacuum can follow; nothing here
 * vacuums or shrinks a table (PostgreSQL reuses the space). */
#include "intake/store_pg_prune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "intake/store_pg_conn.h"
#include "intake/store_pg_sql.h"

#define PRUNABLE "('delivered', 'ignored', 'rejected')"
#define REMOVABLE "('delivered', 'ignored', 'rejected', 'dead')"

/* The schema's advisory lock: creating the index takes turns with creating the schema. */
#define PRUNE_LOCK "SELECT pg_advisory_xact_lock(1853321265)"
/* Retention passes take turns between the processes sharing the store: a session lock,
 * held across the pass's transactions, on a key of its own (not the schema's). */
#define TURN_KEY "1853321266"
#define TURN_TAKE "SELECT pg_try_advisory_lock(" TURN_KEY ")"
#define TURN_GIVE "SELECT pg_advisory_unlock(" TURN_KEY ")"
#define PRUNE_INDEX                                                                                \
	"CREATE INDEX IF NOT EXISTS messages_prune ON messages (updated_ms, size) WHERE state IN " \
	PRUNABLE

/* The candidates: $1 changed before, $2 how many, then the state or the message. */
static const char *const pick_sql[3] = {
	"SELECT id, size, updated_ms FROM messages WHERE state IN " PRUNABLE
	" AND updated_ms < $1::bigint ORDER BY updated_ms LIMIT $2::bigint FOR UPDATE SKIP LOCKED",
	"SELECT id, size, updated_ms FROM messages WHERE state = $3::text AND updated_ms < "
	"$1::bigint ORDER BY id LIMIT $2::bigint FOR UPDATE SKIP LOCKED",
	"SELECT id, size, updated_ms FROM messages WHERE id = $3::bigint AND state IN " REMOVABLE
	" AND updated_ms < $1::bigint LIMIT $2::bigint FOR UPDATE",
};

/* Removing messages: their pending keys, their merged keys, their jobs, then themselves
 * (the jobs' foreign key points at them); $1 the ids. Pending first: an indexer's merge
 * that holds some of them makes this wait until it commits, and the next statement, on a
 * snapshot of its own, then sees the keys it moved; a merge that comes later skips the
 * rows deleted here (SKIP LOCKED). The other order left a merged key behind for good. */
#define REMOVE_STEPS 4
static const char *const remove_sql[REMOVE_STEPS] = {
	"DELETE FROM message_keys_pending WHERE message_id = ANY ($1::bigint[])",
	"DELETE FROM message_keys WHERE message_id = ANY ($1::bigint[])",
	"DELETE FROM deliveries WHERE message_id = ANY ($1::bigint[])",
	"DELETE FROM messages WHERE id = ANY ($1::bigint[]) AND state IN " REMOVABLE,
};

/* Runs sql with values; the result when it succeeded (the caller clears it), else NULL
 * with err. */
static PGresult *run(struct pg_store *p, const char *sql, int n, const char *const *v,
		     const char *what, char *err, size_t errlen)
{
	PGresult *r = PQexecParams(p->conn, sql, n, NULL, v, NULL, NULL, 1);

	if (store_pg_conn_ok(r))
		return r;
	store_pg_conn_fail(p, r, what, err, errlen);
	PQclear(r);
	return NULL;
}

int store_pg_prune_index(struct pg_store *p, char *err, size_t errlen)
{
	PGresult *r = run(p, "SELECT to_regclass('messages_prune') IS NULL", 0, NULL,
			  "schema: the pruning index", err, errlen);
	bool missing;

	if (r == NULL)
		return -1;
	missing = PQgetlength(r, 0, 0) == 1 && PQgetvalue(r, 0, 0)[0] != 0;
	PQclear(r);
	if (!missing)
		return 0;
	/* once, on a store made before it: a scan of the messages, under the schema's lock */
	if ((r = run(p, "BEGIN", 0, NULL, "schema: the pruning index", err, errlen)) == NULL)
		return -1;
	PQclear(r);
	if ((r = run(p, PRUNE_LOCK, 0, NULL, "schema: the pruning index", err, errlen)) != NULL) {
		PQclear(r);
		r = run(p, PRUNE_INDEX, 0, NULL, "schema: the pruning index", err, errlen);
	}
	if (r != NULL) {
		PQclear(r);
		r = run(p, "COMMIT", 0, NULL, "schema: the pruning index", err, errlen);
	}
	if (r == NULL) {
		PQclear(PQexec(p->conn, "ROLLBACK"));
		return -1;
	}
	PQclear(r);
	return 0;
}

/* Locks the candidates and keeps in arr ("{1,2,3}") those p takes, and no more than
 * STORE_PRUNE_BYTES of them (one at least); *bytes their sizes.
 * Returns the number kept or -1 with err. */
static int pick(struct pg_store *p, const struct store_prune *sel, struct buf *arr,
		uint64_t *bytes, char *err, size_t errlen)
{
	int which = sel->id != 0 ? 2 : sel->state == -1 ? 0 : 1, n = 0;
	bool retain = which == 0;
	int64_t bound = sel->before_ms != 0 && !(retain && sel->excess > 0) ? sel->before_ms
									    : INT64_MAX;
	char before[24], max[24], id[24], num[24];
	const char *v[3] = {before, max, which == 1 ? store_state_name(sel->state) : id};
	PGresult *r;

	snprintf(before, sizeof(before), "%lld", (long long)bound);
	snprintf(max, sizeof(max), "%zu", sel->max);
	snprintf(id, sizeof(id), "%lld", (long long)sel->id);
	r = run(p, pick_sql[which], which == 0 ? 2 : 3, v, "prune", err, errlen);
	if (r == NULL)
		return -1;
	buf_append(arr, "{", 1);
	for (int i = 0; i < PQntuples(r); i++) {
		uint64_t size = (uint64_t)store_pg_sql_int(r, i, 1);
		int64_t changed = store_pg_sql_int(r, i, 2);
		int len;

		/* oldest first: once one is young enough and the excess is covered, all are */
		if (retain && !(sel->before_ms != 0 && changed < sel->before_ms) &&
		    *bytes >= sel->excess)
			break;
		if (n > 0 && *bytes + size > STORE_PRUNE_BYTES) /* the rest in the next */
			break;
		len = snprintf(num, sizeof(num), "%s%lld", n ? "," : "",
			       (long long)store_pg_sql_int(r, i, 0));
		buf_append(arr, num, (size_t)len);
		*bytes += size;
		n++;
	}
	buf_append(arr, "}", 2); /* with the NUL */
	PQclear(r);
	return n;
}

/* Removes the messages of ids (an array's text) with their keys and jobs: the one place
 * that knows which rows a message has. Returns the number of messages removed, or -1. */
static int remove_ids(struct pg_store *p, const char *ids, char *err, size_t errlen)
{
	const char *v[1] = {ids};
	int removed = -1;

	for (int k = 0; k < REMOVE_STEPS; k++) {
		PGresult *r = run(p, remove_sql[k], 1, v, "prune", err, errlen);

		if (r == NULL)
			return -1;
		if (k == REMOVE_STEPS - 1) /* the messages themselves */
			removed = atoi(PQcmdTuples(r));
		PQclear(r);
	}
	return removed;
}

static int audit(struct pg_store *p, const struct store_audit_row *a, const char *ids, int n,
		 char *err, size_t errlen)
{
	char at[24], count[24];
	struct buf list = {0};
	const char *v[8] = {at, a->who, a->via, a->action, a->what, NULL, count, a->reason};
	PGresult *r;

	/* "{1,2,3}" becomes "1,2,3", as the trail keeps them */
	buf_append(&list, ids + 1, strlen(ids) - 2);
	buf_append(&list, "", 1);
	v[5] = (const char *)buf_head(&list);
	snprintf(at, sizeof(at), "%lld", (long long)a->at_ms);
	snprintf(count, sizeof(count), "%d", n);
	r = run(p,
		STORE_PG_AUDIT_INSERT,
		8, v, "prune: audit", err, errlen);
	buf_free(&list);
	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}

int store_pg_prune(struct store *s, const struct store_prune *sel,
		   const struct store_audit_row *a, uint64_t *bytes, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	struct buf arr = {0};
	PGresult *r;
	bool used;
	int n, removed = 0;

	if (store_pg_conn_begin(p, &used, err, errlen) == -1)
		return -1;
	if ((r = run(p, "BEGIN", 0, NULL, "prune", err, errlen)) == NULL)
		return -1;
	PQclear(r);
	n = pick(p, sel, &arr, bytes, err, errlen);
	if (n > 0)
		removed = remove_ids(p, (const char *)buf_head(&arr), err, errlen);
	if (removed > 0 &&
	    audit(p, a, (const char *)buf_head(&arr), removed, err, errlen) == -1)
		removed = -1;
	buf_free(&arr);
	if (n <= 0 || removed <= 0) {
		PQclear(PQexec(p->conn, "ROLLBACK"));
		*bytes = 0;
		return n == -1 || removed == -1 ? -1 : 0;
	}
	if ((r = run(p, "COMMIT", 0, NULL, "prune", err, errlen)) == NULL) {
		*bytes = 0;
		return -1;
	}
	PQclear(r);
	return removed;
}

int store_pg_prune_bytes(struct store *s, uint64_t *bytes, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	PGresult *r = store_pg_conn_exec(
		p,
		"SELECT ((SELECT coalesce(sum(size), 0) FROM messages WHERE state IN " PRUNABLE
		") + (SELECT coalesce(sum(size), 0) FROM messages WHERE state IN ('received', "
		"'failed', 'dead')))::bigint",
		0, NULL, "stored bytes", err, errlen);

	if (r == NULL)
		return -1;
	*bytes = (uint64_t)store_pg_sql_int(r, 0, 0);
	PQclear(r);
	return 0;
}

int store_pg_prune_turn(struct store *s, bool take, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	PGresult *r = store_pg_conn_exec(p, take ? TURN_TAKE : TURN_GIVE, 0, NULL, "prune turn",
					 err, errlen);
	bool got;

	if (r == NULL)
		return -1;
	got = PQgetlength(r, 0, 0) == 1 && PQgetvalue(r, 0, 0)[0] != 0; /* binary bool */
	PQclear(r);
	return take && got ? 1 : 0; /* given back after a reconnect: the lock went with it */
}

int store_pg_prune_compact(struct store *s, char *err, size_t errlen)
{
	(void)s;
	(void)err;
	(void)errlen;
	return 0; /* autovacuum follows the deletes; the space is reused, not returned */
}
