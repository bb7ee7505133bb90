/*
 * search_client.c — the search service's client (see search_client.h).
 */
#include "core/search/search_client.h"

#include <stdlib.h>
#include <string.h>

#include "core/config/config.h"
#include "core/metrics/metrics.h"
#include "core/proto/rpc_client.h"
#include "lib/log.h"

struct search_client {
	rpc_client *rpc;
	uint8_t     buf[SEARCH_MSG_MAX];   /* one request being encoded */
};

typedef struct search_ctx {
	search_cb cb;
} search_ctx;

static const rpc_client_opts search_opts = {
	.name = "search", .app_proto = SEARCH_APP_PROTO,
	.call_timeout_ms = SEARCH_CLIENT_TIMEOUT_MS, .max_pending = SEARCH_CLIENT_PENDING,
	.breaker_failures = 3, .breaker_open_ms = 1000, .ping_verb = SEARCH_PING,
	.max_request = SEARCH_MSG_MAX,
	.check = search_msg_rep_check, .verb_name = search_msg_verb_name,
};

search_client *search_client_new(struct event_base *base, const struct mn_config *cfg)
{
	search_client *c = calloc(1, sizeof *c);
	char path[CONFIG_PATH_MAX + 16];

	if (!c || config_socket_path(cfg, SEARCH_SOCKET, path, sizeof path) != 0 ||
	    !(c->rpc = rpc_client_new(base, path, &search_opts))) {
		free(c);
		return NULL;
	}
	return c;
}

void search_client_free(search_client *c)
{
	if (!c)
		return;
	rpc_client_free(c->rpc);
	free(c);
}

bool search_client_ready(const search_client *c)
{
	return c && rpc_client_ready(c->rpc);
}

/* The service counts what it drops (queue_full); a call that never
 * reached it (busy, lost, timed out) is counted here. */
static void on_index(const rpc_reply *r, void *arg)
{
	(void)arg;
	if (r->fail != RPC_FAIL_NONE)
		metrics_count("search_index_dropped_total", "reason=\"notify\"", 1);
}

int search_client_index(search_client *c, const search_doc *d)
{
	ssize_t n = search_msg_index_encode(d, c->buf, sizeof c->buf);

	if (n < 0 || !rpc_client_ready(c->rpc))
		return -1;
	return rpc_call_start(c->rpc, SEARCH_INDEX, c->buf, (size_t)n, on_index, NULL) ? 0 : -1;
}

int search_client_name(search_client *c, const search_name *nm)
{
	ssize_t n = search_msg_name_encode(nm, c->buf, sizeof c->buf);

	if (n < 0 || !rpc_client_ready(c->rpc))
		return -1;
	return rpc_call_start(c->rpc, SEARCH_NAME, c->buf, (size_t)n, on_index, NULL) ? 0 : -1;
}

static void on_query(const rpc_reply *r, void *arg)
{
	search_ctx x;
	search_result res = { .status = r->status, .message = "" };
	char msg[SEARCH_MSG_TEXT_MAX];
	search_hits *h = NULL;

	memcpy(&x, r->ctx, sizeof x);
	if (r->fail != RPC_FAIL_NONE) {
		res.message = "search service unavailable";
	} else if (r->status != 200) {
		res.message = search_msg_err_decode(r->payload, r->len, msg) == 0 ? msg : "";
	} else if (!(h = malloc(sizeof *h)) || search_msg_hits_decode(r->payload, r->len, h) != 0) {
		res.status = 503;
		res.message = "out of memory";
	} else {
		res.hits = h;
	}
	x.cb(&res, arg);
	free(h);
}

search_call *search_client_query(search_client *c, const char *q, uint16_t limit, search_cb cb,
                                 void *arg)
{
	uint8_t buf[SEARCH_QUERY_MAX + 8];
	ssize_t n = search_msg_query_encode(q, limit, buf, sizeof buf);
	search_ctx x = { .cb = cb };

	if (n < 0)
		n = (ssize_t)SEARCH_MSG_MAX + 1;   /* a bug of the caller: rpc_client answers 500 */
	return (search_call *)rpc_call_start_ctx(c->rpc, SEARCH_QUERY, buf, (size_t)n, on_query, arg,
	                                         &x, sizeof x);
}

void search_call_cancel(search_call *call)
{
	rpc_call_cancel((rpc_call *)call);
}
