/* Node records (src/core/dht/node_record.h) and their row in the verifier
 * table: a signed record round-trips and verifies under the one well-known
 * key BLAKE3("macronode/nodes/v1"); every cut and trailing byte, a bad
 * version, a bad address, a lifetime out of range, a record from the
 * future, an expired one, another key and any flipped bit are refused with
 * their own reason; a provider record's signature is no node record's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/dht/dht_verify.h"
#include "core/dht/node_record.h"
#include "lib/b3.h"

#define NOW  1700000000u
#define TTL  3600u

static node_identity ID;

static int setup(void **state)
{
	char err[128];

	(void)state;
	assert_int_equal(identity_generate(&ID, err, sizeof err), 0);
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
	node_record r;

	assert_int_equal(node_record_sign(&r, &ID, addr, now, ttl), 0);
	ssize_t n = node_record_encode(&r, buf, NODE_RECORD_MAX);
	assert_true(n > 0 && (size_t)n <= NODE_RECORD_MAX);
	return (size_t)n;
}

static void test_round_trip(void **state)
{
	uint8_t buf[NODE_RECORD_MAX], key[32], again[NODE_RECORD_MAX];
	node_record r;
	size_t n = make(buf, "127.0.0.1:9443", NOW, TTL);

	(void)state;
	node_record_key(key);
	assert_int_equal(node_record_verify(buf, n, key, NOW, &r), PROV_OK);
	assert_memory_equal(r.node_pk, ID.pk, 32);
	assert_string_equal(r.oap_addr, "127.0.0.1:9443");
	assert_int_equal(r.issued, NOW);
	assert_int_equal(r.expires, NOW + TTL);
	assert_int_equal(node_record_encode(&r, again, sizeof again), (ssize_t)n);
	assert_memory_equal(again, buf, n);
	assert_int_equal(dht_verify(DHT_KIND_NODE, key, buf, n, NOW), DHT_REJECT_NONE);
	assert_int_equal(dht_verify_expires(DHT_KIND_NODE, buf, n), NOW + TTL);
	n = make(buf, "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535", NOW, TTL);
	assert_int_equal(node_record_verify(buf, n, NULL, NOW, &r), PROV_OK);
}

/* Version 2 carries the onion (docs/tor.md); tor.only: no IP at all. */
static void test_onion(void **state)
{
	static const char onion[] =
		"xbny7krpr3tthw7zvfmbz6w4tbnhreijdehujpxqpzlgiw7h3i3maxqd.onion:9443";
	uint8_t buf[NODE_RECORD_MAX], key[32];
	node_record r;
	ssize_t n;

	(void)state;
	node_record_key(key);
	assert_int_equal(node_record_sign_onion(&r, &ID, "127.0.0.1:9443", onion, NOW, TTL), 0);
	assert_true((n = node_record_encode(&r, buf, sizeof buf)) > 0 && (size_t)n <= NODE_RECORD_MAX);
	assert_int_equal(buf[0], 2);
	assert_int_equal(node_record_verify(buf, (size_t)n, key, NOW, &r), PROV_OK);
	assert_string_equal(r.onion, onion);
	assert_string_equal(r.oap_addr, "127.0.0.1:9443");
	assert_int_equal(node_record_sign_onion(&r, &ID, "", onion, NOW, TTL), 0);
	assert_true((n = node_record_encode(&r, buf, sizeof buf)) > 0);
	assert_int_equal(node_record_verify(buf, (size_t)n, key, NOW, &r), PROV_OK);
	assert_string_equal(r.oap_addr, "");
	for (ssize_t cut = 0; cut < n; cut++)
		assert_int_equal(node_record_verify(buf, (size_t)cut, key, NOW, &r), PROV_E_MALFORMED);
	buf[0] = 1;
	assert_int_equal(node_record_verify(buf, (size_t)n, key, NOW, &r), PROV_E_MALFORMED);
	assert_int_equal(node_record_sign_onion(&r, &ID, "", "", NOW, TTL), -1);
	assert_int_equal(node_record_sign_onion(&r, &ID, "", "not.onion:1", NOW, TTL), -1);
}

static void test_key(void **state)
{
	uint8_t want[32], key[32];

	(void)state;
	b3_hash("macronode/nodes/v1", 18, want);
	node_record_key(key);
	assert_memory_equal(key, want, 32);
}

static void test_sign_refuses(void **state)
{
	node_record r;

	(void)state;
	assert_int_equal(node_record_sign(&r, &ID, "localhost:1", NOW, TTL), -1);
	assert_int_equal(node_record_sign(&r, &ID, "", NOW, TTL), -1);
	assert_int_equal(node_record_sign(&r, &ID, "127.0.0.1:1", NOW, 0), -1);
	assert_int_equal(node_record_sign(&r, &ID, "127.0.0.1:1", NOW, NODE_TTL_MAX_S + 1), -1);
}

static void test_malformed(void **state)
{
	uint8_t buf[NODE_RECORD_MAX + 1], key[32];
	node_record r;
	size_t n = make(buf, "127.0.0.1:9443", NOW, TTL);

	(void)state;
	node_record_key(key);
	for (size_t cut = 0; cut < n; cut++)
		assert_int_equal(node_record_verify(buf, cut, key, NOW, &r), PROV_E_MALFORMED);
	buf[n] = 0;
	assert_int_equal(node_record_verify(buf, n + 1, key, NOW, &r), PROV_E_MALFORMED);
	assert_int_equal(dht_verify(DHT_KIND_NODE, key, buf, n + 1, NOW), DHT_REJECT_MALFORMED);
	buf[0] = 2;
	assert_int_equal(node_record_verify(buf, n, key, NOW, &r), PROV_E_MALFORMED);
	buf[0] = 1;
	uint8_t big[NODE_RECORD_MAX + 8] = { 0 };
	assert_int_equal(node_record_verify(big, sizeof big, key, NOW, &r), PROV_E_OVERSIZED);
	/* issued far in the reader's future */
	n = make(buf, "127.0.0.1:9443", NOW + PROV_CLOCK_SKEW_S + 10, TTL);
	assert_int_equal(node_record_verify(buf, n, key, NOW, &r), PROV_E_MALFORMED);
}

static void test_expired_key_signature(void **state)
{
	uint8_t buf[NODE_RECORD_MAX], key[32], other[32];
	node_record r;
	size_t n = make(buf, "127.0.0.1:9443", NOW, TTL);

	(void)state;
	node_record_key(key);
	assert_int_equal(node_record_verify(buf, n, key, NOW + TTL, &r), PROV_E_EXPIRED);
	assert_int_equal(dht_verify(DHT_KIND_NODE, key, buf, n, NOW + TTL), DHT_REJECT_EXPIRED);
	memcpy(other, key, 32);
	other[0] ^= 1;
	assert_int_equal(node_record_verify(buf, n, other, NOW, &r), PROV_E_WRONG_CID);
	assert_int_equal(dht_verify(DHT_KIND_NODE, other, buf, n, NOW), DHT_REJECT_WRONG_KEY);
	/* a flipped bit in the signed part past the address, or in the signature */
	for (size_t i = n - IDENTITY_SIG_LEN - 16; i < n; i++) {
		if (i >= n - IDENTITY_SIG_LEN - 8 && i < n - IDENTITY_SIG_LEN)
			continue;   /* expires: flipping it may change the lifetime verdict first */
		buf[i] ^= 0x01;
		prov_verdict v = node_record_verify(buf, n, key, NOW, &r);
		assert_true(v == PROV_E_SIGNATURE || v == PROV_E_MALFORMED);
		buf[i] ^= 0x01;
	}
	buf[n - 1] ^= 0x80;
	assert_int_equal(node_record_verify(buf, n, key, NOW, &r), PROV_E_SIGNATURE);
	assert_int_equal(dht_verify(DHT_KIND_NODE, key, buf, n, NOW), DHT_REJECT_SIGNATURE);
	/* a node's public key swapped in: no longer its signature */
	buf[n - 1] ^= 0x80;
	buf[1] ^= 0x01;
	assert_int_equal(node_record_verify(buf, n, key, NOW, &r), PROV_E_SIGNATURE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_onion),
		cmocka_unit_test(test_sign_refuses),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_expired_key_signature),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
