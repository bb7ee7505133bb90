/*
 * http.c — HTTP/1.1 server: listener (conn.h) and its connection cap,
 * limits, routing and admission (404/405/429/503/413), metrics, drain and
 * the request accessors. The per-connection state machine lives in http_conn.c,
 * response framing in http_resp.c.
 */
#include "core/config/config.h"
#include "core/net/http_int.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/tls.h"
#include "lib/log.h"

/* Bytes of a canned response for a connection refused at accept. */
#define HTTP_CONN_CAP_RESP_MAX 512
/* Bytes of already-arrived input we read off a refused socket so that close()
 * does not answer them with an RST that could destroy the 503 in flight. */
#define HTTP_CONN_CAP_DRAIN    4096

static const char *const method_names[HTTP_METHOD_SLOTS] = {
	"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "other",
};

uint64_t http_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void limits_normalize(http_limits *l)
{
	if (!l->read_timeout_ms)
		l->read_timeout_ms = HTTP_DEFAULT_TIMEOUT_MS;
	if (!l->write_timeout_ms)
		l->write_timeout_ms = HTTP_DEFAULT_TIMEOUT_MS;
	if (!l->header_timeout_ms)
		l->header_timeout_ms = HTTP_DEFAULT_TIMEOUT_MS;
	if (!l->idle_timeout_ms)
		l->idle_timeout_ms = HTTP_DEFAULT_IDLE_MS;
	if (!l->body_grace_ms)
		l->body_grace_ms = HTTP_DEFAULT_TIMEOUT_MS;
	if (!l->max_body_bytes)
		l->max_body_bytes = HTTP_DEFAULT_MAX_BODY;
	if (!l->max_upload_bytes)
		l->max_upload_bytes = l->max_body_bytes;
	if (!l->max_header_bytes)
		l->max_header_bytes = HTTP_DEFAULT_MAX_HEADER;
	if (!l->max_inflight)
		l->max_inflight = HTTP_DEFAULT_MAX_INFLIGHT;
	if (!l->max_connections)
		l->max_connections = HTTP_DEFAULT_MAX_CONNECTIONS;
	if (!l->h2_max_streams)
		l->h2_max_streams = HTTP_H2_DEFAULT_STREAMS;
	if (!l->h2_stream_window)
		l->h2_stream_window = HTTP_H2_DEFAULT_STREAM_WINDOW;
	if (!l->h2_conn_window)
		l->h2_conn_window = HTTP_H2_DEFAULT_CONN_WINDOW;
	if (!l->h2_requests_per_s)
		l->h2_requests_per_s = HTTP_H2_DEFAULT_RPS;
	if (!l->h2_control_per_s)
		l->h2_control_per_s = HTTP_H2_DEFAULT_CONTROL;
}

/* ---- metrics ---------------------------------------------------------- */

static const char *stats_label(const http_server *srv, size_t idx)
{
	return idx < srv->nroutes ? srv->routes[idx].label : "unmatched";
}

static metrics_series *stats_get(const char *family, const char *service,
                                 const char *route, const char *k, const char *v)
{
	char es[64], er[96], labels[METRICS_MAX_LABELS];
	int n;

	if (metrics_label_escape(es, sizeof es, service) < 0 ||
	    metrics_label_escape(er, sizeof er, route ? route : "") < 0)
		return NULL;
	if (route)
		n = snprintf(labels, sizeof labels, "service=\"%s\",route=\"%s\",%s=\"%s\"",
		             es, er, k, v);
	else
		n = snprintf(labels, sizeof labels, "service=\"%s\"", es);
	if (n < 0 || (size_t)n >= sizeof labels)
		return NULL;
	return metrics_get(family, labels);
}

static metrics_series *stats_code(http_server *srv, size_t idx, int code)
{
	struct http_route_stats *st = &srv->stats[idx];
	char cs[12];

	for (size_t i = 0; i < HTTP_CODE_CACHE; i++) {
		if (st->codes[i].code == code)
			return st->codes[i].s;
		if (st->codes[i].code == 0) {
			snprintf(cs, sizeof cs, "%d", code);   /* only on a miss: this runs per request */
			st->codes[i].code = code;
			st->codes[i].s = stats_get("http_requests_total", srv->service,
			                           stats_label(srv, idx), "code", cs);
			return st->codes[i].s;
		}
	}
	/* Cache full: rare codes go through the registry's own lookup. */
	snprintf(cs, sizeof cs, "%d", code);
	return stats_get("http_requests_total", srv->service, stats_label(srv, idx), "code", cs);
}

static size_t method_slot(unsigned bit)
{
	for (size_t i = 0; i + 1 < HTTP_METHOD_SLOTS; i++)
		if (bit == (1u << i))
			return i;
	return HTTP_METHOD_SLOTS - 1;
}

static metrics_series *stats_latency(http_server *srv, size_t idx, unsigned bit)
{
	struct http_route_stats *st = &srv->stats[idx];
	size_t m = method_slot(bit);

	if (!st->latency_done[m]) {
		st->latency[m] = stats_get("request_latency_seconds", srv->service,
		                           stats_label(srv, idx), "method", method_names[m]);
		st->latency_done[m] = true;
	}
	return st->latency[m];
}

static void refusal_log(http_server *srv, const char *reason, const char *corr_id)
{
	if (!tbucket_take(&srv->log_rate, 1, http_now_ms()))
		return;
	log_kv(LOG_LEVEL_INFO, "http refused", "reason", reason,
	       "corr_id", corr_id ? corr_id : "-", LOG_END);
}

void http_server_count_reject(http_server *srv, reject_reason why, const char *corr_id)
{
	if (why == REJECT_NONE)
		return;
	reject_count(REJECT_FAMILY_NODE, why);
	refusal_log(srv, reject_name(why), corr_id);
}

static double elapsed_s(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void access_log(http_req *r, double secs)
{
	char code[12], ms[24];

	if (log_get_level() > LOG_LEVEL_DEBUG)
		return;
	snprintf(code, sizeof code, "%d", r->resp.status);
	snprintf(ms, sizeof ms, "%.3f", secs * 1000.0);
	log_kv(LOG_LEVEL_DEBUG, "http request", "route", http_req_route_label(r),
	       "method", http_req_method(r), "code", code, "corr_id", r->corr_id,
	       "latency_ms", ms, LOG_END);
}

void http_server_account(http_server *srv, http_req *r)
{
	double secs = elapsed_s(&r->t0);

	metrics_inc(stats_code(srv, r->stats_idx, r->resp.status), 1);
	metrics_observe(stats_latency(srv, r->stats_idx, r->have_method ? r->method_bit : 0), secs);
	http_server_inflight_del(srv, r);
	access_log(r, secs);
}

void http_server_inflight_add(http_server *srv, http_req *r)
{
	if (!r->inflight) {
		r->inflight = true;
		srv->inflight++;
	}
}

void http_server_inflight_del(http_server *srv, http_req *r)
{
	if (r->inflight) {
		r->inflight = false;
		srv->inflight--;
	}
}

/* ---- small shared helpers -------------------------------------------- */

const char *http_server_date(http_server *srv)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char mons[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct timeval tv;
	struct tm tm;

	if (event_base_gettimeofday_cached(srv->base, &tv) < 0)
		gettimeofday(&tv, NULL);
	if (tv.tv_sec == srv->date_sec && srv->date[0])
		return srv->date;
	/* Built by hand: strftime's %a/%b follow the locale, HTTP dates do not. */
	if (!gmtime_r(&tv.tv_sec, &tm))
		return srv->date;
	snprintf(srv->date, sizeof srv->date, "%s, %02d %s %04d %02d:%02d:%02d GMT",
	         days[tm.tm_wday % 7], tm.tm_mday, mons[tm.tm_mon % 12], tm.tm_year + 1900,
	         tm.tm_hour, tm.tm_min, tm.tm_sec);
	srv->date_sec = tv.tv_sec;
	return srv->date;
}

/*
 * Correlation ids: a random 32-bit prefix per server plus a counter, so ids
 * are unique within a server and unlikely to collide across servers and
 * processes. Every service is a fresh exec (DESIGN §2) that makes its own
 * server, so two processes never share a sequence; keeping the state in the
 * server (not in statics checked against getpid()) costs no system call per
 * request. Hex by hand: this runs for every request.
 */
static void corr_id_seed(http_server *srv)
{
	if (getrandom(&srv->corr_prefix, sizeof srv->corr_prefix, GRND_NONBLOCK) !=
	    (ssize_t)sizeof srv->corr_prefix)
		srv->corr_prefix = (uint32_t)getpid() * 2654435761u ^ (uint32_t)time(NULL);
	srv->corr_counter = 0;
}

static void hex32(char *out, uint32_t v)
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 7; i >= 0; i--, v >>= 4)
		out[i] = digits[v & 0xfu];
}

void http_corr_id_new(http_server *srv, char out[HTTP_CORR_ID_LEN + 1])
{
	hex32(out, srv->corr_prefix);
	hex32(out + 8, srv->corr_counter++);
	out[HTTP_CORR_ID_LEN] = '\0';
}

unsigned http_method_to_bit(unsigned m)
{
	switch (m) {
	case HTTP_GET:     return HTTP_M_GET;
	case HTTP_HEAD:    return HTTP_M_HEAD;
	case HTTP_POST:    return HTTP_M_POST;
	case HTTP_PUT:     return HTTP_M_PUT;
	case HTTP_DELETE:  return HTTP_M_DELETE;
	case HTTP_OPTIONS: return HTTP_M_OPTIONS;
	case HTTP_PATCH:   return HTTP_M_PATCH;
	default:           return 0;
	}
}

/* ---- routing and admission ------------------------------------------ */

static bool route_path_matches(const http_route *rt, const char *path)
{
	if (rt->flags & HTTP_ROUTE_PREFIX)
		return strncmp(path, rt->path, strlen(rt->path)) == 0;
	return strcmp(path, rt->path) == 0;
}

/* A GET route answers HEAD too (RFC 9110 §9.3.2); the core drops the body. */
static unsigned route_methods(const http_route *rt)
{
	return rt->methods & HTTP_M_GET ? rt->methods | HTTP_M_HEAD : rt->methods;
}

/* First route matching path and method; else NULL with *allow = union of the
 * methods of routes matching the path and *first = the first of those. */
static const http_route *route_match(const http_server *srv, const char *path, unsigned bit,
                                     unsigned *allow, const http_route **first)
{
	*allow = 0;
	*first = NULL;
	for (size_t i = 0; i < srv->nroutes; i++) {
		const http_route *rt = &srv->routes[i];

		if (!route_path_matches(rt, path))
			continue;
		if (bit && (route_methods(rt) & bit))
			return rt;
		*allow |= route_methods(rt);
		if (!*first)
			*first = rt;
	}
	return NULL;
}

static void allow_format(char *dst, size_t len, unsigned mask)
{
	size_t o = 0;

	dst[0] = '\0';
	for (size_t i = 0; i + 1 < HTTP_METHOD_SLOTS; i++) {
		int n;

		if (!(mask & (1u << i)))
			continue;
		n = snprintf(dst + o, len - o, "%s%s", o ? ", " : "", method_names[i]);
		if (n < 0 || (size_t)n >= len - o)
			return;
		o += (size_t)n;
	}
}

static void admit_unmatched(http_server *srv, http_req *r, unsigned allow,
                            const http_route *first)
{
	char hdr[64];

	if (!first) {
		r->stats_idx = srv->nroutes;
		http_req_reject(r, 404, "not_found", "no such resource", REJECT_NONE, 0);
		return;
	}
	r->route = first;
	r->stats_idx = (size_t)(first - srv->routes);
	allow_format(hdr, sizeof hdr, allow);
	if (http_resp_header(r, "Allow", hdr) < 0) {
		http_req_kill(r);
		return;
	}
	http_req_reject(r, 405, "method_not_allowed",
	                 "method not allowed for this resource", REJECT_NONE, 0);
}

/* true: refused by the request rate cap (answered with 429). */
static bool admit_over_rate(http_server *srv, http_req *r)
{
	uint64_t now;

	if (!srv->limits.requests_per_second)
		return false;
	now = http_now_ms();
	if (tbucket_take(&srv->rate, 1, now))
		return false;
	http_req_reject(r, 429, "too_many_requests", "request rate limit exceeded",
	                 REJECT_429, tbucket_retry_after_s(&srv->rate, 1, now));
	return true;
}

/* true: refused by load (answered with 503): in-flight requests or queued
 * response bytes. Facets go first, at 3/4 of either cap; core routes at the
 * cap. */
static bool admit_over_inflight(http_server *srv, http_req *r)
{
	bool facet = (r->route->flags & HTTP_ROUTE_FACET) != 0;
	size_t cap = srv->limits.max_inflight;
	uint64_t budget = srv->limits.memory_budget;

	if (facet) {
		cap -= cap / 4;
		budget -= budget / 4;
	}
	bool busy = srv->inflight >= cap;
	if (!busy && !(budget && srv->queued >= budget))
		return false;
	srv->shed_ms = http_now_ms();
	http_req_reject(r, 503, "overloaded",
	                 facet ? "shedding load: facet routes refused first"
	                 : busy ? "too many requests in flight"
	                        : "response memory budget exhausted",
	                 REJECT_503, 1);
	return true;
}

/* Body cap decided from Content-Length before a single body byte is read. */
static bool admit_over_body(http_req *r)
{
	if (r->chunked || r->content_length <= 0 || (uint64_t)r->content_length <= r->body_limit)
		return false;
	http_req_reject_status(r, 413, NULL);
	return true;
}

/* true: the gate refused (answered). Whatever ticket the gate handed out is
 * the request's from here on: http_req_free ends it, on every path. */
static bool admit_gate(http_server *srv, http_req *r)
{
	http_gate_verdict v;

	memset(&v, 0, sizeof v);
	r->gated = true;
	srv->gate(r, srv->gate_arg, &v);
	r->gate_ticket = v.ticket;
	if (v.status == 0) {
		if (v.body_capped && v.body_cap < r->body_limit)
			r->body_limit = v.body_cap;
		return false;
	}
	http_server_count_reject(srv, v.reject, r->corr_id);
	if (v.www_authenticate && http_resp_header(r, "WWW-Authenticate", v.www_authenticate) < 0) {
		http_req_kill(r);
		return true;
	}
	http_req_reject(r, v.status, v.code ? v.code : "forbidden",
	                 v.message && v.message[0] ? v.message : "refused", REJECT_NONE,
	                 v.retry_after_s);
	return true;
}

uint64_t http_route_body_cap(const http_limits *l, const http_route *rt, unsigned method)
{
	if (rt && (rt->flags & HTTP_ROUTE_UPLOAD) && (method & (HTTP_M_PUT | HTTP_M_POST)))
		return l->max_upload_bytes;
	return l->max_body_bytes;
}

int http_server_admit(http_server *srv, http_req *r)
{
	unsigned allow;
	const http_route *first;
	const http_route *rt = route_match(srv, http_req_path(r), r->method_bit, &allow, &first);

	if (!rt) {
		r->body_limit = srv->limits.max_body_bytes;   /* what is read and dropped */
		/* Unmatched paths pay the rate cap too: a flood of 404s is not free. */
		if (!(first && (first->flags & HTTP_ROUTE_EXEMPT)) && admit_over_rate(srv, r))
			return -1;
		admit_unmatched(srv, r, allow, first);
		return -1;
	}
	r->route = rt;
	r->stats_idx = (size_t)(rt - srv->routes);
	r->body_limit = http_route_body_cap(&srv->limits, rt, r->method_bit);
	if (admit_over_body(r))
		return -1;
	if (rt->flags & HTTP_ROUTE_EXEMPT)
		return 0;
	/* Auth → Policy → Quota (the gate), then the node-wide caps. */
	if (srv->gate && admit_gate(srv, r))
		return -1;
	/* Again: a gate may have lowered this request's body cap. */
	if (admit_over_body(r) || admit_over_rate(srv, r) || admit_over_inflight(srv, r))
		return -1;
	return 0;
}

uint64_t http_server_queued(const http_server *srv)
{
	return srv->queued;
}

bool http_server_shedding(const http_server *srv)
{
	return srv->shed_ms && http_now_ms() - srv->shed_ms < HTTP_SHED_HOLD_MS;
}

void http_limits_from_config(http_limits *l, const mn_config *c)
{
	l->read_timeout_ms = c->read_timeout_ms;
	l->write_timeout_ms = c->write_timeout_ms;
	l->idle_timeout_ms = c->idle_timeout_ms;
	l->header_timeout_ms = c->header_timeout_ms;
	l->max_body_bytes = c->max_body_bytes;
	l->max_upload_bytes = c->storage_max_object_bytes;
	l->max_header_bytes = c->max_header_bytes;
	l->max_inflight = c->max_inflight;
	l->requests_per_second = c->requests_per_second;
	l->max_connections = c->max_connections;
	l->memory_budget = c->memory_budget;
	l->min_body_rate = c->min_body_rate;
	l->body_grace_ms = c->body_grace_ms;
	l->h2_max_streams = c->h2_max_streams;
	l->h2_stream_window = (uint32_t)c->h2_stream_window;   /* ≤ 16 MiB (config bounds) */
	l->h2_conn_window = (uint32_t)c->h2_conn_window;       /* ≤ 64 MiB */
	l->h2_requests_per_s = c->h2_requests_per_s;
	l->h2_control_per_s = c->h2_control_per_s;
}

/* ---- listener ------------------------------------------------------- */

/* Over max_connections: answer 503 on the raw socket and close, without
 * allocating a connection (that is the point of the cap). */
static void conn_cap_refuse(http_server *srv, int fd)
{
	char buf[HTTP_CONN_CAP_RESP_MAX], body[128], corr[HTTP_CORR_ID_LEN + 1];
	int bn, n;

	http_corr_id_new(srv, corr);
	/* A TLS client cannot read a plaintext 503, and a handshake per refusal
	 * is what the cap exists to avoid: just close. */
	if (srv->tls) {
		http_server_count_reject(srv, REJECT_CONN_CAP, corr);
		close(fd);
		return;
	}
	/* Counted before the client can see the answer, so /metrics never lags it. */
	metrics_inc(stats_code(srv, srv->nroutes, 503), 1);
	http_server_count_reject(srv, REJECT_CONN_CAP, corr);
	bn = snprintf(body, sizeof body, "{\"code\":\"overloaded\",\"message\":\"too many "
	              "connections\",\"retryable\":true,\"corr_id\":\"%s\"}", corr);
	n = snprintf(buf, sizeof buf, "HTTP/1.1 503 Service Unavailable\r\nDate: %s\r\n"
	             "Content-Type: application/json\r\nContent-Length: %d\r\nRetry-After: 1\r\n"
	             "%sConnection: close\r\n\r\n%s", http_server_date(srv), bn,
	             srv->cors_refusals ? "Access-Control-Allow-Origin: *\r\n" : "", body);
	if (n > 0 && (size_t)n < sizeof buf) {
		ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w > 0)
			metrics_inc(srv->m_out, (uint64_t)w);
	}
	(void)shutdown(fd, SHUT_WR);
	for (size_t got = 0; got < HTTP_CONN_CAP_DRAIN;) {
		ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
}

/* Over max_connections (conn_listener's cap): the canned 503. */
static void on_refuse(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	(void)sa;
	(void)salen;
	conn_cap_refuse(arg, fd);
}

static void on_accept(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	(void)http_conn_new(arg, fd, sa, salen);
}

static size_t on_live(void *arg)
{
	return http_server_connections(arg);
}

int http_server_listen_fd(http_server *srv, int fd, bool own_fd)
{
	conn_listener_opts o = {
		.on_accept = on_accept, .on_refuse = on_refuse, .live = on_live,
		.max_conns = srv ? srv->limits.max_connections : 0, .arg = srv,
		.log_msg = "http accept failed", .own_fd = own_fd,
	};

	if (!srv || fd < 0 || srv->lst)
		return -1;
	if (!(srv->lst = conn_listener_new(srv->base, fd, &o)))
		return -1;
	if (srv->draining)
		conn_listener_enable(srv->lst, false);
	return 0;
}

/* ---- server lifetime ------------------------------------------------ */

/* A route table is code, not input: a hole in it is a bug, caught at start. */
static bool routes_valid(const http_route *routes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const http_route *rt = &routes[i];

		if (!rt->path || rt->path[0] != '/' || !rt->label || !rt->fn || !rt->methods) {
			(void)BUG("http: invalid route");
			return false;
		}
	}
	return true;
}

http_server *http_server_new(struct event_base *base, const http_server_opts *opts)
{
	http_server *srv;

	if (!base || !opts || (opts->nroutes && !opts->routes) ||
	    !routes_valid(opts->routes, opts->nroutes))
		return NULL;
	srv = calloc(1, sizeof *srv);
	if (!srv)
		return NULL;
	srv->base = base;
	srv->service = opts->service ? opts->service : "http";
	srv->routes = opts->routes;
	srv->gate = opts->gate;
	srv->gate_end = opts->gate_end;
	srv->gate_arg = opts->gate_arg;
	srv->cors_refusals = opts->cors_refusals;
	srv->nroutes = opts->nroutes;
	corr_id_seed(srv);
	srv->stats = calloc(opts->nroutes + 1, sizeof *srv->stats);
	if (!srv->stats) {
		http_server_free(srv);
		return NULL;
	}
	http_server_set_limits(srv, &opts->limits);
	tbucket_init(&srv->log_rate, HTTP_LOG_REFUSALS_PER_S, HTTP_LOG_REFUSALS_PER_S, http_now_ms());
	srv->m_open = stats_get("open_connections", srv->service, NULL, NULL, NULL);
	srv->m_in = stats_get("http_bytes_in_total", srv->service, NULL, NULL, NULL);
	srv->m_out = stats_get("http_bytes_out_total", srv->service, NULL, NULL, NULL);
	return srv;
}

void http_server_free(http_server *srv)
{
	if (!srv)
		return;
	/* Tearing down is not draining: never call done() from here. */
	srv->drain_done = NULL;
	conn_listener_free(srv->lst);
	while (srv->conns)
		http_conn_free(srv->conns);
	free(srv->stats);
	free(srv);
}

void http_server_set_tls(http_server *srv, struct tls_server *tls, uint64_t handshake_ms)
{
	srv->tls = tls;
	srv->tls_handshake_ms = handshake_ms ? handshake_ms : HTTP_DEFAULT_TIMEOUT_MS;
	if (tls && !srv->m_tls_fail)
		srv->m_tls_fail = metrics_get("tls_handshake_failures_total", "");
}

void http_server_set_limits(http_server *srv, const http_limits *limits)
{
	uint32_t old_rps = srv->limits.requests_per_second;
	bool first = srv->limits.max_connections == 0;

	srv->limits = *limits;
	limits_normalize(&srv->limits);
	/* Burst = one second's worth: a client may spend a second's quota at once. */
	if (first || old_rps != srv->limits.requests_per_second)
		tbucket_init(&srv->rate, srv->limits.requests_per_second,
		             srv->limits.requests_per_second, http_now_ms());
	if (srv->lst)
		conn_listener_set_cap(srv->lst, srv->limits.max_connections);
}

/* A connection was freed. The drain callback must be the last thing run:
 * it may free the server. */
void http_server_conn_added(http_server *srv)
{
	srv->nconns++;
	metrics_gauge_add(srv->m_open, 1);
}

void http_server_conn_gone(http_server *srv)
{
	void (*done)(void *) = NULL;

	srv->nconns--;
	metrics_gauge_add(srv->m_open, -1);
	if (srv->draining && srv->nconns == 0 && srv->drain_done) {
		done = srv->drain_done;
		srv->drain_done = NULL;
		done(srv->drain_arg);
	}
}

void http_server_drain(http_server *srv, void (*done)(void *arg), void *arg)
{
	struct http_conn *c, *next;

	srv->draining = true;
	srv->drain_done = done;
	srv->drain_arg = arg;
	if (srv->lst)
		conn_listener_enable(srv->lst, false);
	for (c = srv->conns; c; c = next) {
		next = c->next;
		http_conn_drain(c);
	}
	if (srv->nconns == 0 && srv->drain_done) {
		srv->drain_done = NULL;
		if (done)
			done(arg);
	}
}

size_t http_server_connections(const http_server *srv)
{
	return srv ? srv->nconns : 0;
}

size_t http_server_inflight(const http_server *srv)
{
	return srv ? srv->inflight : 0;
}

/* ---- request accessors (strings borrowed from the request) ---------- */

static const char empty_str[] = "";

const char *http_req_method(const http_req *r)
{
	return r->have_method ? http_method_str((enum http_method)r->method) : "UNKNOWN";
}

unsigned http_req_method_bit(const http_req *r)
{
	return r->method_bit;
}

const char *http_req_path(const http_req *r)
{
	return r->hpart == HTTP_HPART_DONE ? r->hbuf + r->path_off : empty_str;
}

const char *http_req_query(const http_req *r)
{
	if (r->hpart != HTTP_HPART_DONE || r->query_off == UINT32_MAX)
		return empty_str;
	return r->hbuf + r->query_off;
}

const char *http_req_route_label(const http_req *r)
{
	return r->route ? r->route->label : "unmatched";
}

const char *http_req_header(const http_req *r, const char *name)
{
	if (r->hpart != HTTP_HPART_DONE || !name)
		return NULL;
	for (size_t i = 0; i < r->nhdr; i++)
		if (strcasecmp(r->hbuf + r->hdr[i].name, name) == 0)
			return r->hbuf + r->hdr[i].value;
	return NULL;
}

size_t http_req_header_count(const http_req *r, const char *name)
{
	size_t n = 0;

	if (r->hpart != HTTP_HPART_DONE || !name)
		return 0;
	for (size_t i = 0; i < r->nhdr; i++)
		n += strcasecmp(r->hbuf + r->hdr[i].name, name) == 0;
	return n;
}

int64_t http_req_content_length(const http_req *r)
{
	return r->content_length;
}

uint64_t http_req_body_limit(const http_req *r)
{
	return r->body_limit;
}

void http_req_set_body_bytes(http_req *r, uint64_t decoded)
{
	r->body_counted = decoded;
	r->body_decoded = true;
}

bool http_req_body_chunked(const http_req *r)
{
	return r->chunked;
}

const uint8_t *http_req_body(const http_req *r, size_t *len)
{
	if (len)
		*len = r->body_len;
	return r->body ? r->body : (const uint8_t *)empty_str;
}

const struct sockaddr *http_req_peer(const http_req *r, socklen_t *len)
{
	return conn_peer(r->t, len);
}

void *http_req_gate_ticket(const http_req *r)
{
	return r->gate_ticket;
}

http_class http_req_route_class(const http_req *r)
{
	if (!r->route || (r->route->flags & HTTP_ROUTE_EXEMPT))
		return HTTP_CLASS_ADMIN;
	return (r->route->flags & HTTP_ROUTE_FACET) ? HTTP_CLASS_FACET : HTTP_CLASS_CORE;
}

const char *http_req_corr_id(const http_req *r)
{
	return r->corr_id;
}

void *http_req_peer_cert(const http_req *r)
{
	return r->t ? conn_peer_cert(r->t) : NULL;
}

struct event_base *http_req_base(const http_req *r)
{
	return r->srv->base;
}

void http_req_on_close(http_req *r, void (*fn)(http_req *r, void *arg), void *arg)
{
	r->on_close = fn;
	r->close_arg = arg;
}

/* ---- peer ----------------------------------------------------------- */

bool http_req_peer_is_loopback(const http_req *r)
{
	socklen_t len;
	const struct sockaddr *sa = http_req_peer(r, &len);

	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

		if (IN6_IS_ADDR_LOOPBACK(a))
			return true;
		return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
	}
	return false;
}
