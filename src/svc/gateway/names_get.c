/*
 * names_get.c — GET and HEAD /n/{name} (see names.h):
 *
 *   (no query)   RESOLVE (the index asks the DHT for a name it does not
 *                hold, when the node runs one) → 200 {"name","cid","seq",
 *                "node_id"}, 404 when no record is found;
 *   ?history=1   HISTORY → 200 {"name","records":[…]} oldest first, each
 *                record as above;
 *   ?fetch=1     RESOLVE, then the object as GET /o/{cid} serves it:
 *                ranges, ETag, verify before serve — it is objects_get —
 *                once STAT says this node holds it; otherwise the miss hook
 *                names_fetch_on_miss: the overlay fetches it from the
 *                network when it runs, else 404.
 *
 * Answers about names say Cache-Control: no-cache: a name moves.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/b3.h"
#include "lib/log.h"
#include "svc/gateway/names.h"

#define NAMES_CACHE_CONTROL "no-cache"

/* ---- JSON ------------------------------------------------------------------ */

/* {"cid","seq","node_id"} of rec (seq ≤ 2^53 - 1: exact in JSON). */
static json_t *names_record_obj(const name_record *rec)
{
	char cid[B3_CID_LEN + 1], id[IDENTITY_ID_TEXT];

	b3_cid_format(rec->cid, cid);
	name_record_node_id(rec, id);
	return json_pack("{s:s, s:I, s:s}", "cid", cid, "seq", (json_int_t)rec->seq, "node_id", id);
}

static char *names_dump(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return s;
}

char *names_record_json(const name_record *rec)
{
	json_t *o = json_object();

	/* "name" first: the order docs/api.md shows */
	if (o && json_object_set_new(o, "name", json_stringn(rec->name, rec->name_len)) == 0) {
		json_t *r = names_record_obj(rec);
		if (!r || json_object_update(o, r) != 0) {
			json_decref(r);
			json_decref(o);
			return NULL;
		}
		json_decref(r);
	}
	return names_dump(o);
}

static char *names_history_json(const index_result *res)
{
	json_t *o = json_object(), *list = json_array();

	if (!o || !list || json_object_set_new(o, "name", json_stringn(res->recs[0].name,
	                                                               res->recs[0].name_len)) != 0 ||
	    json_object_set(o, "records", list) != 0) {
		json_decref(list);
		json_decref(o);
		return NULL;
	}
	json_decref(list);   /* o holds it */
	for (size_t i = 0; i < res->nrecs; i++)
		if (json_array_append_new(list, names_record_obj(&res->recs[i])) != 0) {
			json_decref(o);
			return NULL;
		}
	return names_dump(o);
}

/* ---- answers ----------------------------------------------------------------- */

void names_reply_index_error(http_req *r, const index_result *res)
{
	const char *m = res->message && res->message[0] ? res->message : NULL;

	switch (res->status) {
	case 404:
		(void)http_reply_error(r, 404, "not_found", m ? m : "no such name", false, 0);
		break;
	case 503:
		(void)http_reply_error(r, 503, "unavailable", m ? m : "index unavailable", true, 1);
		break;
	case 504:
		(void)http_reply_error(r, 504, "timeout", m ? m : "name lookup timed out", true, 0);
		break;
	case 507:
		(void)http_reply_error(r, 507, "insufficient_storage", m ? m : "index full", false, 0);
		break;
	default:
		log_kv(LOG_LEVEL_ERROR, "index call failed", "status_msg", m ? m : "",
		       "corr_id", http_req_corr_id(r), LOG_END);
		(void)http_reply_error(r, 500, "internal", "index error", true, 0);
		break;
	}
}

static void names_reply_json(http_req *r, char *json)
{
	if (!json) {
		(void)http_reply_error(r, 500, "internal", "out of memory", true, 0);
		return;
	}
	(void)http_resp_header(r, "Cache-Control", NAMES_CACHE_CONTROL);
	(void)http_reply_json(r, 200, json);
	free(json);
}

/* Not held here: with the overlay running, GET /o/{cid} fetches it from the
 * network on its miss (verified per group, then served from storage). */
void names_fetch_on_miss(http_req *r, names *n, const uint8_t cid[32])
{
	if (n->objects && n->objects->ovl && n->objects->fetch_on_miss) {
		objects_get(r, n->objects, cid);
		return;
	}
	(void)http_reply_error(r, 404, "not_found",
	                       "the name's object is not held on this node (and the overlay, "
	                       "which would fetch it from the network, does not run here)",
	                       false, 0);
}

/* ?fetch=1: STAT answered. Held → serve it as GET /o/{cid}; not → the hook. */
static void names_on_stat(const stor_result *res, void *arg)
{
	names_req *q = arg;
	http_req *r = q->req;

	q->scall = NULL;
	q->awaiting = false;
	if (!r) {
		names_req_free(q);
		return;
	}
	if (res->status == 200) {
		uint8_t cid[32];
		names *n = q->n;
		memcpy(cid, q->cid, sizeof cid);
		names_req_free(q);         /* objects_get takes the request over from here */
		objects_get(r, n->objects, cid);
		return;
	}
	if (res->status == 404)
		names_fetch_on_miss(r, q->n, q->cid);
	else
		objects_reply_stor_error(r, res);
	names_req_free(q);
}

static void names_on_resolved(const index_result *res, void *arg)
{
	names_req *q = arg;
	http_req *r = q->req;

	q->call = NULL;
	q->awaiting = false;
	if (!r) {
		names_req_free(q);
		return;
	}
	if (res->status != 200) {
		names_reply_index_error(r, res);
	} else if (q->mode == NAMES_GET_HISTORY) {
		names_reply_json(r, names_history_json(res));
	} else if (q->mode == NAMES_GET_RECORD) {
		names_reply_json(r, names_record_json(&res->recs[0]));
	} else {
		memcpy(q->cid, res->recs[0].cid, sizeof q->cid);
		q->awaiting = true;
		q->scall = stor_stat(q->n->objects->stor, q->cid, names_on_stat, q);
		return;
	}
	names_req_free(q);
}

void names_get(names_req *q)
{
	q->awaiting = true;
	if (q->mode == NAMES_GET_HISTORY)
		q->call = index_history(q->n->index, q->name, q->name_len, names_on_resolved, q);
	else
		q->call = index_resolve(q->n->index, q->name, q->name_len, true, names_on_resolved, q);
}
