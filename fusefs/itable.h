/*
 * itable.h - the overlay's inode table (internal to fusefs/).
 *
 * Why not one descriptor per inode (passthrough_ll): the hard limit on open
 * files is far below the number of inodes a kernel may remember (unpacking a
 * million files). An inode here is known by its backing identity
 * (st_dev, st_ino), the parent it was last seen in and its name there. A
 * descriptor (O_PATH|O_NOFOLLOW) is opened on demand by walking from the
 * nearest ancestor that has one, and kept in a bounded LRU cache; the root
 * keeps its descriptor for the mount's life. Every backing access is an
 * *at() call relative to such a descriptor, so nothing outside the backing
 * tree is reached, and a name swapped for a symlink is never followed
 * (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW). An opened descriptor whose identity is
 * not the inode's (the name now points elsewhere) gives ESTALE.
 *
 * Locking: `mu` of the table guards the hash, every inode's nlookup, refs,
 * parent, name, fd, fd_users and LRU links. The per-inode `lock` (an
 * rwlock) guards the file state (ef, efd, enc cache, nopen) and serialises
 * read-modify-write on encrypted files.
 */
#ifndef OVC_FUSEFS_ITABLE_H
#define OVC_FUSEFS_ITABLE_H

#include <limits.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "crypto/blockfile.h"

struct ovc_inode {
	/* guarded by the table's mu */
	uint64_t nlookup;          /* the kernel's references */
	uint64_t refs;             /* ours: children, handles, borrowers */
	dev_t dev;
	ino_t ino;
	mode_t type;               /* S_IFMT bits */
	struct ovc_inode *parent;  /* holds a ref; NULL for the root */
	char *name;
	int fd;                    /* O_PATH descriptor, or -1 */
	int fd_users;              /* borrowers of fd */
	int sticky;                /* fd must not be evicted (last name gone) */
	struct ovc_inode *hnext, *lprev, *lnext;

	/* guarded by lock */
	pthread_rwlock_t lock;
	int enc_known;             /* the cache below is filled */
	struct timespec enc_ctime; /* backing ctime and size it holds for */
	off_t enc_bsize;
	int enc;                   /* the backing file is encrypted */
	uint64_t enc_plain;        /* its plaintext size (when valid) */
	int marked;                /* the backing file carries the marker xattr */
	ovc_file *ef;              /* open encrypted state, or NULL */
	int efd;                   /* the descriptor ef uses, or -1 */
	int efd_rw;
	unsigned nopen;            /* handles open on this inode */
	unsigned nplainw;          /* of which plaintext, for writing */
	struct timespec cache_ctime; /* backing ctime at our last release */
	int cache_valid;

	atomic_int enc_seen;       /* ever found encrypted (lock flush) */
	atomic_uint_fast64_t bad_logged; /* hash of the last damage logged */
};

typedef struct ovc_itable ovc_itable;

/* A table over the backing root `root_fd` (taken over). */
int ovc_itable_new(int root_fd, size_t max_fds, ovc_itable **out);
void ovc_itable_free(ovc_itable *t);

struct ovc_inode *ovc_itable_root(ovc_itable *t);

/* Find or add the inode for `st` as `name` in `parent`, taking one kernel
 * reference (nlookup). The name and parent are updated when they changed.
 * NULL on ENOMEM. */
struct ovc_inode *ovc_itable_lookup(ovc_itable *t, struct ovc_inode *parent,
				    const char *name, const struct stat *st);

/* Drop `n` kernel references (forget). */
void ovc_itable_forget(ovc_itable *t, struct ovc_inode *ino, uint64_t n);

/* Take / drop one of our own references. */
void ovc_itable_ref(ovc_itable *t, struct ovc_inode *ino);
void ovc_itable_unref(ovc_itable *t, struct ovc_inode *ino);

/* Where an inode is, for *at() calls: `fd` and `name`. With name[0] == 0,
 * fd is a descriptor of the inode itself (use AT_EMPTY_PATH, or
 * /proc/self/fd/N); else fd is its parent folder's and name its name.
 * `self` (when asked for) forces the first form. Borrowed until
 * ovc_at_put(). */
struct ovc_at {
	int fd;
	char name[NAME_MAX + 1];
	struct ovc_inode *holder;  /* whose fd is borrowed */
};
int ovc_itable_at(ovc_itable *t, struct ovc_inode *ino, int self,
		  struct ovc_at *a);
/* The parent folder's descriptor and the name (also for a folder). ESTALE
 * for the root. */
int ovc_itable_at_parent(ovc_itable *t, struct ovc_inode *ino,
			 struct ovc_at *a);
void ovc_itable_at_put(ovc_itable *t, struct ovc_at *a);

/* The path of `ino` below the root ("" for the root, "a/b" else), plus
 * "/" + `child` when given, into buf. -ENAMETOOLONG, or 0. */
int ovc_itable_path(ovc_itable *t, struct ovc_inode *ino, const char *child,
		    char *buf, size_t size);

/* A name was removed (unlink/rmdir/rename over): when it is `victim`'s
 * current name and the inode lives on (links left, or still open), give it
 * a descriptor of its own first (call before removing the name). */
void ovc_itable_keep(ovc_itable *t, struct ovc_inode *victim);

/* A rename moved `ino` to `name` in `parent`. */
int ovc_itable_moved(ovc_itable *t, struct ovc_inode *ino,
		     struct ovc_inode *parent, const char *name);

/* Find the inode of (dev, ino) when the kernel knows it (no reference). */
struct ovc_inode *ovc_itable_find(ovc_itable *t, dev_t dev, ino_t ino);

/* A backing file changed identity (plaintext conversion renamed a new file
 * over it): rehash `ino` under (dev, newino). */
void ovc_itable_rehash(ovc_itable *t, struct ovc_inode *ino, dev_t dev,
		       ino_t newino);

/* Forget the identity of `ino`: later lookups of its backing file make a
 * new inode (the kernel then takes fresh attributes; with the writeback
 * cache it never takes a size from us for an inode it holds). */
void ovc_itable_detach(ovc_itable *t, struct ovc_inode *ino);

/* Call fn for every inode whose encryption cache says encrypted (under mu;
 * fn must not call back into the table). */
void ovc_itable_each_encrypted(ovc_itable *t,
			       void (*fn)(void *ctx, struct ovc_inode *ino),
			       void *ctx);

uint64_t ovc_itable_count(ovc_itable *t);
uint64_t ovc_itable_fds(ovc_itable *t);

#endif
