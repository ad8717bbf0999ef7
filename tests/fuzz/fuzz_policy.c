/* fuzz_policy.c - libFuzzer target for ovc_policy_parse() and
 * ovc_keysblob_decode(); every input goes to both.
 *
 * A document either parses or is refused with -EINVAL (or -EFBIG, -ENOMEM)
 * and a message; one that parsed serialises to canonical text that parses
 * again and serialises to the same bytes. A keys blob either decodes or is
 * refused with a message; one that decoded encodes back to the input byte
 * for byte (the format has one spelling). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "policy/document.h"

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

static void policy_round_trip(const ovc_policy *p)
{
	char *t1 = NULL, *t2 = NULL;
	size_t n1 = 0, n2 = 0;
	ovc_policy *q = NULL;

	if (ovc_policy_serialize(p, &t1, &n1) != 0)
		abort();
	if (ovc_policy_parse((const uint8_t *)t1, n1, &q, NULL) != 0)
		abort();
	if (ovc_policy_serialize(q, &t2, &n2) != 0)
		abort();
	if (n1 != n2 || memcmp(t1, t2, n1) != 0 || q->serial != p->serial ||
	    q->nrules != p->nrules)
		abort();
	ovc_policy_free(q);
	free(t1);
	free(t2);
}

static void fuzz_policy(const uint8_t *data, size_t size)
{
	ovc_policy *p = NULL;
	ovc_err e;
	int rc;

	ovc_err_clear(&e);
	rc = ovc_policy_parse(data, size, &p, &e);
	if (rc == 0) {
		if (!p)
			abort();
		policy_round_trip(p);
		ovc_policy_free(p);
		return;
	}
	if (p || (rc != -EINVAL && rc != -EFBIG && rc != -ENOMEM) ||
	    e.code != rc || e.msg[0] == '\0')
		abort();
}

static void fuzz_keysblob(const uint8_t *data, size_t size)
{
	ovc_keyset *ks = NULL;
	uint8_t *back = NULL;
	size_t n = 0;
	ovc_err e;
	int rc;

	ovc_err_clear(&e);
	rc = ovc_keysblob_decode(data, size, &ks, &e);
	if (rc == 0) {
		if (!ks || ovc_keysblob_encode(ks, &back, &n) != 0)
			abort();
		if (n != size || memcmp(back, data, n) != 0)
			abort();
		ovc_wipe_free(back);
		ovc_keyset_free(ks);
		return;
	}
	if (ks || (rc != -EINVAL && rc != -EPROTO && rc != -ENOMEM) ||
	    e.code != rc || e.msg[0] == '\0')
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_policy(data, size);
	fuzz_keysblob(data, size);
	return 0;
}
