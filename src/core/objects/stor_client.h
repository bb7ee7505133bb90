/*
 * stor_client.h — asynchronous client of the storage service, for any
 * service with a libevent loop (gateway and omnigate). Protocol:
 * docs/internal.md (OAP/1 frames over a SOCK_SEQPACKET UNIX socket, fds by
 * SCM_RIGHTS).
 *
 * One connection per client, opened lazily and re-opened after failure
 * with backoff, behind a circuit breaker: after STOR_BREAKER_FAILURES
 * consecutive failures (connect refused, connection lost, call timed out)
 * the breaker opens for STOR_BREAKER_OPEN_MS; while open every call fails
 * at once with status 503 (callers answer 503 + Retry-After: 1), and
 * stor_client_ready() is false (readiness reports it). The first call after
 * that window is the trial: success closes the breaker.
 *
 * Callbacks are always invoked from the event loop, never from inside the
 * function that issued the call. Calls in flight when the connection is
 * lost complete with status 503. At most STOR_MAX_PENDING calls may be in
 * flight per client; beyond that a call fails at once with 503.
 *
 * A reply that does not decode (stor_msg.h) is a bug in the storage
 * service, not a failure: the client process exits (log_fatalx) and the
 * supervisor restarts it.
 */
#ifndef MN_CORE_STOR_CLIENT_H
#define MN_CORE_STOR_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/objects/stor_msg.h"   /* STOR_APP_PROTO, the verbs */

struct event_base;

#define STOR_BREAKER_FAILURES 3u
#define STOR_BREAKER_OPEN_MS  1000u
#define STOR_CALL_TIMEOUT_MS  5000u
#define STOR_MAX_PENDING      1024u

typedef struct stor_client stor_client;
typedef struct stor_call stor_call;

typedef struct stor_result {
	int         status;     /* 200, 400, 404, 413, 422, 500, 502 (quarantined), 503 */
	uint64_t    len;        /* STAT/OPEN/PIN: object length; PUT_COMMIT: stored length */
	uint8_t     id[32];     /* PUT_COMMIT: the id the store computed */
	bool        created;    /* PUT_COMMIT: false if the object already existed */
	uint64_t    handle;     /* PUT_BEGIN */
	int         fds[2];     /* OPEN: blob, outboard; PUT_BEGIN: fds[0] writable file;
	                         * WATCH: fds[0] the removal epoch memfd; else -1.
	                         * Ownership passes to the callback, which must close them. */
	const char *message;    /* error text (borrowed for the callback), or "" */
	const uint8_t (*ids)[32]; /* LIST: the page (borrowed for the callback) */
	size_t      nids;
	bool        more;       /* LIST: objects after this page */
	const char *ctype;      /* META_SET/GET: the recorded type, "" for none (borrowed) */
	bool        ctype_by_read; /* META_SET/GET: ctype was sniffed on a read (may yet change) */
} stor_result;

typedef void (*stor_cb)(const stor_result *res, void *arg);

/* socket_path is copied. NULL on allocation failure. */
stor_client *stor_client_new(struct event_base *base, const char *socket_path);
/* Pending calls are cancelled silently (callbacks not called; fds closed). NULL ok. */
void stor_client_free(stor_client *c);
/* False while the breaker is open. */
bool stor_client_ready(const stor_client *c);
/* Called (from the event loop) each time the breaker closes (true) or opens
 * (false), so a service can tell the supervisor's readiness at once. */
void stor_client_on_state(stor_client *c, void (*fn)(bool ready, void *arg), void *arg);
/* Changes whenever the connection to storage is made or lost (a storage
 * restart is a new connection): a WATCH answered while it stayed the same
 * is the epoch of the storage process that answers OPEN now. */
unsigned stor_client_gen(const stor_client *c);

/* Each returns a handle for stor_call_cancel, or NULL if the call could not
 * even be queued (the callback is then still invoked, asynchronously, with 503). */
stor_call *stor_stat(stor_client *c, const uint8_t id[32], stor_cb cb, void *arg);
stor_call *stor_open(stor_client *c, const uint8_t id[32], stor_cb cb, void *arg);
/* tenant, peer: the share keys of stor_req_put_begin (borrowed for the
 * call; NULL is ""; longer than STOR_KEY_MAX - 1 bytes is cut). */
stor_call *stor_put_begin(stor_client *c, uint64_t max_len, const char *tenant, const char *peer,
                          stor_cb cb, void *arg);
/* expect: the id the body must hash to (PUT /o/{b3}), or NULL. cache: the
 * copy was fetched on a local miss and may be evicted (storage.cache_bytes);
 * false for everything a client wrote (which also promotes a cached copy of
 * the same object to an owned one). */
stor_call *stor_put_commit(stor_client *c, uint64_t handle, uint64_t len, const uint8_t *expect,
                           bool cache, stor_cb cb, void *arg);
/* PIN: make a stored object owned (no longer an evictable cache copy); 200
 * with its length (it was owned already, or is now), 404, 502. */
stor_call *stor_pin(stor_client *c, const uint8_t id[32], stor_cb cb, void *arg);
stor_call *stor_put_abort(stor_client *c, uint64_t handle, stor_cb cb, void *arg);
stor_call *stor_quarantine(stor_client *c, const uint8_t id[32], stor_cb cb, void *arg);
/* WATCH: the removal epoch memfd (docs/internal.md), 200 with fds[0], or
 * 503 when storage has none. */
stor_call *stor_watch(stor_client *c, stor_cb cb, void *arg);
/* LIST: up to max (1..STOR_LIST_MAX) ids of stored objects after `after`
 * (NULL: from the first), in id order; res->more says whether any follow. */
stor_call *stor_list(stor_client *c, const uint8_t *after, uint16_t max, stor_cb cb, void *arg);

/* META_GET: 200 with len and the recorded Content-Type ("" when none),
 * 404, 502 (quarantined). META_SET: record ctype (mediatype_parse's
 * grammar; cut to STOR_CTYPE_MAX - 1) — an upload's, or by_read: sniffed
 * on a read — unless an upload's type is recorded already (the first
 * stays) or any is and this one is a read's; 200 with the type in force
 * (and ctype_by_read), 400 (not a type), 404. */
stor_call *stor_meta_get(stor_client *c, const uint8_t id[32], stor_cb cb, void *arg);
stor_call *stor_meta_set(stor_client *c, const uint8_t id[32], const char *ctype, bool by_read,
                         stor_cb cb, void *arg);

/* The callback will not be called; fds that arrive for it are closed. */
void stor_call_cancel(stor_call *call);

#endif
