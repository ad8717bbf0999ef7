/*
 * overcryptd - the client agent: fetches the user's signed policy, keeps
 * it cached, holds the unlocked keys and answers the control socket. See
 * overcryptd(8) and daemon/agent.h.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "common/common.h"
#include "daemon/agent.h"

static int usage(FILE *out)
{
	fprintf(out,
		"Usage: overcryptd [--foreground] [--config FILE] [--system] [--mountinfo FILE]\n\n"
		"The overcrypt client agent: fetches and verifies the user's signed policy,\n"
		"caches it, holds the keys once 'overcrypt unlock' sent the identity, and\n"
		"answers 'overcrypt status/which/refresh/lock/unlock' on its control socket.\n\n"
		"  -f, --foreground   stay in the foreground (what systemd runs)\n"
		"  -c, --config FILE  read only FILE (user mode), not the default files\n"
		"      --system       system mode: serve the users listed in\n"
		"                     /etc/overcrypt/overcrypt.conf [client] users\n"
		"      --mountinfo FILE  read the SMB mounts from FILE (mountinfo format)\n"
		"                     instead of /proc/self/mountinfo: for tests on machines\n"
		"                     without cifs; FILE must be ours or root's, not writable\n"
		"                     by others\n"
		"  -h, --help         this text\n"
		"      --version      the version\n\n"
		"Logs go to stderr. SIGTERM/SIGINT stop it (keys wiped); SIGHUP re-reads the\n"
		"config. Exit status: 0 clean stop, 1 failure, 2 bad usage or config.\n"
		"See overcryptd(8), overcrypt.conf(5).\n");
	return out == stdout ? 0 : EXIT_USAGE;
}

/* Fork; the parent waits until the child's socket is open, then exits
 * with 0 (or 1 when the child died first). Returns the write end of the
 * readiness pipe in the child. */
static int daemonize(void)
{
	int p[2];
	pid_t pid;
	char b;

	if (pipe(p) != 0) {
		cli_err("pipe: %m");
		exit(EXIT_WORK);
	}
	pid = fork();
	if (pid < 0) {
		cli_err("fork: %m");
		exit(EXIT_WORK);
	}
	if (pid > 0) {
		int st = 0;

		close(p[1]);
		if (read(p[0], &b, 1) == 1)
			_exit(0);
		if (waitpid(pid, &st, 0) == pid && WIFEXITED(st))
			_exit(WEXITSTATUS(st));
		_exit(EXIT_WORK);
	}
	close(p[0]);
	if (setsid() < 0)
		cli_err("setsid: %m");
	/* stdout is not used; stderr stays the log */
	if (!freopen("/dev/null", "r", stdin) || !freopen("/dev/null", "w", stdout))
		cli_err("cannot reopen stdin and stdout on /dev/null");
	return p[1];
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "config", required_argument, NULL, 'c' },
		{ "system", no_argument, NULL, 'S' },
		{ "mountinfo", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	ovc_agent_opts o = { .mode = OVC_CONFIG_USER, .ready_fd = -1 };
	struct rlimit no_core = { 0, 0 };
	int fg = 0, c, rc;

	cli_prog = "overcryptd";
	while ((c = getopt_long(argc, argv, "fc:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': fg = 1; break;
		case 'c': o.config_file = optarg; break;
		case 'S': o.mode = OVC_CONFIG_SYSTEM; break;
		case 'M': o.mountinfo = optarg; break;
		case 'h': return usage(stdout);
		case 'V': puts("overcryptd " OVC_RELEASE); return 0;
		default: return usage(stderr);
		}
	}
	if (optind < argc)
		return cli_usage(NULL, "unexpected argument '%s'", argv[optind]);
	if (o.mode == OVC_CONFIG_SYSTEM && o.config_file)
		return cli_usage(NULL, "--system reads only %s: --config is for user mode",
				 OVC_CONFIG_SYSTEM_FILE);
	if (o.mode == OVC_CONFIG_SYSTEM && geteuid() != 0)
		return cli_usage(NULL, "--system must run as root");
	/* keys must never land in a core dump */
	if (setrlimit(RLIMIT_CORE, &no_core) != 0)
		cli_err("cannot disable core dumps: %m");
	if (ovc_common_init() != 0) {
		cli_err("libsodium failed to start");
		return EXIT_WORK;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		cli_err("libcurl failed to start");
		return EXIT_WORK;
	}
	if (!fg)
		o.ready_fd = daemonize();
	rc = ovc_agent_run(&o);
	curl_global_cleanup();
	return rc;
}
