/* netwall intake: placeholder until the subcommand lands. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_intake_main(int argc, char **argv)
{
	fputs("netwall intake: not built yet\n", stderr);
	return 1;
}
