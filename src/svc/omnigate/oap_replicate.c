/*
 * oap_replicate.c — the REPLICATE verb (docs/oap.md): another node asks
 * this one to hold a copy of an object. Admitted only on the peer plane
 * (the connection authenticated a node id by its identity certificate) and
 * by the wall (method POST on /o/<cid>, tag "peer"); the object is fetched
 * by the overlay service exactly as on a local miss (FETCH: DHT providers,
 * verified group by group, committed with the cid as the expected id, then
 * announced), and the answer comes once it is stored here.
 *
 * The state holds the stream and the overlay call; a stream that goes away
 * cancels the call (or, when the call could not be queued and its 503 is
 * still to come, orphans the state, which that callback frees) (the fetch itself goes on in the overlay, which keeps
 * the copy).
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/metrics/metrics.h"
#include "core/objects/ovl_client.h"
#include "lib/b3.h"
#include "svc/omnigate/omnigate.h"

typedef struct og_repl {
	oap_stream *s;
	ovl_call   *call;
	uint8_t     id[B3_OUT_LEN];
} og_repl;

static void repl_count(const char *result)
{
	char labels[48];

	snprintf(labels, sizeof labels, "result=\"%s\"", result);
	metrics_count("oap_replicate_total", labels, 1);
}

static void repl_on_fetch(int status, uint64_t len, const char *message, void *arg)
{
	og_repl *r = arg;
	oap_stream *s = r->s;
	char cid[B3_CID_LEN + 1], body[B3_CID_LEN + 48];

	r->call = NULL;
	if (s)
		s->vs = NULL;
	if (og_stream_live(s)) {
		if (status == 200) {
			b3_cid_format(r->id, cid);
			snprintf(body, sizeof body, "{\"cid\":\"%s\",\"len\":%" PRIu64 "}", cid, len);
			repl_count("stored");
			(void)!og_stream_reply(s, 200, body, true);
		} else {
			repl_count(status == 404 ? "not_found" : "failed");
			og_stream_error(s, status == 404 ? 404 : status == 504 ? 504 : 502,
			                status == 404 ? "not_found" : status == 504 ? "gateway_timeout"
			                                                            : "bad_gateway",
			                message && message[0] ? message : "the copy could not be fetched",
			                status != 404);
		}
	}
	free(r);
}

void og_replicate_start(oap_stream *s, const oap_frame *f, json_t *j)
{
	omnigate *og = oap_conn_og(s->c);
	uint8_t peer[32];
	og_repl *r;
	json_t *v = json_object_get(j, "cid");

	(void)f;
	if (!oap_conn_peer_node(s->c, peer)) {
		repl_count("not_peer");
		og_stream_error(s, 403, "forbidden",
		                "REPLICATE is only taken from another node on the peer plane", false);
		return;
	}
	if (!og->ovl) {
		repl_count("no_overlay");
		og_stream_error(s, 503, "unavailable", "the overlay service is not enabled here", true);
		return;
	}
	if (!(r = calloc(1, sizeof *r))) {
		og_stream_error(s, 503, "unavailable", "out of memory", true);
		return;
	}
	if (!json_is_string(v) || b3_cid_parse(json_string_value(v), json_string_length(v), r->id) < 0) {
		free(r);
		og_stream_error(s, 400, "bad_request", "malformed object id: want b3:<64 lowercase hex>",
		                false);
		return;
	}
	r->s = s;
	s->vs = r;
	r->call = ovl_fetch(og->ovl, r->id, OVL_MODE_PIN, repl_on_fetch, r);   /* NULL: 503 comes later */
}

void og_replicate_release(oap_stream *s)
{
	og_repl *r = s->vs;

	s->vs = NULL;
	if (!r)
		return;
	if (!r->call) {      /* not queued: its 503 callback is still to come and frees r */
		r->s = NULL;
		return;
	}
	ovl_call_cancel(r->call);
	free(r);
}
