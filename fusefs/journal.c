/*
 * journal.c - the rewrap journal's entry text (journal.h).
 */
#include "fusefs/journal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC_LINE "overcrypt-rewrap 1"

static void hex(char *out, const void *in, size_t n)
{
	static const char d[] = "0123456789abcdef";

	for (size_t k = 0; k < n; k++) {
		out[2 * k] = d[((const uint8_t *)in)[k] >> 4];
		out[2 * k + 1] = d[((const uint8_t *)in)[k] & 15];
	}
	out[2 * n] = 0;
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode the hex line [s, s + n) into `out` (cap bytes with the NUL):
 * the byte count, or -1. */
static int unhex(const char *s, size_t n, uint8_t *out, size_t cap)
{
	if (n % 2 || n / 2 >= cap)
		return -1;
	for (size_t k = 0; k < n / 2; k++) {
		int hi = nibble(s[2 * k]), lo = nibble(s[2 * k + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[k] = (uint8_t)(hi << 4 | lo);
	}
	out[n / 2] = 0;
	return (int)(n / 2);
}

static int rel_ok(const char *rel)
{
	const char *c = rel;

	if (!rel[0] || rel[0] == '/')
		return 0;
	while (*c) {
		size_t l = strcspn(c, "/");

		if (l == 0 || (l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		c += l;
		if (*c == '/')
			c++;
	}
	return c[-1] != '/';
}

int ovc_journal_format(const ovc_journal_entry *j, char **out, size_t *len)
{
	size_t ml = strnlen(j->mnt, PATH_MAX), rl = strnlen(j->rel, PATH_MAX);
	char *t, *p;

	*out = NULL;
	if (ml == 0 || ml == PATH_MAX || j->mnt[0] != '/' || rl == PATH_MAX || !rel_ok(j->rel))
		return -EINVAL;
	t = malloc(sizeof(MAGIC_LINE) + 2 * ml + 2 * rl + 2 * OVC_KEY_ID_BYTES + 32);
	if (!t)
		return -ENOMEM;
	p = t + sprintf(t, "%s\n", MAGIC_LINE);
	hex(p, j->mnt, ml);
	p += 2 * ml;
	p += sprintf(p, "\n%u\n", (unsigned)j->uid);
	hex(p, j->key_id, OVC_KEY_ID_BYTES);
	p += 2 * OVC_KEY_ID_BYTES;
	*p++ = '\n';
	hex(p, j->rel, rl);
	p += 2 * rl;
	*p++ = '\n';
	*p = 0;
	*out = t;
	*len = (size_t)(p - t);
	return 0;
}

/* The next line of [*s, end): its start, its length in *n; NULL when no
 * newline ends it. */
static const char *line(const char **s, const char *end, size_t *n)
{
	const char *b = *s, *nl = memchr(b, '\n', (size_t)(end - b));

	if (!nl)
		return NULL;
	*n = (size_t)(nl - b);
	*s = nl + 1;
	return b;
}

int ovc_journal_parse(const char *text, size_t len, ovc_journal_entry *out)
{
	const char *s = text, *end = text + len, *l;
	size_t n;
	uint64_t uid = 0;   /* 10 digits fit; compared before the cast */

	memset(out, 0, sizeof(*out));
	if (!(l = line(&s, end, &n)) || n != sizeof(MAGIC_LINE) - 1 || memcmp(l, MAGIC_LINE, n))
		return -EINVAL;
	if (!(l = line(&s, end, &n)) ||
	    unhex(l, n, (uint8_t *)out->mnt, sizeof(out->mnt)) < 1 ||
	    strlen(out->mnt) != n / 2 || out->mnt[0] != '/')
		return -EINVAL;
	if (!(l = line(&s, end, &n)) || n == 0 || n > 10)
		return -EINVAL;
	for (size_t k = 0; k < n; k++) {
		if (l[k] < '0' || l[k] > '9')
			return -EINVAL;
		uid = uid * 10 + (uint64_t)(l[k] - '0');
	}
	if (uid > (uint64_t)(uid_t)-2)
		return -EINVAL;
	out->uid = (uid_t)uid;
	{
		uint8_t kid[OVC_KEY_ID_BYTES + 1];

		if (!(l = line(&s, end, &n)) || unhex(l, n, kid, sizeof(kid)) != OVC_KEY_ID_BYTES)
			return -EINVAL;
		memcpy(out->key_id, kid, OVC_KEY_ID_BYTES);
	}
	if (!(l = line(&s, end, &n)) ||
	    unhex(l, n, (uint8_t *)out->rel, sizeof(out->rel)) < 1 ||
	    strlen(out->rel) != n / 2 || !rel_ok(out->rel) || s != end)
		return -EINVAL;
	return 0;
}
