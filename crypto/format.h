/*
 * format.h - the encrypted file format v1: header, block layout, block
 * sealing. docs/file-format.md is the normative description; this header is
 * its code.
 *
 *   header (120 bytes) | slot 0 | slot 1 | … | final slot
 *   slot = nonce (12) | AES-256-GCM ciphertext (≤ 4096) | tag (16)
 *
 * Every file has at least one slot; only the final slot may be short; an
 * empty slot (28 bytes) exists only as slot 0 of an empty file. The
 * plaintext size follows from the backing size alone
 * (ovc_layout_plain_size()).
 *
 * Thread-safety: the functions are reentrant. An ovc_cipher belongs to one
 * thread at a time (one per thread or per handle); it is never shared.
 */
#ifndef OVC_FORMAT_H
#define OVC_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "crypto/keys.h"

#define OVC_MAGIC "OVCRYPT1"
#define OVC_MAGIC_LEN 8
#define OVC_VERSION 1

/* Header field offsets and sizes (bytes). */
#define OVC_HDR_OFF_VERSION 8
#define OVC_HDR_OFF_RESERVED 9   /* 3 bytes, must be zero */
#define OVC_HDR_OFF_FLAGS 12     /* u32 little-endian */
#define OVC_HDR_OFF_KEY_ID 16    /* 16 bytes */
#define OVC_HDR_OFF_FILE_ID 32   /* 16 bytes */
#define OVC_HDR_OFF_NONCE 48     /* 24 bytes, XChaCha20-Poly1305 */
#define OVC_HDR_OFF_WRAPPED 72   /* 32 bytes ciphertext + 16 bytes tag */
#define OVC_HDR_AD_LEN 48        /* bytes 0..47 are the wrap's associated data */
#define OVC_HEADER_SIZE 120

#define OVC_FLAG_SPARSE 0x1u     /* an all-zero non-final slot is a hole */
#define OVC_FLAGS_KNOWN OVC_FLAG_SPARSE

#define OVC_FILE_ID_BYTES 16
#define OVC_BLOCK_SIZE 4096
#define OVC_NONCE_BYTES 12
#define OVC_TAG_BYTES 16
#define OVC_BLOCK_OVERHEAD (OVC_NONCE_BYTES + OVC_TAG_BYTES)    /* 28 */
#define OVC_SLOT_SIZE (OVC_BLOCK_SIZE + OVC_BLOCK_OVERHEAD)      /* 4124 */
#define OVC_BLOCK_AD_LEN 26 /* version | file id | block number | last */

/* The largest plaintext size: whole slots that keep the backing size within
 * a signed 64-bit file offset. Larger sizes are -EFBIG. */
#define OVC_MAX_PLAIN_SIZE \
	((uint64_t)((INT64_MAX - OVC_HEADER_SIZE) / OVC_SLOT_SIZE) * OVC_BLOCK_SIZE)

_Static_assert(OVC_HDR_OFF_WRAPPED + OVC_KEY_BYTES + 16 == OVC_HEADER_SIZE,
	       "header fields must fill the header exactly");
_Static_assert(OVC_HEADER_SIZE <= 512, "header must fit one sector");
_Static_assert(OVC_SLOT_SIZE == 4124, "slot size is part of the format");

typedef struct ovc_header {
	uint8_t version;
	uint32_t flags;
	uint8_t key_id[OVC_KEY_ID_BYTES];
	uint8_t file_id[OVC_FILE_ID_BYTES];
	uint8_t nonce[24];
	uint8_t wrapped[OVC_KEY_BYTES + 16];
} ovc_header;

/* Does `buf` start with the magic? A file that does not is plaintext. */
int ovc_is_encrypted(const uint8_t *buf, size_t len);

/* Parse a header. Errors: -EINVAL (too short, not the magic, reserved bytes
 * not zero), -EPROTO (an unknown version or flag bit: refused, never
 * guessed at). */
int ovc_header_decode(const uint8_t *buf, size_t len, ovc_header *h,
		      ovc_err *e);

/* Serialise into `out` (OVC_HEADER_SIZE bytes). */
void ovc_header_encode(const ovc_header *h, uint8_t *out);

/* Fill `h` for a new file: version 1, `flags`, `key_id`, a fresh random file
 * id and a fresh random file key (written to `file_key`, which should be
 * secret memory), wrapped with `asset_key`. */
void ovc_header_new(ovc_header *h, uint32_t flags, const ovc_key *asset_key,
		    uint8_t file_key[OVC_KEY_BYTES]);

/* (Re)wrap `file_key` with `asset_key` under a fresh random nonce, binding
 * the header's version, flags, key id and file id. Used for new headers,
 * flag updates and rewraps; the file id and key stay. */
void ovc_header_wrap(ovc_header *h, const uint8_t *asset_key,
		     const uint8_t file_key[OVC_KEY_BYTES]);

/* The same with a given nonce: for the format's test vectors only. */
void ovc_header_wrap_nonce(ovc_header *h, const uint8_t *asset_key,
			   const uint8_t file_key[OVC_KEY_BYTES],
			   const uint8_t nonce[24]);

/* Unwrap the file key. Errors: -EBADMSG (wrong key, or the header was
 * changed). `file_key` is wiped on failure. */
int ovc_header_unwrap(const ovc_header *h, const uint8_t *asset_key,
		      uint8_t file_key[OVC_KEY_BYTES]);

/* Plaintext size and slot count for a backing size. Errors: -EBADMSG with
 * a message when the backing size is not a valid layout (cut back to the
 * header, a remainder of 1–27 bytes, an empty slot after slot 0). */
int ovc_layout_plain_size(uint64_t backing, uint64_t *plain,
			  uint64_t *nslots, ovc_err *e);

/* Backing size for a plaintext size (≤ OVC_MAX_PLAIN_SIZE). */
uint64_t ovc_layout_backing_size(uint64_t plain);

/* Number of slots for a plaintext size (at least 1). */
static inline uint64_t ovc_layout_nslots(uint64_t plain)
{
	return plain == 0 ? 1 : (plain + OVC_BLOCK_SIZE - 1) / OVC_BLOCK_SIZE;
}

/* Backing offset of slot `i`. */
static inline uint64_t ovc_layout_slot_off(uint64_t i)
{
	return OVC_HEADER_SIZE + i * (uint64_t)OVC_SLOT_SIZE;
}

/* ---------------------------------------------------------------------------
 * Block sealing.
 *
 * An ovc_cipher holds what sealing needs without an allocation or a system
 * call per block: the AES-256-GCM cipher fetched once, two EVP contexts
 * (seal and open) that keep the last key schedule, a batch of nonces from
 * one randombytes_buf() call (in a page the kernel wipes in a forked child,
 * MADV_WIPEONFORK, so a child never reuses the parent's nonces; each nonce
 * is wiped once taken), and scratch buffers for the block layer. It lives in
 * sodium_malloc memory.
 */
typedef struct ovc_cipher ovc_cipher;

/* A new cipher context, or NULL (ENOMEM, or OpenSSL has no AES-256-GCM). */
ovc_cipher *ovc_cipher_new(void);

/* Free it; the key schedules and the nonce batch are wiped. NULL is fine. */
void ovc_cipher_free(ovc_cipher *c);

/* Seal `len` (≤ 4096) plaintext bytes as block `blockno` of the file
 * `file_id`, `last` set for a final block, under `key` (the file key), into
 * `out` (len + 28 bytes: nonce | ciphertext | tag) with a fresh nonce.
 * Returns 0, or -EIO when OpenSSL fails. `in` and `out` may not overlap. */
int ovc_block_seal(ovc_cipher *c, const uint8_t *key, const uint8_t *file_id,
		   uint64_t blockno, int last, const uint8_t *in, size_t len,
		   uint8_t *out);

/* The same with a given nonce: for the format's test vectors only. Nothing
 * else calls it (a nonce must never repeat under one file key). */
int ovc_block_seal_nonce(ovc_cipher *c, const uint8_t *key,
			 const uint8_t *file_id, uint64_t blockno, int last,
			 const uint8_t nonce[OVC_NONCE_BYTES],
			 const uint8_t *in, size_t len, uint8_t *out);

/* Open a sealed block of `in_len` bytes (28..4124) into `out` (in_len - 28
 * bytes). The tag is always 16 bytes, set explicitly. Returns the
 * plaintext length, -EBADMSG when it does not authenticate (`out` is wiped:
 * no unauthenticated plaintext is handed out), -EINVAL for a bad length. */
int ovc_block_open(ovc_cipher *c, const uint8_t *key, const uint8_t *file_id,
		   uint64_t blockno, int last, const uint8_t *in, size_t in_len,
		   uint8_t *out);

/* Scratch space for the block layer, owned by the cipher context (so it is
 * per thread, like the context): `OVC_CIPHER_BATCH` + 1 slots of ciphertext
 * (ordinary memory) and two blocks of plaintext (secret memory, `which` 0
 * or 1). Valid until
 * ovc_cipher_free(); contents are not kept between calls. */
#define OVC_CIPHER_BATCH 32
uint8_t *ovc_cipher_slots(ovc_cipher *c);
uint8_t *ovc_cipher_block(ovc_cipher *c, int which);

#endif
