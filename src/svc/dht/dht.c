/*
 * dht.c — the dht service: an OpenDHT node (dht_node.h) on dht.addr, served
 * to the node's other services over the SOCK_SEQPACKET socket the
 * supervisor bound (fd 5, `<runtime_dir>/dht.sock`). Protocol:
 * docs/internal.md ("DHT") — one OAP/1 frame per datagram, the typed
 * messages of core/dht/dht_msg.h.
 *
 * Every accepted connection must come from our own uid (SO_PEERCRED). A
 * connection may have DHT_CONN_PENDING operations and unsent replies at
 * once; past that it is not read until one ends. Replies go out as each
 * operation ends, so in any order (the client matches them by corr_id).
 *
 * A request that does not decode is a bug of a process of this binary:
 * fatal here (dht_fatal), the supervisor restarts us.
 *
 * Every DHT_TICK_MS the routing table is read (on a worker), the
 * bootstrap nodes are pinged again while it is empty, readiness is
 * reported (CTL_DEP_DHT: up once a node was heard from, or at once when no
 * bootstrap node is configured; degraded while bootstrapping) and the
 * republish pass is paced (dht_publish.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/metrics/metrics.h"
#include "core/metrics/reject.h"
#include "core/net/conn.h"
#include "core/objects/objstore.h"
#include "core/proto/oap.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/util.h"
#include "svc/dht/dht_svc.h"

typedef struct dht_out {
	STAILQ_ENTRY(dht_out) link;
	size_t  len;
	uint8_t buf[];
} dht_out;

struct dht_conn {
	dht_svc      *d;
	int           fd;
	struct event *ev;
	short         armed;          /* EV_READ / EV_WRITE the event waits for */
	bool          reading;        /* inside dht_conn_read: it re-arms (and may close) at its end */
	unsigned      nops;           /* ops answering on this connection */
	unsigned      nout;           /* replies waiting for room in the socket */
	STAILQ_HEAD(, dht_out) out;
	LIST_ENTRY(dht_conn) link;
};

uint64_t dht_now_s(void)
{
	return (uint64_t)time(NULL);
}

/* ---- connections ------------------------------------------------------------ */

static void on_conn(evutil_socket_t fd, short what, void *arg);

static void dht_conn_close(dht_conn *c)
{
	dht_svc *d = c->d;
	dht_out *o;

	dht_ops_detach(d, c);
	while ((o = STAILQ_FIRST(&c->out)) != NULL) {
		STAILQ_REMOVE_HEAD(&c->out, link);
		free(o);
	}
	if (c->ev)
		event_free(c->ev);
	close(c->fd);
	LIST_REMOVE(c, link);
	free(c);
	d->nconns--;
}

/* Read while the connection has room for more work; write while replies wait. */
static int dht_conn_arm(dht_conn *c)
{
	short want = (short)((c->nops + c->nout < DHT_CONN_PENDING ? EV_READ : 0) |
	                     (c->nout ? EV_WRITE : 0));

	if (want == c->armed)
		return 0;
	if (c->ev)
		event_free(c->ev);
	c->ev = NULL;
	c->armed = want;
	if (!want)
		return 0;
	c->ev = event_new(c->d->s->base, c->fd, want | EV_PERSIST, on_conn, c);
	return c->ev && event_add(c->ev, NULL) == 0 ? 0 : -1;
}

/* Re-arm after a change of nops or nout; never closes inside the read loop
 * (which re-arms at its end). */
static void dht_conn_rearm(dht_conn *c)
{
	if (!c->reading && dht_conn_arm(c) != 0)
		dht_conn_close(c);
}

void dht_conn_op_done(dht_conn *c)
{
	c->nops--;
	dht_conn_rearm(c);
}

void dht_conn_reply(dht_conn *c, uint64_t corr, const dht_rep *rep)
{
	dht_svc *d = c->d;
	uint8_t payload[DHT_MSG_MAX];
	ssize_t plen = dht_msg_rep_encode(rep, payload, sizeof payload);
	oap_frame f = { .flags = OAP_F_RESP, .code = rep->status, .app_proto_id = DHT_APP_PROTO,
	                .corr_id = corr, .payload = payload,
	                .payload_len = plen > 0 ? (size_t)plen : 0 };
	ssize_t n = plen < 0 ? -1 : oap_encode(&f, d->wbuf, sizeof d->wbuf);
	dht_out *o;

	if (n < 0) {
		(void)BUG("dht reply does not encode");
		return;
	}
	if (c->nout == 0 && ipc_send(c->fd, d->wbuf, (size_t)n, NULL, 0) == 0)
		return;
	if (c->nout == 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		return;                     /* the peer is gone: on_conn reads the EOF */
	if (!(o = malloc(sizeof *o + (size_t)n)))
		return;                     /* the caller times out; nothing else is owed */
	o->len = (size_t)n;
	memcpy(o->buf, d->wbuf, (size_t)n);
	STAILQ_INSERT_TAIL(&c->out, o, link);
	c->nout++;
	dht_conn_rearm(c);
}

static int dht_conn_flush(dht_conn *c)
{
	dht_out *o;

	while ((o = STAILQ_FIRST(&c->out)) != NULL) {
		if (ipc_send(c->fd, o->buf, o->len, NULL, 0) != 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		STAILQ_REMOVE_HEAD(&c->out, link);
		free(o);
		c->nout--;
	}
	return dht_conn_arm(c);
}

/* A request that does not decode: one error line naming the verb, then exit. */
__attribute__((noreturn))
static void dht_fatal(uint16_t verb, const char *why)
{
	char code[8];

	snprintf(code, sizeof code, "%u", (unsigned)verb);
	log_fatalx("dht request does not decode; exiting", "verb", dht_msg_verb_name(verb),
	           "code", code, "reason", why, LOG_END);
}

/* One datagram. Only the size cap is answered; anything else that does not
 * decode is fatal. */
static void dht_handle(dht_conn *c, size_t n, bool oversize, size_t nfds, int *fds)
{
	oap_frame f;
	size_t used;
	dht_req q;

	for (size_t i = 0; i < nfds; i++)   /* no request carries fds */
		close(fds[i]);
	if (oversize) {
		dht_rep rep;
		dht_msg_rep_err(&rep, DHT_PING, 413, "frame exceeds the internal frame cap");
		reject_count(REJECT_FAMILY_NODE, REJECT_413);
		dht_conn_reply(c, oap_peek_corr_id(c->d->rbuf), &rep);
		return;
	}
	if (oap_decode(c->d->rbuf, n, OAP_INTERNAL_MAX_FRAME, &f, &used) != OAP_OK || used != n)
		dht_fatal(0, "malformed frame");
	if (nfds > 0)
		dht_fatal(f.code, "unexpected file descriptors");
	if (f.flags != OAP_F_REQ || f.app_proto_id != DHT_APP_PROTO || f.cap_size != 0)
		dht_fatal(f.code, "not a dht request frame");
	if (dht_msg_req_decode(f.code, f.payload, f.payload_len, &q) != 0)
		dht_fatal(f.code, "unknown verb or malformed payload");
	c->nops++;                          /* the verb ends it: dht_conn_op_done */
	dht_ops_dispatch(c->d, c, f.corr_id, &q);
}

static void dht_conn_read(dht_conn *c)
{
	c->reading = true;
	for (unsigned i = 0; i < DHT_CONN_PENDING && c->nops + c->nout < DHT_CONN_PENDING; i++) {
		int fds[IPC_MAX_FDS];
		size_t nfds = 0;
		ssize_t n = ipc_recv(c->fd, c->d->rbuf, sizeof c->d->rbuf, fds, &nfds);
		bool oversize = n < 0 && errno == EMSGSIZE;

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0 && !oversize) {
			dht_conn_close(c);
			return;
		}
		dht_handle(c, oversize ? sizeof c->d->rbuf : (size_t)n, oversize, nfds, fds);
	}
	c->reading = false;
	if (dht_conn_arm(c) != 0)
		dht_conn_close(c);
}

static void on_conn(evutil_socket_t fd, short what, void *arg)
{
	dht_conn *c = arg;

	(void)fd;
	if ((what & EV_WRITE) && dht_conn_flush(c) != 0) {
		dht_conn_close(c);
		return;
	}
	if (what & EV_READ)
		dht_conn_read(c);
}

static void dht_on_accept(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	dht_svc *d = arg;
	dht_conn *c;

	(void)sa; (void)salen;
	if (!svc_peer_ok(fd, "dht")) {
		close(fd);
		return;
	}
	if (!(c = calloc(1, sizeof *c))) {
		reject_count(REJECT_FAMILY_NODE, REJECT_503);
		close(fd);
		return;
	}
	c->d = d;
	c->fd = fd;
	STAILQ_INIT(&c->out);
	LIST_INSERT_HEAD(&d->conns, c, link);
	d->nconns++;
	if (dht_conn_arm(c) != 0)
		dht_conn_close(c);
}

static void dht_on_refuse(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	(void)arg; (void)sa; (void)salen;
	reject_count(REJECT_FAMILY_NODE, REJECT_503);
	log_kv(LOG_LEVEL_WARN, "dht connection refused: too many connections", LOG_END);
	close(fd);
}

static size_t dht_live(void *arg)
{
	return ((dht_svc *)arg)->nconns;
}

/* ---- the routing table and readiness --------------------------------------- */

static void dht_gauges(const dht_node_snap *sn)
{
	metrics_gauge_set(metrics_get("dht_routing_nodes", "state=\"good\""), sn->good);
	metrics_gauge_set(metrics_get("dht_routing_nodes", "state=\"dubious\""), sn->dubious);
	metrics_gauge_set(metrics_get("dht_stored_values", ""), (int64_t)sn->stored);
}

static void dht_on_snap(const dht_node_snap *sn, void *arg)
{
	dht_svc *d = arg;
	bool was = d->bootstrapped;

	d->snap = *sn;
	dht_gauges(sn);
	/* An island by configuration is as bootstrapped as it will get. */
	d->bootstrapped = d->nboot == 0 || sn->good + sn->dubious > 0;
	if (d->bootstrapped != was) {
		char nodes[16];
		snprintf(nodes, sizeof nodes, "%u", sn->good + sn->dubious);
		log_kv(LOG_LEVEL_INFO, d->bootstrapped ? "dht bootstrapped" : "dht lost every node",
		       "nodes", nodes, LOG_END);
		svc_report_dep(d->s, CTL_DEP_DHT, d->bootstrapped ? CTL_DEP_UP : CTL_DEP_DEGRADED);
	}
}

static void dht_bootstrap(dht_svc *d)
{
	for (size_t i = 0; i < d->nboot; i++)
		dht_node_bootstrap(d->node, (const struct sockaddr *)&d->boot[i], d->bootlen[i]);
	d->last_boot_ms = util_now_ms();
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	dht_svc *d = arg;
	uint64_t dropped = dht_node_overflow(d->node);

	(void)fd; (void)what;
	uint64_t refused[DHT_REJECT_COUNT];

	if (dropped)
		metrics_count("dht_records_rejected_total", "reason=\"overflow\"", dropped);
	dht_node_refused(d->node, refused);   /* values others put here, judged on OpenDHT's thread */
	for (size_t i = 0; i < DHT_REJECT_COUNT; i++)
		if (refused[i])
			dht_count_reject_n(dht_reject_name((dht_reject)i), refused[i]);
	(void)dht_node_snapshot(d->node);
	if (d->nboot && d->snap.good + d->snap.dubious == 0 &&
	    util_now_ms() - d->last_boot_ms >= DHT_BOOT_RETRY_S * 1000u)
		dht_bootstrap(d);
	dht_publish_tick(d);
}

/* dht.bootstrap, parsed once (config validation checked every entry). */
static void dht_boot_parse(dht_svc *d, const char *list)
{
	char one[CONFIG_ADDR_MAX];

	for (const char *p = list; *p && d->nboot < CONFIG_ADDR_LIST_N;) {
		size_t n = strcspn(p, ",");
		unsigned len;
		bool lo;
		if (n < sizeof one) {
			memcpy(one, p, n);
			one[n] = '\0';
			if (config_parse_addr(one, &d->boot[d->nboot], &len, &lo) == 0)
				d->bootlen[d->nboot++] = (socklen_t)len;
		}
		p += n + (p[n] == ',');
	}
}

/* ---- service ---------------------------------------------------------------- */

static void dht_free(dht_svc *d)
{
	if (!d)
		return;
	if (d->tick)
		event_free(d->tick);
	for (dht_conn *c = LIST_FIRST(&d->conns), *next; c; c = next) {
		next = LIST_NEXT(c, link);   /* closing c unlinks and frees c alone */
		dht_conn_close(c);
	}
	dht_node_free(d->node);        /* OpenDHT stops: no event after this */
	dht_ops_free_all(d);
	stor_client_free(d->stor);
	conn_listener_free(d->lst);
	free(d);
}

/* The node's queue before the sandbox, OpenDHT (its threads) after it. */
static int dht_start_node(dht_svc *d, svc *s)
{
	char err[256];
	dht_node_cfg nc = { .addr = s->cfg.dht_addr,
	                    .value_ttl_s = (uint32_t)(s->cfg.dht_record_ttl_ms / 1000u),
	                    .on_event = dht_ops_on_event, .on_snap = dht_on_snap, .arg = d };

	if (!(d->node = dht_node_new(s->base, &nc, err, sizeof err)) || svc_sandbox_enter(s) != 0 ||
	    dht_node_run(d->node, err, sizeof err) != 0) {
		log_kv(LOG_LEVEL_ERROR, "dht cannot start its node", "addr", s->cfg.dht_addr,
		       "error", err, LOG_END);
		return -1;
	}
	log_kv(LOG_LEVEL_INFO, "dht node running", "addr", s->cfg.dht_addr, LOG_END);
	return 0;
}

static int dht_start(svc *s)
{
	dht_svc *d = calloc(1, sizeof *d);
	struct timeval tv = { DHT_TICK_MS / 1000u, (DHT_TICK_MS % 1000u) * 1000 };

	if (!d)
		return -1;
	d->s = s;
	LIST_INIT(&d->conns);
	LIST_INIT(&d->ops);
	s->priv = d;
	if (!s->identity.sk) {
		log_kv(LOG_LEVEL_ERROR, "dht has no node identity to sign with", LOG_END);
		goto fail;
	}
	if (s->listen_fd < 0 || evutil_make_socket_nonblocking(s->listen_fd) != 0) {
		log_kv(LOG_LEVEL_ERROR, "dht has no listening socket", LOG_END);
		goto fail;
	}
	dht_boot_parse(d, s->cfg.dht_bootstrap);
	dht_publish_init(d);
	if (dht_start_node(d, s) != 0)
		goto fail;
	d->stor = objstore_client_new(s->base, &s->cfg);
	conn_listener_opts lo = { .on_accept = dht_on_accept, .on_refuse = dht_on_refuse,
	                          .live = dht_live, .max_conns = DHT_MAX_CONNS, .arg = d,
	                          .log_msg = "dht accept failed" };
	if (!d->stor || !(d->lst = conn_listener_new(s->base, s->listen_fd, &lo)))
		goto fail;
	d->tick = event_new(s->base, -1, EV_PERSIST, on_tick, d);
	if (!d->tick || event_add(d->tick, &tv) != 0)
		goto fail;
	dht_bootstrap(d);
	/* Until the table fills: degraded, unless an island by configuration. */
	d->bootstrapped = d->nboot == 0;
	svc_report_dep(s, CTL_DEP_DHT, d->bootstrapped ? CTL_DEP_UP : CTL_DEP_DEGRADED);
	dht_gauges(&d->snap);
	return 0;
fail:
	dht_free(d);
	s->priv = NULL;
	return -1;
}

static void dht_reload(svc *s)
{
	dht_svc *d = s->priv;

	tbucket_init(&d->announce_rate, s->cfg.dht_max_announces_per_second,
	             s->cfg.dht_max_announces_per_second, util_now_ms());
}

static void dht_onion(svc *s)
{
	if (s->priv)
		dht_publish_onion(s->priv);
}

/* Stop taking connections; done when the operations in flight have ended
 * (each by dht.lookup_timeout) or at the drain deadline. Connections of
 * other services may stay open: they hold no work. */
static void dht_drain(svc *s)
{
	dht_svc *d = s->priv;

	d->draining = true;
	conn_listener_enable(d->lst, false);
	if (LIST_EMPTY(&d->ops))
		svc_drained(s);
}

static void dht_stop(svc *s)
{
	dht_free(s->priv);
	s->priv = NULL;
}

const svc_ops dht_ops = {
	.role = "dht",
	.start = dht_start,
	.reload = dht_reload,
	.drain = dht_drain,
	.stop = dht_stop,
	.onion = dht_onion,
};
