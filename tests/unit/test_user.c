/*
 * test_user.c - daemon/user.c without any network: the fetch outcomes are
 * built here (documents signed in-process with a fresh org key, keys blobs
 * sealed to a fresh age identity) and handed to ovc_user_fetched().
 *
 * Covered: a fresh user (no-policy); a good document (locked), unlock with
 * the right identity (ready, keys) and the wrong one (nokey, back-off 1, 2,
 * 4 ... capped at 900 s); fetch failures (next fetch 5, 10, 20 ... capped
 * at the refresh interval); state.json keeps unlock failures across a
 * restart; a cache applied at start; a corrupt policy.json at start (the
 * rules.json skeleton applies: expired, rules present); a tampered
 * document, a lower serial, another user's document (refused, the old
 * policy stays); expiry (tick drops the keys; an unchanged fetch restores
 * service); lock; pending unlock before any policy; status and which.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/common.h"
#include "crypto/age.h"
#include "crypto/keys.h"
#include "crypto/minisign.h"
#include "daemon/fetch.h"
#include "daemon/log.h"
#include "daemon/user.h"
#include "daemon/view.h"
#include "policy/document.h"

#define USER "alice"
#define ORG "corp"
#define CACHE_EXP 3600
#define REFRESH 60

/* One org with one user, a state folder and a view table. */
struct fx {
	ovc_minisign_seckey *sk;
	ovc_minisign_pubkey pk;
	ovc_keyset *ks;             /* the asset keys */
	ovc_age_identity *id;       /* alice's identity */
	ovc_age_identity *other;    /* someone else's */
	char id_text[OVC_AGE_IDENTITY_STRLEN + 1];
	char other_text[OVC_AGE_IDENTITY_STRLEN + 1];
	char dir[64];
	ovc_views *views;
	time_t t0;                  /* "now" at the start */
};

/* ---- helpers ------------------------------------------------------------------------ */

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(ovc_minisign_keygen(&f->sk, &f->pk), 0);
	f->ks = ovc_keyset_new(0);
	assert_non_null(f->ks);
	for (int i = 0; i < 2; i++)
		assert_int_equal(ovc_keyset_generate(f->ks, NULL), 0);
	assert_int_equal(ovc_age_identity_generate(&f->id), 0);
	assert_int_equal(ovc_age_identity_generate(&f->other), 0);
	ovc_age_identity_encode(f->id, f->id_text);
	ovc_age_identity_encode(f->other, f->other_text);
	strcpy(f->dir, "/tmp/ovc-test-user-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->views = ovc_views_new();
	assert_non_null(f->views);
	f->t0 = time(NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	DIR *d = opendir(f->dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char p[512];

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, de->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	ovc_views_free(f->views);
	ovc_minisign_seckey_free(f->sk);
	ovc_keyset_free(f->ks);
	ovc_age_identity_free(f->id);
	ovc_age_identity_free(f->other);
	sodium_memzero(f->id_text, sizeof(f->id_text));
	sodium_memzero(f->other_text, sizeof(f->other_text));
	free(f);
	return 0;
}

/* The keys blob of f->ks sealed to `id` (free()). */
static char *seal(const struct fx *f, const ovc_age_identity *id)
{
	ovc_age_recipient rcp;
	ovc_age_encrypt_opts o = { .recipients = &rcp, .n_recipients = 1,
				   .armor = 1 };
	uint8_t *blob = NULL, *sealed = NULL;
	size_t blen = 0, slen = 0;
	char *s;

	ovc_age_identity_recipient(id, &rcp);
	assert_int_equal(ovc_keysblob_encode(f->ks, &blob, &blen), 0);
	assert_int_equal(ovc_age_encrypt(&o, blob, blen, &sealed, &slen, NULL), 0);
	ovc_wipe_free(blob);
	s = strndup((const char *)sealed, slen);
	assert_non_null(s);
	free(sealed);
	return s;
}

/* A signed document for `user` with `serial`; *sig its signature. */
static char *doc_for(const struct fx *f, const char *user, uint64_t serial,
		     char **sig)
{
	ovc_policy p;
	ovc_rule r[2];
	char *keys = seal(f, f->id), *t = NULL;
	size_t n;

	memset(&p, 0, sizeof(p));
	memset(r, 0, sizeof(r));
	p.org = (char *)ORG;
	p.user = (char *)user;
	p.serial = serial;
	p.issued_at = f->t0 - 100;
	p.valid_until = f->t0 + 30 * 86400;
	p.settings = (ovc_policy_settings){ .refresh_interval_s = REFRESH,
		.cache_expiration_s = CACHE_EXP, .persistent_encryption = 1 };
	r[0] = (ovc_rule){ .asset = "vault", .type = OVC_RULE_SHARED,
			   .path = "/srv/ovc-vault/", .has_key = 1 };
	memcpy(r[0].key_id, f->ks->keys[0].id, OVC_KEY_ID_BYTES);
	r[1] = (ovc_rule){ .asset = "drop", .type = OVC_RULE_PUBLIC,
			   .path = "/srv/ovc-vault/public/" };
	p.rules = r;
	p.nrules = 2;
	p.keys = keys;
	assert_int_equal(ovc_policy_serialize(&p, &t, &n), 0);
	free(keys);
	assert_int_equal(ovc_minisign_sign(f->sk, (const uint8_t *)t, n,
					   "overcrypt test policy", sig), 0);
	return t;
}

/* A malloc()ed copy with a NUL after it, as the fetcher gives. */
static uint8_t *body(const char *s, size_t *n)
{
	uint8_t *b;

	*n = strlen(s);
	b = malloc(*n + 1);
	assert_non_null(b);
	memcpy(b, s, *n + 1);
	return b;
}

static ovc_fetch_result fetched_new(const char *doc, const char *sig,
				    const char *etag)
{
	ovc_fetch_result r = { 0 };

	r.status = OVC_FETCH_NEW;
	r.doc = body(doc, &r.doc_len);
	r.sig = body(sig, &r.sig_len);
	r.etag = etag ? strdup(etag) : NULL;
	r.modified = 1700000000;
	return r;
}

static enum ovc_user_outcome give(ovc_user *u, const char *doc,
				  const char *sig, time_t now, int *fresh,
				  ovc_err *e)
{
	ovc_fetch_result r = fetched_new(doc, sig, "\"etag-1\"");

	return ovc_user_fetched(u, 0, &r, NULL, now, fresh, e);
}

static enum ovc_user_outcome give_unchanged(ovc_user *u, time_t now)
{
	ovc_fetch_result r = { .status = OVC_FETCH_UNCHANGED };
	ovc_err e = { 0 };

	r.etag = strdup("\"etag-1\"");
	return ovc_user_fetched(u, 0, &r, NULL, now, NULL, &e);
}

static enum ovc_user_outcome give_error(ovc_user *u, int rc, time_t now)
{
	ovc_fetch_result r = { 0 };
	ovc_err fe = { 0 }, e = { 0 };

	ovc_err_set(&fe, rc, "file:///nowhere/alice.json: %s", strerror(-rc));
	return ovc_user_fetched(u, rc, &r, &fe, now, NULL, &e);
}

static ovc_user *new_user(struct fx *f, time_t now)
{
	const char *mounts[] = { "/srv/ovc-mount" };
	ovc_user_opts o = { .name = USER, .uid = getuid(), .state_dir = f->dir,
			    .source = "file:///nowhere/", .pks = &f->pk,
			    .npks = 1, .mount_paths = mounts,
			    .nmount_paths = 1, .views = f->views };
	ovc_user *u = NULL;
	ovc_err e = { 0 };

	assert_int_equal(ovc_user_new(&o, now, &u, &e), 0);
	assert_non_null(u);
	return u;
}

/* The published view's state (and keys count in *nkeys). */
static ovc_view_state view_state(struct fx *f, size_t *nkeys)
{
	ovc_view *v = ovc_views_get(f->views, getuid());
	ovc_view_state s;

	assert_non_null(v);
	s = v->state;
	if (nkeys)
		*nkeys = v->keys ? v->keys->n : 0;
	if (s == OVC_VIEW_READY)
		assert_non_null(v->keys);
	else
		assert_null(v->keys);
	ovc_view_put(v);
	return s;
}

/* status's "state" string. */
static void expect_status(ovc_user *u, time_t now, const char *state,
			  int keys)
{
	cJSON *st = ovc_user_status(u, now);
	const cJSON *s, *k;

	assert_non_null(st);
	s = cJSON_GetObjectItemCaseSensitive(st, "state");
	k = cJSON_GetObjectItemCaseSensitive(st, "keys");
	assert_true(cJSON_IsString(s));
	if (strcmp(s->valuestring, state))
		fail_msg("status state %s, want %s", s->valuestring, state);
	assert_true(cJSON_IsNumber(k));
	assert_int_equal((int)k->valuedouble, keys);
	cJSON_Delete(st);
}

static void write_text(const char *dir, const char *name, const char *text)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(ovc_write_file_atomic(p, text, strlen(text), 0600, 0), 0);
}

static int file_exists(const char *dir, const char *name, mode_t *mode)
{
	char p[256];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if (stat(p, &st) != 0)
		return 0;
	if (mode)
		*mode = st.st_mode & 07777;
	return 1;
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_fresh_user(void **state)
{
	struct fx *f = *state;
	ovc_user *u = new_user(f, f->t0);
	ovc_view *v;
	cJSON *st;
	ovc_err e = { 0 };

	assert_string_equal(ovc_user_name(u), USER);
	assert_int_equal(ovc_user_uid(u), getuid());
	assert_string_equal(ovc_user_source(u), "file:///nowhere/");
	assert_null(ovc_user_fetch_meta(u));       /* unconditional first fetch */
	assert_int_equal(ovc_user_next_fetch(u), f->t0);  /* fetch at once */
	assert_int_equal(view_state(f, NULL), OVC_VIEW_NO_POLICY);
	v = ovc_views_get(f->views, getuid());
	assert_null(v->rules);
	/* the [mount] folders are guarded */
	assert_int_equal(v->nfolders, 1);
	assert_string_equal(v->folders[0], "/srv/ovc-mount");
	ovc_view_put(v);
	expect_status(u, f->t0, "no-policy", 0);
	st = ovc_user_status(u, f->t0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(st, "policy")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "locked")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(st, "expires_at")));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st, "rules")), 0);
	cJSON_Delete(st);
	/* which without rules: an error, not a crash */
	assert_null(ovc_user_which(u, "/srv/ovc-vault/a", &e));
	assert_true(e.msg[0] != 0);
	ovc_user_free(u);
	/* the view is withdrawn */
	assert_null(ovc_views_get(f->views, getuid()));
}

static void test_fetch_unlock_ready(void **state)
{
	struct fx *f = *state;
	ovc_user *u = new_user(f, f->t0);
	char *sig = NULL, *doc = doc_for(f, USER, 100, &sig);
	size_t nkeys = 0;
	int fresh = -1, pending = -1;
	long wait = -1;
	ovc_err e = { 0 };
	const ovc_fetch_meta *m;
	mode_t mode = 0;
	cJSON *w;

	assert_int_equal(give(u, doc, sig, f->t0, &fresh, &e), OVC_USER_OK);
	assert_int_equal(fresh, 1);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_LOCKED);
	expect_status(u, f->t0, "locked", 0);
	/* the next fetch is conditional and planned within +-10 % */
	m = ovc_user_fetch_meta(u);
	assert_non_null(m);
	assert_string_equal(m->etag, "\"etag-1\"");
	assert_int_equal(m->modified, 1700000000);
	assert_true(ovc_user_next_fetch(u) >= f->t0 + REFRESH - REFRESH / 10);
	assert_true(ovc_user_next_fetch(u) <= f->t0 + REFRESH + REFRESH / 10);
	/* the cache: policy, signature, state, skeleton, all 0600 */
	assert_true(file_exists(f->dir, "policy.json", &mode));
	assert_int_equal(mode, 0600);
	assert_true(file_exists(f->dir, "policy.json.minisig", &mode));
	assert_int_equal(mode, 0600);
	assert_true(file_exists(f->dir, "state.json", &mode));
	assert_int_equal(mode, 0600);
	assert_true(file_exists(f->dir, "rules.json", &mode));
	assert_int_equal(mode, 0600);

	/* The same document again: unchanged. */
	assert_int_equal(give(u, doc, sig, f->t0 + 1, &fresh, &e), OVC_USER_OK);
	assert_int_equal(fresh, 0);

	/* Unlock with the right identity. */
	assert_int_equal(ovc_user_unlock_check(u, f->t0, &wait), OVC_USER_OK);
	assert_int_equal(wait, 0);
	assert_int_equal(ovc_user_unlock(u, f->id_text, f->t0, &nkeys, &pending, &wait, &e),
			 OVC_USER_OK);
	assert_int_equal(nkeys, 2);
	assert_int_equal(pending, 0);
	assert_int_equal(view_state(f, &nkeys), OVC_VIEW_READY);
	assert_int_equal(nkeys, 2);
	expect_status(u, f->t0, "ready", 2);

	/* A wrong identity while unlocked: nokey, counted, the held identity
	 * and its keys stay. */
	ovc_err_clear(&e);
	assert_int_equal(ovc_user_unlock(u, f->other_text, f->t0 + 5, &nkeys, &pending, &wait,
					 &e), OVC_USER_NOKEY);
	assert_int_equal(wait, 1);
	assert_true(e.msg[0] != 0);
	assert_int_equal(view_state(f, &nkeys), OVC_VIEW_READY);
	assert_int_equal(nkeys, 2);

	/* which: the rule, its key held */
	w = ovc_user_which(u, "/srv/ovc-vault/a.docx", &e);
	assert_non_null(w);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(w, "key_held")));
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(w, "rule"), "asset")->valuestring, "vault");
	cJSON_Delete(w);
	assert_null(ovc_user_which(u, "relative/path", &e));

	/* A file handle holds the ready view across a lock. */
	{
		ovc_view *held = ovc_views_get(f->views, getuid());

		ovc_user_lock(u, "test");
		assert_int_equal(view_state(f, NULL), OVC_VIEW_LOCKED);
		expect_status(u, f->t0, "locked", 0);
		assert_int_equal(held->state, OVC_VIEW_READY);
		assert_int_equal(held->keys->n, 2);
		assert_memory_equal(held->keys->keys[0].key, f->ks->keys[0].key, OVC_KEY_BYTES);
		ovc_view_put(held);
	}
	free(doc);
	free(sig);
	ovc_user_free(u);
}

static void test_pending_unlock(void **state)
{
	struct fx *f = *state;
	ovc_user *u = new_user(f, f->t0);
	char *sig = NULL, *doc = doc_for(f, USER, 100, &sig);
	size_t nkeys = 9;
	int pending = 0;
	long wait = 0;
	ovc_err e = { 0 };

	/* Not an identity. */
	assert_int_equal(ovc_user_unlock(u, "AGE-SECRET-KEY-1NOPE", f->t0, &nkeys, &pending,
					 &wait, &e), OVC_USER_REFUSED);
	/* Before any policy: pending. */
	assert_int_equal(ovc_user_unlock(u, f->id_text, f->t0, &nkeys, &pending, &wait, &e),
			 OVC_USER_OK);
	assert_int_equal(pending, 1);
	assert_int_equal(nkeys, 0);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_NO_POLICY);
	/* The policy arrives: ready at once. */
	assert_int_equal(give(u, doc, sig, f->t0, NULL, &e), OVC_USER_OK);
	assert_int_equal(view_state(f, &nkeys), OVC_VIEW_READY);
	assert_int_equal(nkeys, 2);
	free(doc);
	free(sig);
	ovc_user_free(u);
}

static void test_unlock_backoff(void **state)
{
	struct fx *f = *state;
	ovc_user *u = new_user(f, f->t0);
	char *sig = NULL, *doc = doc_for(f, USER, 100, &sig);
	const long want[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900 };
	time_t now = f->t0;
	size_t nkeys = 0;
	int pending = 0;
	long wait = -1;
	ovc_err e = { 0 };
	cJSON *st;

	assert_int_equal(give(u, doc, sig, now, NULL, &e), OVC_USER_OK);
	/* The wrong identity: nokey, one failure, wait 1 s. */
	assert_int_equal(ovc_user_unlock(u, f->other_text, now, &nkeys, &pending, &wait, &e),
			 OVC_USER_NOKEY);
	assert_int_equal(wait, 1);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_LOCKED);
	/* During the wait even the right one is refused. */
	assert_int_equal(ovc_user_unlock_check(u, now, &wait), OVC_USER_WAIT);
	assert_int_equal(wait, 1);
	assert_int_equal(ovc_user_unlock(u, f->id_text, now, &nkeys, &pending, &wait, &e),
			 OVC_USER_WAIT);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_LOCKED);
	now += 1;
	assert_int_equal(ovc_user_unlock_check(u, now, &wait), OVC_USER_OK);
	/* The client's wrong passphrases: 2, 4, ... 900, 900. */
	for (size_t i = 1; i < sizeof(want) / sizeof(want[0]); i++) {
		ovc_user_unlock_failed(u, now, &wait);
		if (wait != want[i])
			fail_msg("failure %zu: wait %ld, want %ld", i + 1, wait, want[i]);
		assert_int_equal(ovc_user_unlock_check(u, now + wait - 1, &wait), OVC_USER_WAIT);
		assert_int_equal(wait, 1);
		now += want[i];
	}
	st = ovc_user_status(u, now - 10);
	assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(st, "unlock_failures")->valuedouble,
			 (int)(sizeof(want) / sizeof(want[0])));
	assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(st, "unlock_wait_s")->valuedouble, 10);
	cJSON_Delete(st);

	/* state.json keeps it across a restart (a new agent). A refresh
	 * first, so that the hour of waits above does not expire the cache. */
	assert_int_equal(give_unchanged(u, now), OVC_USER_OK);
	ovc_user_unlock_failed(u, now, &wait);
	assert_int_equal(wait, 900);
	ovc_user_free(u);
	u = new_user(f, now + 5);
	assert_int_equal(ovc_user_unlock_check(u, now + 5, &wait), OVC_USER_WAIT);
	assert_int_equal(wait, 895);
	st = ovc_user_status(u, now + 5);
	assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(st, "unlock_failures")->valuedouble,
			 (int)(sizeof(want) / sizeof(want[0])) + 1);
	cJSON_Delete(st);
	/* the cached policy was applied at start too */
	assert_int_equal(view_state(f, NULL), OVC_VIEW_LOCKED);

	/* After the wait the right identity works and resets the count. */
	now += 900;
	assert_int_equal(ovc_user_unlock(u, f->id_text, now, &nkeys, &pending, &wait, &e),
			 OVC_USER_OK);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_READY);
	ovc_user_free(u);
	u = new_user(f, now);
	assert_int_equal(ovc_user_unlock_check(u, now, &wait), OVC_USER_OK);
	st = ovc_user_status(u, now);
	assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(st, "unlock_failures")->valuedouble, 0);
	cJSON_Delete(st);
	/* a restart is locked (the identity is never persisted) */
	assert_int_equal(view_state(f, NULL), OVC_VIEW_LOCKED);
	free(doc);
	free(sig);
	ovc_user_free(u);
}

static void test_fetch_backoff(void **state)
{
	struct fx *f = *state;
	ovc_user *u = new_user(f, f->t0);
	char *sig = NULL, *doc = doc_for(f, USER, 100, &sig);
	/* no policy yet: capped at the default interval */
	const long want_default[] = { 5, 10, 20, 40, 80, 160, 320, 640, 900, 900 };
	/* with the policy's interval (60 s) */
	const long want_policy[] = { 5, 10, 20, 40, 60, 60 };
	time_t now = f->t0;
	ovc_err e = { 0 };
	cJSON *st;

	for (size_t i = 0; i < sizeof(want_default) / sizeof(want_default[0]); i++) {
		assert_int_equal(give_error(u, -ETIMEDOUT, now), OVC_USER_FAILED);
		if (ovc_user_next_fetch(u) - now != want_default[i])
			fail_msg("failure %zu: next in %ld, want %ld", i + 1,
				 (long)(ovc_user_next_fetch(u) - now), want_default[i]);
		now = ovc_user_next_fetch(u);
	}
	assert_int_equal(view_state(f, NULL), OVC_VIEW_NO_POLICY);
	st = ovc_user_status(u, now);
	{
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(st, "refresh");

		assert_string_equal(cJSON_GetObjectItemCaseSensitive(r, "last_result")->valuestring,
				    "error");
		assert_non_null(strstr(cJSON_GetObjectItemCaseSensitive(r, "last_error")->valuestring,
				       "nowhere"));
		assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(r, "failures")->valuedouble, 10);
		assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "last_success")));
	}
	cJSON_Delete(st);

	/* A success resets; failures then back off up to the policy's 60 s. */
	assert_int_equal(give(u, doc, sig, now, NULL, &e), OVC_USER_OK);
	for (size_t i = 0; i < sizeof(want_policy) / sizeof(want_policy[0]); i++) {
		assert_int_equal(give_error(u, -ECONNREFUSED, now), OVC_USER_FAILED);
		if (ovc_user_next_fetch(u) - now != want_policy[i])
			fail_msg("failure %zu: next in %ld, want %ld", i + 1,
				 (long)(ovc_user_next_fetch(u) - now), want_policy[i]);
		now = ovc_user_next_fetch(u);
	}
	/* the policy stays applied through failures */
	assert_int_equal(view_state(f, NULL), OVC_VIEW_LOCKED);
	free(doc);
	free(sig);
	ovc_user_free(u);
}

static void test_refused_documents(void **state)
{
	struct fx *f = *state;
	ovc_user *u = new_user(f, f->t0);
	char *sig = NULL, *doc = doc_for(f, USER, 100, &sig);
	char *sig_lo = NULL, *doc_lo = doc_for(f, USER, 99, &sig_lo);
	char *sig_bob = NULL, *doc_bob = doc_for(f, "bob", 101, &sig_bob);
	char *sig2 = NULL, *doc2 = doc_for(f, USER, 102, &sig2);
	size_t nkeys = 0;
	int pending = 0, fresh = -1;
	long wait = 0;
	ovc_err e = { 0 };
	cJSON *st;

	assert_int_equal(give(u, doc, sig, f->t0, NULL, &e), OVC_USER_OK);
	assert_int_equal(ovc_user_unlock(u, f->id_text, f->t0, &nkeys, &pending, &wait, &e),
			 OVC_USER_OK);

	/* Tampered: one byte of the document changed. */
	{
		char *t = strdup(doc), *at = strstr(t, "ovc-vault");

		assert_non_null(at);
		at[4] = 'X';
		ovc_err_clear(&e);
		assert_int_equal(give(u, t, sig, f->t0 + 1, &fresh, &e), OVC_USER_REFUSED);
		assert_non_null(strstr(e.msg, "signature"));
		free(t);
	}
	/* Signed by another org key. */
	{
		ovc_minisign_seckey *sk2 = NULL;
		ovc_minisign_pubkey pk2;
		char *s2 = NULL;

		assert_int_equal(ovc_minisign_keygen(&sk2, &pk2), 0);
		assert_int_equal(ovc_minisign_sign(sk2, (const uint8_t *)doc2, strlen(doc2),
						   "x", &s2), 0);
		assert_int_equal(give(u, doc2, s2, f->t0 + 1, NULL, &e), OVC_USER_REFUSED);
		free(s2);
		ovc_minisign_seckey_free(sk2);
	}
	/* A lower serial (rollback). */
	ovc_err_clear(&e);
	assert_int_equal(give(u, doc_lo, sig_lo, f->t0 + 2, NULL, &e), OVC_USER_REFUSED);
	/* Another user's. */
	ovc_err_clear(&e);
	assert_int_equal(give(u, doc_bob, sig_bob, f->t0 + 3, NULL, &e), OVC_USER_REFUSED);

	/* The old policy and keys stay. */
	assert_int_equal(view_state(f, &nkeys), OVC_VIEW_READY);
	assert_int_equal(nkeys, 2);
	{
		ovc_view *v = ovc_views_get(f->views, getuid());

		assert_int_equal(v->serial, 100);
		ovc_view_put(v);
	}
	st = ovc_user_status(u, f->t0 + 3);
	{
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(st, "policy");
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(st, "refresh");

		assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(p, "serial")->valuedouble, 100);
		assert_string_equal(cJSON_GetObjectItemCaseSensitive(r, "last_result")->valuestring,
				    "refused");
	}
	cJSON_Delete(st);

	/* A refused one does not go to the cache: a restart applies 100. */
	ovc_user_free(u);
	u = new_user(f, f->t0 + 4);
	{
		ovc_view *v = ovc_views_get(f->views, getuid());

		assert_int_equal(v->serial, 100);
		assert_int_equal(v->state, OVC_VIEW_LOCKED);
		ovc_view_put(v);
	}
	/* the rollback is still refused after the restart (serial kept) */
	assert_int_equal(give(u, doc_lo, sig_lo, f->t0 + 5, NULL, &e), OVC_USER_REFUSED);
	/* A higher serial is taken. */
	assert_int_equal(give(u, doc2, sig2, f->t0 + 6, &fresh, &e), OVC_USER_OK);
	assert_int_equal(fresh, 1);
	{
		ovc_view *v = ovc_views_get(f->views, getuid());

		assert_int_equal(v->serial, 102);
		ovc_view_put(v);
	}
	free(doc); free(sig); free(doc_lo); free(sig_lo);
	free(doc_bob); free(sig_bob); free(doc2); free(sig2);
	ovc_user_free(u);
}

static void test_cache_tampered_at_start(void **state)
{
	struct fx *f = *state;
	ovc_user *u = new_user(f, f->t0);
	char *sig = NULL, *doc = doc_for(f, USER, 100, &sig);
	ovc_err e = { 0 };
	ovc_view *v;
	cJSON *st;

	assert_int_equal(give(u, doc, sig, f->t0, NULL, &e), OVC_USER_OK);
	ovc_user_free(u);

	/* A good cache: applied before any fetch, from_cache. */
	u = new_user(f, f->t0 + 10);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_LOCKED);
	st = ovc_user_status(u, f->t0 + 10);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(st, "policy"), "from_cache")));
	cJSON_Delete(st);
	assert_non_null(ovc_user_fetch_meta(u));
	ovc_user_free(u);

	/* A corrupt policy.json: ignored; the skeleton applies. */
	write_text(f->dir, "policy.json", "{\"format\": \"overcrypt-policy/1\", garbage");
	u = new_user(f, f->t0 + 20);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_EXPIRED);
	v = ovc_views_get(f->views, getuid());
	assert_non_null(v->rules);
	assert_int_equal(v->serial, 0);
	{
		ovc_match m;
		char why[256];

		assert_int_equal(ovc_ruleset_match(v->rules, "/srv/ovc-vault/a.docx", &m,
						   why, sizeof(why)), 0);
		assert_non_null(m.rule);
		assert_string_equal(m.rule->asset, "vault");
		assert_memory_equal(m.rule->key_id, f->ks->keys[0].id, OVC_KEY_ID_BYTES);
	}
	/* the rules' folder and the mount are guarded */
	{
		int mount = 0, vault = 0;

		for (size_t i = 0; i < v->nfolders; i++) {
			mount |= !strcmp(v->folders[i], "/srv/ovc-mount");
			vault |= !strncmp(v->folders[i], "/srv/ovc-vault", 14);
		}
		assert_true(mount && vault);
	}
	ovc_view_put(v);
	st = ovc_user_status(u, f->t0 + 20);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(st, "state")->valuestring, "expired");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(st, "policy")));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st, "rules")), 2);
	cJSON_Delete(st);
	/* no conditional fetch without a policy */
	assert_null(ovc_user_fetch_meta(u));
	/* the same document fetched again: accepted (same serial and digest) */
	assert_int_equal(give(u, doc, sig, f->t0 + 21, NULL, &e), OVC_USER_OK);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_LOCKED);
	ovc_user_free(u);

	/* A tampered cached document (signature fails): same. */
	{
		char *t = strdup(doc), *at = strstr(t, "ovc-vault");

		at[4] = 'Y';
		write_text(f->dir, "policy.json", t);
		free(t);
	}
	u = new_user(f, f->t0 + 30);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_EXPIRED);
	ovc_user_free(u);

	/* Corrupt state.json and rules.json too: no policy at all. */
	write_text(f->dir, "state.json", "not json");
	write_text(f->dir, "rules.json", "[1,2");
	u = new_user(f, f->t0 + 40);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_NO_POLICY);
	ovc_user_free(u);
	free(doc);
	free(sig);
}

static void test_expiry(void **state)
{
	struct fx *f = *state;
	ovc_user *u = new_user(f, f->t0);
	char *sig = NULL, *doc = doc_for(f, USER, 100, &sig);
	time_t now = f->t0, next;
	size_t nkeys = 0;
	int pending = 0;
	long wait = 0;
	ovc_err e = { 0 };
	ovc_view *held;
	cJSON *st;

	assert_int_equal(give(u, doc, sig, now, NULL, &e), OVC_USER_OK);
	assert_int_equal(ovc_user_unlock(u, f->id_text, now, &nkeys, &pending, &wait, &e),
			 OVC_USER_OK);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_READY);
	/* tick says when expiry is due */
	next = ovc_user_tick(u, now);
	assert_int_equal(next, now + CACHE_EXP);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_READY);
	held = ovc_views_get(f->views, getuid());

	/* Failures do not extend it. */
	assert_int_equal(give_error(u, -ECONNREFUSED, now + 100), OVC_USER_FAILED);
	assert_int_equal(ovc_user_tick(u, now + CACHE_EXP - 1), now + CACHE_EXP);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_READY);
	/* Past last_success + cache_expiration: expired, keys dropped. */
	ovc_user_tick(u, now + CACHE_EXP);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_EXPIRED);
	expect_status(u, now + CACHE_EXP, "expired", 0);
	st = ovc_user_status(u, now + CACHE_EXP);
	assert_non_null(strstr(cJSON_GetObjectItemCaseSensitive(st, "reason")->valuestring,
			       "cache_expiration"));
	cJSON_Delete(st);
	{
		ovc_view *v = ovc_views_get(f->views, getuid());

		assert_non_null(v->rules);
		ovc_view_put(v);
	}
	/* an open handle still has its keys until released */
	assert_int_equal(held->keys->n, 2);
	ovc_view_put(held);
	/* An unlock while expired: accepted, but no keys. */
	assert_int_equal(ovc_user_unlock(u, f->id_text, now + CACHE_EXP + 1, &nkeys, &pending,
					 &wait, &e), OVC_USER_OK);
	assert_int_equal(nkeys, 0);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_EXPIRED);

	/* A successful fetch (unchanged, a 304) restores service. */
	assert_int_equal(give_unchanged(u, now + CACHE_EXP + 50), OVC_USER_OK);
	assert_int_equal(view_state(f, &nkeys), OVC_VIEW_READY);
	assert_int_equal(nkeys, 2);
	assert_int_equal(ovc_user_tick(u, now + CACHE_EXP + 50), now + CACHE_EXP + 50 + CACHE_EXP);

	/* Expired again, then locked while expired, then a refresh: locked
	 * (the identity was wiped). */
	ovc_user_tick(u, now + 3 * CACHE_EXP);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_EXPIRED);
	ovc_user_lock(u, "test");
	assert_int_equal(give_unchanged(u, now + 3 * CACHE_EXP + 1), OVC_USER_OK);
	assert_int_equal(view_state(f, NULL), OVC_VIEW_LOCKED);
	free(doc);
	free(sig);
	ovc_user_free(u);
}

static void test_bad_state_dir(void **state)
{
	struct fx *f = *state;
	ovc_user_opts o = { .name = USER, .uid = getuid(), .source = "file:///x/",
			    .pks = &f->pk, .npks = 1, .views = f->views };
	ovc_user *u = (ovc_user *)1;
	ovc_err e = { 0 };
	char p[128];

	/* group/world writable: refused */
	snprintf(p, sizeof(p), "%s/open", f->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(chmod(p, 0777), 0);
	o.state_dir = p;
	assert_int_equal(ovc_user_new(&o, f->t0, &u, &e), -EPERM);
	assert_null(u);
	assert_int_equal(rmdir(p), 0);
	/* a file, not a folder */
	write_text(f->dir, "afile", "x");
	snprintf(p, sizeof(p), "%s/afile", f->dir);
	o.state_dir = p;
	assert_int_equal(ovc_user_new(&o, f->t0, &u, &e), -ENOTDIR);
	/* made when missing, 0700 */
	snprintf(p, sizeof(p), "%s/made", f->dir);
	o.state_dir = p;
	assert_int_equal(ovc_user_new(&o, f->t0, &u, &e), 0);
	{
		struct stat st;

		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0700);
	}
	ovc_user_free(u);
	rmdir(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fresh_user, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fetch_unlock_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_unlock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unlock_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fetch_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_documents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_tampered_at_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_state_dir, setup, teardown),
	};

	if (ovc_common_init() != 0)
		return 1;
	ovc_log_init(getenv("OVC_TEST_VERBOSE") ? OVC_LOG_DEBUG : OVC_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
