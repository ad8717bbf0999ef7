/* fuzz_mountinfo.c - libFuzzer target for ovc_mountinfo_parse_smb(),
 * ovc_rule_path_parse() and ovc_path_normalise().
 *
 * The whole input is parsed as a mountinfo text: every mount kept must be
 * well formed (lower-case host and share, a clean prefix, a normalised
 * absolute mount point). The input up to its first NUL or newline is also
 * a rule path: one that parses must be well formed, and a local rule
 * without %USERNAME% must govern a file named for its pattern in its
 * folder; and it is normalised as a path, which must give a clean path that
 * normalises to itself. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "policy/rules.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (ovc_common_init() != 0)
		abort();
	return 0;
}

static int has_upper(const char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			return 1;
	return 0;
}

static int clean_relative(const char *s)
{
	return s[0] != '/' && (!*s || s[strlen(s) - 1] != '/') && !strstr(s, "//") &&
	       strcmp(s, "..") && strncmp(s, "../", 3) && !strstr(s, "/../") &&
	       (strlen(s) < 3 || strcmp(s + strlen(s) - 3, "/..")) &&
	       strcmp(s, ".") && strncmp(s, "./", 2) && !strstr(s, "/./") &&
	       (strlen(s) < 2 || strcmp(s + strlen(s) - 2, "/."));
}

static void check_normalised(const char *p)
{
	char again[4096];

	if (p[0] != '/' || (strlen(p) > 1 && !clean_relative(p + 1)))
		abort();
	if (ovc_path_normalise(p, again, sizeof(again)) != 0 || strcmp(p, again) != 0)
		abort();
}

static void mounts_check(const ovc_smb_mount *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!m[i].host[0] || !m[i].share[0] || has_upper(m[i].host) ||
		    has_upper(m[i].share) || has_upper(m[i].prefix) ||
		    strchr(m[i].host, '@') || strchr(m[i].host, '/') ||
		    strchr(m[i].share, '/') || !clean_relative(m[i].prefix))
			abort();
		check_normalised(m[i].mountpoint);
	}
}

/* A parsed local rule governs "<folder>/a<suffix>" in its own ruleset. */
static void rule_check(const char *text, const ovc_rule_path *rp,
		       const ovc_smb_mount *m, size_t n)
{
	ovc_rule r = { .asset = "fuzz", .type = OVC_RULE_SHARED, .path = text, .has_key = 1 };
	ovc_ruleset *rs = NULL;
	ovc_match mt;
	char path[8300], why[512];

	if (rp->pattern[0] != '*' || strchr(rp->pattern, '/') ||
	    (rp->any ? strcmp(rp->pattern, "*.*") != 0 : strchr(rp->pattern + 1, '*') != NULL))
		abort();
	if (rp->smb ? (!rp->host[0] || !rp->share[0] || !clean_relative(rp->folder))
		    : (rp->host || rp->share))
		abort();
	if (!rp->smb)
		check_normalised(rp->folder);
	if (ovc_ruleset_build(&r, 1, "fuzzer", m, n, &rs, NULL) != 0)
		abort();
	snprintf(path, sizeof(path), "%s/a%s", strcmp(rp->folder, "/") ? rp->folder : "",
		 rp->any ? "" : rp->pattern + 1);
	if (!rp->smb && ovc_ruleset_match(rs, path, &mt, why, sizeof(why)) != 0)
		abort();
	if (!rp->smb && !rp->has_username && strlen(path) < 4000 && mt.rule == NULL)
		abort();
	ovc_ruleset_free(rs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ovc_smb_mount *m = NULL;
	size_t n = 0, skipped = 0, len;
	ovc_rule_path *rp = malloc(sizeof(*rp));
	char *text = malloc(size + 1), norm[4096];

	if (!rp || !text)
		abort();
	if (ovc_mountinfo_parse_smb((const char *)data, size, &m, &n, &skipped) != 0)
		abort();
	mounts_check(m, n);
	memcpy(text, data, size);
	text[size] = '\0';
	len = strcspn(text, "\n");
	text[len] = '\0';
	if (ovc_rule_path_parse(text, rp, NULL) == 0)
		rule_check(text, rp, m, n);
	if (ovc_path_normalise(text, norm, sizeof(norm)) == 0)
		check_normalised(norm);
	free(m);
	free(rp);
	free(text);
	return 0;
}
