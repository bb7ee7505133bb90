/*
 * http_request.c — libFuzzer target: arbitrary bytes from a client into one
 * HTTP connection of the real server core (parser callbacks, limits, state
 * machine, pipelining, streaming bodies, responses), over a socketpair.
 *
 * The first input byte picks the write size (1..64), so one input exercises
 * the same request split at different points; the rest is the byte stream.
 * Routes cover a synchronous reply, a buffered body, a streaming body with
 * pause/resume, a chunked streaming response and an answer from a later
 * loop turn. A gate refuses ("X-Deny") or lowers the body cap and asks for
 * the streamed bytes to be charged ("X-Cap"), as the wall does.
 *
 * Build by hand (from the repository root; `make fuzz` does the same):
 *   clang -g -O1 -std=c17 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
 *     -Isrc fuzz/http_request.c src/core/net/conn.c src/core/net/http.c src/core/net/http_conn.c \
 *     src/core/net/http_resp.c src/core/metrics/metrics.c src/lib/log.c src/lib/tbucket.c \
 *     -levent_core -lhttp_parser -lm -o build/fuzz_http_request
 * Run:
 *   build/fuzz_http_request -max_len=65536 -timeout=10 fuzz/corpus/http_request
 *
 * fuzz/http2_request.c is this same harness with FZ_H2 defined: the
 * connection is handed to the HTTP/2 codec (http_h2.c, on nghttp2) as ALPN
 * h2 would, the client preface and an empty SETTINGS frame are sent first,
 * and the input is the frame stream after them.
 */
#include <event2/event.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/net/http_int.h"
#include "lib/log.h"

#define FUZZ_MAX_TURNS   4096   /* loop turns per input: bounded even if stuck */
#define FUZZ_TAIL_TURNS  16     /* turns after the client is done */

/* A gate with every outcome: refuse with a challenge, lower the body cap,
 * meter the streamed bytes. Every request it judges gets a ticket, and the
 * core must end each exactly once: fz_tickets counts them out and back. */
struct fz_ticket {
	uint64_t cap;     /* UINT64_MAX: not capped */
};
static struct fz_ticket fz_refused = { UINT64_MAX };
static struct fz_ticket fz_capped[2] = { { 7 }, { 0 } };
static long fz_tickets;

static void fz_gate(http_req *r, void *arg, http_gate_verdict *v)
{
	(void)arg;
	if (http_req_header(r, "X-Deny")) {
		v->status = 401;
		v->code = "unauthenticated";
		v->reject = REJECT_UNAUTH;
		v->www_authenticate = "Bearer realm=\"fuzz\"";
		v->message = http_req_path(r);
		v->ticket = &fz_refused;
		fz_tickets++;
	} else if (http_req_header(r, "X-Cap")) {
		struct fz_ticket *t = &fz_capped[http_req_header(r, "X-Zero") ? 1 : 0];

		v->body_capped = true;
		v->body_cap = t->cap;
		v->ticket = t;
		fz_tickets++;
	}
}

static void fz_gate_end(void *arg, void *ticket, uint64_t n)
{
	const struct fz_ticket *t = ticket;

	(void)arg;
	if (!t || --fz_tickets < 0 || (t->cap != UINT64_MAX && n > t->cap))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct event_base *fz_base;
static http_req *fz_later;   /* answered on a later loop turn */
static unsigned fz_body_calls;

static void h_sync(http_req *r, void *arg)
{
	(void)arg;
	(void)http_resp_header(r, "X-Q", http_req_query(r));
	(void)http_reply(r, 200, "text/plain", "ok", 2);
}

static void h_buffered(http_req *r, void *arg)
{
	size_t len;
	const uint8_t *b = http_req_body(r, &len);

	(void)arg;
	(void)http_reply(r, 200, "application/octet-stream", b, len);
}

static int fz_on_data(http_req *r, const uint8_t *d, size_t len, void *arg)
{
	(void)arg;
	(void)d;
	(void)len;
	/* Exercise pause + resume inside the same callback and early refusal. */
	if (++fz_body_calls % 3 == 0) {
		http_req_pause_body(r);
		http_req_resume_body(r);
	}
	if (fz_body_calls % 7 == 0) {
		(void)http_reply_error(r, 422, "unprocessable", "no", false, 0);
		return -1;
	}
	return 0;
}

static void fz_on_end(http_req *r, void *arg)
{
	(void)arg;
	(void)http_reply(r, 201, NULL, NULL, 0);
}

static void h_stream_body(http_req *r, void *arg)
{
	(void)arg;
	http_req_on_body(r, fz_on_data, fz_on_end, NULL);
}

static void h_chunked(http_req *r, void *arg)
{
	(void)arg;
	if (http_resp_start(r, 200, -1) < 0)
		return;
	(void)http_resp_write(r, "abc", 3);
	(void)http_resp_write(r, "", 0);
	(void)http_resp_end(r);
}

static void fz_later_closed(http_req *r, void *arg)
{
	(void)r;
	(void)arg;
	fz_later = NULL;
}

static void fz_later_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (fz_later) {
		http_req *r = fz_later;

		fz_later = NULL;
		(void)http_reply_error(r, 503, "overloaded", "later", true, 2);
	}
}

static void h_later(http_req *r, void *arg)
{
	(void)arg;
	if (fz_later) {
		(void)http_reply(r, 409, NULL, NULL, 0);
		return;
	}
	fz_later = r;
	http_req_on_close(r, fz_later_closed, NULL);
	(void)event_base_once(fz_base, -1, EV_TIMEOUT, fz_later_fire, NULL, NULL);
}

static const http_route fz_routes[] = {
	{ HTTP_M_GET, "/a", "/a", 0, h_sync, NULL },
	{ HTTP_M_POST | HTTP_M_PUT, "/b", "/b", 0, h_buffered, NULL },
	{ HTTP_M_PUT | HTTP_M_POST, "/s", "/s", HTTP_ROUTE_STREAM_BODY, h_stream_body, NULL },
	{ HTTP_M_GET, "/c", "/c", 0, h_chunked, NULL },
	{ HTTP_M_GET | HTTP_M_DELETE, "/x/", "/x/{id}", HTTP_ROUTE_PREFIX, h_later, NULL },
	{ HTTP_M_GET, "/h", "/h", HTTP_ROUTE_EXEMPT, h_sync, NULL },
	{ HTTP_M_GET, "/f", "/f", HTTP_ROUTE_FACET, h_sync, NULL },
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	log_init("fuzz", LOG_LEVEL_ERROR, 2);  /* refusals are expected; keep output quiet */
	fz_base = event_base_new();
	return fz_base ? 0 : -1;
}

/* Read and discard whatever the server answered. */
static void fz_discard(int fd)
{
	char buf[16384];

	while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	http_limits l = {
		.read_timeout_ms = 1000, .write_timeout_ms = 1000, .idle_timeout_ms = 1000,
		.header_timeout_ms = 1000, .max_body_bytes = 4096, .max_header_bytes = 2048,
		.max_inflight = 4, .requests_per_second = 1000, .max_connections = 4,
	};
	http_server_opts o = { .service = "fuzz", .limits = l, .routes = fz_routes,
	                       .nroutes = sizeof fz_routes / sizeof fz_routes[0],
	                       .gate = fz_gate, .gate_end = fz_gate_end };
	http_server *srv;
	size_t step, off = 1;
	int sv[2];

	if (size < 1 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	step = 1 + data[0] % 64;
	srv = http_server_new(fz_base, &o);
	struct http_conn *c = srv ? http_conn_new(srv, sv[0], NULL, 0) : NULL;
	if (!c) {
		http_server_free(srv);
		close(sv[1]);
		return 0;
	}
#ifdef FZ_H2
	{
		static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
		                                 "\x00\x00\x00\x04\x00\x00\x00\x00\x00";
		if (h2_sess_start(c) < 0 ||
		    send(sv[1], preface, sizeof preface - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			http_server_free(srv);
			close(sv[1]);
			return 0;
		}
	}
#endif
	for (unsigned turn = 0, tail = 0; turn < FUZZ_MAX_TURNS && tail < FUZZ_TAIL_TURNS; turn++) {
		if (off < size) {
			size_t n = size - off < step ? size - off : step;
			ssize_t w = send(sv[1], data + off, n, MSG_DONTWAIT | MSG_NOSIGNAL);

			if (w > 0)
				off += (size_t)w;
			if (off == size)
				(void)shutdown(sv[1], SHUT_WR);
		} else {
			tail++;
		}
		event_base_loop(fz_base, EVLOOP_NONBLOCK);
		fz_discard(sv[1]);
		if (http_server_connections(srv) == 0)
			break;
	}
	http_server_free(srv);   /* on_close for anything still pending */
	if (fz_tickets != 0)     /* a request's ticket was never ended */
		abort();
	close(sv[1]);
	event_base_loop(fz_base, EVLOOP_NONBLOCK);  /* run the event_base_once leftovers */
	fz_later = NULL;
	return 0;
}
