/*
 * client.c - the client side of the control socket (see client.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/client.h"
#include "daemon/config.h"

/* The first reply buffer; it doubles up to OVC_CLIENT_REPLY_MAX. */
#define REPLY_START 4096

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ovc_client_close(ovc_client *c)
{
	if (c && c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

/* Connect a new socket to `<dir>/control` (its name into `path`). Returns
 * the fd or -errno (-ETIMEDOUT when the agent does not accept in time). */
static int connect_one(const char *dir, char path[OVC_CLIENT_PATH_MAX])
{
	struct sockaddr_un sa;
	struct timeval tv = { OVC_CLIENT_IO_TIMEOUT_MS / 1000,
			      (OVC_CLIENT_IO_TIMEOUT_MS % 1000) * 1000 };
	int fd, n, rc;

	n = snprintf(path, OVC_CLIENT_PATH_MAX, "%s/%s", dir, OVC_CLIENT_SOCKET_NAME);
	if (n < 0 || n >= OVC_CLIENT_PATH_MAX)
		return -ENAMETOOLONG;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, (size_t)n + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A Unix connect() waits for a full backlog at most SO_SNDTIMEO. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = (errno == EAGAIN || errno == EINPROGRESS) ? -ETIMEDOUT : -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* May the next socket be tried after this connect error? */
static int no_agent_there(int rc)
{
	return rc == -ENOENT || rc == -ENOTDIR || rc == -ECONNREFUSED;
}

int ovc_client_connect(ovc_client *c, const char *runtime_dir,
		       const char *fallback_dir, ovc_err *e)
{
	char first[OVC_CLIENT_PATH_MAX] = "";
	const char *dir = runtime_dir;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int rc;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (!fallback_dir)
		fallback_dir = OVC_CONFIG_SYSTEM_RUNTIME_DIR;
	rc = -ENOENT;
	if (runtime_dir) {
		rc = connect_one(runtime_dir, c->path);
		snprintf(first, sizeof(first), "%s", c->path);
	}
	if (rc < 0 && no_agent_there(rc) &&
	    (!runtime_dir || strcmp(runtime_dir, fallback_dir) != 0)) {
		dir = fallback_dir;
		rc = connect_one(dir, c->path);
	}
	if (rc < 0) {
		if (rc == -ENAMETOOLONG)
			return ovc_err_set(e, rc, "the control socket's path is too long: %s/%s",
					   dir, OVC_CLIENT_SOCKET_NAME);
		if (!no_agent_there(rc))
			return ovc_err_set(e, rc, "%s: cannot connect: %s", c->path,
					   rc == -ETIMEDOUT ? "the agent does not answer" :
					   strerror(-rc));
		if (first[0] && strcmp(first, c->path) != 0)
			return ovc_err_set(e, -ENOENT, "no agent is running (no socket at %s or %s)",
					   first, c->path);
		return ovc_err_set(e, -ENOENT, "no agent is running (no socket at %s)", c->path);
	}
	c->fd = rc;
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		rc = -errno;
		ovc_client_close(c);
		return ovc_err_set(e, rc, "%s: cannot learn who the agent is: %s", c->path,
				   strerror(-rc));
	}
	if (cred.uid != 0 && cred.uid != getuid()) {
		ovc_client_close(c);
		return ovc_err_set(e, -EPERM, "%s: the socket belongs to uid %u, neither root nor you; not used",
				   c->path, (unsigned)cred.uid);
	}
	c->peer_uid = cred.uid;
	c->peer_pid = cred.pid;
	return 0;
}

/* Send all `len` bytes (SO_SNDTIMEO bounds each wait). */
static int send_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read one line (at most OVC_CLIENT_REPLY_MAX bytes, '\n' included) until
 * `deadline` (now_ms()). *out (ovc_wipe_free()) gets it without the '\n',
 * NUL-terminated; *len its length. */
static int read_line(int fd, long long deadline, char **out, size_t *len)
{
	size_t size = REPLY_START, used = 0;
	char *buf = ovc_wipe_malloc(size + 1), *nl;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int rc;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		long long left = deadline - now_ms();
		ssize_t n;

		if (used == size) {
			size_t nsize = size * 2 > OVC_CLIENT_REPLY_MAX ? OVC_CLIENT_REPLY_MAX : size * 2;
			char *nbuf;

			if (size == OVC_CLIENT_REPLY_MAX) {
				rc = -EMSGSIZE;
				break;
			}
			nbuf = ovc_wipe_malloc(nsize + 1);
			if (!nbuf) {
				rc = -ENOMEM;
				break;
			}
			memcpy(nbuf, buf, used);
			ovc_wipe_free(buf);
			buf = nbuf;
			size = nsize;
		}
		if (left <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		rc = poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0) {
			rc = -errno;
			break;
		}
		if (rc == 0)
			continue;  /* the deadline check above ends it */
		n = recv(fd, buf + used, size - used, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0) {
			rc = -EPIPE;
			break;
		}
		nl = memchr(buf + used, '\n', (size_t)n);
		used += (size_t)n;
		if (nl) {
			*nl = '\0';
			*out = buf;
			*len = (size_t)(nl - buf);
			return 0;
		}
	}
	ovc_wipe_free(buf);
	return rc;
}

/* Parse the reply line into *reply (an object with a boolean "ok"). */
static int parse_reply(const char *path, const char *line, size_t len,
		       cJSON **reply, ovc_err *e)
{
	const char *end = NULL;
	cJSON *r = cJSON_ParseWithLengthOpts(line, len, &end, 0);
	const cJSON *ok, *err;

	if (r && end)
		end += strspn(end, " \t\r");
	if (!r || !cJSON_IsObject(r) || !end || end != line + len ||
	    !cJSON_IsBool(ok = cJSON_GetObjectItemCaseSensitive(r, "ok"))) {
		cJSON_Delete(r);
		return ovc_err_set(e, -EPROTO, "%s: the agent's reply is not a JSON object with \"ok\"",
				   path);
	}
	*reply = r;
	if (cJSON_IsTrue(ok))
		return 0;
	err = cJSON_GetObjectItemCaseSensitive(r, "error");
	if (cJSON_IsString(err) && err->valuestring[0])
		return ovc_err_set(e, -EREMOTEIO, "%s", err->valuestring);
	return ovc_err_set(e, -EREMOTEIO, "the agent refused the request (%s)",
			   ovc_client_code(r)[0] ? ovc_client_code(r) : "no reason given");
}

int ovc_client_call(ovc_client *c, const cJSON *req, int reply_timeout_ms,
		    cJSON **reply, ovc_err *e)
{
	/* cJSON_PrintPreallocated() wants 5 bytes of slack. */
	const size_t cap = OVC_CLIENT_REQUEST_MAX + 5;
	long long deadline;
	char *buf = NULL;
	size_t len;
	int rc;

	*reply = NULL;
	if (c->fd < 0)
		return ovc_err_set(e, -EBADF, "not connected to the agent");
	if (!cJSON_IsObject(req)) {
		rc = ovc_err_set(e, -EINVAL, "the request is not a JSON object");
		goto out;
	}
	buf = ovc_wipe_malloc(cap);
	if (!buf) {
		rc = ovc_err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	if (!cJSON_PrintPreallocated((cJSON *)req, buf, (int)cap, 0) ||
	    (len = strlen(buf)) + 1 > OVC_CLIENT_REQUEST_MAX) {
		rc = ovc_err_set(e, -EMSGSIZE, "the request is longer than %d bytes",
				 OVC_CLIENT_REQUEST_MAX);
		goto out;
	}
	buf[len++] = '\n';
	rc = send_all(c->fd, buf, len);
	ovc_wipe_free(buf);
	buf = NULL;
	if (rc) {
		rc = ovc_err_set(e, rc, "%s: cannot send the request: %s", c->path,
				 rc == -ETIMEDOUT ? "the agent does not read it" : strerror(-rc));
		goto out;
	}
	if (reply_timeout_ms <= 0)
		reply_timeout_ms = OVC_CLIENT_REPLY_TIMEOUT_MS;
	deadline = now_ms() + reply_timeout_ms;
	rc = read_line(c->fd, deadline, &buf, &len);
	if (rc == -ETIMEDOUT)
		rc = ovc_err_set(e, rc, "%s: no reply from the agent within %d s", c->path,
				 (reply_timeout_ms + 999) / 1000);
	else if (rc == -EMSGSIZE)
		rc = ovc_err_set(e, rc, "%s: the agent's reply is longer than %zu bytes",
				 c->path, OVC_CLIENT_REPLY_MAX);
	else if (rc == -EPIPE)
		rc = ovc_err_set(e, -EPROTO, "%s: the agent closed the connection before its reply ended",
				 c->path);
	else if (rc)
		rc = ovc_err_set(e, rc, "%s: cannot read the reply: %s", c->path, strerror(-rc));
	else
		rc = parse_reply(c->path, buf, len, reply, e);
out:
	ovc_wipe_free(buf);
	ovc_client_close(c);
	return rc;
}

int ovc_client_request(const char *runtime_dir, const char *fallback_dir,
		       const cJSON *req, int reply_timeout_ms, cJSON **reply,
		       ovc_err *e)
{
	ovc_client c;
	int rc;

	*reply = NULL;
	rc = ovc_client_connect(&c, runtime_dir, fallback_dir, e);
	if (rc)
		return rc;
	return ovc_client_call(&c, req, reply_timeout_ms, reply, e);
}

const char *ovc_client_code(const cJSON *reply)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(reply, "code");

	return cJSON_IsString(code) ? code->valuestring : "";
}
