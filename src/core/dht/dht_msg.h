/*
 * dht_msg.h — the dht service's verbs: one typed request and one typed
 * reply per verb, with the one encoder and the one decoder both ends use
 * (the client in dht_client.c, the server in svc/dht/). Layout of every
 * message: docs/internal.md ("DHT"); fields are lib/wire.h integers, fixed
 * 32-byte keys, bounded strings and blobs.
 *
 * A message travels as the payload of one OAP/1 frame (app_proto_id
 * DHT_APP_PROTO): a request's frame `code` is its verb, a reply's its status,
 * 200 or an error status (400..599) with the typed error (dht_rep_err). No
 * dht message carries a descriptor.
 *
 * The decoders are strict (a wrong verb, a field out of range, a short
 * message or a trailing byte is -1): both ends are the same binary, so a
 * message that does not decode is a bug and fatal to its receiver. The
 * values inside PUT and GET are a different matter: they are signed records
 * from the network, judged by their kind's verifier (dht_verify.h).
 */
#ifndef MN_CORE_DHT_MSG_H
#define MN_CORE_DHT_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/dht/prov_record.h"

#define DHT_APP_PROTO    0x0200u
#define DHT_KEY_LEN      32u
#define DHT_VALUE_MAX    1024u     /* one signed record */
#define DHT_GET_MAX      16u       /* values returned per get (and providers per find) */
#define DHT_PEERS_MAX    32u       /* known nodes listed by PEERS */
#define DHT_NODE_ID_LEN  20u       /* an OpenDHT node id (InfoHash) */
#define DHT_ADDR_MAX     64u       /* "ip:port" / "[ip6]:port" with the NUL */
#define DHT_MSG_TEXT_MAX 96u       /* an error message, NUL included */
/* The largest payload: a GET reply with DHT_GET_MAX values at their largest. */
#define DHT_MSG_MAX      (1u + DHT_GET_MAX * (4u + DHT_VALUE_MAX))

/* What a value is, and so which verifier judges it (dht_verify.h). */
typedef enum dht_kind {
	DHT_KIND_PROVIDER = 1,     /* core/dht/prov_record.h */
	DHT_KIND_NAME = 2,         /* core/dht/name_record.h (index service) */
	DHT_KIND_NODE = 3,         /* core/dht/node_record.h (overlay: peers to replicate to) */
	DHT_KIND_LAST = DHT_KIND_NODE,
} dht_kind;

/* Verbs: the OAP `code` of a dht request. */
enum {
	DHT_PING = 1, DHT_ANNOUNCE = 2, DHT_FIND = 3, DHT_PUT = 4, DHT_GET = 5,
	DHT_PEERS = 6, DHT_STATUS = 7,
	DHT_VERB_LAST = DHT_STATUS,
};

typedef enum dht_err {
	DHT_ERR_BAD_REQUEST = 1,   /* 400 */
	DHT_ERR_REFUSED,           /* 422: the value fails its kind's verifier */
	DHT_ERR_RATE_LIMITED,      /* 429: dht.max_announces_per_second */
	DHT_ERR_UNAVAILABLE,       /* 503: too many operations, or no DHT yet */
	DHT_ERR_TIMEOUT,           /* 504: the network did not confirm in time */
	DHT_ERR_INTERNAL,          /* any other status */
	DHT_ERR_LAST = DHT_ERR_INTERNAL,
} dht_err;

/* ---- requests ------------------------------------------------------------- */

typedef struct dht_req_cid {            /* ANNOUNCE, FIND */
	uint8_t cid[PROV_CID_LEN];
} dht_req_cid;

typedef struct dht_req_put {
	uint8_t        kind;            /* dht_kind */
	uint8_t        key[DHT_KEY_LEN];
	const uint8_t *value;           /* borrowed: the encoder's input / the decoder's message */
	size_t         len;             /* 1..DHT_VALUE_MAX */
} dht_req_put;

typedef struct dht_req_get {
	uint8_t kind;
	uint8_t key[DHT_KEY_LEN];
} dht_req_get;

typedef struct dht_req {
	uint16_t verb;                  /* DHT_*: selects the member (PING, PEERS, STATUS: none) */
	union {
		dht_req_cid announce, find;
		dht_req_put put;
		dht_req_get get;
	} u;
} dht_req;

/* ---- replies -------------------------------------------------------------- */

typedef struct dht_provider {
	uint8_t  node_pk[IDENTITY_PK_LEN];
	char     oap_addr[PROV_ADDR_MAX + 1];  /* "" when only an onion is published */
	char     onion[PROV_ONION_MAX + 1];    /* "" when the record has none */
	uint64_t expires;               /* unix seconds */
} dht_provider;

typedef struct dht_rep_find {
	uint8_t      n;                 /* ≤ DHT_GET_MAX */
	dht_provider p[DHT_GET_MAX];
} dht_rep_find;

typedef struct dht_rep_get {
	uint8_t        n;               /* ≤ DHT_GET_MAX */
	const uint8_t *v[DHT_GET_MAX];  /* borrowed (see dht_req_put.value) */
	size_t         len[DHT_GET_MAX];/* 1..DHT_VALUE_MAX each */
} dht_rep_get;

typedef struct dht_peer {
	uint8_t id[DHT_NODE_ID_LEN];
	char    addr[DHT_ADDR_MAX];
} dht_peer;

typedef struct dht_rep_peers {
	uint32_t good, dubious;         /* routing table: nodes heard from recently / not */
	uint8_t  n;                     /* ≤ DHT_PEERS_MAX listed */
	dht_peer p[DHT_PEERS_MAX];
} dht_rep_peers;

typedef struct dht_rep_status {
	char     addr[DHT_ADDR_MAX];    /* the UDP address bound */
	uint8_t  dht_id[DHT_NODE_ID_LEN];
	uint32_t good, dubious;
	bool     bootstrapped;          /* heard from a node, or an island by configuration */
	uint32_t ops;                   /* lookups and announces in flight */
} dht_rep_status;

typedef struct dht_rep_err {
	uint8_t code;                   /* dht_err */
	bool    retryable;
	char    message[DHT_MSG_TEXT_MAX];
} dht_rep_err;

typedef struct dht_rep {
	uint16_t verb;
	uint16_t status;                /* 200, or 400..599 (then u.err) */
	union {
		dht_rep_find   find;
		dht_rep_get    get;
		dht_rep_peers  peers;
		dht_rep_status status;
		dht_rep_err    err;
	} u;                            /* PING, ANNOUNCE, PUT: none on 200 */
} dht_rep;

/* "PING", "ANNOUNCE", …, or "unknown". */
const char *dht_msg_verb_name(uint16_t verb);

/* Encode into buf (DHT_MSG_MAX is always enough). The payload length, or -1
 * for an unknown verb, a field out of range or a buffer too small (bugs of
 * the caller). */
__attribute__((warn_unused_result))
ssize_t dht_msg_req_encode(const dht_req *q, uint8_t *buf, size_t cap);
__attribute__((warn_unused_result))
ssize_t dht_msg_rep_encode(const dht_rep *r, uint8_t *buf, size_t cap);

/* Decode p[0..n) (borrowed: value pointers point into it). 0, or -1 when it
 * is not exactly such a message (*q / *r all zero then). */
__attribute__((warn_unused_result))
int dht_msg_req_decode(uint16_t verb, const uint8_t *p, size_t n, dht_req *q);
__attribute__((warn_unused_result))
int dht_msg_rep_decode(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, dht_rep *r);

/* Make *r the error reply (status 400..599) to verb, message cut to fit. */
void dht_msg_rep_err(dht_rep *r, uint16_t verb, uint16_t status, const char *message);

#endif
