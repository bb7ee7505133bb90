/*
 * rpc_client.h — one asynchronous client of an internal service socket, for
 * any service with a libevent loop. The transport of docs/internal.md: OAP/1
 * frames over a SOCK_SEQPACKET UNIX socket (one frame per datagram,
 * app_proto_id per service, fds by SCM_RIGHTS). Typed layers sit on it and
 * own the payloads (core/objects/stor_client.h, core/dht/dht_client.h).
 *
 * One connection per client, opened lazily and re-opened after failure,
 * behind a circuit breaker: after o->breaker_failures consecutive failures
 * (connect refused, connection lost, call timed out) the breaker opens for
 * o->breaker_open_ms; while open every call fails at once (503,
 * RPC_FAIL_BREAKER) and rpc_client_ready() is false. When the window ends
 * the next call, or a probe (o->ping_verb) sent so that an idle client
 * recovers too, is the trial: any reply closes the breaker.
 *
 * Callbacks always run from the event loop, never inside the function that
 * issued the call. At most o->max_pending calls are in flight; one more
 * fails at once (503, RPC_FAIL_BUSY). Every call has the same deadline,
 * o->call_timeout_ms; when the oldest passes it the connection is reset and
 * every call on it fails (504, RPC_FAIL_TIMEOUT): a server past its own
 * deadlines is stuck, and calls behind it would be too.
 *
 * Replies are matched to calls by corr_id, so a server may answer in any
 * order (storage answers in request order; dht as lookups finish). A reply
 * that is not exactly an answer to a pending call — not a response frame of
 * this app_proto_id, an unknown corr_id, or a payload o->check refuses — is
 * a bug of the service (the socket is ours, 0600 in a 0700 directory), not
 * input: the client process exits (log_fatalx "<name> reply does not
 * decode; exiting") and the supervisor restarts it.
 */
#ifndef MN_CORE_PROTO_RPC_CLIENT_H
#define MN_CORE_PROTO_RPC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

#define RPC_CALL_CTX_MAX 32u    /* bytes of a typed layer's context per call */
#define RPC_ORPHANS      16u    /* callbacks owed without a call (out of memory) */

typedef struct rpc_client rpc_client;
typedef struct rpc_call rpc_call;

/* Why a call ended without a reply (RPC_FAIL_NONE: the service answered). */
typedef enum rpc_fail {
	RPC_FAIL_NONE = 0,
	RPC_FAIL_BREAKER,       /* 503: breaker open */
	RPC_FAIL_BUSY,          /* 503: max_pending calls already in flight */
	RPC_FAIL_UNREACHABLE,   /* 503: connect failed */
	RPC_FAIL_LOST,          /* 503: the connection was lost */
	RPC_FAIL_TIMEOUT,       /* 504: a call reached its deadline; the connection was reset */
	RPC_FAIL_NOMEM,         /* 503: no memory for the call */
	RPC_FAIL_ENCODE,        /* 500: the request does not fit a frame (a bug of the caller) */
} rpc_fail;

typedef struct rpc_reply {
	int            status;  /* 200 or 400..599 from the service; else 500/503/504 (fail) */
	rpc_fail       fail;
	uint16_t       verb;    /* the call's verb */
	const uint8_t *payload; /* borrowed for the callback; NULL when fail */
	size_t         len;
	int           *fds;     /* ownership passes to the callback (it must close them) */
	size_t         nfds;
	const void    *ctx;     /* the context given to rpc_call_start_ctx (a copy), or NULL */
} rpc_reply;

typedef void (*rpc_cb)(const rpc_reply *r, void *arg);

typedef struct rpc_client_opts {
	const char *name;              /* the service, for logs: "storage", "dht" (static) */
	uint16_t    app_proto;         /* app_proto_id of every frame */
	uint32_t    call_timeout_ms;   /* every call's deadline */
	uint32_t    max_pending;       /* calls in flight at once */
	uint32_t    breaker_failures;  /* consecutive failures that open the breaker */
	uint32_t    breaker_open_ms;   /* how long it stays open */
	uint16_t    ping_verb;         /* empty request, empty 200 reply: the probe */
	size_t      max_request;       /* largest request payload a call may carry */
	/* Is payload p[0..n) with nfds fds exactly a reply (status) to verb?
	 * 0, or -1: fatal. Called for every reply, cancelled calls' too. */
	int         (*check)(uint16_t verb, uint16_t status, const uint8_t *p, size_t n,
	                     size_t nfds);
	const char *(*verb_name)(uint16_t verb);   /* for the fatal log line */
} rpc_client_opts;

/* socket_path and *o are copied (o->name and the functions must be static).
 * NULL on allocation failure. */
rpc_client *rpc_client_new(struct event_base *base, const char *socket_path,
                           const rpc_client_opts *o);
/* Pending calls are dropped silently (callbacks not called; fds closed).
 * Inside a callback it takes effect when the callback returns. NULL ok. */
void rpc_client_free(rpc_client *c);
/* False while the breaker is open (or half open). */
bool rpc_client_ready(const rpc_client *c);
/* A number that changes whenever the connection is made or lost: a reply
 * taken while it stayed the same came from the same peer process. */
unsigned rpc_client_gen(const rpc_client *c);
/* fn runs (from the loop) each time the breaker closes (true) or opens (false). */
void rpc_client_on_state(rpc_client *c, void (*fn)(bool ready, void *arg), void *arg);

/* Send verb with payload[0..len) (copied). Returns a handle for
 * rpc_call_cancel, or NULL when no call could be allocated (cb still runs,
 * later, with 503 RPC_FAIL_NOMEM) or c is NULL or being freed (cb never runs). */
rpc_call *rpc_call_start(rpc_client *c, uint16_t verb, const uint8_t *payload, size_t len,
                         rpc_cb cb, void *arg);
/* The same, with ctx_len (≤ RPC_CALL_CTX_MAX) bytes of ctx copied into the
 * call and handed back as r->ctx (a typed layer's own callback and state). */
rpc_call *rpc_call_start_ctx(rpc_client *c, uint16_t verb, const uint8_t *payload, size_t len,
                             rpc_cb cb, void *arg, const void *ctx, size_t ctx_len);
/* The same, sending fd with the request (SCM_RIGHTS; the server must take
 * request fds, rpc_server_opts.request_fds). fd is the call's from here:
 * closed once sent, or when the call ends unsent, or at once (c NULL). */
rpc_call *rpc_call_start_fd(rpc_client *c, uint16_t verb, const uint8_t *payload, size_t len,
                            int fd, rpc_cb cb, void *arg, const void *ctx, size_t ctx_len);
/* The callback will not run; fds that arrive for the call are closed.
 * Only before the callback ran. NULL ok. */
void rpc_call_cancel(rpc_call *call);

#endif
