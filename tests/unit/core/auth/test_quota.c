/*
 * test_quota.c — per-tenant quotas: request bucket arithmetic and exact
 * Retry-After values, the token Rate caveat (lowers, never raises), the byte
 * bucket and its debt, refusals that charge nothing, unlimited caps, tenant
 * independence, the bounded table and its LRU eviction, live limit reloads,
 * a clock that steps back, and keys longer than QUOTA_MAX_KEY; then the
 * table shared by processes: two handles on one area, a fork()ed child
 * charging the parent's buckets, a holder that dies with a group's lock
 * (before or while another process waits for it), and areas quota_open
 * refuses.
 *
 * The clock is passed in, so every test steps it by hand and asserts exact
 * outcomes. Eviction tests use a table of QUOTA_PROBE slots: every window
 * then covers the whole table, so the victim (the least recently charged
 * tenant) does not depend on the table's random hash key.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/auth/quota.h"
#include "core/auth/quota_test.h"

#define T0 1000000u   /* arbitrary non-zero start of the monotonic clock */

/* ---- helpers ------------------------------------------------------------- */

static quota_limits limits(uint32_t rps, uint32_t burst, uint64_t bps, uint64_t bburst,
                           uint32_t max_tenants)
{
	quota_limits l = { .rps = rps, .burst = burst, .bytes_per_s = bps,
	                   .bytes_burst = bburst, .max_tenants = max_tenants };

	return l;
}

static quota_table *table(uint32_t rps, uint32_t burst, uint64_t bps, uint64_t bburst)
{
	quota_limits l = limits(rps, burst, bps, bburst, 64);
	quota_table *q = quota_new(&l, T0);

	assert_non_null(q);
	return q;
}

/* A charge with no Rate caveat. */
static quota_result ch(quota_table *q, const char *key, uint64_t bytes, uint64_t now)
{
	return quota_charge(q, key, bytes, 0, 0, now, NULL);
}

/* A charge that is expected to be refused with `want`; returns Retry-After. */
static unsigned refused(quota_table *q, const char *key, uint64_t bytes, uint64_t rate,
                        uint64_t rburst, uint64_t now, quota_result want)
{
	unsigned ra = 0;

	assert_int_equal(quota_charge(q, key, bytes, rate, rburst, now, &ra), want);
	assert_true(ra >= 1);
	return ra;
}

static void key_n(char *buf, size_t len, unsigned i)
{
	snprintf(buf, len, "t:tenant-%u", i);
}

/* ---- names --------------------------------------------------------------- */

static void result_names(void **st)
{
	(void)st;
	assert_string_equal(quota_result_name(QUOTA_OK), "ok");
	assert_string_equal(quota_result_name(QUOTA_REQUESTS), "requests");
	assert_string_equal(quota_result_name(QUOTA_BYTES), "bytes");
}

/* ---- request bucket ------------------------------------------------------ */

static void requests_burst_then_refuse(void **st)
{
	quota_table *q = table(2, 4, 0, 1);

	(void)st;
	for (int i = 0; i < 4; i++)
		assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_OK);
	/* Empty bucket at 2/s: one token is 0.5 s away, rounded up to 1. */
	assert_int_equal(refused(q, "t:a", 0, 0, 0, T0, QUOTA_REQUESTS), 1);
	assert_int_equal(ch(q, "t:a", 0, T0 + 499), QUOTA_REQUESTS);
	assert_int_equal(ch(q, "t:a", 0, T0 + 500), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 0, T0 + 500), QUOTA_REQUESTS);
	/* One more second at 2/s: exactly two tokens. */
	assert_int_equal(ch(q, "t:a", 0, T0 + 1500), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 0, T0 + 1500), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 0, T0 + 1500), QUOTA_REQUESTS);
	/* A NULL retry_after_s is allowed on refusal. */
	assert_int_equal(quota_charge(q, "t:a", 0, 0, 0, T0 + 1500, NULL), QUOTA_REQUESTS);
	quota_free(q);
}

static void requests_refill_capped_at_burst(void **st)
{
	quota_table *q = table(10, 5, 0, 1);

	(void)st;
	for (int i = 0; i < 5; i++)
		assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_REQUESTS);
	assert_int_equal(ch(q, "t:a", 0, T0 + 99), QUOTA_REQUESTS);
	assert_int_equal(ch(q, "t:a", 0, T0 + 100), QUOTA_OK);
	/* An hour idle earns the burst (5), not 36000 tokens. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(ch(q, "t:a", 0, T0 + 3600100), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 0, T0 + 3600100), QUOTA_REQUESTS);
	quota_free(q);
}

static void requests_retry_after_one_per_second(void **st)
{
	quota_table *q = table(1, 1, 0, 1);

	(void)st;
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_OK);
	assert_int_equal(refused(q, "t:a", 0, 0, 0, T0, QUOTA_REQUESTS), 1);
	/* 999 ms later 0.999 tokens: still refused, still 1 s. */
	assert_int_equal(refused(q, "t:a", 0, 0, 0, T0 + 999, QUOTA_REQUESTS), 1);
	assert_int_equal(ch(q, "t:a", 0, T0 + 1000), QUOTA_OK);
	quota_free(q);
}

/* ---- Rate caveat --------------------------------------------------------- */

static void caveat_lowers_rate_and_burst(void **st)
{
	quota_table *q = table(10, 10, 0, 1);

	(void)st;
	for (int i = 0; i < 3; i++)
		assert_int_equal(quota_charge(q, "t:a", 0, 2, 3, T0, NULL), QUOTA_OK);
	assert_int_equal(refused(q, "t:a", 0, 2, 3, T0, QUOTA_REQUESTS), 1);
	/* Refill at the caveat's 2/s, not the table's 10/s. */
	assert_int_equal(quota_charge(q, "t:a", 0, 2, 3, T0 + 499, NULL), QUOTA_REQUESTS);
	assert_int_equal(quota_charge(q, "t:a", 0, 2, 3, T0 + 500, NULL), QUOTA_OK);
	assert_int_equal(quota_charge(q, "t:a", 0, 2, 3, T0 + 500, NULL), QUOTA_REQUESTS);
	/* Another tenant without the caveat gets the table's burst of 10. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(ch(q, "t:b", 0, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:b", 0, T0), QUOTA_REQUESTS);
	quota_free(q);
}

static void caveat_never_raises(void **st)
{
	quota_table *q = table(2, 2, 0, 1);

	(void)st;
	assert_int_equal(quota_charge(q, "t:a", 0, 100, 100, T0, NULL), QUOTA_OK);
	assert_int_equal(quota_charge(q, "t:a", 0, 100, 100, T0, NULL), QUOTA_OK);
	assert_int_equal(refused(q, "t:a", 0, 100, 100, T0, QUOTA_REQUESTS), 1);
	/* 100 ms at a raised 100/s would be 10 tokens; at the table's 2/s it is 0.2. */
	assert_int_equal(quota_charge(q, "t:a", 0, 100, 100, T0 + 100, NULL), QUOTA_REQUESTS);
	assert_int_equal(quota_charge(q, "t:a", 0, 100, 100, T0 + 500, NULL), QUOTA_OK);
	/* Ten idle seconds fill the table's burst of 2, not the caveat's 100. */
	assert_int_equal(quota_charge(q, "t:a", 0, 100, 100, T0 + 10500, NULL), QUOTA_OK);
	assert_int_equal(quota_charge(q, "t:a", 0, 100, 100, T0 + 10500, NULL), QUOTA_OK);
	assert_int_equal(quota_charge(q, "t:a", 0, 100, 100, T0 + 10500, NULL), QUOTA_REQUESTS);
	quota_free(q);
}

static void caveat_burst_alone(void **st)
{
	quota_table *q = table(5, 5, 0, 1);

	(void)st;
	/* rate_per_s 0: the table's 5/s stands, the burst drops to 2. */
	assert_int_equal(quota_charge(q, "t:a", 0, 0, 2, T0, NULL), QUOTA_OK);
	assert_int_equal(quota_charge(q, "t:a", 0, 0, 2, T0, NULL), QUOTA_OK);
	assert_int_equal(quota_charge(q, "t:a", 0, 0, 2, T0, NULL), QUOTA_REQUESTS);
	assert_int_equal(quota_charge(q, "t:a", 0, 0, 2, T0 + 200, NULL), QUOTA_OK);
	assert_int_equal(quota_charge(q, "t:a", 0, 0, 2, T0 + 200, NULL), QUOTA_REQUESTS);
	quota_free(q);
}

static void caveat_applies_alone_when_table_unlimited(void **st)
{
	quota_table *q = table(0, 4, 0, 1);

	(void)st;
	/* No table cap: a thousand requests pass without a token caveat... */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_OK);
	/* ...and a caveat of 1/s with burst 2 is enforced on its own. */
	assert_int_equal(quota_charge(q, "t:b", 0, 1, 2, T0, NULL), QUOTA_OK);
	assert_int_equal(quota_charge(q, "t:b", 0, 1, 2, T0, NULL), QUOTA_OK);
	assert_int_equal(refused(q, "t:b", 0, 1, 2, T0, QUOTA_REQUESTS), 1);
	assert_int_equal(quota_charge(q, "t:b", 0, 1, 2, T0 + 1000, NULL), QUOTA_OK);
	/* Caveat rate with no caveat burst: the table's burst (4) bounds it. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(quota_charge(q, "t:c", 0, 1, 0, T0, NULL), QUOTA_OK);
	assert_int_equal(quota_charge(q, "t:c", 0, 1, 0, T0, NULL), QUOTA_REQUESTS);
	quota_free(q);
}

static void caveat_fill_survives_token_switch(void **st)
{
	quota_table *q = table(10, 10, 0, 1);

	(void)st;
	/* A burst-1 token clamps the tenant's fill to 1 and takes it... */
	assert_int_equal(quota_charge(q, "t:a", 0, 0, 1, T0, NULL), QUOTA_OK);
	/* ...and presenting an uncaveated token does not hand back the 9. */
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_REQUESTS);
	assert_int_equal(ch(q, "t:a", 0, T0 + 100), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 0, T0 + 100), QUOTA_REQUESTS);
	quota_free(q);
}

/* ---- byte bucket and debt ------------------------------------------------ */

/* A reservation settled: the unused part is refunded (never past the
 * burst), more than reserved becomes debt; off when bytes are not capped. */
static void bytes_settle(void **st)
{
	quota_table *q = table(0, 1, 1000, 1000);
	quota_table *off = table(0, 1, 0, 1000);

	(void)st;
	assert_int_equal(ch(q, "t:a", 5000, T0), QUOTA_OK);          /* fill -4000 */
	quota_settle(q, "t:a", 5000, 1000, T0);                      /* +4000 → 0 */
	assert_int_equal(refused(q, "t:a", 1, 0, 0, T0, QUOTA_BYTES), 1);
	assert_int_equal(ch(q, "t:a", 1, T0 + 1), QUOTA_OK);          /* 1 ms refills 1 */
	quota_settle(q, "t:b", 100, 0, T0);                           /* refund to a full bucket */
	assert_int_equal(ch(q, "t:b", 1000, T0), QUOTA_OK);           /* still only the burst */
	assert_int_equal(refused(q, "t:b", 1, 0, 0, T0, QUOTA_BYTES), 1);
	quota_settle(q, "t:c", 0, 3000, T0);                          /* arrived past the reservation */
	assert_int_equal(refused(q, "t:c", 1, 0, 0, T0, QUOTA_BYTES), 3);
	quota_settle(off, "t:a", 0, 1u << 30, T0);                    /* no byte cap: nothing */
	assert_int_equal(ch(off, "t:a", 1u << 30, T0), QUOTA_OK);
	quota_free(q);
	quota_free(off);
}

static void bytes_refused_charges_nothing(void **st)
{
	quota_table *q = table(0, 1, 1000, 1000);

	(void)st;
	assert_int_equal(ch(q, "t:a", 600, T0), QUOTA_OK);
	/* 400 left, 600 asked: 200 short at 1000/s → 1 s. */
	assert_int_equal(refused(q, "t:a", 600, 0, 0, T0, QUOTA_BYTES), 1);
	/* The refusal took nothing: exactly 400 still fit. */
	assert_int_equal(ch(q, "t:a", 400, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 1, T0), QUOTA_BYTES);
	/* A request with no body is not a byte charge. */
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_OK);
	quota_free(q);
}

static void bytes_debt(void **st)
{
	quota_table *q = table(0, 1, 1000, 1000);

	(void)st;
	/* Five times the burst is admitted from a full bucket: fill -4000. */
	assert_int_equal(ch(q, "t:a", 5000, T0), QUOTA_OK);
	/* Waits count to min(bytes, burst): -4000 → 1 needs 4001 → 5 s. */
	assert_int_equal(refused(q, "t:a", 1, 0, 0, T0, QUOTA_BYTES), 5);
	assert_int_equal(refused(q, "t:a", 100, 0, 0, T0, QUOTA_BYTES), 5);
	/* A big body only needs a full bucket: -4000 → 1000 is 5000 → 5 s. */
	assert_int_equal(refused(q, "t:a", 2000, 0, 0, T0, QUOTA_BYTES), 5);
	/* A body-less request passes even in debt. */
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_OK);
	/* 3 s repay 3000: fill -1000, 1 byte is 1001 away → 2 s. */
	assert_int_equal(refused(q, "t:a", 1, 0, 0, T0 + 3000, QUOTA_BYTES), 2);
	assert_int_equal(ch(q, "t:a", 1, T0 + 4000), QUOTA_BYTES);
	assert_int_equal(ch(q, "t:a", 1, T0 + 4001), QUOTA_OK);
	/* Two idle seconds refill 2000, capped at the burst: big bodies work again. */
	assert_int_equal(ch(q, "t:a", 5000, T0 + 6001), QUOTA_OK);
	assert_int_equal(refused(q, "t:a", 1, 0, 0, T0 + 6001, QUOTA_BYTES), 5);
	quota_free(q);
}

static void bytes_retry_after_long_and_capped(void **st)
{
	quota_table *q = table(0, 1, 100, 100);

	(void)st;
	/* Debt 99900 at 100 B/s: one byte is 999.01 s away → 1000. */
	assert_int_equal(ch(q, "t:a", 100000, T0), QUOTA_OK);
	assert_int_equal(refused(q, "t:a", 1, 0, 0, T0, QUOTA_BYTES), 1000);
	/* Debt of ten hours: capped at the bucket's maximum Retry-After. */
	assert_int_equal(ch(q, "t:b", 100u * 36000u, T0), QUOTA_OK);
	assert_int_equal(refused(q, "t:b", 1, 0, 0, T0, QUOTA_BYTES), 3600);
	quota_free(q);
}

static void request_refusal_keeps_byte_tokens(void **st)
{
	quota_table *q = table(1, 1, 1, 100);

	(void)st;
	assert_int_equal(ch(q, "t:a", 10, T0), QUOTA_OK);          /* bytes 90 */
	for (int i = 0; i < 3; i++)
		assert_int_equal(ch(q, "t:a", 50, T0), QUOTA_REQUESTS);
	/* One second later: one request token, bytes 90 + 1 = 91, untouched. */
	assert_int_equal(ch(q, "t:a", 92, T0 + 1000), QUOTA_BYTES);
	assert_int_equal(ch(q, "t:a", 91, T0 + 1000), QUOTA_OK);
	quota_free(q);
}

static void byte_refusal_keeps_request_tokens(void **st)
{
	quota_table *q = table(10, 2, 1, 100);

	(void)st;
	assert_int_equal(ch(q, "t:a", 100, T0), QUOTA_OK);   /* requests 1, bytes 0 */
	/* 50 bytes at 1 B/s: exactly 50 s. */
	assert_int_equal(refused(q, "t:a", 50, 0, 0, T0, QUOTA_BYTES), 50);
	for (int i = 0; i < 5; i++)
		assert_int_equal(ch(q, "t:a", 50, T0), QUOTA_BYTES);
	/* The one request token left is still there. */
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_REQUESTS);
	quota_free(q);
}

static void both_empty_reports_requests(void **st)
{
	quota_table *q = table(1, 1, 1, 10);

	(void)st;
	assert_int_equal(ch(q, "t:a", 10, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 10, T0), QUOTA_REQUESTS);
	quota_free(q);
}

/* ---- unlimited caps ------------------------------------------------------ */

static void unlimited_caps(void **st)
{
	quota_table *all = table(0, 1, 0, 1);
	quota_table *bytes_only = table(0, 1, 1000, 1000);
	quota_table *req_only = table(1, 3, 0, 1);

	(void)st;
	for (int i = 0; i < 10000; i++)
		assert_int_equal(ch(all, "t:a", UINT64_C(1) << 40, T0), QUOTA_OK);
	/* Requests unlimited, bytes enforced. */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(ch(bytes_only, "t:a", 1, T0), QUOTA_OK);
	assert_int_equal(ch(bytes_only, "t:a", 1, T0), QUOTA_BYTES);
	assert_int_equal(ch(bytes_only, "t:a", 0, T0), QUOTA_OK);
	/* Bytes unlimited, requests enforced: a terabyte body is no byte refusal. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(ch(req_only, "t:a", UINT64_C(1) << 40, T0), QUOTA_OK);
	assert_int_equal(ch(req_only, "t:a", 1, T0), QUOTA_REQUESTS);
	quota_free(all);
	quota_free(bytes_only);
	quota_free(req_only);
}

/* ---- tenants and the table ----------------------------------------------- */

static void tenants_independent(void **st)
{
	quota_table *q = table(1, 2, 100, 100);

	(void)st;
	assert_int_equal(quota_tenants(q), 0);
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 100, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_REQUESTS);
	assert_int_equal(quota_tenants(q), 1);
	/* The neighbour's requests and bytes are untouched. */
	assert_int_equal(ch(q, "t:b", 100, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:b", 0, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:b", 0, T0), QUOTA_REQUESTS);
	assert_int_equal(quota_tenants(q), 2);
	/* Same spelling, same tenant; a different one is new. */
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_REQUESTS);
	assert_int_equal(ch(q, "t:A", 0, T0), QUOTA_OK);
	assert_int_equal(quota_tenants(q), 3);
	quota_free(q);
}

static void table_count_bounded(void **st)
{
	quota_limits l = limits(1, 1, 0, 1, QUOTA_PROBE);
	quota_table *q = quota_new(&l, T0);
	char key[64];

	(void)st;
	assert_non_null(q);
	/* With one window covering the whole table every slot fills in turn. */
	for (unsigned i = 0; i < 1000; i++) {
		key_n(key, sizeof key, i);
		assert_int_equal(ch(q, key, 0, T0), QUOTA_OK);
		assert_int_equal(quota_tenants(q), i < QUOTA_PROBE ? i + 1 : QUOTA_PROBE);
	}
	quota_free(q);
}

/* Remembered ⇔ refused: burst 1 and a stopped clock leave every tenant
 * empty after its first charge, while a forgotten one comes back full. */
static void table_evicts_least_recent(void **st)
{
	quota_limits l = limits(1, 1, 0, 1, QUOTA_PROBE);
	quota_table *q = quota_new(&l, T0);
	char key[64];

	(void)st;
	assert_non_null(q);
	for (unsigned i = 0; i < QUOTA_PROBE; i++) {
		key_n(key, sizeof key, i);
		assert_int_equal(ch(q, key, 0, T0), QUOTA_OK);
	}
	assert_int_equal(quota_tenants(q), QUOTA_PROBE);
	/* Touch tenant 0 (a refusal still counts as seen): tenant 1 is now LRU. */
	assert_int_equal(ch(q, "t:tenant-0", 0, T0), QUOTA_REQUESTS);
	assert_int_equal(ch(q, "t:newcomer", 0, T0), QUOTA_OK);
	assert_int_equal(quota_tenants(q), QUOTA_PROBE);
	assert_int_equal(ch(q, "t:tenant-0", 0, T0), QUOTA_REQUESTS);
	assert_int_equal(ch(q, "t:newcomer", 0, T0), QUOTA_REQUESTS);
	/* Tenant 1 was forgotten: back with a full bucket, evicting tenant 2. */
	assert_int_equal(ch(q, "t:tenant-1", 0, T0), QUOTA_OK);
	for (unsigned i = 3; i < QUOTA_PROBE; i++) {
		key_n(key, sizeof key, i);
		assert_int_equal(ch(q, key, 0, T0), QUOTA_REQUESTS);
	}
	assert_int_equal(ch(q, "t:tenant-2", 0, T0), QUOTA_OK);
	assert_int_equal(quota_tenants(q), QUOTA_PROBE);
	quota_free(q);
}

/* In a larger table windows differ, but the tenant charged just before each
 * newcomer is the most recent in any window, so it is never the victim. */
static void table_hot_tenant_survives_flood(void **st)
{
	quota_limits l = limits(1, 1, 0, 1, 64);
	quota_table *q = quota_new(&l, T0);
	size_t prev = 0;
	char key[64];

	(void)st;
	assert_non_null(q);
	assert_int_equal(ch(q, "t:hot", 0, T0), QUOTA_OK);
	for (unsigned i = 0; i < 2000; i++) {
		assert_int_equal(ch(q, "t:hot", 0, T0), QUOTA_REQUESTS);
		key_n(key, sizeof key, i);
		assert_int_equal(ch(q, key, 0, T0), QUOTA_OK);
		assert_true(quota_tenants(q) <= 64);
		assert_true(quota_tenants(q) >= prev);
		prev = quota_tenants(q);
	}
	assert_int_equal(ch(q, "t:hot", 0, T0), QUOTA_REQUESTS);
	/* 2001 keys over 64 slots in windows of 16 fill far more than one window. */
	assert_true(quota_tenants(q) > QUOTA_PROBE);
	quota_free(q);
}

static void table_small_capacity_raised_to_window(void **st)
{
	quota_limits l = limits(1, 1, 0, 1, 1);
	quota_table *q = quota_new(&l, T0);
	char key[64];

	(void)st;
	assert_non_null(q);
	for (unsigned i = 0; i < 40; i++) {
		key_n(key, sizeof key, i);
		assert_int_equal(ch(q, key, 0, T0), QUOTA_OK);
	}
	assert_int_equal(quota_tenants(q), QUOTA_PROBE);
	quota_free(q);
	quota_free(NULL);
	assert_int_equal(quota_tenants(NULL), 0);
}

/* ---- reload, clock, keys ------------------------------------------------- */

static void set_limits_clamps_fill(void **st)
{
	quota_table *q = table(1, 10, 1000, 1000);
	quota_limits l;

	(void)st;
	assert_int_equal(ch(q, "t:a", 100, T0), QUOTA_OK);     /* requests 9, bytes 900 */
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_OK);       /* requests 8 */
	l = limits(1, 3, 1000, 200, 9999);
	quota_set_limits(q, &l);
	/* Fill clamped to the new bursts: 3 requests, 200 bytes. */
	assert_int_equal(ch(q, "t:a", 150, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 100, T0), QUOTA_BYTES);  /* 50 left */
	assert_int_equal(ch(q, "t:a", 50, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_REQUESTS);
	/* Raising the bursts again keeps the (empty) fill: no free refill. */
	l = limits(10, 10, 1000, 1000, 1);
	quota_set_limits(q, &l);
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_REQUESTS);
	/* The new rate applies: 100 ms at 10/s is one token. */
	assert_int_equal(ch(q, "t:a", 0, T0 + 100), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 0, T0 + 100), QUOTA_REQUESTS);
	/* New tenants start full at the new bursts. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(ch(q, "t:b", 0, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:b", 0, T0), QUOTA_REQUESTS);
	quota_free(q);
}

static void set_limits_keeps_debt(void **st)
{
	quota_table *q = table(0, 1, 1000, 1000);
	quota_limits l = limits(0, 1, 1000, 100000, 64);

	(void)st;
	assert_int_equal(ch(q, "t:a", 3000, T0), QUOTA_OK);    /* -2000 */
	quota_set_limits(q, &l);
	assert_int_equal(refused(q, "t:a", 1, 0, 0, T0, QUOTA_BYTES), 3);
	/* Turning the byte cap off admits everything; back on, the debt is still owed. */
	l = limits(0, 1, 0, 1, 64);
	quota_set_limits(q, &l);
	assert_int_equal(ch(q, "t:a", 1000000, T0), QUOTA_OK);
	l = limits(0, 1, 1000, 1000, 64);
	quota_set_limits(q, &l);
	assert_int_equal(refused(q, "t:a", 1, 0, 0, T0, QUOTA_BYTES), 3);
	quota_free(q);
}

static void clock_backwards_adds_nothing(void **st)
{
	quota_table *q = table(1, 2, 1000, 1000);

	(void)st;
	assert_int_equal(ch(q, "t:a", 1000, T0 + 10000), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 0, T0 + 10000), QUOTA_OK);
	/* Five seconds back: no tokens appear, Retry-After is still 1. */
	assert_int_equal(refused(q, "t:a", 0, 0, 0, T0 + 5000, QUOTA_REQUESTS), 1);
	/* Returning to the present does not credit the jump either. */
	assert_int_equal(ch(q, "t:a", 0, T0 + 10999), QUOTA_REQUESTS);
	assert_int_equal(ch(q, "t:a", 0, T0 + 11000), QUOTA_OK);
	quota_free(q);
	/* The same for bytes: emptied at +10 s, refused back at +5 s, and half a
	 * second later than +10 s only 500 have been repaid. */
	q = table(0, 1, 1000, 1000);
	assert_int_equal(ch(q, "t:a", 1000, T0 + 10000), QUOTA_OK);
	assert_int_equal(refused(q, "t:a", 1, 0, 0, T0 + 5000, QUOTA_BYTES), 1);
	assert_int_equal(ch(q, "t:a", 501, T0 + 10500), QUOTA_BYTES);
	assert_int_equal(ch(q, "t:a", 500, T0 + 10500), QUOTA_OK);
	/* A newcomer first seen while the clock is back at +5 s starts at the
	 * latest clock seen (+10.5 s), so returning to +10.5 s repays nothing. */
	assert_int_equal(ch(q, "t:b", 1000, T0 + 5000), QUOTA_OK);
	assert_int_equal(ch(q, "t:b", 1, T0 + 10500), QUOTA_BYTES);
	assert_int_equal(ch(q, "t:b", 1, T0 + 10501), QUOTA_OK);
	quota_free(q);
}

static void long_keys_are_distinct(void **st)
{
	quota_table *q = table(1, 1, 0, 1);
	char a[QUOTA_MAX_KEY * 4], b[QUOTA_MAX_KEY * 4];

	(void)st;
	memset(a, 'x', sizeof a - 1);
	a[sizeof a - 1] = '\0';
	memcpy(b, a, sizeof b);
	b[sizeof b - 2] = 'y';        /* differs only in the last byte */
	assert_int_equal(ch(q, a, 0, T0), QUOTA_OK);
	assert_int_equal(ch(q, b, 0, T0), QUOTA_OK);
	assert_int_equal(ch(q, a, 0, T0), QUOTA_REQUESTS);
	assert_int_equal(ch(q, b, 0, T0), QUOTA_REQUESTS);
	/* The first QUOTA_MAX_KEY bytes alone are yet another tenant. */
	a[QUOTA_MAX_KEY] = '\0';
	assert_int_equal(ch(q, a, 0, T0), QUOTA_OK);
	a[QUOTA_MAX_KEY + 1] = '\0';
	a[QUOTA_MAX_KEY] = 'x';
	assert_int_equal(ch(q, a, 0, T0), QUOTA_OK);
	/* The empty key is a tenant like any other. */
	assert_int_equal(ch(q, "", 0, T0), QUOTA_OK);
	assert_int_equal(ch(q, "", 0, T0), QUOTA_REQUESTS);
	assert_int_equal(quota_tenants(q), 5);
	quota_free(q);
}

/* ---- shared between processes ------------------------------------------ */

typedef struct area {
	void  *p;
	size_t len;
} area;

static area area_make(uint32_t max_tenants)
{
	area a = { .len = quota_area_size(max_tenants) };

	a.p = mmap(NULL, a.len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(a.p != MAP_FAILED);
	assert_int_equal(quota_area_init(a.p, a.len, max_tenants, T0), 0);
	return a;
}

/* Two processes' handles on one area draw from one bucket per tenant. */
static void shared_two_handles_one_bucket(void **st)
{
	area a = area_make(64);
	quota_limits l = limits(2, 4, 1000, 1000, 64);
	quota_table *x = quota_open(a.p, a.len, &l);
	quota_table *y = quota_open(a.p, a.len, &l);

	(void)st;
	assert_non_null(x);
	assert_non_null(y);
	/* The byte bucket is shared: 400 of 1000 left for y after x's 600. */
	assert_int_equal(ch(x, "t:a", 600, T0), QUOTA_OK);
	assert_int_equal(ch(y, "t:a", 401, T0), QUOTA_BYTES);
	assert_int_equal(ch(y, "t:a", 400, T0), QUOTA_OK);
	quota_settle(x, "t:a", 400, 100, T0);                 /* y's body refunded via x */
	assert_int_equal(ch(y, "t:a", 301, T0), QUOTA_BYTES);
	/* So is the request bucket: two of four spent, two more through y and
	 * x, then both refuse. */
	assert_int_equal(ch(y, "t:a", 0, T0), QUOTA_OK);
	assert_int_equal(ch(x, "t:a", 300, T0), QUOTA_OK);
	assert_int_equal(refused(x, "t:a", 0, 0, 0, T0, QUOTA_REQUESTS), 1);
	assert_int_equal(refused(y, "t:a", 0, 0, 0, T0, QUOTA_REQUESTS), 1);
	assert_int_equal(quota_tenants(x), 1);
	assert_int_equal(quota_tenants(y), 1);
	/* A clock seen by one handle is the newcomer's start for the other. */
	assert_int_equal(ch(x, "t:b", 0, T0 + 5000), QUOTA_OK);
	assert_int_equal(ch(y, "t:c", 1000, T0 + 10), QUOTA_OK);
	assert_int_equal(ch(y, "t:c", 1, T0 + 5000), QUOTA_BYTES);
	assert_int_equal(quota_tenants(y), 3);
	quota_free(x);
	quota_free(y);
	munmap(a.p, a.len);
}

static int child_charges(quota_table *q, const char *key, int n)
{
	for (int i = 0; i < n; i++)
		if (ch(q, key, 0, T0) != QUOTA_OK)
			return 10 + i;
	return ch(q, key, 0, T0) == QUOTA_REQUESTS ? 0 : 2;
}

static void shared_across_fork(void **st)
{
	quota_table *q = table(1, 3, 0, 1);
	int status;
	pid_t pid;

	(void)st;
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_OK);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_charges(q, "t:a", 2));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The child spent the two tokens the parent left. */
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_REQUESTS);
	assert_int_equal(ch(q, "t:b", 0, T0), QUOTA_OK);
	quota_free(q);
}

/* A process that dies holding a group's lock: the next locker takes the
 * lock over, the buckets keep their fill, and the lock works on after. */
static void shared_holder_dies(void **st)
{
	quota_table *q = table(1, 3, 0, 1);
	int status;
	pid_t pid;

	(void)st;
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_OK);      /* 2 left */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(quota_test_hold(q, "t:a") == 0 ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_REQUESTS);
	/* Another process locks and unlocks it as usual afterwards. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_charges(q, "t:b", 3));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(ch(q, "t:b", 0, T0 + 1000), QUOTA_OK);
	quota_free(q);
}

/* The waiter is already blocked on the lock when its holder is killed. */
static void shared_holder_killed_while_waited_for(void **st)
{
	quota_table *q = table(1, 2, 0, 1);
	int fds[2], status;
	char c = 0;
	pid_t pid;

	(void)st;
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (quota_test_hold(q, "t:a") != 0 || write(fds[1], "h", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	assert_int_equal(read(fds[0], &c, 1), 1);
	assert_int_equal(c, 'h');
	/* Kill it a little later, from a third process, while we block. */
	if (fork() == 0) {
		usleep(50 * 1000);
		kill(pid, SIGKILL);
		_exit(0);
	}
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_OK);
	assert_int_equal(ch(q, "t:a", 0, T0), QUOTA_REQUESTS);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	while (wait(NULL) > 0)
		;
	close(fds[0]);
	close(fds[1]);
	quota_free(q);
}

static void open_refuses_bad_areas(void **st)
{
	area a = area_make(64);
	quota_limits l = limits(1, 1, 0, 1, 64);
	quota_table *q;
	uint64_t magic;

	(void)st;
	assert_null(quota_open(a.p, a.len - 1, &l));         /* not the whole area */
	assert_null(quota_open(a.p, 8, &l));
	assert_null(quota_open(NULL, a.len, &l));
	assert_null(quota_open((char *)a.p + 8, a.len - 8, &l));  /* misaligned */
	memcpy(&magic, a.p, sizeof magic);
	memset(a.p, 0, sizeof magic);                           /* never laid out */
	assert_null(quota_open(a.p, a.len, &l));
	memcpy(a.p, &magic, sizeof magic);
	q = quota_open(a.p, a.len, &l);
	assert_non_null(q);
	quota_free(q);
	/* Too small for its tenants. */
	assert_int_equal(quota_area_init(a.p, quota_area_size(64), 65, T0), -1);
	assert_true(quota_area_size(65) > quota_area_size(64));
	assert_int_equal(quota_area_size(64), quota_area_size(49));
	munmap(a.p, a.len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(result_names),
		cmocka_unit_test(requests_burst_then_refuse),
		cmocka_unit_test(requests_refill_capped_at_burst),
		cmocka_unit_test(requests_retry_after_one_per_second),
		cmocka_unit_test(caveat_lowers_rate_and_burst),
		cmocka_unit_test(caveat_never_raises),
		cmocka_unit_test(caveat_burst_alone),
		cmocka_unit_test(caveat_applies_alone_when_table_unlimited),
		cmocka_unit_test(caveat_fill_survives_token_switch),
		cmocka_unit_test(bytes_refused_charges_nothing),
		cmocka_unit_test(bytes_debt),
		cmocka_unit_test(bytes_settle),
		cmocka_unit_test(bytes_retry_after_long_and_capped),
		cmocka_unit_test(request_refusal_keeps_byte_tokens),
		cmocka_unit_test(byte_refusal_keeps_request_tokens),
		cmocka_unit_test(both_empty_reports_requests),
		cmocka_unit_test(unlimited_caps),
		cmocka_unit_test(tenants_independent),
		cmocka_unit_test(table_count_bounded),
		cmocka_unit_test(table_evicts_least_recent),
		cmocka_unit_test(table_hot_tenant_survives_flood),
		cmocka_unit_test(table_small_capacity_raised_to_window),
		cmocka_unit_test(set_limits_clamps_fill),
		cmocka_unit_test(set_limits_keeps_debt),
		cmocka_unit_test(clock_backwards_adds_nothing),
		cmocka_unit_test(long_keys_are_distinct),
		cmocka_unit_test(shared_two_handles_one_bucket),
		cmocka_unit_test(shared_across_fork),
		cmocka_unit_test(shared_holder_dies),
		cmocka_unit_test(shared_holder_killed_while_waited_for),
		cmocka_unit_test(open_refuses_bad_areas),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
