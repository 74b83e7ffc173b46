/* netwall messages purge: removes messages by hand, one (purge ID) or every one in a state
 * (purge --state S [--until WHEN]), with a reason. Dead letters are what it is for; a
 * delivered, ignored or rejected message may go too, but never a received or failed one:
 * those are still to be delivered, and a lost order is the worst outcome there is, so no
 * option overrides it. Each transaction of at most PURGE_BATCH messages appends its own
 * audit record (action "purge", the ids) in that transaction. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/messages.h"

#define PURGE_BATCH 200 /* messages per transaction: an intake writing meanwhile waits little */

static const char refused[] = "received and failed messages are still to be delivered, and "
			      "purge never removes them (replay, or wait for delivery or a "
			      "dead letter)";

/* Whether id is the newest message of a SQLite store, which keeps it (its ids are the
 * highest + 1; PostgreSQL's come from a sequence). */
static bool purge_newest(struct store *s, int64_t id)
{
	struct store_filter f = {.state = -1, .limit = 1};
	struct store_row *rows = NULL;
	char err[256];
	int n;

	if (strcmp(store_kind(s), "sqlite") != 0)
		return false;
	n = store_list(s, &f, &rows, err, sizeof(err));
	bool newest = n == 1 && rows[0].id == id;

	store_rows_free(rows, n > 0 ? (size_t)n : 0);
	return newest;
}

/* Checks one message: there, and in a state purge may remove. 0, or 1 having said why. */
static int purge_check(struct store *s, int64_t id)
{
	struct store_row row;
	char err[512];
	int rc = store_get(s, id, &row, err, sizeof(err));

	if (rc == -1) {
		fprintf(stderr, "netwall messages: %s\n", err);
		return 1;
	}
	if (rc == 0) {
		fprintf(stderr, "netwall messages: no message %lld\n", (long long)id);
		return 1;
	}
	rc = row.state == STORE_RECEIVED || row.state == STORE_FAILED;
	if (rc)
		fprintf(stderr, "netwall messages: message %lld is %s: %s\n", (long long)id,
			store_state_name(row.state), refused);
	store_row_clear(&row);
	if (rc == 0 && purge_newest(s, id)) {
		fprintf(stderr, "netwall messages: message %lld is the newest stored, kept until "
				"another comes so that its id is never given out again\n",
			(long long)id);
		rc = 1;
	}
	return rc;
}

/* What was asked, for the audit record: "purge 42", "purge --state dead --until 1764000000000ms". */
static void purge_what(const struct messages_opts *o, char *out, size_t len)
{
	if (o->id > 0)
		snprintf(out, len, "purge %lld", (long long)o->id);
	else if (o->until_ms > 0)
		snprintf(out, len, "purge --state %s --until %lldms", store_state_name(o->state),
			 (long long)o->until_ms);
	else
		snprintf(out, len, "purge --state %s", store_state_name(o->state));
}

int messages_purge(struct store *s, const struct messages_opts *o)
{
	struct store_prune sel = {.id = o->id, .state = o->id > 0 ? -1 : o->state,
				  .before_ms = o->until_ms, .max = PURGE_BATCH};
	char who[160], what[128], err[512];
	struct store_audit a = {.who = who, .via = "cli", .action = "purge", .what = what,
				.reason = o->reason};
	uint64_t n = 0, bytes = 0;

	if (o->id == 0 && (o->state == STORE_RECEIVED || o->state == STORE_FAILED)) {
		fprintf(stderr, "netwall messages: %s\n", refused);
		return 1;
	}
	if (o->id > 0 && purge_check(s, o->id) != 0)
		return 1;
	messages_audit_who(who, sizeof(who));
	purge_what(o, what, sizeof(what));
	for (;;) {
		uint64_t b;
		int got = store_prune(s, &sel, &a, &b, err, sizeof(err));

		if (got == -1) {
			fprintf(stderr, "netwall messages: %s (%llu purged before)\n", err,
				(unsigned long long)n);
			return 1;
		}
		if (got == 0)
			break;
		n += (uint64_t)got;
		bytes += b;
		if (o->id > 0)
			break;
	}
	if (o->id > 0 && n == 0) {
		fprintf(stderr, "netwall messages: message %lld was not purged (it changed "
				"meanwhile)\n", (long long)o->id);
		return 1;
	}
	if (o->json)
		printf("{\"purged\": %llu, \"bytes\": %llu}\n", (unsigned long long)n,
		       (unsigned long long)bytes);
	else
		printf("purged %llu message%s (%llu bytes)\n", (unsigned long long)n,
		       n == 1 ? "" : "s", (unsigned long long)bytes);
	return 0;
}
