/*
 * audit_svc.h — the audit service's private types, shared by audit.c (socket,
 * queue, timers, drain), audit_proof.c (proofs on the worker thread) and
 * audit_recent.c (the newest records, on the same thread).
 */
#ifndef MN_SVC_AUDIT_SVC_H
#define MN_SVC_AUDIT_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/audit/audit_client.h"
#include "core/audit/audit_log.h"
#include "core/metrics/metrics.h"
#include "core/net/rpc_server.h"
#include "lib/tbucket.h"
#include "lib/workq.h"
#include "svc/svc.h"

#define AUDIT_MAX_CONNS      128u          /* every process of the node, the CLI, with room */
/* Requests in work per connection: an APPEND is answered only once its batch
 * is fsynced, so a sender's whole window (AUDIT_CLIENT_PENDING) plus its
 * proofs may wait at once without the connection going unread. */
#define AUDIT_CONN_PENDING   (AUDIT_CLIENT_PENDING + 64u)
#define AUDIT_QUEUE_BYTES    (32u << 20)   /* bytes the queue may hold, whatever queue_max */
#define AUDIT_DRAIN_TURN     1024u         /* entries appended per fsync turn */
/* Queued entries that start a turn at once, whatever audit.fsync_interval:
 * half a sender's window, so no sender waits on a whole window. */
#define AUDIT_EARLY_TURN     (AUDIT_CLIENT_PENDING / 2u)
#define AUDIT_DRAIN_GRACE_MS 50u           /* at drain: let queued datagrams be read first */
#define AUDIT_PROOF_JOBS     2u            /* proofs in work at once; more: 503 busy */
#define AUDIT_PROOF_RATE     10.0          /* proofs per second (burst as much) */
#define AUDIT_RECENT_RATE    10.0          /* RECENT reads per second (burst as much) */

/* One queued APPEND: its message as it came (decoded at the sync turn) and
 * the request, answered once the entry is on disk (or refused). */
typedef struct audit_item {
	struct audit_item *next;
	rpc_req           *q;
	uint16_t           status;   /* the answer, once appended: 200, 422 refused */
	size_t             n;
	uint8_t            p[];
} audit_item;

typedef struct auditd {
	svc            *s;
	rpc_server     *srv;
	audit_log      *log;
	struct event   *sync_ev, *early_ev, *ckpt_ev, *drain_ev, *workq_ev;
	workq          *wq;
	tbucket         proof_rate;
	tbucket         recent_rate;
	audit_item     *head, *tail;
	size_t          queued, queued_bytes;
	uint64_t        dropped_full;     /* refused since the last drop record */
	uint64_t        self_pending;     /* the service's own records in the batch */
	uint64_t        ckpt_size;        /* size of the newest checkpoint (or UINT64_MAX: none) */
	bool            draining;
	bool            test_fail;        /* test hook armed (audit.c) */
	unsigned        test_batch;       /* test hook: records per sync, 0 = the default */
	metrics_series *m_full, *m_refused, *m_ckpts, *m_depth, *m_torn;
} auditd;

/* PROOF: answer q (rate limit, worker slot, then audit_log_get + prove on
 * the worker thread against a reader copy of the log). */
void auditd_proof(auditd *a, rpc_req *q, const uint8_t *p, size_t n);
/* RECENT: answer q (rate limit, a worker slot shared with proofs, then
 * audit_log_recent on the worker thread against a reader copy). */
void auditd_recent(auditd *a, rpc_req *q, const uint8_t *p, size_t n);
/* Reap finished proofs (the workq's eventfd is readable). */
void auditd_proof_reap(auditd *a);
/* Answer q with status and text (CHECKPOINT/PROOF/RECENT body on 200, else
 * the reason) and count the result when verb is PROOF or RECENT. */
void auditd_answer(rpc_req *q, uint16_t verb, int status, const char *text, size_t len);
void auditd_answer_msg(rpc_req *q, uint16_t verb, int status, const char *msg);

#endif
