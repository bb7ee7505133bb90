/*
 * gateway.c — the public HTTP gateway service (one process per worker; all
 * workers accept on the listener the supervisor bound). In this release it
 * answers GET/HEAD /healthz; the object routes come with the content plane.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/http.h"
#include "core/metrics.h"
#include "lib/log.h"
#include "svc/svc.h"

typedef struct gateway {
	http_server *http;
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

static int gateway_start(svc *s)
{
	static http_route routes[] = {
		{ HTTP_M_GET | HTTP_M_HEAD, "/healthz", "/healthz", HTTP_ROUTE_EXEMPT,
		  gateway_on_healthz, NULL },
	};
	gateway *g = calloc(1, sizeof *g);
	http_server_opts o = { .service = "gateway", .routes = routes,
	                       .nroutes = sizeof routes / sizeof routes[0] };

	if (!g)
		return -1;
	g->worker = s->worker;
	routes[0].arg = g;
	http_limits_from_config(&o.limits, &s->cfg);
	g->http = http_server_new(s->base, &o);
	if (!g->http || s->listen_fd < 0 || http_server_listen_fd(g->http, s->listen_fd, true) != 0) {
		log_kv(LOG_LEVEL_ERROR, "gateway cannot serve its listener", NULL);
		http_server_free(g->http);
		free(g);
		return -1;
	}
	s->priv = g;
	return 0;
}

static void gateway_reload(svc *s)
{
	gateway *g = s->priv;
	http_limits l;

	http_limits_from_config(&l, &s->cfg);
	http_server_set_limits(g->http, &l);
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
	gateway *g = s->priv;

	if (!g)
		return;
	http_server_free(g->http);
	free(g);
	s->priv = NULL;
}

const svc_ops gateway_ops = {
	.role = "gateway",
	.start = gateway_start,
	.reload = gateway_reload,
	.drain = gateway_drain,
	.stop = gateway_stop,
};
