/*
 * objects.c — the gateway's object routes: the table the HTTP core matches
 * (path and methods), the dispatch from a matched route to the GET or PUT
 * handler, and the answers both share. The handlers themselves are
 * objects_get.c (verify before serve) and objects_put.c (stream to storage).
 *
 *   POST /o, PUT /o       new object from the body (201) or existing (200)
 *   PUT  /o/{b3}          body must hash to the id (422 otherwise)
 *   GET, HEAD /o/{b3}     verified before served
 *   OPTIONS on both       CORS preflight (cors.c), no token needed
 *
 * The core answers 405 (with Allow) for any other method on these paths and
 * 404 for any other path. Every route is HTTP_ROUTE_STREAM_BODY (the gateway
 * never buffers a request body) and HTTP_ROUTE_UPLOAD: a PUT/POST body is
 * capped by storage.max_object, not limits.max_body.
 */
#include <string.h>

#include "core/metrics/metrics.h"
#include "core/metrics/reject.h"
#include "lib/b3.h"
#include "lib/log.h"
#include "svc/gateway/cors.h"
#include "svc/gateway/objects.h"

#define OBJECTS_ID_PREFIX "/o/"
#define OBJECTS_M_NEW     (HTTP_M_POST | HTTP_M_PUT)               /* /o */
#define OBJECTS_M_ID      (HTTP_M_GET | HTTP_M_HEAD | HTTP_M_PUT)  /* /o/{b3} */

/* ---- dispatch --------------------------------------------------------- */

static void objects_on_put(http_req *r, void *arg)
{
	objects *o = arg;

	if (http_req_method_bit(r) == HTTP_M_OPTIONS) {
		cors_preflight(r, o->cors, OBJECTS_M_NEW);
		return;
	}
	objects_put(r, o, NULL);
}

/* /o/{b3}: the path remainder must be a strict id ("b3:" + 64 lowercase
 * hex); uppercase, percent-encoding or any other length is a 400. */
static void objects_on_id(http_req *r, void *arg)
{
	const char *rest = http_req_path(r) + strlen(OBJECTS_ID_PREFIX);  /* prefix route */
	uint8_t id[B3_OUT_LEN];
	objects *o = arg;
	unsigned m = http_req_method_bit(r);

	/* The CORS headers of GET/PUT were added by the gate (cors_gate). */
	if (m == HTTP_M_OPTIONS) {
		cors_preflight(r, o->cors, OBJECTS_M_ID);
		return;
	}
	if (b3_cid_parse(rest, strlen(rest), id) < 0) {
		reject_count(REJECT_FAMILY_NODE, REJECT_BAD_REQUEST);
		(void)http_reply_error(r, 400, "bad_request",
		                       "malformed object id: want b3:<64 lowercase hex>", false, 0);
		return;
	}
	if (m == HTTP_M_PUT)
		objects_put(r, o, id);
	else
		objects_get(r, o, id);
}

void objects_routes(objects *o, http_route out[OBJECTS_NROUTES])
{
	out[0] = (http_route){ OBJECTS_M_NEW | HTTP_M_OPTIONS, "/o", "/o",
	                       HTTP_ROUTE_STREAM_BODY | HTTP_ROUTE_UPLOAD, objects_on_put, o };
	out[1] = (http_route){ OBJECTS_M_ID | HTTP_M_OPTIONS, OBJECTS_ID_PREFIX, "/o/{b3}",
	                       HTTP_ROUTE_PREFIX | HTTP_ROUTE_STREAM_BODY | HTTP_ROUTE_UPLOAD,
	                       objects_on_id, o };
}

/* ---- shared answers ------------------------------------------------------ */

void objects_etag(const uint8_t id[32], char out[OBJECTS_ETAG_LEN + 1])
{
	out[0] = '"';
	b3_hex(id, out + 1);
	out[1 + B3_HEX_LEN] = '"';
	out[2 + B3_HEX_LEN] = '\0';
}

void objects_reply_ovl_error(http_req *r, int status, const char *message)
{
	switch (status) {
	case 404:
		(void)http_reply_error(r, 404, "not_found",
		                       "no such object here, and no provider of it is known", false, 0);
		break;
	case 502:
		(void)http_reply_error(r, 502, "bad_gateway", message, true, 0);
		break;
	case 504:
		(void)http_reply_error(r, 504, "gateway_timeout", message, true, 0);
		break;
	default:
		(void)http_reply_error(r, 503, "unavailable", message && message[0] ? message :
		                       "overlay unavailable", true, 1);
		break;
	}
}

void objects_reply_stor_error(http_req *r, const stor_result *res)
{
	switch (res->status) {
	case 404:
		(void)http_reply_error(r, 404, "not_found", "no such object", false, 0);
		break;
	case 502:
		(void)http_reply_error(r, 502, "integrity",
		                       "object failed verification and is quarantined", false, 0);
		break;
	case 503:   /* storage's own words: which limit (a share, the table) is full */
		(void)http_reply_error(r, 503, "unavailable",
		                       res->message && res->message[0] ? res->message
		                                                       : "storage unavailable", true, 1);
		break;
	case 413:
		(void)http_reply_error(r, 413, "payload_too_large",
		                       "object exceeds the storage object cap", false, 0);
		break;
	default:
		log_kv(LOG_LEVEL_ERROR, "storage call failed", "status_msg",
		       res->message ? res->message : "", "corr_id", http_req_corr_id(r), LOG_END);
		(void)http_reply_error(r, 500, "internal", "storage error", true, 0);
		break;
	}
}
