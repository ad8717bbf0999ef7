/* Unit tests of policy/rules: rule types and paths, normalisation, system
 * folders, patterns, the mountinfo parser and the matcher (precedence,
 * inheritance, %USERNAME%, SMB mounts, encrypted folders, explanations). */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/common.h"
#include "crypto/keys.h"
#include "policy/rules.h"

/* ---------------------------------------------------------------------------
 * Helpers.
 */

/* A rule from "type:asset:path"; the key id's first byte is the index. */
static void rule_set(ovc_rule *r, const char *type, const char *asset, const char *path,
		     uint8_t idx)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(ovc_rule_type_parse(type, &r->type), 0);
	r->asset = asset;
	r->path = path;
	r->has_key = r->type != OVC_RULE_PUBLIC;
	if (r->has_key) {
		r->key_id[0] = idx;
		r->key_id[15] = 0xee;
	}
}

struct spec {
	const char *type, *asset, *path;
};

static ovc_ruleset *build_user(const struct spec *s, size_t n, const char *user,
			       const ovc_smb_mount *mounts, size_t nm)
{
	ovc_rule *r = calloc(n ? n : 1, sizeof(*r));
	ovc_ruleset *rs = NULL;
	ovc_err e = { 0 };

	assert_non_null(r);
	for (size_t i = 0; i < n; i++)
		rule_set(&r[i], s[i].type, s[i].asset, s[i].path, (uint8_t)i);
	if (ovc_ruleset_build(r, n, user, mounts, nm, &rs, &e) != 0)
		fail_msg("build: %s", e.msg);
	free(r); /* the ruleset copies the rules */
	return rs;
}

static ovc_ruleset *build(const struct spec *s, size_t n)
{
	return build_user(s, n, "alice", NULL, 0);
}

/* The asset of the rule governing `path` ("-" when none). */
static const char *who(const ovc_ruleset *rs, const char *path)
{
	ovc_match m;

	assert_int_equal(ovc_ruleset_match(rs, path, &m, NULL, 0), 0);
	return m.rule ? m.rule->asset : "-";
}

/* The asset of the path's folder rule ("-" when none). */
static const char *folder_who(const ovc_ruleset *rs, const char *path)
{
	ovc_match m;

	assert_int_equal(ovc_ruleset_match(rs, path, &m, NULL, 0), 0);
	return m.folder_rule ? m.folder_rule->asset : "-";
}

/* The asset a new file at `path` is encrypted with ("-": plaintext). */
static const char *create_who(const ovc_ruleset *rs, const char *path)
{
	ovc_match m;

	assert_int_equal(ovc_ruleset_match(rs, path, &m, NULL, 0), 0);
	return m.create_rule ? m.create_rule->asset : "-";
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------------------
 * Types, paths, normalisation, system folders, patterns.
 */

static void test_type(void **state)
{
	enum ovc_rule_type t;

	(void)state;
	assert_int_equal(ovc_rule_type_parse("shared", &t), 0);
	assert_int_equal(t, OVC_RULE_SHARED);
	assert_int_equal(ovc_rule_type_parse("private", &t), 0);
	assert_int_equal(t, OVC_RULE_PRIVATE);
	assert_int_equal(ovc_rule_type_parse("public", &t), 0);
	assert_int_equal(t, OVC_RULE_PUBLIC);
	assert_int_equal(ovc_rule_type_parse("Public", &t), -EINVAL);
	assert_int_equal(ovc_rule_type_parse("", &t), -EINVAL);
	assert_string_equal(ovc_rule_type_name(OVC_RULE_SHARED), "shared");
	assert_string_equal(ovc_rule_type_name(OVC_RULE_PRIVATE), "private");
	assert_string_equal(ovc_rule_type_name(OVC_RULE_PUBLIC), "public");
}

static void test_path_parse_ok(void **state)
{
	ovc_rule_path p;
	ovc_err e = { 0 };

	(void)state;
	assert_int_equal(ovc_rule_path_parse("/srv/mkt/", &p, &e), 0);
	assert_false(p.smb);
	assert_string_equal(p.folder, "/srv/mkt");
	assert_string_equal(p.pattern, "*.*");
	assert_true(p.any);
	assert_false(p.has_username);

	assert_int_equal(ovc_rule_path_parse("/srv/mkt/*.docx", &p, &e), 0);
	assert_string_equal(p.folder, "/srv/mkt");
	assert_string_equal(p.pattern, "*.docx");
	assert_false(p.any);

	assert_int_equal(ovc_rule_path_parse("/srv/*.*", &p, &e), 0);
	assert_string_equal(p.folder, "/srv");
	assert_true(p.any);
	assert_int_equal(ovc_rule_path_parse("/srv/*", &p, &e), 0);
	assert_string_equal(p.pattern, "*.*");
	assert_true(p.any);
	assert_int_equal(ovc_rule_path_parse("/", &p, &e), 0);
	assert_string_equal(p.folder, "/");
	assert_int_equal(ovc_rule_path_parse("/*.pdf", &p, &e), 0);
	assert_string_equal(p.folder, "/");
	assert_string_equal(p.pattern, "*.pdf");

	assert_int_equal(ovc_rule_path_parse("/home/%USERNAME%/Private/", &p, &e), 0);
	assert_true(p.has_username);
	assert_string_equal(p.folder, "/home/%USERNAME%/Private");

	assert_int_equal(ovc_rule_path_parse("smb://Files.Corp.Local/Marketing/*.*", &p, &e), 0);
	assert_true(p.smb);
	assert_string_equal(p.host, "files.corp.local");
	assert_string_equal(p.share, "marketing");
	assert_string_equal(p.folder, "");
	assert_true(p.any);

	assert_int_equal(ovc_rule_path_parse("smb://bob@files/mkt/Public/Drop/*.PDF", &p, &e), 0);
	assert_string_equal(p.host, "files");
	assert_string_equal(p.share, "mkt");
	assert_string_equal(p.folder, "public/drop");
	assert_string_equal(p.pattern, "*.PDF");

	assert_int_equal(ovc_rule_path_parse("smb://files/home/%USERNAME%/Docs/", &p, &e), 0);
	assert_true(p.has_username);
	assert_string_equal(p.folder, "%USERNAME%/docs");
	assert_int_equal(ovc_rule_path_parse("smb://files/%USERNAME%/", &p, &e), 0);
	assert_true(p.has_username);
	assert_string_equal(p.share, "%USERNAME%");
}

static void test_path_parse_errors(void **state)
{
	static const char *const bad[] = {
		"",                       /* empty */
		"srv/mkt/",               /* not absolute */
		"srv/*.docx",
		"*.docx",
		"/srv/mkt",               /* no trailing '/': "mkt" is no pattern */
		"/srv/mkt*.docx",         /* '*' not first */
		"/srv/mkt/*.do*cx",       /* two '*' */
		"/srv/mkt/**",
		"/srv/mkt/x*",
		"/srv/mkt/*/",            /* '*' in a folder */
		"/home/*/Private/",
		"/srv/./mkt/",
		"/srv/../mkt/",
		"/srv/mkt/../",
		"/srv//mkt/",
		"//srv/mkt/",
		"/srv//",
		"/srv/mkt//*.docx",
		"smb://host/share//",
		"/srv/mkt/*..",
		"/srv/m\tkt/",
		"/srv/m\x7fkt/",
		"http://host/share/",
		"smb://",
		"smb:///share/",
		"smb://host",
		"smb://host/",
		"smb://host/*.*",
		"smb://host/share",       /* no trailing '/' */
		"smb://host:445/share/",
		"smb://user:pw@host/share/",
		"smb://@host/share/",
		"smb://user@/share/",
		"smb://host//x/",
		"smb://host/share/../x/",
		"smb://host/share/./x/",
		"smb://host/share//x/",
		"smb://ho st/share/",
		"smb://ho%st/share/",
	};
	ovc_rule_path p;

	(void)state;
	for (size_t i = 0; i < N(bad); i++) {
		ovc_err e = { 0 };

		if (ovc_rule_path_parse(bad[i], &p, &e) != -EINVAL)
			fail_msg("'%s' parsed", bad[i]);
		assert_int_equal(e.code, -EINVAL);
		assert_true(e.msg[0] != '\0');
	}
	{
		ovc_err e = { 0 };

		assert_int_equal(ovc_rule_path_parse("srv/", &p, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "not absolute"));
		assert_int_equal(ovc_rule_path_parse("smb://h:1/s/", &p, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "port"));
		assert_int_equal(ovc_rule_path_parse("smb://h/", &p, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "share"));
		assert_int_equal(ovc_rule_path_parse("smb:///s/", &p, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "host"));
	}
	{
		char *big = malloc(5000);

		assert_non_null(big);
		memset(big, 'a', 4999);
		big[0] = '/';
		big[4998] = '/';
		big[4999] = '\0';
		assert_int_equal(ovc_rule_path_parse(big, &p, NULL), -EINVAL);
		free(big);
	}
}

static void norm_is(const char *in, const char *want)
{
	char out[256];

	assert_int_equal(ovc_path_normalise(in, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_normalise(void **state)
{
	char small[6];

	(void)state;
	norm_is("/", "/");
	norm_is("//", "/");
	norm_is("/srv/mkt/", "/srv/mkt");
	norm_is("//srv///mkt/", "/srv/mkt");
	norm_is("/srv/mkt/./a", "/srv/mkt/a");
	norm_is("/srv/mkt/../other", "/srv/other");
	norm_is("/../../srv/mkt/x", "/srv/mkt/x");
	norm_is("/..", "/");
	norm_is("/a/b/../../..", "/");
	norm_is("/a/../../b/", "/b");
	norm_is("/a/.../b", "/a/.../b");
	norm_is("/a/..b/.c", "/a/..b/.c");
	assert_int_equal(ovc_path_normalise("srv/mkt", small, sizeof(small)), -EINVAL);
	assert_int_equal(ovc_path_normalise("", small, sizeof(small)), -EINVAL);
	assert_int_equal(ovc_path_normalise("/abcdef", small, sizeof(small)), -ENAMETOOLONG);
	assert_int_equal(ovc_path_normalise("/abcd", small, sizeof(small)), 0);
	assert_string_equal(small, "/abcd");
	assert_int_equal(ovc_path_normalise("/ab/cd", small, sizeof(small)), -ENAMETOOLONG);
	assert_int_equal(ovc_path_normalise("/ab/../cd/", small, sizeof(small)), 0);
	assert_string_equal(small, "/cd");
}

static void test_system_folders(void **state)
{
	(void)state;
	assert_string_equal(ovc_rule_system_folder("/"), "/");
	assert_string_equal(ovc_rule_system_folder("/etc"), "/etc");
	assert_string_equal(ovc_rule_system_folder("/etc/x"), "/etc");
	assert_string_equal(ovc_rule_system_folder("/etc/"), "/etc");
	assert_string_equal(ovc_rule_system_folder("/usr"), "/usr");
	assert_string_equal(ovc_rule_system_folder("/usr/local/share"), "/usr");
	assert_string_equal(ovc_rule_system_folder("/proc"), "/proc");
	assert_string_equal(ovc_rule_system_folder("/sys"), "/sys");
	assert_string_equal(ovc_rule_system_folder("/dev"), "/dev");
	assert_string_equal(ovc_rule_system_folder("/dev/shm"), "/dev");
	assert_string_equal(ovc_rule_system_folder("/run"), "/run");
	assert_string_equal(ovc_rule_system_folder("/boot"), "/boot");
	assert_string_equal(ovc_rule_system_folder("/var/lib/overcrypt"), "/var/lib/overcrypt");
	assert_string_equal(ovc_rule_system_folder("/var/lib/overcrypt/x/y"),
			    "/var/lib/overcrypt");
	assert_string_equal(ovc_rule_system_folder("//etc//x"), "/etc");
	assert_null(ovc_rule_system_folder("/etcetera"));
	assert_null(ovc_rule_system_folder("/usrdata"));
	assert_null(ovc_rule_system_folder("/var"));
	assert_null(ovc_rule_system_folder("/var/lib"));
	assert_null(ovc_rule_system_folder("/var/lib/overcrypt2"));
	assert_null(ovc_rule_system_folder("/srv/etc"));
	assert_null(ovc_rule_system_folder("/home/alice"));
	assert_null(ovc_rule_system_folder("relative"));
}

static void test_patterns_overlap(void **state)
{
	(void)state;
	assert_true(ovc_rule_patterns_overlap("*.*", "*.docx"));
	assert_true(ovc_rule_patterns_overlap("*.docx", "*.*"));
	assert_true(ovc_rule_patterns_overlap("*.*", "*.*"));
	assert_true(ovc_rule_patterns_overlap("*.docx", "*.docx"));
	assert_true(ovc_rule_patterns_overlap("*.docx", "*x"));
	assert_true(ovc_rule_patterns_overlap("*.tar.gz", "*.gz"));
	assert_true(ovc_rule_patterns_overlap("*.gz", "*.tar.gz"));
	assert_true(ovc_rule_patterns_overlap("*.DOCX", "*.docx"));
	assert_false(ovc_rule_patterns_overlap("*.docx", "*.xlsx"));
	assert_false(ovc_rule_patterns_overlap("*.doc", "*.docx"));
	assert_false(ovc_rule_patterns_overlap("*.gz", "*.tgz.z"));
}

/* ---------------------------------------------------------------------------
 * The matcher, local rules.
 */

static void test_precedence(void **state)
{
	static const struct spec s[] = {
		{ "shared", "top", "/srv/" },
		{ "shared", "mkt", "/srv/mkt/" },
		{ "shared", "docs", "/srv/mkt/*.docx" },
		{ "public", "drop", "/srv/mkt/drop/" },
		{ "shared", "dropenc", "/srv/mkt/drop/" },
		{ "private", "pdf", "/srv/mkt/deep/er/*.pdf" },
		{ "public", "pubpdf", "/srv/mkt/pp/*.pdf" },
		{ "shared", "ppdocs", "/srv/mkt/pp/*.pdf" },
	};
	ovc_ruleset *rs = build(s, N(s));

	(void)state;
	/* the longest folder */
	assert_string_equal(who(rs, "/srv/x.txt"), "top");
	assert_string_equal(who(rs, "/srv/mkt/x.txt"), "mkt");
	/* a specific pattern beats *.* on the same folder */
	assert_string_equal(who(rs, "/srv/mkt/plan.docx"), "docs");
	assert_string_equal(who(rs, "/srv/mkt/sub/plan.docx"), "docs");
	/* the longer folder beats a specific pattern on a shorter one */
	assert_string_equal(who(rs, "/srv/mkt/drop/plan.docx"), "drop");
	/* a full tie: public beats shared, whatever the order */
	assert_string_equal(who(rs, "/srv/mkt/drop/x"), "drop");
	assert_string_equal(who(rs, "/srv/mkt/pp/a.pdf"), "pubpdf");
	/* a pattern that does not match falls back to a shorter folder's rule */
	assert_string_equal(who(rs, "/srv/mkt/deep/er/x.txt"), "mkt");
	assert_string_equal(who(rs, "/srv/mkt/deep/er/x.pdf"), "pdf");
	assert_string_equal(who(rs, "/srv/mkt/deep/er/more/x.pdf"), "pdf");
	assert_string_equal(who(rs, "/srv/mkt/deep/er/y.docx"), "docs");
	/* patterns compare case-insensitively */
	assert_string_equal(who(rs, "/srv/mkt/PLAN.DOCX"), "docs");
	/* no rule */
	assert_string_equal(who(rs, "/tmp/x"), "-");
	assert_string_equal(who(rs, "/srvx/x"), "-");
	ovc_ruleset_free(rs);

	/* the same with the public and shared rules in the other order */
	{
		static const struct spec s2[] = {
			{ "shared", "enc", "/d/*.*" },
			{ "public", "pub", "/d/*.*" },
		};
		rs = build(s2, N(s2));
		assert_string_equal(who(rs, "/d/x"), "pub");
		ovc_ruleset_free(rs);
	}
}

static void test_inheritance_components(void **state)
{
	static const struct spec s[] = {
		{ "shared", "mkt", "/srv/mkt/" },
		{ "shared", "root", "/*.secret" },
	};
	ovc_ruleset *rs = build(s, N(s));
	ovc_match m;

	(void)state;
	assert_string_equal(who(rs, "/srv/mkt/a"), "mkt");
	assert_string_equal(who(rs, "/srv/mkt/a/b/c/d/e.txt"), "mkt");
	assert_string_equal(who(rs, "/srv/mkt/noext"), "mkt");
	assert_string_equal(who(rs, "/srv/mkt/.hidden"), "mkt");
	/* whole components only */
	assert_string_equal(who(rs, "/srv/mk"), "-");
	assert_string_equal(who(rs, "/srv/mk/x"), "-");
	assert_string_equal(who(rs, "/srv/mktg/x"), "-");
	assert_string_equal(who(rs, "/srv/MKT/x"), "-");
	/* the folder itself as a name in /srv is not under it... */
	assert_string_equal(who(rs, "/srv/mkt"), "-");
	/* ...but asked as a folder (trailing '/') it is */
	assert_string_equal(who(rs, "/srv/mkt/"), "mkt");
	assert_string_equal(folder_who(rs, "/srv/mkt/"), "mkt");
	assert_string_equal(who(rs, "/srv/mkt/."), "mkt");
	assert_string_equal(who(rs, "/srv/mkt/a/.."), "mkt");
	assert_string_equal(who(rs, "/srv/mkt/a/b/../.."), "mkt");
	assert_string_equal(who(rs, "/srv/mkt/a/../"), "mkt");
	assert_string_equal(who(rs, "/srv/"), "-");
	/* a rule on "/" */
	assert_string_equal(who(rs, "/a.secret"), "root");
	assert_string_equal(who(rs, "/x/y/a.secret"), "root");
	assert_string_equal(who(rs, "/srv/mkt/a.secret"), "mkt");
	assert_string_equal(who(rs, "/"), "-");
	/* relative paths */
	assert_int_equal(ovc_ruleset_match(rs, "srv/mkt/a", &m, NULL, 0), -EINVAL);
	assert_int_equal(ovc_ruleset_match(rs, "", &m, NULL, 0), -EINVAL);
	ovc_ruleset_free(rs);
}

static void test_normalised_matching(void **state)
{
	static const struct spec s[] = {
		{ "shared", "mkt", "/srv/mkt/" },
	};
	ovc_ruleset *rs = build(s, N(s));
	ovc_match m;

	(void)state;
	assert_string_equal(who(rs, "/srv/mkt/../other"), "-");
	assert_string_equal(who(rs, "/srv/mkt/../other/x"), "-");
	assert_string_equal(who(rs, "//srv///mkt/"), "mkt");
	assert_string_equal(who(rs, "//srv///mkt//x"), "mkt");
	assert_string_equal(who(rs, "/srv/mkt/./a"), "mkt");
	assert_string_equal(who(rs, "/../../srv/mkt/x"), "mkt");
	assert_string_equal(who(rs, "/srv/other/../mkt/x"), "mkt");
	assert_string_equal(who(rs, "/srv/mkt/a/../../mkt2/x"), "-");
	assert_int_equal(ovc_ruleset_match(rs, "/srv/mkt/a/../b", &m, NULL, 0), 0);
	assert_string_equal(m.local_folder, "/srv/mkt");
	ovc_ruleset_free(rs);
}

static void test_username(void **state)
{
	static const struct spec s[] = {
		{ "private", "home", "/home/%USERNAME%/Private/" },
		{ "shared", "homes", "/home/" },
		{ "private", "tag", "/data/u_%USERNAME%_x/*.txt" },
	};
	ovc_ruleset *rs;
	size_t n;
	const char *const *f;

	(void)state;
	rs = build_user(s, N(s), "alice", NULL, 0);
	assert_string_equal(who(rs, "/home/alice/Private/a.txt"), "home");
	assert_string_equal(who(rs, "/home/alice/Private/x/y"), "home");
	assert_string_equal(who(rs, "/home/bob/Private/a.txt"), "homes");
	assert_string_equal(who(rs, "/home/%USERNAME%/Private/a.txt"), "homes");
	assert_string_equal(who(rs, "/data/u_alice_x/a.txt"), "tag");
	assert_string_equal(who(rs, "/data/u_bob_x/a.txt"), "-");
	f = ovc_ruleset_local_folders(rs, &n);
	assert_int_equal(n, 3);
	assert_string_equal(f[0], "/data/u_alice_x");
	assert_string_equal(f[1], "/home");
	assert_string_equal(f[2], "/home/alice/Private");
	ovc_ruleset_free(rs);

	/* names that must match nothing: the other rules still work */
	static const char *const bad[] = { "a/b", "..", "a..b", "", ".", NULL, "x\ny" };
	for (size_t i = 0; i < N(bad); i++) {
		rs = build_user(s, N(s), bad[i], NULL, 0);
		assert_string_equal(who(rs, "/home/a/b/Private/x"), "homes");
		assert_string_equal(who(rs, "/home/Private/x"), "homes");
		assert_string_equal(who(rs, "/Private/x"), "-");
		assert_string_equal(who(rs, "/data/u__x/a.txt"), "-");
		assert_string_equal(who(rs, "/data/u_a..b_x/a.txt"), "-");
		f = ovc_ruleset_local_folders(rs, &n);
		assert_int_equal(n, 1);
		assert_string_equal(f[0], "/home");
		ovc_ruleset_free(rs);
	}
}

static void test_build_errors(void **state)
{
	ovc_rule r[2];
	ovc_ruleset *rs = (ovc_ruleset *)1;
	ovc_err e = { 0 };

	(void)state;
	rule_set(&r[0], "shared", "good", "/srv/a/", 0);
	rule_set(&r[1], "shared", "broken", "/srv/b", 1);
	assert_int_equal(ovc_ruleset_build(r, 2, "alice", NULL, 0, &rs, &e), -EINVAL);
	assert_null(rs);
	assert_non_null(strstr(e.msg, "broken"));
	assert_int_equal(ovc_ruleset_build(r, 1, "alice", NULL, 0, &rs, &e), 0);
	ovc_ruleset_free(rs);
	/* no rules at all */
	assert_int_equal(ovc_ruleset_build(NULL, 0, NULL, NULL, 0, &rs, &e), 0);
	assert_string_equal(who(rs, "/x"), "-");
	ovc_ruleset_free(rs);
	ovc_ruleset_free(NULL);
}

/* ---------------------------------------------------------------------------
 * Encrypted folders.
 */

static void test_encrypted_folder(void **state)
{
	static const struct spec s[] = {
		{ "shared", "docx", "/srv/w/*.docx" },       /* case 1 */
		{ "shared", "all", "/a/" },                   /* case 2/3 */
		{ "public", "pub", "/a/pub/" },
		{ "public", "pubpdf", "/a/pdfs/*.pdf" },
		{ "public", "wide", "/p/" },                  /* case 5 */
		{ "shared", "inner", "/p/in/*.docx" },
		{ "shared", "tieenc", "/t/*.docx" },          /* same folder */
		{ "public", "tiepub", "/t/" },
		{ "shared", "outer", "/o/" },                 /* two encryption rules */
		{ "shared", "deepdocx", "/o/d/*.docx" },
	};
	ovc_ruleset *rs = build(s, N(s));
	ovc_match m;

	(void)state;
	/* a draft in a *.docx-encrypted folder: no rule, but an encrypted folder */
	assert_string_equal(who(rs, "/srv/w/draft.tmp"), "-");
	assert_string_equal(folder_who(rs, "/srv/w/draft.tmp"), "docx");
	assert_string_equal(create_who(rs, "/srv/w/draft.tmp"), "docx");
	assert_string_equal(folder_who(rs, "/srv/w/sub/x/draft.tmp"), "docx");
	assert_string_equal(who(rs, "/srv/w/a.docx"), "docx");
	assert_string_equal(create_who(rs, "/srv/w/a.docx"), "docx");
	assert_int_equal(ovc_ruleset_match(rs, "/srv/w/draft.tmp", &m, NULL, 0), 0);
	assert_string_equal(m.local_folder, "/srv/w");
	assert_string_equal(folder_who(rs, "/srv/x"), "-");
	/* a public *.* at a deeper folder switches it off */
	assert_string_equal(folder_who(rs, "/a/x"), "all");
	assert_string_equal(folder_who(rs, "/a/pub/x"), "-");
	assert_string_equal(folder_who(rs, "/a/pub/deep/x"), "-");
	assert_string_equal(create_who(rs, "/a/pub/x"), "-");
	/* a public pattern does not: other names stay encrypted */
	assert_string_equal(folder_who(rs, "/a/pdfs/x.pdf"), "all");
	assert_string_equal(who(rs, "/a/pdfs/x.pdf"), "pubpdf");
	assert_string_equal(create_who(rs, "/a/pdfs/x.pdf"), "-");
	assert_string_equal(create_who(rs, "/a/pdfs/x.tmp"), "all");
	/* an encryption rule deeper than a public *.*: encrypted folder */
	assert_string_equal(who(rs, "/p/in/draft.tmp"), "wide");
	assert_string_equal(folder_who(rs, "/p/in/draft.tmp"), "inner");
	assert_string_equal(create_who(rs, "/p/in/draft.tmp"), "inner");
	assert_string_equal(create_who(rs, "/p/in/x/a.docx"), "inner");
	assert_string_equal(create_who(rs, "/p/x.tmp"), "-");
	/* a public *.* on the same folder switches it off */
	assert_string_equal(who(rs, "/t/a.docx"), "tieenc");
	assert_string_equal(who(rs, "/t/a.tmp"), "tiepub");
	assert_string_equal(folder_who(rs, "/t/a.tmp"), "-");
	assert_string_equal(create_who(rs, "/t/a.tmp"), "-");
	assert_string_equal(create_who(rs, "/t/a.docx"), "tieenc");
	/* the deepest encryption rule names the folder; the name keeps its rule */
	assert_string_equal(who(rs, "/o/d/x.txt"), "outer");
	assert_string_equal(folder_who(rs, "/o/d/x.txt"), "deepdocx");
	assert_string_equal(create_who(rs, "/o/d/x.txt"), "outer");
	/* folder queries */
	assert_string_equal(folder_who(rs, "/srv/w/"), "docx");
	assert_string_equal(who(rs, "/srv/w/"), "-");
	assert_string_equal(who(rs, "/a/pub/"), "pub");
	ovc_ruleset_free(rs);
}

/* ---------------------------------------------------------------------------
 * Mountinfo and SMB rules.
 */

static const char mountinfo[] =
	"21 1 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
	"25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
	"101 25 0:51 / /srv/mkt rw,relatime shared:60 - cifs //files.corp.local/marketing "
	"rw,vers=3.1.1,cache=strict,username=bob,uid=0,addr=10.0.0.5,file_mode=0755\n"
	"102 25 0:52 / /mnt/My\\040Share rw,relatime - smb3 //alice@files.corp.local/Marketing "
	"rw,vers=3.1.1\n"
	"103 25 0:53 / /mnt/files rw,relatime - cifs //files/marketing rw,addr=fe80::1\n"
	"104 25 0:54 / /mnt/sub rw,relatime - cifs //FILES.corp.local/marketing/Public/Drop rw\n"
	"garbage line without fields\n"
	"\n"
	"105 25 0:55 / /mnt/other rw,relatime - cifs //files.corp.local/finance rw\n"
	"106 25 0:56 / /mnt/bad rw,relatime - cifs files.corp.local/finance rw\n"
	"107 25 0:57 / /mnt/nfs rw,relatime - nfs4 server:/export rw\n"
	"108 25 0:58 /Reports /mnt/bind rw,relatime - cifs //files.corp.local/marketing rw\n"
	"109 25 0:59 / /mnt/tab\\011x\\134y rw - cifs //h/s rw\n"
	"110 25 0:60 / /mnt/dots rw - cifs //h/s/../x rw\n"
	"111 25 0:61 / relative rw - cifs //h/s rw";

static void test_mountinfo(void **state)
{
	ovc_smb_mount *m = NULL;
	size_t n = 0, skipped = 0;

	(void)state;
	assert_int_equal(ovc_mountinfo_parse_smb(mountinfo, strlen(mountinfo), &m, &n,
						 &skipped), 0);
	assert_int_equal(n, 7);
	assert_int_equal(skipped, 4); /* garbage, bad source, "..", relative */
	assert_string_equal(m[0].host, "files.corp.local");
	assert_string_equal(m[0].share, "marketing");
	assert_string_equal(m[0].prefix, "");
	assert_string_equal(m[0].mountpoint, "/srv/mkt");
	assert_string_equal(m[1].host, "files.corp.local");
	assert_string_equal(m[1].share, "marketing");
	assert_string_equal(m[1].mountpoint, "/mnt/My Share");
	assert_string_equal(m[2].host, "files");
	assert_string_equal(m[0].addr, "10.0.0.5");
	assert_string_equal(m[1].addr, "");
	assert_string_equal(m[2].addr, "fe80::1");
	assert_string_equal(m[3].host, "files.corp.local");
	assert_string_equal(m[3].prefix, "public/drop");
	assert_string_equal(m[3].mountpoint, "/mnt/sub");
	assert_string_equal(m[4].share, "finance");
	assert_string_equal(m[5].prefix, "reports");
	assert_string_equal(m[5].mountpoint, "/mnt/bind");
	assert_string_equal(m[6].mountpoint, "/mnt/tab\tx\\y");
	free(m);

	/* not NUL-terminated: only the first line counts */
	{
		const char *l = strstr(mountinfo, "101 25");
		const char *nl = strchr(l, '\n');

		assert_int_equal(ovc_mountinfo_parse_smb(l, (size_t)(nl - l), &m, &n, NULL), 0);
	}
	assert_int_equal(n, 1);
	assert_string_equal(m[0].mountpoint, "/srv/mkt");
	free(m);
	assert_int_equal(ovc_mountinfo_parse_smb("", 0, &m, &n, &skipped), 0);
	assert_int_equal(n, 0);
	assert_int_equal(skipped, 0);
	free(m);
}

static void test_smb(void **state)
{
	static const struct spec s[] = {
		{ "shared", "marketing", "smb://files.corp.local/marketing/*.*" },
		{ "public", "drop", "smb://files.corp.local/marketing/public/" },
		{ "shared", "reports", "smb://FILES.corp.local/Marketing/Reports/*.xlsx" },
		{ "private", "home", "smb://files.corp.local/marketing/users/%USERNAME%/" },
		{ "shared", "fin", "smb://files.corp.local/finance/" },
		{ "shared", "nomount", "smb://nas/stuff/" },
		{ "shared", "local", "/srv/" },
	};
	ovc_smb_mount *mt = NULL;
	size_t nm = 0, n;
	ovc_ruleset *rs;
	const char *const *f;
	ovc_match m;

	(void)state;
	assert_int_equal(ovc_mountinfo_parse_smb(mountinfo, strlen(mountinfo), &mt, &nm,
						 NULL), 0);
	rs = build_user(s, N(s), "Alice", mt, nm);
	/* every mount of the share; the user@ in the source is ignored */
	assert_string_equal(who(rs, "/srv/mkt/plan.docx"), "marketing");
	assert_string_equal(who(rs, "/mnt/My Share/plan.docx"), "marketing");
	/* a short host name does not match the full one */
	assert_string_equal(who(rs, "/mnt/files/plan.docx"), "-");
	/* another share */
	assert_string_equal(who(rs, "/mnt/other/x"), "fin");
	/* the path below the share compares case-insensitively */
	assert_string_equal(who(rs, "/srv/mkt/Public/x"), "drop");
	assert_string_equal(who(rs, "/srv/mkt/PUBLIC/x/y"), "drop");
	assert_string_equal(who(rs, "/srv/mkt/reports/a.xlsx"), "reports");
	assert_string_equal(who(rs, "/srv/mkt/REPORTS/q/a.XLSX"), "reports");
	assert_string_equal(who(rs, "/srv/mkt/REPORTS/a.docx"), "marketing");
	assert_string_equal(who(rs, "/srv/mkt/users/alice/x"), "home");
	assert_string_equal(who(rs, "/srv/mkt/Users/ALICE/x"), "home");
	assert_string_equal(who(rs, "/srv/mkt/users/bob/x"), "marketing");
	/* the mount point itself keeps its case (a local name) */
	assert_string_equal(who(rs, "/srv/MKT/plan.docx"), "local");
	assert_string_equal(who(rs, "/mnt/my share/plan.docx"), "-");
	/* a mount of a sub-path governs what the rules say below it */
	assert_string_equal(who(rs, "/mnt/sub/x"), "drop");
	assert_string_equal(folder_who(rs, "/mnt/sub/x"), "-");
	/* a bind-style mount of marketing/Reports */
	assert_string_equal(who(rs, "/mnt/bind/a.xlsx"), "reports");
	assert_string_equal(who(rs, "/mnt/bind/a.txt"), "marketing");
	/* the local /srv rule is shallower than the mount's rules */
	assert_string_equal(who(rs, "/srv/x"), "local");
	assert_int_equal(ovc_ruleset_match(rs, "/srv/mkt/Reports/a.xlsx", &m, NULL, 0), 0);
	assert_string_equal(m.local_folder, "/srv/mkt/reports");

	f = ovc_ruleset_local_folders(rs, &n);
	{
		static const char *const want[] = {
			"/mnt/My Share", "/mnt/My Share/public", "/mnt/My Share/reports",
			"/mnt/My Share/users/alice", "/mnt/bind", "/mnt/other", "/mnt/sub",
			"/srv", "/srv/mkt", "/srv/mkt/public", "/srv/mkt/reports",
			"/srv/mkt/users/alice",
		};
		assert_int_equal(n, N(want));
		for (size_t i = 0; i < n; i++)
			assert_string_equal(f[i], want[i]);
	}
	ovc_ruleset_free(rs);

	/* without mounts, smb rules match nothing */
	rs = build_user(s, N(s), "alice", NULL, 0);
	assert_string_equal(who(rs, "/srv/mkt/plan.docx"), "local");
	assert_string_equal(who(rs, "/mnt/My Share/plan.docx"), "-");
	ovc_ruleset_free(rs);
	free(mt);
}

static void test_smb_share_case(void **state)
{
	static const char mi[] =
		"1 0 0:1 / /m/a rw - cifs //Host/SHARE rw\n"
		"2 0 0:2 / /m/b rw - smb3 //host/share/Sub/Dir rw\n"
		"3 0 0:3 / /m/c rw - cifs //host/shares rw\n"
		"4 0 0:4 / /m/d rw - cifs //host.example/share rw\n";
	static const struct spec s[] = {
		{ "shared", "s", "smb://host/Share/" },
		{ "shared", "deep", "smb://host/share/sub/dir/more/*.txt" },
	};
	ovc_smb_mount *mt = NULL;
	size_t nm = 0;
	ovc_ruleset *rs;

	(void)state;
	assert_int_equal(ovc_mountinfo_parse_smb(mi, sizeof(mi) - 1, &mt, &nm, NULL), 0);
	assert_int_equal(nm, 4);
	rs = build_user(s, N(s), "alice", mt, nm);
	assert_string_equal(who(rs, "/m/a/x"), "s");
	assert_string_equal(who(rs, "/m/b/x"), "s");
	assert_string_equal(who(rs, "/m/b/More/x.TXT"), "deep");
	assert_string_equal(who(rs, "/m/a/sub/dir/more/x.txt"), "deep");
	assert_string_equal(who(rs, "/m/c/x"), "-");
	assert_string_equal(who(rs, "/m/d/x"), "-");
	ovc_ruleset_free(rs);
	free(mt);
}

/* ---------------------------------------------------------------------------
 * Explanations.
 */

static void test_explain(void **state)
{
	static const char mi[] =
		"101 25 0:51 / /srv/mkt rw,relatime - cifs //files.corp.local/marketing rw\n";
	ovc_rule r[4];
	ovc_smb_mount *mt = NULL;
	size_t nm = 0;
	ovc_ruleset *rs = NULL;
	ovc_match m;
	char why[512], small[16];

	(void)state;
	rule_set(&r[0], "shared", "marketing", "smb://files.corp.local/marketing/*.*", 0);
	assert_int_equal(ovc_key_id_parse("3f2a6c1e-9b7d-4e0a-8c5f-112233445566", r[0].key_id), 0);
	rule_set(&r[1], "private", "home", "/home/%USERNAME%/Private/", 1);
	rule_set(&r[2], "public", "drop", "smb://files.corp.local/marketing/public/", 2);
	rule_set(&r[3], "shared", "docs", "/srv/docs/*.docx", 3);
	assert_int_equal(ovc_mountinfo_parse_smb(mi, sizeof(mi) - 1, &mt, &nm, NULL), 0);
	assert_int_equal(ovc_ruleset_build(r, 4, "alice", mt, nm, &rs, NULL), 0);

	assert_int_equal(ovc_ruleset_match(rs, "/srv/mkt/plan.docx", &m, why, sizeof(why)), 0);
	assert_string_equal(why, "/srv/mkt/plan.docx: shared asset 'marketing' via rule "
			    "smb://files.corp.local/marketing/*.* (mounted at /srv/mkt), "
			    "key 3f2a6c1e-9b7d-4e0a-8c5f-112233445566");
	assert_int_equal(ovc_ruleset_match(rs, "/tmp//x", &m, why, sizeof(why)), 0);
	assert_string_equal(why, "/tmp/x: no rule applies (not encrypted)");
	assert_int_equal(ovc_ruleset_match(rs, "/srv/mkt/Public/a", &m, why, sizeof(why)), 0);
	assert_string_equal(why, "/srv/mkt/Public/a: public asset 'drop' via rule "
			    "smb://files.corp.local/marketing/public/ (mounted at /srv/mkt) "
			    "(not encrypted)");
	assert_int_equal(ovc_ruleset_match(rs, "/home/alice/Private/a", &m, why, sizeof(why)), 0);
	assert_string_equal(why, "/home/alice/Private/a: private asset 'home' via rule "
			    "/home/%USERNAME%/Private/ (folder /home/alice/Private), "
			    "key 01000000-0000-0000-0000-0000000000ee");
	assert_int_equal(ovc_ruleset_match(rs, "/srv/docs/d.tmp", &m, why, sizeof(why)), 0);
	assert_string_equal(why, "/srv/docs/d.tmp: no rule governs this name, but the folder "
			    "is an encrypted folder (new files here are encrypted): shared "
			    "asset 'docs' via rule /srv/docs/*.docx, "
			    "key 03000000-0000-0000-0000-0000000000ee");
	assert_int_equal(ovc_ruleset_match(rs, "/srv/docs/", &m, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "/srv/docs/: no rule governs"));
	/* truncated, still NUL-terminated */
	assert_int_equal(ovc_ruleset_match(rs, "/srv/mkt/plan.docx", &m, small, sizeof(small)), 0);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_int_equal(ovc_ruleset_match(rs, "/srv/mkt/plan.docx", &m, small, 1), 0);
	assert_string_equal(small, "");
	ovc_ruleset_free(rs);
	free(mt);
}

/* ---------------------------------------------------------------------------
 * A larger set against a linear reference matcher.
 */

static void test_many_rules(void **state)
{
	enum { NR = 2000 };
	ovc_rule *r = calloc(NR, sizeof(*r));
	char (*paths)[64] = calloc(NR, sizeof(*paths));
	ovc_ruleset *rs = NULL;
	static const char *const pats[] = { "", "*.*", "*.docx", "*.pdf" };
	static const char *const types[] = { "shared", "private", "public" };
	unsigned seed = 12345;
	int hits = 0, specific = 0;

	(void)state;
	assert_non_null(r);
	assert_non_null(paths);
	for (int i = 0; i < NR; i++) {
		int depth = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 4;
		size_t o = 0;

		for (int d = 0; d < depth; d++) {
			seed = seed * 1103515245u + 12345u;
			o += (size_t)snprintf(paths[i] + o, 64 - o, "/d%u", (seed >> 16) % 5);
		}
		seed = seed * 1103515245u + 12345u;
		snprintf(paths[i] + o, 64 - o, "/%s", pats[(seed >> 16) % 4]);
		rule_set(&r[i], types[(seed >> 20) % 3], "x", paths[i], (uint8_t)i);
	}
	assert_int_equal(ovc_ruleset_build(r, NR, "u", NULL, 0, &rs, NULL), 0);
	for (int t = 0; t < 3000; t++) {
		char path[64];
		size_t o = 0;
		int depth = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 6;
		const ovc_rule *want = NULL;
		size_t want_len = 0;
		ovc_match m;

		for (int d = 0; d < depth; d++) {
			seed = seed * 1103515245u + 12345u;
			o += (size_t)snprintf(path + o, sizeof(path) - o, "/d%u", (seed >> 16) % 5);
		}
		seed = seed * 1103515245u + 12345u;
		snprintf(path + o, sizeof(path) - o, "/f%s", (seed >> 16) % 2 ? ".pdf" : ".txt");
		/* the linear reference: longest folder, specific, public, first */
		for (int i = 0; i < NR; i++) {
			ovc_rule_path rp;
			size_t fl;
			const char *name = strrchr(path, '/') + 1;

			assert_int_equal(ovc_rule_path_parse(r[i].path, &rp, NULL), 0);
			fl = strlen(rp.folder);
			if (strncmp(path, rp.folder, fl) != 0 || path[fl] != '/')
				continue;
			if (!rp.any && (strlen(name) < strlen(rp.pattern) - 1 ||
					strcmp(name + strlen(name) - strlen(rp.pattern) + 1,
					       rp.pattern + 1) != 0))
				continue;
			if (want) {
				ovc_rule_path wp;

				assert_int_equal(ovc_rule_path_parse(want->path, &wp, NULL), 0);
				if (fl < want_len)
					continue;
				if (fl == want_len) {
					if (rp.any && !wp.any)
						continue;
					if (rp.any == wp.any &&
					    (r[i].type != OVC_RULE_PUBLIC ||
					     want->type == OVC_RULE_PUBLIC))
						continue;
				}
			}
			want = &r[i];
			want_len = fl;
		}
		assert_int_equal(ovc_ruleset_match(rs, path, &m, NULL, 0), 0);
		if (!want) {
			assert_null(m.rule);
		} else {
			assert_non_null(m.rule);
			hits++;
			specific += strchr(strrchr(want->path, '/'), '*') &&
				    strcmp(strrchr(want->path, '/'), "/*.*") != 0;
			if (m.rule->key_id[0] != want->key_id[0] || m.rule->type != want->type ||
			    strcmp(m.rule->path, want->path) != 0)
				fail_msg("%s: got %s, want %s", path, m.rule->path, want->path);
		}
	}
	assert_true(hits > 1000); /* the test tests something */
	assert_true(specific > 100);
	ovc_ruleset_free(rs);
	free(r);
	free(paths);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_type),
		cmocka_unit_test(test_path_parse_ok),
		cmocka_unit_test(test_path_parse_errors),
		cmocka_unit_test(test_normalise),
		cmocka_unit_test(test_system_folders),
		cmocka_unit_test(test_patterns_overlap),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_inheritance_components),
		cmocka_unit_test(test_normalised_matching),
		cmocka_unit_test(test_username),
		cmocka_unit_test(test_build_errors),
		cmocka_unit_test(test_encrypted_folder),
		cmocka_unit_test(test_mountinfo),
		cmocka_unit_test(test_smb),
		cmocka_unit_test(test_smb_share_case),
		cmocka_unit_test(test_explain),
		cmocka_unit_test(test_many_rules),
	};

	if (ovc_common_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
