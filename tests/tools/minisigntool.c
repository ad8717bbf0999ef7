/*
 * minisigntool - a tiny driver over crypto/minisign.c for the integration
 * tests (interop with stock minisign). Not installed.
 *
 *   minisigntool keygen PUBFILE SECFILE
 *       new key pair; SECFILE gets the 72 raw bytes of
 *       ovc_minisign_seckey_encode (mode 0600); neither file may exist.
 *   minisigntool sign SECFILE FILE [TRUSTED_COMMENT]
 *       writes FILE.minisig (prehashed form).
 *   minisigntool verify PUBFILE FILE [SIGFILE]
 *       PUBFILE is a .pub file or a bare base64 key; SIGFILE defaults to
 *       FILE.minisig. Exit 0 when valid, 1 with the reason on stderr.
 *
 * Exit codes: 0 success, 1 failure, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "crypto/minisign.h"

#define MSG_MAX ((size_t)1 << 30)
#define KEYFILE_MAX 4096
#define SIGFILE_MAX 16384

static int fail(const char *what, int rc, const ovc_err *e)
{
	fprintf(stderr, "minisigntool: %s: %s\n", what,
		e && e->msg[0] ? e->msg : strerror(-rc));
	return 1;
}

static int cmd_keygen(const char *pub_path, const char *sec_path)
{
	ovc_minisign_seckey *sk = NULL;
	ovc_minisign_pubkey pk;
	uint8_t *raw = NULL;
	char *pub = NULL;
	int rc, ret = 1;

	rc = ovc_minisign_keygen(&sk, &pk);
	if (rc) {
		fail("keygen", rc, NULL);
		goto out;
	}
	rc = ovc_minisign_pubkey_format(&pk, &pub);
	raw = ovc_secret_alloc(OVC_MINISIGN_SECKEY_BYTES);
	if (rc || !raw) {
		fail("keygen", rc ? rc : -ENOMEM, NULL);
		goto out;
	}
	ovc_minisign_seckey_encode(sk, raw);
	rc = ovc_write_file_atomic(sec_path, raw, OVC_MINISIGN_SECKEY_BYTES,
				   0600, 1);
	if (rc) {
		fail(sec_path, rc, NULL);
		goto out;
	}
	rc = ovc_write_file_atomic(pub_path, pub, strlen(pub), 0644, 1);
	if (rc) {
		fail(pub_path, rc, NULL);
		goto out;
	}
	ret = 0;
out:
	free(pub);
	ovc_secret_free(raw);
	ovc_minisign_seckey_free(sk);
	return ret;
}

static int cmd_sign(const char *sec_path, const char *path, const char *tc)
{
	ovc_minisign_seckey *sk = NULL;
	uint8_t *raw = NULL, *msg = NULL;
	char *sig = NULL, *sig_path = NULL;
	size_t raw_len, msg_len;
	ovc_err e;
	int rc, ret = 1;

	ovc_err_clear(&e);
	rc = ovc_read_file(sec_path, KEYFILE_MAX, 1, &raw, &raw_len);
	if (rc == 0)
		rc = ovc_minisign_seckey_decode(raw, raw_len, &sk, &e);
	if (rc) {
		fail(sec_path, rc, &e);
		goto out;
	}
	rc = ovc_read_file(path, MSG_MAX, 0, &msg, &msg_len);
	if (rc) {
		fail(path, rc, NULL);
		goto out;
	}
	rc = ovc_minisign_sign(sk, msg, msg_len, tc, &sig);
	if (rc) {
		fail("sign", rc, NULL);
		goto out;
	}
	if (asprintf(&sig_path, "%s.minisig", path) < 0) {
		sig_path = NULL;
		fail("sign", -ENOMEM, NULL);
		goto out;
	}
	rc = ovc_write_file_atomic(sig_path, sig, strlen(sig), 0644, 0);
	if (rc) {
		fail(sig_path, rc, NULL);
		goto out;
	}
	ret = 0;
out:
	free(sig_path);
	free(sig);
	free(msg);
	ovc_wipe_free(raw);
	ovc_minisign_seckey_free(sk);
	return ret;
}

static int cmd_verify(const char *pub_path, const char *path,
		      const char *sig_path)
{
	uint8_t *pub = NULL, *msg = NULL, *sig = NULL;
	size_t pub_len, msg_len, sig_len;
	ovc_minisign_pubkey pk;
	char *tc = NULL, *def_sig = NULL;
	ovc_err e;
	int rc, ret = 1;

	ovc_err_clear(&e);
	if (!sig_path) {
		if (asprintf(&def_sig, "%s.minisig", path) < 0) {
			def_sig = NULL;
			fail("verify", -ENOMEM, NULL);
			goto out;
		}
		sig_path = def_sig;
	}
	rc = ovc_read_file(pub_path, KEYFILE_MAX, 0, &pub, &pub_len);
	if (rc == 0)
		rc = ovc_minisign_pubkey_parse((char *)pub, pub_len, &pk, &e);
	if (rc) {
		fail(pub_path, rc, &e);
		goto out;
	}
	rc = ovc_read_file(sig_path, SIGFILE_MAX, 0, &sig, &sig_len);
	if (rc) {
		fail(sig_path, rc, NULL);
		goto out;
	}
	rc = ovc_read_file(path, MSG_MAX, 0, &msg, &msg_len);
	if (rc) {
		fail(path, rc, NULL);
		goto out;
	}
	rc = ovc_minisign_verify(&pk, 1, msg, msg_len, (char *)sig, sig_len,
				 &tc, &e);
	if (rc) {
		fail(sig_path, rc, &e);
		goto out;
	}
	printf("Signature and comment signature verified\n"
	       "Trusted comment: %s\n", tc);
	ret = fflush(stdout) == 0 ? 0 : 1;
out:
	free(tc);
	free(def_sig);
	free(sig);
	free(msg);
	free(pub);
	return ret;
}

static int usage(void)
{
	fprintf(stderr, "usage: minisigntool keygen PUBFILE SECFILE\n"
		"       minisigntool sign SECFILE FILE [TRUSTED_COMMENT]\n"
		"       minisigntool verify PUBFILE FILE [SIGFILE]\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (ovc_common_init() != 0) {
		fprintf(stderr, "minisigntool: cannot initialise libsodium\n");
		return 1;
	}
	if (argc == 4 && strcmp(argv[1], "keygen") == 0)
		return cmd_keygen(argv[2], argv[3]);
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "sign") == 0)
		return cmd_sign(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "verify") == 0)
		return cmd_verify(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
	return usage();
}
