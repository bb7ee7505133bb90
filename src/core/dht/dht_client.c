/*
 * dht_client.c — the dht service's typed client (see dht_client.h): each
 * call is an rpc_client call carrying the caller's callback in its context;
 * replies are decoded with dht_msg.h (rpc_client made sure they decode).
 */
#include "core/dht/dht_client.h"

#include <string.h>

#include "core/identity/identity.h"
#include "core/proto/rpc_client.h"
#include "lib/log.h"

/* The caller's callback, by verb. */
typedef struct dht_ctx {
	union {
		dht_done_cb      done;
		dht_providers_cb providers;
		dht_values_cb    values;
		dht_peers_cb     peers;
		dht_status_cb    status;
	} cb;
} dht_ctx;

_Static_assert(sizeof(dht_ctx) <= RPC_CALL_CTX_MAX, "dht_ctx fits an rpc call");

/* A dht_client is its rpc_client and a dht_call its rpc_call (opaque types). */
static rpc_client *dht_rpc(dht_client *c)
{
	return (rpc_client *)c;
}

static int dht_check(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, size_t nfds)
{
	static dht_rep rep;   /* large: not on the stack; the loop is one thread */

	return nfds == 0 && dht_msg_rep_decode(verb, status, p, n, &rep) == 0 ? 0 : -1;
}

static const rpc_client_opts dht_opts = {
	.name = "dht", .app_proto = DHT_APP_PROTO, .call_timeout_ms = DHT_CALL_TIMEOUT_MS,
	.max_pending = DHT_MAX_PENDING, .breaker_failures = DHT_BREAKER_FAILURES,
	.breaker_open_ms = DHT_BREAKER_OPEN_MS, .ping_verb = DHT_PING,
	.max_request = DHT_MSG_MAX, .check = dht_check, .verb_name = dht_msg_verb_name,
};

dht_client *dht_client_new(struct event_base *base, const char *socket_path)
{
	return (dht_client *)rpc_client_new(base, socket_path, &dht_opts);
}

void dht_client_free(dht_client *c)
{
	rpc_client_free(dht_rpc(c));
}

bool dht_client_ready(const dht_client *c)
{
	return rpc_client_ready((const rpc_client *)c);
}

/* ---- replies -------------------------------------------------------------- */

static const char *dht_fail_msg(rpc_fail why)
{
	switch (why) {
	case RPC_FAIL_BREAKER:     return "dht unavailable (breaker open)";
	case RPC_FAIL_BUSY:        return "too many dht calls in flight";
	case RPC_FAIL_UNREACHABLE: return "dht unreachable";
	case RPC_FAIL_TIMEOUT:     return "dht call timed out";
	case RPC_FAIL_NOMEM:       return "out of memory";
	case RPC_FAIL_ENCODE:      return "dht request does not encode";
	default:                   return "dht connection lost";
	}
}

static void deliver_find(const dht_ctx *x, const dht_rep *rep, void *arg)
{
	dht_found f[DHT_GET_MAX];
	size_t n = rep->u.find.n;

	for (size_t i = 0; i < n; i++) {
		const dht_provider *p = &rep->u.find.p[i];
		memcpy(f[i].node_pk, p->node_pk, sizeof f[i].node_pk);
		identity_id_of(p->node_pk, f[i].node_id);
		memcpy(f[i].oap_addr, p->oap_addr, sizeof f[i].oap_addr);
		memcpy(f[i].onion, p->onion, sizeof f[i].onion);
		f[i].expires = p->expires;
	}
	x->cb.providers(200, "", f, n, arg);
}

static void deliver_get(const dht_ctx *x, const dht_rep *rep, void *arg)
{
	dht_value v[DHT_GET_MAX];

	for (size_t i = 0; i < rep->u.get.n; i++)
		v[i] = (dht_value){ .data = rep->u.get.v[i], .len = rep->u.get.len[i] };
	x->cb.values(200, "", v, rep->u.get.n, arg);
}

/* An answer without results: an error, or a verb with an empty 200. */
static void deliver_status_only(uint16_t verb, const dht_ctx *x, int status, const char *msg,
                                void *arg)
{
	switch (verb) {
	case DHT_FIND:   x->cb.providers(status, msg, NULL, 0, arg); break;
	case DHT_GET:    x->cb.values(status, msg, NULL, 0, arg); break;
	case DHT_PEERS:  x->cb.peers(status, msg, NULL, arg); break;
	case DHT_STATUS: x->cb.status(status, msg, NULL, arg); break;
	default:         x->cb.done(status, msg, arg); break;
	}
}

static void on_reply(const rpc_reply *r, void *arg)
{
	static dht_rep rep;   /* large: not on the stack; the loop is one thread */
	dht_ctx x;

	memcpy(&x, r->ctx, sizeof x);
	if (r->fail != RPC_FAIL_NONE) {
		deliver_status_only(r->verb, &x, r->status == 504 ? 504 : r->status,
		                    dht_fail_msg(r->fail), arg);
		return;
	}
	if (dht_msg_rep_decode(r->verb, (uint16_t)r->status, r->payload, r->len, &rep) != 0) {
		(void)BUG("dht reply passed its check but does not decode");
		deliver_status_only(r->verb, &x, 500, "dht reply does not decode", arg);
		return;
	}
	if (rep.status != 200)
		deliver_status_only(r->verb, &x, rep.status, rep.u.err.message, arg);
	else if (r->verb == DHT_FIND)
		deliver_find(&x, &rep, arg);
	else if (r->verb == DHT_GET)
		deliver_get(&x, &rep, arg);
	else if (r->verb == DHT_PEERS)
		x.cb.peers(200, "", &rep.u.peers, arg);
	else if (r->verb == DHT_STATUS)
		x.cb.status(200, "", &rep.u.status, arg);
	else
		x.cb.done(200, "", arg);
}

/* ---- issuing calls -------------------------------------------------------- */

static dht_call *dht_submit(dht_client *c, const dht_req *q, const dht_ctx *x, bool has_cb,
                            void *arg)
{
	static uint8_t payload[DHT_MSG_MAX];
	ssize_t n = dht_msg_req_encode(q, payload, sizeof payload);

	if (n < 0)   /* a bug of the caller (an oversized value...): rpc_client answers 500 */
		n = (ssize_t)DHT_MSG_MAX + 1;
	return (dht_call *)rpc_call_start_ctx(dht_rpc(c), q->verb, payload, (size_t)n,
	                                      has_cb ? on_reply : NULL, arg, x, sizeof *x);
}

dht_call *dht_announce(dht_client *c, const uint8_t cid[32], dht_done_cb cb, void *arg)
{
	dht_req q = { .verb = DHT_ANNOUNCE };
	dht_ctx x = { .cb.done = cb };

	memcpy(q.u.announce.cid, cid, PROV_CID_LEN);
	return dht_submit(c, &q, &x, cb != NULL, arg);
}

dht_call *dht_find_providers(dht_client *c, const uint8_t cid[32], dht_providers_cb cb,
                             void *arg)
{
	dht_req q = { .verb = DHT_FIND };
	dht_ctx x = { .cb.providers = cb };

	memcpy(q.u.find.cid, cid, PROV_CID_LEN);
	return dht_submit(c, &q, &x, cb != NULL, arg);
}

dht_call *dht_put(dht_client *c, dht_kind kind, const uint8_t key[32], const uint8_t *v,
                  size_t n, dht_done_cb cb, void *arg)
{
	dht_req q = { .verb = DHT_PUT, .u.put = { .kind = (uint8_t)kind, .value = v, .len = n } };
	dht_ctx x = { .cb.done = cb };

	memcpy(q.u.put.key, key, DHT_KEY_LEN);
	return dht_submit(c, &q, &x, cb != NULL, arg);
}

dht_call *dht_get(dht_client *c, dht_kind kind, const uint8_t key[32], dht_values_cb cb,
                  void *arg)
{
	dht_req q = { .verb = DHT_GET, .u.get = { .kind = (uint8_t)kind } };
	dht_ctx x = { .cb.values = cb };

	memcpy(q.u.get.key, key, DHT_KEY_LEN);
	return dht_submit(c, &q, &x, cb != NULL, arg);
}

dht_call *dht_peers(dht_client *c, dht_peers_cb cb, void *arg)
{
	dht_ctx x = { .cb.peers = cb };

	return dht_submit(c, &(dht_req){ .verb = DHT_PEERS }, &x, cb != NULL, arg);
}

dht_call *dht_status(dht_client *c, dht_status_cb cb, void *arg)
{
	dht_ctx x = { .cb.status = cb };

	return dht_submit(c, &(dht_req){ .verb = DHT_STATUS }, &x, cb != NULL, arg);
}

void dht_call_cancel(dht_call *call)
{
	rpc_call_cancel((rpc_call *)call);
}
