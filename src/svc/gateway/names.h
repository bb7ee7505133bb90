/*
 * names.h — the gateway's name routes (private to src/svc/gateway):
 *
 *   PUT  /n/{name}             body {"cid":"b3:<hex>"} → the record signed
 *                              for it: 201 (new name) or 200
 *   GET, HEAD /n/{name}        the current record (JSON), 404 when unknown
 *   GET, HEAD /n/{name}?fetch=1      the object's bytes, served as
 *                                    GET /o/{cid} would (verified)
 *   GET, HEAD /n/{name}?history=1    the records kept, by seq
 *
 * The name in the path is percent-decoded (an encoded '/' is refused) and
 * must pass core/dht/name.h: anything else is 400 naming the rule. The
 * routes are core class: the wall (Auth → Policy → Quota) judges them like
 * the object routes, and a token's path scope "/n/alice/" admits exactly
 * the names under "alice/". Behaviour: docs/api.md "Names", docs/names.md.
 *
 * names.c owns the route, the path and query, and PUT; names_get.c the
 * answers of GET (record, history, fetch).
 */
#ifndef MN_SVC_GATEWAY_NAMES_H
#define MN_SVC_GATEWAY_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dht/index_client.h"
#include "core/net/http.h"
#include "svc/gateway/objects.h"

#define NAMES_NROUTES   1u
#define NAMES_BODY_MAX  1024u   /* a PUT body: {"cid":"b3:…"} is 74 bytes */

/* Shared by every request of one worker; outlives them all. */
typedef struct names {
	index_client *index;      /* borrowed; NULL: the node runs no index service */
	objects      *objects;    /* borrowed: ?fetch=1 serves through objects_get */
} names;

typedef enum names_mode {
	NAMES_GET_RECORD = 0,
	NAMES_GET_HISTORY,
	NAMES_GET_FETCH,
	NAMES_PUT,
} names_mode;

/* One request on a name (names.c allocates it, whoever ends it frees it). */
typedef struct names_req {
	names      *n;
	http_req   *req;          /* NULL once the client is gone */
	index_call *call;         /* in flight, cancellable */
	stor_call  *scall;        /* ?fetch=1: the STAT in flight */
	bool        awaiting;     /* a callback is still to come */
	names_mode  mode;
	char        name[NAME_MAX_LEN + 1];
	size_t      name_len;
	uint8_t     cid[32];
	uint8_t     body[NAMES_BODY_MAX];
	size_t      body_len;
} names_req;

/* names.c: the name route with arg n (borrowed: it must outlive the server). */
void names_routes(names *n, http_route out[NAMES_NROUTES]);
/* Release q (cancelling what it waits on). */
void names_req_free(names_req *q);

/* names_get.c: resolve q->name and answer as q->mode says. */
void names_get(names_req *q);
/* An index error (404, 503, 504, 507 …) as the HTTP answer. */
void names_reply_index_error(http_req *r, const index_result *res);
/* The record as the JSON every route answers: {"name","cid","seq","node_id"}.
 * A malloc'd string (caller frees), or NULL. */
char *names_record_json(const name_record *rec);

/*
 * The hook for a name whose object this node does not hold: today a 404
 * that says so. Fetching from the network (the overlay: DHT providers,
 * verified fetch, then serve as GET /o/{cid}) plugs in here. Answers r.
 */
void names_fetch_on_miss(http_req *r, names *n, const uint8_t cid[32]);

#endif
