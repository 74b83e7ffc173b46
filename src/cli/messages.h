/* netwall messages (cmd_messages.c): the options its rooms share. messages_out.c writes
 * what they print (times, JSON, text made safe for a terminal); messages_show.c shows one
 * message; messages_search.c finds messages by patient, order, sender, date and more;
 * messages_audit.c records every look at message content and lists the records;
 * messages_purge.c removes messages by hand. */
#ifndef NETWALL_CLI_MESSAGES_H
#define NETWALL_CLI_MESSAGES_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "intake/store.h"

struct messages_opts {
	const char *config, *store, *cmd, *type;
	int state;
	int64_t id, before;
	uint64_t limit;
	bool json, raw, all_dead, all_failed, reused;
	/* search */
	const char *patient, *name, *order, *control_id, *sender, *date, *reason;
	int64_t since_ms, until_ms;
};

/* messages_out.c */
/* ms as 2026-11-22T10:15:00Z (UTC), "-" when 0. */
void messages_out_time(int64_t ms, char *out, size_t len);
/* The header of a stored message as a JSON object (the caller owns it). */
json_t *messages_out_row(const struct store_row *r);
/* Prints o (and frees it). Returns the exit status: 0, or 1 when it cannot be written. */
int messages_out_json(json_t *o);
/* A JSON string of stored bytes: valid UTF-8 always (Latin-1 when MSH-18 says 8859/1,
 * otherwise invalid bytes become U+FFFD), as the delivery JSON does. */
json_t *messages_out_bytes(const char *p, size_t len);
/* in, with control characters made '?', cut to len - 1 bytes, in out; returns out. */
const char *messages_out_tty(char *out, size_t len, const char *in);

/* messages_show.c: netwall messages show ID. Returns the exit status. */
int messages_show(struct store *s, const struct messages_opts *o);

/* messages_search.c: netwall messages search. Returns the exit status. */
int messages_search(struct store *s, const struct messages_opts *o);
/* Takes argv[*i] if it is a search option (and its value, moving *i): returns 1, 0 if it
 * is not one, -1 for a bad value (said on stderr). */
int messages_search_opt(int argc, char **argv, int *i, struct messages_opts *o);

/* messages_audit.c: appends the audit record of a look at messages ids[0..n) (before
 * anything of them is shown): action "show", "search" or "replay", what was asked, o's
 * reason. Returns 0, or -1 having said why on stderr (then show nothing). */
int messages_audit_note(struct store *s, const struct messages_opts *o, const char *action,
			const char *what, const int64_t *ids, size_t n);
/* The OS user running this command, "uid 1000" without a name; under sudo, "root (sudo
 * by alice)": an audit record's who. */
void messages_audit_who(char *out, size_t len);
/* netwall messages audit: the records, newest first. Returns the exit status. */
int messages_audit_list(struct store *s, const struct messages_opts *o);

/* messages_purge.c: netwall messages purge (ID, or --state S [--until WHEN]), each
 * transaction with its audit record. Returns the exit status. */
int messages_purge(struct store *s, const struct messages_opts *o);

#endif
