/* fuzz_orgconf.c - libFuzzer target for ovc_org_load_mem() and
 * ovc_org_check().
 *
 * Any input either loads or is refused with -EINVAL and at least one
 * message; every message names the file and, when it has one, a line that
 * exists. A loaded org checks (0, or -EINVAL with messages), and the
 * queries answer consistently: every asset a user gets is assigned to the
 * user directly or through a group the user is in. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "policy/orgconf.h"

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

/* Every message is "org.conf: ..." or "org.conf:N: ..." with 1 <= N <=
 * the number of lines. */
static void messages_ok(const ovc_diag *d, size_t first, const uint8_t *data, size_t size)
{
	size_t lines = 1;

	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	for (size_t i = first; i < d->n; i++) {
		const char *m = d->lines[i];
		char *end;
		unsigned long n;

		if (strncmp(m, "org.conf:", 9) != 0)
			abort();
		if (m[9] == ' ')
			continue;
		n = strtoul(m + 9, &end, 10);
		if (end == m + 9 || *end != ':' || n < 1 || n > lines)
			abort();
	}
}

static int assigned(const ovc_org *org, const ovc_org_user *u, const ovc_org_asset *a)
{
	for (size_t i = 0; i < a->nusers; i++)
		if (!strcmp(a->users[i], u->name))
			return 1;
	for (size_t i = 0; i < a->ngroups; i++)
		if (ovc_org_user_in_group(org, u->name, a->groups[i]))
			return 1;
	return 0;
}

static void queries_ok(const ovc_org *org)
{
	for (size_t i = 0; i < org->nusers && i < 64; i++) {
		const ovc_org_user *u = &org->users[i];
		const ovc_org_asset **v = NULL;
		size_t n = 0;

		if (ovc_org_find_user(org, u->name) != u)
			abort();
		if (ovc_org_user_assets(org, u->name, &v, &n) != 0)
			abort();
		for (size_t k = 0; k < n; k++)
			if ((k && v[k] <= v[k - 1]) || !assigned(org, u, v[k]))
				abort();
		free(v);
		/* a direct member is in the group */
		for (size_t g = 0; g < org->ngroups && g < 64; g++)
			for (size_t m = 0; m < org->groups[g].nmembers; m++)
				if (!strcmp(org->groups[g].members[m], u->name) &&
				    !ovc_org_user_in_group(org, u->name, org->groups[g].name))
					abort();
	}
	for (size_t i = 0; i < org->nassets; i++)
		if (ovc_org_find_asset(org, org->assets[i].name) != &org->assets[i])
			abort();
	for (size_t i = 0; i < org->ngroups; i++)
		if (ovc_org_find_group(org, org->groups[i].name) != &org->groups[i])
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const ovc_org_known_asset known[] = {
		{ "marketing", OVC_RULE_PUBLIC }, { "home", OVC_RULE_PRIVATE } };
	ovc_diag d = { 0 };
	ovc_org *org = NULL;
	size_t before;
	int rc;

	rc = ovc_org_load_mem((const char *)data, size, "org.conf", &org, &d);
	if (rc == -ENOMEM)
		goto out;
	if ((rc == 0) != (org != NULL) || (rc == 0) != (d.n == 0) ||
	    (rc != 0 && rc != -EINVAL))
		abort();
	messages_ok(&d, 0, data, size);
	if (!org)
		goto out;
	before = d.n;
	rc = ovc_org_check(org, known, 2, &d);
	if (rc != -ENOMEM && (rc == 0) != (d.n == before))
		abort();
	messages_ok(&d, before, data, size);
	queries_ok(org);
out:
	ovc_org_free(org);
	ovc_diag_free(&d);
	return 0;
}
