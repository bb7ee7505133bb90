/*
 * index_msg.h — the index service's verbs: one typed request and one typed
 * reply per verb, with the one encoder and the one decoder both ends use
 * (the client in index_client.c, the server in svc/index/). Layout of every
 * message: docs/internal.md "Index"; fields are lib/wire.h integers, a name
 * as a string (u16 length + bytes), 32-byte ids and signed name records as
 * blobs (u32 length + the bytes of core/dht/name_record.h).
 *
 * A message travels as the payload of one OAP/1 frame (app_proto_id
 * INDEX_APP_PROTO): a request's frame `code` is its verb, a reply's its
 * status, 200 or an error status (400..599) whose payload is the typed error
 * (index_rep_err). No verb carries file descriptors.
 *
 * The decoders are strict: a wrong verb, a name that breaks a rule of
 * core/dht/name.h (the gateway checks names before it asks), a record in a
 * reply that does not decode, a short message or a trailing byte is -1.
 * Both ends are the same binary, so a message that does not decode is a bug
 * and fatal to its receiver (log_fatalx). The one field that is not ours is
 * IMPORT's record — bytes from the network — which the decoder only bounds;
 * the index judges it (and counts a refusal) like any record from the DHT.
 * Nothing here logs or allocates.
 */
#ifndef MN_CORE_DHT_INDEX_MSG_H
#define MN_CORE_DHT_INDEX_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/dht/name_record.h"

#define INDEX_APP_PROTO      0x0300u
#define INDEX_MSG_TEXT_MAX   96u       /* an error message, NUL included */
/* Records one HISTORY reply carries at most (index.history is bounded by it). */
#define INDEX_HISTORY_MAX    64u
/* Records one LIST reply carries at most. */
#define INDEX_LIST_MAX       64u
/* The largest encoded payload: a LIST reply at its longest (the records
 * of a HISTORY reply, and a cursor and a flag). */
#define INDEX_MSG_MAX        (1u + INDEX_LIST_MAX * (4u + NAME_RECORD_MAX) + \
                              4u + NAME_MAX_LEN + 8u + 1u)

/* Verbs: the OAP `code` of an index request. */
enum {
	INDEX_PING = 1, INDEX_PUBLISH = 2, INDEX_RESOLVE = 3, INDEX_HISTORY = 4, INDEX_IMPORT = 5,
	INDEX_LIST = 6,
	INDEX_VERB_LAST = INDEX_LIST,
};

/* Where a RESOLVE answer came from. */
typedef enum index_source {
	INDEX_SOURCE_LOCAL = 0,     /* the index held the name */
	INDEX_SOURCE_NETWORK = 1,   /* found in the DHT just now (and kept) */
	INDEX_SOURCE_LAST = INDEX_SOURCE_NETWORK,
} index_source;

/* The error reply's code (the name docs/internal.md lists for each). */
typedef enum index_err {
	INDEX_ERR_BAD_REQUEST = 1,  /* 400: IMPORT of a record that does not check */
	INDEX_ERR_NOT_FOUND,        /* 404 */
	INDEX_ERR_STALE,            /* 409: IMPORT of a seq not above the one held */
	INDEX_ERR_UNAVAILABLE,      /* 503: retryable */
	INDEX_ERR_TIMEOUT,          /* 504: the network lookup ran out of time; retryable */
	INDEX_ERR_FULL,             /* 507: index.max_names reached */
	INDEX_ERR_INTERNAL,         /* any other status */
	INDEX_ERR_LAST = INDEX_ERR_INTERNAL,
} index_err;

/* ---- requests ------------------------------------------------------------- */

typedef struct index_name {             /* a valid name (core/dht/name.h) */
	char   s[NAME_MAX_LEN + 1];     /* NUL-terminated */
	size_t len;
} index_name;

typedef struct index_req_publish {
	index_name name;
	uint8_t    cid[NAME_RECORD_CID_LEN];
} index_req_publish;

typedef struct index_req_resolve {
	index_name name;
	bool       network;         /* not held: may ask the DHT (when the node runs it) */
} index_req_resolve;

typedef struct index_req_history {
	index_name name;
} index_req_history;

typedef struct index_req_import {       /* a record from elsewhere, unjudged */
	uint8_t rec[NAME_RECORD_MAX];
	size_t  len;                    /* 1..NAME_RECORD_MAX */
} index_req_import;

/* Where a LIST walk is: opaque to the client, which hands back what the
 * last reply gave (zeroed: the start). The table's own cursor (the disk
 * table's last name, the RAM table's position). */
typedef struct index_list_cursor {
	index_name after;               /* "" or a valid name */
	uint64_t   pos;
} index_list_cursor;

typedef struct index_req_list {
	index_list_cursor from;
} index_req_list;

typedef struct index_req {
	uint16_t verb;                  /* INDEX_*: selects the member (PING has none) */
	union {
		index_req_publish publish;
		index_req_resolve resolve;
		index_req_history history;
		index_req_import  import;
		index_req_list    list;
	} u;
} index_req;

/* ---- replies -------------------------------------------------------------- */

typedef struct index_rep_publish {
	bool        created;            /* the name was not held before */
	name_record rec;                /* the record signed for it */
} index_rep_publish;

typedef struct index_rep_resolve {
	uint8_t     source;             /* index_source */
	name_record rec;                /* the current record */
} index_rep_resolve;

typedef struct index_rep_history {
	uint8_t     n;                  /* 1..INDEX_HISTORY_MAX, seq strictly rising */
	name_record recs[INDEX_HISTORY_MAX];
} index_rep_history;

/* LIST: the current records of up to INDEX_LIST_MAX held names after the
 * cursor (names of the node's table, not the network cache), the cursor
 * to ask from next, and whether the walk goes on (more: false at the
 * end; names added or removed meanwhile may be met twice or missed). */
typedef struct index_rep_list {
	uint8_t           n;            /* 0..INDEX_LIST_MAX */
	name_record       recs[INDEX_LIST_MAX];
	index_list_cursor next;
	bool              more;
} index_rep_list;

typedef struct index_rep_err {          /* any status 400..599, every verb */
	uint8_t code;                   /* index_err */
	bool    retryable;
	char    message[INDEX_MSG_TEXT_MAX];
} index_rep_err;

typedef struct index_rep {
	uint16_t verb;                  /* the request's verb: selects the member on 200 */
	uint16_t status;                /* 200, or 400..599 (then u.err) */
	union {
		index_rep_publish publish;
		index_rep_resolve resolve;
		index_rep_history history;
		index_rep_list    list;
		index_rep_err     err;
	} u;                            /* PING, IMPORT: none on 200 */
} index_rep;

/* "PING", "PUBLISH", …, or "unknown". */
const char *index_msg_verb_name(uint16_t verb);

/* Encode into buf (cap bytes; INDEX_MSG_MAX is always enough). The payload
 * length, or -1 for an unknown verb, a bad name, an out-of-range status,
 * code or count, or a buffer too small — bugs of the caller. */
__attribute__((warn_unused_result))
ssize_t index_msg_req_encode(const index_req *q, uint8_t *buf, size_t cap);
__attribute__((warn_unused_result))
ssize_t index_msg_rep_encode(const index_rep *r, uint8_t *buf, size_t cap);

/* Decode p[0..n) (borrowed for the call) as a request with this verb, or a
 * reply with this status to a request with this verb. 0, or -1 when it is
 * not exactly such a message (*q / *r is then zeroed). */
__attribute__((warn_unused_result))
int index_msg_req_decode(uint16_t verb, const uint8_t *p, size_t n, index_req *q);
__attribute__((warn_unused_result))
int index_msg_rep_decode(uint16_t verb, uint16_t status, const uint8_t *p, size_t n,
                         index_rep *r);

/* Make *r the error reply (status 400..599) to verb: code and retryable
 * follow the status; message is copied, cut to INDEX_MSG_TEXT_MAX - 1 bytes. */
void index_msg_rep_err(index_rep *r, uint16_t verb, uint16_t status, const char *message);

/* Set n to s[0..len) (len ≤ NAME_MAX_LEN; the caller checked the name). */
void index_name_set(index_name *n, const char *s, size_t len);

#endif
