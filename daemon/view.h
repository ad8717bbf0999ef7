/*
 * view.h - what the agent gives the overlay: for each uid, an immutable,
 * reference-counted view of rules + keys + settings, replaced atomically.
 *
 * The overlay needs nothing else from the agent: it knows no HTTP, no
 * config file and no policy document. For every request it asks
 * ovc_views_get(vs, uid) (the uid from fuse_req_ctx); a file handle keeps
 * the view it was opened with (its reference) until its last release, so a
 * handle opened before a lock or an expiry keeps its key until it is closed.
 *
 * The agent builds a new view whenever anything in it changes (a new
 * policy, an unlock, a lock, an expiry) and publishes it with
 * ovc_views_publish(): a reader gets either the old view or the new one,
 * never a mix. The keys of a view are wiped (sodium_free) when the last
 * view that shares them is released.
 *
 * States (what the overlay must do):
 *   OVC_VIEW_NO_POLICY  no policy was ever applied and no rule skeleton is
 *                       known: refuse writes under every folder the agent
 *                       serves (ovc_view.folders); reads pass through
 *   OVC_VIEW_LOCKED     rules in force, no keys: encrypted files EACCES,
 *                       creating or writing where a rule encrypts EACCES
 *   OVC_VIEW_EXPIRED    the same as LOCKED (the cache expired or the
 *                       policy's valid_until passed; keys were dropped)
 *   OVC_VIEW_READY      rules and keys
 * A uid with no view (ovc_views_get() returns NULL) is treated as LOCKED
 * with the union of the served users' encryption folders (DESIGN.md, The
 * agent): ovc_views_guard_folders() lists them.
 *
 * Thread-safety: every function may be called from any thread at any time;
 * a view is immutable once published (only its refcount changes).
 */
#ifndef OVC_DAEMON_VIEW_H
#define OVC_DAEMON_VIEW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "crypto/keys.h"
#include "policy/document.h"
#include "policy/rules.h"

typedef enum ovc_view_state {
	OVC_VIEW_NO_POLICY = 0,
	OVC_VIEW_LOCKED,
	OVC_VIEW_EXPIRED,
	OVC_VIEW_READY,
} ovc_view_state;

/* "no-policy", "locked", "expired", "ready" (static). */
const char *ovc_view_state_name(ovc_view_state s);

/* Shared, reference-counted parts of views (internal layout). */
typedef struct ovc_view_rules ovc_view_rules;
typedef struct ovc_view_keys ovc_view_keys;

typedef struct ovc_view {
	uid_t uid;
	const char *user;              /* the local login name */
	ovc_view_state state;
	uint64_t serial;               /* the policy's; 0 when none */
	ovc_policy_settings settings;  /* zeroed when no policy */
	const ovc_ruleset *rules;      /* NULL only in NO_POLICY */
	const ovc_keyset *keys;        /* non-NULL only in READY */
	const char *const *folders;    /* the folders this view protects
					* (the config's [mount] paths and the
					* rules' local folders), sorted */
	size_t nfolders;
	/* private */
	ovc_view_rules *rules_ref;
	ovc_view_keys *keys_ref;
	char *user_buf;
	char **folders_buf;
	int refs;
} ovc_view;

/* Rules: take ownership of a built ruleset (NULL fine: none). The box
 * starts with one reference, dropped by ovc_view_rules_unref(). */
ovc_view_rules *ovc_view_rules_new(ovc_ruleset *rs);
void ovc_view_rules_unref(ovc_view_rules *r);
const ovc_ruleset *ovc_view_rules_get(const ovc_view_rules *r);

/* Keys: take ownership of a keyset (its slab is wiped and freed when the
 * last reference goes). One reference to start. */
ovc_view_keys *ovc_view_keys_new(ovc_keyset *ks);
void ovc_view_keys_unref(ovc_view_keys *k);
const ovc_keyset *ovc_view_keys_get(const ovc_view_keys *k);

/* A new view (one reference, the caller's): `rules` and `keys` (either may
 * be NULL) gain a reference each (the caller keeps its own); `folders` (n
 * strings) and `user` are copied. `settings` may be NULL. NULL on ENOMEM.
 * The state is taken as given except that READY without keys becomes
 * LOCKED and keys are not attached in any other state. */
ovc_view *ovc_view_new(uid_t uid, const char *user, ovc_view_state state,
		       uint64_t serial, const ovc_policy_settings *settings,
		       ovc_view_rules *rules, ovc_view_keys *keys,
		       const char *const *folders, size_t nfolders);

/* Take one more reference / drop one (NULL fine). */
ovc_view *ovc_view_ref(ovc_view *v);
void ovc_view_put(ovc_view *v);

/* The table of views, one slot per uid. */
typedef struct ovc_views ovc_views;

ovc_views *ovc_views_new(void);
/* Drops every view (views still referenced elsewhere live on). */
void ovc_views_free(ovc_views *vs);

/* Publish `v` (the table takes the caller's reference) as the view of
 * v->uid, replacing and releasing the previous one. 0 or -ENOMEM (then `v`
 * is released). */
int ovc_views_publish(ovc_views *vs, ovc_view *v);

/* Remove the view of `uid` (no-op when none). */
void ovc_views_remove(ovc_views *vs, uid_t uid);

/* The keys-drop hook: called by ovc_views_publish() and ovc_views_remove()
 * when the view of `uid` in the table is READY and the one replacing it is
 * not (or there is none), before the swap and outside the table lock, in
 * the thread that publishes: the old view, and so its keys, is still the
 * published one while `fn` runs (the agent flushes the overlays' cached
 * plaintext then, DESIGN.md "Locking ... flushes and invalidates cached
 * encrypted inodes while the keys still exist"). `fn` may call
 * ovc_views_get() but must not publish or remove. NULL `fn` clears it.
 * Publishing is meant to come from one thread (the agent's main thread): a
 * concurrent publish for the same uid may swap in between the hook and the
 * swap. */
void ovc_views_set_keys_drop_hook(ovc_views *vs,
				  void (*fn)(void *ctx, uid_t uid), void *ctx);

/* The current view of `uid` with a new reference (ovc_view_put() it), or
 * NULL when the uid is not served. */
ovc_view *ovc_views_get(ovc_views *vs, uid_t uid);

/* File access by `uid` (the overlay calls this on open/create/read/write;
 * it costs one short lock and a store): the agent's autolock counts idle time from
 * the latest access. */
void ovc_views_touch(ovc_views *vs, uid_t uid);

/* The time of the last touch of `uid` (0: never). */
time_t ovc_views_last_access(ovc_views *vs, uid_t uid);

/* The folders of every published view, each once, sorted: where a uid
 * without a view must be refused writes. A malloc()ed array of malloc()ed
 * strings (free with ovc_views_folders_free()); *n its length. 0 or
 * -ENOMEM. */
int ovc_views_guard_folders(ovc_views *vs, char ***out, size_t *n);
void ovc_views_folders_free(char **f, size_t n);

#endif
