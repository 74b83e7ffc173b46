/* The PostgreSQL backend's audit trail: one INSERT, committed (synchronous_commit on, or
 * off on a relaxed connection, which the CLI's never is) before the content it records is
 * shown; the list newest first. Triggers refuse UPDATE, DELETE and TRUNCATE
 * (store_pg_schema.c). */
#include "intake/store_pg_audit.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/xalloc.h"
#include "intake/store_pg_conn.h"
#include "intake/store_pg_sql.h"

int store_pg_audit_add(struct store *s, const struct store_audit_row *r, char *err,
		       size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	char at[24], n[24];
	const char *v[8] = {at, r->who, r->via, r->action, r->what, r->message_ids, n, r->reason};
	PGresult *res;

	snprintf(at, sizeof(at), "%lld", (long long)r->at_ms);
	snprintf(n, sizeof(n), "%llu", (unsigned long long)r->messages);
	res = store_pg_conn_exec(p,
				 STORE_PG_AUDIT_INSERT,
				 8, v, "audit", err, errlen);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int store_pg_audit_list(struct store *s, int64_t before_id, size_t limit,
			struct store_audit_row **rows, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	char before[24], lim[24];
	const char *v[2] = {before, limit > 0 ? lim : NULL};
	struct store_audit_row *out;
	PGresult *r;
	int n;

	snprintf(before, sizeof(before), "%lld", (long long)before_id);
	snprintf(lim, sizeof(lim), "%zu", limit);
	r = store_pg_conn_exec(p,
			       "SELECT id, at_ms, who, via, action, what, message_ids, messages, "
			       "reason FROM audit WHERE $1::bigint = 0 OR id < $1::bigint "
			       "ORDER BY id DESC LIMIT $2::bigint",
			       2, v, "audit list", err, errlen);
	if (r == NULL)
		return -1;
	n = PQntuples(r);
	out = n > 0 ? xcalloc((size_t)n, sizeof(*out)) : NULL;
	for (int i = 0; i < n; i++) {
		out[i].id = store_pg_sql_int(r, i, 0);
		out[i].at_ms = store_pg_sql_int(r, i, 1);
		out[i].who = store_pg_sql_dup(r, i, 2, NULL);
		out[i].via = store_pg_sql_dup(r, i, 3, NULL);
		out[i].action = store_pg_sql_dup(r, i, 4, NULL);
		out[i].what = store_pg_sql_dup(r, i, 5, NULL);
		out[i].message_ids = store_pg_sql_dup(r, i, 6, NULL);
		out[i].messages = (uint64_t)store_pg_sql_int(r, i, 7);
		out[i].reason = PQgetisnull(r, i, 8) ? NULL : store_pg_sql_dup(r, i, 8, NULL);
	}
	PQclear(r);
	*rows = out;
	return n;
}
