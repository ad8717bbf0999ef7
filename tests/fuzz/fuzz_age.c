/* fuzz_age.c - libFuzzer target for the age reader: armor, header grammar,
 * stanzas, header MAC and STREAM payload, with a fixed X25519 identity (the
 * test kit's) and a passphrase whose scrypt cost is capped at 2^2 so that
 * every input stays fast. Also feeds the identity and recipient parsers.
 *
 * Invariants checked: a success or a payload failure is the only way
 * plaintext comes out; status and return code agree. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "crypto/age.h"

#define TESTKIT_IDENTITY \
	"AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_sink(void *ctx, const uint8_t *d, size_t len)
{
	size_t *n = ctx;

	(void)d;
	*n += len;
	return 0;
}

static void fuzz_decrypt(const ovc_age_identity *id, const uint8_t *data,
			 size_t size)
{
	const char *passes[] = { "password" };
	const ovc_age_identity *ids[] = { id };
	ovc_age_decrypt_opts o = { .identities = ids, .n_identities = 1,
				   .passphrases = passes, .n_passphrases = 1,
				   .max_scrypt_log_n = 2 };
	enum ovc_age_status st;
	uint8_t *out = NULL;
	size_t out_len = 0, released = 0;
	ovc_err e;
	int rc;

	rc = ovc_age_decrypt(&o, data, size, count_sink, &released, &st, &e);
	if ((rc == 0) != (st == OVC_AGE_OK))
		abort();
	if (released && st != OVC_AGE_OK && st != OVC_AGE_PAYLOAD)
		abort();
	rc = ovc_age_decrypt_buf(&o, data, size, 1 << 20, &out, &out_len, &st,
				 &e);
	if (rc == 0 && (!out || out[out_len] != '\0'))
		abort();
	if (rc != 0 && out)
		abort();
	ovc_wipe_free(out);
	(void)ovc_age_is_age(data, size);
}

static void fuzz_keys(const uint8_t *data, size_t size)
{
	ovc_age_identity *id = NULL;
	ovc_age_recipient r;
	char s[128];
	ovc_err e;

	if (ovc_age_identity_parse((const char *)data, size, &id, &e) == 0)
		ovc_age_identity_free(id);
	if (size < sizeof(s)) {
		memcpy(s, data, size);
		s[size] = '\0';
		(void)ovc_age_recipient_parse(s, &r, &e);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ovc_age_identity *id = NULL;
	ovc_err e;

	if (ovc_common_init() != 0)
		abort();
	if (ovc_age_identity_parse(TESTKIT_IDENTITY, strlen(TESTKIT_IDENTITY),
				   &id, &e) != 0)
		abort();
	fuzz_decrypt(id, data, size);
	fuzz_keys(data, size);
	ovc_age_identity_free(id);
	return 0;
}
