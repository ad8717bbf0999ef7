/*
 * agent.c - overcryptd's main loop (see agent.h and
 * docs/control-protocol.md).
 */
#define _GNU_SOURCE /* accept4, SO_PEERCRED, struct ucred */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "daemon/agent.h"
#include "daemon/fetch.h"
#include "daemon/log.h"
#include "daemon/mounts.h"
#include "daemon/user.h"

/* ---- fetch threads ------------------------------------------------------------------ */

/* One user's fetch thread and its mailbox. Fields below `mu` are guarded by
 * it; the thread owns the request while busy. */
struct fetchq {
	pthread_t th;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int want, busy, done, stop;
	/* the request (copied: the config may change under SIGHUP) */
	char *base, *user, *etag, *ca, *pin, *cert, *key;
	time_t modified;
	int conditional;
	long timeout_ms;
	/* the result */
	int rc;
	ovc_fetch_result res;
	ovc_err err;
	int wake_fd;
	const atomic_int *cancel;
};

struct uent {
	ovc_user *u;
	struct fetchq q;
	int waiters[OVC_CTL_MAX_CONNS];  /* conns waiting for this fetch */
	size_t nwait;
};

enum cstate { C_READ, C_WAIT };

struct conn {
	int fd;
	uid_t uid;
	enum cstate st;
	char *buf;             /* ovc_wipe_malloc: may hold an identity */
	size_t len;
	long long deadline_ms;
	int eof;               /* the client half-closed: not polled */
};

struct agent {
	ovc_agent_opts o;
	ovc_config_opts copts;
	ovc_config *cfg;
	ovc_views *views;
	ovc_mounts *mounts;      /* the overlays: daemon/mounts.h */
	ovc_mtab *mtab;          /* the SMB shares: daemon/mtab.h */
	struct uent *users;
	size_t nusers;
	int lock_fd, listen_fd, sig_fd, wake[2];
	int journal_fd;          /* <cache_dir>/journal: folder moves between rules */
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct conn conns[OVC_CTL_MAX_CONNS];
	size_t nconns;
	atomic_int cancel;
	int stopping;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void req_clear(struct fetchq *q)
{
	free(q->base); free(q->user); free(q->etag); free(q->ca);
	free(q->pin); free(q->cert); free(q->key);
	q->base = q->user = q->etag = q->ca = q->pin = q->cert = q->key = NULL;
}

static char *dup_or_null(const char *s, int *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = 1;
	return d;
}

static void *fetch_main(void *arg)
{
	struct fetchq *q = arg;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		ovc_fetch_opts fo = { 0 };
		ovc_fetch_meta meta;
		ovc_fetcher *f = NULL;
		ovc_fetch_result res = { 0 };
		ovc_err err = { 0 };
		int rc;

		while (!q->want && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->stop)
			break;
		q->want = 0;
		q->busy = 1;
		fo.ca_file = q->ca;
		fo.pin_sha256 = q->pin;
		fo.client_cert = q->cert;
		fo.client_key = q->key;
		fo.timeout_ms = q->timeout_ms;
		fo.cancel = q->cancel;
		meta.etag = q->etag;
		meta.modified = q->modified;
		pthread_mutex_unlock(&q->mu);

		rc = ovc_fetcher_new(&fo, &f, &err);
		if (rc == 0)
			rc = ovc_fetch_policy(f, q->base, q->user,
					      q->conditional ? &meta : NULL, &res, &err);
		ovc_fetcher_free(f);

		pthread_mutex_lock(&q->mu);
		q->rc = rc;
		q->res = res;
		q->err = err;
		q->done = 1;
		q->busy = 0;
		if (write(q->wake_fd, "x", 1) < 0 && errno != EAGAIN)
			ovc_log_error("fetch thread: cannot wake the main loop: %s", strerror(errno));
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* Ask for a fetch now (no-op while one runs or is asked). 0 or -ENOMEM. */
static int fetch_start(struct agent *A, struct uent *ue)
{
	struct fetchq *q = &ue->q;
	const ovc_config *c = A->cfg;
	const ovc_fetch_meta *m = ovc_user_fetch_meta(ue->u);
	int oom = 0;

	pthread_mutex_lock(&q->mu);
	if (q->busy || q->want || q->done) {
		pthread_mutex_unlock(&q->mu);
		return 0;
	}
	req_clear(q);
	q->base = dup_or_null(c->policy_url, &oom);
	q->user = dup_or_null(ovc_user_name(ue->u), &oom);
	q->ca = dup_or_null(c->ca_file, &oom);
	q->pin = dup_or_null(c->pin_sha256, &oom);
	q->cert = dup_or_null(c->client_cert, &oom);
	q->key = dup_or_null(c->client_key, &oom);
	q->conditional = m != NULL;
	q->etag = m ? dup_or_null(m->etag, &oom) : NULL;
	q->modified = m ? m->modified : 0;
	q->timeout_ms = (long)c->timeout_s * 1000;
	if (!oom) {
		q->want = 1;
		pthread_cond_signal(&q->cv);
	}
	pthread_mutex_unlock(&q->mu);
	return oom ? -ENOMEM : 0;
}

/* ---- replies ------------------------------------------------------------------------ */

static void conn_close(struct agent *A, size_t i)
{
	struct conn *c = &A->conns[i];

	close(c->fd);
	ovc_wipe_free(c->buf);
	for (size_t k = 0; k < A->nusers; k++) {
		struct uent *ue = &A->users[k];

		for (size_t w = 0; w < ue->nwait; w++)
			if (ue->waiters[w] == c->fd)
				ue->waiters[w--] = ue->waiters[--ue->nwait];
	}
	A->conns[i] = A->conns[--A->nconns];
}

static size_t conn_index(struct agent *A, int fd)
{
	for (size_t i = 0; i < A->nconns; i++)
		if (A->conns[i].fd == fd)
			return i;
	return (size_t)-1;
}

/* Send `o` (consumed) with "ok" first, and close the connection. */
static void reply(struct agent *A, int fd, int ok, cJSON *o)
{
	cJSON *r = cJSON_CreateObject(), *it;
	char *txt = NULL;
	size_t i;

	if (r && cJSON_AddBoolToObject(r, "ok", ok)) {
		while (o && (it = o->child)) {
			cJSON_DetachItemViaPointer(o, it);
			cJSON_AddItemToObject(r, it->string, it);
		}
		txt = cJSON_PrintUnformatted(r);
	}
	cJSON_Delete(o);
	cJSON_Delete(r);
	if (txt) {
		size_t n = strlen(txt), off = 0;
		struct timeval tv = { OVC_CTL_TIMEOUT_MS / 1000, 0 };
		int fl = fcntl(fd, F_GETFL);

		/* blocking with a send time-out: a client that stops reading
		 * costs at most that */
		if (fl >= 0)
			(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		txt[n] = '\0';
		while (off < n) {
			ssize_t w = send(fd, txt + off, n - off, MSG_NOSIGNAL);

			if (w <= 0)
				break;
			off += (size_t)w;
		}
		if (off == n && send(fd, "\n", 1, MSG_NOSIGNAL) != 1)
			ovc_log_debug("control: reply not delivered");
		cJSON_free(txt);
	}
	i = conn_index(A, fd);
	if (i != (size_t)-1)
		conn_close(A, i);
	else
		close(fd);
}

static void reply_err(struct agent *A, int fd, const char *code, long wait_s,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void reply_err(struct agent *A, int fd, const char *code, long wait_s,
		      const char *fmt, ...)
{
	char msg[512];
	cJSON *o = cJSON_CreateObject();
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (o) {
		cJSON_AddStringToObject(o, "error", msg);
		cJSON_AddStringToObject(o, "code", code);
		if (wait_s >= 0)
			cJSON_AddNumberToObject(o, "wait_s", (double)wait_s);
	}
	reply(A, fd, 0, o);
}

static const char *outcome_code(enum ovc_user_outcome oc)
{
	switch (oc) {
	case OVC_USER_OK: return "ok";
	case OVC_USER_FAILED: return "failed";
	case OVC_USER_REFUSED: return "refused";
	case OVC_USER_NOKEY: return "nokey";
	case OVC_USER_WAIT: return "wait";
	case OVC_USER_INTERNAL: break;
	}
	return "internal";
}

/* ---- requests ----------------------------------------------------------------------- */

static struct uent *user_by_uid(struct agent *A, uid_t uid)
{
	for (size_t i = 0; i < A->nusers; i++)
		if (ovc_user_uid(A->users[i].u) == uid)
			return &A->users[i];
	return NULL;
}

static struct uent *user_by_name(struct agent *A, const char *name)
{
	for (size_t i = 0; i < A->nusers; i++)
		if (!strcmp(ovc_user_name(A->users[i].u), name))
			return &A->users[i];
	return NULL;
}

/* Whose view does this request act on? NULL after replying. */
static struct uent *target(struct agent *A, int fd, uid_t peer, const cJSON *req)
{
	const cJSON *un = cJSON_GetObjectItemCaseSensitive(req, "user");
	struct uent *ue;

	if (un && !cJSON_IsString(un)) {
		reply_err(A, fd, "invalid", -1, "\"user\" must be a string");
		return NULL;
	}
	if (A->o.mode == OVC_CONFIG_USER) {
		ue = &A->users[0];
		if (un && strcmp(un->valuestring, ovc_user_name(ue->u))) {
			reply_err(A, fd, "denied", -1, "this agent serves only user %s", ovc_user_name(ue->u));
			return NULL;
		}
		return ue;
	}
	if (un) {
		ue = user_by_name(A, un->valuestring);
		if (!ue || (peer != 0 && ovc_user_uid(ue->u) != peer)) {
			reply_err(A, fd, "denied", -1, "%s", peer == 0 ? "that user is not served by this agent"
				  : "you may act only on your own view");
			return NULL;
		}
		return ue;
	}
	ue = user_by_uid(A, peer);
	if (!ue)
		reply_err(A, fd, "denied", -1, "uid %u is not served by this agent%s", (unsigned)peer,
			  peer == 0 ? " (root: name a user with \"user\")" : "");
	return ue;
}

static void do_unlock(struct agent *A, int fd, struct uent *ue, cJSON *req)
{
	cJSON *idj = cJSON_GetObjectItemCaseSensitive(req, "identity");
	size_t nkeys = 0;
	int pending = 0;
	long wait = 0;
	ovc_err e = { 0 };
	enum ovc_user_outcome oc;
	cJSON *o;

	if (!cJSON_IsString(idj)) {
		reply_err(A, fd, "invalid", -1, "unlock needs \"identity\"");
		return;
	}
	oc = ovc_user_unlock(ue->u, idj->valuestring, time(NULL), &nkeys, &pending, &wait, &e);
	sodium_memzero(idj->valuestring, strlen(idj->valuestring));
	if (oc != OVC_USER_OK) {
		reply_err(A, fd, outcome_code(oc), oc == OVC_USER_WAIT || oc == OVC_USER_NOKEY ? wait : -1,
			  "%s", e.msg);
		return;
	}
	o = cJSON_CreateObject();
	if (o) {
		cJSON_AddNumberToObject(o, "keys", (double)nkeys);
		cJSON_AddBoolToObject(o, "pending", pending);
	}
	reply(A, fd, 1, o);
}

/* Is `s` (`n` bytes) well-formed UTF-8 (no overlongs, surrogates or code
 * points above U+10FFFF)? */
static int utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;

	while (p < end) {
		unsigned c = *p++;
		size_t more;
		unsigned cp, min;

		if (c < 0x80)
			continue;
		if ((c & 0xe0) == 0xc0) { more = 1; cp = c & 0x1f; min = 0x80; }
		else if ((c & 0xf0) == 0xe0) { more = 2; cp = c & 0x0f; min = 0x800; }
		else if ((c & 0xf8) == 0xf0) { more = 3; cp = c & 0x07; min = 0x10000; }
		else return 0;
		if ((size_t)(end - p) < more)
			return 0;
		while (more--) {
			if ((*p & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (*p++ & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
	}
	return 1;
}

/* ---- SMB shares ------------------------------------------------------------------------ */

/* Is `m` among the `n` mounts of `v` (same place, same share)? */
static int smb_known(const ovc_smb_mount *m, const ovc_smb_mount *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(m->mountpoint, v[i].mountpoint) && !strcmp(m->host, v[i].host) &&
		    !strcmp(m->share, v[i].share) && !strcmp(m->prefix, v[i].prefix))
			return 1;
	return 0;
}

/* A share that just appeared: does an smb:// rule of a served user name
 * it? If not, explain when a rule names the same server another way. */
static void smb_check_new(struct agent *A, const ovc_smb_mount *m)
{
	char (*hosts)[256] = NULL;
	const char **hp = NULL;
	size_t nh = 0, cap = 0;
	int named = 0;

	/* named: the matcher placed a rule of some user on this share */
	for (size_t u = 0; u < A->nusers && !named; u++) {
		ovc_view *v = ovc_views_get(A->views, ovc_user_uid(A->users[u].u));
		size_t nlf = 0;
		const char *const *lf = v && v->rules ? ovc_ruleset_local_folders(v->rules, &nlf) : NULL;

		for (size_t k = 0; k < nlf && !named; k++)
			named = ovc_path_within(lf[k], m->mountpoint);
		ovc_view_put(v);
	}
	for (size_t u = 0; u < A->nusers && !named; u++) {
		size_t nr = 0;
		const ovc_rule *r = ovc_user_rules(A->users[u].u, &nr);

		for (size_t i = 0; i < nr; i++) {
			ovc_rule_path rp;
			ovc_err e = { 0 };
			int dup = 0;

			if (strncmp(r[i].path, "smb://", 6) || ovc_rule_path_parse(r[i].path, &rp, &e))
				continue;
			for (size_t k = 0; k < nh && !dup; k++)
				dup = !strcmp(hosts[k], rp.host);
			if (dup)
				continue;
			if (nh == cap) {
				size_t nc = cap ? cap * 2 : 8;
				void *t = realloc(hosts, nc * sizeof(*hosts));

				if (!t)
					break;
				hosts = t;
				cap = nc;
			}
			snprintf(hosts[nh++], sizeof(*hosts), "%s", rp.host);
		}
	}
	if (!named && nh && (hp = calloc(nh, sizeof(*hp)))) {
		for (size_t k = 0; k < nh; k++)
			hp[k] = hosts[k];
		ovc_smb_explain_unmatched(m, hp, nh);
	}
	free(hp);
	free(hosts);
}

/* Every share mounted now, checked as if new (at start, and after a new
 * policy: its rules may name, or almost name, shares mounted before). */
static void smb_check_all(struct agent *A)
{
	size_t n = 0;
	const ovc_smb_mount *v = ovc_mtab_smb(A->mtab, &n);

	for (size_t i = 0; i < n; i++)
		smb_check_new(A, &v[i]);
}

/* Read the mount table when it may have changed (`woke`: poll() said so);
 * when the SMB shares changed, place every user's rules again (their
 * overlays follow at the next sync) and look at the new shares. */
static void smb_refresh(struct agent *A, int woke)
{
	size_t nold = 0, n = 0;
	const ovc_smb_mount *old, *v;
	time_t now;

	if (ovc_mtab_update(A->mtab, woke) != 1)
		return;
	now = time(NULL);
	for (size_t i = 0; i < A->nusers; i++)
		ovc_user_remap(A->users[i].u, now);
	v = ovc_mtab_smb(A->mtab, &n);
	old = ovc_mtab_prev(A->mtab, &nold);
	for (size_t i = 0; i < n; i++)
		if (!smb_known(&v[i], old, nold))
			smb_check_new(A, &v[i]);
	for (size_t i = 0; i < nold; i++)
		if (!smb_known(&old[i], v, n)) {
			char src[2048];

			ovc_smb_source(&old[i], src, sizeof(src));
			ovc_log_info("%s: the SMB share %s is no longer mounted", old[i].mountpoint, src);
		}
}

/* Place the rules again after a forget or unforget, and follow with the
 * overlays now. */
static void smb_apply(struct agent *A)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < A->nusers; i++)
		ovc_user_remap(A->users[i].u, now);
	ovc_mounts_sync(A->mounts, now, 0);
}

/* `overcrypt unmount PATH`: the overlays on the share mounted at PATH
 * first, then the share. Refused while files are open on them; when the
 * share will not go, its overlays are mounted again at once. */
static void do_unmount(struct agent *A, int fd, uid_t peer, const cJSON *req)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(req, "path");
	char norm[PATH_MAX], src[2048], where[PATH_MAX] = "";
	const ovc_smb_mount *sm;
	ovc_err e = { 0 };
	uint64_t k;
	cJSON *o;

	if (!cJSON_IsString(p) || p->valuestring[0] != '/' ||
	    ovc_path_normalise(p->valuestring, norm, sizeof(norm)) != 0) {
		reply_err(A, fd, "invalid", -1, "unmount needs an absolute \"path\"");
		return;
	}
	if (A->o.mode == OVC_CONFIG_SYSTEM && peer != 0) {
		reply_err(A, fd, "denied", -1, "only root unmounts shares of a system-mode agent");
		return;
	}
	sm = ovc_mtab_find(A->mtab, norm);
	if (!sm) {
		reply_err(A, fd, "invalid", -1, "%s is not where an SMB share is mounted "
			  "('overcrypt status' shows the shares; other overlays follow the policy)", norm);
		return;
	}
	ovc_smb_source(sm, src, sizeof(src));
	k = ovc_mounts_open_under(A->mounts, norm, where, sizeof(where));
	if (k) {
		reply_err(A, fd, "busy", -1, "%" PRIu64 " file%s open on the overlay at %s: close %s "
			  "first (nothing was unmounted)", k, k == 1 ? " is" : "s are", where,
			  k == 1 ? "it" : "them");
		return;
	}
	if (ovc_mtab_forget(A->mtab, norm) != 0) {
		reply_err(A, fd, "internal", -1, "out of memory");
		return;
	}
	smb_apply(A);
	k = ovc_mounts_open_under(A->mounts, norm, where, sizeof(where));
	if (k || ovc_mounts_umount_share(A->mounts, norm, &e) != 0) {
		ovc_mtab_unforget(A->mtab, norm);
		smb_apply(A);
		if (k)
			reply_err(A, fd, "busy", -1, "a file was opened on the overlay at %s meanwhile: "
				  "the share stays mounted", where);
		else
			reply_err(A, fd, e.code == -EBUSY ? "busy" : "failed", -1,
				  "%s: the share %s stays mounted, and its overlays were mounted again",
				  e.msg, src);
		return;
	}
	ovc_log_info("%s: the SMB share %s and its overlays were unmounted (overcrypt unmount)",
		     norm, src);
	o = cJSON_CreateObject();
	if (o) {
		cJSON_AddStringToObject(o, "share", src);
		cJSON_AddStringToObject(o, "mountpoint", norm);
	}
	reply(A, fd, 1, o);
}

/* The status reply's "mounts", as `ue`'s user sees them. 0 or -ENOMEM. */
static int status_mounts(struct agent *A, struct uent *ue, cJSON *o)
{
	uid_t uid = ovc_user_uid(ue->u);
	ovc_view *v = ovc_views_get(A->views, uid);
	size_t nr = 0;
	const ovc_rule *r = ovc_user_rules(ue->u, &nr);
	cJSON *ms = ovc_mounts_status(A->mounts, uid, v, r, nr, ovc_user_name(ue->u));

	ovc_view_put(v);
	if (!ms || !cJSON_ReplaceItemInObjectCaseSensitive(o, "mounts", ms)) {
		cJSON_Delete(ms);
		return -ENOMEM;
	}
	return 0;
}

/* The overlay that serves the request's absolute "path" `p` (normalised
 * into `norm`), or NULL with the error sent. */
static ovc_overlay *req_overlay(struct agent *A, int fd, const cJSON *p, const char *what,
				char norm[PATH_MAX])
{
	ovc_overlay *ov;

	if (!cJSON_IsString(p) || p->valuestring[0] != '/' ||
	    ovc_path_normalise(p->valuestring, norm, PATH_MAX) != 0) {
		reply_err(A, fd, "invalid", -1, "%s needs an absolute \"path\"", what);
		return NULL;
	}
	ov = ovc_mounts_find(A->mounts, norm);
	if (!ov)
		reply_err(A, fd, "invalid", -1, "%s is in no folder this agent overlays", norm);
	return ov;
}

/* `overcrypt encrypt --initial`, one file: encrypt a plaintext file that
 * sits under an encryption rule, in place (fusefs/overlay.h). The CLI walks
 * the tree and asks file by file, so that it can show progress and the
 * agent's main thread waits for one file at a time. */
static void do_convert(struct agent *A, int fd, struct uent *ue, const cJSON *req)
{
	static const char *const names[] = {
		[OVC_CONV_CONVERTED] = "converted", [OVC_CONV_ENCRYPTED] = "encrypted",
		[OVC_CONV_NO_RULE] = "no-rule",
	};
	const cJSON *dry = cJSON_GetObjectItemCaseSensitive(req, "dry_run");
	char norm[PATH_MAX];
	enum ovc_convert_result res;
	ovc_overlay *ov = req_overlay(A, fd, cJSON_GetObjectItemCaseSensitive(req, "path"),
				      "convert", norm);
	ovc_err e = { 0 };
	cJSON *o;
	int rc;

	if (!ov)
		return;
	rc = ovc_overlay_convert(ov, norm, ovc_user_uid(ue->u), cJSON_IsTrue(dry), &res, &e);
	if (rc < 0) {
		reply_err(A, fd, rc == -ENOMEM ? "internal" : rc == -EACCES ? "nokey" :
			  rc == -EBUSY ? "busy" : "failed", -1, "%s", e.msg[0] ? e.msg : strerror(-rc));
		return;
	}
	if (res == OVC_CONV_CONVERTED && !cJSON_IsTrue(dry))
		ovc_log_info("%s: plaintext file encrypted in place (initial encryption, uid %u)",
			     norm, (unsigned)ovc_user_uid(ue->u));
	o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "path", norm) ||
	    !cJSON_AddStringToObject(o, "result", names[res])) {
		cJSON_Delete(o);
		reply_err(A, fd, "internal", -1, "out of memory");
		return;
	}
	reply(A, fd, 1, o);
}

/* `overcrypt encrypt --asset NAME FILE` / `overcrypt decrypt FILE` through
 * the agent: a file where no rule encrypts, in place (fusefs/overlay.h). */
static void do_manual(struct agent *A, int fd, struct uent *ue, const cJSON *req, int decrypt)
{
	const cJSON *asset = cJSON_GetObjectItemCaseSensitive(req, "asset");
	char norm[PATH_MAX];
	ovc_overlay *ov = req_overlay(A, fd, cJSON_GetObjectItemCaseSensitive(req, "path"),
				      decrypt ? "decrypt" : "encrypt", norm);
	ovc_err e = { 0 };
	cJSON *o;
	int rc;

	if (!ov)
		return;
	if (!decrypt && !cJSON_IsString(asset)) {
		reply_err(A, fd, "invalid", -1, "encrypt needs an \"asset\"");
		return;
	}
	rc = ovc_overlay_manual(ov, norm, ovc_user_uid(ue->u), decrypt,
				decrypt ? NULL : asset->valuestring, &e);
	if (rc < 0) {
		reply_err(A, fd, rc == -ENOMEM ? "internal" : rc == -EACCES ? "nokey" :
			  rc == -EBUSY ? "busy" : rc == -EPERM ? "denied" :
			  rc == -EALREADY ? "already" : "failed", -1, "%s",
			  e.msg[0] ? e.msg : strerror(-rc));
		return;
	}
	ovc_log_info("%s: %s in place by uid %u%s%s", norm, decrypt ? "decrypted" : "encrypted",
		     (unsigned)ovc_user_uid(ue->u), decrypt ? "" : " under asset ",
		     decrypt ? "" : asset->valuestring);
	o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "path", norm)) {
		cJSON_Delete(o);
		reply_err(A, fd, "internal", -1, "out of memory");
		return;
	}
	reply(A, fd, 1, o);
}

/* `overcrypt repair`: cut a torn tail of an encrypted file in one of our
 * overlays, with the keys of the user's view (fusefs/overlay.h). Runs on
 * the main thread: it reads the file once. */
static void do_repair(struct agent *A, int fd, struct uent *ue, const cJSON *req)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(req, "path");
	const cJSON *force = cJSON_GetObjectItemCaseSensitive(req, "force");
	const cJSON *dry = cJSON_GetObjectItemCaseSensitive(req, "dry_run");
	char norm[PATH_MAX];
	ovc_repair_report r;
	ovc_overlay *ov = req_overlay(A, fd, p, "repair", norm);
	ovc_err e = { 0 };
	cJSON *o;
	int rc;

	if (!ov)
		return;
	rc = ovc_overlay_repair(ov, norm, ovc_user_uid(ue->u), cJSON_IsTrue(force),
				cJSON_IsTrue(dry), &r, &e);
	if (rc < 0) {
		reply_err(A, fd, rc == -ENOMEM ? "internal" : rc == -EACCES ? "nokey" : "failed",
			  -1, "%s", e.msg[0] ? e.msg : strerror(-rc));
		return;
	}
	ovc_log_info("%s: repair%s by uid %u: %s", norm, cJSON_IsTrue(dry) ? " (dry run)" : "",
		     (unsigned)ovc_user_uid(ue->u), r.intact ? "intact" : "torn tail cut");
	o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "path", norm) ||
	    !cJSON_AddBoolToObject(o, "intact", r.intact) ||
	    !cJSON_AddBoolToObject(o, "dry_run", cJSON_IsTrue(dry)) ||
	    !cJSON_AddNumberToObject(o, "slots", (double)r.slots) ||
	    !cJSON_AddNumberToObject(o, "kept", (double)r.kept) ||
	    !cJSON_AddNumberToObject(o, "first_bad", (double)r.first_bad) ||
	    !cJSON_AddNumberToObject(o, "good_after", (double)r.good_after) ||
	    !cJSON_AddNumberToObject(o, "size", (double)r.size_after) ||
	    !cJSON_AddBoolToObject(o, "resealed", r.resealed)) {
		cJSON_Delete(o);
		reply_err(A, fd, "internal", -1, "out of memory");
		return;
	}
	reply(A, fd, 1, o);
}

static void handle(struct agent *A, size_t ci)
{
	struct conn *c = &A->conns[ci];
	int fd = c->fd;
	cJSON *req = NULL;
	const cJSON *cmd;
	struct uent *ue;
	const char *k;
	long wait = 0;

	/* replies echo parts of requests (paths): only valid UTF-8 comes in,
	 * and no \u0000, which would cut a string short unseen */
	if (!utf8_valid(c->buf, c->len) || memmem(c->buf, c->len, "\\u0000", 6)) {
		reply_err(A, fd, "invalid", -1, "the request is not a JSON object in UTF-8 (without NUL characters)");
		return;
	}
	req = cJSON_ParseWithLength(c->buf, c->len);
	if (!req || !cJSON_IsObject(req)) {
		cJSON_Delete(req);
		reply_err(A, fd, "invalid", -1, "the request is not a JSON object");
		return;
	}
	cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
	if (!cJSON_IsString(cmd)) {
		cJSON_Delete(req);
		reply_err(A, fd, "invalid", -1, "the request has no \"cmd\" string");
		return;
	}
	k = cmd->valuestring;
	if (!strcmp(k, "unmount")) {
		/* a share is the machine's, not one user's view */
		do_unmount(A, fd, c->uid, req);
		cJSON_Delete(req);
		return;
	}
	ue = target(A, fd, c->uid, req);
	if (!ue) {
		cJSON_Delete(req);
		return;
	}
	if (!strcmp(k, "status")) {
		cJSON *o = ovc_user_status(ue->u, time(NULL));

		if (o)
			cJSON_AddStringToObject(o, "mode", A->o.mode == OVC_CONFIG_SYSTEM ? "system" : "user");
		if (o && status_mounts(A, ue, o) != 0) {
			cJSON_Delete(o);
			o = NULL;
		}
		if (o)
			reply(A, fd, 1, o);
		else
			reply_err(A, fd, "internal", -1, "out of memory");
	} else if (!strcmp(k, "which")) {
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(req, "path");
		ovc_err e = { 0 };
		cJSON *o;

		if (!cJSON_IsString(p) || p->valuestring[0] != '/') {
			reply_err(A, fd, "invalid", -1, "which needs an absolute \"path\"");
		} else if ((o = ovc_user_which(ue->u, p->valuestring, &e))) {
			reply(A, fd, 1, o);
		} else {
			reply_err(A, fd, e.code == -ENOMEM ? "internal" : "invalid", -1, "%s", e.msg);
		}
	} else if (!strcmp(k, "repair")) {
		do_repair(A, fd, ue, req);
	} else if (!strcmp(k, "convert")) {
		do_convert(A, fd, ue, req);
	} else if (!strcmp(k, "encrypt") || !strcmp(k, "decrypt")) {
		do_manual(A, fd, ue, req, k[0] == 'd');
	} else if (!strcmp(k, "refresh")) {
		if (ue->nwait == OVC_CTL_MAX_CONNS || fetch_start(A, ue)) {
			reply_err(A, fd, "internal", -1, "cannot start a fetch now");
		} else {
			ue->waiters[ue->nwait++] = fd;
			c->st = C_WAIT;
			c->deadline_ms = now_ms() + (long long)A->cfg->timeout_s * 2000 + 10000;
		}
	} else if (!strcmp(k, "lock")) {
		ovc_user_lock(ue->u, "overcrypt lock");
		reply(A, fd, 1, NULL);
	} else if (!strcmp(k, "unlock-check")) {
		enum ovc_user_outcome oc = ovc_user_unlock_check(ue->u, time(NULL), &wait);
		cJSON *o;

		if (oc == OVC_USER_WAIT) {
			reply_err(A, fd, "wait", wait, "too many failed unlocks: try again in %ld s", wait);
		} else {
			o = cJSON_CreateObject();
			if (o)
				cJSON_AddNumberToObject(o, "wait_s", 0);
			reply(A, fd, 1, o);
		}
	} else if (!strcmp(k, "unlock-failed")) {
		cJSON *o;

		ovc_user_unlock_failed(ue->u, time(NULL), &wait);
		o = cJSON_CreateObject();
		if (o)
			cJSON_AddNumberToObject(o, "wait_s", (double)wait);
		reply(A, fd, 1, o);
	} else if (!strcmp(k, "unlock")) {
		do_unlock(A, fd, ue, req);
	} else {
		reply_err(A, fd, "invalid", -1, "unknown command (status, which, repair, convert, encrypt, decrypt, refresh, lock, "
			  "unlock-check, unlock-failed, unlock)");
	}
	cJSON_Delete(req);
}

/* Read what a client sent; handle a whole line. */
static void conn_read(struct agent *A, size_t ci)
{
	struct conn *c = &A->conns[ci];
	char *nl;
	ssize_t r;

	if (c->st != C_READ) {
		char tmp[64];

		/* a waiting client may half-close (shutdown(SHUT_WR)) and
		 * still read the reply; an error means it is gone */
		r = recv(c->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (r == 0)
			c->eof = 1;
		else if (r < 0 && errno != EAGAIN && errno != EINTR)
			conn_close(A, ci);
		return;
	}
	r = recv(c->fd, c->buf + c->len, OVC_CTL_MAX_REQUEST - c->len, MSG_DONTWAIT);
	if (r < 0) {
		if (errno != EAGAIN && errno != EINTR)
			conn_close(A, ci);
		return;
	}
	if (r == 0) {
		if (c->len)
			reply_err(A, c->fd, "invalid", -1, "the request does not end in a newline");
		else
			conn_close(A, ci);
		return;
	}
	c->len += (size_t)r;
	nl = memchr(c->buf, '\n', c->len);
	if (nl) {
		c->len = (size_t)(nl - c->buf);
		handle(A, ci);
	} else if (c->len == OVC_CTL_MAX_REQUEST) {
		reply_err(A, c->fd, "invalid", -1, "the request is longer than %d bytes", OVC_CTL_MAX_REQUEST);
	}
}

/* Take one waiting connection: 0, or -1 when none is waiting. */
static int conn_accept(struct agent *A)
{
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	int fd = accept4(A->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct conn *c;

	if (fd < 0)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0) {
		close(fd);
		return 0;
	}
	if (A->o.mode == OVC_CONFIG_USER && cr.uid != getuid() && cr.uid != 0) {
		ovc_log_warn("control: connection from uid %u refused (this agent serves uid %u)",
			     (unsigned)cr.uid, (unsigned)getuid());
		reply_err(A, fd, "denied", -1, "this agent belongs to uid %u", (unsigned)getuid());
		return 0;
	}
	if (A->nconns == OVC_CTL_MAX_CONNS) {
		reply_err(A, fd, "internal", -1, "too many connections: try again");
		return 0;
	}
	c = &A->conns[A->nconns];
	memset(c, 0, sizeof(*c));
	c->buf = ovc_wipe_malloc(OVC_CTL_MAX_REQUEST + 1);
	if (!c->buf) {
		close(fd);
		return 0;
	}
	c->fd = fd;
	c->uid = cr.uid;
	c->st = C_READ;
	c->deadline_ms = now_ms() + OVC_CTL_TIMEOUT_MS;
	A->nconns++;
	return 0;
}

/* ---- fetch results and timers ------------------------------------------------------- */

static void fetch_done(struct agent *A, struct uent *ue)
{
	struct fetchq *q = &ue->q;
	ovc_fetch_result res;
	ovc_err fe, e = { 0 };
	enum ovc_user_outcome oc;
	int rc, fresh = 0;

	pthread_mutex_lock(&q->mu);
	if (!q->done) {
		pthread_mutex_unlock(&q->mu);
		return;
	}
	q->done = 0;
	rc = q->rc;
	res = q->res;
	fe = q->err;
	memset(&q->res, 0, sizeof(q->res));
	pthread_mutex_unlock(&q->mu);
	if (A->stopping) {
		ovc_fetch_result_release(&res);
		return;
	}
	oc = ovc_user_fetched(ue->u, rc, &res, &fe, time(NULL), &fresh, &e);
	if (oc == OVC_USER_OK && fresh)
		smb_check_all(A);   /* new rules: the shares mounted now, again */
	while (ue->nwait) {
		int fd = ue->waiters[--ue->nwait];
		cJSON *o;

		if (oc != OVC_USER_OK) {
			reply_err(A, fd, outcome_code(oc), -1, "%s", e.msg);
			continue;
		}
		o = cJSON_CreateObject();
		if (o) {
			cJSON_AddStringToObject(o, "result", fresh ? "new" : "unchanged");
			cJSON_AddNumberToObject(o, "serial", (double)ovc_user_serial(ue->u));
		}
		reply(A, fd, 1, o);
	}
}

static void timers(struct agent *A)
{
	time_t now = time(NULL);
	long long ms = now_ms();

	for (size_t i = 0; i < A->nusers; i++) {
		struct uent *ue = &A->users[i];

		ovc_user_tick(ue->u, now);
		if (now >= ovc_user_next_fetch(ue->u) && fetch_start(A, ue))
			ovc_log_error("user %s: cannot start a fetch: out of memory", ovc_user_name(ue->u));
	}
	for (size_t i = 0; i < A->nconns; i++) {
		struct conn *c = &A->conns[i];

		if (ms < c->deadline_ms)
			continue;
		if (c->st == C_READ)
			reply_err(A, c->fd, "invalid", -1, "no whole request within %d ms", OVC_CTL_TIMEOUT_MS);
		else
			reply_err(A, c->fd, "failed", -1, "the fetch did not finish in time");
		i--;
	}
}

/* ---- start-up ----------------------------------------------------------------------- */

static int load_config(struct agent *A, ovc_config **out)
{
	ovc_diag d = { 0 };
	int rc;

	rc = ovc_config_load(&A->copts, out, &d);
	for (size_t i = 0; i < d.n; i++)
		ovc_log_error("%s", d.lines[i]);
	ovc_diag_free(&d);
	return rc;
}

static int load_org_keys(const ovc_config *c, ovc_minisign_pubkey *pks)
{
	for (size_t i = 0; i < c->norg_public_keys; i++) {
		ovc_err e = { 0 };
		int rc = ovc_minisign_pubkey_load(c->org_public_keys[i], &pks[i], &e);

		if (rc) {
			ovc_log_error("org_public_key %s", e.msg);
			return rc;
		}
	}
	return 0;
}

/* The folders to overlay for `uid`: the config's [mount] paths, and with
 * [mount] home its home folder ($HOME in user mode, the passwd entry's in
 * system mode). *out borrows the config's strings; *home is the one made
 * here (free both with free(); NULL when none). */
static int user_mounts(struct agent *A, uid_t uid, char ***out, size_t *n, char **home)
{
	size_t nm = A->cfg->nmount_paths;
	const char *h = NULL;
	struct passwd pw, *res = NULL;
	char buf[4096], norm[PATH_MAX];

	*out = calloc(nm + 2, sizeof(char *));
	*home = NULL;
	if (!*out)
		return -ENOMEM;
	if (nm)
		memcpy(*out, A->cfg->mount_paths, nm * sizeof(char *));
	*n = nm;
	if (!A->cfg->mount_home)
		return 0;
	if (A->o.mode == OVC_CONFIG_USER)
		h = getenv("HOME");
	if ((!h || !*h) && getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		h = pw.pw_dir;
	if (!h || h[0] != '/' || ovc_path_normalise(h, norm, sizeof(norm)) != 0 ||
	    strcmp(norm, "/") == 0) {
		ovc_log_error("uid %u: [mount] home: no usable home folder (%s): not overlaid",
			      (unsigned)uid, h ? h : "none");
		return 0;
	}
	*home = strdup(norm);
	if (!*home) {
		free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	(*out)[(*n)++] = *home;
	return 0;
}

static int add_user(struct agent *A, const char *name, uid_t uid,
		    const ovc_minisign_pubkey *pks)
{
	char dir[PATH_MAX];
	ovc_user_opts uo = { 0 };
	ovc_err e = { 0 };
	struct uent *ue;
	char **mounts = NULL, *home = NULL;
	int rc;

	if (user_by_uid(A, uid))
		return 0;
	if (A->o.mode == OVC_CONFIG_SYSTEM)
		snprintf(dir, sizeof(dir), "%s/%u", A->cfg->cache_dir, (unsigned)uid);
	else
		snprintf(dir, sizeof(dir), "%s", A->cfg->cache_dir);
	rc = ovc_private_dir(dir, 0700, 1);
	if (rc) {
		ovc_log_error("user %s: state folder %s: %s", name, dir,
			      rc == -EPERM ? "not ours, or writable by others" : strerror(-rc));
		return rc;
	}
	uo.name = name;
	uo.uid = uid;
	uo.state_dir = dir;
	uo.source = A->cfg->policy_url;
	uo.pks = pks;
	uo.npks = A->cfg->norg_public_keys;
	rc = user_mounts(A, uid, &mounts, &uo.nmount_paths, &home);
	if (rc)
		return rc;
	uo.mount_paths = (const char *const *)mounts;
	uo.views = A->views;
	uo.mtab = A->mtab;
	ue = &A->users[A->nusers];
	memset(ue, 0, sizeof(*ue));
	rc = ovc_user_new(&uo, time(NULL), &ue->u, &e);
	free(home);
	free(mounts);
	if (rc) {
		ovc_log_error("user %s: %s", name, e.msg);
		return rc;
	}
	if (pthread_mutex_init(&ue->q.mu, NULL) || pthread_cond_init(&ue->q.cv, NULL)) {
		ovc_user_free(ue->u);
		return -ENOMEM;
	}
	ue->q.wake_fd = A->wake[1];
	ue->q.cancel = &A->cancel;
	if (pthread_create(&ue->q.th, NULL, fetch_main, &ue->q) != 0) {
		ovc_log_error("user %s: cannot start a fetch thread", name);
		pthread_mutex_destroy(&ue->q.mu);
		pthread_cond_destroy(&ue->q.cv);
		ovc_user_free(ue->u);
		return -EAGAIN;
	}
	ue->q.started = 1;
	A->nusers++;
	return 0;
}

/* The users a system agent serves: names and @groups (members and users
 * whose primary group it is). */
static int add_users(struct agent *A, const ovc_minisign_pubkey *pks)
{
	size_t cap = 0;

	if (A->o.mode == OVC_CONFIG_USER) {
		A->users = calloc(1, sizeof(*A->users));
		if (!A->users)
			return -ENOMEM;
		return add_user(A, A->cfg->user, getuid(), pks);
	}
	cap = 1024;
	A->users = calloc(cap, sizeof(*A->users));
	if (!A->users)
		return -ENOMEM;
	for (size_t i = 0; i < A->cfg->nusers; i++) {
		const char *it = A->cfg->users[i];

		if (it[0] == '@') {
			struct group *g = getgrnam(it + 1);
			struct passwd *pw;
			gid_t gid;
			char **mem = NULL;
			size_t nmem = 0;

			if (!g) {
				ovc_log_error("users: group %s does not exist: skipped", it + 1);
				continue;
			}
			gid = g->gr_gid;
			for (char **m = g->gr_mem; *m; m++)
				nmem++;
			mem = calloc(nmem + 1, sizeof(*mem));
			for (size_t k = 0; mem && k < nmem; k++)
				mem[k] = strdup(g->gr_mem[k]);
			for (size_t k = 0; mem && k < nmem; k++) {
				pw = mem[k] ? getpwnam(mem[k]) : NULL;
				if (pw && A->nusers < cap)
					add_user(A, pw->pw_name, pw->pw_uid, pks);
			}
			for (size_t k = 0; mem && k < nmem; k++)
				free(mem[k]);
			free(mem);
			setpwent();
			while ((pw = getpwent()) && A->nusers < cap) {
				if (pw->pw_gid == gid && !user_by_uid(A, pw->pw_uid)) {
					char nm[256];

					snprintf(nm, sizeof(nm), "%s", pw->pw_name);
					endpwent();
					pw = getpwnam(nm);
					if (pw)
						add_user(A, nm, pw->pw_uid, pks);
					setpwent();
				}
			}
			endpwent();
		} else {
			struct passwd *pw = getpwnam(it);

			if (!pw) {
				ovc_log_error("users: user %s does not exist: skipped", it);
				continue;
			}
			if (A->nusers < cap)
				add_user(A, it, pw->pw_uid, pks);
		}
	}
	if (!A->nusers) {
		ovc_log_error("no user to serve (users = ...)");
		return -ENOENT;
	}
	return 0;
}

static int take_lock(struct agent *A)
{
	char p[PATH_MAX], pid[32];
	int n;

	snprintf(p, sizeof(p), "%s/overcryptd.lock", A->cfg->runtime_dir);
	A->lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (A->lock_fd < 0) {
		ovc_log_error("%s: %s", p, strerror(errno));
		return -errno;
	}
	if (flock(A->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		ssize_t r = pread(A->lock_fd, pid, sizeof(pid) - 1, 0);

		pid[r > 0 ? r : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		ovc_log_error("another overcryptd is running (pid %s, lock %s)", pid[0] ? pid : "?", p);
		return -EBUSY;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(A->lock_fd, 0) != 0 || pwrite(A->lock_fd, pid, (size_t)n, 0) != n)
		ovc_log_warn("%s: cannot record the pid", p);
	return 0;
}

static int open_socket(struct agent *A)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control", A->cfg->runtime_dir);
	mode_t old;

	if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		ovc_log_error("%s/control: the socket path is too long", A->cfg->runtime_dir);
		return -ENAMETOOLONG;
	}
	memcpy(A->sock_path, sa.sun_path, sizeof(A->sock_path));
	A->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (A->listen_fd < 0)
		return -errno;
	/* we hold the lock: a socket left there is a dead predecessor's */
	if (unlink(sa.sun_path) != 0 && errno != ENOENT)
		ovc_log_warn("%s: cannot remove the old socket: %s", sa.sun_path, strerror(errno));
	old = umask(0177);
	n = bind(A->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (n != 0 || (A->o.mode == OVC_CONFIG_SYSTEM && chmod(sa.sun_path, 0666) != 0) ||
	    listen(A->listen_fd, 16) != 0) {
		ovc_log_error("%s: %s", sa.sun_path, strerror(errno));
		return -errno;
	}
	return 0;
}

/* The keys-drop hook (view.h): flush the overlays while keys exist. */
static void keys_dropping(void *ctx, uid_t uid)
{
	ovc_mounts_flush_encrypted(ctx, uid);
}

/* <cache_dir>/journal (made 0700), opened before anything is mounted: a
 * cache_dir inside an overlaid folder is still reached directly. -1 when it
 * cannot be had (folder moves between rules then give EXDEV). */
static int open_journal(struct agent *A)
{
	char p[PATH_MAX];
	int rc, fd;

	if (snprintf(p, sizeof(p), "%s/journal", A->cfg->cache_dir) >= (int)sizeof(p))
		return -1;
	rc = ovc_private_dir(p, 0700, 1);
	fd = rc ? -1 : open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		ovc_log_warn("%s: no rewrap journal (%s): a folder is not moved between two encryption rules in place (mv copies it)",
			     p, rc ? strerror(-rc) : strerror(errno));
	return fd;
}

/* Mount the overlays the published views ask for. A mount that fails is
 * logged and kept in status; only ENOMEM stops the agent. */
static int start_mounts(struct agent *A)
{
	ovc_mounts_opts mo = { 0 };

	mo.views = A->views;
	mo.system = A->o.mode == OVC_CONFIG_SYSTEM;
	mo.allow_other = A->cfg->mount_allow_other;
	mo.journal_fd = A->journal_fd = open_journal(A);
	mo.mtab = A->mtab;
	if (ovc_mounts_new(&mo, &A->mounts) != 0) {
		ovc_log_error("cannot start: out of memory");
		return -ENOMEM;
	}
	ovc_views_set_keys_drop_hook(A->views, keys_dropping, A->mounts);
	return ovc_mounts_sync(A->mounts, time(NULL), 0);
}

static void reload(struct agent *A)
{
	ovc_config *nc = NULL;
	ovc_minisign_pubkey pks[OVC_CONFIG_MAX_ORG_KEYS];

	ovc_log_info("SIGHUP: reading the config again");
	if (load_config(A, &nc) != 0 || load_org_keys(nc, pks) != 0) {
		ovc_log_error("the new config has errors: the running one stays");
		ovc_config_free(nc);
		return;
	}
	if (nc->nusers != A->cfg->nusers || nc->nmount_paths != A->cfg->nmount_paths ||
	    nc->mount_allow_other != A->cfg->mount_allow_other || nc->mount_home != A->cfg->mount_home ||
	    strcmp(nc->cache_dir, A->cfg->cache_dir) || strcmp(nc->runtime_dir, A->cfg->runtime_dir) ||
	    (nc->user && strcmp(nc->user, A->cfg->user)))
		ovc_log_warn("users, [mount] path, allow_other and home, user, cache_dir and runtime_dir apply at the next start");
	for (size_t i = 0; i < A->nusers; i++)
		if (ovc_user_set_source(A->users[i].u, nc->policy_url, pks, nc->norg_public_keys))
			ovc_log_error("out of memory applying the new config");
	ovc_log_set_level(nc->log_level);
	/* the fetch threads copy what they need per request: swap is safe */
	{
		ovc_config *old = A->cfg;
		char **u = old->users, **m = old->mount_paths, *cd = old->cache_dir, *rd = old->runtime_dir;
		size_t nu = old->nusers, nm = old->nmount_paths;

		/* keep what applies at the next start */
		old->users = nc->users; old->nusers = nc->nusers;
		old->mount_paths = nc->mount_paths; old->nmount_paths = nc->nmount_paths;
		old->cache_dir = nc->cache_dir; old->runtime_dir = nc->runtime_dir;
		nc->users = u; nc->nusers = nu;
		nc->mount_paths = m; nc->nmount_paths = nm;
		nc->cache_dir = cd; nc->runtime_dir = rd;
		A->cfg = nc;
		ovc_config_free(old);
	}
	for (size_t i = 0; i < A->nusers; i++)
		fetch_start(A, &A->users[i]);
}

/* ---- run ---------------------------------------------------------------------------- */

static void shutdown_agent(struct agent *A)
{
	A->stopping = 1;
	atomic_store(&A->cancel, 1);
	for (size_t i = 0; i < A->nusers; i++) {
		struct fetchq *q = &A->users[i].q;

		pthread_mutex_lock(&q->mu);
		q->stop = 1;
		pthread_cond_signal(&q->cv);
		pthread_mutex_unlock(&q->mu);
	}
	/* connections first: closing one looks through the users' waiters */
	while (A->nconns)
		conn_close(A, A->nconns - 1);
	/* the overlays go before the keys they use are wiped */
	if (A->views)
		ovc_views_set_keys_drop_hook(A->views, NULL, NULL);
	ovc_mounts_free(A->mounts);
	A->mounts = NULL;
	if (A->journal_fd > 0)
		close(A->journal_fd);
	A->journal_fd = -1;
	for (size_t i = 0; i < A->nusers; i++) {
		struct uent *ue = &A->users[i];

		if (ue->q.started)
			pthread_join(ue->q.th, NULL);
		ovc_fetch_result_release(&ue->q.res);
		req_clear(&ue->q);
		pthread_mutex_destroy(&ue->q.mu);
		pthread_cond_destroy(&ue->q.cv);
		ovc_user_free(ue->u);
	}
	free(A->users);
	A->users = NULL;
	A->nusers = 0;
	if (A->listen_fd >= 0) {
		close(A->listen_fd);
		unlink(A->sock_path);
	}
	if (A->sig_fd >= 0)
		close(A->sig_fd);
	if (A->wake[0] >= 0) {
		close(A->wake[0]);
		close(A->wake[1]);
	}
	if (A->lock_fd >= 0)
		close(A->lock_fd);
	ovc_views_free(A->views);
	ovc_mtab_free(A->mtab);
	A->mtab = NULL;
	ovc_config_free(A->cfg);
}

int ovc_agent_run(const ovc_agent_opts *o)
{
	static struct agent agent;
	struct agent *A = &agent;
	ovc_minisign_pubkey pks[OVC_CONFIG_MAX_ORG_KEYS];
	sigset_t ss;
	int rc, status = 1;

	memset(A, 0, sizeof(*A));
	A->o = *o;
	A->lock_fd = A->listen_fd = A->sig_fd = A->wake[0] = A->wake[1] = A->journal_fd = -1;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	sigaddset(&ss, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &ss, NULL) != 0)
		return 1;
	ovc_config_opts_env(&A->copts, o->mode, o->config_file);
	ovc_log_init(OVC_LOG_INFO);
	rc = load_config(A, &A->cfg);
	if (rc) {
		ovc_log_error("cannot start: the config has errors");
		return rc == -EINVAL ? 2 : 1;
	}
	ovc_log_init(A->cfg->log_level);
	if (load_org_keys(A->cfg, pks) != 0) {
		status = 2;
		goto out;
	}
	rc = ovc_private_dir(A->cfg->runtime_dir, o->mode == OVC_CONFIG_SYSTEM ? 0755 : 0700, 1);
	if (rc) {
		ovc_log_error("runtime_dir %s: %s", A->cfg->runtime_dir,
			      rc == -EPERM ? "not ours, or writable by others" : strerror(-rc));
		goto out;
	}
	if (o->mode == OVC_CONFIG_SYSTEM && (rc = ovc_private_dir(A->cfg->cache_dir, 0700, 1))) {
		ovc_log_error("cache_dir %s: %s", A->cfg->cache_dir,
			      rc == -EPERM ? "not ours, or writable by others" : strerror(-rc));
		goto out;
	}
	if (take_lock(A) != 0)
		goto out;
	{
		ovc_err e = { 0 };

		if (ovc_mtab_open(o->mountinfo, &A->mtab, &e) != 0) {
			ovc_log_error("cannot start: %s", e.msg);
			goto out;
		}
	}
	A->views = ovc_views_new();
	A->sig_fd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	if (!A->views || A->sig_fd < 0 || pipe2(A->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
		ovc_log_error("cannot start: %s", strerror(errno ? errno : ENOMEM));
		goto out;
	}
	/* caches and skeletons first, then the overlays (locked or not: fail
	 * closed), then the socket, then the fetches */
	if (add_users(A, pks) != 0 && !A->nusers)
		goto out;
	if (start_mounts(A) != 0)
		goto out;
	smb_check_all(A);   /* shares mounted before we started */
	if (open_socket(A) != 0)
		goto out;
	ovc_log_info("started (%s mode, %zu user%s, %zu overlay%s, socket %s, policies from %s)",
		     o->mode == OVC_CONFIG_SYSTEM ? "system" : "user", A->nusers,
		     A->nusers == 1 ? "" : "s", ovc_mounts_count(A->mounts),
		     ovc_mounts_count(A->mounts) == 1 ? "" : "s", A->sock_path, A->cfg->policy_url);
	if (o->ready_fd >= 0) {
		if (write(o->ready_fd, "r", 1) != 1)
			ovc_log_warn("cannot tell the parent we are ready");
		close(o->ready_fd);
	}
	for (;;) {
		struct pollfd pf[5 + OVC_CTL_MAX_CONNS];
		size_t np = 0, nc = A->nconns;
		int conn_fds[OVC_CTL_MAX_CONNS];
		int timeout = 1000;
		long long ms = now_ms();

		pf[np++] = (struct pollfd){ .fd = A->sig_fd, .events = POLLIN };
		pf[np++] = (struct pollfd){ .fd = A->wake[0], .events = POLLIN };
		pf[np++] = (struct pollfd){ .fd = A->listen_fd, .events = POLLIN };
		pf[np++] = (struct pollfd){ .fd = ovc_mtab_fd(A->mtab), .events = POLLPRI };
		pf[np++] = (struct pollfd){ .fd = ovc_mtab_file_fd(A->mtab), .events = POLLIN };
		for (size_t i = 0; i < nc; i++) {
			conn_fds[i] = A->conns[i].fd;
			pf[np++] = (struct pollfd){ .fd = A->conns[i].eof ? -1 : A->conns[i].fd,
						    .events = POLLIN };
			if (A->conns[i].deadline_ms - ms < timeout)
				timeout = A->conns[i].deadline_ms > ms ? (int)(A->conns[i].deadline_ms - ms) : 0;
		}
		if (poll(pf, np, timeout) < 0 && errno != EINTR) {
			ovc_log_error("poll: %s", strerror(errno));
			break;
		}
		if (pf[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(A->sig_fd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGHUP) {
					reload(A);
					/* and retry failed mounts now */
					ovc_mounts_sync(A->mounts, time(NULL), 1);
				} else if (si.ssi_signo != SIGPIPE) {
					ovc_log_info("signal %u: stopping", si.ssi_signo);
					status = 0;
					goto out;
				}
			}
		}
		if (pf[1].revents & POLLIN) {
			char b[64];

			while (read(A->wake[0], b, sizeof(b)) > 0)
				;
			for (size_t i = 0; i < A->nusers; i++)
				fetch_done(A, &A->users[i]);
		}
		for (size_t i = 0; i < nc; i++) {
			size_t ci;

			if (!(pf[5 + i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ci = conn_index(A, conn_fds[i]);
			if (ci != (size_t)-1)
				conn_read(A, ci);
		}
		if (pf[2].revents & POLLIN)
			while (conn_accept(A) == 0)
				;
		timers(A);
		/* the mount table: shares mounted and gone, overlays taken
		 * from outside */
		{
			int woke = (pf[3].revents & (POLLPRI | POLLERR)) != 0;

			if (woke)
				ovc_mounts_table_changed(A->mounts);
			smb_refresh(A, woke || (pf[4].revents & POLLIN));
		}
		/* after any change of views, and each second: new and dropped
		 * folders, pending unmounts, retries, dead sessions */
		ovc_mounts_sync(A->mounts, time(NULL), 0);
	}
out:
	shutdown_agent(A);
	if (status == 0)
		ovc_log_info("stopped: keys wiped");
	return status;
}
