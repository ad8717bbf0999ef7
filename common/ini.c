/*
 * ini.c - the line reader our INI files are read through; see ini.h.
 *
 * inih pulls lines through reader() and calls rd_handler() for each key
 * line it was given, before it asks for the next line: so the line of a
 * key is the line last fed, and what must wait until a key is applied
 * (the rest of a split line, "inih took no key") is done at the top of
 * the next reader() call.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <ini.h>

#include "common/ini.h"

struct rd {
	const ovc_ini_ops *ops;
	void *ctx;
	const char *p, *end;         /* the text not read yet */
	int lineno;
	int fed_line, fed_handled;   /* the key line last given to inih */
	int in_key;                  /* a key line came since the last header */
	int key_refused;             /* ... and the reader refused it */
	const char *pending, *pending_end; /* rest of a split long line */
	int pending_line;
};

static void rd_err(struct rd *R, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void rd_err(struct rd *R, int line, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	R->ops->error(R->ctx, line, msg);
}

int ovc_ini_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > OVC_INI_NAME_MAX || !isalnum((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return 0;
	return 1;
}

/* Where a key line's name ends: at '=' or ':'; NULL when a comment (" ;")
 * or the end comes first (inih's reading). */
static const char *key_sep(const char *s, const char *e)
{
	int was_space = 0;

	for (; s < e; s++) {
		if (*s == '=' || *s == ':')
			return s;
		if (was_space && *s == ';')
			return NULL;
		was_space = isspace((unsigned char)*s);
	}
	return NULL;
}

/* The end of [s, e) without a " ;" comment and trailing space. */
static const char *value_end(const char *s, const char *e)
{
	int was_space = 0;
	const char *t;

	for (t = s; t < e; t++) {
		if (was_space && *t == ';')
			break;
		was_space = isspace((unsigned char)*t);
	}
	while (t > s && isspace((unsigned char)t[-1]))
		t--;
	return t;
}

/* A "[...]" line: `s` is at '[', [s, e) is trimmed of white space. */
static void rd_header(struct rd *R, const char *s, const char *e)
{
	int lax = !!(R->ops->flags & OVC_INI_HEADER_LAX);
	const char *close, *t;

	R->in_key = 0;
	R->key_refused = 0;
	if (!lax)
		e = value_end(s, e);
	close = memchr(s, ']', (size_t)(e - s));
	if (!close) {
		rd_err(R, R->lineno, "section header without ']'");
		R->ops->section(R->ctx, NULL, 0, R->lineno);
		return;
	}
	for (t = close + 1; t < e && isspace((unsigned char)*t); t++)
		;
	if (t < e && *t != '#' && *t != ';') {
		rd_err(R, R->lineno, "text after the section header's ']'");
		if (!lax) {
			R->ops->section(R->ctx, NULL, 0, R->lineno);
			return;
		}
	}
	R->ops->section(R->ctx, s + 1, (size_t)(close - s - 1), R->lineno);
}

/* Whether the over-long key line [s, e) (value ending at e, name ending
 * at sep) may be split, and where: the cut, or NULL. The first part,
 * [s, cut), must fit `room`. */
static const char *split_at(struct rd *R, const char *s, const char *sep, size_t room)
{
	const char *n = sep;

	if (!(R->ops->flags & OVC_INI_SPLIT_LISTS) || room == 0)
		return NULL;
	while (n > s && isspace((unsigned char)n[-1]))
		n--;
	if (!R->ops->splittable(R->ctx, s, (size_t)(n - s)))
		return NULL;
	for (const char *c = s + room - 1; c > sep; c--)
		if (*c == ',')
			return c + 1;
	return NULL;
}

/* A key line [s, e) (trimmed) for inih's buffer `str` of `num` bytes:
 * returns 1 when `str` holds it (or its first part), 0 when refused. */
static int rd_key_line(struct rd *R, const char *s, const char *e, char *str, int num)
{
	const char *sep = key_sep(s, e), *cut;
	size_t room = num > 2 ? (size_t)num - 2 : 0; /* '\n' and NUL */

	if (R->ops->max_line && room > R->ops->max_line)
		room = R->ops->max_line;
	if (!sep) {
		rd_err(R, R->lineno, "expected 'key = value', a [section] or a comment");
		goto refused;
	}
	e = value_end(sep + 1, e);
	cut = e;
	if ((size_t)(e - s) > room) {
		cut = split_at(R, s, sep, room);
		if (!cut) {
			rd_err(R, R->lineno, "line longer than %zu characters%s", room,
			       R->ops->long_hint ? R->ops->long_hint : "");
			goto refused;
		}
		R->pending = cut;
		R->pending_end = e;
		R->pending_line = R->lineno;
	}
	memcpy(str, s, (size_t)(cut - s));
	str[cut - s] = '\n';
	str[cut - s + 1] = '\0';
	R->fed_line = R->lineno;
	R->fed_handled = 0;
	return 1;
refused:
	R->in_key = 1;
	R->key_refused = 1;
	return 0;
}

/* One raw line [s, e) without its '\n'. Returns 1 when `str` holds a key
 * line for inih. */
static int rd_line(struct rd *R, const char *s, const char *e, char *str, int num)
{
	const char *t;

	if (R->lineno == 1 && e - s >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3))
		s += 3;
	if (memchr(s, '\0', (size_t)(e - s))) {
		rd_err(R, R->lineno, "the line holds a NUL byte");
		return 0;
	}
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	for (t = s; t < e && isspace((unsigned char)*t); t++)
		;
	if (t == e || *t == '#' || *t == ';')
		return 0;
	if (t > s && R->in_key && (R->ops->flags & OVC_INI_CONTINUATION)) {
		if (!R->key_refused)
			R->ops->cont(R->ctx, t, (size_t)(value_end(t, e) - t), R->lineno);
		return 0;
	}
	if (*t == '[') {
		rd_header(R, t, e);
		return 0;
	}
	return rd_key_line(R, t, e, str, num);
}

/* inih's reader: fgets-like, but it gives inih key lines only. */
static char *reader(char *str, int num, void *stream)
{
	struct rd *R = stream;

	for (;;) {
		const char *nl, *e;
		int handled = R->fed_handled, fed;

		if (R->fed_line && !handled)
			rd_err(R, R->fed_line, "expected 'key = value'");
		R->fed_line = 0;
		if (R->pending) {
			const char *p = R->pending, *pe = R->pending_end;

			R->pending = NULL;
			while (p < pe && isspace((unsigned char)*p))
				p++;
			if (handled)
				R->ops->cont(R->ctx, p, (size_t)(pe - p), R->pending_line);
		}
		if (R->p >= R->end)
			return NULL;
		nl = memchr(R->p, '\n', (size_t)(R->end - R->p));
		e = nl ? nl : R->end;
		R->lineno++;
		fed = rd_line(R, R->p, e, str, num);
		R->p = nl ? nl + 1 : R->end;
		if (fed)
			return str;
	}
}

/* inih's handler: one key line (the section is the caller's, not inih's). */
static int rd_handler(void *user, const char *section, const char *name, const char *value)
{
	struct rd *R = user;

	(void)section;
	R->fed_handled = 1;
	R->in_key = 1;
	R->key_refused = 0;
	R->ops->key(R->ctx, name, value, R->fed_line);
	return 1;
}

int ovc_ini_parse(const char *text, size_t len, const ovc_ini_ops *ops, void *ctx)
{
	struct rd R;
	int rc;

	memset(&R, 0, sizeof(R));
	R.ops = ops;
	R.ctx = ctx;
	R.p = text;
	R.end = text ? text + len : text;
	rc = ini_parse_stream(reader, &R, rd_handler, &R);
	if (rc < 0)
		return -ENOMEM;
	return rc ? -EINVAL : 0;
}
