/*
 * peer_fetch.h — a verified fetch of one object (or of the groups a byte
 * range needs) from one peer, over the peer plane (core/net/oap_client.h).
 *
 * One connection per fetch: dial the peer's oap.addr, pin its node id,
 * HELLO, then
 *   1. OUTBOARD {"cid"}: the object's length and its BLAKE3 chaining values;
 *      the length must fit max_len (else TOO_LARGE, before any outboard
 *      byte is kept) and the outboard must hash to the cid
 *      (b3tree_outboard_ok) before any object byte is asked for;
 *   2. GET {"cid"[,"range"]}: the bytes, collected one 64 KiB group at a
 *      time; each group is checked (b3tree_group_ok: against the outboard,
 *      or for a one-group object its bytes against the cid, the empty
 *      object included) before any of its bytes reach the sink.
 * The first failure ends the fetch at once: nothing unverified ever reaches
 * the sink, and the sink has seen exactly the groups before the bad one.
 *
 * Memory: the outboard (32 bytes per 64 KiB, at most PEER_FETCH_OUTBOARD_MAX)
 * and one group buffer, whatever the object's size; input is bounded by the
 * client (one frame), and peer_fetch_pause holds the peer back.
 *
 * Callbacks: sink for each verified piece in order (borrowed bytes, off =
 * their offset in the object); done exactly once (unless cancelled) with
 * the outcome; the fetch frees itself after done returns. Either may call
 * peer_fetch_cancel (sink) — after done the handle is gone.
 */
#ifndef MN_CORE_OBJECTS_PEER_FETCH_H
#define MN_CORE_OBJECTS_PEER_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/net/oap_client.h"

struct event_base;

/* Objects up to 64 GiB (2^20 groups): 32 MiB of outboard held at most. */
#define PEER_FETCH_OUTBOARD_MAX  (32u * 1024u * 1024u)
#define PEER_FETCH_DETAIL_MAX    256u
#define PEER_FETCH_META_MAX      256u    /* a START answer's JSON */

/* OAP verbs used (docs/oap.md registry). */
#define PEER_FETCH_VERB_GET      3u
#define PEER_FETCH_VERB_OUTBOARD 5u

typedef enum peer_fetch_outcome {
	PEER_FETCH_OK = 0,
	PEER_FETCH_NOT_FOUND,   /* 404: the peer does not hold it */
	PEER_FETCH_REFUSED,     /* 401/403/429/5xx or any other refusal; the peer cut the connection */
	PEER_FETCH_BAD_BYTES,   /* outboard or a group failed verification, wrong length or
	                           metadata, a malformed frame */
	PEER_FETCH_STALLED,     /* no progress within the deadline (frame or whole fetch) */
	PEER_FETCH_PIN,         /* the peer is not the node id dialled */
	PEER_FETCH_CONNECT,     /* unreachable, or no TLS session could be made */
	PEER_FETCH_TOO_LARGE,   /* longer than max_len (or PEER_FETCH_OUTBOARD_MAX) */
	PEER_FETCH_RANGE,       /* the range starts at or past the object's end */
	PEER_FETCH_NO_RANGE,    /* a ranged GET answered 400 or 200 (the whole object): the
	                           peer does not serve ranges; nothing was delivered */
	PEER_FETCH_LOCAL,       /* our side failed (memory) */
	PEER_FETCH_OUTCOMES,
} peer_fetch_outcome;

typedef struct peer_fetch_req {
	const char    *addr;       /* numeric ip:port of the peer's oap.addr (copied) */
	const uint8_t *node_id;    /* [32] the id the peer must prove (copied) */
	const uint8_t *cid;        /* [32] the object (copied) */
	uint64_t       max_len;    /* longer → TOO_LARGE */
	bool           has_range;
	uint64_t       start, end; /* inclusive; end past the object is clamped */
	const char    *cap;        /* capability token for the peer's wall, or NULL (copied) */
	const oap_client_opts *timeouts;  /* NULL: defaults */
	uint64_t       deadline_ms;       /* the whole fetch; 0: none */
} peer_fetch_req;

typedef struct peer_fetch_info {
	uint64_t    len;          /* the object's length, once known (else 0) */
	uint64_t    delivered;    /* bytes handed to the sink */
	const char *detail;       /* words for a log line (borrowed) */
	/* The outboard, once it hashed to the cid (else NULL): borrowed for the
	 * done callback. Set for OK, RANGE and any failure after OUTBOARD. */
	const uint8_t *outboard;
	size_t      outboard_len;
} peer_fetch_info;

typedef struct peer_fetch peer_fetch;
typedef void (*peer_fetch_sink)(void *arg, uint64_t off, const uint8_t *p, size_t n);
typedef void (*peer_fetch_done)(void *arg, peer_fetch_outcome o, const peer_fetch_info *info);

/* Start (peer: our identity, borrowed, outlives the fetch). NULL with err
 * (bad addr, memory); then no callback comes. */
peer_fetch *peer_fetch_start(struct event_base *base, tls_peer *peer, const peer_fetch_req *req,
                             peer_fetch_sink sink, peer_fetch_done done, void *arg,
                             char *err, size_t errlen);
/* Stop; no callback after this. NULL ok; not after done. */
void peer_fetch_cancel(peer_fetch *f);
/* Hold the peer back (the sink's consumer is full) or let it go on. */
void peer_fetch_pause(peer_fetch *f, bool paused);
/* "ok", "not_found", "refused", "bad_bytes", "stalled", "pin", "connect",
 * "too_large", "range", "no_range", "local": peer_fetch_total{outcome}. */
const char *peer_fetch_outcome_name(peer_fetch_outcome o);

#endif
