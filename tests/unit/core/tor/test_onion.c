/* Onion names and keys (src/core/tor/onion.h): a v3 name's shape and
 * version, its public key, "name:port" splitting; a key's public half is
 * the one inside the name a real tor derives (a known answer: tor 0.4.9.11,
 * given SK by ADD_ONION, answered ServiceID NAME). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "core/tor/onion.h"

/* 56 characters, version 3 (the last base32 character encodes it with
 * the checksum's low bits). */
static const char *NAME = "xbny7krpr3tthw7zvfmbz6w4tbnhreijdehujpxqpzlgiw7h3i3maxqd.onion";

static const char *SK_HEX =
	"a001fc63de43b41c7ea984089a9e951b56b64200257f8f56323381c48d695055"
	"a951429dd8e82d253e0d71763e47427b88743924b885660b58deac36622cf3f6";

static void test_known_answer(void **state)
{
	uint8_t sk[ONION_KEY_LEN], pk[ONION_PK_LEN], in_name[ONION_PK_LEN];

	(void)state;
	assert_true(sodium_init() >= 0);
	assert_int_equal(sodium_hex2bin(sk, sizeof sk, SK_HEX, strlen(SK_HEX), NULL, NULL, NULL), 0);
	assert_int_equal(onion_key_pubkey(sk, pk), 0);
	assert_int_equal(onion_name_pubkey(NAME, strlen(NAME), in_name), 0);
	assert_memory_equal(pk, in_name, sizeof pk);
	sk[5] ^= 1;
	assert_int_equal(onion_key_pubkey(sk, pk), 0);
	assert_memory_not_equal(pk, in_name, sizeof pk);
}

static void test_name_shape(void **state)
{
	char v2[] = "xbny7krpr3tthw7zvfmbz6w4tbnhreijdehujpxqpzlgiw7h3i3maxqd.onion";
	uint8_t pk[ONION_PK_LEN];

	(void)state;
	assert_true(onion_name_is_v3(NAME, strlen(NAME)));
	assert_int_equal(onion_name_pubkey(NAME, strlen(NAME), pk), 0);
	assert_false(onion_name_is_v3(NAME, strlen(NAME) - 1));           /* short */
	assert_false(onion_name_is_v3("expyuzz4wqqyqhjn.onion", 22));      /* v2 */
	v2[54] = 'a';                  /* the version bits are no longer 3 */
	v2[55] = 'a';
	assert_false(onion_name_is_v3(v2, strlen(v2)));
	memcpy(v2, NAME, strlen(NAME) + 1);
	v2[0] = 'X';                   /* upper case is not ours */
	assert_false(onion_name_is_v3(v2, strlen(v2)));
	v2[0] = '1';                   /* not base32 */
	assert_false(onion_name_is_v3(v2, strlen(v2)));
	memcpy(v2, NAME, strlen(NAME) + 1);
	memcpy(v2 + 56, ".onioN", 6);
	assert_false(onion_name_is_v3(v2, strlen(v2)));
}

static void test_split(void **state)
{
	char name[ONION_NAME_LEN + 1], addr[128];
	uint16_t port = 0;

	(void)state;
	snprintf(addr, sizeof addr, "%s:9443", NAME);
	assert_int_equal(onion_addr_split(addr, name, sizeof name, &port), 0);
	assert_string_equal(name, NAME);
	assert_int_equal(port, 9443);
	const char *bad[] = { ":0", ":65536", ":", ":09443", ":94a3", ":123456", "" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(addr, sizeof addr, "%s%s", NAME, bad[i]);
		assert_int_equal(onion_addr_split(addr, name, sizeof name, &port), -1);
	}
	assert_int_equal(onion_addr_split("127.0.0.1:9443", name, sizeof name, &port), -1);
	snprintf(addr, sizeof addr, "%s:1", NAME);
	assert_int_equal(onion_addr_split(addr, name, ONION_NAME_LEN, &port), -1);  /* no room */
}

/* A generated key is clamped, its public half is a·B, and the key
 * argument is "ED25519-V3:" and 88 base64 characters of it. */
static void test_key(void **state)
{
	uint8_t sk[ONION_KEY_LEN], pk[ONION_PK_LEN], back[ONION_KEY_LEN], want[ONION_PK_LEN];
	char arg[16 + ONION_KEY_B64_MAX];
	size_t got = 0;

	(void)state;
	assert_true(sodium_init() >= 0);
	onion_key_generate(sk);
	assert_int_equal(sk[0] & 7, 0);
	assert_int_equal(sk[31] & 0xc0, 0x40);
	assert_int_equal(onion_key_pubkey(sk, pk), 0);
	assert_int_equal(crypto_scalarmult_ed25519_base_noclamp(want, sk), 0);
	assert_memory_equal(pk, want, sizeof pk);
	assert_int_equal(onion_key_arg(sk, arg, sizeof arg), 0);
	assert_int_equal(strncmp(arg, "ED25519-V3:", 11), 0);
	assert_int_equal(strlen(arg), 11 + 88);
	assert_int_equal(sodium_base642bin(back, sizeof back, arg + 11, 88, NULL, &got, NULL,
	                                   sodium_base64_VARIANT_ORIGINAL), 0);
	assert_int_equal(got, sizeof back);
	assert_memory_equal(back, sk, sizeof sk);
	assert_int_equal(onion_key_arg(sk, arg, 11 + 88), -1);   /* no room for the NUL */
}

/* The names the CLI must never hand to the system resolver. */
static void test_host_is_onion(void **state)
{
	static const char *const onion[] = {
		"onion", "ONION.", "x.onion", "x.onion.", "a.b.OnIoN", "zzzz.ONION.",
	};
	static const char *const other[] = {
		"", ".", "onio", "xonion", "x.onions", "onion.com", "x.onion.com", "x.oni0n",
		"127.0.0.1", "::1", "x.onion..",
	};

	(void)state;
	for (size_t i = 0; i < sizeof onion / sizeof onion[0]; i++)
		if (!onion_host_is_onion(onion[i]))
			fail_msg("%s: not taken for an onion", onion[i]);
	for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
		if (onion_host_is_onion(other[i]))
			fail_msg("%s: taken for an onion", other[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answer),
		cmocka_unit_test(test_name_shape),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_host_is_onion),
		cmocka_unit_test(test_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
