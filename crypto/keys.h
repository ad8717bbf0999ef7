/*
 * keys.h - asset keys, key ids, and the keys file.
 *
 * An asset key is 32 random bytes named by a 128-bit key id, written as a
 * UUID (RFC 9562 text; its 16 bytes are the hex digits in the order written,
 * so "00112233-4455-…" is 00 11 22 33 44 55 …). New ids are random version 4
 * UUIDs.
 *
 * The keys file (written by `overcrypt keygen`, and, inside an age
 * passphrase file, by `overcrypt-admin keys export`) is JSON:
 *   {"format": "overcrypt-keys/1",
 *    "keys": [{"key_id": "<uuid>", "key": "<base64 of 32 bytes>",
 *              "asset": "<name, optional>", "user": "<name, optional>",
 *              "created": "<text, optional>", "current": <bool, optional>}]}
 * Unknown members are refused; duplicate member names are refused; the same
 * key id twice is refused; "key" must be padded standard base64 of exactly
 * 32 bytes. "asset", "user" (whose key, for a private asset) and "created"
 * are checked to be strings, "current" (the key new files get) a boolean;
 * all four are otherwise
 * ignored (an ovc_key holds only id and bytes, so they do not survive a
 * parse/format round trip). Nothing but white space may follow the object.
 *
 * cJSON runs with the wiping allocator (ovc_wipe_malloc/ovc_wipe_free),
 * installed process-wide by ovc_common_init(), so key text does not linger
 * in freed heap memory.
 *
 * Thread-safety: reentrant. Needs ovc_common_init().
 */
#ifndef OVC_KEYS_H
#define OVC_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#define OVC_KEY_BYTES 32
#define OVC_KEY_ID_BYTES 16
#define OVC_KEY_ID_STRLEN 36 /* UUID text, no NUL counted */

typedef struct ovc_key {
	uint8_t id[OVC_KEY_ID_BYTES];
	uint8_t key[OVC_KEY_BYTES];
} ovc_key;

/* A set of keys in one sodium_malloc slab (the struct itself is plain
 * memory). The slab grows by replacement: a new slab, the keys copied, the
 * old one wiped and freed, so pointers into `keys` die when the set grows.
 * Free with ovc_keyset_free(), which wipes the keys. */
typedef struct ovc_keyset {
	size_t n;      /* keys in use */
	size_t cap;    /* room in `keys` */
	ovc_key *keys; /* secret memory */
} ovc_keyset;

/* Parse "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (either case). 0 or -EINVAL. */
int ovc_key_id_parse(const char *s, uint8_t id[OVC_KEY_ID_BYTES]);

/* Lower-case UUID text into `out` (OVC_KEY_ID_STRLEN + 1 bytes). */
void ovc_key_id_format(const uint8_t id[OVC_KEY_ID_BYTES], char *out);

/* A new empty set with room for `cap` keys (0 is fine). Returns NULL on
 * ENOMEM. ovc_keyset_free(NULL) is fine. */
ovc_keyset *ovc_keyset_new(size_t cap);
void ovc_keyset_free(ovc_keyset *ks);

/* Add a new random key with a new random v4 id; *added (may be NULL) points
 * at it inside the set (valid until the set changes). 0 or -ENOMEM. */
int ovc_keyset_generate(ovc_keyset *ks, const ovc_key **added);

/* Add a copy of `k`. The same id with the same bytes is a no-op; with other
 * bytes it is -EEXIST. 0, -EEXIST or -ENOMEM. */
int ovc_keyset_add(ovc_keyset *ks, const ovc_key *k);

/* The key with that id, or NULL. Borrowed: valid until the set changes. */
const ovc_key *ovc_keyset_find(const ovc_keyset *ks,
			       const uint8_t id[OVC_KEY_ID_BYTES]);

/* Parse `len` bytes of keys-file JSON (need not be NUL-terminated). *out is
 * a new set (NULL on error). Errors: -EINVAL with the member named
 * ("keys[2].key_id: not a UUID"; never the key itself), -ENOMEM. */
int ovc_keyset_parse_json(const char *json, size_t len, ovc_keyset **out,
			  ovc_err *e);

/* Serialise to keys-file JSON (indented, with a final newline),
 * NUL-terminated, in a buffer from ovc_wipe_malloc() (caller frees with
 * ovc_wipe_free()); *len excludes the NUL. 0 or -ENOMEM. */
int ovc_keyset_format_json(const ovc_keyset *ks, char **out, size_t *len);

/* Load a key file (at most 4 MiB): plain keys-file JSON, or an age file
 * holding it (a key export, encrypted with a passphrase; scrypt work
 * factors up to OVC_AGE_SCRYPT_LOGN_MAX). For an age file `passphrase` is
 * needed: NULL gives -ENOKEY with "needs a passphrase" so the caller can
 * ask and call again; a wrong one gives -EBADMSG ("wrong passphrase, …").
 * Other errors: -errno from reading, the age decrypt's codes, and those of
 * ovc_keyset_parse_json(). Messages name what failed (never the key) but not
 * the file: the caller adds it. */
int ovc_keyset_load(const char *path, const char *passphrase,
		    ovc_keyset **out, ovc_err *e);

/* Write `ks` as a plain keys file, mode 0600, created exclusively
 * (O_EXCL, O_NOFOLLOW; ovc_write_file_atomic with excl): an existing file,
 * or a symlink even a dangling one, is -EEXIST. Other errors: -errno. */
int ovc_keyset_save(const char *path, const ovc_keyset *ks, ovc_err *e);

#endif
