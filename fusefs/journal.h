/*
 * journal.h - the text of one entry of the overlay's rewrap journal: a folder
 * moved between two encrypting rules whose files below still have to get
 * their keys rewrapped (docs/overlay.md, "Moving between rules"). The
 * overlay writes an entry before such a rename and removes it when the walk
 * is over; the agent finishes entries a crash left (ovc_overlay_resume()).
 *
 * Format (text, one field a line):
 *   overcrypt-rewrap 1
 *   <mount point, hex>
 *   <uid, decimal>
 *   <destination key id, 32 hex digits>
 *   <the folder's path below the mount point, hex>
 * Paths are hex so that any name (spaces, newlines) survives; a decoded path
 * holding a NUL byte, a mount point that is not absolute, a folder path that
 * is empty, absolute, or has a "." or ".." component, is refused.
 *
 * No I/O; fuzzed (tests/fuzz/fuzz_journal.c).
 */
#ifndef OVC_FUSEFS_JOURNAL_H
#define OVC_FUSEFS_JOURNAL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "crypto/keys.h"

typedef struct ovc_journal_entry {
	char mnt[PATH_MAX];
	uid_t uid;
	uint8_t key_id[OVC_KEY_ID_BYTES];
	char rel[PATH_MAX];
} ovc_journal_entry;

/* The text of `j` (malloc()ed, NUL-terminated; *len without the NUL).
 * 0, -EINVAL (`j` would not parse back), -ENOMEM. */
int ovc_journal_format(const ovc_journal_entry *j, char **out, size_t *len);

/* Parse `len` bytes of text into `out`. 0 or -EINVAL. */
int ovc_journal_parse(const char *text, size_t len, ovc_journal_entry *out);

#endif
