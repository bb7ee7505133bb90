/*
 * http.h — the node's HTTP/1.1 server core, on libevent bufferevents with
 * Debian's http-parser (not evhttp). Every HTTP service (admin plane,
 * gateway) uses it.
 *
 * What the core does for every request, before a handler sees it:
 *   - connection cap (max_connections): excess connections get 503 and close;
 *   - header block cap (max_header_bytes) → 431; whole-header-block deadline
 *     (header_timeout_ms, slow-loris) → connection closed;
 *   - route match: unknown path → 404, known path with another method → 405
 *     with Allow (unmatched requests pay the rate cap first);
 *   - body cap decided from Content-Length before any body byte is read → 413
 *     and close; chunked bodies counted as they arrive → 413 and close. The
 *     cap is max_body_bytes (limits.max_body: JSON and control bodies),
 *     or max_upload_bytes for a PUT/POST on an HTTP_ROUTE_UPLOAD route
 *     (the gateway's object uploads: storage.max_object);
 *   - the server's gate, if any (the wall: Auth → Policy → Quota), which may
 *     refuse (401/403/413/429/451) or lower this request's body cap;
 *   - request rate cap (token bucket, requests_per_second) → 429 + Retry-After;
 *   - shedding by route class: facet routes get 503 once in-flight requests
 *     reach 3/4 of max_inflight or queued response bytes 3/4 of
 *     memory_budget, core routes at the caps themselves; admin (EXEMPT)
 *     routes are never shed, gated or rate-capped;
 *   - read / write / idle (keep-alive) deadlines.
 * Routes flagged HTTP_ROUTE_EXEMPT skip the rate and in-flight caps (the
 * admin plane's probes must answer under load).
 *
 * Pipelined requests are parsed one at a time and answered in order: the
 * parser is paused after each message until its response has ended.
 * HEAD responses carry headers (Content-Length included) but no body.
 *
 * Every refusal is counted in rejected_total{reason} and every response in
 * http_requests_total{service,route,code} and
 * request_latency_seconds{service,route,method} (route = the route's label,
 * never the raw path; "unmatched" for 404s).
 *
 * Errors are the JSON envelope {"code","message","retryable","corr_id"}.
 *
 * Lifetime: an http_req is valid from the handler call until the response has
 * ended (http_reply / http_resp_end / http_resp_abort) or its on_close
 * callback has run, whichever is first. A handler may answer later (async);
 * if the client goes away first, on_close is called and the request is freed
 * after it returns. Strings returned by accessors are borrowed from the
 * request.
 */
#ifndef MN_CORE_HTTP_H
#define MN_CORE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/metrics/reject.h"

struct event_base;

#define HTTP_MAX_URL_BYTES     8192   /* request target; longer → 414 */
#define HTTP_MAX_HEADERS       100    /* header fields; more → 431 */
#define HTTP_OUT_HIGH_WATER    (256u * 1024u) /* http_resp_write backpressure mark */

/* Methods as bits (route masks, Allow header). */
enum {
	HTTP_M_GET     = 1u << 0,
	HTTP_M_HEAD    = 1u << 1,
	HTTP_M_POST    = 1u << 2,
	HTTP_M_PUT     = 1u << 3,
	HTTP_M_DELETE  = 1u << 4,
	HTTP_M_OPTIONS = 1u << 5,
	HTTP_M_PATCH   = 1u << 6,
};

/* Route flags. */
enum {
	HTTP_ROUTE_PREFIX      = 1u << 0, /* path is a prefix ("/o/") rather than exact */
	HTTP_ROUTE_STREAM_BODY = 1u << 1, /* handler runs at headers-complete; body via http_req_on_body */
	HTTP_ROUTE_EXEMPT      = 1u << 2, /* admin class: no gate, rate or in-flight caps */
	HTTP_ROUTE_FACET       = 1u << 3, /* facet class: shed first under load */
	HTTP_ROUTE_UPLOAD      = 1u << 4, /* PUT/POST bodies capped by max_upload_bytes, not max_body_bytes */
};

/* Route classes (DESIGN §4 shedding order: facet, then core, never admin). */
typedef enum { HTTP_CLASS_CORE = 0, HTTP_CLASS_FACET, HTTP_CLASS_ADMIN } http_class;

typedef struct http_server http_server;
typedef struct http_req http_req;

typedef void (*http_handler_fn)(http_req *req, void *arg);

typedef struct http_route {
	unsigned        methods;  /* HTTP_M_* mask */
	const char     *path;     /* "/healthz" or prefix "/o/" with HTTP_ROUTE_PREFIX */
	const char     *label;    /* metrics route label: "/healthz", "/o/{b3}" */
	unsigned        flags;    /* HTTP_ROUTE_* */
	http_handler_fn fn;
	void           *arg;
} http_route;

typedef struct http_limits {
	uint64_t read_timeout_ms;
	uint64_t write_timeout_ms;
	uint64_t idle_timeout_ms;
	uint64_t header_timeout_ms;
	uint64_t max_body_bytes;       /* every body but an upload's (limits.max_body) */
	uint64_t max_upload_bytes;     /* PUT/POST on HTTP_ROUTE_UPLOAD routes; 0 = max_body_bytes */
	const char *body_cap_name;     /* how a 413 names max_body_bytes; NULL = "limits.max_body" */
	uint64_t max_header_bytes;
	uint32_t max_inflight;
	uint32_t requests_per_second;  /* 0 = unlimited */
	uint32_t max_connections;
	uint64_t memory_budget;        /* response bytes queued in memory, all connections; 0 = none */
	/* A body must average min_body_rate bytes/s over the time we waited
	 * for it, once body_grace_ms of that time has passed (408 otherwise):
	 * the per-read deadline alone lets one byte per read_timeout hold a
	 * request, and its upload slot, forever. 0 = off. */
	uint64_t min_body_rate;
	uint64_t body_grace_ms;
	/* HTTP/2 (TLS listeners that offer h2 by ALPN; docs/http2.md). 0 takes
	 * the default (HTTP_H2_DEFAULT_* in http_int.h). */
	uint32_t h2_max_streams;       /* SETTINGS_MAX_CONCURRENT_STREAMS */
	uint32_t h2_stream_window;     /* SETTINGS_INITIAL_WINDOW_SIZE: body bytes a stream may send ahead */
	uint32_t h2_conn_window;       /* the connection's receive window */
	uint32_t h2_requests_per_s;    /* streams one connection may open per second (burst: one second's) */
	uint32_t h2_control_per_s;     /* SETTINGS, PING, PRIORITY, RST_STREAM and empty frames per second */
} http_limits;

/*
 * What a gate decided about one request, read by the core during admission
 * only. The gate may hand the core a ticket, its own handle for the request:
 * the core keeps that pointer (nothing else of the verdict) and passes it to
 * gate_end exactly once, when the request is freed, whatever became of it
 * (answered, refused, aborted, connection closed). Strings are borrowed:
 * static, or owned by the ticket.
 */
typedef struct http_gate_verdict {
	int           status;           /* 0: admitted; else the refusal status */
	const char   *code;             /* error envelope code */
	const char   *message;          /* error envelope message, or NULL */
	reject_reason reject;           /* rejected_total reason; REJECT_NONE: not counted */
	unsigned      retry_after_s;    /* 429/503 */
	const char   *www_authenticate; /* WWW-Authenticate value, or NULL */
	bool          body_capped;      /* admitted: lower this request's body cap to body_cap */
	uint64_t      body_cap;         /* (0 is a cap: no body at all) */
	void         *ticket;           /* the gate's handle for gate_end, or NULL */
} http_gate_verdict;

/* Called for every non-EXEMPT route after the body cap check and before the
 * rate and in-flight caps; synchronous. v starts zeroed. */
typedef void (*http_gate_fn)(http_req *r, void *arg, http_gate_verdict *v);
/* A request the gate gave a ticket has ended; body_bytes of its body arrived
 * (what a gate that metered an unknown size settles against). */
typedef void (*http_gate_end_fn)(void *arg, void *ticket, uint64_t body_bytes);

typedef struct http_server_opts {
	const char        *service;  /* metrics label, e.g. "admin", "gateway" (borrowed, static) */
	http_limits        limits;
	const http_route  *routes;   /* borrowed; must outlive the server */
	size_t             nroutes;
	http_gate_fn       gate;     /* NULL: no gate */
	http_gate_end_fn   gate_end; /* required when the gate hands out tickets */
	void              *gate_arg;
	/* Every refusal the core answers before the gate has seen the request
	 * (400, 408, 413, 414, 431, 404/405, 429/503 shedding, the connection
	 * cap's 503) carries Access-Control-Allow-Origin: *, so a page on
	 * another origin can read why (the gateway: public content, no
	 * credentials by cookie). After the gate, CORS is the gate's. */
	bool               cors_refusals;
} http_server_opts;

struct mn_config;
/* The limits a service's config gives (timeouts.*, limits.*). */
void http_limits_from_config(http_limits *l, const struct mn_config *c);

/* Create a server on base. NULL on allocation failure. */
http_server *http_server_new(struct event_base *base, const http_server_opts *opts);
/* Stop listening, close every connection, free. NULL is a no-op. */
void http_server_free(http_server *srv);
/* Accept on an already bound, listening, non-blocking fd (not closed by the server on free
 * unless own_fd). 0/-1. */
__attribute__((warn_unused_result))
int http_server_listen_fd(http_server *srv, int fd, bool own_fd);
struct tls_server;
/*
 * Serve TLS on every connection accepted from now on (tls borrowed; must
 * outlive the server). The TLS handshake has its own deadline
 * (handshake_ms); failures count in tls_handshake_failures_total.
 */
void http_server_set_tls(http_server *srv, struct tls_server *tls, uint64_t handshake_ms);

/* Replace limits for new requests/connections (live reload). */
void http_server_set_limits(http_server *srv, const http_limits *limits);
/*
 * Graceful drain: stop accepting, close idle keep-alive connections, stop
 * keep-alive on busy ones (Connection: close after the current response),
 * and call done(arg) once no connection remains (possibly synchronously).
 */
void http_server_drain(http_server *srv, void (*done)(void *arg), void *arg);
/* True while the server sheds load: a route was refused for in-flight
 * pressure during the last HTTP_SHED_HOLD_MS. */
#define HTTP_SHED_HOLD_MS 1000u
bool http_server_shedding(const http_server *srv);

/* ---- request accessors (borrowed strings) ---- */
const char *http_req_method(const http_req *r);       /* "GET" */
unsigned    http_req_method_bit(const http_req *r);   /* HTTP_M_* */
const char *http_req_path(const http_req *r);         /* path only, not decoded, no query */
const char *http_req_query(const http_req *r);        /* after '?', not decoded, or "" */
const char *http_req_route_label(const http_req *r);
http_class  http_req_route_class(const http_req *r);
/* First header with this name (case-insensitive), or NULL. */
const char *http_req_header(const http_req *r, const char *name);
/* How many fields have this name (credentials must not be ambiguous). */
size_t      http_req_header_count(const http_req *r, const char *name);
/* Content-Length, or -1 if absent / chunked. */
int64_t     http_req_content_length(const http_req *r);
/* The body's size is not known yet (Transfer-Encoding: chunked). */
bool        http_req_body_chunked(const http_req *r);
/* The largest body this request may carry (the route's cap, lowered by the
 * gate): a handler that decodes the body holds the decoded bytes to it. */
uint64_t    http_req_body_limit(const http_req *r);
/* The body's size as it counts for limits and quotas when the handler
 * decodes it (Content-Encoding): reported to the gate's end instead of the
 * wire bytes. Call again as it grows. */
void        http_req_set_body_bytes(http_req *r, uint64_t decoded);
const struct sockaddr *http_req_peer(const http_req *r, socklen_t *len);
/* The gate's ticket for this request (http_gate_verdict.ticket; the wall's
 * wall_ticket on the gateway), or NULL. Borrowed: the core ends it with
 * the request. */
void       *http_req_gate_ticket(const http_req *r);
/* Judged from the peer address, never from Host. */
bool        http_req_peer_is_loopback(const http_req *r);
/* Per-request correlation id (16 hex chars). */
const char *http_req_corr_id(const http_req *r);
/* Verified TLS client certificate (mutual TLS), or NULL. Borrowed (X509 *). */
void *http_req_peer_cert(const http_req *r);

/* ---- streaming request body (HTTP_ROUTE_STREAM_BODY routes) ---- */
/* on_data returns 0 to continue, -1 to stop reading (the handler then answers). */
typedef int  (*http_body_fn)(http_req *r, const uint8_t *data, size_t len, void *arg);
typedef void (*http_end_fn)(http_req *r, void *arg);
void http_req_on_body(http_req *r, http_body_fn on_data, http_end_fn on_end, void *arg);

/* Called if the connection goes away before the response ended. */
void http_req_on_close(http_req *r, void (*fn)(http_req *r, void *arg), void *arg);

/* ---- responses ---- */
/* Add a response header (copied). Only before the response starts. 0/-1. */
int http_resp_header(http_req *r, const char *name, const char *value);
/* A whole response. Adds Content-Length, Date, Content-Type when given. 0/-1. */
int http_reply(http_req *r, int status, const char *content_type, const void *body, size_t len);
int http_reply_json(http_req *r, int status, const char *json);
/*
 * The error envelope {"code","message","retryable","corr_id"}. For 429/503 a
 * Retry-After header is added (retry_after_s, at least 1) unless one was set.
 * 405 handlers set Allow themselves via http_resp_header.
 */
int http_reply_error(http_req *r, int status, const char *code, const char *message,
                     bool retryable, unsigned retry_after_s);
/* Streaming: content_length >= 0 sets Content-Length; -1 uses chunked encoding. */
int http_resp_start(http_req *r, int status, int64_t content_length);
int http_resp_write(http_req *r, const void *data, size_t len);
/* Send what is queued now rather than at the loop's next pass, for the
 * first bytes of a long answer before the rest is read and verified:
 * true when done (plaintext). TLS: false, nothing done (the loop writes;
 * see http_req_after_write). */
bool http_resp_push(http_req *r);
/* Like http_req_on_drain, but while output is queued fn waits for it to be
 * written (below the low mark) rather than running at the loop's next
 * pass: the loop writes first. */
void http_req_after_write(http_req *r, void (*fn)(http_req *r, void *arg), void *arg);
/* The same without a copy: data stays the caller's memory until cleanup
 * (data, len, arg) runs — once the socket took the bytes, or the
 * connection dropped them (at once when there is nothing to send: HEAD).
 * On -1 the bytes were not taken: cleanup does not run for them and they
 * are still the caller's. */
int http_resp_write_ref(http_req *r, const void *data, size_t len,
                        void (*cleanup)(const void *data, size_t len, void *arg), void *arg);
int http_resp_end(http_req *r);
/* Close the connection without completing the response (mid-stream integrity failure). */
void http_resp_abort(http_req *r);
/* Bytes queued but not yet written to the socket. */
size_t http_resp_pending(const http_req *r);
/* Called once when pending output falls below HTTP_OUT_HIGH_WATER / 2. */
void http_req_on_drain(http_req *r, void (*fn)(http_req *r, void *arg), void *arg);

/* Reason phrase for a status code ("Not Found"). */
const char *http_status_text(int status);

#endif
