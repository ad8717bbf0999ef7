/*
 * decide.c - open/create decisions (see decide.h; DESIGN.md "The overlay").
 */
#include <errno.h>
#include <string.h>

#include "fusefs/decide.h"

int ovc_path_under_any(const char *path, const char *const *folders, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ovc_path_within(path, folders[i]))
			return 1;
	return 0;
}

static const ovc_key *held(const ovc_view *v, const uint8_t *id)
{
	if (!v || v->state != OVC_VIEW_READY || !v->keys || !id)
		return NULL;
	return ovc_keyset_find(v->keys, id);
}

static int refuse(ovc_decision *d, const char *why)
{
	d->act = OVC_ACT_PASS;
	d->key = d->fresh = NULL;
	d->why = why;
	return -EACCES;
}

static const char *no_key_why(const ovc_view *v)
{
	if (!v)
		return "this user is not served (no keys)";
	switch (v->state) {
	case OVC_VIEW_NO_POLICY:
		return "no policy yet";
	case OVC_VIEW_LOCKED:
		return "locked";
	case OVC_VIEW_EXPIRED:
		return "the policy expired";
	case OVC_VIEW_READY:
		break;
	}
	return "not entitled to the key";
}

const ovc_rule *ovc_decide_create_rule(const ovc_view *v, const char *path)
{
	ovc_match m;

	if (!v || !v->rules || ovc_ruleset_match(v->rules, path, &m, NULL, 0) < 0)
		return NULL;
	return m.create_rule;
}

/* Does the name's own rule encrypt? */
static int rule_encrypts(const ovc_match *m)
{
	return m->rule && m->rule->has_key && m->rule->type != OVC_RULE_PUBLIC;
}

int ovc_decide_rule_governs(const ovc_match *m)
{
	return rule_encrypts(m) || m->create_rule;
}

/* The key a plaintext file under an encrypting rule is converted under:
 * the place's create rule, else the name's own rule. */
static const uint8_t *convert_key_id(const ovc_match *m)
{
	return m->create_rule ? m->create_rule->key_id : m->rule->key_id;
}

const ovc_key *ovc_decide_convert_key(const ovc_view *v, const char *path,
				      const char **why)
{
	ovc_match m;
	const ovc_key *k;

	*why = NULL;
	if (!v || !v->rules) {
		*why = no_key_why(v);
		return NULL;
	}
	if (ovc_ruleset_match(v->rules, path, &m, NULL, 0) < 0) {
		*why = "the path does not match (too long)";
		return NULL;
	}
	if (!rule_encrypts(&m))
		return NULL;
	k = held(v, convert_key_id(&m));
	if (!k)
		*why = no_key_why(v);
	return k;
}

/* A copy of an encrypted file, where no rule encrypts (the caller checked
 * that no create rule applies), with persistent encryption on. */
static int is_copy(const ovc_request *r)
{
	return r->copy_key_id && r->view && r->view->settings.persistent_encryption;
}

static int copy_of(const ovc_request *r, ovc_decision *d)
{
	d->key = held(r->view, r->copy_key_id);
	if (!d->key)
		return refuse(d, "a copy of an encrypted file whose key is no longer held");
	d->act = OVC_ACT_ENC_NEW;
	return 0;
}

int ovc_decide(const ovc_request *r, ovc_decision *d)
{
	const ovc_view *v = r->view;
	ovc_match m;
	int have_match = 0, guarded;
	const ovc_rule *cr = NULL;
	int name_encrypts = 0;

	memset(d, 0, sizeof(*d));
	if (v && v->rules) {
		if (ovc_ruleset_match(v->rules, r->path, &m, NULL, 0) < 0)
			return refuse(d, "the path does not match (too long)");
		have_match = 1;
		cr = m.create_rule;
		name_encrypts = rule_encrypts(&m);
	}
	/* Places that must not get plaintext when no rules are known: a uid
	 * without a view, a view without a policy. */
	if (!v)
		guarded = ovc_path_under_any(r->path, r->guard, r->nguard);
	else if (!have_match)
		guarded = ovc_path_under_any(r->path, v->folders, v->nfolders);
	else
		guarded = 0;

	switch (r->fc) {
	case OVC_FC_ENC:
		d->key = held(v, r->key_id);
		if (!d->key)
			return refuse(d, no_key_why(v));
		d->act = OVC_ACT_ENC;
		/* a truncation to zero starts over under the place's key, or,
		 * where no rule encrypts, under the file's own (it stays
		 * encrypted: persistent encryption's products) */
		d->fresh = cr ? held(v, cr->key_id) : d->key;
		if (r->write && cr && !d->fresh)
			return refuse(d, "the place's current key is not held (nothing is written under another key)");
		if (r->write && !r->trunc && cr &&
		    memcmp(cr->key_id, r->key_id, OVC_KEY_ID_BYTES) != 0) {
			/* a retired or foreign key: never written under
			 * again (DESIGN.md, "Rules the format…") */
			const ovc_key *old = d->key;

			d->act = OVC_ACT_REKEY;
			d->key = d->fresh;
			d->fresh = old;
		}
		return 0;
	case OVC_FC_NEW:
	case OVC_FC_EMPTY:
		if (r->fc == OVC_FC_EMPTY && !r->write)
			break;
		if (cr) {
			d->key = held(v, cr->key_id);
			if (!d->key)
				return refuse(d, no_key_why(v));
			d->act = OVC_ACT_ENC_NEW;
			return 0;
		}
		if (guarded)
			return refuse(d, no_key_why(v));
		if (r->write && is_copy(r))
			return copy_of(r, d);
		break;
	case OVC_FC_PLAIN:
		if (name_encrypts) {
			if (v->settings.plaintext_under_rule == OVC_PLAINTEXT_STRICT)
				return refuse(d, "plaintext under an encryption rule (strict)");
			if (!r->write)
				break;
			d->key = held(v, convert_key_id(&m));
			if (!d->key)
				return refuse(d, no_key_why(v));
			if (r->trunc) {
				d->act = OVC_ACT_ENC_NEW;
				return 0;
			}
			if (v->settings.plaintext_under_rule == OVC_PLAINTEXT_REFUSE)
				return refuse(d, "plaintext under an encryption rule (refused by policy)");
			d->act = OVC_ACT_CONVERT;
			return 0;
		}
		if (r->write && r->trunc && cr) {
			d->key = held(v, cr->key_id);
			if (!d->key)
				return refuse(d, no_key_why(v));
			d->act = OVC_ACT_ENC_NEW;
			return 0;
		}
		if (r->write && guarded)
			return refuse(d, no_key_why(v));
		if (r->write && r->trunc && is_copy(r))
			return copy_of(r, d);
		break;
	}
	d->act = OVC_ACT_PASS;
	return 0;
}

static int key_eq(const ovc_rule *a, const ovc_rule *b)
{
	if (!a || !b)
		return a == b;
	return memcmp(a->key_id, b->key_id, OVC_KEY_ID_BYTES) == 0;
}

static int exdev(ovc_rename_decision *d, const char *why)
{
	d->act = OVC_REN_PLAIN;
	d->why = why;
	return -EXDEV;
}

int ovc_decide_rename(const ovc_rename_request *r, ovc_rename_decision *d)
{
	const ovc_view *v = r->view;
	const ovc_rule *cs, *cd;

	memset(d, 0, sizeof(*d));
	if (!v) {
		/* no rules known: only moves that stay inside, or outside,
		 * the served users' folders */
		if (ovc_path_under_any(r->src, r->guard, r->nguard) !=
		    ovc_path_under_any(r->dst, r->guard, r->nguard))
			return exdev(d, "this user is not served (no rules)");
		return 0;
	}
	cs = ovc_decide_create_rule(v, r->src);
	cd = ovc_decide_create_rule(v, r->dst);
	if (key_eq(cs, cd))
		return 0;
	if (r->exchange)
		return exdev(d, "an exchange across rules");
	switch (r->kind) {
	case OVC_RK_ENC:
		if (cd) {
			if (memcmp(cd->key_id, r->key_id, OVC_KEY_ID_BYTES) == 0)
				return 0; /* already under that key */
			d->from = held(v, r->key_id);
			d->to = held(v, cd->key_id);
			if (!d->from || !d->to) {
				d->why = !d->to ? no_key_why(v) : "the file's key is not held";
				d->from = d->to = NULL;
				return -EACCES;
			}
			d->act = OVC_REN_REWRAP;
			return 0;
		}
		if (v->settings.persistent_encryption)
			return 0; /* it stays encrypted where no rule is */
		return exdev(d, "encrypted file to a place with no rule (persistent encryption off)");
	case OVC_RK_DIR:
		if (cs && !cd && v->settings.persistent_encryption)
			return 0; /* what is encrypted below stays so */
		if (cs && cd) {
			d->to = held(v, cd->key_id);
			if (!d->to) {
				d->why = no_key_why(v);
				return -EACCES;
			}
			d->act = OVC_REN_REWRAP_TREE;
			return 0;
		}
		return exdev(d, "a folder across rules");
	case OVC_RK_FILE:
	case OVC_RK_OTHER:
		break;
	}
	return exdev(d, "across rules");
}
