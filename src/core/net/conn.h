/*
 * conn.h — the one transport under every protocol (HTTP/1.1 in http_conn.c,
 * OAP/1 in svc/omnigate/oap_conn.c, and every future listener), after h2o's
 * h2o_socket_t: protocol code keeps its parser and state machine and never
 * touches a raw fd, an SSL object or the bufferevent set-up.
 *
 * Two pieces:
 *
 * conn_listener — accepts on a bound, listening socket. Over the connection
 *   cap an accepted socket goes to the owner's on_refuse (answer and close)
 *   before anything is allocated for it. When accept fails for want of a
 *   resource (EMFILE, ENFILE, ENOBUFS, ENOMEM — libevent reports every
 *   non-retriable accept error), the socket stays readable: re-arming at once
 *   would spin the loop at full CPU without freeing anything. So the
 *   listener is disabled and re-enabled after CONN_ACCEPT_BACKOFF_MS; one
 *   warning per back-off (at most ten lines a second).
 *
 * conn — one accepted connection: a socket or TLS bufferevent (the SSL
 *   comes from tls_server_ssl_new), the write deadline, one timer for the
 *   protocol's read-side deadlines, the handshake deadline, byte counters,
 *   close_notify, linger and the deferred free. Transport states:
 *
 *     HANDSHAKE ──on_open──► OPEN ──conn_flush──► FLUSH ──► LINGER ──► CLOSED
 *         │                   │                     │                    ▲
 *         └── failure/deadline┴──── conn_close ─────┴────────────────────┘
 *
 *   HANDSHAKE: TLS only; an absolute deadline (handshake_ms). A failure is
 *     counted in tls_failures (a TCP probe that sent nothing is not) and
 *     logged, rate-limited; the connection closes without the protocol
 *     having seen it open.
 *   OPEN: the protocol's. Reads call on_read, output falling to write_low
 *     calls on_write, the timer armed with conn_arm calls on_timer.
 *   FLUSH: nothing more is read; what is queued goes out (bounded by the
 *     bufferevent write deadline and, if given, an absolute one). Then
 *     LINGER, or CLOSED when the peer already closed or the flush is a cut.
 *   LINGER: close_notify, SHUT_WR, then input is read and discarded until
 *     EOF, linger_bytes or linger_ms. Closing with unread input makes the
 *     kernel send RST, which can destroy the last answer in flight.
 *   CLOSED: terminal. The struct is freed from the defer event, when none of
 *     our callbacks is on the stack (Redis freeClientAsync): on_close is the
 *     last call; the protocol frees its own state and then conn_free().
 *
 * Plaintext sockets do their own I/O (docs/internal.md): a readable
 * socket is read with one recv (no FIONREAD), and output queued during a
 * callback is written with one send (or writev) when it returns; the
 * bufferevent keeps the buffers, and its write event (with the write
 * deadline) takes over only while the socket refuses output. Reading stops
 * only when read_max is buffered, so no epoll_ctl is spent per request.
 *
 * Callbacks never run after CLOSED (except on_close), and on_read/on_write
 * /on_timer only in OPEN; on_event (EOF, socket error, write deadline) runs
 * in OPEN and FLUSH so that the protocol can count and decide.
 *
 * Ownership: a conn owns its bufferevent and fd; the opts' metrics series,
 * log bucket and queued counter are borrowed and must outlive it.
 */
#ifndef MN_CORE_NET_CONN_H
#define MN_CORE_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/metrics/metrics.h"
#include "lib/tbucket.h"

struct bufferevent;
struct evbuffer;
struct event_base;
struct ssl_st;
struct tls_server;

/* The one back-off rule after a failed accept (it was the HTTP listener's). */
#define CONN_ACCEPT_BACKOFF_MS 100u
#define CONN_MAX_SINGLE_WRITE  (1024u * 1024u) /* bytes one write wake-up may send */
#define CONN_MAX_SINGLE_READ   (16u * 1024u)   /* bytes one read wake-up may take (libevent's default) */

/* ---- listener ------------------------------------------------------------ */

typedef struct conn_listener conn_listener;

/* An accepted socket (fd transferred; sa borrowed for the call). */
typedef void (*conn_accept_fn)(void *arg, int fd, const struct sockaddr *sa, socklen_t salen);

typedef struct conn_listener_opts {
	conn_accept_fn on_accept;
	conn_accept_fn on_refuse;   /* over max_conns: answer and close; NULL: just close */
	size_t       (*live)(void *arg);  /* connections the owner holds now */
	size_t         max_conns;   /* 0: no cap */
	void          *arg;
	const char    *log_msg;     /* "http accept failed" (static) */
	bool           own_fd;      /* close fd on free */
} conn_listener_opts;

/* Refusals and back-offs since start (tests, and an owner's metrics). */
typedef struct conn_listener_stats {
	uint64_t accepted;
	uint64_t refused_cap;       /* over max_conns */
	uint64_t refused_off;       /* accepted while disabled (drain) */
	uint64_t backoffs;          /* failed accepts, each one pause */
} conn_listener_stats;

/* Accept on fd (bound, listening, non-blocking). opts copied. NULL on failure
 * (fd not closed). Starts enabled. */
conn_listener *conn_listener_new(struct event_base *base, int fd, const conn_listener_opts *opts);
void conn_listener_free(conn_listener *l);   /* NULL ok */
/* Stop (drain) or resume accepting; a pending back-off stays pending. */
void conn_listener_enable(conn_listener *l, bool on);
void conn_listener_set_cap(conn_listener *l, size_t max_conns);
bool conn_listener_is_backing_off(const conn_listener *l);
const conn_listener_stats *conn_listener_get_stats(const conn_listener *l);

/* ---- connection ---------------------------------------------------------- */

typedef struct conn conn;

enum {
	CONN_EV_EOF     = 1u << 0,  /* the peer closed its write side */
	CONN_EV_ERROR   = 1u << 1,  /* socket or TLS error */
	CONN_EV_TIMEOUT = 1u << 2,  /* write deadline: output pending without progress */
};

typedef struct conn_ops {
	void (*on_open)(void *arg);            /* TLS handshake done (plaintext: see conn_start) */
	void (*on_read)(void *arg);            /* input arrived */
	void (*on_write)(void *arg);           /* output fell to write_low */
	void (*on_event)(void *arg, unsigned what);  /* CONN_EV_* */
	void (*on_timer)(void *arg);           /* conn_arm deadline */
	void (*on_defer)(void *arg);           /* conn_schedule: a safe point */
	void (*on_close)(void *arg);           /* last call: free the protocol state and the conn */
	/* Optional: the TLS handshake failed (timeout: its deadline passed;
	 * reason: static or OpenSSL's words). The owner reports it and nothing
	 * is logged here; on_close follows. NULL: the transport logs it
	 * (rate-limited). */
	void (*on_tls_fail)(void *arg, bool timeout, const char *reason);
} conn_ops;

typedef struct conn_opts {
	const conn_ops *ops;          /* borrowed, static */
	void           *arg;
	size_t          read_max;     /* input buffered before reading stops (bounded input) */
	size_t          write_low;    /* on_write when output falls to this */
	uint64_t        write_ms;     /* write deadline */
	uint64_t        handshake_ms; /* TLS handshake deadline */
	uint64_t        linger_ms;
	uint64_t        linger_bytes;
	metrics_series *m_in, *m_out; /* bytes read / written (NULL: not counted) */
	metrics_series *m_tls_fail;   /* tls_handshake_failures_total */
	tbucket        *log_rate;     /* handshake failure log lines (NULL: every one) */
	const char     *tls_log_msg;  /* "tls handshake failed" (static) */
	uint64_t       *queued;       /* output bytes queued over all the owner's conns, or NULL */
} conn_opts;

/*
 * A connection on an accepted fd (transferred: closed on failure), TLS on
 * tls's current context when tls is non-NULL (borrowed). sa (borrowed) is
 * the peer address from accept, or NULL. opts copied. TCP_NODELAY is set for
 * IP peers: small streamed chunks must not wait for delayed ACKs.
 */
conn *conn_new(struct event_base *base, int fd, const struct sockaddr *sa, socklen_t salen,
               struct tls_server *tls, const conn_opts *opts);
/* The same on an existing bufferevent (transferred: freed on failure);
 * tls: bev is a bufferevent_openssl still accepting. */
conn *conn_adopt(struct event_base *base, struct bufferevent *bev, bool tls,
                 const conn_opts *opts);
/*
 * A dialled connection (the peer plane's client, core/net/oap_client.h):
 * fd is connected and non-blocking (transferred: closed on failure), ssl a
 * client SSL (transferred: freed with the connection, or on failure), sa
 * (borrowed) the address dialled. conn_start begins the client handshake
 * under opts->handshake_ms; on_open follows, or on_tls_fail and on_close.
 */
conn *conn_dial_new(struct event_base *base, int fd, const struct sockaddr *sa, socklen_t salen,
                    struct ssl_st *ssl, const conn_opts *opts);
/* Begin. true: OPEN now (plaintext), the protocol starts its machine;
 * false: TLS HANDSHAKE, on_open follows (or the connection closes). */
bool conn_start(conn *c);
/* Immediate free, no callback (owner teardown, or from on_close). NULL ok. */
void conn_free(conn *c);

/* The protocol's read-side deadline (OPEN only): absolute from now. */
void conn_arm(conn *c, uint64_t ms);
void conn_disarm(conn *c);
bool conn_is_armed(const conn *c);
void conn_read(conn *c, bool on);            /* read or stop reading (OPEN only) */
void conn_schedule(conn *c);                 /* on_defer (or on_close) at the next safe point */

/* No more reading; deliver what is queued, then linger (or close when
 * linger is false: a cut, no close_notify). deadline_ms (0: none) bounds
 * the whole flush. No-op once flushing or closed. */
void conn_flush(conn *c, bool linger, uint64_t deadline_ms);
/* Close now (deferred free). notify: send close_notify first (a clean end
 * between messages); aborts do not, so a peer can tell a cut from an end. */
void conn_close(conn *c, bool notify);
/* Close with RST (close-delimited body cut mid-way: the client must see an error). */
void conn_reset(conn *c);

/* Buffers (borrowed): input to parse from, output to queue answers on. */
struct evbuffer *conn_input(const conn *c);
struct evbuffer *conn_output(const conn *c);
size_t conn_out_len(const conn *c);
/* Plaintext, open: write what the output holds now, from this call, instead
 * of at the loop's next pass (the first bytes of an answer then leave
 * before the handler queues the rest). TLS or any other state: nothing. */
void conn_push(conn *c);
/* An event base for a process of the node (epoll with the changelist: an
 * event deleted and re-added in one loop pass costs no epoll_ctl), or NULL. */
struct event_base *conn_base_new(void);
/* Output may still be queued: OPEN or FLUSH. */
bool conn_can_write(const conn *c);
bool conn_is_open(const conn *c);
bool conn_peer_eof(const conn *c);
bool conn_is_tls(const conn *c);
/* Peer address from accept (len 0 when unknown). Borrowed. */
const struct sockaddr *conn_peer(const conn *c, socklen_t *len);
/* The TLS handshake chose this ALPN protocol ("h2"). */
bool conn_alpn_is(const conn *c, const char *proto);
/* Verified TLS client certificate (X509 *, borrowed), or NULL. */
void *conn_peer_cert(const conn *c);
/* The peer's node id when the handshake verified its certificate as a
 * node identity (the peer plane, core/tls.h): 0, else -1. */
__attribute__((warn_unused_result))
int conn_peer_node_id(const conn *c, uint8_t id[32]);
/* The bufferevent, for code not yet ported (the wall hand-off). Borrowed. */
struct bufferevent *conn_bev(const conn *c);

#endif
