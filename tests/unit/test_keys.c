/* test_keys.c - key ids, key sets and the keys-file JSON (crypto/keys.h). */
#define _GNU_SOURCE
#include <errno.h>
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
#include "crypto/age.h"
#include "crypto/keys.h"

#define ID0 "00112233-4455-6677-8899-aabbccddeeff"
/* base64 of 32 bytes 0x00..0x1f */
#define KEY0 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define ID1 "6f1c2b8e-3d4a-4b5c-9d6e-7f8091a2b3c4"
#define KEY1 "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="

/* A keys file with `entries` spliced into its keys array. */
static char *doc(const char *entries)
{
	char *s = NULL;

	assert_true(asprintf(&s, "{\"format\": \"overcrypt-keys/1\", "
				 "\"keys\": [%s]}", entries) > 0);
	return s;
}

static void test_uuid_round_trip(void **state)
{
	uint8_t id[OVC_KEY_ID_BYTES];
	char out[OVC_KEY_ID_STRLEN + 1];
	static const uint8_t want[OVC_KEY_ID_BYTES] = {
		0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
		0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
	};

	(void)state;
	assert_int_equal(ovc_key_id_parse(ID0, id), 0);
	assert_memory_equal(id, want, sizeof(want)); /* RFC 9562 byte order */
	ovc_key_id_format(id, out);
	assert_string_equal(out, ID0);
	assert_int_equal(ovc_key_id_parse("00112233-4455-6677-8899-AABBCCDDEEFF",
					  id), 0);
	assert_memory_equal(id, want, sizeof(want));
	ovc_key_id_format(id, out);
	assert_string_equal(out, ID0); /* always written in lower case */
}

static void test_uuid_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"00112233-4455-6677-8899-aabbccddeef",    /* short */
		"00112233-4455-6677-8899-aabbccddeeff0",  /* long */
		"00112233-4455-6677-8899-aabbccddeefg",   /* not hex */
		"0011223344-55-6677-8899-aabbccddeeff",   /* dash moved */
		"00112233_4455_6677_8899_aabbccddeeff",   /* no dashes */
		"001122334455667788990aabbccddeeff000",   /* no dashes */
		"{00112233-4455-6677-8899-aabbccddeeff}", /* braces */
		" 0112233-4455-6677-8899-aabbccddeeff",
		"00112233-4455-6677-8899-aabbccddee f",
		"00112233-4455-6677-8899+aabbccddeeff",
	};
	uint8_t id[OVC_KEY_ID_BYTES];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(ovc_key_id_parse(bad[i], id), -EINVAL);
	assert_int_equal(ovc_key_id_parse(NULL, id), -EINVAL);
}

static void test_generate_v4(void **state)
{
	ovc_keyset *ks = ovc_keyset_new(2);
	const ovc_key *k = NULL;
	char text[OVC_KEY_ID_STRLEN + 1];
	int i;

	(void)state;
	assert_non_null(ks);
	for (i = 0; i < 50; i++) {
		assert_int_equal(ovc_keyset_generate(ks, &k), 0);
		assert_non_null(k);
		assert_int_equal(k->id[6] >> 4, 4);      /* version 4 */
		assert_int_equal(k->id[8] & 0xc0, 0x80); /* variant 10 */
		ovc_key_id_format(k->id, text);
		assert_int_equal(text[14], '4');
		assert_true(strchr("89ab", text[19]) != NULL);
		assert_ptr_equal(ovc_keyset_find(ks, k->id), k);
	}
	assert_int_equal(ks->n, 50);
	/* All ids and keys differ. */
	for (i = 1; i < 50; i++) {
		assert_memory_not_equal(ks->keys[i].id, ks->keys[0].id,
					OVC_KEY_ID_BYTES);
		assert_memory_not_equal(ks->keys[i].key, ks->keys[0].key,
					OVC_KEY_BYTES);
	}
	ovc_keyset_free(ks);
}

static void test_add(void **state)
{
	ovc_keyset *ks = ovc_keyset_new(1);
	ovc_key a, b;

	(void)state;
	assert_non_null(ks);
	assert_int_equal(ovc_key_id_parse(ID0, a.id), 0);
	memset(a.key, 0x11, sizeof(a.key));
	assert_int_equal(ovc_keyset_add(ks, &a), 0);
	assert_int_equal(ovc_keyset_add(ks, &a), 0); /* same: no-op */
	assert_int_equal(ks->n, 1);
	b = a;
	b.key[31] ^= 1;
	assert_int_equal(ovc_keyset_add(ks, &b), -EEXIST);
	assert_int_equal(ks->n, 1);
	assert_memory_equal(ovc_keyset_find(ks, a.id)->key, a.key,
			    OVC_KEY_BYTES);
	/* A key that lives inside the set, added again while it is full. */
	assert_int_equal(ks->n, ks->cap);
	assert_int_equal(ovc_keyset_add(ks, &ks->keys[0]), 0);
	assert_int_equal(ks->n, 1);
	assert_int_equal(ovc_key_id_parse(ID1, b.id), 0);
	assert_null(ovc_keyset_find(ks, b.id));
	ovc_keyset_free(ks);
}

static void test_grow(void **state)
{
	ovc_keyset *ks = ovc_keyset_new(0);
	ovc_key k;
	size_t i;

	(void)state;
	assert_non_null(ks);
	for (i = 0; i < 100; i++) {
		memset(&k, 0, sizeof(k));
		memcpy(k.id, &i, sizeof(i));
		memset(k.key, (int)(i & 0xff), sizeof(k.key));
		assert_int_equal(ovc_keyset_add(ks, &k), 0);
	}
	assert_int_equal(ks->n, 100);
	assert_true(ks->cap >= 100);
	for (i = 0; i < 100; i++) {
		const ovc_key *f;

		memset(&k, 0, sizeof(k));
		memcpy(k.id, &i, sizeof(i));
		f = ovc_keyset_find(ks, k.id);
		assert_non_null(f);
		assert_int_equal(f->key[0], (int)(i & 0xff));
		assert_int_equal(f->key[31], (int)(i & 0xff));
	}
	ovc_keyset_free(ks);
	ovc_keyset_free(NULL);
}

static void test_json_round_trip(void **state)
{
	ovc_keyset *ks = ovc_keyset_new(4), *back = NULL;
	char *text = NULL;
	size_t len = 0, i;
	ovc_err e;

	(void)state;
	assert_non_null(ks);
	for (i = 0; i < 5; i++)
		assert_int_equal(ovc_keyset_generate(ks, NULL), 0);
	assert_int_equal(ovc_keyset_format_json(ks, &text, &len), 0);
	assert_int_equal(strlen(text), len);
	assert_non_null(strstr(text, "\"overcrypt-keys/1\""));
	assert_int_equal(ovc_keyset_parse_json(text, len, &back, &e), 0);
	assert_int_equal(back->n, ks->n);
	for (i = 0; i < ks->n; i++)
		assert_memory_equal(&back->keys[i], &ks->keys[i],
				    sizeof(ovc_key));
	ovc_wipe_free(text);
	ovc_keyset_free(back);

	/* An empty set too. */
	ks->n = 0;
	assert_int_equal(ovc_keyset_format_json(ks, &text, &len), 0);
	assert_int_equal(ovc_keyset_parse_json(text, len, &back, &e), 0);
	assert_int_equal(back->n, 0);
	ovc_wipe_free(text);
	ovc_keyset_free(back);
	ovc_keyset_free(ks);
}

static void test_json_known_values(void **state)
{
	char *s = doc("{\"key_id\": \"" ID0 "\", \"key\": \"" KEY0 "\", "
		      "\"asset\": \"marketing\", \"created\": \"2026-01-01\"},"
		      "{\"key\": \"" KEY1 "\", \"key_id\": \"" ID1 "\"}");
	ovc_keyset *ks = NULL;
	uint8_t id[OVC_KEY_ID_BYTES];
	const ovc_key *k;
	ovc_err e;
	int i;

	(void)state;
	assert_int_equal(ovc_keyset_parse_json(s, strlen(s), &ks, &e), 0);
	assert_int_equal(ks->n, 2);
	assert_int_equal(ovc_key_id_parse(ID0, id), 0);
	k = ovc_keyset_find(ks, id);
	assert_non_null(k);
	for (i = 0; i < 32; i++)
		assert_int_equal(k->key[i], i);
	assert_int_equal(ovc_key_id_parse(ID1, id), 0);
	k = ovc_keyset_find(ks, id);
	assert_non_null(k);
	for (i = 0; i < 32; i++)
		assert_int_equal(k->key[i], 32 + i);
	ovc_keyset_free(ks);
	free(s);
}

struct bad_case {
	const char *json;   /* NULL: use `entries` in doc() */
	const char *entries;
	const char *msg;    /* a substring the error must hold */
};

#define E0 "{\"key_id\": \"" ID0 "\", \"key\": \"" KEY0 "\"}"
#define E1 "{\"key_id\": \"" ID1 "\", \"key\": \"" KEY1 "\"}"

static const struct bad_case bad_cases[] = {
	/* bad format */
	{ "{\"format\": \"overcrypt-keys/2\", \"keys\": []}", NULL, "format:" },
	{ "{\"format\": 1, \"keys\": []}", NULL, "format: not a string" },
	{ "{\"keys\": []}", NULL, "format: missing" },
	/* unknown member */
	{ "{\"format\": \"overcrypt-keys/1\", \"keys\": [], \"x\": 1}", NULL,
	  "x: unknown member" },
	{ NULL, E0 ", {\"key_id\": \"" ID1 "\", \"key\": \"" KEY1 "\", "
		   "\"comment\": \"hi\"}", "keys[1].comment: unknown member" },
	/* duplicate member */
	{ "{\"format\": \"overcrypt-keys/1\", \"keys\": [], "
	  "\"format\": \"overcrypt-keys/1\"}", NULL, "format: duplicate member" },
	{ NULL, "{\"key_id\": \"" ID0 "\", \"key\": \"" KEY0 "\", "
		"\"key\": \"" KEY1 "\"}", "keys[0].key: duplicate member" },
	/* short / long key */
	{ NULL, E0 ", {\"key_id\": \"" ID1 "\", "
		   "\"key\": \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\"}",
	  "keys[1].key: 31 bytes, not 32" },
	{ NULL, "{\"key_id\": \"" ID1 "\", "
		"\"key\": \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\"}",
	  "keys[0].key: 33 bytes, not 32" },
	{ NULL, "{\"key_id\": \"" ID1 "\", \"key\": \"\"}",
	  "keys[0].key: 0 bytes" },
	/* bad base64 */
	{ NULL, "{\"key_id\": \"" ID1 "\", "
		"\"key\": \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"}",
	  "keys[0].key: not valid base64" }, /* padding missing */
	{ NULL, "{\"key_id\": \"" ID1 "\", "
		"\"key\": \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd*h8=\"}",
	  "keys[0].key: not valid base64" },
	{ NULL, "{\"key_id\": \"" ID1 "\", "
		"\"key\": \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8_\"}",
	  "keys[0].key: not valid base64" }, /* URL-safe alphabet */
	{ NULL, "{\"key_id\": \"" ID1 "\", \"key\": 5}",
	  "keys[0].key: not a string" },
	{ NULL, "{\"key_id\": \"" ID1 "\"}", "keys[0].key: missing" },
	/* key ids */
	{ NULL, E0 ", " E1 ", {\"key_id\": \"nope\", \"key\": \"" KEY1 "\"}",
	  "keys[2].key_id: not a UUID" },
	{ NULL, "{\"key\": \"" KEY1 "\"}", "keys[0].key_id: missing" },
	/* same key id twice (even with the same bytes) */
	{ NULL, E0 ", " E1 ", " E0, "keys[2].key_id: the same key id as keys[0]" },
	{ NULL, E0 ", {\"key_id\": \"00112233-4455-6677-8899-AABBCCDDEEFF\", "
		   "\"key\": \"" KEY1 "\"}", "keys[1].key_id: the same key id" },
	/* optional members have types */
	{ NULL, "{\"key_id\": \"" ID1 "\", \"key\": \"" KEY1 "\", \"asset\": 3}",
	  "keys[0].asset: not a string" },
	/* not an object */
	{ "[]", NULL, "not a JSON object" },
	{ "\"overcrypt-keys/1\"", NULL, "not a JSON object" },
	{ NULL, E0 ", 7", "keys[1]: not an object" },
	/* keys not an array */
	{ "{\"format\": \"overcrypt-keys/1\", \"keys\": {}}", NULL,
	  "keys: not an array" },
	{ "{\"format\": \"overcrypt-keys/1\", \"keys\": \"" KEY0 "\"}", NULL,
	  "keys: not an array" },
	{ "{\"format\": \"overcrypt-keys/1\"}", NULL, "keys: missing" },
	/* not JSON */
	{ "{\"format\": \"overcrypt-keys/1\", \"keys\": [", NULL, "not valid JSON" },
	{ "", NULL, "not valid JSON" },
	{ "{\"format\": \"overcrypt-keys/1\", \"keys\": []} {}", NULL,
	  "text after" },
};

static void test_json_malformed(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		char *s = c->json ? strdup(c->json) : doc(c->entries);
		ovc_keyset *ks = (ovc_keyset *)1;
		ovc_err e;
		int rc;

		assert_non_null(s);
		ovc_err_clear(&e);
		rc = ovc_keyset_parse_json(s, strlen(s), &ks, &e);
		if (rc != -EINVAL || !strstr(e.msg, c->msg))
			fail_msg("case %zu: rc %d, message \"%s\", wanted \"%s\"",
				 i, rc, e.msg, c->msg);
		assert_int_equal(e.code, -EINVAL);
		assert_null(ks);
		/* Never the key in a message. */
		assert_null(strstr(e.msg, KEY0));
		assert_null(strstr(e.msg, KEY1));
		free(s);
	}
}

static void test_json_not_nul_terminated(void **state)
{
	char *s = doc(E0);
	size_t n = strlen(s);
	char *copy = malloc(n + 8);
	ovc_keyset *ks = NULL;

	(void)state;
	assert_non_null(copy);
	memcpy(copy, s, n);
	memcpy(copy + n, "garbage", 8);
	assert_int_equal(ovc_keyset_parse_json(copy, n, &ks, NULL), 0);
	assert_int_equal(ks->n, 1);
	ovc_keyset_free(ks);
	assert_int_equal(ovc_keyset_parse_json(copy, n + 3, &ks, NULL),
			 -EINVAL);
	free(copy);
	free(s);
}

/* The admin tool's export adds "user" and "current" per key. */
static void test_json_export_members(void **state)
{
	static const char ok[] =
		"{\"format\":\"overcrypt-keys/1\",\"keys\":[{\"key_id\":"
		"\"3f2a6c1e-9b7d-4e0a-8c5f-112233445566\",\"key\":"
		"\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"asset\":\"home\","
		"\"user\":\"alice\",\"created\":\"2026-11-24T10:00:00Z\",\"current\":true}]}";
	static const char bad[] =
		"{\"format\":\"overcrypt-keys/1\",\"keys\":[{\"key_id\":"
		"\"3f2a6c1e-9b7d-4e0a-8c5f-112233445566\",\"key\":"
		"\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"current\":\"yes\"}]}";
	ovc_keyset *ks = NULL;
	ovc_err e;
	(void)state;

	assert_int_equal(ovc_keyset_parse_json(ok, sizeof(ok) - 1, &ks, &e), 0);
	assert_int_equal(ks->n, 1);
	ovc_keyset_free(ks);
	ks = NULL;
	assert_int_equal(ovc_keyset_parse_json(bad, sizeof(bad) - 1, &ks, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "keys[0].current"));
}

static void test_save_load(void **state)
{
	char dir[] = "/tmp/ovc-test-keys-XXXXXX", path[256], link_path[256];
	ovc_keyset *ks = ovc_keyset_new(1), *back = NULL;
	struct stat st;
	ovc_err e;
	size_t i;

	(void)state;
	assert_non_null(ks);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/keys.json", dir);
	snprintf(link_path, sizeof(link_path), "%s/link", dir);
	for (i = 0; i < 3; i++)
		assert_int_equal(ovc_keyset_generate(ks, NULL), 0);
	assert_int_equal(ovc_keyset_save(path, ks, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(ovc_keyset_load(path, NULL, &back, &e), 0);
	assert_int_equal(back->n, 3);
	assert_memory_equal(back->keys, ks->keys, 3 * sizeof(ovc_key));
	ovc_keyset_free(back);
	/* Never over an existing file, nor through a symlink. */
	assert_int_equal(ovc_keyset_save(path, ks, &e), -EEXIST);
	assert_int_equal(symlink("/tmp/ovc-test-keys-nowhere", link_path), 0);
	assert_int_equal(ovc_keyset_save(link_path, ks, &e), -EEXIST);
	assert_int_equal(lstat("/tmp/ovc-test-keys-nowhere", &st), -1);
	/* A missing file. */
	assert_int_equal(ovc_keyset_load("/tmp/ovc-test-keys-nowhere", NULL,
					 &back, &e), -ENOENT);
	assert_null(back);
	unlink(link_path);
	unlink(path);
	rmdir(dir);
	ovc_keyset_free(ks);
}

/* A key export: keys-file JSON inside an age passphrase file. The writer's
 * work factor is kept low (2^10) to keep the test fast; readers accept up
 * to 2^22. */
static void test_load_export(void **state)
{
	char dir[] = "/tmp/ovc-test-keys-XXXXXX", path[256];
	ovc_keyset *ks = ovc_keyset_new(2), *back = NULL;
	ovc_age_encrypt_opts o = { .passphrase = "Export#Pass42word",
				   .scrypt_log_n = 10 };
	uint8_t *ct = NULL;
	size_t ct_len = 0, len = 0;
	char *text = NULL;
	ovc_err e;
	int armor;

	(void)state;
	assert_non_null(ks);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/export.age", dir);
	assert_int_equal(ovc_keyset_generate(ks, NULL), 0);
	assert_int_equal(ovc_keyset_generate(ks, NULL), 0);
	assert_int_equal(ovc_keyset_format_json(ks, &text, &len), 0);
	for (armor = 0; armor < 2; armor++) {
		o.armor = armor;
		assert_int_equal(ovc_age_encrypt(&o, (const uint8_t *)text, len,
						 &ct, &ct_len, &e), 0);
		assert_int_equal(ovc_write_file_atomic(path, ct, ct_len, 0600,
						       0), 0);
		free(ct);

		ovc_err_clear(&e);
		assert_int_equal(ovc_keyset_load(path, NULL, &back, &e),
				 -ENOKEY);
		assert_string_equal(e.msg, "needs a passphrase");
		assert_null(back);
		assert_int_equal(ovc_keyset_load(path, "Wrong#Pass42word",
						 &back, &e), -EBADMSG);
		assert_null(back);
		assert_non_null(strstr(e.msg, "wrong passphrase"));
		assert_int_equal(ovc_keyset_load(path, o.passphrase, &back,
						 &e), 0);
		assert_int_equal(back->n, 2);
		assert_memory_equal(back->keys, ks->keys, 2 * sizeof(ovc_key));
		ovc_keyset_free(back);
		back = NULL;
	}
	/* Inside the age file, the JSON is held to the same rules. */
	o.armor = 0;
	assert_int_equal(ovc_age_encrypt(&o, (const uint8_t *)"{\"keys\": []}",
					 12, &ct, &ct_len, &e), 0);
	assert_int_equal(ovc_write_file_atomic(path, ct, ct_len, 0600, 0), 0);
	free(ct);
	assert_int_equal(ovc_keyset_load(path, o.passphrase, &back, &e),
			 -EINVAL);
	assert_string_equal(e.msg, "format: missing");
	ovc_wipe_free(text);
	unlink(path);
	rmdir(dir);
	ovc_keyset_free(ks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid_round_trip),
		cmocka_unit_test(test_uuid_malformed),
		cmocka_unit_test(test_generate_v4),
		cmocka_unit_test(test_add),
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_json_round_trip),
		cmocka_unit_test(test_json_known_values),
		cmocka_unit_test(test_json_malformed),
		cmocka_unit_test(test_json_not_nul_terminated),
		cmocka_unit_test(test_json_export_members),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_load_export),
	};

	if (ovc_common_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
