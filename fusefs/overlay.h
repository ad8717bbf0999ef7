/*
 * overlay.h - the FUSE overlay: one mounted folder, served in place through
 * a descriptor of the same folder opened before the mount, encrypting and
 * decrypting by the views the agent publishes (daemon/view.h).
 *
 * The overlay knows no HTTP, no config file and no policy document: it is
 * given the backing directory descriptor, the path it is mounted on (the
 * rules match absolute paths) and the table of views. Every request asks
 * ovc_views_get() for the uid that makes it (fuse_req_ctx); open and create
 * pin that view and the inode's file key to the handle until its release.
 * docs/overlay.md says how inodes and descriptors are managed and why.
 *
 * Threads: ovc_overlay_mount() mounts and starts the session's
 * multi-threaded loop in threads of its own; every other function may be
 * called from any thread except the overlay's own (the agent's main thread
 * calls them).
 */
#ifndef OVC_FUSEFS_OVERLAY_H
#define OVC_FUSEFS_OVERLAY_H

#include <stdint.h>
#include <sys/types.h>

#include "common/common.h"
#include "crypto/blockfile.h"
#include "daemon/view.h"

typedef struct ovc_overlay ovc_overlay;

typedef struct ovc_overlay_opts {
	const char *mountpoint;   /* absolute, normalised; the folder itself */
	int backing_fd;           /* O_DIRECTORY descriptor of the same folder,
				   * opened before mounting; the overlay takes
				   * it over (closed on unmount or failure) */
	ovc_views *views;         /* borrowed; outlives the overlay */
	int allow_other;          /* allow_other + default_permissions
				   * (system mode, or [mount] allow_other) */
	int network;              /* the backing is a network share: no
				   * writeback cache, no keep_cache, entry
				   * and attribute timeouts 0 (what another
				   * client wrote shows at once);
				   * auto_inval_data instead */
	unsigned read_ahead_kb;   /* > 0: set the mount's bdi read_ahead_kb
				   * (root only; a failure is logged) */
	/* Speed choices turned off, for the benchmark that measures each
	 * (tests/bench/bench_ovlmount.c, docs/overlay.md); the agent leaves
	 * them 0. None of them changes what is encrypted or refused. */
	int no_writeback;         /* no kernel writeback cache */
	int no_keep_cache;        /* never keep_cache on open */
	int no_readdirplus;       /* plain readdir */
	unsigned max_write;       /* 0: 1 MiB; else at most that, >= 4096 */
	int journal_fd;           /* > 0: a folder (descriptor, duplicated) for
				   * the journal of folders moved between rules
				   * (the agent's state folder, opened before
				   * mounting); 0 or -1: such moves give EXDEV */
} ovc_overlay_opts;

/* Mount the overlay on o->mountpoint and start serving. The mount shows
 * in /proc/self/mountinfo as source "overcrypt", type "fuse.overcrypt",
 * with default_permissions (and allow_other when asked): the agent finds
 * stale overlays of a killed predecessor by that. Errors: -errno with `e`
 * saying what failed (the folder, the FUSE mount). */
int ovc_overlay_mount(const ovc_overlay_opts *o, ovc_overlay **out,
		      ovc_err *e);

/* Stop serving and unmount (lazily when the mount is busy: processes then
 * get ENOTCONN), join the threads and free. NULL is fine. */
void ovc_overlay_unmount(ovc_overlay *ov);

/* For a mount that is no longer in the mount table (detached lazily from
 * outside while files were open, or stacked under another): end the
 * session by aborting its connection unless it has ended already, never
 * by unmounting the path (that would take whatever is mounted there now),
 * join the threads and free. Programs still inside get ENOTCONN. NULL is
 * fine. */
void ovc_overlay_discard(ovc_overlay *ov);

/* The device of the mount (st_dev of its root), 0 when unknown. */
dev_t ovc_overlay_dev(const ovc_overlay *ov);

/* The mount point (borrowed). */
const char *ovc_overlay_path(const ovc_overlay *ov);

/* Has the session ended on its own (unmounted from outside, aborted)? */
int ovc_overlay_dead(const ovc_overlay *ov);

typedef struct ovc_overlay_stats {
	uint64_t bytes_read, bytes_written;  /* plaintext through the mount */
	uint64_t files_opened;               /* opens and creates */
	uint64_t open_handles;               /* handles not yet released */
	uint64_t open_encrypted;             /* of which on encrypted files */
	uint64_t inodes;                     /* known to the kernel */
	uint64_t auth_failures;              /* blocks that failed (EIO) */
} ovc_overlay_stats;

void ovc_overlay_stats_get(const ovc_overlay *ov, ovc_overlay_stats *s);

/* Before the keys of `uid` go (lock, expiry): write back the kernel's
 * dirty pages of encrypted files and drop its cached plaintext of them
 * (fuse_lowlevel_notify_inval_inode), while the keys still exist. uid
 * (uid_t)-1 means every user. Returns the number of inodes invalidated. */
size_t ovc_overlay_flush_encrypted(ovc_overlay *ov, uid_t uid);

/* Handles still open that were opened by `uid` with its keys (status
 * counts them after a lock). */
uint64_t ovc_overlay_open_by(const ovc_overlay *ov, uid_t uid);

/* `overcrypt repair`: repair the encrypted file at the absolute `path`
 * (below the mount point) with the keys of `uid`'s view
 * (ovc_file_repair). The file must not be open through the overlay
 * (-EBUSY). Errors: -ENOENT, -EINVAL (not below this mount, not a
 * regular file, not encrypted), -EACCES (key not held), -EBADMSG,
 * -ENOTRECOVERABLE (see blockfile.h); `e` says which. */
int ovc_overlay_repair(ovc_overlay *ov, const char *path, uid_t uid, int force,
		       int dry_run, ovc_repair_report *r, ovc_err *e);

/* What ovc_overlay_convert() found. */
enum ovc_convert_result {
	OVC_CONV_CONVERTED,   /* encrypted now (dry run: would be) */
	OVC_CONV_ENCRYPTED,   /* already encrypted: nothing to do */
	OVC_CONV_NO_RULE,     /* plaintext where no rule encrypts: left */
};

/* Initial encryption (`overcrypt encrypt --initial`): encrypt the
 * plaintext file `path` (absolute, below the mount point) in place under
 * its rule's current key, with the keys of `uid`'s view, whatever
 * plaintext_under_rule says: a temporary file in the same folder, its mode,
 * owner, times and xattrs kept, fsynced, renamed over the old one, the
 * folder fsynced (a crash leaves the old file or the new one, at worst with
 * a stray ".ovc-rewrite.*" file beside it). Errors: -EINVAL (not a regular
 * file below the mount), -EBUSY (open for writing through the overlay),
 * -EMLINK (several hard links), -EACCES (the rule's key is not held),
 * -errno; `e` says which. */
int ovc_overlay_convert(ovc_overlay *ov, const char *path, uid_t uid,
			int dry_run, enum ovc_convert_result *res, ovc_err *e);

/* Finish the folder moves between rules that a crash interrupted: the
 * journal entries of this overlay whose user now holds the destination key
 * (and that no walk of this process is on now) are handed to a thread of
 * the overlay, which walks each again (files already rewrapped are
 * skipped) and removes it. Entries whose keys are not held yet stay for a
 * later call; while that thread runs, calls do nothing. Cheap when the
 * journal is empty: the agent calls it every second. Returns the number of
 * entries handed over. Unmounting stops a walk early (its entry stays). */
size_t ovc_overlay_resume(ovc_overlay *ov);

/* `overcrypt encrypt --asset NAME FILE` and `overcrypt decrypt FILE` through
 * the agent, for a file where no rule encrypts (persistent encryption's
 * products, or files the user wants encrypted there): encrypt it in place
 * under asset `asset`'s key, or decrypt it in place (only when the policy's
 * user_may_decrypt is on), crash-safely as ovc_overlay_convert() does.
 * Errors: -EPERM (a rule governs the place: it decides; or decrypting is not
 * allowed: the message names the setting), -EALREADY (already in that
 * form), -EACCES (locked, or the key is not held), -EBUSY (open: for
 * decrypt, open at all through the overlay), -EMLINK, -EINVAL, -errno. */
int ovc_overlay_manual(ovc_overlay *ov, const char *path, uid_t uid, int decrypt,
		       const char *asset, ovc_err *e);

#endif
