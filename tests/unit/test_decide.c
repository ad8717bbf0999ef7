/*
 * test_decide.c - the overlay's open/create decisions (fusefs/decide.h),
 * one case per row of docs/overlay.md's table, in every view state.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "common/common.h"
#include "fusefs/decide.h"

static ovc_keyset *ks;
static const ovc_key *k_docs, *k_old, *k_other;
static ovc_view_rules *rules;
static ovc_view_keys *keys;

static const char *folders[] = { "/srv/docs", "/srv/mount" };

static ovc_view *view(ovc_view_state st, enum ovc_plaintext_mode pm)
{
	ovc_policy_settings s = { .plaintext_under_rule = pm };

	return ovc_view_new(1000, "alice", st, st == OVC_VIEW_NO_POLICY ? 0 : 7, &s,
			    st == OVC_VIEW_NO_POLICY ? NULL : rules,
			    keys, folders, 2);
}

static int setup(void **state)
{
	ovc_rule r[4] = {
		{ .asset = "docs", .type = OVC_RULE_SHARED, .path = "/srv/docs/", .has_key = 1 },
		{ .asset = "pub", .type = OVC_RULE_PUBLIC, .path = "/srv/docs/pub/" },
		{ .asset = "word", .type = OVC_RULE_SHARED, .path = "/srv/office/ *.docx", .has_key = 1 },
		{ .asset = "legal", .type = OVC_RULE_SHARED, .path = "/srv/legal/", .has_key = 1 },
	};
	ovc_ruleset *rs;
	ovc_err e = { 0 };

	(void)state;
	ovc_common_init();
	ks = ovc_keyset_new(4);
	assert_non_null(ks);
	assert_int_equal(ovc_keyset_generate(ks, &k_old), 0);
	assert_int_equal(ovc_keyset_generate(ks, &k_other), 0);
	assert_int_equal(ovc_keyset_generate(ks, &k_docs), 0);
	/* pointers die when the set grows: find them again */
	{
		uint8_t a[16], b[16], c[16];

		memcpy(a, k_old->id, 16);
		memcpy(b, k_other->id, 16);
		memcpy(c, k_docs->id, 16);
		k_old = ovc_keyset_find(ks, a);
		k_other = ovc_keyset_find(ks, b);
		k_docs = ovc_keyset_find(ks, c);
	}
	memcpy(r[0].key_id, k_docs->id, 16);
	memcpy(r[2].key_id, k_docs->id, 16);
	memcpy(r[3].key_id, k_other->id, 16);
	r[2].path = "/srv/office/*.docx";
	assert_int_equal(ovc_ruleset_build(r, 4, "alice", NULL, 0, &rs, &e), 0);
	rules = ovc_view_rules_new(rs);
	keys = ovc_view_keys_new(ks);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ovc_view_rules_unref(rules);
	ovc_view_keys_unref(keys);
	return 0;
}

static int run(const ovc_view *v, const char *path, enum ovc_fclass fc,
	       const ovc_key *kid, int write, int trunc, ovc_decision *d)
{
	ovc_request r = { .view = v, .path = path, .fc = fc,
			  .key_id = kid ? kid->id : NULL, .write = write, .trunc = trunc };

	return ovc_decide(&r, d);
}

static void test_ready(void **state)
{
	ovc_view *v = view(OVC_VIEW_READY, OVC_PLAINTEXT_CONVERT);
	ovc_decision d;

	(void)state;
	/* new files under the rule: encrypted with the rule's key */
	assert_int_equal(run(v, "/srv/docs/a.txt", OVC_FC_NEW, NULL, 1, 0, &d), 0);
	assert_int_equal(d.act, OVC_ACT_ENC_NEW);
	assert_ptr_equal(d.key, k_docs);
	/* an empty file opened for writing too; read-only it passes */
	assert_int_equal(run(v, "/srv/docs/e", OVC_FC_EMPTY, NULL, 1, 0, &d), 0);
	assert_int_equal(d.act, OVC_ACT_ENC_NEW);
	assert_int_equal(run(v, "/srv/docs/e", OVC_FC_EMPTY, NULL, 0, 0, &d), 0);
	assert_int_equal(d.act, OVC_ACT_PASS);
	/* encrypted files open with their key */
	assert_int_equal(run(v, "/srv/docs/x", OVC_FC_ENC, k_docs, 0, 0, &d), 0);
	assert_int_equal(d.act, OVC_ACT_ENC);
	assert_ptr_equal(d.key, k_docs);
	/* written under another key: re-encrypted under the current one */
	assert_int_equal(run(v, "/srv/docs/x", OVC_FC_ENC, k_old, 1, 0, &d), 0);
	assert_int_equal(d.act, OVC_ACT_REKEY);
	assert_ptr_equal(d.key, k_docs);
	assert_ptr_equal(d.fresh, k_old);
	/* read under another key: as it is */
	assert_int_equal(run(v, "/srv/docs/x", OVC_FC_ENC, k_old, 0, 0, &d), 0);
	assert_int_equal(d.act, OVC_ACT_ENC);
	/* plaintext under the rule: readable, converted for writing,
	 * fresh when truncated */
	assert_int_equal(run(v, "/srv/docs/p", OVC_FC_PLAIN, NULL, 0, 0, &d), 0);
	assert_int_equal(d.act, OVC_ACT_PASS);
	assert_int_equal(run(v, "/srv/docs/p", OVC_FC_PLAIN, NULL, 1, 0, &d), 0);
	assert_int_equal(d.act, OVC_ACT_CONVERT);
	assert_int_equal(run(v, "/srv/docs/p", OVC_FC_PLAIN, NULL, 1, 1, &d), 0);
	assert_int_equal(d.act, OVC_ACT_ENC_NEW);
	/* public sub-folder and no rule: passthrough; encrypted files found
	 * there are decrypted, and stay encrypted when written */
	assert_int_equal(run(v, "/srv/docs/pub/n", OVC_FC_NEW, NULL, 1, 0, &d), 0);
	assert_int_equal(d.act, OVC_ACT_PASS);
	assert_int_equal(run(v, "/tmp/n", OVC_FC_PLAIN, NULL, 1, 0, &d), 0);
	assert_int_equal(d.act, OVC_ACT_PASS);
	assert_int_equal(run(v, "/tmp/x", OVC_FC_ENC, k_other, 1, 1, &d), 0);
	assert_int_equal(d.act, OVC_ACT_ENC);
	assert_ptr_equal(d.fresh, k_other);
	/* a *.docx rule: the draft beside it is encrypted too (encrypted
	 * folder); an existing plaintext .txt there is not converted */
	assert_int_equal(run(v, "/srv/office/plan.docx", OVC_FC_NEW, NULL, 1, 0, &d), 0);
	assert_int_equal(d.act, OVC_ACT_ENC_NEW);
	assert_int_equal(run(v, "/srv/office/~draft.tmp", OVC_FC_NEW, NULL, 1, 0, &d), 0);
	assert_int_equal(d.act, OVC_ACT_ENC_NEW);
	assert_int_equal(run(v, "/srv/office/old.txt", OVC_FC_PLAIN, NULL, 1, 0, &d), 0);
	assert_int_equal(d.act, OVC_ACT_PASS);
	assert_int_equal(run(v, "/srv/office/old.docx", OVC_FC_PLAIN, NULL, 1, 0, &d), 0);
	assert_int_equal(d.act, OVC_ACT_CONVERT);
	ovc_view_put(v);
}

static void test_refuse_and_strict(void **state)
{
	ovc_view *v = view(OVC_VIEW_READY, OVC_PLAINTEXT_REFUSE);
	ovc_decision d;

	(void)state;
	assert_int_equal(run(v, "/srv/docs/p", OVC_FC_PLAIN, NULL, 1, 0, &d), -EACCES);
	assert_non_null(strstr(d.why, "refused"));
	assert_int_equal(run(v, "/srv/docs/p", OVC_FC_PLAIN, NULL, 0, 0, &d), 0);
	ovc_view_put(v);
	v = view(OVC_VIEW_READY, OVC_PLAINTEXT_STRICT);
	assert_int_equal(run(v, "/srv/docs/p", OVC_FC_PLAIN, NULL, 0, 0, &d), -EACCES);
	assert_non_null(strstr(d.why, "strict"));
	ovc_view_put(v);
}

static void test_locked_expired(void **state)
{
	ovc_view_state sts[] = { OVC_VIEW_LOCKED, OVC_VIEW_EXPIRED };
	ovc_decision d;

	(void)state;
	for (size_t k = 0; k < 2; k++) {
		ovc_view *v = view(sts[k], OVC_PLAINTEXT_CONVERT);

		assert_null(v->keys);
		assert_int_equal(run(v, "/srv/docs/a", OVC_FC_NEW, NULL, 1, 0, &d), -EACCES);
		assert_int_equal(run(v, "/srv/docs/e", OVC_FC_EMPTY, NULL, 1, 0, &d), -EACCES);
		assert_int_equal(run(v, "/srv/docs/x", OVC_FC_ENC, k_docs, 0, 0, &d), -EACCES);
		assert_int_equal(run(v, "/srv/docs/p", OVC_FC_PLAIN, NULL, 1, 0, &d), -EACCES);
		assert_int_equal(run(v, "/srv/docs/p", OVC_FC_PLAIN, NULL, 1, 1, &d), -EACCES);
		/* reads of plaintext, and everything outside, pass */
		assert_int_equal(run(v, "/srv/docs/p", OVC_FC_PLAIN, NULL, 0, 0, &d), 0);
		assert_int_equal(run(v, "/srv/docs/pub/n", OVC_FC_NEW, NULL, 1, 0, &d), 0);
		assert_int_equal(run(v, "/tmp/n", OVC_FC_NEW, NULL, 1, 0, &d), 0);
		ovc_view_put(v);
	}
}

static void test_no_policy_and_no_view(void **state)
{
	ovc_view *v = view(OVC_VIEW_NO_POLICY, OVC_PLAINTEXT_CONVERT);
	const char *guard[] = { "/srv/docs" };
	ovc_request r = { .guard = guard, .nguard = 1, .fc = OVC_FC_NEW, .write = 1 };
	ovc_decision d;

	(void)state;
	/* every served folder refuses writes; reads pass; outside passes */
	assert_int_equal(run(v, "/srv/mount/a", OVC_FC_NEW, NULL, 1, 0, &d), -EACCES);
	assert_int_equal(run(v, "/srv/docs/a", OVC_FC_PLAIN, NULL, 1, 0, &d), -EACCES);
	assert_int_equal(run(v, "/srv/docs/a", OVC_FC_PLAIN, NULL, 0, 0, &d), 0);
	assert_int_equal(run(v, "/srv/docsx/a", OVC_FC_NEW, NULL, 1, 0, &d), 0);
	ovc_view_put(v);
	r.path = "/srv/docs/deep/a";
	assert_int_equal(ovc_decide(&r, &d), -EACCES);
	r.path = "/srv/other";
	assert_int_equal(ovc_decide(&r, &d), 0);
}

/* A view with persistent encryption on or off (locked: no keys). */
static ovc_view *pview(ovc_view_state st, int persistent)
{
	ovc_policy_settings s = { .persistent_encryption = persistent };

	return ovc_view_new(1000, "alice", st, 7, &s, rules,
			    st == OVC_VIEW_READY ? keys : NULL, folders, 2);
}

static int ren(const ovc_view *v, const char *src, const char *dst,
	       enum ovc_rkind kind, const ovc_key *kid, int exchange,
	       ovc_rename_decision *d)
{
	ovc_rename_request r = { .view = v, .src = src, .dst = dst, .kind = kind,
				 .key_id = kid ? kid->id : NULL, .exchange = exchange };

	return ovc_decide_rename(&r, d);
}

/* Renames: within one rule's class as they are; an encrypted file into
 * another encrypting place rewrapped; into a place with no rule kept
 * encrypted with persistent encryption, else EXDEV; plaintext across,
 * exchanges across: EXDEV; folders between two encrypting rules: renamed,
 * the files below rewrapped (REWRAP_TREE). */
static void test_rename(void **state)
{
	ovc_view *v = pview(OVC_VIEW_READY, 1), *nop = pview(OVC_VIEW_READY, 0);
	ovc_view *lk = pview(OVC_VIEW_LOCKED, 1);
	ovc_rename_decision d;

	(void)state;
	/* the same class: plain, whatever the object, locked too */
	assert_int_equal(ren(v, "/srv/docs/a", "/srv/docs/sub/b", OVC_RK_ENC, k_docs, 0, &d), 0);
	assert_int_equal(d.act, OVC_REN_PLAIN);
	assert_int_equal(ren(lk, "/srv/docs/a", "/srv/docs/b", OVC_RK_ENC, k_docs, 1, &d), 0);
	assert_int_equal(ren(v, "/tmp/x", "/home/y", OVC_RK_FILE, NULL, 0, &d), 0);
	assert_int_equal(ren(v, "/srv/docs/a", "/srv/office/b.docx", OVC_RK_DIR, NULL, 0, &d), 0);
	/* encrypted into another rule's place: rewrapped from its key to
	 * the place's */
	assert_int_equal(ren(v, "/srv/docs/a", "/srv/legal/a", OVC_RK_ENC, k_docs, 0, &d), 0);
	assert_int_equal(d.act, OVC_REN_REWRAP);
	assert_ptr_equal(d.from, k_docs);
	assert_ptr_equal(d.to, k_other);
	/* a file under a retired key too; one already under the place's
	 * key is renamed as it is */
	assert_int_equal(ren(v, "/srv/docs/a", "/srv/legal/a", OVC_RK_ENC, k_old, 0, &d), 0);
	assert_int_equal(d.act, OVC_REN_REWRAP);
	assert_ptr_equal(d.from, k_old);
	assert_int_equal(ren(v, "/srv/docs/a", "/srv/legal/a", OVC_RK_ENC, k_other, 0, &d), 0);
	assert_int_equal(d.act, OVC_REN_PLAIN);
	/* an encrypted file from a place with no rule into one */
	assert_int_equal(ren(v, "/home/a", "/srv/docs/a", OVC_RK_ENC, k_other, 0, &d), 0);
	assert_int_equal(d.act, OVC_REN_REWRAP);
	assert_ptr_equal(d.to, k_docs);
	/* locked: no keys, no rewrap */
	assert_int_equal(ren(lk, "/srv/docs/a", "/srv/legal/a", OVC_RK_ENC, k_docs, 0, &d), -EACCES);
	assert_string_equal(d.why, "locked");
	/* to a place with no rule, or a public one: stays encrypted with
	 * persistent encryption, else EXDEV */
	assert_int_equal(ren(v, "/srv/docs/a", "/home/a", OVC_RK_ENC, k_docs, 0, &d), 0);
	assert_int_equal(d.act, OVC_REN_PLAIN);
	assert_int_equal(ren(v, "/srv/docs/a", "/srv/docs/pub/a", OVC_RK_ENC, k_docs, 0, &d), 0);
	assert_int_equal(ren(lk, "/srv/docs/a", "/home/a", OVC_RK_ENC, k_docs, 0, &d), 0);
	assert_int_equal(ren(nop, "/srv/docs/a", "/home/a", OVC_RK_ENC, k_docs, 0, &d), -EXDEV);
	/* folders: out of a rule with persistent encryption as they are;
	 * into one from no rule EXDEV (mv copies); between two rules renamed,
	 * what is below rewrapped */
	assert_int_equal(ren(v, "/srv/docs/d", "/home/d", OVC_RK_DIR, NULL, 0, &d), 0);
	assert_int_equal(ren(nop, "/srv/docs/d", "/home/d", OVC_RK_DIR, NULL, 0, &d), -EXDEV);
	assert_int_equal(ren(v, "/home/d", "/srv/docs/d", OVC_RK_DIR, NULL, 0, &d), -EXDEV);
	assert_int_equal(ren(v, "/srv/docs/d", "/srv/legal/d", OVC_RK_DIR, NULL, 0, &d), 0);
	assert_int_equal(d.act, OVC_REN_REWRAP_TREE);
	assert_ptr_equal(d.to, k_other);
	assert_int_equal(ren(lk, "/srv/docs/d", "/srv/legal/d", OVC_RK_DIR, NULL, 0, &d), -EACCES);
	/* plaintext, empty files, links and nodes across: EXDEV */
	assert_int_equal(ren(v, "/home/p", "/srv/docs/p", OVC_RK_FILE, NULL, 0, &d), -EXDEV);
	assert_int_equal(ren(v, "/srv/docs/p", "/home/p", OVC_RK_FILE, NULL, 0, &d), -EXDEV);
	assert_int_equal(ren(v, "/srv/docs/l", "/home/l", OVC_RK_OTHER, NULL, 0, &d), -EXDEV);
	/* exchanges across rules: EXDEV */
	assert_int_equal(ren(v, "/srv/docs/a", "/srv/legal/a", OVC_RK_ENC, k_docs, 1, &d), -EXDEV);
	assert_int_equal(ren(v, "/srv/docs/a", "/home/a", OVC_RK_ENC, k_docs, 1, &d), -EXDEV);
	/* no view: only within, or outside, the served folders */
	{
		const char *g[] = { "/srv/docs" };
		ovc_rename_request r = { .guard = g, .nguard = 1, .src = "/srv/docs/a",
					 .dst = "/srv/docs/b", .kind = OVC_RK_ENC };

		assert_int_equal(ovc_decide_rename(&r, &d), 0);
		r.dst = "/home/b";
		assert_int_equal(ovc_decide_rename(&r, &d), -EXDEV);
	}
	ovc_view_put(v);
	ovc_view_put(nop);
	ovc_view_put(lk);
}

static int copy(const ovc_view *v, const char *path, enum ovc_fclass fc, int trunc,
		const ovc_key *from, ovc_decision *d)
{
	ovc_request r = { .view = v, .path = path, .fc = fc, .write = 1, .trunc = trunc,
			  .copy_key_id = from ? from->id : NULL };

	return ovc_decide(&r, d);
}

/* A new or emptied file where no rule encrypts, written by a process that
 * holds an encrypted file open, is a copy of it: encrypted under that
 * file's key with persistent encryption, plaintext without; refused when
 * the key is gone. Where a rule encrypts, the rule decides. */
static void test_copies(void **state)
{
	ovc_view *v = pview(OVC_VIEW_READY, 1), *nop = pview(OVC_VIEW_READY, 0);
	ovc_view *lk = pview(OVC_VIEW_LOCKED, 1);
	ovc_decision d;

	(void)state;
	assert_int_equal(copy(v, "/home/c", OVC_FC_NEW, 0, k_other, &d), 0);
	assert_int_equal(d.act, OVC_ACT_ENC_NEW);
	assert_ptr_equal(d.key, k_other);
	assert_int_equal(copy(v, "/srv/docs/pub/c", OVC_FC_EMPTY, 0, k_docs, &d), 0);
	assert_int_equal(d.act, OVC_ACT_ENC_NEW);
	assert_ptr_equal(d.key, k_docs);
	/* an existing plaintext file overwritten (cp onto it) */
	assert_int_equal(copy(v, "/home/c", OVC_FC_PLAIN, 1, k_docs, &d), 0);
	assert_int_equal(d.act, OVC_ACT_ENC_NEW);
	/* ... but not one written in place */
	assert_int_equal(copy(v, "/home/c", OVC_FC_PLAIN, 0, k_docs, &d), 0);
	assert_int_equal(d.act, OVC_ACT_PASS);
	/* no source open, or persistent encryption off: plaintext */
	assert_int_equal(copy(v, "/home/c", OVC_FC_NEW, 0, NULL, &d), 0);
	assert_int_equal(d.act, OVC_ACT_PASS);
	assert_int_equal(copy(nop, "/home/c", OVC_FC_NEW, 0, k_docs, &d), 0);
	assert_int_equal(d.act, OVC_ACT_PASS);
	/* under a rule the rule's key, not the source's */
	assert_int_equal(copy(v, "/srv/legal/c", OVC_FC_NEW, 0, k_docs, &d), 0);
	assert_int_equal(d.act, OVC_ACT_ENC_NEW);
	assert_ptr_equal(d.key, k_other);
	/* the key gone (locked since the source was opened): refused, never
	 * a plaintext copy */
	assert_int_equal(copy(lk, "/home/c", OVC_FC_NEW, 0, k_docs, &d), -EACCES);
	ovc_view_put(v);
	ovc_view_put(nop);
	ovc_view_put(lk);
}

/* Initial encryption's key: the rule's, whatever plaintext_under_rule
 * says; none where no rule encrypts; a reason when the key is not held. */
static void test_convert_key(void **state)
{
	ovc_view *v = view(OVC_VIEW_READY, OVC_PLAINTEXT_STRICT);
	ovc_view *lk = view(OVC_VIEW_LOCKED, OVC_PLAINTEXT_CONVERT);
	const char *why;

	(void)state;
	assert_ptr_equal(ovc_decide_convert_key(v, "/srv/docs/a", &why), k_docs);
	assert_null(why);
	assert_ptr_equal(ovc_decide_convert_key(v, "/srv/legal/a", &why), k_other);
	assert_ptr_equal(ovc_decide_convert_key(v, "/srv/office/a.docx", &why), k_docs);
	assert_null(ovc_decide_convert_key(v, "/srv/office/a.txt", &why));
	assert_null(why);
	assert_null(ovc_decide_convert_key(v, "/srv/docs/pub/a", &why));
	assert_null(why);
	assert_null(ovc_decide_convert_key(v, "/home/a", &why));
	assert_null(why);
	assert_null(ovc_decide_convert_key(lk, "/srv/docs/a", &why));
	assert_string_equal(why, "locked");
	assert_null(ovc_decide_convert_key(NULL, "/srv/docs/a", &why));
	assert_non_null(why);
	/* an asset's rule (encrypt --asset NAME): encrypting ones only */
	assert_memory_equal(ovc_ruleset_asset(v->rules, "legal")->key_id, k_other->id, 16);
	assert_memory_equal(ovc_ruleset_asset(v->rules, "docs")->key_id, k_docs->id, 16);
	assert_null(ovc_ruleset_asset(v->rules, "pub"));
	assert_null(ovc_ruleset_asset(v->rules, "nosuch"));
	assert_null(ovc_ruleset_asset(NULL, "docs"));
	ovc_view_put(v);
	ovc_view_put(lk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ready),
		cmocka_unit_test(test_refuse_and_strict),
		cmocka_unit_test(test_locked_expired),
		cmocka_unit_test(test_no_policy_and_no_view),
		cmocka_unit_test(test_rename),
		cmocka_unit_test(test_copies),
		cmocka_unit_test(test_convert_key),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
