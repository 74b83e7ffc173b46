/* netwall messages: list, show, count, replay and purge the messages an intake stored. Reads the
 * store directly (the intake's config names it), so it works whether the intake runs or
 * not; replay puts messages back in the delivery queue of whichever intake runs. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/messages.h"
#include "core/num.h"
#include "core/xalloc.h"
#include "intake/intake_config.h"
#include "intake/store.h"

/* Bytes of --reason at most: it is kept in every audit record the command appends (one
 * per purge transaction), and audit records are never removed. */
#define REASON_MAX 1024

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
	"  search [--patient ID] [--name FAMILY] [--order ID] [--control-id ID]\n"
	"         [--sender APP[/FACILITY]] [--type T] [--state S] [--date DATE]\n"
	"         [--since WHEN] [--until WHEN] [--limit N] [--before ID]\n"
	"                      the messages that match every criterion given, newest first,\n"
	"                      with their patient identifiers and family names: --patient any\n"
	"                      PID-3 identifier, --name a PID-5 family name (any case), --order\n"
	"                      ORC-2 or ORC-3, --date the message date (MSH-7) as it begins\n"
	"                      (2026-11-22, 2026112210), --since and --until the time received\n"
	"                      (2026-11-22 or 2026-11-22T10:15:00Z, UTC; --until a date: to the\n"
	"                      end of that day)\n"
	"  count               messages by state and by type, and with a reused control ID\n"
	"  replay ID           put a delivered, failed or dead message back in the queue\n"
	"  replay --dead | --failed\n"
	"                      put every dead (or failed) message back in the queue\n"
	"  purge ID --reason TEXT\n"
	"  purge --state S [--until WHEN] --reason TEXT\n"
	"                      remove a message, or every one in state S (dead, delivered,\n"
	"                      ignored or rejected) last changed before WHEN, with its search\n"
	"                      keys; never a received or failed message (still to be\n"
	"                      delivered); each batch is recorded in the audit trail\n"
	"  audit [--limit N] [--before ID]\n"
	"                      the audit trail, newest first: every show, search and replay,\n"
	"                      when, by whom (the OS user), what was asked, which messages\n"
	"\n"
	"  --reason TEXT       why (show, search, replay, purge), 1024 bytes at most: kept\n"
	"                      with the audit record\n"
	"  --json              machine-readable output (one JSON document)\n"
	"  -h, --help          this text\n"
	"\n"
	"show and search print message content (patient data) on this terminal (the daemons never\n"
	"log it); each is recorded in the store's audit trail first, or nothing is shown.\n";

static int do_list(struct store *s, const struct messages_opts *o)
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
			json_t *j = messages_out_row(&rows[i]);
			json_object_set_new(j, "reused_control_id", json_boolean(rows[i].reused));
			json_array_append_new(a, j);
		}
		store_rows_free(rows, (size_t)n);
		return messages_out_json(a);
	} else {
		/* FLAG R: the control ID was stored before for a different message */
		printf("%-8s %-20s %-10s %-9s %-20s %-4s %-8s %s\n", "ID", "RECEIVED", "STATE",
		       "TYPE", "CONTROL ID", "FLAG", "ATTEMPTS", "SENDER");
		for (int i = 0; i < n; i++) {
			const struct store_row *r = &rows[i];
			char ctrl[64], app[64], fac[64];
			messages_out_time(r->received_ms, t, sizeof(t));
			printf("%-8lld %-20s %-10s %-9s %-20s %-4s %-8u %s%s%s\n", (long long)r->id,
			       t, store_state_name(r->state), r->type,
			       messages_out_tty(ctrl, sizeof(ctrl), r->control_id), r->reused ? "R" : "-",
			       r->attempts,
			       messages_out_tty(app, sizeof(app), r->app), r->facility[0] ? "/" : "",
			       messages_out_tty(fac, sizeof(fac), r->facility));
		}
	}
	store_rows_free(rows, (size_t)n);
	return 0;
}

static int do_count(struct store *s, const struct messages_opts *o)
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
		return messages_out_json(root);
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

/* Records the replay in the audit trail first: the one message, or every message in the
 * state replayed as it is now. Returns 0 or -1 (said on stderr). */
static int audit_replay(struct store *s, const struct messages_opts *o)
{
	struct store_filter f = {.state = o->all_dead ? STORE_DEAD : STORE_FAILED};
	struct store_row *rows = NULL;
	int64_t *ids;
	char err[512], what[64];
	int n, rc;

	if (o->id > 0) {
		snprintf(what, sizeof(what), "replay %lld", (long long)o->id);
		return messages_audit_note(s, o, "replay", what, &o->id, 1);
	}
	n = store_list(s, &f, &rows, err, sizeof(err));
	if (n == -1) {
		fprintf(stderr, "netwall messages: %s\n", err);
		return -1;
	}
	ids = xcalloc((size_t)n + 1, sizeof(*ids));
	for (int i = 0; i < n; i++)
		ids[i] = rows[i].id;
	store_rows_free(rows, (size_t)n);
	rc = messages_audit_note(s, o, "replay", o->all_dead ? "replay --dead" : "replay --failed",
				 ids, (size_t)n);
	free(ids);
	return rc;
}

static int do_replay(struct store *s, const struct messages_opts *o)
{
	char err[512];
	int n;

	if (audit_replay(s, o) == -1)
		return 1;
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

/* What the options ask must make sense together: a store, a command's own argument, the
 * search's criteria with search only. Returns -1 when it does, else the exit status. */
static int check_args(struct messages_opts *o)
{
	bool others = o->patient || o->name || o->order || o->control_id || o->sender ||
		      o->date || o->since_ms;
	bool criteria = others || o->until_ms;

	if (o->cmd == NULL)
		o->cmd = "list";
	if ((o->config == NULL) == (o->store == NULL)) {
		fprintf(stderr, "netwall messages: give either -c FILE or --store SPEC\n\n%s",
			messages_usage);
		return 2;
	}
	if (o->reason != NULL && strlen(o->reason) > REASON_MAX) {
		fprintf(stderr, "netwall messages: --reason: at most %d bytes\n", REASON_MAX);
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
	if (strcmp(o->cmd, "purge") == 0) {
		if ((o->id > 0) == (o->state >= 0) || o->reason == NULL) {
			fprintf(stderr, "netwall messages: purge needs ID or --state S, and --reason "
					"TEXT\n");
			return 2;
		}
		criteria = others || (o->until_ms && o->id > 0); /* --until with --state */
	}
	if (strcmp(o->cmd, "search") != 0 && criteria) {
		fprintf(stderr, "netwall messages: --patient, --name, --order, --control-id, "
				"--sender, --date, --since and --until are for search (and --until "
				"for purge --state)\n");
		return 2;
	}
	if (strcmp(o->cmd, "search") == 0 && !criteria && o->type == NULL && o->state < 0) {
		fprintf(stderr, "netwall messages: search needs at least one criterion\n");
		return 2;
	}
	return -1;
}

static int parse_args(int argc, char **argv, struct messages_opts *o)
{
	o->state = -1;
	o->limit = 50;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool more = i + 1 < argc;
		int taken = messages_search_opt(argc, argv, &i, o);

		if (taken != 0) {
			if (taken == -1)
				return 2;
			continue;
		}
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
			   (strcmp(o->cmd, "show") == 0 || strcmp(o->cmd, "replay") == 0 ||
			    strcmp(o->cmd, "purge") == 0)) {
			if (parse_id(a, &o->id) == -1)
				return 2;
		} else {
			fprintf(stderr, "netwall messages: unexpected argument '%s'\n\n%s", a,
				messages_usage);
			return 2;
		}
	}
	return check_args(o);
}

int cmd_messages_main(int argc, char **argv)
{
	struct messages_opts o = { 0 };
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
		rc = messages_show(s, &o);
	} else if (strcmp(o.cmd, "search") == 0) {
		rc = messages_search(s, &o);
	} else if (strcmp(o.cmd, "audit") == 0) {
		rc = messages_audit_list(s, &o);
	} else if (strcmp(o.cmd, "count") == 0) {
		rc = do_count(s, &o);
	} else if (strcmp(o.cmd, "replay") == 0) {
		rc = do_replay(s, &o);
	} else if (strcmp(o.cmd, "purge") == 0) {
		rc = messages_purge(s, &o);
	} else {
		fprintf(stderr, "netwall messages: unknown command '%s'\n\n%s", o.cmd,
			messages_usage);
		rc = 2;
	}
	store_close(s);
	intake_config_free(cfg);
	return rc;
}
