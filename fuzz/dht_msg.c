/*
 * dht_msg.c — libFuzzer target for the dht service's messages
 * (src/core/dht/dht_msg.h): arbitrary bytes through every decoder.
 * The first byte picks the verb (unknown ones included), the next two the
 * reply status; the rest is the payload.
 *   build-fuzz/fuzz/fuzz_dht_msg -max_len=20000 fuzz/corpus/dht_msg
 *
 * Invariants (abort on violation): a message that decodes re-encodes to
 * exactly the same bytes within DHT_MSG_MAX; a failed decode leaves a
 * zeroed struct.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dht/dht_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const dht_req fz_zero_req;
static const dht_rep fz_zero_rep;
static dht_rep fz_rep;
static uint8_t fz_out[DHT_MSG_MAX];

static void fz_check_req(uint16_t verb, const uint8_t *p, size_t n)
{
	dht_req q;
	ssize_t len;

	if (dht_msg_req_decode(verb, p, n, &q) != 0) {
		if (memcmp(&q, &fz_zero_req, sizeof q) != 0)
			abort();
		return;
	}
	len = dht_msg_req_encode(&q, fz_out, sizeof fz_out);
	if (len < 0 || (size_t)len != n || memcmp(fz_out, p, n) != 0)
		abort();
}

static void fz_check_rep(uint16_t verb, uint16_t status, const uint8_t *p, size_t n)
{
	ssize_t len;

	if (dht_msg_rep_decode(verb, status, p, n, &fz_rep) != 0) {
		if (memcmp(&fz_rep, &fz_zero_rep, sizeof fz_rep) != 0)
			abort();
		return;
	}
	len = dht_msg_rep_encode(&fz_rep, fz_out, sizeof fz_out);
	if (len < 0 || (size_t)len != n || memcmp(fz_out, p, n) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	uint16_t verb = data[0] % (DHT_VERB_LAST + 2);
	uint16_t status = (uint16_t)((data[1] << 8) | data[2]);

	fz_check_req(verb, data + 3, size - 3);
	fz_check_rep(verb, status, data + 3, size - 3);
	fz_check_rep(verb, 200, data + 3, size - 3);
	return 0;
}
