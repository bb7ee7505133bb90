/*
 * quota.h — per-tenant quotas: a token bucket for requests and one for
 * request body bytes per tenant, in a bounded table (the wall's third step).
 *
 * One table per worker process, owned by its event loop (not thread-safe).
 * The table holds at most max_tenants entries; when it is full the least
 * recently seen tenant in the probe window is forgotten (its buckets start
 * full again if it comes back). Tenant keys are opaque strings chosen by the
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
#define QUOTA_PROBE      16u    /* slots examined per lookup */

typedef struct quota_limits {
	uint32_t rps;            /* requests per second per tenant; 0 = no request cap */
	uint32_t burst;          /* request bucket capacity (>= 1) */
	uint64_t bytes_per_s;    /* body bytes per second per tenant; 0 = no byte cap */
	uint64_t bytes_burst;    /* byte bucket capacity (>= 1) */
	uint32_t max_tenants;    /* table capacity (>= 16) */
} quota_limits;

typedef enum {
	QUOTA_OK = 0,
	QUOTA_REQUESTS,          /* the request bucket is empty */
	QUOTA_BYTES,             /* the byte bucket is empty or in debt */
} quota_result;

typedef struct quota_table quota_table;

/* NULL on allocation failure. max_tenants is fixed for the table's life. */
quota_table *quota_new(const quota_limits *l, uint64_t now_ms);
void quota_free(quota_table *q);
/* Live reload of rates and bursts (max_tenants is ignored): existing buckets
 * keep their fill, clamped to the new burst. */
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
