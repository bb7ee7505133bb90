/*
 * mb_table.h — the mailbox's state in memory (private to src/svc/mailbox):
 * every message's metadata, per-recipient queues and quotas, leases, the
 * dead-letter queues and the idempotency keys. Pure logic: no I/O, no
 * clock (the caller passes `now`, Unix ms), no libevent — unit-tested in
 * tests/unit/svc/mailbox/test_mb_table.c.
 *
 * Every change is applied here at once (so a second request sees it) and
 * described in an mb_batch: the records the disk must hold afterwards. The
 * service commits the batch (one fsynced LMDB transaction, mb_db.c) before
 * it answers; in amnesia mode the batch is dropped. A SEND's message stays
 * `pending` (never delivered) until mb_table_send_done; any other batch
 * that fails to commit leaves memory ahead of the disk, and the service
 * exits so that it reloads the truth (docs/mailbox.md "Durability").
 *
 * Bodies: the table holds them only when keep_bodies (amnesia); on disk
 * they stay in LMDB and the service reads them at delivery.
 */
#ifndef MN_SVC_MAILBOX_MB_TABLE_H
#define MN_SVC_MAILBOX_MB_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "core/mailbox/mb_msg.h"

#define MB_SCAN_MAX     4096u   /* entries one RECV looks at, at most */
#define MB_REC_MAX      (1u + 8u + 2u + MB_NAME_MAX + 2u + MB_SENDER_MAX + 1u + 1u + 4u + \
                         8u + 8u + 32u + 4u)
#define MB_IDEM_KEY_MAX (MB_SENDER_MAX + 1u + MB_IDEM_MAX)
#define MB_IDEM_VAL_LEN (8u + 8u + 32u)

typedef struct mb_limits {
	uint32_t max_deliveries;     /* deliveries before the DLQ */
	uint32_t quota_count;        /* messages per recipient (live + DLQ) */
	uint64_t quota_bytes;        /* body bytes per recipient */
	uint32_t max_messages;       /* all recipients */
	uint64_t max_bytes;          /* all recipients */
	uint32_t max_idem;           /* idempotency keys held */
	uint64_t idem_window_ms;     /* 24 h */
	uint64_t backoff_base_ms;    /* nack: base << (deliveries - 1), capped */
	uint64_t backoff_max_ms;
	bool     keep_bodies;        /* amnesia: bodies live here */
} mb_limits;

typedef struct mb_box mb_box;

typedef struct mb_entry {
	uint64_t  id;
	mb_box   *box;
	TAILQ_ENTRY(mb_entry) link;  /* box->live, box->wait or box->dlq */
	struct mb_entry *hnext;      /* the id hash chain */
	char      sender[MB_SENDER_MAX + 1];
	uint8_t   kind;
	bool      dlq;               /* in box->dlq */
	bool      waiting;           /* in box->wait: leased or backing off */
	bool      pending;           /* SEND not committed yet: never delivered */
	bool      leased;            /* delivered, lease running (or ran out unseen) */
	uint32_t  deliveries;
	uint64_t  sent_ms;
	uint64_t  visible_ms;        /* delivered no earlier (lease end, backoff) */
	uint8_t   cid[32];
	uint32_t  body_len;
	uint8_t  *body;              /* keep_bodies only */
} mb_entry;

TAILQ_HEAD(mb_queue, mb_entry);

struct mb_box {
	char           name[MB_NAME_MAX + 1];
	uint64_t       hash;
	mb_box        *hnext;
	struct mb_queue live;        /* visible (and pending sends), in queue order */
	struct mb_queue wait;        /* leased or backing off, by visible_ms */
	struct mb_queue dlq;
	uint32_t       count;        /* live + dlq */
	uint64_t       bytes;
	uint64_t       wake_ms;      /* the head of wait's visible_ms: the heap key */
	size_t         wpos;         /* 1 + index in the table's wake heap; 0: wait empty */
};

/* What the disk must hold after a change. */
typedef enum mb_op_kind {
	MB_OP_PUT_META = 1,   /* key: id; val: the record (mb_rec_encode) */
	MB_OP_PUT_BODY,       /* key: id; val: the body */
	MB_OP_DEL_MSG,        /* key: id: record and body */
	MB_OP_PUT_IDEM,       /* key: sender 0 key; val: id, sent_ms, digest */
	MB_OP_DEL_IDEM,       /* key */
	MB_OP_NEXT_ID,        /* key: id: the next id to hand out */
} mb_op_kind;

typedef struct mb_op {
	mb_op_kind kind;
	uint64_t   id;
	uint8_t   *key;        /* idem ops (malloc'd) */
	size_t     key_len;
	uint8_t   *val;        /* malloc'd, or borrowed when val_borrowed */
	size_t     val_len;
	bool       val_borrowed;
} mb_op;

typedef struct mb_batch {
	mb_op  *ops;
	size_t  n, cap;
	bool    nomem;         /* an op could not be recorded: the batch is void */
} mb_batch;

void mb_batch_init(mb_batch *b);
void mb_batch_clear(mb_batch *b);   /* frees what it owns; ready for reuse */

typedef enum mb_status {
	MB_OK = 0,
	MB_REPLAY,            /* SEND: the key's first result */
	MB_NOT_FOUND,
	MB_NOT_DELIVERED,     /* ACK/NACK of a message never delivered */
	MB_IN_DLQ,            /* ACK/NACK of a dead letter */
	MB_QUOTA_COUNT,
	MB_QUOTA_BYTES,
	MB_FULL,              /* mailbox.max_messages / max_bytes */
	MB_IDEM_CONFLICT,     /* the key was used for another request */
	MB_IDEM_PENDING,      /* the key's first SEND is still committing */
	MB_IDEM_FULL,
	MB_NOMEM,
} mb_status;

typedef struct mb_table mb_table;

mb_table *mb_table_new(const mb_limits *lim);
void mb_table_free(mb_table *t);   /* NULL ok */

/* ---- loading what the disk holds (start-up) ------------------------------ */
/* A stored record (and its body length); 0, or -1: it does not decode. */
int mb_table_load(mb_table *t, const uint8_t *rec, size_t n);
int mb_table_load_idem(mb_table *t, const uint8_t *key, size_t klen, const uint8_t *val,
                       size_t vlen);
void mb_table_set_next_id(mb_table *t, uint64_t next);

/* ---- the verbs ------------------------------------------------------------ */
/* A new message (body: q->body_len bytes, borrowed; copied into the
 * table when keep_bodies, and into the batch's PUT_BODY). MB_OK: *e is the new (pending) entry; MB_REPLAY: *rep_id
 * and *rep_ms are the first send's. */
mb_status mb_table_send(mb_table *t, const mb_req_send *q, const uint8_t *body, uint64_t now,
                        mb_batch *b, mb_entry **e, uint64_t *rep_id, uint64_t *rep_ms);
/* The SEND's batch committed (ok) or not (the entry and its key go). */
void mb_table_send_done(mb_table *t, uint64_t id, bool ok);
/* Lease up to max visible messages of name (their bodies at most max_bytes
 * together, but always the first) for lease_ms: out[0..n). Dead
 * letters found on the way (deliveries reached) move to the DLQ. */
size_t mb_table_recv(mb_table *t, const char *name, unsigned max, uint64_t max_bytes,
                     uint32_t lease_ms, uint64_t now, mb_batch *b, mb_entry **out);
mb_status mb_table_ack(mb_table *t, const char *name, uint64_t id, mb_batch *b);
mb_status mb_table_nack(mb_table *t, const char *name, uint64_t id, uint64_t now, mb_batch *b,
                        bool *dlq, uint64_t *visible_ms);
size_t mb_table_dlq(mb_table *t, const char *name, unsigned max, mb_entry **out);
mb_status mb_table_requeue(mb_table *t, const char *name, uint64_t id, uint64_t now,
                           mb_batch *b);
/* ---- waits that end (mb_table_wake.c) ----------------------------------- */
/* When the earliest wait (a lease or a nack's backoff) of any recipient
 * ends; UINT64_MAX when nothing waits. O(1). */
uint64_t mb_table_next_wake(const mb_table *t);
/* Waits that ended by now, across recipients, earliest first, at most max:
 * exactly what a RECV does for its own recipient first. A lease that ran
 * out is counted (mb_table_take_events) once — the message is no longer
 * leased, so a later RECV or sweep does not count it again; a message that
 * used max_deliveries moves to the DLQ (recorded in b); any other is
 * visible again, at the tail of its queue (nothing to write: the record
 * already holds its deliveries and visible_ms). The number handled. */
size_t mb_table_sweep(mb_table *t, uint64_t now, size_t max, mb_batch *b);
/* Forget idempotency keys older than the window, at most max. */
size_t mb_table_expire_idem(mb_table *t, uint64_t now, size_t max, mb_batch *b);

/* ---- counts (metrics) ----------------------------------------------------- */
uint64_t mb_table_depth(const mb_table *t);        /* live messages */
uint64_t mb_table_dlq_depth(const mb_table *t);    /* dead letters */
uint64_t mb_table_idem_keys(const mb_table *t);
/* Counted since the last call, then zeroed: leases that ran out, moves to
 * the DLQ. */
void mb_table_take_events(mb_table *t, uint64_t *timeouts, uint64_t *dlq_moves);

/* The stored form of an entry's metadata. Length, or -1. */
ssize_t mb_rec_encode(const mb_entry *e, uint8_t *buf, size_t cap);

#endif
