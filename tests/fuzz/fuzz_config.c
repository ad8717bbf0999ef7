/* fuzz_config.c - libFuzzer target for ovc_config_load_mem().
 *
 * The first byte picks the mode; the rest is the file. Any input either
 * loads (with no message, every required field set and every path
 * absolute) or is refused with -EINVAL and at least one message; every
 * message is "overcrypt.conf: ...", "overcrypt.conf:N: ..." with a line
 * that exists, or an environment message (no file). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "daemon/config.h"

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

static void messages_ok(const ovc_diag *d, const uint8_t *data, size_t size)
{
	size_t lines = 1;

	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	for (size_t i = 0; i < d->n; i++) {
		const char *m = d->lines[i];
		char *end;
		unsigned long n;

		if (strncmp(m, "overcrypt.conf:", 15) != 0)
			continue;       /* an environment message */
		if (m[15] == ' ')
			continue;
		n = strtoul(m + 15, &end, 10);
		if (end == m + 15 || *end != ':' || n < 1 || n > lines)
			abort();
	}
}

static void absolute(const char *p)
{
	if (p && p[0] != '/')
		abort();
}

static void config_ok(const ovc_config *c)
{
	size_t n;

	if (!c->policy_url || !c->norg_public_keys ||
	    c->norg_public_keys > OVC_CONFIG_MAX_ORG_KEYS || !c->cache_dir || !c->runtime_dir)
		abort();
	n = strlen(c->policy_url);
	if (!n || c->policy_url[n - 1] != '/')
		abort();
	if (!c->client_cert != !c->client_key)
		abort();
	if (c->mode == OVC_CONFIG_SYSTEM ? (!c->nusers || c->user) : (c->nusers || !c->user))
		abort();
	absolute(c->ca_file);
	absolute(c->client_cert);
	absolute(c->client_key);
	absolute(c->keystore);
	absolute(c->cache_dir);
	absolute(c->runtime_dir);
	for (size_t i = 0; i < c->norg_public_keys; i++)
		absolute(c->org_public_keys[i]);
	for (size_t i = 0; i < c->nmount_paths; i++)
		absolute(c->mount_paths[i]);
	if (strcmp(ovc_log_level_name(c->log_level), "?") == 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ovc_config_opts o = { 0 };
	ovc_config *c = NULL;
	ovc_diag d = { 0 };
	int rc;

	if (size < 1)
		return 0;
	o.mode = data[0] & 1 ? OVC_CONFIG_SYSTEM : OVC_CONFIG_USER;
	o.home = data[0] & 2 ? NULL : "/home/u";
	o.xdg_runtime_dir = data[0] & 4 ? NULL : "/run/user/1000";
	o.login = data[0] & 8 ? "bad login" : "u";
	data++;
	size--;
	rc = ovc_config_load_mem((const char *)data, size, "overcrypt.conf", &o, &c, &d);
	if (rc == -ENOMEM)
		goto out;
	if ((rc == 0) != (c != NULL) || (rc == 0) != (d.n == 0) || (rc != 0 && rc != -EINVAL))
		abort();
	messages_ok(&d, data, size);
	if (c)
		config_ok(c);
out:
	ovc_config_free(c);
	ovc_diag_free(&d);
	return 0;
}
