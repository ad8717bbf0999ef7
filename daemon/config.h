/*
 * config.h - the agent's config: overcrypt.conf (INI, read with inih), as
 * overcryptd and the overcrypt CLI both read it. overcrypt.conf(5) is the
 * user's documentation; this header is the program's.
 *
 * Files. User mode reads OVC_CONFIG_SYSTEM_FILE, then
 * $XDG_CONFIG_HOME/overcrypt/overcrypt.conf ($HOME/.config when
 * XDG_CONFIG_HOME is unset, empty or relative); a key set in a later file
 * replaces the earlier file's value (a repeatable key replaces the whole
 * list). System mode reads OVC_CONFIG_SYSTEM_FILE only. Missing files are
 * skipped. An explicit file (`--config FILE`) replaces them all and must
 * exist.
 *
 * Keys (sections and keys are case-sensitive):
 *   [server] policy_url      required; "https://HOST.../" or "file:///.../":
 *                            the folder holding <user>.json; ends in '/'
 *            ca_file         CA bundle for https (default: the system's)
 *            pin_sha256      "sha256//BASE64" (base64 of 32 bytes), several
 *                            joined by ';' (CURLOPT_PINNEDPUBLICKEY's form)
 *            client_cert, client_key   both or neither
 *            timeout         seconds a fetch may take in all (1..600,
 *                            default 60); connecting gets at most 10 s
 *            org_public_key  required; the org's minisign public key file;
 *                            give the key twice (two lines) to trust the
 *                            current and the next key during a rollover; at
 *                            most OVC_CONFIG_MAX_ORG_KEYS
 *   [client] user            user mode: the policy's user name (default:
 *                            the login name); an error in system mode
 *            keystore        default $XDG_DATA_HOME/overcrypt/keystore.age
 *                            (user mode; no default in system mode)
 *            cache_dir       default $XDG_CACHE_HOME/overcrypt; system mode
 *                            /var/lib/overcrypt
 *            runtime_dir     default $XDG_RUNTIME_DIR/overcrypt; system
 *                            mode /run/overcrypt
 *            users           system mode only, and required there: a
 *                            comma-separated list whose items are user
 *                            names or "@group" ("alice, bob", "@staff")
 *   [mount]  path            repeatable: a folder to overlay
 *            allow_other     yes | no (default no): user mode mounts with
 *                            allow_other + default_permissions, so that
 *                            other users' processes (and root's) reach the
 *                            overlay; needs user_allow_other in
 *                            /etc/fuse.conf when not root. System mode
 *                            always mounts so; there the key changes nothing
 *            home            yes | no (default no): also overlay each served
 *                            user's home folder ($HOME in user mode, the
 *                            passwd entry's in system mode), so that
 *                            persistent encryption covers all of it
 *   [log]    level           error | warning | info (default) | debug
 *
 * Values. Every path must be absolute: there is no "~" expansion and no
 * variable expansion (a path is kept as written). Names (user, users items)
 * are 1-64 characters of [A-Za-z0-9._-] starting with a letter or digit,
 * as the policy names users. An empty value is an error. A key that is not
 * repeatable may appear once per file.
 *
 * Syntax (inih's, with the reader below it): comments are lines starting
 * with '#' or ';', and " ;" starts a comment at the end of a line (so a
 * value cannot hold " ;"); "key: value" reads like "key = value"; leading
 * white space is ignored (there are no continuation lines); a line may be
 * at most OVC_CONFIG_MAX_LINE characters (after a trailing comment is
 * removed); a UTF-8 BOM at the start is skipped; a NUL byte is an error.
 *
 * Errors. Every problem is added to an ovc_diag as "FILE:LINE: message"
 * (or "FILE: message" when no line is to blame, e.g. a missing required
 * key, which names the last file read; or just the message for an
 * environment problem such as HOME unset): a line that is neither a
 * section, "key = value" nor a comment, an unknown section or key, a key
 * before any section, a duplicate key, a bad value (relative path, bad URL
 * scheme, a URL not ending in '/', a bad pin, a bad name, a bad level,
 * users in user mode, user in system mode), a missing required key,
 * client_cert without client_key or the reverse. Loading goes on after an
 * error so one run shows every problem.
 *
 * Thread-safety: ovc_config_load*() are reentrant (inih's global options
 * are only read); ovc_config_opts_env() reads the environment and is not
 * (call it from main before threads start). An ovc_config is immutable
 * once loaded.
 */
#ifndef OVC_CONFIG_H
#define OVC_CONFIG_H

#include <stddef.h>

#include "common/common.h"

#define OVC_CONFIG_SYSTEM_FILE "/etc/overcrypt/overcrypt.conf"
#define OVC_CONFIG_SYSTEM_CACHE_DIR "/var/lib/overcrypt"
#define OVC_CONFIG_SYSTEM_RUNTIME_DIR "/run/overcrypt"

/* The largest config file read; more is -EFBIG. */
#define OVC_CONFIG_MAX_BYTES (1u << 20)
/* The longest line (Debian's inih reads 200-byte lines, '\n' and NUL
 * included). */
#define OVC_CONFIG_MAX_LINE 198
/* How many org_public_key lines are allowed (current + next). */
#define OVC_CONFIG_MAX_ORG_KEYS 2
/* [server] timeout: default and largest value, in seconds. */
#define OVC_CONFIG_DEFAULT_TIMEOUT_S 60
#define OVC_CONFIG_MAX_TIMEOUT_S 600

enum ovc_config_mode {
	OVC_CONFIG_USER = 0,   /* overcryptd as the user, the overcrypt CLI */
	OVC_CONFIG_SYSTEM,     /* overcryptd --system */
};

enum ovc_log_level {
	OVC_LOG_ERROR = 0,
	OVC_LOG_WARNING,
	OVC_LOG_INFO,
	OVC_LOG_DEBUG,
};

/* What the loader needs from outside: all borrowed, any may be NULL.
 * The environment values are passed here (not read by the loader) so that
 * tests need not change the process environment. An XDG_* value that is
 * empty or relative is ignored, as the XDG base directory spec says. */
typedef struct ovc_config_opts {
	enum ovc_config_mode mode;
	const char *config_file;     /* --config FILE: the only file read */
	const char *system_file;     /* NULL: OVC_CONFIG_SYSTEM_FILE */
	const char *home;            /* $HOME */
	const char *xdg_config_home;
	const char *xdg_data_home;
	const char *xdg_cache_home;
	const char *xdg_runtime_dir;
	const char *login;           /* the login name: [client] user default */
	char login_buf[256];         /* storage for ovc_config_opts_env() */
} ovc_config_opts;

typedef struct ovc_config {
	enum ovc_config_mode mode;
	char **files;  size_t nfiles;      /* the files read, in order */

	/* [server] */
	char *policy_url;                  /* ends in '/' */
	char *ca_file;                     /* NULL: the system's CAs */
	char *pin_sha256;                  /* NULL, or "sha256//...;sha256//..."
					    * normalized (no spaces) */
	char *client_cert, *client_key;    /* both NULL or both set */
	char **org_public_keys;            /* 1..OVC_CONFIG_MAX_ORG_KEYS */
	size_t norg_public_keys;
	int timeout_s;                     /* OVC_CONFIG_DEFAULT_TIMEOUT_S */

	/* [client] */
	char *user;                        /* user mode; NULL in system mode */
	char *keystore;                    /* NULL in system mode unless set */
	char *cache_dir, *runtime_dir;     /* always set */
	char **users;  size_t nusers;      /* system mode (at least one); an
					    * item starting with '@' is a group */

	/* [mount] */
	char **mount_paths;  size_t nmount_paths;  /* in file order, distinct */
	int mount_allow_other;             /* [mount] allow_other = yes */
	int mount_home;                    /* [mount] home = yes */

	/* [log] */
	enum ovc_log_level log_level;      /* default OVC_LOG_INFO */
} ovc_config;

/* Fill `o` for `mode` and the explicit file `config_file` (borrowed, may be
 * NULL) from the process: getenv() for HOME and the XDG variables (the
 * pointers are borrowed from the environment: valid while it is not
 * changed) and the login name of getuid() (copied into o->login_buf; left
 * NULL when there is none). Returns 0; not thread-safe. */
int ovc_config_opts_env(ovc_config_opts *o, enum ovc_config_mode mode,
			const char *config_file);

/* Load the config the opts `o` describe (see the top of this header).
 * Returns 0 with *out set (caller frees with ovc_config_free()) when there
 * was no problem, else *out is NULL and: -EINVAL when any file or the
 * result is wrong (every problem in `d`), -errno when a file exists but
 * cannot be read or the explicit file is missing (also in `d`, as
 * "FILE: cannot read: REASON"; -EFBIG above OVC_CONFIG_MAX_BYTES), or
 * -ENOMEM (some messages may be missing). `d` may not be NULL. */
int ovc_config_load(const ovc_config_opts *o, ovc_config **out, ovc_diag *d);

/* The same with `text` (`len` bytes, need not be NUL-terminated) as the
 * only config file, named `name` in messages: as if `--config name` held
 * it. o->config_file and o->system_file are ignored. */
int ovc_config_load_mem(const char *text, size_t len, const char *name,
			const ovc_config_opts *o, ovc_config **out, ovc_diag *d);

/* Free a config (NULL is fine). */
void ovc_config_free(ovc_config *c);

/* "error", "warning", "info" or "debug" (static; "?" for a bad value). */
const char *ovc_log_level_name(enum ovc_log_level l);

#endif
