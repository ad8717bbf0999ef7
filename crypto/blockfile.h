/*
 * blockfile.h - reading and writing an encrypted file at any plaintext
 * offset, over a backing file descriptor.
 *
 * An ovc_file is the state of one encrypted backing file: its header, its
 * file key (secret memory), its plaintext size, and the header with the
 * sparse flag, prepared at open while the asset key is at hand. In the
 * overlay it is per inode: every handle of the inode shares it.
 *
 * Thread-safety and locking: the caller serialises every call on one
 * ovc_file that changes it (pwrite, truncate, reload, set_sparse) against
 * all other calls on it (one lock per inode); concurrent preads are fine.
 * Each calling thread passes its own ovc_cipher. The backing descriptor is
 * borrowed: it must be open read-write for writes (never O_APPEND), and
 * every change to the backing file must go through this ovc_file.
 *
 * Crash rules (docs/file-format.md, "Writers"): a write that extends the
 * file first rewrites a short old final block with its new content (still
 * flagged last), then writes the new blocks in ascending order, the new
 * final one flagged last, then reseals the old final block as not last. A
 * header is rewritten with one pwrite at offset 0 with an fsync before and
 * after. Holes are left only once the sparse flag is on disk.
 *
 * Errors: 0 or a negative errno. -EBADMSG means "does not authenticate"
 * (the overlay answers EIO); `e` then names the block ("block 17 failed
 * authentication") or the header.
 */
#ifndef OVC_BLOCKFILE_H
#define OVC_BLOCKFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/common.h"
#include "crypto/format.h"
#include "crypto/keys.h"

typedef struct ovc_file ovc_file;

/* Find the asset key for a key id. Returns a borrowed key valid for the
 * duration of the call, or NULL when it is not held. */
typedef const ovc_key *(*ovc_key_lookup)(void *ctx,
					 const uint8_t id[OVC_KEY_ID_BYTES]);

/* Start a new encrypted file on the empty backing file `fd` under
 * `asset_key`: a fresh header (file id, file key) and the sealed empty final
 * block. The file is fsync()ed when `sync` is set. *out gets the new
 * object. Errors: -ENOTEMPTY when fd is not empty, -errno. */
int ovc_file_create(int fd, const ovc_key *asset_key, ovc_cipher *c, int sync,
		    ovc_file **out, ovc_err *e);

/* Open the encrypted file on `fd`: parse the header, ask `lookup` for its
 * key id, unwrap the file key, derive the size from the backing size.
 * Errors: -EINVAL / -EPROTO (header does not parse, unknown version or
 * flag), -EACCES (the key id is not held: e says which), -EBADMSG (the
 * header does not authenticate, or the backing size is no valid layout),
 * -ENOMEM, -errno. Blocks are not read. */
int ovc_file_open(int fd, ovc_key_lookup lookup, void *ctx, ovc_file **out,
		  ovc_err *e);

/* Wipe the keys and free (NULL is fine). The descriptor stays open. */
void ovc_file_close(ovc_file *f);

/* Use `fd` (the same backing file, e.g. reopened read-write) from now
 * on. The old descriptor stays the caller's. */
void ovc_file_set_fd(ovc_file *f, int fd);

/* The plaintext size. */
uint64_t ovc_file_size(const ovc_file *f);

/* The header as read or last written. Borrowed, valid until the next
 * changing call. */
const ovc_header *ovc_file_header(const ovc_file *f);

/* Re-read the backing size (after a change by another client). Errors:
 * -EBADMSG when it is no valid layout. */
int ovc_file_reload(ovc_file *f, ovc_err *e);

/* Read up to `len` bytes at plaintext offset `off` into `buf`. Returns the
 * number of bytes read (0 at or past the end), or -EBADMSG naming the first
 * block that fails (`buf` is wiped: nothing unauthenticated is handed out),
 * or -errno. Holes read as zeros when the sparse flag is set. */
ssize_t ovc_file_pread(ovc_file *f, ovc_cipher *c, void *buf, size_t len,
		       uint64_t off, ovc_err *e);

/* Write `len` bytes at `off` (read-modify-write of partial blocks; beyond
 * the end leaves a hole, setting the sparse flag first). Returns `len` or
 * -errno: -EFBIG past OVC_MAX_PLAIN_SIZE, -EBADMSG when a block that must
 * be read back does not authenticate. */
ssize_t ovc_file_pwrite(ovc_file *f, ovc_cipher *c, const void *buf,
			size_t len, uint64_t off, ovc_err *e);

/* Set the plaintext size. Growing leaves holes (sparse flag first) and
 * writes only the new final block; shrinking reseals the new final block.
 * Truncation to zero starts a fresh header (new file id and file key) under
 * `fresh`, the governing rule's current key; without one it gives -EACCES.
 * Errors: -EFBIG, -EBADMSG, -errno. */
int ovc_file_truncate(ovc_file *f, ovc_cipher *c, uint64_t size,
		      const ovc_key *fresh, ovc_err *e);

/* Rewrap the file key under the asset key `to` (a rename into a place
 * governed by another rule): the header gets `to`'s key id and the file key
 * wrapped under it; file id, file key and blocks stay, so hard links and
 * open descriptors keep working. The header is rewritten in place with one
 * pwrite, fsynced before and after: a crash leaves the old header or the new
 * one, each readable by a holder of its key. Same key id: nothing to do.
 * Errors: -errno (e says which step). */
int ovc_file_rewrap(ovc_file *f, const ovc_key *to, ovc_err *e);

/* Authenticate every block. Returns 0, or -EBADMSG with *bad (may be NULL)
 * the first block that fails; -errno on I/O errors. */
int ovc_file_verify(ovc_file *f, ovc_cipher *c, uint64_t *bad, ovc_err *e);

/* Repair a torn tail (docs/file-format.md, "Writers"): keep the longest
 * prefix of blocks that authenticate, make its last block the final one
 * (resealed with the last flag when it lacks it; an empty final block when
 * no block authenticates) and cut the rest. The header must authenticate
 * (`lookup` gives its key). When a block fails but a later one
 * authenticates, the damage is not a torn tail: without `force` nothing is
 * changed and -ENOTRECOVERABLE names the block. `dry_run` only reports.
 * The resealed block is written and fsynced before the cut. */
typedef struct ovc_repair_report {
	uint64_t slots;        /* slots found (a partial one counted) */
	uint64_t kept;         /* blocks kept */
	uint64_t first_bad;    /* the first block that failed (== kept) */
	uint64_t good_after;   /* blocks after it that still authenticate */
	uint64_t size_after;   /* plaintext size after the repair */
	int intact;            /* nothing to repair */
	int resealed;          /* the new final block was resealed as last */
} ovc_repair_report;

int ovc_file_repair(int fd, ovc_key_lookup lookup, void *ctx, ovc_cipher *c,
		    int force, int dry_run, ovc_repair_report *r, ovc_err *e);

/* fdatasync() the backing file. */
int ovc_file_sync(ovc_file *f);

#endif
