/* netwall: one program, several subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"

#define NETWALL_VERSION "0.1.0"

static const char usage[] =
	"usage: netwall COMMAND [OPTIONS]\n"
	"\n"
	"The secure TCP edge: private services reachable from the internet while nothing can\n"
	"connect to them. An agent inside the private network dials out to a public gateway\n"
	"over mutually authenticated TLS 1.3 and carries each visitor's connection as a\n"
	"stream to the private service.\n"
	"\n"
	"commands:\n"
	"  gateway -c FILE          run the public gateway\n"
	"  agent -c FILE            run the agent inside the private network\n"
	"  intake -c FILE           run the HL7 v2 (MLLP) intake of an EMAR\n"
	"  send HOST:PORT [FILE...] send HL7 v2 messages over MLLP and print each ACK\n"
	"  messages [CMD] -c FILE   list, show, count and replay stored messages\n"
	"  chat serve -c FILE       run the chat server (IRC clients and netwall chat)\n"
	"  chat passwd FILE NAME    add an account or change its password\n"
	"  check FILE               validate a gateway, agent, intake or chat config\n"
	"  keygen --out DIR NAME    write DIR/NAME.key and DIR/NAME.crt, print the fingerprint\n"
	"  fingerprint FILE.crt     print the SHA-256 fingerprint of a certificate\n"
	"  version                  print the version\n"
	"\n"
	"`netwall COMMAND --help` explains a command's options; docs/config.md every config key.\n";

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (strcmp(cmd, "gateway") == 0)
		return cmd_gateway_main(argc - 1, argv + 1);
	if (strcmp(cmd, "agent") == 0)
		return cmd_agent_main(argc - 1, argv + 1);
	if (strcmp(cmd, "intake") == 0)
		return cmd_intake_main(argc - 1, argv + 1);
	if (strcmp(cmd, "send") == 0)
		return cmd_send_main(argc - 1, argv + 1);
	if (strcmp(cmd, "messages") == 0)
		return cmd_messages_main(argc - 1, argv + 1);
	if (strcmp(cmd, "chat") == 0 && argc > 2 && strcmp(argv[2], "serve") == 0)
		return cmd_chat_serve_main(argc - 2, argv + 2);
	if (strcmp(cmd, "chat") == 0)
		return cmd_chat_main(argc - 1, argv + 1);
	if (strcmp(cmd, "check") == 0)
		return cmd_check_main(argc - 1, argv + 1);
	if (strcmp(cmd, "keygen") == 0)
		return cmd_keygen_main(argc - 1, argv + 1);
	if (strcmp(cmd, "fingerprint") == 0)
		return cmd_keygen_fingerprint_main(argc - 1, argv + 1);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("netwall %s\n", NETWALL_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	fputs(usage, stderr);
	if (cmd[0] != '\0')
		fprintf(stderr, "\nnetwall: unknown command '%s'\n", cmd);
	return 2;
}
