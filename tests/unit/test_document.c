/*
 * test_document.c - policy/document.c: canonical round trip, signature
 * before parse (tampering anywhere, legacy Ed, rollover keys), strict
 * parsing (each refusal names its member), accept (user, org, serial,
 * expiry), the keys blob codec and ovc_policy_open_keys.
 *
 * Documents under test are malloc()ed copies of exactly their length (no
 * NUL after them), so ASan catches any read past the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/common.h"
#include "crypto/age.h"
#include "crypto/keys.h"
#include "crypto/minisign.h"
#include "policy/document.h"

#define ID_MKT "3f2a6c1e-9b7d-4e0a-8c5f-112233445566"
#define ID_HOME "00112233-4455-4677-8899-aabbccddeeff"
#define FAKE_KEYS "-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n" \
		  "-----END AGE ENCRYPTED FILE-----\n"
#define ISSUED ((time_t)1795341600)   /* 2026-11-22T10:00:00Z */
#define VALID ((time_t)(1795341600 + 14 * 86400))

/* ---------------------------------------------------------------------------
 * Helpers.
 */

/* A copy of `n` bytes with nothing after them. */
static uint8_t *exact(const void *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);

	assert_non_null(c);
	memcpy(c, p, n);
	return c;
}

static int parse_text(const char *text, ovc_policy **out, ovc_err *e)
{
	size_t n = strlen(text);
	uint8_t *c = exact(text, n);
	int rc;

	ovc_err_clear(e);
	rc = ovc_policy_parse(c, n, out, e);
	free(c);
	return rc;
}

/* The sample policy: a shared, a private and a public rule. Strings are
 * borrowed literals: never ovc_policy_free() it. */
static void sample(ovc_policy *p, ovc_rule r[3], const char *keys)
{
	memset(p, 0, sizeof(*p));
	memset(r, 0, 3 * sizeof(*r));
	p->org = (char *)"corp";
	p->user = (char *)"alice";
	p->serial = 42;
	p->issued_at = ISSUED;
	p->valid_until = VALID;
	p->settings = (ovc_policy_settings){ .refresh_interval_s = 900,
		.cache_expiration_s = 604800, .autolock_idle_s = 0,
		.user_may_decrypt = 0, .persistent_encryption = 1,
		.plaintext_under_rule = OVC_PLAINTEXT_CONVERT };
	r[0] = (ovc_rule){ .asset = "marketing", .type = OVC_RULE_SHARED,
			   .path = "smb://files.corp.local/marketing/*.*",
			   .has_key = 1 };
	assert_int_equal(ovc_key_id_parse(ID_MKT, r[0].key_id), 0);
	r[1] = (ovc_rule){ .asset = "home", .type = OVC_RULE_PRIVATE,
			   .path = "/home/%USERNAME%/Private/", .has_key = 1 };
	assert_int_equal(ovc_key_id_parse(ID_HOME, r[1].key_id), 0);
	r[2] = (ovc_rule){ .asset = "drop", .type = OVC_RULE_PUBLIC,
			   .path = "smb://files.corp.local/marketing/public/" };
	p->rules = r;
	p->nrules = 3;
	p->keys = (char *)keys;
}

/* The canonical text of the sample (caller free()s). */
static char *sample_text(void)
{
	ovc_policy p;
	ovc_rule r[3];
	char *t = NULL;
	size_t n = 0;

	sample(&p, r, FAKE_KEYS);
	assert_int_equal(ovc_policy_serialize(&p, &t, &n), 0);
	assert_int_equal(n, strlen(t));
	return t;
}

/* The sample text with the first `from` replaced by `to` (must occur). */
static char *edit(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	char *out;

	if (!at)
		fail_msg("edit: \"%s\" not in the document", from);
	assert_true(asprintf(&out, "%.*s%s%s", (int)(at - text), text, to,
			     at + strlen(from)) > 0);
	return out;
}

/* Parse the sample edited; expect -EINVAL whose message holds `want`. */
static void expect_refused(const char *from, const char *to, const char *want)
{
	char *base = sample_text(), *t = edit(base, from, to);
	ovc_policy *p = (ovc_policy *)1;
	ovc_err e;
	int rc = parse_text(t, &p, &e);

	if (rc != -EINVAL || !strstr(e.msg, want))
		fail_msg("edit \"%s\" -> \"%s\": rc %d, \"%s\", want \"%s\"",
			 from, to, rc, e.msg, want);
	assert_null(p);
	free(t);
	free(base);
}

static char *sign(const ovc_minisign_seckey *sk, const char *doc)
{
	char *sig = NULL;

	assert_int_equal(ovc_minisign_sign(sk, (const uint8_t *)doc,
					   strlen(doc), "overcrypt policy test",
					   &sig), 0);
	return sig;
}

static int verify(const ovc_minisign_pubkey *pks, size_t npks,
		  const char *doc, size_t dlen, const char *sig,
		  ovc_policy **out, ovc_err *e)
{
	uint8_t *d = exact(doc, dlen), *s = exact(sig, strlen(sig));
	int rc;

	ovc_err_clear(e);
	rc = ovc_policy_verify_parse(d, dlen, (const char *)s, strlen(sig),
				     pks, npks, out, e);
	free(d);
	free(s);
	return rc;
}

/* ---------------------------------------------------------------------------
 * Round trip and canonical text.
 */
static void test_round_trip(void **state)
{
	char *t1 = sample_text(), *t2 = NULL;
	ovc_policy *p = NULL, *q = NULL;
	size_t n2 = 0;
	ovc_err e;

	(void)state;
	assert_int_equal(parse_text(t1, &p, &e), 0);
	assert_string_equal(p->org, "corp");
	assert_string_equal(p->user, "alice");
	assert_int_equal(p->serial, 42);
	assert_int_equal(p->issued_at, ISSUED);
	assert_int_equal(p->valid_until, VALID);
	assert_int_equal(p->settings.refresh_interval_s, 900);
	assert_int_equal(p->settings.cache_expiration_s, 604800);
	assert_int_equal(p->settings.persistent_encryption, 1);
	assert_int_equal(p->nrules, 3);
	assert_string_equal(p->rules[1].asset, "home");
	assert_int_equal(p->rules[1].type, OVC_RULE_PRIVATE);
	assert_int_equal(p->rules[2].has_key, 0);
	assert_string_equal(p->keys, FAKE_KEYS);
	assert_int_equal(ovc_policy_serialize(p, &t2, &n2), 0);
	assert_string_equal(t1, t2);
	assert_int_equal(parse_text(t2, &q, &e), 0);
	assert_memory_equal(p->digest, q->digest, 32);
	assert_int_equal(q->nrules, 3);
	assert_memory_equal(q->rules[0].key_id, p->rules[0].key_id, 16);
	ovc_policy_free(p);
	ovc_policy_free(q);
	free(t1);
	free(t2);
}

/* The canonical form is pinned: a change here changes every published
 * document and the admin tool's "unchanged" judgement. */
static void test_canonical_golden(void **state)
{
	static const char golden[] =
		"{\n"
		"  \"format\": \"overcrypt-policy/1\",\n"
		"  \"org\": \"corp\",\n"
		"  \"user\": \"alice\",\n"
		"  \"serial\": 42,\n"
		"  \"issued_at\": \"2026-11-22T10:00:00Z\",\n"
		"  \"valid_until\": \"2026-12-06T10:00:00Z\",\n"
		"  \"settings\": {\n"
		"    \"refresh_interval_s\": 900,\n"
		"    \"cache_expiration_s\": 604800,\n"
		"    \"user_may_decrypt\": false,\n"
		"    \"persistent_encryption\": true,\n"
		"    \"autolock_idle_s\": 0,\n"
		"    \"plaintext_under_rule\": \"convert\"\n"
		"  },\n"
		"  \"rules\": [\n"
		"    {\n"
		"      \"asset\": \"marketing\",\n"
		"      \"type\": \"shared\",\n"
		"      \"path\": \"smb://files.corp.local/marketing/*.*\",\n"
		"      \"key_id\": \"" ID_MKT "\"\n"
		"    },\n"
		"    {\n"
		"      \"asset\": \"home\",\n"
		"      \"type\": \"private\",\n"
		"      \"path\": \"/home/%USERNAME%/Private/\",\n"
		"      \"key_id\": \"" ID_HOME "\"\n"
		"    },\n"
		"    {\n"
		"      \"asset\": \"drop\",\n"
		"      \"type\": \"public\",\n"
		"      \"path\": \"smb://files.corp.local/marketing/public/\"\n"
		"    }\n"
		"  ],\n"
		"  \"keys\": \"-----BEGIN AGE ENCRYPTED FILE-----\\nYWdl\\n"
		"-----END AGE ENCRYPTED FILE-----\\n\"\n"
		"}\n";
	char *t = sample_text();

	(void)state;
	assert_string_equal(t, golden);
	free(t);
}

/* Escapes and an empty rule list survive; other spellings of the same
 * document parse to it and serialise canonically. */
static void test_round_trip_escapes(void **state)
{
	ovc_policy p, *q = NULL, *q2 = NULL;
	ovc_rule r[3];
	char *t = NULL, *t2 = NULL, *alt;
	size_t n;
	ovc_err e;

	(void)state;
	sample(&p, r, FAKE_KEYS);
	p.nrules = 0;
	assert_int_equal(ovc_policy_serialize(&p, &t, &n), 0);
	assert_non_null(strstr(t, "\"rules\": [],\n"));
	assert_int_equal(parse_text(t, &q, &e), 0);
	assert_int_equal(q->nrules, 0);
	/* "\/" and "\u0061" spell '/' and 'a'. */
	alt = edit(t, "\"alice\"", "\"\\u0061lice\"");
	assert_int_equal(parse_text(alt, &q2, &e), 0);
	assert_string_equal(q2->user, "alice");
	free(t2);
	assert_int_equal(ovc_policy_serialize(q2, &t2, &n), 0);
	assert_string_equal(t, t2);
	ovc_policy_free(q);
	ovc_policy_free(q2);
	free(alt);
	free(t);
	free(t2);
}

/* ---------------------------------------------------------------------------
 * Signatures.
 */
static void test_signed_pinned_and_rollover(void **state)
{
	ovc_minisign_seckey *sk1 = NULL, *sk2 = NULL;
	ovc_minisign_pubkey pks[2];
	char *doc = sample_text(), *sig;
	ovc_policy *p = NULL;
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_minisign_keygen(&sk1, &pks[0]), 0);
	assert_int_equal(ovc_minisign_keygen(&sk2, &pks[1]), 0);
	sig = sign(sk1, doc);
	assert_int_equal(verify(pks, 1, doc, strlen(doc), sig, &p, &e), 0);
	assert_int_equal(p->serial, 42);
	ovc_policy_free(p);
	free(sig);

	/* Signed by the second pinned key (rollover). */
	sig = sign(sk2, doc);
	assert_int_equal(verify(pks, 2, doc, strlen(doc), sig, &p, &e), 0);
	ovc_policy_free(p);
	/* ... and not pinned at all. */
	assert_int_equal(verify(pks, 1, doc, strlen(doc), sig, &p, &e), -ENOKEY);
	assert_null(p);
	assert_non_null(strstr(e.msg, "signature"));
	free(sig);
	free(doc);
	ovc_minisign_seckey_free(sk1);
	ovc_minisign_seckey_free(sk2);
}

static void test_tamper_anywhere(void **state)
{
	ovc_minisign_seckey *sk = NULL;
	ovc_minisign_pubkey pk;
	char *doc = sample_text(), *sig;
	size_t dlen = strlen(doc), slen;
	ovc_policy *p = NULL;
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_minisign_keygen(&sk, &pk), 0);
	sig = sign(sk, doc);
	slen = strlen(sig);
	for (size_t i = 0; i < dlen; i++) {
		doc[i] ^= 0x01;
		assert_int_equal(verify(&pk, 1, doc, dlen, sig, &p, &e), -EBADMSG);
		assert_null(p);
		assert_non_null(strstr(e.msg, "signature"));
		doc[i] ^= 0x01;
	}
	/* The signature file: the untrusted comment (line 1) is not signed;
	 * every other byte matters. */
	for (size_t i = strcspn(sig, "\n") + 1; i < slen; i++) {
		if (sig[i] == '\n')
			continue;
		sig[i] ^= 0x01;
		assert_int_not_equal(verify(&pk, 1, doc, dlen, sig, &p, &e), 0);
		assert_null(p);
		assert_non_null(strstr(e.msg, "signature"));
		sig[i] ^= 0x01;
	}
	/* Appending to the document is tampering too. */
	assert_int_equal(verify(&pk, 1, doc, dlen - 1, sig, &p, &e), -EBADMSG);
	assert_int_equal(verify(&pk, 1, doc, dlen, sig, &p, &e), 0);
	ovc_policy_free(p);
	free(sig);
	free(doc);
	ovc_minisign_seckey_free(sk);
}

/* A document that would not parse, signed and then tampered: the error is
 * the signature's, so nothing was parsed first. Untampered, it is the
 * parser's. */
static void test_signature_before_parse(void **state)
{
	static const char junk[] = "{\"format\": \"nonsense\", \"x\": [1, 2,";
	ovc_minisign_seckey *sk = NULL;
	ovc_minisign_pubkey pk;
	char *doc = strdup(junk), *sig;
	ovc_policy *p = NULL;
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_minisign_keygen(&sk, &pk), 0);
	sig = sign(sk, doc);
	assert_int_equal(verify(&pk, 1, doc, strlen(doc), sig, &p, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not valid JSON"));
	doc[3] = 'F';
	assert_int_equal(verify(&pk, 1, doc, strlen(doc), sig, &p, &e), -EBADMSG);
	assert_null(strstr(e.msg, "JSON"));
	assert_non_null(strstr(e.msg, "signature"));
	free(sig);
	free(doc);
	ovc_minisign_seckey_free(sk);
}

static char *b64(const uint8_t *p, size_t n)
{
	size_t cap = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
	char *s = malloc(cap);

	assert_non_null(s);
	sodium_bin2base64(s, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
	return s;
}

/* A legacy "Ed" signature (Ed25519 over the message itself), otherwise
 * valid, made by hand from the key's raw bytes. */
static void test_legacy_refused(void **state)
{
	uint8_t raw[OVC_MINISIGN_SECKEY_BYTES], blob[74], gm[64 + 3], gsig[64];
	ovc_minisign_seckey *sk = NULL;
	ovc_minisign_pubkey pk;
	char *doc = sample_text(), *s1, *s2, *sig;
	ovc_policy *p = NULL;
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_minisign_keygen(&sk, &pk), 0);
	ovc_minisign_seckey_encode(sk, raw);
	memcpy(blob, "Ed", 2);
	memcpy(blob + 2, raw, 8);
	assert_int_equal(crypto_sign_detached(blob + 10, NULL,
					      (const uint8_t *)doc, strlen(doc),
					      raw + 8), 0);
	memcpy(gm, blob + 10, 64);
	memcpy(gm + 64, "old", 3);
	assert_int_equal(crypto_sign_detached(gsig, NULL, gm, sizeof(gm),
					      raw + 8), 0);
	sodium_memzero(raw, sizeof(raw));
	s1 = b64(blob, sizeof(blob));
	s2 = b64(gsig, sizeof(gsig));
	assert_true(asprintf(&sig, "untrusted comment: legacy\n%s\n"
			     "trusted comment: old\n%s\n", s1, s2) > 0);
	assert_int_equal(verify(&pk, 1, doc, strlen(doc), sig, &p, &e), -EINVAL);
	assert_null(p);
	assert_non_null(strstr(e.msg, "signature"));
	assert_non_null(strstr(e.msg, "legacy"));
	free(sig);
	free(s1);
	free(s2);
	free(doc);
	ovc_minisign_seckey_free(sk);
}

static void test_too_big(void **state)
{
	size_t n = OVC_POLICY_MAX_BYTES + 1;
	uint8_t *d = calloc(1, n);
	ovc_minisign_pubkey pk = { { 0 }, { 0 } };
	ovc_policy *p = NULL;
	ovc_err e;

	(void)state;
	assert_non_null(d);
	assert_int_equal(ovc_policy_parse(d, n, &p, &e), -EFBIG);
	assert_int_equal(ovc_policy_verify_parse(d, n, "x", 1, &pk, 1, &p, &e),
			 -EFBIG);
	free(d);
}

/* ---------------------------------------------------------------------------
 * Strictness: each refusal names its member.
 */
static void test_strict_members(void **state)
{
	(void)state;
	expect_refused("\"org\": \"corp\",", "\"org\": \"corp\", \"colour\": 1,",
		       "colour: unknown member");
	expect_refused("\"autolock_idle_s\": 0,",
		       "\"autolock_idle_s\": 0, \"extra\": true,",
		       "settings.extra: unknown member");
	expect_refused("\"type\": \"public\",", "\"type\": \"public\", \"x\": 1,",
		       "rules[2].x: unknown member");
	expect_refused("\"org\": \"corp\",\n", "", "org: missing");
	expect_refused("\"autolock_idle_s\": 0,\n", "",
		       "settings.autolock_idle_s: missing");
	expect_refused("\"type\": \"shared\",\n", "", "rules[0].type: missing");
	expect_refused("overcrypt-policy/1", "overcrypt-policy/2",
		       "format: not");
	expect_refused("\"org\": \"corp\"", "\"org\": 5", "org: not a string");
	expect_refused("\"user\": \"alice\"", "\"user\": \"../x\"",
		       "user: not a name");
	expect_refused("\"settings\": {", "\"settings\": [], \"s\": {",
		       "s: unknown member");
	expect_refused("\"user_may_decrypt\": false", "\"user_may_decrypt\": 0",
		       "settings.user_may_decrypt: not true or false");
	expect_refused("\"refresh_interval_s\": 900",
		       "\"refresh_interval_s\": \"900\"",
		       "settings.refresh_interval_s: not a number");
	expect_refused("\"rules\": [", "\"rules\": {\"a\": [",
		       "document: not valid JSON");
	expect_refused("\"keys\": \"-----", "\"keys\": \"x-----",
		       "keys: not an armored age file");
	expect_refused("\"keys\": \"", "\"keys\": 1, \"k\": \"",
		       "k: unknown member");
}

static void test_strict_values(void **state)
{
	(void)state;
	expect_refused("\"type\": \"shared\"", "\"type\": \"secret\"",
		       "rules[0].type: unknown rule type");
	expect_refused("\"key_id\": \"" ID_HOME "\"", "\"key_id\": \"00112233\"",
		       "rules[1].key_id: not a UUID");
	expect_refused("\"key_id\": \"" ID_HOME "\"", "\"key_id\": 7",
		       "rules[1].key_id: not a string");
	expect_refused("public/\"", "public/\", \"key_id\": \"" ID_MKT "\"",
		       "rules[2].key_id: not allowed in a public rule");
	expect_refused(",\n      \"key_id\": \"" ID_MKT "\"", "",
		       "rules[0].key_id: missing");
	expect_refused("\"asset\": \"drop\"", "\"asset\": \"home\"",
		       "rules[2].asset: \"home\" already in rules[1]");
	expect_refused("\"/home/%USERNAME%/Private/\"", "\"home/Private/\"",
		       "rules[1].path: ");
	expect_refused("\"/home/%USERNAME%/Private/\"", "\"/home/../etc/\"",
		       "rules[1].path: ");
	expect_refused("2026-11-22T10:00:00Z", "2026-11-22 10:00:00Z",
		       "issued_at: not a time");
	expect_refused("2026-12-06T10:00:00Z", "2026-02-30T10:00:00Z",
		       "valid_until: not a time");
	expect_refused("2026-12-06T10:00:00Z", "2026-12-06T10:00:00+01:00",
		       "valid_until: not a time");
	expect_refused("2026-12-06T10:00:00Z", "2026-11-22T10:00:00Z",
		       "valid_until: not after issued_at");
	expect_refused("\"refresh_interval_s\": 900", "\"refresh_interval_s\": 0",
		       "settings.refresh_interval_s: not in 1..");
	expect_refused("\"cache_expiration_s\": 604800",
		       "\"cache_expiration_s\": 3153600001",
		       "settings.cache_expiration_s: not in 1..");
	expect_refused("\"autolock_idle_s\": 0", "\"autolock_idle_s\": -5",
		       "settings.autolock_idle_s: negative");
	expect_refused("\"plaintext_under_rule\": \"convert\"",
		       "\"plaintext_under_rule\": \"maybe\"",
		       "settings.plaintext_under_rule: not convert");
	expect_refused("\"alice\"", "\"al\\u0000ice\"", "user: \\u0000");
	expect_refused("\"corp\"", "\"co\trp\"", "org: control character");
	expect_refused("\"alice\"", "\"alice\"} {", "text after the JSON");
}

static void test_serial(void **state)
{
	char *base = sample_text(), *t;
	ovc_policy *p = NULL;
	ovc_err e;

	(void)state;
	expect_refused("\"serial\": 42", "\"serial\": 9007199254740992",
		       "serial: not in 1..9007199254740991");
	expect_refused("\"serial\": 42", "\"serial\": 9007199254740993",
		       "serial: not in 1..");
	expect_refused("\"serial\": 42", "\"serial\": 1.5", "serial: not an integer");
	expect_refused("\"serial\": 42", "\"serial\": 42.0", "serial: not an integer");
	expect_refused("\"serial\": 42", "\"serial\": 4.2e1", "serial: not an integer");
	expect_refused("\"serial\": 42", "\"serial\": 42e0", "serial: not an integer");
	expect_refused("\"serial\": 42", "\"serial\": \"42\"", "serial: not a number");
	expect_refused("\"serial\": 42", "\"serial\": -1", "serial: negative");
	expect_refused("\"serial\": 42", "\"serial\": 0", "serial: not in 1..");
	expect_refused("\"serial\": 42", "\"serial\": 042", "serial: not a plain");
	expect_refused("\"serial\": 42", "\"serial\": null", "serial: not a number");
	/* The largest serial is exact as a 64-bit number. */
	t = edit(base, "\"serial\": 42", "\"serial\": 9007199254740991");
	assert_int_equal(parse_text(t, &p, &e), 0);
	assert_true(p->serial == 9007199254740991ull);
	ovc_policy_free(p);
	free(t);
	free(base);
}

static void test_duplicates(void **state)
{
	(void)state;
	expect_refused("\"org\": \"corp\",", "\"org\": \"corp\", \"org\": \"evil\",",
		       "org: duplicate member");
	expect_refused("\"user\": \"alice\",",
		       "\"user\": \"alice\", \"keys\": \"x\",",
		       "keys: duplicate member");
	expect_refused("\"autolock_idle_s\": 0,",
		       "\"autolock_idle_s\": 0, \"autolock_idle_s\": 60,",
		       "settings.autolock_idle_s: duplicate member");
	expect_refused("\"type\": \"public\",",
		       "\"type\": \"public\", \"type\": \"shared\",",
		       "rules[2].type: duplicate member");
	/* A name cut short by \u0000 is no way around it. */
	expect_refused("\"org\": \"corp\",",
		       "\"org\": \"corp\", \"org\\u0000x\": \"evil\",",
		       "org");
	expect_refused("\"org\": \"corp\",",
		       "\"org\": \"corp\", \"colour\\u0000\": 1,",
		       "colour: \\u0000 in a string");
}

/* ---------------------------------------------------------------------------
 * Accept.
 */
static void test_accept(void **state)
{
	char *base = sample_text(), *other;
	ovc_policy *p = NULL, *q = NULL;
	ovc_policy_seen seen = { 0 };
	ovc_err e;

	(void)state;
	assert_int_equal(parse_text(base, &p, &e), 0);
	assert_int_equal(ovc_policy_accept(p, "corp", "alice", NULL, ISSUED, &e), 0);
	assert_int_equal(ovc_policy_accept(p, "corp", "alice", &seen, ISSUED, &e), 0);
	assert_int_equal(ovc_policy_accept(p, "corp", "bob", &seen, ISSUED, &e), -EPERM);
	assert_non_null(strstr(e.msg, "user"));
	assert_int_equal(ovc_policy_accept(p, "other", "alice", &seen, ISSUED, &e), -EPERM);
	assert_non_null(strstr(e.msg, "org"));

	/* Same serial, same content: fine (a re-fetch). */
	seen.serial = 42;
	memcpy(seen.digest, p->digest, 32);
	assert_int_equal(ovc_policy_accept(p, "corp", "alice", &seen, ISSUED, &e), 0);
	/* Same serial, other content. */
	other = edit(base, "\"autolock_idle_s\": 0", "\"autolock_idle_s\": 60");
	assert_int_equal(parse_text(other, &q, &e), 0);
	assert_int_equal(ovc_policy_accept(q, "corp", "alice", &seen, ISSUED, &e),
			 -ESTALE);
	assert_non_null(strstr(e.msg, "other content"));
	/* Lower serial. */
	seen.serial = 43;
	assert_int_equal(ovc_policy_accept(p, "corp", "alice", &seen, ISSUED, &e),
			 -ESTALE);
	assert_non_null(strstr(e.msg, "lower"));
	/* Higher serial. */
	seen.serial = 41;
	assert_int_equal(ovc_policy_accept(q, "corp", "alice", &seen, ISSUED, &e), 0);
	/* Expired: valid_until is the first second it is no longer valid. */
	assert_int_equal(ovc_policy_accept(p, "corp", "alice", &seen, VALID - 1, &e), 0);
	assert_int_equal(ovc_policy_accept(p, "corp", "alice", &seen, VALID, &e),
			 -ETIME);
	assert_non_null(strstr(e.msg, "2026-12-06T10:00:00Z"));
	ovc_policy_free(p);
	ovc_policy_free(q);
	free(other);
	free(base);
}

/* ---------------------------------------------------------------------------
 * Times.
 */
static void test_times(void **state)
{
	static const char *const bad[] = {
		"1969-12-31T23:59:59Z", "2026-13-01T00:00:00Z",
		"2026-00-01T00:00:00Z", "2026-01-00T00:00:00Z",
		"2025-02-29T00:00:00Z", "2026-01-01T24:00:00Z",
		"2026-01-01T00:60:00Z", "2026-01-01T00:00:60Z",
		"2026-01-01t00:00:00Z", "2026-01-01T00:00:00z",
		"2026-01-01T00:00:00.5Z", "2026-01-01T00:00:00", "",
		"+026-01-01T00:00:00Z", "2026-1-01T00:00:00Z",
	};
	char out[21];
	time_t t;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (ovc_time_parse(bad[i], &t) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	assert_int_equal(ovc_time_parse("1970-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(ovc_time_parse("2024-02-29T12:34:56Z", &t), 0);
	assert_int_equal(t, 1709210096);
	ovc_time_format(t, out);
	assert_string_equal(out, "2024-02-29T12:34:56Z");
	assert_int_equal(ovc_time_parse("9999-12-31T23:59:59Z", &t), 0);
	assert_int_equal(t, OVC_TIME_MAX);
	ovc_time_format(OVC_TIME_MAX + 100, out);
	assert_string_equal(out, "9999-12-31T23:59:59Z");
	ovc_time_format(-5, out);
	assert_string_equal(out, "1970-01-01T00:00:00Z");
}

/* ---------------------------------------------------------------------------
 * Keys blob.
 */
static ovc_keyset *three_keys(void)
{
	ovc_keyset *ks = ovc_keyset_new(0);

	assert_non_null(ks);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ovc_keyset_generate(ks, NULL), 0);
	return ks;
}

static int decode_exact(const uint8_t *b, size_t n, ovc_keyset **out,
			ovc_err *e)
{
	uint8_t *c = exact(b, n);
	int rc;

	ovc_err_clear(e);
	rc = ovc_keysblob_decode(c, n, out, e);
	free(c);
	return rc;
}

static void test_keysblob(void **state)
{
	ovc_keyset *ks = three_keys(), *back = NULL, *empty;
	uint8_t *b = NULL, hdr[12];
	size_t n = 0;
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_keysblob_encode(ks, &b, &n), 0);
	assert_int_equal(n, 12 + 3 * 48);
	assert_memory_equal(b, "OVCKEYS1\x03\0\0\0", 12);
	assert_memory_equal(b + 12, ks->keys[0].id, 16);
	assert_memory_equal(b + 28, ks->keys[0].key, 32);
	assert_int_equal(decode_exact(b, n, &back, &e), 0);
	assert_int_equal(back->n, 3);
	assert_memory_equal(back->keys, ks->keys, 3 * sizeof(ovc_key));
	ovc_keyset_free(back);

	/* Truncated anywhere, trailing bytes. */
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(decode_exact(b, i, &back, &e), -EINVAL);
		assert_null(back);
		assert_non_null(strstr(e.msg, "truncated"));
	}
	{
		uint8_t *longer = malloc(n + 1);

		assert_non_null(longer);
		memcpy(longer, b, n);
		longer[n] = 0;
		assert_int_equal(decode_exact(longer, n + 1, &back, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "after the last key"));
		sodium_memzero(longer, n + 1); /* holds keys */
		free(longer);
	}
	/* Bad magic; another version. */
	b[0] = 'X';
	assert_int_equal(decode_exact(b, n, &back, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "magic"));
	b[0] = 'O';
	b[7] = '2';
	assert_int_equal(decode_exact(b, n, &back, &e), -EPROTO);
	b[7] = '1';
	/* A duplicate id. */
	memcpy(b + 12 + 2 * 48, b + 12, 16);
	assert_int_equal(decode_exact(b, n, &back, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "key 2: key id"));
	assert_non_null(strstr(e.msg, "already in key 0"));
	/* An all-zero key. */
	memcpy(b + 12 + 2 * 48, ks->keys[2].id, 16);
	memset(b + 12 + 48 + 16, 0, 32);
	assert_int_equal(decode_exact(b, n, &back, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "all zero"));
	ovc_wipe_free(b);

	/* Count over the cap (the header alone says so). */
	memcpy(hdr, "OVCKEYS1", 8);
	ovc_le32_put(hdr + 8, OVC_KEYSBLOB_MAX + 1);
	assert_int_equal(decode_exact(hdr, 12, &back, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "more than"));
	ovc_le32_put(hdr + 8, 0xffffffffu);
	assert_int_equal(decode_exact(hdr, 12, &back, &e), -EINVAL);
	/* An empty blob is fine. */
	ovc_le32_put(hdr + 8, 0);
	assert_int_equal(decode_exact(hdr, 12, &back, &e), 0);
	assert_int_equal(back->n, 0);
	ovc_keyset_free(back);
	empty = ovc_keyset_new(0);
	assert_int_equal(ovc_keysblob_encode(empty, &b, &n), 0);
	assert_int_equal(n, 12);
	ovc_wipe_free(b);
	ovc_keyset_free(empty);
	ovc_keyset_free(ks);
}

/* ---------------------------------------------------------------------------
 * Open keys.
 */

/* A sealed keys blob holding `ks`, for `id`'s recipient (free()). */
static char *seal(const ovc_keyset *ks, const ovc_age_identity *id)
{
	ovc_age_recipient rcp;
	ovc_age_encrypt_opts o = { .recipients = &rcp, .n_recipients = 1,
				   .armor = 1 };
	uint8_t *blob = NULL, *sealed = NULL;
	size_t blen = 0, slen = 0;
	char *s;

	ovc_age_identity_recipient(id, &rcp);
	assert_int_equal(ovc_keysblob_encode(ks, &blob, &blen), 0);
	assert_int_equal(ovc_age_encrypt(&o, blob, blen, &sealed, &slen, NULL), 0);
	ovc_wipe_free(blob);
	s = strndup((const char *)sealed, slen);
	assert_non_null(s);
	free(sealed);
	return s;
}

/* The sample, with rule keys the first two of `ks`, sealed to `id`,
 * through text and parse as a client would see it. */
static ovc_policy *sealed_policy(const ovc_keyset *ks, const ovc_age_identity *id)
{
	ovc_policy p, *q = NULL;
	ovc_rule r[3];
	char *keys = seal(ks, id), *t = NULL;
	size_t n;
	ovc_err e;

	sample(&p, r, keys);
	memcpy(r[0].key_id, ks->keys[0].id, 16);
	memcpy(r[1].key_id, ks->keys[1].id, 16);
	assert_int_equal(ovc_policy_serialize(&p, &t, &n), 0);
	assert_int_equal(parse_text(t, &q, &e), 0);
	free(t);
	free(keys);
	return q;
}

static void test_open_keys(void **state)
{
	ovc_age_identity *alice = NULL, *bob = NULL;
	ovc_keyset *ks = three_keys(), *got = NULL;
	ovc_policy *p;
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_age_identity_generate(&alice), 0);
	assert_int_equal(ovc_age_identity_generate(&bob), 0);
	p = sealed_policy(ks, alice);
	ovc_err_clear(&e);
	assert_int_equal(ovc_policy_open_keys(p, alice, &got, &e), 0);
	assert_int_equal(got->n, 3);
	assert_memory_equal(got->keys, ks->keys, 3 * sizeof(ovc_key));
	ovc_keyset_free(got);

	/* The wrong identity. */
	ovc_err_clear(&e);
	assert_int_equal(ovc_policy_open_keys(p, bob, &got, &e), -ENOKEY);
	assert_null(got);
	assert_non_null(strstr(e.msg, "wrong identity"));

	/* A rule whose key is not in the blob. */
	p->rules[1].key_id[0] ^= 0xff;
	ovc_err_clear(&e);
	assert_int_equal(ovc_policy_open_keys(p, alice, &got, &e), -EINVAL);
	assert_null(got);
	assert_non_null(strstr(e.msg, "rules[1].key_id"));
	assert_non_null(strstr(e.msg, "'home'"));
	assert_non_null(strstr(e.msg, "not in the keys blob"));
	ovc_policy_free(p);

	/* A sealed blob that does not decode (not a keys blob). */
	{
		ovc_policy *q = sealed_policy(ks, alice);
		ovc_age_recipient rcp;
		ovc_age_encrypt_opts o = { .recipients = &rcp,
					   .n_recipients = 1, .armor = 1 };
		uint8_t *sealed = NULL;
		size_t slen = 0;

		ovc_age_identity_recipient(alice, &rcp);
		assert_int_equal(ovc_age_encrypt(&o, (const uint8_t *)"{}", 2,
						 &sealed, &slen, NULL), 0);
		free(q->keys);
		q->keys = strndup((const char *)sealed, slen);
		free(sealed);
		ovc_err_clear(&e);
		assert_int_equal(ovc_policy_open_keys(q, alice, &got, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "keys blob"));
		ovc_policy_free(q);
	}
	ovc_keyset_free(ks);
	ovc_age_identity_free(alice);
	ovc_age_identity_free(bob);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_canonical_golden),
		cmocka_unit_test(test_round_trip_escapes),
		cmocka_unit_test(test_signed_pinned_and_rollover),
		cmocka_unit_test(test_tamper_anywhere),
		cmocka_unit_test(test_signature_before_parse),
		cmocka_unit_test(test_legacy_refused),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_strict_members),
		cmocka_unit_test(test_strict_values),
		cmocka_unit_test(test_serial),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_accept),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_keysblob),
		cmocka_unit_test(test_open_keys),
	};

	if (ovc_common_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
