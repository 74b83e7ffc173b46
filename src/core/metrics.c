#include "core/metrics.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/page.h"
#include "core/utf8.h"
#include "core/xalloc.h"

struct metrics_table {
	const struct metric *t;
	size_t n;
	void *base;
};

struct metrics {
	struct metrics_table *tables;
	size_t ntables;
	void **scratch;
	size_t nscratch;
};

enum metric_view { VIEW_PROM, VIEW_JSON, VIEW_SUM };

/* One metric being rendered into one view. */
struct metric_out {
	enum metric_view view;
	const struct metric *m;
	struct evbuffer *buf; /* VIEW_PROM */
	json_t *json;         /* VIEW_JSON: the metric's value, built as samples come */
	uint64_t sum;         /* VIEW_SUM */
};

static const char *const metric_type_names[] = { "counter", "gauge", "histogram" };

struct metrics *metrics_new(void)
{
	return xcalloc(1, sizeof(struct metrics));
}

void metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nscratch; i++)
		free(m->scratch[i]);
	free(m->scratch);
	free(m->tables);
	free(m);
}

void metrics_add(struct metrics *m, const struct metric *table, size_t n, void *base)
{
	m->tables = xreallocarray(m->tables, m->ntables + 1, sizeof(*m->tables));
	m->tables[m->ntables++] = (struct metrics_table){ table, n, base };
}

void *metrics_scratch(struct metrics *m, size_t n)
{
	m->scratch = xreallocarray(m->scratch, m->nscratch + 1, sizeof(*m->scratch));
	return m->scratch[m->nscratch++] = xcalloc(1, n);
}

/* A label value in Prometheus text: backslash, quote and newline escaped. */
static void metric_prom_label(struct evbuffer *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			evbuffer_add_printf(out, "\\%c", *v);
		else if (*v == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, v, 1);
	}
}

/* A label value both views can carry: JSON keys and Prometheus label values are UTF-8. A
 * sample whose value is not is left out of every view (names from the config are checked
 * long before; this is the last guard). */
static bool metric_label_ok(const char *v)
{
	return v == NULL || utf8_valid(v, strlen(v));
}

void metric_emit(struct metric_out *o, const char *label_value, uint64_t value)
{
	const struct metric *m = o->m;

	if (!metric_label_ok(label_value))
		return;
	switch (o->view) {
	case VIEW_PROM:
		if (label_value == NULL || m->label == NULL) {
			evbuffer_add_printf(o->buf, "%s %" PRIu64 "\n", m->name, value);
			break;
		}
		evbuffer_add_printf(o->buf, "%s{%s=\"", m->name, m->label);
		metric_prom_label(o->buf, label_value);
		evbuffer_add_printf(o->buf, "\"} %" PRIu64 "\n", value);
		break;
	case VIEW_JSON:
		if (label_value == NULL || m->label == NULL) {
			json_decref(o->json);
			o->json = json_integer((json_int_t)value);
		} else {
			if (!json_is_object(o->json)) {
				json_decref(o->json);
				o->json = json_object();
			}
			json_object_set_new(o->json, label_value, json_integer((json_int_t)value));
		}
		break;
	case VIEW_SUM:
		o->sum += value;
		break;
	}
}

/* A sample of a metric with n labels (2 or 3): Prometheus text, or JSON objects nested a
 * level per label. */
static void metric_emit_n(struct metric_out *o, const char *const *values, size_t n,
			  uint64_t value)
{
	const struct metric *m = o->m;
	const char *names[3] = { m->label, m->label2, m->label3 };
	json_t *at;

	for (size_t i = 0; i < n; i++)
		if (values[i] == NULL || !metric_label_ok(values[i]))
			return;
	switch (o->view) {
	case VIEW_PROM:
		evbuffer_add_printf(o->buf, "%s{", m->name);
		for (size_t i = 0; i < n; i++) {
			evbuffer_add_printf(o->buf, "%s%s=\"", i ? "," : "", names[i]);
			metric_prom_label(o->buf, values[i]);
			evbuffer_add(o->buf, "\"", 1);
		}
		evbuffer_add_printf(o->buf, "} %" PRIu64 "\n", value);
		break;
	case VIEW_JSON:
		if (!json_is_object(o->json)) {
			json_decref(o->json);
			o->json = json_object();
		}
		at = o->json;
		for (size_t i = 0; i + 1 < n; i++) {
			json_t *inner = json_object_get(at, values[i]);
			if (inner == NULL) {
				inner = json_object();
				if (json_object_set_new(at, values[i], inner) == -1)
					return; /* jansson freed inner */
			}
			at = inner;
		}
		json_object_set_new(at, values[n - 1], json_integer((json_int_t)value));
		break;
	case VIEW_SUM:
		o->sum += value;
		break;
	}
}

void metric_emit2(struct metric_out *o, const char *value1, const char *value2,
		  uint64_t value)
{
	const char *v[2] = { value1, value2 };

	metric_emit_n(o, v, 2, value);
}

void metric_emit3(struct metric_out *o, const char *value1, const char *value2,
		  const char *value3, uint64_t value)
{
	const char *v[3] = { value1, value2, value3 };

	metric_emit_n(o, v, 3, value);
}

void metric_emit_hist(struct metric_out *o, const double *bounds, const uint64_t *counts,
		      size_t n, double sum)
{
	uint64_t cum = 0;
	json_t *b = NULL;

	if (o->view == VIEW_JSON)
		b = json_array();
	for (size_t i = 0; i <= n; i++) {
		cum += counts[i];
		if (o->view == VIEW_PROM && i < n)
			evbuffer_add_printf(o->buf, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", o->m->name,
					    bounds[i], cum);
		else if (o->view == VIEW_PROM)
			evbuffer_add_printf(o->buf, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n",
					    o->m->name, cum);
		else if (o->view == VIEW_JSON && i < n)
			json_array_append_new(b, json_pack("[fI]", bounds[i], (json_int_t)cum));
		else if (o->view == VIEW_JSON) /* +Inf: JSON has no infinity; null stands for it */
			json_array_append_new(b, json_pack("[nI]", (json_int_t)cum));
	}
	if (o->view == VIEW_PROM) {
		evbuffer_add_printf(o->buf, "%s_sum %.6f\n%s_count %" PRIu64 "\n", o->m->name, sum,
				    o->m->name, cum);
	} else if (o->view == VIEW_JSON) {
		json_decref(o->json);
		o->json = json_pack("{s:o,s:f,s:I}", "buckets", b, "sum", sum, "count",
				    (json_int_t)cum);
	} else {
		o->sum += cum;
	}
}

/* Emits m's samples from its source. */
static void metric_read(struct metric_out *o, const struct metric *m, void *base)
{
	const uint64_t *v = (const uint64_t *)((const char *)base + m->off);

	o->m = m;
	if (m->read != NULL)
		m->read(o, base);
	else if (m->label_values == NULL)
		metric_emit(o, NULL, *v);
	else
		for (size_t i = 0; i < m->n; i++)
			metric_emit(o, m->label_values[i], v[i]);
}

void metrics_prometheus(const struct metrics *m, struct evbuffer *out)
{
	struct metric_out o = { .view = VIEW_PROM, .buf = out };

	for (size_t t = 0; t < m->ntables; t++) {
		for (size_t i = 0; i < m->tables[t].n; i++) {
			const struct metric *x = &m->tables[t].t[i];
			evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help,
					    x->name, metric_type_names[x->type]);
			metric_read(&o, x, m->tables[t].base);
		}
	}
}

json_t *metrics_json(const struct metrics *m)
{
	json_t *all = json_object();

	for (size_t t = 0; t < m->ntables; t++) {
		for (size_t i = 0; i < m->tables[t].n; i++) {
			const struct metric *x = &m->tables[t].t[i];
			struct metric_out o = { .view = VIEW_JSON };
			metric_read(&o, x, m->tables[t].base);
			/* a labelled metric with no sample yet is an empty object, not absent */
			json_object_set_new(all, x->name, o.json != NULL ? o.json : json_object());
		}
	}
	return all;
}

void metrics_tiles(const struct metrics *m, struct evbuffer *out)
{
	for (size_t t = 0; t < m->ntables; t++) {
		for (size_t i = 0; i < m->tables[t].n; i++) {
			const struct metric *x = &m->tables[t].t[i];
			struct metric_out o = { .view = VIEW_SUM };
			if (x->tile == NULL)
				continue;
			metric_read(&o, x, m->tables[t].base);
			page_tile(out, x->name, x->tile, o.sum);
		}
	}
}
