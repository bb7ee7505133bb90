/*
 * prov_record.h — the signed provider record: "node N serves object CID at
 * OAP address A until T", stored in the DHT under the object's key and
 * verifiable by anyone without trusting OpenDHT (docs/network.md).
 *
 * Encoding (lib/wire.h, big-endian):
 *   version u8 = 1, cid[32], node_pk[32], oap_addr str (u16 length, 1..63
 *   bytes, numeric "ip:port" or "[ip6]:port"), issued u64, expires u64 (unix
 *   seconds), sig[64]
 * or, for a node reachable as a Tor onion service (docs/tor.md):
 *   version u8 = 2, cid[32], node_pk[32], oap_addr str (0..63 bytes: empty
 *   with tor.only), onion str (u16 length, "<56 base32>.onion:port", v3),
 *   issued u64, expires u64, sig[64]
 * sig = Ed25519 by node_pk over BLAKE3("macronode/provider/v1" || every byte
 * before sig). The provider's node id is BLAKE3(node_pk). At most
 * PROV_RECORD_MAX bytes.
 *
 * DHT key of a cid: BLAKE3("macronode/provider-key/v1" || cid) (32 bytes;
 * the dht service cuts it to OpenDHT's 20-byte InfoHash).
 *
 * A record read from the DHT is untrusted input: prov_record_verify says
 * exactly why one is refused (dht_records_rejected_total{reason}). Nothing
 * here logs or allocates.
 */
#ifndef MN_CORE_DHT_PROV_RECORD_H
#define MN_CORE_DHT_PROV_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/identity/identity.h"

#define PROV_RECORD_VERSION 1u
#define PROV_RECORD_ONION   2u       /* the version that carries an onion address */
#define PROV_CID_LEN        32u
#define PROV_ADDR_MAX       63u      /* bytes of oap_addr */
#define PROV_ONION_MAX      68u      /* bytes of onion: 56 + ".onion" + ":65535" */
#define PROV_RECORD_MAX     (1u + PROV_CID_LEN + IDENTITY_PK_LEN + 2u + PROV_ADDR_MAX + 2u + \
                             PROV_ONION_MAX + 8u + 8u + IDENTITY_SIG_LEN)
/* A record may claim at most this lifetime (expires - issued): dht.record_ttl
 * is at most this, so a longer one is not ours. */
#define PROV_TTL_MAX_S      (7u * 24u * 3600u)
/* Clocks disagree: a record issued this far in our future is still taken. */
#define PROV_CLOCK_SKEW_S   300u
#define PROV_SIG_DOMAIN     "macronode/provider/v1"
#define PROV_KEY_DOMAIN     "macronode/provider-key/v1"

typedef struct prov_record {
	uint8_t  cid[PROV_CID_LEN];
	uint8_t  node_pk[IDENTITY_PK_LEN];
	char     oap_addr[PROV_ADDR_MAX + 1];  /* "" only beside an onion (tor.only) */
	char     onion[PROV_ONION_MAX + 1];    /* "" in a version 1 record */
	uint64_t issued, expires;          /* unix seconds */
	uint8_t  sig[IDENTITY_SIG_LEN];
} prov_record;

/* Why a record is refused (the reason label of dht_records_rejected_total). */
typedef enum prov_verdict {
	PROV_OK = 0,
	PROV_E_OVERSIZED,     /* more than PROV_RECORD_MAX bytes */
	PROV_E_MALFORMED,     /* not exactly the encoding, a bad address, a lifetime out of range */
	PROV_E_EXPIRED,       /* expires <= now */
	PROV_E_WRONG_CID,     /* a record of another cid (or under another key) */
	PROV_E_SIGNATURE,     /* the signature does not verify */
} prov_verdict;

/* "oversized", "malformed", "expired", "wrong_key", "bad_signature". */
const char *prov_verdict_name(prov_verdict v);

/* The DHT key of cid. */
void prov_record_key(const uint8_t cid[PROV_CID_LEN], uint8_t key[32]);

/* Fill and sign *r: cid, this identity's key, oap_addr (copied; must be a
 * numeric address of at most PROV_ADDR_MAX bytes), issued = now_s,
 * expires = now_s + ttl_s (1..PROV_TTL_MAX_S). 0, or -1 (bad argument, no key). */
__attribute__((warn_unused_result))
int prov_record_sign(prov_record *r, const node_identity *id, const uint8_t cid[PROV_CID_LEN],
                     const char *oap_addr, uint64_t now_s, uint64_t ttl_s);

/* The same with an onion address ("<v3>.onion:port", or NULL/"": a version
 * 1 record); oap_addr may then be "" (tor.only: no IP published). */
__attribute__((warn_unused_result))
int prov_record_sign_onion(prov_record *r, const node_identity *id,
                           const uint8_t cid[PROV_CID_LEN], const char *oap_addr,
                           const char *onion, uint64_t now_s, uint64_t ttl_s);

/* The addresses a record of version v may carry: v1 a numeric oap_addr and
 * no onion; v2 a v3 onion and a numeric or empty oap_addr. (node records
 * share the rule.) */
bool prov_addrs_ok(unsigned v, const char *oap_addr, const char *onion);

/* Which of a record's addresses this node dials (docs/tor.md): the onion
 * when Tor is on and the record has one (through tor's SOCKS port), else
 * the IP address unless tor.only; NULL when none fits. Borrowed from the
 * arguments. */
const char *prov_pick_addr(bool tor, bool tor_only, const char *oap_addr, const char *onion);

/* Encode a signed record into buf (PROV_RECORD_MAX is always enough).
 * The length, or -1 when it does not fit or a field is out of range. */
__attribute__((warn_unused_result))
ssize_t prov_record_encode(const prov_record *r, uint8_t *buf, size_t cap);

/* Decode p[0..n) (borrowed) strictly into *r, without judging the signature
 * or the clock. PROV_OK, PROV_E_OVERSIZED or PROV_E_MALFORMED (*r zeroed). */
prov_verdict prov_record_decode(const uint8_t *p, size_t n, prov_record *r);

/* Everything: decode, lifetime, clock (now_s), the key (key: the DHT key
 * it was found under, or NULL), cid (want_cid, or NULL), then the
 * signature. *r is filled only when PROV_OK (else zeroed). */
prov_verdict prov_record_verify(const uint8_t *p, size_t n, const uint8_t *key,
                                const uint8_t *want_cid, uint64_t now_s, prov_record *r);

#endif
