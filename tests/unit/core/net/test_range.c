/*
 * test_range.c — Range header parsing: every accepted form, and every way a
 * value can be malformed, unsatisfiable, multiple (sorted, coalesced) or
 * too many, at the edges of the object length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/net/range.h"

#define MAX 16u

static range_span spans[RANGE_MAX_SPANS];
static size_t nspans;

static range_result rpm(const char *v, uint64_t len, size_t max)
{
	for (size_t i = 0; i < RANGE_MAX_SPANS; i++)
		spans[i] = (range_span){ 0xdeadbeef, 0xdeadbeef };
	nspans = 12345;
	return range_parse(v, v ? strlen(v) : 0, len, spans, max, &nspans);
}

static void expect_one(const char *v, uint64_t len, uint64_t s, uint64_t e)
{
	assert_int_equal(rpm(v, len, MAX), RANGE_ONE);
	assert_int_equal(nspans, 1);
	assert_int_equal(spans[0].start, s);
	assert_int_equal(spans[0].end, e);
}

static void expect_res(const char *v, uint64_t len, range_result want)
{
	assert_int_equal(rpm(v, len, MAX), want);
	if (want != RANGE_ONE && want != RANGE_MULTI)
		assert_int_equal(nspans, 0);
}

/* want: "S-E S-E ..." — the exact set, in order. */
static void expect_multi(const char *v, uint64_t len, size_t max, const char *want)
{
	char got[1024];
	size_t off = 0;

	assert_int_equal(rpm(v, len, max), RANGE_MULTI);
	assert_true(nspans >= 2);
	for (size_t i = 0; i < nspans; i++)
		off += (size_t)snprintf(got + off, sizeof got - off, "%s%llu-%llu", i ? " " : "",
		                        (unsigned long long)spans[i].start,
		                        (unsigned long long)spans[i].end);
	if (strcmp(got, want) != 0)
		fail_msg("'%s': got '%s', want '%s'", v, got, want);
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
		range_result r = rpm(bad[i], 100, MAX);

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
	expect_multi("bytes=0-1,5-6", 100, MAX, "0-1 5-6");
	expect_multi("bytes=0-1, -5", 100, MAX, "0-1 95-99");
	expect_multi("bytes=0-1,500-,8-9", 100, MAX, "0-1 8-9");   /* unsatisfiable dropped */
	expect_multi("bytes=90-,0-0", 100, MAX, "0-0 90-99");       /* sorted by start */
	expect_multi("bytes=50-59,10-19,30-39", 100, MAX, "10-19 30-39 50-59");
	expect_multi("bytes=0-0,2-2,4-4,6-6", 7, MAX, "0-0 2-2 4-4 6-6");
	expect_multi("bytes=0-1,3-4", 4, MAX, "0-1 3-3");           /* clamped */
	/* 65535 | 65536: a group edge is no reason to merge */
	expect_multi("bytes=0-65535,65537-", 200000, MAX, "0-65535 65537-199999");
}

static void test_coalesce(void **state)
{
	(void)state;
	expect_one("bytes=0-1,0-1", 100, 0, 1);                     /* duplicates */
	expect_one("bytes=0-1,2-3", 100, 0, 3);                     /* adjacent */
	expect_one("bytes=2-3,0-1", 100, 0, 3);                     /* adjacent, reversed */
	expect_one("bytes=0-9,5-19", 100, 0, 19);                   /* overlapping */
	expect_one("bytes=10-19,0-50,40-", 100, 0, 99);
	expect_one("bytes=0-,0-,0-,0-", 100, 0, 99);                /* the whole object 4× */
	expect_one("bytes=-10,90-95", 100, 90, 99);                 /* suffix covers it */
	expect_one("bytes=0-1,500-", 100, 0, 1);                    /* one satisfiable */
	expect_one("bytes=5-5,5-5,5-5,5-5,5-5,5-5,5-5,5-5", 100, 5, 5);
	expect_multi("bytes=0-4,3-9,20-29,25-26,11-19", 100, MAX, "0-9 11-29");
	expect_multi("bytes=0-0,1-1,3-3,4-4", 100, MAX, "0-1 3-4");
	expect_one("bytes=0-0,1-1,2-2", 3, 0, 2);
	expect_one("bytes=0-18446744073709551615,5-", UINT64_MAX, 0, UINT64_MAX - 1);
	expect_multi("bytes=0-0,-1", UINT64_MAX, MAX, "0-0 18446744073709551614-18446744073709551614");
}

static void test_unsatisfiable_sets(void **state)
{
	(void)state;
	expect_res("bytes=500-,600-", 100, RANGE_UNSATISFIABLE);
	expect_res("bytes=-0,100-", 100, RANGE_UNSATISFIABLE);
	expect_res("bytes=0-1,5-6", 0, RANGE_UNSATISFIABLE);       /* empty object */
}

/* More range-specs than max: refused as sent, before dropping or merging;
 * exactly max is served. Past max the syntax is still checked. */
static void test_too_many(void **state)
{
	static char big[40000];
	size_t off = 0;

	(void)state;
	expect_multi("bytes=0-0,2-2,4-4", 100, 3, "0-0 2-2 4-4");
	expect_multi("bytes=0-0,2-2,4-4,6-6", 100, 4, "0-0 2-2 4-4 6-6");
	assert_int_equal(rpm("bytes=0-0,2-2,4-4,6-6", 100, 3), RANGE_TOO_MANY);
	assert_int_equal(nspans, 0);
	assert_int_equal(rpm("bytes=0-0,0-0,0-0,0-0", 100, 3), RANGE_TOO_MANY);  /* even if they merge */
	assert_int_equal(rpm("bytes=500-,600-,700-,800-", 100, 3), RANGE_TOO_MANY);
	assert_int_equal(rpm("bytes=0-0,2-2,4-4,6-6,x", 100, 3), RANGE_MALFORMED);
	assert_int_equal(rpm("bytes=0-0,,,,2-2, ,4-4,", 100, 3), RANGE_MULTI);  /* empties don't count */
	assert_int_equal(rpm("bytes=0-0", 100, 1), RANGE_ONE);
	assert_int_equal(rpm("bytes=0-0,0-0", 100, 1), RANGE_TOO_MANY);
	assert_int_equal(rpm("bytes=0-0", 100, 0), RANGE_TOO_MANY);
	/* Thousands of tiny ranges in a header the HTTP cap would take. */
	off += (size_t)snprintf(big, sizeof big, "bytes=");
	for (unsigned i = 0; i < 3000; i++)
		off += (size_t)snprintf(big + off, sizeof big - off, "%u-%u,", i * 2, i * 2);
	assert_true(off < sizeof big - 1);
	assert_int_equal(rpm(big, 1u << 20, MAX), RANGE_TOO_MANY);
	assert_int_equal(rpm(big, 1u << 20, RANGE_MAX_SPANS), RANGE_TOO_MANY);
	assert_int_equal(rpm(big, 1u << 20, 100000), RANGE_TOO_MANY);  /* max clamped */
	/* RANGE_MAX_SPANS ranges, in descending order: all kept and sorted. */
	off = (size_t)snprintf(big, sizeof big, "bytes=");
	for (unsigned i = RANGE_MAX_SPANS; i > 0; i--)
		off += (size_t)snprintf(big + off, sizeof big - off, "%u-%u,", i * 3, i * 3 + 1);
	assert_int_equal(rpm(big, 100000, RANGE_MAX_SPANS), RANGE_MULTI);
	assert_int_equal(nspans, RANGE_MAX_SPANS);
	for (unsigned i = 0; i < RANGE_MAX_SPANS; i++) {
		assert_int_equal(spans[i].start, (i + 1) * 3);
		assert_int_equal(spans[i].end, (i + 1) * 3 + 1);
	}
}

static void test_length_bounded(void **state)
{
	char buf[16];
	range_span sp[2];
	size_t n;

	(void)state;
	/* The parser stops at vlen: bytes past it are never read. */
	memcpy(buf, "bytes=1-2XXXXXXX", 16);
	assert_int_equal(range_parse(buf, 9, 100, sp, 2, &n), RANGE_ONE);
	assert_int_equal(n, 1);
	assert_int_equal(sp[0].start, 1);
	assert_int_equal(sp[0].end, 2);
	assert_int_equal(range_parse(buf, 8, 100, sp, 2, &n), RANGE_ONE);  /* "bytes=1-" */
	assert_int_equal(sp[0].end, 99);
	assert_int_equal(range_parse(buf, 5, 100, sp, 2, &n), RANGE_MALFORMED);
	/* The caller's array is never written past max. */
	memcpy(buf, "bytes=1-1,3-3,5", 15);
	sp[1] = (range_span){ 7, 7 };
	assert_int_equal(range_parse(buf, 13, 100, sp, 1, &n), RANGE_TOO_MANY);
	assert_int_equal(n, 0);
	assert_int_equal(sp[1].start, 7);
	assert_int_equal(sp[1].end, 7);
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
		cmocka_unit_test(test_coalesce),
		cmocka_unit_test(test_unsatisfiable_sets),
		cmocka_unit_test(test_too_many),
		cmocka_unit_test(test_length_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
