/* keystore.c - the user's passphrase-protected age identity and the
 * password policy; see keystore.h. */
#define _GNU_SOURCE
#include "crypto/keystore.h"

#include <errno.h>
#include <pwquality.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define KEYSTORE_FILE_MAX (64u << 10)   /* an identity file is ~200 bytes */
#define NAME_MIN_CHECKED 3  /* shorter names/e-mail parts would match anything */

/* ---------------------------------------------------------------------------
 * Password policy.
 */

/* Length in characters: UTF-8 continuation bytes do not count. */
static size_t utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* Character classes present in `s`: ASCII letters and digits; every other
 * byte (punctuation, space, non-ASCII) counts as special. */
enum { CL_UPPER = 1, CL_LOWER = 2, CL_DIGIT = 4, CL_SPECIAL = 8 };

static int char_classes(const char *s)
{
	int cl = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 'A' && c <= 'Z')
			cl |= CL_UPPER;
		else if (c >= 'a' && c <= 'z')
			cl |= CL_LOWER;
		else if (c >= '0' && c <= '9')
			cl |= CL_DIGIT;
		else
			cl |= CL_SPECIAL;
	}
	return cl;
}

/* Does `hay` contain `needle` ignoring ASCII case? Needles shorter than
 * NAME_MIN_CHECKED characters are not looked for. */
static int contains_ci(const char *hay, const char *needle, size_t nlen)
{
	if (nlen < NAME_MIN_CHECKED)
		return 0;
	for (; strlen(hay) >= nlen; hay++)
		if (strncasecmp(hay, needle, nlen) == 0)
			return 1;
	return 0;
}

static int check_names(const char *pass, const char *user, const char *email,
		       ovc_err *e)
{
	if (user && contains_ci(pass, user, strlen(user)))
		return ovc_err_set(e, -EINVAL, "must not contain the user name");
	if (email) {
		const char *at = strchr(email, '@');
		size_t local = at ? (size_t)(at - email) : strlen(email);

		if (contains_ci(pass, email, strlen(email)) ||
		    contains_ci(pass, email, local))
			return ovc_err_set(e, -EINVAL,
					   "must not contain the e-mail address");
	}
	return 0;
}

static int check_own_rules(const char *pass, size_t min_len, const char *user,
			   const char *email, ovc_err *e)
{
	int cl;

	if (utf8_chars(pass) < min_len)
		return ovc_err_set(e, -EINVAL, "needs at least %zu characters",
				   min_len);
	cl = char_classes(pass);
	if (!(cl & CL_UPPER))
		return ovc_err_set(e, -EINVAL,
				   "needs at least one upper-case letter");
	if (!(cl & CL_LOWER))
		return ovc_err_set(e, -EINVAL,
				   "needs at least one lower-case letter");
	if (!(cl & CL_DIGIT))
		return ovc_err_set(e, -EINVAL, "needs at least one digit");
	if (!(cl & CL_SPECIAL))
		return ovc_err_set(e, -EINVAL,
				   "needs at least one special character");
	return check_names(pass, user, email, e);
}

/* libpwquality with its built-in defaults (not /etc/security/pwquality.conf,
 * so the product's policy is the same on every machine), our length, and the
 * cracklib dictionary check. */
static int check_pwquality(const char *pass, size_t min_len, const char *user,
			   ovc_err *e)
{
	pwquality_settings_t *pwq;
	void *aux = NULL;
	char buf[PWQ_MAX_ERROR_MESSAGE_LEN];
	int score;

	pwq = pwquality_default_settings();
	if (!pwq)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	if (pwquality_set_int_value(pwq, PWQ_SETTING_MIN_LENGTH,
				    (int)min_len) != 0) {
		pwquality_free_settings(pwq);
		return ovc_err_set(e, -EINVAL, "password quality settings refused");
	}
	score = pwquality_check(pwq, pass, NULL, user, &aux);
	pwquality_free_settings(pwq);
	if (score >= 0) {
		free(aux); /* only set on errors, but never leak it */
		return 0;
	}
	/* pwquality_strerror() frees aux. */
	pwquality_strerror(buf, sizeof(buf), score, aux);
	if (score == PWQ_ERROR_MEM_ALLOC)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	return ovc_err_set(e, -EINVAL, "rejected by the password quality check: %s",
			   buf);
}

int ovc_passphrase_check(const char *pass, size_t min_len, const char *user,
			 const char *email, ovc_err *e)
{
	int rc;

	if (!pass)
		return ovc_err_set(e, -EINVAL, "no passphrase");
	if (min_len < OVC_POLICY_MIN_PASS)
		min_len = OVC_POLICY_MIN_PASS;
	if (min_len > 1024)
		return ovc_err_set(e, -EINVAL, "minimum length out of range");
	rc = check_own_rules(pass, min_len, user, email, e);
	if (rc)
		return rc;
	return check_pwquality(pass, min_len, user, e);
}

/* ---------------------------------------------------------------------------
 * Generated passphrases: groups of 5 characters joined by '-', at least 20
 * random characters (about 115 bits), each group drawn from letters and
 * digits without look-alikes.
 */
#define GEN_GROUP 5
#define GEN_MIN_RANDOM 20
#define GEN_TRIES 64

static const char gen_alphabet[] =
	"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

static void fill_passphrase(char *p, size_t groups)
{
	size_t g, i, o = 0;

	for (g = 0; g < groups; g++) {
		if (g)
			p[o++] = '-';
		for (i = 0; i < GEN_GROUP; i++)
			p[o++] = gen_alphabet[randombytes_uniform(
				(uint32_t)(sizeof(gen_alphabet) - 1))];
	}
	p[o] = '\0';
}

char *ovc_passphrase_generate(size_t min_len)
{
	size_t groups = GEN_MIN_RANDOM / GEN_GROUP, len, tries;
	char *p;

	if (min_len > 1024)
		return NULL;
	while (groups * (GEN_GROUP + 1) - 1 < min_len)
		groups++;
	len = groups * (GEN_GROUP + 1) - 1;
	p = ovc_secret_alloc(len + 1);
	if (!p)
		return NULL;
	/* A draw may lack a class or fail the dictionary check: draw again. */
	for (tries = 0; tries < GEN_TRIES; tries++) {
		fill_passphrase(p, groups);
		if (ovc_passphrase_check(p, min_len, NULL, NULL, NULL) == 0)
			return p;
	}
	ovc_secret_free(p);
	return NULL;
}

/* ---------------------------------------------------------------------------
 * Keystore files.
 */

/* The age-keygen style identity file for `id`, in secret memory
 * (ovc_secret_free()); *len its length. */
static int identity_text(const ovc_age_identity *id, char **out, size_t *len)
{
	char rcpt[OVC_AGE_RECIPIENT_STRLEN + 1], when[32];
	ovc_age_recipient r;
	size_t cap = 128 + OVC_AGE_RECIPIENT_STRLEN + OVC_AGE_IDENTITY_STRLEN;
	char *text, *sk;
	time_t now = time(NULL);
	struct tm tm;
	int n;

	if (!gmtime_r(&now, &tm) ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return -EINVAL;
	ovc_age_identity_recipient(id, &r);
	ovc_age_recipient_encode(&r, rcpt);
	text = ovc_secret_alloc(cap);
	sk = ovc_secret_alloc(OVC_AGE_IDENTITY_STRLEN + 1);
	if (!text || !sk) {
		ovc_secret_free(text);
		ovc_secret_free(sk);
		return -ENOMEM;
	}
	ovc_age_identity_encode(id, sk);
	n = snprintf(text, cap, "# created: %s\n# public key: %s\n%s\n", when,
		     rcpt, sk);
	ovc_secret_free(sk);
	if (n < 0 || (size_t)n >= cap) {
		ovc_secret_free(text);
		return -EINVAL;
	}
	*out = text;
	*len = (size_t)n;
	return 0;
}

/* Encrypt `text` to `pass` and write it to `path` (mode 0600; `excl`: an
 * existing file is -EEXIST). */
static int seal_and_write(const char *path, const char *pass,
			  const char *text, size_t len, int excl, ovc_err *e)
{
	ovc_age_encrypt_opts o = {
		.passphrase = pass,
		.scrypt_log_n = OVC_KEYSTORE_LOGN,
		.armor = 0,
	};
	uint8_t *ct = NULL;
	size_t ct_len = 0;
	int rc;

	rc = ovc_age_encrypt(&o, (const uint8_t *)text, len, &ct, &ct_len, e);
	if (rc)
		return ovc_err_wrap(e, rc, "cannot encrypt the keystore: ");
	rc = ovc_write_file_atomic(path, ct, ct_len, 0600, excl);
	free(ct);
	if (rc == -EEXIST)
		return ovc_err_set(e, rc, "a keystore already exists there");
	if (rc)
		return ovc_err_set(e, rc, "cannot write the keystore: %s",
				   strerror(-rc));
	return 0;
}

int ovc_keystore_create(const char *path, const char *pass, const char *user,
			ovc_age_identity **id, ovc_err *e)
{
	ovc_age_identity *ident = NULL;
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	int rc;

	if (id)
		*id = NULL;
	rc = ovc_passphrase_check(pass, OVC_KEYSTORE_MIN_PASS, user, NULL, e);
	if (rc)
		return rc;
	/* Fail early, before the scrypt work; the exclusive link decides. */
	if (lstat(path, &st) == 0)
		return ovc_err_set(e, -EEXIST, "a keystore already exists there");
	rc = ovc_age_identity_generate(&ident);
	if (rc) {
		ovc_err_set(e, rc, "cannot make an identity");
		goto out;
	}
	rc = identity_text(ident, &text, &len);
	if (rc) {
		ovc_err_set(e, rc, "cannot make an identity");
		goto out;
	}
	rc = seal_and_write(path, pass, text, len, 1, e);
	if (rc)
		goto out;
	if (id) {
		*id = ident;
		ident = NULL;
	}
out:
	ovc_secret_free(text);
	ovc_age_identity_free(ident);
	return rc;
}

/* Decrypt the keystore at `path`: *text (ovc_wipe_free()) is the identity
 * file, *id the identity in it. */
static int keystore_open(const char *path, const char *pass, int max_log_n,
			 uint8_t **text, size_t *text_len,
			 ovc_age_identity **id, ovc_err *e)
{
	const char *const passes[1] = { pass };
	ovc_age_decrypt_opts o = {
		.passphrases = passes,
		.n_passphrases = 1,
		.max_scrypt_log_n = max_log_n ? max_log_n
					      : OVC_AGE_SCRYPT_LOGN_MAX,
	};
	enum ovc_age_status st = OVC_AGE_OK;
	uint8_t *raw = NULL, *plain = NULL;
	size_t raw_len = 0, plain_len = 0;
	int rc;

	*text = NULL;
	*id = NULL;
	if (!pass)
		return ovc_err_set(e, -EINVAL, "no passphrase");
	rc = ovc_read_file(path, KEYSTORE_FILE_MAX, 0, &raw, &raw_len);
	if (rc == -EFBIG)
		return ovc_err_set(e, -EINVAL, "not a keystore (too large)");
	if (rc)
		return ovc_err_set(e, rc, "cannot read the keystore: %s",
				   strerror(-rc));
	if (!ovc_age_is_age(raw, raw_len)) {
		rc = ovc_err_set(e, -EINVAL, "not a keystore (not an age file)");
		goto out;
	}
	rc = ovc_age_decrypt_buf(&o, raw, raw_len, KEYSTORE_FILE_MAX, &plain,
				 &plain_len, &st, e);
	if (rc == -ENOKEY) {
		/* The scrypt stanza did not unwrap: its tag cannot tell a
		 * wrong passphrase from a damaged stanza. */
		rc = ovc_err_set(e, -EBADMSG,
				 "wrong passphrase, or the keystore is damaged");
		goto out;
	}
	if (rc == -EBADMSG && (st == OVC_AGE_HMAC || st == OVC_AGE_PAYLOAD)) {
		/* The file key unwrapped, so the passphrase was right. */
		ovc_err_wrap(e, rc, "the keystore is damaged: ");
		goto out;
	}
	if (rc == -ENOMEM) {
		ovc_err_wrap(e, rc, "cannot open the keystore: ");
		goto out;
	}
	if (rc) {
		/* Armor or header: truncated, garbage, or a work factor above
		 * the cap (age's message says which). */
		rc = ovc_err_wrap(e, -EINVAL, "not a readable keystore: ");
		goto out;
	}
	rc = ovc_age_identity_parse((const char *)plain, plain_len, id, e);
	if (rc) {
		rc = ovc_err_wrap(e, -EINVAL, "the keystore holds no identity: ");
		goto out;
	}
	*text = plain;
	*text_len = plain_len;
	plain = NULL;
out:
	ovc_wipe_free(plain);
	free(raw);
	return rc;
}

int ovc_keystore_unlock(const char *path, const char *pass, int max_log_n,
			ovc_age_identity **id, ovc_err *e)
{
	ovc_age_identity *ident = NULL;
	uint8_t *text = NULL;
	size_t len = 0;
	int rc;

	*id = NULL;
	rc = keystore_open(path, pass, max_log_n, &text, &len, &ident, e);
	ovc_wipe_free(text);
	if (rc)
		return rc;
	*id = ident;
	return 0;
}

int ovc_keystore_passwd(const char *path, const char *old,
			const char *new_pass, const char *user, ovc_err *e)
{
	ovc_age_identity *ident = NULL;
	uint8_t *text = NULL;
	size_t len = 0;
	int rc;

	/* The new passphrase first: no scrypt work for a refused one. */
	rc = ovc_passphrase_check(new_pass, OVC_KEYSTORE_MIN_PASS, user, NULL,
				  e);
	if (rc)
		return ovc_err_wrap(e, rc, "new passphrase: ");
	rc = keystore_open(path, old, 0, &text, &len, &ident, e);
	if (rc)
		return rc;
	/* The identity file is kept byte for byte (its comments too). */
	rc = seal_and_write(path, new_pass, (const char *)text, len, 0, e);
	ovc_wipe_free(text);
	ovc_age_identity_free(ident);
	return rc;
}
