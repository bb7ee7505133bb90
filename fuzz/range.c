/*
 * range.c — libFuzzer target: arbitrary Range header values against
 * object lengths at every edge (0, 1, a group, huge, UINT64_MAX).
 *
 * The first 8 input bytes (little-endian, when present) pick the length;
 * the rest is the header value, handed over in a copy of exactly its size
 * so that ASan catches any read past vlen. Checked invariants: a RANGE_ONE
 * result is inside the object (start <= end < len), and the parser never
 * answers RANGE_ONE for an empty object.
 *
 * Build by hand: clang -g -O1 -std=c17 -D_GNU_SOURCE
 *   -fsanitize=fuzzer,address,undefined -Isrc fuzz/range.c src/core/net/range.c
 *   -o build/fuzz_range
 * Run: build/fuzz_range -max_len=512 fuzz/corpus/range
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/net/range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint64_t fuzz_lens[] = { 0, 1, 2, 100, 65535, 65536, 65537,
                                      (uint64_t)1 << 30, UINT64_MAX - 1, UINT64_MAX };

static void fuzz_check(const char *v, size_t n, uint64_t len)
{
	uint64_t s = 0, e = 0;
	range_result r = range_parse(v, n, len, &s, &e);

	if (r == RANGE_ONE && (len == 0 || s > e || e >= len))
		abort();
	if (r > RANGE_MULTI)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t len = 0;
	char *v;

	if (size >= 8) {
		for (int i = 7; i >= 0; i--)
			len = len << 8 | data[i];
		data += 8;
		size -= 8;
	}
	v = malloc(size ? size : 1);
	if (!v)
		return 0;
	memcpy(v, data, size);
	fuzz_check(v, size, len);
	for (size_t i = 0; i < sizeof fuzz_lens / sizeof fuzz_lens[0]; i++)
		fuzz_check(v, size, fuzz_lens[i]);
	free(v);
	return 0;
}
