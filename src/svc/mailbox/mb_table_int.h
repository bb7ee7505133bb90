/*
 * mb_table_int.h — what mb_table.c (entries, queues, the verbs after SEND),
 * mb_table_send.c (SEND and the idempotency keys) and mb_table_wake.c (the
 * waits that end: leases, backoffs) share. Private to those three files.
 */
#ifndef MN_SVC_MAILBOX_MB_TABLE_INT_H
#define MN_SVC_MAILBOX_MB_TABLE_INT_H

#include "svc/mailbox/mb_table.h"

#define MB_REC_VERSION 1u

typedef struct mb_idem {
	uint8_t  key[MB_IDEM_KEY_MAX];
	size_t   key_len;
	uint64_t hash;
	uint64_t id;
	uint64_t sent_ms;
	uint8_t  digest[32];
	bool     pending;
	struct mb_idem *hnext;
	TAILQ_ENTRY(mb_idem) age;
} mb_idem;

struct mb_table {
	mb_limits  lim;
	mb_entry **ids;
	mb_box   **boxes;
	mb_idem  **idems;
	size_t     nbuckets;       /* a power of two, each table */
	TAILQ_HEAD(mb_idem_age_q, mb_idem) idem_age;
	uint64_t   next_id;
	uint64_t   depth, dlq_depth, nidem, nmsgs, bytes;
	/* Boxes whose wait is not empty, a binary min-heap by wake_ms (the
	 * time their first wait ends): room for every box is made when the
	 * box is (box_get), so keeping it never fails. mb_table_wake.c. */
	mb_box   **wheap;
	size_t     nwheap, wheap_cap, nboxes;
	uint64_t   ev_timeouts, ev_dlq;
};

/* mb_table.c */
mb_op *batch_add(mb_batch *b, mb_op_kind kind, uint64_t id);
void batch_put_meta(mb_batch *b, const mb_entry *e);
uint64_t mb_hash(const void *p, size_t n);   /* the first 8 bytes of the BLAKE3 */
mb_entry *entry_find(const mb_table *t, uint64_t id);
mb_box *box_get(mb_table *t, const char *name, bool create);
void box_maybe_free(mb_table *t, mb_box *x);
void entry_free(mb_table *t, mb_entry *e);
void entry_link(mb_table *t, mb_entry *e);
void entry_unqueue(mb_table *t, mb_entry *e);
void entry_to_dlq(mb_table *t, mb_entry *e, mb_batch *b);

/* mb_table_wake.c */
/* Room in the heap for n boxes. 0, or -1 (out of memory). */
int wheap_reserve(mb_table *t, size_t n);
/* x's wait changed: its place in the heap follows its head (in, moved, out). */
void wheap_update(mb_table *t, mb_box *x);
/* x's waits that ended by now, at most max: counted, to the DLQ or to live. */
size_t box_wake(mb_table *t, mb_box *x, uint64_t now, size_t max, mb_batch *b);

/* mb_table_send.c */
void idem_remove(mb_table *t, mb_idem *k);

#endif
