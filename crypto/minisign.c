/*
 * minisign.c - minisign key, public-key and signature formats; see
 * minisign.h.
 *
 *   public key  = "Ed" | key id (8) | Ed25519 pk (32)            (42 bytes)
 *   signature   = "ED" | key id (8) | Ed25519(BLAKE2b-512(msg))  (74 bytes)
 *   global sig  = Ed25519(signature[10..74] | trusted comment)   (64 bytes)
 *
 * each base64 (original alphabet, padded) on its own line under an
 * "untrusted comment: " line; the global signature comes after a
 * "trusted comment: " line. The layout follows jedisct1/minisign.
 *
 * Reading is strict: every line must be there and nothing may follow the
 * last one; base64 must be canonical and decode to the exact size; lines
 * are capped at the sizes stock minisign reads. Line endings may be LF or
 * CRLF (stock minisign strips CR too, and files copied through Windows
 * get them); the final line end may be missing. Any other CR, or a NUL
 * byte, is refused.
 */
#define _GNU_SOURCE /* asprintf */
#include "crypto/minisign.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ALG_BYTES 2
#define SIG_BYTES crypto_sign_BYTES                              /* 64 */
#define HASH_BYTES crypto_generichash_BYTES_MAX                  /* 64 */
#define PUB_BLOB (ALG_BYTES + OVC_MINISIGN_KEYID_BYTES + 32)     /* 42 */
#define SIG_BLOB (ALG_BYTES + OVC_MINISIGN_KEYID_BYTES + SIG_BYTES) /* 74 */

/* Base64 text lengths of the blobs, without the NUL. */
#define B64_LEN(n) ((((n) + 2) / 3) * 4)
#define PUB_B64 B64_LEN(PUB_BLOB)  /* 56 */
#define SIG_B64 B64_LEN(SIG_BLOB)  /* 100 */
#define GSIG_B64 B64_LEN(SIG_BYTES) /* 88 */

#define UNTRUSTED_PREFIX "untrusted comment: "
#define TRUSTED_PREFIX "trusted comment: "
#define PREFIX_LEN(p) (sizeof(p) - 1)
#define SIG_UNTRUSTED_TEXT "signature from minisign secret key"

/* Line caps, without the line end: stock minisign reads the untrusted
 * comment with fgets(1024) and the trusted one with fgets(8192), and
 * refuses to sign a trusted comment of 8192 - 18 bytes or more. */
#define UNTRUSTED_LINE_MAX 1022
#define TRUSTED_TEXT_MAX 8173
#define TRUSTED_LINE_MAX (PREFIX_LEN(TRUSTED_PREFIX) + TRUSTED_TEXT_MAX)

_Static_assert(sizeof(ovc_minisign_pubkey) == OVC_MINISIGN_KEYID_BYTES + 32,
	       "pubkey struct has no padding");
_Static_assert(OVC_MINISIGN_SECKEY_BYTES ==
		       OVC_MINISIGN_KEYID_BYTES + crypto_sign_SECRETKEYBYTES,
	       "secret key encoding is key id | Ed25519 sk");
_Static_assert(PUB_B64 == 56 && SIG_B64 == 100 && GSIG_B64 == 88,
	       "minisign base64 line lengths");

struct ovc_minisign_seckey {
	uint8_t key_id[OVC_MINISIGN_KEYID_BYTES];
	uint8_t sk[crypto_sign_SECRETKEYBYTES]; /* seed | pk */
};

/* One line of a text, borrowed from it: no line end, no NUL inside. */
struct line {
	const char *p;
	size_t len;
};

/* A signature file taken apart; tc points into the caller's text. */
struct sig_parts {
	uint8_t blob[SIG_BLOB]; /* alg | key id | sig */
	uint8_t global[SIG_BYTES];
	struct line tc;
};

/* ---------------------------------------------------------------------------
 * Text helpers.
 */

/* The next line of text[0..len) from *pos, at most `max` bytes without its
 * LF or CRLF. Returns 0, -ENODATA at the end of the text, -E2BIG when too
 * long, -EILSEQ for a NUL or a CR that does not end the line. */
static int line_next(const char *text, size_t len, size_t *pos, size_t max,
		     struct line *out)
{
	size_t start = *pos, avail, scan, end;
	const char *lf;

	if (start >= len)
		return -ENODATA;
	avail = len - start;
	scan = avail < max + 2 ? avail : max + 2; /* content, CR, LF */
	lf = memchr(text + start, '\n', scan);
	if (lf) {
		end = (size_t)(lf - text);
		*pos = end + 1;
	} else {
		if (avail > max + 1)
			return -E2BIG;
		end = len;
		*pos = len;
	}
	if (end > start && text[end - 1] == '\r')
		end--;
	if (end - start > max)
		return -E2BIG;
	if (memchr(text + start, '\r', end - start) ||
	    memchr(text + start, '\0', end - start))
		return -EILSEQ;
	out->p = text + start;
	out->len = end - start;
	return 0;
}

/* Read line `n` (1-based, for messages) called `what`; -EINVAL naming it. */
static int line_get(const char *text, size_t len, size_t *pos, size_t max,
		    int n, const char *what, struct line *out, ovc_err *e)
{
	int rc = line_next(text, len, pos, max, out);

	switch (rc) {
	case 0:
		return 0;
	case -ENODATA:
		return ovc_err_set(e, -EINVAL, "line %d (%s) is missing", n,
				   what);
	case -E2BIG:
		return ovc_err_set(e, -EINVAL,
				   "line %d (%s) is longer than %zu bytes", n,
				   what, max);
	default:
		return ovc_err_set(e, -EINVAL,
				   "line %d (%s) holds a NUL or stray CR", n,
				   what);
	}
}

static int line_has_prefix(const struct line *l, const char *prefix)
{
	size_t n = strlen(prefix);

	return l->len >= n && memcmp(l->p, prefix, n) == 0;
}

/* Decode canonical, padded, original-alphabet base64 of exactly `want`
 * bytes. Returns 0 or -EINVAL. */
static int b64_decode_exact(const struct line *l, uint8_t *out, size_t want)
{
	size_t got = 0;

	if (l->len != B64_LEN(want))
		return -EINVAL;
	/* No ignore set and no b64_end: every character must be consumed. */
	if (sodium_base642bin(out, want, l->p, l->len, NULL, &got, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    got != want)
		return -EINVAL;
	return 0;
}

/* Base64 of `bin` into `out`, which holds B64_LEN(len) + 1 bytes. */
static void b64_encode(char *out, const uint8_t *bin, size_t len)
{
	sodium_bin2base64(out, B64_LEN(len) + 1, bin, len,
			  sodium_base64_VARIANT_ORIGINAL);
}

static uint64_t key_id_num(const uint8_t *key_id)
{
	return ovc_le64_get(key_id);
}

/* ---------------------------------------------------------------------------
 * Keys.
 */

int ovc_minisign_keygen(ovc_minisign_seckey **sk, ovc_minisign_pubkey *pk)
{
	ovc_minisign_seckey *k;

	*sk = NULL;
	k = ovc_secret_alloc(sizeof(*k));
	if (!k)
		return -ENOMEM;
	randombytes_buf(k->key_id, sizeof(k->key_id));
	if (crypto_sign_keypair(pk->pk, k->sk) != 0) {
		ovc_secret_free(k);
		return -EIO;
	}
	memcpy(pk->key_id, k->key_id, sizeof(pk->key_id));
	*sk = k;
	return 0;
}

void ovc_minisign_seckey_free(ovc_minisign_seckey *sk)
{
	ovc_secret_free(sk); /* sodium_free wipes */
}

void ovc_minisign_seckey_public(const ovc_minisign_seckey *sk,
				ovc_minisign_pubkey *pk)
{
	memcpy(pk->key_id, sk->key_id, sizeof(pk->key_id));
	/* An Ed25519 secret key is seed | pk: cannot fail. */
	(void)crypto_sign_ed25519_sk_to_pk(pk->pk, sk->sk);
}

void ovc_minisign_seckey_encode(const ovc_minisign_seckey *sk, uint8_t *out)
{
	memcpy(out, sk->key_id, OVC_MINISIGN_KEYID_BYTES);
	memcpy(out + OVC_MINISIGN_KEYID_BYTES, sk->sk, sizeof(sk->sk));
}

/* Scratch for the consistency check of a decoded key. */
struct seed_check {
	uint8_t seed[crypto_sign_SEEDBYTES];
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
};

int ovc_minisign_seckey_decode(const uint8_t *in, size_t len,
			       ovc_minisign_seckey **sk, ovc_err *e)
{
	ovc_minisign_seckey *k = NULL;
	struct seed_check *c = NULL;
	int rc;

	*sk = NULL;
	if (len != OVC_MINISIGN_SECKEY_BYTES)
		return ovc_err_set(e, -EINVAL,
				   "secret key is %zu bytes, expected %d", len,
				   OVC_MINISIGN_SECKEY_BYTES);
	k = ovc_secret_alloc(sizeof(*k));
	c = ovc_secret_alloc(sizeof(*c));
	if (!k || !c) {
		rc = ovc_err_set(e, -ENOMEM, "out of secure memory");
		goto out;
	}
	memcpy(k->key_id, in, OVC_MINISIGN_KEYID_BYTES);
	memcpy(k->sk, in + OVC_MINISIGN_KEYID_BYTES, sizeof(k->sk));
	/* The public half stored in sk must be the one its seed gives, or
	 * every signature made with it would fail to verify. */
	if (crypto_sign_ed25519_sk_to_seed(c->seed, k->sk) != 0 ||
	    crypto_sign_seed_keypair(c->pk, c->sk, c->seed) != 0 ||
	    sodium_memcmp(c->sk, k->sk, sizeof(c->sk)) != 0) {
		rc = ovc_err_set(e, -EINVAL,
				 "secret key is inconsistent (public half "
				 "does not match the seed)");
		goto out;
	}
	*sk = k;
	k = NULL;
	rc = 0;
out:
	ovc_secret_free(c);
	ovc_secret_free(k);
	return rc;
}

/* ---------------------------------------------------------------------------
 * Public keys.
 */

int ovc_minisign_pubkey_parse(const char *text, size_t len,
			      ovc_minisign_pubkey *out, ovc_err *e)
{
	uint8_t blob[PUB_BLOB];
	struct line l;
	size_t pos = 0;
	int rc, n = 1;

	if (!text || len == 0)
		return ovc_err_set(e, -EINVAL, "public key is empty");
	if (len >= PREFIX_LEN(UNTRUSTED_PREFIX) &&
	    memcmp(text, UNTRUSTED_PREFIX, PREFIX_LEN(UNTRUSTED_PREFIX)) == 0) {
		rc = line_get(text, len, &pos, UNTRUSTED_LINE_MAX, n++,
			      "untrusted comment", &l, e);
		if (rc)
			return rc;
	}
	rc = line_get(text, len, &pos, PUB_B64, n, "public key", &l, e);
	if (rc)
		return rc;
	if (pos != len)
		return ovc_err_set(e, -EINVAL,
				   "unexpected data after the public key "
				   "line %d", n);
	if (b64_decode_exact(&l, blob, sizeof(blob)) != 0)
		return ovc_err_set(e, -EINVAL,
				   "public key line %d is not base64 of %d "
				   "bytes", n, PUB_BLOB);
	if (memcmp(blob, "Ed", ALG_BYTES) != 0)
		return ovc_err_set(e, -EINVAL,
				   "public key algorithm is not Ed25519 (\"Ed\")");
	memcpy(out->key_id, blob + ALG_BYTES, OVC_MINISIGN_KEYID_BYTES);
	memcpy(out->pk, blob + ALG_BYTES + OVC_MINISIGN_KEYID_BYTES,
	       sizeof(out->pk));
	return 0;
}

int ovc_minisign_pubkey_format(const ovc_minisign_pubkey *pk, char **out)
{
	uint8_t blob[PUB_BLOB];
	char b64[PUB_B64 + 1];
	char *s;
	int n;

	*out = NULL;
	memcpy(blob, "Ed", ALG_BYTES);
	memcpy(blob + ALG_BYTES, pk->key_id, OVC_MINISIGN_KEYID_BYTES);
	memcpy(blob + ALG_BYTES + OVC_MINISIGN_KEYID_BYTES, pk->pk,
	       sizeof(pk->pk));
	b64_encode(b64, blob, sizeof(blob));
	/* Stock minisign prints the key id with %PRIX64: no leading zeros. */
	n = asprintf(&s, UNTRUSTED_PREFIX "minisign public key %llX\n%s\n",
		     (unsigned long long)key_id_num(pk->key_id), b64);
	if (n < 0)
		return -ENOMEM;
	*out = s;
	return 0;
}

/* ---------------------------------------------------------------------------
 * Signing.
 */

/* BLAKE2b-512 of the message: minisign's prehash (not Ed25519ph). */
static int msg_hash(uint8_t out[HASH_BYTES], const uint8_t *msg, size_t len)
{
	static const uint8_t empty[1];

	return crypto_generichash(out, HASH_BYTES, len ? msg : empty, len,
				  NULL, 0) == 0 ? 0 : -EIO;
}

/* sig | trusted comment, the text the global signature covers; malloc()ed,
 * caller free()s. NULL when out of memory. */
static uint8_t *global_msg(const uint8_t *sig, const char *tc, size_t tc_len)
{
	uint8_t *m = malloc(SIG_BYTES + tc_len);

	if (m) {
		memcpy(m, sig, SIG_BYTES);
		memcpy(m + SIG_BYTES, tc, tc_len);
	}
	return m;
}

/* The .minisig text for a finished signature blob and global signature. */
static int sig_text_build(const uint8_t *blob, const uint8_t *global,
			  const char *tc, char **out)
{
	char b64_sig[SIG_B64 + 1], b64_global[GSIG_B64 + 1];

	b64_encode(b64_sig, blob, SIG_BLOB);
	b64_encode(b64_global, global, SIG_BYTES);
	if (asprintf(out, UNTRUSTED_PREFIX SIG_UNTRUSTED_TEXT "\n%s\n"
		     TRUSTED_PREFIX "%s\n%s\n", b64_sig, tc, b64_global) < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

int ovc_minisign_sign(const ovc_minisign_seckey *sk, const uint8_t *msg,
		      size_t len, const char *trusted_comment,
		      char **sig_text)
{
	uint8_t hash[HASH_BYTES], blob[SIG_BLOB], global[SIG_BYTES];
	uint8_t *gm = NULL;
	char stamp[40];
	size_t tc_len;
	int rc;

	*sig_text = NULL;
	if (!sk || (!msg && len))
		return -EINVAL;
	if (!trusted_comment) {
		snprintf(stamp, sizeof(stamp), "timestamp:%lld",
			 (long long)time(NULL));
		trusted_comment = stamp;
	}
	tc_len = strlen(trusted_comment);
	if (tc_len > TRUSTED_TEXT_MAX || strpbrk(trusted_comment, "\r\n"))
		return -EINVAL;

	rc = msg_hash(hash, msg, len);
	if (rc)
		goto out;
	memcpy(blob, "ED", ALG_BYTES);
	memcpy(blob + ALG_BYTES, sk->key_id, OVC_MINISIGN_KEYID_BYTES);
	if (crypto_sign_detached(blob + ALG_BYTES + OVC_MINISIGN_KEYID_BYTES,
				 NULL, hash, sizeof(hash), sk->sk) != 0) {
		rc = -EIO;
		goto out;
	}
	gm = global_msg(blob + ALG_BYTES + OVC_MINISIGN_KEYID_BYTES,
			trusted_comment, tc_len);
	if (!gm) {
		rc = -ENOMEM;
		goto out;
	}
	if (crypto_sign_detached(global, NULL, gm, SIG_BYTES + tc_len,
				 sk->sk) != 0) {
		rc = -EIO;
		goto out;
	}
	rc = sig_text_build(blob, global, trusted_comment, sig_text);
out:
	free(gm);
	return rc;
}

/* ---------------------------------------------------------------------------
 * Verification.
 */

/* Take a .minisig text apart (nothing checked but its form). -EINVAL. */
static int sig_parse(const char *text, size_t len, struct sig_parts *p,
		     ovc_err *e)
{
	struct line l;
	size_t pos = 0;
	int rc;

	if (!text || len == 0)
		return ovc_err_set(e, -EINVAL, "signature is missing or empty");
	rc = line_get(text, len, &pos, UNTRUSTED_LINE_MAX, 1,
		      "untrusted comment", &l, e);
	if (rc)
		return rc;
	if (!line_has_prefix(&l, UNTRUSTED_PREFIX))
		return ovc_err_set(e, -EINVAL, "line 1 does not start with "
				   "\"" UNTRUSTED_PREFIX "\"");
	rc = line_get(text, len, &pos, SIG_B64, 2, "signature", &l, e);
	if (rc)
		return rc;
	if (b64_decode_exact(&l, p->blob, sizeof(p->blob)) != 0)
		return ovc_err_set(e, -EINVAL, "line 2 (signature) is not "
				   "base64 of %d bytes", SIG_BLOB);
	rc = line_get(text, len, &pos, TRUSTED_LINE_MAX, 3, "trusted comment",
		      &l, e);
	if (rc)
		return rc;
	if (!line_has_prefix(&l, TRUSTED_PREFIX))
		return ovc_err_set(e, -EINVAL, "line 3 does not start with "
				   "\"" TRUSTED_PREFIX "\"");
	p->tc.p = l.p + PREFIX_LEN(TRUSTED_PREFIX);
	p->tc.len = l.len - PREFIX_LEN(TRUSTED_PREFIX);
	rc = line_get(text, len, &pos, GSIG_B64, 4, "global signature", &l, e);
	if (rc)
		return rc;
	if (b64_decode_exact(&l, p->global, sizeof(p->global)) != 0)
		return ovc_err_set(e, -EINVAL, "line 4 (global signature) is "
				   "not base64 of %d bytes", SIG_BYTES);
	if (pos != len)
		return ovc_err_set(e, -EINVAL,
				   "unexpected data after line 4");
	return 0;
}

/* The pinned key whose id the signature names (the first, should two
 * share it), or NULL. */
static const ovc_minisign_pubkey *key_pick(const ovc_minisign_pubkey *pks,
					   size_t n_pks, const uint8_t *key_id)
{
	for (size_t i = 0; i < n_pks; i++)
		if (memcmp(pks[i].key_id, key_id, OVC_MINISIGN_KEYID_BYTES) == 0)
			return &pks[i];
	return NULL;
}

/* Check the parsed signature with `pk`: the prehashed signature over the
 * message, then the global signature. 0, -EBADMSG or -ENOMEM/-EIO. */
static int sig_check(const ovc_minisign_pubkey *pk, const struct sig_parts *p,
		     const uint8_t *msg, size_t len, ovc_err *e)
{
	const uint8_t *sig = p->blob + ALG_BYTES + OVC_MINISIGN_KEYID_BYTES;
	uint8_t hash[HASH_BYTES];
	uint8_t *gm;
	int rc;

	rc = msg_hash(hash, msg, len);
	if (rc)
		return ovc_err_set(e, rc, "cannot hash the message");
	if (crypto_sign_verify_detached(sig, hash, sizeof(hash), pk->pk) != 0)
		return ovc_err_set(e, -EBADMSG, "signature verification "
				   "failed: the data or the signature was "
				   "changed");
	gm = global_msg(sig, p->tc.p, p->tc.len);
	if (!gm)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	rc = crypto_sign_verify_detached(p->global, gm, SIG_BYTES + p->tc.len,
					 pk->pk);
	free(gm);
	if (rc != 0)
		return ovc_err_set(e, -EBADMSG, "global signature verification "
				   "failed: the trusted comment was changed");
	return 0;
}

int ovc_minisign_verify(const ovc_minisign_pubkey *pks, size_t n_pks,
			const uint8_t *msg, size_t len, const char *sig_text,
			size_t sig_len, char **trusted_comment, ovc_err *e)
{
	const ovc_minisign_pubkey *pk;
	struct sig_parts p;
	char *tc;
	int rc;

	if (trusted_comment)
		*trusted_comment = NULL;
	if ((!pks && n_pks) || (!msg && len))
		return ovc_err_set(e, -EINVAL, "invalid arguments");
	rc = sig_parse(sig_text, sig_len, &p, e);
	if (rc)
		return rc;
	if (memcmp(p.blob, "Ed", ALG_BYTES) == 0)
		return ovc_err_set(e, -EINVAL, "legacy (non-prehashed \"Ed\") "
				   "signatures are refused; sign with a "
				   "current minisign");
	if (memcmp(p.blob, "ED", ALG_BYTES) != 0)
		return ovc_err_set(e, -EINVAL, "unknown signature algorithm");
	pk = key_pick(pks, n_pks, p.blob + ALG_BYTES);
	if (!pk)
		return ovc_err_set(e, -ENOKEY, "signed by key %llX, which is "
				   "not a pinned key",
				   (unsigned long long)key_id_num(p.blob +
								  ALG_BYTES));
	rc = sig_check(pk, &p, msg, len, e);
	if (rc || !trusted_comment)
		return rc;
	tc = malloc(p.tc.len + 1);
	if (!tc)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	memcpy(tc, p.tc.p, p.tc.len);
	tc[p.tc.len] = '\0';
	*trusted_comment = tc;
	return 0;
}

int ovc_minisign_pubkey_load(const char *path, ovc_minisign_pubkey *out,
			     ovc_err *e)
{
	uint8_t *buf = NULL;
	size_t len;
	int rc = ovc_read_file(path, 1u << 16, 0, &buf, &len);

	if (rc)
		return ovc_err_set(e, rc, "%s: %s", path, strerror(-rc));
	rc = ovc_minisign_pubkey_parse((const char *)buf, len, out, e);
	free(buf);
	if (rc)
		return ovc_err_wrap(e, rc, "%s: ", path);
	return 0;
}
