/* The generic internal RPC client (src/core/proto/rpc_client.h) against a
 * scripted server on the same loop: replies matched by corr_id in any order,
 * the caller's context handed back, the pending cap, and the per-call
 * deadline (504, connection reset). The storage client's suite
 * (core/objects/test_stor.c) covers the breaker, fds and the fatal rule
 * through the typed layer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include "core/proto/oap.h"
#include "core/proto/rpc_client.h"
#include "lib/ipc.h"
#include "lib/util.h"

#define APP       0x7f00u
#define PING      1u
#define ECHO      2u
#define WAIT_MS   3000u
#define TIMEOUT_MS 300u

typedef struct got {
	bool     done;
	int      status;
	rpc_fail fail;
	uint8_t  body[16];
	size_t   len;
	uint32_t ctx;
	int      seq;
} got;

static struct event_base *base;
static char dir[64], path[128];
static int lfd = -1, sfd = -1, seq;

static int check(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, size_t nfds)
{
	(void)p;
	return (verb == PING || verb == ECHO) && status == 200 && n <= 16 && nfds == 0 ? 0 : -1;
}

static const char *vname(uint16_t verb)
{
	return verb == PING ? "PING" : "ECHO";
}

static rpc_client_opts opts(uint32_t max_pending)
{
	return (rpc_client_opts){ .name = "test", .app_proto = APP, .call_timeout_ms = TIMEOUT_MS,
	                          .max_pending = max_pending, .breaker_failures = 100,
	                          .breaker_open_ms = 1000, .ping_verb = PING, .max_request = 16,
	                          .check = check, .verb_name = vname };
}

static void on_got(const rpc_reply *r, void *arg)
{
	got *g = arg;

	g->done = true;
	g->status = r->status;
	g->fail = r->fail;
	g->seq = seq++;
	g->len = r->len < sizeof g->body ? r->len : sizeof g->body;
	if (r->payload)
		memcpy(g->body, r->payload, g->len);
	if (r->ctx)
		memcpy(&g->ctx, r->ctx, sizeof g->ctx);
}

static void run_until(const bool *flag, uint64_t ms)
{
	uint64_t end = util_now_ms() + ms;

	while ((!flag || !*flag) && util_now_ms() < end)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* The server side: accept once, then read one request frame. */
static uint64_t server_read(uint16_t *verb, uint8_t *payload, size_t *plen)
{
	uint8_t buf[256];
	oap_frame f;
	size_t used;
	ssize_t n;

	if (sfd < 0) {
		run_until(NULL, 20);
		sfd = accept(lfd, NULL, NULL);
		assert_true(sfd >= 0);
	}
	n = recv(sfd, buf, sizeof buf, 0);
	assert_true(n > 0);
	assert_int_equal(oap_decode(buf, (size_t)n, 0, &f, &used), OAP_OK);
	assert_int_equal(f.app_proto_id, APP);
	*verb = f.code;
	*plen = f.payload_len;
	memcpy(payload, f.payload, f.payload_len);
	return f.corr_id;
}

static void server_reply(uint64_t corr, const uint8_t *payload, size_t len)
{
	uint8_t buf[256];
	oap_frame f = { .flags = OAP_F_RESP, .code = 200, .app_proto_id = APP, .corr_id = corr,
	                .payload = payload, .payload_len = len };
	ssize_t n = oap_encode(&f, buf, sizeof buf);

	assert_true(n > 0);
	assert_int_equal(ipc_send(sfd, buf, (size_t)n, NULL, 0), 0);
}

static int setup(void **state)
{
	char err[256];

	(void)state;
	snprintf(dir, sizeof dir, "/tmp/mn-rpc-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/t.sock", dir);
	lfd = util_listen_unix(path, SOCK_SEQPACKET, 0600, err, sizeof err);
	assert_true(lfd >= 0);
	base = event_base_new();
	seq = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (sfd >= 0)
		close(sfd);
	sfd = -1;
	close(lfd);
	unlink(path);
	rmdir(dir);
	event_base_free(base);
	return 0;
}

/* Two calls answered in reverse order: each reply reaches its own call,
 * with its own context. */
static void test_out_of_order(void **state)
{
	rpc_client_opts o = opts(8);
	rpc_client *c = rpc_client_new(base, path, &o);
	got a = { 0 }, b = { 0 };
	uint32_t ca = 11, cb = 22;
	uint8_t p[16];
	size_t n;
	uint16_t verb;

	(void)state;
	assert_non_null(rpc_call_start_ctx(c, ECHO, (const uint8_t *)"a", 1, on_got, &a, &ca, 4));
	assert_non_null(rpc_call_start_ctx(c, ECHO, (const uint8_t *)"bb", 2, on_got, &b, &cb, 4));
	uint64_t c1 = server_read(&verb, p, &n);
	assert_int_equal(verb, ECHO);
	assert_int_equal(n, 1);
	uint64_t c2 = server_read(&verb, p, &n);
	assert_int_equal(n, 2);
	server_reply(c2, (const uint8_t *)"BB", 2);
	server_reply(c1, (const uint8_t *)"A", 1);
	run_until(&a.done, WAIT_MS);
	assert_true(a.done && b.done);
	assert_int_equal(b.seq, 0);          /* the second call finished first */
	assert_int_equal(a.status, 200);
	assert_memory_equal(a.body, "A", 1);
	assert_memory_equal(b.body, "BB", 2);
	assert_int_equal(a.ctx, 11);
	assert_int_equal(b.ctx, 22);
	assert_true(rpc_client_ready(c));
	rpc_client_free(c);
}

/* Past max_pending: 503 BUSY at once (asynchronously); a request larger
 * than max_request: 500 ENCODE. */
static void test_pending_cap(void **state)
{
	rpc_client_opts o = opts(1);
	rpc_client *c = rpc_client_new(base, path, &o);
	got a = { 0 }, b = { 0 }, big = { 0 };
	uint8_t large[17] = { 0 };

	(void)state;
	assert_non_null(rpc_call_start(c, ECHO, NULL, 0, on_got, &a));
	assert_non_null(rpc_call_start(c, ECHO, NULL, 0, on_got, &b));
	assert_non_null(rpc_call_start(c, ECHO, large, sizeof large, on_got, &big));
	assert_false(b.done);                 /* never inside the call */
	run_until(&b.done, WAIT_MS);
	assert_int_equal(b.status, 503);
	assert_int_equal(b.fail, RPC_FAIL_BUSY);
	run_until(&big.done, WAIT_MS);
	assert_int_equal(big.status, 500);
	assert_int_equal(big.fail, RPC_FAIL_ENCODE);
	assert_false(a.done);
	rpc_client_free(c);                   /* a is dropped: no callback */
	run_until(NULL, 50);
	assert_false(a.done);
}

/* A server that never answers: 504 TIMEOUT after the deadline, for every
 * call on the connection; a cancelled call gets nothing. */
static void test_timeout(void **state)
{
	rpc_client_opts o = opts(8);
	rpc_client *c = rpc_client_new(base, path, &o);
	got a = { 0 }, b = { 0 }, x = { 0 };

	(void)state;
	uint64_t t0 = util_now_ms();
	assert_non_null(rpc_call_start(c, ECHO, NULL, 0, on_got, &a));
	rpc_call *cx = rpc_call_start(c, ECHO, NULL, 0, on_got, &x);
	assert_non_null(rpc_call_start(c, ECHO, NULL, 0, on_got, &b));
	rpc_call_cancel(cx);
	run_until(&b.done, WAIT_MS);
	assert_true(util_now_ms() - t0 >= TIMEOUT_MS - 10);
	assert_int_equal(a.status, 504);
	assert_int_equal(a.fail, RPC_FAIL_TIMEOUT);
	assert_int_equal(b.status, 504);
	assert_false(x.done);
	rpc_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_out_of_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
