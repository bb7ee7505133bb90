/*
 * quota.c — per-tenant request and byte quotas in a bounded table (see
 * quota.h).
 *
 * Table. One allocation of max_tenants slots made at quota_new; a charge
 * never allocates and looks at no more than QUOTA_PROBE slots. A tenant lives
 * in the window of QUOTA_PROBE slots starting at hash(key) mod capacity
 * (linear probing, wrapping). Slots are never emptied, only replaced, so an
 * insert always takes the first empty slot of its window and a lookup may stop
 * at the first empty slot it meets. When the window is full and the key is not
 * in it, the window's least recently charged tenant is replaced in place.
 * Recency is a per-table counter, not the clock, so a clock that stalls or
 * steps back cannot make a busy tenant look idle.
 *
 * Keys. A tenant is identified by the keyed BLAKE3-256 digest of its whole
 * key under a random per-table key (libsodium randombytes_buf). The digest
 * both picks the window and is what slots compare, so:
 *  - an attacker who does not know the table key cannot aim many tenants at
 *    one window to evict a victim or lengthen probes;
 *  - memory per slot is bounded whatever the key length; keys longer than
 *    QUOTA_MAX_KEY are hashed whole (truncating would merge tenants that
 *    share a prefix), so they work and stay distinct;
 *  - two keys share buckets only on a 256-bit digest collision.
 *
 * Buckets. A request bucket and a byte bucket per tenant (lib/tbucket). The
 * effective parameters (table limits lowered by the token's Rate caveat for
 * requests) are applied on every charge, because one tenant may present
 * tokens with different caveats; the fill is clamped to the burst in force.
 * The same lazy application serves quota_set_limits: a reload touches no
 * slot, and each bucket is clamped to the new burst on its next charge (time
 * since its last charge is credited at the new rate). Both buckets are
 * checked before either is charged, so a refusal by one never costs tokens
 * in the other.
 */
#include "core/auth/quota.h"
#include "core/auth/quota_test.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "lib/b3.h"
#include "lib/tbucket.h"

typedef struct quota_slot {
	uint8_t  id[B3_OUT_LEN]; /* keyed digest of the tenant key */
	uint64_t used;           /* table tick of the last charge; 0 = empty */
	tbucket  req;            /* requests */
	tbucket  bytes;          /* body bytes; may go negative (debt) */
} quota_slot;

struct quota_table {
	quota_limits lim;
	uint8_t      hkey[B3_OUT_LEN]; /* per-table hash key: see the header comment */
	uint64_t     tick;             /* recency counter, bumped per charge */
	uint64_t     clock_ms;         /* latest clock seen: new buckets start here, so a
	                                * clock that stepped back cannot credit a newcomer
	                                * with time that already passed */
	size_t       count;            /* occupied slots */
	uint32_t     cap;
	quota_slot  *slots;            /* cap slots, owned */
};

/* Effective request-bucket parameters for one charge. */
typedef struct quota_req_params {
	bool   on;    /* false: neither the table nor the token caps requests */
	double rate;
	double burst;
} quota_req_params;

/* A burst of 0 would refuse everything forever; config says >= 1 anyway. */
static double quota_at_least_one(uint64_t v)
{
	return v > 0 ? (double)v : 1.0;
}

static uint64_t quota_min_nonzero(uint64_t table, uint64_t token)
{
	if (table == 0)
		return token;
	if (token == 0)
		return table;
	return token < table ? token : table;
}

/* The caveat only ever lowers: a 0 on either side means "no limit there". */
static quota_req_params quota_req_effective(const quota_limits *l, uint64_t rate_per_s,
                                            uint64_t rate_burst)
{
	quota_req_params p = { .on = false, .rate = 0, .burst = 1.0 };
	uint64_t rate = quota_min_nonzero(l->rps, rate_per_s);
	uint64_t burst = l->burst > 0 ? l->burst : 1u;

	if (rate == 0)
		return p;
	if (rate_burst > 0 && rate_burst < burst)
		burst = rate_burst;
	p.on = true;
	p.rate = (double)rate;
	p.burst = quota_at_least_one(burst);
	return p;
}

static void quota_bucket_apply(tbucket *b, double rate, double burst)
{
	b->rate = rate;
	b->burst = burst;
	if (b->tokens > burst)
		b->tokens = burst;
}

/* A fresh tenant: both buckets full at the table's limits. */
static void quota_slot_reset(quota_table *q, quota_slot *s, const uint8_t id[B3_OUT_LEN])
{
	memcpy(s->id, id, B3_OUT_LEN);
	tbucket_init(&s->req, (double)q->lim.rps, quota_at_least_one(q->lim.burst), q->clock_ms);
	tbucket_init(&s->bytes, (double)q->lim.bytes_per_s,
	             quota_at_least_one(q->lim.bytes_burst), q->clock_ms);
}

static size_t quota_window_start(const quota_table *q, const uint8_t id[B3_OUT_LEN])
{
	uint64_t h;

	memcpy(&h, id, sizeof h);
	return (size_t)(h % q->cap);
}

/* The tenant's slot: found, the first empty one in its window, or the
 * window's least recently used one, replaced. Never NULL. */
static quota_slot *quota_slot_get(quota_table *q, const uint8_t id[B3_OUT_LEN])
{
	size_t start = quota_window_start(q, id);
	quota_slot *lru = NULL;

	for (size_t i = 0; i < QUOTA_PROBE; i++) {
		quota_slot *s = &q->slots[(start + i) % q->cap];

		if (s->used == 0) {
			q->count++;
			quota_slot_reset(q, s, id);
			return s;
		}
		/* Constant time so probing does not leak digest prefixes. */
		if (b3_equal(s->id, id))
			return s;
		if (!lru || s->used < lru->used)
			lru = s;
	}
	quota_slot_reset(q, lru, id);
	return lru;
}

quota_table *quota_new(const quota_limits *l, uint64_t now_ms)
{
	/* A table smaller than the window would probe the same slot twice. */
	uint32_t cap = l->max_tenants < QUOTA_PROBE ? QUOTA_PROBE : l->max_tenants;
	quota_table *q;

	q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	q->slots = calloc(cap, sizeof *q->slots);   /* calloc checks the product */
	if (!q->slots) {
		free(q);
		return NULL;
	}
	q->lim = *l;
	q->lim.max_tenants = cap;
	q->cap = cap;
	q->clock_ms = now_ms;
	randombytes_buf(q->hkey, sizeof q->hkey);
	return q;
}

void quota_free(quota_table *q)
{
	if (!q)
		return;
	sodium_memzero(q->hkey, sizeof q->hkey);
	free(q->slots);
	free(q);
}

/* Nothing to walk: every charge re-applies the limits to the tenant's buckets
 * and clamps the fill then, so a reload is O(1) however large the table. */
void quota_set_limits(quota_table *q, const quota_limits *l)
{
	q->lim.rps = l->rps;
	q->lim.burst = l->burst;
	q->lim.bytes_per_s = l->bytes_per_s;
	q->lim.bytes_burst = l->bytes_burst;
}

/* Tokens the byte bucket must hold to admit `bytes`: a body larger than the
 * burst is admitted from a full bucket and leaves debt behind. */
static double quota_bytes_needed(const tbucket *b, uint64_t bytes)
{
	double n = (double)bytes;

	return n < b->burst ? n : b->burst;
}

/* Decide without charging; both buckets have been refilled to now. */
static quota_result quota_judge(const quota_slot *s, const quota_req_params *rp,
                                bool bytes_on, uint64_t bytes, uint64_t now_ms,
                                unsigned *retry_after_s)
{
	unsigned ra = 0;
	quota_result r = QUOTA_OK;

	if (rp->on && s->req.tokens < 1.0) {
		r = QUOTA_REQUESTS;
		ra = tbucket_retry_after_s(&s->req, 1.0, now_ms);
	} else if (bytes_on && s->bytes.tokens < quota_bytes_needed(&s->bytes, bytes)) {
		r = QUOTA_BYTES;
		ra = tbucket_retry_after_s(&s->bytes, quota_bytes_needed(&s->bytes, bytes), now_ms);
	}
	if (r != QUOTA_OK && retry_after_s)
		*retry_after_s = ra;
	return r;
}

/* The tenant's slot at now_ms (found or made, marked recently used). */
static quota_slot *quota_touch(quota_table *q, const char *key, uint64_t now_ms)
{
	uint8_t id[B3_OUT_LEN];
	quota_slot *s;

	if (now_ms > q->clock_ms)
		q->clock_ms = now_ms;
	b3_keyed_hash(q->hkey, key, strlen(key), id);
	s = quota_slot_get(q, id);
	s->used = ++q->tick;   /* refused tenants stay recent: eviction must not refill them */
	return s;
}

/* The byte bucket with the table's current limits, refilled to now_ms. */
static void quota_bytes_refill(const quota_table *q, quota_slot *s, uint64_t now_ms)
{
	quota_bucket_apply(&s->bytes, (double)q->lim.bytes_per_s,
	                   quota_at_least_one(q->lim.bytes_burst));
	(void)tbucket_take(&s->bytes, 0, now_ms);    /* refill only */
}

quota_result quota_charge(quota_table *q, const char *key, uint64_t bytes,
                          uint64_t rate_per_s, uint64_t rate_burst, uint64_t now_ms,
                          unsigned *retry_after_s)
{
	quota_req_params rp = quota_req_effective(&q->lim, rate_per_s, rate_burst);
	bool bytes_on = q->lim.bytes_per_s > 0 && bytes > 0;
	quota_slot *s = quota_touch(q, key, now_ms);
	quota_result r;

	if (rp.on) {
		quota_bucket_apply(&s->req, rp.rate, rp.burst);
		(void)tbucket_take(&s->req, 0, now_ms);      /* refill only */
	}
	if (bytes_on)
		quota_bytes_refill(q, s, now_ms);
	r = quota_judge(s, &rp, bytes_on, bytes, now_ms, retry_after_s);
	if (r != QUOTA_OK)
		return r;
	if (rp.on)
		s->req.tokens -= 1.0;
	if (bytes_on)
		s->bytes.tokens -= (double)bytes;
	return QUOTA_OK;
}

void quota_settle(quota_table *q, const char *key, uint64_t reserved, uint64_t used,
                  uint64_t now_ms)
{
	if (!q || q->lim.bytes_per_s == 0 || reserved == used)
		return;
	quota_slot *s = quota_touch(q, key, now_ms);
	quota_bytes_refill(q, s, now_ms);
	s->bytes.tokens += (double)reserved - (double)used;  /* refund, or debt past the reservation */
	if (s->bytes.tokens > s->bytes.burst)
		s->bytes.tokens = s->bytes.burst;
}

size_t quota_tenants(const quota_table *q)
{
	return q ? q->count : 0;
}

const char *quota_result_name(quota_result r)
{
	switch (r) {
	case QUOTA_OK:
		return "ok";
	case QUOTA_REQUESTS:
		return "requests";
	case QUOTA_BYTES:
		return "bytes";
	}
	return "unknown";
}
