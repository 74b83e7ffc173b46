/* netwall messages search: the messages of a patient (any PID-3 identifier, or a family
 * name), of an order (ORC-2 or ORC-3), by control ID, sender, type, state, message date
 * and time received, combined, newest first, through the store's index. Its output holds
 * patient data (the identifiers and names of each message). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/messages.h"
#include "core/xalloc.h"
#include "intake/search_terms.h"

/* The first record of a US/RS-joined keys column ("P100" US "HOSP" US "MR" RS ...) as
 * "P100 (HOSP MR)", with " +N" when there are more, in out. */
static const char *first_key(const char *keys, char *out, size_t len)
{
	char tmp[256];
	size_t n = 0, more = 0;
	const char *p;

	if (keys == NULL || keys[0] == '\0')
		return "-";
	for (p = keys; *p != '\0'; p++)
		more += *p == '\x1e';
	p = strchr(keys, '\x1e');
	n = p != NULL ? (size_t)(p - keys) : strlen(keys);
	if (n >= sizeof(tmp))
		n = sizeof(tmp) - 1;
	memcpy(tmp, keys, n);
	tmp[n] = '\0';
	{
		char *us = strchr(tmp, '\x1f');
		char id[160];

		if (us != NULL) {
			*us = '\0';
			for (char *q = us + 1; *q != '\0'; q++)
				if (*q == '\x1f')
					*q = ' ';
		}
		messages_out_tty(id, sizeof(id), tmp);
		if (us != NULL && us[1] != '\0' && us[1] != '\x1f')
			snprintf(out, len, "%s (%s)", id, us + 1);
		else
			snprintf(out, len, "%s", id);
	}
	if (more > 0) {
		size_t used = strlen(out);

		snprintf(out + used, len - used, " +%zu", more);
	}
	explicit_bzero(tmp, sizeof(tmp));
	return out;
}

/* A keys column as a JSON array: patients as {id, authority, type}, names as strings. */
static json_t *keys_json(const char *keys, bool patients)
{
	json_t *a = json_array();
	const char *p = keys;

	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, '\x1e');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
		char *rec = xstrndup(p, n), *f[3] = {rec, "", ""};

		for (int i = 1; i < 3; i++) {
			char *us = strchr(f[i - 1], '\x1f');

			if (us == NULL)
				break;
			*us = '\0';
			f[i] = us + 1;
		}
		if (patients)
			json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "id", f[0],
							   "authority", f[1], "type", f[2]));
		else
			json_array_append_new(a, json_string(f[0]));
		explicit_bzero(rec, n);
		free(rec);
		p = end != NULL ? end + 1 : NULL;
	}
	return a;
}

static int print_json(const struct store_row *rows, int n)
{
	json_t *a = json_array();

	for (int i = 0; i < n; i++) {
		json_t *j = messages_out_row(&rows[i]);

		json_object_set_new(j, "reused_control_id", json_boolean(rows[i].reused));
		json_object_set_new(j, "patient_ids", keys_json(rows[i].patients, true));
		json_object_set_new(j, "family_names", keys_json(rows[i].names, false));
		json_array_append_new(a, j);
	}
	return messages_out_json(a);
}

static void print_text(const struct store_row *rows, int n)
{
	printf("%-8s %-20s %-10s %-9s %-20s %-20s %-24s %s\n", "ID", "RECEIVED", "STATE", "TYPE",
	       "CONTROL ID", "SENDER", "PATIENT", "NAME");
	for (int i = 0; i < n; i++) {
		const struct store_row *r = &rows[i];
		char t[32], ctrl[64], app[64], fac[64], sender[130], pat[200], name[200];

		messages_out_time(r->received_ms, t, sizeof(t));
		snprintf(sender, sizeof(sender), "%s%s%s", messages_out_tty(app, sizeof(app), r->app),
			 r->facility[0] ? "/" : "", messages_out_tty(fac, sizeof(fac), r->facility));
		printf("%-8lld %-20s %-10s %-9s %-20s %-20s %-24s %s\n", (long long)r->id, t,
		       store_state_name(r->state), r->type,
		       messages_out_tty(ctrl, sizeof(ctrl), r->control_id), sender,
		       first_key(r->patients, pat, sizeof(pat)), first_key(r->names, name, sizeof(name)));
	}
	if (n == 0)
		printf("(no message matches)\n");
}

/* The filter the options ask for; facility points into fac (the part of --sender after
 * its first '/'). */
static void search_filter(const struct messages_opts *o, struct store_filter *f, char *app,
			  size_t applen)
{
	memset(f, 0, sizeof(*f));
	f->state = o->state;
	f->type = o->type;
	f->before_id = o->before;
	f->limit = (size_t)o->limit;
	f->reused_only = o->reused;
	f->patient = o->patient;
	f->name = o->name;
	f->order = o->order;
	f->control_id = o->control_id;
	f->date = o->date;
	f->since_ms = o->since_ms;
	f->until_ms = o->until_ms;
	f->with_keys = true;
	if (o->sender != NULL)
		search_terms_sender(f, o->sender, app, applen);
}

/* Records the search and the messages it found; -1 when that fails (show nothing). */
static int audit(struct store *s, const struct messages_opts *o, const struct store_filter *f,
		 const struct store_row *rows, int n)
{
	int64_t *ids = xcalloc((size_t)n + 1, sizeof(*ids));
	char what[1024];
	int rc;

	for (int i = 0; i < n; i++)
		ids[i] = rows[i].id;
	snprintf(what, sizeof(what), "search");
	search_terms_describe(f, o->sender, what + 6, sizeof(what) - 6);
	rc = messages_audit_note(s, o, "search", what, ids, (size_t)n);
	free(ids);
	return rc;
}

int messages_search(struct store *s, const struct messages_opts *o)
{
	struct store_filter f;
	struct store_row *rows = NULL;
	char err[512], app[256];
	int n;

	search_filter(o, &f, app, sizeof(app));
	n = store_list(s, &f, &rows, err, sizeof(err));
	if (n == -1) {
		fprintf(stderr, "netwall messages: %s\n", err);
		return 1;
	}
	if (audit(s, o, &f, rows, n) == -1) {
		store_rows_free(rows, (size_t)n);
		return 1;
	}
	if (o->json) {
		int rc = print_json(rows, n);

		store_rows_free(rows, (size_t)n);
		return rc;
	}
	print_text(rows, n);
	store_rows_free(rows, (size_t)n);
	return 0;
}

int messages_search_opt(int argc, char **argv, int *i, struct messages_opts *o)
{
	static char date[32];
	static const struct {
		const char *name;
		size_t off;
	} texts[] = {
		{"--patient", offsetof(struct messages_opts, patient)},
		{"--name", offsetof(struct messages_opts, name)},
		{"--order", offsetof(struct messages_opts, order)},
		{"--control-id", offsetof(struct messages_opts, control_id)},
		{"--sender", offsetof(struct messages_opts, sender)},
		{"--reason", offsetof(struct messages_opts, reason)},
	};
	const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;

	for (size_t k = 0; k < sizeof(texts) / sizeof(texts[0]); k++) {
		if (strcmp(a, texts[k].name) != 0)
			continue;
		if (v == NULL || v[0] == '\0')
			goto bad;
		*(const char **)((char *)o + texts[k].off) = v;
		++*i;
		return 1;
	}
	if (strcmp(a, "--since") == 0 || strcmp(a, "--until") == 0) {
		bool until = a[2] == 'u';

		if (v == NULL || search_terms_when(v, until, until ? &o->until_ms : &o->since_ms) == -1)
			goto bad;
		++*i;
		return 1;
	}
	if (strcmp(a, "--date") == 0) {
		if (v == NULL || search_terms_date(v, date, sizeof(date)) == -1)
			goto bad;
		o->date = date;
		++*i;
		return 1;
	}
	return 0;
bad:
	fprintf(stderr, "netwall messages: %s needs %s\n", a,
		strcmp(a, "--since") == 0 || strcmp(a, "--until") == 0
			? "an ISO date (2026-11-22) or date and time (2026-11-22T10:15:00Z), UTC"
		: strcmp(a, "--date") == 0 ? "a date as MSH-7 begins (2026-11-22, 2026112210)"
					   : "a value");
	return -1;
}
