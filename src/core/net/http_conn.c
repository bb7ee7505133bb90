/*
 * http_conn.c — one HTTP/1.1 connection: the state machine, the feed loop
 * around http_parser, the parser callbacks and the request object.
 *
 * Shape of the feed loop: the parser callbacks only record what happened
 * (head strings, body bytes) and pause the parser at headers-complete and at
 * message-complete; the loop (http_conn_process) then makes decisions and
 * calls handlers at top level, never from inside http_parser_execute —
 * except streaming body data, which must be handed over while the parser's
 * pointer is valid. Responses that end asynchronously schedule the loop via
 * the connection's defer event instead of re-entering it.
 *
 * The transport is a conn (conn.h): it owns the bufferevent, the TLS
 * handshake and its deadline, flush, linger and the deferred free; this file
 * keeps the HTTP machine and the read-side deadlines it arms on the conn.
 * Closing is always deferred: http_conn_set_state(CLOSED) closes the conn,
 * whose on_close frees us at its next safe point, when no callback of ours
 * is on the stack. A graceful close (linger, or closing an idle connection)
 * sends close_notify first; aborts do not, so that a peer can tell a cut
 * response from a complete one.
 */
#include "core/net/http_int.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define HTTP_HEAD_INIT   256     /* first allocation of a request's head buffer */
#define HTTP_BODY_INIT   4096    /* first allocation of a body of unknown length */
#define HTTP_HEAD_KEEP   4096    /* a spare request keeps a head buffer up to this size */

/* ---- request object --------------------------------------------------- */

/*
 * Requests are recycled: each connection keeps one spare (the answered
 * request it freed last), so a keep-alive connection allocates its request
 * and head buffer once, not per request. Bounded: one spare per connection,
 * and a head buffer grown past HTTP_HEAD_KEEP is not kept.
 */
http_req *http_req_new(struct http_conn *c)
{
	http_req *r = c->spare;
	char *hbuf = NULL;
	size_t hcap = 0;

	if (r) {
		c->spare = NULL;
		hbuf = r->hbuf;
		hcap = r->hcap;
		memset(r, 0, sizeof *r);
	} else if (!(r = calloc(1, sizeof *r))) {
		return NULL;
	}
	r->hbuf = hbuf;
	r->hcap = hcap;
	r->conn = c;
	r->srv = c->srv;
	r->t = c->t;
	r->content_length = -1;
	r->body_limit = c->srv->limits.max_body_bytes;   /* no body is read before admission */
	r->stats_idx = c->srv->nroutes;
	http_corr_id_new(c->srv, r->corr_id);
	clock_gettime(CLOCK_MONOTONIC, &r->t0);
	return r;
}

http_req *http_req_new_detached(http_server *srv, conn *t)
{
	http_req *r = calloc(1, sizeof *r);

	if (!r)
		return NULL;
	r->srv = srv;
	r->t = t;
	r->content_length = -1;
	r->body_limit = HTTP_PREADMIT_BODY_CAP(&srv->limits);
	r->stats_idx = srv->nroutes;
	http_corr_id_new(srv, r->corr_id);
	clock_gettime(CLOCK_MONOTONIC, &r->t0);
	return r;
}

static void req_destroy(http_req *r)
{
	if (!r)
		return;
	free(r->hbuf);
	free(r);
}

void http_req_free(http_req *r)
{
	struct http_conn *c;

	if (!r)
		return;
	c = r->conn;
	if (r->gate_ticket && r->srv->gate_end)
		r->srv->gate_end(r->srv->gate_arg, r->gate_ticket,
		                 r->body_decoded ? r->body_counted : r->body_seen);
	http_resp_fini(&r->resp);
	free(r->body);
	r->body = NULL;
	if (c && !c->spare && r->hcap <= HTTP_HEAD_KEEP) {
		c->spare = r;
		return;
	}
	req_destroy(r);
}

/* Make room for n more bytes plus a NUL. The head is bounded by the header
 * cap (every byte appended was counted in hdr_bytes) plus NULs and the
 * path/query copies, so doubling cannot run away. */
static int req_reserve(http_req *r, size_t n)
{
	size_t cap = r->hcap ? r->hcap : HTTP_HEAD_INIT;
	char *nb;

	while (cap - r->hlen < n + 1) {
		if (cap > UINT32_MAX / 2)
			return -1;
		cap *= 2;
	}
	if (cap == r->hcap)
		return 0;
	nb = realloc(r->hbuf, cap);
	if (!nb)
		return -1;
	r->hbuf = nb;
	r->hcap = cap;
	return 0;
}

/* Append bytes to the string being built; it stays NUL-terminated. */
static int req_append(http_req *r, const char *s, size_t n)
{
	if (req_reserve(r, n) < 0)
		return -1;
	memcpy(r->hbuf + r->hlen, s, n);
	r->hlen += n;
	r->hbuf[r->hlen] = '\0';
	return 0;
}

/* Commit the terminating NUL: the next append starts a new string. */
static int req_seal(http_req *r)
{
	if (req_reserve(r, 0) < 0)
		return -1;
	r->hbuf[r->hlen++] = '\0';
	return 0;
}

/* Close the string being received (URL, field or value). */
static int req_head_close(http_req *r)
{
	switch (r->hpart) {
	case HTTP_HPART_FIELD:
		/* A field with no value callback: give it an empty value. */
		if (req_seal(r) < 0)
			return -1;
		r->hdr[r->nhdr - 1].value = (uint32_t)r->hlen;
		return req_seal(r);
	case HTTP_HPART_URL:
	case HTTP_HPART_VALUE:
		return req_seal(r);
	default:
		return 0;
	}
}

/* Copy part of the URL into its own NUL-terminated string. */
static int req_copy_url_part(http_req *r, size_t off, size_t len, uint32_t *out)
{
	if (req_reserve(r, len) < 0)
		return -1;
	*out = (uint32_t)r->hlen;
	memcpy(r->hbuf + r->hlen, r->hbuf + r->url_off + off, len);
	r->hlen += len;
	return req_seal(r);
}

/* Split the request target into path and query; origin- or absolute-form. */
static int req_split_url(http_req *r)
{
	struct http_parser_url u;

	if (!r->hbuf || r->url_len == 0)
		return -1;
	http_parser_url_init(&u);
	if (http_parser_parse_url(r->hbuf + r->url_off, r->url_len, 0, &u) != 0)
		return -1;
	if (!(u.field_set & (1u << UF_PATH))) {
		/* "http://host" without a path means "/". */
		r->path_off = (uint32_t)r->hlen;
		if (req_append(r, "/", 1) < 0 || req_seal(r) < 0)
			return -1;
	} else if (req_copy_url_part(r, u.field_data[UF_PATH].off, u.field_data[UF_PATH].len,
	                             &r->path_off) < 0) {
		return -1;
	}
	if (r->hbuf[r->path_off] != '/')
		return -1;
	if (u.field_set & (1u << UF_QUERY))
		return req_copy_url_part(r, u.field_data[UF_QUERY].off,
		                         u.field_data[UF_QUERY].len, &r->query_off);
	r->query_off = UINT32_MAX;
	return 0;
}

/* Header values may carry trailing whitespace from the wire; strip it. */
static void req_trim_values(http_req *r)
{
	for (size_t i = 0; i < r->nhdr; i++) {
		char *v = r->hbuf + r->hdr[i].value;
		size_t n = strlen(v);

		while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			v[--n] = '\0';
	}
}

/* RFC 9110 §5.6.2: a field name is a token. http_parser, lenient, lets a
 * space through ("Content-Length : 4" is honoured as Content-Length); a
 * proxy in front that drops such a line would frame the body differently:
 * request smuggling. So every name is checked here, and one that is not a
 * token is a 400 before anything acts on it (RFC 9112 §5.1). */
static bool http_is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool req_names_valid(const http_req *r)
{
	for (size_t i = 0; i < r->nhdr; i++) {
		const unsigned char *n = (const unsigned char *)r->hbuf + r->hdr[i].name;
		if (!*n)
			return false;
		for (; *n; n++)
			if (!http_is_tchar(*n))
				return false;
	}
	return true;
}

/* One Transfer-Encoding element (between commas): its coding. */
typedef enum { TE_EMPTY, TE_CHUNKED, TE_OTHER } te_coding;

static te_coding te_element(const char *p, size_t n)
{
	while (n && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n == 0)
		return TE_EMPTY;
	return n == 7 && strncasecmp(p, "chunked", 7) == 0 ? TE_CHUNKED : TE_OTHER;
}

/*
 * The one Transfer-Encoding rule, for every route, before routing, the wall
 * or a handler (RFC 9112 §6.1, §6.3): no header → 0; chunked applied twice,
 * a coding after chunked, chunked not last (the body cannot be framed), an
 * empty value, or any transfer coding on HTTP/1.0 → 400; chunked last with
 * another coding before it (gzip, chunked) → 501, a coding we do not
 * implement, never silently ignored. Both answers close the connection.
 */
static int req_transfer_coding(const http_req *r, bool http10)
{
	bool present = false, chunked = false, other = false;

	for (size_t i = 0; i < r->nhdr; i++) {
		const char *v = r->hbuf + r->hdr[i].value;
		if (strcasecmp(r->hbuf + r->hdr[i].name, "Transfer-Encoding") != 0)
			continue;
		present = true;
		bool any = false;
		for (const char *e = v;; e++) {
			const char *end = strchr(e, ',');
			size_t n = end ? (size_t)(end - e) : strlen(e);
			te_coding k = te_element(e, n);
			if (k != TE_EMPTY && chunked)
				return 400;       /* anything after chunked, chunked included */
			chunked |= k == TE_CHUNKED;
			other |= k == TE_OTHER;
			any |= k != TE_EMPTY;
			if (!end)
				break;
			e = end;
		}
		if (!any)
			return 400;
	}
	if (!present)
		return 0;
	if (http10 || !chunked)
		return 400;
	return other ? 501 : 0;
}

/* ---- HTTP/2 heads (http_h2.c decodes them with nghttp2) ----------------- */

/* The http_parser method for an HTTP/2 :method, or -1 (not one we route). */
static int h2_method_of(const uint8_t *v, size_t n)
{
	for (int m = 0; m <= HTTP_PATCH; m++) {
		const char *name = http_method_str((enum http_method)m);

		if (strlen(name) == n && memcmp(name, v, n) == 0)
			return m;
	}
	return -1;
}

/* A content-length value: digits only, no sign, no list (RFC 9110 §8.6). */
static int64_t h2_content_length(const uint8_t *v, size_t n)
{
	uint64_t x = 0;

	if (n == 0 || n > 19)
		return -2;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -2;
		x = x * 10u + (uint64_t)(v[i] - '0');
	}
	return (int64_t)x;
}

/*
 * One decoded field of an HTTP/2 request head (nghttp2 has already checked
 * what RFC 9113 §8.2-8.3 asks: lowercase names, no connection-specific
 * fields, pseudo-headers first and once each). Stored as an HTTP/1.1 head
 * would be: :path is the request target, :authority becomes Host. The caps
 * are the same as HTTP/1.1's: HTTP_MAX_URL_BYTES and HTTP_MAX_HEADERS.
 */
int http_req_h2_field(http_req *r, const uint8_t *name, size_t nl,
                      const uint8_t *value, size_t vl)
{
	if (nl && name[0] == ':') {
		if (nl == 7 && memcmp(name, ":method", 7) == 0) {
			int m = h2_method_of(value, vl);
			r->have_method = true;
			r->method = m < 0 ? (unsigned)HTTP_PATCH + 1u : (unsigned)m;
			return 0;
		}
		if (nl == 5 && memcmp(name, ":path", 5) == 0) {
			if (vl > HTTP_MAX_URL_BYTES)
				return 414;
			r->url_off = (uint32_t)r->hlen;
			r->url_len = (uint32_t)vl;
			return req_append(r, (const char *)value, vl) < 0 || req_seal(r) < 0 ? 500 : 0;
		}
		if (nl == 10 && memcmp(name, ":authority", 10) == 0) {
			name = (const uint8_t *)"host";
			nl = 4;
		} else {
			return 0;   /* :scheme (and :protocol, never enabled) */
		}
	}
	if (r->nhdr == HTTP_MAX_HEADERS)
		return 431;
	if (nl == 14 && memcmp(name, "content-length", 14) == 0) {
		int64_t cl = h2_content_length(value, vl);
		if (cl < 0 || (r->content_length >= 0 && r->content_length != cl))
			return 400;
		r->content_length = cl;
	}
	r->hdr[r->nhdr].name = (uint32_t)r->hlen;
	if (req_append(r, (const char *)name, nl) < 0 || req_seal(r) < 0)
		return 500;
	r->hdr[r->nhdr].value = (uint32_t)r->hlen;
	if (req_append(r, (const char *)value, vl) < 0 || req_seal(r) < 0)
		return 500;
	r->nhdr++;
	return 0;
}

/* The head is complete (end_stream: no body follows). 0 or a status. */
int http_req_h2_head_done(http_req *r, bool end_stream)
{
	if (!r->have_method || r->url_len == 0)
		return 400;
	if (req_split_url(r) < 0 || !req_names_valid(r))
		return 400;
	r->hpart = HTTP_HPART_DONE;
	r->method_bit = r->method <= HTTP_PATCH ? http_method_to_bit(r->method) : 0;
	r->is_head = r->method == HTTP_HEAD;
	r->keepalive = true;
	r->body_complete = end_stream;
	/* No content-length and more to come: a body of unknown size, as a
	 * chunked HTTP/1.1 body (quotas meter it as it arrives). */
	r->chunked = !end_stream && r->content_length < 0;
	if (end_stream && r->content_length > 0)
		return 400;   /* announced a body, sent none */
	return 0;
}

/* ---- parser callbacks ------------------------------------------------- */

static int conn_fail(struct http_conn *c, int status)
{
	c->err_status = status;
	return -1;
}

static int on_message_begin(http_parser *p)
{
	struct http_conn *c = p->data;

	if (!c->req) {
		c->req = http_req_new(c);
		if (!c->req)
			return conn_fail(c, 500);
	}
	c->nreq++;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;
	http_req *r = c->req;

	if (len > HTTP_MAX_URL_BYTES - r->url_len)
		return conn_fail(c, 414);
	if (!r->have_method) {
		r->have_method = true;
		r->method = p->method;
	}
	if (req_append(r, at, len) < 0)
		return conn_fail(c, 500);
	r->url_len += (uint32_t)len;
	return 0;
}

/* Trailer fields of a chunked body: not kept, but bounded like a head. */
static int conn_trailer(struct http_conn *c, size_t len)
{
	c->hdr_bytes += len;
	return c->hdr_bytes > c->srv->limits.max_header_bytes ? conn_fail(c, 431) : 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;
	http_req *r = c->req;

	if (c->state != HTTP_CONN_HEADERS)
		return conn_trailer(c, len);
	if (r->hpart != HTTP_HPART_FIELD) {
		if (r->nhdr == HTTP_MAX_HEADERS)
			return conn_fail(c, 431);
		if (req_head_close(r) < 0)
			return conn_fail(c, 500);
		r->hdr[r->nhdr++].name = (uint32_t)r->hlen;
		r->hpart = HTTP_HPART_FIELD;
	}
	return req_append(r, at, len) < 0 ? conn_fail(c, 500) : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;
	http_req *r = c->req;

	if (c->state != HTTP_CONN_HEADERS)
		return conn_trailer(c, len);
	if (r->hpart != HTTP_HPART_VALUE) {
		if (req_seal(r) < 0)
			return conn_fail(c, 500);
		r->hdr[r->nhdr - 1].value = (uint32_t)r->hlen;
		r->hpart = HTTP_HPART_VALUE;
	}
	return req_append(r, at, len) < 0 ? conn_fail(c, 500) : 0;
}

static int on_headers_complete(http_parser *p)
{
	struct http_conn *c = p->data;
	http_req *r = c->req;

	if (c->state != HTTP_CONN_HEADERS)
		return 0;  /* end of trailers */
	if (req_head_close(r) < 0)
		return conn_fail(c, 500);
	r->hpart = HTTP_HPART_DONE;
	if (req_split_url(r) < 0 || !req_names_valid(r))
		return conn_fail(c, 400);
	req_trim_values(r);
	int te = req_transfer_coding(r, p->http_major < 1 || (p->http_major == 1 && p->http_minor == 0));
	if (te)
		return conn_fail(c, te);
	if ((p->flags & F_CONTENTLENGTH) && !(p->flags & F_CHUNKED))
		r->content_length = p->content_length > INT64_MAX ? INT64_MAX : (int64_t)p->content_length;
	r->method_bit = http_method_to_bit(p->method);
	r->is_head = p->method == HTTP_HEAD;
	r->http10 = p->http_major < 1 || (p->http_major == 1 && p->http_minor == 0);
	/* Upgrade / CONNECT are not served: answer, then close. */
	r->keepalive = http_should_keep_alive(p) && !p->upgrade;
	r->chunked = (p->flags & F_CHUNKED) != 0;
	r->body_complete = !r->chunked && r->content_length <= 0;
	c->pev = HTTP_PEV_HEADERS;
	http_parser_pause(p, 1);
	return 0;
}

/* Chunked: refuse a chunk that would cross the cap before reading it. */
static int on_chunk_header(http_parser *p)
{
	struct http_conn *c = p->data;
	http_req *r = c->req;
	uint64_t max = r ? r->body_limit : c->srv->limits.max_body_bytes;

	if (r && (p->content_length > max || r->body_seen > max - p->content_length))
		return conn_fail(c, 413);
	return 0;
}

static int body_stream(struct http_conn *c, http_req *r, const char *at, size_t len)
{
	int rc;

	if (r->resp.state == HTTP_RESP_ENDED || r->body_stopped || r->gone || !r->on_data)
		return 0;
	rc = r->on_data(r, (const uint8_t *)at, len, r->body_arg);
	if (c->state >= HTTP_CONN_FLUSH) {
		http_parser_pause(&c->parser, 1);
		return 0;
	}
	if (rc < 0 && !r->body_stopped) {
		/* The handler has had enough; it answers, and we close after. */
		r->body_stopped = true;
		http_parser_pause(&c->parser, 1);
	}
	return 0;
}

static int req_body_grow(http_req *r, const char *at, size_t len)
{
	uint64_t max = r->body_limit;

	/* body_seen <= max was checked by the caller, so need <= max + 1. */
	if (r->body_cap - r->body_len < len + 1) {
		size_t need = r->body_len + len + 1;
		size_t cap = r->body_cap ? r->body_cap * 2
		           : r->content_length > 0 ? (size_t)r->content_length + 1 : HTTP_BODY_INIT;
		uint8_t *nb;

		if (cap > max + 1)
			cap = (size_t)max + 1;
		if (cap < need)
			cap = need;
		nb = realloc(r->body, cap);
		if (!nb)
			return -1;
		r->body = nb;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, at, len);
	r->body_len += len;
	r->body[r->body_len] = '\0';
	return 0;
}

int http_req_body_keep(http_req *r, const uint8_t *at, size_t len)
{
	return req_body_grow(r, (const char *)at, len);
}

static int body_buffer(struct http_conn *c, http_req *r, const char *at, size_t len)
{
	return req_body_grow(r, at, len) < 0 ? conn_fail(c, 500) : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;
	http_req *r = c->req;

	if (!r)
		return conn_fail(c, 500);
	r->body_seen += len;
	if (r->body_seen > r->body_limit)
		return conn_fail(c, 413);
	/* Answered before its body (a refusal; an unmatched path has no
	 * route): the rest is read and dropped (req_body_drainable). */
	if (!r->route || r->resp.state == HTTP_RESP_ENDED)
		return 0;
	if (r->route->flags & HTTP_ROUTE_STREAM_BODY)
		return body_stream(c, r, at, len);
	return body_buffer(c, r, at, len);
}

static int on_message_complete(http_parser *p)
{
	struct http_conn *c = p->data;

	c->pev = HTTP_PEV_MESSAGE;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings conn_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
	.on_chunk_header = on_chunk_header,
};

/* ---- state ------------------------------------------------------------ */

struct evbuffer *http_conn_output(struct http_conn *c)
{
	return conn_output(c->t);
}

bool http_conn_can_write(const struct http_conn *c)
{
	return conn_can_write(c->t);
}

/* ---- body progress (limits.min_body_rate) ------------------------------- */

/* Client time the body has had: what we waited for it so far. */
static uint64_t conn_body_elapsed(const struct http_conn *c, uint64_t now)
{
	return c->body_waited_ms + (c->body_waiting ? now - c->body_since : 0);
}

/* Client time left before the body's average falls below the minimum rate
 * (grace included); 0 when it has. UINT64_MAX when the rule is off. */
static uint64_t conn_body_rate_left(const struct http_conn *c, uint64_t now)
{
	const http_limits *l = &c->srv->limits;
	uint64_t due, elapsed;

	if (!l->min_body_rate)
		return UINT64_MAX;
	due = c->body_rx * 1000u / l->min_body_rate;   /* ≤ 2^40 * 1000: no overflow */
	if (due < l->body_grace_ms)
		due = l->body_grace_ms;
	elapsed = conn_body_elapsed(c, now);
	return due > elapsed ? due - elapsed : 0;
}

/* Start (waiting) or stop the body's clock, and the one timer with it: the
 * per-read deadline or the rate deadline, whichever comes first. */
static void conn_body_wait(struct http_conn *c, bool waiting)
{
	uint64_t now = http_now_ms(), left;

	if (c->body_waiting && !waiting)
		c->body_waited_ms += now - c->body_since;
	else if (!c->body_waiting && waiting)
		c->body_since = now;
	c->body_waiting = waiting;
	if (!waiting) {
		conn_disarm(c->t);
		return;
	}
	left = conn_body_rate_left(c, now);
	c->body_read_due = now + c->srv->limits.read_timeout_ms;
	conn_arm(c->t, left < c->srv->limits.read_timeout_ms ? left : c->srv->limits.read_timeout_ms);
}

/* The body timer fired before its per-read deadline: the rate's did. (Not
 * conn_body_rate_left() == 0: the timer keeps microseconds, our clock
 * milliseconds, so either deadline may be read 1 ms early.) */
static bool conn_body_too_slow(const struct http_conn *c)
{
	return c->state == HTTP_CONN_BODY && http_now_ms() + 1 < c->body_read_due;
}

/*
 * The one place a connection changes state. Each state owns its read-side
 * deadline and whether we read at all; the write deadline is the
 * transport's and runs whenever output is pending. FLUSH hands the rest
 * (flush, linger, close) to the transport; CLOSED is terminal.
 */
void http_conn_set_state(struct http_conn *c, enum http_conn_state st)
{
	const http_limits *l = &c->srv->limits;
	enum http_conn_state prev = c->state;

	if (c->state == HTTP_CONN_CLOSED)
		return;
	c->state = st;
	switch (st) {
	case HTTP_CONN_HANDSHAKE:
		break;   /* the transport's, with its own deadline */
	case HTTP_CONN_IDLE:
		/* A fresh connection must send its request as promptly as a header block. */
		conn_arm(c->t, c->nreq ? l->idle_timeout_ms : l->header_timeout_ms);
		conn_read(c->t, true);
		break;
	case HTTP_CONN_HEADERS:
		/* Absolute: reads do not extend it (slow-loris). */
		c->hdr_bytes = 0;
		conn_arm(c->t, l->header_timeout_ms);
		break;
	case HTTP_CONN_BODY:
		c->body_rx = c->body_waited_ms = 0;
		c->body_waiting = false;
		conn_body_wait(c, true);
		break;
	case HTTP_CONN_WAIT:
		conn_disarm(c->t);
		break;
	case HTTP_CONN_H2:
		break;   /* the session keeps its own deadlines (http_h2.c) */
	case HTTP_CONN_FLUSH:
		/* No deadline of ours: the write deadline bounds the flush. */
		conn_flush(c->t, true, 0);
		break;
	case HTTP_CONN_CLOSED:
		/* Between requests nothing is cut: a clean close. */
		conn_close(c->t, prev == HTTP_CONN_IDLE);
		break;
	}
}

void http_conn_schedule(struct http_conn *c)
{
	if (c->in_process)
		c->again = true;
	else
		conn_schedule(c->t);
}

/* The handler loses the request: on_close once, then its calls fail. */
void http_req_notify_close(http_req *r)
{
	void (*fn)(http_req *, void *) = r->on_close;

	if (r->gone || !r->dispatched || r->resp.state == HTTP_RESP_ENDED)
		return;
	r->gone = true;
	r->on_close = NULL;
	http_server_inflight_del(r->srv, r);
	if (fn)
		fn(r, r->close_arg);
}

void http_conn_notify_close(struct http_conn *c, http_req *r)
{
	(void)c;
	http_req_notify_close(r);
}

void http_conn_abort(struct http_conn *c, reject_reason why)
{
	if (why != REJECT_NONE)
		http_server_count_reject(c->srv, why, c->req ? c->req->corr_id : NULL);
	if (c->req)
		http_conn_notify_close(c, c->req);
	http_conn_set_state(c, HTTP_CONN_CLOSED);
}

void http_conn_abort_output(struct http_conn *c, bool reset)
{
	if (reset) {
		conn_reset(c->t);
		http_conn_set_state(c, HTTP_CONN_CLOSED);
	} else if (c->state < HTTP_CONN_FLUSH) {
		http_conn_set_state(c, HTTP_CONN_FLUSH);
	}
}

static void conn_parse_failed(struct http_conn *c, enum http_errno e)
{
	int st = c->err_status ? c->err_status : e == HPE_HEADER_OVERFLOW ? 431 : 400;

	/* The parser's own words are static text, safe to show the client. */
	http_resp_reject_status(c, st, c->err_status ? NULL : http_errno_description(e));
	if (c->state < HTTP_CONN_FLUSH)
		http_conn_set_state(c, HTTP_CONN_FLUSH);
}

/* ---- the feed loop ---------------------------------------------------- */

/* An answer given before its request's body arrived (a refusal, an early
 * error) keeps the connection when the rest of the body is known and small:
 * it is read and dropped, and the next request follows. A larger or chunked
 * remainder would cost more to drain than a new connection: close. */
static bool req_body_drainable(const http_req *r)
{
	return !r->chunked && r->content_length > 0 &&
	       (uint64_t)r->content_length - r->body_seen <= HTTP_DRAIN_MAX_BYTES;
}

bool http_conn_resp_must_close(struct http_conn *c, http_req *r)
{
	return !r->keepalive || r->want_close || (!r->body_complete && !req_body_drainable(r)) ||
	       c->srv->draining ||
	       conn_peer_eof(c->t) || c->state >= HTTP_CONN_FLUSH || r->resp.framing == HTTP_FRAME_EOF;
}

/*
 * The request is over (parsed and answered): ready for the next one. It is
 * freed at the next safe point, not here: this may run inside the handler's
 * own http_reply(), and a handler that still reads its request after
 * answering (a log line) must not touch freed memory.
 */
static void conn_req_finish(struct http_conn *c)
{
	http_req_free(c->zombie);
	c->zombie = c->req;
	c->req = NULL;
	if (c->state >= HTTP_CONN_FLUSH)
		return;
	if (c->srv->draining) {
		http_conn_set_state(c, HTTP_CONN_FLUSH);
		return;
	}
	http_conn_set_state(c, HTTP_CONN_IDLE);
	http_conn_schedule(c);
}

void http_conn_resp_ended(struct http_conn *c, http_req *r)
{
	http_server_account(c->srv, r);
	if (r->resp.close)
		http_conn_set_state(c, HTTP_CONN_FLUSH);
	else if (r->parse_done)
		conn_req_finish(c);
}

static bool conn_can_parse(struct http_conn *c)
{
	http_req *r = c->req;

	switch (c->state) {
	case HTTP_CONN_IDLE:
	case HTTP_CONN_HEADERS:
		/* Answers not yet read by the client bound how far we read ahead. */
		return evbuffer_get_length(http_conn_output(c)) <= HTTP_OUT_HIGH_WATER;
	case HTTP_CONN_BODY:
		if (!r)
			return false;
		/* A request without a body never waits for http_req_on_body: the
		 * parser must still reach its end (pipelining, keep-alive idle). */
		if (!r->dispatched || r->resp.state == HTTP_RESP_ENDED || r->body_complete)
			return true;
		return r->on_data && !r->body_paused && !r->body_stopped && !r->gone;
	default:
		return false;
	}
}

static void conn_dispatch(struct http_conn *c, http_req *r)
{
	r->dispatched = true;
	http_server_inflight_add(c->srv, r);
	/* r may be freed by the time this returns (a synchronous answer). */
	r->route->fn(r, r->route->arg);
}

static void conn_expect_continue(struct http_conn *c, http_req *r)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	const char *e = http_req_header(r, "Expect");

	if (e && !r->http10 && !r->body_complete && strcasecmp(e, "100-continue") == 0)
		(void)evbuffer_add(http_conn_output(c), cont, sizeof cont - 1);
}

static int conn_on_headers(struct http_conn *c)
{
	http_req *r = c->req;

	if (http_server_admit(c->srv, r) != 0) {
		/* Refused and answered (or closing); without a body the
		 * connection lives on: parse to the end of the message. */
		if (c->state == HTTP_CONN_HEADERS)
			http_conn_set_state(c, HTTP_CONN_BODY);
		return c->state == HTTP_CONN_BODY;
	}
	http_conn_set_state(c, HTTP_CONN_BODY);
	conn_expect_continue(c, r);
	if (r->route->flags & HTTP_ROUTE_STREAM_BODY)
		conn_dispatch(c, r);
	return 1;
}

/*
 * The end of a streaming body, once: now if the handler has registered, or
 * from http_conn_process after it registers (an empty body ends before an
 * asynchronous handler is ready for it).
 */
static void conn_deliver_end(http_req *r)
{
	if (!r->parse_done || !r->dispatched || !r->on_end || r->end_sent || r->body_stopped ||
	    r->gone || r->resp.state == HTTP_RESP_ENDED)
		return;
	r->end_sent = true;
	r->on_end(r, r->body_arg);
}

static int conn_on_message(struct http_conn *c)
{
	http_req *r = c->req;

	r->parse_done = true;
	r->body_complete = true;
	if (r->resp.state == HTTP_RESP_ENDED) {
		conn_req_finish(c);
		return 1;
	}
	http_conn_set_state(c, HTTP_CONN_WAIT);
	if (!r->dispatched)
		conn_dispatch(c, r);
	else
		conn_deliver_end(r);
	return 1;
}

static int conn_after_execute(struct http_conn *c, size_t n)
{
	enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

	if (e == HPE_PAUSED)
		http_parser_pause(&c->parser, 0);
	if (c->state >= HTTP_CONN_FLUSH)
		return 0;
	if (e != HPE_OK && e != HPE_PAUSED) {
		conn_parse_failed(c, e);
		return 0;
	}
	if (c->state == HTTP_CONN_HEADERS && c->hdr_bytes > c->srv->limits.max_header_bytes) {
		c->err_status = 431;
		conn_parse_failed(c, HPE_HEADER_OVERFLOW);
		return 0;
	}
	switch (c->pev) {
	case HTTP_PEV_HEADERS:
		return conn_on_headers(c);
	case HTTP_PEV_MESSAGE:
		return conn_on_message(c);
	default:
		return n > 0;
	}
}

/* Feed the parser from the first input chunk. 1: progress, call again. */
static int conn_step(struct http_conn *c)
{
	struct evbuffer *in = conn_input(c->t);
	struct evbuffer_iovec v;
	enum http_conn_state st;
	size_t len, n;

	/* Top of the loop: no handler of ours is on the stack. */
	http_req_free(c->zombie);
	c->zombie = NULL;
	if (!conn_can_parse(c) || evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
		return 0;
	if (c->state == HTTP_CONN_IDLE)
		http_conn_set_state(c, HTTP_CONN_HEADERS);
	st = c->state;
	len = v.iov_len;
	/* Never hand the parser more head than one byte past the cap (the cap
	 * may have shrunk under a live reload, hence the guard). */
	if (st == HTTP_CONN_HEADERS) {
		uint64_t max = c->srv->limits.max_header_bytes;
		uint64_t room = c->hdr_bytes < max ? max - c->hdr_bytes + 1 : 1;

		if (len > room)
			len = (size_t)room;
	}
	c->pev = HTTP_PEV_NONE;
	c->err_status = 0;
	c->in_execute = true;
	n = http_parser_execute(&c->parser, &conn_settings, v.iov_base, len);
	c->in_execute = false;
	(void)evbuffer_drain(in, n);
	if (st == HTTP_CONN_HEADERS) {
		c->hdr_bytes += n;
	} else if (st == HTTP_CONN_BODY && n && c->state == HTTP_CONN_BODY) {
		c->body_rx += n;   /* head bytes of a chunk count: they are the client's progress too */
		conn_body_wait(c, true);   /* per-read deadline, or the rate's */
	}
	return conn_after_execute(c, n);
}

/* The body deadline runs only while we are actually waiting for the client. */
static void conn_sync_body_timer(struct http_conn *c)
{
	if (c->state != HTTP_CONN_BODY)
		return;
	if (!conn_can_parse(c))
		conn_body_wait(c, false);
	else if (!c->body_waiting || !conn_is_armed(c->t))
		conn_body_wait(c, true);
}

void http_conn_process(struct http_conn *c)
{
	if (c->in_process) {
		c->again = true;
		return;
	}
	c->in_process = true;
	do {
		c->again = false;
		while (conn_step(c) > 0)
			;
		if (c->req && c->state == HTTP_CONN_WAIT)
			conn_deliver_end(c->req);
		if (c->drain_kick && http_conn_can_write(c)) {
			c->drain_kick = false;
			if (c->req)
				http_resp_check_drain(c->req);
		}
	} while (c->again && c->state < HTTP_CONN_FLUSH);
	c->in_process = false;
	conn_sync_body_timer(c);
}

/* ---- transport callbacks (conn_ops) ------------------------------------ */

static void on_read(void *arg)
{
	struct http_conn *c = arg;

	if (c->h2)
		h2_on_process(c);
	else
		http_conn_process(c);
}

static void on_write(void *arg)
{
	struct http_conn *c = arg;

	if (c->state >= HTTP_CONN_FLUSH)
		return;
	if (c->h2) {
		h2_on_process(c);
		return;
	}
	if (c->req)
		http_resp_check_drain(c->req);
	if ((c->state == HTTP_CONN_IDLE || c->state == HTTP_CONN_HEADERS) &&
	    evbuffer_get_length(conn_input(c->t)) > 0)
		http_conn_schedule(c);
}

static void conn_on_eof(struct http_conn *c)
{
	http_req *r = c->req;

	/* A client that hangs up while its request is being handled is gone
	 * (as nginx treats it); do not keep a backend busy for it. */
	if (r && r->dispatched && r->resp.state != HTTP_RESP_ENDED) {
		http_conn_abort(c, REJECT_NONE);
		return;
	}
	if (c->state < HTTP_CONN_FLUSH)
		http_conn_set_state(c, HTTP_CONN_FLUSH);
}

/* The TLS handshake is done; input may have arrived with its last flight.
 * ALPN decided the protocol: h2 hands the connection to an HTTP/2 session. */
static void on_open(void *arg)
{
	struct http_conn *c = arg;

	if (conn_alpn_is(c->t, "h2")) {
		if (h2_sess_start(c) < 0)
			http_conn_set_state(c, HTTP_CONN_CLOSED);
		return;
	}
	http_conn_set_state(c, HTTP_CONN_IDLE);
	http_conn_schedule(c);
}

static void on_event(void *arg, unsigned what)
{
	struct http_conn *c = arg;

	if (c->state == HTTP_CONN_CLOSED)
		return;
	if (c->h2) {
		h2_on_event(c, what);
		return;
	}
	if (what & CONN_EV_TIMEOUT)
		http_conn_abort(c, REJECT_TIMEOUT);  /* write deadline */
	else if (what & CONN_EV_ERROR)
		http_conn_abort(c, REJECT_NONE);
	else if (what & CONN_EV_EOF)
		conn_on_eof(c);
}

static void on_timer(void *arg)
{
	struct http_conn *c = arg;

	if (c->h2) {
		h2_on_timer(c);
		return;
	}
	switch (c->state) {
	case HTTP_CONN_IDLE:
		/* Still delivering the last answer: the write deadline governs that. */
		if (conn_out_len(c->t)) {
			conn_arm(c->t, c->srv->limits.idle_timeout_ms);
			break;
		}
		/* Keep-alive expiry is normal; a connection that never sent a request is not. */
		if (c->nreq == 0)
			http_server_count_reject(c->srv, REJECT_TIMEOUT, NULL);
		http_conn_set_state(c, HTTP_CONN_CLOSED);
		break;
	case HTTP_CONN_HEADERS:
	case HTTP_CONN_BODY:
		if (c->req && c->req->dispatched && c->req->resp.state != HTTP_RESP_NONE) {
			http_conn_abort(c, REJECT_TIMEOUT);
			break;
		}
		http_resp_reject_status(c, 408, conn_body_too_slow(c)
		                        ? "request body arrived slower than limits.min_body_rate" : NULL);
		if (c->state < HTTP_CONN_FLUSH)
			http_conn_set_state(c, HTTP_CONN_FLUSH);
		break;
	default:
		break;
	}
}

static void on_defer(void *arg)
{
	on_read(arg);
}

static void on_close(void *arg)
{
	http_conn_free(arg);
}

static const conn_ops http_conn_ops = {
	.on_open = on_open,
	.on_read = on_read,
	.on_write = on_write,
	.on_event = on_event,
	.on_timer = on_timer,
	.on_defer = on_defer,
	.on_close = on_close,
};

/* ---- lifetime --------------------------------------------------------- */

static void conn_opts_of(http_server *srv, struct http_conn *c, conn_opts *o)
{
	const http_limits *l = &srv->limits;

	*o = (conn_opts){
		.ops = &http_conn_ops,
		.arg = c,
		/* Bounded input: stop reading once this much is buffered unparsed. */
		.read_max = (size_t)l->max_header_bytes + HTTP_IN_SLACK,
		.write_low = HTTP_OUT_HIGH_WATER / 2,
		.write_ms = l->write_timeout_ms,
		.handshake_ms = srv->tls_handshake_ms,
		.linger_ms = HTTP_LINGER_MS,
		.linger_bytes = HTTP_LINGER_MAX_BYTES,
		.m_in = srv->m_in,
		.m_out = srv->m_out,
		.m_tls_fail = srv->m_tls_fail,
		.log_rate = &srv->log_rate,
		.tls_log_msg = "tls handshake failed",
		.queued = &srv->queued,
	};
}

struct http_conn *http_conn_new(http_server *srv, int fd, const struct sockaddr *sa,
                                socklen_t salen)
{
	struct http_conn *c = calloc(1, sizeof *c);
	conn_opts o;

	if (!c) {
		close(fd);
		return NULL;
	}
	c->srv = srv;
	conn_opts_of(srv, c, &o);
	if (!(c->t = conn_new(srv->base, fd, sa, salen, srv->tls, &o))) {
		free(c);
		return NULL;
	}
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	http_server_conn_added(srv);
	if (conn_start(c->t))
		http_conn_set_state(c, HTTP_CONN_IDLE);
	else
		c->state = HTTP_CONN_HANDSHAKE;
	return c;
}

void http_conn_free(struct http_conn *c)
{
	http_server *srv;

	if (!c)
		return;
	srv = c->srv;
	h2_sess_free(c->h2);   /* its streams' requests first: on_close, gate ends */
	c->h2 = NULL;
	if (c->req) {
		http_conn_notify_close(c, c->req);
		http_server_inflight_del(srv, c->req);
		http_req_free(c->req);
	}
	http_req_free(c->zombie);
	req_destroy(c->spare);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	conn_free(c->t);
	free(c);
	http_server_conn_gone(srv);  /* last: may run the drain callback */
}

void http_conn_drain(struct http_conn *c)
{
	if (c->h2) {
		h2_drain(c);
		return;
	}
	if (c->state == HTTP_CONN_HANDSHAKE) {
		http_conn_set_state(c, HTTP_CONN_CLOSED);  /* nothing asked yet: nothing lost */
		return;
	}
	if (c->state != HTTP_CONN_IDLE || evbuffer_get_length(conn_input(c->t)))
		return;  /* busy: its response will carry Connection: close */
	if (evbuffer_get_length(http_conn_output(c)))
		http_conn_set_state(c, HTTP_CONN_FLUSH);
	else
		http_conn_set_state(c, HTTP_CONN_CLOSED);
}

/* ---- streaming request body ------------------------------------------- */

void http_req_on_body(http_req *r, http_body_fn on_data, http_end_fn on_end, void *arg)
{
	r->on_data = on_data;
	r->on_end = on_end;
	r->body_arg = arg;
	if (r->gone)
		return;
	if (r->h2)
		h2_req_schedule(r);
	else
		http_conn_schedule(r->conn);
}

void http_req_pause_body(http_req *r)
{
	struct http_conn *c = r->conn;

	if (r->body_paused || r->gone)
		return;
	r->body_paused = true;
	if (r->h2) {
		h2_req_body_paused(r, true);
		return;
	}
	if (c->in_execute)
		http_parser_pause(&c->parser, 1);
	if (c->state == HTTP_CONN_BODY) {
		conn_read(c->t, false);
		conn_disarm(c->t);
	}
}

void http_req_resume_body(http_req *r)
{
	struct http_conn *c = r->conn;

	if (!r->body_paused || r->gone)
		return;
	r->body_paused = false;
	if (r->h2) {
		h2_req_body_paused(r, false);
		return;
	}
	if (c->state == HTTP_CONN_BODY)
		conn_read(c->t, true);
	http_conn_schedule(c);
}
