/*
 * view.c - the per-uid view table (see view.h).
 *
 * One mutex guards the table; it is held only to find a slot and to swap or
 * copy a pointer, never while a view is built or freed (a view that loses
 * its last reference is freed after the lock is dropped) and never while
 * the keys-drop hook runs (it flushes overlays, whose threads ask for
 * views).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/view.h"

struct ovc_view_rules {
	atomic_int refs;
	ovc_ruleset *rs;
};

struct ovc_view_keys {
	atomic_int refs;
	ovc_keyset *ks;
};

const char *ovc_view_state_name(ovc_view_state s)
{
	switch (s) {
	case OVC_VIEW_NO_POLICY: return "no-policy";
	case OVC_VIEW_LOCKED: return "locked";
	case OVC_VIEW_EXPIRED: return "expired";
	case OVC_VIEW_READY: return "ready";
	}
	return "?";
}

ovc_view_rules *ovc_view_rules_new(ovc_ruleset *rs)
{
	ovc_view_rules *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	atomic_init(&r->refs, 1);
	r->rs = rs;
	return r;
}

void ovc_view_rules_unref(ovc_view_rules *r)
{
	if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
		ovc_ruleset_free(r->rs);
		free(r);
	}
}

const ovc_ruleset *ovc_view_rules_get(const ovc_view_rules *r)
{
	return r ? r->rs : NULL;
}

ovc_view_keys *ovc_view_keys_new(ovc_keyset *ks)
{
	ovc_view_keys *k = calloc(1, sizeof(*k));

	if (!k)
		return NULL;
	atomic_init(&k->refs, 1);
	k->ks = ks;
	return k;
}

void ovc_view_keys_unref(ovc_view_keys *k)
{
	if (k && atomic_fetch_sub(&k->refs, 1) == 1) {
		ovc_keyset_free(k->ks);
		free(k);
	}
}

const ovc_keyset *ovc_view_keys_get(const ovc_view_keys *k)
{
	return k ? k->ks : NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void view_free(ovc_view *v)
{
	for (size_t i = 0; i < v->nfolders; i++)
		free(v->folders_buf[i]);
	free(v->folders_buf);
	free(v->user_buf);
	ovc_view_rules_unref(v->rules_ref);
	ovc_view_keys_unref(v->keys_ref);
	free(v);
}

ovc_view *ovc_view_new(uid_t uid, const char *user, ovc_view_state state,
		       uint64_t serial, const ovc_policy_settings *settings,
		       ovc_view_rules *rules, ovc_view_keys *keys,
		       const char *const *folders, size_t nfolders)
{
	ovc_view *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->refs = 1;
	v->uid = uid;
	v->serial = serial;
	if (settings)
		v->settings = *settings;
	v->user_buf = strdup(user ? user : "");
	v->folders_buf = calloc(nfolders ? nfolders : 1, sizeof(char *));
	if (!v->user_buf || !v->folders_buf) {
		view_free(v);
		return NULL;
	}
	for (size_t i = 0; i < nfolders; i++) {
		v->folders_buf[i] = strdup(folders[i]);
		if (!v->folders_buf[i]) {
			view_free(v);
			return NULL;
		}
		v->nfolders = i + 1;
	}
	/* sorted and each once, as view.h promises */
	if (v->nfolders > 1) {
		size_t k = 1;

		qsort(v->folders_buf, v->nfolders, sizeof(char *), cmp_str);
		for (size_t i = 1; i < v->nfolders; i++) {
			if (!strcmp(v->folders_buf[k - 1], v->folders_buf[i]))
				free(v->folders_buf[i]);
			else
				v->folders_buf[k++] = v->folders_buf[i];
		}
		v->nfolders = k;
	}
	if (state == OVC_VIEW_READY && !ovc_view_keys_get(keys))
		state = OVC_VIEW_LOCKED;
	if (rules) {
		atomic_fetch_add(&rules->refs, 1);
		v->rules_ref = rules;
	}
	if (state == OVC_VIEW_READY) {
		atomic_fetch_add(&keys->refs, 1);
		v->keys_ref = keys;
	}
	v->state = state;
	v->user = v->user_buf;
	v->rules = ovc_view_rules_get(v->rules_ref);
	v->keys = ovc_view_keys_get(v->keys_ref);
	v->folders = (const char *const *)v->folders_buf;
	return v;
}

ovc_view *ovc_view_ref(ovc_view *v)
{
	if (v)
		__atomic_fetch_add(&v->refs, 1, __ATOMIC_RELAXED);
	return v;
}

void ovc_view_put(ovc_view *v)
{
	if (v && __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) == 0)
		view_free(v);
}

/* ---- the table ---------------------------------------------------------------------- */

struct slot {
	uid_t uid;
	ovc_view *view;      /* NULL once removed */
	time_t last_access;
};

struct ovc_views {
	pthread_mutex_t mu;          /* guards everything below */
	struct slot *slots;
	size_t n, cap;
	void (*drop_fn)(void *ctx, uid_t uid);  /* the keys-drop hook */
	void *drop_ctx;
};

ovc_views *ovc_views_new(void)
{
	ovc_views *vs = calloc(1, sizeof(*vs));

	if (!vs)
		return NULL;
	if (pthread_mutex_init(&vs->mu, NULL) != 0) {
		free(vs);
		return NULL;
	}
	return vs;
}

void ovc_views_free(ovc_views *vs)
{
	if (!vs)
		return;
	for (size_t i = 0; i < vs->n; i++)
		ovc_view_put(vs->slots[i].view);
	free(vs->slots);
	pthread_mutex_destroy(&vs->mu);
	free(vs);
}

/* Under vs->mu. */
static struct slot *slot_find(ovc_views *vs, uid_t uid)
{
	for (size_t i = 0; i < vs->n; i++)
		if (vs->slots[i].uid == uid)
			return &vs->slots[i];
	return NULL;
}

void ovc_views_set_keys_drop_hook(ovc_views *vs,
				  void (*fn)(void *ctx, uid_t uid), void *ctx)
{
	pthread_mutex_lock(&vs->mu);
	vs->drop_fn = fn;
	vs->drop_ctx = fn ? ctx : NULL;
	pthread_mutex_unlock(&vs->mu);
}

/* Call the keys-drop hook when the published view of `uid` holds keys and
 * its successor (`next_ready`: is it READY?) will not. Takes and drops the
 * lock: the hook runs outside it. */
static void keys_drop(ovc_views *vs, uid_t uid, int next_ready)
{
	void (*fn)(void *ctx, uid_t uid) = NULL;
	void *ctx = NULL;
	struct slot *s;

	if (next_ready)
		return;
	pthread_mutex_lock(&vs->mu);
	s = slot_find(vs, uid);
	if (s && s->view && s->view->state == OVC_VIEW_READY && vs->drop_fn) {
		fn = vs->drop_fn;
		ctx = vs->drop_ctx;
	}
	pthread_mutex_unlock(&vs->mu);
	if (fn)
		fn(ctx, uid);
}

int ovc_views_publish(ovc_views *vs, ovc_view *v)
{
	ovc_view *old = NULL;
	struct slot *s;

	keys_drop(vs, v->uid, v->state == OVC_VIEW_READY);
	pthread_mutex_lock(&vs->mu);
	s = slot_find(vs, v->uid);
	if (!s) {
		if (vs->n == vs->cap) {
			size_t cap = vs->cap ? vs->cap * 2 : 4;
			struct slot *ns = realloc(vs->slots, cap * sizeof(*ns));

			if (!ns) {
				pthread_mutex_unlock(&vs->mu);
				ovc_view_put(v);
				return -ENOMEM;
			}
			vs->slots = ns;
			vs->cap = cap;
		}
		s = &vs->slots[vs->n++];
		memset(s, 0, sizeof(*s));
		s->uid = v->uid;
	}
	old = s->view;
	s->view = v;
	pthread_mutex_unlock(&vs->mu);
	ovc_view_put(old);
	return 0;
}

void ovc_views_remove(ovc_views *vs, uid_t uid)
{
	ovc_view *old = NULL;
	struct slot *s;

	keys_drop(vs, uid, 0);
	pthread_mutex_lock(&vs->mu);
	s = slot_find(vs, uid);
	if (s) {
		old = s->view;
		s->view = NULL;
	}
	pthread_mutex_unlock(&vs->mu);
	ovc_view_put(old);
}

ovc_view *ovc_views_get(ovc_views *vs, uid_t uid)
{
	ovc_view *v = NULL;
	struct slot *s;

	pthread_mutex_lock(&vs->mu);
	s = slot_find(vs, uid);
	if (s)
		v = ovc_view_ref(s->view);
	pthread_mutex_unlock(&vs->mu);
	return v;
}

void ovc_views_touch(ovc_views *vs, uid_t uid)
{
	struct slot *s;

	pthread_mutex_lock(&vs->mu);
	s = slot_find(vs, uid);
	if (s)
		s->last_access = time(NULL);
	pthread_mutex_unlock(&vs->mu);
}

time_t ovc_views_last_access(ovc_views *vs, uid_t uid)
{
	struct slot *s;
	time_t t = 0;

	pthread_mutex_lock(&vs->mu);
	s = slot_find(vs, uid);
	if (s)
		t = s->last_access;
	pthread_mutex_unlock(&vs->mu);
	return t;
}

void ovc_views_folders_free(char **f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(f[i]);
	free(f);
}

int ovc_views_guard_folders(ovc_views *vs, char ***out, size_t *n)
{
	char **f = NULL;
	size_t cnt = 0, cap = 0, k = 0;
	int rc = 0;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&vs->mu);
	for (size_t i = 0; i < vs->n && rc == 0; i++) {
		const ovc_view *v = vs->slots[i].view;

		for (size_t j = 0; v && j < v->nfolders; j++) {
			if (cnt == cap) {
				size_t nc = cap ? cap * 2 : 8;
				char **nf = realloc(f, nc * sizeof(*nf));

				if (!nf) {
					rc = -ENOMEM;
					break;
				}
				f = nf;
				cap = nc;
			}
			f[cnt] = strdup(v->folders[j]);
			if (!f[cnt]) {
				rc = -ENOMEM;
				break;
			}
			cnt++;
		}
	}
	pthread_mutex_unlock(&vs->mu);
	if (rc) {
		ovc_views_folders_free(f, cnt);
		return rc;
	}
	if (cnt)
		qsort(f, cnt, sizeof(*f), cmp_str);
	for (size_t i = 0; i < cnt; i++) {
		if (k && !strcmp(f[k - 1], f[i])) {
			free(f[i]);
			continue;
		}
		f[k++] = f[i];
	}
	*out = f;
	*n = k;
	return 0;
}
