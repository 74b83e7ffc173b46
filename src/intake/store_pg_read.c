/* The PostgreSQL backend's reads: the list of messages (newest first, filtered), one
 * message with its bytes (wiped from libpq's buffers once copied), and the counts the CLI
 * and the admin views show. */
#include "intake/store_pg_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "intake/store_pg_conn.h"
#include "intake/store_query.h"
#include "intake/store_pg_sql.h"

int store_pg_read_list(struct store *s, const struct store_filter *f, struct store_row **rows,
		       char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	struct store_query *q = xmalloc(sizeof(*q));
	const char *v[STORE_QUERY_PARAMS];
	PGresult *r;
	struct store_row *out;
	int n;

	if (store_query_list(q, f, ROW_COLS, true) == -1) {
		free(q);
		return 0; /* a value longer than any stored: nothing matches */
	}
	for (int i = 0; i < q->nparams; i++)
		v[i] = q->params[i].text;
	r = store_pg_conn_exec(p, q->sql, q->nparams, v, "list", err, errlen);
	free(q);
	if (r == NULL)
		return -1;
	n = PQntuples(r);
	out = n > 0 ? xcalloc((size_t)n, sizeof(*out)) : NULL;
	for (int i = 0; i < n; i++) {
		if (store_pg_sql_row(r, i, &out[i], false) == -1) {
			store_rows_free(out, (size_t)i);
			PQclear(r);
			err_set(err, errlen, "postgresql: list: a row has an unknown state");
			return -1;
		}
		if (f->with_keys && !PQgetisnull(r, i, 16))
			out[i].patients = store_pg_sql_dup(r, i, 16, NULL);
		if (f->with_keys && !PQgetisnull(r, i, 17))
			out[i].names = store_pg_sql_dup(r, i, 17, NULL);
	}
	PQclear(r);
	*rows = out;
	return n;
}

int store_pg_read_get(struct store *s, int64_t id, struct store_row *row, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	char ids[24];
	const char *v[1] = {ids};
	PGresult *r;
	int found = 0;

	snprintf(ids, sizeof(ids), "%lld", (long long)id);
	r = store_pg_conn_prepared(p, "get", 1, v, err, errlen);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 1) {
		found = 1;
		if (store_pg_sql_row(r, 0, row, true) == -1) {
			store_row_clear(row);
			err_set(err, errlen, "postgresql: get: the row has an unknown state");
			found = -1;
		}
	}
	store_pg_sql_wipe(r, 16);
	store_pg_sql_wipe(r, 17);
	PQclear(r);
	return found;
}

int store_pg_read_counts(struct store *s, struct store_count **outp, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	PGresult *r = store_pg_conn_prepared(p, "counts", 0, NULL, err, errlen);
	struct store_count *out;
	int n, k = 0;

	if (r == NULL)
		return -1;
	n = PQntuples(r);
	out = n > 0 ? xcalloc((size_t)n, sizeof(*out)) : NULL;
	for (int i = 0; i < n; i++) {
		char state[16];

		store_pg_sql_text(state, sizeof(state), r, i, 0);
		if (store_state_parse(state, &out[k].state) == -1)
			continue;
		store_pg_sql_text(out[k].type, sizeof(out[k].type), r, i, 1);
		out[k].n = (uint64_t)store_pg_sql_int(r, i, 2);
		out[k].reused = (uint64_t)store_pg_sql_int(r, i, 3);
		k++;
	}
	PQclear(r);
	if (k == 0) {
		free(out);
		out = NULL;
	}
	*outp = out;
	return k;
}

int store_pg_read_states(struct store *s, uint64_t out[STORE_NSTATES], char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	PGresult *r = store_pg_conn_prepared(p, "states", 0, NULL, err, errlen);

	if (r == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		char state[16];
		enum store_state k;

		store_pg_sql_text(state, sizeof(state), r, i, 0);
		if (store_state_parse(state, &k) == 0)
			out[k] = (uint64_t)store_pg_sql_int(r, i, 1);
	}
	PQclear(r);
	return 0;
}

int store_pg_read_depth(struct store *s, uint64_t *n, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	PGresult *r = store_pg_conn_prepared(p, "depth", 0, NULL, err, errlen);

	if (r == NULL)
		return -1;
	*n = (uint64_t)store_pg_sql_int(r, 0, 0);
	PQclear(r);
	return 0;
}

int store_pg_read_oldest(struct store *s, int64_t *received_ms, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	PGresult *r = store_pg_conn_exec(p,
					 "SELECT m.received_ms FROM deliveries d JOIN messages m ON "
					 "m.id = d.message_id ORDER BY d.message_id LIMIT 1",
					 0, NULL, "oldest undelivered", err, errlen);

	if (r == NULL)
		return -1;
	if (PQntuples(r) == 1)
		*received_ms = store_pg_sql_int(r, 0, 0);
	PQclear(r);
	return 0;
}
