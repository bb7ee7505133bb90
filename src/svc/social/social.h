/*
 * social.h — the social service's private types (src/svc/social):
 *
 *   social.c        start-up, the socket, the verbs, reads, drain
 *   social_write.c  the write queue and its turns: group commits of
 *                   FOLLOW/UNFOLLOW/POST plus one fanout batch each
 *   social_db.c     the tables (social_db.h); social_cursor.c the cursors
 *
 * A write becomes a social_wop in the queue (at most SOCIAL_WRITES_MAX;
 * more: 503). One turn at a time takes up to SOCIAL_TURN_OPS of them and,
 * when a post is still fanning out, social.fanout_batch deliveries of the
 * next job (round robin over the jobs), into one transaction: on the writer thread (disk: the commit
 * fsyncs) or, in memory, on the loop. Every op is answered after its
 * turn's commit; the next turn starts when one ends, so follows never wait
 * behind more than one fanout batch.
 */
#ifndef MN_SVC_SOCIAL_H
#define MN_SVC_SOCIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "core/metrics/metrics.h"
#include "core/net/rpc_server.h"
#include "core/social/social_msg.h"
#include "lib/workq.h"
#include "svc/social/social_db.h"
#include "svc/svc.h"

#define SOCIAL_MAX_CONNS     256u    /* gateway workers, tools, with room */
#define SOCIAL_CONN_PENDING  256u    /* requests in work per connection */
#define SOCIAL_WRITES_MAX    4096u   /* writes queued for turns; more: 503 */
#define SOCIAL_TURN_OPS      256u    /* writes per turn (one commit) */

typedef struct social_svc social_svc;

typedef struct social_wop {
	STAILQ_ENTRY(social_wop) link;
	rpc_req          *q;
	social_req        req;
	social_db_status  st;
	bool              flag;          /* FOLLOW created / UNFOLLOW removed */
	uint64_t          post, ts_ms;   /* POST */
} social_wop;

typedef struct social_turn {
	workq_job         job;           /* first: the pool hands this back */
	social_svc       *d;
	social_wop       *ops[SOCIAL_TURN_OPS];
	size_t            nops;
	unsigned          batch;         /* social.fanout_batch */
	uint32_t          feed_max;      /* social.feed_max */
	uint32_t          max_following;
	social_db_status  st;            /* the turn's own result (begin, fanout, commit) */
	uint64_t          fan_after;     /* the job served last (round robin) */
	uint64_t          fan_post, fan_ts;
	unsigned          delivered;
	bool              fan_done;
} social_turn;

STAILQ_HEAD(social_wops, social_wop);

struct social_svc {
	svc            *s;
	rpc_server     *srv;
	social_db      *db;
	workq          *wq;              /* the writer thread (disk), else NULL */
	struct event   *wq_ev;
	struct event   *inline_ev;       /* memory: a turn ran on the loop, answer it */
	social_turn    *inline_turn;
	struct social_wops queue;
	size_t          queued;
	size_t          posts_queued;    /* POSTs queued or in the turn (not yet jobs) */
	social_turn    *turn;            /* in work, or NULL */
	uint64_t        fan_last;        /* the job the last turn served (0: none) */
	bool            stopping;
	metrics_series *m_jobs, *m_deliveries, *m_posts, *m_fanout_s, *m_resumed;
	social_rep      rep;             /* the reply being built (loop thread; large) */
	uint8_t         payload[SOCIAL_MSG_MAX];
};

/* social.c: answer q with rep (rep->verb must be q's) / an error. */
void social_answer(social_svc *d, rpc_req *q, const social_rep *rep);
void social_answer_err(social_svc *d, rpc_req *q, uint16_t verb, uint16_t status,
                       const char *code, const char *message);
/* social_rejected_total{reason}. */
void social_count_reject(const char *reason);

/* social_write.c */
void social_write_queue(social_svc *d, rpc_req *q, const social_req *req);
/* Start a turn when none runs and there is work (queued ops or a job). */
void social_write_kick(social_svc *d);
int  social_write_start(social_svc *d);   /* the writer thread or the loop's event */
void social_write_stop(social_svc *d);    /* the running turn finishes; queued ops 503 */

#endif
