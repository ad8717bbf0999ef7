/*
 * rules.c - rule types, rule paths, system folders, patterns and lexical
 * path normalisation (the parts of rules.h that need no index). The mount
 * table is in mountinfo.c, the matcher in ruleset.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "policy/rules.h"
#include "policy/rules_int.h"

int ovc_rule_type_parse(const char *s, enum ovc_rule_type *out)
{
	if (!s || !out)
		return -EINVAL;
	if (strcmp(s, "shared") == 0)
		*out = OVC_RULE_SHARED;
	else if (strcmp(s, "private") == 0)
		*out = OVC_RULE_PRIVATE;
	else if (strcmp(s, "public") == 0)
		*out = OVC_RULE_PUBLIC;
	else
		return -EINVAL;
	return 0;
}

const char *ovc_rule_type_name(enum ovc_rule_type t)
{
	switch (t) {
	case OVC_RULE_SHARED:
		return "shared";
	case OVC_RULE_PRIVATE:
		return "private";
	case OVC_RULE_PUBLIC:
		return "public";
	}
	return "unknown";
}

void ovc_ascii_lower(char *s, size_t n)
{
	for (size_t i = 0; i < n && s[i]; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			s[i] = (char)(s[i] - 'A' + 'a');
}

/* ---------------------------------------------------------------------------
 * Patterns.
 */

/* Validate the part after the folder's last '/' and point *pat at its
 * canonical form: "" and "*" become "*.*". */
static int pattern_check(const char *p, const char **pat, int *any, ovc_err *e)
{
	if (p[0] == '\0' || strcmp(p, "*") == 0 || strcmp(p, "*.*") == 0) {
		*pat = "*.*";
		*any = 1;
		return 0;
	}
	if (p[0] != '*')
		return ovc_err_set(e, -EINVAL,
				   "the pattern '%s' must start with '*' (a folder must end in '/')",
				   p);
	if (strchr(p + 1, '*'))
		return ovc_err_set(e, -EINVAL,
				   "the pattern '%s' may hold only one '*', at its start", p);
	if (strcmp(p + 1, ".") == 0 || strcmp(p + 1, "..") == 0)
		return ovc_err_set(e, -EINVAL, "the pattern '%s' matches no file", p);
	*pat = p;
	*any = 0;
	return 0;
}

int ovc_pattern_match(const char *pattern_suffix, size_t slen, const char *name,
		      size_t nlen)
{
	if (nlen < slen)
		return 0;
	return strncasecmp(name + nlen - slen, pattern_suffix, slen) == 0;
}

int ovc_rule_patterns_overlap(const char *a, const char *b)
{
	size_t la, lb;

	if (!a || !b || !*a || !*b || strcmp(a, "*.*") == 0 || strcmp(a, "*") == 0 ||
	    strcmp(b, "*.*") == 0 || strcmp(b, "*") == 0)
		return 1;
	/* "*" + suffix: some name ends with both iff one suffix ends the
	 * other. A pattern without '*' is one exact name. */
	if (a[0] != '*' && b[0] != '*')
		return strcasecmp(a, b) == 0;
	if (a[0] != '*') {
		const char *t = a;
		a = b;
		b = t;
	}
	a++;
	la = strlen(a);
	if (b[0] != '*')
		return ovc_pattern_match(a, la, b, strlen(b));
	b++;
	lb = strlen(b);
	if (la <= lb)
		return strcasecmp(b + lb - la, a) == 0;
	return strcasecmp(a + la - lb, b) == 0;
}

/* ---------------------------------------------------------------------------
 * Normalisation and system folders.
 */

int ovc_path_within(const char *p, const char *dir)
{
	size_t n = strlen(dir);

	if (n == 1 && dir[0] == '/')
		return p[0] == '/';
	return !strncmp(p, dir, n) && (p[n] == '\0' || p[n] == '/');
}

int ovc_path_normalise(const char *in, char *out, size_t out_size)
{
	size_t o = 0;
	const char *p = in;

	if (!in || in[0] != '/')
		return -EINVAL;
	if (out_size < 2)
		return -ENAMETOOLONG;
	out[0] = '/';
	o = 1;
	while (*p) {
		const char *c;
		size_t n;

		while (*p == '/')
			p++;
		c = p;
		while (*p && *p != '/')
			p++;
		n = (size_t)(p - c);
		if (n == 0 || (n == 1 && c[0] == '.'))
			continue;
		if (n == 2 && c[0] == '.' && c[1] == '.') {
			while (o > 1 && out[o - 1] != '/')
				o--;
			if (o > 1)
				o--; /* the '/' before it */
			continue;
		}
		if (o > 1) {
			if (o + 1 >= out_size)
				return -ENAMETOOLONG;
			out[o++] = '/';
		}
		if (o + n >= out_size)
			return -ENAMETOOLONG;
		memcpy(out + o, c, n);
		o += n;
	}
	out[o] = '\0';
	return 0;
}

static const char *const system_folders[] = {
	"/etc", "/usr", "/proc", "/sys", "/dev", "/run", "/boot", "/var/lib/overcrypt",
};

const char *ovc_rule_system_folder(const char *folder)
{
	char buf[OVC_PATH_MAX];

	if (!folder || ovc_path_normalise(folder, buf, sizeof(buf)) != 0)
		return NULL;
	if (strcmp(buf, "/") == 0)
		return "/";
	for (size_t i = 0; i < sizeof(system_folders) / sizeof(system_folders[0]); i++) {
		size_t n = strlen(system_folders[i]);

		if (strncmp(buf, system_folders[i], n) == 0 &&
		    (buf[n] == '\0' || buf[n] == '/'))
			return system_folders[i];
	}
	return NULL;
}

/* ---------------------------------------------------------------------------
 * Rule paths.
 */

/* Check the folder components in [s, end) ('/'-separated, no leading or
 * trailing '/'): none empty, ".", "..", none with a '*'. */
static int components_check(const char *s, const char *end, ovc_err *e)
{
	if (s >= end) /* none: the root */
		return 0;
	for (;;) {
		const char *c = s;
		size_t n;

		while (s < end && *s != '/')
			s++;
		n = (size_t)(s - c);
		if (n == 0)
			return ovc_err_set(e, -EINVAL, "the rule path has an empty component ('//')");
		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return ovc_err_set(e, -EINVAL,
					   "the rule path may not hold '.' or '..' components");
		if (memchr(c, '*', n))
			return ovc_err_set(e, -EINVAL,
					   "'*' may appear only in the file pattern, after the last '/'");
		if (s == end)
			return 0;
		s++; /* past the '/'; a '/' right before `end` leaves an empty one */
	}
}

/* Lower-case an smb folder in place except its %USERNAME% tokens. */
static void smb_folder_lower(char *s)
{
	size_t tl = strlen(OVC_USERNAME_TOKEN);

	while (*s) {
		if (strncmp(s, OVC_USERNAME_TOKEN, tl) == 0) {
			s += tl;
			continue;
		}
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
		s++;
	}
}

/* smb://[user@]host/share/... ; `b` is the writable copy after "smb://",
 * `slash` its last '/'. */
static int smb_parse(char *b, char *slash, ovc_rule_path *out, ovc_err *e)
{
	char *host = b, *at, *share, *end;

	end = strchr(host, '/');
	if (!end || end == host)
		return ovc_err_set(e, -EINVAL, "the smb:// URL has no host");
	*end = '\0';
	at = strchr(host, '@');
	if (at) {
		if (at == host || strchr(at + 1, '@') || memchr(host, ':', (size_t)(at - host)))
			return ovc_err_set(e, -EINVAL,
					   "the smb:// URL's user part must be 'user@' (no password)");
		host = at + 1;
	}
	if (!*host)
		return ovc_err_set(e, -EINVAL, "the smb:// URL has no host");
	if (strchr(host, ':'))
		return ovc_err_set(e, -EINVAL, "the smb:// URL may not name a port");
	for (const char *h = host; *h; h++)
		if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
		      (*h >= '0' && *h <= '9') || *h == '-' || *h == '.' || *h == '_'))
			return ovc_err_set(e, -EINVAL,
					   "the smb:// URL's host holds '%c'", *h);
	if (strcmp(host, ".") == 0 || strcmp(host, "..") == 0)
		return ovc_err_set(e, -EINVAL, "the smb:// URL has a bad host");
	share = end + 1;
	if (slash < share)
		return ovc_err_set(e, -EINVAL,
				   "the smb:// URL has no share (write smb://host/share/)");
	end = strchr(share, '/');
	if (end == share)
		return ovc_err_set(e, -EINVAL, "the smb:// URL has no share");
	if (components_check(share, slash, e) != 0)
		return e ? e->code : -EINVAL;
	*end = '\0';
	*slash = '\0'; /* ends the folder (or the share, when they are one) */
	ovc_ascii_lower(host, strlen(host));
	smb_folder_lower(share);
	out->host = host;
	out->share = share;
	out->folder = end < slash ? end + 1 : end; /* "" for the share's root */
	if (end < slash)
		smb_folder_lower(end + 1);
	out->smb = 1;
	return 0;
}

static int rule_path_parse(const char *path, ovc_rule_path *out, ovc_err *e)
{
	size_t len;
	char *slash, *b;
	int rc;

	memset(out, 0, sizeof(*out));
	len = strlen(path);
	/* Room for a separate copy of the pattern after the folder. */
	if (len * 2 + 4 > sizeof(out->buf))
		return ovc_err_set(e, -EINVAL, "the rule path is too long");
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
			return ovc_err_set(e, -EINVAL, "the rule path holds a control character");
	memcpy(out->buf, path, len + 1);
	b = out->buf;
	if (strncasecmp(b, "smb://", 6) == 0)
		b += 6;
	else if (strstr(b, "://"))
		return ovc_err_set(e, -EINVAL, "only local paths and smb:// URLs are rules");
	else if (b[0] != '/')
		return ovc_err_set(e, -EINVAL, "the rule path '%s' is not absolute", path);
	slash = strrchr(b, '/');
	if (!slash)
		return ovc_err_set(e, -EINVAL, "the smb:// URL has no %s",
				   *b ? "share" : "host");
	/* The pattern goes after the path's NUL, so folder and pattern are
	 * separate strings in buf. */
	{
		char *pcopy = out->buf + len + 1;

		memcpy(pcopy, slash + 1, strlen(slash + 1) + 1);
		if (b != out->buf && strchr(b, '/') == slash && slash[1] != '\0' &&
		    slash[1] != '*') /* smb://host/share */
			return ovc_err_set(e, -EINVAL,
					   "the smb:// URL has no share (write smb://host/share/)");
		rc = pattern_check(pcopy, &out->pattern, &out->any, e);
		if (rc != 0)
			return rc;
	}
	if (b != out->buf) {
		rc = smb_parse(b, slash, out, e);
		if (rc != 0)
			return rc;
	} else {
		rc = components_check(b + 1, slash, e);
		if (rc != 0)
			return rc;
		if (slash == b)
			slash[1] = '\0'; /* the root: "/" */
		else
			*slash = '\0';
		out->folder = b;
	}
	out->has_username = strstr(out->folder, OVC_USERNAME_TOKEN) != NULL ||
			    (out->smb && strstr(out->share, OVC_USERNAME_TOKEN) != NULL);
	return 0;
}

int ovc_rule_path_parse(const char *path, ovc_rule_path *out, ovc_err *e)
{
	int rc;

	if (!path || !out)
		return ovc_err_set(e, -EINVAL, "no rule path");
	rc = rule_path_parse(path, out, e);
	if (rc != 0)
		memset(out, 0, sizeof(*out)); /* nothing half-parsed */
	return rc;
}

int ovc_username_ok(const char *u)
{
	if (!u || !*u || strchr(u, '/') || strstr(u, "..") || strcmp(u, ".") == 0)
		return 0;
	for (const char *p = u; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}
