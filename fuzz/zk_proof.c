/*
 * fuzz/zk_proof.c — arbitrary bytes as a Ron-Proof (docs/zk.md): the parser
 * must refuse or accept without crashing; a proof that parses must format
 * back to exactly the same text (one spelling per proof), and verifying it
 * against a fixed key and request must not crash (it almost never passes:
 * if it does, the input is a real proof for that key, which only the
 * secret's holder can make).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/auth/zkproof.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	/* P = 2·G: a valid key whose secret is 2 */
	static const uint8_t two[ZK_SCALAR_LEN] = { 2 };
	static uint8_t pk[ZK_POINT_LEN];
	static int ready;
	zk_request rq = { "GET", "/o/b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
	                  "node-a" };
	char again[ZK_PROOF_TEXT_LEN + 1];
	zk_proof p;

	if (!ready) {
		if (sodium_init() < 0 || zkproof_public(two, pk) != 0)
			abort();
		ready = 1;
	}
	if (zkproof_parse((const char *)d, n, &p) != ZK_OK)
		return 0;
	zkproof_format(&p, again);
	if (n != ZK_PROOF_TEXT_LEN || memcmp(again, d, n) != 0)
		abort();
	(void)zkproof_verify(pk, &rq, &p);
	zk_batch_item it[2] = { { .pk = pk, .rq = rq, .p = &p }, { .pk = pk, .rq = rq, .p = &p } };
	(void)zkproof_verify_batch(it, 2);
	return 0;
}
