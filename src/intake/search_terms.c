/* The terms of a search of the store, shared by netwall messages search and the admin
 * listener's message browser (intake/search_terms.h). */
#include "intake/search_terms.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* An ISO date, 2026-11-22, or a date and time, 2026-11-22T10:15[:30][Z] (a space for the
 * T), in UTC, as Unix milliseconds. A date alone as an upper bound (--until) means the end
 * of that day: its next midnight. Returns 0 or -1. */
int search_terms_when(const char *s, bool until, int64_t *ms)
{
	struct tm tm = {0};
	int y, mo, d, h = 0, mi = 0, sec = 0, used = 0, n;
	time_t t;

	n = sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &used);
	if (n != 3 || used != 10)
		return -1;
	if (s[used] == 'T' || s[used] == ' ') {
		int more = 0;

		n = sscanf(s + used + 1, "%2d:%2d%n:%2d%n", &h, &mi, &more, &sec, &more);
		if (n < 2 || more == 0)
			return -1;
		used += 1 + more;
		if (s[used] == 'Z')
			used++;
	} else if (until) {
		d++; /* timegm normalises the day after the month's last */
	}
	if (s[used] != '\0' || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 32 || h > 23 ||
	    mi > 59 || sec > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	*ms = (int64_t)t * 1000;
	return 0;
}

/* A message date as MSH-7 begins: 2026-11-22, 20261122, 2026-11-22T10 -> digits only. */
int search_terms_date(const char *s, char *out, size_t len)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		if (*s == '-' || *s == ':' || *s == 'T' || *s == ' ')
			continue;
		if (*s < '0' || *s > '9' || n + 1 >= len)
			return -1;
		out[n++] = *s;
	}
	out[n] = '\0';
	return n >= 4 ? 0 : -1;
}

void search_terms_sender(struct store_filter *f, const char *sender, char *app, size_t applen)
{
	const char *slash = strchr(sender, '/');
	size_t n = slash != NULL ? (size_t)(slash - sender) : strlen(sender);

	if (n >= applen)
		n = applen - 1;
	memcpy(app, sender, n);
	app[n] = '\0';
	f->app = app;
	f->facility = slash != NULL ? slash + 1 : NULL;
}

/* Appends " OPT VALUE" at out + *used, VALUE as a shell reads one word: as it is when it
 * holds only A-Z a-z 0-9 and - . _ / : ^ @ + , = %, else in single quotes, each ' in it
 * written '\'' so that no value can read as more options. Cut at len - 1 bytes. */
static void describe_add(char *out, size_t len, size_t *used, const char *opt, const char *v)
{
	static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789-._/:^@+,=%";
	bool quote = v[0] == '\0' || v[strspn(v, plain)] != '\0';
	int n;

	if (*used >= len)
		return;
	n = snprintf(out + *used, len - *used, " %s %s", opt, quote ? "'" : "");
	*used += (size_t)n;
	for (; *v != '\0' && *used + 1 < len; v++) {
		const char *part = *v == '\'' ? "'\\''" : NULL;

		if (part == NULL) {
			out[(*used)++] = *v;
		} else {
			n = snprintf(out + *used, len - *used, "%s", part);
			*used += (size_t)n;
		}
	}
	if (*used < len)
		out[*used] = '\0';
	if (quote && *used < len) {
		n = snprintf(out + *used, len - *used, "'");
		*used += (size_t)n;
	}
}

void search_terms_describe(const struct store_filter *f, const char *sender, char *out,
			   size_t len)
{
	const char *names[] = {"--patient", "--name", "--order", "--control-id", "--sender",
			       "--type", "--date"};
	const char *vals[] = {f->patient, f->name, f->order, f->control_id, sender, f->type,
			      f->date};
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (vals[i] != NULL)
			describe_add(out, len, &used, names[i], vals[i]);
	if (f->state >= 0 && used < len)
		used += (size_t)snprintf(out + used, len - used, " --state %s",
					 store_state_name((enum store_state)f->state));
	if (f->since_ms > 0 && used < len)
		used += (size_t)snprintf(out + used, len - used, " --since %lldms",
					 (long long)f->since_ms);
	if (f->until_ms > 0 && used < len)
		used += (size_t)snprintf(out + used, len - used, " --until %lldms",
					 (long long)f->until_ms);
	if (f->before_id > 0 && used < len)
		used += (size_t)snprintf(out + used, len - used, " --before %lld",
					 (long long)f->before_id);
	if (used < len)
		snprintf(out + used, len - used, " --limit %zu", f->limit);
}
