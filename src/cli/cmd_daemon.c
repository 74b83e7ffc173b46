/* netwall gateway|agent|intake -c FILE, netwall chat serve -c FILE: the arguments, then the
 * daemon's role run by core/daemon.c. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/daemon.h"
#include "chat/server.h"
#include "intake/intake.h"
#include "wall/agent.h"
#include "wall/gateway.h"

static const char gateway_usage[] =
	"usage: netwall gateway -c FILE [--takeover [--detach]]\n"
	"\n"
	"Runs the public gateway: listens for agents' tunnels and for visitors on every\n"
	"[service] listener, and carries each visitor through a tunnel of an allowed agent.\n"
	"Logs key=value lines to stderr. SIGTERM/SIGINT drain and exit; SIGHUP reloads FILE.\n"
	"\n"
	"  -c, --config FILE   gateway config (see examples/gateway.ini, docs/config.md)\n"
	"  --takeover          take the listening sockets of the gateway running on the\n"
	"                      config's handover socket, which then drains and exits: an\n"
	"                      upgrade or restart that refuses no visitor (docs/deploy.md)\n"
	"  --detach            with --takeover: return once the new process serves, leaving\n"
	"                      it running (systemd's ExecReload)\n"
	"  -h, --help          this text\n";

static const char agent_usage[] =
	"usage: netwall agent -c FILE [--takeover [--detach]]\n"
	"\n"
	"Runs the agent inside the private network: dials out to the gateway(s), keeps its\n"
	"tunnels up, and connects each stream to the service's local target. It never listens\n"
	"except on its admin address (loopback by default).\n"
	"Logs key=value lines to stderr. SIGTERM/SIGINT drain and exit; SIGHUP reloads FILE.\n"
	"\n"
	"  -c, --config FILE   agent config (see examples/agent.ini, docs/config.md)\n"
	"  --takeover          replace the agent running on the config's handover socket:\n"
	"                      this one dials its tunnels, then the old one drains and exits\n"
	"  --detach            with --takeover: return once the new process serves, leaving\n"
	"                      it running (systemd's ExecReload)\n"
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

/* flags: NULL where the daemon has no --takeover (enum daemon_flags) */
static int daemon_args(int argc, char **argv, const char *usage, const char *name,
		       const char **file, unsigned *flags)
{
	*file = NULL;
	for (int i = 1; i < argc; i++) {
		if (flags != NULL && strcmp(argv[i], "--takeover") == 0) {
			*flags |= DAEMON_TAKEOVER;
			continue;
		}
		if (flags != NULL && strcmp(argv[i], "--detach") == 0) {
			*flags |= DAEMON_DETACH;
			continue;
		}
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
	if (flags != NULL && (*flags & DAEMON_DETACH) && !(*flags & DAEMON_TAKEOVER)) {
		fprintf(stderr, "netwall %s: --detach goes with --takeover\n\n%s", name, usage);
		return 2;
	}
	return -1;
}

int cmd_gateway_main(int argc, char **argv)
{
	const char *file;
	unsigned flags = 0;
	int rc = daemon_args(argc, argv, gateway_usage, "gateway", &file, &flags);

	return rc >= 0 ? rc : daemon_run(&gateway_role, file, flags);
}

int cmd_agent_main(int argc, char **argv)
{
	const char *file;
	unsigned flags = 0;
	int rc = daemon_args(argc, argv, agent_usage, "agent", &file, &flags);

	return rc >= 0 ? rc : daemon_run(&agent_role, file, flags);
}

int cmd_intake_main(int argc, char **argv)
{
	const char *file;
	int rc = daemon_args(argc, argv, intake_usage, "intake", &file, NULL);

	return rc >= 0 ? rc : daemon_run(&intake_role, file, 0);
}

int cmd_chat_serve_main(int argc, char **argv)
{
	const char *file;
	int rc = daemon_args(argc, argv, chat_usage, "chat", &file, NULL);

	return rc >= 0 ? rc : daemon_run(&chat_role, file, 0);
}
