/* The SQLite backend: one database file in WAL mode with synchronous=FULL, so a commit is
 * on disk when COMMIT returns. Writers take the lock up front (BEGIN IMMEDIATE); a busy
 * connection waits in short steps, since the committer and the delivery worker write
 * through separate connections and a millisecond sleep would cost more than a commit.
 * The hot path (store_put) runs only statements prepared at open. */
#include <fcntl.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "intake/store_sqlite_audit.h"
#include "intake/store_sqlite_conn.h"
#include "intake/store_sqlite_prune.h"
#include "intake/store_sqlite_read.h"
#include "intake/store_sqlite_schema.h"

#define REPLAYABLE "('dead', 'failed', 'delivered')"

static const char *const stmt_sql[ST_N] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	/* one writer at a time (BEGIN IMMEDIATE): the lookup before it decides */
	[ST_INSERT] = "INSERT INTO messages (sending_app, sending_facility, control_id, type, "
		      "version, peer, state, received_ms, updated_ms, size, raw, ack, digest, "
		      "reused_control_id, message_date, warnings) "
		      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
	/* the row with this key and digest if there is one, else the key's first row */
	[ST_LOOKUP] = "SELECT id, ack, digest = ?4 FROM messages "
		      "WHERE sending_app = ?1 AND sending_facility = ?2 AND control_id = ?3 "
		      "ORDER BY digest = ?4 DESC, id LIMIT 1",
	[ST_JOB] = "INSERT INTO deliveries (message_id, next_ms, lease_owner, lease_until) "
		   "VALUES (?1, ?2, NULL, 0)",
	[ST_KEY] = STORE_SQLITE_PENDING_INSERT,
	/* the last message whose keys are among the first ?1 pending (all of its keys go) */
	[ST_MERGE_UPTO] = "SELECT max(message_id) FROM (SELECT message_id FROM "
			  "message_keys_pending ORDER BY message_id LIMIT ?1)",
	[ST_MERGE_COPY] = "INSERT OR IGNORE INTO message_keys (kind, value, message_id, "
			  "authority, id_type) SELECT kind, value, message_id, authority, id_type "
			  "FROM message_keys_pending WHERE message_id <= ?1 "
			  "ORDER BY kind, value, message_id, authority, id_type",
	[ST_MERGE_DROP] = "DELETE FROM message_keys_pending WHERE message_id <= ?1",
	[ST_CLAIM_SELECT] =
		"SELECT m.id, m.attempts, m.type, m.control_id, m.sending_app, "
		"m.sending_facility, m.raw, m.reused_control_id, m.digest FROM deliveries d JOIN messages m ON m.id = d.message_id "
		"WHERE d.next_ms <= ?1 AND (d.lease_owner IS NULL OR d.lease_until <= ?1) "
		"ORDER BY d.next_ms, d.message_id LIMIT ?2",
	[ST_CLAIM_LEASE] = "UPDATE deliveries SET lease_owner = ?1, lease_until = ?2 "
			   "WHERE message_id = ?3",
	[ST_FINISH_MSG] = "UPDATE messages SET attempts = attempts + 1, state = ?1, "
			  "http_status = ?2, detail = ?3, updated_ms = ?4 WHERE id = ?5 AND "
			  "EXISTS (SELECT 1 FROM deliveries WHERE message_id = ?5 AND lease_owner = ?6)",
	[ST_FINISH_RETRY] = "UPDATE deliveries SET next_ms = ?1, lease_owner = NULL, "
			    "lease_until = 0 WHERE message_id = ?2",
	[ST_FINISH_DONE] = "DELETE FROM deliveries WHERE message_id = ?1",
	[ST_RELEASE] = "UPDATE deliveries SET lease_owner = NULL, lease_until = 0 "
		       "WHERE message_id = ?1 AND lease_owner = ?2",
	[ST_GET] = "SELECT " ROW_COLS ", raw, ack FROM messages WHERE id = ?1",
	[ST_COUNTS] = "SELECT state, type, count(*), sum(reused_control_id) FROM messages "
		      "GROUP BY state, type ORDER BY state, type",
	[ST_DEPTH] = "SELECT count(*) FROM deliveries",
	[ST_STATES] = "SELECT state, count(*) FROM messages GROUP BY state",
	[ST_REPLAY_JOBS] =
		"INSERT INTO deliveries (message_id, next_ms, lease_owner, lease_until) "
		"SELECT id, ?1, NULL, 0 FROM messages WHERE (?2 <> 0 AND id = ?2 AND state IN " REPLAYABLE
		") OR (?2 = 0 AND state = ?3) "
		"ON CONFLICT (message_id) DO UPDATE SET next_ms = excluded.next_ms",
	[ST_REPLAY_MSGS] =
		"UPDATE messages SET state = 'received', attempts = 0, http_status = 0, "
		"detail = NULL, updated_ms = ?1 WHERE (?2 <> 0 AND id = ?2 AND state IN " REPLAYABLE
		") OR (?2 = 0 AND state = ?3)",
};

/* Binds m to the insert statement: stored in state, flagged reused (with its AR 205 as
 * its ACK when it has one). The statement borrows m's bytes until it is reset. */
static void insert_bind(sqlite3_stmt *ins, const struct store_msg *m, enum store_state state,
			bool reused)
{
	sqlite3_bind_text(ins, 1, m->app, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 2, m->facility, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 3, m->control_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 4, m->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 5, m->version, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 6, m->peer, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 7, store_state_name(state), -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 8, m->received_ms);
	sqlite3_bind_int64(ins, 9, (sqlite3_int64)m->raw_len);
	sqlite3_bind_blob64(ins, 10, m->raw ? m->raw : "", m->raw_len, SQLITE_STATIC);
	if (reused && m->reuse_ack != NULL)
		sqlite3_bind_blob64(ins, 11, m->reuse_ack, m->reuse_ack_len, SQLITE_STATIC);
	else
		sqlite3_bind_blob64(ins, 11, m->ack ? m->ack : "", m->ack_len,
				    SQLITE_STATIC);
	sqlite3_bind_blob(ins, 12, m->digest, STORE_DIGEST_LEN, SQLITE_STATIC);
	sqlite3_bind_int(ins, 13, reused);
	sqlite3_bind_text(ins, 14, m->index->date, -1, SQLITE_STATIC);
	if (m->warnings != NULL && m->warnings[0] != '\0')
		sqlite3_bind_text(ins, 15, m->warnings, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(ins, 15);
}

static int sq_put(struct store *s, struct store_msg *msgs, size_t n, char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *ins = q->st[ST_INSERT], *look = q->st[ST_LOOKUP], *job = q->st[ST_JOB];
	const char *what;
	int rc;

	if (store_sqlite_conn_begin(q, err, errlen) == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct store_msg *m = &msgs[i];
		enum store_state state = m->state;
		bool reused = false;

		/* the writer lock is held: what the lookup finds cannot change before the
		 * insert, and earlier messages of this batch are seen */
		what = "dedupe";
		sqlite3_bind_text(look, 1, m->app, -1, SQLITE_STATIC);
		sqlite3_bind_text(look, 2, m->facility, -1, SQLITE_STATIC);
		sqlite3_bind_text(look, 3, m->control_id, -1, SQLITE_STATIC);
		sqlite3_bind_blob(look, 4, m->digest, STORE_DIGEST_LEN, SQLITE_STATIC);
		rc = sqlite3_step(look);
		if (rc == SQLITE_ROW && sqlite3_column_int(look, 2) == 1) {
			m->duplicate = true;
			m->id = sqlite3_column_int64(look, 0);
			buf_consume(&m->orig_ack, m->orig_ack.len);
			buf_append(&m->orig_ack, sqlite3_column_blob(look, 1),
				   (size_t)sqlite3_column_bytes(look, 1));
			sqlite3_reset(look);
			continue;
		}
		sqlite3_reset(look);
		if (rc == SQLITE_ROW)
			reused = true; /* the key, with another digest */
		else if (rc != SQLITE_DONE)
			goto fail;
		if (reused && m->reuse_ack != NULL)
			state = STORE_REJECTED;
		what = "insert";
		insert_bind(ins, m, state, reused);
		rc = store_sqlite_conn_run(q, ins);
		if (rc != SQLITE_OK)
			goto fail;
		m->id = sqlite3_last_insert_rowid(q->db);
		m->reused = reused;
		what = "insert keys";
		rc = store_sqlite_conn_keys(q, q->st[ST_KEY], m->id, m->index, m->control_id);
		if (rc != SQLITE_OK)
			goto fail;
		if (state != STORE_RECEIVED)
			continue;
		what = "insert job";
		sqlite3_bind_int64(job, 1, m->id);
		sqlite3_bind_int64(job, 2, m->received_ms); /* due at once */
		rc = store_sqlite_conn_run(q, job);
		if (rc != SQLITE_OK)
			goto fail;
	}
	if (store_sqlite_conn_commit(q, err, errlen) == -1)
		goto undo;
	return 0;
fail:
	store_sqlite_conn_fail(q, rc, what, err, errlen);
	store_sqlite_conn_rollback(q);
undo:
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].duplicate)
			buf_free(&msgs[i].orig_ack);
		msgs[i].duplicate = false;
		msgs[i].reused = false;
		msgs[i].id = 0;
	}
	return -1;
}

static int sq_merge_keys(struct store *s, size_t max, char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *upto = q->st[ST_MERGE_UPTO];
	const char *what = "merge keys";
	int64_t last;
	int rc, moved;

	/* read first, without the writer's lock: none pending costs no writer a wait */
	for (int locked = 0; locked < 2; locked++) {
		if (locked && store_sqlite_conn_begin(q, err, errlen) == -1)
			return -1;
		sqlite3_bind_int64(upto, 1, (sqlite3_int64)max);
		rc = sqlite3_step(upto);
		last = rc == SQLITE_ROW ? sqlite3_column_int64(upto, 0) : 0;
		sqlite3_reset(upto);
		if (rc != SQLITE_ROW && !locked)
			return store_sqlite_conn_fail(q, rc, what, err, errlen);
		if (rc != SQLITE_ROW)
			goto fail;
		if (last == 0) { /* none pending: max() of no rows is NULL */
			if (locked)
				store_sqlite_conn_rollback(q);
			return 0;
		}
	}
	sqlite3_bind_int64(q->st[ST_MERGE_COPY], 1, last);
	sqlite3_bind_int64(q->st[ST_MERGE_DROP], 1, last);
	if ((rc = store_sqlite_conn_run(q, q->st[ST_MERGE_COPY])) != SQLITE_OK ||
	    (rc = store_sqlite_conn_run(q, q->st[ST_MERGE_DROP])) != SQLITE_OK)
		goto fail;
	moved = sqlite3_changes(q->db);
	if (store_sqlite_conn_commit(q, err, errlen) == -1)
		return -1;
	return moved;
fail:
	store_sqlite_conn_fail(q, rc, what, err, errlen);
	store_sqlite_conn_rollback(q);
	return -1;
}

static int sq_claim(struct store *s, const char *owner, int64_t now_ms, int64_t lease_ms,
		    size_t max, struct store_job **jobs, char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *sel = q->st[ST_CLAIM_SELECT], *lease = q->st[ST_CLAIM_LEASE];
	struct store_job *out = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if (store_sqlite_conn_begin(q, err, errlen) == -1)
		return -1;
	sqlite3_bind_int64(sel, 1, now_ms);
	sqlite3_bind_int64(sel, 2, (sqlite3_int64)max);
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		struct store_job *j;

		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			if (cap > max)
				cap = max;
			out = xrealloc(out, cap * sizeof(*out));
		}
		j = &out[n++];
		memset(j, 0, sizeof(*j));
		j->id = sqlite3_column_int64(sel, 0);
		j->attempts = (unsigned)sqlite3_column_int64(sel, 1);
		store_sqlite_conn_text(j->type, sizeof(j->type), sel, 2);
		store_sqlite_conn_text(j->control_id, sizeof(j->control_id), sel, 3);
		store_sqlite_conn_text(j->app, sizeof(j->app), sel, 4);
		store_sqlite_conn_text(j->facility, sizeof(j->facility), sel, 5);
		j->raw = store_sqlite_conn_blob(sel, 6, &j->raw_len);
		j->reused = sqlite3_column_int(sel, 7) != 0;
		if (sqlite3_column_bytes(sel, 8) == STORE_DIGEST_LEN)
			memcpy(j->digest, sqlite3_column_blob(sel, 8), STORE_DIGEST_LEN);
	}
	sqlite3_reset(sel);
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_bind_text(lease, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(lease, 2, now_ms + lease_ms);
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_int64(lease, 3, out[i].id);
		rc = store_sqlite_conn_run(q, lease);
		if (rc != SQLITE_OK)
			goto fail;
	}
	if (store_sqlite_conn_commit(q, err, errlen) == -1)
		goto undo;
	*jobs = out;
	return (int)n;
fail:
	store_sqlite_conn_fail(q, rc, "claim", err, errlen);
	store_sqlite_conn_rollback(q);
undo:
	store_jobs_free(out, n);
	return -1;
}

static int sq_finish(struct store *s, const char *owner, const struct store_outcome *o, size_t n,
		     char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *upd = q->st[ST_FINISH_MSG], *retry = q->st[ST_FINISH_RETRY],
		     *done = q->st[ST_FINISH_DONE];
	int rc;

	if (store_sqlite_conn_begin(q, err, errlen) == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_text(upd, 1, store_state_name(o[i].state), -1, SQLITE_STATIC);
		sqlite3_bind_int(upd, 2, o[i].http_status);
		if (o[i].detail != NULL)
			sqlite3_bind_text(upd, 3, o[i].detail, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(upd, 3);
		sqlite3_bind_int64(upd, 4, o[i].at_ms);
		sqlite3_bind_int64(upd, 5, o[i].id);
		sqlite3_bind_text(upd, 6, owner, -1, SQLITE_STATIC);
		rc = store_sqlite_conn_run(q, upd);
		if (rc != SQLITE_OK)
			goto fail;
		if (sqlite3_changes(q->db) == 0)
			continue; /* not ours any more */
		if (o[i].state == STORE_FAILED) {
			sqlite3_bind_int64(retry, 1, o[i].next_ms);
			sqlite3_bind_int64(retry, 2, o[i].id);
			rc = store_sqlite_conn_run(q, retry);
		} else {
			sqlite3_bind_int64(done, 1, o[i].id);
			rc = store_sqlite_conn_run(q, done);
		}
		if (rc != SQLITE_OK)
			goto fail;
	}
	return store_sqlite_conn_commit(q, err, errlen);
fail:
	store_sqlite_conn_fail(q, rc, "finish", err, errlen);
	store_sqlite_conn_rollback(q);
	return -1;
}

static int sq_replay(struct store *s, int64_t id, enum store_state from, int64_t now_ms,
		     char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *jobs = q->st[ST_REPLAY_JOBS], *msgs = q->st[ST_REPLAY_MSGS];
	int rc, n;

	if (store_sqlite_conn_begin(q, err, errlen) == -1)
		return -1;
	sqlite3_bind_int64(jobs, 1, now_ms);
	sqlite3_bind_int64(jobs, 2, id);
	sqlite3_bind_text(jobs, 3, store_state_name(from), -1, SQLITE_STATIC);
	rc = store_sqlite_conn_run(q, jobs);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(msgs, 1, now_ms);
	sqlite3_bind_int64(msgs, 2, id);
	sqlite3_bind_text(msgs, 3, store_state_name(from), -1, SQLITE_STATIC);
	rc = store_sqlite_conn_run(q, msgs);
	if (rc != SQLITE_OK)
		goto fail;
	n = sqlite3_changes(q->db);
	if (store_sqlite_conn_commit(q, err, errlen) == -1)
		return -1;
	return n;
fail:
	store_sqlite_conn_fail(q, rc, "replay", err, errlen);
	store_sqlite_conn_rollback(q);
	return -1;
}

static int sq_release(struct store *s, const char *owner, const int64_t *ids, size_t n,
		      char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *st = q->st[ST_RELEASE];
	int rc = SQLITE_OK;

	if (store_sqlite_conn_begin(q, err, errlen) == -1)
		return -1;
	sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
	for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
		sqlite3_bind_int64(st, 1, ids[i]);
		rc = store_sqlite_conn_run(q, st);
	}
	if (rc != SQLITE_OK) {
		store_sqlite_conn_fail(q, rc, "release", err, errlen);
		store_sqlite_conn_rollback(q);
		return -1;
	}
	return store_sqlite_conn_commit(q, err, errlen);
}

static int sq_relax(struct store *s, char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	int rc = sqlite3_exec(q->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return store_sqlite_conn_fail(q, rc, "relax", err, errlen);
	return 0;
}

static void sq_interrupt(struct store *s)
{
	struct sqlite_store *q = (struct sqlite_store *)s;

	atomic_store(&q->stopping, true);
	sqlite3_interrupt(q->db); /* thread-safe, on an open connection */
}

static void sq_close(struct store *s)
{
	struct sqlite_store *q = (struct sqlite_store *)s;

	for (int i = 0; i < ST_N; i++)
		sqlite3_finalize(q->st[i]);
	sqlite3_close(q->db);
	free(q);
}

/* The database holds patient data: a file this makes is 0600 whatever the umask, and
 * SQLite gives the -wal and -shm files it makes the database file's mode. A file that is
 * already there keeps the mode its owner gave it. Errors are left to sqlite3_open_v2. */
static void sq_create_private(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd != -1) {
		fchmod(fd, 0600); /* the umask can only have taken bits away; this is exact */
		close(fd);
	}
}

static struct store *sqlite_open(const char *path, char *err, size_t errlen)
{
	struct sqlite_store *q = xcalloc(1, sizeof(*q));
	int rc;

	q->base.ops = &store_sqlite_ops;
	sq_create_private(path);
	rc = sqlite3_open_v2(path, &q->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		err_set(err, errlen, "sqlite: open: %s", sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(q->db, 1);
	sqlite3_busy_handler(q->db, store_sqlite_conn_busy, q);
	store_sqlite_prune_mode(q); /* first: a new file's mode is set before its tables */
	sqlite3_progress_handler(q->db, 1000, store_sqlite_conn_progress, q); /* VM steps */
	/* the schema before foreign keys: migrating rebuilds the messages table */
	if (store_sqlite_conn_pragma(q, "PRAGMA journal_mode = WAL", "wal", err, errlen) == -1 ||
	    store_sqlite_conn_pragma(q, "PRAGMA synchronous = FULL", NULL, err, errlen) == -1 ||
	    store_sqlite_schema_open(q, err, errlen) == -1 ||
	    store_sqlite_prune_index(q, err, errlen) == -1 ||
	    store_sqlite_conn_pragma(q, "PRAGMA foreign_keys = ON", NULL, err, errlen) == -1)
		goto fail;
	for (int i = 0; i < ST_N; i++) {
		rc = sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i],
					NULL);
		if (rc != SQLITE_OK) {
			store_sqlite_conn_fail(q, rc, "prepare", err, errlen);
			goto fail;
		}
	}
	return &q->base;
fail:
	sq_close(&q->base);
	return NULL;
}

const struct store_ops store_sqlite_ops = {
	.kind = "sqlite",
	.open = sqlite_open,
	.close = sq_close,
	.interrupt = sq_interrupt,
	.put = sq_put,
	.claim = sq_claim,
	.finish = sq_finish,
	.list = store_sqlite_read_list,
	.get = store_sqlite_read_get,
	.counts = store_sqlite_read_counts,
	.queue_depth = store_sqlite_read_depth,
	.oldest_undelivered = store_sqlite_read_oldest,
	.count_states = store_sqlite_read_states,
	.relax = sq_relax,
	.release = sq_release,
	.merge_keys = sq_merge_keys,
	.audit_add = store_sqlite_audit_add,
	.audit_list = store_sqlite_audit_list,
	.replay = sq_replay,
	.prune = store_sqlite_prune,
	.bytes = store_sqlite_prune_bytes,
	.compact = store_sqlite_prune_compact,
	.prune_turn = store_sqlite_prune_turn,
};