/*
 * overcryptd - the client agent. In this release it only answers --help
 * and --version: policy fetch, the keyring and the overlay come with the
 * agent (see overcryptd(8)).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli_util.h"

int main(int argc, char **argv)
{
	cli_prog = "overcryptd";
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		puts("overcryptd 0.1.0");
		return 0;
	}
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		puts("Usage: overcryptd [--foreground] [--config FILE] [--system]\n\n"
		     "The overcrypt client agent. This release does not run an agent yet:\n"
		     "policy fetch, the keyring and the overlay come in a later release.\n"
		     "See overcryptd(8).");
		return 0;
	}
	return cli_usage(NULL, "this release does not run an agent yet");
}
