/*
 * oap_verbs.c — the object verbs of omnigate (app_proto_id 1, docs/oap.md):
 * PING, STAT, GET (verified, streamed in 64 KiB frames), PUT (streamed into
 * a storage upload file).
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
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/b3.h"
#include "lib/b3tree.h"
#include "lib/log.h"
#include "svc/omnigate/omnigate.h"

#define OG_NO_GROUP    UINT64_MAX
#define OG_META_MAX    128
#define OG_PIECE       (64u * 1024u)   /* largest single pwrite to an upload file */

typedef struct og_get {
	oap_stream    *s;         /* NULL once orphaned */
	omnigate      *og;
	stor_call     *call;
	bool           awaiting;
	bool           stat_only;
	bool           has_range;
	uint64_t       rs, re;    /* requested range, inclusive */
	uint8_t        id[B3_OUT_LEN];
	int            blob, ob;
	const uint8_t *outboard;
	size_t         ob_len;
	uint64_t       len, next, end;
	uint64_t       group_idx;
	size_t         group_len;
	uint8_t       *buf;
} og_get;

typedef struct og_put {
	oap_stream *s;            /* NULL once orphaned */
	omnigate   *og;
	bool        awaiting;
	int         fd;
	uint64_t    handle;
	bool        have_handle;
	uint64_t    cap, written;
	bool        has_expect;
	uint8_t     expect[B3_OUT_LEN];
} og_put;

static void og_noop(const stor_result *res, void *arg)
{
	(void)res;
	(void)arg;
}

const char *og_verb_name(uint16_t verb)
{
	switch (verb) {
	case OG_VERB_PING: return "ping";
	case OG_VERB_STAT: return "stat";
	case OG_VERB_GET:  return "get";
	case OG_VERB_PUT:  return "put";
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
	case 503:
		og_stream_error(s, 503, "unavailable", "storage unavailable", true);
		break;
	case 413:
		og_stream_error(s, 413, "payload_too_large", "object exceeds the storage object cap",
		                false);
		break;
	default:
		log_kv(LOG_LEVEL_ERROR, "storage call failed", "status_msg",
		       res->message ? res->message : "", NULL);
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
	if (g->outboard)
		(void)munmap((void *)(uintptr_t)g->outboard, g->ob_len);
	if (g->blob >= 0)
		(void)close(g->blob);
	if (g->ob >= 0)
		(void)close(g->ob);
	free(g->buf);
	free(g);
}

static void get_quarantined(const stor_result *res, void *arg)
{
	(void)arg;
	if (res->status != 200)
		log_kv(LOG_LEVEL_WARN, "quarantine request failed", "status_msg",
		       res->message ? res->message : "", NULL);
}

static void get_integrity_fail(og_get *g, const char *what)
{
	char cid[B3_CID_LEN + 1], corr[17];

	b3_cid_format(g->id, cid);
	og_stream_corr_hex(g->s, corr);
	metrics_count("integrity_fail_total", "object=\"blob\"", 1);
	metrics_count("rejected_total", "reason=\"integrity\"", 1);
	og_count_reject(g->og, OG_REJ_INTEGRITY, NULL);
	log_kv(LOG_LEVEL_ERROR, "object failed verification", "cid", cid, "what", what,
	       "corr_id", corr, NULL);
	(void)stor_quarantine(g->og->stor, g->id, get_quarantined, NULL);
	if (g->s->answered)
		og_stream_abort(g->s);
	else
		og_stream_error(g->s, 502, "integrity", "object failed verification", false);
}

static int get_read_group(og_get *g, uint64_t gi)
{
	int64_t glen = b3tree_group_len(g->len, gi);
	size_t got = 0;

	if (glen < 0)
		return -1;
	while (got < (size_t)glen) {
		ssize_t n = pread(g->blob, g->buf + got, (size_t)glen - got,
		                  (off_t)(gi * B3TREE_GROUP_LEN + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	g->group_idx = gi;
	g->group_len = got;
	return 0;
}

/* Load and verify the group holding g->next. 0/-1 (answered or cut). */
static int get_load_group(og_get *g)
{
	uint64_t gi = g->len ? g->next / B3TREE_GROUP_LEN : 0;

	if (get_read_group(g, gi) < 0) {
		get_integrity_fail(g, "blob shorter than its length");
		return -1;
	}
	if (!b3tree_group_ok(g->buf, g->group_len, gi, g->len, g->outboard, g->id)) {
		get_integrity_fail(g, "group hash mismatch");
		return -1;
	}
	return 0;
}

/* Sizes and outboard against the id; the outboard mapped. 0/-1 (answered). */
static int get_check_object(og_get *g)
{
	struct stat bs, os;
	size_t want = b3tree_outboard_len(g->len);

	if (fstat(g->blob, &bs) < 0 || fstat(g->ob, &os) < 0) {
		og_stream_error(g->s, 500, "internal", "cannot stat the object", true);
		return -1;
	}
	if ((uint64_t)bs.st_size != g->len || want == 0 || (uint64_t)os.st_size != want) {
		get_integrity_fail(g, "blob or outboard size differs from the stored length");
		return -1;
	}
	g->outboard = mmap(NULL, want, PROT_READ, MAP_SHARED, g->ob, 0);
	if (g->outboard == MAP_FAILED) {
		g->outboard = NULL;
		og_stream_error(g->s, 500, "internal", "cannot map the outboard", true);
		return -1;
	}
	g->ob_len = want;
	if (!b3tree_outboard_ok(g->outboard, g->len, g->id)) {
		get_integrity_fail(g, "outboard does not hash to the id");
		return -1;
	}
	return 0;
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

	if (get_check_object(g) < 0 || get_pick_range(g) < 0)
		return;
	if (!(g->buf = malloc(B3TREE_GROUP_LEN))) {
		og_stream_error(g->s, 503, "unavailable", "out of memory", true);
		return;
	}
	/* The first group, checked before the START answer (for the empty
	 * object its one empty group, against the id). */
	if (get_load_group(g) < 0)
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

static void get_on_stor(const stor_result *res, void *arg)
{
	og_get *g = arg;
	char meta[OG_META_MAX];

	g->call = NULL;
	g->awaiting = false;
	g->blob = g->stat_only ? -1 : res->fds[0];
	g->ob = g->stat_only ? -1 : res->fds[1];
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
	if (g->stat_only) {
		snprintf(meta, sizeof meta, "{\"len\":%" PRIu64 "}", res->len);
		(void)!og_stream_reply(g->s, 200, meta, true);
		return;
	}
	if (g->blob < 0 || g->ob < 0) {
		(void)BUG("storage OPEN answered 200 without two fds");
		og_stream_error(g->s, 500, "internal", "storage error", true);
		return;
	}
	get_serve(g);
}

void og_verb_pump(oap_stream *s)
{
	og_get *g = s->vs;
	uint64_t off, n;
	bool last;

	if (!g || s->verb != OG_VERB_GET || !og_stream_live(s) || !g->buf)
		return;
	if (g->group_idx != g->next / B3TREE_GROUP_LEN && get_load_group(g) < 0)
		return;
	off = g->next - g->group_idx * B3TREE_GROUP_LEN;
	n = g->group_len - off;
	if (n > g->end - g->next + 1)
		n = g->end - g->next + 1;
	last = g->next + n > g->end;
	if (og_stream_data(s, g->buf + off, (size_t)n, last) < 0)
		return;
	g->next += n;
	if (!last)
		og_stream_wait_output(s);
}

static void get_start(oap_stream *s, const oap_frame *f, bool stat_only)
{
	static const char *const get_keys[] = { "cid", "range", NULL };
	static const char *const stat_keys[] = { "cid", NULL };
	omnigate *og = oap_conn_og(s->c);
	json_t *j = og_params(s, f, stat_only ? stat_keys : get_keys);
	og_get *g;

	if (!j)
		return;
	if (!(g = calloc(1, sizeof *g))) {
		json_decref(j);
		og_stream_error(s, 503, "unavailable", "out of memory", true);
		return;
	}
	g->s = s;
	g->og = og;
	g->blob = g->ob = -1;
	g->group_idx = OG_NO_GROUP;
	g->stat_only = stat_only;
	if (og_param_cid(s, j, "cid", true, g->id) < 0 || (!stat_only && og_param_range(s, j, g) < 0)) {
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
	g->awaiting = true;
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

static void put_close_fd(og_put *p)
{
	if (p->fd >= 0)
		(void)close(p->fd);
	p->fd = -1;
}

/* Give the upload back to storage (nothing to wait for). */
static void put_drop(og_put *p)
{
	put_close_fd(p);
	if (p->have_handle)
		(void)stor_put_abort(p->og->stor, p->handle, og_noop, NULL);
	p->have_handle = false;
}

static void put_free(og_put *p)
{
	put_drop(p);
	free(p);
}

static void put_fail(og_put *p, int status, const char *code, const char *msg)
{
	put_drop(p);
	og_stream_error(p->s, status, code, msg, status >= 500);
}

static int put_write(og_put *p, const uint8_t *data, size_t n)
{
	if (n > p->cap - p->written) {
		metrics_count("rejected_total", "reason=\"413\"", 1);
		put_fail(p, 413, "payload_too_large", "object exceeds the object size cap");
		return -1;
	}
	while (n > 0) {
		size_t k = n > OG_PIECE ? OG_PIECE : n;
		ssize_t w = pwrite(p->fd, data, k, (off_t)p->written);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_kv(LOG_LEVEL_ERROR, "upload write failed", "error",
			       w < 0 ? strerror(errno) : "short write", NULL);
			put_fail(p, 503, "unavailable", "storage cannot take the object now");
			return -1;
		}
		p->written += (uint64_t)w;
		data += w;
		n -= (size_t)w;
	}
	return 0;
}

static void put_on_commit(const stor_result *res, void *arg)
{
	og_put *p = arg;
	char cid[B3_CID_LEN + 1], body[B3_CID_LEN + 16];

	p->awaiting = false;
	p->have_handle = false;   /* COMMIT consumed it, whatever the answer */
	if (!p->s) {
		put_free(p);
		return;
	}
	if (!og_stream_live(p->s))
		return;
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
	put_close_fd(p);   /* storage reads the file through its own fd */
	p->awaiting = true;
	(void)stor_put_commit(p->og->stor, p->handle, p->written,
	                      p->has_expect ? p->expect : NULL, put_on_commit, p);
}

static void put_on_begin(const stor_result *res, void *arg)
{
	og_put *p = arg;

	p->awaiting = false;
	if (res->status == 200) {
		p->fd = res->fds[0];
		p->handle = res->handle;
		p->have_handle = true;
	}
	if (!p->s) {
		put_free(p);   /* orphan: aborts the upload storage just opened */
		return;
	}
	og_stream_resume(p->s);
	if (!og_stream_live(p->s))
		return;
	if (res->status != 200)
		og_reply_stor_error(p->s, res);
	else if (p->fd < 0)
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

static void put_start(oap_stream *s, const oap_frame *f)
{
	static const char *const keys[] = { "expect", NULL };
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
	p->fd = -1;
	p->cap = og->lim.max_object;
	p->has_expect = rc == 0;
	s->vs = p;
	p->awaiting = true;
	og_stream_pause(s);   /* no body frame is read before storage has answered */
	(void)stor_put_begin(og->stor, p->cap, put_on_begin, p);
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
		get_start(s, f, true);
		break;
	case OG_VERB_GET:
		get_start(s, f, false);
		break;
	case OG_VERB_PUT:
		put_start(s, f);
		break;
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
