/* Unit tests of crypto/format: header codec, layout, block sealing, the
 * golden vectors of docs/file-format.md, nonces. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/common.h"
#include "crypto/format.h"

static void hex2bin(const char *hex, uint8_t *out, size_t len)
{
	size_t n;
	assert_int_equal(sodium_hex2bin(out, len, hex, strlen(hex), NULL, &n, NULL), 0);
	assert_int_equal(n, len);
}

/* The inputs of the vector in docs/file-format.md (tests/ref/ovcref.py). */
struct vec {
	ovc_key asset;
	uint8_t file_id[16], file_key[32], hnonce[24];
	uint8_t plain[4400];
};

static void vec_init(struct vec *v)
{
	for (int i = 0; i < 32; i++) {
		v->asset.key[i] = (uint8_t)i;
		v->file_key[i] = (uint8_t)(0x40 + i);
	}
	for (int i = 0; i < 24; i++)
		v->hnonce[i] = (uint8_t)(0x80 + i);
	hex2bin("3f2a6c1e9b7d4e0a8c5f112233445566", v->asset.id, 16);
	hex2bin("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", v->file_id, 16);
	for (int i = 0; i < 200; i++)
		memcpy(v->plain + 22 * i, "overcrypt test vector\n", 22);
}

/* Encrypt `len` bytes of the vector's plaintext with its fixed nonces. */
static size_t vec_encrypt(ovc_cipher *c, struct vec *v, size_t len, uint8_t *out)
{
	ovc_header h = { .version = 1 };
	size_t pos = 0, n = 0;

	memcpy(h.key_id, v->asset.id, 16);
	memcpy(h.file_id, v->file_id, 16);
	ovc_header_wrap_nonce(&h, v->asset.key, v->file_key, v->hnonce);
	ovc_header_encode(&h, out);
	pos = OVC_HEADER_SIZE;
	do {
		uint8_t nonce[12];
		size_t blen = len - n * 4096 > 4096 ? 4096 : len - n * 4096;
		int last = (n + 1) * 4096 >= len;
		memset(nonce, 0xc0 + (int)n, sizeof(nonce));
		assert_int_equal(ovc_block_seal_nonce(c, v->file_key, v->file_id, n, last,
						      nonce, v->plain + n * 4096, blen, out + pos), 0);
		pos += blen + OVC_BLOCK_OVERHEAD;
		n++;
	} while (n * 4096 < len);
	return pos;
}

static void test_golden_vector(void **state)
{
	static const char want_hdr[] =
		"4f5643525950543101000000000000003f2a6c1e9b7d4e0a8c5f112233445566"
		"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf808182838485868788898a8b8c8d8e8f"
		"909192939495969702af1b1aa3d1052d545169b003f0569e29c00e82d7aeecae"
		"b8333081eb8f422e33835e9bd99b13871c38ea1bf1ed9a1a";
	static const char want_sha[] =
		"7b2b57e93abcfa2ceed59fc1004be1c3bafbac1d8c7be9004d3a6064baab09d3";
	static const char want_empty[] =
		"c0c0c0c0c0c0c0c0c0c0c0c01642049e5851b96974a664b40447d16a";
	ovc_cipher *c = ovc_cipher_new();
	struct vec v;
	uint8_t out[5000], sha[32], want[120], fk[32], pt[4096];
	char hex[65];
	ovc_header h;
	size_t len;
	(void)state;

	vec_init(&v);
	len = vec_encrypt(c, &v, sizeof(v.plain), out);
	assert_int_equal(len, 4576);
	hex2bin(want_hdr, want, 120);
	assert_memory_equal(out, want, 120);
	crypto_hash_sha256(sha, out, len);
	sodium_bin2hex(hex, sizeof(hex), sha, 32);
	assert_string_equal(hex, want_sha);
	/* and back */
	assert_int_equal(ovc_header_decode(out, len, &h, NULL), 0);
	assert_int_equal(ovc_header_unwrap(&h, v.asset.key, fk), 0);
	assert_memory_equal(fk, v.file_key, 32);
	assert_int_equal(ovc_block_open(c, fk, h.file_id, 1, 1, out + 120 + 4124,
					304 + 28, pt), 304);
	assert_memory_equal(pt, v.plain + 4096, 304);
	/* the empty file: one sealed empty final block */
	len = vec_encrypt(c, &v, 0, out);
	assert_int_equal(len, 148);
	hex2bin(want_empty, want, 28);
	assert_memory_equal(out + 120, want, 28);
	ovc_cipher_free(c);
}

static void test_header_refusals(void **state)
{
	ovc_key k;
	uint8_t fk[32], buf[OVC_HEADER_SIZE], bad[OVC_HEADER_SIZE];
	ovc_header h, g;
	ovc_err e;
	(void)state;

	randombytes_buf(&k, sizeof(k));
	ovc_header_new(&h, 0, &k, fk);
	ovc_header_encode(&h, buf);
	assert_int_equal(ovc_header_decode(buf, sizeof(buf), &g, &e), 0);
	assert_memory_equal(&g.file_id, &h.file_id, 16);
	assert_int_equal(ovc_header_decode(buf, 119, &g, &e), -EINVAL);
	memcpy(bad, buf, sizeof(bad));
	bad[8] = 2;
	assert_int_equal(ovc_header_decode(bad, sizeof(bad), &g, &e), -EPROTO);
	assert_non_null(strstr(e.msg, "version 2"));
	memcpy(bad, buf, sizeof(bad));
	bad[OVC_HDR_OFF_FLAGS] |= 0x2;
	assert_int_equal(ovc_header_decode(bad, sizeof(bad), &g, &e), -EPROTO);
	assert_non_null(strstr(e.msg, "flag"));
	memcpy(bad, buf, sizeof(bad));
	bad[OVC_HDR_OFF_FLAGS + 3] |= 0x80;
	assert_int_equal(ovc_header_decode(bad, sizeof(bad), &g, &e), -EPROTO);
	memcpy(bad, buf, sizeof(bad));
	bad[10] = 1;
	assert_int_equal(ovc_header_decode(bad, sizeof(bad), &g, &e), -EPROTO);
	memcpy(bad, buf, sizeof(bad));
	bad[0] ^= 1;
	assert_int_equal(ovc_header_decode(bad, sizeof(bad), &g, &e), -EINVAL);
	/* Every bit of the associated data and of the wrap is bound. */
	for (size_t i = OVC_HDR_OFF_KEY_ID * 8; i < OVC_HEADER_SIZE * 8; i++) {
		memcpy(bad, buf, sizeof(bad));
		bad[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(ovc_header_decode(bad, sizeof(bad), &g, NULL), 0);
		assert_int_equal(ovc_header_unwrap(&g, k.key, fk), -EBADMSG);
	}
	/* The sparse flag is bound too. */
	memcpy(bad, buf, sizeof(bad));
	bad[OVC_HDR_OFF_FLAGS] |= OVC_FLAG_SPARSE;
	assert_int_equal(ovc_header_decode(bad, sizeof(bad), &g, NULL), 0);
	assert_int_equal(ovc_header_unwrap(&g, k.key, fk), -EBADMSG);
	/* A wrong asset key. */
	k.key[0] ^= 1;
	assert_int_equal(ovc_header_decode(buf, sizeof(buf), &g, NULL), 0);
	assert_int_equal(ovc_header_unwrap(&g, k.key, fk), -EBADMSG);
}

static void test_layout(void **state)
{
	static const uint64_t sizes[] = { 0, 1, 4095, 4096, 4097, 8192, 123456789 };
	uint64_t plain, n;
	ovc_err e;
	(void)state;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t b = ovc_layout_backing_size(sizes[i]);
		assert_int_equal(ovc_layout_plain_size(b, &plain, &n, &e), 0);
		assert_int_equal(plain, sizes[i]);
		assert_int_equal(n, ovc_layout_nslots(sizes[i]));
	}
	assert_int_equal(ovc_layout_backing_size(0), 148);
	assert_int_equal(ovc_layout_backing_size(4096), 120 + 4124);
	assert_int_equal(ovc_layout_backing_size(4097), 120 + 4124 + 29);
	assert_int_equal(ovc_layout_plain_size(120, &plain, &n, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "header"));
	assert_int_equal(ovc_layout_plain_size(100, &plain, &n, &e), -EBADMSG);
	for (uint64_t r = 1; r < 28; r++)
		assert_int_equal(ovc_layout_plain_size(120 + 4124 + r, &plain, &n, &e), -EBADMSG);
	assert_int_equal(ovc_layout_plain_size(120 + 4124 + 28, &plain, &n, &e), -EBADMSG);
	assert_int_equal(ovc_layout_plain_size(120 + 28, &plain, &n, &e), 0);
	assert_int_equal(plain, 0);
	assert_true(ovc_layout_backing_size(OVC_MAX_PLAIN_SIZE) <= (uint64_t)INT64_MAX);
	assert_true(OVC_MAX_PLAIN_SIZE == 9160749724286410752ull); /* docs/file-format.md */
}

static void test_block_tamper(void **state)
{
	ovc_cipher *c = ovc_cipher_new();
	uint8_t key[32], fid[16], pt[4096], out[4096], sealed[4124], bad[4124];
	(void)state;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(fid, sizeof(fid));
	randombytes_buf(pt, sizeof(pt));
	assert_int_equal(ovc_block_seal(c, key, fid, 7, 0, pt, 4096, sealed), 0);
	assert_int_equal(ovc_block_open(c, key, fid, 7, 0, sealed, 4124, out), 4096);
	assert_memory_equal(out, pt, 4096);
	/* Wrong place: block number, last flag, file id, key. */
	assert_int_equal(ovc_block_open(c, key, fid, 8, 0, sealed, 4124, out), -EBADMSG);
	assert_int_equal(ovc_block_open(c, key, fid, 7, 1, sealed, 4124, out), -EBADMSG);
	fid[3] ^= 1;
	assert_int_equal(ovc_block_open(c, key, fid, 7, 0, sealed, 4124, out), -EBADMSG);
	fid[3] ^= 1;
	/* The output is wiped after a failure. */
	for (size_t i = 0; i < 4096; i++)
		assert_int_equal(out[i], 0);
	/* A flipped bit anywhere in nonce, ciphertext or tag (every 7th bit). */
	for (size_t i = 0; i < 4124 * 8; i += 7) {
		memcpy(bad, sealed, sizeof(bad));
		bad[i / 8] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(ovc_block_open(c, key, fid, 7, 0, bad, 4124, out), -EBADMSG);
	}
	/* A forged tag that matches only in its first byte: OpenSSL 3.0 would
	 * accept it if the tag length were not set to 16. */
	memcpy(bad, sealed, sizeof(bad));
	for (size_t i = 4124 - 15; i < 4124; i++)
		bad[i] ^= 0x5a;
	assert_int_equal(ovc_block_open(c, key, fid, 7, 0, bad, 4124, out), -EBADMSG);
	/* A block cut to a 1-byte tag is refused. */
	assert_int_equal(ovc_block_open(c, key, fid, 7, 0, sealed, 4096 + 12 + 1, out), -EBADMSG);
	assert_int_equal(ovc_block_open(c, key, fid, 7, 0, sealed, 27, out), -EINVAL);
	ovc_cipher_free(c);
}

static int cmp12(const void *a, const void *b)
{
	return memcmp(a, b, 12);
}

static void test_nonces_unique(void **state)
{
	enum { N = 200000 };
	ovc_cipher *c = ovc_cipher_new(), *c2 = ovc_cipher_new();
	uint8_t key[32] = { 1 }, fid[16] = { 2 }, pt[16] = { 0 }, out[44];
	uint8_t *all = malloc((size_t)N * 12);
	(void)state;

	assert_non_null(all);
	/* Two contexts (two threads or handles) on one key, interleaved. */
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(ovc_block_seal(i % 2 ? c : c2, key, fid, i, 0, pt, 16, out), 0);
		memcpy(all + i * 12, out, 12);
	}
	qsort(all, N, 12, cmp12);
	for (size_t i = 1; i < N; i++)
		assert_true(memcmp(all + (i - 1) * 12, all + i * 12, 12) != 0);
	free(all);
	ovc_cipher_free(c);
	ovc_cipher_free(c2);
}

/* A forked child must not take the nonces the parent has not used yet. */
static void test_nonces_fork(void **state)
{
	ovc_cipher *c = ovc_cipher_new();
	uint8_t key[32] = { 1 }, fid[16] = { 2 }, out[28], child[12];
	int p[2];
	pid_t pid;
	(void)state;

	assert_int_equal(ovc_block_seal(c, key, fid, 0, 1, NULL, 0, out), 0);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (ovc_block_seal(c, key, fid, 0, 1, NULL, 0, out) != 0 ||
		    write(p[1], out, 12) != 12)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(read(p[0], child, 12), 12);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_int_equal(ovc_block_seal(c, key, fid, 0, 1, NULL, 0, out), 0);
	assert_true(memcmp(child, out, 12) != 0);
	close(p[0]);
	close(p[1]);
	ovc_cipher_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_vector),
		cmocka_unit_test(test_header_refusals),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_block_tamper),
		cmocka_unit_test(test_nonces_unique),
		cmocka_unit_test(test_nonces_fork),
	};
	if (ovc_common_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
