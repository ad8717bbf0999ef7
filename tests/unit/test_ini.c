/* Unit tests of common/ini: the INI line reader and the name check.
 *
 * Every callback is recorded as one line "LINE kind text" (E error,
 * S section, K key "name=value", C continuation); a test compares the
 * whole record. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/ini.h"

struct rec {
	char buf[8192];
	size_t len;
	const char *splittable;  /* the one key that may be split, or NULL */
};

static void add(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(struct rec *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(r->buf + r->len, sizeof(r->buf) - r->len, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(r->buf) - r->len);
	r->len += (size_t)n;
}

static void on_error(void *ctx, int line, const char *msg)
{
	add(ctx, "%d E %s\n", line, msg);
}

static void on_section(void *ctx, const char *name, size_t len, int line)
{
	if (name)
		add(ctx, "%d S [%.*s]\n", line, (int)len, name);
	else
		add(ctx, "%d S none\n", line);
}

static void on_key(void *ctx, const char *name, const char *value, int line)
{
	add(ctx, "%d K %s=%s\n", line, name, value);
}

static void on_cont(void *ctx, const char *text, size_t len, int line)
{
	add(ctx, "%d C %.*s\n", line, (int)len, text);
}

static int on_splittable(void *ctx, const char *name, size_t len)
{
	const struct rec *r = ctx;

	return r->splittable && strlen(r->splittable) == len && !memcmp(r->splittable, name, len);
}

/* Read `text` ([text, text+len)) with `flags` and `max_line`; the record
 * must be `want`. */
static void expect_len(const char *text, size_t len, unsigned flags, size_t max_line,
		       const char *splittable, const char *want)
{
	ovc_ini_ops ops = {
		.flags = flags, .max_line = max_line, .long_hint = flags ? " (hint)" : NULL,
		.error = on_error, .section = on_section, .key = on_key,
		.cont = on_cont, .splittable = on_splittable,
	};
	struct rec *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	r->splittable = splittable;
	assert_int_equal(ovc_ini_parse(text, len, &ops, r), 0);
	assert_string_equal(r->buf, want);
	free(r);
}

#define expect(text, flags, max, want) expect_len((text), strlen(text), (flags), (max), NULL, (want))

static void test_lines_counted(void **state)
{
	(void)state;
	/* BOM, comments of both kinds, blank lines, CRLF, an inline " ;" */
	expect("\xEF\xBB\xBF; first\r\n# second\r\n\r\n[s]\r\n  a = 1 ;x\r\nb=2;3\r\n"
	       "c : 4\r\n\r\n", 0, 0,
	       "4 S [s]\n5 K a=1\n6 K b=2;3\n7 K c=4\n");
	/* a BOM on line 1 only; no final newline */
	expect("[s]\n\xEF\xBB\xBF[t]\nlast = x", 0, 0,
	       "1 S [s]\n2 E expected 'key = value', a [section] or a comment\n3 K last=x\n");
	expect("", 0, 0, "");
	/* a comment after a header; '#' right after ']' */
	expect("[a] ; c\n[b]#c\n[ c d ]\n", 0, 0, "1 S [a]\n2 S [b]\n3 S [ c d ]\n");
	/* an empty name and value go to the caller */
	expect("= v\nk =\n", 0, 0, "1 K =v\n2 K k=\n");
}

static void test_malformed_all_reported(void **state)
{
	(void)state;
	expect("junk\n[s\nk = v\n[t] x\nmore junk\nk ;= v\n[u]\n", 0, 0,
	       "1 E expected 'key = value', a [section] or a comment\n"
	       "2 E section header without ']'\n2 S none\n"
	       "3 K k=v\n"
	       "4 E text after the section header's ']'\n4 S none\n"
	       "5 E expected 'key = value', a [section] or a comment\n"
	       "6 E expected 'key = value', a [section] or a comment\n"
	       "7 S [u]\n");
	/* a " ;" ends the header first, unless lax; lax opens the section
	 * despite text after ']' */
	expect("[a ;b]\n[c] x\n", 0, 0,
	       "1 E section header without ']'\n1 S none\n"
	       "2 E text after the section header's ']'\n2 S none\n");
	expect("[a ;b]\n[c] x\n", OVC_INI_HEADER_LAX, 0,
	       "1 S [a ;b]\n2 E text after the section header's ']'\n2 S [c]\n");
}

static void test_nul_refused(void **state)
{
	static const char text[] = "a = 1\nb = x\0y\n\0\nc = 3\n";

	(void)state;
	expect_len(text, sizeof(text) - 1, 0, 0, NULL,
		   "1 K a=1\n2 E the line holds a NUL byte\n3 E the line holds a NUL byte\n"
		   "4 K c=3\n");
}

static void test_long_lines(void **state)
{
	char line[400], text[900], want[900];

	(void)state;
	/* the limit counts the key line without its comment and trailing space */
	expect("k = 12345\nk = 123456\nk = 12345 ; a long comment\n", 0, 9,
	       "1 K k=12345\n2 E line longer than 9 characters\n3 K k=12345\n");
	/* without max_line, inih's buffer decides: 198 bytes */
	memset(line, 'v', sizeof(line));
	memcpy(line, "k = ", 4);
	snprintf(text, sizeof(text), "%.198s\n%.199s\nnext = 1\n", line, line);
	snprintf(want, sizeof(want), "1 K k=%.194s\n2 E line longer than 198 characters\n"
		 "3 K next=1\n", line + 4);
	expect_len(text, strlen(text), 0, 0, NULL, want);
	/* a hint is appended */
	expect("k = 1234567890\n", OVC_INI_CONTINUATION, 9,
	       "1 E line longer than 9 characters (hint)\n");
}

static void test_continuation(void **state)
{
	(void)state;
	/* indented lines after a key continue it, past blank lines and
	 * comments; after a header an indented line is a key line */
	expect("[s]\n  k = a,\n\tb ; c\n\n# x\n   c,d\n[t]\n  j = 1\n   more\n",
	       OVC_INI_CONTINUATION, 0,
	       "1 S [s]\n2 K k=a,\n3 C b\n6 C c,d\n7 S [t]\n8 K j=1\n9 C more\n");
	/* after a key line the reader refused, its continuation is dropped */
	expect("k = 1\nbad\n  dropped\nk2 = 2\n  kept\n", OVC_INI_CONTINUATION, 0,
	       "1 K k=1\n2 E expected 'key = value', a [section] or a comment\n"
	       "4 K k2=2\n5 C kept\n");
	/* at the start nothing is continued */
	expect("  k = 1\n  x = 2\n", OVC_INI_CONTINUATION, 0, "1 K k=1\n2 C x = 2\n");
	/* without the flag an indented line is read like any other */
	expect("k = 1\n  j = 2\n  junk\n", 0, 0,
	       "1 K k=1\n2 K j=2\n3 E expected 'key = value', a [section] or a comment\n");
}

static void test_list_split(void **state)
{
	unsigned f = OVC_INI_CONTINUATION | OVC_INI_SPLIT_LISTS;

	(void)state;
	/* 24 bytes into 12: cut after the last ',' in the first 12 bytes; the
	 * rest goes on as a continuation of the same line, after the key */
	expect_len("m = aa, bb, cc, dd ; c\nx = 1\n", 29, f, 12, "m",
		   "1 K m=aa, bb,\n1 C cc, dd\n2 K x=1\n");
	/* a comma right at the limit would not fit with it: the one before */
	expect_len("m = aa,bbbbb,cc\n", 16, f, 12, "m", "1 K m=aa,\n1 C bbbbb,cc\n");
	/* no comma that fits, or a key that is no list: refused */
	expect_len("m = aaaaaaaaa,b\n", 16, f, 12, "m",
		   "1 E line longer than 12 characters (hint)\n");
	expect_len("o = aa, bb, cc, dd\n", 19, f, 12, "m",
		   "1 E line longer than 12 characters (hint)\n");
	/* without the flag no line is split */
	expect_len("m = aa, bb, cc, dd\n", 19, OVC_INI_CONTINUATION, 12, "m",
		   "1 E line longer than 12 characters (hint)\n");
}

static void test_name_ok(void **state)
{
	char n[66];

	(void)state;
	assert_true(ovc_ini_name_ok("a", 1));
	assert_true(ovc_ini_name_ok("0a._-Z", 6));
	assert_true(ovc_ini_name_ok("ab,cd", 2)); /* only [s, s+len) counts */
	assert_false(ovc_ini_name_ok("", 0));
	assert_false(ovc_ini_name_ok(".a", 2));
	assert_false(ovc_ini_name_ok("-a", 2));
	assert_false(ovc_ini_name_ok("a b", 3));
	assert_false(ovc_ini_name_ok("a@b", 3));
	assert_false(ovc_ini_name_ok("\xc3\xa9", 2));
	memset(n, 'x', sizeof(n));
	assert_true(ovc_ini_name_ok(n, OVC_INI_NAME_MAX));
	assert_false(ovc_ini_name_ok(n, OVC_INI_NAME_MAX + 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_counted),
		cmocka_unit_test(test_malformed_all_reported),
		cmocka_unit_test(test_nul_refused),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_continuation),
		cmocka_unit_test(test_list_split),
		cmocka_unit_test(test_name_ok),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
