/*
 * mounts.c - the agent's set of overlays (see mounts.h).
 *
 * Each folder the agent knows of is one `struct mnt`, from the first sync
 * that desires it until it is unmounted (or, never mounted, no longer
 * desired). Entries are reached through an array of pointers, so a pointer
 * stays valid while the array grows.
 */
#define _GNU_SOURCE /* umount2 flags, makedev */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/common.h"
#include "daemon/log.h"
#include "daemon/mounts.h"
#include "fusefs/overlay.h"

extern char **environ;

/* The overlay's file system type in /proc/self/mountinfo, and its source
 * (fsname) for a mount made without a subtype. */
#define OVERLAY_FSTYPE "fuse.overcrypt"
#define OVERLAY_SOURCE "overcrypt"
/* Rounds of stale-mount removal (stacked mounts of several dead agents). */
#define STALE_ROUNDS 8
/* Sync passes: a mount that fails can uncover inner folders to mount. */
#define SYNC_PASSES 3

enum mstate { M_MOUNTED, M_PENDING, M_FAILED, M_MISSING };
static const char *const mstate_name[] = { "mounted", "pending-unmount", "failed", "missing" };

struct bypass {
	pid_t pid;
	char comm[32];
};

struct mnt {
	char *path;                 /* absolute, normalised */
	enum mstate st;
	ovc_overlay *ov;            /* M_MOUNTED and M_PENDING, else NULL */
	dev_t dev;                  /* the overlay's device (0: unknown) */
	dev_t backing_dev;          /* the folder's own device */
	char reason[512];           /* why it is failed, missing or pending */
	time_t last_try;            /* of the last mount attempt; 0: due */
	int desired;                /* scratch, for one sync */
	struct bypass by[OVC_MOUNTS_MAX_BYPASS];
	size_t nby;
	/* network backings (an SMB share) */
	int network;                /* no writeback cache, no keep_cache */
	char share[2048];           /* "//host/share[/prefix]", or "" */
	char share_at[PATH_MAX];    /* the share's mount point */
	ovc_overlay *guard;         /* a second overlay under `ov`, serving the
				     * same folder: a `umount` of the folder
				     * takes `ov` and leaves this one, so there
				     * is never a moment without an overlay */
	dev_t guard_dev;
	ovc_overlay *retired;       /* a top overlay detached from outside
				     * that still serves open files: freed
				     * once its session has ended */
	int bfd;                    /* the folder (backing side), kept to
				     * mount the top again over the guard;
				     * -1 when none */
};

struct ovc_mounts {
	ovc_mounts_opts o;
	struct mnt **v;
	size_t n, cap;
	int again;                  /* another sync pass is needed */
	int table_changed;          /* check that our mounts are still there */
	time_t last_prune;          /* of the bypass lists and journal scan */
};

/* ---- paths ------------------------------------------------------------------------------ */

/* Is `p` strictly below `dir`? */
static int path_inside(const char *p, const char *dir)
{
	return strcmp(p, dir) && ovc_path_within(p, dir);
}

/* `p` (strictly below `dir`) relative to `dir`. */
static const char *rel_below(const char *p, const char *dir)
{
	return p + strlen(dir) + (dir[1] ? 1 : 0);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- entries ---------------------------------------------------------------------------- */

static struct mnt *ent_find(const ovc_mounts *m, const char *path)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->v[i]->path, path))
			return m->v[i];
	return NULL;
}

/* A new entry for `path` (copied): due for a mount attempt. NULL on
 * ENOMEM. */
static struct mnt *ent_add(ovc_mounts *m, const char *path)
{
	struct mnt *x;

	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		struct mnt **nv = realloc(m->v, cap * sizeof(*nv));

		if (!nv)
			return NULL;
		m->v = nv;
		m->cap = cap;
	}
	x = calloc(1, sizeof(*x));
	if (!x || !(x->path = strdup(path))) {
		free(x);
		return NULL;
	}
	x->st = M_FAILED;
	x->bfd = -1;
	m->v[m->n++] = x;
	return x;
}

/* Drop entry `i` (its overlay already gone). */
static void ent_del(ovc_mounts *m, size_t i)
{
	struct mnt *x = m->v[i];

	free(x->path);
	free(x);
	m->v[i] = m->v[--m->n];
}

/* Is `dev` the device of one of our overlays (guards and retired ones
 * too)? Its entry, or NULL. */
static const struct mnt *ent_by_dev(const ovc_mounts *m, dev_t dev)
{
	for (size_t i = 0; dev && i < m->n; i++) {
		const struct mnt *x = m->v[i];

		if ((x->ov && x->dev == dev) || (x->guard && x->guard_dev == dev) ||
		    (x->retired && ovc_overlay_dev(x->retired) == dev))
			return x;
	}
	return NULL;
}

/* Record a failure (or a missing folder) with its reason; logged when the
 * reason is new, so a retry every 30 s does not fill the log. */
static void ent_fail(struct mnt *x, enum mstate st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void ent_fail(struct mnt *x, enum mstate st, const char *fmt, ...)
{
	char why[sizeof(x->reason)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (x->st != st || strcmp(x->reason, why))
		ovc_log(st == M_MISSING ? OVC_LOG_WARNING : OVC_LOG_ERROR,
			"%s: not mounted: %s (tried again every %d s)", x->path, why,
			OVC_MOUNTS_RETRY_S);
	x->st = st;
	memcpy(x->reason, why, sizeof(why));
}

/* ---- the mount table -------------------------------------------------------------------- */

struct mi {
	char *mp;          /* mount point, unescaped */
	const char *fstype, *source;
	long long user_id; /* -1 when the options do not say */
	dev_t dev;
};

/* Decode mountinfo's octal escapes (\040 etc.) in place. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* One mountinfo line (modified in place) into `e`: 0, or -EINVAL for a
 * line that does not parse. */
static int mi_parse_line(char *line, struct mi *e)
{
	char *f[64], *sp, *tok, *opts;
	size_t n = 0, dash = 0;
	unsigned maj, min;

	for (tok = strtok_r(line, " ", &sp); tok && n < 64; tok = strtok_r(NULL, " ", &sp))
		f[n++] = tok;
	for (size_t i = 6; i < n; i++)
		if (!strcmp(f[i], "-")) {
			dash = i;
			break;
		}
	if (!dash || dash + 2 >= n || sscanf(f[2], "%u:%u", &maj, &min) != 2)
		return -EINVAL;
	unescape(f[4]);
	e->mp = f[4];
	e->fstype = f[dash + 1];
	e->source = f[dash + 2];
	e->dev = makedev(maj, min);
	e->user_id = -1;
	opts = dash + 3 < n ? f[dash + 3] : "";
	for (char *o = opts; o && *o; o = strchr(o, ',') ? strchr(o, ',') + 1 : NULL)
		if (!strncmp(o, "user_id=", 8))
			e->user_id = strtoll(o + 8, NULL, 10);
	return 0;
}

/* The mount table: *out (malloc()ed, pointing into *buf, which the caller
 * frees with it), *n entries. 0 or -errno. */
static int mi_read(struct mi **out, size_t *n, char **buf)
{
	uint8_t *text = NULL;
	size_t len = 0, cap = 0, cnt = 0;
	struct mi *v = NULL;
	char *line, *sp;
	int rc;

	*out = NULL;
	*n = 0;
	*buf = NULL;
	rc = ovc_read_file("/proc/self/mountinfo", 64u << 20, 0, &text, &len);
	if (rc)
		return rc;
	/* ovc_read_file() puts a NUL after the text */
	for (line = strtok_r((char *)text, "\n", &sp); line; line = strtok_r(NULL, "\n", &sp)) {
		struct mi e;

		if (mi_parse_line(line, &e))
			continue;
		if (cnt == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct mi *nv = realloc(v, nc * sizeof(*nv));

			if (!nv) {
				free(v);
				free(text);
				return -ENOMEM;
			}
			v = nv;
			cap = nc;
		}
		v[cnt++] = e;
	}
	*out = v;
	*n = cnt;
	*buf = (char *)text;
	return 0;
}

static int mi_is_fuse(const struct mi *e)
{
	return !strncmp(e->fstype, "fuse", 4) && (e->fstype[4] == '\0' || e->fstype[4] == '.');
}

/* An overlay of ours (of our uid), by type or source. */
static int mi_is_overlay(const struct mi *e)
{
	return mi_is_fuse(e) && e->user_id == (long long)geteuid() &&
	       (!strcmp(e->fstype, OVERLAY_FSTYPE) || !strcmp(e->source, OVERLAY_SOURCE));
}

/* Is the FUSE mount on `path` dead? statfs() always reaches the file
 * system (stat() may be answered from the kernel's attribute cache). */
static int dead_at(const char *path)
{
	struct statfs sf;

	return statfs(path, &sf) != 0 && errno == ENOTCONN;
}

/* ---- detaching ------------------------------------------------------------------------- */

/* Run argv[0] (found on PATH) with a clean signal mask and wait: 0 when
 * it exits 0, else -errno with `e` set. */
static int run(char *const argv[], ovc_err *e)
{
	posix_spawnattr_t at;
	sigset_t none;
	pid_t pid;
	int rc, status;

	sigemptyset(&none);
	if (posix_spawnattr_init(&at))
		return ovc_err_set(e, -ENOMEM, "out of memory");
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
	rc = posix_spawnp(&pid, argv[0], NULL, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	if (rc)
		return ovc_err_set(e, -rc, "cannot run %s: %s", argv[0], strerror(rc));
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return ovc_err_set(e, -errno, "%s: %s", argv[0], strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return ovc_err_set(e, -EIO, "%s failed (status %d)", argv[0],
				   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}

/* `fusermount3 -u -z PATH`. */
static int fusermount_detach(const char *path, ovc_err *e)
{
	char *argv[] = { "fusermount3", "-u", "-z", "--", (char *)path, NULL };

	return run(argv, e);
}

int ovc_mounts_umount_share(const ovc_mounts *m, const char *path, ovc_err *e)
{
	char *argv[] = { "umount", "--", (char *)path, NULL };
	char via[PATH_MAX + 64];
	const struct mnt *outer = NULL;

	if (geteuid() != 0)
		return run(argv, e);
	if (umount2(path, UMOUNT_NOFOLLOW) == 0)
		return 0;
	if (errno != EINVAL)
		return ovc_err_set(e, -errno, "umount %s: %s", path, strerror(errno));
	/* not a mount point on this side: a share mounted before the
	 * folder around it was overlaid sits under that overlay, on the
	 * backing side, reached through the outer folder's descriptor; the
	 * outer overlay may still hold a descriptor of the share's root
	 * (from the path's lookups), so it is detached lazily: gone from
	 * the mount table at once, closed when that descriptor goes */
	for (size_t i = 0; i < m->n; i++) {
		const struct mnt *x = m->v[i];

		/* the deepest overlaid folder around it */
		if (x->ov && x->bfd >= 0 && path_inside(path, x->path) &&
		    (!outer || strlen(x->path) > strlen(outer->path)))
			outer = x;
	}
	if (!outer)
		return ovc_err_set(e, -EINVAL, "umount %s: %s", path, strerror(EINVAL));
	snprintf(via, sizeof(via), "/proc/self/fd/%d/%s", outer->bfd, rel_below(path, outer->path));
	if (umount2(via, UMOUNT_NOFOLLOW | MNT_DETACH) == 0)
		return 0;
	return ovc_err_set(e, -errno, "umount %s (on the backing side of %s): %s", path,
			   outer->path, strerror(errno));
}

/* Lazily unmount whatever is mounted on `path`. */
static int detach(const char *path, ovc_err *e)
{
	if (geteuid() != 0)
		return fusermount_detach(path, e);
	if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) != 0)
		return ovc_err_set(e, -errno, "umount2(%s, MNT_DETACH): %s", path, strerror(errno));
	return 0;
}

/* Is mount `e` a stale one to remove before mounting `path`? A FUSE mount
 * that is none of our live overlays, and: on `path` itself, an overlay of
 * our uid (a killed predecessor's) or a dead FUSE mount; above or below
 * `path`, a dead overlay of our uid. */
static int stale_for(const ovc_mounts *m, const struct mi *e, const char *path)
{
	if (!mi_is_fuse(e) || ent_by_dev(m, e->dev))
		return 0;
	if (!strcmp(e->mp, path))
		return mi_is_overlay(e) || dead_at(e->mp);
	if (path_inside(e->mp, path) || path_inside(path, e->mp))
		return mi_is_overlay(e) && dead_at(e->mp);
	return 0;
}

static int cmp_depth_desc(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);

	return la < lb ? 1 : la > lb ? -1 : 0;
}

/* The stale mounts for `path` now, deepest first: *out malloc()ed array of
 * malloc()ed paths. 0 or -errno. */
static int stale_list(const ovc_mounts *m, const char *path, char ***out, size_t *n)
{
	struct mi *t = NULL;
	size_t nt = 0, cnt = 0;
	char *buf = NULL, **v;
	int rc = mi_read(&t, &nt, &buf);

	*out = NULL;
	*n = 0;
	if (rc)
		return rc;
	v = calloc(nt + 1, sizeof(*v));
	if (!v)
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < nt; i++) {
		if (!stale_for(m, &t[i], path))
			continue;
		/* several stacked on one path: one detach each round */
		for (size_t k = 0; k < cnt; k++)
			if (!strcmp(v[k], t[i].mp))
				goto next;
		if (!(v[cnt] = strdup(t[i].mp)))
			rc = -ENOMEM;
		else
			cnt++;
next:		;
	}
	free(t);
	free(buf);
	if (rc) {
		ovc_views_folders_free(v, cnt);
		return rc;
	}
	if (cnt > 1)
		qsort(v, cnt, sizeof(*v), cmp_depth_desc);
	*out = v;
	*n = cnt;
	return 0;
}

/* Remove stale overlays at, above or below `path` (see stale_for()). */
static int clean_stale(const ovc_mounts *m, const char *path, ovc_err *e)
{
	for (int round = 0; round < STALE_ROUNDS; round++) {
		char **v = NULL;
		size_t n = 0;
		int rc = stale_list(m, path, &v, &n);

		if (rc)
			return ovc_err_set(e, rc, "cannot read /proc/self/mountinfo: %s", strerror(-rc));
		for (size_t i = 0; i < n && !rc; i++) {
			rc = detach(v[i], e);
			if (!rc)
				ovc_log_warn("%s: removed a stale overlay (its agent was killed, or "
					     "its session ended): every access there gave ENOTCONN", v[i]);
		}
		ovc_views_folders_free(v, n);
		if (rc || n == 0)
			return rc;
	}
	return ovc_err_set(e, -EBUSY, "more than %d stale mounts stacked on %s", STALE_ROUNDS, path);
}

/* The device of the topmost mount on `path` now (table order: the last
 * line with that mount point; only FUSE mounts with `fuse_only`), 0 when
 * none or unreadable. */
static dev_t dev_at(const char *path, int fuse_only)
{
	struct mi *t = NULL;
	size_t nt = 0;
	char *buf = NULL;
	dev_t dev = 0;

	if (mi_read(&t, &nt, &buf) == 0)
		for (size_t i = 0; i < nt; i++)
			if (!strcmp(t[i].mp, path) && (!fuse_only || mi_is_fuse(&t[i])))
				dev = t[i].dev;
	free(t);
	free(buf);
	return dev;
}

/* The device of the overlay `ov` just mounted on `path` (the overlay's own
 * stat, else the topmost FUSE mount there, else stat()), 0 when unknown. */
static dev_t overlay_dev(const ovc_overlay *ov, const char *path)
{
	dev_t dev = ovc_overlay_dev(ov);
	struct stat st;

	if (!dev)
		dev = dev_at(path, 1);
	if (!dev && stat(path, &st) == 0)
		dev = st.st_dev;
	return dev;
}

/* ---- processes that bypass an overlay --------------------------------------------------- */

/* Does the /proc magic link `link` lead inside `x`'s folder on the backing
 * side (under the path, on the folder's own device)? */
static int link_bypasses(const char *link, const struct mnt *x)
{
	char t[PATH_MAX];
	ssize_t r = readlink(link, t, sizeof(t) - 1);
	struct stat st;
	size_t n;

	if (r <= 0)
		return 0;
	t[r] = '\0';
	n = (size_t)r;
	if (n > 10 && !strcmp(t + n - 10, " (deleted)"))
		t[n - 10] = '\0';
	if (t[0] != '/' || !ovc_path_within(t, x->path))
		return 0;
	/* an open file of the overlay itself has the overlay's device */
	return stat(link, &st) == 0 && st.st_dev == x->backing_dev;
}

static int pid_bypasses(pid_t pid, const struct mnt *x)
{
	char p[64], l[64 + sizeof(((struct dirent *)0)->d_name)];
	struct dirent *de;
	DIR *d;
	int found = 0;

	snprintf(p, sizeof(p), "/proc/%d/cwd", (int)pid);
	if (link_bypasses(p, x))
		return 1;
	snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
	d = opendir(p);
	if (!d)
		return 0;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(l, sizeof(l), "%s/%s", p, de->d_name);
		found = link_bypasses(l, x);
	}
	closedir(d);
	return found;
}

/* The command name of `pid` ("?" when gone). */
static void pid_comm(pid_t pid, char out[32])
{
	char p[64];
	int fd;
	ssize_t r;

	snprintf(p, sizeof(p), "/proc/%d/comm", (int)pid);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	r = fd >= 0 ? read(fd, out, 31) : -1;
	if (fd >= 0)
		close(fd);
	if (r <= 0) {
		strcpy(out, "?");
		return;
	}
	out[r] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

/* After mounting `x`: every process (but us) still inside the folder on
 * the backing side, logged and kept. */
static void scan_bypass(struct mnt *x)
{
	pid_t self = getpid();
	size_t more = 0;
	struct dirent *de;
	DIR *d = opendir("/proc");

	x->nby = 0;
	if (!d) {
		ovc_log_warn("%s: cannot look for processes that bypass the overlay: /proc: %s",
			     x->path, strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		struct bypass *b;

		if (*end || pid <= 0 || pid == self || !pid_bypasses((pid_t)pid, x))
			continue;
		if (x->nby == OVC_MOUNTS_MAX_BYPASS) {
			more++;
			continue;
		}
		b = &x->by[x->nby++];
		b->pid = (pid_t)pid;
		pid_comm(b->pid, b->comm);
		ovc_log_warn("%s: process %d (%s) was inside the folder before the overlay was "
			     "mounted: it reaches the backing files directly, and what it writes "
			     "there is not encrypted, until it leaves the folder or restarts",
			     x->path, (int)b->pid, b->comm);
	}
	closedir(d);
	if (more)
		ovc_log_warn("%s: %zu more processes bypass the overlay", x->path, more);
}

/* Forget bypassing processes that have left (or exited). */
static void prune_bypass(struct mnt *x)
{
	for (size_t i = 0; i < x->nby; i++) {
		char comm[32];

		pid_comm(x->by[i].pid, comm);
		if (!strcmp(comm, x->by[i].comm) && pid_bypasses(x->by[i].pid, x))
			continue;
		ovc_log_info("%s: process %d (%s) no longer bypasses the overlay", x->path,
			     (int)x->by[i].pid, x->by[i].comm);
		x->by[i--] = x->by[--x->nby];
	}
}

/* ---- mounting and unmounting ------------------------------------------------------------ */

/* Open `x`'s folder for mounting: the descriptor, or -1 with `x` failed. */
static int open_folder(const ovc_mounts *m, struct mnt *x, struct stat *st)
{
	const struct mnt *outer;
	const char *sys = ovc_rule_system_folder(x->path);
	ovc_err e = { 0 };
	int fd;

	if (sys) {
		ent_fail(x, M_FAILED, "a system folder (%s): never overlaid", sys);
		return -1;
	}
	if (clean_stale(m, x->path, &e)) {
		ent_fail(x, M_FAILED, "cannot remove a stale mount: %s", e.msg);
		return -1;
	}
	fd = open(x->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			ent_fail(x, M_MISSING, "the folder does not exist");
		else if (errno == ENOTDIR || errno == ELOOP)
			ent_fail(x, M_FAILED, "not a folder (or a symbolic link, which is never followed)");
		else
			ent_fail(x, M_FAILED, "cannot open the folder: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, st) != 0) {
		ent_fail(x, M_FAILED, "cannot stat the folder: %s", strerror(errno));
		close(fd);
		return -1;
	}
	outer = ent_by_dev(m, st->st_dev);
	if (outer && outer->st != M_PENDING && outer->bfd >= 0 &&
	    path_inside(x->path, outer->path)) {
		/* a share mounted inside an overlaid folder before that was
		 * overlaid: the path leads through our overlay, so reach the
		 * share from the outer folder's own descriptor (the share's
		 * mount sits on the backing side) */
		int fd2 = openat(outer->bfd, rel_below(x->path, outer->path),
				 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		close(fd);
		if (fd2 < 0 || fstat(fd2, st) != 0 || ent_by_dev(m, st->st_dev)) {
			ent_fail(x, M_FAILED, "inside the overlay on %s, and not reachable on its "
				 "backing side", outer->path);
			if (fd2 >= 0)
				close(fd2);
			return -1;
		}
		fd = fd2;
		outer = NULL;
	}
	if (outer) {
		/* an overlay being released still covers it: retry at once */
		ent_fail(x, M_FAILED, "inside the overlay on %s, which is unmounted once its "
			 "open files are closed", outer->path);
		x->last_try = 0;
		close(fd);
		return -1;
	}
	if (!m->o.system && st->st_uid != geteuid()) {
		ent_fail(x, M_FAILED, "owned by uid %u, not by this agent's uid %u: in user mode "
			 "only your own folders are overlaid (shared folders need system mode)",
			 (unsigned)st->st_uid, (unsigned)geteuid());
		close(fd);
		return -1;
	}
	return fd;
}

/* Unmount `ov` (mounted on `path` with device `dev`) when it is the
 * topmost mount there; else (taken from outside, or something is on top
 * of it) end its session without touching the path: an unmount by path
 * takes the topmost mount, which may be another overlay or the share
 * itself. */
static void unmount_safely(ovc_overlay *ov, dev_t dev, const char *path)
{
	if (!ov)
		return;
	if (dev && dev_at(path, 0) == dev)
		ovc_overlay_unmount(ov);
	else
		ovc_overlay_discard(ov);
}

/* Every overlay of `x` gone: the top first, then the guard under it, then
 * a retired one; the kept folder closed. */
static void unmount_all(struct mnt *x)
{
	unmount_safely(x->ov, x->dev, x->path);
	x->ov = NULL;
	unmount_safely(x->guard, x->guard_dev, x->path);
	x->guard = NULL;
	x->guard_dev = 0;
	ovc_overlay_discard(x->retired);
	x->retired = NULL;
	if (x->bfd >= 0)
		close(x->bfd);
	x->bfd = -1;
	x->nby = 0;
}

/* Handles open on any overlay of `x`. */
static uint64_t open_handles(const struct mnt *x)
{
	const ovc_overlay *all[3] = { x->ov, x->guard, x->retired };
	uint64_t k = 0;

	for (size_t i = 0; i < 3; i++)
		if (all[i] && !ovc_overlay_dead(all[i])) {
			ovc_overlay_stats s;

			ovc_overlay_stats_get(all[i], &s);
			k += s.open_handles;
		}
	return k;
}

/* Unmount `x`'s overlays unless files are open on them (then it becomes
 * pending). 1 when they are gone, 0 when pending. */
static int release(struct mnt *x)
{
	uint64_t h = open_handles(x);

	if (h > 0) {
		if (x->st != M_PENDING)
			ovc_log_info("%s: no longer to be overlaid, but %" PRIu64 " open file%s: "
				     "unmounted once %s closed", x->path, h,
				     h == 1 ? " is" : "s are", h == 1 ? "it is" : "they are");
		x->st = M_PENDING;
		snprintf(x->reason, sizeof(x->reason), "%" PRIu64 " open file%s: unmounted once "
			 "closed", h, h == 1 ? "" : "s");
		return 0;
	}
	unmount_all(x);
	ovc_log_info("%s: overlay unmounted", x->path);
	return 1;
}

/* Is the folder on a network file system (statfs types of cifs, smb2,
 * smb and nfs)? */
static int network_fs(int fd)
{
	struct statfs sf;

	if (fstatfs(fd, &sf) != 0)
		return 0;
	switch ((unsigned long)sf.f_type) {
	case 0xFF534D42UL: /* cifs */
	case 0xFE534D42UL: /* smb2 */
	case 0x517BUL:     /* smb */
	case 0x6969UL:     /* nfs */
		return 1;
	default:
		return 0;
	}
}

/* The SMB share (of the watched table) that `x`'s folder lies on: the one
 * with the deepest mount point at or above it. Fills x->share and
 * x->share_at ("" when none). */
static void find_share(const ovc_mounts *m, struct mnt *x)
{
	size_t n = 0, best = 0;
	const ovc_smb_mount *v = ovc_mtab_smb(m->o.mtab, &n), *b = NULL;

	for (size_t i = 0; i < n; i++)
		if (ovc_path_within(x->path, v[i].mountpoint) && strlen(v[i].mountpoint) >= best) {
			b = &v[i];
			best = strlen(v[i].mountpoint);
		}
	x->share[0] = x->share_at[0] = '\0';
	if (b) {
		ovc_smb_source(b, x->share, sizeof(x->share));
		snprintf(x->share_at, sizeof(x->share_at), "%s", b->mountpoint);
	}
}

/* Mount one overlay of `x` on its folder, serving `fd` (taken over). A
 * guard (the overlay under the top) keeps no rewrap journal: a folder
 * moved between rules through it in the moment after a `umount` gives
 * EXDEV, and only the top resumes the journal's entries. */
static int mount_instance(ovc_mounts *m, struct mnt *x, int fd, ovc_overlay **out, ovc_err *e)
{
	ovc_overlay_opts oo = { 0 };

	oo.mountpoint = x->path;
	oo.backing_fd = fd;
	oo.views = m->o.views;
	oo.allow_other = m->o.system || m->o.allow_other;
	oo.network = x->network;
	oo.read_ahead_kb = geteuid() == 0 ? OVC_MOUNTS_READ_AHEAD_KB : 0;
	oo.journal_fd = out == &x->guard ? -1 : m->o.journal_fd;
	return ovc_overlay_mount(&oo, out, e);
}

/* A new descriptor (its own file description) of the folder `fd`. */
static int reopen_dir(int fd)
{
	return openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* The (top) overlay of `x`, from the kept folder. */
static int mount_top(ovc_mounts *m, struct mnt *x, ovc_err *e)
{
	int fd = reopen_dir(x->bfd);

	if (fd < 0)
		return ovc_err_set(e, -errno, "cannot open the folder again: %s", strerror(errno));
	return mount_instance(m, x, fd, &x->ov, e);
}

static void mount_one(ovc_mounts *m, struct mnt *x, time_t now)
{
	ovc_err e = { 0 };
	struct stat st;
	int fd, rc;

	x->last_try = now ? now : 1;
	if (x->guard) {
		/* the guard serves the folder: only the top is missing */
		rc = mount_top(m, x, &e);
	} else {
		fd = open_folder(m, x, &st);
		if (fd < 0)
			return;
		find_share(m, x);
		x->network = x->share[0] || network_fs(fd);
		x->backing_dev = st.st_dev;
		/* the folder's descriptor is kept: a network backing's top is
		 * mounted again from it, and shares inside are reached through
		 * it (open_folder) */
		x->bfd = fd;
		if (!x->network) {
			rc = mount_top(m, x, &e);
		} else {
			int g = reopen_dir(fd);

			rc = g < 0 ? ovc_err_set(&e, -errno, "cannot open the folder again: %s", strerror(errno))
				   : mount_instance(m, x, g, &x->guard, &e);
			if (rc == 0) {
				x->guard_dev = overlay_dev(x->guard, x->path);
				rc = mount_top(m, x, &e);
			}
		}
	}
	if (rc != 0) {
		x->ov = NULL;
		if (!x->guard && x->bfd >= 0) {
			close(x->bfd);
			x->bfd = -1;
		}
		ent_fail(x, M_FAILED, "%s", e.msg[0] ? e.msg : "the FUSE mount failed");
		m->again = 1;   /* inner folders it would have covered */
		return;
	}
	x->st = M_MOUNTED;
	x->reason[0] = '\0';
	x->dev = overlay_dev(x->ov, x->path);
	if (x->share[0])
		ovc_log_info("%s: overlay mounted over the SMB share %s (network: no writeback "
			     "cache, no keep_cache)", x->path, x->share);
	else
		ovc_log_info("%s: overlay mounted%s%s", x->path,
			     m->o.system || m->o.allow_other ? " (allow_other)" : "",
			     x->network ? " (network file system: no writeback cache, no keep_cache)" : "");
	scan_bypass(x);
}

/* ---- the desired set -------------------------------------------------------------------- */

/* Does the outer folder `g` serve the folders inside it? Not a system
 * folder (never mounted), nor one whose mount failed or that is missing
 * (until it is tried again): the inner ones are mounted on their own
 * meanwhile. */
static int serves_inner(const ovc_mounts *m, const char *g)
{
	const struct mnt *x = ent_find(m, g);

	if (ovc_rule_system_folder(g))
		return 0;
	return !x || x->ov || x->last_try == 0 || (x->st != M_FAILED && x->st != M_MISSING);
}

/* Leave out of the sorted `f` (*n strings) the repeated ones and those
 * inside a serving outer folder: decided for all first, then compacted. */
static int drop_covered(const ovc_mounts *m, char **f, size_t *n)
{
	char *drop = calloc(*n + 1, 1);
	size_t k = 0;

	if (!drop)
		return -ENOMEM;
	for (size_t i = 0; i < *n; i++) {
		drop[i] = i > 0 && !strcmp(f[i - 1], f[i]);
		/* a share is another file system: it gets its own (network)
		 * overlay even inside an overlaid folder, where its mount
		 * would otherwise bypass the outer overlay */
		if (drop[i] || ovc_mtab_find(m->o.mtab, f[i]))
			continue;
		for (size_t j = 0; j < *n && !drop[i]; j++)
			drop[i] = j != i && path_inside(f[i], f[j]) && serves_inner(m, f[j]);
	}
	for (size_t i = 0; i < *n; i++) {
		if (drop[i])
			free(f[i]);
		else
			f[k++] = f[i];
	}
	free(drop);
	*n = k;
	return 0;
}

/* A share on which a folder of `f` lies is overlaid from its mount point
 * (the folder is then served by that overlay): `umount` of the share meets
 * the overlay first, and a rule's folder made on the share later is
 * covered from its first file. The views' folders stay as they are (they
 * also say where a uid without a view may not write). Appends the mount
 * points to *f. 0 or -ENOMEM. */
static int add_share_roots(const ovc_mounts *m, char ***f, size_t *nf)
{
	size_t ns = 0, n0 = *nf;
	const ovc_smb_mount *s = ovc_mtab_smb(m->o.mtab, &ns);
	char **v;

	if (!ns)
		return 0;
	v = realloc(*f, (n0 + ns + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	*f = v;
	for (size_t k = 0; k < ns; k++)
		for (size_t i = 0; i < n0; i++)
			if (ovc_path_within(v[i], s[k].mountpoint)) {
				if (!(v[*nf] = strdup(s[k].mountpoint)))
					return -ENOMEM;
				(*nf)++;
				break;
			}
	return 0;
}

/* The folders to overlay now: normalised, each once, sorted, the inner
 * ones of a serving outer folder left out. */
static int desired(const ovc_mounts *m, char ***out, size_t *n)
{
	char **f = NULL, buf[PATH_MAX];
	size_t nf = 0, k = 0;
	int rc = ovc_views_guard_folders(m->o.views, &f, &nf);

	*out = NULL;
	*n = 0;
	if (rc)
		return rc;
	for (size_t i = 0; i < nf; i++) {
		char *c;

		if (ovc_path_normalise(f[i], buf, sizeof(buf)) != 0) {
			ovc_log_warn("%s: not an absolute path that can be overlaid: skipped", f[i]);
			free(f[i]);
			continue;
		}
		if (!(c = strdup(buf))) {
			for (size_t j = i; j < nf; j++)
				free(f[j]);
			ovc_views_folders_free(f, k);
			return -ENOMEM;
		}
		free(f[i]);
		f[k++] = c;
	}
	nf = k;
	rc = add_share_roots(m, &f, &nf);
	if (rc) {
		ovc_views_folders_free(f, nf);
		return rc;
	}
	if (nf > 1)
		qsort(f, nf, sizeof(*f), cmp_str);
	rc = drop_covered(m, f, &nf);
	if (rc) {
		ovc_views_folders_free(f, nf);
		return rc;
	}
	*out = f;
	*n = nf;
	return 0;
}

/* ---- the public functions -------------------------------------------------------------- */

int ovc_mounts_new(const ovc_mounts_opts *o, ovc_mounts **out)
{
	ovc_mounts *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return -ENOMEM;
	m->o = *o;
	*out = m;
	return 0;
}

static int cmp_mnt_depth_desc(const void *a, const void *b)
{
	size_t la = strlen((*(struct mnt *const *)a)->path);
	size_t lb = strlen((*(struct mnt *const *)b)->path);

	return la < lb ? 1 : la > lb ? -1 : 0;
}

void ovc_mounts_free(ovc_mounts *m)
{
	if (!m)
		return;
	/* the deepest first: a share's overlays inside an overlaid folder
	 * go before the outer one */
	if (m->n > 1)
		qsort(m->v, m->n, sizeof(*m->v), cmp_mnt_depth_desc);
	for (size_t i = 0; i < m->n; i++) {
		struct mnt *x = m->v[i];

		if (x->ov || x->guard || x->retired) {
			unmount_all(x);
			ovc_log_info("%s: overlay unmounted", x->path);
		}
		free(x->path);
		free(x);
	}
	free(m->v);
	free(m);
}

/* Undesired entries: unmounted (or pending), or forgotten. */
static void drop_undesired(ovc_mounts *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct mnt *x = m->v[i];

		if (x->desired)
			continue;
		if ((x->ov || x->guard || x->retired) && !release(x))
			continue;
		if (!x->ov && x->st != M_PENDING)
			ovc_log_debug("%s: no longer to be overlaid", x->path);
		ent_del(m, i);
		i--;
	}
}

/* Is the mount of device `dev` in the table `t` (NULL: not read, so
 * taken as there)? */
static int in_table(const struct mi *t, size_t nt, dev_t dev)
{
	if (!t || !dev)
		return 1;   /* not read, or the device is unknown: not judged */
	for (size_t i = 0; i < nt; i++)
		if (t[i].dev == dev)
			return 1;
	return 0;
}

/* The top overlay left: freed when its session ended, else (detached
 * lazily, files still open on it) kept as the retired one. */
static void retire(struct mnt *x)
{
	if (!x->ov)
		return;
	if (ovc_overlay_dead(x->ov)) {
		ovc_overlay_discard(x->ov);
	} else {
		ovc_overlay_discard(x->retired);
		x->retired = x->ov;
	}
	x->ov = NULL;
}

static int gone(const ovc_overlay *ov, dev_t dev, const struct mi *t, size_t nt)
{
	return ovc_overlay_dead(ov) || !in_table(t, nt, dev);
}

/* Overlays of `x` that ended on their own, or left the mount table
 * (`umount`, `umount -l`; `t` is the table when it changed, else NULL).
 * With its guard still there, the top is mounted again at once over it;
 * else everything of `x` goes and is mounted again below. A top that left
 * the table but still serves open files is kept (retired) until its
 * session ends. */
static void reap_dead(ovc_mounts *m, struct mnt *x, const struct mi *t, size_t nt, time_t now)
{
	ovc_err e = { 0 };

	if (x->retired && ovc_overlay_dead(x->retired)) {
		ovc_overlay_discard(x->retired);
		x->retired = NULL;
	}
	if (!x->ov && !x->guard)
		return;
	if (x->ov && !gone(x->ov, x->dev, t, nt))
		return;
	if (x->guard && !gone(x->guard, x->guard_dev, t, nt)) {
		if (!x->ov)
			return; /* a top that failed to mount: retried as usual */
		ovc_log_warn("%s: the overlay was unmounted from outside (umount) while %s stays "
			     "mounted: mounted again at once; the overlay under it served the "
			     "folder meanwhile, so nothing reached it unencrypted", x->path,
			     x->share[0] ? x->share : "the network file system");
		retire(x);
		x->last_try = now ? now : 1;
		if (mount_top(m, x, &e) != 0) {
			x->ov = NULL;
			ent_fail(x, M_FAILED, "the overlay was unmounted and cannot be mounted again "
				 "(the one under it still serves): %s", e.msg);
			return;
		}
		x->dev = overlay_dev(x->ov, x->path);
		return;
	}
	if (x->share[0])
		ovc_log_warn("%s: the overlays were unmounted from outside while the SMB share %s "
			     "stays mounted: mounting them again (until now the share was reachable "
			     "without encryption)", x->path, x->share);
	else
		ovc_log_warn("%s: the overlay's session ended (unmounted from outside, or aborted): "
			     "mounting it again", x->path);
	retire(x);
	if (x->guard && gone(x->guard, x->guard_dev, t, nt))
		ovc_overlay_discard(x->guard);
	else
		unmount_safely(x->guard, x->guard_dev, x->path);
	x->guard = NULL;
	x->guard_dev = 0;
	if (x->bfd >= 0)
		close(x->bfd);
	x->bfd = -1;
	x->nby = 0;
	x->st = M_FAILED;
	snprintf(x->reason, sizeof(x->reason), "the session ended; mounting again");
	x->last_try = 0;
}

/* One pass: undesired overlays go first (so a broader folder is never
 * mounted over an inner overlay that could go), then each desired folder
 * is checked and mounted when due. */
static int sync_pass(ovc_mounts *m, time_t now, int force)
{
	char **want = NULL;
	size_t nwant = 0;
	struct mi *t = NULL;
	size_t nt = 0;
	char *tbuf = NULL;
	int rc = desired(m, &want, &nwant);

	if (rc)
		return rc;
	if (m->table_changed) {
		m->table_changed = 0;
		if (mi_read(&t, &nt, &tbuf) != 0)
			t = NULL;
	}
	for (size_t i = 0; i < m->n; i++)
		m->v[i]->desired = nwant &&
			bsearch(&m->v[i]->path, want, nwant, sizeof(*want), cmp_str) != NULL;
	drop_undesired(m);
	for (size_t i = 0; i < nwant; i++) {
		struct mnt *x = ent_find(m, want[i]);

		if (!x && !(x = ent_add(m, want[i]))) {
			rc = -ENOMEM;
			break;
		}
		x->desired = 1;
		reap_dead(m, x, t, nt, now);
		if (x->ov) {
			if (x->st == M_PENDING)
				ovc_log_info("%s: to be overlaid again: kept mounted", x->path);
			x->st = M_MOUNTED;
			x->reason[0] = '\0';
			continue;
		}
		/* (a clock set back must not hold a retry up) */
		if (force || x->last_try == 0 || now < x->last_try ||
		    now - x->last_try >= OVC_MOUNTS_RETRY_S)
			mount_one(m, x, now);
	}
	ovc_views_folders_free(want, nwant);
	free(t);
	free(tbuf);
	return rc;
}

int ovc_mounts_sync(ovc_mounts *m, time_t now, int force)
{
	int rc = 0;

	for (int pass = 0; pass < SYNC_PASSES; pass++) {
		m->again = 0;
		rc = sync_pass(m, now, force && pass == 0);
		if (rc) {
			ovc_log_error("mounts: out of memory: the overlays stay as they are");
			return rc;
		}
		if (!m->again)
			break;
	}
	/* once a second, not at every wake-up (each control request) */
	if (now != m->last_prune) {
		m->last_prune = now;
		for (size_t i = 0; i < m->n; i++) {
			if (m->v[i]->nby)
				prune_bypass(m->v[i]);
			if (m->v[i]->ov && m->v[i]->st == M_MOUNTED)
				ovc_overlay_resume(m->v[i]->ov);
		}
	}
	return 0;
}

ovc_overlay *ovc_mounts_find(const ovc_mounts *m, const char *path)
{
	ovc_overlay *best = NULL;
	size_t best_len = 0;

	for (size_t i = 0; m && i < m->n; i++) {
		const struct mnt *x = m->v[i];
		size_t l;

		if (!x->ov)
			continue;
		l = strlen(x->path);
		if (strncmp(path, x->path, l) == 0 && (path[l] == '/' || path[l] == 0 ||
						       (l == 1 && x->path[0] == '/')) &&
		    l >= best_len) {
			best = x->ov;
			best_len = l;
		}
	}
	return best;
}

void ovc_mounts_table_changed(ovc_mounts *m)
{
	m->table_changed = 1;
}

uint64_t ovc_mounts_open_under(const ovc_mounts *m, const char *path, char *where,
			       size_t size)
{
	uint64_t k = 0;

	for (size_t i = 0; i < m->n; i++) {
		uint64_t h;

		if (!ovc_path_within(m->v[i]->path, path))
			continue;
		h = open_handles(m->v[i]);
		if (h && !k)
			snprintf(where, size, "%s", m->v[i]->path);
		k += h;
	}
	return k;
}

void ovc_mounts_flush_encrypted(ovc_mounts *m, uid_t uid)
{
	for (size_t i = 0; m && i < m->n; i++) {
		struct mnt *x = m->v[i];
		ovc_overlay *all[3] = { x->ov, x->guard, x->retired };

		for (size_t j = 1; j < 3; j++)
			if (all[j])
				ovc_overlay_flush_encrypted(all[j], uid);
		if (x->ov) {
			size_t k = ovc_overlay_flush_encrypted(x->ov, uid);

			ovc_log_debug("%s: keys of uid %u going: %zu cached encrypted file%s flushed "
				      "and invalidated", x->path, (unsigned)uid, k, k == 1 ? "" : "s");
		}
	}
}

size_t ovc_mounts_count(const ovc_mounts *m)
{
	size_t k = 0;

	for (size_t i = 0; m && i < m->n; i++)
		k += m->v[i]->ov != NULL;
	return k;
}

/* ---- status ----------------------------------------------------------------------------- */

/* The local folder of each rule, as the matcher places it for `user`
 * (smb:// rules through this machine's mounts): a malloc()ed array of
 * `n` malloc()ed strings or NULLs. NULL on ENOMEM. */
static char **rule_folders(const ovc_mounts *m, const ovc_rule *rules, size_t n,
			   const char *user)
{
	size_t nsm = 0;
	const ovc_smb_mount *sm = ovc_mtab_smb(m->o.mtab, &nsm);
	char **f = calloc(n + 1, sizeof(*f));

	if (!f)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		ovc_ruleset *rs = NULL;
		ovc_err e = { 0 };
		const char *const *lf;
		size_t nlf = 0;

		/* the matcher alone knows where a rule lands (%USERNAME%, smb) */
		if (ovc_ruleset_build(&rules[i], 1, user, sm, nsm, &rs, &e) != 0)
			continue;
		lf = ovc_ruleset_local_folders(rs, &nlf);
		if (nlf)
			f[i] = strdup(lf[0]);
		ovc_ruleset_free(rs);
	}
	return f;
}

static int cmp_mnt_path(const void *a, const void *b)
{
	return strcmp((*(const struct mnt *const *)a)->path, (*(const struct mnt *const *)b)->path);
}

static cJSON *rules_under(const char *path, const ovc_rule *rules, char **folders, size_t n)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; a && i < n; i++) {
		int dup = 0;

		if (!folders[i] || !ovc_path_within(folders[i], path))
			continue;
		for (size_t j = 0; j < i && !dup; j++)
			dup = folders[j] && ovc_path_within(folders[j], path) &&
			      !strcmp(rules[j].asset, rules[i].asset);
		if (!dup)
			cJSON_AddItemToArray(a, cJSON_CreateString(rules[i].asset));
	}
	return a;
}

static cJSON *bypass_json(const struct mnt *x)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; a && i < x->nby; i++) {
		cJSON *p = cJSON_CreateObject();

		if (!p)
			break;
		cJSON_AddNumberToObject(p, "pid", x->by[i].pid);
		cJSON_AddStringToObject(p, "command", x->by[i].comm);
		cJSON_AddItemToArray(a, p);
	}
	return a;
}

/* The share an overlay covers and the smb:// rules that put it there
 * (those whose local folder is the overlay's folder or below it), or
 * null. */
static cJSON *share_json(const struct mnt *x, const ovc_rule *rules, char **folders, size_t n)
{
	cJSON *o, *via;

	if (!x->share[0])
		return cJSON_CreateNull();
	o = cJSON_CreateObject();
	via = cJSON_CreateArray();
	if (!o || !via) {
		cJSON_Delete(o);
		cJSON_Delete(via);
		return NULL;
	}
	cJSON_AddStringToObject(o, "source", x->share);
	cJSON_AddStringToObject(o, "mountpoint", x->share_at);
	for (size_t i = 0; i < n; i++) {
		cJSON *r;

		if (!folders[i] || !ovc_path_within(folders[i], x->path) ||
		    strncmp(rules[i].path, "smb://", 6) || !(r = cJSON_CreateObject()))
			continue;
		cJSON_AddStringToObject(r, "asset", rules[i].asset);
		cJSON_AddStringToObject(r, "path", rules[i].path);
		cJSON_AddItemToArray(via, r);
	}
	cJSON_AddItemToObject(o, "rules", via);
	return o;
}

static cJSON *mount_json(const struct mnt *x, uid_t uid, const ovc_view *v,
			 cJSON *rules, cJSON *share)
{
	ovc_overlay_stats s = { 0 };
	uint64_t after_lock = 0;
	cJSON *o = cJSON_CreateObject();

	if (!o) {
		cJSON_Delete(rules);
		cJSON_Delete(share);
		return NULL;
	}
	if (x->ov)
		ovc_overlay_stats_get(x->ov, &s);
	if (!v || v->state != OVC_VIEW_READY) {
		const ovc_overlay *all[3] = { x->ov, x->guard, x->retired };

		for (size_t j = 0; j < 3; j++)
			if (all[j])
				after_lock += ovc_overlay_open_by(all[j], uid);
	}
	cJSON_AddStringToObject(o, "path", x->path);
	cJSON_AddStringToObject(o, "state", mstate_name[x->st]);
	if (x->reason[0] && x->st != M_MOUNTED)
		cJSON_AddStringToObject(o, "reason", x->reason);
	else
		cJSON_AddNullToObject(o, "reason");
	cJSON_AddItemToObject(o, "rules", rules);
	cJSON_AddItemToObject(o, "share", share);
	cJSON_AddBoolToObject(o, "network", x->network);
	cJSON_AddNumberToObject(o, "bytes_read", (double)s.bytes_read);
	cJSON_AddNumberToObject(o, "bytes_written", (double)s.bytes_written);
	cJSON_AddNumberToObject(o, "files_opened", (double)s.files_opened);
	cJSON_AddNumberToObject(o, "open_handles", (double)s.open_handles);
	cJSON_AddNumberToObject(o, "open_after_lock", (double)after_lock);
	cJSON_AddItemToObject(o, "bypassing", bypass_json(x));
	return o;
}

/* Does the mount `x` serve one of `v`'s folders (or lie inside one)? */
static int serves_view(const struct mnt *x, const ovc_view *v)
{
	char buf[PATH_MAX];

	for (size_t i = 0; v && i < v->nfolders; i++)
		if (ovc_path_normalise(v->folders[i], buf, sizeof(buf)) == 0 &&
		    (ovc_path_within(buf, x->path) || ovc_path_within(x->path, buf)))
			return 1;
	return 0;
}

cJSON *ovc_mounts_status(const ovc_mounts *m, uid_t uid, const ovc_view *v,
			 const ovc_rule *rules, size_t nrules,
			 const char *user)
{
	cJSON *a = cJSON_CreateArray();
	char **folders = rule_folders(m, rules, nrules, user);
	const struct mnt **sorted = calloc(m->n + 1, sizeof(*sorted));

	if (!a || !folders || !sorted) {
		cJSON_Delete(a);
		a = NULL;
		goto out;
	}
	for (size_t i = 0; i < m->n; i++)
		sorted[i] = m->v[i];
	if (m->n > 1)
		qsort(sorted, m->n, sizeof(*sorted), cmp_mnt_path);
	for (size_t i = 0; i < m->n; i++) {
		cJSON *o;

		/* system mode: a user sees the mounts of their own folders only */
		if (m->o.system && !serves_view(sorted[i], v))
			continue;
		o = mount_json(sorted[i], uid, v, rules_under(sorted[i]->path, rules, folders, nrules),
			       share_json(sorted[i], rules, folders, nrules));
		if (!o) {
			cJSON_Delete(a);
			a = NULL;
			goto out;
		}
		cJSON_AddItemToArray(a, o);
	}
out:
	if (folders)
		ovc_views_folders_free(folders, nrules);
	free(sorted);
	return a;
}
