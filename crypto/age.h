/*
 * age.h - the age v1 file format (age-encryption.org/v1).
 *
 * X25519 recipients and scrypt passphrase recipients, binary and ASCII
 * armor, the bech32 `age1…` / `AGE-SECRET-KEY-1…` encodings. It is what keys
 * travel in: policies' keys blobs, key exports, the admin key file, the user
 * keystore. Held to the community test vectors (tests/vectors/age-testkit).
 *
 * Thread-safety: every function is reentrant; objects are not shared.
 * All functions need ovc_common_init() (sodium_init) to have run.
 */
#ifndef OVC_AGE_H
#define OVC_AGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#define OVC_AGE_RECIPIENT_STRLEN 62  /* "age1" + 58: no NUL counted */
#define OVC_AGE_IDENTITY_STRLEN 74   /* "AGE-SECRET-KEY-1" + 58 */
#define OVC_AGE_SCRYPT_LOGN_MAX 22   /* the most a reader accepts by default */

/* An X25519 identity (the secret scalar). Opaque; lives in sodium_malloc
 * memory; free with ovc_age_identity_free(). */
typedef struct ovc_age_identity ovc_age_identity;

/* An X25519 recipient (public key). Plain value. */
typedef struct ovc_age_recipient {
	uint8_t pk[32];
} ovc_age_recipient;

/* A new random identity. Returns 0 or -ENOMEM. */
int ovc_age_identity_generate(ovc_age_identity **out);

/* Parse an identity from text: a bare `AGE-SECRET-KEY-1…` line or an
 * age-keygen style identity file (lines starting with '#' and blank lines
 * are ignored; exactly one key). `text` need not be NUL-terminated.
 * Errors: -EINVAL (message says what is wrong; never echoes the key). */
int ovc_age_identity_parse(const char *text, size_t len,
			   ovc_age_identity **out, ovc_err *e);

/* Write the `AGE-SECRET-KEY-1…` string (upper case, NUL-terminated) into
 * `out`, which must hold OVC_AGE_IDENTITY_STRLEN + 1 bytes and should be
 * secret memory. */
void ovc_age_identity_encode(const ovc_age_identity *id, char *out);

/* The identity's recipient. */
void ovc_age_identity_recipient(const ovc_age_identity *id,
				ovc_age_recipient *out);

/* X25519(identity, point) into `shared` (should be secret memory).
 * Returns 0, or -EINVAL (and zeroes `shared`) when the result is all zero:
 * `point` is of low order, which age requires to be refused. */
int ovc_age_identity_dh(const ovc_age_identity *id, const uint8_t point[32],
			uint8_t shared[32]);

/* Wipe and free (NULL is fine). */
void ovc_age_identity_free(ovc_age_identity *id);

/* Parse `age1…` (lower case, bech32 checksum checked). Errors: -EINVAL. */
int ovc_age_recipient_parse(const char *s, ovc_age_recipient *out, ovc_err *e);

/* Write `age1…` into `out` (OVC_AGE_RECIPIENT_STRLEN + 1 bytes). */
void ovc_age_recipient_encode(const ovc_age_recipient *r, char *out);

/* What to encrypt to: either recipients or one passphrase, not both. */
typedef struct ovc_age_encrypt_opts {
	const ovc_age_recipient *recipients; /* n_recipients of them */
	size_t n_recipients;
	const char *passphrase;  /* NUL-terminated, or NULL */
	int scrypt_log_n;        /* work factor for a passphrase, e.g. 18 */
	int armor;               /* nonzero: ASCII armor */
} ovc_age_encrypt_opts;

/* Encrypt `len` bytes. On success *out is a malloc()ed buffer the caller
 * frees with free(), *out_len its length. A passphrase gives one scrypt
 * stanza with work factor scrypt_log_n (1..OVC_AGE_SCRYPT_LOGN_MAX, so the
 * file opens with a default reader); recipients give one X25519 stanza
 * each. Errors: -EINVAL (bad options: both or neither of recipients and
 * passphrase, an empty passphrase, a work factor out of range, a low-order
 * recipient), -ENOMEM (also when scrypt cannot get its memory). */
int ovc_age_encrypt(const ovc_age_encrypt_opts *o, const uint8_t *plain,
		    size_t len, uint8_t **out, size_t *out_len, ovc_err *e);

/* Failure classes, as the age test vectors name them. */
enum ovc_age_status {
	OVC_AGE_OK = 0,
	OVC_AGE_ARMOR,     /* the ASCII armor does not parse */
	OVC_AGE_HEADER,    /* the header does not parse (or scrypt too costly) */
	OVC_AGE_NO_MATCH,  /* the header parses; no stanza unwraps */
	OVC_AGE_HMAC,      /* a file key unwrapped; the header MAC is wrong */
	OVC_AGE_PAYLOAD,   /* the payload fails part-way */
};

/* What to decrypt with. Identities and passphrases may both be given; each
 * stanza is tried against the ones of its type. */
typedef struct ovc_age_decrypt_opts {
	const ovc_age_identity *const *identities;
	size_t n_identities;
	const char *const *passphrases;
	size_t n_passphrases;
	int max_scrypt_log_n;  /* 0 means OVC_AGE_SCRYPT_LOGN_MAX; at most 40
				* (scrypt needs 2^n KiB: 22 is 4 GiB) */
} ovc_age_decrypt_opts;

/* Receives authenticated plaintext, chunk by chunk, in order. Nothing is
 * passed on before its chunk authenticated. Return 0, or a negative code to
 * stop (returned by the decrypt call). */
typedef int (*ovc_age_sink)(void *ctx, const uint8_t *data, size_t len);

/* Decrypt an age file. Binary when it starts with "age-encryption.org/";
 * otherwise armored when, after whitespace, it starts with "-----" or the
 * BEGIN marker appears in its first KiB (so damaged armor is an armor
 * failure); otherwise a header failure.
 *
 * *status (may be NULL) gets the failure class. Returns 0 when the whole
 * payload decrypted, else: -EILSEQ (armor), -EINVAL (header, or bad
 * options), -ENOKEY (no match), -EBADMSG (header MAC, or the payload: a
 * chunk that fails to authenticate, truncation, an empty final chunk, data
 * after the final chunk), -ENOMEM, or the sink's code. *status is
 * OVC_AGE_OK for failures that are not the file's (-ENOMEM, bad options, a
 * sink's code): check the return value. A scrypt stanza whose work factor
 * exceeds the limit is a header failure whose message says so, checked
 * before any key is tried; a failed scrypt allocation gives -ENOMEM.
 *
 * An X25519 stanza whose share gives an all-zero shared secret aborts with
 * a header failure. On a payload failure the sink has received the chunks
 * before the bad one (as the test vectors expect), never the bad one; a
 * final chunk followed by extra data is released, then refused. */
int ovc_age_decrypt(const ovc_age_decrypt_opts *o, const uint8_t *in,
		    size_t len, ovc_age_sink sink, void *ctx,
		    enum ovc_age_status *status, ovc_err *e);

/* ovc_age_decrypt() collected into one buffer of at most `max` bytes
 * (-EFBIG beyond), allocated with ovc_wipe_malloc(): the caller frees it with
 * ovc_wipe_free(). A NUL follows the data (not counted). On failure *out is
 * NULL. */
int ovc_age_decrypt_buf(const ovc_age_decrypt_opts *o, const uint8_t *in,
			size_t len, size_t max, uint8_t **out, size_t *out_len,
			enum ovc_age_status *status, ovc_err *e);

/* Does `in` look like an age file: does it start with the binary version
 * prefix "age-encryption.org/", or (after whitespace) with the armor's
 * BEGIN line? Nothing else is looked at. */
int ovc_age_is_age(const uint8_t *in, size_t len);

/* ASCII armor on its own (ovc_age_encrypt/decrypt call these).
 *
 * ovc_age_armor_looks: does `in` start (after whitespace) with the
 * `-----BEGIN AGE ENCRYPTED FILE-----` marker?
 *
 * ovc_age_armor_decode: the binary age file inside the armor. Strict:
 * 64-column lines of canonical padded base64, a short (or padded) line
 * only last, no empty lines or headers; LF or CRLF line ends; only
 * whitespace before the BEGIN and after the END line. On success *out is a
 * malloc()ed buffer the caller frees with free(). Errors: -EILSEQ (message
 * says what is wrong), -ENOMEM.
 *
 * ovc_age_armor_encode: armor `len` bytes (LF line ends, final LF). *out is
 * malloc()ed, caller frees with free(); not NUL-terminated. Errors: -ENOMEM.
 */
int ovc_age_armor_looks(const uint8_t *in, size_t len);
int ovc_age_armor_decode(const uint8_t *in, size_t len, uint8_t **out,
			 size_t *out_len, ovc_err *e);
int ovc_age_armor_encode(const uint8_t *in, size_t len, uint8_t **out,
			 size_t *out_len);

/* HKDF-SHA-256 (RFC 5869) built on crypto_auth_hmacsha256 (libsodium 1.0.18
 * has none). `salt` may be NULL/0 (a zero key of hash length is used). Writes
 * `out_len` (at most 255 * 32) bytes. Returns 0 or -EINVAL. */
int ovc_hkdf_sha256(uint8_t *out, size_t out_len, const uint8_t *salt,
		    size_t salt_len, const uint8_t *ikm, size_t ikm_len,
		    const uint8_t *info, size_t info_len);

/* Bech32 (BIP 173) encode/decode of 8-bit data with human-readable part
 * `hrp`. No length limit of 90 (age keys are longer). Decode accepts all
 * lower or all upper case, returns the hrp in lower case. Return 0 or
 * -EINVAL. `out` sizes: encode needs strlen(hrp) + 1 + (len*8+4)/5 + 6 + 1. */
int ovc_bech32_encode(char *out, size_t out_size, const char *hrp,
		      const uint8_t *data, size_t len);
int ovc_bech32_decode(const char *s, char *hrp, size_t hrp_size,
		      uint8_t *data, size_t data_size, size_t *data_len);

#endif
