/*
 * test_tbucket.c — token bucket: burst, refill, clock edge cases, Retry-After.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "lib/tbucket.h"

static void test_burst_then_empty(void **state)
{
	tbucket b;

	(void)state;
	tbucket_init(&b, 10, 3, 1000);
	assert_true(tbucket_take(&b, 1, 1000));
	assert_true(tbucket_take(&b, 1, 1000));
	assert_true(tbucket_take(&b, 1, 1000));
	assert_false(tbucket_take(&b, 1, 1000));
	/* a refused take takes nothing */
	assert_false(tbucket_take(&b, 1, 1000));
}

static void test_refill_rate(void **state)
{
	tbucket b;

	(void)state;
	tbucket_init(&b, 10, 5, 0);
	assert_true(tbucket_take(&b, 5, 0));
	assert_false(tbucket_take(&b, 1, 50));  /* 0.5 token */
	assert_true(tbucket_take(&b, 1, 100));  /* 1 token at 100 ms */
	assert_false(tbucket_take(&b, 1, 100));
	/* refill is capped at burst */
	assert_true(tbucket_take(&b, 5, 100000));
	assert_false(tbucket_take(&b, 0.5, 100000));
}

static void test_clock_backwards(void **state)
{
	tbucket b;

	(void)state;
	tbucket_init(&b, 1000, 1, 5000);
	assert_true(tbucket_take(&b, 1, 5000));
	/* going back in time must not mint tokens, nor poison later refills */
	assert_false(tbucket_take(&b, 1, 1000));
	assert_false(tbucket_take(&b, 1, 5000));
	assert_true(tbucket_take(&b, 1, 5001));
}

static void test_nonpositive_and_nan(void **state)
{
	tbucket b;

	(void)state;
	tbucket_init(&b, -5, NAN, 0);
	assert_true(b.rate == 0 && b.burst == 0);
	assert_true(tbucket_take(&b, 0, 0));
	assert_true(tbucket_take(&b, -1, 0));
	assert_false(tbucket_take(&b, 1, 1000000));
	assert_int_equal(tbucket_retry_after_s(&b, 1, 0), TBUCKET_RETRY_MAX_S);
}

static void test_retry_after(void **state)
{
	tbucket b;

	(void)state;
	tbucket_init(&b, 2, 2, 0);
	/* tokens available → at least 1 */
	assert_int_equal(tbucket_retry_after_s(&b, 1, 0), 1);
	assert_true(tbucket_take(&b, 2, 0));
	/* 1 token at 2/s = 0.5 s → ceil → 1 */
	assert_int_equal(tbucket_retry_after_s(&b, 1, 0), 1);
	/* 2 tokens = 1 s exactly */
	assert_int_equal(tbucket_retry_after_s(&b, 2, 0), 1);

	tbucket_init(&b, 0.25, 3, 0);
	assert_true(tbucket_take(&b, 3, 0));
	/* 1 token at 0.25/s = 4 s; after 1 s, 3 s remain */
	assert_int_equal(tbucket_retry_after_s(&b, 1, 0), 4);
	assert_int_equal(tbucket_retry_after_s(&b, 1, 1000), 3);
	assert_int_equal(tbucket_retry_after_s(&b, 1, 1001), 3);
	/* retry_after does not consume */
	assert_true(tbucket_take(&b, 1, 4000));
	/* more than burst can never be satisfied: bounded answer */
	assert_int_equal(tbucket_retry_after_s(&b, 4, 4000), TBUCKET_RETRY_MAX_S);
}

static void test_retry_after_cap(void **state)
{
	tbucket b;

	(void)state;
	tbucket_init(&b, 0.0001, 1, 0);
	assert_true(tbucket_take(&b, 1, 0));
	assert_int_equal(tbucket_retry_after_s(&b, 1, 0), TBUCKET_RETRY_MAX_S);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_empty),
		cmocka_unit_test(test_refill_rate),
		cmocka_unit_test(test_clock_backwards),
		cmocka_unit_test(test_nonpositive_and_nan),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_retry_after_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
