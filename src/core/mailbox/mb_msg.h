/*
 * mb_msg.h — the mailbox service's verbs (docs/internal.md "Mailbox"): one
 * typed request and one typed reply per verb, with the one encoder and the
 * one decoder both ends use (the client core/mailbox/mb_client.c, the
 * server svc/mailbox/). Fields are lib/wire.h integers and strings.
 *
 * A message travels as the payload of one OAP/1 frame (app_proto_id
 * MB_APP_PROTO): a request's `code` is its verb, a reply's its status, 200
 * or an error status (400..599) whose payload is mb_rep_err. Bodies never
 * ride in a frame (the internal frame cap is 64 KiB, and a body may be as
 * large): a SEND with a body carries it in one file descriptor, a sealed
 * memfd of exactly body_len bytes; the RECV and DLQ replies carry the
 * bodies of their items concatenated, in item order, in one sealed memfd
 * (none when every body is empty).
 *
 * The decoders are strict: a wrong verb, a name outside the mailbox name
 * rules (mb_name_check), a count out of range, a short message or a
 * trailing byte is -1 — a bug of the peer (the same binary), fatal to the
 * receiver. Nothing here logs or allocates.
 */
#ifndef MN_CORE_MAILBOX_MB_MSG_H
#define MN_CORE_MAILBOX_MB_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MB_APP_PROTO     0x0710u
#define MB_NAME_MAX      64u      /* a mailbox name (a tenant): bytes */
#define MB_SENDER_MAX    320u     /* the sender's quota key, WALL_TENANT_MAX */
#define MB_IDEM_MAX      128u     /* an Idempotency-Key: bytes of visible ASCII */
#define MB_TEXT_MAX      128u     /* an error message, NUL included */
#define MB_CODE_MAX      32u      /* an error code, NUL included */
#define MB_BATCH_MAX     100u     /* items one RECV or DLQ reply carries at most */
/* The largest body (mailbox.max_body may lower it). */
#define MB_BODY_MAX      (64u * 1024u)
#define MB_BODY_HARD_MAX MB_BODY_MAX
/* The largest payload: a RECV reply of MB_BATCH_MAX items at their longest. */
#define MB_ITEM_MAX      (8u + 2u + MB_SENDER_MAX + 1u + 4u + 8u + 8u + 4u + 32u)
#define MB_MSG_MAX       (2u + MB_BATCH_MAX * MB_ITEM_MAX)

/* Verbs: the OAP `code` of a mailbox request. */
enum {
	MB_PING = 1, MB_SEND = 2, MB_RECV = 3, MB_ACK = 4, MB_NACK = 5, MB_DLQ = 6,
	MB_REQUEUE = 7,
	MB_VERB_LAST = MB_REQUEUE,
};

/* What a message's body is. */
typedef enum mb_kind {
	MB_KIND_TEXT = 0,    /* UTF-8 text ("body" in JSON) */
	MB_KIND_BYTES = 1,   /* any bytes ("body_b64") */
	MB_KIND_CID = 2,     /* a reference to a stored object, no body */
	MB_KIND_LAST = MB_KIND_CID,
} mb_kind;

/* ---- requests ------------------------------------------------------------- */

typedef struct mb_req_send {
	char     recipient[MB_NAME_MAX + 1];
	char     sender[MB_SENDER_MAX + 1];   /* the wall's quota key */
	char     idem[MB_IDEM_MAX + 1];       /* "" = no Idempotency-Key */
	uint8_t  kind;                        /* mb_kind */
	uint32_t body_len;                    /* 0..MB_BODY_MAX (the fd's bytes); 0 for a cid */
	const uint8_t *body;                  /* encode: the bytes the client puts in the
	                                       * memfd (borrowed); decode: NULL (the
	                                       * server reads the fd) */
	uint8_t  cid[32];                     /* MB_KIND_CID */
} mb_req_send;

typedef struct mb_req_recv {
	char     recipient[MB_NAME_MAX + 1];
	uint16_t max;                         /* 1..MB_BATCH_MAX */
	uint32_t lease_ms;                    /* > 0 (the gateway bounds it by config) */
} mb_req_recv;

typedef struct mb_req_id {                    /* ACK, NACK, REQUEUE */
	char     recipient[MB_NAME_MAX + 1];
	uint64_t id;
} mb_req_id;

typedef struct mb_req_dlq {
	char     recipient[MB_NAME_MAX + 1];
	uint16_t max;                         /* 1..MB_BATCH_MAX */
} mb_req_dlq;

typedef struct mb_req {
	uint16_t verb;                        /* selects the member (PING has none) */
	union {
		mb_req_send send;
		mb_req_recv recv;
		mb_req_id   id;
		mb_req_dlq  dlq;
	} u;
} mb_req;

/* ---- replies -------------------------------------------------------------- */

typedef struct mb_rep_send {
	uint64_t id;
	bool     replay;                      /* an earlier SEND with the same key */
	uint64_t sent_ms;                     /* Unix ms of the first send */
} mb_rep_send;

typedef struct mb_item {                      /* one message in a RECV/DLQ reply */
	uint64_t id;
	char     sender[MB_SENDER_MAX + 1];
	uint8_t  kind;
	uint32_t deliveries;                  /* this one included (RECV) */
	uint64_t sent_ms;
	uint64_t lease_until_ms;              /* RECV: Unix ms the lease ends; DLQ: 0 */
	uint32_t body_len;                    /* bytes of its body in the reply's fd */
	uint8_t  cid[32];                     /* MB_KIND_CID */
} mb_item;

typedef struct mb_rep_items {                 /* RECV, DLQ */
	uint16_t n;                           /* 0..MB_BATCH_MAX */
	mb_item  items[MB_BATCH_MAX];
} mb_rep_items;

typedef struct mb_rep_nack {
	bool     dlq;                         /* moved to the dead-letter queue */
	uint64_t visible_ms;                  /* else: Unix ms it is delivered again */
} mb_rep_nack;

typedef struct mb_rep_err {                   /* any status 400..599, every verb */
	char code[MB_CODE_MAX];               /* "not_found", "quota_count", … */
	char message[MB_TEXT_MAX];
} mb_rep_err;

typedef struct mb_rep {
	uint16_t verb;                        /* the request's verb */
	uint16_t status;                      /* 200, or 400..599 (then u.err) */
	union {
		mb_rep_send  send;
		mb_rep_items items;
		mb_rep_nack  nack;
		mb_rep_err   err;
	} u;                                  /* PING, ACK, REQUEUE: none on 200 */
} mb_rep;

/* A mailbox name: 1..MB_NAME_MAX bytes of [A-Za-z0-9._-], not "." or "..".
 * 0, or -1 with msg (NULL ok) naming the rule. */
int mb_name_check(const char *s, size_t n, char *msg, size_t msglen);
/* An Idempotency-Key: 1..MB_IDEM_MAX bytes of visible ASCII (0x21..0x7e). */
bool mb_idem_is_valid(const char *s, size_t n);

/* "PING", "SEND", …, or "unknown". */
const char *mb_msg_verb_name(uint16_t verb);

/* Encode into buf (cap bytes; MB_MSG_MAX is always enough). The payload
 * length, or -1 for anything out of range (a bug of the caller). */
__attribute__((warn_unused_result))
ssize_t mb_msg_req_encode(const mb_req *q, uint8_t *buf, size_t cap);
__attribute__((warn_unused_result))
ssize_t mb_msg_rep_encode(const mb_rep *r, uint8_t *buf, size_t cap);

/* Decode p[0..n) as a request of verb / a reply with status to verb. 0, or
 * -1 when it is not exactly such a message (*q / *r is then zeroed). */
__attribute__((warn_unused_result))
int mb_msg_req_decode(uint16_t verb, const uint8_t *p, size_t n, mb_req *q);
__attribute__((warn_unused_result))
int mb_msg_rep_decode(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, mb_rep *r);

/* Does a request / a 200 reply carry a file descriptor? (SEND with a body;
 * RECV and DLQ replies whose items have body bytes.) */
bool mb_msg_req_has_fd(const mb_req *q);
bool mb_msg_rep_has_fd(const mb_rep *r);

/* Make *r the error reply (status 400..599) to verb; code and message are
 * copied, cut to fit. */
void mb_msg_rep_err(mb_rep *r, uint16_t verb, uint16_t status, const char *code,
                    const char *message);

/* The id as the API shows it: 16 lowercase hex digits. */
#define MB_ID_TEXT 17
void mb_id_format(uint64_t id, char out[MB_ID_TEXT]);
/* Parse exactly 16 hex digits (lowercase) into a non-zero id. 0/-1. */
int mb_id_parse(const char *s, size_t n, uint64_t *id);

#endif
