/*
 * audit_merkle.h — the Merkle tree over all audit records (RFC 6962 shape,
 * BLAKE3): leaf = BLAKE3(0x00 || stored record bytes), node = BLAKE3(0x01 ||
 * left || right), the root of n leaves split at the largest power of two
 * below n, the empty tree's root BLAKE3("").
 *
 * audit_merkle is the incremental form: the roots of the perfect subtrees
 * the leaves so far decompose into (one per set bit of size, at most 64), so
 * appending is O(log n) time and the state is O(log n) bytes whatever the
 * size. Proofs (RFC 6962 §2.1.1 audit paths) are computed by streaming the
 * leaf hashes once through a callback; no leaf array is ever held.
 */
#ifndef MN_CORE_AUDIT_MERKLE_H
#define MN_CORE_AUDIT_MERKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/b3.h"

#define AUDIT_MERKLE_MAX_DEPTH 64u   /* levels: sizes below 2^64, proofs of at most 64 hashes */

typedef struct audit_merkle {
	uint64_t size;                                       /* leaves so far */
	uint8_t  sub[AUDIT_MERKLE_MAX_DEPTH][B3_OUT_LEN];    /* sub[h]: perfect subtree of 2^h
	                                                        leaves, valid when bit h of size */
} audit_merkle;

typedef struct audit_proof {
	uint64_t index;                                      /* leaf proven */
	uint64_t size;                                       /* tree size it is proven in */
	unsigned len;                                        /* hashes in path */
	uint8_t  path[AUDIT_MERKLE_MAX_DEPTH][B3_OUT_LEN];   /* bottom (sibling of leaf) first */
} audit_proof;

void audit_merkle_leaf(const void *rec, size_t n, uint8_t out[B3_OUT_LEN]);
void audit_merkle_node(const uint8_t l[B3_OUT_LEN], const uint8_t r[B3_OUT_LEN],
                       uint8_t out[B3_OUT_LEN]);

void audit_merkle_init(audit_merkle *m);
/* Append one leaf hash. 0, or -1 when the tree is full (2^64 - 1 leaves). */
__attribute__((warn_unused_result))
int audit_merkle_push(audit_merkle *m, const uint8_t leaf[B3_OUT_LEN]);
/* The root of the leaves so far. */
void audit_merkle_root(const audit_merkle *m, uint8_t out[B3_OUT_LEN]);
/* Same content? (size and every live subtree root) */
bool audit_merkle_equal(const audit_merkle *a, const audit_merkle *b);

/* next() returns the hash of leaf i; it is called for i = first .. size-1
 * in order, exactly once each (first = base ? base->size : 0). 0, or -1 to
 * abort the proof. */
typedef int (*audit_leaf_fn)(void *ctx, uint64_t i, uint8_t leaf[B3_OUT_LEN]);

/* The audit path of leaf index in the tree of the first size leaves, and
 * that leaf's hash (leaf may be NULL). base (NULL = none) is the state after
 * the first base->size leaves when those are no longer at hand (retention
 * removed them; a segment header keeps this state): its subtree roots stand
 * in for them, so any index >= base->size can still be proven. 0, or -1
 * (index >= size, index < base->size, or next failed). */
__attribute__((warn_unused_result))
int audit_merkle_prove(const audit_merkle *base, uint64_t index, uint64_t size,
                       audit_leaf_fn next, void *ctx, audit_proof *out,
                       uint8_t leaf[B3_OUT_LEN]);

/* Does the path take leaf to root? (RFC 9162 §2.1.3.2) */
bool audit_merkle_verify(const uint8_t leaf[B3_OUT_LEN], const audit_proof *p,
                         const uint8_t root[B3_OUT_LEN]);

#endif
