/*
 * mb_client.c — the mailbox service's typed client (see mb_client.h):
 * mb_msg.h requests become rpc_client calls, replies become mb_result. A
 * SEND's body goes in a sealed memfd written here; the bodies of a RECV or
 * DLQ reply arrive in one sealed memfd: mapped read-only for the callback,
 * its size checked against the items.
 */
#include "core/mailbox/mb_client.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/config/config.h"
#include "core/proto/rpc_client.h"
#include "lib/log.h"
#include "lib/util.h"

typedef struct mb_ctx {
	mb_cb cb;
} mb_ctx;

_Static_assert(sizeof(mb_ctx) <= RPC_CALL_CTX_MAX, "mb_ctx fits an rpc call");

static int mb_check(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, size_t nfds)
{
	static mb_rep rep;   /* loop thread; large */

	if (mb_msg_rep_decode(verb, status, p, n, &rep) != 0)
		return -1;
	return nfds == (mb_msg_rep_has_fd(&rep) ? 1u : 0u) ? 0 : -1;
}

static const rpc_client_opts mb_opts = {
	.name = "mailbox", .app_proto = MB_APP_PROTO, .call_timeout_ms = MB_CALL_TIMEOUT_MS,
	.max_pending = MB_MAX_PENDING, .breaker_failures = MB_BREAKER_FAILURES,
	.breaker_open_ms = MB_BREAKER_OPEN_MS, .ping_verb = MB_PING,
	.max_request = MB_MSG_MAX, .check = mb_check, .verb_name = mb_msg_verb_name,
};

mb_client *mb_client_for(struct event_base *base, const mn_config *cfg)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];

	if (config_socket_path(cfg, MB_SOCK, path, sizeof path) != 0) {
		log_kv(LOG_LEVEL_ERROR, "mailbox socket path too long", "runtime_dir",
		       cfg->runtime_dir, LOG_END);
		return NULL;
	}
	return (mb_client *)rpc_client_new(base, path, &mb_opts);
}

void mb_client_free(mb_client *c)
{
	rpc_client_free((rpc_client *)c);
}

bool mb_client_ready(const mb_client *c)
{
	return rpc_client_ready((const rpc_client *)c);
}

static const char *mb_fail_msg(rpc_fail why)
{
	switch (why) {
	case RPC_FAIL_BREAKER:     return "mailbox unavailable (breaker open)";
	case RPC_FAIL_BUSY:        return "too many mailbox calls in flight";
	case RPC_FAIL_UNREACHABLE: return "mailbox unreachable";
	case RPC_FAIL_TIMEOUT:     return "mailbox call timed out";
	case RPC_FAIL_NOMEM:       return "out of memory";
	case RPC_FAIL_ENCODE:      return "mailbox request does not encode";
	default:                   return "mailbox connection lost";
	}
}

static uint64_t mb_bodies_total(const mb_rep *rep)
{
	uint64_t t = 0;

	for (unsigned i = 0; i < rep->u.items.n; i++)
		t += rep->u.items.items[i].body_len;
	return t;
}

/* Map the reply's memfd (its size must be the items' bodies). 0, or -1. */
static int mb_map_bodies(int fd, const mb_rep *rep, void **map, size_t *len)
{
	struct stat st;
	uint64_t want = mb_bodies_total(rep);

	if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != want || want == 0)
		return -1;
	*map = mmap(NULL, (size_t)want, PROT_READ, MAP_PRIVATE, fd, 0);
	if (*map == MAP_FAILED)
		return -1;
	*len = (size_t)want;
	return 0;
}

static void on_reply(const rpc_reply *r, void *arg)
{
	static mb_rep rep;   /* loop thread */
	mb_result res = { .status = r->status, .code = "", .message = "" };
	void *map = NULL;
	size_t maplen = 0;
	mb_ctx x;

	memcpy(&x, r->ctx, sizeof x);
	if (r->fail != RPC_FAIL_NONE) {
		res.code = r->status == 504 ? "timeout" : "unavailable";
		res.message = mb_fail_msg(r->fail);
	} else if (mb_msg_rep_decode(r->verb, (uint16_t)r->status, r->payload, r->len, &rep) != 0) {
		res.status = 500;
		res.code = "internal";
		res.message = "mailbox reply does not decode";
	} else if (rep.status != 200) {
		res.code = rep.u.err.code;
		res.message = rep.u.err.message;
	} else {
		res.rep = &rep;
		if (r->nfds == 1 && mb_map_bodies(r->fds[0], &rep, &map, &maplen) != 0) {
			res = (mb_result){ .status = 500, .code = "internal",
			                   .message = "mailbox bodies do not match their items" };
		}
		res.bodies = map;
		res.bodies_len = maplen;
	}
	for (size_t i = 0; i < r->nfds; i++)
		close(r->fds[i]);
	x.cb(&res, arg);
	if (map)
		munmap(map, maplen);
}

/* A SEND's body in a sealed memfd of exactly its length. -1 on failure. */
static int mb_body_fd(const mb_req_send *s)
{
	int fd = memfd_create("mailbox-send", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -1;
	if (util_write_all(fd, s->body, s->body_len) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

mb_call *mb_call_start(mb_client *c, const mb_req *q, mb_cb cb, void *arg)
{
	static uint8_t payload[MB_MSG_MAX];   /* loop thread; copied by the rpc call */
	ssize_t n = mb_msg_req_encode(q, payload, sizeof payload);
	mb_ctx x = { .cb = cb };
	int fd = -1;

	if (n < 0)   /* a caller's bug: rpc_client answers 500 */
		n = (ssize_t)sizeof payload + 1;
	else if (mb_msg_req_has_fd(q) && (fd = mb_body_fd(&q->u.send)) < 0)
		n = (ssize_t)sizeof payload + 1;   /* no memfd: answered 500 as well */
	return (mb_call *)rpc_call_start_fd((rpc_client *)c, q->verb, payload, (size_t)n, fd,
	                                    cb ? on_reply : NULL, arg, &x, sizeof x);
}

void mb_call_cancel(mb_call *call)
{
	rpc_call_cancel((rpc_call *)call);
}
