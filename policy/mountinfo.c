/*
 * mountinfo.c - the kernel cifs/smb3 mounts of a /proc/self/mountinfo text.
 *
 * A line (proc(5)): ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] -
 * FSTYPE SOURCE SUPEROPTIONS, with ' ', '\t', '\n' and '\\' in ROOT,
 * MOUNTPOINT and SOURCE written as octal escapes (\040 …). The share's
 * mounted prefix is the source's path after //host/share plus ROOT (a bind
 * mount of a folder inside a cifs mount shows that folder as ROOT).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policy/rules.h"
#include "policy/rules_int.h"

#define MAX_FIELDS 64

/* A field of the line: [s, s + n). */
struct field {
	const char *s;
	size_t n;
};

/* Decode octal escapes of `f` into `out` (`size` bytes, NUL-terminated).
 * Returns 0 or -1 (too long, or a decoded NUL). */
static int unescape(const struct field *f, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < f->n; i++) {
		char c = f->s[i];

		if (c == '\\' && i + 3 < f->n &&
		    f->s[i + 1] >= '0' && f->s[i + 1] <= '3' &&
		    f->s[i + 2] >= '0' && f->s[i + 2] <= '7' &&
		    f->s[i + 3] >= '0' && f->s[i + 3] <= '7') {
			c = (char)((f->s[i + 1] - '0') * 64 + (f->s[i + 2] - '0') * 8 +
				   (f->s[i + 3] - '0'));
			i += 3;
		}
		if (c == '\0' || o + 1 >= size)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* Append the components of `path` to the prefix `pre` (size `size`),
 * '/'-separated, skipping empty ones. Returns 0 or -1 ("." or "..", too
 * long). */
static int prefix_append(char *pre, size_t size, const char *path)
{
	size_t o = strlen(pre);

	while (*path) {
		const char *c;
		size_t n;

		while (*path == '/')
			path++;
		c = path;
		while (*path && *path != '/')
			path++;
		n = (size_t)(path - c);
		if (n == 0)
			continue;
		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return -1;
		if (o + n + 2 > size)
			return -1;
		if (o)
			pre[o++] = '/';
		memcpy(pre + o, c, n);
		o += n;
		pre[o] = '\0';
	}
	return 0;
}

/* Take "//[user@]host/share[/prefix]" apart into `m`. 0 or -1. */
static int source_parse(const char *src, ovc_smb_mount *m)
{
	const char *h, *hend, *at, *s, *send;

	if (strncmp(src, "//", 2) != 0)
		return -1;
	h = src + 2;
	hend = strchr(h, '/');
	if (!hend)
		return -1;
	for (at = h; at < hend; at++)
		if (*at == '@')
			h = at + 1; /* the user part ends at the last '@' */
	if (hend == h || (size_t)(hend - h) >= sizeof(m->host))
		return -1;
	s = hend + 1;
	send = strchr(s, '/');
	if (!send)
		send = s + strlen(s);
	if (send == s || (size_t)(send - s) >= sizeof(m->share))
		return -1;
	memcpy(m->host, h, (size_t)(hend - h));
	m->host[hend - h] = '\0';
	memcpy(m->share, s, (size_t)(send - s));
	m->share[send - s] = '\0';
	m->prefix[0] = '\0';
	return prefix_append(m->prefix, sizeof(m->prefix), send);
}

/* Split one line into fields. Returns how many (at most MAX_FIELDS). */
static size_t split(const char *s, size_t len, struct field *f)
{
	size_t n = 0, i = 0;

	while (i < len && n < MAX_FIELDS) {
		while (i < len && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i >= len)
			break;
		f[n].s = s + i;
		while (i < len && s[i] != ' ' && s[i] != '\t')
			i++;
		f[n].n = (size_t)(s + i - f[n].s);
		n++;
	}
	return n;
}

static int field_is(const struct field *f, const char *s)
{
	return f->n == strlen(s) && memcmp(f->s, s, f->n) == 0;
}

/* The value of "addr=" in the comma-separated super options `f` into
 * `out` (left "" when absent or too long). */
static void addr_option(const struct field *f, char *out, size_t size)
{
	const char *p = f->s, *end = f->s + f->n;

	while (p < end) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		size_t n = c ? (size_t)(c - p) : (size_t)(end - p);

		if (n > 5 && !memcmp(p, "addr=", 5) && n - 5 < size) {
			memcpy(out, p + 5, n - 5);
			out[n - 5] = '\0';
			return;
		}
		p += n + 1;
	}
}

/* Parse one line. Returns 1 (an smb mount, in *m), 0 (another file
 * system), -1 (does not parse). */
static int line_parse(const char *s, size_t len, ovc_smb_mount *m)
{
	struct field f[MAX_FIELDS];
	char tmp[OVC_PATH_MAX];
	size_t n = split(s, len, f), dash;

	for (dash = 6; dash < n; dash++)
		if (field_is(&f[dash], "-"))
			break;
	if (n < 10 || dash + 2 >= n)
		return -1;
	if (!field_is(&f[dash + 1], "cifs") && !field_is(&f[dash + 1], "smb3"))
		return 0;
	memset(m, 0, sizeof(*m));
	if (unescape(&f[dash + 2], tmp, sizeof(tmp)) != 0 || source_parse(tmp, m) != 0)
		return -1;
	if (unescape(&f[3], tmp, sizeof(tmp)) != 0 || tmp[0] != '/' ||
	    prefix_append(m->prefix, sizeof(m->prefix), tmp) != 0)
		return -1;
	if (unescape(&f[4], tmp, sizeof(tmp)) != 0 ||
	    ovc_path_normalise(tmp, m->mountpoint, sizeof(m->mountpoint)) != 0)
		return -1;
	if (dash + 3 < n)
		addr_option(&f[dash + 3], m->addr, sizeof(m->addr));
	ovc_ascii_lower(m->host, sizeof(m->host));
	ovc_ascii_lower(m->share, sizeof(m->share));
	ovc_ascii_lower(m->prefix, sizeof(m->prefix));
	return 1;
}

int ovc_mountinfo_parse_smb(const char *text, size_t len, ovc_smb_mount **out,
			    size_t *n, size_t *skipped)
{
	ovc_smb_mount *v = NULL, m;
	size_t nv = 0, cap = 0, nskip = 0, i = 0;
	int rc = 0;

	if (!out || !n || (!text && len))
		return -EINVAL;
	while (i < len) {
		const char *line = text + i;
		const char *nl = memchr(line, '\n', len - i);
		size_t ll = nl ? (size_t)(nl - line) : len - i;
		int r;

		i += ll + (nl ? 1 : 0);
		if (ll == 0)
			continue;
		r = line_parse(line, ll, &m);
		if (r < 0)
			nskip++;
		if (r <= 0)
			continue;
		if (nv == cap) {
			size_t nc = cap ? cap * 2 : 4;
			ovc_smb_mount *t = realloc(v, nc * sizeof(*v));

			if (!t) {
				rc = -ENOMEM;
				goto out;
			}
			v = t;
			cap = nc;
		}
		v[nv++] = m;
	}
out:
	if (rc != 0) {
		free(v);
		v = NULL;
		nv = 0;
	}
	*out = v;
	*n = nv;
	if (skipped)
		*skipped = nskip;
	return rc;
}
