/*
 * ovl_fetch.h — the overlay's fetch coordinator: which object is being
 * fetched, from which provider next, and who is waiting for it.
 *
 * A request for a cid joins the fetch already running for it (concurrent
 * misses share one fetch) or starts one: ask for providers, order them by
 * score (peers that failed recently go last), try them one at a time until
 * one delivers a verified, stored copy or none is left, then answer every
 * waiter. How providers are found and how one is fetched from are the ops
 * (the overlay service plugs in the DHT client and peer_fetch; unit tests plug
 * in fakes), so this file holds no I/O.
 *
 * Bounded: OVL_MAX_FETCHES fetches at once (one more is refused 503),
 * OVL_MAX_WAITERS waiters per fetch (503), OVL_MAX_PROVIDERS providers
 * tried per fetch, OVL_MAX_PEERS scores remembered (least recently failed
 * forgotten first), and every fetch ends by its deadline (504).
 *
 * A range fetch (ovl_request_range) is the same walk over the same
 * providers, scores and deadline for the groups of one span: its result is
 * not stored but handed to every waiter (an opaque `got` the ops made and
 * drop), it is keyed by cid and span (identical spans share), nobody
 * waiting ends it, and at most OVL_MAX_RANGE_FETCHES run at once (each
 * holds its groups in memory until answered).
 *
 * Callbacks run from the event loop, never inside the call that caused
 * them. A waiter's callback runs once, unless the waiter was cancelled.
 */
#ifndef MN_SVC_OVL_FETCH_H
#define MN_SVC_OVL_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

#define OVL_ID_LEN        32u
#define OVL_ADDR_MAX      80u      /* "ip:port" or "<v3>.onion:port", NUL included */
#define OVL_MAX_FETCHES   64u
#define OVL_MAX_WAITERS   256u
#define OVL_MAX_PROVIDERS 16u
#define OVL_MAX_PEERS     1024u
#define OVL_MAX_RANGE_FETCHES 16u
/* Score penalties: a peer that sent a wrong byte is worse than one that was
 * slow or away; scores halve every OVL_SCORE_HALF_LIFE_MS. */
#define OVL_PENALTY_BAD       8u
#define OVL_PENALTY_OTHER     1u
#define OVL_SCORE_HALF_LIFE_MS (10u * 60u * 1000u)

typedef struct ovl_provider {
	uint8_t node_id[OVL_ID_LEN];
	char    addr[OVL_ADDR_MAX];
} ovl_provider;

/* One attempt's outcome; the names are metric labels
 * (overlay_peer_failures_total{reason}). */
typedef enum ovl_try {
	OVL_TRY_OK = 0,
	OVL_TRY_NOT_FOUND,   /* the provider does not have it (any more) */
	OVL_TRY_REFUSED,     /* 401/403/429/5xx */
	OVL_TRY_BAD_BYTES,   /* outboard or a group failed verification */
	OVL_TRY_STALLED,     /* no progress within the deadline */
	OVL_TRY_PIN,         /* not the node it claims to be */
	OVL_TRY_CONNECT,     /* unreachable */
	OVL_TRY_TOO_LARGE,   /* over storage.max_object */
	OVL_TRY_STORE,       /* our own storage (or memory) could not take it */
	OVL_TRY_NO_RANGE,    /* a range fetch: the provider does not serve ranges */
	OVL_TRY_COUNT
} ovl_try;

const char *ovl_try_name(ovl_try t);

/* The bytes a range fetch wants, inclusive. */
typedef struct ovl_span {
	uint64_t start, end;
} ovl_span;

/* The ops a coordinator drives. Each start returns a handle (non-NULL) that
 * cancel takes while the operation runs; the op calls done exactly once
 * unless cancelled, always from the loop. A range attempt's OK hands over
 * got (non-NULL; the coordinator owns it and gives it to drop); any other
 * done passes NULL. */
typedef void (*ovl_found_fn)(void *arg, int status, const ovl_provider *p, size_t n);
typedef void (*ovl_tried_fn)(void *arg, ovl_try result, uint64_t bytes, void *got);
typedef struct ovl_ops {
	void *(*find)(void *ctx, const uint8_t cid[OVL_ID_LEN], ovl_found_fn done, void *arg);
	/* span: NULL for the whole object (stored), else the bytes wanted. */
	void *(*fetch)(void *ctx, const uint8_t cid[OVL_ID_LEN], const ovl_span *span,
	               const ovl_provider *p, ovl_tried_fn done, void *arg);
	void  (*cancel)(void *ctx, void *handle);
	/* Free a range result once every waiter had it. May be NULL. */
	void  (*drop)(void *ctx, void *got);
	/* Called once per stored copy (announce it, count it). May be NULL. */
	void  (*stored)(void *ctx, const uint8_t cid[OVL_ID_LEN], uint64_t bytes);
	/* Called for every failed attempt (metrics, logs). May be NULL. */
	void  (*failed)(void *ctx, const ovl_provider *p, ovl_try why);
} ovl_ops;

typedef struct ovl_table ovl_table;
typedef struct ovl_waiter ovl_waiter;

/* status: 200 stored locally (a range: got holds it, borrowed for the
 * call); 404 no provider known; 502 every provider failed; 504 the deadline
 * passed first; 503 over a bound; 501 (range only) a provider that had it
 * does not serve ranges, and none delivered. len: on 200. */
typedef void (*ovl_done_fn)(void *arg, int status, uint64_t len, const void *got);

/* self: our own node id (never a provider to ourselves). deadline_ms: the
 * whole fetch, providers included. NULL on allocation failure. */
ovl_table *ovl_table_new(struct event_base *base, const ovl_ops *ops, void *ctx,
                         const uint8_t self[OVL_ID_LEN], uint64_t deadline_ms);
/* Ends every fetch (ops cancelled, waiters not called). NULL ok. */
void ovl_table_free(ovl_table *t);

/* Wait for cid to be stored locally. Returns the waiter (for cancel), or
 * NULL when refused over a bound — done is then still called, with 503,
 * from the loop. */
ovl_waiter *ovl_request(ovl_table *t, const uint8_t cid[OVL_ID_LEN], ovl_done_fn done, void *arg);
/* Wait for the groups of span (copied) of cid, fetched and verified, not
 * stored. Same contract as ovl_request. */
ovl_waiter *ovl_request_range(ovl_table *t, const uint8_t cid[OVL_ID_LEN], const ovl_span *span,
                              ovl_done_fn done, void *arg);
/* The waiter's callback will not run; the fetch goes on for the others (and
 * for the cache) unless it was the last waiter and has not started fetching. */
void ovl_waiter_cancel(ovl_waiter *w);

/* Fetches running now (a gauge; range fetches included). */
size_t ovl_table_active(const ovl_table *t);
/* The current penalty score of a peer (tests, status). */
unsigned ovl_peer_score(const ovl_table *t, const uint8_t node_id[OVL_ID_LEN]);

#endif
