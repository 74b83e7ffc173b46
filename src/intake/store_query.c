/* The SQL of a list or a search, the same for both backends but for the placeholders and
 * PostgreSQL's byte-wise collation on ranges. Every condition walks an index (schema 3):
 * the keys (message_keys), the control ID, the sender, the type, the state, the date, the
 * time received. Results come newest first (by id). On SQLite, a search by a key or a
 * control ID, which finds few messages, is made to start from that index ("+column" keeps
 * SQLite from using the others), so that its cost is the few messages it finds even when
 * another condition is also given; the rest is left to each database's planner. */
#include "intake/store_query.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Appends printf-style text to q->sql; the text is ours and always fits. */
static void add(struct store_query *q, const char *fmt, ...)
{
	size_t used = strlen(q->sql);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q->sql + used, sizeof(q->sql) - used, fmt, ap);
	va_end(ap);
}

/* A parameter's placeholder, added to q->params: "?3", or "$3::text", in q->ph until the
 * next one (each add() takes one at most). */
static const char *param(struct store_query *q, bool pg, const char *text, const int64_t *num)
{
	char *ph = q->ph;
	struct store_param *p = &q->params[q->nparams++];

	p->is_num = num != NULL;
	p->num = num != NULL ? *num : 0;
	p->text = text;
	if (pg && num != NULL) {
		snprintf(q->num[q->nparams - 1], sizeof(q->num[0]), "%lld", (long long)*num);
		p->text = q->num[q->nparams - 1];
	}
	if (pg)
		snprintf(ph, sizeof(q->ph), "$%d::%s", q->nparams, num != NULL ? "bigint" : "text");
	else
		snprintf(ph, sizeof(q->ph), "?%d", q->nparams);
	return ph;
}

static const char *text_param(struct store_query *q, bool pg, const char *text)
{
	return param(q, pg, text, NULL);
}

static const char *num_param(struct store_query *q, bool pg, int64_t n)
{
	return param(q, pg, NULL, &n);
}

/* The keys asked for, each an IN over message_keys' primary key and the keys still
 * pending (a scan of that short table). */
static void add_keys(struct store_query *q, const struct store_filter *f, bool pg)
{
	const char *v[STORE_KEY_NKINDS] = {
		[STORE_KEY_PATIENT] = f->patient, [STORE_KEY_NAME] = f->name,
		[STORE_KEY_ORDER] = f->order, [STORE_KEY_CONTROL] = f->control_id};

	for (int k = 0; k < STORE_KEY_NKINDS; k++) {
		const char *kind = store_key_kind_name((enum store_key_kind)k);
		char ph[sizeof(q->ph)];

		if (v[k] == NULL)
			continue;
		memcpy(ph, text_param(q, pg, v[k]), sizeof(ph)); /* the one value, twice */
		add(q, " AND id IN (SELECT message_id FROM message_keys WHERE kind = '%s'", kind);
		add(q, " AND value = %s UNION ALL SELECT message_id FROM message_keys_pending", ph);
		add(q, " WHERE kind = '%s' AND value = %s)", kind, ph);
	}
}

/* A type (RDE^O11) exactly, or a family (RDE): itself or anything after "RDE^", as a
 * range of the type index: "RDE^" <= type < "RDE_" ('_' follows '^'). */
static int add_type(struct store_query *q, const struct store_filter *f, bool pg,
		    const char *plus)
{
	const char *c = pg ? " COLLATE \"C\"" : "";
	size_t n = strlen(f->type);

	if (strchr(f->type, '^') != NULL) {
		add(q, " AND %stype%s = %s", plus, c, text_param(q, pg, f->type));
		return 0;
	}
	if (n + 2 > sizeof(q->made[0]))
		return -1;
	snprintf(q->made[0], sizeof(q->made[0]), "%s^", f->type);
	snprintf(q->made[1], sizeof(q->made[1]), "%s_", f->type);
	add(q, " AND (%stype%s = %s", plus, c, text_param(q, pg, f->type));
	add(q, " OR (%stype%s >= %s", plus, c, text_param(q, pg, q->made[0]));
	add(q, " AND %stype%s < %s))", plus, c, text_param(q, pg, q->made[1]));
	return 0;
}

/* MSH-7 beginning with the digits asked: prefix <= date < prefix ":" (a DTM's characters
 * after the prefix, digits, '.', '+' and '-', all sort before ':'). */
static int add_date(struct store_query *q, const struct store_filter *f, bool pg,
		    const char *plus)
{
	const char *c = pg ? " COLLATE \"C\"" : "";

	if (strlen(f->date) + 2 > sizeof(q->made[2]))
		return -1;
	snprintf(q->made[2], sizeof(q->made[2]), "%s:", f->date);
	add(q, " AND %smessage_date%s >= %s", plus, c, text_param(q, pg, f->date));
	add(q, " AND %smessage_date%s < %s", plus, c, text_param(q, pg, q->made[2]));
	return 0;
}

/* The columns of the keys, merged or pending: SQLite's group_concat, PostgreSQL's
 * string_agg. */
static void add_key_cols(struct store_query *q, bool pg)
{
	static const char *const kinds[2] = {"patient", "name"};
	const char *ch = pg ? "chr" : "char";

	for (int i = 0; i < 2; i++) {
		add(q, ", (SELECT %s(v, %s(30)) FROM (", pg ? "string_agg" : "group_concat", ch);
		for (int t = 0; t < 2; t++)
			add(q, "%sSELECT value || %s(31) || authority || %s(31) || id_type AS v "
			       "FROM message_keys%s WHERE message_id = messages.id AND kind = '%s'",
			    t ? " UNION ALL " : "", ch, ch, t ? "_pending" : "", kinds[i]);
		add(q, ") AS k)");
	}
}

/* The order the ids of a limited search are picked in, before id, on PostgreSQL: a search
 * by the time received or by the message date walks that index from its newest end. Ids
 * follow the time received closely but its planner cannot know it: asked for the newest
 * ids of a day two months ago, it walked the ids back from today through every message
 * since (100 ms on a million). SQLite, without statistics, takes the range's index and
 * sorts the ids it holds, which is as fast, and walks a sender's or a type's index in id
 * order, which a second order would spoil. */
static const char *inner_order(const struct store_filter *f, bool pg)
{
	if (!pg || f->patient != NULL || f->name != NULL || f->order != NULL ||
	    f->control_id != NULL)
		return "";
	if (f->since_ms > 0 || f->until_ms > 0)
		return "received_ms DESC, ";
	if (f->date != NULL)
		return "message_date COLLATE \"C\" DESC, ";
	return "";
}

/* With a limit, the conditions pick the ids first, in a subquery that the indexes can
 * answer alone (each index ends in id, or is SQLite's, which holds the rowid), and only
 * the rows kept are read: a search that matches 50,000 messages sorts 50,000 ids, not
 * 50,000 messages. */
int store_query_list(struct store_query *q, const struct store_filter *f, const char *cols,
		     bool pg)
{
	bool keyed = f->patient != NULL || f->name != NULL || f->order != NULL ||
		     f->control_id != NULL;
	/* SQLite: the other conditions do not pick the index once a key does */
	const char *plus = !pg && keyed ? "+" : "";

	memset(q, 0, sizeof(*q));
	add(q, "SELECT %s", cols);
	if (f->with_keys)
		add_key_cols(q, pg);
	add(q, " FROM messages WHERE %s", pg ? "true" : "1");
	if (f->limit > 0)
		add(q, " AND id IN (SELECT id FROM messages WHERE %s", pg ? "true" : "1");
	add_keys(q, f, pg);
	if (f->app != NULL)
		add(q, " AND %ssending_app%s = %s", plus, pg ? " COLLATE \"C\"" : "",
		    text_param(q, pg, f->app));
	if (f->facility != NULL)
		add(q, " AND %ssending_facility = %s", plus, text_param(q, pg, f->facility));
	if (f->type != NULL && add_type(q, f, pg, plus) == -1)
		return -1;
	if (f->state >= 0)
		add(q, " AND %sstate = %s", plus,
		    text_param(q, pg, store_state_name((enum store_state)f->state)));
	if (f->date != NULL && add_date(q, f, pg, plus) == -1)
		return -1;
	if (f->since_ms > 0)
		add(q, " AND %sreceived_ms >= %s", plus, num_param(q, pg, f->since_ms));
	if (f->until_ms > 0)
		add(q, " AND %sreceived_ms < %s", plus, num_param(q, pg, f->until_ms));
	if (f->before_id > 0)
		add(q, " AND %sid < %s", plus, num_param(q, pg, f->before_id));
	if (f->reused_only)
		add(q, pg ? " AND reused_control_id" : " AND reused_control_id = 1");
	if (f->limit > 0)
		add(q, " ORDER BY %sid DESC LIMIT %s)", inner_order(f, pg),
		    num_param(q, pg, f->limit > INT64_MAX ? INT64_MAX : (int64_t)f->limit));
	add(q, " ORDER BY id DESC");
	return 0;
}
