/*
 * audit.h - the admin store's audit log: append-only, hash-chained JSON
 * lines, and its signed head. docs/audit-log.md defines the bytes and is
 * normative; this header is the summary.
 *
 * Each line is one JSON object, members in this order, no spaces, '\n' at
 * the end:
 *   {"seq":N,"time":"2026-11-24T10:00:00Z","admin":"alice",
 *    "action":"publish","object":"corp","details":{…},
 *    "prev":"<64 hex>","hash":"<64 hex>"}
 * seq counts from 1; prev is the previous line's hash (64 zeros for the
 * first); hash = SHA-256 of the line's bytes up to and excluding
 * ",\"hash\":" (that is, everything from '{' through the prev value's
 * closing quote). Strings are escaped canonically ('"', '\\', \b \t \n \f
 * \r, other bytes below 0x20 as \u00xx, everything else raw UTF-8); details
 * is cJSON's compact form of an object whose numbers are 32-bit integers.
 * Readers rebuild each line from what they parsed and compare bytes: any
 * line not in exactly this form is reported. Editing, removing or
 * reordering a line breaks the chain at that line.
 *
 * The head (count and last hash) is signed with the org key at every
 * publish and written to the published folder as audit-head.json (+
 * .minisig), outside the store, so a cut-off tail, a recomputed chain or a
 * store rolled back to an earlier state is detected by `audit verify
 * --head FILE`. Entries appended after the last signed head can still be
 * cut off unnoticed until the next publish signs a new head.
 *
 * Error messages name the log by the path the caller gave and the line
 * ("PATH:17: hash does not match (edited?)").
 *
 * Thread-safety: reentrant. Appends take an exclusive flock() on the log
 * for the read-check-write; the store's own lock file still serialises
 * whole admin operations.
 */
#ifndef OVC_AUDIT_H
#define OVC_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/common.h"
#include "crypto/minisign.h"

#define OVC_AUDIT_LINE_MAX 65536 /* bytes in one line, its '\n' included */
#define OVC_AUDIT_NAME_MAX 4096  /* bytes in admin, action, object, org */

/* Append one entry. `admin` and `action` are non-empty, `object` may be
 * empty; all three valid UTF-8 of at most OVC_AUDIT_NAME_MAX bytes (any
 * character, control characters included, is escaped). `when` is from 1970
 * to 9999. `details_json` is a JSON object text or NULL for {}; it is
 * re-serialised compactly (cJSON order: as given); its numbers must be
 * 32-bit integers, names unique within an object, no \u0000.
 * The log is opened O_RDWR|O_APPEND|O_CREAT|O_NOFOLLOW (0600 when created),
 * locked, and its chain read through that same descriptor; a log whose
 * chain is broken (a torn last line included) is not appended to
 * (-EBADMSG, "refusing to append: PATH:N: why"). The line is written with
 * one write(2) (a short write is cut back) and fsync()ed; a new log's
 * folder is fsync()ed too. Errors: -EINVAL (bad details, names or time, or
 * a line over OVC_AUDIT_LINE_MAX), -EBADMSG, -EOVERFLOW (2^53 entries),
 * -errno. */
int ovc_audit_append(const char *path, time_t when, const char *admin,
		     const char *action, const char *object,
		     const char *details_json, ovc_err *e);

/* Check the whole chain. On success *count and *head (may be NULL) get the
 * number of entries and the last hash (zeros when empty; an empty file is a
 * valid log of 0 entries, a missing one is -ENOENT). Errors: -EBADMSG
 * naming the first bad line ("PATH:17: hash does not match (edited?)",
 * "PATH:5: seq 6 follows seq 4 (removed or reordered?)", "…: prev is not
 * the hash of entry 4 …", "…: not in canonical form (edited?)", "…: no
 * newline at the end (torn write?)"), -errno. */
int ovc_audit_verify(const char *path, uint64_t *count, uint8_t head[32],
		     ovc_err *e);

/* One entry as read back (strings owned by the reader, valid during the
 * callback). */
typedef struct ovc_audit_entry {
	uint64_t seq;
	time_t time;
	const char *admin, *action, *object;
	const char *details;   /* compact JSON text */
	const char *line;      /* the whole line, without '\n' */
} ovc_audit_entry;

/* Filters for `audit show`; zero/NULL fields do not filter. since and until
 * are inclusive; action matches exactly; `user` matches the object or any
 * string value (at any depth, not member names) in details equal to it. */
typedef struct ovc_audit_filter {
	time_t since, until;
	const char *action;
	const char *user;
} ovc_audit_filter;

/* Call `fn` for each entry that passes `f` (may be NULL), in order. Each
 * line must be in canonical form, but hashes, seq and prev are not checked
 * (so an edited log can still be shown; ovc_audit_verify judges it).
 * Returns 0, fn's non-zero value (which stops the walk), -EINVAL naming a
 * malformed or torn line (entries before it were passed to fn), or -errno. */
int ovc_audit_each(const char *path, const ovc_audit_filter *f,
		   int (*fn)(void *ctx, const ovc_audit_entry *en), void *ctx,
		   ovc_err *e);

/* The signed head: JSON
 *   {"format":"overcrypt-audit-head/1","org":"…","entries":N,
 *    "head":"<hex>","org_conf_sha256":"<hex>","time":"…"}\n
 * (canonical like a line, ending in '\n') signed with minisign, trusted
 * comment "overcrypt audit head N". The chain is verified first; a broken
 * one is not signed (-EBADMSG). Both outputs malloc()ed, NUL-terminated
 * (caller free()s); NULL on error. Errors: -EINVAL (org, time), -EBADMSG,
 * -ENOMEM, -errno. */
int ovc_audit_head_sign(const char *log_path, const char *org,
			const uint8_t org_conf_sha256[32], time_t when,
			const ovc_minisign_seckey *sk, char **head_json,
			char **head_sig, ovc_err *e);

/* A head's contents. */
typedef struct ovc_audit_head {
	char *org;                  /* malloc()ed; ovc_audit_head_release() */
	uint64_t entries;
	uint8_t head[32];           /* hash of entry `entries` (zeros for 0) */
	uint8_t org_conf_sha256[32];
	time_t time;
} ovc_audit_head;

/* Parse a head text (`len` bytes, no NUL needed) WITHOUT checking any
 * signature: for callers that already did, and for tests. The text must be
 * exactly the canonical form. Errors: -EINVAL, -EPROTO (another format),
 * -ENOMEM. */
int ovc_audit_head_parse(const char *json, size_t len, ovc_audit_head *out,
			 ovc_err *e);

/* Free what `h` holds and zero it (NULL is fine). */
void ovc_audit_head_release(ovc_audit_head *h);

/* Verify the log against a signed head: signature first (with `pk`; the
 * trusted comment must name the same count), then the head's form, then
 * the chain, then that the log holds at least the head's entries and that
 * its entry number `entries` has the head's hash (a log cut back, rolled
 * back or recomputed fails). Entries after the head's are allowed (written
 * since the last publish). Errors: -EBADMSG with the reason (signature,
 * chain, count, hash), -ENOKEY (signed by another key), -EINVAL/-EPROTO
 * (the head or signature does not parse), -errno.
 * Checking org_conf_sha256 against the store's org.conf is the caller's
 * job: use ovc_audit_head_verify_ex() to get it (org.conf is legitimately
 * edited between publishes, so only the caller knows what to compare). */
int ovc_audit_head_verify(const char *log_path, const char *head_json,
			  size_t head_len, const char *head_sig, size_t sig_len,
			  const ovc_minisign_pubkey *pk, ovc_err *e);

/* The same, also giving the verified head (*out, may be NULL; caller
 * releases it with ovc_audit_head_release()) and the log's entry count
 * (*log_entries, may be NULL; more than out->entries when entries were
 * appended since). Outputs are set only on success. */
int ovc_audit_head_verify_ex(const char *log_path, const char *head_json,
			     size_t head_len, const char *head_sig, size_t sig_len,
			     const ovc_minisign_pubkey *pk, ovc_audit_head *out,
			     uint64_t *log_entries, ovc_err *e);

#endif
