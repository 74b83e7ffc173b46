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
#include "intake/store_pg_audit.h"
#include "intake/store_pg_conn.h"
#include "intake/store_pg_prune.h"
#include "intake/store_pg_read.h"
#include "intake/store_pg_schema.h"
#include "intake/store_pg_sql.h"

static void quiet(void *arg, const char *message)
{
	/* NOTICEs (e.g. "relation already exists, skipping") are not for stderr */
}

/* The parameters of one "put" statement; the first four also make its "lookup". */
#define PUT_PARAMS 19

struct put_args {
	const char *v[PUT_PARAMS];
	int len[PUT_PARAMS];
	int fmt[PUT_PARAMS];
	struct buf keys[5]; /* the index's arrays, $16 to $19 (the fifth unused) */
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
	a->v[13] = m->warnings != NULL && m->warnings[0] != '\0' ? m->warnings : NULL;
	a->v[14] = m->index->date;
	store_pg_sql_keys(m->index, 1, NULL, m->control_id, a->keys);
	for (int k = 0; k < 4; k++)
		a->v[15 + k] = (const char *)buf_head(&a->keys[k]);
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
		calls[i + 1] = (struct pg_call){"put", PUT_PARAMS, a[i].v, a[i].len, a[i].fmt};
	}
	rc = store_pg_conn_pipeline(p, calls, n + 1, res, "put", err, errlen);
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
	store_pg_conn_clear(res, n + 1);
	if (rc == 0 && late > 0) {
		/* the batch is committed; this only reads the originals */
		if (store_pg_conn_pipeline(p, calls, late, res, "put lookup", err, errlen) == 0) {
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
		store_pg_conn_clear(res, late);
	}
	if (rc == -1)
		put_undo(msgs, n);
	buf_free(&keys);
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < 5; k++)
			buf_free(&a[i].keys[k]);
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
	if (store_pg_conn_begin(p, &used, err, errlen) == -1)
		return -1;
	do
		rc = put_once(p, msgs, n, err, errlen);
	while (rc == -1 && store_pg_conn_again(p, &used, err, errlen));
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
	if (store_pg_conn_pipeline(p, &call, 1, &r, "claim", err, errlen) == -1) {
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

	if (store_pg_conn_begin(p, &used, err, errlen) == -1)
		return -1;
	do
		rc = claim_once(p, owner, now_ms, lease_ms, max, jobs, err, errlen);
	while (rc == -1 && store_pg_conn_again(p, &used, err, errlen));
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
	rc = store_pg_conn_pipeline(p, calls, n, res, "finish", err, errlen);
	store_pg_conn_clear(res, n);
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

	if (store_pg_conn_begin(p, &used, err, errlen) == -1)
		return -1;
	do
		rc = finish_once(p, owner, o, n, err, errlen);
	while (rc == -1 && store_pg_conn_again(p, &used, err, errlen));
	return rc;
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
	r = store_pg_conn_exec(p,
			"UPDATE deliveries SET lease_owner = NULL, lease_until = 0 WHERE "
			"lease_owner = $1::text AND message_id = ANY ($2::bigint[])",
			2, v, "release", err, errlen);
	buf_free(&arr);
	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}
static int pg_merge_keys(struct store *s, size_t max, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	char n[24];
	const char *v[1] = {n};
	PGresult *r;
	int moved;

	snprintf(n, sizeof(n), "%zu", max);
	r = store_pg_conn_prepared(p, "merge_keys", 1, v, err, errlen);
	if (r == NULL)
		return -1;
	moved = (int)store_pg_sql_int(r, 0, 0);
	PQclear(r);
	return moved;
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
	rc = store_pg_conn_pipeline(p, calls, 2, res, "replay", err, errlen);
	if (rc == 0)
		rc = atoi(PQcmdTuples(res[1]));
	store_pg_conn_clear(res, 2);
	return rc;
}

static int pg_replay(struct store *s, int64_t id, enum store_state from, int64_t now_ms,
		     char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	bool used;
	int rc;

	if (store_pg_conn_begin(p, &used, err, errlen) == -1)
		return -1;
	do
		rc = replay_once(p, id, from, now_ms, err, errlen);
	while (rc == -1 && store_pg_conn_again(p, &used, err, errlen));
	return rc;
}

static void pg_close(struct store *s)
{
	struct pg_store *p = (struct pg_store *)s;

	PQfreeCancel(p->cancel);
	pthread_mutex_destroy(&p->cancel_mu);
	PQfinish(p->conn);
	free(p);
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
	pthread_mutex_init(&p->cancel_mu, NULL);
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
	if (store_pg_schema_open(p, err, errlen) == -1 || store_pg_prune_index(p, err, errlen) == -1 ||
	    store_pg_conn_session(p, err, errlen) == -1)
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
	.interrupt = store_pg_conn_interrupt,
	.put = pg_put,
	.claim = pg_claim,
	.finish = pg_finish,
	.list = store_pg_read_list,
	.get = store_pg_read_get,
	.counts = store_pg_read_counts,
	.queue_depth = store_pg_read_depth,
	.oldest_undelivered = store_pg_read_oldest,
	.count_states = store_pg_read_states,
	.relax = store_pg_conn_relax,
	.release = pg_release,
	.merge_keys = pg_merge_keys,
	.audit_add = store_pg_audit_add,
	.audit_list = store_pg_audit_list,
	.replay = pg_replay,
	.prune = store_pg_prune,
	.bytes = store_pg_prune_bytes,
	.compact = store_pg_prune_compact,
	.prune_turn = store_pg_prune_turn,
};