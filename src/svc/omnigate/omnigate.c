/*
 * omnigate.c — the OAP/1 service (docs/oap.md): one process accepting TLS
 * 1.3 connections on the listener the supervisor bound for oap.addr (fd 5),
 * its start-up, connection cap, reload and drain. One connection is
 * oap_conn.c; the object verbs are oap_verbs.c; storage is reached through
 * one stor_client on <runtime_dir>/storage.sock, exactly as the gateway.
 *
 * TLS only (a plaintext OAP listener would carry capability tokens in the
 * clear). The node identity (CTL_IDENTITY, before start) makes the peer
 * plane: a ClientHello naming TLS_PEER_SNI gets the identity certificate
 * and must present one (core/tls.h); without tls.cert_file every
 * connection gets the identity certificate.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/audit/audit_client.h"
#include "core/objects/objstore.h"
#include "core/objects/ovl_client.h"
#include "core/tls.h"
#include "core/auth/wall.h"
#include "lib/log.h"
#include "svc/omnigate/omnigate.h"
#include "svc/svc.h"

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
	og->base = base;
	tbucket_init(&og->log_rate, OG_LOG_PER_S, OG_LOG_PER_S, og_now_ms());
	og->m_in = metrics_get("oap_bytes_in_total", "");
	og->m_out = metrics_get("oap_bytes_out_total", "");
	og->m_conns = metrics_get("oap_open_connections", "");
	og->m_streams = metrics_get("oap_open_streams", "");
	og->m_tls_fail = metrics_get("tls_handshake_failures_total", "");
	reject_prepare(REJECT_FAMILY_OAP);   /* every reason on /metrics from start-up */
	tls_peer_metrics_prepare();
}

void og_count_reject(omnigate *og, reject_reason why, const char *detail)
{
	if (why == REJECT_NONE)
		return;
	reject_count(REJECT_FAMILY_OAP, why);
	if (tbucket_take(&og->log_rate, 1, og_now_ms()))
		log_kv(LOG_LEVEL_INFO, "oap refused", "reason", reject_name(why),
		       "detail", detail ? detail : "-", LOG_END);
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

/* Over the cap the listener closes before any allocation or handshake
 * (there is no answer a TLS client could read without one). */
static void og_on_refuse(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	(void)sa;
	(void)salen;
	og_count_reject(arg, REJECT_CONN_CAP, NULL);
	close(fd);
}

static void og_on_accept(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	(void)oap_conn_accept(arg, fd, sa, salen);
}

static size_t og_live(void *arg)
{
	const omnigate *og = arg;

	return og->nconns;
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
	l->requests_per_second = c->requests_per_second;
	l->node_inflight = c->max_inflight;
	l->min_body_rate = c->min_body_rate;
	l->body_grace_ms = c->body_grace_ms ? c->body_grace_ms : OG_DEFAULT_MS;
}

/* The node-wide stream rate, as the HTTP core's: burst = one second's worth. */
static void og_rate_from(omnigate *og)
{
	uint32_t rps = og->lim.requests_per_second;

	tbucket_init(&og->rate, rps, rps, og_now_ms());
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
	conn_listener_free(og->lst);
	while (og->conns)
		oap_conn_free(og->conns);   /* first: streams may hold storage calls */
	objcache_free(og->cache);
	stor_client_free(og->stor);
	ovl_client_free(og->ovl);
	audit_client_free(og->audit);
	tls_server_free(og->tls);
	tls_peer_free(og->peer);   /* after the server: its SNI switch borrows it */
	wall_free(og->wall);
	free(g);
}

static int og_listen(svc *s, omnigate *og)
{
	char err[CONFIG_ERR_MAX];
	conn_listener_opts o = {
		.on_accept = og_on_accept, .on_refuse = og_on_refuse, .live = og_live,
		.max_conns = og->lim.max_connections, .arg = og,
		.log_msg = "oap accept failed", .own_fd = true,
	};

	if (!(og->peer = tls_peer_new(&s->identity, err, sizeof err))) {
		log_kv(LOG_LEVEL_ERROR, "omnigate cannot make the peer plane", "error", err, LOG_END);
		return -1;
	}
	if (!(og->tls = tls_server_new_peer(&s->cfg, og->peer, err, sizeof err))) {
		log_kv(LOG_LEVEL_ERROR, "omnigate cannot load TLS", "error", err, LOG_END);
		return -1;
	}
	if (s->listen_fd < 0)
		return -1;
	og->lst = conn_listener_new(s->base, s->listen_fd, &o);
	return og->lst ? 0 : -1;
}

static void og_wall_configure(svc *s, omnigate *og)
{
	char err[CONFIG_ERR_MAX];

	wall_set_kek(og->wall, s->kek);
	if (wall_configure(og->wall, &s->cfg, err, sizeof err) != 0) {
		log_kv(LOG_LEVEL_WARN, "wall keys or mTLS map not (re)loaded; keeping what was loaded",
		       "error", err, LOG_END);
		audit_key_refusal(og->audit, err);
	}
	svc_report_dep(s, CTL_DEP_ZK, s->cfg.zk_enabled && !wall_zk_active(og->wall) ?
	               CTL_DEP_DEGRADED : CTL_DEP_UP);   /* as the gateway's */
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
	g->og.audit = audit_client_new(s->base, &s->cfg, "omnigate");   /* before the keys load */
	og_wall_configure(s, &g->og);
	wall_set_policy(g->og.wall, s->policy, s->policy_digest);
	og_limits_from(&g->og.lim, &s->cfg);
	og_rate_from(&g->og);
	g->og.stor = objstore_client_new(s->base, &s->cfg);
	g->og.cache = g->og.stor ? objcache_new(g->og.stor, s->cfg.gateway_verified_cache) : NULL;
	if (g->og.stor)
		stor_client_on_state(g->og.stor, og_on_stor_state, s);
	if (s->cfg.services & CONFIG_SVC_OVERLAY)   /* REPLICATE; NULL: answered 503 */
		g->og.ovl = ovl_client_new(s->base, &s->cfg);
	if (!g->og.stor || og_listen(s, &g->og) < 0) {
		log_kv(LOG_LEVEL_ERROR, "omnigate cannot serve its listener", LOG_END);
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

	uint32_t rps = g->og.lim.requests_per_second;
	og_limits_from(&g->og.lim, &s->cfg);
	if (g->og.lim.requests_per_second != rps)
		og_rate_from(&g->og);
	conn_listener_set_cap(g->og.lst, g->og.lim.max_connections);
	og_wall_configure(s, &g->og);
	/* New connections get the new certificate; on error the old one stays. */
	if (tls_server_reload(g->og.tls, &s->cfg, err, sizeof err) < 0)
		log_kv(LOG_LEVEL_ERROR, "omnigate TLS reload failed, keeping the old certificate",
		       "error", err, LOG_END);
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
	audit_client_flush(og->audit);
	og->drain_done = omnigate_drained;
	og->drain_arg = s;
	if (og->lst)
		conn_listener_enable(og->lst, false);
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
