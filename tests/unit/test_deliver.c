/* Unit tests for hl7/deliver: a real SQLite store in a temporary directory and a real HTTP
 * endpoint, the stand-in EMAR API (tests/integration/helpers/emar.py) started by the test on
 * a free loopback port and steered through its /_control endpoint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "intake/deliver.h"
#include "intake/store.h"

#define EMAR "tests/integration/helpers/emar.py"

static char tmpdir[64];
static char emar_url[64];
static char emar_log[128];
static pid_t emar_pid = -1;
static unsigned store_seq;

/* One test's store and its spec. */
struct fixture {
	char spec[160];
	struct store *s;
};

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&a, sizeof(a)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) == -1)
		return -1;
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static size_t sink(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;

	if (b != NULL)
		buf_append(b, p, size * n);
	return size * n;
}

/* A request to the stand-in; returns the HTTP status (0 when it does not answer). */
static long http(const char *path, const char *post, struct buf *resp)
{
	char url[128];
	CURL *c = curl_easy_init();
	long status = 0;

	snprintf(url, sizeof(url), "%s%s", emar_url, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
	if (post != NULL)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	return status;
}

static void emar_mode(const char *json)
{
	assert_int_equal(http("/_control", json, NULL), 200);
}

static int emar_start(void **state)
{
	char port_s[16];
	int port = free_port(), pfd[2];
	char line[128];
	ssize_t n;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/netwall-deliver-XXXXXX");
	if (mkdtemp(tmpdir) == NULL || port <= 0 || pipe(pfd) == -1)
		return -1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	log_init("test", LOG_WARN);
	snprintf(port_s, sizeof(port_s), "%d", port);
	snprintf(emar_log, sizeof(emar_log), "%s/emar.jsonl", tmpdir);
	snprintf(emar_url, sizeof(emar_url), "http://127.0.0.1:%d", port);
	emar_pid = fork();
	if (emar_pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		dup2(pfd[1], 1);
		dup2(devnull, 2);
		execl("/usr/bin/python3", "python3", EMAR, "--port", port_s, "--log", emar_log,
		      (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	/* "ready port=P" once listening. The pipe stays open, unread: the stand-in prints
	 * one short line per delivery, a few hundred bytes here, far below its capacity */
	n = read(pfd[0], line, sizeof(line) - 1);
	if (n <= 0 || strncmp(line, "ready", 5) != 0)
		return -1;
	return 0;
}

static int emar_stop(void **state)
{
	char cmd[160];

	if (emar_pid > 0) {
		kill(emar_pid, SIGTERM);
		waitpid(emar_pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		return -1;
	return 0;
}

static int fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	snprintf(f->spec, sizeof(f->spec), "%s/store%u.db", tmpdir, ++store_seq);
	f->s = store_open(f->spec, err, sizeof(err));
	if (f->s == NULL) {
		fprintf(stderr, "store_open: %s\n", err);
		free(f);
		return -1;
	}
	*state = f;
	http("/_reset", "{}", NULL);
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->s);
	free(f);
	http("/_reset", "{}", NULL);
	return 0;
}

static struct deliver_conf conf_for(const struct fixture *f)
{
	return (struct deliver_conf){
		.store = f->spec,
		.url = emar_url,
		.timeout = 2,
		.connect_timeout = 1,
		.max_attempts = 5,
		.backoff_min = 0.05,
		.backoff_max = 0.2,
		.concurrency = 4,
		.poll = 0.1,
		.owner = "test:1",
	};
}

/* Stores a message; returns its id. raw NULL: a parsable RDE^O11 with control ID cid. */
static int64_t put(struct fixture *f, const char *cid, const char *raw)
{
	char msg[512], err[256];
	struct store_msg m = { 0 };

	if (raw == NULL) {
		snprintf(msg, sizeof(msg),
			 "MSH|^~\\&|APP|FAC|EMAR|WARD|20240101120000||RDE^O11^RDE_O11|%s|P|2.5.1\r"
			 "PID|1||12345^^^HOSP^MR||Doe^Jane||19700101|F\r"
			 "ORC|NW|O1\rRXE|^^^20240101|123^Drug|1||mg\r",
			 cid);
		raw = msg;
	}
	m.app = "APP";
	m.facility = "FAC";
	m.control_id = cid;
	m.type = "RDE^O11";
	m.version = "2.5.1";
	m.peer = "127.0.0.1:1";
	m.state = STORE_RECEIVED;
	m.raw = raw;
	m.raw_len = strlen(raw);
	m.ack = "MSH|ACK";
	m.ack_len = 7;
	m.received_ms = 1;
	if (store_put(f->s, &m, 1, err, sizeof(err)) != 0)
		fail_msg("store_put: %s", err);
	assert_false(m.duplicate);
	return m.id;
}

/* Waits until message id reaches state; fills row (caller clears). */
static void wait_state(struct fixture *f, int64_t id, enum store_state want, double secs,
		       struct store_row *row)
{
	double until = clock_mono() + secs;
	char err[256];

	for (;;) {
		memset(row, 0, sizeof(*row));
		if (store_get(f->s, id, row, err, sizeof(err)) != 1)
			fail_msg("store_get %lld: %s", (long long)id, err);
		if (row->state == want)
			return;
		if (clock_mono() > until)
			fail_msg("message %lld is %s, not %s", (long long)id,
				 store_state_name(row->state), store_state_name(want));
		store_row_clear(row);
		usleep(20000);
	}
}

static int emar_accepted(void)
{
	struct buf b = { 0 };
	json_t *j;
	int n = -1;

	if (http("/_stats", NULL, &b) == 200) {
		j = json_loadb((const char *)buf_head(&b), b.len, 0, NULL);
		n = (int)json_integer_value(json_object_get(j, "accepted"));
		json_decref(j);
	}
	buf_free(&b);
	return n;
}

static void test_delivers(void **state)
{
	struct fixture *f = *state;
	struct deliver_conf c = conf_for(f);
	struct deliver_stats st;
	struct store_row row;
	char err[256], tok[200], line[1024];
	int64_t ids[6];
	bool found = false;
	FILE *lf;
	struct deliver *d;

	snprintf(tok, sizeof(tok), "%s/token", tmpdir);
	lf = fopen(tok, "w");
	fputs("  s3cr3t-token\n", lf);
	fclose(lf);
	c.token_file = tok;
	for (int i = 0; i < 6; i++) {
		char cid[16];

		snprintf(cid, sizeof(cid), "OK%d", i);
		ids[i] = put(f, cid, NULL);
	}
	d = deliver_new(&c, err, sizeof(err));
	if (d == NULL)
		fail_msg("deliver_new: %s", err);
	for (int i = 0; i < 6; i++) {
		wait_state(f, ids[i], STORE_DELIVERED, 5, &row);
		assert_int_equal(row.attempts, 1);
		assert_int_equal(row.http_status, 200);
		store_row_clear(&row);
	}
	deliver_stats(d, &st);
	assert_int_equal(st.delivered, 6);
	assert_int_equal(st.attempts, 6);
	assert_int_equal(st.failures, 0);
	deliver_free(d, 1);
	assert_int_equal(emar_accepted(), 6);

	/* the stand-in saw the headers */
	lf = fopen(emar_log, "r");
	assert_non_null(lf);
	while (fgets(line, sizeof(line), lf) != NULL) {
		const char *key = strstr(line, "\"idempotency_key\": \"APP|FAC|OK3|");

		if (key != NULL) {
			/* the key ends in the message's SHA-256 */
			const char *hex = key + strlen("\"idempotency_key\": \"APP|FAC|OK3|");
			char want[64];

			assert_int_equal(strspn(hex, "0123456789abcdef"), 64);
			assert_int_equal(hex[64], '"');

			snprintf(want, sizeof(want), "\"message_id_header\": \"%lld\"",
				 (long long)ids[3]);
			assert_non_null(strstr(line, want));
			assert_non_null(strstr(line, "\"authorization\": true"));
			assert_non_null(strstr(line, "\"type\": \"RDE^O11\""));
			found = true;
		}
	}
	fclose(lf);
	assert_true(found);
}

static void test_kick_wakes_idle_worker(void **state)
{
	struct fixture *f = *state;
	struct deliver_conf c = conf_for(f);
	struct store_row row;
	char err[256];
	struct deliver *d;
	double t0;
	int64_t id;

	c.poll = 30; /* only a kick can wake it in time */
	d = deliver_new(&c, err, sizeof(err));
	assert_non_null(d);
	usleep(100000); /* the first, empty scan */
	id = put(f, "KICK1", NULL);
	t0 = clock_mono();
	deliver_kick(d);
	wait_state(f, id, STORE_DELIVERED, 3, &row);
	store_row_clear(&row);
	assert_true(clock_mono() - t0 < 2);
	deliver_free(d, 1);
}

static void test_5xx_retried_then_delivered(void **state)
{
	struct fixture *f = *state;
	struct deliver_conf c = conf_for(f);
	struct deliver_stats st;
	struct store_row row;
	char err[256];
	struct deliver *d;
	int64_t id;

	emar_mode("{\"mode\": \"500\", \"count\": 2}");
	id = put(f, "R1", NULL);
	d = deliver_new(&c, err, sizeof(err));
	assert_non_null(d);
	wait_state(f, id, STORE_DELIVERED, 5, &row);
	assert_int_equal(row.attempts, 3);
	store_row_clear(&row);
	deliver_stats(d, &st);
	assert_int_equal(st.attempts, 3);
	assert_int_equal(st.failures, 2);
	assert_int_equal(st.delivered, 1);
	assert_int_equal(st.dead, 0);
	deliver_free(d, 1);
}

static void test_4xx_dead_at_once(void **state)
{
	struct fixture *f = *state;
	struct deliver_conf c = conf_for(f);
	struct deliver_stats st;
	struct store_row row;
	char err[256];
	struct deliver *d;
	int64_t id;

	emar_mode("{\"mode\": \"422\", \"count\": 1}");
	id = put(f, "D1", NULL);
	d = deliver_new(&c, err, sizeof(err));
	assert_non_null(d);
	wait_state(f, id, STORE_DEAD, 5, &row);
	assert_int_equal(row.attempts, 1);
	assert_int_equal(row.http_status, 422);
	assert_non_null(row.detail);
	assert_non_null(strstr(row.detail, "mode 422"));
	store_row_clear(&row);
	deliver_stats(d, &st);
	assert_int_equal(st.dead, 1);
	assert_int_equal(st.delivered, 0);
	deliver_free(d, 1);
}

static void test_429_retried(void **state)
{
	struct fixture *f = *state;
	struct deliver_conf c = conf_for(f);
	struct store_row row;
	char err[256];
	struct deliver *d;
	int64_t id;

	emar_mode("{\"mode\": \"429\", \"count\": 1}");
	id = put(f, "L1", NULL);
	d = deliver_new(&c, err, sizeof(err));
	assert_non_null(d);
	wait_state(f, id, STORE_DELIVERED, 5, &row);
	assert_int_equal(row.attempts, 2);
	store_row_clear(&row);
	deliver_free(d, 1);
}

static void test_timeout_retried(void **state)
{
	struct fixture *f = *state;
	struct deliver_conf c = conf_for(f);
	struct store_row row;
	char err[256];
	struct deliver *d;
	int64_t id;

	c.timeout = 0.3;
	emar_mode("{\"mode\": \"hang\", \"count\": 1}");
	id = put(f, "T1", NULL);
	d = deliver_new(&c, err, sizeof(err));
	assert_non_null(d);
	wait_state(f, id, STORE_DELIVERED, 5, &row);
	assert_int_equal(row.attempts, 2);
	store_row_clear(&row);
	deliver_free(d, 1);
}

static void test_connection_closed_retried(void **state)
{
	struct fixture *f = *state;
	struct deliver_conf c = conf_for(f);
	struct store_row row;
	char err[256];
	struct deliver *d;
	int64_t id;

	emar_mode("{\"mode\": \"close\", \"count\": 1}");
	id = put(f, "C1", NULL);
	d = deliver_new(&c, err, sizeof(err));
	assert_non_null(d);
	wait_state(f, id, STORE_DELIVERED, 5, &row);
	assert_int_equal(row.attempts, 2);
	store_row_clear(&row);
	deliver_free(d, 1);
}

static void test_out_of_attempts_dead(void **state)
{
	struct fixture *f = *state;
	struct deliver_conf c = conf_for(f);
	struct deliver_stats st;
	struct store_row row;
	char err[256];
	struct deliver *d;
	int64_t id;

	c.max_attempts = 3;
	emar_mode("{\"mode\": \"503\"}");
	id = put(f, "M1", NULL);
	d = deliver_new(&c, err, sizeof(err));
	assert_non_null(d);
	wait_state(f, id, STORE_DEAD, 5, &row);
	assert_int_equal(row.attempts, 3);
	assert_int_equal(row.http_status, 503);
	store_row_clear(&row);
	deliver_stats(d, &st);
	assert_int_equal(st.attempts, 3);
	assert_int_equal(st.failures, 3);
	assert_int_equal(st.dead, 1);
	deliver_free(d, 1);
}

static void test_unreachable_endpoint_dead(void **state)
{
	struct fixture *f = *state;
	struct deliver_conf c = conf_for(f);
	struct store_row row;
	char err[256], url[64];
	struct deliver *d;
	int64_t id;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", free_port());
	c.url = url;
	c.max_attempts = 2;
	id = put(f, "U1", NULL);
	d = deliver_new(&c, err, sizeof(err));
	assert_non_null(d);
	wait_state(f, id, STORE_DEAD, 5, &row);
	assert_int_equal(row.attempts, 2);
	assert_int_equal(row.http_status, 0);
	assert_non_null(row.detail);
	assert_true(strlen(row.detail) > 0);
	store_row_clear(&row);
	deliver_free(d, 1);
}

static void test_unparsable_dead(void **state)
{
	struct fixture *f = *state;
	struct deliver_conf c = conf_for(f);
	struct store_row row;
	char err[256];
	struct deliver *d;
	int64_t id;

	id = put(f, "X1", "not an HL7 message");
	d = deliver_new(&c, err, sizeof(err));
	assert_non_null(d);
	wait_state(f, id, STORE_DEAD, 5, &row);
	assert_string_equal(row.detail, "unparsable");
	store_row_clear(&row);
	deliver_free(d, 1);
	assert_int_equal(emar_accepted(), 0);
}

static void test_many_in_batches(void **state)
{
	struct fixture *f = *state;
	struct deliver_conf c = conf_for(f);
	struct deliver_stats st;
	struct store_row row;
	enum { N = 300 };
	struct store_msg m[N];
	char cids[N][16], raws[N][160], err[256];
	struct deliver *d;
	double until;

	memset(m, 0, sizeof(m));
	for (int i = 0; i < N; i++) {
		snprintf(cids[i], sizeof(cids[i]), "B%d", i);
		snprintf(raws[i], sizeof(raws[i]),
			 "MSH|^~\\&|APP|FAC|||20240101||RDE^O11|%s|P|2.5\rPID|1||%d\r", cids[i], i);
		m[i] = (struct store_msg){ .app = "APP", .facility = "FAC", .control_id = cids[i],
					   .type = "RDE^O11", .version = "2.5", .peer = "p",
					   .state = STORE_RECEIVED, .raw = raws[i],
					   .raw_len = strlen(raws[i]), .ack = "A", .ack_len = 1 };
	}
	assert_int_equal(store_put(f->s, m, N, err, sizeof(err)), 0);
	c.concurrency = 16;
	d = deliver_new(&c, err, sizeof(err));
	assert_non_null(d);
	until = clock_mono() + 8;
	do {
		usleep(50000);
		deliver_stats(d, &st);
	} while (st.delivered < N && clock_mono() < until);
	assert_int_equal(st.delivered, N);
	assert_int_equal(st.attempts, N);
	assert_true(st.in_flight == 0);
	deliver_free(d, 1);
	wait_state(f, m[N - 1].id, STORE_DELIVERED, 1, &row);
	store_row_clear(&row);
	assert_int_equal(emar_accepted(), N);
}

/* deliver_free gives a stuck transfer its grace, then leaves the job leased and queued. */
static void test_free_abandons_stuck_transfer(void **state)
{
	struct fixture *f = *state;
	struct deliver_conf c = conf_for(f);
	struct deliver_stats st;
	struct store_row row;
	uint64_t depth = 0;
	char err[256];
	struct deliver *d;
	double t0;
	int64_t id;

	c.timeout = 10;
	emar_mode("{\"mode\": \"hang\"}");
	id = put(f, "H1", NULL);
	d = deliver_new(&c, err, sizeof(err));
	assert_non_null(d);
	t0 = clock_mono() + 3;
	do {
		usleep(20000);
		deliver_stats(d, &st);
	} while (st.in_flight == 0 && clock_mono() < t0);
	assert_int_equal(st.in_flight, 1);
	t0 = clock_mono();
	deliver_free(d, 0.2);
	assert_true(clock_mono() - t0 < 1.5);
	wait_state(f, id, STORE_RECEIVED, 1, &row);
	assert_int_equal(row.attempts, 0);
	store_row_clear(&row);
	assert_int_equal(store_queue_depth(f->s, &depth, err, sizeof(err)), 0);
	assert_int_equal(depth, 1);
}

static void test_bad_config(void **state)
{
	struct fixture *f = *state;
	struct deliver_conf c = conf_for(f);
	char err[256], tok[200];
	FILE *tf;

	c.url = "ftp://127.0.0.1/";
	assert_null(deliver_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "http"));
	c.url = "not a url";
	assert_null(deliver_new(&c, err, sizeof(err)));
	c = conf_for(f);
	c.token_file = "/nonexistent/token";
	assert_null(deliver_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "token_file"));
	snprintf(tok, sizeof(tok), "%s/badtoken", tmpdir);
	tf = fopen(tok, "w");
	fputs("two words\n", tf);
	fclose(tf);
	c.token_file = tok;
	assert_null(deliver_new(&c, err, sizeof(err)));
	assert_null(strstr(err, "words")); /* never the token itself */
	c = conf_for(f);
	c.store = "/nonexistent/dir/store.db";
	assert_null(deliver_new(&c, err, sizeof(err)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_delivers, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_kick_wakes_idle_worker, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_5xx_retried_then_delivered, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_4xx_dead_at_once, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_429_retried, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_timeout_retried, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_connection_closed_retried, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_out_of_attempts_dead, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_unreachable_endpoint_dead, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_unparsable_dead, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_many_in_batches, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_free_abandons_stuck_transfer, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_bad_config, fixture_setup, fixture_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, emar_start, emar_stop);
}
