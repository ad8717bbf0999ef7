/*
 * test_view.c - daemon/view.c: the per-uid view table the overlay reads.
 *
 * Views and their refcounts; the shared rules and keys boxes (a view held
 * by a reader keeps its keys readable across a republish, until its last
 * put); READY without keys becomes LOCKED; touch / last access; the union
 * of guard folders (sorted, each once); remove; the keys-drop hook (called
 * while the old, keyed view is still published, only when a READY view
 * gives way to one without keys); and readers racing a writer that
 * republishes 10,000 times.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/common.h"
#include "crypto/keys.h"
#include "daemon/view.h"
#include "policy/rules.h"

/* A keyset of `n` random keys. */
static ovc_keyset *keys(size_t n)
{
	ovc_keyset *ks = ovc_keyset_new(0);

	assert_non_null(ks);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ovc_keyset_generate(ks, NULL), 0);
	return ks;
}

/* A small ruleset: one shared rule on `path`. */
static ovc_ruleset *rules(const char *path)
{
	ovc_rule r = { .asset = "vault", .type = OVC_RULE_SHARED,
		       .path = (char *)path, .has_key = 1 };
	ovc_ruleset *rs = NULL;
	ovc_err e = { 0 };

	memset(r.key_id, 0x11, sizeof(r.key_id));
	assert_int_equal(ovc_ruleset_build(&r, 1, "alice", NULL, 0, &rs, &e), 0);
	return rs;
}

static void test_state_names(void **state)
{
	(void)state;
	assert_string_equal(ovc_view_state_name(OVC_VIEW_NO_POLICY), "no-policy");
	assert_string_equal(ovc_view_state_name(OVC_VIEW_LOCKED), "locked");
	assert_string_equal(ovc_view_state_name(OVC_VIEW_EXPIRED), "expired");
	assert_string_equal(ovc_view_state_name(OVC_VIEW_READY), "ready");
	assert_string_equal(ovc_view_state_name((ovc_view_state)99), "?");
}

static void test_view_new_fields(void **state)
{
	ovc_view_rules *r = ovc_view_rules_new(rules("/srv/vault/"));
	ovc_view_keys *k = ovc_view_keys_new(keys(2));
	ovc_policy_settings st = { .refresh_interval_s = 60, .autolock_idle_s = 7 };
	const char *folders[] = { "/a", "/b" };
	char user[] = "alice";
	ovc_view *v;

	(void)state;
	assert_non_null(r);
	assert_non_null(k);
	v = ovc_view_new(1000, user, OVC_VIEW_READY, 42, &st, r, k, folders, 2);
	assert_non_null(v);
	/* the user and folders are copied */
	user[0] = 'X';
	assert_string_equal(v->user, "alice");
	assert_ptr_not_equal(v->folders[0], folders[0]);
	assert_int_equal(v->nfolders, 2);
	assert_string_equal(v->folders[0], "/a");
	assert_string_equal(v->folders[1], "/b");
	assert_int_equal(v->uid, 1000);
	assert_int_equal(v->state, OVC_VIEW_READY);
	assert_int_equal(v->serial, 42);
	assert_int_equal(v->settings.refresh_interval_s, 60);
	assert_int_equal(v->settings.autolock_idle_s, 7);
	assert_ptr_equal(v->rules, ovc_view_rules_get(r));
	assert_ptr_equal(v->keys, ovc_view_keys_get(k));
	assert_int_equal(v->keys->n, 2);

	/* The caller's references can go: the view holds its own. */
	ovc_view_rules_unref(r);
	ovc_view_keys_unref(k);
	assert_int_equal(v->keys->n, 2);
	{
		ovc_match m;
		char why[256];

		assert_int_equal(ovc_ruleset_match(v->rules, "/srv/vault/x.docx",
						   &m, why, sizeof(why)), 0);
		assert_non_null(m.rule);
		assert_string_equal(m.rule->asset, "vault");
	}
	ovc_view_put(v);

	/* No settings, no rules, no folders. */
	v = ovc_view_new(5, NULL, OVC_VIEW_NO_POLICY, 0, NULL, NULL, NULL, NULL, 0);
	assert_non_null(v);
	assert_string_equal(v->user, "");
	assert_null(v->rules);
	assert_null(v->keys);
	assert_int_equal(v->nfolders, 0);
	assert_int_equal(v->settings.refresh_interval_s, 0);
	ovc_view_put(v);
	ovc_view_put(NULL);
	assert_null(ovc_view_ref(NULL));
}

static void test_ready_without_keys_is_locked(void **state)
{
	ovc_view_rules *r = ovc_view_rules_new(rules("/srv/vault/"));
	ovc_view_keys *k = ovc_view_keys_new(keys(1));
	ovc_view_keys *empty = ovc_view_keys_new(NULL);
	ovc_view *v;

	(void)state;
	v = ovc_view_new(1, "a", OVC_VIEW_READY, 1, NULL, r, NULL, NULL, 0);
	assert_int_equal(v->state, OVC_VIEW_LOCKED);
	assert_null(v->keys);
	assert_null(v->keys_ref);
	ovc_view_put(v);

	/* A keys box holding no keyset counts as no keys. */
	v = ovc_view_new(1, "a", OVC_VIEW_READY, 1, NULL, r, empty, NULL, 0);
	assert_int_equal(v->state, OVC_VIEW_LOCKED);
	assert_null(v->keys);
	ovc_view_put(v);

	/* Keys are not attached in any state but READY. */
	for (int s = OVC_VIEW_NO_POLICY; s <= OVC_VIEW_EXPIRED; s++) {
		v = ovc_view_new(1, "a", (ovc_view_state)s, 1, NULL,
				 s == OVC_VIEW_NO_POLICY ? NULL : r, k, NULL, 0);
		assert_int_equal(v->state, s);
		assert_null(v->keys);
		assert_null(v->keys_ref);
		ovc_view_put(v);
	}
	/* So k still has exactly our reference: dropping it frees the keys
	 * (ASan would report a leak otherwise, or a double free if a view
	 * had dropped a reference it never took). */
	ovc_view_keys_unref(k);
	ovc_view_keys_unref(empty);
	ovc_view_rules_unref(r);
	ovc_view_keys_unref(NULL);
	ovc_view_rules_unref(NULL);
	assert_null(ovc_view_keys_get(NULL));
	assert_null(ovc_view_rules_get(NULL));
}

static void test_publish_get_put(void **state)
{
	ovc_views *vs = ovc_views_new();
	ovc_view *v, *g, *g2;

	(void)state;
	assert_non_null(vs);
	assert_null(ovc_views_get(vs, 1000));
	v = ovc_view_new(1000, "alice", OVC_VIEW_LOCKED, 1, NULL, NULL, NULL, NULL, 0);
	assert_int_equal(ovc_views_publish(vs, v), 0);
	g = ovc_views_get(vs, 1000);
	assert_ptr_equal(g, v);
	assert_int_equal(g->refs, 2);
	g2 = ovc_views_get(vs, 1000);
	assert_int_equal(g->refs, 3);
	ovc_view_put(g2);
	assert_int_equal(g->refs, 2);
	assert_ptr_equal(ovc_view_ref(g), g);
	assert_int_equal(g->refs, 3);
	ovc_view_put(g);
	ovc_view_put(g);
	assert_int_equal(v->refs, 1);   /* the table's */

	/* Other uids are not served. */
	assert_null(ovc_views_get(vs, 1001));
	assert_null(ovc_views_get(vs, 0));

	/* Many uids: the table grows (past its first capacity). */
	for (uid_t u = 2000; u < 2020; u++)
		assert_int_equal(ovc_views_publish(vs, ovc_view_new(u, "x", OVC_VIEW_LOCKED, u,
								    NULL, NULL, NULL, NULL, 0)), 0);
	for (uid_t u = 2000; u < 2020; u++) {
		g = ovc_views_get(vs, u);
		assert_non_null(g);
		assert_int_equal(g->serial, u);
		ovc_view_put(g);
	}
	g = ovc_views_get(vs, 1000);
	assert_ptr_equal(g, v);
	ovc_view_put(g);
	ovc_views_free(vs);
	ovc_views_free(NULL);
}

static void test_republish_keeps_readers_keys(void **state)
{
	ovc_views *vs = ovc_views_new();
	ovc_view_rules *r = ovc_view_rules_new(rules("/srv/vault/"));
	ovc_keyset *ks = keys(3);
	uint8_t first[OVC_KEY_BYTES];
	ovc_view_keys *k;
	ovc_view *v1, *v2, *held, *g;

	(void)state;
	memcpy(first, ks->keys[0].key, sizeof(first));
	k = ovc_view_keys_new(ks);
	v1 = ovc_view_new(1000, "alice", OVC_VIEW_READY, 7, NULL, r, k, NULL, 0);
	/* the agent keeps no reference of its own beyond the view's */
	ovc_view_keys_unref(k);
	assert_int_equal(ovc_views_publish(vs, v1), 0);

	/* A reader (an open file handle) takes the view. */
	held = ovc_views_get(vs, 1000);
	assert_ptr_equal(held, v1);

	/* The agent locks: a new view without keys replaces it. */
	v2 = ovc_view_new(1000, "alice", OVC_VIEW_LOCKED, 7, NULL, r, NULL, NULL, 0);
	assert_int_equal(ovc_views_publish(vs, v2), 0);
	g = ovc_views_get(vs, 1000);
	assert_ptr_equal(g, v2);
	assert_int_equal(g->state, OVC_VIEW_LOCKED);
	assert_null(g->keys);
	ovc_view_put(g);

	/* The old view is alive for its reader, keys and rules intact. */
	assert_int_equal(held->refs, 1);
	assert_int_equal(held->state, OVC_VIEW_READY);
	assert_non_null(held->keys);
	assert_int_equal(held->keys->n, 3);
	assert_memory_equal(held->keys->keys[0].key, first, sizeof(first));
	assert_ptr_equal(ovc_keyset_find(held->keys, held->keys->keys[2].id),
			 &held->keys->keys[2]);
	assert_ptr_equal(held->rules, ovc_view_rules_get(r));
	/* The last put frees it and its keys (ASan: no leak, no use after). */
	ovc_view_put(held);

	/* Rules are shared: the new view still has them after ours go. */
	ovc_view_rules_unref(r);
	g = ovc_views_get(vs, 1000);
	assert_non_null(g->rules);
	{
		ovc_match m;
		char why[256];

		assert_int_equal(ovc_ruleset_match(g->rules, "/srv/vault/a.txt",
						   &m, why, sizeof(why)), 0);
		assert_non_null(m.rule);
	}
	ovc_view_put(g);
	ovc_views_free(vs);
	sodium_memzero(first, sizeof(first));
}

static void test_keys_shared_by_views(void **state)
{
	ovc_views *vs = ovc_views_new();
	ovc_view_keys *k = ovc_view_keys_new(keys(1));
	ovc_view *a, *b, *ha;

	(void)state;
	/* Two successive views share one keys box (a new policy serial,
	 * same unlock): republishing drops one reference, not the keys. */
	a = ovc_view_new(1, "u", OVC_VIEW_READY, 1, NULL, NULL, k, NULL, 0);
	b = ovc_view_new(1, "u", OVC_VIEW_READY, 2, NULL, NULL, k, NULL, 0);
	ovc_view_keys_unref(k);
	assert_int_equal(ovc_views_publish(vs, a), 0);
	ha = ovc_views_get(vs, 1);
	assert_int_equal(ovc_views_publish(vs, b), 0);
	ovc_view_put(ha);   /* a goes: the keys stay for b */
	ha = ovc_views_get(vs, 1);
	assert_ptr_equal(ha, b);
	assert_int_equal(ha->keys->n, 1);
	assert_ptr_equal(ha->keys, ovc_view_keys_get(k));
	ovc_view_put(ha);
	ovc_views_free(vs);
}

static void test_remove(void **state)
{
	ovc_views *vs = ovc_views_new();
	ovc_view *v, *held;

	(void)state;
	ovc_views_remove(vs, 1);   /* no-op */
	v = ovc_view_new(1, "u", OVC_VIEW_LOCKED, 1, NULL, NULL, NULL, NULL, 0);
	assert_int_equal(ovc_views_publish(vs, v), 0);
	held = ovc_views_get(vs, 1);
	ovc_views_remove(vs, 1);
	assert_null(ovc_views_get(vs, 1));
	/* the reader keeps its view */
	assert_int_equal(held->refs, 1);
	assert_string_equal(held->user, "u");
	ovc_view_put(held);
	ovc_views_remove(vs, 1);   /* again: no-op */

	/* Published again after removal. */
	v = ovc_view_new(1, "u2", OVC_VIEW_LOCKED, 2, NULL, NULL, NULL, NULL, 0);
	assert_int_equal(ovc_views_publish(vs, v), 0);
	held = ovc_views_get(vs, 1);
	assert_non_null(held);
	assert_string_equal(held->user, "u2");
	ovc_view_put(held);
	ovc_views_free(vs);
}

/* What the keys-drop hook saw: each call's uid, and the view of that uid
 * published at the time of the call (it must still be the keyed one). */
struct drop_seen {
	ovc_views *vs;
	int calls;
	uid_t uid;
	ovc_view_state state_then;
	int had_keys_then;
	size_t nkeys_then;
};

static void drop_hook(void *ctx, uid_t uid)
{
	struct drop_seen *d = ctx;
	ovc_view *v = ovc_views_get(d->vs, uid);   /* no deadlock: lock not held */

	d->calls++;
	d->uid = uid;
	d->state_then = v ? v->state : OVC_VIEW_NO_POLICY;
	d->had_keys_then = v && v->keys;
	d->nkeys_then = v && v->keys ? v->keys->n : 0;
	ovc_view_put(v);
}

static ovc_view *view_in(uid_t uid, ovc_view_state st, ovc_view_keys *k)
{
	ovc_view *v = ovc_view_new(uid, "u", st, 1, NULL, NULL, k, NULL, 0);

	assert_non_null(v);
	return v;
}

static void test_keys_drop_hook(void **state)
{
	ovc_views *vs = ovc_views_new();
	ovc_view_keys *k = ovc_view_keys_new(keys(2));
	struct drop_seen d = { .vs = vs };

	(void)state;
	ovc_views_set_keys_drop_hook(vs, drop_hook, &d);

	/* First view of a uid, and LOCKED -> READY: nothing is dropped. */
	assert_int_equal(ovc_views_publish(vs, view_in(7, OVC_VIEW_LOCKED, NULL)), 0);
	assert_int_equal(ovc_views_publish(vs, view_in(7, OVC_VIEW_READY, k)), 0);
	assert_int_equal(d.calls, 0);
	/* READY -> READY (a new policy, same unlock): keys stay, no call. */
	assert_int_equal(ovc_views_publish(vs, view_in(7, OVC_VIEW_READY, k)), 0);
	assert_int_equal(d.calls, 0);

	/* READY -> LOCKED (overcrypt lock): one call, the keyed view still
	 * published while it runs. */
	assert_int_equal(ovc_views_publish(vs, view_in(7, OVC_VIEW_LOCKED, NULL)), 0);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.uid, 7);
	assert_int_equal(d.state_then, OVC_VIEW_READY);
	assert_true(d.had_keys_then);
	assert_int_equal(d.nkeys_then, 2);
	/* LOCKED -> EXPIRED, LOCKED -> LOCKED: no keys to drop, no call. */
	assert_int_equal(ovc_views_publish(vs, view_in(7, OVC_VIEW_EXPIRED, NULL)), 0);
	assert_int_equal(ovc_views_publish(vs, view_in(7, OVC_VIEW_LOCKED, NULL)), 0);
	assert_int_equal(d.calls, 1);

	/* READY -> EXPIRED (expiry drops the keys): a call. */
	assert_int_equal(ovc_views_publish(vs, view_in(7, OVC_VIEW_READY, k)), 0);
	assert_int_equal(ovc_views_publish(vs, view_in(7, OVC_VIEW_EXPIRED, NULL)), 0);
	assert_int_equal(d.calls, 2);
	assert_int_equal(d.state_then, OVC_VIEW_READY);

	/* READY "without keys" is LOCKED (ovc_view_new): a call. */
	assert_int_equal(ovc_views_publish(vs, view_in(7, OVC_VIEW_READY, k)), 0);
	assert_int_equal(ovc_views_publish(vs, view_in(7, OVC_VIEW_READY, NULL)), 0);
	assert_int_equal(d.calls, 3);

	/* Another uid's change is its own: uid 8 READY -> LOCKED names 8. */
	assert_int_equal(ovc_views_publish(vs, view_in(8, OVC_VIEW_READY, k)), 0);
	assert_int_equal(ovc_views_publish(vs, view_in(8, OVC_VIEW_NO_POLICY, NULL)), 0);
	assert_int_equal(d.calls, 4);
	assert_int_equal(d.uid, 8);

	/* Remove: a READY view removed drops keys (one call); a LOCKED one,
	 * an absent uid, or a second remove do not. */
	assert_int_equal(ovc_views_publish(vs, view_in(7, OVC_VIEW_READY, k)), 0);
	ovc_views_remove(vs, 7);
	assert_int_equal(d.calls, 5);
	assert_int_equal(d.uid, 7);
	assert_true(d.had_keys_then);
	ovc_views_remove(vs, 7);
	ovc_views_remove(vs, 8);
	ovc_views_remove(vs, 99);
	assert_int_equal(d.calls, 5);

	/* Cleared: no more calls. */
	ovc_views_set_keys_drop_hook(vs, NULL, &d);
	assert_int_equal(ovc_views_publish(vs, view_in(7, OVC_VIEW_READY, k)), 0);
	assert_int_equal(ovc_views_publish(vs, view_in(7, OVC_VIEW_LOCKED, NULL)), 0);
	assert_int_equal(d.calls, 5);

	ovc_view_keys_unref(k);
	ovc_views_free(vs);
}

static void test_touch(void **state)
{
	ovc_views *vs = ovc_views_new();
	time_t before, t;

	(void)state;
	/* no view: touch is a no-op, last access 0 */
	ovc_views_touch(vs, 7);
	assert_int_equal(ovc_views_last_access(vs, 7), 0);
	assert_int_equal(ovc_views_publish(vs, ovc_view_new(7, "u", OVC_VIEW_LOCKED, 1, NULL,
							    NULL, NULL, NULL, 0)), 0);
	assert_int_equal(ovc_views_last_access(vs, 7), 0);
	before = time(NULL);
	ovc_views_touch(vs, 7);
	t = ovc_views_last_access(vs, 7);
	assert_true(t >= before && t <= time(NULL));
	/* others untouched */
	assert_int_equal(ovc_views_last_access(vs, 8), 0);
	/* a republish keeps the last access (it is per uid, not per view) */
	assert_int_equal(ovc_views_publish(vs, ovc_view_new(7, "u", OVC_VIEW_LOCKED, 2, NULL,
							    NULL, NULL, NULL, 0)), 0);
	assert_int_equal(ovc_views_last_access(vs, 7), t);
	ovc_views_free(vs);
}

static void test_guard_folders(void **state)
{
	ovc_views *vs = ovc_views_new();
	const char *fa[] = { "/srv/b", "/home/alice/Private", "/srv/a" };
	const char *fb[] = { "/srv/a", "/data", "/srv/b", "/srv/a" };
	const char *want[] = { "/data", "/home/alice/Private", "/srv/a", "/srv/b" };
	char **f = (char **)1;
	size_t n = 99;

	(void)state;
	/* none published */
	assert_int_equal(ovc_views_guard_folders(vs, &f, &n), 0);
	assert_int_equal(n, 0);
	ovc_views_folders_free(f, n);

	assert_int_equal(ovc_views_publish(vs, ovc_view_new(1, "a", OVC_VIEW_LOCKED, 1, NULL, NULL,
							    NULL, fa, 3)), 0);
	assert_int_equal(ovc_views_publish(vs, ovc_view_new(2, "b", OVC_VIEW_NO_POLICY, 0, NULL, NULL,
							    NULL, fb, 4)), 0);
	assert_int_equal(ovc_views_publish(vs, ovc_view_new(3, "c", OVC_VIEW_LOCKED, 0, NULL, NULL,
							    NULL, NULL, 0)), 0);
	assert_int_equal(ovc_views_guard_folders(vs, &f, &n), 0);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(f[i], want[i]);
	ovc_views_folders_free(f, n);

	/* A removed view's folders go; a republished view's change. */
	ovc_views_remove(vs, 2);
	assert_int_equal(ovc_views_publish(vs, ovc_view_new(1, "a", OVC_VIEW_LOCKED, 2, NULL, NULL,
							    NULL, fa + 2, 1)), 0);
	assert_int_equal(ovc_views_guard_folders(vs, &f, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(f[0], "/srv/a");
	ovc_views_folders_free(f, n);

	/* Many folders (the array grows), many duplicates. */
	{
		char *many[40];

		for (int i = 0; i < 40; i++)
			assert_true(asprintf(&many[i], "/f/%02d", (i * 7) % 20) > 0);
		assert_int_equal(ovc_views_publish(vs, ovc_view_new(4, "d", OVC_VIEW_LOCKED, 1,
								    NULL, NULL, NULL,
								    (const char *const *)many, 40)), 0);
		for (int i = 0; i < 40; i++)
			free(many[i]);
		assert_int_equal(ovc_views_guard_folders(vs, &f, &n), 0);
		assert_int_equal(n, 21);
		for (size_t i = 1; i < n; i++)
			assert_true(strcmp(f[i - 1], f[i]) < 0);
		assert_string_equal(f[0], "/f/00");
		assert_string_equal(f[19], "/f/19");
		assert_string_equal(f[20], "/srv/a");
		ovc_views_folders_free(f, n);
	}
	ovc_views_folders_free(NULL, 0);
	ovc_views_free(vs);
}

/* ---- concurrency -------------------------------------------------------------------- */

#define REPUBLISH 10000

struct race {
	ovc_views *vs;
	ovc_view_rules *r;
	ovc_view_keys *k;
	volatile int stop;
	long reads, ready, bad;
};

static void *reader(void *arg)
{
	struct race *R = arg;
	long reads = 0, ready = 0, bad = 0;

	while (!__atomic_load_n(&R->stop, __ATOMIC_ACQUIRE)) {
		ovc_view *v = ovc_views_get(R->vs, 1000);
		char **f;
		size_t n;

		if (!v) {
			bad++;
			continue;
		}
		reads++;
		/* A view is consistent: its serial says what it must hold. */
		if (v->uid != 1000 || strcmp(v->user, "alice") || v->nfolders != 1 ||
		    strcmp(v->folders[0], "/srv/vault"))
			bad++;
		if (v->serial % 2) {
			if (v->state != OVC_VIEW_READY || !v->keys || v->keys->n != 2 ||
			    !ovc_keyset_find(v->keys, v->keys->keys[1].id))
				bad++;
			else
				ready++;
		} else if (v->state != OVC_VIEW_LOCKED || v->keys) {
			bad++;
		}
		if (!v->rules)
			bad++;
		ovc_views_touch(R->vs, 1000);
		if (reads % 64 == 0) {
			if (ovc_views_guard_folders(R->vs, &f, &n) != 0 || n != 1)
				bad++;
			ovc_views_folders_free(f, n);
		}
		ovc_view_put(v);
	}
	R->reads = reads;
	__atomic_fetch_add(&R->ready, ready, __ATOMIC_RELAXED);
	__atomic_fetch_add(&R->bad, bad, __ATOMIC_RELAXED);
	return NULL;
}

static void test_concurrency(void **state)
{
	struct race R = { 0 };
	const char *folders[] = { "/srv/vault" };
	pthread_t th[2];
	long total = 0;

	(void)state;
	R.vs = ovc_views_new();
	R.r = ovc_view_rules_new(rules("/srv/vault/"));
	R.k = ovc_view_keys_new(keys(2));
	assert_int_equal(ovc_views_publish(R.vs, ovc_view_new(1000, "alice", OVC_VIEW_LOCKED, 0,
							      NULL, R.r, NULL, folders, 1)), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, &R), 0);
	for (uint64_t s = 1; s <= REPUBLISH; s++) {
		/* odd serials READY with a fresh keys box every time (an unlock),
		 * even ones LOCKED: every keys box is freed while readers run */
		ovc_view_keys *k = s % 2 ? ovc_view_keys_new(keys(2)) : NULL;
		ovc_view *v = ovc_view_new(1000, "alice", s % 2 ? OVC_VIEW_READY : OVC_VIEW_LOCKED,
					   s, NULL, R.r, k, folders, 1);

		assert_non_null(v);
		ovc_view_keys_unref(k);
		assert_int_equal(ovc_views_publish(R.vs, v), 0);
	}
	__atomic_store_n(&R.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	total = R.reads;
	assert_int_equal(R.bad, 0);
	assert_true(total > 0);
	{
		ovc_view *v = ovc_views_get(R.vs, 1000);

		assert_int_equal(v->serial, REPUBLISH);
		assert_int_equal(v->refs, 2);
		ovc_view_put(v);
	}
	assert_true(ovc_views_last_access(R.vs, 1000) > 0);
	ovc_view_rules_unref(R.r);
	ovc_view_keys_unref(R.k);
	ovc_views_free(R.vs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_view_new_fields),
		cmocka_unit_test(test_ready_without_keys_is_locked),
		cmocka_unit_test(test_publish_get_put),
		cmocka_unit_test(test_republish_keeps_readers_keys),
		cmocka_unit_test(test_keys_shared_by_views),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_keys_drop_hook),
		cmocka_unit_test(test_touch),
		cmocka_unit_test(test_guard_folders),
		cmocka_unit_test(test_concurrency),
	};

	if (ovc_common_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
