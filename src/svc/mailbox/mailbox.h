/*
 * mailbox.h — the mailbox service's private types (src/svc/mailbox):
 *
 *   mailbox.c        start-up, the socket, the writer thread, answers, drain
 *   mailbox_verbs.c  the verbs: SEND, RECV, ACK, NACK, DLQ, REQUEUE
 *   mb_table.c       the state in memory (mb_table.h); mb_table_send.c SEND
 *                    and the idempotency keys
 *   mb_db.c          LMDB (mb_db.h)
 *
 * A request that changes state becomes an mb_job: the change is applied to
 * the table, its reply prepared, and the job's batch committed on the
 * writer thread (with the other jobs that waited for the same commit: an
 * mb_group); the reply leaves once the commit is done.
 */
#ifndef MN_SVC_MAILBOX_H
#define MN_SVC_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "core/mailbox/mb_msg.h"
#include "core/proto/oap.h"
#include "lib/workq.h"
#include "svc/mailbox/mb_table.h"
#include "svc/svc.h"

#define MAILBOX_MAX_CONNS      256u    /* gateway workers, with room */
#define MAILBOX_CONN_PENDING   128u    /* requests in work per connection */
#define MAILBOX_WRITES_MAX     256u    /* commits queued for the writer; more: 503 */
#define MAILBOX_TICK_MS        1000u
#define MAILBOX_EXPIRE_BATCH   1024u   /* idempotency keys forgotten per tick */
/* The lease sweep: every MAILBOX_SWEEP_MS the waits (leases, backoffs)
 * that ended are handled (counted, visible again or into the DLQ), at most
 * MAILBOX_SWEEP_MAX per turn (the rest next turn; a RECV still wakes its
 * own recipient's at once). Nothing ended: one comparison. */
#define MAILBOX_SWEEP_MS       250u
#define MAILBOX_SWEEP_MAX      1024u
/* Body bytes one RECV or DLQ reply carries at most (the first message
 * always goes): what one gateway request may have to turn into JSON. */
#define MAILBOX_REPLY_BYTES    ((uint64_t)4 << 20)

_Static_assert(OAP_HDR_LEN + MB_MSG_MAX <= OAP_INTERNAL_MAX_FRAME,
               "the longest mailbox message fits an internal frame");

struct rpc_server;
struct rpc_req;
struct metrics_series;
typedef struct mb_db mb_db;

typedef struct mb_job mb_job;

/* One commit: the batches of the jobs that waited for it, one transaction. */
typedef struct mb_group {
	workq_job       job;        /* first: the writer thread hands this back */
	struct mailbox *m;
	mb_job         *jobs[MAILBOX_WRITES_MAX];
	const mb_batch *batches[MAILBOX_WRITES_MAX];
	size_t          n;
	int             rc;         /* the commit: 0 done */
} mb_group;

STAILQ_HEAD(mb_jobq, mb_job);

typedef struct mailbox {
	svc               *s;
	mb_table          *t;
	mb_db             *db;          /* NULL in amnesia */
	workq             *wq;          /* the writer thread (disk), else NULL */
	struct event      *wq_ev, *tick, *sweep;
	size_t             writes;      /* jobs queued or committing */
	struct mb_jobq     queued;      /* waiting for the next commit */
	bool               committing;  /* group is with the writer */
	bool               closing;
	mb_group           group;
	struct rpc_server *srv;
	bool               draining;
	struct metrics_series *m_depth, *m_dlq_depth, *m_idem, *m_timeouts, *m_dlq_total;
	uint8_t            buf[MB_MSG_MAX];
} mailbox;

struct mb_job {
	STAILQ_ENTRY(mb_job) qlink; /* m->queued */
	mailbox        *m;
	struct rpc_req *q;          /* NULL: nobody waits (upkeep) */
	uint16_t        verb;
	mb_batch        b;
	int             rc;         /* the commit: 0 done */
	uint64_t        send_id;    /* SEND: the new message */
	mb_rep         *rep;        /* the answer once committed */
	int             fd;         /* its bodies (RECV), or -1 */
};

/* mailbox.c */
mb_job *mailbox_job_new(mailbox *m, struct rpc_req *q, uint16_t verb);
/* Drop a job that changed nothing (its batch empty). */
void mailbox_job_free(mb_job *j);
/* Room in the writer's queue for one more commit? */
bool mailbox_can_write(const mailbox *m);
/* Commit j's batch, then answer j->rep (or 507 for a SEND that failed). */
void mailbox_commit(mailbox *m, mb_job *j);
void mailbox_reply_err(mailbox *m, struct rpc_req *q, uint16_t verb, uint16_t status,
                       const char *code, const char *message);
void mailbox_gauges(mailbox *m);

/* mailbox_verbs.c */
void mailbox_dispatch(struct rpc_req *q, uint16_t verb, const uint8_t *p, size_t n, void *arg);
void mailbox_count_refusal(const char *reason);

#endif
