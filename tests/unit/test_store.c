/* Unit tests for hl7/store: the same cases against SQLite (a file in a temporary
 * directory, always) and PostgreSQL (when NETWALL_TEST_PG_URL names a database the tests
 * may wipe: they drop and recreate the store's tables). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "intake/store.h"

#define NOW 1000000 /* claims happen at this time; messages arrive before it */
#define LEASE 30000

struct ctx {
	int pg;
	char spec[512];
	struct store *s;
};

static char tmpdir[256];
static unsigned db_seq;
static const char *pg_url;

static int pg_exec(const char *url, const char *sql)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r;
	int ok;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "pg connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	r = PQexec(c, sql);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "pg exec: %s", PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

static int sqlite_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open(path, &db);

	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		fprintf(stderr, "sqlite exec: %s\n", sqlite3_errmsg(db));
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

/* Runs sql with a separate connection to the test's database. */
static void exec_sql(struct ctx *c, const char *sqlite_sql, const char *pg_sql)
{
	if (c->pg)
		assert_int_equal(pg_exec(c->spec, pg_sql), 0);
	else
		assert_int_equal(sqlite_exec(c->spec, sqlite_sql), 0);
}

static int open_fresh(void **state, int pg)
{
	struct ctx *c = calloc(1, sizeof(*c));
	char err[256] = "";

	c->pg = pg;
	if (pg) {
		snprintf(c->spec, sizeof(c->spec), "%s", pg_url);
		if (pg_exec(pg_url, "DROP TABLE IF EXISTS deliveries, message_keys, "
				    "message_keys_pending, audit, messages, "
				    "netwall_meta CASCADE;"
				    "DROP FUNCTION IF EXISTS boom() CASCADE") == -1)
			return -1;
	} else {
		snprintf(c->spec, sizeof(c->spec), "%s/t%u.db", tmpdir, db_seq++);
	}
	c->s = store_open(c->spec, err, sizeof(err));
	if (c->s == NULL) {
		fprintf(stderr, "store_open: %s\n", err);
		free(c);
		return -1;
	}
	*state = c;
	return 0;
}

static int setup_sqlite(void **state)
{
	return open_fresh(state, 0);
}

static int setup_pg(void **state)
{
	return open_fresh(state, 1);
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	store_close(c->s);
	free(c);
	return 0;
}

static struct store *reopen(struct ctx *c)
{
	char err[256] = "";
	struct store *s = store_open(c->spec, err, sizeof(err));

	if (s == NULL)
		fail_msg("store_open: %s", err);
	return s;
}

static char raw_buf[64][128];
static char ack_buf[64][64];

/* A message with its own key; raw and ack are built in static slots (slot < 64). */
static struct store_msg msg(unsigned slot, const char *cid, const char *type,
			    enum store_state st, int64_t at)
{
	struct store_msg m = {
		.app = "PHARM",
		.facility = "SITE1",
		.control_id = cid,
		.type = type,
		.version = "2.5.1",
		.peer = "127.0.0.1:4000",
		.state = st,
		.received_ms = at,
	};

	snprintf(raw_buf[slot], sizeof(raw_buf[slot]), "MSH|^~\\&|PHARM|SITE1|||x||%s|%s|P|2.5.1\r",
		 type, cid);
	snprintf(ack_buf[slot], sizeof(ack_buf[slot]), "MSA|AA|%s|slot%u\r", cid, slot);
	m.raw = raw_buf[slot];
	m.raw_len = strlen(raw_buf[slot]);
	m.ack = ack_buf[slot];
	m.ack_len = strlen(ack_buf[slot]);
	return m;
}

static void put_ok(struct store *s, struct store_msg *m, size_t n)
{
	char err[256] = "";

	if (store_put(s, m, n, err, sizeof(err)) != 0)
		fail_msg("store_put: %s", err);
}

static void put_one(struct store *s, unsigned slot, const char *cid, const char *type,
		    enum store_state st, int64_t at, int64_t *id)
{
	struct store_msg m = msg(slot, cid, type, st, at);

	put_ok(s, &m, 1);
	assert_false(m.duplicate);
	assert_true(m.id > 0);
	buf_free(&m.orig_ack);
	if (id != NULL)
		*id = m.id;
}

static uint64_t depth(struct store *s)
{
	uint64_t n = 999;
	char err[256];

	assert_int_equal(store_queue_depth(s, &n, err, sizeof(err)), 0);
	return n;
}

static uint64_t count_of(struct store *s, enum store_state st, const char *type)
{
	struct store_count *cs = NULL;
	char err[256];
	int n = store_counts(s, &cs, err, sizeof(err));
	uint64_t total = 0;

	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		if (cs[i].state == st && (type == NULL || strcmp(cs[i].type, type) == 0))
			total += cs[i].n;
	}
	free(cs);
	return total;
}

static uint64_t count_all(struct store *s)
{
	uint64_t total = 0;

	for (int st = 0; st < STORE_NSTATES; st++)
		total += count_of(s, (enum store_state)st, NULL);
	return total;
}

static void get_row(struct store *s, int64_t id, struct store_row *row)
{
	char err[256] = "";

	if (store_get(s, id, row, err, sizeof(err)) != 1)
		fail_msg("store_get %lld: %s", (long long)id, err);
}

static int claim(struct store *s, const char *owner, int64_t now, size_t max,
		 struct store_job **jobs)
{
	char err[256] = "";
	int n = store_claim(s, owner, now, LEASE, max, jobs, err, sizeof(err));

	if (n < 0)
		fail_msg("store_claim: %s", err);
	return n;
}

static void finish(struct store *s, const char *owner, int64_t id, enum store_state st,
		   int status, int64_t next)
{
	struct store_outcome o = {.id = id, .state = st, .next_ms = next, .at_ms = NOW + 5,
				  .http_status = status, .detail = status ? "answer" : "timeout"};
	char err[256] = "";

	if (store_finish(s, owner, &o, 1, err, sizeof(err)) != 0)
		fail_msg("store_finish: %s", err);
}

/* ---------------------------------------------------------------- cases */

static void test_state_names(void **state)
{
	enum store_state st;

	for (int i = 0; i < STORE_NSTATES; i++) {
		assert_int_equal(store_state_parse(store_state_name((enum store_state)i), &st), 0);
		assert_int_equal(st, i);
	}
	assert_string_equal(store_state_name(STORE_DEAD), "dead");
	assert_int_equal(store_state_parse("Dead", &st), -1);
	assert_int_equal(store_state_parse("", &st), -1);
	assert_int_equal(store_state_parse(NULL, &st), -1);
}

static void test_put_get(void **state)
{
	struct ctx *c = *state;
	struct store_msg m[3] = {
		msg(0, "C1", "RDE^O11", STORE_RECEIVED, 100),
		msg(1, "C2", "ADT^A01", STORE_IGNORED, 101),
		msg(2, "C3", "ORU^R01", STORE_REJECTED, 102),
	};
	struct store_row row;
	char err[256];

	assert_string_equal(store_kind(c->s), c->pg ? "postgresql" : "sqlite");
	put_ok(c->s, m, 3);
	for (int i = 0; i < 3; i++) {
		assert_false(m[i].duplicate);
		assert_true(m[i].id > 0);
		assert_int_equal(m[i].orig_ack.len, 0);
	}
	assert_true(m[0].id < m[1].id && m[1].id < m[2].id);

	get_row(c->s, m[0].id, &row);
	assert_int_equal(row.id, m[0].id);
	assert_int_equal(row.state, STORE_RECEIVED);
	assert_string_equal(row.app, "PHARM");
	assert_string_equal(row.facility, "SITE1");
	assert_string_equal(row.control_id, "C1");
	assert_string_equal(row.type, "RDE^O11");
	assert_string_equal(row.version, "2.5.1");
	assert_string_equal(row.peer, "127.0.0.1:4000");
	assert_int_equal(row.received_ms, 100);
	assert_int_equal(row.updated_ms, 100);
	assert_int_equal(row.attempts, 0);
	assert_int_equal(row.http_status, 0);
	assert_null(row.detail);
	assert_int_equal(row.raw_len, m[0].raw_len);
	assert_memory_equal(row.raw, m[0].raw, m[0].raw_len);
	assert_int_equal(row.ack_len, m[0].ack_len);
	assert_memory_equal(row.ack, m[0].ack, m[0].ack_len);
	store_row_clear(&row);

	get_row(c->s, m[2].id, &row);
	assert_int_equal(row.state, STORE_REJECTED);
	store_row_clear(&row);

	assert_int_equal(store_get(c->s, m[2].id + 1000, &row, err, sizeof(err)), 0);
	/* only RECEIVED creates a job */
	assert_int_equal(depth(c->s), 1);
}

static void test_binary_raw(void **state)
{
	struct ctx *c = *state;
	unsigned char raw[4096];
	struct store_msg m = msg(0, "BIN", "RDE^O11", STORE_RECEIVED, 1);
	struct store_row row;

	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(i * 7);
	m.raw = raw;
	m.raw_len = sizeof(raw);
	m.ack = "";
	m.ack_len = 0;
	put_ok(c->s, &m, 1);
	get_row(c->s, m.id, &row);
	assert_int_equal(row.raw_len, sizeof(raw));
	assert_memory_equal(row.raw, raw, sizeof(raw));
	assert_int_equal(row.ack_len, 0);
	store_row_clear(&row);
}

static void test_dedupe(void **state)
{
	struct ctx *c = *state;
	struct store_msg a = msg(0, "D1", "RDE^O11", STORE_RECEIVED, 10);
	struct store_msg again = msg(1, "D1", "RDE^O11", STORE_RECEIVED, 20);
	struct store_msg other_app = msg(2, "D1", "RDE^O11", STORE_RECEIVED, 21);
	struct store_msg batch[3] = {
		msg(3, "D2", "RDE^O11", STORE_RECEIVED, 30),
		msg(4, "D2", "RDE^O11", STORE_RECEIVED, 31),
		msg(5, "D1", "RDE^O11", STORE_IGNORED, 32),
	};
	struct store_row row;

	put_ok(c->s, &a, 1);
	put_ok(c->s, &again, 1);
	assert_true(again.duplicate);
	assert_int_equal(again.id, a.id);
	assert_int_equal(again.orig_ack.len, a.ack_len);
	assert_memory_equal(buf_head(&again.orig_ack), a.ack, a.ack_len);
	buf_free(&again.orig_ack);

	/* the key is (application, facility, control id) */
	other_app.app = "OTHER";
	put_ok(c->s, &other_app, 1);
	assert_false(other_app.duplicate);
	assert_true(other_app.id != a.id);

	/* duplicates within a batch see the earlier rows */
	put_ok(c->s, batch, 3);
	assert_false(batch[0].duplicate);
	assert_true(batch[1].duplicate);
	assert_int_equal(batch[1].id, batch[0].id);
	assert_int_equal(batch[1].orig_ack.len, batch[0].ack_len);
	assert_memory_equal(buf_head(&batch[1].orig_ack), batch[0].ack, batch[0].ack_len);
	assert_true(batch[2].duplicate);
	assert_int_equal(batch[2].id, a.id);
	assert_memory_equal(buf_head(&batch[2].orig_ack), a.ack, a.ack_len);
	for (int i = 0; i < 3; i++)
		buf_free(&batch[i].orig_ack);

	/* no second row, no second job; the original is untouched */
	assert_int_equal(count_all(c->s), 3);
	assert_int_equal(depth(c->s), 3);
	get_row(c->s, a.id, &row);
	assert_int_equal(row.received_ms, 10);
	assert_memory_equal(row.ack, a.ack, a.ack_len);
	store_row_clear(&row);
}

static void test_counts(void **state)
{
	struct ctx *c = *state;
	struct store_count *cs = NULL;
	char err[256];
	int n;

	assert_int_equal(store_counts(c->s, &cs, err, sizeof(err)), 0);
	free(cs);
	put_one(c->s, 0, "N1", "RDE^O11", STORE_RECEIVED, 1, NULL);
	put_one(c->s, 1, "N2", "RDE^O11", STORE_RECEIVED, 2, NULL);
	put_one(c->s, 2, "N3", "RDS^O13", STORE_RECEIVED, 3, NULL);
	put_one(c->s, 3, "N4", "ADT^A01", STORE_IGNORED, 4, NULL);
	put_one(c->s, 4, "N5", "ADT^A08", STORE_IGNORED, 5, NULL);
	put_one(c->s, 5, "N6", "ORU^R01", STORE_REJECTED, 6, NULL);

	n = store_counts(c->s, &cs, err, sizeof(err));
	assert_int_equal(n, 5);
	free(cs);
	assert_int_equal(count_of(c->s, STORE_RECEIVED, "RDE^O11"), 2);
	assert_int_equal(count_of(c->s, STORE_RECEIVED, "RDS^O13"), 1);
	assert_int_equal(count_of(c->s, STORE_IGNORED, NULL), 2);
	assert_int_equal(count_of(c->s, STORE_REJECTED, "ORU^R01"), 1);
	assert_int_equal(count_of(c->s, STORE_DEAD, NULL), 0);
	assert_int_equal(depth(c->s), 3);
}

static int list(struct store *s, int st, const char *type, int64_t before, size_t limit,
		struct store_row **rows)
{
	struct store_filter f = {.state = st, .type = type, .before_id = before, .limit = limit};
	char err[256] = "";
	int n = store_list(s, &f, rows, err, sizeof(err));

	if (n < 0)
		fail_msg("store_list: %s", err);
	return n;
}

static void test_list(void **state)
{
	struct ctx *c = *state;
	static const char *const types[] = {"RDE^O11", "RDE^O25", "RDS^O13", "ADT^A01", "RDE"};
	int64_t ids[10];
	struct store_row *rows;
	char cid[16];
	int n;

	for (unsigned i = 0; i < 10; i++) {
		snprintf(cid, sizeof(cid), "L%u", i);
		put_one(c->s, i, cid, types[i % 5], i % 5 == 3 ? STORE_IGNORED : STORE_RECEIVED,
			100 + i, &ids[i]);
	}
	n = list(c->s, -1, NULL, 0, 0, &rows);
	assert_int_equal(n, 10);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(rows[i].id, ids[9 - i]); /* newest first */
		assert_null(rows[i].raw);
		assert_null(rows[i].ack);
	}
	assert_string_equal(rows[0].control_id, "L9");
	assert_string_equal(rows[0].type, "RDE");
	store_rows_free(rows, (size_t)n);

	n = list(c->s, STORE_IGNORED, NULL, 0, 0, &rows);
	assert_int_equal(n, 2);
	assert_int_equal(rows[0].id, ids[8]);
	assert_int_equal(rows[1].id, ids[3]);
	store_rows_free(rows, (size_t)n);

	n = list(c->s, -1, "RDE^O11", 0, 0, &rows); /* exact */
	assert_int_equal(n, 2);
	assert_int_equal(rows[0].id, ids[5]);
	store_rows_free(rows, (size_t)n);

	n = list(c->s, -1, "RDE", 0, 0, &rows); /* prefix: RDE^O11, RDE^O25 and plain RDE */
	assert_int_equal(n, 6);
	for (int i = 0; i < n; i++)
		assert_int_equal(strncmp(rows[i].type, "RDE", 3), 0);
	store_rows_free(rows, (size_t)n);

	n = list(c->s, -1, "RD", 0, 0, &rows); /* a code prefix is not a code */
	assert_int_equal(n, 0);
	store_rows_free(rows, (size_t)n);

	n = list(c->s, STORE_RECEIVED, "RDE", ids[6], 2, &rows); /* paging */
	assert_int_equal(n, 2);
	assert_int_equal(rows[0].id, ids[5]);
	assert_int_equal(rows[1].id, ids[4]);
	store_rows_free(rows, (size_t)n);

	n = list(c->s, -1, NULL, 0, 3, &rows);
	assert_int_equal(n, 3);
	store_rows_free(rows, (size_t)n);
	assert_int_equal(store_list(c->s, NULL, &rows, NULL, 0), 10);
	store_rows_free(rows, 10);
}

static void test_claim_lease_expiry(void **state)
{
	struct ctx *c = *state;
	int64_t ids[3];
	struct store_job *jobs;
	int n;

	put_one(c->s, 0, "J0", "RDE^O11", STORE_RECEIVED, 100, &ids[0]);
	put_one(c->s, 1, "J1", "RDE^O11", STORE_IGNORED, 101, NULL);
	put_one(c->s, 2, "J2", "RDS^O13", STORE_RECEIVED, 102, &ids[1]);
	put_one(c->s, 3, "J3", "RDE^O11", STORE_RECEIVED, NOW + 100, &ids[2]); /* not due */

	assert_int_equal(claim(c->s, "w1", 50, 10, &jobs), 0); /* nothing due yet */
	store_jobs_free(jobs, 0);

	n = claim(c->s, "w1", NOW, 1, &jobs);
	assert_int_equal(n, 1);
	assert_int_equal(jobs[0].id, ids[0]); /* oldest first */
	assert_int_equal(jobs[0].attempts, 0);
	assert_string_equal(jobs[0].type, "RDE^O11");
	assert_string_equal(jobs[0].control_id, "J0");
	assert_string_equal(jobs[0].app, "PHARM");
	assert_string_equal(jobs[0].facility, "SITE1");
	assert_int_equal(jobs[0].raw_len, strlen(raw_buf[0]));
	assert_memory_equal(jobs[0].raw, raw_buf[0], jobs[0].raw_len);
	store_jobs_free(jobs, (size_t)n);

	n = claim(c->s, "w2", NOW, 10, &jobs);
	assert_int_equal(n, 1);
	assert_int_equal(jobs[0].id, ids[1]);
	store_jobs_free(jobs, (size_t)n);
	assert_int_equal(claim(c->s, "w2", NOW + 1, 10, &jobs), 0); /* all leased */
	store_jobs_free(jobs, 0);

	/* leases expire: all three are due and free at NOW + LEASE */
	n = claim(c->s, "w3", NOW + LEASE, 10, &jobs);
	assert_int_equal(n, 3);
	assert_int_equal(jobs[0].id, ids[0]);
	assert_int_equal(jobs[1].id, ids[1]);
	assert_int_equal(jobs[2].id, ids[2]);
	store_jobs_free(jobs, (size_t)n);
	assert_int_equal(depth(c->s), 3);
}

/* A worker that stops gives back the leases of jobs it never tried: another takes them at
 * once; leases held by someone else are not touched. */
static void test_release(void **state)
{
	struct ctx *c = *state;
	int64_t ids[3], back[2];
	struct store_job *jobs;
	char err[256];
	int n;

	put_one(c->s, 0, "R0", "RDE^O11", STORE_RECEIVED, 100, &ids[0]);
	put_one(c->s, 1, "R1", "RDE^O11", STORE_RECEIVED, 101, &ids[1]);
	put_one(c->s, 2, "R2", "RDE^O11", STORE_RECEIVED, 102, &ids[2]);
	n = claim(c->s, "w1", NOW, 10, &jobs);
	assert_int_equal(n, 3);
	store_jobs_free(jobs, (size_t)n);
	back[0] = ids[1];
	back[1] = ids[2];
	assert_int_equal(store_release(c->s, "w2", back, 2, err, sizeof(err)), 0); /* not w2's */
	assert_int_equal(claim(c->s, "w2", NOW + 1, 10, &jobs), 0);
	store_jobs_free(jobs, 0);
	assert_int_equal(store_release(c->s, "w1", back, 2, err, sizeof(err)), 0);
	n = claim(c->s, "w2", NOW + 1, 10, &jobs);
	assert_int_equal(n, 2);
	assert_int_equal(jobs[0].id, ids[1]);
	assert_int_equal(jobs[1].id, ids[2]);
	assert_int_equal(jobs[0].attempts, 0);
	store_jobs_free(jobs, (size_t)n);
	assert_int_equal(store_release(c->s, "w1", back, 0, err, sizeof(err)), 0);
}

#define CONC_JOBS 300

static pthread_barrier_t claim_start;

struct claimer {
	struct store *s;
	const char *owner;
	int64_t got[CONC_JOBS];
	size_t n;
	int failed;
};

static void *claim_loop(void *arg)
{
	struct claimer *w = arg;
	char err[256];

	pthread_barrier_wait(&claim_start);
	for (;;) {
		struct store_job *jobs;
		int n = store_claim(w->s, w->owner, NOW, LEASE, 3, &jobs, err, sizeof(err));

		if (n < 0) {
			fprintf(stderr, "claim: %s\n", err);
			w->failed = 1;
			return NULL;
		}
		if (n == 0)
			return NULL;
		for (int i = 0; i < n && w->n < CONC_JOBS; i++)
			w->got[w->n++] = jobs[i].id;
		store_jobs_free(jobs, (size_t)n);
		usleep(500); /* a worker does something between claims */
	}
}

static void test_claim_concurrent(void **state)
{
	struct ctx *c = *state;
	static struct store_msg m[CONC_JOBS];
	static char cids[CONC_JOBS][16];
	static struct claimer w[2];
	pthread_t t[2];
	static unsigned char seen[CONC_JOBS + 1];
	int64_t first;

	for (int i = 0; i < CONC_JOBS; i++) {
		snprintf(cids[i], sizeof(cids[i]), "K%d", i);
		m[i] = msg(0, cids[i], "RDE^O11", STORE_RECEIVED, 100);
	}
	put_ok(c->s, m, CONC_JOBS);
	first = m[0].id;
	memset(w, 0, sizeof(w));
	memset(seen, 0, sizeof(seen));
	w[0].s = c->s;
	w[0].owner = "a";
	w[1].s = reopen(c);
	w[1].owner = "b";
	pthread_barrier_init(&claim_start, NULL, 2);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, claim_loop, &w[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&claim_start);
	store_close(w[1].s);
	assert_false(w[0].failed);
	assert_false(w[1].failed);
	assert_int_equal(w[0].n + w[1].n, CONC_JOBS);
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < w[k].n; i++) {
			int64_t off = w[k].got[i] - first;

			assert_true(off >= 0 && off < CONC_JOBS);
			if (seen[off])
				fail_msg("job %lld claimed twice", (long long)w[k].got[i]);
			seen[off] = 1;
		}
	}
	printf("concurrent claims: a=%zu b=%zu\n", w[0].n, w[1].n);
}

static void test_finish(void **state)
{
	struct ctx *c = *state;
	int64_t ids[4];
	struct store_job *jobs;
	struct store_row row;
	int n;

	for (unsigned i = 0; i < 4; i++) {
		char cid[8];

		snprintf(cid, sizeof(cid), "F%u", i);
		put_one(c->s, i, cid, "RDE^O11", STORE_RECEIVED, 100 + i, &ids[i]);
	}
	n = claim(c->s, "w1", NOW, 10, &jobs);
	assert_int_equal(n, 4);
	store_jobs_free(jobs, (size_t)n);

	finish(c->s, "w1", ids[0], STORE_DELIVERED, 201, 0);
	finish(c->s, "w1", ids[1], STORE_FAILED, 503, NOW + 1000);
	finish(c->s, "w1", ids[2], STORE_DEAD, 400, 0);
	finish(c->s, "intruder", ids[3], STORE_DELIVERED, 200, 0); /* not its lease */

	get_row(c->s, ids[0], &row);
	assert_int_equal(row.state, STORE_DELIVERED);
	assert_int_equal(row.attempts, 1);
	assert_int_equal(row.http_status, 201);
	assert_string_equal(row.detail, "answer");
	assert_int_equal(row.updated_ms, NOW + 5);
	store_row_clear(&row);
	get_row(c->s, ids[1], &row);
	assert_int_equal(row.state, STORE_FAILED);
	assert_int_equal(row.attempts, 1);
	assert_int_equal(row.http_status, 503);
	store_row_clear(&row);
	get_row(c->s, ids[2], &row);
	assert_int_equal(row.state, STORE_DEAD);
	store_row_clear(&row);
	get_row(c->s, ids[3], &row);
	assert_int_equal(row.state, STORE_RECEIVED);
	assert_int_equal(row.attempts, 0);
	store_row_clear(&row);

	/* the failed one and the untouched one stay queued */
	assert_int_equal(depth(c->s), 2);
	/* the failed one is not due before next_ms, even though its lease is gone */
	assert_int_equal(claim(c->s, "w2", NOW + 999, 10, &jobs), 0);
	store_jobs_free(jobs, 0);
	n = claim(c->s, "w2", NOW + 1000, 10, &jobs);
	assert_int_equal(n, 1);
	assert_int_equal(jobs[0].id, ids[1]);
	assert_int_equal(jobs[0].attempts, 1);
	store_jobs_free(jobs, (size_t)n);

	/* a second failure, then out of attempts: dead, job gone */
	finish(c->s, "w2", ids[1], STORE_FAILED, 0, NOW + 2000);
	n = claim(c->s, "w2", NOW + 2000, 10, &jobs);
	assert_int_equal(n, 1);
	assert_int_equal(jobs[0].attempts, 2);
	store_jobs_free(jobs, (size_t)n);
	finish(c->s, "w2", ids[1], STORE_DEAD, 0, 0);
	get_row(c->s, ids[1], &row);
	assert_int_equal(row.state, STORE_DEAD);
	assert_int_equal(row.attempts, 3);
	assert_int_equal(row.http_status, 0);
	assert_string_equal(row.detail, "timeout");
	store_row_clear(&row);
	assert_int_equal(depth(c->s), 1);

	/* an expired lease claimed by another owner is not the first owner's any more */
	n = claim(c->s, "w3", NOW + 2 * LEASE, 10, &jobs);
	assert_int_equal(n, 1);
	assert_int_equal(jobs[0].id, ids[3]);
	store_jobs_free(jobs, (size_t)n);
	finish(c->s, "w1", ids[3], STORE_DELIVERED, 200, 0);
	get_row(c->s, ids[3], &row);
	assert_int_equal(row.state, STORE_RECEIVED);
	store_row_clear(&row);
	finish(c->s, "w3", ids[3], STORE_DELIVERED, 200, 0);
	assert_int_equal(depth(c->s), 0);
}

static void test_finish_batch(void **state)
{
	struct ctx *c = *state;
	int64_t ids[3];
	struct store_job *jobs;
	struct store_outcome o[3];
	char err[256];
	int n;

	for (unsigned i = 0; i < 3; i++) {
		char cid[8];

		snprintf(cid, sizeof(cid), "B%u", i);
		put_one(c->s, i, cid, "RDE^O11", STORE_RECEIVED, 100, &ids[i]);
	}
	n = claim(c->s, "w", NOW, 10, &jobs);
	assert_int_equal(n, 3);
	store_jobs_free(jobs, (size_t)n);
	for (int i = 0; i < 3; i++) {
		o[i] = (struct store_outcome){.id = ids[i], .state = STORE_DELIVERED, .at_ms = NOW,
					      .http_status = 200, .detail = NULL};
	}
	assert_int_equal(store_finish(c->s, "w", o, 3, err, sizeof(err)), 0);
	assert_int_equal(count_of(c->s, STORE_DELIVERED, NULL), 3);
	assert_int_equal(depth(c->s), 0);
	o[0].state = STORE_RECEIVED; /* not an outcome */
	assert_int_equal(store_finish(c->s, "w", o, 1, err, sizeof(err)), -1);
}

static void test_replay(void **state)
{
	struct ctx *c = *state;
	int64_t ids[5];
	struct store_job *jobs;
	struct store_row row;
	char err[256];
	int n;

	for (unsigned i = 0; i < 5; i++) {
		char cid[8];

		snprintf(cid, sizeof(cid), "R%u", i);
		put_one(c->s, i, cid, "RDE^O11", i == 4 ? STORE_IGNORED : STORE_RECEIVED, 100,
			&ids[i]);
	}
	n = claim(c->s, "w", NOW, 10, &jobs);
	assert_int_equal(n, 4);
	store_jobs_free(jobs, (size_t)n);
	finish(c->s, "w", ids[0], STORE_DEAD, 400, 0);
	finish(c->s, "w", ids[1], STORE_DEAD, 404, 0);
	finish(c->s, "w", ids[2], STORE_DELIVERED, 200, 0);
	finish(c->s, "w", ids[3], STORE_FAILED, 500, NOW + 100000);
	assert_int_equal(depth(c->s), 1);

	/* one by id */
	assert_int_equal(store_replay(c->s, ids[2], STORE_DEAD, err, sizeof(err)), 1);
	get_row(c->s, ids[2], &row);
	assert_int_equal(row.state, STORE_RECEIVED);
	assert_int_equal(row.attempts, 0);
	store_row_clear(&row);
	assert_int_equal(depth(c->s), 2);
	/* not replayable: RECEIVED (just replayed) and IGNORED; unknown ids */
	assert_int_equal(store_replay(c->s, ids[2], STORE_DEAD, err, sizeof(err)), 0);
	assert_int_equal(store_replay(c->s, ids[4], STORE_DEAD, err, sizeof(err)), 0);
	assert_int_equal(store_replay(c->s, ids[4] + 100, STORE_DEAD, err, sizeof(err)), 0);

	/* every dead one */
	assert_int_equal(store_replay(c->s, 0, STORE_DEAD, err, sizeof(err)), 2);
	assert_int_equal(count_of(c->s, STORE_DEAD, NULL), 0);
	assert_int_equal(depth(c->s), 4);
	/* every failed one: due now (the job existed with a later next_ms) */
	assert_int_equal(store_replay(c->s, 0, STORE_FAILED, err, sizeof(err)), 1);
	assert_int_equal(depth(c->s), 4);
	assert_int_equal(store_replay(c->s, 0, STORE_DELIVERED, err, sizeof(err)), -1);

	/* replayed jobs are due now, with attempts reset */
	n = store_claim(c->s, "w2", INT64_MAX / 4, LEASE, 10, &jobs, err, sizeof(err));
	assert_int_equal(n, 4);
	for (int i = 0; i < n; i++)
		assert_int_equal(jobs[i].attempts, 0);
	store_jobs_free(jobs, (size_t)n);
}

/* A batch that fails part way stores nothing at all, and the store goes on working. */
static void test_put_rollback(void **state)
{
	struct ctx *c = *state;
	struct store_msg m[3] = {
		msg(0, "X1", "RDE^O11", STORE_RECEIVED, 1),
		msg(1, "X2", "RDE^O11", STORE_RECEIVED, 2),
		msg(2, "BOOM", "RDE^O11", STORE_RECEIVED, 3),
	};
	struct store_msg dup;
	char err[256] = "";

	put_one(c->s, 3, "X0", "RDE^O11", STORE_RECEIVED, 0, NULL);
	exec_sql(c,
		 "CREATE TRIGGER boom BEFORE INSERT ON messages WHEN NEW.control_id = 'BOOM' "
		 "BEGIN SELECT RAISE(ABORT, 'boom'); END",
		 "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
		 "IF NEW.control_id = 'BOOM' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; "
		 "END $$; CREATE TRIGGER boom BEFORE INSERT ON messages FOR EACH ROW "
		 "EXECUTE FUNCTION boom()");
	m[0].app = "PHARM"; /* also a duplicate in the failing batch */
	dup = msg(4, "X0", "RDE^O11", STORE_RECEIVED, 4);
	{
		/* the failing one in the middle: statements after it are skipped too */
		struct store_msg b[4] = {m[0], dup, m[2], m[1]};

		assert_int_equal(store_put(c->s, b, 4, err, sizeof(err)), -1);
		assert_true(err[0] != '\0');
		assert_null(strstr(err, "MSH"));
		assert_null(strstr(err, "BOOM"));
		for (int i = 0; i < 4; i++) {
			assert_false(b[i].duplicate);
			assert_int_equal(b[i].id, 0);
			assert_int_equal(b[i].orig_ack.len, 0);
		}
	}
	assert_int_equal(count_all(c->s), 1);
	assert_int_equal(depth(c->s), 1);
	printf("failed put: %s\n", err);

	/* the connection is usable after the rollback */
	put_ok(c->s, m, 2);
	assert_false(m[0].duplicate);
	assert_false(m[1].duplicate);
	assert_int_equal(count_all(c->s), 3);
	assert_int_equal(depth(c->s), 3);
}

static void test_header_text_cleaned(void **state)
{
	struct ctx *c = *state;
	struct store_msg a = msg(0, "U1", "RDE^O11", STORE_RECEIVED, 1);
	struct store_msg b = msg(1, "U1", "RDE^O11", STORE_RECEIVED, 2);
	struct store_row row;
	const char *latin1 = "H\xf4pital\x01";

	a.facility = latin1;
	b.facility = latin1;
	put_ok(c->s, &a, 1);
	assert_ptr_equal(a.facility, latin1); /* the caller's pointers are put back */
	put_ok(c->s, &b, 1);
	assert_true(b.duplicate);
	assert_int_equal(b.id, a.id);
	buf_free(&b.orig_ack);
	get_row(c->s, a.id, &row);
	assert_string_equal(row.facility, "H\\xF4pital\\x01");
	store_row_clear(&row);
	/* valid UTF-8 is kept as it is */
	a = msg(2, "U2", "RDE^O11", STORE_RECEIVED, 3);
	a.facility = "H\xc3\xb4pital";
	put_ok(c->s, &a, 1);
	get_row(c->s, a.id, &row);
	assert_string_equal(row.facility, "H\xc3\xb4pital");
	store_row_clear(&row);
}

#define RACE_KEYS 200

struct racer {
	struct store *s;
	struct store_msg m[RACE_KEYS];
	char cid[RACE_KEYS][16];
	unsigned fresh;
	int failed;
};

static void *race_loop(void *arg)
{
	struct racer *w = arg;
	char err[256];

	pthread_barrier_wait(&claim_start);
	for (size_t i = 0; i < RACE_KEYS; i += 10) {
		if (store_put(w->s, &w->m[i], 10, err, sizeof(err)) != 0) {
			fprintf(stderr, "put: %s\n", err);
			w->failed = 1;
			return NULL;
		}
	}
	return NULL;
}

/* Two connections store the same keys at the same time: each key is stored once, and
 * the loser of each race gets the winner's id and ACK. */
static void test_put_concurrent_same_keys(void **state)
{
	struct ctx *c = *state;
	static struct racer w[2];
	pthread_t t[2];

	memset(w, 0, sizeof(w));
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < RACE_KEYS; i++) {
			snprintf(w[k].cid[i], sizeof(w[k].cid[i]), "Q%d", i);
			w[k].m[i] = msg((unsigned)k, w[k].cid[i], "RDE^O11", STORE_RECEIVED, 5);
		}
	}
	w[0].s = c->s;
	w[1].s = reopen(c);
	pthread_barrier_init(&claim_start, NULL, 2);
	for (int k = 0; k < 2; k++)
		assert_int_equal(pthread_create(&t[k], NULL, race_loop, &w[k]), 0);
	for (int k = 0; k < 2; k++)
		pthread_join(t[k], NULL);
	pthread_barrier_destroy(&claim_start);
	store_close(w[1].s);
	assert_false(w[0].failed);
	assert_false(w[1].failed);
	for (int i = 0; i < RACE_KEYS; i++) {
		struct store_msg *a = &w[0].m[i], *b = &w[1].m[i];

		assert_true(a->duplicate != b->duplicate);
		assert_true(a->id > 0);
		assert_int_equal(a->id, b->id);
		if (a->duplicate)
			assert_memory_equal(buf_head(&a->orig_ack), b->ack, b->ack_len);
		else
			assert_memory_equal(buf_head(&b->orig_ack), a->ack, a->ack_len);
		buf_free(&a->orig_ack);
		buf_free(&b->orig_ack);
	}
	assert_int_equal(count_all(c->s), RACE_KEYS);
	assert_int_equal(depth(c->s), RACE_KEYS);
}


/* Two connections store the same keys at the same time, each with its own message (other
 * bytes): every message is stored, and of each key's two rows exactly one is flagged
 * reused, whichever came second. */
static void test_put_concurrent_reused_keys(void **state)
{
	struct ctx *c = *state;
	static struct racer w[2];
	static char raws[2][RACE_KEYS][48];
	pthread_t t[2];

	memset(w, 0, sizeof(w));
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < RACE_KEYS; i++) {
			snprintf(w[k].cid[i], sizeof(w[k].cid[i]), "W%d", i);
			w[k].m[i] = msg((unsigned)k, w[k].cid[i], "RDE^O11", STORE_RECEIVED, 5);
			snprintf(raws[k][i], sizeof(raws[k][i]), "MSH|^~\\&|writer %d|W%d\r", k, i);
			w[k].m[i].raw = raws[k][i];
			w[k].m[i].raw_len = strlen(raws[k][i]);
		}
	}
	w[0].s = c->s;
	w[1].s = reopen(c);
	pthread_barrier_init(&claim_start, NULL, 2);
	for (int k = 0; k < 2; k++)
		assert_int_equal(pthread_create(&t[k], NULL, race_loop, &w[k]), 0);
	for (int k = 0; k < 2; k++)
		pthread_join(t[k], NULL);
	pthread_barrier_destroy(&claim_start);
	store_close(w[1].s);
	assert_false(w[0].failed);
	assert_false(w[1].failed);
	for (int i = 0; i < RACE_KEYS; i++) {
		struct store_msg *a = &w[0].m[i], *b = &w[1].m[i];

		assert_false(a->duplicate || b->duplicate);
		assert_true(a->id > 0 && b->id > 0 && a->id != b->id);
		assert_true(a->reused != b->reused);
		assert_true(a->reused ? a->id > b->id : b->id > a->id);
	}
	assert_int_equal(count_all(c->s), 2 * RACE_KEYS);
	assert_int_equal(depth(c->s), 2 * RACE_KEYS);
}

/* PostgreSQL only: the server drops the store's connection; the next calls reconnect. */
static void test_pg_reconnect(void **state)
{
	struct ctx *c = *state;
	static const char kill_sql[] =
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
		"WHERE application_name = 'netwall' AND pid <> pg_backend_pid()";
	struct store_row *rows;
	struct store_job *jobs;
	int n;

	put_one(c->s, 0, "P1", "RDE^O11", STORE_RECEIVED, 1, NULL);
	exec_sql(c, NULL, kill_sql);
	put_one(c->s, 1, "P2", "RDE^O11", STORE_RECEIVED, 2, NULL);
	exec_sql(c, NULL, kill_sql);
	n = list(c->s, -1, NULL, 0, 0, &rows);
	assert_int_equal(n, 2);
	store_rows_free(rows, (size_t)n);
	exec_sql(c, NULL, kill_sql);
	n = claim(c->s, "w", NOW, 10, &jobs);
	assert_int_equal(n, 2);
	store_jobs_free(jobs, (size_t)n);
	exec_sql(c, NULL, kill_sql);
	assert_int_equal(depth(c->s), 2);
}

static void test_bad_arguments(void **state)
{
	struct ctx *c = *state;
	struct store_msg m = msg(0, "A1", "RDE^O11", STORE_DELIVERED, 1);
	struct store_job *jobs;
	char err[256];

	assert_int_equal(store_put(c->s, &m, 1, err, sizeof(err)), -1);
	assert_int_equal(store_put(c->s, &m, 0, err, sizeof(err)), 0);
	assert_int_equal(store_claim(c->s, "", NOW, LEASE, 1, &jobs, err, sizeof(err)), -1);
	assert_int_equal(store_claim(c->s, "w", NOW, 0, 1, &jobs, err, sizeof(err)), -1);
	assert_int_equal(count_all(c->s), 0);
}

/* SQLite only: the disk fills up part way through a batch (RLIMIT_FSIZE stands in for a
 * full disk); nothing of the batch is stored, and the store works once there is room. */
static void test_sqlite_disk_full(void **state)
{
	struct ctx *c = *state;
	enum { N = 64, SIZE = 64 * 1024 };
	static struct store_msg m[N];
	static char cids[N][16];
	char *big = malloc(SIZE);
	struct rlimit old, lim;
	char err[256] = "";
	int rc;

	memset(big, 'x', SIZE);
	put_one(c->s, 0, "FULL0", "RDE^O11", STORE_RECEIVED, 0, NULL);
	for (int i = 0; i < N; i++) {
		snprintf(cids[i], sizeof(cids[i]), "FULL%d", i + 1);
		m[i] = msg(1, cids[i], "RDE^O11", STORE_RECEIVED, 1);
		m[i].raw = big;
		m[i].raw_len = SIZE;
	}
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1024 * 1024; /* the batch needs about 4 MiB */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rc = store_put(c->s, m, N, err, sizeof(err));
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(rc, -1);
	printf("disk full: %s\n", err);
	assert_true(strstr(err, "full") != NULL || strstr(err, "I/O") != NULL);
	assert_int_equal(count_all(c->s), 1);
	assert_int_equal(depth(c->s), 1);
	put_ok(c->s, m, N);
	assert_int_equal(count_all(c->s), N + 1);
	free(big);
}

static void test_open_errors(void **state)
{
	char err[256] = "";

	assert_null(store_open("", err, sizeof(err)));
	assert_true(err[0] != '\0');
	assert_null(store_open("/nonexistent-dir/x/y.db", err, sizeof(err)));
	assert_non_null(strstr(err, "sqlite"));
	assert_null(store_open("postgresql://127.0.0.1:1/nothing?connect_timeout=2", err,
			       sizeof(err)));
	assert_non_null(strstr(err, "postgresql"));
}


/* The same key with another message (a sender's counter reset, a sample set): never a
 * duplicate. Stored flagged and delivered by default; stored REJECTED with the AR when
 * reuse_ack is given. Retransmissions of either are duplicates of their own row. */
static void test_reused_control_id(void **state)
{
	struct ctx *c = *state;
	static char raw_b[160], raw_c[160];
	struct store_msg a = msg(0, "R1", "RDE^O11", STORE_RECEIVED, 10);
	struct store_msg b = msg(1, "R1", "RDE^O11", STORE_RECEIVED, 11);
	struct store_msg b_again, cc, cc_again;
	struct store_row *rows, row;
	struct store_job *jobs;
	const char *ar = "MSA|AR|R1|reused\r";
	int n;

	snprintf(raw_b, sizeof(raw_b), "%s", raw_buf[1]);
	memcpy(strstr(raw_b, "MSH|"), "MSX|", 4); /* other bytes, the same key */
	b.raw = raw_b;
	b.raw_len = strlen(raw_b);
	put_ok(c->s, &a, 1);
	assert_false(a.reused);
	put_ok(c->s, &b, 1);
	assert_false(b.duplicate);
	assert_true(b.reused);
	assert_true(b.id > a.id);
	assert_int_equal(b.orig_ack.len, 0);

	/* retransmissions: each the duplicate of its own row, with its own ACK */
	b_again = b;
	b_again.digest_set = false;
	b_again.ack = "other";
	b_again.ack_len = 5;
	memset(&b_again.orig_ack, 0, sizeof(b_again.orig_ack));
	put_ok(c->s, &b_again, 1);
	assert_true(b_again.duplicate);
	assert_false(b_again.reused);
	assert_int_equal(b_again.id, b.id);
	assert_memory_equal(buf_head(&b_again.orig_ack), b.ack, b.ack_len);
	buf_free(&b_again.orig_ack);

	/* both are delivered, the second flagged, with its digest */
	n = claim(c->s, "w", NOW, 10, &jobs);
	assert_int_equal(n, 2);
	assert_false(jobs[0].reused);
	assert_true(jobs[1].reused);
	assert_memory_equal(jobs[1].digest, b.digest, STORE_DIGEST_LEN);
	store_jobs_free(jobs, (size_t)n);
	get_row(c->s, b.id, &row);
	assert_true(row.reused);
	assert_memory_equal(row.raw, raw_b, strlen(raw_b));
	store_row_clear(&row);
	{
		struct store_filter f = { .state = -1, .reused_only = true };
		char err[256];

		n = store_list(c->s, &f, &rows, err, sizeof(err));
		assert_int_equal(n, 1);
		assert_int_equal(rows[0].id, b.id);
		assert_true(rows[0].reused);
		store_rows_free(rows, (size_t)n);
	}

	/* reject: a third message with the key is stored REJECTED with the AR, no job; its
	 * retransmission gets the AR back */
	cc = msg(2, "R1", "RDE^O11", STORE_RECEIVED, 12);
	snprintf(raw_c, sizeof(raw_c), "%sZZZ|x\r", raw_buf[2]);
	cc.raw = raw_c;
	cc.raw_len = strlen(raw_c);
	cc.reuse_ack = ar;
	cc.reuse_ack_len = strlen(ar);
	put_ok(c->s, &cc, 1);
	assert_false(cc.duplicate);
	assert_true(cc.reused);
	get_row(c->s, cc.id, &row);
	assert_int_equal(row.state, STORE_REJECTED);
	assert_true(row.reused);
	assert_int_equal(row.ack_len, strlen(ar));
	assert_memory_equal(row.ack, ar, strlen(ar));
	store_row_clear(&row);
	cc_again = msg(3, "R1", "RDE^O11", STORE_RECEIVED, 13);
	cc_again.raw = raw_c;
	cc_again.raw_len = strlen(raw_c);
	cc_again.reuse_ack = ar;
	cc_again.reuse_ack_len = strlen(ar);
	put_ok(c->s, &cc_again, 1);
	assert_true(cc_again.duplicate);
	assert_int_equal(cc_again.id, cc.id);
	assert_memory_equal(buf_head(&cc_again.orig_ack), ar, strlen(ar));
	buf_free(&cc_again.orig_ack);
	assert_int_equal(count_all(c->s), 3);
	assert_int_equal(count_of(c->s, STORE_REJECTED, NULL), 1);
	{
		struct store_count *cs = NULL;
		char err[256];
		uint64_t reused = 0;

		n = store_counts(c->s, &cs, err, sizeof(err));
		for (int i = 0; i < n; i++)
			reused += cs[i].reused;
		free(cs);
		assert_int_equal(reused, 2);
	}

	/* within one batch: the same key, two messages, then the first again */
	{
		struct store_msg bt[3] = {
			msg(4, "R2", "RDE^O11", STORE_RECEIVED, 20),
			msg(5, "R2", "RDE^O11", STORE_RECEIVED, 21),
			msg(6, "R2", "RDE^O11", STORE_RECEIVED, 22),
		};

		bt[1].raw = raw_b; /* other bytes */
		bt[1].raw_len = strlen(raw_b);
		put_ok(c->s, bt, 3);
		assert_false(bt[0].duplicate || bt[0].reused);
		assert_true(!bt[1].duplicate && bt[1].reused);
		assert_true(bt[2].duplicate && bt[2].id == bt[0].id);
		buf_free(&bt[2].orig_ack);
	}
}

/* ---------------------------------------------------------------- index and search */

static char rich_buf[16][1024];

/* A message with a patient, orders and a date; pid3 and pid5 are whole fields. */
static struct store_msg rich(unsigned slot, const char *app, const char *fac, const char *date,
			     const char *cid, const char *type, const char *pid3,
			     const char *pid5, const char *orc2, const char *orc3,
			     enum store_state st, int64_t at)
{
	struct store_msg m = msg(slot, cid, type, st, at);

	m.app = app;
	m.facility = fac;
	snprintf(rich_buf[slot], sizeof(rich_buf[slot]),
		 "MSH|^~\\&|%s|%s|EMAR|WARD|%s||%s|%s|P|2.5.1\r"
		 "PID|1||%s||%s||19600101|F\r"
		 "ORC|NW|%s|%s\r"
		 "RXE|^BID^HL70335|00093-7146^Metoprolol^NDC|25||mg\r",
		 app, fac, date, type, cid, pid3, pid5, orc2, orc3);
	m.raw = rich_buf[slot];
	m.raw_len = strlen(rich_buf[slot]);
	return m;
}

/* The ids a search finds, newest first, as "3,1" (or "" for none). */
static const char *found(struct store *s, struct store_filter f)
{
	static char out[256];
	struct store_row *rows = NULL;
	char err[256] = "";
	int n = store_list(s, &f, &rows, err, sizeof(err));
	size_t used = 0;

	if (n < 0)
		fail_msg("store_list: %s", err);
	out[0] = '\0';
	for (int i = 0; i < n; i++)
		used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%lld", i ? "," : "",
					 (long long)rows[i].id);
	store_rows_free(rows, (size_t)n);
	return out;
}

static const char *ids_str(int64_t a, int64_t b)
{
	static char out[64];

	if (b > 0)
		snprintf(out, sizeof(out), "%lld,%lld", (long long)a, (long long)b);
	else
		snprintf(out, sizeof(out), "%lld", (long long)a);
	return out;
}

#define ANY .state = -1

/* Three messages, each found by every key it holds, alone and combined, newest first. */
static void test_search(void **state)
{
	struct ctx *c = *state;
	struct store_msg m[3];
	struct store_row row;
	struct store_row *rows = NULL;
	char err[256];
	int64_t id[3];
	int n;

	m[0] = rich(0, "PHARM", "SITE1", "20261122101500+0100", "C1", "RDE^O11",
		    "P100^^^HOSP^MR~S555^^^SSA&2.16.840.1.113883.4.1&ISO^SS", "DOE^JANE~Roe^Jane",
		    "ORD-1", "FIL-1", STORE_RECEIVED, 100);
	m[0].warnings = "bom_stripped";
	m[1] = rich(1, "PHARM", "SITE2", "20261123", "C2", "ORU^R01", "P200^^^HOSP^MR",
		    "SMITH^ANN", "ORD-2", "", STORE_RECEIVED, 200);
	m[2] = rich(2, "OTHER", "SITE1", "20261123", "C3", "RDE^O25", "P100^^^HOSP^MR",
		    "DOE^JOHN", "A\\T\\B", "\"\"", STORE_IGNORED, 300);
	put_ok(c->s, m, 3);
	for (int i = 0; i < 3; i++)
		id[i] = m[i].id;
	assert_string_equal(found(c->s, (struct store_filter){ANY, .patient = "P100"}),
			    ids_str(id[2], id[0]));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .patient = "S555"}),
			    ids_str(id[0], 0));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .patient = "P999"}), "");
	assert_string_equal(found(c->s, (struct store_filter){ANY, .name = "doe"}),
			    ids_str(id[2], id[0]));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .name = "ROE"}),
			    ids_str(id[0], 0));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .order = "ORD-1"}),
			    ids_str(id[0], 0));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .order = "FIL-1"}),
			    ids_str(id[0], 0));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .order = "A&B"}),
			    ids_str(id[2], 0));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .order = "\"\""}), "");
	assert_string_equal(found(c->s, (struct store_filter){ANY, .control_id = "C2"}),
			    ids_str(id[1], 0));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .app = "PHARM"}),
			    ids_str(id[1], id[0]));
	assert_string_equal(
	    found(c->s, (struct store_filter){ANY, .app = "PHARM", .facility = "SITE2"}),
	    ids_str(id[1], 0));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .type = "RDE"}),
			    ids_str(id[2], id[0]));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .type = "ORU^R01"}),
			    ids_str(id[1], 0));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .type = "RD"}), "");
	assert_string_equal(found(c->s, (struct store_filter){.state = STORE_IGNORED}),
			    ids_str(id[2], 0));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .date = "20261122"}),
			    ids_str(id[0], 0));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .date = "20261123"}),
			    ids_str(id[2], id[1]));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .since_ms = 200}),
			    ids_str(id[2], id[1]));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .until_ms = 200}),
			    ids_str(id[0], 0));
	assert_string_equal(
	    found(c->s, (struct store_filter){ANY, .since_ms = 150, .until_ms = 250}),
	    ids_str(id[1], 0));
	/* combined: every condition holds */
	assert_string_equal(
	    found(c->s, (struct store_filter){.state = STORE_IGNORED, .patient = "P100"}),
	    ids_str(id[2], 0));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .patient = "P100", .app = "PHARM"}),
			    ids_str(id[0], 0));
	assert_string_equal(
	    found(c->s, (struct store_filter){ANY, .patient = "P100", .order = "ORD-2"}), "");
	assert_string_equal(
	    found(c->s, (struct store_filter){ANY, .control_id = "C1", .since_ms = 101}), "");
	assert_string_equal(found(c->s, (struct store_filter){ANY, .patient = "P100", .limit = 1}),
			    ids_str(id[2], 0));
	/* the keys of each row come with it when asked */
	n = store_list(c->s, &(struct store_filter){ANY, .control_id = "C1", .with_keys = true},
		       &rows, err, sizeof(err));
	assert_int_equal(n, 1);
	assert_non_null(strstr(rows[0].patients, "P100\x1fHOSP\x1fMR"));
	assert_non_null(strstr(rows[0].patients, "S555\x1fSSA\x1fSS"));
	assert_non_null(strstr(rows[0].names, "DOE"));
	assert_non_null(strstr(rows[0].names, "ROE"));
	assert_string_equal(rows[0].message_date, "20261122101500+0100");
	store_rows_free(rows, 1);
	/* the warnings and the date are kept with the message */
	get_row(c->s, id[0], &row);
	assert_string_equal(row.warnings, "bom_stripped");
	assert_string_equal(row.message_date, "20261122101500+0100");
	store_row_clear(&row);
	get_row(c->s, id[1], &row);
	assert_null(row.warnings);
	store_row_clear(&row);
}

/* The index takes at most STORE_KEYS_MAX keys of a message and no value over
 * STORE_KEY_LEN bytes: a message with a thousand identifiers costs it no more. */
static void test_index_limits(void **state)
{
	struct ctx *c = *state;
	char pid3[2048] = "", cid[16], big[STORE_KEY_LEN + 2];
	struct store_msg m;
	size_t used = 0;

	for (int i = 0; i < 40; i++)
		used += (size_t)snprintf(pid3 + used, sizeof(pid3) - used, "%sI%d^^^H", i ? "~" : "",
					 i);
	memset(big, 'X', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	m = rich(0, "PHARM", "SITE1", "2026", "L1", "RDE^O11", pid3, "DOE", big, "I0",
		 STORE_RECEIVED, 10);
	put_ok(c->s, &m, 1);
	snprintf(cid, sizeof(cid), "%lld", (long long)m.id);
	assert_string_equal(found(c->s, (struct store_filter){ANY, .patient = "I0"}), cid);
	assert_string_equal(found(c->s, (struct store_filter){ANY, .patient = "I31"}), cid);
	assert_string_equal(found(c->s, (struct store_filter){ANY, .patient = "I32"}), "");
	assert_string_equal(found(c->s, (struct store_filter){ANY, .name = "DOE"}), "");
	assert_string_equal(found(c->s, (struct store_filter){ANY, .order = big}), "");
}

/* True when the database refuses sql (without printing its error, which the PostgreSQL
 * run of these tests scans for "ERROR"). */
static bool refused(struct ctx *c, const char *sql)
{
	bool no;

	if (c->pg) {
		PGconn *pc = PQconnectdb(c->spec);
		PGresult *r = PQexec(pc, sql);

		no = PQresultStatus(r) != PGRES_COMMAND_OK;
		PQclear(r);
		PQfinish(pc);
	} else {
		sqlite3 *db = NULL;

		sqlite3_open(c->spec, &db);
		no = sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK;
		sqlite3_close(db);
	}
	return no;
}

/* The audit trail: records come back newest first, with what was given; nothing in the
 * database may change or delete them. */
static void test_audit(void **state)
{
	struct ctx *c = *state;
	int64_t ids[3] = {4, 5, 40};
	struct store_audit a = {.at_ms = 1000, .who = "alice", .via = "cli", .action = "search",
				.what = "search --patient MRN\x01", .ids = ids, .nids = 3,
				.reason = "ticket 12"};
	struct store_audit_row *rows = NULL;
	char err[256] = "";
	int64_t first;
	int n;

	assert_int_equal(store_audit_add(c->s, &a, err, sizeof(err)), 0);
	a = (struct store_audit){.who = "bob", .via = "cli", .action = "show", .what = "show 4",
				 .ids = ids, .nids = 1};
	assert_int_equal(store_audit_add(c->s, &a, err, sizeof(err)), 0);
	n = store_audit_list(c->s, 0, 0, &rows, err, sizeof(err));
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].who, "bob");
	assert_string_equal(rows[0].action, "show");
	assert_string_equal(rows[0].message_ids, "4");
	assert_int_equal(rows[0].messages, 1);
	assert_null(rows[0].reason);
	assert_true(rows[0].at_ms > 1000); /* now */
	assert_string_equal(rows[1].who, "alice");
	assert_string_equal(rows[1].what, "search --patient MRN\\x01"); /* stored clean */
	assert_string_equal(rows[1].message_ids, "4,5,40");
	assert_int_equal(rows[1].messages, 3);
	assert_string_equal(rows[1].reason, "ticket 12");
	assert_int_equal(rows[1].at_ms, 1000);
	assert_true(rows[0].id > rows[1].id);
	store_audit_rows_free(rows, (size_t)n);
	n = store_audit_list(c->s, 0, 1, &rows, err, sizeof(err));
	assert_int_equal(n, 1);
	assert_string_equal(rows[0].who, "bob");
	first = rows[0].id;
	store_audit_rows_free(rows, (size_t)n);
	n = store_audit_list(c->s, first, 0, &rows, err, sizeof(err));
	assert_int_equal(n, 1);
	assert_string_equal(rows[0].who, "alice");
	store_audit_rows_free(rows, (size_t)n);
	/* append-only, whoever asks the database */
	assert_true(refused(c, "UPDATE audit SET who = 'x'"));
	assert_true(refused(c, "DELETE FROM audit"));
	if (c->pg)
		assert_true(refused(c, "TRUNCATE audit"));
	n = store_audit_list(c->s, 0, 0, &rows, err, sizeof(err));
	assert_int_equal(n, 2);
	assert_string_equal(rows[1].who, "alice");
	store_audit_rows_free(rows, (size_t)n);
	a = (struct store_audit){.who = "bob", .action = "show"};
	assert_int_equal(store_audit_add(c->s, &a, err, sizeof(err)), -1); /* no via */
}


/* The keys of a batch are pending after store_put and found there; store_merge_keys moves
 * whole messages' keys, at least as many as asked, into the sorted index, where they are
 * found the same way; a merge with none pending moves none. */
static void test_search_merged(void **state)
{
	struct ctx *c = *state;
	struct store_msg m[12];
	struct store_row *rows = NULL;
	char err[256], pid[12][32], ord[12][32], cid[12][16];
	size_t keys = 0, moved = 0;
	int n;

	for (int i = 0; i < 12; i++) {
		snprintf(pid[i], sizeof(pid[i]), "P%d^^^HOSP^MR", 500 + i);
		snprintf(ord[i], sizeof(ord[i]), "ORD-%d", 500 + i);
		snprintf(cid[i], sizeof(cid[i]), "K%d", 500 + i);
		m[i] = rich(i, "PHARM", "SITE1", "20261122", cid[i], "RDE^O11", pid[i], "DOE^JANE",
			    ord[i], "", STORE_RECEIVED, 100 + i);
	}
	put_ok(c->s, m, 12);
	for (int i = 0; i < 12; i++) {
		assert_int_equal(m[i].keys, 4); /* patient, name, order, control ID */
		keys += m[i].keys;
	}
	assert_string_equal(found(c->s, (struct store_filter){ANY, .patient = "P507"}),
			    ids_str(m[7].id, 0));
	n = store_merge_keys(c->s, 5, err, sizeof(err));
	assert_int_equal(n, 8); /* two whole messages: 5 keys asked */
	moved += (size_t)n;
	/* half merged, half pending: both found */
	assert_string_equal(found(c->s, (struct store_filter){ANY, .patient = "P500"}),
			    ids_str(m[0].id, 0));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .patient = "P511"}),
			    ids_str(m[11].id, 0));
	while ((n = store_merge_keys(c->s, 5, err, sizeof(err))) > 0)
		moved += (size_t)n;
	assert_int_equal(n, 0);
	assert_int_equal(moved, keys);
	for (int i = 0; i < 12; i++) {
		char want[24];

		snprintf(want, sizeof(want), "ORD-%d", 500 + i);
		assert_string_equal(found(c->s, (struct store_filter){ANY, .order = want}),
				    ids_str(m[i].id, 0));
	}
	n = store_list(c->s, &(struct store_filter){ANY, .patient = "P503", .with_keys = true},
		       &rows, err, sizeof(err));
	assert_int_equal(n, 1);
	assert_string_equal(rows[0].patients, "P503\x1fHOSP\x1fMR");
	assert_string_equal(rows[0].names, "DOE\x1f\x1f");
	store_rows_free(rows, 1);
	assert_int_equal(store_merge_keys(c->s, 0, err, sizeof(err)), -1);
	assert_int_equal(store_merge_keys(c->s, 1, err, sizeof(err)), 0);
}

static const char v3_to_v2_sqlite[] =
	"DROP TABLE message_keys_pending;"
	"DROP TABLE message_keys; DROP TABLE audit;"
	"DROP INDEX messages_type; DROP INDEX messages_sender; DROP INDEX messages_received;"
	"DROP INDEX messages_date; ALTER TABLE messages DROP COLUMN message_date;"
	"ALTER TABLE messages DROP COLUMN warnings; PRAGMA user_version = 2;";
static const char v3_to_v2_pg[] =
	"DROP TABLE message_keys, message_keys_pending, audit;"
	"DROP INDEX messages_type,"
	" messages_sender, messages_received, messages_date;"
	"ALTER TABLE messages DROP COLUMN message_date, DROP COLUMN warnings;"
	"UPDATE netwall_meta SET value = '2' WHERE key = 'schema_version';";

/* A store written by schema version 2 (no index) is migrated on open: every stored
 * message is read and indexed, and found as if it had been stored now. */
static void test_migrate_v2_indexes_stored_messages(void **state)
{
	struct ctx *c = *state;
	struct store_msg m[2];
	struct store_row row;

	m[0] = rich(0, "PHARM", "SITE1", "20261122", "M1", "RDE^O11", "P100^^^HOSP^MR", "DOE",
		    "ORD-1", "", STORE_RECEIVED, 10);
	m[1] = rich(1, "PHARM", "SITE1", "20261123", "M2", "RDE^O11", "P200^^^HOSP^MR", "ROE",
		    "ORD-2", "", STORE_RECEIVED, 20);
	put_ok(c->s, m, 2);
	store_close(c->s);
	c->s = NULL;
	exec_sql(c, v3_to_v2_sqlite, v3_to_v2_pg);
	c->s = reopen(c);
	assert_string_equal(found(c->s, (struct store_filter){ANY, .patient = "P200"}),
			    ids_str(m[1].id, 0));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .name = "doe"}),
			    ids_str(m[0].id, 0));
	assert_string_equal(found(c->s, (struct store_filter){ANY, .date = "20261123"}),
			    ids_str(m[1].id, 0));
	get_row(c->s, m[0].id, &row);
	assert_string_equal(row.message_date, "20261122");
	store_row_clear(&row);
	store_close(c->s);
	c->s = reopen(c);
	assert_int_equal(count_all(c->s), 2);
}

/* ---------------------------------------------------------------- cases: migration */

static const char v1_sqlite[] =
	"CREATE TABLE messages (id INTEGER PRIMARY KEY, sending_app TEXT NOT NULL,"
	" sending_facility TEXT NOT NULL, control_id TEXT NOT NULL, type TEXT NOT NULL,"
	" version TEXT NOT NULL, peer TEXT NOT NULL, state TEXT NOT NULL,"
	" received_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, size INTEGER NOT NULL,"
	" raw BLOB NOT NULL, ack BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
	" http_status INTEGER NOT NULL DEFAULT 0, detail TEXT,"
	" UNIQUE (sending_app, sending_facility, control_id));"
	"CREATE INDEX messages_state ON messages (state, id);"
	"CREATE TABLE deliveries (message_id INTEGER PRIMARY KEY REFERENCES messages (id),"
	" next_ms INTEGER NOT NULL, lease_owner TEXT, lease_until INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX deliveries_due ON deliveries (next_ms, message_id);"
	"INSERT INTO messages (id, sending_app, sending_facility, control_id, type, version, peer,"
	" state, received_ms, updated_ms, size, raw, ack) VALUES (7, 'PHARM', 'SITE1', 'OLD1',"
	" 'RDE^O11', '2.5.1', 'p', 'received', 1, 1, 5, CAST('old-1' AS BLOB),"
	" CAST('ack-old-1' AS BLOB));"
	"INSERT INTO deliveries VALUES (7, 1, NULL, 0);"
	"PRAGMA user_version = 1;";

static const char v1_pg[] =
	"CREATE TABLE netwall_meta (key text PRIMARY KEY, value text NOT NULL);"
	"INSERT INTO netwall_meta VALUES ('schema_version', '1');"
	"CREATE TABLE messages (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	" sending_app text NOT NULL, sending_facility text NOT NULL, control_id text NOT NULL,"
	" type text NOT NULL, version text NOT NULL, peer text NOT NULL, state text NOT NULL,"
	" received_ms bigint NOT NULL, updated_ms bigint NOT NULL, size bigint NOT NULL,"
	" raw bytea NOT NULL, ack bytea NOT NULL, attempts integer NOT NULL DEFAULT 0,"
	" http_status integer NOT NULL DEFAULT 0, detail text,"
	" UNIQUE (sending_app, sending_facility, control_id));"
	"CREATE INDEX messages_state ON messages (state, id);"
	"CREATE TABLE deliveries (message_id bigint PRIMARY KEY REFERENCES messages (id),"
	" next_ms bigint NOT NULL, lease_owner text, lease_until bigint NOT NULL DEFAULT 0);"
	"CREATE INDEX deliveries_due ON deliveries (next_ms, message_id);"
	"INSERT INTO messages (sending_app, sending_facility, control_id, type, version, peer,"
	" state, received_ms, updated_ms, size, raw, ack) OVERRIDING SYSTEM VALUE"
	" SELECT 'PHARM', 'SITE1', 'OLD1', 'RDE^O11', '2.5.1', 'p', 'received', 1, 1, 5,"
	" 'old-1'::bytea, 'ack-old-1'::bytea;"
	"INSERT INTO deliveries SELECT id, 1, NULL, 0 FROM messages;";

/* A store written by schema version 1 (no digest, the key alone unique) is migrated on
 * open: its rows keep their ids and jobs, a retransmission of an old message is still its
 * duplicate, another message with an old key is stored flagged. */
static void test_migrate_v1(void **state)
{
	struct ctx *c = *state;
	struct store_msg same, other;
	struct store_job *jobs;
	int n;

	store_close(c->s);
	c->s = NULL;
	if (c->pg) {
		assert_int_equal(pg_exec(c->spec, "DROP TABLE IF EXISTS deliveries, message_keys, "
						  "message_keys_pending, audit, messages, "
						  "netwall_meta CASCADE"),
				 0);
	} else {
		assert_int_equal(unlink(c->spec), 0);
		unlink(strcat(strcpy((char[600]){0}, c->spec), "-wal"));
		unlink(strcat(strcpy((char[600]){0}, c->spec), "-shm"));
	}
	exec_sql(c, v1_sqlite, v1_pg);
	c->s = reopen(c);
	same = msg(0, "OLD1", "RDE^O11", STORE_RECEIVED, 50);
	same.raw = "old-1";
	same.raw_len = 5;
	put_ok(c->s, &same, 1);
	assert_true(same.duplicate);
	assert_memory_equal(buf_head(&same.orig_ack), "ack-old-1", 9);
	buf_free(&same.orig_ack);
	other = msg(1, "OLD1", "RDE^O11", STORE_RECEIVED, 51);
	put_ok(c->s, &other, 1);
	assert_false(other.duplicate);
	assert_true(other.reused);
	assert_int_equal(count_all(c->s), 2);
	n = claim(c->s, "w", NOW, 10, &jobs);
	assert_int_equal(n, 2);
	assert_int_equal(jobs[0].id, same.id);
	store_jobs_free(jobs, (size_t)n);
	/* opening again leaves a version 2 store as it is */
	store_close(c->s);
	c->s = reopen(c);
	assert_int_equal(count_all(c->s), 2);
}

/* The database file, its WAL and its shared memory are the owner's alone, whatever the
 * umask. */
/* The pruning turn: one connection of all holds it at a time (PostgreSQL: across
 * processes) until it gives it back; SQLite gives it to every one. */
static void test_prune_turn(void **state)
{
	struct ctx *c = *state;
	struct store *other = reopen(c);
	char err[256] = "";

	assert_int_equal(store_prune_turn(c->s, true, err, sizeof(err)), 1);
	assert_int_equal(store_prune_turn(other, true, err, sizeof(err)), c->pg ? 0 : 1);
	assert_int_equal(store_prune_turn(c->s, false, err, sizeof(err)), 0);
	if (!c->pg)
		assert_int_equal(store_prune_turn(other, false, err, sizeof(err)), 0);
	assert_int_equal(store_prune_turn(other, true, err, sizeof(err)), 1);
	assert_int_equal(store_prune_turn(c->s, true, err, sizeof(err)), c->pg ? 0 : 1);
	assert_int_equal(store_prune_turn(other, false, err, sizeof(err)), 0);
	store_close(other);
}

static void test_sqlite_files_private(void **state)
{
	struct ctx *c = *state;
	char spec[600], p[620];
	const char *suffix[] = { "", "-wal", "-shm" };
	struct store *s;
	mode_t old = umask(022);
	char err[256];

	snprintf(spec, sizeof(spec), "%s/private%u.db", tmpdir, db_seq++);
	s = store_open(spec, err, sizeof(err));
	umask(old);
	assert_non_null(s);
	put_one(s, 0, "M1", "RDE^O11", STORE_RECEIVED, 1, NULL);
	for (int i = 0; i < 3; i++) {
		struct stat st;

		snprintf(p, sizeof(p), "%s%s", spec, suffix[i]);
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	store_close(s);
	(void)c;
}

#define BOTH(f) cmocka_unit_test_setup_teardown(f, SETUP, teardown)

int main(void)
{
	char tmpl[] = "/tmp/netwall-test-store-XXXXXX";
	int failed = 0;

	if (mkdtemp(tmpl) == NULL)
		return 1;
	snprintf(tmpdir, sizeof(tmpdir), "%s", tmpl);
	{
#define SETUP setup_sqlite
		const struct CMUnitTest sqlite_tests[] = {
			cmocka_unit_test(test_state_names),
			cmocka_unit_test(test_open_errors),
			BOTH(test_put_get),
			BOTH(test_binary_raw),
			BOTH(test_dedupe),
			BOTH(test_counts),
			BOTH(test_list),
			BOTH(test_claim_lease_expiry),
			BOTH(test_release),
			BOTH(test_claim_concurrent),
			BOTH(test_finish),
			BOTH(test_finish_batch),
			BOTH(test_replay),
			BOTH(test_put_rollback),
			BOTH(test_header_text_cleaned),
			BOTH(test_bad_arguments),
			BOTH(test_put_concurrent_same_keys),
			BOTH(test_put_concurrent_reused_keys),
			BOTH(test_sqlite_disk_full),
			BOTH(test_reused_control_id),
			BOTH(test_migrate_v1),
			BOTH(test_sqlite_files_private),
			BOTH(test_search),
			BOTH(test_search_merged),
			BOTH(test_index_limits),
			BOTH(test_migrate_v2_indexes_stored_messages),
			BOTH(test_audit),
			BOTH(test_prune_turn),
		};
#undef SETUP
		failed += cmocka_run_group_tests_name("store_sqlite", sqlite_tests, NULL, NULL);
	}
	pg_url = getenv("NETWALL_TEST_PG_URL");
	if (pg_url != NULL && pg_url[0] != '\0') {
#define SETUP setup_pg
		const struct CMUnitTest pg_tests[] = {
			BOTH(test_put_get),
			BOTH(test_binary_raw),
			BOTH(test_dedupe),
			BOTH(test_counts),
			BOTH(test_list),
			BOTH(test_claim_lease_expiry),
			BOTH(test_release),
			BOTH(test_claim_concurrent),
			BOTH(test_finish),
			BOTH(test_finish_batch),
			BOTH(test_replay),
			BOTH(test_put_rollback),
			BOTH(test_header_text_cleaned),
			BOTH(test_bad_arguments),
			BOTH(test_put_concurrent_same_keys),
			BOTH(test_put_concurrent_reused_keys),
			BOTH(test_pg_reconnect),
			BOTH(test_reused_control_id),
			BOTH(test_migrate_v1),
			BOTH(test_search),
			BOTH(test_search_merged),
			BOTH(test_index_limits),
			BOTH(test_migrate_v2_indexes_stored_messages),
			BOTH(test_audit),
			BOTH(test_prune_turn),
		};
#undef SETUP
		failed += cmocka_run_group_tests_name("store_postgresql", pg_tests, NULL, NULL);
	}
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			failed++;
	}
	return failed ? 1 : 0;
}
