/* rpc_server with rpc_client over a real SOCK_SEQPACKET socket: replies in
 * any order, requests whose connection went away, the pending cap, a
 * request that carries an fd (request_fds). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/net/rpc_server.h"
#include "core/proto/rpc_client.h"

#define APP 0x0777u
#define VERB_ECHO 1u
#define VERB_LATER 2u
#define VERB_FD 3u
#define VERB_PING 9u

static struct {
	struct event_base *base;
	char      path[108];
	int       lfd;
	rpc_server *srv;
	rpc_client *cli;
	rpc_req  *held[8];
	unsigned  nheld;
	char      got[8][16];
	int       status[8];
	unsigned  ngot;
} S;

static int check_req(uint16_t verb, const uint8_t *p, size_t n)
{
	(void)p;
	return (verb == VERB_ECHO || verb == VERB_LATER || verb == VERB_FD ||
	        (verb == VERB_PING && n == 0)) ? 0 : -1;
}

static int check_rep(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, size_t nfds)
{
	(void)verb; (void)status; (void)p; (void)n;
	return nfds == 0 ? 0 : -1;
}

static const char *verb_name(uint16_t v)
{
	return v == VERB_ECHO ? "ECHO" : v == VERB_LATER ? "LATER" : "PING";
}

static void handle(rpc_req *q, uint16_t verb, const uint8_t *p, size_t n, void *arg)
{
	(void)arg;
	if (verb == VERB_LATER) {
		S.held[S.nheld++] = q;     /* answered by the test, out of order */
		return;
	}
	if (verb == VERB_FD) {         /* answer with what the fd holds */
		char buf[16];
		int fd = rpc_req_take_fd(q);
		ssize_t got = fd >= 0 ? pread(fd, buf, sizeof buf, 0) : -1;
		if (fd >= 0)
			close(fd);
		assert_int_equal(rpc_req_take_fd(q), -1);   /* taken once */
		rpc_server_reply(q, 200, (const uint8_t *)buf, got > 0 ? (size_t)got : 0, NULL, 0);
		return;
	}
	rpc_server_reply(q, 200, p, n, NULL, 0);
}

static void on_reply(const rpc_reply *r, void *arg)
{
	(void)arg;
	unsigned i = S.ngot++ % 8;
	S.status[i] = r->status;
	snprintf(S.got[i], sizeof S.got[i], "%.*s", (int)(r->payload ? r->len : 0),
	         r->payload ? (const char *)r->payload : "");
	event_base_loopbreak(S.base);
}

static int setup(void **st)
{
	(void)st;
	memset(&S, 0, sizeof S);
	S.base = event_base_new();
	snprintf(S.path, sizeof S.path, "/tmp/mn-rpc-%d.sock", (int)getpid());
	unlink(S.path);
	S.lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", S.path);
	if (bind(S.lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(S.lfd, 16) != 0)
		return -1;
	rpc_server_opts so = { .name = "test", .app_proto = APP, .max_conns = 4, .max_pending = 4,
	                       .check = check_req, .verb_name = verb_name, .handle = handle,
	                       .request_fds = true };
	S.srv = rpc_server_new(S.base, S.lfd, &so);
	rpc_client_opts co = { .name = "test", .app_proto = APP, .call_timeout_ms = 2000,
	                       .max_pending = 16, .breaker_failures = 3, .breaker_open_ms = 1000,
	                       .ping_verb = VERB_PING, .max_request = 1024,
	                       .check = check_rep, .verb_name = verb_name };
	S.cli = rpc_client_new(S.base, S.path, &co);
	return S.srv && S.cli ? 0 : -1;
}

static int teardown(void **st)
{
	(void)st;
	rpc_client_free(S.cli);
	rpc_server_free(S.srv);
	close(S.lfd);
	unlink(S.path);
	event_base_free(S.base);
	return 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what; (void)arg;
	/* answer the held requests in reverse order */
	while (S.nheld > 0) {
		rpc_req *q = S.held[--S.nheld];
		rpc_server_reply(q, 201, (const uint8_t *)"late", 4, NULL, 0);
	}
}

static void test_replies_in_any_order(void **st)
{
	(void)st;
	assert_non_null(rpc_call_start(S.cli, VERB_LATER, (const uint8_t *)"x", 1, on_reply, NULL));
	assert_non_null(rpc_call_start(S.cli, VERB_ECHO, (const uint8_t *)"hello", 5, on_reply, NULL));
	event_base_dispatch(S.base);
	assert_int_equal(S.ngot, 1);
	assert_string_equal(S.got[0], "hello");   /* the later request answered first */
	assert_int_equal(S.status[0], 200);
	assert_int_equal(S.nheld, 1);
	struct event *t = evtimer_new(S.base, on_timer, NULL);
	struct timeval tv = { 0, 1000 };
	evtimer_add(t, &tv);
	event_base_dispatch(S.base);
	assert_string_equal(S.got[1], "late");
	assert_int_equal(S.status[1], 201);
	event_free(t);
}

static void test_request_carries_an_fd(void **st)
{
	int fd = memfd_create("t", MFD_CLOEXEC);

	(void)st;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "from-fd", 7), 7);
	assert_non_null(rpc_call_start_fd(S.cli, VERB_FD, (const uint8_t *)"", 0, fd, on_reply, NULL,
	                                  NULL, 0));
	event_base_dispatch(S.base);
	assert_int_equal(S.status[0], 200);
	assert_string_equal(S.got[0], "from-fd");
	/* an echo without an fd still works beside it; an fd handed to a NULL
	 * client is closed, not leaked */
	assert_non_null(rpc_call_start(S.cli, VERB_ECHO, (const uint8_t *)"hi", 2, on_reply, NULL));
	event_base_dispatch(S.base);
	assert_string_equal(S.got[1], "hi");
	fd = memfd_create("t2", MFD_CLOEXEC);
	assert_null(rpc_call_start_fd(NULL, VERB_FD, NULL, 0, fd, on_reply, NULL, NULL, 0));
	assert_int_equal(fcntl(fd, F_GETFD), -1);
}

static void test_reply_after_the_client_left_is_dropped(void **st)
{
	(void)st;
	assert_non_null(rpc_call_start(S.cli, VERB_LATER, (const uint8_t *)"x", 1, on_reply, NULL));
	struct timeval tv = { 0, 50000 };
	event_base_loopexit(S.base, &tv);
	event_base_dispatch(S.base);
	assert_int_equal(S.nheld, 1);
	assert_int_equal(rpc_server_conns(S.srv), 1);
	rpc_client_free(S.cli);       /* the caller goes away with its call pending */
	S.cli = NULL;
	event_base_loopexit(S.base, &tv);
	event_base_dispatch(S.base);
	assert_int_equal(rpc_server_conns(S.srv), 0);
	assert_true(rpc_req_is_orphan(S.held[0]));
	rpc_server_reply(S.held[0], 200, NULL, 0, NULL, 0);   /* freed, nothing sent */
	S.nheld = 0;
	assert_int_equal(S.ngot, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_replies_in_any_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_after_the_client_left_is_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_carries_an_fd, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
