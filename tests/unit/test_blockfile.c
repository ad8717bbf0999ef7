/* Unit tests of crypto/blockfile: round trips, holes, truncation, tamper
 * tests (every one must give an authentication error naming the block or
 * the header, never wrong plaintext), crash traces, nonce freshness, and a
 * randomized model test against an in-memory twin. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/common.h"
#include "crypto/blockfile.h"

static ovc_key g_key, g_other;
static ovc_cipher *g_c;

static const ovc_key *lookup(void *ctx, const uint8_t id[OVC_KEY_ID_BYTES])
{
	(void)ctx;
	if (memcmp(id, g_key.id, 16) == 0)
		return &g_key;
	if (memcmp(id, g_other.id, 16) == 0)
		return &g_other;
	return NULL;
}

static int mkfd(void)
{
	int fd = memfd_create("ovc-test", MFD_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static off_t fdsize(int fd)
{
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	return st.st_size;
}

/* A new encrypted file holding `len` bytes of `data`; returns the fd. */
static int make_file(const uint8_t *data, size_t len, const ovc_key *k)
{
	ovc_file *f;
	int fd = mkfd();

	assert_int_equal(ovc_file_create(fd, k, g_c, 0, &f, NULL), 0);
	if (len)
		assert_int_equal(ovc_file_pwrite(f, g_c, data, len, 0, NULL), (ssize_t)len);
	assert_int_equal(ovc_file_size(f), len);
	ovc_file_close(f);
	assert_int_equal(fdsize(fd), (off_t)ovc_layout_backing_size(len));
	return fd;
}

/* Open and read the whole file: 0 and the content in `out`, or the error
 * with its message in `e`. */
static int read_all(int fd, uint8_t *out, size_t cap, size_t *len, ovc_err *e)
{
	ovc_file *f;
	ssize_t n;
	int rc = ovc_file_open(fd, lookup, NULL, &f, e);

	if (rc)
		return rc;
	n = ovc_file_pread(f, g_c, out, cap, 0, e);
	ovc_file_close(f);
	if (n < 0)
		return (int)n;
	*len = (size_t)n;
	return 0;
}

static void expect_bad_block(int fd, long block)
{
	static uint8_t out[1 << 16];
	char want[64];
	size_t len;
	ovc_err e;

	ovc_err_clear(&e);
	assert_int_equal(read_all(fd, out, sizeof(out), &len, &e), -EBADMSG);
	if (block >= 0) {
		snprintf(want, sizeof(want), "block %ld ", block);
		if (!strstr(e.msg, want))
			fail_msg("want '%s' in '%s'", want, e.msg);
	}
	for (size_t i = 0; i < sizeof(out); i++)
		if (out[i])
			fail_msg("plaintext left in the buffer after a failure");
}

static void flip(int fd, off_t off, uint8_t mask)
{
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= mask;
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
}

static void test_round_trip(void **state)
{
	static const size_t sizes[] = { 0, 1, 4095, 4096, 4097, 8192, 100000, 300001 };
	uint8_t *data = malloc(300001), *out = malloc(300001);
	(void)state;

	randombytes_buf(data, 300001);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t len = 0;
		int fd = make_file(data, sizes[i], &g_key);
		assert_int_equal(read_all(fd, out, 300001, &len, NULL), 0);
		assert_int_equal(len, sizes[i]);
		assert_memory_equal(out, data, len);
		close(fd);
	}
	free(data);
	free(out);
}

static void test_missing_key(void **state)
{
	ovc_key k;
	ovc_file *f;
	ovc_err e;
	int fd;
	(void)state;

	randombytes_buf(&k, sizeof(k));
	fd = make_file((const uint8_t *)"x", 1, &k);
	assert_int_equal(ovc_file_open(fd, lookup, NULL, &f, &e), -EACCES);
	assert_non_null(strstr(e.msg, "not held"));
	close(fd);
}

/* Every header byte flipped: refused as a header error, never read. */
static void test_tamper_header(void **state)
{
	uint8_t data[9000];
	ovc_file *f;
	int fd;
	(void)state;

	randombytes_buf(data, sizeof(data));
	fd = make_file(data, sizeof(data), &g_key);
	for (off_t i = 0; i < OVC_HEADER_SIZE; i++) {
		int rc;
		flip(fd, i, 0x01);
		rc = ovc_file_open(fd, lookup, NULL, &f, NULL);
		/* magic: -EINVAL; version/reserved/unknown flag: -EPROTO; key id:
		 * -EACCES (no such key); the rest: -EBADMSG. */
		assert_true(rc == -EINVAL || rc == -EPROTO || rc == -EACCES || rc == -EBADMSG);
		flip(fd, i, 0x01);
	}
	assert_int_equal(ovc_file_open(fd, lookup, NULL, &f, NULL), 0);
	ovc_file_close(f);
	close(fd);
}

static void test_tamper_blocks(void **state)
{
	uint8_t data[3 * 4096 + 100];
	int fd;
	(void)state;

	randombytes_buf(data, sizeof(data));
	fd = make_file(data, sizeof(data), &g_key);
	/* nonce, ciphertext (first, middle, last byte), tag, of every block */
	for (long b = 0; b < 4; b++) {
		off_t s = (off_t)ovc_layout_slot_off((uint64_t)b);
		off_t len = b < 3 ? 4124 : 128;
		off_t at[] = { s, s + 11, s + 12, s + len / 2, s + len - 17, s + len - 16, s + len - 1 };
		for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
			flip(fd, at[i], 0x80);
			expect_bad_block(fd, b);
			flip(fd, at[i], 0x80);
		}
	}
	close(fd);
}

static void copy_range(int from, off_t src, int to, off_t dst, size_t len)
{
	uint8_t buf[4124];
	assert_true(len <= sizeof(buf));
	assert_int_equal(pread(from, buf, len, src), (ssize_t)len);
	assert_int_equal(pwrite(to, buf, len, dst), (ssize_t)len);
}

static void test_swaps(void **state)
{
	uint8_t data[3 * 4096];
	int fd, fd2;
	(void)state;

	randombytes_buf(data, sizeof(data));
	fd = make_file(data, sizeof(data), &g_key);
	fd2 = make_file(data, sizeof(data), &g_key);
	/* two blocks swapped within a file */
	copy_range(fd, (off_t)ovc_layout_slot_off(1), fd2, (off_t)ovc_layout_slot_off(0), 4124);
	copy_range(fd, (off_t)ovc_layout_slot_off(0), fd2, (off_t)ovc_layout_slot_off(1), 4124);
	expect_bad_block(fd2, 0);
	close(fd2);
	/* a block copied from another file under the same key */
	fd2 = make_file(data, sizeof(data), &g_key);
	copy_range(fd, (off_t)ovc_layout_slot_off(1), fd2, (off_t)ovc_layout_slot_off(1), 4124);
	expect_bad_block(fd2, 1);
	close(fd2);
	/* headers swapped between two files of the same key */
	fd2 = make_file(data, sizeof(data), &g_key);
	copy_range(fd, 0, fd2, 0, OVC_HEADER_SIZE);
	expect_bad_block(fd2, 0);
	close(fd2);
	close(fd);
}

static void test_truncation(void **state)
{
	uint8_t data[3 * 4096 + 500];
	uint8_t out[20000];
	size_t len;
	ovc_err e;
	int fd;
	(void)state;

	randombytes_buf(data, sizeof(data));
	fd = make_file(data, sizeof(data), &g_key);
	/* mid-block: into the final block's tail, leaving ≥ 28 bytes */
	assert_int_equal(ftruncate(fd, fdsize(fd) - 100), 0);
	expect_bad_block(fd, 3);
	/* at a block boundary: block 2 is now final without the last flag */
	assert_int_equal(ftruncate(fd, (off_t)ovc_layout_slot_off(3)), 0);
	expect_bad_block(fd, 2);
	/* a remainder of 1..27 bytes is no valid length */
	assert_int_equal(ftruncate(fd, (off_t)ovc_layout_slot_off(2) + 10), 0);
	assert_int_equal(read_all(fd, out, sizeof(out), &len, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "block 2"));
	/* cut back to the header */
	assert_int_equal(ftruncate(fd, OVC_HEADER_SIZE), 0);
	assert_int_equal(read_all(fd, out, sizeof(out), &len, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "header"));
	close(fd);
	/* trailing garbage */
	fd = make_file(data, sizeof(data), &g_key);
	assert_int_equal(pwrite(fd, "garbage!", 8, fdsize(fd)), 8);
	expect_bad_block(fd, 3);
	close(fd);
	fd = make_file(data, 3 * 4096, &g_key);
	assert_int_equal(pwrite(fd, data, 4124 + 40, fdsize(fd)), 4124 + 40);
	expect_bad_block(fd, -1);
	close(fd);
	/* an empty file cut back to its header */
	fd = make_file(data, 0, &g_key);
	assert_int_equal(ftruncate(fd, OVC_HEADER_SIZE), 0);
	assert_int_equal(read_all(fd, out, sizeof(out), &len, &e), -EBADMSG);
	close(fd);
}

static void zero_slot(int fd, uint64_t j, size_t len)
{
	static const uint8_t z[4124];
	assert_int_equal(pwrite(fd, z, len, (off_t)ovc_layout_slot_off(j)), (ssize_t)len);
}

static void test_zero_blocks(void **state)
{
	uint8_t data[3 * 4096 + 10], out[20000];
	ovc_file *f;
	size_t len;
	int fd;
	(void)state;

	randombytes_buf(data, sizeof(data));
	/* without the sparse flag a zero block is an authentication failure */
	fd = make_file(data, sizeof(data), &g_key);
	zero_slot(fd, 1, 4124);
	expect_bad_block(fd, 1);
	close(fd);
	/* with it, an inner zero block is a hole ... */
	fd = make_file(data, 10, &g_key);
	assert_int_equal(ovc_file_open(fd, lookup, NULL, &f, NULL), 0);
	assert_int_equal(ovc_file_pwrite(f, g_c, data, 10, 3 * 4096, NULL), 10);
	assert_true(ovc_file_header(f)->flags & OVC_FLAG_SPARSE);
	ovc_file_close(f);
	assert_int_equal(read_all(fd, out, sizeof(out), &len, NULL), 0);
	assert_int_equal(len, 3 * 4096 + 10);
	for (size_t i = 10; i < 3 * 4096; i++)
		assert_int_equal(out[i], 0);
	assert_memory_equal(out, data, 10);
	assert_memory_equal(out + 3 * 4096, data, 10);
	/* ... but the final block zeroed is not */
	zero_slot(fd, 3, 38);
	expect_bad_block(fd, 3);
	close(fd);
}

/* The trace of an interrupted append: a non-final block that still
 * carries the last flag reads fine; a final block without it does not. */
static void test_crash_trace(void **state)
{
	uint8_t data[8192], out[8192], fk[32], buf[120 + 2 * 4124];
	ovc_header h;
	size_t len;
	int fd = mkfd();
	(void)state;

	randombytes_buf(data, sizeof(data));
	ovc_header_new(&h, 0, &g_key, fk);
	ovc_header_encode(&h, buf);
	assert_int_equal(ovc_block_seal(g_c, fk, h.file_id, 0, 1, data, 4096, buf + 120), 0);
	assert_int_equal(ovc_block_seal(g_c, fk, h.file_id, 1, 1, data + 4096, 4096, buf + 120 + 4124), 0);
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	assert_int_equal(read_all(fd, out, sizeof(out), &len, NULL), 0);
	assert_int_equal(len, 8192);
	assert_memory_equal(out, data, 8192);
	assert_int_equal(ovc_block_seal(g_c, fk, h.file_id, 1, 0, data + 4096, 4096, buf + 120 + 4124), 0);
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	expect_bad_block(fd, 1);
	close(fd);
}

static void test_truncate_zero_fresh(void **state)
{
	uint8_t data[5000], fid[16];
	ovc_file *f;
	int fd;
	(void)state;

	randombytes_buf(data, sizeof(data));
	fd = make_file(data, sizeof(data), &g_key);
	assert_int_equal(ovc_file_open(fd, lookup, NULL, &f, NULL), 0);
	memcpy(fid, ovc_file_header(f)->file_id, 16);
	assert_int_equal(ovc_file_truncate(f, g_c, 0, NULL, NULL), -EACCES);
	assert_int_equal(ovc_file_truncate(f, g_c, 0, &g_other, NULL), 0);
	assert_true(memcmp(fid, ovc_file_header(f)->file_id, 16) != 0);
	assert_memory_equal(ovc_file_header(f)->key_id, g_other.id, 16);
	assert_int_equal(fdsize(fd), 148);
	assert_int_equal(ovc_file_pwrite(f, g_c, data, 10, 0, NULL), 10);
	ovc_file_close(f);
	close(fd);
}

/* Write a file block by block, rewrite it, and find no nonce twice. */
static int cmp12(const void *a, const void *b)
{
	return memcmp(a, b, 12);
}

static void test_file_nonces(void **state)
{
	enum { BLOCKS = 2048 };
	uint8_t blk[4096], *seen = malloc(2 * BLOCKS * 12);
	ovc_file *f;
	int fd = make_file(NULL, 0, &g_key);
	(void)state;

	randombytes_buf(blk, sizeof(blk));
	assert_int_equal(ovc_file_open(fd, lookup, NULL, &f, NULL), 0);
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t j = 0; j < BLOCKS; j++)
			assert_int_equal(ovc_file_pwrite(f, g_c, blk, 4096, j * 4096, NULL), 4096);
		for (uint64_t j = 0; j < BLOCKS; j++)
			assert_int_equal(pread(fd, seen + (pass * BLOCKS + j) * 12, 12,
					       (off_t)ovc_layout_slot_off(j)), 12);
	}
	ovc_file_close(f);
	qsort(seen, 2 * BLOCKS, 12, cmp12);
	for (size_t i = 1; i < 2 * BLOCKS; i++)
		assert_true(memcmp(seen + (i - 1) * 12, seen + i * 12, 12) != 0);
	free(seen);
	close(fd);
}

static void test_efbig(void **state)
{
	ovc_file *f;
	ovc_err e;
	int fd = make_file(NULL, 0, &g_key);
	(void)state;

	assert_int_equal(ovc_file_open(fd, lookup, NULL, &f, NULL), 0);
	assert_int_equal(ovc_file_pwrite(f, g_c, "x", 1, OVC_MAX_PLAIN_SIZE, &e), -EFBIG);
	assert_int_equal(ovc_file_truncate(f, g_c, OVC_MAX_PLAIN_SIZE + 1, NULL, &e), -EFBIG);
	ovc_file_close(f);
	close(fd);
}

/* 10,000 random pwrite/pread/truncate operations against an in-memory
 * model; contents byte-identical at every check. OVC_SEED picks the seed. */
static uint64_t rng_state;
static uint64_t rnd(uint64_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return n ? rng_state % n : 0;
}

static uint64_t rnd_off(uint64_t size)
{
	switch (rnd(5)) {
	case 0: return 0;
	case 1: return size;                            /* at EOF */
	case 2: return (rnd(size / 4096 + 3)) * 4096 + rnd(3) - (rnd(2) ? 1 : 0); /* near a boundary */
	case 3: return size + rnd(20000);               /* beyond EOF */
	default: return rnd(size + 1);
	}
}

static void test_model(void **state)
{
	enum { MAXSZ = 1 << 19, OPS = 10000 };
	uint8_t *model = calloc(1, MAXSZ + 70000), *buf = malloc(70000), *out = malloc(MAXSZ + 70000);
	uint64_t size = 0, seed;
	const char *s = getenv("OVC_SEED");
	ovc_file *f;
	ovc_err e;
	int fd = make_file(NULL, 0, &g_key);
	(void)state;

	seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
	rng_state = seed | 1;
	print_message("model test seed %llu (OVC_SEED=%llu to repeat)\n",
		      (unsigned long long)seed, (unsigned long long)seed);
	assert_int_equal(ovc_file_open(fd, lookup, NULL, &f, NULL), 0);
	for (int op = 0; op < OPS; op++) {
		uint64_t off = rnd_off(size) % MAXSZ, len = rnd(4) ? rnd(9000) : rnd(70000);
		int kind = (int)rnd(10);

		if (off + len > MAXSZ)
			len = MAXSZ - off;
		if (getenv("OVC_TRACE"))
			print_message("op %d kind %d off %llu len %llu size %llu\n", op, kind,
				      (unsigned long long)off, (unsigned long long)len,
				      (unsigned long long)size);
		if (kind < 5) {             /* pwrite */
			randombytes_buf(buf, len);
			if (ovc_file_pwrite(f, g_c, buf, len, off, &e) != (ssize_t)len)
				fail_msg("seed %llu op %d: pwrite(%llu, %llu) at size %llu: %s",
					 (unsigned long long)seed, op, (unsigned long long)off,
					 (unsigned long long)len, (unsigned long long)size, e.msg);
			memcpy(model + off, buf, len);
			if (len && off + len > size)
				size = off + len;
		} else if (kind < 8) {      /* pread */
			ssize_t n = ovc_file_pread(f, g_c, buf, len, off, &e);
			uint64_t want = off >= size ? 0 : (size - off < len ? size - off : len);
			if (n != (ssize_t)want)
				fail_msg("seed %llu op %d: pread(%llu, %llu) = %zd (%s), want %llu",
					 (unsigned long long)seed, op, (unsigned long long)off,
					 (unsigned long long)len, n, e.msg, (unsigned long long)want);
			assert_memory_equal(buf, model + off, want);
		} else {                    /* truncate (to zero: fresh header) */
			uint64_t ns = rnd(6) ? off : 0;
			if (ovc_file_truncate(f, g_c, ns, &g_key, &e) != 0)
				fail_msg("seed %llu op %d: truncate(%llu) from %llu: %s",
					 (unsigned long long)seed, op, (unsigned long long)ns,
					 (unsigned long long)size, e.msg);
			if (ns < size)
				memset(model + ns, 0, size - ns);
			size = ns;
		}
		assert_int_equal(ovc_file_size(f), size);
		if (op % 500 == 0 || op == OPS - 1) { /* reopen and compare all */
			size_t got = 0;
			ovc_file_close(f);
			assert_int_equal(fdsize(fd), (off_t)ovc_layout_backing_size(size));
			if (read_all(fd, out, MAXSZ + 70000, &got, &e) != 0)
				fail_msg("seed %llu op %d: %s", (unsigned long long)seed, op, e.msg);
			assert_int_equal(got, size);
			assert_memory_equal(out, model, size);
			assert_int_equal(ovc_file_open(fd, lookup, NULL, &f, NULL), 0);
		}
	}
	ovc_file_close(f);
	free(model);
	free(buf);
	free(out);
	close(fd);
}


/* Repair: every torn tail comes back to its longest authenticated prefix,
 * readable; damage in the middle is refused without force; an intact file
 * is left alone. */
static int repair(int fd, int force, ovc_repair_report *r)
{
	ovc_err e;

	ovc_err_clear(&e);
	return ovc_file_repair(fd, lookup, NULL, g_c, force, 0, r, &e);
}

static void expect_content(int fd, const uint8_t *data, size_t want)
{
	static uint8_t out[1 << 16];
	size_t len = 0;

	assert_int_equal(read_all(fd, out, sizeof(out), &len, NULL), 0);
	assert_int_equal(len, want);
	assert_memory_equal(out, data, want);
}

static void test_repair(void **state)
{
	uint8_t data[4 * 4096 + 300];
	ovc_repair_report r;
	int fd;
	(void)state;

	randombytes_buf(data, sizeof(data));
	/* intact */
	fd = make_file(data, sizeof(data), &g_key);
	assert_int_equal(repair(fd, 0, &r), 0);
	assert_true(r.intact);
	assert_int_equal(fdsize(fd), (off_t)ovc_layout_backing_size(sizeof(data)));
	/* cut inside the final block: back to 4 full blocks, block 3
	 * resealed as the final one */
	assert_int_equal(ftruncate(fd, fdsize(fd) - 100), 0);
	assert_int_equal(repair(fd, 0, &r), 0);
	assert_false(r.intact);
	assert_int_equal(r.kept, 4);
	assert_true(r.resealed);
	expect_content(fd, data, 4 * 4096);
	/* cut at a block boundary (block 1 final without the flag) */
	assert_int_equal(ftruncate(fd, (off_t)ovc_layout_slot_off(2)), 0);
	assert_int_equal(repair(fd, 0, &r), 0);
	expect_content(fd, data, 2 * 4096);
	/* a remainder of 1..27 bytes */
	assert_int_equal(pwrite(fd, "0123456789", 10, fdsize(fd)), 10);
	assert_int_equal(repair(fd, 0, &r), 0);
	expect_content(fd, data, 2 * 4096);
	/* garbage appended after a sealed final block */
	assert_int_equal(pwrite(fd, data, 5000, fdsize(fd)), 5000);
	assert_int_equal(repair(fd, 0, &r), 0);
	assert_false(r.resealed);
	expect_content(fd, data, 2 * 4096);
	/* cut back to the header: an empty file */
	assert_int_equal(ftruncate(fd, OVC_HEADER_SIZE), 0);
	assert_int_equal(repair(fd, 0, &r), 0);
	assert_int_equal(r.kept, 0);
	expect_content(fd, data, 0);
	close(fd);
	/* a flipped byte in the middle with good blocks after: refused,
	 * nothing changed; with force, cut */
	fd = make_file(data, sizeof(data), &g_key);
	flip(fd, (off_t)ovc_layout_slot_off(1) + 50, 4);
	{
		off_t before = fdsize(fd);
		ovc_err e;

		ovc_err_clear(&e);
		assert_int_equal(ovc_file_repair(fd, lookup, NULL, g_c, 0, 0, &r, &e),
				 -ENOTRECOVERABLE);
		assert_non_null(strstr(e.msg, "block 1 "));
		assert_int_equal(fdsize(fd), before);
	}
	assert_int_equal(repair(fd, 1, &r), 0);
	expect_content(fd, data, 4096);
	close(fd);
	/* a header that does not authenticate cannot be repaired */
	fd = make_file(data, 100, &g_key);
	flip(fd, 80, 1);
	assert_int_equal(repair(fd, 0, &r), -EBADMSG);
	close(fd);
}


static const ovc_key *lookup_only(void *ctx, const uint8_t id[OVC_KEY_ID_BYTES])
{
	const ovc_key *k = ctx;

	return memcmp(id, k->id, OVC_KEY_ID_BYTES) == 0 ? k : NULL;
}

/* A rename into another rule's place rewraps the file key in the header:
 * the same file id, file key and blocks, the new key id; an open handle
 * goes on reading and writing (holes after it are flagged under the new
 * key); only the new key opens it afterwards. */
static void test_rewrap(void **state)
{
	static uint8_t data[10000], out[30000];
	uint8_t fid[sizeof(((ovc_header *)0)->file_id)];
	ovc_file *f, *g;
	ovc_err e = { 0 };
	int fd;
	(void)state;

	randombytes_buf(data, sizeof(data));
	fd = make_file(data, sizeof(data), &g_key);
	assert_int_equal(ovc_file_open(fd, lookup_only, &g_key, &f, &e), 0);
	memcpy(fid, ovc_file_header(f)->file_id, sizeof(fid));
	assert_int_equal(ovc_file_rewrap(f, &g_key, &e), 0); /* same key: nothing */
	assert_int_equal(ovc_file_rewrap(f, &g_other, &e), 0);
	assert_memory_equal(ovc_file_header(f)->key_id, g_other.id, OVC_KEY_ID_BYTES);
	assert_memory_equal(ovc_file_header(f)->file_id, fid, sizeof(fid));
	assert_int_equal(ovc_file_pread(f, g_c, out, sizeof(out), 0, &e), (ssize_t)sizeof(data));
	assert_memory_equal(out, data, sizeof(data));
	/* a write past the end: a hole, the sparse flag set under the new key */
	assert_int_equal(ovc_file_pwrite(f, g_c, "tail", 4, 20000, &e), 4);
	ovc_file_close(f);

	assert_int_equal(ovc_file_open(fd, lookup_only, &g_key, &g, &e), -EACCES);
	assert_int_equal(ovc_file_open(fd, lookup_only, &g_other, &g, &e), 0);
	assert_memory_equal(ovc_file_header(g)->file_id, fid, sizeof(fid));
	assert_true(ovc_file_header(g)->flags & OVC_FLAG_SPARSE);
	assert_int_equal(ovc_file_pread(g, g_c, out, sizeof(out), 0, &e), 20004);
	assert_memory_equal(out, data, sizeof(data));
	for (size_t i = sizeof(data); i < 20000; i++)
		assert_int_equal(out[i], 0);
	assert_memory_equal(out + 20000, "tail", 4);
	assert_int_equal(ovc_file_verify(g, g_c, NULL, &e), 0);
	ovc_file_close(g);
	close(fd);
}

/* A growing write the backing file system refuses part-way (EFBIG here,
 * through RLIMIT_FSIZE; ENOSPC alike) leaves the file readable at its old
 * size, the data before intact. */
static void test_failed_growth_settles(void **state)
{
	uint8_t data[4096 + 100], out[1 << 16];
	struct rlimit old, lim;
	ovc_file *f;
	size_t len;
	ovc_err e;
	(void)state;

	randombytes_buf(data, sizeof(data));
	for (int pass = 0; pass < 2; pass++) {
		size_t n = pass ? sizeof(data) : 100; /* short final block, or two blocks */
		int fd = make_file(data, n, &g_key);

		signal(SIGXFSZ, SIG_IGN);
		assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
		lim = old;
		lim.rlim_cur = 30000;
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
		assert_int_equal(ovc_file_open(fd, lookup, NULL, &f, NULL), 0);
		ovc_err_clear(&e);
		assert_int_equal(ovc_file_pwrite(f, g_c, data, 10, 100000, &e), -EFBIG);
		/* also a write that starts inside the final block */
		assert_int_equal(ovc_file_pwrite(f, g_c, data, 40000, n - 5, &e), -EFBIG);
		assert_int_equal(ovc_file_size(f), n);
		ovc_file_close(f);
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
		assert_int_equal(fdsize(fd), (off_t)ovc_layout_backing_size(n));
		assert_int_equal(read_all(fd, out, sizeof(out), &len, NULL), 0);
		assert_int_equal(len, n);
		assert_memory_equal(out, data, n - 5);
		close(fd);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_missing_key),
		cmocka_unit_test(test_tamper_header),
		cmocka_unit_test(test_tamper_blocks),
		cmocka_unit_test(test_swaps),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_zero_blocks),
		cmocka_unit_test(test_crash_trace),
		cmocka_unit_test(test_truncate_zero_fresh),
		cmocka_unit_test(test_file_nonces),
		cmocka_unit_test(test_efbig),
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_repair),
		cmocka_unit_test(test_failed_growth_settles),
		cmocka_unit_test(test_rewrap),
	};
	int rc;

	if (ovc_common_init() != 0)
		return 1;
	randombytes_buf(&g_key, sizeof(g_key));
	randombytes_buf(&g_other, sizeof(g_other));
	g_c = ovc_cipher_new();
	if (!g_c)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	ovc_cipher_free(g_c);
	return rc;
}
