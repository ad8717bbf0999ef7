/*
 * audit.c - the admin store's audit log and its signed head (audit.h;
 * docs/audit-log.md defines the bytes).
 *
 * One writer of canonical bytes: build_prefix()/put_hash() make every line
 * and head_build() every head; readers parse with cJSON, rebuild the bytes
 * from what they parsed with those same functions and compare, so any byte
 * that is not canonical is reported, whatever cJSON would have tolerated.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "policy/audit.h"

#define SEQ_MAX ((uint64_t)1 << 53) /* exact in a JSON number (a double) */
#define HEAD_FORMAT "overcrypt-audit-head/1"
#define HEAD_COMMENT "overcrypt audit head %" PRIu64
#define TIME_BUF 80 /* room for any int fields, so the compiler sees no truncation */

static const char *const MEMBERS[] = { "seq",	  "time",    "admin", "action",
				       "object", "details", "prev",  "hash" };
enum { M_SEQ, M_TIME, M_ADMIN, M_ACTION, M_OBJECT, M_DETAILS, M_PREV, M_HASH, M_N };

static const char *const HEAD_MEMBERS[] = { "format", "org",		 "entries",
					    "head",   "org_conf_sha256", "time" };
enum { H_FORMAT, H_ORG, H_ENTRIES, H_HEAD, H_CONF, H_TIME, H_N };

/* ---- a growing byte string ---------------------------------------------------- */

typedef struct sb {
	char *p;     /* NUL-terminated when non-NULL; malloc()ed */
	size_t len, cap;
	int err;     /* -ENOMEM once an allocation failed; later puts do nothing */
} sb;

static void sb_put(sb *b, const char *s, size_t n)
{
	if (b->err)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 256;
		char *np;

		while (ncap < b->len + n + 1)
			ncap *= 2;
		np = realloc(b->p, ncap);
		if (!np) {
			b->err = -ENOMEM;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_puts(sb *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* A JSON string in canonical form (RFC 8785's, which is also cJSON's):
 * '"' and '\\' escaped, \b \t \n \f \r for those, \u00xx (lower-case hex)
 * for the other bytes below 0x20, every other byte as it is. */
static void sb_json_string(sb *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	sb_put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

		switch (c) {
		case '"': sb_put(b, "\\\"", 2); break;
		case '\\': sb_put(b, "\\\\", 2); break;
		case '\b': sb_put(b, "\\b", 2); break;
		case '\t': sb_put(b, "\\t", 2); break;
		case '\n': sb_put(b, "\\n", 2); break;
		case '\f': sb_put(b, "\\f", 2); break;
		case '\r': sb_put(b, "\\r", 2); break;
		default:
			if (c < 0x20)
				sb_put(b, u, sizeof(u));
			else
				sb_put(b, (const char *)&c, 1);
		}
	}
	sb_put(b, "\"", 1);
}

static void sb_hex32(sb *b, const uint8_t v[32])
{
	char hex[65];

	sodium_bin2hex(hex, sizeof(hex), v, 32);
	sb_put(b, "\"", 1);
	sb_put(b, hex, 64);
	sb_put(b, "\"", 1);
}

static void sb_u64(sb *b, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%" PRIu64, v);
	sb_puts(b, num);
}

/* ---- small codecs ------------------------------------------------------------- */

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past
 * U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i];
		unsigned lo = 0x80, hi = 0xbf;
		size_t k;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1;
		else if (c == 0xe0)
			k = 2, lo = 0xa0;
		else if (c == 0xed)
			k = 2, hi = 0x9f;
		else if (c >= 0xe1 && c <= 0xef)
			k = 2;
		else if (c == 0xf0)
			k = 3, lo = 0x90;
		else if (c == 0xf4)
			k = 3, hi = 0x8f;
		else if (c >= 0xf1 && c <= 0xf3)
			k = 3;
		else
			return 0;
		if (n - i - 1 < k || s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t j = 2; j <= k; j++)
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
		i += k + 1;
	}
	return 1;
}

/* 64 lower-case hex digits, nothing else. */
static int unhex32(const char *s, uint8_t out[32])
{
	if (strlen(s) != 64)
		return -EINVAL;
	for (size_t i = 0; i < 64; i++) {
		int c = s[i], v;

		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			return -EINVAL;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return 0;
}

/* "YYYY-MM-DDTHH:MM:SSZ", 1970 to 9999. */
static int time_format(time_t t, char out[TIME_BUF])
{
	struct tm tm;

	if (t < 0 || !gmtime_r(&t, &tm) || tm.tm_year > 9999 - 1900)
		return -EINVAL;
	snprintf(out, TIME_BUF, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

/* The inverse of time_format(); anything it would not have written
 * (2026-02-30, a leap second, lower-case 'z') is -EINVAL. */
static int time_parse(const char *s, time_t *out)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
	struct tm tm;
	char again[TIME_BUF];
	time_t t;

	if (strlen(s) != sizeof(shape) - 1)
		return -EINVAL;
	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
			return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = atoi(s) - 1900;
	tm.tm_mon = atoi(s + 5) - 1;
	tm.tm_mday = atoi(s + 8);
	tm.tm_hour = atoi(s + 11);
	tm.tm_min = atoi(s + 14);
	tm.tm_sec = atoi(s + 17);
	t = timegm(&tm);
	if (time_format(t, again) || strcmp(again, s))
		return -EINVAL;
	*out = t;
	return 0;
}

/* ---- canonical bytes ---------------------------------------------------------- */

struct fields {
	uint64_t seq;
	time_t time;
	const char *admin, *action, *object;
	const char *details; /* canonical JSON text */
	uint8_t prev[32];
};

/* Everything that is hashed: '{' through the prev value's closing quote. */
static int build_prefix(sb *b, const struct fields *f)
{
	char t[TIME_BUF];

	if (time_format(f->time, t))
		return -EINVAL;
	sb_puts(b, "{\"seq\":");
	sb_u64(b, f->seq);
	sb_puts(b, ",\"time\":\"");
	sb_puts(b, t);
	sb_puts(b, "\",\"admin\":");
	sb_json_string(b, f->admin);
	sb_puts(b, ",\"action\":");
	sb_json_string(b, f->action);
	sb_puts(b, ",\"object\":");
	sb_json_string(b, f->object);
	sb_puts(b, ",\"details\":");
	sb_puts(b, f->details);
	sb_puts(b, ",\"prev\":");
	sb_hex32(b, f->prev);
	return b->err;
}

static int put_hash(sb *b, const uint8_t hash[32])
{
	sb_puts(b, ",\"hash\":");
	sb_hex32(b, hash);
	sb_puts(b, "}\n");
	return b->err;
}

static int head_build(sb *b, const char *org, uint64_t entries, const uint8_t head[32],
		      const uint8_t conf[32], time_t when)
{
	char t[TIME_BUF];

	if (time_format(when, t))
		return -EINVAL;
	sb_puts(b, "{\"format\":\"" HEAD_FORMAT "\",\"org\":");
	sb_json_string(b, org);
	sb_puts(b, ",\"entries\":");
	sb_u64(b, entries);
	sb_puts(b, ",\"head\":");
	sb_hex32(b, head);
	sb_puts(b, ",\"org_conf_sha256\":");
	sb_hex32(b, conf);
	sb_puts(b, ",\"time\":\"");
	sb_puts(b, t);
	sb_puts(b, "\"}\n");
	return b->err;
}

/* ---- details: the one JSON value we take from callers ---------------------------- */

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 0 when no two members of `obj` share a name. */
static int names_unique(const cJSON *obj)
{
	const cJSON *c;
	const char **v;
	size_t n = 0, i;
	int rc = 0;

	for (c = obj->child; c; c = c->next)
		n++;
	if (n < 2)
		return 0;
	v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (c = obj->child, i = 0; c; c = c->next)
		v[i++] = c->string ? c->string : "";
	qsort(v, n, sizeof(*v), cmp_names);
	for (i = 1; i < n && !rc; i++)
		if (!strcmp(v[i - 1], v[i]))
			rc = -EINVAL;
	free(v);
	return rc;
}

/* The values details may hold: objects without duplicate names, arrays,
 * strings, true, false, null, and integers that fit an int32 other than -0
 * (cJSON's %1.15g prints exactly those as plain decimals; other numbers
 * would depend on how printf rounds). */
static int details_value_ok(const cJSON *it)
{
	const cJSON *c;
	int rc;

	if (cJSON_IsNumber(it)) {
		double d = it->valuedouble;
		if (!(d >= -2147483648.0 && d <= 2147483647.0) || d != (double)(int32_t)d ||
		    (d == 0 && signbit(d)))
			return -EINVAL;
		return 0;
	}
	if (cJSON_IsObject(it)) {
		rc = names_unique(it);
		if (rc)
			return rc;
	}
	if (cJSON_IsObject(it) || cJSON_IsArray(it))
		for (c = it->child; c; c = c->next)
			if ((rc = details_value_ok(c)))
				return rc;
	return 0;
}

/* A "\u0000" escape: cJSON would cut the string there. In valid JSON a
 * backslash only occurs inside strings, so a scan need not track them. */
static int has_nul_escape(const char *s, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u' && i + 5 < n && !memcmp(s + i + 2, "0000", 4))
			return 1;
		i++; /* skip the escaped character */
	}
	return 0;
}

/* Caller's details text to canonical form (cJSON_free() it). */
static int details_canon(const char *text, char **out, ovc_err *e)
{
	cJSON *root;
	int rc;

	if (!text)
		text = "{}";
	if (has_nul_escape(text, strlen(text)))
		return ovc_err_set(e, -EINVAL, "audit details: \\u0000 is not allowed");
	root = cJSON_ParseWithOpts(text, NULL, 1);
	if (!root || !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return ovc_err_set(e, -EINVAL, "audit details are not a JSON object");
	}
	rc = details_value_ok(root);
	if (rc == -EINVAL)
		ovc_err_set(e, rc, "audit details: numbers must be 32-bit integers and "
			    "member names unique");
	if (!rc) {
		*out = cJSON_PrintUnformatted(root);
		if (!*out)
			rc = -ENOMEM;
	}
	if (rc == -ENOMEM)
		ovc_err_set(e, rc, "out of memory");
	cJSON_Delete(root);
	return rc;
}

/* ---- reading lines -------------------------------------------------------------- */

typedef struct reader {
	int fd;
	char *buf;           /* OVC_AUDIT_LINE_MAX bytes */
	size_t start, end;   /* unread bytes are buf[start, end) */
	int eof;
} reader;

/* The next line, without its '\n' (*nl says whether it had one; only the
 * last line of a file may lack it). Returns 1, 0 at the end, -E2BIG for a
 * line longer than OVC_AUDIT_LINE_MAX with its '\n', or -errno. The line is
 * valid until the next call. */
static int rd_next(reader *r, const char **line, size_t *len, int *nl)
{
	for (;;) {
		char *p = memchr(r->buf + r->start, '\n', r->end - r->start);
		ssize_t n;

		if (p || (r->eof && r->start < r->end)) {
			*line = r->buf + r->start;
			*len = p ? (size_t)(p - *line) : r->end - r->start;
			*nl = p != NULL;
			r->start += *len + (p != NULL);
			return 1;
		}
		if (r->eof)
			return 0;
		if (r->start > 0) {
			memmove(r->buf, r->buf + r->start, r->end - r->start);
			r->end -= r->start;
			r->start = 0;
		}
		if (r->end == OVC_AUDIT_LINE_MAX)
			return -E2BIG;
		n = read(r->fd, r->buf + r->end, OVC_AUDIT_LINE_MAX - r->end);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n == 0)
			r->eof = 1;
		else if (n > 0)
			r->end += (size_t)n;
	}
}

/* ---- parsing one line ------------------------------------------------------------ */

typedef struct parsed {
	cJSON *root;          /* the line's tree; strings in f point into it */
	const cJSON *details; /* the details object, inside root */
	char *details_txt;    /* canonical; cJSON_free() */
	struct fields f;
	uint8_t hash[32];     /* the hash member as written */
	uint8_t computed[32]; /* SHA-256 of the canonical prefix */
} parsed;

static void parsed_release(parsed *p)
{
	cJSON_Delete(p->root);
	cJSON_free(p->details_txt);
	memset(p, 0, sizeof(*p));
}

/* `c` if it is a member named `name`, else NULL. */
static const cJSON *member(const cJSON *c, const char *name)
{
	return c && c->string && !strcmp(c->string, name) ? c : NULL;
}

/* Members of the line's object, in order, with their types. */
static const char *fields_get(parsed *p)
{
	const cJSON *m[M_N], *c = p->root->child;
	double d;

	for (int i = 0; i < M_N; i++, c = c ? c->next : NULL)
		if (!(m[i] = member(c, MEMBERS[i])))
			return "the members are not seq, time, admin, action, object, "
			       "details, prev, hash in that order";
	if (c)
		return "a member after hash";
	d = m[M_SEQ]->valuedouble;
	if (!cJSON_IsNumber(m[M_SEQ]) || !(d >= 1 && d <= (double)SEQ_MAX) ||
	    d != (double)(uint64_t)d)
		return "seq is not a whole number from 1 to 2^53";
	p->f.seq = (uint64_t)d;
	if (!cJSON_IsString(m[M_TIME]) || time_parse(m[M_TIME]->valuestring, &p->f.time))
		return "time is not YYYY-MM-DDTHH:MM:SSZ";
	if (!cJSON_IsString(m[M_ADMIN]) || !cJSON_IsString(m[M_ACTION]) ||
	    !cJSON_IsString(m[M_OBJECT]))
		return "admin, action or object is not a string";
	p->f.admin = m[M_ADMIN]->valuestring;
	p->f.action = m[M_ACTION]->valuestring;
	p->f.object = m[M_OBJECT]->valuestring;
	if (!cJSON_IsObject(m[M_DETAILS]) || details_value_ok(m[M_DETAILS]))
		return "details is not an object of the allowed values";
	p->details = m[M_DETAILS];
	if (!cJSON_IsString(m[M_PREV]) || unhex32(m[M_PREV]->valuestring, p->f.prev))
		return "prev is not 64 lower-case hex digits";
	if (!cJSON_IsString(m[M_HASH]) || unhex32(m[M_HASH]->valuestring, p->hash))
		return "hash is not 64 lower-case hex digits";
	return NULL;
}

/* Parse `line` (without '\n'), check it is in canonical form, and compute
 * the hash of its prefix. Returns 0, -ENOMEM, or -EINVAL with *why set. */
static int parse_line(const char *line, size_t len, parsed *p, const char **why)
{
	sb b = { 0 };
	int rc = -EINVAL;

	memset(p, 0, sizeof(*p));
	*why = NULL;
	if (memchr(line, '\0', len))
		*why = "a NUL byte";
	else if (!utf8_valid((const unsigned char *)line, len))
		*why = "not valid UTF-8";
	else if (has_nul_escape(line, len))
		*why = "a \\u0000 escape";
	if (*why)
		return -EINVAL;
	p->root = cJSON_ParseWithLengthOpts(line, len, NULL, 0);
	if (!p->root || !cJSON_IsObject(p->root)) {
		*why = "not a JSON object";
		goto out;
	}
	if ((*why = fields_get(p)))
		goto out;
	p->details_txt = cJSON_PrintUnformatted(p->details);
	rc = p->details_txt ? 0 : -ENOMEM;
	p->f.details = p->details_txt;
	if (!rc)
		rc = build_prefix(&b, &p->f);
	if (!rc) {
		crypto_hash_sha256(p->computed, (const unsigned char *)b.p, b.len);
		rc = put_hash(&b, p->hash);
	}
	if (!rc && (b.len != len + 1 || memcmp(b.p, line, len))) {
		*why = "not in canonical form (edited?)";
		rc = -EINVAL;
	}
out:
	free(b.p);
	if (*why)
		rc = -EINVAL;
	if (rc)
		parsed_release(p);
	return rc;
}

/* ---- walking the log ---------------------------------------------------------- */

typedef struct walk {
	const char *path;
	int chain;            /* check hashes, seq and prev (else only the form) */
	int (*fn)(void *ctx, const parsed *p, const char *line, size_t len);
	void *ctx;
	uint64_t count;       /* out: entries read */
	uint8_t head[32];     /* out: the last entry's hash, zeros when none */
} walk;

/* Where the chain breaks at `p`, or NULL. */
static const char *chain_check(const walk *w, const parsed *p, char *buf, size_t size)
{
	if (sodium_memcmp(p->computed, p->hash, 32))
		return "hash does not match (edited?)";
	if (p->f.seq != w->count + 1) {
		if (w->count == 0)
			snprintf(buf, size, "seq %" PRIu64 " on the first line (removed?)",
				 p->f.seq);
		else
			snprintf(buf, size, "seq %" PRIu64 " follows seq %" PRIu64
				 " (removed or reordered?)", p->f.seq, w->count);
		return buf;
	}
	if (sodium_memcmp(p->f.prev, w->head, 32)) {
		snprintf(buf, size, "prev is not the hash of entry %" PRIu64
			 " (removed, reordered or inserted?)", w->count);
		return buf;
	}
	return NULL;
}

/* One line: parse, check, hand to fn. */
static int walk_line(walk *w, unsigned long lineno, const char *line, size_t len, int nl,
		     ovc_err *e)
{
	int bad = w->chain ? -EBADMSG : -EINVAL, rc;
	const char *why;
	char buf[128];
	parsed p;

	if (!nl)
		return ovc_err_set(e, bad, "%s:%lu: no newline at the end (torn write?)",
				   w->path, lineno);
	rc = parse_line(line, len, &p, &why);
	if (rc == -EINVAL)
		return ovc_err_set(e, bad, "%s:%lu: %s", w->path, lineno, why);
	if (rc)
		return ovc_err_set(e, rc, "out of memory");
	if (w->chain && (why = chain_check(w, &p, buf, sizeof(buf))))
		rc = ovc_err_set(e, bad, "%s:%lu: %s", w->path, lineno, why);
	if (!rc) {
		w->count++;
		memcpy(w->head, p.computed, 32);
		if (w->fn)
			rc = w->fn(w->ctx, &p, line, len);
	}
	parsed_release(&p);
	return rc;
}

/* Read `fd` from its current offset to the end. */
static int walk_fd(walk *w, int fd, ovc_err *e)
{
	reader r = { .fd = fd };
	unsigned long lineno = 0;
	const char *line = NULL;
	size_t len = 0;
	int nl = 0, rc;

	w->count = 0;
	memset(w->head, 0, 32);
	r.buf = malloc(OVC_AUDIT_LINE_MAX);
	if (!r.buf)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	while ((rc = rd_next(&r, &line, &len, &nl)) == 1)
		if ((rc = walk_line(w, ++lineno, line, len, nl, e)))
			goto out; /* reported, or fn's own value */
	if (rc == -E2BIG)
		rc = ovc_err_set(e, w->chain ? -EBADMSG : -EINVAL,
				 "%s:%lu: line longer than %d bytes", w->path, lineno + 1,
				 OVC_AUDIT_LINE_MAX - 1);
	else if (rc < 0)
		rc = ovc_err_set(e, rc, "%s: %s", w->path, strerror(-rc));
out:
	free(r.buf);
	return rc;
}

/* Open a log for reading: a regular file, not through a symlink. */
static int open_log(const char *path, int flags, ovc_err *e)
{
	struct stat st;
	int fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC, 0600), rc;

	if (fd < 0)
		return ovc_err_set(e, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0)
		rc = ovc_err_set(e, -errno, "%s: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		rc = ovc_err_set(e, -EINVAL, "%s: not a regular file", path);
	else
		return fd;
	close(fd);
	return rc;
}

static int walk_path(walk *w, ovc_err *e)
{
	int fd = open_log(w->path, O_RDONLY, e), rc;

	if (fd < 0)
		return fd;
	rc = walk_fd(w, fd, e);
	close(fd);
	return rc;
}

/* ---- public: append, verify, each -------------------------------------------- */

static int name_ok(const char *what, const char *s, int may_be_empty, ovc_err *e)
{
	size_t n = s ? strlen(s) : 0;

	if (!s || (!n && !may_be_empty))
		return ovc_err_set(e, -EINVAL, "audit: no %s", what);
	if (n > OVC_AUDIT_NAME_MAX)
		return ovc_err_set(e, -EINVAL, "audit: %s longer than %d bytes", what,
				   OVC_AUDIT_NAME_MAX);
	if (!utf8_valid((const unsigned char *)s, n))
		return ovc_err_set(e, -EINVAL, "audit: %s is not valid UTF-8", what);
	return 0;
}

/* Write the whole line with one write(2); undo a short one. */
static int write_line(int fd, const sb *line, off_t old_size)
{
	ssize_t n;
	int rc = 0;

	do
		n = write(fd, line->p, line->len);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)line->len) {
		rc = n < 0 ? -errno : -EIO;
		if (n > 0 && ftruncate(fd, old_size) < 0)
			rc = -errno; /* the torn line stays; verify reports it */
	}
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	return rc;
}

/* The whole line for `f`, checked against the limits a reader applies. */
static int make_line(sb *line, const struct fields *f, ovc_err *e)
{
	uint8_t hash[32];
	int rc = build_prefix(line, f);

	if (rc == -EINVAL)
		return ovc_err_set(e, rc, "audit: the time is not between 1970 and 9999");
	if (!rc) {
		crypto_hash_sha256(hash, (const unsigned char *)line->p, line->len);
		rc = put_hash(line, hash);
	}
	if (rc)
		return ovc_err_set(e, rc, "out of memory");
	if (line->len > OVC_AUDIT_LINE_MAX ||
	    !utf8_valid((const unsigned char *)line->p, line->len))
		return ovc_err_set(e, -EINVAL, "audit: the entry is longer than %d bytes or "
				   "its details are not valid UTF-8", OVC_AUDIT_LINE_MAX);
	return 0;
}

int ovc_audit_append(const char *path, time_t when, const char *admin,
		     const char *action, const char *object,
		     const char *details_json, ovc_err *e)
{
	walk w = { .path = path, .chain = 1 };
	struct fields f = { .time = when, .admin = admin, .action = action, .object = object };
	char *details = NULL;
	struct stat st;
	sb line = { 0 };
	int fd = -1, rc;

	rc = name_ok("admin name", admin, 0, e);
	if (!rc)
		rc = name_ok("action", action, 0, e);
	if (!rc)
		rc = name_ok("object", object, 1, e);
	if (!rc)
		rc = details_canon(details_json, &details, e);
	if (rc)
		goto out;
	f.details = details;
	rc = fd = open_log(path, O_RDWR | O_APPEND | O_CREAT, e);
	if (rc < 0)
		goto out;
	if (flock(fd, LOCK_EX) < 0 || fstat(fd, &st) < 0) {
		rc = ovc_err_set(e, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	rc = walk_fd(&w, fd, e);
	if (rc) {
		ovc_err_wrap(e, rc, "refusing to append: ");
		goto out;
	}
	if (w.count >= SEQ_MAX) {
		rc = ovc_err_set(e, -EOVERFLOW, "%s: full", path);
		goto out;
	}
	f.seq = w.count + 1;
	memcpy(f.prev, w.head, 32);
	rc = make_line(&line, &f, e);
	if (rc)
		goto out;
	rc = write_line(fd, &line, st.st_size);
	if (!rc && st.st_size == 0)
		rc = ovc_fsync_parent(path); /* the file may be new */
	if (rc)
		ovc_err_set(e, rc, "%s: %s", path, strerror(-rc));
out:
	if (fd >= 0)
		close(fd);
	free(line.p);
	cJSON_free(details);
	return rc;
}

int ovc_audit_verify(const char *path, uint64_t *count, uint8_t head[32], ovc_err *e)
{
	walk w = { .path = path, .chain = 1 };
	int rc = walk_path(&w, e);

	if (!rc && count)
		*count = w.count;
	if (!rc && head)
		memcpy(head, w.head, 32);
	return rc;
}

struct each_ctx {
	const ovc_audit_filter *f;
	int (*fn)(void *ctx, const ovc_audit_entry *en);
	void *ctx;
};

/* A string anywhere in `it` (values, not names) equal to `s`. */
static int has_string(const cJSON *it, const char *s)
{
	if (cJSON_IsString(it))
		return !strcmp(it->valuestring, s);
	for (const cJSON *c = it->child; c; c = c->next)
		if (has_string(c, s))
			return 1;
	return 0;
}

static int passes(const ovc_audit_filter *f, const parsed *p)
{
	if (!f)
		return 1;
	if ((f->since && p->f.time < f->since) || (f->until && p->f.time > f->until))
		return 0;
	if (f->action && strcmp(f->action, p->f.action))
		return 0;
	if (f->user && strcmp(f->user, p->f.object) && !has_string(p->details, f->user))
		return 0;
	return 1;
}

static int each_one(void *ctx, const parsed *p, const char *line, size_t len)
{
	struct each_ctx *x = ctx;
	ovc_audit_entry en;
	char *copy;
	int rc;

	if (!passes(x->f, p))
		return 0;
	copy = strndup(line, len);
	if (!copy)
		return -ENOMEM;
	en.seq = p->f.seq;
	en.time = p->f.time;
	en.admin = p->f.admin;
	en.action = p->f.action;
	en.object = p->f.object;
	en.details = p->f.details;
	en.line = copy;
	rc = x->fn(x->ctx, &en);
	free(copy);
	return rc;
}

int ovc_audit_each(const char *path, const ovc_audit_filter *f,
		   int (*fn)(void *ctx, const ovc_audit_entry *en), void *ctx,
		   ovc_err *e)
{
	struct each_ctx x = { .f = f, .fn = fn, .ctx = ctx };
	walk w = { .path = path, .chain = 0, .fn = each_one, .ctx = &x };
	int rc = walk_path(&w, e);

	if (rc == -ENOMEM && e && !e->msg[0])
		ovc_err_set(e, rc, "out of memory");
	return rc;
}

/* ---- the signed head ---------------------------------------------------------- */

int ovc_audit_head_sign(const char *log_path, const char *org,
			const uint8_t org_conf_sha256[32], time_t when,
			const ovc_minisign_seckey *sk, char **head_json,
			char **head_sig, ovc_err *e)
{
	walk w = { .path = log_path, .chain = 1 };
	char comment[64];
	sb b = { 0 };
	int rc;

	*head_json = *head_sig = NULL;
	rc = name_ok("org name", org, 0, e);
	if (!rc)
		rc = walk_path(&w, e);
	if (rc)
		return rc;
	rc = head_build(&b, org, w.count, w.head, org_conf_sha256, when);
	if (rc == -EINVAL)
		return ovc_err_set(e, rc, "audit head: the time is not between 1970 and 9999");
	snprintf(comment, sizeof(comment), HEAD_COMMENT, w.count);
	if (!rc)
		rc = ovc_minisign_sign(sk, (const uint8_t *)b.p, b.len, comment, head_sig);
	if (rc) {
		free(b.p);
		return ovc_err_set(e, rc, "audit head: %s", strerror(-rc));
	}
	*head_json = b.p;
	return 0;
}

void ovc_audit_head_release(ovc_audit_head *h)
{
	if (!h)
		return;
	free(h->org);
	memset(h, 0, sizeof(*h));
}

/* Members of the head object, in order, with their types, into `h`. */
static int head_fields(const cJSON *root, ovc_audit_head *h, ovc_err *e)
{
	const cJSON *m[H_N], *c = root->child;
	double d;

	/* The format first: another one may have other members. */
	if (!member(c, HEAD_MEMBERS[H_FORMAT]) || !cJSON_IsString(c))
		return ovc_err_set(e, -EINVAL, "audit head: no format");
	if (strcmp(c->valuestring, HEAD_FORMAT))
		return ovc_err_set(e, -EPROTO, "audit head: format is not " HEAD_FORMAT);
	for (int i = 0; i < H_N; i++, c = c ? c->next : NULL)
		if (!(m[i] = member(c, HEAD_MEMBERS[i])))
			return ovc_err_set(e, -EINVAL, "audit head: member %d is not \"%s\"",
					   i + 1, HEAD_MEMBERS[i]);
	if (c)
		return ovc_err_set(e, -EINVAL, "audit head: a member after time");
	d = m[H_ENTRIES]->valuedouble;
	if (!cJSON_IsNumber(m[H_ENTRIES]) || !(d >= 0 && d <= (double)SEQ_MAX) ||
	    d != (double)(uint64_t)d)
		return ovc_err_set(e, -EINVAL, "audit head: entries is not a count");
	h->entries = (uint64_t)d;
	if (!cJSON_IsString(m[H_ORG]) || !cJSON_IsString(m[H_HEAD]) ||
	    !cJSON_IsString(m[H_CONF]) || !cJSON_IsString(m[H_TIME]) ||
	    unhex32(m[H_HEAD]->valuestring, h->head) ||
	    unhex32(m[H_CONF]->valuestring, h->org_conf_sha256) ||
	    time_parse(m[H_TIME]->valuestring, &h->time))
		return ovc_err_set(e, -EINVAL, "audit head: org, head, org_conf_sha256 or "
				   "time is not of its form");
	h->org = strdup(m[H_ORG]->valuestring);
	return h->org ? 0 : ovc_err_set(e, -ENOMEM, "out of memory");
}

int ovc_audit_head_parse(const char *json, size_t len, ovc_audit_head *out, ovc_err *e)
{
	ovc_audit_head h = { 0 };
	cJSON *root = NULL;
	sb b = { 0 };
	int rc = -EINVAL;

	memset(out, 0, sizeof(*out));
	if (memchr(json, '\0', len) || !utf8_valid((const unsigned char *)json, len) ||
	    has_nul_escape(json, len)) {
		ovc_err_set(e, rc, "audit head: a NUL byte or not valid UTF-8");
		goto out;
	}
	root = cJSON_ParseWithLengthOpts(json, len, NULL, 0);
	if (!root || !cJSON_IsObject(root)) {
		ovc_err_set(e, rc, "audit head: not a JSON object");
		goto out;
	}
	rc = head_fields(root, &h, e);
	if (!rc)
		rc = head_build(&b, h.org, h.entries, h.head, h.org_conf_sha256, h.time);
	if (rc == -ENOMEM)
		ovc_err_set(e, rc, "out of memory");
	else if (!rc && (b.len != len || memcmp(b.p, json, len)))
		rc = ovc_err_set(e, -EINVAL, "audit head: not in canonical form");
out:
	cJSON_Delete(root);
	free(b.p);
	if (rc)
		ovc_audit_head_release(&h);
	else
		*out = h;
	return rc;
}

struct at_ctx {
	uint64_t want;
	uint8_t hash[32];
};

static int hash_at(void *ctx, const parsed *p, const char *line, size_t len)
{
	struct at_ctx *x = ctx;

	(void)line;
	(void)len;
	if (p->f.seq == x->want)
		memcpy(x->hash, p->computed, 32);
	return 0;
}

/* The signature, and that its trusted comment names the same count. */
static int head_sig_check(const char *json, size_t len, const char *sig, size_t sig_len,
			  const ovc_minisign_pubkey *pk, ovc_audit_head *h, ovc_err *e)
{
	char *tc = NULL, want[64];
	int rc = ovc_minisign_verify(pk, 1, (const uint8_t *)json, len, sig, sig_len, &tc, e);

	if (rc)
		return ovc_err_wrap(e, rc, "audit head signature: ");
	rc = ovc_audit_head_parse(json, len, h, e);
	if (!rc) {
		snprintf(want, sizeof(want), HEAD_COMMENT, h->entries);
		if (strcmp(tc, want))
			rc = ovc_err_set(e, -EBADMSG, "audit head: the trusted comment "
					 "does not name %" PRIu64 " entries", h->entries);
	}
	free(tc);
	if (rc)
		ovc_audit_head_release(h);
	return rc;
}

int ovc_audit_head_verify_ex(const char *log_path, const char *head_json,
			     size_t head_len, const char *head_sig, size_t sig_len,
			     const ovc_minisign_pubkey *pk, ovc_audit_head *out,
			     uint64_t *log_entries, ovc_err *e)
{
	ovc_audit_head h = { 0 };
	struct at_ctx x = { 0 };
	walk w = { .path = log_path, .chain = 1, .fn = hash_at, .ctx = &x };
	int rc;

	if (out)
		memset(out, 0, sizeof(*out));
	rc = head_sig_check(head_json, head_len, head_sig, sig_len, pk, &h, e);
	if (rc)
		return rc;
	x.want = h.entries;
	rc = walk_path(&w, e);
	if (!rc && w.count < h.entries)
		rc = ovc_err_set(e, -EBADMSG, "%s: %" PRIu64 " entries, but the signed head "
				 "has %" PRIu64 " (cut back or rolled back?)", log_path,
				 w.count, h.entries);
	else if (!rc && sodium_memcmp(x.hash, h.head, 32))
		rc = ovc_err_set(e, -EBADMSG, "%s:%" PRIu64 ": the hash of entry %" PRIu64
				 " is not the signed head's (chain rewritten or store "
				 "replaced?)", log_path, h.entries, h.entries);
	if (!rc && log_entries)
		*log_entries = w.count;
	if (!rc && out)
		*out = h;
	else
		ovc_audit_head_release(&h);
	return rc;
}

int ovc_audit_head_verify(const char *log_path, const char *head_json,
			  size_t head_len, const char *head_sig, size_t sig_len,
			  const ovc_minisign_pubkey *pk, ovc_err *e)
{
	return ovc_audit_head_verify_ex(log_path, head_json, head_len, head_sig, sig_len,
					pk, NULL, NULL, e);
}
