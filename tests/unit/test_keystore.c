/* test_keystore.c - the password policy and the keystore
 * (crypto/keystore.h). Each keystore test costs a few scrypt runs at
 * log2(N) = 18 (about half a second each): keep their number small. */
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

#include "common/common.h"
#include "crypto/age.h"
#include "crypto/keystore.h"

#define GOOD "Correct-Horse7Battery"
#define GOOD2 "Staple#Violin42Orbit"

/* ---------------------------------------------------------------------------
 * Password policy.
 */
static void expect_refused(const char *pass, size_t min_len, const char *user,
			   const char *email, const char *msg)
{
	ovc_err e;
	int rc;

	ovc_err_clear(&e);
	rc = ovc_passphrase_check(pass, min_len, user, email, &e);
	if (rc != -EINVAL || !strstr(e.msg, msg))
		fail_msg("\"%s\": rc %d, message \"%s\", wanted \"%s\"", pass,
			 rc, e.msg, msg);
}

static void expect_ok(const char *pass, size_t min_len, const char *user,
		      const char *email)
{
	ovc_err e;
	int rc;

	ovc_err_clear(&e);
	rc = ovc_passphrase_check(pass, min_len, user, email, &e);
	if (rc != 0)
		fail_msg("\"%s\": rc %d, message \"%s\"", pass, rc, e.msg);
}

static void test_policy_rules(void **state)
{
	(void)state;
	expect_refused("Sh0rt!pass", 12, NULL, NULL,
		       "needs at least 12 characters");
	expect_refused("Sh0rt!p", 0, NULL, NULL,   /* never below 8 */
		       "needs at least 8 characters");
	expect_refused("Sh0rt!passw0rd", 16, NULL, NULL,
		       "needs at least 16 characters");
	/* Characters, not bytes: 11 characters in 13 bytes. */
	expect_refused("Gr\xc3\xbc\xc3\x9f" "e-Hu7nd", 12, NULL, NULL,
		       "needs at least 12 characters");
	expect_refused("no-upper-case-7x", 12, NULL, NULL,
		       "needs at least one upper-case letter");
	expect_refused("NO-LOWER-CASE-7X", 12, NULL, NULL,
		       "needs at least one lower-case letter");
	expect_refused("No-Digits-Here-Ok", 12, NULL, NULL,
		       "needs at least one digit");
	expect_refused("NoSpecials4Us2day", 12, NULL, NULL,
		       "needs at least one special character");
	/* The first rule that fails is the one named. */
	expect_refused("abc", 12, NULL, NULL, "needs at least 12 characters");
	expect_refused("abcdefghijklmn", 12, NULL, NULL,
		       "needs at least one upper-case letter");
}

static void test_policy_names(void **state)
{
	(void)state;
	expect_refused("Zq7#mallory-Xv2", 12, "mallory", NULL,
		       "must not contain the user name");
	expect_refused("Zq7#MalLORY-Xv2", 12, "mallory", NULL,
		       "must not contain the user name");
	expect_refused("Zq7#mallory-Xv2", 12, "MALLORY", NULL,
		       "must not contain the user name");
	expect_refused("Zq7#m.lory@corp.example-Xv2", 12, NULL,
		       "m.lory@corp.example", "must not contain the e-mail");
	expect_refused("Zq7#M.LORY@Corp.Example-Xv2", 12, NULL,
		       "m.lory@corp.example", "must not contain the e-mail");
	expect_refused("Zq7#Tiberius-Xv2w", 12, NULL, "tiberius@corp.example",
		       "must not contain the e-mail");
	/* Not containing them is fine. */
	expect_ok("Zq7#mallory-Xv2", 12, "alice", "alice@corp.example");
}

static void test_policy_dictionary(void **state)
{
	ovc_err e;

	(void)state;
	/* Meets our own rules at 8; cracklib knows the word. */
	ovc_err_clear(&e);
	assert_int_equal(ovc_passphrase_check("Password1!", 8, NULL, NULL, &e),
			 -EINVAL);
	assert_non_null(strstr(e.msg, "password quality check"));
	assert_non_null(strstr(e.msg, "dictionary"));
	/* Too systematic for cracklib at 12. */
	expect_refused("Abcdefghijk1!", 12, NULL, NULL, "dictionary");
}

static void test_policy_good(void **state)
{
	(void)state;
	expect_ok(GOOD, 12, "alice", "alice@corp.example");
	expect_ok(GOOD2, 16, "bob", NULL);
	expect_ok("Xk9#mP2$vL7q", 12, NULL, NULL);
	expect_ok("Xk9#mP2$", 8, NULL, NULL);
	assert_int_equal(ovc_passphrase_check(NULL, 12, NULL, NULL, NULL),
			 -EINVAL);
}

static void test_generate(void **state)
{
	static const size_t lens[] = { 0, 8, 12, 16, 30, 64 };
	size_t i;
	int j;

	(void)state;
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (j = 0; j < 5; j++) {
			char *p = ovc_passphrase_generate(lens[i]);
			char *q = ovc_passphrase_generate(lens[i]);

			assert_non_null(p);
			assert_non_null(q);
			assert_true(strlen(p) >= lens[i]);
			assert_true(strlen(p) >= 20);
			assert_string_not_equal(p, q);
			expect_ok(p, lens[i], "alice", "alice@corp.example");
			ovc_secret_free(p);
			ovc_secret_free(q);
		}
	}
}

/* ---------------------------------------------------------------------------
 * Keystore files.
 */
struct fixture {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/ovc-test-keystore-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/keystore.age", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void recipient_of(const ovc_age_identity *id, char *out)
{
	ovc_age_recipient r;

	ovc_age_identity_recipient(id, &r);
	ovc_age_recipient_encode(&r, out);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	assert_int_equal(close(fd), 0);
}

static void read_bytes(const char *path, uint8_t **p, size_t *n)
{
	assert_int_equal(ovc_read_file(path, 1 << 20, 0, p, n), 0);
}

/* create, unlock, wrong passphrase, create again, mode: 4 scrypt runs. */
static void test_create_unlock(void **state)
{
	struct fixture *f = *state;
	char r1[OVC_AGE_RECIPIENT_STRLEN + 1], r2[OVC_AGE_RECIPIENT_STRLEN + 1];
	ovc_age_identity *id = NULL, *back = NULL;
	uint8_t *before, *after;
	size_t before_len, after_len;
	struct stat st;
	ovc_err e;

	ovc_err_clear(&e);
	assert_int_equal(ovc_keystore_create(f->path, GOOD, "alice", &id, &e),
			 0);
	assert_non_null(id);
	recipient_of(id, r1);
	assert_int_equal(strncmp(r1, "age1", 4), 0);

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	assert_int_equal(ovc_keystore_unlock(f->path, GOOD, 0, &back, &e), 0);
	recipient_of(back, r2);
	assert_string_equal(r1, r2);
	ovc_age_identity_free(back);

	ovc_err_clear(&e);
	assert_int_equal(ovc_keystore_unlock(f->path, GOOD2, 0, &back, &e),
			 -EBADMSG);
	assert_null(back);
	assert_string_equal(e.msg,
			    "wrong passphrase, or the keystore is damaged");

	/* Over an existing file: -EEXIST, the old file untouched. */
	read_bytes(f->path, &before, &before_len);
	assert_int_equal(ovc_keystore_create(f->path, GOOD2, "alice", NULL, &e),
			 -EEXIST);
	read_bytes(f->path, &after, &after_len);
	assert_int_equal(before_len, after_len);
	assert_memory_equal(before, after, before_len);
	free(before);
	free(after);
	ovc_age_identity_free(id);
}

static void test_create_refuses_weak(void **state)
{
	struct fixture *f = *state;
	ovc_age_identity *id = (ovc_age_identity *)1;
	struct stat st;
	ovc_err e;

	ovc_err_clear(&e);
	/* 8+ but not 12+: the keystore asks for more than the policy floor. */
	assert_int_equal(ovc_keystore_create(f->path, "Xk9#mP2$vL", NULL, &id,
					     &e), -EINVAL);
	assert_non_null(strstr(e.msg, "needs at least 12 characters"));
	assert_null(id);
	assert_int_equal(ovc_keystore_create(f->path, "Zq7#alice-Xv2w", "alice",
					     NULL, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "user name"));
	assert_int_equal(lstat(f->path, &st), -1);
}

/* passwd, then unlock with new and old: 4 scrypt runs (+1 create). A
 * wrong old passphrase is the unlock failure tested above. */
static void test_passwd(void **state)
{
	struct fixture *f = *state;
	char r1[OVC_AGE_RECIPIENT_STRLEN + 1], r2[OVC_AGE_RECIPIENT_STRLEN + 1];
	ovc_age_identity *id = NULL, *back = NULL;
	struct stat st;
	ovc_err e;

	ovc_err_clear(&e);
	assert_int_equal(ovc_keystore_create(f->path, GOOD, "alice", &id, &e),
			 0);
	recipient_of(id, r1);

	/* A weak new passphrase is refused before any work. */
	assert_int_equal(ovc_keystore_passwd(f->path, GOOD, "weak", "alice",
					     &e), -EINVAL);
	assert_non_null(strstr(e.msg, "new passphrase: "));
	assert_int_equal(ovc_keystore_passwd(f->path, GOOD, GOOD2, "alice",
					     &e), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(ovc_keystore_unlock(f->path, GOOD2, 0, &back, &e), 0);
	recipient_of(back, r2);
	assert_string_equal(r1, r2);
	ovc_age_identity_free(back);
	assert_int_equal(ovc_keystore_unlock(f->path, GOOD, 0, &back, &e),
			 -EBADMSG);
	ovc_age_identity_free(id);
}

/* Damaged files: the message tells a person what is wrong. */
static void test_damaged(void **state)
{
	struct fixture *f = *state;
	ovc_age_identity *id = NULL;
	uint8_t *good, *bad_copy;
	size_t good_len;
	char bad[160];
	ovc_err e;

	snprintf(bad, sizeof(bad), "%s/other", f->dir);

	ovc_err_clear(&e);
	assert_int_equal(ovc_keystore_unlock(bad, GOOD, 0, &id, &e), -ENOENT);

	write_bytes(bad, "just some text\n", 15);
	assert_int_equal(ovc_keystore_unlock(bad, GOOD, 0, &id, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not a keystore"));

	write_bytes(bad, "", 0);
	assert_int_equal(ovc_keystore_unlock(bad, GOOD, 0, &id, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not a keystore"));

	/* Garbage after a valid first line: the header does not parse. */
	write_bytes(bad, "age-encryption.org/v1\n\x01\x02garbage\n", 33);
	assert_int_equal(ovc_keystore_unlock(bad, GOOD, 0, &id, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not a readable keystore"));

	assert_int_equal(ovc_keystore_create(f->path, GOOD, NULL, NULL, &e), 0);
	read_bytes(f->path, &good, &good_len);

	/* Cut inside the header (no scrypt work is done). */
	write_bytes(bad, good, 40);
	assert_int_equal(ovc_keystore_unlock(bad, GOOD, 0, &id, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not a readable keystore"));

	/* Cut inside the payload: the right passphrase, a damaged file. */
	write_bytes(bad, good, good_len - 20);
	ovc_err_clear(&e);
	assert_int_equal(ovc_keystore_unlock(bad, GOOD, 0, &id, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "the keystore is damaged: "));
	assert_null(id);

	/* A flipped bit in the scrypt stanza: indistinguishable from a wrong
	 * passphrase. */
	memcpy(bad_copy = malloc(good_len), good, good_len);
	assert_non_null(bad_copy);
	{
		/* A base64 character in the middle of the stanza body (the
		 * line after "-> scrypt SALT 18"). */
		uint8_t *body = (uint8_t *)strstr((char *)bad_copy, " 18\n");

		assert_non_null(body);
		body += 4 + 10;
		*body = *body == 'A' ? 'B' : 'A';
	}
	write_bytes(bad, bad_copy, good_len);
	ovc_err_clear(&e);
	assert_int_equal(ovc_keystore_unlock(bad, GOOD, 0, &id, &e), -EBADMSG);
	assert_string_equal(e.msg,
			    "wrong passphrase, or the keystore is damaged");
	assert_null(id);
	free(bad_copy);

	/* A work factor above the reader's cap is refused before scrypt. */
	assert_int_equal(ovc_keystore_unlock(f->path, GOOD, 16, &id, &e),
			 -EINVAL);
	assert_null(id);
	free(good);
}

/* A keystore whose scrypt work factor (2^23) is above the default cap:
 * refused from the header alone, before any scrypt work. (Writing one
 * for real would cost 8 GiB, so the header is written by hand.) */
static void test_cost_cap(void **state)
{
	static const char hdr[] =
		"age-encryption.org/v1\n"
		"-> scrypt rF0/NwblUHHTpgQgRpe5CQ 23\n"
		"qW9eVsT0NVb/Vswtw8kPIxUnaYmm9Px1dYmq2+4+qZA\n"
		"--- 5Sq4HCyU/l0k9ysB0qIiwtGfEGCgPFeE+IcV2Pi5Mpw\n"
		"0123456789abcdef0123456789abcdef";
	struct fixture *f = *state;
	ovc_age_identity *id = NULL;
	ovc_err e;

	write_bytes(f->path, hdr, sizeof(hdr) - 1);
	ovc_err_clear(&e);
	assert_int_equal(ovc_keystore_unlock(f->path, GOOD, 0, &id, &e),
			 -EINVAL);
	assert_null(id);
	assert_non_null(strstr(e.msg, "not a readable keystore"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_rules),
		cmocka_unit_test(test_policy_names),
		cmocka_unit_test(test_policy_dictionary),
		cmocka_unit_test(test_policy_good),
		cmocka_unit_test(test_generate),
		cmocka_unit_test_setup_teardown(test_create_unlock, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_create_refuses_weak, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_passwd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cost_cap, setup, teardown),
	};

	if (ovc_common_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
