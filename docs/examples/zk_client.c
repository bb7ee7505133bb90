/*
 * zk_client.c — a holder proof (Ron-Proof) for one request, written from
 * docs/zk.md alone: libsodium for Ristretto255, the official BLAKE3 C API.
 * It shares no code with the node; the unit suite builds it and checks it
 * against the known-answer vectors in tests/vectors/zk/.
 *
 *   cc zk_client.c -lsodium -lblake3 -o zk_client
 *   ./zk_client SECRET_HEX METHOD PATH AUDIENCE BODY_B3_HEX [TS]
 *
 * prints the proof (140 characters). With TS the nonce is the deterministic
 * one of the vectors; without, it is hedged with 32 random bytes and TS is
 * now. Send it as `Ron-Proof: <proof>` beside `Authorization: Bearer <token>`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <blake3.h>
#include <sodium.h>

#define DST "macronode/zk-pop/v1"
#define NONCE_TAG "macronode/zk-pop/v1/nonce"
static const char PARAMS[] =
	"macronode-zk-params\n"
	"group=ristretto255\n"
	"generator=e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76\n"
	"dst=" DST "\n"
	"version=1\n";

static void put16(blake3_hasher *h, size_t n)
{
	uint8_t b[2] = { (uint8_t)(n >> 8), (uint8_t)n };
	blake3_hasher_update(h, b, 2);
}

static void put_str(blake3_hasher *h, const char *s)
{
	put16(h, strlen(s));
	blake3_hasher_update(h, s, strlen(s));
}

/* The transcript (docs/zk.md "Transcript") fed into h. */
static void transcript(blake3_hasher *h, const uint8_t pk[32], const uint8_t R[32],
                       const char *method, const char *path, const char *aud,
                       const uint8_t body[32], uint64_t ts)
{
	uint8_t ph[32], ver = 1, tsb[8];

	blake3_hasher ph_h;
	blake3_hasher_init(&ph_h);
	blake3_hasher_update(&ph_h, PARAMS, sizeof PARAMS - 1);
	blake3_hasher_finalize(&ph_h, ph, 32);
	for (int i = 0; i < 8; i++)
		tsb[i] = (uint8_t)(ts >> (56 - 8 * i));
	put_str(h, DST);
	blake3_hasher_update(h, &ver, 1);
	blake3_hasher_update(h, ph, 32);
	blake3_hasher_update(h, pk, 32);
	blake3_hasher_update(h, R, 32);
	put_str(h, method);
	put_str(h, path);
	put_str(h, aud);
	blake3_hasher_update(h, body, 32);
	blake3_hasher_update(h, tsb, 8);
}

int main(int argc, char **argv)
{
	uint8_t sk[32], pk[32], body[32], R[32], r[32], c[32], s[32], wide[64], rnd[32] = { 0 };
	uint8_t zero[32] = { 0 }, bin[105];
	char out[141];
	uint64_t ts;
	blake3_hasher h;

	if (sodium_init() < 0 || (argc != 6 && argc != 7) ||
	    sodium_hex2bin(sk, 32, argv[1], strlen(argv[1]), NULL, NULL, NULL) != 0 ||
	    sodium_hex2bin(body, 32, argv[5], strlen(argv[5]), NULL, NULL, NULL) != 0 ||
	    crypto_scalarmult_ristretto255_base(pk, sk) != 0) {
		fprintf(stderr, "usage: zk_client SECRET_HEX METHOD PATH AUDIENCE BODY_B3_HEX [TS]\n");
		return 2;
	}
	ts = argc == 7 ? strtoull(argv[6], NULL, 10) : (uint64_t)time(NULL);
	if (argc == 6)
		randombytes_buf(rnd, sizeof rnd);
	/* r = reduce(BLAKE3-keyed-XOF-64(sk, NONCE_TAG | rnd | transcript with R = 0)) */
	blake3_hasher_init_keyed(&h, sk);
	blake3_hasher_update(&h, NONCE_TAG, strlen(NONCE_TAG));
	blake3_hasher_update(&h, rnd, sizeof rnd);
	transcript(&h, pk, zero, argv[2], argv[3], argv[4], body, ts);
	blake3_hasher_finalize(&h, wide, 64);
	crypto_core_ristretto255_scalar_reduce(r, wide);
	crypto_scalarmult_ristretto255_base(R, r);
	/* c = reduce(BLAKE3-XOF-64(transcript)); s = r + c·sk */
	blake3_hasher_init(&h);
	transcript(&h, pk, R, argv[2], argv[3], argv[4], body, ts);
	blake3_hasher_finalize(&h, wide, 64);
	crypto_core_ristretto255_scalar_reduce(c, wide);
	crypto_core_ristretto255_scalar_mul(s, c, sk);
	crypto_core_ristretto255_scalar_add(s, s, r);
	/* wire: 0x01 | ts (8, BE) | body (32) | R (32) | s (32), base64url */
	bin[0] = 1;
	for (int i = 0; i < 8; i++)
		bin[1 + i] = (uint8_t)(ts >> (56 - 8 * i));
	memcpy(bin + 9, body, 32);
	memcpy(bin + 41, R, 32);
	memcpy(bin + 73, s, 32);
	sodium_bin2base64(out, sizeof out, bin, sizeof bin, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	puts(out);
	sodium_memzero(sk, sizeof sk);
	sodium_memzero(r, sizeof r);
	return 0;
}
