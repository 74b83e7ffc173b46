/* The PostgreSQL backend (libpq). Every session runs with synchronous_commit on, so a
 * commit is durable when its result arrives. Writes of several rows go out as one
 * pipeline (libpq pipeline mode): the statements travel together and run in one implicit
 * transaction that the closing Sync commits, or rolls back whole if any of them fails; a
 * batch costs one round trip. Dedupe: a batch first takes a transaction-scoped advisory
 * lock on each of its keys (MSH-3, MSH-4, MSH-10), in one order, so two intakes that get
 * the same key at once take turns, and the second one's statements (whose snapshots are
 * taken after the lock) see the first one's row: the same digest is a duplicate, another
 * digest is stored flagged reused_control_id. The unique key (key, digest) backs it up
 * (ON CONFLICT DO NOTHING). Claims lock their rows FOR UPDATE SKIP LOCKED, so any number
 * of processes can share the database. A connection found broken is reset once per call.
 *
 * Error text is built from the SQLSTATE class only: the server's own message can quote
 * values (DETAIL, invalid byte sequences), and values here are patient data. */
#include <libpq-fe.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "intake/store_int.h"
#include "intake/store_pg_sql.h"

struct pg_store {
	struct store base;
	PGconn *conn;
	bool relaxed; /* synchronous_commit off (store_relax), kept across reconnects */
};

/* One statement of a pipeline: a prepared statement and its parameters (text, except
 * where formats says 1: binary). */
struct pg_call {
	const char *stmt;
	int nparams;
	const char *const *values;
	const int *lengths;
	const int *formats;
};


static void quiet(void *arg, const char *message)
{
	/* NOTICEs (e.g. "relation already exists, skipping") are not for stderr */
}

/* Content-free error text for result r (NULL: the connection broke). */
static void pg_fail(struct pg_store *p, const PGresult *r, const char *what, char *err,
		    size_t errlen)
{
	const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(p->conn) == CONNECTION_BAD)
		err_set(err, errlen, "postgresql: %s: connection lost", what);
	else
		err_set(err, errlen, "postgresql: %s: %s (SQLSTATE %s)", what, store_pg_sql_class(code),
			  code ? code : "none");
}

static bool result_ok(const PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);

	return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
}

/* Session settings and prepared statements, after every (re)connection. */
static int session(struct pg_store *p, char *err, size_t errlen)
{
	/* a statement that runs 30 s (a server that hangs) fails, and the sender gets AE */
	PGresult *r = PQexec(p->conn, p->relaxed
					      ? "SET synchronous_commit = off; SET statement_timeout = 30000"
					      : "SET synchronous_commit = on; SET statement_timeout = 30000");

	if (!result_ok(r)) {
		pg_fail(p, r, "session", err, errlen);
		PQclear(r);
		return -1;
	}
	PQclear(r);
	for (size_t i = 0; i < store_pg_sql_nstmts; i++) {
		r = PQprepare(p->conn, store_pg_sql_stmts[i].name, store_pg_sql_stmts[i].sql, 0, NULL);
		if (!result_ok(r)) {
			pg_fail(p, r, "prepare", err, errlen);
			PQclear(r);
			return -1;
		}
		PQclear(r);
	}
	return 0;
}

static int pg_relax(struct store *s, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	PGresult *r;

	p->relaxed = true;
	r = PQexec(p->conn, "SET synchronous_commit = off");
	if (!result_ok(r)) {
		pg_fail(p, r, "relax", err, errlen);
		PQclear(r);
		return -1;
	}
	PQclear(r);
	return 0;
}

static int reconnect(struct pg_store *p, char *err, size_t errlen)
{
	PQreset(p->conn);
	if (PQstatus(p->conn) != CONNECTION_OK) {
		err_set(err, errlen, "postgresql: reconnect failed");
		return -1;
	}
	return session(p, err, errlen);
}

/* Before a call: a connection known to be broken is reset (that is the call's one
 * reconnect, recorded in *used). */
static int call_begin(struct pg_store *p, bool *used, char *err, size_t errlen)
{
	*used = false;
	if (PQstatus(p->conn) == CONNECTION_OK)
		return 0;
	*used = true;
	return reconnect(p, err, errlen);
}

/* After a failed call: true when the connection broke, had not been reset in this call,
 * and is back; the call runs once more. */
static bool call_again(struct pg_store *p, bool *used, char *err, size_t errlen)
{
	if (*used || PQstatus(p->conn) != CONNECTION_BAD)
		return false;
	*used = true;
	return reconnect(p, err, errlen) == 0;
}

/* Sends calls[0..n) as one pipeline and collects one result each into res (the caller
 * PQclears them, even on failure; missing ones are NULL). Without an explicit BEGIN, the
 * pipeline is one transaction, committed at its Sync. Returns 0 when every statement
 * succeeded, -1 with err otherwise (then nothing was committed). */
static int pipeline(struct pg_store *p, const struct pg_call *calls, size_t n, PGresult **res,
		    const char *what, char *err, size_t errlen)
{
	PGconn *c = p->conn;
	int rc = 0;
	size_t got = 0;

	memset(res, 0, n * sizeof(*res));
	if (PQenterPipelineMode(c) != 1) {
		pg_fail(p, NULL, what, err, errlen);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!PQsendQueryPrepared(c, calls[i].stmt, calls[i].nparams, calls[i].values,
					 calls[i].lengths, calls[i].formats, 1))
			goto broken;
	}
	if (!PQpipelineSync(c) || PQflush(c) == -1)
		goto broken;
	for (; got < n; got++) {
		PGresult *r = PQgetResult(c);

		if (r == NULL)
			goto broken;
		res[got] = r;
		if (rc == 0 && !result_ok(r)) {
			if (PQresultStatus(r) == PGRES_PIPELINE_ABORTED)
				err_set(err, errlen, "postgresql: %s: aborted", what);
			else
				pg_fail(p, r, what, err, errlen);
			rc = -1;
		}
		/* the end of this statement's results */
		while ((r = PQgetResult(c)) != NULL) {
			PQclear(r);
			if (PQstatus(c) == CONNECTION_BAD)
				goto broken;
		}
	}
	for (;;) {
		PGresult *r = PQgetResult(c);
		ExecStatusType st;

		if (r == NULL) {
			if (PQstatus(c) == CONNECTION_BAD)
				goto broken;
			continue;
		}
		st = PQresultStatus(r);
		PQclear(r);
		if (st == PGRES_PIPELINE_SYNC)
			break;
		if (PQstatus(c) == CONNECTION_BAD)
			goto broken;
	}
	if (PQexitPipelineMode(c) != 1)
		goto broken;
	return rc;
broken:
	err_set(err, errlen, "postgresql: %s: connection lost", what);
	/* a connection in an unknown state is not reused: a broken one is reset by the
	 * caller's retry, one that still looks fine is reset here */
	if (PQstatus(c) != CONNECTION_BAD)
		reconnect(p, NULL, 0);
	return -1;
}

static void clear_all(PGresult **res, size_t n)
{
	for (size_t i = 0; i < n; i++)
		PQclear(res[i]);
}

/* The parameters of one "put" statement; the first four also make its "lookup". */
struct put_args {
	const char *v[13];
	int len[13];
	int fmt[13];
	const char *lv[4];
	int llen[4];
	int lfmt[4];
	char at[24], size[24];
};

static void put_undo(struct store_msg *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].duplicate)
			buf_free(&msgs[i].orig_ack);
		msgs[i].duplicate = false;
		msgs[i].reused = false;
		msgs[i].id = 0;
	}
}

static void put_result(struct store_msg *m, const PGresult *r)
{
	m->id = store_pg_sql_int(r, 0, 0);
	m->reused = store_pg_sql_int(r, 0, 3) != 0;
	if (store_pg_sql_int(r, 0, 1) == 0)
		return;
	m->duplicate = true;
	buf_consume(&m->orig_ack, m->orig_ack.len);
	buf_append(&m->orig_ack, PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2));
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The advisory lock key of a message's key: 64 bits of SHA-256 over MSH-3, MSH-4 and
 * MSH-10 with a NUL after each (two keys that share a lock key only take turns). */
static int64_t lock_key(const struct store_msg *m)
{
	uint8_t d[STORE_DIGEST_LEN];
	struct buf b = { 0 };
	uint64_t k = 0;

	buf_append(&b, m->app, strlen(m->app) + 1);
	buf_append(&b, m->facility, strlen(m->facility) + 1);
	buf_append(&b, m->control_id, strlen(m->control_id) + 1);
	store_digest(buf_head(&b), b.len, d);
	buf_free(&b);
	for (int i = 0; i < 8; i++)
		k = k << 8 | d[i];
	return (int64_t)k;
}

/* "{k1,k2,...}": the batch's lock keys, sorted and distinct, in arr (NUL-terminated). */
static void lock_keys(const struct store_msg *msgs, size_t n, struct buf *arr)
{
	int64_t *k = xmalloc(n * sizeof(*k));
	size_t m = 0;

	for (size_t i = 0; i < n; i++)
		k[i] = lock_key(&msgs[i]);
	qsort(k, n, sizeof(*k), cmp_i64);
	buf_append(arr, "{", 1);
	for (size_t i = 0; i < n; i++) {
		char num[24];
		int len;

		if (i > 0 && k[i] == k[i - 1])
			continue;
		len = snprintf(num, sizeof(num), "%s%lld", m++ ? "," : "", (long long)k[i]);
		buf_append(arr, num, (size_t)len);
	}
	buf_append(arr, "}", 2); /* with the NUL */
	free(k);
}

/* The parameters of m's "put" statement (and of its "lookup"), in a, which m outlives. */
static void put_args_fill(struct put_args *a, const struct store_msg *m)
{
	snprintf(a->at, sizeof(a->at), "%lld", (long long)m->received_ms);
	snprintf(a->size, sizeof(a->size), "%zu", m->raw_len);
	a->v[0] = m->app;
	a->v[1] = m->facility;
	a->v[2] = m->control_id;
	a->v[3] = m->type;
	a->v[4] = m->version;
	a->v[5] = m->peer;
	a->v[6] = store_state_name(m->state);
	a->v[7] = a->at;
	a->v[8] = a->size;
	a->v[9] = m->raw ? m->raw : "";
	a->len[9] = (int)m->raw_len;
	a->fmt[9] = 1;
	a->v[10] = m->ack ? m->ack : "";
	a->len[10] = (int)m->ack_len;
	a->fmt[10] = 1;
	a->v[11] = (const char *)m->digest;
	a->len[11] = STORE_DIGEST_LEN;
	a->fmt[11] = 1;
	a->v[12] = m->reuse_ack; /* NULL is SQL NULL: a reused key is stored */
	a->len[12] = (int)m->reuse_ack_len;
	a->fmt[12] = 1;
	memcpy(a->lv, a->v, 3 * sizeof(a->lv[0]));
	a->lv[3] = a->v[11];
	a->llen[3] = STORE_DIGEST_LEN;
	a->lfmt[3] = 1;
}

static int put_once(struct pg_store *p, struct store_msg *msgs, size_t n, char *err,
		    size_t errlen)
{
	struct put_args *a = xcalloc(n, sizeof(*a));
	struct pg_call *calls = xcalloc(n + 1, sizeof(*calls));
	PGresult **res = xcalloc(n + 1, sizeof(*res));
	struct buf keys = { 0 };
	const char *lockv[1];
	size_t late = 0; /* keys another transaction inserted while this one ran */
	int rc;

	lock_keys(msgs, n, &keys);
	lockv[0] = (const char *)buf_head(&keys);
	calls[0] = (struct pg_call){"lock", 1, lockv, NULL, NULL};
	for (size_t i = 0; i < n; i++) {
		const struct store_msg *m = &msgs[i];

		put_args_fill(&a[i], m);
		calls[i + 1] = (struct pg_call){"put", 13, a[i].v, a[i].len, a[i].fmt};
	}
	rc = pipeline(p, calls, n + 1, res, "put", err, errlen);
	if (rc == 0) {
		for (size_t i = 0; i < n; i++) {
			if (PQntuples(res[i + 1]) == 1) {
				put_result(&msgs[i], res[i + 1]);
				store_pg_sql_wipe(res[i + 1], 2);
			} else {
				/* the insert waited for another transaction that stored the key
				 * and digest, whose row this statement's snapshot could not see
				 * (only without the lock, e.g. another program's writes) */
				calls[late++] = (struct pg_call){"lookup", 4, a[i].lv, a[i].llen,
								 a[i].lfmt};
			}
		}
	}
	clear_all(res, n + 1);
	if (rc == 0 && late > 0) {
		/* the batch is committed; this only reads the originals */
		if (pipeline(p, calls, late, res, "put lookup", err, errlen) == 0) {
			size_t k = 0;

			for (size_t i = 0; i < n; i++) {
				if (msgs[i].id != 0)
					continue;
				if (PQntuples(res[k]) == 1)
					put_result(&msgs[i], res[k]);
				else
					msgs[i].duplicate = true; /* stored by another, then gone */
				store_pg_sql_wipe(res[k], 2);
				k++;
			}
		} else {
			for (size_t i = 0; i < n; i++)
				if (msgs[i].id == 0)
					msgs[i].duplicate = true;
		}
		clear_all(res, late);
	}
	if (rc == -1)
		put_undo(msgs, n);
	buf_free(&keys);
	free(res);
	free(calls);
	free(a);
	return rc;
}

static int pg_put(struct store *s, struct store_msg *msgs, size_t n, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	bool used;
	int rc;

	for (size_t i = 0; i < n; i++) {
		if (msgs[i].raw_len > INT_MAX || msgs[i].ack_len > INT_MAX) {
			err_set(err, errlen, "postgresql: put: message %zu is too large", i);
			return -1;
		}
	}
	if (call_begin(p, &used, err, errlen) == -1)
		return -1;
	do
		rc = put_once(p, msgs, n, err, errlen);
	while (rc == -1 && call_again(p, &used, err, errlen));
	return rc;
}

static int claim_once(struct pg_store *p, const char *owner, int64_t now_ms, int64_t lease_ms,
		      size_t max, struct store_job **jobs, char *err, size_t errlen)
{
	char now[24], lease[24], lim[24];
	const char *v[4] = {owner, now, lease, lim};
	struct pg_call call = {"claim", 4, v, NULL, NULL};
	PGresult *r;
	struct store_job *out;
	int n;

	snprintf(now, sizeof(now), "%lld", (long long)now_ms);
	snprintf(lease, sizeof(lease), "%lld", (long long)lease_ms);
	snprintf(lim, sizeof(lim), "%zu", max);
	if (pipeline(p, &call, 1, &r, "claim", err, errlen) == -1) {
		PQclear(r);
		return -1;
	}
	n = PQntuples(r);
	out = n > 0 ? xcalloc((size_t)n, sizeof(*out)) : NULL;
	for (int i = 0; i < n; i++) {
		out[i].id = store_pg_sql_int(r, i, 0);
		out[i].attempts = (unsigned)store_pg_sql_int(r, i, 1);
		store_pg_sql_text(out[i].type, sizeof(out[i].type), r, i, 2);
		store_pg_sql_text(out[i].control_id, sizeof(out[i].control_id), r, i, 3);
		store_pg_sql_text(out[i].app, sizeof(out[i].app), r, i, 4);
		store_pg_sql_text(out[i].facility, sizeof(out[i].facility), r, i, 5);
		out[i].raw = store_pg_sql_dup(r, i, 6, &out[i].raw_len);
		out[i].reused = store_pg_sql_int(r, i, 7) != 0;
		if (PQgetlength(r, i, 8) == STORE_DIGEST_LEN)
			memcpy(out[i].digest, PQgetvalue(r, i, 8), STORE_DIGEST_LEN);
	}
	store_pg_sql_wipe(r, 6);
	PQclear(r);
	*jobs = out;
	return n;
}

static int pg_claim(struct store *s, const char *owner, int64_t now_ms, int64_t lease_ms,
		    size_t max, struct store_job **jobs, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	bool used;
	int rc;

	if (call_begin(p, &used, err, errlen) == -1)
		return -1;
	do
		rc = claim_once(p, owner, now_ms, lease_ms, max, jobs, err, errlen);
	while (rc == -1 && call_again(p, &used, err, errlen));
	return rc;
}

struct finish_args {
	const char *v[7];
	char id[24], status[16], at[24], next[24];
};

static int finish_once(struct pg_store *p, const char *owner, const struct store_outcome *o,
		       size_t n, char *err, size_t errlen)
{
	struct finish_args *a = xcalloc(n, sizeof(*a));
	struct pg_call *calls = xcalloc(n, sizeof(*calls));
	PGresult **res = xcalloc(n, sizeof(*res));
	int rc;

	for (size_t i = 0; i < n; i++) {
		snprintf(a[i].id, sizeof(a[i].id), "%lld", (long long)o[i].id);
		snprintf(a[i].status, sizeof(a[i].status), "%d", o[i].http_status);
		snprintf(a[i].at, sizeof(a[i].at), "%lld", (long long)o[i].at_ms);
		snprintf(a[i].next, sizeof(a[i].next), "%lld", (long long)o[i].next_ms);
		a[i].v[0] = a[i].id;
		a[i].v[1] = owner;
		a[i].v[2] = store_state_name(o[i].state);
		a[i].v[3] = a[i].status;
		a[i].v[4] = o[i].detail; /* NULL is SQL NULL */
		a[i].v[5] = a[i].at;
		a[i].v[6] = a[i].next;
		calls[i] = (struct pg_call){"finish", 7, a[i].v, NULL, NULL};
	}
	rc = pipeline(p, calls, n, res, "finish", err, errlen);
	clear_all(res, n);
	free(res);
	free(calls);
	free(a);
	return rc;
}

static int pg_finish(struct store *s, const char *owner, const struct store_outcome *o, size_t n,
		     char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	bool used;
	int rc;

	if (call_begin(p, &used, err, errlen) == -1)
		return -1;
	do
		rc = finish_once(p, owner, o, n, err, errlen);
	while (rc == -1 && call_again(p, &used, err, errlen));
	return rc;
}

/* One statement outside a pipeline, with a broken connection reset and retried once. */
static PGresult *exec_params(struct pg_store *p, const char *sql, int nparams,
			     const char *const *values, const char *what, char *err,
			     size_t errlen)
{
	PGresult *r = NULL;
	bool used;

	if (call_begin(p, &used, err, errlen) == -1)
		return NULL;
	do {
		PQclear(r);
		r = PQexecParams(p->conn, sql, nparams, NULL, values, NULL, NULL, 1);
		if (result_ok(r))
			return r;
		pg_fail(p, r, what, err, errlen);
	} while (call_again(p, &used, err, errlen));
	PQclear(r);
	return NULL;
}

static PGresult *exec_prepared(struct pg_store *p, const char *stmt, int nparams,
			       const char *const *values, char *err, size_t errlen)
{
	PGresult *r = NULL;
	bool used;

	if (call_begin(p, &used, err, errlen) == -1)
		return NULL;
	do {
		PQclear(r);
		r = PQexecPrepared(p->conn, stmt, nparams, values, NULL, NULL, 1);
		if (result_ok(r))
			return r;
		pg_fail(p, r, stmt, err, errlen);
	} while (call_again(p, &used, err, errlen));
	PQclear(r);
	return NULL;
}

static int pg_list(struct store *s, const struct store_filter *f, struct store_row **rows,
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
		used += (size_t)snprintf(cond + used, sizeof(cond) - used,
					 " AND (type = $%d OR left(type, length($%d) + 1) = $%d || '^')",
					 k, k, k);
	}
	if (f->before_id > 0) {
		snprintf(before, sizeof(before), "%lld", (long long)f->before_id);
		v[k++] = before;
		used += (size_t)snprintf(cond + used, sizeof(cond) - used, " AND id < $%d::bigint", k);
	}
	if (f->reused_only)
		used += (size_t)snprintf(cond + used, sizeof(cond) - used, " AND reused_control_id");
	if (f->limit > 0) {
		snprintf(lim, sizeof(lim), "%zu", f->limit > INT64_MAX ? (size_t)INT64_MAX : f->limit);
		v[k++] = lim;
	}
	if (f->limit > 0)
		snprintf(sql, sizeof(sql),
			 "SELECT " ROW_COLS " FROM messages WHERE true%s ORDER BY id DESC LIMIT $%d::bigint",
			 cond, k);
	else
		snprintf(sql, sizeof(sql), "SELECT " ROW_COLS " FROM messages WHERE true%s ORDER BY id DESC",
			 cond);
	r = exec_params(p, sql, k, v, "list", err, errlen);
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

static int pg_get(struct store *s, int64_t id, struct store_row *row, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	char ids[24];
	const char *v[1] = {ids};
	PGresult *r;
	int found = 0;

	snprintf(ids, sizeof(ids), "%lld", (long long)id);
	r = exec_prepared(p, "get", 1, v, err, errlen);
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

static int pg_counts(struct store *s, struct store_count **outp, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	PGresult *r = exec_prepared(p, "counts", 0, NULL, err, errlen);
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

static int pg_release(struct store *s, const char *owner, const int64_t *ids, size_t n,
		      char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	struct buf arr = { 0 };
	const char *v[2];
	PGresult *r;

	buf_append(&arr, "{", 1);
	for (size_t i = 0; i < n; i++) {
		char num[24];
		int len = snprintf(num, sizeof(num), "%s%lld", i ? "," : "", (long long)ids[i]);
		buf_append(&arr, num, (size_t)len);
	}
	buf_append(&arr, "}", 2); /* with the NUL */
	v[0] = owner;
	v[1] = (const char *)buf_head(&arr);
	r = exec_params(p,
			"UPDATE deliveries SET lease_owner = NULL, lease_until = 0 WHERE "
			"lease_owner = $1::text AND message_id = ANY ($2::bigint[])",
			2, v, "release", err, errlen);
	buf_free(&arr);
	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}

static int pg_count_states(struct store *s, uint64_t out[STORE_NSTATES], char *err,
			   size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	PGresult *r = exec_prepared(p, "states", 0, NULL, err, errlen);

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

static int pg_queue_depth(struct store *s, uint64_t *n, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	PGresult *r = exec_prepared(p, "depth", 0, NULL, err, errlen);

	if (r == NULL)
		return -1;
	*n = (uint64_t)store_pg_sql_int(r, 0, 0);
	PQclear(r);
	return 0;
}

static int pg_oldest_undelivered(struct store *s, int64_t *received_ms, char *err,
				 size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	PGresult *r = exec_params(p,
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

static int replay_once(struct pg_store *p, int64_t id, enum store_state from, int64_t now_ms,
		       char *err, size_t errlen)
{
	char now[24], ids[24];
	const char *v[3] = {now, ids, store_state_name(from)};
	struct pg_call calls[2] = {
		{"replay_jobs", 3, v, NULL, NULL},
		{"replay_msgs", 3, v, NULL, NULL},
	};
	PGresult *res[2];
	int rc;

	snprintf(now, sizeof(now), "%lld", (long long)now_ms);
	snprintf(ids, sizeof(ids), "%lld", (long long)id);
	rc = pipeline(p, calls, 2, res, "replay", err, errlen);
	if (rc == 0)
		rc = atoi(PQcmdTuples(res[1]));
	clear_all(res, 2);
	return rc;
}

static int pg_replay(struct store *s, int64_t id, enum store_state from, int64_t now_ms,
		     char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	bool used;
	int rc;

	if (call_begin(p, &used, err, errlen) == -1)
		return -1;
	do
		rc = replay_once(p, id, from, now_ms, err, errlen);
	while (rc == -1 && call_again(p, &used, err, errlen));
	return rc;
}

static void pg_close(struct store *s)
{
	struct pg_store *p = (struct pg_store *)s;

	PQfinish(p->conn);
	free(p);
}

static int schema(struct pg_store *p, char *err, size_t errlen)
{
	PGresult *r = PQexec(p->conn, store_pg_sql_schema);
	long version;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		pg_fail(p, r, "schema", err, errlen);
		PQclear(r);
		return -1;
	}
	version = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	if (version != STORE_SCHEMA_VERSION) {
		err_set(err, errlen, "postgresql: schema version %ld is not this program's %d",
			  version, STORE_SCHEMA_VERSION);
		return -1;
	}
	return 0;
}

static struct store *pg_open(const char *url, char *err, size_t errlen)
{
	/* before dbname, so that the URL's own settings win: a server that does not answer
	 * or a path that silently drops packets is given up on instead of waited for */
	static const char *const keys[] = {"connect_timeout", "keepalives", "keepalives_idle",
					   "keepalives_interval", "keepalives_count", "dbname",
					   "fallback_application_name", NULL};
	const char *const vals[] = {"10", "1", "30", "10", "3", url, "netwall", NULL};
	struct pg_store *p = xcalloc(1, sizeof(*p));

	p->base.ops = &store_pg_ops;
	p->conn = PQconnectdbParams(keys, vals, 1);
	if (p->conn == NULL || PQstatus(p->conn) != CONNECTION_OK) {
		/* libpq's text names the host and the reason; the URL's password is not in it */
		char msg[256];
		size_t len;

		store_copy(msg, sizeof(msg), p->conn ? PQerrorMessage(p->conn) : "out of memory",
			   p->conn ? strlen(PQerrorMessage(p->conn)) : 13);
		len = strlen(msg);
		while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
			msg[--len] = '\0';
		for (size_t i = 0; i < len; i++)
			if (msg[i] == '\n')
				msg[i] = ' ';
		err_set(err, errlen, "postgresql: connect: %s", msg);
		goto fail;
	}
	PQsetNoticeProcessor(p->conn, quiet, NULL);
	if (schema(p, err, errlen) == -1 || session(p, err, errlen) == -1)
		goto fail;
	return &p->base;
fail:
	pg_close(&p->base);
	return NULL;
}

const struct store_ops store_pg_ops = {
	.kind = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.put = pg_put,
	.claim = pg_claim,
	.finish = pg_finish,
	.list = pg_list,
	.get = pg_get,
	.counts = pg_counts,
	.queue_depth = pg_queue_depth,
	.oldest_undelivered = pg_oldest_undelivered,
	.count_states = pg_count_states,
	.relax = pg_relax,
	.release = pg_release,
	.replay = pg_replay,
};
