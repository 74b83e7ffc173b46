/* The terms of a search of the store, read and written the same way wherever a search is
 * asked for (netwall messages search, the admin listener's message browser): times
 * received, a message date, a sender, and the criteria as the audit trail records them. */
#ifndef NETWALL_SEARCH_TERMS_H
#define NETWALL_SEARCH_TERMS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "intake/store_util.h"

/* An ISO date, 2026-11-22, or a date and time, 2026-11-22T10:15[:30][Z] (a space for the
 * T), in UTC, as Unix milliseconds. A date alone as an upper bound (until) means the end
 * of that day: its next midnight. Returns 0 or -1. */
int search_terms_when(const char *s, bool until, int64_t *ms);

/* A message date as MSH-7 begins: 2026-11-22, 20261122, 2026-11-22T10 -> its digits, at
 * least 4, in out. Returns 0 or -1. */
int search_terms_date(const char *s, char *out, size_t len);

/* Points f at a sender "APP" or "APP/FACILITY": the application copied into app (cut at
 * applen - 1 bytes), the facility the rest of sender after its first '/' (NULL: any). */
void search_terms_sender(struct store_filter *f, const char *sender, char *app, size_t applen);

/* The criteria of f as asked, for the audit record: " --patient MRN100 --name 'O'\''HARA
 * --x' --state dead --limit 50" (sender as given, or NULL): a value with more than
 * A-Z a-z 0-9 - . _ / : ^ @ + , = % in single quotes, shell-style, so that it never reads
 * as another term. Cut to len - 1 bytes. */
void search_terms_describe(const struct store_filter *f, const char *sender, char *out,
			   size_t len);

#endif
