/*
 * common.h - the few helpers every overcrypt library shares.
 *
 * Error reports, little-endian codecs, secret memory and careful file I/O.
 * Nothing here prints or exits; every function is thread-safe unless it
 * says otherwise.
 */
#ifndef OVC_COMMON_H
#define OVC_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---------------------------------------------------------------------------
 * Errors.
 *
 * Functions return 0 on success or a negative errno-style code. Where the
 * caller needs to tell a person what went wrong, the function also takes an
 * `ovc_err *` (which may be NULL) and writes one sentence into it, without
 * the file name (the caller knows it and adds it) and never with a secret.
 *
 * Codes used beyond plain errno values: -EBADMSG for "authentication failed"
 * (tag, MAC, signature), -EINVAL for "does not parse", -ENOKEY for "no key
 * for this", -EPROTO for "a version or flag we do not know".
 */
typedef struct ovc_err {
	int code;       /* the negative code last set, 0 when none */
	char msg[256];  /* one sentence, NUL-terminated */
} ovc_err;

/* Clear `e` (may be NULL). */
void ovc_err_clear(ovc_err *e);

/* Record code `code` (negative) with a printf-style message in `e` (which may
 * be NULL) and return `code`, so callers can write
 * `return ovc_err_set(e, -EINVAL, "bad %s", what);`. */
int ovc_err_set(ovc_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix the message already in `e` with a printf-style context ("block 3: ")
 * and return e->code. Does nothing but return `code` when `e` is NULL. */
int ovc_err_wrap(ovc_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------------------
 * Diagnostics: a list of messages for checks that report every problem at
 * once (config files: "org.conf:12: unknown key 'colour' in [user alice]").
 */
typedef struct ovc_diag {
	size_t n, cap;
	char **lines;   /* each malloc()ed, NUL-terminated, no '\n' */
} ovc_diag;

/* Add "FILE:LINE: message" (or "FILE: message" when line <= 0, or just the
 * message when file is NULL). Returns 0 or -ENOMEM (the message is lost). */
int ovc_diag_add(ovc_diag *d, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Free the messages; the struct may be reused (it is zeroed). */
void ovc_diag_free(ovc_diag *d);

/* Strict JSON objects (cJSON): refuse a member whose name is not in
 * `allowed` (NULL-terminated) and a name given twice (cJSON keeps both).
 * `where` prefixes the message ("keys[1].": "keys[1].colour: unknown
 * member"). Returns 0 or -EINVAL. */
struct cJSON;
int ovc_json_check_members(const struct cJSON *obj, const char *const *allowed,
			   const char *where, ovc_err *e);

/* ---------------------------------------------------------------------------
 * Little-endian codecs for on-disk and on-wire structures (never fwrite a
 * struct).
 */
static inline void ovc_le64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t ovc_le64_get(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline void ovc_le32_put(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t ovc_le32_get(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* ---------------------------------------------------------------------------
 * Secret memory.
 *
 * ovc_secret_alloc() returns `len` bytes of guarded, mlock()ed, zeroed
 * memory (sodium_malloc), or NULL. ovc_secret_free() wipes and frees it
 * (NULL is fine). Use it for keys, passphrases and decrypted key material
 * only: each allocation costs guard pages and counts against RLIMIT_MEMLOCK.
 * ovc_common_init() must have been called once, at the start of main and
 * before any thread starts: it calls sodium_init() and installs the wiping
 * allocator below as cJSON's (cJSON_InitHooks is process-wide), so no cJSON
 * tree anywhere leaves secrets in freed memory. Returns 0 or -ENOSYS.
 */
int ovc_common_init(void);
void *ovc_secret_alloc(size_t len);
void ovc_secret_free(void *p);

/* malloc/free twins for buffers that may hold secrets but are too many or
 * too small for sodium_malloc (cJSON trees, protocol lines): the free wipes
 * the whole allocation first. ovc_wipe_free(NULL) is fine. */
void *ovc_wipe_malloc(size_t len);
void ovc_wipe_free(void *p);

/* ---------------------------------------------------------------------------
 * File I/O.
 */

/* Read exactly `len` bytes at `off` (pread loop). Returns 0, -EIO when the
 * file ends first ("short"), or -errno. */
int ovc_pread_full(int fd, void *buf, size_t len, off_t off);

/* Write all `len` bytes at `off` (pwrite loop). Returns 0 or -errno. */
int ovc_pwrite_full(int fd, const void *buf, size_t len, off_t off);

/* Read a whole regular file of at most `max` bytes into a new buffer that
 * the caller frees with free() (or ovc_wipe_free() when `secret` is set: the
 * buffer then comes from ovc_wipe_malloc). A NUL is appended (not counted in
 * *len). Errors: -EFBIG when larger than `max`, else -errno. */
int ovc_read_file(const char *path, size_t max, int secret, uint8_t **out,
		  size_t *len);

/* The same from the open descriptor `fd` (from its current offset; not
 * closed): for a file checked with fstat() before it is read. */
int ovc_read_fd(int fd, size_t max, int secret, uint8_t **out, size_t *len);

/* Replace `path` atomically with `len` bytes: a temporary file in the same
 * folder created O_EXCL with `mode`, written, fsync()ed, renamed over
 * `path`, then the folder fsync()ed. When `excl` is set an existing `path`
 * is an error (-EEXIST) and the file is linked into place instead of renamed.
 * On error nothing is left behind. */
int ovc_write_file_atomic(const char *path, const void *data, size_t len,
			  mode_t mode, int excl);

/* Make sure `path` (absolute) is a folder of ours that nobody else may
 * write: create it with `mode` when missing (with `parents`, also the
 * folders above it, mode 0700), refuse it when it is not a folder
 * (-ENOTDIR, a symlink too) or is not owned by the effective uid or is
 * group or world writable (-EPERM), and give it `mode` when it has
 * another. Returns 0 or -errno. */
int ovc_private_dir(const char *path, mode_t mode, int parents);

/* Replacing many files in one folder atomically without an fsync each:
 * ovc_stage_add() writes each new file to a temporary name (no fsync);
 * ovc_stage_commit() syncs the file system once (syncfs), renames every
 * file into place in the order added, and fsyncs the folder. After a crash
 * each name holds its old or its new content, whole. ovc_stage_abort()
 * removes the temporary files. Not thread-safe. */
typedef struct ovc_stage {
	size_t n, cap;
	char **tmp, **dst;
} ovc_stage;
int ovc_stage_add(ovc_stage *st, const char *dst, const void *data, size_t len,
		  mode_t mode);
int ovc_stage_commit(ovc_stage *st, const char *dir);
void ovc_stage_abort(ovc_stage *st);

/* fsync() the folder that holds `path`. Returns 0 or -errno. */
int ovc_fsync_parent(const char *path);

#endif
