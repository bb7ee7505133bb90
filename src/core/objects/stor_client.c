/*
 * stor_client.c — asynchronous client of the storage service (see
 * stor_client.h and docs/internal.md).
 *
 * A call lives in exactly one queue: outq (encoded, not yet sent: the
 * socket was full), sentq (sent, awaiting its response, in send order) or
 * failq (finished without a response; its callback runs from a zero-timeout
 * event, so no callback ever runs inside the function that issued the call).
 * The server answers in request order, so a response must match the head of
 * sentq. Payloads are the typed messages of stor_msg.h; a response that is
 * not exactly one (bad frame, wrong corr_id, undecodable payload, wrong fd
 * count) is a bug of the storage service and fatal here (docs/internal.md).
 *
 * Breaker: CLOSED → (STOR_BREAKER_FAILURES consecutive failures) → OPEN for
 * STOR_BREAKER_OPEN_MS → the next call, or an internal PING sent when the
 * window ends so that an idle client recovers too, is the trial
 * (HALF_OPEN; other calls fail fast meanwhile) → CLOSED on any response,
 * OPEN again on failure. Failures are counted per call: a refused connect,
 * and each call lost with its connection (connection lost, protocol
 * violation, or a call timeout, which resets the connection: responses are
 * in order, so everything behind a stuck call is stuck too).
 *
 * Timeout: every call has the same STOR_CALL_TIMEOUT_MS, so calls reach
 * their deadlines in the order they were started, which is the order of
 * sentq followed by outq. One timer per client is armed for the oldest
 * pending call's deadline and re-armed whenever that call leaves; when it
 * fires, the connection is reset (which fails every call on it, in order).
 *
 * Re-entrancy: a callback may issue calls, cancel calls or free the client.
 * Freeing inside a callback only marks the client; it is destroyed when the
 * callback returns (depth drops to 0).
 */
#include "core/objects/stor_client.h"
#include "core/objects/stor_client_test.h"

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

#define STOR_FRAME_MAX    (OAP_HDR_LEN + STOR_MSG_MAX)
#define STOR_ORPHANS      16u                       /* callbacks owed without a call struct */
#define STOR_PATH_MAX     sizeof(((struct sockaddr_un *)0)->sun_path)

typedef enum { CALL_OUTQ, CALL_SENTQ, CALL_FAILQ } call_where;
typedef enum { BRK_CLOSED, BRK_OPEN, BRK_HALF_OPEN } brk_state;

struct stor_call {
	stor_client  *c;
	TAILQ_ENTRY(stor_call) link;
	call_where    where;
	uint64_t      corr;
	uint16_t      verb;
	uint64_t      req_len;      /* PUT_COMMIT: echoed as result.len */
	stor_cb       cb;           /* NULL: cancelled (or the internal probe) */
	void         *arg;
	uint64_t      deadline_ms;  /* util_now_ms() clock; set when started */
	int           fail_status;
	const char   *fail_msg;     /* literal */
	size_t        frame_len;
	uint8_t       frame[STOR_FRAME_MAX];
};
TAILQ_HEAD(stor_queue, stor_call);

struct stor_client {
	struct event_base *base;
	char               path[STOR_PATH_MAX];
	bool               path_ok;
	int                fd;
	unsigned           gen;        /* bumped on every connect and reset */
	struct event      *rev, *wev;
	struct stor_queue  outq, sentq, failq;
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
	stor_call         *trial;
	int                depth;      /* callbacks running */
	bool               dying;
	struct { stor_cb cb; void *arg; } orphans[STOR_ORPHANS];
	size_t             norphans;
	uint8_t            rbuf[OAP_INTERNAL_MAX_FRAME];
};

static void stor_destroy(stor_client *c);
static size_t stor_conn_reset(stor_client *c, const char *why);
static void stor_conn_fail(stor_client *c, const char *why);
static stor_call *stor_submit(stor_client *c, const stor_req *q, uint64_t req_len,
                              stor_cb cb, void *arg);

/* ---- breaker -------------------------------------------------------------- */

void stor_client_on_state(stor_client *c, void (*fn)(bool ready, void *arg), void *arg)
{
	c->on_state = fn;
	c->on_state_arg = arg;
}

static void stor_note_success(stor_client *c)
{
	bool was_open = c->brk != BRK_CLOSED;

	if (was_open)
		log_kv(LOG_LEVEL_INFO, "storage reachable again; breaker closed", LOG_END);
	if (was_open && c->on_state)
		c->on_state(true, c->on_state_arg);
	c->brk = BRK_CLOSED;
	c->failures = 0;
	c->trial = NULL;
}

static void stor_note_failure(stor_client *c)
{
	c->failures++;
	if (c->brk != BRK_HALF_OPEN && c->failures < STOR_BREAKER_FAILURES)
		return;
	bool was_closed = c->brk == BRK_CLOSED;
	if (was_closed)
		log_kv(LOG_LEVEL_WARN, "storage unreachable; breaker open", LOG_END);
	c->brk = BRK_OPEN;
	if (was_closed && c->on_state)
		c->on_state(false, c->on_state_arg);
	c->trial = NULL;
	c->open_until = util_now_ms() + STOR_BREAKER_OPEN_MS;
	struct timeval tv = { STOR_BREAKER_OPEN_MS / 1000, (STOR_BREAKER_OPEN_MS % 1000) * 1000 };
	evtimer_add(c->probe_ev, &tv);
}

/* May this call go out? It may become the half-open trial. */
static bool stor_gate(stor_client *c, stor_call *call)
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
	stor_client *c = arg;

	(void)fd; (void)what;
	if (c->brk != BRK_OPEN)
		return;
	c->open_until = 0;   /* libevent's coarse clock may fire a little early */
	(void)stor_submit(c, &(stor_req){ .verb = STOR_PING }, 0, NULL, NULL);
}

bool stor_client_ready(const stor_client *c)
{
	return c && c->brk == BRK_CLOSED;
}

/* ---- completing calls ----------------------------------------------------- */

static void stor_call_free(stor_call *call)
{
	if (call->c->trial == call)
		call->c->trial = NULL;
	free(call);
}

static void stor_close_fds(stor_result *r)
{
	for (int i = 0; i < 2; i++) {
		if (r->fds[i] >= 0)
			close(r->fds[i]);
		r->fds[i] = -1;
	}
}

/* Run the callback (or drop the result of a cancelled call) and free the
 * call. false if the client is gone: the caller must not touch it. */
static bool stor_deliver(stor_client *c, stor_call *call, stor_result *r)
{
	stor_cb cb = call->cb;
	void *arg = call->arg;

	stor_call_free(call);
	if (!cb) {
		stor_close_fds(r);
		return true;
	}
	c->depth++;
	cb(r, arg);
	c->depth--;
	if (c->dying && c->depth == 0) {
		stor_destroy(c);
		return false;
	}
	return !c->dying;
}

static void stor_fail_later(stor_client *c, stor_call *call, int status, const char *msg)
{
	call->where = CALL_FAILQ;
	call->fail_status = status;
	call->fail_msg = msg;
	TAILQ_INSERT_TAIL(&c->failq, call, link);
	event_active(c->fail_ev, EV_TIMEOUT, 0);
}

static void on_fail(evutil_socket_t fd, short what, void *arg)
{
	stor_client *c = arg;
	stor_call *call;

	(void)fd; (void)what;
	while (c->norphans > 0) {
		stor_result r = { .status = 503, .fds = { -1, -1 }, .message = "out of memory" };
		c->norphans--;
		c->depth++;
		c->orphans[c->norphans].cb(&r, c->orphans[c->norphans].arg);
		c->depth--;
		if (c->dying && c->depth == 0) {
			stor_destroy(c);
			return;
		}
	}
	while ((call = TAILQ_FIRST(&c->failq)) != NULL) {
		stor_result r = { .status = call->fail_status, .fds = { -1, -1 },
		                  .message = call->fail_msg };
		TAILQ_REMOVE(&c->failq, call, link);
		UTIL_ANALYZER_ASSUME(TAILQ_FIRST(&c->failq) != call);   /* TAILQ_REMOVE did; the analyzer misses it */
		if (!stor_deliver(c, call, &r))
			return;
	}
}

/* No call struct could be allocated: the callback is still owed. */
static void stor_fail_orphan(stor_client *c, stor_cb cb, void *arg)
{
	if (!cb)
		return;
	if (c->norphans == STOR_ORPHANS) {
		(void)BUG("storage client callback lost: out of memory");
		return;
	}
	c->orphans[c->norphans].cb = cb;
	c->orphans[c->norphans].arg = arg;
	c->norphans++;
	event_active(c->fail_ev, EV_TIMEOUT, 0);
}

/* ---- deadline ------------------------------------------------------------- */

/* Arm the timer for the oldest pending call, or stop it when none is.
 * Called whenever the oldest may have changed. */
static void stor_timer_arm(stor_client *c)
{
	stor_call *oldest = TAILQ_FIRST(&c->sentq);
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
		(void)BUG("storage client cannot arm its call timer");
}

/* ---- connection ----------------------------------------------------------- */

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

static int stor_connect(stor_client *c)
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
		(void)stor_conn_reset(c, "storage connection failed");
		return -1;
	}
	c->gen++;
	return 0;
}

/* Close the connection; every call on it fails with 503 (asynchronously).
 * Returns how many calls failed. */
static size_t stor_conn_reset(stor_client *c, const char *why)
{
	struct stor_queue *qs[2] = { &c->sentq, &c->outq };   /* keep request order */
	stor_call *call;
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
			stor_fail_later(c, call, 503, why);
			n++;
		}
	}
	evtimer_del(c->timeout_ev);
	return n;
}

/* The connection failed: each call it fails is one failure for the breaker
 * (three requests stuck behind a hung server open it at once), and a lost
 * idle connection is one. */
static void stor_conn_fail(stor_client *c, const char *why)
{
	size_t n = stor_conn_reset(c, why);

	do
		stor_note_failure(c);
	while (n-- > 1);
}

/* Send what is queued. -1 on a hard error (the caller resets). */
static int stor_flush(stor_client *c)
{
	stor_call *call;

	while ((call = TAILQ_FIRST(&c->outq)) != NULL) {
		if (ipc_send(c->fd, call->frame, call->frame_len, NULL, 0) != 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -1;
			return event_add(c->wev, NULL);
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
	stor_client *c = arg;

	(void)fd; (void)what;
	if (stor_flush(c) != 0) {
		stor_conn_fail(c, "storage connection lost");
	}
}

/* The oldest pending call reached its deadline (libevent's clock may run a
 * hair ahead of ours: the timer was armed for that call, so it has). */
static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	stor_client *c = arg;

	(void)fd; (void)what;
	log_kv(LOG_LEVEL_WARN, "storage call timed out; reconnecting", LOG_END);
	stor_conn_fail(c, "storage call timed out");
}

/* ---- responses ------------------------------------------------------------ */

/* The response does not decode: a bug of the storage service (the socket
 * is ours, 0600 in a 0700 directory): exit and let the supervisor restart
 * us rather than guess. */
__attribute__((noreturn))
static void stor_fatal(const stor_call *call, const char *why)
{
	log_fatalx("storage reply does not decode; exiting", "verb",
	           call ? stor_msg_verb_name(call->verb) : "none", "reason", why, LOG_END);
}

/* The caller's view of a decoded reply; fds as stor_msg_rep_nfds says. */
static void stor_result_of(const stor_call *call, const stor_rep *rep, const int *fds,
                           stor_result *r)
{
	*r = (stor_result){ .status = rep->status, .fds = { -1, -1 }, .message = "" };
	for (size_t i = 0; i < stor_msg_rep_nfds(rep); i++)
		r->fds[i] = fds[i];
	if (rep->status != 200) {
		r->message = rep->u.err.message;
		return;
	}
	switch (call->verb) {
	case STOR_STAT:
		r->len = rep->u.stat.len;
		break;
	case STOR_OPEN:
		r->len = rep->u.open.len;
		break;
	case STOR_PUT_BEGIN:
		r->handle = rep->u.put_begin.handle;
		break;
	case STOR_PUT_COMMIT:
		memcpy(r->id, rep->u.put_commit.id, sizeof r->id);
		r->created = rep->u.put_commit.created;
		r->len = call->req_len;
		break;
	default:
		break;
	}
}

/* One datagram from the server: exactly the reply to the head of sentq, or
 * fatal. *gone: the client was freed by the callback. */
static void stor_on_response(stor_client *c, size_t n, int *fds, size_t nfds, bool *gone)
{
	stor_call *call = TAILQ_FIRST(&c->sentq);
	oap_frame f;
	size_t used;
	stor_rep rep;
	stor_result r;

	if (oap_decode(c->rbuf, n, OAP_INTERNAL_MAX_FRAME, &f, &used) != OAP_OK || used != n ||
	    f.flags != OAP_F_RESP || f.app_proto_id != STOR_APP_PROTO || f.cap_size != 0)
		stor_fatal(call, "not a storage response frame");
	if (!call || f.corr_id != call->corr)
		stor_fatal(call, "corr_id is not the oldest call's");
	if (stor_msg_rep_decode(call->verb, f.code, f.payload, f.payload_len, &rep) != 0)
		stor_fatal(call, "malformed payload");
	if (nfds != stor_msg_rep_nfds(&rep))
		stor_fatal(call, "wrong number of file descriptors");
	TAILQ_REMOVE(&c->sentq, call, link);
	c->inflight--;
	stor_timer_arm(c);
	stor_note_success(c);
	stor_result_of(call, &rep, fds, &r);
	*gone = !stor_deliver(c, call, &r);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	stor_client *c = arg;
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
			stor_conn_fail(c, "storage connection lost");
			return;
		}
		stor_on_response(c, (size_t)n, fds, nfds, &gone);
		if (gone)
			return;
	}
}

/* ---- issuing calls -------------------------------------------------------- */

static int stor_encode(stor_call *call, const stor_req *q)
{
	uint8_t payload[STOR_MSG_MAX];
	ssize_t plen = stor_msg_req_encode(q, payload, sizeof payload);
	oap_frame f = { .flags = OAP_F_REQ, .code = call->verb, .app_proto_id = STOR_APP_PROTO,
	                .corr_id = call->corr, .payload = payload,
	                .payload_len = plen > 0 ? (size_t)plen : 0 };
	ssize_t n = plen < 0 ? -1 : oap_encode(&f, call->frame, sizeof call->frame);

	if (n < 0)
		return BUG("storage request does not encode");
	call->frame_len = (size_t)n;
	return 0;
}

/* Queue, connect, send: any failure goes to failq (never a callback here). */
static void stor_start(stor_client *c, stor_call *call)
{
	if (!stor_gate(c, call)) {
		stor_fail_later(c, call, 503, "storage unavailable (breaker open)");
		return;
	}
	if (c->inflight >= STOR_MAX_PENDING) {
		stor_fail_later(c, call, 503, "too many storage calls in flight");
		return;
	}
	if (stor_connect(c) != 0) {
		stor_note_failure(c);
		stor_fail_later(c, call, 503, "storage unreachable");
		return;
	}
	call->deadline_ms = util_now_ms() + STOR_CALL_TIMEOUT_MS;
	call->where = CALL_OUTQ;
	TAILQ_INSERT_TAIL(&c->outq, call, link);
	c->inflight++;
	if (c->inflight == 1)   /* else an older call's deadline comes first */
		stor_timer_arm(c);
	if (stor_flush(c) != 0) {
		stor_conn_fail(c, "storage connection lost");
	}
}

static stor_call *stor_submit(stor_client *c, const stor_req *q, uint64_t req_len,
                              stor_cb cb, void *arg)
{
	stor_call *call;

	if (!c || c->dying)
		return NULL;
	call = calloc(1, sizeof *call);
	if (!call) {
		stor_fail_orphan(c, cb, arg);
		return NULL;
	}
	*call = (stor_call){ .c = c, .corr = c->next_corr++, .verb = q->verb, .req_len = req_len,
	                     .cb = cb, .arg = arg };
	if (stor_encode(call, q) != 0)
		stor_fail_later(c, call, 500, "storage request does not encode");
	else
		stor_start(c, call);
	return call;
}

static stor_call *stor_submit_id(stor_client *c, uint16_t verb, const uint8_t id[32],
                                 stor_cb cb, void *arg)
{
	stor_req q = { .verb = verb };

	memcpy(q.u.stat.id, id, STOR_ID_LEN);   /* STAT, OPEN, QUARANTINE: one layout */
	return stor_submit(c, &q, 0, cb, arg);
}

stor_call *stor_stat(stor_client *c, const uint8_t id[32], stor_cb cb, void *arg)
{
	return stor_submit_id(c, STOR_STAT, id, cb, arg);
}

stor_call *stor_open(stor_client *c, const uint8_t id[32], stor_cb cb, void *arg)
{
	return stor_submit_id(c, STOR_OPEN, id, cb, arg);
}

stor_call *stor_quarantine(stor_client *c, const uint8_t id[32], stor_cb cb, void *arg)
{
	return stor_submit_id(c, STOR_QUARANTINE, id, cb, arg);
}

stor_call *stor_ping(stor_client *c, stor_cb cb, void *arg)
{
	return stor_submit(c, &(stor_req){ .verb = STOR_PING }, 0, cb, arg);
}

stor_call *stor_put_begin(stor_client *c, uint64_t max_len, const char *tenant, const char *peer,
                          stor_cb cb, void *arg)
{
	stor_req q = { .verb = STOR_PUT_BEGIN, .u.put_begin.max_len = max_len };

	snprintf(q.u.put_begin.tenant, sizeof q.u.put_begin.tenant, "%s", tenant ? tenant : "");
	snprintf(q.u.put_begin.peer, sizeof q.u.put_begin.peer, "%s", peer ? peer : "");
	return stor_submit(c, &q, 0, cb, arg);
}

stor_call *stor_put_commit(stor_client *c, uint64_t handle, uint64_t len, const uint8_t *expect,
                           stor_cb cb, void *arg)
{
	stor_req q = { .verb = STOR_PUT_COMMIT,
	               .u.put_commit = { .handle = handle, .len = len, .has_expect = expect != NULL } };

	if (expect)
		memcpy(q.u.put_commit.expect, expect, STOR_ID_LEN);
	return stor_submit(c, &q, len, cb, arg);
}

stor_call *stor_put_abort(stor_client *c, uint64_t handle, stor_cb cb, void *arg)
{
	stor_req q = { .verb = STOR_PUT_ABORT, .u.put_abort.handle = handle };

	return stor_submit(c, &q, 0, cb, arg);
}

/* An unsent call is dropped now; a sent one stays in sentq (its response
 * must still be consumed in order) with no callback. */
void stor_call_cancel(stor_call *call)
{
	if (!call)
		return;
	call->cb = NULL;
	if (call->where == CALL_OUTQ) {
		stor_client *c = call->c;
		TAILQ_REMOVE(&c->outq, call, link);
		c->inflight--;
		stor_call_free(call);
		stor_timer_arm(c);
	}
}

/* ---- life ----------------------------------------------------------------- */

stor_client *stor_client_new(struct event_base *base, const char *socket_path)
{
	stor_client *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->base = base;
	c->fd = -1;
	c->next_corr = 1;
	TAILQ_INIT(&c->outq);
	TAILQ_INIT(&c->sentq);
	TAILQ_INIT(&c->failq);
	c->path_ok = strlen(socket_path) < sizeof c->path;
	if (c->path_ok)
		memcpy(c->path, socket_path, strlen(socket_path) + 1);
	else
		log_kv(LOG_LEVEL_ERROR, "storage socket path too long", "path", socket_path, LOG_END);
	c->fail_ev = event_new(base, -1, 0, on_fail, c);
	c->probe_ev = evtimer_new(base, on_probe, c);
	c->timeout_ev = evtimer_new(base, on_timeout, c);
	if (!c->fail_ev || !c->probe_ev || !c->timeout_ev) {
		stor_destroy(c);
		return NULL;
	}
	return c;
}

static void stor_destroy(stor_client *c)
{
	struct stor_queue *qs[3] = { &c->outq, &c->sentq, &c->failq };
	stor_call *call;

	if (c->rev) event_free(c->rev);
	if (c->wev) event_free(c->wev);
	if (c->fd >= 0)
		close(c->fd);
	for (int i = 0; i < 3; i++) {
		while ((call = TAILQ_FIRST(qs[i])) != NULL) {
			TAILQ_REMOVE(qs[i], call, link);
			stor_call_free(call);
		}
	}
	if (c->fail_ev) event_free(c->fail_ev);
	if (c->probe_ev) event_free(c->probe_ev);
	if (c->timeout_ev) event_free(c->timeout_ev);
	free(c);
}

void stor_client_free(stor_client *c)
{
	if (!c)
		return;
	if (c->depth > 0) {          /* inside a callback: finish when it returns */
		c->dying = true;
		return;
	}
	stor_destroy(c);
}
