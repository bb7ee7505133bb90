/*
 * index_msg.c — libFuzzer target for the index messages
 * (src/core/dht/index_msg.h): arbitrary bytes go through every decoder.
 *
 * The first byte picks the verb (0 and INDEX_VERB_LAST + 1 included, so
 * unknown verbs are exercised), the next two the reply status; the rest is
 * the payload. Run:
 *   build-fuzz/fuzz/fuzz_index_msg -max_len=2048 fuzz/corpus/index_msg
 *
 * Invariants checked (abort on violation, so libFuzzer reports them):
 *   - a request or reply that decodes re-encodes to exactly the same bytes,
 *     within INDEX_MSG_MAX;
 *   - a failed decode leaves a zeroed struct (no half-filled message).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dht/index_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fz_zero[sizeof(index_rep) > sizeof(index_req) ? sizeof(index_rep)
                                                                      : sizeof(index_req)];

static void fz_check_req(uint16_t verb, const uint8_t *p, size_t n)
{
	uint8_t out[INDEX_MSG_MAX];
	index_req q;
	ssize_t len;

	if (index_msg_req_decode(verb, p, n, &q) != 0) {
		if (memcmp(&q, fz_zero, sizeof q) != 0)
			abort();
		return;
	}
	len = index_msg_req_encode(&q, out, sizeof out);
	if (len < 0 || (size_t)len != n || memcmp(out, p, n) != 0)
		abort();
}

static void fz_check_rep(uint16_t verb, uint16_t status, const uint8_t *p, size_t n)
{
	static uint8_t out[INDEX_MSG_MAX];
	static index_rep r;
	ssize_t len;

	if (index_msg_rep_decode(verb, status, p, n, &r) != 0) {
		if (memcmp(&r, fz_zero, sizeof r) != 0)
			abort();
		return;
	}
	len = index_msg_rep_encode(&r, out, sizeof out);
	if (len < 0 || (size_t)len != n || memcmp(out, p, n) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	uint16_t verb = data[0] % (INDEX_VERB_LAST + 2);
	uint16_t status = (uint16_t)(data[1] << 8 | data[2]);

	fz_check_req(verb, data + 3, size - 3);
	fz_check_rep(verb, 200, data + 3, size - 3);
	fz_check_rep(verb, status, data + 3, size - 3);
	return 0;
}
