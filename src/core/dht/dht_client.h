/*
 * dht_client.h — the asynchronous client of the dht service, for any
 * service with a libevent loop (storage announces; the overlay and the
 * index look up and publish; the CLI asks for peers and status). Typed
 * calls on core/proto/rpc_client.h: the transport, breaker, pending cap and
 * deadline are rpc_client's (docs/internal.md "DHT").
 *
 * Callbacks always run from the event loop. status is 200 or the service's
 * error (400, 422 a value its verifier refused, 429 over
 * dht.max_announces_per_second, 503, 504), or 503/504 from the transport
 * (breaker open, service unreachable, DHT_CALL_TIMEOUT_MS passed); message
 * says why ("" on 200), borrowed for the callback. Results are borrowed for
 * the callback too.
 */
#ifndef MN_CORE_DHT_CLIENT_H
#define MN_CORE_DHT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dht/dht_msg.h"   /* DHT_VALUE_MAX, DHT_GET_MAX, dht_kind, the verbs */

struct event_base;

#define DHT_SOCKET           "dht.sock"   /* in the runtime directory */
#define DHT_BREAKER_FAILURES 3u
#define DHT_BREAKER_OPEN_MS  1000u
/* Above the longest dht.lookup_timeout (30 s): the service always answers
 * first, so this deadline only catches a stuck service. */
#define DHT_CALL_TIMEOUT_MS  35000u
#define DHT_MAX_PENDING      256u

typedef struct dht_client dht_client;
typedef struct dht_call dht_call;

/* A provider of a cid, from a verified, unexpired record. */
typedef struct dht_found {
	uint8_t  node_id[32];                  /* BLAKE3(node_pk) */
	uint8_t  node_pk[32];
	char     oap_addr[PROV_ADDR_MAX + 1];  /* numeric ip:port, or "" (an onion only) */
	char     onion[PROV_ONION_MAX + 1];    /* "<v3>.onion:port", or "" */
	uint64_t expires;                      /* unix seconds */
} dht_found;

typedef struct dht_value {
	const uint8_t *data;
	size_t         len;
} dht_value;

typedef void (*dht_done_cb)(int status, const char *message, void *arg);
typedef void (*dht_providers_cb)(int status, const char *message, const dht_found *p,
                                 size_t n, void *arg);
typedef void (*dht_values_cb)(int status, const char *message, const dht_value *v, size_t n,
                              void *arg);
typedef void (*dht_peers_cb)(int status, const char *message, const dht_rep_peers *p, void *arg);
typedef void (*dht_status_cb)(int status, const char *message, const dht_rep_status *s,
                              void *arg);

/* socket_path is copied. NULL on allocation failure. */
dht_client *dht_client_new(struct event_base *base, const char *socket_path);
/* Pending calls are dropped (callbacks not called). NULL ok. */
void dht_client_free(dht_client *c);
/* False while the breaker is open. */
bool dht_client_ready(const dht_client *c);

/* Each returns a handle for dht_call_cancel, or NULL if the call could not
 * even be queued (the callback then still runs, later, with 503). */

/* Announce that this node provides cid (the dht service signs the record). */
dht_call *dht_announce(dht_client *c, const uint8_t cid[32], dht_done_cb cb, void *arg);
/* Verified, unexpired provider records of cid (at most DHT_GET_MAX, one per
 * provider), found within dht.lookup_timeout. */
dht_call *dht_find_providers(dht_client *c, const uint8_t cid[32], dht_providers_cb cb,
                             void *arg);
/* Generic signed values, verified by the kind's verifier before they are
 * stored or returned (core/dht/dht_verify.h; name records:
 * core/dht/name_record.h). v[0..n) is copied; n ≤ DHT_VALUE_MAX. */
dht_call *dht_put(dht_client *c, dht_kind kind, const uint8_t key[32], const uint8_t *v,
                  size_t n, dht_done_cb cb, void *arg);
dht_call *dht_get(dht_client *c, dht_kind kind, const uint8_t key[32], dht_values_cb cb,
                  void *arg);
/* The routing table (counts and up to DHT_PEERS_MAX nodes) / the node's state. */
dht_call *dht_peers(dht_client *c, dht_peers_cb cb, void *arg);
dht_call *dht_status(dht_client *c, dht_status_cb cb, void *arg);

/* The callback will not be called. NULL ok. */
void dht_call_cancel(dht_call *call);

#endif
