/*
 * audit_record.h — one ron-audit v1 record (docs/audit.md "Records").
 *
 * A record is a JSON object with exactly these keys:
 *   v 1 · stream · seq · ts_ms · kind · writer_id · reason (strings/uints)
 *   actor · subject · attrs (objects, any content within audit_json's rules)
 *   prev ("b3:0" for seq 0, else the previous record's self_hash)
 *   self_hash ("b3:" + hex BLAKE3 of the canonical JSON of the record
 *              WITHOUT its self_hash key)
 * Its stored form (one segment line, one Merkle leaf) is the canonical JSON
 * of the whole record including self_hash, at most AUDIT_RECORD_MAX bytes.
 *
 * A writer fills an audit_entry; the log (sole writer, see audit_log.h)
 * assigns seq and prev from the stream's head and calls audit_record_encode.
 */
#ifndef MN_CORE_AUDIT_RECORD_H
#define MN_CORE_AUDIT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lib/b3.h"

#define AUDIT_VERSION        1
#define AUDIT_RECORD_MAX     16384u   /* bytes of a stored record (newline excluded) */
#define AUDIT_STREAM_MAX     64u      /* bytes of a stream name: [A-Za-z0-9._:@-]+ */
#define AUDIT_GENESIS_PREV   "b3:0"
#define AUDIT_ERR_MAX        256u
#define AUDIT_RECENT_MAX     20u      /* records one read of the newest returns at most */

/* What a writer supplies (all borrowed for the call). NULL objects are {}. */
typedef struct audit_entry {
	const char   *stream;
	const char   *kind;
	const char   *writer_id;
	const char   *reason;
	uint64_t      ts_ms;
	const json_t *actor;
	const json_t *subject;
	const json_t *attrs;
} audit_entry;

/* The chain fields of a parsed record. */
typedef struct audit_record {
	char     stream[AUDIT_STREAM_MAX + 1];
	uint64_t seq;
	uint64_t ts_ms;
	bool     genesis;                 /* prev is "b3:0" */
	uint8_t  prev[B3_OUT_LEN];        /* zero when genesis */
	uint8_t  self_hash[B3_OUT_LEN];
} audit_record;

/* Is s a valid stream name? */
bool audit_stream_is_valid(const char *s, size_t n);

/* The canonical bytes (no self_hash) of e at seq with prev (NULL = genesis)
 * into out[0..cap); *len set. 0, or -1 with err. This is what self_hash
 * hashes: vector R1 is this function's output. */
__attribute__((warn_unused_result))
int audit_record_canonical(const audit_entry *e, uint64_t seq, const uint8_t *prev,
                           char *out, size_t cap, size_t *len, char *err, size_t errlen);

/* The stored form of e (canonical JSON with self_hash) into out[0..cap),
 * *len set, self_hash returned. 0, or -1 with err (bad stream name, a float,
 * too large: more than AUDIT_RECORD_MAX). */
__attribute__((warn_unused_result))
int audit_record_encode(const audit_entry *e, uint64_t seq, const uint8_t *prev,
                        char *out, size_t cap, size_t *len, uint8_t self_hash[B3_OUT_LEN],
                        char *err, size_t errlen);

/* Strictly parse a stored record: canonical JSON, exactly the keys above,
 * v == 1, a valid stream, seq 0 iff prev is "b3:0", and self_hash equal to
 * the hash of the record without it. 0 with *out, or -1 with err. */
__attribute__((warn_unused_result))
int audit_record_parse(const char *s, size_t n, audit_record *out, char *err, size_t errlen);

#endif
