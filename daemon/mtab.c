/*
 * mtab.c - the SMB mounts of the mount table, watched (see mtab.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/mtab.h"

/* The largest table read (a machine with thousands of mounts stays far
 * below). */
#define MTAB_MAX (64u << 20)

struct ovc_mtab {
	char *file;            /* --mountinfo FILE, or NULL */
	int fd;                /* OVC_MTAB_PROC, polled */
	int ino_fd;            /* inotify on `file`'s folder, or -1 */
	struct stat fst;       /* of `file` at the last read */
	ovc_smb_mount *raw;    /* as read */
	size_t nraw;
	ovc_smb_mount *cur;    /* raw without the forgotten ones */
	size_t ncur;
	ovc_smb_mount *prev;   /* cur before the last change an update saw */
	size_t nprev;
	char **forgot;         /* mount points being unmounted */
	size_t nforgot;
	int failing;           /* the last read failed (logged once) */
};

/* Read `t->file` (checked to be safe) or the kernel's table. */
static int read_text(ovc_mtab *t, uint8_t **text, size_t *len, struct stat *st)
{
	int fd;
	int rc;

	if (!t->file)
		return ovc_read_file(OVC_MTAB_PROC, MTAB_MAX, 0, text, len);
	/* checked and read through one descriptor: nothing can be swapped in
	 * between */
	fd = open(t->file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) != 0)
		rc = -errno;
	else if (!S_ISREG(st->st_mode) || (st->st_uid != 0 && st->st_uid != geteuid()) ||
		 (st->st_mode & 022))
		rc = -EPERM;
	else
		rc = ovc_read_fd(fd, MTAB_MAX, 0, text, len);
	close(fd);
	return rc;
}

static int forgotten(const ovc_mtab *t, const char *mp)
{
	for (size_t i = 0; i < t->nforgot; i++)
		if (!strcmp(t->forgot[i], mp))
			return 1;
	return 0;
}

/* cur = raw without the forgotten mount points. 0 or -ENOMEM. */
static int filter(ovc_mtab *t)
{
	ovc_smb_mount *v = NULL;
	size_t k = 0;

	if (t->nraw && !(v = malloc(t->nraw * sizeof(*v))))
		return -ENOMEM;
	for (size_t i = 0; i < t->nraw; i++)
		if (!forgotten(t, t->raw[i].mountpoint))
			v[k++] = t->raw[i];
	free(t->cur);
	t->cur = v;
	t->ncur = k;
	return 0;
}

/* Marks whose share the table no longer shows are done. */
static void prune_forgotten(ovc_mtab *t)
{
	for (size_t i = 0; i < t->nforgot; i++) {
		int shown = 0;

		for (size_t j = 0; j < t->nraw && !shown; j++)
			shown = !strcmp(t->raw[j].mountpoint, t->forgot[i]);
		if (shown)
			continue;
		free(t->forgot[i]);
		t->forgot[i--] = t->forgot[--t->nforgot];
	}
}

/* Read the table into raw/cur. 1 changed, 0 same, -errno. */
static int reread(ovc_mtab *t)
{
	uint8_t *text = NULL;
	size_t len = 0, n = 0, nold = t->ncur;
	ovc_smb_mount *v = NULL, *old = t->cur;
	struct stat st = { 0 };
	int rc = read_text(t, &text, &len, &st), changed;

	if (rc == 0) {
		rc = ovc_mountinfo_parse_smb((const char *)text, len, &v, &n, NULL);
		free(text);
	}
	if (rc) {
		if (!t->failing)
			ovc_log_error("%s: cannot read the mount table: %s (SMB shares stay as they were)",
				      t->file ? t->file : OVC_MTAB_PROC,
				      rc == -EPERM ? "not a regular file owned by us or root and writable by nobody else"
						   : strerror(-rc));
		t->failing = 1;
		return rc;
	}
	t->failing = 0;
	t->fst = st;
	free(t->raw);
	t->raw = v;
	t->nraw = n;
	prune_forgotten(t);
	t->cur = NULL;          /* `old` keeps it */
	t->ncur = 0;
	rc = filter(t);
	if (rc) {
		t->cur = old;
		t->ncur = nold;
		t->failing = 1; /* read again at the next update */
		return rc;
	}
	changed = t->ncur != nold || (nold && memcmp(old, t->cur, nold * sizeof(*old)));
	if (changed) {
		free(t->prev);
		t->prev = old;
		t->nprev = nold;
	} else {
		free(old);
	}
	return changed;
}

int ovc_mtab_open(const char *file, ovc_mtab **out, ovc_err *e)
{
	ovc_mtab *t = calloc(1, sizeof(*t));
	int rc;

	*out = NULL;
	if (!t || (file && !(t->file = strdup(file)))) {
		free(t);
		return ovc_err_set(e, -ENOMEM, "out of memory");
	}
	t->ino_fd = -1;
	if (file) {
		char dir[PATH_MAX];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", file);
		slash = strrchr(dir, '/');
		if (slash)
			*(slash == dir ? slash + 1 : slash) = '\0';
		t->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (t->ino_fd >= 0 &&
		    inotify_add_watch(t->ino_fd, slash ? dir : ".",
				      IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE) < 0) {
			close(t->ino_fd);
			t->ino_fd = -1;
		}
		/* without inotify the file is still checked on every update */
	}
	t->fd = open(OVC_MTAB_PROC, O_RDONLY | O_CLOEXEC);
	if (t->fd < 0) {
		rc = ovc_err_set(e, -errno, "%s: %s", OVC_MTAB_PROC, strerror(errno));
		ovc_mtab_free(t);
		return rc;
	}
	rc = reread(t);
	if (rc < 0) {
		ovc_err_set(e, rc, "%s: %s", file ? file : OVC_MTAB_PROC,
			    rc == -EPERM ? "not a regular file owned by us or root and writable by nobody else"
					 : strerror(-rc));
		ovc_mtab_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

void ovc_mtab_free(ovc_mtab *t)
{
	if (!t)
		return;
	if (t->fd >= 0)
		close(t->fd);
	if (t->ino_fd >= 0)
		close(t->ino_fd);
	for (size_t i = 0; i < t->nforgot; i++)
		free(t->forgot[i]);
	free(t->forgot);
	free(t->raw);
	free(t->cur);
	free(t->prev);
	free(t->file);
	free(t);
}

int ovc_mtab_fd(const ovc_mtab *t)
{
	return t->fd;
}

int ovc_mtab_file_fd(const ovc_mtab *t)
{
	return t->ino_fd;
}

int ovc_mtab_update(ovc_mtab *t, int woke)
{
	struct stat st;
	char ev[4096];

	/* drained: whatever it said, the stat below decides */
	while (t->ino_fd >= 0 && read(t->ino_fd, ev, sizeof(ev)) > 0)
		;

	if (t->file && !t->failing && stat(t->file, &st) == 0 && st.st_ino == t->fst.st_ino &&
	    st.st_dev == t->fst.st_dev && st.st_size == t->fst.st_size &&
	    st.st_mtim.tv_sec == t->fst.st_mtim.tv_sec && st.st_mtim.tv_nsec == t->fst.st_mtim.tv_nsec &&
	    !woke)
		return 0;
	if (!t->file && !woke && !t->failing)
		return 0;
	return reread(t);
}

const ovc_smb_mount *ovc_mtab_smb(const ovc_mtab *t, size_t *n)
{
	*n = t ? t->ncur : 0;
	return t ? t->cur : NULL;
}

const ovc_smb_mount *ovc_mtab_prev(const ovc_mtab *t, size_t *n)
{
	*n = t->nprev;
	return t->prev;
}

const ovc_smb_mount *ovc_mtab_find(const ovc_mtab *t, const char *mountpoint)
{
	const ovc_smb_mount *m = NULL;

	for (size_t i = 0; t && i < t->ncur; i++)
		if (!strcmp(t->cur[i].mountpoint, mountpoint))
			m = &t->cur[i];
	return m;
}

int ovc_mtab_forget(ovc_mtab *t, const char *mountpoint)
{
	char **v;

	if (forgotten(t, mountpoint))
		return 0;
	v = realloc(t->forgot, (t->nforgot + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	t->forgot = v;
	if (!(v[t->nforgot] = strdup(mountpoint)))
		return -ENOMEM;
	t->nforgot++;
	if (filter(t) != 0) {
		ovc_mtab_unforget(t, mountpoint);
		return -ENOMEM;
	}
	return 0;
}

void ovc_mtab_unforget(ovc_mtab *t, const char *mountpoint)
{
	for (size_t i = 0; i < t->nforgot; i++)
		if (!strcmp(t->forgot[i], mountpoint)) {
			free(t->forgot[i]);
			t->forgot[i] = t->forgot[--t->nforgot];
			break;
		}
	if (filter(t) != 0)
		ovc_log_error("out of memory: the share on %s stays left out", mountpoint);
}

void ovc_smb_source(const ovc_smb_mount *m, char *out, size_t size)
{
	snprintf(out, size, "//%s/%s%s%s", m->host, m->share, m->prefix[0] ? "/" : "", m->prefix);
}

/* ---- a share mounted under another name ------------------------------------------------ */

/* An address, not a name (IPv4 digits and dots, or IPv6 with ':'). */
static int numeric_host(const char *h)
{
	return strchr(h, ':') || strspn(h, "0123456789.") == strlen(h);
}

int ovc_smb_short_name_of(const char *a, const char *b)
{
	size_t la = strcspn(a, "."), lb = strcspn(b, ".");

	if (!a[0] || !b[0] || !strcasecmp(a, b) || numeric_host(a) || numeric_host(b))
		return 0;
	/* exactly one of them is a single label, and it is the other's first */
	if (a[la] == '\0' && b[lb] == '.')
		return la == lb && !strncasecmp(a, b, la);
	if (b[lb] == '\0' && a[la] == '.')
		return la == lb && !strncasecmp(a, b, lb);
	return 0;
}

/* Resolving threads running now, and the most at once. */
#define MAX_EXPLAIN 4
static atomic_int explaining;

struct explain {
	ovc_smb_mount m;
	size_t n;
	char (*hosts)[256];
};

/* Every address of `host` into `out` (numeric, at most `max`). */
static size_t resolve(const char *host, char out[][64], size_t max)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	size_t k = 0;

	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return 0;
	for (struct addrinfo *a = res; a && k < max; a = a->ai_next)
		if (getnameinfo(a->ai_addr, a->ai_addrlen, out[k], 64, NULL, 0, NI_NUMERICHOST) == 0)
			k++;
	freeaddrinfo(res);
	return k;
}

static void log_alias(const ovc_smb_mount *m, const char *host, const char *how)
{
	char src[2048];

	ovc_smb_source(m, src, sizeof(src));
	ovc_log_warn("%s: the share %s matches no smb:// rule, but %s names the same server as "
		     "the rules' host '%s': the rules apply only to shares mounted with the "
		     "name they use (mount it as //%s/%s, or write the rule with '%s'); "
		     "nothing there is encrypted now", m->mountpoint, src, how, host, host,
		     m->share, m->host);
}

static void *explain_thread(void *arg)
{
	struct explain *x = arg;
	char mine[16][64], theirs[16][64];
	size_t nm = 0;

	if (x->m.addr[0]) {
		snprintf(mine[0], sizeof(mine[0]), "%s", x->m.addr);
		nm = 1;
	} else {
		nm = resolve(x->m.host, mine, 16);
	}
	for (size_t i = 0; i < x->n && nm; i++) {
		size_t nt = resolve(x->hosts[i], theirs, 16);
		int same = 0;

		for (size_t a = 0; a < nm && !same; a++)
			for (size_t b = 0; b < nt && !same; b++)
				same = !strcmp(mine[a], theirs[b]);
		if (same) {
			char how[160];

			snprintf(how, sizeof(how), "its address %s", mine[0]);
			log_alias(&x->m, x->hosts[i], how);
			break;
		}
	}
	free(x->hosts);
	free(x);
	atomic_fetch_sub(&explaining, 1);
	return NULL;
}

void ovc_smb_explain_unmatched(const ovc_smb_mount *m, const char *const *hosts,
			       size_t n)
{
	struct explain *x;
	pthread_attr_t at;
	pthread_t th;

	for (size_t i = 0; i < n; i++)
		if (ovc_smb_short_name_of(m->host, hosts[i])) {
			log_alias(m, hosts[i], "its short name");
			return;
		}
	/* a slow DNS must not pile threads up: a few at a time, the rest
	 * unexplained (the short-name check above still ran) */
	if (!n || atomic_fetch_add(&explaining, 1) >= MAX_EXPLAIN) {
		if (n)
			atomic_fetch_sub(&explaining, 1);
		return;
	}
	if (!(x = calloc(1, sizeof(*x)))) {
		atomic_fetch_sub(&explaining, 1);
		return;
	}
	x->m = *m;
	x->n = n;
	if (!(x->hosts = calloc(n, sizeof(*x->hosts))))
		goto fail;
	for (size_t i = 0; i < n; i++)
		snprintf(x->hosts[i], sizeof(x->hosts[i]), "%s", hosts[i]);
	if (pthread_attr_init(&at) != 0)
		goto fail;
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &at, explain_thread, x) != 0) {
		pthread_attr_destroy(&at);
		goto fail;
	}
	pthread_attr_destroy(&at);
	return;
fail:
	free(x->hosts);
	free(x);
	atomic_fetch_sub(&explaining, 1);
}
