/* Unit tests for hl7/commit: the group-commit thread, against SQLite in a temporary
 * directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "intake/commit.h"

static char tmpdir[256];
static unsigned db_seq;

struct job {
	struct commit_req req;
	char cid[16];
	unsigned index;
};

struct run {
	struct event_base *base;
	struct job *jobs;
	unsigned n;
	unsigned next; /* the index the next done callback must have */
	unsigned ok, failed, dups;
	pthread_t loop_thread;
	int out_of_order, wrong_thread;
};

static atomic_uint afters;

static void after(void *arg)
{
	atomic_fetch_add(&afters, 1);
}

static void done(struct commit_req *r, void *arg)
{
	struct run *run = arg;
	struct job *j = (struct job *)r;

	if (j->index != run->next)
		run->out_of_order = 1;
	if (!pthread_equal(pthread_self(), run->loop_thread))
		run->wrong_thread = 1;
	run->next++;
	if (r->rc == 0) {
		run->ok++;
		if (r->msg.duplicate)
			run->dups++;
	} else {
		run->failed++;
		assert_true(r->err[0] != '\0');
	}
	buf_free(&r->msg.orig_ack);
	if (run->next == run->n && run->base != NULL)
		event_base_loopbreak(run->base);
}

static const char raw[] = "MSH|^~\\&|PHARM|SITE1|||20240101||RDE^O11|x|P|2.5.1\rPID|||1\r";
static const char ack[] = "MSH|^~\\&|||PHARM|SITE1|20240101||ACK|y|P|2.5.1\rMSA|AA|x\r";

static void make_jobs(struct run *run, unsigned n, const char *prefix, unsigned dup_every)
{
	run->jobs = calloc(n, sizeof(*run->jobs));
	run->n = n;
	run->loop_thread = pthread_self();
	for (unsigned i = 0; i < n; i++) {
		struct job *j = &run->jobs[i];

		/* every dup_every-th message repeats the one before it */
		unsigned key = dup_every && i % dup_every == dup_every - 1 ? i - 1 : i;

		snprintf(j->cid, sizeof(j->cid), "%s%u", prefix, key);
		j->index = i;
		j->req.msg = (struct store_msg){
			.app = "PHARM", .facility = "SITE1", .control_id = j->cid,
			.type = "RDE^O11", .version = "2.5.1", .peer = "127.0.0.1:1",
			.state = i % 3 ? STORE_RECEIVED : STORE_IGNORED,
			.raw = raw, .raw_len = sizeof(raw) - 1,
			.ack = ack, .ack_len = sizeof(ack) - 1, .received_ms = 1000 + i,
		};
		j->req.done = done;
		j->req.arg = run;
	}
}

static struct commit *open_commit(struct event_base *base, char *path, size_t len)
{
	char err[256] = "";
	struct commit *c;

	snprintf(path, len, "%s/c%u.db", tmpdir, db_seq++);
	c = commit_new(base, path, after, NULL, err, sizeof(err));
	if (c == NULL)
		fail_msg("commit_new: %s", err);
	return c;
}

static void test_order_and_batching(void **state)
{
	enum { N = 5000 };
	struct event_base *base = event_base_new();
	struct run run = {.base = base};
	struct commit_stats st;
	char path[300];
	struct commit *c = open_commit(base, path, sizeof(path));

	atomic_store(&afters, 0);
	make_jobs(&run, N, "M", 10);
	for (unsigned i = 0; i < N; i++)
		commit_submit(c, &run.jobs[i].req);
	assert_true(commit_pending(c) > 0);
	event_base_dispatch(base);

	assert_int_equal(run.next, N);
	assert_false(run.out_of_order);
	assert_false(run.wrong_thread);
	assert_int_equal(run.failed, 0);
	assert_int_equal(run.dups, N / 10);
	assert_int_equal(commit_pending(c), 0);
	commit_stats(c, &st);
	printf("transactions=%llu max_batch=%llu afters=%u\n", (unsigned long long)st.transactions,
	       (unsigned long long)st.max_batch, atomic_load(&afters));
	assert_int_equal(st.rows, N - N / 10);
	assert_int_equal(st.dups, N / 10);
	assert_int_equal(st.failures, 0);
	assert_true(st.max_batch > 1);
	assert_true(st.max_batch <= COMMIT_MAX_BATCH);
	assert_true(st.transactions < N);
	assert_true(st.transactions >= N / COMMIT_MAX_BATCH);
	assert_true(atomic_load(&afters) >= 1);
	assert_true(atomic_load(&afters) <= st.transactions);
	/* duplicates carry the original's ACK */
	for (unsigned i = 9; i < N; i += 10) {
		assert_true(run.jobs[i].req.msg.duplicate);
		assert_int_equal(run.jobs[i].req.msg.id, run.jobs[i - 1].req.msg.id);
	}
	commit_free(c);
	free(run.jobs);
	event_base_free(base);
}

static void test_ignored_only_no_after(void **state)
{
	struct event_base *base = event_base_new();
	struct run run = {.base = base};
	char path[300];
	struct commit *c = open_commit(base, path, sizeof(path));

	atomic_store(&afters, 0);
	make_jobs(&run, 1, "I", 0); /* index 0: IGNORED */
	commit_submit(c, &run.jobs[0].req);
	event_base_dispatch(base);
	assert_int_equal(run.ok, 1);
	assert_int_equal(atomic_load(&afters), 0);
	commit_free(c);
	free(run.jobs);
	event_base_free(base);
}

/* While another connection holds the write lock past the store's busy limit, the whole
 * batch fails: every request of it gets rc -1; the next batch succeeds. */
static void test_failure(void **state)
{
	enum { N = 20 };
	struct event_base *base = event_base_new();
	struct run run = {.base = base}, again = {.base = base};
	struct commit_stats st;
	char path[300];
	struct commit *c = open_commit(base, path, sizeof(path));
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	make_jobs(&run, N, "F", 0);
	for (unsigned i = 0; i < N; i++)
		commit_submit(c, &run.jobs[i].req);
	event_base_dispatch(base);
	assert_int_equal(run.failed, N);
	assert_int_equal(run.ok, 0);
	assert_false(run.out_of_order);
	printf("failure: %s\n", run.jobs[0].req.err);
	assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	commit_stats(c, &st);
	assert_true(st.failures >= 1);
	assert_int_equal(st.rows, 0);

	make_jobs(&again, N, "F", 0);
	for (unsigned i = 0; i < N; i++)
		commit_submit(c, &again.jobs[i].req);
	event_base_dispatch(base);
	assert_int_equal(again.ok, N);
	assert_int_equal(again.dups, 0); /* nothing of the failed batch was stored */
	commit_free(c);
	free(run.jobs);
	free(again.jobs);
	event_base_free(base);
}

/* commit_free writes what is queued and runs every done callback. */
static void test_free_drains(void **state)
{
	enum { N = 300 };
	struct event_base *base = event_base_new();
	struct run run = {.base = NULL};
	char path[300];
	struct commit *c = open_commit(base, path, sizeof(path));

	make_jobs(&run, N, "D", 0);
	for (unsigned i = 0; i < N; i++)
		commit_submit(c, &run.jobs[i].req);
	commit_free(c);
	assert_int_equal(run.next, N);
	assert_int_equal(run.ok, N);
	assert_false(run.out_of_order);
	free(run.jobs);
	event_base_free(base);
}

static void test_open_fails(void **state)
{
	struct event_base *base = event_base_new();
	char err[256] = "";

	assert_null(commit_new(base, "/nonexistent-dir/x/y.db", NULL, NULL, err, sizeof(err)));
	assert_true(err[0] != '\0');
	commit_free(NULL);
	event_base_free(base);
}

int main(void)
{
	char tmpl[] = "/tmp/netwall-test-commit-XXXXXX";
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_and_batching),
		cmocka_unit_test(test_ignored_only_no_after),
		cmocka_unit_test(test_failure),
		cmocka_unit_test(test_free_drains),
		cmocka_unit_test(test_open_fails),
	};
	char cmd[300];
	int failed;

	if (mkdtemp(tmpl) == NULL)
		return 1;
	snprintf(tmpdir, sizeof(tmpdir), "%s", tmpl);
	failed = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		failed++;
	return failed;
}
