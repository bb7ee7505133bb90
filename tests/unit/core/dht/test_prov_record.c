/* Provider records (src/core/dht/prov_record.h) and the verifier table
 * (dht_verify.h): a signed record round-trips and verifies; each refusal
 * has its own reason: oversized, malformed (every cut and every trailing
 * byte, a bad version, a bad address, a lifetime out of range, issued in
 * the future), expired, wrong key/cid, bad signature (any flipped bit of
 * the signed part or the signature); the NAME kind refuses everything. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/dht/dht_verify.h"
#include "core/dht/prov_record.h"
#include "lib/b3.h"

#define NOW  1700000000u
#define TTL  (24u * 3600u)

static node_identity ID;
static uint8_t CID[32];

static int setup(void **state)
{
	char err[128];

	(void)state;
	assert_int_equal(identity_generate(&ID, err, sizeof err), 0);
	b3_hash("hello", 5, CID);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	identity_free(&ID);
	return 0;
}

static size_t make(uint8_t *buf, const char *addr, uint64_t now, uint64_t ttl)
{
	prov_record r;

	assert_int_equal(prov_record_sign(&r, &ID, CID, addr, now, ttl), 0);
	ssize_t n = prov_record_encode(&r, buf, PROV_RECORD_MAX);
	assert_true(n > 0 && (size_t)n <= PROV_RECORD_MAX);
	return (size_t)n;
}

static void test_round_trip(void **state)
{
	uint8_t buf[PROV_RECORD_MAX], key[32], again[PROV_RECORD_MAX];
	prov_record r;
	size_t n = make(buf, "127.0.0.1:9443", NOW, TTL);

	(void)state;
	prov_record_key(CID, key);
	assert_int_equal(prov_record_verify(buf, n, key, CID, NOW, &r), PROV_OK);
	assert_memory_equal(r.cid, CID, 32);
	assert_memory_equal(r.node_pk, ID.pk, 32);
	assert_string_equal(r.oap_addr, "127.0.0.1:9443");
	assert_int_equal(r.issued, NOW);
	assert_int_equal(r.expires, NOW + TTL);
	assert_int_equal(prov_record_encode(&r, again, sizeof again), (ssize_t)n);
	assert_memory_equal(again, buf, n);
	/* an IPv6 address of the longest kind fits */
	n = make(buf, "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535", NOW, TTL);
	assert_int_equal(prov_record_verify(buf, n, key, NULL, NOW, &r), PROV_OK);
	assert_int_equal(dht_verify(DHT_KIND_PROVIDER, key, buf, n, NOW), DHT_REJECT_NONE);
	assert_int_equal(dht_verify_expires(DHT_KIND_PROVIDER, buf, n), NOW + TTL);
}

/* The key is BLAKE3("macronode/provider-key/v1" || cid), not OpenDHT's hash. */
static void test_key(void **state)
{
	uint8_t in[25 + 32], want[32], key[32];

	(void)state;
	memcpy(in, "macronode/provider-key/v1", 25);
	memcpy(in + 25, CID, 32);
	b3_hash(in, sizeof in, want);
	prov_record_key(CID, key);
	assert_memory_equal(key, want, 32);
}

static void test_sign_refuses_bad_arguments(void **state)
{
	prov_record r;

	(void)state;
	assert_int_equal(prov_record_sign(&r, &ID, CID, "localhost:1", NOW, TTL), -1);
	assert_int_equal(prov_record_sign(&r, &ID, CID, "", NOW, TTL), -1);
	assert_int_equal(prov_record_sign(&r, &ID, CID, "127.0.0.1:1", NOW, 0), -1);
	assert_int_equal(prov_record_sign(&r, &ID, CID, "127.0.0.1:1", NOW, PROV_TTL_MAX_S + 1), -1);
}

/* Version 2 (docs/tor.md): the onion beside the IP, or alone (tor.only);
 * never an onion in version 1, never version 2 without one. */
#define ONION "xbny7krpr3tthw7zvfmbz6w4tbnhreijdehujpxqpzlgiw7h3i3maxqd.onion:9443"

static void test_onion(void **state)
{
	uint8_t buf[PROV_RECORD_MAX], key[32];
	prov_record r;
	ssize_t n;

	(void)state;
	prov_record_key(CID, key);
	assert_int_equal(prov_record_sign_onion(&r, &ID, CID, "127.0.0.1:9443", ONION, NOW, TTL), 0);
	assert_true((n = prov_record_encode(&r, buf, sizeof buf)) > 0);
	assert_int_equal(buf[0], 2);
	assert_int_equal(prov_record_verify(buf, (size_t)n, key, CID, NOW, &r), PROV_OK);
	assert_string_equal(r.oap_addr, "127.0.0.1:9443");
	assert_string_equal(r.onion, ONION);
	assert_ptr_equal(prov_pick_addr(true, false, r.oap_addr, r.onion), r.onion);
	assert_ptr_equal(prov_pick_addr(false, false, r.oap_addr, r.onion), r.oap_addr);
	/* tor.only: no IP in the record at all */
	assert_int_equal(prov_record_sign_onion(&r, &ID, CID, "", ONION, NOW, TTL), 0);
	assert_true((n = prov_record_encode(&r, buf, sizeof buf)) > 0);
	assert_null(memmem(buf, (size_t)n, "127.0.0.1", 9));
	assert_int_equal(prov_record_verify(buf, (size_t)n, key, CID, NOW, &r), PROV_OK);
	assert_string_equal(r.oap_addr, "");
	assert_null(prov_pick_addr(false, false, r.oap_addr, r.onion));   /* no Tor here: unusable */
	assert_ptr_equal(prov_pick_addr(true, true, r.oap_addr, r.onion), r.onion);
	assert_null(prov_pick_addr(true, true, "127.0.0.1:1", ""));      /* tor.only: never in the clear */
	for (size_t cut = 0; cut < (size_t)n; cut++)
		assert_int_equal(prov_record_verify(buf, cut, key, CID, NOW, &r), PROV_E_MALFORMED);
	/* refused: a v2 without an onion, a v1 with one, a bad onion */
	assert_int_equal(prov_record_sign_onion(&r, &ID, CID, "", "", NOW, TTL), -1);
	assert_int_equal(prov_record_sign_onion(&r, &ID, CID, "", "abc.onion:1", NOW, TTL), -1);
	assert_int_equal(prov_record_sign_onion(&r, &ID, CID, "127.0.0.1:1", "127.0.0.1:2", NOW, TTL),
	                 -1);
	assert_false(prov_addrs_ok(1, "127.0.0.1:1", ONION));
	assert_false(prov_addrs_ok(2, "127.0.0.1:1", ""));
	assert_false(prov_addrs_ok(3, "127.0.0.1:1", ONION));
	assert_true(prov_addrs_ok(2, "127.0.0.1:1", ONION));
	/* a version byte flipped from 2 to 1: the onion is then trailing bytes */
	assert_int_equal(prov_record_sign_onion(&r, &ID, CID, "127.0.0.1:9443", ONION, NOW, TTL), 0);
	assert_true((n = prov_record_encode(&r, buf, sizeof buf)) > 0);
	buf[0] = 1;
	assert_int_equal(prov_record_verify(buf, (size_t)n, key, CID, NOW, &r), PROV_E_MALFORMED);
	buf[0] = 2;
	buf[(size_t)n - 1] ^= 1;
	assert_int_equal(prov_record_verify(buf, (size_t)n, key, CID, NOW, &r), PROV_E_SIGNATURE);
}

static void test_oversized(void **state)
{
	uint8_t buf[PROV_RECORD_MAX + 1] = { 0 };
	prov_record r;

	(void)state;
	assert_int_equal(prov_record_verify(buf, sizeof buf, NULL, NULL, NOW, &r), PROV_E_OVERSIZED);
	assert_int_equal(dht_verify(DHT_KIND_PROVIDER, CID, buf, sizeof buf, NOW), DHT_REJECT_OVERSIZED);
	assert_string_equal(dht_reject_name(DHT_REJECT_OVERSIZED), "oversized");
}

static void test_malformed(void **state)
{
	uint8_t buf[PROV_RECORD_MAX + 1], key[32];
	prov_record r;
	size_t n = make(buf, "127.0.0.1:9443", NOW, TTL);

	(void)state;
	prov_record_key(CID, key);
	for (size_t cut = 0; cut < n; cut++)
		assert_int_equal(prov_record_verify(buf, cut, key, CID, NOW, &r), PROV_E_MALFORMED);
	buf[n] = 0;
	assert_int_equal(prov_record_verify(buf, n + 1, key, CID, NOW, &r), PROV_E_MALFORMED);
	buf[0] = 2;                                             /* version */
	assert_int_equal(prov_record_verify(buf, n, key, CID, NOW, &r), PROV_E_MALFORMED);
	buf[0] = 1;
	buf[1 + 32 + 32 + 2] = 'x';                             /* "x27.0.0.1:9443" */
	assert_int_equal(prov_record_decode(buf, n, &r), PROV_E_MALFORMED);
	/* issued in the future beyond the skew */
	n = make(buf, "127.0.0.1:9443", NOW + PROV_CLOCK_SKEW_S + 10, TTL);
	assert_int_equal(prov_record_verify(buf, n, key, CID, NOW, &r), PROV_E_MALFORMED);
	assert_string_equal(dht_reject_name(dht_verify(DHT_KIND_PROVIDER, key, buf, n, NOW)),
	                    "malformed");
	/* a failed decode leaves nothing half-read */
	static const prov_record zero;
	assert_memory_equal(&r, &zero, sizeof r);
}

static void test_expired(void **state)
{
	uint8_t buf[PROV_RECORD_MAX], key[32];
	prov_record r;
	size_t n = make(buf, "127.0.0.1:9443", NOW - TTL - 1, TTL);

	(void)state;
	prov_record_key(CID, key);
	assert_int_equal(prov_record_verify(buf, n, key, CID, NOW, &r), PROV_E_EXPIRED);
	assert_int_equal(dht_verify(DHT_KIND_PROVIDER, key, buf, n, NOW), DHT_REJECT_EXPIRED);
}

static void test_wrong_cid(void **state)
{
	uint8_t buf[PROV_RECORD_MAX], key[32], other[32];
	prov_record r;
	size_t n = make(buf, "127.0.0.1:9443", NOW, TTL);

	(void)state;
	b3_hash("other", 5, other);
	prov_record_key(other, key);
	assert_int_equal(prov_record_verify(buf, n, key, NULL, NOW, &r), PROV_E_WRONG_CID);
	assert_int_equal(prov_record_verify(buf, n, NULL, other, NOW, &r), PROV_E_WRONG_CID);
	assert_int_equal(dht_verify(DHT_KIND_PROVIDER, key, buf, n, NOW), DHT_REJECT_WRONG_KEY);
}

static void test_bad_signature(void **state)
{
	uint8_t buf[PROV_RECORD_MAX], key[32];
	prov_record r;
	size_t n = make(buf, "127.0.0.1:9443", NOW, TTL);

	(void)state;
	prov_record_key(CID, key);
	/* the signature, and the signed fields that still decode (pk, times) */
	size_t spots[] = { n - 1, n - 64, 1 + 32 + 5, n - 64 - 1 };
	for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
		buf[spots[i]] ^= 0x01;
		assert_int_equal(prov_record_verify(buf, n, key, CID, NOW, &r), PROV_E_SIGNATURE);
		assert_int_equal(dht_verify(DHT_KIND_PROVIDER, key, buf, n, NOW), DHT_REJECT_SIGNATURE);
		buf[spots[i]] ^= 0x01;
	}
	assert_int_equal(prov_record_verify(buf, n, key, CID, NOW, &r), PROV_OK);
	assert_string_equal(dht_reject_name(DHT_REJECT_SIGNATURE), "bad_signature");
}

/* A provider record offered as a name value is refused by the NAME verifier
 * (name_record_check); an unknown kind has no verifier: refused too. */
static void test_name_kind_refuses(void **state)
{
	uint8_t buf[PROV_RECORD_MAX], key[32];
	size_t n = make(buf, "127.0.0.1:9443", NOW, TTL);

	(void)state;
	prov_record_key(CID, key);
	assert_int_equal(dht_verify(DHT_KIND_NAME, key, buf, n, NOW), DHT_REJECT_MALFORMED);
	assert_int_equal(dht_verify((dht_kind)9, key, buf, n, NOW), DHT_REJECT_UNVERIFIABLE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_sign_refuses_bad_arguments),
		cmocka_unit_test(test_onion),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_wrong_cid),
		cmocka_unit_test(test_bad_signature),
		cmocka_unit_test(test_name_kind_refuses),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
