/*
 * itable.c - the overlay's inode table and bounded descriptor cache (see
 * itable.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fusefs/itable.h"

struct ovc_itable {
	pthread_mutex_t mu;          /* guards everything below and the
				      * table fields of every inode */
	struct ovc_inode **hash;
	size_t nbuckets, count;
	struct ovc_inode root;
	struct ovc_inode lru;        /* list head: most recent first */
	size_t nfds, max_fds;
};

static size_t hash_of(dev_t dev, ino_t ino, size_t nbuckets)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;

	return (size_t)(h ^ (h >> 29)) & (nbuckets - 1);
}

static size_t bucket(const ovc_itable *t, dev_t dev, ino_t ino)
{
	return hash_of(dev, ino, t->nbuckets);
}

static void lru_unlink(struct ovc_inode *i)
{
	if (i->lprev) {
		i->lprev->lnext = i->lnext;
		i->lnext->lprev = i->lprev;
		i->lprev = i->lnext = NULL;
	}
}

static void lru_front(ovc_itable *t, struct ovc_inode *i)
{
	lru_unlink(i);
	i->lnext = t->lru.lnext;
	i->lprev = &t->lru;
	t->lru.lnext->lprev = i;
	t->lru.lnext = i;
}

static void inode_init(struct ovc_inode *i)
{
	memset(i, 0, sizeof(*i));
	i->fd = -1;
	i->efd = -1;
	pthread_rwlock_init(&i->lock, NULL);
	atomic_init(&i->enc_seen, 0);
	atomic_init(&i->bad_logged, 0);
}

int ovc_itable_new(int root_fd, size_t max_fds, ovc_itable **out)
{
	ovc_itable *t = calloc(1, sizeof(*t));
	struct stat st;

	if (!t)
		return -ENOMEM;
	if (fstat(root_fd, &st) < 0) {
		int err = -errno;

		free(t);
		return err;
	}
	t->nbuckets = 1 << 16;
	t->hash = calloc(t->nbuckets, sizeof(*t->hash));
	if (!t->hash) {
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->mu, NULL);
	inode_init(&t->root);
	t->root.dev = st.st_dev;
	t->root.ino = st.st_ino;
	t->root.type = S_IFDIR;
	t->root.fd = root_fd;
	t->root.sticky = 1;
	t->root.nlookup = 1;
	t->root.name = NULL;
	t->lru.lnext = t->lru.lprev = &t->lru;
	t->max_fds = max_fds < 16 ? 16 : max_fds;
	*out = t;
	return 0;
}

static void inode_release(struct ovc_inode *i)
{
	if (i->fd >= 0)
		close(i->fd);
	if (i->ef)
		ovc_file_close(i->ef);
	if (i->efd >= 0)
		close(i->efd);
	pthread_rwlock_destroy(&i->lock);
	free(i->name);
	free(i);
}

void ovc_itable_free(ovc_itable *t)
{
	if (!t)
		return;
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct ovc_inode *i = t->hash[b], *n;

		for (; i; i = n) {
			n = i->hnext;
			inode_release(i);
		}
	}
	free(t->hash);
	if (t->root.fd >= 0)
		close(t->root.fd);
	if (t->root.ef)
		ovc_file_close(t->root.ef);
	pthread_rwlock_destroy(&t->root.lock);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

struct ovc_inode *ovc_itable_root(ovc_itable *t)
{
	return &t->root;
}

static void grow(ovc_itable *t)
{
	size_t nb = t->nbuckets * 2;
	struct ovc_inode **h = calloc(nb, sizeof(*h));

	if (!h)
		return; /* chains just get longer */
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct ovc_inode *i = t->hash[b], *n;

		for (; i; i = n) {
			size_t nbk = hash_of(i->dev, i->ino, nb);

			n = i->hnext;
			i->hnext = h[nbk];
			h[nbk] = i;
		}
	}
	free(t->hash);
	t->hash = h;
	t->nbuckets = nb;
}

static struct ovc_inode *find_locked(ovc_itable *t, dev_t dev, ino_t ino)
{
	struct ovc_inode *i;

	if (dev == t->root.dev && ino == t->root.ino)
		return &t->root;
	for (i = t->hash[bucket(t, dev, ino)]; i; i = i->hnext)
		if (i->dev == dev && i->ino == ino)
			return i;
	return NULL;
}

static void unhash(ovc_itable *t, struct ovc_inode *i)
{
	struct ovc_inode **p = &t->hash[bucket(t, i->dev, i->ino)];

	for (; *p; p = &(*p)->hnext)
		if (*p == i) {
			*p = i->hnext;
			t->count--;
			return;
		}
}

/* Drop the fd of an inode (not borrowed). */
static void drop_fd(ovc_itable *t, struct ovc_inode *i)
{
	if (i->fd >= 0 && i != &t->root) {
		close(i->fd);
		i->fd = -1;
		t->nfds--;
	}
	lru_unlink(i);
}

/* Free `i` when nobody holds it; walks up through parents that become
 * free too. */
static void maybe_free(ovc_itable *t, struct ovc_inode *i)
{
	while (i && i != &t->root && i->nlookup == 0 && i->refs == 0) {
		struct ovc_inode *p = i->parent;

		unhash(t, i);
		drop_fd(t, i);
		inode_release(i);
		if (p)
			p->refs--;
		i = p;
	}
}

static int set_name(ovc_itable *t, struct ovc_inode *i,
		    struct ovc_inode *parent, const char *name)
{
	char *n;

	if (i->parent == parent && i->name && strcmp(i->name, name) == 0)
		return 0;
	n = strdup(name);
	if (!n)
		return -ENOMEM;
	free(i->name);
	i->name = n;
	if (i->parent != parent) {
		struct ovc_inode *old = i->parent;

		parent->refs++;
		i->parent = parent;
		if (old) {
			old->refs--;
			maybe_free(t, old);
		}
	}
	return 0;
}

struct ovc_inode *ovc_itable_lookup(ovc_itable *t, struct ovc_inode *parent,
				    const char *name, const struct stat *st)
{
	struct ovc_inode *i;

	pthread_mutex_lock(&t->mu);
	i = find_locked(t, st->st_dev, st->st_ino);
	if (i) {
		if (i != &t->root && !i->sticky && set_name(t, i, parent, name) < 0) {
			pthread_mutex_unlock(&t->mu);
			return NULL;
		}
		i->nlookup++;
		pthread_mutex_unlock(&t->mu);
		return i;
	}
	i = malloc(sizeof(*i));
	if (!i) {
		pthread_mutex_unlock(&t->mu);
		return NULL;
	}
	inode_init(i);
	i->dev = st->st_dev;
	i->ino = st->st_ino;
	i->type = st->st_mode & S_IFMT;
	if (set_name(t, i, parent, name) < 0) {
		pthread_rwlock_destroy(&i->lock);
		free(i);
		pthread_mutex_unlock(&t->mu);
		return NULL;
	}
	i->nlookup = 1;
	if (t->count >= t->nbuckets)
		grow(t);
	size_t b = bucket(t, i->dev, i->ino);
	i->hnext = t->hash[b];
	t->hash[b] = i;
	t->count++;
	pthread_mutex_unlock(&t->mu);
	return i;
}

void ovc_itable_forget(ovc_itable *t, struct ovc_inode *i, uint64_t n)
{
	pthread_mutex_lock(&t->mu);
	i->nlookup = n > i->nlookup ? 0 : i->nlookup - n;
	maybe_free(t, i);
	pthread_mutex_unlock(&t->mu);
}

void ovc_itable_ref(ovc_itable *t, struct ovc_inode *i)
{
	pthread_mutex_lock(&t->mu);
	i->refs++;
	pthread_mutex_unlock(&t->mu);
}

void ovc_itable_unref(ovc_itable *t, struct ovc_inode *i)
{
	pthread_mutex_lock(&t->mu);
	i->refs--;
	maybe_free(t, i);
	pthread_mutex_unlock(&t->mu);
}

/* Close the least recently used descriptors nobody borrows until under
 * the bound. */
static void evict(ovc_itable *t)
{
	struct ovc_inode *i = t->lru.lprev, *p;

	while (t->nfds > t->max_fds && i != &t->lru) {
		p = i->lprev;
		if (i->fd_users == 0 && !i->sticky)
			drop_fd(t, i);
		i = p;
	}
}

/* A descriptor of `i` itself, borrowed (fd_users++). Under mu. */
static int self_fd_locked(ovc_itable *t, struct ovc_inode *i, int depth)
{
	struct ovc_inode *p = i->parent;
	struct stat st;
	int pfd, fd;

	if (i->fd >= 0) {
		i->fd_users++;
		if (i != &t->root)
			lru_front(t, i);
		return i->fd;
	}
	if (!p || !i->name || depth > 4096)
		return -ESTALE;
	pfd = self_fd_locked(t, p, depth + 1);
	if (pfd < 0)
		return pfd;
	fd = openat(pfd, i->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	p->fd_users--;
	if (fd < 0)
		return errno == ENOENT ? -ESTALE : -errno;
	if (fstat(fd, &st) < 0 || st.st_dev != i->dev || st.st_ino != i->ino) {
		close(fd);
		return -ESTALE;
	}
	i->fd = fd;
	i->fd_users = 1;
	t->nfds++;
	lru_front(t, i);
	evict(t);
	return fd;
}

int ovc_itable_at(ovc_itable *t, struct ovc_inode *i, int self,
		  struct ovc_at *a)
{
	int fd;

	pthread_mutex_lock(&t->mu);
	if (i->fd >= 0 || self || i->type == S_IFDIR || !i->parent) {
		fd = self_fd_locked(t, i, 0);
		a->holder = i;
		a->name[0] = 0;
	} else {
		fd = self_fd_locked(t, i->parent, 0);
		a->holder = i->parent;
		if (strlen(i->name) > NAME_MAX) {
			if (fd >= 0)
				i->parent->fd_users--;
			fd = -ENAMETOOLONG;
		} else {
			strcpy(a->name, i->name);
		}
	}
	pthread_mutex_unlock(&t->mu);
	a->fd = fd;
	if (fd < 0)
		a->holder = NULL;
	return fd < 0 ? fd : 0;
}

int ovc_itable_at_parent(ovc_itable *t, struct ovc_inode *i, struct ovc_at *a)
{
	int fd;

	pthread_mutex_lock(&t->mu);
	if (!i->parent || !i->name || strlen(i->name) > NAME_MAX) {
		pthread_mutex_unlock(&t->mu);
		a->holder = NULL;
		a->fd = -1;
		return -ESTALE;
	}
	fd = self_fd_locked(t, i->parent, 0);
	a->holder = fd < 0 ? NULL : i->parent;
	strcpy(a->name, i->name);
	pthread_mutex_unlock(&t->mu);
	a->fd = fd;
	return fd < 0 ? fd : 0;
}

void ovc_itable_at_put(ovc_itable *t, struct ovc_at *a)
{
	if (!a->holder)
		return;
	pthread_mutex_lock(&t->mu);
	a->holder->fd_users--;
	evict(t);
	pthread_mutex_unlock(&t->mu);
	a->holder = NULL;
}

int ovc_itable_path(ovc_itable *t, struct ovc_inode *i, const char *child,
		    char *buf, size_t size)
{
	size_t pos = size - 1;
	struct ovc_inode *c;
	int rc = 0;

	if (size < 2)
		return -ENAMETOOLONG;
	buf[pos] = 0;
	pthread_mutex_lock(&t->mu);
	if (child) {
		size_t n = strlen(child);

		if (n + 1 > pos) {
			rc = -ENAMETOOLONG;
			goto out;
		}
		pos -= n;
		memcpy(buf + pos, child, n);
		buf[--pos] = '/';
	}
	for (c = i; c && c != &t->root; c = c->parent) {
		size_t n = c->name ? strlen(c->name) : 0;

		if (n + 1 > pos) {
			rc = -ENAMETOOLONG;
			goto out;
		}
		pos -= n;
		memcpy(buf + pos, c->name, n);
		buf[--pos] = '/';
	}
	if (!c) {
		rc = -ESTALE;
		goto out;
	}
	/* drop the leading '/' */
	if (buf[pos] == '/')
		pos++;
	memmove(buf, buf + pos, size - pos);
out:
	pthread_mutex_unlock(&t->mu);
	return rc;
}

void ovc_itable_keep(ovc_itable *t, struct ovc_inode *v)
{
	int fd;

	pthread_mutex_lock(&t->mu);
	fd = self_fd_locked(t, v, 0);
	if (fd >= 0) {
		v->fd_users--;
		v->sticky = 1;
		lru_unlink(v);
	}
	pthread_mutex_unlock(&t->mu);
}

int ovc_itable_moved(ovc_itable *t, struct ovc_inode *i,
		     struct ovc_inode *parent, const char *name)
{
	int rc;

	pthread_mutex_lock(&t->mu);
	rc = set_name(t, i, parent, name);
	pthread_mutex_unlock(&t->mu);
	return rc;
}

struct ovc_inode *ovc_itable_find(ovc_itable *t, dev_t dev, ino_t ino)
{
	struct ovc_inode *i;

	pthread_mutex_lock(&t->mu);
	i = find_locked(t, dev, ino);
	pthread_mutex_unlock(&t->mu);
	return i;
}

void ovc_itable_rehash(ovc_itable *t, struct ovc_inode *i, dev_t dev,
		       ino_t newino)
{
	size_t b;

	pthread_mutex_lock(&t->mu);
	unhash(t, i);
	if (i->fd >= 0 && i->fd_users == 0)
		drop_fd(t, i);
	i->sticky = 0;
	i->dev = dev;
	i->ino = newino;
	b = bucket(t, dev, newino);
	i->hnext = t->hash[b];
	t->hash[b] = i;
	t->count++;
	pthread_mutex_unlock(&t->mu);
}

void ovc_itable_detach(ovc_itable *t, struct ovc_inode *i)
{
	pthread_mutex_lock(&t->mu);
	if (i != &t->root)
		unhash(t, i);
	pthread_mutex_unlock(&t->mu);
}

void ovc_itable_each_encrypted(ovc_itable *t,
			       void (*fn)(void *ctx, struct ovc_inode *ino),
			       void *ctx)
{
	pthread_mutex_lock(&t->mu);
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct ovc_inode *i = t->hash[b]; i; i = i->hnext)
			if (atomic_load(&i->enc_seen))
				fn(ctx, i);
	pthread_mutex_unlock(&t->mu);
}

uint64_t ovc_itable_count(ovc_itable *t)
{
	uint64_t n;

	pthread_mutex_lock(&t->mu);
	n = t->count;
	pthread_mutex_unlock(&t->mu);
	return n;
}

uint64_t ovc_itable_fds(ovc_itable *t)
{
	uint64_t n;

	pthread_mutex_lock(&t->mu);
	n = t->nfds;
	pthread_mutex_unlock(&t->mu);
	return n;
}
