/*
 * cli_util.h - what the command-line front ends share: exit codes,
 * messages, passphrases, progress, file replacement.
 *
 * These helpers print (to stderr) and are used only by mains.
 */
#ifndef OVC_CLI_UTIL_H
#define OVC_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/common.h"

/* The release, for --version. */
#define OVC_RELEASE "0.1.0"

enum { EXIT_WORK = 1, EXIT_USAGE = 2 };

/* The program's name for messages ("overcrypt"). Set once by main. */
extern const char *cli_prog;

/* "prog: message\n" on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Usage error: the message, then "Try 'prog CMD --help'." Returns EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A passphrase: the first line of `file` when it is not NULL (a trailing
 * "\n" or "\r\n" is not part of it), else asked on /dev/tty without echo,
 * twice when `confirm` is set. Returns a NUL-terminated string in secret
 * memory (free with ovc_secret_free()), or NULL after printing why. */
char *cli_passphrase(const char *prompt, const char *file, int confirm);

/* A progress line on stderr for long work, shown only on a terminal and
 * only for totals of at least 64 MiB. */
typedef struct cli_progress {
	const char *what;
	uint64_t total, done;
	int shown, last_pct;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *what, uint64_t total);
void cli_progress_add(cli_progress *p, uint64_t n);
void cli_progress_end(cli_progress *p);

/* A temporary file beside `path` (same folder, so a rename is atomic):
 * ".NAME.ovc-XXXXXX", O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600. Its name
 * goes to `tmp` (PATH_MAX bytes). Returns the fd or -errno. */
int cli_temp_beside(const char *path, char *tmp);

/* Give the finished temporary file `fd` (at `tmp`) the mode, owner and
 * times of `st` (owner only when allowed), fsync it, rename it over `dst`
 * and fsync the folder. On failure the temporary file is removed. Closes
 * fd. Returns 0 or -errno (with a message printed naming `dst`). */
int cli_replace(int fd, const char *tmp, const char *dst, const struct stat *st);

#endif
