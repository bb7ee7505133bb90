/*
 * social_routes_int.h — what the gateway's graph and feed routes share
 * (private to src/svc/gateway): social_routes.c owns a request's life, the
 * service's answers and the dispatch; social_handlers.c the paths, queries,
 * the tenant rule and the POST body.
 */
#ifndef MN_SVC_GATEWAY_SOCIAL_ROUTES_INT_H
#define MN_SVC_GATEWAY_SOCIAL_ROUTES_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "core/metrics/facet.h"
#include "svc/gateway/social_routes.h"

typedef struct soc_req {
	social_routes *s;
	http_req      *r;            /* NULL once the client is gone */
	social_call   *call;
	stor_call     *scall;
	bool           awaiting;     /* a callback is still to come */
	facet_id       facet;
	struct timespec t0;
	social_req     q;
	uint8_t        body[SOCIAL_BODY_MAX];
	size_t         body_len;
} soc_req;

/* social_routes.c. Each ends x (frees it): */
/* Free x with what it waits on, unanswered (its client went away). */
void soc_free(soc_req *x);
/* x was answered: its latency observed, x freed. */
void soc_end(soc_req *x);
/* A refusal found here: counted (social_rejected_total{reason}, and the
 * node's rejected_total), answered with the envelope, x ended. */
void soc_refuse(soc_req *x, int status, const char *code, const char *reason, const char *msg);
/* Answer j (taken) with status, x ended. */
void soc_reply_json(soc_req *x, int status, json_t *j);
/* Send x->q to the social service; the answer ends x. */
void soc_call(soc_req *x);

/* social_handlers.c: the request on /g/… or /feed (x->r, x->s set). */
void graph_route(soc_req *x);
void feed_route(soc_req *x);

#endif
