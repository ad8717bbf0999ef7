/* libFuzzer target: the encrypted file parser. The input is a whole backing
 * file; it is opened with a fixed key (header, layout), read whole and
 * verified (blocks, holes, last flags). Nothing may crash or read out of
 * bounds. (The key is fixed, so a seed sealed with it does decrypt: that is
 * how the fuzzer reaches the block code behind a valid header.) */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/common.h"
#include "crypto/blockfile.h"

static ovc_key key;
static ovc_cipher *c;

static void cleanup(void)
{
	ovc_cipher_free(c);
}

/* Set up once, outside any input, and free at exit: the cipher lives in
 * sodium_malloc memory, which LeakSanitizer does not scan. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (ovc_common_init() != 0)
		abort();
	memset(&key, 0x42, sizeof(key));
	c = ovc_cipher_new();
	if (!c)
		abort();
	atexit(cleanup);
	return 0;
}

static const ovc_key *lookup(void *ctx, const uint8_t *id)
{
	(void)ctx;
	(void)id; /* every key id maps to the one key: reach the unwrap */
	return &key;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[1 << 16];
	ovc_file *f;
	uint64_t bad;
	int fd;

	fd = memfd_create("fuzz", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	if (ovc_file_open(fd, lookup, NULL, &f, NULL) == 0) {
		(void)ovc_file_pread(f, c, buf, sizeof(buf), 0, NULL);
		(void)ovc_file_verify(f, c, &bad, NULL);
		ovc_file_close(f);
	}
	close(fd);
	return 0;
}
