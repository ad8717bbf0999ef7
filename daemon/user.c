/*
 * user.c - one user's policy, cache, expiry and keys (see user.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "daemon/log.h"
#include "daemon/user.h"
#include "policy/document.h"

#define STATE_FORMAT "overcrypt-agent-state/1"
#define SKELETON_FORMAT "overcrypt-skeleton/1"
#define STATE_MAX (64u << 10)

enum last_result { LR_NONE = 0, LR_NEW, LR_UNCHANGED, LR_ERROR, LR_REFUSED };
static const char *const last_result_name[] = { NULL, "new", "unchanged", "error", "refused" };

struct ovc_user {
	char *name;
	uid_t uid;
	char *dir;
	int dirfd;                   /* `dir`, opened before any overlay is
				      * mounted: state files are reached
				      * through it (/proc/self/fd/N/FILE), so
				      * an overlay over a parent of `dir`
				      * never serves the agent's own state */
	char *source;
	ovc_minisign_pubkey pks[OVC_CONFIG_MAX_ORG_KEYS];
	size_t npks;
	char **mounts;
	size_t nmounts;
	ovc_views *views;
	const ovc_mtab *mtab;

	/* the rules in force: from `policy`, or the skeleton */
	ovc_policy *policy;          /* NULL: none valid held */
	int from_cache;
	ovc_rule *skel;              /* skeleton rules when policy is NULL */
	size_t nskel;
	char **skel_strs;            /* their strings */
	uint64_t skel_serial;
	ovc_view_rules *rules;       /* built from policy or skeleton */
	ovc_view_keys *keys;         /* NULL unless unlocked and not expired */
	ovc_age_identity *id;        /* NULL when locked */

	/* persisted (state.json) */
	char org[65];
	ovc_policy_seen seen;
	char *etag;
	time_t modified;
	time_t last_success;
	unsigned unlock_failures;
	time_t unlock_not_before;

	/* runtime */
	ovc_fetch_meta meta;
	time_t last_attempt;
	enum last_result last_result;
	char last_error[256];
	unsigned fetch_failures;
	time_t next_fetch;
	ovc_view_state state;
	time_t state_since;
	char reason[256];
	time_t unlocked_at;
};

/* ---- small helpers ------------------------------------------------------------------ */

static int path_in(const ovc_user *u, const char *file, char *out)
{
	int n = u->dirfd >= 0 ? snprintf(out, PATH_MAX, "/proc/self/fd/%d/%s", u->dirfd, file)
			      : snprintf(out, PATH_MAX, "%s/%s", u->dir, file);

	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

static cJSON *time_json(time_t t)
{
	char buf[21];

	if (t <= 0)
		return cJSON_CreateNull();
	ovc_time_format(t, buf);
	return cJSON_CreateString(buf);
}

static void hex(const uint8_t *in, size_t n, char *out)
{
	sodium_bin2hex(out, n * 2 + 1, in, n);
}

static uint64_t interval_s(const ovc_user *u)
{
	uint64_t s = u->policy ? u->policy->settings.refresh_interval_s : 0;

	return s ? s : OVC_DEFAULT_REFRESH_S;
}

static time_t expires_at(const ovc_user *u)
{
	time_t t;

	if (!u->policy)
		return 0;
	t = u->policy->valid_until;
	if (u->policy->settings.cache_expiration_s < (uint64_t)OVC_TIME_MAX &&
	    u->last_success + (time_t)u->policy->settings.cache_expiration_s < t)
		t = u->last_success + (time_t)u->policy->settings.cache_expiration_s;
	return t;
}

/* ---- the view ----------------------------------------------------------------------- */

static void drop_keys(ovc_user *u)
{
	ovc_view_keys_unref(u->keys);
	u->keys = NULL;
}

/* Work out the state, and publish a view that says it. */
static void publish(ovc_user *u, time_t now)
{
	ovc_view_state st;
	const char *const *lf = NULL;
	size_t nlf = 0, nf = 0;
	const char **folders;
	ovc_view *v;
	char why[256] = "";

	if (!u->rules) {
		st = OVC_VIEW_NO_POLICY;
		snprintf(why, sizeof(why), "no policy yet: writes in the protected folders are refused until one is fetched");
	} else if (!u->policy) {
		st = OVC_VIEW_EXPIRED;
		snprintf(why, sizeof(why), "no valid policy: the rules of serial %" PRIu64 " stay in force without keys", u->skel_serial);
	} else if (now >= expires_at(u)) {
		char t[21];

		st = OVC_VIEW_EXPIRED;
		ovc_time_format(expires_at(u), t);
		if (expires_at(u) == u->policy->valid_until)
			snprintf(why, sizeof(why), "the policy expired at %s (valid_until): keys dropped, rules in force", t);
		else
			snprintf(why, sizeof(why), "no successful refresh for %" PRIu64 " s (cache_expiration), expired at %s: keys dropped, rules in force",
				 u->policy->settings.cache_expiration_s, t);
	} else if (!u->keys) {
		st = OVC_VIEW_LOCKED;
		snprintf(why, sizeof(why), "%s", u->id ? "unlocked, but the identity does not open this policy's keys" : "locked: run 'overcrypt unlock'");
	} else {
		st = OVC_VIEW_READY;
		snprintf(why, sizeof(why), "unlocked");
	}
	if (st == OVC_VIEW_EXPIRED && u->keys) {
		drop_keys(u);
		ovc_log_warn("user %s: %s", u->name, why);
	}
	if (st != u->state) {
		u->state = st;
		u->state_since = now;
	}
	snprintf(u->reason, sizeof(u->reason), "%s", why);

	if (u->rules)
		lf = ovc_ruleset_local_folders(ovc_view_rules_get(u->rules), &nlf);
	folders = calloc(u->nmounts + nlf + 1, sizeof(*folders));
	if (!folders) {
		ovc_log_error("user %s: out of memory publishing the view: the old one stays", u->name);
		return;
	}
	for (size_t i = 0; i < u->nmounts; i++)
		folders[nf++] = u->mounts[i];
	for (size_t i = 0; i < nlf; i++)
		folders[nf++] = lf[i];
	v = ovc_view_new(u->uid, u->name, st, u->policy ? u->policy->serial : 0,
			 u->policy ? &u->policy->settings : NULL, u->rules,
			 u->keys, folders, nf);
	free(folders);
	if (!v || ovc_views_publish(u->views, v) != 0)
		ovc_log_error("user %s: out of memory publishing the view: the old one stays", u->name);
}

/* ---- persistence -------------------------------------------------------------------- */

static int save_state(ovc_user *u)
{
	cJSON *o = cJSON_CreateObject();
	char dg[65], p[PATH_MAX];
	char *txt = NULL;
	int rc = -ENOMEM;

	hex(u->seen.digest, 32, dg);
	if (o && cJSON_AddStringToObject(o, "format", STATE_FORMAT) &&
	    cJSON_AddStringToObject(o, "org", u->org) &&
	    cJSON_AddNumberToObject(o, "serial", (double)u->seen.serial) &&
	    cJSON_AddStringToObject(o, "digest", dg) &&
	    cJSON_AddStringToObject(o, "etag", u->etag ? u->etag : "") &&
	    cJSON_AddNumberToObject(o, "modified", (double)u->modified) &&
	    cJSON_AddNumberToObject(o, "last_success", (double)u->last_success) &&
	    cJSON_AddNumberToObject(o, "unlock_failures", u->unlock_failures) &&
	    cJSON_AddNumberToObject(o, "unlock_not_before", (double)u->unlock_not_before))
		txt = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (txt && (rc = path_in(u, "state.json", p)) == 0)
		rc = ovc_write_file_atomic(p, txt, strlen(txt), 0600, 0);
	cJSON_free(txt);
	if (rc)
		ovc_log_error("user %s: cannot save %s/state.json: %s", u->name, u->dir, strerror(-rc));
	return rc;
}

static int num_member(const cJSON *o, const char *k, double max, double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > max ||
	    v->valuedouble != (double)(uint64_t)v->valuedouble)
		return -EINVAL;
	*out = v->valuedouble;
	return 0;
}

static void load_state(ovc_user *u)
{
	char p[PATH_MAX];
	uint8_t *buf = NULL;
	size_t len;
	cJSON *o = NULL;
	const cJSON *s;
	double serial, mod, last, fails, nb;
	int rc;

	if (path_in(u, "state.json", p))
		return;
	rc = ovc_read_file(p, STATE_MAX, 0, &buf, &len);
	if (rc == -ENOENT)
		return;
	if (rc == 0)
		o = cJSON_ParseWithLength((const char *)buf, len);
	free(buf);
	rc = -EINVAL;
	if (o && cJSON_IsObject(o) &&
	    cJSON_IsString(s = cJSON_GetObjectItemCaseSensitive(o, "format")) &&
	    !strcmp(s->valuestring, STATE_FORMAT) &&
	    num_member(o, "serial", (double)OVC_SERIAL_MAX, &serial) == 0 &&
	    num_member(o, "modified", (double)OVC_TIME_MAX, &mod) == 0 &&
	    num_member(o, "last_success", (double)OVC_TIME_MAX, &last) == 0 &&
	    num_member(o, "unlock_failures", 1e6, &fails) == 0 &&
	    num_member(o, "unlock_not_before", (double)OVC_TIME_MAX, &nb) == 0) {
		const cJSON *org = cJSON_GetObjectItemCaseSensitive(o, "org");
		const cJSON *dg = cJSON_GetObjectItemCaseSensitive(o, "digest");
		const cJSON *et = cJSON_GetObjectItemCaseSensitive(o, "etag");
		size_t dl = 0;

		if (cJSON_IsString(org) && strlen(org->valuestring) < sizeof(u->org) &&
		    cJSON_IsString(dg) && cJSON_IsString(et) &&
		    sodium_hex2bin(u->seen.digest, 32, dg->valuestring,
				   strlen(dg->valuestring), NULL, &dl, NULL) == 0 &&
		    dl == 32) {
			snprintf(u->org, sizeof(u->org), "%s", org->valuestring);
			u->seen.serial = (uint64_t)serial;
			u->modified = (time_t)mod;
			u->last_success = (time_t)last;
			u->unlock_failures = (unsigned)fails;
			u->unlock_not_before = (time_t)nb;
			free(u->etag);
			u->etag = *et->valuestring ? strdup(et->valuestring) : NULL;
			rc = 0;
		}
	}
	cJSON_Delete(o);
	if (rc) {
		ovc_log_error("user %s: %s/state.json: not a valid agent state file: ignored", u->name, u->dir);
		memset(&u->seen, 0, sizeof(u->seen));
		u->org[0] = 0;
	}
}

static void skel_clear(ovc_user *u)
{
	for (size_t i = 0; u->skel_strs && i < 2 * u->nskel; i++)
		free(u->skel_strs[i]);
	free(u->skel_strs);
	free(u->skel);
	u->skel = NULL;
	u->skel_strs = NULL;
	u->nskel = 0;
}

static int save_skeleton(ovc_user *u, const ovc_policy *pol)
{
	cJSON *o = cJSON_CreateObject(), *arr;
	char p[PATH_MAX], kid[OVC_KEY_ID_STRLEN + 1];
	char *txt = NULL;
	int rc = -ENOMEM;

	if (!o || !cJSON_AddStringToObject(o, "format", SKELETON_FORMAT) ||
	    !cJSON_AddStringToObject(o, "user", pol->user) ||
	    !cJSON_AddNumberToObject(o, "serial", (double)pol->serial) ||
	    !(arr = cJSON_AddArrayToObject(o, "rules")))
		goto out;
	for (size_t i = 0; i < pol->nrules; i++) {
		const ovc_rule *r = &pol->rules[i];
		cJSON *it = cJSON_CreateObject();

		if (!it || !cJSON_AddItemToArray(arr, it) ||
		    !cJSON_AddStringToObject(it, "asset", r->asset) ||
		    !cJSON_AddStringToObject(it, "type", ovc_rule_type_name(r->type)) ||
		    !cJSON_AddStringToObject(it, "path", r->path))
			goto out;
		if (r->has_key) {
			ovc_key_id_format(r->key_id, kid);
			if (!cJSON_AddStringToObject(it, "key_id", kid))
				goto out;
		}
	}
	txt = cJSON_PrintUnformatted(o);
	if (txt && (rc = path_in(u, "rules.json", p)) == 0)
		rc = ovc_write_file_atomic(p, txt, strlen(txt), 0600, 0);
out:
	cJSON_Delete(o);
	cJSON_free(txt);
	if (rc)
		ovc_log_error("user %s: cannot save the rule skeleton: %s", u->name, strerror(-rc));
	return rc;
}

static int load_skeleton(ovc_user *u)
{
	char p[PATH_MAX];
	uint8_t *buf = NULL;
	size_t len, n;
	cJSON *o = NULL;
	const cJSON *arr, *it, *f, *us;
	double serial;
	int rc;

	if (path_in(u, "rules.json", p))
		return -ENAMETOOLONG;
	rc = ovc_read_file(p, OVC_POLICY_MAX_BYTES, 0, &buf, &len);
	if (rc)
		return rc;
	o = cJSON_ParseWithLength((const char *)buf, len);
	free(buf);
	rc = -EINVAL;
	if (!o || !cJSON_IsString(f = cJSON_GetObjectItemCaseSensitive(o, "format")) ||
	    strcmp(f->valuestring, SKELETON_FORMAT) ||
	    !cJSON_IsString(us = cJSON_GetObjectItemCaseSensitive(o, "user")) ||
	    strcmp(us->valuestring, u->name) ||
	    num_member(o, "serial", (double)OVC_SERIAL_MAX, &serial) ||
	    !cJSON_IsArray(arr = cJSON_GetObjectItemCaseSensitive(o, "rules")))
		goto out;
	n = (size_t)cJSON_GetArraySize(arr);
	u->skel = calloc(n ? n : 1, sizeof(*u->skel));
	u->skel_strs = calloc(2 * n + 1, sizeof(char *));
	if (!u->skel || !u->skel_strs)
		goto nomem;
	u->nskel = 0;
	cJSON_ArrayForEach(it, arr) {
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(it, "asset");
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "type");
		const cJSON *pa = cJSON_GetObjectItemCaseSensitive(it, "path");
		const cJSON *k = cJSON_GetObjectItemCaseSensitive(it, "key_id");
		ovc_rule *r = &u->skel[u->nskel];

		if (!cJSON_IsString(a) || !cJSON_IsString(t) || !cJSON_IsString(pa) ||
		    ovc_rule_type_parse(t->valuestring, &r->type) ||
		    (k && (!cJSON_IsString(k) || ovc_key_id_parse(k->valuestring, r->key_id))))
			goto bad;
		r->has_key = k != NULL;
		u->skel_strs[2 * u->nskel] = strdup(a->valuestring);
		u->skel_strs[2 * u->nskel + 1] = strdup(pa->valuestring);
		u->nskel++;
		if (!u->skel_strs[2 * u->nskel - 2] || !u->skel_strs[2 * u->nskel - 1])
			goto nomem;
		r->asset = u->skel_strs[2 * u->nskel - 2];
		r->path = u->skel_strs[2 * u->nskel - 1];
	}
	u->skel_serial = (uint64_t)serial;
	rc = 0;
	goto out;
nomem:
	rc = -ENOMEM;
bad:
	skel_clear(u);
out:
	cJSON_Delete(o);
	return rc;
}

static int save_cache(ovc_user *u, const uint8_t *doc, size_t dlen,
		      const uint8_t *sig, size_t slen)
{
	char p[PATH_MAX];
	int rc;

	if ((rc = path_in(u, "policy.json.minisig", p)) == 0 &&
	    (rc = ovc_write_file_atomic(p, sig, slen, 0600, 0)) == 0 &&
	    (rc = path_in(u, "policy.json", p)) == 0)
		rc = ovc_write_file_atomic(p, doc, dlen, 0600, 0);
	if (rc)
		ovc_log_error("user %s: cannot cache the policy in %s: %s", u->name, u->dir, strerror(-rc));
	return rc;
}

/* ---- applying a policy -------------------------------------------------------------- */

/* Build the rules of `rules`/`n` for this user (SMB mounts from the
 * watched mount table). */
static int build_rules(ovc_user *u, const ovc_rule *rules, size_t n,
		       ovc_view_rules **out, ovc_err *e)
{
	size_t nm = 0;
	const ovc_smb_mount *m = ovc_mtab_smb(u->mtab, &nm);
	ovc_ruleset *rs = NULL;
	int rc;

	rc = ovc_ruleset_build(rules, n, u->name, m, nm, &rs, e);
	if (rc)
		return rc;
	*out = ovc_view_rules_new(rs);
	if (!*out) {
		ovc_ruleset_free(rs);
		return ovc_err_set(e, -ENOMEM, "out of memory");
	}
	return 0;
}

/* Open `p`'s keys with the held identity into u->keys (or leave NULL). */
static int open_keys(ovc_user *u, const ovc_policy *p, ovc_err *e)
{
	ovc_keyset *ks = NULL;
	int rc;

	drop_keys(u);
	if (!u->id)
		return 0;
	rc = ovc_policy_open_keys(p, u->id, &ks, e);
	if (rc)
		return rc;
	u->keys = ovc_view_keys_new(ks);
	if (!u->keys) {
		ovc_keyset_free(ks);
		return ovc_err_set(e, -ENOMEM, "out of memory");
	}
	return 0;
}

/* Make `p` (owned from here) the applied policy. */
static int apply(ovc_user *u, ovc_policy *p, int from_cache, time_t now,
		 ovc_err *e)
{
	ovc_view_rules *r = NULL;
	ovc_err ke = { 0 };
	int rc;

	rc = build_rules(u, p->rules, p->nrules, &r, e);
	if (rc) {
		ovc_policy_free(p);
		return rc;
	}
	ovc_view_rules_unref(u->rules);
	u->rules = r;
	ovc_policy_free(u->policy);
	u->policy = p;
	u->from_cache = from_cache;
	skel_clear(u);
	if (now < expires_at(u) && open_keys(u, p, &ke) != 0)
		ovc_log_warn("user %s: the unlocked identity does not open the keys of policy serial %" PRIu64 ": %s",
			     u->name, p->serial, ke.msg);
	if (now >= expires_at(u))
		drop_keys(u);
	publish(u, now);
	return 0;
}

static void load_cache(ovc_user *u, time_t now)
{
	char pd[PATH_MAX], ps[PATH_MAX];
	uint8_t *doc = NULL, *sig = NULL;
	size_t dlen = 0, slen = 0;
	ovc_policy *p = NULL;
	ovc_err e = { 0 };
	int rc;

	if (path_in(u, "policy.json", pd) || path_in(u, "policy.json.minisig", ps))
		return;
	rc = ovc_read_file(pd, OVC_POLICY_MAX_BYTES, 0, &doc, &dlen);
	if (rc == -ENOENT)
		goto skeleton;
	if (rc == 0)
		rc = ovc_read_file(ps, OVC_FETCH_SIG_MAX, 0, &sig, &slen);
	if (rc) {
		ovc_log_error("user %s: cached policy %s/policy.json unreadable: %s: ignored", u->name, u->dir, strerror(-rc));
		goto skeleton;
	}
	rc = ovc_policy_verify_parse(doc, dlen, (const char *)sig, slen, u->pks,
				     u->npks, &p, &e);
	if (rc == 0) {
		ovc_policy_seen seen = u->seen;

		/* the cache may be newer than state.json (a crash between the
		 * two writes): it verified, so it counts */
		if (p->serial > seen.serial)
			seen.serial = 0;
		rc = ovc_policy_accept(p, u->org[0] ? u->org : p->org, u->name,
				       seen.serial ? &seen : NULL, 0, &e);
	}
	if (rc) {
		ovc_log_error("user %s: cached policy %s/policy.json refused, not used: %s", u->name, u->dir, e.msg);
		ovc_policy_free(p);
		goto skeleton;
	}
	free(doc);
	free(sig);
	if (p->serial > u->seen.serial) {
		u->seen.serial = p->serial;
		memcpy(u->seen.digest, p->digest, 32);
	}
	snprintf(u->org, sizeof(u->org), "%s", p->org);
	rc = apply(u, p, 1, now, &e);
	if (rc)
		ovc_log_error("user %s: cached policy cannot be applied: %s", u->name, e.msg);
	else
		ovc_log_info("user %s: cached policy serial %" PRIu64 " applied (%s)", u->name,
			     u->seen.serial, ovc_view_state_name(u->state));
	return;
skeleton:
	free(doc);
	free(sig);
	rc = load_skeleton(u);
	if (rc == 0 && build_rules(u, u->skel, u->nskel, &u->rules, &e) == 0) {
		ovc_log_warn("user %s: rule skeleton of serial %" PRIu64 " applied: rules in force, no keys until a policy is fetched",
			     u->name, u->skel_serial);
	} else if (rc != -ENOENT) {
		ovc_log_error("user %s: rule skeleton %s/rules.json unusable: %s", u->name, u->dir,
			      rc ? strerror(-rc) : e.msg);
		skel_clear(u);
	}
	publish(u, now);
}

int ovc_user_remap(ovc_user *u, time_t now)
{
	ovc_view_rules *r = NULL;
	ovc_err e = { 0 };
	int rc;

	if (!u->rules)
		return 0;
	if (u->policy)
		rc = build_rules(u, u->policy->rules, u->policy->nrules, &r, &e);
	else
		rc = build_rules(u, u->skel, u->nskel, &r, &e);
	if (rc) {
		ovc_log_error("user %s: the SMB mounts changed, but the rules cannot be placed again: %s: "
			      "they stay where they were", u->name, e.msg);
		return rc;
	}
	ovc_view_rules_unref(u->rules);
	u->rules = r;
	publish(u, now);
	return 0;
}

/* ---- life --------------------------------------------------------------------------- */

int ovc_user_set_source(ovc_user *u, const char *source,
			const ovc_minisign_pubkey *pks, size_t npks)
{
	char *s = strdup(source);

	if (!s)
		return -ENOMEM;
	free(u->source);
	u->source = s;
	u->npks = npks < OVC_CONFIG_MAX_ORG_KEYS ? npks : OVC_CONFIG_MAX_ORG_KEYS;
	memcpy(u->pks, pks, u->npks * sizeof(*pks));
	return 0;
}

int ovc_user_new(const ovc_user_opts *o, time_t now, ovc_user **out,
		 ovc_err *e)
{
	ovc_user *u = calloc(1, sizeof(*u));
	int rc;

	*out = NULL;
	if (!u)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	u->dirfd = -1;
	u->uid = o->uid;
	u->views = o->views;
	u->mtab = o->mtab;
	u->name = strdup(o->name);
	u->dir = strdup(o->state_dir);
	u->mounts = calloc(o->nmount_paths + 1, sizeof(char *));
	if (!u->name || !u->dir || !u->mounts ||
	    ovc_user_set_source(u, o->source, o->pks, o->npks)) {
		ovc_user_free(u);
		return ovc_err_set(e, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < o->nmount_paths; i++) {
		if (!(u->mounts[i] = strdup(o->mount_paths[i]))) {
			ovc_user_free(u);
			return ovc_err_set(e, -ENOMEM, "out of memory");
		}
		u->nmounts = i + 1;
	}
	rc = ovc_private_dir(u->dir, 0700, 0);
	if (rc) {
		ovc_err_set(e, rc, "%s: %s", u->dir, rc == -EPERM
			    ? "not safe (must be ours and not group or world writable)" : strerror(-rc));
		ovc_user_free(u);
		return rc;
	}
	u->dirfd = open(u->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (u->dirfd < 0) {
		rc = ovc_err_set(e, -errno, "%s: %s", u->dir, strerror(errno));
		ovc_user_free(u);
		return rc;
	}
	u->state = OVC_VIEW_NO_POLICY;
	u->state_since = now;
	load_state(u);
	load_cache(u, now);
	u->next_fetch = now;
	*out = u;
	return 0;
}

void ovc_user_free(ovc_user *u)
{
	if (!u)
		return;
	if (u->views)
		ovc_views_remove(u->views, u->uid);
	drop_keys(u);
	ovc_age_identity_free(u->id);
	ovc_view_rules_unref(u->rules);
	ovc_policy_free(u->policy);
	skel_clear(u);
	for (size_t i = 0; i < u->nmounts; i++)
		free(u->mounts[i]);
	free(u->mounts);
	free(u->etag);
	free(u->source);
	if (u->dirfd >= 0)
		close(u->dirfd);
	free(u->dir);
	free(u->name);
	free(u);
}

const char *ovc_user_name(const ovc_user *u) { return u->name; }
uid_t ovc_user_uid(const ovc_user *u) { return u->uid; }
const char *ovc_user_source(const ovc_user *u) { return u->source; }
time_t ovc_user_next_fetch(const ovc_user *u) { return u->next_fetch; }
uint64_t ovc_user_serial(const ovc_user *u) { return u->policy ? u->policy->serial : 0; }

const ovc_fetch_meta *ovc_user_fetch_meta(ovc_user *u)
{
	if (!u->policy)
		return NULL;
	u->meta.etag = u->etag;
	u->meta.modified = u->modified;
	return &u->meta;
}

/* ---- fetch outcomes ----------------------------------------------------------------- */

static void plan_next(ovc_user *u, time_t now, int failed)
{
	uint64_t iv = interval_s(u), d;

	if (failed) {
		unsigned f = u->fetch_failures > 30 ? 30 : u->fetch_failures;

		d = (uint64_t)OVC_FETCH_BACKOFF_MIN_S << (f ? f - 1 : 0);
		if (d > iv)
			d = iv;
	} else {
		/* +-10 % jitter so that clients do not all come at once */
		uint64_t span = iv / 5;

		d = iv - iv / 10 + (span ? randombytes_uniform((uint32_t)(span > UINT32_MAX ? UINT32_MAX : span) + 1) : 0);
	}
	if (d < 1)
		d = 1;
	u->next_fetch = now + (time_t)d;
}

static enum ovc_user_outcome fail(ovc_user *u, enum last_result lr,
				  time_t now, const char *msg)
{
	snprintf(u->last_error, sizeof(u->last_error), "%s", msg);
	u->last_result = lr;
	u->fetch_failures++;
	plan_next(u, now, 1);
	if (lr == LR_REFUSED)
		ovc_log_error("user %s: policy from %s%s.json refused, the last good policy stays: %s",
			      u->name, u->source, u->name, msg);
	else
		ovc_log_warn("user %s: policy fetch failed (attempt %u, next in %ld s): %s",
			     u->name, u->fetch_failures, (long)(u->next_fetch - now), msg);
	return lr == LR_REFUSED ? OVC_USER_REFUSED : OVC_USER_FAILED;
}

static void success(ovc_user *u, enum last_result lr, time_t now)
{
	int was_expired = u->state == OVC_VIEW_EXPIRED;

	u->last_result = lr;
	u->last_error[0] = 0;
	u->fetch_failures = 0;
	u->last_success = now;
	u->from_cache = lr == LR_UNCHANGED ? u->from_cache : 0;
	plan_next(u, now, 0);
	save_state(u);
	if (was_expired && u->policy && !u->keys && u->id) {
		ovc_err e = { 0 };

		if (open_keys(u, u->policy, &e))
			ovc_log_warn("user %s: keys not restored: %s", u->name, e.msg);
	}
	publish(u, now);
	if (was_expired && u->state != OVC_VIEW_EXPIRED)
		ovc_log_info("user %s: policy refreshed: service restored (%s)", u->name,
			     ovc_view_state_name(u->state));
}

enum ovc_user_outcome ovc_user_fetched(ovc_user *u, int rc,
				       ovc_fetch_result *res,
				       const ovc_err *fe, time_t now,
				       int *fresh, ovc_err *e)
{
	ovc_policy *p = NULL;
	enum ovc_user_outcome out;

	if (fresh)
		*fresh = 0;
	u->last_attempt = now;
	if (rc) {
		ovc_err_set(e, rc, "%s", fe && fe->msg[0] ? fe->msg : strerror(-rc));
		ovc_fetch_result_release(res);
		return fail(u, LR_ERROR, now, e->msg);
	}
	if (res->status == OVC_FETCH_UNCHANGED) {
		if (res->etag && (!u->etag || strcmp(res->etag, u->etag))) {
			free(u->etag);
			u->etag = strdup(res->etag);
		}
		ovc_fetch_result_release(res);
		success(u, LR_UNCHANGED, now);
		ovc_log_debug("user %s: policy unchanged (serial %" PRIu64 ")", u->name, u->seen.serial);
		return OVC_USER_OK;
	}
	rc = ovc_policy_verify_parse(res->doc, res->doc_len, (const char *)res->sig,
				     res->sig_len, u->pks, u->npks, &p, e);
	if (rc == 0)
		rc = ovc_policy_accept(p, u->org[0] ? u->org : p->org, u->name,
				       u->seen.serial ? &u->seen : NULL, now, e);
	if (rc) {
		ovc_policy_free(p);
		ovc_fetch_result_release(res);
		return fail(u, LR_REFUSED, now, e->msg);
	}
	if (u->policy && u->seen.serial == p->serial) {
		/* the same document again (a new mtime or ETag): unchanged */
		ovc_policy_free(p);
		out = OVC_USER_OK;
	} else {
		uint64_t old = u->seen.serial;

		save_cache(u, res->doc, res->doc_len, res->sig, res->sig_len);
		save_skeleton(u, p);
		u->seen.serial = p->serial;
		memcpy(u->seen.digest, p->digest, 32);
		snprintf(u->org, sizeof(u->org), "%s", p->org);
		u->last_success = now;
		rc = apply(u, p, 0, now, e);
		if (rc) {
			ovc_fetch_result_release(res);
			return fail(u, LR_REFUSED, now, e->msg);
		}
		ovc_log_info("user %s: policy serial %" PRIu64 " applied (was %" PRIu64 "), %zu rules, %s",
			     u->name, u->seen.serial, old, u->policy->nrules,
			     ovc_view_state_name(u->state));
		if (fresh)
			*fresh = 1;
		out = OVC_USER_OK;
	}
	free(u->etag);
	u->etag = res->etag ? strdup(res->etag) : NULL;
	u->modified = res->modified;
	ovc_fetch_result_release(res);
	success(u, fresh && *fresh ? LR_NEW : LR_UNCHANGED, now);
	return out;
}

/* ---- expiry and autolock ------------------------------------------------------------ */

time_t ovc_user_tick(ovc_user *u, time_t now)
{
	time_t next = 0, t;

	if (u->policy && u->state != OVC_VIEW_EXPIRED && now >= expires_at(u))
		publish(u, now);
	if (u->keys && u->policy && u->policy->settings.autolock_idle_s) {
		time_t last = ovc_views_last_access(u->views, u->uid);
		uint64_t idle = u->policy->settings.autolock_idle_s;

		if (last < u->unlocked_at)
			last = u->unlocked_at;
		if ((uint64_t)(now - last) >= idle) {
			char why[96];

			snprintf(why, sizeof(why), "autolock after %" PRIu64 " s without file access", idle);
			ovc_user_lock(u, why);
		} else {
			next = last + (time_t)idle;
		}
	}
	if (u->policy && u->state != OVC_VIEW_EXPIRED) {
		t = expires_at(u);
		if (!next || t < next)
			next = t;
	}
	return next;
}

/* ---- unlock and lock ---------------------------------------------------------------- */

enum ovc_user_outcome ovc_user_unlock_check(ovc_user *u, time_t now,
					    long *wait_s)
{
	*wait_s = u->unlock_not_before > now ? (long)(u->unlock_not_before - now) : 0;
	return *wait_s ? OVC_USER_WAIT : OVC_USER_OK;
}

void ovc_user_unlock_failed(ovc_user *u, time_t now, long *wait_s)
{
	unsigned f;
	long w;

	if (u->unlock_failures < 1000000)
		u->unlock_failures++;
	f = u->unlock_failures > 11 ? 11 : u->unlock_failures;
	w = 1L << (f - 1);
	if (w > OVC_UNLOCK_BACKOFF_MAX_S)
		w = OVC_UNLOCK_BACKOFF_MAX_S;
	u->unlock_not_before = now + w;
	*wait_s = w;
	save_state(u);
	ovc_log_warn("user %s: failed unlock (%u in a row): next attempt in %ld s",
		     u->name, u->unlock_failures, w);
}

enum ovc_user_outcome ovc_user_unlock(ovc_user *u, const char *identity,
				      time_t now, size_t *nkeys,
				      int *pending, long *wait_s, ovc_err *e)
{
	ovc_age_identity *id = NULL, *old;
	int rc;

	*nkeys = 0;
	*pending = 0;
	if (ovc_user_unlock_check(u, now, wait_s) == OVC_USER_WAIT) {
		ovc_err_set(e, -EAGAIN, "too many failed unlocks: try again in %ld s", *wait_s);
		return OVC_USER_WAIT;
	}
	rc = ovc_age_identity_parse(identity, strlen(identity), &id, e);
	if (rc) {
		ovc_err_wrap(e, rc, "not an identity: ");
		return OVC_USER_REFUSED;
	}
	old = u->id;
	u->id = id;
	if (u->policy) {
		rc = open_keys(u, u->policy, e);
		if (rc) {
			ovc_age_identity_free(id);
			u->id = old;
			if (old && open_keys(u, u->policy, NULL))
				drop_keys(u);
			ovc_user_unlock_failed(u, now, wait_s);
			publish(u, now);
			ovc_err_wrap(e, rc, "this identity does not open the policy's keys: ");
			return rc == -ENOMEM ? OVC_USER_INTERNAL : OVC_USER_NOKEY;
		}
		if (now >= expires_at(u))
			drop_keys(u);
	} else {
		*pending = 1;
	}
	ovc_age_identity_free(old);
	u->unlocked_at = now;
	if (u->unlock_failures || u->unlock_not_before) {
		u->unlock_failures = 0;
		u->unlock_not_before = 0;
		save_state(u);
	}
	publish(u, now);
	*nkeys = u->keys ? ovc_view_keys_get(u->keys)->n : 0;
	ovc_log_info("user %s: unlocked (%zu keys%s)", u->name, *nkeys,
		     *pending ? ", waiting for a policy" : "");
	return OVC_USER_OK;
}

void ovc_user_lock(ovc_user *u, const char *why)
{
	int had = u->id || u->keys;

	drop_keys(u);
	ovc_age_identity_free(u->id);
	u->id = NULL;
	publish(u, time(NULL));
	if (had)
		ovc_log_info("user %s: locked (%s): keys wiped", u->name, why);
}

/* ---- status and which --------------------------------------------------------------- */

static cJSON *rule_json(const ovc_rule *r)
{
	cJSON *o;
	char kid[OVC_KEY_ID_STRLEN + 1];

	if (!r)
		return cJSON_CreateNull();
	o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "asset", r->asset);
	cJSON_AddStringToObject(o, "type", ovc_rule_type_name(r->type));
	cJSON_AddStringToObject(o, "path", r->path);
	if (r->has_key) {
		ovc_key_id_format(r->key_id, kid);
		cJSON_AddStringToObject(o, "key_id", kid);
	} else {
		cJSON_AddNullToObject(o, "key_id");
	}
	return o;
}

const ovc_rule *ovc_user_rules(const ovc_user *u, size_t *n)
{
	*n = u->policy ? u->policy->nrules : u->nskel;
	return *n ? (u->policy ? u->policy->rules : u->skel) : NULL;
}

cJSON *ovc_user_status(const ovc_user *u, time_t now)
{
	cJSON *o = cJSON_CreateObject(), *pol, *ref, *rules;
	const ovc_rule *rs = u->policy ? u->policy->rules : u->skel;
	size_t nr = u->policy ? u->policy->nrules : u->nskel;
	long wait = u->unlock_not_before > now ? (long)(u->unlock_not_before - now) : 0;
	char src[PATH_MAX + 64];

	if (!o)
		return NULL;
	snprintf(src, sizeof(src), "%s%s.json", u->source, u->name);
	cJSON_AddStringToObject(o, "user", u->name);
	cJSON_AddNumberToObject(o, "uid", u->uid);
	cJSON_AddStringToObject(o, "state", ovc_view_state_name(u->state));
	cJSON_AddItemToObject(o, "state_since", time_json(u->state_since));
	cJSON_AddStringToObject(o, "reason", u->reason);
	cJSON_AddBoolToObject(o, "locked", u->id == NULL);
	cJSON_AddNumberToObject(o, "keys", u->keys ? (double)ovc_view_keys_get(u->keys)->n : 0);
	cJSON_AddNumberToObject(o, "unlock_wait_s", (double)wait);
	cJSON_AddNumberToObject(o, "unlock_failures", u->unlock_failures);
	if (u->policy && (pol = cJSON_AddObjectToObject(o, "policy"))) {
		cJSON_AddNumberToObject(pol, "serial", (double)u->policy->serial);
		cJSON_AddStringToObject(pol, "org", u->policy->org);
		cJSON_AddStringToObject(pol, "source", src);
		cJSON_AddItemToObject(pol, "issued_at", time_json(u->policy->issued_at));
		cJSON_AddItemToObject(pol, "valid_until", time_json(u->policy->valid_until));
		cJSON_AddBoolToObject(pol, "from_cache", u->from_cache);
	} else {
		cJSON_AddNullToObject(o, "policy");
	}
	if ((ref = cJSON_AddObjectToObject(o, "refresh"))) {
		cJSON_AddItemToObject(ref, "source", cJSON_CreateString(src));
		cJSON_AddItemToObject(ref, "last_attempt", time_json(u->last_attempt));
		cJSON_AddItemToObject(ref, "last_success", time_json(u->last_success));
		if (last_result_name[u->last_result])
			cJSON_AddStringToObject(ref, "last_result", last_result_name[u->last_result]);
		else
			cJSON_AddNullToObject(ref, "last_result");
		if (u->last_error[0])
			cJSON_AddStringToObject(ref, "last_error", u->last_error);
		else
			cJSON_AddNullToObject(ref, "last_error");
		cJSON_AddNumberToObject(ref, "failures", u->fetch_failures);
		cJSON_AddItemToObject(ref, "next", time_json(u->next_fetch));
	}
	cJSON_AddItemToObject(o, "expires_at", time_json(expires_at(u)));
	if ((rules = cJSON_AddArrayToObject(o, "rules")))
		for (size_t i = 0; i < nr; i++)
			cJSON_AddItemToArray(rules, rule_json(&rs[i]));
	cJSON_AddArrayToObject(o, "mounts");
	return o;
}

cJSON *ovc_user_which(const ovc_user *u, const char *path, ovc_err *e)
{
	ovc_match m;
	char why[1024];
	const ovc_keyset *ks = ovc_view_keys_get(u->keys);
	const ovc_rule *enc;
	cJSON *o;
	int rc;

	if (!u->rules) {
		ovc_err_set(e, -ENOENT, "no policy and no rules yet: nothing to say about %s", path);
		return NULL;
	}
	rc = ovc_ruleset_match(ovc_view_rules_get(u->rules), path, &m, why, sizeof(why));
	if (rc) {
		ovc_err_set(e, rc, "%s: %s", path, rc == -EINVAL ? "not an absolute path" : strerror(-rc));
		return NULL;
	}
	o = cJSON_CreateObject();
	if (!o) {
		ovc_err_set(e, -ENOMEM, "out of memory");
		return NULL;
	}
	enc = m.rule && m.rule->has_key ? m.rule : m.create_rule;
	cJSON_AddStringToObject(o, "path", path);
	cJSON_AddItemToObject(o, "rule", rule_json(m.rule));
	cJSON_AddItemToObject(o, "folder_rule", rule_json(m.folder_rule));
	cJSON_AddItemToObject(o, "create_rule", rule_json(m.create_rule));
	cJSON_AddBoolToObject(o, "key_held", enc && ks && ovc_keyset_find(ks, enc->key_id));
	cJSON_AddStringToObject(o, "state", ovc_view_state_name(u->state));
	cJSON_AddStringToObject(o, "explanation", why);
	return o;
}
