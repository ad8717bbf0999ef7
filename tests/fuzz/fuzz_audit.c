/*
 * fuzz_audit.c - libFuzzer target for policy/audit.c's readers.
 *
 * Each input is written to a fresh temporary file (in /dev/shm when there
 * is one: the readers take a path, and open it O_NOFOLLOW, so a memfd's
 * /proc/self/fd link will not do) and read as an audit log by
 * ovc_audit_verify and ovc_audit_each, and parsed as a head text by
 * ovc_audit_head_parse (from the exact input buffer, no NUL after it).
 * Checked beyond "no crash": the error codes are the documented ones with
 * a message; a log that verifies shows every entry through each, takes one
 * more append, and then verifies with one more entry and the new hash.
 * A good seed is the golden log of tests/unit/test_audit.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "policy/audit.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (ovc_common_init() != 0)
		abort();
	return 0;
}

struct shown {
	uint64_t n;
	int in_order; /* seq 1, 2, 3, ... so far */
};

static int count_one(void *ctx, const ovc_audit_entry *en)
{
	struct shown *s = ctx;

	if (!en->admin || !en->action || !en->object || !en->details ||
	    en->details[0] != '{' || strchr(en->line, '\n'))
		abort();
	if (en->seq != ++s->n)
		s->in_order = 0;
	return 0;
}

static void check_log(const char *path)
{
	struct shown shown = { 0, 1 };
	uint64_t count = 0, count2 = 0;
	uint8_t head[32], head2[32];
	ovc_err e;
	int rc;

	ovc_err_clear(&e);
	rc = ovc_audit_verify(path, &count, head, &e);
	if (rc != 0 && (rc != -EBADMSG || !e.msg[0]))
		abort();
	ovc_err_clear(&e);
	rc = ovc_audit_each(path, NULL, count_one, &shown, &e);
	if (rc != 0 && (rc != -EINVAL || !e.msg[0]))
		abort();
	if (ovc_audit_verify(path, NULL, NULL, NULL) != 0)
		return;
	if (rc != 0 || shown.n != count || !shown.in_order)
		abort(); /* each must show every entry of a log that verifies */
	rc = ovc_audit_append(path, 1795514400, "fuzz", "check", "log", "{\"n\":1}", &e);
	if (rc == -EOVERFLOW)
		return;
	if (rc != 0 || ovc_audit_verify(path, &count2, head2, &e) != 0 ||
	    count2 != count + 1 || !memcmp(head, head2, 32))
		abort();
}

static void check_head(const uint8_t *data, size_t size)
{
	ovc_audit_head h;
	ovc_err e;
	int rc;

	ovc_err_clear(&e);
	rc = ovc_audit_head_parse((const char *)data, size, &h, &e);
	if (rc == 0) {
		if (!h.org)
			abort();
		ovc_audit_head_release(&h);
	} else if ((rc != -EINVAL && rc != -EPROTO) || !e.msg[0] || h.org) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/dev/shm/fuzz_audit.XXXXXX", alt[] = "/tmp/fuzz_audit.XXXXXX";
	char *p = access("/dev/shm", W_OK) == 0 ? path : alt;
	int fd = mkstemp(p);

	if (fd < 0)
		abort();
	if (ovc_pwrite_full(fd, data, size, 0) != 0 || close(fd) != 0)
		abort();
	check_log(p);
	unlink(p);
	check_head(data, size);
	return 0;
}
