/* fuzz_journal.c - libFuzzer target for the overlay's rewrap journal entries
 * (fusefs/journal.h).
 *
 * Invariants checked: an entry that parses has an absolute mount point and a
 * clean relative folder path without NUL bytes; formatting it gives text that
 * parses back to the same entry, and to the same text again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fusefs/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static ovc_journal_entry a, b;
	char *t1 = NULL, *t2 = NULL;
	size_t l1, l2;

	if (ovc_journal_parse((const char *)data, size, &a) != 0)
		return 0;
	if (a.mnt[0] != '/' || a.rel[0] == '/' || !a.rel[0] || strstr(a.rel, "//"))
		abort();
	if (ovc_journal_format(&a, &t1, &l1) != 0)
		abort();
	if (ovc_journal_parse(t1, l1, &b) != 0 || strcmp(a.mnt, b.mnt) || strcmp(a.rel, b.rel) ||
	    a.uid != b.uid || memcmp(a.key_id, b.key_id, sizeof(a.key_id)))
		abort();
	if (ovc_journal_format(&b, &t2, &l2) != 0 || l1 != l2 || memcmp(t1, t2, l1))
		abort();
	free(t1);
	free(t2);
	return 0;
}
