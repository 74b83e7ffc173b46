/* The SQLite backend: one database file in WAL mode with synchronous=FULL, so a commit is
 * on disk when COMMIT returns. Writers take the lock up front (BEGIN IMMEDIATE); a busy
 * connection waits in short steps, since the committer and the delivery worker write
 * through separate connections and a millisecond sleep would cost more than a commit.
 * The hot path (store_put) runs only statements prepared at open. */
#include <fcntl.h>
#include <sys/stat.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "intake/store_int.h"

/* How long a connection waits, in all, for another to release the write lock. */
#define BUSY_LIMIT_US (3 * 1000 * 1000)
/* The first wait; each next one doubles, up to BUSY_STEP_MAX_US. */
#define BUSY_STEP_US 100
#define BUSY_STEP_MAX_US 4000

#define ROW_COLS                                                                                   \
	"id, state, sending_app, sending_facility, control_id, type, version, peer, "           \
	"received_ms, updated_ms, attempts, http_status, detail, reused_control_id"
#define REPLAYABLE "('dead', 'failed', 'delivered')"

enum {
	ST_BEGIN = 0,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT,
	ST_LOOKUP,
	ST_JOB,
	ST_CLAIM_SELECT,
	ST_CLAIM_LEASE,
	ST_FINISH_MSG,
	ST_FINISH_RETRY,
	ST_FINISH_DONE,
	ST_RELEASE,
	ST_GET,
	ST_COUNTS,
	ST_DEPTH,
	ST_STATES,
	ST_REPLAY_JOBS,
	ST_REPLAY_MSGS,
	ST_N
};

static const char *const stmt_sql[ST_N] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	/* one writer at a time (BEGIN IMMEDIATE): the lookup before it decides */
	[ST_INSERT] = "INSERT INTO messages (sending_app, sending_facility, control_id, type, "
		      "version, peer, state, received_ms, updated_ms, size, raw, ack, digest, "
		      "reused_control_id) "
		      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11, ?12, ?13)",
	/* the row with this key and digest if there is one, else the key's first row */
	[ST_LOOKUP] = "SELECT id, ack, digest = ?4 FROM messages "
		      "WHERE sending_app = ?1 AND sending_facility = ?2 AND control_id = ?3 "
		      "ORDER BY digest = ?4 DESC, id LIMIT 1",
	[ST_JOB] = "INSERT INTO deliveries (message_id, next_ms, lease_owner, lease_until) "
		   "VALUES (?1, ?2, NULL, 0)",
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

#define MESSAGES_COLUMNS                                                                          \
	" id INTEGER PRIMARY KEY,"                                                                \
	" sending_app TEXT NOT NULL,"                                                              \
	" sending_facility TEXT NOT NULL,"                                                         \
	" control_id TEXT NOT NULL,"                                                               \
	" type TEXT NOT NULL,"                                                                     \
	" version TEXT NOT NULL,"                                                                  \
	" peer TEXT NOT NULL,"                                                                     \
	" state TEXT NOT NULL,"                                                                    \
	" received_ms INTEGER NOT NULL,"                                                           \
	" updated_ms INTEGER NOT NULL,"                                                            \
	" size INTEGER NOT NULL,"                                                                  \
	" raw BLOB NOT NULL,"                                                                      \
	" ack BLOB NOT NULL,"                                                                      \
	" attempts INTEGER NOT NULL DEFAULT 0,"                                                    \
	" http_status INTEGER NOT NULL DEFAULT 0,"                                                 \
	" detail TEXT,"                                                                            \
	" digest BLOB NOT NULL,"                                                                   \
	" reused_control_id INTEGER NOT NULL DEFAULT 0,"                                           \
	" UNIQUE (sending_app, sending_facility, control_id, digest)"

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS messages (" MESSAGES_COLUMNS ");"
	"CREATE INDEX IF NOT EXISTS messages_state ON messages (state, id);"
	"CREATE TABLE IF NOT EXISTS deliveries ("
	" message_id INTEGER PRIMARY KEY REFERENCES messages (id),"
	" next_ms INTEGER NOT NULL,"
	" lease_owner TEXT,"
	" lease_until INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_ms, message_id);";

/* Version 1 to 2: the table is rebuilt (SQLite cannot drop a UNIQUE constraint) with the
 * digest of every stored message, so the old rows dedupe their retransmissions as before.
 * Runs with foreign keys off, inside the schema transaction; the deliveries rows keep
 * their message ids. */
static const char migrate_v1_sql[] =
	"CREATE TABLE messages_v2 (" MESSAGES_COLUMNS ");"
	"INSERT INTO messages_v2 (id, sending_app, sending_facility, control_id, type, version,"
	" peer, state, received_ms, updated_ms, size, raw, ack, attempts, http_status, detail,"
	" digest, reused_control_id) SELECT id, sending_app, sending_facility, control_id, type,"
	" version, peer, state, received_ms, updated_ms, size, raw, ack, attempts, http_status,"
	" detail, netwall_sha256(raw), 0 FROM messages;"
	"DROP TABLE messages;"
	"ALTER TABLE messages_v2 RENAME TO messages;"
	"CREATE INDEX messages_state ON messages (state, id);";

struct sqlite_store {
	struct store base;
	sqlite3 *db;
	long busy_us; /* waited so far for the current lock */
	bool writing; /* holds the process's writer ticket */
	sqlite3_stmt *st[ST_N];
};


/* Fills err with the generic text of the result code, never sqlite3_errmsg(), which can
 * quote a trigger's or a constraint's text. */
static int sq_fail(struct sqlite_store *q, int rc, const char *what, char *err, size_t errlen)
{
	if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE)
		rc = sqlite3_extended_errcode(q->db);
	err_set(err, errlen, "sqlite: %s: %s", what, sqlite3_errstr(rc));
	return -1;
}

static int busy_wait(void *arg, int count)
{
	struct sqlite_store *q = arg;
	long step = BUSY_STEP_US;
	struct timespec ts;

	if (count == 0)
		q->busy_us = 0;
	if (q->busy_us >= BUSY_LIMIT_US)
		return 0;
	for (int i = 0; i < count && step < BUSY_STEP_MAX_US; i++)
		step *= 2;
	if (step > BUSY_STEP_MAX_US)
		step = BUSY_STEP_MAX_US;
	ts.tv_sec = 0;
	ts.tv_nsec = step * 1000;
	nanosleep(&ts, NULL);
	q->busy_us += step;
	return 1;
}

/* Writers in one process (the committer and the delivery worker, each with its own
 * connection) take turns through a FIFO ticket lock before BEGIN IMMEDIATE, so neither can
 * starve the other by re-taking SQLite's lock in a tight loop while the other polls in its
 * busy handler. Other processes (netwall messages replay) still meet the busy handler. */
static pthread_mutex_t writer_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t writer_cv = PTHREAD_COND_INITIALIZER;
static uint64_t writer_next, writer_serving;

static void writer_lock(struct sqlite_store *q)
{
	uint64_t ticket;

	pthread_mutex_lock(&writer_mu);
	ticket = writer_next++;
	while (ticket != writer_serving)
		pthread_cond_wait(&writer_cv, &writer_mu);
	pthread_mutex_unlock(&writer_mu);
	q->writing = true;
}

static void writer_unlock(struct sqlite_store *q)
{
	if (!q->writing)
		return;
	q->writing = false;
	pthread_mutex_lock(&writer_mu);
	writer_serving++;
	pthread_cond_broadcast(&writer_cv);
	pthread_mutex_unlock(&writer_mu);
}

/* Runs a statement that returns no rows and resets it. */
static int run(struct sqlite_store *q, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int begin(struct sqlite_store *q, char *err, size_t errlen)
{
	int rc;

	writer_lock(q);
	rc = run(q, q->st[ST_BEGIN]);
	if (rc != SQLITE_OK) {
		writer_unlock(q);
		return sq_fail(q, rc, "begin", err, errlen);
	}
	return 0;
}

static int commit(struct sqlite_store *q, char *err, size_t errlen)
{
	int rc = run(q, q->st[ST_COMMIT]);

	if (rc != SQLITE_OK) {
		sq_fail(q, rc, "commit", err, errlen);
		if (!sqlite3_get_autocommit(q->db))
			run(q, q->st[ST_ROLLBACK]);
		writer_unlock(q);
		return -1;
	}
	writer_unlock(q);
	return 0;
}

static void rollback(struct sqlite_store *q)
{
	if (!sqlite3_get_autocommit(q->db))
		run(q, q->st[ST_ROLLBACK]);
	writer_unlock(q);
}

static void text_col(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
	const unsigned char *p = sqlite3_column_text(st, col);

	store_copy(dst, cap, p, p ? (size_t)sqlite3_column_bytes(st, col) : 0);
}

/* A malloc'd copy of a BLOB column, *len set; never NULL. */
static char *blob_col(sqlite3_stmt *st, int col, size_t *len)
{
	const void *p = sqlite3_column_blob(st, col);
	size_t n = p ? (size_t)sqlite3_column_bytes(st, col) : 0;

	*len = n;
	return store_strndup(p, n);
}

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
}

static int sq_put(struct store *s, struct store_msg *msgs, size_t n, char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *ins = q->st[ST_INSERT], *look = q->st[ST_LOOKUP], *job = q->st[ST_JOB];
	const char *what;
	int rc;

	if (begin(q, err, errlen) == -1)
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
		rc = run(q, ins);
		if (rc != SQLITE_OK)
			goto fail;
		m->id = sqlite3_last_insert_rowid(q->db);
		m->reused = reused;
		if (state != STORE_RECEIVED)
			continue;
		what = "insert job";
		sqlite3_bind_int64(job, 1, m->id);
		sqlite3_bind_int64(job, 2, m->received_ms); /* due at once */
		rc = run(q, job);
		if (rc != SQLITE_OK)
			goto fail;
	}
	if (commit(q, err, errlen) == -1)
		goto undo;
	return 0;
fail:
	sq_fail(q, rc, what, err, errlen);
	rollback(q);
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

static int sq_claim(struct store *s, const char *owner, int64_t now_ms, int64_t lease_ms,
		    size_t max, struct store_job **jobs, char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *sel = q->st[ST_CLAIM_SELECT], *lease = q->st[ST_CLAIM_LEASE];
	struct store_job *out = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if (begin(q, err, errlen) == -1)
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
		text_col(j->type, sizeof(j->type), sel, 2);
		text_col(j->control_id, sizeof(j->control_id), sel, 3);
		text_col(j->app, sizeof(j->app), sel, 4);
		text_col(j->facility, sizeof(j->facility), sel, 5);
		j->raw = blob_col(sel, 6, &j->raw_len);
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
		rc = run(q, lease);
		if (rc != SQLITE_OK)
			goto fail;
	}
	if (commit(q, err, errlen) == -1)
		goto undo;
	*jobs = out;
	return (int)n;
fail:
	sq_fail(q, rc, "claim", err, errlen);
	rollback(q);
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

	if (begin(q, err, errlen) == -1)
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
		rc = run(q, upd);
		if (rc != SQLITE_OK)
			goto fail;
		if (sqlite3_changes(q->db) == 0)
			continue; /* not ours any more */
		if (o[i].state == STORE_FAILED) {
			sqlite3_bind_int64(retry, 1, o[i].next_ms);
			sqlite3_bind_int64(retry, 2, o[i].id);
			rc = run(q, retry);
		} else {
			sqlite3_bind_int64(done, 1, o[i].id);
			rc = run(q, done);
		}
		if (rc != SQLITE_OK)
			goto fail;
	}
	return commit(q, err, errlen);
fail:
	sq_fail(q, rc, "finish", err, errlen);
	rollback(q);
	return -1;
}

/* Fills row from the ROW_COLS columns of st (and raw, ack after them when with_body). */
static int read_row(sqlite3_stmt *st, struct store_row *row, int with_body)
{
	char state[16];

	memset(row, 0, sizeof(*row));
	row->id = sqlite3_column_int64(st, 0);
	text_col(state, sizeof(state), st, 1);
	if (store_state_parse(state, &row->state) == -1)
		return -1;
	text_col(row->app, sizeof(row->app), st, 2);
	text_col(row->facility, sizeof(row->facility), st, 3);
	text_col(row->control_id, sizeof(row->control_id), st, 4);
	text_col(row->type, sizeof(row->type), st, 5);
	text_col(row->version, sizeof(row->version), st, 6);
	text_col(row->peer, sizeof(row->peer), st, 7);
	row->received_ms = sqlite3_column_int64(st, 8);
	row->updated_ms = sqlite3_column_int64(st, 9);
	row->attempts = (unsigned)sqlite3_column_int64(st, 10);
	row->http_status = sqlite3_column_int(st, 11);
	if (sqlite3_column_type(st, 12) != SQLITE_NULL)
		row->detail = store_strndup(sqlite3_column_text(st, 12),
					    (size_t)sqlite3_column_bytes(st, 12));
	row->reused = sqlite3_column_int(st, 13) != 0;
	if (with_body) {
		row->raw = blob_col(st, 14, &row->raw_len);
		row->ack = blob_col(st, 15, &row->ack_len);
	}
	return 0;
}

static int sq_list(struct store *s, const struct store_filter *f, struct store_row **rows,
		   char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	char sql[512];
	sqlite3_stmt *st = NULL;
	struct store_row *out = NULL;
	size_t n = 0, cap = 0;
	int rc;

	/* Parameters are numbered so each clause binds its own, whichever are present. */
	snprintf(sql, sizeof(sql),
		 "SELECT " ROW_COLS " FROM messages WHERE 1 = 1%s%s%s%s ORDER BY id DESC%s",
		 f->state >= 0 ? " AND state = ?1" : "",
		 f->type != NULL ? " AND (type = ?2 OR substr(type, 1, length(?2) + 1) = ?2 || '^')"
				 : "",
		 f->before_id > 0 ? " AND id < ?3" : "",
		 f->reused_only ? " AND reused_control_id = 1" : "", f->limit > 0 ? " LIMIT ?4" : "");
	rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(q, rc, "list", err, errlen);
	if (f->state >= 0)
		sqlite3_bind_text(st, 1, store_state_name((enum store_state)f->state), -1,
				  SQLITE_STATIC);
	if (f->type != NULL)
		sqlite3_bind_text(st, 2, f->type, -1, SQLITE_STATIC);
	if (f->before_id > 0)
		sqlite3_bind_int64(st, 3, f->before_id);
	if (f->limit > 0)
		sqlite3_bind_int64(st, 4, f->limit > INT64_MAX ? INT64_MAX : (sqlite3_int64)f->limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			out = xrealloc(out, cap * sizeof(*out));
		}
		if (read_row(st, &out[n], 0) == -1) {
			err_set(err, errlen, "sqlite: list: a row has an unknown state");
			goto fail;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		sq_fail(q, rc, "list", err, errlen);
		goto fail;
	}
	sqlite3_finalize(st);
	*rows = out;
	return (int)n;
fail:
	sqlite3_finalize(st);
	store_rows_free(out, n);
	return -1;
}

static int sq_get(struct store *s, int64_t id, struct store_row *row, char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *st = q->st[ST_GET];
	int rc, found = 0;

	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (read_row(st, row, 1) == -1) {
			store_row_clear(row);
			sqlite3_reset(st);
			err_set(err, errlen, "sqlite: get: the row has an unknown state");
			return -1;
		}
		found = 1;
	} else if (rc != SQLITE_DONE) {
		sqlite3_reset(st);
		return sq_fail(q, rc, "get", err, errlen);
	}
	sqlite3_reset(st);
	return found;
}

static int sq_counts(struct store *s, struct store_count **outp, char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *st = q->st[ST_COUNTS];
	struct store_count *out = NULL;
	size_t n = 0, cap = 0;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char state[16];

		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			out = xrealloc(out, cap * sizeof(*out));
		}
		text_col(state, sizeof(state), st, 0);
		if (store_state_parse(state, &out[n].state) == -1)
			continue;
		text_col(out[n].type, sizeof(out[n].type), st, 1);
		out[n].n = (uint64_t)sqlite3_column_int64(st, 2);
		out[n].reused = (uint64_t)sqlite3_column_int64(st, 3);
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(out);
		return sq_fail(q, rc, "counts", err, errlen);
	}
	*outp = out;
	return (int)n;
}

static int sq_count_states(struct store *s, uint64_t out[STORE_NSTATES], char *err,
			   size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *st = q->st[ST_STATES];
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char state[16];
		enum store_state k;

		text_col(state, sizeof(state), st, 0);
		if (store_state_parse(state, &k) == 0)
			out[k] = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sq_fail(q, rc, "count states", err, errlen);
}

static int sq_queue_depth(struct store *s, uint64_t *n, char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *st = q->st[ST_DEPTH];
	int rc = sqlite3_step(st);

	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return sq_fail(q, rc, "queue depth", err, errlen);
	}
	*n = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

/* Prepared at each call (once a second at most, by the census): off the hot path. */
static int sq_oldest_undelivered(struct store *s, int64_t *received_ms, char *err,
				 size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(q->db,
				    "SELECT m.received_ms FROM deliveries d JOIN messages m ON "
				    "m.id = d.message_id ORDER BY d.message_id LIMIT 1",
				    -1, &st, NULL);

	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		*received_ms = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sq_fail(q, rc, "oldest undelivered", err, errlen);
	return 0;
}

static int sq_replay(struct store *s, int64_t id, enum store_state from, int64_t now_ms,
		     char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *jobs = q->st[ST_REPLAY_JOBS], *msgs = q->st[ST_REPLAY_MSGS];
	int rc, n;

	if (begin(q, err, errlen) == -1)
		return -1;
	sqlite3_bind_int64(jobs, 1, now_ms);
	sqlite3_bind_int64(jobs, 2, id);
	sqlite3_bind_text(jobs, 3, store_state_name(from), -1, SQLITE_STATIC);
	rc = run(q, jobs);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(msgs, 1, now_ms);
	sqlite3_bind_int64(msgs, 2, id);
	sqlite3_bind_text(msgs, 3, store_state_name(from), -1, SQLITE_STATIC);
	rc = run(q, msgs);
	if (rc != SQLITE_OK)
		goto fail;
	n = sqlite3_changes(q->db);
	if (commit(q, err, errlen) == -1)
		return -1;
	return n;
fail:
	sq_fail(q, rc, "replay", err, errlen);
	rollback(q);
	return -1;
}

static int sq_release(struct store *s, const char *owner, const int64_t *ids, size_t n,
		      char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *st = q->st[ST_RELEASE];
	int rc = SQLITE_OK;

	if (begin(q, err, errlen) == -1)
		return -1;
	sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
	for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
		sqlite3_bind_int64(st, 1, ids[i]);
		rc = run(q, st);
	}
	if (rc != SQLITE_OK) {
		sq_fail(q, rc, "release", err, errlen);
		rollback(q);
		return -1;
	}
	return commit(q, err, errlen);
}

static int sq_relax(struct store *s, char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	int rc = sqlite3_exec(q->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return sq_fail(q, rc, "relax", err, errlen);
	return 0;
}

static void sq_close(struct store *s)
{
	struct sqlite_store *q = (struct sqlite_store *)s;

	for (int i = 0; i < ST_N; i++)
		sqlite3_finalize(q->st[i]);
	sqlite3_close(q->db);
	free(q);
}

/* Creates the tables on a new file, refuses a file from a newer program. */
static int schema(struct sqlite_store *q, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc, version;

	rc = sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(q, rc, "schema", err, errlen);
	rc = sqlite3_prepare_v2(q->db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		rc = SQLITE_OK;
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		goto fail;
	if (version > STORE_SCHEMA_VERSION) {
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
		err_set(err, errlen, "sqlite: schema version %d is newer than this program's %d",
			  version, STORE_SCHEMA_VERSION);
		return -1;
	}
	if (version < STORE_SCHEMA_VERSION) {
		char sql[64];

		rc = sqlite3_exec(q->db, version == 1 ? migrate_v1_sql : schema_sql, NULL, NULL,
				  NULL);
		if (rc != SQLITE_OK)
			goto fail;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
		rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			goto fail;
	}
	rc = sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	return 0;
fail:
	sq_fail(q, rc, "schema", err, errlen);
	if (!sqlite3_get_autocommit(q->db))
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* Runs a PRAGMA that answers with one text value and checks it. */
static int pragma(struct sqlite_store *q, const char *sql, const char *want, char *err,
		  size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
	int ok = 0;

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
			const unsigned char *v = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;

			ok = want == NULL || (v != NULL && strcmp((const char *)v, want) == 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return sq_fail(q, rc, sql, err, errlen);
	if (!ok) {
		err_set(err, errlen, "sqlite: %s: not in effect", sql);
		return -1;
	}
	return 0;
}

/* SQL function netwall_sha256(blob): store_digest, for the schema migration. */
static void sq_sha256(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	uint8_t d[STORE_DIGEST_LEN];
	const void *p = sqlite3_value_blob(argv[0]);

	(void)argc;
	store_digest(p, p != NULL ? (size_t)sqlite3_value_bytes(argv[0]) : 0, d);
	sqlite3_result_blob(ctx, d, STORE_DIGEST_LEN, SQLITE_TRANSIENT);
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
	sqlite3_busy_handler(q->db, busy_wait, q);
	rc = sqlite3_create_function(q->db, "netwall_sha256", 1,
				     SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sq_sha256, NULL, NULL);
	if (rc != SQLITE_OK) {
		sq_fail(q, rc, "create function", err, errlen);
		goto fail;
	}
	/* the schema before foreign keys: migrating rebuilds the messages table */
	if (pragma(q, "PRAGMA journal_mode = WAL", "wal", err, errlen) == -1 ||
	    pragma(q, "PRAGMA synchronous = FULL", NULL, err, errlen) == -1 ||
	    schema(q, err, errlen) == -1 ||
	    pragma(q, "PRAGMA foreign_keys = ON", NULL, err, errlen) == -1)
		goto fail;
	for (int i = 0; i < ST_N; i++) {
		rc = sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i],
					NULL);
		if (rc != SQLITE_OK) {
			sq_fail(q, rc, "prepare", err, errlen);
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
	.put = sq_put,
	.claim = sq_claim,
	.finish = sq_finish,
	.list = sq_list,
	.get = sq_get,
	.counts = sq_counts,
	.queue_depth = sq_queue_depth,
	.oldest_undelivered = sq_oldest_undelivered,
	.count_states = sq_count_states,
	.relax = sq_relax,
	.release = sq_release,
	.replay = sq_replay,
};
