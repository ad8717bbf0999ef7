/*
 * test_audit.c - policy/audit.c: the hash chain, what verify reports for
 * each kind of tampering, filters, escaping, and the signed head.
 *
 * The golden example (two lines, their hashes, a signed head) is the one
 * printed in docs/audit-log.md; a change to the format changes these bytes.
 * Each test works in its own temporary folder.
 */
#define _GNU_SOURCE
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
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/common.h"
#include "crypto/minisign.h"
#include "policy/audit.h"

/* ---------------------------------------------------------------------------
 * Golden example (docs/audit-log.md, "Worked example").
 */
#define T1 1795514400 /* 2026-11-24T10:00:00Z */
#define T2 1795514700 /* 2026-11-24T10:05:00Z */
static const char GOLDEN_DETAILS2[] =
	"{ \"changes\": [\"user bob added to group eng\"], \"users\": 3, "
	"\"note\": \"caf\\u00e9 \\\"x\\\"\\t\" }";
static const char GOLDEN_LOG[] =
	"{\"seq\":1,\"time\":\"2026-11-24T10:00:00Z\",\"admin\":\"alice\","
	"\"action\":\"init\",\"object\":\"corp\",\"details\":{},"
	"\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\","
	"\"hash\":\"bbdf502126f524b1fc78c154fc59f975167490d22298013b396305c422cdc711\"}\n"
	"{\"seq\":2,\"time\":\"2026-11-24T10:05:00Z\",\"admin\":\"alice\","
	"\"action\":\"publish\",\"object\":\"corp\",\"details\":{\"changes\":"
	"[\"user bob added to group eng\"],\"users\":3,\"note\":\"caf\xc3\xa9 \\\"x\\\"\\t\"},"
	"\"prev\":\"bbdf502126f524b1fc78c154fc59f975167490d22298013b396305c422cdc711\","
	"\"hash\":\"d984ffadef80d80ac82deff1ab0afe92b8f3f2de3b840735dd7257d54ae13f44\"}\n";
static const char GOLDEN_HEAD_HEX[] =
	"d984ffadef80d80ac82deff1ab0afe92b8f3f2de3b840735dd7257d54ae13f44";
/* org_conf_sha256 is SHA-256 of the empty string, time T2. */
static const char GOLDEN_HEAD_JSON[] =
	"{\"format\":\"overcrypt-audit-head/1\",\"org\":\"corp\",\"entries\":2,"
	"\"head\":\"d984ffadef80d80ac82deff1ab0afe92b8f3f2de3b840735dd7257d54ae13f44\","
	"\"org_conf_sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
	"\"time\":\"2026-11-24T10:05:00Z\"}\n";
/* Ed25519 is deterministic: the same key signs this the same way every time
 * (checked with stock `minisign -Vm audit-head.json -P GOLDEN_PUB`). */
static const char GOLDEN_HEAD_SIG[] =
	"untrusted comment: signature from minisign secret key\n"
	"RUQBI0VniavN7+xRPL2zPXI7eUEHaGr+RbG1z9wt2LgOjyvZEcF5XmX/Fao4GSNx"
	"TpTY0zcbL9M8EQH0wZQGD/Rg4OydY+cgBQo=\n"
	"trusted comment: overcrypt audit head 2\n"
	"sU6OJMRiScUMzuShmPPR433UN2g4Q38C1Grg/djdKXp+b8VrVVBJjuzANFKWApdV"
	"KzjM1LEYzNyGtxZ6LIi1Cw==\n";
/* The golden minisign key of test_minisign.c: Ed25519 seed 00..1f, key id
 * 01 23 45 67 89 ab cd ef. */
static const uint8_t GOLDEN_KEY_ID[8] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };

/* ---------------------------------------------------------------------------
 * Fixtures and helpers.
 */
struct fx {
	char dir[64];
	char log[128];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/test_audit.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->log, sizeof(f->log), "%s/audit.log", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static ovc_minisign_seckey *golden_key(ovc_minisign_pubkey *pk)
{
	uint8_t seed[32], raw[OVC_MINISIGN_SECKEY_BYTES], pkb[32];
	ovc_minisign_seckey *sk = NULL;

	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)i;
	memcpy(raw, GOLDEN_KEY_ID, 8);
	assert_int_equal(crypto_sign_seed_keypair(pkb, raw + 8, seed), 0);
	assert_int_equal(ovc_minisign_seckey_decode(raw, sizeof(raw), &sk, NULL), 0);
	sodium_memzero(raw, sizeof(raw));
	ovc_minisign_seckey_public(sk, pk);
	return sk;
}

static char *slurp(const char *path, size_t *len)
{
	uint8_t *buf = NULL;

	assert_int_equal(ovc_read_file(path, 1 << 24, 0, &buf, len), 0);
	return (char *)buf;
}

static void spit(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void append_ok(const char *log, time_t t, const char *admin, const char *action,
		      const char *object, const char *details)
{
	ovc_err e;

	ovc_err_clear(&e);
	assert_int_equal(ovc_audit_append(log, t, admin, action, object, details, &e), 0);
}

/* A log of n entries, seq i at time 1000*i, action "act<i%3>". */
static void make_log(const char *log, int n)
{
	char action[16], object[16];

	for (int i = 1; i <= n; i++) {
		snprintf(action, sizeof(action), "act%d", i % 3);
		snprintf(object, sizeof(object), "obj%d", i);
		append_ok(log, 1000 * i, "alice", action, object, "{\"k\":\"v\"}");
	}
}

/* The log's lines (each with its '\n'), as an array of n strings. */
struct lines {
	size_t n;
	char *v[64];
};

static void lines_read(const char *log, struct lines *ls)
{
	size_t len;
	char *txt = slurp(log, &len), *p = txt, *nl;

	ls->n = 0;
	while (*p) {
		nl = strchr(p, '\n');
		assert_true(ls->n < 64);
		ls->v[ls->n++] = strndup(p, nl ? (size_t)(nl - p + 1) : strlen(p));
		p = nl ? nl + 1 : p + strlen(p);
	}
	free(txt);
}

static void lines_write(const char *log, const struct lines *ls)
{
	FILE *fp = fopen(log, "w");

	assert_non_null(fp);
	for (size_t i = 0; i < ls->n; i++)
		assert_int_equal(fputs(ls->v[i], fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static void lines_free(struct lines *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		free(ls->v[i]);
	ls->n = 0;
}

/* Replace the first `from` in line `i` (0-based) by `to` (same length). */
static void line_edit(struct lines *ls, size_t i, const char *from, const char *to)
{
	char *p = strstr(ls->v[i], from);

	assert_non_null(p);
	assert_int_equal(strlen(from), strlen(to));
	memcpy(p, to, strlen(to));
}

/* verify fails with -EBADMSG at "LOG:<line>:" with `why` in the message. */
static void expect_bad(const char *log, int line, const char *why)
{
	char at[160];
	ovc_err e;

	ovc_err_clear(&e);
	assert_int_equal(ovc_audit_verify(log, NULL, NULL, &e), -EBADMSG);
	snprintf(at, sizeof(at), "%s:%d: ", log, line);
	if (strncmp(e.msg, at, strlen(at)) || !strstr(e.msg, why))
		fail_msg("want \"%s...%s\", got \"%s\"", at, why, e.msg);
}

/* ---------------------------------------------------------------------------
 * The chain.
 */
static void test_append_verify(void **state)
{
	struct fx *f = *state;
	struct lines ls;
	uint8_t head[32], want[32];
	uint64_t count = 0;
	char hex[65];
	ovc_err e;
	struct stat st;

	make_log(f->log, 7);
	ovc_err_clear(&e);
	assert_int_equal(ovc_audit_verify(f->log, &count, head, &e), 0);
	assert_int_equal(count, 7);
	lines_read(f->log, &ls);
	assert_int_equal(ls.n, 7);
	/* The head is the last line's hash member. */
	memcpy(hex, strstr(ls.v[6], "\"hash\":\"") + 8, 64);
	hex[64] = '\0';
	assert_int_equal(sodium_hex2bin(want, 32, hex, 64, NULL, NULL, NULL), 0);
	assert_memory_equal(head, want, 32);
	lines_free(&ls);
	assert_int_equal(stat(f->log, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_golden(void **state)
{
	struct fx *f = *state;
	uint8_t head[32], want[32];
	uint64_t count;
	size_t len;
	char *txt;
	ovc_err e;

	append_ok(f->log, T1, "alice", "init", "corp", NULL);
	append_ok(f->log, T2, "alice", "publish", "corp", GOLDEN_DETAILS2);
	txt = slurp(f->log, &len);
	assert_int_equal(len, strlen(GOLDEN_LOG));
	assert_memory_equal(txt, GOLDEN_LOG, len);
	free(txt);

	/* Each hash is SHA-256 of the bytes before ,"hash": */
	for (const char *l = GOLDEN_LOG; *l; l = strchr(l, '\n') + 1) {
		const char *h = strstr(l, ",\"hash\":\"");
		uint8_t d[32], w[32];

		crypto_hash_sha256(d, (const uint8_t *)l, (size_t)(h - l));
		assert_int_equal(sodium_hex2bin(w, 32, h + 9, 64, NULL, NULL, NULL), 0);
		assert_memory_equal(d, w, 32);
	}

	/* The golden text written by hand verifies. */
	spit(f->log, GOLDEN_LOG, strlen(GOLDEN_LOG));
	ovc_err_clear(&e);
	assert_int_equal(ovc_audit_verify(f->log, &count, head, &e), 0);
	assert_int_equal(count, 2);
	assert_int_equal(sodium_hex2bin(want, 32, GOLDEN_HEAD_HEX, 64, NULL, NULL, NULL), 0);
	assert_memory_equal(head, want, 32);
}

static void test_golden_head(void **state)
{
	struct fx *f = *state;
	ovc_minisign_pubkey pk;
	ovc_minisign_seckey *sk = golden_key(&pk);
	char *json = NULL, *sig = NULL;
	ovc_audit_head h;
	uint8_t conf[32];
	uint64_t n = 0;
	ovc_err e;

	spit(f->log, GOLDEN_LOG, strlen(GOLDEN_LOG));
	crypto_hash_sha256(conf, (const uint8_t *)"", 0);
	ovc_err_clear(&e);
	assert_int_equal(ovc_audit_head_sign(f->log, "corp", conf, T2, sk, &json, &sig, &e), 0);
	assert_string_equal(json, GOLDEN_HEAD_JSON);
	assert_string_equal(sig, GOLDEN_HEAD_SIG);
	assert_non_null(strstr(sig, "\ntrusted comment: overcrypt audit head 2\n"));
	assert_int_equal(ovc_audit_head_verify_ex(f->log, json, strlen(json), sig, strlen(sig),
						  &pk, &h, &n, &e), 0);
	assert_string_equal(h.org, "corp");
	assert_int_equal(h.entries, 2);
	assert_int_equal(n, 2);
	assert_memory_equal(h.org_conf_sha256, conf, 32);
	assert_int_equal(h.time, T2);
	ovc_audit_head_release(&h);
	free(json);
	free(sig);
	ovc_minisign_seckey_free(sk);
}

/* docs/audit-log.md prints the same bytes: each golden line, the head and
 * its signature appear in it verbatim. Found beside this file's source. */
static void test_doc_example(void **state)
{
	char path[512], *doc, *copy, *l, *save = NULL;
	const char *slash = strrchr(__FILE__, '/');
	size_t len;

	(void)state;
	snprintf(path, sizeof(path), "%.*s/../../docs/audit-log.md",
		 slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
	doc = slurp(path, &len);
	copy = strdup(GOLDEN_LOG);
	for (l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		assert_non_null(strstr(doc, l));
	free(copy);
	assert_non_null(strstr(doc, GOLDEN_HEAD_JSON));
	assert_non_null(strstr(doc, GOLDEN_HEAD_SIG));
	free(doc);
}

static void test_edited(void **state)
{
	struct fx *f = *state;
	struct lines ls;

	/* A character changed in details, admin, time, action; each bad at
	 * line 3 of 5. */
	static const char *const edits[][2] = {
		{ "\"k\":\"v\"", "\"k\":\"w\"" },
		{ "\"alice\"", "\"alicf\"" },
		{ "00:50:00Z", "00:50:01Z" },
		{ "\"act0\"", "\"act1\"" },
		{ "\"seq\":3", "\"seq\":8" },
	};
	make_log(f->log, 5);
	for (size_t k = 0; k < sizeof(edits) / sizeof(edits[0]); k++) {
		lines_read(f->log, &ls);
		line_edit(&ls, 2, edits[k][0], edits[k][1]);
		lines_write(f->log, &ls);
		expect_bad(f->log, 3, "hash does not match (edited?)");
		line_edit(&ls, 2, edits[k][1], edits[k][0]);
		lines_write(f->log, &ls);
		lines_free(&ls);
		assert_int_equal(ovc_audit_verify(f->log, NULL, NULL, NULL), 0);
	}
}

/* Not canonical: same values, other bytes. */
static void test_not_canonical(void **state)
{
	struct fx *f = *state;
	struct lines ls;
	static const char *const edits[][2] = {
		{ "{\"seq\"", " {\"seq\"" },     /* a leading space */
		{ "\"alice\"", "\"\\u0061lice\"" }, /* an unneeded escape */
		{ "\"seq\":2", "\"seq\":2.0" },
		{ "}\n", "}\r\n" },
		{ "\"k\":\"v\"}", "\"k\":\"v\" }" },
	};
	make_log(f->log, 3);
	for (size_t k = 0; k < sizeof(edits) / sizeof(edits[0]); k++) {
		lines_read(f->log, &ls);
		char *old = ls.v[1], *p = strstr(old, edits[k][0]), *nw;

		assert_non_null(p);
		assert_true(asprintf(&nw, "%.*s%s%s", (int)(p - old), old, edits[k][1],
				     p + strlen(edits[k][0])) > 0);
		ls.v[1] = nw;
		free(old);
		lines_write(f->log, &ls);
		expect_bad(f->log, 2, "not in canonical form");
		lines_free(&ls);
	}
}

static void test_removed_reordered(void **state)
{
	struct fx *f = *state;
	struct lines ls;
	char *tmp;

	make_log(f->log, 4);
	lines_read(f->log, &ls);
	struct lines orig = ls;

	/* Line 2 removed. */
	struct lines cut = { .n = 3, .v = { orig.v[0], orig.v[2], orig.v[3] } };
	lines_write(f->log, &cut);
	expect_bad(f->log, 2, "seq 3 follows seq 1 (removed or reordered?)");

	/* Line 1 removed. */
	struct lines cut1 = { .n = 3, .v = { orig.v[1], orig.v[2], orig.v[3] } };
	lines_write(f->log, &cut1);
	expect_bad(f->log, 1, "seq 2 on the first line");

	/* Lines 2 and 3 swapped. */
	tmp = ls.v[1];
	ls.v[1] = ls.v[2];
	ls.v[2] = tmp;
	lines_write(f->log, &ls);
	expect_bad(f->log, 2, "seq 3 follows seq 1");
	ls.v[2] = ls.v[1];
	ls.v[1] = tmp;

	/* A line replayed. */
	struct lines dup = { .n = 5, .v = { orig.v[0], orig.v[1], orig.v[1], orig.v[2], orig.v[3] } };
	lines_write(f->log, &dup);
	expect_bad(f->log, 3, "seq 2 follows seq 2");

	/* The last line removed: the chain alone cannot tell (the head can). */
	struct lines last = { .n = 3, .v = { orig.v[0], orig.v[1], orig.v[2] } };
	uint64_t count;
	lines_write(f->log, &last);
	assert_int_equal(ovc_audit_verify(f->log, &count, NULL, NULL), 0);
	assert_int_equal(count, 3);
	lines_free(&ls);
}

/* A whole line recomputed: its own hash right, but the chain not. */
static void test_forged_line(void **state)
{
	struct fx *f = *state;
	uint8_t h[32], prev[32];
	char prefix[512], hex[65], phex[65], line[700];
	FILE *fp;

	make_log(f->log, 3);
	/* seq 4 with a made-up prev. */
	memset(prev, 0x5a, 32);
	sodium_bin2hex(phex, sizeof(phex), prev, 32);
	snprintf(prefix, sizeof(prefix),
		 "{\"seq\":4,\"time\":\"2026-11-24T10:00:00Z\",\"admin\":\"mallory\","
		 "\"action\":\"publish\",\"object\":\"corp\",\"details\":{},\"prev\":\"%s\"",
		 phex);
	crypto_hash_sha256(h, (const uint8_t *)prefix, strlen(prefix));
	sodium_bin2hex(hex, sizeof(hex), h, 32);
	snprintf(line, sizeof(line), "%s,\"hash\":\"%s\"}\n", prefix, hex);
	fp = fopen(f->log, "a");
	assert_non_null(fp);
	assert_int_equal(fputs(line, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	expect_bad(f->log, 4, "prev is not the hash of entry 3");

	/* An edited line 2 whose own hash was recomputed: line 3's prev breaks. */
	struct lines ls;
	assert_int_equal(unlink(f->log), 0);
	make_log(f->log, 3);
	lines_read(f->log, &ls);
	char *l2 = ls.v[1], *hp = strstr(l2, ",\"hash\":\"");
	line_edit(&ls, 1, "\"obj2\"", "\"objX\"");
	crypto_hash_sha256(h, (const uint8_t *)l2, (size_t)(hp - l2));
	sodium_bin2hex(hex, sizeof(hex), h, 32);
	memcpy(hp + 9, hex, 64);
	lines_write(f->log, &ls);
	lines_free(&ls);
	expect_bad(f->log, 3, "prev is not the hash of entry 2");
}

static void test_truncated(void **state)
{
	struct fx *f = *state;
	struct stat st;
	size_t len;
	ovc_err e;

	make_log(f->log, 3);
	free(slurp(f->log, &len));
	/* The final '\n' missing. */
	assert_int_equal(truncate(f->log, (off_t)len - 1), 0);
	expect_bad(f->log, 3, "no newline at the end (torn write?)");
	/* Cut in the middle of the last line. */
	assert_int_equal(truncate(f->log, (off_t)len - 40), 0);
	expect_bad(f->log, 3, "torn write");
	/* Appending to it is refused, and changes nothing. */
	ovc_err_clear(&e);
	assert_int_equal(ovc_audit_append(f->log, 5000, "alice", "x", "y", NULL, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "refusing to append: "));
	assert_non_null(strstr(e.msg, ":3: "));
	assert_int_equal(stat(f->log, &st), 0);
	assert_int_equal(st.st_size, (off_t)len - 40);
}

static void test_append_refused_when_broken(void **state)
{
	struct fx *f = *state;
	struct lines ls;
	size_t before, after;
	char *txt;
	ovc_err e;

	make_log(f->log, 3);
	lines_read(f->log, &ls);
	line_edit(&ls, 0, "\"obj1\"", "\"objZ\"");
	lines_write(f->log, &ls);
	lines_free(&ls);
	free(slurp(f->log, &before));
	ovc_err_clear(&e);
	assert_int_equal(ovc_audit_append(f->log, 9000, "alice", "x", "y", NULL, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "refusing to append: "));
	assert_non_null(strstr(e.msg, ":1: hash does not match"));
	txt = slurp(f->log, &after);
	free(txt);
	assert_int_equal(before, after);
}

static void test_empty_missing_odd(void **state)
{
	struct fx *f = *state;
	uint8_t head[32], zero[32] = { 0 };
	uint64_t count = 99;
	char path[160], *big;
	ovc_err e;

	/* Empty: 0 entries, head zeros. */
	spit(f->log, "", 0);
	ovc_err_clear(&e);
	memset(head, 0xff, 32);
	assert_int_equal(ovc_audit_verify(f->log, &count, head, &e), 0);
	assert_int_equal(count, 0);
	assert_memory_equal(head, zero, 32);
	/* Missing: -ENOENT naming the file. */
	snprintf(path, sizeof(path), "%s/nope.log", f->dir);
	assert_int_equal(ovc_audit_verify(path, &count, head, &e), -ENOENT);
	assert_non_null(strstr(e.msg, path));
	/* A symlink is not followed, not even to append. */
	snprintf(path, sizeof(path), "%s/link.log", f->dir);
	assert_int_equal(symlink(f->log, path), 0);
	assert_int_equal(ovc_audit_verify(path, NULL, NULL, &e), -ELOOP);
	assert_int_equal(ovc_audit_append(path, 1, "a", "b", "c", NULL, &e), -ELOOP);
	/* A folder is not a log. */
	assert_int_equal(ovc_audit_verify(f->dir, NULL, NULL, &e), -EINVAL);
	/* An empty line, a line of garbage, a NUL, bad UTF-8. */
	spit(f->log, "\n", 1);
	expect_bad(f->log, 1, "not a JSON object");
	spit(f->log, "hello\n", 6);
	expect_bad(f->log, 1, "not a JSON object");
	spit(f->log, "{\"seq\":1\0}\n", 11);
	expect_bad(f->log, 1, "NUL");
	spit(f->log, "{\"seq\":\"\xc0\xaf\"}\n", 13);
	expect_bad(f->log, 1, "UTF-8");
	spit(f->log, "{\"seq\":1}\n", 10);
	expect_bad(f->log, 1, "members");
	/* A line too long to be one. */
	big = malloc(OVC_AUDIT_LINE_MAX + 10);
	assert_non_null(big);
	memset(big, 'x', OVC_AUDIT_LINE_MAX + 10);
	big[OVC_AUDIT_LINE_MAX + 9] = '\n';
	spit(f->log, big, OVC_AUDIT_LINE_MAX + 10);
	expect_bad(f->log, 1, "longer than");
	free(big);
}

static void test_bad_input(void **state)
{
	struct fx *f = *state;
	static const char *const bad_details[] = {
		"[1]", "\"x\"", "{", "{\"a\":1.5}", "{\"a\":2147483648}", "{\"a\":1e300}",
		"{\"a\":\"x\\u0000y\"}", "{\"a\\u0000\":1}", "{\"a\":1,\"a\":2}",
		"{\"o\":{\"b\":[{\"c\":1,\"c\":1}]}}", "{} x", "{\"z\":-0}", "{\"z\":-0.0}",
	};
	char *big;
	size_t len;
	ovc_err e;

	for (size_t i = 0; i < sizeof(bad_details) / sizeof(bad_details[0]); i++) {
		ovc_err_clear(&e);
		if (ovc_audit_append(f->log, 1, "alice", "a", "o", bad_details[i], &e) != -EINVAL)
			fail_msg("details %s accepted", bad_details[i]);
		assert_true(e.msg[0] != '\0');
	}
	assert_int_equal(ovc_audit_append(f->log, 1, "", "a", "o", NULL, &e), -EINVAL);
	assert_int_equal(ovc_audit_append(f->log, 1, NULL, "a", "o", NULL, &e), -EINVAL);
	assert_int_equal(ovc_audit_append(f->log, 1, "alice", "", "o", NULL, &e), -EINVAL);
	assert_int_equal(ovc_audit_append(f->log, 1, "alice", "a", NULL, NULL, &e), -EINVAL);
	assert_int_equal(ovc_audit_append(f->log, 1, "al\xffice", "a", "o", NULL, &e), -EINVAL);
	assert_int_equal(ovc_audit_append(f->log, 1, "alice", "a", "\xed\xa0\x80", NULL, &e), -EINVAL);
	assert_int_equal(ovc_audit_append(f->log, -1, "alice", "a", "o", NULL, &e), -EINVAL);
	assert_int_equal(ovc_audit_append(f->log, 253402300800, "alice", "a", "o", NULL, &e),
			 -EINVAL); /* year 10000 */
	big = malloc(OVC_AUDIT_LINE_MAX + 16);
	assert_non_null(big);
	memset(big, 'x', OVC_AUDIT_LINE_MAX + 15);
	memcpy(big, "{\"a\":\"", 6);
	memcpy(big + OVC_AUDIT_LINE_MAX + 13, "\"}", 3);
	assert_int_equal(ovc_audit_append(f->log, 1, "alice", "a", "o", big, &e), -EINVAL);
	free(big);
	/* Nothing was written (the file may exist, empty). */
	if (access(f->log, F_OK) == 0) {
		free(slurp(f->log, &len));
		assert_int_equal(len, 0);
	}
	/* The edges that are allowed. */
	append_ok(f->log, 0, "alice", "a", "", "{\"min\":-2147483648,\"max\":2147483647,"
		  "\"t\":true,\"f\":false,\"n\":null,\"z\":0,\"e\":[],\"o\":{}}");
	append_ok(f->log, 253402300799, "alice", "a", "o", NULL); /* 9999-12-31T23:59:59Z */
	char *txt = slurp(f->log, &len);
	assert_non_null(strstr(txt, "\"details\":{\"min\":-2147483648,\"max\":2147483647,"
				    "\"t\":true,\"f\":false,\"n\":null,\"z\":0,\"e\":[],\"o\":{}}"));
	assert_non_null(strstr(txt, "\"time\":\"1970-01-01T00:00:00Z\""));
	assert_non_null(strstr(txt, "\"time\":\"9999-12-31T23:59:59Z\""));
	free(txt);
	assert_int_equal(ovc_audit_verify(f->log, NULL, NULL, &e), 0);
}

/* ---------------------------------------------------------------------------
 * Reading back: filters and escaping.
 */
struct seen {
	int n;
	uint64_t seq[16];
	int stop_at;
};

static int collect(void *ctx, const ovc_audit_entry *en)
{
	struct seen *s = ctx;

	s->seq[s->n++] = en->seq;
	return s->stop_at && s->n == s->stop_at ? 7 : 0;
}

static void shown(const char *log, const ovc_audit_filter *flt, int n, ...)
{
	struct seen s = { 0 };
	va_list ap;
	ovc_err e;

	ovc_err_clear(&e);
	assert_int_equal(ovc_audit_each(log, flt, collect, &s, &e), 0);
	assert_int_equal(s.n, n);
	va_start(ap, n);
	for (int i = 0; i < n; i++)
		assert_int_equal(s.seq[i], va_arg(ap, int));
	va_end(ap);
}

static void test_filters(void **state)
{
	struct fx *f = *state;
	ovc_audit_filter flt;
	struct seen s = { .stop_at = 2 };
	ovc_err e;

	append_ok(f->log, 1000, "alice", "init", "corp", NULL);
	append_ok(f->log, 2000, "alice", "user add", "bob", NULL);
	append_ok(f->log, 3000, "root", "group add", "eng", "{\"members\":[\"bob\",\"carol\"]}");
	append_ok(f->log, 4000, "alice", "publish", "corp",
		  "{\"changes\":[\"x\"],\"n\":{\"deep\":\"carol\"},\"bob\":1}");

	shown(f->log, NULL, 4, 1, 2, 3, 4);
	memset(&flt, 0, sizeof(flt));
	shown(f->log, &flt, 4, 1, 2, 3, 4);
	flt.since = 2000;
	shown(f->log, &flt, 3, 2, 3, 4);
	flt.until = 3000;
	shown(f->log, &flt, 2, 2, 3);
	flt.since = 0;
	flt.until = 1999;
	shown(f->log, &flt, 1, 1);
	memset(&flt, 0, sizeof(flt));
	flt.action = "publish";
	shown(f->log, &flt, 1, 4);
	flt.action = "user";
	shown(f->log, &flt, 0);
	memset(&flt, 0, sizeof(flt));
	flt.user = "bob"; /* the object, a string in an array; not a member name */
	shown(f->log, &flt, 2, 2, 3);
	flt.user = "carol"; /* nested */
	shown(f->log, &flt, 2, 3, 4);
	flt.user = "corp";
	shown(f->log, &flt, 2, 1, 4);
	flt.user = "alice"; /* the admin is not the object */
	shown(f->log, &flt, 0);
	flt.user = "carol";
	flt.action = "publish";
	flt.since = 3500;
	shown(f->log, &flt, 1, 4);

	/* fn's non-zero value stops the walk and is returned. */
	ovc_err_clear(&e);
	assert_int_equal(ovc_audit_each(f->log, NULL, collect, &s, &e), 7);
	assert_int_equal(s.n, 2);

	/* each shows an edited (but well-formed) log; a torn one up to the tear. */
	struct lines ls;
	lines_read(f->log, &ls);
	line_edit(&ls, 1, "\"bob\"", "\"bib\"");
	ls.v[3][strlen(ls.v[3]) - 1] = '\0';
	lines_write(f->log, &ls);
	lines_free(&ls);
	memset(&s, 0, sizeof(s));
	assert_int_equal(ovc_audit_each(f->log, NULL, collect, &s, &e), -EINVAL);
	assert_int_equal(s.n, 3);
	assert_non_null(strstr(e.msg, ":4: no newline"));
}

struct names {
	char *admin, *object, *details, *line;
};

static int grab(void *ctx, const ovc_audit_entry *en)
{
	struct names *n = ctx;

	n->admin = strdup(en->admin);
	n->object = strdup(en->object);
	n->details = strdup(en->details);
	n->line = strdup(en->line);
	return 0;
}

static void test_escaping(void **state)
{
	struct fx *f = *state;
	/* quote, backslash, Latin-1, CJK, astral, C0 controls, DEL */
	static const char name[] = "a\"b\\c \xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80 "
				   "\x01\x1f\t\n\r\b\f\x7f/";
	static const char esc[] = "\"a\\\"b\\\\c \xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80 "
				  "\\u0001\\u001f\\t\\n\\r\\b\\f\x7f/\"";
	struct names got = { 0 };
	char *txt, want[256];
	size_t len;
	ovc_err e;

	append_ok(f->log, 1, name, "act\"ion", name,
		  "{\"s\":\"\\u0001\\u00e9\\ud83d\\ude00\\/\"}");
	txt = slurp(f->log, &len);
	snprintf(want, sizeof(want), "\"admin\":%s,\"action\":\"act\\\"ion\",\"object\":%s,", esc,
		 esc);
	assert_non_null(strstr(txt, want));
	assert_non_null(strstr(txt, "\"details\":{\"s\":\"\\u0001\xc3\xa9\xf0\x9f\x98\x80/\"}"));
	free(txt);
	assert_int_equal(ovc_audit_verify(f->log, NULL, NULL, &e), 0);
	ovc_err_clear(&e);
	assert_int_equal(ovc_audit_each(f->log, NULL, grab, &got, &e), 0);
	assert_string_equal(got.admin, name);
	assert_string_equal(got.object, name);
	assert_string_equal(got.details, "{\"s\":\"\\u0001\xc3\xa9\xf0\x9f\x98\x80/\"}");
	assert_int_equal(strchr(got.line, '\n') == NULL, 1);
	free(got.admin);
	free(got.object);
	free(got.details);
	free(got.line);
}

/* ---------------------------------------------------------------------------
 * The signed head.
 */
struct signed_head {
	char *json, *sig;
};

static void sign(const char *log, const ovc_minisign_seckey *sk, struct signed_head *h)
{
	uint8_t conf[32] = { 1 };
	ovc_err e;

	ovc_err_clear(&e);
	assert_int_equal(ovc_audit_head_sign(log, "corp \"inc\"", conf, 1795514400, sk, &h->json,
					     &h->sig, &e), 0);
}

static int hv(const char *log, const struct signed_head *h, const ovc_minisign_pubkey *pk,
	      ovc_err *e)
{
	size_t jl = strlen(h->json), sl = strlen(h->sig);
	char *j = malloc(jl), *s = malloc(sl); /* exact sizes, no NUL */
	int rc;

	assert_non_null(j);
	assert_non_null(s);
	memcpy(j, h->json, jl);
	memcpy(s, h->sig, sl);
	ovc_err_clear(e);
	rc = ovc_audit_head_verify(log, j, jl, s, sl, pk, e);
	free(j);
	free(s);
	return rc;
}

static void head_free(struct signed_head *h)
{
	free(h->json);
	free(h->sig);
}

static void test_head(void **state)
{
	struct fx *f = *state;
	ovc_minisign_pubkey pk, other_pk;
	ovc_minisign_seckey *sk = NULL, *other = NULL;
	struct signed_head h;
	char *saved;
	size_t saved_len;
	uint64_t n;
	ovc_err e;

	assert_int_equal(ovc_minisign_keygen(&sk, &pk), 0);
	assert_int_equal(ovc_minisign_keygen(&other, &other_pk), 0);

	/* Empty log: a head of 0 entries. */
	spit(f->log, "", 0);
	sign(f->log, sk, &h);
	assert_non_null(strstr(h.json, "\"entries\":0,\"head\":\"0000"));
	assert_int_equal(hv(f->log, &h, &pk, &e), 0);
	head_free(&h);

	make_log(f->log, 4);
	saved = slurp(f->log, &saved_len); /* the store at 4 entries */
	make_log(f->log, 2);               /* 6 entries, then a publish */
	sign(f->log, sk, &h);
	assert_non_null(strstr(h.json, "\"org\":\"corp \\\"inc\\\"\""));
	assert_int_equal(hv(f->log, &h, &pk, &e), 0);

	/* Entries after the head are fine. */
	append_ok(f->log, 99999, "alice", "later", "x", NULL);
	assert_int_equal(hv(f->log, &h, &pk, &e), 0);
	ovc_audit_head hd;
	assert_int_equal(ovc_audit_head_verify_ex(f->log, h.json, strlen(h.json), h.sig,
						  strlen(h.sig), &pk, &hd, &n, &e), 0);
	assert_int_equal(hd.entries, 6);
	assert_int_equal(n, 7);
	ovc_audit_head_release(&hd);

	/* Signed by another key. */
	assert_int_equal(hv(f->log, &h, &other_pk, &e), -ENOKEY);
	assert_non_null(strstr(e.msg, "signature"));

	/* The store rolled back to 4 entries: cut back. */
	spit(f->log, saved, saved_len);
	assert_int_equal(hv(f->log, &h, &pk, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "4 entries, but the signed head has 6"));

	/* Recomputed chain: 6 consistent entries with other content. */
	assert_int_equal(unlink(f->log), 0);
	for (int i = 0; i < 6; i++)
		append_ok(f->log, 1000 * (i + 1), "mallory", "act", "obj", NULL);
	assert_int_equal(ovc_audit_verify(f->log, NULL, NULL, &e), 0);
	assert_int_equal(hv(f->log, &h, &pk, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, ":6: the hash of entry 6 is not the signed head's"));

	/* A broken chain fails even where the head matches. */
	spit(f->log, saved, saved_len);
	make_log(f->log, 2);
	head_free(&h);
	sign(f->log, sk, &h);
	struct lines ls;
	lines_read(f->log, &ls);
	line_edit(&ls, 1, "\"obj2\"", "\"obj9\"");
	lines_write(f->log, &ls);
	lines_free(&ls);
	assert_int_equal(hv(f->log, &h, &pk, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, ":2: hash does not match"));
	ovc_err_clear(&e);
	char *j2 = NULL, *s2 = NULL;
	assert_int_equal(ovc_audit_head_sign(f->log, "corp", (uint8_t[32]){ 0 }, 1, sk, &j2,
					     &s2, &e), -EBADMSG);
	assert_null(j2);
	assert_null(s2);
	spit(f->log, saved, saved_len);
	make_log(f->log, 2);
	assert_int_equal(hv(f->log, &h, &pk, &e), 0);

	/* The head text changed after signing. */
	char *p = strstr(h.json, "\"entries\":6");
	assert_non_null(p);
	p[10] = '4';
	assert_int_equal(hv(f->log, &h, &pk, &e), -EBADMSG);
	p[10] = '6';

	free(saved);
	head_free(&h);
	ovc_minisign_seckey_free(sk);
	ovc_minisign_seckey_free(other);
}

static void test_head_parse(void **state)
{
	static const char *const bad[] = {
		"{\"format\":\"overcrypt-audit-head/1\"}\n",
		"{\"format\":\"overcrypt-audit-head/1\",\"org\":\"corp\",\"entries\":2,"
		"\"head\":\"d984ffadef80d80ac82deff1ab0afe92b8f3f2de3b840735dd7257d54ae13f44\","
		"\"org_conf_sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
		"\"time\":\"2026-11-24T10:05:00Z\"}", /* no '\n' */
		"{\"format\":\"overcrypt-audit-head/1\",\"org\":\"corp\",\"entries\":2.5,"
		"\"head\":\"d984ffadef80d80ac82deff1ab0afe92b8f3f2de3b840735dd7257d54ae13f44\","
		"\"org_conf_sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
		"\"time\":\"2026-11-24T10:05:00Z\"}\n",
		"{\"format\":\"overcrypt-audit-head/1\",\"org\":\"corp\",\"entries\":2,"
		"\"head\":\"D984ffadef80d80ac82deff1ab0afe92b8f3f2de3b840735dd7257d54ae13f44\","
		"\"org_conf_sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
		"\"time\":\"2026-11-24T10:05:00Z\"}\n",
		"[]\n", "", "{\"format\":1}\n",
	};
	ovc_audit_head h;
	ovc_err e;

	(void)state;
	assert_int_equal(ovc_audit_head_parse(GOLDEN_HEAD_JSON, strlen(GOLDEN_HEAD_JSON), &h, &e),
			 0);
	assert_string_equal(h.org, "corp");
	ovc_audit_head_release(&h);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ovc_err_clear(&e);
		assert_int_equal(ovc_audit_head_parse(bad[i], strlen(bad[i]), &h, &e), -EINVAL);
		assert_null(h.org);
	}
	static const char v2[] = "{\"format\":\"overcrypt-audit-head/2\",\"org\":\"c\"}\n";
	assert_int_equal(ovc_audit_head_parse(v2, strlen(v2), &h, &e), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_golden, setup, teardown),
		cmocka_unit_test_setup_teardown(test_golden_head, setup, teardown),
		cmocka_unit_test(test_doc_example),
		cmocka_unit_test_setup_teardown(test_edited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_canonical, setup, teardown),
		cmocka_unit_test_setup_teardown(test_removed_reordered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_refused_when_broken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_missing_odd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head, setup, teardown),
		cmocka_unit_test(test_head_parse),
	};

	if (ovc_common_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
