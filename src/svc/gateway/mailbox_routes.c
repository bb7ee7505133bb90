/*
 * mailbox_routes.c — the gateway's mailbox routes (see mailbox_routes.h):
 * the path and query, the send body, the owner check, and the answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>

#include "core/auth/wall.h"
#include "core/metrics/metrics.h"
#include "core/metrics/reject.h"
#include "lib/b3.h"
#include "svc/gateway/mailbox_routes.h"

#define MBOX_PREFIX   "/mb/"
#define MBOX_SEGS_MAX 4

typedef enum { MBOX_SEND, MBOX_RECV, MBOX_ACK, MBOX_NACK, MBOX_DLQ, MBOX_REQUEUE } mbox_op;

typedef struct mbox_req {
	mbox     *mb;
	http_req *req;          /* NULL once the client is gone */
	mb_call  *call;
	bool      awaiting;
	mbox_op   op;
	mb_req    q;
	uint8_t   *json;        /* a send's request body (MBOX_JSON_MAX) */
	size_t    json_len;
	uint8_t   *body;        /* a send's message body, decoded (MB_BODY_MAX) */
} mbox_req;

/* ---- refusals ---------------------------------------------------------------- */

static void mbox_bad(http_req *r, int status, const char *reason, const char *code,
                     const char *msg)
{
	char labels[64];

	snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
	metrics_count("mailbox_refused_total", labels, 1);
	reject_count(REJECT_FAMILY_NODE, status == 413 ? REJECT_413 :
	                                 status == 415 ? REJECT_415 :
	                                 status == 403 ? REJECT_FORBIDDEN : REJECT_BAD_REQUEST);
	(void)http_reply_error(r, status, code, msg, false, 0);
}

static void mbox_req_free(mbox_req *x)
{
	if (x->call)
		mb_call_cancel(x->call);
	free(x->json);
	free(x->body);
	free(x);
}

static void mbox_on_close(http_req *r, void *arg)
{
	mbox_req *x = arg;

	(void)r;
	x->req = NULL;
	if (x->awaiting && !x->call)
		return;   /* the callback still comes, and frees */
	mbox_req_free(x);
}

/* ---- the path -------------------------------------------------------------------- */

/* Split the path after the prefix at '/': at most MBOX_SEGS_MAX segments,
 * none empty. The number, or -1. */
static int mbox_split(const char *s, const char *seg[MBOX_SEGS_MAX], size_t len[MBOX_SEGS_MAX])
{
	int n = 0;

	while (*s) {
		const char *e = strchr(s, '/');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		if (l == 0 || n == MBOX_SEGS_MAX)
			return -1;
		seg[n] = s;
		len[n++] = l;
		s += l + (e ? 1 : 0);
		if (e && !*s)
			return -1;   /* a trailing '/' */
	}
	return n;
}

static bool seg_is(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && memcmp(s, word, n) == 0;
}

/* Which route, the mailbox name and the id. -1: answered. */
static int mbox_route(http_req *r, mbox_req *x, char name[MB_NAME_MAX + 1], uint64_t *id)
{
	const char *seg[MBOX_SEGS_MAX];
	size_t len[MBOX_SEGS_MAX];
	bool post = http_req_method_bit(r) == HTTP_M_POST;
	int n = mbox_split(http_req_path(r) + strlen(MBOX_PREFIX), seg, len);
	char msg[96];
	const char *ids = NULL;
	size_t idn = 0;

	if (n < 1) {
		mbox_bad(r, 404, "bad_route", "not_found", "no such mailbox route (docs/api.md)");
		return -1;
	}
	if (n == 1)
		x->op = post ? MBOX_SEND : MBOX_RECV;
	else if (n == 2 && !post && seg_is(seg[1], len[1], "dlq"))
		x->op = MBOX_DLQ;
	else if (n == 3 && post && seg_is(seg[2], len[2], "ack"))
		x->op = MBOX_ACK, ids = seg[1], idn = len[1];
	else if (n == 3 && post && seg_is(seg[2], len[2], "nack"))
		x->op = MBOX_NACK, ids = seg[1], idn = len[1];
	else if (n == 4 && post && seg_is(seg[1], len[1], "dlq") && seg_is(seg[3], len[3], "requeue"))
		x->op = MBOX_REQUEUE, ids = seg[2], idn = len[2];
	else {
		mbox_bad(r, 404, "bad_route", "not_found", "no such mailbox route (docs/api.md)");
		return -1;
	}
	if (mb_name_check(seg[0], len[0], msg, sizeof msg) != 0) {
		mbox_bad(r, 400, "bad_name", "bad_request", msg);
		return -1;
	}
	memcpy(name, seg[0], len[0]);
	name[len[0]] = '\0';
	if (ids && mb_id_parse(ids, idn, id) != 0) {
		mbox_bad(r, 400, "bad_id", "bad_request",
		         "bad message id: want the 16 lowercase hex digits a receive returned");
		return -1;
	}
	return 0;
}

/* {me}: the tenant the wall judged this request to be. -1: answered 403. */
static int mbox_owner(http_req *r, const char *name)
{
	const char *t = http_req_gate_ticket(r) ? wall_ticket_tenant(http_req_gate_ticket(r)) : NULL;

	if (t && strncmp(t, "t:", 2) == 0 && strcmp(t + 2, name) == 0)
		return 0;
	mbox_bad(r, 403, "not_owner", "forbidden",
	         "a mailbox is read and settled only by its owner: the token's tenant must be "
	         "the mailbox name");
	return -1;
}

/* ---- the query --------------------------------------------------------------------- */

/* "30s", "500ms", "2m" or plain seconds "30". 0/-1. */
static int mbox_duration(const char *s, size_t n, uint64_t *ms)
{
	uint64_t v = 0, mul = 1000;
	size_t i = 0;

	for (; i < n && s[i] >= '0' && s[i] <= '9' && i < 9; i++)
		v = v * 10 + (uint64_t)(s[i] - '0');
	if (i == 0)
		return -1;
	if (i == n)
		mul = 1000;
	else if (n - i == 2 && s[i] == 'm' && s[i + 1] == 's')
		mul = 1;
	else if (n - i == 1 && s[i] == 's')
		mul = 1000;
	else if (n - i == 1 && s[i] == 'm')
		mul = 60000;
	else
		return -1;
	*ms = v * mul;
	return 0;
}

static int mbox_uint(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;

	if (n == 0 || n > 4)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* One key=value of the query. -1: answered. */
static int mbox_param(http_req *r, mbox_req *x, const char *k, size_t kn, const char *v,
                      size_t vn, unsigned *max, uint64_t *lease)
{
	char msg[128];

	if (kn == 3 && memcmp(k, "max", 3) == 0) {
		if (mbox_uint(v, vn, max) != 0 || *max < 1 || *max > MB_BATCH_MAX) {
			snprintf(msg, sizeof msg, "max: want an integer from 1 to %u", MB_BATCH_MAX);
			mbox_bad(r, 400, "bad_max", "bad_request", msg);
			return -1;
		}
		return 0;
	}
	if (x->op == MBOX_RECV && kn == 5 && memcmp(k, "lease", 5) == 0) {
		if (mbox_duration(v, vn, lease) != 0 || *lease < 1 || *lease > x->mb->lease_max_ms) {
			snprintf(msg, sizeof msg, "lease: want a duration (\"30s\", \"500ms\", \"2m\") "
			         "from 1ms to mailbox.lease_max (%llu ms)",
			         (unsigned long long)x->mb->lease_max_ms);
			mbox_bad(r, 400, "bad_lease", "bad_request", msg);
			return -1;
		}
		return 0;
	}
	mbox_bad(r, 400, "bad_query", "bad_request", x->op == MBOX_RECV
	         ? "unknown query parameter: GET /mb/{me} takes max and lease"
	         : x->op == MBOX_DLQ ? "unknown query parameter: GET /mb/{me}/dlq takes max"
	         : "this mailbox route takes no query");
	return -1;
}

static int mbox_query(http_req *r, mbox_req *x, unsigned *max, uint64_t *lease)
{
	const char *s = http_req_query(r);
	bool seen_max = false, seen_lease = false;

	while (*s) {
		const char *amp = strchr(s, '&'), *eq;
		size_t n = amp ? (size_t)(amp - s) : strlen(s);
		eq = memchr(s, '=', n);
		if (!eq || (x->op != MBOX_RECV && x->op != MBOX_DLQ)) {
			mbox_param(r, x, "", 0, "", 0, max, lease);
			return -1;
		}
		bool *seen = (size_t)(eq - s) == 3 ? &seen_max : &seen_lease;
		if (*seen) {
			mbox_bad(r, 400, "bad_query", "bad_request", "a query parameter appears twice");
			return -1;
		}
		*seen = true;
		if (mbox_param(r, x, s, (size_t)(eq - s), eq + 1, n - (size_t)(eq - s) - 1, max,
		               lease) != 0)
			return -1;
		s += n + (amp ? 1 : 0);
	}
	return 0;
}

/* ---- answers --------------------------------------------------------------------------- */

static void mbox_reply_error(http_req *r, const mb_result *res)
{
	bool retry = res->status == 503 || res->status == 504 ||
	             strcmp(res->code, "idempotency_pending") == 0;

	(void)http_reply_error(r, res->status, res->code[0] ? res->code : "internal",
	                       res->message, retry || res->status == 429, 1);
}

static void mbox_reply_json(http_req *r, int status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	if (!s)
		(void)http_reply_error(r, 500, "internal", "out of memory", true, 0);
	else
		(void)http_reply_json(r, status, s);
	free(s);
	json_decref(j);
}

static json_t *mbox_item_json(const mb_item *it, const uint8_t *body, bool lease)
{
	char id[MB_ID_TEXT], cid[B3_CID_LEN + 1];
	json_t *o = json_object();

	mb_id_format(it->id, id);
	json_object_set_new(o, "id", json_string(id));
	json_object_set_new(o, "from", json_string(it->sender));
	json_object_set_new(o, "sent_ms", json_integer((json_int_t)it->sent_ms));
	json_object_set_new(o, "deliveries", json_integer(it->deliveries));
	if (lease)
		json_object_set_new(o, "lease_until_ms", json_integer((json_int_t)it->lease_until_ms));
	if (it->kind == MB_KIND_CID) {
		b3_cid_format(it->cid, cid);
		json_object_set_new(o, "cid", json_string(cid));
	} else if (it->kind == MB_KIND_TEXT) {
		json_object_set_new(o, "body", json_stringn(it->body_len ? (const char *)body : "",
		                                            it->body_len));
	} else {
		size_t bl = sodium_base64_ENCODED_LEN(it->body_len, sodium_base64_VARIANT_ORIGINAL);
		char *b = malloc(bl);
		if (b)
			sodium_bin2base64(b, bl, body, it->body_len, sodium_base64_VARIANT_ORIGINAL);
		json_object_set_new(o, "body_b64", b ? json_string(b) : json_null());
		free(b);
	}
	return o;
}

static void mbox_reply_items(http_req *r, const mb_result *res, bool lease)
{
	json_t *arr = json_array(), *top = json_object();
	size_t off = 0;

	for (unsigned i = 0; i < res->rep->u.items.n; i++) {
		const mb_item *it = &res->rep->u.items.items[i];
		json_array_append_new(arr, mbox_item_json(it, res->bodies ? res->bodies + off : NULL,
		                                          lease));
		off += it->body_len;
	}
	json_object_set_new(top, "messages", arr);
	mbox_reply_json(r, 200, top);
}

static void mbox_reply_ok(http_req *r, mbox_req *x, const mb_result *res)
{
	char id[MB_ID_TEXT];

	switch (x->op) {
	case MBOX_SEND:
		mb_id_format(res->rep->u.send.id, id);
		if (res->rep->u.send.replay)
			(void)http_resp_header(r, "Idempotent-Replayed", "true");
		mbox_reply_json(r, 201, json_pack("{s:s, s:s, s:I}", "id", id, "recipient",
		                                  x->q.u.send.recipient, "sent_ms",
		                                  (json_int_t)res->rep->u.send.sent_ms));
		return;
	case MBOX_RECV:
	case MBOX_DLQ:
		mbox_reply_items(r, res, x->op == MBOX_RECV);
		return;
	case MBOX_NACK:
		mb_id_format(x->q.u.id.id, id);
		mbox_reply_json(r, 200, json_pack("{s:s, s:b, s:I}", "id", id, "dlq",
		                                  res->rep->u.nack.dlq, "visible_ms",
		                                  (json_int_t)res->rep->u.nack.visible_ms));
		return;
	default:   /* ACK, REQUEUE */
		mb_id_format(x->q.u.id.id, id);
		mbox_reply_json(r, 200, json_pack("{s:s, s:s}", "id", id, "state",
		                                  x->op == MBOX_ACK ? "acked" : "requeued"));
		return;
	}
}

static void mbox_on_result(const mb_result *res, void *arg)
{
	mbox_req *x = arg;
	http_req *r = x->req;

	x->call = NULL;
	x->awaiting = false;
	if (r) {
		if (res->status != 200)
			mbox_reply_error(r, res);
		else
			mbox_reply_ok(r, x, res);
	}
	mbox_req_free(x);
}

static void mbox_call(mbox_req *x)
{
	x->awaiting = true;
	x->call = mb_call_start(x->mb->mb, &x->q, mbox_on_result, x);
}

/* ---- the send body ------------------------------------------------------------------------- */

/* Exactly one of "body" (text), "body_b64", "cid". -1 with status and msg. */
static int mbox_parse_send(mbox_req *x, int *status, char *msg, size_t msglen)
{
	json_error_t je;
	json_t *j = json_loadb((const char *)x->json, x->json_len, JSON_REJECT_DUPLICATES, &je);
	const char *key;
	json_t *v;
	mb_req_send *s = &x->q.u.send;
	size_t n = 0, fields = j && json_is_object(j) ? json_object_size(j) : 0;
	int rc = -1;

	*status = 400;
	if (!j || !json_is_object(j) || fields != 1) {
		snprintf(msg, msglen, "body: want a JSON object with exactly one of \"body\", "
		         "\"body_b64\", \"cid\"%s", fields > 1 ? " (unknown or extra field)" : "");
		goto out;
	}
	json_object_foreach(j, key, v) {
		if (!json_is_string(v)) {
			snprintf(msg, msglen, "body: \"%s\" must be a string", key);
		} else if (strcmp(key, "body") == 0) {
			n = json_string_length(v);
			s->kind = MB_KIND_TEXT;
			if (n <= x->mb->max_body)
				memcpy(x->body, json_string_value(v), n);
			rc = 0;
		} else if (strcmp(key, "body_b64") == 0) {
			s->kind = MB_KIND_BYTES;
			rc = sodium_base642bin(x->body, x->mb->max_body, json_string_value(v),
			                       json_string_length(v), NULL, &n, NULL,
			                       sodium_base64_VARIANT_ORIGINAL) == 0 ? 0 : -1;
			if (rc != 0 && json_string_length(v) / 4 * 3 > x->mb->max_body)
				n = (size_t)x->mb->max_body + 1, rc = 0;   /* too large, not malformed */
			else if (rc != 0)
				snprintf(msg, msglen, "body: \"body_b64\" is not base64 (RFC 4648, padded)");
		} else if (strcmp(key, "cid") == 0) {
			s->kind = MB_KIND_CID;
			rc = b3_cid_parse(json_string_value(v), json_string_length(v), s->cid);
			if (rc != 0)
				snprintf(msg, msglen, "body: cid: want \"b3:<64 lowercase hex>\"");
		} else {
			snprintf(msg, msglen, "body: unknown field \"%.32s\" (want \"body\", "
			         "\"body_b64\" or \"cid\")", key);
		}
	}
	if (rc == 0 && n > x->mb->max_body) {
		*status = 413;
		snprintf(msg, msglen, "message body: at most mailbox.max_body (%u) bytes",
		         x->mb->max_body);
		rc = -1;
	}
	s->body_len = (uint32_t)n;
	s->body = x->body;
out:
	json_decref(j);
	return rc;
}

static void mbox_too_large(mbox_req *x)
{
	char msg[96];

	snprintf(msg, sizeof msg, "request body: at most %u bytes of JSON", MBOX_JSON_MAX);
	mbox_bad(x->req, 413, "too_large", "payload_too_large", msg);
	mbox_req_free(x);
}

static int mbox_on_body(http_req *r, const uint8_t *data, size_t len, void *arg)
{
	mbox_req *x = arg;

	(void)r;
	if (len > MBOX_JSON_MAX - x->json_len) {
		mbox_too_large(x);
		return -1;
	}
	memcpy(x->json + x->json_len, data, len);
	x->json_len += len;
	return 0;
}

static void mbox_on_body_end(http_req *r, void *arg)
{
	mbox_req *x = arg;
	char msg[160];
	int status;

	if (mbox_parse_send(x, &status, msg, sizeof msg) != 0) {
		mbox_bad(r, status, status == 413 ? "too_large" : "bad_json",
		         status == 413 ? "payload_too_large" : "bad_request", msg);
		mbox_req_free(x);
		return;
	}
	mbox_call(x);
}

/* Sender, key, then the body. -1: answered (x freed by the caller). */
static int mbox_send_start(http_req *r, mbox_req *x)
{
	const char *key = http_req_header(r, "Idempotency-Key");
	const char *ce = http_req_header(r, "Content-Encoding");
	void *t = http_req_gate_ticket(r);
	mb_req_send *s = &x->q.u.send;

	if (key && (http_req_header_count(r, "Idempotency-Key") > 1 ||
	            !mb_idem_is_valid(key, strlen(key)))) {
		mbox_bad(r, 400, "bad_idempotency_key", "bad_request",
		         "Idempotency-Key: one field of 1 to 128 visible ASCII characters");
		return -1;
	}
	if (ce && strcasecmp(ce, "identity") != 0) {
		mbox_bad(r, 415, "bad_encoding", "unsupported_media_type",
		         "POST /mb/{recipient}: no Content-Encoding");
		return -1;
	}
	if (http_req_content_length(r) > (int64_t)MBOX_JSON_MAX) {
		char msg[96];
		snprintf(msg, sizeof msg, "request body: at most %u bytes of JSON", MBOX_JSON_MAX);
		mbox_bad(r, 413, "too_large", "payload_too_large", msg);
		return -1;
	}
	if (!(x->json = malloc(MBOX_JSON_MAX)) || !(x->body = malloc(MB_BODY_MAX))) {
		(void)http_reply_error(r, 503, "unavailable", "out of memory", true, 1);
		return -1;
	}
	snprintf(s->sender, sizeof s->sender, "%s",
	         t && wall_ticket_tenant(t)[0] ? wall_ticket_tenant(t) : "anonymous");
	snprintf(s->idem, sizeof s->idem, "%s", key ? key : "");
	http_req_on_close(r, mbox_on_close, x);
	http_req_on_body(r, mbox_on_body, mbox_on_body_end, x);
	return 0;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

static int mbox_prepare(http_req *r, mbox_req *x, const char *name, uint64_t id)
{
	unsigned max = MBOX_MAX_DEFAULT;
	uint64_t lease = x->mb->lease_default_ms < x->mb->lease_max_ms ? x->mb->lease_default_ms
	                                                              : x->mb->lease_max_ms;

	if (mbox_query(r, x, &max, &lease) != 0)
		return -1;
	if (x->op != MBOX_SEND && mbox_owner(r, name) != 0)
		return -1;
	if (x->op != MBOX_SEND && http_req_content_length(r) > 0) {
		mbox_bad(r, 400, "bad_body", "bad_request", "this mailbox route takes no body");
		return -1;
	}
	switch (x->op) {
	case MBOX_SEND:
		x->q.verb = MB_SEND;
		snprintf(x->q.u.send.recipient, sizeof x->q.u.send.recipient, "%s", name);
		return 0;
	case MBOX_RECV:
		x->q.verb = MB_RECV;
		snprintf(x->q.u.recv.recipient, sizeof x->q.u.recv.recipient, "%s", name);
		x->q.u.recv.max = (uint16_t)max;
		x->q.u.recv.lease_ms = (uint32_t)lease;
		return 0;
	case MBOX_DLQ:
		x->q.verb = MB_DLQ;
		snprintf(x->q.u.dlq.recipient, sizeof x->q.u.dlq.recipient, "%s", name);
		x->q.u.dlq.max = (uint16_t)max;
		return 0;
	default:
		x->q.verb = x->op == MBOX_ACK ? MB_ACK : x->op == MBOX_NACK ? MB_NACK : MB_REQUEUE;
		snprintf(x->q.u.id.recipient, sizeof x->q.u.id.recipient, "%s", name);
		x->q.u.id.id = id;
		return 0;
	}
}

static void mbox_on_request(http_req *r, void *arg)
{
	mbox *mb = arg;
	mbox_req *x;
	char name[MB_NAME_MAX + 1];
	uint64_t id = 0;

	if (!mb->mb) {
		(void)http_reply_error(r, 404, "not_found", "mailboxes are not served here: the node "
		                       "runs no mailbox service (services)", false, 0);
		return;
	}
	if (!(x = calloc(1, sizeof *x))) {
		(void)http_reply_error(r, 503, "unavailable", "out of memory", true, 1);
		return;
	}
	x->mb = mb;
	x->req = r;
	if (mbox_route(r, x, name, &id) != 0 || mbox_prepare(r, x, name, id) != 0 ||
	    (x->op == MBOX_SEND && mbox_send_start(r, x) != 0)) {
		mbox_req_free(x);
		return;
	}
	if (x->op == MBOX_SEND)
		return;   /* the body's end calls */
	http_req_on_close(r, mbox_on_close, x);
	mbox_call(x);
}

void mbox_routes(mbox *mb, http_route out[MBOX_NROUTES])
{
	out[0] = (http_route){ HTTP_M_GET | HTTP_M_POST, MBOX_PREFIX, "/mb/{mailbox}",
	                       HTTP_ROUTE_PREFIX | HTTP_ROUTE_STREAM_BODY, mbox_on_request, mb };
}
