/*
 * user.h - the agent's state for one user: the applied policy, its cache,
 * expiry, the unlocked identity and keys, and the view it publishes.
 *
 * Everything here runs on the agent's main thread; nothing here does I/O
 * but the user's own state folder (fetching is the caller's: it hands the
 * fetch outcome to ovc_user_fetched()).
 *
 * The state folder (mode 0700) holds, each written atomically with mode
 * 0600 (temp, fsync, rename):
 *   policy.json, policy.json.minisig  the last accepted document and its
 *                       signature, verified again at every start
 *   state.json          org, highest serial and its digest, ETag,
 *                       Last-Modified, time of the last successful refresh,
 *                       failed unlocks and the time before which no unlock
 *                       is taken (docs/agent.md)
 *   rules.json          the rule skeleton of the last accepted policy
 *                       (assets, types, paths, key ids: no secret), applied
 *                       at start when the cached document is unusable
 * A corrupt or tampered file is reported in the log and ignored, never
 * trusted; a cached document with a lower serial than state.json's is a
 * rollback and ignored too.
 */
#ifndef OVC_DAEMON_USER_H
#define OVC_DAEMON_USER_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/common.h"
#include "crypto/minisign.h"
#include "daemon/fetch.h"
#include "daemon/mtab.h"
#include "daemon/view.h"

/* Failed unlocks: the wait doubles from 1 s up to this. */
#define OVC_UNLOCK_BACKOFF_MAX_S 900
/* Fetch failures: retry after 5 s, doubling, at most the refresh interval. */
#define OVC_FETCH_BACKOFF_MIN_S 5
/* The refresh interval before any policy says otherwise. */
#define OVC_DEFAULT_REFRESH_S 900

typedef struct ovc_user_opts {
	const char *name;          /* the local login name and policy user */
	uid_t uid;
	const char *state_dir;     /* created (0700) when missing */
	const char *source;        /* policy_url (ends in '/') */
	const ovc_minisign_pubkey *pks;  /* pinned org keys, copied */
	size_t npks;
	const char *const *mount_paths;  /* the config's [mount] paths */
	size_t nmount_paths;
	ovc_views *views;          /* where the view is published (borrowed) */
	const ovc_mtab *mtab;      /* the SMB mounts smb:// rules land on
				    * (borrowed; NULL: none) */
} ovc_user_opts;

typedef struct ovc_user ovc_user;

/* Result classes for the control protocol's "code". */
enum ovc_user_outcome {
	OVC_USER_OK = 0,
	OVC_USER_FAILED,     /* the fetch failed */
	OVC_USER_REFUSED,    /* the document was refused */
	OVC_USER_NOKEY,      /* the identity does not open the keys */
	OVC_USER_WAIT,       /* unlock back-off running */
	OVC_USER_INTERNAL,
};

/* Create the user's state, apply the cache (or the rule skeleton) and
 * publish the first view, all before any fetch. Problems with the cache are
 * logged, not returned. Errors: -errno for a state folder that cannot be
 * made or is not safe (not ours, group or world writable), -ENOMEM. */
int ovc_user_new(const ovc_user_opts *o, time_t now, ovc_user **out,
		 ovc_err *e);

/* Wipe keys and identity, withdraw the view, free (NULL fine). */
void ovc_user_free(ovc_user *u);

const char *ovc_user_name(const ovc_user *u);
uid_t ovc_user_uid(const ovc_user *u);

/* Change where policies come from (SIGHUP). Copies. */
int ovc_user_set_source(ovc_user *u, const char *source,
			const ovc_minisign_pubkey *pks, size_t npks);

/* The metadata for the next conditional fetch: NULL when no policy is held
 * (then the fetch must be unconditional). Borrowed until the next call. */
const ovc_fetch_meta *ovc_user_fetch_meta(ovc_user *u);
/* The base URL (borrowed). */
const char *ovc_user_source(const ovc_user *u);

/* Take a fetch outcome: `rc` is ovc_fetch_policy()'s return, `res` its
 * result (consumed: released here), `fe` its error. Verifies, accepts,
 * caches and applies a new document; counts failures and plans the next
 * fetch (jittered interval, or back-off). Returns the outcome; `e` says
 * why for anything but OVC_USER_OK; *fresh (may be NULL) is 1 for a new
 * document, 0 for unchanged. */
enum ovc_user_outcome ovc_user_fetched(ovc_user *u, int rc,
				       ovc_fetch_result *res,
				       const ovc_err *fe, time_t now,
				       int *fresh, ovc_err *e);

/* The rules in force: the applied policy's, or the rule skeleton's (*n 0
 * and NULL when neither). Borrowed until the next call that applies a
 * policy (ovc_user_fetched()). */
const ovc_rule *ovc_user_rules(const ovc_user *u, size_t *n);

/* The applied policy's serial (0: none). */
uint64_t ovc_user_serial(const ovc_user *u);

/* When the next fetch is due. */
time_t ovc_user_next_fetch(const ovc_user *u);

/* Expiry and autolock: apply whatever is due at `now`; return the next
 * time something may become due (0: nothing planned). */
time_t ovc_user_tick(ovc_user *u, time_t now);

/* Unlocking (docs/control-protocol.md). check: OVC_USER_OK or
 * OVC_USER_WAIT with *wait_s. failed: counts a failure, persists it, sets
 * *wait_s. unlock: `identity` is "AGE-SECRET-KEY-1…" text (borrowed; the
 * caller wipes it): OVC_USER_OK (*nkeys, *pending), OVC_USER_WAIT,
 * OVC_USER_NOKEY (counted as a failure), OVC_USER_REFUSED (not an
 * identity), OVC_USER_INTERNAL. */
enum ovc_user_outcome ovc_user_unlock_check(ovc_user *u, time_t now,
					    long *wait_s);
void ovc_user_unlock_failed(ovc_user *u, time_t now, long *wait_s);
enum ovc_user_outcome ovc_user_unlock(ovc_user *u, const char *identity,
				      time_t now, size_t *nkeys,
				      int *pending, long *wait_s, ovc_err *e);
void ovc_user_lock(ovc_user *u, const char *why);

/* The SMB mounts changed (opts.mtab): place the rules again (smb:// rules
 * land on the shares mounted now) and publish the view with the same
 * policy, keys and state. 0, or -errno (logged; the old view stays). */
int ovc_user_remap(ovc_user *u, time_t now);

/* The status object of docs/control-protocol.md (without "ok"); NULL on
 * ENOMEM. */
cJSON *ovc_user_status(const ovc_user *u, time_t now);

/* The "which" reply for an absolute path (without "ok"); NULL with `e` set
 * on a bad path or ENOMEM. */
cJSON *ovc_user_which(const ovc_user *u, const char *path, ovc_err *e);

#endif
