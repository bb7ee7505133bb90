/*
 * oap_conn.c — one OAP/1 connection: the state machine, the frame loop, the
 * stream table, answers with backpressure, deadlines and close rules
 * (docs/oap.md).
 *
 * States: HANDSHAKE (TLS, absolute deadline) → HELLO (the first frame must
 * be a HELLO within timeouts.read) → OPEN → FLUSH (the transport writes
 * what is queued, reads nothing, then lingers: close_notify, SHUT_WR, read
 * and discard a little so the kernel does not answer unread bytes with an
 * RST that would destroy the last answer) → CLOSED (freed from the
 * transport's defer event). The transport is a conn (core/net/conn.h).
 *
 * Input is bounded by one frame: the bufferevent stops reading at
 * OAP_MAX_FRAME buffered, and every header is judged from its first 38
 * bytes (copied to the stack) before the frame body is waited for, so an
 * oversize announcement costs nothing but its header. Output is bounded by
 * OG_OUT_HIGH_WATER: above it we stop reading requests and GET streams stop
 * producing until the peer has read.
 *
 * Nothing is freed inside a callback that may still use it: a finished
 * stream is only marked (og_stream_live turns false) and swept, with its
 * verb state, from the defer event; a closing connection likewise.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/audit/audit_client.h"
#include "core/metrics/metrics.h"
#include "core/net/conn.h"
#include "core/auth/wall.h"
#include "core/objects/objstore.h"
#include "lib/b3.h"
#include "lib/log.h"
#include "lib/util.h"
#include "svc/omnigate/omnigate.h"

#define OG_ENVELOPE_MAX 384
#define OG_HELLO_MAX    192

typedef enum oc_state {
	OC_HANDSHAKE = 0, OC_HELLO, OC_OPEN, OC_FLUSH, OC_CLOSED,
} oc_state;

struct oap_conn {
	omnigate           *og;
	oap_conn           *next, *prev;
	conn               *t;             /* the transport (owned) */
	/* Borrowed from t for the wall hand-off (conn_wall_refused); new code
	 * uses conn_peer / conn_peer_cert. */
	struct bufferevent *bev;
	bool                tls;
	oc_state            state;
	bool                paused;        /* a stream waits for storage before more frames */
	oap_stream         *pause_owner;
	bool                out_full;      /* output above the high-water mark */
	bool                partial_armed; /* the read deadline of a started frame runs */
	size_t              zk_scanned;    /* input bytes conn_zk_batch already looked at */
	bool                draining;
	bool                aborting;      /* cut: no END, no close_notify */
	bool                in_process;
	/* Deadlines: due_ms is the frame or idle deadline (absolute, og_now_ms);
	 * the timer runs to it or to the first PUT stream's rate deadline.
	 * held_ms (+ since held_since while held) is the time we did not read
	 * (paused for storage, output full): no stream's body is late for it. */
	uint64_t            due_ms;
	uint64_t            held_ms;
	uint64_t            held_since;
	bool                held;
	/* The peer plane: the node id its identity certificate proved. */
	bool                peer_authed;
	uint8_t             peer_id[32];
	oap_stream         *streams;
	unsigned            nactive;       /* streams counting against max_inflight */
	unsigned            ntotal;        /* every unfinished stream */
};

static void conn_set_state(oap_conn *c, oc_state st);

/* ---- small helpers ---------------------------------------------------- */

static size_t oc_out_len(const oap_conn *c)
{
	return conn_out_len(c->t);
}

/* Encode one frame straight into the output buffer. 0/-1. */
/* With cleanup: the payload is referenced, not copied (cleanup(payload,
 * len, arg) once it is sent or dropped; on -1 it was not taken). */
static int conn_send_ref(oap_conn *c, const oap_frame *f,
                         void (*cleanup)(const void *, size_t, void *), void *arg)
{
	struct evbuffer *out = conn_output(c->t);
	struct evbuffer_iovec v;
	size_t need = cleanup ? oap_encoded_len(f) - f->payload_len : oap_encoded_len(f);
	ssize_t n;

	if (evbuffer_reserve_space(out, (ev_ssize_t)need, &v, 1) < 1 || v.iov_len < need)
		return -1;
	n = cleanup ? oap_encode_head(f, v.iov_base, v.iov_len) : oap_encode(f, v.iov_base, v.iov_len);
	if (n < 0)
		return BUG("oap: cannot encode an answer frame");
	v.iov_len = (size_t)n;
	if (evbuffer_commit_space(out, &v, 1) != 0)
		return -1;
	if (cleanup && !f->payload_len)
		cleanup(f->payload, 0, arg);   /* taken: nothing to send */
	else if (cleanup && evbuffer_add_reference(out, f->payload, f->payload_len, cleanup, arg) != 0)
		return -1;   /* a head without its payload: the caller closes */
	return 0;
}

static int conn_send(oap_conn *c, const oap_frame *f)
{
	return conn_send_ref(c, f, NULL, NULL);
}

/* The JSON error envelope of docs/api.md; code and msg are literals. */
static void og_envelope(char *out, size_t len, const char *code, const char *msg,
                        bool retryable, uint64_t corr_id)
{
	snprintf(out, len, "{\"code\":\"%s\",\"message\":\"%s\",\"retryable\":%s,"
	         "\"corr_id\":\"%016" PRIx64 "\"}", code, msg, retryable ? "true" : "false", corr_id);
}

/* An error answer outside any stream (HELLO, protocol, 413), then close. */
static void conn_refuse(oap_conn *c, const oap_frame *hdr, int status, const char *code,
                        const char *msg)
{
	char body[OG_ENVELOPE_MAX];
	oap_frame f = { .flags = OAP_F_RESP | OAP_F_START | OAP_F_END, .code = (uint16_t)status,
	                .app_proto_id = hdr->app_proto_id, .corr_id = hdr->corr_id };

	og_envelope(body, sizeof body, code, msg, false, hdr->corr_id);
	memcpy(f.tenant, hdr->tenant, sizeof f.tenant);
	f.payload = (const uint8_t *)body;
	f.payload_len = strlen(body);
	(void)conn_send(c, &f);
	conn_set_state(c, OC_FLUSH);
}

/* ---- body progress (limits.min_body_rate) ------------------------------ */

static uint64_t conn_held_total(const oap_conn *c, uint64_t now)
{
	return c->held_ms + (c->held ? now - c->held_since : 0);
}

/* We stop reading (held) or start again: the held time is the node's. */
static void conn_hold(oap_conn *c, bool held, uint64_t now)
{
	if (c->held && !held)
		c->held_ms += now - c->held_since;
	else if (!c->held && held)
		c->held_since = now;
	c->held = held;
}

/* Does the rule hold s to a rate: an admitted PUT whose body is still coming. */
static bool stream_is_timed(const oap_stream *s)
{
	return s->c->og->lim.min_body_rate && og_stream_live(s) && s->counted && !s->req_done &&
	       !s->discard && og_verb_has_body(s->verb);
}

/* Reading time left before s's average falls below the minimum (grace
 * included); 0 when it has. */
static uint64_t stream_rate_left(const oap_stream *s, uint64_t now)
{
	const og_limits *l = &s->c->og->lim;
	uint64_t held = conn_held_total(s->c, now) - s->body_held0;
	uint64_t elapsed = now - s->body_t0 > held ? now - s->body_t0 - held : 0;
	uint64_t due = s->body_rx * 1000u / l->min_body_rate;   /* rx ≤ 2^40: no overflow */

	if (due < l->body_grace_ms)
		due = l->body_grace_ms;
	return due > elapsed ? due - elapsed : 0;
}

/* Arm the timer to due_ms or to the first timed stream's rate deadline. */
static void conn_arm_next(oap_conn *c, uint64_t now)
{
	uint64_t left = c->due_ms > now ? c->due_ms - now : 0;

	for (const oap_stream *s = c->streams; s; s = s->next) {
		if (stream_is_timed(s)) {
			uint64_t r = stream_rate_left(s, now);
			if (r < left)
				left = r;
		}
	}
	conn_arm(c->t, left);
}

/* The frame or idle deadline, ms from now. */
static void conn_arm_due(oap_conn *c, uint64_t ms)
{
	uint64_t now = og_now_ms();

	c->due_ms = now + ms;
	conn_arm_next(c, now);
}

static void og_stream_slow(oap_stream *s);

/* Refuse every timed stream below the rate: its upload goes back to
 * storage at once (a trickler must not keep its slot while it trickles
 * on), the rest of its body is dropped, the connection carries on. */
static void conn_cut_slow(oap_conn *c, uint64_t now)
{
	for (oap_stream *s = c->streams; s; s = s->next)
		if (stream_is_timed(s) && stream_rate_left(s, now) == 0)
			og_stream_slow(s);
}

/* ---- streams ------------------------------------------------------------ */

static oap_stream *conn_find(oap_conn *c, uint64_t corr_id)
{
	for (oap_stream *s = c->streams; s; s = s->next)
		if (!s->finished && s->corr_id == corr_id)
			return s;
	return NULL;
}

static oap_stream *stream_new(oap_conn *c, const oap_frame *f)
{
	oap_stream *s = calloc(1, sizeof *s);

	if (!s)
		return NULL;
	s->c = c;
	s->corr_id = f->corr_id;
	s->verb = f->code;
	memcpy(s->tenant, f->tenant, sizeof s->tenant);
	s->next = c->streams;
	c->streams = s;
	c->ntotal++;
	metrics_gauge_add(c->og->m_streams, 1);
	return s;
}

static void stream_uncount(oap_stream *s)
{
	if (s->counted) {
		s->counted = false;
		s->c->nactive--;
		s->c->og->inflight--;
	}
}

/* Both sides are done (or the connection is going): stop counting it; the
 * struct and verb state go at the next sweep. */
static void stream_finish(oap_stream *s)
{
	oap_conn *c = s->c;

	if (s->finished)
		return;
	s->finished = true;
	stream_uncount(s);
	c->ntotal--;
	metrics_gauge_add(c->og->m_streams, -1);
	if (c->pause_owner == s) {
		c->paused = false;
		c->pause_owner = NULL;
	}
	conn_schedule(c->t);
}

static void stream_maybe_finish(oap_stream *s)
{
	if (s->req_done && s->ended)
		stream_finish(s);
}

static void conn_finish_all(oap_conn *c)
{
	for (oap_stream *s = c->streams; s; s = s->next)
		stream_finish(s);
}

/* Free finished streams. Called only from the defer event or teardown. */
static void conn_sweep(oap_conn *c)
{
	oap_stream **pp = &c->streams;

	while (*pp) {
		oap_stream *s = *pp;

		if (!s->finished) {
			pp = &s->next;
			continue;
		}
		*pp = s->next;
		og_verb_release(s);
		wall_ticket_end(s->ticket, s->body_seen);
		free(s);
	}
}

static void stream_count_outcome(oap_stream *s, int status)
{
	char labels[64];

	snprintf(labels, sizeof labels, "verb=\"%s\",outcome=\"%d\"", og_verb_name(s->verb), status);
	metrics_count("oap_requests_total", labels, 1);
}

/* ---- answers on a stream (omnigate.h) --------------------------------- */

static int stream_send_ref(oap_stream *s, uint16_t flags, uint16_t code, const uint8_t *p,
                           size_t n, void (*cleanup)(const void *, size_t, void *), void *arg)
{
	oap_frame f = { .flags = flags, .code = code, .app_proto_id = OG_APP_OBJECTS,
	                .corr_id = s->corr_id, .payload = p, .payload_len = n };

	if (!og_stream_live(s) || s->c->state != OC_OPEN)
		return -1;
	memcpy(f.tenant, s->tenant, sizeof f.tenant);
	if (conn_send_ref(s->c, &f, cleanup, arg) < 0) {
		conn_set_state(s->c, OC_CLOSED);
		return -1;
	}
	if (flags & OAP_F_END) {
		s->ended = true;
		stream_maybe_finish(s);
	}
	return 0;
}

static int stream_send(oap_stream *s, uint16_t flags, uint16_t code, const uint8_t *p,
                       size_t n)
{
	return stream_send_ref(s, flags, code, p, n, NULL, NULL);
}

int og_stream_reply(oap_stream *s, int status, const char *json, bool end)
{
	uint16_t flags = OAP_F_RESP | OAP_F_START | (end ? OAP_F_END : 0);

	if (!og_stream_live(s) || s->answered)
		return BUG("oap: a second answer on one stream");
	s->answered = true;
	s->status = (uint16_t)status;
	stream_count_outcome(s, status);
	return stream_send(s, flags, (uint16_t)status, (const uint8_t *)json, strlen(json));
}

void og_stream_error(oap_stream *s, int status, const char *code, const char *msg,
                     bool retryable)
{
	char body[OG_ENVELOPE_MAX];

	if (!og_stream_live(s))
		return;
	if (s->answered) {   /* data went out already: only a cut is honest */
		og_stream_abort(s);
		return;
	}
	og_envelope(body, sizeof body, code, msg, retryable, s->corr_id);
	stream_uncount(s);
	if (!s->req_done)
		s->discard = true;   /* drop the rest of its body, keep the corr_id */
	(void)!og_stream_reply(s, status, body, true);
}

int og_stream_data(oap_stream *s, const uint8_t *buf, size_t n, bool end)
{
	if (n > OG_DATA_MAX || !s->answered)
		return BUG("oap: bad data frame");
	return stream_send(s, OAP_F_RESP | (end ? OAP_F_END : 0), s->status, buf, n);
}

int og_stream_data_ref(oap_stream *s, const uint8_t *buf, size_t n, bool end,
                       void (*cleanup)(const void *, size_t, void *), void *arg)
{
	if (n > OG_DATA_MAX || !s->answered)
		return BUG("oap: bad data frame");
	return stream_send_ref(s, OAP_F_RESP | (end ? OAP_F_END : 0), s->status, buf, n, cleanup,
	                       arg);
}

void og_stream_wait_output(oap_stream *s)
{
	s->wants_pump = true;
	if (oc_out_len(s->c) < OG_OUT_HIGH_WATER)
		conn_schedule(s->c->t);
}

void og_stream_pause(oap_stream *s)
{
	s->c->paused = true;
	s->c->pause_owner = s;
}

void og_stream_resume(oap_stream *s)
{
	if (s->c->pause_owner != s)
		return;
	s->c->paused = false;
	s->c->pause_owner = NULL;
	conn_schedule(s->c->t);
}

/* The frames already queued were verified: deliver them, then cut without
 * an END frame or close_notify, so the peer sees a truncated stream. */
void og_stream_abort(oap_stream *s)
{
	s->c->aborting = true;
	conn_set_state(s->c, OC_FLUSH);
}

static void og_stream_slow(oap_stream *s)
{
	og_count_reject(s->c->og, REJECT_TIMEOUT, "body below limits.min_body_rate");
	og_verb_release(s);   /* PUT_ABORT now, not at the sweep */
	og_stream_error(s, 408, "timeout", "request body arrived slower than limits.min_body_rate",
	                true);   /* as HTTP's 408: a faster retry may pass */
}

void og_stream_peer_key(const oap_stream *s, char *out, size_t len)
{
	util_peer_key(conn_peer(s->c->t, NULL), out, len);
}

void og_stream_corr_hex(const oap_stream *s, char out[17])
{
	snprintf(out, 17, "%016" PRIx64, s->corr_id);
}

/* ---- frames ------------------------------------------------------------- */

static int conn_protocol(oap_conn *c, const oap_frame *f, const char *msg)
{
	og_count_reject(c->og, REJECT_PROTOCOL, msg);
	conn_refuse(c, f, 400, "bad_request", msg);
	return -1;
}

/* HELLO: app 0, REQ, payload empty or a JSON object (informational). */
static int conn_on_hello(oap_conn *c, const oap_frame *f)
{
	char body[OG_HELLO_MAX];
	oap_frame r = { .flags = OAP_F_RESP, .code = 200, .app_proto_id = OG_APP_HELLO,
	                .corr_id = f->corr_id };
	json_t *j = NULL;
	bool ok = f->app_proto_id == OG_APP_HELLO && (f->flags & OAP_F_REQ) &&
	          !(f->flags & (OAP_F_RESP | OAP_F_COMP));

	if (ok && f->payload_len) {
		j = json_loadb((const char *)f->payload, f->payload_len, JSON_REJECT_DUPLICATES, NULL);
		ok = json_is_object(j);
		json_decref(j);
	}
	if (!ok) {
		og_count_reject(c->og, REJECT_HELLO, "first frame is not a HELLO");
		conn_refuse(c, f, 400, "bad_request", "the first frame must be a HELLO");
		return -1;
	}
	snprintf(body, sizeof body, "{\"max_frame\":%u,\"max_inflight\":%u,\"flags_supported\":255,"
	         "\"versions\":[1],\"transports\":[\"tcp+tls\"]}", OAP_MAX_FRAME,
	         c->og->lim.max_inflight);
	memcpy(r.tenant, f->tenant, sizeof r.tenant);
	r.payload = (const uint8_t *)body;
	r.payload_len = strlen(body);
	metrics_count("oap_requests_total", "verb=\"hello\",outcome=\"200\"", 1);
	if (conn_send(c, &r) < 0) {
		conn_set_state(c, OC_CLOSED);
		return -1;
	}
	conn_set_state(c, OC_OPEN);
	return 0;
}

/* The request a verb makes, as the wall sees it: the HTTP method and path
 * of the equivalent gateway request, so one capability means the same on
 * both protocols. PING is a probe (admin class, not gated). */
/* The START parameters the wall reads: "cid" (the path), "proof" (a holder
 * proof) and, for PUT, "expect" (what the body must hash to). The verb
 * handler parses them again strictly; here a bad one is simply absent. */
typedef struct conn_wall_params {
	char    path[96];
	char    proof[ZK_PROOF_TEXT_MAX + 1];
	uint8_t expect[B3_OUT_LEN];
} conn_wall_params;

static void conn_wall_params_read(const oap_frame *f, wall_req *rq, conn_wall_params *wp)
{
	const char *cid = NULL, *proof, *expect;
	json_t *j = NULL;

	snprintf(wp->path, sizeof wp->path, "/o");
	if (!f->payload_len || f->payload_len > OG_PARAMS_MAX ||
	    !(j = json_loadb((const char *)f->payload, f->payload_len, 0, NULL)))
		return;
	if (f->code != OG_VERB_PUT && (cid = json_string_value(json_object_get(j, "cid"))) &&
	    strlen(cid) < sizeof wp->path - 3)
		snprintf(wp->path, sizeof wp->path, "/o/%s", cid);
	if ((proof = json_string_value(json_object_get(j, "proof")))) {
		/* Too long to be a proof: kept as an empty one, which is refused. */
		snprintf(wp->proof, sizeof wp->proof, "%s",
		         strlen(proof) <= ZK_PROOF_TEXT_MAX ? proof : "");
		rq->proof = wp->proof;
		rq->proof_len = strlen(wp->proof);
	}
	if (f->code == OG_VERB_PUT && (expect = json_string_value(json_object_get(j, "expect"))) &&
	    b3_cid_parse(expect, strlen(expect), wp->expect) == 0)
		rq->body_id = wp->expect;
	json_decref(j);
}

/* The request a verb makes, as the wall sees it: the HTTP method and path
 * of the equivalent gateway request, so one capability means the same on
 * both protocols. PING is a probe (admin class, not gated). */
static bool conn_wall_req(const oap_frame *f, wall_req *rq, conn_wall_params *wp)
{
	switch (f->code) {
	case OG_VERB_GET:  rq->method = "GET"; break;
	case OG_VERB_OUTBOARD: rq->method = "GET"; break;   /* the object's metadata: as GET */
	case OG_VERB_STAT: rq->method = "HEAD"; break;
	case OG_VERB_PUT:  rq->method = "PUT"; break;
	case OG_VERB_REPLICATE: rq->method = "POST"; break;   /* peers only: tag "peer" */
	default:           return false;
	}
	conn_wall_params_read(f, rq, wp);
	rq->path = wp->path;
	rq->body_bytes = f->code == OG_VERB_PUT ? -1 : 0;
	/* PUT without "expect": the proof's digest becomes the upload's. */
	rq->body_digest_enforced = f->code == OG_VERB_PUT && !rq->body_id;
	rq->token = f->cap_len ? (const char *)f->cap : NULL;
	rq->token_len = f->cap_len;
	rq->cls = WALL_CLASS_CORE;
	return true;
}

/* Auth → Policy → Quota for one START. false: admitted, s keeps the ticket
 * until it is swept; true: refused (answered, the ticket ended). */
static bool conn_wall_refused(oap_conn *c, oap_stream *s, const oap_frame *f)
{
	struct sockaddr_storage peer;
	socklen_t plen = sizeof peer;
	char msg[WALL_MSG_MAX + 32];
	conn_wall_params wp = { .path = "" };
	wall_req rq = { 0 };
	wall_ticket *t;

	if (!c->og->wall || !conn_wall_req(f, &rq, &wp))
		return false;
	rq.peer_node = c->peer_authed;
	rq.body_max = c->og->lim.max_object;
	if (getpeername(bufferevent_getfd(c->bev), (struct sockaddr *)&peer, &plen) == 0)
		rq.peer = (const struct sockaddr *)&peer;
	SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(c->bev) : NULL;
	if (ssl && SSL_get_verify_result(ssl) == X509_V_OK)
		rq.mtls_tenant = wall_peer_tenant(c->og->wall, SSL_get0_peer_certificate(ssl));
	t = wall_check(c->og->wall, &rq, og_now_ms());
	int status = wall_ticket_status(t);
	if (status == 0) {
		s->ticket = t;
		return false;
	}
	reject_reason why = wall_ticket_reject(t);
	og_count_reject(c->og, why, reject_name(why));
	reject_count(REJECT_FAMILY_NODE, why);
	/* A capability refusal: one audit record per tenant, reason and second,
	 * as on HTTP (gateway.c). */
	if (status == 401 || status == 403) {
		const char *tenant = wall_ticket_tenant(t);
		char key[96];

		if (!tenant || !tenant[0]) {
			util_peer_key(rq.peer, key, sizeof key);
			tenant = key;
		}
		audit_count(c->og->audit, "ingress", "capability_refused", reject_name(why), tenant);
	}
	if (status == 429)
		snprintf(msg, sizeof msg, "%s; retry after %u s", wall_ticket_message(t),
		         wall_ticket_retry_after(t));
	else
		snprintf(msg, sizeof msg, "%s", wall_ticket_message(t));
	og_stream_error(s, status, wall_ticket_code(t), msg, status == 429 || status == 503);
	wall_ticket_end(t, 0);
	return true;
}

/*
 * The node-wide caps, the same rule as the HTTP core's (http.c): after the
 * wall (so a tenant's quota is charged first, as on HTTP), the request rate
 * (limits.requests_per_second → 429 with the wait) and the streams in flight
 * in this process (limits.max_inflight → 503), counted in rejected_total
 * {reason="429"|"503"} as the HTTP refusals are. PING is a probe, like the
 * admin plane: never capped. A refused stream's wall ticket ends here.
 */
static bool conn_node_limits_refused(oap_conn *c, oap_stream *s, const oap_frame *f)
{
	omnigate *og = c->og;
	uint64_t now = og_now_ms();
	char msg[96];

	if (f->code == OG_VERB_PING)
		return false;
	if (og->lim.requests_per_second && !tbucket_take(&og->rate, 1, now)) {
		reject_count(REJECT_FAMILY_NODE, REJECT_429);
		snprintf(msg, sizeof msg, "request rate limit exceeded; retry after %u s",
		         tbucket_retry_after_s(&og->rate, 1, now));
		og_stream_error(s, 429, "too_many_requests", msg, true);
	} else if (og->lim.node_inflight && og->inflight >= og->lim.node_inflight) {
		reject_count(REJECT_FAMILY_NODE, REJECT_503);
		og_stream_error(s, 503, "overloaded", "too many requests in flight; retry after 1 s",
		                true);
	} else {
		return false;
	}
	wall_ticket_end(s->ticket, 0);
	s->ticket = NULL;
	return true;
}

/* Refusals that need the stream (for corr_id, tenant, discard). */
static bool conn_start_refused(oap_conn *c, oap_stream *s, const oap_frame *f)
{
	if (c->draining) {
		og_stream_error(s, 503, "unavailable", "the node is draining", true);
	} else if (c->nactive >= c->og->lim.max_inflight) {
		og_count_reject(c->og, REJECT_INFLIGHT, NULL);
		og_stream_error(s, 429, "too_many_requests", "too many open streams", true);
	} else if (f->app_proto_id != OG_APP_OBJECTS) {
		og_stream_error(s, 400, "bad_request", "unknown app_proto_id", false);
	} else if (f->flags & OAP_F_COMP) {
		og_stream_error(s, 400, "bad_request", "START parameters must not be compressed", false);
	} else if (!og_verb_has_body(f->code) && !(f->flags & OAP_F_END)) {
		og_stream_error(s, 400, "bad_request", "this verb takes no body: flag START with END",
		                false);
	} else if (!conn_wall_refused(c, s, f) && !conn_node_limits_refused(c, s, f)) {
		return false;
	}
	return true;
}

static int conn_on_start(oap_conn *c, const oap_frame *f)
{
	oap_stream *s;

	/* Refused streams that still expect a body hold a slot until their END:
	 * at most as many again as max_inflight, then the peer is abusive. */
	if (c->ntotal >= 2u * c->og->lim.max_inflight)
		return conn_protocol(c, f, "too many streams awaiting END");
	if (!(s = stream_new(c, f))) {
		conn_set_state(c, OC_CLOSED);
		return -1;
	}
	s->req_done = (f->flags & OAP_F_END) != 0;
	if (conn_start_refused(c, s, f))
		return 0;
	s->counted = true;
	c->nactive++;
	c->og->inflight++;
	s->body_t0 = og_now_ms();
	s->body_held0 = conn_held_total(c, s->body_t0);
	og_verb_start(s, f);
	return 0;
}

static int conn_on_body(oap_conn *c, oap_stream *s, const oap_frame *f)
{
	bool end = (f->flags & OAP_F_END) != 0;
	uint8_t *plain = NULL;
	size_t n = f->payload_len;
	uint64_t cap;

	if (s->req_done)
		return conn_protocol(c, f, "frame after the stream's END");
	s->req_done = end;
	if (s->discard) {
		stream_maybe_finish(s);
		return 0;
	}
	if ((f->flags & OAP_F_COMP) &&
	    oap_decompress(f->payload, f->payload_len, OAP_COMP_MAX_OUT, &plain, &n) < 0) {
		char key[96];

		/* Audited as on HTTP (objects_put.c), aggregated per peer and second. */
		og_stream_peer_key(s, key, sizeof key);
		audit_count(c->og->audit, "ingress", "decompression_refused", "comp_caps", key);
		og_count_reject(c->og, REJECT_DECOMPRESS, NULL);
		reject_count(REJECT_FAMILY_NODE, REJECT_DECOMPRESS);
		og_stream_error(s, 413, "payload_too_large",
		                "COMP payload is corrupt or decompresses past its caps", false);
		stream_maybe_finish(s);
		return 0;
	}
	if (s->ticket && wall_ticket_body_cap(s->ticket, &cap) && n > cap - s->body_seen) {
		free(plain);
		og_count_reject(c->og, REJECT_413, "capability byte limit");
		reject_count(REJECT_FAMILY_NODE, REJECT_413);
		og_stream_error(s, 413, "payload_too_large",
		                "the request body exceeds the limit of this request's capability or policy",
		                false);
		stream_maybe_finish(s);
		return 0;
	}
	s->body_seen += n;
	s->body_rx += f->payload_len;
	og_verb_body(s, plain ? plain : f->payload, n, end);
	free(plain);
	return 0;
}

static int conn_on_frame(oap_conn *c, const oap_frame *f)
{
	oap_stream *s;

	if (c->state == OC_HELLO)
		return conn_on_hello(c, f);
	if (!(f->flags & OAP_F_REQ) || (f->flags & OAP_F_RESP))
		return conn_protocol(c, f, "a request frame must be flagged REQ");
	s = conn_find(c, f->corr_id);
	if (f->flags & OAP_F_START)
		return s ? conn_protocol(c, f, "corr_id already names an open stream")
		         : conn_on_start(c, f);
	if (!s)
		return conn_protocol(c, f, "no open stream with this corr_id");
	return conn_on_body(c, s, f);
}

/* A header announcing more than OAP_MAX_FRAME: 413 from the header alone. */
static void conn_refuse_large(oap_conn *c, const uint8_t hdr[OAP_HDR_LEN])
{
	oap_frame h;

	oap_peek_reply_to(hdr, &h);
	og_count_reject(c->og, REJECT_TOO_LARGE, NULL);
	conn_refuse(c, &h, 413, "payload_too_large", "frame larger than 1 MiB");
}

static void conn_malformed(oap_conn *c, oap_status st)
{
	og_count_reject(c->og, REJECT_MALFORMED, oap_status_str(st));
	conn_set_state(c, OC_FLUSH);
}

/* Judge the header, then (once whole) decode and handle one frame.
 * 1: handled; 0: need more bytes; -1: the connection is closing. */
static int conn_next_frame(oap_conn *c)
{
	struct evbuffer *in = conn_input(c->t);
	size_t avail = evbuffer_get_length(in), n = avail < OAP_HDR_LEN ? avail : OAP_HDR_LEN;
	uint8_t hdr[OAP_HDR_LEN], *buf;
	oap_frame f;
	oap_status st;
	size_t used = 0;
	int r;

	if (n == 0 || evbuffer_copyout(in, hdr, n) != (ev_ssize_t)n)
		return 0;
	st = oap_decode_header(hdr, n, OAP_MAX_FRAME, &f);
	if (st == OAP_NEED_MORE)
		return 0;
	if (st == OAP_E_TOO_LARGE && (hdr[0] | hdr[1] | hdr[2] | hdr[3])) {
		if (n < OAP_HDR_LEN)
			return 0;    /* wait for the corr_id to answer on (38 bytes, bounded) */
		/* Only a header that is otherwise a frame's earns a 413; text or
		 * noise that happens to read as a huge length is malformed. */
		if (oap_peek_is_shaped(hdr)) {
			conn_refuse_large(c, hdr);
			return -1;
		}
		st = OAP_E_BAD_VERSION;
	}
	if (st != OAP_OK) {
		conn_malformed(c, st);
		return -1;
	}
	if (avail < f.len)
		return 0;
	if (!(buf = evbuffer_pullup(in, (ev_ssize_t)f.len)) ||
	    (st = oap_decode(buf, f.len, OAP_MAX_FRAME, &f, &used)) != OAP_OK) {
		conn_malformed(c, st);
		return -1;
	}
	r = conn_on_frame(c, &f);
	(void)evbuffer_drain(in, used);
	c->zk_scanned = c->zk_scanned > used ? c->zk_scanned - used : 0;
	c->partial_armed = false;
	return r < 0 ? -1 : 1;
}

/* ---- the loop ---------------------------------------------------------- */

static bool conn_is_reading(const oap_conn *c)
{
	return c->state == OC_HELLO || c->state == OC_OPEN;
}

/* Read side and deadlines after a round of work. */
static void conn_update(oap_conn *c)
{
	size_t pending;
	uint64_t now;

	if (c->state == OC_OPEN && c->draining && c->ntotal == 0) {
		conn_set_state(c, OC_FLUSH);
		return;
	}
	if (!conn_is_reading(c))
		return;
	now = og_now_ms();
	if (c->paused || c->out_full) {
		conn_read(c->t, false);
		if (c->state == OC_OPEN) {
			conn_disarm(c->t);   /* we are the slow side now */
			c->partial_armed = false;
			conn_hold(c, true, now);
		}
		return;
	}
	conn_read(c->t, true);
	if (c->state != OC_OPEN)
		return;   /* HELLO's deadline is absolute from the handshake */
	conn_hold(c, false, now);
	pending = evbuffer_get_length(conn_input(c->t));
	if (pending && !c->partial_armed) {
		c->partial_armed = true;   /* absolute: trickling does not extend it */
		c->due_ms = now + c->og->lim.read_ms;
	} else if (!pending) {
		c->due_ms = now + c->og->lim.idle_ms;
	}
	conn_arm_next(c, now);
}

/*
 * Holder proofs of the START frames already buffered together (a client
 * pipelining many requests) are verified as one batch before the frames are
 * handled one by one (wall_zk_batch; docs/zk.md "Batch verification").
 * Bounded: at most OG_ZK_SCAN_MAX bytes and WALL_ZK_BATCH_MAX frames are
 * looked at; each frame is still judged in full by the wall afterwards.
 */
#define OG_ZK_SCAN_MAX    (256u * 1024u)
#define WALL_ZK_BATCH_MAX 64u

static void conn_zk_batch(oap_conn *c)
{
	struct evbuffer *in = conn_input(c->t);
	size_t avail = evbuffer_get_length(in), off = c->zk_scanned, n = 0, used;
	conn_wall_params wp[WALL_ZK_BATCH_MAX];          /* ~17 KiB of stack */
	wall_req rq[WALL_ZK_BATCH_MAX];
	const uint8_t *buf;
	oap_frame f;

	if (c->state != OC_OPEN || !c->og->wall || !wall_zk_active(c->og->wall) ||
	    avail < off + 2 * OAP_HDR_LEN)
		return;   /* each buffered frame is looked at once, not at every turn */
	if (avail > OG_ZK_SCAN_MAX)
		avail = OG_ZK_SCAN_MAX;
	if (off >= avail)
		return;
	if (!(buf = evbuffer_pullup(in, (ev_ssize_t)avail)))
		return;
	while (n < WALL_ZK_BATCH_MAX && off < avail &&
	       oap_decode(buf + off, avail - off, OAP_MAX_FRAME, &f, &used) == OAP_OK) {
		off += used;
		memset(&rq[n], 0, sizeof rq[n]);
		if ((f.flags & OAP_F_START) && (f.flags & OAP_F_REQ) && f.cap_len &&
		    conn_wall_req(&f, &rq[n], &wp[n]) && rq[n].proof)
			n++;
	}
	c->zk_scanned = off;
	if (n >= 2)
		(void)wall_zk_batch(c->og->wall, rq, n);
}

static void conn_process(oap_conn *c)
{
	if (c->in_process)
		return;
	c->in_process = true;
	conn_zk_batch(c);
	while (conn_is_reading(c) && !c->paused) {
		if (oc_out_len(c) >= OG_OUT_HIGH_WATER) {
			c->out_full = true;
			break;
		}
		if (conn_next_frame(c) <= 0)
			break;
	}
	c->in_process = false;
	conn_update(c);
}

/* GET streams waiting for output space, round-robin one frame each. */
static void conn_pump(oap_conn *c)
{
	bool more = true;

	while (more && c->state == OC_OPEN && oc_out_len(c) < OG_OUT_HIGH_WATER) {
		more = false;
		for (oap_stream *s = c->streams; s; s = s->next) {
			if (!s->wants_pump || !og_stream_live(s))
				continue;
			s->wants_pump = false;
			og_verb_pump(s);
			if (c->state != OC_OPEN)
				return;
			more = more || s->wants_pump;
			if (oc_out_len(c) >= OG_OUT_HIGH_WATER)
				return;
		}
	}
}

static bool conn_is_busy(const oap_conn *c)
{
	if (oc_out_len(c) || c->paused)
		return true;
	for (const oap_stream *s = c->streams; s; s = s->next)
		if (!s->finished && s->req_done)
			return true;   /* our turn: storage or output */
	return false;
}

/* ---- state ------------------------------------------------------------- */

/* The transport flushes (bounded by write_ms), then lingers unless this is
 * a cut; the streams are over either way. */
static void conn_enter_flush(oap_conn *c)
{
	conn_finish_all(c);
	conn_flush(c->t, !c->aborting, c->og->lim.write_ms);
}

/* The one place a connection changes state. CLOSED is terminal. */
static void conn_set_state(oap_conn *c, oc_state st)
{
	if (c->state == OC_CLOSED || (c->state >= OC_FLUSH && st < c->state))
		return;
	c->state = st;
	switch (st) {
	case OC_HANDSHAKE:
		break;   /* the transport's, with its own deadline */
	case OC_HELLO:
		conn_arm(c->t, c->og->lim.read_ms);
		conn_read(c->t, true);
		break;
	case OC_OPEN:
		conn_arm_due(c, c->og->lim.idle_ms);
		break;
	case OC_FLUSH:
		conn_enter_flush(c);
		break;
	case OC_CLOSED:
		conn_finish_all(c);
		conn_close(c->t, false);
		break;
	}
}

/* ---- transport callbacks (conn_ops) ------------------------------------ */

static void on_read(void *arg)
{
	conn_process(arg);
}

static void on_write(void *arg)
{
	oap_conn *c = arg;

	if (c->state != OC_OPEN)
		return;
	c->out_full = false;
	conn_pump(c);
	conn_process(c);
}

/* The TLS handshake is done; HELLO may have come with its last flight. A
 * peer-plane connection's verified node id is kept for the verbs. */
static void on_open(void *arg)
{
	oap_conn *c = arg;

	c->peer_authed = conn_peer_node_id(c->t, c->peer_id) == 0;
	if (c->peer_authed)
		metrics_count("oap_peer_connections_total", "", 1);
	conn_set_state(c, OC_HELLO);
	conn_process(c);
}

static void on_event(void *arg, unsigned what)
{
	oap_conn *c = arg;

	if (c->state == OC_CLOSED)
		return;
	if (what & CONN_EV_TIMEOUT)
		og_count_reject(c->og, REJECT_TIMEOUT, "write");
	if ((what & CONN_EV_EOF) && !(what & CONN_EV_ERROR) && c->state < OC_FLUSH) {
		conn_set_state(c, OC_FLUSH);   /* deliver what is queued, then close */
		return;
	}
	conn_set_state(c, OC_CLOSED);
}

static void on_timer(void *arg)
{
	oap_conn *c = arg;

	switch (c->state) {
	case OC_HELLO:
		og_count_reject(c->og, REJECT_TIMEOUT, "no HELLO");
		conn_set_state(c, OC_CLOSED);
		break;
	case OC_OPEN:
		if (og_now_ms() < c->due_ms) {   /* a stream's rate deadline came first */
			conn_cut_slow(c, og_now_ms());
			conn_arm_next(c, og_now_ms());
			break;
		}
		if (!c->partial_armed && conn_is_busy(c)) {
			conn_arm_due(c, c->og->lim.idle_ms);
			break;
		}
		if (c->partial_armed || c->ntotal)
			og_count_reject(c->og, REJECT_TIMEOUT, c->partial_armed ? "frame" : "idle");
		conn_set_state(c, OC_CLOSED);
		break;
	default:
		conn_set_state(c, OC_CLOSED);
		break;
	}
}

static void conn_destroy(oap_conn *c);

static void on_defer(void *arg)
{
	oap_conn *c = arg;

	conn_sweep(c);
	conn_pump(c);
	conn_process(c);
}

static void on_close(void *arg)
{
	conn_destroy(arg);
}

static const conn_ops oap_conn_ops = {
	.on_open = on_open,
	.on_read = on_read,
	.on_write = on_write,
	.on_event = on_event,
	.on_timer = on_timer,
	.on_defer = on_defer,
	.on_close = on_close,
};

/* ---- lifetime ---------------------------------------------------------- */

static void conn_opts_of(omnigate *og, oap_conn *c, conn_opts *o)
{
	*o = (conn_opts){
		.ops = &oap_conn_ops,
		.arg = c,
		/* Bounded input: never more than one whole frame buffered. */
		.read_max = OAP_MAX_FRAME,
		.write_low = OG_OUT_HIGH_WATER / 2,
		.write_ms = og->lim.write_ms,
		.handshake_ms = og->lim.handshake_ms,
		.linger_ms = OG_LINGER_MS,
		.linger_bytes = OG_LINGER_BYTES,
		.m_in = og->m_in,
		.m_out = og->m_out,
		.m_tls_fail = og->m_tls_fail,
		.log_rate = &og->log_rate,
		.tls_log_msg = "oap tls handshake failed",
	};
}

/* Link and start a connection whose transport is c->t. */
static oap_conn *conn_begin(omnigate *og, oap_conn *c)
{
	c->bev = conn_bev(c->t);
	c->tls = conn_is_tls(c->t);
	og_conn_added(og, c);
	c->state = OC_HANDSHAKE;
	if (conn_start(c->t))
		conn_set_state(c, OC_HELLO);
	return c;
}

oap_conn *oap_conn_new(omnigate *og, struct bufferevent *bev, bool tls)
{
	oap_conn *c = calloc(1, sizeof *c);
	conn_opts o;

	if (!c) {
		bufferevent_free(bev);
		return NULL;
	}
	c->og = og;
	conn_opts_of(og, c, &o);
	if (!(c->t = conn_adopt(og->base, bev, tls, &o))) {
		free(c);
		return NULL;
	}
	return conn_begin(og, c);
}

oap_conn *oap_conn_accept(omnigate *og, int fd, const struct sockaddr *sa, socklen_t salen)
{
	oap_conn *c = calloc(1, sizeof *c);
	conn_opts o;

	if (!c) {
		close(fd);
		return NULL;
	}
	c->og = og;
	conn_opts_of(og, c, &o);
	if (!(c->t = conn_new(og->base, fd, sa, salen, og->tls, &o))) {
		free(c);
		return NULL;
	}
	return conn_begin(og, c);
}

static void conn_destroy(oap_conn *c)
{
	conn_finish_all(c);
	conn_sweep(c);
	conn_free(c->t);
	c->t = NULL;
	og_conn_gone(c->og, c);   /* may call the drain callback: last use of og */
	free(c);
}

void oap_conn_free(oap_conn *c)
{
	if (!c)
		return;
	c->state = OC_CLOSED;
	conn_destroy(c);
}

void oap_conn_drain(oap_conn *c)
{
	c->draining = true;
	if (c->state == OC_HANDSHAKE || c->state == OC_HELLO)
		conn_set_state(c, OC_CLOSED);
	else if (c->state == OC_OPEN)
		conn_schedule(c->t);
}

oap_conn *oap_conn_next(const oap_conn *c)
{
	return c->next;
}

omnigate *oap_conn_og(const oap_conn *c)
{
	return c->og;
}

bool oap_conn_peer_node(const oap_conn *c, uint8_t id[32])
{
	if (!c->peer_authed)
		return false;
	memcpy(id, c->peer_id, sizeof c->peer_id);
	return true;
}

void oap_conn_link(oap_conn *c, oap_conn **head)
{
	c->prev = NULL;
	c->next = *head;
	if (*head)
		(*head)->prev = c;
	*head = c;
}

void oap_conn_unlink(oap_conn *c, oap_conn **head)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}
