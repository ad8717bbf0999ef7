/*
 * policytool - a driver over policy/document.c for the integration tests.
 * Not installed.
 *
 *   policytool verify PUBFILE[,PUBFILE2] DOC SIG [--user U] [--org O]
 *                     [--seen-serial N] [--seen-digest HEX] [--now T]
 *       The client's checks in order: signature with the pinned key(s)
 *       (two for a rollover), strict parse, user and org (default: the
 *       document's own, i.e. not checked), serial against N (default 0:
 *       none seen; with N but no --seen-digest, the document seen with
 *       serial N is taken to be this one, so only a lower serial fails),
 *       valid_until against T (Unix seconds or 2026-11-22T10:00:00Z;
 *       default now). Prints "ok serial N" and exits 0, or the error on
 *       stderr and exits 1. The digest (--seen-digest) is the SHA-256 of
 *       the document file's bytes.
 *   policytool keys DOC IDENTITYFILE
 *       Parses DOC (no signature check), opens its keys blob with the age
 *       identity and prints the key ids it holds, one a line, in blob order.
 *
 * Exit codes: 0 success, 1 failure, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "common/common.h"
#include "policy/document.h"

#define PUBFILE_MAX 4096
#define SIGFILE_MAX 16384
#define IDFILE_MAX 65536

struct verify_opts {
	const char *user, *org;
	ovc_policy_seen seen;
	int have_digest;
	time_t now;
};

static int fail(const char *what, int rc, const ovc_err *e)
{
	fprintf(stderr, "policytool: %s: %s\n", what,
		e && e->msg[0] ? e->msg : strerror(-rc));
	return 1;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: policytool verify PUBFILE[,PUBFILE2] DOC SIG [--user U] "
		"[--org O] [--seen-serial N] [--seen-digest HEX] [--now T]\n"
		"       policytool keys DOC IDENTITYFILE\n");
	return 2;
}

/* Up to two comma-separated .pub files into pks. */
static int load_pubkeys(const char *list, ovc_minisign_pubkey pks[2],
			size_t *n)
{
	char *copy = strdup(list), *save = NULL, *path;
	int ret = 0;

	*n = 0;
	if (!copy)
		return fail(list, -ENOMEM, NULL);
	for (path = strtok_r(copy, ",", &save); path && !ret;
	     path = strtok_r(NULL, ",", &save)) {
		uint8_t *text = NULL;
		size_t len = 0;
		ovc_err e;
		int rc;

		ovc_err_clear(&e);
		if (*n == 2) {
			ret = fail(list, -E2BIG, NULL);
			break;
		}
		rc = ovc_read_file(path, PUBFILE_MAX, 0, &text, &len);
		if (!rc)
			rc = ovc_minisign_pubkey_parse((char *)text, len,
						       &pks[*n], &e);
		free(text);
		if (rc)
			ret = fail(path, rc, &e);
		else
			(*n)++;
	}
	free(copy);
	if (!ret && *n == 0)
		ret = fail(list, -ENOKEY, NULL);
	return ret;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	if (!*s || *s == '-')
		return -EINVAL;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

static int parse_now(const char *s, time_t *out)
{
	uint64_t v;

	if (ovc_time_parse(s, out) == 0)
		return 0;
	if (parse_u64(s, &v) != 0 || v > (uint64_t)OVC_TIME_MAX)
		return -EINVAL;
	*out = (time_t)v;
	return 0;
}

static int parse_digest(const char *s, uint8_t d[32])
{
	size_t n = 0;

	if (strlen(s) != 64 ||
	    sodium_hex2bin(d, 32, s, 64, NULL, &n, NULL) != 0 || n != 32)
		return -EINVAL;
	return 0;
}

/* One "--name value" pair. */
static int parse_verify_opt(const char *k, const char *val,
			    struct verify_opts *o)
{
	if (strcmp(k, "--user") == 0)
		o->user = val;
	else if (strcmp(k, "--org") == 0)
		o->org = val;
	else if (strcmp(k, "--seen-serial") == 0)
		return parse_u64(val, &o->seen.serial);
	else if (strcmp(k, "--seen-digest") == 0) {
		o->have_digest = 1;
		return parse_digest(val, o->seen.digest);
	} else if (strcmp(k, "--now") == 0)
		return parse_now(val, &o->now);
	else
		return -EINVAL;
	return 0;
}

static int parse_verify_opts(int argc, char **argv, struct verify_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->now = time(NULL);
	if (argc % 2)
		return -EINVAL;
	for (int i = 0; i < argc; i += 2)
		if (parse_verify_opt(argv[i], argv[i + 1], o) != 0)
			return -EINVAL;
	return 0;
}

static int cmd_verify(const char *pubs, const char *doc_path,
		      const char *sig_path, const struct verify_opts *o_in)
{
	struct verify_opts o = *o_in;
	ovc_minisign_pubkey pks[2];
	uint8_t *doc = NULL, *sig = NULL;
	size_t npks = 0, dlen = 0, slen = 0;
	ovc_policy *p = NULL;
	ovc_err e;
	int rc, ret = 1;

	ovc_err_clear(&e);
	if (load_pubkeys(pubs, pks, &npks))
		return 1;
	rc = ovc_read_file(doc_path, OVC_POLICY_MAX_BYTES, 0, &doc, &dlen);
	if (rc == -EFBIG)
		rc = ovc_err_set(&e, rc, "document: more than %u bytes",
				 OVC_POLICY_MAX_BYTES);
	if (rc) {
		fail(doc_path, rc, &e);
		goto out;
	}
	rc = ovc_read_file(sig_path, SIGFILE_MAX, 0, &sig, &slen);
	if (rc) {
		fail(sig_path, rc, NULL);
		goto out;
	}
	rc = ovc_policy_verify_parse(doc, dlen, (char *)sig, slen, pks, npks,
				     &p, &e);
	if (!rc) {
		if (o.seen.serial && !o.have_digest)
			memcpy(o.seen.digest, p->digest, 32);
		rc = ovc_policy_accept(p, o.org ? o.org : p->org,
				       o.user ? o.user : p->user, &o.seen,
				       o.now, &e);
	}
	if (rc) {
		fail(doc_path, rc, &e);
		goto out;
	}
	printf("ok serial %llu\n", (unsigned long long)p->serial);
	ret = fflush(stdout) == 0 ? 0 : 1;
out:
	ovc_policy_free(p);
	free(doc);
	free(sig);
	return ret;
}

static int cmd_keys(const char *doc_path, const char *id_path)
{
	ovc_age_identity *id = NULL;
	ovc_keyset *ks = NULL;
	ovc_policy *p = NULL;
	uint8_t *doc = NULL, *idtext = NULL;
	size_t dlen = 0, ilen = 0;
	char kid[OVC_KEY_ID_STRLEN + 1];
	ovc_err e;
	int rc, ret = 1;

	ovc_err_clear(&e);
	rc = ovc_read_file(doc_path, OVC_POLICY_MAX_BYTES, 0, &doc, &dlen);
	if (!rc)
		rc = ovc_policy_parse(doc, dlen, &p, &e);
	if (rc) {
		fail(doc_path, rc, &e);
		goto out;
	}
	rc = ovc_read_file(id_path, IDFILE_MAX, 1, &idtext, &ilen);
	if (!rc)
		rc = ovc_age_identity_parse((char *)idtext, ilen, &id, &e);
	if (rc) {
		fail(id_path, rc, &e);
		goto out;
	}
	rc = ovc_policy_open_keys(p, id, &ks, &e);
	if (rc) {
		fail(doc_path, rc, &e);
		goto out;
	}
	for (size_t i = 0; i < ks->n; i++) {
		ovc_key_id_format(ks->keys[i].id, kid);
		printf("%s\n", kid);
	}
	ret = fflush(stdout) == 0 ? 0 : 1;
out:
	ovc_keyset_free(ks);
	ovc_age_identity_free(id);
	ovc_wipe_free(idtext);
	ovc_policy_free(p);
	free(doc);
	return ret;
}

int main(int argc, char **argv)
{
	struct verify_opts o;

	if (ovc_common_init() != 0) {
		fprintf(stderr, "policytool: cannot initialise libsodium\n");
		return 1;
	}
	if (argc >= 5 && strcmp(argv[1], "verify") == 0) {
		if (parse_verify_opts(argc - 5, argv + 5, &o) != 0)
			return usage();
		return cmd_verify(argv[2], argv[3], argv[4], &o);
	}
	if (argc == 4 && strcmp(argv[1], "keys") == 0)
		return cmd_keys(argv[2], argv[3]);
	return usage();
}
