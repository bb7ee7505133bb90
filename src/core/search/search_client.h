/*
 * search_client.h — asynchronous client of the search service (the
 * gateway's), on core/proto/rpc_client.h: one connection to
 * <runtime_dir>/search.sock behind a circuit breaker, at most
 * SEARCH_CLIENT_PENDING calls in flight (one more fails at once, 503).
 * Messages: core/search/search_msg.h. Callbacks run from the event loop.
 */
#ifndef MN_CORE_SEARCH_SEARCH_CLIENT_H
#define MN_CORE_SEARCH_SEARCH_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/search/search_msg.h"

struct event_base;
struct mn_config;

#define SEARCH_CLIENT_PENDING  256u
#define SEARCH_CLIENT_TIMEOUT_MS 2000u

typedef struct search_client search_client;
typedef struct search_call search_call;

typedef struct search_result {
	int                status;    /* 200, 400, 503, 504 … */
	const char        *message;   /* error text (borrowed for the callback), or "" */
	const search_hits *hits;      /* 200: the hits (borrowed for the callback) */
} search_result;

typedef void (*search_cb)(const search_result *res, void *arg);

/* NULL on failure. Borrows cfg for the call. */
search_client *search_client_new(struct event_base *base, const struct mn_config *cfg);
void search_client_free(search_client *c);   /* NULL ok; pending calls dropped */
bool search_client_ready(const search_client *c);
/* Fire and forget: 0 sent, -1 dropped (busy, breaker open, too long). */
int search_client_index(search_client *c, const search_doc *d);
/* Fire and forget, as index: a name now points at nm->id. */
int search_client_name(search_client *c, const search_name *nm);
/* q ≤ SEARCH_QUERY_MAX - 1 bytes, limit 1..SEARCH_HITS_MAX. */
search_call *search_client_query(search_client *c, const char *q, uint16_t limit, search_cb cb,
                                 void *arg);
void search_call_cancel(search_call *call);

#endif
