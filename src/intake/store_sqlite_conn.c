/* The SQLite backend's connection: content-free error text, the busy handler, the writer
 * lock that makes the process's connections take turns, transactions, and the reading of
 * columns. Shared by the backend's rooms (store_sqlite_conn.h); calls none of them. */
#include "intake/store_sqlite_conn.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long a connection waits, in all, for another to release the write lock. */
#define BUSY_LIMIT_US (3 * 1000 * 1000)
/* The first wait; each next one doubles, up to BUSY_STEP_MAX_US. */
#define BUSY_STEP_US     100
#define BUSY_STEP_MAX_US 4000

/* Fills err with the generic text of the result code, never sqlite3_errmsg(), which can
 * quote a trigger's or a constraint's text. */
int store_sqlite_conn_fail(struct sqlite_store *q, int rc, const char *what, char *err,
			   size_t errlen)
{
	if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE)
		rc = sqlite3_extended_errcode(q->db);
	err_set(err, errlen, "sqlite: %s: %s", what, sqlite3_errstr(rc));
	return -1;
}

int store_sqlite_conn_busy(void *arg, int count)
{
	struct sqlite_store *q = arg;
	long step = BUSY_STEP_US;
	struct timespec ts;

	if (count == 0)
		q->busy_us = 0;
	if (q->busy_us >= BUSY_LIMIT_US || atomic_load(&q->stopping))
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

int store_sqlite_conn_progress(void *arg)
{
	struct sqlite_store *q = arg;

	return atomic_load(&q->stopping) ? 1 : 0;
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
int store_sqlite_conn_run(struct sqlite_store *q, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

int store_sqlite_conn_begin(struct sqlite_store *q, char *err, size_t errlen)
{
	int rc;

	writer_lock(q);
	rc = store_sqlite_conn_run(q, q->st[ST_BEGIN]);
	if (rc != SQLITE_OK) {
		writer_unlock(q);
		return store_sqlite_conn_fail(q, rc, "begin", err, errlen);
	}
	return 0;
}

int store_sqlite_conn_commit(struct sqlite_store *q, char *err, size_t errlen)
{
	int rc = store_sqlite_conn_run(q, q->st[ST_COMMIT]);

	if (rc != SQLITE_OK) {
		store_sqlite_conn_fail(q, rc, "commit", err, errlen);
		if (!sqlite3_get_autocommit(q->db))
			store_sqlite_conn_run(q, q->st[ST_ROLLBACK]);
		writer_unlock(q);
		return -1;
	}
	writer_unlock(q);
	return 0;
}

void store_sqlite_conn_rollback(struct sqlite_store *q)
{
	if (!sqlite3_get_autocommit(q->db))
		store_sqlite_conn_run(q, q->st[ST_ROLLBACK]);
	writer_unlock(q);
}

void store_sqlite_conn_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
	const unsigned char *p = sqlite3_column_text(st, col);

	store_copy(dst, cap, p, p ? (size_t)sqlite3_column_bytes(st, col) : 0);
}

/* A malloc'd copy of a BLOB column, *len set; never NULL. */
char *store_sqlite_conn_blob(sqlite3_stmt *st, int col, size_t *len)
{
	const void *p = sqlite3_column_blob(st, col);
	size_t n = p ? (size_t)sqlite3_column_bytes(st, col) : 0;

	*len = n;
	return store_strndup(p, n);
}

/* Runs a PRAGMA that answers with one text value and checks it. */
int store_sqlite_conn_pragma(struct sqlite_store *q, const char *sql, const char *want, char *err,
			     size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
	int ok = 0;

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
			const unsigned char *v =
			    rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;

			ok = want == NULL || (v != NULL && strcmp((const char *)v, want) == 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return store_sqlite_conn_fail(q, rc, sql, err, errlen);
	if (!ok) {
		err_set(err, errlen, "sqlite: %s: not in effect", sql);
		return -1;
	}
	return 0;
}

int store_sqlite_conn_keys(struct sqlite_store *q, sqlite3_stmt *ins, int64_t id,
			   const struct store_index *ix, const char *control)
{
	int rc = SQLITE_OK;

	if (control != NULL) {
		sqlite3_bind_text(ins, 1, store_key_kind_name(STORE_KEY_CONTROL), -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, control, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 3, id);
		sqlite3_bind_text(ins, 4, "", -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 5, "", -1, SQLITE_STATIC);
		rc = store_sqlite_conn_run(q, ins);
	}
	for (size_t i = 0; i < ix->nkeys && rc == SQLITE_OK; i++) {
		const struct store_key *k = &ix->keys[i];

		sqlite3_bind_text(ins, 1, store_key_kind_name(k->kind), -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, k->value, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 3, id);
		sqlite3_bind_text(ins, 4, k->authority, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 5, k->id_type, -1, SQLITE_STATIC);
		rc = store_sqlite_conn_run(q, ins);
	}
	return rc;
}
