/*
 * admin_ui.c — the web console on the admin plane (docs/console.md):
 *
 *   GET /ui            308 to /ui/
 *   GET /ui/           index.html; /ui/console.css, /ui/console.js: the
 *                      files of src/node/ui/, compiled into the binary
 *   GET /ui/config.json  what the page needs and /api/v1/status lacks: the
 *                      gateway's origin, whether POSTs need the admin
 *                      token, gateway.cors_origins, the quotas and limits
 *
 * Every answer carries a strict Content-Security-Policy: scripts and styles
 * from this origin only (no inline code, no eval), connections to this
 * origin and the gateway's, no framing, no plugins, no forms; and
 * X-Content-Type-Options: nosniff. The page reads only what the admin
 * plane already shows anonymously; anything that changes state goes through
 * the POST routes, which need the admin token (admin.c) — the page keeps
 * the token in a JavaScript variable, never in storage or a cookie.
 *
 * admin_ui_origin_ok is the admin plane's check of a browser's Origin on
 * those POSTs when no admin token is configured (loopback only): a page of
 * another origin open in the operator's browser must not be able to reload
 * or stop the node with a simple cross-site POST.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "core/net/http.h"
#include "node/node.h"
#include "node/ui/ui_assets.h"

#define UI_PREFIX     "/ui/"
#define UI_INDEX      "index.html"
#define UI_ORIGIN_MAX 192   /* "https://" + host + ":port" */
#define UI_CSP_MAX    512
#define UI_HOST_MAX   128   /* a Host header we echo into the CSP */

/* "ip:port" / "[ip6]:port" → host and port (borrowed into out buffers). */
static int ui_split_addr(const char *addr, char *host, size_t hl, const char **port)
{
	const char *colon = strrchr(addr, ':');
	size_t n;

	if (!colon)
		return -1;
	n = (size_t)(colon - addr);
	if (n == 0 || n >= hl)
		return -1;
	memcpy(host, addr, n);
	host[n] = '\0';
	*port = colon + 1;
	return 0;
}

static bool ui_host_is_any(const char *host)
{
	return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "[::]") == 0;
}

/* A Host header's host part, if it is a plain name or address (it goes into
 * a header value: no ';', no spaces, no quotes). */
static bool ui_host_from_header(const char *h, char *out, size_t len)
{
	size_t n;

	if (!h)
		return false;
	n = h[0] == '[' ? strcspn(h, "]") + 1 : strcspn(h, ":");
	if (n == 0 || n >= len || n >= UI_HOST_MAX || (h[0] == '[' && !strchr(h, ']')))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = h[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == ':' || c == '[' || c == ']'))
			return false;
	}
	memcpy(out, h, n);
	out[n] = '\0';
	return true;
}

/* The gateway's origin as the browser that asked will see it: the
 * gateway's address, or — when it listens on every address — the host the
 * browser used for the admin plane with the gateway's port. "" if unknown. */
static void ui_gateway_origin(const supervisor *s, http_req *r, char *out, size_t len)
{
	char host[UI_HOST_MAX];
	const char *port;
	const char *scheme = s->cfg.tls_cert_file[0] ? "https" : "http";

	out[0] = '\0';
	if (ui_split_addr(s->cfg.gateway_addr, host, sizeof host, &port) != 0)
		return;
	if (ui_host_is_any(host) && !ui_host_from_header(http_req_header(r, "Host"), host, sizeof host))
		return;
	snprintf(out, len, "%s://%s:%s", scheme, host, port);
}

static void ui_security_headers(supervisor *s, http_req *r)
{
	char gw[UI_ORIGIN_MAX], csp[UI_CSP_MAX];

	ui_gateway_origin(s, r, gw, sizeof gw);
	snprintf(csp, sizeof csp,
	         "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
	         "connect-src 'self'%s%s; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
	         gw[0] ? " " : "", gw);
	(void)http_resp_header(r, "Content-Security-Policy", csp);
	(void)http_resp_header(r, "X-Content-Type-Options", "nosniff");
	(void)http_resp_header(r, "Referrer-Policy", "no-referrer");
	(void)http_resp_header(r, "Cache-Control", "no-cache");
}

static json_t *ui_origins_json(const char *list)
{
	json_t *a = json_array();

	for (const char *p = list; a && *p;) {
		size_t n = strcspn(p, ",");
		json_array_append_new(a, json_stringn(p, n));
		p += n + (p[n] == ',');
	}
	return a;
}

static void ui_on_config(supervisor *s, http_req *r)
{
	char gw[UI_ORIGIN_MAX];
	const mn_config *c = &s->cfg;
	json_t *b;
	char *txt;

	ui_gateway_origin(s, r, gw, sizeof gw);
	b = json_pack("{s:s, s:s, s:b, s:o, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I}}",
		"gateway_origin", gw, "gateway_addr", c->gateway_addr,
		"admin_token_required", c->admin_token != NULL,
		"cors_origins", ui_origins_json(c->gateway_cors_origins),
		"quota", "requests_per_second", (json_int_t)c->quota_rps,
		"burst", (json_int_t)c->quota_burst, "bytes_per_second", (json_int_t)c->quota_bytes_per_s,
		"bytes_burst", (json_int_t)c->quota_bytes_burst,
		"max_tenants", (json_int_t)c->quota_max_tenants,
		"limits", "requests_per_second", (json_int_t)c->requests_per_second,
		"max_inflight", (json_int_t)c->max_inflight,
		"max_object", (json_int_t)c->storage_max_object_bytes);
	txt = b ? json_dumps(b, JSON_COMPACT) : NULL;
	json_decref(b);
	if (!txt) {
		(void)http_reply_error(r, 500, "internal", "cannot render body", true, 0);
		return;
	}
	(void)http_resp_header(r, "Cache-Control", "no-store");
	(void)http_reply_json(r, 200, txt);
	free(txt);
}

void admin_ui_on_request(http_req *r, void *arg)
{
	supervisor *s = arg;
	const char *path = http_req_path(r);
	const char *name;

	if (strcmp(path, "/ui") == 0) {
		(void)http_resp_header(r, "Location", UI_PREFIX);
		(void)http_reply(r, 308, NULL, NULL, 0);
		return;
	}
	name = path + strlen(UI_PREFIX);   /* prefix route */
	if (!*name)
		name = UI_INDEX;
	if (strcmp(name, "config.json") == 0) {
		ui_on_config(s, r);
		return;
	}
	for (size_t i = 0; i < ui_assets_len; i++) {
		if (strcmp(name, ui_assets[i].name) != 0)
			continue;
		ui_security_headers(s, r);
		(void)http_reply(r, 200, ui_assets[i].type, ui_assets[i].data, ui_assets[i].len);
		return;
	}
	(void)http_reply_error(r, 404, "not_found", "no such console file", false, 0);
}

bool admin_ui_origin_ok(const supervisor *s, const char *origin)
{
	char host[UI_HOST_MAX], own[UI_ORIGIN_MAX];
	const char *port;
	const char *scheme = s->cfg.admin_tls ? "https" : "http";

	if (!origin)
		return true;   /* not a browser's cross-site request (curl, scripts) */
	snprintf(own, sizeof own, "%s://%s", scheme, s->cfg.admin_addr);
	if (strcmp(origin, own) == 0)
		return true;
	if (ui_split_addr(s->cfg.admin_addr, host, sizeof host, &port) != 0)
		return false;
	snprintf(own, sizeof own, "%s://localhost:%s", scheme, port);
	return strcmp(origin, own) == 0;
}
