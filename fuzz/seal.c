/*
 * fuzz/seal.c — arbitrary bytes as a sealed key file: the header parser and
 * the opener (a fixed KEK and AAD) must refuse or accept without crashing;
 * a blob that opens must re-seal, with its own time and nonce, to exactly
 * the same bytes (the format has one spelling per value), and the
 * sealed-key-file reader must agree with the opener.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/keys/keyfile.h"
#include "core/keys/seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static const uint8_t key[SEAL_KEY_LEN] = {
		0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
		16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
	};
	static uint8_t pt[SEAL_MAX_PLAIN], again[SEAL_MAX_BLOB];
	seal_header h;
	size_t pn = 0, an = 0;

	if (seal_parse(d, n, &h) == SEAL_OK && h.plain_len + SEAL_OVERHEAD != n)
		abort();
	if (seal_open(key, d, n, "ctx", 3, pt, sizeof pt, &pn, &h) != SEAL_OK)
		return 0;
	if (pn != h.plain_len ||
	    seal_close(key, h.ts_ms, h.nonce, "ctx", 3, pt, pn, again, sizeof again, &an) != SEAL_OK ||
	    an != n || memcmp(again, d, n) != 0)
		abort();
	int64_t ts;
	if (keyfile_sealed_at(d, n, &ts) != 0 || ts != h.ts_ms)
		abort();
	return 0;
}
