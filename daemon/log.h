/*
 * log.h - the agent's log: one line per event on stderr, which journald
 * collects. Under systemd (JOURNAL_STREAM set) each line starts with the
 * syslog priority ("<3>" …) so journald records the level; on a terminal it
 * reads "overcryptd: warning: …". Never pass a secret: messages name files,
 * users, serials and errors, never keys, identities or passphrases.
 *
 * Thread-safety: ovc_log() may be called from any thread (one write(2) per
 * line); ovc_log_init() once from main before threads start.
 */
#ifndef OVC_DAEMON_LOG_H
#define OVC_DAEMON_LOG_H

#include "daemon/config.h"

/* Set the threshold (messages above it are dropped; OVC_LOG_SILENT drops
 * all, for fuzzers and tests) and the prefix style
 * from the environment (JOURNAL_STREAM). */
#define OVC_LOG_SILENT ((enum ovc_log_level)-1)

void ovc_log_init(enum ovc_log_level level);
void ovc_log_set_level(enum ovc_log_level level);

void ovc_log(enum ovc_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define ovc_log_error(...) ovc_log(OVC_LOG_ERROR, __VA_ARGS__)
#define ovc_log_warn(...) ovc_log(OVC_LOG_WARNING, __VA_ARGS__)
#define ovc_log_info(...) ovc_log(OVC_LOG_INFO, __VA_ARGS__)
#define ovc_log_debug(...) ovc_log(OVC_LOG_DEBUG, __VA_ARGS__)

#endif
