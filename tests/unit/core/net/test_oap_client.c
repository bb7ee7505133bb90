/*
 * test_oap_client.c — the peer plane's OAP/1 client (core/net/oap_client.c)
 * against a real omnigate connection (svc/omnigate/oap_conn.c) served in the
 * same event loop over loopback TCP, with the peer plane's TLS on both ends:
 * pin ok (HELLO, PING, a refused STAT with its envelope, and the server
 * knows the client's node id), pin mismatch (the error names both ids),
 * connect refused, a handshake that never completes and a HELLO that is
 * never answered (deadlines), and freeing the client from its callbacks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/config/config.h"
#include "core/identity/identity.h"
#include "core/net/conn.h"
#include "core/net/oap_client.h"
#include "core/tls.h"
#include "svc/omnigate/omnigate.h"

#define WAIT_MS 4000

typedef struct env {
	struct event_base *base;
	node_identity      a, b, c;
	tls_peer          *pa, *pb;
	mn_config          cfg;
	omnigate           og;
	conn_listener     *lst;
	int                lfd;
	char               addr[64];
	/* what the client saw */
	oap_client        *cl;
	bool               ready, failed, free_on_error;
	oap_client_error   err;
	char               detail[OAP_CLIENT_DETAIL_MAX];
	int                status;
	char               meta[512];
	bool               ended;
	/* the silent server of the HELLO test */
	conn              *silent;
} env;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pump_until(env *e, const bool *flag)
{
	uint64_t until = now_ms() + WAIT_MS;

	while (!*flag && now_ms() < until) {
		(void)event_base_loop(e->base, EVLOOP_NONBLOCK);
		usleep(500);
	}
	assert_true(*flag);
}

static void on_accept(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	env *e = arg;

	(void)oap_conn_accept(&e->og, fd, sa, salen);
}

/* A loopback listener on a free port; addr gets "127.0.0.1:port". */
static int listen_any(char *addr, size_t len)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(addr, len, "127.0.0.1:%u", ntohs(sin.sin_port));
	return fd;
}

static int setup(void **state)
{
	env *e = calloc(1, sizeof *e);
	char err[256];
	conn_listener_opts lo = { .on_accept = on_accept, .log_msg = "test accept" };

	assert_non_null(e);
	e->base = event_base_new();
	assert_int_equal(identity_generate(&e->a, err, sizeof err), 0);
	assert_int_equal(identity_generate(&e->b, err, sizeof err), 0);
	assert_int_equal(identity_generate(&e->c, err, sizeof err), 0);
	e->pa = tls_peer_new(&e->a, err, sizeof err);
	e->pb = tls_peer_new(&e->b, err, sizeof err);
	assert_non_null(e->pa);
	assert_non_null(e->pb);
	config_defaults(&e->cfg);
	og_init(&e->og, e->base);
	e->og.lim = (og_limits){ .max_inflight = 64, .max_connections = 8, .read_ms = 2000,
	                         .idle_ms = 5000, .write_ms = 5000, .handshake_ms = 2000,
	                         .max_object = 1u << 20 };
	e->og.peer = e->pa;
	e->og.tls = tls_server_new_peer(&e->cfg, e->pa, err, sizeof err);
	assert_non_null(e->og.tls);
	e->lfd = listen_any(e->addr, sizeof e->addr);
	lo.arg = e;
	e->lst = conn_listener_new(e->base, e->lfd, &lo);
	assert_non_null(e->lst);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	env *e = *state;

	oap_client_free(e->cl);
	for (int i = 0; i < 20; i++)
		(void)event_base_loop(e->base, EVLOOP_NONBLOCK);
	while (e->og.conns)
		oap_conn_free(e->og.conns);
	if (e->silent)
		conn_free(e->silent);
	conn_listener_free(e->lst);
	close(e->lfd);
	tls_server_free(e->og.tls);
	tls_peer_free(e->pa);
	tls_peer_free(e->pb);
	identity_free(&e->a);
	identity_free(&e->b);
	identity_free(&e->c);
	config_free(&e->cfg);
	event_base_free(e->base);
	free(e);
	return 0;
}

/* ---- client callbacks ---------------------------------------------------- */

static void cb_ready(void *arg)
{
	((env *)arg)->ready = true;
}

static void cb_error(void *arg, oap_client_error err, const char *detail)
{
	env *e = arg;

	assert_false(e->failed);
	e->failed = true;
	e->err = err;
	snprintf(e->detail, sizeof e->detail, "%s", detail);
	if (e->free_on_error) {
		oap_client_free(e->cl);   /* from inside the callback */
		e->cl = NULL;
	}
}

static const oap_client_cbs ccbs = { .on_ready = cb_ready, .on_error = cb_error };

static void call_start(void *arg, int status, const uint8_t *json, size_t n)
{
	env *e = arg;

	e->status = status;
	assert_true(n < sizeof e->meta);
	memcpy(e->meta, json, n);
	e->meta[n] = '\0';
}

static void call_data(void *arg, const uint8_t *p, size_t n)
{
	(void)arg;
	(void)p;
	(void)n;
	fail_msg("no data expected");
}

static void call_end(void *arg)
{
	((env *)arg)->ended = true;
}

static const oap_call_cbs kcbs = { .on_start = call_start, .on_data = call_data,
	                               .on_end = call_end };

static oap_client *dial(env *e, const char *addr, const uint8_t *pin, uint64_t ms)
{
	oap_client_opts o = { .connect_ms = ms, .handshake_ms = ms, .frame_ms = ms, .write_ms = ms };
	char err[128];
	oap_client *c = oap_client_new(e->base, e->pb, addr, pin, &o, &ccbs, e, err, sizeof err);

	assert_non_null(c);
	e->cl = c;
	return c;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_pinned_ping_and_refused_stat(void **state)
{
	env *e = *state;
	uint8_t id[32];
	char params[128];

	dial(e, e->addr, e->a.id, 2000);
	pump_until(e, &e->ready);
	/* the server learnt who dialled */
	assert_non_null(e->og.conns);
	assert_true(oap_conn_peer_node(e->og.conns, id));
	assert_memory_equal(id, e->b.id, 32);

	assert_non_null(oap_client_start(e->cl, OG_VERB_PING, "{}", NULL, &kcbs, e));
	pump_until(e, &e->ended);
	assert_int_equal(e->status, 200);
	assert_string_equal(e->meta, "{}");

	/* no storage behind this omnigate: 503 and its envelope, then END */
	e->ended = false;
	snprintf(params, sizeof params, "{\"cid\":\"b3:%064d\"}", 0);
	assert_non_null(oap_client_start(e->cl, OG_VERB_STAT, params, NULL, &kcbs, e));
	pump_until(e, &e->ended);
	assert_int_equal(e->status, 503);
	assert_non_null(strstr(e->meta, "\"code\":\"unavailable\""));
	assert_false(e->failed);
}

static void test_pin_mismatch_names_both_ids(void **state)
{
	env *e = *state;

	dial(e, e->addr, e->c.id, 2000);   /* a answers, c is expected */
	pump_until(e, &e->failed);
	assert_int_equal(e->err, OAP_CLIENT_PIN);
	assert_false(e->ready);
	assert_non_null(strstr(e->detail, e->a.id_text));
	assert_non_null(strstr(e->detail, e->c.id_text));
	assert_string_equal(oap_client_error_name(e->err), "pin");
}

static void test_connect_refused(void **state)
{
	env *e = *state;
	char addr[64];
	int fd = listen_any(addr, sizeof addr);

	close(fd);   /* nobody listens there now */
	e->free_on_error = true;
	dial(e, addr, e->a.id, 2000);
	pump_until(e, &e->failed);
	assert_int_equal(e->err, OAP_CLIENT_CONNECT);
}

static void test_handshake_never_completes(void **state)
{
	env *e = *state;
	char addr[64];
	int fd = listen_any(addr, sizeof addr);   /* the kernel accepts; nobody speaks */

	dial(e, addr, e->a.id, 150);
	pump_until(e, &e->failed);
	assert_int_equal(e->err, OAP_CLIENT_TIMEOUT);
	close(fd);
}

/* A TLS server (the peer plane's) that completes handshakes and then never
 * says a word. */
static void silent_nothing(void *arg)
{
	(void)arg;
}

static void silent_event(void *arg, unsigned what)
{
	(void)arg;
	(void)what;
}

static void silent_close(void *arg)
{
	env *e = arg;

	conn_free(e->silent);
	e->silent = NULL;
}

static const conn_ops silent_ops = {
	.on_open = silent_nothing, .on_read = silent_nothing, .on_event = silent_event,
	.on_timer = silent_nothing, .on_close = silent_close,
};

static void silent_accept(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	env *e = arg;
	conn_opts o = { .ops = &silent_ops, .arg = e, .read_max = 1u << 16, .write_ms = 5000,
	                .handshake_ms = 5000 };

	assert_null(e->silent);
	e->silent = conn_new(e->base, fd, sa, salen, e->og.tls, &o);
	assert_non_null(e->silent);
	(void)conn_start(e->silent);
}

static void test_hello_never_answered(void **state)
{
	env *e = *state;
	char addr[64];
	int fd = listen_any(addr, sizeof addr);
	conn_listener_opts lo = { .on_accept = silent_accept, .arg = e, .log_msg = "silent" };
	conn_listener *l = conn_listener_new(e->base, fd, &lo);

	assert_non_null(l);
	dial(e, addr, e->a.id, 200);
	pump_until(e, &e->failed);
	assert_int_equal(e->err, OAP_CLIENT_TIMEOUT);
	assert_non_null(strstr(e->detail, "HELLO"));
	conn_listener_free(l);
	close(fd);
}

static void test_bad_address_and_limits(void **state)
{
	env *e = *state;
	char err[128] = "";
	char big[OAP_CLIENT_PARAMS_MAX + 2];

	assert_null(oap_client_new(e->base, e->pb, "localhost:1", e->a.id, NULL, &ccbs, e, err,
	                           sizeof err));
	assert_non_null(strstr(err, "numeric"));
	dial(e, e->addr, e->a.id, 2000);
	/* not ready yet: no stream */
	assert_null(oap_client_start(e->cl, OG_VERB_PING, "{}", NULL, &kcbs, e));
	pump_until(e, &e->ready);
	memset(big, ' ', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_null(oap_client_start(e->cl, OG_VERB_PING, big, NULL, &kcbs, e));
	assert_false(e->failed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pinned_ping_and_refused_stat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pin_mismatch_names_both_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_never_completes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hello_never_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_address_and_limits, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
