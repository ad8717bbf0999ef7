/*
 * config.c - overcrypt.conf: reading (inih), checking and merging the files.
 *
 * How inih is used: through the line reader of common/ini.h, which counts
 * lines, handles blank lines, comments, section headers and malformed
 * lines (reporting each), and hands inih only key lines; inih splits them
 * into name and value. Key lines are at most OVC_CONFIG_MAX_LINE bytes.
 *
 * Each file is read into its own set of slots (one per key: the values
 * and the line of each); once the file is read, the keys it set replace
 * those of the earlier files. The result is built and checked at the end.
 */
#define _GNU_SOURCE /* strerror_r returning char *, strndup */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "common/ini.h"
#include "daemon/config.h"

enum sec { SEC_NONE = -2, SEC_SKIP = -1, SEC_SERVER, SEC_CLIENT, SEC_MOUNT, SEC_LOG };

static const char *const sec_names[] = { "server", "client", "mount", "log" };

enum key {
	K_POLICY_URL, K_CA_FILE, K_PIN, K_CLIENT_CERT, K_CLIENT_KEY, K_ORG_KEY, K_TIMEOUT,
	K_USER, K_KEYSTORE, K_CACHE_DIR, K_RUNTIME_DIR, K_USERS,
	K_MOUNT_PATH, K_MOUNT_ALLOW_OTHER, K_MOUNT_HOME, K_LOG_LEVEL, K_COUNT
};

enum vkind { V_PATH, V_URL, V_PIN, V_NAME, V_USERS, V_LEVEL, V_SECONDS, V_BOOL };

static const struct keydef {
	enum sec sec;
	const char *name;
	enum vkind kind;
	size_t max;              /* values per file: 1, or more when repeatable */
} keys[K_COUNT] = {
	[K_POLICY_URL]  = { SEC_SERVER, "policy_url", V_URL, 1 },
	[K_CA_FILE]     = { SEC_SERVER, "ca_file", V_PATH, 1 },
	[K_PIN]         = { SEC_SERVER, "pin_sha256", V_PIN, 1 },
	[K_CLIENT_CERT] = { SEC_SERVER, "client_cert", V_PATH, 1 },
	[K_CLIENT_KEY]  = { SEC_SERVER, "client_key", V_PATH, 1 },
	[K_ORG_KEY]     = { SEC_SERVER, "org_public_key", V_PATH, OVC_CONFIG_MAX_ORG_KEYS },
	[K_TIMEOUT]     = { SEC_SERVER, "timeout", V_SECONDS, 1 },
	[K_USER]        = { SEC_CLIENT, "user", V_NAME, 1 },
	[K_KEYSTORE]    = { SEC_CLIENT, "keystore", V_PATH, 1 },
	[K_CACHE_DIR]   = { SEC_CLIENT, "cache_dir", V_PATH, 1 },
	[K_RUNTIME_DIR] = { SEC_CLIENT, "runtime_dir", V_PATH, 1 },
	[K_USERS]       = { SEC_CLIENT, "users", V_USERS, 1 },
	[K_MOUNT_PATH]  = { SEC_MOUNT, "path", V_PATH, (size_t)-1 },
	[K_MOUNT_ALLOW_OTHER] = { SEC_MOUNT, "allow_other", V_BOOL, 1 },
	[K_MOUNT_HOME]  = { SEC_MOUNT, "home", V_BOOL, 1 },
	[K_LOG_LEVEL]   = { SEC_LOG, "level", V_LEVEL, 1 },
};

static const char *const level_names[] = { "error", "warning", "info", "debug" };

/* The values of one key: from one file while it is read, then merged. */
struct slot {
	char **v;
	int *lines;          /* the line of each value */
	size_t n, cap;
	int line;            /* of the first occurrence, 0 = not given */
	size_t file;         /* index into load.files */
};

struct load {
	const ovc_config_opts *o;
	ovc_diag *d;
	int nerr, oom;
	char **files;        /* every file read, in order */
	size_t nfiles;
	const char *name;    /* the file being read */
	int lineno;          /* of the line being applied */
	enum sec sec;
	struct slot cur[K_COUNT];   /* the file being read */
	struct slot all[K_COUNT];   /* merged */
};

/* ---------------------------------------------------------------------------
 * Messages.
 */

static void load_err(struct load *L, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void load_err(struct load *L, const char *file, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	L->nerr++;
	if (ovc_diag_add(L->d, file, line, "%s", msg))
		L->oom = 1;
}

#define ERR(L, ...) load_err((L), (L)->name, (L)->lineno, __VA_ARGS__)

/* `s` for a message: at most 64 characters, unprintable bytes as '?'. */
static const char *shown(const char *s, char buf[72])
{
	size_t i;

	for (i = 0; s[i] && i < 64; i++)
		buf[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
	if (s[i]) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

/* ---------------------------------------------------------------------------
 * Slots.
 */

static void slot_free(struct slot *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	free(s->lines);
	memset(s, 0, sizeof(*s));
}

/* Append `v` (taken over: freed on error) with its line. */
static int slot_add(struct slot *s, char *v, int line)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 2;
		char **nv = reallocarray(s->v, cap, sizeof(*nv));
		int *nl;

		if (!nv)
			goto oom;
		s->v = nv;
		nl = reallocarray(s->lines, cap, sizeof(*nl));
		if (!nl)
			goto oom;
		s->lines = nl;
		s->cap = cap;
	}
	s->v[s->n] = v;
	s->lines[s->n++] = line;
	return 0;
oom:
	free(v);
	return -ENOMEM;
}

/* The index of `v` in `s`, or -1. */
static int slot_find(const struct slot *s, const char *v)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], v))
			return (int)i;
	return -1;
}

static void add_value(struct load *L, enum key k, const char *v, size_t len)
{
	char *copy = strndup(v, len);

	if (!copy || slot_add(&L->cur[k], copy, L->lineno))
		L->oom = 1;
}

/* ---------------------------------------------------------------------------
 * Values.
 */

static int url_ok(const char *v)
{
	const char *rest;

	if (!strncasecmp(v, "https://", 8)) {
		rest = v + 8;
		if (*rest == '/' || *rest == '\0')
			return 0;
	} else if (!strncasecmp(v, "file:///", 8)) {
		rest = v + 7;
	} else {
		return 0;
	}
	for (; *rest; rest++)
		if (!isgraph((unsigned char)*rest))
			return 0;
	return 1;
}

/* One pin "sha256//BASE64" [s, s+len): 0 or -EINVAL. */
static int pin_ok(const char *s, size_t len)
{
	unsigned char key[32];
	size_t n = 0;
	const char *end = NULL;

	if (len != 8 + 44 || strncmp(s, "sha256//", 8))
		return -EINVAL;
	if (sodium_base642bin(key, sizeof(key), s + 8, 44, NULL, &n, &end,
			      sodium_base64_VARIANT_ORIGINAL) || n != 32 || end != s + len)
		return -EINVAL;
	return 0;
}

static void apply_pin(struct load *L, const char *v)
{
	char out[OVC_CONFIG_MAX_LINE + 1], b[72];
	size_t o = 0;

	for (const char *p = v;;) {
		const char *e = strchrnul(p, ';'), *s = p, *t = e;

		while (s < t && isspace((unsigned char)*s))
			s++;
		while (t > s && isspace((unsigned char)t[-1]))
			t--;
		if (t > s) {
			char item[OVC_CONFIG_MAX_LINE + 1];

			memcpy(item, s, (size_t)(t - s));
			item[t - s] = '\0';
			if (pin_ok(s, (size_t)(t - s))) {
				ERR(L, "bad pin_sha256 '%s': each pin is 'sha256//' and the "
				    "base64 of 32 bytes, several separated by ';'", shown(item, b));
				return;
			}
			if (o)
				out[o++] = ';';
			memcpy(out + o, s, (size_t)(t - s));
			o += (size_t)(t - s);
		}
		if (!*e)
			break;
		p = e + 1;
	}
	if (!o)
		return ERR(L, "'pin_sha256' has no pin");
	add_value(L, K_PIN, out, o);
}

static void apply_users(struct load *L, const char *v)
{
	char b[72];
	int items = 0;

	if (L->o->mode != OVC_CONFIG_SYSTEM)
		return ERR(L, "'users' is for system mode (overcryptd --system); a user-mode "
			   "agent serves its own user");
	for (const char *p = v;;) {
		const char *e = strchrnul(p, ','), *s = p, *t = e;
		char item[OVC_CONFIG_MAX_LINE + 1];

		while (s < t && isspace((unsigned char)*s))
			s++;
		while (t > s && isspace((unsigned char)t[-1]))
			t--;
		memcpy(item, s, (size_t)(t - s));
		item[t - s] = '\0';
		items += t > s;
		if (t == s) {
			/* empty items (a trailing comma) are ignored */
		} else if (!ovc_ini_name_ok(s + (*s == '@'), (size_t)(t - s) - (*s == '@'))) {
			ERR(L, "bad item '%s' in 'users': a user name or @group of 1-64 "
			    "letters, digits, '.', '_' or '-', starting with a letter or digit",
			    shown(item, b));
		} else if (slot_find(&L->cur[K_USERS], item) >= 0) {
			ERR(L, "'%s' is listed twice in 'users'", item);
		} else {
			add_value(L, K_USERS, s, (size_t)(t - s));
		}
		if (!*e)
			break;
		p = e + 1;
	}
	if (!items)
		ERR(L, "'users' lists nobody");
}

static void apply_path(struct load *L, enum key k, const char *v)
{
	struct slot *s = &L->cur[k];
	char b[72];
	int i;

	if (v[0] != '/')
		return ERR(L, "'%s' must be an absolute path (there is no ~ expansion), not '%s'",
			   keys[k].name, shown(v, b));
	i = slot_find(s, v);
	if (i >= 0)
		return ERR(L, "'%s' gives '%s' twice (first at line %d)", keys[k].name,
			   shown(v, b), s->lines[i]);
	if (s->n >= keys[k].max)
		return ERR(L, "at most %zu '%s' lines (the current key and the next one, "
			   "during a rollover)", keys[k].max, keys[k].name);
	add_value(L, k, v, strlen(v));
}

static void apply(struct load *L, enum key k, const char *v)
{
	char b[72];

	switch (keys[k].kind) {
	case V_PATH:
		return apply_path(L, k, v);
	case V_URL:
		if (!url_ok(v))
			return ERR(L, "bad policy_url '%s': it must start with https://HOST "
				   "or file:/// and have no spaces", shown(v, b));
		if (v[strlen(v) - 1] != '/')
			return ERR(L, "policy_url '%s' must end in '/' (it names the folder "
				   "holding USER.json)", shown(v, b));
		return add_value(L, k, v, strlen(v));
	case V_PIN:
		return apply_pin(L, v);
	case V_USERS:
		return apply_users(L, v);
	case V_NAME:
		if (L->o->mode == OVC_CONFIG_SYSTEM)
			return ERR(L, "'user' is for user mode; in system mode list the users "
				   "served in 'users'");
		if (!ovc_ini_name_ok(v, strlen(v)))
			return ERR(L, "bad user '%s': 1-64 letters, digits, '.', '_' or '-', "
				   "starting with a letter or digit", shown(v, b));
		return add_value(L, k, v, strlen(v));
	case V_LEVEL:
		for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
			if (!strcmp(v, level_names[i]))
				return add_value(L, k, v, strlen(v));
		return ERR(L, "bad level '%s': error, warning, info or debug", shown(v, b));
	case V_SECONDS: {
		size_t i;

		for (i = 0; v[i] >= '0' && v[i] <= '9' && i < 4; i++)
			;
		if (v[i] || !i || v[0] == '0' || atoi(v) > OVC_CONFIG_MAX_TIMEOUT_S)
			return ERR(L, "bad %s '%s': whole seconds, 1 to %d", keys[k].name,
				   shown(v, b), OVC_CONFIG_MAX_TIMEOUT_S);
		return add_value(L, k, v, strlen(v));
	}
	case V_BOOL:
		if (!strcmp(v, "yes") || !strcmp(v, "no"))
			return add_value(L, k, v, strlen(v));
		return ERR(L, "bad %s '%s': yes or no", keys[k].name, shown(v, b));
	}
}

/* ---------------------------------------------------------------------------
 * Reading one file.
 */

static int key_find(enum sec sec, const char *name)
{
	for (int k = 0; k < K_COUNT; k++)
		if (keys[k].sec == sec && !strcmp(keys[k].name, name))
			return k;
	return -1;
}

/* The reader's key callback: one key line, `name` and `value` trimmed by
 * inih. */
static void on_key(void *ctx, const char *name, const char *value, int line)
{
	struct load *L = ctx;
	struct slot *s;
	char b[72];
	int k;

	L->lineno = line;
	if (L->sec == SEC_NONE) {
		ERR(L, "'%s' comes before any section ([server], [client], [mount] or [log])",
		    shown(name, b));
		return;
	}
	if (L->sec == SEC_SKIP)
		return;
	if (!*name) {
		ERR(L, "no key name before '=' in [%s]", sec_names[L->sec]);
		return;
	}
	k = key_find(L->sec, name);
	if (k < 0) {
		ERR(L, "unknown key '%s' in [%s]", shown(name, b), sec_names[L->sec]);
		return;
	}
	s = &L->cur[k];
	if (s->line && keys[k].max == 1) {
		ERR(L, "duplicate key '%s' in [%s] (first at line %d)", name,
		    sec_names[L->sec], s->line);
		return;
	}
	if (!s->line)
		s->line = L->lineno;
	if (!*value) {
		ERR(L, "'%s' has no value", name);
		return;
	}
	apply(L, (enum key)k, value);
}

/* A section header: `inner` is the text between '[' and ']' ([inner,
 * inner+len), untrimmed), NULL when the reader refused the header. */
static void on_section(void *ctx, const char *inner, size_t len, int line)
{
	struct load *L = ctx;
	const char *e, *n, *ne;
	char b[72], in[OVC_CONFIG_MAX_LINE + 1];

	L->lineno = line;
	L->sec = SEC_SKIP;
	if (!inner)
		return;
	e = inner + len;
	for (n = inner; n < e && isspace((unsigned char)*n); n++)
		;
	for (ne = e; ne > n && isspace((unsigned char)ne[-1]); ne--)
		;
	for (int i = 0; i < (int)(sizeof(sec_names) / sizeof(sec_names[0])); i++)
		if (strlen(sec_names[i]) == (size_t)(ne - n) && !memcmp(sec_names[i], n, (size_t)(ne - n))) {
			L->sec = (enum sec)i;
			return;
		}
	snprintf(in, sizeof(in), "%.*s", (int)(ne - n), n);
	ERR(L, "unknown section [%s] (sections are [server], [client], [mount] and [log])",
	    shown(in, b));
}

/* The reader's error callback (common/ini.h): a fault it found. */
static void on_error(void *ctx, int line, const char *msg)
{
	struct load *L = ctx;

	load_err(L, L->name, line, "%s", msg);
}

static const ovc_ini_ops config_ini = {
	.max_line = OVC_CONFIG_MAX_LINE,
	.error = on_error,
	.section = on_section,
	.key = on_key,
};

/* Read the text of the file `name` into L->cur, then merge it into L->all. */
static int parse_text(struct load *L, const char *text, size_t len, const char *name)
{
	char *copy = strdup(name);
	char **nf;
	int rc;

	nf = copy ? reallocarray(L->files, L->nfiles + 1, sizeof(*nf)) : NULL;
	if (!nf) {
		free(copy);
		return -ENOMEM;
	}
	L->files = nf;
	L->files[L->nfiles++] = copy;
	L->name = copy;
	L->lineno = 0;
	L->sec = SEC_NONE;
	rc = ovc_ini_parse(text, len, &config_ini, L);
	if (rc == -ENOMEM) /* -EINVAL (inih refused a line we fed it) cannot be */
		return -ENOMEM;
	for (int k = 0; k < K_COUNT; k++) {
		if (L->cur[k].n) {
			slot_free(&L->all[k]);
			L->all[k] = L->cur[k];
			L->all[k].file = L->nfiles - 1;
			memset(&L->cur[k], 0, sizeof(L->cur[k]));
		} else {
			slot_free(&L->cur[k]);
		}
	}
	return L->oom ? -ENOMEM : 0;
}

/* Read the file at `path`; a missing file is skipped unless `required`.
 * Returns 0, -ENOMEM, or -errno when it could not be read (in `d`). */
static int parse_file(struct load *L, const char *path, int required)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char eb[128];
	int rc;

	rc = ovc_read_file(path, OVC_CONFIG_MAX_BYTES, 0, &buf, &len);
	if (rc == -ENOENT && !required)
		return 0;
	if (rc == -EFBIG) {
		load_err(L, path, 0, "larger than %u bytes", OVC_CONFIG_MAX_BYTES);
		return rc;
	}
	if (rc) {
		load_err(L, path, 0, "cannot read: %s", strerror_r(-rc, eb, sizeof(eb)));
		return rc;
	}
	rc = parse_text(L, (const char *)buf, len, path);
	free(buf);
	return rc;
}

/* ---------------------------------------------------------------------------
 * The result.
 */

/* An XDG variable, or NULL when unset, empty or relative (the spec says
 * to ignore it then). */
static const char *xdg(const char *v)
{
	return v && v[0] == '/' ? v : NULL;
}

/* *out = "base/rel" or, when base is NULL, "$HOME/home_rel/rel"; an error
 * (no file) when HOME is missing too. */
static int default_path(struct load *L, char **out, const char *base, const char *home_rel,
			const char *rel, const char *what)
{
	const char *home = L->o->home && L->o->home[0] == '/' ? L->o->home : NULL;
	int n;

	if (base)
		n = asprintf(out, "%s/%s", base, rel);
	else if (home && home_rel)
		n = asprintf(out, "%s/%s/%s", home, home_rel, rel);
	else {
		load_err(L, NULL, 0, "cannot place the %s: %s is not set; set it in [client]",
			 what, home_rel ? "HOME" : "XDG_RUNTIME_DIR");
		return -EINVAL;
	}
	if (n < 0) {
		*out = NULL;
		L->oom = 1;
		return -ENOMEM;
	}
	return 0;
}

/* Move the single value of slot `k` to *dst (NULL when not set). */
static void take(struct load *L, enum key k, char **dst)
{
	struct slot *s = &L->all[k];

	if (s->n) {
		*dst = s->v[0];
		s->v[0] = NULL;
	}
}

static void take_list(struct load *L, enum key k, char ***dst, size_t *n)
{
	struct slot *s = &L->all[k];

	*dst = s->v;
	*n = s->n;
	s->v = NULL;
	s->n = 0;
}

/* The file missing keys are blamed on: the last one read, else the first
 * one looked for. */
static const char *blamed(struct load *L, const char *first)
{
	return L->nfiles ? L->files[L->nfiles - 1] : first;
}

static void check_required(struct load *L, const char *first)
{
	static const enum key req[] = { K_POLICY_URL, K_ORG_KEY };
	const char *none = L->nfiles ? "" : " (no config file was found)";

	for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++)
		if (!L->all[req[i]].n)
			load_err(L, blamed(L, first), 0, "[server] needs '%s'%s",
				 keys[req[i]].name, none);
	if (L->o->mode == OVC_CONFIG_SYSTEM && !L->all[K_USERS].n)
		load_err(L, blamed(L, first), 0,
			 "[client] needs 'users' in system mode (the users served)%s", none);
	for (int pass = 0; pass < 2; pass++) {
		const struct slot *a = &L->all[pass ? K_CLIENT_KEY : K_CLIENT_CERT];
		const struct slot *b = &L->all[pass ? K_CLIENT_CERT : K_CLIENT_KEY];

		if (a->n && !b->n)
			load_err(L, L->files[a->file], a->lines[0], "'%s' without '%s' "
				 "(give both or neither)", keys[pass ? K_CLIENT_KEY : K_CLIENT_CERT].name,
				 keys[pass ? K_CLIENT_CERT : K_CLIENT_KEY].name);
	}
}

static void user_default(struct load *L, ovc_config *c)
{
	const char *login = L->o->login;
	char b[72];

	take(L, K_USER, &c->user);
	if (c->user)
		return;
	if (!login || !*login)
		return load_err(L, NULL, 0, "no login name to use as the user: set [client] user");
	if (!ovc_ini_name_ok(login, strlen(login)))
		return load_err(L, NULL, 0, "the login name '%s' is not a user name of the "
				"policy (1-64 letters, digits, '.', '_' or '-'): set [client] user",
				shown(login, b));
	if (!(c->user = strdup(login)))
		L->oom = 1;
}

/* Fill the fields with defaults where the files set none. */
static void defaults(struct load *L, ovc_config *c)
{
	const ovc_config_opts *o = L->o;

	take(L, K_KEYSTORE, &c->keystore);
	take(L, K_CACHE_DIR, &c->cache_dir);
	take(L, K_RUNTIME_DIR, &c->runtime_dir);
	if (o->mode == OVC_CONFIG_SYSTEM) {
		if (!c->cache_dir && !(c->cache_dir = strdup(OVC_CONFIG_SYSTEM_CACHE_DIR)))
			L->oom = 1;
		if (!c->runtime_dir && !(c->runtime_dir = strdup(OVC_CONFIG_SYSTEM_RUNTIME_DIR)))
			L->oom = 1;
		return;
	}
	user_default(L, c);
	if (!c->keystore)
		default_path(L, &c->keystore, xdg(o->xdg_data_home), ".local/share",
			     "overcrypt/keystore.age", "keystore");
	if (!c->cache_dir)
		default_path(L, &c->cache_dir, xdg(o->xdg_cache_home), ".cache", "overcrypt",
			     "cache_dir");
	if (!c->runtime_dir)
		default_path(L, &c->runtime_dir, xdg(o->xdg_runtime_dir), NULL, "overcrypt",
			     "runtime_dir");
}

static int build(struct load *L, const char *first, ovc_config **out)
{
	ovc_config *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->mode = L->o->mode;
	check_required(L, first);
	take(L, K_POLICY_URL, &c->policy_url);
	take(L, K_CA_FILE, &c->ca_file);
	take(L, K_PIN, &c->pin_sha256);
	take(L, K_CLIENT_CERT, &c->client_cert);
	take(L, K_CLIENT_KEY, &c->client_key);
	take_list(L, K_ORG_KEY, &c->org_public_keys, &c->norg_public_keys);
	take_list(L, K_USERS, &c->users, &c->nusers);
	take_list(L, K_MOUNT_PATH, &c->mount_paths, &c->nmount_paths);
	c->mount_allow_other = L->all[K_MOUNT_ALLOW_OTHER].n &&
			       !strcmp(L->all[K_MOUNT_ALLOW_OTHER].v[0], "yes");
	c->mount_home = L->all[K_MOUNT_HOME].n && !strcmp(L->all[K_MOUNT_HOME].v[0], "yes");
	c->timeout_s = L->all[K_TIMEOUT].n ? atoi(L->all[K_TIMEOUT].v[0]) : OVC_CONFIG_DEFAULT_TIMEOUT_S;
	c->log_level = OVC_LOG_INFO;
	if (L->all[K_LOG_LEVEL].n)
		for (int i = 0; i < 4; i++)
			if (!strcmp(L->all[K_LOG_LEVEL].v[0], level_names[i]))
				c->log_level = (enum ovc_log_level)i;
	defaults(L, c);
	c->files = L->files;
	c->nfiles = L->nfiles;
	L->files = NULL;
	L->nfiles = 0;
	if (L->oom || L->nerr) {
		ovc_config_free(c);
		return L->oom ? -ENOMEM : -EINVAL;
	}
	*out = c;
	return 0;
}

static void load_release(struct load *L)
{
	for (int k = 0; k < K_COUNT; k++) {
		slot_free(&L->cur[k]);
		slot_free(&L->all[k]);
	}
	for (size_t i = 0; i < L->nfiles; i++)
		free(L->files[i]);
	free(L->files);
}

/* The user's file, or NULL (and 0) when neither XDG_CONFIG_HOME nor HOME
 * says where it is. */
static int user_file(const ovc_config_opts *o, char **out)
{
	const char *base = xdg(o->xdg_config_home);
	const char *home = o->home && o->home[0] == '/' ? o->home : NULL;
	int n;

	*out = NULL;
	if (base)
		n = asprintf(out, "%s/overcrypt/overcrypt.conf", base);
	else if (home)
		n = asprintf(out, "%s/.config/overcrypt/overcrypt.conf", home);
	else
		return 0;
	if (n < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* ---------------------------------------------------------------------------
 * The public functions.
 */

int ovc_config_load(const ovc_config_opts *o, ovc_config **out, ovc_diag *d)
{
	struct load L = { .o = o, .d = d };
	const char *sys = o->system_file ? o->system_file : OVC_CONFIG_SYSTEM_FILE;
	const char *first = o->config_file ? o->config_file : sys;
	char *uf = NULL;
	int rc = 0, r;

	*out = NULL;
	if (o->config_file) {
		rc = parse_file(&L, o->config_file, 1);
	} else {
		rc = parse_file(&L, sys, 0);
		if (rc != -ENOMEM && o->mode == OVC_CONFIG_USER) {
			r = user_file(o, &uf);
			if (!r && uf)
				r = parse_file(&L, uf, 0);
			if (r && (!rc || r == -ENOMEM))
				rc = r;
		}
	}
	/* a file that could not be read: its errors alone, no "missing key" */
	if (!rc)
		rc = build(&L, first, out);
	free(uf);
	load_release(&L);
	return rc;
}

int ovc_config_load_mem(const char *text, size_t len, const char *name,
			const ovc_config_opts *o, ovc_config **out, ovc_diag *d)
{
	struct load L = { .o = o, .d = d };
	int rc;

	*out = NULL;
	rc = parse_text(&L, text, len, name);
	if (!rc)
		rc = build(&L, name, out);
	load_release(&L);
	return rc;
}

int ovc_config_opts_env(ovc_config_opts *o, enum ovc_config_mode mode,
			const char *config_file)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	memset(o, 0, sizeof(*o));
	o->mode = mode;
	o->config_file = config_file;
	o->home = getenv("HOME");
	o->xdg_config_home = getenv("XDG_CONFIG_HOME");
	o->xdg_data_home = getenv("XDG_DATA_HOME");
	o->xdg_cache_home = getenv("XDG_CACHE_HOME");
	o->xdg_runtime_dir = getenv("XDG_RUNTIME_DIR");
	if (!getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) && res &&
	    strlen(pw.pw_name) < sizeof(o->login_buf)) {
		strcpy(o->login_buf, pw.pw_name);
		o->login = o->login_buf;
	}
	return 0;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void ovc_config_free(ovc_config *c)
{
	if (!c)
		return;
	strv_free(c->files, c->nfiles);
	free(c->policy_url);
	free(c->ca_file);
	free(c->pin_sha256);
	free(c->client_cert);
	free(c->client_key);
	strv_free(c->org_public_keys, c->norg_public_keys);
	free(c->user);
	free(c->keystore);
	free(c->cache_dir);
	free(c->runtime_dir);
	strv_free(c->users, c->nusers);
	strv_free(c->mount_paths, c->nmount_paths);
	free(c);
}

const char *ovc_log_level_name(enum ovc_log_level l)
{
	return (unsigned)l < sizeof(level_names) / sizeof(level_names[0]) ? level_names[l] : "?";
}
