/*
 * minisign.h - minisign key, public-key and signature formats.
 *
 * Ed25519 signatures in minisign's prehashed form (`ED`: the message is
 * hashed with BLAKE2b-512, crypto_generichash, then signed with plain
 * Ed25519; not crypto_sign_ed25519ph), with the trusted comment covered by
 * the global signature. The legacy `Ed` (non-prehashed) form is refused.
 * Output verifies with stock `minisign -V`; stock signatures verify here.
 *
 * Thread-safety: reentrant. Needs ovc_common_init().
 */
#ifndef OVC_MINISIGN_H
#define OVC_MINISIGN_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#define OVC_MINISIGN_KEYID_BYTES 8
#define OVC_MINISIGN_SECKEY_BYTES 72 /* key id (8) | Ed25519 secret key (64) */

typedef struct ovc_minisign_pubkey {
	uint8_t key_id[OVC_MINISIGN_KEYID_BYTES]; /* as stored (little-endian) */
	uint8_t pk[32];
} ovc_minisign_pubkey;

/* A secret key. Opaque; lives in sodium_malloc memory. */
typedef struct ovc_minisign_seckey ovc_minisign_seckey;

/* A new key pair with a random key id. Returns 0 or -ENOMEM. */
int ovc_minisign_keygen(ovc_minisign_seckey **sk, ovc_minisign_pubkey *pk);

/* Wipe and free (NULL is fine). */
void ovc_minisign_seckey_free(ovc_minisign_seckey *sk);

/* The public half of `sk`. */
void ovc_minisign_seckey_public(const ovc_minisign_seckey *sk,
				ovc_minisign_pubkey *pk);

/* Raw form for storing inside an encrypted container (key id | sk):
 * `out` holds OVC_MINISIGN_SECKEY_BYTES and should be secret memory. */
void ovc_minisign_seckey_encode(const ovc_minisign_seckey *sk, uint8_t *out);
int ovc_minisign_seckey_decode(const uint8_t *in, size_t len,
			       ovc_minisign_seckey **sk, ovc_err *e);

/* Parse a public key: the contents of a minisign .pub file ("untrusted
 * comment: …" line, then the base64 line) or the bare base64 line (as
 * `minisign -P` takes it). `text` need not be NUL-terminated; nothing past
 * `len` is read. LF or CRLF line ends, the last one optional; nothing may
 * follow the key line; base64 must be canonical and exactly 42 bytes
 * starting "Ed". The comment (untrusted) is not checked against the key.
 * Errors: -EINVAL naming what is wrong. */
int ovc_minisign_pubkey_parse(const char *text, size_t len,
			      ovc_minisign_pubkey *out, ovc_err *e);

/* Read the public key file `path` (at most 64 KiB) and parse it. Errors:
 * -errno from reading (-EFBIG when larger), ovc_minisign_pubkey_parse()'s;
 * the message starts with the path. */
int ovc_minisign_pubkey_load(const char *path, ovc_minisign_pubkey *out,
			     ovc_err *e);

/* Format a .pub file ("untrusted comment: minisign public key XXXX\n" +
 * base64 + "\n") into a malloc()ed NUL-terminated string (caller free()s).
 * Returns 0 or -ENOMEM. */
int ovc_minisign_pubkey_format(const ovc_minisign_pubkey *pk, char **out);

/* Sign `msg` (prehashed form; `msg` may be NULL when `len` is 0).
 * `trusted_comment` must be one line (no CR or LF) of at most 8173 bytes,
 * the most stock minisign signs; NULL gives "timestamp:<unix time>". The
 * untrusted comment is stock's "signature from minisign secret key".
 * *sig_text is the whole .minisig file, LF line ends, malloc()ed,
 * NUL-terminated (caller free()s). Deterministic for given inputs.
 * Errors: -EINVAL (comment), -ENOMEM. */
int ovc_minisign_sign(const ovc_minisign_seckey *sk, const uint8_t *msg,
		      size_t len, const char *trusted_comment,
		      char **sig_text);

/* Verify `msg` against a .minisig text with any of `n_pks` pinned keys
 * (rollover: two keys, which must have distinct key ids: the first whose id
 * matches is the only one tried). The key id picks the key; the signature
 * and then the global signature over signature|trusted comment are checked.
 * `sig_text` need not be NUL-terminated; nothing past `sig_len` is read.
 * The text is read strictly: exactly four lines ("untrusted comment: …",
 * base64 of 74 bytes, "trusted comment: …", base64 of 64 bytes), LF or
 * CRLF line ends (stock minisign strips CR too), the last one optional,
 * nothing after; canonical base64 of the exact sizes; the comment lines at
 * most 1022 and 8190 bytes (what stock minisign reads); no NUL or stray CR.
 * On success *trusted_comment (may be NULL) gets a malloc()ed copy of the
 * trusted comment text (without the "trusted comment: " prefix; caller
 * free()s); on error it is set to NULL.
 * Errors: -EINVAL (the signature file does not parse, legacy `Ed`, unknown
 * algorithm), -ENOKEY (signed by a key id not pinned, or n_pks is 0),
 * -EBADMSG (signature or global signature wrong; the message says which),
 * -ENOMEM. */
int ovc_minisign_verify(const ovc_minisign_pubkey *pks, size_t n_pks,
			const uint8_t *msg, size_t len, const char *sig_text,
			size_t sig_len, char **trusted_comment, ovc_err *e);

#endif
