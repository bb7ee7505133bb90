/*
 * peer_fetch.c — one verified fetch from one peer (peer_fetch.h).
 *
 * Phases: HELLO (the client connects, pins, greets) → OUTBOARD (length,
 * then the chaining values, checked against the cid at its END) → GET
 * (groups collected and checked one by one, each delivered only once
 * checked) → DONE. Every answer is judged against what we asked: the GET
 * answer must repeat the outboard's length and exactly the byte span of
 * the groups requested, and must end exactly after the last of them.
 *
 * Lifetime: finishing (or cancelling) frees the client at once (it defers
 * its own free) and the fetch itself from the reap event, so a callback
 * that ends the fetch returns into code that finds it marked finished and
 * touches nothing more.
 */
#include "core/objects/peer_fetch.h"
#include "core/objects/peer_fetch_test.h"

#include <event2/event.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics/metrics.h"
#include "lib/b3.h"
#include "lib/b3tree.h"

#define PF_PARAMS_MAX 192   /* {"cid":"b3:…","range":[S,E]} */

typedef enum pf_phase { PF_HELLO = 0, PF_OUTBOARD, PF_GET, PF_DONE } pf_phase;

struct peer_fetch {
	struct event_base *base;
	oap_client        *cl;        /* NULL in tests */
	struct event      *reap;      /* frees the struct at a safe point */
	struct event      *deadline;  /* the whole fetch, or NULL */
	peer_fetch_sink    sink;
	peer_fetch_done    done;
	void              *arg;
	peer_fetch_issue_fn issue;    /* tests: where requests go */
	void              *test_arg;
	pf_phase           phase;
	bool               finished;  /* done called or cancelled */
	bool               started;   /* the current answer's START has come */
	uint8_t            cid[B3_OUT_LEN];
	char               cid_text[B3_CID_LEN + 1];
	char              *cap;
	uint64_t           max_len;
	bool               has_range;
	uint64_t           rs, re;    /* requested span (inclusive) */
	uint64_t           len;
	bool               have_len;
	uint8_t           *ob;        /* the outboard as received */
	size_t             ob_len, ob_have;
	bool               ob_verified;   /* it hashed to the cid */
	uint64_t           g, g_last; /* next group to complete, last one asked */
	uint64_t           span_s, span_e;   /* bytes the GET must answer (inclusive) */
	uint8_t           *buf;       /* the group being collected */
	size_t             have;
	uint64_t           delivered;
	char               detail[PEER_FETCH_DETAIL_MAX];
};

static const char *const pf_names[PEER_FETCH_OUTCOMES] = {
	[PEER_FETCH_OK] = "ok", [PEER_FETCH_NOT_FOUND] = "not_found",
	[PEER_FETCH_REFUSED] = "refused", [PEER_FETCH_BAD_BYTES] = "bad_bytes",
	[PEER_FETCH_STALLED] = "stalled", [PEER_FETCH_PIN] = "pin",
	[PEER_FETCH_CONNECT] = "connect", [PEER_FETCH_TOO_LARGE] = "too_large",
	[PEER_FETCH_RANGE] = "range", [PEER_FETCH_NO_RANGE] = "no_range",
	[PEER_FETCH_LOCAL] = "local",
};

const char *peer_fetch_outcome_name(peer_fetch_outcome o)
{
	return (unsigned)o < PEER_FETCH_OUTCOMES ? pf_names[o] : "unknown";
}

/* ---- the end ---------------------------------------------------------------- */

static void pf_release(peer_fetch *f)
{
	f->finished = true;
	f->phase = PF_DONE;
	oap_client_free(f->cl);
	f->cl = NULL;
	if (f->deadline)
		event_del(f->deadline);
	event_active(f->reap, EV_TIMEOUT, 1);
}

static void pf_finish(peer_fetch *f, peer_fetch_outcome o, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void pf_finish(peer_fetch *f, peer_fetch_outcome o, const char *fmt, ...)
{
	char labels[40];
	va_list ap;
	peer_fetch_info info;

	if (f->finished)
		return;
	va_start(ap, fmt);
	vsnprintf(f->detail, sizeof f->detail, fmt, ap);
	va_end(ap);
	pf_release(f);
	snprintf(labels, sizeof labels, "outcome=\"%s\"", peer_fetch_outcome_name(o));
	metrics_count("peer_fetch_total", labels, 1);
	info = (peer_fetch_info){ .len = f->have_len ? f->len : 0, .delivered = f->delivered,
	                          .detail = f->detail };
	if (f->ob_verified) {
		info.outboard = f->ob;
		info.outboard_len = f->ob_len;
	}
	if (f->done)
		f->done(f->arg, o, &info);
}

static void pf_free(peer_fetch *f)
{
	if (f->deadline)
		event_free(f->deadline);
	if (f->reap)
		event_free(f->reap);
	free(f->ob);
	free(f->buf);
	sodium_free(f->cap);   /* wiped; NULL ok */
	free(f);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pf_free(arg);
}

void peer_fetch_cancel(peer_fetch *f)
{
	if (f && !f->finished)
		pf_release(f);
}

void peer_fetch_pause(peer_fetch *f, bool paused)
{
	if (f && !f->finished)
		oap_client_pause(f->cl, paused);
}

/* A non-2xx answer: what it means for the fetch. */
static void pf_refused(peer_fetch *f, const char *verb, int status)
{
	if (status == 404)
		pf_finish(f, PEER_FETCH_NOT_FOUND, "%s %s: 404", verb, f->cid_text);
	else
		pf_finish(f, PEER_FETCH_REFUSED, "%s %s: refused with %d", verb, f->cid_text, status);
}

/* ---- requests --------------------------------------------------------------- */

static const oap_call_cbs pf_answer_cbs;

static int pf_issue(peer_fetch *f, uint16_t verb, const char *params)
{
	f->started = false;
	if (f->issue)
		return f->issue(f->test_arg, verb, params);
	return oap_client_start(f->cl, verb, params, f->cap, &pf_answer_cbs, f) ? 0 : -1;
}

static void pf_ask_outboard(peer_fetch *f)
{
	char params[PF_PARAMS_MAX];

	f->phase = PF_OUTBOARD;
	snprintf(params, sizeof params, "{\"cid\":\"%s\"}", f->cid_text);
	if (pf_issue(f, PEER_FETCH_VERB_OUTBOARD, params) != 0)
		pf_finish(f, PEER_FETCH_LOCAL, "cannot send OUTBOARD");
}

/* The groups the wanted bytes touch, and the GET for exactly them. */
static void pf_ask_get(peer_fetch *f)
{
	char params[PF_PARAMS_MAX];
	uint64_t last = f->len ? f->len - 1 : 0, e;

	f->phase = PF_GET;
	if (f->has_range && f->rs >= f->len) {
		pf_finish(f, PEER_FETCH_RANGE, "range starts at %" PRIu64 ", the object has %" PRIu64
		          " bytes", f->rs, f->len);
		return;
	}
	e = f->has_range && f->re < last ? f->re : last;
	f->g = f->has_range ? f->rs / B3TREE_GROUP_LEN : 0;
	f->g_last = e / B3TREE_GROUP_LEN;
	f->span_s = f->g * B3TREE_GROUP_LEN;
	f->span_e = (f->g_last + 1) * B3TREE_GROUP_LEN - 1 < last ?
	            (f->g_last + 1) * B3TREE_GROUP_LEN - 1 : last;
	if (!f->has_range) {
		f->rs = 0;
		f->re = last;
	} else {
		f->re = e;
	}
	if (f->has_range)
		snprintf(params, sizeof params, "{\"cid\":\"%s\",\"range\":[%" PRIu64 ",%" PRIu64 "]}",
		         f->cid_text, f->span_s, f->span_e);
	else
		snprintf(params, sizeof params, "{\"cid\":\"%s\"}", f->cid_text);
	if (pf_issue(f, PEER_FETCH_VERB_GET, params) != 0)
		pf_finish(f, PEER_FETCH_LOCAL, "cannot send GET");
}

/* ---- answers: metadata ---------------------------------------------------- */

/* The OUTBOARD answer's {"len":N,"groups":G}, strictly: G must be the
 * group count of N. Then the length cap, before a byte is kept. */
static void pf_outboard_meta(peer_fetch *f, const uint8_t *json, size_t n)
{
	json_t *j = n <= PEER_FETCH_META_MAX ? json_loadb((const char *)json, n, 0, NULL) : NULL;
	json_int_t len = -1, groups = -1;
	int ok = j && json_unpack(j, "{s:I, s:I !}", "len", &len, "groups", &groups) == 0;

	json_decref(j);
	if (!ok || len < 0 || (uint64_t)len > B3TREE_MAX_LEN ||
	    (uint64_t)groups != b3tree_groups((uint64_t)len)) {
		pf_finish(f, PEER_FETCH_BAD_BYTES, "OUTBOARD %s: malformed metadata", f->cid_text);
		return;
	}
	f->len = (uint64_t)len;
	f->have_len = true;
	f->ob_len = b3tree_outboard_len(f->len);
	if (f->len > f->max_len || f->ob_len > PEER_FETCH_OUTBOARD_MAX) {
		pf_finish(f, PEER_FETCH_TOO_LARGE, "%s has %" PRIu64 " bytes, more than %" PRIu64,
		          f->cid_text, f->len, f->max_len);
		return;
	}
	if (!(f->ob = malloc(f->ob_len)))
		pf_finish(f, PEER_FETCH_LOCAL, "no memory for the outboard");
}

/* The GET answer must repeat the length and answer exactly our span. */
static void pf_get_meta(peer_fetch *f, int status, const uint8_t *json, size_t n)
{
	json_t *j = n <= PEER_FETCH_META_MAX ? json_loadb((const char *)json, n, 0, NULL) : NULL;
	json_int_t len = -1, s = -1, e = -1;
	int ok = j && json_unpack(j, "{s:I, s?I, s?I !}", "len", &len, "start", &s, "end", &e) == 0;

	json_decref(j);
	if (ok && f->len == 0)
		ok = len == 0 && status == 200;
	else if (ok)
		ok = (uint64_t)len == f->len && s >= 0 && (uint64_t)s == f->span_s && e >= 0 &&
		     (uint64_t)e == f->span_e && status == (f->has_range ? 206 : 200);
	if (!ok)
		pf_finish(f, PEER_FETCH_BAD_BYTES, "GET %s: the answer does not match the outboard",
		          f->cid_text);
}

/* ---- answers: bytes --------------------------------------------------------- */

static void pf_outboard_data(peer_fetch *f, const uint8_t *p, size_t n)
{
	if (n > f->ob_len - f->ob_have) {
		pf_finish(f, PEER_FETCH_BAD_BYTES, "OUTBOARD %s: longer than %zu bytes", f->cid_text,
		          f->ob_len);
		return;
	}
	memcpy(f->ob + f->ob_have, p, n);
	f->ob_have += n;
}

/* Hand the verified group g (glen bytes at p) to the sink: the part the
 * caller asked for. */
static void pf_deliver(peer_fetch *f, const uint8_t *p, size_t glen)
{
	uint64_t off = f->g * B3TREE_GROUP_LEN, s = off, e = off + glen - 1;

	if (glen == 0)
		return;
	if (s < f->rs)
		s = f->rs;
	if (e > f->re)
		e = f->re;
	if (s > e)
		return;
	f->delivered += e - s + 1;
	f->sink(f->arg, s, p + (s - off), (size_t)(e - s + 1));
}

/* Group f->g is whole at p: check it, then deliver it. -1: the fetch ended. */
static int pf_group_done(peer_fetch *f, const uint8_t *p, size_t glen)
{
	if (!b3tree_group_ok(p, glen, f->g, f->len, f->ob, f->cid)) {
		pf_finish(f, PEER_FETCH_BAD_BYTES, "%s: group %" PRIu64 " does not match the outboard",
		          f->cid_text, f->g);
		return -1;
	}
	pf_deliver(f, p, glen);
	if (f->finished)
		return -1;   /* the sink cancelled */
	f->g++;
	f->have = 0;
	return 0;
}

static void pf_get_data(peer_fetch *f, const uint8_t *p, size_t n)
{
	while (n > 0 && !f->finished) {
		int64_t glen = f->g <= f->g_last ? b3tree_group_len(f->len, f->g) : -1;
		size_t take;

		if (glen <= 0) {
			pf_finish(f, PEER_FETCH_BAD_BYTES, "GET %s: more bytes than asked for", f->cid_text);
			return;
		}
		take = (size_t)glen - f->have < n ? (size_t)glen - f->have : n;
		if (f->have == 0 && take == (size_t)glen) {   /* a whole group in place: no copy */
			if (pf_group_done(f, p, take) < 0)
				return;
		} else {
			memcpy(f->buf + f->have, p, take);
			f->have += take;
			if (f->have == (size_t)glen && pf_group_done(f, f->buf, f->have) < 0)
				return;
		}
		p += take;
		n -= take;
	}
}

/* GET ended: every group asked for must be complete (the empty object's
 * one empty group is checked here, against the cid). */
static void pf_get_end(peer_fetch *f)
{
	if (f->len == 0 && pf_group_done(f, f->buf, 0) < 0)
		return;
	if (f->g != f->g_last + 1 || f->have != 0) {
		pf_finish(f, PEER_FETCH_BAD_BYTES, "GET %s: the body stopped at group %" PRIu64 " of %"
		          PRIu64, f->cid_text, f->g, f->g_last + 1);
		return;
	}
	pf_finish(f, PEER_FETCH_OK, "%s: %" PRIu64 " bytes verified", f->cid_text, f->delivered);
}

static void pf_outboard_end(peer_fetch *f)
{
	if (f->ob_have != f->ob_len) {
		pf_finish(f, PEER_FETCH_BAD_BYTES, "OUTBOARD %s: %zu of %zu bytes", f->cid_text,
		          f->ob_have, f->ob_len);
		return;
	}
	if (!b3tree_outboard_ok(f->ob, f->len, f->cid)) {
		pf_finish(f, PEER_FETCH_BAD_BYTES, "OUTBOARD %s: does not hash to the cid", f->cid_text);
		return;
	}
	f->ob_verified = true;
	pf_ask_get(f);
}

/* ---- the answer stream (oap_call_cbs) ------------------------------------- */

static void pf_on_start(void *arg, int status, const uint8_t *json, size_t n)
{
	peer_fetch *f = arg;

	if (f->finished)
		return;
	if (f->started) {   /* oap_client never delivers two; a fetch never believes two */
		pf_finish(f, PEER_FETCH_BAD_BYTES, "%s: a second START on one stream", f->cid_text);
		return;
	}
	f->started = true;
	/* A peer that refuses the range parameter (400) or ignores it (200, the
	 * whole object) does not serve ranges: no fault of its bytes, and the
	 * caller may ask it for the whole object instead. */
	if (f->phase == PF_GET && f->has_range && f->len > 0 && (status == 400 || status == 200))
		pf_finish(f, PEER_FETCH_NO_RANGE, "GET %s: the peer does not serve ranges (%d)",
		          f->cid_text, status);
	else if (status < 200 || status > 299)
		pf_refused(f, f->phase == PF_OUTBOARD ? "OUTBOARD" : "GET", status);
	else if (f->phase == PF_OUTBOARD)
		pf_outboard_meta(f, json, n);
	else
		pf_get_meta(f, status, json, n);
}

static void pf_on_data(void *arg, const uint8_t *p, size_t n)
{
	peer_fetch *f = arg;

	if (f->finished)
		return;
	if (!f->started)
		pf_finish(f, PEER_FETCH_BAD_BYTES, "%s: data before START", f->cid_text);
	else if (f->phase == PF_OUTBOARD)
		pf_outboard_data(f, p, n);
	else
		pf_get_data(f, p, n);
}

static void pf_on_end(void *arg)
{
	peer_fetch *f = arg;

	if (f->finished)
		return;
	if (!f->started)
		pf_finish(f, PEER_FETCH_BAD_BYTES, "%s: END before START", f->cid_text);
	else if (f->phase == PF_OUTBOARD)
		pf_outboard_end(f);
	else
		pf_get_end(f);
}

static const oap_call_cbs pf_answer_cbs = {
	.on_start = pf_on_start, .on_data = pf_on_data, .on_end = pf_on_end,
};
const oap_call_cbs peer_fetch_test_answer = {
	.on_start = pf_on_start, .on_data = pf_on_data, .on_end = pf_on_end,
};

/* ---- the connection ------------------------------------------------------- */

static void pf_on_ready(void *arg)
{
	pf_ask_outboard(arg);
}

static void pf_on_error(void *arg, oap_client_error e, const char *detail)
{
	peer_fetch *f = arg;
	peer_fetch_outcome o;

	switch (e) {
	case OAP_CLIENT_CONNECT:
	case OAP_CLIENT_TLS:      o = PEER_FETCH_CONNECT; break;
	case OAP_CLIENT_PIN:      o = PEER_FETCH_PIN; break;
	case OAP_CLIENT_TIMEOUT:  o = PEER_FETCH_STALLED; break;
	case OAP_CLIENT_PROTOCOL: o = PEER_FETCH_BAD_BYTES; break;
	case OAP_CLIENT_CLOSED:   o = PEER_FETCH_REFUSED; break;
	default:                  o = PEER_FETCH_LOCAL; break;
	}
	pf_finish(f, o, "%s", detail);
}

void peer_fetch_test_error(peer_fetch *f, oap_client_error e, const char *detail)
{
	pf_on_error(f, e, detail);
}

void peer_fetch_test_ready(peer_fetch *f)
{
	pf_on_ready(f);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	peer_fetch *f = arg;

	(void)fd;
	(void)what;
	pf_finish(f, PEER_FETCH_STALLED, "%s: not fetched within the deadline", f->cid_text);
}

/* The struct and its buffers from req (no network yet). NULL on failure. */
static peer_fetch *pf_new(struct event_base *base, const peer_fetch_req *req,
                          peer_fetch_sink sink, peer_fetch_done done, void *arg)
{
	peer_fetch *f = calloc(1, sizeof *f);
	size_t clen = req->cap ? strlen(req->cap) : 0;
	struct timeval tv = { (time_t)(req->deadline_ms / 1000u),
	                      (suseconds_t)((req->deadline_ms % 1000u) * 1000u) };

	if (!f)
		return NULL;
	f->base = base;
	f->reap = event_new(base, -1, 0, on_reap, f);
	f->buf = malloc(B3TREE_GROUP_LEN);
	if (clen && sodium_init() >= 0 && (f->cap = sodium_malloc(clen + 1)) != NULL)
		memcpy(f->cap, req->cap, clen + 1);
	if (req->deadline_ms && (f->deadline = evtimer_new(base, on_deadline, f)) != NULL)
		(void)evtimer_add(f->deadline, &tv);
	if (!f->reap || !f->buf || (clen && !f->cap) || (req->deadline_ms && !f->deadline)) {
		pf_free(f);
		return NULL;
	}
	memcpy(f->cid, req->cid, sizeof f->cid);
	b3_cid_format(f->cid, f->cid_text);
	f->max_len = req->max_len;
	f->has_range = req->has_range;
	f->rs = req->start;
	f->re = req->end;
	f->sink = sink;
	f->done = done;
	f->arg = arg;
	return f;
}

peer_fetch *peer_fetch_start(struct event_base *base, tls_peer *peer, const peer_fetch_req *req,
                             peer_fetch_sink sink, peer_fetch_done done, void *arg,
                             char *err, size_t errlen)
{
	static const oap_client_cbs cbs = { .on_ready = pf_on_ready, .on_error = pf_on_error };
	peer_fetch *f = pf_new(base, req, sink, done, arg);

	if (!f) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	f->cl = oap_client_new(base, peer, req->addr, req->node_id, req->timeouts, &cbs, f, err,
	                       errlen);
	if (!f->cl) {
		pf_free(f);
		return NULL;
	}
	return f;
}

peer_fetch *peer_fetch_test_new(struct event_base *base, const peer_fetch_req *req,
                                peer_fetch_sink sink, peer_fetch_done done, void *arg,
                                peer_fetch_issue_fn issue, void *test_arg)
{
	peer_fetch *f = pf_new(base, req, sink, done, arg);

	if (f) {
		f->issue = issue;
		f->test_arg = test_arg;
	}
	return f;
}
