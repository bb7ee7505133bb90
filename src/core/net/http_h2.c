/*
 * http_h2.c — HTTP/2 (RFC 9113) on a TLS connection whose handshake chose
 * "h2" by ALPN. libnghttp2 (the library curl and Apache httpd use) does the
 * framing, HPACK and the stream state machine; this file maps each stream
 * onto the same http_req the HTTP/1.1 codec builds, so routing, the wall,
 * the limits, the handlers and verify-before-serve are shared: one request
 * model, two wire codecs (docs/http2.md).
 *
 * Shape (as http_conn.c): nghttp2's callbacks only record what happened —
 * a head decoded, body bytes, a stream closed — on the stream and mark the
 * session as having work; h2_on_process then admits, dispatches and
 * delivers at top level, never from inside nghttp2. Handlers answer through
 * http_resp.c, which calls h2_resp_* here: headers are submitted, body
 * bytes are queued on the stream (referenced, not copied, when the handler
 * gave them with http_resp_write_ref) and framed by nghttp2 as the peer's
 * flow-control windows allow. Streams are freed at the next safe point
 * after nghttp2 closed them.
 *
 * Bounds (each refusal is counted in rejected_total{reason}):
 *   - concurrent streams: SETTINGS_MAX_CONCURRENT_STREAMS (http2.max_streams);
 *     a stream past the cap the client has acknowledged is a connection
 *     error for nghttp2: GOAWAY PROTOCOL_ERROR, "h2_protocol" (RFC 9113
 *     §5.1.2); before the client's SETTINGS ACK, nghttp2 refuses the
 *     streams over the cap with RST_STREAM REFUSED_STREAM;
 *   - streams opened per second per connection (http2.requests_per_second,
 *     token bucket): past it GOAWAY ENHANCE_YOUR_CALM, "h2_rate". A rapid
 *     reset attack (CVE-2023-44487) opens and cancels streams to get past
 *     the concurrency cap: each opened stream still pays here, and
 *     nghttp2's own reset limiter (1000 burst, 33/s) stands behind it;
 *   - control frames per second per connection (SETTINGS, PING, PRIORITY,
 *     RST_STREAM, empty DATA; http2.control_frames_per_second): past it
 *     GOAWAY ENHANCE_YOUR_CALM, "h2_flood"; nghttp2 also stops a peer that
 *     does not read the ACKs it provokes (max_outbound_ack);
 *   - header lists: the decoded size (name + value + 32 per field, RFC 9113
 *     §6.5.2) against limits.max_header_bytes, announced as
 *     SETTINGS_MAX_HEADER_LIST_SIZE: over it the stream is answered 431;
 *     a block decoding to 16× the cap or with more than H2_MAX_FIELDS
 *     fields (an HPACK bomb) ends the connection, "h2_flood"; CONTINUATION
 *     frames per block are capped (nghttp2's max_continuations, set from
 *     the header cap), and a block still open after timeouts.header ends
 *     the connection (CONTINUATION flood, slow headers);
 *   - request bodies: flow control is ours (no automatic WINDOW_UPDATE): a
 *     stream may send http2.stream_window bytes ahead of its handler, all
 *     streams together http2.conn_window; the window reopens as the
 *     handler takes the bytes. Past a stream's window nghttp2 resets it
 *     FLOW_CONTROL_ERROR, past the connection's it sends GOAWAY
 *     FLOW_CONTROL_ERROR ("h2_protocol"). The body cap is the HTTP/1.1
 *     one (413);
 *   - responses: a stream whose body waits on a flow-control window that
 *     does not open for timeouts.write is reset, "h2_stall" (zero-window
 *     stalls); output queued on the socket is bounded as for HTTP/1.1 and
 *     bound by the transport's write deadline;
 *   - a body that stops arriving for timeouts.read: 408 (or reset);
 *     no stream for timeouts.idle: GOAWAY and close.
 * Frames that break the protocol get nghttp2's GOAWAY or RST_STREAM
 * PROTOCOL_ERROR, counted as "h2_protocol".
 */
#include "core/net/http_int.h"

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H2_TICK_MS        250u    /* deadline checks while streams are open */
#define H2_MAX_FIELDS     (4u * HTTP_MAX_HEADERS)  /* fields decoded per block before the connection ends */
#define H2_BOMB_FACTOR    16u     /* decoded header bytes over the cap × this: the connection ends */
#define H2_MAX_RESP_NV    128u    /* response header fields */
#define H2_MAX_OUTBOUND_ACK 1000u /* SETTINGS/PING ACKs queued unread (above the control bucket) */
#define H2_MAX_SETTINGS   16u     /* entries in one SETTINGS frame */
#define H2_FRAME_MIN      16384u  /* SETTINGS_MAX_FRAME_SIZE default */
#define H2_DATA_MAX       (16384u - 9u)  /* DATA payload: frame = one full TLS record */
/* Response bytes one stream queues before its handler is told to wait: a
 * quarter of an HTTP/1.1 connection's mark (HTTP_OUT_HIGH_WATER), since up
 * to http2.max_streams streams share one connection. Handlers compare
 * http_resp_pending() with HTTP_OUT_HIGH_WATER, so the stream reports its
 * queue scaled by H2_PENDING_SCALE. */
#define H2_PENDING_SCALE  4u

struct h2_stream {
	struct h2_sess   *s;
	int32_t           id;
	http_req         *req;           /* owned */
	struct h2_stream *prev, *next;   /* the session's open streams; next: closed list */
	struct evbuffer  *in;            /* body received, not yet taken (≤ the stream window) */
	struct evbuffer  *out;           /* response body not yet framed */
	uint64_t          hdr_bytes;     /* decoded head size (RFC 9113 §6.5.2) */
	unsigned          nfields;
	int               refuse;        /* the status the head earned (431, 414, 400), or 0 */
	uint64_t          t_open;        /* the head began (ms) */
	uint64_t          t_progress;    /* body bytes moved either way (ms) */
	bool              head_ready;    /* END_HEADERS received */
	bool              head_done;     /* admitted or refused */
	bool              remote_done;   /* END_STREAM received */
	bool              head_es;       /* ... on the HEADERS frame itself: no body at all */
	bool              out_eof;       /* the response ended: END_STREAM after out */
	bool              deferred;      /* nghttp2 waits for out to grow */
	bool              closed;        /* nghttp2 closed it: free at the next safe point */
	bool              we_reset;      /* a RST_STREAM of ours (not counted as the peer's fault) */
	bool              kick;          /* on_drain / on_body registration wants a look */
	bool              over_cap;      /* body bytes past the request's cap arrived (413) */
};

struct h2_sess {
	struct http_conn *c;
	nghttp2_session  *ng;
	struct h2_stream *streams;       /* open (nghttp2 has not closed them) */
	struct h2_stream *closed;        /* closed by nghttp2, freed at the next safe point */
	size_t            nstreams;      /* open ones */
	tbucket           req_rate;      /* streams opened (http2.requests_per_second) */
	tbucket           ctl_rate;      /* control frames (http2.control_frames_per_second) */
	uint64_t          started;       /* ms */
	uint64_t          last_active;   /* a stream opened or closed (idle deadline) */
	bool              got_frame;     /* the client preface and a frame arrived */
	bool              in_ng;         /* inside nghttp2: no re-entry */
	bool              in_process;
	bool              again;
	bool              going_away;    /* our GOAWAY is queued */
	bool              dead;          /* fatal: close once the output is out */
	bool              counted;       /* the session's refusal was counted */
};

/* ---- small helpers ----------------------------------------------------- */

static void sess_abandon(struct h2_sess *s);

static struct h2_stream *stream_of(struct h2_sess *s, int32_t id)
{
	return nghttp2_session_get_stream_user_data(s->ng, id);
}

/* Count the refusal that ends the session, once. */
static void sess_count(struct h2_sess *s, reject_reason why)
{
	if (s->counted || why == REJECT_NONE)
		return;
	s->counted = true;
	http_server_count_reject(s->c->srv, why, NULL);
}

/* End the session politely: GOAWAY with code, then close once it is out. */
static void sess_goaway(struct h2_sess *s, uint32_t code, reject_reason why)
{
	sess_count(s, why);
	if (s->going_away)
		return;
	s->going_away = true;
	(void)nghttp2_session_terminate_session(s->ng, code);
}

static void sess_schedule(struct h2_sess *s)
{
	if (s->in_process)
		s->again = true;
	else
		conn_schedule(s->c->t);
}

/* Body bytes taken (or dropped): the windows reopen by as much. */
static void stream_consume(struct h2_stream *st, size_t n)
{
	if (n && !st->closed)
		(void)nghttp2_session_consume(st->s->ng, st->id, n);
	else if (n)
		(void)nghttp2_session_consume_connection(st->s->ng, n);
}

static void stream_drop_in(struct h2_stream *st)
{
	size_t n = evbuffer_get_length(st->in);

	if (n) {
		(void)evbuffer_drain(st->in, n);
		stream_consume(st, n);
	}
}

static void stream_drop_out(struct h2_stream *st)
{
	size_t n = evbuffer_get_length(st->out);
	uint64_t *q = &st->s->c->srv->queued;

	if (n) {
		(void)evbuffer_drain(st->out, n);
		*q -= n < *q ? n : *q;
	}
}

/* Off the open list (the stream is then the caller's). */
static void stream_unlink(struct h2_sess *s, struct h2_stream *st)
{
	if (st->prev)
		st->prev->next = st->next;
	else
		s->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	st->prev = st->next = NULL;
	s->nstreams--;
}

/* Free an unlinked stream: its request first (on_close if the handler
 * still had it, the gate's end), then its buffers. */
static void stream_destroy(struct h2_stream *st)
{
	struct h2_sess *s = st->s;

	if (st->req) {
		http_req_notify_close(st->req);
		http_server_inflight_del(s->c->srv, st->req);
		st->req->h2 = NULL;
		http_req_free(st->req);
	}
	if (st->in)
		evbuffer_free(st->in);
	if (st->out) {
		stream_drop_out(st);
		evbuffer_free(st->out);
	}
	free(st);
}

/* ---- nghttp2 callbacks: record, never act ------------------------------ */

static ssize_t cb_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *u)
{
	struct h2_sess *s = u;
	struct evbuffer *out = http_conn_output(s->c);

	(void)ng;
	(void)flags;
	if (!http_conn_can_write(s->c))
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	if (evbuffer_get_length(out) >= HTTP_OUT_HIGH_WATER)
		return NGHTTP2_ERR_WOULDBLOCK;
	return evbuffer_add(out, data, len) < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : (ssize_t)len;
}

/*
 * A DATA frame: header and payload copied into one contiguous extent of
 * the socket's output. The TLS bufferevent calls SSL_write once per
 * buffer extent, so a frame header in an extent of its own would be a TLS
 * record of its own: with H2_DATA_MAX payloads each frame is exactly one
 * full 16 KiB record (as nginx's ssl_buffer_size gives it).
 */
static int cb_send_data(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *src, void *u)
{
	struct h2_sess *s = u;
	struct h2_stream *st = src->ptr;
	struct evbuffer *out = http_conn_output(s->c);
	uint64_t *q = &s->c->srv->queued;
	struct evbuffer_iovec v;

	(void)ng;
	if (evbuffer_get_length(out) >= HTTP_OUT_HIGH_WATER)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (frame->data.padlen || evbuffer_reserve_space(out, (ev_ssize_t)(9 + length), &v, 1) != 1 ||
	    v.iov_len < 9 + length)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	memcpy(v.iov_base, framehd, 9);
	if (evbuffer_remove(st->out, (uint8_t *)v.iov_base + 9, length) != (int)length)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	v.iov_len = 9 + length;
	if (evbuffer_commit_space(out, &v, 1) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	*q -= length < *q ? length : *q;
	st->t_progress = http_now_ms();
	if (st->req && st->req->resp.on_drain && st->req->resp.drain_armed)
		st->kick = true;
	return 0;
}

/* DATA payloads sized so that header + payload fill one TLS record. */
static ssize_t cb_data_length(nghttp2_session *ng, uint8_t type, int32_t id, int32_t conn_window,
                              int32_t stream_window, uint32_t max_frame, void *u)
{
	(void)ng;
	(void)type;
	(void)id;
	(void)conn_window;
	(void)stream_window;
	(void)u;
	return max_frame < H2_DATA_MAX ? (ssize_t)max_frame : (ssize_t)H2_DATA_MAX;
}

static ssize_t cb_data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *u)
{
	struct h2_stream *st = src->ptr;
	size_t avail = evbuffer_get_length(st->out);
	size_t n = avail < length ? avail : length;

	(void)ng;
	(void)id;
	(void)buf;
	(void)u;
	if (avail == 0 && !st->out_eof) {
		st->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	if (st->out_eof && n == avail)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int cb_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *u)
{
	struct h2_sess *s = u;
	struct h2_stream *st;
	uint64_t now = http_now_ms();

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (!tbucket_take(&s->req_rate, 1, now)) {
		sess_goaway(s, NGHTTP2_ENHANCE_YOUR_CALM, REJECT_H2_RATE);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	st = calloc(1, sizeof *st);
	if (!st)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	st->s = s;
	st->id = frame->hd.stream_id;
	st->t_open = st->t_progress = now;
	st->in = evbuffer_new();
	st->out = evbuffer_new();
	st->req = http_req_new_detached(s->c->srv, s->c->t);
	st->next = s->streams;
	if (s->streams)
		s->streams->prev = st;
	s->streams = st;
	s->nstreams++;
	s->last_active = now;
	if (st->in && st->out && st->req) {
		st->req->h2 = st;
		if (nghttp2_session_set_stream_user_data(ng, st->id, st) == 0)
			return 0;
	}
	stream_unlink(s, st);
	stream_destroy(st);
	return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return 0;
}

static int cb_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *u)
{
	struct h2_sess *s = u;
	struct h2_stream *st = stream_of(s, frame->hd.stream_id);
	uint64_t cap = s->c->srv->limits.max_header_bytes;

	(void)ng;
	(void)flags;
	if (!st)
		return 0;
	st->nfields++;
	st->hdr_bytes += nl + vl + 32u;
	if (st->nfields > H2_MAX_FIELDS || st->hdr_bytes > cap * H2_BOMB_FACTOR) {
		/* An HPACK bomb: tiny on the wire, huge decoded. The stream
		 * is reset (nghttp2 decodes the rest of the block without
		 * calling us) and GOAWAY ends the connection. */
		st->we_reset = true;
		sess_goaway(s, NGHTTP2_ENHANCE_YOUR_CALM, REJECT_H2_FLOOD);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (st->head_ready)
		return 0;   /* trailer fields: bounded above, not kept */
	if (!st->refuse && st->hdr_bytes > cap)
		st->refuse = 431;
	if (!st->refuse)
		st->refuse = http_req_h2_field(st->req, name, nl, value, vl);
	return 0;
}

/* Frames that carry no request cost the peer a token each. */
static bool frame_is_control(const nghttp2_frame *f)
{
	switch (f->hd.type) {
	case NGHTTP2_SETTINGS:
	case NGHTTP2_PING:
		return !(f->hd.flags & NGHTTP2_FLAG_ACK);
	case NGHTTP2_PRIORITY:
	case NGHTTP2_RST_STREAM:
		return true;
	case NGHTTP2_DATA:
		return f->hd.length == 0 && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM);
	case NGHTTP2_HEADERS:
		return f->hd.length == 0 && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM);
	default:
		return false;
	}
}

static int cb_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *u)
{
	struct h2_sess *s = u;
	struct h2_stream *st;

	(void)ng;
	s->got_frame = true;
	if (frame_is_control(frame) && !tbucket_take(&s->ctl_rate, 1, http_now_ms())) {
		sess_goaway(s, NGHTTP2_ENHANCE_YOUR_CALM, REJECT_H2_FLOOD);
		return 0;
	}
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	if (!(st = stream_of(s, frame->hd.stream_id)))
		return 0;
	if (frame->hd.type == NGHTTP2_HEADERS && !st->head_ready) {
		/* nghttp2 calls this once the whole block (CONTINUATIONs too)
		 * is in: END_HEADERS was seen. */
		st->head_ready = true;
		st->head_es = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
	}
	if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
		st->remote_done = true;
	return 0;
}

static int cb_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *u)
{
	struct h2_sess *s = u;
	struct h2_stream *st = stream_of(s, id);
	http_req *r;

	(void)flags;
	if (!st) {
		(void)nghttp2_session_consume_connection(ng, len);
		return 0;
	}
	r = st->req;
	/* Bytes past the cap are not counted (the gate meters at most the
	 * cap, as with HTTP/1.1's chunk check) and never reach the handler. */
	if (st->over_cap || len > r->body_limit - r->body_seen) {
		st->over_cap = true;
		stream_consume(st, len);
		return 0;
	}
	r->body_seen += len;
	st->t_progress = http_now_ms();
	/* Answered already, refused, stopped, or over the cap: dropped. Bytes
	 * that come before the head was admitted (the same read often holds
	 * HEADERS and the first DATA) wait in st->in: the window bounds them. */
	if ((st->head_done && (!r->route || r->resp.state == HTTP_RESP_ENDED || r->body_stopped ||
	                       r->gone))) {
		stream_consume(st, len);
		return 0;
	}
	return evbuffer_add(st->in, data, len) < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
}

static int cb_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *u)
{
	struct h2_sess *s = u;
	struct h2_stream *st = stream_of(s, id);

	(void)code;
	if (!st)
		return 0;
	(void)nghttp2_session_set_stream_user_data(ng, id, NULL);
	st->closed = true;
	/* Bytes never taken still hold the connection window. */
	stream_drop_in(st);
	stream_unlink(s, st);
	st->next = s->closed;
	s->closed = st;
	s->last_active = http_now_ms();
	return 0;
}

/* A known, small rest of a body the answer came before is read and
 * dropped (as HTTP/1.1 does): some clients take the RST_STREAM below for
 * a failed exchange. */
static bool body_drainable(const http_req *r)
{
	return !r->chunked && r->content_length > 0 &&
	       (uint64_t)r->content_length - r->body_seen <= HTTP_DRAIN_MAX_BYTES;
}

/* What nghttp2 sent on its own: refusals of protocol errors are counted;
 * and once our answer's END_STREAM is out while the peer is still sending
 * more than HTTP_DRAIN_MAX_BYTES, RST_STREAM NO_ERROR tells it to stop
 * (RFC 9113 §8.1). */
static int cb_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *u)
{
	struct h2_sess *s = u;
	struct h2_stream *st;

	if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
		sess_count(s, frame->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM
		              ? REJECT_H2_FLOOD : REJECT_H2_PROTOCOL);
		s->going_away = true;
		return 0;
	}
	if (frame->hd.type == NGHTTP2_RST_STREAM) {
		st = stream_of(s, frame->hd.stream_id);
		if (!(st && st->we_reset) && (frame->rst_stream.error_code == NGHTTP2_PROTOCOL_ERROR ||
		                              frame->rst_stream.error_code == NGHTTP2_FLOW_CONTROL_ERROR))
			http_server_count_reject(s->c->srv, REJECT_H2_PROTOCOL, NULL);
		return 0;
	}
	if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
	    (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    (st = stream_of(s, frame->hd.stream_id)) && !st->remote_done && !st->closed &&
	    !body_drainable(st->req)) {
		st->we_reset = true;
		(void)nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
	}
	return 0;
}

/* ---- the loop: admit, dispatch, deliver ------------------------------- */

static void stream_dispatch(struct h2_stream *st)
{
	http_req *r = st->req;

	r->dispatched = true;
	http_server_inflight_add(st->s->c->srv, r);
	r->route->fn(r, r->route->arg);
}

static void stream_admit(struct h2_stream *st)
{
	http_req *r = st->req;
	int rc = st->refuse ? st->refuse : http_req_h2_head_done(r, st->head_es);

	st->head_done = true;
	if (rc) {
		http_req_reject_status(r, rc, NULL);
	} else if (st->s->going_away || st->s->c->srv->draining) {
		http_req_reject(r, 503, "draining", "the server is shutting down", REJECT_NONE, 1);
	} else if (http_server_admit(st->s->c->srv, r) == 0 && r->body_seen <= r->body_limit) {
		if (r->route->flags & HTTP_ROUTE_STREAM_BODY)
			stream_dispatch(st);
		return;
	}
	/* Refused and answered, or admitted over its cap. DATA that came with
	 * the head was counted against the server's cap; the route, the gate
	 * or a refusal may have lowered it below that.
	 * Kept at most the cap here, the one place it is lowered, so
	 * limit - seen never wraps; the gate meters at most its cap, and
	 * stream_deliver answers 413 to an admitted request. */
	if (r->body_seen > r->body_limit) {
		st->over_cap = true;
		r->body_seen = r->body_limit;
	}
}

/* Give the handler what arrived, then the end of the body. */
static void stream_deliver(struct h2_stream *st)
{
	http_req *r = st->req;
	struct evbuffer_iovec v;

	if (st->over_cap && r->resp.state == HTTP_RESP_NONE && !r->gone) {
		stream_drop_in(st);
		http_req_reject_status(r, 413, NULL);
		return;
	}
	if (!r->route || r->gone || r->resp.state == HTTP_RESP_ENDED || r->body_stopped) {
		stream_drop_in(st);
	} else if (r->route->flags & HTTP_ROUTE_STREAM_BODY) {
		while (r->on_data && !r->body_paused && !r->body_stopped && !r->gone &&
		       r->resp.state != HTTP_RESP_ENDED &&
		       evbuffer_peek(st->in, -1, NULL, &v, 1) >= 1 && v.iov_len) {
			int rc = r->on_data(r, v.iov_base, v.iov_len, r->body_arg);

			(void)evbuffer_drain(st->in, v.iov_len);
			stream_consume(st, v.iov_len);
			if (rc < 0)
				r->body_stopped = true;
		}
		if (r->body_stopped || r->gone || r->resp.state == HTTP_RESP_ENDED)
			stream_drop_in(st);
	} else {
		while (evbuffer_peek(st->in, -1, NULL, &v, 1) >= 1 && v.iov_len) {
			if (http_req_body_keep(r, v.iov_base, v.iov_len) < 0) {
				stream_drop_in(st);
				http_req_reject_status(r, 500, NULL);
				return;
			}
			(void)evbuffer_drain(st->in, v.iov_len);
			stream_consume(st, v.iov_len);
		}
	}
	if (!st->remote_done || evbuffer_get_length(st->in) || r->end_sent)
		return;
	r->parse_done = true;
	r->body_complete = true;
	if (!r->dispatched) {
		if (r->route && r->resp.state == HTTP_RESP_NONE && !r->gone)
			stream_dispatch(st);
		return;
	}
	if (r->on_end && !r->body_stopped && !r->gone && r->resp.state != HTTP_RESP_ENDED) {
		r->end_sent = true;
		r->on_end(r, r->body_arg);
	}
}

/* One pass: free what nghttp2 closed, then admit, deliver and kick the
 * open streams. Handlers run here and may end, reset or answer any
 * stream, but only nghttp2 (never called from here) closes one, so the
 * open list does not change under the walk. */
static bool sess_work(struct h2_sess *s)
{
	struct h2_stream *st;
	bool any = false;

	while ((st = s->closed) != NULL) {
		s->closed = st->next;
		stream_destroy(st);
		any = true;
	}
	for (st = s->streams; st; st = st->next) {
		if (st->head_ready && !st->head_done) {
			stream_admit(st);
			any = true;
		}
		if (!st->head_done)
			continue;
		/* Bytes to hand over, or an end not yet delivered (a handler
		 * may register for the body after the end arrived). */
		if (evbuffer_get_length(st->in) || (st->remote_done && !st->req->end_sent) ||
		    st->over_cap)
			stream_deliver(st);
		if (st->kick) {
			st->kick = false;
			http_resp_check_drain(st->req);
		}
	}
	return any;
}

static void sess_fatal(struct h2_sess *s, int err)
{
	if (err == NGHTTP2_ERR_FLOODED || err == NGHTTP2_ERR_CALLBACK_FAILURE ||
	    err == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS)
		sess_count(s, REJECT_H2_FLOOD);
	else if (err != NGHTTP2_ERR_EOF)
		sess_count(s, REJECT_H2_PROTOCOL);
	s->dead = true;
}

/* Input, while the answers the client has not read stay under the mark. */
static bool sess_recv(struct h2_sess *s)
{
	struct evbuffer *in = conn_input(s->c->t);
	struct evbuffer_iovec v;
	bool any = false;

	while (!s->dead && evbuffer_get_length(http_conn_output(s->c)) <= HTTP_OUT_HIGH_WATER &&
	       evbuffer_peek(in, -1, NULL, &v, 1) >= 1 && v.iov_len) {
		ssize_t n;

		s->in_ng = true;
		n = nghttp2_session_mem_recv(s->ng, v.iov_base, v.iov_len);
		s->in_ng = false;
		if (n < 0) {
			sess_fatal(s, (int)n);
			break;
		}
		(void)evbuffer_drain(in, (size_t)n);
		any = true;
		/* Dispatch as heads arrive: a chunk may hold many of them. */
		(void)sess_work(s);
	}
	return any;
}

static void sess_send(struct h2_sess *s)
{
	int rv;

	if (s->dead || !http_conn_can_write(s->c))
		return;
	s->in_ng = true;
	rv = nghttp2_session_send(s->ng);
	s->in_ng = false;
	if (rv != 0)
		sess_fatal(s, rv);
}

/* The timer: the tick while streams are open, else the idle deadline. */
static void sess_arm(struct h2_sess *s)
{
	const http_limits *l = &s->c->srv->limits;
	uint64_t now = http_now_ms(), left;

	if (s->nstreams || !s->got_frame) {
		conn_arm(s->c->t, H2_TICK_MS);
		return;
	}
	left = now - s->last_active < l->idle_timeout_ms ? l->idle_timeout_ms - (now - s->last_active) : 1;
	conn_arm(s->c->t, left);
}

void h2_on_process(struct http_conn *c)
{
	struct h2_sess *s = c->h2;
	int rounds = 0;

	if (!s || c->state >= HTTP_CONN_FLUSH)
		return;
	if (s->in_process) {
		s->again = true;
		return;
	}
	s->in_process = true;
	do {
		s->again = false;
		(void)sess_recv(s);
		(void)sess_work(s);
		sess_send(s);
		/* Work a send made (streams closed, drains) is done in the
		 * next round; input is bounded by the transport's read_max. */
	} while ((s->again || sess_work(s)) && !s->dead && ++rounds < 8);
	s->in_process = false;
	if (s->again)
		conn_schedule(c->t);
	if (s->dead || (!nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng))) {
		sess_abandon(s);
		http_conn_set_state(c, HTTP_CONN_FLUSH);   /* what is queued goes out, then close */
		return;
	}
	sess_arm(s);
}

/* ---- deadlines ------------------------------------------------------ */

void h2_on_timer(struct http_conn *c)
{
	struct h2_sess *s = c->h2;
	const http_limits *l = &c->srv->limits;
	uint64_t now = http_now_ms();
	bool out_busy = conn_out_len(c->t) > 0;

	if (!s->got_frame && now - s->started >= l->header_timeout_ms) {
		http_server_count_reject(c->srv, REJECT_TIMEOUT, NULL);   /* no preface in time */
		http_conn_set_state(c, HTTP_CONN_CLOSED);
		return;
	}
	if (!s->nstreams && s->got_frame && now - s->last_active >= l->idle_timeout_ms)
		sess_goaway(s, NGHTTP2_NO_ERROR, REJECT_NONE);
	for (struct h2_stream *st = s->streams; st; st = st->next) {
		http_req *r = st->req;

		if (st->closed || r->gone || r->resp.state == HTTP_RESP_ENDED) {
			if (!st->closed && st->out_eof && evbuffer_get_length(st->out) && !out_busy &&
			    now - st->t_progress >= l->write_timeout_ms) {
				/* The answer is complete but its window never opened. */
				http_server_count_reject(c->srv, REJECT_H2_STALL, r->corr_id);
				st->we_reset = true;
				stream_drop_out(st);
				(void)nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id,
				                                NGHTTP2_CANCEL);
			}
			continue;
		}
		if (!st->head_ready) {
			if (now - st->t_open >= l->header_timeout_ms) {
				/* A header block held open (slow CONTINUATIONs) blocks
				 * every stream of the connection: end it. */
				sess_goaway(s, NGHTTP2_ENHANCE_YOUR_CALM, REJECT_TIMEOUT);
				break;
			}
			continue;
		}
		if (evbuffer_get_length(st->out) && !out_busy &&
		    now - st->t_progress >= l->write_timeout_ms) {
			http_server_count_reject(c->srv, REJECT_H2_STALL, r->corr_id);
			http_req_notify_close(r);   /* the handler lets go of it (on_close) */
			http_req_kill(r);
			continue;
		}
		if (st->head_done && !st->remote_done && r->resp.state == HTTP_RESP_NONE &&
		    !r->body_paused && !evbuffer_get_length(st->in) &&
		    now - st->t_progress >= l->read_timeout_ms) {
			http_req_reject_status(r, 408, NULL);
			continue;
		}
	}
	h2_on_process(c);
}

/* The connection is ending: every handler lets go of its request now
 * (on_close), before a reply it waits for finds a connection that no
 * longer writes (stream_destroy's notification would come too late). */
static void sess_abandon(struct h2_sess *s)
{
	for (struct h2_stream *st = s->streams; st; st = st->next)
		http_req_notify_close(st->req);
}

void h2_on_event(struct http_conn *c, unsigned what)
{
	sess_abandon(c->h2);
	if (what & CONN_EV_TIMEOUT) {
		http_server_count_reject(c->srv, REJECT_TIMEOUT, NULL);   /* write deadline */
		http_conn_set_state(c, HTTP_CONN_CLOSED);
	} else if (what & CONN_EV_ERROR) {
		http_conn_set_state(c, HTTP_CONN_CLOSED);
	} else if (what & CONN_EV_EOF) {
		/* The peer is gone, its streams with it (on_close at the free).
		 * Not a flush: an HTTP/2 client that closed will not read what
		 * is queued, and a TLS write towards it may never fail (h2load
		 * -D left every connection open that way). */
		http_conn_set_state(c, HTTP_CONN_CLOSED);
	}
}

void h2_drain(struct http_conn *c)
{
	struct h2_sess *s = c->h2;

	if (!s->going_away) {
		s->going_away = true;
		(void)nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
		                            nghttp2_session_get_last_proc_stream_id(s->ng),
		                            NGHTTP2_NO_ERROR, NULL, 0);
	}
	sess_schedule(s);
}

/* ---- the session ------------------------------------------------------ */

static nghttp2_session_callbacks *sess_callbacks(void)
{
	nghttp2_session_callbacks *cb;

	if (nghttp2_session_callbacks_new(&cb) != 0)
		return NULL;
	nghttp2_session_callbacks_set_send_callback(cb, cb_send);
	nghttp2_session_callbacks_set_send_data_callback(cb, cb_send_data);
	nghttp2_session_callbacks_set_data_source_read_length_callback(cb, cb_data_length);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, cb_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, cb_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, cb_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, cb_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, cb_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, cb_frame_send);
	return cb;
}

static nghttp2_option *sess_options(const http_limits *l)
{
	nghttp2_option *opt;
	/* A header block at the cap, in frames of the smallest size, plus one. */
	size_t cont = (size_t)(l->max_header_bytes / H2_FRAME_MIN) + 2u;

	if (nghttp2_option_new(&opt) != 0)
		return NULL;
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_max_continuations(opt, cont);
	nghttp2_option_set_max_outbound_ack(opt, H2_MAX_OUTBOUND_ACK);
	nghttp2_option_set_max_settings(opt, H2_MAX_SETTINGS);
	nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
	return opt;
}

int h2_sess_start(struct http_conn *c)
{
	const http_limits *l = &c->srv->limits;
	struct h2_sess *s = calloc(1, sizeof *s);
	nghttp2_session_callbacks *cb = sess_callbacks();
	nghttp2_option *opt = sess_options(l);
	uint64_t now = http_now_ms();
	int rv = -1;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, l->h2_max_streams },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, l->h2_stream_window },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)l->max_header_bytes },
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		/* RFC 9218 priorities: streams of one urgency that are not
		 * incremental (the default) are sent one after the other, so a
		 * client with many objects in flight gets whole objects early,
		 * not all of them at the end (RFC 7540's round robin). */
		{ NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1 },
	};

	if (s && cb && opt && nghttp2_session_server_new2(&s->ng, cb, s, opt) == 0) {
		s->c = c;
		s->started = s->last_active = now;
		tbucket_init(&s->req_rate, (double)l->h2_requests_per_s, (double)l->h2_requests_per_s, now);
		tbucket_init(&s->ctl_rate, (double)l->h2_control_per_s, (double)l->h2_control_per_s, now);
		if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) == 0 &&
		    nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0,
		                                          (int32_t)l->h2_conn_window) == 0)
			rv = 0;
	}
	if (cb)
		nghttp2_session_callbacks_del(cb);
	if (opt)
		nghttp2_option_del(opt);
	if (rv < 0) {
		if (s && s->ng)
			nghttp2_session_del(s->ng);
		free(s);
		return -1;
	}
	c->h2 = s;
	http_conn_set_state(c, HTTP_CONN_H2);
	conn_read(c->t, true);
	h2_on_process(c);
	return 0;
}

void h2_sess_free(struct h2_sess *s)
{
	struct h2_stream *st;

	if (!s)
		return;
	while ((st = s->closed) != NULL) {
		s->closed = st->next;
		stream_destroy(st);
	}
	while ((st = s->streams) != NULL) {   /* pop the head */
		s->streams = st->next;
		if (st->next)
			st->next->prev = NULL;
		s->nstreams--;
		stream_destroy(st);
	}
	nghttp2_session_del(s->ng);
	free(s);
}

/* ---- the response side (http_resp.c) ----------------------------------- */

bool h2_req_can_write(const http_req *r)
{
	const struct h2_stream *st = r->h2;

	return st && !st->closed && !st->s->dead && http_conn_can_write(st->s->c);
}

/* Lowercase (RFC 9113 §8.2.1) copies of the handler's "Name: value\r\n"
 * lines, less the fields HTTP/2 forbids (§8.2.2). */
static size_t resp_fields(char *buf, size_t len, nghttp2_nv *nv, size_t max)
{
	static const char *const banned[] = { "connection", "keep-alive", "proxy-connection",
	                                      "transfer-encoding", "upgrade" };
	size_t n = 0;
	char *p = buf, *end = buf + len;

	while (p < end && n < max) {
		char *colon = memchr(p, ':', (size_t)(end - p));
		char *eol = memchr(p, '\r', (size_t)(end - p));
		bool keep = true;

		if (!colon || !eol || colon > eol || eol + 1 >= end)
			break;
		for (char *q = p; q < colon; q++)
			if (*q >= 'A' && *q <= 'Z')
				*q = (char)(*q - 'A' + 'a');
		for (size_t k = 0; k < sizeof banned / sizeof banned[0]; k++)
			if (strlen(banned[k]) == (size_t)(colon - p) && memcmp(p, banned[k], (size_t)(colon - p)) == 0)
				keep = false;
		if (keep) {
			nv[n] = (nghttp2_nv){ (uint8_t *)p, (uint8_t *)colon + 2, (size_t)(colon - p),
			                      (size_t)(eol - colon - 2), NGHTTP2_NV_FLAG_NONE };
			n++;
		}
		p = eol + 2;
	}
	return n;
}

int h2_resp_start(http_req *r)
{
	struct h2_stream *st = r->h2;
	struct http_resp *rs = &r->resp;
	nghttp2_nv nv[3 + H2_MAX_RESP_NV];
	char status[8], clen[24];
	const char *date = http_server_date(r->srv);
	size_t n = 0, extra = rs->hdrs ? evbuffer_get_length(rs->hdrs) : 0;
	char local[HTTP_RESP_HDR_INLINE + 1];
	/* The usual answer's fields fit in the inline part: no allocation. */
	char *buf = extra ? malloc(rs->hdr_len + extra + 1) : local;
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = cb_data_read };
	int rv;

	if (!buf)
		return -1;
	memcpy(buf, rs->hdr_inline, rs->hdr_len);
	if (extra && evbuffer_copyout(rs->hdrs, buf + rs->hdr_len, extra) != (ev_ssize_t)extra) {
		free(buf);
		return -1;
	}
	snprintf(status, sizeof status, "%03u", (unsigned)rs->status % 1000u);
	nv[n++] = (nghttp2_nv){ (uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE };
	nv[n++] = (nghttp2_nv){ (uint8_t *)"date", (uint8_t *)date, 4, strlen(date), NGHTTP2_NV_FLAG_NONE };
	if (rs->framing == HTTP_FRAME_LENGTH) {
		snprintf(clen, sizeof clen, "%llu", (unsigned long long)rs->clen);
		nv[n++] = (nghttp2_nv){ (uint8_t *)"content-length", (uint8_t *)clen, 14, strlen(clen),
		                        NGHTTP2_NV_FLAG_NONE };
	}
	n += resp_fields(buf, rs->hdr_len + extra, nv + n, H2_MAX_RESP_NV);
	rs->close = false;
	/* nghttp2 copies the fields: buf may go. */
	rv = nghttp2_submit_response(st->s->ng, st->id, nv, n, rs->drop_body ? NULL : &prd);
	if (buf != local)
		free(buf);
	if (rv != 0)
		return -1;
	if (rs->drop_body)
		st->out_eof = true;
	st->t_progress = http_now_ms();
	sess_schedule(st->s);
	return 0;
}

static void stream_resume(struct h2_stream *st)
{
	if (st->deferred) {
		st->deferred = false;
		(void)nghttp2_session_resume_data(st->s->ng, st->id);
	}
	sess_schedule(st->s);
}

int h2_resp_write(http_req *r, const void *data, size_t len,
                  void (*cleanup)(const void *, size_t, void *), void *arg)
{
	struct h2_stream *st = r->h2;
	int rc = cleanup ? evbuffer_add_reference(st->out, data, len, cleanup, arg)
	                 : evbuffer_add(st->out, data, len);

	if (rc < 0)
		return -1;
	st->s->c->srv->queued += len;
	if (h2_resp_pending(r) >= HTTP_OUT_HIGH_WATER)
		r->resp.drain_armed = true;
	stream_resume(st);
	return 0;
}

int h2_resp_end(http_req *r)
{
	struct h2_stream *st = r->h2;

	st->out_eof = true;
	stream_resume(st);
	return 0;
}

void h2_resp_abort(http_req *r)
{
	struct h2_stream *st = r->h2;

	if (!st || st->closed)
		return;
	st->we_reset = true;
	stream_drop_out(st);
	(void)nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
	sess_schedule(st->s);
}

size_t h2_resp_pending(const http_req *r)
{
	return r->h2 ? evbuffer_get_length(r->h2->out) * H2_PENDING_SCALE : 0;
}

void h2_req_schedule(http_req *r)
{
	struct h2_stream *st = r->h2;

	if (!st)
		return;
	st->kick = true;
	sess_schedule(st->s);
}

void h2_req_body_paused(http_req *r, bool paused)
{
	struct h2_stream *st = r->h2;

	if (!st)
		return;
	/* Paused: bytes wait in st->in and the window stays shut; nothing
	 * else to do. Resumed: deliver what waits. */
	if (!paused) {
		st->t_progress = http_now_ms();
		sess_schedule(st->s);
	}
}
