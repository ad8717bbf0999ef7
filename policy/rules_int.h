/*
 * rules_int.h - helpers shared by rules.c, mountinfo.c and ruleset.c only
 * (not part of the public contract in rules.h).
 */
#ifndef OVC_RULES_INT_H
#define OVC_RULES_INT_H

#include <stddef.h>

#define OVC_PATH_MAX 4096
#define OVC_USERNAME_TOKEN "%USERNAME%"

/* ASCII lower-case the first `n` bytes of `s` (stops at a NUL). */
void ovc_ascii_lower(char *s, size_t n);

/* Does the name (`nlen` bytes) end with the pattern suffix (the pattern
 * without its leading '*'), compared ASCII case-insensitively? */
int ovc_pattern_match(const char *pattern_suffix, size_t slen, const char *name,
		      size_t nlen);

/* May `u` stand for %USERNAME%? Not empty, no '/', no "..", not ".", no
 * control character. */
int ovc_username_ok(const char *u);

#endif
