/*
 * mtab.h - the kernel SMB mounts of this machine (cifs/smb3 lines of the
 * mount table), watched for changes, so that smb:// rules follow shares as
 * they are mounted and unmounted (DESIGN.md, "SMB").
 *
 * The table is /proc/self/mountinfo. The kernel flags a change of it to
 * poll() as POLLPRI|POLLERR on an open descriptor of the file; the agent
 * polls ovc_mtab_fd() with POLLPRI and calls ovc_mtab_update() after each
 * wake-up and on its 1 s tick. For tests (this machine has no cifs kernel
 * module) the SMB lines can be read from another file in the same format
 * (overcryptd --mountinfo FILE): that file is watched with inotify and
 * checked for changes (inode, size, mtime) at every update, and
 * /proc/self/mountinfo is still polled,
 * because the agent also watches its own overlays there.
 *
 * Shares being unmounted by `overcrypt unmount` are "forgotten" at once
 * (ovc_mtab_forget()): their lines no longer count, until a read of the
 * table no longer shows them (then the mark goes), so a read made between
 * taking the overlay down and the share's unmount cannot bring the overlay
 * back.
 *
 * Thread-safety: none; the agent's main thread owns it.
 */
#ifndef OVC_DAEMON_MTAB_H
#define OVC_DAEMON_MTAB_H

#include <stddef.h>

#include "common/common.h"
#include "policy/rules.h"

/* The kernel's mount table. */
#define OVC_MTAB_PROC "/proc/self/mountinfo"

typedef struct ovc_mtab ovc_mtab;

/* Open the table: `file` NULL for OVC_MTAB_PROC, else a file in its
 * format (a test's), which must be a regular file owned by us or root and
 * writable by nobody else. Reads it once. Errors: -errno with `e` naming
 * the file. Free with ovc_mtab_free(). */
int ovc_mtab_open(const char *file, ovc_mtab **out, ovc_err *e);
void ovc_mtab_free(ovc_mtab *t);

/* The descriptor to poll() for POLLPRI (the kernel's table, always). */
int ovc_mtab_fd(const ovc_mtab *t);

/* With a --mountinfo file: an inotify descriptor on its folder to poll()
 * for POLLIN, so that a change of the file wakes the agent at once; -1
 * otherwise (the file is then checked on the 1 s tick only).
 * ovc_mtab_update() drains it. */
int ovc_mtab_file_fd(const ovc_mtab *t);

/* Read the table again when it may have changed: `woke` says poll()
 * reported POLLPRI or POLLERR on ovc_mtab_fd() (the kernel's table
 * changed); a --mountinfo file is also read when its inode, size or mtime
 * changed. Returns 1 when the SMB mounts are not what they were, 0 when
 * they are, -errno when the table cannot be read (the last one stays,
 * logged once). */
int ovc_mtab_update(ovc_mtab *t, int woke);

/* The SMB mounts now (forgotten ones left out), in table order. Borrowed
 * until the next update or forget. */
const ovc_smb_mount *ovc_mtab_smb(const ovc_mtab *t, size_t *n);

/* The SMB mounts as they were before the last change that
 * ovc_mtab_update() reported (returned 1): what appeared and what went.
 * Borrowed as above. */
const ovc_smb_mount *ovc_mtab_prev(const ovc_mtab *t, size_t *n);

/* The SMB mount whose mount point is `mountpoint` (normalised; the last
 * one in the table when several are stacked), or NULL. Borrowed as above. */
const ovc_smb_mount *ovc_mtab_find(const ovc_mtab *t, const char *mountpoint);

/* Leave the share mounted at `mountpoint` out from now on (see the top);
 * ovc_mtab_unforget() takes that back (its unmount failed). 0 or -ENOMEM. */
int ovc_mtab_forget(ovc_mtab *t, const char *mountpoint);
void ovc_mtab_unforget(ovc_mtab *t, const char *mountpoint);

/* "//host/share[/prefix]" of `m` into `out`. */
void ovc_smb_source(const ovc_smb_mount *m, char *out, size_t size);

/* The most common support case (DESIGN.md, issue 7): a share mounted under
 * a name no rule uses, while a rule names the same server another way
 * (rules written with the full name, the share mounted with the short
 * one). For `m`, which no smb:// rule names (host and share), and the
 * rules' hosts `hosts` (`n`, lower case): a short name that is the first
 * label of a rule's host, or the reverse, is logged at once; otherwise the
 * rule hosts are resolved (getaddrinfo, on a detached thread so that a slow
 * DNS does not hold the agent up) and one with an address equal to the
 * mount's (its addr= option, else its host resolved) is logged. The log
 * line names the mount point, the share as mounted and the rule's host. */
void ovc_smb_explain_unmatched(const ovc_smb_mount *m, const char *const *hosts,
			       size_t n);

/* Pure part of the above, for tests: is `a` the first label of `b` or the
 * reverse ("files" and "files.corp.local"), ASCII-case-insensitively? */
int ovc_smb_short_name_of(const char *a, const char *b);

#endif
