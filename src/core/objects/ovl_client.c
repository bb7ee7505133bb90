/*
 * ovl_client.c — the overlay's messages and client (see ovl_client.h).
 */
#include "core/objects/ovl_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/proto/rpc_client.h"
#include "lib/log.h"
#include "lib/wire.h"

struct ovl_client {
	rpc_client *rpc;
};

typedef struct ovl_ctx {
	ovl_fetch_cb cb;          /* FETCH, or NULL */
	ovl_range_cb range_cb;    /* FETCH_RANGE, or NULL */
	void        *arg;
} ovl_ctx;

_Static_assert(sizeof(ovl_ctx) <= RPC_CALL_CTX_MAX, "context fits the call");

const char *ovl_msg_verb_name(uint16_t verb)
{
	switch (verb) {
	case OVL_PING:  return "PING";
	case OVL_FETCH: return "FETCH";
	case OVL_FETCH_RANGE: return "FETCH_RANGE";
	default:        return "unknown";
	}
}

static bool ovl_span_ok(uint64_t start, uint64_t end)
{
	return start <= end && end - start < OVL_RANGE_MAX;
}

int ovl_msg_req_check(uint16_t verb, const uint8_t *p, size_t n)
{
	uint8_t cid[32];
	uint64_t s, e;

	if (verb == OVL_PING)
		return n == 0 ? 0 : -1;
	if (verb == OVL_FETCH)
		return n == OVL_FETCH_REQ_LEN && p[32] <= OVL_MODE_LAST ? 0 : -1;
	if (verb == OVL_FETCH_RANGE)
		return ovl_msg_range_decode(p, n, cid, &s, &e);
	return -1;
}

ssize_t ovl_msg_range_encode(const uint8_t cid[32], uint64_t start, uint64_t end,
                             uint8_t *buf, size_t cap)
{
	wire_w w;

	if (!ovl_span_ok(start, end))
		return -1;
	wire_w_init(&w, buf, cap);
	wire_put_raw(&w, cid, 32);
	wire_put_u64(&w, start);
	wire_put_u64(&w, end);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int ovl_msg_range_decode(const uint8_t *p, size_t n, uint8_t cid[32], uint64_t *start,
                         uint64_t *end)
{
	wire_r r;

	wire_r_init(&r, p, n);
	wire_get_raw(&r, cid, 32);
	*start = wire_get_u64(&r);
	*end = wire_get_u64(&r);
	return wire_end(&r) == 0 && ovl_span_ok(*start, *end) ? 0 : -1;
}

static bool ovl_has_len(uint16_t verb)
{
	return verb == OVL_FETCH || verb == OVL_FETCH_RANGE;
}

size_t ovl_msg_rep_fds(uint16_t verb, uint16_t status)
{
	return verb == OVL_FETCH_RANGE && status == 200 ? 2 : 0;
}

ssize_t ovl_msg_rep_encode(uint16_t verb, uint16_t status, uint64_t len, const char *message,
                           uint8_t *buf, size_t cap)
{
	char msg[OVL_MSG_TEXT_MAX];
	wire_w w;

	wire_w_init(&w, buf, cap);
	if (status == 200) {
		if (ovl_has_len(verb))
			wire_put_u64(&w, len);
	} else if (status >= 400 && status <= 599) {
		snprintf(msg, sizeof msg, "%s", message ? message : "");
		wire_put_str(&w, msg);
	} else {
		return -1;
	}
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int ovl_msg_rep_decode(uint16_t verb, uint16_t status, const uint8_t *p, size_t n,
                       uint64_t *len, char message[OVL_MSG_TEXT_MAX])
{
	wire_r r;

	*len = 0;
	message[0] = '\0';
	if (verb != OVL_PING && !ovl_has_len(verb))
		return -1;
	wire_r_init(&r, p, n);
	if (status == 200) {
		if (ovl_has_len(verb))
			*len = wire_get_u64(&r);
	} else if (status >= 400 && status <= 599) {
		wire_get_str(&r, message, OVL_MSG_TEXT_MAX);
	} else {
		return -1;
	}
	return wire_end(&r);
}

static int ovl_check(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, size_t nfds)
{
	uint64_t len;
	char msg[OVL_MSG_TEXT_MAX];

	return nfds == ovl_msg_rep_fds(verb, status) ?
	       ovl_msg_rep_decode(verb, status, p, n, &len, msg) : -1;
}

ovl_client *ovl_client_new(struct event_base *base, const mn_config *cfg)
{
	static const rpc_client_opts o = {
		.name = "overlay", .app_proto = OVL_APP_PROTO, .call_timeout_ms = OVL_CALL_TIMEOUT_MS,
		.max_pending = OVL_MAX_PENDING, .breaker_failures = 3, .breaker_open_ms = 1000,
		.ping_verb = OVL_PING, .max_request = OVL_RANGE_REQ_LEN, .check = ovl_check,
		.verb_name = ovl_msg_verb_name,
	};
	char path[1024];
	ovl_client *c;

	if (config_socket_path(cfg, OVL_SOCKET, path, sizeof path) != 0)
		return NULL;
	if (!(c = calloc(1, sizeof *c)))
		return NULL;
	if (!(c->rpc = rpc_client_new(base, path, &o))) {
		free(c);
		return NULL;
	}
	return c;
}

void ovl_client_free(ovl_client *c)
{
	if (!c)
		return;
	rpc_client_free(c->rpc);
	free(c);
}

bool ovl_client_ready(const ovl_client *c)
{
	return c && rpc_client_ready(c->rpc);
}

static void on_reply(const rpc_reply *r, void *arg)
{
	const ovl_ctx *x = r->ctx;
	uint64_t len = 0;
	char msg[OVL_MSG_TEXT_MAX] = "";
	int status = r->status;
	bool two = r->fail == RPC_FAIL_NONE && r->nfds == 2 && x->range_cb;

	(void)arg;
	for (size_t i = two ? 2 : 0; i < r->nfds; i++)
		close(r->fds[i]);
	if (r->fail != RPC_FAIL_NONE) {
		snprintf(msg, sizeof msg, "overlay unavailable");
	} else if (ovl_msg_rep_decode(r->verb, (uint16_t)r->status, r->payload, r->len, &len,
	                              msg) != 0) {
		(void)BUG("overlay reply passed the check but does not decode");
	}
	if (!x->range_cb) {
		x->cb(status, len, msg, x->arg);
		return;
	}
	if (status == 200 && !two) {   /* the check makes this impossible */
		(void)BUG("overlay FETCH_RANGE answered 200 without two fds");
		status = 500;
		snprintf(msg, sizeof msg, "overlay error");
	}
	x->range_cb(status, len, status == 200 ? r->fds[0] : -1, status == 200 ? r->fds[1] : -1,
	            msg, x->arg);
}

ovl_call *ovl_fetch(ovl_client *c, const uint8_t cid[32], ovl_mode mode, ovl_fetch_cb cb,
                    void *arg)
{
	ovl_ctx x = { .cb = cb, .arg = arg };
	uint8_t req[OVL_FETCH_REQ_LEN];

	memcpy(req, cid, 32);
	req[32] = (uint8_t)mode;
	return rpc_call_start_ctx(c->rpc, OVL_FETCH, req, sizeof req, on_reply, NULL, &x, sizeof x);
}

ovl_call *ovl_fetch_range(ovl_client *c, const uint8_t cid[32], uint64_t start, uint64_t end,
                          ovl_range_cb cb, void *arg)
{
	ovl_ctx x = { .range_cb = cb, .arg = arg };
	uint8_t buf[OVL_RANGE_REQ_LEN];
	ssize_t n = ovl_msg_range_encode(cid, start, end, buf, sizeof buf);

	/* A bad span is the caller's bug: rpc_client fails a request longer
	 * than max_request (before reading it) with 500 from the loop. */
	if (n < 0)
		return rpc_call_start_ctx(c->rpc, OVL_FETCH_RANGE, NULL, OVL_RANGE_REQ_LEN + 1,
		                          on_reply, NULL, &x, sizeof x);
	return rpc_call_start_ctx(c->rpc, OVL_FETCH_RANGE, buf, (size_t)n, on_reply, NULL, &x,
	                          sizeof x);
}

void ovl_call_cancel(ovl_call *call)
{
	rpc_call_cancel(call);
}
