/* assets.c - asset and key commands of the admin store: list, delete,
 * restore, rotate, export, import. See store.h. */
#define _GNU_SOURCE
#include "policy/store_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/keystore.h"

const char *ovc_store_dir(const ovc_store *s)
{
	return s->dir;
}

const ovc_admin_key *ovc_store_keys(const ovc_store *s, size_t *n)
{
	*n = s->keys.n;
	return s->keys.k;
}

/* org.conf, loaded and checked; errors go to `d`. */
static int org_of(ovc_store *s, const ovc_org **org, ovc_diag *d, ovc_err *e)
{
	int rc = ovc_store_org(s, org, d);

	return rc ? ovc_err_set(e, -EINVAL, "org.conf has errors") : 0;
}

int ovc_store_asset_list(ovc_store *s, int deleted, ovc_asset_info **out,
			 size_t *n, ovc_diag *d, ovc_err *e)
{
	const ovc_org *org;
	ovc_asset_info *v;
	size_t k = 0;
	int rc = org_of(s, &org, d, e);

	*out = NULL;
	*n = 0;
	if (rc)
		return rc;
	v = calloc(org->nassets + s->state.nassets + 1, sizeof(*v));
	if (!v)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < org->nassets; i++) {
		ovc_state_asset *sa = state_asset(&s->state, org->assets[i].name, 0);
		int del = sa && sa->deleted;
		if (del != !!deleted)
			continue;
		v[k].name = org->assets[i].name;
		v[k].type = org->assets[i].type;
		v[k].path = org->assets[i].path;
		v[k++].deleted = del;
	}
	/* Known from earlier publishes but gone from org.conf. */
	for (size_t i = 0; i < s->state.nassets; i++) {
		const ovc_state_asset *sa = &s->state.assets[i];
		if (ovc_org_find_asset(org, sa->name) || sa->deleted != !!deleted)
			continue;
		v[k].name = sa->name;
		v[k].type = sa->type;
		v[k++].deleted = sa->deleted;
	}
	*out = v;
	*n = k;
	return 0;
}

/* {"key": "value"}, escaped by cJSON; free() the result. */
static char *audit_details(const char *key, const char *value)
{
	cJSON *o = cJSON_CreateObject();
	char *txt = NULL, *copy = NULL;

	if (o && cJSON_AddStringToObject(o, key, value))
		txt = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (txt)
		copy = strdup(txt);
	cJSON_free(txt);
	return copy;
}

int ovc_store_asset_delete(ovc_store *s, const char *name, ovc_diag *d,
			   ovc_err *e)
{
	const ovc_org *org;
	const ovc_org_asset *a;
	ovc_state_asset *sa;
	int rc = org_of(s, &org, d, e);

	if (rc)
		return rc;
	a = ovc_org_find_asset(org, name);
	sa = state_asset(&s->state, name, 0);
	if (!a && !sa)
		return ovc_err_set(e, -ENOENT, "no asset '%s'", name);
	if (sa && sa->deleted)
		return ovc_err_set(e, -EALREADY, "asset '%s' is deleted already", name);
	sa = state_asset(&s->state, name, 1);
	if (!sa)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	if (a)
		sa->type = a->type;
	sa->deleted = 1;
	rc = state_save(s, e);
	if (!rc)
		rc = store_audit(s, time(NULL), "asset delete", name, NULL, e);
	return rc;
}

int ovc_store_asset_restore(ovc_store *s, const char *name, ovc_diag *d,
			    ovc_err *e)
{
	const ovc_org *org;
	const ovc_org_asset *a;
	ovc_state_asset *sa = state_asset(&s->state, name, 0);
	int rc;

	if (!sa || !sa->deleted)
		return ovc_err_set(e, -ENOENT, "no deleted asset '%s'", name);
	rc = org_of(s, &org, d, e);
	if (rc)
		return rc;
	a = ovc_org_find_asset(org, name);
	if (!a)
		return ovc_err_set(e, -ENOENT, "asset '%s' is not in org.conf: add its section back first", name);
	for (size_t i = 0; i < org->nassets; i++) {
		const ovc_org_asset *o = &org->assets[i];
		const ovc_state_asset *os = state_asset(&s->state, o->name, 0);
		if (o == a || (os && os->deleted) || strcmp(o->path, a->path))
			continue;
		return ovc_err_set(e, -EEXIST, "cannot restore '%s': the active asset '%s' has its path %s (org.conf:%d)",
				   name, o->name, o->path, o->line);
	}
	sa->deleted = 0;
	rc = state_save(s, e);
	if (!rc)
		rc = store_audit(s, time(NULL), "asset restore", name, NULL, e);
	return rc;
}

int ovc_store_keys_rotate(ovc_store *s, const char *asset, size_t *created,
			  ovc_diag *d, ovc_err *e)
{
	const ovc_org *org;
	const ovc_org_asset *a;
	char *details;
	int rc = org_of(s, &org, d, e);

	*created = 0;
	if (rc)
		return rc;
	if (!s->unlocked)
		return ovc_err_set(e, -EACCES, "the store is locked");
	a = ovc_org_find_asset(org, asset);
	if (!a)
		return ovc_err_set(e, -ENOENT, "no asset '%s' in org.conf", asset);
	if (a->type == OVC_RULE_PUBLIC)
		return ovc_err_set(e, -EINVAL, "asset '%s' is public: it has no key", asset);
	if (a->type == OVC_RULE_SHARED) {
		if (!admin_keys_new(&s->keys, asset, "", time(NULL)))
			return ovc_err_set(e, -ENOMEM, "out of memory");
		(*created)++;
	} else {
		/* One new key per user who holds one; users without get theirs
		 * at the next publish. Collect first: adding moves the slab. */
		size_t n = s->keys.n;
		char (*users)[65] = calloc(n + 1, sizeof(*users));
		if (!users)
			return ovc_err_set(e, -ENOMEM, "out of memory");
		for (size_t i = 0; i < n; i++)
			if (s->keys.k[i].current && !strcmp(s->keys.k[i].asset, asset))
				memcpy(users[i], s->keys.k[i].user, sizeof(users[i]));
		for (size_t i = 0; i < n && !rc; i++) {
			if (!users[i][0])
				continue;
			if (!admin_keys_new(&s->keys, asset, users[i], time(NULL)))
				rc = ovc_err_set(e, -ENOMEM, "out of memory");
			else
				(*created)++;
		}
		free(users);
		if (rc)
			return rc;
	}
	rc = store_save_secrets(s, org, e);
	details = audit_details("asset", asset);
	if (!rc)
		rc = store_audit(s, time(NULL), "keys rotate", asset, details, e);
	free(details);
	return rc;
}

int ovc_store_keys_export(ovc_store *s, const char *out, const char *pass,
			  ovc_err *e)
{
	ovc_age_encrypt_opts o = { .passphrase = pass, .scrypt_log_n = OVC_ADMIN_LOGN };
	char *json = NULL;
	uint8_t *ct = NULL;
	size_t len, clen;
	int rc;

	if (!s->unlocked)
		return ovc_err_set(e, -EACCES, "the store is locked");
	rc = ovc_passphrase_check(pass, OVC_ADMIN_MIN_PASS, NULL, NULL, e);
	if (rc)
		return ovc_err_wrap(e, rc, "export passphrase refused: ");
	rc = admin_keys_format(&s->keys, 1, &json, &len);
	if (rc)
		return ovc_err_set(e, rc, "out of memory");
	rc = ovc_age_encrypt(&o, (uint8_t *)json, len, &ct, &clen, e);
	ovc_wipe_free(json);
	if (!rc) {
		rc = ovc_write_file_atomic(out, ct, clen, 0600, 1);
		if (rc)
			ovc_err_set(e, rc, "%s: %s", out, rc == -EEXIST ? "exists; not overwritten" : strerror(-rc));
	}
	free(ct);
	if (!rc)
		rc = store_audit(s, time(NULL), "keys export", out, NULL, e);
	return rc;
}

/* The plaintext of an export (age passphrase file) or a plain keys file. */
static int read_export(const char *file, const char *pass, uint8_t **out,
		       size_t *len, ovc_err *e)
{
	const char *const passes[1] = { pass };
	ovc_age_decrypt_opts o = { .passphrases = passes, .n_passphrases = pass ? 1 : 0 };
	uint8_t *raw;
	size_t rlen;
	int rc = ovc_read_file(file, 64u << 20, 1, &raw, &rlen);

	if (rc)
		return ovc_err_set(e, rc, "%s: %s", file, strerror(-rc));
	if (!ovc_age_is_age(raw, rlen)) {
		*out = raw;
		*len = rlen;
		return 0;
	}
	if (!pass) {
		ovc_wipe_free(raw);
		return ovc_err_set(e, -ENOKEY, "%s needs a passphrase", file);
	}
	rc = ovc_age_decrypt_buf(&o, raw, rlen, 64u << 20, out, len, NULL, e);
	ovc_wipe_free(raw);
	return rc ? ovc_err_wrap(e, rc, "%s: ", file) : 0;
}

int ovc_store_keys_import(ovc_store *s, const char *file, const char *pass,
			  size_t *added, ovc_diag *d, ovc_err *e)
{
	ovc_admin_keys in = { 0 };
	const ovc_org *org;
	uint8_t *txt = NULL;
	size_t len, before = s->keys.n;
	char *details = NULL;
	int rc;

	*added = 0;
	if (!s->unlocked)
		return ovc_err_set(e, -EACCES, "the store is locked");
	rc = org_of(s, &org, d, e);
	if (!rc)
		rc = read_export(file, pass, &txt, &len, e);
	if (!rc)
		rc = admin_keys_parse((char *)txt, len, &in, e);
	ovc_wipe_free(txt);
	/* All or nothing: refuse before adding anything. */
	for (size_t i = 0; !rc && i < in.n; i++)
		for (size_t j = 0; j < s->keys.n; j++)
			if (!memcmp(in.k[i].id, s->keys.k[j].id, OVC_KEY_ID_BYTES) &&
			    sodium_memcmp(in.k[i].key, s->keys.k[j].key, OVC_KEY_BYTES)) {
				char id[OVC_KEY_ID_STRLEN + 1];
				ovc_key_id_format(in.k[i].id, id);
				rc = ovc_err_set(e, -EEXIST, "%s: key %s is in the store with other bytes; nothing imported",
						 file, id);
				break;
			}
	for (size_t i = 0; !rc && i < in.n; i++) {
		ovc_admin_key k = in.k[i];
		/* An import never replaces the key new files get. */
		if (admin_keys_current(&s->keys, k.asset, k.user))
			k.current = 0;
		rc = admin_keys_add(&s->keys, &k);
		sodium_memzero(&k, sizeof(k));
	}
	admin_keys_free(&in);
	if (rc)
		return rc;
	*added = s->keys.n - before;
	rc = store_save_secrets(s, org, e);
	if (!rc && asprintf(&details, "{\"added\":%zu}", *added) < 0)
		details = NULL;
	if (!rc)
		rc = store_audit(s, time(NULL), "keys import", file, details, e);
	free(details);
	return rc;
}
