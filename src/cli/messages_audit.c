/* netwall messages and its audit trail: every command that reads message content (show,
 * search) or puts messages back in the queue (replay) first appends a record to the
 * store's audit trail, durable before anything is shown: who (the OS user running the
 * command; under sudo, who ran sudo too), what was asked, which messages, and the reason
 * given. When the record cannot be written, nothing is shown. netwall messages audit lists
 * the records, newest first; nothing in netwall changes or deletes them. */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/messages.h"
#include "core/xalloc.h"

void messages_audit_who(char *out, size_t len)
{
	struct passwd pw, *res = NULL;
	char buf[1024], name[64];
	const char *sudo = getenv("SUDO_USER");

	if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		snprintf(name, sizeof(name), "%s", res->pw_name);
	else
		snprintf(name, sizeof(name), "uid %u", (unsigned)geteuid());
	if (sudo != NULL && sudo[0] != '\0' && strcmp(sudo, name) != 0)
		snprintf(out, len, "%s (sudo by %.64s)", name, sudo);
	else
		snprintf(out, len, "%s", name);
}

int messages_audit_note(struct store *s, const struct messages_opts *o, const char *action,
			const char *what, const int64_t *ids, size_t n)
{
	char who[160], err[512];
	struct store_audit a = {.who = who, .via = "cli", .action = action, .what = what,
				.ids = ids, .nids = n, .reason = o->reason};

	messages_audit_who(who, sizeof(who));
	if (store_audit_add(s, &a, err, sizeof(err)) == -1) {
		fprintf(stderr, "netwall messages: cannot write the audit record, so nothing is "
				"shown: %s\n", err);
		return -1;
	}
	return 0;
}

/* "12,13,40" as a JSON array of numbers. */
static json_t *ids_json(const char *ids)
{
	json_t *a = json_array();

	for (const char *p = ids; p != NULL && *p != '\0';) {
		char *end;
		long long v = strtoll(p, &end, 10);

		if (end == p)
			break;
		json_array_append_new(a, json_integer(v));
		p = *end == ',' ? end + 1 : NULL;
	}
	return a;
}

static int print_json(const struct store_audit_row *rows, int n)
{
	json_t *a = json_array();

	for (int i = 0; i < n; i++) {
		const struct store_audit_row *r = &rows[i];
		json_t *o = json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:I}", "id", (json_int_t)r->id,
				      "at_ms", (json_int_t)r->at_ms, "who", r->who, "via", r->via,
				      "action", r->action, "what", r->what, "messages",
				      (json_int_t)r->messages);

		if (o == NULL)
			xalloc_fail("json");
		json_object_set_new(o, "message_ids", ids_json(r->message_ids));
		json_object_set_new(o, "reason", r->reason ? json_string(r->reason) : json_null());
		json_array_append_new(a, o);
	}
	return messages_out_json(a);
}

static void print_text(const struct store_audit_row *rows, int n)
{
	printf("%-6s %-20s %-20s %-4s %-7s %-8s %-24s %s\n", "ID", "WHEN", "WHO", "VIA", "ACTION",
	       "MESSAGES", "IDS", "WHAT / REASON");
	for (int i = 0; i < n; i++) {
		const struct store_audit_row *r = &rows[i];
		char t[32], who[64], ids[25], what[160], reason[160];

		messages_out_time(r->at_ms, t, sizeof(t));
		messages_out_tty(ids, sizeof(ids), r->message_ids);
		if (strlen(r->message_ids) >= sizeof(ids))
			memcpy(ids + sizeof(ids) - 4, "...", 4);
		printf("%-6lld %-20s %-20s %-4s %-7s %-8llu %-24s %s%s%s\n", (long long)r->id, t,
		       messages_out_tty(who, sizeof(who), r->who), r->via, r->action,
		       (unsigned long long)r->messages, ids[0] ? ids : "-",
		       messages_out_tty(what, sizeof(what), r->what), r->reason ? " / " : "",
		       r->reason ? messages_out_tty(reason, sizeof(reason), r->reason) : "");
	}
	if (n == 0)
		printf("(no audit record)\n");
}

int messages_audit_list(struct store *s, const struct messages_opts *o)
{
	struct store_audit_row *rows = NULL;
	char err[512];
	int n = store_audit_list(s, o->before, (size_t)o->limit, &rows, err, sizeof(err)), rc = 0;

	if (n == -1) {
		fprintf(stderr, "netwall messages: %s\n", err);
		return 1;
	}
	if (o->json)
		rc = print_json(rows, n);
	else
		print_text(rows, n);
	store_audit_rows_free(rows, (size_t)n);
	return rc;
}
