/*
 * omnigate.c — the OAP/1 service (docs/oap.md): one process accepting TLS
 * 1.3 connections on the listener the supervisor bound for oap.addr (fd 5),
 * its start-up, connection cap, reload and drain. One connection is
 * oap_conn.c; the object verbs are oap_verbs.c; storage is reached through
 * one stor_client on <runtime_dir>/storage.sock, exactly as the gateway.
 *
 * TLS only: config validation refuses omnigate without tls.cert_file, and
 * start refuses it again (a plaintext OAP listener would carry capability
 * tokens in the clear).
 */
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/objects/objstore.h"
#include "core/tls.h"
#include "core/auth/wall.h"
#include "lib/log.h"
#include "svc/omnigate/omnigate.h"
#include "svc/svc.h"

static const char *const og_reject_names[OG_REJ_COUNT] = {
	[OG_REJ_MALFORMED] = "malformed",
	[OG_REJ_TOO_LARGE] = "too_large",
	[OG_REJ_PROTOCOL] = "protocol",
	[OG_REJ_HELLO] = "hello",
	[OG_REJ_INFLIGHT] = "inflight",
	[OG_REJ_TIMEOUT] = "timeout",
	[OG_REJ_CONN_CAP] = "conn_cap",
	[OG_REJ_DECOMPRESS] = "decompress",
	[OG_REJ_INTEGRITY] = "integrity",
	[OG_REJ_UNAUTH] = "unauth",
	[OG_REJ_FORBIDDEN] = "forbidden",
	[OG_REJ_QUOTA] = "quota",
	[OG_REJ_413] = "413",
};

typedef struct og_svc {
	omnigate og;
	svc     *s;
} og_svc;

uint64_t og_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- shared with oap_conn.c --------------------------------------------- */

void og_init(omnigate *og, struct event_base *base)
{
	char labels[48];

	og->base = base;
	tbucket_init(&og->log_rate, OG_LOG_PER_S, OG_LOG_PER_S, og_now_ms());
	og->m_in = metrics_get("oap_bytes_in_total", "");
	og->m_out = metrics_get("oap_bytes_out_total", "");
	og->m_conns = metrics_get("oap_open_connections", "");
	og->m_streams = metrics_get("oap_open_streams", "");
	og->m_tls_fail = metrics_get("tls_handshake_failures_total", "");
	for (int i = 0; i < OG_REJ_COUNT; i++) {
		snprintf(labels, sizeof labels, "reason=\"%s\"", og_reject_names[i]);
		og->m_rej[i] = metrics_get("oap_rejected_total", labels);
	}
}

void og_count_reject(omnigate *og, og_reject why, const char *detail)
{
	if (why >= OG_REJ_COUNT)
		return;
	metrics_inc(og->m_rej[why], 1);
	if (tbucket_take(&og->log_rate, 1, og_now_ms()))
		log_kv(LOG_LEVEL_INFO, "oap refused", "reason", og_reject_names[why],
		       "detail", detail ? detail : "-", NULL);
}

void og_conn_added(omnigate *og, oap_conn *c)
{
	oap_conn_link(c, &og->conns);
	og->nconns++;
	metrics_gauge_add(og->m_conns, 1);
}

/* The drain callback must be the last thing run: it may end the loop. */
void og_conn_gone(omnigate *og, oap_conn *c)
{
	void (*done)(void *);

	oap_conn_unlink(c, &og->conns);
	og->nconns--;
	metrics_gauge_add(og->m_conns, -1);
	if (og->draining && og->nconns == 0 && og->drain_done) {
		done = og->drain_done;
		og->drain_done = NULL;
		done(og->drain_arg);
	}
}

/* ---- listener ------------------------------------------------------------ */

static struct bufferevent *og_tls_bev_new(omnigate *og, int fd)
{
	struct bufferevent *bev;
	SSL *ssl = tls_server_ssl_new(og->tls);

	if (!ssl)
		return NULL;
	/* As in the HTTP core: a peer closing without close_notify is an EOF;
	 * OAP framing catches a cut frame by itself. */
	SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	bev = bufferevent_openssl_socket_new(og->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                     BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		return NULL;   /* libevent may have freed ssl: leak rather than double free */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static void og_on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                         int salen, void *arg)
{
	omnigate *og = arg;
	struct bufferevent *bev;
	int one = 1;

	(void)lev;
	(void)salen;
	if (og->draining) {
		close(fd);
		return;
	}
	/* Over the cap: close before any allocation or handshake. */
	if (og->nconns >= og->lim.max_connections) {
		og_count_reject(og, OG_REJ_CONN_CAP, NULL);
		close(fd);
		return;
	}
	if (sa && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6))
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (!(bev = og_tls_bev_new(og, fd))) {
		close(fd);
		return;
	}
	(void)oap_conn_new(og, bev, true);
}

static void og_on_accept_error(struct evconnlistener *lev, void *arg)
{
	omnigate *og = arg;

	if (tbucket_take(&og->log_rate, 1, og_now_ms()))
		log_kv(LOG_LEVEL_WARN, "oap accept failed", "error",
		       evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), NULL);
	(void)lev;
}

/* ---- service -------------------------------------------------------------- */

static void og_limits_from(og_limits *l, const mn_config *c)
{
	l->max_inflight = c->oap_max_inflight ? c->oap_max_inflight : 64;
	if (l->max_inflight > OG_STREAMS_MAX)
		l->max_inflight = OG_STREAMS_MAX;
	l->max_connections = c->max_connections ? c->max_connections : 1;
	l->read_ms = c->read_timeout_ms ? c->read_timeout_ms : OG_DEFAULT_MS;
	l->idle_ms = c->idle_timeout_ms ? c->idle_timeout_ms : OG_DEFAULT_MS;
	l->write_ms = c->write_timeout_ms ? c->write_timeout_ms : OG_DEFAULT_MS;
	l->handshake_ms = c->tls_handshake_timeout_ms ? c->tls_handshake_timeout_ms : OG_DEFAULT_MS;
	l->max_object = c->storage_max_object_bytes;
}

static void og_on_stor_state(bool ready, void *arg)
{
	svc_report_dep(arg, CTL_DEP_STORAGE, ready ? CTL_DEP_UP : CTL_DEP_DOWN);
}

static void og_svc_free(og_svc *g)
{
	omnigate *og;

	if (!g)
		return;
	og = &g->og;
	og->drain_done = NULL;
	if (og->lev)
		evconnlistener_free(og->lev);
	while (og->conns)
		oap_conn_free(og->conns);   /* first: streams may hold storage calls */
	stor_client_free(og->stor);
	tls_server_free(og->tls);
	wall_free(og->wall);
	free(g);
}

static int og_listen(svc *s, omnigate *og)
{
	char err[CONFIG_ERR_MAX];

	if (!s->cfg.tls_cert_file[0]) {
		log_kv(LOG_LEVEL_ERROR, "omnigate requires tls.cert_file", NULL);
		return -1;
	}
	if (!(og->tls = tls_server_new(&s->cfg, err, sizeof err))) {
		log_kv(LOG_LEVEL_ERROR, "omnigate cannot load TLS", "error", err, NULL);
		return -1;
	}
	if (s->listen_fd < 0)
		return -1;
	og->lev = evconnlistener_new(s->base, og_on_accept, og,
	                             LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_CLOSE_ON_FREE, 0, s->listen_fd);
	if (!og->lev)
		return -1;
	evconnlistener_set_error_cb(og->lev, og_on_accept_error);
	return 0;
}

static void og_wall_configure(svc *s, omnigate *og)
{
	char err[CONFIG_ERR_MAX];

	if (wall_configure(og->wall, &s->cfg, err, sizeof err) != 0)
		log_kv(LOG_LEVEL_WARN, "wall keys or mTLS map not (re)loaded; keeping what was loaded",
		       "error", err, NULL);
}

static void omnigate_on_policy(svc *s)
{
	og_svc *g = s->priv;

	wall_set_policy(g->og.wall, s->policy, s->policy_digest);
}

static int omnigate_start(svc *s)
{
	og_svc *g = calloc(1, sizeof *g);

	if (!g)
		return -1;
	g->s = s;
	og_init(&g->og, s->base);
	if (!(g->og.wall = wall_new())) {
		free(g);
		return -1;
	}
	og_wall_configure(s, &g->og);
	wall_set_policy(g->og.wall, s->policy, s->policy_digest);
	og_limits_from(&g->og.lim, &s->cfg);
	g->og.stor = objstore_client_new(s->base, &s->cfg);
	if (g->og.stor)
		stor_client_on_state(g->og.stor, og_on_stor_state, s);
	if (!g->og.stor || og_listen(s, &g->og) < 0) {
		log_kv(LOG_LEVEL_ERROR, "omnigate cannot serve its listener", NULL);
		og_svc_free(g);
		return -1;
	}
	s->priv = g;
	return 0;
}

static void omnigate_reload(svc *s)
{
	og_svc *g = s->priv;
	char err[CONFIG_ERR_MAX];

	og_limits_from(&g->og.lim, &s->cfg);
	og_wall_configure(s, &g->og);
	/* New connections get the new certificate; on error the old one stays. */
	if (tls_server_reload(g->og.tls, &s->cfg, err, sizeof err) < 0)
		log_kv(LOG_LEVEL_ERROR, "omnigate TLS reload failed, keeping the old certificate",
		       "error", err, NULL);
}

static void omnigate_drained(void *arg)
{
	svc_drained(arg);
}

static void omnigate_drain(svc *s)
{
	og_svc *g = s->priv;
	omnigate *og = &g->og;
	oap_conn *c, *next;

	og->draining = true;
	og->drain_done = omnigate_drained;
	og->drain_arg = s;
	if (og->lev)
		(void)evconnlistener_disable(og->lev);
	for (c = og->conns; c; c = next) {
		next = oap_conn_next(c);
		oap_conn_drain(c);
	}
	if (og->nconns == 0) {
		og->drain_done = NULL;
		svc_drained(s);
	}
}

static void omnigate_stop(svc *s)
{
	og_svc_free(s->priv);
	s->priv = NULL;
}

const svc_ops omnigate_ops = {
	.role = "omnigate",
	.policy = omnigate_on_policy,
	.start = omnigate_start,
	.reload = omnigate_reload,
	.drain = omnigate_drain,
	.stop = omnigate_stop,
};
