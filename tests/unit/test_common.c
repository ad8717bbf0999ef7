/* Unit tests of common/: error messages, codecs, wiping allocator, file I/O. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"

static void test_errors(void **state)
{
	ovc_err e;
	char longp[300];
	(void)state;

	ovc_err_clear(&e);
	assert_int_equal(e.code, 0);
	assert_int_equal(ovc_err_set(&e, -EINVAL, "bad %s", "thing"), -EINVAL);
	assert_string_equal(e.msg, "bad thing");
	assert_int_equal(ovc_err_wrap(&e, -EIO, "block %d: ", 3), -EINVAL);
	assert_string_equal(e.msg, "block 3: bad thing");
	assert_int_equal(ovc_err_set(NULL, -EIO, "x"), -EIO);
	assert_int_equal(ovc_err_wrap(NULL, -EIO, "x"), -EIO);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	ovc_err_wrap(&e, -EIO, "%s", longp); /* the prefix is cut, not the cause */
	assert_true(strlen(e.msg) < sizeof(e.msg));
	assert_string_equal(e.msg + strlen(e.msg) - 18, "block 3: bad thing");
}

static void test_le(void **state)
{
	uint8_t b[8];
	(void)state;

	ovc_le64_put(b, 0x0102030405060708ull);
	assert_int_equal(b[0], 0x08);
	assert_int_equal(b[7], 0x01);
	assert_true(ovc_le64_get(b) == 0x0102030405060708ull);
	ovc_le32_put(b, 0xa1b2c3d4u);
	assert_int_equal(b[0], 0xd4);
	assert_int_equal(ovc_le32_get(b), 0xa1b2c3d4u);
}

static void test_memory(void **state)
{
	uint8_t *p = ovc_wipe_malloc(100), *s = ovc_secret_alloc(64);
	(void)state;

	assert_non_null(p);
	assert_non_null(s);
	for (int i = 0; i < 64; i++)
		assert_int_equal(s[i], 0);
	memset(p, 0xaa, 100);
	ovc_wipe_free(p);
	ovc_wipe_free(NULL);
	ovc_secret_free(s);
	ovc_secret_free(NULL);
	assert_null(ovc_wipe_malloc(SIZE_MAX - 4));
}

static void test_files(void **state)
{
	char dir[] = "/tmp/ovc-common-XXXXXX", path[256];
	uint8_t *buf;
	size_t len;
	struct stat st;
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
	assert_int_equal(ovc_write_file_atomic(path, "hello", 5, 0640, 1), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(ovc_write_file_atomic(path, "other", 5, 0600, 1), -EEXIST);
	assert_int_equal(ovc_read_file(path, 100, 0, &buf, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal((char *)buf, "hello");
	free(buf);
	assert_int_equal(ovc_write_file_atomic(path, "replaced!", 9, 0600, 0), 0);
	assert_int_equal(ovc_read_file(path, 100, 1, &buf, &len), 0);
	assert_string_equal((char *)buf, "replaced!");
	ovc_wipe_free(buf);
	assert_int_equal(ovc_read_file(path, 8, 0, &buf, &len), -EFBIG);
	assert_null(buf);
	assert_int_equal(ovc_read_file(dir, 8, 0, &buf, &len), -EISDIR);
	assert_int_equal(ovc_read_file("/nonexistent/x", 8, 0, &buf, &len), -ENOENT);
	/* only the final file is left: no temporary files */
	snprintf(path, sizeof(path), "rm -f %s/f && rmdir %s", dir, dir);
	assert_int_equal(system(path), 0);
}

static void test_pread_pwrite_full(void **state)
{
	char tmpl[] = "/tmp/ovc-io-XXXXXX";
	uint8_t buf[10];
	int fd = mkstemp(tmpl);
	(void)state;

	assert_true(fd >= 0);
	unlink(tmpl);
	assert_int_equal(ovc_pwrite_full(fd, "0123456789", 10, 5), 0);
	assert_int_equal(ovc_pread_full(fd, buf, 10, 5), 0);
	assert_memory_equal(buf, "0123456789", 10);
	assert_int_equal(ovc_pread_full(fd, buf, 10, 6), -EIO); /* short */
	close(fd);
	assert_int_equal(ovc_pread_full(fd, buf, 1, 0), -EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_le),
		cmocka_unit_test(test_memory),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_pread_pwrite_full),
	};
	if (ovc_common_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
