/* netwall messages: placeholder until the subcommand lands. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_messages_main(int argc, char **argv)
{
	fputs("netwall messages: not built yet\n", stderr);
	return 1;
}
