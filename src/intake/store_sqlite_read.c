/* The SQLite backend's reads: the list of messages (newest first, filtered), one message
 * with its bytes, and the counts the CLI and the admin views show. Reads take no lock of
 * the process's writers: in WAL mode they see the last commit and never wait for one. */
#include "intake/store_sqlite_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "intake/store_query.h"
#include "intake/store_sqlite_conn.h"

/* A text column in memory of its own, or NULL when it is NULL. */
static char *text_dup(sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return NULL;
	return store_strndup(sqlite3_column_text(st, col), (size_t)sqlite3_column_bytes(st, col));
}

/* Fills row from the ROW_COLS columns of st (and raw, ack after them when with_body). */
static int read_row(sqlite3_stmt *st, struct store_row *row, int with_body)
{
	char state[16];

	memset(row, 0, sizeof(*row));
	row->id = sqlite3_column_int64(st, 0);
	store_sqlite_conn_text(state, sizeof(state), st, 1);
	if (store_state_parse(state, &row->state) == -1)
		return -1;
	store_sqlite_conn_text(row->app, sizeof(row->app), st, 2);
	store_sqlite_conn_text(row->facility, sizeof(row->facility), st, 3);
	store_sqlite_conn_text(row->control_id, sizeof(row->control_id), st, 4);
	store_sqlite_conn_text(row->type, sizeof(row->type), st, 5);
	store_sqlite_conn_text(row->version, sizeof(row->version), st, 6);
	store_sqlite_conn_text(row->peer, sizeof(row->peer), st, 7);
	row->received_ms = sqlite3_column_int64(st, 8);
	row->updated_ms = sqlite3_column_int64(st, 9);
	row->attempts = (unsigned)sqlite3_column_int64(st, 10);
	row->http_status = sqlite3_column_int(st, 11);
	if (sqlite3_column_type(st, 12) != SQLITE_NULL)
		row->detail = store_strndup(sqlite3_column_text(st, 12),
					    (size_t)sqlite3_column_bytes(st, 12));
	row->reused = sqlite3_column_int(st, 13) != 0;
	store_sqlite_conn_text(row->message_date, sizeof(row->message_date), st, 14);
	row->warnings = text_dup(st, 15);
	if (with_body) {
		row->raw = store_sqlite_conn_blob(st, 16, &row->raw_len);
		row->ack = store_sqlite_conn_blob(st, 17, &row->ack_len);
	}
	return 0;
}

int store_sqlite_read_list(struct store *s, const struct store_filter *f, struct store_row **rows,
			   char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	struct store_query *qy = xmalloc(sizeof(*qy));
	sqlite3_stmt *st = NULL;
	struct store_row *out = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if (store_query_list(qy, f, ROW_COLS, false) == -1) {
		free(qy);
		return 0; /* a value longer than any stored: nothing matches */
	}
	rc = sqlite3_prepare_v2(q->db, qy->sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		free(qy);
		return store_sqlite_conn_fail(q, rc, "list", err, errlen);
	}
	for (int i = 0; i < qy->nparams; i++) {
		if (qy->params[i].is_num)
			sqlite3_bind_int64(st, i + 1, qy->params[i].num);
		else
			sqlite3_bind_text(st, i + 1, qy->params[i].text, -1, SQLITE_STATIC);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			out = xrealloc(out, cap * sizeof(*out));
		}
		if (read_row(st, &out[n], 0) == -1) {
			err_set(err, errlen, "sqlite: list: a row has an unknown state");
			goto fail;
		}
		if (f->with_keys) {
			out[n].patients = text_dup(st, 16);
			out[n].names = text_dup(st, 17);
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		store_sqlite_conn_fail(q, rc, "list", err, errlen);
		goto fail;
	}
	sqlite3_finalize(st);
	free(qy);
	*rows = out;
	return (int)n;
fail:
	sqlite3_finalize(st);
	free(qy);
	store_rows_free(out, n);
	return -1;
}

int store_sqlite_read_get(struct store *s, int64_t id, struct store_row *row, char *err,
			  size_t errlen)
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
		return store_sqlite_conn_fail(q, rc, "get", err, errlen);
	}
	sqlite3_reset(st);
	return found;
}

int store_sqlite_read_counts(struct store *s, struct store_count **outp, char *err, size_t errlen)
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
		store_sqlite_conn_text(state, sizeof(state), st, 0);
		if (store_state_parse(state, &out[n].state) == -1)
			continue;
		store_sqlite_conn_text(out[n].type, sizeof(out[n].type), st, 1);
		out[n].n = (uint64_t)sqlite3_column_int64(st, 2);
		out[n].reused = (uint64_t)sqlite3_column_int64(st, 3);
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(out);
		return store_sqlite_conn_fail(q, rc, "counts", err, errlen);
	}
	*outp = out;
	return (int)n;
}

int store_sqlite_read_states(struct store *s, uint64_t out[STORE_NSTATES], char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *st = q->st[ST_STATES];
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char state[16];
		enum store_state k;

		store_sqlite_conn_text(state, sizeof(state), st, 0);
		if (store_state_parse(state, &k) == 0)
			out[k] = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : store_sqlite_conn_fail(q, rc, "count states", err, errlen);
}

int store_sqlite_read_depth(struct store *s, uint64_t *n, char *err, size_t errlen)
{
	struct sqlite_store *q = (struct sqlite_store *)s;
	sqlite3_stmt *st = q->st[ST_DEPTH];
	int rc = sqlite3_step(st);

	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return store_sqlite_conn_fail(q, rc, "queue depth", err, errlen);
	}
	*n = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

/* Prepared at each call (once a second at most, by the census): off the hot path. */
int store_sqlite_read_oldest(struct store *s, int64_t *received_ms, char *err, size_t errlen)
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
		return store_sqlite_conn_fail(q, rc, "oldest undelivered", err, errlen);
	return 0;
}
