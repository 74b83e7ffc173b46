/* netwall messages: list, show, count and replay the messages an intake stored. Reads the
 * store directly (the intake's config names it), so it works whether the intake runs or
 * not; replay puts messages back in the delivery queue of whichever intake runs. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/num.h"
#include "core/xalloc.h"
#include "hl7/hl7.h"
#include "hl7/hl7json.h"
#include "intake/intake_config.h"
#include "intake/store.h"

static const char messages_usage[] =
	"usage: netwall messages (-c FILE | --store SPEC) [COMMAND] [OPTIONS]\n"
	"\n"
	"Looks at the messages an intake stored. The store is the one FILE's [intake] names,\n"
	"or SPEC: a SQLite file or a postgresql:// URL.\n"
	"\n"
	"commands:\n"
	"  list [--state S] [--type T] [--limit N] [--before ID] [--reused]\n"
	"                      newest first (default: list --limit 50); S is received, failed,\n"
	"                      delivered, dead, ignored or rejected; T a type (RDE^O11) or\n"
	"                      a family (RDE); --reused: only messages whose control ID was\n"
	"                      already stored for a different message (flag R)\n"
	"  show ID [--raw]     one message, parsed field by field (--raw: the bytes as received,\n"
	"                      segments on their own lines), with its ACK and delivery record\n"
	"  count               messages by state and by type, and with a reused control ID\n"
	"  replay ID           put a delivered, failed or dead message back in the queue\n"
	"  replay --dead | --failed\n"
	"                      put every dead (or failed) message back in the queue\n"
	"\n"
	"  --json              machine-readable output (one JSON document)\n"
	"  -h, --help          this text\n"
	"\n"
	"show prints message content (patient data) on this terminal: the daemons never log it.\n";

struct opts {
	const char *config, *store, *cmd, *type;
	int state;
	int64_t id, before;
	uint64_t limit;
	bool json, raw, all_dead, all_failed, reused;
};

static void fmt_time(int64_t ms, char *out, size_t len)
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

static json_t *row_json(const struct store_row *r)
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
	return o;
}

static int json_print(json_t *o)
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
static json_t *json_bytes(const char *p, size_t len)
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
static const char *tty_safe(char *out, size_t len, const char *in)
{
	size_t i = 0;

	for (; in[i] != '\0' && i + 1 < len; i++)
		out[i] = (unsigned char)in[i] < 0x20 || in[i] == 0x7f ? '?' : in[i];
	out[i] = '\0';
	return out;
}

static int do_list(struct store *s, const struct opts *o)
{
	struct store_filter f = { .state = o->state, .type = o->type, .before_id = o->before,
				  .limit = o->limit, .reused_only = o->reused };
	struct store_row *rows = NULL;
	char err[512], t[32];
	int n = store_list(s, &f, &rows, err, sizeof(err));

	if (n == -1) {
		fprintf(stderr, "netwall messages: %s\n", err);
		return 1;
	}
	if (o->json) {
		json_t *a = json_array();
		for (int i = 0; i < n; i++) {
			json_t *j = row_json(&rows[i]);
			json_object_set_new(j, "reused_control_id", json_boolean(rows[i].reused));
			json_array_append_new(a, j);
		}
		store_rows_free(rows, (size_t)n);
		return json_print(a);
	} else {
		/* FLAG R: the control ID was stored before for a different message */
		printf("%-8s %-20s %-10s %-9s %-20s %-4s %-8s %s\n", "ID", "RECEIVED", "STATE",
		       "TYPE", "CONTROL ID", "FLAG", "ATTEMPTS", "SENDER");
		for (int i = 0; i < n; i++) {
			const struct store_row *r = &rows[i];
			char ctrl[64], app[64], fac[64];
			fmt_time(r->received_ms, t, sizeof(t));
			printf("%-8lld %-20s %-10s %-9s %-20s %-4s %-8u %s%s%s\n", (long long)r->id,
			       t, store_state_name(r->state), r->type,
			       tty_safe(ctrl, sizeof(ctrl), r->control_id), r->reused ? "R" : "-",
			       r->attempts,
			       tty_safe(app, sizeof(app), r->app), r->facility[0] ? "/" : "",
			       tty_safe(fac, sizeof(fac), r->facility));
		}
	}
	store_rows_free(rows, (size_t)n);
	return 0;
}

static int do_count(struct store *s, const struct opts *o)
{
	struct store_count *c = NULL;
	char err[512];
	int n = store_counts(s, &c, err, sizeof(err));
	uint64_t by[STORE_NSTATES] = { 0 }, total = 0, reused = 0;

	if (n == -1) {
		fprintf(stderr, "netwall messages: %s\n", err);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		by[c[i].state] += c[i].n;
		total += c[i].n;
		reused += c[i].reused;
	}
	if (o->json) {
		json_t *root = json_object(), *st = json_object(), *ty = json_object();
		for (int i = 0; i < STORE_NSTATES; i++)
			json_object_set_new(st, store_state_name(i), json_integer((json_int_t)by[i]));
		for (int i = 0; i < n; i++) {
			json_t *t = json_object_get(ty, c[i].type);
			if (t == NULL) {
				t = json_object();
				json_object_set_new(ty, c[i].type, t);
			}
			json_object_set_new(t, store_state_name(c[i].state),
					    json_integer((json_int_t)c[i].n));
		}
		json_object_set_new(root, "total", json_integer((json_int_t)total));
		json_object_set_new(root, "reused_control_id", json_integer((json_int_t)reused));
		json_object_set_new(root, "states", st);
		json_object_set_new(root, "types", ty);
		free(c);
		return json_print(root);
	} else {
		printf("%-10s %10s\n", "STATE", "MESSAGES");
		for (int i = 0; i < STORE_NSTATES; i++)
			printf("%-10s %10llu\n", store_state_name(i), (unsigned long long)by[i]);
		printf("%-10s %10llu\n", "total", (unsigned long long)total);
		printf("of which with a reused control ID (list --reused): %llu\n",
		       (unsigned long long)reused);
		printf("\n%-10s %-10s %10s\n", "TYPE", "STATE", "MESSAGES");
		for (int i = 0; i < n; i++)
			printf("%-10s %-10s %10llu\n", c[i].type, store_state_name(c[i].state),
			       (unsigned long long)c[i].n);
	}
	free(c);
	return 0;
}

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

static int do_show(struct store *s, const struct opts *o)
{
	struct store_row r;
	char err[512], t1[32], t2[32];
	int rc = store_get(s, o->id, &r, err, sizeof(err));

	if (rc != 1) {
		fprintf(stderr, "netwall messages: %s\n",
			rc == 0 ? "no message with that id" : err);
		return 1;
	}
	if (o->json) {
		json_t *j = row_json(&r);
		json_object_set_new(j, "raw", json_bytes(r.raw, r.raw_len));
		json_object_set_new(j, "ack", json_bytes(r.ack, r.ack_len));
		store_row_clear(&r);
		return json_print(j);
	}
	fmt_time(r.received_ms, t1, sizeof(t1));
	fmt_time(r.updated_ms, t2, sizeof(t2));
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

static int do_replay(struct store *s, const struct opts *o)
{
	char err[512];
	int n;

	if (o->id > 0)
		n = store_replay(s, o->id, STORE_DEAD, err, sizeof(err));
	else
		n = store_replay(s, 0, o->all_dead ? STORE_DEAD : STORE_FAILED, err, sizeof(err));
	if (n == -1) {
		fprintf(stderr, "netwall messages: %s\n", err);
		return 1;
	}
	if (o->id > 0 && n == 0) {
		fprintf(stderr, "netwall messages: message %lld is not there or not delivered, "
				"failed or dead (only those can be replayed)\n",
			(long long)o->id);
		return 1;
	}
	if (o->json)
		printf("{\"replayed\": %d}\n", n);
	else
		printf("replayed %d message%s\n", n, n == 1 ? "" : "s");
	return 0;
}

static int parse_id(const char *s, int64_t *out)
{
	uint64_t v;

	if (num_u64(s, 1, INT64_MAX, &v) == -1) {
		fprintf(stderr, "netwall messages: '%s' is not a message id\n", s);
		return -1;
	}
	*out = (int64_t)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	o->state = -1;
	o->limit = 50;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool more = i + 1 < argc;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(messages_usage, stdout);
			return 0;
		} else if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && more) {
			o->config = argv[++i];
		} else if (strcmp(a, "--store") == 0 && more) {
			o->store = argv[++i];
		} else if (strcmp(a, "--json") == 0) {
			o->json = true;
		} else if (strcmp(a, "--raw") == 0) {
			o->raw = true;
		} else if (strcmp(a, "--reused") == 0) {
			o->reused = true;
		} else if (strcmp(a, "--dead") == 0) {
			o->all_dead = true;
		} else if (strcmp(a, "--failed") == 0) {
			o->all_failed = true;
		} else if (strcmp(a, "--type") == 0 && more) {
			o->type = argv[++i];
		} else if (strcmp(a, "--state") == 0 && more) {
			enum store_state st;
			if (store_state_parse(argv[++i], &st) == -1) {
				fprintf(stderr, "netwall messages: unknown state '%s'\n", argv[i]);
				return 2;
			}
			o->state = (int)st;
		} else if (strcmp(a, "--limit") == 0 && more) {
			if (num_u64(argv[++i], 0, 1000000000, &o->limit) == -1) {
				fprintf(stderr, "netwall messages: bad --limit '%s'\n", argv[i]);
				return 2;
			}
		} else if (strcmp(a, "--before") == 0 && more) {
			if (parse_id(argv[++i], &o->before) == -1)
				return 2;
		} else if (o->cmd == NULL && a[0] != '-') {
			o->cmd = a;
		} else if (o->cmd != NULL && o->id == 0 && a[0] != '-' &&
			   (strcmp(o->cmd, "show") == 0 || strcmp(o->cmd, "replay") == 0)) {
			if (parse_id(a, &o->id) == -1)
				return 2;
		} else {
			fprintf(stderr, "netwall messages: unexpected argument '%s'\n\n%s", a,
				messages_usage);
			return 2;
		}
	}
	if (o->cmd == NULL)
		o->cmd = "list";
	if ((o->config == NULL) == (o->store == NULL)) {
		fprintf(stderr, "netwall messages: give either -c FILE or --store SPEC\n\n%s",
			messages_usage);
		return 2;
	}
	if (strcmp(o->cmd, "show") == 0 && o->id == 0) {
		fprintf(stderr, "netwall messages: show needs a message id\n");
		return 2;
	}
	if (strcmp(o->cmd, "replay") == 0 && (o->id > 0) + o->all_dead + o->all_failed != 1) {
		fprintf(stderr, "netwall messages: replay needs one of ID, --dead or --failed\n");
		return 2;
	}
	return -1;
}

int cmd_messages_main(int argc, char **argv)
{
	struct opts o = { 0 };
	struct intake_config *cfg = NULL;
	struct store *s;
	char err[512], *msgs = NULL;
	int rc = parse_args(argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (o.config != NULL) {
		cfg = intake_config_load(o.config, &msgs);
		if (cfg == NULL) {
			fputs(msgs, stderr);
			free(msgs);
			return 1;
		}
		o.store = cfg->store;
	}
	s = store_open(o.store, err, sizeof(err));
	if (s == NULL) {
		fprintf(stderr, "netwall messages: cannot open the store: %s\n", err);
		intake_config_free(cfg);
		return 1;
	}
	if (strcmp(o.cmd, "list") == 0) {
		rc = do_list(s, &o);
	} else if (strcmp(o.cmd, "show") == 0) {
		rc = do_show(s, &o);
	} else if (strcmp(o.cmd, "count") == 0) {
		rc = do_count(s, &o);
	} else if (strcmp(o.cmd, "replay") == 0) {
		rc = do_replay(s, &o);
	} else {
		fprintf(stderr, "netwall messages: unknown command '%s'\n\n%s", o.cmd,
			messages_usage);
		rc = 2;
	}
	store_close(s);
	intake_config_free(cfg);
	return rc;
}
