/*
 * test_minisign.c - crypto/minisign.c: round trip, a golden .minisig,
 * tampering, legacy refusal, key pinning and rollover, malformed input.
 *
 * Every verify goes through vfy(), which hands the library a malloc()ed
 * copy of exactly sig_len bytes with no NUL after it, so ASan catches any
 * read past the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/common.h"
#include "crypto/minisign.h"

/* ---------------------------------------------------------------------------
 * Golden vector: Ed25519 seed 00 01 .. 1f, key id bytes 01 23 45 67 89 ab cd
 * ef (printed little-endian: EFCDAB8967452301). Any change to the format,
 * the prehash or the comments changes these strings. Checked once against
 * stock minisign 0.11 (`minisign -V -p golden.pub -m golden.txt`).
 */
static const uint8_t GOLDEN_KEY_ID[8] = { 0x01, 0x23, 0x45, 0x67,
					  0x89, 0xab, 0xcd, 0xef };
static const char GOLDEN_MSG[] = "overcrypt golden message\n";
static const char GOLDEN_TC[] = "overcrypt golden vector\tfile:golden.txt";
static const char GOLDEN_PUB[] =
	"untrusted comment: minisign public key EFCDAB8967452301\n"
	"RWQBI0VniavN7wOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4\n";
static const char GOLDEN_SIG[] =
	"untrusted comment: signature from minisign secret key\n"
	"RUQBI0VniavN72LVYZfysMDhk6zP4b1mSqJvZeIvvJhDwxKMaHZ3qyjtV5yom/5z"
	"LnN9lcatZs73yei8bDQwbHRgNpMejxuAcQY=\n"
	"trusted comment: overcrypt golden vector\tfile:golden.txt\n"
	"+MbqhG3eX6DXTYC7u8MfTtRMTtli7cMFYGkKPhx34/hdNCXr9+ilWj0Vfylp6fzD"
	"xE1iRkZ4V9IkUM4jwfcUBA==\n";

static const uint8_t MSG[] = "the quick brown fox";

/* The golden key, through ovc_minisign_seckey_decode. */
static ovc_minisign_seckey *golden_key(ovc_minisign_pubkey *pk)
{
	uint8_t seed[32], raw[OVC_MINISIGN_SECKEY_BYTES], pkb[32];
	ovc_minisign_seckey *sk = NULL;

	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)i;
	memcpy(raw, GOLDEN_KEY_ID, 8);
	assert_int_equal(crypto_sign_seed_keypair(pkb, raw + 8, seed), 0);
	assert_int_equal(ovc_minisign_seckey_decode(raw, sizeof(raw), &sk,
						    NULL), 0);
	sodium_memzero(raw, sizeof(raw));
	if (pk)
		ovc_minisign_seckey_public(sk, pk);
	return sk;
}

/* Verify with an exact-size, unterminated copy of `sig`. */
static int vfy_n(const ovc_minisign_pubkey *pks, size_t n, const void *msg,
		 size_t msg_len, const char *sig, size_t sig_len, char **tc,
		 ovc_err *e)
{
	char *copy = malloc(sig_len ? sig_len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, sig, sig_len);
	rc = ovc_minisign_verify(pks, n, msg, msg_len, copy, sig_len, tc, e);
	free(copy);
	return rc;
}

static int vfy(const ovc_minisign_pubkey *pk, const char *sig, ovc_err *e)
{
	ovc_err_clear(e);
	return vfy_n(pk, 1, MSG, sizeof(MSG) - 1, sig, strlen(sig), NULL, e);
}

/* Line n (1-based) of `text`, malloc()ed, without its LF. */
static char *line_dup(const char *text, int n)
{
	const char *p = text, *nl;

	for (int i = 1; i < n; i++) {
		p = strchr(p, '\n');
		assert_non_null(p);
		p++;
	}
	nl = strchr(p, '\n');
	return strndup(p, nl ? (size_t)(nl - p) : strlen(p));
}

/* `text` with line n replaced by `repl` (NULL: line dropped); malloc()ed. */
static char *line_replace(const char *text, int n, const char *repl)
{
	char *out = NULL, *l;
	size_t cap = 0;
	FILE *f = open_memstream(&out, &cap);

	assert_non_null(f);
	for (int i = 1; i <= 4; i++) {
		if (i == n) {
			if (repl)
				fprintf(f, "%s\n", repl);
			continue;
		}
		l = line_dup(text, i);
		fprintf(f, "%s\n", l);
		free(l);
	}
	assert_int_equal(fclose(f), 0);
	return out;
}

/* Decode base64 line n, flip bit `bit` of the blob, re-encode in place. */
static char *flip_b64_bit(const char *text, int n, size_t bit)
{
	uint8_t bin[128];
	char b64[256], *l = line_dup(text, n), *out;
	size_t len;

	assert_int_equal(sodium_base642bin(bin, sizeof(bin), l, strlen(l),
					   NULL, &len, NULL,
					   sodium_base64_VARIANT_ORIGINAL), 0);
	assert_true(bit / 8 < len);
	bin[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	sodium_bin2base64(b64, sizeof(b64), bin, len,
			  sodium_base64_VARIANT_ORIGINAL);
	out = line_replace(text, n, b64);
	free(l);
	return out;
}

/* Base64 of `len` bytes, in a static-free malloc()ed string. */
static char *b64(const uint8_t *bin, size_t len)
{
	size_t n = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	char *s = malloc(n);

	assert_non_null(s);
	sodium_bin2base64(s, n, bin, len, sodium_base64_VARIANT_ORIGINAL);
	return s;
}

/* noinline: gcc 12's -Wdangling-pointer otherwise suspects `sig` may point
 * at itself after the call and warns at every caller. */
__attribute__((noinline)) static char *sign_msg(const ovc_minisign_seckey *sk,
						const char *tc)
{
	char *sig = NULL;

	assert_int_equal(ovc_minisign_sign(sk, MSG, sizeof(MSG) - 1, tc, &sig),
			 0);
	return sig;
}

/* ---------------------------------------------------------------------------
 * Round trip and golden vectors.
 */

static void test_roundtrip(void **state)
{
	ovc_minisign_seckey *sk = NULL;
	ovc_minisign_pubkey pk, pk2;
	char *sig, *tc = NULL;
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_minisign_keygen(&sk, &pk), 0);
	ovc_minisign_seckey_public(sk, &pk2);
	assert_memory_equal(&pk, &pk2, sizeof(pk));
	sig = sign_msg(sk, "hello world");
	ovc_err_clear(&e);
	assert_int_equal(vfy_n(&pk, 1, MSG, sizeof(MSG) - 1, sig, strlen(sig),
			       &tc, &e), 0);
	assert_string_equal(tc, "hello world");
	free(tc);
	free(sig);

	/* Default trusted comment; empty message. */
	assert_int_equal(ovc_minisign_sign(sk, NULL, 0, NULL, &sig), 0);
	assert_int_equal(vfy_n(&pk, 1, NULL, 0, sig, strlen(sig), &tc, &e), 0);
	assert_int_equal(strncmp(tc, "timestamp:", 10), 0);
	free(tc);
	free(sig);
	ovc_minisign_seckey_free(sk);
	ovc_minisign_seckey_free(NULL);
}

static void test_golden(void **state)
{
	ovc_minisign_pubkey pk, parsed;
	ovc_minisign_seckey *sk = golden_key(&pk);
	char *sig = NULL, *pub = NULL, *tc = NULL;
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_minisign_pubkey_format(&pk, &pub), 0);
	assert_string_equal(pub, GOLDEN_PUB);
	assert_int_equal(ovc_minisign_pubkey_parse(GOLDEN_PUB,
						   strlen(GOLDEN_PUB), &parsed,
						   NULL), 0);
	assert_memory_equal(&pk, &parsed, sizeof(pk));

	assert_int_equal(ovc_minisign_sign(sk, (const uint8_t *)GOLDEN_MSG,
					   strlen(GOLDEN_MSG), GOLDEN_TC, &sig),
			 0);
	assert_string_equal(sig, GOLDEN_SIG);
	ovc_err_clear(&e);
	assert_int_equal(vfy_n(&pk, 1, GOLDEN_MSG, strlen(GOLDEN_MSG),
			       GOLDEN_SIG, strlen(GOLDEN_SIG), &tc, &e), 0);
	assert_string_equal(tc, GOLDEN_TC);
	free(tc);
	free(sig);
	free(pub);
	ovc_minisign_seckey_free(sk);
}

static void test_seckey_codec(void **state)
{
	uint8_t raw[OVC_MINISIGN_SECKEY_BYTES];
	ovc_minisign_seckey *sk = golden_key(NULL), *sk2 = NULL;
	char *a, *b;
	ovc_err e;

	(void)state;
	ovc_minisign_seckey_encode(sk, raw);
	assert_memory_equal(raw, GOLDEN_KEY_ID, 8);
	assert_int_equal(ovc_minisign_seckey_decode(raw, sizeof(raw), &sk2,
						    &e), 0);
	a = sign_msg(sk, "x");
	b = sign_msg(sk2, "x");
	assert_string_equal(a, b);
	free(a);
	free(b);
	ovc_minisign_seckey_free(sk2);

	ovc_err_clear(&e);
	assert_int_equal(ovc_minisign_seckey_decode(raw, sizeof(raw) - 1, &sk2,
						    &e), -EINVAL);
	assert_null(sk2);
	assert_non_null(strstr(e.msg, "72"));
	raw[8 + 40] ^= 1; /* the public half */
	assert_int_equal(ovc_minisign_seckey_decode(raw, sizeof(raw), &sk2,
						    &e), -EINVAL);
	assert_null(sk2);
	assert_non_null(strstr(e.msg, "inconsistent"));
	sodium_memzero(raw, sizeof(raw));
	ovc_minisign_seckey_free(sk);
}

/* ---------------------------------------------------------------------------
 * Tampering, legacy, key pinning.
 */

static void test_tamper(void **state)
{
	ovc_minisign_pubkey pk;
	ovc_minisign_seckey *sk = golden_key(&pk);
	char *sig = sign_msg(sk, "tamper me"), *bad;
	uint8_t msg[sizeof(MSG)];
	ovc_err e;

	(void)state;
	assert_int_equal(vfy(&pk, sig, &e), 0);

	memcpy(msg, MSG, sizeof(MSG));
	msg[3] ^= 0x10;
	ovc_err_clear(&e);
	assert_int_equal(vfy_n(&pk, 1, msg, sizeof(MSG) - 1, sig, strlen(sig),
			       NULL, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "signature verification failed"));
	assert_int_equal(vfy_n(&pk, 1, MSG, sizeof(MSG) - 2, sig, strlen(sig),
			       NULL, &e), -EBADMSG);

	bad = flip_b64_bit(sig, 2, 8 * 10 + 5); /* in the Ed25519 signature */
	assert_int_equal(vfy(&pk, bad, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "signature verification failed"));
	free(bad);

	bad = flip_b64_bit(sig, 2, 8 * 2 + 1); /* in the key id */
	assert_int_equal(vfy(&pk, bad, &e), -ENOKEY);
	free(bad);

	bad = line_replace(sig, 3, "trusted comment: tamper mE");
	assert_int_equal(vfy(&pk, bad, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "global signature"));
	free(bad);

	bad = flip_b64_bit(sig, 4, 100);
	assert_int_equal(vfy(&pk, bad, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "global signature"));
	free(bad);

	/* The untrusted comment is not covered: changing it is fine. */
	bad = line_replace(sig, 1, "untrusted comment: anything at all");
	assert_int_equal(vfy(&pk, bad, &e), 0);
	free(bad);

	/* Unknown algorithm: "ED" -> "ED" ^ 0x0001. */
	bad = flip_b64_bit(sig, 2, 8 * 1 + 0);
	assert_int_equal(vfy(&pk, bad, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "algorithm"));
	free(bad);
	free(sig);
	ovc_minisign_seckey_free(sk);
}

/* A legacy (non-prehashed "Ed") signature made by hand, valid otherwise. */
static void test_legacy_refused(void **state)
{
	uint8_t seed[32], pkb[32], skb[64], blob[74], gm[64 + 3], global[64];
	ovc_minisign_pubkey pk;
	char *s1, *s2, *sig;
	ovc_err e;

	(void)state;
	memset(seed, 7, sizeof(seed));
	assert_int_equal(crypto_sign_seed_keypair(pkb, skb, seed), 0);
	memcpy(pk.key_id, GOLDEN_KEY_ID, 8);
	memcpy(pk.pk, pkb, 32);
	memcpy(blob, "Ed", 2);
	memcpy(blob + 2, GOLDEN_KEY_ID, 8);
	assert_int_equal(crypto_sign_detached(blob + 10, NULL, MSG,
					      sizeof(MSG) - 1, skb), 0);
	memcpy(gm, blob + 10, 64);
	memcpy(gm + 64, "old", 3);
	assert_int_equal(crypto_sign_detached(global, NULL, gm, sizeof(gm),
					      skb), 0);
	s1 = b64(blob, sizeof(blob));
	s2 = b64(global, sizeof(global));
	assert_true(asprintf(&sig, "untrusted comment: legacy\n%s\n"
			     "trusted comment: old\n%s\n", s1, s2) > 0);
	assert_int_equal(vfy(&pk, sig, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "legacy"));
	sodium_memzero(skb, sizeof(skb));
	free(sig);
	free(s1);
	free(s2);
}

static void test_keys_pinned(void **state)
{
	ovc_minisign_seckey *old_sk = NULL, *new_sk = NULL;
	ovc_minisign_pubkey pks[2], other;
	char *sig_old, *sig_new, *tc = NULL;
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_minisign_keygen(&old_sk, &pks[0]), 0);
	assert_int_equal(ovc_minisign_keygen(&new_sk, &pks[1]), 0);
	sig_old = sign_msg(old_sk, "old");
	sig_new = sign_msg(new_sk, "new");

	/* Rollover: both pinned, each signature finds its own key. */
	ovc_err_clear(&e);
	assert_int_equal(vfy_n(pks, 2, MSG, sizeof(MSG) - 1, sig_old,
			       strlen(sig_old), &tc, &e), 0);
	assert_string_equal(tc, "old");
	free(tc);
	assert_int_equal(vfy_n(pks, 2, MSG, sizeof(MSG) - 1, sig_new,
			       strlen(sig_new), &tc, &e), 0);
	assert_string_equal(tc, "new");
	free(tc);

	/* Only the new key pinned: the old signature is from an unknown id. */
	assert_int_equal(vfy(&pks[1], sig_old, &e), -ENOKEY);
	assert_non_null(strstr(e.msg, "not a pinned key"));
	assert_int_equal(vfy_n(NULL, 0, MSG, sizeof(MSG) - 1, sig_old,
			       strlen(sig_old), &tc, &e), -ENOKEY);
	assert_null(tc);

	/* Same key id, different key: the signature itself fails. */
	other = pks[1];
	memcpy(other.key_id, pks[0].key_id, 8);
	assert_int_equal(vfy(&other, sig_old, &e), -EBADMSG);

	free(sig_old);
	free(sig_new);
	ovc_minisign_seckey_free(old_sk);
	ovc_minisign_seckey_free(new_sk);
}

/* ---------------------------------------------------------------------------
 * Line endings and malformed input.
 */

static void test_line_endings(void **state)
{
	ovc_minisign_pubkey pk;
	ovc_minisign_seckey *sk = golden_key(&pk);
	char *sig = sign_msg(sk, "crlf"), *crlf, *tc = NULL;
	size_t n = 0;
	ovc_err e;

	(void)state;
	crlf = malloc(2 * strlen(sig) + 1);
	assert_non_null(crlf);
	for (const char *p = sig; *p; p++) {
		if (*p == '\n')
			crlf[n++] = '\r';
		crlf[n++] = *p;
	}
	crlf[n] = '\0';
	ovc_err_clear(&e);
	assert_int_equal(vfy_n(&pk, 1, MSG, sizeof(MSG) - 1, crlf, n, &tc, &e),
			 0);
	assert_string_equal(tc, "crlf"); /* no CR in the comment */
	free(tc);
	/* Final line end missing (LF and CRLF forms). */
	assert_int_equal(vfy_n(&pk, 1, MSG, sizeof(MSG) - 1, sig,
			       strlen(sig) - 1, NULL, &e), 0);
	assert_int_equal(vfy_n(&pk, 1, MSG, sizeof(MSG) - 1, crlf, n - 1, NULL,
			       &e), 0);
	assert_int_equal(vfy_n(&pk, 1, MSG, sizeof(MSG) - 1, crlf, n - 2, NULL,
			       &e), 0);
	free(crlf);
	free(sig);
	ovc_minisign_seckey_free(sk);
}

/* Set the low bits of the base64 character before the padding, so the
 * text still decodes to the right length but is not canonical. */
static char *noncanonical(const char *sig, int n)
{
	static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij"
				    "klmnopqrstuvwxyz0123456789+/";
	char *l = line_dup(sig, n), *out, *eq = strchr(l, '=');
	size_t idx;

	assert_non_null(eq);
	idx = (size_t)(strchr(alpha, eq[-1]) - alpha);
	eq[-1] = alpha[idx | 1];
	out = line_replace(sig, n, l);
	free(l);
	return out;
}

static void test_malformed(void **state)
{
	ovc_minisign_pubkey pk;
	ovc_minisign_seckey *sk = golden_key(&pk);
	char *sig = sign_msg(sk, "shape"), *l2 = line_dup(sig, 2);
	char *l4 = line_dup(sig, 4), *bad[24], *tmp, big[9000];
	size_t nb = 0, siglen = strlen(sig);
	ovc_err e;

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	bad[nb++] = strdup("");
	bad[nb++] = strdup("\n\n\n\n");
	bad[nb++] = line_dup(sig, 1);                         /* 1 line */
	bad[nb++] = line_replace(sig, 4, NULL);               /* 3 lines */
	bad[nb++] = line_replace(sig, 1, "untrusted comment:x"); /* prefix */
	bad[nb++] = line_replace(sig, 3, "trusted comment shape");
	bad[nb++] = line_replace(sig, 2, "");
	l2[10] = '*';
	bad[nb++] = line_replace(sig, 2, l2);                  /* bad char */
	l2[10] = 'A';
	l2[96] = '\0';
	bad[nb++] = line_replace(sig, 2, l2);                  /* short */
	l2[96] = 'A';
	assert_true(asprintf(&bad[nb++], "%s\n%sAAAA\n", "untrusted comment: ",
			     l2) > 0);                           /* 2 lines */
	bad[nb++] = noncanonical(sig, 2);
	bad[nb++] = noncanonical(sig, 4);
	l4[86] = '\0';
	bad[nb++] = line_replace(sig, 4, l4);                  /* no padding */
	assert_true(asprintf(&tmp, "%s ", l2) > 0);            /* space */
	bad[nb++] = line_replace(sig, 2, tmp);
	free(tmp);
	assert_true(asprintf(&tmp, "untrusted comment: %s", big) > 0);
	bad[nb++] = line_replace(sig, 1, tmp);                 /* overlong */
	free(tmp);
	assert_true(asprintf(&tmp, "trusted comment: %s", big) > 0);
	bad[nb++] = line_replace(sig, 3, tmp);                 /* overlong */
	free(tmp);
	assert_true(asprintf(&bad[nb++], "%s\n", sig) > 0);    /* trailing */
	assert_true(asprintf(&bad[nb++], "%sx", sig) > 0);     /* trailing */
	bad[nb++] = line_replace(sig, 3, "trusted comment: a\rb");
	bad[nb++] = strndup(sig, siglen / 2);                  /* truncated */

	for (size_t i = 0; i < nb; i++) {
		assert_non_null(bad[i]);
		ovc_err_clear(&e);
		if (vfy(&pk, bad[i], &e) != -EINVAL)
			fail_msg("case %zu: not -EINVAL: %s", i, e.msg);
		assert_true(e.msg[0] != '\0');
		free(bad[i]);
	}

	/* A NUL inside the trusted comment (explicit length). */
	{
		char *t = strdup(sig);
		char *p = strstr(t, "shape");

		*p = '\0';
		ovc_err_clear(&e);
		assert_int_equal(vfy_n(&pk, 1, MSG, sizeof(MSG) - 1, t, siglen,
				       NULL, &e), -EINVAL);
		free(t);
	}
	free(l2);
	free(l4);
	free(sig);
	ovc_minisign_seckey_free(sk);
}

static void test_sign_comment_limits(void **state)
{
	ovc_minisign_pubkey pk;
	ovc_minisign_seckey *sk = golden_key(&pk);
	char *sig = NULL, *tc = NULL, big[8175];
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_minisign_sign(sk, MSG, 1, "a\nb", &sig), -EINVAL);
	assert_null(sig);
	assert_int_equal(ovc_minisign_sign(sk, MSG, 1, "a\rb", &sig), -EINVAL);
	memset(big, 'c', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0'; /* 8174 bytes: one too many */
	assert_int_equal(ovc_minisign_sign(sk, MSG, 1, big, &sig), -EINVAL);
	big[sizeof(big) - 2] = '\0'; /* 8173: the most stock minisign takes */
	assert_int_equal(ovc_minisign_sign(sk, MSG, sizeof(MSG) - 1, big, &sig),
			 0);
	ovc_err_clear(&e);
	assert_int_equal(vfy_n(&pk, 1, MSG, sizeof(MSG) - 1, sig, strlen(sig),
			       &tc, &e), 0);
	assert_string_equal(tc, big);
	free(tc);
	free(sig);
	assert_int_equal(ovc_minisign_sign(sk, MSG, 1, "", &sig), 0);
	assert_int_equal(vfy_n(&pk, 1, MSG, 1, sig, strlen(sig), &tc, &e), 0);
	assert_string_equal(tc, "");
	free(tc);
	free(sig);
	ovc_minisign_seckey_free(sk);
}

/* ---------------------------------------------------------------------------
 * Public keys.
 */

static int pub_parse(const char *s, ovc_minisign_pubkey *pk, ovc_err *e)
{
	size_t n = strlen(s);
	char *copy = malloc(n ? n : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, s, n);
	ovc_err_clear(e);
	rc = ovc_minisign_pubkey_parse(copy, n, pk, e);
	free(copy);
	return rc;
}

static void test_pubkey_parse(void **state)
{
	ovc_minisign_pubkey pk, want;
	ovc_minisign_seckey *sk = golden_key(&want);
	char *bare = line_dup(GOLDEN_PUB, 2), *s, *bad[12];
	size_t nb = 0;
	ovc_err e;

	(void)state;
	assert_int_equal(pub_parse(GOLDEN_PUB, &pk, &e), 0);
	assert_memory_equal(&pk, &want, sizeof(pk));
	memset(&pk, 0, sizeof(pk));
	assert_int_equal(pub_parse(bare, &pk, &e), 0); /* as for minisign -P */
	assert_memory_equal(&pk, &want, sizeof(pk));
	assert_true(asprintf(&s, "%s\r\n", bare) > 0);
	assert_int_equal(pub_parse(s, &pk, &e), 0);
	free(s);
	assert_true(asprintf(&s, "untrusted comment: any text\r\n%s", bare) > 0);
	assert_int_equal(pub_parse(s, &pk, &e), 0);
	assert_memory_equal(&pk, &want, sizeof(pk));
	free(s);

	bad[nb++] = strdup("");
	bad[nb++] = strdup("untrusted comment: minisign public key 1\n");
	assert_true(asprintf(&bad[nb++], "%s\n%s\n", bare, bare) > 0);
	assert_true(asprintf(&bad[nb++], "%s\n\n", GOLDEN_PUB) > 0);
	assert_true(asprintf(&bad[nb++], " %s", bare) > 0);
	assert_true(asprintf(&bad[nb++], "%.52s", bare) > 0);
	assert_true(asprintf(&bad[nb++], "%sAAAA", bare) > 0);
	bad[nb++] = strdup("comment\nRWQBI0VniavN7wPxrtgh");
	s = strdup(bare);
	s[1] = 'U'; /* "Ed" -> "ED" (a signature algorithm, not a key's) */
	bad[nb++] = s;
	s = strdup(bare);
	s[20] = '!';
	bad[nb++] = s;
	for (size_t i = 0; i < nb; i++) {
		assert_non_null(bad[i]);
		if (pub_parse(bad[i], &pk, &e) != -EINVAL)
			fail_msg("case %zu accepted", i);
		assert_true(e.msg[0] != '\0');
		free(bad[i]);
	}
	assert_int_equal(ovc_minisign_pubkey_parse(NULL, 0, &pk, NULL), -EINVAL);
	free(bare);
	ovc_minisign_seckey_free(sk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_seckey_codec),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_legacy_refused),
		cmocka_unit_test(test_keys_pinned),
		cmocka_unit_test(test_line_endings),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_sign_comment_limits),
		cmocka_unit_test(test_pubkey_parse),
	};

	if (ovc_common_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
