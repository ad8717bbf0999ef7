/* bech32.c - Bech32 (BIP 173) without the 90-character limit; see age.h.
 *
 * age keys are longer than BIP 173 allows, so only the checksum, the
 * character set and the case rules are kept. */
#include "crypto/age.h"

#include <errno.h>
#include <string.h>

static const char charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

static uint32_t polymod_step(uint32_t chk, uint8_t v)
{
	static const uint32_t gen[5] = { 0x3b6a57b2, 0x26508e6d, 0x1ea119fa,
					 0x3d4233dd, 0x2a1462b3 };
	uint8_t top = (uint8_t)(chk >> 25);

	chk = ((chk & 0x1ffffff) << 5) ^ v;
	for (int i = 0; i < 5; i++)
		if ((top >> i) & 1)
			chk ^= gen[i];
	return chk;
}

/* The checksum state after the (lower-case) hrp has been expanded in. */
static uint32_t polymod_hrp(const char *hrp, size_t hrp_len)
{
	uint32_t chk = 1;

	for (size_t i = 0; i < hrp_len; i++)
		chk = polymod_step(chk, (uint8_t)hrp[i] >> 5);
	chk = polymod_step(chk, 0);
	for (size_t i = 0; i < hrp_len; i++)
		chk = polymod_step(chk, (uint8_t)hrp[i] & 31);
	return chk;
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int hrp_valid(const char *hrp, size_t len)
{
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (hrp[i] < 33 || hrp[i] > 126)
			return 0;
	return 1;
}

int ovc_bech32_encode(char *out, size_t out_size, const char *hrp,
		      const uint8_t *data, size_t len)
{
	size_t hrp_len, n5, need, pos;
	uint32_t chk, acc = 0;
	int bits = 0;

	if (!out || !hrp || (!data && len))
		return -EINVAL;
	hrp_len = strlen(hrp);
	if (!hrp_valid(hrp, hrp_len) || len > (SIZE_MAX - 64) / 8)
		return -EINVAL;
	n5 = (len * 8 + 4) / 5;
	need = hrp_len + 1 + n5 + 6 + 1;
	if (need < hrp_len || out_size < need)
		return -EINVAL;
	for (pos = 0; pos < hrp_len; pos++)
		out[pos] = lower(hrp[pos]);
	chk = polymod_hrp(out, hrp_len);
	out[pos++] = '1';
	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8) | data[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			uint8_t v = (acc >> bits) & 31;
			chk = polymod_step(chk, v);
			out[pos++] = charset[v];
		}
	}
	if (bits) {
		uint8_t v = (acc << (5 - bits)) & 31;
		chk = polymod_step(chk, v);
		out[pos++] = charset[v];
	}
	for (int i = 0; i < 6; i++)
		chk = polymod_step(chk, 0);
	chk ^= 1;
	for (int i = 0; i < 6; i++)
		out[pos++] = charset[(chk >> (5 * (5 - i))) & 31];
	out[pos] = '\0';
	return 0;
}

/* The 5-bit value of a data character, or -1. */
static int charset_value(char c)
{
	const char *p;

	c = lower(c);
	if (c == '\0')
		return -1;
	p = strchr(charset, c);
	return p ? (int)(p - charset) : -1;
}

/* Mixed case is refused (BIP 173); so are characters outside 33..126. */
static int case_check(const char *s, size_t len)
{
	int up = 0, low = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] < 33 || s[i] > 126)
			return -EINVAL;
		up |= s[i] >= 'A' && s[i] <= 'Z';
		low |= s[i] >= 'a' && s[i] <= 'z';
	}
	return up && low ? -EINVAL : 0;
}

/* 5-bit groups back to bytes: at most 4 bits of zero padding. */
static int convert_5to8(const char *d, size_t n5, uint8_t *data,
			size_t data_size, size_t *data_len)
{
	uint32_t acc = 0;
	size_t out = 0;
	int bits = 0;

	for (size_t i = 0; i < n5; i++) {
		acc = ((acc << 5) | (uint32_t)charset_value(d[i])) & 0xfff;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			if (out >= data_size)
				return -EINVAL;
			data[out++] = (uint8_t)(acc >> bits);
		}
	}
	if (bits >= 5 || (acc & ((1u << bits) - 1)))
		return -EINVAL;
	*data_len = out;
	return 0;
}

int ovc_bech32_decode(const char *s, char *hrp, size_t hrp_size,
		      uint8_t *data, size_t data_size, size_t *data_len)
{
	const char *sep;
	size_t len, hrp_len, n5;
	uint32_t chk;
	char hl[84];

	if (!s || !hrp || !data_len || (!data && data_size))
		return -EINVAL;
	len = strlen(s);
	sep = strrchr(s, '1');
	if (!sep || case_check(s, len))
		return -EINVAL;
	hrp_len = (size_t)(sep - s);
	n5 = len - hrp_len - 1;
	if (hrp_len == 0 || hrp_len >= sizeof(hl) || hrp_len >= hrp_size ||
	    n5 < 6)
		return -EINVAL;
	for (size_t i = 0; i < hrp_len; i++)
		hl[i] = lower(s[i]);
	chk = polymod_hrp(hl, hrp_len);
	for (size_t i = 0; i < n5; i++) {
		int v = charset_value(sep[1 + i]);
		if (v < 0)
			return -EINVAL;
		chk = polymod_step(chk, (uint8_t)v);
	}
	if (chk != 1)
		return -EINVAL;
	if (convert_5to8(sep + 1, n5 - 6, data, data_size, data_len))
		return -EINVAL;
	memcpy(hrp, hl, hrp_len);
	hrp[hrp_len] = '\0';
	return 0;
}
