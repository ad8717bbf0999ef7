/*
 * mounts.h - the agent's set of overlays (fusefs/overlay.h): which folders
 * are mounted, and keeping that in line with the published views.
 *
 * The desired folders are the union of every published view's `folders`
 * (ovc_views_guard_folders(): the config's [mount] paths and the rules'
 * local folders), normalised and reduced to the outermost: a folder inside
 * another desired folder (whole path components) is served by the outer
 * overlay, so renames between them stay renames. ovc_mounts_sync() then:
 *  1. unmounts overlays no longer desired; one with open handles is kept as
 *     "pending-unmount" and unmounted at a later sync once they are closed
 *     (an inner overlay that a broader folder now covers goes first, so the
 *     broader one is mounted over a folder with no overlay of ours inside;
 *     while it is pending, the broader one is mounted on top anyway and the
 *     inner subtree waits for it to go);
 *  2. remounts an overlay whose session died (unmounted from outside,
 *     aborted): logged, unmounted, cleaned, mounted again;
 *  3. mounts the missing ones: first it detaches stale overlays a killed
 *     predecessor left at or below the folder (statfs() gives ENOTCONN, or
 *     /proc/self/mountinfo shows a fuse.overcrypt mount of our uid that is
 *     none of ours: umount2(MNT_DETACH) as root, `fusermount3 -u -z`
 *     otherwise), then opens the folder (O_RDONLY | O_DIRECTORY |
 *     O_NOFOLLOW | O_CLOEXEC; in user mode only a folder owned by our uid,
 *     DESIGN.md "User mode overlays only folders the user owns"; never a
 *     system folder such as / or /etc, see ovc_rule_system_folder()) and
 *     hands the descriptor to ovc_overlay_mount() (allow_other in system
 *     mode or with [mount] allow_other; read_ahead_kb 1024 as root);
 *  4. after each mount, looks for processes (other than ours) whose working
 *     folder or open files are inside the folder on the backing side
 *     (/proc/PID/cwd, /proc/PID/fd: under the path and on the backing
 *     device): they bypass the overlay; each is logged (pid, command) and
 *     kept for status until it has left.
 * Network backings (a folder on an SMB share of the watched table, or on a
 * cifs/smb2/nfs file system): the overlay runs without writeback cache or
 * keep_cache (other clients write there), and it is mounted twice, one
 * over the other, both serving the share through descriptors opened
 * before either was mounted: a `umount` of the folder takes the top one,
 * the one under it goes on serving, and the agent mounts a new top at once
 * (woken by the mount table) and logs it, so there is no moment in which
 * programs write to the share past the overlay. A top detached lazily
 * (`umount -l`) while files are open on it keeps serving them until they
 * are closed. Overlays are only ever unmounted by path when they are the
 * topmost mount there (else their connection is ended), so unmounting one
 * never takes the share or another overlay with it.
 * A folder that does not exist is "missing" (never created) and a mount
 * that fails is "failed" with its reason; both are tried again at a later
 * sync, at most every OVC_MOUNTS_RETRY_S seconds (at once with `force`),
 * while the other overlays keep serving.
 *
 * Thread-safety: none. Everything runs on the agent's main thread, the
 * thread that publishes views (the keys-drop hook calls
 * ovc_mounts_flush_encrypted() from ovc_views_publish(), so publishing
 * from another thread would race with a sync).
 */
#ifndef OVC_DAEMON_MOUNTS_H
#define OVC_DAEMON_MOUNTS_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "daemon/mtab.h"
#include "daemon/view.h"
#include "fusefs/overlay.h"
#include "policy/rules.h"

/* A failed or missing mount is tried again at most this often. */
#define OVC_MOUNTS_RETRY_S 30
/* Bypassing processes kept per mount (more are counted in the log only). */
#define OVC_MOUNTS_MAX_BYPASS 32
/* read_ahead_kb given to each overlay when running as root. */
#define OVC_MOUNTS_READ_AHEAD_KB 1024

typedef struct ovc_mounts ovc_mounts;

typedef struct ovc_mounts_opts {
	ovc_views *views;   /* borrowed; outlives the set */
	int system;         /* system mode: allow_other, folders of any owner */
	int allow_other;    /* [mount] allow_other = yes (user mode) */
	int journal_fd;     /* > 0: the folder for the overlays' rewrap journal
			     * (fusefs/overlay.h), borrowed; else none */
	const ovc_mtab *mtab; /* the SMB shares (borrowed; NULL: none) */
} ovc_mounts_opts;

/* An empty set (nothing mounted yet). 0 or -ENOMEM. Free with
 * ovc_mounts_free(). */
int ovc_mounts_new(const ovc_mounts_opts *o, ovc_mounts **out);

/* Unmount every overlay (lazily when busy: processes then get ENOTCONN)
 * and free the set. NULL is fine. */
void ovc_mounts_free(ovc_mounts *m);

/* Bring the overlays in line with the views (see the top of this file):
 * call it after views change and once a second (pending unmounts, retries,
 * dead sessions, bypassing processes that have left). `force`: try failed
 * and missing folders now, whatever OVC_MOUNTS_RETRY_S says (SIGHUP).
 * It also finishes folder moves between rules that a crash interrupted, for
 * users whose keys are now held (ovc_overlay_resume()).
 * Problems are logged and kept for ovc_mounts_status(); returns 0, or
 * -ENOMEM when the desired set could not be computed (nothing changed). */
int ovc_mounts_sync(ovc_mounts *m, time_t now, int force);

/* The kernel's mount table changed (poll() on /proc/self/mountinfo): the
 * next sync also checks that each overlay is still in it. One taken away
 * from outside (`umount`, `umount -l`) is mounted again at once, and
 * logged; see "Network backings" at the top. */
void ovc_mounts_table_changed(ovc_mounts *m);

/* Files open on the overlays at or below `path` (before `overcrypt
 * unmount` takes a share away); the first such overlay's folder into
 * `where` when any. */
uint64_t ovc_mounts_open_under(const ovc_mounts *m, const char *path, char *where,
			       size_t size);

/* Unmount the share mounted on `path` (after its overlays are gone):
 * umount2() as root (a share mounted before the folder around it was
 * overlaid is reached on that folder's backing side), else `umount PATH`
 * (a share the user may unmount). 0 or -errno with `e` saying why (EBUSY:
 * files are open on it). */
int ovc_mounts_umount_share(const ovc_mounts *m, const char *path, ovc_err *e);

/* Before the keys of `uid` go ((uid_t)-1: everyone's): every overlay
 * flushes and drops its cached plaintext of encrypted files
 * (ovc_overlay_flush_encrypted()). The agent's keys-drop hook. */
void ovc_mounts_flush_encrypted(ovc_mounts *m, uid_t uid);

/* The mounted overlay serving the absolute, normalised `path` (the one
 * with the longest mount point at or above it), or NULL. Borrowed until
 * the next sync. */
ovc_overlay *ovc_mounts_find(const ovc_mounts *m, const char *path);

/* How many overlays are mounted (pending-unmount ones included). */
size_t ovc_mounts_count(const ovc_mounts *m);

/* The "mounts" array of the status reply (docs/control-protocol.md) as
 * `uid` sees it: every folder (in system mode only those that serve a
 * folder of `v`, so that no user learns another's folders) with its
 * state, reason, the assets of
 * `rules` (`nrules`, as applied for the login name `user`: may be NULL/0)
 * whose local folder is the folder or below it, the overlay's counters,
 * the handles `uid` opened with keys it no longer has (when `v` is not
 * READY; `v` may be NULL), and the bypassing processes. NULL on ENOMEM;
 * the caller owns the result (cJSON_Delete). */
cJSON *ovc_mounts_status(const ovc_mounts *m, uid_t uid, const ovc_view *v,
			 const ovc_rule *rules, size_t nrules,
			 const char *user);

#endif
