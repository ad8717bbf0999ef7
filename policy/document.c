/*
 * document.c - the per-user policy document (overcrypt-policy/1), its
 * canonical text and its keys blob. docs/policy-format.md is normative;
 * document.h states the contracts.
 *
 * Parsing runs in three passes over one cJSON tree: a generic walk that
 * pairs every cJSON node with its token in the text (cJSON keeps neither
 * the text of a number nor the duplicates' positions) to refuse duplicate
 * members, numbers that are not plain non-negative integers, and strings
 * holding control characters or \u0000; then the schema (members, types,
 * ranges), each error naming the member; then cross-rule checks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "policy/document.h"
#include "policy/orgconf.h"

/* Settings are durations as org.conf states them: the client accepts
 * exactly what the admin tool can publish. */
_Static_assert(OVC_POLICY_DURATION_MAX_S == OVC_DURATION_MAX_S,
	       "document and org.conf duration limits differ");

#define NAME_MAX_LEN 64
#define PATH_TEXT_MAX 200 /* member path in messages: "rules[12].key_id" */

/* ---------------------------------------------------------------------------
 * Times: "YYYY-MM-DDTHH:MM:SSZ", years 1970..9999.
 */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + (int64_t)doe - 719468;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
	static const unsigned char dm[12] = { 31, 28, 31, 30, 31, 30,
					      31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return dm[m - 1] + (m == 2 && leap);
}

/* `n` decimal digits at `s`, or -1. */
static int digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int ovc_time_parse(const char *s, time_t *out)
{
	int y, mo, d, h, mi, se;

	if (!s || !out || strlen(s) != 20 || s[4] != '-' || s[7] != '-' ||
	    s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z')
		return -EINVAL;
	y = digits(s, 4);
	mo = digits(s + 5, 2);
	d = digits(s + 8, 2);
	h = digits(s + 11, 2);
	mi = digits(s + 14, 2);
	se = digits(s + 17, 2);
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 ||
	    (unsigned)d > days_in_month((unsigned)y, (unsigned)mo) || h < 0 ||
	    h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59)
		return -EINVAL;
	*out = (time_t)(days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
			h * 3600 + mi * 60 + se);
	return 0;
}

/* `n` decimal digits of `v` (already in range) at `s`. */
static void put_digits(char *s, int n, unsigned v)
{
	for (int i = n - 1; i >= 0; i--, v /= 10)
		s[i] = (char)('0' + v % 10);
}

void ovc_time_format(time_t t, char out[21])
{
	struct tm tm;

	memcpy(out, "1970-01-01T00:00:00Z", 21);

	if (t < 0)
		t = 0;
	if (t > OVC_TIME_MAX)
		t = OVC_TIME_MAX;
	if (!gmtime_r(&t, &tm))
		return;
	put_digits(out, 4, (unsigned)(tm.tm_year + 1900));
	put_digits(out + 5, 2, (unsigned)(tm.tm_mon + 1));
	put_digits(out + 8, 2, (unsigned)tm.tm_mday);
	put_digits(out + 11, 2, (unsigned)tm.tm_hour);
	put_digits(out + 14, 2, (unsigned)tm.tm_min);
	put_digits(out + 17, 2, (unsigned)tm.tm_sec);
}

/* ---------------------------------------------------------------------------
 * The token walk: pairs each cJSON node with its token in the text.
 */
enum tok_kind { TOK_NONE, TOK_STRING, TOK_NUMBER };

struct scan {
	const char *p, *end;
};

/* The next string or number token (a string without its quotes). The text
 * has already been accepted by cJSON, so only strings and numbers need
 * telling apart from structure and literals. */
static enum tok_kind next_token(struct scan *s, const char **t, size_t *n)
{
	while (s->p < s->end) {
		const char *start = s->p;
		char c = *s->p;

		if (c == '"') {
			for (s->p++; s->p < s->end && *s->p != '"'; s->p++)
				if (*s->p == '\\')
					s->p++;
			*t = start + 1;
			*n = (size_t)(s->p - start - 1);
			s->p++;
			return TOK_STRING;
		}
		if (c == '-' || (c >= '0' && c <= '9')) {
			while (s->p < s->end && *s->p && strchr("0123456789+-.eE", *s->p))
				s->p++;
			*t = start;
			*n = (size_t)(s->p - start);
			return TOK_NUMBER;
		}
		s->p++;
	}
	return TOK_NONE;
}

struct walk {
	struct scan sc;
	char path[PATH_TEXT_MAX];
	ovc_err *e;
};

/* "where" for a message: the member path, or "document" at the top. */
static const char *where(const struct walk *w)
{
	return w->path[0] ? w->path : "document";
}

/* A raw string token: no control characters, no \u0000 (cJSON would cut
 * the C string there, so "format\u0000x" would read as "format"). */
static int check_string_tok(struct walk *w, const char *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];

		if (c < 0x20)
			return ovc_err_set(w->e, -EINVAL,
					   "%s: control character in a string",
					   where(w));
		if (c == '\\' && i + 1 < n) {
			if (t[i + 1] == 'u' && i + 5 < n &&
			    memcmp(t + i + 2, "0000", 4) == 0)
				return ovc_err_set(w->e, -EINVAL,
						   "%s: \\u0000 in a string",
						   where(w));
			i++;
		}
	}
	return 0;
}

/* Numbers in this format are non-negative integers written plainly. */
static int check_number_tok(struct walk *w, const char *t, size_t n)
{
	if (n && t[0] == '-')
		return ovc_err_set(w->e, -EINVAL, "%s: negative", where(w));
	for (size_t i = 0; i < n; i++)
		if (t[i] < '0' || t[i] > '9')
			return ovc_err_set(w->e, -EINVAL, "%s: not an integer",
					   where(w));
	if (n == 0 || (n > 1 && t[0] == '0'))
		return ovc_err_set(w->e, -EINVAL, "%s: not a plain integer",
				   where(w));
	return 0;
}

static int expect_tok(struct walk *w, enum tok_kind want, const char **t,
		      size_t *n)
{
	if (next_token(&w->sc, t, n) != want)
		return ovc_err_set(w->e, -EINVAL, "%s: token mismatch",
				   where(w));
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;

	return strcmp(x->string, y->string);
}

/* Duplicate member names in one object (cJSON keeps both): sorted, so a
 * large object costs n log n. */
static int check_duplicates(struct walk *w, const cJSON *obj)
{
	const cJSON *m, **v;
	size_t n = 0, i;
	int rc = 0;

	for (m = obj->child; m; m = m->next)
		n++;
	if (n < 2)
		return 0;
	v = malloc(n * sizeof(*v));
	if (!v)
		return ovc_err_set(w->e, -ENOMEM, "out of memory");
	for (i = 0, m = obj->child; m; m = m->next)
		v[i++] = m;
	qsort(v, n, sizeof(*v), name_cmp);
	for (i = 1; i < n && !rc; i++)
		if (strcmp(v[i - 1]->string, v[i]->string) == 0)
			rc = ovc_err_set(w->e, -EINVAL,
					 "%s%s%.64s: duplicate member",
					 w->path, w->path[0] ? "." : "",
					 v[i]->string);
	free(v);
	return rc;
}

/* Append ".name", "name" (at the top) or "[i]" to the path; returns the
 * old length to restore. Truncated paths are fine: they are for people. */
static size_t path_push(struct walk *w, const char *name, size_t idx)
{
	size_t len = strlen(w->path), room = sizeof(w->path) - len;

	if (name)
		snprintf(w->path + len, room, "%s%.64s", len ? "." : "", name);
	else
		snprintf(w->path + len, room, "[%zu]", idx);
	return len;
}

static int walk_value(struct walk *w, const cJSON *v);

static int walk_children(struct walk *w, const cJSON *v, int object)
{
	const cJSON *c;
	const char *t;
	size_t n, i = 0, old;
	int rc = 0;

	if (object)
		rc = check_duplicates(w, v);
	for (c = v->child; c && !rc; c = c->next, i++) {
		old = path_push(w, object ? c->string : NULL, i);
		if (object) {
			rc = expect_tok(w, TOK_STRING, &t, &n);
			if (!rc)
				rc = check_string_tok(w, t, n);
		}
		if (!rc)
			rc = walk_value(w, c);
		w->path[old] = '\0';
	}
	return rc;
}

static int walk_value(struct walk *w, const cJSON *v)
{
	const char *t;
	size_t n;
	int rc;

	if (cJSON_IsObject(v) || cJSON_IsArray(v))
		return walk_children(w, v, cJSON_IsObject(v));
	if (cJSON_IsString(v)) {
		rc = expect_tok(w, TOK_STRING, &t, &n);
		return rc ? rc : check_string_tok(w, t, n);
	}
	if (cJSON_IsNumber(v)) {
		rc = expect_tok(w, TOK_NUMBER, &t, &n);
		return rc ? rc : check_number_tok(w, t, n);
	}
	return 0; /* true, false, null: no token of interest */
}

/* ---------------------------------------------------------------------------
 * Schema helpers. `pre` is the member path prefix ("", "settings.",
 * "rules[3].").
 */

static int get_member(const cJSON *obj, const char *name, const char *pre,
		      const cJSON **out, ovc_err *e)
{
	*out = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!*out)
		return ovc_err_set(e, -EINVAL, "%s%s: missing", pre, name);
	return 0;
}

static int get_string(const cJSON *obj, const char *name, const char *pre,
		      const char **out, ovc_err *e)
{
	const cJSON *m;
	int rc = get_member(obj, name, pre, &m, e);

	if (rc)
		return rc;
	if (!cJSON_IsString(m) || !m->valuestring)
		return ovc_err_set(e, -EINVAL, "%s%s: not a string", pre, name);
	*out = m->valuestring;
	return 0;
}

/* An integer in lo..hi. The walk has already checked that the text is a
 * plain non-negative integer; every accepted value is below 2^53, so the
 * double cJSON holds is exact. */
static int get_uint(const cJSON *obj, const char *name, const char *pre,
		    uint64_t lo, uint64_t hi, uint64_t *out, ovc_err *e)
{
	const cJSON *m;
	int rc = get_member(obj, name, pre, &m, e);

	if (rc)
		return rc;
	if (!cJSON_IsNumber(m))
		return ovc_err_set(e, -EINVAL, "%s%s: not a number", pre, name);
	if (!(m->valuedouble >= (double)lo && m->valuedouble <= (double)hi))
		return ovc_err_set(e, -EINVAL, "%s%s: not in %llu..%llu", pre,
				   name, (unsigned long long)lo,
				   (unsigned long long)hi);
	*out = (uint64_t)m->valuedouble;
	return 0;
}

static int get_bool(const cJSON *obj, const char *name, const char *pre,
		    int *out, ovc_err *e)
{
	const cJSON *m;
	int rc = get_member(obj, name, pre, &m, e);

	if (rc)
		return rc;
	if (!cJSON_IsBool(m))
		return ovc_err_set(e, -EINVAL, "%s%s: not true or false", pre,
				   name);
	*out = cJSON_IsTrue(m) ? 1 : 0;
	return 0;
}

static int get_time(const cJSON *obj, const char *name, time_t *out,
		    ovc_err *e)
{
	const char *s;
	int rc = get_string(obj, name, "", &s, e);

	if (rc)
		return rc;
	if (ovc_time_parse(s, out) != 0)
		return ovc_err_set(e, -EINVAL,
				   "%s: not a time like 2026-11-22T10:00:00Z",
				   name);
	return 0;
}

/* Names (org, user, asset): 1..64 of [A-Za-z0-9._-], starting with a
 * letter or digit, as org.conf has them. The user name becomes a file
 * name (<user>.json). */
static int name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
			return 0;
	}
	return 1;
}

static int get_name(const cJSON *obj, const char *name, const char *pre,
		    char **out, ovc_err *e)
{
	const char *s;
	int rc = get_string(obj, name, pre, &s, e);

	if (rc)
		return rc;
	if (!name_ok(s))
		return ovc_err_set(e, -EINVAL,
				   "%s%s: not a name (1-64 of A-Z a-z 0-9 . _ -, "
				   "starting with a letter or digit)", pre, name);
	*out = strdup(s);
	return *out ? 0 : ovc_err_set(e, -ENOMEM, "out of memory");
}

/* ---------------------------------------------------------------------------
 * Settings.
 */
static const char *const settings_members[] = {
	"refresh_interval_s", "cache_expiration_s", "user_may_decrypt",
	"persistent_encryption", "autolock_idle_s", "plaintext_under_rule",
	NULL
};

static const char *const plaintext_names[] = { "convert", "refuse", "strict" };

static int parse_plaintext_mode(const char *s, enum ovc_plaintext_mode *out)
{
	for (size_t i = 0; i < 3; i++)
		if (strcmp(s, plaintext_names[i]) == 0) {
			*out = (enum ovc_plaintext_mode)i;
			return 0;
		}
	return -EINVAL;
}

static int parse_settings(const cJSON *root, ovc_policy_settings *st,
			  ovc_err *e)
{
	static const char pre[] = "settings.";
	const cJSON *o;
	const char *mode;
	int rc = get_member(root, "settings", "", &o, e);

	if (rc)
		return rc;
	if (!cJSON_IsObject(o))
		return ovc_err_set(e, -EINVAL, "settings: not an object");
	rc = ovc_json_check_members(o, settings_members, pre, e);
	if (!rc)
		rc = get_uint(o, "refresh_interval_s", pre, 1,
			      OVC_POLICY_DURATION_MAX_S, &st->refresh_interval_s, e);
	if (!rc)
		rc = get_uint(o, "cache_expiration_s", pre, 1,
			      OVC_POLICY_DURATION_MAX_S, &st->cache_expiration_s, e);
	if (!rc)
		rc = get_bool(o, "user_may_decrypt", pre, &st->user_may_decrypt, e);
	if (!rc)
		rc = get_bool(o, "persistent_encryption", pre,
			      &st->persistent_encryption, e);
	if (!rc)
		rc = get_uint(o, "autolock_idle_s", pre, 0,
			      OVC_POLICY_DURATION_MAX_S, &st->autolock_idle_s, e);
	if (!rc)
		rc = get_string(o, "plaintext_under_rule", pre, &mode, e);
	if (!rc && parse_plaintext_mode(mode, &st->plaintext_under_rule) != 0)
		rc = ovc_err_set(e, -EINVAL,
				 "settings.plaintext_under_rule: not convert, "
				 "refuse or strict");
	return rc;
}

/* ---------------------------------------------------------------------------
 * Rules.
 */
static const char *const rule_members[] = { "asset", "type", "path",
					    "key_id", NULL };

static int parse_rule_key(const cJSON *item, const char *pre, ovc_rule *r,
			  ovc_err *e)
{
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(item, "key_id");

	if (r->type == OVC_RULE_PUBLIC) {
		if (k)
			return ovc_err_set(e, -EINVAL,
					   "%skey_id: not allowed in a public rule",
					   pre);
		return 0;
	}
	if (!k)
		return ovc_err_set(e, -EINVAL, "%skey_id: missing (a %s rule "
				   "needs one)", pre, ovc_rule_type_name(r->type));
	if (!cJSON_IsString(k) || !k->valuestring)
		return ovc_err_set(e, -EINVAL, "%skey_id: not a string", pre);
	if (ovc_key_id_parse(k->valuestring, r->key_id) != 0)
		return ovc_err_set(e, -EINVAL, "%skey_id: not a UUID", pre);
	r->has_key = 1;
	return 0;
}

static int parse_rule_path(const char *path, const char *pre, ovc_err *e)
{
	ovc_rule_path *rp = malloc(sizeof(*rp)); /* 4 KiB: not on the stack */
	int rc;

	if (!rp)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	rc = ovc_rule_path_parse(path, rp, e);
	free(rp);
	if (rc)
		return ovc_err_wrap(e, -EINVAL, "%spath: ", pre);
	return 0;
}

/* rules[i] into `r`; the strings are the policy's (freed with it). */
static int parse_rule(const cJSON *item, size_t i, ovc_rule *r, ovc_err *e)
{
	char pre[40], *asset = NULL;
	const char *type, *path;
	int rc;

	snprintf(pre, sizeof(pre), "rules[%zu].", i);
	if (!cJSON_IsObject(item))
		return ovc_err_set(e, -EINVAL, "rules[%zu]: not an object", i);
	rc = ovc_json_check_members(item, rule_members, pre, e);
	if (!rc)
		rc = get_name(item, "asset", pre, &asset, e);
	r->asset = asset;
	if (!rc)
		rc = get_string(item, "type", pre, &type, e);
	if (!rc && ovc_rule_type_parse(type, &r->type) != 0)
		rc = ovc_err_set(e, -EINVAL, "%stype: unknown rule type \"%.32s\"",
				 pre, type);
	if (!rc)
		rc = get_string(item, "path", pre, &path, e);
	if (!rc)
		rc = parse_rule_path(path, pre, e);
	if (!rc) {
		r->path = strdup(path);
		if (!r->path)
			rc = ovc_err_set(e, -ENOMEM, "out of memory");
	}
	if (!rc)
		rc = parse_rule_key(item, pre, r, e);
	return rc;
}

struct asset_ref {
	const char *name;
	size_t idx;
};

static int asset_ref_cmp(const void *a, const void *b)
{
	const struct asset_ref *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Each asset at most once (sorted: a policy may hold many rules). */
static int check_duplicate_assets(const ovc_policy *p, ovc_err *e)
{
	struct asset_ref *v;
	int rc = 0;

	if (p->nrules < 2)
		return 0;
	v = malloc(p->nrules * sizeof(*v));
	if (!v)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < p->nrules; i++)
		v[i] = (struct asset_ref){ p->rules[i].asset, i };
	qsort(v, p->nrules, sizeof(*v), asset_ref_cmp);
	for (size_t i = 1; i < p->nrules && !rc; i++)
		if (strcmp(v[i - 1].name, v[i].name) == 0)
			rc = ovc_err_set(e, -EINVAL, "rules[%zu].asset: \"%s\" "
					 "already in rules[%zu]", v[i].idx,
					 v[i].name, v[i - 1].idx);
	free(v);
	return rc;
}

static int parse_rules(const cJSON *root, ovc_policy *p, ovc_err *e)
{
	const cJSON *arr, *item;
	size_t n, i = 0;
	int rc = get_member(root, "rules", "", &arr, e);

	if (rc)
		return rc;
	if (!cJSON_IsArray(arr))
		return ovc_err_set(e, -EINVAL, "rules: not an array");
	n = (size_t)cJSON_GetArraySize(arr);
	p->rules = calloc(n ? n : 1, sizeof(*p->rules));
	if (!p->rules)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	cJSON_ArrayForEach(item, arr) {
		/* Counted first so that ovc_policy_free() frees a rule's
		 * strings even when it failed half-way. */
		p->nrules = i + 1;
		rc = parse_rule(item, i, &p->rules[i], e);
		if (rc)
			return rc;
		i++;
	}
	return check_duplicate_assets(p, e);
}

/* ---------------------------------------------------------------------------
 * The document.
 */
static const char *const top_members[] = {
	"format", "org", "user", "serial", "issued_at", "valid_until",
	"settings", "rules", "keys", NULL
};

static int parse_keys_member(const cJSON *root, ovc_policy *p, ovc_err *e)
{
	const char *s;
	int rc = get_string(root, "keys", "", &s, e);

	if (rc)
		return rc;
	if (!ovc_age_armor_looks((const uint8_t *)s, strlen(s)))
		return ovc_err_set(e, -EINVAL,
				   "keys: not an armored age file");
	p->keys = strdup(s);
	return p->keys ? 0 : ovc_err_set(e, -ENOMEM, "out of memory");
}

static int parse_header(const cJSON *root, ovc_policy *p, ovc_err *e)
{
	const char *fmt;
	int rc = get_string(root, "format", "", &fmt, e);

	if (rc)
		return rc;
	if (strcmp(fmt, OVC_POLICY_FORMAT) != 0)
		return ovc_err_set(e, -EINVAL, "format: not \"%s\"",
				   OVC_POLICY_FORMAT);
	rc = get_name(root, "org", "", &p->org, e);
	if (!rc)
		rc = get_name(root, "user", "", &p->user, e);
	if (!rc)
		rc = get_uint(root, "serial", "", 1, OVC_SERIAL_MAX, &p->serial, e);
	if (!rc)
		rc = get_time(root, "issued_at", &p->issued_at, e);
	if (!rc)
		rc = get_time(root, "valid_until", &p->valid_until, e);
	if (!rc && p->valid_until <= p->issued_at)
		rc = ovc_err_set(e, -EINVAL, "valid_until: not after issued_at");
	return rc;
}

static int parse_tree(const cJSON *root, ovc_policy *p, ovc_err *e)
{
	int rc;

	if (!cJSON_IsObject(root))
		return ovc_err_set(e, -EINVAL, "document: not a JSON object");
	rc = ovc_json_check_members(root, top_members, "", e);
	if (!rc)
		rc = parse_header(root, p, e);
	if (!rc)
		rc = parse_settings(root, &p->settings, e);
	if (!rc)
		rc = parse_rules(root, p, e);
	if (!rc)
		rc = parse_keys_member(root, p, e);
	return rc;
}

static int only_space(const char *s, const char *end)
{
	for (; s < end; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			return 0;
	return 1;
}

/* cJSON tree of `doc`, with nothing but white space after it and every
 * token checked by the walk. */
static int parse_json(const uint8_t *doc, size_t len, cJSON **out, ovc_err *e)
{
	const char *text = (const char *)doc, *end = NULL;
	struct walk w = { .e = e };
	cJSON *root;
	int rc;

	*out = NULL;
	if (len == 0)
		return ovc_err_set(e, -EINVAL, "document: empty");
	if (len >= 3 && memcmp(doc, "\xef\xbb\xbf", 3) == 0)
		return ovc_err_set(e, -EINVAL, "document: starts with a byte "
				   "order mark");
	root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!root)
		return ovc_err_set(e, -EINVAL, "document: not valid JSON "
				   "(near byte %zu)", end ? (size_t)(end - text) : 0);
	if (!only_space(end, text + len)) {
		cJSON_Delete(root);
		return ovc_err_set(e, -EINVAL, "document: text after the JSON "
				   "object (byte %zu)", (size_t)(end - text));
	}
	w.sc.p = text;
	w.sc.end = end;
	rc = walk_value(&w, root);
	if (rc) {
		cJSON_Delete(root);
		return rc;
	}
	*out = root;
	return 0;
}

void ovc_policy_free(ovc_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nrules; i++) {
		free((char *)p->rules[i].asset);
		free((char *)p->rules[i].path);
	}
	free(p->rules);
	free(p->org);
	free(p->user);
	free(p->keys);
	free(p);
}

int ovc_policy_parse(const uint8_t *doc, size_t len, ovc_policy **out,
		     ovc_err *e)
{
	ovc_policy *p = NULL;
	cJSON *root = NULL;
	int rc;

	*out = NULL;
	if (len > OVC_POLICY_MAX_BYTES)
		return ovc_err_set(e, -EFBIG, "document: %zu bytes, more than "
				   "%u", len, OVC_POLICY_MAX_BYTES);
	rc = parse_json(doc, len, &root, e);
	if (rc)
		return rc;
	p = calloc(1, sizeof(*p));
	if (!p) {
		rc = ovc_err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	rc = parse_tree(root, p, e);
	if (rc)
		goto out;
	crypto_hash_sha256(p->digest, doc, len);
	*out = p;
	p = NULL;
out:
	ovc_policy_free(p);
	cJSON_Delete(root);
	return rc;
}

int ovc_policy_verify_parse(const uint8_t *doc, size_t len, const char *sig,
			    size_t sig_len, const ovc_minisign_pubkey *pks,
			    size_t npks, ovc_policy **out, ovc_err *e)
{
	int rc;

	*out = NULL;
	if (len > OVC_POLICY_MAX_BYTES)
		return ovc_err_set(e, -EFBIG, "document: %zu bytes, more than "
				   "%u", len, OVC_POLICY_MAX_BYTES);
	/* Nothing of the document is looked at before this succeeds. */
	rc = ovc_minisign_verify(pks, npks, doc, len, sig, sig_len, NULL, e);
	if (rc)
		return ovc_err_wrap(e, rc, "signature: ");
	return ovc_policy_parse(doc, len, out, e);
}

int ovc_policy_accept(const ovc_policy *p, const char *org, const char *user,
		      const ovc_policy_seen *seen, time_t now, ovc_err *e)
{
	char t[21];

	if (strcmp(p->org, org) != 0)
		return ovc_err_set(e, -EPERM, "org: \"%s\", expected \"%.64s\"",
				   p->org, org);
	if (strcmp(p->user, user) != 0)
		return ovc_err_set(e, -EPERM, "user: \"%s\", expected \"%.64s\"",
				   p->user, user);
	if (seen && p->serial < seen->serial)
		return ovc_err_set(e, -ESTALE, "serial: %llu is lower than %llu, "
				   "already seen (replayed or rolled back?)",
				   (unsigned long long)p->serial,
				   (unsigned long long)seen->serial);
	if (seen && p->serial == seen->serial &&
	    memcmp(p->digest, seen->digest, sizeof(p->digest)) != 0)
		return ovc_err_set(e, -ESTALE, "serial: %llu already seen with "
				   "other content", (unsigned long long)p->serial);
	if (now >= p->valid_until) {
		ovc_time_format(p->valid_until, t);
		return ovc_err_set(e, -ETIME, "valid_until: expired at %s", t);
	}
	return 0;
}

/* ---------------------------------------------------------------------------
 * Canonical text.
 */
struct sb {
	char *p;
	size_t n, cap;
	int err;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
	if (b->err)
		return;
	if (n + 1 > b->cap - b->n) {
		size_t cap = b->cap ? b->cap : 1024;
		char *np;

		while (n + 1 > cap - b->n) {
			if (cap > SIZE_MAX / 2) {
				b->err = -ENOMEM;
				return;
			}
			cap *= 2;
		}
		np = realloc(b->p, cap);
		if (!np) {
			b->err = -ENOMEM;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void sb_puts(struct sb *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_printf(struct sb *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		b->err = b->err ? b->err : -EINVAL;
		return;
	}
	sb_add(b, tmp, (size_t)n);
}

/* A JSON string: '"', '\\' and control characters escaped (the short
 * forms where JSON has one), every other byte as it is. */
static void sb_json_string(struct sb *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;

	sb_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[7] = { '\\', 0, 0, 0, 0, 0, 0 };
		size_t en = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sb_add(b, run, (size_t)(s - run));
		run = s + 1;
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			en = 6;
		}
		sb_add(b, esc, en);
	}
	sb_add(b, run, (size_t)(s - run));
	sb_add(b, "\"", 1);
}

/* `  "name": "value",\n` at `indent` spaces; `last` drops the comma. */
static void sb_member_str(struct sb *b, int indent, const char *name,
			  const char *value, int last)
{
	sb_printf(b, "%*s\"%s\": ", indent, "", name);
	sb_json_string(b, value);
	sb_puts(b, last ? "\n" : ",\n");
}

static void sb_member_raw(struct sb *b, int indent, const char *name,
			  const char *value, int last)
{
	sb_printf(b, "%*s\"%s\": %s%s\n", indent, "", name, value,
		  last ? "" : ",");
}

static void sb_member_u64(struct sb *b, int indent, const char *name,
			  uint64_t v, int last)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	sb_member_raw(b, indent, name, num, last);
}

static void serialize_settings(struct sb *b, const ovc_policy_settings *s)
{
	unsigned mode = (unsigned)s->plaintext_under_rule;

	if (mode > OVC_PLAINTEXT_STRICT) {
		b->err = b->err ? b->err : -EINVAL;
		return;
	}
	sb_puts(b, "  \"settings\": {\n");
	sb_member_u64(b, 4, "refresh_interval_s", s->refresh_interval_s, 0);
	sb_member_u64(b, 4, "cache_expiration_s", s->cache_expiration_s, 0);
	sb_member_raw(b, 4, "user_may_decrypt",
		      s->user_may_decrypt ? "true" : "false", 0);
	sb_member_raw(b, 4, "persistent_encryption",
		      s->persistent_encryption ? "true" : "false", 0);
	sb_member_u64(b, 4, "autolock_idle_s", s->autolock_idle_s, 0);
	sb_member_str(b, 4, "plaintext_under_rule", plaintext_names[mode], 1);
	sb_puts(b, "  },\n");
}

static void serialize_rule(struct sb *b, const ovc_rule *r, int last)
{
	char id[OVC_KEY_ID_STRLEN + 1];

	if (!r->asset || !r->path || r->type < OVC_RULE_SHARED ||
	    r->type > OVC_RULE_PUBLIC) {
		b->err = b->err ? b->err : -EINVAL;
		return;
	}
	sb_puts(b, "    {\n");
	sb_member_str(b, 6, "asset", r->asset, 0);
	sb_member_str(b, 6, "type", ovc_rule_type_name(r->type), 0);
	sb_member_str(b, 6, "path", r->path, !r->has_key);
	if (r->has_key) {
		ovc_key_id_format(r->key_id, id);
		sb_member_str(b, 6, "key_id", id, 1);
	}
	sb_puts(b, last ? "    }\n" : "    },\n");
}

int ovc_policy_serialize(const ovc_policy *p, char **out, size_t *len)
{
	struct sb b = { 0 };
	char t[21];

	*out = NULL;
	if (!p->org || !p->user || !p->keys || (p->nrules && !p->rules))
		return -EINVAL;
	sb_puts(&b, "{\n");
	sb_member_str(&b, 2, "format", OVC_POLICY_FORMAT, 0);
	sb_member_str(&b, 2, "org", p->org, 0);
	sb_member_str(&b, 2, "user", p->user, 0);
	sb_member_u64(&b, 2, "serial", p->serial, 0);
	ovc_time_format(p->issued_at, t);
	sb_member_str(&b, 2, "issued_at", t, 0);
	ovc_time_format(p->valid_until, t);
	sb_member_str(&b, 2, "valid_until", t, 0);
	serialize_settings(&b, &p->settings);
	sb_puts(&b, p->nrules ? "  \"rules\": [\n" : "  \"rules\": [],\n");
	for (size_t i = 0; i < p->nrules; i++)
		serialize_rule(&b, &p->rules[i], i + 1 == p->nrules);
	if (p->nrules)
		sb_puts(&b, "  ],\n");
	sb_member_str(&b, 2, "keys", p->keys, 1);
	sb_puts(&b, "}\n");
	if (b.err) {
		free(b.p);
		return b.err;
	}
	*out = b.p;
	*len = b.n;
	return 0;
}

/* ---------------------------------------------------------------------------
 * Keys blob: magic "OVCKEYS1" | count u32 LE | count x (key id 16 | key 32).
 */
#define KB_MAGIC "OVCKEYS1"
#define KB_MAGIC_LEN 8
#define KB_HEADER 12
#define KB_ENTRY (OVC_KEY_ID_BYTES + OVC_KEY_BYTES)

_Static_assert(sizeof(KB_MAGIC) - 1 == KB_MAGIC_LEN, "magic size");
_Static_assert(KB_ENTRY == 48, "keys blob entry size");
_Static_assert(OVC_KEYSBLOB_MAX_BYTES ==
	       KB_HEADER + (size_t)OVC_KEYSBLOB_MAX * KB_ENTRY,
	       "keys blob size cap");

int ovc_keysblob_encode(const ovc_keyset *ks, uint8_t **out, size_t *len)
{
	size_t n = ks ? ks->n : 0, total;
	uint8_t *b, *q;

	*out = NULL;
	if (n > OVC_KEYSBLOB_MAX)
		return -E2BIG;
	total = KB_HEADER + n * KB_ENTRY;
	b = ovc_wipe_malloc(total);
	if (!b)
		return -ENOMEM;
	memcpy(b, KB_MAGIC, KB_MAGIC_LEN);
	ovc_le32_put(b + KB_MAGIC_LEN, (uint32_t)n);
	q = b + KB_HEADER;
	for (size_t i = 0; i < n; i++, q += KB_ENTRY) {
		memcpy(q, ks->keys[i].id, OVC_KEY_ID_BYTES);
		memcpy(q + OVC_KEY_ID_BYTES, ks->keys[i].key, OVC_KEY_BYTES);
	}
	*out = b;
	*len = total;
	return 0;
}

struct id_ref {
	uint8_t id[OVC_KEY_ID_BYTES];
	size_t idx;
};

static int id_ref_cmp(const void *a, const void *b)
{
	const struct id_ref *x = a, *y = b;
	int c = memcmp(x->id, y->id, OVC_KEY_ID_BYTES);

	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* No key id twice (key ids are not secret: plain memory is fine). */
static int check_duplicate_ids(const ovc_keyset *ks, ovc_err *e)
{
	char txt[OVC_KEY_ID_STRLEN + 1];
	struct id_ref *v;
	int rc = 0;

	if (ks->n < 2)
		return 0;
	v = malloc(ks->n * sizeof(*v));
	if (!v)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < ks->n; i++) {
		memcpy(v[i].id, ks->keys[i].id, OVC_KEY_ID_BYTES);
		v[i].idx = i;
	}
	qsort(v, ks->n, sizeof(*v), id_ref_cmp);
	for (size_t i = 1; i < ks->n && !rc; i++)
		if (memcmp(v[i - 1].id, v[i].id, OVC_KEY_ID_BYTES) == 0) {
			ovc_key_id_format(v[i].id, txt);
			rc = ovc_err_set(e, -EINVAL, "keys blob: key %zu: key "
					 "id %s already in key %zu", v[i].idx,
					 txt, v[i - 1].idx);
		}
	free(v);
	return rc;
}

static int keysblob_check_header(const uint8_t *in, size_t len,
				 uint32_t *count, ovc_err *e)
{
	size_t want;

	if (len < KB_HEADER)
		return ovc_err_set(e, -EINVAL, "keys blob: truncated (%zu "
				   "bytes)", len);
	if (memcmp(in, KB_MAGIC, KB_MAGIC_LEN - 1) == 0 &&
	    in[KB_MAGIC_LEN - 1] != KB_MAGIC[KB_MAGIC_LEN - 1])
		return ovc_err_set(e, -EPROTO, "keys blob: unknown version "
				   "(magic %.8s)", (const char *)in);
	if (memcmp(in, KB_MAGIC, KB_MAGIC_LEN) != 0)
		return ovc_err_set(e, -EINVAL, "keys blob: bad magic");
	*count = ovc_le32_get(in + KB_MAGIC_LEN);
	if (*count > OVC_KEYSBLOB_MAX)
		return ovc_err_set(e, -EINVAL, "keys blob: %u keys, more than "
				   "%u", *count, (unsigned)OVC_KEYSBLOB_MAX);
	want = KB_HEADER + (size_t)*count * KB_ENTRY;
	if (len < want)
		return ovc_err_set(e, -EINVAL, "keys blob: truncated (%zu "
				   "bytes, %u keys need %zu)", len, *count, want);
	if (len > want)
		return ovc_err_set(e, -EINVAL, "keys blob: %zu bytes after the "
				   "last key", len - want);
	return 0;
}

int ovc_keysblob_decode(const uint8_t *in, size_t len, ovc_keyset **out,
			ovc_err *e)
{
	const uint8_t *q = in + KB_HEADER;
	ovc_keyset *ks;
	uint32_t count = 0;
	int rc;

	*out = NULL;
	rc = keysblob_check_header(in, len, &count, e);
	if (rc)
		return rc;
	ks = ovc_keyset_new(count);
	if (!ks)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < count; i++, q += KB_ENTRY) {
		ovc_key *k = &ks->keys[i];

		memcpy(k->id, q, OVC_KEY_ID_BYTES);
		memcpy(k->key, q + OVC_KEY_ID_BYTES, OVC_KEY_BYTES);
		ks->n = i + 1;
		if (sodium_is_zero(k->key, OVC_KEY_BYTES)) {
			rc = ovc_err_set(e, -EINVAL, "keys blob: key %u is all "
					 "zero", i);
			goto out;
		}
	}
	rc = check_duplicate_ids(ks, e);
out:
	if (rc) {
		ovc_keyset_free(ks);
		return rc;
	}
	*out = ks;
	return 0;
}

/* Every key a rule names is in `ks`. */
static int check_rule_keys(const ovc_policy *p, const ovc_keyset *ks,
			   ovc_err *e)
{
	char id[OVC_KEY_ID_STRLEN + 1];

	for (size_t i = 0; i < p->nrules; i++) {
		const ovc_rule *r = &p->rules[i];

		if (!r->has_key || ovc_keyset_find(ks, r->key_id))
			continue;
		ovc_key_id_format(r->key_id, id);
		return ovc_err_set(e, -EINVAL, "rules[%zu].key_id: key %s of "
				   "asset '%s' is not in the keys blob", i, id,
				   r->asset);
	}
	return 0;
}

int ovc_policy_open_keys(const ovc_policy *p, const ovc_age_identity *id,
			 ovc_keyset **out, ovc_err *e)
{
	const ovc_age_identity *ids[1] = { id };
	ovc_age_decrypt_opts o = { .identities = ids, .n_identities = 1 };
	uint8_t *plain = NULL;
	size_t plen = 0;
	ovc_keyset *ks = NULL;
	int rc;

	*out = NULL;
	rc = ovc_age_decrypt_buf(&o, (const uint8_t *)p->keys, strlen(p->keys),
				 OVC_KEYSBLOB_MAX_BYTES, &plain, &plen, NULL, e);
	if (rc == -ENOKEY) {
		rc = ovc_err_set(e, -ENOKEY, "keys: not encrypted to this "
				 "identity (wrong identity for user '%s'?)",
				 p->user);
		goto out;
	}
	if (rc) {
		rc = ovc_err_wrap(e, rc, "keys: ");
		goto out;
	}
	rc = ovc_keysblob_decode(plain, plen, &ks, e);
	if (!rc)
		rc = check_rule_keys(p, ks, e);
	if (rc)
		goto out;
	*out = ks;
	ks = NULL;
out:
	ovc_keyset_free(ks);
	ovc_wipe_free(plain);
	return rc;
}
