/*
 * zkproof.h — proof of possession of a holder key (docs/zk.md).
 *
 * A capability token may be bound to a holder public key P = x·G on
 * Ristretto255 (captoken.h: the Custom caveat macronode:holder). A request
 * with such a token carries a non-interactive Schnorr proof that its sender
 * knows x, bound to that one request:
 *
 *   T = transcript(params, P, R, method, path, audience, body_b3, ts)
 *   c = reduce(BLAKE3-XOF-64(T))          s = r + c·x        proof = (ts, body_b3, R, s)
 *   verify: s·G == R + c·P
 *
 * The verifier parameters (group, generator, domain tag, version) are one
 * byte string, the parameter bundle; its BLAKE3 is pinned in the node's key
 * store (core/keys/zkpin.h). Nothing here logs, and nothing of a proof or a
 * secret is kept: secret scalars live in caller memory that this module
 * wipes where it made copies.
 *
 * Compiled only with -Dzk=enabled (MN_WITH_ZK).
 */
#ifndef MN_CORE_ZKPROOF_H
#define MN_CORE_ZKPROOF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZK_POINT_LEN      32
#define ZK_SCALAR_LEN     32
#define ZK_DIGEST_LEN     32
#define ZK_VERSION        1
#define ZK_DST            "macronode/zk-pop/v1"
#define ZK_HEADER         "Ron-Proof"
/* wire: version(1) | ts(8, BE) | body_b3(32) | R(32) | s(32) */
#define ZK_PROOF_BIN_LEN  105
#define ZK_PROOF_TEXT_LEN 140            /* base64url, no padding */
#define ZK_PATH_MAX       4096           /* longest path a transcript binds */
#define ZK_AUD_MAX        255
#define ZK_METHOD_MAX     15
#define ZK_TRANSCRIPT_MAX (64 + 3 * ZK_POINT_LEN + ZK_DIGEST_LEN + 8 + 6 + \
                           ZK_METHOD_MAX + ZK_PATH_MAX + ZK_AUD_MAX)
#define ZK_BATCH_MAX      64             /* proofs verified in one batch */

typedef struct zk_proof {
	uint8_t  version;
	uint64_t ts;                       /* unix seconds, the prover's clock */
	uint8_t  body[ZK_DIGEST_LEN];      /* BLAKE3 of the request body */
	uint8_t  R[ZK_POINT_LEN];          /* commitment */
	uint8_t  s[ZK_SCALAR_LEN];         /* response, canonical */
} zk_proof;

/* What a proof is bound to besides its own ts and body digest. Borrowed. */
typedef struct zk_request {
	const char *method;                /* "GET" */
	const char *path;                  /* request path, no query */
	const char *audience;              /* the node's auth.audience */
} zk_request;

typedef enum {
	ZK_OK = 0,
	ZK_MALFORMED,      /* does not parse, or a field out of range */
	ZK_BAD_PROOF,      /* the equation fails: wrong key, request or bytes */
} zk_result;

/* The parameter bundle (static bytes) and its BLAKE3. */
const uint8_t *zkproof_params(size_t *len);
void zkproof_params_hash(uint8_t out[ZK_DIGEST_LEN]);

/* A new key pair (x random, P = x·G). 0 or -1. */
__attribute__((warn_unused_result))
int zkproof_keygen(uint8_t sk[ZK_SCALAR_LEN], uint8_t pk[ZK_POINT_LEN]);
/* P of a secret; -1 when sk is not a canonical non-zero scalar. */
__attribute__((warn_unused_result))
int zkproof_public(const uint8_t sk[ZK_SCALAR_LEN], uint8_t pk[ZK_POINT_LEN]);
/* Is pk a valid, non-identity Ristretto255 encoding? */
bool zkproof_key_valid(const uint8_t pk[ZK_POINT_LEN]);

/* The transcript bytes (docs/zk.md "Transcript"). 0, or -1 when a field is
 * too long for it (method, path, audience limits above) or cap is short. */
__attribute__((warn_unused_result))
int zkproof_transcript(const uint8_t pk[ZK_POINT_LEN], const uint8_t R[ZK_POINT_LEN],
                       const zk_request *rq, const uint8_t body[ZK_DIGEST_LEN], uint64_t ts,
                       uint8_t *out, size_t cap, size_t *len);

/*
 * Prove knowledge of sk for rq at ts with body digest body. The nonce is
 * derived from sk and the transcript (keyed BLAKE3), mixed with rand32 when
 * it is not NULL (hedged; NULL = deterministic, for known-answer vectors).
 * 0 or -1.
 */
__attribute__((warn_unused_result))
int zkproof_prove(const uint8_t sk[ZK_SCALAR_LEN], const zk_request *rq,
                  const uint8_t body[ZK_DIGEST_LEN], uint64_t ts, const uint8_t *rand32,
                  zk_proof *out);

/* Strict parse of the text form (exactly ZK_PROOF_TEXT_LEN base64url
 * characters; version 1; R a valid non-identity point; s canonical). */
__attribute__((warn_unused_result))
zk_result zkproof_parse(const char *s, size_t len, zk_proof *out);
/* Text form into out (ZK_PROOF_TEXT_LEN + 1 bytes, NUL-terminated). */
void zkproof_format(const zk_proof *p, char out[ZK_PROOF_TEXT_LEN + 1]);

/* Verify one proof for pk and rq (ts and body come from the proof; the
 * caller judges them against its clock and the request body). */
__attribute__((warn_unused_result))
zk_result zkproof_verify(const uint8_t pk[ZK_POINT_LEN], const zk_request *rq,
                         const zk_proof *p);

/* One entry of a batch. */
typedef struct zk_batch_item {
	const uint8_t *pk;
	zk_request     rq;
	const zk_proof *p;
	bool           ok;     /* out */
} zk_batch_item;

/*
 * Verify n ≤ ZK_BATCH_MAX proofs at once: one random linear combination
 * (128-bit weights) of every equation, with the terms of one holder key
 * merged into one multiplication. When the combination fails, each proof
 * is verified alone so the good ones still pass. Sets every item's ok;
 * returns how many passed.
 */
size_t zkproof_verify_batch(zk_batch_item *items, size_t n);

#endif
