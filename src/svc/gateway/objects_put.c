/*
 * objects_put.c — POST /o, PUT /o, PUT /o/{b3}: a request body becomes an
 * object, streamed to storage, never buffered whole.
 *
 * The life of an upload:
 *   headers  → Content-Encoding checked (identity, gzip, zstd; else 415),
 *              PUT_BEGIN(max_len = object cap, and the tenant and
 *              address keys storage counts the slot against: 503 past a
 *              share); the body is not read until storage has answered
 *              (no on_body registered yet, so the core leaves it in the
 *              socket);
 *   BEGIN ok → body pieces, decoded by lib/inflate when encoded, written
 *              with pwrite to the upload file storage gave us, in pieces of
 *              at most OBJSTORE_PIECE (core/objstore.c, shared with
 *              omnigate; a regular file or memfd: the write completes at
 *              once, so there is nothing to pause for);
 *   end      → fd closed, PUT_COMMIT(len, expect); storage reads the file
 *              back, computes the id itself and refuses a mismatch (422);
 *   stored   → the type: the uploader's, or libmagic's reading of the
 *              first bytes on the sniff thread (sniff.h), recorded with
 *              META_SET; then the answer.
 *
 * Caps: the wire body is capped by the core (the route is HTTP_ROUTE_UPLOAD:
 * the object cap, storage.max_object); the decoded body by the object cap
 * here (413 "payload_too_large") and by lib/inflate's 10x / 32 MiB caps
 * (413 "payload_too_large", rejected_total{reason="decompress"}).
 *
 * Failure and abort: any refusal closes the fd and sends PUT_ABORT. A
 * storage call in flight is never cancelled — its answer may carry an
 * upload handle that must be aborted — so the client's going away only
 * orphans the upload (req = NULL) and the call's callback cleans up.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/audit/audit_client.h"
#include "core/auth/wall.h"
#include "core/metrics/metrics.h"
#include "core/metrics/reject.h"
#include "core/objects/mediatype.h"
#include "core/objects/objstore.h"
#include "lib/b3.h"
#include "lib/inflate.h"
#include "lib/log.h"
#include "lib/util.h"
#include "svc/gateway/media.h"
#include "svc/gateway/sniff.h"

#define PUT_CID_JSON_MAX (B3_CID_LEN + 16)
#define PUT_LOCATION_MAX (B3_CID_LEN + 8)

typedef struct obj_put {
	objects        *o;
	http_req       *req;        /* NULL once the client is gone (orphan) */
	bool            awaiting;   /* a storage callback is still to come */
	objput          w;          /* upload file and handle, cap = object cap */
	inflate_stream *inf;        /* NULL for identity */
	bool            has_expect;
	bool            proof_bound; /* expect is a holder proof's digest (docs/zk.md) */
	uint8_t         expect[B3_OUT_LEN];
	char            audit_key[AUDIT_AGG_KEY_MAX + 1]; /* proof_bound: tenant or ip:<addr> */
	/* an error found inside the inflate sink, answered after it returns */
	int             err_status;
	const char     *err_code, *err_msg;
	uint64_t        decoded;    /* bytes out of the decoder so far */
	char            msg[128];   /* err_msg when it names a limit */
	/* The media type (docs/media.md): the uploader's, parsed, or "" to
	 * sniff from the first decoded bytes, kept in head. */
	char            ctype[MEDIATYPE_MAX];
	uint8_t        *head;       /* owned: head_cap bytes */
	size_t          head_len, head_cap;
	/* after the commit: what the answer names */
	uint8_t         id[B3_OUT_LEN];
	bool            created;
	uint64_t        len;
	objcache_stamp  asked;      /* before META_SET (media.h) */
} obj_put;

/* Release the upload (PUT_ABORT if storage holds one) and the state. */
static void put_free(obj_put *p)
{
	objput_abort(&p->w);
	inflate_stream_free(p->inf);
	free(p->head);
	free(p);
}

static void put_on_close(http_req *r, void *arg)
{
	obj_put *p = arg;

	(void)r;
	p->req = NULL;
	if (!p->awaiting)
		put_free(p);
}

/* Refuse the upload: answer (the core closes the connection if the body
 * was not read to its end) and release everything. */
static void put_fail(obj_put *p, int status, const char *code, const char *msg)
{
	if (status == 413 || status == 400)
		reject_count(REJECT_FAMILY_NODE, status == 413 ? REJECT_413 : REJECT_BAD_REQUEST);
	(void)http_reply_error(p->req, status, code, msg, status >= 500, status == 503 ? 1 : 0);
	put_free(p);
}

/* Record an error found where we cannot answer yet (inside inflate). */
static int put_defer_err(obj_put *p, int status, const char *code, const char *msg)
{
	p->err_status = status;
	p->err_code = code;
	p->err_msg = msg;
	return -1;
}

/* Append n decoded bytes to the upload file (the first ones kept for
 * sniffing). */
static int put_write(obj_put *p, const uint8_t *data, size_t n)
{
	if (p->head_len < p->head_cap) {
		size_t k = p->head_cap - p->head_len;

		k = k < n ? k : n;
		memcpy(p->head + p->head_len, data, k);
		p->head_len += k;
	}
	switch (objput_write(&p->w, data, n)) {
	case OBJPUT_OK:
		return 0;
	case OBJPUT_TOO_LARGE:
		return put_defer_err(p, 413, "payload_too_large", "object exceeds the object size cap");
	default:
		return put_defer_err(p, 503, "unavailable", "storage cannot take the object now");
	}
}

/* Decoded bytes: every byte limit counts them, not the wire bytes. The
 * request's cap (the object cap, lowered by a token's BytesLe or the
 * policy's max_body_bytes through the wall) holds here; past it decoding
 * stops at once and the answer names the limit. */
static int put_sink(const uint8_t *data, size_t len, void *arg)
{
	obj_put *p = arg;
	uint64_t cap = p->req ? http_req_body_limit(p->req) : p->o->max_object;

	p->decoded += len;
	if (p->req)
		http_req_set_body_bytes(p->req, p->decoded);
	if (p->decoded > cap) {
		snprintf(p->msg, sizeof p->msg, "decoded body exceeds %llu bytes%s",
		         (unsigned long long)cap, cap < p->o->max_object ?
		         " (the limit of this request's capability or policy)" : " (the object size cap)");
		return put_defer_err(p, 413, "payload_too_large", p->msg);
	}
	return put_write(p, data, len);
}

static void put_fail_inflate(obj_put *p, inflate_status st)
{
	switch (st) {
	case INFLATE_ERR_RATIO:
	case INFLATE_ERR_LIMIT: {
		char peer[96];
		socklen_t plen;

		/* Keyed by address, not address:port: one peer, one aggregate. */
		util_peer_key(http_req_peer(p->req, &plen), peer, sizeof peer);
		audit_count(p->o->audit, "ingress", "decompression_refused", inflate_status_str(st), peer);
		reject_count(REJECT_FAMILY_NODE, REJECT_DECOMPRESS);
		(void)http_reply_error(p->req, 413, "payload_too_large", inflate_status_str(st), false, 0);
		put_free(p);
		break;
	}
	case INFLATE_ERR_SINK:
		put_fail(p, p->err_status, p->err_code, p->err_msg);
		break;
	case INFLATE_ERR_NOMEM:
		put_fail(p, 503, "unavailable", "out of memory");
		break;
	default:
		put_fail(p, 400, "bad_request", inflate_status_str(st));
		break;
	}
}

static int put_on_data(http_req *r, const uint8_t *data, size_t len, void *arg)
{
	obj_put *p = arg;
	inflate_status st;

	(void)r;
	if (p->inf) {
		if ((st = inflate_stream_feed(p->inf, data, len)) != INFLATE_OK) {
			put_fail_inflate(p, st);
			return -1;
		}
		return 0;
	}
	if (put_write(p, data, len) < 0) {
		put_fail(p, p->err_status, p->err_code, p->err_msg);
		return -1;
	}
	return 0;
}

/* 201 (new) or 200 (there already) with the id. */
static void put_reply(obj_put *p)
{
	char cid[B3_CID_LEN + 1], body[PUT_CID_JSON_MAX], loc[PUT_LOCATION_MAX];

	b3_cid_format(p->id, cid);
	snprintf(body, sizeof body, "{\"cid\":\"%s\"}", cid);
	if (p->created) {
		snprintf(loc, sizeof loc, "/o/%s", cid);
		(void)http_resp_header(p->req, "Location", loc);
	}
	(void)http_reply_json(p->req, p->created ? 201 : 200, body);
	objects_put_notify(p->o, p->id, p->len, p->ctype, p->head, p->head_len);
	put_free(p);
}

/* The object is stored and its type settled (or none): answer, or, when
 * the client left, tell the search service all the same. */
static void put_finish(obj_put *p)
{
	if (!p->req) {
		objects_put_notify(p->o, p->id, p->len, p->ctype, p->head, p->head_len);
		put_free(p);
		return;
	}
	put_reply(p);
}

/* The type is recorded (or was already: the first stays). A failure
 * costs the type, not the object: it is stored, and served as
 * application/octet-stream (counted). */
static void put_on_meta(const stor_result *res, void *arg)
{
	obj_put *p = arg;

	p->awaiting = false;
	if (res->status != 200) {
		metrics_count("media_type_total", "source=\"unrecorded\"", 1);
		log_kv(LOG_LEVEL_WARN, "media type not recorded", "status_msg",
		       res->message ? res->message : "", LOG_END);
		p->ctype[0] = '\0';
	} else {
		snprintf(p->ctype, sizeof p->ctype, "%s", res->ctype);
		media_types_put(p->o->types, p->id, p->ctype, &p->asked);
	}
	put_finish(p);   /* the client may have left; the object is stored all the same */
}

/* Record the type picked (the first recorded stays), or answer without. */
static void put_record_type(obj_put *p)
{
	if (!p->ctype[0]) {
		put_finish(p);
		return;
	}
	p->awaiting = true;
	if (p->o->cache)
		p->asked = objcache_stamp_now(p->o->cache);
	(void)stor_meta_set(p->o->stor, p->id, p->ctype, false, put_on_meta, p);
}

/* libmagic's reading of the first bytes, from the sniff thread. */
static void put_on_sniffed(const char *ctype, void *arg)
{
	obj_put *p = arg;

	p->awaiting = false;
	if (ctype[0]) {
		metrics_count("media_type_total", "source=\"sniffed\"", 1);
		snprintf(p->ctype, sizeof p->ctype, "%s", ctype);
	} else {
		metrics_count("media_type_total", "source=\"default\"", 1);
	}
	put_record_type(p);
}

/* The uploader's type, or libmagic's reading of the first bytes on the
 * sniff thread (sniff.h) — never on the loop. A full sniff pool costs the
 * type, not the upload: none is recorded (a /media read sniffs it later). */
static void put_pick_type(obj_put *p)
{
	if (p->ctype[0]) {
		metrics_count("media_type_total", "source=\"given\"", 1);
		put_record_type(p);
		return;
	}
	if (p->head_len && p->o->sniff) {
		p->awaiting = true;   /* the client may leave; the object is stored */
		if (sniffq_submit(p->o->sniff, p->head, p->head_len, put_on_sniffed, p))
			return;
		p->awaiting = false;
		metrics_count("media_type_total", "source=\"busy\"", 1);
	} else {
		metrics_count("media_type_total", "source=\"default\"", 1);
	}
	put_finish(p);
}

static void put_on_commit(const stor_result *res, void *arg)
{
	obj_put *p = arg;

	p->awaiting = false;
	/* The proof's binding is judged now that storage hashed the body; a
	 * mismatch is audited like the wall's own refusals (gateway.c), even when
	 * the client is gone. */
	if (p->proof_bound && (res->status == 200 || res->status == 422))
		wall_ticket_proof_settled(res->status == 200, p->o->audit, p->audit_key);
	if (!p->req) {
		put_free(p);
		return;
	}
	if (res->status == 422 && p->proof_bound) {
		(void)http_resp_header(p->req, "WWW-Authenticate", WALL_CHALLENGE_INVALID_TOKEN);
		put_fail(p, 401, "unauthenticated", WALL_ZK_BINDING_MESSAGE);
		return;
	}
	if (res->status == 422) {
		put_fail(p, 422, "hash_mismatch", "body does not hash to the id in the path");
		return;
	}
	if (res->status != 200) {
		objects_reply_stor_error(p->req, res);
		put_free(p);
		return;
	}
	memcpy(p->id, res->id, B3_OUT_LEN);
	p->created = res->created;
	p->len = res->len;
	put_pick_type(p);
}

static void put_on_end(http_req *r, void *arg)
{
	obj_put *p = arg;
	inflate_status st;

	(void)r;
	if (p->inf && (st = inflate_stream_finish(p->inf)) != INFLATE_OK) {
		put_fail_inflate(p, st);
		return;
	}
	p->awaiting = true;
	objput_commit(&p->w, p->has_expect ? p->expect : NULL, put_on_commit, p);
}

static void put_on_begin(const stor_result *res, void *arg)
{
	obj_put *p = arg;

	p->awaiting = false;
	objput_begun(&p->w, res);
	if (!p->req) {
		put_free(p);  /* orphan: aborts the upload storage just opened */
		return;
	}
	if (res->status != 200) {
		objects_reply_stor_error(p->req, res);
		put_free(p);
		return;
	}
	if (!objput_has_fd(&p->w)) {
		(void)BUG("storage PUT_BEGIN answered 200 without an fd");
		put_fail(p, 500, "internal", "storage error");
		return;
	}
	http_req_on_body(p->req, put_on_data, put_on_end, p);
}

/* Content-Encoding → decoder (NULL for identity). -1 when answered. */
static int put_pick_decoder(http_req *r, obj_put *p)
{
	const char *ce = http_req_header(r, "Content-Encoding");
	inflate_codec codec;

	if (!ce || !*ce || strcasecmp(ce, "identity") == 0)
		return 0;
	if (inflate_codec_parse(ce, &codec) < 0) {
		reject_count(REJECT_FAMILY_NODE, REJECT_415);
		(void)http_resp_header(r, "Accept-Encoding", "gzip, zstd");
		(void)http_reply_error(r, 415, "unsupported_media_type",
		                       "Content-Encoding must be gzip, zstd or identity", false, 0);
		return -1;
	}
	if (!(p->inf = inflate_stream_new(codec, put_sink, p))) {
		(void)http_reply_error(r, 503, "unavailable", "out of memory", true, 1);
		return -1;
	}
	return 0;
}

/* Content-Type: parsed to the recorded grammar; none, octet-stream or a
 * malformed one (counted, never echoed) leaves it to sniffing. */
static void put_given_type(http_req *r, obj_put *p)
{
	const char *ct = http_req_header(r, "Content-Type");

	if (!ct || !*ct)
		return;
	if (http_req_header_count(r, "Content-Type") > 1 ||
	    mediatype_parse(ct, strlen(ct), p->ctype) < 0) {
		p->ctype[0] = '\0';
		metrics_count("media_type_total", "source=\"malformed\"", 1);
		return;
	}
	if (strcmp(p->ctype, MEDIATYPE_DEFAULT) == 0)
		p->ctype[0] = '\0';
}

/* PUT_BEGIN on behalf of the request's tenant (the wall's quota key) and
 * client address: storage holds each to its share of the upload slots. */
static void put_begin(obj_put *p, http_req *r)
{
	const wall_ticket *t = http_req_gate_ticket(r);
	char peer[STOR_KEY_MAX];

	util_peer_key(http_req_peer(r, NULL), peer, sizeof peer);
	p->awaiting = true;
	objput_begin(&p->w, t ? wall_ticket_tenant(t) : NULL, peer, put_on_begin, p);
}

void objects_put(http_req *r, objects *o, const uint8_t *expect)
{
	int64_t clen = http_req_content_length(r);
	obj_put *p;

	if (clen > 0 && (uint64_t)clen > o->max_object) {
		reject_count(REJECT_FAMILY_NODE, REJECT_413);
		(void)http_reply_error(r, 413, "payload_too_large", "object exceeds the object size cap",
		                       false, 0);
		return;
	}
	if (!(p = calloc(1, sizeof *p))) {
		(void)http_reply_error(r, 503, "unavailable", "out of memory", true, 1);
		return;
	}
	p->o = o;
	p->req = r;
	/* The first bytes: libmagic's, and the text the search service
	 * indexes (search.max_text) when it runs. */
	p->head_cap = MEDIATYPE_SNIFF_MAX;
	if (o->search && o->search_max_text > p->head_cap)
		p->head_cap = o->search_max_text;
	if (!(p->head = malloc(p->head_cap))) {
		free(p);
		(void)http_reply_error(r, 503, "unavailable", "out of memory", true, 1);
		return;
	}
	objput_init(&p->w, o->stor, o->max_object);
	if (expect) {
		p->has_expect = true;
		memcpy(p->expect, expect, B3_OUT_LEN);
	} else if (http_req_gate_ticket(r) &&
	           wall_ticket_body_digest(http_req_gate_ticket(r), p->expect)) {
		/* A holder proof bound this write to its body digest: storage
		 * refuses the object unless it hashes to it, and the client
		 * gets 401 binding (wall_ticket_proof_settled). */
		p->has_expect = true;
		p->proof_bound = true;
		/* an admitted ticket always has its quota key (t:, tid: or ip:) */
		snprintf(p->audit_key, sizeof p->audit_key, "%s",
		         wall_ticket_tenant(http_req_gate_ticket(r)));
	}
	put_given_type(r, p);
	if (put_pick_decoder(r, p) < 0) {
		put_free(p);
		return;
	}
	http_req_on_close(r, put_on_close, p);
	put_begin(p, r);
}
