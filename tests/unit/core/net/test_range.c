/*
 * test_range.c — Range header parsing: every accepted form, and every way a
 * value can be malformed, unsatisfiable or multiple, at the edges of the
 * object length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/net/range.h"

static range_result rp(const char *v, uint64_t len, uint64_t *s, uint64_t *e)
{
	*s = *e = 0xdeadbeef;
	return range_parse(v, v ? strlen(v) : 0, len, s, e);
}

static void expect_one(const char *v, uint64_t len, uint64_t s, uint64_t e)
{
	uint64_t gs, ge;

	assert_int_equal(rp(v, len, &gs, &ge), RANGE_ONE);
	assert_int_equal(gs, s);
	assert_int_equal(ge, e);
}

static void expect_res(const char *v, uint64_t len, range_result want)
{
	uint64_t gs, ge;

	assert_int_equal(rp(v, len, &gs, &ge), want);
}

static void test_forms(void **state)
{
	(void)state;
	expect_res(NULL, 100, RANGE_NONE);
	expect_one("bytes=0-0", 100, 0, 0);
	expect_one("bytes=0-99", 100, 0, 99);
	expect_one("bytes=10-19", 100, 10, 19);
	expect_one("bytes=10-", 100, 10, 99);
	expect_one("bytes=-10", 100, 90, 99);
	expect_one("bytes=-1", 100, 99, 99);
	expect_one("bytes=99-99", 100, 99, 99);
	expect_one("BYTES=1-2", 100, 1, 2);          /* unit is case-insensitive */
	expect_one("Bytes=-100", 100, 0, 99);
}

static void test_clamping(void **state)
{
	(void)state;
	expect_one("bytes=0-1000", 100, 0, 99);       /* last-pos past the end */
	expect_one("bytes=50-100", 100, 50, 99);
	expect_one("bytes=-1000", 100, 0, 99);        /* suffix longer than the object */
	expect_one("bytes=-101", 100, 0, 99);
	expect_one("bytes=0-18446744073709551615", 100, 0, 99);
	expect_one("bytes=5-99999999999999999999999999999", 100, 5, 99);  /* saturates */
	expect_one("bytes=-99999999999999999999999999999", 100, 0, 99);
	expect_one("bytes=0-", UINT64_MAX, 0, UINT64_MAX - 1);
	expect_one("bytes=-1", UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - 1);
}

static void test_unsatisfiable(void **state)
{
	(void)state;
	expect_res("bytes=100-", 100, RANGE_UNSATISFIABLE);   /* S == len */
	expect_res("bytes=100-200", 100, RANGE_UNSATISFIABLE);
	expect_res("bytes=1000-", 100, RANGE_UNSATISFIABLE);
	expect_res("bytes=-0", 100, RANGE_UNSATISFIABLE);
	expect_res("bytes=-000", 100, RANGE_UNSATISFIABLE);
	expect_res("bytes=99999999999999999999999-", 100, RANGE_UNSATISFIABLE);
	expect_res("bytes=18446744073709551615-", UINT64_MAX, RANGE_UNSATISFIABLE);
}

static void test_empty_object(void **state)
{
	(void)state;
	expect_res("bytes=0-0", 0, RANGE_UNSATISFIABLE);
	expect_res("bytes=0-", 0, RANGE_UNSATISFIABLE);
	expect_res("bytes=-1", 0, RANGE_UNSATISFIABLE);
	expect_res("bytes=-0", 0, RANGE_UNSATISFIABLE);
	expect_res("bytes=x", 0, RANGE_MALFORMED);
	expect_res(NULL, 0, RANGE_NONE);
}

static void test_malformed(void **state)
{
	static const char *bad[] = {
		"", "bytes", "bytes=", "bytes=,", "bytes= , ,", "bytes=-", "bytes=--1",
		"bytes=1", "bytes=a-b", "bytes=1-a", "bytes=0x1-2", "bytes=+1-2",
		"bytes=1-2-3", "bytes=5-4", "bytes=1 - 2", "bytes =1-2", "bytes:1-2",
		"items=0-1", "byte=0-1", "bytesx=0-1", "bytes=1-2;", "bytes=-1-2",
		"bytes=0-1,x", "bytes=x,0-1", "bytes=0-1,2-1", ("bytes=\x01" "0-1"),
		"bytes=0-1\n", "bytes=1-2 3",
	};

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint64_t s, e;
		range_result r = rp(bad[i], 100, &s, &e);

		if (r != RANGE_MALFORMED)
			fail_msg("'%s' gave %d", bad[i], (int)r);
	}
}

static void test_whitespace_and_empty_elements(void **state)
{
	(void)state;
	expect_one("bytes= 1-2", 100, 1, 2);
	expect_one("bytes=1-2 ", 100, 1, 2);
	expect_one("bytes=\t1-2\t", 100, 1, 2);
	expect_one("bytes=1-2,", 100, 1, 2);
	expect_one("bytes=, 1-2 ,,", 100, 1, 2);
}

static void test_multi(void **state)
{
	(void)state;
	expect_res("bytes=0-1,5-6", 100, RANGE_MULTI);
	expect_res("bytes=0-1, -5", 100, RANGE_MULTI);
	expect_res("bytes=0-1,0-1", 100, RANGE_MULTI);
	expect_res("bytes=0-1,500-", 100, RANGE_MULTI);        /* even if one is unsatisfiable */
	expect_res("bytes=500-,600-", 100, RANGE_MULTI);
	expect_res("bytes=0-1,5-6", 0, RANGE_MULTI);
}

static void test_length_bounded(void **state)
{
	char buf[16];
	uint64_t s, e;

	(void)state;
	/* The parser stops at vlen: bytes past it are never read. */
	memcpy(buf, "bytes=1-2XXXXXXX", 16);
	assert_int_equal(range_parse(buf, 9, 100, &s, &e), RANGE_ONE);
	assert_int_equal(s, 1);
	assert_int_equal(e, 2);
	assert_int_equal(range_parse(buf, 8, 100, &s, &e), RANGE_ONE);  /* "bytes=1-" */
	assert_int_equal(e, 99);
	assert_int_equal(range_parse(buf, 5, 100, &s, &e), RANGE_MALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_clamping),
		cmocka_unit_test(test_unsatisfiable),
		cmocka_unit_test(test_empty_object),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_whitespace_and_empty_elements),
		cmocka_unit_test(test_multi),
		cmocka_unit_test(test_length_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
