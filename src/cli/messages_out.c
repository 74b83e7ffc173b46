/* What netwall messages prints, for all its rooms: times in UTC, a stored message's
 * header as JSON, stored bytes as a JSON string, and stored text made safe for a
 * terminal (a sender's control characters never reach it as they are). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/messages.h"
#include "core/xalloc.h"
#include "hl7/hl7json.h"

void messages_out_time(int64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0) {
		snprintf(out, len, "-");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The warnings as stored ("bom_stripped,msh11_defaulted") as a JSON array of names. */
static json_t *warnings_json(const char *w)
{
	json_t *a = json_array();

	while (w != NULL && *w != '\0') {
		const char *end = strchr(w, ',');
		size_t n = end != NULL ? (size_t)(end - w) : strlen(w);

		if (n > 0)
			json_array_append_new(a, json_stringn(w, n));
		w = end != NULL ? end + 1 : NULL;
	}
	return a;
}

json_t *messages_out_row(const struct store_row *r)
{
	json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:i}", "id",
			      (json_int_t)r->id, "state", store_state_name(r->state), "type",
			      r->type, "control_id", r->control_id, "sending_application",
			      r->app, "sending_facility", r->facility, "version", r->version,
			      "peer", r->peer, "received_ms", (json_int_t)r->received_ms,
			      "updated_ms", (json_int_t)r->updated_ms, "attempts",
			      (int)r->attempts, "http_status", r->http_status);

	if (o == NULL)
		xalloc_fail("json");
	json_object_set_new(o, "detail", r->detail ? json_string(r->detail) : json_null());
	json_object_set_new(o, "message_date", json_string(r->message_date));
	json_object_set_new(o, "warnings", warnings_json(r->warnings));
	return o;
}

int messages_out_json(json_t *o)
{
	int rc = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);

	fputc('\n', stdout);
	json_decref(o);
	if (rc == -1)
		fprintf(stderr, "netwall messages: cannot write the JSON output\n");
	return rc == -1 ? 1 : 0;
}

/* A JSON string of stored bytes: valid UTF-8 always (Latin-1 when MSH-18 says 8859/1,
 * otherwise invalid bytes become U+FFFD), as the delivery JSON does. */
json_t *messages_out_bytes(const char *p, size_t len)
{
	char *tmp = xmalloc(3 * len + 1);
	size_t n;
	json_t *j;
	const char *cs = len > 0 ? memmem(p, len < 4096 ? len : 4096, "8859/1", 6) : NULL;

	n = hl7json_utf8(p, len, cs != NULL, tmp, 3 * len + 1);
	j = json_stringn(tmp, n);
	explicit_bzero(tmp, 3 * len + 1);
	free(tmp);
	return j != NULL ? j : json_string("");
}

/* Prints a stored header value with control characters made harmless for a terminal. */
const char *messages_out_tty(char *out, size_t len, const char *in)
{
	size_t i = 0;

	for (; in[i] != '\0' && i + 1 < len; i++)
		out[i] = (unsigned char)in[i] < 0x20 || in[i] == 0x7f ? '?' : in[i];
	out[i] = '\0';
	return out;
}

