/*
 * ini.h - the line reader our INI files are read through (inih underneath).
 *
 * Debian's libinih 55 gives its handler no line number, cuts lines longer
 * than its buffer (200 bytes) silently, and reports only the first
 * malformed line. So inih reads through ini_parse_stream() with the reader
 * here, which walks the text line by line and:
 *   - counts lines, so every callback knows its line;
 *   - drops a UTF-8 BOM at the start of line 1;
 *   - refuses a line holding a NUL byte;
 *   - skips blank lines and comments ('#' or ';' first), and cuts an inline
 *     comment (a ';' after white space) as inih does;
 *   - handles section headers itself (so names are not cut at inih's 50
 *     bytes and an empty section is seen), reporting a malformed one;
 *   - reports every malformed or over-long line, and goes on;
 *   - hands inih only key lines, without their indentation (so inih's own
 *     continuation rule never fires) and without a trailing comment; inih
 *     splits each into name and value and trims them.
 * Optionally (flags) it passes indented lines after a key on as
 * continuation text, and splits an over-long list line at a comma.
 * inih's global options are read, never set.
 *
 * Thread-safety: none needed; all state lives in the call.
 */
#ifndef OVC_COMMON_INI_H
#define OVC_COMMON_INI_H

#include <stddef.h>

/* An indented line after a key line (not after a header) is text that
 * continues that key: it goes to `cont`, trimmed and without its comment.
 * Without this flag an indented line is read like any other. */
#define OVC_INI_CONTINUATION 0x1u
/* A key line longer than the limit whose key `splittable` accepts is cut
 * after the last ',' that fits: the first part goes to `key`, the rest
 * (trimmed) to `cont` with the same line, once `key` has run. */
#define OVC_INI_SPLIT_LISTS 0x2u
/* A section header is read up to its first ']' even across a " ;"
 * (without it, a " ;" ends the line first, as in inih), and text after
 * the ']' is reported but the section still opens (without it, the
 * header is refused). org.conf's historical reading. */
#define OVC_INI_HEADER_LAX 0x4u

/* What the reader calls back; `ctx` is the caller's, passed through.
 * Strings are borrowed, valid only during the call; they are not
 * NUL-terminated where a length is given. Callbacks may be NULL when
 * they cannot happen (cont and splittable without the flags above). */
typedef struct ovc_ini_ops {
	unsigned flags;          /* OVC_INI_* */
	size_t max_line;         /* longest key line taken, in bytes after
				  * trimming and the comment; 0 = as long as
				  * inih's buffer allows (198) */
	const char *long_hint;   /* appended to "line longer than N
				  * characters"; NULL = nothing */
	/* A fault the reader found: `msg` is complete ("the line holds a NUL
	 * byte", "section header without ']'", ...). */
	void (*error)(void *ctx, int line, const char *msg);
	/* A section header: `name` is the text between '[' and ']' ([name,
	 * name+len), untrimmed), or NULL when the header was refused (the
	 * error is already reported): what follows belongs to no section. */
	void (*section)(void *ctx, const char *name, size_t len, int line);
	/* A key line: name and value as inih trimmed them. */
	void (*key)(void *ctx, const char *name, const char *value, int line);
	/* Continuation text for the last key given to `key` (see the flags);
	 * never called after a key line the reader refused. */
	void (*cont)(void *ctx, const char *text, size_t len, int line);
	/* Whether the key named [name, name+len) may be split (a list). */
	int (*splittable)(void *ctx, const char *name, size_t len);
} ovc_ini_ops;

/* Read the INI text [text, text+len) (need not be NUL-terminated),
 * calling back `ops` with `ctx` in file order. Faults in the text are
 * reported through ops->error and do not stop the reading.
 * Returns 0 when the text was read to its end (with or without faults),
 * -ENOMEM when inih ran out of memory, or -EINVAL when inih refused a
 * line the reader passed it (not expected to happen). */
int ovc_ini_parse(const char *text, size_t len, const ovc_ini_ops *ops, void *ctx);

#define OVC_INI_NAME_MAX 64

/* A name as our files and the policy name users, groups and assets:
 * 1-64 (OVC_INI_NAME_MAX) characters of [A-Za-z0-9._-], the first a letter
 * or digit. [s, s+len) need not be NUL-terminated. Returns 1 or 0. */
int ovc_ini_name_ok(const char *s, size_t len);

#endif /* OVC_COMMON_INI_H */
