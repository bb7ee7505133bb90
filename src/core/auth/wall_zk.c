/*
 * wall_zk.c — the wall's holder-proof step (see wall_zk.h, docs/zk.md).
 * Without -Dzk=enabled only the refusal of holder-bound tokens is left.
 */
#include "core/auth/wall_zk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config/config.h"
#include "core/metrics/metrics.h"
#include "lib/b3.h"
#include "lib/log.h"
#include "mn_build.h"

#if MN_WITH_ZK
#include "core/auth/zkproof.h"
#include "core/auth/zkseen.h"
#define WALL_ZK_PRE ZK_BATCH_MAX
_Static_assert(ZK_PROOF_TEXT_LEN == ZK_PROOF_TEXT_MAX, "wall.h's proof length");
#else
#define WALL_ZK_PRE 1
#endif

struct wall_zk {
	bool     enabled;
	bool     broken;            /* zk.enabled, but the replay table cannot be used */
	uint64_t skew_s;
#if MN_WITH_ZK
	zkseen  *seen;
	uint32_t seen_entries;      /* the private table's size (no annex) */
	bool     seen_shared;
	/* proofs that passed a batch, by request key; consumed on use */
	uint8_t  pre[WALL_ZK_PRE][B3_OUT_LEN];
	bool     pre_used[WALL_ZK_PRE];
	size_t   pre_next;
#endif
};

wall_zk *wall_zk_new(void)
{
	return calloc(1, sizeof(wall_zk));
}

bool wall_zk_enabled(const wall_zk *z)
{
	return z->enabled;
}

void wall_zk_free(wall_zk *z)
{
	if (!z)
		return;
#if MN_WITH_ZK
	zkseen_free(z->seen);
#endif
	free(z);
}

static void fail(wall_zk_verdict *out, const char *reason, const char *detail)
{
	char labels[48];

	out->ok = false;
	out->reason = reason;
	out->detail = detail;
	snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
	metrics_count("zk_verify_fail_total", labels, 1);
}

void wall_zk_settled(bool matched)
{
	wall_zk_verdict v;

	if (matched)
		metrics_count("zk_verify_success_total", "", 1);
	else
		fail(&v, "binding", "the body does not hash to the digest the proof names");
}

#if MN_WITH_ZK

size_t wall_zk_area_size(const mn_config *cfg)
{
	return cfg->zk_enabled ? zkseen_area_size(cfg->zk_replay_cache) : 0;
}

int wall_zk_area_init(void *area, size_t len, const mn_config *cfg)
{
	return cfg->zk_enabled ? zkseen_area_init(area, len, cfg->zk_replay_cache) : 0;
}

/* The test hook WALL_ZK_TEST_FAIL_ENV: only a build with assertions
 * (not -Dbuildtype=release) reads it, and it can only take protection's
 * service away (holder tokens refused, readiness degraded), never weaken it. */
static bool table_test_fails(void)
{
#ifndef NDEBUG
	const char *v = getenv(WALL_ZK_TEST_FAIL_ENV);

	if (v && strcmp(v, "1") == 0) {
		log_kv(LOG_LEVEL_WARN, "test hook: the zk replay table cannot be opened",
		       "env", WALL_ZK_TEST_FAIL_ENV, LOG_END);
		return true;
	}
#endif
	return false;
}

int wall_zk_configure(wall_zk *z, const mn_config *cfg, void *area, size_t len, char *err,
                      size_t errlen)
{
	z->enabled = cfg->zk_enabled;
	z->skew_s = cfg->zk_skew_ms / 1000u;
	z->broken = false;
	if (!z->enabled || z->seen)
		return 0;   /* the table's size is a restart key: opened once */
	if (table_test_fails())
		z->seen = NULL;
	else if (area && len)
		z->seen = zkseen_open(area, len);
	else
		z->seen = zkseen_new(cfg->zk_replay_cache);
	if (!z->seen) {
		z->enabled = false;   /* fail closed: holder tokens are refused */
		z->broken = true;
		snprintf(err, errlen, "zk.replay_cache: cannot open the node's replay table");
		return -1;
	}
	return 0;
}

/* BLAKE3 over everything the verification depended on. */
static void request_key(const uint8_t *pk, const wall_req *rq, const char *audience,
                        uint8_t out[B3_OUT_LEN])
{
	uint8_t buf[ZK_POINT_LEN + ZK_METHOD_MAX + ZK_PATH_MAX + ZK_AUD_MAX + ZK_PROOF_TEXT_LEN + 3];
	size_t n = 0;
	const char *parts[3] = { rq->method, rq->path, audience ? audience : "" };
	size_t caps[3] = { ZK_METHOD_MAX, ZK_PATH_MAX, ZK_AUD_MAX };

	memcpy(buf, pk, ZK_POINT_LEN);
	n = ZK_POINT_LEN;
	for (int i = 0; i < 3; i++) {
		size_t l = strnlen(parts[i], caps[i]);
		memcpy(buf + n, parts[i], l);
		n += l;
		buf[n++] = 0;
	}
	memcpy(buf + n, rq->proof, rq->proof_len <= ZK_PROOF_TEXT_LEN ? rq->proof_len : 0);
	n += rq->proof_len <= ZK_PROOF_TEXT_LEN ? rq->proof_len : 0;
	b3_hash(buf, n, out);
}

static bool pre_take(wall_zk *z, const uint8_t key[B3_OUT_LEN])
{
	for (size_t i = 0; i < WALL_ZK_PRE; i++)
		if (z->pre_used[i] && b3_equal(z->pre[i], key)) {
			z->pre_used[i] = false;
			return true;
		}
	return false;
}

size_t wall_zk_prepare(wall_zk *z, const wall_req *rqs, const uint8_t *const *holders,
                       size_t n, const char *audience)
{
	zk_batch_item it[ZK_BATCH_MAX];
	zk_proof p[ZK_BATCH_MAX];
	size_t idx[ZK_BATCH_MAX], m = 0, good;

	if (!z->enabled)
		return 0;
	for (size_t i = 0; i < n && m < ZK_BATCH_MAX; i++) {
		if (!holders[i] || !rqs[i].proof ||
		    zkproof_parse(rqs[i].proof, rqs[i].proof_len, &p[m]) != ZK_OK)
			continue;
		it[m] = (zk_batch_item){ .pk = holders[i], .p = &p[m],
		                         .rq = { rqs[i].method, rqs[i].path, audience } };
		idx[m++] = i;
	}
	if (m < 2)
		return 0;   /* one proof: wall_zk_check verifies it as usual */
	good = zkproof_verify_batch(it, m);
	for (size_t k = 0; k < m; k++) {
		if (!it[k].ok)
			continue;
		request_key(holders[idx[k]], &rqs[idx[k]], audience, z->pre[z->pre_next]);
		z->pre_used[z->pre_next] = true;
		z->pre_next = (z->pre_next + 1) % WALL_ZK_PRE;
	}
	metrics_count("zk_batch_proofs_total", "", m);
	return good;
}

/* The body digest the proof must carry, or a binding refusal. */
static bool body_bound(const wall_req *rq, const zk_proof *p, wall_zk_verdict *out)
{
	uint8_t empty[B3_OUT_LEN];

	if (rq->body_id) {
		if (b3_equal(p->body, rq->body_id))
			return true;
		fail(out, "binding", "the proof's body digest is not the request's object id");
		return false;
	}
	if (rq->body_digest_enforced) {
		out->has_digest = true;   /* the handler holds the body to it */
		memcpy(out->digest, p->body, sizeof out->digest);
		return true;
	}
	if (rq->body_bytes != 0) {
		fail(out, "binding", "holder-bound requests carry a body only on object writes");
		return false;
	}
	b3_hash("", 0, empty);
	if (b3_equal(p->body, empty))
		return true;
	fail(out, "binding", "the proof's body digest is not the empty body's");
	return false;
}

static bool proof_fresh(const wall_zk *z, const zk_proof *p, uint64_t now,
                        wall_zk_verdict *out)
{
	if (p->ts <= now + z->skew_s && p->ts + z->skew_s >= now)
		return true;
	fail(out, "stale", "the proof's timestamp is outside the node's skew window (zk.skew)");
	return false;
}

void wall_zk_check(wall_zk *z, const wall_req *rq, const captoken_info *info,
                   const char *audience, wall_zk_verdict *out)
{
	uint64_t now = (uint64_t)time(NULL);
	uint8_t key[B3_OUT_LEN], fp[B3_OUT_LEN];
	zk_proof p;

	memset(out, 0, sizeof *out);
	if (!info->has_holder) {
		fail(out, "unbound", "a proof was sent with a token bound to no holder key");
		return;
	}
	if (z->broken) {
		fail(out, "unavailable", "the node's replay table cannot be used (see /readyz)");
		return;
	}
	if (!z->enabled || !z->seen) {
		fail(out, "disabled", "this node does not verify holder proofs (zk.enabled is false)");
		return;
	}
	if (!rq->proof) {
		fail(out, "missing", "the token is bound to a holder key: send a Ron-Proof");
		return;
	}
	if (!zkproof_key_valid(info->holder)) {
		fail(out, "bad_key", "the token's holder key is not a Ristretto255 point");
		return;
	}
	if (zkproof_parse(rq->proof, rq->proof_len, &p) != ZK_OK) {
		fail(out, "malformed", "the proof does not parse");
		return;
	}
	if (!proof_fresh(z, &p, now, out) || !body_bound(rq, &p, out))
		return;
	zk_request zr = { rq->method, rq->path, audience };
	request_key(info->holder, rq, audience, key);
	if (!pre_take(z, key) && zkproof_verify(info->holder, &zr, &p) != ZK_OK) {
		fail(out, "bad_proof", "the proof does not verify for this key and request");
		return;
	}
	b3_hash(rq->proof, rq->proof_len, fp);
	switch (zkseen_insert(z->seen, fp, p.ts + z->skew_s, now)) {
	case ZKSEEN_NEW:
		break;
	case ZKSEEN_REPLAY:
		fail(out, "replay", "this proof was already used");
		return;
	case ZKSEEN_FULL:
		fail(out, "replay_cache_full", "too many proofs within the skew window (zk.replay_cache)");
		return;
	}
	out->ok = true;
	if (!out->has_digest)   /* else once the body is known (wall_zk_settled) */
		metrics_count("zk_verify_success_total", "", 1);
}

#else /* !MN_WITH_ZK: holder-bound tokens are refused, nothing else */

size_t wall_zk_area_size(const mn_config *cfg)
{
	(void)cfg;
	return 0;
}

int wall_zk_area_init(void *area, size_t len, const mn_config *cfg)
{
	(void)area; (void)len; (void)cfg;
	return 0;
}

int wall_zk_configure(wall_zk *z, const mn_config *cfg, void *area, size_t len, char *err,
                      size_t errlen)
{
	(void)area; (void)len; (void)err; (void)errlen;
	z->enabled = false;
	z->skew_s = cfg->zk_skew_ms / 1000u;
	return 0;
}

size_t wall_zk_prepare(wall_zk *z, const wall_req *rqs, const uint8_t *const *holders,
                       size_t n, const char *audience)
{
	(void)z; (void)rqs; (void)holders; (void)n; (void)audience;
	return 0;
}

void wall_zk_check(wall_zk *z, const wall_req *rq, const captoken_info *info,
                   const char *audience, wall_zk_verdict *out)
{
	(void)z; (void)rq; (void)audience;
	memset(out, 0, sizeof *out);
	if (!info->has_holder)
		fail(out, "unbound", "a proof was sent with a token bound to no holder key");
	else
		fail(out, "disabled", "this build has no ZK support (-Dzk=disabled)");
}

#endif
