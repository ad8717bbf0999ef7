/* common.c - errors, secret memory and careful file I/O; see common.h. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <cjson/cJSON.h>
#include <libgen.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void ovc_err_clear(ovc_err *e)
{
	if (e) {
		e->code = 0;
		e->msg[0] = '\0';
	}
}

int ovc_err_set(ovc_err *e, int code, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
		e->code = code;
	}
	return code;
}

int ovc_err_wrap(ovc_err *e, int code, const char *fmt, ...)
{
	char prefix[128], old[sizeof(e->msg)];
	va_list ap;

	if (!e)
		return code;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	/* Truncation is acceptable: a message is for people. */
	size_t pl = strnlen(prefix, sizeof(prefix)), room = sizeof(e->msg) - 1;
	if (pl > room)
		pl = room;
	memcpy(e->msg, prefix, pl);
	size_t ol = strnlen(old, sizeof(old));
	if (ol > room - pl)
		ol = room - pl;
	memcpy(e->msg + pl, old, ol);
	e->msg[pl + ol] = '\0';
	if (!e->code)
		e->code = code;
	return e->code;
}

int ovc_diag_add(ovc_diag *d, const char *file, int line, const char *fmt, ...)
{
	char msg[1024], *full;
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (d->n == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 8;
		char **nl = realloc(d->lines, ncap * sizeof(*nl));
		if (!nl)
			return -ENOMEM;
		d->lines = nl;
		d->cap = ncap;
	}
	if (file && line > 0)
		n = asprintf(&full, "%s:%d: %s", file, line, msg);
	else if (file)
		n = asprintf(&full, "%s: %s", file, msg);
	else
		n = asprintf(&full, "%s", msg);
	if (n < 0)
		return -ENOMEM;
	d->lines[d->n++] = full;
	return 0;
}

void ovc_diag_free(ovc_diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->lines[i]);
	free(d->lines);
	memset(d, 0, sizeof(*d));
}

int ovc_json_check_members(const struct cJSON *obj, const char *const *allowed,
			   const char *where, ovc_err *e)
{
	const cJSON *m, *o;

	for (m = obj->child; m; m = m->next) {
		const char *const *a;

		for (a = allowed; *a; a++)
			if (strcmp(m->string, *a) == 0)
				break;
		if (!*a)
			return ovc_err_set(e, -EINVAL, "%s%.64s: unknown member",
					   where, m->string);
		for (o = obj->child; o != m; o = o->next)
			if (strcmp(o->string, m->string) == 0)
				return ovc_err_set(e, -EINVAL, "%s%.64s: duplicate member",
						   where, m->string);
	}
	return 0;
}

int ovc_common_init(void)
{
	cJSON_Hooks hooks = { .malloc_fn = ovc_wipe_malloc, .free_fn = ovc_wipe_free };

	if (sodium_init() < 0)
		return -ENOSYS;
	/* Process-wide: every cJSON tree, in every module, is allocated and
	 * freed by the wiping pair, so no two allocators ever mix. */
	cJSON_InitHooks(&hooks);
	return 0;
}

void *ovc_secret_alloc(size_t len)
{
	void *p = sodium_malloc(len ? len : 1);
	if (p)
		sodium_memzero(p, len ? len : 1);
	return p;
}

void ovc_secret_free(void *p)
{
	sodium_free(p); /* wipes before it unmaps; NULL is fine */
}

/* A size prefix in front of every block lets the free wipe all of it. The
 * prefix is 16 bytes to keep the caller's pointer max-aligned. */
#define WIPE_HDR 16

void *ovc_wipe_malloc(size_t len)
{
	uint8_t *p;

	if (len > SIZE_MAX - WIPE_HDR)
		return NULL;
	p = malloc(len + WIPE_HDR);
	if (!p)
		return NULL;
	memcpy(p, &len, sizeof(len));
	return p + WIPE_HDR;
}

void ovc_wipe_free(void *q)
{
	uint8_t *p;
	size_t len;

	if (!q)
		return;
	p = (uint8_t *)q - WIPE_HDR;
	memcpy(&len, p, sizeof(len));
	sodium_memzero(p, len + WIPE_HDR);
	free(p);
}

int ovc_pread_full(int fd, void *buf, size_t len, off_t off)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int ovc_pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int ovc_read_file(const char *path, size_t max, int secret, uint8_t **out,
		  size_t *len)
{
	int fd, rc;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	rc = ovc_read_fd(fd, max, secret, out, len);
	close(fd);
	return rc;
}

int ovc_read_fd(int fd, size_t max, int secret, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t cap, used = 0;
	int rc = 0;

	*out = NULL;
	*len = 0;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = -EISDIR;
		goto out;
	}
	/* Size from fstat when it is a regular file, else read until EOF. */
	cap = S_ISREG(st.st_mode) ? (size_t)st.st_size : 4096;
	if (cap > max) {
		rc = -EFBIG;
		goto out;
	}
	for (;;) {
		uint8_t *nb;
		ssize_t n;

		if (!buf || used == cap) {
			size_t ncap = buf ? cap * 2 : cap + 1;
			if (buf && cap >= max + 1) {
				rc = -EFBIG;
				goto out;
			}
			if (ncap > max + 1)
				ncap = max + 1;
			nb = secret ? ovc_wipe_malloc(ncap + 1) : malloc(ncap + 1);
			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			if (buf) {
				memcpy(nb, buf, used);
				if (secret)
					ovc_wipe_free(buf);
				else
					free(buf);
			}
			buf = nb;
			cap = ncap;
		}
		n = read(fd, buf + used, cap - used);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > max) {
			rc = -EFBIG;
			goto out;
		}
	}
	buf[used] = '\0';
	*out = buf;
	*len = used;
	buf = NULL;
out:
	if (buf) {
		if (secret)
			ovc_wipe_free(buf);
		else
			free(buf);
	}
	return rc;
}

int ovc_fsync_parent(const char *path)
{
	char tmp[PATH_MAX];
	int fd, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int ovc_write_file_atomic(const char *path, const void *data, size_t len,
			  mode_t mode, int excl)
{
	char tmp[PATH_MAX];
	unsigned char rnd[6];
	int fd, rc;

	randombytes_buf(rnd, sizeof(rnd));
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%02x%02x%02x%02x%02x%02x", path,
		     rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  mode);
	if (fd < 0)
		return -errno;
	rc = ovc_pwrite_full(fd, data, len, 0);
	if (!rc && fchmod(fd, mode) < 0) /* umask must not widen or narrow it */
		rc = -errno;
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc) {
		if (excl) {
			if (link(tmp, path) < 0)
				rc = -errno;
			unlink(tmp);
		} else if (rename(tmp, path) < 0) {
			rc = -errno;
		}
	}
	if (rc) {
		unlink(tmp);
		return rc;
	}
	return ovc_fsync_parent(path);
}

/* A temporary name beside `path`, created O_EXCL; returns the fd. */
static int temp_beside(const char *path, char *tmp, size_t size, mode_t mode)
{
	unsigned char rnd[6];
	int fd;

	randombytes_buf(rnd, sizeof(rnd));
	if (snprintf(tmp, size, "%s.tmp-%02x%02x%02x%02x%02x%02x", path, rnd[0], rnd[1],
		     rnd[2], rnd[3], rnd[4], rnd[5]) >= (int)size)
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	return fd < 0 ? -errno : fd;
}

int ovc_stage_add(ovc_stage *st, const char *dst, const void *data, size_t len,
		  mode_t mode)
{
	char tmp[PATH_MAX];
	int fd, rc;

	if (st->n == st->cap) {
		size_t ncap = st->cap ? st->cap * 2 : 64;
		char **t = realloc(st->tmp, ncap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		st->tmp = t;
		t = realloc(st->dst, ncap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		st->dst = t;
		st->cap = ncap;
	}
	fd = temp_beside(dst, tmp, sizeof(tmp), mode);
	if (fd < 0)
		return fd;
	rc = ovc_pwrite_full(fd, data, len, 0);
	if (!rc && fchmod(fd, mode) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	st->tmp[st->n] = strdup(tmp);
	st->dst[st->n] = strdup(dst);
	if (!st->tmp[st->n] || !st->dst[st->n]) {
		free(st->tmp[st->n]);
		free(st->dst[st->n]);
		rc = rc ? rc : -ENOMEM;
	} else {
		st->n++;
	}
	if (rc)
		unlink(tmp);
	return rc;
}

static void stage_free(ovc_stage *st)
{
	for (size_t i = 0; i < st->n; i++) {
		free(st->tmp[i]);
		free(st->dst[i]);
	}
	free(st->tmp);
	free(st->dst);
	memset(st, 0, sizeof(*st));
}

void ovc_stage_abort(ovc_stage *st)
{
	for (size_t i = 0; i < st->n; i++)
		unlink(st->tmp[i]);
	stage_free(st);
}

int ovc_stage_commit(ovc_stage *st, const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
	size_t i = 0;

	if (fd < 0)
		rc = -errno;
	if (!rc && syncfs(fd) < 0)
		rc = -errno;
	for (; !rc && i < st->n; i++)
		if (rename(st->tmp[i], st->dst[i]) < 0)
			rc = -errno;
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	for (; i < st->n; i++) /* not renamed: remove */
		unlink(st->tmp[i]);
	stage_free(st);
	return rc;
}

int ovc_private_dir(const char *path, mode_t mode, int parents)
{
	char p[PATH_MAX];
	struct stat st;
	size_t n = strlen(path);

	if (n >= sizeof(p) || path[0] != '/')
		return -ENAMETOOLONG;
	memcpy(p, path, n + 1);
	for (size_t i = parents ? 1 : n; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		p[i] = '\0';
		if (mkdir(p, i == n ? mode : 0700) != 0 && errno != EEXIST)
			return -errno;
		p[i] = i == n ? '\0' : '/';
	}
	if (lstat(path, &st) != 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (st.st_uid != geteuid() || (st.st_mode & 022))
		return -EPERM;
	if ((st.st_mode & 07777) != mode && chmod(path, mode) != 0)
		return -errno;
	return 0;
}
