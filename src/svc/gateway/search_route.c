/*
 * search_route.c — the Search facet at the gateway (docs/search.md):
 *
 *   GET /search?q=<FTS5 query>&limit=<1..search.max_limit>
 *       → 200 {"results":[{"cid","name"?,"content_type","size"}…],"count":N,"partial":B}
 *
 * and the other half of indexing: after each PUT the gateway tells the
 * search service what it stored (objects_put_notify), and after each
 * name published through it what the name points at (objects_name_notify,
 * from names.c), fire and forget.
 *
 * The query string is strict: q once and limit at most once, nothing
 * else; q percent-decoded (and '+' as space) into at most
 * search.max_query bytes, then checked by core/search/search_query.c, so
 * a bad query is a 400 naming the problem and SQLite never sees it. A
 * facet route (HTTP_ROUTE_FACET): shed first under load; latency in
 * facet_latency_seconds{facet="search"}. The service stops a query at
 * search.deadline and answers what it found with "partial": true.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics/facet.h"
#include "core/metrics/metrics.h"
#include "core/metrics/reject.h"
#include "core/objects/mediatype.h"
#include "core/search/search_client.h"
#include "core/search/search_query.h"
#include "lib/b3.h"
#include "lib/util.h"
#include "svc/gateway/search_route.h"

#define SEARCH_ROUTE_DEFAULT_LIMIT 10u
/* One hit in the answer: {"cid":"b3:…","name":"…","content_type":"…","size":N}, */
#define SEARCH_ROUTE_HIT_MAX (B3_CID_LEN + NAME_MAX_LEN + SEARCH_CTYPE_MAX + 96u)

typedef struct search_get {
	http_req    *req;     /* NULL once the client is gone */
	search_call *call;
	uint64_t     t0;
} search_get;

static void search_route_done(uint64_t t0)
{
	facet_observe(FACET_SEARCH, (double)(util_now_ns() - t0) / 1e9);
}

static void search_route_refuse(http_req *r, const char *reason, const char *code, const char *msg,
                                uint64_t t0)
{
	char l[40];

	snprintf(l, sizeof l, "reason=\"%s\"", reason);
	metrics_count("search_refused_total", l, 1);
	reject_count(REJECT_FAMILY_NODE, REJECT_BAD_REQUEST);
	(void)http_reply_error(r, 400, code, msg, false, 0);
	search_route_done(t0);
}

static int search_hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Percent-decode v[0..n) into out (cap bytes, NUL added): length, -1
 * malformed escape, -2 too long. */
static int search_decode(const char *v, size_t n, char *out, size_t cap)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		int ch = (unsigned char)v[i];

		if (ch == '%') {
			int h, l;

			if (i + 2 >= n || (h = search_hexval(v[i + 1])) < 0 ||
			    (l = search_hexval(v[i + 2])) < 0)
				return -1;
			ch = h * 16 + l;
			i += 2;
		} else if (ch == '+') {
			ch = ' ';
		}
		if (k + 1 >= cap)
			return -2;
		out[k++] = (char)ch;
	}
	out[k] = '\0';
	return (int)k;
}

typedef struct search_params {
	char     q[SEARCH_QUERY_MAX];
	bool     has_q, has_limit;
	unsigned limit;
} search_params;

/* One name=value of the query string. 0, or -1 with reason and msg set. */
static int search_param(const char *kv, size_t n, size_t max_q, search_params *sp,
                        const char **reason, const char **msg)
{
	const char *eq = memchr(kv, '=', n);
	size_t kl = eq ? (size_t)(eq - kv) : n, vl = eq ? n - kl - 1 : 0;
	char num[8];
	int len;

	if (kl == 1 && kv[0] == 'q' && eq && !sp->has_q) {
		sp->has_q = true;
		if ((len = search_decode(eq + 1, vl, sp->q, max_q + 1)) == -2) {
			*reason = "too_long";
			*msg = "q is longer than search.max_query";
			return -1;
		}
		if (len < 0 || memchr(sp->q, '\0', (size_t)len)) {
			*reason = "query";
			*msg = "q has a malformed percent-escape";
			return -1;
		}
		return 0;
	}
	if (kl == 5 && memcmp(kv, "limit", 5) == 0 && eq && !sp->has_limit) {
		sp->has_limit = true;
		if (vl == 0 || vl >= sizeof num || strspn(eq + 1, "0123456789") < vl) {
			*reason = "limit";
			*msg = "limit must be a number";
			return -1;
		}
		memcpy(num, eq + 1, vl);
		num[vl] = '\0';
		sp->limit = (unsigned)strtoul(num, NULL, 10);
		return 0;
	}
	*reason = "query";
	*msg = "unknown or repeated query parameter: want q=<query>[&limit=N]";
	return -1;
}

static int search_params_parse(const char *qs, const objects *o, search_params *sp,
                               const char **reason, const char **msg)
{
	size_t max_q = o->search_max_query < SEARCH_QUERY_MAX ? o->search_max_query
	                                                      : SEARCH_QUERY_MAX - 1;

	sp->limit = SEARCH_ROUTE_DEFAULT_LIMIT;
	while (*qs) {
		size_t n = strcspn(qs, "&");

		if (n && search_param(qs, n, max_q, sp, reason, msg) < 0)
			return -1;
		qs += n + (qs[n] == '&');
	}
	if (!sp->has_q) {
		*reason = "too_broad";
		*msg = "q is missing: a query without terms would match everything";
		return -1;
	}
	if (sp->limit < 1 || sp->limit > o->search_max_limit) {
		*reason = "limit";
		*msg = "limit out of range (1..search.max_limit)";
		return -1;
	}
	return 0;
}

/* ---- the answer ----------------------------------------------------------- */

static void search_reply_hits(http_req *r, const search_hits *h)
{
	size_t cap = 64 + (size_t)h->n * SEARCH_ROUTE_HIT_MAX, len = 0;
	char *body = malloc(cap), cid[B3_CID_LEN + 1];

	if (!body) {
		(void)http_reply_error(r, 503, "unavailable", "out of memory", true, 1);
		return;
	}
	len += (size_t)snprintf(body, cap, "{\"results\":[");
	for (size_t i = 0; i < h->n; i++) {
		const search_hit *x = &h->hit[i];
		char size[24];

		b3_cid_format(x->id, cid);
		snprintf(size, sizeof size, "%llu", (unsigned long long)x->size);
		/* A recorded type is tchar, '/', ';', ' ', '=', and a name letters,
		 * digits, marks, '-', '.', '_', '/' (the decoder checked it with
		 * name.h): nothing to escape. A name's hit of an object not indexed
		 * has null type and size. */
		len += (size_t)snprintf(body + len, cap - len, "%s{\"cid\":\"%s\"", i ? "," : "", cid);
		if (x->name[0])
			len += (size_t)snprintf(body + len, cap - len, ",\"name\":\"%s\"", x->name);
		if (x->meta)
			len += (size_t)snprintf(body + len, cap - len,
			                        ",\"content_type\":\"%s\",\"size\":%s}",
			                        x->ctype[0] ? x->ctype : MEDIATYPE_DEFAULT, size);
		else
			len += (size_t)snprintf(body + len, cap - len,
			                        ",\"content_type\":null,\"size\":null}");
	}
	snprintf(body + len, cap - len, "],\"count\":%u,\"partial\":%s}", (unsigned)h->n,
	         h->partial ? "true" : "false");
	(void)http_reply_json(r, 200, body);
	free(body);
}

static void search_on_close(http_req *r, void *arg)
{
	search_get *g = arg;

	(void)r;
	g->req = NULL;
	if (g->call) {
		search_call_cancel(g->call);
		free(g);
	}
}

static void search_on_result(const search_result *res, void *arg)
{
	search_get *g = arg;
	http_req *r = g->req;

	g->call = NULL;
	if (!r) {
		free(g);
		return;
	}
	http_req_on_close(r, NULL, NULL);
	if (res->status == 200) {
		search_reply_hits(r, res->hits);
	} else if (res->status == 400) {   /* FTS5's own refusal, past our check */
		metrics_count("search_refused_total", "reason=\"syntax\"", 1);
		(void)http_reply_error(r, 400, "bad_query", res->message, false, 0);
	} else {   /* the service counted its own busy refusals (facet_busy_total) */
		(void)http_reply_error(r, 503, "unavailable", res->message[0] ? res->message :
		                       "search unavailable", true, 1);
	}
	search_route_done(g->t0);
	free(g);
}

static void search_on_get(http_req *r, void *arg)
{
	objects *o = arg;
	uint64_t t0 = util_now_ns();
	const char *reason = NULL, *msg = NULL;
	char why[SEARCH_MSG_TEXT_MAX];
	search_params sp = { .has_q = false };
	search_q_status qs;
	search_get *g;

	if (!o->search) {
		(void)http_reply_error(r, 503, "unavailable", "the search service is not running", true, 1);
		search_route_done(t0);
		return;
	}
	if (search_params_parse(http_req_query(r), o, &sp, &reason, &msg) < 0) {
		search_route_refuse(r, reason, strcmp(reason, "too_broad") == 0 ? "query_too_broad" :
		                    "bad_request", msg, t0);
		return;
	}
	if ((qs = search_query_check(sp.q, strlen(sp.q), why, sizeof why)) != SEARCH_Q_OK) {
		search_route_refuse(r, qs == SEARCH_Q_TOO_BROAD ? "too_broad" : "syntax",
		                    qs == SEARCH_Q_TOO_BROAD ? "query_too_broad" : "bad_query", why, t0);
		return;
	}
	if (!(g = calloc(1, sizeof *g))) {
		(void)http_reply_error(r, 503, "unavailable", "out of memory", true, 1);
		return;
	}
	g->req = r;
	g->t0 = t0;
	http_req_on_close(r, search_on_close, g);
	g->call = search_client_query(o->search, sp.q, (uint16_t)sp.limit, search_on_result, g);
}

void search_routes(objects *o, http_route out[SEARCH_NROUTES])
{
	out[0] = (http_route){ HTTP_M_GET, "/search", "/search",
	                       HTTP_ROUTE_STREAM_BODY | HTTP_ROUTE_FACET, search_on_get, o };
}

/* ---- indexing after a PUT --------------------------------------------------- */

void objects_put_notify(objects *o, const uint8_t id[32], uint64_t len, const char *ctype,
                        const uint8_t *head, size_t head_len)
{
	search_doc d = { .size = len };
	size_t text = 0;

	if (!o->search)
		return;
	memcpy(d.id, id, 32);
	snprintf(d.ctype, sizeof d.ctype, "%s", ctype ? ctype : "");
	if (ctype && mediatype_is_text(ctype)) {
		text = head_len < o->search_max_text ? head_len : o->search_max_text;
		text = text < SEARCH_TEXT_MAX ? text : SEARCH_TEXT_MAX;
	}
	d.text = text ? head : NULL;
	d.text_len = text;
	if (search_client_index(o->search, &d) != 0)
		metrics_count("search_index_dropped_total", "reason=\"notify\"", 1);
}

void objects_name_notify(objects *o, const char *name, const uint8_t id[32], uint64_t seq)
{
	search_name nm = { .seq = seq };

	if (!o->search)
		return;
	snprintf(nm.name, sizeof nm.name, "%s", name);
	memcpy(nm.id, id, 32);
	if (search_client_name(o->search, &nm) != 0)
		metrics_count("search_index_dropped_total", "reason=\"notify\"", 1);
}
