/*
 * dht_node.h — the OpenDHT node of the dht service, seen from its event
 * loop. OpenDHT runs its own threads and calls back on them; those
 * callbacks only copy what they got into a bounded queue and poke an
 * eventfd (never block, never touch the loop's state), and the loop drains
 * the queue and hands each event to the service's callback (on_event).
 *
 * Operations are numbered by the node (dht_node_op): at most DHT_NODE_OPS
 * are live at once (dht_node_get / _put refuse more), a lookup stops after
 * its max_values values, and once the loop forgets an op (dht_node_forget:
 * answered, timed out) nothing more of it is delivered. Values larger than
 * DHT_VALUE_MAX arrive as events without data (oversized); values that find
 * the queue full are dropped and counted (dht_node_overflow).
 *
 * Values other nodes put here are judged on OpenDHT's thread by
 * core/dht/dht_value.h (verified, one per signer, only newer replaces);
 * refusals are counted in atomics the loop drains (dht_node_refused).
 *
 * Routing-table figures take OpenDHT's node lock, so they are read on a
 * worker thread (dht_node_snapshot) and delivered on the loop.
 */
#ifndef MN_SVC_DHT_NODE_H
#define MN_SVC_DHT_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/dht/dht_msg.h"
#include "core/dht/dht_verify.h"

struct event_base;

#define DHT_NODE_OPS    256u    /* lookups and puts in flight */
#define DHT_NODE_QUEUE  128u    /* values waiting for the loop */
#define DHT_NODE_NETWORK 0x6d6e0001u  /* our OpenDHT network id: the public DHT is not joined */

typedef struct dht_node dht_node;

typedef enum dht_node_ev_type {
	DHT_NODE_VALUE = 1,     /* one value of a lookup */
	DHT_NODE_DONE,          /* a lookup or put ended (ok says how) */
} dht_node_ev_type;

typedef struct dht_node_ev {
	uint64_t         op;
	dht_node_ev_type type;
	bool             ok;          /* DONE */
	bool             oversized;   /* VALUE larger than DHT_VALUE_MAX: no data */
	uint64_t         vid;         /* VALUE: its OpenDHT value id */
	size_t           len;
	uint8_t          data[DHT_VALUE_MAX];
} dht_node_ev;

/* The routing table as a worker read it. */
typedef struct dht_node_snap {
	unsigned good, dubious;
	size_t   stored;                        /* values this node stores for the DHT */
	size_t   n;                             /* nodes listed (≤ DHT_PEERS_MAX) */
	dht_peer peers[DHT_PEERS_MAX];
} dht_node_snap;

typedef struct dht_node_cfg {
	const char *addr;        /* dht.addr (numeric ip:port) */
	uint32_t    value_ttl_s; /* dht.record_ttl */
	void      (*on_event)(const dht_node_ev *ev, void *arg);   /* loop thread */
	void      (*on_snap)(const dht_node_snap *s, void *arg);    /* loop thread */
	void       *arg;
} dht_node_cfg;

/* The queue, its eventfd and the worker that reads the routing table; NULL
 * with err. Made before the sandbox is entered: naming the worker thread
 * writes /proc, which the dht sandbox never allows. */
dht_node *dht_node_new(struct event_base *base, const dht_node_cfg *cfg, char *err, size_t errlen);
/* Start OpenDHT bound to cfg->addr: its threads start here, after the
 * caller entered its sandbox (Landlock binds only threads made after it).
 * 0, or -1 with err (the caller frees n). */
int dht_node_run(dht_node *n, char *err, size_t errlen);
/* Stop OpenDHT (joins its threads), then free the queue. NULL ok. */
void dht_node_free(dht_node *n);

/* Ping a node to join through (numeric address). */
void dht_node_bootstrap(dht_node *n, const struct sockaddr *sa, socklen_t len);

/* A new op number, or 0 when DHT_NODE_OPS are live. */
uint64_t dht_node_op(dht_node *n, unsigned max_values);
/* Start a lookup of kind's values / a put of a value of kind with value
 * id vid (dht_value_derive_id) under the 20-byte InfoHash ih for op. */
void dht_node_get(dht_node *n, uint64_t op, dht_kind kind, const uint8_t ih[DHT_NODE_ID_LEN]);
void dht_node_put(dht_node *n, uint64_t op, dht_kind kind, uint64_t vid,
                  const uint8_t ih[DHT_NODE_ID_LEN], const uint8_t *v, size_t len);
/* The loop is done with op: later events of it are dropped. */
void dht_node_forget(dht_node *n, uint64_t op);
/* Live ops. */
size_t dht_node_ops(const dht_node *n);
/* Values dropped because the queue was full, since the last call. */
uint64_t dht_node_overflow(dht_node *n);
/* Values this node refused to store for others (dht_value_judge /
 * _judge_edit, on OpenDHT's threads) since the last call, by dht_reject. */
void dht_node_refused(dht_node *n, uint64_t out[DHT_REJECT_COUNT]);

/* Read the routing table on the worker; on_snap runs later on the loop.
 * -1 when a read is already under way. */
int dht_node_snapshot(dht_node *n);

#endif
