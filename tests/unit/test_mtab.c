/*
 * test_mtab.c - the watched SMB mount table (daemon/mtab.h): a --mountinfo
 * file read again when it changes, shares forgotten while `overcrypt
 * unmount` takes them down, the file's safety checks, and the short-name
 * test behind the "mounted under another name" log line.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/mtab.h"

#define LINE_MKT "900 25 0:99 / /mnt/mkt rw,relatime - cifs //bob@Files.Corp.Local/Marketing rw,addr=10.0.0.5\n"
#define LINE_FIN "901 25 0:98 / /mnt/fin rw,relatime - smb3 //files.corp.local/finance/Reports rw\n"
#define LINE_EXT "25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"

static char dir[] = "/tmp/ovc-mtab-XXXXXX";
static char file[sizeof(dir) + 16];

/* Replace the table file (a new inode each time, as a rename does). */
static void put(const char *text, mode_t mode)
{
	char tmp[sizeof(file) + 8];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	assert_int_equal(rename(tmp, file), 0);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(file, sizeof(file), "%s/mountinfo", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(file);
	rmdir(dir);
	return 0;
}

static void test_file_read_and_followed(void **state)
{
	ovc_mtab *t = NULL;
	ovc_err e = { 0 };
	const ovc_smb_mount *m;
	size_t n = 0;

	(void)state;
	put(LINE_EXT, 0644);
	assert_int_equal(ovc_mtab_open(file, &t, &e), 0);
	assert_true(ovc_mtab_fd(t) >= 0);
	ovc_mtab_smb(t, &n);
	assert_int_equal(n, 0);
	/* nothing changed: no change reported */
	assert_int_equal(ovc_mtab_update(t, 0), 0);

	put(LINE_EXT LINE_MKT, 0644);
	assert_int_equal(ovc_mtab_update(t, 0), 1);
	m = ovc_mtab_smb(t, &n);
	assert_int_equal(n, 1);
	assert_string_equal(m[0].host, "files.corp.local");
	assert_string_equal(m[0].share, "marketing");
	assert_string_equal(m[0].mountpoint, "/mnt/mkt");
	assert_string_equal(m[0].addr, "10.0.0.5");
	assert_ptr_equal(ovc_mtab_find(t, "/mnt/mkt"), &m[0]);
	assert_null(ovc_mtab_find(t, "/mnt"));

	/* the same text again (a new inode): read, but no change */
	put(LINE_EXT LINE_MKT, 0644);
	assert_int_equal(ovc_mtab_update(t, 0), 0);

	put(LINE_MKT LINE_FIN, 0644);
	assert_int_equal(ovc_mtab_update(t, 0), 1);
	m = ovc_mtab_smb(t, &n);
	assert_int_equal(n, 2);
	/* what there was before that change: the one share */
	assert_string_equal(ovc_mtab_prev(t, &n)[0].mountpoint, "/mnt/mkt");
	assert_int_equal(n, 1);
	ovc_mtab_smb(t, &n);
	{
		char src[256];

		ovc_smb_source(&m[1], src, sizeof(src));
		assert_string_equal(src, "//files.corp.local/finance/reports");
		ovc_smb_source(&m[0], src, sizeof(src));
		assert_string_equal(src, "//files.corp.local/marketing");
	}
	ovc_mtab_free(t);
}

static void test_forget_until_gone(void **state)
{
	ovc_mtab *t = NULL;
	ovc_err e = { 0 };
	const ovc_smb_mount *m;
	size_t n = 0;

	(void)state;
	put(LINE_MKT LINE_FIN, 0644);
	assert_int_equal(ovc_mtab_open(file, &t, &e), 0);
	assert_int_equal(ovc_mtab_forget(t, "/mnt/mkt"), 0);
	m = ovc_mtab_smb(t, &n);
	assert_int_equal(n, 1);
	assert_string_equal(m[0].mountpoint, "/mnt/fin");
	assert_null(ovc_mtab_find(t, "/mnt/mkt"));
	/* still in the table (read again: the order changed): still left out */
	put(LINE_FIN LINE_MKT, 0644);
	assert_int_equal(ovc_mtab_update(t, 0), 0);
	ovc_mtab_smb(t, &n);
	assert_int_equal(n, 1);
	/* unforget brings it back (an unmount that failed) */
	ovc_mtab_unforget(t, "/mnt/mkt");
	ovc_mtab_smb(t, &n);
	assert_int_equal(n, 2);
	/* forgotten, then gone from the table: the mark goes, and a share
	 * mounted there later counts again */
	assert_int_equal(ovc_mtab_forget(t, "/mnt/mkt"), 0);
	put(LINE_FIN, 0644);
	assert_int_equal(ovc_mtab_update(t, 0), 0);
	put(LINE_FIN LINE_MKT, 0644);
	assert_int_equal(ovc_mtab_update(t, 0), 1);
	ovc_mtab_smb(t, &n);
	assert_int_equal(n, 2);
	ovc_mtab_free(t);
}

static void test_unsafe_file_refused(void **state)
{
	ovc_mtab *t = NULL;
	ovc_err e = { 0 };
	size_t n = 0;

	(void)state;
	put(LINE_MKT, 0666);
	assert_int_equal(ovc_mtab_open(file, &t, &e), -EPERM);
	assert_non_null(strstr(e.msg, "writable by nobody else"));
	assert_non_null(strstr(e.msg, file));
	assert_int_equal(ovc_mtab_open("/nonexistent/mountinfo", &t, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "/nonexistent/mountinfo"));

	/* made unsafe later: the last good table stays */
	put(LINE_MKT, 0644);
	assert_int_equal(ovc_mtab_open(file, &t, &e), 0);
	put(LINE_FIN, 0646);
	assert_int_equal(ovc_mtab_update(t, 0), -EPERM);
	ovc_mtab_smb(t, &n);
	assert_int_equal(n, 1);
	assert_non_null(ovc_mtab_find(t, "/mnt/mkt"));
	ovc_mtab_free(t);
}

static void test_kernel_table(void **state)
{
	ovc_mtab *t = NULL;
	ovc_err e = { 0 };

	(void)state;
	assert_int_equal(ovc_mtab_open(NULL, &t, &e), 0);
	assert_true(ovc_mtab_fd(t) >= 0);
	/* not woken: not read */
	assert_int_equal(ovc_mtab_update(t, 0), 0);
	assert_true(ovc_mtab_update(t, 1) >= 0);
	ovc_mtab_free(t);
}

static void test_short_name(void **state)
{
	(void)state;
	assert_true(ovc_smb_short_name_of("files", "files.corp.local"));
	assert_true(ovc_smb_short_name_of("files.corp.local", "FILES"));
	assert_false(ovc_smb_short_name_of("files", "files"));
	assert_false(ovc_smb_short_name_of("files", "filesrv.corp.local"));
	assert_false(ovc_smb_short_name_of("fil", "files.corp.local"));
	assert_false(ovc_smb_short_name_of("files.corp", "files.corp.local"));
	assert_false(ovc_smb_short_name_of("", "files.corp.local"));
	assert_false(ovc_smb_short_name_of("10.0.0.5", "10"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_read_and_followed),
		cmocka_unit_test(test_forget_until_gone),
		cmocka_unit_test(test_unsafe_file_refused),
		cmocka_unit_test(test_kernel_table),
		cmocka_unit_test(test_short_name),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
