/*
 * mb_db.h — the mailbox's LMDB under <data_dir>/mailbox/ (private to
 * src/svc/mailbox). Four databases:
 *
 *   meta    id (u64 big-endian) → the message's record (mb_rec_encode)
 *   body    id → its body bytes (none for an empty body or a cid)
 *   idem    sender ‖ 0x00 ‖ Idempotency-Key → id, sent_ms, request digest
 *   state   "next_id" → the next id to hand out (u64 big-endian)
 *
 * mb_db_commit applies one mb_batch as one write transaction and commits
 * it (LMDB fsyncs the commit): called on the service's writer thread only.
 * Reads (mb_db_body, at delivery) run on the loop in MDB_NOTLS read
 * transactions beside the writer. mb_db_load fills a table at start-up.
 */
#ifndef MN_SVC_MAILBOX_MB_DB_H
#define MN_SVC_MAILBOX_MB_DB_H

#include <stddef.h>
#include <stdint.h>

#include "svc/mailbox/mb_table.h"

#define MB_DB_ERR_MAX 512

typedef struct mb_db mb_db;

/* Open (make) <data_dir>/mailbox (0700), map sized for max_bytes of bodies
 * and max_messages records. NULL with err. */
mb_db *mb_db_open(const char *data_dir, uint64_t max_bytes, uint32_t max_messages,
                  char *err, size_t errlen);
void mb_db_close(mb_db *db);   /* NULL ok */
/* Everything stored into t. 0, or -1 with err. */
int mb_db_load(mb_db *db, mb_table *t, char *err, size_t errlen);
/* One transaction; 0 committed (durable), -1 not (logged). */
int mb_db_commit(mb_db *db, const mb_batch *b);
/* The batches bs[0..n), in order, as one transaction (group commit). */
int mb_db_commit_many(mb_db *db, const mb_batch *const *bs, size_t n);
/* The body of id into out (len bytes exactly). 0/-1. */
int mb_db_body(mb_db *db, uint64_t id, uint8_t *out, size_t len);

#endif
