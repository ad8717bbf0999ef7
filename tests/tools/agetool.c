/* agetool.c - a test driver for crypto/age: encrypt or decrypt stdin to
 * stdout, so the integration tests can hold our age code against stock age.
 *
 *   agetool encrypt -r age1… [-r age1…] [-a]
 *   agetool encrypt -p PASSFILE [-n LOG2N] [-a]
 *   agetool decrypt -i IDFILE [-i IDFILE…]
 *   agetool decrypt -p PASSFILE [-m MAX_LOG2N]
 *
 * PASSFILE holds the passphrase on its first line. Exit 0 on success, 1 on
 * any error (one line on stderr naming the failure class), 2 on bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "crypto/age.h"

#define MAX_INPUT (1u << 30)
#define MAX_KEYS 16

struct args {
	int encrypt, armor, log_n, max_log_n;
	const char *rcpt[MAX_KEYS];
	size_t n_rcpt;
	const char *idfile[MAX_KEYS];
	size_t n_idfile;
	const char *passfile;
};

static int usage(void)
{
	fprintf(stderr,
		"usage: agetool encrypt (-r RECIPIENT... | -p PASSFILE [-n LOG2N]) [-a]\n"
		"       agetool decrypt (-i IDFILE... | -p PASSFILE [-m MAX_LOG2N])\n");
	return 2;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	if (argc < 2)
		return -1;
	if (!strcmp(argv[1], "encrypt"))
		a->encrypt = 1;
	else if (strcmp(argv[1], "decrypt"))
		return -1;
	for (int i = 2; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(o, "-a") && a->encrypt) {
			a->armor = 1;
			continue;
		}
		if (!v)
			return -1;
		i++;
		if (!strcmp(o, "-r") && a->encrypt && a->n_rcpt < MAX_KEYS)
			a->rcpt[a->n_rcpt++] = v;
		else if (!strcmp(o, "-i") && !a->encrypt && a->n_idfile < MAX_KEYS)
			a->idfile[a->n_idfile++] = v;
		else if (!strcmp(o, "-p"))
			a->passfile = v;
		else if (!strcmp(o, "-n"))
			a->log_n = atoi(v);
		else if (!strcmp(o, "-m"))
			a->max_log_n = atoi(v);
		else
			return -1;
	}
	return 0;
}

static int read_stdin(uint8_t **out, size_t *len)
{
	size_t cap = 1 << 16, used = 0;
	uint8_t *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (used == cap) {
			uint8_t *nb = cap < MAX_INPUT ? realloc(buf, cap * 2) : NULL;
			if (!nb) {
				free(buf);
				return cap < MAX_INPUT ? -ENOMEM : -EFBIG;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(0, buf + used, cap - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int rc = -errno;
			free(buf);
			return rc;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	*out = buf;
	*len = used;
	return 0;
}

static int write_all(const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(1, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int stdout_sink(void *ctx, const uint8_t *data, size_t len)
{
	(void)ctx;
	return write_all(data, len);
}

/* The passphrase: the file's first line, in secret memory. */
static char *read_pass(const char *path)
{
	uint8_t *raw = NULL;
	size_t len = 0, n;
	char *pass;

	if (ovc_read_file(path, 4096, 1, &raw, &len))
		return NULL;
	n = strcspn((char *)raw, "\r\n");
	pass = ovc_secret_alloc(n + 1);
	if (pass)
		memcpy(pass, raw, n);
	ovc_wipe_free(raw);
	return pass;
}

static int do_encrypt(const struct args *a, const uint8_t *in, size_t len)
{
	ovc_age_recipient r[MAX_KEYS];
	ovc_age_encrypt_opts o = { .recipients = r, .n_recipients = a->n_rcpt,
				   .scrypt_log_n = a->log_n ? a->log_n : 18,
				   .armor = a->armor };
	uint8_t *out = NULL;
	size_t out_len = 0;
	char *pass = NULL;
	ovc_err e;
	int rc = 0;

	for (size_t i = 0; i < a->n_rcpt && !rc; i++)
		rc = ovc_age_recipient_parse(a->rcpt[i], &r[i], &e);
	if (!rc && a->passfile && !(pass = read_pass(a->passfile)))
		rc = ovc_err_set(&e, -EIO, "cannot read %s", a->passfile);
	o.passphrase = pass;
	if (!rc)
		rc = ovc_age_encrypt(&o, in, len, &out, &out_len, &e);
	if (!rc)
		rc = write_all(out, out_len);
	if (rc)
		fprintf(stderr, "agetool: encrypt: %s\n", e.msg);
	free(out);
	ovc_secret_free(pass);
	return rc ? 1 : 0;
}

static const char *class_name(enum ovc_age_status s)
{
	static const char *const names[] = { "ok", "armor failure",
					     "header failure", "no match",
					     "HMAC failure", "payload failure" };

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

static int do_decrypt(const struct args *a, const uint8_t *in, size_t len)
{
	ovc_age_identity *ids[MAX_KEYS] = { 0 };
	enum ovc_age_status st = OVC_AGE_OK;
	char *pass = NULL;
	const char *passes[1];
	ovc_err e = { 0 };
	int rc = 0;

	for (size_t i = 0; i < a->n_idfile && !rc; i++) {
		uint8_t *raw = NULL;
		size_t n = 0;

		rc = ovc_read_file(a->idfile[i], 1 << 16, 1, &raw, &n);
		if (rc)
			ovc_err_set(&e, rc, "cannot read %s", a->idfile[i]);
		else
			rc = ovc_age_identity_parse((char *)raw, n, &ids[i], &e);
		ovc_wipe_free(raw);
	}
	if (!rc && a->passfile && !(pass = read_pass(a->passfile)))
		rc = ovc_err_set(&e, -EIO, "cannot read %s", a->passfile);
	passes[0] = pass;
	ovc_age_decrypt_opts o = {
		.identities = (const ovc_age_identity *const *)ids,
		.n_identities = a->n_idfile,
		.passphrases = passes,
		.n_passphrases = pass ? 1 : 0,
		.max_scrypt_log_n = a->max_log_n,
	};
	if (!rc)
		rc = ovc_age_decrypt(&o, in, len, stdout_sink, NULL, &st, &e);
	if (rc)
		fprintf(stderr, "agetool: decrypt: %s: %s\n", class_name(st),
			e.msg[0] ? e.msg : strerror(-rc));
	for (size_t i = 0; i < a->n_idfile; i++)
		ovc_age_identity_free(ids[i]);
	ovc_secret_free(pass);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	uint8_t *in = NULL;
	size_t len = 0;
	int rc;

	if (parse_args(argc, argv, &a) ||
	    (a.encrypt && !a.n_rcpt == !a.passfile) ||
	    (!a.encrypt && !a.n_idfile && !a.passfile))
		return usage();
	if (ovc_common_init()) {
		fprintf(stderr, "agetool: cannot initialise libsodium\n");
		return 1;
	}
	rc = read_stdin(&in, &len);
	if (rc) {
		fprintf(stderr, "agetool: reading stdin: %s\n", strerror(-rc));
		return 1;
	}
	rc = a.encrypt ? do_encrypt(&a, in, len) : do_decrypt(&a, in, len);
	free(in);
	return rc;
}
