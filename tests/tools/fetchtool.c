/*
 * fetchtool - a driver over daemon/fetch.c for the integration tests.
 * Not installed.
 *
 *   fetchtool URL_BASE USER [--ca F] [--pin P] [--etag E] [--since UNIXTIME]
 *             [--cert F --key F] [--out DIR] [--timeout MS]
 *       Fetches USER.json and USER.json.minisig from URL_BASE. Prints
 *       "new <bytes> <sigbytes> etag=<etag> modified=<unix>" (with --out,
 *       also writes DIR/doc and DIR/sig) or "unchanged etag=<etag>
 *       modified=<unix>", and exits 0; on error prints it on stderr and
 *       exits 1.
 *
 * Exit codes: 0 success, 1 failure, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/common.h"
#include "daemon/fetch.h"

struct args {
	const char *base, *user, *out;
	ovc_fetch_opts o;
	ovc_fetch_meta prev;
};

static int usage(void)
{
	fprintf(stderr, "usage: fetchtool URL_BASE USER [--ca F] [--pin P] "
		"[--etag E] [--since UNIXTIME] [--cert F --key F] [--out DIR] "
		"[--timeout MS]\n");
	return 2;
}

static int parse_num(const char *s, long long *v)
{
	char *end;

	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno || end == s || *end || *v < 0 ? -EINVAL : 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	long long v;

	if (argc < 3)
		return -EINVAL;
	a->base = argv[1];
	a->user = argv[2];
	for (int i = 3; i < argc; i += 2) {
		const char *k = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!val)
			return -EINVAL;
		if (!strcmp(k, "--ca"))
			a->o.ca_file = val;
		else if (!strcmp(k, "--pin"))
			a->o.pin_sha256 = val;
		else if (!strcmp(k, "--cert"))
			a->o.client_cert = val;
		else if (!strcmp(k, "--key"))
			a->o.client_key = val;
		else if (!strcmp(k, "--etag"))
			a->prev.etag = val;
		else if (!strcmp(k, "--out"))
			a->out = val;
		else if (!strcmp(k, "--since") && parse_num(val, &v) == 0)
			a->prev.modified = (time_t)v;
		else if (!strcmp(k, "--timeout") && parse_num(val, &v) == 0)
			a->o.timeout_ms = (long)v;
		else
			return -EINVAL;
	}
	return 0;
}

static int save(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char path[4096];

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	return ovc_write_file_atomic(path, p, n, 0600, 0);
}

static int report(const struct args *a, const ovc_fetch_result *res)
{
	const char *tag = res->etag ? res->etag : "";

	if (res->status == OVC_FETCH_UNCHANGED) {
		printf("unchanged etag=%s modified=%lld\n", tag,
		       (long long)res->modified);
		return 0;
	}
	if (a->out) {
		int r = save(a->out, "doc", res->doc, res->doc_len);

		if (r == 0)
			r = save(a->out, "sig", res->sig, res->sig_len);
		if (r < 0) {
			fprintf(stderr, "fetchtool: %s: %s\n", a->out,
				strerror(-r));
			return r;
		}
	}
	printf("new %zu %zu etag=%s modified=%lld\n", res->doc_len,
	       res->sig_len, tag, (long long)res->modified);
	return 0;
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	ovc_fetch_result res = { 0 };
	ovc_fetcher *f = NULL;
	ovc_err e = { 0 };
	int r, rc = 1;

	if (parse_args(argc, argv, &a) < 0)
		return usage();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "fetchtool: curl_global_init failed\n");
		return 1;
	}
	r = ovc_fetcher_new(&a.o, &f, &e);
	if (r == 0)
		r = ovc_fetch_policy(f, a.base, a.user,
				     a.prev.etag || a.prev.modified ? &a.prev
								    : NULL,
				     &res, &e);
	if (r < 0)
		fprintf(stderr, "fetchtool: %s\n", e.msg);
	else if (report(&a, &res) == 0)
		rc = 0;
	ovc_fetch_result_release(&res);
	ovc_fetcher_free(f);
	curl_global_cleanup();
	return rc;
}
