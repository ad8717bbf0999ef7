/*
 * agent.h - overcryptd's service: the users it serves (one in user mode,
 * the configured list in system mode), their fetch threads, the control
 * socket (docs/control-protocol.md), timers and signals.
 *
 * Start-up order (DESIGN.md): take the lock file in the runtime folder, load
 * each user's cache or rule skeleton and publish their views, mount the
 * overlays those views ask for (daemon/mounts.h; stale ones of a killed
 * predecessor removed first), then open the control socket, then fetch.
 * The overlays follow the views after every event and on the 1 s tick.
 * SIGTERM and SIGINT stop it (overlays unmounted, then keys wiped, views
 * withdrawn); SIGHUP re-reads the config (the server settings and the log
 * level apply at once; other changes are logged as needing a restart) and
 * retries failed mounts at once.
 *
 * Threads: the main thread owns every user's state and the socket; each
 * user has a fetch thread that only moves bytes (ovc_fetch_policy) and
 * hands the result back through a pipe. Nothing here is reentrant: one
 * agent per process.
 */
#ifndef OVC_DAEMON_AGENT_H
#define OVC_DAEMON_AGENT_H

#include "daemon/config.h"
#include "daemon/view.h"

/* The longest control request (bytes, '\n' included) and how long a
 * client may take to send it. */
#define OVC_CTL_MAX_REQUEST 65536
#define OVC_CTL_TIMEOUT_MS 5000
#define OVC_CTL_MAX_CONNS 64

typedef struct ovc_agent_opts {
	enum ovc_config_mode mode;
	const char *config_file;   /* --config, or NULL */
	int ready_fd;              /* -1, or a pipe to write one byte to once
				    * the socket is open (daemonizing) */
	const char *mountinfo;     /* --mountinfo: SMB mounts read from this
				    * file, not /proc/self/mountinfo (tests:
				    * daemon/mtab.h); NULL normally */
} ovc_agent_opts;

/* Run the agent until a stop signal. Returns the process exit status: 0
 * after a clean stop, 1 when it could not start or failed (logged), 2 for
 * a config error (each problem logged with file:line). Blocks SIGTERM,
 * SIGINT, SIGHUP and SIGPIPE in the calling thread (before any thread
 * starts) and takes them through a signalfd. */
int ovc_agent_run(const ovc_agent_opts *o);

#endif
