/* blockfile.c - plaintext reads and writes over an encrypted backing file;
 * see blockfile.h and docs/file-format.md. */
#define _GNU_SOURCE
#include "crypto/blockfile.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ovc_file {
	int fd;                 /* borrowed backing descriptor */
	uint64_t size;          /* plaintext size */
	ovc_header hdr;         /* as on disk */
	ovc_header sparse_hdr;  /* hdr with the sparse flag, wrapped at open */
	int have_sparse_hdr;
	uint8_t fkey[OVC_KEY_BYTES]; /* the file key; the struct is secret memory */
};

#define BS ((uint64_t)OVC_BLOCK_SIZE)

static uint64_t final_index(uint64_t size)
{
	return ovc_layout_nslots(size) - 1;
}

/* Plaintext length of block j in a file of `size` bytes (j ≤ final). */
static size_t block_len(uint64_t size, uint64_t j)
{
	uint64_t start = j * BS;
	return size - start >= BS ? (size_t)BS : (size_t)(size - start);
}

static int is_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static int auth_fail(ovc_err *e, uint64_t j)
{
	return ovc_err_set(e, -EBADMSG, "block %llu failed authentication",
			   (unsigned long long)j);
}

/* Open sealed slot `j` of a file of `size` bytes into `out`. A non-final
 * block may carry the last flag (an interrupted append); an all-zero
 * non-final slot is a hole when the sparse flag is set. Returns the
 * plaintext length or -EBADMSG. */
static int slot_decode(ovc_file *f, ovc_cipher *c, uint64_t size, uint64_t j,
		       const uint8_t *slot, size_t slot_len, uint8_t *out,
		       ovc_err *e)
{
	uint64_t fin = final_index(size);
	int n;

	n = ovc_block_open(c, f->fkey, f->hdr.file_id, j, j == fin, slot,
			   slot_len, out);
	if (n >= 0 || j == fin)
		return n >= 0 ? n : auth_fail(e, j);
	n = ovc_block_open(c, f->fkey, f->hdr.file_id, j, 1, slot, slot_len, out);
	if (n >= 0)
		return n;
	if ((f->hdr.flags & OVC_FLAG_SPARSE) && slot_len == OVC_SLOT_SIZE &&
	    is_zero(slot, slot_len)) {
		memset(out, 0, OVC_BLOCK_SIZE);
		return OVC_BLOCK_SIZE;
	}
	return auth_fail(e, j);
}

/* Read slots j0..j1 (at most OVC_CIPHER_BATCH) into `dst`. */
static int slots_read(ovc_file *f, uint8_t *dst, uint64_t size, uint64_t j0,
		      uint64_t j1, ovc_err *e)
{
	uint64_t from = ovc_layout_slot_off(j0);
	uint64_t to = ovc_layout_slot_off(j1) + block_len(size, j1) +
		      OVC_BLOCK_OVERHEAD;
	int rc = ovc_pread_full(f->fd, dst, (size_t)(to - from), (off_t)from);

	if (rc == -EIO)
		return ovc_err_set(e, -EBADMSG, "block %llu is cut short (the file changed behind our back?)",
				   (unsigned long long)j1);
	if (rc)
		return ovc_err_set(e, rc, "reading blocks %llu-%llu: %s",
				   (unsigned long long)j0, (unsigned long long)j1,
				   strerror(-rc));
	return 0;
}

/* Decrypt block j (≤ final) into `out` (BS bytes): one slot read into the
 * spare slot behind the batch area, so a batch being built survives. */
static int block_read(ovc_file *f, ovc_cipher *c, uint64_t j, uint8_t *out,
		      ovc_err *e)
{
	uint8_t *spare = ovc_cipher_slots(c) + (size_t)OVC_CIPHER_BATCH * OVC_SLOT_SIZE;
	size_t blen = block_len(f->size, j);
	int rc = slots_read(f, spare, f->size, j, j, e);

	if (rc)
		return rc;
	return slot_decode(f, c, f->size, j, spare, blen + OVC_BLOCK_OVERHEAD,
			   out, e);
}

static int header_write(ovc_file *f, const ovc_header *h)
{
	uint8_t buf[OVC_HEADER_SIZE];

	ovc_header_encode(h, buf);
	return ovc_pwrite_full(f->fd, buf, sizeof(buf), 0);
}

/* Prepare the sparse-flagged header while the asset key is at hand. */
static void sparse_prepare(ovc_file *f, const uint8_t *asset_key)
{
	f->have_sparse_hdr = 0;
	if (f->hdr.flags & OVC_FLAG_SPARSE)
		return;
	f->sparse_hdr = f->hdr;
	f->sparse_hdr.flags |= OVC_FLAG_SPARSE;
	ovc_header_wrap(&f->sparse_hdr, asset_key, f->fkey);
	f->have_sparse_hdr = 1;
}

/* Replace the header in place by `h` (same file id and file key): one
 * pwrite at offset 0, fsynced before and after, so that a crash leaves the
 * old header or the new one (docs/file-format.md: sector-atomic writes). */
static int header_update(ovc_file *f, const ovc_header *h, ovc_err *e)
{
	int rc;

	if (fsync(f->fd) < 0)
		return ovc_err_set(e, -errno, "fsync before the header update: %s", strerror(errno));
	rc = header_write(f, h);
	if (rc)
		return ovc_err_set(e, rc, "writing the header: %s", strerror(-rc));
	if (fsync(f->fd) < 0)
		return ovc_err_set(e, -errno, "fsync after the header update: %s", strerror(errno));
	f->hdr = *h;
	return 0;
}

/* Put the sparse flag on disk before the first hole. */
static int sparse_set(ovc_file *f, ovc_err *e)
{
	int rc;

	if (f->hdr.flags & OVC_FLAG_SPARSE)
		return 0;
	if (!f->have_sparse_hdr)
		return ovc_err_set(e, -EIO, "no sparse header prepared");
	rc = header_update(f, &f->sparse_hdr, e);
	if (rc == 0)
		f->have_sparse_hdr = 0;
	return rc;
}

int ovc_file_rewrap(ovc_file *f, const ovc_key *to, ovc_err *e)
{
	ovc_header h = f->hdr;
	int rc;

	if (memcmp(h.key_id, to->id, OVC_KEY_ID_BYTES) == 0)
		return 0;
	memcpy(h.key_id, to->id, OVC_KEY_ID_BYTES);
	ovc_header_wrap(&h, to->key, f->fkey);
	rc = header_update(f, &h, e);
	if (rc == 0)
		sparse_prepare(f, to->key); /* later holes: under the new key */
	sodium_memzero(&h, sizeof(h));
	return rc;
}

/* Freed ovc_file structs, wiped, kept for reuse: a sodium_malloc costs
 * about ten system calls (mmap, mlock, guard pages), which opening many
 * small files would pay each time. Guarded by pool_mu. */
#define POOL_MAX 64
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static ovc_file *pool[POOL_MAX];
static size_t pool_n;

static ovc_file *file_alloc(int fd)
{
	ovc_file *f = NULL;

	pthread_mutex_lock(&pool_mu);
	if (pool_n > 0)
		f = pool[--pool_n];
	pthread_mutex_unlock(&pool_mu);
	if (!f)
		f = ovc_secret_alloc(sizeof(*f));
	if (f)
		f->fd = fd;
	return f;
}

void ovc_file_close(ovc_file *f)
{
	if (!f)
		return;
	sodium_memzero(f, sizeof(*f));
	pthread_mutex_lock(&pool_mu);
	if (pool_n < POOL_MAX) {
		pool[pool_n++] = f;
		f = NULL;
	}
	pthread_mutex_unlock(&pool_mu);
	ovc_secret_free(f);
}

void ovc_file_set_fd(ovc_file *f, int fd)
{
	f->fd = fd;
}

uint64_t ovc_file_size(const ovc_file *f)
{
	return f->size;
}

const ovc_header *ovc_file_header(const ovc_file *f)
{
	return &f->hdr;
}

int ovc_file_sync(ovc_file *f)
{
	return fdatasync(f->fd) < 0 ? -errno : 0;
}

/* Write a fresh header and the sealed empty final block at offset 0. */
static int fresh_start(ovc_file *f, ovc_cipher *c, const ovc_key *key,
		       ovc_err *e)
{
	uint8_t buf[OVC_HEADER_SIZE + OVC_BLOCK_OVERHEAD];
	int rc;

	ovc_header_new(&f->hdr, 0, key, f->fkey);
	ovc_header_encode(&f->hdr, buf);
	rc = ovc_block_seal(c, f->fkey, f->hdr.file_id, 0, 1, NULL, 0,
			    buf + OVC_HEADER_SIZE);
	if (rc)
		return ovc_err_set(e, rc, "sealing the empty block failed");
	rc = ovc_pwrite_full(f->fd, buf, sizeof(buf), 0);
	if (rc)
		return ovc_err_set(e, rc, "writing the header: %s", strerror(-rc));
	f->size = 0;
	sparse_prepare(f, key->key);
	return 0;
}

int ovc_file_create(int fd, const ovc_key *asset_key, ovc_cipher *c, int sync,
		    ovc_file **out, ovc_err *e)
{
	struct stat st;
	ovc_file *f;
	int rc;

	*out = NULL;
	if (fstat(fd, &st) < 0)
		return ovc_err_set(e, -errno, "stat: %s", strerror(errno));
	if (st.st_size != 0)
		return ovc_err_set(e, -ENOTEMPTY, "the backing file is not empty");
	f = file_alloc(fd);
	if (!f)
		return ovc_err_set(e, -ENOMEM, "out of secure memory");
	rc = fresh_start(f, c, asset_key, e);
	if (!rc && sync && fsync(fd) < 0)
		rc = ovc_err_set(e, -errno, "fsync: %s", strerror(errno));
	if (rc) {
		ovc_file_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

int ovc_file_reload(ovc_file *f, ovc_err *e)
{
	struct stat st;
	uint64_t plain, nslots;
	int rc;

	if (fstat(f->fd, &st) < 0)
		return ovc_err_set(e, -errno, "stat: %s", strerror(errno));
	rc = ovc_layout_plain_size((uint64_t)st.st_size, &plain, &nslots, e);
	if (rc)
		return rc;
	f->size = plain;
	return 0;
}

/* Read and unwrap the header of `f` (its fd set); *key gets the asset key. */
static int header_load(ovc_file *f, ovc_key_lookup lookup, void *ctx,
		       const ovc_key **keyp, ovc_err *e)
{
	uint8_t buf[OVC_HEADER_SIZE];
	const ovc_key *key;
	ssize_t n;
	int rc;

	n = pread(f->fd, buf, sizeof(buf), 0);
	if (n < 0)
		return ovc_err_set(e, -errno, "reading the header: %s", strerror(errno));
	rc = ovc_header_decode(buf, (size_t)n, &f->hdr, e);
	if (rc)
		return rc;
	key = lookup ? lookup(ctx, f->hdr.key_id) : NULL;
	if (!key) {
		char id[OVC_KEY_ID_STRLEN + 1];
		ovc_key_id_format(f->hdr.key_id, id);
		return ovc_err_set(e, -EACCES, "encrypted with key %s, which is not held", id);
	}
	rc = ovc_header_unwrap(&f->hdr, key->key, f->fkey);
	if (rc)
		return ovc_err_set(e, rc, "header failed authentication");
	*keyp = key;
	return 0;
}

/* A new ovc_file on `fd` with its header read and unwrapped; *keyp the
 * asset key. */
static int file_load(int fd, ovc_key_lookup lookup, void *ctx, ovc_file **out,
		     const ovc_key **keyp, ovc_err *e)
{
	ovc_file *f = file_alloc(fd);
	int rc;

	*out = NULL;
	if (!f)
		return ovc_err_set(e, -ENOMEM, "out of secure memory");
	rc = header_load(f, lookup, ctx, keyp, e);
	if (rc) {
		ovc_file_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

int ovc_file_open(int fd, ovc_key_lookup lookup, void *ctx, ovc_file **out,
		  ovc_err *e)
{
	const ovc_key *key = NULL;
	ovc_file *f;
	int rc;

	*out = NULL;
	rc = file_load(fd, lookup, ctx, &f, &key, e);
	if (rc)
		return rc;
	rc = ovc_file_reload(f, e);
	if (rc)
		goto out;
	sparse_prepare(f, key->key);
	*out = f;
	f = NULL;
out:
	ovc_file_close(f);
	return rc;
}

/* Does slot j (n bytes in `slot`) authenticate? 2: as a last block, 1: as
 * a non-last block (or a hole under the sparse flag), 0: no. `out` gets
 * its plaintext, *len its length. */
static int slot_check(ovc_file *f, ovc_cipher *c, uint64_t j, const uint8_t *slot,
		      size_t n, uint8_t *out, size_t *len)
{
	int k;

	if (n < OVC_BLOCK_OVERHEAD)
		return 0;
	k = ovc_block_open(c, f->fkey, f->hdr.file_id, j, 0, slot, n, out);
	if (k >= 0) {
		*len = (size_t)k;
		return 1;
	}
	k = ovc_block_open(c, f->fkey, f->hdr.file_id, j, 1, slot, n, out);
	if (k >= 0) {
		*len = (size_t)k;
		return 2;
	}
	if ((f->hdr.flags & OVC_FLAG_SPARSE) && n == OVC_SLOT_SIZE && is_zero(slot, n)) {
		memset(out, 0, OVC_BLOCK_SIZE);
		*len = OVC_BLOCK_SIZE;
		return 1;
	}
	return 0;
}

int ovc_file_repair(int fd, ovc_key_lookup lookup, void *ctx, ovc_cipher *c,
		    int force, int dry_run, ovc_repair_report *r, ovc_err *e)
{
	uint8_t *slot = ovc_cipher_slots(c), *pt = ovc_cipher_block(c, 0);
	uint8_t *tmp = ovc_cipher_block(c, 1);
	const ovc_key *key = NULL;
	struct stat st;
	ovc_file *f;
	uint64_t B, j, last_len = 0;
	int rc, last_kind = 0, bad = 0;

	memset(r, 0, sizeof(*r));
	rc = file_load(fd, lookup, ctx, &f, &key, e);
	if (rc)
		return rc;
	if (fstat(fd, &st) < 0) {
		rc = ovc_err_set(e, -errno, "stat: %s", strerror(errno));
		goto out;
	}
	B = (uint64_t)st.st_size;
	r->slots = B > OVC_HEADER_SIZE ? (B - OVC_HEADER_SIZE + OVC_SLOT_SIZE - 1) / OVC_SLOT_SIZE : 0;
	for (j = 0; j < r->slots; j++) {
		uint64_t off = ovc_layout_slot_off(j);
		size_t n = (size_t)(B - off < OVC_SLOT_SIZE ? B - off : OVC_SLOT_SIZE), len = 0;
		int kind;

		rc = ovc_pread_full(fd, slot, n, (off_t)off);
		if (rc) {
			ovc_err_set(e, rc, "reading block %llu: %s", (unsigned long long)j,
				    strerror(-rc));
			goto out;
		}
		kind = slot_check(f, c, j, slot, n, tmp, &len);
		if (!bad && kind) {
			memcpy(pt, tmp, len); /* the last good block's plaintext */
			r->kept = j + 1;
			last_kind = kind;
			last_len = len;
			/* a short block ends the file whatever its flag */
			if (len < OVC_BLOCK_SIZE) {
				j++;
				break;
			}
		} else if (!bad) {
			bad = 1;
			r->first_bad = j;
		} else if (kind) {
			r->good_after++;
		}
	}
	if (!bad && j < r->slots) {
		/* slots after a short block: a torn tail too */
		bad = 1;
		r->first_bad = j;
	}
	if (!bad && r->kept == r->slots && r->kept > 0 && last_kind == 2 &&
	    ovc_layout_plain_size(B, &r->size_after, &j, NULL) == 0) {
		r->intact = 1;
		rc = 0;
		goto out;
	}
	if (!bad)
		r->first_bad = r->kept;
	if (r->good_after && !force) {
		rc = ovc_err_set(e, -ENOTRECOVERABLE,
				 "block %llu fails but %llu later blocks authenticate: not a torn tail (nothing changed)",
				 (unsigned long long)r->first_bad,
				 (unsigned long long)r->good_after);
		goto out;
	}
	r->size_after = r->kept ? (r->kept - 1) * (uint64_t)OVC_BLOCK_SIZE + last_len : 0;
	r->resealed = r->kept == 0 || last_kind != 2;
	if (dry_run) {
		rc = 0;
		goto out;
	}
	if (r->resealed) {
		uint64_t fin = r->kept ? r->kept - 1 : 0;

		if (r->kept == 0)
			last_len = 0; /* an empty file: one sealed empty block */
		rc = ovc_block_seal(c, f->fkey, f->hdr.file_id, fin, 1, pt, last_len, slot);
		if (!rc)
			rc = ovc_pwrite_full(fd, slot, last_len + OVC_BLOCK_OVERHEAD,
					     (off_t)ovc_layout_slot_off(fin));
		if (!rc && fsync(fd) < 0)
			rc = -errno;
		if (rc) {
			ovc_err_set(e, rc, "writing the new final block: %s", strerror(-rc));
			goto out;
		}
	}
	{
		uint64_t end = ovc_layout_slot_off(r->kept ? r->kept - 1 : 0) +
			       (r->kept ? last_len : 0) + OVC_BLOCK_OVERHEAD;

		if (ftruncate(fd, (off_t)end) < 0 || fsync(fd) < 0) {
			rc = ovc_err_set(e, -errno, "cutting the file: %s", strerror(errno));
			goto out;
		}
	}
	rc = 0;
out:
	sodium_memzero(pt, OVC_BLOCK_SIZE);
	sodium_memzero(tmp, OVC_BLOCK_SIZE);
	ovc_file_close(f);
	return rc;
}

ssize_t ovc_file_pread(ovc_file *f, ovc_cipher *c, void *buf, size_t len,
		       uint64_t off, ovc_err *e)
{
	uint8_t *dst = buf, *tmp = ovc_cipher_block(c, 0);
	uint64_t pos, end, size = f->size;
	int rc = 0;

	if (off >= size || len == 0)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	end = off + len;
	for (pos = off; pos < end && !rc;) {
		uint64_t j0 = pos / BS, j1 = (end - 1) / BS;
		const uint8_t *slot = ovc_cipher_slots(c);

		if (j1 - j0 >= OVC_CIPHER_BATCH)
			j1 = j0 + OVC_CIPHER_BATCH - 1;
		rc = slots_read(f, ovc_cipher_slots(c), size, j0, j1, e);
		for (uint64_t j = j0; j <= j1 && !rc; j++) {
			uint64_t bstart = j * BS;
			size_t blen = block_len(size, j);
			size_t from = (size_t)(pos - bstart);
			size_t to = end - bstart < blen ? (size_t)(end - bstart) : blen;
			int whole = from == 0 && to == blen;
			int n = slot_decode(f, c, size, j, slot, blen + OVC_BLOCK_OVERHEAD,
					    whole ? dst + (bstart - off) : tmp, e);

			if (n < 0) {
				rc = n;
				break;
			}
			if (!whole)
				memcpy(dst + (pos - off), tmp + from, to - from);
			pos = bstart + to;
			slot += OVC_SLOT_SIZE;
		}
	}
	sodium_memzero(tmp, OVC_BLOCK_SIZE);
	if (rc) {
		sodium_memzero(buf, len);
		return rc;
	}
	return (ssize_t)len;
}

/* Seal blocks into the cipher's slot buffer and write them out in runs. */
struct batch {
	uint64_t first;  /* block number of the first slot held */
	size_t bytes;    /* bytes held */
	unsigned count;  /* slots held */
};

static int batch_flush(ovc_file *f, ovc_cipher *c, struct batch *b,
		       ovc_err *e)
{
	int rc;

	if (!b->count)
		return 0;
	rc = ovc_pwrite_full(f->fd, ovc_cipher_slots(c), b->bytes,
			     (off_t)ovc_layout_slot_off(b->first));
	b->count = 0;
	b->bytes = 0;
	if (rc)
		return ovc_err_set(e, rc, "writing block %llu: %s",
				   (unsigned long long)b->first, strerror(-rc));
	return 0;
}

static int batch_add(ovc_file *f, ovc_cipher *c, struct batch *b, uint64_t j,
		     int last, const uint8_t *pt, size_t len, ovc_err *e)
{
	int rc;

	if (b->count && (b->count == OVC_CIPHER_BATCH || b->first + b->count != j)) {
		rc = batch_flush(f, c, b, e);
		if (rc)
			return rc;
	}
	if (!b->count)
		b->first = j;
	rc = ovc_block_seal(c, f->fkey, f->hdr.file_id, j, last, pt, len,
			    ovc_cipher_slots(c) + b->bytes);
	if (rc)
		return ovc_err_set(e, rc, "sealing block %llu failed", (unsigned long long)j);
	b->bytes += len + OVC_BLOCK_OVERHEAD;
	b->count++;
	return 0;
}

/* Seal one block and write it at once. */
static int block_write(ovc_file *f, ovc_cipher *c, uint64_t j, int last,
		       const uint8_t *pt, size_t len, ovc_err *e)
{
	struct batch b = { 0, 0, 0 };
	int rc = batch_add(f, c, &b, j, last, pt, len, e);

	return rc ? rc : batch_flush(f, c, &b, e);
}

/* Old plaintext of block j (≤ the old final block) into `out`, zero-padded
 * to `want` bytes. */
static int block_old(ovc_file *f, ovc_cipher *c, uint64_t j, uint8_t *out,
		     size_t want, ovc_err *e)
{
	int n = block_read(f, c, j, out, e);

	if (n < 0)
		return n;
	if ((size_t)n < want)
		memset(out + n, 0, want - (size_t)n);
	return 0;
}

/* A growing write failed part-way (EFBIG from the backing file system,
 * ENOSPC, EIO): bring the backing file back to the old size, so the file
 * stays readable and its size unchanged. Block F (the old final one) is on
 * disk either as it was, or rewritten full (flagged last, with the old
 * content or new bytes within the old length); blocks after it may have
 * been written. Its first old-length bytes are resealed as the final block
 * when needed, and the rest is cut. Best effort: the write's own error is
 * what the caller reports; a failure here is added to the message. */
static void settle(ovc_file *f, ovc_cipher *c, ovc_err *e)
{
	uint64_t F = final_index(f->size), off = ovc_layout_slot_off(F);
	size_t L = block_len(f->size, F);
	uint8_t *slot = ovc_cipher_slots(c), *pt = ovc_cipher_block(c, 0);
	struct stat st;
	size_t n;
	int k, rc;

	if (fstat(f->fd, &st) < 0 || (uint64_t)st.st_size < off + OVC_BLOCK_OVERHEAD)
		goto fail;
	n = (uint64_t)st.st_size - off < OVC_SLOT_SIZE ? (size_t)((uint64_t)st.st_size - off)
						      : OVC_SLOT_SIZE;
	if (ovc_pread_full(f->fd, slot, n, (off_t)off))
		goto fail;
	k = ovc_block_open(c, f->fkey, f->hdr.file_id, F, 1, slot, L + OVC_BLOCK_OVERHEAD, pt);
	if (k < 0) {
		/* rewritten full: take its first L bytes as the final block */
		k = ovc_block_open(c, f->fkey, f->hdr.file_id, F, 1, slot, n, pt);
		if (k < 0)
			k = ovc_block_open(c, f->fkey, f->hdr.file_id, F, 0, slot, n, pt);
		if (k < (int)L)
			goto fail;
		rc = ovc_block_seal(c, f->fkey, f->hdr.file_id, F, 1, pt, L, slot);
		if (rc || ovc_pwrite_full(f->fd, slot, L + OVC_BLOCK_OVERHEAD, (off_t)off))
			goto fail;
	}
	if (ftruncate(f->fd, (off_t)ovc_layout_backing_size(f->size)) < 0)
		goto fail;
	sodium_memzero(pt, OVC_BLOCK_SIZE);
	return;
fail:
	sodium_memzero(pt, OVC_BLOCK_SIZE);
	if (e && strlen(e->msg) + 60 < sizeof(e->msg))
		strcat(e->msg, "; the file could not be brought back to its old size");
}

/* Write `len` bytes of `data` (NULL: none) at `off`, making the file
 * `new_size` (≥ the old size) long; see the crash rules in blockfile.h.
 * With len == 0 only the new final block is written (truncate up). */
static int store(ovc_file *f, ovc_cipher *c, const uint8_t *data, size_t len,
		 uint64_t off, uint64_t new_size, ovc_err *e)
{
	uint64_t old = f->size, F = final_index(old), Fn = final_index(new_size);
	uint64_t b0 = len ? off / BS : Fn, b1 = len ? (off + len - 1) / BS : Fn;
	uint64_t end = off + len;
	uint8_t *fpt = ovc_cipher_block(c, 1), *tmp = ovc_cipher_block(c, 0);
	int grow = Fn > F, rc = 0;
	struct batch b = { 0, 0, 0 };

	if (grow && b0 > F + 1) {
		rc = sparse_set(f, e);
		if (rc)
			return rc;
	}
	if (grow && F < b0) {
		/* The old final block becomes a full inner block: rewrite it
		 * first when it is short, still flagged last. */
		rc = block_old(f, c, F, fpt, OVC_BLOCK_SIZE, e);
		if (!rc && block_len(old, F) < BS)
			rc = block_write(f, c, F, 1, fpt, OVC_BLOCK_SIZE, e);
	}
	for (uint64_t j = b0; j <= b1 && !rc; j++) {
		uint64_t bstart = j * BS;
		size_t blen = block_len(new_size, j);
		size_t from = len && j == b0 ? (size_t)(off - bstart) : 0;
		size_t to = len && j == b1 ? (size_t)(end - bstart) : (len ? blen : 0);
		int last = j == Fn || (grow && j == F);
		const uint8_t *pt;

		if (data && from == 0 && to == blen) {
			pt = data + (bstart - off);
		} else {
			if (j <= F)
				rc = block_old(f, c, j, tmp, blen, e);
			else
				memset(tmp, 0, blen);
			if (rc)
				break;
			if (data)
				memcpy(tmp + from, data + (bstart + from - off), to - from);
			pt = tmp;
		}
		if (grow && j == F && pt != fpt)
			memcpy(fpt, pt, OVC_BLOCK_SIZE);
		rc = batch_add(f, c, &b, j, last, pt, blen, e);
	}
	if (!rc)
		rc = batch_flush(f, c, &b, e);
	if (!rc && grow) /* the old final block is inner now: not last */
		rc = block_write(f, c, F, 0, fpt, OVC_BLOCK_SIZE, e);
	if (!rc)
		f->size = new_size;
	else if (grow)
		settle(f, c, e);
	sodium_memzero(tmp, OVC_BLOCK_SIZE);
	sodium_memzero(fpt, OVC_BLOCK_SIZE);
	return rc;
}

ssize_t ovc_file_pwrite(ovc_file *f, ovc_cipher *c, const void *buf,
			size_t len, uint64_t off, ovc_err *e)
{
	uint64_t end;
	int rc;

	if (len == 0)
		return 0;
	if (off > OVC_MAX_PLAIN_SIZE || len > OVC_MAX_PLAIN_SIZE - off)
		return ovc_err_set(e, -EFBIG, "write beyond the largest file size");
	end = off + len;
	rc = store(f, c, buf, len, off, end > f->size ? end : f->size, e);
	return rc ? rc : (ssize_t)len;
}

/* Shrink to `size` > 0: reseal the new final block, then cut. */
static int shrink(ovc_file *f, ovc_cipher *c, uint64_t size, ovc_err *e)
{
	uint64_t Fn = final_index(size);
	size_t blen = block_len(size, Fn);
	uint8_t *tmp = ovc_cipher_block(c, 0);
	int rc = block_old(f, c, Fn, tmp, blen, e);

	if (!rc)
		rc = block_write(f, c, Fn, 1, tmp, blen, e);
	sodium_memzero(tmp, OVC_BLOCK_SIZE);
	if (rc)
		return rc;
	if (ftruncate(f->fd, (off_t)ovc_layout_backing_size(size)) < 0)
		return ovc_err_set(e, -errno, "cutting the backing file: %s", strerror(errno));
	f->size = size;
	return 0;
}

int ovc_file_truncate(ovc_file *f, ovc_cipher *c, uint64_t size,
		      const ovc_key *fresh, ovc_err *e)
{
	if (size > OVC_MAX_PLAIN_SIZE)
		return ovc_err_set(e, -EFBIG, "size beyond the largest file size");
	if (size == f->size && size != 0)
		return 0;
	if (size > f->size)
		return store(f, c, NULL, 0, size, size, e);
	if (size > 0)
		return shrink(f, c, size, e);
	/* To zero: a fresh header (new file id and key). A crash between the
	 * cut and the write leaves an empty (0-byte) file. */
	if (!fresh)
		return ovc_err_set(e, -EACCES, "truncation to zero needs the current key");
	if (ftruncate(f->fd, 0) < 0)
		return ovc_err_set(e, -errno, "cutting the backing file: %s", strerror(errno));
	return fresh_start(f, c, fresh, e);
}

int ovc_file_verify(ovc_file *f, ovc_cipher *c, uint64_t *bad, ovc_err *e)
{
	uint64_t size = f->size, fin = final_index(size);
	uint8_t *tmp = ovc_cipher_block(c, 0);
	int rc = 0;

	if (bad)
		*bad = UINT64_MAX;
	for (uint64_t j0 = 0; j0 <= fin && !rc; j0 += OVC_CIPHER_BATCH) {
		uint64_t j1 = fin - j0 >= OVC_CIPHER_BATCH ? j0 + OVC_CIPHER_BATCH - 1 : fin;
		const uint8_t *slot = ovc_cipher_slots(c);

		rc = slots_read(f, ovc_cipher_slots(c), size, j0, j1, e);
		if (rc == -EBADMSG && bad)
			*bad = j1;
		for (uint64_t j = j0; j <= j1 && !rc; j++) {
			int n = slot_decode(f, c, size, j, slot,
					    block_len(size, j) + OVC_BLOCK_OVERHEAD, tmp, e);
			if (n < 0) {
				rc = n;
				if (bad)
					*bad = j;
			}
			slot += OVC_SLOT_SIZE;
		}
	}
	sodium_memzero(tmp, OVC_BLOCK_SIZE);
	return rc;
}
