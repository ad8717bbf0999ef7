/* test_age.c - the age format: every community test vector (OVC_TESTKIT),
 * HKDF (RFC 5869), bech32, keys, and round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "common/common.h"
#include "crypto/age.h"

#define TESTKIT_DEFAULT "tests/vectors/age-testkit"
#define MAX_VECTOR (64u << 20)
#define MAX_KEYS 16

/* ------------------------------------------------------------------------
 * Helpers.
 */

static int hex_decode(const char *hex, uint8_t *out, size_t len)
{
	size_t n = 0;

	if (strlen(hex) != 2 * len)
		return -1;
	return sodium_hex2bin(out, len, hex, strlen(hex), NULL, &n, NULL) ||
			       n != len ?
		       -1 :
		       0;
}

/* A sink that hashes (and counts) everything released to it. */
struct hash_sink {
	crypto_hash_sha256_state st;
	size_t n;
};

static int hash_sink_fn(void *ctx, const uint8_t *d, size_t len)
{
	struct hash_sink *h = ctx;

	crypto_hash_sha256_update(&h->st, d, len);
	h->n += len;
	return 0;
}

static uint8_t *pattern(size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + (i >> 8));
	return p;
}

/* ------------------------------------------------------------------------
 * The test kit.
 */

struct vector {
	char name[256];
	char expect[32];
	char payload[65];
	char *identity[MAX_KEYS];
	size_t n_identity;
	char *passphrase[MAX_KEYS];
	size_t n_passphrase;
	int compressed;
	uint8_t *body; /* malloc()ed */
	size_t body_len;
};

static void vector_release(struct vector *v)
{
	for (size_t i = 0; i < v->n_identity; i++)
		free(v->identity[i]);
	for (size_t i = 0; i < v->n_passphrase; i++)
		free(v->passphrase[i]);
	free(v->body);
	memset(v, 0, sizeof(*v));
}

static int inflate_all(const uint8_t *in, size_t len, uint8_t **out,
		       size_t *out_len)
{
	z_stream zs;
	size_t cap = 1 << 20;
	uint8_t *buf = malloc(cap);
	int zr;

	if (!buf)
		return -1;
	memset(&zs, 0, sizeof(zs));
	if (inflateInit(&zs) != Z_OK) {
		free(buf);
		return -1;
	}
	zs.next_in = (Bytef *)in;
	zs.avail_in = (uInt)len;
	do {
		if (zs.total_out == cap) {
			uint8_t *nb = realloc(buf, cap * 2);
			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		zs.next_out = buf + zs.total_out;
		zs.avail_out = (uInt)(cap - zs.total_out);
		zr = inflate(&zs, Z_NO_FLUSH);
	} while (zr == Z_OK);
	*out_len = zs.total_out;
	inflateEnd(&zs);
	if (zr != Z_STREAM_END) {
		free(buf);
		return -1;
	}
	*out = buf;
	return 0;
}

static int vector_key(struct vector *v, const char *k, const char *val)
{
	if (!strcmp(k, "expect"))
		snprintf(v->expect, sizeof(v->expect), "%s", val);
	else if (!strcmp(k, "payload"))
		snprintf(v->payload, sizeof(v->payload), "%s", val);
	else if (!strcmp(k, "identity") && v->n_identity < MAX_KEYS)
		v->identity[v->n_identity++] = strdup(val);
	else if (!strcmp(k, "passphrase") && v->n_passphrase < MAX_KEYS)
		v->passphrase[v->n_passphrase++] = strdup(val);
	else if (!strcmp(k, "compressed"))
		v->compressed = !strcmp(val, "zlib");
	return 0; /* unknown keys (file key, comment, armored) are ignored */
}

/* The text header (`key: value` lines), an empty line, the age file. */
static int vector_load(const char *dir, const char *name, struct vector *v)
{
	char path[4096], line[1024];
	uint8_t *raw = NULL;
	size_t len = 0, pos = 0;

	snprintf(v->name, sizeof(v->name), "%s", name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (ovc_read_file(path, MAX_VECTOR, 0, &raw, &len))
		return -1;
	for (;;) {
		const uint8_t *nl = memchr(raw + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (raw + pos)) : 0;
		char *colon;

		if (!nl || n >= sizeof(line))
			goto bad;
		memcpy(line, raw + pos, n);
		line[n] = '\0';
		pos += n + 1;
		if (n == 0)
			break;
		colon = strstr(line, ": ");
		if (!colon)
			goto bad;
		*colon = '\0';
		vector_key(v, line, colon + 2);
	}
	if (v->compressed) {
		if (inflate_all(raw + pos, len - pos, &v->body, &v->body_len))
			goto bad;
	} else {
		v->body_len = len - pos;
		v->body = malloc(v->body_len + 1);
		if (!v->body)
			goto bad;
		memcpy(v->body, raw + pos, v->body_len);
	}
	free(raw);
	return 0;
bad:
	free(raw);
	return -1;
}

static const char *status_name(enum ovc_age_status s)
{
	switch (s) {
	case OVC_AGE_OK: return "success";
	case OVC_AGE_ARMOR: return "armor failure";
	case OVC_AGE_HEADER: return "header failure";
	case OVC_AGE_NO_MATCH: return "no match";
	case OVC_AGE_HMAC: return "HMAC failure";
	case OVC_AGE_PAYLOAD: return "payload failure";
	}
	return "?";
}

/* Run one vector; 0 when we agree with it, else a line on stderr. */
static int vector_run(const struct vector *v)
{
	ovc_age_identity *ids[MAX_KEYS] = { 0 };
	enum ovc_age_status st = OVC_AGE_OK;
	struct hash_sink hs = { .n = 0 };
	uint8_t got[32], want[32];
	ovc_err e;
	int rc, bad = 0;

	for (size_t i = 0; i < v->n_identity; i++)
		if (ovc_age_identity_parse(v->identity[i],
					   strlen(v->identity[i]), &ids[i],
					   &e)) {
			fprintf(stderr, "vector %s: identity: %s\n", v->name,
				e.msg);
			bad = 1;
		}
	ovc_age_decrypt_opts o = {
		.identities = (const ovc_age_identity *const *)ids,
		.n_identities = v->n_identity,
		.passphrases = (const char *const *)v->passphrase,
		.n_passphrases = v->n_passphrase,
	};
	crypto_hash_sha256_init(&hs.st);
	rc = ovc_age_decrypt(&o, v->body, v->body_len, hash_sink_fn, &hs, &st,
			     &e);
	crypto_hash_sha256_final(&hs.st, got);
	if (strcmp(status_name(st), v->expect) != 0 ||
	    (rc == 0) != (st == OVC_AGE_OK)) {
		fprintf(stderr, "vector %s: expected %s, got %s (%d: %s)\n",
			v->name, v->expect, status_name(st), rc,
			rc ? e.msg : "");
		bad = 1;
	}
	if (v->payload[0]) {
		if (hex_decode(v->payload, want, sizeof(want)) ||
		    memcmp(got, want, sizeof(got)) != 0) {
			fprintf(stderr,
				"vector %s: released plaintext (%zu bytes) has the wrong SHA-256\n",
				v->name, hs.n);
			bad = 1;
		}
	} else if (hs.n != 0) {
		fprintf(stderr, "vector %s: %zu bytes released on %s\n",
			v->name, hs.n, v->expect);
		bad = 1;
	}
	for (size_t i = 0; i < v->n_identity; i++)
		ovc_age_identity_free(ids[i]);
	return bad;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_testkit(void **state)
{
	const char *dir = getenv("OVC_TESTKIT");
	char *names[1024];
	size_t n = 0, fail = 0, ran = 0;
	struct dirent *de;
	DIR *d;

	(void)state;
	if (!dir || !*dir)
		dir = TESTKIT_DEFAULT;
	d = opendir(dir);
	if (!d)
		fail_msg("cannot open test kit %s: %s", dir, strerror(errno));
	while ((de = readdir(d)) && n < 1024) {
		if (de->d_name[0] == '.' || !strcmp(de->d_name, "LICENSE") ||
		    strstr(de->d_name, "README"))
			continue;
		names[n] = strdup(de->d_name);
		assert_non_null(names[n]);
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), name_cmp);
	for (size_t i = 0; i < n; i++) {
		struct vector v;

		memset(&v, 0, sizeof(v));
		if (vector_load(dir, names[i], &v)) {
			fprintf(stderr, "vector %s: cannot be read\n", names[i]);
			fail++;
		} else {
			fail += (size_t)vector_run(&v);
			ran++;
		}
		vector_release(&v);
		free(names[i]);
	}
	printf("age testkit (%s): %zu vectors, %zu agree, %zu disagree\n",
	       dir, n, n - fail, fail);
	assert_true(n >= 100);
	assert_int_equal(ran, n);
	assert_int_equal(fail, 0);
}

/* ------------------------------------------------------------------------
 * HKDF: RFC 5869 A.1-A.3, and OpenSSL's HKDF for the salt sizes age uses.
 */

static void hkdf_case(const char *ikm_hex, const char *salt_hex,
		      const char *info_hex, const char *okm_hex)
{
	uint8_t ikm[128], salt[128], info[128], okm[128], out[128];
	size_t il = strlen(ikm_hex) / 2, sl = strlen(salt_hex) / 2,
	       fl = strlen(info_hex) / 2, ol = strlen(okm_hex) / 2;

	assert_int_equal(hex_decode(ikm_hex, ikm, il), 0);
	assert_int_equal(hex_decode(salt_hex, salt, sl), 0);
	assert_int_equal(hex_decode(info_hex, info, fl), 0);
	assert_int_equal(hex_decode(okm_hex, okm, ol), 0);
	assert_int_equal(ovc_hkdf_sha256(out, ol, sl ? salt : NULL, sl, ikm,
					 il, info, fl),
			 0);
	assert_memory_equal(out, okm, ol);
}

static void test_hkdf_rfc5869(void **state)
{
	(void)state;
	/* A.1: basic, 13-byte salt. */
	hkdf_case("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
		  "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9",
		  "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56"
		  "ecc4c5bf34007208d5b887185865");
	/* A.2: 80-byte inputs (a salt longer than the HMAC block). */
	hkdf_case("000102030405060708090a0b0c0d0e0f101112131415161718191a1b"
		  "1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637"
		  "38393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f",
		  "606162636465666768696a6b6c6d6e6f707172737475767778797a7b"
		  "7c7d7e7f808182838485868788898a8b8c8d8e8f9091929394959697"
		  "98999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
		  "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacb"
		  "cccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7"
		  "e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
		  "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c"
		  "19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8"
		  "367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87");
	/* A.3: no salt, no info. */
	hkdf_case("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "",
		  "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f"
		  "3c738d2d9d201395faa4b61a96c8");
}

static void openssl_hkdf(uint8_t *out, size_t out_len, uint8_t *salt,
			 size_t salt_len, uint8_t *ikm, size_t ikm_len,
			 char *info)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx;
	OSSL_PARAM p[5], *q = p;

	assert_non_null(kdf);
	ctx = EVP_KDF_CTX_new(kdf);
	assert_non_null(ctx);
	*q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						(char *)"SHA256", 0);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ikm,
						 ikm_len);
	if (salt_len)
		*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
							 salt, salt_len);
	*q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info,
						 strlen(info));
	*q = OSSL_PARAM_construct_end();
	assert_int_equal(EVP_KDF_derive(ctx, out, out_len, p), 1);
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
}

static void test_hkdf_salt_sizes(void **state)
{
	static const size_t sizes[] = { 0, 1, 16, 32, 63, 64, 65, 100 };
	uint8_t salt[100], ikm[32], a[96], b[96];
	char info[] = "age-encryption.org/v1/X25519";

	(void)state;
	randombytes_buf(salt, sizeof(salt));
	randombytes_buf(ikm, sizeof(ikm));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		assert_int_equal(ovc_hkdf_sha256(a, sizeof(a), salt, sizes[i],
						 ikm, sizeof(ikm),
						 (uint8_t *)info, strlen(info)),
				 0);
		openssl_hkdf(b, sizeof(b), salt, sizes[i], ikm, sizeof(ikm),
			     info);
		assert_memory_equal(a, b, sizeof(a));
	}
	assert_int_equal(ovc_hkdf_sha256(a, 255 * 32 + 1, NULL, 0, ikm, 32,
					 NULL, 0),
			 -EINVAL);
}

/* ------------------------------------------------------------------------
 * bech32 and keys.
 */

static void test_bech32(void **state)
{
	uint8_t data[40], back[40];
	char s[128], hrp[32], upper[128];
	size_t n = 0;

	(void)state;
	randombytes_buf(data, sizeof(data));
	assert_int_equal(ovc_bech32_encode(s, sizeof(s), "age", data, 32), 0);
	assert_int_equal(strlen(s), OVC_AGE_RECIPIENT_STRLEN);
	assert_int_equal(ovc_bech32_decode(s, hrp, sizeof(hrp), back,
					   sizeof(back), &n),
			 0);
	assert_string_equal(hrp, "age");
	assert_int_equal(n, 32);
	assert_memory_equal(back, data, 32);
	/* Too small an output buffer. */
	assert_int_equal(ovc_bech32_encode(s, 40, "age", data, 32), -EINVAL);
	/* BIP 173 valid string (upper case is fine, hrp comes back lower). */
	assert_int_equal(ovc_bech32_decode("A12UEL5L", hrp, sizeof(hrp), back,
					   sizeof(back), &n),
			 0);
	assert_string_equal(hrp, "a");
	assert_int_equal(n, 0);
	/* All upper case round trip. */
	assert_int_equal(ovc_bech32_encode(s, sizeof(s), "age", data, 32), 0);
	for (size_t i = 0; s[i]; i++)
		upper[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]),
		upper[i + 1] = '\0';
	assert_int_equal(ovc_bech32_decode(upper, hrp, sizeof(hrp), back,
					   sizeof(back), &n),
			 0);
	/* Mixed case refused, both ways. */
	upper[0] = 'a'; /* "aGE1…" */
	assert_int_equal(ovc_bech32_decode(upper, hrp, sizeof(hrp), back,
					   sizeof(back), &n),
			 -EINVAL);
	s[0] = 'A'; /* "Age1…" */
	assert_int_equal(ovc_bech32_decode(s, hrp, sizeof(hrp), back,
					   sizeof(back), &n),
			 -EINVAL);
	s[0] = 'a';
	/* One character changed: bad checksum. */
	s[10] = s[10] == 'q' ? 'p' : 'q';
	assert_int_equal(ovc_bech32_decode(s, hrp, sizeof(hrp), back,
					   sizeof(back), &n),
			 -EINVAL);
	/* Other invalid forms. */
	assert_int_equal(ovc_bech32_decode("noseparator", hrp, sizeof(hrp),
					   back, sizeof(back), &n),
			 -EINVAL);
	assert_int_equal(ovc_bech32_decode("1qqqqqq", hrp, sizeof(hrp), back,
					   sizeof(back), &n),
			 -EINVAL);
	assert_int_equal(ovc_bech32_decode("a1b2uel5l", hrp, sizeof(hrp),
					   back, sizeof(back), &n),
			 -EINVAL);
}

static void test_identity(void **state)
{
	ovc_age_identity *id = NULL, *id2 = NULL;
	ovc_age_recipient r1, r2, r3;
	char ids[OVC_AGE_IDENTITY_STRLEN + 1], rs[OVC_AGE_RECIPIENT_STRLEN + 1];
	char file[512];
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_age_identity_generate(&id), 0);
	ovc_age_identity_encode(id, ids);
	assert_int_equal(strlen(ids), OVC_AGE_IDENTITY_STRLEN);
	assert_memory_equal(ids, "AGE-SECRET-KEY-1", 16);
	ovc_age_identity_recipient(id, &r1);
	ovc_age_recipient_encode(&r1, rs);
	assert_int_equal(strlen(rs), OVC_AGE_RECIPIENT_STRLEN);
	assert_memory_equal(rs, "age1", 4);
	assert_int_equal(ovc_age_recipient_parse(rs, &r2, &e), 0);
	assert_memory_equal(r1.pk, r2.pk, 32);
	/* An age-keygen style file. */
	snprintf(file, sizeof(file),
		 "# created: 2026-01-01T00:00:00Z\n# public key: %s\n\n%s\r\n",
		 rs, ids);
	assert_int_equal(ovc_age_identity_parse(file, strlen(file), &id2, &e),
			 0);
	ovc_age_identity_recipient(id2, &r3);
	assert_memory_equal(r1.pk, r3.pk, 32);
	ovc_age_identity_free(id2);
	id2 = NULL;
	/* Two keys, none, lower case, bad checksum: refused. */
	snprintf(file, sizeof(file), "%s\n%s\n", ids, ids);
	assert_int_equal(ovc_age_identity_parse(file, strlen(file), &id2, &e),
			 -EINVAL);
	assert_null(id2);
	assert_non_null(strstr(e.msg, "more than one"));
	assert_int_equal(ovc_age_identity_parse("# nothing\n", 10, &id2, &e),
			 -EINVAL);
	snprintf(file, sizeof(file), "%s", ids);
	for (char *p = file; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	assert_int_equal(ovc_age_identity_parse(file, strlen(file), &id2, &e),
			 -EINVAL);
	snprintf(file, sizeof(file), "%s", ids);
	file[40] = file[40] == 'Q' ? 'P' : 'Q';
	assert_int_equal(ovc_age_identity_parse(file, strlen(file), &id2, &e),
			 -EINVAL);
	assert_null(strstr(e.msg, file + 16)); /* never echoes the key */
	/* Recipients: upper case and wrong hrp refused. */
	snprintf(file, sizeof(file), "%s", rs);
	for (char *p = file; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 32);
	assert_int_equal(ovc_age_recipient_parse(file, &r2, &e), -EINVAL);
	snprintf(file, sizeof(file), "%s", rs);
	file[20] = file[20] == 'q' ? 'p' : 'q';
	assert_int_equal(ovc_age_recipient_parse(file, &r2, &e), -EINVAL);
	assert_int_equal(ovc_age_recipient_parse("age1", &r2, &e), -EINVAL);
	assert_int_equal(ovc_age_recipient_parse(ids, &r2, &e), -EINVAL);
	sodium_memzero(ids, sizeof(ids));
	sodium_memzero(file, sizeof(file));
	ovc_age_identity_free(id);
}

/* ------------------------------------------------------------------------
 * Round trips and refusals.
 */

static const size_t sizes[] = { 0, 1, 65535, 65536, 65537, 200000 };
#define N_SIZES (sizeof(sizes) / sizeof(sizes[0]))
#define TEST_LOGN 10

static void decrypt_expect(const ovc_age_decrypt_opts *o, const uint8_t *c,
			   size_t clen, const uint8_t *plain, size_t len)
{
	enum ovc_age_status st;
	uint8_t *out = NULL;
	size_t out_len = 0;
	ovc_err e;
	int rc;

	rc = ovc_age_decrypt_buf(o, c, clen, 1 << 20, &out, &out_len, &st, &e);
	if (rc)
		fail_msg("decrypt of %zu bytes: %d %s", len, rc, e.msg);
	assert_int_equal(st, OVC_AGE_OK);
	assert_int_equal(out_len, len);
	if (len)
		assert_memory_equal(out, plain, len);
	assert_int_equal(out[out_len], '\0');
	ovc_wipe_free(out);
}

static void roundtrip_x25519(size_t n_ids)
{
	ovc_age_identity *ids[3];
	ovc_age_recipient rs[3];
	ovc_err e;

	for (size_t i = 0; i < n_ids; i++) {
		assert_int_equal(ovc_age_identity_generate(&ids[i]), 0);
		ovc_age_identity_recipient(ids[i], &rs[i]);
	}
	for (int armor = 0; armor < 2; armor++)
		for (size_t s = 0; s < N_SIZES; s++) {
			uint8_t *plain = pattern(sizes[s]), *c = NULL;
			size_t clen = 0;
			ovc_age_encrypt_opts eo = { .recipients = rs,
						    .n_recipients = n_ids,
						    .armor = armor };

			assert_int_equal(ovc_age_encrypt(&eo, plain, sizes[s],
							 &c, &clen, &e),
					 0);
			assert_int_equal(ovc_age_is_age(c, clen), 1);
			if (armor)
				assert_memory_equal(c, "-----BEGIN AGE", 14);
			/* Each identity alone opens it. */
			for (size_t i = 0; i < n_ids; i++) {
				ovc_age_decrypt_opts o = {
					.identities =
						(const ovc_age_identity *const *)&ids[i],
					.n_identities = 1
				};
				decrypt_expect(&o, c, clen, plain, sizes[s]);
			}
			free(c);
			free(plain);
		}
	for (size_t i = 0; i < n_ids; i++)
		ovc_age_identity_free(ids[i]);
}

static void test_roundtrip_x25519_one(void **state)
{
	(void)state;
	roundtrip_x25519(1);
}

static void test_roundtrip_x25519_three(void **state)
{
	(void)state;
	roundtrip_x25519(3);
}

static void test_roundtrip_passphrase(void **state)
{
	const char *pass = "correct horse battery staple";
	ovc_age_decrypt_opts o = { .passphrases = &pass, .n_passphrases = 1 };
	ovc_err e;

	(void)state;
	for (int armor = 0; armor < 2; armor++)
		for (size_t s = 0; s < N_SIZES; s++) {
			uint8_t *plain = pattern(sizes[s]), *c = NULL;
			size_t clen = 0;
			ovc_age_encrypt_opts eo = { .passphrase = pass,
						    .scrypt_log_n = TEST_LOGN,
						    .armor = armor };

			assert_int_equal(ovc_age_encrypt(&eo, plain, sizes[s],
							 &c, &clen, &e),
					 0);
			decrypt_expect(&o, c, clen, plain, sizes[s]);
			free(c);
			free(plain);
		}
}

static void test_wrong_identity(void **state)
{
	ovc_age_identity *a = NULL, *b = NULL;
	ovc_age_recipient ra;
	enum ovc_age_status st;
	uint8_t *c = NULL, *out = NULL;
	size_t clen = 0, out_len = 0;
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_age_identity_generate(&a), 0);
	assert_int_equal(ovc_age_identity_generate(&b), 0);
	ovc_age_identity_recipient(a, &ra);
	ovc_age_encrypt_opts eo = { .recipients = &ra, .n_recipients = 1 };
	assert_int_equal(ovc_age_encrypt(&eo, (const uint8_t *)"hi", 2, &c,
					 &clen, &e),
			 0);
	ovc_age_decrypt_opts o = {
		.identities = (const ovc_age_identity *const *)&b,
		.n_identities = 1
	};
	assert_int_equal(ovc_age_decrypt_buf(&o, c, clen, 100, &out, &out_len,
					     &st, &e),
			 -ENOKEY);
	assert_int_equal(st, OVC_AGE_NO_MATCH);
	assert_null(out);
	assert_true(strlen(e.msg) > 0);
	/* No identity at all: no match too. */
	ovc_age_decrypt_opts none = { 0 };
	assert_int_equal(ovc_age_decrypt(&none, c, clen, NULL, NULL, &st, &e),
			 -ENOKEY);
	assert_int_equal(st, OVC_AGE_NO_MATCH);
	free(c);
	ovc_age_identity_free(a);
	ovc_age_identity_free(b);
}

static void test_wrong_passphrase(void **state)
{
	const char *wrong = "not the passphrase";
	ovc_age_encrypt_opts eo = { .passphrase = "the passphrase",
				    .scrypt_log_n = TEST_LOGN };
	ovc_age_decrypt_opts o = { .passphrases = &wrong, .n_passphrases = 1 };
	enum ovc_age_status st;
	uint8_t *c = NULL;
	size_t clen = 0;
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_age_encrypt(&eo, (const uint8_t *)"hi", 2, &c,
					 &clen, &e),
			 0);
	assert_int_equal(ovc_age_decrypt(&o, c, clen, NULL, NULL, &st, &e),
			 -ENOKEY);
	assert_int_equal(st, OVC_AGE_NO_MATCH);
	free(c);
}

static void test_scrypt_too_costly(void **state)
{
	const char *pass = "pass";
	ovc_age_encrypt_opts eo = { .passphrase = pass,
				    .scrypt_log_n = TEST_LOGN };
	ovc_age_decrypt_opts o = { .passphrases = &pass, .n_passphrases = 1,
				   .max_scrypt_log_n = TEST_LOGN - 1 };
	enum ovc_age_status st;
	uint8_t *c = NULL;
	size_t clen = 0;
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_age_encrypt(&eo, (const uint8_t *)"x", 1, &c,
					 &clen, &e),
			 0);
	assert_int_equal(ovc_age_decrypt(&o, c, clen, NULL, NULL, &st, &e),
			 -EINVAL);
	assert_int_equal(st, OVC_AGE_HEADER);
	assert_non_null(strstr(e.msg, "work factor 2^10 is above the limit 2^9"));
	/* At the limit it opens. */
	o.max_scrypt_log_n = TEST_LOGN;
	assert_int_equal(ovc_age_decrypt(&o, c, clen, NULL, NULL, &st, &e), 0);
	/* Writers refuse what readers would refuse by default. */
	eo.scrypt_log_n = OVC_AGE_SCRYPT_LOGN_MAX + 1;
	free(c);
	c = NULL;
	assert_int_equal(ovc_age_encrypt(&eo, (const uint8_t *)"x", 1, &c,
					 &clen, &e),
			 -EINVAL);
}

/* A file with an scrypt stanza of work factor 2^log_n (random body). */
static void scrypt_file(char *file, size_t size, int log_n)
{
	uint8_t salt[16], body[32], mac[32];
	char s64[32], b64[48], m64[48];

	randombytes_buf(salt, sizeof(salt));
	randombytes_buf(body, sizeof(body));
	randombytes_buf(mac, sizeof(mac));
	sodium_bin2base64(s64, sizeof(s64), salt, 16,
			  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	sodium_bin2base64(b64, sizeof(b64), body, 32,
			  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	sodium_bin2base64(m64, sizeof(m64), mac, 32,
			  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	snprintf(file, size,
		 "age-encryption.org/v1\n-> scrypt %s %d\n%s\n--- %s\n"
		 "0123456789abcdef",
		 s64, log_n, b64, m64);
}

static int overcommit_heuristic(void)
{
	FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
	int v = 1;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 1;
		fclose(f);
	}
	return v != 1;
}

/* scrypt memory that cannot be had is a clear -ENOMEM, not a crash or a
 * header failure: 2^40 KiB is beyond libsodium's limit; 2^30 KiB (1 TiB) is
 * refused by the kernel unless it overcommits without limit. */
static void test_scrypt_enomem(void **state)
{
	const char *pass = "pass";
	ovc_age_decrypt_opts o = { .passphrases = &pass, .n_passphrases = 1,
				   .max_scrypt_log_n = 40 };
	enum ovc_age_status st;
	char file[512];
	ovc_err e;

	(void)state;
	scrypt_file(file, sizeof(file), 40);
	assert_int_equal(ovc_age_decrypt(&o, (uint8_t *)file, strlen(file),
					 NULL, NULL, &st, &e),
			 -ENOMEM);
	assert_non_null(strstr(e.msg, "could not be allocated"));
	if (overcommit_heuristic()) {
		scrypt_file(file, sizeof(file), 30);
		assert_int_equal(ovc_age_decrypt(&o, (uint8_t *)file,
						 strlen(file), NULL, NULL, &st,
						 &e),
				 -ENOMEM);
	}
	/* With the default limit the same file is a header failure. */
	o.max_scrypt_log_n = 0;
	assert_int_equal(ovc_age_decrypt(&o, (uint8_t *)file, strlen(file),
					 NULL, NULL, &st, &e),
			 -EINVAL);
	assert_int_equal(st, OVC_AGE_HEADER);
}

/* A bad second chunk: the first is released, nothing after it. */
static void test_payload_tamper(void **state)
{
	ovc_age_identity *id = NULL;
	ovc_age_recipient r;
	enum ovc_age_status st;
	struct hash_sink hs = { .n = 0 };
	uint8_t *plain = pattern(200000), *c = NULL;
	size_t clen = 0;
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_age_identity_generate(&id), 0);
	ovc_age_identity_recipient(id, &r);
	ovc_age_encrypt_opts eo = { .recipients = &r, .n_recipients = 1 };
	assert_int_equal(ovc_age_encrypt(&eo, plain, 200000, &c, &clen, &e), 0);
	c[clen - 200000 - 4 * 16 + 65536 + 16 + 100] ^= 1; /* in chunk 1 */
	ovc_age_decrypt_opts o = {
		.identities = (const ovc_age_identity *const *)&id,
		.n_identities = 1
	};
	crypto_hash_sha256_init(&hs.st);
	assert_int_equal(ovc_age_decrypt(&o, c, clen, hash_sink_fn, &hs, &st,
					 &e),
			 -EBADMSG);
	assert_int_equal(st, OVC_AGE_PAYLOAD);
	assert_int_equal(hs.n, 65536);
	assert_non_null(strstr(e.msg, "chunk 1"));
	/* Header MAC: change one base64 character in the middle of it. */
	c[clen - 200000 - 4 * 16 + 65536 + 16 + 100] ^= 1;
	size_t m = clen - 200000 - 4 * 16 - 16 - 10;
	c[m] = c[m] == 'A' ? 'B' : 'A';
	hs.n = 0;
	assert_int_equal(ovc_age_decrypt(&o, c, clen, hash_sink_fn, &hs, &st,
					 &e),
			 -EBADMSG);
	assert_int_equal(st, OVC_AGE_HMAC);
	assert_int_equal(hs.n, 0);
	free(c);
	free(plain);
	ovc_age_identity_free(id);
}

static void test_decrypt_buf_limit(void **state)
{
	const char *pass = "pass";
	ovc_age_encrypt_opts eo = { .passphrase = pass,
				    .scrypt_log_n = TEST_LOGN };
	ovc_age_decrypt_opts o = { .passphrases = &pass, .n_passphrases = 1 };
	uint8_t *plain = pattern(100000), *c = NULL, *out = NULL;
	size_t clen = 0, out_len = 0;
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_age_encrypt(&eo, plain, 100000, &c, &clen, &e), 0);
	assert_int_equal(ovc_age_decrypt_buf(&o, c, clen, 99999, &out,
					     &out_len, NULL, &e),
			 -EFBIG);
	assert_null(out);
	assert_int_equal(ovc_age_decrypt_buf(&o, c, clen, 100000, &out,
					     &out_len, NULL, &e),
			 0);
	assert_int_equal(out_len, 100000);
	ovc_wipe_free(out);
	free(c);
	free(plain);
}

static void test_options_and_detection(void **state)
{
	ovc_age_recipient r = { { 9 } };
	ovc_age_encrypt_opts both = { .recipients = &r, .n_recipients = 1,
				      .passphrase = "x", .scrypt_log_n = 10 };
	ovc_age_encrypt_opts none = { 0 };
	ovc_age_encrypt_opts low = { .recipients = &r, .n_recipients = 1 };
	uint8_t *c = NULL;
	size_t clen = 0;
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_age_encrypt(&both, (const uint8_t *)"x", 1, &c,
					 &clen, &e),
			 -EINVAL);
	assert_int_equal(ovc_age_encrypt(&none, (const uint8_t *)"x", 1, &c,
					 &clen, &e),
			 -EINVAL);
	memset(r.pk, 0, sizeof(r.pk)); /* a low-order point */
	assert_int_equal(ovc_age_encrypt(&low, (const uint8_t *)"x", 1, &c,
					 &clen, &e),
			 -EINVAL);
	assert_null(c);
	assert_int_equal(ovc_age_is_age((const uint8_t *)"age-encryption.org/v1\n", 22), 1);
	assert_int_equal(ovc_age_is_age((const uint8_t *)"\n -----BEGIN AGE ENCRYPTED FILE-----\n", 37), 1);
	assert_int_equal(ovc_age_is_age((const uint8_t *)"hello", 5), 0);
	assert_int_equal(ovc_age_is_age((const uint8_t *)"", 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hkdf_rfc5869),
		cmocka_unit_test(test_hkdf_salt_sizes),
		cmocka_unit_test(test_bech32),
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_testkit),
		cmocka_unit_test(test_roundtrip_x25519_one),
		cmocka_unit_test(test_roundtrip_x25519_three),
		cmocka_unit_test(test_roundtrip_passphrase),
		cmocka_unit_test(test_wrong_identity),
		cmocka_unit_test(test_wrong_passphrase),
		cmocka_unit_test(test_scrypt_too_costly),
		cmocka_unit_test(test_scrypt_enomem),
		cmocka_unit_test(test_payload_tamper),
		cmocka_unit_test(test_decrypt_buf_limit),
		cmocka_unit_test(test_options_and_detection),
	};

	if (ovc_common_init() != 0) {
		fprintf(stderr, "sodium_init failed\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
