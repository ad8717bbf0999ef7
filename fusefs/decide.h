/*
 * decide.h - what the overlay does when a uid opens or creates a file:
 * DESIGN.md, "The overlay", as one pure function of the view, the path's
 * rules and what the backing file holds. No I/O; unit-tested on its own
 * (tests/unit/test_decide.c).
 */
#ifndef OVC_FUSEFS_DECIDE_H
#define OVC_FUSEFS_DECIDE_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/keys.h"
#include "daemon/view.h"

/* What the backing file is. */
enum ovc_fclass {
	OVC_FC_NEW,    /* does not exist yet (create) */
	OVC_FC_EMPTY,  /* a 0-byte regular file */
	OVC_FC_PLAIN,  /* a regular file not starting with the magic */
	OVC_FC_ENC,    /* an encrypted file */
};

enum ovc_action {
	OVC_ACT_PASS,     /* plaintext, passed through */
	OVC_ACT_ENC,      /* open the encrypted file with `key` (its key id) */
	OVC_ACT_ENC_NEW,  /* start a fresh encrypted file under `key` */
	OVC_ACT_CONVERT,  /* encrypt the plaintext file under `key` first */
	OVC_ACT_REKEY,    /* re-encrypt the file (its key id is not the
			   * place's current one) under `key`, a fresh file
			   * key, before writing; `fresh` is its old key */
};

typedef struct ovc_decision {
	enum ovc_action act;
	const ovc_key *key;   /* borrowed from the view */
	const ovc_key *fresh; /* the key a truncation to zero starts under
			       * (ENC); NULL: none held */
	const char *why;      /* for a refusal (static) */
} ovc_decision;

typedef struct ovc_request {
	const ovc_view *view;        /* NULL: the uid has no view */
	const char *const *guard;    /* for a NULL view: the served users'
				      * folders (ovc_views_guard_folders) */
	size_t nguard;
	const char *path;            /* absolute path of the file */
	enum ovc_fclass fc;
	const uint8_t *key_id;       /* OVC_FC_ENC: the header's key id */
	int write;                   /* opened for writing */
	int trunc;                   /* O_TRUNC (or a truncation to zero) */
	const uint8_t *copy_key_id;  /* the requesting process holds an
				      * encrypted file open under this key id
				      * (its latest), or NULL: a new or
				      * emptied file where no rule encrypts
				      * is then a copy of it */
} ovc_request;

/* Where no rule encrypts, a file created (or emptied, or found empty) for
 * writing by a process that holds an encrypted file open counts as a copy
 * of that file (cp, file managers, save-as): with persistent encryption on
 * it is started encrypted under that file's key (a fresh file key), and
 * refused when that key is no longer held.
 *
 * Returns 0 with `d` filled, or -EACCES (d->why says why: "locked",
 * "not entitled to the key", "no policy", "plaintext under rule refused",
 * …). */
int ovc_decide(const ovc_request *r, ovc_decision *d);

/* What is renamed (or exchanged). */
enum ovc_rkind {
	OVC_RK_ENC,    /* an encrypted regular file */
	OVC_RK_FILE,   /* any other regular file (plaintext, empty) */
	OVC_RK_DIR,    /* a folder */
	OVC_RK_OTHER,  /* a symlink, fifo, socket or device */
};

enum ovc_rename_action {
	OVC_REN_PLAIN,   /* rename as it is */
	OVC_REN_REWRAP,  /* an encrypted file into a place with another key:
			  * its file key rewrapped from `from` to `to` */
	OVC_REN_REWRAP_TREE, /* a folder between two encrypting rules: renamed
			  * at once, then every encrypted file below it
			  * rewrapped to `to` (from a journal) */
};

typedef struct ovc_rename_decision {
	enum ovc_rename_action act;
	const ovc_key *from, *to;  /* REWRAP: borrowed from the view */
	const char *why;           /* for -EXDEV and -EACCES (static) */
} ovc_rename_decision;

typedef struct ovc_rename_request {
	const ovc_view *view;        /* NULL: the uid has no view */
	const char *const *guard;    /* as in ovc_request */
	size_t nguard;
	const char *src, *dst;       /* absolute paths */
	enum ovc_rkind kind;
	const uint8_t *key_id;       /* OVC_RK_ENC: the header's key id */
	int exchange;                /* RENAME_EXCHANGE */
} ovc_rename_request;

/* A rename between places (DESIGN.md, "The overlay"; docs/overlay.md,
 * "Moving between rules"). Where a new file would get the same key (or
 * plaintext) on both sides, it is a plain rename. Across rules: an
 * encrypted file into an encrypting place is rewrapped under that place's
 * current key (both keys must be held: else -EACCES); an encrypted file
 * or a folder into a place with no key stays as it is when persistent
 * encryption is on (else -EXDEV); a folder between two encrypting rules is
 * renamed and what is below it rewrapped (the destination's key must be
 * held: else -EACCES); everything else, and every exchange,
 * gives -EXDEV, so that programs copy through the overlay and the copy
 * takes the destination's form. Returns 0, -EXDEV or -EACCES. */
int ovc_decide_rename(const ovc_rename_request *r, ovc_rename_decision *d);

/* Initial encryption (`overcrypt encrypt --initial`): the key that a
 * plaintext file at `path` is converted under, whatever
 * plaintext_under_rule says (that setting is for writes). NULL with *why
 * NULL: no rule encrypts there; NULL with *why set: a rule does, and its
 * key is not held ("locked", …). */
const ovc_key *ovc_decide_convert_key(const ovc_view *v, const char *path,
				      const char **why);

/* Does a rule decide whether the path of match `m` is encrypted: its
 * name's rule encrypts, or files created there are encrypted? (Then the
 * manual `overcrypt encrypt/decrypt` leave it to the rule.) */
int ovc_decide_rule_governs(const ovc_match *m);

/* Is `path` at or below one of `folders` (whole components)? */
int ovc_path_under_any(const char *path, const char *const *folders, size_t n);

/* The key a new file at `path` gets under `v` (NULL: plaintext), and
 * whether the place encrypts at all (*encrypts). Used for EXDEV checks. */
const ovc_rule *ovc_decide_create_rule(const ovc_view *v, const char *path);

#endif
