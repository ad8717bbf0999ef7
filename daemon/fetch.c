/*
 * fetch.c - policy download over https:// and file:// with libcurl.
 * See fetch.h for the contract.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "daemon/fetch.h"

struct ovc_fetcher {
	CURL *h;                      /* reused: keeps connections alive */
	size_t doc_max, sig_max;
	char errbuf[CURL_ERROR_SIZE]; /* libcurl's detail for the last error */
};

/* A growing buffer that refuses to pass `max` bytes. */
struct sink {
	uint8_t *buf;
	size_t len, cap, max;
	int too_big, nomem;
};

/* Set one option; every curl_easy_setopt return value is checked. */
#define SETOPT(h, opt, val)                                             \
	do {                                                            \
		CURLcode rc_ = curl_easy_setopt((h), (opt), (val));      \
		if (rc_ != CURLE_OK)                                    \
			return setopt_failed(e, #opt, rc_);             \
	} while (0)

static int setopt_failed(ovc_err *e, const char *name, CURLcode rc)
{
	int code = rc == CURLE_OUT_OF_MEMORY ? -ENOMEM
		 : rc == CURLE_UNKNOWN_OPTION || rc == CURLE_NOT_BUILT_IN
		 ? -ENOSYS : -EINVAL;
	return ovc_err_set(e, code, "libcurl refused %s: %s", name,
			   curl_easy_strerror(rc));
}

/* ---------------------------------------------------------------------------
 * The write callback: the only place the size cap can stop a chunked body.
 */
static size_t sink_write(char *p, size_t size, size_t n, void *ud)
{
	struct sink *s = ud;
	size_t add;

	if (n && size > SIZE_MAX / n)
		return 0;
	add = size * n;
	if (add > s->max - s->len) {
		s->too_big = 1;
		return 0; /* anything short of `add` aborts the transfer */
	}
	if (s->len + add + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 16384;
		uint8_t *nb;

		while (cap < s->len + add + 1)
			cap *= 2;
		if (cap > s->max + 1)
			cap = s->max + 1;
		nb = realloc(s->buf, cap);
		if (!nb) {
			s->nomem = 1;
			return 0;
		}
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, add);
	s->len += add;
	return add;
}

/* Give the body away as a NUL-terminated malloc()ed buffer. */
static int sink_take(struct sink *s, uint8_t **out, size_t *len)
{
	if (!s->buf) {
		s->buf = malloc(1);
		if (!s->buf)
			return -ENOMEM;
	}
	s->buf[s->len] = 0;
	*out = s->buf;
	*len = s->len;
	s->buf = NULL;
	s->len = s->cap = 0;
	return 0;
}

/* ---------------------------------------------------------------------------
 * Fetcher.
 */
static int pin_ok(const char *pin)
{
	for (const char *p = pin; *p; p++)
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			    "0123456789+/=;", *p))
			return 0;
	return *pin != 0;
}

/* "sha256//A;sha256//B" from "A;B" or from itself; caller frees. */
static int pin_string(const char *pin, char **out, ovc_err *e)
{
	const char *rest = pin;
	char *s = NULL;
	size_t cap = strlen(pin) * 2 + 16, used = 0;

	s = malloc(cap);
	if (!s)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	while (*rest) {
		size_t n = strcspn(rest, ";");
		char item[256];

		if (n == 0 || n >= sizeof(item))
			goto bad;
		memcpy(item, rest, n);
		item[n] = 0;
		const char *b64 = strncmp(item, "sha256//", 8) ? item : item + 8;
		if (strchr(b64, ';') || !pin_ok(b64) || strlen(b64) != 44)
			goto bad;
		used += (size_t)snprintf(s + used, cap - used, "%ssha256//%s",
					 used ? ";" : "", b64);
		rest += n + (rest[n] == ';');
	}
	if (!used)
		goto bad;
	*out = s;
	return 0;
bad:
	free(s);
	return ovc_err_set(e, -EINVAL,
			   "pin_sha256 is not a base64 SHA-256 pin "
			   "(44 characters, optionally after \"sha256//\")");
}

static int set_tls(ovc_fetcher *f, const ovc_fetch_opts *o, ovc_err *e)
{
	CURL *h = f->h;

	SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (o->ca_file)
		SETOPT(h, CURLOPT_CAINFO, o->ca_file);
	if (o->client_key && !o->client_cert)
		return ovc_err_set(e, -EINVAL,
				   "client_key given without client_cert");
	if (o->client_cert) {
		SETOPT(h, CURLOPT_SSLCERT, o->client_cert);
		SETOPT(h, CURLOPT_SSLCERTTYPE, "PEM");
	}
	if (o->client_key) {
		SETOPT(h, CURLOPT_SSLKEY, o->client_key);
		SETOPT(h, CURLOPT_SSLKEYTYPE, "PEM");
	}
	return 0;
}

static int set_pin(ovc_fetcher *f, const char *pin, ovc_err *e)
{
	char *s = NULL;
	CURLcode rc;
	int r;

	if (!pin || !*pin)
		return 0;
	r = pin_string(pin, &s, e);
	if (r < 0)
		return r;
	rc = curl_easy_setopt(f->h, CURLOPT_PINNEDPUBLICKEY, s); /* copied */
	free(s);
	if (rc != CURLE_OK)
		return setopt_failed(e, "CURLOPT_PINNEDPUBLICKEY", rc);
	return 0;
}

/* Progress callback: a non-zero return aborts the transfer. */
static int xfer_cancel(void *p, curl_off_t dt, curl_off_t dn, curl_off_t ut,
		       curl_off_t un)
{
	(void)dt; (void)dn; (void)ut; (void)un;
	return atomic_load((const atomic_int *)p) != 0;
}

static int set_transport(ovc_fetcher *f, const ovc_fetch_opts *o, ovc_err *e)
{
	CURL *h = f->h;

	SETOPT(h, CURLOPT_PROTOCOLS_STR, "https,file");
	SETOPT(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	SETOPT(h, CURLOPT_FOLLOWLOCATION, 1L);
	SETOPT(h, CURLOPT_MAXREDIRS, OVC_FETCH_MAX_REDIRS);
	SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms > 0
	       ? o->connect_timeout_ms : OVC_FETCH_CONNECT_TIMEOUT_MS);
	SETOPT(h, CURLOPT_TIMEOUT_MS, o->timeout_ms > 0
	       ? o->timeout_ms : OVC_FETCH_TIMEOUT_MS);
	SETOPT(h, CURLOPT_NOSIGNAL, 1L);
	SETOPT(h, CURLOPT_FILETIME, 1L);
	SETOPT(h, CURLOPT_ERRORBUFFER, f->errbuf);
	SETOPT(h, CURLOPT_WRITEFUNCTION, sink_write);
	SETOPT(h, CURLOPT_USERAGENT, "overcryptd");
	if (o->cancel) {
		SETOPT(h, CURLOPT_XFERINFOFUNCTION, xfer_cancel);
		SETOPT(h, CURLOPT_XFERINFODATA, (void *)o->cancel);
		SETOPT(h, CURLOPT_NOPROGRESS, 0L);
	}
	return 0;
}

int ovc_fetcher_new(const ovc_fetch_opts *o, ovc_fetcher **out, ovc_err *e)
{
	static const ovc_fetch_opts none;
	ovc_fetcher *f;
	int r;

	*out = NULL;
	if (!o)
		o = &none;
	f = calloc(1, sizeof(*f));
	if (!f)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	f->doc_max = o->doc_max ? o->doc_max : OVC_FETCH_DOC_MAX;
	f->sig_max = o->sig_max ? o->sig_max : OVC_FETCH_SIG_MAX;
	if (f->doc_max > OVC_FETCH_CAP_LIMIT || f->sig_max > OVC_FETCH_CAP_LIMIT) {
		r = ovc_err_set(e, -EINVAL, "a size cap over %zu bytes",
				OVC_FETCH_CAP_LIMIT);
		goto out;
	}
	f->h = curl_easy_init();
	if (!f->h) {
		r = ovc_err_set(e, -ENOMEM, "curl_easy_init failed");
		goto out;
	}
	r = set_transport(f, o, e);
	if (r == 0)
		r = set_tls(f, o, e);
	if (r == 0)
		r = set_pin(f, o->pin_sha256, e);
out:
	if (r < 0)
		ovc_fetcher_free(f);
	else
		*out = f;
	return r;
}

void ovc_fetcher_free(ovc_fetcher *f)
{
	if (!f)
		return;
	if (f->h)
		curl_easy_cleanup(f->h);
	free(f);
}

void ovc_fetch_result_release(ovc_fetch_result *r)
{
	if (!r)
		return;
	free(r->doc);
	free(r->sig);
	free(r->etag);
	memset(r, 0, sizeof(*r));
}

/* ---------------------------------------------------------------------------
 * URLs.
 */
static int user_ok(const char *u)
{
	if (!*u || *u == '.' || strlen(u) > 128)
		return 0;
	for (; *u; u++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789._-", *u))
			return 0;
	return 1;
}

/* Is `part` present in `u`? (CURLUE_NO_* when absent.) */
static int url_has(CURLU *u, CURLUPart part)
{
	char *v = NULL;
	CURLUcode rc = curl_url_get(u, part, &v, 0);

	curl_free(v);
	return rc == CURLUE_OK;
}

/* Check the base (without ever putting it in a message when it holds
 * credentials) and return its scheme in `scheme`. */
static int check_base(const char *base, char *scheme, size_t cap, ovc_err *e)
{
	CURLU *u = curl_url();
	char *s = NULL;
	int r = 0;

	if (!u)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &s, 0) != CURLUE_OK) {
		r = ovc_err_set(e, -EINVAL, "policy URL does not parse "
				"(https://… or file:///…)");
		goto out;
	}
	if (url_has(u, CURLUPART_USER) || url_has(u, CURLUPART_PASSWORD) ||
	    url_has(u, CURLUPART_OPTIONS)) {
		r = ovc_err_set(e, -EINVAL, "policy URL holds credentials "
				"(user:password@): refused");
		goto out;
	}
	if (strcmp(s, "https") && strcmp(s, "file")) {
		r = ovc_err_set(e, -EPROTONOSUPPORT, "%s: only https:// and "
				"file:// are allowed", base);
		goto out;
	}
	if (url_has(u, CURLUPART_QUERY) || url_has(u, CURLUPART_FRAGMENT) ||
	    strpbrk(base, "?#")) {
		r = ovc_err_set(e, -EINVAL, "%s: the policy URL names a folder "
				"and takes no query or fragment", base);
		goto out;
	}
	snprintf(scheme, cap, "%s", s);
out:
	curl_free(s);
	curl_url_cleanup(u);
	return r;
}

static int make_url(const char *base, const char *user, const char *suffix,
		    char **out, ovc_err *e)
{
	size_t n = strlen(base);
	const char *sep = n && base[n - 1] == '/' ? "" : "/";

	if (asprintf(out, "%s%s%s%s", base, sep, user, suffix) < 0) {
		*out = NULL;
		return ovc_err_set(e, -ENOMEM, "out of memory");
	}
	return 0;
}

/* ---------------------------------------------------------------------------
 * One request.
 */
static int etag_ok(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > OVC_FETCH_ETAG_MAX)
		return 0;
	for (; *t; t++)
		if ((unsigned char)*t < 0x20 || (unsigned char)*t > 0x7e)
			return 0;
	return 1;
}

static int curl_code_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_UNSUPPORTED_PROTOCOL: return -EPROTONOSUPPORT;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CONNECT_ERROR: return -EACCES;
	case CURLE_SSL_CERTPROBLEM: return -EINVAL;
	case CURLE_FILE_COULDNT_READ_FILE: return -ENOENT;
	case CURLE_FILESIZE_EXCEEDED: return -EFBIG;
	case CURLE_TOO_MANY_REDIRECTS: return -ELOOP;
	case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
	case CURLE_ABORTED_BY_CALLBACK: return -ECANCELED;
	case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST: return -EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY: return -ENOMEM;
	default: return -EIO;
	}
}

static int perform_failed(ovc_fetcher *f, const struct sink *s,
			  const char *url, CURLcode rc, ovc_err *e)
{
	if (s->too_big || rc == CURLE_FILESIZE_EXCEEDED)
		return ovc_err_set(e, -EFBIG, "%s: larger than %zu bytes",
				   url, s->max);
	if (s->nomem)
		return ovc_err_set(e, -ENOMEM, "%s: out of memory", url);
	return ovc_err_set(e, curl_code_errno(rc), "%s: %s", url,
			   f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc));
}

/* Per-request options: URL, sink, cap and the conditional headers. */
static int set_request(ovc_fetcher *f, const char *url, struct sink *s,
		       const ovc_fetch_meta *cond, struct curl_slist *hdrs,
		       ovc_err *e)
{
	CURL *h = f->h;

	SETOPT(h, CURLOPT_URL, url);
	SETOPT(h, CURLOPT_WRITEDATA, s);
	/* An early refusal when the length is announced; the sink does the
	 * real work for chunked bodies. */
	SETOPT(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)s->max);
	SETOPT(h, CURLOPT_HTTPHEADER, hdrs);
	SETOPT(h, CURLOPT_TIMECONDITION, cond && cond->modified > 0
	       ? (long)CURL_TIMECOND_IFMODSINCE : (long)CURL_TIMECOND_NONE);
	SETOPT(h, CURLOPT_TIMEVALUE_LARGE,
	       (curl_off_t)(cond ? cond->modified : 0));
	return 0;
}

/* The conditional header list, or NULL when there is no ETag. */
static int cond_headers(const ovc_fetch_meta *cond, struct curl_slist **out,
			ovc_err *e)
{
	char line[OVC_FETCH_ETAG_MAX + 32];

	*out = NULL;
	if (!cond || !cond->etag || !*cond->etag)
		return 0;
	if (!etag_ok(cond->etag))
		return ovc_err_set(e, -EINVAL, "the previous ETag holds "
				   "control characters or is too long");
	snprintf(line, sizeof(line), "If-None-Match: %s", cond->etag);
	*out = curl_slist_append(NULL, line);
	return *out ? 0 : ovc_err_set(e, -ENOMEM, "out of memory");
}

/* After a completed transfer: 1 for "unchanged", 0 for a body, or an error
 * naming the status. */
static int judge_status(ovc_fetcher *f, const char *url, int conditional,
			ovc_err *e)
{
	long code = 0, unmet = 0;
	char *scheme = NULL;

	if (curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK ||
	    curl_easy_getinfo(f->h, CURLINFO_CONDITION_UNMET, &unmet) != CURLE_OK ||
	    curl_easy_getinfo(f->h, CURLINFO_SCHEME, &scheme) != CURLE_OK ||
	    !scheme)
		return ovc_err_set(e, -EIO, "%s: libcurl gave no status", url);
	if (conditional && (unmet || code == 304))
		return 1;
	if (strcasecmp(scheme, "file") == 0)
		return 0;
	if (code == 200)
		return 0;
	return ovc_err_set(e, code == 404 ? -ENOENT : -EREMOTEIO,
			   "%s: HTTP status %ld", url, code);
}

/* GET `url` into `s`; returns 1 (unchanged), 0 (body in `s`) or -errno. */
static int fetch_one(ovc_fetcher *f, const char *url,
		     const ovc_fetch_meta *cond, struct sink *s, ovc_err *e)
{
	struct curl_slist *hdrs = NULL;
	CURLcode rc;
	int r;

	r = cond_headers(cond, &hdrs, e);
	if (r < 0)
		return r;
	r = set_request(f, url, s, cond, hdrs, e);
	if (r < 0)
		goto out;
	f->errbuf[0] = 0;
	rc = curl_easy_perform(f->h);
	if (rc != CURLE_OK)
		r = perform_failed(f, s, url, rc, e);
	else
		r = judge_status(f, url, cond && ((cond->etag && *cond->etag) ||
						  cond->modified > 0), e);
out:
	/* The handle keeps a pointer to the list: drop it before freeing. */
	if (curl_easy_setopt(f->h, CURLOPT_HTTPHEADER, NULL) != CURLE_OK &&
	    r >= 0)
		r = setopt_failed(e, "CURLOPT_HTTPHEADER", CURLE_FAILED_INIT);
	curl_slist_free_all(hdrs);
	return r;
}

/* ETag and Last-Modified of the last transfer into `res`. */
static int take_meta(ovc_fetcher *f, const ovc_fetch_meta *prev,
		     ovc_fetch_result *res, ovc_err *e)
{
	struct curl_header *hv = NULL;
	curl_off_t ft = -1;
	const char *tag = NULL;

	if (curl_easy_header(f->h, "ETag", 0, CURLH_HEADER, -1, &hv) ==
	    CURLHE_OK && hv->value && etag_ok(hv->value))
		tag = hv->value;
	else if (res->status == OVC_FETCH_UNCHANGED && prev && prev->etag &&
		 *prev->etag)
		tag = prev->etag;
	if (tag) {
		res->etag = strdup(tag);
		if (!res->etag)
			return ovc_err_set(e, -ENOMEM, "out of memory");
	}
	if (curl_easy_getinfo(f->h, CURLINFO_FILETIME_T, &ft) != CURLE_OK)
		ft = -1;
	/* libcurl takes the file time from 2xx answers only; a 304 may still
	 * carry Last-Modified. */
	if (ft <= 0 && curl_easy_header(f->h, "Last-Modified", 0, CURLH_HEADER,
					-1, &hv) == CURLHE_OK && hv->value)
		ft = (curl_off_t)curl_getdate(hv->value, NULL);
	res->modified = ft > 0 ? (time_t)ft : 0;
	if (!res->modified && res->status == OVC_FETCH_UNCHANGED && prev)
		res->modified = prev->modified;
	return 0;
}

static int fetch_sig(ovc_fetcher *f, const char *base, const char *user,
		     ovc_fetch_result *res, ovc_err *e)
{
	struct sink s = { .max = f->sig_max };
	char *url = NULL;
	int r;

	r = make_url(base, user, ".json.minisig", &url, e);
	if (r < 0)
		return r;
	r = fetch_one(f, url, NULL, &s, e);
	if (r == 0 && sink_take(&s, &res->sig, &res->sig_len) < 0)
		r = ovc_err_set(e, -ENOMEM, "out of memory");
	free(s.buf);
	free(url);
	return r;
}

int ovc_fetch_policy(ovc_fetcher *f, const char *base, const char *user,
		     const ovc_fetch_meta *prev, ovc_fetch_result *res,
		     ovc_err *e)
{
	struct sink s = { .max = f->doc_max };
	char scheme[16], *url = NULL;
	int r;

	memset(res, 0, sizeof(*res));
	r = check_base(base, scheme, sizeof(scheme), e);
	if (r < 0)
		return r;
	if (!user_ok(user))
		return ovc_err_set(e, -EINVAL, "the user name is not made of "
				   "[A-Za-z0-9._-] only");
	r = make_url(base, user, ".json", &url, e);
	if (r < 0)
		return r;
	r = fetch_one(f, url, prev, &s, e);
	if (r < 0)
		goto out;
	res->status = r == 1 ? OVC_FETCH_UNCHANGED : OVC_FETCH_NEW;
	r = take_meta(f, prev, res, e);
	if (r < 0 || res->status == OVC_FETCH_UNCHANGED)
		goto out;
	r = sink_take(&s, &res->doc, &res->doc_len);
	if (r < 0) {
		ovc_err_set(e, r, "out of memory");
		goto out;
	}
	r = fetch_sig(f, base, user, res, e);
out:
	free(s.buf);
	free(url);
	if (r < 0)
		ovc_fetch_result_release(res);
	return r < 0 ? r : 0;
}
