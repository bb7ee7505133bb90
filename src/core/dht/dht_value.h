/*
 * dht_value.h — one value per signer under a key (docs/network.md "Record
 * replacement").
 *
 * Every value macronode puts carries an OpenDHT value id derived from who
 * signed it, its kind and its key (dht_value_derive_id), so a republish, a newer
 * name seq or a refreshed node record replaces the signer's previous value
 * at the nodes that store it instead of piling up beside it. Storing nodes
 * judge with dht_value_judge (a value new to them: it must verify, belong
 * under the key it is put under, and carry its signer's id) and
 * dht_value_judge_edit (a value replacing one with the same id: also the
 * same signer, and newer). Readers keep the newest value per signer with
 * dht_keep.
 *
 * Pure functions of their arguments: they run on OpenDHT's threads as well
 * as on the event loop. Nothing here allocates, logs or keeps state.
 */
#ifndef MN_CORE_DHT_VALUE_H
#define MN_CORE_DHT_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "core/dht/dht_msg.h"
#include "core/dht/dht_verify.h"

#define DHT_VALUE_ID_DOMAIN "macronode/dht-value-id/v1"
#define DHT_VALUE_IH_LEN    20u     /* OpenDHT's InfoHash: the first bytes of our key */

/* The value id of kind under key signed by signer: the first 8 bytes of
 * BLAKE3(DHT_VALUE_ID_DOMAIN || kind u8 || signer[32] || key[32]),
 * little-endian; never 0 (OpenDHT's invalid id). */
uint64_t dht_value_derive_id(dht_kind kind, const uint8_t signer[32], const uint8_t key[DHT_KEY_LEN]);

/* The id of value v[0..n) of kind (its signer, its own key), or 0 when it
 * does not decode. */
uint64_t dht_value_id_of(dht_kind kind, const uint8_t *v, size_t n);

/* May a storing node keep v[0..n) (borrowed), put with value id `id` under
 * InfoHash ih, at unix time now_s? It must verify for its kind, belong
 * under a key whose first DHT_VALUE_IH_LEN bytes are ih, and id must be its
 * signer's (DHT_REJECT_WRONG_ID otherwise). *m (may be NULL) is filled when
 * DHT_REJECT_NONE. */
dht_reject dht_value_judge(dht_kind kind, const uint8_t ih[DHT_VALUE_IH_LEN], uint64_t id,
                           const uint8_t *v, size_t n, uint64_t now_s, dht_meta *m);

/* May v[0..n) replace old[0..oldn), the value a storing node holds under ih
 * with the same id? v must pass dht_value_judge, be signed by old's signer
 * (DHT_REJECT_WRONG_ID) and be strictly newer (DHT_REJECT_STALE): a higher
 * seq for names, a later expiry for provider and node records. An old value
 * that does not decode any more is replaced by any value that passes. */
dht_reject dht_value_judge_edit(dht_kind kind, const uint8_t ih[DHT_VALUE_IH_LEN], uint64_t id,
                                const uint8_t *old, size_t oldn, const uint8_t *v, size_t n,
                                uint64_t now_s);

/* A reader's choice among the verified values of one lookup: at most
 * DHT_GET_MAX, one per signer, each signer's newest. */
typedef struct dht_keep_slot {
	uint8_t  signer[32];
	uint64_t order;
} dht_keep_slot;

typedef struct dht_keep {
	size_t        n;
	dht_keep_slot slot[DHT_GET_MAX];
	int           evict;     /* when full: 1 = a newer value displaces the oldest kept */
} dht_keep;

/* An empty set. evict_when_full: whether, once DHT_GET_MAX signers are
 * kept, a value newer than the oldest kept displaces it (names: the answer
 * is the highest seq, which must survive any number of lower ones) or is
 * dropped (providers, nodes: first come, since a stranger may claim any
 * expiry). */
void dht_keep_init(dht_keep *k, int evict_when_full);

/* Offer a verified value of signer with order. The slot index to store it
 * in (a new slot, the signer's own older value, or the displaced oldest),
 * or -1 when it is not kept (an older or equal value of a kept signer, or
 * the set is full). */
int dht_keep_offer(dht_keep *k, const uint8_t signer[32], uint64_t order);

#endif
