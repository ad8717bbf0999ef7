/*
 * keystore.h - the user's age identity in a passphrase-protected file, and
 * the product's password policy.
 *
 * The keystore is an age file encrypted to one scrypt passphrase stanza
 * (work factor log2(N) = 18) whose plaintext is an age-keygen style identity
 * file ("# created: …", "# public key: age1…", "AGE-SECRET-KEY-1…").
 * Stock `age -d` opens it, and a file made with `age-keygen | age -p` is a
 * valid keystore. It is written in binary (not armored). Files are created
 * O_EXCL|O_NOFOLLOW, mode 0600, written atomically (temp, fsync, rename).
 *
 * Thread-safety: reentrant as far as libpwquality/cracklib are (they keep no
 * state of ours; the passphrase is copied into their own heap memory, which
 * we cannot wipe). Needs ovc_common_init().
 */
#ifndef OVC_KEYSTORE_H
#define OVC_KEYSTORE_H

#include <stddef.h>

#include "common/common.h"
#include "crypto/age.h"

#define OVC_KEYSTORE_LOGN 18      /* scrypt work factor for the keystore */
#define OVC_KEYSTORE_MIN_PASS 12  /* the keystore's minimum length */
#define OVC_ADMIN_MIN_PASS 16     /* admin identity and key exports */
#define OVC_POLICY_MIN_PASS 8     /* the product's password policy */

/* Check a passphrase against the password policy: at least `min_len`
 * characters (never fewer than 8), an upper-case letter, a lower-case
 * letter, a digit and a special character, not containing `user` or
 * `email` (either may be NULL; compared case-insensitively), and accepted by
 * libpwquality (which rejects dictionary words). Our own rules are checked
 * first, in that order, and the first that fails is named: "needs at least
 * 12 characters", "needs at least one upper-case letter" / "lower-case
 * letter" / "digit" / "special character", "must not contain the user
 * name", "must not contain the e-mail address" (the address or its part
 * before '@'); then "rejected by the password quality check: <libpwquality's
 * reason>". Length counts UTF-8 characters; letters and digits are ASCII,
 * every other character is special. Names (and e-mail parts) shorter than 3
 * characters are not looked for. libpwquality runs with its built-in
 * defaults (not /etc/security/pwquality.conf, so the policy is the same on
 * every machine) and our minimum length. Returns 0, or -EINVAL with the
 * rule that failed in `e`; -ENOMEM. */
int ovc_passphrase_check(const char *pass, size_t min_len, const char *user,
			 const char *email, ovc_err *e);

/* A random passphrase that meets the policy for `min_len`, NUL-terminated,
 * in secret memory (ovc_secret_free()): groups of five letters and digits
 * (no look-alikes) joined by '-', at least 20 random characters (~115 bits)
 * and at least `min_len` characters in all ("xK7pq-Rm3aZ-…"). It is not
 * checked against a user name or e-mail: check it with them if needed.
 * NULL on ENOMEM (or `min_len` above 1024). */
char *ovc_passphrase_generate(size_t min_len);

/* Create a keystore at `path` with a new identity. The passphrase must pass
 * ovc_passphrase_check(pass, OVC_KEYSTORE_MIN_PASS, user, NULL). On success
 * *id (may be NULL) gets the identity (caller frees with
 * ovc_age_identity_free()). An existing `path` is refused before any
 * scrypt work and left untouched. Errors: -EEXIST, -EINVAL (policy),
 * -ENOMEM, -errno. */
int ovc_keystore_create(const char *path, const char *pass, const char *user,
			ovc_age_identity **id, ovc_err *e);

/* Open the keystore. scrypt work factors above `max_log_n` (0: the default
 * OVC_AGE_SCRYPT_LOGN_MAX) are refused before any work. On success *id is
 * the identity (ovc_age_identity_free()); on error NULL. Errors:
 * -ENOENT (and other -errno from reading),
 * -EBADMSG "wrong passphrase, or the keystore is damaged" (the scrypt
 *   stanza did not unwrap: the two cannot be told apart), or
 *   "the keystore is damaged: …" (it unwrapped, so the passphrase was
 *   right, but the header MAC or the payload fails),
 * -EINVAL "not a keystore (…)" (not an age file, or too large) or
 *   "not a readable keystore: …" (the age header does not parse, is cut
 *   short, or asks for too much scrypt work) or "the keystore holds no
 *   identity: …",
 * -ENOMEM (scrypt could not get its memory). */
int ovc_keystore_unlock(const char *path, const char *pass, int max_log_n,
			ovc_age_identity **id, ovc_err *e);

/* Change the passphrase, keeping the identity: check `new_pass` against
 * the policy (-EINVAL, message prefixed "new passphrase: ") before any
 * scrypt work, unlock with `old` (errors as ovc_keystore_unlock), then
 * re-encrypt the identity file byte for byte and replace `path` atomically
 * (mode 0600; not exclusive). On error the old file is left as it was. */
int ovc_keystore_passwd(const char *path, const char *old,
			const char *new_pass, const char *user, ovc_err *e);

#endif
