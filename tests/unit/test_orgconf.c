/* Unit tests of policy/orgconf: loading org.conf, the checks of `check`,
 * memberships and the assets each user gets. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "policy/orgconf.h"

#define R1 "age1xvznynzr35x2v9nnz2f6rqpj3t05cvlp4f5nhunh77cp3phjm9rql3jqn4"
#define R2 "age17lpel0r8ddj5xpp07qgp5v8fn727davrskggfecp39pc77zxv4zq0t8upp"
#define R3 "age1ttpw3aq9xya4x2clgtz536tug98dqcvdwln7av0p3glw978tgfwsr4jvqp"
#define R4 "age162nms9jfdmc99hwdht26tzy5j27ez0lkqv8xm53x7th49rlntgyqzyltwl"

/* The head every small test file starts with: 5 lines. */
#define HEAD "[settings]\norg = corp\n[admin root]\nrecipient = " R1 "\n\n"

/* A realistic organisation: groups nested three deep, one with two
 * parents, shared/private/public assets, an smb path, %USERNAME%. */
static const char REAL[] =
	"# org.conf for corp\n"                                /* 1 */
	"\n"
	"[settings]\n"
	"org = corp\n"
	"refresh_interval = 5m\n"                              /* 5 */
	"cache_expiration = 3d\n"
	"policy_validity = 2w\n"
	"user_may_decrypt = yes\n"
	"persistent_encryption = false\n"
	"autolock_idle = 1h\n"                                 /* 10 */
	"plaintext_under_rule = strict\n"
	"\n"
	"[admin root]\n"
	"recipient = " R1 "\n"
	"\n"                                                   /* 15 */
	"; groups\n"
	"[group staff]\n"
	"description = everyone\n"
	"members = dave\n"
	"\n"                                                   /* 20 */
	"[group sales]\n"
	"parents = staff\n"
	"\n"
	"[group europe]\n"
	"parents = staff\n"                                    /* 25 */
	"\n"
	"[group sales-emea]\n"
	"parents = sales, europe\n"
	"members = alice,\n"
	"    bob   ; the new one\n"                            /* 30 */
	"\n"
	"[group interns]\n"
	"parents = sales-emea\n"
	"members = erin\n"
	"\n"                                                   /* 35 */
	"[user alice]\n"
	"email = alice@corp.local\n"
	"recipient = " R2 "\n"
	"\n"
	"[user bob]\n"                                         /* 40 */
	"recipient = " R3 "\n"
	"description = sales,\n"
	"  Europe\n"
	"\n"
	"[user dave]\n"                                        /* 45 */
	"recipient = " R4 "\n"
	"\n"
	"[user erin]\n"
	"recipient: " R2 "\n"
	"\n"                                                   /* 50 */
	"[asset marketing]\n"
	"type = shared\n"
	"path = smb://Files.Corp.Local/marketing/*.*\n"
	"groups = sales\n"
	"\n"                                                   /* 55 */
	"[asset drop]\n"
	"type = public\n"
	"path = smb://files.corp.local/MARKETING/\n"
	"users = alice\n"
	"\n"                                                   /* 60 */
	"[asset home]\n"
	"type = private\n"
	"path = /home/%USERNAME%/Private/\n"
	"groups = staff\n"
	"\n"                                                   /* 65 */
	"[asset contracts]\n"
	"type = shared\n"
	"path = /srv/legal/*.pdf\n"
	"groups = europe\n"
	"users = alice, dave\n"                                /* 70 */
	"\n"
	"[asset scans]\n"
	"type = public\n"
	"path = /srv/legal/*.tiff\n"
	"groups = interns\n";                                  /* 75 */

/* ---------------------------------------------------------------------------
 * Helpers.
 */

static ovc_org *load_ok(const char *text)
{
	ovc_diag d = { 0 };
	ovc_org *org = NULL;
	int rc = ovc_org_load_mem(text, strlen(text), "org.conf", &org, &d);

	for (size_t i = 0; i < d.n; i++)
		fprintf(stderr, "unexpected: %s\n", d.lines[i]);
	assert_int_equal(rc, 0);
	assert_int_equal(d.n, 0);
	assert_non_null(org);
	ovc_diag_free(&d);
	return org;
}

static void check_ok(const ovc_org *org)
{
	ovc_diag d = { 0 };
	int rc = ovc_org_check(org, NULL, 0, &d);

	for (size_t i = 0; i < d.n; i++)
		fprintf(stderr, "unexpected: %s\n", d.lines[i]);
	assert_int_equal(rc, 0);
	assert_int_equal(d.n, 0);
	ovc_diag_free(&d);
}

static int has(const ovc_diag *d, const char *want)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->lines[i], want) == 0)
			return 1;
	return 0;
}

static void assert_has(const ovc_diag *d, const char *want)
{
	if (!has(d, want)) {
		fprintf(stderr, "missing: %s\ngot %zu:\n", want, d->n);
		for (size_t i = 0; i < d->n; i++)
			fprintf(stderr, "  %s\n", d->lines[i]);
	}
	assert_true(has(d, want));
}

/* Loading `text` fails with exactly the messages given (NULL-ended). */
static void load_fails(const char *text, ...)
{
	ovc_diag d = { 0 };
	ovc_org *org = (ovc_org *)1;
	size_t n = 0;
	const char *m;
	va_list ap;

	assert_int_equal(ovc_org_load_mem(text, strlen(text), "org.conf", &org, &d), -EINVAL);
	assert_null(org);
	va_start(ap, text);
	while ((m = va_arg(ap, const char *))) {
		assert_has(&d, m);
		n++;
	}
	va_end(ap);
	if (d.n != n)
		for (size_t i = 0; i < d.n; i++)
			fprintf(stderr, "  got: %s\n", d.lines[i]);
	assert_int_equal(d.n, n);
	ovc_diag_free(&d);
}

/* Loading `text` works and checking it reports exactly the messages given
 * (NULL-ended), with the known assets `known`. */
static void check_fails_known(const char *text, const ovc_org_known_asset *known,
			      size_t nknown, ...)
{
	ovc_org *org = load_ok(text);
	ovc_diag d = { 0 };
	size_t n = 0;
	const char *m;
	va_list ap;

	assert_int_equal(ovc_org_check(org, known, nknown, &d), -EINVAL);
	va_start(ap, nknown);
	while ((m = va_arg(ap, const char *))) {
		assert_has(&d, m);
		n++;
	}
	va_end(ap);
	if (d.n != n)
		for (size_t i = 0; i < d.n; i++)
			fprintf(stderr, "  got: %s\n", d.lines[i]);
	assert_int_equal(d.n, n);
	ovc_diag_free(&d);
	ovc_org_free(org);
}

#define check_fails(text, ...) check_fails_known((text), NULL, 0, __VA_ARGS__)

static char *cat(const char *a, const char *b)
{
	char *s = NULL;

	assert_true(asprintf(&s, "%s%s", a, b) > 0);
	return s;
}

/* ---------------------------------------------------------------------------
 * A good organisation.
 */

static void test_realistic(void **state)
{
	ovc_org *org = load_ok(REAL);
	const ovc_org_settings *s = &org->settings;
	const ovc_org_group *g;
	const ovc_org_user *u;
	const ovc_org_asset *a;
	(void)state;

	check_ok(org);
	assert_string_equal(org->file, "org.conf");
	assert_string_equal(s->org, "corp");
	assert_int_equal(s->refresh_interval_s, 300);
	assert_int_equal(s->cache_expiration_s, 3 * 86400);
	assert_int_equal(s->policy_validity_s, 14 * 86400);
	assert_int_equal(s->autolock_idle_s, 3600);
	assert_int_equal(s->user_may_decrypt, 1);
	assert_int_equal(s->persistent_encryption, 0);
	assert_int_equal(s->plaintext_under_rule, OVC_PLAINTEXT_STRICT);
	assert_int_equal(org->ngroups, 5);
	assert_int_equal(org->nusers, 4);
	assert_int_equal(org->nassets, 5);
	assert_int_equal(org->nadmins, 1);
	assert_int_equal(org->admins[0].line, 13);
	assert_string_equal(org->admins[0].recipient, R1);

	g = ovc_org_find_group(org, "sales-emea");
	assert_non_null(g);
	assert_int_equal(g->line, 27);
	assert_int_equal(g->nparents, 2);
	assert_string_equal(g->parents[1], "europe");
	assert_int_equal(g->nmembers, 2);
	assert_string_equal(g->members[0], "alice");
	assert_string_equal(g->members[1], "bob");  /* continuation, comment cut */
	assert_int_equal(g->member_lines[0], 29);
	assert_int_equal(g->member_lines[1], 30);
	assert_string_equal(ovc_org_find_group(org, "staff")->description, "everyone");

	u = ovc_org_find_user(org, "bob");
	assert_non_null(u);
	assert_int_equal(u->line, 40);
	assert_int_equal(u->recipient_line, 41);
	assert_null(u->email);
	assert_string_equal(u->description, "sales, Europe");
	assert_string_equal(ovc_org_find_user(org, "alice")->email, "alice@corp.local");
	assert_string_equal(ovc_org_find_user(org, "erin")->recipient, R2);

	a = ovc_org_find_asset(org, "home");
	assert_non_null(a);
	assert_int_equal(a->type, OVC_RULE_PRIVATE);
	assert_string_equal(a->path, "/home/%USERNAME%/Private/");
	assert_int_equal(a->line, 61);
	assert_int_equal(a->type_line, 62);
	assert_int_equal(a->path_line, 63);
	assert_int_equal(ovc_org_find_asset(org, "drop")->type, OVC_RULE_PUBLIC);
	assert_int_equal(ovc_org_find_asset(org, "contracts")->user_lines[1], 70);

	assert_null(ovc_org_find_user(org, "staff"));
	assert_null(ovc_org_find_group(org, "alice"));
	assert_null(ovc_org_find_asset(org, "nope"));
	assert_null(ovc_org_find_user(org, NULL));
	ovc_org_free(org);
}

static void test_defaults(void **state)
{
	ovc_org *org = load_ok("[settings]\norg = corp\n");
	const ovc_org_settings *s = &org->settings;
	(void)state;

	assert_int_equal(s->refresh_interval_s, 900);
	assert_int_equal(s->cache_expiration_s, 604800);
	assert_int_equal(s->policy_validity_s, 1209600);
	assert_int_equal(s->autolock_idle_s, 0);
	assert_int_equal(s->user_may_decrypt, 0);
	assert_int_equal(s->persistent_encryption, 1);
	assert_int_equal(s->plaintext_under_rule, OVC_PLAINTEXT_CONVERT);
	assert_int_equal(org->ngroups + org->nusers + org->nassets + org->nadmins, 0);
	ovc_org_free(org);

	org = load_ok("[settings]\norg = corp\nplaintext_under_rule = refuse\n"
		      "user_may_decrypt = TRUE\npersistent_encryption = No\n");
	assert_int_equal(org->settings.plaintext_under_rule, OVC_PLAINTEXT_REFUSE);
	assert_int_equal(org->settings.user_may_decrypt, 1);
	assert_int_equal(org->settings.persistent_encryption, 0);
	ovc_org_free(org);
}

static void test_durations(void **state)
{
	static const struct { const char *s; uint64_t v; } good[] = {
		{ "0", 0 }, { "30s", 30 }, { "15m", 900 }, { "1h", 3600 }, { "7d", 604800 },
		{ "2w", 1209600 }, { "0m", 0 }, { "90m", 5400 }, { "007s", 7 },
		{ "36500d", 3153600000u }, { "3153600000s", 3153600000u } };
	static const char *const bad[] = {
		"", "m", "15", "15 m", " 15m", "15m ", "15M", "1.5h", "-1s", "+1s", "1y",
		"15mm", "1h30m", "36501d", "3153600001s", "99999999999999999999999s",
		"18446744073709551616s", "0x10s", "00" };
	uint64_t v;
	(void)state;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 12345;
		assert_int_equal(ovc_duration_parse(good[i].s, &v), 0);
		assert_int_equal(v, good[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (ovc_duration_parse(bad[i], &v) != -EINVAL)
			fail_msg("duration '%s' was accepted", bad[i]);
	assert_int_equal(ovc_duration_parse(NULL, &v), -EINVAL);
}

/* ---------------------------------------------------------------------------
 * Memberships and assets.
 */

static void test_membership(void **state)
{
	ovc_org *org = load_ok(REAL);
	(void)state;

	/* erin: interns -> sales-emea -> (sales, europe) -> staff */
	assert_true(ovc_org_user_in_group(org, "erin", "interns"));
	assert_true(ovc_org_user_in_group(org, "erin", "sales-emea"));
	assert_true(ovc_org_user_in_group(org, "erin", "sales"));
	assert_true(ovc_org_user_in_group(org, "erin", "europe"));
	assert_true(ovc_org_user_in_group(org, "erin", "staff"));
	/* bob: sales-emea and up, not the subgroup */
	assert_false(ovc_org_user_in_group(org, "bob", "interns"));
	assert_true(ovc_org_user_in_group(org, "bob", "europe"));
	assert_true(ovc_org_user_in_group(org, "bob", "staff"));
	/* dave: staff only; membership does not go down */
	assert_true(ovc_org_user_in_group(org, "dave", "staff"));
	assert_false(ovc_org_user_in_group(org, "dave", "sales"));
	assert_false(ovc_org_user_in_group(org, "dave", "europe"));
	/* unknown names */
	assert_false(ovc_org_user_in_group(org, "zed", "staff"));
	assert_false(ovc_org_user_in_group(org, "dave", "nope"));
	assert_false(ovc_org_user_in_group(org, "staff", "staff"));
	ovc_org_free(org);
}

static void assert_assets(const ovc_org *org, const char *user, const char *want)
{
	const ovc_org_asset **v = NULL;
	char got[256] = "";
	size_t n = 99;

	assert_int_equal(ovc_org_user_assets(org, user, &v, &n), 0);
	assert_non_null(v);
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(got, ",");
		strcat(got, v[i]->name);
	}
	free(v);
	if (strcmp(got, want))
		fail_msg("%s gets '%s', not '%s'", user, got, want);
}

static void test_user_assets(void **state)
{
	ovc_org *org = load_ok(REAL);
	const ovc_org_asset **v = (const ovc_org_asset **)1;
	size_t n = 5;
	(void)state;

	/* org.conf order; contracts once although alice has it directly and
	 * through europe; drop (public) only for alice, who is assigned */
	assert_assets(org, "alice", "marketing,drop,home,contracts");
	assert_assets(org, "bob", "marketing,home,contracts");
	assert_assets(org, "dave", "home,contracts");
	assert_assets(org, "erin", "marketing,home,contracts,scans");
	assert_int_equal(ovc_org_user_assets(org, "zed", &v, &n), -ENOENT);
	assert_null(v);
	assert_int_equal(n, 0);
	ovc_org_free(org);

	org = load_ok(HEAD "[user loner]\nrecipient = " R2 "\n"
		      "[asset a]\ntype = shared\npath = /srv/a/\ngroups = g\n");
	assert_assets(org, "loner", "");
	ovc_org_free(org);
}

/* A user who reaches one group along several paths, and groups in a cycle
 * (an error for check, but queries must still end). */
static void test_membership_diamond_cycle(void **state)
{
	ovc_org *org = load_ok(HEAD
		"[group top]\n[group l]\nparents = top\n[group r]\nparents = top\n"
		"[group bottom]\nparents = l, r, top\nmembers = u\n"
		"[group c1]\nparents = c2\nmembers = u\n[group c2]\nparents = c1\n"
		"[user u]\nrecipient = " R2 "\n"
		"[asset t]\ntype = shared\npath = /srv/t/\ngroups = top, l, r\n"
		"[asset c]\ntype = shared\npath = /srv/c/\ngroups = c2\nusers = u\n");
	(void)state;

	assert_true(ovc_org_user_in_group(org, "u", "top"));
	assert_true(ovc_org_user_in_group(org, "u", "c2"));
	assert_assets(org, "u", "t,c");
	ovc_org_free(org);
}

/* ---------------------------------------------------------------------------
 * Load errors, each with its line.
 */

static void test_err_sections(void **state)
{
	(void)state;
	load_fails(HEAD "# comment\n\n[colour blue]\nx = 1\n[group g]\n",
		   "org.conf:8: unknown section [colour blue] (sections are [settings], "
		   "[group NAME], [user NAME], [asset NAME] and [admin NAME])", NULL);
	load_fails(HEAD "[user alice]\nrecipient = " R2 "\n\n; again\n[user alice]\n"
		   "recipient = " R3 "\n",
		   "org.conf:10: duplicate section [user alice] (first at line 6)", NULL);
	load_fails(HEAD "[settings]\norg = x\n",
		   "org.conf:6: duplicate section [settings] (first at line 1)", NULL);
	load_fails(HEAD "[group]\nmembers = a\n[user a b]\n[asset ../x]\n[settings x]\n",
		   "org.conf:6: section [group] needs a name: [group NAME]",
		   "org.conf:8: bad name 'a b' in [user ...]: names are 1-64 letters, "
		   "digits, '.', '_' or '-', starting with a letter or digit",
		   "org.conf:9: bad name '../x' in [asset ...]: names are 1-64 letters, "
		   "digits, '.', '_' or '-', starting with a letter or digit",
		   "org.conf:10: [settings] takes no name", NULL);
	{
		char hdr[512];

		memset(hdr, 0, sizeof(hdr));
		memcpy(hdr, HEAD "[user ", strlen(HEAD "[user "));
		memset(hdr + strlen(hdr), 'a', 200);
		strcat(hdr, "]\n");
		load_fails(hdr, "org.conf:6: section header too long (names are at most 64 "
			   "characters)", NULL);
		hdr[strlen(HEAD "[user ") + 64] = ']';
		hdr[strlen(HEAD "[user ") + 65] = '\0';
		ovc_org_free(load_ok(hdr)); /* a name of 64 characters */
		hdr[strlen(HEAD "[user ") + 64] = 'a';
		hdr[strlen(HEAD "[user ") + 65] = ']';
		hdr[strlen(HEAD "[user ") + 66] = '\0';
		{
			ovc_diag d = { 0 };
			ovc_org *org = NULL;

			assert_int_equal(ovc_org_load_mem(hdr, strlen(hdr), "org.conf", &org, &d),
					 -EINVAL);
			assert_int_equal(d.n, 1);
			assert_true(strncmp(d.lines[0], "org.conf:6: bad name 'aaaa", 26) == 0);
			ovc_diag_free(&d);
		}
	}
	load_fails(HEAD "[group g\n[group h] x\n",
		   "org.conf:6: section header without ']'",
		   "org.conf:7: text after the section header's ']'", NULL);
}

static void test_err_keys(void **state)
{
	(void)state;
	load_fails(HEAD "[user alice]\ncolour = blue\nrecipient = " R2 "\n",
		   "org.conf:7: unknown key 'colour' in [user alice]", NULL);
	load_fails(HEAD "[user alice]\nemail = a@x\n\n# x\nemail = b@x\n",
		   "org.conf:10: duplicate key 'email' in [user alice] (first at line 7)", NULL);
	load_fails("org = x\n[settings]\norg = corp\n",
		   "org.conf:1: 'org' comes before any section (start with [settings])", NULL);
	load_fails(HEAD "[user a]\njust words\n= x\n",
		   "org.conf:7: expected 'key = value', a [section] or a comment",
		   "org.conf:8: no key name before '=' in [user a]", NULL);
	load_fails(HEAD "[user a]\nemail =\nrecipient = " R2 "\n",
		   "org.conf:7: 'email' in [user a] is empty", NULL);
	load_fails(HEAD "[user a]\nemail = a@b\n  recipient = " R2 "\n",
		   "org.conf:8: indented line after 'email' in [user a]: only lists and "
		   "description go on over several lines (remove the indentation)", NULL);
}

static void test_err_values(void **state)
{
	(void)state;
	load_fails("[settings]\norg = corp\nuser_may_decrypt = maybe\npersistent_encryption = 1\n",
		   "org.conf:3: 'user_may_decrypt' must be yes, no, true or false, not 'maybe'",
		   "org.conf:4: 'persistent_encryption' must be yes, no, true or false, not '1'",
		   NULL);
	load_fails("[settings]\norg = corp\n\nrefresh_interval = 15 minutes\n"
		   "cache_expiration = 0\nautolock_idle = 1y\n",
		   "org.conf:4: 'refresh_interval' must be a duration such as 30s, 15m, 1h, "
		   "7d or 2w (or 0), not '15 minutes'",
		   "org.conf:5: 'cache_expiration' may not be 0",
		   "org.conf:6: 'autolock_idle' must be a duration such as 30s, 15m, 1h, "
		   "7d or 2w (or 0), not '1y'", NULL);
	load_fails("[settings]\norg = corp\nplaintext_under_rule = encrypt\n",
		   "org.conf:3: 'plaintext_under_rule' must be convert, refuse or strict, "
		   "not 'encrypt'", NULL);
	load_fails(HEAD "[asset a]\ntype = secret\npath = /srv/a/\n",
		   "org.conf:7: 'type' must be shared, private or public, not 'secret'", NULL);
	load_fails("[settings]\norg = my org\n",
		   "org.conf:2: bad org name 'my org': names are 1-64 letters, digits, "
		   "'.', '_' or '-', starting with a letter or digit", NULL);
	load_fails(HEAD "[group g]\nmembers = alice, b@d, -x\n",
		   "org.conf:7: bad name 'b@d' in 'members' of [group g]: names are 1-64 "
		   "letters, digits, '.', '_' or '-', starting with a letter or digit",
		   "org.conf:7: bad name '-x' in 'members' of [group g]: names are 1-64 "
		   "letters, digits, '.', '_' or '-', starting with a letter or digit", NULL);
	load_fails(HEAD "[user a]\nemail = not-an-address\n",
		   "org.conf:7: bad e-mail address 'not-an-address' in [user a]", NULL);
}

static void test_err_recipient(void **state)
{
	ovc_diag d = { 0 };
	ovc_org *org = NULL;
	const char *t = HEAD "[user alice]\nrecipient = age1notarecipient\n"
			"[admin other]\nrecipient = " R2 "x\n";
	(void)state;

	assert_int_equal(ovc_org_load_mem(t, strlen(t), "org.conf", &org, &d), -EINVAL);
	assert_int_equal(d.n, 2);
	assert_true(strncmp(d.lines[0], "org.conf:7: bad recipient 'age1notarecipient' in "
			    "[user alice]: ", 62) == 0);
	assert_true(strncmp(d.lines[1], "org.conf:9: bad recipient '" R2 "x' in "
			    "[admin other]: ", 27) == 0);
	assert_non_null(strstr(d.lines[1], "[admin other]: "));
	ovc_diag_free(&d);
}

static void test_err_missing(void **state)
{
	(void)state;
	load_fails("[group g]\n",
		   "org.conf: no [settings] section (it needs at least 'org = NAME')", NULL);
	load_fails("# c\n[settings]\nrefresh_interval = 1h\n",
		   "org.conf:2: [settings] has no 'org'", NULL);
	load_fails(HEAD "[asset a]\ndescription = x\n[admin b]\n",
		   "org.conf:6: asset 'a' has no 'type'",
		   "org.conf:6: asset 'a' has no 'path'",
		   "org.conf:8: admin 'b' has no recipient", NULL);
	load_fails("", "org.conf: no [settings] section (it needs at least 'org = NAME')",
		   NULL);
}

/* Many problems in one file: all reported, each on its line, in order. */
static void test_err_many(void **state)
{
	const char *t =
		"# line 1\n"
		"\n"
		"[settings]\n"
		"org = corp\n"
		"refresh_interval = soon\n"            /* 5 */
		"\n"
		"; comment\n"
		"[user alice]\n"
		"colour = red\n"
		"recipient = nope\n"                   /* 10 */
		"\n"
		"[wibble]\n"
		"x = 1\n"
		"[asset a]\n"
		"type = pubic\n"                       /* 15 */
		"path = /srv/a/\n"
		"path = /srv/b/\n"
		"oops\n"
		"[user alice]\n";
	ovc_diag d = { 0 };
	ovc_org *org = NULL;
	(void)state;

	assert_int_equal(ovc_org_load_mem(t, strlen(t), "org.conf", &org, &d), -EINVAL);
	assert_int_equal(d.n, 8);
	assert_true(strstr(d.lines[0], "org.conf:5: 'refresh_interval' must be") == d.lines[0]);
	assert_string_equal(d.lines[1], "org.conf:9: unknown key 'colour' in [user alice]");
	assert_true(strstr(d.lines[2], "org.conf:10: bad recipient 'nope'") == d.lines[2]);
	assert_true(strstr(d.lines[3], "org.conf:12: unknown section [wibble]") == d.lines[3]);
	assert_string_equal(d.lines[4], "org.conf:15: 'type' must be shared, private or "
			    "public, not 'pubic'");
	assert_string_equal(d.lines[5], "org.conf:17: duplicate key 'path' in [asset a] "
			    "(first at line 16)");
	assert_string_equal(d.lines[6], "org.conf:18: expected 'key = value', a [section] "
			    "or a comment");
	assert_string_equal(d.lines[7], "org.conf:19: duplicate section [user alice] "
			    "(first at line 8)");
	ovc_diag_free(&d);
}

/* Line endings, a BOM, NUL bytes, long lines. */
static void test_syntax_edges(void **state)
{
	static const char crlf[] = "\xEF\xBB\xBF[settings]\r\norg = corp\r\n\r\n"
				   "[group g]\r\nmembers = a,\r\n b\r\nx = 1\r\n";
	static const char nul[] = HEAD "[group g]\ndescr\0iption = x\nmembers = a\n";
	ovc_diag d = { 0 };
	ovc_org *org = NULL;
	(void)state;

	load_fails(crlf, "org.conf:7: unknown key 'x' in [group g]", NULL);
	org = load_ok("\xEF\xBB\xBF[settings]\r\norg = corp\r\n[group g]\r\nmembers = a,\r\n b\r\n");
	assert_int_equal(org->groups[0].nmembers, 2);
	assert_string_equal(org->groups[0].members[1], "b");
	assert_int_equal(org->groups[0].member_lines[1], 5);
	ovc_org_free(org);

	assert_int_equal(ovc_org_load_mem(nul, sizeof(nul) - 1, "org.conf", &org, &d), -EINVAL);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.lines[0], "org.conf:7: the line holds a NUL byte");
	ovc_diag_free(&d);

	/* no newline at the end; key: value */
	org = load_ok("[settings]\norg: corp");
	assert_string_equal(org->settings.org, "corp");
	ovc_org_free(org);
}

static void test_long_lines(void **state)
{
	char *members = NULL, *text, *longpath, *line = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&members, &len);
	ovc_org *org;
	(void)state;

	/* 300 members on one line of about 3 kB, then more on continuations */
	assert_non_null(f);
	fputs(HEAD "[group big]\ndescription = ", f);
	for (int i = 0; i < 60; i++)
		fprintf(f, "word%02d, ", i);
	fputs("end\nmembers = ", f);
	for (int i = 0; i < 300; i++)
		fprintf(f, "%suser%03d", i ? ", " : "", i);
	fputs(" ; a comment, with, commas\n    more1, more2,\n\tmore3\n", f);
	assert_int_equal(fclose(f), 0);
	org = load_ok(members);
	assert_int_equal(org->groups[0].nmembers, 303);
	assert_string_equal(org->groups[0].members[0], "user000");
	assert_string_equal(org->groups[0].members[299], "user299");
	assert_string_equal(org->groups[0].members[300], "more1");
	assert_string_equal(org->groups[0].members[302], "more3");
	assert_int_equal(org->groups[0].member_lines[299], 8);
	assert_int_equal(org->groups[0].member_lines[302], 10);
	assert_int_equal(strncmp(org->groups[0].description, "word00, word01, ", 16), 0);
	assert_int_equal(strlen(org->groups[0].description), 60 * 8 + 3);
	ovc_org_free(org);
	free(members);

	/* a long value that is not a list cannot be split */
	longpath = calloc(1, 400);
	assert_non_null(longpath);
	memset(longpath, 'p', 300);
	assert_true(asprintf(&line, "[asset a]\ntype = shared\npath = /srv/%s/\n", longpath) > 0);
	text = cat(HEAD, line);
	load_fails(text, "org.conf:8: line longer than 198 characters (split a list over "
		   "indented continuation lines)", "org.conf:6: asset 'a' has no 'path'", NULL);
	free(text);
	free(line);
	free(longpath);
}

/* ---------------------------------------------------------------------------
 * Check errors, each with its line.
 */

static void test_check_unknown_names(void **state)
{
	(void)state;
	check_fails(HEAD "[group g]\nparents = nope\nmembers = zed,\n  h\n[group h]\n"
		    "[asset a]\ntype = shared\npath = /srv/a/\ngroups = g, ghost\nusers = casper\n",
		    "org.conf:7: group 'g' has unknown parent group 'nope'",
		    "org.conf:8: group 'g' has unknown member 'zed' (no [user zed])",
		    "org.conf:9: group 'g' has unknown member 'h': members are users; to nest "
		    "a group write 'parents = g' in [group h]",
		    "org.conf:14: asset 'a' names unknown group 'ghost'",
		    "org.conf:15: asset 'a' names unknown user 'casper'", NULL);
}

static void test_check_cycles(void **state)
{
	(void)state;
	check_fails(HEAD "[group a]\nparents = c\n[group b]\nparents = a\n[group c]\n"
		    "parents = b\n[group self]\nparents = self\n[group ok]\nparents = a\n",
		    "org.conf:6: cycle of parents: 'a' -> 'c' -> 'b' -> 'a'",
		    "org.conf:12: cycle of parents: 'self' -> 'self'", NULL);
	/* a diamond is no cycle */
	{
		ovc_org *org = load_ok(HEAD "[group t]\n[group l]\nparents = t\n[group r]\n"
				       "parents = t\n[group b]\nparents = l, r\n");
		check_ok(org);
		ovc_org_free(org);
	}
}

static void test_check_paths(void **state)
{
	(void)state;
	check_fails(HEAD
		    "[asset rel]\ntype = shared\npath = srv/x/\n"                  /* 6-8 */
		    "[asset noslash]\ntype = shared\npath = /srv/mkt/*.*\n"        /* 9-11 */
		    "[asset smb1]\ntype = shared\npath = smb://host/\n"            /* 12-14 */
		    "[asset smb2]\ntype = shared\npath = smb://host:445/share/\n"  /* 15-17 */
		    "[asset etc]\ntype = shared\npath = /etc/app/\n"               /* 18-20 */
		    "[asset root]\ntype = shared\npath = /*.*\n"                   /* 21-23 */
		    "[asset usr]\ntype = private\npath = /usr/\n",                 /* 24-26 */
		    "org.conf:8: asset 'rel': path 'srv/x/': the rule path 'srv/x/' is not absolute",
		    "org.conf:14: asset 'smb1': path 'smb://host/': the smb:// URL has no share "
		    "(write smb://host/share/)",
		    "org.conf:17: asset 'smb2': path 'smb://host:445/share/': the smb:// URL may "
		    "not name a port",
		    "org.conf:20: asset 'etc': path '/etc/app/' is inside the system folder /etc",
		    "org.conf:23: asset 'root': path '/*.*' is the system folder /",
		    "org.conf:26: asset 'usr': path '/usr/' is the system folder /usr", NULL);

	/* a folder without its '/': rules.c or we say so, on the path's line */
	{
		ovc_org *org = load_ok(HEAD "[asset noslash]\ntype = shared\n\npath = /srv/mkt\n");
		ovc_diag d = { 0 };

		assert_int_equal(ovc_org_check(org, NULL, 0, &d), -EINVAL);
		assert_int_equal(d.n, 1);
		assert_true(strncmp(d.lines[0], "org.conf:9: asset 'noslash': path '/srv/mkt'",
				    44) == 0);
		assert_non_null(strstr(d.lines[0], "'/'"));
		ovc_diag_free(&d);
		ovc_org_free(org);
	}
}

static void test_check_folders(void **state)
{
	ovc_org *org;
	(void)state;

	/* two encryption assets on one folder, whatever the patterns; smb
	 * folders compare case-insensitively */
	check_fails(HEAD
		    "[asset a]\ntype = shared\npath = /srv/x/*.docx\n"                 /* 6-8 */
		    "[asset b]\ntype = private\npath = /srv/x/*.xlsx\n"                /* 9-11 */
		    "[asset c]\ntype = shared\npath = smb://h/S/D/\n"                  /* 12-14 */
		    "[asset d]\ntype = shared\npath = smb://H/s/d/*.*\n",              /* 15-17 */
		    "org.conf:11: assets 'a' (line 8) and 'b' are both encryption assets on "
		    "the folder /srv/x: a folder takes one",
		    "org.conf:17: assets 'c' (line 14) and 'd' are both encryption assets on "
		    "the folder smb://h/s/d: a folder takes one", NULL);
	/* two specific patterns that can match one name, public beside shared */
	check_fails(HEAD
		    "[asset a]\ntype = public\npath = /srv/x/*.pdf\n"
		    "[asset b]\ntype = shared\npath = /srv/x/*.PDF\n",
		    "org.conf:11: assets 'a' (line 8) and 'b' on the folder /srv/x have "
		    "patterns *.pdf and *.PDF that can match one name", NULL);
	/* two public assets that can match one name (decided: refused) */
	check_fails(HEAD
		    "[asset a]\ntype = public\npath = /srv/x/\n"
		    "[asset b]\ntype = public\npath = /srv/x/*.txt\n",
		    "org.conf:11: assets 'a' (line 8) and 'b' on the folder /srv/x have "
		    "patterns *.* and *.txt that can match one name", NULL);
	/* allowed: one public beside one encryption asset (also *.* with *.*,
	 * and *.* with a pattern); public assets with disjoint patterns; the
	 * same folder written differently for local paths is another folder
	 * only when it is one */
	org = load_ok(HEAD
		      "[asset a]\ntype = shared\npath = /srv/x/\n"
		      "[asset b]\ntype = public\npath = /srv/x/*.*\n"
		      "[asset c]\ntype = public\npath = /srv/y/*.pdf\n"
		      "[asset d]\ntype = public\npath = /srv/y/*.txt\n"
		      "[asset e]\ntype = private\npath = /srv/y/\n"
		      "[asset f]\ntype = shared\npath = /srv/x/sub/\n"
		      "[asset g]\ntype = shared\npath = /srv/X/\n");
	check_ok(org);
	ovc_org_free(org);
}

static void test_check_known_type(void **state)
{
	static const ovc_org_known_asset known[] = {
		{ "a", OVC_RULE_SHARED }, { "b", OVC_RULE_PUBLIC }, { "gone", OVC_RULE_SHARED } };
	(void)state;

	check_fails_known(HEAD
			  "[asset a]\n\ntype = public\npath = /srv/a/\n"
			  "[asset b]\ntype = public\npath = /srv/b/\n",
			  known, 3,
			  "org.conf:8: asset 'a' is public but was created shared: an asset's "
			  "type is fixed (delete it and create a new asset instead)", NULL);
}

static void test_check_users_admins(void **state)
{
	char *text;
	size_t lines = 0;
	(void)state;

	/* carol's section on line 31, after comments and blank lines */
	text = cat(HEAD, "# users\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n"
		   "[user carol]\nemail = carol@corp.local\n[user dan]\n");
	for (const char *p = text; (p = strchr(p, '\n')); p++)
		if (++lines == 30)
			assert_string_equal(p + 1, "[user carol]\nemail = carol@corp.local\n[user dan]\n");
	check_fails(text, "org.conf:31: user 'carol' has no recipient",
		    "org.conf:33: user 'dan' has no recipient", NULL);
	free(text);
	check_fails("[settings]\norg = corp\n",
		    "org.conf: no [admin] section: add [admin NAME] with the recipient of an "
		    "administrator", NULL);
}

/* Check errors of every kind in one file: all reported. */
static void test_check_many(void **state)
{
	(void)state;
	check_fails("[settings]\norg = corp\n"
		    "[group a]\nparents = a\nmembers = nobody\n"
		    "[user u]\n"
		    "[asset x]\ntype = shared\npath = /proc/x/\n",
		    "org.conf:3: cycle of parents: 'a' -> 'a'",
		    "org.conf:5: group 'a' has unknown member 'nobody' (no [user nobody])",
		    "org.conf:6: user 'u' has no recipient",
		    "org.conf:9: asset 'x': path '/proc/x/' is inside the system folder /proc",
		    "org.conf: no [admin] section: add [admin NAME] with the recipient of an "
		    "administrator", NULL);
}

/* ---------------------------------------------------------------------------
 * The example org.conf that `init` copies.
 */

static char *example_text(void)
{
	const char *paths[] = { "packaging/org.conf.example", NULL };
	char *alt = NULL, *slash;
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	rc = ovc_read_file(paths[0], 1 << 20, 0, &buf, &len);
	if (rc) {
		/* built from the project root: __FILE__ is tests/unit/... */
		alt = strdup(__FILE__);
		assert_non_null(alt);
		slash = strstr(alt, "tests/unit/");
		assert_non_null(slash);
		strcpy(slash, "packaging/org.conf.example");
		rc = ovc_read_file(alt, 1 << 20, 0, &buf, &len);
		free(alt);
	}
	assert_int_equal(rc, 0);
	return (char *)buf;
}

static void test_example(void **state)
{
	char *ex = example_text(), *text, *un, *w;
	ovc_org *org;
	(void)state;

	/* as `init` writes it: settings and admin first, then the template */
	text = cat("# org.conf\n\n[settings]\norg = corp\n\n[admin root]\nrecipient = " R1
		   "\n\n", ex);
	org = load_ok(text);
	check_ok(org);
	assert_int_equal(org->nusers + org->ngroups + org->nassets, 0);
	ovc_org_free(org);
	free(text);

	/* every example uncommented ('#' then a letter or '[') is good too */
	un = strdup(ex);
	assert_non_null(un);
	w = un;
	for (const char *p = ex; *p;) {
		int example = p[0] == '#' && (p[1] == '[' || (p[1] >= 'a' && p[1] <= 'z'));
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);

		if (example) {
			memcpy(w, p + 1, n - 1);
			w += n - 1;
		} else {
			memcpy(w, p, n);
			w += n;
		}
		p += n;
	}
	*w = '\0';
	org = load_ok(un);
	check_ok(org);
	assert_int_equal(org->nusers, 3);
	assert_int_equal(org->ngroups, 4);
	assert_int_equal(org->nassets, 4);
	assert_int_equal(org->nadmins, 1);
	/* every setting appears, with its default value */
	assert_int_equal(org->settings.refresh_interval_s, 900);
	assert_int_equal(org->settings.cache_expiration_s, 604800);
	assert_int_equal(org->settings.policy_validity_s, 1209600);
	assert_int_equal(org->settings.persistent_encryption, 1);
	for (const char *const *k = (const char *const[]){ "org =", "refresh_interval =",
		"cache_expiration =", "policy_validity =", "user_may_decrypt =",
		"persistent_encryption =", "autolock_idle =", "plaintext_under_rule =",
		"parents =", "members =", "description =", "email =", "recipient =",
		"type =", "path =", "groups =", "users =", NULL }; *k; k++)
		if (!strstr(un, *k))
			fail_msg("the example lacks '%s'", *k);
	assert_assets(org, "bob", "marketing,home,contracts");
	assert_assets(org, "alice", "marketing,marketing-drop,home");
	ovc_org_free(org);
	free(un);
	free(ex);
}

static void test_load_file(void **state)
{
	ovc_diag d = { 0 };
	ovc_org *org = (ovc_org *)1;
	char path[] = "/tmp/test_orgconf.XXXXXX";
	int fd = mkstemp(path);
	(void)state;

	assert_true(fd >= 0);
	assert_int_equal(ovc_pwrite_full(fd, REAL, strlen(REAL), 0), 0);
	close(fd);
	assert_int_equal(ovc_org_load(path, &org, &d), 0);
	assert_int_equal(d.n, 0);
	assert_string_equal(org->file, path);
	ovc_org_free(org);
	unlink(path);
	assert_int_equal(ovc_org_load(path, &org, &d), -ENOENT);
	assert_null(org);
	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.lines[0], ": cannot read: "));
	ovc_diag_free(&d);
	ovc_org_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_realistic),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_membership),
		cmocka_unit_test(test_user_assets),
		cmocka_unit_test(test_membership_diamond_cycle),
		cmocka_unit_test(test_err_sections),
		cmocka_unit_test(test_err_keys),
		cmocka_unit_test(test_err_values),
		cmocka_unit_test(test_err_recipient),
		cmocka_unit_test(test_err_missing),
		cmocka_unit_test(test_err_many),
		cmocka_unit_test(test_syntax_edges),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_check_unknown_names),
		cmocka_unit_test(test_check_cycles),
		cmocka_unit_test(test_check_paths),
		cmocka_unit_test(test_check_folders),
		cmocka_unit_test(test_check_known_type),
		cmocka_unit_test(test_check_users_admins),
		cmocka_unit_test(test_check_many),
		cmocka_unit_test(test_example),
		cmocka_unit_test(test_load_file),
	};

	if (ovc_common_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
