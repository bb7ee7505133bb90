/*
 * search_int.h — what the search service's files share (search.c: the
 * socket, the queue, the queries; search_sweep.c: the catch-up from
 * storage). Owned by the service's event loop; the worker threads touch
 * only what a job carries and the connection the job was given.
 */
#ifndef MN_SVC_SEARCH_INT_H
#define MN_SVC_SEARCH_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/metrics/metrics.h"
#include "core/net/rpc_server.h"
#include "core/search/search_msg.h"
#include "lib/workq.h"
#include "svc/search/search_db.h"
#include "svc/svc.h"

struct event;
typedef struct search_sweep search_sweep;

#define SEARCH_BATCH_MAX    256u   /* documents per write transaction */
#define SEARCH_MAX_CONNS    64u
#define SEARCH_CONN_PENDING 512u
#define SEARCH_READERS_MAX  16u    /* search.readers' ceiling */

typedef struct search_svc search_svc;

/* A document waiting to be indexed (its own copy of the text), or a name. */
typedef struct search_pend {
	bool                is_name;
	search_doc          d;
	search_name         nm;
	struct search_pend *next;
} search_pend;

typedef struct search_batch {
	workq_job    job;
	search_svc  *srv;
	search_pend *list;
	size_t       n, nd, nn;   /* entries; of them documents, names */
	search_doc  *docs;
	search_name *names;
	int          rc;
	search_db_added added;
} search_batch;

typedef struct search_qjob {
	workq_job      job;
	search_svc    *srv;
	rpc_req       *req;
	char           q[SEARCH_QUERY_MAX];
	uint16_t       limit;
	uint64_t       deadline_ns;
	search_db_rc   rc;
	char           msg[SEARCH_MSG_TEXT_MAX];
	search_hits    hits;
} search_qjob;

/* The read-only connections of the query threads: a stack under a lock,
 * taken by a query job on its worker thread for the job's length. With
 * as many connections as threads a job always finds one. */
typedef struct search_readers {
	pthread_mutex_t lock;
	bool            lock_ok;
	search_db      *db[SEARCH_READERS_MAX];
	size_t          n;
	search_db      *free[SEARCH_READERS_MAX];
	size_t          nfree;
} search_readers;

struct search_svc {
	svc          *s;
	search_db    *db;            /* the writer's (and, in amnesia, the only) connection */
	search_readers rd;           /* disk: the query threads' connections */
	workq        *rq;            /* disk: the query threads; NULL: queries go to wq */
	struct event *rq_ev;
	rpc_server   *rpc;
	workq        *wq;
	struct event *wq_ev;
	search_pend  *head, *tail;   /* pending documents, oldest first */
	size_t        npend;
	bool          writing;       /* a batch job is in the pool */
	unsigned      nqueries;      /* query jobs in the pool */
	int64_t       ndocs, nnames;
	metrics_series *m_docs, *m_names, *m_pending;
	search_sweep *sweep;        /* the catch-up from storage; NULL: search.sweep_interval 0 */
};

/* Queue e last (it is the service's from now on) and wake the writer. */
void search_pend_enqueue(search_svc *srv, search_pend *e);

/* search_sweep.c. new: before the sandbox (it loads libmagic's database);
 * NULL when search.sweep_interval is 0 (or no memory: the caller checks).
 * start: after the workers, 0 or -1. stop: before the workers are freed
 * (no new call, job or timer); free: after them. NULL ok for stop/free. */
search_sweep *search_sweep_new(search_svc *srv);
int search_sweep_start(search_sweep *sw);
void search_sweep_stop(search_sweep *sw);
void search_sweep_free(search_sweep *sw);

#endif
