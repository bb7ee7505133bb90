/*
 * fuzz/captoken.c — arbitrary bytes as a token string through the strict
 * decoder and, when it decodes, through the canonical re-encoding and the
 * MAC chain (a fixed key), so every path a peer can reach is covered.
 */
#include <stddef.h>
#include <stdint.h>

#include "core/auth/captoken.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static const uint8_t key[CAPTOKEN_KEY_LEN] = "0123456789abcdef0123456789abcdef";
	uint8_t mac[CAPTOKEN_MAC_LEN];
	captoken *t = NULL;

	if (captoken_decode((const char *)d, n, &t) == CAPTOKEN_OK) {
		if (captoken_compute_mac(t, key, mac) != 0)
			__builtin_trap();  /* decoded tokens always re-encode */
	}
	captoken_free(t);
	return 0;
}
