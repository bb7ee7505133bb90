/*
 * omnigate.h — private to src/svc/omnigate: the OAP/1 listener service
 * (omnigate.c), one connection (oap_conn.c) and the object verbs
 * (oap_verbs.c). Protocol: docs/oap.md.
 *
 * Ownership: the omnigate owns its connections; a connection owns its
 * streams; a stream owns its verb state, except that a verb state with a
 * storage callback still to come outlives its stream (it is orphaned:
 * vs->s = NULL) and frees itself in that callback.
 */
#ifndef MN_SVC_OMNIGATE_H
#define MN_SVC_OMNIGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <jansson.h>

#include "core/metrics/metrics.h"
#include "core/net/conn.h"
#include "core/metrics/reject.h"
#include "core/proto/oap.h"
#include "core/objects/objcache.h"
#include "core/objects/stor_client.h"
#include "lib/tbucket.h"

struct bufferevent;
struct event_base;
struct tls_peer;
struct tls_server;
struct wall_ticket;

#define OG_APP_HELLO        0x0000u
#define OG_APP_OBJECTS      0x0001u
#define OG_DATA_MAX         (64u * 1024u)    /* payload of one GET data frame */
#define OG_OUT_HIGH_WATER   (256u * 1024u)   /* stop producing above this much output */
#define OG_PARAMS_MAX       4096u            /* START payload (JSON parameters) */
#define OG_STREAMS_MAX      4096u            /* hard ceiling on oap.max_inflight */
#define OG_LINGER_MS        2000u            /* read-and-discard after a refusal */
#define OG_LINGER_BYTES     (4u << 20)       /* at most this much discarded */
#define OG_LOG_PER_S        10               /* refusal log lines per second */
#define OG_DEFAULT_MS       5000u

/* Verbs: `code` of a START frame with app_proto_id OG_APP_OBJECTS. */
enum { OG_VERB_PING = 1, OG_VERB_STAT = 2, OG_VERB_GET = 3, OG_VERB_PUT = 4,
       OG_VERB_OUTBOARD = 5, OG_VERB_REPLICATE = 6 };

/* oap_rejected_total{reason}: the node's reasons, reject_reason
 * (core/metrics/reject.h). */

typedef struct og_limits {
	uint32_t max_inflight;      /* streams per connection (oap.max_inflight) */
	uint32_t max_connections;
	uint64_t read_ms;           /* a started frame must complete within this */
	uint64_t idle_ms;           /* no frame and nothing to do for this long */
	uint64_t write_ms;          /* output pending without progress */
	uint64_t handshake_ms;
	uint64_t max_object;        /* storage.max_object */
	/* The node-wide caps, one rule with the HTTP core (limits.*): request
	 * streams started per second, and streams in flight in this process. */
	uint32_t requests_per_second; /* 0: no cap */
	uint32_t node_inflight;       /* limits.max_inflight */
	/* A PUT stream's body must average min_body_rate bytes/s over the time
	 * the connection read for it, once body_grace_ms of it has passed (the
	 * HTTP rule): else 408 and its upload is given back. 0: off. */
	uint64_t min_body_rate;
	uint64_t body_grace_ms;
} og_limits;

typedef struct oap_conn oap_conn;
typedef struct oap_stream oap_stream;

typedef struct omnigate {
	struct event_base     *base;
	stor_client           *stor;     /* NULL: object verbs answer 503 (tests) */
	struct audit_client   *audit;    /* integrity and refusal records; NULL: no audit service */
	objcache              *cache;    /* open objects, group buffers; NULL: none kept */
	struct wall           *wall;     /* Auth → Policy → Quota; NULL: no gate (unit tests only) */
	struct tls_server     *tls;      /* NULL: plaintext (tests only) */
	struct tls_peer       *peer;     /* the peer plane (node identity), or NULL */
	struct ovl_client     *ovl;      /* the overlay (REPLICATE), or NULL: not enabled */
	conn_listener         *lst;      /* accept, connection cap, fd back-off */
	og_limits              lim;
	oap_conn              *conns;
	size_t                 nconns;
	bool                   draining;
	void                 (*drain_done)(void *arg);
	void                  *drain_arg;
	tbucket                log_rate;
	tbucket                rate;     /* limits.requests_per_second */
	size_t                 inflight; /* admitted streams of every connection */
	metrics_series        *m_in, *m_out, *m_conns, *m_streams, *m_tls_fail;
} omnigate;

/* One request stream (oap_conn.c owns it). */
struct oap_stream {
	oap_conn   *c;
	oap_stream *next;
	uint64_t    corr_id;
	uint8_t     tenant[16];
	uint16_t    verb;
	bool        req_done;     /* the client's END frame has arrived */
	bool        answered;     /* our START answer frame has been sent */
	bool        ended;        /* our END answer frame has been sent */
	bool        discard;      /* refused: drop body frames until END */
	bool        counted;      /* counts in c->nactive */
	bool        wants_pump;   /* GET blocked on output space */
	bool        finished;     /* both sides done (or connection closing);
	                           * freed at the connection's next safe point */
	uint16_t    status;       /* code of our START answer (data frames repeat it) */
	uint64_t    body_seen;
	/* limits.min_body_rate: wire bytes of body frames, when the stream was
	 * admitted, and the connection's held time then (oap_conn.c). */
	uint64_t    body_rx;
	uint64_t    body_t0;
	uint64_t    body_held0;
	/* The wall's judgement of an admitted stream (its body cap, the byte
	 * reservation), or NULL: ended once, with body_seen, when the stream is
	 * swept. A refused stream's ticket is ended at the refusal. */
	struct wall_ticket *ticket;
	void       *vs;           /* verb state (oap_verbs.c) */
};

/* May the verb still answer on s? */
static inline bool og_stream_live(const oap_stream *s)
{
	return s && !s->finished && !s->ended;
}

/* ---- omnigate.c ---- */
void og_init(omnigate *og, struct event_base *base);  /* metrics, log rate */
/* Count why in oap_rejected_total and log it (rate-limited). */
void og_count_reject(omnigate *og, reject_reason why, const char *detail);
void og_conn_added(omnigate *og, oap_conn *c);
void og_conn_gone(omnigate *og, oap_conn *c);
uint64_t og_now_ms(void);

/* ---- oap_conn.c ---- */
/* A connection on an accepted fd (transferred: closed on failure), TLS on
 * og->tls (plaintext when NULL: tests). sa borrowed. NULL on failure. */
oap_conn *oap_conn_accept(omnigate *og, int fd, const struct sockaddr *sa, socklen_t salen);
/* A connection on bev (transferred: freed with the connection). tls: bev is
 * a bufferevent_openssl still accepting. NULL on allocation failure (bev
 * freed). Tests drive a socketpair through this. */
oap_conn *oap_conn_new(omnigate *og, struct bufferevent *bev, bool tls);
/* Close now (deferred free). NULL ok. */
void oap_conn_free(oap_conn *c);
/* Drain: no new streams (503); close once the last stream finishes. */
void oap_conn_drain(oap_conn *c);
oap_conn *oap_conn_next(const oap_conn *c);
void oap_conn_link(oap_conn *c, oap_conn **head);
void oap_conn_unlink(oap_conn *c, oap_conn **head);
omnigate *oap_conn_og(const oap_conn *c);
/* The peer's node id when the connection came in on the peer plane (SNI
 * TLS_PEER_SNI, its identity certificate verified): true and *id set, for
 * verbs that admit other nodes (replication). false otherwise. */
bool oap_conn_peer_node(const oap_conn *c, uint8_t id[32]);

/* Answers on a stream. json is borrowed. -1 when the frame cannot be queued
 * (the connection is then closing). */
__attribute__((warn_unused_result))
int og_stream_reply(oap_stream *s, int status, const char *json, bool end);
/* Error envelope, RESP|START|END; counts oap_requests_total. */
void og_stream_error(oap_stream *s, int status, const char *code, const char *msg,
                     bool retryable);
__attribute__((warn_unused_result))
int og_stream_data(oap_stream *s, const uint8_t *buf, size_t n, bool end);
/* The same without copying buf: it stays the caller's memory until
 * cleanup(buf, n, arg) runs (sent, or the connection dropped it); on -1
 * it was not taken and is still the caller's. */
int og_stream_data_ref(oap_stream *s, const uint8_t *buf, size_t n, bool end,
                       void (*cleanup)(const void *, size_t, void *), void *arg);
/* Output is full: og_verb_pump will be called when it drains. */
void og_stream_wait_output(oap_stream *s);
/* Stop reading frames until og_stream_resume (PUT waiting for storage). */
void og_stream_pause(oap_stream *s);
void og_stream_resume(oap_stream *s);
/* Integrity failure after data went out: cut the connection. */
void og_stream_abort(oap_stream *s);
/* The share key of the stream's client address (util_peer_key). */
void og_stream_peer_key(const oap_stream *s, char *out, size_t len);
/* "%016" PRIx64 of the stream's corr_id. */
void og_stream_corr_hex(const oap_stream *s, char out[17]);

/* ---- oap_verbs.c ---- */
/* A START frame for app OG_APP_OBJECTS (params parsed here). */
void og_verb_start(oap_stream *s, const oap_frame *f);
/* A body frame (PUT); f->payload already decompressed when COMP. */
void og_verb_body(oap_stream *s, const uint8_t *data, size_t n, bool end);
/* Output has room again. */
void og_verb_pump(oap_stream *s);
/* The stream is going away: free the verb state or orphan it. */
void og_verb_release(oap_stream *s);
/* ---- oap_replicate.c ---- */
/* REPLICATE with its parsed parameters j (borrowed). */
void og_replicate_start(oap_stream *s, const oap_frame *f, json_t *j);
/* The stream is going away: cancel its overlay call or orphan the state. */
void og_replicate_release(oap_stream *s);

/* Does the verb take body frames after START? */
bool og_verb_has_body(uint16_t verb);
const char *og_verb_name(uint16_t verb);

#endif
