/*
 * test_overlay.c - the overlay mounted in this process on a scratch folder,
 * with views built here (no agent): encryption on disk, reads back, lock
 * gives EACCES, a flipped byte gives EIO, no view means no plaintext write.
 * Needs root and /dev/fuse (the test suite runs as root).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "fusefs/overlay.h"

struct fx {
	char dir[64], enc[96], raw[96];
	ovc_views *vs;
	ovc_overlay *ov;
	ovc_view_rules *rules;
	ovc_view_keys *keys;
};

static ovc_view *make_view(struct fx *f, ovc_view_state st)
{
	const char *folders[] = { f->enc };
	ovc_policy_settings s = { 0 };

	return ovc_view_new(getuid(), "tester", st, 1, &s, f->rules,
			    st == OVC_VIEW_READY ? f->keys : NULL, folders, 1);
}

static void mount_ov(struct fx *f)
{
	ovc_overlay_opts o = { 0 };
	ovc_err e = { 0 };
	int fd = open(f->enc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	assert_true(fd >= 0);
	o.mountpoint = f->enc;
	o.backing_fd = fd;
	o.views = f->vs;
	o.allow_other = 1;
	if (ovc_overlay_mount(&o, &f->ov, &e) < 0)
		fail_msg("mount: %s", e.msg);
}

/* A cold start: the overlay unmounted and mounted again (nothing cached). */
static void remount_ov(struct fx *f)
{
	ovc_overlay_unmount(f->ov);
	f->ov = NULL;
	mount_ov(f);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	ovc_keyset *ks = ovc_keyset_new(4);
	const ovc_key *k;
	ovc_ruleset *rs;
	ovc_rule r = { .asset = "docs", .type = OVC_RULE_SHARED, .has_key = 1 };
	char rp[128];
	ovc_err e = { 0 };

	assert_non_null(f);
	assert_non_null(ks);
	strcpy(f->dir, "/tmp/ovc-ovl-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->enc, sizeof(f->enc), "%s/enc", f->dir);
	snprintf(f->raw, sizeof(f->raw), "%s/raw", f->dir);
	assert_int_equal(mkdir(f->enc, 0755), 0);
	assert_int_equal(mkdir(f->raw, 0755), 0);
	assert_int_equal(mount(f->enc, f->raw, NULL, MS_BIND, NULL), 0);
	assert_int_equal(mount(NULL, f->raw, NULL, MS_PRIVATE, NULL), 0);
	assert_int_equal(ovc_keyset_generate(ks, &k), 0);
	memcpy(r.key_id, k->id, sizeof(r.key_id));
	snprintf(rp, sizeof(rp), "%s/", f->enc);
	r.path = rp;
	assert_int_equal(ovc_ruleset_build(&r, 1, "tester", NULL, 0, &rs, &e), 0);
	f->rules = ovc_view_rules_new(rs);
	f->keys = ovc_view_keys_new(ks);
	f->vs = ovc_views_new();
	assert_int_equal(ovc_views_publish(f->vs, make_view(f, OVC_VIEW_READY)), 0);
	mount_ov(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[256];

	ovc_overlay_unmount(f->ov);
	umount2(f->raw, MNT_DETACH);
	ovc_views_free(f->vs);
	ovc_view_rules_unref(f->rules);
	ovc_view_keys_unref(f->keys);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", f->dir);
	free(f);
	return 0;
}

static void put(const char *dir, const char *name, const char *data)
{
	char p[256];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	assert_int_equal(close(fd), 0);
}

static ssize_t get(const char *dir, const char *name, char *buf, size_t n)
{
	char p[256];
	ssize_t r;
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_RDONLY);
	if (fd < 0)
		return -errno;
	r = read(fd, buf, n);
	if (r < 0)
		r = -errno;
	close(fd);
	return r;
}

static void test_roundtrip_and_ciphertext(void **state)
{
	struct fx *f = *state;
	char buf[256];
	struct stat st;
	char p[256];

	put(f->enc, "doc.txt", "hello overlay marker-1234");
	assert_int_equal(get(f->enc, "doc.txt", buf, sizeof(buf)), 25);
	assert_memory_equal(buf, "hello overlay marker-1234", 25);
	snprintf(p, sizeof(p), "%s/doc.txt", f->enc);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 25);
	assert_true(get(f->raw, "doc.txt", buf, sizeof(buf)) > 25);
	assert_memory_equal(buf, "OVCRYPT1", 8);
	assert_null(memmem(buf, sizeof(buf), "marker-1234", 11));
}

static off_t size_of(const char *dir, const char *name)
{
	char p[256];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(stat(p, &st), 0);
	return st.st_size;
}

static ssize_t xattr_of(const char *dir, const char *name, const char *attr,
			char *buf, size_t n)
{
	char p[256];
	ssize_t r;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	r = getxattr(p, attr, buf, n);
	return r < 0 ? -errno : r;
}

/* The marker is set when the writer's handle is released, which the
 * kernel sends after close() returns: wait for it. */
static ssize_t mark_of(const char *dir, const char *name, char *buf, size_t n)
{
	ssize_t r = -ENODATA;

	for (int k = 0; k < 200 && r == -ENODATA; k++) {
		r = xattr_of(dir, name, "user.overcrypt", buf, n);
		if (r == -ENODATA)
			usleep(10000);
	}
	return r;
}

/* Encrypted backing files carry the marker xattr, so that a cold `stat`
 * shows the plaintext size without reading the header; programs on the
 * overlay never see or change it; a file without it (written before, or
 * copied in behind the overlay) is sniffed; a stale one is dropped at open. */
static void test_marker_sizes(void **state)
{
	struct fx *f = *state;
	static char big[5001];
	char buf[64], p[256];
	int fd;

	memset(big, 'z', sizeof(big) - 1);
	put(f->enc, "m.txt", big);
	assert_int_equal(mark_of(f->raw, "m.txt", buf, sizeof(buf)), 8);
	assert_memory_equal(buf, "OVCRYPT1", 8);
	/* hidden on the overlay, and reserved */
	snprintf(p, sizeof(p), "%s/m.txt", f->enc);
	assert_int_equal(xattr_of(f->enc, "m.txt", "user.overcrypt", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(listxattr(p, NULL, 0), 0);
	assert_int_equal(setxattr(p, "user.mine", "1", 1, 0), 0);
	assert_int_equal(listxattr(p, NULL, 0), 10);
	assert_int_equal(listxattr(p, buf, sizeof(buf)), 10);
	assert_memory_equal(buf, "user.mine", 10);
	assert_int_equal(listxattr(p, buf, 5), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(setxattr(p, "user.overcrypt", "x", 1, 0), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(removexattr(p, "user.overcrypt"), -1);
	assert_int_equal(errno, EPERM);

	/* cold: the size comes from the marker, not from the header (here
	 * broken on purpose, the size kept) */
	remount_ov(f);
	snprintf(p, sizeof(p), "%s/m.txt", f->raw);
	fd = open(p, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "PLAINTXT", 8, 0), 8);
	assert_int_equal(close(fd), 0);
	assert_int_equal(size_of(f->enc, "m.txt"), 5000);
	/* open reads the header: a plaintext file now, and the stale marker
	 * goes; the next cold start shows its real size */
	assert_int_equal(get(f->enc, "m.txt", buf, 8), 8);
	assert_memory_equal(buf, "PLAINTXT", 8);
	assert_int_equal(xattr_of(f->raw, "m.txt", "user.overcrypt", buf, sizeof(buf)), -ENODATA);
	remount_ov(f);
	assert_int_equal(size_of(f->enc, "m.txt"), size_of(f->raw, "m.txt"));

	/* no marker (a file from before): the header is read; opening it for
	 * writing marks it */
	put(f->enc, "n.txt", big);
	assert_int_equal(mark_of(f->raw, "n.txt", buf, sizeof(buf)), 8);
	snprintf(p, sizeof(p), "%s/n.txt", f->raw);
	assert_int_equal(removexattr(p, "user.overcrypt"), 0);
	remount_ov(f);
	assert_int_equal(size_of(f->enc, "n.txt"), 5000);
	snprintf(p, sizeof(p), "%s/n.txt", f->enc);
	fd = open(p, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "!", 1), 1);
	assert_int_equal(close(fd), 0);
	assert_int_equal(mark_of(f->raw, "n.txt", buf, sizeof(buf)), 8);
	remount_ov(f);
	assert_int_equal(size_of(f->enc, "n.txt"), 5001);
}

/* Initial encryption of a file the kernel never looked up (no inode in the
 * table), then of one it did; a dry run changes nothing; an encrypted file
 * is reported as such; a file outside the rule's reach is refused. */
static void test_convert(void **state)
{
	struct fx *f = *state;
	enum ovc_convert_result res;
	ovc_err e = { 0 };
	char p[256], buf[64];

	put(f->raw, "plain.txt", "plain before the rule");
	put(f->raw, "seen.txt", "looked up first");
	snprintf(p, sizeof(p), "%s/plain.txt", f->enc);
	assert_int_equal(ovc_overlay_convert(f->ov, p, getuid(), 1, &res, &e), 0);
	assert_int_equal(res, OVC_CONV_CONVERTED);
	assert_int_equal(get(f->raw, "plain.txt", buf, sizeof(buf)), 21); /* dry run */
	assert_int_equal(ovc_overlay_convert(f->ov, p, getuid(), 0, &res, &e), 0);
	assert_int_equal(res, OVC_CONV_CONVERTED);
	assert_true(get(f->raw, "plain.txt", buf, sizeof(buf)) > 21);
	assert_memory_equal(buf, "OVCRYPT1", 8);
	assert_int_equal(get(f->enc, "plain.txt", buf, sizeof(buf)), 21);
	assert_memory_equal(buf, "plain before the rule", 21);
	assert_int_equal(ovc_overlay_convert(f->ov, p, getuid(), 0, &res, &e), 0);
	assert_int_equal(res, OVC_CONV_ENCRYPTED);

	assert_int_equal(size_of(f->enc, "seen.txt"), 15); /* the kernel knows it */
	snprintf(p, sizeof(p), "%s/seen.txt", f->enc);
	assert_int_equal(ovc_overlay_convert(f->ov, p, getuid(), 0, &res, &e), 0);
	assert_int_equal(res, OVC_CONV_CONVERTED);
	assert_int_equal(size_of(f->enc, "seen.txt"), 15);
	assert_int_equal(get(f->enc, "seen.txt", buf, sizeof(buf)), 15);
	assert_memory_equal(buf, "looked up first", 15);

	snprintf(p, sizeof(p), "%s/../x", f->enc);
	assert_int_equal(ovc_overlay_convert(f->ov, p, getuid(), 0, &res, &e), -EINVAL);
	snprintf(p, sizeof(p), "%s/none", f->enc);
	assert_int_equal(ovc_overlay_convert(f->ov, p, getuid(), 0, &res, &e), -ENOENT);
}

static void test_locked_refuses(void **state)
{
	struct fx *f = *state;
	char buf[64], p[256];

	put(f->enc, "a.txt", "secret");
	assert_int_equal(ovc_views_publish(f->vs, make_view(f, OVC_VIEW_LOCKED)), 0);
	ovc_overlay_flush_encrypted(f->ov, (uid_t)-1);
	assert_int_equal(get(f->enc, "a.txt", buf, sizeof(buf)), -EACCES);
	snprintf(p, sizeof(p), "%s/new.txt", f->enc);
	assert_int_equal(open(p, O_WRONLY | O_CREAT, 0644), -1);
	assert_int_equal(errno, EACCES);
	assert_int_equal(access(p, F_OK), -1); /* nothing was made */
	assert_int_equal(ovc_views_publish(f->vs, make_view(f, OVC_VIEW_READY)), 0);
	assert_int_equal(get(f->enc, "a.txt", buf, sizeof(buf)), 6);
}

static void test_no_view_refuses(void **state)
{
	struct fx *f = *state;
	char p[256];

	pid_t pid;
	int st;

	/* uid 65534 has no view: under the served user's folder its writes
	 * are refused, whatever the folder's permissions say */
	assert_int_equal(chmod(f->enc, 0777), 0);
	snprintf(p, sizeof(p), "%s/nv.txt", f->enc);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd;

		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		fd = open(p, O_WRONLY | O_CREAT, 0644);
		_exit(fd < 0 && errno == EACCES ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(access(p, F_OK), -1);
}

static void test_flipped_byte_eio(void **state)
{
	struct fx *f = *state;
	char buf[8192], p[256];
	int fd;
	uint8_t b;

	memset(buf, 'x', sizeof(buf));
	buf[sizeof(buf) - 1] = 0;
	put(f->enc, "big.txt", buf);
	snprintf(p, sizeof(p), "%s/big.txt", f->raw);
	fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, 200), 1);
	b ^= 1;
	assert_int_equal(pwrite(fd, &b, 1, 200), 1);
	close(fd);
	/* drop the page cache of the file through the overlay */
	ovc_overlay_flush_encrypted(f->ov, (uid_t)-1);
	assert_int_equal(get(f->enc, "big.txt", buf, sizeof(buf)), -EIO);
}


static void test_repair_torn_tail(void **state)
{
	struct fx *f = *state;
	static char buf[3 * 4096 + 100], back[sizeof(buf)];
	char p[256];
	ovc_repair_report r;
	ovc_err e = { 0 };
	struct stat st;

	memset(buf, 'y', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = 0;
	put(f->enc, "torn.txt", buf);
	snprintf(p, sizeof(p), "%s/torn.txt", f->raw);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(truncate(p, st.st_size - 50), 0);
	snprintf(p, sizeof(p), "%s/torn.txt", f->enc);
	assert_int_equal(ovc_overlay_repair(f->ov, p, getuid(), 0, 0, &r, &e), 0);
	assert_false(r.intact);
	assert_int_equal(r.size_after, 3 * 4096);
	assert_int_equal(get(f->enc, "torn.txt", back, sizeof(back)), 3 * 4096);
	assert_memory_equal(back, buf, 3 * 4096);
	/* again: intact; a plaintext file and a path elsewhere are refused */
	assert_int_equal(ovc_overlay_repair(f->ov, p, getuid(), 0, 0, &r, &e), 0);
	assert_true(r.intact);
	snprintf(p, sizeof(p), "%s/torn.txt", f->raw);
	assert_int_equal(ovc_overlay_repair(f->ov, p, getuid(), 0, 0, &r, &e), -EINVAL);
	snprintf(p, sizeof(p), "%s/../raw/torn.txt", f->enc);
	assert_int_equal(ovc_overlay_repair(f->ov, p, getuid(), 0, 0, &r, &e), -EINVAL);
}


/* Far more files and folders than descriptors: the overlay keeps a bounded
 * descriptor cache, not one per inode (passthrough_ll's design would fail
 * here). The soft limit is lowered before mounting, and the kernel keeps
 * every inode it has looked up. */
static void test_more_files_than_descriptors(void **state)
{
	struct fx *f = *state;
	char p[256];
	struct stat st;
	int fd;

	for (int d = 0; d < 40; d++) {
		snprintf(p, sizeof(p), "%s/d%02d", f->enc, d);
		assert_int_equal(mkdir(p, 0755), 0);
		for (int k = 0; k < 60; k++) {
			snprintf(p, sizeof(p), "%s/d%02d/f%03d", f->enc, d, k);
			fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
			if (fd < 0)
				fail_msg("create %s: %s", p, strerror(errno));
			assert_int_equal(write(fd, p, strlen(p)), (ssize_t)strlen(p));
			assert_int_equal(close(fd), 0);
		}
	}
	/* every one again, in another order: stat and read */
	for (int k = 0; k < 60; k++)
		for (int d = 39; d >= 0; d--) {
			char buf[256] = "";

			snprintf(p, sizeof(p), "%s/d%02d/f%03d", f->enc, d, k);
			if (stat(p, &st) < 0)
				fail_msg("stat %s: %s", p, strerror(errno));
			assert_int_equal(st.st_size, (off_t)strlen(p));
			fd = open(p, O_RDONLY);
			if (fd < 0)
				fail_msg("open %s: %s", p, strerror(errno));
			assert_int_equal(read(fd, buf, sizeof(buf)), (ssize_t)strlen(p));
			assert_string_equal(buf, p);
			close(fd);
		}
}

static int setup_few_fds(void **state)
{
	struct rlimit rl = { .rlim_cur = 256, .rlim_max = 0 };
	struct rlimit old;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	rl.rlim_max = old.rlim_max;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	return setup(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip_and_ciphertext, setup, teardown),
		cmocka_unit_test_setup_teardown(test_marker_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_convert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locked_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_view_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_byte_eio, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repair_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_more_files_than_descriptors, setup_few_fds, teardown),
	};

	if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
		fprintf(stderr, "test_overlay needs root and /dev/fuse\n");
		return 1;
	}
	ovc_common_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
