/*
 * client.h - the client side of the agent's control socket
 * (docs/control-protocol.md), as the overcrypt CLI uses it.
 *
 * One request per connection: connect, check the peer, send one JSON line,
 * read one JSON line back, close.
 *
 * Where: the user socket `<runtime_dir>/control` first; when it does not
 * exist or nobody listens on it (ENOENT, ENOTDIR, ECONNREFUSED), the system
 * socket `<fallback_dir>/control` (OVC_CONFIG_SYSTEM_RUNTIME_DIR unless a
 * test gives another). Any other connect error is reported, not skipped.
 *
 * Who: after connecting, the peer's uid (SO_PEERCRED) must be 0 or
 * getuid(); another user's process listening at the path is refused before
 * anything is sent (a request may hold the identity).
 *
 * Time-outs: connecting and sending each get OVC_CLIENT_IO_TIMEOUT_MS; the
 * reply gets what the caller asks (a refresh waits for the fetch: the
 * CLI allows twice the config's [server] timeout). SIGPIPE is never raised (MSG_NOSIGNAL).
 *
 * Secrets: the request line is printed into ovc_wipe_malloc() memory and
 * the reply is read into it, so both are wiped when freed. cJSON trees are
 * wiped on free too once ovc_common_init() ran (the caller's job).
 *
 * Errors: negative errno-style codes with a sentence in `e` (may be NULL)
 * that names the socket. Nothing here prints or exits. Thread-safe (no
 * global state; distinct clients are independent).
 */
#ifndef OVC_DAEMON_CLIENT_H
#define OVC_DAEMON_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "common/common.h"

#define OVC_CLIENT_SOCKET_NAME "control"        /* in the runtime dir */
#define OVC_CLIENT_REQUEST_MAX 65536            /* a request line, '\n' included */
#define OVC_CLIENT_REPLY_MAX ((size_t)1 << 20)  /* a reply line, '\n' included */
#define OVC_CLIENT_IO_TIMEOUT_MS 5000           /* connect, send */
#define OVC_CLIENT_REPLY_TIMEOUT_MS 30000       /* the usual reply wait */
#define OVC_CLIENT_PATH_MAX 108                 /* sun_path, NUL included */

/* A connection. Zero it (or let ovc_client_connect() fill it); fd is -1
 * when closed. */
typedef struct ovc_client {
	int fd;
	char path[OVC_CLIENT_PATH_MAX];  /* the socket connected to */
	uid_t peer_uid;                  /* the agent's uid (SO_PEERCRED) */
	pid_t peer_pid;                  /* and its pid */
} ovc_client;

/* Connect `c` to the agent: `<runtime_dir>/control`, else
 * `<fallback_dir>/control` (NULL: OVC_CONFIG_SYSTEM_RUNTIME_DIR; the same
 * folder as runtime_dir, or runtime_dir NULL: tried once) as the top of
 * this header says, then check the peer's uid. On error c->fd is -1 and:
 * -ENOENT "no agent is running (no socket at A or B)" when neither socket
 * can be reached (no file, or nobody listening), -EPERM when the peer is
 * neither root nor us ("PATH: the socket belongs to uid N, neither root nor
 * you; not used"), -ETIMEDOUT (the agent did not accept in time),
 * -ENAMETOOLONG (a path does not fit sun_path), other -errno. */
int ovc_client_connect(ovc_client *c, const char *runtime_dir,
		       const char *fallback_dir, ovc_err *e);

/* Send `req` (a cJSON object, borrowed) as one line and read the one-line
 * reply on the connected `c`, waiting at most `reply_timeout_ms` for it
 * (<= 0: OVC_CLIENT_REPLY_TIMEOUT_MS). Closes `c` either way (one request
 * per connection). *reply (caller frees with cJSON_Delete()) is set when
 * the return is 0 (the reply says "ok": true) or -EREMOTEIO (it says
 * "ok": false: `e` holds its "error" sentence; read its "code" with
 * ovc_client_code(), "wait_s" etc. from the tree), else NULL. Errors:
 * -EMSGSIZE (the request line exceeds OVC_CLIENT_REQUEST_MAX, or the reply
 * OVC_CLIENT_REPLY_MAX), -ETIMEDOUT (no whole reply in time, or a send
 * stuck), -EPROTO (the reply is not one JSON object with a boolean "ok",
 * or the connection closed before a whole line), -EINVAL (`req` is not an
 * object), -ENOMEM, other -errno. */
int ovc_client_call(ovc_client *c, const cJSON *req, int reply_timeout_ms,
		    cJSON **reply, ovc_err *e);

/* Close `c` (a closed or zeroed-then-failed client is fine: fd < 0). */
void ovc_client_close(ovc_client *c);

/* ovc_client_connect() then ovc_client_call(): one whole exchange, with
 * the same arguments, returns and errors. */
int ovc_client_request(const char *runtime_dir, const char *fallback_dir,
		       const cJSON *req, int reply_timeout_ms, cJSON **reply,
		       ovc_err *e);

/* The reply's "code" string ("wait", "nokey"…; static to the tree), or ""
 * when there is none. `reply` may be NULL. */
const char *ovc_client_code(const cJSON *reply);

#endif
