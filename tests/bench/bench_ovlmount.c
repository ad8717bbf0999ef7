/*
 * bench_ovlmount.c - mount the overlay on one folder, in place, with one
 * shared rule and a key of its own (no agent, no policy), and with some
 * of its speed choices turned off, so that tests/bench/fsbench.py can
 * measure what each choice is worth (FSBENCH_VARIANTS). Serves until SIGTERM
 * or SIGINT, then unmounts. A benchmark tool, never installed: its key is a
 * plain keys file (mode 0600) that the benchmark keeps in its scratch folder
 * so that files survive a remount.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "crypto/keys.h"
#include "fusefs/overlay.h"
#include "policy/rules.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: bench_ovlmount [OPTION]... DIR\n"
		"Mount the overcrypt overlay on DIR in place (one shared rule over DIR,\n"
		"the key from a plain keys file) until SIGTERM or SIGINT. For benchmarks only.\n\n"
		"  --keys FILE         the keys file (made, mode 0600, when missing; required)\n"
		"  --no-writeback      no kernel writeback cache\n"
		"  --no-keep-cache     never keep the page cache across opens\n"
		"  --no-readdirplus    plain readdir\n"
		"  --max-write N       largest write request in bytes (default 1 MiB)\n"
		"  --read-ahead-kb N   the mount's read_ahead_kb (default 1024, 0 = the kernel's)\n"
		"  --no-rule           no rule covers DIR: everything passes through (what\n"
		"                      overlaying a whole home folder costs its plain files)\n"
		"  -h, --help          this text\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "no-writeback", no_argument, NULL, 'w' },
		{ "no-keep-cache", no_argument, NULL, 'k' },
		{ "no-readdirplus", no_argument, NULL, 'p' },
		{ "max-write", required_argument, NULL, 'm' },
		{ "read-ahead-kb", required_argument, NULL, 'r' },
		{ "keys", required_argument, NULL, 'K' },
		{ "no-rule", no_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	ovc_overlay_opts o = { .allow_other = 1, .read_ahead_kb = 1024 };
	ovc_rule r = { .asset = "bench", .type = OVC_RULE_SHARED, .has_key = 1 };
	ovc_policy_settings s = { 0 };
	ovc_keyset *ks;
	const ovc_key *k;
	ovc_ruleset *rs;
	ovc_view_rules *rules;
	ovc_view_keys *keys;
	ovc_views *vs;
	ovc_overlay *ov;
	ovc_err e = { 0 };
	char dir[PATH_MAX], rp[PATH_MAX + 32];
	const char *folders[1];
	sigset_t set;
	const char *keyfile = NULL;
	int c, sig, no_rule = 0;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'w': o.no_writeback = 1; break;
		case 'k': o.no_keep_cache = 1; break;
		case 'p': o.no_readdirplus = 1; break;
		case 'm': o.max_write = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'r': o.read_ahead_kb = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'K': keyfile = optarg; break;
		case 'N': no_rule = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1 || !keyfile) {
		usage(stderr);
		return 2;
	}
	if (!realpath(argv[optind], dir)) {
		fprintf(stderr, "bench_ovlmount: %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	if (ovc_common_init() < 0)
		return 1;
	if (access(keyfile, F_OK) == 0) {
		if (ovc_keyset_load(keyfile, NULL, &ks, &e) < 0 || ks->n < 1) {
			fprintf(stderr, "bench_ovlmount: %s: %s\n", keyfile,
				e.msg[0] ? e.msg : "no key");
			return 1;
		}
		k = &ks->keys[0];
	} else {
		ks = ovc_keyset_new(1);
		if (!ks || ovc_keyset_generate(ks, &k) < 0 ||
		    ovc_keyset_save(keyfile, ks, &e) < 0) {
			fprintf(stderr, "bench_ovlmount: %s: cannot make the key: %s\n",
				keyfile, e.msg);
			return 1;
		}
	}
	memcpy(r.key_id, k->id, sizeof(r.key_id));
	snprintf(rp, sizeof(rp), no_rule ? "%s/.bench-no-such-folder/" : "%s/", dir);
	r.path = rp;
	if (ovc_ruleset_build(&r, 1, "bench", NULL, 0, &rs, &e) < 0) {
		fprintf(stderr, "bench_ovlmount: rule: %s\n", e.msg);
		return 1;
	}
	rules = ovc_view_rules_new(rs);
	keys = ovc_view_keys_new(ks);
	vs = ovc_views_new();
	folders[0] = dir;
	if (!rules || !keys || !vs ||
	    ovc_views_publish(vs, ovc_view_new(getuid(), "bench", OVC_VIEW_READY, 1, &s,
					       rules, keys, folders, 1)) < 0) {
		fprintf(stderr, "bench_ovlmount: cannot build the view\n");
		return 1;
	}
	o.mountpoint = dir;
	o.backing_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (o.backing_fd < 0) {
		fprintf(stderr, "bench_ovlmount: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	o.views = vs;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (ovc_overlay_mount(&o, &ov, &e) < 0) {
		fprintf(stderr, "bench_ovlmount: mount %s: %s\n", dir, e.msg);
		return 1;
	}
	fprintf(stderr, "bench_ovlmount: serving %s\n", dir);
	while (sigwait(&set, &sig) != 0 || (sig != SIGTERM && sig != SIGINT))
		;
	ovc_overlay_unmount(ov);
	ovc_views_free(vs);
	ovc_view_rules_unref(rules);
	ovc_view_keys_unref(keys);
	return 0;
}
