/* The PostgreSQL backend's reads: the list of messages (newest first, filtered), one
 * message with its bytes (wiped from libpq's buffers once copied), and the counts the CLI
 * and the admin views show. */
#include "intake/store_pg_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "intake/store_pg_conn.h"
#include "intake/store_pg_sql.h"

int store_pg_read_list(struct store *s, const struct store_filter *f, struct store_row **rows,
		       char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	char sql[1024], before[24], lim[24], cond[320] = "";
	const char *v[4];
	int k = 0, n;
	size_t used = 0;
	PGresult *r;
	struct store_row *out;

	/* parameters numbered in the order the clauses appear */
	if (f->state >= 0) {
		v[k++] = store_state_name((enum store_state)f->state);
		used += (size_t)snprintf(cond + used, sizeof(cond) - used, " AND state = $%d", k);
	}
	if (f->type != NULL) {
		v[k++] = f->type;
		used += (size_t)snprintf(
		    cond + used, sizeof(cond) - used,
		    " AND (type = $%d OR left(type, length($%d) + 1) = $%d || '^')", k, k, k);
	}
	if (f->before_id > 0) {
		snprintf(before, sizeof(before), "%lld", (long long)f->before_id);
		v[k++] = before;
		used +=
		    (size_t)snprintf(cond + used, sizeof(cond) - used, " AND id < $%d::bigint", k);
	}
	if (f->reused_only)
		used +=
		    (size_t)snprintf(cond + used, sizeof(cond) - used, " AND reused_control_id");
	if (f->limit > 0) {
		snprintf(lim, sizeof(lim), "%zu",
			 f->limit > INT64_MAX ? (size_t)INT64_MAX : f->limit);
		v[k++] = lim;
	}
	if (f->limit > 0)
		snprintf(sql, sizeof(sql),
			 "SELECT " ROW_COLS
			 " FROM messages WHERE true%s ORDER BY id DESC LIMIT $%d::bigint",
			 cond, k);
	else
		snprintf(sql, sizeof(sql),
			 "SELECT " ROW_COLS " FROM messages WHERE true%s ORDER BY id DESC", cond);
	r = store_pg_conn_exec(p, sql, k, v, "list", err, errlen);
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
	store_pg_sql_wipe(r, 14);
	store_pg_sql_wipe(r, 15);
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
