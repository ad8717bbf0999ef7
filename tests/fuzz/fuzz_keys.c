/* fuzz_keys.c - libFuzzer target for ovc_keyset_parse_json().
 *
 * Any input either parses into a key set or is refused with -EINVAL and a
 * message; a set that parsed formats back to JSON that parses into the same
 * keys. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "crypto/keys.h"

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

static void round_trip(const ovc_keyset *ks)
{
	ovc_keyset *back = NULL;
	char *text = NULL;
	size_t len = 0;

	if (ovc_keyset_format_json(ks, &text, &len) != 0)
		abort();
	if (ovc_keyset_parse_json(text, len, &back, NULL) != 0)
		abort();
	if (back->n != ks->n ||
	    (ks->n && memcmp(back->keys, ks->keys, ks->n * sizeof(ovc_key))))
		abort();
	ovc_keyset_free(back);
	ovc_wipe_free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ovc_keyset *ks = NULL;
	ovc_err e;
	int rc;

	ovc_err_clear(&e);
	rc = ovc_keyset_parse_json((const char *)data, size, &ks, &e);
	if (rc == 0) {
		if (!ks)
			abort();
		round_trip(ks);
		ovc_keyset_free(ks);
		return 0;
	}
	if (ks || (rc != -EINVAL && rc != -ENOMEM) || e.code != rc ||
	    e.msg[0] == '\0')
		abort();
	return 0;
}
