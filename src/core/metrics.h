/* Metrics written once: a daemon registers tables of counters, gauges and histograms (name,
 * type, help, label, where the value comes from), and the admin listener renders the same
 * registry as Prometheus text (/metrics), as JSON (/status, with jansson) and as tiles on
 * the HTML page. No metric is spelled twice, and the three views cannot disagree.
 *
 * A value comes from a field: METRIC_FIELD names a uint64_t at an offset in the struct the
 * table was registered with (metrics_add's base); METRIC_FIELDS names an array of them,
 * one sample per label value. Anything computed (a snapshot taken under a lock, a list of
 * services known at run time, a histogram) comes from a read function, which emits its
 * samples with metric_emit / metric_emit_hist. */
#ifndef NETWALL_METRICS_H
#define NETWALL_METRICS_H

#include <event2/buffer.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metric_out; /* where a read function's samples go: one of the three views */

struct metric {
	const char *name;  /* netwall_..., counters end in _total */
	enum metric_type type;
	const char *help;  /* one line, no newline or backslash */
	const char *label; /* the one label's name ("service", "state", "reason"), or NULL */
	/* the value source: a field, an array of fields, or a read function */
	size_t off;                     /* METRIC_FIELD(S): offset of the uint64_t (first) */
	const char *const *label_values; /* METRIC_FIELDS: one per element, n of them */
	size_t n;
	void (*read)(struct metric_out *o, void *base);
	const char *tile; /* the status page shows it as a tile with this label, or NULL */
	const char *label2; /* a second label's name (read functions, metric_emit2), or NULL */
	const char *label3; /* a third (metric_emit3), or NULL */
};

#define METRIC_FIELD(type, field) .off = offsetof(type, field)
#define METRIC_FIELDS(type, field, values, count)                                                 \
	.off = offsetof(type, field), .label_values = (values), .n = (count)
#define METRIC_READ(fn) .read = (fn)

/* A read function's samples: an unlabelled value, one per label value (the metric's label
 * must be set), or a histogram of n bounds with n + 1 counts (the last is +Inf). */
void metric_emit(struct metric_out *o, const char *label_value, uint64_t value);
/* A sample of a metric with two labels (label and label2 set). */
void metric_emit2(struct metric_out *o, const char *value1, const char *value2,
		  uint64_t value);
/* A sample of a metric with three labels (label, label2 and label3 set). */
void metric_emit3(struct metric_out *o, const char *value1, const char *value2,
		  const char *value3, uint64_t value);
void metric_emit_hist(struct metric_out *o, const double *bounds, const uint64_t *counts,
		      size_t n, double sum);

struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
/* Registers table[0..n) over base (fields are read at base + off; read gets base). The table
 * must outlive the registry. */
void metrics_add(struct metrics *m, const struct metric *table, size_t n, void *base);

/* n zeroed bytes that live as long as m: room for a snapshot taken for one rendering
 * (counts read under a lock, a list known at run time) to register tables over. */
void *metrics_scratch(struct metrics *m, size_t n);

/* The three views. */
void metrics_prometheus(const struct metrics *m, struct evbuffer *out);
/* {"name": value, "name": {"label value": value, ...}, "name": {"value": {"value 2":
 * value, ...}, ...}, "name": {"buckets": [[le, count], ...], "sum": s, "count": c}, ...};
 * a new reference. */
json_t *metrics_json(const struct metrics *m);
/* A tile per metric with a tile label (unlabelled values; labelled ones as their sum). */
void metrics_tiles(const struct metrics *m, struct evbuffer *out);

#endif
