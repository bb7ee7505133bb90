/*
 * social_routes.c — the gateway's graph and feed routes (see
 * social_routes.h): a request's life, the social service's answers, the
 * dispatch. Paths, queries and bodies: social_handlers.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics/metrics.h"
#include "core/metrics/reject.h"
#include "lib/b3.h"
#include "svc/gateway/cors.h"
#include "svc/gateway/social_routes_int.h"

#define GRAPH_METHODS (HTTP_M_GET | HTTP_M_PUT | HTTP_M_DELETE)
#define FEED_METHODS  (HTTP_M_GET | HTTP_M_POST)

/* ---- ends ------------------------------------------------------------------- */

static double soc_elapsed(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

void soc_free(soc_req *x)
{
	if (x->call)
		social_call_cancel(x->call);
	if (x->scall)
		stor_call_cancel(x->scall);
	free(x);
}

/* The request was answered: its latency, then x is freed. */
void soc_end(soc_req *x)
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
void soc_refuse(soc_req *x, int status, const char *code, const char *reason,
                       const char *msg)
{
	soc_count(reason, status == 413 ? REJECT_413 : status == 415 ? REJECT_415 :
	                  status == 403 ? REJECT_FORBIDDEN : REJECT_BAD_REQUEST);
	(void)http_reply_error(x->r, status, code, msg, false, 0);
	soc_end(x);
}

void soc_reply_json(soc_req *x, int status, json_t *j)
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

void soc_call(soc_req *x)
{
	x->awaiting = true;
	x->call = social_call_start(x->s->client, &x->q, soc_on_reply, x);
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
	out[0] = (http_route){ GRAPH_METHODS | HTTP_M_OPTIONS, "/g/", "/g/{user}/...",
	                       HTTP_ROUTE_PREFIX | HTTP_ROUTE_STREAM_BODY | HTTP_ROUTE_FACET,
	                       graph_on_request, s };
	out[1] = (http_route){ FEED_METHODS | HTTP_M_OPTIONS, "/feed", "/feed",
	                       HTTP_ROUTE_STREAM_BODY | HTTP_ROUTE_FACET, feed_on_request, s };
}
