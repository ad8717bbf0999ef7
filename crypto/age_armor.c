/* age_armor.c - the age ASCII armor (strict PEM, RFC 7468 figure 3); see
 * age.h.
 *
 * Strict on purpose: armored files are malleable unless everything between
 * the markers is canonical. Accepted besides the canonical form: CRLF line
 * ends, a missing final line end, and whitespace before and after the block
 * (the spec allows exactly these). */
#include "crypto/age.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define ARMOR_BEGIN "-----BEGIN AGE ENCRYPTED FILE-----"
#define ARMOR_END "-----END AGE ENCRYPTED FILE-----"
#define ARMOR_COLS 64
#define ARMOR_BYTES 48 /* per full line */

static int is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static size_t skip_ws(const uint8_t *in, size_t len, size_t pos)
{
	while (pos < len && is_ws(in[pos]))
		pos++;
	return pos;
}

/* The line at *pos without its LF or CRLF; *pos moves past the line end
 * (or to `len` when the input ends without one). */
static void next_line(const uint8_t *in, size_t len, size_t *pos,
		      const uint8_t **line, size_t *line_len)
{
	const uint8_t *nl = memchr(in + *pos, '\n', len - *pos);
	size_t end = nl ? (size_t)(nl - in) : len;

	*line = in + *pos;
	*line_len = end - *pos;
	if (*line_len && (*line)[*line_len - 1] == '\r')
		(*line_len)--;
	*pos = nl ? end + 1 : len;
}

static int line_is(const uint8_t *line, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(line, s, n) == 0;
}

int ovc_age_armor_looks(const uint8_t *in, size_t len)
{
	size_t pos = skip_ws(in, len, 0);
	size_t n = sizeof(ARMOR_BEGIN) - 1;

	return len - pos >= n && memcmp(in + pos, ARMOR_BEGIN, n) == 0;
}

/* One data line: 1..64 characters of padded, canonical base64, whole
 * quanta only. Sets *last when the line must be the final one. */
static int armor_line(const uint8_t *line, size_t n, uint8_t *out,
		      size_t *out_len, int *last, ovc_err *e)
{
	size_t got;

	if (n == 0)
		return ovc_err_set(e, -EILSEQ, "armor: empty line");
	if (n > ARMOR_COLS)
		return ovc_err_set(e, -EILSEQ,
				   "armor: line longer than %d columns",
				   ARMOR_COLS);
	if (n % 4 || sodium_base642bin(out, ARMOR_BYTES, (const char *)line,
				       n, NULL, &got, NULL,
				       sodium_base64_VARIANT_ORIGINAL))
		return ovc_err_set(e, -EILSEQ,
				   "armor: invalid or non-canonical base64");
	*out_len = got;
	*last = n < ARMOR_COLS || line[n - 1] == '=';
	return 0;
}

int ovc_age_armor_decode(const uint8_t *in, size_t len, uint8_t **out,
			 size_t *out_len, ovc_err *e)
{
	const uint8_t *line;
	size_t pos, n, used = 0;
	uint8_t *buf;
	int last = 0, rc = 0;

	*out = NULL;
	*out_len = 0;
	pos = skip_ws(in, len, 0);
	next_line(in, len, &pos, &line, &n);
	if (!line_is(line, n, ARMOR_BEGIN))
		return ovc_err_set(e, -EILSEQ, "armor: no '%s' line",
				   ARMOR_BEGIN);
	buf = malloc(len / 4 * 3 + ARMOR_BYTES);
	if (!buf)
		return ovc_err_set(e, -ENOMEM, "out of memory");
	for (;;) {
		size_t got = 0;

		if (pos >= len) {
			rc = ovc_err_set(e, -EILSEQ, "armor: no '%s' line",
					 ARMOR_END);
			goto out;
		}
		next_line(in, len, &pos, &line, &n);
		if (line_is(line, n, ARMOR_END))
			break;
		if (last) {
			rc = ovc_err_set(e, -EILSEQ,
					 "armor: data after the short final line");
			goto out;
		}
		rc = armor_line(line, n, buf + used, &got, &last, e);
		if (rc)
			goto out;
		used += got;
	}
	if (skip_ws(in, len, pos) != len) {
		rc = ovc_err_set(e, -EILSEQ, "armor: data after '%s'",
				 ARMOR_END);
		goto out;
	}
	*out = buf;
	*out_len = used;
	buf = NULL;
out:
	free(buf);
	return rc;
}

int ovc_age_armor_encode(const uint8_t *in, size_t len, uint8_t **out,
			 size_t *out_len)
{
	size_t lines = (len + ARMOR_BYTES - 1) / ARMOR_BYTES, pos = 0, cap;
	char *buf;

	*out = NULL;
	*out_len = 0;
	if (lines > (SIZE_MAX - 128) / (ARMOR_COLS + 1))
		return -ENOMEM;
	cap = sizeof(ARMOR_BEGIN) + lines * (ARMOR_COLS + 1) +
	      sizeof(ARMOR_END) + 1;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, ARMOR_BEGIN "\n", sizeof(ARMOR_BEGIN));
	pos = sizeof(ARMOR_BEGIN);
	for (size_t off = 0; off < len; off += ARMOR_BYTES) {
		size_t n = len - off < ARMOR_BYTES ? len - off : ARMOR_BYTES;

		sodium_bin2base64(buf + pos, cap - pos, in + off, n,
				  sodium_base64_VARIANT_ORIGINAL);
		pos += strlen(buf + pos);
		buf[pos++] = '\n';
	}
	memcpy(buf + pos, ARMOR_END "\n", sizeof(ARMOR_END));
	pos += sizeof(ARMOR_END);
	*out = (uint8_t *)buf;
	*out_len = pos;
	return 0;
}
