/*
 * stor_client.c — the storage service's typed client (see stor_client.h and
 * docs/internal.md): the transport — connection, breaker, timeout, pending
 * cap, fds — is core/proto/rpc_client.c; this file turns stor_msg.h
 * requests into calls and replies into stor_result.
 *
 * Each call carries a small context inside the rpc call (the caller's
 * stor_cb and, for PUT_COMMIT, the length it asked for, echoed as
 * result.len), so nothing is allocated here and a cancelled call leaves
 * nothing behind.
 */
#include "core/objects/stor_client.h"
#include "core/objects/stor_client_test.h"

#include <stdio.h>
#include <string.h>

#include "core/proto/rpc_client.h"
#include "lib/log.h"

/* What a call carries back to its callback (copied into the rpc call). */
typedef struct stor_ctx {
	stor_cb  cb;
	uint64_t req_len;   /* PUT_COMMIT: echoed as result.len */
} stor_ctx;

_Static_assert(sizeof(stor_ctx) <= RPC_CALL_CTX_MAX, "stor_ctx fits an rpc call");

/* A stor_client is its rpc_client and a stor_call its rpc_call: the
 * public types stay opaque, and these casts are the only place they meet. */
static rpc_client *stor_rpc(stor_client *c)
{
	return (rpc_client *)c;
}

/* Every reply must be exactly its verb's message with its fds. */
static int stor_check(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, size_t nfds)
{
	stor_rep rep;

	if (stor_msg_rep_decode(verb, status, p, n, &rep) != 0)
		return -1;
	return nfds == stor_msg_rep_nfds(&rep) ? 0 : -1;
}

static const rpc_client_opts stor_opts = {
	.name = "storage", .app_proto = STOR_APP_PROTO, .call_timeout_ms = STOR_CALL_TIMEOUT_MS,
	.max_pending = STOR_MAX_PENDING, .breaker_failures = STOR_BREAKER_FAILURES,
	.breaker_open_ms = STOR_BREAKER_OPEN_MS, .ping_verb = STOR_PING,
	.max_request = STOR_REQ_MAX, .check = stor_check, .verb_name = stor_msg_verb_name,
};

stor_client *stor_client_new(struct event_base *base, const char *socket_path)
{
	return (stor_client *)rpc_client_new(base, socket_path, &stor_opts);
}

void stor_client_free(stor_client *c)
{
	rpc_client_free(stor_rpc(c));
}

bool stor_client_ready(const stor_client *c)
{
	return rpc_client_ready((const rpc_client *)c);
}

unsigned stor_client_gen(const stor_client *c)
{
	return rpc_client_gen((const rpc_client *)c);
}

void stor_client_on_state(stor_client *c, void (*fn)(bool ready, void *arg), void *arg)
{
	rpc_client_on_state(stor_rpc(c), fn, arg);
}

/* ---- replies -------------------------------------------------------------- */

/* The caller's words for a call that got no reply (the messages callers and
 * tests have always seen). A timeout stays 503 for storage's callers. */
static const char *stor_fail_msg(rpc_fail why)
{
	switch (why) {
	case RPC_FAIL_BREAKER:     return "storage unavailable (breaker open)";
	case RPC_FAIL_BUSY:        return "too many storage calls in flight";
	case RPC_FAIL_UNREACHABLE: return "storage unreachable";
	case RPC_FAIL_TIMEOUT:     return "storage call timed out";
	case RPC_FAIL_NOMEM:       return "out of memory";
	case RPC_FAIL_ENCODE:      return "storage request does not encode";
	default:                   return "storage connection lost";
	}
}

/* The caller's view of a reply, decoded into *rep (rpc_client checked it
 * with stor_check); the error message borrows *rep. */
static void stor_result_of(const rpc_reply *r, const stor_ctx *x, stor_rep *rep,
                           stor_result *out)
{
	*out = (stor_result){ .status = r->status, .fds = { -1, -1 }, .message = "", .ctype = "" };
	if (r->fail != RPC_FAIL_NONE) {
		out->status = r->fail == RPC_FAIL_TIMEOUT ? 503 : r->status;
		out->message = stor_fail_msg(r->fail);
		return;
	}
	if (stor_msg_rep_decode(r->verb, (uint16_t)r->status, r->payload, r->len, rep) != 0)
		(void)BUG("storage reply passed its check but does not decode");
	for (size_t i = 0; i < r->nfds && i < 2; i++)
		out->fds[i] = r->fds[i];
	if (rep->status != 200) {
		out->message = rep->u.err.message;
		return;
	}
	switch (r->verb) {
	case STOR_STAT:
	case STOR_PIN:
		out->len = rep->u.stat.len;
		break;
	case STOR_OPEN:
		out->len = rep->u.open.len;
		break;
	case STOR_PUT_BEGIN:
		out->handle = rep->u.put_begin.handle;
		break;
	case STOR_PUT_COMMIT:
		memcpy(out->id, rep->u.put_commit.id, sizeof out->id);
		out->created = rep->u.put_commit.created;
		out->len = x->req_len;
		break;
	case STOR_META_SET:
	case STOR_META_GET:
		out->len = rep->u.meta.len;
		out->ctype = rep->u.meta.ctype;
		out->ctype_by_read = rep->u.meta.by_read;
		break;
	case STOR_LIST:
		out->ids = (const uint8_t (*)[32])rep->u.list.ids;
		out->nids = rep->u.list.n;
		out->more = rep->u.list.more;
		break;
	default:
		break;
	}
}

static void on_reply(const rpc_reply *r, void *arg)
{
	stor_ctx x;
	stor_rep rep;
	stor_result res;

	memcpy(&x, r->ctx, sizeof x);
	stor_result_of(r, &x, &rep, &res);
	x.cb(&res, arg);
}

/* ---- issuing calls -------------------------------------------------------- */

static stor_call *stor_submit(stor_client *c, const stor_req *q, uint64_t req_len,
                              stor_cb cb, void *arg)
{
	uint8_t payload[STOR_REQ_MAX];
	ssize_t n = stor_msg_req_encode(q, payload, sizeof payload);
	stor_ctx x = { .cb = cb, .req_len = req_len };

	if (n < 0)   /* a bug of this file: rpc_client answers 500 */
		n = (ssize_t)sizeof payload + 1;
	return (stor_call *)rpc_call_start_ctx(stor_rpc(c), q->verb, payload, (size_t)n,
	                                       cb ? on_reply : NULL, arg, &x, sizeof x);
}

static stor_call *stor_submit_id(stor_client *c, uint16_t verb, const uint8_t id[32],
                                 stor_cb cb, void *arg)
{
	stor_req q = { .verb = verb };

	memcpy(q.u.stat.id, id, STOR_ID_LEN);   /* STAT, OPEN, QUARANTINE, PIN: one layout */
	return stor_submit(c, &q, 0, cb, arg);
}

stor_call *stor_stat(stor_client *c, const uint8_t id[32], stor_cb cb, void *arg)
{
	return stor_submit_id(c, STOR_STAT, id, cb, arg);
}

stor_call *stor_open(stor_client *c, const uint8_t id[32], stor_cb cb, void *arg)
{
	return stor_submit_id(c, STOR_OPEN, id, cb, arg);
}

stor_call *stor_quarantine(stor_client *c, const uint8_t id[32], stor_cb cb, void *arg)
{
	return stor_submit_id(c, STOR_QUARANTINE, id, cb, arg);
}

stor_call *stor_pin(stor_client *c, const uint8_t id[32], stor_cb cb, void *arg)
{
	return stor_submit_id(c, STOR_PIN, id, cb, arg);
}

stor_call *stor_meta_get(stor_client *c, const uint8_t id[32], stor_cb cb, void *arg)
{
	return stor_submit_id(c, STOR_META_GET, id, cb, arg);
}

stor_call *stor_meta_set(stor_client *c, const uint8_t id[32], const char *ctype, bool by_read,
                         stor_cb cb, void *arg)
{
	stor_req q = { .verb = STOR_META_SET, .u.meta_set.by_read = by_read };

	memcpy(q.u.meta_set.id, id, STOR_ID_LEN);
	snprintf(q.u.meta_set.ctype, sizeof q.u.meta_set.ctype, "%s", ctype);
	return stor_submit(c, &q, 0, cb, arg);
}

stor_call *stor_watch(stor_client *c, stor_cb cb, void *arg)
{
	return stor_submit(c, &(stor_req){ .verb = STOR_WATCH }, 0, cb, arg);
}

stor_call *stor_ping(stor_client *c, stor_cb cb, void *arg)
{
	return stor_submit(c, &(stor_req){ .verb = STOR_PING }, 0, cb, arg);
}

stor_call *stor_put_begin(stor_client *c, uint64_t max_len, const char *tenant, const char *peer,
                          stor_cb cb, void *arg)
{
	stor_req q = { .verb = STOR_PUT_BEGIN, .u.put_begin.max_len = max_len };

	snprintf(q.u.put_begin.tenant, sizeof q.u.put_begin.tenant, "%s", tenant ? tenant : "");
	snprintf(q.u.put_begin.peer, sizeof q.u.put_begin.peer, "%s", peer ? peer : "");
	return stor_submit(c, &q, 0, cb, arg);
}

stor_call *stor_put_commit(stor_client *c, uint64_t handle, uint64_t len, const uint8_t *expect,
                           bool cache, stor_cb cb, void *arg)
{
	stor_req q = { .verb = STOR_PUT_COMMIT,
	               .u.put_commit = { .handle = handle, .len = len, .has_expect = expect != NULL,
	                                 .cache = cache } };

	if (expect)
		memcpy(q.u.put_commit.expect, expect, STOR_ID_LEN);
	return stor_submit(c, &q, len, cb, arg);
}

stor_call *stor_put_abort(stor_client *c, uint64_t handle, stor_cb cb, void *arg)
{
	stor_req q = { .verb = STOR_PUT_ABORT, .u.put_abort.handle = handle };

	return stor_submit(c, &q, 0, cb, arg);
}

stor_call *stor_list(stor_client *c, const uint8_t *after, uint16_t max, stor_cb cb, void *arg)
{
	stor_req q = { .verb = STOR_LIST, .u.list = { .has_after = after != NULL, .max = max } };

	if (after)
		memcpy(q.u.list.after, after, STOR_ID_LEN);
	return stor_submit(c, &q, 0, cb, arg);
}

void stor_call_cancel(stor_call *call)
{
	rpc_call_cancel((rpc_call *)call);
}
