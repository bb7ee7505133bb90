/*
 * prov_record.c — libFuzzer target for provider records
 * (src/core/dht/prov_record.h), the bytes other DHT nodes send us.
 *   build-fuzz/fuzz/fuzz_prov_record -max_len=320 fuzz/corpus/prov_record
 *
 * Invariants (abort on violation):
 *   - a record that decodes re-encodes to exactly the same bytes and fits
 *     PROV_RECORD_MAX; a failed decode leaves a zeroed record;
 *   - verify never accepts what decode refuses, and a record it accepts is
 *     unexpired at the time given and under the key of its own cid.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dht/prov_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const prov_record fz_zero;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[PROV_RECORD_MAX], key[32];
	prov_record r, v;
	uint64_t now = 1700000000u;
	prov_verdict d = prov_record_decode(data, size, &r);

	if (d != PROV_OK) {
		if (memcmp(&r, &fz_zero, sizeof r) != 0)
			abort();
		if (prov_record_verify(data, size, NULL, NULL, now, &v) == PROV_OK)
			abort();
		return 0;
	}
	ssize_t n = prov_record_encode(&r, out, sizeof out);
	if (n < 0 || (size_t)n != size || memcmp(out, data, size) != 0)
		abort();
	prov_record_key(r.cid, key);
	if (prov_record_verify(data, size, key, r.cid, now, &v) == PROV_OK &&
	    (v.expires <= now || memcmp(v.cid, r.cid, sizeof v.cid) != 0))
		abort();
	return 0;
}
