/*
 * orgconf.c - org.conf: loading (inih), the checks of `check`, and the
 * membership queries publish and explain ask.
 *
 * How inih is used: through the line reader of common/ini.h (see there
 * why Debian's libinih 55 is not used directly), with its three org.conf
 * options: an indented line after a key continues it (lists and
 * description; other keys refuse it here), a list line longer than inih's
 * buffer is split at a comma and the rest applied as a continuation, and
 * section headers are read the lax way (see OVC_INI_HEADER_LAX). Section
 * headers are ours (names may be 64 characters, an empty section is seen);
 * inih only splits key lines into name and value.
 */
#define _GNU_SOURCE /* asprintf */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/ini.h"
#include "policy/orgconf.h"

/* ---------------------------------------------------------------------------
 * Small helpers.
 */

/* Make room for element `n` of the array at *arrp (elements of `size`
 * bytes): capacity is the next power of two, so grow at 0 and at powers of
 * two. The new element is zeroed. */
static int grow(void *arrp, size_t n, size_t size)
{
	void *old, *nw;
	size_t cap;

	if (n && (n & (n - 1)) == 0) {
		if (n > SIZE_MAX / 2 / size)
			return -ENOMEM;
		cap = n * 2;
	} else if (n == 0) {
		cap = 1;
	} else {
		goto zero;
	}
	memcpy(&old, arrp, sizeof(old));
	nw = realloc(old, cap * size);
	if (!nw)
		return -ENOMEM;
	memcpy(arrp, &nw, sizeof(nw));
zero:
	memcpy(&old, arrp, sizeof(old));
	memset((char *)old + n * size, 0, size);
	return 0;
}

static char *strndup_trim(const char *s, size_t len)
{
	while (len && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	return strndup(s, len);
}

/* `s` for a message: at most 60 bytes, non-printable bytes as '?'. */
static const char *shown(const char *s, char buf[72])
{
	size_t i;

	for (i = 0; s[i] && i < 60; i++)
		buf[i] = (s[i] >= 0x20 && s[i] != 0x7f) ? s[i] : '?';
	if (s[i])
		memcpy(buf + i++, "...", 4);
	else
		buf[i] = '\0';
	return buf;
}

int ovc_duration_parse(const char *s, uint64_t *out)
{
	uint64_t v = 0, mul;
	const char *p = s;

	if (!s || !out)
		return -EINVAL;
	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > OVC_DURATION_MAX_S)
			return -EINVAL;
	}
	switch (*p++) {
	case 's': mul = 1; break;
	case 'm': mul = 60; break;
	case 'h': mul = 3600; break;
	case 'd': mul = 86400; break;
	case 'w': mul = 604800; break;
	default: return -EINVAL;
	}
	if (*p || v > OVC_DURATION_MAX_S / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

static int bool_parse(const char *s, int *out)
{
	if (!strcasecmp(s, "yes") || !strcasecmp(s, "true"))
		*out = 1;
	else if (!strcasecmp(s, "no") || !strcasecmp(s, "false"))
		*out = 0;
	else
		return -EINVAL;
	return 0;
}

static int email_ok(const char *s)
{
	const char *at = strchr(s, '@');

	if (!at || at == s || !at[1] || strchr(at + 1, '@'))
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == ',')
			return 0;
	return 1;
}

/* ---------------------------------------------------------------------------
 * The index: sorted names and resolved memberships, built once at load.
 */

struct nref {
	const char *name;
	size_t i;
};

struct ilist {
	size_t *v;
	size_t n;
};

struct ovc_org_index {
	struct nref *users, *groups, *assets, *admins; /* sorted by name */
	struct ilist *parents;   /* per group: known parents */
	struct ilist *closure;   /* per user: every group the user is in,
				  * directly or inherited, ascending */
	struct ilist *agroups;   /* per asset: known groups */
	struct ilist *ausers;    /* per asset: known users */
};

static int nref_cmp(const void *a, const void *b)
{
	const struct nref *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

static int nref_key_cmp(const void *key, const void *b)
{
	return strcmp(key, ((const struct nref *)b)->name);
}

static size_t nref_find(const struct nref *v, size_t n, const char *name)
{
	const struct nref *r;

	if (!v || !name)
		return SIZE_MAX;
	r = bsearch(name, v, n, sizeof(*v), nref_key_cmp);
	if (!r)
		return SIZE_MAX;
	/* Duplicates do not survive a load, but be exact anyway: first one. */
	while (r > v && strcmp(r[-1].name, name) == 0)
		r--;
	return r->i;
}

static int ilist_add(struct ilist *l, size_t x)
{
	if (grow(&l->v, l->n, sizeof(*l->v)))
		return -ENOMEM;
	l->v[l->n++] = x;
	return 0;
}

static void ilists_free(struct ilist *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++)
		free(l[i].v);
	free(l);
}

static void index_free(struct ovc_org_index *x, const ovc_org *org)
{
	if (!x)
		return;
	free(x->users);
	free(x->groups);
	free(x->assets);
	free(x->admins);
	ilists_free(x->parents, org->ngroups);
	ilists_free(x->closure, org->nusers);
	ilists_free(x->agroups, org->nassets);
	ilists_free(x->ausers, org->nassets);
	free(x);
}

/* A sorted name table of `n` elements of `size` bytes whose first member
 * is the char *name. */
static struct nref *names_sorted(const void *arr, size_t n, size_t size)
{
	struct nref *v = calloc(n ? n : 1, sizeof(*v));

	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		memcpy(&v[i].name, (const char *)arr + i * size, sizeof(char *));
		v[i].i = i;
	}
	qsort(v, n, sizeof(*v), nref_cmp);
	return v;
}

/* Resolve `names` against the sorted table `tab`; unknown ones are left
 * out (check reports them). */
static int resolve(struct ilist *out, char **names, size_t n,
		   const struct nref *tab, size_t ntab)
{
	for (size_t i = 0; i < n; i++) {
		size_t k = nref_find(tab, ntab, names[i]);

		if (k != SIZE_MAX && ilist_add(out, k))
			return -ENOMEM;
	}
	return 0;
}

static int size_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/* Every group user `u` is in: walk up from the groups that list the user,
 * through every parent; `stamp` (one per group) marks the groups seen for
 * this user, so diamonds and cycles end. */
static int closure_of(const ovc_org *org, const struct ilist *direct,
		      size_t *stamp, size_t u, struct ilist *out)
{
	const struct ovc_org_index *x = org->index;
	struct ilist todo = { 0 };
	int rc = 0;

	for (size_t i = 0; i < direct->n && !rc; i++)
		rc = ilist_add(&todo, direct->v[i]);
	while (!rc && todo.n) {
		size_t g = todo.v[--todo.n];

		if (stamp[g] == u + 1)
			continue;
		stamp[g] = u + 1;
		rc = ilist_add(out, g);
		for (size_t p = 0; p < x->parents[g].n && !rc; p++)
			if (stamp[x->parents[g].v[p]] != u + 1)
				rc = ilist_add(&todo, x->parents[g].v[p]);
	}
	free(todo.v);
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), size_cmp);
	return rc;
}

static int index_memberships(ovc_org *org)
{
	struct ovc_org_index *x = org->index;
	struct ilist *direct = calloc(org->nusers + 1, sizeof(*direct));
	size_t *stamp = calloc(org->ngroups + 1, sizeof(*stamp));
	int rc = direct && stamp ? 0 : -ENOMEM;

	for (size_t g = 0; g < org->ngroups && !rc; g++) {
		const ovc_org_group *gr = &org->groups[g];

		rc = resolve(&x->parents[g], gr->parents, gr->nparents, x->groups, org->ngroups);
		for (size_t m = 0; m < gr->nmembers && !rc; m++) {
			size_t u = nref_find(x->users, org->nusers, gr->members[m]);

			if (u != SIZE_MAX)
				rc = ilist_add(&direct[u], g);
		}
	}
	for (size_t u = 0; u < org->nusers && !rc; u++)
		rc = closure_of(org, &direct[u], stamp, u, &x->closure[u]);
	for (size_t a = 0; a < org->nassets && !rc; a++) {
		const ovc_org_asset *as = &org->assets[a];

		rc = resolve(&x->agroups[a], as->groups, as->ngroups, x->groups, org->ngroups);
		if (!rc)
			rc = resolve(&x->ausers[a], as->users, as->nusers, x->users, org->nusers);
	}
	ilists_free(direct, direct ? org->nusers : 0);
	free(stamp);
	return rc;
}

static int index_build(ovc_org *org)
{
	struct ovc_org_index *x = calloc(1, sizeof(*x));

	org->index = x;
	if (!x)
		return -ENOMEM;
	x->users = names_sorted(org->users, org->nusers, sizeof(*org->users));
	x->groups = names_sorted(org->groups, org->ngroups, sizeof(*org->groups));
	x->assets = names_sorted(org->assets, org->nassets, sizeof(*org->assets));
	x->admins = names_sorted(org->admins, org->nadmins, sizeof(*org->admins));
	x->parents = calloc(org->ngroups + 1, sizeof(*x->parents));
	x->closure = calloc(org->nusers + 1, sizeof(*x->closure));
	x->agroups = calloc(org->nassets + 1, sizeof(*x->agroups));
	x->ausers = calloc(org->nassets + 1, sizeof(*x->ausers));
	if (!x->users || !x->groups || !x->assets || !x->admins || !x->parents ||
	    !x->closure || !x->agroups || !x->ausers)
		return -ENOMEM;
	return 0;
}

/* ---------------------------------------------------------------------------
 * Loading.
 */

enum sec_kind { SEC_NONE, SEC_SKIP, SEC_SETTINGS, SEC_GROUP, SEC_USER, SEC_ASSET, SEC_ADMIN };

/* Keys per section, in the order of the enums below. `cont`: the key may
 * go on over indented lines (lists, description). */
struct keydef {
	const char *name;
	int cont;
};

enum { K_ORG, K_REFRESH, K_CACHE, K_VALIDITY, K_MAY_DECRYPT, K_PERSISTENT,
       K_AUTOLOCK, K_PLAINTEXT };
static const struct keydef settings_keys[] = {
	{ "org", 0 }, { "refresh_interval", 0 }, { "cache_expiration", 0 },
	{ "policy_validity", 0 }, { "user_may_decrypt", 0 },
	{ "persistent_encryption", 0 }, { "autolock_idle", 0 },
	{ "plaintext_under_rule", 0 }, { NULL, 0 } };
enum { KG_PARENTS, KG_MEMBERS, KG_DESC };
static const struct keydef group_keys[] = {
	{ "parents", 1 }, { "members", 1 }, { "description", 1 }, { NULL, 0 } };
enum { KU_EMAIL, KU_RECIPIENT, KU_DESC };
static const struct keydef user_keys[] = {
	{ "email", 0 }, { "recipient", 0 }, { "description", 1 }, { NULL, 0 } };
enum { KA_TYPE, KA_PATH, KA_GROUPS, KA_USERS, KA_DESC };
static const struct keydef asset_keys[] = {
	{ "type", 0 }, { "path", 0 }, { "groups", 1 }, { "users", 1 },
	{ "description", 1 }, { NULL, 0 } };
enum { KD_RECIPIENT };
static const struct keydef admin_keys[] = { { "recipient", 0 }, { NULL, 0 } };

#define MAX_KEYS 8

static const struct keydef *keys_of(enum sec_kind k)
{
	switch (k) {
	case SEC_SETTINGS: return settings_keys;
	case SEC_GROUP: return group_keys;
	case SEC_USER: return user_keys;
	case SEC_ASSET: return asset_keys;
	case SEC_ADMIN: return admin_keys;
	default: return NULL;
	}
}

static int key_find(enum sec_kind k, const char *name, size_t len)
{
	const struct keydef *t = keys_of(k);

	for (int i = 0; t && t[i].name; i++)
		if (strlen(t[i].name) == len && memcmp(t[i].name, name, len) == 0)
			return i;
	return -1;
}

struct load {
	ovc_org *org;
	ovc_diag *d;
	int nerr, oom;
	int lineno;                  /* of the line being applied */
	/* the section being read */
	enum sec_kind kind;
	size_t idx;
	char label[96];              /* "[user alice]", for messages */
	int key_line[MAX_KEYS];      /* first line of each key, 0 = not yet */
	int cont_key;                /* key an indented line continues; -1 none
				      * (the line is a key line), -2 a key that
				      * was refused (its lines are dropped) */
	int settings_line;
	int org_line;                /* of 'org', good or bad */
};

#define ERR(L, line, ...) load_err((L), (line), __VA_ARGS__)

static void load_err(struct load *L, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void load_err(struct load *L, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	L->nerr++;
	if (ovc_diag_add(L->d, L->org->file, line, "%s", msg))
		L->oom = 1;
}

static void oom(struct load *L)
{
	L->oom = 1;
}

/* Set a string value once. */
static void set_str(struct load *L, char **dst, const char *value)
{
	char *s = strdup(value);

	if (!s)
		return oom(L);
	free(*dst);
	*dst = s;
}

/* Append the comma-separated names of `value` (`len` bytes) to a list. */
static void list_add(struct load *L, const char *key, char ***v, int **lines,
		     size_t *n, const char *value, size_t len, int line)
{
	const char *s = value, *end = value + len;
	char b[72];

	while (s < end) {
		const char *c = memchr(s, ',', (size_t)(end - s));
		const char *e = c ? c : end;
		char *item = strndup_trim(s, (size_t)(e - s));

		s = c ? c + 1 : end;
		if (!item)
			return oom(L);
		if (!*item) {
			free(item);
			continue;
		}
		if (!ovc_ini_name_ok(item, strlen(item))) {
			ERR(L, line, "bad name '%s' in '%s' of %s: names are 1-64 letters, "
			    "digits, '.', '_' or '-', starting with a letter or digit",
			    shown(item, b), key, L->label);
			free(item);
			continue;
		}
		if (grow(v, *n, sizeof(**v)) || grow(lines, *n, sizeof(**lines))) {
			free(item);
			return oom(L);
		}
		(*v)[*n] = item;
		(*lines)[(*n)++] = line;
	}
}

/* A description, joined over continuation lines with one space. */
static void desc_add(struct load *L, char **dst, const char *value, size_t len)
{
	size_t old = *dst ? strlen(*dst) : 0;
	char *s;

	if (!*dst) {
		*dst = strndup(value, len);
		if (!*dst)
			oom(L);
		return;
	}
	s = realloc(*dst, old + len + 2);
	if (!s)
		return oom(L);
	s[old] = ' ';
	memcpy(s + old + 1, value, len);
	s[old + 1 + len] = '\0';
	*dst = s;
}

static void set_duration(struct load *L, uint64_t *dst, const char *key,
			 const char *value, int zero_ok)
{
	char b[72];

	if (ovc_duration_parse(value, dst))
		ERR(L, L->lineno, "'%s' must be a duration such as 30s, 15m, 1h, 7d or 2w "
		    "(or 0), not '%s'", key, shown(value, b));
	else if (!zero_ok && *dst == 0)
		ERR(L, L->lineno, "'%s' may not be 0", key);
}

static void set_bool(struct load *L, int *dst, const char *key, const char *value)
{
	char b[72];

	if (bool_parse(value, dst))
		ERR(L, L->lineno, "'%s' must be yes, no, true or false, not '%s'", key,
		    shown(value, b));
}

static void set_recipient(struct load *L, char **dst, ovc_age_recipient *rcp,
			  const char *value)
{
	ovc_err e;

	ovc_err_clear(&e);
	if (ovc_age_recipient_parse(value, rcp, &e)) {
		char b[72];

		ERR(L, L->lineno, "bad recipient '%s' in %s: %s", shown(value, b), L->label,
		    e.msg[0] ? e.msg : "not an age1... public key");
		return;
	}
	set_str(L, dst, value);
}

static void apply_settings(struct load *L, int k, const char *value)
{
	ovc_org_settings *s = &L->org->settings;
	const char *key = settings_keys[k].name;
	char b[72];

	switch (k) {
	case K_ORG:
		L->org_line = L->lineno;
		if (!ovc_ini_name_ok(value, strlen(value)))
			ERR(L, L->lineno, "bad org name '%s': names are 1-64 letters, digits, "
			    "'.', '_' or '-', starting with a letter or digit", shown(value, b));
		else
			set_str(L, &s->org, value);
		break;
	case K_REFRESH: set_duration(L, &s->refresh_interval_s, key, value, 0); break;
	case K_CACHE: set_duration(L, &s->cache_expiration_s, key, value, 0); break;
	case K_VALIDITY: set_duration(L, &s->policy_validity_s, key, value, 0); break;
	case K_AUTOLOCK: set_duration(L, &s->autolock_idle_s, key, value, 1); break;
	case K_MAY_DECRYPT: set_bool(L, &s->user_may_decrypt, key, value); break;
	case K_PERSISTENT: set_bool(L, &s->persistent_encryption, key, value); break;
	case K_PLAINTEXT:
		if (!strcmp(value, "convert"))
			s->plaintext_under_rule = OVC_PLAINTEXT_CONVERT;
		else if (!strcmp(value, "refuse"))
			s->plaintext_under_rule = OVC_PLAINTEXT_REFUSE;
		else if (!strcmp(value, "strict"))
			s->plaintext_under_rule = OVC_PLAINTEXT_STRICT;
		else
			ERR(L, L->lineno, "'plaintext_under_rule' must be convert, refuse or "
			    "strict, not '%s'", shown(value, b));
		break;
	}
}

static void apply_group(struct load *L, int k, const char *v, size_t len, int line)
{
	ovc_org_group *g = &L->org->groups[L->idx];

	if (k == KG_PARENTS)
		list_add(L, "parents", &g->parents, &g->parent_lines, &g->nparents, v, len, line);
	else if (k == KG_MEMBERS)
		list_add(L, "members", &g->members, &g->member_lines, &g->nmembers, v, len, line);
	else
		desc_add(L, &g->description, v, len);
}

static void apply_user(struct load *L, int k, const char *value)
{
	ovc_org_user *u = &L->org->users[L->idx];
	char b[72];

	if (k == KU_EMAIL) {
		if (email_ok(value))
			set_str(L, &u->email, value);
		else
			ERR(L, L->lineno, "bad e-mail address '%s' in %s", shown(value, b),
			    L->label);
	} else if (k == KU_RECIPIENT) {
		u->recipient_line = L->lineno;
		set_recipient(L, &u->recipient, &u->rcp, value);
	} else {
		desc_add(L, &u->description, value, strlen(value));
	}
}

static void apply_asset(struct load *L, int k, const char *v, size_t len, int line)
{
	ovc_org_asset *a = &L->org->assets[L->idx];
	char b[72];

	switch (k) {
	case KA_TYPE:
		a->type_line = line;
		if (ovc_rule_type_parse(v, &a->type))
			ERR(L, line, "'type' must be shared, private or public, not '%s'",
			    shown(v, b));
		break;
	case KA_PATH:
		a->path_line = line;
		set_str(L, &a->path, v);
		break;
	case KA_GROUPS:
		list_add(L, "groups", &a->groups, &a->group_lines, &a->ngroups, v, len, line);
		break;
	case KA_USERS:
		list_add(L, "users", &a->users, &a->user_lines, &a->nusers, v, len, line);
		break;
	default:
		desc_add(L, &a->description, v, len);
	}
}

static void apply_admin(struct load *L, const char *value)
{
	ovc_org_admin *a = &L->org->admins[L->idx];

	a->recipient_line = L->lineno;
	set_recipient(L, &a->recipient, &a->rcp, value);
}

/* One key's value. Lists and descriptions take the text as is; other keys
 * must not be empty. */
static void apply(struct load *L, int k, const char *value)
{
	size_t len = strlen(value);

	if (!keys_of(L->kind)[k].cont && len == 0) {
		ERR(L, L->lineno, "'%s' in %s is empty", keys_of(L->kind)[k].name, L->label);
		return;
	}
	switch (L->kind) {
	case SEC_SETTINGS: apply_settings(L, k, value); break;
	case SEC_GROUP: apply_group(L, k, value, len, L->lineno); break;
	case SEC_USER: apply_user(L, k, value); break;
	case SEC_ASSET: apply_asset(L, k, value, len, L->lineno); break;
	case SEC_ADMIN: apply_admin(L, value); break;
	default: break;
	}
}

/* More text for the key being continued (an indented line, or the rest of
 * a long line split at a comma). */
static void on_cont(void *ctx, const char *s, size_t len, int line)
{
	struct load *L = ctx;
	int k = L->cont_key;

	L->lineno = line;
	if (k < 0 || L->kind == SEC_NONE || L->kind == SEC_SKIP)
		return;
	if (!keys_of(L->kind)[k].cont) {
		ERR(L, line, "indented line after '%s' in %s: only lists and description "
		    "go on over several lines (remove the indentation)",
		    keys_of(L->kind)[k].name, L->label);
		L->cont_key = -2;
		return;
	}
	if (L->kind == SEC_GROUP)
		apply_group(L, k, s, len, line);
	else if (L->kind == SEC_ASSET)
		apply_asset(L, k, s, len, line);
	else
		desc_add(L, &L->org->users[L->idx].description, s, len);
}

/* The reader's key callback: one key line, `name` and `value` trimmed by
 * inih. */
static void on_key(void *ctx, const char *name, const char *value, int line)
{
	struct load *L = ctx;
	int k;
	char b[72];

	L->lineno = line;
	L->cont_key = -2;
	if (L->kind == SEC_NONE) {
		ERR(L, L->lineno, "'%s' comes before any section (start with [settings])",
		    shown(name, b));
		return;
	}
	if (L->kind == SEC_SKIP)
		return;
	k = key_find(L->kind, name, strlen(name));
	if (!*name) {
		ERR(L, L->lineno, "no key name before '=' in %s", L->label);
		return;
	}
	if (k < 0) {
		ERR(L, L->lineno, "unknown key '%s' in %s", shown(name, b), L->label);
		return;
	}
	if (L->key_line[k]) {
		ERR(L, L->lineno, "duplicate key '%s' in %s (first at line %d)", name, L->label,
		    L->key_line[k]);
		return;
	}
	L->key_line[k] = L->lineno;
	L->cont_key = k;
	apply(L, k, value);
}

/* Start a section of `kind` named `name` (NUL-terminated, trimmed). */
static void section_start(struct load *L, enum sec_kind kind, const char *word,
			  const char *name)
{
	ovc_org *o = L->org;
	char b[72];
	int rc = 0;

	L->kind = SEC_SKIP;
	if (kind == SEC_SETTINGS) {
		if (*name)
			ERR(L, L->lineno, "[settings] takes no name");
		else if (L->settings_line)
			ERR(L, L->lineno, "duplicate section [settings] (first at line %d)",
			    L->settings_line);
		else {
			L->settings_line = L->lineno;
			L->kind = SEC_SETTINGS;
		}
		snprintf(L->label, sizeof(L->label), "[settings]");
		return;
	}
	if (!*name) {
		ERR(L, L->lineno, "section [%s] needs a name: [%s NAME]", word, word);
		return;
	}
	if (!ovc_ini_name_ok(name, strlen(name))) {
		ERR(L, L->lineno, "bad name '%s' in [%s ...]: names are 1-64 letters, digits, "
		    "'.', '_' or '-', starting with a letter or digit", shown(name, b), word);
		return;
	}
	switch (kind) {
	case SEC_GROUP:
		rc = grow(&o->groups, o->ngroups, sizeof(*o->groups));
		if (!rc && !(o->groups[o->ngroups].name = strdup(name)))
			rc = -ENOMEM;
		if (!rc) {
			o->groups[o->ngroups].line = L->lineno;
			L->idx = o->ngroups++;
		}
		break;
	case SEC_USER:
		rc = grow(&o->users, o->nusers, sizeof(*o->users));
		if (!rc && !(o->users[o->nusers].name = strdup(name)))
			rc = -ENOMEM;
		if (!rc) {
			o->users[o->nusers].line = L->lineno;
			L->idx = o->nusers++;
		}
		break;
	case SEC_ASSET:
		rc = grow(&o->assets, o->nassets, sizeof(*o->assets));
		if (!rc && !(o->assets[o->nassets].name = strdup(name)))
			rc = -ENOMEM;
		if (!rc) {
			o->assets[o->nassets].line = L->lineno;
			L->idx = o->nassets++;
		}
		break;
	default:
		rc = grow(&o->admins, o->nadmins, sizeof(*o->admins));
		if (!rc && !(o->admins[o->nadmins].name = strdup(name)))
			rc = -ENOMEM;
		if (!rc) {
			o->admins[o->nadmins].line = L->lineno;
			L->idx = o->nadmins++;
		}
		break;
	}
	if (rc)
		return oom(L);
	L->kind = kind;
	snprintf(L->label, sizeof(L->label), "[%s %s]", word, name);
}

/* A section header: `inner` is the text between '[' and ']' ([inner,
 * inner+n), untrimmed), NULL when the reader refused the header. */
static void on_section(void *ctx, const char *inner, size_t n, int line)
{
	struct load *L = ctx;
	static const struct { const char *w; enum sec_kind k; } kinds[] = {
		{ "settings", SEC_SETTINGS }, { "group", SEC_GROUP }, { "user", SEC_USER },
		{ "asset", SEC_ASSET }, { "admin", SEC_ADMIN } };
	const char *t;
	char in[160], word[16], b[72];
	size_t wl;

	L->lineno = line;
	memset(L->key_line, 0, sizeof(L->key_line));
	L->cont_key = -1;
	L->kind = SEC_SKIP;
	if (!inner)
		return;
	if (n >= sizeof(in)) {
		ERR(L, L->lineno, "section header too long (names are at most 64 characters)");
		return;
	}
	memcpy(in, inner, n);
	in[n] = '\0';
	t = in;
	while (isspace((unsigned char)*t))
		t++;
	for (wl = 0; t[wl] && !isspace((unsigned char)t[wl]); wl++)
		;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strlen(kinds[i].w) == wl && !memcmp(kinds[i].w, t, wl)) {
			char *name = strndup_trim(t + wl, strlen(t + wl));

			if (!name)
				return oom(L);
			memcpy(word, t, wl);
			word[wl] = '\0';
			section_start(L, kinds[i].k, word, name);
			free(name);
			return;
		}
	}
	ERR(L, L->lineno, "unknown section [%s] (sections are [settings], [group NAME], "
	    "[user NAME], [asset NAME] and [admin NAME])", shown(in, b));
}

/* The reader's error callback (common/ini.h): a fault it found. */
static void on_error(void *ctx, int line, const char *msg)
{
	ERR((struct load *)ctx, line, "%s", msg);
}

/* Only lists and description may be split at a comma. */
static int on_splittable(void *ctx, const char *name, size_t len)
{
	struct load *L = ctx;
	int k = key_find(L->kind, name, len);

	return k >= 0 && keys_of(L->kind)[k].cont;
}

static const ovc_ini_ops org_ini = {
	.flags = OVC_INI_CONTINUATION | OVC_INI_SPLIT_LISTS | OVC_INI_HEADER_LAX,
	.long_hint = " (split a list over indented continuation lines)",
	.error = on_error,
	.section = on_section,
	.key = on_key,
	.cont = on_cont,
	.splittable = on_splittable,
};

/* What a finished file must have. */
static void load_finish(struct load *L)
{
	ovc_org *o = L->org;

	if (!L->settings_line)
		ERR(L, 0, "no [settings] section (it needs at least 'org = NAME')");
	else if (!L->org_line)
		ERR(L, L->settings_line, "[settings] has no 'org'");
	for (size_t i = 0; i < o->nassets; i++) {
		if (!o->assets[i].type_line)
			ERR(L, o->assets[i].line, "asset '%s' has no 'type'", o->assets[i].name);
		if (!o->assets[i].path_line)
			ERR(L, o->assets[i].line, "asset '%s' has no 'path'", o->assets[i].name);
	}
	for (size_t i = 0; i < o->nadmins; i++)
		if (!o->admins[i].recipient_line)
			ERR(L, o->admins[i].line, "admin '%s' has no recipient",
			    o->admins[i].name);
}

static int line_of(const ovc_org *o, enum sec_kind k, size_t i)
{
	switch (k) {
	case SEC_GROUP: return o->groups[i].line;
	case SEC_USER: return o->users[i].line;
	case SEC_ASSET: return o->assets[i].line;
	default: return o->admins[i].line;
	}
}

/* Report the second and later section of each name in the sorted `v`. */
static void dups(struct load *L, const struct nref *v, size_t n, enum sec_kind k,
		 const char *word)
{
	for (size_t i = 1; i < n; i++) {
		size_t first = i - 1;

		if (strcmp(v[i].name, v[i - 1].name))
			continue;
		while (first > 0 && !strcmp(v[first - 1].name, v[i].name))
			first--;
		ERR(L, line_of(L->org, k, v[i].i), "duplicate section [%s %s] (first at line %d)",
		    word, v[i].name, line_of(L->org, k, v[first].i));
	}
}

static void org_defaults(ovc_org_settings *s)
{
	s->refresh_interval_s = 900;
	s->cache_expiration_s = 604800;
	s->policy_validity_s = 1209600;
	s->autolock_idle_s = 0;
	s->user_may_decrypt = 0;
	s->persistent_encryption = 1;
	s->plaintext_under_rule = OVC_PLAINTEXT_CONVERT;
}

static void group_free(ovc_org_group *g)
{
	free(g->name);
	for (size_t i = 0; i < g->nparents; i++)
		free(g->parents[i]);
	for (size_t i = 0; i < g->nmembers; i++)
		free(g->members[i]);
	free(g->parents);
	free(g->members);
	free(g->parent_lines);
	free(g->member_lines);
	free(g->description);
}

static void asset_free(ovc_org_asset *a)
{
	free(a->name);
	free(a->path);
	for (size_t i = 0; i < a->ngroups; i++)
		free(a->groups[i]);
	for (size_t i = 0; i < a->nusers; i++)
		free(a->users[i]);
	free(a->groups);
	free(a->users);
	free(a->group_lines);
	free(a->user_lines);
	free(a->description);
}

void ovc_org_free(ovc_org *org)
{
	if (!org)
		return;
	index_free(org->index, org);
	for (size_t i = 0; i < org->ngroups; i++)
		group_free(&org->groups[i]);
	for (size_t i = 0; i < org->nusers; i++) {
		free(org->users[i].name);
		free(org->users[i].email);
		free(org->users[i].recipient);
		free(org->users[i].description);
	}
	for (size_t i = 0; i < org->nassets; i++)
		asset_free(&org->assets[i]);
	for (size_t i = 0; i < org->nadmins; i++) {
		free(org->admins[i].name);
		free(org->admins[i].recipient);
	}
	free(org->groups);
	free(org->users);
	free(org->assets);
	free(org->admins);
	free(org->settings.org);
	free(org->file);
	free(org);
}

/* Index the loaded org; duplicate sections are errors found here. */
static void load_index(struct load *L)
{
	ovc_org *o = L->org;
	struct ovc_org_index *x;

	if (index_build(o))
		return oom(L);
	x = o->index;
	dups(L, x->groups, o->ngroups, SEC_GROUP, "group");
	dups(L, x->users, o->nusers, SEC_USER, "user");
	dups(L, x->assets, o->nassets, SEC_ASSET, "asset");
	dups(L, x->admins, o->nadmins, SEC_ADMIN, "admin");
	if (!L->nerr && index_memberships(o))
		oom(L);
}

int ovc_org_load_mem(const char *text, size_t len, const char *name,
		     ovc_org **out, ovc_diag *d)
{
	struct load L;
	int rc;

	*out = NULL;
	memset(&L, 0, sizeof(L));
	L.d = d;
	L.cont_key = -1;
	L.org = calloc(1, sizeof(*L.org));
	if (!L.org)
		return -ENOMEM;
	org_defaults(&L.org->settings);
	L.org->file = strdup(name ? name : "org.conf");
	if (!L.org->file) {
		rc = -ENOMEM;
		goto out;
	}
	rc = ovc_ini_parse(text, len, &org_ini, &L);
	if (rc == -ENOMEM)
		oom(&L);
	else if (rc != 0 && !L.nerr) /* inih saw a fault we did not (cannot be) */
		ERR(&L, 0, "syntax error");
	load_finish(&L);
	if (!L.oom)
		load_index(&L);
	rc = L.oom ? -ENOMEM : L.nerr ? -EINVAL : 0;
out:
	if (rc) {
		ovc_org_free(L.org);
		return rc;
	}
	*out = L.org;
	return 0;
}

int ovc_org_load(const char *path, ovc_org **out, ovc_diag *d)
{
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	*out = NULL;
	rc = ovc_read_file(path, OVC_ORG_MAX_BYTES, 0, &buf, &len);
	if (rc) {
		if (rc == -EFBIG)
			ovc_diag_add(d, path, 0, "larger than %u bytes", OVC_ORG_MAX_BYTES);
		else
			ovc_diag_add(d, path, 0, "cannot read: %s", strerror(-rc));
		return rc;
	}
	rc = ovc_org_load_mem((const char *)buf, len, path, out, d);
	free(buf);
	return rc;
}

/* ---------------------------------------------------------------------------
 * Lookups and memberships.
 */

const ovc_org_user *ovc_org_find_user(const ovc_org *org, const char *name)
{
	size_t i;

	if (!org || !name)
		return NULL;
	if (org->index) {
		i = nref_find(org->index->users, org->nusers, name);
		return i == SIZE_MAX ? NULL : &org->users[i];
	}
	for (i = 0; i < org->nusers; i++)
		if (!strcmp(org->users[i].name, name))
			return &org->users[i];
	return NULL;
}

const ovc_org_asset *ovc_org_find_asset(const ovc_org *org, const char *name)
{
	size_t i;

	if (!org || !name)
		return NULL;
	if (org->index) {
		i = nref_find(org->index->assets, org->nassets, name);
		return i == SIZE_MAX ? NULL : &org->assets[i];
	}
	for (i = 0; i < org->nassets; i++)
		if (!strcmp(org->assets[i].name, name))
			return &org->assets[i];
	return NULL;
}

const ovc_org_group *ovc_org_find_group(const ovc_org *org, const char *name)
{
	size_t i;

	if (!org || !name)
		return NULL;
	if (org->index) {
		i = nref_find(org->index->groups, org->ngroups, name);
		return i == SIZE_MAX ? NULL : &org->groups[i];
	}
	for (i = 0; i < org->ngroups; i++)
		if (!strcmp(org->groups[i].name, name))
			return &org->groups[i];
	return NULL;
}

static int in_closure(const struct ilist *c, size_t g)
{
	/* an empty list has no array (and bsearch() wants one) */
	return c->n && bsearch(&g, c->v, c->n, sizeof(*c->v), size_cmp) != NULL;
}

int ovc_org_user_in_group(const ovc_org *org, const char *user, const char *group)
{
	size_t u, g;

	if (!org || !org->index)
		return 0;
	u = nref_find(org->index->users, org->nusers, user);
	g = nref_find(org->index->groups, org->ngroups, group);
	if (u == SIZE_MAX || g == SIZE_MAX)
		return 0;
	return in_closure(&org->index->closure[u], g);
}

static int user_gets(const ovc_org *org, size_t u, size_t a)
{
	const struct ovc_org_index *x = org->index;

	for (size_t i = 0; i < x->ausers[a].n; i++)
		if (x->ausers[a].v[i] == u)
			return 1;
	for (size_t i = 0; i < x->agroups[a].n; i++)
		if (in_closure(&x->closure[u], x->agroups[a].v[i]))
			return 1;
	return 0;
}

int ovc_org_user_assets(const ovc_org *org, const char *user,
			const ovc_org_asset ***out, size_t *n)
{
	const ovc_org_asset **v;
	size_t u, k = 0;

	*out = NULL;
	*n = 0;
	if (!org || !org->index)
		return -EINVAL;
	u = nref_find(org->index->users, org->nusers, user);
	if (u == SIZE_MAX)
		return -ENOENT;
	v = calloc(org->nassets + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t a = 0; a < org->nassets; a++)
		if (user_gets(org, u, a))
			v[k++] = &org->assets[a];
	*out = v;
	*n = k;
	return 0;
}

/* ---------------------------------------------------------------------------
 * Checks.
 */

struct chk {
	const ovc_org *org;
	ovc_diag *d;
	int nerr, oom;
};

static void chk_err(struct chk *c, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void chk_err(struct chk *c, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->nerr++;
	if (ovc_diag_add(c->d, c->org->file, line, "%s", msg))
		c->oom = 1;
}

static int item_line(const int *lines, size_t i, int fallback)
{
	return lines ? lines[i] : fallback;
}

static void check_groups(struct chk *c)
{
	const ovc_org *o = c->org;

	for (size_t g = 0; g < o->ngroups; g++) {
		const ovc_org_group *gr = &o->groups[g];

		for (size_t i = 0; i < gr->nparents; i++)
			if (!ovc_org_find_group(o, gr->parents[i]))
				chk_err(c, item_line(gr->parent_lines, i, gr->line),
					"group '%s' has unknown parent group '%s'", gr->name,
					gr->parents[i]);
		for (size_t i = 0; i < gr->nmembers; i++) {
			if (ovc_org_find_user(o, gr->members[i]))
				continue;
			if (ovc_org_find_group(o, gr->members[i]))
				chk_err(c, item_line(gr->member_lines, i, gr->line),
					"group '%s' has unknown member '%s': members are users; "
					"to nest a group write 'parents = %s' in [group %s]",
					gr->name, gr->members[i], gr->name, gr->members[i]);
			else
				chk_err(c, item_line(gr->member_lines, i, gr->line),
					"group '%s' has unknown member '%s' (no [user %s])",
					gr->name, gr->members[i], gr->members[i]);
		}
	}
}

/* Report the cycle stack[from..top] (each a parent of the one before, the
 * last a child of stack[from]), starting at the group first in org.conf. */
static void cycle_report(struct chk *c, const size_t *stack, size_t from, size_t top)
{
	const ovc_org *o = c->org;
	size_t n = top - from + 1, start = from, len = 0;
	char msg[768];

	for (size_t i = from; i <= top; i++)
		if (stack[i] < stack[start])
			start = i;
	msg[0] = '\0';
	for (size_t k = 0; k <= n; k++) {
		size_t g = stack[from + (start - from + k) % n];
		int w = snprintf(msg + len, sizeof(msg) - len, "%s'%s'", k ? " -> " : "",
				 o->groups[g].name);

		if (w < 0 || (size_t)w >= sizeof(msg) - len) {
			memcpy(msg + sizeof(msg) - 5, " ...", 5);
			break;
		}
		len += (size_t)w;
	}
	chk_err(c, o->groups[stack[start]].line, "cycle of parents: %s", msg);
}

/* Depth-first over parent links, without recursion: `state` 0 unseen,
 * 1 on the stack, 2 done; `pos` the stack position of a group on it. */
static void check_cycles(struct chk *c)
{
	const ovc_org *o = c->org;
	const struct ovc_org_index *x = o->index;
	size_t n = o->ngroups;
	size_t *stack = calloc(n + 1, sizeof(*stack)), *next = calloc(n + 1, sizeof(*next));
	size_t *pos = calloc(n + 1, sizeof(*pos));
	unsigned char *state = calloc(n + 1, 1);

	if (!stack || !next || !pos || !state) {
		c->oom = 1;
		goto out;
	}
	for (size_t root = 0; root < n; root++) {
		size_t top = 0;

		if (state[root])
			continue;
		stack[0] = root;
		state[root] = 1;
		next[root] = 0;
		for (;;) {
			size_t g = stack[top], p;

			if (next[g] == x->parents[g].n) {
				state[g] = 2;
				if (top-- == 0)
					break;
				continue;
			}
			p = x->parents[g].v[next[g]++];
			if (state[p] == 1) {
				cycle_report(c, stack, pos[p], top);
			} else if (state[p] == 0) {
				state[p] = 1;
				next[p] = 0;
				stack[++top] = p;
				pos[p] = top;
			}
		}
	}
out:
	free(stack);
	free(next);
	free(pos);
	free(state);
}

static void check_refs(struct chk *c, const ovc_org_asset *a)
{
	const ovc_org *o = c->org;

	for (size_t i = 0; i < a->ngroups; i++)
		if (!ovc_org_find_group(o, a->groups[i]))
			chk_err(c, item_line(a->group_lines, i, a->line),
				"asset '%s' names unknown group '%s'", a->name, a->groups[i]);
	for (size_t i = 0; i < a->nusers; i++)
		if (!ovc_org_find_user(o, a->users[i]))
			chk_err(c, item_line(a->user_lines, i, a->line),
				"asset '%s' names unknown user '%s'", a->name, a->users[i]);
}

/* One asset's place, for comparing folders. */
struct place {
	char *folder;   /* "/srv/x", or "smb://host/share/dir" */
	char *pattern;
	int any;
	size_t asset;
};

static int place_cmp(const void *a, const void *b)
{
	const struct place *x = a, *y = b;
	int r = strcmp(x->folder, y->folder);

	if (r)
		return r;
	return x->asset < y->asset ? -1 : x->asset > y->asset;
}

/* Check an asset's path; on success fill `pl` (strings malloc()ed). */
static int check_path(struct chk *c, const ovc_org_asset *a, ovc_rule_path *rp,
		      struct place *pl)
{
	int line = a->path_line ? a->path_line : a->line;
	const char *sys;
	char b[72];
	ovc_err e;

	if (!a->path)
		return -EINVAL; /* the loader reported it */
	ovc_err_clear(&e);
	if (ovc_rule_path_parse(a->path, rp, &e)) {
		chk_err(c, line, "asset '%s': path '%s': %s", a->name, shown(a->path, b), e.msg);
		return -EINVAL;
	}
	if (!strchr(rp->pattern, '*')) {
		chk_err(c, line, "asset '%s': path '%s' does not end in '/': a folder is "
			"written with a '/' at the end, a pattern as in '*.docx'", a->name,
			shown(a->path, b));
		return -EINVAL;
	}
	if (!rp->smb && (sys = ovc_rule_system_folder(rp->folder))) {
		chk_err(c, line, "asset '%s': path '%s' is %sthe system folder %s", a->name,
			shown(a->path, b), strcmp(sys, rp->folder) ? "inside " : "", sys);
		return -EINVAL;
	}
	if (rp->smb) {
		if (asprintf(&pl->folder, "smb://%s/%s%s%s", rp->host, rp->share,
			     *rp->folder ? "/" : "", rp->folder) < 0)
			pl->folder = NULL;
	} else {
		pl->folder = strdup(rp->folder);
	}
	pl->pattern = strdup(rp->pattern);
	pl->any = rp->any;
	if (!pl->folder || !pl->pattern) {
		c->oom = 1;
		return -ENOMEM;
	}
	return 0;
}

static int is_public(const ovc_org *o, const struct place *p)
{
	return o->assets[p->asset].type == OVC_RULE_PUBLIC;
}

/* Two assets on one folder: `p` first in org.conf, `q` later. */
static void check_pair(struct chk *c, const struct place *p, const struct place *q)
{
	const ovc_org *o = c->org;
	const ovc_org_asset *a = &o->assets[p->asset], *b = &o->assets[q->asset];
	int line = b->path_line ? b->path_line : b->line;
	int overlap = ovc_rule_patterns_overlap(p->pattern, q->pattern);

	if (!is_public(o, p) && !is_public(o, q))
		chk_err(c, line, "assets '%s' (line %d) and '%s' are both encryption assets "
			"on the folder %s: a folder takes one", a->name, a->path_line,
			b->name, p->folder);
	else if (overlap && ((!p->any && !q->any) || (is_public(o, p) && is_public(o, q))))
		chk_err(c, line, "assets '%s' (line %d) and '%s' on the folder %s have "
			"patterns %s and %s that can match one name", a->name, a->path_line,
			b->name, p->folder, p->pattern, q->pattern);
}

static void check_folders(struct chk *c, struct place *pl, size_t n)
{
	qsort(pl, n, sizeof(*pl), place_cmp);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n && !strcmp(pl[i].folder, pl[j].folder); j++)
			check_pair(c, &pl[i], &pl[j]);
}

static void check_assets(struct chk *c, const ovc_org_known_asset *known, size_t nknown)
{
	const ovc_org *o = c->org;
	ovc_rule_path *rp = malloc(sizeof(*rp));
	struct place *pl = calloc(o->nassets + 1, sizeof(*pl));
	size_t npl = 0;

	if (!rp || !pl) {
		c->oom = 1;
		goto out;
	}
	for (size_t i = 0; i < o->nassets; i++) {
		check_refs(c, &o->assets[i]);
		pl[npl].asset = i;
		if (check_path(c, &o->assets[i], rp, &pl[npl]) == 0)
			npl++;
		else {
			free(pl[npl].folder);
			free(pl[npl].pattern);
			pl[npl].folder = pl[npl].pattern = NULL;
		}
	}
	check_folders(c, pl, npl);
	for (size_t k = 0; known && k < nknown; k++) {
		const ovc_org_asset *a = ovc_org_find_asset(o, known[k].name);

		if (a && a->type && a->type != known[k].type)
			chk_err(c, a->type_line ? a->type_line : a->line,
				"asset '%s' is %s but was created %s: an asset's type is fixed "
				"(delete it and create a new asset instead)", a->name,
				ovc_rule_type_name(a->type), ovc_rule_type_name(known[k].type));
	}
out:
	for (size_t i = 0; pl && i < npl; i++) {
		free(pl[i].folder);
		free(pl[i].pattern);
	}
	free(pl);
	free(rp);
}

int ovc_org_check(const ovc_org *org, const ovc_org_known_asset *known,
		  size_t nknown, ovc_diag *d)
{
	struct chk c = { .org = org, .d = d };

	if (!org || !org->index)
		return -EINVAL;
	check_groups(&c);
	check_cycles(&c);
	check_assets(&c, known, nknown);
	for (size_t i = 0; i < org->nusers; i++)
		if (!org->users[i].recipient)
			chk_err(&c, org->users[i].line, "user '%s' has no recipient",
				org->users[i].name);
	if (!org->nadmins)
		chk_err(&c, 0, "no [admin] section: add [admin NAME] with the recipient "
			"of an administrator");
	if (c.oom)
		return -ENOMEM;
	return c.nerr ? -EINVAL : 0;
}
