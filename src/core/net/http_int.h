/*
 * http_int.h — internals shared by the HTTP core's four files:
 *   http.c       server, listener, limits, routing and admission, metrics,
 *                request accessors;
 *   http_conn.c  connection state machine, HTTP/1.1 parser callbacks, the
 *                request object (and HTTP/2 heads into it);
 *   http_h2.c    HTTP/2 (ALPN h2): nghttp2 session, streams as requests;
 *   http_resp.c  response framing, writing, the error envelope (both codecs).
 * Not for use outside src/core/http*.c (and the fuzz target).
 */
#ifndef MN_CORE_HTTP_INT_H
#define MN_CORE_HTTP_INT_H

#include <http_parser.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "core/net/conn.h"
#include "core/net/http.h"
#include "core/net/http_test.h"
#include "core/metrics/metrics.h"
#include "lib/tbucket.h"

struct evbuffer;

/* Defaults applied when a limit is 0 (a zero would mean "no limit" or "no
 * body at all"; neither is a safe reading of an unset field). Values follow
 * DESIGN §1 and config.h. */
#define HTTP_DEFAULT_TIMEOUT_MS       5000u
#define HTTP_DEFAULT_IDLE_MS          60000u
#define HTTP_DEFAULT_MAX_BODY         (128u * 1024u)   /* limits.max_body's default */
#define HTTP_DEFAULT_MAX_HEADER       (16u * 1024u)
#define HTTP_DEFAULT_MAX_INFLIGHT     512u
#define HTTP_DEFAULT_MAX_CONNECTIONS  1024u
#define HTTP_H2_DEFAULT_STREAMS       100u
#define HTTP_H2_DEFAULT_STREAM_WINDOW (256u * 1024u)
#define HTTP_H2_DEFAULT_CONN_WINDOW   (1024u * 1024u)
#define HTTP_H2_DEFAULT_RPS           4000u
#define HTTP_H2_DEFAULT_CONTROL       200u

/* Pipelined bytes we keep buffered beyond one header block while a request
 * is being handled; past that the socket is not read (no unbounded input). */
#define HTTP_IN_SLACK          (64u * 1024u)
/* After a refusal the client may still be sending a body; the transport
 * lingers (conn.h) for this long and this many discarded bytes at most. */
#define HTTP_LINGER_MS         1000u
#define HTTP_LINGER_MAX_BYTES  (1024u * 1024u)
/* Extra response headers a handler may add (bytes of "Name: value\r\n"). */
#define HTTP_RESP_MAX_HDR_BYTES (16u * 1024u)
/* Of those, kept inline in the request: room for what an object's 200
 * carries (ETag, Cache-Control, Accept-Ranges, Content-Type and the two
 * CORS headers, ~300 bytes) without an allocation. */
#define HTTP_RESP_HDR_INLINE    384u
#define HTTP_CORR_ID_LEN       16
/* A body still to come after its request was answered (a refusal) is read
 * and dropped, keeping the connection, up to this many bytes. */
#define HTTP_DRAIN_MAX_BYTES   (64u * 1024u)
/* "Sun, 06 Nov 1994 08:49:37 GMT" is 29 bytes; room for what the compiler
 * cannot prove about struct tm fields. */
#define HTTP_DATE_BUF          64
#define HTTP_CODE_CACHE        12     /* status codes cached per route */
#define HTTP_METHOD_SLOTS      8      /* 7 HTTP_M_* methods + "other" */
/* Refusal logs per second per server; an attack must not flood the log. */
#define HTTP_LOG_REFUSALS_PER_S 10.0


enum http_conn_state {
	HTTP_CONN_HANDSHAKE,/* TLS handshake in progress; handshake deadline */
	HTTP_CONN_IDLE,     /* between requests; idle deadline */
	HTTP_CONN_HEADERS,  /* header block in progress; header deadline from its first byte */
	HTTP_CONN_BODY,     /* headers accepted, body in progress; read deadline per read */
	HTTP_CONN_WAIT,     /* request complete, waiting for its response to end */
	HTTP_CONN_H2,       /* HTTP/2: streams are the session's (http_h2.c) */
	HTTP_CONN_FLUSH,    /* last response queued; the transport flushes, lingers, closes */
	HTTP_CONN_CLOSED,   /* to be freed at the transport's next safe point */
};

enum http_resp_state {
	HTTP_RESP_NONE,
	HTTP_RESP_STARTED,
	HTTP_RESP_ENDED,
};

/* Body framing of a started response. */
enum http_resp_framing {
	HTTP_FRAME_LENGTH,   /* Content-Length */
	HTTP_FRAME_CHUNKED,  /* Transfer-Encoding: chunked */
	HTTP_FRAME_EOF,      /* HTTP/1.0 client, unknown length: ends at close */
	HTTP_FRAME_NONE,     /* 1xx/204/304: no body at all */
};

struct http_resp {
	enum http_resp_state   state;
	enum http_resp_framing framing;
	int                    status;
	uint64_t               clen;       /* declared Content-Length */
	uint64_t               written;    /* body bytes accepted so far */
	/* Extra "Name: value\r\n" lines: the first HTTP_RESP_HDR_INLINE bytes
	 * here (no allocation for the usual Content-Type), the rest in hdrs. */
	char                   hdr_inline[HTTP_RESP_HDR_INLINE];
	size_t                 hdr_len;    /* bytes used in hdr_inline */
	struct evbuffer       *hdrs;       /* overflow, after hdr_inline (owned), or NULL */
	bool                   has_retry_after;
	bool                   has_content_type;
	bool                   close;      /* this response carries Connection: close */
	bool                   drop_body;  /* HEAD or FRAME_NONE */
	void                 (*on_drain)(http_req *r, void *arg);
	void                  *drain_arg;
	bool                   drain_armed;
};

/* Which head string the parser is currently appending to. */
enum {
	HTTP_HPART_URL,
	HTTP_HPART_FIELD,
	HTTP_HPART_VALUE,
	HTTP_HPART_DONE,
};

struct http_hdr {
	uint32_t name;   /* offsets into http_req.hbuf, NUL-terminated */
	uint32_t value;
};

struct http_conn;

struct h2_stream;
struct h2_sess;

struct http_req {
	struct http_conn  *conn;         /* HTTP/1.1: the connection; HTTP/2: NULL */
	http_server       *srv;
	conn              *t;            /* the transport (borrowed) */
	struct h2_stream  *h2;           /* HTTP/2: the stream (owned by the session), or NULL */
	const http_route  *route;        /* NULL until matched / unmatched */
	size_t             stats_idx;    /* index into srv->stats (nroutes = unmatched) */
	unsigned           method_bit;
	bool               have_method;  /* the request line got as far as a method */
	/* request head: URL and header strings, NUL-separated (owned) */
	char              *hbuf;
	size_t             hlen, hcap;
	uint32_t           url_off, url_len, path_off, query_off;
	struct http_hdr    hdr[HTTP_MAX_HEADERS];
	size_t             nhdr;
	unsigned char      hpart;        /* string being received: HTTP_HPART_* */
	unsigned           method;       /* enum http_method, once have_method */
	int64_t            content_length;
	uint64_t           body_seen;
	uint64_t           body_counted; /* decoded bytes a handler reported, or 0 */
	bool               body_decoded; /* body_counted is set: it counts, not body_seen */
	void              *gate_ticket;  /* the gate's handle: gate_end once, at http_req_free */
	bool               gated;        /* the gate has seen it (its CORS headers are the gate's) */
	uint64_t           body_limit;   /* this request's body cap: its route's (http_route_body_cap), or the gate's lower one */
	bool               chunked;      /* Transfer-Encoding: chunked */
	/* buffered body of a non-streaming route (owned) */
	uint8_t           *body;
	size_t             body_len, body_cap;
	/* lifecycle */
	bool               keepalive;    /* client allows reuse (version + Connection) */
	bool               is_head;
	bool               http10;
	bool               dispatched;   /* handler has been called */
	bool               inflight;     /* counted in srv->inflight */
	bool               body_complete;/* whole body received (or none) */
	bool               parse_done;   /* on_message_complete seen */
	bool               end_sent;     /* on_end delivered to a streaming handler */
	bool               want_close;   /* handler or core asked for Connection: close */
	bool               gone;         /* aborted or on_close delivered: handler calls fail */
	/* streaming request body */
	http_body_fn       on_data;
	http_end_fn        on_end;
	void              *body_arg;
	bool               body_paused;
	bool               body_stopped; /* on_data returned -1 */
	void             (*on_close)(http_req *r, void *arg);
	void              *close_arg;
	struct http_resp   resp;
	char               corr_id[HTTP_CORR_ID_LEN + 1];
	struct timespec    t0;           /* first byte (latency) */
};

/* Events the parser callbacks leave for the feed loop (they pause the parser). */
enum http_parse_event {
	HTTP_PEV_NONE,
	HTTP_PEV_HEADERS,   /* on_headers_complete */
	HTTP_PEV_MESSAGE,   /* on_message_complete */
};

struct http_conn {
	http_server           *srv;
	struct http_conn      *prev, *next;
	conn                  *t;        /* the transport (owned): buffers, deadlines, TLS, free */
	http_parser            parser;
	enum http_conn_state   state;
	http_req              *req;      /* current request (owned), or NULL */
	http_req              *zombie;   /* answered request, freed at the next safe point */
	http_req              *spare;    /* a freed request kept for the next one (owned), or NULL */
	uint64_t               hdr_bytes;    /* header bytes of the current request */
	/* The body's progress (limits.min_body_rate): bytes parsed, and the
	 * time we have waited for them: past spells, and the current one since
	 * body_since while body_waiting (not while the handler or the node
	 * holds the body back: that time is ours, not the client's). */
	uint64_t               body_rx;
	uint64_t               body_waited_ms;
	uint64_t               body_since;
	uint64_t               body_read_due; /* the per-read deadline (http_now_ms) */
	bool                   body_waiting;
	unsigned               nreq;         /* requests started on this connection */
	enum http_parse_event  pev;
	int                    err_status;   /* set by a parser callback that failed */
	bool                   in_process;   /* re-entrancy guard for http_conn_process */
	bool                   in_execute;   /* inside http_parser_execute */
	bool                   again;
	bool                   drain_kick;   /* an on_drain registration wants a check */
	struct h2_sess        *h2;           /* HTTP/2 session (owned) once ALPN chose h2, or NULL */
};

struct http_code_slot {
	int             code;
	metrics_series *s;
};

/* Lazily resolved metric series of one route (or of "unmatched"). */
struct http_route_stats {
	struct http_code_slot codes[HTTP_CODE_CACHE];
	metrics_series       *latency[HTTP_METHOD_SLOTS];
	bool                  latency_done[HTTP_METHOD_SLOTS];
};

struct http_server {
	struct event_base       *base;
	const char              *service;
	http_limits              limits;
	const http_route        *routes;
	size_t                   nroutes;
	conn_listener           *lst;
	struct http_conn        *conns;
	size_t                   nconns;
	size_t                   inflight;
	tbucket                  rate;
	tbucket                  log_rate;
	http_gate_fn             gate;
	http_gate_end_fn         gate_end;
	void                    *gate_arg;
	bool                     cors_refusals; /* http_server_opts.cors_refusals */
	uint64_t                 shed_ms;    /* last in-flight refusal (http_now_ms), 0 = never */
	uint64_t                 queued;     /* response bytes queued over all connections */
	bool                     draining;
	void                   (*drain_done)(void *arg);
	void                    *drain_arg;
	struct http_route_stats *stats;      /* nroutes + 1 entries */
	metrics_series          *m_open, *m_in, *m_out;
	struct tls_server       *tls;        /* borrowed; NULL: plaintext */
	uint64_t                 tls_handshake_ms;
	metrics_series          *m_tls_fail; /* tls_handshake_failures_total */
	char                     date[HTTP_DATE_BUF];
	time_t                   date_sec;
	uint32_t                 corr_prefix;  /* correlation ids (http_corr_id_new) */
	uint32_t                 corr_counter;
};

/* ---- http.c ---- */
uint64_t http_now_ms(void);
void http_server_count_reject(http_server *srv, reject_reason why, const char *corr_id);
/* Account a response that ended (metrics, in-flight, access log). */
void http_server_account(http_server *srv, http_req *r);
const char *http_server_date(http_server *srv);
void http_corr_id_new(http_server *srv, char out[HTTP_CORR_ID_LEN + 1]);
unsigned http_method_to_bit(unsigned parser_method);
/* Route match, rate / in-flight / body caps. 0: admitted; -1: refused (an
 * error response has been queued or the connection is closing). */
__attribute__((warn_unused_result))
int http_server_admit(http_server *srv, http_req *r);
void http_server_conn_added(http_server *srv);
void http_server_conn_gone(http_server *srv);
void http_server_inflight_add(http_server *srv, http_req *r);
void http_server_inflight_del(http_server *srv, http_req *r);

/* ---- http_conn.c ---- */
/* Adopt an accepted socket (ownership of fd transferred: closed on failure);
 * the connection is linked into srv and counted. Borrowed sa is copied.
 * NULL on failure. */
struct http_conn *http_conn_new(http_server *srv, int fd, const struct sockaddr *sa, socklen_t salen);
/* Immediate free (server teardown only; never inside a connection callback). */
void http_conn_free(struct http_conn *c);
void http_conn_set_state(struct http_conn *c, enum http_conn_state st);
void http_conn_process(struct http_conn *c);
void http_conn_schedule(struct http_conn *c);
/* Graceful drain of one connection: close now if idle, else finish the
 * current response with Connection: close. */
void http_conn_drain(struct http_conn *c);
/* Abort: tell the handler (on_close), count, close. */
void http_conn_abort(struct http_conn *c, reject_reason why);
/* The handler loses its request: on_close once, then its calls fail. */
void http_conn_notify_close(struct http_conn *c, http_req *r);
/* A response may still be written (the transport has not closed). */
bool http_conn_can_write(const struct http_conn *c);
/* A response was abandoned mid-way: what is queued goes out (earlier
 * pipelined answers and a body the client will see truncated), then close;
 * with reset (close-delimited body, where truncation is invisible) the
 * connection is reset instead. */
void http_conn_abort_output(struct http_conn *c, bool reset);
struct evbuffer *http_conn_output(struct http_conn *c);
/* Response framing decided; ended; called from http_resp.c. */
bool http_conn_resp_must_close(struct http_conn *c, http_req *r);
void http_conn_resp_ended(struct http_conn *c, http_req *r);
/* The body cap of a request for route rt by method (HTTP_M_*): the
 * upload cap for a PUT/POST on an HTTP_ROUTE_UPLOAD route, else
 * max_body_bytes. Set at admission; the gate may lower it. */
uint64_t http_route_body_cap(const http_limits *l, const http_route *rt, unsigned method);
/* Until a request is admitted (an HTTP/2 stream's DATA may come with its
 * head), its body is held to the larger of the two caps. */
#define HTTP_PREADMIT_BODY_CAP(l) \
	((l)->max_upload_bytes > (l)->max_body_bytes ? (l)->max_upload_bytes : (l)->max_body_bytes)
/* A request for c (caller owns it; http_req_free, NULL ok). */
http_req *http_req_new(struct http_conn *c);
void http_req_free(http_req *r);

/* A request not tied to an HTTP/1.1 connection (HTTP/2 streams): NULL on
 * allocation failure. Freed with http_req_free. */
http_req *http_req_new_detached(http_server *srv, conn *t);
/* HTTP/2 request heads: one field (pseudo-headers included) as it is
 * decoded, then the end of the block. 0, or the status to refuse with. */
int http_req_h2_field(http_req *r, const uint8_t *name, size_t nl,
                      const uint8_t *value, size_t vl);
int http_req_h2_head_done(http_req *r, bool end_stream);
/* Body bytes of a request whose route does not stream: kept in r->body
 * (bounded by body_limit, checked by the caller). 0/-1. */
int http_req_body_keep(http_req *r, const uint8_t *at, size_t len);
/* The handler loses the request (on_close once, then its calls fail). */
void http_req_notify_close(http_req *r);

/* ---- http_resp.c ---- */
/* The core refuses request r (see http_resp_reject). */
void http_req_reject(http_req *r, int status, const char *code, const char *msg,
                     reject_reason why, unsigned retry_after);
/* The same with the core's table (http_resp_reject_status). */
void http_req_reject_status(http_req *r, int status, const char *detail);
/* Give up on r's exchange: HTTP/1.1 closes the connection, HTTP/2 resets
 * the stream. */
void http_req_kill(http_req *r);

void http_resp_fini(struct http_resp *resp);
/* The core answers with the error envelope (creating a request if the
 * parser had not got that far), or closes the connection when it cannot
 * answer any more; 4xx other than 404/405/429/503 also close after the
 * answer. Counts rejected_total{why}. Either way the request is refused:
 * there is no result to check. */
void http_resp_reject(struct http_conn *c, int status, const char *code,
                      const char *msg, reject_reason why, unsigned retry_after);
/* Same, with code / message / reason from the core's table for status
 * (400 408 413 414 431 500); detail replaces the message when given. */
void http_resp_reject_status(struct http_conn *c, int status, const char *detail);
/* Arm/fire on_drain from the write callback or the defer event. */
void http_resp_check_drain(http_req *r);

/* ---- http_h2.c: HTTP/2 on a connection whose TLS handshake chose h2 ---- */
/* Start the session on c (SETTINGS sent). 0/-1 (c is then closed). */
int    h2_sess_start(struct http_conn *c);
void   h2_sess_free(struct h2_sess *s);
void   h2_on_process(struct http_conn *c);   /* read, dispatch, write: a safe point */
void   h2_on_timer(struct http_conn *c);
void   h2_on_event(struct http_conn *c, unsigned what);
void   h2_drain(struct http_conn *c);       /* GOAWAY: no new streams, close when done */
/* The response side of an HTTP/2 request (http_resp.c calls these). */
bool   h2_req_can_write(const http_req *r);
int    h2_resp_start(http_req *r);
int    h2_resp_write(http_req *r, const void *data, size_t len,
                     void (*cleanup)(const void *, size_t, void *), void *arg);
int    h2_resp_end(http_req *r);
void   h2_resp_abort(http_req *r);
size_t h2_resp_pending(const http_req *r);
void   h2_req_schedule(http_req *r);
void   h2_req_body_paused(http_req *r, bool paused);

#endif
