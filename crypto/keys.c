/* keys.c - asset keys, key ids and the keys file; see keys.h. */
#define _GNU_SOURCE
#include "crypto/keys.h"

#include <cJSON.h>
#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/age.h"

#define KEYS_FORMAT "overcrypt-keys/1"
#define KEYS_FILE_MAX (4u << 20)   /* a keys file or key export, at most */
#define KEYSET_MIN_GROW 8
/* Base64 (original variant, padded) of 32 bytes is 44 characters. */
#define KEY_B64_LEN 44

/* cJSON's allocator is the wiping one, installed process-wide by
 * ovc_common_init() (common.h): key text never lingers in freed memory. */

/* ---------------------------------------------------------------------------
 * Key ids.
 */
static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int is_dash_pos(size_t i)
{
	return i == 8 || i == 13 || i == 18 || i == 23;
}

int ovc_key_id_parse(const char *s, uint8_t id[OVC_KEY_ID_BYTES])
{
	uint8_t tmp[OVC_KEY_ID_BYTES];
	size_t i, n = 0;

	if (!s || strnlen(s, OVC_KEY_ID_STRLEN + 1) != OVC_KEY_ID_STRLEN)
		return -EINVAL;
	for (i = 0; i < OVC_KEY_ID_STRLEN; i++) {
		int hi, lo;

		if (is_dash_pos(i)) {
			if (s[i] != '-')
				return -EINVAL;
			continue;
		}
		hi = hex_val(s[i]);
		lo = hex_val(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		tmp[n++] = (uint8_t)(hi << 4 | lo);
		i++;
	}
	memcpy(id, tmp, sizeof(tmp));
	return 0;
}

void ovc_key_id_format(const uint8_t id[OVC_KEY_ID_BYTES], char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; i < OVC_KEY_ID_BYTES; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[id[i] >> 4];
		out[o++] = hex[id[i] & 0x0f];
	}
	out[o] = '\0';
}

/* A random RFC 9562 version 4 id. */
static void key_id_random(uint8_t id[OVC_KEY_ID_BYTES])
{
	randombytes_buf(id, OVC_KEY_ID_BYTES);
	id[6] = (uint8_t)((id[6] & 0x0f) | 0x40); /* version 4 */
	id[8] = (uint8_t)((id[8] & 0x3f) | 0x80); /* variant 10 */
}

/* ---------------------------------------------------------------------------
 * Key sets. The struct is plain memory (it holds no secret); the keys live
 * in one sodium_malloc slab that is replaced, never realloc()ed, to grow.
 */
ovc_keyset *ovc_keyset_new(size_t cap)
{
	ovc_keyset *ks;

	if (cap > SIZE_MAX / sizeof(ovc_key))
		return NULL;
	ks = calloc(1, sizeof(*ks));
	if (!ks)
		return NULL;
	ks->keys = ovc_secret_alloc(cap * sizeof(ovc_key));
	if (!ks->keys) {
		free(ks);
		return NULL;
	}
	ks->cap = cap;
	return ks;
}

void ovc_keyset_free(ovc_keyset *ks)
{
	if (!ks)
		return;
	ovc_secret_free(ks->keys); /* sodium_free wipes the whole slab */
	free(ks);
}

/* Make room for one more key: a new slab, the keys copied, the old slab
 * wiped and freed. */
static int keyset_reserve(ovc_keyset *ks)
{
	ovc_key *nk;
	size_t ncap;

	if (ks->n < ks->cap)
		return 0;
	ncap = ks->cap < KEYSET_MIN_GROW ? KEYSET_MIN_GROW : ks->cap * 2;
	if (ncap < ks->cap || ncap > SIZE_MAX / sizeof(ovc_key))
		return -ENOMEM;
	nk = ovc_secret_alloc(ncap * sizeof(ovc_key));
	if (!nk)
		return -ENOMEM;
	if (ks->n)
		memcpy(nk, ks->keys, ks->n * sizeof(ovc_key));
	ovc_secret_free(ks->keys);
	ks->keys = nk;
	ks->cap = ncap;
	return 0;
}

const ovc_key *ovc_keyset_find(const ovc_keyset *ks,
			       const uint8_t id[OVC_KEY_ID_BYTES])
{
	size_t i;

	if (!ks)
		return NULL;
	for (i = 0; i < ks->n; i++)
		if (memcmp(ks->keys[i].id, id, OVC_KEY_ID_BYTES) == 0)
			return &ks->keys[i];
	return NULL;
}

int ovc_keyset_generate(ovc_keyset *ks, const ovc_key **added)
{
	ovc_key *k;
	int rc;

	rc = keyset_reserve(ks);
	if (rc)
		return rc;
	k = &ks->keys[ks->n];
	do
		key_id_random(k->id);
	while (ovc_keyset_find(ks, k->id));
	randombytes_buf(k->key, sizeof(k->key));
	ks->n++;
	if (added)
		*added = k;
	return 0;
}

int ovc_keyset_add(ovc_keyset *ks, const ovc_key *k)
{
	const ovc_key *have;
	int rc;

	/* Looked up first: a `k` that points into the set always finds
	 * itself, so the slab is never replaced under it. */
	have = ovc_keyset_find(ks, k->id);
	if (have)
		return sodium_memcmp(have->key, k->key, OVC_KEY_BYTES) == 0 ?
			       0 : -EEXIST;
	rc = keyset_reserve(ks);
	if (rc)
		return rc;
	memcpy(&ks->keys[ks->n], k, sizeof(*k));
	ks->n++;
	return 0;
}

/* ---------------------------------------------------------------------------
 * Keys-file JSON: parse.
 */

/* The string member `name` of `obj`; missing is an error when `required`. */
static int get_string(const cJSON *obj, const char *name, int required,
		      const char *where, const cJSON **out, ovc_err *e)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, name);

	*out = NULL;
	if (!m)
		return required ? ovc_err_set(e, -EINVAL, "%s%s: missing",
					      where, name) : 0;
	if (!cJSON_IsString(m) || !m->valuestring)
		return ovc_err_set(e, -EINVAL, "%s%s: not a string", where,
				   name);
	*out = m;
	return 0;
}

/* Why did `b64` not decode into 32 bytes: too long, or not base64? Decoded
 * again into scratch wiping memory, since sodium_base642bin() reports both
 * alike when its output is full. */
static int decode_key_error(const char *b64, size_t b64_len,
			    const char *where, ovc_err *e)
{
	size_t cap = b64_len / 4 * 3 + 3, bin_len = 0;
	uint8_t *tmp = ovc_wipe_malloc(cap);
	int ok;

	if (!tmp)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	ok = sodium_base642bin(tmp, cap, b64, b64_len, NULL, &bin_len, NULL,
			       sodium_base64_VARIANT_ORIGINAL) == 0;
	ovc_wipe_free(tmp);
	if (ok)
		return ovc_err_set(e, -EINVAL, "%skey: %zu bytes, not %d",
				   where, bin_len, OVC_KEY_BYTES);
	return ovc_err_set(e, -EINVAL, "%skey: not valid base64", where);
}

/* Decode base64 `b64` into exactly OVC_KEY_BYTES at `key` (secret memory:
 * the key goes straight into the slab). */
static int decode_key(const char *b64, uint8_t key[OVC_KEY_BYTES],
		      const char *where, ovc_err *e)
{
	size_t b64_len = strlen(b64), bin_len = 0;

	if (sodium_base642bin(key, OVC_KEY_BYTES, b64, b64_len, NULL, &bin_len,
			      NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
		sodium_memzero(key, OVC_KEY_BYTES);
		return decode_key_error(b64, b64_len, where, e);
	}
	if (bin_len != OVC_KEY_BYTES) {
		sodium_memzero(key, OVC_KEY_BYTES);
		return ovc_err_set(e, -EINVAL, "%skey: %zu bytes, not %d",
				   where, bin_len, OVC_KEY_BYTES);
	}
	return 0;
}

static const char *const key_members[] = { "key_id", "key", "asset",
					   "user", "created", "current", NULL };

/* Parse keys[i] into the next free slot of `ks` (room reserved by the
 * caller); the slot is counted only when all of it checked out. */
static int parse_key_entry(const cJSON *item, size_t i, ovc_keyset *ks,
			   ovc_err *e)
{
	const cJSON *id_s, *key_s, *opt;
	const ovc_key *dup;
	ovc_key *k = &ks->keys[ks->n];
	char where[40];
	int rc;

	snprintf(where, sizeof(where), "keys[%zu].", i);
	if (!cJSON_IsObject(item))
		return ovc_err_set(e, -EINVAL, "keys[%zu]: not an object", i);
	rc = ovc_json_check_members(item, key_members, where, e);
	if (!rc)
		rc = get_string(item, "key_id", 1, where, &id_s, e);
	if (!rc)
		rc = get_string(item, "key", 1, where, &key_s, e);
	if (!rc)
		rc = get_string(item, "asset", 0, where, &opt, e);
	if (!rc)
		rc = get_string(item, "user", 0, where, &opt, e);
	if (!rc)
		rc = get_string(item, "created", 0, where, &opt, e);
	opt = cJSON_GetObjectItemCaseSensitive(item, "current");
	if (!rc && opt && !cJSON_IsBool(opt))
		rc = ovc_err_set(e, -EINVAL, "%scurrent: not true or false", where);
	if (rc)
		return rc;
	if (ovc_key_id_parse(id_s->valuestring, k->id) != 0)
		return ovc_err_set(e, -EINVAL, "%skey_id: not a UUID", where);
	dup = ovc_keyset_find(ks, k->id);
	if (dup)
		return ovc_err_set(e, -EINVAL,
				   "%skey_id: the same key id as keys[%zu]",
				   where, (size_t)(dup - ks->keys));
	rc = decode_key(key_s->valuestring, k->key, where, e);
	if (rc)
		return rc;
	ks->n++;
	return 0;
}

static const char *const top_members[] = { "format", "keys", NULL };

static int parse_tree(const cJSON *root, ovc_keyset **out, ovc_err *e)
{
	const cJSON *fmt, *keys, *item;
	ovc_keyset *ks = NULL;
	size_t i = 0;
	int rc;

	if (!cJSON_IsObject(root))
		return ovc_err_set(e, -EINVAL, "top level: not a JSON object");
	rc = ovc_json_check_members(root, top_members, "", e);
	if (!rc)
		rc = get_string(root, "format", 1, "", &fmt, e);
	if (rc)
		return rc;
	if (strcmp(fmt->valuestring, KEYS_FORMAT) != 0)
		return ovc_err_set(e, -EINVAL, "format: not \"%s\"",
				   KEYS_FORMAT);
	keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
	if (!keys)
		return ovc_err_set(e, -EINVAL, "keys: missing");
	if (!cJSON_IsArray(keys))
		return ovc_err_set(e, -EINVAL, "keys: not an array");
	ks = ovc_keyset_new((size_t)cJSON_GetArraySize(keys));
	if (!ks)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	cJSON_ArrayForEach(item, keys) {
		rc = keyset_reserve(ks);
		if (rc) {
			ovc_err_set(e, rc, "out of memory");
			break;
		}
		rc = parse_key_entry(item, i++, ks, e);
		if (rc)
			break;
	}
	if (rc) {
		ovc_keyset_free(ks);
		return rc;
	}
	*out = ks;
	return 0;
}

/* Only JSON white space in `n` bytes at `p`? */
static int only_space(const char *p, size_t n)
{
	for (; n; p++, n--)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			return 0;
	return 1;
}

int ovc_keyset_parse_json(const char *json, size_t len, ovc_keyset **out,
			  ovc_err *e)
{
	const char *end = NULL;
	cJSON *root;
	int rc;

	*out = NULL;
	root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	if (!root)
		return ovc_err_set(e, -EINVAL, "not valid JSON");
	if (!only_space(end, (size_t)(json + len - end))) {
		cJSON_Delete(root);
		return ovc_err_set(e, -EINVAL, "text after the JSON object");
	}
	rc = parse_tree(root, out, e);
	cJSON_Delete(root); /* the wiping allocator clears the key text */
	return rc;
}

/* ---------------------------------------------------------------------------
 * Keys-file JSON: format.
 */
static int add_key_object(cJSON *arr, const ovc_key *k)
{
	char id[OVC_KEY_ID_STRLEN + 1];
	char b64[KEY_B64_LEN + 1];
	cJSON *obj;
	int rc = -ENOMEM;

	obj = cJSON_CreateObject();
	if (!obj)
		return -ENOMEM;
	if (!cJSON_AddItemToArray(arr, obj)) {
		cJSON_Delete(obj);
		return -ENOMEM;
	}
	ovc_key_id_format(k->id, id);
	sodium_bin2base64(b64, sizeof(b64), k->key, OVC_KEY_BYTES,
			  sodium_base64_VARIANT_ORIGINAL);
	if (cJSON_AddStringToObject(obj, "key_id", id) &&
	    cJSON_AddStringToObject(obj, "key", b64))
		rc = 0;
	sodium_memzero(b64, sizeof(b64));
	return rc;
}

static cJSON *keyset_to_tree(const ovc_keyset *ks)
{
	cJSON *root, *arr;
	size_t i;

	root = cJSON_CreateObject();
	if (!root)
		return NULL;
	if (!cJSON_AddStringToObject(root, "format", KEYS_FORMAT))
		goto fail;
	arr = cJSON_AddArrayToObject(root, "keys");
	if (!arr)
		goto fail;
	for (i = 0; i < ks->n; i++)
		if (add_key_object(arr, &ks->keys[i]) != 0)
			goto fail;
	return root;
fail:
	cJSON_Delete(root);
	return NULL;
}

int ovc_keyset_format_json(const ovc_keyset *ks, char **out, size_t *len)
{
	cJSON *root;
	char *text = NULL, *buf;
	size_t n;
	int rc = -ENOMEM;

	*out = NULL;
	*len = 0;
	root = keyset_to_tree(ks);
	if (!root)
		return -ENOMEM;
	text = cJSON_Print(root);
	if (!text)
		goto out;
	/* Copied so the result's allocator is ours whatever cJSON used. */
	n = strlen(text);
	buf = ovc_wipe_malloc(n + 2);
	if (!buf)
		goto out;
	memcpy(buf, text, n);
	buf[n] = '\n';
	buf[n + 1] = '\0';
	*out = buf;
	*len = n + 1;
	rc = 0;
out:
	if (text) {
		sodium_memzero(text, strlen(text));
		cJSON_free(text);
	}
	cJSON_Delete(root);
	return rc;
}

/* ---------------------------------------------------------------------------
 * Files.
 */

/* Decrypt an age key export with `passphrase`; *plain from ovc_wipe_malloc. */
static int decrypt_export(const uint8_t *in, size_t len,
			  const char *passphrase, uint8_t **plain,
			  size_t *plain_len, ovc_err *e)
{
	const char *const passes[1] = { passphrase };
	ovc_age_decrypt_opts o = {
		.passphrases = passes,
		.n_passphrases = 1,
		.max_scrypt_log_n = OVC_AGE_SCRYPT_LOGN_MAX,
	};
	enum ovc_age_status st = OVC_AGE_OK;
	int rc;

	rc = ovc_age_decrypt_buf(&o, in, len, KEYS_FILE_MAX, plain, plain_len,
				 &st, e);
	if (rc == -ENOKEY)
		return ovc_err_set(e, -EBADMSG,
				   "wrong passphrase, or not a passphrase-"
				   "encrypted key file");
	if (rc)
		return ovc_err_wrap(e, rc, "age: ");
	return 0;
}

int ovc_keyset_load(const char *path, const char *passphrase,
		    ovc_keyset **out, ovc_err *e)
{
	uint8_t *raw = NULL, *plain = NULL;
	size_t raw_len = 0, plain_len = 0;
	int rc;

	*out = NULL;
	rc = ovc_read_file(path, KEYS_FILE_MAX, 1, &raw, &raw_len);
	if (rc)
		return ovc_err_set(e, rc, "cannot read: %s", strerror(-rc));
	if (!ovc_age_is_age(raw, raw_len)) {
		rc = ovc_keyset_parse_json((const char *)raw, raw_len, out, e);
		goto out;
	}
	if (!passphrase) {
		rc = ovc_err_set(e, -ENOKEY, "needs a passphrase");
		goto out;
	}
	rc = decrypt_export(raw, raw_len, passphrase, &plain, &plain_len, e);
	if (!rc)
		rc = ovc_keyset_parse_json((const char *)plain, plain_len, out,
					   e);
out:
	ovc_wipe_free(plain);
	ovc_wipe_free(raw);
	return rc;
}

int ovc_keyset_save(const char *path, const ovc_keyset *ks, ovc_err *e)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	rc = ovc_keyset_format_json(ks, &text, &len);
	if (rc)
		return ovc_err_set(e, rc, "out of memory");
	rc = ovc_write_file_atomic(path, text, len, 0600, 1);
	ovc_wipe_free(text);
	if (rc == -EEXIST)
		return ovc_err_set(e, rc, "already exists");
	if (rc)
		return ovc_err_set(e, rc, "cannot write: %s", strerror(-rc));
	return 0;
}
