/* SOCKS5 client messages (src/core/tor/socks5.h): the greeting, CONNECT
 * by domain name (never an address: tor resolves), and the parsers of the
 * proxy's answers at every cut and with every kind of wrong byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/tor/socks5.h"

static void test_encode(void **state)
{
	uint8_t g[3], req[SOCKS5_REQUEST_MAX];
	char host[SOCKS5_HOST_MAX + 2];

	(void)state;
	assert_int_equal(socks5_encode_greeting(g), 3);
	assert_memory_equal(g, "\x05\x01\x00", 3);
	assert_int_equal(socks5_encode_connect(req, sizeof req, "abc.onion", 9443), 7 + 9);
	assert_memory_equal(req, "\x05\x01\x00\x03\x09" "abc.onion" "\x24\xe3", 16);
	memset(host, 'a', sizeof host);
	host[SOCKS5_HOST_MAX] = '\0';
	assert_int_equal(socks5_encode_connect(req, sizeof req, host, 1), 7 + SOCKS5_HOST_MAX);
	host[SOCKS5_HOST_MAX] = 'a';
	host[SOCKS5_HOST_MAX + 1] = '\0';
	assert_int_equal(socks5_encode_connect(req, sizeof req, host, 1), -1);   /* 256 bytes */
	assert_int_equal(socks5_encode_connect(req, sizeof req, "", 1), -1);
	assert_int_equal(socks5_encode_connect(req, sizeof req, "a b", 1), -1);
	assert_int_equal(socks5_encode_connect(req, sizeof req, "a\nb", 1), -1);
	assert_int_equal(socks5_encode_connect(req, 8, "abc.onion", 1), -1);
}

static void test_method(void **state)
{
	(void)state;
	assert_int_equal(socks5_parse_method((const uint8_t *)"", 0), SOCKS5_MORE);
	assert_int_equal(socks5_parse_method((const uint8_t *)"\x05", 1), SOCKS5_MORE);
	assert_int_equal(socks5_parse_method((const uint8_t *)"\x04", 1), SOCKS5_E_PROTOCOL);
	assert_int_equal(socks5_parse_method((const uint8_t *)"\x05\x00", 2), SOCKS5_OK);
	assert_int_equal(socks5_parse_method((const uint8_t *)"\x05\xff", 2), SOCKS5_E_AUTH);
	assert_int_equal(socks5_parse_method((const uint8_t *)"\x05\x02", 2), SOCKS5_E_PROTOCOL);
	assert_int_equal(socks5_parse_method((const uint8_t *)"\x05\x00\x00", 3), SOCKS5_E_PROTOCOL);
}

static void test_reply(void **state)
{
	static const uint8_t v4[] = { 5, 0, 0, 1, 127, 0, 0, 1, 0x24, 0xe3 };
	static const uint8_t v6[4 + 16 + 2] = { 5, 0, 0, 4 };
	static const uint8_t name[] = { 5, 0, 0, 3, 3, 'a', 'b', 'c', 0, 80 };
	static const uint8_t refused[] = { 5, 0xf0, 0, 1, 0, 0, 0, 0, 0, 0 };
	uint8_t buf[64];
	size_t used;
	uint8_t rep;

	(void)state;
	for (size_t cut = 0; cut < sizeof v4; cut++)
		assert_int_equal(socks5_parse_reply(v4, cut, &used, &rep), SOCKS5_MORE);
	assert_int_equal(socks5_parse_reply(v4, sizeof v4, &used, &rep), SOCKS5_OK);
	assert_int_equal(used, sizeof v4);
	assert_int_equal(socks5_parse_reply(v6, sizeof v6, &used, &rep), SOCKS5_OK);
	for (size_t cut = 0; cut < sizeof name; cut++)
		assert_int_equal(socks5_parse_reply(name, cut, &used, &rep), SOCKS5_MORE);
	assert_int_equal(socks5_parse_reply(name, sizeof name, &used, &rep), SOCKS5_OK);
	assert_int_equal(socks5_parse_reply(refused, sizeof refused, &used, &rep), SOCKS5_E_REPLY);
	assert_int_equal(rep, 0xf0);
	assert_string_equal(socks5_rep_name(rep), "onion descriptor not found");
	memcpy(buf, v4, sizeof v4);
	buf[sizeof v4] = 'x';          /* bytes after the reply: not a tunnel we asked for */
	assert_int_equal(socks5_parse_reply(buf, sizeof v4 + 1, &used, &rep), SOCKS5_E_PROTOCOL);
	memcpy(buf, v4, sizeof v4);
	buf[0] = 4;
	assert_int_equal(socks5_parse_reply(buf, sizeof v4, &used, &rep), SOCKS5_E_PROTOCOL);
	memcpy(buf, v4, sizeof v4);
	buf[2] = 1;                    /* reserved */
	assert_int_equal(socks5_parse_reply(buf, sizeof v4, &used, &rep), SOCKS5_E_PROTOCOL);
	memcpy(buf, v4, sizeof v4);
	buf[3] = 2;                    /* no such ATYP */
	assert_int_equal(socks5_parse_reply(buf, sizeof v4, &used, &rep), SOCKS5_E_PROTOCOL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_method),
		cmocka_unit_test(test_reply),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
