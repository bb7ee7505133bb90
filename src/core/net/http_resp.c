/*
 * http_resp.c — responses: header block, body framing (Content-Length,
 * chunked, close-delimited for HTTP/1.0), HEAD, backpressure, and the JSON
 * error envelope.
 *
 * Output is the connection's bufferevent output buffer; nothing here writes
 * to the socket or changes connection state directly — the end of a
 * response is reported to http_conn_resp_ended().
 */
#include "core/net/http_int.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"

#define HTTP_HDR_NAME_MAX  128   /* a response header name */
#define HTTP_ERR_CODE_MAX  64    /* escaped envelope "code" */
#define HTTP_ERR_MSG_MAX   256   /* escaped envelope "message" */
/* The envelope: fixed text + code + message + corr_id fits with room to spare. */
#define HTTP_ERR_BODY_MAX  (HTTP_ERR_CODE_MAX + HTTP_ERR_MSG_MAX + 128)

void http_resp_fini(struct http_resp *resp)
{
	if (resp->hdrs)
		evbuffer_free(resp->hdrs);
	resp->hdrs = NULL;
}

/* The handler may still act on r: it has not been told the request is over
 * and the connection still writes. */
static bool resp_live(const http_req *r)
{
	if (!r || r->gone)
		return false;
	return r->h2 ? h2_req_can_write(r) : http_conn_can_write(r->conn);
}

const char *http_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default:  return "Unknown";
	}
}

/* RFC 9110 token characters. */
static bool hdr_name_ok(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++) {
		unsigned char ch = (unsigned char)s[n];

		if (ch <= 0x20 || ch >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", ch))
			return false;
	}
	return n > 0 && n <= HTTP_HDR_NAME_MAX;
}

/* No CR/LF (response splitting) nor other controls except HTAB. */
static bool hdr_value_ok(const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return false;
	}
	return true;
}

/* Framing headers are the core's: a handler setting them could desync the stream. */
static bool hdr_is_reserved(const char *name)
{
	return strcasecmp(name, "Content-Length") == 0 ||
	       strcasecmp(name, "Transfer-Encoding") == 0 ||
	       strcasecmp(name, "Date") == 0;
}

/* Append "name: value\r\n" (both checked): inline while it fits, then to
 * the overflow buffer, so that the order of lines is kept. */
static int resp_hdr_add(struct http_resp *rs, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value), n = nl + vl + 4;
	size_t have = rs->hdr_len + (rs->hdrs ? evbuffer_get_length(rs->hdrs) : 0);
	char *p;

	if (n > HTTP_RESP_MAX_HDR_BYTES - have)
		return -1;
	if (!rs->hdrs && n <= HTTP_RESP_HDR_INLINE - rs->hdr_len) {
		p = rs->hdr_inline + rs->hdr_len;
		memcpy(p, name, nl);
		memcpy(p + nl, ": ", 2);
		memcpy(p + nl + 2, value, vl);
		memcpy(p + nl + 2 + vl, "\r\n", 2);
		rs->hdr_len += n;
		return 0;
	}
	if (!rs->hdrs && !(rs->hdrs = evbuffer_new()))
		return -1;
	return evbuffer_add_printf(rs->hdrs, "%s: %s\r\n", name, value) < 0 ? -1 : 0;
}

int http_resp_header(http_req *r, const char *name, const char *value)
{
	struct http_resp *rs;

	if (!resp_live(r) || !name || !value || r->resp.state != HTTP_RESP_NONE)
		return -1;
	rs = &r->resp;
	if (!hdr_name_ok(name) || !hdr_value_ok(value) || hdr_is_reserved(name))
		return -1;
	if (strcasecmp(name, "Connection") == 0) {
		if (strcasecmp(value, "close") != 0)
			return -1;
		r->want_close = true;
		return 0;
	}
	if (resp_hdr_add(rs, name, value) < 0)
		return -1;
	if (strcasecmp(name, "Retry-After") == 0)
		rs->has_retry_after = true;
	else if (strcasecmp(name, "Content-Type") == 0)
		rs->has_content_type = true;
	return 0;
}

static enum http_resp_framing resp_framing(const http_req *r, int status, int64_t clen)
{
	if (status == 204 || status == 304)
		return HTTP_FRAME_NONE;
	if (clen >= 0)
		return HTTP_FRAME_LENGTH;
	/* HTTP/1.0 has no chunked encoding: the end of the body is the close. */
	return r->http10 ? HTTP_FRAME_EOF : HTTP_FRAME_CHUNKED;
}

/* Appends s (n bytes) at *p; the caller sized the buffer. */
static char *head_put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

static char *head_put_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10u);
		v /= 10u;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

#define HEAD_PUT_LIT(p, lit) head_put((p), (lit), sizeof(lit) - 1)

/*
 * The header block, built in one stack buffer and queued with one
 * evbuffer_add (several evbuffer_add_printf calls each parsed a format and
 * touched the buffer's chains). Fixed part: status line (≤ 48), Date line
 * (≤ HTTP_DATE_BUF + 8), framing (≤ 38), Connection (≤ 24), then the inline
 * extra headers and the blank line.
 */
#define HTTP_HEAD_FIXED_MAX (48u + HTTP_DATE_BUF + 8u + 38u + 24u)

static int resp_write_head(http_req *r, struct evbuffer *out)
{
	struct http_resp *rs = &r->resp;
	char buf[HTTP_HEAD_FIXED_MAX + HTTP_RESP_HDR_INLINE + 2], *p = buf;
	const char *text = http_status_text(rs->status), *date = http_server_date(r->srv);
	size_t tl = strnlen(text, 32), dl = strnlen(date, HTTP_DATE_BUF);

	p = HEAD_PUT_LIT(p, "HTTP/1.1 ");
	p = head_put_u64(p, (uint64_t)rs->status);   /* 200..999: three digits */
	*p++ = ' ';
	p = head_put(p, text, tl);
	p = HEAD_PUT_LIT(p, "\r\nDate: ");
	p = head_put(p, date, dl);
	p = HEAD_PUT_LIT(p, "\r\n");
	if (rs->framing == HTTP_FRAME_LENGTH) {
		p = HEAD_PUT_LIT(p, "Content-Length: ");
		p = head_put_u64(p, rs->clen);
		p = HEAD_PUT_LIT(p, "\r\n");
	} else if (rs->framing == HTTP_FRAME_CHUNKED) {
		p = HEAD_PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
	}
	if (rs->close)
		p = HEAD_PUT_LIT(p, "Connection: close\r\n");
	else if (r->http10)
		p = HEAD_PUT_LIT(p, "Connection: keep-alive\r\n");
	p = head_put(p, rs->hdr_inline, rs->hdr_len);
	if (!rs->hdrs) {
		p = HEAD_PUT_LIT(p, "\r\n");
		return evbuffer_add(out, buf, (size_t)(p - buf));
	}
	if (evbuffer_add(out, buf, (size_t)(p - buf)) < 0 || evbuffer_add_buffer(out, rs->hdrs) < 0)
		return -1;
	return evbuffer_add(out, "\r\n", 2);
}

int http_resp_start(http_req *r, int status, int64_t content_length)
{
	struct http_resp *rs;

	if (!resp_live(r) || r->resp.state != HTTP_RESP_NONE)
		return -1;
	/* 1xx are interim (the core sends 100 Continue itself). */
	if (status < 200 || status > 999 || content_length < -1)
		return -1;
	rs = &r->resp;
	rs->status = status;
	rs->framing = resp_framing(r, status, content_length);
	rs->clen = content_length > 0 ? (uint64_t)content_length : 0;
	rs->drop_body = r->is_head || rs->framing == HTTP_FRAME_NONE;
	if (r->h2) {
		/* END_STREAM delimits a body of unknown length: no chunks. */
		if (h2_resp_start(r) < 0) {
			http_resp_abort(r);
			return -1;
		}
		rs->state = HTTP_RESP_STARTED;
		return 0;
	}
	rs->close = http_conn_resp_must_close(r->conn, r);
	if (resp_write_head(r, http_conn_output(r->conn)) < 0) {
		http_resp_abort(r);
		return -1;
	}
	rs->state = HTTP_RESP_STARTED;
	return 0;
}

/* http_resp_write, and with cleanup its zero-copy form (the body bytes
 * are referenced, and cleanup gives them back once sent or dropped). */
static int resp_write(http_req *r, const void *data, size_t len,
                      evbuffer_ref_cleanup_cb cleanup, void *arg)
{
	struct http_resp *rs;
	struct evbuffer *out;
	int rc = 0;

	if (!resp_live(r) || r->resp.state != HTTP_RESP_STARTED || (!data && len))
		return -1;
	rs = &r->resp;
	if (len == 0 || rs->drop_body) {
		if (cleanup)   /* taken: nothing will reference it */
			cleanup(data, len, arg);
		return 0;
	}
	if (rs->framing == HTTP_FRAME_LENGTH && len > rs->clen - rs->written)
		return -1;
	if (r->h2) {
		if (h2_resp_write(r, data, len, cleanup, arg) < 0) {
			http_resp_abort(r);
			return -1;
		}
		rs->written += len;
		return 0;
	}
	out = http_conn_output(r->conn);
	if (rs->framing == HTTP_FRAME_CHUNKED)
		rc = evbuffer_add_printf(out, "%zx\r\n", len);
	if (rc >= 0 && cleanup)
		rc = evbuffer_add_reference(out, data, len, cleanup, arg);
	else if (rc >= 0)
		rc = evbuffer_add(out, data, len);
	if (rc >= 0 && rs->framing == HTTP_FRAME_CHUNKED)
		rc = evbuffer_add(out, "\r\n", 2);
	if (rc < 0) {
		http_resp_abort(r);  /* a half-written chunk cannot be taken back */
		return -1;
	}
	rs->written += len;
	if (evbuffer_get_length(out) >= HTTP_OUT_HIGH_WATER)
		rs->drain_armed = true;
	return 0;
}

int http_resp_write(http_req *r, const void *data, size_t len)
{
	return resp_write(r, data, len, NULL, NULL);
}

int http_resp_write_ref(http_req *r, const void *data, size_t len,
                        void (*cleanup)(const void *data, size_t len, void *arg), void *arg)
{
	return resp_write(r, data, len, cleanup, arg);
}

int http_resp_end(http_req *r)
{
	struct http_resp *rs;

	if (!resp_live(r) || r->resp.state != HTTP_RESP_STARTED)
		return -1;
	rs = &r->resp;
	if (rs->framing == HTTP_FRAME_LENGTH && !rs->drop_body && rs->written != rs->clen) {
		/* Fewer bytes than promised: the client would wait forever. */
		http_resp_abort(r);
		return -1;
	}
	if (r->h2) {
		if (h2_resp_end(r) < 0) {
			http_resp_abort(r);
			return -1;
		}
		rs->state = HTTP_RESP_ENDED;
		rs->on_drain = NULL;
		http_server_account(r->srv, r);
		return 0;
	}
	if (rs->framing == HTTP_FRAME_CHUNKED && !rs->drop_body &&
	    evbuffer_add(http_conn_output(r->conn), "0\r\n\r\n", 5) < 0) {
		http_resp_abort(r);
		return -1;
	}
	rs->state = HTTP_RESP_ENDED;
	rs->on_drain = NULL;
	http_conn_resp_ended(r->conn, r);
	return 0;
}

/* The response is over without its end: accounted (a started one under
 * the status it announced), out of flight, its handler's calls fail. */
static void resp_give_up(http_req *r)
{
	if (r->resp.state == HTTP_RESP_STARTED)
		http_server_account(r->srv, r);
	r->gone = true;
	r->resp.state = HTTP_RESP_ENDED;
	r->resp.on_drain = NULL;
	http_server_inflight_del(r->srv, r);
}

void http_resp_abort(http_req *r)
{
	if (!r || r->gone || r->resp.state == HTTP_RESP_ENDED)
		return;
	resp_give_up(r);
	if (r->h2)
		h2_resp_abort(r);   /* RST_STREAM: the client sees a cut, never a short "complete" body */
	else
		http_conn_abort_output(r->conn, r->resp.framing == HTTP_FRAME_EOF);
}

int http_reply(http_req *r, int status, const char *content_type, const void *body, size_t len)
{
	if (!resp_live(r) || (len && !body))
		return -1;
	if (content_type && !r->resp.has_content_type &&
	    http_resp_header(r, "Content-Type", content_type) < 0)
		return -1;
	if (http_resp_start(r, status, (int64_t)len) < 0)
		return -1;
	if (len && http_resp_write(r, body, len) < 0)
		return -1;
	return http_resp_end(r);
}

int http_reply_json(http_req *r, int status, const char *json)
{
	if (!json)
		return -1;
	return http_reply(r, status, "application/json", json, strlen(json));
}

int http_reply_error(http_req *r, int status, const char *code, const char *message,
                     bool retryable, unsigned retry_after_s)
{
	char body[HTTP_ERR_BODY_MAX], ecode[HTTP_ERR_CODE_MAX], emsg[HTTP_ERR_MSG_MAX], ra[16];
	int n;

	if (!resp_live(r))
		return -1;
	(void)log_json_escape(ecode, sizeof ecode, code ? code : "internal");
	(void)log_json_escape(emsg, sizeof emsg, message ? message : "");
	n = snprintf(body, sizeof body,
	             "{\"code\":\"%s\",\"message\":\"%s\",\"retryable\":%s,\"corr_id\":\"%s\"}",
	             ecode, emsg, retryable ? "true" : "false", r->corr_id);
	if (n < 0 || (size_t)n >= sizeof body)
		return -1;
	if ((status == 429 || status == 503) && !r->resp.has_retry_after) {
		snprintf(ra, sizeof ra, "%u", retry_after_s ? retry_after_s : 1);
		if (http_resp_header(r, "Retry-After", ra) < 0)
			return -1;
	}
	return http_reply(r, status, "application/json", body, (size_t)n);
}

bool http_resp_push(http_req *r)
{
	if (!resp_live(r) || r->h2 || conn_is_tls(r->t))
		return false;
	conn_push(r->conn->t);
	return true;
}

void http_req_after_write(http_req *r, void (*fn)(http_req *r, void *arg), void *arg)
{
	if (!resp_live(r))
		return;
	if (http_resp_pending(r) == 0) {   /* no write to wait for */
		http_req_on_drain(r, fn, arg);
		return;
	}
	r->resp.on_drain = fn;
	r->resp.drain_arg = arg;
	r->resp.drain_armed = true;
}

size_t http_resp_pending(const http_req *r)
{
	if (!resp_live(r))
		return 0;
	if (r->h2)
		return h2_resp_pending(r);
	return evbuffer_get_length(http_conn_output(r->conn));
}

void http_req_on_drain(http_req *r, void (*fn)(http_req *r, void *arg), void *arg)
{
	if (!resp_live(r))
		return;
	r->resp.on_drain = fn;
	r->resp.drain_arg = arg;
	r->resp.drain_armed = fn != NULL;
	/* Already below the mark: tell it from the loop, never from inside this call. */
	if (fn && http_resp_pending(r) < HTTP_OUT_HIGH_WATER / 2) {
		if (r->h2) {
			h2_req_schedule(r);
			return;
		}
		r->conn->drain_kick = true;
		http_conn_schedule(r->conn);
	}
}

void http_resp_check_drain(http_req *r)
{
	struct http_resp *rs = &r->resp;

	if (!rs->on_drain || !rs->drain_armed || !resp_live(r) || rs->state == HTTP_RESP_ENDED)
		return;
	if (http_resp_pending(r) >= HTTP_OUT_HIGH_WATER / 2)
		return;
	rs->drain_armed = false;
	rs->on_drain(r, rs->drain_arg);
}

/* ---- refusals by the core ------------------------------------------- */

/* Statuses the core answers on its own: envelope code, message, reason. */
static const struct http_refusal {
	int              status;
	const char      *code;
	const char      *message;
	reject_reason why;
} refusals[] = {
	{ 400, "bad_request", "malformed request", REJECT_BAD_REQUEST },
	{ 408, "timeout", "request timed out", REJECT_TIMEOUT },
	{ 413, "payload_too_large", "request body too large", REJECT_413 },
	{ 414, "uri_too_long", "request target too long", REJECT_414 },
	{ 431, "header_too_large", "request header too large", REJECT_431 },
	{ 500, "internal", "internal error", REJECT_NONE },
	{ 501, "not_implemented", "transfer coding not implemented (only chunked is)", REJECT_501 },
};

/* After these the stream cannot be trusted (or the client is too slow /
 * too big): answer and close. Refusals of a well-formed request (401, 403,
 * 404, 405, 429, 451, 503) keep a clean connection; its body, if any, is
 * read and dropped within the server's body cap. */
static bool status_forces_close(int status)
{
	return status >= 400 && status != 401 && status != 403 && status != 404 && status != 405 &&
	       status != 429 && status != 451 && status != 503;
}

void http_req_kill(http_req *r)
{
	if (!r->h2) {
		http_conn_set_state(r->conn, HTTP_CONN_CLOSED);
		return;
	}
	/* Unlike http_resp_abort, also after the handler lost the request
	 * (gone): the stream must still be reset. */
	if (r->resp.state != HTTP_RESP_ENDED)
		resp_give_up(r);
	h2_resp_abort(r);
}

void http_resp_reject(struct http_conn *c, int status, const char *code,
                      const char *msg, reject_reason why, unsigned retry_after)
{
	if (!c->req && !(c->req = http_req_new(c))) {
		http_conn_set_state(c, HTTP_CONN_CLOSED);
		return;
	}
	http_req_reject(c->req, status, code, msg, why, retry_after);
}

void http_req_reject(http_req *r, int status, const char *code, const char *msg,
                     reject_reason why, unsigned retry_after)
{
	if (why != REJECT_NONE)
		http_server_count_reject(r->srv, why, r->corr_id);
	http_req_notify_close(r);
	if (r->resp.state != HTTP_RESP_NONE || (!r->h2 && r->conn->state >= HTTP_CONN_FLUSH)) {
		http_req_kill(r);
		return;
	}
	if (r->have_method && r->hpart != HTTP_HPART_DONE)
		r->is_head = r->method == HTTP_HEAD;
	r->gone = false;  /* the core answers in the handler's place */
	/* A client that asked "Expect: 100-continue" and was refused may never
	 * send its body: do not wait for it on this connection. */
	const char *expect = r->hpart == HTTP_HPART_DONE ? http_req_header(r, "Expect") : NULL;
	if (status_forces_close(status) ||
	    (expect && !r->body_complete && strcasecmp(expect, "100-continue") == 0))
		r->want_close = true;
	/* Before the gate: readable by any page (http_server_opts.cors_refusals). */
	if (r->srv->cors_refusals && !r->gated &&
	    http_resp_header(r, "Access-Control-Allow-Origin", "*") < 0) {
		http_req_kill(r);
		return;
	}
	if (http_reply_error(r, status, code, msg, status == 429 || status == 503 || status == 408,
	                     retry_after) < 0)
		http_req_kill(r);
}

void http_resp_reject_status(struct http_conn *c, int status, const char *detail)
{
	if (!c->req && !(c->req = http_req_new(c))) {
		http_conn_set_state(c, HTTP_CONN_CLOSED);
		return;
	}
	http_req_reject_status(c->req, status, detail);
}

/* Which limit a 413 hit: the gate's (lower than the route's), the upload
 * cap, or the body cap (limits.max_body, or what the server calls it). */
static const char *body_cap_name(const http_req *r, const http_limits *l)
{
	uint64_t cap = http_route_body_cap(l, r->route, r->method_bit);

	if (r->body_limit < cap)
		return " (the limit of this request's capability or policy)";
	if (r->route && cap == l->max_upload_bytes && (r->route->flags & HTTP_ROUTE_UPLOAD) &&
	    (r->method_bit & (HTTP_M_PUT | HTTP_M_POST)))
		return " (storage.max_object)";
	return l->body_cap_name ? l->body_cap_name : " (limits.max_body)";
}

void http_req_reject_status(http_req *r, int status, const char *detail)
{
	const struct http_refusal *f = &refusals[0];  /* unknown → 400 */
	const http_limits *l = &r->srv->limits;
	char msg[128];

	for (size_t k = 0; k < sizeof refusals / sizeof refusals[0]; k++)
		if (refusals[k].status == status)
			f = &refusals[k];
	/* Name the limit at fault, so an operator can tell which knob to turn. */
	if (!detail && status == 413) {
		snprintf(msg, sizeof msg, "request body exceeds %llu bytes%s",
		         (unsigned long long)r->body_limit, body_cap_name(r, l));
		detail = msg;
	} else if (!detail && status == 431) {
		snprintf(msg, sizeof msg, "request header block exceeds %llu bytes or %d fields",
		         (unsigned long long)l->max_header_bytes, HTTP_MAX_HEADERS);
		detail = msg;
	}
	http_req_reject(r, f->status, f->code, detail ? detail : f->message, f->why, 0);
}
