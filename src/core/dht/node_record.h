/*
 * node_record.h — the signed node record: "node N answers OAP/1 on the peer
 * plane at address A until T". Every overlay service puts its own under one
 * well-known DHT key so that nodes can find peers to replicate to
 * (docs/network.md "Replication"); readers verify each before use.
 *
 * Encoding (lib/wire.h, big-endian):
 *   version u8 = 1, node_pk[32], oap_addr str (u16 length, 1..63 bytes,
 *   numeric "ip:port" or "[ip6]:port"), issued u64, expires u64 (unix s),
 *   sig[64]
 * or version u8 = 2 with onion str after oap_addr (which may then be
 * empty), as provider records (prov_record.h; docs/tor.md).
 * sig = Ed25519 by node_pk over BLAKE3("macronode/node/v1" || every byte
 * before sig). Node id = BLAKE3(node_pk). At most NODE_RECORD_MAX bytes.
 *
 * DHT key (the same for every node): BLAKE3("macronode/nodes/v1").
 *
 * Nothing here logs or allocates.
 */
#ifndef MN_CORE_DHT_NODE_RECORD_H
#define MN_CORE_DHT_NODE_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/dht/prov_record.h"   /* PROV_ADDR_MAX, prov_verdict */
#include "core/identity/identity.h"

#define NODE_RECORD_VERSION 1u
#define NODE_RECORD_ONION   2u
#define NODE_RECORD_MAX     (1u + IDENTITY_PK_LEN + 2u + PROV_ADDR_MAX + 2u + PROV_ONION_MAX + \
                             8u + 8u + IDENTITY_SIG_LEN)
#define NODE_TTL_MAX_S      (7u * 24u * 3600u)
#define NODE_SIG_DOMAIN     "macronode/node/v1"
#define NODE_KEY_DOMAIN     "macronode/nodes/v1"

typedef struct node_record {
	uint8_t  node_pk[IDENTITY_PK_LEN];
	char     oap_addr[PROV_ADDR_MAX + 1];  /* "" only beside an onion */
	char     onion[PROV_ONION_MAX + 1];    /* "" in a version 1 record */
	uint64_t issued, expires;          /* unix seconds */
	uint8_t  sig[IDENTITY_SIG_LEN];
} node_record;

/* The one DHT key every node record is stored under. */
void node_record_key(uint8_t key[32]);

/* Fill and sign *r with this identity's key, oap_addr (copied; numeric, at
 * most PROV_ADDR_MAX bytes), issued = now_s, expires = now_s + ttl_s
 * (1..NODE_TTL_MAX_S). 0, or -1 (bad argument). */
__attribute__((warn_unused_result))
int node_record_sign(node_record *r, const node_identity *id, const char *oap_addr,
                     uint64_t now_s, uint64_t ttl_s);

/* The same with an onion address (NULL/"": version 1). */
__attribute__((warn_unused_result))
int node_record_sign_onion(node_record *r, const node_identity *id, const char *oap_addr,
                           const char *onion, uint64_t now_s, uint64_t ttl_s);

/* Encode into buf (NODE_RECORD_MAX is always enough): length or -1. */
__attribute__((warn_unused_result))
ssize_t node_record_encode(const node_record *r, uint8_t *buf, size_t cap);

/* Strict decode of p[0..n) (borrowed), no signature or clock check:
 * PROV_OK, PROV_E_OVERSIZED or PROV_E_MALFORMED (*r zeroed). */
prov_verdict node_record_decode(const uint8_t *p, size_t n, node_record *r);

/* Decode, lifetime, clock (now_s), key (the key it was found under, or
 * NULL; it must be node_record_key's), signature. The verdict names are
 * prov_verdict_name's (PROV_E_WRONG_CID: under another key). *r is filled
 * only when PROV_OK. */
prov_verdict node_record_verify(const uint8_t *p, size_t n, const uint8_t *key, uint64_t now_s,
                                node_record *r);

#endif
