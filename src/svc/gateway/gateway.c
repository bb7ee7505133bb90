/*
 * gateway.c — the public HTTP gateway service (one process per worker; all
 * workers accept on the listener the supervisor bound): its start-up,
 * the wall as the HTTP core's gate, reload and drain. The object routes
 * (table, dispatch and handlers) live in objects*.c; storage is reached
 * through one stor_client per worker on <runtime_dir>/storage.sock.
 *
 * The name routes (names*.c) reach the index service through an index_client
 * on <runtime_dir>/index.sock when `services` lists "index".
 *
 * Every object and name route passes the wall (core/wall.c) as the HTTP core's gate:
 * Auth → Policy → Quota before the handler runs. The policy in force comes
 * from the supervisor (svc.h, CTL_POLICY); /healthz is admin class, ungated.
 * Before the wall, the gate asks cors.c: a preflight OPTIONS is admitted
 * without a token (and without a body), a write from an Origin not in
 * gateway.cors_origins is refused.
 *
 * Every route is HTTP_ROUTE_STREAM_BODY, so the gateway never buffers a
 * request body. Object uploads (PUT/POST /o, PUT /o/{b3}) are
 * HTTP_ROUTE_UPLOAD: their body cap is the object cap (storage.max_object,
 * 1 GiB by default); every other body (names, social, mailbox JSON) is
 * held to limits.max_body (a small cap) by the core, and to its route's
 * own cap (NAMES_BODY_MAX, ...) by its handler, whichever is smaller.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/net/http.h"
#include "core/metrics/metrics.h"
#include "core/objects/objstore.h"
#include "core/objects/stor_client.h"
#include "core/tls.h"
#include "core/audit/audit_client.h"
#include "core/auth/wall.h"
#include "lib/b3.h"
#include "lib/util.h"
#include "lib/log.h"
#include "core/objects/mediatype.h"
#include "core/search/search_client.h"
#include "svc/gateway/cors.h"
#include "svc/gateway/mailbox_routes.h"
#include "svc/gateway/media.h"
#include "svc/gateway/search_route.h"
#include "svc/gateway/names.h"
#include "svc/gateway/objects.h"
#include "svc/gateway/sniff.h"
#include "svc/gateway/social_routes.h"
#include "svc/svc.h"
#include "svc/svc_sandbox.h"

/* How often the worker tells the supervisor whether it is shedding load. */
#define GATEWAY_SHED_POLL_MS 250

typedef struct gateway {
	http_server  *http;
	tls_server   *tls;      /* NULL: plaintext */
	stor_client  *stor;
	index_client *index;    /* NULL: the node runs no index service */
	objects       objects;
	names         names;
	social_routes social;   /* graph and feed (facets); client NULL without the service */
	mbox          mbox;     /* the mailbox routes */
	mb_client    *mb;       /* NULL: the node runs no mailbox service */
	cors          cors;     /* gateway.cors_origins (live reload) */
	search_client *search;  /* NULL: the node runs no search service */
	/* /healthz, objects, names, social, mailbox, media, search */
	http_route    routes[1 + OBJECTS_NROUTES + NAMES_NROUTES + SOCIAL_ROUTES_N + MBOX_NROUTES +
	                     MEDIA_NROUTES + SEARCH_NROUTES];
	wall         *wall;
	struct event *shed_ev;
	bool          shedding; /* last state reported */
	svc          *svc;
	int           worker;
	audit_client *audit;          /* NULL without the audit service */
} gateway;

static const wall_class class_of[] = {
	[HTTP_CLASS_CORE] = WALL_CLASS_CORE, [HTTP_CLASS_FACET] = WALL_CLASS_FACET,
	[HTTP_CLASS_ADMIN] = WALL_CLASS_ADMIN,
};

/* The wall (Auth → Policy → Quota) as the HTTP core's gate. The core keeps
 * the wall's ticket and hands it back to gateway_gate_end when the request
 * is freed; what the verdict borrows lives in the ticket until then. */
/*
 * The body size the wall judges: no Content-Length and not chunked is no
 * body (0), not "unknown". An encoded body (Content-Encoding) is unknown
 * (-1) whatever its wire length: every byte limit — a token's BytesLe, the
 * policy's max_body_bytes, the tenant's byte bucket — counts decoded bytes,
 * so the wall caps it (and reserves quota) as a body of unknown size, and the
 * upload handler holds the decoded bytes to that cap and reports them.
 */
static int64_t gateway_body_bytes(http_req *r)
{
	const char *ce = http_req_header(r, "Content-Encoding");

	if (http_req_body_chunked(r) || (ce && strcasecmp(ce, "identity") != 0))
		return http_req_content_length(r) == 0 ? 0 : -1;
	return http_req_content_length(r) < 0 ? 0 : http_req_content_length(r);
}

/*
 * A holder proof (docs/zk.md): the Ron-Proof field, and what the proof's
 * body digest must be. An object write (POST/PUT /o) is held to it by
 * storage (the digest becomes the upload's expected id); PUT /o/{b3} names
 * it in the path. Two Ron-Proof fields are a malformed proof.
 */
static void gateway_gate_proof(http_req *r, wall_req *rq, uint8_t body_id[B3_OUT_LEN])
{
	const char *proof = http_req_header(r, ZK_PROOF_HEADER);
	const char *path = rq->path, *m = rq->method;
	bool write = strcmp(m, "PUT") == 0 || strcmp(m, "POST") == 0;

	if (proof) {
		rq->proof = http_req_header_count(r, ZK_PROOF_HEADER) > 1 ? "" : proof;
		rq->proof_len = strlen(rq->proof);
	}
	if (write && strcmp(path, "/o") == 0)
		rq->body_digest_enforced = true;
	else if (strcmp(m, "PUT") == 0 && strncmp(path, "/o/", 3) == 0 &&
	         b3_cid_parse(path + 3, strlen(path + 3), body_id) == 0)
		rq->body_id = body_id;
}

static void gateway_gate(http_req *r, void *arg, http_gate_verdict *out)
{
	gateway *g = arg;
	wall_ticket *t;
	uint8_t body_id[B3_OUT_LEN];
	const char *auth = http_req_header(r, "Authorization");
	wall_req rq = {
		.method = http_req_method(r), .path = http_req_path(r),
		.peer = http_req_peer(r, NULL),
		.body_bytes = gateway_body_bytes(r),
		.body_max = g->objects.max_object,
		.cls = class_of[http_req_route_class(r)],
		.mtls_tenant = wall_peer_tenant(g->wall, http_req_peer_cert(r)),
	};

	/* CORS before the wall: a preflight carries no token (browsers send
	 * none) and no body, and still pays the rate and in-flight caps after
	 * the gate; a write from an Origin not listed is refused here; any
	 * other request gets its CORS headers now, so the wall's refusals
	 * carry them too. */
	switch (cors_gate(&g->cors, r)) {
	case CORS_PREFLIGHT:
		out->body_capped = true;
		out->body_cap = 0;
		return;
	case CORS_REFUSE:
		out->status = 403;
		out->code = CORS_REFUSE_CODE;
		out->message = CORS_REFUSE_MESSAGE;
		out->reject = REJECT_CORS_ORIGIN;
		return;
	case CORS_PASS:
		break;
	}
	/* Two Authorization fields are ambiguous (which one would a proxy in
	 * front of us have checked?): refused, never resolved. */
	if (auth && (http_req_header_count(r, "Authorization") > 1 ||
	             !wall_bearer(auth, &rq.token, &rq.token_len)))
		rq.bad_credentials = true;
	gateway_gate_proof(r, &rq, body_id);
	t = wall_check(g->wall, &rq, util_now_ms());
	out->ticket = t;
	out->status = wall_ticket_status(t);
	if (out->status == 0) {
		out->body_capped = wall_ticket_body_cap(t, &out->body_cap);
		return;
	}
	out->code = wall_ticket_code(t);
	out->message = wall_ticket_message(t);
	out->reject = wall_ticket_reject(t);
	/* A capability refusal, one record per tenant, reason and second
	 * however many (a flood of bad tokens cannot flood the log). */
	if (out->status == 401 || out->status == 403) {
		const char *tenant = wall_ticket_tenant(t);
		char key[96];

		if (!tenant || !tenant[0]) {   /* refused before a tenant was known */
			util_peer_key(rq.peer, key, sizeof key);
			tenant = key;
		}
		audit_count(g->audit, "ingress", "capability_refused", reject_name(out->reject), tenant);
	}
	out->retry_after_s = wall_ticket_retry_after(t);
	out->www_authenticate = wall_ticket_challenge(t);
}

/* The request is over: settle the tenant's byte bucket (a chunked body),
 * release the ticket. */
static void gateway_gate_end(void *arg, void *ticket, uint64_t body_bytes)
{
	(void)arg;
	wall_ticket_end(ticket, body_bytes);
}

static void gateway_on_policy(svc *s)
{
	gateway *g = s->priv;

	wall_set_policy(g->wall, s->policy, s->policy_digest);
}

static void gateway_wall_configure(svc *s, gateway *g)
{
	char err[CONFIG_ERR_MAX];

	wall_set_kek(g->wall, s->kek);
	if (wall_configure(g->wall, &s->cfg, err, sizeof err) != 0) {
		log_kv(LOG_LEVEL_WARN, "wall keys or mTLS map not (re)loaded; keeping what was loaded",
		       "error", err, LOG_END);
		audit_key_refusal(g->audit, err);
	}
	/* zk.enabled, but the replay table failed: holder tokens are refused
	 * (fail closed) and /readyz says why. */
	svc_report_dep(s, CTL_DEP_ZK, s->cfg.zk_enabled && !wall_zk_active(g->wall) ?
	               CTL_DEP_DEGRADED : CTL_DEP_UP);
}

/* Readiness reports `degraded` while a worker sheds load. */
static void gateway_on_shed_poll(evutil_socket_t fd, short what, void *arg)
{
	gateway *g = arg;
	bool now = http_server_shedding(g->http);

	(void)fd; (void)what;
	if (now != g->shedding) {
		g->shedding = now;
		svc_report_dep(g->svc, CTL_DEP_CAPACITY, now ? CTL_DEP_DEGRADED : CTL_DEP_UP);
	}
}

static void gateway_on_healthz(http_req *r, void *arg)
{
	gateway *g = arg;
	char body[96];

	snprintf(body, sizeof body, "{\"status\":\"ok\",\"service\":\"gateway\",\"worker\":%d}",
	         g->worker);
	(void)http_reply_json(r, 200, body);
}

/* The core's limits: limits.max_body for JSON and control bodies, the
 * object cap (storage.max_object) for uploads (HTTP_ROUTE_UPLOAD). */
static void gateway_limits(http_limits *l, const mn_config *cfg)
{
	http_limits_from_config(l, cfg);
}

/* The breaker opened or closed: readiness hears it at once. */
static void gateway_on_stor_state(bool ready, void *arg)
{
	svc_report_dep(arg, CTL_DEP_STORAGE, ready ? CTL_DEP_UP : CTL_DEP_DOWN);
}

static int gateway_tls_new(svc *s, gateway *g)
{
	char err[CONFIG_ERR_MAX];

	if (!s->cfg.tls_cert_file[0])
		return 0;
	if (!(g->tls = tls_server_new(&s->cfg, err, sizeof err))) {
		log_kv(LOG_LEVEL_ERROR, "gateway cannot load TLS", "error", err, LOG_END);
		return -1;
	}
	/* HTTP/2 by ALPN (http2.enabled); HTTP/1.1 for every other client. */
	tls_server_set_alpn(g->tls, TLS_ALPN_HTTP11 | (s->cfg.h2_enabled ? TLS_ALPN_H2 : 0u));
	http_server_set_tls(g->http, g->tls, s->cfg.tls_handshake_timeout_ms);
	return 0;
}

/* The mailbox keys the routes read (live reload). */
static void gateway_mbox_limits(gateway *g, const mn_config *cfg)
{
	g->mbox.max_body = (uint32_t)cfg->mailbox_max_body;
	g->mbox.lease_max_ms = cfg->mailbox_lease_max_ms;
	g->mbox.lease_default_ms = cfg->mailbox_lease_default_ms;
}

static void gateway_free(gateway *g)
{
	if (!g)
		return;
	if (g->shed_ev)
		event_free(g->shed_ev);
	http_server_free(g->http);   /* first: it may still hold requests using stor, index */
	sniffq_free(g->objects.sniff);   /* uploads left sniffing finish (stor still there) */
	objcache_free(g->objects.cache);   /* after the connections: their output held its buffers */
	stor_client_free(g->stor);
	index_client_free(g->index);
	social_client_free(g->social.client);
	mb_client_free(g->mb);
	search_client_free(g->search);
	media_types_free(g->objects.types);
	ovl_client_free(g->objects.ovl);
	audit_client_free(g->audit);
	wall_free(g->wall);
	tls_server_free(g->tls);
	free(g);
}

static void gateway_search_config(gateway *g, const mn_config *cfg)
{
	g->objects.search_max_text = (uint32_t)cfg->search_max_text;
	g->objects.search_max_query = cfg->search_max_query;
	g->objects.search_max_limit = cfg->search_max_limit;
}

static int gateway_start(svc *s)
{
	gateway *g = calloc(1, sizeof *g);
	http_server_opts o = { .service = "gateway", .gate = gateway_gate,
	                       .gate_end = gateway_gate_end, .gate_arg = g,
	                       .cors_refusals = true };   /* cors.h */
	struct timeval poll = { 0, GATEWAY_SHED_POLL_MS * 1000 };

	if (!g)
		return -1;
	g->routes[0] = (http_route){ HTTP_M_GET | HTTP_M_HEAD, "/healthz", "/healthz",
	                             HTTP_ROUTE_EXEMPT | HTTP_ROUTE_STREAM_BODY,
	                             gateway_on_healthz, g };
	objects_routes(&g->objects, g->routes + 1);
	names_routes(&g->names, g->routes + 1 + OBJECTS_NROUTES);
	social_routes_table(&g->social, g->routes + 1 + OBJECTS_NROUTES + NAMES_NROUTES);
	mbox_routes(&g->mbox, g->routes + 1 + OBJECTS_NROUTES + NAMES_NROUTES + SOCIAL_ROUTES_N);
	http_route *facets = g->routes + 1 + OBJECTS_NROUTES + NAMES_NROUTES + SOCIAL_ROUTES_N +
	                     MBOX_NROUTES;
	media_routes(&g->objects, facets);
	search_routes(&g->objects, facets + MEDIA_NROUTES);
	o.routes = g->routes;
	o.nroutes = sizeof g->routes / sizeof g->routes[0];
	g->worker = s->worker;
	g->svc = s;
	char writer[32];
	snprintf(writer, sizeof writer, "gateway/%d", s->worker);
	g->audit = audit_client_new(s->base, &s->cfg, writer);   /* NULL: no audit service */
	g->objects.audit = g->audit;
	if (!(g->wall = wall_new())) {
		free(g);
		return -1;
	}
	gateway_wall_configure(s, g);
	wall_set_policy(g->wall, s->policy, s->policy_digest);
	gateway_limits(&o.limits, &s->cfg);
	g->stor = objstore_client_new(s->base, &s->cfg);
	if (g->stor)
		stor_client_on_state(g->stor, gateway_on_stor_state, s);
	g->objects.stor = g->stor;
	g->objects.cache = g->stor ? objcache_new(g->stor, s->cfg.gateway_verified_cache) : NULL;   /* NULL: served without */
	g->objects.max_object = s->cfg.storage_max_object_bytes;
	cors_configure(&g->cors, &s->cfg);
	g->objects.cors = &g->cors;
	if (s->cfg.services & CONFIG_SVC_INDEX)
		g->index = index_client_for(s->base, &s->cfg);
	g->names.index = g->index;
	/* libmagic maps its database now, before the sandbox (its threads
	 * start after it); without it objects without a recorded type are
	 * served as application/octet-stream. */
	if (!(g->objects.sniff = sniffq_new(SNIFF_THREADS)))
		log_kv(LOG_LEVEL_WARN, "libmagic unavailable: media types are not sniffed", LOG_END);
	g->objects.types = media_types_new(g->objects.cache);   /* NULL: every /media asks storage */
	if (s->cfg.services & CONFIG_SVC_SEARCH)
		g->search = search_client_new(s->base, &s->cfg);
	g->objects.search = g->search;
	gateway_search_config(g, &s->cfg);
	g->names.objects = &g->objects;
	if (s->cfg.services & CONFIG_SVC_SOCIAL)
		g->social.client = social_client_for(s->base, &s->cfg);
	g->social.stor = g->stor;
	g->social.cors = &g->cors;
	g->social.page_max = s->cfg.social_page_max;
	if (s->cfg.services & CONFIG_SVC_MAILBOX)
		g->mb = mb_client_for(s->base, &s->cfg);
	g->mbox.mb = g->mb;
	gateway_mbox_limits(g, &s->cfg);
	g->objects.fetch_on_miss = s->cfg.overlay_fetch_on_miss;
	g->objects.range_fetch_max = s->cfg.overlay_range_fetch_max_bytes;
	g->objects.max_ranges = s->cfg.gateway_max_ranges;
	if (s->cfg.services & CONFIG_SVC_OVERLAY)
		g->objects.ovl = ovl_client_new(s->base, &s->cfg);
	g->http = g->stor ? http_server_new(s->base, &o) : NULL;
	g->shed_ev = event_new(s->base, -1, EV_PERSIST, gateway_on_shed_poll, g);
	if (!g->http || !g->shed_ev || event_add(g->shed_ev, &poll) != 0 ||
	    gateway_tls_new(s, g) < 0 || s->listen_fd < 0 ||
	    http_server_listen_fd(g->http, s->listen_fd, true) != 0) {
		log_kv(LOG_LEVEL_ERROR, "gateway cannot serve its listener", LOG_END);
		gateway_free(g);
		return -1;
	}
	s->priv = g;
	/* The sniff threads are made inside the sandbox (Landlock binds only
	 * the threads made after it); svc.c's own enter is then a no-op. */
	if (svc_sandbox_enter(s) != 0 ||
	    (g->objects.sniff && sniffq_start(g->objects.sniff, s->base, SNIFF_JOBS_MAX) != 0)) {
		log_kv(LOG_LEVEL_ERROR, "gateway cannot start its sniff thread", LOG_END);
		s->priv = NULL;
		gateway_free(g);
		return -1;
	}
	return 0;
}

static void gateway_reload(svc *s)
{
	gateway *g = s->priv;
	char err[CONFIG_ERR_MAX];
	http_limits l;

	gateway_search_config(g, &s->cfg);
	gateway_limits(&l, &s->cfg);
	http_server_set_limits(g->http, &l);
	g->objects.max_object = s->cfg.storage_max_object_bytes;
	g->objects.fetch_on_miss = s->cfg.overlay_fetch_on_miss;
	g->objects.range_fetch_max = s->cfg.overlay_range_fetch_max_bytes;
	g->objects.max_ranges = s->cfg.gateway_max_ranges;
	gateway_mbox_limits(g, &s->cfg);
	cors_configure(&g->cors, &s->cfg);
	gateway_wall_configure(s, g);
	/* New connections get the new certificate; on error the old one stays. */
	if (g->tls && tls_server_reload(g->tls, &s->cfg, err, sizeof err) < 0)
		log_kv(LOG_LEVEL_ERROR, "gateway TLS reload failed, keeping the old certificate",
		       "error", err, LOG_END);
}

static void gateway_drained(void *arg)
{
	svc_drained(arg);
}

static void gateway_drain(svc *s)
{
	gateway *g = s->priv;

	audit_client_flush(g->audit);
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
	.policy = gateway_on_policy,
};
