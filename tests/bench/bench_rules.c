/* bench_rules.c - the rule matcher at scale.
 *
 * Builds 10,000 rules (local folders, %USERNAME% folders, smb:// rules over
 * a few mounts of several shares, a mix of *.* and specific patterns), then
 * times ovc_ruleset_match() on 200,000 random paths (under rules, beside
 * them, deep below them, with odd case under SMB mounts, and far from any
 * rule) and prints the build time and the median and p99 match times.
 * Never fails on timing: the target is printed beside the figure. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "policy/rules.h"

#define NRULES 10000
#define NPATHS 200000
#define TARGET_NS 2000

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static const char *const pats[] = { "", "*.*", "*.docx", "*.pdf", "*.xlsx", "*.tar.gz" };
static const char *const exts[] = { ".docx", ".pdf", ".txt", ".xlsx", "", ".tar.gz", ".tmp" };
static const char *const words[] = { "team", "proj", "dept", "archive", "Reports",
				      "2024", "q1", "legal", "hr", "data" };

static const char mountinfo[] =
	"101 25 0:51 / /srv/smb/s0 rw - cifs //files0.corp.local/share0 rw\n"
	"102 25 0:52 / /mnt/s0\\040copy rw - smb3 //bob@files0.corp.local/SHARE0 rw\n"
	"103 25 0:53 / /srv/smb/s1 rw - cifs //files1.corp.local/share1 rw\n"
	"104 25 0:54 / /srv/smb/s2 rw - cifs //files0.corp.local/share2 rw\n"
	"105 25 0:55 / /srv/smb/s3sub rw - cifs //files1.corp.local/share3/dept3 rw\n";

/* A rule folder below `base` of 1 to 4 random components, into `out`. */
static void folder_make(char *out, size_t size, const char *base)
{
	int depth = 1 + (int)rnd(4);
	size_t o = (size_t)snprintf(out, size, "%s", base);

	for (int d = 0; d < depth && o < size; d++) {
		const char *w = words[rnd(10)];

		o += (size_t)snprintf(out + o, size - o, "/%s%u", w, rnd(d ? 8 : 40));
	}
}

static void rules_make(ovc_rule *r, char (*paths)[256])
{
	for (int i = 0; i < NRULES; i++) {
		char folder[200];
		uint32_t kind = rnd(10);
		const char *pat = pats[rnd(6)];

		if (kind < 6) {
			folder_make(folder, sizeof(folder), "/srv");
			snprintf(paths[i], 256, "%s/%s", folder, pat);
		} else if (kind < 7) {
			folder_make(folder, sizeof(folder), "/home/%USERNAME%");
			snprintf(paths[i], 256, "%s/%s", folder, pat);
		} else {
			char base[64];
			uint32_t s = rnd(5);

			snprintf(base, sizeof(base), "smb://files%u.corp.local/share%u",
				 s == 2 ? 0 : s % 2, s);
			folder_make(folder, sizeof(folder), base);
			snprintf(paths[i], 256, "%s/%s", folder, pat);
		}
		memset(&r[i], 0, sizeof(r[i]));
		r[i].asset = "bench";
		r[i].path = paths[i];
		r[i].type = (enum ovc_rule_type)(1 + rnd(3));
		r[i].has_key = r[i].type != OVC_RULE_PUBLIC;
		r[i].key_id[0] = (uint8_t)i;
	}
}

/* A path to look up: mostly under or near a rule's folder. */
static void path_make(char *out, size_t size, const ovc_rule *r)
{
	static const char *const smbroots[] = { "/srv/smb/s0", "/mnt/s0 copy", "/srv/smb/s1",
						"/srv/smb/s2", "/srv/smb/s3sub" };
	uint32_t kind = rnd(10);
	size_t o;

	if (kind < 2) {
		o = (size_t)snprintf(out, size, "/var/tmp/x%u", rnd(100));
	} else {
		const char *p = r[rnd(NRULES)].path, *slash;

		if (strncmp(p, "smb://", 6) == 0) {
			p = strchr(p + 6, '/');
			p = strchr(p + 1, '/');
			o = (size_t)snprintf(out, size, "%s", smbroots[rnd(5)]);
		} else if (strncmp(p, "/home/%USERNAME%", 16) == 0) {
			o = (size_t)snprintf(out, size, "/home/%s", rnd(2) ? "alice" : "bob");
			p += 16;
		} else {
			o = 0;
		}
		slash = strrchr(p, '/');
		o += (size_t)snprintf(out + o, size - o, "%.*s", (int)(slash - p), p);
		if (kind == 2 && o > 2)
			out[o - 2] ^= 0x20; /* a case change (matters under SMB only) */
	}
	for (uint32_t d = rnd(4); d > 0; d--)
		o += (size_t)snprintf(out + o, size - o, "/sub%u", rnd(10));
	{
		uint32_t f = rnd(1000);

		snprintf(out + o, size - o, "/file%u%s", f, exts[rnd(7)]);
	}
}

int main(void)
{
	ovc_rule *r = calloc(NRULES, sizeof(*r));
	char (*paths)[256] = calloc(NRULES, sizeof(*paths));
	char (*q)[256] = calloc(NPATHS, sizeof(*q));
	uint64_t *t = calloc(NPATHS, sizeof(*t));
	ovc_smb_mount *mt = NULL;
	ovc_ruleset *rs = NULL;
	ovc_err e = { 0 };
	size_t nm = 0, hits = 0, folders = 0, nf;
	uint64_t t0, build_ns, sum = 0;
	int rc = 1;

	if (!r || !paths || !q || !t || ovc_common_init() != 0)
		goto out;
	if (ovc_mountinfo_parse_smb(mountinfo, sizeof(mountinfo) - 1, &mt, &nm, NULL) != 0)
		goto out;
	rules_make(r, paths);
	t0 = now_ns();
	if (ovc_ruleset_build(r, NRULES, "alice", mt, nm, &rs, &e) != 0) {
		fprintf(stderr, "bench_rules: build: %s\n", e.msg);
		goto out;
	}
	build_ns = now_ns() - t0;
	ovc_ruleset_local_folders(rs, &nf);
	for (int i = 0; i < NPATHS; i++)
		path_make(q[i], sizeof(q[i]), r);
	for (int i = 0; i < 2000; i++) { /* warm up */
		ovc_match m;

		if (ovc_ruleset_match(rs, q[i], &m, NULL, 0) != 0)
			goto out;
	}
	for (int i = 0; i < NPATHS; i++) {
		ovc_match m;
		uint64_t a = now_ns();

		if (ovc_ruleset_match(rs, q[i], &m, NULL, 0) != 0) {
			fprintf(stderr, "bench_rules: match %s failed\n", q[i]);
			goto out;
		}
		t[i] = now_ns() - a;
		sum += t[i];
		hits += m.rule != NULL;
		folders += m.folder_rule != NULL;
	}
	qsort(t, NPATHS, sizeof(*t), cmp_u64);
	printf("rules %d (%zu SMB mounts, %zu local folders), paths %d: %zu governed by a rule, "
	       "%zu in encrypted folders\n", NRULES, nm, nf, NPATHS, hits, folders);
	printf("build %.1f ms\n", (double)build_ns / 1e6);
	printf("match median %llu ns (target < %d ns)\n",
	       (unsigned long long)t[NPATHS / 2], TARGET_NS);
	printf("match p99 %llu ns, mean %llu ns (timer overhead included)\n",
	       (unsigned long long)t[NPATHS * 99 / 100], (unsigned long long)(sum / NPATHS));
	rc = 0;
out:
	ovc_ruleset_free(rs);
	free(mt);
	free(r);
	free(paths);
	free(q);
	free(t);
	return rc;
}
