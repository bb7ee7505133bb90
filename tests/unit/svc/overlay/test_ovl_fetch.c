/* ovl_fetch: the overlay's fetch coordinator, driven by fake ops on a real
 * event loop (no network, no DHT). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "svc/overlay/ovl_fetch.h"

#define MAXP 8

/* The script: providers the fake DHT returns, and each provider's result. */
static struct {
	struct event_base *base;
	int       find_status;
	ovl_provider prov[MAXP];
	size_t    nprov;
	ovl_try   result[MAXP];      /* by provider index (node_id[0]) */
	bool      hang;              /* fetch never answers */
	unsigned  finds, fetches, cancels, stored, failed[OVL_TRY_COUNT];
	unsigned  order[16];         /* node_id[0] of each provider tried */
	int       status[8];
	unsigned  nstatus, n503, n200;
	unsigned  ranged_fetches, drops, got_seen;
	ovl_span  last_span;
	void     *last_got;
} S;

typedef struct op {
	struct event *ev;
	ovl_found_fn  found;
	ovl_tried_fn  tried;
	void         *arg;
	ovl_try       result;
	bool          ranged;
} op;

static void on_op(evutil_socket_t fd, short what, void *arg)
{
	op *o = arg;
	(void)fd; (void)what;
	event_free(o->ev);
	if (o->found)
		o->found(o->arg, S.find_status, S.prov, S.nprov);
	else   /* a range attempt's OK hands over a result; the table owns it */
		o->tried(o->arg, o->result, 100,
		         o->ranged && o->result == OVL_TRY_OK ? malloc(1) : NULL);
	free(o);
}

static op *op_later(void)
{
	op *o = calloc(1, sizeof *o);
	o->ev = evtimer_new(S.base, on_op, o);
	struct timeval tv = { 0, 1000 };
	evtimer_add(o->ev, &tv);
	return o;
}

static void *fake_find(void *ctx, const uint8_t cid[OVL_ID_LEN], ovl_found_fn done, void *arg)
{
	(void)ctx; (void)cid;
	S.finds++;
	op *o = op_later();
	o->found = done;
	o->arg = arg;
	return o;
}

static void *fake_fetch(void *ctx, const uint8_t cid[OVL_ID_LEN], const ovl_span *span,
                        const ovl_provider *p, ovl_tried_fn done, void *arg)
{
	(void)ctx; (void)cid;
	S.order[S.fetches++ % 16] = p->node_id[0];
	op *o = op_later();
	if (span) {
		o->ranged = true;
		S.ranged_fetches++;
		S.last_span = *span;
	}
	o->tried = done;
	o->arg = arg;
	o->result = S.result[p->node_id[0]];
	if (S.hang)
		evtimer_del(o->ev);
	return o;
}

static void fake_cancel(void *ctx, void *handle)
{
	op *o = handle;
	(void)ctx;
	S.cancels++;
	event_free(o->ev);
	free(o);
}

static void fake_stored(void *ctx, const uint8_t cid[OVL_ID_LEN], uint64_t bytes)
{
	(void)ctx; (void)cid; (void)bytes;
	S.stored++;
}

static void fake_failed(void *ctx, const ovl_provider *p, ovl_try why)
{
	(void)ctx; (void)p;
	S.failed[why]++;
}

static void fake_drop(void *ctx, void *got)
{
	(void)ctx;
	assert_ptr_equal(got, S.last_got);   /* the one every waiter saw */
	S.drops++;
	free(got);
}

static const ovl_ops OPS = {
	.find = fake_find, .fetch = fake_fetch, .cancel = fake_cancel, .drop = fake_drop,
	.stored = fake_stored, .failed = fake_failed,
};
static const uint8_t SELF[OVL_ID_LEN] = { 0xee };

static void on_done(void *arg, int status, uint64_t len, const void *got)
{
	(void)arg;
	assert_int_equal(len, status == 200 ? 100 : 0);
	if (got) {
		assert_int_equal(status, 200);
		S.last_got = (void *)(uintptr_t)got;
		S.got_seen++;
	}
	S.status[S.nstatus++ % 8] = status;
	S.n503 += status == 503;
	S.n200 += status == 200;
}

static void add_provider(uint8_t id, ovl_try result)
{
	memset(&S.prov[S.nprov], 0, sizeof S.prov[0]);
	S.prov[S.nprov].node_id[0] = id;
	snprintf(S.prov[S.nprov].addr, OVL_ADDR_MAX, "127.0.0.1:%u", 1000u + id);
	S.result[id] = result;
	S.nprov++;
}

static int setup(void **st)
{
	(void)st;
	memset(&S, 0, sizeof S);
	S.base = event_base_new();
	S.find_status = 200;
	return S.base ? 0 : -1;
}

static int teardown(void **st)
{
	(void)st;
	event_base_free(S.base);
	return 0;
}

static void run(void)
{
	event_base_dispatch(S.base);
}

static void test_concurrent_misses_share_one_fetch(void **st)
{
	uint8_t cid[OVL_ID_LEN] = { 1 };
	(void)st;
	add_provider(1, OVL_TRY_OK);
	ovl_table *t = ovl_table_new(S.base, &OPS, NULL, SELF, 5000);
	assert_non_null(ovl_request(t, cid, on_done, NULL));
	assert_non_null(ovl_request(t, cid, on_done, NULL));
	assert_int_equal(S.nstatus, 0);   /* never inside the call */
	assert_int_equal(ovl_table_active(t), 1);
	run();
	assert_int_equal(S.finds, 1);
	assert_int_equal(S.fetches, 1);
	assert_int_equal(S.stored, 1);
	assert_int_equal(S.nstatus, 2);
	assert_int_equal(S.status[0], 200);
	assert_int_equal(S.status[1], 200);
	assert_int_equal(ovl_table_active(t), 0);
	ovl_table_free(t);
}

static void test_bad_provider_is_skipped_and_scored(void **st)
{
	uint8_t cid[OVL_ID_LEN] = { 2 };
	(void)st;
	add_provider(1, OVL_TRY_BAD_BYTES);
	add_provider(2, OVL_TRY_OK);
	ovl_table *t = ovl_table_new(S.base, &OPS, NULL, SELF, 5000);
	ovl_request(t, cid, on_done, NULL);
	run();
	assert_int_equal(S.status[0], 200);
	assert_int_equal(S.failed[OVL_TRY_BAD_BYTES], 1);
	assert_int_equal(S.order[0], 1);
	assert_int_equal(S.order[1], 2);
	uint8_t p1[OVL_ID_LEN] = { 1 }, p2[OVL_ID_LEN] = { 2 };
	assert_int_equal(ovl_peer_score(t, p1), OVL_PENALTY_BAD);
	assert_int_equal(ovl_peer_score(t, p2), 0);
	/* next time the bad peer goes last */
	S.fetches = 0;
	cid[1] = 1;
	ovl_request(t, cid, on_done, NULL);
	run();
	assert_int_equal(S.order[0], 2);
	ovl_table_free(t);
}

static void test_outcomes_map_to_statuses(void **st)
{
	uint8_t cid[OVL_ID_LEN] = { 3 };
	(void)st;
	ovl_table *t = ovl_table_new(S.base, &OPS, NULL, SELF, 5000);
	/* no provider at all, or only ourselves: 404 */
	ovl_request(t, cid, on_done, NULL);
	run();
	assert_int_equal(S.status[0], 404);
	memset(&S.prov[0], 0, sizeof S.prov[0]);
	memcpy(S.prov[0].node_id, SELF, OVL_ID_LEN);
	S.nprov = 1;
	ovl_request(t, cid, on_done, NULL);
	run();
	assert_int_equal(S.status[1], 404);
	assert_int_equal(S.fetches, 0);
	/* only stalls: 504; a wrong answer among them: 502 */
	S.nprov = 0;
	add_provider(4, OVL_TRY_STALLED);
	ovl_request(t, cid, on_done, NULL);
	run();
	assert_int_equal(S.status[2], 504);
	add_provider(5, OVL_TRY_CONNECT);
	ovl_request(t, cid, on_done, NULL);
	run();
	assert_int_equal(S.status[3], 502);
	/* the DHT itself unavailable: 503 */
	S.find_status = 503;
	ovl_request(t, cid, on_done, NULL);
	run();
	assert_int_equal(S.status[4], 503);
	ovl_table_free(t);
}

static void test_deadline_cancels_the_running_attempt(void **st)
{
	uint8_t cid[OVL_ID_LEN] = { 4 };
	(void)st;
	add_provider(1, OVL_TRY_OK);
	S.hang = true;
	ovl_table *t = ovl_table_new(S.base, &OPS, NULL, SELF, 50);
	ovl_request(t, cid, on_done, NULL);
	run();
	assert_int_equal(S.nstatus, 1);
	assert_int_equal(S.status[0], 504);
	assert_int_equal(S.cancels, 1);
	assert_int_equal(S.stored, 0);
	ovl_table_free(t);
}

static void test_bounds_refuse_from_the_loop(void **st)
{
	uint8_t cid[OVL_ID_LEN] = { 5 };
	(void)st;
	add_provider(1, OVL_TRY_OK);
	ovl_table *t = ovl_table_new(S.base, &OPS, NULL, SELF, 5000);
	for (unsigned i = 0; i < OVL_MAX_FETCHES; i++) {
		cid[1] = (uint8_t)i;
		assert_non_null(ovl_request(t, cid, on_done, NULL));
	}
	cid[1] = 0xff;
	assert_null(ovl_request(t, cid, on_done, NULL));
	assert_int_equal(S.nstatus, 0);
	assert_int_equal(ovl_table_active(t), OVL_MAX_FETCHES);
	run();
	assert_int_equal(S.nstatus, OVL_MAX_FETCHES + 1);
	assert_int_equal(S.n503, 1);
	assert_int_equal(S.n200, OVL_MAX_FETCHES);
	ovl_table_free(t);
}

static void test_cancelled_waiter_is_not_called(void **st)
{
	uint8_t cid[OVL_ID_LEN] = { 6 };
	(void)st;
	add_provider(1, OVL_TRY_OK);
	ovl_table *t = ovl_table_new(S.base, &OPS, NULL, SELF, 5000);
	ovl_waiter *w = ovl_request(t, cid, on_done, NULL);
	ovl_waiter_cancel(w);     /* still finding: the fetch stops */
	assert_int_equal(ovl_table_active(t), 0);
	assert_int_equal(S.cancels, 1);
	run();
	assert_int_equal(S.nstatus, 0);
	ovl_table_free(t);
}

static void test_range_fetches_share_by_span_and_store_nothing(void **st)
{
	uint8_t cid[OVL_ID_LEN] = { 7 };
	ovl_span a = { 65536, 131071 }, b = { 0, 65535 };
	(void)st;
	add_provider(1, OVL_TRY_OK);
	ovl_table *t = ovl_table_new(S.base, &OPS, NULL, SELF, 5000);
	assert_non_null(ovl_request_range(t, cid, &a, on_done, NULL));
	assert_non_null(ovl_request_range(t, cid, &a, on_done, NULL));   /* shares */
	assert_non_null(ovl_request_range(t, cid, &b, on_done, NULL));   /* another span */
	assert_non_null(ovl_request(t, cid, on_done, NULL));             /* the whole: another */
	assert_int_equal(ovl_table_active(t), 3);
	run();
	assert_int_equal(S.nstatus, 4);
	assert_int_equal(S.n200, 4);
	assert_int_equal(S.fetches, 3);
	assert_int_equal(S.ranged_fetches, 2);
	assert_int_equal(S.stored, 1);      /* only the whole fetch stores */
	assert_int_equal(S.got_seen, 3);    /* each range waiter had a result */
	assert_int_equal(S.drops, 2);       /* each range result freed once */
	ovl_table_free(t);
}

static void test_range_without_range_support_is_501_unpenalised(void **st)
{
	uint8_t cid[OVL_ID_LEN] = { 8 }, p1[OVL_ID_LEN] = { 1 };
	ovl_span a = { 0, 65535 };
	(void)st;
	add_provider(1, OVL_TRY_NO_RANGE);
	ovl_table *t = ovl_table_new(S.base, &OPS, NULL, SELF, 5000);
	ovl_request_range(t, cid, &a, on_done, NULL);
	run();
	assert_int_equal(S.status[0], 501);
	assert_int_equal(S.failed[OVL_TRY_NO_RANGE], 1);
	assert_int_equal(ovl_peer_score(t, p1), 0);
	assert_int_equal(S.drops, 0);
	/* another provider that serves it: 200 */
	add_provider(2, OVL_TRY_OK);
	ovl_request_range(t, cid, &a, on_done, NULL);
	run();
	assert_int_equal(S.status[1], 200);
	assert_int_equal(S.drops, 1);
	/* a liar beside a provider without ranges: still 501 (the whole may work) */
	S.result[2] = OVL_TRY_BAD_BYTES;
	ovl_request_range(t, cid, &a, on_done, NULL);
	run();
	assert_int_equal(S.status[2], 501);
	ovl_table_free(t);
}

static void test_range_nobody_waiting_stops_and_bound(void **st)
{
	uint8_t cid[OVL_ID_LEN] = { 9 };
	ovl_span a = { 0, 65535 };
	(void)st;
	add_provider(1, OVL_TRY_OK);
	S.hang = true;
	ovl_table *t = ovl_table_new(S.base, &OPS, NULL, SELF, 5000);
	ovl_waiter *w = ovl_request_range(t, cid, &a, on_done, NULL);
	event_base_loop(S.base, EVLOOP_ONCE);   /* found: now trying */
	assert_int_equal(S.ranged_fetches, 1);
	ovl_waiter_cancel(w);   /* a range fills no cache: it stops */
	assert_int_equal(ovl_table_active(t), 0);
	assert_int_equal(S.cancels, 1);
	/* at most OVL_MAX_RANGE_FETCHES at once; a whole fetch still starts */
	for (unsigned i = 0; i < OVL_MAX_RANGE_FETCHES; i++) {
		cid[1] = (uint8_t)i;
		assert_non_null(ovl_request_range(t, cid, &a, on_done, NULL));
	}
	cid[1] = 0xff;
	assert_null(ovl_request_range(t, cid, &a, on_done, NULL));
	assert_non_null(ovl_request(t, cid, on_done, NULL));
	assert_int_equal(ovl_table_active(t), OVL_MAX_RANGE_FETCHES + 1);
	event_base_loop(S.base, EVLOOP_NONBLOCK);
	assert_int_equal(S.n503, 1);
	ovl_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_concurrent_misses_share_one_fetch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_provider_is_skipped_and_scored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outcomes_map_to_statuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_cancels_the_running_attempt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds_refuse_from_the_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancelled_waiter_is_not_called, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_fetches_share_by_span_and_store_nothing,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_without_range_support_is_501_unpenalised,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_nobody_waiting_stops_and_bound, setup,
		                                teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
