/*
 * oap_client.h — an asynchronous OAP/1 client of another node's omnigate on
 * the peer plane (docs/oap.md "Peer plane"): one TCP connection to a
 * numeric ip:port, TLS 1.3 with our identity certificate, SNI TLS_PEER_SNI
 * and the peer's node id pinned (core/tls.h), HELLO, then request streams.
 *
 * Everything runs on the caller's event loop; nothing blocks. The transport
 * is core/net/conn (handshake and write deadlines, deferred free). Limits:
 *
 *   connect_ms    TCP connect;
 *   handshake_ms  TLS handshake (absolute);
 *   frame_ms      progress: while the HELLO answer or an open stream's
 *                 answer is awaited and we are not paused, some bytes must
 *                 arrive within this, else OAP_CLIENT_TIMEOUT;
 *   input         at most one frame (OAP_MAX_FRAME, the canon's 1 MiB)
 *                 buffered; a header announcing more is a protocol error
 *                 decided from its first 38 bytes;
 *   streams       at most OAP_CLIENT_MAX_CALLS open at once;
 *   back-pressure oap_client_pause stops reading (and the progress
 *                 deadline: we are the slow side) until resumed.
 *
 * Callbacks: on_ready once HELLO is answered (streams may start then);
 * on_error at most once, after which no callback of the client or of its
 * calls runs again and the caller frees the client. A call's on_start
 * comes once (the RESP|START frame: status and JSON metadata), on_data for
 * each body frame's bytes (borrowed for the callback), on_end once; the
 * call handle is invalid after on_end, after on_error, and after
 * oap_call_cancel. Any callback may free the client, cancel calls or start
 * new ones.
 *
 * Ownership: the client owns its connection and calls; peer (tls_peer) is
 * borrowed and must outlive the client; strings passed in are copied.
 */
#ifndef MN_CORE_NET_OAP_CLIENT_H
#define MN_CORE_NET_OAP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tls.h"

struct event_base;

#define OAP_CLIENT_MAX_CALLS   64u      /* open streams per connection (oap.max_inflight) */
#define OAP_CLIENT_PARAMS_MAX  4096u    /* START parameters (docs/oap.md) */
#define OAP_CLIENT_CAP_MAX     4096u    /* capability token in the START cap bytes */
#define OAP_CLIENT_DETAIL_MAX  256u
#define OAP_CLIENT_DEFAULT_MS  5000u
#define OAP_CLIENT_ONION_MS    20000u   /* least connect deadline through tor */
#define OAP_CLIENT_HOST_MAX    80u      /* an onion name ("<56>.onion") with room */

typedef enum oap_client_error {
	OAP_CLIENT_OK = 0,
	OAP_CLIENT_CONNECT,    /* TCP connect failed or timed out */
	OAP_CLIENT_TLS,        /* the handshake failed, not by our identity check */
	OAP_CLIENT_PIN,        /* the peer's certificate is not the node id dialled
	                          (peer_tls_refused_total{reason} says how) */
	OAP_CLIENT_TIMEOUT,    /* handshake, HELLO or progress deadline */
	OAP_CLIENT_PROTOCOL,   /* a malformed, oversize or unexpected frame */
	OAP_CLIENT_CLOSED,     /* the peer closed the connection */
	OAP_CLIENT_NOMEM,
} oap_client_error;

typedef struct oap_client oap_client;
typedef struct oap_call oap_call;

typedef struct oap_client_opts {
	uint64_t connect_ms;     /* 0: OAP_CLIENT_DEFAULT_MS (each of them) */
	uint64_t handshake_ms;
	uint64_t frame_ms;
	uint64_t write_ms;
	/* tor's SOCKS5 port, numeric "ip:port" (borrowed for the call to
	 * oap_client_new): an onion addr is dialed through it by name, the
	 * same TLS pin on top (core/tor/socks5.h). NULL: onions are refused. */
	const char *socks;
} oap_client_opts;

typedef struct oap_client_cbs {
	void (*on_ready)(void *arg);
	/* detail: words for a log or an operator (borrowed for the call). */
	void (*on_error)(void *arg, oap_client_error e, const char *detail);
} oap_client_cbs;

typedef struct oap_call_cbs {
	void (*on_start)(void *arg, int status, const uint8_t *json, size_t len);
	void (*on_data)(void *arg, const uint8_t *p, size_t n);
	void (*on_end)(void *arg);
} oap_call_cbs;

/*
 * Dial addr ("ip:port" or "[v6]:port", numeric; or "<v3 onion>.onion:port"
 * through o->socks) and authenticate it as node id pin. NULL (err set) when addr does not parse or on allocation failure;
 * every later failure comes through cbs->on_error, never from inside this
 * call. o may be NULL (defaults). cbs copied; arg borrowed.
 */
oap_client *oap_client_new(struct event_base *base, tls_peer *peer, const char *addr,
                           const uint8_t pin[IDENTITY_ID_LEN], const oap_client_opts *o,
                           const oap_client_cbs *cbs, void *arg, char *err, size_t errlen);
/* Close (no further callbacks) and free at the next safe point. NULL ok. */
void oap_client_free(oap_client *c);

/*
 * Start a stream (after on_ready): verb on app_proto_id 1, params a JSON
 * object text (NULL: none), cap a capability token (NULL: anonymous).
 * NULL when not ready, too many streams, parameters or token too long, or
 * the frame cannot be queued (then on_error follows).
 */
oap_call *oap_client_start(oap_client *c, uint16_t verb, const char *params, const char *cap,
                           const oap_call_cbs *cbs, void *arg);
/* No more callbacks for call; its remaining frames are dropped. */
void oap_call_cancel(oap_call *call);

/* Stop (true) or resume (false) reading: the caller's consumer is full. */
void oap_client_pause(oap_client *c, bool paused);

/* "connect", "tls", "pin", "timeout", "protocol", "closed", "nomem" ("ok"). */
const char *oap_client_error_name(oap_client_error e);

#endif
