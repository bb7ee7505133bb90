/*
 * social_routes.c — the gateway's graph and feed routes (see
 * social_routes.h): paths, queries, the tenant rule, the POST body; the
 * social service does the rest over core/social/social_client.
 */
#include "svc/gateway/social_routes.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "core/auth/wall.h"
#include "core/metrics/facet.h"
#include "core/metrics/metrics.h"
#include "core/metrics/reject.h"
#include "lib/b3.h"
#include "svc/gateway/cors.h"

#define GRAPH_PREFIX  "/g/"
#define GRAPH_METHODS (HTTP_M_GET | HTTP_M_PUT | HTTP_M_DELETE)
#define FEED_PATH     "/feed"
#define FEED_METHODS  (HTTP_M_GET | HTTP_M_POST)

typedef struct soc_req {
	social_routes *s;
	http_req      *r;            /* NULL once the client is gone */
	social_call   *call;
	stor_call     *scall;
	bool           awaiting;     /* a callback is still to come */
	facet_id       facet;
	struct timespec t0;
	social_req     q;
	uint8_t        body[SOCIAL_BODY_MAX];
	size_t         body_len;
} soc_req;

/* ---- ends ------------------------------------------------------------------- */

static double soc_elapsed(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void soc_free(soc_req *x)
{
	if (x->call)
		social_call_cancel(x->call);
	if (x->scall)
		stor_call_cancel(x->scall);
	free(x);
}

/* The request was answered: its latency, then x is freed. */
static void soc_end(soc_req *x)
{
	facet_observe(x->facet, soc_elapsed(&x->t0));
	soc_free(x);
}

static void soc_on_close(http_req *r, void *arg)
{
	soc_req *x = arg;

	(void)r;
	x->r = NULL;
	if (x->awaiting && !x->call && !x->scall)
		return;   /* a callback still comes and frees */
	soc_free(x);
}

static void soc_count(const char *reason, reject_reason node)
{
	char labels[64];

	snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
	metrics_count("social_rejected_total", labels, 1);
	reject_count(REJECT_FAMILY_NODE, node);
}

/* A refusal the gateway finds: counted, answered, x ended. */
static void soc_refuse(soc_req *x, int status, const char *code, const char *reason,
                       const char *msg)
{
	soc_count(reason, status == 413 ? REJECT_413 : status == 415 ? REJECT_415 :
	                  status == 403 ? REJECT_FORBIDDEN : REJECT_BAD_REQUEST);
	(void)http_reply_error(x->r, status, code, msg, false, 0);
	soc_end(x);
}

static void soc_reply_json(soc_req *x, int status, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

	if (text)
		(void)http_reply_json(x->r, status, text);
	else
		(void)http_reply_error(x->r, 500, "internal", "out of memory", true, 0);
	free(text);
	json_decref(j);
	soc_end(x);
}

/* ---- the service's answers ---------------------------------------------------- */

/*
 * Pages are written as text, not through jansson: every string in them is a
 * user name ([A-Za-z0-9._-]), a cid or a cursor (base64url), none needing
 * an escape, and a page of 256 entries would otherwise be 1000 small
 * allocations per request on the hottest facet path.
 */
#define SOC_PAGE_TEXT_MAX (256u + SOCIAL_PAGE_MAX * (64u + SOCIAL_USER_MAX + B3_CID_LEN) + \
                           SOCIAL_CURSOR_MAX)

typedef struct soc_text {
	char  *p;
	size_t len, cap;
	bool   bad;
} soc_text;

__attribute__((format(printf, 2, 3)))
static void soc_put(soc_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->bad)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= t->cap - t->len)
		t->bad = true;
	else
		t->len += (size_t)n;
}

static void soc_put_next(soc_text *t, const social_rep *rep)
{
	if (rep->next[0])
		soc_put(t, "],\"next_cursor\":\"%s\"}", rep->next);
	else
		soc_put(t, "],\"next_cursor\":null}");
}

static void soc_list_text(soc_text *t, const soc_req *x, const social_rep *rep)
{
	soc_put(t, "{\"user\":\"%s\",\"%s\":[", x->q.user,
	        x->q.kind == SOCIAL_FOLLOWERS ? "followers" : "following");
	for (size_t i = 0; i < rep->n; i++)
		soc_put(t, "%s\"%s\"", i ? "," : "", rep->names[i]);
	soc_put_next(t, rep);
}

static void soc_feed_text(soc_text *t, const soc_req *x, const social_rep *rep)
{
	char cid[B3_CID_LEN + 1];

	soc_put(t, "{\"user\":\"%s\",\"items\":[", x->q.user);
	for (size_t i = 0; i < rep->n; i++) {
		const social_item *it = &rep->items[i];
		b3_cid_format(it->cid, cid);
		soc_put(t, "%s{\"post\":%llu,\"author\":\"%s\",\"cid\":\"%s\",\"ts_ms\":%llu}",
		        i ? "," : "", (unsigned long long)it->post, it->author, cid,
		        (unsigned long long)it->ts_ms);
	}
	soc_put_next(t, rep);
}

static void soc_reply_page(soc_req *x, const social_rep *rep)
{
	soc_text t = { .p = malloc(SOC_PAGE_TEXT_MAX), .cap = SOC_PAGE_TEXT_MAX };

	t.bad = !t.p;
	if (x->q.verb == SOCIAL_LIST)
		soc_list_text(&t, x, rep);
	else
		soc_feed_text(&t, x, rep);
	if (t.bad)
		(void)http_reply_error(x->r, 500, "internal", "page does not fit", true, 0);
	else
		(void)http_reply(x->r, 200, "application/json", t.p, t.len);
	free(t.p);
	soc_end(x);
}

static void soc_reply_ok(soc_req *x, const social_rep *rep)
{
	char cid[B3_CID_LEN + 1];

	switch (x->q.verb) {
	case SOCIAL_FOLLOW:
		soc_reply_json(x, rep->flag ? 201 : 200, json_pack("{s:s, s:s, s:b}", "user", x->q.user,
		               "follows", x->q.other, "created", rep->flag));
		break;
	case SOCIAL_UNFOLLOW:
		if (!rep->flag) {
			(void)http_reply_error(x->r, 404, "not_found", "user does not follow other",
			                       false, 0);
			soc_end(x);
			return;
		}
		(void)http_reply(x->r, 204, NULL, NULL, 0);
		soc_end(x);
		break;
	case SOCIAL_LIST:
	case SOCIAL_FEED:
		soc_reply_page(x, rep);
		break;
	default:   /* POST */
		b3_cid_format(x->q.cid, cid);
		soc_reply_json(x, 202, json_pack("{s:I, s:s, s:s, s:I}", "post", (json_int_t)rep->post,
		               "author", x->q.user, "cid", cid, "ts_ms", (json_int_t)rep->ts_ms));
		break;
	}
}

static void soc_on_reply(const social_rep *rep, void *arg)
{
	soc_req *x = arg;

	x->call = NULL;
	x->awaiting = false;
	if (!x->r) {
		soc_free(x);
		return;
	}
	if (rep->status == 200) {
		soc_reply_ok(x, rep);
		return;
	}
	if (rep->status == 503)
		facet_busy(x->facet);
	else if (rep->status == 504)
		facet_deadline_timeout(x->facet);
	if (rep->status >= 400 && rep->status < 500 && rep->status != 404)
		reject_count(REJECT_FAMILY_NODE, REJECT_BAD_REQUEST);
	(void)http_reply_error(x->r, rep->status, rep->code, rep->message,
	                       rep->status >= 500, rep->status == 503 ? 1 : 0);
	soc_end(x);
}

static void soc_call(soc_req *x)
{
	x->awaiting = true;
	x->call = social_call_start(x->s->client, &x->q, soc_on_reply, x);
}

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

static void graph_route(soc_req *x)
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

/* The body: exactly {"cid": "b3:<64 lowercase hex>"}. -1 with msg. */
static int feed_parse_body(soc_req *x, char *msg, size_t msglen)
{
	json_error_t je;
	json_t *j = json_loadb((const char *)x->body, x->body_len, JSON_REJECT_DUPLICATES, &je);
	json_t *cid = j && json_is_object(j) ? json_object_get(j, "cid") : NULL;
	int rc = -1;

	if (!j || !json_is_object(j))
		snprintf(msg, msglen, "body: want a JSON object {\"cid\":\"b3:<64 hex>\"}");
	else if (json_object_size(j) != (cid ? 1u : 0u))
		snprintf(msg, msglen, "body: unknown field (only \"cid\" is accepted)");
	else if (!cid)
		snprintf(msg, msglen, "body: missing field \"cid\"");
	else if (!json_is_string(cid) ||
	         b3_cid_parse(json_string_value(cid), json_string_length(cid), x->q.cid) != 0)
		snprintf(msg, msglen, "body: cid: want \"b3:<64 lowercase hex>\"");
	else
		rc = 0;
	json_decref(j);
	return rc;
}

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
	if (feed_parse_body(x, msg, sizeof msg) != 0) {
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

static void feed_route(soc_req *x)
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

/* ---- dispatch ----------------------------------------------------------------- */

static void soc_on_request(http_req *r, void *arg, facet_id facet, unsigned methods)
{
	social_routes *s = arg;
	soc_req *x;

	if (http_req_method_bit(r) == HTTP_M_OPTIONS) {
		cors_preflight(r, s->cors, methods);
		return;
	}
	if (!s->client) {
		(void)http_reply_error(r, 404, "not_found", "graph and feed are not served here: "
		                       "the node runs no social service (services)", false, 0);
		return;
	}
	if (!(x = calloc(1, sizeof *x))) {
		(void)http_reply_error(r, 500, "internal", "out of memory", true, 0);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &x->t0);
	x->s = s;
	x->r = r;
	x->facet = facet;
	http_req_on_close(r, soc_on_close, x);
	if (facet == FACET_GRAPH)
		graph_route(x);
	else
		feed_route(x);
}

static void graph_on_request(http_req *r, void *arg)
{
	soc_on_request(r, arg, FACET_GRAPH, GRAPH_METHODS);
}

static void feed_on_request(http_req *r, void *arg)
{
	soc_on_request(r, arg, FACET_FEED, FEED_METHODS);
}

void social_routes_table(social_routes *s, http_route out[SOCIAL_ROUTES_N])
{
	out[0] = (http_route){ GRAPH_METHODS | HTTP_M_OPTIONS, GRAPH_PREFIX, "/g/{user}/...",
	                       HTTP_ROUTE_PREFIX | HTTP_ROUTE_STREAM_BODY | HTTP_ROUTE_FACET,
	                       graph_on_request, s };
	out[1] = (http_route){ FEED_METHODS | HTTP_M_OPTIONS, FEED_PATH, FEED_PATH,
	                       HTTP_ROUTE_STREAM_BODY | HTTP_ROUTE_FACET, feed_on_request, s };
}
