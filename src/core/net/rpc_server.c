/*
 * rpc_server.c — the serving half of an internal service socket (see
 * rpc_server.h).
 */
#include "core/net/rpc_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/metrics/reject.h"
#include "core/net/conn.h"
#include "core/proto/oap.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/util.h"

typedef struct rpc_out {
	STAILQ_ENTRY(rpc_out) link;
	int     fds[IPC_MAX_FDS];
	size_t  nfds;
	size_t  len;
	uint8_t buf[];
} rpc_out;

typedef struct rpc_conn rpc_conn;

struct rpc_req {
	rpc_conn  *c;                 /* NULL: the connection is gone */
	uint64_t   corr;
	uint16_t   verb;
	int        fd;                /* the request's fd (o->request_fds), or -1 */
	LIST_ENTRY(rpc_req) link;
};

struct rpc_conn {
	rpc_server   *srv;
	int           fd;
	struct event *ev;
	short         armed;
	unsigned      nreq, nout;
	LIST_HEAD(, rpc_req) reqs;
	STAILQ_HEAD(, rpc_out) out;
	LIST_ENTRY(rpc_conn) link;
};

struct rpc_server {
	struct event_base *base;
	rpc_server_opts    o;
	conn_listener     *lst;
	LIST_HEAD(, rpc_conn) conns;
	size_t             nconns;
	bool               draining;
	uint8_t            rbuf[OAP_INTERNAL_MAX_FRAME];
	uint8_t            wbuf[OAP_INTERNAL_MAX_FRAME];
};

static void on_conn(evutil_socket_t fd, short what, void *arg);

static void out_free(rpc_out *o)
{
	for (size_t i = 0; i < o->nfds; i++)
		close(o->fds[i]);
	free(o);
}

static void close_fds(const int *fds, size_t nfds)
{
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
}

static void rconn_close(rpc_conn *c)
{
	rpc_server *srv = c->srv;
	rpc_req *q;
	rpc_out *o;

	while ((q = LIST_FIRST(&c->reqs)) != NULL) {   /* answered later, into the void */
		LIST_REMOVE(q, link);
		q->c = NULL;
	}
	while ((o = STAILQ_FIRST(&c->out)) != NULL) {
		STAILQ_REMOVE_HEAD(&c->out, link);
		out_free(o);
	}
	if (c->ev)
		event_free(c->ev);
	close(c->fd);
	LIST_REMOVE(c, link);
	free(c);
	srv->nconns--;
	if (srv->draining && srv->nconns == 0 && srv->o.drained)
		srv->o.drained(srv->o.arg);
}

/* Read while there is room for more work; write while replies wait. */
static int rconn_arm(rpc_conn *c)
{
	short want = (short)((c->nreq + c->nout < c->srv->o.max_pending ? EV_READ : 0) |
	                     (c->nout ? EV_WRITE : 0));

	if (want == c->armed)
		return 0;
	if (c->ev)
		event_free(c->ev);
	c->ev = NULL;
	c->armed = want;
	if (!want)
		return 0;
	c->ev = event_new(c->srv->base, c->fd, want | EV_PERSIST, on_conn, c);
	return c->ev && event_add(c->ev, NULL) == 0 ? 0 : -1;
}

/* Send now, or queue behind earlier replies. -1: the connection must close. */
static int rconn_send(rpc_conn *c, const uint8_t *buf, size_t n, const int *fds, size_t nfds)
{
	if (c->nout == 0 && ipc_send(c->fd, buf, n, fds, nfds) == 0) {
		close_fds(fds, nfds);
		return 0;
	}
	if (c->nout == 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
		close_fds(fds, nfds);
		return 0;                  /* the peer is gone: on_conn reads the EOF */
	}
	rpc_out *o = malloc(sizeof *o + n);
	if (!o) {
		close_fds(fds, nfds);
		return -1;                 /* a reply lost: the client must not wait for it */
	}
	o->len = n;
	o->nfds = nfds;
	if (nfds)
		memcpy(o->fds, fds, nfds * sizeof *fds);
	memcpy(o->buf, buf, n);
	STAILQ_INSERT_TAIL(&c->out, o, link);
	c->nout++;
	return rconn_arm(c);
}

static int rconn_flush(rpc_conn *c)
{
	rpc_out *o;

	while ((o = STAILQ_FIRST(&c->out)) != NULL) {
		if (ipc_send(c->fd, o->buf, o->len, o->fds, o->nfds) != 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		STAILQ_REMOVE_HEAD(&c->out, link);
		c->nout--;
		out_free(o);
	}
	return rconn_arm(c);
}

/* Encode and send one response frame on c. */
static void rconn_answer(rpc_conn *c, uint64_t corr, uint16_t status, const uint8_t *p,
                        size_t n, const int *fds, size_t nfds)
{
	rpc_server *srv = c->srv;
	oap_frame f = { .flags = OAP_F_RESP, .code = status, .app_proto_id = srv->o.app_proto,
	                .corr_id = corr, .payload = p, .payload_len = n };
	ssize_t len = oap_encode(&f, srv->wbuf, sizeof srv->wbuf);

	if (len < 0) {
		close_fds(fds, nfds);
		(void)BUG("internal reply does not encode");
		rconn_close(c);
		return;
	}
	if (rconn_send(c, srv->wbuf, (size_t)len, fds, nfds) != 0)
		rconn_close(c);
}

void rpc_server_reply(rpc_req *q, uint16_t status, const uint8_t *payload, size_t n,
                      const int *fds, size_t nfds)
{
	rpc_conn *c = q->c;

	if (q->fd >= 0)
		close(q->fd);
	if (!c) {
		close_fds(fds, nfds);
		free(q);
		return;
	}
	LIST_REMOVE(q, link);
	c->nreq--;
	uint64_t corr = q->corr;
	free(q);
	rconn_answer(c, corr, status, payload, n, fds, nfds);   /* may close c */
}

int rpc_req_take_fd(rpc_req *q)
{
	int fd = q->fd;

	q->fd = -1;
	return fd;
}

bool rpc_req_is_orphan(const rpc_req *q)
{
	return q->c == NULL;
}

__attribute__((noreturn))
static void rpc_fatal(const rpc_server *srv, uint16_t verb, const char *why)
{
	char code[8], msg[64];

	snprintf(code, sizeof code, "%u", (unsigned)verb);
	snprintf(msg, sizeof msg, "%s request does not decode; exiting", srv->o.name);
	log_fatalx(msg, "verb", srv->o.verb_name ? srv->o.verb_name(verb) : code,
	           "code", code, "reason", why, LOG_END);
}

/* One datagram: only the size cap is answered; anything else that does not
 * decode is fatal. */
static void rconn_handle(rpc_conn *c, size_t n, bool oversize, const int *fds, size_t nfds)
{
	rpc_server *srv = c->srv;
	oap_frame f;
	size_t used;
	/* Only a service that takes one (o->request_fds) may get one fd. */
	bool take = srv->o.request_fds && nfds == 1 && !oversize;
	int in_fd = take ? fds[0] : -1;

	if (!take)
		close_fds(fds, nfds);
	if (oversize) {
		static const char msg[] = "frame exceeds the internal frame cap";
		reject_count(REJECT_FAMILY_NODE, REJECT_413);
		rconn_answer(c, oap_peek_corr_id(srv->rbuf), 413, (const uint8_t *)msg,
		            sizeof msg - 1, NULL, 0);
		return;
	}
	if (oap_decode(srv->rbuf, n, OAP_INTERNAL_MAX_FRAME, &f, &used) != OAP_OK || used != n)
		rpc_fatal(srv, 0, "malformed frame");
	if (nfds > 0 && !take)
		rpc_fatal(srv, f.code, "unexpected file descriptors");
	if (f.flags != OAP_F_REQ || f.app_proto_id != srv->o.app_proto || f.cap_size != 0)
		rpc_fatal(srv, f.code, "not a request frame of this service");
	if (srv->o.check(f.code, f.payload, f.payload_len) != 0)
		rpc_fatal(srv, f.code, "unknown verb or malformed payload");
	rpc_req *q = calloc(1, sizeof *q);
	if (!q) {
		if (in_fd >= 0)
			close(in_fd);
		rconn_answer(c, f.corr_id, 503, NULL, 0, NULL, 0);
		return;
	}
	q->fd = in_fd;
	q->c = c;
	q->corr = f.corr_id;
	q->verb = f.code;
	LIST_INSERT_HEAD(&c->reqs, q, link);
	c->nreq++;
	srv->o.handle(q, f.code, f.payload, f.payload_len, srv->o.arg);
}

/* Reads at most max_pending datagrams per wake-up. Returns false when c was closed. */
static bool rconn_read(rpc_conn *c)
{
	rpc_server *srv = c->srv;

	for (unsigned i = 0; i < srv->o.max_pending && c->nreq + c->nout < srv->o.max_pending; i++) {
		int fds[IPC_MAX_FDS];
		size_t nfds = 0;
		ssize_t n = ipc_recv(c->fd, srv->rbuf, sizeof srv->rbuf, fds, &nfds);
		bool oversize = n < 0 && errno == EMSGSIZE;

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0 && !oversize) {
			rconn_close(c);
			return false;
		}
		/* handle may answer at once, and an answer may close c */
		unsigned before = (unsigned)srv->nconns;
		rconn_handle(c, oversize ? sizeof srv->rbuf : (size_t)n, oversize, fds, nfds);
		if (srv->nconns != before)
			return false;
	}
	if (rconn_arm(c) != 0) {
		rconn_close(c);
		return false;
	}
	return true;
}

static void on_conn(evutil_socket_t fd, short what, void *arg)
{
	rpc_conn *c = arg;

	(void)fd;
	if ((what & EV_WRITE) && rconn_flush(c) != 0) {
		rconn_close(c);
		return;
	}
	if (what & EV_READ)
		(void)rconn_read(c);
}

bool rpc_peer_is_us(int fd, const char *name)
{
	struct ucred cr;
	socklen_t len = sizeof cr;
	char uid[16], pid[16], msg[96];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.uid == geteuid())
		return true;
	reject_count(REJECT_FAMILY_NODE, REJECT_PEERCRED);
	snprintf(uid, sizeof uid, "%ld", len == sizeof cr ? (long)cr.uid : -1L);
	snprintf(pid, sizeof pid, "%ld", len == sizeof cr ? (long)cr.pid : -1L);
	snprintf(msg, sizeof msg, "%s connection refused: peer uid", name);
	log_kv(LOG_LEVEL_WARN, msg, "uid", uid, "pid", pid, LOG_END);
	return false;
}

static void on_accept(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	rpc_server *srv = arg;
	rpc_conn *c;

	(void)sa; (void)salen;
	if (!rpc_peer_is_us(fd, srv->o.name)) {
		close(fd);
		return;
	}
	if (!(c = calloc(1, sizeof *c))) {
		reject_count(REJECT_FAMILY_NODE, REJECT_503);
		close(fd);
		return;
	}
	c->srv = srv;
	c->fd = fd;
	LIST_INIT(&c->reqs);
	STAILQ_INIT(&c->out);
	LIST_INSERT_HEAD(&srv->conns, c, link);
	srv->nconns++;
	if (rconn_arm(c) != 0)
		rconn_close(c);
}

static void on_refuse(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	rpc_server *srv = arg;
	char msg[96];

	(void)sa; (void)salen;
	reject_count(REJECT_FAMILY_NODE, REJECT_503);
	snprintf(msg, sizeof msg, "%s connection refused: too many connections", srv->o.name);
	log_kv(LOG_LEVEL_WARN, msg, LOG_END);
	close(fd);
}

static size_t on_live(void *arg)
{
	return ((rpc_server *)arg)->nconns;
}

rpc_server *rpc_server_new(struct event_base *base, int listen_fd, const rpc_server_opts *o)
{
	rpc_server *srv = calloc(1, sizeof *srv);

	if (!srv)
		return NULL;
	srv->base = base;
	srv->o = *o;
	LIST_INIT(&srv->conns);
	conn_listener_opts lo = { .on_accept = on_accept, .on_refuse = on_refuse, .live = on_live,
	                          .max_conns = o->max_conns, .arg = srv,
	                          .log_msg = "internal accept failed", .own_fd = false };
	if (!(srv->lst = conn_listener_new(base, listen_fd, &lo))) {
		free(srv);
		return NULL;
	}
	return srv;
}

void rpc_server_drain(rpc_server *srv)
{
	srv->draining = true;
	conn_listener_enable(srv->lst, false);
	if (srv->nconns == 0 && srv->o.drained)
		srv->o.drained(srv->o.arg);
}

size_t rpc_server_conns(const rpc_server *srv)
{
	return srv->nconns;
}

void rpc_server_free(rpc_server *srv)
{
	rpc_conn *c;

	if (!srv)
		return;
	srv->draining = false;      /* no drained callback from here */
	while ((c = LIST_FIRST(&srv->conns)) != NULL) {
		rconn_close(c);
		UTIL_ANALYZER_ASSUME(LIST_FIRST(&srv->conns) != c);   /* LIST_REMOVE did; the analyzer misses it */
	}
	conn_listener_free(srv->lst);
	free(srv);
}
