/*
 * index.c — the index service: names → cids for the node's other services,
 * over the SOCK_SEQPACKET socket the supervisor bound (fd 5,
 * `<runtime_dir>/index.sock`). Protocol: docs/internal.md "Index" — one
 * OAP/1 frame per datagram, the typed messages of core/dht/index_msg.h.
 *
 * Every accepted connection must come from our own uid (SO_PEERCRED). A
 * connection's requests are read and dispatched as they come; each is
 * answered when its work is done — at once for a held name, after the
 * writer thread for a publish to the disk table, after the DHT for a name
 * looked up — so answers leave in any order, matched by corr_id (the
 * client, core/proto/rpc_client, expects exactly that). At most
 * INDEX_CONN_PENDING_MAX requests per connection are unanswered; past it
 * the connection is not read until one is.
 *
 * Only our own processes reach the socket, and they are this binary: a
 * request that does not decode is a bug, fatal here (index_fatal); the
 * supervisor restarts us. A datagram over the frame cap is answered 413
 * from its header. The one untrusted field, IMPORT's record, is judged like
 * any record from the network and its refusal counted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/metrics/reject.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "svc/index/index.h"

/* ---- answers -------------------------------------------------------------- */

static void index_conn_read_on(index_conn *c);
static void index_conn_close(index_conn *c);

static void index_op_free(index_op *op)
{
	if (op->c) {
		LIST_REMOVE(op, link);
		op->c->pending--;
	}
	free(op);
}

index_op *index_op_orphan(index_svc *srv, uint16_t verb)
{
	index_op *op = calloc(1, sizeof *op);

	if (op) {
		op->srv = srv;
		op->verb = verb;
	}
	return op;
}

/* Queue a copy of frame[0..n) (the socket is full). -1: out of memory. */
static int index_conn_queue(index_conn *c, const uint8_t *frame, size_t n)
{
	index_out *o = malloc(sizeof *o + n);

	if (!o)
		return -1;
	o->len = n;
	memcpy(o->frame, frame, n);
	STAILQ_INSERT_TAIL(&c->outq, o, link);
	c->pending++;
	return event_add(c->wev, NULL);
}

/* Send or queue one frame. -1: the connection must close. */
static int index_conn_send(index_conn *c, const uint8_t *frame, size_t n)
{
	if (STAILQ_EMPTY(&c->outq)) {
		if (ipc_send(c->fd, frame, n, NULL, 0) == 0)
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
	}
	return index_conn_queue(c, frame, n);
}

__attribute__((noreturn))
static void index_fatal(uint16_t verb, const char *why)
{
	char code[8];

	snprintf(code, sizeof code, "%u", (unsigned)verb);
	log_fatalx("index request does not decode; exiting", "verb", index_msg_verb_name(verb),
	           "code", code, "reason", why, LOG_END);
}

/* Encode rep as the response to corr and send it on c. -1: close c. */
static int index_send_rep(index_conn *c, uint64_t corr, const index_rep *rep)
{
	index_svc *srv = c->srv;
	ssize_t plen = index_msg_rep_encode(rep, srv->payload, sizeof srv->payload);
	oap_frame f = { .flags = OAP_F_RESP, .code = rep->status, .app_proto_id = INDEX_APP_PROTO,
	                .corr_id = corr, .payload = srv->payload,
	                .payload_len = plen > 0 ? (size_t)plen : 0 };
	ssize_t n = plen < 0 ? -1 : oap_encode(&f, srv->wbuf, sizeof srv->wbuf);

	if (n < 0) {
		/* Ours to fix, not the caller's: say so rather than leave it waiting. */
		index_rep err;
		(void)BUG("index reply does not encode");
		index_msg_rep_err(&err, rep->verb, 500, "index reply does not encode");
		plen = index_msg_rep_encode(&err, srv->payload, sizeof srv->payload);
		f.code = 500;
		f.payload_len = plen > 0 ? (size_t)plen : 0;
		n = oap_encode(&f, srv->wbuf, sizeof srv->wbuf);
		if (plen < 0 || n < 0)
			return -1;
	}
	return index_conn_send(c, srv->wbuf, (size_t)n);
}

void index_answer(index_op *op, const index_rep *rep)
{
	index_conn *c = op->c;
	uint64_t corr = op->corr;

	index_op_free(op);
	if (!c)
		return;
	if (index_send_rep(c, corr, rep) != 0) {
		index_conn_close(c);
		return;
	}
	index_conn_read_on(c);
}

void index_answer_err(index_op *op, uint16_t status, const char *message)
{
	index_rep *rep = &op->srv->rep;

	index_msg_rep_err(rep, op->verb, status, message);
	index_answer(op, rep);
}

/* ---- requests ------------------------------------------------------------- */

/* One datagram of n bytes (or a truncated one when oversize). -1: close. */
static int index_handle(index_conn *c, size_t n, bool oversize, size_t nfds, int *fds)
{
	index_svc *srv = c->srv;
	index_op *op;
	oap_frame f;
	index_req q;
	size_t used;

	for (size_t i = 0; i < nfds; i++)   /* no request carries fds */
		close(fds[i]);
	if (oversize) {                      /* rbuf is full: the header is there */
		index_rep *rep = &srv->rep;
		reject_count(REJECT_FAMILY_NODE, REJECT_413);
		index_msg_rep_err(rep, 0, 413, "frame exceeds the internal frame cap");
		return index_send_rep(c, oap_peek_corr_id(srv->rbuf), rep);
	}
	if (oap_decode(srv->rbuf, n, OAP_INTERNAL_MAX_FRAME, &f, &used) != OAP_OK || used != n)
		index_fatal(0, "malformed frame");
	if (nfds > 0)
		index_fatal(f.code, "unexpected file descriptors");
	if (f.flags != OAP_F_REQ || f.app_proto_id != INDEX_APP_PROTO || f.cap_size != 0)
		index_fatal(f.code, "not an index request frame");
	if (index_msg_req_decode(f.code, f.payload, f.payload_len, &q) != 0)
		index_fatal(f.code, "unknown verb or malformed payload");
	if (!(op = calloc(1, sizeof *op))) {
		index_rep *rep = &srv->rep;
		reject_count(REJECT_FAMILY_NODE, REJECT_503);
		index_msg_rep_err(rep, q.verb, 503, "out of memory");
		return index_send_rep(c, f.corr_id, rep);
	}
	*op = (index_op){ .srv = srv, .c = c, .corr = f.corr_id, .verb = q.verb };
	LIST_INSERT_HEAD(&c->ops, op, link);
	c->pending++;
	index_dispatch(op, &q);   /* may answer, and so close c: read nothing more here */
	return 0;
}

/* Read what is there, up to the batch and the pending cap. */
static void index_conn_read(index_conn *c)
{
	index_svc *srv = c->srv;

	for (unsigned i = 0; i < INDEX_READ_BATCH && c->pending < INDEX_CONN_PENDING_MAX; i++) {
		int fds[IPC_MAX_FDS];
		size_t nfds = 0;
		ssize_t n = ipc_recv(c->fd, srv->rbuf, sizeof srv->rbuf, fds, &nfds);
		bool oversize = n < 0 && errno == EMSGSIZE;
		size_t live = srv->nconns;

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if ((n <= 0 && !oversize) ||
		    index_handle(c, oversize ? sizeof srv->rbuf : (size_t)n, oversize, nfds, fds) != 0) {
			index_conn_close(c);
			return;
		}
		if (srv->nconns != live)   /* an answer failed and closed c: it is gone */
			return;
	}
	if (c->pending >= INDEX_CONN_PENDING_MAX && c->reading) {
		event_del(c->rev);
		c->reading = false;
	}
}

static void index_conn_read_on(index_conn *c)
{
	if (!c->reading && c->pending < INDEX_CONN_PENDING_MAX && event_add(c->rev, NULL) == 0)
		c->reading = true;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	index_conn_read(arg);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	index_conn *c = arg;
	index_out *o;

	(void)fd; (void)what;
	while ((o = STAILQ_FIRST(&c->outq)) != NULL) {
		if (ipc_send(c->fd, o->frame, o->len, NULL, 0) != 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				index_conn_close(c);
			return;
		}
		STAILQ_REMOVE_HEAD(&c->outq, link);
		free(o);
		c->pending--;
	}
	event_del(c->wev);
	index_conn_read_on(c);
}

/* ---- connections ---------------------------------------------------------- */

static void index_conn_close(index_conn *c)
{
	index_svc *srv = c->srv;
	index_op *op;
	index_out *o;

	while ((op = LIST_FIRST(&c->ops)) != NULL) {   /* answered later, into the void */
		LIST_REMOVE(op, link);
		op->c = NULL;
	}
	while ((o = STAILQ_FIRST(&c->outq)) != NULL) {
		STAILQ_REMOVE_HEAD(&c->outq, link);
		free(o);
	}
	if (c->rev) event_free(c->rev);
	if (c->wev) event_free(c->wev);
	close(c->fd);
	LIST_REMOVE(c, link);
	free(c);
	srv->nconns--;
	if (srv->draining && srv->nconns == 0)
		svc_drained(srv->s);
}

static bool index_peer_ok(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof cr;
	char uid[16], pid[16];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.uid == geteuid())
		return true;
	reject_count(REJECT_FAMILY_NODE, REJECT_PEERCRED);
	snprintf(uid, sizeof uid, "%ld", len == sizeof cr ? (long)cr.uid : -1L);
	snprintf(pid, sizeof pid, "%ld", len == sizeof cr ? (long)cr.pid : -1L);
	log_kv(LOG_LEVEL_WARN, "index connection refused: peer uid", "uid", uid, "pid", pid, LOG_END);
	return false;
}

static void index_on_accept(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	index_svc *srv = arg;
	index_conn *c;

	(void)sa; (void)salen;
	if (!index_peer_ok(fd)) {
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
	LIST_INIT(&c->ops);
	STAILQ_INIT(&c->outq);
	LIST_INSERT_HEAD(&srv->conns, c, link);
	srv->nconns++;
	c->rev = event_new(srv->s->base, fd, EV_READ | EV_PERSIST, on_read, c);
	c->wev = event_new(srv->s->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
	if (!c->rev || !c->wev) {
		index_conn_close(c);
		return;
	}
	index_conn_read_on(c);
}

static void index_on_refuse(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	(void)arg; (void)sa; (void)salen;
	reject_count(REJECT_FAMILY_NODE, REJECT_503);
	log_kv(LOG_LEVEL_WARN, "index connection refused: too many connections", LOG_END);
	close(fd);
}

static size_t index_live(void *arg)
{
	return ((index_svc *)arg)->nconns;
}

/* ---- service -------------------------------------------------------------- */

static void on_writes_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	index_writes_done(arg);
}

static int index_open_tables(index_svc *srv, const mn_config *cfg)
{
	index_db_limits lim = { .max_names = cfg->index_max_names, .history = cfg->index_history };
	index_db_limits cache = { .max_names = INDEX_CACHE_NAMES, .history = 1, .evict = true };
	char err[INDEX_DB_ERR_MAX];

	srv->history = cfg->index_history;
	srv->table = cfg->amnesia ? index_db_ram_new(&lim, err, sizeof err)
	                          : index_db_disk_new(cfg->data_dir, &lim, err, sizeof err);
	if (srv->table)
		srv->cache = index_db_ram_new(&cache, err, sizeof err);
	if (!srv->table || !srv->cache) {
		log_kv(LOG_LEVEL_ERROR, "index cannot open its tables", "error", err, LOG_END);
		return -1;
	}
	return 0;
}

/* The writer thread, for a table whose writes fsync. */
static int index_open_writer(index_svc *srv)
{
	if (!index_db_writes_off_loop(srv->table))
		return 0;
	srv->wq = workq_new(1, INDEX_WRITES_MAX);
	if (!srv->wq)
		return -1;
	srv->wq_ev = event_new(srv->s->base, workq_fd(srv->wq), EV_READ | EV_PERSIST,
	                       on_writes_done, srv);
	return srv->wq_ev && event_add(srv->wq_ev, NULL) == 0 ? 0 : -1;
}

static void index_free(index_svc *srv)
{
	if (!srv)
		return;
	index_lookups_free(srv);
	index_republish_stop(srv);
	if (srv->wq_ev) event_free(srv->wq_ev);
	workq_free(srv->wq);   /* a running write finishes (and is answered); queued ones dropped */
	srv->wq = NULL;
	for (index_conn *c = LIST_FIRST(&srv->conns), *next; c; c = next) {
		next = LIST_NEXT(c, link);
		index_conn_close(c);
	}
	conn_listener_free(srv->lst);
	index_dht_free(srv->dht);
	index_db_free(srv->cache);
	index_db_free(srv->table);
	free(srv);
}

static int index_start(svc *s)
{
	index_svc *srv = calloc(1, sizeof *srv);

	if (!srv)
		return -1;
	srv->s = s;
	LIST_INIT(&srv->conns);
	LIST_INIT(&srv->lookups);
	if (!s->identity.sk) {
		log_kv(LOG_LEVEL_ERROR, "index has no node identity to sign with", LOG_END);
		goto fail;
	}
	if (s->listen_fd < 0 || evutil_make_socket_nonblocking(s->listen_fd) != 0) {
		log_kv(LOG_LEVEL_ERROR, "index has no listening socket", LOG_END);
		goto fail;
	}
	/* The tables open before the sandbox, the writer thread after it
	 * (Landlock binds only the threads made after it). */
	if (index_open_tables(srv, &s->cfg) != 0 || svc_sandbox_enter(s) != 0 ||
	    index_open_writer(srv) != 0)
		goto fail;
	srv->dht = index_dht_new(s->base, &s->cfg);
	if (index_republish_start(srv) != 0)
		goto fail;
	conn_listener_opts lo = { .on_accept = index_on_accept, .on_refuse = index_on_refuse,
	                          .live = index_live, .max_conns = INDEX_MAX_CONNS, .arg = srv,
	                          .log_msg = "index accept failed" };
	if (!(srv->lst = conn_listener_new(s->base, s->listen_fd, &lo)))
		goto fail;
	s->priv = srv;
	index_gauges(srv);
	log_kv(LOG_LEVEL_INFO, "index serving", "backend", s->cfg.amnesia ? "ram" : "disk",
	       "node_id", s->identity.id_text, "dht", srv->dht ? "yes" : "no", LOG_END);
	return 0;
fail:
	index_free(srv);
	return -1;
}

/* Answer what is in flight; done when the last connection closes or at the
 * drain deadline. */
static void index_drain(svc *s)
{
	index_svc *srv = s->priv;

	srv->draining = true;
	conn_listener_enable(srv->lst, false);
	if (srv->nconns == 0)
		svc_drained(s);
}

static void index_stop(svc *s)
{
	index_free(s->priv);
	s->priv = NULL;
}

const svc_ops index_ops = {
	.role = "index",
	.start = index_start,
	.drain = index_drain,
	.stop = index_stop,
};
