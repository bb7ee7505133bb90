/*
 * index.h — the index service's private types (src/svc/index):
 *
 *   index.c         start-up, the socket, connections, frames, drain
 *   index_verbs.c   the verbs: PUBLISH, RESOLVE (held names), HISTORY,
 *                   IMPORT; records from elsewhere; metrics
 *   index_lookup.c  RESOLVE of a name not held: one DHT read per name at a
 *                   time, its waiters, its deadline
 *   index_republish.c  the table's records put into the DHT again, in
 *                   batches, once per dht.republish
 *   index_db*.c     the tables (index_db.h); index_dht.c the DHT (index_dht.h)
 *
 * A request becomes an index_op, answered exactly once by index_answer —
 * at once, or later from the writer thread's completion or a lookup. An op
 * outlives its connection: when the connection closes first the op is
 * detached (c = NULL) and its answer is dropped.
 */
#ifndef MN_SVC_INDEX_H
#define MN_SVC_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "core/dht/index_msg.h"
#include "core/net/conn.h"
#include "core/proto/oap.h"
#include "lib/workq.h"
#include "svc/index/index_db.h"
#include "svc/index/index_dht.h"
#include "svc/svc.h"

#define INDEX_MAX_CONNS          256u   /* gateway workers, with room */
#define INDEX_READ_BATCH         16u    /* requests per connection per wake-up */
/* Requests one connection may have unanswered (in the writer's queue, in a
 * lookup, or answers the socket has not taken yet); at the cap the
 * connection is not read until one is answered. */
#define INDEX_CONN_PENDING_MAX   128u
#define INDEX_WRITES_MAX         256u   /* writes queued for the writer thread; more: 503 */
#define INDEX_LOOKUPS_MAX        64u    /* names being looked up in the DHT at once; more: 503 */
#define INDEX_LOOKUP_WAITERS_MAX 256u   /* requests waiting on one lookup; more: 503 */
/* A lookup's own deadline: dht.lookup_timeout (the dht service answers by
 * then) plus INDEX_LOOKUP_SLACK_MS, but never past INDEX_LOOKUP_DEADLINE_MS,
 * below the client's call deadline (INDEX_CALL_TIMEOUT_MS): the caller gets
 * the index's 504, not a reset connection. */
#define INDEX_LOOKUP_DEADLINE_MS 8000u
#define INDEX_LOOKUP_SLACK_MS    1000u
#define INDEX_CACHE_NAMES        4096u  /* network records kept for names not held (LRU) */
/* A cached network record is answered as it is for this long after it was
 * last checked against the DHT; then the next RESOLVE looks again (and
 * answers the cached record if the DHT has nothing better in time). */
#define INDEX_CACHE_FRESH_MS     60000u
/* The DHT republish loop (index_republish.c). */
#define INDEX_REPUBLISH_TICK_MS  60000u
#define INDEX_REPUBLISH_FIRST_MS 5000u
#define INDEX_REPUBLISH_BATCH_MAX 256u

typedef struct index_svc index_svc;
typedef struct index_conn index_conn;
typedef struct index_lookup index_lookup;

typedef struct index_op {
	workq_job       job;        /* first: the writer thread hands this back */
	index_svc      *srv;
	index_conn     *c;          /* NULL: its connection closed, or none (internal) */
	LIST_ENTRY(index_op) link;  /* c->ops */
	uint64_t        corr;
	uint16_t        verb;
	index_db_write  w;          /* PUBLISH, IMPORT into the table */
	index_lookup   *lk;         /* RESOLVE waiting on a lookup */
	LIST_ENTRY(index_op) wlink; /* lk->waiters */
} index_op;

typedef struct index_out {
	STAILQ_ENTRY(index_out) link;
	size_t  len;
	uint8_t frame[];
} index_out;

struct index_conn {
	index_svc    *srv;
	int           fd;
	struct event *rev, *wev;
	bool          reading;      /* rev is armed */
	size_t        pending;      /* ops unanswered + answers queued in outq */
	LIST_ENTRY(index_conn) link;
	LIST_HEAD(, index_op) ops;
	STAILQ_HEAD(, index_out) outq;
};

struct index_lookup {
	index_svc      *srv;
	LIST_ENTRY(index_lookup) link;
	index_name      name;
	uint8_t         key[NAME_RECORD_KEY_LEN];
	index_dht_get  *get;
	struct event   *deadline;
	size_t          nwaiters;
	LIST_HEAD(, index_op) waiters;
};

struct index_svc {
	svc            *s;
	index_db       *table;      /* the names: LMDB, or RAM in amnesia */
	index_db       *cache;      /* records from the network for names the table lacks */
	index_dht      *dht;        /* NULL: the node runs no dht service */
	workq          *wq;         /* the writer thread (disk table), else NULL */
	struct event   *wq_ev;
	size_t          writes;     /* jobs in wq */
	conn_listener  *lst;
	LIST_HEAD(, index_conn) conns;
	size_t          nconns;
	LIST_HEAD(, index_lookup) lookups;
	size_t          nlookups;
	uint32_t        history;    /* index.history */
	struct event   *republish_ev;
	index_db_cursor republish_at;
	bool            draining;
	index_rep       rep;        /* the reply being built (loop thread; large) */
	uint8_t         rbuf[OAP_INTERNAL_MAX_FRAME];
	uint8_t         payload[INDEX_MSG_MAX];
	uint8_t         wbuf[OAP_HDR_LEN + INDEX_MSG_MAX];
};

_Static_assert(OAP_HDR_LEN + INDEX_MSG_MAX <= OAP_INTERNAL_MAX_FRAME,
               "the longest index reply fits an internal frame");

/* index.c: send rep as op's answer (or drop it: op->c is NULL) and free op.
 * rep->verb must be op's. */
void index_answer(index_op *op, const index_rep *rep);
/* An error answer (index_msg_rep_err) to op. */
void index_answer_err(index_op *op, uint16_t status, const char *message);
/* index_verbs.c: a RESOLVE answer. */
void index_answer_record(index_op *op, const name_record *rec, index_source src);
/* An op with no connection, for work nobody waits on (its answer dropped). */
index_op *index_op_orphan(index_svc *srv, uint16_t verb);

/* index_verbs.c */
void index_dispatch(index_op *op, const index_req *q);
/* A checked record from elsewhere (IMPORT, a lookup): into the table when
 * it holds the name, else into the cache; op answered (or NULL: counted). */
void index_take_record(index_svc *srv, const name_record *rec, index_op *op);
void index_count_reject(const char *reason);
void index_gauges(index_svc *srv);
void index_writes_done(index_svc *srv);   /* reap the writer's jobs */

/* index_lookup.c */
void index_lookup_start(index_op *op, const index_name *name);
void index_lookups_free(index_svc *srv);   /* waiters answered 503 */

/* index_republish.c: start the loop when the node runs the dht service. */
int index_republish_start(index_svc *srv);
void index_republish_stop(index_svc *srv);

#endif
