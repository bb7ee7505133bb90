/*
 * dht_verify.h — the verifier of each kind of DHT value. The dht service
 * judges every value by its kind before it puts it into the DHT and before
 * it returns one it read from there: OpenDHT stores and carries bytes, our
 * own signatures say what they are worth (docs/network.md).
 *
 * One row per dht_kind (dht_verify.c): PROVIDER is prov_record_verify;
 * NAME is name_record_check (core/dht/name_record.h, the index service's
 * records: structure, name rules, the name's key, signature); NODE is
 * node_record_verify (core/dht/node_record.h, the overlay's node records). A refusal names its reason: the label of
 * dht_records_rejected_total{reason}.
 */
#ifndef MN_CORE_DHT_VERIFY_H
#define MN_CORE_DHT_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "core/dht/dht_msg.h"

/* Why a value is refused: the reason labels, one name each. */
typedef enum dht_reject {
	DHT_REJECT_NONE = 0,
	DHT_REJECT_OVERSIZED,       /* more than its kind allows (or DHT_VALUE_MAX) */
	DHT_REJECT_MALFORMED,       /* not the kind's encoding */
	DHT_REJECT_EXPIRED,
	DHT_REJECT_WRONG_KEY,       /* a record of another cid / name than the key read */
	DHT_REJECT_SIGNATURE,       /* the signature does not verify */
	DHT_REJECT_UNVERIFIABLE,    /* no verifier for its kind in this build */
	DHT_REJECT_WRONG_ID,        /* a value id that is not its signer's for the key (dht_value.h) */
	DHT_REJECT_STALE,           /* not newer than the same signer's value it would replace */
	DHT_REJECT_COUNT
} dht_reject;

/* "oversized", "malformed", "expired", "wrong_key", "bad_signature",
 * "unverifiable", "wrong_id", "stale". */
const char *dht_reject_name(dht_reject r);

/* Judge value v[0..n) (borrowed) of kind found under (or to be put under)
 * key at unix time now_s. DHT_REJECT_NONE when it may be stored or returned;
 * an unknown kind is DHT_REJECT_UNVERIFIABLE. */
dht_reject dht_verify(dht_kind kind, const uint8_t key[DHT_KEY_LEN], const uint8_t *v,
                      size_t n, uint64_t now_s);

/* What a value says of itself, decoded without judging it: who signed it,
 * how new it is (order: a name record's seq; a provider or node record's
 * expires) and the key it belongs under (a provider record's cid key, a name
 * record's name key, the node records' one key). */
typedef struct dht_meta {
	uint8_t  signer[32];    /* the signer's Ed25519 public key (node id = BLAKE3 of it) */
	uint64_t order;         /* larger is newer, among one signer's values */
	uint8_t  key[DHT_KEY_LEN];
} dht_meta;

/* Fill *m from v[0..n) (borrowed) of kind. 0, or -1 when v does not decode
 * as its kind (or the kind has no row). */
int dht_verify_meta(dht_kind kind, const uint8_t *v, size_t n, dht_meta *m);

/* The expiry a verified value claims (unix s), for keeping the newest of
 * one signer's values; 0 when the kind has none or v does not decode. */
uint64_t dht_verify_expires(dht_kind kind, const uint8_t *v, size_t n);

#endif
