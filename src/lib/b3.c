/*
 * b3.c — BLAKE3 wrapper and content ids (see b3.h). The hash itself is the
 * official C implementation compiled from Debian's librust-blake3-dev.
 */
#include "lib/b3.h"

#include <string.h>

#include <blake3.h>

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

void b3_hex(const uint8_t digest[B3_OUT_LEN], char out[B3_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < B3_OUT_LEN; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 15];
	}
	out[B3_HEX_LEN] = '\0';
}

void b3_cid_format(const uint8_t digest[B3_OUT_LEN], char out[B3_CID_LEN + 1])
{
	memcpy(out, B3_CID_PREFIX, 3);
	b3_hex(digest, out + 3);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* uppercase is refused on purpose: one spelling per id */
}

int b3_hex_parse(const char *s, size_t len, uint8_t out[B3_OUT_LEN])
{
	if (!s || len != B3_HEX_LEN)
		return -1;
	for (size_t i = 0; i < B3_OUT_LEN; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
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
