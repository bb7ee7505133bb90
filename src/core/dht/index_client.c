/*
 * index_client.c — the index service's typed client (see index_client.h):
 * index_msg.h requests become rpc_client calls, replies become
 * index_result. Each call carries its callback inside the rpc call, so
 * nothing is allocated here.
 */
#include "core/dht/index_client.h"

#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "core/config/config.h"
#include "core/proto/rpc_client.h"
#include "lib/log.h"

typedef struct index_ctx {
	index_cb cb;
} index_ctx;

_Static_assert(sizeof(index_ctx) <= RPC_CALL_CTX_MAX, "index_ctx fits an rpc call");

static rpc_client *index_rpc(index_client *c)
{
	return (rpc_client *)c;
}

/* Every reply must be exactly its verb's message; none carries fds. The
 * decoded reply is large (a HISTORY holds 64 records): static, loop thread. */
static int index_check(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, size_t nfds)
{
	static index_rep rep;

	return nfds == 0 && index_msg_rep_decode(verb, status, p, n, &rep) == 0 ? 0 : -1;
}

static const rpc_client_opts index_opts = {
	.name = "index", .app_proto = INDEX_APP_PROTO, .call_timeout_ms = INDEX_CALL_TIMEOUT_MS,
	.max_pending = INDEX_MAX_PENDING, .breaker_failures = INDEX_BREAKER_FAILURES,
	.breaker_open_ms = INDEX_BREAKER_OPEN_MS, .ping_verb = INDEX_PING,
	.max_request = INDEX_MSG_MAX, .check = index_check, .verb_name = index_msg_verb_name,
};

index_client *index_client_new(struct event_base *base, const char *socket_path)
{
	return (index_client *)rpc_client_new(base, socket_path, &index_opts);
}

index_client *index_client_for(struct event_base *base, const mn_config *cfg)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];

	if (config_socket_path(cfg, INDEX_SOCK, path, sizeof path) != 0) {
		log_kv(LOG_LEVEL_ERROR, "index socket path too long", "runtime_dir",
		       cfg->runtime_dir, LOG_END);
		return NULL;
	}
	return index_client_new(base, path);
}

void index_client_free(index_client *c)
{
	rpc_client_free(index_rpc(c));
}

bool index_client_ready(const index_client *c)
{
	return rpc_client_ready((const rpc_client *)c);
}

/* ---- replies -------------------------------------------------------------- */

static const char *index_fail_msg(rpc_fail why)
{
	switch (why) {
	case RPC_FAIL_BREAKER:     return "index unavailable (breaker open)";
	case RPC_FAIL_BUSY:        return "too many index calls in flight";
	case RPC_FAIL_UNREACHABLE: return "index unreachable";
	case RPC_FAIL_TIMEOUT:     return "index call timed out";
	case RPC_FAIL_NOMEM:       return "out of memory";
	case RPC_FAIL_ENCODE:      return "index request does not encode";
	default:                   return "index connection lost";
	}
}

/* The caller's view of a reply decoded into *rep; it borrows *rep. */
static void index_result_of(const rpc_reply *r, index_rep *rep, index_result *out)
{
	*out = (index_result){ .status = r->status, .message = "" };
	if (r->fail != RPC_FAIL_NONE) {
		out->message = index_fail_msg(r->fail);
		return;
	}
	if (index_msg_rep_decode(r->verb, (uint16_t)r->status, r->payload, r->len, rep) != 0) {
		(void)BUG("index reply passed its check but does not decode");
		out->status = 500;
		out->message = "index reply does not decode";
		return;
	}
	if (rep->status != 200) {
		out->message = rep->u.err.message;
		return;
	}
	switch (r->verb) {
	case INDEX_PUBLISH:
		out->created = rep->u.publish.created;
		out->recs = &rep->u.publish.rec;
		out->nrecs = 1;
		break;
	case INDEX_RESOLVE:
		out->source = rep->u.resolve.source;
		out->recs = &rep->u.resolve.rec;
		out->nrecs = 1;
		break;
	case INDEX_HISTORY:
		out->recs = rep->u.history.recs;
		out->nrecs = rep->u.history.n;
		break;
	case INDEX_LIST:
		out->recs = rep->u.list.recs;
		out->nrecs = rep->u.list.n;
		out->next = &rep->u.list.next;
		out->more = rep->u.list.more;
		break;
	default:
		break;
	}
}

static void on_reply(const rpc_reply *r, void *arg)
{
	static index_rep rep;   /* loop thread; a callback may start calls, not re-enter this */
	index_ctx x;
	index_result res;

	memcpy(&x, r->ctx, sizeof x);
	index_result_of(r, &rep, &res);
	x.cb(&res, arg);
}

/* ---- issuing calls -------------------------------------------------------- */

static index_call *index_submit(index_client *c, const index_req *q, index_cb cb, void *arg)
{
	uint8_t payload[INDEX_MSG_MAX];
	ssize_t n = index_msg_req_encode(q, payload, sizeof payload);
	index_ctx x = { .cb = cb };

	if (n < 0)   /* a caller's bug (a name not checked): rpc_client answers 500 */
		n = (ssize_t)sizeof payload + 1;
	return (index_call *)rpc_call_start_ctx(index_rpc(c), q->verb, payload, (size_t)n,
	                                        cb ? on_reply : NULL, arg, &x, sizeof x);
}

index_call *index_publish(index_client *c, const char *name, size_t n, const uint8_t cid[32],
                          index_cb cb, void *arg)
{
	index_req q = { .verb = INDEX_PUBLISH };

	index_name_set(&q.u.publish.name, name, n);
	memcpy(q.u.publish.cid, cid, NAME_RECORD_CID_LEN);
	return index_submit(c, &q, cb, arg);
}

index_call *index_resolve(index_client *c, const char *name, size_t n, bool network,
                          index_cb cb, void *arg)
{
	index_req q = { .verb = INDEX_RESOLVE };

	index_name_set(&q.u.resolve.name, name, n);
	q.u.resolve.network = network;
	return index_submit(c, &q, cb, arg);
}

index_call *index_history(index_client *c, const char *name, size_t n, index_cb cb, void *arg)
{
	index_req q = { .verb = INDEX_HISTORY };

	index_name_set(&q.u.history.name, name, n);
	return index_submit(c, &q, cb, arg);
}

index_call *index_import(index_client *c, const uint8_t *rec, size_t n, index_cb cb, void *arg)
{
	index_req q = { .verb = INDEX_IMPORT };

	if (n > NAME_RECORD_MAX)
		n = 0;   /* does not encode: 500, the caller's bug */
	memcpy(q.u.import.rec, rec, n);
	q.u.import.len = n;
	return index_submit(c, &q, cb, arg);
}

index_call *index_list(index_client *c, const index_list_cursor *from, index_cb cb, void *arg)
{
	index_req q = { .verb = INDEX_LIST };

	q.u.list.from = *from;
	return index_submit(c, &q, cb, arg);
}

void index_call_cancel(index_call *call)
{
	rpc_call_cancel((rpc_call *)call);
}
