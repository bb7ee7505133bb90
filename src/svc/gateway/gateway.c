/*
 * gateway.c — the public HTTP gateway service (one process per worker; all
 * workers accept on the listener the supervisor bound): its start-up,
 * routes, reload and drain. The object routes live in objects_get.c and
 * objects_put.c; storage is reached through one stor_client per worker on
 * <runtime_dir>/storage.sock.
 *
 * Every route is HTTP_ROUTE_STREAM_BODY, so the gateway never buffers a
 * request body; that is what makes it safe to set the core's body cap
 * (limits.max_body_bytes) to the object cap (storage.max_object),
 * which may be far larger than limits.max_body_bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/http.h"
#include "core/metrics.h"
#include "core/objstore.h"
#include "core/stor_client.h"
#include "core/tls.h"
#include "lib/log.h"
#include "svc/gateway/objects.h"
#include "svc/svc.h"

typedef struct gateway {
	http_server *http;
	tls_server  *tls;      /* NULL: plaintext */
	stor_client *stor;
	objects      objects;
	int          worker;
} gateway;

static void gateway_on_healthz(http_req *r, void *arg)
{
	gateway *g = arg;
	char body[96];

	snprintf(body, sizeof body, "{\"status\":\"ok\",\"service\":\"gateway\",\"worker\":%d}",
	         g->worker);
	(void)http_reply_json(r, 200, body);
}

/* The core's limits, with the body cap raised (or lowered) to the object
 * cap: every gateway route streams its body, none buffers it. */
static void gateway_limits(http_limits *l, const mn_config *cfg)
{
	http_limits_from_config(l, cfg);
	l->max_body_bytes = cfg->storage_max_object_bytes;
}

/* The breaker opened or closed: readiness hears it at once. */
static void gateway_on_stor_state(bool ready, void *arg)
{
	svc_report_dep(arg, "storage", ready);
}

static int gateway_tls_new(svc *s, gateway *g)
{
	char err[CONFIG_ERR_MAX];

	if (!s->cfg.tls_cert_file[0])
		return 0;
	if (!(g->tls = tls_server_new(&s->cfg, err, sizeof err))) {
		log_kv(LOG_LEVEL_ERROR, "gateway cannot load TLS", "error", err, NULL);
		return -1;
	}
	http_server_set_tls(g->http, g->tls, s->cfg.tls_handshake_timeout_ms);
	return 0;
}

static void gateway_free(gateway *g)
{
	if (!g)
		return;
	http_server_free(g->http);   /* first: it may still hold requests using stor */
	stor_client_free(g->stor);
	tls_server_free(g->tls);
	free(g);
}

static int gateway_start(svc *s)
{
	static http_route routes[] = {
		{ HTTP_M_GET | HTTP_M_HEAD, "/healthz", "/healthz",
		  HTTP_ROUTE_EXEMPT | HTTP_ROUTE_STREAM_BODY, gateway_on_healthz, NULL },
		{ HTTP_M_POST | HTTP_M_PUT, "/o", "/o", HTTP_ROUTE_STREAM_BODY, objects_on_put, NULL },
		{ HTTP_M_GET | HTTP_M_HEAD | HTTP_M_PUT, "/o/", "/o/{b3}",
		  HTTP_ROUTE_PREFIX | HTTP_ROUTE_STREAM_BODY, objects_on_id, NULL },
	};
	gateway *g = calloc(1, sizeof *g);
	http_server_opts o = { .service = "gateway", .routes = routes,
	                       .nroutes = sizeof routes / sizeof routes[0] };

	if (!g)
		return -1;
	g->worker = s->worker;
	routes[0].arg = g;
	routes[1].arg = &g->objects;
	routes[2].arg = &g->objects;
	gateway_limits(&o.limits, &s->cfg);
	g->stor = objstore_client_new(s->base, &s->cfg);
	if (g->stor)
		stor_client_on_state(g->stor, gateway_on_stor_state, s);
	g->objects.stor = g->stor;
	g->objects.max_object = s->cfg.storage_max_object_bytes;
	g->http = g->stor ? http_server_new(s->base, &o) : NULL;
	if (!g->http || gateway_tls_new(s, g) < 0 || s->listen_fd < 0 ||
	    http_server_listen_fd(g->http, s->listen_fd, true) != 0) {
		log_kv(LOG_LEVEL_ERROR, "gateway cannot serve its listener", NULL);
		gateway_free(g);
		return -1;
	}
	s->priv = g;
	return 0;
}

static void gateway_reload(svc *s)
{
	gateway *g = s->priv;
	char err[CONFIG_ERR_MAX];
	http_limits l;

	gateway_limits(&l, &s->cfg);
	http_server_set_limits(g->http, &l);
	g->objects.max_object = s->cfg.storage_max_object_bytes;
	/* New connections get the new certificate; on error the old one stays. */
	if (g->tls && tls_server_reload(g->tls, &s->cfg, err, sizeof err) < 0)
		log_kv(LOG_LEVEL_ERROR, "gateway TLS reload failed, keeping the old certificate",
		       "error", err, NULL);
}

static void gateway_drained(void *arg)
{
	svc_drained(arg);
}

static void gateway_drain(svc *s)
{
	gateway *g = s->priv;

	http_server_drain(g->http, gateway_drained, s);
}

static void gateway_stop(svc *s)
{
	gateway_free(s->priv);
	s->priv = NULL;
}

const svc_ops gateway_ops = {
	.role = "gateway",
	.start = gateway_start,
	.reload = gateway_reload,
	.drain = gateway_drain,
	.stop = gateway_stop,
};
