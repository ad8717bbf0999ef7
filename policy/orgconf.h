/*
 * orgconf.h - org.conf, the organisation as admins describe it (INI, read
 * with inih), and the checks `overcrypt-admin check` runs on it.
 *
 *   [settings]      org (name, required), refresh_interval (15m), cache_expiration (7d),
 *                   policy_validity (14d), user_may_decrypt (no),
 *                   persistent_encryption (yes), autolock_idle (0 = off),
 *                   plaintext_under_rule (convert | refuse | strict)
 *   [group NAME]    parents, members, description
 *   [user NAME]     email, recipient (age1…), description
 *   [asset NAME]    type (shared | private | public, required), path
 *                   (required), groups, users, description
 *   [admin NAME]    recipient (age1…, required)
 *
 * Lists are comma-separated ("members = alice, bob"; empty items and a
 * trailing comma are ignored); booleans are yes/no/true/false (any case);
 * durations are a whole number with a unit s, m, h, d or w ("15m", "7d";
 * "0" alone is 0; at most OVC_DURATION_MAX_S); refresh_interval,
 * cache_expiration and policy_validity may not be 0. Names (of sections,
 * list items and the org) are 1–64 characters of [A-Za-z0-9._-], starting
 * with a letter or digit. A user, group and asset may share a name; two
 * sections of one kind may not. Groups nest; a group may have several
 * parents; a user in a subgroup is a member of all its ancestors and gets
 * their assets. A user gets an asset directly, through any group, or both.
 *
 * Syntax: comments are lines starting with '#' or ';', and " ;" starts a
 * comment at the end of a line (inih's rule, so a value cannot hold " ;").
 * "key: value" is read like "key = value". An indented line right after a
 * key continues it: lists and description only ("members = alice, bob,"
 * then "    carol, dave"). Debian's inih reads lines of at most 198
 * characters; a longer line of a list (or description) is split at a comma
 * before inih sees it, any other long line is an error. A UTF-8 BOM at the
 * start is skipped.
 *
 * Every problem is reported with file:line in an ovc_diag ("FILE:LINE:
 * message", or "FILE: message" for what belongs to no line); loading and
 * checking go on after an error so that one run shows them all. Load
 * errors come in file order, then duplicate sections.
 *
 * Thread-safety: reentrant (inih's global options are only read); an
 * ovc_org is immutable once loaded, any number of threads may query it.
 */
#ifndef OVC_ORGCONF_H
#define OVC_ORGCONF_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "crypto/age.h"
#include "policy/document.h"
#include "policy/rules.h"

typedef struct ovc_org_settings {
	char *org;                   /* required */
	uint64_t refresh_interval_s; /* default 900 */
	uint64_t cache_expiration_s; /* default 604800 (7 days) */
	uint64_t policy_validity_s;  /* default 1209600 (14 days) */
	uint64_t autolock_idle_s;    /* default 0 */
	int user_may_decrypt;        /* default 0 */
	int persistent_encryption;   /* default 1 */
	enum ovc_plaintext_mode plaintext_under_rule; /* default convert */
} ovc_org_settings;

typedef struct ovc_org_group {
	char *name;
	char **parents;  size_t nparents;
	char **members;  size_t nmembers;   /* user names */
	char *description;
	int line;                            /* of the [group NAME] header */
	int *parent_lines, *member_lines;    /* the line of each item (lists
					      * may span continuation lines) */
} ovc_org_group;

typedef struct ovc_org_user {
	char *name;
	char *email;                         /* or NULL */
	char *recipient;                     /* the age1… text, or NULL */
	ovc_age_recipient rcp;               /* parsed, when recipient is set */
	char *description;
	int line;
	int recipient_line;                  /* 0 when absent */
} ovc_org_user;

typedef struct ovc_org_asset {
	char *name;
	enum ovc_rule_type type;
	char *path;
	char **groups;   size_t ngroups;
	char **users;    size_t nusers;
	char *description;
	int line;                            /* of the [asset NAME] header */
	int path_line, type_line;            /* 0 when absent */
	int *group_lines, *user_lines;       /* the line of each item */
} ovc_org_asset;

typedef struct ovc_org_admin {
	char *name;
	char *recipient;
	ovc_age_recipient rcp;
	int line;
	int recipient_line;
} ovc_org_admin;

typedef struct ovc_org {
	char *file;                          /* the name used in messages */
	ovc_org_settings settings;
	ovc_org_group *groups;  size_t ngroups;
	ovc_org_user *users;    size_t nusers;
	ovc_org_asset *assets;  size_t nassets;
	ovc_org_admin *admins;  size_t nadmins;
	struct ovc_org_index *index;         /* private: name lookups and
					      * memberships, built by the
					      * loader (NULL in an ovc_org
					      * built by hand) */
} ovc_org;

/* The longest duration accepted: 36500 days (keeps time_t sums safe). */
#define OVC_DURATION_MAX_S UINT64_C(3153600000)

/* The largest org.conf ovc_org_load() reads. */
#define OVC_ORG_MAX_BYTES (16u << 20)

/* Read org.conf at `path` (messages name the file by `path`). Syntax and
 * value errors (a line that is not a section, key or comment, an unknown
 * section or key, a duplicate section or key, a bad boolean, duration,
 * type, name, e-mail or recipient, a missing required key) go to `d` with
 * file:line. Returns 0 with *out set when there were none (free with
 * ovc_org_free()), else -EINVAL (and *out NULL), -ENOMEM, or -errno when
 * the file cannot be read (-EFBIG above OVC_ORG_MAX_BYTES; also in `d`).
 * Paths and names in lists are checked by ovc_org_check(), not here. */
int ovc_org_load(const char *path, ovc_org **out, ovc_diag *d);

/* The same from memory (`text` need not be NUL-terminated; a NUL byte in it
 * is an error); `name` is the file name used in messages. */
int ovc_org_load_mem(const char *text, size_t len, const char *name,
		     ovc_org **out, ovc_diag *d);

/* Free a loaded org (NULL is fine). */
void ovc_org_free(ovc_org *org);

/* What the store remembers of assets that were published: their types are
 * fixed once created. */
typedef struct ovc_org_known_asset {
	const char *name;
	enum ovc_rule_type type;
} ovc_org_known_asset;

/* The semantic checks of `check` on an org from ovc_org_load*(), each with
 * file:line: an unknown member, parent, group or user; a cycle of parents
 * (naming the groups, from the one first in org.conf); a path that is not
 * absolute or does not end in '/' before its pattern (a last component
 * without '*' is taken for a folder missing its '/'); a bad smb URL; a
 * system folder (ovc_rule_system_folder); on one folder (local paths
 * compared exactly, smb ones case-insensitively, %USERNAME% as written):
 * two encryption (shared/private) assets whatever their patterns, two
 * specific patterns (not *.*) that can match one name whatever the types,
 * or two public assets whose patterns can match one name (so which public
 * asset governs a name never rests on a tie) — one public asset beside one
 * encryption asset, or public assets with disjoint specific patterns, are
 * allowed; an asset whose type differs from the one it was created with
 * (`known`, may be NULL/0); a user without a recipient; no [admin] section.
 * Returns 0 when nothing was found, -EINVAL when something was (all in
 * `d`), -ENOMEM (some messages may be missing). */
int ovc_org_check(const ovc_org *org, const ovc_org_known_asset *known,
		  size_t nknown, ovc_diag *d);

/* Lookups; NULL when absent. Borrowed. */
const ovc_org_user *ovc_org_find_user(const ovc_org *org, const char *name);
const ovc_org_asset *ovc_org_find_asset(const ovc_org *org, const char *name);
const ovc_org_group *ovc_org_find_group(const ovc_org *org, const char *name);

/* Is `user` a member of `group`, directly or through any subgroup? 1 or 0
 * (also for unknown names and an org built by hand). */
int ovc_org_user_in_group(const ovc_org *org, const char *user,
			  const char *group);

/* The assets `user` gets (directly or through any group), in org.conf
 * order, each once: a malloc()ed array of borrowed pointers (caller
 * free()s the array; it is allocated, though maybe empty, on success).
 * Public assets are included only when assigned. Names that ovc_org_check()
 * would report as unknown are skipped. Errors: -ENOENT (no such user),
 * -EINVAL (an org not from the loader), -ENOMEM; *out is NULL then. */
int ovc_org_user_assets(const ovc_org *org, const char *user,
			const ovc_org_asset ***out, size_t *n);

/* Parse a duration ("15m", "7d", "0") into seconds; 0 or -EINVAL. */
int ovc_duration_parse(const char *s, uint64_t *out);

#endif
