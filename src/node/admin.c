/*
 * admin.c — the admin plane, served by the supervisor so that it is the last
 * thing to fail: /version, /healthz, /readyz, /metrics, /api/v1/status,
 * /api/v1/providers/{b3} (admin_find.c), POST /api/v1/reload,
 * POST /api/v1/shutdown, and the web console under
 * /ui/ (admin_ui.c, docs/console.md). Bodies: docs/api.md.
 *
 * Mutating calls: with an admin token configured they need
 * `Authorization: Bearer <token>` (compared in constant time); without one
 * they are accepted only from a loopback peer (judged by the socket address,
 * never the Host header). Both write an audit line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "core/audit/audit_client.h"
#include "core/proto/ctl.h"
#include "core/net/http.h"
#include "core/tls.h"
#include "core/metrics/metrics.h"
#include "core/metrics/reject.h"
#include "lib/b3.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mn_build.h"
#include "mn_git.h"
#include "mn_git_ts.h"
#include "node/node.h"

#define ADMIN_BEARER "Bearer "
#define ADMIN_RETRY_AFTER_S 1u
#define ADMIN_BODY_MAX 4096u   /* no admin route takes a body (reload, shutdown: empty) */

static void admin_reply_json(http_req *r, int status, json_t *body)
{
	char *txt = json_dumps(body, JSON_COMPACT);

	json_decref(body);
	if (!txt) {
		(void)http_reply_error(r, 500, "internal", "cannot render body", true, 0);
		return;
	}
	(void)http_reply_json(r, status, txt);
	free(txt);
}

static void admin_on_healthz(http_req *r, void *arg)
{
	(void)arg;
	(void)http_reply_json(r, 200, "{\"status\":\"ok\"}");
}

static void admin_on_version(http_req *r, void *arg)
{
	supervisor *s = arg;
	char why[NODE_PQ_REASON_MAX];
	bool pq = node_pq_posture(why, sizeof why);
	/* features: what this build supports (zk: -Dzk, arti: the Tor transport,
	 * -Dtor); what this run uses is beside it: "zk", "onion", "amnesia". */
	json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:b, s:b, s:b, s:b}, s:b, s:s, s:b, s:b, s:{s:s}}",
		"service", "macronode", "node_id", s->identity.id_text, "onion", s->tor.onion,
		"version", MN_VERSION, "git_sha", MN_GIT_SHA,
		"build_ts", MN_BUILD_TS, "build_id", ctl_build_id(),
		"features", "zk", MN_WITH_ZK, "arti", MN_TOR, "amnesia", 1, "pq", (int)pq,
		"pq", (int)pq, "pq_reason", why,
		"zk", (int)(MN_WITH_ZK && s->cfg.zk_enabled),
		"amnesia", s->cfg.amnesia, "api", "admin", "v1");

	if (!b) {
		(void)http_reply_error(r, 500, "internal", "cannot render body", true, 0);
		return;
	}
	admin_reply_json(r, 200, b);
}

static void admin_on_readyz(http_req *r, void *arg)
{
	supervisor *s = arg;
	ready_verdict v;
	char *body = readiness_report(s, &v);

	if (!body) {
		(void)http_reply_error(r, 500, "internal", "cannot render readiness", true, 0);
		return;
	}
	if (v == READY_NOT) {
		char ra[16];
		snprintf(ra, sizeof ra, "%u", ADMIN_RETRY_AFTER_S);
		(void)http_resp_header(r, "Retry-After", ra);
	}
	(void)http_reply_json(r, v == READY_NOT ? 503 : 200, body);
	free(body);
}

static void admin_refresh_gauges(supervisor *s)
{
	char labels[160], sha[64], ver[64];

	(void)metrics_label_escape(ver, sizeof ver, MN_VERSION);
	(void)metrics_label_escape(sha, sizeof sha, MN_GIT_SHA);
	snprintf(labels, sizeof labels, "version=\"%s\",git_sha=\"%s\"", ver, sha);
	metrics_gauge_set(metrics_get("build_info", labels), 1);
	metrics_gauge_set(metrics_get("process_start_time_seconds", ""),
	                  (int64_t)(s->start_wall_ms / 1000));
}

static void admin_on_metrics(http_req *r, void *arg)
{
	char *txt = NULL;
	size_t len = 0;

	admin_refresh_gauges(arg);
	sup_keys_gauges(arg);
	if (metrics_render(&txt, &len) != 0) {
		(void)http_reply_error(r, 500, "internal", "cannot render metrics", true, 0);
		return;
	}
	(void)http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", txt, len);
	free(txt);
}

static void admin_on_status(http_req *r, void *arg)
{
	char *body = readiness_status(arg);

	if (!body) {
		(void)http_reply_error(r, 500, "internal", "cannot render status", true, 0);
		return;
	}
	(void)http_reply_json(r, 200, body);
	free(body);
}

/* Constant-time, length-independent: compare BLAKE3 digests of both strings. */
static bool admin_token_matches(const char *given, size_t glen, const char *want)
{
	uint8_t a[B3_OUT_LEN], b[B3_OUT_LEN];
	bool ok;

	b3_hash(given, glen, a);
	b3_hash(want, strlen(want), b);
	ok = sodium_memcmp(a, b, sizeof a) == 0;
	sodium_memzero(a, sizeof a);
	sodium_memzero(b, sizeof b);
	return ok;
}

/* 0 if the caller may mutate; otherwise answers 401/403 and returns -1. */
static int admin_authorize(supervisor *s, http_req *r, const char *action)
{
	char peer[128], key[96];
	const char *why = NULL;
	socklen_t plen;

	util_addr_str(http_req_peer(r, &plen), peer, sizeof peer);
	if (s->cfg.admin_token) {
		const char *h = http_req_header(r, "Authorization");
		size_t bl = sizeof ADMIN_BEARER - 1;
		if (!h || strncmp(h, ADMIN_BEARER, bl) != 0 ||
		    !admin_token_matches(h + bl, strlen(h + bl), s->cfg.admin_token))
			why = "bad or missing admin token";
	} else if (!http_req_peer_is_loopback(r)) {
		why = "no admin token configured; mutating calls only from loopback";
	} else if (!admin_ui_origin_ok(s, http_req_header(r, "Origin"))) {
		/* Loopback is not enough when a browser sends it: any page the
		 * operator has open could POST here (cross-site, no preflight). */
		why = "no admin token configured; a browser page may call this only from the admin plane's own origin";
	}
	if (!why)
		return 0;
	reject_count(REJECT_FAMILY_NODE, REJECT_UNAUTH);
	log_kv(LOG_LEVEL_WARN, "audit", "kind", "admin_refused", "action", action, "peer", peer,
	       "reason", why, "corr_id", http_req_corr_id(r), LOG_END);
	/* Anyone who reaches the admin port can be refused: aggregated per
	 * action, peer and second (as capability refusals), so a flood of
	 * refused calls cannot fill the audit queue or push history out. */
	util_peer_key(http_req_peer(r, &plen), key, sizeof key);
	audit_count(s->audit, "admin", action, "unauthorized", key);
	(void)http_resp_header(r, "WWW-Authenticate", "Bearer");
	(void)http_reply_error(r, 401, "unauthorized", why, false, 0);
	return -1;
}

static void admin_audit(supervisor *s, http_req *r, const char *action, const char *result,
                        const char *error)
{
	char peer[128];
	socklen_t plen;

	util_addr_str(http_req_peer(r, &plen), peer, sizeof peer);
	log_kv(LOG_LEVEL_INFO, "audit", "kind", "admin_action", "action", action, "peer", peer,
	       "result", result, "corr_id", http_req_corr_id(r), LOG_END);
	audit_emit(s->audit, "admin", action, result, json_pack("{s:s}", "peer", peer), NULL,
	           error ? json_pack("{s:s, s:s}", "corr_id", http_req_corr_id(r), "error", error)
	                 : json_pack("{s:s}", "corr_id", http_req_corr_id(r)));
}

static void admin_on_reload(http_req *r, void *arg)
{
	supervisor *s = arg;
	char err[CONFIG_ERR_MAX];

	if (admin_authorize(s, r, "reload") != 0)
		return;
	if (supervisor_reload(s, "POST /api/v1/reload", err, sizeof err) != 0) {
		admin_audit(s, r, "reload", "refused", err);
		(void)http_reply_error(r, 422, "config_invalid", err, false, 0);
		return;
	}
	admin_audit(s, r, "reload", "ok", NULL);
	(void)http_reply_json(r, 202, "{\"status\":\"reloaded\"}");
}

static void admin_on_shutdown(http_req *r, void *arg)
{
	supervisor *s = arg;

	if (admin_authorize(s, r, "shutdown") != 0)
		return;
	admin_audit(s, r, "shutdown", "accepted", NULL);
	(void)http_reply_json(r, 202, "{\"status\":\"draining\"}");
	supervisor_shutdown(s, "POST /api/v1/shutdown");
}

static void admin_limits(const mn_config *c, http_limits *l)
{
	http_limits_from_config(l, c);
	/* No admin route takes a body of any size, and bodies are read before the
	 * token is checked: min(ADMIN_BODY_MAX, limits.max_body), so raising
	 * limits.max_body for the gateway's JSON never grows what an unknown
	 * peer can make the supervisor hold (docs/api.md, "Body caps"). */
	l->max_upload_bytes = 0;   /* no upload route: h2 DATA before admission is held to this cap too */
	if (l->max_body_bytes > ADMIN_BODY_MAX) {
		l->max_body_bytes = ADMIN_BODY_MAX;
		l->body_cap_name = " (the admin plane's body cap)";
	}
	l->max_inflight = 64;              /* the admin plane is exempt from shedding */
	l->requests_per_second = 0;
	l->max_connections = 256;
}

void admin_apply_limits(supervisor *s)
{
	http_limits l;

	if (!s->admin)
		return;
	admin_limits(&s->cfg, &l);
	http_server_set_limits(s->admin, &l);
}

/* admin.tls: TLS 1.3 with the node's certificate pair and ALPN h2 and
 * http/1.1 (h2 when http2.enabled), mTLS with admin.client_ca_file. */
static int admin_tls_start(supervisor *s)
{
	char err[CONFIG_ERR_MAX];

	if (!s->cfg.admin_tls)
		return 0;
	if (!(s->admin_tls = tls_server_new_admin(&s->cfg, err, sizeof err))) {
		log_kv(LOG_LEVEL_ERROR, "admin plane TLS", "error", err, LOG_END);
		return -1;
	}
	tls_server_set_alpn(s->admin_tls, TLS_ALPN_HTTP11 | (s->cfg.h2_enabled ? TLS_ALPN_H2 : 0u));
	http_server_set_tls(s->admin, s->admin_tls, s->cfg.tls_handshake_timeout_ms);
	return 0;
}

void admin_tls_reload(supervisor *s)
{
	char err[CONFIG_ERR_MAX];

	if (s->admin_tls && tls_server_reload(s->admin_tls, &s->cfg, err, sizeof err) != 0)
		log_kv(LOG_LEVEL_ERROR, "admin plane TLS reload refused; the old certificate stays",
		       "error", err, LOG_END);
}

int admin_start(supervisor *s)
{
	static http_route routes[] = {
		{ HTTP_M_GET | HTTP_M_HEAD, "/healthz", "/healthz", HTTP_ROUTE_EXEMPT, admin_on_healthz, NULL },
		{ HTTP_M_GET | HTTP_M_HEAD, "/readyz", "/readyz", HTTP_ROUTE_EXEMPT, admin_on_readyz, NULL },
		{ HTTP_M_GET | HTTP_M_HEAD, "/version", "/version", HTTP_ROUTE_EXEMPT, admin_on_version, NULL },
		{ HTTP_M_GET | HTTP_M_HEAD, "/metrics", "/metrics", HTTP_ROUTE_EXEMPT, admin_on_metrics, NULL },
		{ HTTP_M_GET | HTTP_M_HEAD, "/api/v1/status", "/api/v1/status", HTTP_ROUTE_EXEMPT, admin_on_status, NULL },
		{ HTTP_M_GET | HTTP_M_HEAD, "/api/v1/providers/", "/api/v1/providers/{b3}",
		  HTTP_ROUTE_EXEMPT | HTTP_ROUTE_PREFIX, admin_on_providers, NULL },
		{ HTTP_M_GET | HTTP_M_HEAD, "/api/v1/audit/checkpoint", "/api/v1/audit/checkpoint",
		  HTTP_ROUTE_EXEMPT, admin_on_audit_checkpoint, NULL },
		{ HTTP_M_GET | HTTP_M_HEAD, "/api/v1/audit/proof", "/api/v1/audit/proof",
		  HTTP_ROUTE_EXEMPT, admin_on_audit_proof, NULL },
		{ HTTP_M_GET | HTTP_M_HEAD, "/api/v1/audit/recent", "/api/v1/audit/recent",
		  HTTP_ROUTE_EXEMPT, admin_on_audit_recent, NULL },
		{ HTTP_M_POST, "/api/v1/reload", "/api/v1/reload", HTTP_ROUTE_EXEMPT, admin_on_reload, NULL },
		{ HTTP_M_POST, "/api/v1/shutdown", "/api/v1/shutdown", HTTP_ROUTE_EXEMPT, admin_on_shutdown, NULL },
		{ HTTP_M_GET | HTTP_M_HEAD, "/ui", "/ui", HTTP_ROUTE_EXEMPT, admin_ui_on_request, NULL },
		{ HTTP_M_GET | HTTP_M_HEAD, "/ui/", "/ui/", HTTP_ROUTE_EXEMPT | HTTP_ROUTE_PREFIX,
		  admin_ui_on_request, NULL },
	};
	http_server_opts o = { .service = "admin", .routes = routes,
	                       .nroutes = sizeof routes / sizeof routes[0] };

	for (size_t i = 0; i < o.nroutes; i++)
		routes[i].arg = s;
	admin_limits(&s->cfg, &o.limits);
	admin_refresh_gauges(s);
	s->admin = http_server_new(s->base, &o);
	if (!s->admin || admin_tls_start(s) != 0)
		return -1;
	if (http_server_listen_fd(s->admin, s->admin_fd, true) != 0)
		return -1;
	s->admin_fd = -1; /* owned by the server now */
	return 0;
}
