/*
 * oap_verbs.c — the object verbs of omnigate (app_proto_id 1, docs/oap.md):
 * PING, STAT, GET (verified, streamed in 64 KiB frames), PUT (streamed into
 * a storage upload file), OUTBOARD (the object's BLAKE3 chaining values,
 * checked against the id, streamed in 64 KiB frames: what a peer needs to
 * verify a GET group by group before it uses a byte).
 *
 * GET follows the gateway's verify-before-serve (svc/gateway/objects_get.c):
 * OPEN hands us blob and outboard; before the START answer the blob size is
 * checked against the stored length, the outboard against the id, and the
 * first group the answer needs against the outboard; every further group is
 * read into one 64 KiB buffer and checked before any of its bytes are
 * framed. A mismatch before the START answer → 502 "integrity"; after it →
 * the connection is cut (a client never receives a wrong body as whole).
 * Either way the object is quarantined and integrity_fail_total counts it.
 * Data frames are produced one at a time, only while the connection's
 * output is below OG_OUT_HIGH_WATER (the connection pumps the stream again
 * when the peer has read), so a GET holds one group buffer, not the object.
 *
 * PUT follows svc/gateway/objects_put.c: PUT_BEGIN (the connection reads no
 * further frames until storage has answered, so nothing queues up), body
 * frames pwritten to the upload fd (COMP frames arrive here decompressed,
 * within the codec's caps), and at END PUT_COMMIT(len, expect); storage
 * hashes the file itself. A PUT storage call is never cancelled — its
 * answer may carry an upload handle that must be aborted — so a stream that
 * goes away only orphans it and the callback cleans up.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit/audit_client.h"
#include "core/auth/wall.h"
#include "core/objects/objstore.h"
#include "lib/b3.h"
#include "lib/b3tree.h"
#include "lib/log.h"
#include "svc/omnigate/omnigate.h"

#define OG_META_MAX    128

typedef struct og_get {
	oap_stream    *s;         /* NULL once orphaned */
	omnigate      *og;
	stor_call     *call;
	bool           awaiting;
	objcache_stamp stamp;     /* taken before OPEN: may its answer be kept */
	uint16_t       verb;      /* OG_VERB_GET, _STAT or _OUTBOARD */
	bool           has_range;
	uint64_t       rs, re;    /* requested range, inclusive */
	uint8_t        id[B3_OUT_LEN];
	objv           v;         /* blob, outboard and the group buffer */
	uint64_t       len, next, end;
	bool           serving;   /* past the range check: frames may follow */
} og_get;

typedef struct og_put {
	oap_stream *s;            /* NULL once orphaned */
	omnigate   *og;
	bool        awaiting;
	objput      w;            /* upload file and handle, cap = object cap */
	bool        has_expect;
	bool        proof_bound;  /* expect is a holder proof's digest (docs/zk.md) */
	uint8_t     expect[B3_OUT_LEN];
	char        audit_key[AUDIT_AGG_KEY_MAX + 1];  /* proof_bound: tenant or ip:<addr> */
} og_put;

const char *og_verb_name(uint16_t verb)
{
	switch (verb) {
	case OG_VERB_PING: return "ping";
	case OG_VERB_STAT: return "stat";
	case OG_VERB_GET:  return "get";
	case OG_VERB_PUT:  return "put";
	case OG_VERB_OUTBOARD: return "outboard";
	case OG_VERB_REPLICATE: return "replicate";
	default:           return "unknown";
	}
}

bool og_verb_has_body(uint16_t verb)
{
	return verb == OG_VERB_PUT;
}

static void og_reply_stor_error(oap_stream *s, const stor_result *res)
{
	switch (res->status) {
	case 404:
		og_stream_error(s, 404, "not_found", "no such object", false);
		break;
	case 502:
		og_stream_error(s, 502, "integrity", "object failed verification and is quarantined",
		                false);
		break;
	case 503:   /* storage's own words: which limit (a share, the table) is full */
		og_stream_error(s, 503, "unavailable",
		                res->message && res->message[0] ? res->message : "storage unavailable",
		                true);
		break;
	case 413:
		og_stream_error(s, 413, "payload_too_large", "object exceeds the storage object cap",
		                false);
		break;
	default:
		log_kv(LOG_LEVEL_ERROR, "storage call failed", "status_msg",
		       res->message ? res->message : "", LOG_END);
		og_stream_error(s, 500, "internal", "storage error", true);
		break;
	}
}

/* ---- parameters (strict JSON) ------------------------------------------ */

/* The START payload as a JSON object whose keys are all in allowed (NULL
 * ended); an empty payload is {}. NULL when answered 400. */
static json_t *og_params(oap_stream *s, const oap_frame *f, const char *const *allowed)
{
	json_t *j;
	const char *key;
	json_t *v;

	if (f->payload_len > OG_PARAMS_MAX) {
		og_stream_error(s, 400, "bad_request", "parameters too long", false);
		return NULL;
	}
	j = f->payload_len ? json_loadb((const char *)f->payload, f->payload_len,
	                                JSON_REJECT_DUPLICATES, NULL) : json_object();
	if (!json_is_object(j)) {
		json_decref(j);
		og_stream_error(s, 400, "bad_request", "parameters must be a JSON object", false);
		return NULL;
	}
	json_object_foreach(j, key, v) {
		size_t i;

		for (i = 0; allowed[i] && strcmp(allowed[i], key) != 0; i++)
			;
		if (!allowed[i]) {
			json_decref(j);
			og_stream_error(s, 400, "bad_request", "unknown parameter", false);
			return NULL;
		}
	}
	return j;
}

/* j[key] as an object id. 0, 1 (absent and optional) or -1 (answered). */
static int og_param_cid(oap_stream *s, json_t *j, const char *key, bool required,
                        uint8_t id[B3_OUT_LEN])
{
	json_t *v = json_object_get(j, key);

	if (!v && !required)
		return 1;
	if (!json_is_string(v) ||
	    b3_cid_parse(json_string_value(v), json_string_length(v), id) < 0) {
		og_stream_error(s, 400, "bad_request", "malformed object id: want b3:<64 lowercase hex>",
		                false);
		return -1;
	}
	return 0;
}

/* "range":[S,E], inclusive, S <= E. 0/-1 (answered). */
static int og_param_range(oap_stream *s, json_t *j, og_get *g)
{
	json_t *r = json_object_get(j, "range"), *a, *b;

	if (!r)
		return 0;
	a = json_array_get(r, 0);
	b = json_array_get(r, 1);
	if (!json_is_array(r) || json_array_size(r) != 2 || !json_is_integer(a) ||
	    !json_is_integer(b) || json_integer_value(a) < 0 ||
	    json_integer_value(a) > json_integer_value(b)) {
		og_stream_error(s, 400, "bad_request", "range must be [start,end] with start <= end",
		                false);
		return -1;
	}
	g->has_range = true;
	g->rs = (uint64_t)json_integer_value(a);
	g->re = (uint64_t)json_integer_value(b);
	return 0;
}

/* ---- GET and STAT ------------------------------------------------------- */

static void get_free(og_get *g)
{
	if (g->call)
		stor_call_cancel(g->call);
	objv_close(&g->v);
	free(g);
}

/* The blob does not match its id: count, log, quarantine, then 502 or cut.
 * og_count_reject first: its rate-limited "oap refused" line came first. */
static void get_integrity_fail(og_get *g, const char *what)
{
	char corr[17];

	og_stream_corr_hex(g->s, corr);
	og_count_reject(g->og, REJECT_INTEGRITY, NULL);
	objcache_forget(g->og->cache, g->id);
	objstore_integrity_fail(g->og->stor, g->og->audit, g->id, what, corr);
	if (g->s->answered)
		og_stream_abort(g->s);
	else
		og_stream_error(g->s, 502, "integrity", "object failed verification", false);
}

/* What the reader said: 0, or -1 when answered (502 or cut for integrity,
 * 500 for stat/map, 503 for the buffer: all before the START answer). */
static int get_verdict(og_get *g, objv_result rc, const char *const *why)
{
	switch (rc) {
	case OBJV_OK:
		return 0;
	case OBJV_INTEGRITY:
		get_integrity_fail(g, *why);
		break;
	case OBJV_NOMEM:
		og_stream_error(g->s, 503, "unavailable", *why, true);
		break;
	default:
		og_stream_error(g->s, 500, "internal", *why, true);
		break;
	}
	return -1;
}

/* The requested range against the length → [next, end]. -1 when 416. */
static int get_pick_range(og_get *g)
{
	char body[OG_META_MAX + 256], corr[17];

	g->next = 0;
	g->end = g->len ? g->len - 1 : 0;
	if (!g->has_range)
		return 0;
	if (g->rs >= g->len) {
		og_stream_corr_hex(g->s, corr);
		snprintf(body, sizeof body, "{\"code\":\"range_not_satisfiable\",\"message\":\"range "
		         "outside the object\",\"retryable\":false,\"corr_id\":\"%s\",\"len\":%" PRIu64 "}",
		         corr, g->len);
		g->s->discard = !g->s->req_done;
		(void)!og_stream_reply(g->s, 416, body, true);
		return -1;
	}
	g->next = g->rs;
	g->end = g->re < g->len ? g->re : g->len - 1;
	return 0;
}

static void get_serve(og_get *g)
{
	char meta[OG_META_MAX];
	const char *why = NULL;

	/* Sizes and the outboard against the id, once per handle (objcache.h). */
	if (!objv_is_open(&g->v) &&
	    get_verdict(g, objv_open(&g->v, &g->stamp, g->id, g->len, &why), &why) < 0)
		return;
	if (get_pick_range(g) < 0)
		return;
	/* The first group, checked before the START answer (for the empty
	 * object its one empty group, against the id). */
	g->serving = true;
	if (get_verdict(g, objv_load(&g->v, g->next, &why), &why) < 0)
		return;
	if (g->len == 0) {
		(void)!og_stream_reply(g->s, 200, "{\"len\":0}", true);
		return;
	}
	snprintf(meta, sizeof meta, "{\"len\":%" PRIu64 ",\"start\":%" PRIu64 ",\"end\":%" PRIu64 "}",
	         g->len, g->next, g->end);
	if (og_stream_reply(g->s, g->has_range ? 206 : 200, meta, false) == 0)
		og_stream_wait_output(g->s);
}

/* OUTBOARD: the outboard checked against the id (objv_open: sizes by
 * fstat, then b3tree_outboard_ok), then {"len":N,"groups":G} and the
 * 32-byte chaining values in frames of at most OG_DATA_MAX. A one-group
 * object's single CV proves nothing and is sent all the same: the peer
 * checks that object's bytes against the id itself. */
static void outboard_serve(og_get *g)
{
	char meta[OG_META_MAX];
	const char *why = NULL;

	if (!objv_is_open(&g->v) &&
	    get_verdict(g, objv_open(&g->v, &g->stamp, g->id, g->len, &why), &why) < 0)
		return;
	g->next = 0;
	g->serving = true;
	snprintf(meta, sizeof meta, "{\"len\":%" PRIu64 ",\"groups\":%zu}", g->len,
	         b3tree_groups(g->len));
	if (og_stream_reply(g->s, 200, meta, false) == 0)
		og_stream_wait_output(g->s);
}

static void outboard_pump(og_get *g)
{
	size_t total, n;
	const uint8_t *ob = objv_outboard(&g->v, &total);
	bool last;

	if (!ob || g->next >= total) {
		(void)BUG("oap: outboard pump past its end");
		og_stream_abort(g->s);
		return;
	}
	n = total - g->next < OG_DATA_MAX ? (size_t)(total - g->next) : OG_DATA_MAX;
	last = g->next + n == total;
	if (og_stream_data(g->s, ob + g->next, n, last) < 0)
		return;
	g->next += n;
	if (!last)
		og_stream_wait_output(g->s);
}

static void get_on_stor(const stor_result *res, void *arg)
{
	og_get *g = arg;
	char meta[OG_META_MAX];
	bool stat_only = g->verb == OG_VERB_STAT;
	int blob = stat_only ? -1 : res->fds[0], ob = stat_only ? -1 : res->fds[1];

	g->call = NULL;
	g->awaiting = false;
	objv_adopt(&g->v, blob, ob);
	if (!g->s) {
		get_free(g);   /* orphan: closes the fds */
		return;
	}
	if (!og_stream_live(g->s))
		return;        /* the sweep frees it */
	if (res->status != 200) {
		og_reply_stor_error(g->s, res);
		return;
	}
	g->len = res->len;
	if (stat_only) {
		snprintf(meta, sizeof meta, "{\"len\":%" PRIu64 "}", res->len);
		(void)!og_stream_reply(g->s, 200, meta, true);
		return;
	}
	if (blob < 0 || ob < 0) {
		(void)BUG("storage OPEN answered 200 without two fds");
		og_stream_error(g->s, 500, "internal", "storage error", true);
		return;
	}
	if (g->verb == OG_VERB_OUTBOARD)
		outboard_serve(g);
	else
		get_serve(g);
}

void og_verb_pump(oap_stream *s)
{
	og_get *g = s->vs;
	const char *why = NULL;
	const uint8_t *p;
	size_t n;
	bool last;

	if (!g || (s->verb != OG_VERB_GET && s->verb != OG_VERB_OUTBOARD) || !og_stream_live(s) ||
	    !g->serving)
		return;
	if (s->verb == OG_VERB_OUTBOARD) {
		outboard_pump(g);
		return;
	}
	if (get_verdict(g, objv_load(&g->v, g->next, &why), &why) < 0)
		return;
	/* The verified buffer itself goes out (objv_take: no copy). */
	p = objv_take(&g->v, g->next, g->end - g->next + 1, &n);
	last = g->next + n > g->end;
	if (og_stream_data_ref(s, p, n, last, objcache_buf_release, objv_cache(&g->v)) < 0) {
		objcache_buf_release(p, n, objv_cache(&g->v));
		return;
	}
	g->next += n;
	if (!last)
		og_stream_wait_output(s);
}

/* GET, STAT and OUTBOARD: parameters, then storage STAT or OPEN. */
static void get_start(oap_stream *s, const oap_frame *f, uint16_t verb)
{
	static const char *const get_keys[] = { "cid", "range", "proof", NULL };
	static const char *const cid_keys[] = { "cid", "proof", NULL };
	omnigate *og = oap_conn_og(s->c);
	bool stat_only = verb == OG_VERB_STAT;
	json_t *j = og_params(s, f, verb == OG_VERB_GET ? get_keys : cid_keys);
	og_get *g;
	objh *h;

	if (!j)
		return;
	if (!(g = calloc(1, sizeof *g))) {
		json_decref(j);
		og_stream_error(s, 503, "unavailable", "out of memory", true);
		return;
	}
	g->s = s;
	g->og = og;
	objv_init(&g->v, og->cache);
	g->verb = verb;
	if (og_param_cid(s, j, "cid", true, g->id) < 0 ||
	    (verb == OG_VERB_GET && og_param_range(s, j, g) < 0)) {
		json_decref(j);
		free(g);
		return;
	}
	json_decref(j);
	if (!og->stor) {
		free(g);
		og_stream_error(s, 503, "unavailable", "storage unavailable", true);
		return;
	}
	s->vs = g;
	if (!stat_only && (h = objcache_find(og->cache, g->id))) {
		g->len = h->len;   /* an open handle: no storage round trip */
		objv_attach(&g->v, h);
		if (verb == OG_VERB_OUTBOARD)
			outboard_serve(g);
		else
			get_serve(g);
		return;
	}
	g->awaiting = true;
	g->stamp = objcache_stamp_now(og->cache);
	g->call = stat_only ? stor_stat(og->stor, g->id, get_on_stor, g)
	                    : stor_open(og->stor, g->id, get_on_stor, g);
}

/* A call that could not be queued has no handle: its callback still comes. */
static void get_release(og_get *g)
{
	if (g->awaiting && !g->call)
		g->s = NULL;
	else
		get_free(g);
}

/* ---- PUT ---------------------------------------------------------------- */

/* Give the upload back to storage (PUT_ABORT, nothing to wait for). */
static void put_free(og_put *p)
{
	objput_abort(&p->w);
	free(p);
}

static void put_fail(og_put *p, int status, const char *code, const char *msg)
{
	objput_abort(&p->w);
	og_stream_error(p->s, status, code, msg, status >= 500);
}

static int put_write(og_put *p, const uint8_t *data, size_t n)
{
	switch (objput_write(&p->w, data, n)) {
	case OBJPUT_OK:
		return 0;
	case OBJPUT_TOO_LARGE:
		reject_count(REJECT_FAMILY_NODE, REJECT_413);
		put_fail(p, 413, "payload_too_large", "object exceeds the object size cap");
		return -1;
	default:
		put_fail(p, 503, "unavailable", "storage cannot take the object now");
		return -1;
	}
}

static void put_on_commit(const stor_result *res, void *arg)
{
	og_put *p = arg;
	char cid[B3_CID_LEN + 1], body[B3_CID_LEN + 16];

	p->awaiting = false;
	/* The proof's binding is judged now that storage hashed the body; a
	 * mismatch is audited like the wall's own refusals (oap_conn.c), even when
	 * the client is gone. */
	if (p->proof_bound && (res->status == 200 || res->status == 422))
		wall_ticket_proof_settled(res->status == 200, p->og->audit, p->audit_key);
	if (!p->s) {
		put_free(p);
		return;
	}
	if (!og_stream_live(p->s))
		return;
	if (res->status == 422 && p->proof_bound) {
		og_count_reject(p->og, REJECT_UNAUTH, "holder proof refused (binding)");
		og_stream_error(p->s, 401, "unauthenticated", WALL_ZK_BINDING_MESSAGE, false);
		return;
	}
	if (res->status == 422) {
		og_stream_error(p->s, 422, "hash_mismatch", "body does not hash to the expected id",
		                false);
		return;
	}
	if (res->status != 200) {
		og_reply_stor_error(p->s, res);
		return;
	}
	b3_cid_format(res->id, cid);
	snprintf(body, sizeof body, "{\"cid\":\"%s\"}", cid);
	(void)!og_stream_reply(p->s, res->created ? 201 : 200, body, true);
}

static void put_commit(og_put *p)
{
	p->awaiting = true;
	objput_commit(&p->w, p->has_expect ? p->expect : NULL, put_on_commit, p);
}

static void put_on_begin(const stor_result *res, void *arg)
{
	og_put *p = arg;

	p->awaiting = false;
	objput_begun(&p->w, res);
	if (!p->s) {
		put_free(p);   /* orphan: aborts the upload storage just opened */
		return;
	}
	og_stream_resume(p->s);
	if (!og_stream_live(p->s))
		return;
	if (res->status != 200)
		og_reply_stor_error(p->s, res);
	else if (!objput_has_fd(&p->w))
		put_fail(p, 500, "internal", "storage error");
	else if (p->s->req_done)
		put_commit(p);   /* START|END: the empty object */
}

void og_verb_body(oap_stream *s, const uint8_t *data, size_t n, bool end)
{
	og_put *p = s->vs;

	if (!p || s->verb != OG_VERB_PUT || !og_stream_live(s) || p->awaiting)
		return;
	if (n && put_write(p, data, n) < 0)
		return;
	if (end)
		put_commit(p);
}

/* PUT_BEGIN on behalf of the stream's tenant (the wall's quota key) and
 * the connection's client address: storage holds each to its share of the
 * upload slots. */
static void put_begin(og_put *p)
{
	char peer[STOR_KEY_MAX];

	og_stream_peer_key(p->s, peer, sizeof peer);
	objput_begin(&p->w, p->s->ticket ? wall_ticket_tenant(p->s->ticket) : NULL, peer,
	             put_on_begin, p);
}

static void put_start(oap_stream *s, const oap_frame *f)
{
	static const char *const keys[] = { "expect", "proof", NULL };
	omnigate *og = oap_conn_og(s->c);
	json_t *j = og_params(s, f, keys);
	og_put *p;
	int rc;

	if (!j)
		return;
	if (!(p = calloc(1, sizeof *p))) {
		json_decref(j);
		og_stream_error(s, 503, "unavailable", "out of memory", true);
		return;
	}
	rc = og_param_cid(s, j, "expect", false, p->expect);
	json_decref(j);
	if (rc < 0 || !og->stor) {
		free(p);
		if (rc >= 0)
			og_stream_error(s, 503, "unavailable", "storage unavailable", true);
		return;
	}
	p->s = s;
	p->og = og;
	objput_init(&p->w, og->stor, og->lim.max_object);
	p->has_expect = rc == 0;
	/* A holder proof bound the body to its digest (the wall checked it
	 * equals "expect" when both were sent): storage holds the upload to it. */
	if (!p->has_expect && s->ticket && wall_ticket_body_digest(s->ticket, p->expect)) {
		p->has_expect = p->proof_bound = true;
		/* an admitted ticket always has its quota key (t:, tid: or ip:) */
		snprintf(p->audit_key, sizeof p->audit_key, "%s", wall_ticket_tenant(s->ticket));
	}
	s->vs = p;
	p->awaiting = true;
	og_stream_pause(s);   /* no body frame is read before storage has answered */
	put_begin(p);
}

/* ---- dispatch ----------------------------------------------------------- */

static void ping_start(oap_stream *s, const oap_frame *f)
{
	static const char *const keys[] = { NULL };
	json_t *j = og_params(s, f, keys);

	if (!j)
		return;
	json_decref(j);
	(void)!og_stream_reply(s, 200, "{}", true);
}

void og_verb_start(oap_stream *s, const oap_frame *f)
{
	switch (f->code) {
	case OG_VERB_PING:
		ping_start(s, f);
		break;
	case OG_VERB_STAT:
	case OG_VERB_GET:
	case OG_VERB_OUTBOARD:
		get_start(s, f, f->code);
		break;
	case OG_VERB_PUT:
		put_start(s, f);
		break;
	case OG_VERB_REPLICATE: {
		static const char *const keys[] = { "cid", NULL };
		json_t *j = og_params(s, f, keys);

		if (j)
			og_replicate_start(s, f, j);
		json_decref(j);
		break;
	}
	default:
		og_stream_error(s, 400, "bad_request", "unknown verb", false);
		break;
	}
}

void og_verb_release(oap_stream *s)
{
	void *vs = s->vs;

	s->vs = NULL;
	if (!vs)
		return;
	if (s->verb == OG_VERB_REPLICATE) {
		s->vs = vs;
		og_replicate_release(s);
		return;
	}
	if (s->verb == OG_VERB_PUT) {
		og_put *p = vs;

		if (p->awaiting)
			p->s = NULL;   /* never cancelled: the callback frees */
		else
			put_free(p);
	} else {
		get_release(vs);
	}
}
