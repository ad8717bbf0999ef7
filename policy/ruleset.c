/*
 * ruleset.c - the index of rules for one view, and the matcher.
 *
 * Each rule becomes zero or more instances, one per local folder it governs
 * (a local rule: its folder; an smb rule: one per mount of its share). The
 * folders form a trie of path components (node 0 is "/"); a child is found
 * through one open-addressing hash table keyed by (parent node, component),
 * so a match costs one hash probe per component of the path's folder,
 * whatever the number of rules. Below the mount point of an smb rule the
 * trie compares components ASCII-case-insensitively (names stored lower
 * case), like the server.
 *
 * Instances at a node are sorted by precedence (deeper rule folder first,
 * then a specific pattern before *.*, then public before shared/private),
 * so the first whose pattern matches the name is that node's answer, and a
 * deeper node's answer beats a shallower one's.
 */
#define _GNU_SOURCE /* memrchr */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/keys.h"
#include "policy/rules.h"
#include "policy/rules_int.h"

#define NONE UINT32_MAX
#define ARENA_CHUNK 65536

struct chunk {
	struct chunk *next;
	size_t used, size;
	char data[];
};

/* One rule at one local folder. */
struct inst {
	uint32_t rule;        /* index into rs->rules */
	uint32_t node;        /* the trie node of `local` */
	uint32_t depth;       /* node depth << 16 | depth below the share */
	uint32_t slen;        /* pattern suffix length (pattern minus '*') */
	uint8_t any, pub;     /* pattern *.*; a public rule */
	const char *suffix;   /* pattern without its '*' */
	const char *local;    /* the local folder, normalised */
	const char *mountpoint; /* smb: the mount point, else NULL */
};

struct node {
	uint32_t parent;
	uint32_t name_len;
	const char *name;     /* lower case when the parent is ci */
	uint32_t depth;       /* components below "/" */
	uint32_t first, count; /* its instances, in precedence order */
	uint32_t enc;         /* its preferred encryption instance, or NONE */
	uint32_t pubany;      /* its deepest public *.* instance, or NONE */
	uint8_t ci;           /* children compared case-insensitively */
};

struct ovc_ruleset {
	ovc_rule *rules;
	size_t nrules;
	struct inst *insts;
	size_t ninsts, capinsts;
	struct node *nodes;
	size_t nnodes, capnodes;
	uint32_t *table;      /* node index + 1; 0 empty */
	size_t tmask;         /* table size - 1 */
	const char **folders;
	size_t nfolders;
	struct chunk *arena;
};

/* ---------------------------------------------------------------------------
 * Arena of strings that live as long as the ruleset.
 */

static char *arena_alloc(ovc_ruleset *rs, size_t n)
{
	struct chunk *c = rs->arena;

	if (!c || c->size - c->used < n) {
		size_t size = n > ARENA_CHUNK ? n : ARENA_CHUNK;

		c = malloc(sizeof(*c) + size);
		if (!c)
			return NULL;
		c->size = size;
		c->used = 0;
		c->next = rs->arena;
		rs->arena = c;
	}
	c->used += n;
	return c->data + c->used - n;
}

static char *arena_strndup(ovc_ruleset *rs, const char *s, size_t n)
{
	char *d = arena_alloc(rs, n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* ---------------------------------------------------------------------------
 * The trie.
 */

static inline uint64_t comp_hash(uint32_t parent, const char *s, size_t n, int ci)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ ((uint64_t)parent * 0x9e3779b97f4a7c15ULL);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (ci && c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h = (h ^ c) * 0x100000001b3ULL;
	}
	return h ^ (h >> 29);
}

/* Does `s` (n bytes) equal the stored lower-case `lower` ignoring case? */
static inline int eq_ci(const char *lower, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if ((unsigned char)lower[i] != c)
			return 0;
	}
	return 1;
}

static uint32_t child_find(const ovc_ruleset *rs, uint32_t parent, const char *s,
			   size_t n)
{
	int ci = rs->nodes[parent].ci;
	size_t i = comp_hash(parent, s, n, ci) & rs->tmask;

	for (;; i = (i + 1) & rs->tmask) {
		uint32_t v = rs->table[i];
		const struct node *c;

		if (v == 0)
			return NONE;
		c = &rs->nodes[v - 1];
		if (c->parent == parent && c->name_len == n &&
		    (ci ? eq_ci(c->name, s, n) : memcmp(c->name, s, n) == 0))
			return v - 1;
	}
}

static void table_put(ovc_ruleset *rs, uint32_t idx)
{
	const struct node *c = &rs->nodes[idx];
	size_t i = comp_hash(c->parent, c->name, c->name_len, 0) & rs->tmask;

	while (rs->table[i])
		i = (i + 1) & rs->tmask;
	rs->table[i] = idx + 1;
}

/* Double the table and put every node back. 0 or -ENOMEM. */
static int table_grow(ovc_ruleset *rs)
{
	size_t size = (rs->tmask + 1) * 2;
	uint32_t *t = calloc(size, sizeof(*t));

	if (!t)
		return -ENOMEM;
	free(rs->table);
	rs->table = t;
	rs->tmask = size - 1;
	for (size_t i = 1; i < rs->nnodes; i++)
		table_put(rs, (uint32_t)i);
	return 0;
}

static int node_add(ovc_ruleset *rs, uint32_t parent, const char *s, size_t n,
		    uint32_t *out)
{
	char *name;
	int rc;

	if (rs->nnodes == rs->capnodes) {
		size_t cap = rs->capnodes * 2;
		struct node *t = realloc(rs->nodes, cap * sizeof(*t));

		if (!t)
			return -ENOMEM;
		rs->nodes = t;
		rs->capnodes = cap;
	}
	if ((rs->nnodes + 1) * 2 > rs->tmask + 1) {
		rc = table_grow(rs);
		if (rc != 0)
			return rc;
	}
	name = arena_strndup(rs, s, n);
	if (!name)
		return -ENOMEM;
	if (rs->nodes[parent].ci)
		ovc_ascii_lower(name, n);
	rs->nodes[rs->nnodes] = (struct node){
		.parent = parent, .name_len = (uint32_t)n, .name = name,
		.depth = rs->nodes[parent].depth + 1, .enc = NONE, .pubany = NONE,
		.ci = rs->nodes[parent].ci };
	*out = (uint32_t)rs->nnodes++;
	table_put(rs, *out);
	return 0;
}

/* The node of the normalised absolute folder `path`, created as needed. */
static int trie_insert(ovc_ruleset *rs, const char *path, uint32_t *out)
{
	uint32_t cur = 0;
	const char *p = path;
	int rc;

	while (*p) {
		const char *c;
		uint32_t next;

		while (*p == '/')
			p++;
		c = p;
		while (*p && *p != '/')
			p++;
		if (p == c)
			continue;
		next = child_find(rs, cur, c, (size_t)(p - c));
		if (next == NONE) {
			rc = node_add(rs, cur, c, (size_t)(p - c), &next);
			if (rc != 0)
				return rc;
		}
		cur = next;
	}
	*out = cur;
	return 0;
}

/* ---------------------------------------------------------------------------
 * Building.
 */

static int inst_add(ovc_ruleset *rs, uint32_t rule, const ovc_rule_path *rp,
		    const char *local, const char *mountpoint, uint32_t own)
{
	struct inst *in;

	if (rs->ninsts == rs->capinsts) {
		size_t cap = rs->capinsts ? rs->capinsts * 2 : 64;
		struct inst *t = realloc(rs->insts, cap * sizeof(*t));

		if (!t)
			return -ENOMEM;
		rs->insts = t;
		rs->capinsts = cap;
	}
	in = &rs->insts[rs->ninsts];
	*in = (struct inst){ .rule = rule, .depth = own, .any = (uint8_t)rp->any,
			     .pub = rs->rules[rule].type == OVC_RULE_PUBLIC };
	in->local = arena_strndup(rs, local, strlen(local));
	in->suffix = rp->any ? "" : arena_strndup(rs, rp->pattern + 1, strlen(rp->pattern + 1));
	in->slen = (uint32_t)strlen(rp->any ? "" : rp->pattern + 1);
	in->mountpoint = mountpoint ? arena_strndup(rs, mountpoint, strlen(mountpoint)) : NULL;
	if (!in->local || !in->suffix || (mountpoint && !in->mountpoint))
		return -ENOMEM;
	rs->ninsts++;
	return 0;
}

/* If `pre` is a component-wise prefix of `s` (both without leading or
 * trailing '/'; "" is the root), the rest of `s` after it (no leading '/'),
 * else NULL. */
static const char *comp_prefix(const char *pre, const char *s)
{
	size_t n = strlen(pre);

	if (n == 0)
		return s;
	if (strncmp(pre, s, n) != 0)
		return NULL;
	if (s[n] == '\0')
		return s + n;
	return s[n] == '/' ? s + n + 1 : NULL;
}

static uint32_t comp_count(const char *s)
{
	uint32_t n = *s ? 1 : 0;

	for (; *s; s++)
		n += *s == '/';
	return n;
}

/* One instance per mount of the smb rule's share that shows its folder. */
static int smb_instances(ovc_ruleset *rs, uint32_t rule, const ovc_rule_path *rp,
			 const ovc_smb_mount *mounts, size_t nmounts)
{
	char local[OVC_PATH_MAX];
	uint32_t own = comp_count(rp->folder) + 1;

	for (size_t j = 0; j < nmounts; j++) {
		const ovc_smb_mount *mt = &mounts[j];
		const char *rest;
		int len, rc;

		if (strcmp(mt->host, rp->host) != 0 || strcmp(mt->share, rp->share) != 0)
			continue;
		rest = comp_prefix(mt->prefix, rp->folder);
		if (!rest && comp_prefix(rp->folder, mt->prefix))
			rest = ""; /* the mount shows a folder inside the rule's */
		if (!rest)
			continue;
		len = snprintf(local, sizeof(local), "%s%s%s", mt->mountpoint,
			       *rest && strcmp(mt->mountpoint, "/") != 0 ? "/" : "", rest);
		if (len < 0 || (size_t)len >= sizeof(local))
			continue; /* cannot be named: matches nothing */
		rc = inst_add(rs, rule, rp, local, mt->mountpoint, own);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* `path` with every %USERNAME% replaced by `user`. 0 or -1 (too long). */
static int username_subst(const char *path, const char *user, char *out, size_t size)
{
	size_t tl = strlen(OVC_USERNAME_TOKEN), ul = strlen(user), o = 0;

	while (*path) {
		if (strncmp(path, OVC_USERNAME_TOKEN, tl) == 0) {
			if (o + ul >= size)
				return -1;
			memcpy(out + o, user, ul);
			o += ul;
			path += tl;
			continue;
		}
		if (o + 1 >= size)
			return -1;
		out[o++] = *path++;
	}
	out[o] = '\0';
	return 0;
}

/* The instances of rule `i`. `rp` and `tmp` are scratch space. */
static int rule_instances(ovc_ruleset *rs, uint32_t i, const char *username,
			  const ovc_smb_mount *mounts, size_t nmounts,
			  ovc_rule_path *rp, char *tmp, size_t tmp_size, ovc_err *e)
{
	const ovc_rule *r = &rs->rules[i];
	int rc = ovc_rule_path_parse(r->path, rp, e);

	if (rc != 0)
		return ovc_err_wrap(e, rc, "asset '%s': rule path '%s': ",
				    r->asset ? r->asset : "?", r->path ? r->path : "");
	if (r->type < OVC_RULE_SHARED || r->type > OVC_RULE_PUBLIC)
		return ovc_err_set(e, -EINVAL, "asset '%s': unknown rule type",
				   r->asset ? r->asset : "?");
	if (rp->has_username) {
		/* A bad name, or one that makes the path unparsable (a control
		 * character), leaves the rule in place matching nothing. */
		if (!ovc_username_ok(username) ||
		    username_subst(r->path, username, tmp, tmp_size) != 0 ||
		    ovc_rule_path_parse(tmp, rp, NULL) != 0)
			return 0;
	}
	if (rp->smb)
		return smb_instances(rs, i, rp, mounts, nmounts);
	return inst_add(rs, i, rp, rp->folder, NULL, 0);
}

static int rules_copy(ovc_ruleset *rs, const ovc_rule *rules, size_t n)
{
	rs->rules = calloc(n ? n : 1, sizeof(*rs->rules));
	if (!rs->rules)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		rs->rules[i] = rules[i];
		if (rules[i].asset) {
			rs->rules[i].asset = arena_strndup(rs, rules[i].asset, strlen(rules[i].asset));
			if (!rs->rules[i].asset)
				return -ENOMEM;
		}
		if (rules[i].path) {
			rs->rules[i].path = arena_strndup(rs, rules[i].path, strlen(rules[i].path));
			if (!rs->rules[i].path)
				return -ENOMEM;
		}
	}
	rs->nrules = n;
	return 0;
}

static int inst_cmp(const void *pa, const void *pb)
{
	const struct inst *a = pa, *b = pb;

	if (a->node != b->node)
		return a->node < b->node ? -1 : 1;
	if (a->depth != b->depth)
		return a->depth > b->depth ? -1 : 1;
	if (a->any != b->any)
		return a->any ? 1 : -1;
	if (a->pub != b->pub)
		return a->pub ? -1 : 1;
	if (a->rule != b->rule)
		return a->rule < b->rule ? -1 : 1;
	return strcmp(a->local, b->local);
}

/* Mount points first, shallow before deep, so that every node below one is
 * created case-insensitive; then every instance's folder. */
static int trie_build(ovc_ruleset *rs)
{
	uint32_t maxd = 0;
	int rc;

	for (size_t i = 0; i < rs->ninsts; i++)
		if (rs->insts[i].mountpoint && comp_count(rs->insts[i].mountpoint + 1) > maxd)
			maxd = comp_count(rs->insts[i].mountpoint + 1);
	for (uint32_t d = 0; d <= maxd; d++) {
		for (size_t i = 0; i < rs->ninsts; i++) {
			uint32_t node;

			if (!rs->insts[i].mountpoint ||
			    comp_count(rs->insts[i].mountpoint + 1) != d)
				continue;
			rc = trie_insert(rs, rs->insts[i].mountpoint, &node);
			if (rc != 0)
				return rc;
			rs->nodes[node].ci = 1;
		}
	}
	for (size_t i = 0; i < rs->ninsts; i++) {
		struct inst *in = &rs->insts[i];

		rc = trie_insert(rs, in->local, &in->node);
		if (rc != 0)
			return rc;
		in->depth |= rs->nodes[in->node].depth << 16;
	}
	return 0;
}

/* Sort the instances by node and precedence; give each node its range,
 * its preferred encryption instance (deepest; *.* before a pattern on a
 * tie) and its deepest public *.* instance. */
static void nodes_index(ovc_ruleset *rs)
{
	if (rs->ninsts)
		qsort(rs->insts, rs->ninsts, sizeof(*rs->insts), inst_cmp);
	for (size_t i = 0; i < rs->ninsts; i++) {
		const struct inst *in = &rs->insts[i];
		struct node *nd = &rs->nodes[in->node];

		if (nd->count == 0)
			nd->first = (uint32_t)i;
		nd->count++;
		if (in->pub) {
			if (in->any && nd->pubany == NONE)
				nd->pubany = (uint32_t)i;
		} else if (nd->enc == NONE || rs->insts[nd->enc].depth < in->depth ||
			   (rs->insts[nd->enc].depth == in->depth && in->any &&
			    !rs->insts[nd->enc].any)) {
			nd->enc = (uint32_t)i;
		}
	}
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int folders_index(ovc_ruleset *rs)
{
	size_t n = 0;

	rs->folders = calloc(rs->ninsts ? rs->ninsts : 1, sizeof(*rs->folders));
	if (!rs->folders)
		return -ENOMEM;
	for (size_t i = 0; i < rs->ninsts; i++)
		rs->folders[i] = rs->insts[i].local;
	if (rs->ninsts)
		qsort(rs->folders, rs->ninsts, sizeof(*rs->folders), str_cmp);
	for (size_t i = 0; i < rs->ninsts; i++)
		if (n == 0 || strcmp(rs->folders[n - 1], rs->folders[i]) != 0)
			rs->folders[n++] = rs->folders[i];
	rs->nfolders = n;
	return 0;
}

int ovc_ruleset_build(const ovc_rule *rules, size_t n, const char *username,
		      const ovc_smb_mount *mounts, size_t nmounts,
		      ovc_ruleset **out, ovc_err *e)
{
	ovc_ruleset *rs = NULL;
	ovc_rule_path *rp = NULL;
	char *tmp = NULL;
	int rc = -ENOMEM;

	if (!out || (n && !rules) || (nmounts && !mounts) || n > UINT32_MAX / 2)
		return ovc_err_set(e, -EINVAL, "bad arguments");
	*out = NULL;
	rs = calloc(1, sizeof(*rs));
	rp = malloc(sizeof(*rp));
	tmp = malloc(OVC_PATH_MAX);
	if (!rs || !rp || !tmp)
		goto out;
	rs->capnodes = 256;
	rs->nodes = calloc(rs->capnodes, sizeof(*rs->nodes));
	rs->table = calloc(1024, sizeof(*rs->table));
	if (!rs->nodes || !rs->table)
		goto out;
	rs->tmask = 1023;
	rs->nodes[0] = (struct node){ .parent = NONE, .name = "", .enc = NONE,
				      .pubany = NONE };
	rs->nnodes = 1;
	rc = rules_copy(rs, rules, n);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = rule_instances(rs, (uint32_t)i, username, mounts, nmounts, rp, tmp,
				    OVC_PATH_MAX, e);
	if (rc == 0)
		rc = trie_build(rs);
	if (rc == 0) {
		nodes_index(rs);
		rc = folders_index(rs);
	}
out:
	if (rc == -ENOMEM)
		ovc_err_set(e, rc, "out of memory");
	if (rc != 0) {
		ovc_ruleset_free(rs);
		rs = NULL;
	}
	free(rp);
	free(tmp);
	*out = rs;
	return rc;
}

void ovc_ruleset_free(ovc_ruleset *rs)
{
	if (!rs)
		return;
	while (rs->arena) {
		struct chunk *c = rs->arena;

		rs->arena = c->next;
		free(c);
	}
	free(rs->rules);
	free(rs->insts);
	free(rs->nodes);
	free(rs->table);
	free(rs->folders);
	free(rs);
}

const ovc_rule *ovc_ruleset_asset(const ovc_ruleset *rs, const char *asset)
{
	for (size_t k = 0; rs && asset && k < rs->nrules; k++) {
		const ovc_rule *r = &rs->rules[k];

		if (r->has_key && r->type != OVC_RULE_PUBLIC && r->asset &&
		    strcmp(r->asset, asset) == 0)
			return r;
	}
	return NULL;
}

const char *const *ovc_ruleset_local_folders(const ovc_ruleset *rs, size_t *n)
{
	if (n)
		*n = rs ? rs->nfolders : 0;
	return rs ? rs->folders : NULL;
}

/* ---------------------------------------------------------------------------
 * Matching.
 */

/* The outcome of one walk, as instance indexes (NONE when none). */
struct walk {
	uint32_t best;   /* the instance that governs the name */
	uint32_t enc;    /* the deepest encryption instance on the way */
	uint32_t pubany; /* the deepest public *.* instance on the way */
};

/* Walk the folder `dir` (normalised; "" for "/", else "/a/b" whose first
 * byte is skipped), looking at every node on the way for `name` (NULL for a
 * folder: only *.* matches). */
static void walk(const ovc_ruleset *rs, const char *dir, size_t dlen,
		 const char *name, size_t nlen, struct walk *w)
{
	uint32_t cur = 0;
	size_t i = 0;

	*w = (struct walk){ NONE, NONE, NONE };
	for (;;) {
		const struct node *nd = &rs->nodes[cur];

		for (uint32_t k = nd->first; k < nd->first + nd->count; k++) {
			const struct inst *in = &rs->insts[k];

			if (in->any || (name && ovc_pattern_match(in->suffix, in->slen, name, nlen))) {
				w->best = k;
				break;
			}
		}
		if (nd->enc != NONE)
			w->enc = nd->enc;
		if (nd->pubany != NONE)
			w->pubany = nd->pubany;
		if (i >= dlen)
			break;
		{
			const char *c = dir + i + 1, *end = memchr(c, '/', dlen - i - 1);
			size_t n = end ? (size_t)(end - c) : dlen - i - 1;

			cur = child_find(rs, cur, c, n);
			if (cur == NONE)
				break;
			i += n + 1;
		}
	}
}

/* Fill `m` from a walk. See rules.h for folder_rule and create_rule. */
static void walk_answer(const ovc_ruleset *rs, const struct walk *w, ovc_match *m)
{
	const struct inst *best = w->best != NONE ? &rs->insts[w->best] : NULL;
	const struct inst *enc = w->enc != NONE ? &rs->insts[w->enc] : NULL;

	if (enc && w->pubany != NONE && rs->insts[w->pubany].depth >= enc->depth)
		enc = NULL; /* a public *.* at an equal or deeper folder */
	m->rule = best ? &rs->rules[best->rule] : NULL;
	m->folder_rule = enc ? &rs->rules[enc->rule] : NULL;
	m->local_folder = best ? best->local : enc ? enc->local : NULL;
	if (best && !best->pub)
		m->create_rule = m->rule;
	else if (enc && (!best || enc->depth > best->depth))
		m->create_rule = m->folder_rule;
	else
		m->create_rule = NULL;
}

/* Append to why (`size` bytes left) and return how many bytes were
 * written (never more than size - 1). */
static size_t put(char *why, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static size_t put(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;
	int len;

	if (size == 0)
		return 0;
	va_start(ap, fmt);
	len = vsnprintf(why, size, fmt, ap);
	va_end(ap);
	return len < 0 ? 0 : (size_t)len >= size ? size - 1 : (size_t)len;
}

/* "shared asset 'x' via rule P (mounted at M), key K" for instance `in`. */
static size_t explain_inst(const ovc_ruleset *rs, const struct inst *in, char *why,
			   size_t size)
{
	const ovc_rule *r = &rs->rules[in->rule];
	char key[OVC_KEY_ID_STRLEN + 1] = "none";
	char where[OVC_PATH_MAX + 32] = "";

	if (in->mountpoint)
		snprintf(where, sizeof(where), " (mounted at %s)", in->mountpoint);
	else if (strchr(r->path, '%'))
		snprintf(where, sizeof(where), " (folder %s)", in->local);
	if (r->has_key)
		ovc_key_id_format(r->key_id, key);
	if (r->type == OVC_RULE_PUBLIC)
		return put(why, size, "public asset '%s' via rule %s%s (not encrypted)",
			   r->asset ? r->asset : "?", r->path, where);
	return put(why, size, "%s asset '%s' via rule %s%s, key %s",
		   ovc_rule_type_name(r->type), r->asset ? r->asset : "?", r->path,
		   where, key);
}

static void explain(const ovc_ruleset *rs, const char *path, int folder,
		    const ovc_match *m, const struct walk *w, char *why, size_t size)
{
	size_t o = put(why, size, "%s%s: ", path, folder && strcmp(path, "/") ? "/" : "");

	if (m->rule) {
		o += explain_inst(rs, &rs->insts[w->best], why + o, size - o);
		if (m->create_rule && m->create_rule != m->rule) {
			o += put(why + o, size - o, "; but the folder is an encrypted"
				 " folder, so new files here are encrypted: ");
			explain_inst(rs, &rs->insts[w->enc], why + o, size - o);
		}
	} else if (m->folder_rule) {
		o += put(why + o, size - o, "no rule governs this name, but the folder"
			 " is an encrypted folder (new files here are encrypted): ");
		explain_inst(rs, &rs->insts[w->enc], why + o, size - o);
	} else {
		put(why + o, size - o, "no rule applies (not encrypted)");
	}
}

/* Does `path` (`len` bytes, absolute) name a folder: "/", or a last
 * component that is empty, "." or ".."? */
static int names_folder(const char *path, size_t len)
{
	const char *last = memrchr(path, '/', len) + 1;
	size_t n = len - (size_t)(last - path);

	return n == 0 || (n == 1 && last[0] == '.') ||
	       (n == 2 && last[0] == '.' && last[1] == '.');
}

int ovc_ruleset_match(const ovc_ruleset *rs, const char *path, ovc_match *m,
		      char *why, size_t why_size)
{
	char buf[OVC_PATH_MAX];
	struct walk w;
	size_t len;
	const char *name = NULL, *slash;
	int rc, folder;

	if (!rs || !path || !m)
		return -EINVAL;
	memset(m, 0, sizeof(*m));
	rc = ovc_path_normalise(path, buf, sizeof(buf));
	if (rc != 0)
		return rc;
	len = strlen(buf);
	folder = len == 1 || names_folder(path, strlen(path));
	if (folder) {
		walk(rs, buf, len == 1 ? 0 : len, NULL, 0, &w);
	} else {
		slash = strrchr(buf, '/');
		name = slash + 1;
		walk(rs, buf, (size_t)(slash - buf), name, len - (size_t)(name - buf), &w);
	}
	walk_answer(rs, &w, m);
	if (why && why_size)
		explain(rs, buf, folder, m, &w, why, why_size);
	return 0;
}
