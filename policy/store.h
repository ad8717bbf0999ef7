/*
 * store.h - the admin store: a folder holding what the administrators
 * edit and what overcrypt-admin keeps.
 *
 *   org.conf              the organisation (edited by people; orgconf.h)
 *   org.pub               the org signing key's public half (minisign)
 *   org.key.age           its secret half, age-encrypted to the admin recipients
 *   admin-identity.age    the first admin's age identity, passphrase-protected
 *                         (scrypt 2^20); other admins keep theirs elsewhere
 *                         (--identity FILE)
 *   keys.age              the asset keys, age-encrypted to the admin recipients
 *   state.json            serials, published digests, asset types, deleted
 *                         assets, the last published security snapshot
 *   audit.log             the audit log (audit.h)
 *
 * docs/admin-store.md describes each file. The store is locked (flock on
 * DIR/.lock) while a command that changes it runs.
 *
 * Thread-safety: an ovc_store is used by one thread.
 */
#ifndef OVC_STORE_H
#define OVC_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/common.h"
#include "crypto/age.h"
#include "crypto/minisign.h"
#include "policy/orgconf.h"

#define OVC_ADMIN_LOGN 20  /* scrypt work factor: admin identity, exports */

/* One asset key as the store keeps it. The array lives in secret memory. */
typedef struct ovc_admin_key {
	uint8_t id[OVC_KEY_ID_BYTES];
	uint8_t key[OVC_KEY_BYTES];
	char asset[65];
	char user[65];     /* private assets: whose key; "" for shared */
	int64_t created;
	int current;       /* the key new files get; others are kept for reading */
} ovc_admin_key;

typedef struct ovc_store ovc_store;

/* What init needs. */
typedef struct ovc_store_init_opts {
	const char *dir;        /* created; must not exist or be empty */
	const char *admin;      /* the first admin's name */
	const char *org;        /* the organisation's name */
	const char *passphrase; /* for admin-identity.age (16+ characters) */
	const char *org_conf_template; /* org.conf text with every section
					* and setting as commented examples */
} ovc_store_init_opts;

/* Create a store. Errors: -EEXIST (not empty), -EINVAL (passphrase policy:
 * the message names the rule), -errno. */
int ovc_store_init(const ovc_store_init_opts *o, ovc_err *e);

/* Open the store at `dir` without secrets: org.conf is not read here.
 * Errors: -ENOENT (not a store: message says which file is missing). */
int ovc_store_open(const char *dir, ovc_store **out, ovc_err *e);
void ovc_store_close(ovc_store *s);

/* Unlock the admin identity (`identity_file` NULL: the store's
 * admin-identity.age) with `passphrase`, then open keys.age and org.key.age.
 * Errors: -EBADMSG (wrong passphrase), -ENOKEY (this identity is not an
 * admin recipient of keys.age), -errno. */
int ovc_store_unlock(ovc_store *s, const char *identity_file,
		     const char *passphrase, ovc_err *e);

/* Load and check org.conf with the store's known asset types; problems go
 * to `d` with file:line. Borrowed result, valid until the store closes. */
int ovc_store_org(ovc_store *s, const ovc_org **out, ovc_diag *d);

/* The admin name recorded in the audit log (--as NAME, else the login). */
void ovc_store_set_actor(ovc_store *s, const char *name);

/* ---- publish ------------------------------------------------------------ */

typedef struct ovc_publish_opts {
	const char *out_dir;     /* created when missing */
	uint64_t serial_floor;   /* 0: none */
	int if_due;              /* publish only when half the validity passed
				  * or something changed */
	time_t now;
	/* Security-relevant changes since the last publish are passed to
	 * `confirm` (one line each); it returns nonzero to go on. NULL: go on
	 * (the changes are logged in the audit log either way). */
	int (*confirm)(void *ctx, const ovc_diag *changes);
	void *confirm_ctx;
} ovc_publish_opts;

typedef struct ovc_publish_result {
	size_t written, unchanged, removed;
	size_t keys_created;
	ovc_diag changes;        /* the security-relevant changes */
	ovc_diag lost_access;    /* "bob lost access to marketing" (suggest a rotation) */
} ovc_publish_result;

/* Compile, sign and write every user's policy (needs ovc_store_unlock).
 * Errors: -EINVAL (org.conf has errors: in `d`), -ECANCELED (not
 * confirmed), -errno. */
int ovc_store_publish(ovc_store *s, const ovc_publish_opts *o,
		      ovc_publish_result *r, ovc_diag *d, ovc_err *e);
void ovc_publish_result_free(ovc_publish_result *r);

/* The explanation line for `user` and `path`, with the same matcher as
 * clients, from the user's compiled rules (keys needed only for key ids:
 * works locked, printing the key ids recorded at the last publish).
 * Errors: -ENOENT (no such user), -EINVAL (org.conf errors in `d`). */
int ovc_store_explain(ovc_store *s, const char *user, const char *path,
		      char *out, size_t out_size, ovc_diag *d, ovc_err *e);

/* ---- assets and keys ------------------------------------------------------ */

/* The store's folder. Borrowed. */
const char *ovc_store_dir(const ovc_store *s);

typedef struct ovc_asset_info {
	const char *name;          /* borrowed from the store */
	enum ovc_rule_type type;
	int deleted;
	const char *path;          /* from org.conf, or NULL when not there */
} ovc_asset_info;

/* Assets the store knows (published, or in org.conf), deleted ones only
 * with `deleted`. *out is malloc()ed (caller free()s). */
int ovc_store_asset_list(ovc_store *s, int deleted, ovc_asset_info **out,
			 size_t *n, ovc_diag *d, ovc_err *e);

/* Delete: the asset leaves every policy at the next publish; its keys are
 * kept. Restore refuses (-EEXIST, saying which) when an active asset now
 * has its path. Both are logged. Errors: -ENOENT (no such asset). */
int ovc_store_asset_delete(ovc_store *s, const char *name, ovc_diag *d,
			   ovc_err *e);
int ovc_store_asset_restore(ovc_store *s, const char *name, ovc_diag *d,
			    ovc_err *e);

/* The keys (needs ovc_store_unlock). Borrowed, valid until the store
 * changes. */
const ovc_admin_key *ovc_store_keys(const ovc_store *s, size_t *n);

/* A new current key for `asset` (private assets: one per user holding one);
 * old keys stay for reading. Written to keys.age at once; policies carry it
 * from the next publish. Errors: -ENOENT, -EINVAL (a public asset). */
int ovc_store_keys_rotate(ovc_store *s, const char *asset, size_t *created,
			  ovc_diag *d, ovc_err *e);

/* Every key as keys-file JSON ("overcrypt-keys/1", which `overcrypt
 * decrypt --key` reads) inside an age passphrase file (scrypt 2^20) that
 * stock `age -d` opens; `pass` must meet the password policy (16+). The
 * file is created O_EXCL, mode 0600. */
int ovc_store_keys_export(ovc_store *s, const char *out, const char *pass,
			  ovc_err *e);

/* Merge the keys of an export (or a plain keys file: pass may be NULL).
 * Only adds: the same key id with other bytes is refused (-EEXIST) and
 * nothing is imported. *added gets the number of new keys. */
int ovc_store_keys_import(ovc_store *s, const char *file, const char *pass,
			  size_t *added, ovc_diag *d, ovc_err *e);

#endif
