/*
 * quota.c — per-tenant request and byte quotas in a bounded table shared by
 * every process of the node (see quota.h).
 *
 * Table. An area of max_tenants slots (rounded up to whole groups) laid out
 * once by quota_area_init; a charge never allocates and looks at no more than
 * QUOTA_PROBE slots. Slots come in groups of QUOTA_PROBE: a tenant lives in
 * the group hash(key) mod ngroups (set-associative, the group being its probe
 * window). Slots are never emptied, only replaced, so an insert always takes
 * the first empty slot of its group and a lookup may stop at the first empty
 * slot it meets. When the group is full and the key is not in it, the group's
 * least recently charged tenant is replaced in place. Recency is a per-group
 * counter, not the clock, so a clock that stalls or steps back cannot make a
 * busy tenant look idle.
 *
 * Sharing. Every gateway worker and omnigate charge the same area (the annex
 * of the metrics memfd, core/metrics/metrics.h), so a tenant gets its rate
 * once per node. Each group has its own mutex, process-shared and robust: a
 * process killed while it holds one leaves it to the next locker with
 * EOWNERDEAD, which repairs the group (quota_group_repair) and carries on, so
 * a crash never wedges the node. A lock is held for a few hundred
 * nanoseconds (one bucket update, no call out); the supervisor never takes
 * one, so the admin plane cannot wait on a child. The node's latest clock is
 * a lock-free maximum in the header. The limits are per process (each
 * handle's copy): a reload reaches the processes one by one, and every charge
 * applies the limits of the process that makes it.
 *
 * Keys. A tenant is identified by the keyed BLAKE3-256 digest of its whole
 * key under a random key written into the area at its creation (libsodium
 * randombytes_buf), so every process finds a tenant in the same slot. The
 * digest both picks the group and is what slots compare, so:
 *  - an attacker who does not know the table key cannot aim many tenants at
 *    one group to evict a victim;
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

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sodium.h>

#include "core/metrics/metrics.h"
#include "lib/b3.h"
#include "lib/log.h"
#include "lib/tbucket.h"

#define QUOTA_MAGIC    UINT64_C(0x4d4e51554f544131)   /* "MNQUOTA1" */
#define QUOTA_VERSION  1u
#define QUOTA_ALIGN    64u                            /* a cache line per group head */

static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free (shared memory)");

typedef struct quota_slot {
	uint8_t  id[B3_OUT_LEN]; /* keyed digest of the tenant key */
	uint64_t used;           /* group tick of the last charge; 0 = empty */
	tbucket  req;            /* requests */
	tbucket  bytes;          /* body bytes; may go negative (debt) */
} quota_slot;

/* One lock, one probe window. */
typedef struct quota_group {
	alignas(QUOTA_ALIGN) pthread_mutex_t lock; /* process-shared, robust */
	uint64_t   tick;                           /* recency counter, bumped per charge */
	quota_slot slots[QUOTA_PROBE];
} quota_group;

/* Head of the shared area; the groups follow at QUOTA_HDR_SPACE. */
typedef struct quota_hdr {
	uint64_t         magic;
	uint32_t         version;
	uint32_t         ngroups;
	uint64_t         area_len;
	uint32_t         group_size;
	uint32_t         pad;
	uint8_t          hkey[B3_OUT_LEN];   /* table hash key: see the comment above */
	_Atomic uint64_t clock_ms;           /* latest clock seen: new buckets start here, so
	                                      * a clock that stepped back cannot credit a
	                                      * newcomer with time that already passed */
	_Atomic uint64_t count;              /* occupied slots */
} quota_hdr;

#define QUOTA_HDR_SPACE ((sizeof(quota_hdr) + QUOTA_ALIGN - 1) / QUOTA_ALIGN * QUOTA_ALIGN)

/* A process's handle on an area. */
struct quota_table {
	quota_limits lim;
	quota_hdr   *hdr;
	quota_group *groups;
	uint32_t     ngroups;          /* checked at open: the area is shared, so the
	                                * header's copy is not trusted for bounds */
	uint8_t      hkey[B3_OUT_LEN];
	void        *own;              /* quota_new's private mapping; NULL if borrowed */
	size_t       own_len;
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

/* A fresh tenant: both buckets full at the table's limits, starting at the
 * node's latest clock. */
static void quota_slot_reset(const quota_table *q, quota_slot *s,
                             const uint8_t id[B3_OUT_LEN], uint64_t clock_ms)
{
	memcpy(s->id, id, B3_OUT_LEN);
	tbucket_init(&s->req, (double)q->lim.rps, quota_at_least_one(q->lim.burst), clock_ms);
	tbucket_init(&s->bytes, (double)q->lim.bytes_per_s,
	             quota_at_least_one(q->lim.bytes_burst), clock_ms);
}

static uint32_t quota_ngroups(uint32_t max_tenants)
{
	uint32_t n = max_tenants / QUOTA_PROBE + (max_tenants % QUOTA_PROBE != 0);

	return n > 0 ? n : 1;
}

static quota_group *quota_group_of(const quota_table *q, const uint8_t id[B3_OUT_LEN])
{
	uint64_t h;

	memcpy(&h, id, sizeof h);
	return &q->groups[h % q->ngroups];
}

/* The tenant's slot in its group (locked): found, the first empty one, or
 * the least recently used one, replaced (*evicted). Never NULL. */
static quota_slot *quota_slot_get(quota_table *q, quota_group *g,
                                  const uint8_t id[B3_OUT_LEN], uint64_t clock_ms,
                                  bool *evicted)
{
	quota_slot *lru = NULL;

	*evicted = false;
	for (size_t i = 0; i < QUOTA_PROBE; i++) {
		quota_slot *s = &g->slots[i];

		if (s->used == 0) {
			atomic_fetch_add_explicit(&q->hdr->count, 1, memory_order_relaxed);
			quota_slot_reset(q, s, id, clock_ms);
			return s;
		}
		/* Constant time so probing does not leak digest prefixes. */
		if (b3_equal(s->id, id))
			return s;
		if (!lru || s->used < lru->used)
			lru = s;
	}
	*evicted = true;
	quota_slot_reset(q, lru, id, clock_ms);
	return lru;
}

/* ---- the shared area ----------------------------------------------------- */

size_t quota_area_size(uint32_t max_tenants)
{
	return QUOTA_HDR_SPACE + (size_t)quota_ngroups(max_tenants) * sizeof(quota_group);
}

static int quota_groups_init(quota_group *groups, uint32_t n)
{
	pthread_mutexattr_t a;
	int rc = -1;

	if (pthread_mutexattr_init(&a) != 0)
		return -1;
	if (pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) != 0 ||
	    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) != 0)
		goto out;
	for (uint32_t i = 0; i < n; i++)
		if (pthread_mutex_init(&groups[i].lock, &a) != 0)
			goto out;
	rc = 0;
out:
	pthread_mutexattr_destroy(&a);
	return rc;
}

int quota_area_init(void *area, size_t len, uint32_t max_tenants, uint64_t now_ms)
{
	quota_hdr *h = area;
	uint32_t n = quota_ngroups(max_tenants);

	if (!area || (uintptr_t)area % QUOTA_ALIGN != 0 || len < quota_area_size(max_tenants))
		return -1;
	memset(area, 0, len);
	if (quota_groups_init((quota_group *)((char *)area + QUOTA_HDR_SPACE), n) != 0)
		return -1;
	h->version = QUOTA_VERSION;
	h->ngroups = n;
	h->area_len = len;
	h->group_size = (uint32_t)sizeof(quota_group);
	randombytes_buf(h->hkey, sizeof h->hkey);
	atomic_store(&h->clock_ms, now_ms);
	atomic_store(&h->count, 0);
	atomic_thread_fence(memory_order_release);
	h->magic = QUOTA_MAGIC;      /* last: a half-made area does not open */
	return 0;
}

static bool quota_area_is_valid(const quota_hdr *h, size_t len)
{
	return h->magic == QUOTA_MAGIC && h->version == QUOTA_VERSION &&
	    h->group_size == sizeof(quota_group) && h->area_len == len && h->ngroups > 0 &&
	    h->ngroups <= (len - QUOTA_HDR_SPACE) / sizeof(quota_group);
}

quota_table *quota_open(void *area, size_t len, const quota_limits *l)
{
	quota_hdr *h = area;
	quota_table *q;

	if (!area || (uintptr_t)area % QUOTA_ALIGN != 0 || len < QUOTA_HDR_SPACE ||
	    !quota_area_is_valid(h, len))
		return NULL;
	if (!(q = calloc(1, sizeof *q)))
		return NULL;
	q->hdr = h;
	q->groups = (quota_group *)((char *)area + QUOTA_HDR_SPACE);
	q->ngroups = h->ngroups;
	memcpy(q->hkey, h->hkey, sizeof q->hkey);
	q->lim = *l;
	q->lim.max_tenants = q->ngroups * QUOTA_PROBE;
	return q;
}

/* A private area, MAP_SHARED so that a fork()ed child shares it too. */
quota_table *quota_new(const quota_limits *l, uint64_t now_ms)
{
	size_t len = quota_area_size(l->max_tenants);
	quota_table *q;
	void *area;

	area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		return NULL;
	if (quota_area_init(area, len, l->max_tenants, now_ms) != 0 ||
	    !(q = quota_open(area, len, l))) {
		munmap(area, len);
		return NULL;
	}
	q->own = area;
	q->own_len = len;
	return q;
}

void quota_free(quota_table *q)
{
	if (!q)
		return;
	sodium_memzero(q->hkey, sizeof q->hkey);
	if (q->own) {
		sodium_memzero(q->hdr->hkey, sizeof q->hdr->hkey);
		munmap(q->own, q->own_len);
	}
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

/* ---- locking ------------------------------------------------------------- */

/* A bucket left unusable (a non-finite value, a clock from the future) by
 * a holder that died or scribbled starts empty now: it refills at its rate,
 * where a NaN fill would admit nothing (or everything) for ever. */
static void quota_bucket_repair(tbucket *b, uint64_t clock_ms)
{
	if (isfinite(b->tokens) && isfinite(b->rate) && isfinite(b->burst) &&
	    b->last_ms <= clock_ms)
		return;
	b->rate = 0;
	b->burst = 1.0;
	b->tokens = 0;
	b->last_ms = clock_ms;
}

/* The holder died inside the group: its last update may be half done. Each
 * field was stored whole, so every slot is a tenant (maybe a half-renamed
 * one, which is forgotten) with buckets the next charge clamps anyway. */
static void quota_group_repair(quota_table *q, quota_group *g)
{
	uint64_t clock_ms = atomic_load_explicit(&q->hdr->clock_ms, memory_order_relaxed);

	for (size_t i = 0; i < QUOTA_PROBE; i++) {
		quota_bucket_repair(&g->slots[i].req, clock_ms);
		quota_bucket_repair(&g->slots[i].bytes, clock_ms);
		if (g->slots[i].used > g->tick)
			g->tick = g->slots[i].used;
	}
}

static int quota_lock(quota_table *q, quota_group *g)
{
	int rc = pthread_mutex_lock(&g->lock);

	if (rc == EOWNERDEAD) {
		quota_group_repair(q, g);
		rc = pthread_mutex_consistent(&g->lock);
		log_kv(LOG_LEVEL_WARN, "quota group lock taken over from a dead process", LOG_END);
	}
	return rc == 0 ? 0 : -1;
}

static void quota_unlock(quota_group *g)
{
	(void)pthread_mutex_unlock(&g->lock);
}

/* The node's latest clock, advanced to now_ms (lock-free maximum). */
static uint64_t quota_clock(quota_table *q, uint64_t now_ms)
{
	uint64_t seen = atomic_load_explicit(&q->hdr->clock_ms, memory_order_relaxed);

	/* Each failed CAS means another process moved the clock forward. */
	while (now_ms > seen &&
	    !atomic_compare_exchange_weak_explicit(&q->hdr->clock_ms, &seen, now_ms,
	    memory_order_relaxed, memory_order_relaxed))
		;
	return now_ms > seen ? now_ms : seen;
}

int quota_test_hold(quota_table *q, const char *key)
{
	uint8_t id[B3_OUT_LEN];

	b3_keyed_hash(q->hkey, key, strlen(key), id);
	return quota_lock(q, quota_group_of(q, id));
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

/* A tenant's locked group and its slot at now_ms (found or made, marked
 * recently used). NULL (nothing locked) if the lock is unusable. */
typedef struct quota_hold {
	quota_group *g;
	quota_slot  *s;
	bool         evicted;
} quota_hold;

static int quota_touch(quota_table *q, const char *key, uint64_t now_ms, quota_hold *h)
{
	uint8_t id[B3_OUT_LEN];
	uint64_t clock_ms = quota_clock(q, now_ms);

	b3_keyed_hash(q->hkey, key, strlen(key), id);
	h->g = quota_group_of(q, id);
	if (quota_lock(q, h->g) != 0) {
		(void)BUG("quota group lock unusable");
		return -1;   /* spelled out: the analyzer does not see BUG's value */
	}
	h->s = quota_slot_get(q, h->g, id, clock_ms, &h->evicted);
	h->s->used = ++h->g->tick;   /* refused tenants stay recent: eviction must not refill them */
	return 0;
}

/* Unlock, then count (no call out while a lock is held). */
static void quota_release(quota_hold *h)
{
	quota_unlock(h->g);
	if (h->evicted)
		metrics_count("quota_evictions_total", "", 1);
}

/* The byte bucket with the table's current limits, refilled to now_ms. */
static void quota_bytes_refill(const quota_table *q, quota_slot *s, uint64_t now_ms)
{
	quota_bucket_apply(&s->bytes, (double)q->lim.bytes_per_s,
	                   quota_at_least_one(q->lim.bytes_burst));
	(void)tbucket_take(&s->bytes, 0, now_ms);    /* refill only */
}

static quota_result quota_charge_slot(const quota_table *q, quota_slot *s,
                                      const quota_req_params *rp, bool bytes_on,
                                      uint64_t bytes, uint64_t now_ms,
                                      unsigned *retry_after_s)
{
	quota_result r;

	if (rp->on) {
		quota_bucket_apply(&s->req, rp->rate, rp->burst);
		(void)tbucket_take(&s->req, 0, now_ms);      /* refill only */
	}
	if (bytes_on)
		quota_bytes_refill(q, s, now_ms);
	r = quota_judge(s, rp, bytes_on, bytes, now_ms, retry_after_s);
	if (r != QUOTA_OK)
		return r;
	if (rp->on)
		s->req.tokens -= 1.0;
	if (bytes_on)
		s->bytes.tokens -= (double)bytes;
	return QUOTA_OK;
}

/* An unusable lock (BUG, counted) admits: it can only come from a corrupted
 * area, and refusing would lock the group's tenants out until a restart. */
quota_result quota_charge(quota_table *q, const char *key, uint64_t bytes,
                          uint64_t rate_per_s, uint64_t rate_burst, uint64_t now_ms,
                          unsigned *retry_after_s)
{
	quota_req_params rp = quota_req_effective(&q->lim, rate_per_s, rate_burst);
	bool bytes_on = q->lim.bytes_per_s > 0 && bytes > 0;
	quota_hold h;
	quota_result r;

	if (quota_touch(q, key, now_ms, &h) != 0)
		return QUOTA_OK;
	r = quota_charge_slot(q, h.s, &rp, bytes_on, bytes, now_ms, retry_after_s);
	quota_release(&h);
	return r;
}

void quota_settle(quota_table *q, const char *key, uint64_t reserved, uint64_t used,
                  uint64_t now_ms)
{
	quota_hold h;

	if (!q || q->lim.bytes_per_s == 0 || reserved == used)
		return;
	if (quota_touch(q, key, now_ms, &h) != 0)
		return;
	quota_bytes_refill(q, h.s, now_ms);
	h.s->bytes.tokens += (double)reserved - (double)used;  /* refund, or debt past the reservation */
	if (h.s->bytes.tokens > h.s->bytes.burst)
		h.s->bytes.tokens = h.s->bytes.burst;
	quota_release(&h);
}

size_t quota_tenants(const quota_table *q)
{
	return q ? (size_t)atomic_load_explicit(&q->hdr->count, memory_order_relaxed) : 0;
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
