/*
 * document.h - the per-user policy document (overcrypt-policy/1) and its
 * keys blob. docs/policy-format.md is the normative description.
 *
 *   { "format": "overcrypt-policy/1", "org": "corp", "user": "alice",
 *     "serial": 42, "issued_at": "2026-11-22T10:00:00Z",
 *     "valid_until": "2026-12-06T10:00:00Z",
 *     "settings": { "refresh_interval_s": 900, "cache_expiration_s": 604800,
 *                   "user_may_decrypt": false, "persistent_encryption": true,
 *                   "autolock_idle_s": 0, "plaintext_under_rule": "convert" },
 *     "rules": [ { "asset": "marketing", "type": "shared",
 *                  "path": "smb://files.corp.local/marketing/ *.*",
 *                  "key_id": "<uuid>" }, … ],
 *     "keys": "<armored age file, encrypted to the user's recipient>" }
 *
 * A document comes with a detached minisign signature (prehashed) by the
 * org key. The reader checks, in this order: the signature (before any
 * JSON is parsed), the parse (strict: unknown or duplicate members, wrong
 * types, a serial that is not a plain integer in 1..2^53-1, an unknown rule
 * type, a duplicate asset, a bad path, are errors naming the member), user
 * and org, serial, valid_until (ovc_policy_accept). Only then does the
 * caller record the new highest serial.
 *
 * The keys blob: the age plaintext is a small binary format, never JSON,
 * so key material never passes through cJSON:
 *   magic "OVCKEYS1" (8) | count u32 LE (4) | count × (key id 16 | key 32)
 * at most OVC_KEYSBLOB_MAX keys; nothing may follow; no key id twice; no
 * all-zero key. The last magic byte is the version.
 *
 * Thread-safety: reentrant; objects are not shared.
 */
#ifndef OVC_DOCUMENT_H
#define OVC_DOCUMENT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/common.h"
#include "crypto/age.h"
#include "crypto/keys.h"
#include "crypto/minisign.h"
#include "policy/rules.h"

#define OVC_POLICY_FORMAT "overcrypt-policy/1"
#define OVC_POLICY_MAX_BYTES (8u << 20)  /* a larger document is refused */
#define OVC_KEYSBLOB_MAX 65536           /* keys in one blob */
#define OVC_SERIAL_MAX 9007199254740991ull /* 2^53 - 1 */
/* The largest duration setting (36500 days), as org.conf's
 * OVC_DURATION_MAX_S: a client accepts exactly what publish can write. */
#define OVC_POLICY_DURATION_MAX_S UINT64_C(3153600000)
/* The size of the largest keys blob: 12 + OVC_KEYSBLOB_MAX * 48. */
#define OVC_KEYSBLOB_MAX_BYTES (12u + 65536u * 48u)
/* 9999-12-31T23:59:59Z, the last time ovc_time_format() can write. */
#define OVC_TIME_MAX ((time_t)253402300799)

enum ovc_plaintext_mode {
	OVC_PLAINTEXT_CONVERT = 0, /* default */
	OVC_PLAINTEXT_REFUSE,
	OVC_PLAINTEXT_STRICT,
};

typedef struct ovc_policy_settings {
	uint64_t refresh_interval_s;
	uint64_t cache_expiration_s;
	uint64_t autolock_idle_s;       /* 0: off */
	int user_may_decrypt;
	int persistent_encryption;
	enum ovc_plaintext_mode plaintext_under_rule;
} ovc_policy_settings;

/* A parsed policy. All memory belongs to the object; free with
 * ovc_policy_free(). */
typedef struct ovc_policy {
	char *org;
	char *user;
	uint64_t serial;
	time_t issued_at;
	time_t valid_until;
	ovc_policy_settings settings;
	ovc_rule *rules;   /* strings inside point into the object */
	size_t nrules;
	char *keys;        /* the armored age text of the keys blob */
	uint8_t digest[32];/* SHA-256 of the signed document bytes */
} ovc_policy;

void ovc_policy_free(ovc_policy *p);

/* Verify `sig` (a .minisig text, `sig_len` bytes, need not be
 * NUL-terminated) over the exact `len` bytes of `doc` with the pinned keys
 * (`npks`: 1, or 2 during a rollover), then parse. *out is a new policy
 * (NULL on error). Errors: -EFBIG beyond OVC_POLICY_MAX_BYTES (checked
 * first); -EBADMSG / -ENOKEY / -EINVAL from the signature, message starting
 * "signature: " (nothing of the document was parsed); then the errors of
 * ovc_policy_parse(). The trusted comment is verified but not interpreted. */
int ovc_policy_verify_parse(const uint8_t *doc, size_t len, const char *sig,
			    size_t sig_len, const ovc_minisign_pubkey *pks,
			    size_t npks, ovc_policy **out, ovc_err *e);

/* Parse without a signature: for the admin tool reading its own output
 * and for tests. `doc` need not be NUL-terminated. *out is a new policy
 * (NULL on error); its digest is the SHA-256 of the `len` bytes.
 * Errors: -EFBIG, -ENOMEM, and -EINVAL with a message naming the member
 * ("rules[3].key_id: not a UUID", "settings.autolock_idle_s: duplicate
 * member"). Beyond the members' types and ranges it refuses: a byte order
 * mark, anything but white space after the object, control characters or
 * \u0000 in any string, a number anywhere written with a sign, fraction,
 * exponent or leading zero, names (org, user, asset) outside 1-64 of
 * [A-Za-z0-9._-] starting with a letter or digit, valid_until not after
 * issued_at, a "keys" that does not start like age armor. Rule paths must
 * pass ovc_rule_path_parse(); system folders are left to `check`. */
int ovc_policy_parse(const uint8_t *doc, size_t len, ovc_policy **out,
		     ovc_err *e);

/* Serialise to the canonical JSON text (members in the order above, one
 * per line, two spaces of indent per level, '\n' at the end; strings with
 * only '"', '\\' and control characters escaped), malloc()ed,
 * NUL-terminated, *len without the NUL; the caller free()s. The same policy
 * always gives the same bytes (the admin tool compares them), and
 * parse(serialize(p)) serialises to the same bytes again. Checks nothing
 * but presence (org, user, keys, each rule's asset and path; a known rule
 * type and plaintext mode): -EINVAL, else -ENOMEM. */
int ovc_policy_serialize(const ovc_policy *p, char **out, size_t *len);

/* What a client remembers between documents. */
typedef struct ovc_policy_seen {
	uint64_t serial;        /* highest accepted; 0: none yet */
	uint8_t digest[32];     /* of the document with that serial */
} ovc_policy_seen;

/* Accept `p` for `user` of `org` after `seen` (NULL or serial 0: none
 * seen), in this order: another org or user (-EPERM), a lower serial, or
 * the same serial with another digest (-ESTALE), a document no longer valid
 * at `now`, i.e. now >= valid_until (-ETIME). issued_at in the future is
 * not refused (clock skew). Does not change `seen`: the caller records
 * p->serial and p->digest once it has applied the policy. */
int ovc_policy_accept(const ovc_policy *p, const char *org, const char *user,
		      const ovc_policy_seen *seen, time_t now, ovc_err *e);

/* Open the keys blob with the user's identity: decrypt (into
 * ovc_wipe_malloc memory, wiped before return), decode the binary format
 * into a new keyset (sodium_malloc slab; free with ovc_keyset_free()), and
 * check that every key id a rule names is in it. Errors: -ENOKEY when the
 * blob is not encrypted to `id` ("wrong identity"), the age decrypt's other
 * codes, ovc_keysblob_decode()'s, -EINVAL naming the rule and its asset
 * for a key missing from the blob. *out is NULL on error. */
int ovc_policy_open_keys(const ovc_policy *p, const ovc_age_identity *id,
			 ovc_keyset **out, ovc_err *e);

/* Keys blob codec. encode: a buffer from ovc_wipe_malloc() (caller frees
 * with ovc_wipe_free()); `ks` may be NULL (no keys); -E2BIG beyond
 * OVC_KEYSBLOB_MAX keys, -ENOMEM. decode: `in` is read and copied straight
 * into the keyset's slab; -EINVAL for a bad magic, a count above the cap,
 * a short blob, trailing bytes, a duplicate key id, an all-zero key;
 * -EPROTO for "OVCKEYS" with another version byte; -ENOMEM. */
int ovc_keysblob_encode(const ovc_keyset *ks, uint8_t **out, size_t *len);
int ovc_keysblob_decode(const uint8_t *in, size_t len, ovc_keyset **out,
			ovc_err *e);

/* Times: the RFC 3339 profile "YYYY-MM-DDTHH:MM:SSZ" (upper-case T and Z,
 * UTC, no fraction, no offset, no leap second, years 1970..9999). parse:
 * 0 or -EINVAL. format: writes 20 characters and a NUL; times outside
 * 0..OVC_TIME_MAX are clamped to that range. */
int ovc_time_parse(const char *s, time_t *out);
void ovc_time_format(time_t t, char out[21]);

#endif
