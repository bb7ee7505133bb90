/*
 * index_client.h — asynchronous client of the index service (names → cids),
 * for any service with a libevent loop (the gateway). A thin typed layer on
 * core/proto/rpc_client.h: one connection to <runtime_dir>/index.sock,
 * breaker, pending cap and per-call deadline as described there; messages
 * are core/dht/index_msg.h, protocol docs/internal.md "Index".
 *
 * Callbacks always run from the event loop. A call that gets no reply
 * completes with 503 (breaker open, too many calls, unreachable, lost) or
 * 504 (INDEX_CALL_TIMEOUT_MS passed: longer than the index's own deadline
 * for a network lookup, so a slow lookup is the index's 504, not ours).
 * A reply that does not decode is fatal to this process (rpc_client).
 */
#ifndef MN_CORE_DHT_INDEX_CLIENT_H
#define MN_CORE_DHT_INDEX_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dht/index_msg.h"

struct event_base;
struct mn_config;

#define INDEX_SOCK              "index.sock"   /* in the runtime directory */
#define INDEX_CALL_TIMEOUT_MS   10000u
#define INDEX_MAX_PENDING       1024u
#define INDEX_BREAKER_FAILURES  3u
#define INDEX_BREAKER_OPEN_MS   1000u

typedef struct index_client index_client;
typedef struct index_call index_call;

typedef struct index_result {
	int                status;   /* 200; 400, 404, 409, 503, 504, 507, 500 */
	const char        *message;  /* error text, or "" (borrowed for the callback) */
	bool               created;  /* PUBLISH: the name was new */
	uint8_t            source;   /* RESOLVE: index_source */
	const name_record *recs;     /* PUBLISH, RESOLVE: 1; HISTORY: nrecs, seq rising;
	                              * LIST: nrecs held names (borrowed for the callback) */
	size_t             nrecs;
	const index_list_cursor *next;   /* LIST: where to ask from next (borrowed) */
	bool               more;     /* LIST: the walk goes on */
} index_result;

typedef void (*index_cb)(const index_result *res, void *arg);

/* socket_path is copied. NULL on allocation failure. */
index_client *index_client_new(struct event_base *base, const char *socket_path);
/* The client of <cfg runtime_dir>/index.sock (as objstore_client_new does
 * for storage). NULL on failure, logged. */
index_client *index_client_for(struct event_base *base, const struct mn_config *cfg);
/* Pending calls are dropped (callbacks not called). NULL ok. */
void index_client_free(index_client *c);
bool index_client_ready(const index_client *c);

/* Each returns a handle for index_call_cancel, or NULL when no call could be
 * made (the callback still runs, later, with 503 — unless c is NULL). The
 * name (a valid name, core/dht/name.h: check it first) is copied. */
index_call *index_publish(index_client *c, const char *name, size_t n, const uint8_t cid[32],
                          index_cb cb, void *arg);
index_call *index_resolve(index_client *c, const char *name, size_t n, bool network,
                          index_cb cb, void *arg);
index_call *index_history(index_client *c, const char *name, size_t n, index_cb cb, void *arg);
/* A record from elsewhere (n ≤ NAME_RECORD_MAX bytes, copied). */
index_call *index_import(index_client *c, const uint8_t *rec, size_t n, index_cb cb, void *arg);
/* LIST: a page of the names the node holds, from *from (zeroed: the start). */
index_call *index_list(index_client *c, const index_list_cursor *from, index_cb cb, void *arg);

/* The callback will not run. Only before it ran; NULL ok. */
void index_call_cancel(index_call *call);

#endif
