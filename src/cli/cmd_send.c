/* netwall send: placeholder until the subcommand lands. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_send_main(int argc, char **argv)
{
	fputs("netwall send: not built yet\n", stderr);
	return 1;
}
