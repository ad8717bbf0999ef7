/*
 * fuzz_minisign.c - libFuzzer target for crypto/minisign.c's parsers.
 *
 * Each input is parsed as a public key (file or bare form) and verified as
 * a .minisig text over a fixed message with a fixed pinned key (the golden
 * key of tests/unit/test_minisign.c), plus the parsed key when the input
 * was one. The seeds hold that key's .pub and a valid .minisig of the
 * message, so mutations start from inputs that reach the signature checks.
 * The input buffer is passed with its exact length and no NUL after it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "crypto/minisign.h"

static const char MSG[] = "overcrypt golden message\n";

/* Ed25519 seed 00..1f, key id 01 23 45 67 89 ab cd ef. */
static const ovc_minisign_pubkey FIXED = {
	.key_id = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef },
	.pk = { 0x03, 0xa1, 0x07, 0xbf, 0xf3, 0xce, 0x10, 0xbe,
		0x1d, 0x70, 0xdd, 0x18, 0xe7, 0x4b, 0xc0, 0x99,
		0x67, 0xe4, 0xd6, 0x30, 0x9b, 0xa5, 0x0d, 0x5f,
		0x1d, 0xdc, 0x86, 0x64, 0x12, 0x55, 0x31, 0xb8 },
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (ovc_common_init() != 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ovc_minisign_pubkey pks[2] = { FIXED };
	size_t n = 1;
	char *tc = NULL;
	ovc_err e;
	int rc;

	ovc_err_clear(&e);
	rc = ovc_minisign_pubkey_parse((const char *)data, size, &pks[1], &e);
	if (rc == 0)
		n = 2;
	else if (rc != -EINVAL || e.msg[0] == '\0')
		abort();

	ovc_err_clear(&e);
	rc = ovc_minisign_verify(pks, n, (const uint8_t *)MSG, sizeof(MSG) - 1,
				 (const char *)data, size, &tc, &e);
	if (rc == 0) {
		if (!tc || strlen(tc) > 8173)
			abort();
	} else if ((rc != -EINVAL && rc != -ENOKEY && rc != -EBADMSG) ||
		   e.msg[0] == '\0' || tc) {
		abort();
	}
	free(tc);
	return 0;
}
