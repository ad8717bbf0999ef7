/*
 * rules.h - storage-address rules and the matcher that says which rule
 * governs a path. Clients (overlay, `overcrypt which`) and the admin tool
 * (`check`, `explain`) use this one matcher.
 *
 * A rule path (DESIGN.md, "Policy documents"; in this comment a space
 * stands between a folder's '/' and a pattern, which C comments cannot hold):
 *   /abs/folder/             the folder and everything below it (*.*)
 *   /abs/folder/ + *.docx    files matching a pattern in that folder and below
 *   /abs/folder/ + *.*       every file (names without a dot too)
 *   smb://host/share/dir/…   the same, below every kernel cifs/smb3 mount of
 *                            //host/share (mountinfo), case-insensitively
 *   %USERNAME%               anywhere in the folder: the local login name of
 *                            the view's user (a name holding '/' or "..", or
 *                            empty, makes the rule match nothing)
 * Matching is on whole path components. Paths are normalised lexically
 * (repeated slashes, ".", ".." — never above "/") before matching. Local
 * folder names compare exactly; below an SMB mount point (the part of the
 * path on the server) they compare ASCII-case-insensitively, like the
 * server. Patterns compare ASCII-case-insensitively everywhere (*.docx
 * matches PLAN.DOCX: an extension names a file type, whatever its case). A
 * pattern is '*' followed by a suffix; "*" alone means *.*; '*' elsewhere
 * (in a folder, twice, not first) is refused: there are no folder wildcards.
 *
 * Precedence among the rules whose pattern matches a name: the longest
 * folder; on a tie a specific pattern beats *.*; on a full tie public beats
 * shared/private (and then the earlier rule in the array). For smb:// rules
 * "longest" is the local folder (mount point + folder below the mounted
 * prefix); two rules that land on one local folder (a mount of a sub-path
 * that both rules cover) are told apart by their depth on the share.
 *
 * Encrypted folders (DESIGN.md: "a folder governed by an encryption rule is
 * an encrypted folder: every file created in it is encrypted whatever its
 * name"). Our reading, for the folder F of a path:
 *  - F's folder rule is the encryption rule (shared/private, any pattern)
 *    with the deepest folder that is F or above it (on a tie, the *.* one);
 *  - unless a public rule with *.* sits at an equal or deeper folder on the
 *    way (it switches encryption off for this user, there and below): then F
 *    is no encrypted folder. A public rule with a specific pattern does not
 *    switch the folder off: it only governs the names it matches.
 *  - A new file gets (ovc_match.create_rule): the rule that governs its name
 *    when that is an encryption rule (its key: a name keeps its own rule);
 *    else the folder rule when it is deeper than the public rule that
 *    governs the name, or when no rule governs the name (the draft.tmp of
 *    plan.docx in a *.docx folder); else plaintext. So a public *.pdf in a
 *    deeper folder keeps new PDFs plain while drafts there stay encrypted,
 *    and a public /p/ does not let drafts out of an encrypted /p/in/ *.docx.
 *  The pattern decides which existing plaintext files are converted (those
 *  whose `rule` is an encryption rule); `create_rule` what new files get.
 *
 * Thread-safety: an ovc_ruleset is immutable after ovc_ruleset_build(); any
 * number of threads may match against it at once.
 */
#ifndef OVC_RULES_H
#define OVC_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "crypto/keys.h"

enum ovc_rule_type {
	OVC_RULE_SHARED = 1,
	OVC_RULE_PRIVATE,
	OVC_RULE_PUBLIC,
};

/* "shared"/"private"/"public" <-> enum; parse returns 0 or -EINVAL. */
int ovc_rule_type_parse(const char *s, enum ovc_rule_type *out);
const char *ovc_rule_type_name(enum ovc_rule_type t);

/* One rule as the policy states it. Strings are owned by whoever built the
 * array (the policy document, the org model); the ruleset copies what it
 * needs. */
typedef struct ovc_rule {
	const char *asset;            /* asset name */
	enum ovc_rule_type type;
	const char *path;             /* as written, see above */
	uint8_t key_id[OVC_KEY_ID_BYTES]; /* the key to encrypt with */
	int has_key;                  /* 0 for public rules */
} ovc_rule;

/* A rule path taken apart. All strings point into `buf` (owned). */
typedef struct ovc_rule_path {
	char buf[4096];
	int smb;            /* 1 for smb://host/share/… */
	const char *host;   /* smb: lower-cased host; else NULL */
	const char *share;  /* smb: lower-cased share; else NULL */
	const char *folder; /* local: "/abs/folder" ("/" for the root); smb:
			     * the folder below the share ("" for its root),
			     * without leading or trailing '/', lower-cased
			     * except its %USERNAME% tokens */
	const char *pattern; /* "*.*" when none was given, else e.g. "*.docx" */
	int any;            /* pattern is *.* */
	int has_username;   /* folder (or an smb share) holds %USERNAME% */
} ovc_rule_path;

/* Parse and validate a rule path. Errors (-EINVAL, message says which):
 * not absolute, no '/' before the pattern (so "/srv/mkt" is refused: "mkt"
 * is no pattern), a pattern with '/' or more than one '*' or a '*' anywhere
 * but first ("*.*" excepted), a '*' in a folder, "." or ".." components, a
 * bad smb URL (no host, no share, a port, a user part other than "user@":
 * no password; a host of other than letters, digits, '-', '.', '_'), an
 * empty component, a control character, longer than about 2000 bytes.
 * %USERNAME% may stand in the folder and in an smb share (home shares). */
int ovc_rule_path_parse(const char *path, ovc_rule_path *out, ovc_err *e);

/* Is `folder` (a local rule folder; normalised here first) a system folder
 * that `check` refuses: /, /etc, /usr, /proc, /sys, /dev, /run, /boot,
 * /var/lib/overcrypt, or inside one of them (whole components: /etcetera is
 * none)? Returns the system folder's name (static), or NULL (also for a
 * relative path). */
const char *ovc_rule_system_folder(const char *folder);

/* Can one file name match both patterns? (*.* with anything: yes; *.a and
 * *.b: only when the suffixes are equal or one ends the other, compared
 * ASCII-case-insensitively like the matcher.) Used by `check` for "two
 * specific patterns that can match one name". */
int ovc_rule_patterns_overlap(const char *a, const char *b);

/* Normalise an absolute path lexically into `out` (`out_size` bytes):
 * repeated slashes folded, "." dropped, ".." removes the previous component
 * and never climbs above "/", no trailing slash (except "/" itself).
 * Returns 0, -EINVAL (not absolute) or -ENAMETOOLONG. */
int ovc_path_normalise(const char *in, char *out, size_t out_size);

/* Is the normalised absolute path `p` the folder `dir` or below it (whole
 * components: /srv/mktg is not below /srv/mkt)? */
int ovc_path_within(const char *p, const char *dir);

/* ---------------------------------------------------------------------------
 * Mount table (SMB).
 */

/* One kernel cifs/smb3 mount from a mountinfo table. */
typedef struct ovc_smb_mount {
	char host[256];       /* lower case, without any "user@" */
	char share[256];      /* lower case */
	char prefix[1024];    /* sub-path of the share that is mounted ("" for
			       * its root), no leading/trailing '/' */
	char mountpoint[4096];/* unescaped (\040 etc. decoded), normalised */
	char addr[64];        /* the server's address from the "addr=" super
			       * option, "" when the line has none */
} ovc_smb_mount;

/* Parse a /proc/self/mountinfo text (need not be NUL-terminated); keeps
 * only cifs and smb3 mounts, sources "//host/share[/prefix]" (also with
 * "user@host"; the user ends at the last '@'). A mount whose root field is
 * not "/" (a bind mount of a folder inside a share) shows the share from
 * prefix + root; the super option "addr=" (the address the kernel
 * connected to) fills `addr` when it is there and shorter than 64 bytes. Lines that do not parse (too few fields, no "-", a source
 * not "//host/share", "." or ".." in the prefix, a relative mount point)
 * are skipped (counted in *skipped, may be NULL); empty lines and other
 * file systems are not counted. Every mount is kept in table order, even
 * one hidden by a later mount on the same mount point. *out is a malloc()ed
 * array (caller free()s; NULL when *n is 0), *n its length.
 * Errors: -ENOMEM, -EINVAL (NULL out or n). */
int ovc_mountinfo_parse_smb(const char *text, size_t len, ovc_smb_mount **out,
			    size_t *n, size_t *skipped);

/* ---------------------------------------------------------------------------
 * The matcher.
 */
typedef struct ovc_ruleset ovc_ruleset;

/* Build the index for `rules` (copied; the array may be freed after) as
 * they apply to `username`'s view, with the SMB mounts `mounts` (may be
 * NULL/0) giving smb:// rules their local places. Rules with %USERNAME%
 * and a bad user name (NULL, empty, holding '/', "..", a control
 * character, or "."), and smb:// rules with no mount, are kept but match
 * nothing. Builds in about 20 ms for 10,000 rules; a match then costs one
 * hash probe per component of the path (tests/bench/bench_rules.c). Errors: -EINVAL (a rule path does not parse: message names the
 * rule's asset), -ENOMEM. Free with ovc_ruleset_free(). */
int ovc_ruleset_build(const ovc_rule *rules, size_t n, const char *username,
		      const ovc_smb_mount *mounts, size_t nmounts,
		      ovc_ruleset **out, ovc_err *e);
void ovc_ruleset_free(ovc_ruleset *rs);

/* The answer for one path. Pointers are borrowed from the ruleset. */
typedef struct ovc_match {
	const ovc_rule *rule;        /* the governing rule for this name, or
				      * NULL (no rule: passthrough) */
	const ovc_rule *folder_rule; /* the encryption rule that makes the
				      * path's folder an encrypted folder (see
				      * "Encrypted folders" above), or NULL */
	const char *local_folder;    /* where rule->folder is, locally (the
				      * mount point + folder for smb rules);
				      * folder_rule's when rule is NULL; NULL
				      * when both are */
	const ovc_rule *create_rule; /* the encryption rule a file created
				      * under this name now gets (its key), or
				      * NULL: it is created in plaintext */
} ovc_match;

/* Which rule governs the absolute path `path` (normalised first)? The last
 * component is a name in the folder above it ("/srv/mkt" is the name "mkt"
 * in "/srv"); a path ending in '/', "/." or "/.." (and "/") asks about the
 * folder it names: no name, so only *.* rules match it. Fills `m`; returns
 * 0, -EINVAL for a
 * relative path, -ENAMETOOLONG when normalised it holds 4096 bytes or more.
 * With `why` (may be NULL) also writes an explanation of at most `why_size`
 * bytes (always NUL-terminated, cut when longer), e.g.
 * "/srv/mkt/plan.docx: shared asset 'marketing' via rule
 *  smb://files.corp.local/marketing/ *.* (mounted at /srv/mkt), key 3f2a…"
 * or "/tmp/x: no rule applies (not encrypted)", "/srv/docs/d.tmp: no rule
 * governs this name, but the folder is an encrypted folder (new files here
 * are encrypted): shared asset 'docs' via rule /srv/docs/ *.docx, key …";
 * %USERNAME% rules add "(folder /home/alice/Private)". The path shown is
 * the normalised one. */
int ovc_ruleset_match(const ovc_ruleset *rs, const char *path, ovc_match *m,
		      char *why, size_t why_size);

/* The first rule of asset `asset` that encrypts (has a key and is not
 * public), or NULL: its key_id is the asset's current key in this view
 * (for a private asset, the user's own). */
const ovc_rule *ovc_ruleset_asset(const ovc_ruleset *rs, const char *asset);

/* Local folders the rules name (for mounting), each once, normalised,
 * sorted (strcmp); smb rules give mount point + folder below the mounted
 * prefix (that part lower case); rules that match nothing give none.
 * Borrowed array of *n strings, valid for the ruleset's life. */
const char *const *ovc_ruleset_local_folders(const ovc_ruleset *rs, size_t *n);

#endif
