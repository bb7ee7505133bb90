/*
 * name_record.c — libFuzzer target for signed name records
 * (src/core/dht/name_record.h) and the name rules (src/core/dht/name.h):
 * the bytes a DHT peer can hand the index.
 *
 * The first byte picks the mode, the rest is the input:
 *   even  the input is a record from the network: name_record_check, with
 *         and without the key of the name it claims;
 *   odd   the input is a name: name_check, and when it passes, a record for
 *         it is made, signed with a fixed identity, encoded and checked.
 * Run:
 *   build-fuzz/fuzz/fuzz_name_record -max_len=512 fuzz/corpus/name_record
 *
 * Invariants (abort on violation, so libFuzzer reports them):
 *   - a refused record leaves *out zeroed; an accepted one re-encodes to
 *     exactly the input, within NAME_RECORD_MAX, and verifies;
 *   - name_record_decode and name_record_check agree but for bad_sig;
 *   - a name that passes name_check is 1..NAME_MAX_LEN bytes and makes a
 *     record that checks OK under its own key and wrong_name under another;
 *   - refusal messages stay within NAME_MSG_MAX and name their rule.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dht/name_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const name_record fz_zero;
static node_identity fz_id;

static void fz_check_record(const uint8_t *p, size_t n)
{
	uint8_t out[NAME_RECORD_MAX], key[NAME_RECORD_KEY_LEN];
	name_record r, d;
	name_rec_result res = name_record_check(p, n, NULL, &r);
	name_rec_result dec = name_record_decode(p, n, &d);

	if (res != NAME_REC_OK) {
		if (memcmp(&r, &fz_zero, sizeof r) != 0)
			abort();
		if (dec != res && !(dec == NAME_REC_OK && res == NAME_REC_BAD_SIG))
			abort();
		return;
	}
	ssize_t len = name_record_encode(&r, out, sizeof out);
	if (dec != NAME_REC_OK || len < 0 || (size_t)len != n || memcmp(out, p, n) != 0 ||
	    name_record_verify(&r) != NAME_REC_OK)
		abort();
	name_record_key(r.name, r.name_len, key);
	if (name_record_check(p, n, key, &d) != NAME_REC_OK)
		abort();
}

static void fz_check_name(const uint8_t *p, size_t n)
{
	char msg[NAME_MSG_MAX + 16];
	uint8_t cid[32] = { 0 }, buf[NAME_RECORD_MAX], key[NAME_RECORD_KEY_LEN];
	name_record r, d;

	memset(msg, 'x', sizeof msg);
	name_rule rule = name_check((const char *)p, n, msg, sizeof msg);
	if (strlen(msg) >= NAME_MSG_MAX)
		abort();
	if (rule != NAME_OK) {
		if (!strstr(msg, name_rule_name(rule)))
			abort();
		return;
	}
	if (n == 0 || n > NAME_MAX_LEN || msg[0] != '\0')
		abort();
	if (name_record_make(&r, (const char *)p, n, cid, 1, 0, &fz_id) != 0)
		abort();
	ssize_t len = name_record_encode(&r, buf, sizeof buf);
	if (len < 0)
		abort();
	name_record_key(r.name, r.name_len, key);
	if (name_record_check(buf, (size_t)len, key, &d) != NAME_REC_OK)
		abort();
	key[0] ^= 1;
	if (name_record_check(buf, (size_t)len, key, &d) != NAME_REC_WRONG_NAME)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t seed[IDENTITY_SEED_LEN] = { 1, 2, 3 };
	char err[128];

	if (!fz_id.sk && identity_from_seed(&fz_id, seed, err, sizeof err) != 0)
		abort();
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fz_check_name(data + 1, size - 1);
	else
		fz_check_record(data + 1, size - 1);
	return 0;
}
