/*
 * test_http.c — the HTTP/1.1 core driven over real loopback TCP in-process:
 * the server and a raw client socket share one event loop, which the test
 * pumps (EVLOOP_NONBLOCK) until the expected bytes arrive. Responses are
 * parsed with http_parser in response mode and asserted exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/net/http.h"
#include "core/net/http_test.h"
#include "core/metrics/metrics.h"
#include "lib/log.h"

#define PUMP_MS      2000   /* upper bound on any wait; tests normally finish in ms */
#define MAX_RESP     8
#define MAX_HDRS     32

/* ---- fixture ---------------------------------------------------------- */

struct fix {
	struct event_base *base;
	http_server       *srv;
	int                lfd;
	struct sockaddr_in addr;
};
static struct fix F;

/* handler observations */
static int         g_hello_calls;
static http_req   *g_async;
static int         g_async_closed;
static size_t      g_up_bytes;
static char        g_up_data[256];
static int         g_up_chunks;
static int         g_up_pauses;
static bool        g_up_pause;
static int         g_drain_calls;
static size_t      g_big_sent;
static int         g_done_calls;
static int         g_upload_calls;

#define BIG_TOTAL  (1024u * 1024u)
#define BIG_PIECE  (16u * 1024u)

static void h_hello(http_req *r, void *arg)
{
	(void)arg;
	g_hello_calls++;
	assert_int_equal(http_reply(r, 200, "text/plain", "hello", 5), 0);
}

/* Echo of what the core parsed: method, path, query, a header, loopback, body. */
static void h_echo(http_req *r, void *arg)
{
	char out[512];
	size_t blen;
	const uint8_t *b = http_req_body(r, &blen);
	const char *xt = http_req_header(r, "x-test");
	int n;

	(void)arg;
	n = snprintf(out, sizeof out, "%s %s ?%s x=%s lo=%d cl=%lld body=%.*s",
	             http_req_method(r), http_req_path(r), http_req_query(r), xt ? xt : "-",
	             http_req_peer_is_loopback(r), (long long)http_req_content_length(r),
	             (int)(blen < 32 ? blen : 32), (const char *)b);
	assert_true(n > 0 && (size_t)n < sizeof out);
	assert_int_equal(strlen(http_req_corr_id(r)), 16);
	assert_int_equal(http_reply(r, 200, "text/plain", out, (size_t)n), 0);
}

static void h_stream(http_req *r, void *arg)
{
	(void)arg;
	assert_int_equal(http_resp_header(r, "Content-Type", "text/plain"), 0);
	assert_int_equal(http_resp_start(r, 200, -1), 0);
	assert_int_equal(http_resp_write(r, "abc", 3), 0);
	assert_int_equal(http_resp_write(r, "defg", 4), 0);
	assert_int_equal(http_resp_end(r), 0);
}

static void up_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	http_req_resume_body(arg);
}

static int up_data(http_req *r, const uint8_t *d, size_t len, void *arg)
{
	(void)arg;
	if (g_up_bytes + len < sizeof g_up_data)
		memcpy(g_up_data + g_up_bytes, d, len);
	g_up_bytes += len;
	g_up_chunks++;
	if (g_up_pause) {
		/* backpressure: stop, and resume from the loop a little later */
		struct timeval tv = { 0, 2000 };

		g_up_pauses++;
		http_req_pause_body(r);
		assert_int_equal(event_base_once(http_req_base(r), -1, EV_TIMEOUT, up_resume, r, &tv), 0);
	}
	return 0;
}

static void up_end(http_req *r, void *arg)
{
	char out[64];
	int n = snprintf(out, sizeof out, "got %zu", g_up_bytes);

	(void)arg;
	assert_int_equal(http_reply(r, 201, "text/plain", out, (size_t)n), 0);
}

static void h_upload(http_req *r, void *arg)
{
	(void)arg;
	g_upload_calls++;
	g_up_bytes = 0;
	g_up_chunks = 0;
	memset(g_up_data, 0, sizeof g_up_data);
	http_req_on_body(r, up_data, up_end, NULL);
}

/* A streaming handler that registers for the body only later (as one waiting
 * on another service does); the test registers it through g_late. */
static http_req *g_late;

static void h_late(http_req *r, void *arg)
{
	(void)arg;
	g_late = r;
	g_up_bytes = 0;
	memset(g_up_data, 0, sizeof g_up_data);
}

static void async_closed(http_req *r, void *arg)
{
	(void)arg;
	assert_ptr_equal(r, g_async);
	g_async_closed++;
	g_async = NULL;
}

static void h_async(http_req *r, void *arg)
{
	(void)arg;
	g_async = r;
	http_req_on_close(r, async_closed, NULL);
}

static size_t g_big_total = BIG_TOTAL;  /* test_memory_budget needs more than the kernel buffers */

static void big_pump(http_req *r, void *arg)
{
	static char piece[BIG_PIECE];

	(void)arg;
	g_drain_calls++;
	memset(piece, 'x', sizeof piece);
	while (g_big_sent < g_big_total && http_resp_pending(r) < HTTP_OUT_HIGH_WATER) {
		assert_int_equal(http_resp_write(r, piece, BIG_PIECE), 0);
		g_big_sent += BIG_PIECE;
	}
	/* Bounded output: never much past the high-water mark. */
	assert_true(http_resp_pending(r) < HTTP_OUT_HIGH_WATER + BIG_PIECE + 64);
	if (g_big_sent == g_big_total)
		assert_int_equal(http_resp_end(r), 0);
}

static void h_big(http_req *r, void *arg)
{
	(void)arg;
	g_big_sent = 0;
	g_drain_calls = 0;
	assert_int_equal(http_resp_start(r, 200, (int64_t)g_big_total), 0);
	http_req_on_drain(r, big_pump, NULL);
}

/* Refuses the body on its first piece: answers, and the core must close. */
static int refuse_data(http_req *r, const uint8_t *d, size_t len, void *arg)
{
	(void)d;
	(void)len;
	(void)arg;
	assert_int_equal(http_reply_error(r, 422, "unprocessable", "no thanks", false, 0), 0);
	return -1;
}

static void h_refuse(http_req *r, void *arg)
{
	(void)arg;
	http_req_on_body(r, refuse_data, NULL, NULL);
}

static void h_abort(http_req *r, void *arg)
{
	(void)arg;
	assert_int_equal(http_resp_start(r, 200, -1), 0);
	assert_int_equal(http_resp_write(r, "abc", 3), 0);
	http_resp_abort(r);
}

static const http_route routes[] = {
	{ HTTP_M_GET, "/hello", "/hello", 0, h_hello, NULL },
	{ HTTP_M_GET | HTTP_M_POST, "/echo", "/echo", 0, h_echo, NULL },
	{ HTTP_M_GET, "/stream", "/stream", 0, h_stream, NULL },
	{ HTTP_M_PUT, "/upload", "/upload", HTTP_ROUTE_STREAM_BODY, h_upload, NULL },
	{ HTTP_M_GET, "/async", "/async", 0, h_async, NULL },
	{ HTTP_M_GET, "/healthz", "/healthz", HTTP_ROUTE_EXEMPT, h_hello, NULL },
	{ HTTP_M_GET, "/items", "/items", 0, h_hello, NULL },
	{ HTTP_M_PUT, "/items", "/items", 0, h_hello, NULL },
	{ HTTP_M_GET, "/o/", "/o/{id}", HTTP_ROUTE_PREFIX, h_echo, NULL },
	{ HTTP_M_GET, "/big", "/big", 0, h_big, NULL },
	{ HTTP_M_POST, "/refuse", "/refuse", HTTP_ROUTE_STREAM_BODY, h_refuse, NULL },
	{ HTTP_M_GET, "/abort", "/abort", 0, h_abort, NULL },
	{ HTTP_M_GET | HTTP_M_PUT, "/late", "/late", HTTP_ROUTE_STREAM_BODY, h_late, NULL },
	{ HTTP_M_GET, "/facet", "/facet", HTTP_ROUTE_FACET, h_hello, NULL },
	{ HTTP_M_GET | HTTP_M_PUT, "/bigup", "/bigup", HTTP_ROUTE_STREAM_BODY | HTTP_ROUTE_UPLOAD,
	  h_upload, NULL },
};

/* A gate for the gate tests: "X-Deny" → 401 with a challenge, "X-Cap" →
 * admitted with a 5-byte body cap; every call counted. */
static int g_gate_calls;
static http_class g_gate_class;

static void t_gate(http_req *r, void *arg, http_gate_verdict *v)
{
	(void)arg;
	g_gate_calls++;
	g_gate_class = http_req_route_class(r);
	if (http_req_header(r, "X-Deny")) {
		v->status = 401;
		v->code = "unauthenticated";
		v->message = "no";
		v->reject = REJECT_UNAUTH;
		v->www_authenticate = "Bearer realm=\"t\"";
	} else if (http_req_header(r, "X-Cap")) {
		v->body_capped = true;
		v->body_cap = 5;
	} else if (http_req_header(r, "X-Cap0")) {
		v->body_capped = true;       /* 0 is a cap: no body at all */
		v->body_cap = 0;
	}
}

static http_gate_fn g_gate;
static http_gate_end_fn g_gate_end;

/* The same gate handing out a ticket per request: the core must end each
 * exactly once, whatever became of the request. */
#define T_TICKETS 32
static struct t_ticket { int ends; uint64_t bytes; } g_tickets[T_TICKETS];
static int g_ticket_n, g_tickets_out;

static void t_ticket_gate(http_req *r, void *arg, http_gate_verdict *v)
{
	t_gate(r, arg, v);
	assert_true(g_ticket_n < T_TICKETS);
	v->ticket = &g_tickets[g_ticket_n++];
	g_tickets_out++;
}

static void t_ticket_end(void *arg, void *ticket, uint64_t body_bytes)
{
	struct t_ticket *t = ticket;

	(void)arg;
	assert_true(t >= g_tickets && t < g_tickets + g_ticket_n);
	t->ends++;
	t->bytes = body_bytes;
	g_tickets_out--;
}

static http_limits limits_default(void)
{
	http_limits l = {
		.read_timeout_ms = 2000, .write_timeout_ms = 2000, .idle_timeout_ms = 5000,
		.header_timeout_ms = 2000, .max_body_bytes = 1024, .max_header_bytes = 16384,
		.max_inflight = 8, .requests_per_second = 0, .max_connections = 16,
	};
	return l;
}

static void srv_start(const http_limits *l)
{
	http_server_opts o = { .service = "test", .limits = *l, .routes = routes,
	                       .nroutes = sizeof routes / sizeof routes[0], .gate = g_gate,
	                       .gate_end = g_gate_end };
	socklen_t alen = sizeof F.addr;
	int one = 1;

	g_hello_calls = 0;
	g_upload_calls = 0;
	g_async = NULL;
	g_async_closed = 0;
	g_up_pause = false;
	F.base = event_base_new();
	assert_non_null(F.base);
	F.srv = http_server_new(F.base, &o);
	assert_non_null(F.srv);
	F.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(F.lfd >= 0);
	assert_int_equal(setsockopt(F.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
	memset(&F.addr, 0, sizeof F.addr);
	F.addr.sin_family = AF_INET;
	F.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(F.lfd, (struct sockaddr *)&F.addr, sizeof F.addr), 0);
	assert_int_equal(listen(F.lfd, 64), 0);
	assert_int_equal(getsockname(F.lfd, (struct sockaddr *)&F.addr, &alen), 0);
	assert_int_equal(http_server_listen_fd(F.srv, F.lfd, true), 0);
}

static int teardown(void **state)
{
	(void)state;
	http_server_free(F.srv);
	event_base_free(F.base);
	memset(&F, 0, sizeof F);
	g_async = NULL;
	g_gate = NULL;
	g_gate_end = NULL;
	g_big_total = BIG_TOTAL;
	return 0;
}

static int setup_default(void **state)
{
	http_limits l = limits_default();

	(void)state;
	srv_start(&l);
	return 0;
}

/* ---- client ----------------------------------------------------------- */

struct client {
	int    fd;
	char  *buf;
	size_t len, cap;
	bool   eof;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pump_once(struct client *cl)
{
	struct pollfd p = { cl ? cl->fd : -1, POLLIN, 0 };

	event_base_loop(F.base, EVLOOP_NONBLOCK);
	if (!cl || cl->eof) {
		(void)poll(NULL, 0, 1);
		return;
	}
	(void)poll(&p, 1, 1);
	for (;;) {
		ssize_t n;

		if (cl->cap - cl->len < 65536) {
			cl->cap = cl->cap ? cl->cap * 2 : 131072;
			cl->buf = realloc(cl->buf, cl->cap + 1);
			assert_non_null(cl->buf);
		}
		n = recv(cl->fd, cl->buf + cl->len, cl->cap - cl->len, MSG_DONTWAIT);
		if (n > 0) {
			cl->len += (size_t)n;
			cl->buf[cl->len] = '\0';
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			cl->eof = true;
		break;
	}
}

static void pump_ms(struct client *cl, unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (now_ms() < end)
		pump_once(cl);
}

static struct client *client_new(void)
{
	struct client *cl = calloc(1, sizeof *cl);
	size_t before = http_server_connections(F.srv);
	uint64_t end = now_ms() + PUMP_MS;

	assert_non_null(cl);
	cl->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(cl->fd >= 0);
	assert_int_equal(connect(cl->fd, (struct sockaddr *)&F.addr, sizeof F.addr), 0);
	while (http_server_connections(F.srv) == before && now_ms() < end)
		pump_once(NULL);
	return cl;
}

/* Pump until the server has closed every connection (client_new counts on
 * the number of connections changing). */
static void settle(void)
{
	uint64_t end = now_ms() + PUMP_MS;

	while (http_server_connections(F.srv) > 0 && now_ms() < end)
		pump_once(NULL);
}

static void client_free(struct client *cl)
{
	if (!cl)
		return;
	close(cl->fd);
	free(cl->buf);
	free(cl);
}

static void client_send(struct client *cl, const char *s, size_t n)
{
	assert_int_equal(send(cl->fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void client_puts(struct client *cl, const char *s)
{
	client_send(cl, s, strlen(s));
}

/* ---- response parsing (client side) ----------------------------------- */

struct tresp {
	int    status;
	int    nh;
	char   name[MAX_HDRS][64];
	char   value[MAX_HDRS][256];
	char   body[BIG_TOTAL + 1];
	size_t blen;
	bool   done;
	bool   head;
};
static struct tresp R[MAX_RESP];

struct pctx {
	struct tresp *r;
	int           last_was_value;
};

static void cat_bounded(char *dst, size_t cap, const char *at, size_t len)
{
	size_t have = strlen(dst);

	if (len > cap - 1 - have)
		len = cap - 1 - have;
	memcpy(dst + have, at, len);
	dst[have + len] = '\0';
}

static int pr_field(http_parser *p, const char *at, size_t len)
{
	struct pctx *x = p->data;

	if (x->last_was_value || x->r->nh == 0) {
		assert_true(x->r->nh < MAX_HDRS);
		x->r->nh++;
	}
	x->last_was_value = 0;
	cat_bounded(x->r->name[x->r->nh - 1], sizeof x->r->name[0], at, len);
	return 0;
}

static int pr_value(http_parser *p, const char *at, size_t len)
{
	struct pctx *x = p->data;

	x->last_was_value = 1;
	cat_bounded(x->r->value[x->r->nh - 1], sizeof x->r->value[0], at, len);
	return 0;
}

static int pr_headers(http_parser *p)
{
	struct pctx *x = p->data;

	x->r->status = (int)p->status_code;
	return x->r->head ? 1 : 0;  /* a HEAD response has no body */
}

static int pr_body(http_parser *p, const char *at, size_t len)
{
	struct pctx *x = p->data;

	assert_true(x->r->blen + len <= BIG_TOTAL);
	memcpy(x->r->body + x->r->blen, at, len);
	x->r->blen += len;
	x->r->body[x->r->blen] = '\0';
	return 0;
}

static int pr_done(http_parser *p)
{
	struct pctx *x = p->data;

	x->r->done = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings pr_settings = {
	.on_header_field = pr_field, .on_header_value = pr_value,
	.on_headers_complete = pr_headers, .on_body = pr_body, .on_message_complete = pr_done,
};

/* Parse responses from the start of the client's bytes; heads[i] marks
 * responses to HEAD. Returns how many are complete. */
static int parse_all(struct client *cl, const bool *heads, int max)
{
	http_parser p;
	size_t off = 0;
	int k;

	for (k = 0; k < max; k++) {
		struct pctx x = { &R[k], 0 };
		size_t n;

		memset(&R[k], 0, sizeof R[k]);
		R[k].head = heads ? heads[k] : false;
		http_parser_init(&p, HTTP_RESPONSE);
		p.data = &x;
		n = http_parser_execute(&p, &pr_settings, cl->buf ? cl->buf + off : "", cl->len - off);
		if (!R[k].done && cl->eof && HTTP_PARSER_ERRNO(&p) == HPE_OK)
			(void)http_parser_execute(&p, &pr_settings, NULL, 0);  /* close-delimited */
		if (!R[k].done)
			break;
		off += n;
	}
	return k;
}

/* Pump until n responses are complete (or EOF / time runs out). */
static int wait_responses(struct client *cl, int n, const bool *heads)
{
	uint64_t end = now_ms() + PUMP_MS;
	int got = 0;

	while (now_ms() < end) {
		pump_once(cl);
		got = parse_all(cl, heads, n);
		if (got >= n || cl->eof)
			break;
	}
	return parse_all(cl, heads, n);
}

static void wait_eof(struct client *cl)
{
	uint64_t end = now_ms() + PUMP_MS;

	while (!cl->eof && now_ms() < end)
		pump_once(cl);
	assert_true(cl->eof);
}

static const char *hdr(const struct tresp *r, const char *name)
{
	for (int i = 0; i < r->nh; i++)
		if (strcasecmp(r->name[i], name) == 0)
			return r->value[i];
	return NULL;
}

static void assert_hdr(const struct tresp *r, const char *name, const char *want)
{
	const char *v = hdr(r, name);

	if (!v)
		fail_msg("missing header %s", name);
	assert_string_equal(v, want);
}

/* The error envelope, exactly, with a 16-hex corr_id. */
static void assert_envelope(const struct tresp *r, const char *code, bool retryable)
{
	char want[128];
	const char *cid = strstr(r->body, "\"corr_id\":\"");

	assert_hdr(r, "Content-Type", "application/json");
	snprintf(want, sizeof want, "{\"code\":\"%s\",\"message\":\"", code);
	assert_memory_equal(r->body, want, strlen(want));
	snprintf(want, sizeof want, "\"retryable\":%s,", retryable ? "true" : "false");
	assert_non_null(strstr(r->body, want));
	assert_non_null(cid);
	cid += strlen("\"corr_id\":\"");
	for (int i = 0; i < 16; i++)
		assert_true(isxdigit((unsigned char)cid[i]) && !isupper((unsigned char)cid[i]));
	assert_string_equal(cid + 16, "\"}");
}

static uint64_t metric(const char *family, const char *labels)
{
	return metrics_value(metrics_get(family, labels));
}

/* ---- tests ------------------------------------------------------------ */

static void test_basic_keepalive(void **state)
{
	struct client *cl = client_new();
	char cl5[8];

	(void)state;
	client_puts(cl, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 200);
	assert_string_equal(R[0].body, "hello");
	snprintf(cl5, sizeof cl5, "%d", 5);
	assert_hdr(&R[0], "Content-Length", cl5);
	assert_hdr(&R[0], "Content-Type", "text/plain");
	assert_non_null(hdr(&R[0], "Date"));
	assert_null(hdr(&R[0], "Connection"));
	assert_int_equal(strlen(hdr(&R[0], "Date")), 29);
	/* the same connection serves a second request */
	client_puts(cl, "GET /echo?a=1&b=2 HTTP/1.1\r\nHost: x\r\nX-Test:  v1  \r\n\r\n");
	assert_int_equal(wait_responses(cl, 2, NULL), 2);
	assert_int_equal(R[1].status, 200);
	assert_string_equal(R[1].body, "GET /echo ?a=1&b=2 x=v1 lo=1 cl=-1 body=");
	assert_false(cl->eof);
	assert_int_equal(http_server_connections(F.srv), 1);
	client_free(cl);
}

static void test_split_reads(void **state)
{
	static const char req[] = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
	struct client *cl = client_new();

	(void)state;
	for (size_t i = 0; i < sizeof req - 1; i++) {
		client_send(cl, req + i, 1);
		pump_once(cl);
		pump_once(cl);
	}
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 200);
	assert_string_equal(R[0].body, "POST /echo ? x=- lo=1 cl=5 body=hello");
	client_free(cl);
}

static void test_pipelining(void **state)
{
	struct client *cl = client_new();

	(void)state;
	client_puts(cl, "GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
	                "POST /echo?n=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
	                "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(wait_responses(cl, 3, NULL), 3);
	assert_string_equal(R[0].body, "GET /echo ?n=1 x=- lo=1 cl=-1 body=");
	assert_string_equal(R[1].body, "POST /echo ?n=2 x=- lo=1 cl=3 body=abc");
	assert_string_equal(R[2].body, "abcdefg");
	assert_false(cl->eof);
	client_free(cl);
}

/* Parser state must not leak from one pipelined message into the next. */
static void test_pipelining_mixed_framing(void **state)
{
	static const bool heads[] = { false, true, false, false };
	struct client *cl = client_new();

	(void)state;
	client_puts(cl, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	                "2\r\nab\r\n1;ext=1\r\nc\r\n0\r\nX-Trailer: t\r\n\r\n"
	                "HEAD /echo HTTP/1.1\r\n\r\n"
	                "POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nde"
	                "POST /echo HTTP/1.1\r\n\r\n");
	assert_int_equal(wait_responses(cl, 4, heads), 4);
	assert_string_equal(R[0].body, "POST /echo ? x=- lo=1 cl=-1 body=abc");
	assert_int_equal(R[1].status, 200);
	assert_int_equal(R[1].blen, 0);
	assert_string_equal(R[2].body, "POST /echo ? x=- lo=1 cl=2 body=de");
	assert_string_equal(R[3].body, "POST /echo ? x=- lo=1 cl=-1 body=");
	client_free(cl);
}

static void test_smuggling_refused(void **state)
{
	struct client *cl = client_new();

	(void)state;
	client_puts(cl, "POST /echo HTTP/1.1\r\nContent-Length: 4\r\n"
	                "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 400);
	wait_eof(cl);
	client_free(cl);
}

static void test_stream_body_refused_closes(void **state)
{
	struct client *cl = client_new();
	char rest[128];

	(void)state;
	/* A small remainder of known length: read and dropped, connection kept. */
	client_puts(cl, "POST /refuse HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789");
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 422);
	assert_envelope(&R[0], "unprocessable", false);
	assert_null(hdr(&R[0], "Connection"));
	snprintf(rest, sizeof rest, "%090d" "GET /hello HTTP/1.1\r\n\r\n", 0);
	client_puts(cl, rest);
	assert_int_equal(wait_responses(cl, 2, NULL), 2);
	assert_int_equal(R[1].status, 200);
	client_free(cl);
	settle();
	/* A remainder of unknown length (chunked) is not drained: close, and
	 * say so (so is one past HTTP_DRAIN_MAX_BYTES, the integration tests). */
	cl = client_new();
	client_puts(cl, "POST /refuse HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n");
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 422);
	assert_hdr(&R[0], "Connection", "close");
	wait_eof(cl);
	client_free(cl);
}

static void test_resp_abort(void **state)
{
	struct client *cl = client_new();

	(void)state;
	client_puts(cl, "GET /abort HTTP/1.1\r\n\r\n");
	wait_eof(cl);
	assert_int_equal(parse_all(cl, NULL, 1), 0);  /* never a complete response */
	assert_non_null(strstr(cl->buf, "Transfer-Encoding: chunked\r\n"));
	assert_null(strstr(cl->buf, "0\r\n\r\n"));
	client_free(cl);
}

static void test_pipelining_async_in_order(void **state)
{
	struct client *cl = client_new();

	(void)state;
	/* the second request must wait for the first (async) answer */
	client_puts(cl, "GET /async HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	pump_ms(cl, 30);
	assert_non_null(g_async);
	assert_int_equal(cl->len, 0);
	assert_int_equal(http_server_inflight(F.srv), 1);
	assert_int_equal(http_reply(g_async, 202, "text/plain", "later", 5), 0);
	g_async = NULL;
	assert_int_equal(wait_responses(cl, 2, NULL), 2);
	assert_int_equal(R[0].status, 202);
	assert_string_equal(R[0].body, "later");
	assert_int_equal(R[1].status, 200);
	assert_string_equal(R[1].body, "hello");
	assert_int_equal(http_server_inflight(F.srv), 0);
	client_free(cl);
}

static void test_bad_chunk_size(void **state)
{
	struct client *cl = client_new();
	uint64_t before = metric("rejected_total", "reason=\"bad_request\"");

	(void)state;
	client_puts(cl, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	                "zz\r\nabc\r\n0\r\n\r\n");
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 400);
	assert_hdr(&R[0], "Connection", "close");
	assert_envelope(&R[0], "bad_request", false);
	wait_eof(cl);
	assert_int_equal(metric("rejected_total", "reason=\"bad_request\""), before + 1);
	client_free(cl);
}

static void test_malformed_request_line(void **state)
{
	struct client *cl = client_new();

	(void)state;
	client_puts(cl, "GET / HTTP/9\r\n\r\n");
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 400);
	assert_envelope(&R[0], "bad_request", false);
	wait_eof(cl);
	client_free(cl);
}

static void test_header_too_large(void **state)
{
	struct client *cl = client_new();
	char *req = malloc(20000);
	uint64_t before = metric("rejected_total", "reason=\"431\"");
	int n;

	(void)state;
	n = snprintf(req, 20000, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: %0*d\r\n\r\n", 17000, 0);
	client_send(cl, req, (size_t)n);
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 431);
	assert_hdr(&R[0], "Connection", "close");
	assert_envelope(&R[0], "header_too_large", false);
	wait_eof(cl);
	assert_int_equal(g_hello_calls, 0);
	assert_int_equal(metric("rejected_total", "reason=\"431\""), before + 1);
	free(req);
	client_free(cl);
}

static void test_too_many_headers(void **state)
{
	struct client *cl = client_new();
	char req[4096];
	size_t o = 0;

	(void)state;
	o += (size_t)snprintf(req + o, sizeof req - o, "GET /hello HTTP/1.1\r\n");
	for (int i = 0; i <= HTTP_MAX_HEADERS; i++)
		o += (size_t)snprintf(req + o, sizeof req - o, "H%d: v\r\n", i);
	o += (size_t)snprintf(req + o, sizeof req - o, "\r\n");
	client_send(cl, req, o);
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 431);
	assert_envelope(&R[0], "header_too_large", false);
	client_free(cl);
}

static void test_uri_too_long(void **state)
{
	struct client *cl = client_new();
	char *req = malloc(HTTP_MAX_URL_BYTES + 100);
	uint64_t before = metric("rejected_total", "reason=\"414\"");
	int n;

	(void)state;
	n = snprintf(req, HTTP_MAX_URL_BYTES + 100, "GET /%0*d HTTP/1.1\r\n\r\n",
	             HTTP_MAX_URL_BYTES, 0);
	client_send(cl, req, (size_t)n);
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 414);
	assert_envelope(&R[0], "uri_too_long", false);
	wait_eof(cl);
	assert_int_equal(metric("rejected_total", "reason=\"414\""), before + 1);
	free(req);
	client_free(cl);
}

static void test_content_length_over_cap(void **state)
{
	struct client *cl = client_new();
	uint64_t before = metric("rejected_total", "reason=\"413\"");

	(void)state;
	/* no body is sent: the answer must come from the header alone */
	client_puts(cl, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n");
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 413);
	assert_hdr(&R[0], "Connection", "close");
	assert_envelope(&R[0], "payload_too_large", false);
	wait_eof(cl);
	assert_int_equal(metric("rejected_total", "reason=\"413\""), before + 1);
	client_free(cl);
}

static void test_chunked_over_cap(void **state)
{
	struct client *cl = client_new();
	char chunk[700];

	(void)state;
	memset(chunk, 'a', sizeof chunk);
	client_puts(cl, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	client_puts(cl, "2bc\r\n");  /* 700 */
	client_send(cl, chunk, sizeof chunk);
	client_puts(cl, "\r\n2bc\r\n");  /* 1400 > 1024: refused at the chunk header */
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 413);
	assert_envelope(&R[0], "payload_too_large", false);
	wait_eof(cl);
	client_free(cl);
}

static void test_body_at_cap_ok(void **state)
{
	struct client *cl = client_new();
	char req[2048];
	int n = snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\nContent-Length: 1024\r\n\r\n");

	(void)state;
	memset(req + n, 'b', 1024);
	client_send(cl, req, (size_t)n + 1024);
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 200);
	client_free(cl);
}

/* Two caps: max_upload_bytes for a PUT/POST on an upload route,
 * max_body_bytes (limits.max_body) for every other body; a 413 names
 * the one it hit. */
/* One request on a new connection: a 413 whose message holds what. */
static void expect_413(const char *request, const char *what)
{
	struct client *cl = client_new();

	client_puts(cl, request);
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 413);
	assert_non_null(strstr(R[0].body, what));
	client_free(cl);
	settle();
}

static void test_upload_cap_and_body_cap(void **state)
{
	http_limits l = limits_default();
	struct client *cl;
	char req[4200];
	int n;

	(void)state;
	teardown(NULL);
	l.max_upload_bytes = 4096;   /* max_body_bytes stays 1024 */
	srv_start(&l);
	cl = client_new();
	/* an upload over the body cap, under the upload cap: taken */
	n = snprintf(req, sizeof req, "PUT /bigup HTTP/1.1\r\nContent-Length: 4096\r\n\r\n");
	memset(req + n, 'u', 4096);
	client_send(cl, req, (size_t)n + 4096);
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 201);
	assert_string_equal(R[0].body, "got 4096");
	client_free(cl);
	settle();
	/* one byte over the upload cap: 413 naming it */
	expect_413("PUT /bigup HTTP/1.1\r\nContent-Length: 4097\r\n\r\n",
	           "exceeds 4096 bytes (storage.max_object)");
	/* the same route read by GET is not an upload: the body cap holds */
	expect_413("GET /bigup HTTP/1.1\r\nContent-Length: 2000\r\n\r\n",
	           "exceeds 1024 bytes (limits.max_body)");
	/* any other route: the body cap, declared or chunked */
	expect_413("POST /echo HTTP/1.1\r\nContent-Length: 2000\r\n\r\n",
	           "exceeds 1024 bytes (limits.max_body)");
	cl = client_new();
	memset(req, 'c', 1500);
	client_puts(cl, "PUT /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5dc\r\n");
	client_send(cl, req, 1500);
	client_puts(cl, "\r\n0\r\n\r\n");
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 413);
	assert_non_null(strstr(R[0].body, "(limits.max_body)"));
	client_free(cl);
}

static void test_not_found(void **state)
{
	struct client *cl = client_new();
	uint64_t before = metric("http_requests_total",
	                         "service=\"test\",route=\"unmatched\",code=\"404\"");

	(void)state;
	client_puts(cl, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /o/abc?q HTTP/1.1\r\n\r\n");
	assert_int_equal(wait_responses(cl, 2, NULL), 2);
	assert_int_equal(R[0].status, 404);
	assert_envelope(&R[0], "not_found", false);
	assert_null(hdr(&R[0], "Connection"));   /* a 404 keeps the connection */
	assert_int_equal(R[1].status, 200);       /* prefix route */
	assert_string_equal(R[1].body, "GET /o/abc ?q x=- lo=1 cl=-1 body=");
	assert_int_equal(metric("http_requests_total",
	                        "service=\"test\",route=\"unmatched\",code=\"404\""), before + 1);
	client_free(cl);
}

static void test_method_not_allowed(void **state)
{
	struct client *cl = client_new();

	(void)state;
	client_puts(cl, "DELETE /items HTTP/1.1\r\nHost: x\r\n\r\nPOST /hello HTTP/1.1\r\n"
	                "Content-Length: 0\r\n\r\n");
	assert_int_equal(wait_responses(cl, 2, NULL), 2);
	assert_int_equal(R[0].status, 405);
	assert_hdr(&R[0], "Allow", "GET, HEAD, PUT");
	assert_envelope(&R[0], "method_not_allowed", false);
	assert_int_equal(R[1].status, 405);
	assert_hdr(&R[1], "Allow", "GET, HEAD");
	assert_int_equal(g_hello_calls, 0);
	client_free(cl);
}

static void test_head_no_body(void **state)
{
	static const bool heads[] = { true, false };
	struct client *cl = client_new();

	(void)state;
	client_puts(cl, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
	assert_int_equal(wait_responses(cl, 2, heads), 2);
	assert_int_equal(R[0].status, 200);
	assert_hdr(&R[0], "Content-Length", "5");
	assert_int_equal(R[0].blen, 0);
	/* the bytes on the wire: exactly the two responses, no stray body */
	assert_non_null(strstr(cl->buf, "\r\n\r\nHTTP/1.1 200 OK\r\n"));
	assert_string_equal(R[1].body, "hello");
	assert_string_equal(cl->buf + cl->len - 9, "\r\n\r\nhello");
	client_free(cl);
}

static void test_connection_close(void **state)
{
	struct client *cl = client_new();

	(void)state;
	client_puts(cl, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_hdr(&R[0], "Connection", "close");
	wait_eof(cl);
	client_free(cl);
}

/* `printf ... | nc -N`: the request, then the client's FIN. */
static void test_half_close(void **state)
{
	struct client *cl = client_new();

	(void)state;
	client_puts(cl, "GET /hello HTTP/1.1\r\n\r\nGET /stream HTTP/1.1\r\n\r\n");
	assert_int_equal(shutdown(cl->fd, SHUT_WR), 0);
	wait_eof(cl);
	assert_int_equal(parse_all(cl, NULL, 2), 2);
	assert_string_equal(R[0].body, "hello");
	assert_string_equal(R[1].body, "abcdefg");
	client_free(cl);
}

static void test_http10(void **state)
{
	struct client *a = client_new(), *b;

	(void)state;
	client_puts(a, "GET /hello HTTP/1.0\r\n\r\n");
	assert_int_equal(wait_responses(a, 1, NULL), 1);
	assert_hdr(&R[0], "Connection", "close");
	wait_eof(a);

	b = client_new();
	client_puts(b, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	assert_int_equal(wait_responses(b, 1, NULL), 1);
	assert_hdr(&R[0], "Connection", "keep-alive");
	assert_hdr(&R[0], "Content-Length", "5");
	/* unknown length to a 1.0 client: no chunking, the close ends the body */
	client_puts(b, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	wait_eof(b);
	assert_int_equal(parse_all(b, NULL, 2), 2);
	assert_null(hdr(&R[1], "Transfer-Encoding"));
	assert_hdr(&R[1], "Connection", "close");
	assert_string_equal(R[1].body, "abcdefg");
	client_free(a);
	client_free(b);
}

static void test_stream_response_chunked(void **state)
{
	struct client *cl = client_new();

	(void)state;
	client_puts(cl, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_hdr(&R[0], "Transfer-Encoding", "chunked");
	assert_null(hdr(&R[0], "Content-Length"));
	assert_string_equal(R[0].body, "abcdefg");
	assert_non_null(strstr(cl->buf, "\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"));
	assert_int_equal(strlen(strstr(cl->buf, "\r\n\r\n3\r\n")), strlen("\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"));
	client_free(cl);
}

static void test_stream_response_backpressure(void **state)
{
	struct client *cl = client_new();
	int one = 32768;

	(void)state;
	/* a small receive buffer so the server really has to wait */
	(void)setsockopt(cl->fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof one);
	client_puts(cl, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
	if (wait_responses(cl, 1, NULL) != 1)
		fail_msg("drain calls %d sent %zu got %zu eof %d", g_drain_calls, g_big_sent, cl->len, cl->eof);
	assert_int_equal(R[0].status, 200);
	assert_int_equal(R[0].blen, BIG_TOTAL);
	assert_true(g_drain_calls >= 2);
	client_free(cl);
}

static void test_stream_request_body(void **state)
{
	struct client *cl = client_new();

	(void)state;
	client_puts(cl, "PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	                "5\r\nhello\r\n");
	pump_ms(cl, 20);
	assert_int_equal(g_up_bytes, 5);
	assert_int_equal(cl->len, 0);  /* no answer before the end */
	client_puts(cl, "6\r\n world\r\n0\r\n\r\n");
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 201);
	assert_string_equal(R[0].body, "got 11");
	assert_string_equal(g_up_data, "hello world");
	assert_true(g_up_chunks >= 2);
	assert_null(hdr(&R[0], "Connection"));  /* body fully read: keep-alive */

	/* with pause/resume on every piece, and a Content-Length body */
	g_up_pause = true;
	g_up_pauses = 0;
	client_puts(cl, "PUT /upload HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123");
	pump_ms(cl, 10);
	client_puts(cl, "456789");
	assert_int_equal(wait_responses(cl, 2, NULL), 2);
	g_up_pause = false;
	assert_int_equal(R[1].status, 201);
	assert_string_equal(R[1].body, "got 10");
	assert_string_equal(g_up_data, "0123456789");
	assert_true(g_up_pauses >= 2);
	client_free(cl);
}

/* Regression: a bodiless request on a streaming route used to stall until the
 * handler registered, and on_end was lost when it registered after the end. */
static void test_stream_body_registered_late(void **state)
{
	struct client *cl = client_new();

	(void)state;
	g_late = NULL;
	client_puts(cl, "PUT /late HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
	pump_ms(cl, 20);
	assert_non_null(g_late);
	assert_int_equal(cl->len, 0);
	http_req_on_body(g_late, up_data, up_end, NULL);
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 201);
	assert_string_equal(R[0].body, "got 0");
	/* pipelined: the request after a bodiless streaming one is answered too */
	g_late = NULL;
	client_puts(cl, "GET /late HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	pump_ms(cl, 20);
	assert_non_null(g_late);
	/* answered later without ever registering for a body (the gateway's GET) */
	assert_int_equal(http_reply(g_late, 200, "text/plain", "late", 4), 0);
	assert_int_equal(wait_responses(cl, 3, NULL), 3);
	assert_int_equal(R[1].status, 200);
	assert_string_equal(R[1].body, "late");
	assert_int_equal(R[2].status, 200);
	client_free(cl);
}

static void test_expect_continue(void **state)
{
	struct client *cl = client_new();

	(void)state;
	client_puts(cl, "POST /echo HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
	pump_ms(cl, 20);
	assert_string_equal(cl->buf, "HTTP/1.1 100 Continue\r\n\r\n");
	client_puts(cl, "ok");
	cl->len = 0;  /* drop the interim response */
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_string_equal(R[0].body, "POST /echo ? x=- lo=1 cl=2 body=ok");
	client_free(cl);
}

/* Refused before its body: no 100 Continue, the refusal, and the connection
 * closes (the client may never send the body it asked permission for). */
static void test_expect_continue_refused(void **state)
{
	struct client *cl;
	http_limits l = limits_default();

	(void)state;
	teardown(NULL);
	g_gate = t_gate;
	srv_start(&l);
	cl = client_new();
	client_puts(cl, "POST /echo HTTP/1.1\r\nX-Deny: 1\r\nContent-Length: 2\r\n"
	                "Expect: 100-continue\r\n\r\n");
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(R[0].status, 401);
	assert_null(strstr(cl->buf, "100 Continue"));
	assert_hdr(&R[0], "Connection", "close");
	wait_eof(cl);
	client_free(cl);
}

static void test_async_client_gone(void **state)
{
	struct client *cl = client_new();

	(void)state;
	g_async_closed = 0;
	client_puts(cl, "GET /async HTTP/1.1\r\n\r\n");
	pump_ms(NULL, 20);
	assert_non_null(g_async);
	assert_int_equal(http_server_inflight(F.srv), 1);
	client_free(cl);
	pump_ms(NULL, 30);
	assert_int_equal(g_async_closed, 1);
	assert_null(g_async);
	assert_int_equal(http_server_inflight(F.srv), 0);
	assert_int_equal(http_server_connections(F.srv), 0);
}

static void test_rate_limit(void **state)
{
	http_limits l = limits_default();
	struct client *cl;
	uint64_t before = metric("rejected_total", "reason=\"429\"");

	(void)state;
	teardown(NULL);
	l.requests_per_second = 2;
	srv_start(&l);
	cl = client_new();
	client_puts(cl, "GET /hello HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n"
	                "GET /hello HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n"
	                "PUT /upload HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(wait_responses(cl, 5, NULL), 5);
	assert_int_equal(R[0].status, 200);
	assert_int_equal(R[1].status, 200);
	assert_int_equal(R[2].status, 429);
	assert_hdr(&R[2], "Retry-After", "1");  /* 1 token at 2/s: 0.5 s, rounded up */
	assert_envelope(&R[2], "too_many_requests", true);
	assert_null(hdr(&R[2], "Connection"));
	assert_int_equal(R[3].status, 200);     /* exempt route */
	/* a refused streaming route never reaches its handler */
	assert_int_equal(R[4].status, 429);
	assert_int_equal(g_upload_calls, 0);
	assert_int_equal(g_hello_calls, 3);
	assert_int_equal(metric("rejected_total", "reason=\"429\""), before + 2);
	client_free(cl);
}

static void test_inflight_cap(void **state)
{
	http_limits l = limits_default();
	struct client *a, *b;
	uint64_t before = metric("rejected_total", "reason=\"503\"");

	(void)state;
	teardown(NULL);
	l.max_inflight = 1;
	srv_start(&l);
	a = client_new();
	b = client_new();
	client_puts(a, "GET /async HTTP/1.1\r\n\r\n");
	pump_ms(a, 20);
	assert_non_null(g_async);
	client_puts(b, "GET /hello HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n");
	assert_int_equal(wait_responses(b, 2, NULL), 2);
	assert_int_equal(R[0].status, 503);
	assert_hdr(&R[0], "Retry-After", "1");
	assert_envelope(&R[0], "overloaded", true);
	assert_int_equal(R[1].status, 200);     /* exempt */
	assert_int_equal(metric("rejected_total", "reason=\"503\""), before + 1);
	/* once the slow request ends, the cap lets the next one in */
	assert_int_equal(http_reply(g_async, 200, NULL, NULL, 0), 0);
	g_async = NULL;
	client_puts(b, "GET /hello HTTP/1.1\r\n\r\n");
	assert_int_equal(wait_responses(b, 3, NULL), 3);
	assert_int_equal(R[2].status, 200);
	client_free(a);
	client_free(b);
}

/* Facets are shed at 3/4 of max_inflight while core routes still pass;
 * the admin class never is; the server reports that it sheds. */
static void test_facet_shed_first(void **state)
{
	http_limits l = limits_default();
	struct client *up[3], *b;
	uint64_t before = metric("rejected_total", "reason=\"503\"");

	(void)state;
	teardown(NULL);
	l.max_inflight = 4;
	srv_start(&l);
	for (int i = 0; i < 3; i++) {
		up[i] = client_new();
		client_puts(up[i], "PUT /upload HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc");
		pump_ms(up[i], 10);
	}
	assert_int_equal(http_server_inflight(F.srv), 3);
	assert_false(http_server_shedding(F.srv));
	b = client_new();
	client_puts(b, "GET /facet HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n"
	               "GET /healthz HTTP/1.1\r\n\r\n");
	assert_int_equal(wait_responses(b, 3, NULL), 3);
	assert_int_equal(R[0].status, 503);
	assert_envelope(&R[0], "overloaded", true);
	assert_int_equal(R[1].status, 200);     /* core: 3 < 4 */
	assert_int_equal(R[2].status, 200);     /* admin */
	assert_true(http_server_shedding(F.srv));
	assert_int_equal(metric("rejected_total", "reason=\"503\""), before + 1);
	for (int i = 0; i < 3; i++)
		client_free(up[i]);
	client_free(b);
}

/* Queued response bytes count against memory_budget: a client that stops
 * reading a big response makes the server shed (core at the budget), while
 * admin routes still answer; the budget frees when the connection goes. */
static void test_memory_budget(void **state)
{
	http_limits l = limits_default();
	struct client *slow = calloc(1, sizeof *slow), *b;
	int small = 2048;
	uint64_t end;

	(void)state;
	teardown(NULL);
	l.memory_budget = 64 * 1024;
	g_big_total = 64u * 1024u * 1024u;
	srv_start(&l);
	assert_non_null(slow);
	slow->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(setsockopt(slow->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
	assert_int_equal(connect(slow->fd, (struct sockaddr *)&F.addr, sizeof F.addr), 0);
	client_puts(slow, "GET /big HTTP/1.1\r\n\r\n");
	end = now_ms() + PUMP_MS;
	while (http_server_queued(F.srv) < l.memory_budget && now_ms() < end)
		pump_once(NULL);
	assert_true(http_server_queued(F.srv) >= l.memory_budget);
	b = client_new();
	client_puts(b, "GET /hello HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n");
	assert_int_equal(wait_responses(b, 2, NULL), 2);
	assert_int_equal(R[0].status, 503);
	assert_envelope(&R[0], "overloaded", true);
	assert_int_equal(R[1].status, 200);
	assert_true(http_server_shedding(F.srv));
	client_free(slow);
	client_free(b);
	end = now_ms() + PUMP_MS;
	while (http_server_queued(F.srv) > 0 && now_ms() < end)
		pump_once(NULL);
	assert_int_equal(http_server_queued(F.srv), 0);
}

/* The gate runs for gated routes only, its refusal is answered with its
 * status, challenge and envelope on a connection that stays open, and its
 * body cap holds for declared and chunked bodies. */
static void test_gate(void **state)
{
	http_limits l = limits_default();
	struct client *c;
	uint64_t before = metric("rejected_total", "reason=\"unauth\"");

	(void)state;
	teardown(NULL);
	g_gate = t_gate;
	g_gate_calls = 0;
	srv_start(&l);
	c = client_new();
	client_puts(c, "GET /hello HTTP/1.1\r\nX-Deny: 1\r\n\r\n"
	               "GET /healthz HTTP/1.1\r\nX-Deny: 1\r\n\r\n"
	               "GET /facet HTTP/1.1\r\n\r\n");
	assert_int_equal(wait_responses(c, 3, NULL), 3);
	assert_int_equal(R[0].status, 401);
	assert_hdr(&R[0], "WWW-Authenticate", "Bearer realm=\"t\"");
	assert_envelope(&R[0], "unauthenticated", false);
	assert_int_equal(R[1].status, 200);     /* exempt: not gated */
	assert_int_equal(R[2].status, 200);
	assert_int_equal(g_gate_calls, 2);
	assert_int_equal(g_gate_class, HTTP_CLASS_FACET);
	assert_int_equal(g_hello_calls, 2);     /* /healthz and /facet, not /hello */
	assert_int_equal(metric("rejected_total", "reason=\"unauth\""), before + 1);
	client_free(c);
	settle();

	c = client_new();
	client_puts(c, "PUT /upload HTTP/1.1\r\nX-Cap: 1\r\nContent-Length: 6\r\n\r\nabcdef");
	assert_int_equal(wait_responses(c, 1, NULL), 1);
	assert_int_equal(R[0].status, 413);
	assert_int_equal(g_upload_calls, 0);
	client_free(c);
	settle();
	c = client_new();
	client_puts(c, "PUT /upload HTTP/1.1\r\nX-Cap: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
	               "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n");
	assert_int_equal(wait_responses(c, 1, NULL), 1);
	assert_int_equal(R[0].status, 413);
	client_free(c);
	settle();
	c = client_new();
	client_puts(c, "PUT /upload HTTP/1.1\r\nX-Cap: 1\r\nContent-Length: 5\r\n\r\nabcde");
	assert_int_equal(wait_responses(c, 1, NULL), 1);
	assert_int_equal(R[0].status, 201);  /* at the cap: admitted */
	client_free(c);
	settle();
	c = client_new();
	client_puts(c, "PUT /upload HTTP/1.1\r\nX-Cap0: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
	               "1\r\na\r\n0\r\n\r\n");
	assert_int_equal(wait_responses(c, 1, NULL), 1);
	assert_int_equal(R[0].status, 413);  /* a cap of 0 holds for chunked bodies */
	client_free(c);
}

/* A refusal given before the request's body arrived keeps the connection
 * when the rest of the body is small and of known length: the body is read
 * and dropped and the next request is answered. A larger or chunked body
 * closes, and the reply says so. Unmatched paths (404) do the same. */
static void test_refusal_drains_small_body(void **state)
{
	http_limits l = limits_default();
	struct client *c;
	char req[512];

	(void)state;
	teardown(NULL);
	g_gate = t_gate;
	srv_start(&l);
	c = client_new();
	snprintf(req, sizeof req, "PUT /upload HTTP/1.1\r\nX-Deny: 1\r\nContent-Length: 100\r\n\r\n"
	         "%0100d" "POST /nope HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789"
	         "GET /hello HTTP/1.1\r\n\r\n", 7);
	client_puts(c, req);
	assert_int_equal(wait_responses(c, 3, NULL), 3);
	assert_int_equal(R[0].status, 401);
	assert_null(hdr(&R[0], "Connection"));
	assert_int_equal(R[1].status, 404);
	assert_null(hdr(&R[1], "Connection"));
	assert_int_equal(R[2].status, 200);
	assert_int_equal(g_upload_calls, 0);
	client_free(c);
	settle();

	c = client_new();
	client_puts(c, "PUT /upload HTTP/1.1\r\nX-Deny: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
	               "3\r\nabc\r\n0\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
	assert_int_equal(wait_responses(c, 1, NULL), 1);
	assert_int_equal(R[0].status, 401);
	assert_hdr(&R[0], "Connection", "close");
	wait_eof(c);
	client_free(c);
}

/* Every ticket the gate hands out is ended exactly once, with the body
 * bytes that arrived: on completion, refusal, a body over the gate's cap,
 * a streamed body, an aborted response, a client gone while the handler
 * holds the request, and a server freed with a request in hand. */
static void test_gate_tickets(void **state)
{
	http_limits l = limits_default();
	struct client *c;

	(void)state;
	teardown(NULL);
	memset(g_tickets, 0, sizeof g_tickets);
	g_ticket_n = g_tickets_out = 0;
	g_gate = t_ticket_gate;
	g_gate_end = t_ticket_end;
	srv_start(&l);
	c = client_new();
	client_puts(c, "GET /hello HTTP/1.1\r\n\r\n"
	               "GET /hello HTTP/1.1\r\nX-Deny: 1\r\n\r\n"
	               "GET /healthz HTTP/1.1\r\n\r\n");            /* exempt: no ticket */
	assert_int_equal(wait_responses(c, 3, NULL), 3);
	assert_int_equal(R[0].status, 200);
	assert_int_equal(R[1].status, 401);
	client_free(c);
	settle();
	assert_int_equal(g_ticket_n, 2);
	assert_int_equal(g_tickets_out, 0);

	c = client_new();
	client_puts(c, "PUT /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	               "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
	assert_int_equal(wait_responses(c, 1, NULL), 1);
	assert_int_equal(R[0].status, 201);
	client_free(c);
	settle();
	assert_int_equal(g_tickets[2].bytes, 7);
	c = client_new();
	client_puts(c, "PUT /upload HTTP/1.1\r\nX-Cap: 1\r\nContent-Length: 6\r\n\r\nabcdef");
	assert_int_equal(wait_responses(c, 1, NULL), 1);
	assert_int_equal(R[0].status, 413);
	client_free(c);
	settle();
	c = client_new();
	client_puts(c, "GET /abort HTTP/1.1\r\n\r\n");
	wait_eof(c);
	client_free(c);
	settle();
	assert_int_equal(g_ticket_n, 5);
	assert_int_equal(g_tickets_out, 0);

	c = client_new();
	client_puts(c, "GET /async HTTP/1.1\r\n\r\n");
	pump_ms(NULL, 20);
	assert_non_null(g_async);
	assert_int_equal(g_tickets_out, 1);
	client_free(c);
	pump_ms(NULL, 30);
	assert_null(g_async);
	assert_int_equal(g_tickets_out, 0);

	c = client_new();
	client_puts(c, "GET /async HTTP/1.1\r\n\r\n");
	pump_ms(NULL, 20);
	assert_non_null(g_async);
	assert_int_equal(g_tickets_out, 1);
	http_server_free(F.srv);
	F.srv = NULL;
	assert_int_equal(g_tickets_out, 0);
	client_free(c);
	assert_int_equal(g_ticket_n, 7);
	for (int i = 0; i < g_ticket_n; i++)
		assert_int_equal(g_tickets[i].ends, 1);
}

static void test_conn_cap(void **state)
{
	http_limits l = limits_default();
	struct client *a, *b;
	uint64_t before = metric("rejected_total", "reason=\"conn_cap\"");

	(void)state;
	teardown(NULL);
	l.max_connections = 1;
	srv_start(&l);
	a = client_new();
	b = calloc(1, sizeof *b);
	b->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(b->fd, (struct sockaddr *)&F.addr, sizeof F.addr), 0);
	assert_int_equal(wait_responses(b, 1, NULL), 1);
	assert_int_equal(R[0].status, 503);
	assert_hdr(&R[0], "Connection", "close");
	assert_hdr(&R[0], "Retry-After", "1");
	assert_envelope(&R[0], "overloaded", true);
	wait_eof(b);
	assert_int_equal(http_server_connections(F.srv), 1);
	assert_int_equal(metric("rejected_total", "reason=\"conn_cap\""), before + 1);
	client_puts(a, "GET /hello HTTP/1.1\r\n\r\n");
	assert_int_equal(wait_responses(a, 1, NULL), 1);
	assert_int_equal(R[0].status, 200);
	client_free(a);
	client_free(b);
}

static void test_header_deadline(void **state)
{
	http_limits l = limits_default();
	struct client *cl;
	uint64_t t0, before = metric("rejected_total", "reason=\"timeout\"");

	(void)state;
	teardown(NULL);
	l.header_timeout_ms = 100;
	srv_start(&l);
	cl = client_new();
	t0 = now_ms();
	client_puts(cl, "GET /hello HTTP/1.1\r\nX-Slow: ");
	/* one byte every 10 ms: each read would reset a per-read timer */
	while (!cl->eof && now_ms() - t0 < 1000) {
		client_send(cl, "a", 1);
		pump_ms(cl, 10);
	}
	assert_true(cl->eof);
	assert_true(now_ms() - t0 >= 95);
	assert_true(now_ms() - t0 < 400);
	assert_int_equal(parse_all(cl, NULL, 1), 1);
	assert_int_equal(R[0].status, 408);
	assert_envelope(&R[0], "timeout", true);
	assert_int_equal(g_hello_calls, 0);
	assert_int_equal(metric("rejected_total", "reason=\"timeout\""), before + 1);
	client_free(cl);
}

static void test_body_deadline(void **state)
{
	http_limits l = limits_default();
	struct client *cl;

	(void)state;
	teardown(NULL);
	l.read_timeout_ms = 60;
	srv_start(&l);
	cl = client_new();
	client_puts(cl, "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nab");
	wait_eof(cl);
	assert_int_equal(parse_all(cl, NULL, 1), 1);
	assert_int_equal(R[0].status, 408);
	client_free(cl);
}

static void test_idle_deadline(void **state)
{
	http_limits l = limits_default();
	struct client *cl;
	uint64_t t0;

	(void)state;
	teardown(NULL);
	l.idle_timeout_ms = 80;
	srv_start(&l);
	cl = client_new();
	client_puts(cl, "GET /hello HTTP/1.1\r\n\r\n");
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	t0 = now_ms();
	wait_eof(cl);
	assert_true(now_ms() - t0 >= 60);
	assert_int_equal(cl->len, strlen(cl->buf));
	assert_null(strstr(cl->buf, "408"));  /* keep-alive expiry is silent */
	client_free(cl);
}

static void drain_done(void *arg)
{
	(void)arg;
	g_done_calls++;
}

static void test_drain(void **state)
{
	struct client *idle = client_new(), *busy = client_new();

	(void)state;
	g_done_calls = 0;
	client_puts(idle, "GET /hello HTTP/1.1\r\n\r\n");
	assert_int_equal(wait_responses(idle, 1, NULL), 1);
	client_puts(busy, "GET /async HTTP/1.1\r\n\r\n");
	pump_ms(busy, 20);
	assert_non_null(g_async);

	http_server_drain(F.srv, drain_done, NULL);
	wait_eof(idle);                 /* idle keep-alive: closed at once */
	pump_ms(busy, 20);
	assert_false(busy->eof);        /* busy: finishes its response */
	assert_int_equal(g_done_calls, 0);
	assert_int_equal(http_reply(g_async, 200, "text/plain", "bye", 3), 0);
	g_async = NULL;
	assert_int_equal(wait_responses(busy, 1, NULL), 1);
	assert_hdr(&R[0], "Connection", "close");
	assert_string_equal(R[0].body, "bye");
	wait_eof(busy);
	client_free(busy);           /* let the linger end at the client's close */
	pump_ms(NULL, 20);
	assert_int_equal(g_done_calls, 1);
	assert_int_equal(http_server_connections(F.srv), 0);
	/* nothing left: done runs synchronously */
	http_server_drain(F.srv, drain_done, NULL);
	assert_int_equal(g_done_calls, 2);
	client_free(idle);
}

static void test_metrics_and_status_text(void **state)
{
	struct client *cl = client_new();
	const char *lat = "service=\"test\",route=\"/hello\",method=\"GET\"";
	const char *ok = "service=\"test\",route=\"/hello\",code=\"200\"";
	uint64_t l0 = metric("request_latency_seconds", lat), c0 = metric("http_requests_total", ok);
	uint64_t in0 = metric("http_bytes_in_total", "service=\"test\"");

	(void)state;
	assert_int_equal(metric("open_connections", "service=\"test\""), 1);
	client_puts(cl, "GET /hello HTTP/1.1\r\n\r\n");
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_int_equal(metric("request_latency_seconds", lat), l0 + 1);
	assert_int_equal(metric("http_requests_total", ok), c0 + 1);
	assert_int_equal(metric("http_bytes_in_total", "service=\"test\""), in0 + 23);
	assert_true(metric("http_bytes_out_total", "service=\"test\"") >= cl->len);
	assert_string_equal(http_status_text(404), "Not Found");
	assert_string_equal(http_status_text(431), "Request Header Fields Too Large");
	client_free(cl);
	pump_ms(NULL, 20);
	assert_int_equal(metric("open_connections", "service=\"test\""), 0);
}

static void test_resp_header_injection(void **state)
{
	struct client *cl = client_new();

	(void)state;
	client_puts(cl, "GET /async HTTP/1.1\r\n\r\n");
	pump_ms(cl, 20);
	assert_non_null(g_async);
	assert_int_equal(http_resp_header(g_async, "X-A", "ok\r\nSet-Cookie: x"), -1);
	assert_int_equal(http_resp_header(g_async, "Bad Name", "v"), -1);
	assert_int_equal(http_resp_header(g_async, "Content-Length", "3"), -1);
	assert_int_equal(http_resp_header(g_async, "X-A", "ok"), 0);
	assert_int_equal(http_resp_start(g_async, 200, 2), 0);
	assert_int_equal(http_resp_header(g_async, "X-B", "late"), -1);
	assert_int_equal(http_resp_write(g_async, "abc", 3), -1);  /* over Content-Length */
	assert_int_equal(http_resp_write(g_async, "ab", 2), 0);
	assert_int_equal(http_resp_end(g_async), 0);
	g_async = NULL;
	assert_int_equal(wait_responses(cl, 1, NULL), 1);
	assert_hdr(&R[0], "X-A", "ok");
	assert_string_equal(R[0].body, "ab");
	client_free(cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_default, teardown)
		T(test_basic_keepalive),
		T(test_split_reads),
		T(test_pipelining),
		T(test_pipelining_async_in_order),
		T(test_pipelining_mixed_framing),
		T(test_smuggling_refused),
		T(test_stream_body_refused_closes),
		T(test_resp_abort),
		T(test_bad_chunk_size),
		T(test_malformed_request_line),
		T(test_header_too_large),
		T(test_too_many_headers),
		T(test_uri_too_long),
		T(test_content_length_over_cap),
		T(test_chunked_over_cap),
		T(test_body_at_cap_ok),
		T(test_upload_cap_and_body_cap),
		T(test_not_found),
		T(test_method_not_allowed),
		T(test_head_no_body),
		T(test_connection_close),
		T(test_half_close),
		T(test_http10),
		T(test_stream_response_chunked),
		T(test_stream_response_backpressure),
		T(test_stream_request_body),
		T(test_stream_body_registered_late),
	T(test_expect_continue),
		T(test_async_client_gone),
		T(test_rate_limit),
		T(test_inflight_cap),
		T(test_facet_shed_first),
		T(test_gate),
		T(test_gate_tickets),
		T(test_refusal_drains_small_body),
		T(test_expect_continue_refused),
		T(test_memory_budget),
		T(test_conn_cap),
		T(test_header_deadline),
		T(test_body_deadline),
		T(test_idle_deadline),
		T(test_drain),
		T(test_metrics_and_status_text),
		T(test_resp_header_injection),
#undef T
	};

	signal(SIGPIPE, SIG_IGN);
	log_init("test_http", LOG_LEVEL_WARN, 2);  /* refusals are the point here */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
