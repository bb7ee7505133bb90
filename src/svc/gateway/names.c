/*
 * names.c — the gateway's name route (see names.h): the route table entry,
 * the name from the path, the query, and PUT /n/{name}.
 *
 * The path after "/n/" is percent-decoded into at most NAME_MAX_LEN bytes:
 * "%XX" (either case) is a byte, an encoded '/' ("%2F") is refused — a
 * segment boundary is always a literal '/', so the wall's prefix test on
 * the raw path ("/n/alice/") and the name the index sees ("alice/…") agree
 * — and the result must pass the name rules (core/dht/name.h), NFC
 * included. Every refusal is a 400 whose message names the rule, counted
 * in rejected_total{reason="bad_request"}.
 *
 * PUT reads its small body (at most NAMES_BODY_MAX bytes; more is 413,
 * before a byte is read when Content-Length says so) and parses it
 * strictly: a JSON object with exactly the string field "cid" holding a
 * strict b3 id (unknown fields, duplicates, other types: 400). No
 * Content-Encoding (415). Then PUBLISH to the index: 201 for a new name,
 * 200 for a new seq of a held one, with the record signed for it; and tell
 * the search service, when it runs, what the name now points at.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "core/metrics/reject.h"
#include "lib/b3.h"
#include "lib/log.h"
#include "svc/gateway/cid_body.h"
#include "svc/gateway/cors.h"
#include "svc/gateway/names.h"

#define NAMES_PREFIX "/n/"
#define NAMES_METHODS (HTTP_M_GET | HTTP_M_HEAD | HTTP_M_PUT)

/* ---- request state ------------------------------------------------------- */

void names_req_free(names_req *q)
{
	if (q->call)
		index_call_cancel(q->call);
	if (q->scall)
		stor_call_cancel(q->scall);
	free(q);
}

/* The client went away first. A call that could not be queued has no
 * handle to cancel: its callback still comes, and frees. */
static void names_on_close(http_req *r, void *arg)
{
	names_req *q = arg;

	(void)r;
	q->req = NULL;
	if (q->awaiting && !q->call && !q->scall)
		return;
	names_req_free(q);
}

static void names_bad(http_req *r, int status, const char *code, const char *msg)
{
	reject_count(REJECT_FAMILY_NODE, status == 413 ? REJECT_413 :
	                                 status == 415 ? REJECT_415 : REJECT_BAD_REQUEST);
	(void)http_reply_error(r, status, code, msg, false, 0);
}

/* ---- the name in the path ------------------------------------------------- */

static int names_hex(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Percent-decode s into out (NAME_MAX_LEN + 1 bytes). 0, or -1 with msg. */
static int names_decode(const char *s, char *out, size_t *len, char *msg, size_t msglen)
{
	size_t n = 0;

	for (; *s; s++) {
		int c = (unsigned char)*s;
		if (c == '%') {
			int hi = names_hex(s[1]), lo = hi < 0 ? -1 : names_hex(s[2]);
			if (hi < 0 || lo < 0) {
				snprintf(msg, msglen, "bad name: malformed percent-encoding in the path");
				return -1;
			}
			c = hi << 4 | lo;
			if (c == '/') {
				snprintf(msg, msglen, "bad name: an encoded '/' (%%2F) is not allowed; "
				         "segments are separated by a literal '/'");
				return -1;
			}
			s += 2;
		}
		if (n == NAME_MAX_LEN) {
			snprintf(msg, msglen, "bad name (too_long): more than %u bytes of UTF-8",
			         NAME_MAX_LEN);
			return -1;
		}
		out[n++] = (char)c;
	}
	out[n] = '\0';
	*len = n;
	return 0;
}

/* The name of r into q, checked. -1: answered 400. */
static int names_take_name(http_req *r, names_req *q)
{
	char msg[NAME_MSG_MAX];
	const char *rest = http_req_path(r) + strlen(NAMES_PREFIX);   /* prefix route */

	if (names_decode(rest, q->name, &q->name_len, msg, sizeof msg) != 0 ||
	    name_check(q->name, q->name_len, msg, sizeof msg) != NAME_OK) {
		names_bad(r, 400, "bad_name", msg);
		return -1;
	}
	return 0;
}

/* GET/HEAD take "", "fetch=1" or "history=1"; PUT nothing. -1: answered. */
static int names_take_query(http_req *r, names_req *q)
{
	const char *qs = http_req_query(r);
	bool put = http_req_method_bit(r) == HTTP_M_PUT;

	if (!qs[0]) {
		q->mode = put ? NAMES_PUT : NAMES_GET_RECORD;
		return 0;
	}
	if (!put && strcmp(qs, "fetch=1") == 0) {
		q->mode = NAMES_GET_FETCH;
		return 0;
	}
	if (!put && strcmp(qs, "history=1") == 0) {
		q->mode = NAMES_GET_HISTORY;
		return 0;
	}
	names_bad(r, 400, "bad_request", put ? "PUT /n/{name} takes no query"
	          : "unknown query: GET /n/{name} takes ?fetch=1 or ?history=1 (one of them)");
	return -1;
}

/* ---- PUT /n/{name} --------------------------------------------------------- */

static void names_on_published(const index_result *res, void *arg)
{
	names_req *q = arg;
	http_req *r = q->req;
	char *json;

	q->call = NULL;
	q->awaiting = false;
	/* Published, whether or not the client waited for the answer: the
	 * search service indexes the name (fire and forget, docs/search.md). */
	if (res->status == 200 && res->nrecs == 1)
		objects_name_notify(q->n->objects, res->recs[0].name, res->recs[0].cid,
		                    res->recs[0].seq);
	if (!r) {
		names_req_free(q);
		return;
	}
	if (res->status != 200) {
		names_reply_index_error(r, res);
	} else if (!(json = names_record_json(&res->recs[0]))) {
		(void)http_reply_error(r, 500, "internal", "out of memory", true, 0);
	} else {
		(void)http_reply_json(r, res->created ? 201 : 200, json);
		free(json);
	}
	names_req_free(q);
}

static void names_body_refused(names_req *q)
{
	char msg[64];

	snprintf(msg, sizeof msg, "body: at most %u bytes", NAMES_BODY_MAX);
	names_bad(q->req, 413, "payload_too_large", msg);
	names_req_free(q);
}

/* Collect the body; past NAMES_BODY_MAX answer 413 and stop reading. */
static int names_on_body(http_req *r, const uint8_t *data, size_t len, void *arg)
{
	names_req *q = arg;

	(void)r;
	if (len > NAMES_BODY_MAX - q->body_len) {
		names_body_refused(q);
		return -1;
	}
	memcpy(q->body + q->body_len, data, len);
	q->body_len += len;
	return 0;
}

static void names_on_body_end(http_req *r, void *arg)
{
	names_req *q = arg;
	char msg[128];

	if (cid_body_parse(q->body, q->body_len, q->cid, msg, sizeof msg) != 0) {
		names_bad(r, 400, "bad_request", msg);
		names_req_free(q);
		return;
	}
	q->awaiting = true;
	q->call = index_publish(q->n->index, q->name, q->name_len, q->cid, names_on_published, q);
}

static void names_put(http_req *r, names_req *q)
{
	const char *ce = http_req_header(r, "Content-Encoding");
	int64_t cl = http_req_content_length(r);

	if (ce && strcasecmp(ce, "identity") != 0) {
		names_bad(r, 415, "unsupported_media_type", "PUT /n/{name}: no Content-Encoding");
		names_req_free(q);
		return;
	}
	if (cl > (int64_t)NAMES_BODY_MAX) {
		names_body_refused(q);
		return;
	}
	http_req_on_close(r, names_on_close, q);
	http_req_on_body(r, names_on_body, names_on_body_end, q);
}

/* ---- dispatch -------------------------------------------------------------- */

static void names_on_request(http_req *r, void *arg)
{
	names *n = arg;
	names_req *q;

	/* The CORS headers of GET/PUT were added by the gate (cors_gate). */
	if (http_req_method_bit(r) == HTTP_M_OPTIONS) {
		cors_preflight(r, n->objects->cors, NAMES_METHODS);
		return;
	}
	if (!n->index) {
		(void)http_reply_error(r, 404, "not_found",
		                       "names are not served here: the node runs no index service "
		                       "(services)", false, 0);
		return;
	}
	if (!(q = calloc(1, sizeof *q))) {
		(void)http_reply_error(r, 500, "internal", "out of memory", true, 0);
		return;
	}
	q->n = n;
	q->req = r;
	if (names_take_name(r, q) != 0 || names_take_query(r, q) != 0) {
		free(q);
		return;
	}
	if (q->mode == NAMES_PUT) {
		names_put(r, q);
		return;
	}
	http_req_on_close(r, names_on_close, q);
	names_get(q);
}

void names_routes(names *n, http_route out[NAMES_NROUTES])
{
	out[0] = (http_route){ NAMES_METHODS | HTTP_M_OPTIONS, NAMES_PREFIX, "/n/{name}",
	                       HTTP_ROUTE_PREFIX | HTTP_ROUTE_STREAM_BODY, names_on_request, n };
}
