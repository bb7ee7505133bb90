/*
 * wall_zk.h — the wall's holder-proof step (private to core/auth/wall*.c
 * and tests; docs/zk.md).
 *
 * After a token verified, a token with a holder caveat (captoken_info
 * .has_holder) needs a proof of possession of the holder key bound to this
 * request: wall_zk_check. Refusal reasons, each counted in
 * zk_verify_fail_total{reason} and named in the 401's message (never the
 * proof, the token or a key):
 *   disabled           zk.enabled is false, or the build has no ZK
 *   unavailable        zk.enabled, but this process cannot use the replay
 *                      table (fail closed; /readyz degraded, deps.zk)
 *   missing            no Ron-Proof (HTTP) / "proof" (OAP/1) was sent
 *   unbound            a proof came with a token that has no holder key
 *   bad_key            the holder caveat is not a valid Ristretto255 key
 *   malformed          the proof does not parse
 *   stale              its timestamp is outside ± zk.skew
 *   binding            its body digest is not the request's
 *   bad_proof          the equation fails (another key, method, path,
 *                      audience, or an altered byte)
 *   replay             the same proof was accepted before (node-wide)
 *   replay_cache_full  no room to remember it without forgetting another
 */
#ifndef MN_CORE_AUTH_WALL_ZK_H
#define MN_CORE_AUTH_WALL_ZK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/auth/captoken.h"
#include "core/auth/wall.h"

#define WALL_ZK_DIGEST_LEN 32
/* Test hook (builds with assertions only): "1" makes the replay table
 * fail to open in every process that reads it, as a broken annex would. */
#define WALL_ZK_TEST_FAIL_ENV "MN_TEST_ZK_REPLAY_FAIL"

typedef struct wall_zk wall_zk;

/* The judgement of one request's proof. */
typedef struct wall_zk_verdict {
	bool        ok;
	const char *reason;                        /* static; NULL when ok */
	const char *detail;                        /* static explanation */
	bool        has_digest;                    /* ok: the body must hash to digest */
	uint8_t     digest[WALL_ZK_DIGEST_LEN];
} wall_zk_verdict;

wall_zk *wall_zk_new(void);
bool wall_zk_enabled(const wall_zk *z);
void wall_zk_free(wall_zk *z);
/* zk.enabled, zk.skew, and the replay table: in area[0..len) when the
 * process has the node's annex (len from wall_zk_area_size), else private.
 * 0, or -1 with err. */
int wall_zk_configure(wall_zk *z, const struct mn_config *cfg, void *area, size_t len,
                      char *err, size_t errlen);
/* Bytes of annex the replay table needs for cfg (0: ZK off or compiled out). */
size_t wall_zk_area_size(const struct mn_config *cfg);
/* Lay the table out (the supervisor, once). 0 or -1. */
int wall_zk_area_init(void *area, size_t len, const struct mn_config *cfg);

/* Judge rq's proof against the token's info (info->has_holder or a proof
 * presented); audience is the node's. Counts failures, and successes
 * except when .has_digest: the body is judged at its end (wall_zk_settled). */
void wall_zk_check(wall_zk *z, const wall_req *rq, const captoken_info *info,
                   const char *audience, wall_zk_verdict *out);

/* A write whose body digest the proof fixed (verdict .has_digest) was
 * hashed: count the success wall_zk_check left open, or the failure
 * "binding". */
void wall_zk_settled(bool matched);

/* Batch pre-verification (OAP/1: the START frames that arrived together):
 * the proofs among rqs[0..n) whose tokens carry a holder key are verified
 * in one batch; those that pass are remembered (for this request exactly)
 * so wall_zk_check skips their group arithmetic. Replay, time and binding
 * are still judged by wall_zk_check. holders[i] is the key of rqs[i] or
 * NULL. Returns how many proofs were batch-verified. */
size_t wall_zk_prepare(wall_zk *z, const wall_req *rqs, const uint8_t *const *holders,
                       size_t n, const char *audience);

#endif
