/* core/metrics: one registry, three views that agree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/metrics.h"

struct stats {
	uint64_t open, total;
	uint64_t by_reason[3];
};

static const char *const reasons[] = { "parse", "header", "store" };
static const double bounds[] = { 0.001, 0.01 };

static void read_services(struct metric_out *o, void *base)
{
	(void)base;
	metric_emit(o, "web", 3);
	metric_emit(o, "a\"b\\c\nd", 4); /* a label value Prometheus must escape */
}

static void read_refused(struct metric_out *o, void *base)
{
	(void)base;
	metric_emit2(o, "web", "max_connections", 2);
	metric_emit2(o, "web", "not_allowed", 1);
	metric_emit2(o, "db", "max_connections", 5);
}

static void read_bad_labels(struct metric_out *o, void *base)
{
	(void)base;
	metric_emit(o, "caf\xe9", 1);        /* not UTF-8: left out of every view */
	metric_emit2(o, "caf\xe9", "x", 2);
	metric_emit2(o, "ok", "\xff", 3);
	metric_emit(o, "fine", 4);
}

static void read_latency(struct metric_out *o, void *base)
{
	static const uint64_t counts[] = { 5, 2, 1 };

	(void)base;
	metric_emit_hist(o, bounds, counts, 2, 0.25);
}

static const struct metric table[] = {
	{ "netwall_x_open", METRIC_GAUGE, "Open.", NULL, METRIC_FIELD(struct stats, open),
	  .tile = "open" },
	{ "netwall_x_total", METRIC_COUNTER, "Total.", NULL, METRIC_FIELD(struct stats, total) },
	{ "netwall_x_rejected_total", METRIC_COUNTER, "Rejected.", "reason",
	  METRIC_FIELDS(struct stats, by_reason, reasons, 3), .tile = "rejected" },
	{ "netwall_x_service_total", METRIC_COUNTER, "Per service.", "service",
	  METRIC_READ(read_services) },
	{ "netwall_x_seconds", METRIC_HISTOGRAM, "Latency.", NULL, METRIC_READ(read_latency) },
	{ "netwall_x_refused_total", METRIC_COUNTER, "Refused.", "service",
	  METRIC_READ(read_refused), .label2 = "reason", .tile = "refused" },
};

static char *render(struct metrics *m, int view)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	if (view == 0)
		metrics_prometheus(m, b);
	else
		metrics_tiles(m, b);
	n = evbuffer_get_length(b);
	s = calloc(1, n + 1);
	evbuffer_remove(b, s, n);
	evbuffer_free(b);
	return s;
}

static void test_prometheus(void **state)
{
	struct stats st = { .open = 7, .total = 9, .by_reason = { 1, 2, 3 } };
	struct metrics *m = metrics_new();
	char *s;

	(void)state;
	metrics_add(m, table, sizeof(table) / sizeof(table[0]), &st);
	s = render(m, 0);
	assert_non_null(strstr(s, "# HELP netwall_x_open Open.\n# TYPE netwall_x_open gauge\n"
				  "netwall_x_open 7\n"));
	assert_non_null(strstr(s, "# TYPE netwall_x_total counter\nnetwall_x_total 9\n"));
	assert_non_null(strstr(s, "netwall_x_rejected_total{reason=\"header\"} 2\n"));
	assert_non_null(strstr(s, "netwall_x_service_total{service=\"web\"} 3\n"));
	assert_non_null(strstr(s, "netwall_x_service_total{service=\"a\\\"b\\\\c\\nd\"} 4\n"));
	assert_non_null(strstr(s, "netwall_x_seconds_bucket{le=\"0.001\"} 5\n"
				  "netwall_x_seconds_bucket{le=\"0.01\"} 7\n"
				  "netwall_x_seconds_bucket{le=\"+Inf\"} 8\n"
				  "netwall_x_seconds_sum 0.250000\nnetwall_x_seconds_count 8\n"));
	assert_non_null(strstr(s, "# TYPE netwall_x_refused_total counter\n"
				  "netwall_x_refused_total{service=\"web\",reason=\"max_connections\"} 2\n"
				  "netwall_x_refused_total{service=\"web\",reason=\"not_allowed\"} 1\n"
				  "netwall_x_refused_total{service=\"db\",reason=\"max_connections\"} 5\n"));
	free(s);
	st.open = 8; /* read at render time, not at registration */
	s = render(m, 0);
	assert_non_null(strstr(s, "netwall_x_open 8\n"));
	free(s);
	metrics_free(m);
}

static void test_json(void **state)
{
	struct stats st = { .open = 7, .total = 9, .by_reason = { 1, 2, 3 } };
	struct metrics *m = metrics_new();
	json_t *j, *h;

	(void)state;
	metrics_add(m, table, sizeof(table) / sizeof(table[0]), &st);
	j = metrics_json(m);
	assert_int_equal(json_integer_value(json_object_get(j, "netwall_x_open")), 7);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
				 j, "netwall_x_rejected_total"), "store")), 3);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
				 j, "netwall_x_service_total"), "a\"b\\c\nd")), 4);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(
				 j, "netwall_x_refused_total"), "web"), "not_allowed")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(
				 j, "netwall_x_refused_total"), "db"), "max_connections")), 5);
	h = json_object_get(j, "netwall_x_seconds");
	assert_int_equal(json_integer_value(json_object_get(h, "count")), 8);
	assert_int_equal(json_array_size(json_object_get(h, "buckets")), 3);
	assert_true(json_is_null(json_array_get(json_array_get(json_object_get(h, "buckets"), 2), 0)));
	json_decref(j);
	metrics_free(m);
}

/* A snapshot taken for one rendering lives in the registry's scratch memory. */
static void test_scratch(void **state)
{
	struct metrics *m = metrics_new();
	struct stats *st = metrics_scratch(m, sizeof(*st));
	char *s;

	(void)state;
	assert_int_equal(st->open, 0);
	st->open = 42;
	metrics_add(m, table, 1, st);
	s = render(m, 0);
	assert_non_null(strstr(s, "netwall_x_open 42\n"));
	free(s);
	metrics_free(m); /* frees the snapshot too (the sanitizer build checks) */
}

static void test_tiles(void **state)
{
	struct stats st = { .open = 7, .total = 9, .by_reason = { 1, 2, 3 } };
	struct metrics *m = metrics_new();
	char *s;

	(void)state;
	metrics_add(m, table, sizeof(table) / sizeof(table[0]), &st);
	s = render(m, 1);
	assert_non_null(strstr(s, "id=\"netwall_x_open\""));
	assert_non_null(strstr(s, "<b>6</b>rejected")); /* a labelled metric's tile is its sum */
	assert_non_null(strstr(s, "<b>8</b>refused"));  /* over both labels */
	assert_null(strstr(s, "netwall_x_total"));     /* no tile label: not on the page */
	free(s);
	metrics_free(m);
}

static const struct metric bad_table[] = {
	{ "netwall_x_bad_total", METRIC_COUNTER, "Bad labels.", "service",
	  METRIC_READ(read_bad_labels), .label2 = "reason" },
};

/* A label value that is not UTF-8 cannot be a JSON key nor a Prometheus label value: the
 * sample is left out, the rest stays (jansson refusing the key freed the inner object,
 * which was then written to). */
static void test_label_not_utf8(void **state)
{
	struct metrics *m = metrics_new();
	json_t *j;
	char *s;

	(void)state;
	metrics_add(m, bad_table, 1, NULL);
	s = render(m, 0);
	assert_null(strstr(s, "caf"));
	assert_null(strstr(s, "\"ok\""));
	assert_non_null(strstr(s, "netwall_x_bad_total{service=\"fine\"} 4\n"));
	free(s);
	j = metrics_json(m);
	assert_int_equal(json_object_size(json_object_get(j, "netwall_x_bad_total")), 1);
	json_decref(j);
	metrics_free(m);
}

static void read_checks(struct metric_out *o, void *base)
{
	(void)base;
	metric_emit3(o, "web", "10.0.0.5:80", "ok", 4);
	metric_emit3(o, "web", "10.0.0.5:80", "timeout", 1);
	metric_emit3(o, "web", "[::1]:80", "ok", 2);
	metric_emit3(o, "web", "x", "caf\xe9", 9); /* not UTF-8: left out */
}

static const struct metric three_table[] = {
	{ "netwall_x_checks_total", METRIC_COUNTER, "Checks.", "service",
	  METRIC_READ(read_checks), .label2 = "target", .label3 = "result" },
};

/* Three labels: one Prometheus sample each, JSON nested a level per label. */
static void test_three_labels(void **state)
{
	struct metrics *m = metrics_new();
	json_t *j, *web;
	char *s;

	(void)state;
	metrics_add(m, three_table, 1, NULL);
	s = render(m, 0);
	assert_non_null(strstr(s, "netwall_x_checks_total{service=\"web\",target=\"10.0.0.5:80\","
				  "result=\"ok\"} 4\n"
				  "netwall_x_checks_total{service=\"web\",target=\"10.0.0.5:80\","
				  "result=\"timeout\"} 1\n"
				  "netwall_x_checks_total{service=\"web\",target=\"[::1]:80\","
				  "result=\"ok\"} 2\n"));
	assert_null(strstr(s, "target=\"x\""));
	free(s);
	j = metrics_json(m);
	web = json_object_get(json_object_get(j, "netwall_x_checks_total"), "web");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(web, "10.0.0.5:80"),
							    "timeout")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(web, "[::1]:80"),
							    "ok")), 2);
	assert_int_equal(json_object_size(web), 2);
	json_decref(j);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prometheus),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_scratch),
		cmocka_unit_test(test_label_not_utf8),
		cmocka_unit_test(test_three_labels),
		cmocka_unit_test(test_tiles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
