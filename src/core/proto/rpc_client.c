/*
 * rpc_client.c — asynchronous client of an internal service socket (see
 * rpc_client.h and docs/internal.md).
 *
 * A call lives in exactly one queue: outq (encoded, not yet sent: the
 * socket was full), sentq (sent, awaiting its reply, in send order) or
 * failq (finished without a reply; its callback runs from a zero-timeout
 * event, so no callback ever runs inside the function that issued the call).
 * A reply is matched to its call in sentq by corr_id; anything else is a bug
 * of the service and fatal here (docs/internal.md).
 *
 * Breaker: CLOSED → (breaker_failures consecutive failures) → OPEN for
 * breaker_open_ms → the next call, or an internal ping sent when the window
 * ends so that an idle client recovers too, is the trial (HALF_OPEN; other
 * calls fail fast meanwhile) → CLOSED on any reply, OPEN again on failure.
 * Failures are counted per call: a refused connect, and each call lost with
 * its connection (connection lost, or a call timeout, which resets the
 * connection).
 *
 * Timeout: every call has the same call_timeout_ms, so calls reach their
 * deadlines in the order they were started, which is the order of sentq
 * followed by outq (a reply taken from the middle of sentq keeps it in
 * order). One timer per client is armed for the oldest pending call's
 * deadline and re-armed whenever that call leaves; when it fires, the
 * connection is reset (which fails every call on it, in order).
 *
 * Re-entrancy: a callback may issue calls, cancel calls or free the client.
 * Freeing inside a callback only marks the client; it is destroyed when the
 * callback returns (depth drops to 0).
 */
#include "core/proto/rpc_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/proto/oap.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/util.h"

#define RPC_PATH_MAX  sizeof(((struct sockaddr_un *)0)->sun_path)
#define RPC_MSG_MAX   128u   /* a log line naming the service */

typedef enum { CALL_OUTQ, CALL_SENTQ, CALL_FAILQ } call_where;
typedef enum { BRK_CLOSED, BRK_OPEN, BRK_HALF_OPEN } brk_state;

struct rpc_call {
	rpc_client   *c;
	TAILQ_ENTRY(rpc_call) link;
	call_where    where;
	uint64_t      corr;
	uint16_t      verb;
	rpc_cb        cb;           /* NULL: cancelled (or the internal probe) */
	void         *arg;
	uint8_t       ctx[RPC_CALL_CTX_MAX];
	bool          has_ctx;
	uint64_t      deadline_ms;  /* util_now_ms() clock; set when started */
	int           fd;           /* sent with the request (then closed), or -1 */
	rpc_fail      fail;
	size_t        frame_len;
	uint8_t       frame[];      /* the encoded request */
};
TAILQ_HEAD(rpc_queue, rpc_call);

typedef struct rpc_orphan {
	rpc_cb  cb;
	void   *arg;
	uint16_t verb;
	uint8_t ctx[RPC_CALL_CTX_MAX];
	bool    has_ctx;
} rpc_orphan;

struct rpc_client {
	struct event_base *base;
	rpc_client_opts    o;
	char               path[RPC_PATH_MAX];
	bool               path_ok;
	int                fd;
	unsigned           gen;        /* bumped on every connect and reset */
	struct event      *rev, *wev;
	struct rpc_queue   outq, sentq, failq;
	size_t             inflight;   /* outq + sentq */
	struct event      *fail_ev;
	struct event      *probe_ev;
	struct event      *timeout_ev; /* the oldest pending call's deadline */
	uint64_t           next_corr;
	brk_state          brk;
	void             (*on_state)(bool ready, void *arg);
	void              *on_state_arg;
	unsigned           failures;
	uint64_t           open_until;
	rpc_call          *trial;
	int                depth;      /* callbacks running */
	bool               dying;
	rpc_orphan         orphans[RPC_ORPHANS];
	size_t             norphans;
	uint8_t            rbuf[OAP_INTERNAL_MAX_FRAME];
};

static void rpc_destroy(rpc_client *c);
static rpc_call *rpc_submit(rpc_client *c, uint16_t verb, const uint8_t *payload, size_t len,
                            rpc_cb cb, void *arg, const void *ctx, size_t ctx_len, int fd);

/* "<name> <what>" for a log line. */
static const char *rpc_msg(const rpc_client *c, char buf[RPC_MSG_MAX], const char *what)
{
	snprintf(buf, RPC_MSG_MAX, "%s %s", c->o.name, what);
	return buf;
}

static void rpc_log(const rpc_client *c, log_level lvl, const char *what)
{
	char buf[RPC_MSG_MAX];

	log_kv(lvl, rpc_msg(c, buf, what), LOG_END);
}

/* ---- breaker -------------------------------------------------------------- */

unsigned rpc_client_gen(const rpc_client *c)
{
	return c->gen;
}

void rpc_client_on_state(rpc_client *c, void (*fn)(bool ready, void *arg), void *arg)
{
	c->on_state = fn;
	c->on_state_arg = arg;
}

static void rpc_note_success(rpc_client *c)
{
	bool was_open = c->brk != BRK_CLOSED;

	if (was_open)
		rpc_log(c, LOG_LEVEL_INFO, "reachable again; breaker closed");
	if (was_open && c->on_state)
		c->on_state(true, c->on_state_arg);
	c->brk = BRK_CLOSED;
	c->failures = 0;
	c->trial = NULL;
}

static void rpc_note_failure(rpc_client *c)
{
	c->failures++;
	if (c->brk != BRK_HALF_OPEN && c->failures < c->o.breaker_failures)
		return;
	bool was_closed = c->brk == BRK_CLOSED;
	if (was_closed)
		rpc_log(c, LOG_LEVEL_WARN, "unreachable; breaker open");
	c->brk = BRK_OPEN;
	if (was_closed && c->on_state)
		c->on_state(false, c->on_state_arg);
	c->trial = NULL;
	c->open_until = util_now_ms() + c->o.breaker_open_ms;
	struct timeval tv = { (time_t)(c->o.breaker_open_ms / 1000),
	                      (suseconds_t)((c->o.breaker_open_ms % 1000) * 1000) };
	evtimer_add(c->probe_ev, &tv);
}

/* May this call go out? It may become the half-open trial. */
static bool rpc_gate(rpc_client *c, rpc_call *call)
{
	if (c->brk == BRK_CLOSED)
		return true;
	if (c->brk == BRK_OPEN && util_now_ms() < c->open_until)
		return false;
	if (c->brk == BRK_HALF_OPEN && c->trial)
		return false;
	c->brk = BRK_HALF_OPEN;
	c->trial = call;
	return true;
}

/* The window ended with no caller: probe, so an idle client recovers. */
static void on_probe(evutil_socket_t fd, short what, void *arg)
{
	rpc_client *c = arg;

	(void)fd; (void)what;
	if (c->brk != BRK_OPEN)
		return;
	c->open_until = 0;   /* libevent's coarse clock may fire a little early */
	(void)rpc_submit(c, c->o.ping_verb, NULL, 0, NULL, NULL, NULL, 0, -1);
}

bool rpc_client_ready(const rpc_client *c)
{
	return c && c->brk == BRK_CLOSED;
}

/* ---- completing calls ----------------------------------------------------- */

static void rpc_call_free(rpc_call *call)
{
	if (call->c->trial == call)
		call->c->trial = NULL;
	if (call->fd >= 0)
		close(call->fd);
	free(call);
}

static void rpc_close_fds(const rpc_reply *r)
{
	for (size_t i = 0; i < r->nfds; i++)
		close(r->fds[i]);
}

/* Run a callback; false if the client is gone (the caller must not touch it). */
static bool rpc_run_cb(rpc_client *c, rpc_cb cb, void *arg, const rpc_reply *r)
{
	c->depth++;
	cb(r, arg);
	c->depth--;
	if (c->dying && c->depth == 0) {
		rpc_destroy(c);
		return false;
	}
	return !c->dying;
}

/* Run the callback (or drop the reply of a cancelled call) and free the
 * call. false if the client is gone. */
static bool rpc_deliver(rpc_client *c, rpc_call *call, rpc_reply *r)
{
	rpc_cb cb = call->cb;
	void *arg = call->arg;
	uint8_t ctx[RPC_CALL_CTX_MAX];

	memcpy(ctx, call->ctx, sizeof ctx);
	r->ctx = call->has_ctx ? ctx : NULL;
	r->verb = call->verb;
	rpc_call_free(call);
	if (!cb) {
		rpc_close_fds(r);
		r->ctx = NULL;
		return true;
	}
	bool alive = rpc_run_cb(c, cb, arg, r);
	r->ctx = NULL;   /* ctx lives in this frame: no reference outlives it */
	return alive;
}

static int rpc_fail_status(rpc_fail why)
{
	switch (why) {
	case RPC_FAIL_TIMEOUT: return 504;
	case RPC_FAIL_ENCODE:  return 500;
	default:               return 503;
	}
}

static void rpc_fail_later(rpc_client *c, rpc_call *call, rpc_fail why)
{
	call->where = CALL_FAILQ;
	call->fail = why;
	TAILQ_INSERT_TAIL(&c->failq, call, link);
	event_active(c->fail_ev, EV_TIMEOUT, 0);
}

static void on_fail(evutil_socket_t fd, short what, void *arg)
{
	rpc_client *c = arg;
	rpc_call *call;

	(void)fd; (void)what;
	while (c->norphans > 0) {
		rpc_orphan *o = &c->orphans[--c->norphans];
		rpc_reply r = { .status = 503, .fail = RPC_FAIL_NOMEM, .verb = o->verb,
		                .ctx = o->has_ctx ? o->ctx : NULL };
		if (!rpc_run_cb(c, o->cb, o->arg, &r))
			return;
	}
	while ((call = TAILQ_FIRST(&c->failq)) != NULL) {
		rpc_reply r = { .status = rpc_fail_status(call->fail), .fail = call->fail };
		TAILQ_REMOVE(&c->failq, call, link);
		UTIL_ANALYZER_ASSUME(TAILQ_FIRST(&c->failq) != call);   /* TAILQ_REMOVE did; the analyzer misses it */
		if (!rpc_deliver(c, call, &r))
			return;
	}
}

/* No call struct could be allocated: the callback is still owed. */
static void rpc_fail_orphan(rpc_client *c, uint16_t verb, rpc_cb cb, void *arg,
                            const void *ctx, size_t ctx_len)
{
	if (!cb)
		return;
	if (c->norphans == RPC_ORPHANS) {
		char buf[RPC_MSG_MAX];
		(void)BUG(rpc_msg(c, buf, "client callback lost: out of memory"));
		return;
	}
	rpc_orphan *o = &c->orphans[c->norphans++];
	*o = (rpc_orphan){ .cb = cb, .arg = arg, .verb = verb, .has_ctx = ctx != NULL };
	if (ctx)
		memcpy(o->ctx, ctx, ctx_len);
	event_active(c->fail_ev, EV_TIMEOUT, 0);
}

/* ---- deadline ------------------------------------------------------------- */

/* Arm the timer for the oldest pending call, or stop it when none is.
 * Called whenever the oldest may have changed. */
static void rpc_timer_arm(rpc_client *c)
{
	rpc_call *oldest = TAILQ_FIRST(&c->sentq);
	uint64_t now = util_now_ms(), left;

	if (!oldest)
		oldest = TAILQ_FIRST(&c->outq);
	if (!oldest) {
		evtimer_del(c->timeout_ev);
		return;
	}
	left = oldest->deadline_ms > now ? oldest->deadline_ms - now : 0;
	struct timeval tv = { (time_t)(left / 1000), (suseconds_t)((left % 1000) * 1000) };
	if (evtimer_add(c->timeout_ev, &tv) != 0)
		(void)BUG("rpc client cannot arm its call timer");
}

/* ---- connection ----------------------------------------------------------- */

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static size_t rpc_conn_reset(rpc_client *c, rpc_fail why);

static int rpc_connect(rpc_client *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (c->fd >= 0)
		return 0;
	if (!c->path_ok)
		return -1;
	memcpy(sa.sun_path, c->path, sizeof sa.sun_path);
	c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	c->rev = event_new(c->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
	c->wev = event_new(c->base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
	if (!c->rev || !c->wev || event_add(c->rev, NULL) != 0) {
		(void)rpc_conn_reset(c, RPC_FAIL_UNREACHABLE);
		return -1;
	}
	c->gen++;
	return 0;
}

/* Close the connection; every call on it fails (asynchronously). Returns
 * how many calls failed. */
static size_t rpc_conn_reset(rpc_client *c, rpc_fail why)
{
	struct rpc_queue *qs[2] = { &c->sentq, &c->outq };   /* keep request order */
	rpc_call *call;
	size_t n = 0;

	if (c->rev) event_free(c->rev);
	if (c->wev) event_free(c->wev);
	c->rev = c->wev = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->gen++;
	for (int i = 0; i < 2; i++) {
		while ((call = TAILQ_FIRST(qs[i])) != NULL) {
			TAILQ_REMOVE(qs[i], call, link);
			c->inflight--;
			rpc_fail_later(c, call, why);
			n++;
		}
	}
	evtimer_del(c->timeout_ev);
	return n;
}

/* The connection failed: each call it fails is one failure for the breaker
 * (three requests stuck behind a hung server open it at once), and a lost
 * idle connection is one. */
static void rpc_conn_fail(rpc_client *c, rpc_fail why)
{
	size_t n = rpc_conn_reset(c, why);

	do
		rpc_note_failure(c);
	while (n-- > 1);
}

/* Send what is queued. -1 on a hard error (the caller resets). */
static int rpc_flush(rpc_client *c)
{
	rpc_call *call;

	while ((call = TAILQ_FIRST(&c->outq)) != NULL) {
		if (ipc_send(c->fd, call->frame, call->frame_len, call->fd >= 0 ? &call->fd : NULL,
		             call->fd >= 0 ? 1u : 0u) != 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -1;
			return event_add(c->wev, NULL);
		}
		if (call->fd >= 0) {   /* the peer has its own copy now */
			close(call->fd);
			call->fd = -1;
		}
		TAILQ_REMOVE(&c->outq, call, link);
		call->where = CALL_SENTQ;
		TAILQ_INSERT_TAIL(&c->sentq, call, link);
	}
	event_del(c->wev);
	return 0;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	rpc_client *c = arg;

	(void)fd; (void)what;
	if (rpc_flush(c) != 0)
		rpc_conn_fail(c, RPC_FAIL_LOST);
}

/* The oldest pending call reached its deadline (libevent's clock may run a
 * hair ahead of ours: the timer was armed for that call, so it has). */
static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	rpc_client *c = arg;

	(void)fd; (void)what;
	rpc_log(c, LOG_LEVEL_WARN, "call timed out; reconnecting");
	rpc_conn_fail(c, RPC_FAIL_TIMEOUT);
}

/* ---- replies -------------------------------------------------------------- */

/* The reply does not decode: a bug of the service (the socket is ours, 0600
 * in a 0700 directory): exit and let the supervisor restart us rather than
 * guess. */
__attribute__((noreturn))
static void rpc_fatal(const rpc_client *c, const rpc_call *call, const char *why)
{
	char buf[RPC_MSG_MAX];

	log_fatalx(rpc_msg(c, buf, "reply does not decode; exiting"), "verb",
	           call ? c->o.verb_name(call->verb) : "none", "reason", why, LOG_END);
}

static rpc_call *rpc_find_sent(rpc_client *c, uint64_t corr)
{
	rpc_call *call;

	TAILQ_FOREACH(call, &c->sentq, link)
		if (call->corr == corr)
			return call;
	return NULL;
}

/* One datagram from the server: exactly the reply to a call in sentq, or
 * fatal. *gone: the client was freed by the callback. */
static void rpc_on_reply(rpc_client *c, size_t n, int *fds, size_t nfds, bool *gone)
{
	rpc_call *call = NULL;
	oap_frame f;
	size_t used;

	if (oap_decode(c->rbuf, n, OAP_INTERNAL_MAX_FRAME, &f, &used) != OAP_OK || used != n ||
	    f.flags != OAP_F_RESP || f.app_proto_id != c->o.app_proto || f.cap_size != 0)
		rpc_fatal(c, TAILQ_FIRST(&c->sentq), "not a response frame");
	if (!(call = rpc_find_sent(c, f.corr_id)))
		rpc_fatal(c, TAILQ_FIRST(&c->sentq), "corr_id is not a pending call's");
	if (c->o.check(call->verb, f.code, f.payload, f.payload_len, nfds) != 0)
		rpc_fatal(c, call, "malformed payload or wrong file descriptors");
	TAILQ_REMOVE(&c->sentq, call, link);
	c->inflight--;
	rpc_timer_arm(c);
	rpc_note_success(c);
	rpc_reply r = { .status = f.code, .payload = f.payload, .len = f.payload_len,
	                .fds = fds, .nfds = nfds };
	*gone = !rpc_deliver(c, call, &r);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	rpc_client *c = arg;
	unsigned gen = c->gen;

	(void)what;
	while (c->gen == gen) {
		int fds[IPC_MAX_FDS];
		size_t nfds = 0;
		bool gone = false;
		ssize_t n = ipc_recv((int)fd, c->rbuf, sizeof c->rbuf, fds, &nfds);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			rpc_conn_fail(c, RPC_FAIL_LOST);
			return;
		}
		rpc_on_reply(c, (size_t)n, fds, nfds, &gone);
		if (gone)
			return;
	}
}

/* ---- issuing calls -------------------------------------------------------- */

static int rpc_encode(rpc_call *call, const uint8_t *payload, size_t len, size_t cap)
{
	oap_frame f = { .flags = OAP_F_REQ, .code = call->verb, .app_proto_id = call->c->o.app_proto,
	                .corr_id = call->corr, .payload = payload, .payload_len = len };
	ssize_t n = oap_encode(&f, call->frame, cap);

	if (n < 0)
		return BUG("rpc request does not encode");
	call->frame_len = (size_t)n;
	return 0;
}

/* Queue, connect, send: any failure goes to failq (never a callback here). */
static void rpc_start(rpc_client *c, rpc_call *call)
{
	if (!rpc_gate(c, call)) {
		rpc_fail_later(c, call, RPC_FAIL_BREAKER);
		return;
	}
	if (c->inflight >= c->o.max_pending) {
		rpc_fail_later(c, call, RPC_FAIL_BUSY);
		return;
	}
	if (rpc_connect(c) != 0) {
		rpc_note_failure(c);
		rpc_fail_later(c, call, RPC_FAIL_UNREACHABLE);
		return;
	}
	call->deadline_ms = util_now_ms() + c->o.call_timeout_ms;
	call->where = CALL_OUTQ;
	TAILQ_INSERT_TAIL(&c->outq, call, link);
	c->inflight++;
	if (c->inflight == 1)   /* else an older call's deadline comes first */
		rpc_timer_arm(c);
	if (rpc_flush(c) != 0)
		rpc_conn_fail(c, RPC_FAIL_LOST);
}

static rpc_call *rpc_submit(rpc_client *c, uint16_t verb, const uint8_t *payload, size_t len,
                            rpc_cb cb, void *arg, const void *ctx, size_t ctx_len, int fd)
{
	size_t cap = OAP_HDR_LEN + c->o.max_request;
	rpc_call *call;

	if (ctx_len > RPC_CALL_CTX_MAX)
		ctx = NULL;   /* a bug of the typed layer: rpc_encode refuses the call below */
	call = calloc(1, sizeof *call + cap);
	if (!call) {
		if (fd >= 0)
			close(fd);
		rpc_fail_orphan(c, verb, cb, arg, ctx, ctx_len);
		return NULL;
	}
	*call = (rpc_call){ .c = c, .corr = c->next_corr++, .verb = verb, .cb = cb, .arg = arg,
	                    .has_ctx = ctx != NULL, .fd = fd };
	if (ctx)
		memcpy(call->ctx, ctx, ctx_len);
	if (len > c->o.max_request || ctx_len > RPC_CALL_CTX_MAX ||
	    rpc_encode(call, payload, len, cap) != 0)
		rpc_fail_later(c, call, RPC_FAIL_ENCODE);
	else
		rpc_start(c, call);
	return call;
}

rpc_call *rpc_call_start_ctx(rpc_client *c, uint16_t verb, const uint8_t *payload, size_t len,
                             rpc_cb cb, void *arg, const void *ctx, size_t ctx_len)
{
	if (!c || c->dying)
		return NULL;
	return rpc_submit(c, verb, payload, len, cb, arg, ctx, ctx_len, -1);
}

rpc_call *rpc_call_start_fd(rpc_client *c, uint16_t verb, const uint8_t *payload, size_t len,
                            int fd, rpc_cb cb, void *arg, const void *ctx, size_t ctx_len)
{
	if (!c || c->dying) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	return rpc_submit(c, verb, payload, len, cb, arg, ctx, ctx_len, fd);
}

rpc_call *rpc_call_start(rpc_client *c, uint16_t verb, const uint8_t *payload, size_t len,
                         rpc_cb cb, void *arg)
{
	return rpc_call_start_ctx(c, verb, payload, len, cb, arg, NULL, 0);
}

/* An unsent call is dropped now; a sent one stays in sentq (its reply must
 * still be consumed and checked) with no callback. */
void rpc_call_cancel(rpc_call *call)
{
	if (!call)
		return;
	call->cb = NULL;
	if (call->where == CALL_OUTQ) {
		rpc_client *c = call->c;
		TAILQ_REMOVE(&c->outq, call, link);
		c->inflight--;
		rpc_call_free(call);
		rpc_timer_arm(c);
	}
}

/* ---- life ----------------------------------------------------------------- */

rpc_client *rpc_client_new(struct event_base *base, const char *socket_path,
                           const rpc_client_opts *o)
{
	rpc_client *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->base = base;
	c->o = *o;
	c->fd = -1;
	c->next_corr = 1;
	TAILQ_INIT(&c->outq);
	TAILQ_INIT(&c->sentq);
	TAILQ_INIT(&c->failq);
	c->path_ok = strlen(socket_path) < sizeof c->path;
	if (c->path_ok) {
		memcpy(c->path, socket_path, strlen(socket_path) + 1);
	} else {
		char buf[RPC_MSG_MAX];
		log_kv(LOG_LEVEL_ERROR, rpc_msg(c, buf, "socket path too long"), "path", socket_path,
		       LOG_END);
	}
	c->fail_ev = event_new(base, -1, 0, on_fail, c);
	c->probe_ev = evtimer_new(base, on_probe, c);
	c->timeout_ev = evtimer_new(base, on_timeout, c);
	if (!c->fail_ev || !c->probe_ev || !c->timeout_ev) {
		rpc_destroy(c);
		return NULL;
	}
	return c;
}

static void rpc_destroy(rpc_client *c)
{
	struct rpc_queue *qs[3] = { &c->outq, &c->sentq, &c->failq };
	rpc_call *call;

	if (c->rev) event_free(c->rev);
	if (c->wev) event_free(c->wev);
	if (c->fd >= 0)
		close(c->fd);
	for (int i = 0; i < 3; i++) {
		while ((call = TAILQ_FIRST(qs[i])) != NULL) {
			TAILQ_REMOVE(qs[i], call, link);
			rpc_call_free(call);
		}
	}
	if (c->fail_ev) event_free(c->fail_ev);
	if (c->probe_ev) event_free(c->probe_ev);
	if (c->timeout_ev) event_free(c->timeout_ev);
	free(c);
}

void rpc_client_free(rpc_client *c)
{
	if (!c)
		return;
	if (c->depth > 0) {          /* inside a callback: finish when it returns */
		c->dying = true;
		return;
	}
	rpc_destroy(c);
}
