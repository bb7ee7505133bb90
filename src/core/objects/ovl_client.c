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
	ovl_fetch_cb cb;
	void        *arg;
} ovl_ctx;

_Static_assert(sizeof(ovl_ctx) <= RPC_CALL_CTX_MAX, "context fits the call");

const char *ovl_msg_verb_name(uint16_t verb)
{
	switch (verb) {
	case OVL_PING:  return "PING";
	case OVL_FETCH: return "FETCH";
	default:        return "unknown";
	}
}

int ovl_msg_req_check(uint16_t verb, const uint8_t *p, size_t n)
{
	if (verb == OVL_PING)
		return n == 0 ? 0 : -1;
	if (verb == OVL_FETCH)
		return n == OVL_FETCH_REQ_LEN && p[32] <= OVL_MODE_LAST ? 0 : -1;
	return -1;
}

ssize_t ovl_msg_rep_encode(uint16_t verb, uint16_t status, uint64_t len, const char *message,
                           uint8_t *buf, size_t cap)
{
	char msg[OVL_MSG_TEXT_MAX];
	wire_w w;

	wire_w_init(&w, buf, cap);
	if (status == 200) {
		if (verb == OVL_FETCH)
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
	if (verb != OVL_PING && verb != OVL_FETCH)
		return -1;
	wire_r_init(&r, p, n);
	if (status == 200) {
		if (verb == OVL_FETCH)
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

	return nfds == 0 ? ovl_msg_rep_decode(verb, status, p, n, &len, msg) : -1;
}

ovl_client *ovl_client_new(struct event_base *base, const mn_config *cfg)
{
	static const rpc_client_opts o = {
		.name = "overlay", .app_proto = OVL_APP_PROTO, .call_timeout_ms = OVL_CALL_TIMEOUT_MS,
		.max_pending = OVL_MAX_PENDING, .breaker_failures = 3, .breaker_open_ms = 1000,
		.ping_verb = OVL_PING, .max_request = OVL_FETCH_REQ_LEN, .check = ovl_check,
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

	(void)arg;
	for (size_t i = 0; i < r->nfds; i++)
		close(r->fds[i]);
	if (r->fail != RPC_FAIL_NONE)
		snprintf(msg, sizeof msg, "overlay unavailable");
	else if (ovl_msg_rep_decode(r->verb, (uint16_t)r->status, r->payload, r->len, &len, msg) != 0)
		(void)BUG("overlay reply passed the check but does not decode");
	x->cb(r->status, len, msg, x->arg);
}

ovl_call *ovl_fetch(ovl_client *c, const uint8_t cid[32], ovl_mode mode, ovl_fetch_cb cb,
                    void *arg)
{
	ovl_ctx x = { cb, arg };
	uint8_t req[OVL_FETCH_REQ_LEN];

	memcpy(req, cid, 32);
	req[32] = (uint8_t)mode;
	return rpc_call_start_ctx(c->rpc, OVL_FETCH, req, sizeof req, on_reply, NULL, &x, sizeof x);
}

void ovl_call_cancel(ovl_call *call)
{
	rpc_call_cancel(call);
}
