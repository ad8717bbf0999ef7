/* fuzz_agentstate.c - libFuzzer target for the agent's state folder: the
 * files ovc_user_new() reads at start (state.json, rules.json, and a
 * cached policy.json with its signature).
 *
 * The first byte picks the file the rest is written to (the others are
 * removed); then the user is created, its status built, and it is freed.
 * Whatever the bytes, start-up must succeed (a bad file is logged and
 * ignored, never fatal), and a cached policy that is not signed by the
 * pinned key must never be applied. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "crypto/minisign.h"
#include "daemon/log.h"
#include "daemon/user.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static ovc_minisign_pubkey pk;
static ovc_views *views;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	ovc_minisign_seckey *sk = NULL;

	(void)argc;
	(void)argv;
	if (ovc_common_init() != 0 || ovc_minisign_keygen(&sk, &pk) != 0)
		abort();
	ovc_minisign_seckey_free(sk);
	snprintf(dir, sizeof(dir), "/tmp/fuzz-agentstate.XXXXXX");
	if (!mkdtemp(dir) || !(views = ovc_views_new()))
		abort();
	ovc_log_init(OVC_LOG_SILENT);
	return 0;
}

static void put(const char *name, const uint8_t *data, size_t size)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if (data) {
		if (ovc_write_file_atomic(p, data, size, 0600, 0) != 0)
			abort();
	} else {
		unlink(p);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const files[] = { "state.json", "rules.json", "policy.json" };
	static const char sig[] = "untrusted comment: x\nRWQAAAAAAAAAAA==\n";
	ovc_user_opts o = { 0 };
	ovc_user *u = NULL;
	ovc_err e = { 0 };
	cJSON *st;
	unsigned which;

	if (size < 1)
		return 0;
	which = data[0] % 3;
	for (unsigned i = 0; i < 3; i++)
		put(files[i], i == which ? data + 1 : NULL, size - 1);
	put("policy.json.minisig", which == 2 ? (const uint8_t *)sig : NULL, sizeof(sig) - 1);
	o.name = "alice";
	o.uid = 1000;
	o.state_dir = dir;
	o.source = "file:///nonexistent/";
	o.pks = &pk;
	o.npks = 1;
	o.views = views;
	if (ovc_user_new(&o, 1800000000, &u, &e) != 0)
		abort();
	st = ovc_user_status(u, 1800000000);
	if (!st)
		abort();
	/* a policy never comes from an unsigned cache */
	if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(st, "policy")))
		abort();
	cJSON_Delete(st);
	ovc_user_free(u);
	return 0;
}
