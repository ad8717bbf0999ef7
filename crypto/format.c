/* format.c - encrypted file format v1: header, layout, blocks; see format.h
 * and docs/file-format.md. */
#define _GNU_SOURCE
#include "crypto/format.h"

#include <errno.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <string.h>
#include <sys/mman.h>

int ovc_is_encrypted(const uint8_t *buf, size_t len)
{
	return len >= OVC_MAGIC_LEN && memcmp(buf, OVC_MAGIC, OVC_MAGIC_LEN) == 0;
}

int ovc_header_decode(const uint8_t *buf, size_t len, ovc_header *h,
		      ovc_err *e)
{
	static const uint8_t zero[3];

	if (len < OVC_HEADER_SIZE)
		return ovc_err_set(e, -EINVAL, "header is cut short (%zu of %d bytes)",
				   len, OVC_HEADER_SIZE);
	if (!ovc_is_encrypted(buf, len))
		return ovc_err_set(e, -EINVAL, "not an overcrypt file (no OVCRYPT1 magic)");
	h->version = buf[OVC_HDR_OFF_VERSION];
	if (h->version != OVC_VERSION)
		return ovc_err_set(e, -EPROTO, "format version %u is not supported (this program reads version %d)",
				   h->version, OVC_VERSION);
	if (memcmp(buf + OVC_HDR_OFF_RESERVED, zero, sizeof(zero)) != 0)
		return ovc_err_set(e, -EPROTO, "header reserved bytes are not zero");
	h->flags = ovc_le32_get(buf + OVC_HDR_OFF_FLAGS);
	if (h->flags & ~OVC_FLAGS_KNOWN)
		return ovc_err_set(e, -EPROTO, "header has unknown flag bits 0x%x",
				   h->flags & ~OVC_FLAGS_KNOWN);
	memcpy(h->key_id, buf + OVC_HDR_OFF_KEY_ID, OVC_KEY_ID_BYTES);
	memcpy(h->file_id, buf + OVC_HDR_OFF_FILE_ID, OVC_FILE_ID_BYTES);
	memcpy(h->nonce, buf + OVC_HDR_OFF_NONCE, sizeof(h->nonce));
	memcpy(h->wrapped, buf + OVC_HDR_OFF_WRAPPED, sizeof(h->wrapped));
	return 0;
}

void ovc_header_encode(const ovc_header *h, uint8_t *out)
{
	memcpy(out, OVC_MAGIC, OVC_MAGIC_LEN);
	out[OVC_HDR_OFF_VERSION] = h->version;
	memset(out + OVC_HDR_OFF_RESERVED, 0, 3);
	ovc_le32_put(out + OVC_HDR_OFF_FLAGS, h->flags);
	memcpy(out + OVC_HDR_OFF_KEY_ID, h->key_id, OVC_KEY_ID_BYTES);
	memcpy(out + OVC_HDR_OFF_FILE_ID, h->file_id, OVC_FILE_ID_BYTES);
	memcpy(out + OVC_HDR_OFF_NONCE, h->nonce, sizeof(h->nonce));
	memcpy(out + OVC_HDR_OFF_WRAPPED, h->wrapped, sizeof(h->wrapped));
}

/* The wrap's associated data: the encoded header's first 48 bytes. */
static void header_ad(const ovc_header *h, uint8_t ad[OVC_HDR_AD_LEN])
{
	uint8_t full[OVC_HEADER_SIZE];

	ovc_header_encode(h, full);
	memcpy(ad, full, OVC_HDR_AD_LEN);
}

void ovc_header_wrap(ovc_header *h, const uint8_t *asset_key,
		     const uint8_t file_key[OVC_KEY_BYTES])
{
	uint8_t nonce[24];

	randombytes_buf(nonce, sizeof(nonce));
	ovc_header_wrap_nonce(h, asset_key, file_key, nonce);
}

void ovc_header_wrap_nonce(ovc_header *h, const uint8_t *asset_key,
			   const uint8_t file_key[OVC_KEY_BYTES],
			   const uint8_t nonce[24])
{
	uint8_t ad[OVC_HDR_AD_LEN];
	unsigned long long clen;

	memcpy(h->nonce, nonce, sizeof(h->nonce));
	header_ad(h, ad);
	/* Cannot fail for these sizes. */
	(void)crypto_aead_xchacha20poly1305_ietf_encrypt(
		h->wrapped, &clen, file_key, OVC_KEY_BYTES, ad, sizeof(ad), NULL,
		h->nonce, asset_key);
}

void ovc_header_new(ovc_header *h, uint32_t flags, const ovc_key *asset_key,
		    uint8_t file_key[OVC_KEY_BYTES])
{
	memset(h, 0, sizeof(*h));
	h->version = OVC_VERSION;
	h->flags = flags;
	memcpy(h->key_id, asset_key->id, OVC_KEY_ID_BYTES);
	randombytes_buf(h->file_id, sizeof(h->file_id));
	randombytes_buf(file_key, OVC_KEY_BYTES);
	ovc_header_wrap(h, asset_key->key, file_key);
}

int ovc_header_unwrap(const ovc_header *h, const uint8_t *asset_key,
		      uint8_t file_key[OVC_KEY_BYTES])
{
	uint8_t ad[OVC_HDR_AD_LEN];
	unsigned long long plen;

	header_ad(h, ad);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    file_key, &plen, NULL, h->wrapped, sizeof(h->wrapped), ad,
		    sizeof(ad), h->nonce, asset_key) != 0 ||
	    plen != OVC_KEY_BYTES) {
		sodium_memzero(file_key, OVC_KEY_BYTES);
		return -EBADMSG;
	}
	return 0;
}

int ovc_layout_plain_size(uint64_t backing, uint64_t *plain, uint64_t *nslots,
			  ovc_err *e)
{
	uint64_t r, n, rem;

	if (backing <= OVC_HEADER_SIZE)
		return ovc_err_set(e, -EBADMSG, "file is cut back to its header (no block follows)");
	r = backing - OVC_HEADER_SIZE;
	n = r / OVC_SLOT_SIZE;
	rem = r % OVC_SLOT_SIZE;
	if (rem > 0 && rem < OVC_BLOCK_OVERHEAD)
		return ovc_err_set(e, -EBADMSG, "backing size %llu is not a valid length: block %llu is cut short (%llu bytes)",
				   (unsigned long long)backing, (unsigned long long)n,
				   (unsigned long long)rem);
	if (rem == OVC_BLOCK_OVERHEAD && n > 0)
		return ovc_err_set(e, -EBADMSG, "backing size %llu is not a valid length: empty block %llu after a full one",
				   (unsigned long long)backing, (unsigned long long)n);
	*plain = n * OVC_BLOCK_SIZE + (rem ? rem - OVC_BLOCK_OVERHEAD : 0);
	*nslots = n + (rem ? 1 : 0);
	return 0;
}

uint64_t ovc_layout_backing_size(uint64_t plain)
{
	uint64_t n = plain / OVC_BLOCK_SIZE, rem = plain % OVC_BLOCK_SIZE;

	if (plain == 0)
		return OVC_HEADER_SIZE + OVC_BLOCK_OVERHEAD;
	return OVC_HEADER_SIZE + n * OVC_SLOT_SIZE +
	       (rem ? rem + OVC_BLOCK_OVERHEAD : 0);
}

/* ------------------------------------------------------------------------ */

/* The nonce batch fills one page that the kernel zeroes in a forked child
 * (MADV_WIPEONFORK): the child finds `left` = 0 and draws its own. */
#define NONCE_PAGE 4096
#define NONCE_COUNT ((NONCE_PAGE - 16) / OVC_NONCE_BYTES)
struct nonce_page {
	uint32_t left;  /* nonces not yet taken; 0 after a fork */
	uint32_t next;  /* index of the next one */
	uint8_t pad[8];
	uint8_t nonces[NONCE_COUNT * OVC_NONCE_BYTES];
};
_Static_assert(sizeof(struct nonce_page) <= NONCE_PAGE, "one page");

struct ovc_cipher {
	EVP_CIPHER *aes;          /* fetched once */
	EVP_CIPHER_CTX *seal;     /* keeps the key schedule of seal_key */
	EVP_CIPHER_CTX *open;     /* keeps the key schedule of open_key */
	int seal_loaded, open_loaded;
	uint8_t seal_key[OVC_KEY_BYTES];
	uint8_t open_key[OVC_KEY_BYTES];
	struct nonce_page *np;    /* mmap()ed, locked, wiped on fork */
	uint8_t *slots;           /* OVC_CIPHER_BATCH + 1 slots of ciphertext */
	uint8_t *blocks;          /* 2 plaintext blocks, sodium_malloc */
};

ovc_cipher *ovc_cipher_new(void)
{
	ovc_cipher *c = ovc_secret_alloc(sizeof(*c));
	void *page;

	if (!c)
		return NULL;
	c->aes = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	c->seal = EVP_CIPHER_CTX_new();
	c->open = EVP_CIPHER_CTX_new();
	c->slots = malloc((size_t)(OVC_CIPHER_BATCH + 1) * OVC_SLOT_SIZE);
	c->blocks = ovc_secret_alloc(2 * OVC_BLOCK_SIZE);
	page = mmap(NULL, NONCE_PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page != MAP_FAILED) {
		c->np = page;
		/* Best effort: the page is also wiped after each use. */
		(void)mlock(page, NONCE_PAGE);
		if (madvise(page, NONCE_PAGE, MADV_WIPEONFORK) != 0 ||
		    madvise(page, NONCE_PAGE, MADV_DONTDUMP) != 0) {
			/* Without WIPEONFORK a child could repeat nonces. */
			munmap(page, NONCE_PAGE);
			c->np = NULL;
		}
	}
	if (!c->aes || !c->seal || !c->open || !c->slots || !c->blocks ||
	    !c->np) {
		ovc_cipher_free(c);
		return NULL;
	}
	return c;
}

void ovc_cipher_free(ovc_cipher *c)
{
	if (!c)
		return;
	EVP_CIPHER_CTX_free(c->seal); /* cleanses the key schedule */
	EVP_CIPHER_CTX_free(c->open);
	EVP_CIPHER_free(c->aes);
	free(c->slots);
	ovc_secret_free(c->blocks);
	if (c->np) {
		sodium_memzero(c->np, NONCE_PAGE);
		munmap(c->np, NONCE_PAGE);
	}
	ovc_secret_free(c); /* wipes the cached keys */
}

uint8_t *ovc_cipher_slots(ovc_cipher *c)
{
	return c->slots;
}

uint8_t *ovc_cipher_block(ovc_cipher *c, int which)
{
	return c->blocks + (which ? OVC_BLOCK_SIZE : 0);
}

/* Take one nonce: from the batch, refilled by one randombytes_buf() call. */
static void nonce_take(ovc_cipher *c, uint8_t out[OVC_NONCE_BYTES])
{
	struct nonce_page *np = c->np;
	uint8_t *p;

	if (np->left == 0 || np->next >= NONCE_COUNT) {
		randombytes_buf(np->nonces, sizeof(np->nonces));
		np->next = 0;
		np->left = NONCE_COUNT;
	}
	p = np->nonces + (size_t)np->next * OVC_NONCE_BYTES;
	memcpy(out, p, OVC_NONCE_BYTES);
	sodium_memzero(p, OVC_NONCE_BYTES);
	np->next++;
	np->left--;
}

static void block_ad(uint8_t ad[OVC_BLOCK_AD_LEN], const uint8_t *file_id,
		     uint64_t blockno, int last)
{
	ad[0] = OVC_VERSION;
	memcpy(ad + 1, file_id, OVC_FILE_ID_BYTES);
	ovc_le64_put(ad + 17, blockno);
	ad[25] = last ? 1 : 0;
}

/* Point `ctx` at `key` and `iv`, keeping the key schedule when the key is
 * the one loaded last. */
static int ctx_init(ovc_cipher *c, EVP_CIPHER_CTX *ctx, int *loaded,
		    uint8_t *cached, const uint8_t *key, const uint8_t *iv,
		    int enc)
{
	if (*loaded && sodium_memcmp(cached, key, OVC_KEY_BYTES) == 0)
		return EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, enc) == 1 ? 0 : -EIO;
	*loaded = 0;
	if (EVP_CipherInit_ex(ctx, c->aes, NULL, key, iv, enc) != 1)
		return -EIO;
	memcpy(cached, key, OVC_KEY_BYTES);
	*loaded = 1;
	return 0;
}

int ovc_block_seal_nonce(ovc_cipher *c, const uint8_t *key,
			 const uint8_t *file_id, uint64_t blockno, int last,
			 const uint8_t nonce[OVC_NONCE_BYTES],
			 const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t ad[OVC_BLOCK_AD_LEN];
	int n, fin;

	if (len > OVC_BLOCK_SIZE)
		return -EINVAL;
	block_ad(ad, file_id, blockno, last);
	memcpy(out, nonce, OVC_NONCE_BYTES);
	if (ctx_init(c, c->seal, &c->seal_loaded, c->seal_key, key, nonce, 1))
		return -EIO;
	if (EVP_EncryptUpdate(c->seal, NULL, &n, ad, sizeof(ad)) != 1 ||
	    EVP_EncryptUpdate(c->seal, out + OVC_NONCE_BYTES, &n, in, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(c->seal, out + OVC_NONCE_BYTES + n, &fin) != 1 ||
	    (size_t)(n + fin) != len ||
	    EVP_CIPHER_CTX_ctrl(c->seal, EVP_CTRL_GCM_GET_TAG, OVC_TAG_BYTES,
				out + OVC_NONCE_BYTES + len) != 1)
		return -EIO;
	return 0;
}

int ovc_block_seal(ovc_cipher *c, const uint8_t *key, const uint8_t *file_id,
		   uint64_t blockno, int last, const uint8_t *in, size_t len,
		   uint8_t *out)
{
	uint8_t nonce[OVC_NONCE_BYTES];
	int rc;

	nonce_take(c, nonce);
	rc = ovc_block_seal_nonce(c, key, file_id, blockno, last, nonce, in,
				  len, out);
	sodium_memzero(nonce, sizeof(nonce));
	return rc;
}

int ovc_block_open(ovc_cipher *c, const uint8_t *key, const uint8_t *file_id,
		   uint64_t blockno, int last, const uint8_t *in, size_t in_len,
		   uint8_t *out)
{
	uint8_t ad[OVC_BLOCK_AD_LEN], tag[OVC_TAG_BYTES];
	size_t len;
	int n, fin, ok;

	if (in_len < OVC_BLOCK_OVERHEAD || in_len > OVC_SLOT_SIZE)
		return -EINVAL;
	len = in_len - OVC_BLOCK_OVERHEAD;
	block_ad(ad, file_id, blockno, last);
	memcpy(tag, in + OVC_NONCE_BYTES + len, OVC_TAG_BYTES);
	if (ctx_init(c, c->open, &c->open_loaded, c->open_key, key, in, 0))
		return -EIO;
	/* The tag length is set explicitly: OpenSSL 3.0 would take a short
	 * one. The final check decides; until then `out` is not handed out. */
	ok = EVP_DecryptUpdate(c->open, NULL, &n, ad, sizeof(ad)) == 1 &&
	     EVP_DecryptUpdate(c->open, out, &n, in + OVC_NONCE_BYTES, (int)len) == 1 &&
	     EVP_CIPHER_CTX_ctrl(c->open, EVP_CTRL_GCM_SET_TAG, OVC_TAG_BYTES, tag) == 1 &&
	     EVP_DecryptFinal_ex(c->open, out + n, &fin) == 1 &&
	     (size_t)(n + fin) == len;
	if (!ok) {
		sodium_memzero(out, len);
		return -EBADMSG;
	}
	return (int)len;
}
