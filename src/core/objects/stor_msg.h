/*
 * stor_msg.h — the storage verbs' messages: one typed request and one typed
 * reply per verb, with the one encoder and the one decoder both ends use
 * (the client in stor_client.c, the server in svc/storage/storage.c).
 * Layout of every message: docs/internal.md; the fields are lib/wire.h
 * integers, fixed 32-byte ids and one bounded string.
 *
 * A message travels as the payload of one OAP/1 frame (app_proto_id
 * STOR_APP_PROTO): a request's frame `code` is its verb, a reply's is its
 * status, 200 or an error status (400..599) whose payload is the typed error
 * (stor_rep_err). File descriptors travel beside the frame (SCM_RIGHTS); how
 * many belongs to the message type too (stor_msg_rep_nfds).
 *
 * The decoders are strict: a wrong verb, a field out of range, a short
 * message or a trailing byte is -1. Both ends are the same binary, so a
 * message that does not decode is a bug and fatal to its receiver
 * (log_fatalx); nothing here logs or allocates.
 */
#ifndef MN_CORE_STOR_MSG_H
#define MN_CORE_STOR_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STOR_APP_PROTO     0x0100u
#define STOR_ID_LEN        32u       /* a BLAKE3 object id */
#define STOR_MSG_TEXT_MAX  96u       /* an error message, NUL included */
/* A share key of PUT_BEGIN, NUL included: room for the wall's longest
 * tenant key ("tid:" + a 255-byte token id; core/auth/wall.h
 * WALL_TENANT_MAX) and any address key. */
#define STOR_KEY_MAX       320u
/* Ids in one LIST reply (a page of the store, in id order). */
#define STOR_LIST_MAX      256u
/* The largest encoded request: a PUT_BEGIN with both keys at their longest. */
#define STOR_REQ_MAX       (8u + 2u * (2u + STOR_KEY_MAX - 1u))
/* The largest encoded payload: a full LIST reply. */
#define STOR_MSG_MAX       (2u + STOR_LIST_MAX * STOR_ID_LEN + 1u)
_Static_assert(STOR_MSG_MAX >= STOR_REQ_MAX, "the largest message is a reply");

/* WATCH's removal epoch memfd: its size; the counter is its first 8 bytes. */
#define STOR_EPOCH_LEN 4096u

/* A recorded Content-Type, NUL included (core/objects/mediatype.h
 * MEDIATYPE_MAX; docs/media.md). */
#define STOR_CTYPE_MAX 128u

/* Verbs: the OAP `code` of a storage request. */
enum {
	STOR_PING = 1, STOR_STAT = 2, STOR_OPEN = 3, STOR_PUT_BEGIN = 4,
	STOR_PUT_COMMIT = 5, STOR_PUT_ABORT = 6, STOR_QUARANTINE = 7, STOR_LIST = 8,
	STOR_PIN = 9, STOR_WATCH = 10, STOR_META_SET = 11, STOR_META_GET = 12,
	STOR_VERB_LAST = STOR_META_GET,
};

/* The error reply's code (the name docs/internal.md lists for each). */
typedef enum stor_err {
	STOR_ERR_BAD_REQUEST = 1,   /* 400 */
	STOR_ERR_NOT_FOUND,         /* 404 */
	STOR_ERR_TOO_LARGE,         /* 413 */
	STOR_ERR_HASH_MISMATCH,     /* 422 */
	STOR_ERR_QUARANTINED,       /* 502 */
	STOR_ERR_UNAVAILABLE,       /* 503: retryable */
	STOR_ERR_INTERNAL,          /* any other status */
	STOR_ERR_LAST = STOR_ERR_INTERNAL,
} stor_err;

/* ---- requests ------------------------------------------------------------- */

typedef struct stor_req_id {            /* STAT, OPEN, QUARANTINE, PIN */
	uint8_t id[STOR_ID_LEN];
} stor_req_id;

/* The keys say on whose behalf the upload is opened: storage holds each
 * tenant and each client address to a share of the upload slots
 * (storage.max_uploads_per_tenant / _per_peer). "" is no key (not counted). */
typedef struct stor_req_put_begin {
	uint64_t max_len;
	char     tenant[STOR_KEY_MAX];  /* the wall's quota key: "t:<tenant>", "tid:<id>", "ip:<addr>" */
	char     peer[STOR_KEY_MAX];    /* the client address: "ip:<addr>", IPv6 by its /64 */
} stor_req_put_begin;

typedef struct stor_req_put_commit {
	uint64_t handle;
	uint64_t len;
	bool     has_expect;
	uint8_t  expect[STOR_ID_LEN];   /* the id the bytes must hash to; zero if !has_expect */
	bool     cache;                 /* a cache copy (fetched on a miss): evictable */
} stor_req_put_commit;

typedef struct stor_req_put_abort {
	uint64_t handle;
} stor_req_put_abort;

/* A page of the stored objects (not quarantined), in id order: the first
 * max (1..STOR_LIST_MAX) ids after `after` (from the first when !has_after). */
typedef struct stor_req_list {
	bool     has_after;
	uint8_t  after[STOR_ID_LEN];    /* zero if !has_after */
	uint16_t max;
} stor_req_list;

/* META_SET: record the object's Content-Type unless one is recorded
 * (the first upload's type stays; an upload's replaces one a read
 * sniffed, svc/storage/store_meta.c); the type follows mediatype_parse's
 * grammar, checked again by storage. META_GET uses stor_req_id. */
typedef struct stor_req_meta_set {
	uint8_t id[STOR_ID_LEN];
	char    ctype[STOR_CTYPE_MAX];
	bool    by_read;                /* sniffed on a /media read, not an upload's */
} stor_req_meta_set;

typedef struct stor_req {
	uint16_t verb;                  /* STOR_*: selects the member (PING, WATCH have none) */
	union {
		stor_req_id         stat, open, quarantine, pin, meta_get;
		stor_req_meta_set   meta_set;
		stor_req_put_begin  put_begin;
		stor_req_put_commit put_commit;
		stor_req_put_abort  put_abort;
		stor_req_list       list;
	} u;
} stor_req;

/* ---- replies -------------------------------------------------------------- */

typedef struct stor_rep_stat {          /* STAT, PIN */
	uint64_t len;
} stor_rep_stat;

typedef struct stor_rep_open {          /* + 2 fds: blob, outboard */
	uint64_t len;
	uint64_t groups;                /* b3tree_groups(len): checked by the decoder */
} stor_rep_open;

typedef struct stor_rep_put_begin {     /* + 1 fd: the writable upload file */
	uint64_t handle;
} stor_rep_put_begin;

typedef struct stor_rep_put_commit {
	uint8_t id[STOR_ID_LEN];        /* the id the store computed */
	bool    created;                /* false: it was there already */
} stor_rep_put_commit;

typedef struct stor_rep_list {
	uint16_t n;                     /* ≤ the request's max */
	uint8_t  ids[STOR_LIST_MAX][STOR_ID_LEN];
	bool     more;                  /* false: this page holds the last object */
} stor_rep_list;

typedef struct stor_rep_meta {        /* META_SET, META_GET */
	uint64_t len;                   /* the object's length */
	char     ctype[STOR_CTYPE_MAX]; /* the type in force; "" when none is recorded */
	bool     by_read;               /* it was sniffed on a read (an upload may replace it) */
} stor_rep_meta;

typedef struct stor_rep_err {           /* any status 400..599, every verb */
	uint8_t code;                   /* stor_err */
	bool    retryable;
	char    message[STOR_MSG_TEXT_MAX];
} stor_rep_err;

typedef struct stor_rep {
	uint16_t verb;                  /* the request's verb: selects the member on 200 */
	uint16_t status;                /* 200, or 400..599 (then u.err) */
	union {
		stor_rep_stat       stat, pin;
		stor_rep_open       open;
		stor_rep_put_begin  put_begin;
		stor_rep_put_commit put_commit;
		stor_rep_list       list;
		stor_rep_meta       meta;
		stor_rep_err        err;
	} u;                            /* PING, PUT_ABORT, QUARANTINE, WATCH: none on 200 */
} stor_rep;

/* "PING", "STAT", …, or "unknown" (for the one log line of a fatal error). */
const char *stor_msg_verb_name(uint16_t verb);

/* Encode into buf (cap bytes; STOR_MSG_MAX is always enough). Returns the
 * payload length, or -1 for an unknown verb, an out-of-range status or
 * error code, or a buffer too small — all of them bugs of the caller. An
 * error reply is the same for every verb, so it needs no known verb (the
 * 413 to a datagram too large to decode has none). */
__attribute__((warn_unused_result))
ssize_t stor_msg_req_encode(const stor_req *q, uint8_t *buf, size_t cap);
__attribute__((warn_unused_result))
ssize_t stor_msg_rep_encode(const stor_rep *r, uint8_t *buf, size_t cap);

/* Decode the payload p[0..n) (borrowed for the call) of a request with this
 * verb, or of a reply with this status to a request with this verb, into *q
 * / *r. 0, or -1 when it is not exactly such a message (*q / *r is then all
 * zero: nothing half-read is left to use). */
__attribute__((warn_unused_result))
int stor_msg_req_decode(uint16_t verb, const uint8_t *p, size_t n, stor_req *q);
__attribute__((warn_unused_result))
int stor_msg_rep_decode(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, stor_rep *r);

/* The fds that travel with this reply: OPEN 200 → 2, PUT_BEGIN and WATCH
 * 200 → 1, else 0. */
size_t stor_msg_rep_nfds(const stor_rep *r);

/* Make *r the error reply (status 400..599) to verb: code and retryable
 * follow the status; message is copied, cut to STOR_MSG_TEXT_MAX - 1 bytes. */
void stor_msg_rep_err(stor_rep *r, uint16_t verb, uint16_t status, const char *message);

#endif
