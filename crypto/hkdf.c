/* hkdf.c - HKDF-SHA-256 (RFC 5869) on libsodium's HMAC-SHA-256; see age.h.
 *
 * libsodium 1.0.18 has no HKDF, and its one-shot crypto_auth_hmacsha256()
 * takes a fixed 32-byte key, while age uses salts of 0, 16 and 64 bytes:
 * the streaming init takes a key of any length. */
#include "crypto/age.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

#define HASH_LEN crypto_auth_hmacsha256_BYTES

/* PRK = HMAC(salt, ikm); an absent salt is HashLen zero bytes. */
static void hkdf_extract(uint8_t prk[HASH_LEN], const uint8_t *salt,
			 size_t salt_len, const uint8_t *ikm, size_t ikm_len)
{
	static const uint8_t zero_salt[HASH_LEN];
	crypto_auth_hmacsha256_state st;

	if (!salt || salt_len == 0) {
		salt = zero_salt;
		salt_len = sizeof(zero_salt);
	}
	crypto_auth_hmacsha256_init(&st, salt, salt_len);
	crypto_auth_hmacsha256_update(&st, ikm, ikm_len);
	crypto_auth_hmacsha256_final(&st, prk);
	sodium_memzero(&st, sizeof(st));
}

int ovc_hkdf_sha256(uint8_t *out, size_t out_len, const uint8_t *salt,
		    size_t salt_len, const uint8_t *ikm, size_t ikm_len,
		    const uint8_t *info, size_t info_len)
{
	crypto_auth_hmacsha256_state st;
	uint8_t prk[HASH_LEN], t[HASH_LEN];
	size_t done = 0, t_len = 0;
	uint8_t counter = 1;

	if ((!out && out_len) || out_len > 255 * HASH_LEN ||
	    (!ikm && ikm_len) || (!info && info_len))
		return -EINVAL;
	hkdf_extract(prk, salt, salt_len, ikm, ikm_len);
	/* T(i) = HMAC(PRK, T(i-1) | info | i), T(0) empty. */
	while (done < out_len) {
		size_t n = out_len - done < HASH_LEN ? out_len - done : HASH_LEN;

		crypto_auth_hmacsha256_init(&st, prk, sizeof(prk));
		crypto_auth_hmacsha256_update(&st, t, t_len);
		if (info_len)
			crypto_auth_hmacsha256_update(&st, info, info_len);
		crypto_auth_hmacsha256_update(&st, &counter, 1);
		crypto_auth_hmacsha256_final(&st, t);
		t_len = HASH_LEN;
		memcpy(out + done, t, n);
		done += n;
		counter++;
	}
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(prk, sizeof(prk));
	sodium_memzero(t, sizeof(t));
	return 0;
}
