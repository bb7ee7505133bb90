/* Name records (src/core/dht/name_record.h): made, encoded and checked
 * round-trip; every truncation and extension is refused; each refusal has
 * its reason (malformed, oversized, bad_version, bad_name, bad_sig,
 * wrong_name); the signature covers every field; the DHT key and the
 * signed digest follow the documented domains (checked against b3sum when
 * the test has it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sodium.h>

#include "core/dht/name_record.h"
#include "lib/b3.h"

static node_identity ident;

static int setup(void **state)
{
	char err[128];

	(void)state;
	return identity_generate(&ident, err, sizeof err);
}

static int teardown(void **state)
{
	(void)state;
	identity_free(&ident);
	return 0;
}

static void fill_cid(uint8_t cid[32], uint8_t seed)
{
	for (unsigned i = 0; i < 32; i++)
		cid[i] = (uint8_t)(seed + i * 3u);
}

static size_t make(const char *name, uint64_t seq, uint8_t *buf, name_record *r)
{
	uint8_t cid[32];
	ssize_t n;

	fill_cid(cid, 7);
	assert_int_equal(name_record_make(r, name, strlen(name), cid, seq, 1700000000u, &ident), 0);
	n = name_record_encode(r, buf, NAME_RECORD_MAX);
	assert_true(n > 0);
	return (size_t)n;
}

static void test_roundtrip(void **state)
{
	uint8_t buf[NAME_RECORD_MAX], key[32];
	name_record r, d;
	char id[IDENTITY_ID_TEXT];
	size_t n = make("alice/home", 42, buf, &r);

	(void)state;
	assert_int_equal(n, NAME_RECORD_FIXED + strlen("alice/home"));
	assert_int_equal(buf[0], 1);
	name_record_key("alice/home", 10, key);
	assert_int_equal(name_record_check(buf, n, key, &d), NAME_REC_OK);
	assert_memory_equal(&d, &r, sizeof d);
	assert_string_equal(d.name, "alice/home");
	assert_int_equal(d.seq, 42);
	assert_int_equal(d.issued, 1700000000u);
	assert_memory_equal(d.node_pk, ident.pk, 32);
	name_record_node_id(&d, id);
	assert_string_equal(id, ident.id_text);
	assert_int_equal(name_record_check(buf, n, NULL, &d), NAME_REC_OK);
}

static void test_longest_and_sizes(void **state)
{
	char name[NAME_MAX_LEN + 1];
	uint8_t buf[NAME_RECORD_MAX + 1];
	name_record r, d;

	(void)state;
	memset(name, 'z', NAME_MAX_LEN);
	name[NAME_MAX_LEN] = '\0';
	size_t n = make(name, NAME_RECORD_SEQ_MAX, buf, &r);
	assert_int_equal(n, NAME_RECORD_MAX);
	assert_int_equal(NAME_RECORD_MAX, 402);
	assert_int_equal(name_record_check(buf, n, NULL, &d), NAME_REC_OK);
	/* A byte past the cap is oversized, whatever it holds. */
	buf[n] = 0;
	assert_int_equal(name_record_check(buf, n + 1, NULL, &d), NAME_REC_OVERSIZED);
	/* Every truncation and a trailing byte within the cap are malformed. */
	n = make("a", 1, buf, &r);
	assert_int_equal(n, NAME_RECORD_MIN);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(name_record_check(buf, k, NULL, &d), NAME_REC_MALFORMED);
	buf[n] = 0;
	assert_int_equal(name_record_check(buf, n + 1, NULL, &d), NAME_REC_MALFORMED);
	/* *out is zeroed on refusal */
	static const name_record zero;
	assert_memory_equal(&d, &zero, sizeof d);
}

static void test_refusals(void **state)
{
	uint8_t buf[NAME_RECORD_MAX], key[32];
	name_record r, d;
	size_t n = make("bob/x", 3, buf, &r);

	(void)state;
	buf[0] = 2;
	assert_int_equal(name_record_check(buf, n, NULL, &d), NAME_REC_BAD_VERSION);
	assert_string_equal(name_rec_result_name(NAME_REC_BAD_VERSION), "bad_version");
	buf[0] = 1;
	/* A name that breaks a rule: "bob/." */
	buf[3 + 4] = '.';
	assert_int_equal(name_record_check(buf, n, NULL, &d), NAME_REC_BAD_NAME);
	buf[3 + 4] = 0;   /* a NUL inside */
	assert_int_equal(name_record_check(buf, n, NULL, &d), NAME_REC_BAD_NAME);
	buf[3 + 4] = 'x';
	/* A name length that runs past the end */
	buf[1] = 0xff;
	assert_int_equal(name_record_check(buf, n, NULL, &d), NAME_REC_MALFORMED);
	buf[1] = 0;
	/* Under another name's key */
	name_record_key("bob/y", 5, key);
	assert_int_equal(name_record_check(buf, n, key, &d), NAME_REC_WRONG_NAME);
	name_record_key("bob/x", 5, key);
	assert_int_equal(name_record_check(buf, n, key, &d), NAME_REC_OK);
	/* seq 0 is no record */
	memset(buf + 3 + 5 + 32, 0, 8);
	assert_int_equal(name_record_check(buf, n, NULL, &d), NAME_REC_MALFORMED);
	assert_int_equal(name_record_make(&r, "a", 1, buf, 0, 0, &ident), -1);
	assert_int_equal(name_record_make(&r, "a", 1, buf, NAME_RECORD_SEQ_MAX + 1, 0, &ident), -1);
	/* a seq past 2^53 - 1 on the wire is malformed */
	n = make("bob/x", 3, buf, &r);
	memset(buf + 3 + 5 + 32, 0, 8);
	buf[3 + 5 + 32 + 1] = 0x20;   /* 2^53 */
	assert_int_equal(name_record_check(buf, n, NULL, &d), NAME_REC_MALFORMED);
	assert_int_equal(name_record_make(&r, "a b", 3, buf, 1, 0, &ident), -1);
	assert_int_equal(name_record_make(&r, "a", 1, buf, 1, 0, NULL), -1);
}

/* Flip each byte of a signed record: whatever the field, the record is
 * refused — as bad_sig where the structure still holds. */
static void test_signature_covers_everything(void **state)
{
	uint8_t buf[NAME_RECORD_MAX];
	name_record r, d;
	size_t n = make("carol/docs", 9, buf, &r);

	(void)state;
	for (size_t i = 0; i < n; i++) {
		buf[i] ^= 0x01;
		name_rec_result res = name_record_check(buf, n, NULL, &d);
		assert_int_not_equal(res, NAME_REC_OK);
		size_t seq_at = 3 + 10 + 32;
		if (i == seq_at)   /* a seq past 2^53 - 1 */
			assert_int_equal(res, NAME_REC_MALFORMED);
		else if (i >= 3 + 10)   /* past version, length and name: only the signature can tell */
			assert_int_equal(res, NAME_REC_BAD_SIG);
		buf[i] ^= 0x01;
	}
	/* Another key's signature over the same fields */
	node_identity other;
	char err[128];
	assert_int_equal(identity_generate(&other, err, sizeof err), 0);
	memcpy(buf + n - 64 - 8 - 32, other.pk, 32);
	assert_int_equal(name_record_check(buf, n, NULL, &d), NAME_REC_BAD_SIG);
	identity_free(&other);
	/* decode alone does not verify */
	assert_int_equal(name_record_decode(buf, n, &d), NAME_REC_OK);
	assert_int_equal(name_record_verify(&d), NAME_REC_BAD_SIG);
}

/* The documented domains, recomputed by hand (and by b3sum when present). */
static void test_domains(void **state)
{
	uint8_t buf[NAME_RECORD_MAX], key[32], want[32], msg[64], digest[32];
	name_record r;
	size_t n = make("dave", 1, buf, &r);

	(void)state;
	memcpy(msg, "macronode/name-key/v1dave", 25);
	b3_hash(msg, 25, want);
	name_record_key("dave", 4, key);
	assert_memory_equal(key, want, 32);
	/* sig = Ed25519(BLAKE3("macronode/name/v1" || record before sig)) */
	uint8_t signed_msg[17 + NAME_RECORD_MAX];
	memcpy(signed_msg, "macronode/name/v1", 17);
	memcpy(signed_msg + 17, buf, n - 64);
	b3_hash(signed_msg, 17 + n - 64, digest);
	assert_int_equal(crypto_sign_verify_detached(buf + n - 64, digest, 32, ident.pk), 0);

	const char *b3sum = getenv("MN_B3SUM");
	if (b3sum && b3sum[0]) {
		char cmd[256], line[128], hex[65];
		snprintf(cmd, sizeof cmd, "printf 'macronode/name-key/v1dave' | %s --no-names", b3sum);
		FILE *p = popen(cmd, "r");
		assert_non_null(p);
		assert_non_null(fgets(line, sizeof line, p));
		pclose(p);
		b3_hex(key, hex);
		assert_memory_equal(line, hex, 64);
	}
	assert_string_equal(name_rec_result_name(NAME_REC_STALE_SEQ), "stale_seq");
	assert_string_equal(name_rec_result_name(NAME_REC_RESULT_COUNT), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_longest_and_sizes),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_signature_covers_everything),
		cmocka_unit_test(test_domains),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
