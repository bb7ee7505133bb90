/*
 * onion.c — v3 onion names and keys. See onion.h.
 */
#include "core/tor/onion.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define ONION_VERSION     3u
#define ONION_RAW_LEN     35u   /* pk[32] checksum[2] version[1] */
#define ONION_KEY_PREFIX  "ED25519-V3:"

static int b32_value(char ch)
{
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a';
	if (ch >= '2' && ch <= '7')
		return ch - '2' + 26;
	return -1;
}

/* 56 base32 characters (280 bits) into 35 bytes. */
static int onion_b32_decode(const char *s, uint8_t out[ONION_RAW_LEN])
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < ONION_NAME_B32; i++) {
		int v = b32_value(s[i]);
		if (v < 0)
			return -1;
		acc = (acc << 5) | (uint32_t)v;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1u;
		}
	}
	return o == ONION_RAW_LEN ? 0 : -1;
}

bool onion_name_is_v3(const char *name, size_t len)
{
	uint8_t raw[ONION_RAW_LEN];

	return len == ONION_NAME_LEN && memcmp(name + ONION_NAME_B32, ".onion", 6) == 0 &&
	       onion_b32_decode(name, raw) == 0 && raw[ONION_RAW_LEN - 1] == ONION_VERSION;
}

int onion_name_pubkey(const char *name, size_t len, uint8_t pk[ONION_PK_LEN])
{
	uint8_t raw[ONION_RAW_LEN];

	if (!onion_name_is_v3(name, len) || onion_b32_decode(name, raw) != 0)
		return -1;
	memcpy(pk, raw, ONION_PK_LEN);
	return 0;
}

bool onion_host_is_onion(const char *host)
{
	size_t n = strlen(host);

	if (n && host[n - 1] == '.')
		n--;
	if (n == 5)
		return strncasecmp(host, "onion", 5) == 0;
	return n > 5 && strncasecmp(host + n - 6, ".onion", 6) == 0;
}

int onion_addr_split(const char *addr, char *name, size_t cap, uint16_t *port)
{
	const char *colon = strrchr(addr, ':');
	unsigned long p = 0;
	size_t digits;

	if (!colon || cap < ONION_NAME_LEN + 1u || !onion_name_is_v3(addr, (size_t)(colon - addr)))
		return -1;
	digits = strlen(colon + 1);
	if (digits == 0 || digits > 5 || colon[1] == '0')
		return -1;
	for (size_t i = 1; i <= digits; i++) {
		if (colon[i] < '0' || colon[i] > '9')
			return -1;
		p = p * 10u + (unsigned long)(colon[i] - '0');
	}
	if (p == 0 || p > 65535u)
		return -1;
	memcpy(name, addr, ONION_NAME_LEN);
	name[ONION_NAME_LEN] = '\0';
	*port = (uint16_t)p;
	return 0;
}

void onion_key_generate(uint8_t sk[ONION_KEY_LEN])
{
	randombytes_buf(sk, ONION_KEY_LEN);
	sk[0] &= 248u;   /* the Ed25519 clamp of the scalar half */
	sk[31] &= 127u;
	sk[31] |= 64u;
}

int onion_key_pubkey(const uint8_t sk[ONION_KEY_LEN], uint8_t pk[ONION_PK_LEN])
{
	return crypto_scalarmult_ed25519_base_noclamp(pk, sk) == 0 ? 0 : -1;
}

int onion_key_arg(const uint8_t sk[ONION_KEY_LEN], char *out, size_t cap)
{
	size_t pl = sizeof ONION_KEY_PREFIX - 1;

	if (cap < pl + sodium_base64_ENCODED_LEN(ONION_KEY_LEN, sodium_base64_VARIANT_ORIGINAL))
		return -1;
	memcpy(out, ONION_KEY_PREFIX, pl);
	sodium_bin2base64(out + pl, cap - pl, sk, ONION_KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
	return 0;
}
