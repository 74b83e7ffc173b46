/* netwall messages show ID: one message parsed field by field (or its bytes as received),
 * with its delivery record, its warnings and the ACK it was sent. Every value is made
 * visible, never sent to the terminal as it is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/messages.h"
#include "core/xalloc.h"
#include "hl7/hl7.h"


/* Prints a value decoded, with control characters made visible. */
static void print_value(const struct hl7_delims *d, struct hl7_str v)
{
	char *tmp = xmalloc(v.len + 1);
	size_t n;

	n = hl7_unescape(d, v, tmp, v.len + 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)tmp[i];
		if (ch == '\n')
			fputs("\\n", stdout);
		else if (ch < 0x20 || ch == 0x7f)
			printf("\\x%02x", ch);
		else
			fputc(ch, stdout);
	}
	explicit_bzero(tmp, v.len + 1);
	free(tmp);
}

/* Every valued field, then its components when it has any: PID-3[2].1 = value. Each field
 * is walked once (hl7_iter), never by index from its start: linear in the message. */
static void show_fields(const struct hl7_msg *m)
{
	for (unsigned si = 0; si < m->nsegs; si++) {
		const char *name = m->segs[si].name;
		printf("%s\n", name);
		for (unsigned f = 1; f <= m->segs[si].nfields; f++) {
			struct hl7_iter ri, ci;
			struct hl7_str v, rep, comp;
			bool msh12 = si == 0 && f <= 2, reps;
			unsigned r = 0;
			if (!hl7_field(m, si, f, &v) || v.len == 0)
				continue;
			if (msh12) {
				printf("  %s-%u = %.*s\n", name, f, (int)v.len, v.p);
				continue;
			}
			reps = memchr(v.p, m->d.rep, v.len) != NULL;
			hl7_iter_init(&ri, v, m->d.rep);
			while (hl7_iter_next(&ri, &rep)) {
				bool comps = rep.len > 0 && memchr(rep.p, m->d.comp, rep.len) != NULL;
				unsigned c = 0;
				r++;
				hl7_iter_init(&ci, rep, m->d.comp);
				while (hl7_iter_next(&ci, &comp)) {
					c++;
					if (comp.len == 0)
						continue;
					printf("  %s-%u", name, f);
					if (reps)
						printf("[%u]", r);
					if (comps)
						printf(".%u", c);
					fputs(" = ", stdout);
					if (hl7_is_null(comp))
						fputs("\"\" (null)", stdout);
					else
						print_value(&m->d, comp);
					fputc('\n', stdout);
				}
			}
		}
	}
}

static void print_segments(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch == '\r' || ch == '\n')
			fputc('\n', stdout);
		else if (ch < 0x20 || ch == 0x7f)
			printf("\\x%02x", ch); /* no terminal escape sequences from a sender */
		else
			fputc(ch, stdout);
	}
	if (len > 0 && p[len - 1] != '\r' && p[len - 1] != '\n')
		fputc('\n', stdout);
}

int messages_show(struct store *s, const struct messages_opts *o)
{
	struct store_row r;
	char err[512], t1[32], t2[32], what[64];
	int rc = store_get(s, o->id, &r, err, sizeof(err));

	if (rc != 1) {
		fprintf(stderr, "netwall messages: %s\n",
			rc == 0 ? "no message with that id" : err);
		return 1;
	}
	snprintf(what, sizeof(what), "show %lld%s%s", (long long)r.id, o->raw ? " --raw" : "",
		 o->json ? " --json" : "");
	if (messages_audit_note(s, o, "show", what, &r.id, 1) == -1) {
		store_row_clear(&r);
		return 1;
	}
	if (o->json) {
		json_t *j = messages_out_row(&r);
		json_object_set_new(j, "raw", messages_out_bytes(r.raw, r.raw_len));
		json_object_set_new(j, "ack", messages_out_bytes(r.ack, r.ack_len));
		store_row_clear(&r);
		return messages_out_json(j);
	}
	messages_out_time(r.received_ms, t1, sizeof(t1));
	messages_out_time(r.updated_ms, t2, sizeof(t2));
	for (char *f = r.control_id; *f != '\0'; f++)
		*f = (unsigned char)*f < 0x20 ? '?' : *f;
	for (char *f = r.app; *f != '\0'; f++)
		*f = (unsigned char)*f < 0x20 ? '?' : *f;
	for (char *f = r.facility; *f != '\0'; f++)
		*f = (unsigned char)*f < 0x20 ? '?' : *f;
	printf("id %lld  state %s  type %s  control id %s  version %s\n"
	       "from %s%s%s at %s (peer %s), %zu bytes\n"
	       "delivery: %u attempts, last HTTP status %d, updated %s%s%s\n\n",
	       (long long)r.id, store_state_name(r.state), r.type, r.control_id, r.version, r.app,
	       r.facility[0] ? "/" : "", r.facility, t1, r.peer, r.raw_len, r.attempts,
	       r.http_status, t2, r.detail ? ", detail: " : "", r.detail ? r.detail : "");
	if (r.warnings != NULL || r.message_date[0] != '\0') {
		char w[256], d[32];

		printf("message date %s; read with warnings: %s\n\n",
		       r.message_date[0] ? messages_out_tty(d, sizeof(d), r.message_date) : "-",
		       r.warnings ? messages_out_tty(w, sizeof(w), r.warnings) : "none");
	}
	if (o->raw) {
		print_segments(r.raw, r.raw_len);
	} else {
		struct hl7_msg m;
		struct hl7_error e;
		hl7_msg_init(&m);
		if (hl7_parse(&m, r.raw, r.raw_len, &e) == 0)
			show_fields(&m);
		else
			printf("(does not parse: %s; use --raw)\n", e.text);
		hl7_msg_free(&m);
	}
	printf("\nACK sent:\n");
	print_segments(r.ack, r.ack_len);
	store_row_clear(&r);
	return 0;
}

