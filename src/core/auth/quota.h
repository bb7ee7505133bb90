/*
 * quota.h — per-tenant quotas: a token bucket for requests and one for
 * request body bytes per tenant, in a bounded table (the wall's third step).
 *
 * One table per node: it lives in a shared memory area that the supervisor
 * lays out at start (quota_area_init on the annex of the metrics region) and
 * every gateway worker and omnigate opens (quota_open), so a tenant gets its
 * rate once per node, not once per process. Processes serialise on a robust
 * process-shared lock per group of QUOTA_PROBE slots; one that dies holding
 * a lock does not wedge the others. A handle is used by one thread.
 * The table holds at most max_tenants entries (rounded up to whole groups);
 * when a group is full its least recently seen tenant is forgotten (its
 * buckets start full again if it comes back). Tenant keys are opaque strings chosen by the
 * caller ("t:<tenant>", "tid:<token id>", "ip:<addr>"); a slot keeps only
 * the keyed BLAKE3 digest of the whole key, so memory per tenant is fixed
 * whatever the key's length.
 *
 * Byte charges larger than the byte burst are admitted when the bucket is
 * full and leave it in debt (negative), so a large upload is possible but
 * the next one waits until the debt is repaid.
 */
#ifndef MN_CORE_QUOTA_H
#define MN_CORE_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUOTA_MAX_KEY    320u   /* bytes of a tenant key, NUL excluded */
#define QUOTA_PROBE      16u    /* slots examined per lookup: one group */

typedef struct quota_limits {
	uint32_t rps;            /* requests per second per tenant; 0 = no request cap */
	uint32_t burst;          /* request bucket capacity (>= 1) */
	uint64_t bytes_per_s;    /* body bytes per second per tenant; 0 = no byte cap */
	uint64_t bytes_burst;    /* byte bucket capacity (>= 1) */
	uint32_t max_tenants;    /* table capacity (rounded up to a multiple of 16) */
} quota_limits;

typedef enum {
	QUOTA_OK = 0,
	QUOTA_REQUESTS,          /* the request bucket is empty */
	QUOTA_BYTES,             /* the byte bucket is empty or in debt */
} quota_result;

typedef struct quota_table quota_table;

/* Bytes of a shared area for max_tenants tenants. */
size_t quota_area_size(uint32_t max_tenants);
/* Lay out a table in `area` (len >= quota_area_size(max_tenants), 64-byte
 * aligned, shared with the processes that will open it; borrowed): zeroes
 * it, makes the locks and a random hash key. Once, before any quota_open.
 * 0 or -1. */
__attribute__((warn_unused_result))
int quota_area_init(void *area, size_t len, uint32_t max_tenants, uint64_t now_ms);
/* A handle on a table laid out by quota_area_init (area borrowed: it must
 * outlive the handle; the area's capacity wins over l->max_tenants). NULL
 * if the area is not a table of exactly len bytes, or out of memory. */
quota_table *quota_open(void *area, size_t len, const quota_limits *l);
/* A table of its own (private memory, shared only with fork()ed children):
 * for tests and processes without a shared area. NULL on failure.
 * max_tenants is fixed for the table's life. */
quota_table *quota_new(const quota_limits *l, uint64_t now_ms);
/* Frees the handle, and the area if quota_new made it. NULL is a no-op. */
void quota_free(quota_table *q);
/* Live reload of rates and bursts (max_tenants is ignored) for this handle's
 * charges: existing buckets keep their fill, clamped to the new burst. */
void quota_set_limits(quota_table *q, const quota_limits *l);

/*
 * Charge one request carrying `bytes` body bytes to tenant `key` at now_ms.
 * rate_per_s / rate_burst (both 0 = none) are a token's Rate caveat: they can
 * only lower the request rate and burst below the table's limits, never raise
 * them. On refusal nothing is charged and *retry_after_s (may be NULL) is the
 * whole seconds until the refused bucket could admit the request, >= 1.
 */
quota_result quota_charge(quota_table *q, const char *key, uint64_t bytes,
                          uint64_t rate_per_s, uint64_t rate_burst, uint64_t now_ms,
                          unsigned *retry_after_s);
/*
 * Settle a body whose size was not known at admission (a chunked body, an
 * OAP/1 PUT): `reserved` bytes were charged then, `used` arrived. The
 * difference is refunded (never past the burst) or, if more arrived, taken
 * as debt. No-op when the byte cap is off.
 */
void quota_settle(quota_table *q, const char *key, uint64_t reserved, uint64_t used,
                  uint64_t now_ms);
const char *quota_result_name(quota_result r);   /* "ok", "requests", "bytes" */

#endif
