/* Restart backoff schedule and crash-loop window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/backoff.h"

static void test_first_delay_in_jitter_range(void **st)
{
	(void)st;
	assert_int_equal(backoff_delay_ms(0, 0), 100);
	assert_int_equal(backoff_delay_ms(0, 400), 500);
	assert_int_equal(backoff_delay_ms(0, 401), 100); /* wraps within the span */
	for (uint32_t r = 0; r < 5000; r += 7) {
		uint32_t d = backoff_delay_ms(0, r * 2654435761u);
		assert_in_range(d, 100, 500);
	}
}

static void test_doubles_to_cap(void **st)
{
	(void)st;
	assert_int_equal(backoff_delay_ms(1, 0), 200);
	assert_int_equal(backoff_delay_ms(2, 0), 400);
	assert_int_equal(backoff_delay_ms(3, 0), 800);
	assert_int_equal(backoff_delay_ms(5, 0), 3200);
	assert_int_equal(backoff_delay_ms(6, 0), 5000);
	assert_int_equal(backoff_delay_ms(3, 400), 4000);
	assert_int_equal(backoff_delay_ms(4, 400), 5000);
	assert_int_equal(backoff_delay_ms(1000, 123), 5000); /* no overflow */
}

static void test_crashloop_window(void **st)
{
	crashwin w = { 0 };
	(void)st;
	assert_false(crashwin_record(&w, 1000));
	assert_false(crashwin_record(&w, 2000));
	assert_false(crashwin_record(&w, 3000));
	assert_false(crashwin_record(&w, 4000));
	assert_true(crashwin_record(&w, 61000));   /* 5 within 60 s of the first */
	assert_false(crashwin_is_looping(&w, 61001)); /* oldest now 1000 → 60001 ms ago */
	crashwin v = { 0 };
	for (int i = 0; i < 4; i++)
		assert_false(crashwin_record(&v, (uint64_t)i * 20000));
	assert_false(crashwin_record(&v, 80000)); /* 0..80 s: not a loop */
	assert_false(crashwin_record(&v, 81000)); /* 20..81 s: 61 s, not a loop */
	assert_true(crashwin_record(&v, 90000));  /* 40..90 s: 5 exits in 50 s */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_delay_in_jitter_range),
		cmocka_unit_test(test_doubles_to_cap),
		cmocka_unit_test(test_crashloop_window),
	};
	return cmocka_run_group_tests_name("backoff", tests, NULL, NULL);
}
