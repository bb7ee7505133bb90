/*
 * mb_client.h — asynchronous client of the mailbox service, for any service
 * with a libevent loop (the gateway). A thin typed layer on
 * core/proto/rpc_client.h: one connection to <runtime_dir>/mailbox.sock,
 * breaker, pending cap and per-call deadline as described there; messages
 * are core/mailbox/mb_msg.h, protocol docs/internal.md "Mailbox".
 *
 * Callbacks always run from the event loop. A call that gets no reply
 * completes with 503 (breaker open, too many calls, unreachable, lost) or
 * 504 (MB_CALL_TIMEOUT_MS passed). A reply that does not decode is fatal
 * to this process (rpc_client).
 */
#ifndef MN_CORE_MAILBOX_MB_CLIENT_H
#define MN_CORE_MAILBOX_MB_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mailbox/mb_msg.h"

struct event_base;
struct mn_config;

#define MB_SOCK               "mailbox.sock"   /* in the runtime directory */
#define MB_CALL_TIMEOUT_MS    10000u
#define MB_MAX_PENDING        1024u
#define MB_BREAKER_FAILURES   3u
#define MB_BREAKER_OPEN_MS    1000u

typedef struct mb_client mb_client;
typedef struct mb_call mb_call;

typedef struct mb_result {
	int            status;    /* 200; 404, 409, 422, 429, 503, 504, 507, 500 */
	const char    *code;      /* error code ("quota_count"), or "" */
	const char    *message;   /* error text, or "" */
	const mb_rep  *rep;       /* 200: the decoded reply (borrowed for the callback) */
	const uint8_t *bodies;    /* RECV/DLQ: the items' bodies, concatenated (borrowed), or NULL */
	size_t         bodies_len;
} mb_result;

typedef void (*mb_cb)(const mb_result *res, void *arg);

/* The client of <cfg runtime_dir>/mailbox.sock. NULL on failure, logged. */
mb_client *mb_client_for(struct event_base *base, const struct mn_config *cfg);
void mb_client_free(mb_client *c);   /* pending calls dropped; NULL ok */
bool mb_client_ready(const mb_client *c);

/* Start a call (q copied, q->u.send.body too). A handle for mb_call_cancel,
 * or NULL when no call could be made (the callback still runs, later, with
 * 503 — unless c is NULL). */
mb_call *mb_call_start(mb_client *c, const mb_req *q, mb_cb cb, void *arg);
void mb_call_cancel(mb_call *call);   /* before the callback ran; NULL ok */

#endif
