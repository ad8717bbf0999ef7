/*
 * overlay.c - the FUSE low-level file system (see overlay.h, itable.h,
 * decide.h and docs/overlay.md).
 *
 * Every request handler ends in exactly one reply. Backing access is by
 * *at() calls relative to descriptors of the inode table (itable.h); a
 * file handle keeps the view it was opened with, and an encrypted inode's
 * ovc_file (header, file key, size) is shared by all its handles under the
 * inode's rwlock: readers share it, writers and size changes take it
 * exclusively.
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 314
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fuse_lowlevel.h>
#include <sodium.h>

#include "crypto/format.h"
#include "daemon/log.h"
#include "fusefs/decide.h"
#include "fusefs/itable.h"
#include "fusefs/journal.h"
#include "fusefs/overlay.h"

#define MAX_IO (1u << 20)          /* max_write / max_read */
#define FD_CACHE 4096              /* bounded descriptor cache */
#define TIMEOUT 1.0                /* entry and attribute cache, seconds (a
				    * network backing: 0, the share's own
				    * attribute cache is the only one) */

struct ovc_overlay {
	char *mnt;
	ovc_views *views;
	ovc_itable *it;
	struct fuse_session *se;
	pthread_t th;
	int th_started;
	atomic_int dead;
	atomic_int no_mark;          /* the backing keeps no user xattrs */
	int network;
	double timeout;              /* entry and attribute cache, seconds */
	int no_writeback, no_keep_cache, no_readdirplus; /* opts */
	unsigned max_write;
	int journal_fd;              /* folder of rewrap journals, or -1 */
	atomic_int stopping;         /* teardown: walks stop early */
	pthread_t resume_th;         /* finishing interrupted folder moves */
	int resume_started;          /* resume_th not joined yet */
	dev_t fuse_dev;              /* the mount's device */
	dev_t it_dev;                /* the backing root's device */
	atomic_uint_fast64_t bytes_read, bytes_written, files_opened;
	atomic_uint_fast64_t open_handles, open_encrypted, auth_failures;
	pthread_mutex_t by_mu;       /* guards by_uid and handles */
	struct handle *handles;      /* not yet released (freed at unmount) */
	struct { uid_t uid; uint64_t n; } by_uid[64]; /* encrypted handles */
};

struct handle {
	int fd;                    /* backing descriptor of this handle */
	struct ovc_inode *ino;     /* holds a table reference */
	ovc_view *view;            /* the view it was opened with */
	uid_t uid;
	pid_t tid;                 /* the opener (a thread id: fuse_ctx) */
	uint8_t kid[OVC_KEY_ID_BYTES]; /* enc: the key id it was opened under */
	int enc;                   /* reads and writes go through ino->ef */
	int writable;
	struct handle *prev, *next; /* the overlay's list (by_mu) */
};

struct dhandle {
	DIR *dp;
	off_t off;
	struct dirent *entry;
};

/* ---- per-thread cipher and buffer ------------------------------------------------- */

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

struct tls {
	ovc_cipher *c;
	uint8_t *buf;
};

static void tls_free(void *p)
{
	struct tls *t = p;

	if (!t)
		return;
	ovc_cipher_free(t->c);
	free(t->buf);
	free(t);
}

static void tls_init(void)
{
	if (pthread_key_create(&tls_key, tls_free) != 0)
		abort();
}

/* A cipher and an I/O buffer of one's own (NULL on ENOMEM). */
static struct tls *tls_new(void)
{
	struct tls *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->c = ovc_cipher_new();
	t->buf = malloc(MAX_IO);
	if (!t->c || !t->buf) {
		tls_free(t);
		return NULL;
	}
	return t;
}

/* The calling worker thread's (kept until the thread ends). Only for the
 * session's threads: the agent's thread, which never ends before the
 * process, takes a tls_new() per call instead. */
static struct tls *tls_get(void)
{
	struct tls *t;

	pthread_once(&tls_once, tls_init);
	t = pthread_getspecific(tls_key);
	if (t)
		return t;
	t = tls_new();
	if (t && pthread_setspecific(tls_key, t) != 0) {
		tls_free(t);
		return NULL;
	}
	return t;
}

/* ---- helpers --------------------------------------------------------------------- */

static ovc_overlay *OV(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct ovc_inode *INO(ovc_overlay *ov, fuse_ino_t n)
{
	return n == FUSE_ROOT_ID ? ovc_itable_root(ov->it) : (struct ovc_inode *)(uintptr_t)n;
}

static fuse_ino_t NODE(ovc_overlay *ov, struct ovc_inode *i)
{
	return i == ovc_itable_root(ov->it) ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)i;
}

static void proc_path(char *buf, size_t n, int fd)
{
	snprintf(buf, n, "/proc/self/fd/%d", fd);
}

static int stat_at(const struct ovc_at *a, struct stat *st)
{
	int rc = a->name[0] ? fstatat(a->fd, a->name, st, AT_SYMLINK_NOFOLLOW)
			    : fstatat(a->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
	return rc < 0 ? -errno : 0;
}

/* Open the inode's file (never following a symlink). */
static int open_at(const struct ovc_at *a, int flags)
{
	char p[64];
	int fd;

	flags |= O_CLOEXEC | O_NOFOLLOW;
	if (a->name[0]) {
		fd = openat(a->fd, a->name, flags);
	} else {
		proc_path(p, sizeof(p), a->fd);
		fd = open(p, flags & ~O_NOFOLLOW);
	}
	return fd < 0 ? -errno : fd;
}

/* The absolute path of `i` (+ "/child"). */
static int abs_path(ovc_overlay *ov, struct ovc_inode *i, const char *child,
		    char *buf, size_t size)
{
	size_t ml = strlen(ov->mnt);
	int rc;

	if (ml + 2 >= size)
		return -ENAMETOOLONG;
	memcpy(buf, ov->mnt, ml);
	buf[ml] = '/';
	rc = ovc_itable_path(ov->it, i, child, buf + ml + 1, size - ml - 1);
	if (rc < 0)
		return rc;
	if (buf[ml + 1] == 0 && ml > 0)
		buf[ml] = 0; /* the root itself */
	if (ml == 1)
		memmove(buf, buf + 1, strlen(buf + 1) + 1); /* mounted on "/" */
	return 0;
}

static int ts_eq(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* The marker: every backing file the overlay encrypts (or opens for writing
 * encrypted) carries the xattr MARK_NAME = the format's magic, so that
 * `stat` shows its plaintext size without reading its header (the size
 * alone gives it, crypto/format.h). It is a hint for sizes only: what a file
 * is and which key opens it are always read from its header at `open`. It
 * is hidden from programs on the overlay (docs/overlay.md, "Sizes without
 * reading headers"; threat model M23). */
#define MARK_NAME "user.overcrypt"
#define MARK_PREFIX "user.overcrypt"

static int is_mark_name(const char *name)
{
	return strncmp(name, MARK_PREFIX, sizeof(MARK_PREFIX) - 1) == 0;
}

/* Does the backing file at `a` carry the marker? */
static int has_mark(ovc_overlay *ov, const struct ovc_at *a)
{
	char p[PATH_MAX + 32], v[OVC_MAGIC_LEN];
	ssize_t n;
	int len;

	if (atomic_load(&ov->no_mark))
		return 0;
	len = a->name[0] ? snprintf(p, sizeof(p), "/proc/self/fd/%d/%s", a->fd, a->name)
			 : snprintf(p, sizeof(p), "/proc/self/fd/%d", a->fd);
	if (len < 0 || (size_t)len >= sizeof(p))
		return 0;
	n = a->name[0] ? lgetxattr(p, MARK_NAME, v, sizeof(v))
		       : getxattr(p, MARK_NAME, v, sizeof(v));
	return n == OVC_MAGIC_LEN && memcmp(v, OVC_MAGIC, OVC_MAGIC_LEN) == 0;
}

/* Put the marker on the encrypted backing file `fd`; 1 when it carries
 * it. A filesystem without user xattrs (or with no room left for one) only
 * costs header reads in `stat`. */
static int put_mark(ovc_overlay *ov, int fd)
{
	char v[OVC_MAGIC_LEN];

	if (atomic_load(&ov->no_mark))
		return 0;
	if (fgetxattr(fd, MARK_NAME, v, sizeof(v)) == OVC_MAGIC_LEN &&
	    memcmp(v, OVC_MAGIC, OVC_MAGIC_LEN) == 0)
		return 1;
	if (fsetxattr(fd, MARK_NAME, OVC_MAGIC, OVC_MAGIC_LEN, 0) == 0)
		return 1;
	if ((errno == ENOTSUP || errno == EPERM) && !atomic_exchange(&ov->no_mark, 1))
		ovc_log_info("%s: the backing filesystem keeps no user xattrs (%s): stat reads the header of every encrypted file",
			     ov->mnt, strerror(errno));
	return 0;
}

/* The same for inode `i` (lock held for writing), once: when a handle
 * that wrote it is released, and after a conversion. */
static void set_mark(ovc_overlay *ov, struct ovc_inode *i, int fd)
{
	if (!i->marked)
		i->marked = put_mark(ov, fd);
}

/* A file found plaintext at open loses a marker it carries (it was
 * rewritten behind the overlay's back). */
static void drop_mark(struct ovc_inode *i, int fd)
{
	if (i->marked && fremovexattr(fd, MARK_NAME) < 0 && errno != ENODATA)
		ovc_log_info("cannot remove the stale marker xattr: %s", strerror(errno));
	i->marked = 0;
}

/* Is the backing file `fd` (stat `st`) encrypted? 1, 0, or -errno. */
static int sniff(int fd, const struct stat *st)
{
	uint8_t magic[8];
	ssize_t n;

	if (st->st_size < (off_t)sizeof(magic))
		return 0;
	n = pread(fd, magic, sizeof(magic), 0);
	if (n < 0)
		return -errno;
	return ovc_is_encrypted(magic, (size_t)n);
}

/* Record what the backing file is (inode lock held for writing). */
static void remember(struct ovc_inode *i, const struct stat *st, int enc)
{
	uint64_t plain = 0, nslots;

	i->enc_known = 1;
	i->enc_ctime = st->st_ctim;
	i->enc_bsize = st->st_size;
	i->enc = enc;
	if (enc) {
		atomic_store(&i->enc_seen, 1);
		if (ovc_layout_plain_size((uint64_t)st->st_size, &plain, &nslots, NULL) < 0)
			plain = 0;
	}
	i->enc_plain = plain;
}

/* Replace st_size by the plaintext size of an encrypted file. */
static void fix_size(ovc_overlay *ov, struct ovc_inode *i,
		     const struct ovc_at *a, struct stat *st)
{
	int known, enc = 0, fd;
	uint64_t plain = 0;

	if (!S_ISREG(st->st_mode))
		return;
	pthread_rwlock_rdlock(&i->lock);
	if (i->ef) {
		st->st_size = (off_t)ovc_file_size(i->ef);
		pthread_rwlock_unlock(&i->lock);
		return;
	}
	known = i->enc_known && ts_eq(&i->enc_ctime, &st->st_ctim) &&
		i->enc_bsize == st->st_size;
	if (known) {
		enc = i->enc;
		plain = i->enc_plain;
	}
	pthread_rwlock_unlock(&i->lock);
	if (!known) {
		int mark = 0;

		if (st->st_size < OVC_MAGIC_LEN)
			return;
		uint64_t nslots;

		if (ovc_layout_plain_size((uint64_t)st->st_size, &plain, &nslots, NULL) == 0)
			mark = has_mark(ov, a);
		if (mark) {
			enc = 1;
		} else {
			fd = open_at(a, O_RDONLY | O_NONBLOCK);
			if (fd < 0)
				return; /* unreadable for us: shown as it is */
			enc = sniff(fd, st);
			close(fd);
			if (enc < 0)
				return;
		}
		pthread_rwlock_wrlock(&i->lock);
		remember(i, st, enc);
		i->marked = mark;
		plain = i->enc_plain;
		pthread_rwlock_unlock(&i->lock);
	}
	if (enc)
		st->st_size = (off_t)plain;
}

static void log_bad(ovc_overlay *ov, struct ovc_inode *i, const ovc_err *e)
{
	char p[PATH_MAX];
	uint64_t h = 1469598103934665603ull;

	atomic_fetch_add(&ov->auth_failures, 1);
	/* one line per damage: the kernel's read-ahead and the program's
	 * read (and its retries) meet the same block */
	for (const char *c = e->msg; *c; c++)
		h = (h ^ (uint8_t)*c) * 1099511628211ull;
	if (atomic_exchange(&i->bad_logged, h) == h)
		return;
	if (abs_path(ov, i, NULL, p, sizeof(p)) < 0)
		snprintf(p, sizeof(p), "%s/(unknown)", ov->mnt);
	ovc_log_error("%s: %s", p, e->msg[0] ? e->msg : "failed authentication");
}

/* -EBADMSG (does not authenticate) is EIO to the program. */
static int io_err(ovc_overlay *ov, struct ovc_inode *i, int rc, const ovc_err *e)
{
	if (rc == -EBADMSG || rc == -EPROTO) {
		log_bad(ov, i, e);
		return EIO;
	}
	return -rc;
}

/* This process's overlays and their devices: a lookup never descends into
 * one of them (an inner overlay not yet unmounted), which would serve an
 * overlay through itself; and a copy between two of them keeps encryption
 * (copy_source). Guarded by own_mu; taken before any overlay's by_mu. */
static pthread_mutex_t own_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { dev_t dev; ovc_overlay *ov; } own_ovs[256];
static atomic_uint_fast64_t any_open_encrypted; /* handles, every overlay */
static size_t n_own;

static void own_dev(ovc_overlay *ov, dev_t d, int add)
{
	pthread_mutex_lock(&own_mu);
	if (add && n_own < sizeof(own_ovs) / sizeof(own_ovs[0])) {
		own_ovs[n_own].dev = d;
		own_ovs[n_own++].ov = ov;
	} else if (!add) {
		for (size_t k = 0; k < n_own; k++)
			if (own_ovs[k].ov == ov) {
				own_ovs[k] = own_ovs[--n_own];
				break;
			}
	}
	pthread_mutex_unlock(&own_mu);
}

static int is_own_fuse(ovc_overlay *ov, const struct stat *st)
{
	int is = 0;

	if (st->st_dev == ov->it_dev)
		return 0; /* the common case: the backing file system */
	pthread_mutex_lock(&own_mu);
	for (size_t k = 0; k < n_own && !is; k++)
		is = own_ovs[k].dev == st->st_dev;
	pthread_mutex_unlock(&own_mu);
	return is;
}

/* ---- lookup and attributes -------------------------------------------------------- */

static int do_lookup(ovc_overlay *ov, struct ovc_inode *parent, const char *name,
		     struct fuse_entry_param *e)
{
	struct ovc_at a;
	struct stat st;
	struct ovc_inode *i;
	int rc;

	if (strlen(name) > NAME_MAX)
		return ENAMETOOLONG;
	memset(e, 0, sizeof(*e));
	rc = ovc_itable_at(ov->it, parent, 1, &a);
	if (rc < 0)
		return -rc;
	if (fstatat(a.fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		rc = errno;
		ovc_itable_at_put(ov->it, &a);
		return rc;
	}
	if (is_own_fuse(ov, &st)) {
		ovc_itable_at_put(ov->it, &a);
		return ELOOP;
	}
	i = ovc_itable_lookup(ov->it, parent, name, &st);
	if (!i) {
		ovc_itable_at_put(ov->it, &a);
		return ENOMEM;
	}
	{
		struct ovc_at fa = { .fd = a.fd, .holder = NULL };

		snprintf(fa.name, sizeof(fa.name), "%s", name);
		fix_size(ov, i, &fa, &st);
	}
	ovc_itable_at_put(ov->it, &a);
	e->ino = NODE(ov, i);
	e->attr = st;
	e->attr_timeout = ov->timeout;
	e->entry_timeout = ov->timeout;
	return 0;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	ovc_overlay *ov = OV(req);
	struct fuse_entry_param e;
	int err = do_lookup(ov, INO(ov, parent), name, &e);

	if (err == ENOENT) {
		/* a negative entry, cached like a positive one */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = ov->timeout;
		fuse_reply_entry(req, &e);
	} else if (err) {
		fuse_reply_err(req, err);
	} else {
		fuse_reply_entry(req, &e);
	}
}

static void op_forget(fuse_req_t req, fuse_ino_t n, uint64_t nlookup)
{
	ovc_overlay *ov = OV(req);

	ovc_itable_forget(ov->it, INO(ov, n), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *f)
{
	ovc_overlay *ov = OV(req);

	for (size_t k = 0; k < count; k++)
		ovc_itable_forget(ov->it, INO(ov, f[k].ino), f[k].nlookup);
	fuse_reply_none(req);
}

static int inode_stat(ovc_overlay *ov, struct ovc_inode *i, struct stat *st)
{
	struct ovc_at a;
	int rc = ovc_itable_at(ov->it, i, 0, &a);

	if (rc < 0)
		return rc;
	rc = stat_at(&a, st);
	if (rc == 0 && (st->st_ino != i->ino || st->st_dev != i->dev))
		rc = -ESTALE;
	if (rc == 0)
		fix_size(ov, i, &a, st);
	ovc_itable_at_put(ov->it, &a);
	return rc == -ENOENT ? -ESTALE : rc;
}

/* What getattr and setattr reply: through the handle when there is one
 * (the size of an encrypted file from its open state), else by the inode. */
static int stat_of(ovc_overlay *ov, struct ovc_inode *i, struct handle *h,
		   struct stat *st)
{
	if (!h)
		return inode_stat(ov, i, st);
	if (fstat(h->fd, st) < 0)
		return -errno;
	/* the file as it is now, whichever handle asks: one opened while
	 * the file was plaintext sees it encrypted once another made it so */
	pthread_rwlock_rdlock(&i->lock);
	if (i->ef)
		st->st_size = (off_t)ovc_file_size(i->ef);
	pthread_rwlock_unlock(&i->lock);
	return 0;
}

static void reply_attr(fuse_req_t req, ovc_overlay *ov, struct ovc_inode *i,
		       struct fuse_file_info *fi)
{
	struct stat st;
	int rc = stat_of(ov, i, fi ? (struct handle *)(uintptr_t)fi->fh : NULL, &st);

	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, ov->timeout);
}

static void op_getattr(fuse_req_t req, fuse_ino_t n, struct fuse_file_info *fi)
{
	ovc_overlay *ov = OV(req);

	reply_attr(req, ov, INO(ov, n), fi);
}

/* ---- opening: the decision ------------------------------------------------------- */

/* The view of the requesting uid (a reference), and for a uid without one
 * the guard folders. */
struct who {
	uid_t uid;
	ovc_view *view;
	char **guard;
	size_t nguard;
};

static int who_get(ovc_overlay *ov, fuse_req_t req, struct who *w)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	memset(w, 0, sizeof(*w));
	w->uid = ctx->uid;
	w->view = ovc_views_get(ov->views, ctx->uid);
	if (!w->view && ovc_views_guard_folders(ov->views, &w->guard, &w->nguard) < 0)
		return -ENOMEM;
	ovc_views_touch(ov->views, ctx->uid);
	return 0;
}

static void who_put(struct who *w)
{
	ovc_view_put(w->view);
	ovc_views_folders_free(w->guard, w->nguard);
	memset(w, 0, sizeof(*w));
}

static int decide(const struct who *w, const char *path,
		  enum ovc_fclass fc, const uint8_t *key_id, int write,
		  int trunc, const uint8_t *copy_key_id, ovc_decision *d)
{
	ovc_request r = {
		.view = w->view, .guard = (const char *const *)w->guard,
		.nguard = w->nguard, .path = path, .fc = fc, .key_id = key_id,
		.write = write, .trunc = trunc, .copy_key_id = copy_key_id,
	};
	int rc = ovc_decide(&r, d);

	if (rc < 0)
		ovc_log_info("%s: access refused to uid %u (%s)", path,
			     (unsigned)w->uid, d->why ? d->why : "refused");
	return rc;
}

/* The thread group (process) of thread `tid`, or -1. */
static pid_t tgid_of(pid_t tid)
{
	char p[64], line[128];
	FILE *f;
	pid_t t = -1;

	snprintf(p, sizeof(p), "/proc/%d/status", (int)tid);
	f = fopen(p, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Tgid: %d", &t) == 1)
			break;
	fclose(f);
	return t;
}

/* Persistent encryption's copies (DESIGN.md, "The overlay"): where no rule
 * encrypts and persistent encryption is on, does the requesting process
 * hold an encrypted file of this overlay open? Its latest such handle's key
 * id goes to `kid`. Only asked for files being created or emptied for
 * writing, and only while encrypted handles are open. */
static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return x < y ? -1 : x > y;
}

/* The thread ids of process `tgid`, sorted: a malloc()ed array of *n, or
 * NULL (gone, or out of memory). */
static pid_t *tids_of(pid_t tgid, size_t *n)
{
	char p[64];
	DIR *d;
	struct dirent *de;
	pid_t *v = NULL;
	size_t cap = 0;

	*n = 0;
	snprintf(p, sizeof(p), "/proc/%d/task", (int)tgid);
	d = opendir(p);
	if (!d)
		return NULL;
	while ((de = readdir(d))) {
		char *end;
		long t = strtol(de->d_name, &end, 10);

		if (*end || t <= 0)
			continue;
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			pid_t *nv = realloc(v, nc * sizeof(*v));

			if (!nv) {
				free(v);
				closedir(d);
				*n = 0;
				return NULL;
			}
			v = nv;
			cap = nc;
		}
		v[(*n)++] = (pid_t)t;
	}
	closedir(d);
	if (*n > 1)
		qsort(v, *n, sizeof(*v), cmp_pid);
	return v;
}

static int copy_source(ovc_overlay *ov, fuse_req_t req, const struct who *w,
		       const char *path, uint8_t kid[OVC_KEY_ID_BYTES])
{
	pid_t tgid, *tids;
	size_t ntids = 0;
	int found = 0;

	if (!w->view || !w->view->settings.persistent_encryption ||
	    atomic_load(&any_open_encrypted) == 0 ||
	    ovc_decide_create_rule(w->view, path))
		return 0;
	tgid = tgid_of(fuse_req_ctx(req)->pid);
	/* the process's threads, read before the overlays' locks are taken */
	tids = tgid > 0 ? tids_of(tgid, &ntids) : NULL;
	if (!tids)
		return 0;
	/* this overlay first, then the others (a copy between two) */
	pthread_mutex_lock(&own_mu);
	for (size_t k = 0; k <= n_own && !found; k++) {
		ovc_overlay *o = k == 0 ? ov : own_ovs[k - 1].ov;

		if (k > 0 && o == ov)
			continue;
		pthread_mutex_lock(&o->by_mu);
		for (struct handle *h = o->handles; h && !found; h = h->next) {
			if (!h->enc || h->uid != w->uid ||
			    !bsearch(&h->tid, tids, ntids, sizeof(*tids), cmp_pid))
				continue;
			memcpy(kid, h->kid, OVC_KEY_ID_BYTES);
			found = 1;
		}
		pthread_mutex_unlock(&o->by_mu);
	}
	pthread_mutex_unlock(&own_mu);
	free(tids);
	if (found)
		ovc_log_info("%s: written by a process that holds an encrypted file open: a copy, kept encrypted (persistent encryption)",
			     path);
	return found;
}

static const ovc_key *lookup_key(void *ctx, const uint8_t id[OVC_KEY_ID_BYTES])
{
	const ovc_view *v = ctx;

	return v && v->keys ? ovc_keyset_find(v->keys, id) : NULL;
}

/* Count the encrypted handles of each uid (status after a lock). A table
 * of 64 uids; more users at once than that are counted as the last. */
static void count_by(ovc_overlay *ov, uid_t uid, int delta)
{
	size_t n = sizeof(ov->by_uid) / sizeof(ov->by_uid[0]), k, free_k = n;

	pthread_mutex_lock(&ov->by_mu);
	for (k = 0; k < n; k++) {
		if (ov->by_uid[k].n && ov->by_uid[k].uid == uid)
			break;
		if (!ov->by_uid[k].n && free_k == n)
			free_k = k;
	}
	if (k == n)
		k = free_k < n ? free_k : n - 1;
	ov->by_uid[k].uid = uid;
	if (delta > 0)
		ov->by_uid[k].n++;
	else if (ov->by_uid[k].n)
		ov->by_uid[k].n--;
	pthread_mutex_unlock(&ov->by_mu);
}

/* Make the inode's shared encrypted state ready on `fd` (inode lock held
 * for writing): open the header, or check the key of the one open. */
static int enc_attach(struct ovc_inode *i, int fd, int rw,
		      const ovc_view *v, ovc_err *e)
{
	if (i->ef) {
		const ovc_header *h = ovc_file_header(i->ef);

		if (!lookup_key((void *)v, h->key_id))
			return ovc_err_set(e, -EACCES, "the key of this file is not held");
		if (rw && !i->efd_rw) {
			int nfd = dup(fd);

			if (nfd < 0)
				return -errno;
			ovc_file_set_fd(i->ef, nfd);
			close(i->efd);
			i->efd = nfd;
			i->efd_rw = 1;
		}
		return 0;
	}
	i->efd = dup(fd);
	if (i->efd < 0)
		return -errno;
	i->efd_rw = rw;
	int rc = ovc_file_open(i->efd, lookup_key, (void *)v, &i->ef, e);
	if (rc < 0) {
		close(i->efd);
		i->efd = -1;
		i->ef = NULL;
	}
	return rc;
}

/* Start a fresh encrypted file on the (empty or emptied) backing `fd`. */
static int enc_fresh(struct ovc_inode *i, int fd, const ovc_key *key, ovc_err *e)
{
	struct tls *t = tls_get();
	struct stat st;
	int rc;

	if (!t)
		return -ENOMEM;
	if (i->ef)
		return ovc_file_truncate(i->ef, t->c, 0, key, e);
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size != 0 && ftruncate(fd, 0) < 0)
		return -errno;
	/* the new state becomes the inode's at once (no second open) */
	i->efd = dup(fd);
	if (i->efd < 0)
		return -errno;
	i->efd_rw = 1;
	rc = ovc_file_create(i->efd, key, t->c, 0, &i->ef, e);
	if (rc < 0) {
		close(i->efd);
		i->efd = -1;
		i->ef = NULL;
	}
	return rc;
}

/* Temporary files of a conversion: a crash leaves at worst one of them
 * (`overcrypt encrypt --initial` reports them). */
#define REWRITE_PREFIX ".ovc-rewrite."

/* Copy every xattr of `from` to `to` (a conversion keeps them), but the
 * overlay's marker. */
static int copy_xattrs(int from, int to, ovc_err *e)
{
	enum { MAX = 65536 };      /* XATTR_LIST_MAX, XATTR_SIZE_MAX */
	char *names = malloc(2 * MAX), *val = names + MAX;
	ssize_t n;
	int rc = 0;

	if (!names)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	n = flistxattr(from, names, MAX);
	if (n < 0 && errno != ENOTSUP)
		rc = ovc_err_set(e, -errno, "listing its xattrs: %s", strerror(errno));
	for (ssize_t k = 0; rc == 0 && k < n; k += (ssize_t)strlen(names + k) + 1) {
		const char *name = names + k;
		ssize_t v;

		if (is_mark_name(name))
			continue;
		v = fgetxattr(from, name, val, MAX);
		if (v < 0 || fsetxattr(to, name, val, (size_t)v, 0) < 0)
			rc = ovc_err_set(e, -errno, "copying its xattr %s: %s", name, strerror(errno));
	}
	free(names);
	return rc;
}

/* Rewrite the file of inode `i` (name in `pa`) as a fresh encrypted file
 * under `key` (NULL: as plaintext, `overcrypt decrypt`): its content read from `src` (the open encrypted state) or
 * else from the plaintext descriptor `oldfd`; mode, owner and times kept;
 * fsynced, then renamed over the old one, and the folder fsynced. A crash
 * leaves the old file or the new one (and at worst a stray temporary
 * file). The inode then stands for the new file; *newfd is the new file,
 * open read-write. Inode lock held for writing; `i` NULL: an inode the
 * kernel does not know (nothing cached to update). */
static int rewrite(ovc_overlay *ov, struct tls *t, struct ovc_inode *i,
		   const struct ovc_at *pa, int oldfd, ovc_file *src,
		   const ovc_key *key, int *newfd, ovc_err *e)
{
	char tmp[NAME_MAX + 1];
	struct stat st;
	ovc_file *f = NULL;
	int fd = -1, rc;
	uint64_t off = 0;

	*newfd = -1;
	if (!t)
		return -ENOMEM;
	if (fstat(oldfd, &st) < 0)
		return -errno;
	if (st.st_nlink > 1)
		return ovc_err_set(e, -EACCES, "a file with %ju links is not rewritten (it must be re-encrypted first)",
				   (uintmax_t)st.st_nlink);
	if (i && i->nplainw > 0)
		return ovc_err_set(e, -EBUSY, "the plaintext file is open for writing: not converted");
	snprintf(tmp, sizeof(tmp), REWRITE_PREFIX "%ju.%lx", (uintmax_t)st.st_ino,
		 (unsigned long)random());
	fd = openat(pa->fd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = key ? ovc_file_create(fd, key, t->c, 0, &f, e) : 0;
	while (rc == 0) {
		ssize_t n;

		if (src) {
			n = ovc_file_pread(src, t->c, t->buf, MAX_IO, off, e);
		} else {
			n = pread(oldfd, t->buf, MAX_IO, (off_t)off);
			if (n < 0)
				n = -errno;
		}
		if (n <= 0) {
			rc = (int)n;
			break;
		}
		if (f) {
			ssize_t w = ovc_file_pwrite(f, t->c, t->buf, (size_t)n, off, e);

			if (w < 0)
				rc = (int)w;
		} else {
			rc = ovc_pwrite_full(fd, t->buf, (size_t)n, (off_t)off);
		}
		off += (uint64_t)n;
	}
	ovc_file_close(f);
	if (rc == 0)
		rc = copy_xattrs(oldfd, fd, e);
	if (rc == 0 && (fchown(fd, st.st_uid, st.st_gid) < 0 && errno != EPERM))
		rc = -errno;
	if (rc == 0 && fchmod(fd, st.st_mode & 07777) < 0)
		rc = -errno;
	if (rc == 0) {
		struct timespec ts[2] = { st.st_atim, st.st_mtim };

		if (futimens(fd, ts) < 0)
			rc = -errno;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (rc == 0 && renameat(pa->fd, tmp, pa->fd, pa->name) < 0)
		rc = -errno;
	if (rc < 0) {
		unlinkat(pa->fd, tmp, 0);
		close(fd);
		return rc;
	}
	{
		int dfd = openat(pa->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd < 0 || fsync(dfd) < 0)
			ovc_log_warn("%s: fsync of the folder after rewriting a file: %s",
				     ov->mnt, strerror(errno));
		if (dfd >= 0)
			close(dfd);
	}
	*newfd = fd;
	if (!i)
		return 0;
	if (fstat(fd, &st) == 0)
		ovc_itable_rehash(ov->it, i, st.st_dev, st.st_ino);
	i->marked = 0; /* a new backing file: do_open marks it */
	i->enc_known = 0;
	if (i->ef) {
		ovc_file_close(i->ef);
		i->ef = NULL;
	}
	if (i->efd >= 0) {
		close(i->efd);
		i->efd = -1;
	}
	return 0;
}

/* Open inode `i` for the handle: the decision, the backing descriptor,
 * the encrypted state. `copy_of` (op_create, which asked already): the
 * copy source's key id, or NULL for "not a copy"; COPY_ASK: ask here. */
#define COPY_ASK ((const uint8_t *)1)
static int do_open(ovc_overlay *ov, fuse_req_t req, struct ovc_inode *i,
		   int flags, const uint8_t *copy_of, struct handle **out, int *keep_cache)
{
	struct who w;
	struct ovc_at pa = { .fd = -1 };
	char path[PATH_MAX];
	struct stat st;
	enum ovc_fclass fc;
	ovc_decision d;
	ovc_err e = { 0 };
	int acc = flags & O_ACCMODE, write = acc != O_RDONLY || (flags & O_TRUNC);
	int fd = -1, rc, enc = 0, locked = 0, copy;
	struct handle *h = NULL;
	uint8_t kid[OVC_KEY_ID_BYTES], ckid[OVC_KEY_ID_BYTES];

	*keep_cache = 0;
	rc = who_get(ov, req, &w);
	if (rc < 0)
		return rc;
	rc = abs_path(ov, i, NULL, path, sizeof(path));
	if (rc < 0)
		goto out;
	rc = ovc_itable_at(ov->it, i, 0, &pa);
	if (rc < 0)
		goto out;
	{
		int bflags = (write ? O_RDWR : O_RDONLY) |
			     (flags & (O_SYNC | O_DSYNC | O_NOATIME | O_NONBLOCK));

		fd = open_at(&pa, bflags);
		if (fd == -EACCES && acc == O_WRONLY)
			fd = open_at(&pa, (bflags & ~O_ACCMODE) | O_WRONLY);
	}
	if (fd < 0) {
		rc = fd == -ENOENT ? -ESTALE : fd;
		fd = -1;
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (st.st_ino != i->ino || st.st_dev != i->dev) {
		rc = -ESTALE;
		goto out;
	}
	pthread_rwlock_wrlock(&i->lock);
	locked = 1;
	if (i->ef) {
		fc = OVC_FC_ENC;
		memcpy(kid, ovc_file_header(i->ef)->key_id, sizeof(kid));
	} else if (st.st_size == 0) {
		fc = OVC_FC_EMPTY;
	} else {
		int s = sniff(fd, &st);

		if (s < 0) {
			rc = s;
			goto out;
		}
		if (s) {
			uint8_t hb[OVC_HEADER_SIZE];
			ovc_header hdr;

			if (pread(fd, hb, sizeof(hb), 0) != (ssize_t)sizeof(hb) ||
			    ovc_header_decode(hb, sizeof(hb), &hdr, &e) < 0) {
				rc = -EBADMSG;
				if (!e.msg[0])
					ovc_err_set(&e, -EBADMSG, "the header is cut short");
				goto out;
			}
			memcpy(kid, hdr.key_id, sizeof(kid));
		}
		remember(i, &st, s);
		if (!s)
			drop_mark(i, fd);
		fc = s ? OVC_FC_ENC : OVC_FC_PLAIN;
	}
	copy = write && fc != OVC_FC_ENC && (fc != OVC_FC_PLAIN || (flags & O_TRUNC));
	if (copy && copy_of != COPY_ASK) {
		copy = copy_of != NULL;
		if (copy)
			memcpy(ckid, copy_of, sizeof(ckid));
	} else if (copy) {
		copy = copy_source(ov, req, &w, path, ckid);
	}
	rc = decide(&w, path, fc, fc == OVC_FC_ENC ? kid : NULL, write,
		    !!(flags & O_TRUNC), copy ? ckid : NULL, &d);
	if (rc < 0)
		goto out;
	if (write && (fc != OVC_FC_PLAIN || d.act != OVC_ACT_PASS) && acc == O_WRONLY) {
		/* read-modify-write needs the backing file readable */
		int fl = fcntl(fd, F_GETFL);

		if (fl >= 0 && (fl & O_ACCMODE) == O_WRONLY) {
			rc = -EACCES;
			goto out;
		}
	}
	switch (d.act) {
	case OVC_ACT_PASS:
		if ((flags & O_TRUNC) && ftruncate(fd, 0) < 0) {
			rc = -errno;
			goto out;
		}
		break;
	case OVC_ACT_CONVERT:
	case OVC_ACT_REKEY: {
		int nfd;

		ovc_itable_at_put(ov->it, &pa);
		rc = ovc_itable_at_parent(ov->it, i, &pa);
		if (rc == 0 && d.act == OVC_ACT_REKEY && !i->ef)
			rc = enc_attach(i, fd, 0, w.view, &e);
		if (rc == 0)
			rc = rewrite(ov, tls_get(), i, &pa, fd, d.act == OVC_ACT_REKEY ? i->ef : NULL,
				     d.key, &nfd, &e);
		if (rc < 0)
			goto out;
		close(fd);
		fd = nfd;
		ovc_log_info("%s: %s", path, d.act == OVC_ACT_CONVERT
			     ? "plaintext file encrypted in place (plaintext_under_rule = convert)"
			     : "re-encrypted under the place's current key before writing");
		rc = enc_attach(i, fd, 1, w.view, &e);
		enc = 1;
		break;
	}
	case OVC_ACT_ENC_NEW:
		rc = enc_fresh(i, fd, d.key, &e);
		enc = 1;
		break;
	case OVC_ACT_ENC:
		rc = enc_attach(i, fd, write, w.view, &e);
		if (rc == 0 && (flags & O_TRUNC)) {
			struct tls *t = tls_get();

			rc = t ? ovc_file_truncate(i->ef, t->c, 0, d.fresh, &e) : -ENOMEM;
		}
		enc = 1;
		break;
	}
	if (rc < 0)
		goto out;
	if (enc)
		atomic_store(&i->enc_seen, 1);
	h = calloc(1, sizeof(*h));
	if (!h) {
		rc = -ENOMEM;
		goto out;
	}
	if (i->cache_valid && i->nopen == 0 && fstat(fd, &st) == 0 &&
	    ts_eq(&st.st_ctim, &i->cache_ctime) && !ov->network && !ov->no_keep_cache)
		*keep_cache = 1;
	i->nopen++;
	if (!enc && write)
		i->nplainw++;
	h->fd = fd;
	h->ino = i;
	h->view = w.view;
	w.view = NULL;
	h->uid = w.uid;
	h->tid = fuse_req_ctx(req)->pid;
	if (enc && i->ef)
		memcpy(h->kid, ovc_file_header(i->ef)->key_id, sizeof(h->kid));
	h->enc = enc;
	h->writable = write;
	fd = -1;
	ovc_itable_ref(ov->it, i);
	atomic_fetch_add(&ov->files_opened, 1);
	atomic_fetch_add(&ov->open_handles, 1);
	if (enc) {
		atomic_fetch_add(&ov->open_encrypted, 1);
		atomic_fetch_add(&any_open_encrypted, 1);
		count_by(ov, h->uid, 1);
	}
	pthread_mutex_lock(&ov->by_mu);
	h->next = ov->handles;
	if (h->next)
		h->next->prev = h;
	ov->handles = h;
	pthread_mutex_unlock(&ov->by_mu);
	*out = h;
out:
	if (locked)
		pthread_rwlock_unlock(&i->lock);
	if (rc == -EBADMSG || rc == -EPROTO) {
		ovc_log_error("%s: %s", path, e.msg[0] ? e.msg : "failed authentication");
		atomic_fetch_add(&ov->auth_failures, 1);
		rc = -EIO;
	} else if (rc < 0 && e.msg[0]) {
		ovc_log_info("%s: %s", path, e.msg);
	}
	if (fd >= 0)
		close(fd);
	ovc_itable_at_put(ov->it, &pa);
	who_put(&w);
	return rc;
}

static void handle_free(ovc_overlay *ov, struct handle *h);


static void fill_fi(struct fuse_file_info *fi, struct handle *h, int keep)
{
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->keep_cache = keep;
	fi->direct_io = 0;
	fi->noflush = 0;
}

static void op_open(fuse_req_t req, fuse_ino_t n, struct fuse_file_info *fi)
{
	ovc_overlay *ov = OV(req);
	struct handle *h = NULL;
	int keep, rc;

	if (fi->flags & O_TMPFILE) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	rc = do_open(ov, req, INO(ov, n), fi->flags, COPY_ASK, &h, &keep);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fill_fi(fi, h, keep);
	if (fuse_reply_open(req, fi) == -ENOENT)
		handle_free(ov, h); /* the opener was interrupted */
}

static void handle_free(ovc_overlay *ov, struct handle *h)
{
	struct ovc_inode *i = h->ino;
	struct stat st;

	pthread_rwlock_wrlock(&i->lock);
	if (i->nopen > 0)
		i->nopen--;
	if (!h->enc && h->writable && i->nplainw > 0)
		i->nplainw--;
	if (h->writable && i->ef)
		set_mark(ov, i, h->fd); /* here, off the opener's path (release is asynchronous) */
	if (i->nopen == 0) {
		if (fstat(h->fd, &st) == 0) {
			i->cache_ctime = st.st_ctim;
			i->cache_valid = 1;
			if (i->ef)
				remember(i, &st, 1);
		}
		if (i->ef) {
			ovc_file_close(i->ef);
			i->ef = NULL;
		}
		if (i->efd >= 0) {
			close(i->efd);
			i->efd = -1;
		}
	}
	pthread_rwlock_unlock(&i->lock);
	pthread_mutex_lock(&ov->by_mu);
	if (h->prev)
		h->prev->next = h->next;
	else
		ov->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&ov->by_mu);
	close(h->fd);
	atomic_fetch_sub(&ov->open_handles, 1);
	if (h->enc) {
		atomic_fetch_sub(&ov->open_encrypted, 1);
		atomic_fetch_sub(&any_open_encrypted, 1);
		count_by(ov, h->uid, -1);
	}
	ovc_view_put(h->view);
	ovc_itable_unref(ov->it, i);
	free(h);
}

static void op_release(fuse_req_t req, fuse_ino_t n, struct fuse_file_info *fi)
{
	(void)n;
	handle_free(OV(req), (struct handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t n, struct fuse_file_info *fi)
{
	(void)n;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t n, int datasync,
		     struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int rc;

	(void)n;
	rc = datasync ? fdatasync(h->fd) : fsync(h->fd);
	fuse_reply_err(req, rc < 0 ? errno : 0);
}

/* ---- data ------------------------------------------------------------------------ */

/* The reply to a read (the bytes in `data`) or a write (data NULL) that
 * gave `r`, counted. */
static void reply_io(fuse_req_t req, ovc_overlay *ov, struct handle *h,
		     ssize_t r, const ovc_err *e, const uint8_t *data)
{
	if (r < 0) {
		fuse_reply_err(req, io_err(ov, h->ino, (int)r, e));
		return;
	}
	atomic_fetch_add(data ? &ov->bytes_read : &ov->bytes_written, (uint64_t)r);
	if (data)
		fuse_reply_buf(req, (const char *)data, (size_t)r);
	else
		fuse_reply_write(req, (size_t)r);
}

static void op_read(fuse_req_t req, fuse_ino_t n, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	ovc_overlay *ov = OV(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct tls *t = tls_get();
	ssize_t r;
	ovc_err e = { 0 };

	(void)n;
	if (!t) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (size > MAX_IO)
		size = MAX_IO;
	pthread_rwlock_rdlock(&h->ino->lock);
	if (h->ino->ef) {
		/* also a handle opened on the file while it was empty or
		 * plaintext: it reads what the file holds now, if its view
		 * holds the key */
		if (h->enc || lookup_key(h->view, ovc_file_header(h->ino->ef)->key_id))
			r = ovc_file_pread(h->ino->ef, t->c, t->buf, size, (uint64_t)off, &e);
		else
			r = -EACCES;
	} else if (h->enc) {
		r = -EIO;
	} else {
		r = pread(h->fd, t->buf, size, off);
		if (r < 0)
			r = -errno;
	}
	pthread_rwlock_unlock(&h->ino->lock);
	reply_io(req, ov, h, r, &e, t->buf);
}

static void op_write(fuse_req_t req, fuse_ino_t n, const char *buf, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	ovc_overlay *ov = OV(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	ssize_t r;
	ovc_err e = { 0 };

	(void)n;
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	pthread_rwlock_wrlock(&h->ino->lock);
	if (h->ino->ef) {
		struct tls *t = tls_get();

		/* never plaintext bytes into an encrypted file, whichever
		 * handle the kernel writes back through */
		r = t ? ovc_file_pwrite(h->ino->ef, t->c, buf, size, (uint64_t)off, &e)
		      : -ENOMEM;
	} else if (h->enc) {
		r = -EIO;
	} else {
		r = pwrite(h->fd, buf, size, off);
		if (r < 0)
			r = -errno;
	}
	pthread_rwlock_unlock(&h->ino->lock);
	reply_io(req, ov, h, r, &e, NULL);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t n, int mode, off_t off,
			 off_t len, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	int rc = 0;

	(void)n;
	pthread_rwlock_rdlock(&h->ino->lock);
	if (h->enc || h->ino->ef)
		/* space for ciphertext cannot be reserved honestly: a
		 * reservation is not a sealed block (also through a handle
		 * opened while the file was plaintext) */
		rc = EOPNOTSUPP;
	else if (fallocate(h->fd, mode, off, len) < 0)
		rc = errno;
	pthread_rwlock_unlock(&h->ino->lock);
	fuse_reply_err(req, rc);
}

/* ---- setattr --------------------------------------------------------------------- */

static int set_size(ovc_overlay *ov, fuse_req_t req, struct ovc_inode *i,
		    struct handle *h, off_t size)
{
	struct handle *own = NULL;
	ovc_err e = { 0 };
	int keep, rc = 0;

	if (size < 0)
		return -EINVAL;
	if (!h) {
		rc = do_open(ov, req, i, size == 0 ? (O_WRONLY | O_TRUNC) : O_WRONLY,
			     COPY_ASK, &own, &keep);
		if (rc < 0)
			return rc;
		h = own;
		if (size == 0)
			goto done; /* O_TRUNC did it */
	}
	{
		struct tls *t = tls_get();
		const ovc_rule *cr = NULL;
		const ovc_key *fresh = NULL;
		char path[PATH_MAX];

		if (!t) {
			rc = -ENOMEM;
			goto done;
		}
		/* a truncation to zero starts a fresh header under the place's
		 * key, from the handle's view; or the file's own key */
		if (size == 0 && abs_path(ov, i, NULL, path, sizeof(path)) == 0)
			cr = ovc_decide_create_rule(h->view, path);
		/* Decided under the inode lock by what the file is now, not by
		 * the handle: a handle opened on a plaintext file that another
		 * handle has since made encrypted (truncated to zero where a
		 * rule, or a copy, encrypts) must never cut the ciphertext as if
		 * it were plaintext (op_write does the same). */
		pthread_rwlock_wrlock(&i->lock);
		if (i->ef) {
			if (size == 0 && h->view && h->view->keys)
				fresh = ovc_keyset_find(h->view->keys,
							cr ? cr->key_id : ovc_file_header(i->ef)->key_id);
			rc = ovc_file_truncate(i->ef, t->c, (uint64_t)size, fresh, &e);
		} else if (h->enc) {
			rc = -EIO;
		} else if (ftruncate(h->fd, size) < 0) {
			rc = -errno;
		}
		pthread_rwlock_unlock(&i->lock);
		if (rc < 0)
			rc = -io_err(ov, i, rc, &e);
	}
done:
	if (own)
		handle_free(ov, own);
	return rc;
}

static void op_setattr(fuse_req_t req, fuse_ino_t n, struct stat *attr,
		       int valid, struct fuse_file_info *fi)
{
	ovc_overlay *ov = OV(req);
	struct ovc_inode *i = INO(ov, n);
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct ovc_at a = { .fd = -1 };
	char p[64];
	int rc = 0;

	rc = ovc_itable_at(ov->it, i, 1, &a);
	if (rc < 0)
		goto out;
	proc_path(p, sizeof(p), a.fd);
	if (valid & FUSE_SET_ATTR_MODE) {
		if (i->type == S_IFLNK)
			rc = -EOPNOTSUPP;
		else if ((h ? fchmod(h->fd, attr->st_mode) : chmod(p, attr->st_mode)) < 0)
			rc = -errno;
		if (rc < 0)
			goto out;
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t u = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t g = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		if (fchownat(a.fd, "", u, g, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
			goto out;
		}
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		rc = set_size(ov, req, i, h, attr->st_size);
		if (rc < 0)
			goto out;
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };

		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			ts[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			ts[1] = attr->st_mtim;
		if (i->type == S_IFLNK) {
			struct ovc_at pa;

			rc = ovc_itable_at_parent(ov->it, i, &pa);
			if (rc == 0 && utimensat(pa.fd, pa.name, ts, AT_SYMLINK_NOFOLLOW) < 0)
				rc = -errno;
			ovc_itable_at_put(ov->it, &pa);
		} else
			rc = (h ? futimens(h->fd, ts) : utimensat(AT_FDCWD, p, ts, 0)) < 0 ? -errno : 0;
		if (rc < 0)
			goto out;
	}
	ovc_itable_at_put(ov->it, &a);
	reply_attr(req, ov, i, fi);
	return;
out:
	ovc_itable_at_put(ov->it, &a);
	fuse_reply_err(req, -rc);
}

/* ---- creating names ---------------------------------------------------------------- */

/* A name just made for the requester: the mode the kernel asked for (the
 * agent's own umask must not apply twice), and, when the agent runs as
 * root (system mode), the requester as owner, so files are theirs as on a
 * local file system. The group stays the folder's when it is setgid.
 * `fd` is the new object open (or -1: then it is opened O_PATH here). */
static int own_new(fuse_req_t req, int dirfd, const char *name, int fd,
		   mode_t mode, int is_link)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat dst;
	char p[64];
	int own = -1, rc = 0;

	if (fd < 0) {
		own = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (own < 0)
			return -errno;
		fd = own;
	}
	proc_path(p, sizeof(p), fd);
	if (!is_link && chmod(p, mode & 07777) < 0)
		rc = -errno;
	if (rc == 0 && geteuid() == 0 && ctx->uid != 0) {
		gid_t g = ctx->gid;

		if (fstat(dirfd, &dst) == 0 && (dst.st_mode & S_ISGID))
			g = (gid_t)-1;
		if (fchownat(fd, "", ctx->uid, g, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			rc = -errno;
	}
	if (own >= 0)
		close(own);
	return rc;
}

static void reply_entry_of(fuse_req_t req, ovc_overlay *ov, struct ovc_inode *parent,
			   const char *name, int rc)
{
	struct fuse_entry_param e;
	int err;

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	err = do_lookup(ov, parent, name, &e);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

/* Refuse making a name where a rule encrypts and the uid has no policy:
 * (no plaintext file may appear there); folders, links and nodes carry no
 * content and are allowed. */
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	ovc_overlay *ov = OV(req);
	struct ovc_inode *p = INO(ov, parent);
	struct ovc_at a;
	int rc = ovc_itable_at(ov->it, p, 1, &a);

	if (rc == 0) {
		rc = mknodat(a.fd, name, mode, rdev) < 0 ? -errno : 0;
		if (rc == 0)
			rc = own_new(req, a.fd, name, -1, mode, 0);
		ovc_itable_at_put(ov->it, &a);
	}
	reply_entry_of(req, ov, p, name, rc);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	ovc_overlay *ov = OV(req);
	struct ovc_inode *p = INO(ov, parent);
	struct ovc_at a;
	int rc = ovc_itable_at(ov->it, p, 1, &a);

	if (rc == 0) {
		rc = mkdirat(a.fd, name, mode) < 0 ? -errno : 0;
		if (rc == 0)
			rc = own_new(req, a.fd, name, -1, mode, 0);
		ovc_itable_at_put(ov->it, &a);
	}
	reply_entry_of(req, ov, p, name, rc);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	ovc_overlay *ov = OV(req);
	struct ovc_inode *p = INO(ov, parent);
	struct ovc_at a;
	int rc = ovc_itable_at(ov->it, p, 1, &a);

	if (rc == 0) {
		rc = symlinkat(link, a.fd, name) < 0 ? -errno : 0;
		if (rc == 0)
			rc = own_new(req, a.fd, name, -1, 0, 1);
		ovc_itable_at_put(ov->it, &a);
	}
	reply_entry_of(req, ov, p, name, rc);
}

static void op_readlink(fuse_req_t req, fuse_ino_t n)
{
	ovc_overlay *ov = OV(req);
	struct ovc_at a;
	char buf[PATH_MAX + 1];
	ssize_t r;
	int rc = ovc_itable_at(ov->it, INO(ov, n), 0, &a);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	r = readlinkat(a.fd, a.name, buf, sizeof(buf));
	rc = r < 0 ? errno : 0;
	ovc_itable_at_put(ov->it, &a);
	if (rc)
		fuse_reply_err(req, rc);
	else if (r >= (ssize_t)sizeof(buf))
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		buf[r] = 0;
		fuse_reply_readlink(req, buf);
	}
}

/* Do two names belong to the same rule class (a new file at each would
 * get the same key, or plaintext)? What link() asks: across rules, EXDEV. */
static int same_class(ovc_overlay *ov, const struct who *w, struct ovc_inode *p1,
		      const char *n1, struct ovc_inode *p2, const char *n2)
{
	char a[PATH_MAX], b[PATH_MAX];
	ovc_rename_request r = {
		.view = w->view, .guard = (const char *const *)w->guard,
		.nguard = w->nguard, .src = a, .dst = b, .kind = OVC_RK_OTHER,
	};
	ovc_rename_decision d;

	if (abs_path(ov, p1, n1, a, sizeof(a)) < 0 || abs_path(ov, p2, n2, b, sizeof(b)) < 0)
		return 0;
	return ovc_decide_rename(&r, &d) == 0;
}

/* Descriptors of two inodes themselves (link, rename); both released by
 * the caller with ovc_itable_at_put(), also on failure. */
static int two_at(ovc_overlay *ov, struct ovc_inode *x, struct ovc_inode *y,
		  struct ovc_at *a, struct ovc_at *b)
{
	int rc = ovc_itable_at(ov->it, x, 1, a);

	return rc < 0 ? rc : ovc_itable_at(ov->it, y, 1, b);
}

static void op_link(fuse_req_t req, fuse_ino_t n, fuse_ino_t newparent,
		    const char *newname)
{
	ovc_overlay *ov = OV(req);
	struct ovc_inode *i = INO(ov, n), *np = INO(ov, newparent);
	struct ovc_at a = { .fd = -1 }, d = { .fd = -1 };
	struct who w;
	int rc = who_get(ov, req, &w);

	if (rc < 0)
		goto out;
	{
		struct ovc_at pa;

		rc = ovc_itable_at_parent(ov->it, i, &pa);
		if (rc == 0) {
			int same = same_class(ov, &w, pa.holder, pa.name, np, newname);

			ovc_itable_at_put(ov->it, &pa);
			if (!same) {
				rc = -EXDEV;
				goto out;
			}
		}
	}
	rc = two_at(ov, i, np, &a, &d);
	if (rc < 0)
		goto out;
	{
		char p[64];

		proc_path(p, sizeof(p), a.fd);
		rc = linkat(AT_FDCWD, p, d.fd, newname, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
	}
out:
	ovc_itable_at_put(ov->it, &a);
	ovc_itable_at_put(ov->it, &d);
	who_put(&w);
	reply_entry_of(req, ov, np, newname, rc);
}

/* Before a name goes: if it is the current name of an inode the kernel
 * still knows, keep that inode reachable. */
static void before_remove(ovc_overlay *ov, int dirfd, const char *name)
{
	struct stat st;
	struct ovc_inode *v;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	v = ovc_itable_find(ov->it, st.st_dev, st.st_ino);
	if (v && (st.st_nlink > 1 || S_ISREG(st.st_mode)))
		ovc_itable_keep(ov->it, v);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	ovc_overlay *ov = OV(req);
	struct ovc_at a;
	int rc = ovc_itable_at(ov->it, INO(ov, parent), 1, &a);

	if (rc == 0) {
		before_remove(ov, a.fd, name);
		rc = unlinkat(a.fd, name, 0) < 0 ? errno : 0;
		ovc_itable_at_put(ov->it, &a);
	} else {
		rc = -rc;
	}
	fuse_reply_err(req, rc);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	ovc_overlay *ov = OV(req);
	struct ovc_at a;
	int rc = ovc_itable_at(ov->it, INO(ov, parent), 1, &a);

	if (rc == 0) {
		rc = unlinkat(a.fd, name, AT_REMOVEDIR) < 0 ? errno : 0;
		ovc_itable_at_put(ov->it, &a);
	} else {
		rc = -rc;
	}
	fuse_reply_err(req, rc);
}

/* Is the regular file `name` (in dirfd; inode i, may be NULL) encrypted?
 * 1 with its key id, 0, or -errno. */
static int file_key_id(int dirfd, const char *name, struct ovc_inode *i,
		       uint8_t kid[OVC_KEY_ID_BYTES])
{
	uint8_t hb[OVC_HEADER_SIZE];
	ovc_header h;
	ssize_t n;
	int fd, rc = 0;

	if (i) {
		pthread_rwlock_rdlock(&i->lock);
		if (i->ef) {
			memcpy(kid, ovc_file_header(i->ef)->key_id, OVC_KEY_ID_BYTES);
			rc = 1;
		}
		pthread_rwlock_unlock(&i->lock);
		if (rc)
			return rc;
	}
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, hb, sizeof(hb), 0);
	rc = n < 0 ? -errno : 0;
	close(fd);
	if (rc < 0)
		return rc;
	if (!ovc_is_encrypted(hb, (size_t)n))
		return 0;
	if (ovc_header_decode(hb, (size_t)n, &h, NULL) < 0)
		return -EIO; /* damaged: not moved across rules */
	memcpy(kid, h.key_id, OVC_KEY_ID_BYTES);
	return 1;
}

/* A rewrap in progress: the header already under the destination's key,
 * the rename not yet done. The inode lock is held throughout. */
struct rewrap {
	struct ovc_inode *i;     /* locked, or NULL */
	ovc_file *f;             /* the inode's state, or `own` */
	ovc_file *own;           /* opened here (the file was not open) */
	int fd;                  /* own's descriptor */
	const ovc_key *from;
	char path[PATH_MAX];
	const ovc_key *tree_to;  /* a folder: what is below goes to this key */
	char jname[64];          /* its journal entry ("" none) */
	char tree_rel[PATH_MAX]; /* the folder's new path below the mount */
};

/* Open the encrypted file `name` (in dirfd) for a rewrap, or use its open
 * state; the inode lock taken. */
static int rewrap_start(struct rewrap *rw, const struct who *w, int dirfd,
			const char *name, struct ovc_inode *i, ovc_err *e)
{
	rw->i = i;
	if (i)
		pthread_rwlock_wrlock(&i->lock);
	if (i && i->ef && i->efd_rw) {
		rw->f = i->ef;
		return 0;
	}
	rw->fd = openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (rw->fd < 0)
		return ovc_err_set(e, -errno, "cannot open it to rewrap its key: %s", strerror(errno));
	if (i && i->ef) {
		struct stat st;

		/* open read-only so far: its state goes on with this one */
		if (fstat(rw->fd, &st) < 0 || st.st_ino != i->ino || st.st_dev != i->dev)
			return ovc_err_set(e, -ESTALE, "the file changed while it was being moved");
		ovc_file_set_fd(i->ef, rw->fd);
		if (i->efd >= 0)
			close(i->efd);
		i->efd = rw->fd;
		i->efd_rw = 1;
		rw->fd = -1;
		rw->f = i->ef;
		return 0;
	}
	int rc = ovc_file_open(rw->fd, lookup_key, (void *)w->view, &rw->own, e);

	rw->f = rw->own;
	return rc;
}

static void rewrap_end(struct rewrap *rw)
{
	ovc_file_close(rw->own);
	if (rw->fd >= 0)
		close(rw->fd);
	if (rw->i)
		pthread_rwlock_unlock(&rw->i->lock);
	rw->own = rw->f = NULL;
	rw->fd = -1;
	rw->i = NULL;
}

/* The rename failed: the old key back (both are held). */
static void rewrap_undo(struct rewrap *rw)
{
	ovc_err e = { 0 };

	if (!rw->f)
		return;
	if (ovc_file_rewrap(rw->f, rw->from, &e) < 0)
		ovc_log_error("%s: the rename failed and the key could not be put back (%s): the file stays readable with the destination's key",
			      rw->path, e.msg);
	rewrap_end(rw);
}

static void rewrap_done(struct rewrap *rw)
{
	if (!rw->f)
		return;
	ovc_log_info("%s: moved to a place with another rule: its key rewrapped", rw->path);
	rewrap_end(rw);
}

static int open_rel_as(ovc_overlay *ov, const char *rel, int last_flags, ovc_err *e);

/* ---- folders moved between rules: the rewrap journal ---------------------------------

 * A folder moved between two encrypting rules is renamed at once; then every
 * encrypted file below it gets its key rewrapped to the destination's. A
 * journal entry (fusefs/journal.h), written and fsynced before the rename and
 * removed when the walk is over, lets the agent finish the walk after a crash
 * (ovc_overlay_resume()); entries are small files in the agent's state
 * folder. */

/* Entries being walked now, by any overlay of the process (a live move's
 * walk on a FUSE thread, a resume thread): the resume scan leaves them
 * alone, so no tree is walked twice at once. */
#define MAX_WALKS 64
static pthread_mutex_t walk_mu = PTHREAD_MUTEX_INITIALIZER;
static char walking[MAX_WALKS][32];

/* Claim entry `name`: 1, or 0 when it is being walked (or too many are). */
static int walk_claim(const char *name)
{
	int free_slot = -1, taken = 0;

	pthread_mutex_lock(&walk_mu);
	for (int k = 0; k < MAX_WALKS && !taken; k++) {
		if (!walking[k][0] && free_slot < 0)
			free_slot = k;
		taken = !strcmp(walking[k], name);
	}
	if (!taken && free_slot >= 0)
		snprintf(walking[free_slot], sizeof(walking[free_slot]), "%s", name);
	pthread_mutex_unlock(&walk_mu);
	return !taken && free_slot >= 0;
}

static void walk_release(const char *name)
{
	pthread_mutex_lock(&walk_mu);
	for (int k = 0; k < MAX_WALKS; k++)
		if (!strcmp(walking[k], name))
			walking[k][0] = '\0';
	pthread_mutex_unlock(&walk_mu);
}

static int journal_add(ovc_overlay *ov, uid_t uid, const ovc_key *to, const char *rel,
		       char jname[64], ovc_err *e)
{
	ovc_journal_entry *j = calloc(1, sizeof(*j));
	char *text = NULL;
	uint8_t r[8];
	size_t len;
	int fd, rc;

	jname[0] = 0;
	if (!j)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	if (ov->journal_fd < 0) {
		free(j);
		return ovc_err_set(e, -EXDEV, "no journal folder: a folder is not moved between rules");
	}
	snprintf(j->mnt, sizeof(j->mnt), "%s", ov->mnt);
	snprintf(j->rel, sizeof(j->rel), "%s", rel);
	j->uid = uid;
	memcpy(j->key_id, to->id, OVC_KEY_ID_BYTES);
	rc = ovc_journal_format(j, &text, &len);
	free(j);
	if (rc < 0)
		return ovc_err_set(e, rc, "the rewrap journal: %s", strerror(-rc));
	randombytes_buf(r, sizeof(r));
	snprintf(jname, 64, "rewrap-%02x%02x%02x%02x%02x%02x%02x%02x",
		 r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
	/* claimed before the entry exists, so the resume scan (another
	 * thread, every second) never walks it before the rename is done;
	 * the claim lasts until this move's own walk is over */
	if (!walk_claim(jname)) {
		free(text);
		jname[0] = 0;
		return ovc_err_set(e, -EXDEV, "the rewrap journal: too many folder moves at once");
	}
	fd = openat(ov->journal_fd, jname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
	} else {
		rc = ovc_pwrite_full(fd, text, len, 0);
		if (rc == 0 && fsync(fd) < 0)
			rc = -errno;
		close(fd);
		if (rc == 0 && fsync(ov->journal_fd) < 0)
			rc = -errno;
		if (rc < 0)
			unlinkat(ov->journal_fd, jname, 0);
	}
	free(text);
	if (rc < 0) {
		walk_release(jname);
		jname[0] = 0;
		return ovc_err_set(e, rc, "the rewrap journal: %s", strerror(-rc));
	}
	return 0;
}

static void journal_done(ovc_overlay *ov, const char *jname)
{
	if (unlinkat(ov->journal_fd, jname, 0) < 0 || fsync(ov->journal_fd) < 0)
		ovc_log_warn("%s: the rewrap journal entry %s: %s", ov->mnt, jname, strerror(errno));
	walk_release(jname);
}

/* Rewrap the encrypted file `name` (in dirfd) to `to`, if it is under
 * another key the view holds. 1 rewrapped, 0 nothing to do, -errno. */
static int rewrap_one(ovc_overlay *ov, const ovc_view *v, int dirfd, const char *name,
		      const struct stat *st, const ovc_key *to)
{
	struct who w = { .view = (ovc_view *)v };
	struct rewrap rw = { .fd = -1 };
	struct ovc_inode *i;
	uint8_t kid[OVC_KEY_ID_BYTES];
	ovc_err e = { 0 };
	int rc = file_key_id(dirfd, name, NULL, kid);

	if (rc <= 0 || memcmp(kid, to->id, OVC_KEY_ID_BYTES) == 0)
		return rc;
	i = ovc_itable_find(ov->it, st->st_dev, st->st_ino);
	if (i)
		ovc_itable_ref(ov->it, i);
	rc = rewrap_start(&rw, &w, dirfd, name, i, &e);
	if (rc == 0)
		rc = ovc_file_rewrap(rw.f, to, &e);
	rewrap_end(&rw);
	if (i)
		ovc_itable_unref(ov->it, i);
	if (rc < 0)
		ovc_log_warn("%s: a file below a moved folder (%s) keeps its key: %s; it is re-encrypted on its next write",
			     ov->mnt, name, e.msg[0] ? e.msg : strerror(-rc));
	return rc < 0 ? rc : 1;
}

static size_t walk_rewrap(ovc_overlay *ov, const ovc_view *v, int dfd, const ovc_key *to,
			  dev_t dev, int depth)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	size_t n = 0;

	if (!d) {
		close(dfd);
		return 0;
	}
	while (!atomic_load(&ov->stopping) && (de = readdir(d))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
			continue;
		if (S_ISDIR(st.st_mode) && depth < 512) {
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub >= 0)
				n += walk_rewrap(ov, v, sub, to, dev, depth + 1);
		} else if (S_ISREG(st.st_mode) && rewrap_one(ov, v, dirfd(d), de->d_name, &st, to) > 0) {
			n++;
		}
	}
	closedir(d);
	return n;
}

/* Rewrap everything below the folder `rel` (below the mount) to `to`:
 * 0 with the count in *n (also when the folder is gone: moved or removed
 * since, nothing of it is left there to do), or -1 when it cannot be
 * opened now (its journal entry must stay for a later try). */
static int tree_rewrap(ovc_overlay *ov, const ovc_view *v, const char *rel, const ovc_key *to,
		       size_t *n)
{
	ovc_err e = { 0 };
	struct stat st;
	int dfd = open_rel_as(ov, rel, O_RDONLY | O_DIRECTORY, &e);

	*n = 0;
	if (dfd >= 0 && fstat(dfd, &st) < 0) {
		ovc_err_set(&e, -errno, "%s", strerror(errno));
		close(dfd);
		dfd = -1;
	}
	if (dfd < 0 && e.code == -ENOENT) {
		ovc_log_warn("%s/%s: the moved folder is gone: %s; files that were in it keep their "
			     "key until their next write", ov->mnt, rel, e.msg);
		return 0;
	}
	if (dfd < 0) {
		ovc_log_warn("%s/%s: the moved folder: %s (its journal entry stays)", ov->mnt, rel, e.msg);
		return -1;
	}
	*n = walk_rewrap(ov, v, dfd, to, st.st_dev, 0);
	return 0;
}

/* What a rename across places does (ovc_decide_rename); for a rewrap the
 * header is rewritten (rw filled, inode locked) before the rename. */
static int rename_plan(ovc_overlay *ov, const struct who *w, struct ovc_inode *p1,
		       const char *n1, struct ovc_inode *p2, const char *n2,
		       int dirfd, const struct stat *st, struct ovc_inode *i,
		       int exchange, struct rewrap *rw)
{
	char b[PATH_MAX];
	uint8_t kid[OVC_KEY_ID_BYTES];
	ovc_rename_request r = {
		.view = w->view, .guard = (const char *const *)w->guard,
		.nguard = w->nguard, .src = rw->path, .dst = b,
		.kind = OVC_RK_OTHER, .exchange = exchange,
	};
	ovc_rename_decision d;
	ovc_err e = { 0 };
	int rc;

	if (abs_path(ov, p1, n1, rw->path, sizeof(rw->path)) < 0 ||
	    abs_path(ov, p2, n2, b, sizeof(b)) < 0)
		return -ENAMETOOLONG;
	rc = ovc_decide_rename(&r, &d);
	if (rc == 0)
		return 0; /* the same rule class: as it is */
	if (S_ISDIR(st->st_mode)) {
		r.kind = OVC_RK_DIR;
	} else if (S_ISREG(st->st_mode)) {
		rc = file_key_id(dirfd, n1, i, kid);
		if (rc < 0)
			return rc;
		r.kind = rc ? OVC_RK_ENC : OVC_RK_FILE;
		r.key_id = kid;
	}
	rc = ovc_decide_rename(&r, &d);
	if (rc < 0) {
		ovc_log_info("%s -> %s: %s (%s)", rw->path, b,
			     rc == -EXDEV ? "not renamed in place, programs copy" : "refused",
			     d.why ? d.why : "across rules");
		return rc;
	}
	if (d.act == OVC_REN_REWRAP_TREE) {
		size_t ml = strlen(ov->mnt);

		rw->tree_to = d.to;
		snprintf(rw->tree_rel, sizeof(rw->tree_rel), "%s", b + (ml > 1 ? ml : 0) + 1);
		rc = journal_add(ov, w->uid, d.to, rw->tree_rel, rw->jname, &e);
		if (rc < 0)
			ovc_log_error("%s: not moved: %s", rw->path, e.msg);
		return rc;
	}
	if (d.act != OVC_REN_REWRAP)
		return 0;
	rw->from = d.from;
	rc = rewrap_start(rw, w, dirfd, n1, i, &e);
	if (rc == 0)
		rc = ovc_file_rewrap(rw->f, d.to, &e);
	if (rc < 0) {
		ovc_log_error("%s: not moved: its key could not be rewrapped: %s", rw->path,
			      e.msg[0] ? e.msg : strerror(-rc));
		rewrap_end(rw);
		return rc == -EBADMSG || rc == -EPROTO ? -EIO : rc;
	}
	return 0;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned flags)
{
	ovc_overlay *ov = OV(req);
	struct ovc_inode *p = INO(ov, parent), *np = INO(ov, newparent), *moved;
	struct ovc_at a = { .fd = -1 }, d = { .fd = -1 };
	struct stat st, dst;
	struct who w;
	struct rewrap rw = { .fd = -1 };
	int rc = who_get(ov, req, &w), have_dst;

	if (rc < 0)
		goto out;
	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		rc = -EINVAL;
		goto out;
	}
	rc = two_at(ov, p, np, &a, &d);
	if (rc < 0)
		goto out;
	if (fstatat(a.fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		rc = -errno;
		goto out;
	}
	have_dst = fstatat(d.fd, newname, &dst, AT_SYMLINK_NOFOLLOW) == 0;
	moved = ovc_itable_find(ov->it, st.st_dev, st.st_ino);
	/* Between places with different rules (ovc_decide_rename): a
	 * rewrap, a move that keeps the file encrypted, or EXDEV, which lets
	 * mv copy through the overlay so that the copy gets the
	 * destination's form. */
	rc = rename_plan(ov, &w, p, name, np, newname, a.fd, &st, moved,
			 !!(flags & RENAME_EXCHANGE), &rw);
	if (rc < 0)
		goto out;
	if (have_dst && !(flags & RENAME_EXCHANGE))
		before_remove(ov, d.fd, newname);
	if (renameat2(a.fd, name, d.fd, newname, flags) < 0) {
		rc = -errno;
		rewrap_undo(&rw);
		if (rw.jname[0])
			journal_done(ov, rw.jname);
		goto out;
	}
	rewrap_done(&rw);
	if (moved)
		ovc_itable_moved(ov->it, moved, np, newname);
	if ((flags & RENAME_EXCHANGE) && have_dst) {
		struct ovc_inode *other = ovc_itable_find(ov->it, dst.st_dev, dst.st_ino);

		if (other)
			ovc_itable_moved(ov->it, other, p, name);
	}
out:
	ovc_itable_at_put(ov->it, &a);
	ovc_itable_at_put(ov->it, &d);
	fuse_reply_err(req, -rc);
	if (rc == 0 && rw.jname[0]) {
		/* renamed: now the files below, after the program has its
		 * answer (the journal resumes this after a crash) */
		size_t n;

		if (tree_rewrap(ov, w.view, rw.tree_rel, rw.tree_to, &n) < 0 ||
		    atomic_load(&ov->stopping)) {
			/* unmounting, or not reachable now: the entry stays, a
			 * later resume finishes it */
			walk_release(rw.jname);
		} else {
			ovc_log_info("%s: folder moved to a place with another rule: %zu file%s below rewrapped",
				     rw.path, n, n == 1 ? "" : "s");
			journal_done(ov, rw.jname);
		}
	}
	who_put(&w);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	ovc_overlay *ov = OV(req);
	struct ovc_inode *p = INO(ov, parent);
	struct ovc_at a = { .fd = -1 };
	struct fuse_entry_param e;
	char path[PATH_MAX];
	struct handle *h = NULL;
	ovc_decision d;
	struct who w;
	uint8_t ckid[OVC_KEY_ID_BYTES];
	int rc, fd = -1, keep, err, copy = 0;

	if (fi->flags & O_TMPFILE) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (strlen(name) > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	rc = who_get(ov, req, &w);
	if (rc < 0)
		goto fail;
	rc = abs_path(ov, p, name, path, sizeof(path));
	if (rc == 0) {
		/* asked once: do_open below takes the answer */
		copy = copy_source(ov, req, &w, path, ckid);
		rc = decide(&w, path, OVC_FC_NEW, NULL, 1, 0, copy ? ckid : NULL, &d);
	}
	who_put(&w);
	if (rc < 0)
		goto fail;
	rc = ovc_itable_at(ov->it, p, 1, &a);
	if (rc < 0)
		goto fail;
	/* made empty; do_open then decides again on the empty file under
	 * the inode lock (an empty file where a rule encrypts becomes an
	 * encrypted one) */
	fd = openat(a.fd, name, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd >= 0) {
		rc = own_new(req, a.fd, name, fd, mode, 0);
		close(fd);
		if (rc < 0) {
			unlinkat(a.fd, name, 0);
			goto fail;
		}
	} else if (errno != EEXIST || (fi->flags & O_EXCL)) {
		rc = -errno;
		goto fail;
	}
	ovc_itable_at_put(ov->it, &a);
	err = do_lookup(ov, p, name, &e);
	if (err) {
		rc = -err;
		goto fail;
	}
	rc = do_open(ov, req, INO(ov, e.ino), fi->flags & ~(O_CREAT | O_EXCL),
		     copy ? ckid : NULL, &h, &keep);
	if (rc < 0) {
		ovc_itable_forget(ov->it, INO(ov, e.ino), 1);
		goto fail;
	}
	fill_fi(fi, h, 0);
	e.attr.st_size = 0;
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		handle_free(ov, h);
		ovc_itable_forget(ov->it, INO(ov, e.ino), 1);
	}
	return;
fail:
	ovc_itable_at_put(ov->it, &a);
	fuse_reply_err(req, -rc);
}

/* ---- folders --------------------------------------------------------------------- */

static void op_opendir(fuse_req_t req, fuse_ino_t n, struct fuse_file_info *fi)
{
	ovc_overlay *ov = OV(req);
	struct ovc_at a;
	struct dhandle *d;
	int fd, rc = ovc_itable_at(ov->it, INO(ov, n), 1, &a);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fd = openat(a.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = fd < 0 ? errno : 0;
	ovc_itable_at_put(ov->it, &a);
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	d = calloc(1, sizeof(*d));
	if (!d || !(d->dp = fdopendir(fd))) {
		rc = d ? errno : ENOMEM;
		close(fd);
		free(d);
		fuse_reply_err(req, rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->cache_readdir = 0;
	fuse_reply_open(req, fi);
}

static void do_readdir(fuse_req_t req, fuse_ino_t n, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	ovc_overlay *ov = OV(req);
	struct dhandle *d = (struct dhandle *)(uintptr_t)fi->fh;
	char *buf, *p;
	size_t rem = size;
	int err = 0;

	buf = calloc(1, size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off != d->off) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->off = off;
	}
	p = buf;
	for (;;) {
		size_t esz;
		off_t next;

		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				if (errno)
					err = errno;
				break;
			}
		}
		next = d->entry->d_off;
		if (plus) {
			struct fuse_entry_param e;
			const char *nm = d->entry->d_name;
			int is_dot = strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0;

			memset(&e, 0, sizeof(e));
			if (is_dot) {
				e.attr.st_ino = d->entry->d_ino;
				e.attr.st_mode = (mode_t)d->entry->d_type << 12;
			} else {
				int le = do_lookup(ov, INO(ov, n), nm, &e);

				if (le) {
					/* gone meanwhile, or our own mount */
					d->entry = NULL;
					d->off = next;
					continue;
				}
			}
			esz = fuse_add_direntry_plus(req, p, rem, nm, &e, next);
			if (esz > rem) {
				if (!is_dot)
					ovc_itable_forget(ov->it, INO(ov, e.ino), 1);
				break;
			}
		} else {
			struct stat st = {
				.st_ino = d->entry->d_ino,
				.st_mode = (mode_t)d->entry->d_type << 12,
			};

			esz = fuse_add_direntry(req, p, rem, d->entry->d_name, &st, next);
			if (esz > rem)
				break;
		}
		p += esz;
		rem -= esz;
		d->entry = NULL;
		d->off = next;
	}
	if (err && rem == size)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t n, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, n, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t n, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, n, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t n, struct fuse_file_info *fi)
{
	struct dhandle *d = (struct dhandle *)(uintptr_t)fi->fh;

	(void)n;
	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t n, int datasync,
			struct fuse_file_info *fi)
{
	struct dhandle *d = (struct dhandle *)(uintptr_t)fi->fh;
	int fd = dirfd(d->dp), rc;

	(void)n;
	rc = datasync ? fdatasync(fd) : fsync(fd);
	fuse_reply_err(req, rc < 0 ? errno : 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t n)
{
	ovc_overlay *ov = OV(req);
	struct ovc_at a;
	struct statvfs sv;
	int rc = ovc_itable_at(ov->it, INO(ov, n), 1, &a);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = fstatvfs(a.fd, &sv) < 0 ? errno : 0;
	ovc_itable_at_put(ov->it, &a);
	if (rc)
		fuse_reply_err(req, rc);
	else
		fuse_reply_statfs(req, &sv);
}

/* ---- xattrs ---------------------------------------------------------------------- */

/* The path for an xattr call on inode n: a file as its folder's
 * descriptor + name ("/proc/self/fd/P/NAME", used with the l*xattr calls,
 * which do not follow a name swapped for a symlink), a folder (or a file
 * with a descriptor of its own) as "/proc/self/fd/N" (followed: it names
 * the inode). Opening no descriptor per file keeps `ls -l`, which asks
 * every file for ACLs, cheap. *follow says which. */
static int xattr_path(ovc_overlay *ov, fuse_ino_t n, struct ovc_at *a, char *p,
		      size_t size, int *follow)
{
	struct ovc_inode *i = INO(ov, n);
	int rc, len;

	if (i->type == S_IFLNK)
		return -EPERM;
	rc = ovc_itable_at(ov->it, i, 0, a);
	if (rc < 0)
		return rc;
	*follow = a->name[0] == 0;
	len = *follow ? snprintf(p, size, "/proc/self/fd/%d", a->fd)
		      : snprintf(p, size, "/proc/self/fd/%d/%s", a->fd, a->name);
	if (len < 0 || (size_t)len >= size) {
		ovc_itable_at_put(ov->it, a);
		return -ENAMETOOLONG;
	}
	return 0;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t n, const char *name,
			const char *value, size_t size, int flags)
{
	ovc_overlay *ov = OV(req);
	struct ovc_at a;
	char p[PATH_MAX + 32];
	int follow, rc;

	if (is_mark_name(name)) {
		fuse_reply_err(req, EPERM); /* the overlay's own */
		return;
	}
	rc = xattr_path(ov, n, &a, p, sizeof(p), &follow);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = (follow ? setxattr(p, name, value, size, flags)
		     : lsetxattr(p, name, value, size, flags)) < 0 ? errno : 0;
	ovc_itable_at_put(ov->it, &a);
	fuse_reply_err(req, rc);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t n, const char *name, size_t size)
{
	ovc_overlay *ov = OV(req);
	struct ovc_at a;
	char p[PATH_MAX + 32], *buf = NULL;
	ssize_t r;
	int follow, rc;

	if (is_mark_name(name)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	rc = xattr_path(ov, n, &a, p, sizeof(p), &follow);
	if (rc < 0) {
		fuse_reply_err(req, rc == -EPERM ? ENODATA : -rc);
		return;
	}
	if (size) {
		buf = malloc(size);
		if (!buf) {
			ovc_itable_at_put(ov->it, &a);
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	r = follow ? getxattr(p, name, buf, size) : lgetxattr(p, name, buf, size);
	rc = r < 0 ? errno : 0;
	ovc_itable_at_put(ov->it, &a);
	if (rc)
		fuse_reply_err(req, rc);
	else if (size)
		fuse_reply_buf(req, buf, (size_t)r);
	else
		fuse_reply_xattr(req, (size_t)r);
	free(buf);
}

/* Drop the marker from a list of xattr names; the new length. */
static size_t unmark_list(char *buf, size_t len)
{
	size_t in = 0, out = 0;

	while (in < len) {
		size_t l = strnlen(buf + in, len - in) + 1;

		if (!is_mark_name(buf + in)) {
			memmove(buf + out, buf + in, l);
			out += l;
		}
		in += l;
	}
	return out;
}

static void op_listxattr(fuse_req_t req, fuse_ino_t n, size_t size)
{
	ovc_overlay *ov = OV(req);
	struct ovc_at a;
	char p[PATH_MAX + 32], *buf = NULL;
	ssize_t r;
	int follow, rc = xattr_path(ov, n, &a, p, sizeof(p), &follow);

	if (rc < 0) {
		if (rc == -EPERM && size == 0)
			fuse_reply_xattr(req, 0);
		else if (rc == -EPERM)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_err(req, -rc);
		return;
	}
	/* the whole list, whatever `size` asks: the marker is taken out of
	 * it before its length counts */
	for (;;) {
		r = follow ? listxattr(p, NULL, 0) : llistxattr(p, NULL, 0);
		if (r <= 0)
			break;
		free(buf);
		buf = malloc((size_t)r);
		if (!buf) {
			r = -1;
			errno = ENOMEM;
			break;
		}
		r = follow ? listxattr(p, buf, (size_t)r) : llistxattr(p, buf, (size_t)r);
		if (r >= 0 || errno != ERANGE)
			break; /* else it grew meanwhile */
	}
	rc = r < 0 ? errno : 0;
	ovc_itable_at_put(ov->it, &a);
	if (r > 0)
		r = (ssize_t)unmark_list(buf, (size_t)r);
	if (rc)
		fuse_reply_err(req, rc);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)r);
	else if ((size_t)r > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t n, const char *name)
{
	ovc_overlay *ov = OV(req);
	struct ovc_at a;
	char p[PATH_MAX + 32];
	int follow, rc;

	if (is_mark_name(name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	rc = xattr_path(ov, n, &a, p, sizeof(p), &follow);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = (follow ? removexattr(p, name) : lremovexattr(p, name)) < 0 ? errno : 0;
	ovc_itable_at_put(ov->it, &a);
	fuse_reply_err(req, rc);
}

/* ---- session --------------------------------------------------------------------- */

static void op_init(void *data, struct fuse_conn_info *conn)
{
	ovc_overlay *ov = data;

	conn->max_write = ov->max_write;
	conn->max_readahead = MAX_IO;
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
				  FUSE_CAP_SPLICE_MOVE | FUSE_CAP_POSIX_LOCKS);
	if (conn->capable & FUSE_CAP_FLOCK_LOCKS)
		conn->want &= ~(unsigned)FUSE_CAP_FLOCK_LOCKS; /* kernel-local flock */
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if ((conn->capable & FUSE_CAP_READDIRPLUS) && !ov->no_readdirplus)
		conn->want |= FUSE_CAP_READDIRPLUS;
	else
		conn->want &= ~(unsigned)(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
	if (!ov->network && !ov->no_writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	if (ov->network && (conn->capable & FUSE_CAP_AUTO_INVAL_DATA))
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	else
		conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.create = op_create,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.fallocate = op_fallocate,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
};

static void *loop_main(void *arg)
{
	ovc_overlay *ov = arg;
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	sigset_t all;

	/* signals belong to the agent's signalfd */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	if (!cfg) {
		atomic_store(&ov->dead, 1);
		return NULL;
	}
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	/* threads are kept (each has a cipher context and a buffer):
	 * as many idle as at most */
	fuse_loop_cfg_set_idle_threads(cfg, 16);
	fuse_loop_cfg_set_max_threads(cfg, 16);
	if (fuse_session_loop_mt(ov->se, cfg) != 0)
		ovc_log_debug("%s: the FUSE session loop ended", ov->mnt);
	fuse_loop_cfg_destroy(cfg);
	atomic_store(&ov->dead, 1);
	return NULL;
}

static void set_read_ahead(ovc_overlay *ov, unsigned kb)
{
	char p[96], v[32];
	int fd, n;

	snprintf(p, sizeof(p), "/sys/class/bdi/%u:%u/read_ahead_kb",
		 major(ov->fuse_dev), minor(ov->fuse_dev));
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		ovc_log_info("%s: cannot set read-ahead (%s): %s", ov->mnt, p, strerror(errno));
		return;
	}
	n = snprintf(v, sizeof(v), "%u\n", kb);
	if (write(fd, v, (size_t)n) != n)
		ovc_log_info("%s: cannot set read-ahead: %s", ov->mnt, strerror(errno));
	close(fd);
}

int ovc_overlay_mount(const ovc_overlay_opts *o, ovc_overlay **out, ovc_err *e)
{
	ovc_overlay *ov = NULL;
	char fsname[PATH_MAX + 16];
	char *argv[8];
	int argc = 0, rc;
	struct fuse_args args;
	struct stat st;

	*out = NULL;
	ov = calloc(1, sizeof(*ov));
	if (!ov || !(ov->mnt = strdup(o->mountpoint))) {
		free(ov);
		close(o->backing_fd);
		return ovc_err_set(e, -ENOMEM, "out of memory");
	}
	ov->views = o->views;
	ov->network = o->network;
	ov->timeout = o->network ? 0.0 : TIMEOUT;
	ov->no_writeback = o->no_writeback;
	ov->no_keep_cache = o->no_keep_cache;
	ov->no_readdirplus = o->no_readdirplus;
	ov->max_write = o->max_write >= 4096 && o->max_write < MAX_IO ? o->max_write : MAX_IO;
	ov->journal_fd = o->journal_fd > 0 ? fcntl(o->journal_fd, F_DUPFD_CLOEXEC, 3) : -1;
	pthread_mutex_init(&ov->by_mu, NULL);
	if (fstat(o->backing_fd, &st) == 0)
		ov->it_dev = st.st_dev;
	{
		/* the descriptor cache takes at most a quarter of what the
		 * process may open: handles and the agent need the rest */
		struct rlimit rl;
		size_t cache = FD_CACHE;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur / 4 < cache)
			cache = (size_t)(rl.rlim_cur / 4);
		rc = ovc_itable_new(o->backing_fd, cache, &ov->it);
	}
	if (rc < 0) {
		close(o->backing_fd);
		if (ov->journal_fd >= 0)
			close(ov->journal_fd);
		free(ov->mnt);
		free(ov);
		return ovc_err_set(e, rc, "%s: %s", o->mountpoint, strerror(-rc));
	}
	snprintf(fsname, sizeof(fsname), "-ofsname=overcrypt,subtype=overcrypt%s",
		 o->allow_other ? ",allow_other" : "");
	argv[argc++] = "overcryptd";
	argv[argc++] = fsname;
	argv[argc++] = "-odefault_permissions";
	argv[argc] = NULL;
	args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	ov->se = fuse_session_new(&args, &ops, sizeof(ops), ov);
	fuse_opt_free_args(&args);
	if (!ov->se) {
		rc = ovc_err_set(e, -EIO, "%s: cannot start a FUSE session", o->mountpoint);
		goto fail;
	}
	if (fuse_session_mount(ov->se, o->mountpoint) != 0) {
		rc = ovc_err_set(e, -EIO, "%s: the FUSE mount failed (see the log above)",
				 o->mountpoint);
		fuse_session_destroy(ov->se);
		ov->se = NULL;
		goto fail;
	}
	if (pthread_create(&ov->th, NULL, loop_main, ov) != 0) {
		rc = ovc_err_set(e, -EAGAIN, "%s: cannot start a thread", o->mountpoint);
		fuse_session_unmount(ov->se);
		fuse_session_destroy(ov->se);
		ov->se = NULL;
		goto fail;
	}
	ov->th_started = 1;
	if (stat(o->mountpoint, &st) == 0) {
		ov->fuse_dev = st.st_dev;
		own_dev(ov, st.st_dev, 1);
	}
	if (o->read_ahead_kb && ov->fuse_dev)
		set_read_ahead(ov, o->read_ahead_kb);
	*out = ov;
	return 0;
fail:
	ovc_itable_free(ov->it);
	if (ov->journal_fd >= 0)
		close(ov->journal_fd);
	free(ov->mnt);
	free(ov);
	return rc;
}

/* Abort the FUSE connection (its threads then see ENODEV, and programs
 * still inside get ENOTCONN): the only way to end a session that a busy
 * lazy unmount keeps alive. Needs the fusectl file system (mounted here
 * when missing, as root). */
static void abort_conn(ovc_overlay *ov)
{
	char p[96];
	int fd;

	snprintf(p, sizeof(p), "/sys/fs/fuse/connections/%u/abort", minor(ov->fuse_dev));
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && geteuid() == 0 &&
	    mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL) == 0)
		fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		ovc_log_warn("%s: cannot abort the FUSE connection (%s): %s", ov->mnt, p,
			     strerror(errno));
		return;
	}
	if (write(fd, "1", 1) != 1)
		ovc_log_warn("%s: cannot abort the FUSE connection: %s", ov->mnt, strerror(errno));
	close(fd);
}

/* Has the session's FUSE connection ended (the device reports POLLERR)? */
static int conn_ended(struct fuse_session *se)
{
	struct pollfd p = { .fd = fuse_session_fd(se), .events = POLLIN };

	return p.fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
}

/* End the session and free: `by_path` unmounts the mount point (the
 * topmost mount there), else the connection is aborted unless it has
 * ended already (a mount no longer in the table must not take another
 * mount at its path with it). */
static void teardown(ovc_overlay *ov, int by_path)
{
	if (!ov)
		return;
	atomic_store(&ov->stopping, 1);
	if (ov->resume_started)
		pthread_join(ov->resume_th, NULL);
	if (ov->fuse_dev)
		own_dev(ov, ov->fuse_dev, 0);
	if (ov->se) {
		fuse_session_exit(ov->se);
		if (by_path)
			fuse_session_unmount(ov->se);
		else if (!atomic_load(&ov->dead) && ov->fuse_dev)
			abort_conn(ov);
		if (ov->th_started) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 2;
			if (pthread_timedjoin_np(ov->th, NULL, &ts) != 0) {
				ovc_log_warn("%s: still busy after unmounting: aborting its connection",
					     ov->mnt);
				if (ov->fuse_dev)
					abort_conn(ov);
				pthread_join(ov->th, NULL);
			}
		}
		/* fuse_session_unmount() also frees libfuse's copy of the
		 * path; once the connection has ended it unmounts nothing
		 * (libfuse checks the device for POLLERR), and we check it
		 * first ourselves */
		if (!by_path && conn_ended(ov->se))
			fuse_session_unmount(ov->se);
		fuse_session_destroy(ov->se);
	}
	/* releases the kernel never sent (lazy unmount, abort) */
	while (ov->handles)
		handle_free(ov, ov->handles);
	ovc_itable_free(ov->it);
	if (ov->journal_fd >= 0)
		close(ov->journal_fd);
	free(ov->mnt);
	free(ov);
}

void ovc_overlay_unmount(ovc_overlay *ov)
{
	teardown(ov, 1);
}

void ovc_overlay_discard(ovc_overlay *ov)
{
	teardown(ov, 0);
}

dev_t ovc_overlay_dev(const ovc_overlay *ov)
{
	return ov->fuse_dev;
}

const char *ovc_overlay_path(const ovc_overlay *ov)
{
	return ov->mnt;
}

int ovc_overlay_dead(const ovc_overlay *ov)
{
	return atomic_load(&((ovc_overlay *)ov)->dead);
}

void ovc_overlay_stats_get(const ovc_overlay *cov, ovc_overlay_stats *s)
{
	ovc_overlay *ov = (ovc_overlay *)cov;

	s->bytes_read = atomic_load(&ov->bytes_read);
	s->bytes_written = atomic_load(&ov->bytes_written);
	s->files_opened = atomic_load(&ov->files_opened);
	s->open_handles = atomic_load(&ov->open_handles);
	s->open_encrypted = atomic_load(&ov->open_encrypted);
	s->auth_failures = atomic_load(&ov->auth_failures);
	s->inodes = ovc_itable_count(ov->it);
}

struct nodes {
	fuse_ino_t *v;
	size_t n, cap;
	ovc_overlay *ov;
};

static void collect(void *ctx, struct ovc_inode *i)
{
	struct nodes *ns = ctx;

	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 64;
		fuse_ino_t *v = realloc(ns->v, cap * sizeof(*v));

		if (!v)
			return;
		ns->v = v;
		ns->cap = cap;
	}
	ns->v[ns->n++] = NODE(ns->ov, i);
}

size_t ovc_overlay_flush_encrypted(ovc_overlay *ov, uid_t uid)
{
	struct nodes ns = { .ov = ov };
	size_t done = 0;

	(void)uid; /* the page cache is shared by every user */
	if (!ov->se || ovc_overlay_dead(ov))
		return 0;
	ovc_itable_each_encrypted(ov->it, collect, &ns);
	for (size_t k = 0; k < ns.n; k++)
		if (fuse_lowlevel_notify_inval_inode(ov->se, ns.v[k], 0, 0) == 0)
			done++;
	free(ns.v);
	return done;
}

uint64_t ovc_overlay_open_by(const ovc_overlay *cov, uid_t uid)
{
	ovc_overlay *ov = (ovc_overlay *)cov;
	uint64_t n = 0;

	pthread_mutex_lock(&ov->by_mu);
	for (size_t k = 0; k < sizeof(ov->by_uid) / sizeof(ov->by_uid[0]); k++)
		if (ov->by_uid[k].n && ov->by_uid[k].uid == uid)
			n = ov->by_uid[k].n;
	pthread_mutex_unlock(&ov->by_mu);
	return n;
}

/* Open the backing file at `rel` (relative to the root, no "." or ".."
 * components, no symlink followed) read-write. */
static int open_rel(ovc_overlay *ov, const char *rel, ovc_err *e)
{
	return open_rel_as(ov, rel, O_RDWR, e);
}

/* The folder of `rel` (O_PATH) and its last name. */
static int open_parent_rel(ovc_overlay *ov, const char *rel, char name[NAME_MAX + 1],
			   ovc_err *e)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(rel, '/');
	size_t dl = slash ? (size_t)(slash - rel) : 0;

	if (strlen(slash ? slash + 1 : rel) > NAME_MAX || dl >= sizeof(dir))
		return ovc_err_set(e, -ENAMETOOLONG, "the path is too long");
	snprintf(name, NAME_MAX + 1, "%s", slash ? slash + 1 : rel);
	if (!name[0] || !strcmp(name, ".") || !strcmp(name, ".."))
		return ovc_err_set(e, -EINVAL, "no file name in the path");
	/* no slash: "" (the root itself) */
	memcpy(dir, rel, dl);
	dir[dl] = 0;
	return open_rel_as(ov, dir, O_PATH | O_DIRECTORY, e);
}

/* Open `rel` below the backing root, no symlink followed on the way, the
 * last component with `last_flags`. */
static int open_rel_as(ovc_overlay *ov, const char *rel, int last_flags, ovc_err *e)
{
	struct ovc_at a;
	char buf[PATH_MAX], *save = NULL, *comp, *next;
	int dfd, fd, rc;

	if (strlen(rel) >= sizeof(buf))
		return ovc_err_set(e, -ENAMETOOLONG, "the path is too long");
	strcpy(buf, rel);
	rc = ovc_itable_at(ov->it, ovc_itable_root(ov->it), 1, &a);
	if (rc < 0)
		return ovc_err_set(e, rc, "%s: %s", ov->mnt, strerror(-rc));
	dfd = dup(a.fd);
	ovc_itable_at_put(ov->it, &a);
	if (dfd < 0)
		return ovc_err_set(e, -errno, "dup: %s", strerror(errno));
	comp = strtok_r(buf, "/", &save);
	while (comp) {
		next = strtok_r(NULL, "/", &save);
		if (strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0) {
			close(dfd);
			return ovc_err_set(e, -EINVAL, "'.' or '..' in the path");
		}
		fd = openat(dfd, comp, (next ? O_PATH | O_DIRECTORY : last_flags) |
			    O_NOFOLLOW | O_CLOEXEC);
		rc = -errno;
		close(dfd);
		if (fd < 0)
			return ovc_err_set(e, rc, "%s: %s", comp, strerror(-rc));
		dfd = fd;
		comp = next;
	}
	return dfd;
}

/* The backing file of `i` changed behind the kernel's cache (repair): the
 * kernel must see it as a new inode, since with the writeback cache it
 * keeps its own size for an inode it holds. */
static void forget_identity(ovc_overlay *ov, struct ovc_inode *i)
{
	struct ovc_at pa;
	fuse_ino_t parent = 0;
	char name[NAME_MAX + 1] = "";

	if (ovc_itable_at_parent(ov->it, i, &pa) == 0) {
		parent = NODE(ov, pa.holder);
		snprintf(name, sizeof(name), "%s", pa.name);
		ovc_itable_at_put(ov->it, &pa);
	}
	ovc_itable_detach(ov->it, i);
	if (!ov->se || ovc_overlay_dead(ov))
		return;
	fuse_lowlevel_notify_inval_inode(ov->se, NODE(ov, i), 0, 0);
	if (parent)
		fuse_lowlevel_notify_inval_entry(ov->se, parent, name, strlen(name));
}

int ovc_overlay_repair(ovc_overlay *ov, const char *path, uid_t uid, int force,
		       int dry_run, ovc_repair_report *r, ovc_err *e)
{
	size_t ml = strlen(ov->mnt);
	struct ovc_inode *i = NULL;
	ovc_view *v = NULL;
	ovc_cipher *c = NULL;
	struct stat st;
	int fd, rc;
	uint8_t magic[8];

	memset(r, 0, sizeof(*r));
	if (strncmp(path, ov->mnt, ml) != 0 || path[ml] != '/' || !path[ml + 1])
		return ovc_err_set(e, -EINVAL, "%s is not a file below %s", path, ov->mnt);
	fd = open_rel(ov, path + ml + 1, e);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = ovc_err_set(e, -EINVAL, "%s is not a regular file", path);
		goto out;
	}
	if (pread(fd, magic, sizeof(magic), 0) != (ssize_t)sizeof(magic) ||
	    !ovc_is_encrypted(magic, sizeof(magic))) {
		rc = ovc_err_set(e, -EINVAL, "%s is not an encrypted file", path);
		goto out;
	}
	v = ovc_views_get(ov->views, uid);
	c = ovc_cipher_new();
	if (!c) {
		rc = ovc_err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	i = ovc_itable_find(ov->it, st.st_dev, st.st_ino);
	if (i) {
		ovc_itable_ref(ov->it, i);
		pthread_rwlock_wrlock(&i->lock);
		/* the kernel sends releases after close() returns: give a
		 * file closed a moment ago up to 2 s */
		for (int k = 0; k < 100 && i->nopen > 0; k++) {
			pthread_rwlock_unlock(&i->lock);
			usleep(20000);
			pthread_rwlock_wrlock(&i->lock);
		}
		if (i->nopen > 0) {
			rc = ovc_err_set(e, -EBUSY, "%s is open (%u handles): close it first",
					 path, i->nopen);
			goto out;
		}
	}
	rc = ovc_file_repair(fd, lookup_key, v, c, force, dry_run, r, e);
	if (i)
		i->enc_known = 0;
out:
	if (i) {
		pthread_rwlock_unlock(&i->lock);
		if (rc == 0 && !dry_run && !r->intact)
			forget_identity(ov, i);
		ovc_itable_unref(ov->it, i);
	}
	ovc_cipher_free(c);
	ovc_view_put(v);
	close(fd);
	return rc;
}

static void ignore_sigio(void)
{
	if (signal(SIGIO, SIG_IGN) == SIG_ERR)
		ovc_log_warn("cannot ignore SIGIO: %s", strerror(errno));
}

/* Is the file of `fd` (open read-only) open for writing anywhere, through
 * this overlay or behind it? A read lease is refused (EAGAIN) exactly
 * then; it is taken and dropped at once. The signal a lease break would
 * send (SIGIO) is ignored in this process. A file system without leases
 * (a network share) cannot tell: no. */
static int open_for_writing(int fd)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, ignore_sigio);
	if (fcntl(fd, F_SETLEASE, F_RDLCK) < 0)
		return errno == EAGAIN;
	if (fcntl(fd, F_SETLEASE, F_UNLCK) < 0)
		ovc_log_warn("cannot drop a lease: %s", strerror(errno));
	return 0;
}

/* A file named by an absolute path below the mount, for the agent's
 * commands (convert, encrypt, decrypt): its folder and name, a read-only
 * descriptor, its stat, whether it is encrypted, the caller's view, and,
 * once locked, its inode. */
struct target {
	struct ovc_at pa;
	int fd, enc;
	struct stat st;
	ovc_view *v;
	struct ovc_inode *i;   /* locked for writing, or NULL */
};

static int target_open(ovc_overlay *ov, const char *path, uid_t uid, struct target *t,
		       ovc_err *e)
{
	size_t ml = strlen(ov->mnt);

	memset(t, 0, sizeof(*t));
	t->fd = t->pa.fd = -1;
	if (strncmp(path, ov->mnt, ml) != 0 || path[ml] != '/' || !path[ml + 1])
		return ovc_err_set(e, -EINVAL, "%s is not a file below %s", path, ov->mnt);
	t->pa.fd = open_parent_rel(ov, path + ml + 1, t->pa.name, e);
	if (t->pa.fd < 0)
		return t->pa.fd;
	t->fd = openat(t->pa.fd, t->pa.name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0)
		return ovc_err_set(e, -errno, "%s: %s", path, strerror(errno));
	if (fstat(t->fd, &t->st) < 0 || !S_ISREG(t->st.st_mode))
		return ovc_err_set(e, -EINVAL, "%s is not a regular file", path);
	t->enc = sniff(t->fd, &t->st);
	if (t->enc < 0)
		return ovc_err_set(e, t->enc, "%s: %s", path, strerror(-t->enc));
	t->v = ovc_views_get(ov->views, uid);
	return 0;
}

/* Lock the file's inode, if the kernel knows it, and refuse when it is
 * open for writing (or at all, `any_open`) through the overlay or behind
 * it, or has several names. */
static int target_lock(ovc_overlay *ov, struct target *t, int any_open, ovc_err *e)
{
	if (t->st.st_nlink > 1)
		return ovc_err_set(e, -EMLINK, "it has %ju hard links: rewriting one name would leave the old form in the others",
				   (uintmax_t)t->st.st_nlink);
	t->i = ovc_itable_find(ov->it, t->st.st_dev, t->st.st_ino);
	if (t->i) {
		ovc_itable_ref(ov->it, t->i);
		pthread_rwlock_wrlock(&t->i->lock);
		if (t->i->nplainw > 0 || (any_open && t->i->nopen > 0))
			return ovc_err_set(e, -EBUSY, "it is open%s through the overlay (%u handles): close it first",
					   any_open ? "" : " for writing", t->i->nopen);
	}
	if (open_for_writing(t->fd))
		return ovc_err_set(e, -EBUSY, "it is open for writing by another process");
	return 0;
}

/* Rewrite it under `key` (NULL: plaintext from `src`). */
static int target_rewrite(ovc_overlay *ov, struct target *t, ovc_file *src,
			  const ovc_key *key, ovc_err *e)
{
	struct tls *own = tls_new();
	int nfd, rc = rewrite(ov, own, t->i, &t->pa, t->fd, src, key, &nfd, e);

	tls_free(own);

	if (rc < 0)
		return e->msg[0] ? rc : ovc_err_set(e, rc, "%s", strerror(-rc));
	if (key && t->i)
		set_mark(ov, t->i, nfd);
	else if (key)
		put_mark(ov, nfd);
	close(nfd);
	return 0;
}

static void target_close(ovc_overlay *ov, struct target *t)
{
	if (t->i) {
		pthread_rwlock_unlock(&t->i->lock);
		ovc_itable_unref(ov->it, t->i);
	}
	ovc_view_put(t->v);
	if (t->fd >= 0)
		close(t->fd);
	if (t->pa.fd >= 0)
		close(t->pa.fd);
}

int ovc_overlay_convert(ovc_overlay *ov, const char *path, uid_t uid,
			int dry_run, enum ovc_convert_result *res, ovc_err *e)
{
	struct target t;
	const ovc_key *key;
	const char *why;
	int rc = target_open(ov, path, uid, &t, e);

	*res = OVC_CONV_NO_RULE;
	if (rc < 0)
		goto out;
	if (t.enc) {
		*res = OVC_CONV_ENCRYPTED;
		goto out;
	}
	key = ovc_decide_convert_key(t.v, path, &why);
	if (!key) {
		rc = why ? ovc_err_set(e, -EACCES, "the rule's key is not held (%s)", why) : 0;
		goto out;
	}
	rc = target_lock(ov, &t, 0, e);
	if (rc < 0)
		goto out;
	*res = OVC_CONV_CONVERTED;
	if (!dry_run)
		rc = target_rewrite(ov, &t, NULL, key, e);
out:
	target_close(ov, &t);
	return rc;
}

int ovc_overlay_manual(ovc_overlay *ov, const char *path, uid_t uid, int decrypt,
		       const char *asset, ovc_err *e)
{
	struct target t;
	ovc_match m;
	ovc_file *f = NULL;
	const ovc_key *key = NULL;
	char why[512];
	int rc = target_open(ov, path, uid, &t, e);

	if (rc < 0)
		goto out;
	if (!t.v || t.v->state != OVC_VIEW_READY || !t.v->rules) {
		rc = ovc_err_set(e, -EACCES, "your keys are not available (%s)",
				 !t.v ? "not served" : t.v->state == OVC_VIEW_LOCKED ? "locked" :
				 t.v->state == OVC_VIEW_EXPIRED ? "the policy expired" : "no policy yet");
		goto out;
	}
	if (ovc_ruleset_match(t.v->rules, path, &m, why, sizeof(why)) < 0) {
		rc = ovc_err_set(e, -EINVAL, "%s: the path is too long", path);
		goto out;
	}
	if (ovc_decide_rule_governs(&m)) {
		rc = ovc_err_set(e, -EPERM, "%s is governed by a rule, which decides whether it is encrypted (%s)%s",
				 path, why, decrypt ? "" : "; `overcrypt encrypt --initial` converts plaintext there");
		goto out;
	}
	if (decrypt) {
		if (!t.enc) {
			rc = ovc_err_set(e, -EALREADY, "%s is not encrypted", path);
			goto out;
		}
		if (!t.v->settings.user_may_decrypt) {
			rc = ovc_err_set(e, -EPERM, "decrypting is not allowed by your policy (user_may_decrypt is off)");
			goto out;
		}
		rc = target_lock(ov, &t, 1, e);
		if (rc == 0)
			rc = ovc_file_open(t.fd, lookup_key, t.v, &f, e);
		if (rc == 0)
			rc = target_rewrite(ov, &t, f, NULL, e);
	} else {
		const ovc_rule *r;

		if (t.enc) {
			rc = ovc_err_set(e, -EALREADY, "%s is already encrypted", path);
			goto out;
		}
		r = ovc_ruleset_asset(t.v->rules, asset);
		key = r && t.v->keys ? ovc_keyset_find(t.v->keys, r->key_id) : NULL;
		if (!key) {
			rc = ovc_err_set(e, -EACCES, r ? "the key of asset '%s' is not held"
					 : "no asset '%s' with a key in your policy", asset);
			goto out;
		}
		rc = target_lock(ov, &t, 0, e);
		if (rc == 0)
			rc = target_rewrite(ov, &t, NULL, key, e);
	}
out:
	ovc_file_close(f);
	target_close(ov, &t);
	return rc;
}

/* A claimed journal entry to finish. */
struct resume_job {
	struct resume_job *next;
	char name[32];
	uid_t uid;
	uint8_t key_id[OVC_KEY_ID_BYTES];
	char rel[PATH_MAX];
};

/* The resume thread: walks each job with the view of its user then (the
 * key still held), removes its entry, and ends. */
struct resume_run {
	ovc_overlay *ov;
	struct resume_job *jobs;
};

static void *resume_main(void *arg)
{
	struct resume_run *run = arg;
	ovc_overlay *ov = run->ov;
	struct resume_job *j = run->jobs, *next;

	free(run);
	for (; j; j = next) {
		ovc_view *v = ovc_views_get(ov->views, j->uid);
		const ovc_key *to = v && v->state == OVC_VIEW_READY && v->keys
				    ? ovc_keyset_find(v->keys, j->key_id) : NULL;

		next = j->next;
		if (to && !atomic_load(&ov->stopping)) {
			size_t k;

			if (tree_rewrap(ov, v, j->rel, to, &k) == 0 && !atomic_load(&ov->stopping)) {
				ovc_log_info("%s/%s: a folder move interrupted before: %zu file%s below rewrapped now",
					     ov->mnt, j->rel, k, k == 1 ? "" : "s");
				journal_done(ov, j->name);
			} else {
				walk_release(j->name);
			}
		} else {
			walk_release(j->name); /* tried again at a later resume */
		}
		ovc_view_put(v);
		free(j);
	}
	return NULL;
}

size_t ovc_overlay_resume(ovc_overlay *ov)
{
	DIR *d;
	struct dirent *de;
	struct resume_job *jobs = NULL;
	struct resume_run *run;
	size_t found = 0;
	int dfd;

	if (ov->journal_fd < 0 || atomic_load(&ov->stopping))
		return 0;
	if (ov->resume_started) {
		/* still walking: nothing new; else reap it before a new one */
		if (pthread_tryjoin_np(ov->resume_th, NULL) != 0)
			return 0;
		ov->resume_started = 0;
	}
	dfd = openat(ov->journal_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	while ((de = readdir(d))) {
		ovc_journal_entry *j;
		struct resume_job *rj;
		char buf[4 * PATH_MAX + 256];
		ovc_view *v;
		int held;
		ssize_t n;
		int fd;

		if (strncmp(de->d_name, "rewrap-", 7) != 0 || strlen(de->d_name) >= sizeof(rj->name))
			continue;
		fd = openat(ov->journal_fd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		close(fd);
		j = calloc(1, sizeof(*j));
		if (!j)
			break;
		if (n <= 0 || ovc_journal_parse(buf, (size_t)n, j) < 0) {
			ovc_log_warn("%s: the rewrap journal entry %s does not parse: left alone",
				     ov->mnt, de->d_name);
			free(j);
			continue;
		}
		v = strcmp(j->mnt, ov->mnt) ? NULL : ovc_views_get(ov->views, j->uid);
		held = v && v->state == OVC_VIEW_READY && v->keys &&
		       ovc_keyset_find(v->keys, j->key_id);
		ovc_view_put(v);
		/* another overlay's, keys not held yet, or being walked now */
		if (!held || strlen(j->rel) >= sizeof(rj->rel) || !walk_claim(de->d_name)) {
			free(j);
			continue;
		}
		rj = calloc(1, sizeof(*rj));
		if (!rj) {
			walk_release(de->d_name);
			free(j);
			break;
		}
		snprintf(rj->name, sizeof(rj->name), "%s", de->d_name);
		rj->uid = j->uid;
		memcpy(rj->key_id, j->key_id, OVC_KEY_ID_BYTES);
		snprintf(rj->rel, sizeof(rj->rel), "%s", j->rel);
		rj->next = jobs;
		jobs = rj;
		found++;
		free(j);
	}
	closedir(d);
	if (!jobs)
		return 0;
	run = malloc(sizeof(*run));
	if (run) {
		run->ov = ov;
		run->jobs = jobs;
	}
	if (!run || pthread_create(&ov->resume_th, NULL, resume_main, run) != 0) {
		free(run);
		while (jobs) {
			struct resume_job *nx = jobs->next;

			walk_release(jobs->name);
			free(jobs);
			jobs = nx;
		}
		return 0;
	}
	ov->resume_started = 1;
	return found;
}
