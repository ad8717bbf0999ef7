/*
 * overcrypt-admin - the administrators' command: the admin store, org.conf,
 * publishing signed per-user policies (see overcrypt-admin(1)).
 *
 *   overcrypt-admin [--store DIR] [--passphrase-file F] [--identity F]
 *                   [--as NAME] COMMAND [ARGS...]
 *
 * Exit status: 0 success, 1 the work failed (check found errors, a wrong
 * passphrase, …), 2 bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/cli_util.h"
#include "common/common.h"
#include "crypto/keystore.h"
#include "crypto/keys.h"
#include "policy/audit.h"
#include "policy/document.h"
#include "policy/store.h"

extern const char ovc_org_conf_example[];

/* Options that may stand before the command or after it. */
struct globals {
	const char *store;
	const char *passfile;
	const char *identity;
	const char *as;
};

static void print_diag(const ovc_diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		fprintf(stderr, "%s\n", d->lines[i]);
}

/* Parse the options every command accepts; returns the index of the first
 * argument, or -1 after a usage error was printed (exit 2). Short options
 * `extra` (getopt syntax) go to `on_extra`. */
static int parse_opts(int argc, char **argv, struct globals *g, const char *cmd,
		      const struct option *more, const char *extra,
		      int (*on_extra)(int c, const char *arg, void *ctx), void *ctx)
{
	struct option opts[32];
	char shortopts[64];
	size_t n = 0;
	static const struct option common[] = {
		{ "store", required_argument, NULL, 'S' },
		{ "passphrase-file", required_argument, NULL, 'P' },
		{ "identity", required_argument, NULL, 'I' },
		{ "as", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
	};
	int c;

	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		opts[n++] = common[i];
	for (size_t i = 0; more && more[i].name && n < 31; i++)
		opts[n++] = more[i];
	memset(&opts[n], 0, sizeof(opts[n]));
	/* Before the command, stop at it ("+"); after it, options and
	 * arguments may mix (GNU permutation). */
	snprintf(shortopts, sizeof(shortopts), "%sh%s", cmd ? "" : "+", extra ? extra : "");
	while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		switch (c) {
		case 'S': g->store = optarg; break;
		case 'P': g->passfile = optarg; break;
		case 'I': g->identity = optarg; break;
		case 'A': g->as = optarg; break;
		case 'h': return -2;
		case '?': cli_usage(cmd, "bad option"); return -1;
		default:
			if (!on_extra || on_extra(c, optarg, ctx) != 0) {
				cli_usage(cmd, "bad option");
				return -1;
			}
		}
	}
	return optind;
}

static ovc_store *open_store(const struct globals *g)
{
	ovc_store *s = NULL;
	ovc_err e;

	ovc_err_clear(&e);
	if (ovc_store_open(g->store ? g->store : ".", &s, &e) != 0) {
		cli_err("%s", e.msg);
		return NULL;
	}
	if (g->as)
		ovc_store_set_actor(s, g->as);
	return s;
}

static int unlock_store(ovc_store *s, const struct globals *g)
{
	char *pass = cli_passphrase("Admin passphrase: ", g->passfile, 0);
	ovc_err e;
	int rc;

	if (!pass)
		return -1;
	ovc_err_clear(&e);
	rc = ovc_store_unlock(s, g->identity, pass, &e);
	ovc_secret_free(pass);
	if (rc)
		cli_err("%s", e.msg);
	return rc;
}

/* ---- init ------------------------------------------------------------- */

struct init_x {
	const char *admin, *org;
};

static int init_opt(int c, const char *arg, void *ctx)
{
	struct init_x *x = ctx;

	if (c == 'a')
		x->admin = arg;
	else if (c == 'o')
		x->org = arg;
	else
		return -1;
	return 0;
}

static int cmd_init(int argc, char **argv, struct globals *g)
{
	static const struct option more[] = {
		{ "admin", required_argument, NULL, 'a' },
		{ "org", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	struct init_x x = { NULL, NULL };
	ovc_store_init_opts o;
	struct passwd *pw = getpwuid(geteuid());
	ovc_err e;
	char *pass;
	int i, rc;

	i = parse_opts(argc, argv, g, "init", more, "a:o:", init_opt, &x);
	if (i == -2) {
		puts("Usage: overcrypt-admin init DIR [--passphrase-file F] [--admin NAME] [--org NAME]\n"
		     "Create an admin store in DIR: org.conf with commented examples, a new org\n"
		     "signing key (DIR/org.pub), a new admin identity protected by a passphrase\n"
		     "(16+ characters; asked twice on a terminal), keys.age, state.json, audit.log.\n\n"
		     "  --admin NAME   the first admin's name (default: your login name)\n"
		     "  --org NAME     the organisation's name (default: the folder's name)");
		return 0;
	}
	if (i < 0)
		return EXIT_USAGE;
	if (argc - i != 1)
		return cli_usage("init", "init takes one DIR");
	memset(&o, 0, sizeof(o));
	o.dir = argv[i];
	o.admin = x.admin ? x.admin : (pw ? pw->pw_name : "admin");
	if (!x.org) {
		const char *b = strrchr(o.dir, '/');
		x.org = b && b[1] ? b + 1 : o.dir;
	}
	o.org = x.org;
	o.org_conf_template = ovc_org_conf_example;
	if (!g->passfile)
		fprintf(stderr, "Choose the admin passphrase: at least %d characters with upper and\n"
			"lower case letters, a digit and a special character.\n", OVC_ADMIN_MIN_PASS);
	pass = cli_passphrase("Admin passphrase: ", g->passfile, 1);
	if (!pass)
		return EXIT_WORK;
	o.passphrase = pass;
	ovc_err_clear(&e);
	rc = ovc_store_init(&o, &e);
	ovc_secret_free(pass);
	if (rc) {
		cli_err("%s", e.msg);
		return EXIT_WORK;
	}
	fprintf(stderr, "Admin store created in %s. Describe the organisation in %s/org.conf,\n"
		"then run 'overcrypt-admin --store %s check' and 'publish --out DIR'.\n",
		o.dir, o.dir, o.dir);
	return 0;
}

/* ---- check --------------------------------------------------------------- */

static int cmd_check(int argc, char **argv, struct globals *g)
{
	const ovc_org *org;
	ovc_store *s;
	ovc_diag d = { 0 };
	int i = parse_opts(argc, argv, g, "check", NULL, NULL, NULL, NULL), rc;

	if (i == -2) {
		puts("Usage: overcrypt-admin [--store DIR] check\n"
		     "Check org.conf; every problem is reported as FILE:LINE: message.");
		return 0;
	}
	if (i < 0 || i != argc)
		return i < 0 ? EXIT_USAGE : cli_usage("check", "unexpected argument '%s'", argv[i]);
	s = open_store(g);
	if (!s)
		return EXIT_WORK;
	rc = ovc_store_org(s, &org, &d);
	print_diag(&d);
	if (!rc)
		printf("org.conf is fine: %zu users, %zu groups, %zu assets, %zu admins\n",
		       org->nusers, org->ngroups, org->nassets, org->nadmins);
	else
		fprintf(stderr, "%zu problem%s found\n", d.n, d.n == 1 ? "" : "s");
	ovc_diag_free(&d);
	ovc_store_close(s);
	return rc ? EXIT_WORK : 0;
}

/* ---- publish ----------------------------------------------------------------- */

struct publish_x {
	const char *out;
	uint64_t floor;
	int yes, if_due;
};

static int publish_opt(int c, const char *arg, void *ctx)
{
	struct publish_x *x = ctx;
	char *end;

	switch (c) {
	case 'o': x->out = arg; return 0;
	case 'y': x->yes = 1; return 0;
	case 'D': x->if_due = 1; return 0;
	case 'F':
		errno = 0;
		x->floor = strtoull(arg, &end, 10);
		return errno || *end || end == arg ? -1 : 0;
	default: return -1;
	}
}

/* Security-relevant changes: asked on a terminal, accepted with --yes,
 * refused otherwise. */
static int confirm(void *ctx, const ovc_diag *changes)
{
	struct publish_x *x = ctx;
	char answer[16] = "";
	FILE *tty;

	fprintf(stderr, "Security-relevant changes since the last publish:\n");
	for (size_t i = 0; i < changes->n; i++)
		fprintf(stderr, "  %s\n", changes->lines[i]);
	if (x->yes) {
		fprintf(stderr, "(confirmed by --yes; recorded in the audit log)\n");
		return 1;
	}
	tty = fopen("/dev/tty", "r+e");
	if (!tty || !isatty(fileno(tty))) {
		if (tty)
			fclose(tty);
		cli_err("these changes need confirmation: run on a terminal, or pass --yes");
		return 0;
	}
	fprintf(tty, "Publish them? [y/N] ");
	fflush(tty);
	if (!fgets(answer, sizeof(answer), tty))
		answer[0] = '\0';
	fclose(tty);
	return answer[0] == 'y' || answer[0] == 'Y';
}

static int cmd_publish(int argc, char **argv, struct globals *g)
{
	static const struct option more[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "yes", no_argument, NULL, 'y' },
		{ "if-due", no_argument, NULL, 'D' },
		{ "serial-floor", required_argument, NULL, 'F' },
		{ NULL, 0, NULL, 0 },
	};
	struct publish_x x = { NULL, 0, 0, 0 };
	ovc_publish_opts o;
	ovc_publish_result r;
	ovc_store *s;
	ovc_diag d = { 0 };
	ovc_err e;
	int i = parse_opts(argc, argv, g, "publish", more, "o:y", publish_opt, &x), rc;

	if (i == -2) {
		puts("Usage: overcrypt-admin [--store DIR] publish --out DIR [--yes] [--if-due]\n"
		     "                       [--serial-floor N] [--passphrase-file F]\n"
		     "Compile, sign and write every user's policy (<user>.json and .minisig) into\n"
		     "DIR (created when missing). Unchanged policies keep their files.\n\n"
		     "  -o, --out DIR         where the policies go (serve it over HTTPS)\n"
		     "  -y, --yes             accept security-relevant changes without asking\n"
		     "      --if-due          for timers: re-sign what is past half its validity\n"
		     "      --serial-floor N  make every new serial at least N");
		return 0;
	}
	if (i < 0)
		return EXIT_USAGE;
	if (i != argc)
		return cli_usage("publish", "unexpected argument '%s'", argv[i]);
	if (!x.out)
		return cli_usage("publish", "--out DIR is required");
	s = open_store(g);
	if (!s)
		return EXIT_WORK;
	if (unlock_store(s, g) != 0) {
		ovc_store_close(s);
		return EXIT_WORK;
	}
	memset(&o, 0, sizeof(o));
	o.out_dir = x.out;
	o.serial_floor = x.floor;
	o.if_due = x.if_due;
	o.now = time(NULL);
	o.confirm = confirm;
	o.confirm_ctx = &x;
	ovc_err_clear(&e);
	rc = ovc_store_publish(s, &o, &r, &d, &e);
	print_diag(&d);
	if (rc) {
		cli_err("%s", e.msg);
	} else {
		for (size_t k = 0; k < r.lost_access.n; k++)
			fprintf(stderr, "warning: %s\n", r.lost_access.lines[k]);
		printf("published to %s: %zu written, %zu unchanged, %zu removed, %zu new keys\n",
		       x.out, r.written, r.unchanged, r.removed, r.keys_created);
	}
	ovc_publish_result_free(&r);
	ovc_diag_free(&d);
	ovc_store_close(s);
	return rc ? EXIT_WORK : 0;
}

/* ---- explain ------------------------------------------------------------------------ */

static int cmd_explain(int argc, char **argv, struct globals *g)
{
	char why[1024];
	ovc_store *s;
	ovc_diag d = { 0 };
	ovc_err e;
	int i = parse_opts(argc, argv, g, "explain", NULL, NULL, NULL, NULL), rc;

	if (i == -2) {
		puts("Usage: overcrypt-admin [--store DIR] explain USER PATH\n"
		     "Which rule USER's policy applies to PATH, and why (the clients' matcher).");
		return 0;
	}
	if (i < 0)
		return EXIT_USAGE;
	if (argc - i != 2)
		return cli_usage("explain", "explain takes USER and PATH");
	s = open_store(g);
	if (!s)
		return EXIT_WORK;
	ovc_err_clear(&e);
	rc = ovc_store_explain(s, argv[i], argv[i + 1], why, sizeof(why), &d, &e);
	print_diag(&d);
	if (rc)
		cli_err("%s", e.msg);
	else
		printf("%s\n", why);
	ovc_diag_free(&d);
	ovc_store_close(s);
	return rc ? EXIT_WORK : 0;
}

static int deleted_opt(int c, const char *arg, void *ctx)
{
	(void)arg;
	if (c != 'd')
		return -1;
	*(int *)ctx = 1;
	return 0;
}

/* ---- asset ------------------------------------------------------------------------- */

static int cmd_asset(int argc, char **argv, struct globals *g)
{
	static const struct option more[] = {
		{ "deleted", no_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	int deleted = 0, i, rc;
	ovc_store *s;
	ovc_diag d = { 0 };
	ovc_err e;

	i = parse_opts(argc, argv, g, "asset", more, "", deleted_opt, &deleted);
	if (i == -2) {
		puts("Usage: overcrypt-admin [--store DIR] asset list [--deleted]\n"
		     "       overcrypt-admin [--store DIR] asset delete NAME\n"
		     "       overcrypt-admin [--store DIR] asset restore NAME\n"
		     "A deleted asset leaves every policy at the next publish; its keys are kept,\n"
		     "so its files stay readable with a key export. Restore refuses when an active\n"
		     "asset now has its path.");
		return 0;
	}
	if (i < 0)
		return EXIT_USAGE;
	if (i >= argc)
		return cli_usage("asset", "asset needs list, delete or restore");
	s = open_store(g);
	if (!s)
		return EXIT_WORK;
	ovc_err_clear(&e);
	if (!strcmp(argv[i], "list") && argc - i == 1) {
		ovc_asset_info *v = NULL;
		size_t n = 0;
		rc = ovc_store_asset_list(s, deleted, &v, &n, &d, &e);
		for (size_t k = 0; !rc && k < n; k++)
			printf("%-24s %-8s %s%s\n", v[k].name, ovc_rule_type_name(v[k].type),
			       v[k].path ? v[k].path : "(not in org.conf)", v[k].deleted ? "  [deleted]" : "");
		free(v);
	} else if (!strcmp(argv[i], "delete") && argc - i == 2) {
		rc = ovc_store_asset_delete(s, argv[i + 1], &d, &e);
		if (!rc)
			printf("asset '%s' deleted: it leaves every policy at the next publish; its keys are kept\n", argv[i + 1]);
	} else if (!strcmp(argv[i], "restore") && argc - i == 2) {
		rc = ovc_store_asset_restore(s, argv[i + 1], &d, &e);
		if (!rc)
			printf("asset '%s' restored: it is back in the policies at the next publish\n", argv[i + 1]);
	} else {
		ovc_store_close(s);
		return cli_usage("asset", "asset takes 'list [--deleted]', 'delete NAME' or 'restore NAME'");
	}
	print_diag(&d);
	if (rc)
		cli_err("%s", e.msg);
	ovc_diag_free(&d);
	ovc_store_close(s);
	return rc ? EXIT_WORK : 0;
}

/* ---- keys --------------------------------------------------------------------------- */

struct keys_x {
	const char *out;
	const char *export_passfile;
	int deleted;
};

static int keys_opt(int c, const char *arg, void *ctx)
{
	struct keys_x *x = ctx;

	if (c == 'o')
		x->out = arg;
	else if (c == 'E')
		x->export_passfile = arg;
	else
		return -1;
	return 0;
}

static void keys_print(ovc_store *s)
{
	size_t n;
	const ovc_admin_key *k = ovc_store_keys(s, &n);
	char id[OVC_KEY_ID_STRLEN + 1], t[21];

	for (size_t i = 0; i < n; i++) {
		ovc_key_id_format(k[i].id, id);
		ovc_time_format((time_t)k[i].created, t);
		printf("%s  %-20s %-12s %s %s\n", id, k[i].asset, k[i].user[0] ? k[i].user : "-", t,
		       k[i].current ? "current" : "retired");
	}
}

static int keys_sub(ovc_store *s, int argc, char **argv, int i, struct keys_x *x,
		    ovc_diag *d, ovc_err *e)
{
	char *pass;
	size_t n = 0;
	int rc;

	if (!strcmp(argv[i], "list") && argc - i == 1) {
		keys_print(s);
		return 0;
	}
	if (!strcmp(argv[i], "rotate") && argc - i == 2) {
		rc = ovc_store_keys_rotate(s, argv[i + 1], &n, d, e);
		if (!rc)
			printf("%zu new key%s for '%s': new files get it from the next publish; old files keep theirs\n",
			       n, n == 1 ? "" : "s", argv[i + 1]);
		return rc;
	}
	if (!strcmp(argv[i], "export") && argc - i == 1 && x->out) {
		pass = cli_passphrase("Export passphrase: ", x->export_passfile, 1);
		if (!pass)
			return -EINVAL;
		rc = ovc_store_keys_export(s, x->out, pass, e);
		ovc_secret_free(pass);
		if (!rc)
			printf("every key exported to %s (stock 'age -d' opens it with the passphrase)\n", x->out);
		return rc;
	}
	if (!strcmp(argv[i], "import") && argc - i == 2) {
		rc = ovc_store_keys_import(s, argv[i + 1], NULL, &n, d, e);
		if (rc == -ENOKEY) {
			pass = cli_passphrase("Export passphrase: ", x->export_passfile, 0);
			if (!pass)
				return -EINVAL;
			ovc_err_clear(e);
			rc = ovc_store_keys_import(s, argv[i + 1], pass, &n, d, e);
			ovc_secret_free(pass);
		}
		if (!rc)
			printf("%zu key%s imported\n", n, n == 1 ? "" : "s");
		return rc;
	}
	return 1;
}

static int cmd_keys(int argc, char **argv, struct globals *g)
{
	static const struct option more[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "export-passphrase-file", required_argument, NULL, 'E' },
		{ NULL, 0, NULL, 0 },
	};
	struct keys_x x = { NULL, NULL, 0 };
	ovc_store *s;
	ovc_diag d = { 0 };
	ovc_err e;
	int i = parse_opts(argc, argv, g, "keys", more, "o:", keys_opt, &x), rc;

	if (i == -2) {
		puts("Usage: overcrypt-admin [--store DIR] keys list\n"
		     "       overcrypt-admin [--store DIR] keys rotate ASSET\n"
		     "       overcrypt-admin [--store DIR] keys export --out FILE [--export-passphrase-file F]\n"
		     "       overcrypt-admin [--store DIR] keys import FILE [--export-passphrase-file F]\n"
		     "Each needs the admin passphrase (--passphrase-file F for scripts). An export\n"
		     "holds every key as JSON inside an age passphrase file (16+ characters) that\n"
		     "'overcrypt decrypt --key FILE' and stock 'age -d' open. Import only adds keys.");
		return 0;
	}
	if (i < 0)
		return EXIT_USAGE;
	if (i >= argc)
		return cli_usage("keys", "keys needs list, rotate, export or import");
	s = open_store(g);
	if (!s)
		return EXIT_WORK;
	if (unlock_store(s, g) != 0) {
		ovc_store_close(s);
		return EXIT_WORK;
	}
	ovc_err_clear(&e);
	rc = keys_sub(s, argc, argv, i, &x, &d, &e);
	print_diag(&d);
	if (rc < 0 && e.msg[0])
		cli_err("%s", e.msg);
	ovc_diag_free(&d);
	ovc_store_close(s);
	if (rc > 0)
		return cli_usage("keys", "keys takes 'list', 'rotate ASSET', 'export --out FILE' or 'import FILE'");
	return rc ? EXIT_WORK : 0;
}

/* ---- audit ---------------------------------------------------------------------------- */

struct audit_x {
	ovc_audit_filter f;
	const char *head;
	int bad;
};

static int audit_opt(int c, const char *arg, void *ctx)
{
	struct audit_x *x = ctx;

	switch (c) {
	case 's': return ovc_time_parse(arg, &x->f.since) == 0 ? 0 : (x->bad = 1, 0);
	case 'u': return ovc_time_parse(arg, &x->f.until) == 0 ? 0 : (x->bad = 1, 0);
	case 'a': x->f.action = arg; return 0;
	case 'U': x->f.user = arg; return 0;
	case 'H': x->head = arg; return 0;
	default: return -1;
	}
}

static int audit_print(void *ctx, const ovc_audit_entry *en)
{
	char t[21];

	(void)ctx;
	ovc_time_format(en->time, t);
	printf("%6llu %s %-12s %-14s %-16s %s\n", (unsigned long long)en->seq, t, en->admin,
	       en->action, en->object, en->details);
	return 0;
}

/* Say whether org.conf is the one the head was signed with: a difference
 * is normal after an edit, and the sign of a rollback otherwise. */
static void report_org_conf(const char *dir, const ovc_audit_head *h)
{
	char path[PATH_MAX];
	uint8_t *txt, sha[32];
	size_t len;

	snprintf(path, sizeof(path), "%s/org.conf", dir);
	if (ovc_read_file(path, 16u << 20, 0, &txt, &len) != 0)
		return;
	crypto_hash_sha256(sha, txt, len);
	free(txt);
	if (sodium_memcmp(sha, h->org_conf_sha256, 32) == 0)
		printf("org.conf is the one published last\n");
	else
		printf("org.conf differs from the one published last: edited since, or rolled back\n");
}

static int audit_verify(const char *dir, const char *head, ovc_err *e)
{
	char log[PATH_MAX], pubp[PATH_MAX], sigp[PATH_MAX];
	uint8_t *hj = NULL, *sig = NULL, last[32];
	size_t hlen, slen;
	ovc_minisign_pubkey pk;
	ovc_audit_head h;
	uint64_t count;
	int rc;

	snprintf(log, sizeof(log), "%s/audit.log", dir);
	if (!head) {
		rc = ovc_audit_verify(log, &count, last, e);
		if (!rc)
			printf("audit.log: %llu entries, chain intact (give --head PUBLISHED/audit-head.json to\n"
			       "also detect a cut-off tail or a rolled-back store)\n", (unsigned long long)count);
		return rc;
	}
	snprintf(pubp, sizeof(pubp), "%s/org.pub", dir);
	snprintf(sigp, sizeof(sigp), "%s.minisig", head);
	rc = ovc_minisign_pubkey_load(pubp, &pk, e);
	if (!rc)
		rc = ovc_read_file(head, 1 << 20, 0, &hj, &hlen);
	if (!rc)
		rc = ovc_read_file(sigp, 1 << 16, 0, &sig, &slen);
	if (rc && !e->msg[0])
		ovc_err_set(e, rc, "%s", strerror(-rc));
	if (!rc)
		rc = ovc_audit_head_verify_ex(log, (char *)hj, hlen, (char *)sig, slen, &pk, &h,
					      &count, e);
	if (!rc) {
		printf("audit.log matches the signed head %s (%llu entries signed, %llu now)\n", head,
		       (unsigned long long)h.entries, (unsigned long long)count);
		report_org_conf(dir, &h);
		ovc_audit_head_release(&h);
	}
	free(hj);
	free(sig);
	return rc;
}

static int cmd_audit(int argc, char **argv, struct globals *g)
{
	static const struct option more[] = {
		{ "since", required_argument, NULL, 's' },
		{ "until", required_argument, NULL, 'u' },
		{ "action", required_argument, NULL, 'a' },
		{ "user", required_argument, NULL, 'U' },
		{ "head", required_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	struct audit_x x;
	char log[PATH_MAX];
	ovc_store *s;
	ovc_err e;
	int i, rc;

	memset(&x, 0, sizeof(x));
	i = parse_opts(argc, argv, g, "audit", more, "", audit_opt, &x);
	if (i == -2) {
		puts("Usage: overcrypt-admin [--store DIR] audit show [--since T] [--until T]\n"
		     "                                  [--action A] [--user U]\n"
		     "       overcrypt-admin [--store DIR] audit verify [--head PUBLISHED/audit-head.json]\n"
		     "Times are RFC 3339 UTC (2026-11-24T10:00:00Z). verify names the first bad line.");
		return 0;
	}
	if (i < 0)
		return EXIT_USAGE;
	if (x.bad)
		return cli_usage("audit", "times are written 2026-11-24T10:00:00Z");
	if (argc - i != 1 || (strcmp(argv[i], "show") && strcmp(argv[i], "verify")))
		return cli_usage("audit", "audit takes 'show' or 'verify'");
	s = open_store(g);
	if (!s)
		return EXIT_WORK;
	ovc_err_clear(&e);
	snprintf(log, sizeof(log), "%s/audit.log", ovc_store_dir(s));
	if (!strcmp(argv[i], "show"))
		rc = ovc_audit_each(log, &x.f, audit_print, NULL, &e);
	else
		rc = audit_verify(ovc_store_dir(s), x.head, &e);
	if (rc)
		cli_err("%s", e.msg[0] ? e.msg : strerror(-rc));
	ovc_store_close(s);
	return rc ? EXIT_WORK : 0;
}

/* ---- main ---------------------------------------------------------------------------- */

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv, struct globals *g);
	const char *summary;
} commands[] = {
	{ "init", cmd_init, "create an admin store" },
	{ "check", cmd_check, "check org.conf (FILE:LINE: errors)" },
	{ "publish", cmd_publish, "compile, sign and write every user's policy" },
	{ "explain", cmd_explain, "which rule a user's policy applies to a path" },
	{ "asset", cmd_asset, "list, delete or restore assets" },
	{ "keys", cmd_keys, "list, rotate, export or import asset keys" },
	{ "audit", cmd_audit, "show or verify the audit log" },
};

static int usage(FILE *out)
{
	fprintf(out, "Usage: overcrypt-admin [--store DIR] [--passphrase-file F] [--identity F]\n"
		"                       [--as NAME] COMMAND [ARGS...]\n\n"
		"The administrators' command: the admin store and its signed policies.\n\nCommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n  --store DIR            the admin store (default: the current folder)\n"
		"  --passphrase-file F    read the admin passphrase from the first line of F\n"
		"  --identity F           an admin identity file other than the store's\n"
		"  --as NAME              the admin name written to the audit log\n\n"
		"'overcrypt-admin COMMAND --help' describes each. Exit status: 0 success,\n"
		"1 the work failed, 2 bad usage. See overcrypt-admin(1).\n");
	return out == stdout ? 0 : EXIT_USAGE;
}

int main(int argc, char **argv)
{
	struct globals g = { NULL, NULL, NULL, NULL };
	int i;

	cli_prog = "overcrypt-admin";
	if (ovc_common_init() != 0) {
		cli_err("libsodium failed to start");
		return EXIT_WORK;
	}
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		puts("overcrypt-admin 0.1.0");
		return 0;
	}
	i = parse_opts(argc, argv, &g, NULL, NULL, NULL, NULL, NULL);
	if (i == -2)
		return usage(stdout);
	if (i < 0)
		return EXIT_USAGE;
	if (i >= argc)
		return usage(stderr);
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
		if (!strcmp(argv[i], commands[k].name)) {
			int sub_argc = argc - i;
			char **sub_argv = argv + i;
			optind = 0; /* GNU getopt: a full restart, permutation state too */
			return commands[k].run(sub_argc, sub_argv, &g);
		}
	}
	return cli_usage(NULL, "unknown command '%s'", argv[i]);
}
