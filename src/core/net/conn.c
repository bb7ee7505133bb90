/*
 * conn.c — the shared transport (conn.h): the listener with its connection
 * cap and accept back-off, and one connection's bufferevent (plain or TLS),
 * deadlines, linger, deferred free and byte counters.
 */
#include "core/net/conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/net/wbio.h"
#include "core/tls.h"
#include "lib/log.h"

#define CONN_TLS_REASON_MAX 256

enum conn_state {
	CONN_HANDSHAKE,
	CONN_OPEN,
	CONN_FLUSH,
	CONN_LINGER,
	CONN_CLOSED,
};

struct conn {
	struct bufferevent     *bev;
	struct event           *timer;   /* protocol deadline, or ours outside OPEN */
	struct event           *defer;   /* the safe point */
	struct event           *flush;   /* direct write: queued output goes out (plaintext) */
	struct event           *rd;      /* direct read: the socket is readable (plaintext) */
	BIO                    *wbio;    /* TLS: the SSL's write BIO (wbio.h; the SSL owns it) */
	conn_opts               o;
	enum conn_state         state;
	bool                    tls;
	bool                    peer_eof;
	bool                    linger;  /* the flush ends in LINGER (else a cut) */
	bool                    direct;  /* plaintext: we write; libevent only when the socket is full */
	bool                    write_armed; /* direct, and libevent's write event owns the output */
	bool                    rd_want;     /* direct: reading is on (the state's or the protocol's) */
	bool                    rd_full;     /* direct: input reached read_max; resumes on drain */
	bool                    rd_added;    /* direct: c->rd is in the loop */
	uint64_t                linger_seen;
	uint64_t                out_queued;
	struct sockaddr_storage peer;
	socklen_t               peerlen;
};

struct conn_listener {
	struct evconnlistener *lev;
	struct event          *retry;
	struct event          *resume;    /* re-enables after one accept (below) */
	conn_listener_opts     o;
	bool                   on;        /* the owner wants connections (not draining) */
	bool                   backing_off;
	conn_listener_stats    st;
};

static uint64_t conn_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct timeval conn_tv(uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000u), (suseconds_t)((ms % 1000u) * 1000u) };

	return tv;
}

/*
 * The epoll changelist: an event deleted and added again within one pass of
 * the loop (a bufferevent's write event, each time its output empties and is
 * refilled; EV_READ paused and resumed around a request) costs no
 * epoll_ctl at all, instead of two per response. Its one hazard, two fds
 * sharing a file description in one epoll set (dup), does not arise here:
 * no process of the node dups a socket it polls (fds received over SCM_RIGHTS are
 * files, never polled).
 */
struct event_base *conn_base_new(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (!cfg)
		return NULL;
	(void)event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

/* ---- listener ------------------------------------------------------------ */

static void on_listener_accept(struct evconnlistener *lev, evutil_socket_t fd,
                               struct sockaddr *sa, int salen, void *arg)
{
	conn_listener *l = arg;

	(void)lev;
	if (!l->on) {
		l->st.refused_off++;
		close(fd);
		return;
	}
	if (l->o.max_conns && l->o.live && l->o.live(l->o.arg) >= l->o.max_conns) {
		/* Before any allocation or handshake: that is the point of the cap. */
		l->st.refused_cap++;
		if (l->o.on_refuse)
			l->o.on_refuse(l->o.arg, fd, sa, (socklen_t)salen);
		else
			close(fd);
		return;
	}
	l->st.accepted++;
	l->o.on_accept(l->o.arg, fd, sa, (socklen_t)salen);
	/* One connection per pass of the loop (nginx's multi_accept off):
	 * libevent would accept until the backlog is empty, so with several
	 * workers on one listening socket the first to wake took a whole burst
	 * (measured: 29 of wrk's 32 connections to one gateway worker, the
	 * other idle). Now each takes one and comes back after serving what
	 * is ready; a busy worker comes back later and takes fewer. */
	if (l->on && !l->backing_off) {
		(void)evconnlistener_disable(lev);
		event_active(l->resume, EV_TIMEOUT, 1);
	}
}

static void on_listener_resume(evutil_socket_t fd, short what, void *arg)
{
	conn_listener *l = arg;

	(void)fd;
	(void)what;
	if (l->on && !l->backing_off)
		(void)evconnlistener_enable(l->lev);
}

/* libevent calls this for every accept error but EINTR, EAGAIN and
 * ECONNABORTED: in practice fd or buffer exhaustion, which leaves the
 * socket readable. Pause instead of spinning. */
static void on_listener_error(struct evconnlistener *lev, void *arg)
{
	conn_listener *l = arg;
	struct timeval tv = conn_tv(CONN_ACCEPT_BACKOFF_MS);
	int err = EVUTIL_SOCKET_ERROR();

	l->st.backoffs++;
	log_kv(LOG_LEVEL_WARN, l->o.log_msg ? l->o.log_msg : "accept failed",
	       "error", strerror(err), LOG_END);
	(void)evconnlistener_disable(lev);
	l->backing_off = true;
	evtimer_add(l->retry, &tv);
}

static void on_listener_retry(evutil_socket_t fd, short what, void *arg)
{
	conn_listener *l = arg;

	(void)fd;
	(void)what;
	l->backing_off = false;
	if (l->on)
		(void)evconnlistener_enable(l->lev);
}

conn_listener *conn_listener_new(struct event_base *base, int fd, const conn_listener_opts *opts)
{
	unsigned flags = LEV_OPT_CLOSE_ON_EXEC | (opts->own_fd ? LEV_OPT_CLOSE_ON_FREE : 0);
	conn_listener *l;

	if (!base || fd < 0 || !opts->on_accept || !(l = calloc(1, sizeof *l)))
		return NULL;
	l->o = *opts;
	l->on = true;
	l->retry = evtimer_new(base, on_listener_retry, l);
	l->resume = event_new(base, -1, 0, on_listener_resume, l);
	/* backlog 0: the fd is already listening; libevent must not call listen(). */
	if (l->retry && l->resume)
		l->lev = evconnlistener_new(base, on_listener_accept, l, flags, 0, fd);
	if (!l->lev) {
		if (l->retry)
			event_free(l->retry);
		if (l->resume)
			event_free(l->resume);
		free(l);
		return NULL;
	}
	evconnlistener_set_error_cb(l->lev, on_listener_error);
	return l;
}

void conn_listener_free(conn_listener *l)
{
	if (!l)
		return;
	evconnlistener_free(l->lev);
	event_free(l->retry);
	event_free(l->resume);
	free(l);
}

void conn_listener_enable(conn_listener *l, bool on)
{
	l->on = on;
	if (!on)
		(void)evconnlistener_disable(l->lev);
	else if (!l->backing_off)
		(void)evconnlistener_enable(l->lev);
}

void conn_listener_set_cap(conn_listener *l, size_t max_conns)
{
	l->o.max_conns = max_conns;
}

bool conn_listener_is_backing_off(const conn_listener *l)
{
	return l->backing_off;
}

const conn_listener_stats *conn_listener_get_stats(const conn_listener *l)
{
	return &l->st;
}

/* ---- the transport's state ---------------------------------------------- */

static void conn_set_state(conn *c, enum conn_state st);

/* Direct read: c->rd is in the loop while reading is on and the input is
 * under its bound; a change costs an epoll_ctl, so only a real change
 * makes one. */
static void conn_rd_sync(conn *c)
{
	bool on = c->rd_want && !c->rd_full;

	if (on == c->rd_added)
		return;
	c->rd_added = on;
	if (on)
		(void)event_add(c->rd, NULL);
	else
		(void)event_del(c->rd);
}

/* Reading on or off: ours (direct) or the bufferevent's (TLS). */
static void conn_rd(conn *c, bool on)
{
	if (!c->direct) {
		if (on)
			(void)bufferevent_enable(c->bev, EV_READ);
		else
			(void)bufferevent_disable(c->bev, EV_READ);
		return;
	}
	c->rd_want = on;
	conn_rd_sync(c);
}

/*
 * close_notify on a graceful close: without it a TLS peer cannot tell a
 * complete close-delimited body from a cut one, so aborts never send it.
 * Best effort: written straight to the socket, never waited for.
 */
static void conn_close_notify(conn *c)
{
	SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(c->bev) : NULL;

	if (!ssl || !SSL_is_init_finished(ssl) || (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
		return;
	(void)SSL_shutdown(ssl);
	ERR_clear_error();
	if (c->wbio)
		(void)BIO_flush(c->wbio);   /* the alert leaves now, before any shutdown() */
	ERR_clear_error();
}

/* Nothing left to send: neither plaintext for SSL_write nor records. */
static bool conn_drained(const conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 &&
	       (!c->wbio || wbio_pending(c->wbio) == 0);
}

/* The output is empty: the flush is over. */
static void conn_flushed(conn *c)
{
	conn_set_state(c, c->linger && !c->peer_eof ? CONN_LINGER : CONN_CLOSED);
}

/* The one place the transport changes state; CLOSED is terminal and a
 * closing connection never reopens. */
static void conn_set_state(conn *c, enum conn_state st)
{
	struct timeval tv;

	if (c->state == CONN_CLOSED || st < c->state)
		return;
	c->state = st;
	switch (st) {
	case CONN_HANDSHAKE:
		tv = conn_tv(c->o.handshake_ms);   /* absolute: a stalled handshake is cut */
		evtimer_add(c->timer, &tv);
		conn_rd(c, true);
		break;
	case CONN_OPEN:
		evtimer_del(c->timer);
		conn_rd(c, true);
		break;
	case CONN_FLUSH:
		conn_rd(c, false);
		/* on_write fires when everything is out, not at the low mark. */
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		if (conn_drained(c))
			conn_flushed(c);
		break;
	case CONN_LINGER:
		conn_close_notify(c);
		(void)shutdown(bufferevent_getfd(c->bev), SHUT_WR);
		c->linger_seen = 0;
		tv = conn_tv(c->o.linger_ms);
		evtimer_add(c->timer, &tv);
		conn_rd(c, true);
		break;
	case CONN_CLOSED:
		evtimer_del(c->timer);
		conn_rd(c, false);
		(void)bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		event_active(c->defer, EV_TIMEOUT, 1);
		break;
	}
}

/* The handshake did not complete. A peer that went away without sending a
 * byte (a TCP probe) never attempted one and is not counted; a silent peer
 * cut at the deadline is. why is non-NULL only for our deadlines. */
static void conn_tls_failed(conn *c, const char *why)
{
	char reason[CONN_TLS_REASON_MAX];

	if (c->o.ops->on_tls_fail) {
		(void)tls_handshake_failure(c->bev, why, reason, sizeof reason);
		c->o.ops->on_tls_fail(c->o.arg, why != NULL, reason);
	} else if (tls_handshake_failure(c->bev, why, reason, sizeof reason)) {
		metrics_inc(c->o.m_tls_fail, 1);
		if (!c->o.log_rate || tbucket_take(c->o.log_rate, 1, conn_now_ms()))
			log_kv(LOG_LEVEL_INFO, c->o.tls_log_msg ? c->o.tls_log_msg : "tls handshake failed",
			       "reason", reason, LOG_END);
	}
	conn_set_state(c, CONN_CLOSED);
}

/* ---- libevent callbacks -------------------------------------------------- */

static void on_conn_read(struct bufferevent *bev, void *arg)
{
	conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (c->state == CONN_LINGER) {
		c->linger_seen += evbuffer_get_length(in);
		(void)evbuffer_drain(in, evbuffer_get_length(in));
		if (c->linger_seen > c->o.linger_bytes)
			conn_set_state(c, CONN_CLOSED);
		return;
	}
	if (c->state == CONN_OPEN)
		c->o.ops->on_read(c->o.arg);
}

static void on_conn_write(struct bufferevent *bev, void *arg)
{
	conn *c = arg;

	/* libevent has delivered what the socket refused: direct again. Its
	 * write event is already deleted (empty output), so this costs no
	 * system call. */
	if (c->direct && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		c->write_armed = false;
		(void)bufferevent_disable(bev, EV_WRITE);
	}
	if (c->state == CONN_FLUSH) {
		if (conn_drained(c))
			conn_flushed(c);
		return;
	}
	if (c->state == CONN_OPEN && c->o.ops->on_write)
		c->o.ops->on_write(c->o.arg);
}

static void conn_handshake_event(conn *c, short what)
{
	if (what & BEV_EVENT_CONNECTED) {
		conn_set_state(c, CONN_OPEN);
		c->o.ops->on_open(c->o.arg);
	} else {
		conn_tls_failed(c, (what & BEV_EVENT_TIMEOUT) ? "handshake write timeout" : NULL);
	}
}

static void on_conn_event(struct bufferevent *bev, short what, void *arg)
{
	conn *c = arg;
	unsigned ev = 0;

	(void)bev;
	switch (c->state) {
	case CONN_HANDSHAKE:
		conn_handshake_event(c, what);
		return;
	case CONN_OPEN:
	case CONN_FLUSH:
		break;
	case CONN_LINGER:
		conn_set_state(c, CONN_CLOSED);   /* EOF is what lingering waits for */
		return;
	default:
		return;
	}
	if (what & BEV_EVENT_EOF) {
		c->peer_eof = true;
		ev |= CONN_EV_EOF;
	}
	if (what & BEV_EVENT_ERROR)
		ev |= CONN_EV_ERROR;
	if (what & BEV_EVENT_TIMEOUT)
		ev |= CONN_EV_TIMEOUT;
	c->o.ops->on_event(c->o.arg, ev);
}

static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
	conn *c = arg;

	(void)fd;
	(void)what;
	switch (c->state) {
	case CONN_HANDSHAKE:
		conn_tls_failed(c, "handshake timeout");
		break;
	case CONN_OPEN:
		c->o.ops->on_timer(c->o.arg);
		break;
	default:
		conn_set_state(c, CONN_CLOSED);   /* flush deadline, end of linger */
		break;
	}
}

static void on_conn_defer(evutil_socket_t fd, short what, void *arg)
{
	conn *c = arg;

	(void)fd;
	(void)what;
	if (c->state == CONN_CLOSED)
		c->o.ops->on_close(c->o.arg);   /* frees c: nothing after this */
	else if (c->o.ops->on_defer)
		c->o.ops->on_defer(c->o.arg);
}

/* Read what the socket has, up to room bytes, into in: bytes read, 0 at
 * EOF, -1 on error (errno; EAGAIN: nothing yet). One contiguous
 * reservation and recv(): a socket call skips readv's iovec import and
 * the VFS layer. */
static ssize_t conn_read_into(struct evbuffer *in, int fd, size_t room)
{
	struct evbuffer_iovec v;
	ssize_t n;

	/* Like the output's start, the socket bufferevent freezes its input's end. */
	(void)evbuffer_unfreeze(in, 0);
	if (evbuffer_reserve_space(in, (ev_ssize_t)room, &v, 1) != 1) {
		(void)evbuffer_freeze(in, 0);
		errno = ENOMEM;
		return -1;
	}
	/* The reservation may be larger than asked: never read past room. */
	n = recv(fd, v.iov_base, v.iov_len < room ? v.iov_len : room, 0);
	if (n > 0) {
		v.iov_len = (size_t)n;
		(void)evbuffer_commit_space(in, &v, 1);
	}
	(void)evbuffer_freeze(in, 0);
	return n;
}

/* Write what out holds, up to CONN_MAX_SINGLE_WRITE: bytes written or -1
 * (errno). An answer is usually one contiguous piece: send() it, which
 * skips writev's iovec import and the VFS layer; else one writev. */
static int conn_write_out(struct evbuffer *out, int fd)
{
	struct evbuffer_iovec v;
	size_t len = evbuffer_get_length(out);
	ssize_t n;
	int rc;

	/* The socket bufferevent freezes its output's start so that only its
	 * own write callback drains it; it thaws it the same way. */
	(void)evbuffer_unfreeze(out, 1);
	if (len <= CONN_MAX_SINGLE_WRITE && evbuffer_peek(out, -1, NULL, &v, 1) == 1 &&
	    v.iov_len == len) {
		n = send(fd, v.iov_base, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0)
			(void)evbuffer_drain(out, (size_t)n);
		rc = n > 0 ? (int)n : -1;
	} else {
		rc = evbuffer_write_atmost(out, fd, CONN_MAX_SINGLE_WRITE);
	}
	(void)evbuffer_freeze(out, 1);
	return rc;
}

/*
 * Direct write (plaintext). libevent's socket bufferevent adds its write
 * event whenever output is queued, writes on the next loop turn, then
 * deletes the event: two epoll_ctl calls and a loop turn per answer. Here
 * the bufferevent's EV_WRITE stays disabled; queued output activates
 * c->flush (no system call), which runs once the current callbacks have
 * returned and writes all that was queued by then at once (a read's
 * answer goes out as soon as the read callback returns). Only what
 * the socket does not take (or an error) is handed to libevent's write
 * event, with its write deadline and error reporting, until the output is
 * empty again (on_conn_write).
 */
static void on_conn_flush(evutil_socket_t fd, short what, void *arg)
{
	conn *c = arg;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t left;
	int n;

	(void)fd;
	(void)what;
	if (c->write_armed || (c->state != CONN_OPEN && c->state != CONN_FLUSH) ||
	    evbuffer_get_length(out) == 0)
		return;
	n = conn_write_out(out, bufferevent_getfd(c->bev));
	left = evbuffer_get_length(out);
	if (left > 0) {
		c->write_armed = true;
		(void)bufferevent_enable(c->bev, EV_WRITE);
	}
	/* What libevent's write callback would report after this write. */
	if (c->state == CONN_FLUSH) {
		if (left == 0)
			conn_flushed(c);
	} else if (n > 0 && left <= c->o.write_low && c->o.ops->on_write) {
		c->o.ops->on_write(c->o.arg);
	}
}

/*
 * Direct read (plaintext). libevent's socket bufferevent asks the kernel
 * how much is readable (ioctl FIONREAD) before every read: one system call
 * per request for nothing, the read itself says. Same contract otherwise:
 * at most CONN_MAX_SINGLE_READ bytes per wake-up, never past read_max
 * buffered (reading stops there and resumes when the protocol drains the
 * input: on_in_bytes), EOF and errors reported as libevent reports them.
 */
static void on_conn_readable(evutil_socket_t fd, short what, void *arg)
{
	conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t have = evbuffer_get_length(in), room = CONN_MAX_SINGLE_READ;
	ssize_t n;

	(void)what;
	if (c->o.read_max) {
		if (have >= c->o.read_max) {
			c->rd_full = true;
			conn_rd_sync(c);
			return;
		}
		if (room > c->o.read_max - have)
			room = c->o.read_max - have;
	}
	n = conn_read_into(in, fd, room);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		/* libevent stops reading at EOF or an error, then tells. */
		c->rd_want = false;
		conn_rd_sync(c);
		on_conn_event(c->bev, (short)(BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF
		                                                        : BEV_EVENT_ERROR)), c);
		return;
	}
	if (c->o.read_max && evbuffer_get_length(in) >= c->o.read_max) {
		c->rd_full = true;
		conn_rd_sync(c);
	}
	on_conn_read(c->bev, c);
	/* An answer queued by this read goes out now, not after every other
	 * ready connection's read (c is still valid: frees are deferred). */
	if (event_pending(c->flush, EV_WRITE, NULL)) {
		(void)event_del(c->flush);
		on_conn_flush(-1, EV_WRITE, c);
	}
}

static void on_in_bytes(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	conn *c = arg;

	if (info->n_added)
		metrics_inc(c->o.m_in, info->n_added);
	/* The protocol consumed input: back under the bound, read again. */
	if (info->n_deleted && c->rd_full && evbuffer_get_length(b) < c->o.read_max) {
		c->rd_full = false;
		conn_rd_sync(c);
	}
}

static void on_out_bytes(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	conn *c = arg;

	(void)b;
	if (info->n_deleted)
		metrics_inc(c->o.m_out, info->n_deleted);
	if (info->n_added && c->direct && !c->write_armed)
		event_active(c->flush, EV_WRITE, 1);
	/* A memory budget counts what sits in output buffers. */
	c->out_queued += info->n_added;
	c->out_queued -= info->n_deleted < c->out_queued ? info->n_deleted : c->out_queued;
	if (c->o.queued) {
		*c->o.queued += info->n_added;
		*c->o.queued -= info->n_deleted < *c->o.queued ? info->n_deleted : *c->o.queued;
	}
}

/* ---- lifetime ------------------------------------------------------------ */

/* The records a pass made went out (or could not: the socket failed or
 * stayed full past the write deadline). */
static void on_wbio(void *arg, bool failed)
{
	conn *c = arg;

	if (failed) {
		if (c->state == CONN_OPEN || c->state == CONN_FLUSH)
			c->o.ops->on_event(c->o.arg, CONN_EV_ERROR);
		else if (c->state != CONN_CLOSED)
			conn_set_state(c, CONN_CLOSED);
		return;
	}
	if (c->state == CONN_FLUSH && conn_drained(c))
		conn_flushed(c);
}

static struct bufferevent *conn_tls_bev(struct event_base *base, int fd, struct tls_server *tls,
                                        uint64_t write_ms)
{
	struct bufferevent *bev;
	SSL *ssl = tls_server_ssl_new(tls);
	BIO *rbio, *wbio;

	if (!ssl)
		return NULL;
	/* Reads through a plain socket BIO; writes gather (wbio.h). */
	if (!(rbio = BIO_new_socket(fd, BIO_NOCLOSE)) || !(wbio = wbio_new(base, fd, write_ms))) {
		BIO_free(rbio);
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_bio(ssl, rbio, wbio);
	/* OpenSSL 3 reports a peer that closes without close_notify as a
	 * protocol error; libevent's dirty-shutdown switch only knows the old
	 * form. HTTP and OAP framing catch a truncated message by themselves,
	 * so such a close is an EOF here, exactly as on plaintext. */
	SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                     BEV_OPT_CLOSE_ON_FREE);
	/* On failure libevent 2.1 may or may not have freed ssl already (it
	 * depends on how far it got): leaking one SSL under memory exhaustion
	 * beats a double free. */
	if (!bev)
		return NULL;
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static void conn_setup_bev(conn *c)
{
	struct timeval wtv = conn_tv(c->o.write_ms);

	bufferevent_setcb(c->bev, on_conn_read, on_conn_write, on_conn_event, c);
	/* Bounded input: stop reading once this much is buffered unparsed. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, c->o.read_max);
	bufferevent_setwatermark(c->bev, EV_WRITE, c->o.write_low, 0);
	(void)bufferevent_set_timeouts(c->bev, NULL, &wtv);
	/* libevent writes at most 16 KiB per wake-up by default: a 64 KiB
	 * answer took five writev calls. One call may now take what the
	 * socket takes (the output is bounded by the caller's high water). */
	(void)bufferevent_set_max_single_write(c->bev, CONN_MAX_SINGLE_WRITE);
	(void)evbuffer_add_cb(bufferevent_get_input(c->bev), on_in_bytes, c);
	(void)evbuffer_add_cb(bufferevent_get_output(c->bev), on_out_bytes, c);
}

conn *conn_adopt(struct event_base *base, struct bufferevent *bev, bool tls,
                 const conn_opts *opts)
{
	conn *c = calloc(1, sizeof *c);

	if (c) {
		c->o = *opts;
		c->bev = bev;
		c->tls = tls;
		c->timer = evtimer_new(base, on_conn_timer, c);
		c->defer = event_new(base, -1, 0, on_conn_defer, c);
	}
	if (!c || !c->timer || !c->defer) {
		if (c && c->timer)
			event_free(c->timer);
		if (c && c->defer)
			event_free(c->defer);
		free(c);
		bufferevent_free(bev);
		return NULL;
	}
	conn_setup_bev(c);
	return c;
}

static void conn_set_peer(conn *c, int fd, const struct sockaddr *sa, socklen_t salen)
{
	int one = 1;

	if (sa && salen > 0) {
		c->peerlen = salen < (socklen_t)sizeof c->peer ? salen : (socklen_t)sizeof c->peer;
		memcpy(&c->peer, sa, c->peerlen);
	}
	if (c->peer.ss_family == AF_INET || c->peer.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

conn *conn_dial_new(struct event_base *base, int fd, const struct sockaddr *sa, socklen_t salen,
                    struct ssl_st *ssl, const conn_opts *opts)
{
	struct bufferevent *bev;
	conn *c;

	SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);   /* as conn_tls_bev */
	bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
	                                     BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		close(fd);   /* ssl: see conn_tls_bev on who frees it */
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	if (!(c = conn_adopt(base, bev, true, opts)))
		return NULL;
	conn_set_peer(c, fd, sa, salen);
	return c;
}

/* Plaintext sockets read and write directly (on_conn_readable,
 * on_conn_flush); the bufferevent keeps the buffers, and its write event
 * takes over only when the socket is full. */
static int conn_direct(conn *c, struct event_base *base)
{
	if (!(c->flush = event_new(base, -1, 0, on_conn_flush, c)) ||
	    !(c->rd = event_new(base, bufferevent_getfd(c->bev), EV_READ | EV_PERSIST,
	                        on_conn_readable, c)))
		return -1;
	c->direct = true;
	/* The bound is ours now (on_conn_readable), not the bufferevent's. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
	return bufferevent_disable(c->bev, EV_WRITE);
}

conn *conn_new(struct event_base *base, int fd, const struct sockaddr *sa, socklen_t salen,
               struct tls_server *tls, const conn_opts *opts)
{
	struct bufferevent *bev = tls ? conn_tls_bev(base, fd, tls, opts->write_ms)
	                              : bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	conn *c;

	if (!bev) {
		close(fd);
		return NULL;
	}
	if (!(c = conn_adopt(base, bev, tls != NULL, opts)))
		return NULL;
	if (tls) {
		c->wbio = SSL_get_wbio(bufferevent_openssl_get_ssl(bev));
		wbio_set_cb(c->wbio, on_wbio, c);
	}
	if (!tls && conn_direct(c, base) < 0) {
		conn_free(c);
		return NULL;
	}
	conn_set_peer(c, fd, sa, salen);
	return c;
}

bool conn_start(conn *c)
{
	if (c->tls) {
		conn_set_state(c, CONN_HANDSHAKE);
		return false;
	}
	conn_set_state(c, CONN_OPEN);
	return true;
}

void conn_free(conn *c)
{
	if (!c)
		return;
	event_free(c->timer);
	event_free(c->defer);
	if (c->flush)
		event_free(c->flush);
	if (c->rd)
		event_free(c->rd);   /* before the fd closes with the bufferevent */
	/* Freeing the buffers must not call back into a struct being freed. */
	(void)evbuffer_remove_cb(bufferevent_get_input(c->bev), on_in_bytes, c);
	(void)evbuffer_remove_cb(bufferevent_get_output(c->bev), on_out_bytes, c);
	if (c->o.queued)
		*c->o.queued -= c->out_queued < *c->o.queued ? c->out_queued : *c->o.queued;
	bufferevent_free(c->bev);
	free(c);
}

/* ---- what protocols call ------------------------------------------------- */

void conn_arm(conn *c, uint64_t ms)
{
	struct timeval tv = conn_tv(ms);

	if (c->state == CONN_OPEN)
		evtimer_add(c->timer, &tv);
}

void conn_disarm(conn *c)
{
	if (c->state == CONN_OPEN)
		evtimer_del(c->timer);
}

bool conn_is_armed(const conn *c)
{
	return evtimer_pending(c->timer, NULL) != 0;
}

void conn_read(conn *c, bool on)
{
	if (c->state != CONN_OPEN)
		return;
	conn_rd(c, on);
}

void conn_schedule(conn *c)
{
	event_active(c->defer, EV_TIMEOUT, 1);
}

void conn_flush(conn *c, bool linger, uint64_t deadline_ms)
{
	struct timeval tv = conn_tv(deadline_ms);

	if (c->state >= CONN_FLUSH)
		return;
	c->linger = linger;
	evtimer_del(c->timer);
	conn_set_state(c, CONN_FLUSH);
	if (c->state == CONN_FLUSH && deadline_ms)
		evtimer_add(c->timer, &tv);
}

void conn_close(conn *c, bool notify)
{
	if (c->state == CONN_CLOSED)
		return;
	if (notify)
		conn_close_notify(c);
	conn_set_state(c, CONN_CLOSED);
}

void conn_reset(conn *c)
{
	struct linger lg = { 1, 0 };

	/* close() with a zero linger sends RST: the client sees an error. */
	(void)setsockopt(bufferevent_getfd(c->bev), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	conn_set_state(c, CONN_CLOSED);
}

struct evbuffer *conn_input(const conn *c)
{
	return bufferevent_get_input(c->bev);
}

struct evbuffer *conn_output(const conn *c)
{
	return bufferevent_get_output(c->bev);
}

void conn_push(conn *c)
{
	struct evbuffer *out;

	/* Armed: the socket refused output already, libevent's write event
	 * owns the rest. Otherwise write now; c->flush stays scheduled and
	 * does the rest of its work (the remainder, errors, on_write) later,
	 * so nothing is called back from inside this call. */
	if (c->tls || c->state != CONN_OPEN || c->write_armed)
		return;
	out = conn_output(c);
	if (evbuffer_get_length(out))
		(void)conn_write_out(out, bufferevent_getfd(c->bev));
}

size_t conn_out_len(const conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev)) +
	       (c->wbio ? wbio_pending(c->wbio) : 0);
}

bool conn_can_write(const conn *c)
{
	return c->state == CONN_OPEN || c->state == CONN_FLUSH;
}

bool conn_is_open(const conn *c)
{
	return c->state == CONN_OPEN;
}

bool conn_peer_eof(const conn *c)
{
	return c->peer_eof;
}

bool conn_is_tls(const conn *c)
{
	return c->tls;
}

const struct sockaddr *conn_peer(const conn *c, socklen_t *len)
{
	if (len)
		*len = c->peerlen;
	return (const struct sockaddr *)&c->peer;
}

void *conn_peer_cert(const conn *c)
{
	SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(c->bev) : NULL;

	/* Only a chain the handshake verified counts (tls.c requires one when
	 * a client CA is configured). */
	if (!ssl || SSL_get_verify_result(ssl) != X509_V_OK)
		return NULL;
	return SSL_get0_peer_certificate(ssl);
}

bool conn_alpn_is(const conn *c, const char *proto)
{
	SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(c->bev) : NULL;
	const unsigned char *sel = NULL;
	unsigned int n = 0;

	if (!ssl)
		return false;
	SSL_get0_alpn_selected(ssl, &sel, &n);
	return sel && n == strlen(proto) && memcmp(sel, proto, n) == 0;
}

int conn_peer_node_id(const conn *c, uint8_t id[32])
{
	SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(c->bev) : NULL;

	return tls_peer_node_id(ssl, id);
}

struct bufferevent *conn_bev(const conn *c)
{
	return c->bev;
}
