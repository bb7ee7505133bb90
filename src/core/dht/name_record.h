/*
 * name_record.h — signed name records: "name → cid at sequence seq",
 * signed by the node that published it (docs/names.md "Records").
 *
 * Binary form, on lib/wire.h (integers big-endian):
 *
 *   version u8 = 1
 *   name    str    (u16 length + bytes; a valid name, core/dht/name.h)
 *   cid     [32]   the object's BLAKE3
 *   seq     u64    1..2^53-1 (NAME_RECORD_SEQ_MAX); a name's records are ordered by it
 *   node_pk [32]   the publisher's Ed25519 public key (node id = BLAKE3(pk))
 *   issued  u64    Unix seconds at signing (informative; seq orders)
 *   sig     [64]   Ed25519 by node_pk over
 *                  BLAKE3("macronode/name/v1" || every byte before sig)
 *
 * A record is at most NAME_RECORD_MAX bytes. Its DHT key is
 * BLAKE3("macronode/name-key/v1" || name) (name_record_key).
 *
 * Records arrive from the network (the DHT), so decoding is strict and a
 * refusal is a value, never a crash: name_record_check takes exactly one
 * record — a byte short or left over, an unknown version, a name that
 * breaks a rule, a seq out of range or a signature that does not verify is refused with
 * its reason. The reasons' names label index_records_rejected_total.
 *
 * Nothing here allocates, logs or keeps state.
 */
#ifndef MN_CORE_DHT_NAME_RECORD_H
#define MN_CORE_DHT_NAME_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/dht/name.h"
#include "core/identity/identity.h"

#define NAME_RECORD_VERSION    1u
#define NAME_RECORD_CID_LEN    32u
#define NAME_RECORD_SIG_DOMAIN "macronode/name/v1"
#define NAME_RECORD_KEY_DOMAIN "macronode/name-key/v1"
#define NAME_RECORD_KEY_LEN    32u
/* The largest seq: 2^53 - 1, so that every seq is exact as a JSON number
 * (a JavaScript client's Number) in the gateway's answers. A name whose seq
 * reached it is spent: no record can follow it. */
#define NAME_RECORD_SEQ_MAX    ((UINT64_C(1) << 53) - 1u)
/* Fixed fields around the name: version, name length, cid, seq, pk, issued, sig. */
#define NAME_RECORD_FIXED      (1u + 2u + NAME_RECORD_CID_LEN + 8u + IDENTITY_PK_LEN + 8u + \
                                IDENTITY_SIG_LEN)
#define NAME_RECORD_MIN        (NAME_RECORD_FIXED + 1u)              /* a one-byte name */
#define NAME_RECORD_MAX        (NAME_RECORD_FIXED + NAME_MAX_LEN)    /* 402 bytes */

typedef struct name_record {
	char     name[NAME_MAX_LEN + 1];   /* NUL-terminated; name_len bytes */
	size_t   name_len;
	uint8_t  cid[NAME_RECORD_CID_LEN];
	uint64_t seq;
	uint8_t  node_pk[IDENTITY_PK_LEN];
	uint64_t issued;
	uint8_t  sig[IDENTITY_SIG_LEN];
} name_record;

/* Why a record was refused. The names (name_rec_result_name) are label
 * values of index_records_rejected_total: never rename one. */
typedef enum name_rec_result {
	NAME_REC_OK = 0,
	NAME_REC_MALFORMED,    /* "malformed": short, trailing bytes, seq 0 or past NAME_RECORD_SEQ_MAX */
	NAME_REC_OVERSIZED,    /* "oversized": more than NAME_RECORD_MAX bytes */
	NAME_REC_BAD_VERSION,  /* "bad_version": a version other than 1 */
	NAME_REC_BAD_NAME,     /* "bad_name": the name breaks a rule of name.h */
	NAME_REC_BAD_SIG,      /* "bad_sig": the signature does not verify */
	NAME_REC_WRONG_NAME,   /* "wrong_name": a record for another name than the key asked */
	NAME_REC_STALE_SEQ,    /* "stale_seq": seq not above the one held (no rollback) */
	NAME_REC_RESULT_COUNT,
} name_rec_result;

/* "malformed", …; "ok" for NAME_REC_OK, "unknown" out of range. */
const char *name_rec_result_name(name_rec_result r);

/* The DHT key of name[0..n): BLAKE3("macronode/name-key/v1" || name). */
void name_record_key(const char *name, size_t n, uint8_t key[NAME_RECORD_KEY_LEN]);

/* Fill a record for name (a valid name: name_check), cid and seq (1..NAME_RECORD_SEQ_MAX),
 * issued now (Unix seconds), signed by id. 0, or -1: a bad argument or no
 * key (the record is then zeroed). */
__attribute__((warn_unused_result))
int name_record_make(name_record *r, const char *name, size_t n, const uint8_t cid[32],
                     uint64_t seq, uint64_t issued, const node_identity *id);

/* Encode into buf (cap bytes; NAME_RECORD_MAX always fits). The length, or
 * -1 when r is not a record this module would sign (bad name, seq out of range) or buf
 * is too small — a caller's bug. */
__attribute__((warn_unused_result))
ssize_t name_record_encode(const name_record *r, uint8_t *buf, size_t cap);

/* Decode exactly p[0..n) into *out: structure and name rules, not the
 * signature. NAME_REC_OK, or the reason (*out is then zeroed). */
name_rec_result name_record_decode(const uint8_t *p, size_t n, name_record *out);

/* Does r's signature verify under r->node_pk? NAME_REC_OK or NAME_REC_BAD_SIG. */
name_rec_result name_record_verify(const name_record *r);

/* name_record_decode, then name_record_verify: a record from the network.
 * With key non-NULL the record's name must also hash to key (a value stored
 * under another name's key is NAME_REC_WRONG_NAME). *out zeroed on refusal. */
name_rec_result name_record_check(const uint8_t *p, size_t n, const uint8_t *key,
                                  name_record *out);

/* The publisher's node id text "b3:<hex>" (IDENTITY_ID_TEXT bytes). */
void name_record_node_id(const name_record *r, char out[IDENTITY_ID_TEXT]);

#endif
