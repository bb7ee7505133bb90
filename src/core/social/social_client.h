/*
 * social_client.h — asynchronous client of the social service (graph and
 * feed), for any service with a libevent loop (the gateway). A thin typed
 * layer on core/proto/rpc_client.h: one connection to
 * <runtime_dir>/social.sock, breaker, pending cap and per-call deadline as
 * described there; messages are core/social/social_msg.h.
 *
 * Callbacks always run from the event loop. A call that gets no reply
 * completes with 503 (breaker open, too many calls, unreachable, lost) or
 * 504 (SOCIAL_CALL_TIMEOUT_MS passed). A reply that does not decode is fatal
 * to this process (rpc_client).
 */
#ifndef MN_CORE_SOCIAL_CLIENT_H
#define MN_CORE_SOCIAL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/social/social_msg.h"

struct event_base;
struct mn_config;

#define SOCIAL_SOCK             "social.sock"   /* in the runtime directory */
/* Every social verb is a table read or a queued write (one group commit):
 * 2 s is far past a healthy answer and well under the HTTP deadline. */
#define SOCIAL_CALL_TIMEOUT_MS  2000u
#define SOCIAL_MAX_PENDING      1024u
#define SOCIAL_BREAKER_FAILURES 3u
#define SOCIAL_BREAKER_OPEN_MS  1000u

typedef struct social_client social_client;
typedef struct social_call social_call;

/* The reply (borrowed for the callback): rep->status 200 or an error with
 * rep->code and rep->message; fail_504 when the call timed out. */
typedef void (*social_cb)(const social_rep *rep, void *arg);

social_client *social_client_new(struct event_base *base, const char *socket_path);
/* The client of <cfg runtime_dir>/social.sock. NULL on failure, logged. */
social_client *social_client_for(struct event_base *base, const struct mn_config *cfg);
void social_client_free(social_client *c);   /* NULL ok; pending callbacks dropped */
bool social_client_ready(const social_client *c);

/* Send q (copied). A handle for social_call_cancel, or NULL when no call
 * could be made (the callback still runs, later, with 503). */
social_call *social_call_start(social_client *c, const social_req *q, social_cb cb, void *arg);
/* The callback will not run. Only before it ran; NULL ok. */
void social_call_cancel(social_call *call);

#endif
