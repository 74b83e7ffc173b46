/* netwall gateway -c FILE, netwall agent -c FILE */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/daemon.h"
#include "core/filter.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "chat/server.h"
#include "intake/intake.h"
#include "wall/agent.h"
#include "wall/gateway.h"

static const char gateway_usage[] =
	"usage: netwall gateway -c FILE\n"
	"\n"
	"Runs the public gateway: listens for agents' tunnels and for visitors on every\n"
	"[service] listener, and carries each visitor through a tunnel of an allowed agent.\n"
	"Logs key=value lines to stderr. SIGTERM/SIGINT drain and exit; SIGHUP reloads FILE.\n"
	"\n"
	"  -c, --config FILE   gateway config (see examples/gateway.ini, docs/config.md)\n"
	"  -h, --help          this text\n";

static const char agent_usage[] =
	"usage: netwall agent -c FILE\n"
	"\n"
	"Runs the agent inside the private network: dials out to the gateway(s), keeps its\n"
	"tunnels up, and connects each stream to the service's local target. It never listens\n"
	"except on its admin address (loopback by default).\n"
	"Logs key=value lines to stderr. SIGTERM/SIGINT drain and exit; SIGHUP reloads FILE.\n"
	"\n"
	"  -c, --config FILE   agent config (see examples/agent.ini, docs/config.md)\n"
	"  -h, --help          this text\n";

static const char intake_usage[] =
	"usage: netwall intake -c FILE\n"
	"\n"
	"Runs the HL7 v2 intake of an EMAR: receives messages over MLLP (plain or TLS), parses,\n"
	"deduplicates and routes them, stores each durably before acknowledging it, and\n"
	"delivers accepted messages to the EMAR's HTTP API in the background.\n"
	"Logs key=value lines to stderr, never message content. SIGTERM/SIGINT drain and exit;\n"
	"SIGHUP reloads routing, limits and the log level from FILE.\n"
	"\n"
	"  -c, --config FILE   intake config (see examples/intake.ini, docs/config.md)\n"
	"  -h, --help          this text\n";

static const char chat_usage[] =
	"usage: netwall chat serve -c FILE\n"
	"\n"
	"Runs the chat server: TLS (and, if configured, plain) listeners speaking the IRC client\n"
	"protocol, so irssi, weechat and `netwall chat connect` work; accounts from the file\n"
	"`netwall chat passwd` writes. Logs key=value lines to stderr, never message text.\n"
	"SIGTERM/SIGINT close every connection and exit; SIGHUP reloads the accounts file.\n"
	"\n"
	"  -c, --config FILE   chat config (see examples/chat.ini, docs/config.md)\n"
	"  -h, --help          this text\n";

static int daemon_args(int argc, char **argv, const char *usage, const char *name,
		       const char **file)
{
	*file = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage, stdout);
			return 0;
		}
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
		    i + 1 < argc) {
			*file = argv[++i];
			continue;
		}
		fprintf(stderr, "netwall %s: unexpected argument '%s'\n\n%s", name, argv[i], usage);
		return 2;
	}
	if (*file == NULL) {
		fprintf(stderr, "netwall %s: -c FILE is required\n\n%s", name, usage);
		return 2;
	}
	return -1;
}

/* Sets the log level, refuses to run as root unless told, and copies what daemon_main needs
 * after binding (the user and the filter) out of a config the daemon will own. */
static int daemon_keep(const struct daemon_conf *d, struct daemon_conf *run)
{
	char err[256];

	log_set_level(d->log_level);
	if (daemon_check(d, err, sizeof(err)) == -1) {
		log_error("event=start_failed error=\"%s\"", err);
		return -1;
	}
	*run = *d;
	run->admin_token = NULL;
	run->user = NULL;
	run->user = xstrdup(d->user); /* never stay root for want of memory */
	return 0;
}

/* What differs between the daemons; everything else is daemon_main. */
struct daemon_kind {
	const char *name;
	const char *usage;
	/* Loads file, checks who runs it (daemon_check) and builds the daemon on base, copying
	 * how it runs into run; NULL once the reason is printed. */
	void *(*start)(struct event_base *base, const char *file, struct daemon_conf *run);
	int (*run)(void *d);
	void (*stop)(void *d);
};

static void *intake_start(struct event_base *base, const char *file,
			  struct daemon_conf *run)
{
	char *msgs = NULL;
	struct intake_config *cfg = intake_config_load(file, &msgs);

	if (cfg == NULL) {
		fputs(msgs, stderr);
		free(msgs);
		return NULL;
	}
	if (daemon_keep(&cfg->d, run) == -1) {
		intake_config_free(cfg);
		return NULL;
	}
	return intake_new(base, file, cfg);
}

static int intake_run_any(void *d)
{
	return intake_run(d);
}

static void intake_free_any(void *d)
{
	intake_free(d);
}

static void *chat_start(struct event_base *base, const char *file,
			  struct daemon_conf *run)
{
	char *msgs = NULL;
	struct chat_config *cfg = chat_config_load(file, &msgs);

	if (cfg == NULL) {
		fputs(msgs, stderr);
		free(msgs);
		return NULL;
	}
	if (daemon_keep(&cfg->d, run) == -1) {
		chat_config_free(cfg);
		return NULL;
	}
	return chat_new(base, file, cfg);
}

static int chat_run_any(void *d)
{
	return chat_run(d);
}

static void chat_free_any(void *d)
{
	chat_free(d);
}

#ifdef NETWALL_TEST_HOOKS
static void daemon_probe_cb(evutil_socket_t sig, short what, void *arg)
{
	const char *call = arg;

	log_warn("event=test_probe call=%s", call);
	filter_probe(call);
	log_warn("event=test_probe_returned call=%s", call);
}

/* Test build only: with NETWALL_TEST_FORBIDDEN_CALL=exec (or write), SIGUSR2 makes that call
 * (filter_probe): the test that the filter kills. The release binary has no such hook. */
static struct event *daemon_probe(struct event_base *base)
{
	const char *e = getenv("NETWALL_TEST_FORBIDDEN_CALL");
	struct event *ev;

	if (e == NULL || (strcmp(e, "exec") != 0 && strcmp(e, "write") != 0))
		return NULL;
	ev = evsignal_new(base, SIGUSR2, daemon_probe_cb, (void *)e);
	if (ev == NULL || evsignal_add(ev, NULL) == -1)
		xalloc_fail("event");
	return ev;
}
#else
static struct event *daemon_probe(struct event_base *base)
{
	(void)base;
	return NULL;
}
#endif

static int daemon_main(int argc, char **argv, const struct daemon_kind *k)
{
	struct daemon_conf run = { 0 };
	struct event *probe = NULL;
	char err[256];
	struct event_base *base;
	const char *file;
	void *d;
	int rc = daemon_args(argc, argv, k->usage, k->name, &file);

	if (rc >= 0)
		return rc;
	log_init(k->name, LOG_INFO);
	base = loop_new();
	d = k->start(base, file, &run);
	if (d == NULL) {
		event_base_free(base);
		return 1;
	}
	if (daemon_confine(&run, k->name, err, sizeof(err)) == -1) {
		log_error("event=start_failed error=\"%s\"", err);
		rc = 1;
	} else {
		log_info("event=confined user=%s seccomp=%s", run.user ? run.user : "(unchanged)",
			 run.seccomp ? "on" : "off");
		probe = daemon_probe(base);
		rc = k->run(d);
		if (probe != NULL)
			event_free(probe);
	}
	k->stop(d);
	daemon_conf_free(&run);
	event_base_free(base);
	return rc;
}

int cmd_gateway_main(int argc, char **argv)
{
	const char *file;
	int rc = daemon_args(argc, argv, gateway_usage, "gateway", &file);

	return rc >= 0 ? rc : daemon_run(&gateway_role, file);
}

int cmd_agent_main(int argc, char **argv)
{
	const char *file;
	int rc = daemon_args(argc, argv, agent_usage, "agent", &file);

	return rc >= 0 ? rc : daemon_run(&agent_role, file);
}

int cmd_intake_main(int argc, char **argv)
{
	static const struct daemon_kind intake = { "intake", intake_usage, intake_start,
						    intake_run_any, intake_free_any };

	return daemon_main(argc, argv, &intake);
}

int cmd_chat_serve_main(int argc, char **argv)
{
	static const struct daemon_kind chat = { "chat", chat_usage, chat_start, chat_run_any,
						  chat_free_any };

	return daemon_main(argc, argv, &chat);
}
