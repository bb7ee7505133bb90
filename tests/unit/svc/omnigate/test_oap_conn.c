/* The OAP/1 connection (src/svc/omnigate/oap_conn.c) over a socketpair in
 * plaintext: HELLO first, the exact HELLO reply, PING round trip, strict
 * parameters, garbage → close and counter, protocol violations, the 65th
 * stream → 429 (streams held open by a storage socket that never answers),
 * an oversize header → 413 from the header alone then close, and a half
 * header that stalls → cut at the read deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/auth/policy.h"
#include "core/auth/wall.h"
#include "core/auth/wall_test.h"
#include "core/metrics/metrics.h"
#include "core/metrics/reject_test.h"
#include "core/proto/oap.h"
#include "svc/omnigate/omnigate.h"

#define WAIT_MS   2000
#define READ_MS   200u
#define INFLIGHT  64u
#define HELLO_REPLY "{\"max_frame\":1048576,\"max_inflight\":64,\"flags_supported\":255," \
                    "\"versions\":[1],\"transports\":[\"tcp+tls\"]}"

typedef struct env {
	struct event_base *base;
	omnigate           og;
	int                cli;              /* the test's end */
	int                stor_ls;          /* storage socket that never answers */
	char               sock[108];
	uint8_t            in[2 * OAP_MAX_FRAME];
	size_t             inlen;
	bool               eof;
} env;

typedef struct rframe {
	uint16_t flags, code, app;
	uint64_t corr;
	char     payload[512];
	size_t   plen;
} rframe;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int setup(void **state)
{
	env *e = calloc(1, sizeof *e);
	int sv[2];
	struct bufferevent *bev;

	assert_non_null(e);
	e->base = event_base_new();
	assert_non_null(e->base);
	og_init(&e->og, e->base);
	e->og.lim = (og_limits){ .max_inflight = INFLIGHT, .max_connections = 8, .read_ms = READ_MS,
	                         .idle_ms = 5000, .write_ms = 5000, .handshake_ms = 1000,
	                         .max_object = 1u << 20 };
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	e->cli = sv[1];
	evutil_make_socket_nonblocking(sv[0]);
	e->stor_ls = -1;
	bev = bufferevent_socket_new(e->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(bev);
	assert_non_null(oap_conn_new(&e->og, bev, false));
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	env *e = *state;

	while (e->og.conns)
		oap_conn_free(e->og.conns);
	stor_client_free(e->og.stor);
	if (e->stor_ls >= 0) {
		close(e->stor_ls);
		unlink(e->sock);
	}
	close(e->cli);
	event_base_free(e->base);
	free(e);
	return 0;
}

/* A storage socket that accepts calls into its backlog and never answers. */
static void stor_silent(env *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(e->sock, sizeof e->sock, "/tmp/test_oap_conn.%d.sock", (int)getpid());
	unlink(e->sock);
	memcpy(sa.sun_path, e->sock, strlen(e->sock) + 1);
	e->stor_ls = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_true(e->stor_ls >= 0);
	assert_int_equal(bind(e->stor_ls, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(e->stor_ls, 4), 0);
	e->og.stor = stor_client_new(e->base, e->sock);
	assert_non_null(e->og.stor);
}

static void send_raw(env *e, const void *p, size_t n)
{
	assert_int_equal(send(e->cli, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void send_frame(env *e, uint16_t flags, uint16_t code, uint16_t app, uint64_t corr,
                       const char *payload)
{
	uint8_t buf[1024];
	oap_frame f = { .flags = flags, .code = code, .app_proto_id = app, .corr_id = corr,
	                .payload = (const uint8_t *)payload, .payload_len = strlen(payload) };
	ssize_t n = oap_encode(&f, buf, sizeof buf);

	assert_true(n > 0);
	send_raw(e, buf, (size_t)n);
}

/* Run the loop and collect bytes until a whole frame, EOF, or the deadline. */
static bool pump_until_frame(env *e, uint64_t wait_ms)
{
	uint64_t until = now_ms() + wait_ms;
	oap_frame f;
	size_t used;

	while (now_ms() < until) {
		struct pollfd p = { .fd = e->cli, .events = POLLIN };
		ssize_t n;

		if (oap_decode(e->in, e->inlen, 0, &f, &used) == OAP_OK)
			return true;
		(void)event_base_loop(e->base, EVLOOP_NONBLOCK);
		if (poll(&p, 1, 5) == 1) {
			n = recv(e->cli, e->in + e->inlen, sizeof e->in - e->inlen, MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno == ECONNRESET)) {
				e->eof = true;
				return false;
			}
			if (n > 0)
				e->inlen += (size_t)n;
		}
	}
	return false;
}

static void read_frame(env *e, rframe *r)
{
	oap_frame f;
	size_t used;

	assert_true(pump_until_frame(e, WAIT_MS));
	assert_int_equal(oap_decode(e->in, e->inlen, 0, &f, &used), OAP_OK);
	r->flags = f.flags;
	r->code = f.code;
	r->app = f.app_proto_id;
	r->corr = f.corr_id;
	assert_true(f.payload_len < sizeof r->payload);
	memcpy(r->payload, f.payload, f.payload_len);
	r->payload[f.payload_len] = '\0';
	r->plen = f.payload_len;
	memmove(e->in, e->in + used, e->inlen - used);
	e->inlen -= used;
}

static void expect_eof(env *e, uint64_t wait_ms)
{
	assert_false(pump_until_frame(e, wait_ms));
	assert_true(e->eof);
}

static void do_hello(env *e)
{
	rframe r;

	send_frame(e, OAP_F_REQ, 0, OG_APP_HELLO, 42, "{\"ua\":\"test\"}");
	read_frame(e, &r);
	assert_int_equal(r.flags, OAP_F_RESP);
	assert_int_equal(r.code, 200);
	assert_int_equal(r.corr, 42);
	assert_string_equal(r.payload, HELLO_REPLY);
}

static void test_hello_then_ping(void **state)
{
	env *e = *state;
	rframe r;

	do_hello(e);
	send_frame(e, OAP_F_REQ | OAP_F_START | OAP_F_END, OG_VERB_PING, OG_APP_OBJECTS, 7, "{}");
	read_frame(e, &r);
	assert_int_equal(r.flags, OAP_F_RESP | OAP_F_START | OAP_F_END);
	assert_int_equal(r.code, 200);
	assert_int_equal(r.app, OG_APP_OBJECTS);
	assert_int_equal(r.corr, 7);
	assert_string_equal(r.payload, "{}");
	/* The same corr_id may be reused once its stream is done. */
	send_frame(e, OAP_F_REQ | OAP_F_START | OAP_F_END, OG_VERB_PING, OG_APP_OBJECTS, 7, "");
	read_frame(e, &r);
	assert_int_equal(r.code, 200);
}

static void test_hello_required(void **state)
{
	env *e = *state;
	uint64_t before = reject_value(REJECT_FAMILY_OAP, REJECT_HELLO);
	rframe r;

	send_frame(e, OAP_F_REQ | OAP_F_START | OAP_F_END, OG_VERB_PING, OG_APP_OBJECTS, 5, "{}");
	read_frame(e, &r);
	assert_int_equal(r.code, 400);
	assert_int_equal(r.corr, 5);
	assert_non_null(strstr(r.payload, "\"code\":\"bad_request\""));
	assert_non_null(strstr(r.payload, "\"corr_id\":\"0000000000000005\""));
	expect_eof(e, WAIT_MS);
	assert_int_equal(reject_value(REJECT_FAMILY_OAP, REJECT_HELLO), before + 1);
}

static void test_strict_params(void **state)
{
	env *e = *state;
	rframe r;

	do_hello(e);
	send_frame(e, OAP_F_REQ | OAP_F_START | OAP_F_END, OG_VERB_PING, OG_APP_OBJECTS, 1,
	           "{\"x\":1}");
	read_frame(e, &r);
	assert_int_equal(r.code, 400);
	send_frame(e, OAP_F_REQ | OAP_F_START | OAP_F_END, 99, OG_APP_OBJECTS, 2, "{}");
	read_frame(e, &r);
	assert_int_equal(r.code, 400);
	assert_non_null(strstr(r.payload, "unknown verb"));
	/* Bodiless verb without END: 400, then its END is swallowed. */
	send_frame(e, OAP_F_REQ | OAP_F_START, OG_VERB_PING, OG_APP_OBJECTS, 3, "{}");
	read_frame(e, &r);
	assert_int_equal(r.code, 400);
	send_frame(e, OAP_F_REQ | OAP_F_END, 0, OG_APP_OBJECTS, 3, "junk");
	send_frame(e, OAP_F_REQ | OAP_F_START | OAP_F_END, OG_VERB_PING, OG_APP_OBJECTS, 4, "");
	read_frame(e, &r);
	assert_int_equal(r.corr, 4);
	assert_int_equal(r.code, 200);
}

static void test_garbage_after_hello(void **state)
{
	env *e = *state;
	uint64_t before = reject_value(REJECT_FAMILY_OAP, REJECT_MALFORMED);
	static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\nxxxxxxxxxxxxxxxxxxxxxxxx";

	do_hello(e);
	send_raw(e, junk, sizeof junk - 1);
	expect_eof(e, WAIT_MS);
	assert_int_equal(e->inlen, 0);   /* closed without an answer */
	assert_int_equal(reject_value(REJECT_FAMILY_OAP, REJECT_MALFORMED), before + 1);
}

static void test_unknown_stream(void **state)
{
	env *e = *state;
	rframe r;

	do_hello(e);
	send_frame(e, OAP_F_REQ, 0, OG_APP_OBJECTS, 9, "data");
	read_frame(e, &r);
	assert_int_equal(r.code, 400);
	assert_int_equal(r.corr, 9);
	expect_eof(e, WAIT_MS);
}

static void test_65th_stream(void **state)
{
	env *e = *state;
	uint64_t before = reject_value(REJECT_FAMILY_OAP, REJECT_INFLIGHT);
	char p[128];
	rframe r;

	stor_silent(e);
	do_hello(e);
	snprintf(p, sizeof p, "{\"cid\":\"b3:%064d\"}", 0);
	for (uint64_t i = 0; i < INFLIGHT; i++)
		send_frame(e, OAP_F_REQ | OAP_F_START | OAP_F_END, OG_VERB_STAT, OG_APP_OBJECTS,
		           100 + i, p);
	send_frame(e, OAP_F_REQ | OAP_F_START | OAP_F_END, OG_VERB_STAT, OG_APP_OBJECTS, 999, p);
	read_frame(e, &r);
	assert_int_equal(r.corr, 999);
	assert_int_equal(r.code, 429);
	assert_non_null(strstr(r.payload, "\"retryable\":true"));
	assert_int_equal(reject_value(REJECT_FAMILY_OAP, REJECT_INFLIGHT), before + 1);
	/* The 64 are still open: none of them has been answered. */
	assert_false(pump_until_frame(e, 100));
	assert_false(e->eof);
}

static void test_oversize_header(void **state)
{
	env *e = *state;
	uint8_t hdr[OAP_HDR_LEN] = { 0 };
	uint64_t before = reject_value(REJECT_FAMILY_OAP, REJECT_TOO_LARGE);
	rframe r;

	do_hello(e);
	/* Only the header: the 413 must be decided from it alone. */
	hdr[0] = 0x00; hdr[1] = 0x20; hdr[2] = 0x00; hdr[3] = 0x26;   /* 2 MiB + 38 */
	hdr[5] = 1;                                                   /* ver */
	hdr[7] = OAP_F_REQ | OAP_F_START;
	hdr[8] = 0x12; hdr[9] = 0x34;                                 /* code: not echoed */
	hdr[10] = (uint8_t)(OG_APP_OBJECTS >> 8); hdr[11] = (uint8_t)OG_APP_OBJECTS;
	hdr[37] = 77;                                                 /* corr_id */
	send_raw(e, hdr, sizeof hdr);
	read_frame(e, &r);
	assert_int_equal(r.code, 413);
	assert_int_equal(r.corr, 77);
	assert_int_equal(r.app, OG_APP_OBJECTS);   /* read at its own offset (10), not code's */
	assert_non_null(strstr(r.payload, "\"code\":\"payload_too_large\""));
	expect_eof(e, WAIT_MS);
	assert_int_equal(reject_value(REJECT_FAMILY_OAP, REJECT_TOO_LARGE), before + 1);
}

static void test_half_header_stall(void **state)
{
	env *e = *state;
	uint8_t buf[128];
	uint64_t before = reject_value(REJECT_FAMILY_OAP, REJECT_TIMEOUT), t0;
	oap_frame f = { .flags = OAP_F_REQ | OAP_F_START | OAP_F_END, .code = OG_VERB_PING,
	                .app_proto_id = OG_APP_OBJECTS, .corr_id = 1 };
	ssize_t n = oap_encode(&f, buf, sizeof buf);

	do_hello(e);
	assert_true(n > 20);
	send_raw(e, buf, 20);
	t0 = now_ms();
	expect_eof(e, WAIT_MS);
	assert_true(now_ms() - t0 >= READ_MS - 20);
	assert_int_equal(e->inlen, 0);
	assert_int_equal(reject_value(REJECT_FAMILY_OAP, REJECT_TIMEOUT), before + 1);
}

static void test_conn_gauge(void **state)
{
	env *e = *state;

	assert_int_equal(e->og.nconns, 1);
	oap_conn_free(e->og.conns);
	assert_int_equal(e->og.nconns, 0);
	assert_null(e->og.conns);
	expect_eof(e, WAIT_MS);
}

/* With the wall: an admitted stream holds its ticket until it is swept
 * (here: the connection closes while storage never answers), a refused one
 * ends its ticket at the refusal. No ticket outlives the connection. */
static void test_wall_tickets(void **state)
{
	static const char bundle[] =
		"{\"version\":3,\"defaults\":{\"default_action\":\"deny\"},\"rules\":["
		"{\"id\":\"stat\",\"when\":{\"method\":\"HEAD\"},\"action\":\"allow\"}]}";
	env *e = *state;
	char err[256], p[128];
	uint64_t before = reject_value(REJECT_FAMILY_OAP, REJECT_UNAUTH);
	policy *pol = policy_parse(bundle, strlen(bundle), err, sizeof err);
	rframe r;

	assert_non_null(pol);
	assert_non_null(e->og.wall = wall_new());
	wall_set_policy(e->og.wall, pol, NULL);
	stor_silent(e);
	do_hello(e);
	snprintf(p, sizeof p, "{\"cid\":\"b3:%064d\"}", 0);
	for (uint64_t i = 0; i < 3; i++)
		send_frame(e, OAP_F_REQ | OAP_F_START | OAP_F_END, OG_VERB_STAT, OG_APP_OBJECTS,
		           100 + i, p);
	send_frame(e, OAP_F_REQ | OAP_F_START, OG_VERB_PUT, OG_APP_OBJECTS, 7, "");
	read_frame(e, &r);
	assert_int_equal(r.corr, 7);
	assert_int_equal(r.code, 401);                  /* anonymous PUT: refused */
	assert_int_equal(reject_value(REJECT_FAMILY_OAP, REJECT_UNAUTH), before + 1);
	assert_int_equal(wall_tickets_out(e->og.wall), 3);   /* the three STATs */
	while (e->og.conns)
		oap_conn_free(e->og.conns);
	assert_int_equal(wall_tickets_out(e->og.wall), 0);
	wall_free(e->og.wall);
	e->og.wall = NULL;
	policy_free(pol);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hello_then_ping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hello_required, setup, teardown),
		cmocka_unit_test_setup_teardown(test_strict_params, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_after_hello, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_65th_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversize_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_header_stall, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conn_gauge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wall_tickets, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
