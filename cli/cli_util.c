/* cli_util.c - shared helpers of the command-line front ends. */
#define _GNU_SOURCE
#include "cli/cli_util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

const char *cli_prog = "overcrypt";

void cli_err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cli_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cli_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s%s%s --help'.\n", cli_prog, cmd ? " " : "",
		cmd ? cmd : "");
	return EXIT_USAGE;
}

#define PASS_MAX 1024

/* Read one line into the secret buffer `buf` (PASS_MAX bytes) from fd. */
static int read_line(int fd, char *buf)
{
	size_t n = 0;

	for (;;) {
		char ch;
		ssize_t r = read(fd, &ch, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0 || ch == '\n')
			break;
		if (n + 1 >= PASS_MAX)
			return -E2BIG;
		buf[n++] = ch;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return 0;
}

static int ask_tty(const char *prompt, char *buf)
{
	struct termios old, quiet;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY), rc;

	if (fd < 0)
		return -ENXIO;
	if (tcgetattr(fd, &old) < 0) {
		close(fd);
		return -ENOTTY;
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	/* echo off (typeahead from before the prompt discarded) before the
	 * prompt shows: an answer typed as soon as it shows is neither echoed
	 * nor thrown away */
	if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0 ||
	    write(fd, prompt, strlen(prompt)) < 0) {
		(void)tcsetattr(fd, TCSANOW, &old);
		close(fd);
		return -EIO;
	}
	rc = read_line(fd, buf);
	(void)tcsetattr(fd, TCSANOW, &old);
	if (write(fd, "\n", 1) < 0 && !rc)
		rc = -EIO;
	close(fd);
	return rc;
}

char *cli_passphrase(const char *prompt, const char *file, int confirm)
{
	char *pass = ovc_secret_alloc(PASS_MAX), *again = NULL;
	int rc;

	if (!pass) {
		cli_err("out of secure memory");
		return NULL;
	}
	if (file) {
		int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0) {
			cli_err("%s: %s", file, strerror(errno));
			goto fail;
		}
		rc = read_line(fd, pass);
		close(fd);
		if (rc) {
			cli_err("%s: %s", file, rc == -E2BIG ? "passphrase too long" : strerror(-rc));
			goto fail;
		}
	} else {
		rc = ask_tty(prompt, pass);
		if (rc) {
			cli_err("cannot ask for a passphrase: no terminal (use --passphrase-file)");
			goto fail;
		}
		if (confirm) {
			again = ovc_secret_alloc(PASS_MAX);
			if (!again || ask_tty("Repeat the passphrase: ", again)) {
				cli_err("cannot read the passphrase again");
				goto fail;
			}
			if (strcmp(pass, again) != 0) {
				cli_err("the two passphrases differ");
				goto fail;
			}
		}
	}
	if (!pass[0]) {
		cli_err("empty passphrase");
		goto fail;
	}
	ovc_secret_free(again);
	return pass;
fail:
	ovc_secret_free(again);
	ovc_secret_free(pass);
	return NULL;
}

void cli_progress_start(cli_progress *p, const char *what, uint64_t total)
{
	memset(p, 0, sizeof(*p));
	p->what = what;
	p->total = total;
	p->last_pct = -1;
	p->shown = total >= (64u << 20) && isatty(STDERR_FILENO);
}

void cli_progress_add(cli_progress *p, uint64_t n)
{
	int pct;

	p->done += n;
	if (!p->shown || !p->total)
		return;
	pct = (int)(p->done * 100 / p->total);
	if (pct == p->last_pct)
		return;
	p->last_pct = pct;
	fprintf(stderr, "\r%s [%-40.*s] %3d%% %llu/%llu MiB", p->what,
		pct * 40 / 100, "########################################", pct,
		(unsigned long long)(p->done >> 20),
		(unsigned long long)(p->total >> 20));
}

void cli_progress_end(cli_progress *p)
{
	if (p->shown)
		fputc('\n', stderr);
}

int cli_temp_beside(const char *path, char *tmp)
{
	char copy[PATH_MAX], copy2[PATH_MAX];
	unsigned char rnd[4];
	int fd;

	if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
		return -ENAMETOOLONG;
	memcpy(copy2, copy, sizeof(copy));
	randombytes_buf(rnd, sizeof(rnd));
	if (snprintf(tmp, PATH_MAX, "%s/.%s.ovc-%02x%02x%02x%02x", dirname(copy),
		     basename(copy2), rnd[0], rnd[1], rnd[2], rnd[3]) >= PATH_MAX)
		return -ENAMETOOLONG;
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

int cli_replace(int fd, const char *tmp, const char *dst, const struct stat *st)
{
	struct timespec times[2] = { st->st_atim, st->st_mtim };
	int rc = 0;

	/* The owner first: chown may clear set-id bits that fchmod then sets.
	 * Only root may give a file away; a user may pick one of their groups. */
	if ((geteuid() == 0 || st->st_gid != getegid()) &&
	    fchown(fd, geteuid() == 0 ? st->st_uid : (uid_t)-1, st->st_gid) < 0 &&
	    geteuid() == 0)
		rc = -errno;
	if (!rc && fchmod(fd, st->st_mode & 07777) < 0)
		rc = -errno;
	/* Times after the last write to the data; fsync makes them durable. */
	if (!rc && futimens(fd, times) < 0)
		rc = -errno;
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, dst) < 0)
		rc = -errno;
	if (rc) {
		cli_err("%s: cannot replace: %s", dst, strerror(-rc));
		unlink(tmp);
		return rc;
	}
	rc = ovc_fsync_parent(dst);
	if (rc)
		cli_err("%s: fsync of its folder: %s", dst, strerror(-rc));
	return rc;
}
