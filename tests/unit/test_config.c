/* Unit tests of daemon/config: overcrypt.conf, its defaults in both modes,
 * the order of the files, --config, and every error with its file:line. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "daemon/config.h"

/* Two pins: base64 of 32 bytes each. */
#define PIN1 "sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define PIN2 "sha256//YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY="

/* The head every small file starts with: 3 lines. */
#define HEAD "[server]\npolicy_url = https://policy.corp/p/\norg_public_key = /etc/k.pub\n"

static ovc_config_opts user_opts(void)
{
	ovc_config_opts o = { 0 };

	o.mode = OVC_CONFIG_USER;
	o.system_file = "/nonexistent/overcrypt.conf";
	o.home = "/home/alice";
	o.xdg_runtime_dir = "/run/user/1000";
	o.login = "alice";
	return o;
}

static ovc_config_opts system_opts(void)
{
	ovc_config_opts o = { 0 };

	o.mode = OVC_CONFIG_SYSTEM;
	o.system_file = "/nonexistent/overcrypt.conf";
	o.home = "/root";
	o.login = "root";
	return o;
}

static void dump(const ovc_diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		fprintf(stderr, "  got: %s\n", d->lines[i]);
}

static ovc_config *mem_ok(const char *text, const ovc_config_opts *o)
{
	ovc_diag d = { 0 };
	ovc_config *c = NULL;
	int rc = ovc_config_load_mem(text, strlen(text), "t.conf", o, &c, &d);

	if (rc)
		dump(&d);
	assert_int_equal(rc, 0);
	assert_int_equal(d.n, 0);
	assert_non_null(c);
	ovc_diag_free(&d);
	return c;
}

/* The messages of `d` are exactly those given (NULL-ended), in order. */
static void assert_msgs_v(const ovc_diag *d, va_list ap)
{
	const char *m;
	size_t n = 0;
	int bad = 0;

	while ((m = va_arg(ap, const char *))) {
		if (n >= d->n || strcmp(d->lines[n], m)) {
			fprintf(stderr, "want [%zu]: %s\n", n, m);
			bad = 1;
		}
		n++;
	}
	if (bad || n != d->n)
		dump(d);
	assert_false(bad);
	assert_int_equal(d->n, n);
}

/* Loading `text` as t.conf with `o` fails with -EINVAL and exactly the
 * messages given (NULL-ended). */
static void mem_fails(const ovc_config_opts *o, const char *text, ...)
{
	ovc_diag d = { 0 };
	ovc_config *c = (ovc_config *)1;
	va_list ap;

	assert_int_equal(ovc_config_load_mem(text, strlen(text), "t.conf", o, &c, &d), -EINVAL);
	assert_null(c);
	va_start(ap, text);
	assert_msgs_v(&d, ap);
	va_end(ap);
	ovc_diag_free(&d);
}

static void user_fails(const char *text, ...)
	__attribute__((sentinel));
static void user_fails(const char *text, ...)
{
	ovc_config_opts o = user_opts();
	ovc_diag d = { 0 };
	ovc_config *c = (ovc_config *)1;
	va_list ap;

	assert_int_equal(ovc_config_load_mem(text, strlen(text), "t.conf", &o, &c, &d), -EINVAL);
	assert_null(c);
	va_start(ap, text);
	assert_msgs_v(&d, ap);
	va_end(ap);
	ovc_diag_free(&d);
}

/* ---------------------------------------------------------------------------
 * Files on disk.
 */

static char tmpdir[64];

static int setup_dir(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/test_config.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Write `text` to tmpdir/rel (folders made); returns the path (static
 * buffer ring of 4). */
static const char *put(const char *rel, const char *text)
{
	static char paths[4][256];
	static int next;
	char *p = paths[next++ % 4];
	char *slash;

	snprintf(p, 256, "%s/%s", tmpdir, rel);
	for (slash = strchr(p + strlen(tmpdir) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(p, 0700);
		*slash = '/';
	}
	assert_int_equal(ovc_write_file_atomic(p, text, strlen(text), 0600, 0), 0);
	return p;
}

static const char *path_of(const char *rel)
{
	static char p[256];

	snprintf(p, sizeof(p), "%s/%s", tmpdir, rel);
	return p;
}

/* ---------------------------------------------------------------------------
 * Tests.
 */

static void test_defaults_user(void **state)
{
	ovc_config_opts o = user_opts();
	ovc_config *c;

	(void)state;
	c = mem_ok(HEAD, &o);
	assert_int_equal(c->mode, OVC_CONFIG_USER);
	assert_string_equal(c->policy_url, "https://policy.corp/p/");
	assert_int_equal(c->norg_public_keys, 1);
	assert_string_equal(c->org_public_keys[0], "/etc/k.pub");
	assert_null(c->ca_file);
	assert_null(c->pin_sha256);
	assert_null(c->client_cert);
	assert_null(c->client_key);
	assert_string_equal(c->user, "alice");
	assert_string_equal(c->keystore, "/home/alice/.local/share/overcrypt/keystore.age");
	assert_string_equal(c->cache_dir, "/home/alice/.cache/overcrypt");
	assert_string_equal(c->runtime_dir, "/run/user/1000/overcrypt");
	assert_int_equal(c->nusers, 0);
	assert_int_equal(c->nmount_paths, 0);
	assert_int_equal(c->log_level, OVC_LOG_INFO);
	assert_int_equal(c->nfiles, 1);
	assert_string_equal(c->files[0], "t.conf");
	ovc_config_free(c);

	/* the XDG variables win over HOME; empty or relative ones are ignored */
	o.xdg_data_home = "/data";
	o.xdg_cache_home = "/cache";
	c = mem_ok(HEAD, &o);
	assert_string_equal(c->keystore, "/data/overcrypt/keystore.age");
	assert_string_equal(c->cache_dir, "/cache/overcrypt");
	ovc_config_free(c);
	o.xdg_data_home = "";
	o.xdg_cache_home = "rel/cache";
	c = mem_ok(HEAD, &o);
	assert_string_equal(c->keystore, "/home/alice/.local/share/overcrypt/keystore.age");
	assert_string_equal(c->cache_dir, "/home/alice/.cache/overcrypt");
	ovc_config_free(c);
}

static void test_defaults_system(void **state)
{
	ovc_config_opts o = system_opts();
	ovc_config *c;

	(void)state;
	c = mem_ok(HEAD "[client]\nusers = alice, bob,\n", &o);
	assert_int_equal(c->mode, OVC_CONFIG_SYSTEM);
	assert_null(c->user);
	assert_null(c->keystore);
	assert_string_equal(c->cache_dir, "/var/lib/overcrypt");
	assert_string_equal(c->runtime_dir, "/run/overcrypt");
	assert_int_equal(c->nusers, 2);
	assert_string_equal(c->users[0], "alice");
	assert_string_equal(c->users[1], "bob");
	assert_int_equal(c->log_level, OVC_LOG_INFO);
	ovc_config_free(c);

	c = mem_ok(HEAD "[client]\nusers = @staff\ncache_dir = /srv/c\nruntime_dir = /run/x\n", &o);
	assert_int_equal(c->nusers, 1);
	assert_string_equal(c->users[0], "@staff");
	assert_string_equal(c->cache_dir, "/srv/c");
	assert_string_equal(c->runtime_dir, "/run/x");
	ovc_config_free(c);
}

static void test_every_key(void **state)
{
	static const char text[] =
		"\xEF\xBB\xBF# every key\n"
		"[server]\n"
		"policy_url = file:///srv/policy/   ; a comment\n"
		"ca_file = /etc/ssl/ca.pem\n"
		"pin_sha256 = " PIN1 " ; \n"
		"client_cert: /etc/c.pem\n"
		"  client_key = /etc/c.key\n"
		"org_public_key = /etc/org.pub\n"
		"org_public_key = /etc/org-next.pub\n"
		"\n"
		"[client]\n"
		"user = a.smith\n"
		"keystore = /k/ks.age\n"
		"cache_dir = /c\n"
		"runtime_dir = /r\n"
		"[mount]\n"
		"path = /home/alice/Documents\n"
		"path = /data/shared\n"
		"[log]\n"
		"level = debug\n"
		"[server]\n"
		"; sections may come back\n";
	ovc_config_opts o = user_opts();
	ovc_config *c;

	(void)state;
	c = mem_ok(text, &o);
	assert_string_equal(c->policy_url, "file:///srv/policy/");
	assert_string_equal(c->ca_file, "/etc/ssl/ca.pem");
	assert_string_equal(c->pin_sha256, PIN1);
	assert_string_equal(c->client_cert, "/etc/c.pem");
	assert_string_equal(c->client_key, "/etc/c.key");
	assert_int_equal(c->norg_public_keys, 2);
	assert_string_equal(c->org_public_keys[0], "/etc/org.pub");
	assert_string_equal(c->org_public_keys[1], "/etc/org-next.pub");
	assert_string_equal(c->user, "a.smith");
	assert_string_equal(c->keystore, "/k/ks.age");
	assert_string_equal(c->cache_dir, "/c");
	assert_string_equal(c->runtime_dir, "/r");
	assert_int_equal(c->nmount_paths, 2);
	assert_string_equal(c->mount_paths[0], "/home/alice/Documents");
	assert_string_equal(c->mount_paths[1], "/data/shared");
	assert_int_equal(c->log_level, OVC_LOG_DEBUG);
	assert_string_equal(ovc_log_level_name(c->log_level), "debug");
	assert_string_equal(ovc_log_level_name((enum ovc_log_level)9), "?");
	ovc_config_free(c);

	/* several pins: spaces around ';' dropped, libcurl's form kept */
	c = mem_ok(HEAD "pin_sha256 = " PIN1 ";" PIN2 "\n", &o);
	assert_string_equal(c->pin_sha256, PIN1 ";" PIN2);
	ovc_config_free(c);
	c = mem_ok(HEAD "pin_sha256 = " PIN1 "; " PIN2 ";\n", &o);
	assert_string_equal(c->pin_sha256, PIN1 ";" PIN2);
	ovc_config_free(c);

	/* every level */
	for (int l = OVC_LOG_ERROR; l <= OVC_LOG_DEBUG; l++) {
		char t[256];

		snprintf(t, sizeof(t), HEAD "[log]\nlevel = %s\n",
			 ovc_log_level_name((enum ovc_log_level)l));
		c = mem_ok(t, &o);
		assert_int_equal(c->log_level, l);
		ovc_config_free(c);
	}
}

/* [server] timeout: whole seconds 1..600, default 60. */
static void test_timeout(void **state)
{
	ovc_config_opts o = user_opts();
	ovc_config *c;

	(void)state;
	c = mem_ok(HEAD, &o);
	assert_int_equal(c->timeout_s, OVC_CONFIG_DEFAULT_TIMEOUT_S);
	ovc_config_free(c);
	c = mem_ok(HEAD "timeout = 2\n", &o);
	assert_int_equal(c->timeout_s, 2);
	ovc_config_free(c);
	c = mem_ok(HEAD "timeout = 600\n", &o);
	assert_int_equal(c->timeout_s, 600);
	ovc_config_free(c);
	user_fails(HEAD "timeout = 0\n", "t.conf:4: bad timeout '0': whole seconds, 1 to 600", NULL);
	user_fails(HEAD "timeout = 601\n", "t.conf:4: bad timeout '601': whole seconds, 1 to 600", NULL);
	user_fails(HEAD "timeout = 5s\n", "t.conf:4: bad timeout '5s': whole seconds, 1 to 600", NULL);
	user_fails(HEAD "timeout = 99999\n", "t.conf:4: bad timeout '99999': whole seconds, 1 to 600", NULL);
	user_fails(HEAD "timeout = -1\n", "t.conf:4: bad timeout '-1': whole seconds, 1 to 600", NULL);
	user_fails(HEAD "timeout = 07\n", "t.conf:4: bad timeout '07': whole seconds, 1 to 600", NULL);
}

static void test_allow_other(void **state)
{
	ovc_config_opts o = user_opts();
	ovc_config_opts so = system_opts();
	ovc_config *c;

	(void)state;
	c = mem_ok(HEAD, &o);
	assert_int_equal(c->mount_allow_other, 0);
	ovc_config_free(c);
	c = mem_ok(HEAD "[mount]\nallow_other = yes\npath = /m\n", &o);
	assert_int_equal(c->mount_allow_other, 1);
	assert_int_equal(c->nmount_paths, 1);
	ovc_config_free(c);
	c = mem_ok(HEAD "[mount]\nallow_other = no\n", &o);
	assert_int_equal(c->mount_allow_other, 0);
	ovc_config_free(c);
	c = mem_ok(HEAD "[client]\nusers = alice\n[mount]\nallow_other = yes\n", &so);
	assert_int_equal(c->mount_allow_other, 1);
	ovc_config_free(c);
	user_fails(HEAD "[mount]\nallow_other = true\n",
		   "t.conf:5: bad allow_other 'true': yes or no", NULL);
	user_fails(HEAD "[mount]\nallow_other = yes\nallow_other = no\n",
		   "t.conf:6: duplicate key 'allow_other' in [mount] (first at line 5)", NULL);
	user_fails(HEAD "allow_other = yes\n",
		   "t.conf:4: unknown key 'allow_other' in [server]", NULL);
}

static void test_syntax_errors(void **state)
{
	(void)state;
	user_fails("policy_url = https://x/\n"                       /* 1 */
		   "[server\n"
		   "[server] x\n"
		   "[colour]\n"
		   "shade = red\n"                                    /* 5: skipped */
		   "[ server ]\n"
		   "just words\n"
		   "= value\n"
		   "colour = red\n"
		   "policy_url = https://policy.corp/p/\n"            /* 10 */
		   "policy_url = https://other/\n"
		   "ca_file =\n"
		   "org_public_key = /k\n",
		   "t.conf:1: 'policy_url' comes before any section ([server], [client], "
		   "[mount] or [log])",
		   "t.conf:2: section header without ']'",
		   "t.conf:3: text after the section header's ']'",
		   "t.conf:4: unknown section [colour] (sections are [server], [client], "
		   "[mount] and [log])",
		   "t.conf:7: expected 'key = value', a [section] or a comment",
		   "t.conf:8: no key name before '=' in [server]",
		   "t.conf:9: unknown key 'colour' in [server]",
		   "t.conf:11: duplicate key 'policy_url' in [server] (first at line 10)",
		   "t.conf:12: 'ca_file' has no value",
		   NULL);
}

/* The NUL byte and a long line need explicit lengths. */
static void test_nul_and_long(void **state)
{
	static const char nul[] = HEAD "ca\0_file = /x\n[Server]\n";
	char longl[512];
	ovc_config_opts o = user_opts();
	ovc_diag d = { 0 };
	ovc_config *c = NULL;
	int n;

	(void)state;
	assert_int_equal(ovc_config_load_mem(nul, sizeof(nul) - 1, "t.conf", &o, &c, &d),
			 -EINVAL);
	assert_null(c);
	assert_int_equal(d.n, 2);
	assert_string_equal(d.lines[0], "t.conf:4: the line holds a NUL byte");
	assert_string_equal(d.lines[1], "t.conf:5: unknown section [Server] (sections are "
			    "[server], [client], [mount] and [log])");
	ovc_diag_free(&d);

	/* 198 characters are fine, 199 are not; a trailing comment does not count */
	n = snprintf(longl, sizeof(longl), HEAD "ca_file = /%0187d\n", 0);
	assert_true(n > 0);
	c = mem_ok(longl, &o);
	assert_int_equal(strlen(c->ca_file), 188);
	ovc_config_free(c);
	snprintf(longl, sizeof(longl), HEAD "ca_file = /%0187d   ; %0100d\n", 0, 0);
	c = mem_ok(longl, &o);
	ovc_config_free(c);
	snprintf(longl, sizeof(longl), HEAD "ca_file = /%0188d\n", 0);
	user_fails(longl, "t.conf:4: line longer than 198 characters", NULL);
}

static void test_value_errors(void **state)
{
	(void)state;
	user_fails("[server]\n"
		   "policy_url = http://policy.corp/\n"               /* 2 */
		   "ca_file = etc/ca.pem\n"
		   "pin_sha256 = sha256//AAAA\n"
		   "client_cert = ~/c.pem\n"                          /* 5 */
		   "client_key = /k\n"
		   "org_public_key = /k1\n"
		   "org_public_key = /k1\n"
		   "org_public_key = /k2\n"
		   "org_public_key = /k3\n"                           /* 10 */
		   "[client]\n"
		   "user = -bob\n"
		   "keystore = ks.age\n"
		   "cache_dir = $HOME/c\n"
		   "runtime_dir = run\n"                              /* 15 */
		   "users = alice\n"
		   "[mount]\n"
		   "path = docs\n"
		   "path = /d\n"
		   "path = /d\n"                                      /* 20 */
		   "[log]\n"
		   "level = verbose\n",
		   "t.conf:2: bad policy_url 'http://policy.corp/': it must start with "
		   "https://HOST or file:/// and have no spaces",
		   "t.conf:3: 'ca_file' must be an absolute path (there is no ~ expansion), "
		   "not 'etc/ca.pem'",
		   "t.conf:4: bad pin_sha256 'sha256//AAAA': each pin is 'sha256//' and the "
		   "base64 of 32 bytes, several separated by ';'",
		   "t.conf:5: 'client_cert' must be an absolute path (there is no ~ expansion), "
		   "not '~/c.pem'",
		   "t.conf:8: 'org_public_key' gives '/k1' twice (first at line 7)",
		   "t.conf:10: at most 2 'org_public_key' lines (the current key and the next "
		   "one, during a rollover)",
		   "t.conf:12: bad user '-bob': 1-64 letters, digits, '.', '_' or '-', "
		   "starting with a letter or digit",
		   "t.conf:13: 'keystore' must be an absolute path (there is no ~ expansion), "
		   "not 'ks.age'",
		   "t.conf:14: 'cache_dir' must be an absolute path (there is no ~ expansion), "
		   "not '$HOME/c'",
		   "t.conf:15: 'runtime_dir' must be an absolute path (there is no ~ "
		   "expansion), not 'run'",
		   "t.conf:16: 'users' is for system mode (overcryptd --system); a user-mode "
		   "agent serves its own user",
		   "t.conf:18: 'path' must be an absolute path (there is no ~ expansion), "
		   "not 'docs'",
		   "t.conf:20: 'path' gives '/d' twice (first at line 19)",
		   "t.conf:22: bad level 'verbose': error, warning, info or debug",
		   "t.conf: [server] needs 'policy_url'",
		   "t.conf:6: 'client_key' without 'client_cert' (give both or neither)",
		   NULL);
}

static void test_url_and_pin_errors(void **state)
{
	(void)state;
	user_fails("[server]\npolicy_url = https://policy.corp/p\norg_public_key = /k\n",
		   "t.conf:2: policy_url 'https://policy.corp/p' must end in '/' (it names "
		   "the folder holding USER.json)",
		   "t.conf: [server] needs 'policy_url'", NULL);
	user_fails("[server]\npolicy_url = https:///p/\norg_public_key = /k\n",
		   "t.conf:2: bad policy_url 'https:///p/': it must start with https://HOST "
		   "or file:/// and have no spaces",
		   "t.conf: [server] needs 'policy_url'", NULL);
	user_fails("[server]\npolicy_url = file://host/p/\norg_public_key = /k\n",
		   "t.conf:2: bad policy_url 'file://host/p/': it must start with "
		   "https://HOST or file:/// and have no spaces",
		   "t.conf: [server] needs 'policy_url'", NULL);
	user_fails("[server]\npolicy_url = https://a b/\norg_public_key = /k\n",
		   "t.conf:2: bad policy_url 'https://a b/': it must start with https://HOST "
		   "or file:/// and have no spaces",
		   "t.conf: [server] needs 'policy_url'", NULL);
	user_fails(HEAD "pin_sha256 = " PIN1 ";sha256/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
		   "t.conf:4: bad pin_sha256 'sha256/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=':"
		   " each pin is 'sha256//' and the base64 of 32 bytes, several "
		   "separated by ';'", NULL);
	user_fails(HEAD "pin_sha256 =;;\n", "t.conf:4: 'pin_sha256' has no pin", NULL);
	/* base64 of 32 bytes with a wrong padding byte */
	user_fails(HEAD "pin_sha256 = sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8A\n",
		   "t.conf:4: bad pin_sha256 'sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8A':"
		   " each pin is 'sha256//' and the base64 of 32 bytes, several "
		   "separated by ';'", NULL);
}

static void test_required_and_pairs(void **state)
{
	ovc_config_opts o = system_opts();

	(void)state;
	user_fails("[client]\nuser = bob\n",
		   "t.conf: [server] needs 'policy_url'",
		   "t.conf: [server] needs 'org_public_key'", NULL);
	user_fails(HEAD "client_cert = /c.pem\n",
		   "t.conf:4: 'client_cert' without 'client_key' (give both or neither)", NULL);
	mem_fails(&o, HEAD "[client]\nuser = bob\nusers = ,\n",
		  "t.conf:5: 'user' is for user mode; in system mode list the users served "
		  "in 'users'",
		  "t.conf:6: 'users' lists nobody",
		  "t.conf: [client] needs 'users' in system mode (the users served)", NULL);
	mem_fails(&o, HEAD "[client]\nusers = alice, b@d, alice, @-x\n",
		  "t.conf:5: bad item 'b@d' in 'users': a user name or @group of 1-64 "
		  "letters, digits, '.', '_' or '-', starting with a letter or digit",
		  "t.conf:5: 'alice' is listed twice in 'users'",
		  "t.conf:5: bad item '@-x' in 'users': a user name or @group of 1-64 "
		  "letters, digits, '.', '_' or '-', starting with a letter or digit", NULL);
}

static void test_environment_errors(void **state)
{
	ovc_config_opts o = user_opts();

	(void)state;
	o.home = NULL;
	o.xdg_runtime_dir = "run";
	o.login = "Dom\\Bob";
	mem_fails(&o, HEAD,
		  "the login name 'Dom\\Bob' is not a user name of the policy (1-64 letters, "
		  "digits, '.', '_' or '-'): set [client] user",
		  "cannot place the keystore: HOME is not set; set it in [client]",
		  "cannot place the cache_dir: HOME is not set; set it in [client]",
		  "cannot place the runtime_dir: XDG_RUNTIME_DIR is not set; set it in [client]",
		  NULL);
	o.login = NULL;
	mem_fails(&o, HEAD "[client]\nkeystore = /k\ncache_dir = /c\nruntime_dir = /r\n",
		  "no login name to use as the user: set [client] user", NULL);
	ovc_config_free(mem_ok(HEAD "[client]\nuser = bob\nkeystore = /k\ncache_dir = /c\n"
			       "runtime_dir = /r\n", &o));
}

/* The system file, then the user's: later keys replace earlier ones,
 * repeatable keys as a whole list. */
static void test_override_order(void **state)
{
	ovc_config_opts o = user_opts();
	ovc_config *c = NULL;
	ovc_diag d = { 0 };
	char xdg[128];

	(void)state;
	o.system_file = put("etc/overcrypt.conf",
			    HEAD "ca_file = /etc/ca.pem\n[mount]\npath = /a\npath = /b\n"
			    "[log]\nlevel = error\n");
	snprintf(xdg, sizeof(xdg), "%s/xdg", tmpdir);
	o.xdg_config_home = xdg;
	put("xdg/overcrypt/overcrypt.conf",
	    "[server]\npolicy_url = file:///mnt/p/\n"
	    "[mount]\npath = /home/alice/x\n[client]\nuser = al\n");
	assert_int_equal(ovc_config_load(&o, &c, &d), 0);
	assert_int_equal(d.n, 0);
	assert_int_equal(c->nfiles, 2);
	assert_string_equal(c->files[0], o.system_file);
	assert_string_equal(c->files[1], path_of("xdg/overcrypt/overcrypt.conf"));
	assert_string_equal(c->policy_url, "file:///mnt/p/");
	assert_string_equal(c->ca_file, "/etc/ca.pem");
	assert_string_equal(c->org_public_keys[0], "/etc/k.pub");
	assert_int_equal(c->nmount_paths, 1);
	assert_string_equal(c->mount_paths[0], "/home/alice/x");
	assert_int_equal(c->log_level, OVC_LOG_ERROR);
	assert_string_equal(c->user, "al");
	ovc_config_free(c);

	/* without XDG_CONFIG_HOME the user's file is under HOME */
	o.xdg_config_home = NULL;
	o.home = path_of("home");
	put("home/.config/overcrypt/overcrypt.conf", "[log]\nlevel = warning\n");
	assert_int_equal(ovc_config_load(&o, &c, &d), 0);
	assert_int_equal(c->log_level, OVC_LOG_WARNING);
	assert_int_equal(c->nmount_paths, 2);
	ovc_config_free(c);

	/* system mode reads the system file only */
	o.mode = OVC_CONFIG_SYSTEM;
	put("etc/sys.conf", HEAD "[client]\nusers = @staff\n");
	o.system_file = path_of("etc/sys.conf");
	assert_int_equal(ovc_config_load(&o, &c, &d), 0);
	assert_int_equal(c->nfiles, 1);
	assert_int_equal(c->log_level, OVC_LOG_INFO);
	ovc_config_free(c);
	ovc_diag_free(&d);
}

/* Errors name the file they are in; a missing key names the last file. */
static void test_errors_in_two_files(void **state)
{
	ovc_config_opts o = user_opts();
	ovc_config *c = (ovc_config *)1;
	ovc_diag d = { 0 };
	char xdg[128], m1[400], m2[400], m3[400];

	(void)state;
	o.system_file = put("e/sys.conf", "[server]\nca_file = x\n");
	snprintf(xdg, sizeof(xdg), "%s/e/xdg", tmpdir);
	o.xdg_config_home = xdg;
	put("e/xdg/overcrypt/overcrypt.conf", "\n[log]\nlevel = loud\n");
	assert_int_equal(ovc_config_load(&o, &c, &d), -EINVAL);
	assert_null(c);
	snprintf(m1, sizeof(m1), "%s:2: 'ca_file' must be an absolute path (there is no ~ "
		 "expansion), not 'x'", o.system_file);
	snprintf(m2, sizeof(m2), "%s:3: bad level 'loud': error, warning, info or debug",
		 path_of("e/xdg/overcrypt/overcrypt.conf"));
	assert_int_equal(d.n, 4);
	assert_string_equal(d.lines[0], m1);
	assert_string_equal(d.lines[1], m2);
	snprintf(m3, sizeof(m3), "%s: [server] needs 'policy_url'",
		 path_of("e/xdg/overcrypt/overcrypt.conf"));
	assert_string_equal(d.lines[2], m3);
	ovc_diag_free(&d);
}

static void test_config_replaces(void **state)
{
	ovc_config_opts o = user_opts();
	ovc_config *c = (ovc_config *)1;
	ovc_diag d = { 0 };
	char xdg[128], m[400];

	(void)state;
	o.system_file = put("r/sys.conf", "[bad\n");
	snprintf(xdg, sizeof(xdg), "%s/r/xdg", tmpdir);
	o.xdg_config_home = xdg;
	put("r/xdg/overcrypt/overcrypt.conf", "[bad\n");
	o.config_file = put("r/mine.conf", HEAD "[mount]\npath = /m\n");
	assert_int_equal(ovc_config_load(&o, &c, &d), 0);
	assert_int_equal(d.n, 0);
	assert_int_equal(c->nfiles, 1);
	assert_string_equal(c->files[0], o.config_file);
	assert_string_equal(c->mount_paths[0], "/m");
	ovc_config_free(c);

	/* an explicit file must exist */
	o.config_file = path_of("r/none.conf");
	assert_int_equal(ovc_config_load(&o, &c, &d), -ENOENT);
	assert_null(c);
	snprintf(m, sizeof(m), "%s: cannot read: No such file or directory", o.config_file);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.lines[0], m);
	ovc_diag_free(&d);

	/* a folder is not a file */
	o.config_file = path_of("r");
	assert_true(ovc_config_load(&o, &c, &d) < 0);
	assert_null(c);
	assert_int_equal(d.n, 1);
	ovc_diag_free(&d);
}

static void test_missing_files(void **state)
{
	ovc_config_opts o = user_opts();
	ovc_config *c = (ovc_config *)1;
	ovc_diag d = { 0 };
	char xdg[128], m[400];

	(void)state;
	/* no system file: the user's alone is fine */
	o.system_file = path_of("m/none.conf");
	snprintf(xdg, sizeof(xdg), "%s/m/xdg", tmpdir);
	o.xdg_config_home = xdg;
	put("m/xdg/overcrypt/overcrypt.conf", HEAD);
	assert_int_equal(ovc_config_load(&o, &c, &d), 0);
	assert_int_equal(c->nfiles, 1);
	ovc_config_free(c);

	/* no file at all: the required keys are missing */
	o.xdg_config_home = path_of("m/nowhere");
	assert_int_equal(ovc_config_load(&o, &c, &d), -EINVAL);
	assert_null(c);
	assert_int_equal(d.n, 2);
	snprintf(m, sizeof(m), "%s: [server] needs 'policy_url' (no config file was found)",
		 o.system_file);
	assert_string_equal(d.lines[0], m);
	ovc_diag_free(&d);

	/* too large */
	{
		size_t n = OVC_CONFIG_MAX_BYTES + 1;
		char *big = malloc(n + 1);

		assert_non_null(big);
		memset(big, '#', n);
		big[n] = '\0';
		o.config_file = put("m/big.conf", big);
		free(big);
		assert_int_equal(ovc_config_load(&o, &c, &d), -EFBIG);
		snprintf(m, sizeof(m), "%s: larger than %u bytes", o.config_file,
			 OVC_CONFIG_MAX_BYTES);
		assert_int_equal(d.n, 1);
		assert_string_equal(d.lines[0], m);
		ovc_diag_free(&d);
	}
}

/* packaging/overcrypt.conf.example loads in user mode as it
 * is: it must stay in step with the code. */
static void test_example(void **state)
{
	ovc_config_opts o = user_opts();
	uint8_t *buf = NULL;
	size_t len = 0;
	ovc_config *c;

	(void)state;
	if (ovc_read_file("packaging/overcrypt.conf.example", 1 << 20, 0, &buf, &len)) {
		skip();
		return;
	}
	c = mem_ok((const char *)buf, &o);
	ovc_config_free(c);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_user),
		cmocka_unit_test(test_defaults_system),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_allow_other),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_nul_and_long),
		cmocka_unit_test(test_value_errors),
		cmocka_unit_test(test_url_and_pin_errors),
		cmocka_unit_test(test_required_and_pairs),
		cmocka_unit_test(test_environment_errors),
		cmocka_unit_test(test_override_order),
		cmocka_unit_test(test_errors_in_two_files),
		cmocka_unit_test(test_config_replaces),
		cmocka_unit_test(test_missing_files),
		cmocka_unit_test(test_example),
	};

	if (ovc_common_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
