/*
 * social_client.c — the social service's typed client (see social_client.h):
 * social_msg.h requests become rpc_client calls, replies a social_rep.
 */
#include "core/social/social_client.h"

#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "core/config/config.h"
#include "core/proto/rpc_client.h"
#include "lib/log.h"

typedef struct social_ctx {
	social_cb cb;
} social_ctx;

_Static_assert(sizeof(social_ctx) <= RPC_CALL_CTX_MAX, "social_ctx fits an rpc call");

/* Decoded replies are large (a FEED page): static, loop thread only. The
 * check decodes each reply; the callback that follows it for the same bytes
 * takes that decoding as it is (checked_p/checked_n say which bytes). */
static social_rep social_client_rep;
static const uint8_t *checked_p;
static size_t checked_n;

static int social_check(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, size_t nfds)
{
	checked_p = NULL;
	if (nfds != 0 || social_msg_rep_decode(verb, status, p, n, &social_client_rep) != 0)
		return -1;
	checked_p = p;
	checked_n = n;
	return 0;
}

static const rpc_client_opts social_opts = {
	.name = "social", .app_proto = SOCIAL_APP_PROTO, .call_timeout_ms = SOCIAL_CALL_TIMEOUT_MS,
	.max_pending = SOCIAL_MAX_PENDING, .breaker_failures = SOCIAL_BREAKER_FAILURES,
	.breaker_open_ms = SOCIAL_BREAKER_OPEN_MS, .ping_verb = SOCIAL_PING,
	.max_request = SOCIAL_MSG_MAX, .check = social_check, .verb_name = social_msg_verb_name,
};

social_client *social_client_new(struct event_base *base, const char *socket_path)
{
	return (social_client *)rpc_client_new(base, socket_path, &social_opts);
}

social_client *social_client_for(struct event_base *base, const mn_config *cfg)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];

	if (config_socket_path(cfg, SOCIAL_SOCK, path, sizeof path) != 0) {
		log_kv(LOG_LEVEL_ERROR, "social socket path too long", "runtime_dir",
		       cfg->runtime_dir, LOG_END);
		return NULL;
	}
	return social_client_new(base, path);
}

void social_client_free(social_client *c)
{
	rpc_client_free((rpc_client *)c);
}

bool social_client_ready(const social_client *c)
{
	return rpc_client_ready((const rpc_client *)c);
}

static const char *social_fail_msg(rpc_fail why)
{
	switch (why) {
	case RPC_FAIL_BREAKER:     return "social service unavailable (breaker open)";
	case RPC_FAIL_BUSY:        return "too many social calls in flight";
	case RPC_FAIL_UNREACHABLE: return "social service unreachable";
	case RPC_FAIL_TIMEOUT:     return "social call timed out";
	case RPC_FAIL_NOMEM:       return "out of memory";
	case RPC_FAIL_ENCODE:      return "social request does not encode";
	default:                   return "social connection lost";
	}
}

static void on_reply(const rpc_reply *r, void *arg)
{
	social_rep *rep = &social_client_rep;
	social_ctx x;

	memcpy(&x, r->ctx, sizeof x);
	if (r->fail != RPC_FAIL_NONE) {
		social_msg_rep_err(rep, r->verb, (uint16_t)r->status,
		                   r->fail == RPC_FAIL_TIMEOUT ? "timeout" : "unavailable",
		                   social_fail_msg(r->fail));
	} else if ((r->payload != checked_p || r->len != checked_n ||
	            rep->verb != r->verb || rep->status != r->status) &&
	           social_msg_rep_decode(r->verb, (uint16_t)r->status, r->payload, r->len, rep) != 0) {
		(void)BUG("social reply passed its check but does not decode");
		social_msg_rep_err(rep, r->verb, 500, "internal", "social reply does not decode");
	}
	checked_p = NULL;
	x.cb(rep, arg);
}

social_call *social_call_start(social_client *c, const social_req *q, social_cb cb, void *arg)
{
	static uint8_t payload[SOCIAL_MSG_MAX];
	ssize_t n = social_msg_req_encode(q, payload, sizeof payload);
	social_ctx x = { .cb = cb };

	if (n < 0)   /* a caller's bug (a field not checked): rpc_client answers 500 */
		n = (ssize_t)sizeof payload + 1;
	return (social_call *)rpc_call_start_ctx((rpc_client *)c, q->verb, payload, (size_t)n,
	                                         cb ? on_reply : NULL, arg, &x, sizeof x);
}

void social_call_cancel(social_call *call)
{
	rpc_call_cancel((rpc_call *)call);
}
