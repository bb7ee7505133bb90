/*
 * zkseen.h — the replay cache of holder proofs (docs/zk.md "Replay").
 *
 * A proof is accepted once: after it verifies, its fingerprint (BLAKE3 of
 * its text) is inserted with an expiry of its timestamp + the skew window;
 * a second insert before then is a replay. A proof older than the window is
 * refused as stale before it gets here, so an entry is never needed past
 * its expiry and the table stays bounded by what arrives within one window.
 *
 * One table per node, like the quota table: it lives in the metrics annex
 * (the supervisor lays it out, every gateway worker and omnigate opens it),
 * so a proof replayed to another worker or to OAP/1 is still caught. A
 * table is ZKSEEN_PROBE-slot groups, each under a robust process-shared
 * mutex. A group full of live entries refuses a new proof (ZKSEEN_FULL)
 * rather than forget one that could then be replayed: fail closed.
 * Only proofs that verified are inserted, so filling it takes a holder key.
 */
#ifndef MN_CORE_ZKSEEN_H
#define MN_CORE_ZKSEEN_H

#include <stddef.h>
#include <stdint.h>

#define ZKSEEN_PROBE   16u
#define ZKSEEN_FP_LEN  16u

typedef enum {
	ZKSEEN_NEW = 0,    /* first sight: recorded */
	ZKSEEN_REPLAY,     /* seen before and not expired */
	ZKSEEN_FULL,       /* no room without forgetting a live entry */
} zkseen_result;

typedef struct zkseen zkseen;

/* Bytes of a shared area holding `entries` (rounded up to whole groups). */
size_t zkseen_area_size(uint32_t entries);
/* Lay out a table in area (64-byte aligned, len >= zkseen_area_size). 0/-1. */
__attribute__((warn_unused_result))
int zkseen_area_init(void *area, size_t len, uint32_t entries);
/* A handle on a laid-out area (borrowed; must outlive the handle). NULL if
 * it is not a table of exactly len bytes. */
zkseen *zkseen_open(void *area, size_t len);
/* A private table (tests, processes without an annex). */
zkseen *zkseen_new(uint32_t entries);
void zkseen_free(zkseen *z);

/* Record fp (ZKSEEN_FP_LEN bytes) until expires_s, judged at now_s. */
zkseen_result zkseen_insert(zkseen *z, const uint8_t *fp, uint64_t expires_s, uint64_t now_s);

#endif
