/*
 * test_sniff.c — libmagic off the loop (svc/gateway/sniff.c): the answer
 * comes back on the loop, the pool refuses past its bound at once (the
 * caller's octet-stream fallback), a cancelled job's callback never runs,
 * and closing the pool hands every job left its callback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <event2/event.h>

#include "svc/gateway/sniff.h"

static const uint8_t PNG[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13,
                               'I', 'H', 'D', 'R', 0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0 };

typedef struct seen {
	int  calls;
	char ctype[MEDIATYPE_MAX];
} seen;

static void on_sniffed(const char *ctype, void *arg)
{
	seen *s = arg;

	s->calls++;
	memcpy(s->ctype, ctype, strlen(ctype) + 1);
}

/* Run the loop until *calls reaches want (each pass waits at most 50 ms). */
static void loop_until(struct event_base *base, const int *calls, int want)
{
	struct timeval tv = { 0, 50000 };

	for (int i = 0; i < 200 && *calls < want; i++) {
		(void)event_base_loopexit(base, &tv);
		(void)event_base_dispatch(base);
	}
}

static void test_answer_and_bound(void **state)
{
	struct event_base *base = event_base_new();
	sniffq *q = sniffq_new(1);
	seen a = { 0 }, b = { 0 };

	(void)state;
	if (!q) {
		event_base_free(base);
		skip();   /* no libmagic database on this machine */
	}
	assert_null(sniffq_submit(q, PNG, sizeof PNG, on_sniffed, &a));   /* not started */
	assert_int_equal(sniffq_start(q, base, 1), 0);
	assert_non_null(sniffq_submit(q, PNG, sizeof PNG, on_sniffed, &a));
	/* one job in the pool: the next is refused at once, never queued */
	assert_null(sniffq_submit(q, PNG, sizeof PNG, on_sniffed, &b));
	assert_null(sniffq_submit(q, PNG, 0, on_sniffed, &b));
	loop_until(base, &a.calls, 1);
	assert_int_equal(a.calls, 1);
	assert_string_equal(a.ctype, "image/png");
	/* its slot is free again once the callback ran */
	assert_non_null(sniffq_submit(q, (const uint8_t *)"\x01\x02\x03\x04", 4, on_sniffed, &b));
	loop_until(base, &b.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_string_equal(b.ctype, "");   /* no answer: the caller serves octet-stream */
	sniffq_free(q);
	event_base_free(base);
}

static void test_cancel_and_close(void **state)
{
	struct event_base *base = event_base_new();
	sniffq *q = sniffq_new(1);
	seen a = { 0 }, b = { 0 };
	sniff_job *j;

	(void)state;
	if (!q) {
		event_base_free(base);
		skip();
	}
	assert_int_equal(sniffq_start(q, base, 4), 0);
	assert_non_null(j = sniffq_submit(q, PNG, sizeof PNG, on_sniffed, &a));
	sniff_job_cancel(j);
	assert_non_null(sniffq_submit(q, PNG, sizeof PNG, on_sniffed, &b));
	loop_until(base, &b.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_int_equal(a.calls, 0);   /* cancelled: never called */
	/* closing: a job still in the pool gets its callback (ran or not) */
	assert_non_null(sniffq_submit(q, PNG, sizeof PNG, on_sniffed, &a));
	sniffq_free(q);
	assert_int_equal(a.calls, 1);
	sniffq_free(NULL);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answer_and_bound),
		cmocka_unit_test(test_cancel_and_close),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
