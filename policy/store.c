/* store.c - the admin store's files: init, open, unlock, asset keys and
 * state.json; see store.h and docs/admin-store.md. */
#define _GNU_SOURCE
#include "policy/store_int.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/keystore.h"
#include "policy/audit.h"
#include "policy/document.h"

#define SECRET_MAX (64u << 20)

const char *store_path(const ovc_store *s, const char *name, char *buf)
{
	snprintf(buf, PATH_MAX, "%s/%s", s->dir, name);
	return buf;
}

/* ---- asset keys ------------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static size_t owner_bucket(const ovc_admin_keys *ks, const char *asset,
			   const char *user)
{
	uint64_t h = fnv1a(14695981039346656037ull, asset, strlen(asset) + 1);

	return (size_t)(fnv1a(h, user, strlen(user)) & (ks->nb - 1));
}

static size_t id_bucket(const ovc_admin_keys *ks, const uint8_t *id)
{
	return (size_t)(fnv1a(14695981039346656037ull, id, OVC_KEY_ID_BYTES) & (ks->nb - 1));
}

/* Put key i at the end of its two chains (chains keep insertion order,
 * which the "current" search and exports rely on only loosely). */
static void index_key(ovc_admin_keys *ks, uint32_t i)
{
	uint32_t *head[2] = { &ks->b_owner[owner_bucket(ks, ks->k[i].asset, ks->k[i].user)],
			      &ks->b_id[id_bucket(ks, ks->k[i].id)] };
	uint32_t *next[2] = { ks->next_owner, ks->next_id };

	for (int t = 0; t < 2; t++) {
		uint32_t *p = head[t];
		while (*p != OVC_KEY_NONE)
			p = &next[t][*p];
		*p = i;
		next[t][i] = OVC_KEY_NONE;
	}
}

/* Room for `cap` keys: a new slab (the old one wiped and freed) and new
 * chains. */
static int keys_grow(ovc_admin_keys *ks, size_t cap)
{
	ovc_admin_key *nk = ovc_secret_alloc(cap * sizeof(*nk));
	uint32_t *no = malloc(cap * sizeof(*no)), *ni = malloc(cap * sizeof(*ni));
	uint32_t *bo = malloc(cap * sizeof(*bo)), *bi = malloc(cap * sizeof(*bi));

	if (!nk || !no || !ni || !bo || !bi || cap >= OVC_KEY_NONE) {
		ovc_secret_free(nk);
		free(no);
		free(ni);
		free(bo);
		free(bi);
		return -ENOMEM;
	}
	if (ks->n)
		memcpy(nk, ks->k, ks->n * sizeof(*nk));
	ovc_secret_free(ks->k);
	free(ks->next_owner);
	free(ks->next_id);
	free(ks->b_owner);
	free(ks->b_id);
	ks->k = nk;
	ks->next_owner = no;
	ks->next_id = ni;
	ks->b_owner = bo;
	ks->b_id = bi;
	ks->cap = ks->nb = cap;
	memset(bo, 0xff, cap * sizeof(*bo));
	memset(bi, 0xff, cap * sizeof(*bi));
	for (size_t i = 0; i < ks->n; i++)
		index_key(ks, (uint32_t)i);
	return 0;
}

int admin_keys_add(ovc_admin_keys *ks, const ovc_admin_key *k)
{
	if (ks->nb) {
		for (uint32_t i = ks->b_id[id_bucket(ks, k->id)]; i != OVC_KEY_NONE; i = ks->next_id[i]) {
			if (memcmp(ks->k[i].id, k->id, OVC_KEY_ID_BYTES) != 0)
				continue;
			return sodium_memcmp(ks->k[i].key, k->key, OVC_KEY_BYTES) == 0 ? 0 : -EEXIST;
		}
	}
	if (ks->n == ks->cap && keys_grow(ks, ks->cap ? ks->cap * 2 : 64) != 0)
		return -ENOMEM;
	ks->k[ks->n] = *k;
	index_key(ks, (uint32_t)ks->n);
	ks->n++;
	return 0;
}

uint32_t admin_keys_first(const ovc_admin_keys *ks, const char *asset,
			  const char *user)
{
	uint32_t i;

	if (!ks->nb)
		return OVC_KEY_NONE;
	for (i = ks->b_owner[owner_bucket(ks, asset, user)]; i != OVC_KEY_NONE;
	     i = ks->next_owner[i])
		if (!strcmp(ks->k[i].asset, asset) && !strcmp(ks->k[i].user, user))
			return i;
	return OVC_KEY_NONE;
}

uint32_t admin_keys_next(const ovc_admin_keys *ks, uint32_t i)
{
	const ovc_admin_key *k = &ks->k[i];

	for (i = ks->next_owner[i]; i != OVC_KEY_NONE; i = ks->next_owner[i])
		if (!strcmp(ks->k[i].asset, k->asset) && !strcmp(ks->k[i].user, k->user))
			return i;
	return OVC_KEY_NONE;
}

ovc_admin_key *admin_keys_current(ovc_admin_keys *ks, const char *asset,
				  const char *user)
{
	const char *who = user ? user : "";

	for (uint32_t i = admin_keys_first(ks, asset, who); i != OVC_KEY_NONE;
	     i = admin_keys_next(ks, i))
		if (ks->k[i].current)
			return &ks->k[i];
	return NULL;
}

/* A random version 4 key id (RFC 9562) and key. */
static void key_random(ovc_admin_key *k)
{
	randombytes_buf(k->id, sizeof(k->id));
	k->id[6] = (uint8_t)((k->id[6] & 0x0f) | 0x40);
	k->id[8] = (uint8_t)((k->id[8] & 0x3f) | 0x80);
	randombytes_buf(k->key, sizeof(k->key));
}

ovc_admin_key *admin_keys_new(ovc_admin_keys *ks, const char *asset,
			      const char *user, int64_t now)
{
	ovc_admin_key k, *old;

	memset(&k, 0, sizeof(k));
	key_random(&k);
	snprintf(k.asset, sizeof(k.asset), "%s", asset);
	snprintf(k.user, sizeof(k.user), "%s", user ? user : "");
	k.created = now;
	k.current = 1;
	old = admin_keys_current(ks, asset, user);
	if (old)
		old->current = 0;
	if (admin_keys_add(ks, &k) != 0) {
		if (old)
			old->current = 1; /* still valid: add failed before growing */
		sodium_memzero(&k, sizeof(k));
		return NULL;
	}
	sodium_memzero(&k, sizeof(k));
	return &ks->k[ks->n - 1];
}

void admin_keys_free(ovc_admin_keys *ks)
{
	ovc_secret_free(ks->k);
	free(ks->next_owner);
	free(ks->next_id);
	free(ks->b_owner);
	free(ks->b_id);
	memset(ks, 0, sizeof(*ks));
}

static const char *json_str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* One entry of keys.age (or of an export). */
static int admin_key_from_json(const cJSON *it, size_t i, ovc_admin_key *k,
			       ovc_err *e)
{
	const char *id = json_str(it, "key_id"), *b64 = json_str(it, "key");
	const char *asset = json_str(it, "asset"), *user = json_str(it, "user");
	const char *created = json_str(it, "created");
	const cJSON *cur = cJSON_GetObjectItemCaseSensitive(it, "current");
	size_t klen = 0;
	time_t t = 0;

	memset(k, 0, sizeof(*k));
	if (!id || ovc_key_id_parse(id, k->id) != 0)
		return ovc_err_set(e, -EINVAL, "keys[%zu].key_id: not a UUID", i);
	if (!b64 || sodium_base642bin(k->key, sizeof(k->key), b64, strlen(b64), NULL,
				      &klen, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    klen != OVC_KEY_BYTES)
		return ovc_err_set(e, -EINVAL, "keys[%zu].key: not 32 bytes of base64", i);
	if (!asset || strlen(asset) >= sizeof(k->asset))
		return ovc_err_set(e, -EINVAL, "keys[%zu].asset: missing or too long", i);
	if (user && strlen(user) >= sizeof(k->user))
		return ovc_err_set(e, -EINVAL, "keys[%zu].user: too long", i);
	if (created && ovc_time_parse(created, &t) != 0)
		return ovc_err_set(e, -EINVAL, "keys[%zu].created: not a time", i);
	snprintf(k->asset, sizeof(k->asset), "%s", asset);
	snprintf(k->user, sizeof(k->user), "%s", user ? user : "");
	k->created = t;
	k->current = cur ? cJSON_IsTrue(cur) : 0;
	return 0;
}

int admin_keys_parse(const char *json, size_t len, ovc_admin_keys *ks,
		     ovc_err *e)
{
	cJSON *root = cJSON_ParseWithLength(json, len), *arr, *it;
	const char *fmt;
	size_t i = 0;
	int rc = 0;

	if (!root)
		return ovc_err_set(e, -EINVAL, "not JSON");
	fmt = json_str(root, "format");
	arr = cJSON_GetObjectItemCaseSensitive(root, "keys");
	if (!fmt || (strcmp(fmt, "overcrypt-keys/1") && strcmp(fmt, "overcrypt-adminkeys/1")) ||
	    !cJSON_IsArray(arr)) {
		rc = ovc_err_set(e, -EINVAL, "not an overcrypt keys file");
		goto out;
	}
	cJSON_ArrayForEach(it, arr) {
		ovc_admin_key k;
		rc = admin_key_from_json(it, i++, &k, e);
		if (!rc) {
			rc = admin_keys_add(ks, &k);
			if (rc == -EEXIST)
				ovc_err_set(e, rc, "keys[%zu]: key id seen before with other bytes", i - 1);
		}
		sodium_memzero(&k, sizeof(k));
		if (rc)
			break;
	}
out:
	cJSON_Delete(root);
	return rc;
}

/* keys.age (export_form 0) or an export (1: "overcrypt-keys/1", which
 * `overcrypt decrypt --key` reads: key_id, key, asset, user, created,
 * current). Output from ovc_wipe_malloc. */
int admin_keys_format(const ovc_admin_keys *ks, int export_form, char **out,
		      size_t *len)
{
	cJSON *root = cJSON_CreateObject(), *arr = cJSON_CreateArray();
	char b64[sodium_base64_ENCODED_LEN(OVC_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	char id[OVC_KEY_ID_STRLEN + 1], t[21];
	char *txt;
	int ok = root && arr;

	if (ok) {
		cJSON_AddStringToObject(root, "format", export_form ? "overcrypt-keys/1" : "overcrypt-adminkeys/1");
		cJSON_AddItemToObject(root, "keys", arr);
		arr = NULL;
	}
	for (size_t i = 0; ok && i < ks->n; i++) {
		const ovc_admin_key *k = &ks->k[i];
		cJSON *o = cJSON_CreateObject();
		ovc_key_id_format(k->id, id);
		sodium_bin2base64(b64, sizeof(b64), k->key, OVC_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL);
		ovc_time_format((time_t)k->created, t);
		ok = o && cJSON_AddStringToObject(o, "key_id", id) &&
		     cJSON_AddStringToObject(o, "key", b64) &&
		     cJSON_AddStringToObject(o, "asset", k->asset) &&
		     (!k->user[0] || cJSON_AddStringToObject(o, "user", k->user)) &&
		     cJSON_AddStringToObject(o, "created", t) &&
		     cJSON_AddBoolToObject(o, "current", k->current);
		if (o)
			cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(root, "keys"), o);
	}
	sodium_memzero(b64, sizeof(b64));
	cJSON_Delete(arr);
	txt = ok ? cJSON_Print(root) : NULL; /* from the wiping allocator */
	cJSON_Delete(root);
	if (!txt)
		return -ENOMEM;
	*out = txt;
	*len = strlen(txt);
	return 0;
}

/* ---- secrets on disk ------------------------------------------------------- */

static int admin_recipients(const ovc_org *org, ovc_age_recipient **out,
			    size_t *n, ovc_err *e)
{
	*n = 0;
	*out = calloc(org->nadmins ? org->nadmins : 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (size_t i = 0; i < org->nadmins; i++)
		if (org->admins[i].recipient)
			(*out)[(*n)++] = org->admins[i].rcp;
	if (!*n) {
		free(*out);
		*out = NULL;
		return ovc_err_set(e, -EINVAL, "org.conf names no [admin] with a recipient");
	}
	return 0;
}

/* Encrypt `data` to `rcps` and write it atomically to store file `name`. */
static int write_age(ovc_store *s, const char *name, const ovc_age_recipient *rcps,
		     size_t n, const uint8_t *data, size_t len, ovc_err *e)
{
	ovc_age_encrypt_opts o = { .recipients = rcps, .n_recipients = n };
	char path[PATH_MAX];
	uint8_t *ct = NULL;
	size_t clen;
	int rc = ovc_age_encrypt(&o, data, len, &ct, &clen, e);

	if (!rc) {
		rc = ovc_write_file_atomic(store_path(s, name, path), ct, clen, 0600, 0);
		if (rc)
			ovc_err_set(e, rc, "%s: %s", path, strerror(-rc));
	}
	free(ct);
	return rc;
}

int store_save_secrets(ovc_store *s, const ovc_org *org, ovc_err *e)
{
	uint8_t sk[OVC_MINISIGN_SECKEY_BYTES];
	ovc_age_recipient *rcps = NULL;
	char *json = NULL;
	size_t n, len;
	int rc = admin_recipients(org, &rcps, &n, e);

	if (rc)
		return rc;
	rc = admin_keys_format(&s->keys, 0, &json, &len);
	if (!rc)
		rc = write_age(s, "keys.age", rcps, n, (uint8_t *)json, len, e);
	if (!rc) {
		ovc_minisign_seckey_encode(s->sk, sk);
		rc = write_age(s, "org.key.age", rcps, n, sk, sizeof(sk), e);
		sodium_memzero(sk, sizeof(sk));
	}
	ovc_wipe_free(json);
	free(rcps);
	return rc;
}

/* Decrypt store file `name` with the admin identity. */
static int read_age(ovc_store *s, const char *name, uint8_t **out, size_t *len,
		    ovc_err *e)
{
	const ovc_age_identity *ids[1] = { s->id };
	ovc_age_decrypt_opts o = { .identities = ids, .n_identities = 1 };
	char path[PATH_MAX];
	uint8_t *ct;
	size_t clen;
	int rc = ovc_read_file(store_path(s, name, path), SECRET_MAX, 0, &ct, &clen);

	if (rc)
		return ovc_err_set(e, rc, "%s: %s", path, strerror(-rc));
	rc = ovc_age_decrypt_buf(&o, ct, clen, SECRET_MAX, out, len, NULL, e);
	free(ct);
	if (rc == -ENOKEY)
		return ovc_err_set(e, rc, "%s: this admin identity is not one of its recipients", path);
	if (rc)
		return ovc_err_wrap(e, rc, "%s: ", path);
	return 0;
}

/* ---- state.json ------------------------------------------------------------ */

ovc_state_user *state_user(ovc_state *st, const char *name, int create)
{
	ovc_state_user *n;

	for (size_t i = 0; i < st->nusers; i++)
		if (!strcmp(st->users[i].name, name))
			return &st->users[i];
	if (!create)
		return NULL;
	n = realloc(st->users, (st->nusers + 1) * sizeof(*n));
	if (!n)
		return NULL;
	st->users = n;
	n = &st->users[st->nusers];
	memset(n, 0, sizeof(*n));
	n->name = strdup(name);
	if (!n->name)
		return NULL;
	st->nusers++;
	return n;
}

ovc_state_asset *state_asset(ovc_state *st, const char *name, int create)
{
	ovc_state_asset *n;

	for (size_t i = 0; i < st->nassets; i++)
		if (!strcmp(st->assets[i].name, name))
			return &st->assets[i];
	if (!create)
		return NULL;
	n = realloc(st->assets, (st->nassets + 1) * sizeof(*n));
	if (!n)
		return NULL;
	st->assets = n;
	n = &st->assets[st->nassets];
	memset(n, 0, sizeof(*n));
	n->name = strdup(name);
	if (!n->name)
		return NULL;
	st->nassets++;
	return n;
}

static void state_user_clear_keys(ovc_state_user *u)
{
	for (size_t j = 0; j < u->nrule_keys; j++)
		free(u->rule_keys[j]);
	free(u->rule_keys);
	u->rule_keys = NULL;
	u->nrule_keys = 0;
}

void state_free(ovc_state *st)
{
	for (size_t i = 0; i < st->nusers; i++) {
		free(st->users[i].name);
		state_user_clear_keys(&st->users[i]);
	}
	for (size_t i = 0; i < st->nassets; i++)
		free(st->assets[i].name);
	free(st->users);
	free(st->assets);
	free(st->snapshot);
	memset(st, 0, sizeof(*st));
}

static int64_t json_time(const cJSON *o, const char *name)
{
	const char *s = json_str(o, name);
	time_t t = 0;

	if (s)
		(void)ovc_time_parse(s, &t);
	return t;
}

static int state_user_from_json(ovc_state *st, const cJSON *it)
{
	const cJSON *serial = cJSON_GetObjectItemCaseSensitive(it, "serial");
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(it, "rule_keys"), *k;
	const char *digest = json_str(it, "digest");
	ovc_state_user *u = state_user(st, it->string, 1);

	if (!u)
		return -ENOMEM;
	u->serial = cJSON_IsNumber(serial) ? (uint64_t)serial->valuedouble : 0;
	snprintf(u->digest, sizeof(u->digest), "%s", digest ? digest : "");
	u->published = json_time(it, "published");
	u->valid_until = json_time(it, "valid_until");
	cJSON_ArrayForEach(k, keys) {
		char **nk;
		if (!cJSON_IsString(k))
			continue;
		nk = realloc(u->rule_keys, (u->nrule_keys + 1) * sizeof(*nk));
		if (!nk)
			return -ENOMEM;
		u->rule_keys = nk;
		if (!(u->rule_keys[u->nrule_keys] = strdup(k->valuestring)))
			return -ENOMEM;
		u->nrule_keys++;
	}
	return 0;
}

int state_load(ovc_store *s, ovc_err *e)
{
	char path[PATH_MAX];
	uint8_t *txt;
	size_t len;
	cJSON *root, *it;
	const cJSON *snap;
	int rc = ovc_read_file(store_path(s, "state.json", path), 64u << 20, 0, &txt, &len);

	if (rc)
		return ovc_err_set(e, rc, "%s: %s", path, strerror(-rc));
	root = cJSON_ParseWithLength((char *)txt, len);
	free(txt);
	if (!root || !json_str(root, "format") ||
	    strcmp(json_str(root, "format"), "overcrypt-state/1") != 0) {
		cJSON_Delete(root);
		return ovc_err_set(e, -EINVAL, "%s: not an overcrypt state file", path);
	}
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(root, "users"))
		if (!rc)
			rc = state_user_from_json(&s->state, it);
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(root, "assets")) {
		ovc_state_asset *a = rc ? NULL : state_asset(&s->state, it->string, 1);
		const char *type = json_str(it, "type");
		if (!a) {
			rc = -ENOMEM;
			break;
		}
		if (!type || ovc_rule_type_parse(type, &a->type) != 0)
			a->type = OVC_RULE_SHARED;
		a->deleted = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "deleted"));
	}
	snap = cJSON_GetObjectItemCaseSensitive(root, "snapshot");
	if (!rc && cJSON_IsObject(snap)) {
		char *t = cJSON_PrintUnformatted(snap);
		s->state.snapshot = t ? strdup(t) : NULL;
		cJSON_free(t);
	}
	s->state.last_publish = json_time(root, "last_publish");
	cJSON_Delete(root);
	return rc ? ovc_err_set(e, rc, "%s: out of memory", path) : 0;
}

static cJSON *state_user_to_json(const ovc_state_user *u)
{
	cJSON *o = cJSON_CreateObject(), *keys = cJSON_CreateArray();
	char t[21];

	if (!o || !keys) {
		cJSON_Delete(o);
		cJSON_Delete(keys);
		return NULL;
	}
	cJSON_AddNumberToObject(o, "serial", (double)u->serial);
	cJSON_AddStringToObject(o, "digest", u->digest);
	ovc_time_format((time_t)u->published, t);
	cJSON_AddStringToObject(o, "published", t);
	ovc_time_format((time_t)u->valid_until, t);
	cJSON_AddStringToObject(o, "valid_until", t);
	for (size_t j = 0; j < u->nrule_keys; j++)
		cJSON_AddItemToArray(keys, cJSON_CreateString(u->rule_keys[j]));
	cJSON_AddItemToObject(o, "rule_keys", keys);
	return o;
}

int state_save(ovc_store *s, ovc_err *e)
{
	cJSON *root = cJSON_CreateObject(), *users = cJSON_CreateObject();
	cJSON *assets = cJSON_CreateObject();
	char path[PATH_MAX], t[21], *txt = NULL;
	int rc = -ENOMEM;

	if (!root || !users || !assets)
		goto out;
	cJSON_AddStringToObject(root, "format", "overcrypt-state/1");
	for (size_t i = 0; i < s->state.nusers; i++)
		cJSON_AddItemToObject(users, s->state.users[i].name,
				      state_user_to_json(&s->state.users[i]));
	for (size_t i = 0; i < s->state.nassets; i++) {
		cJSON *a = cJSON_CreateObject();
		cJSON_AddStringToObject(a, "type", ovc_rule_type_name(s->state.assets[i].type));
		cJSON_AddBoolToObject(a, "deleted", s->state.assets[i].deleted);
		cJSON_AddItemToObject(assets, s->state.assets[i].name, a);
	}
	cJSON_AddItemToObject(root, "users", users);
	cJSON_AddItemToObject(root, "assets", assets);
	users = assets = NULL;
	ovc_time_format((time_t)s->state.last_publish, t);
	cJSON_AddStringToObject(root, "last_publish", t);
	if (s->state.snapshot)
		cJSON_AddItemToObject(root, "snapshot", cJSON_Parse(s->state.snapshot));
	else
		cJSON_AddNullToObject(root, "snapshot");
	txt = cJSON_Print(root);
	if (!txt)
		goto out;
	rc = ovc_write_file_atomic(store_path(s, "state.json", path), txt, strlen(txt), 0600, 0);
	if (rc)
		ovc_err_set(e, rc, "%s: %s", path, strerror(-rc));
out:
	cJSON_free(txt);
	cJSON_Delete(root);
	cJSON_Delete(users);
	cJSON_Delete(assets);
	return rc == -ENOMEM ? ovc_err_set(e, rc, "out of memory") : rc;
}

/* ---- audit -------------------------------------------------------------------- */

int store_audit(ovc_store *s, time_t now, const char *action,
		const char *object, const char *details_json, ovc_err *e)
{
	char path[PATH_MAX];

	return ovc_audit_append(store_path(s, "audit.log", path), now, s->actor,
				action, object, details_json, e);
}

void ovc_store_set_actor(ovc_store *s, const char *name)
{
	char *n = strdup(name);

	if (n) {
		free(s->actor);
		s->actor = n;
	}
}

/* ---- init, open, unlock ------------------------------------------------------- */

static int dir_is_empty(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int empty = 1;

	if (!d)
		return errno == ENOENT ? 1 : -errno;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = 0;
	closedir(d);
	return empty;
}

/* org.conf for a new store: the admin and org filled in, then the template
 * with every section and setting as commented examples. */
static char *org_conf_text(const ovc_store_init_opts *o, const char *rcp)
{
	char *txt = NULL;

	if (asprintf(&txt,
		     "# org.conf - the organisation, for overcrypt-admin (see overcrypt-admin(1)).\n"
		     "# Run 'overcrypt-admin check' after every edit, then 'publish'.\n\n"
		     "[settings]\norg = %s\n\n[admin %s]\nrecipient = %s\n\n%s",
		     o->org, o->admin, rcp,
		     o->org_conf_template ? o->org_conf_template : "") < 0)
		return NULL;
	return txt;
}

static int write_identity(const char *path, const ovc_age_identity *id,
			  const char *pass, ovc_err *e)
{
	ovc_age_encrypt_opts o = { .passphrase = pass, .scrypt_log_n = OVC_ADMIN_LOGN };
	char *sec = ovc_secret_alloc(OVC_AGE_IDENTITY_STRLEN + 1), *txt = NULL;
	char rcp[OVC_AGE_RECIPIENT_STRLEN + 1], t[21];
	ovc_age_recipient r;
	uint8_t *ct = NULL;
	size_t clen;
	int n, rc = -ENOMEM;

	if (!sec)
		return ovc_err_set(e, -ENOMEM, "out of secure memory");
	ovc_age_identity_encode(id, sec);
	ovc_age_identity_recipient(id, &r);
	ovc_age_recipient_encode(&r, rcp);
	ovc_time_format(time(NULL), t);
	txt = ovc_wipe_malloc(256);
	if (txt) {
		n = snprintf(txt, 256, "# created: %s\n# public key: %s\n%s\n", t, rcp, sec);
		rc = ovc_age_encrypt(&o, (uint8_t *)txt, (size_t)n, &ct, &clen, e);
	}
	if (!rc) {
		rc = ovc_write_file_atomic(path, ct, clen, 0600, 1);
		if (rc)
			ovc_err_set(e, rc, "%s: %s", path, strerror(-rc));
	}
	free(ct);
	ovc_wipe_free(txt);
	ovc_secret_free(sec);
	return rc;
}

static int init_files(ovc_store *s, const ovc_store_init_opts *o, ovc_err *e)
{
	char path[PATH_MAX], rcp[OVC_AGE_RECIPIENT_STRLEN + 1], *txt = NULL, *pub = NULL;
	ovc_minisign_pubkey pk;
	ovc_age_recipient r;
	ovc_org org;
	ovc_org_admin adm;
	int rc;

	rc = ovc_age_identity_generate(&s->id);
	if (!rc)
		rc = ovc_minisign_keygen(&s->sk, &pk);
	if (rc)
		return ovc_err_set(e, rc, "cannot generate keys");
	rc = write_identity(store_path(s, "admin-identity.age", path), s->id, o->passphrase, e);
	if (rc)
		return rc;
	ovc_age_identity_recipient(s->id, &r);
	ovc_age_recipient_encode(&r, rcp);
	if (ovc_minisign_pubkey_format(&pk, &pub) != 0)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	rc = ovc_write_file_atomic(store_path(s, "org.pub", path), pub, strlen(pub), 0644, 1);
	free(pub);
	if (rc)
		return ovc_err_set(e, rc, "%s: %s", path, strerror(-rc));
	/* keys.age and org.key.age go to the one admin there is. */
	memset(&org, 0, sizeof(org));
	memset(&adm, 0, sizeof(adm));
	adm.recipient = rcp;
	adm.rcp = r;
	org.admins = &adm;
	org.nadmins = 1;
	rc = store_save_secrets(s, &org, e);
	if (rc)
		return rc;
	txt = org_conf_text(o, rcp);
	if (!txt)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	rc = ovc_write_file_atomic(store_path(s, "org.conf", path), txt, strlen(txt), 0644, 1);
	free(txt);
	if (rc)
		return ovc_err_set(e, rc, "%s: %s", path, strerror(-rc));
	rc = state_save(s, e);
	if (!rc)
		rc = store_audit(s, time(NULL), "init", o->org, NULL, e);
	return rc;
}

static ovc_store *store_new(const char *dir)
{
	ovc_store *s = calloc(1, sizeof(*s));
	struct passwd *pw = getpwuid(geteuid());

	if (!s)
		return NULL;
	s->lock_fd = -1;
	s->dir = strdup(dir);
	s->actor = strdup(pw ? pw->pw_name : "unknown");
	if (!s->dir || !s->actor) {
		ovc_store_close(s);
		return NULL;
	}
	return s;
}

int ovc_store_init(const ovc_store_init_opts *o, ovc_err *e)
{
	ovc_store *s;
	int rc = dir_is_empty(o->dir);

	if (rc < 0)
		return ovc_err_set(e, rc, "%s: %s", o->dir, strerror(-rc));
	if (rc == 0)
		return ovc_err_set(e, -EEXIST, "%s exists and is not empty", o->dir);
	rc = ovc_passphrase_check(o->passphrase, OVC_ADMIN_MIN_PASS, o->admin, NULL, e);
	if (rc)
		return ovc_err_wrap(e, rc, "admin passphrase refused: ");
	if (mkdir(o->dir, 0700) < 0 && errno != EEXIST)
		return ovc_err_set(e, -errno, "%s: %s", o->dir, strerror(errno));
	s = store_new(o->dir);
	if (!s)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	rc = init_files(s, o, e);
	ovc_store_close(s);
	return rc;
}

int ovc_store_open(const char *dir, ovc_store **out, ovc_err *e)
{
	static const char *const need[] = { "org.conf", "org.pub", "keys.age",
					    "org.key.age", "state.json", "audit.log" };
	char path[PATH_MAX];
	ovc_store *s;
	int rc;

	*out = NULL;
	s = store_new(dir);
	if (!s)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (access(store_path(s, need[i], path), F_OK) != 0) {
			ovc_store_close(s);
			return ovc_err_set(e, -ENOENT, "%s is not an admin store: %s is missing (overcrypt-admin init?)",
					   dir, need[i]);
		}
	}
	s->lock_fd = open(store_path(s, ".lock", path), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = ovc_err_set(e, -EBUSY, "%s: another overcrypt-admin is working on this store", dir);
		ovc_store_close(s);
		return rc;
	}
	rc = state_load(s, e);
	if (rc) {
		ovc_store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void ovc_store_close(ovc_store *s)
{
	if (!s)
		return;
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	ovc_org_free(s->org);
	state_free(&s->state);
	ovc_age_identity_free(s->id);
	ovc_minisign_seckey_free(s->sk);
	admin_keys_free(&s->keys);
	free(s->dir);
	free(s->actor);
	free(s);
}

int ovc_store_unlock(ovc_store *s, const char *identity_file,
		     const char *passphrase, ovc_err *e)
{
	char path[PATH_MAX];
	uint8_t *txt = NULL;
	size_t len;
	int rc;

	if (s->unlocked)
		return 0;
	rc = ovc_keystore_unlock(identity_file ? identity_file : store_path(s, "admin-identity.age", path),
				 passphrase, 0, &s->id, e);
	if (rc)
		return ovc_err_wrap(e, rc, "admin identity: ");
	rc = read_age(s, "keys.age", &txt, &len, e);
	if (!rc)
		rc = admin_keys_parse((char *)txt, len, &s->keys, e);
	ovc_wipe_free(txt);
	if (rc)
		return rc;
	rc = read_age(s, "org.key.age", &txt, &len, e);
	if (!rc)
		rc = ovc_minisign_seckey_decode(txt, len, &s->sk, e);
	ovc_wipe_free(txt);
	if (rc)
		return rc;
	s->unlocked = 1;
	return 0;
}

int ovc_store_org(ovc_store *s, const ovc_org **out, ovc_diag *d)
{
	ovc_org_known_asset *known;
	char path[PATH_MAX];
	size_t n = 0;
	int rc;

	*out = NULL;
	if (!s->org) {
		rc = ovc_org_load(store_path(s, "org.conf", path), &s->org, d);
		if (rc)
			return rc;
	}
	known = calloc(s->state.nassets + 1, sizeof(*known));
	if (!known)
		return -ENOMEM;
	for (size_t i = 0; i < s->state.nassets; i++) {
		known[n].name = s->state.assets[i].name;
		known[n++].type = s->state.assets[i].type;
	}
	rc = ovc_org_check(s->org, known, n, d);
	free(known);
	if (!rc)
		*out = s->org;
	return rc;
}
