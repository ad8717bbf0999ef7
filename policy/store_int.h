/*
 * store_int.h - internals shared by the admin store's source files
 * (store.c: files, keys, state; publish.c: compiling and publishing).
 * Not a public header: nothing outside policy/store*.c and publish.c
 * includes it.
 */
#ifndef OVC_STORE_INT_H
#define OVC_STORE_INT_H

#include "policy/store.h"

/* The asset keys, in one secret slab, indexed two ways (hash chains of
 * key indexes, so lookups stay fast with tens of thousands of keys): by
 * owner (asset, user) and by key id. */
#define OVC_KEY_NONE UINT32_MAX
typedef struct ovc_admin_keys {
	size_t n, cap;
	ovc_admin_key *k;        /* sodium_malloc */
	uint32_t *next_owner;    /* per key: the next key of the same bucket */
	uint32_t *next_id;
	uint32_t *b_owner, *b_id;/* nb buckets each: the first key */
	size_t nb;               /* a power of two, >= cap */
} ovc_admin_keys;

/* The keys of (asset, user) — user "" for shared assets — in the order
 * added: for (i = admin_keys_first(…); i != OVC_KEY_NONE; i =
 * admin_keys_next(…)). */
uint32_t admin_keys_first(const ovc_admin_keys *ks, const char *asset,
			  const char *user);
uint32_t admin_keys_next(const ovc_admin_keys *ks, uint32_t i);

/* What state.json remembers of one user. */
typedef struct ovc_state_user {
	char *name;
	uint64_t serial;
	char digest[65];      /* hex SHA-256 of the compiled policy, keys blob
			       * replaced by its key ids and recipient */
	int64_t published;    /* when the files were last written */
	int64_t valid_until;
	char **rule_keys;     /* "asset=uuid" at the last publish (explain) */
	size_t nrule_keys;
} ovc_state_user;

typedef struct ovc_state_asset {
	char *name;
	enum ovc_rule_type type;
	int deleted;
} ovc_state_asset;

typedef struct ovc_state {
	ovc_state_user *users;   size_t nusers;
	ovc_state_asset *assets; size_t nassets;
	char *snapshot;          /* JSON text of the last security snapshot */
	int64_t last_publish;
} ovc_state;

struct ovc_store {
	char *dir;
	char *actor;
	int lock_fd;
	ovc_org *org;            /* loaded by ovc_store_org */
	ovc_state state;
	/* unlocked: */
	ovc_age_identity *id;
	ovc_minisign_seckey *sk;
	ovc_admin_keys keys;
	int unlocked;
};

/* Paths inside the store, into `buf` (PATH_MAX). */
const char *store_path(const ovc_store *s, const char *name, char *buf);

/* Keys. */
int admin_keys_add(ovc_admin_keys *ks, const ovc_admin_key *k);
ovc_admin_key *admin_keys_current(ovc_admin_keys *ks, const char *asset,
				  const char *user);
ovc_admin_key *admin_keys_new(ovc_admin_keys *ks, const char *asset,
			      const char *user, int64_t now);
void admin_keys_free(ovc_admin_keys *ks);
int admin_keys_parse(const char *json, size_t len, ovc_admin_keys *ks,
		     ovc_err *e);
int admin_keys_format(const ovc_admin_keys *ks, int export_form, char **out,
		      size_t *len);

/* Writing secrets to every admin recipient of org.conf (keys.age,
 * org.key.age). */
int store_save_secrets(ovc_store *s, const ovc_org *org, ovc_err *e);

/* state.json */
int state_load(ovc_store *s, ovc_err *e);
int state_save(ovc_store *s, ovc_err *e);
ovc_state_user *state_user(ovc_state *st, const char *name, int create);
ovc_state_asset *state_asset(ovc_state *st, const char *name, int create);
void state_free(ovc_state *st);

/* Audit: append an entry by the store's actor. */
int store_audit(ovc_store *s, time_t now, const char *action,
		const char *object, const char *details_json, ovc_err *e);

#endif
