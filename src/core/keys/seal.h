/*
 * seal.h — the ron-kms soft-seal blob (tests/vectors/README.md §6):
 *
 *   "RKMS" | 0x01 | ts_ms (i64 big-endian) | nonce[12] | ChaCha20-Poly1305-IETF(pt) || tag[16]
 *
 * AAD = the 25 header bytes followed by the caller's AAD, so neither the
 * time nor the nonce nor the purpose the caller binds (macronode uses the
 * role and kid of the key, keys.h) can be changed without the tag failing.
 * The key is the 32-byte key-encryption key itself: the format names no KDF
 * and the vector proves none is applied.
 *
 * Pure functions: no I/O, no allocation. Plaintext buffers are the
 * caller's (sodium_malloc memory for secrets); seal_open releases no
 * plaintext unless the tag verifies (libsodium zeroes pt on failure).
 */
#ifndef MN_CORE_SEAL_H
#define MN_CORE_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEAL_MAGIC       "RKMS"
#define SEAL_MAGIC_LEN   4u
#define SEAL_VERSION     1u
#define SEAL_KEY_LEN     32u
#define SEAL_NONCE_LEN   12u
#define SEAL_TAG_LEN     16u
#define SEAL_HEADER_LEN  (SEAL_MAGIC_LEN + 1u + 8u + SEAL_NONCE_LEN)   /* 25 */
#define SEAL_OVERHEAD    (SEAL_HEADER_LEN + SEAL_TAG_LEN)               /* 41 */
#define SEAL_MAX_PLAIN   4096u   /* our largest secret is 64 bytes; bounds every buffer */
#define SEAL_MAX_AAD     256u    /* caller AAD: a role and a kid */
#define SEAL_MAX_BLOB    (SEAL_OVERHEAD + SEAL_MAX_PLAIN)

typedef enum {
	SEAL_OK = 0,
	SEAL_ERR_SHORT,     /* fewer bytes than a header and a tag */
	SEAL_ERR_MAGIC,     /* not "RKMS" */
	SEAL_ERR_VERSION,   /* version byte other than 1 */
	SEAL_ERR_SIZE,      /* plaintext or AAD over the limits, or buffer too small */
	SEAL_ERR_AUTH,      /* the tag does not verify: wrong key, wrong AAD, or altered */
} seal_result;

typedef struct {
	uint8_t version;
	int64_t ts_ms;                 /* sealing time, unauthenticated until seal_open */
	uint8_t nonce[SEAL_NONCE_LEN];
	size_t  plain_len;             /* blob length - SEAL_OVERHEAD */
} seal_header;

/* Does buf start like a sealed blob (the magic)? Used to tell a sealed key
 * file from a clear-text one of an earlier version. */
bool seal_is_sealed(const void *buf, size_t len);

/* The header of blob[0..len), checked for magic, version and length only. */
__attribute__((warn_unused_result))
seal_result seal_parse(const uint8_t *blob, size_t len, seal_header *h);

/* Seal pt[0..ptlen) into out (cap >= ptlen + SEAL_OVERHEAD); *outlen is set.
 * nonce NULL = 12 random bytes (always, outside tests). */
__attribute__((warn_unused_result))
seal_result seal_close(const uint8_t key[SEAL_KEY_LEN], int64_t ts_ms,
                       const uint8_t nonce[SEAL_NONCE_LEN], const void *aad, size_t aadlen,
                       const void *pt, size_t ptlen, uint8_t *out, size_t cap, size_t *outlen);

/* Verify and decrypt: pt (cap >= plain_len) holds the plaintext only on
 * SEAL_OK; h (may be NULL) the header. */
__attribute__((warn_unused_result))
seal_result seal_open(const uint8_t key[SEAL_KEY_LEN], const uint8_t *blob, size_t len,
                      const void *aad, size_t aadlen, uint8_t *pt, size_t cap, size_t *ptlen,
                      seal_header *h);

/* A short phrase for a result ("tag does not verify (wrong KEK or altered)"). */
const char *seal_result_str(seal_result r);

#endif
