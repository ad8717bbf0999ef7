/*
 * overcrypt-admin - the administrators' command. In this release it only
 * answers --help and --version: the admin store, org.conf and publishing
 * come with the policy engine (see overcrypt-admin(1)).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli_util.h"

int main(int argc, char **argv)
{
	cli_prog = "overcrypt-admin";
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		puts("overcrypt-admin 0.1.0");
		return 0;
	}
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		puts("Usage: overcrypt-admin [--store DIR] [--passphrase-file F] COMMAND [ARGS...]\n\n"
		     "The administrators' command. This release has no commands yet: the\n"
		     "admin store, org.conf, check and publish come with the policy engine.\n"
		     "See overcrypt-admin(1).");
		return 0;
	}
	return cli_usage(NULL, argc > 1 ? "unknown command '%s' (this release has none yet)" : "no command given%s",
			 argc > 1 ? argv[1] : "");
}
