/*
 * b3.c — BLAKE3 wrapper and content ids (see b3.h). The hash itself is the
 * official C implementation compiled from Debian's librust-blake3-dev.
 */
#include "lib/b3.h"
#include "lib/util.h"

#include <string.h>

#include <blake3.h>
#include <sodium.h>

void b3_hash(const void *data, size_t len, uint8_t out[B3_OUT_LEN])
{
	blake3_hasher h;

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, data, len);
	blake3_hasher_finalize(&h, out, B3_OUT_LEN);
}

void b3_keyed_hash(const uint8_t key[B3_OUT_LEN], const void *data, size_t len,
                   uint8_t out[B3_OUT_LEN])
{
	blake3_hasher h;

	blake3_hasher_init_keyed(&h, key);
	blake3_hasher_update(&h, data, len);
	blake3_hasher_finalize(&h, out, B3_OUT_LEN);
}

void b3_xof(const void *data, size_t len, uint8_t *out, size_t n)
{
	blake3_hasher h;

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, data, len);
	blake3_hasher_finalize(&h, out, n);
}

void b3_keyed_xof(const uint8_t key[B3_OUT_LEN], const void *data, size_t len,
                  uint8_t *out, size_t n)
{
	blake3_hasher h;

	blake3_hasher_init_keyed(&h, key);
	blake3_hasher_update(&h, data, len);
	blake3_hasher_finalize(&h, out, n);
	sodium_memzero(&h, sizeof h);
}

void b3_hex(const uint8_t digest[B3_OUT_LEN], char out[B3_HEX_LEN + 1])
{
	util_hex_encode(digest, B3_OUT_LEN, out);
}

void b3_cid_format(const uint8_t digest[B3_OUT_LEN], char out[B3_CID_LEN + 1])
{
	memcpy(out, B3_CID_PREFIX, 3);
	b3_hex(digest, out + 3);
}

int b3_hex_parse(const char *s, size_t len, uint8_t out[B3_OUT_LEN])
{
	if (!s || len != B3_HEX_LEN)
		return -1;
	return util_hex_decode(s, B3_OUT_LEN, out);
}

int b3_cid_parse(const char *s, size_t len, uint8_t out[B3_OUT_LEN])
{
	if (!s || len != B3_CID_LEN || memcmp(s, B3_CID_PREFIX, 3) != 0)
		return -1;
	return b3_hex_parse(s + 3, len - 3, out);
}

bool b3_equal(const uint8_t a[B3_OUT_LEN], const uint8_t b[B3_OUT_LEN])
{
	uint8_t d = 0;

	for (size_t i = 0; i < B3_OUT_LEN; i++)
		d |= (uint8_t)(a[i] ^ b[i]);
	return d == 0;
}
