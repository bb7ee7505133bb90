/*
 * dht_bind.h — the few things the dht service needs from OpenDHT that its C
 * binding (opendht_c.h) does not offer, done in C++ by dht_bind.cc: run the
 * node bound to one configured UDP address (the binding's dht_runner_run
 * binds the wildcard), put a value of our own value type (so peers keep it
 * for dht.record_ttl and refuse oversized ones), and read the routing table.
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
#define DHT_BIND_TYPE      0x4d4eu  /* our value type id ("MN") */

typedef struct dht_bind_cfg {
	const struct sockaddr *addr;   /* the UDP address to bind (borrowed) */
	socklen_t              addrlen;
	uint32_t               network;     /* OpenDHT network id: other networks are not heard */
	uint32_t               value_ttl_s; /* how long nodes keep a value of our type */
	size_t                 value_max;   /* larger values of our type are refused by every node */
} dht_bind_cfg;

/* Run r (from dht_runner_new) threaded, bound to cfg->addr only, with our
 * value type registered. 0, or -1 with err (the address cannot be bound...). */
int dht_bind_run(dht_runner *r, const dht_bind_cfg *cfg, char *err, size_t errlen);

/* Put v[0..n) (copied) under key as a value of our type, not permanent (it
 * lives value_ttl_s at the nodes that store it; we republish). done(ok, arg)
 * runs once, on an OpenDHT thread (or never if the node is deleted first). */
void dht_bind_put(dht_runner *r, const uint8_t key[DHT_BIND_ID_LEN], const uint8_t *v, size_t n,
                  void (*done)(bool ok, void *arg), void *arg);

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
