/* publish.c - compile every user's policy from org.conf, sign it and write
 * it; explain a path for a user. See store.h and docs/admin-store.md. */
#define _GNU_SOURCE
#include "policy/store_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/audit.h"
#include "policy/document.h"

/* A user's compiled policy before keys are sealed. */
struct compiled {
	ovc_policy p;              /* rules point into the org model */
	ovc_keyset *ks;            /* the keys the user may use */
	char digest[65];           /* of the content, see digest_of() */
};

static void compiled_release(struct compiled *c)
{
	free(c->p.rules);
	free(c->p.keys);
	ovc_keyset_free(c->ks);
	memset(c, 0, sizeof(*c));
}

static int asset_deleted(const ovc_store *s, const char *name)
{
	for (size_t i = 0; i < s->state.nassets; i++)
		if (!strcmp(s->state.assets[i].name, name))
			return s->state.assets[i].deleted;
	return 0;
}

/* The key a rule names: the current one of (asset, user) for private
 * assets, of the asset for shared ones; created when missing. */
static ovc_admin_key *rule_key(ovc_store *s, const ovc_org_asset *a,
			       const char *user, time_t now, size_t *created)
{
	const char *who = a->type == OVC_RULE_PRIVATE ? user : "";
	ovc_admin_key *k = admin_keys_current(&s->keys, a->name, who);

	if (!k) {
		k = admin_keys_new(&s->keys, a->name, who, now);
		if (k)
			(*created)++;
	}
	return k;
}

/* Every key of (asset, who): current and retired, for reading. */
static int add_asset_keys(ovc_store *s, const ovc_org_asset *a, const char *user,
			  ovc_keyset *ks)
{
	const char *who = a->type == OVC_RULE_PRIVATE ? user : "";

	for (uint32_t i = admin_keys_first(&s->keys, a->name, who); i != OVC_KEY_NONE;
	     i = admin_keys_next(&s->keys, i)) {
		const ovc_admin_key *k = &s->keys.k[i];
		ovc_key one;
		int rc;

		memcpy(one.id, k->id, OVC_KEY_ID_BYTES);
		memcpy(one.key, k->key, OVC_KEY_BYTES);
		rc = ovc_keyset_add(ks, &one);
		sodium_memzero(&one, sizeof(one));
		if (rc)
			return rc;
	}
	return 0;
}

static void settings_from_org(const ovc_org_settings *o, ovc_policy_settings *p)
{
	p->refresh_interval_s = o->refresh_interval_s;
	p->cache_expiration_s = o->cache_expiration_s;
	p->autolock_idle_s = o->autolock_idle_s;
	p->user_may_decrypt = o->user_may_decrypt;
	p->persistent_encryption = o->persistent_encryption;
	p->plaintext_under_rule = o->plaintext_under_rule;
}

/* The digest that decides "unchanged": the policy with times and serial
 * zeroed and the keys blob replaced by the recipient and the key ids it
 * would hold (the sealed blob is random, so it cannot be compared). */
static int digest_of(struct compiled *c, const ovc_org_user *u)
{
	ovc_policy q = c->p;
	char *txt = NULL, id[OVC_KEY_ID_STRLEN + 1];
	size_t len, cap = strlen(u->recipient) + 2 + c->ks->n * (OVC_KEY_ID_STRLEN + 1);
	crypto_hash_sha256_state h;
	uint8_t d[32];
	char *ids = malloc(cap + 1);
	int rc;

	if (!ids)
		return -ENOMEM;
	strcpy(ids, u->recipient);
	for (size_t i = 0; i < c->ks->n; i++) {
		ovc_key_id_format(c->ks->keys[i].id, id);
		strcat(ids, " ");
		strcat(ids, id);
	}
	q.serial = 1;
	q.issued_at = q.valid_until = 0;
	q.keys = ids;
	rc = ovc_policy_serialize(&q, &txt, &len);
	if (!rc) {
		crypto_hash_sha256_init(&h);
		crypto_hash_sha256_update(&h, (uint8_t *)txt, len);
		crypto_hash_sha256_final(&h, d);
		sodium_bin2hex(c->digest, sizeof(c->digest), d, sizeof(d));
	}
	free(txt);
	free(ids);
	return rc;
}

static int compile_user(ovc_store *s, const ovc_org *org, const ovc_org_user *u,
			time_t now, size_t *created, struct compiled *c,
			ovc_err *e)
{
	const ovc_org_asset **assets = NULL;
	size_t n = 0;
	int rc;

	memset(c, 0, sizeof(*c));
	rc = ovc_org_user_assets(org, u->name, &assets, &n);
	if (rc)
		return ovc_err_set(e, rc, "out of memory");
	c->ks = ovc_keyset_new(n ? n : 1);
	c->p.rules = calloc(n ? n : 1, sizeof(*c->p.rules));
	if (!c->ks || !c->p.rules) {
		rc = ovc_err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	c->p.org = org->settings.org;
	c->p.user = u->name;
	settings_from_org(&org->settings, &c->p.settings);
	for (size_t i = 0; i < n; i++) {
		const ovc_org_asset *a = assets[i];
		ovc_rule *r = &c->p.rules[c->p.nrules];

		if (asset_deleted(s, a->name))
			continue;
		r->asset = a->name;
		r->type = a->type;
		r->path = a->path;
		if (a->type != OVC_RULE_PUBLIC) {
			ovc_admin_key *k = rule_key(s, a, u->name, now, created);
			if (!k) {
				rc = ovc_err_set(e, -ENOMEM, "out of memory");
				goto out;
			}
			memcpy(r->key_id, k->id, OVC_KEY_ID_BYTES);
			r->has_key = 1;
			rc = add_asset_keys(s, a, u->name, c->ks);
			if (rc) {
				ovc_err_set(e, rc, "asset '%s': %s", a->name, strerror(-rc));
				goto out;
			}
		}
		c->p.nrules++;
	}
	rc = digest_of(c, u);
	if (rc)
		ovc_err_set(e, rc, "cannot serialise %s's policy", u->name);
out:
	free(assets);
	if (rc)
		compiled_release(c);
	return rc;
}

/* Seal the keys blob to the user, set serial and times, sign, write. */
static int write_policy(ovc_store *s, ovc_stage *stage, const char *out_dir,
			struct compiled *c, const ovc_org *org, const ovc_org_user *u,
			ovc_state_user *su, const ovc_publish_opts *o, ovc_err *e)
{
	ovc_age_encrypt_opts ao = { .recipients = &u->rcp, .n_recipients = 1, .armor = 1 };
	char path[PATH_MAX], comment[200], *doc = NULL, *sig = NULL;
	uint8_t *blob = NULL, *sealed = NULL;
	size_t blen, slen, dlen;
	uint64_t serial = su->serial + 1;
	int rc;

	if ((uint64_t)o->now > serial)
		serial = (uint64_t)o->now;
	if (o->serial_floor > serial)
		serial = o->serial_floor;
	c->p.serial = serial;
	c->p.issued_at = o->now;
	c->p.valid_until = o->now + (time_t)org->settings.policy_validity_s;
	rc = ovc_keysblob_encode(c->ks, &blob, &blen);
	if (!rc)
		rc = ovc_age_encrypt(&ao, blob, blen, &sealed, &slen, e);
	ovc_wipe_free(blob);
	if (rc)
		return ovc_err_wrap(e, rc, "sealing %s's keys: ", u->name);
	c->p.keys = strndup((char *)sealed, slen);
	free(sealed);
	if (!c->p.keys)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	rc = ovc_policy_serialize(&c->p, &doc, &dlen);
	snprintf(comment, sizeof(comment), "overcrypt policy user=%s serial=%llu", u->name,
		 (unsigned long long)serial);
	if (!rc)
		rc = ovc_minisign_sign(s->sk, (uint8_t *)doc, dlen, comment, &sig);
	if (!rc) {
		snprintf(path, sizeof(path), "%s/%s.json", out_dir, u->name);
		rc = ovc_stage_add(stage, path, doc, dlen, 0644);
	}
	if (!rc) {
		snprintf(path, sizeof(path), "%s/%s.json.minisig", out_dir, u->name);
		rc = ovc_stage_add(stage, path, sig, strlen(sig), 0644);
	}
	if (rc)
		ovc_err_set(e, rc, "%s: %s", path, strerror(-rc));
	free(doc);
	free(sig);
	if (rc)
		return rc;
	su->serial = serial;
	su->published = o->now;
	su->valid_until = c->p.valid_until;
	memcpy(su->digest, c->digest, sizeof(su->digest));
	return 0;
}

/* Remember "asset=key id" for explain. */
static int remember_rule_keys(ovc_state_user *su, const struct compiled *c)
{
	char id[OVC_KEY_ID_STRLEN + 1];

	for (size_t j = 0; j < su->nrule_keys; j++)
		free(su->rule_keys[j]);
	free(su->rule_keys);
	su->nrule_keys = 0;
	su->rule_keys = calloc(c->p.nrules + 1, sizeof(char *));
	if (!su->rule_keys)
		return -ENOMEM;
	for (size_t i = 0; i < c->p.nrules; i++) {
		if (!c->p.rules[i].has_key)
			continue;
		ovc_key_id_format(c->p.rules[i].key_id, id);
		if (asprintf(&su->rule_keys[su->nrule_keys], "%s=%s", c->p.rules[i].asset, id) < 0)
			return -ENOMEM;
		su->nrule_keys++;
	}
	return 0;
}

static int files_exist(const char *out_dir, const char *user)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s.json", out_dir, user);
	if (stat(path, &st) != 0)
		return 0;
	snprintf(path, sizeof(path), "%s/%s.json.minisig", out_dir, user);
	return stat(path, &st) == 0;
}

static int publish_user(ovc_store *s, ovc_stage *stage, const ovc_org *org,
			const ovc_org_user *u, const ovc_publish_opts *o,
			ovc_publish_result *r, ovc_err *e)
{
	struct compiled c;
	ovc_state_user *su = state_user(&s->state, u->name, 1);
	int due, rc;

	if (!su)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	rc = compile_user(s, org, u, o->now, &r->keys_created, &c, e);
	if (rc)
		return rc;
	due = o->now - su->published >= (time_t)(org->settings.policy_validity_s / 2);
	if (!strcmp(su->digest, c.digest) && !due && files_exist(o->out_dir, u->name)) {
		r->unchanged++;
	} else {
		rc = write_policy(s, stage, o->out_dir, &c, org, u, su, o, e);
		if (!rc)
			r->written++;
	}
	if (!rc)
		rc = remember_rule_keys(su, &c);
	compiled_release(&c);
	return rc;
}

/* Users published before and gone from org.conf lose their files. */
static int remove_gone(ovc_store *s, const ovc_org *org, const char *out_dir,
		       ovc_publish_result *r, ovc_err *e)
{
	for (size_t i = 0; i < s->state.nusers;) {
		ovc_state_user *su = &s->state.users[i];
		const ovc_org_user *u = ovc_org_find_user(org, su->name);
		char path[PATH_MAX];

		if (u && u->recipient) {
			i++;
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s.json", out_dir, su->name);
		if (unlink(path) < 0 && errno != ENOENT)
			return ovc_err_set(e, -errno, "%s: %s", path, strerror(errno));
		snprintf(path, sizeof(path), "%s/%s.json.minisig", out_dir, su->name);
		if (unlink(path) < 0 && errno != ENOENT)
			return ovc_err_set(e, -errno, "%s: %s", path, strerror(errno));
		free(su->name);
		for (size_t j = 0; j < su->nrule_keys; j++)
			free(su->rule_keys[j]);
		free(su->rule_keys);
		s->state.users[i] = s->state.users[--s->state.nusers];
		r->removed++;
	}
	return 0;
}

/* ---- security snapshot -------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static cJSON *string_array_sorted(char **v, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	char **copy = calloc(n + 1, sizeof(char *));

	if (!a || !copy) {
		cJSON_Delete(a);
		free(copy);
		return NULL;
	}
	if (n)
		memcpy(copy, v, n * sizeof(char *));
	qsort(copy, n, sizeof(char *), cmp_str);
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(copy[i]));
	free(copy);
	return a;
}

/* {admins:{name:rcp}, users:{name:rcp}, groups:{user:[groups]},
 *  assets:{name:{type, users:[…]}}} for the security-relevant diff. */
static cJSON *snapshot_of(const ovc_store *s, const ovc_org *org)
{
	cJSON *root = cJSON_CreateObject(), *adm = cJSON_AddObjectToObject(root, "admins");
	cJSON *usr = cJSON_AddObjectToObject(root, "users");
	cJSON *grp = cJSON_AddObjectToObject(root, "groups");
	cJSON *ast = cJSON_AddObjectToObject(root, "assets");

	if (!root || !adm || !usr || !grp || !ast) {
		cJSON_Delete(root);
		return NULL;
	}
	for (size_t i = 0; i < org->nadmins; i++)
		cJSON_AddStringToObject(adm, org->admins[i].name,
					org->admins[i].recipient ? org->admins[i].recipient : "");
	for (size_t i = 0; i < org->nusers; i++) {
		const ovc_org_user *u = &org->users[i];
		char **gs = calloc(org->ngroups + 1, sizeof(char *));
		size_t ng = 0;
		cJSON_AddStringToObject(usr, u->name, u->recipient ? u->recipient : "");
		for (size_t g = 0; gs && g < org->ngroups; g++)
			if (ovc_org_user_in_group(org, u->name, org->groups[g].name))
				gs[ng++] = org->groups[g].name;
		cJSON_AddItemToObject(grp, u->name, string_array_sorted(gs, ng));
		free(gs);
	}
	/* Who gets each asset: one pass over the users. */
	char ***who = calloc(org->nassets + 1, sizeof(char **));
	size_t *nwho = calloc(org->nassets + 1, sizeof(size_t));
	for (size_t j = 0; who && nwho && j < org->nusers; j++) {
		const ovc_org_asset **mine = NULL;
		size_t nm = 0;
		if (ovc_org_user_assets(org, org->users[j].name, &mine, &nm) != 0)
			continue;
		for (size_t k = 0; k < nm; k++) {
			size_t ai = (size_t)(mine[k] - org->assets);
			char **nw = realloc(who[ai], (nwho[ai] + 1) * sizeof(char *));
			if (!nw)
				continue;
			who[ai] = nw;
			who[ai][nwho[ai]++] = org->users[j].name;
		}
		free(mine);
	}
	for (size_t i = 0; i < org->nassets; i++) {
		const ovc_org_asset *a = &org->assets[i];
		cJSON *o = cJSON_AddObjectToObject(ast, a->name);
		if (asset_deleted(s, a->name))
			cJSON_AddBoolToObject(o, "deleted", 1);
		cJSON_AddStringToObject(o, "type", ovc_rule_type_name(a->type));
		cJSON_AddItemToObject(o, "users", string_array_sorted(who ? who[i] : NULL,
								      nwho ? nwho[i] : 0));
		if (who)
			free(who[i]);
	}
	free(who);
	free(nwho);
	return root;
}

static int in_array(const cJSON *arr, const char *s)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, arr)
		if (cJSON_IsString(it) && !strcmp(it->valuestring, s))
			return 1;
	return 0;
}

/* Names in `now` whose value is new or differs from `before`. */
static void diff_map(const cJSON *before, const cJSON *now, const char *what,
		     ovc_diag *changes)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, now) {
		const cJSON *old = cJSON_GetObjectItemCaseSensitive(before, it->string);
		if (!old)
			ovc_diag_add(changes, NULL, 0, "%s '%s' added (recipient %s)", what,
				     it->string, it->valuestring);
		else if (strcmp(old->valuestring, it->valuestring))
			ovc_diag_add(changes, NULL, 0, "%s '%s': recipient changed to %s", what,
				     it->string, it->valuestring);
	}
}

static void diff_snapshots(const cJSON *b, const cJSON *n, ovc_publish_result *r)
{
	const cJSON *it, *g, *ob, *nb;

	diff_map(cJSON_GetObjectItem(b, "admins"), cJSON_GetObjectItem(n, "admins"), "admin", &r->changes);
	diff_map(cJSON_GetObjectItem(b, "users"), cJSON_GetObjectItem(n, "users"), "user", &r->changes);
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(n, "groups")) {
		const cJSON *old = cJSON_GetObjectItem(cJSON_GetObjectItem(b, "groups"), it->string);
		cJSON_ArrayForEach(g, it)
			if (!in_array(old, g->valuestring))
				ovc_diag_add(&r->changes, NULL, 0, "user '%s' added to group '%s'",
					     it->string, g->valuestring);
	}
	cJSON_ArrayForEach(nb, cJSON_GetObjectItem(n, "assets")) {
		ob = cJSON_GetObjectItem(cJSON_GetObjectItem(b, "assets"), nb->string);
		const char *nt = cJSON_GetStringValue(cJSON_GetObjectItem(nb, "type"));
		const char *ot = ob ? cJSON_GetStringValue(cJSON_GetObjectItem(ob, "type")) : NULL;
		if (ot && nt && strcmp(ot, nt))
			ovc_diag_add(&r->changes, NULL, 0, "asset '%s': type changed from %s to %s",
				     nb->string, ot, nt);
		cJSON_ArrayForEach(g, cJSON_GetObjectItem(nb, "users"))
			if (!in_array(cJSON_GetObjectItem(ob, "users"), g->valuestring))
				ovc_diag_add(&r->changes, NULL, 0, "asset '%s': user '%s' gets access",
					     nb->string, g->valuestring);
		cJSON_ArrayForEach(g, cJSON_GetObjectItem(ob, "users"))
			if (!in_array(cJSON_GetObjectItem(nb, "users"), g->valuestring))
				ovc_diag_add(&r->lost_access, NULL, 0,
					     "user '%s' lost access to asset '%s': files written before keep their key; consider 'overcrypt-admin keys rotate %s'",
					     g->valuestring, nb->string, nb->string);
	}
}

/* Compute the changes; returns the new snapshot text (malloc()ed). */
static char *security_changes(ovc_store *s, const ovc_org *org, ovc_publish_result *r)
{
	cJSON *now = snapshot_of(s, org), *before;
	char *txt, *copy;

	if (!now)
		return NULL;
	before = s->state.snapshot ? cJSON_Parse(s->state.snapshot) : NULL;
	if (before)
		diff_snapshots(before, now, r);
	cJSON_Delete(before);
	txt = cJSON_PrintUnformatted(now);
	cJSON_Delete(now);
	copy = txt ? strdup(txt) : NULL;
	cJSON_free(txt);
	return copy;
}

/* ---- publish ---------------------------------------------------------------------- */

static char *changes_json(const ovc_publish_result *r)
{
	cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "changes");
	char *txt, *copy;

	cJSON_AddNumberToObject(o, "written", (double)r->written);
	cJSON_AddNumberToObject(o, "unchanged", (double)r->unchanged);
	cJSON_AddNumberToObject(o, "removed", (double)r->removed);
	cJSON_AddNumberToObject(o, "keys_created", (double)r->keys_created);
	for (size_t i = 0; a && i < r->changes.n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(r->changes.lines[i]));
	for (size_t i = 0; a && i < r->lost_access.n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(r->lost_access.lines[i]));
	txt = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	copy = txt ? strdup(txt) : NULL;
	cJSON_free(txt);
	return copy;
}

static int sign_audit_head(ovc_store *s, const ovc_org *org, const char *out_dir,
			   time_t now, ovc_err *e)
{
	char log[PATH_MAX], conf[PATH_MAX], path[PATH_MAX], *head = NULL, *sig = NULL;
	uint8_t *txt = NULL, sha[32];
	size_t len;
	int rc = ovc_read_file(store_path(s, "org.conf", conf), 16u << 20, 0, &txt, &len);

	if (rc)
		return ovc_err_set(e, rc, "%s: %s", conf, strerror(-rc));
	crypto_hash_sha256(sha, txt, len);
	free(txt);
	rc = ovc_audit_head_sign(store_path(s, "audit.log", log), org->settings.org, sha, now,
				 s->sk, &head, &sig, e);
	if (!rc) {
		snprintf(path, sizeof(path), "%s/audit-head.json", out_dir);
		rc = ovc_write_file_atomic(path, head, strlen(head), 0644, 0);
	}
	if (!rc) {
		snprintf(path, sizeof(path), "%s/audit-head.json.minisig", out_dir);
		rc = ovc_write_file_atomic(path, sig, strlen(sig), 0644, 0);
	}
	if (rc && !e->msg[0])
		ovc_err_set(e, rc, "%s: %s", path, strerror(-rc));
	free(head);
	free(sig);
	return rc;
}

static int publish_all(ovc_store *s, const ovc_org *org, const ovc_publish_opts *o,
		       ovc_publish_result *r, ovc_err *e)
{
	size_t keys_before = s->keys.n;
	ovc_stage stage = { 0 };
	int rc = 0;

	for (size_t i = 0; i < org->nassets; i++) {
		ovc_state_asset *a = state_asset(&s->state, org->assets[i].name, 1);
		if (!a)
			return ovc_err_set(e, -ENOMEM, "out of memory");
		a->type = org->assets[i].type; /* check refused a changed type */
	}
	/* Every changed policy is staged (created keys join the slab as it
	 * goes); keys.age is saved before the staged files are renamed into
	 * place, so no visible policy names a key that is not on disk, and
	 * after one syncfs a crash leaves each pair old or new. */
	for (size_t i = 0; i < org->nusers && !rc; i++)
		if (org->users[i].recipient)
			rc = publish_user(s, &stage, org, &org->users[i], o, r, e);
	if (!rc && (s->keys.n != keys_before || r->changes.n))
		rc = store_save_secrets(s, org, e);
	if (rc) {
		ovc_stage_abort(&stage);
		return rc;
	}
	rc = ovc_stage_commit(&stage, o->out_dir);
	if (rc)
		return ovc_err_set(e, rc, "%s: %s", o->out_dir, strerror(-rc));
	r->keys_created = s->keys.n - keys_before;
	if (!rc)
		rc = remove_gone(s, org, o->out_dir, r, e);
	return rc;
}

int ovc_store_publish(ovc_store *s, const ovc_publish_opts *o,
		      ovc_publish_result *r, ovc_diag *d, ovc_err *e)
{
	const ovc_org *org;
	char *snap = NULL, *details = NULL;
	int first = !s->state.snapshot, rc;

	memset(r, 0, sizeof(*r));
	if (!s->unlocked)
		return ovc_err_set(e, -EACCES, "the store is locked");
	rc = ovc_store_org(s, &org, d);
	if (rc)
		return ovc_err_set(e, -EINVAL, "org.conf has errors");
	if (mkdir(o->out_dir, 0755) < 0 && errno != EEXIST)
		return ovc_err_set(e, -errno, "%s: %s", o->out_dir, strerror(errno));
	snap = security_changes(s, org, r);
	if (!snap)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	if (!first && r->changes.n && o->if_due) {
		/* A timer must not publish what nobody confirmed. */
		rc = ovc_err_set(e, -ECANCELED, "org.conf has unpublished security-relevant changes: run publish by hand");
		goto out;
	}
	if (!first && r->changes.n && o->confirm && !o->confirm(o->confirm_ctx, &r->changes)) {
		rc = ovc_err_set(e, -ECANCELED, "not confirmed: nothing published");
		goto out;
	}
	rc = publish_all(s, org, o, r, e);
	if (rc)
		goto out;
	free(s->state.snapshot);
	s->state.snapshot = snap;
	snap = NULL;
	s->state.last_publish = o->now;
	rc = state_save(s, e);
	details = changes_json(r);
	if (!rc)
		rc = store_audit(s, o->now, "publish", org->settings.org, details, e);
	if (!rc)
		rc = sign_audit_head(s, org, o->out_dir, o->now, e);
out:
	free(details);
	free(snap);
	return rc;
}

void ovc_publish_result_free(ovc_publish_result *r)
{
	ovc_diag_free(&r->changes);
	ovc_diag_free(&r->lost_access);
}

/* ---- explain -------------------------------------------------------------------- */

/* The key id recorded for `asset` at the user's last publish. */
static int recorded_key(const ovc_state_user *su, const char *asset, uint8_t *id)
{
	size_t n = strlen(asset);

	for (size_t i = 0; su && i < su->nrule_keys; i++)
		if (!strncmp(su->rule_keys[i], asset, n) && su->rule_keys[i][n] == '=')
			return ovc_key_id_parse(su->rule_keys[i] + n + 1, id) == 0;
	return 0;
}

static int read_mounts(ovc_smb_mount **m, size_t *n)
{
	uint8_t *txt;
	size_t len;
	int rc = ovc_read_file("/proc/self/mountinfo", 16u << 20, 0, &txt, &len);

	*m = NULL;
	*n = 0;
	if (rc)
		return 0; /* no mount table: smb rules match nothing */
	rc = ovc_mountinfo_parse_smb((char *)txt, len, m, n, NULL);
	free(txt);
	return rc;
}

int ovc_store_explain(ovc_store *s, const char *user, const char *path,
		      char *out, size_t out_size, ovc_diag *d, ovc_err *e)
{
	const ovc_org *org;
	const ovc_org_user *u;
	const ovc_org_asset **assets = NULL;
	ovc_state_user *su = state_user(&s->state, user, 0);
	ovc_rule *rules = NULL;
	ovc_smb_mount *mounts = NULL;
	ovc_ruleset *rs = NULL;
	ovc_match m;
	size_t n = 0, nr = 0, nm = 0;
	int rc = ovc_store_org(s, &org, d);

	if (rc)
		return ovc_err_set(e, -EINVAL, "org.conf has errors");
	u = ovc_org_find_user(org, user);
	if (!u)
		return ovc_err_set(e, -ENOENT, "no user '%s' in org.conf", user);
	rc = ovc_org_user_assets(org, user, &assets, &n);
	rules = rc ? NULL : calloc(n + 1, sizeof(*rules));
	if (!rules) {
		rc = ovc_err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (asset_deleted(s, assets[i]->name))
			continue;
		rules[nr].asset = assets[i]->name;
		rules[nr].type = assets[i]->type;
		rules[nr].path = assets[i]->path;
		rules[nr].has_key = assets[i]->type != OVC_RULE_PUBLIC &&
				    recorded_key(su, assets[i]->name, rules[nr].key_id);
		nr++;
	}
	rc = read_mounts(&mounts, &nm);
	if (!rc)
		rc = ovc_ruleset_build(rules, nr, user, mounts, nm, &rs, e);
	if (!rc)
		rc = ovc_ruleset_match(rs, path, &m, out, out_size);
	if (rc == -EINVAL && !e->msg[0])
		ovc_err_set(e, rc, "%s: not an absolute path", path);
out:
	ovc_ruleset_free(rs);
	free(mounts);
	free(rules);
	free(assets);
	return rc;
}
