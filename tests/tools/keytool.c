/*
 * keytool - a tiny driver over crypto/keys.c and crypto/keystore.c for the
 * integration tests (interop with stock age). Not installed.
 *
 *   keytool load FILE [PASSFILE]
 *       load a keys file (plain JSON, or an age passphrase file holding it:
 *       the passphrase is the first line of PASSFILE); prints the key ids,
 *       one per line, in file order.
 *   keytool keystore-create PATH PASSFILE [USER]
 *       create a keystore; prints its recipient (age1…).
 *   keytool keystore-unlock PATH PASSFILE
 *       open a keystore; prints its recipient.
 *
 * Exit codes: 0 success, 1 failure (reason on stderr), 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "crypto/age.h"
#include "crypto/keys.h"
#include "crypto/keystore.h"

#define PASSFILE_MAX 4096

static int fail(const char *what, int rc, const ovc_err *e)
{
	fprintf(stderr, "keytool: %s: %s\n", what,
		e && e->msg[0] ? e->msg : strerror(-rc));
	return 1;
}

/* The first line of `path` (without its line end), in wiping memory:
 * the caller frees it with ovc_wipe_free(). */
static int read_passphrase(const char *path, char **out)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	rc = ovc_read_file(path, PASSFILE_MAX, 1, &buf, &len);
	if (rc)
		return rc;
	buf[strcspn((char *)buf, "\r\n")] = '\0';
	*out = (char *)buf;
	return 0;
}

static int print_recipient(const ovc_age_identity *id)
{
	char text[OVC_AGE_RECIPIENT_STRLEN + 1];
	ovc_age_recipient r;

	ovc_age_identity_recipient(id, &r);
	ovc_age_recipient_encode(&r, text);
	return printf("%s\n", text) < 0 ? 1 : 0;
}

static int cmd_load(const char *path, const char *passfile)
{
	char id[OVC_KEY_ID_STRLEN + 1];
	ovc_keyset *ks = NULL;
	char *pass = NULL;
	ovc_err e;
	size_t i;
	int rc, ret = 1;

	ovc_err_clear(&e);
	if (passfile) {
		rc = read_passphrase(passfile, &pass);
		if (rc) {
			fail(passfile, rc, NULL);
			goto out;
		}
	}
	rc = ovc_keyset_load(path, pass, &ks, &e);
	if (rc) {
		fail(path, rc, &e);
		goto out;
	}
	ret = 0;
	for (i = 0; i < ks->n; i++) {
		ovc_key_id_format(ks->keys[i].id, id);
		if (printf("%s\n", id) < 0)
			ret = 1;
	}
out:
	ovc_keyset_free(ks);
	ovc_wipe_free(pass);
	return ret;
}

static int cmd_keystore(int create, const char *path, const char *passfile,
			const char *user)
{
	ovc_age_identity *id = NULL;
	char *pass = NULL;
	ovc_err e;
	int rc, ret = 1;

	ovc_err_clear(&e);
	rc = read_passphrase(passfile, &pass);
	if (rc) {
		fail(passfile, rc, NULL);
		goto out;
	}
	if (create)
		rc = ovc_keystore_create(path, pass, user, &id, &e);
	else
		rc = ovc_keystore_unlock(path, pass, 0, &id, &e);
	if (rc) {
		fail(path, rc, &e);
		goto out;
	}
	ret = print_recipient(id);
out:
	ovc_age_identity_free(id);
	ovc_wipe_free(pass);
	return ret;
}

static int usage(void)
{
	fprintf(stderr, "usage: keytool load FILE [PASSFILE]\n"
			"       keytool keystore-create PATH PASSFILE [USER]\n"
			"       keytool keystore-unlock PATH PASSFILE\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (ovc_common_init() != 0) {
		fprintf(stderr, "keytool: cannot initialise libsodium\n");
		return 1;
	}
	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "load") == 0 && (argc == 3 || argc == 4))
		return cmd_load(argv[2], argc == 4 ? argv[3] : NULL);
	if (strcmp(argv[1], "keystore-create") == 0 &&
	    (argc == 4 || argc == 5))
		return cmd_keystore(1, argv[2], argv[3],
				    argc == 5 ? argv[4] : NULL);
	if (strcmp(argv[1], "keystore-unlock") == 0 && argc == 4)
		return cmd_keystore(0, argv[2], argv[3], NULL);
	return usage();
}
