/*
 * seal.c — the ron-kms soft-seal blob (see seal.h).
 */
#include "core/keys/seal.h"

#include <sodium.h>
#include <string.h>

bool seal_is_sealed(const void *buf, size_t len)
{
	return len >= SEAL_MAGIC_LEN && memcmp(buf, SEAL_MAGIC, SEAL_MAGIC_LEN) == 0;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)(v & 0xff);
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

seal_result seal_parse(const uint8_t *blob, size_t len, seal_header *h)
{
	if (!blob || len < SEAL_OVERHEAD)
		return SEAL_ERR_SHORT;
	if (!seal_is_sealed(blob, len))
		return SEAL_ERR_MAGIC;
	if (blob[SEAL_MAGIC_LEN] != SEAL_VERSION)
		return SEAL_ERR_VERSION;
	if (len > SEAL_MAX_BLOB)
		return SEAL_ERR_SIZE;
	if (h) {
		h->version = blob[SEAL_MAGIC_LEN];
		h->ts_ms = (int64_t)get_be64(blob + SEAL_MAGIC_LEN + 1);
		memcpy(h->nonce, blob + SEAL_MAGIC_LEN + 9, SEAL_NONCE_LEN);
		h->plain_len = len - SEAL_OVERHEAD;
	}
	return SEAL_OK;
}

/* header || caller AAD into ad (SEAL_HEADER_LEN + SEAL_MAX_AAD bytes). */
static size_t build_ad(uint8_t *ad, const uint8_t *header, const void *aad, size_t aadlen)
{
	memcpy(ad, header, SEAL_HEADER_LEN);
	if (aadlen)
		memcpy(ad + SEAL_HEADER_LEN, aad, aadlen);
	return SEAL_HEADER_LEN + aadlen;
}

seal_result seal_close(const uint8_t key[SEAL_KEY_LEN], int64_t ts_ms,
                       const uint8_t nonce[SEAL_NONCE_LEN], const void *aad, size_t aadlen,
                       const void *pt, size_t ptlen, uint8_t *out, size_t cap, size_t *outlen)
{
	uint8_t ad[SEAL_HEADER_LEN + SEAL_MAX_AAD];
	unsigned long long clen = 0;

	if (ptlen > SEAL_MAX_PLAIN || aadlen > SEAL_MAX_AAD || cap < ptlen + SEAL_OVERHEAD ||
	    sodium_init() < 0)
		return SEAL_ERR_SIZE;
	memcpy(out, SEAL_MAGIC, SEAL_MAGIC_LEN);
	out[SEAL_MAGIC_LEN] = SEAL_VERSION;
	put_be64(out + SEAL_MAGIC_LEN + 1, (uint64_t)ts_ms);
	if (nonce)
		memcpy(out + SEAL_MAGIC_LEN + 9, nonce, SEAL_NONCE_LEN);
	else
		randombytes_buf(out + SEAL_MAGIC_LEN + 9, SEAL_NONCE_LEN);
	size_t adlen = build_ad(ad, out, aad, aadlen);
	crypto_aead_chacha20poly1305_ietf_encrypt(out + SEAL_HEADER_LEN, &clen, pt, ptlen, ad,
	                                          adlen, NULL, out + SEAL_MAGIC_LEN + 9, key);
	*outlen = SEAL_HEADER_LEN + (size_t)clen;
	return SEAL_OK;
}

seal_result seal_open(const uint8_t key[SEAL_KEY_LEN], const uint8_t *blob, size_t len,
                      const void *aad, size_t aadlen, uint8_t *pt, size_t cap, size_t *ptlen,
                      seal_header *h)
{
	uint8_t ad[SEAL_HEADER_LEN + SEAL_MAX_AAD];
	unsigned long long plen = 0;
	seal_header hd;
	seal_result r = seal_parse(blob, len, &hd);

	if (r != SEAL_OK)
		return r;
	if (aadlen > SEAL_MAX_AAD || cap < hd.plain_len || sodium_init() < 0)
		return SEAL_ERR_SIZE;
	size_t adlen = build_ad(ad, blob, aad, aadlen);
	/* libsodium verifies the tag before it writes a byte of plaintext. */
	if (crypto_aead_chacha20poly1305_ietf_decrypt(pt, &plen, NULL, blob + SEAL_HEADER_LEN,
	                                              len - SEAL_HEADER_LEN, ad, adlen,
	                                              blob + SEAL_MAGIC_LEN + 9, key) != 0)
		return SEAL_ERR_AUTH;
	*ptlen = (size_t)plen;
	if (h)
		*h = hd;
	return SEAL_OK;
}

const char *seal_result_str(seal_result r)
{
	switch (r) {
	case SEAL_OK:          return "ok";
	case SEAL_ERR_SHORT:   return "too short for a sealed blob";
	case SEAL_ERR_MAGIC:   return "not a sealed blob (no RKMS magic)";
	case SEAL_ERR_VERSION: return "unknown seal version";
	case SEAL_ERR_SIZE:    return "sealed blob too large";
	case SEAL_ERR_AUTH:    return "does not unseal (wrong KEK, or the file was altered)";
	}
	return "?";
}
