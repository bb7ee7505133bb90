/*
 * mailbox_routes.h — the gateway's mailbox routes (private to
 * src/svc/gateway), core class behind the wall; docs/api.md "Mailbox",
 * docs/mailbox.md:
 *
 *   POST /mb/{recipient}                 send (JSON body; Idempotency-Key)
 *   GET  /mb/{me}?max=N&lease=30s        receive with a visibility lease
 *   POST /mb/{me}/{id}/ack               done: never delivered again
 *   POST /mb/{me}/{id}/nack              again after a backoff, or the DLQ
 *   GET  /mb/{me}/dlq?max=N              the dead letters
 *   POST /mb/{me}/dlq/{id}/requeue       a dead letter back into the queue
 *
 * {me} must be the request's tenant as the wall judged it (a token's Tenant
 * caveat, or an mTLS tenant): a token reads and settles only its own
 * mailbox. Anyone the policy admits may send; the sender is the wall's
 * quota key. Bad input is a 4xx naming it, counted in
 * mailbox_refused_total{reason}.
 */
#ifndef MN_SVC_GATEWAY_MAILBOX_ROUTES_H
#define MN_SVC_GATEWAY_MAILBOX_ROUTES_H

#include <stdint.h>

#include "core/mailbox/mb_client.h"
#include "core/net/http.h"

#define MBOX_NROUTES   1u
/* A send's JSON: base64 of the largest body, quotes and field names. */
#define MBOX_JSON_MAX  (MB_BODY_MAX / 3u * 4u + 1024u)
#define MBOX_MAX_DEFAULT 10u       /* ?max= when absent */

typedef struct mbox {
	mb_client *mb;                 /* borrowed; NULL: the node runs no mailbox service */
	uint32_t   max_body;           /* mailbox.max_body (live) */
	uint64_t   lease_max_ms;       /* mailbox.lease_max (live) */
	uint64_t   lease_default_ms;   /* mailbox.lease_default (live) */
} mbox;

void mbox_routes(mbox *mb, http_route out[MBOX_NROUTES]);

#endif
