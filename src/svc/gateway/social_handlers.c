/*
 * social_handlers.c — the gateway's graph and feed routes, their inputs
 * (see social_routes.h): the user in the path and the token's tenant, the
 * query (cursor, limit), PUT/DELETE /g/{user}/follows/{other}, GET
 * /g/{user}/followers and /following, POST /feed (its body, the stored
 * check) and GET /feed. Every refusal goes through soc_refuse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/auth/wall.h"
#include "lib/b3.h"
#include "svc/gateway/cid_body.h"
#include "svc/gateway/social_routes_int.h"

#define GRAPH_PREFIX  "/g/"

/* ---- inputs ----------------------------------------------------------------- */

/* The token's tenant as a user into out. false: none, or not a user name. */
static bool soc_tenant(http_req *r, char out[SOCIAL_USER_MAX + 1])
{
	const wall_ticket *t = http_req_gate_ticket(r);
	const char *k = t ? wall_ticket_tenant(t) : NULL;
	size_t n;

	if (!k || strncmp(k, "t:", 2) != 0)
		return false;
	k += 2;
	n = strlen(k);
	if (!social_user_check(k, n))
		return false;
	memcpy(out, k, n + 1);
	return true;
}

/* One path segment s[0..n) as a user into out. */
static bool soc_user(const char *s, size_t n, char out[SOCIAL_USER_MAX + 1])
{
	if (!social_user_check(s, n))
		return false;
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

/* "cursor=…&limit=…" (each at most once, nothing else) into x->q. -1: answered. */
static int soc_take_query(soc_req *x, const char *qs)
{
	bool seen_c = false, seen_l = false;

	x->q.limit = (uint16_t)(x->s->page_max < SOCIAL_LIMIT_DEFAULT ? x->s->page_max
	                                                                : SOCIAL_LIMIT_DEFAULT);
	while (*qs) {
		const char *amp = strchr(qs, '&'), *end = amp ? amp : qs + strlen(qs);
		const char *eq = memchr(qs, '=', (size_t)(end - qs));
		size_t vlen = eq ? (size_t)(end - eq - 1) : 0;
		char msg[128];

		if (eq && (size_t)(eq - qs) == 6 && !strncmp(qs, "cursor", 6) && !seen_c) {
			seen_c = true;
			if (vlen == 0 || vlen > SOCIAL_CURSOR_MAX ||
			    strspn(eq + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
			    < vlen) {
				soc_refuse(x, 400, "bad_cursor", "bad_cursor",
				           "cursor: not one this node issued");
				return -1;
			}
			memcpy(x->q.cursor, eq + 1, vlen);
			x->q.cursor[vlen] = '\0';
		} else if (eq && (size_t)(eq - qs) == 5 && !strncmp(qs, "limit", 5) && !seen_l) {
			unsigned long v = 0;
			seen_l = true;
			for (size_t i = 0; i < vlen && i < 4 && eq[1 + i] >= '0' && eq[1 + i] <= '9'; i++)
				v = v * 10 + (unsigned long)(eq[1 + i] - '0');
			if (vlen == 0 || vlen > 3 || strspn(eq + 1, "0123456789") < vlen || v == 0 ||
			    v > x->s->page_max) {
				snprintf(msg, sizeof msg, "limit: want an integer 1..%u (social.page_max)",
				         x->s->page_max);
				soc_refuse(x, 400, "bad_limit", "bad_limit", msg);
				return -1;
			}
			x->q.limit = (uint16_t)v;
		} else {
			soc_refuse(x, 400, "bad_request", "bad_request",
			           "query: only cursor= and limit= are accepted, each at most once");
			return -1;
		}
		qs = amp ? amp + 1 : end;
	}
	return 0;
}

/* A route that takes no body: any body is refused. -1: answered. */
static int soc_no_body(soc_req *x)
{
	if (http_req_body_chunked(x->r) || http_req_content_length(x->r) > 0) {
		soc_refuse(x, 413, "payload_too_large", "too_large", "this route takes no body");
		return -1;
	}
	return 0;
}

/* ---- /g/{user}/… ------------------------------------------------------------ */

static void graph_write(soc_req *x, const char *other, size_t olen)
{
	char me[SOCIAL_USER_MAX + 1];
	unsigned m = http_req_method_bit(x->r);

	if (m != HTTP_M_PUT && m != HTTP_M_DELETE) {
		(void)http_reply_error(x->r, 405, "method_not_allowed",
		                       "/g/{user}/follows/{other} takes PUT or DELETE", false, 0);
		soc_end(x);
		return;
	}
	if (!soc_user(other, olen, x->q.other)) {
		soc_refuse(x, 400, "bad_user", "bad_request",
		           "other: want 1..64 of [A-Za-z0-9._-]");
		return;
	}
	if (!soc_tenant(x->r, me) || strcmp(me, x->q.user) != 0) {
		soc_refuse(x, 403, "not_owner", "not_owner",
		           "a token may change only its own tenant's edges (/g/{tenant}/follows/…)");
		return;
	}
	if (strcmp(x->q.user, x->q.other) == 0) {
		soc_refuse(x, 400, "self_follow", "self_follow", "a user cannot follow itself");
		return;
	}
	if (http_req_query(x->r)[0]) {
		soc_refuse(x, 400, "bad_request", "bad_request", "this route takes no query");
		return;
	}
	if (soc_no_body(x) != 0)
		return;
	x->q.verb = m == HTTP_M_PUT ? SOCIAL_FOLLOW : SOCIAL_UNFOLLOW;
	soc_call(x);
}

static void graph_list(soc_req *x, social_list_kind kind)
{
	if (http_req_method_bit(x->r) != HTTP_M_GET) {
		(void)http_reply_error(x->r, 405, "method_not_allowed",
		                       "/g/{user}/followers and /following take GET", false, 0);
		soc_end(x);
		return;
	}
	if (soc_take_query(x, http_req_query(x->r)) != 0 || soc_no_body(x) != 0)
		return;
	x->q.verb = SOCIAL_LIST;
	x->q.kind = (uint8_t)kind;
	soc_call(x);
}

void graph_route(soc_req *x)
{
	const char *p = http_req_path(x->r) + strlen(GRAPH_PREFIX);
	const char *slash = strchr(p, '/');

	if (!slash || !soc_user(p, (size_t)(slash - p), x->q.user)) {
		soc_refuse(x, 400, "bad_user", "bad_request",
		           "user: want /g/{user}/… with 1..64 of [A-Za-z0-9._-]");
		return;
	}
	if (strcmp(slash, "/followers") == 0)
		graph_list(x, SOCIAL_FOLLOWERS);
	else if (strcmp(slash, "/following") == 0)
		graph_list(x, SOCIAL_FOLLOWING);
	else if (strncmp(slash, "/follows/", 9) == 0)
		graph_write(x, slash + 9, strlen(slash + 9));
	else {
		(void)http_reply_error(x->r, 404, "not_found",
		                       "no such graph route: /g/{user}/followers, /following, "
		                       "/follows/{other}", false, 0);
		soc_end(x);
	}
}

/* ---- /feed ------------------------------------------------------------------ */

static void feed_on_stat(const stor_result *res, void *arg)
{
	soc_req *x = arg;

	x->scall = NULL;
	x->awaiting = false;
	if (!x->r) {
		soc_free(x);
		return;
	}
	if (res->status == 404) {
		soc_refuse(x, 422, "not_stored", "not_stored",
		           "cid: no object with this id is stored here; PUT it first");
		return;
	}
	if (res->status != 200) {
		(void)http_reply_error(x->r, res->status >= 500 ? res->status : 502, "storage_error",
		                       res->message[0] ? res->message : "storage failed", true,
		                       res->status == 503 ? 1 : 0);
		soc_end(x);
		return;
	}
	x->q.verb = SOCIAL_POST;
	soc_call(x);
}

static int feed_on_body(http_req *r, const uint8_t *data, size_t len, void *arg)
{
	soc_req *x = arg;
	char msg[64];

	(void)r;
	if (len > SOCIAL_BODY_MAX - x->body_len) {
		snprintf(msg, sizeof msg, "body: at most %u bytes", SOCIAL_BODY_MAX);
		soc_refuse(x, 413, "payload_too_large", "too_large", msg);
		return -1;
	}
	memcpy(x->body + x->body_len, data, len);
	x->body_len += len;
	return 0;
}

static void feed_on_body_end(http_req *r, void *arg)
{
	soc_req *x = arg;
	char msg[128];

	(void)r;
	if (cid_body_parse(x->body, x->body_len, x->q.cid, msg, sizeof msg) != 0) {
		soc_refuse(x, 400, "bad_request", "bad_body", msg);
		return;
	}
	x->awaiting = true;
	x->scall = stor_stat(x->s->stor, x->q.cid, feed_on_stat, x);
}

static void feed_post(soc_req *x)
{
	const char *ce = http_req_header(x->r, "Content-Encoding");
	char msg[64];

	if (http_req_query(x->r)[0]) {
		soc_refuse(x, 400, "bad_request", "bad_request", "POST /feed takes no query");
		return;
	}
	if (ce && strcasecmp(ce, "identity") != 0) {
		soc_refuse(x, 415, "unsupported_media_type", "bad_request",
		           "POST /feed: no Content-Encoding");
		return;
	}
	if (http_req_content_length(x->r) > (int64_t)SOCIAL_BODY_MAX) {
		snprintf(msg, sizeof msg, "body: at most %u bytes", SOCIAL_BODY_MAX);
		soc_refuse(x, 413, "payload_too_large", "too_large", msg);
		return;
	}
	http_req_on_body(x->r, feed_on_body, feed_on_body_end, x);
}

void feed_route(soc_req *x)
{
	if (!soc_tenant(x->r, x->q.user)) {
		soc_refuse(x, 403, "not_owner", "not_owner",
		           "/feed is the token's tenant's: present a token with a Tenant caveat");
		return;
	}
	if (http_req_method_bit(x->r) == HTTP_M_POST) {
		feed_post(x);
		return;
	}
	if (soc_take_query(x, http_req_query(x->r)) != 0 || soc_no_body(x) != 0)
		return;
	x->q.verb = SOCIAL_FEED;
	soc_call(x);
}

