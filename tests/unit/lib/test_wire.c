/* wire: bounded big-endian readers/writers for internal messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "lib/wire.h"

static void test_roundtrip(void **st)
{
	uint8_t buf[128];
	wire_w w;
	(void)st;
	wire_w_init(&w, buf, sizeof buf);
	wire_put_u8(&w, 0xab);
	wire_put_u16(&w, 0x1234);
	wire_put_u32(&w, 0xdeadbeef);
	wire_put_u64(&w, 0x0102030405060708ull);
	wire_put_raw(&w, "xyz", 3);
	wire_put_blob(&w, "blob", 4);
	wire_put_str(&w, "storage");
	wire_put_u8(&w, 1);
	assert_int_equal(wire_w_ok(&w), 0);
	assert_int_equal(w.len, 1 + 2 + 4 + 8 + 3 + 4 + 4 + 2 + 7 + 1);
	/* big-endian on the wire */
	assert_int_equal(buf[1], 0x12);
	assert_int_equal(buf[2], 0x34);
	assert_int_equal(buf[3], 0xde);

	wire_r r;
	char raw[3], s[16];
	const uint8_t *bp;
	size_t bn;
	wire_r_init(&r, buf, w.len);
	assert_int_equal(wire_get_u8(&r), 0xab);
	assert_int_equal(wire_get_u16(&r), 0x1234);
	assert_int_equal(wire_get_u32(&r), 0xdeadbeef);
	assert_true(wire_get_u64(&r) == 0x0102030405060708ull);
	wire_get_raw(&r, raw, 3);
	assert_memory_equal(raw, "xyz", 3);
	wire_get_blob(&r, &bp, &bn, 16);
	assert_int_equal(bn, 4);
	assert_memory_equal(bp, "blob", 4);
	wire_get_str(&r, s, sizeof s);
	assert_string_equal(s, "storage");
	assert_true(wire_get_bool(&r));
	assert_int_equal(wire_end(&r), 0);
}

static void test_writer_overflow_is_sticky(void **st)
{
	uint8_t buf[5];
	wire_w w;
	(void)st;
	wire_w_init(&w, buf, sizeof buf);
	wire_put_u32(&w, 1);
	wire_put_u16(&w, 2);          /* does not fit */
	wire_put_u8(&w, 3);           /* would fit, but the message is already broken */
	assert_int_equal(wire_w_ok(&w), -1);
	assert_int_equal(w.len, 4);
}

static void test_reader_short_and_leftover(void **st)
{
	static const uint8_t m[] = { 0, 0, 0, 9, 'a', 'b' };
	wire_r r;
	const uint8_t *bp;
	size_t bn;
	(void)st;
	/* blob length 9 past the end */
	wire_r_init(&r, m, sizeof m);
	wire_get_blob(&r, &bp, &bn, 64);
	assert_null(bp);
	assert_int_equal(bn, 0);
	assert_int_equal(wire_end(&r), -1);
	/* blob over its bound */
	wire_r_init(&r, m, sizeof m);
	wire_get_blob(&r, &bp, &bn, 8);
	assert_int_equal(wire_end(&r), -1);
	/* bytes left over */
	wire_r_init(&r, m, sizeof m);
	(void)wire_get_u32(&r);
	assert_int_equal(wire_end(&r), -1);
	/* reading past the end yields 0 and stays bad */
	wire_r_init(&r, m, 2);
	assert_int_equal(wire_get_u32(&r), 0);
	assert_int_equal(wire_get_u8(&r), 0);
	assert_int_equal(wire_end(&r), -1);
}

static void test_strings_bounded(void **st)
{
	uint8_t buf[32];
	char out[4];
	wire_w w;
	wire_r r;
	(void)st;
	wire_w_init(&w, buf, sizeof buf);
	wire_put_str(&w, "abcd");             /* 4 bytes: needs out[5] */
	assert_int_equal(wire_w_ok(&w), 0);
	wire_r_init(&r, buf, w.len);
	wire_get_str(&r, out, sizeof out);
	assert_string_equal(out, "");
	assert_int_equal(wire_end(&r), -1);
	/* an embedded NUL is refused */
	static const uint8_t nul[] = { 0, 2, 'a', 0 };
	char big[8];
	wire_r_init(&r, nul, sizeof nul);
	wire_get_str(&r, big, sizeof big);
	assert_int_equal(wire_end(&r), -1);
	assert_string_equal(big, "");
	/* a bool that is neither 0 nor 1 */
	static const uint8_t two[] = { 2 };
	wire_r_init(&r, two, 1);
	(void)wire_get_bool(&r);
	assert_int_equal(wire_end(&r), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_writer_overflow_is_sticky),
		cmocka_unit_test(test_reader_short_and_leftover),
		cmocka_unit_test(test_strings_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
