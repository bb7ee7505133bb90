/*
 * social_routes.h — the gateway's graph and feed routes (private to
 * src/svc/gateway), facet class (HTTP_ROUTE_FACET: shed first under load):
 *
 *   PUT, DELETE /g/{user}/follows/{other}   user follows / stops following other
 *   GET /g/{user}/followers?cursor=&limit=  who follows user, a page in name order
 *   GET /g/{user}/following?cursor=&limit=  whom user follows
 *   POST /feed  {"cid":"b3:…"}              post a stored object to the followers' feeds
 *   GET  /feed?cursor=&limit=               the token's tenant's feed, newest first
 *
 * The user of a write and of /feed is the token's tenant (its Tenant
 * caveat, or the mTLS tenant: the wall's quota key "t:<tenant>"): a token
 * changes only its own edges (403 not_owner otherwise); lists are readable
 * by whoever the policy admits. Every refusal is a 4xx naming the bad input,
 * counted in social_rejected_total{reason} and rejected_total. Latency,
 * busy and deadline go to core/metrics/facet.h (FACET_GRAPH, FACET_FEED).
 * Behaviour: docs/api.md "Graph and feed", docs/social.md. Files:
 * social_routes.c (a request's life, answers, dispatch), social_handlers.c
 * (paths, queries, bodies), social_routes_int.h (what they share).
 */
#ifndef MN_SVC_GATEWAY_SOCIAL_ROUTES_H
#define MN_SVC_GATEWAY_SOCIAL_ROUTES_H

#include <stdint.h>

#include "core/net/http.h"
#include "core/objects/stor_client.h"
#include "core/social/social_client.h"

#define SOCIAL_ROUTES_N        2u
#define SOCIAL_BODY_MAX        1024u   /* POST /feed: {"cid":"b3:…"} is 74 bytes */
#define SOCIAL_LIMIT_DEFAULT   50u     /* a page without ?limit= (or social.page_max if smaller) */

struct cors;

/* Shared by every request of one worker; outlives them all. */
typedef struct social_routes {
	social_client     *client;   /* borrowed; NULL: the node runs no social service */
	stor_client       *stor;     /* borrowed: POST /feed checks the cid is stored */
	const struct cors *cors;
	uint32_t           page_max; /* social.page_max */
} social_routes;

/* The two routes with arg s (borrowed: it must outlive the server). */
void social_routes_table(social_routes *s, http_route out[SOCIAL_ROUTES_N]);

#endif
