/*
 * dht_bind.h — the few things the dht service needs from OpenDHT that its C
 * binding (opendht_c.h) does not offer, done in C++ by dht_bind.cc: run the
 * node bound to one configured UDP address (the binding's dht_runner_run
 * binds the wildcard), put and get values of our own value types (so peers
 * keep them for dht.record_ttl, judge them with our verifiers and keep one
 * per signer: core/dht/dht_value.h), and read the routing table.
 * Everything else goes through the C binding. docs/network.md says why this
 * is the one departure from "C only, the C binding".
 *
 * Threads: dht_bind_run starts OpenDHT's threads. done callbacks run on an
 * OpenDHT thread. dht_bind_nodes and dht_bind_export take OpenDHT's node
 * lock, which its own thread holds while it works: call them off the event
 * loop (the service does, on a worker thread).
 */
#ifndef MN_SVC_DHT_BIND_H
#define MN_SVC_DHT_BIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <opendht/opendht_c.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DHT_BIND_ID_LEN    20u      /* an InfoHash */
#define DHT_BIND_TYPE_BASE 0x4d00u  /* our value types: this + the dht_kind ("M" 1..3) */
#define DHT_BIND_KINDS     3u       /* kinds 1..DHT_BIND_KINDS have a type */

/* A storing node's judgement of a value put to it (on an OpenDHT thread,
 * with OpenDHT's lock held: it must not block or call back into OpenDHT).
 * old is NULL for a value new to the node (its store policy), else the
 * value held with the same id (its edit policy). true: keep v. */
typedef bool (*dht_bind_judge)(uint8_t kind, const uint8_t ih[DHT_BIND_ID_LEN], uint64_t id,
                               const uint8_t *old, size_t oldn, const uint8_t *v, size_t n,
                               void *arg);

typedef struct dht_bind_cfg {
	const struct sockaddr *addr;   /* the UDP address to bind (borrowed) */
	socklen_t              addrlen;
	uint32_t               network;     /* OpenDHT network id: other networks are not heard */
	uint32_t               value_ttl_s; /* how long nodes keep a value of our types */
	size_t                 value_max;   /* larger values of our types are refused by every node */
	dht_bind_judge         judge;       /* the store and edit policy of our types */
	void                  *judge_arg;   /* must outlive the runner */
} dht_bind_cfg;

/* Run r (from dht_runner_new) threaded, bound to cfg->addr only, with our
 * value types registered. 0, or -1 with err (the address cannot be bound...). */
int dht_bind_run(dht_runner *r, const dht_bind_cfg *cfg, char *err, size_t errlen);

/* Put v[0..n) (copied) under key as a value of kind's type with value id
 * id (dht_value_derive_id: the signer's, so it replaces the signer's previous one),
 * not permanent (it lives value_ttl_s at the nodes that store it; we
 * republish). done(ok, arg) runs once, on an OpenDHT thread (or never if the
 * node is deleted first). */
void dht_bind_put(dht_runner *r, const uint8_t key[DHT_BIND_ID_LEN], uint8_t kind, uint64_t id,
                  const uint8_t *v, size_t n, void (*done)(bool ok, void *arg), void *arg);

/* Look up the values of kind's type under key (the type is asked of the
 * storing nodes, so values of other types never reach us). value(data, n,
 * id, arg) per value, on an OpenDHT thread: false stops the lookup.
 * done(ok, arg) once at the end (as dht_bind_put's). */
void dht_bind_get(dht_runner *r, const uint8_t key[DHT_BIND_ID_LEN], uint8_t kind,
                  bool (*value)(const uint8_t *data, size_t n, uint64_t id, void *arg),
                  void (*done)(bool ok, void *arg), void *arg);

/* Values this node stores for others (all keys, all types). Takes the node
 * lock. */
size_t dht_bind_stored(const dht_runner *r);

/* Nodes in the routing tables (IPv4 and IPv6): heard from recently (good)
 * and not (dubious). Takes the node lock. */
void dht_bind_nodes(const dht_runner *r, unsigned *good, unsigned *dubious);

/* Up to max nodes of the routing table (id, address). Takes the node lock.
 * Returns how many were written. */
size_t dht_bind_export(const dht_runner *r, uint8_t (*ids)[DHT_BIND_ID_LEN],
                       struct sockaddr_storage *addrs, socklen_t *lens, size_t max);

#ifdef __cplusplus
}
#endif

#endif
