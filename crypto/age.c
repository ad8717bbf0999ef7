/* age.c - the age v1 header, its X25519 and scrypt stanzas, the header MAC
 * and the STREAM payload; see age.h. Armor is in age_armor.c, keys in
 * age_key.c, HKDF in hkdf.c, bech32 in bech32.c.
 *
 * The whole file is in memory: the header is parsed completely (every
 * stanza, the MAC line) before any key is tried, so a class of failure is
 * decided in the order the test vectors expect: armor, header, no match,
 * header MAC, payload. */
#define _GNU_SOURCE
#include "crypto/age.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERSION_PREFIX "age-encryption.org/"
#define VERSION_LINE "age-encryption.org/v1"
#define ARMOR_BEGIN "-----BEGIN AGE ENCRYPTED FILE-----"
#define X25519_INFO "age-encryption.org/v1/X25519"
#define SCRYPT_LABEL "age-encryption.org/v1/scrypt"
#define FILE_KEY_LEN 16
#define TAG_LEN crypto_aead_chacha20poly1305_ietf_ABYTES
#define WRAPPED_LEN (FILE_KEY_LEN + TAG_LEN)
#define BODY_COLS 64
#define NONCE_LEN 16     /* payload nonce */
#define CHUNK_LEN 65536  /* payload plaintext per chunk */
#define MAX_ARGS 4       /* arguments kept per stanza; more are counted */
#define SCRYPT_SALT_LEN 16
#define SCRYPT_LOGN_LIMIT 40 /* no reader limit may exceed this (1 TiB) */

_Static_assert(TAG_LEN == 16, "ChaCha20-Poly1305 tag");
_Static_assert(WRAPPED_LEN == 32, "wrapped file key");
_Static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12, "nonce");

enum stanza_kind { ST_OTHER, ST_X25519, ST_SCRYPT };

struct stanza {
	const char *arg[MAX_ARGS]; /* borrowed from the input, no NUL */
	size_t arg_len[MAX_ARGS];
	size_t n_args;             /* all of them, the type included */
	uint8_t *body;             /* malloc()ed; NULL when empty */
	size_t body_len;
	enum stanza_kind kind;
	uint8_t share[32];         /* X25519 ephemeral share */
	uint8_t salt[SCRYPT_SALT_LEN];
	int log_n;                 /* scrypt work factor */
};

struct header {
	struct stanza *st;
	size_t n, cap;
	size_t mac_end;  /* the MAC covers in[0, mac_end): through "---" */
	uint8_t mac[32];
	size_t len;      /* the payload starts here */
};

/* Every secret of one operation, in one sodium_malloc allocation. */
struct secrets {
	uint8_t file_key[FILE_KEY_LEN];
	uint8_t wrap_key[32];
	uint8_t shared[32];
	uint8_t eph[32];
	uint8_t mac_key[32];
	uint8_t payload_key[32];
};

static const uint8_t zero_nonce[12];

/* ------------------------------------------------------------------------
 * Small helpers.
 */

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* Length of the LF-terminated line at pos (LF excluded), or -1 when the
 * input ends first. */
static int line_at(const uint8_t *in, size_t len, size_t pos, size_t *n)
{
	const uint8_t *nl = memchr(in + pos, '\n', len - pos);

	if (!nl)
		return -1;
	*n = (size_t)(nl - (in + pos));
	return 0;
}

/* Canonical unpadded base64: exactly `want` bytes when `got` is NULL, else
 * up to `want`. libsodium refuses padding, stray characters and non-zero
 * trailing bits. */
static int b64_decode(const char *s, size_t n, uint8_t *out, size_t want,
		      size_t *got)
{
	size_t g = 0;

	if (sodium_base642bin(out, want, s, n, NULL, &g, NULL,
			      sodium_base64_VARIANT_ORIGINAL_NO_PADDING))
		return -1;
	if (got)
		*got = g;
	else if (g != want)
		return -1;
	return 0;
}

static int mem_is(const char *p, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(p, s, n) == 0;
}

static void header_release(struct header *h)
{
	for (size_t i = 0; i < h->n; i++)
		free(h->st[i].body);
	free(h->st);
	memset(h, 0, sizeof(*h));
}

/* ------------------------------------------------------------------------
 * Header parsing: grammar first (parse_*), then the known stanza types
 * (check_*). Every error here is a header failure (-EINVAL).
 */

static int parse_version(const uint8_t *in, size_t len, size_t *pos,
			 ovc_err *e)
{
	size_t n;

	if (line_at(in, len, 0, &n) || n < strlen(VERSION_PREFIX) ||
	    memcmp(in, VERSION_PREFIX, strlen(VERSION_PREFIX)) != 0)
		return ovc_err_set(e, -EINVAL,
				   "not an age file (no age-encryption.org/ line)");
	if (!mem_is((const char *)in, n, VERSION_LINE))
		return ovc_err_set(e, -EINVAL,
				   "unsupported age format version");
	*pos = n + 1;
	return 0;
}

/* "-> arg *(SP arg)": arguments of VCHAR (0x21-0x7e), single spaces. */
static int parse_args(const char *p, size_t n, struct stanza *st, ovc_err *e)
{
	size_t i = 0;

	if (n == 0)
		return ovc_err_set(e, -EINVAL, "stanza without arguments");
	while (i <= n) {
		size_t s = i;

		while (i < n && p[i] != ' ') {
			if (p[i] < 0x21 || p[i] > 0x7e)
				return ovc_err_set(e, -EINVAL,
						   "invalid character in a stanza argument");
			i++;
		}
		if (i == s)
			return ovc_err_set(e, -EINVAL, "empty stanza argument");
		if (st->n_args < MAX_ARGS) {
			st->arg[st->n_args] = p + s;
			st->arg_len[st->n_args] = i - s;
		}
		st->n_args++;
		i++; /* the space, or past the end */
	}
	return 0;
}

/* Body lines: 64 columns each, ended by one shorter line (maybe empty). */
static int parse_body(const uint8_t *in, size_t len, size_t *pos,
		      struct stanza *st, ovc_err *e)
{
	size_t p = *pos, chars = 0, cap, end, n;

	/* First the extent, to allocate once. */
	do {
		if (line_at(in, len, p, &n))
			return ovc_err_set(e, -EINVAL,
					   "header ends inside a stanza body");
		if (n > BODY_COLS)
			return ovc_err_set(e, -EINVAL,
					   "stanza body line longer than %d columns",
					   BODY_COLS);
		chars += n;
		p += n + 1;
	} while (n == BODY_COLS);
	end = p;
	cap = chars / 4 * 3 + 3;
	if (chars && !(st->body = malloc(cap)))
		return ovc_err_set(e, -ENOMEM, "out of memory");
	for (p = *pos; p < end && chars; p += n + 1) {
		size_t got;

		line_at(in, len, p, &n);
		if (b64_decode((const char *)in + p, n, st->body + st->body_len,
			       cap - st->body_len, &got))
			return ovc_err_set(e, -EINVAL,
					   "stanza body is not canonical base64");
		st->body_len += got;
	}
	*pos = end;
	return 0;
}

/* The stanza whose "-> " line of `n` bytes starts at *pos. */
static int parse_stanza(const uint8_t *in, size_t len, size_t *pos, size_t n,
			struct header *h, ovc_err *e)
{
	struct stanza *st;
	int rc;

	if (h->n == h->cap) {
		size_t ncap = h->cap ? h->cap * 2 : 4;
		struct stanza *ns = realloc(h->st, ncap * sizeof(*ns));

		if (!ns)
			return ovc_err_set(e, -ENOMEM, "out of memory");
		h->st = ns;
		h->cap = ncap;
	}
	st = &h->st[h->n++];
	memset(st, 0, sizeof(*st));
	rc = parse_args((const char *)in + *pos + 3, n - 3, st, e);
	if (rc)
		return rc;
	*pos += n + 1;
	return parse_body(in, len, pos, st, e);
}

/* "--- " and 43 base64 characters: the MAC. */
static int parse_mac(const uint8_t *in, size_t len, size_t pos,
		     struct header *h, ovc_err *e)
{
	size_t n;

	if (line_at(in, len, pos, &n) || n != 4 + 43 ||
	    memcmp(in + pos, "--- ", 4) != 0 ||
	    b64_decode((const char *)in + pos + 4, 43, h->mac, sizeof(h->mac),
		       NULL))
		return ovc_err_set(e, -EINVAL, "invalid header MAC line");
	h->mac_end = pos + 3;
	h->len = pos + n + 1;
	return 0;
}

static int parse_header(const uint8_t *in, size_t len, struct header *h,
			ovc_err *e)
{
	size_t pos;
	int rc = parse_version(in, len, &pos, e);

	while (!rc) {
		size_t n = 0;

		if (len - pos >= 3 && memcmp(in + pos, "---", 3) == 0) {
			if (h->n == 0)
				return ovc_err_set(e, -EINVAL,
						   "header has no recipient stanza");
			return parse_mac(in, len, pos, h, e);
		}
		if (len - pos < 3 || memcmp(in + pos, "-> ", 3) != 0 ||
		    line_at(in, len, pos, &n))
			return ovc_err_set(e, -EINVAL, "invalid header line");
		rc = parse_stanza(in, len, &pos, n, h, e);
	}
	return rc;
}

static int check_x25519(struct stanza *st, ovc_err *e)
{
	if (st->n_args != 2 || st->arg_len[1] != 43 ||
	    b64_decode(st->arg[1], 43, st->share, sizeof(st->share), NULL))
		return ovc_err_set(e, -EINVAL, "malformed X25519 stanza");
	if (st->body_len != WRAPPED_LEN)
		return ovc_err_set(e, -EINVAL,
				   "X25519 stanza body is not %d bytes",
				   WRAPPED_LEN);
	st->kind = ST_X25519;
	return 0;
}

/* ^[1-9][0-9]*$ and at most `max`. */
static int check_log_n(const char *p, size_t n, int max, int *out, ovc_err *e)
{
	int v = 0;

	if (n == 0 || p[0] < '1' || p[0] > '9')
		return ovc_err_set(e, -EINVAL,
				   "scrypt work factor is not a canonical decimal");
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return ovc_err_set(e, -EINVAL,
					   "scrypt work factor is not a canonical decimal");
		if (v <= SCRYPT_LOGN_LIMIT)
			v = v * 10 + (p[i] - '0');
	}
	if (v > SCRYPT_LOGN_LIMIT)
		return ovc_err_set(e, -EINVAL,
				   "scrypt work factor is far above the limit 2^%d",
				   max);
	if (v > max)
		return ovc_err_set(e, -EINVAL,
				   "scrypt work factor 2^%d is above the limit 2^%d: refusing that much work",
				   v, max);
	*out = v;
	return 0;
}

static int check_scrypt(struct stanza *st, int max_log_n, ovc_err *e)
{
	int rc;

	if (st->n_args != 3 || st->arg_len[1] != 22 ||
	    b64_decode(st->arg[1], 22, st->salt, sizeof(st->salt), NULL))
		return ovc_err_set(e, -EINVAL, "malformed scrypt stanza");
	rc = check_log_n(st->arg[2], st->arg_len[2], max_log_n, &st->log_n, e);
	if (rc)
		return rc;
	if (st->body_len != WRAPPED_LEN)
		return ovc_err_set(e, -EINVAL,
				   "scrypt stanza body is not %d bytes",
				   WRAPPED_LEN);
	st->kind = ST_SCRYPT;
	return 0;
}

static int check_stanzas(struct header *h, int max_log_n, ovc_err *e)
{
	for (size_t i = 0; i < h->n; i++) {
		struct stanza *st = &h->st[i];
		int rc = 0;

		if (mem_is(st->arg[0], st->arg_len[0], "X25519"))
			rc = check_x25519(st, e);
		else if (mem_is(st->arg[0], st->arg_len[0], "scrypt"))
			rc = check_scrypt(st, max_log_n, e);
		if (rc)
			return rc;
		if (st->kind == ST_SCRYPT && h->n != 1)
			return ovc_err_set(e, -EINVAL,
					   "an scrypt stanza must be the only stanza");
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Unwrapping the file key. Each returns 1 (file key found), 0 (not this
 * one) or a negative code.
 */

static int open_file_key(const struct stanza *st, struct secrets *k)
{
	unsigned long long n;

	return crypto_aead_chacha20poly1305_ietf_decrypt(
		       k->file_key, &n, NULL, st->body, st->body_len, NULL, 0,
		       zero_nonce, k->wrap_key) == 0 &&
	       n == FILE_KEY_LEN;
}

static int unwrap_x25519(const struct stanza *st, const ovc_age_identity *id,
			 struct secrets *k, ovc_err *e)
{
	ovc_age_recipient me;
	uint8_t salt[64];

	if (ovc_age_identity_dh(id, st->share, k->shared))
		return ovc_err_set(e, -EINVAL,
				   "X25519 stanza: the share is a low-order point");
	ovc_age_identity_recipient(id, &me);
	memcpy(salt, st->share, 32);
	memcpy(salt + 32, me.pk, 32);
	ovc_hkdf_sha256(k->wrap_key, sizeof(k->wrap_key), salt, sizeof(salt),
			k->shared, sizeof(k->shared),
			(const uint8_t *)X25519_INFO, strlen(X25519_INFO));
	return open_file_key(st, k);
}

/* scrypt(N = 2^log_n, r = 8, p = 1) into k->wrap_key. */
static int scrypt_key(const char *pass, const uint8_t salt[SCRYPT_SALT_LEN],
		      int log_n, struct secrets *k, ovc_err *e)
{
	uint8_t full[sizeof(SCRYPT_LABEL) - 1 + SCRYPT_SALT_LEN];

	memcpy(full, SCRYPT_LABEL, sizeof(SCRYPT_LABEL) - 1);
	memcpy(full + sizeof(SCRYPT_LABEL) - 1, salt, SCRYPT_SALT_LEN);
	errno = 0;
	if (crypto_pwhash_scryptsalsa208sha256_ll(
		    (const uint8_t *)pass, strlen(pass), full, sizeof(full),
		    (uint64_t)1 << log_n, 8, 1, k->wrap_key,
		    sizeof(k->wrap_key)) != 0) {
		/* EFBIG: libsodium's own size limit (N >= 2^32). */
		if (errno == ENOMEM || errno == EFBIG)
			return ovc_err_set(e, -ENOMEM,
					   "scrypt work factor 2^%d needs %llu KiB of memory, which could not be allocated",
					   log_n, 1ULL << log_n);
		return ovc_err_set(e, -EINVAL,
				   "scrypt refused work factor 2^%d", log_n);
	}
	return 0;
}

static int unwrap_scrypt(const struct stanza *st, const char *pass,
			 struct secrets *k, ovc_err *e)
{
	int rc = scrypt_key(pass, st->salt, st->log_n, k, e);

	return rc ? rc : open_file_key(st, k);
}

static int find_file_key(const ovc_age_decrypt_opts *o, const struct header *h,
			 struct secrets *k, ovc_err *e)
{
	for (size_t i = 0; i < h->n; i++) {
		const struct stanza *st = &h->st[i];
		int rc = 0;

		for (size_t j = 0; st->kind == ST_X25519 && !rc &&
				   j < o->n_identities; j++)
			if (o->identities[j])
				rc = unwrap_x25519(st, o->identities[j], k, e);
		for (size_t j = 0; st->kind == ST_SCRYPT && !rc &&
				   j < o->n_passphrases; j++)
			if (o->passphrases[j])
				rc = unwrap_scrypt(st, o->passphrases[j], k, e);
		if (rc)
			return rc;
	}
	return 0;
}

/* HMAC-SHA-256 over the header through "---", keyed by
 * HKDF(file key, no salt, "header"). */
static void header_mac(const uint8_t *hdr, size_t len, struct secrets *k,
		       uint8_t mac[32])
{
	crypto_auth_hmacsha256_state st;

	ovc_hkdf_sha256(k->mac_key, sizeof(k->mac_key), NULL, 0, k->file_key,
			FILE_KEY_LEN, (const uint8_t *)"header", 6);
	crypto_auth_hmacsha256_init(&st, k->mac_key, sizeof(k->mac_key));
	crypto_auth_hmacsha256_update(&st, hdr, len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
}

static void payload_key(const uint8_t nonce[NONCE_LEN], struct secrets *k)
{
	ovc_hkdf_sha256(k->payload_key, sizeof(k->payload_key), nonce,
			NONCE_LEN, k->file_key, FILE_KEY_LEN,
			(const uint8_t *)"payload", 7);
}

/* ------------------------------------------------------------------------
 * STREAM: 64 KiB chunks, nonce = 11-byte big-endian counter | last flag.
 */

static void stream_nonce(uint8_t n[12], uint64_t counter, int last)
{
	memset(n, 0, 12);
	for (int i = 0; i < 8; i++)
		n[10 - i] = (uint8_t)(counter >> (8 * i));
	n[11] = last ? 1 : 0;
}

static int chunk_open(const uint8_t *key, uint64_t counter, int last,
		      const uint8_t *c, size_t clen, uint8_t *out)
{
	uint8_t nonce[12];

	stream_nonce(nonce, counter, last);
	return crypto_aead_chacha20poly1305_ietf_decrypt(
		out, NULL, NULL, c, clen, NULL, 0, nonce, key);
}

/* One chunk at `c` of `rem` remaining bytes: *used and *last tell what it
 * was. A full chunk may be the last one (tried second, as age does). */
static int chunk_next(const uint8_t *key, uint64_t counter, const uint8_t *c,
		      size_t rem, uint8_t *out, size_t *used, int *last,
		      ovc_err *e)
{
	if (rem == 0)
		return ovc_err_set(e, -EBADMSG, counter ?
				   "payload truncated: no final chunk" :
				   "payload has no chunk");
	if (rem < CHUNK_LEN + TAG_LEN) {
		*used = rem;
		*last = 1;
		if (rem < TAG_LEN)
			return ovc_err_set(e, -EBADMSG,
					   "payload chunk %llu is truncated",
					   (unsigned long long)counter);
		if (rem == TAG_LEN && counter > 0)
			return ovc_err_set(e, -EBADMSG,
					   "payload's final chunk is empty");
		if (chunk_open(key, counter, 1, c, rem, out))
			goto bad;
		return 0;
	}
	*used = CHUNK_LEN + TAG_LEN;
	*last = 0;
	if (!chunk_open(key, counter, 0, c, *used, out))
		return 0;
	*last = 1;
	if (!chunk_open(key, counter, 1, c, *used, out))
		return 0;
bad:
	return ovc_err_set(e, -EBADMSG,
			   "payload chunk %llu fails to authenticate",
			   (unsigned long long)counter);
}

static int payload_decrypt(const uint8_t *key, const uint8_t *p, size_t len,
			   ovc_age_sink sink, void *ctx,
			   enum ovc_age_status *status, ovc_err *e)
{
	uint8_t *buf = ovc_wipe_malloc(CHUNK_LEN);
	uint64_t counter = 0;
	size_t pos = 0;
	int rc = 0, last = 0;

	if (!buf)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	while (!last) {
		size_t used = 0;

		rc = chunk_next(key, counter, p + pos, len - pos, buf, &used,
				&last, e);
		if (rc) {
			*status = OVC_AGE_PAYLOAD;
			break;
		}
		if (sink && used > TAG_LEN) {
			rc = sink(ctx, buf, used - TAG_LEN);
			if (rc)
				break;
		}
		pos += used;
		counter++;
		if (last && pos != len) {
			*status = OVC_AGE_PAYLOAD;
			rc = ovc_err_set(e, -EBADMSG,
					 "data after the payload's final chunk");
		}
	}
	ovc_wipe_free(buf);
	return rc;
}

/* ------------------------------------------------------------------------
 * Decryption.
 */

static int decrypt_binary(const ovc_age_decrypt_opts *o, int max_log_n,
			  const uint8_t *in, size_t len, ovc_age_sink sink,
			  void *ctx, enum ovc_age_status *status, ovc_err *e)
{
	struct header h = { 0 };
	struct secrets *k = NULL;
	uint8_t mac[32];
	int rc;

	rc = parse_header(in, len, &h, e);
	if (!rc)
		rc = check_stanzas(&h, max_log_n, e);
	if (rc) {
		if (rc == -EINVAL)
			*status = OVC_AGE_HEADER;
		goto out;
	}
	k = ovc_secret_alloc(sizeof(*k));
	if (!k) {
		rc = ovc_err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	rc = find_file_key(o, &h, k, e);
	if (rc <= 0) {
		if (rc == -EINVAL)
			*status = OVC_AGE_HEADER;
		if (rc == 0) {
			*status = OVC_AGE_NO_MATCH;
			rc = ovc_err_set(e, -ENOKEY,
					 "no identity or passphrase matches");
		}
		goto out;
	}
	header_mac(in, h.mac_end, k, mac);
	if (crypto_verify_32(mac, h.mac) != 0) {
		*status = OVC_AGE_HMAC;
		rc = ovc_err_set(e, -EBADMSG,
				 "header MAC is wrong: the file was altered");
		goto out;
	}
	if (len - h.len < NONCE_LEN) {
		*status = OVC_AGE_HEADER;
		rc = ovc_err_set(e, -EINVAL, "payload nonce is missing");
		goto out;
	}
	payload_key(in + h.len, k);
	rc = payload_decrypt(k->payload_key, in + h.len + NONCE_LEN,
			     len - h.len - NONCE_LEN, sink, ctx, status, e);
out:
	header_release(&h);
	ovc_secret_free(k);
	return rc;
}

/* Binary when it starts like a binary header. Armored when, after
 * whitespace, it starts like a PEM line ("-----", whatever the label), or
 * the BEGIN marker appears early: a damaged armor is an armor failure, not
 * "not an age file". */
static int is_armored(const uint8_t *in, size_t len)
{
	size_t pfx = strlen(VERSION_PREFIX), pos = 0;

	if (len >= pfx && memcmp(in, VERSION_PREFIX, pfx) == 0)
		return 0;
	while (pos < len && (in[pos] == ' ' || in[pos] == '\t' ||
			     in[pos] == '\r' || in[pos] == '\n'))
		pos++;
	if (len - pos >= 5 && memcmp(in + pos, "-----", 5) == 0)
		return 1;
	return memmem(in, min_size(len, 1024), ARMOR_BEGIN,
		      strlen(ARMOR_BEGIN)) != NULL;
}

static int decrypt_opts_check(const ovc_age_decrypt_opts *o, int *max_log_n,
			      ovc_err *e)
{
	if (!o || (!o->identities && o->n_identities) ||
	    (!o->passphrases && o->n_passphrases))
		return ovc_err_set(e, -EINVAL, "invalid decryption options");
	*max_log_n = o->max_scrypt_log_n ? o->max_scrypt_log_n :
					   OVC_AGE_SCRYPT_LOGN_MAX;
	if (*max_log_n < 1 || *max_log_n > SCRYPT_LOGN_LIMIT)
		return ovc_err_set(e, -EINVAL,
				   "scrypt limit must be between 1 and %d",
				   SCRYPT_LOGN_LIMIT);
	return 0;
}

int ovc_age_decrypt(const ovc_age_decrypt_opts *o, const uint8_t *in,
		    size_t len, ovc_age_sink sink, void *ctx,
		    enum ovc_age_status *status, ovc_err *e)
{
	enum ovc_age_status dummy;
	uint8_t *bin = NULL;
	size_t bin_len = 0;
	int max_log_n = 0, rc;

	if (!status)
		status = &dummy;
	*status = OVC_AGE_OK;
	ovc_err_clear(e);
	if (!in && len)
		return ovc_err_set(e, -EINVAL, "no input");
	rc = decrypt_opts_check(o, &max_log_n, e);
	if (rc)
		return rc;
	if (!is_armored(in, len))
		return decrypt_binary(o, max_log_n, in, len, sink, ctx, status,
				      e);
	rc = ovc_age_armor_decode(in, len, &bin, &bin_len, e);
	if (rc) {
		if (rc == -EILSEQ)
			*status = OVC_AGE_ARMOR;
		return rc;
	}
	rc = decrypt_binary(o, max_log_n, bin, bin_len, sink, ctx, status, e);
	free(bin);
	return rc;
}

struct collect {
	uint8_t *p; /* ovc_wipe_malloc()ed */
	size_t len, cap, max;
};

static int collect_sink(void *ctx, const uint8_t *data, size_t len)
{
	struct collect *c = ctx;

	if (len > c->max - c->len)
		return -EFBIG;
	if (c->len + len + 1 > c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 4096;
		uint8_t *np;

		if (ncap < c->len + len + 1)
			ncap = c->len + len + 1;
		if (ncap > c->max + 1)
			ncap = c->max + 1;
		np = ovc_wipe_malloc(ncap);
		if (!np)
			return -ENOMEM;
		if (c->len)
			memcpy(np, c->p, c->len);
		ovc_wipe_free(c->p);
		c->p = np;
		c->cap = ncap;
	}
	memcpy(c->p + c->len, data, len);
	c->len += len;
	return 0;
}

int ovc_age_decrypt_buf(const ovc_age_decrypt_opts *o, const uint8_t *in,
			size_t len, size_t max, uint8_t **out, size_t *out_len,
			enum ovc_age_status *status, ovc_err *e)
{
	struct collect c = { .max = max < SIZE_MAX ? max : SIZE_MAX - 1 };
	int rc;

	*out = NULL;
	*out_len = 0;
	rc = ovc_age_decrypt(o, in, len, collect_sink, &c, status, e);
	if (rc == -EFBIG)
		ovc_err_set(e, rc, "plaintext is larger than %zu bytes", max);
	else if (rc == -ENOMEM && e && !e->msg[0])
		ovc_err_set(e, rc, "out of memory");
	if (!rc && !c.p && !(c.p = ovc_wipe_malloc(1)))
		rc = ovc_err_set(e, -ENOMEM, "out of memory");
	if (rc) {
		ovc_wipe_free(c.p);
		return rc;
	}
	c.p[c.len] = '\0';
	*out = c.p;
	*out_len = c.len;
	return 0;
}

int ovc_age_is_age(const uint8_t *in, size_t len)
{
	size_t pfx = strlen(VERSION_PREFIX);

	if (!in)
		return 0;
	if (len >= pfx && memcmp(in, VERSION_PREFIX, pfx) == 0)
		return 1;
	return ovc_age_armor_looks(in, len);
}

/* ------------------------------------------------------------------------
 * Encryption.
 */

struct buf {
	uint8_t *p; /* malloc()ed; ciphertext only */
	size_t len, cap;
};

static int buf_reserve(struct buf *b, size_t n)
{
	size_t ncap;
	uint8_t *np;

	if (n <= b->cap - b->len)
		return 0;
	if (n > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	ncap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n + 256;
	np = realloc(b->p, ncap);
	if (!np)
		return -ENOMEM;
	b->p = np;
	b->cap = ncap;
	return 0;
}

static int buf_put(struct buf *b, const void *d, size_t n)
{
	if (buf_reserve(b, n))
		return -ENOMEM;
	memcpy(b->p + b->len, d, n);
	b->len += n;
	return 0;
}

static int buf_puts(struct buf *b, const char *s)
{
	return buf_put(b, s, strlen(s));
}

/* Canonical unpadded base64 of `n` bytes. */
static int buf_b64(struct buf *b, const uint8_t *d, size_t n)
{
	size_t enc = sodium_base64_ENCODED_LEN(
		n, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);

	if (buf_reserve(b, enc))
		return -ENOMEM;
	sodium_bin2base64((char *)b->p + b->len, enc, d, n,
			  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	b->len += enc - 1;
	return 0;
}

/* "-> args", then the body at 64 columns with a final short line. */
static int put_stanza(struct buf *b, const char *args, const uint8_t *body,
		      size_t n)
{
	struct buf t = { 0 };
	size_t off = 0;
	int rc;

	rc = buf_b64(&t, body, n);
	if (!rc)
		rc = buf_puts(b, "-> ") ?: buf_puts(b, args) ?: buf_puts(b, "\n");
	for (; !rc && t.len - off >= BODY_COLS; off += BODY_COLS)
		rc = buf_put(b, t.p + off, BODY_COLS) ?: buf_puts(b, "\n");
	if (!rc)
		rc = buf_put(b, t.p + off, t.len - off) ?: buf_puts(b, "\n");
	free(t.p);
	return rc;
}

static void seal_file_key(const struct secrets *k, uint8_t body[WRAPPED_LEN])
{
	crypto_aead_chacha20poly1305_ietf_encrypt(body, NULL, k->file_key,
						  FILE_KEY_LEN, NULL, 0, NULL,
						  zero_nonce, k->wrap_key);
}

static int put_x25519(struct buf *b, const ovc_age_recipient *r,
		      struct secrets *k, ovc_err *e)
{
	uint8_t share[32], salt[64], body[WRAPPED_LEN];
	char share64[48], args[64];

	randombytes_buf(k->eph, sizeof(k->eph));
	crypto_scalarmult_curve25519_base(share, k->eph);
	if (crypto_scalarmult_curve25519(k->shared, k->eph, r->pk) != 0 ||
	    sodium_is_zero(k->shared, sizeof(k->shared)))
		return ovc_err_set(e, -EINVAL,
				   "recipient is not a usable X25519 key (low order)");
	memcpy(salt, share, 32);
	memcpy(salt + 32, r->pk, 32);
	ovc_hkdf_sha256(k->wrap_key, sizeof(k->wrap_key), salt, sizeof(salt),
			k->shared, sizeof(k->shared),
			(const uint8_t *)X25519_INFO, strlen(X25519_INFO));
	seal_file_key(k, body);
	sodium_bin2base64(share64, sizeof(share64), share, sizeof(share),
			  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	snprintf(args, sizeof(args), "X25519 %s", share64);
	if (put_stanza(b, args, body, sizeof(body)))
		return ovc_err_set(e, -ENOMEM, "out of memory");
	return 0;
}

static int put_scrypt(struct buf *b, const char *pass, int log_n,
		      struct secrets *k, ovc_err *e)
{
	uint8_t salt[SCRYPT_SALT_LEN], body[WRAPPED_LEN];
	char salt64[32], args[64];
	int rc;

	randombytes_buf(salt, sizeof(salt));
	rc = scrypt_key(pass, salt, log_n, k, e);
	if (rc)
		return rc;
	seal_file_key(k, body);
	sodium_bin2base64(salt64, sizeof(salt64), salt, sizeof(salt),
			  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	snprintf(args, sizeof(args), "scrypt %s %d", salt64, log_n);
	if (put_stanza(b, args, body, sizeof(body)))
		return ovc_err_set(e, -ENOMEM, "out of memory");
	return 0;
}

static int put_mac(struct buf *b, struct secrets *k, ovc_err *e)
{
	uint8_t mac[32];

	if (buf_puts(b, "---"))
		return ovc_err_set(e, -ENOMEM, "out of memory");
	header_mac(b->p, b->len, k, mac);
	if (buf_puts(b, " ") || buf_b64(b, mac, sizeof(mac)) ||
	    buf_puts(b, "\n"))
		return ovc_err_set(e, -ENOMEM, "out of memory");
	return 0;
}

static int put_payload(struct buf *b, const uint8_t *plain, size_t len,
		       struct secrets *k, ovc_err *e)
{
	static const uint8_t empty[1];
	size_t chunks = len ? (len - 1) / CHUNK_LEN + 1 : 1;
	uint8_t *out;

	if (len > SIZE_MAX / 2 || buf_reserve(b, NONCE_LEN + len +
						     chunks * TAG_LEN))
		return ovc_err_set(e, -ENOMEM, "out of memory");
	out = b->p + b->len;
	randombytes_buf(out, NONCE_LEN);
	payload_key(out, k);
	out += NONCE_LEN;
	for (size_t i = 0; i < chunks; i++) {
		size_t off = i * CHUNK_LEN, n = min_size(len - off, CHUNK_LEN);
		uint8_t nonce[12];

		stream_nonce(nonce, i, i + 1 == chunks);
		crypto_aead_chacha20poly1305_ietf_encrypt(
			out, NULL, len ? plain + off : empty, n, NULL, 0, NULL,
			nonce, k->payload_key);
		out += n + TAG_LEN;
	}
	b->len += NONCE_LEN + len + chunks * TAG_LEN;
	return 0;
}

static int encrypt_opts_check(const ovc_age_encrypt_opts *o,
			      const uint8_t *plain, size_t len, ovc_err *e)
{
	if (!o || (!plain && len))
		return ovc_err_set(e, -EINVAL, "invalid encryption options");
	if (o->passphrase && o->n_recipients)
		return ovc_err_set(e, -EINVAL,
				   "a passphrase cannot be mixed with recipients");
	if (!o->passphrase && (!o->n_recipients || !o->recipients))
		return ovc_err_set(e, -EINVAL, "no recipient and no passphrase");
	if (o->passphrase && !o->passphrase[0])
		return ovc_err_set(e, -EINVAL, "empty passphrase");
	if (o->passphrase && (o->scrypt_log_n < 1 ||
			      o->scrypt_log_n > OVC_AGE_SCRYPT_LOGN_MAX))
		return ovc_err_set(e, -EINVAL,
				   "scrypt work factor must be between 1 and %d",
				   OVC_AGE_SCRYPT_LOGN_MAX);
	return 0;
}

static int encrypt_binary(const ovc_age_encrypt_opts *o, const uint8_t *plain,
			  size_t len, struct buf *b, struct secrets *k,
			  ovc_err *e)
{
	int rc = 0;

	randombytes_buf(k->file_key, sizeof(k->file_key));
	if (buf_puts(b, VERSION_LINE "\n"))
		return ovc_err_set(e, -ENOMEM, "out of memory");
	if (o->passphrase)
		rc = put_scrypt(b, o->passphrase, o->scrypt_log_n, k, e);
	for (size_t i = 0; !rc && !o->passphrase && i < o->n_recipients; i++)
		rc = put_x25519(b, &o->recipients[i], k, e);
	if (!rc)
		rc = put_mac(b, k, e);
	if (!rc)
		rc = put_payload(b, plain, len, k, e);
	return rc;
}

int ovc_age_encrypt(const ovc_age_encrypt_opts *o, const uint8_t *plain,
		    size_t len, uint8_t **out, size_t *out_len, ovc_err *e)
{
	struct buf b = { 0 };
	struct secrets *k = NULL;
	int rc;

	*out = NULL;
	*out_len = 0;
	rc = encrypt_opts_check(o, plain, len, e);
	if (rc)
		return rc;
	k = ovc_secret_alloc(sizeof(*k));
	if (!k)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	rc = encrypt_binary(o, plain, len, &b, k, e);
	if (rc)
		goto out;
	if (!o->armor) {
		*out = b.p;
		*out_len = b.len;
		b.p = NULL;
	} else if (ovc_age_armor_encode(b.p, b.len, out, out_len)) {
		rc = ovc_err_set(e, -ENOMEM, "out of memory");
	}
out:
	free(b.p);
	ovc_secret_free(k);
	return rc;
}
