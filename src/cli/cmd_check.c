/* netwall check FILE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "chat/chat_config.h"
#include "intake/intake_config.h"
#include "wall/config.h"

int cmd_check_main(int argc, char **argv)
{
	char *msgs = NULL;
	int kind;

	if (argc != 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		fputs("usage: netwall check FILE\n\nValidates a gateway, agent, intake or chat config "
		      "(the kind is told by its\n[gateway], [agent], [intake] or [chat] section) without starting anything: every "
		      "key, and the certificates, keys and CA\nbundles it names are loaded as the "
		      "daemon would. Errors are printed as\nFILE:LINE: message; the exit status is 0 "
		      "when the file is valid, 1 otherwise.\n",
		      argc == 2 ? stdout : stderr);
		return argc == 2 ? 0 : 2;
	}
	kind = config_kind(argv[1]);
	if (kind == 'g') {
		struct config_gateway *g = config_gateway_load(argv[1], &msgs);
		if (g != NULL && config_gateway_check_tls(argv[1], g, &msgs) == -1) {
			config_gateway_free(g);
			g = NULL;
		}
		if (g != NULL) {
			printf("%s: ok (gateway: %zu services, %zu agents)\n", argv[1], g->nservices,
			       g->nagents);
			config_gateway_free(g);
			return 0;
		}
	} else if (kind == 'a') {
		struct config_agentd *a = config_agent_load(argv[1], &msgs);
		if (a != NULL && config_agent_check_tls(argv[1], a, &msgs) == -1) {
			config_agent_free(a);
			a = NULL;
		}
		if (a != NULL) {
			printf("%s: ok (agent: %zu gateways, %zu services)\n", argv[1],
			       a->ngateways, a->ntargets);
			config_agent_free(a);
			return 0;
		}
	} else if (kind == 'i') {
		struct intake_config *in = intake_config_load(argv[1], &msgs);
		if (in != NULL && intake_config_check_tls(argv[1], in, &msgs) == -1) {
			intake_config_free(in);
			in = NULL;
		}
		if (in != NULL) {
			printf("%s: ok (intake: %zu listeners, %zu routing rules, delivery %s)\n",
			       argv[1], in->nlisten, in->nrules, in->url ? "on" : "off");
			intake_config_free(in);
			return 0;
		}
	} else if (kind == 'c') {
		struct chat_config *cc = chat_config_load(argv[1], &msgs);
		if (cc != NULL) {
			printf("%s: ok (chat: %zu TLS and %zu plain listeners, %zu operators)\n",
			       argv[1], cc->ntls, cc->nplain, cc->noperators);
			chat_config_free(cc);
			return 0;
		}
	} else {
		FILE *f = fopen(argv[1], "r");
		if (f == NULL)
			perror(argv[1]);
		else
			fprintf(stderr, "%s:1: no [gateway], [agent], [intake] or [chat] section: not a "
					"netwall config\n",
				argv[1]);
		if (f != NULL)
			fclose(f);
		return 1;
	}
	fputs(msgs ? msgs : "", stderr);
	free(msgs);
	return 1;
}
