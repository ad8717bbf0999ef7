/*
 * bench_block - single-core throughput of the block layer.
 *
 *   seal/open: 1 GiB as 4 KiB blocks through ovc_block_seal/ovc_block_open
 *              (the cipher alone, with our associated data and nonces)
 *   file:      1 GiB through ovc_file_pwrite/ovc_file_pread in 128 KiB
 *              calls on a memfd (the block layer with its I/O, no disk):
 *              appending (tmpfs allocates as the file grows: its cost is
 *              shown by the raw memfd-append anchor), rewriting, reading
 *
 * Prints one "name MB/s" line each (MB = 10^6 bytes, as openssl speed).
 * Usage: bench_block [MiB]   (default 1024)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/common.h"
#include "crypto/blockfile.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *name, uint64_t bytes, double secs)
{
	printf("%-14s %10.1f MB/s\n", name, (double)bytes / secs / 1e6);
}

static const ovc_key *lookup(void *ctx, const uint8_t *id)
{
	(void)id;
	return ctx;
}

int main(int argc, char **argv)
{
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024;
	uint64_t total = mib << 20, blocks = total / 4096;
	uint8_t key[32], fid[16], *pt, *ct, *buf;
	ovc_cipher *c;
	ovc_file *f;
	ovc_key ak;
	double t;
	int fd;

	if (ovc_common_init() != 0 || !(c = ovc_cipher_new()))
		return 1;
	randombytes_buf(key, sizeof(key));
	randombytes_buf(fid, sizeof(fid));
	randombytes_buf(&ak, sizeof(ak));
	pt = malloc(4096);
	ct = malloc(4124);
	buf = malloc(128 << 10);
	if (!pt || !ct || !buf)
		return 1;
	randombytes_buf(pt, 4096);
	randombytes_buf(buf, 128 << 10);

	t = now();
	for (uint64_t j = 0; j < blocks; j++)
		if (ovc_block_seal(c, key, fid, j, 0, pt, 4096, ct))
			return 1;
	report("seal", total, now() - t);
	/* Open one valid block N times (the last sealed one was block N-1). */
	if (ovc_block_seal(c, key, fid, 7, 0, pt, 4096, ct))
		return 1;
	t = now();
	for (uint64_t j = 0; j < blocks; j++)
		if (ovc_block_open(c, key, fid, 7, 0, ct, 4124, pt) != 4096)
			return 1;
	report("open", total, now() - t);

	fd = memfd_create("bench", MFD_CLOEXEC);
	if (fd < 0 || ovc_file_create(fd, &ak, c, 0, &f, NULL))
		return 1;
	for (int pass = 0; pass < 2; pass++) {
		t = now();
		for (uint64_t off = 0; off < total; off += 128 << 10)
			if (ovc_file_pwrite(f, c, buf, 128 << 10, off, NULL) != 128 << 10)
				return 1;
		report(pass ? "file-rewrite" : "file-append", total, now() - t);
	}
	ovc_file_close(f);
	if (ovc_file_open(fd, lookup, &ak, &f, NULL))
		return 1;
	t = now();
	for (uint64_t off = 0; off < total; off += 128 << 10)
		if (ovc_file_pread(f, c, buf, 128 << 10, off, NULL) != 128 << 10)
			return 1;
	report("file-read", total, now() - t);
	ovc_file_close(f);
	close(fd);
	fd = memfd_create("anchor", MFD_CLOEXEC);
	t = now();
	for (uint64_t off = 0; off < total; off += 128 << 10)
		if (pwrite(fd, buf, 128 << 10, (off_t)off) != 128 << 10)
			return 1;
	report("memfd-append", total, now() - t);
	close(fd);
	ovc_cipher_free(c);
	free(pt);
	free(ct);
	free(buf);
	return 0;
}
