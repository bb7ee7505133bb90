/*
 * range.c — libFuzzer target: arbitrary Range header values against
 * object lengths at every edge (0, 1, a group, huge, UINT64_MAX).
 *
 * The first 8 input bytes (little-endian, when present) pick the length;
 * the next byte picks max (1..RANGE_MAX_SPANS, and RANGE_MAX_SPANS + 1 to
 * check the clamp); the rest is the header value, handed over in a copy of
 * exactly its size so that ASan catches any read past vlen, and parsed
 * into an array of exactly max entries (ASan again for a write past it).
 * Checked invariants: RANGE_ONE means one span and RANGE_MULTI at least
 * two, at most max; every span is inside the object (start <= end < len);
 * spans are ascending, disjoint and not adjacent (coalesced); every other
 * result leaves *n at 0; nothing is served for an empty object; and the
 * answer does not depend on max unless it is RANGE_TOO_MANY (a set that
 * fits under max is the same set under RANGE_MAX_SPANS).
 *
 * Build by hand: clang -g -O1 -std=c17 -D_GNU_SOURCE
 *   -fsanitize=fuzzer,address,undefined -Isrc fuzz/range.c src/core/net/range.c
 *   -o build/fuzz_range
 * Run: build/fuzz_range -max_len=4096 fuzz/corpus/range
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/net/range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint64_t fuzz_lens[] = { 0, 1, 2, 100, 65535, 65536, 65537,
                                      (uint64_t)1 << 30, UINT64_MAX - 1, UINT64_MAX };

static void fuzz_spans_ok(const range_span *sp, size_t n, uint64_t len)
{
	for (size_t i = 0; i < n; i++) {
		if (len == 0 || sp[i].start > sp[i].end || sp[i].end >= len)
			abort();
		if (i && sp[i].start <= sp[i - 1].end + 1)   /* not sorted or not coalesced */
			abort();
	}
}

static void fuzz_check(const char *v, size_t n, uint64_t len, size_t max)
{
	static range_span all[RANGE_MAX_SPANS];
	range_span *sp = malloc(max * sizeof *sp);
	size_t got = 99, got_all = 99;
	range_result r, r_all;

	if (!sp)
		return;
	r = range_parse(v, n, len, sp, max, &got);
	if (r > RANGE_TOO_MANY)
		abort();
	if ((r == RANGE_ONE && got != 1) || (r == RANGE_MULTI && (got < 2 || got > max)) ||
	    (r != RANGE_ONE && r != RANGE_MULTI && got != 0))
		abort();
	if (r == RANGE_ONE || r == RANGE_MULTI)
		fuzz_spans_ok(sp, got, len);
	r_all = range_parse(v, n, len, all, RANGE_MAX_SPANS, &got_all);
	if (r != RANGE_TOO_MANY &&
	    (r_all != r || got_all != got || (got && memcmp(all, sp, got * sizeof *sp) != 0)))
		abort();
	free(sp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t len = 0;
	size_t max = 16;
	char *v;

	if (size >= 8) {
		for (int i = 7; i >= 0; i--)
			len = len << 8 | data[i];
		data += 8;
		size -= 8;
	}
	if (size >= 1) {
		max = (size_t)data[0] + 1u;   /* 1 .. RANGE_MAX_SPANS */
		if (data[0] == 0)
			max = RANGE_MAX_SPANS + 1u;   /* clamped by the parser */
		data++;
		size--;
	}
	v = malloc(size ? size : 1);
	if (!v)
		return 0;
	memcpy(v, data, size);
	fuzz_check(v, size, len, max);
	for (size_t i = 0; i < sizeof fuzz_lens / sizeof fuzz_lens[0]; i++)
		fuzz_check(v, size, fuzz_lens[i], max);
	free(v);
	return 0;
}
