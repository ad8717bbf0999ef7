/*
 * fetch.h - download a user's policy document and its signature.
 *
 * A fetcher fetches `<base>/<user>.json` and `<base>/<user>.json.minisig`
 * with libcurl from an `https://` or a `file://` base. It only transports
 * bytes: the caller verifies the signature before trusting anything.
 *
 * What it enforces, whatever the caller asks:
 *  - TLS peer and host verification always on, with the CA file given (or
 *    the system store when none is given), TLS 1.2 at least; an optional
 *    pin of the server's public key; an optional client certificate.
 *  - Only the https and file protocols; redirects (at most
 *    OVC_FETCH_MAX_REDIRS) only to https, so never from https to file.
 *  - No credentials in a URL (user:password@ is refused), no query or
 *    fragment in the base, and a user name of [A-Za-z0-9._-] only.
 *  - Connect and total time-outs.
 *  - A size cap on each body, enforced in the write callback as the bytes
 *    arrive (curl 7.88's CURLOPT_MAXFILESIZE does not stop a chunked body).
 *  - No content encoding is asked for: bodies arrive as stored.
 *
 * Conditional GET: given the previous fetch's metadata, the document request
 * carries If-None-Match (the ETag) and If-Modified-Since (the Last-Modified
 * time). A 304 on the document, or for file:// an mtime not newer than the
 * previous one, means "unchanged" and the signature is not fetched. A 304
 * is unsigned: a server that withholds updates can keep an old policy alive.
 *
 * The two requests are not atomic: a document replaced between them yields
 * a signature that does not match, which the caller's verification reports;
 * the next refresh gets a consistent pair.
 *
 * Error messages name the URL (never with credentials: such URLs are
 * refused) and, for HTTP, the status. Nothing here prints or exits.
 *
 * Thread-safety: curl_global_init(CURL_GLOBAL_DEFAULT) must have been called
 * once by the program (in main, before any thread starts) and
 * curl_global_cleanup() once at the end. A fetcher holds one CURL handle,
 * reused across fetches (its connections too): use one fetcher from one
 * thread at a time. Distinct fetchers are independent. No signals are used
 * (CURLOPT_NOSIGNAL).
 *
 * Proxies: libcurl's usual environment variables (https_proxy, no_proxy)
 * apply; TLS through a proxy is still verified end to end.
 */
#ifndef OVC_DAEMON_FETCH_H
#define OVC_DAEMON_FETCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/common.h"

/* Default caps and limits (used where the options say 0). */
#define OVC_FETCH_DOC_MAX ((size_t)8 << 20)   /* 8 MiB document */
#define OVC_FETCH_SIG_MAX ((size_t)64 << 10)  /* 64 KiB signature */
#define OVC_FETCH_CONNECT_TIMEOUT_MS 10000L
#define OVC_FETCH_TIMEOUT_MS 60000L           /* per request, whole transfer */
#define OVC_FETCH_MAX_REDIRS 3L
#define OVC_FETCH_ETAG_MAX 512                /* longer ETags are ignored */
#define OVC_FETCH_CAP_LIMIT ((size_t)1 << 30) /* no cap may exceed 1 GiB */

/* How to reach the server. Every string is borrowed for the duration of
 * ovc_fetcher_new() only (libcurl copies them). */
typedef struct ovc_fetch_opts {
	const char *ca_file;      /* PEM CA bundle; NULL: the system store */
	const char *pin_sha256;   /* NULL, or the server key's SHA-256 pin:
				   * "sha256//BASE64" or bare BASE64, several
				   * joined by ';' */
	const char *client_cert;  /* NULL, or a PEM client certificate */
	const char *client_key;   /* its PEM key (no passphrase); NULL: the
				   * key is in client_cert's file */
	long connect_timeout_ms;  /* 0: OVC_FETCH_CONNECT_TIMEOUT_MS */
	long timeout_ms;          /* 0: OVC_FETCH_TIMEOUT_MS */
	size_t doc_max;           /* 0: OVC_FETCH_DOC_MAX */
	size_t sig_max;           /* 0: OVC_FETCH_SIG_MAX */
	const atomic_int *cancel; /* NULL, or a flag that, once non-zero,
				   * aborts a transfer within about a second
				   * (-ECANCELED); read from the fetching
				   * thread, so it must outlive the fetcher */
} ovc_fetch_opts;

/* What the previous successful fetch returned, for a conditional GET.
 * Borrowed. */
typedef struct ovc_fetch_meta {
	const char *etag;         /* NULL or "" when none */
	time_t modified;          /* Last-Modified / mtime, 0 when unknown */
} ovc_fetch_meta;

typedef enum ovc_fetch_status {
	OVC_FETCH_NEW = 1,        /* doc and sig hold fresh bodies */
	OVC_FETCH_UNCHANGED = 2,  /* 304 / mtime not newer: doc, sig NULL */
} ovc_fetch_status;

/* The outcome of ovc_fetch_policy(). Owned by the caller, released with
 * ovc_fetch_result_release(). */
typedef struct ovc_fetch_result {
	ovc_fetch_status status;
	uint8_t *doc;             /* malloc()ed, NUL appended (not counted) */
	size_t doc_len;
	uint8_t *sig;             /* malloc()ed, NUL appended (not counted) */
	size_t sig_len;
	char *etag;               /* malloc()ed ETag to send next time, or NULL
				   * (on "unchanged": the server's, else a copy
				   * of the previous one) */
	time_t modified;          /* Last-Modified / mtime, 0 when unknown (on
				   * "unchanged": the previous value when the
				   * server sends none) */
} ovc_fetch_result;

typedef struct ovc_fetcher ovc_fetcher;

/* Create a fetcher with options `o` (NULL: all defaults) and store it in
 * *out; the caller frees it with ovc_fetcher_free(). Files named in `o` are
 * read at fetch time, not here. Errors: -EINVAL for a bad option (a pin
 * that is not base64, a key without a certificate, a cap over
 * OVC_FETCH_CAP_LIMIT), -ENOMEM, -ENOSYS when
 * libcurl lacks a needed feature; `e` says which. */
int ovc_fetcher_new(const ovc_fetch_opts *o, ovc_fetcher **out, ovc_err *e);

/* Free `f` and its handle (NULL is fine). */
void ovc_fetcher_free(ovc_fetcher *f);

/* Fetch `user`'s policy from `base` ("https://host/path/" or
 * "file:///path/", a trailing '/' optional). `prev` (NULL: none) makes the
 * document request conditional. On success *res (which is overwritten:
 * release an earlier result first) is filled and 0 returned; on error *res
 * is empty (zeroed) and `e` names the URL and the cause:
 *   -EINVAL           bad base URL or user name, credentials in the URL,
 *                     an unusable client certificate or key
 *   -EPROTONOSUPPORT  a protocol other than https or file (also a redirect
 *                     to one)
 *   -EACCES           TLS handshake or verification failed, wrong pin,
 *                     unreadable CA file
 *   -ENOENT           HTTP 404, or a missing file:// file
 *   -EREMOTEIO        any other HTTP status than 200 (or 304 when asked)
 *   -EFBIG            a body over its cap
 *   -ELOOP            too many redirects
 *   -ETIMEDOUT        a time-out
 *   -ECANCELED        the cancel flag was raised
 *   -ECONNREFUSED, -EHOSTUNREACH, -ENOMEM, -EIO (anything else)
 */
int ovc_fetch_policy(ovc_fetcher *f, const char *base, const char *user,
		     const ovc_fetch_meta *prev, ovc_fetch_result *res,
		     ovc_err *e);

/* Free the buffers of `r` and zero it (NULL is fine). */
void ovc_fetch_result_release(ovc_fetch_result *r);

#endif
