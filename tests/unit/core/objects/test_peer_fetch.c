/*
 * test_peer_fetch.c — the verification of core/objects/peer_fetch.c against
 * a fake answer stream: the test receives the requests the fetch makes and
 * plays the peer's answers through the callbacks oap_client would call
 * (peer_fetch_test.h). Proves that nothing unverified reaches the sink: a
 * flipped byte in group 3 of a 5-group object stops the fetch with
 * BAD_BYTES after exactly groups 0-2; a bad outboard stops it before any
 * GET; and every other way for a peer to lie (length, span, short body,
 * extra bytes, one-group and empty objects) or fail (404, 403, deadlines).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics/metrics.h"
#include "core/objects/peer_fetch.h"
#include "core/objects/peer_fetch_test.h"
#include "lib/b3.h"
#include "lib/b3tree.h"

#define G        B3TREE_GROUP_LEN
#define OBJ_MAX  (5u * G)
#define OB_MAX   (5u * B3TREE_CV_LEN)

typedef struct obj {
	uint8_t  data[OBJ_MAX];
	uint64_t len;
	uint8_t  ob[OB_MAX];
	size_t   ob_len;
	uint8_t  cid[B3_OUT_LEN];
	char     cid_text[B3_CID_LEN + 1];
} obj;

typedef struct env {
	struct event_base *base;
	obj                o;
	peer_fetch        *f;
	/* requests the fetch made */
	int                nreq;
	uint16_t           verb[4];
	char               params[4][256];
	/* what reached the sink */
	uint8_t           *got;
	uint64_t           got_len;
	uint64_t           next_off;   /* offsets must be contiguous */
	uint64_t           first_off;
	bool               have_first;
	/* the end */
	bool               done;
	peer_fetch_outcome outcome;
	uint64_t           info_len, info_delivered;
	bool               info_ob_ok;   /* info carried the outboard, equal to ours */
} env;

static uint64_t seed = 0x9e3779b97f4a7c15u;

static uint8_t rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return (uint8_t)seed;
}

static void obj_make(obj *o, uint64_t len)
{
	b3tree_builder *b = malloc(sizeof *b);

	assert_non_null(b);
	o->len = len;
	for (uint64_t i = 0; i < len; i++)
		o->data[i] = rnd();
	b3tree_builder_init(b, o->ob, sizeof o->ob);
	assert_int_equal(b3tree_builder_update(b, o->data, len), 0);
	assert_int_equal(b3tree_builder_finish(b, o->cid), 0);
	o->ob_len = b3tree_outboard_len(len);
	b3_cid_format(o->cid, o->cid_text);
	free(b);
}

static int issue(void *arg, uint16_t verb, const char *params)
{
	env *e = arg;

	assert_true(e->nreq < 4);
	e->verb[e->nreq] = verb;
	snprintf(e->params[e->nreq], sizeof e->params[e->nreq], "%s", params);
	e->nreq++;
	return 0;
}

static void sink(void *arg, uint64_t off, const uint8_t *p, size_t n)
{
	env *e = arg;

	if (!e->have_first) {
		e->first_off = off;
		e->next_off = off;
		e->have_first = true;
	}
	assert_int_equal(off, e->next_off);
	assert_true(e->got_len + n <= OBJ_MAX);
	memcpy(e->got + e->got_len, p, n);
	e->got_len += n;
	e->next_off += n;
}

static void done(void *arg, peer_fetch_outcome o, const peer_fetch_info *info)
{
	env *e = arg;

	assert_false(e->done);
	e->done = true;
	e->outcome = o;
	e->info_len = info->len;
	e->info_delivered = info->delivered;
	e->info_ob_ok = info->outboard && info->outboard_len == e->o.ob_len &&
	                memcmp(info->outboard, e->o.ob, e->o.ob_len) == 0;
	assert_non_null(info->detail);
}

static int setup(void **state)
{
	env *e = calloc(1, sizeof *e);

	assert_non_null(e);
	e->base = event_base_new();
	e->got = malloc(OBJ_MAX);
	assert_non_null(e->base);
	assert_non_null(e->got);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	env *e = *state;

	if (e->f && !e->done)
		peer_fetch_cancel(e->f);
	(void)event_base_loop(e->base, EVLOOP_NONBLOCK);   /* the reap */
	event_base_free(e->base);
	free(e->got);
	free(e);
	return 0;
}

static void fetch_start(env *e, uint64_t max_len, bool range, uint64_t s, uint64_t end)
{
	peer_fetch_req req = { .addr = "127.0.0.1:1", .node_id = e->o.cid, .cid = e->o.cid,
	                       .max_len = max_len, .has_range = range, .start = s, .end = end };

	e->f = peer_fetch_test_new(e->base, &req, sink, done, e, issue, e);
	assert_non_null(e->f);
	peer_fetch_test_ready(e->f);
	assert_int_equal(e->nreq, 1);
	assert_int_equal(e->verb[0], PEER_FETCH_VERB_OUTBOARD);
}

static const oap_call_cbs *ans = &peer_fetch_test_answer;

static void answer_start(env *e, int status, const char *json)
{
	ans->on_start(e->f, status, (const uint8_t *)json, strlen(json));
}

/* The OUTBOARD answer: metadata, the CVs in two pieces, END. */
static void answer_outboard(env *e, const uint8_t *ob)
{
	char meta[96];

	snprintf(meta, sizeof meta, "{\"len\":%" PRIu64 ",\"groups\":%zu}", e->o.len,
	         b3tree_groups(e->o.len));
	answer_start(e, 200, meta);
	if (e->done)
		return;
	ans->on_data(e->f, ob, e->o.ob_len / 2);
	ans->on_data(e->f, ob + e->o.ob_len / 2, e->o.ob_len - e->o.ob_len / 2);
	ans->on_end(e->f);
}

/* The GET answer for [s, end]: metadata, then frames of at most 64 KiB,
 * each within one group, as omnigate sends them; stops once the fetch is
 * done (a real client would have closed). */
static void answer_get(env *e, const uint8_t *data, int status, uint64_t s, uint64_t end)
{
	char meta[128];
	uint64_t off = s;

	snprintf(meta, sizeof meta, "{\"len\":%" PRIu64 ",\"start\":%" PRIu64 ",\"end\":%" PRIu64 "}",
	         e->o.len, s, end);
	answer_start(e, status, meta);
	while (!e->done && off <= end) {
		uint64_t n = G - off % G;

		if (n > end - off + 1)
			n = end - off + 1;
		ans->on_data(e->f, data + off, (size_t)n);
		off += n;
	}
	if (!e->done)
		ans->on_end(e->f);
}

static void expect_get_params(env *e, const char *range)
{
	char want[256];

	assert_int_equal(e->nreq, 2);
	assert_int_equal(e->verb[1], PEER_FETCH_VERB_GET);
	if (range)
		snprintf(want, sizeof want, "{\"cid\":\"%s\",\"range\":%s}", e->o.cid_text, range);
	else
		snprintf(want, sizeof want, "{\"cid\":\"%s\"}", e->o.cid_text);
	assert_string_equal(e->params[1], want);
}

static uint64_t fetches(const char *outcome)
{
	char labels[48];

	snprintf(labels, sizeof labels, "outcome=\"%s\"", outcome);
	return metrics_value(metrics_get("peer_fetch_total", labels));
}

/* ---- tests ---------------------------------------------------------------- */

static void test_whole_object_verified(void **state)
{
	env *e = *state;
	char want[128];
	uint64_t oks = fetches("ok");

	obj_make(&e->o, 4 * G + 1000);   /* 5 groups, the last partial */
	fetch_start(e, OBJ_MAX, false, 0, 0);
	snprintf(want, sizeof want, "{\"cid\":\"%s\"}", e->o.cid_text);
	assert_string_equal(e->params[0], want);
	answer_outboard(e, e->o.ob);
	expect_get_params(e, NULL);
	answer_get(e, e->o.data, 200, 0, e->o.len - 1);
	assert_true(e->done);
	assert_int_equal(e->outcome, PEER_FETCH_OK);
	assert_int_equal(e->got_len, e->o.len);
	assert_memory_equal(e->got, e->o.data, e->o.len);
	assert_int_equal(e->info_len, e->o.len);
	assert_int_equal(e->info_delivered, e->o.len);
	assert_int_equal(fetches("ok"), oks + 1);
}

static void test_flip_in_group_3_sink_saw_groups_0_to_2(void **state)
{
	env *e = *state;
	uint8_t *bad = malloc(OBJ_MAX);
	uint64_t before = fetches("bad_bytes");

	assert_non_null(bad);
	obj_make(&e->o, 5 * G);
	memcpy(bad, e->o.data, e->o.len);
	bad[3 * G + 12345] ^= 0x01;
	fetch_start(e, OBJ_MAX, false, 0, 0);
	answer_outboard(e, e->o.ob);
	answer_get(e, bad, 200, 0, e->o.len - 1);
	assert_true(e->done);
	assert_int_equal(e->outcome, PEER_FETCH_BAD_BYTES);
	assert_int_equal(e->got_len, 3 * G);                       /* groups 0, 1, 2 */
	assert_memory_equal(e->got, e->o.data, 3 * G);             /* and only good bytes */
	assert_int_equal(e->info_delivered, 3 * G);
	assert_int_equal(fetches("bad_bytes"), before + 1);
	/* frames that still arrive change nothing */
	ans->on_data(e->f, bad + 4 * G, 100);
	ans->on_end(e->f);
	assert_int_equal(e->got_len, 3 * G);
	free(bad);
}

static void test_bad_outboard_stops_before_any_byte(void **state)
{
	env *e = *state;
	uint8_t ob[OB_MAX];

	obj_make(&e->o, 5 * G);
	memcpy(ob, e->o.ob, e->o.ob_len);
	ob[B3TREE_CV_LEN + 7] ^= 0x80;   /* CV of group 1 */
	fetch_start(e, OBJ_MAX, false, 0, 0);
	answer_outboard(e, ob);
	assert_true(e->done);
	assert_int_equal(e->outcome, PEER_FETCH_BAD_BYTES);
	assert_int_equal(e->nreq, 1);    /* no GET was ever asked for */
	assert_int_equal(e->got_len, 0);
}

static void test_outboard_too_long_or_short(void **state)
{
	env *e = *state;
	char meta[96];

	obj_make(&e->o, 2 * G);
	fetch_start(e, OBJ_MAX, false, 0, 0);
	snprintf(meta, sizeof meta, "{\"len\":%" PRIu64 ",\"groups\":2}", e->o.len);
	answer_start(e, 200, meta);
	ans->on_data(e->f, e->o.ob, e->o.ob_len);
	ans->on_data(e->f, e->o.ob, 1);   /* one byte too many */
	assert_true(e->done);
	assert_int_equal(e->outcome, PEER_FETCH_BAD_BYTES);
}

static void test_metadata_lies(void **state)
{
	env *e = *state;
	const char *bad[] = {
		"{\"len\":131072,\"groups\":3}",           /* wrong group count */
		"{\"len\":131072,\"groups\":2,\"x\":1}",   /* unknown field */
		"{\"len\":-1,\"groups\":1}",
		"[]",
		"{\"len\":\"131072\",\"groups\":2}",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&e->done, 0, sizeof e->done);
		e->nreq = 0;
		obj_make(&e->o, 2 * G);
		fetch_start(e, OBJ_MAX, false, 0, 0);
		answer_start(e, 200, bad[i]);
		assert_true(e->done);
		assert_int_equal(e->outcome, PEER_FETCH_BAD_BYTES);
		(void)event_base_loop(e->base, EVLOOP_NONBLOCK);
		e->done = false;
	}
	e->f = NULL;
}

/* What oap_client never delivers, the fetch does not believe either (found
 * by fuzz/peer_fetch.c: a second START used to leak the first outboard). */
static void test_stream_out_of_order(void **state)
{
	env *e = *state;
	char meta[96];

	obj_make(&e->o, 2 * G);
	snprintf(meta, sizeof meta, "{\"len\":%" PRIu64 ",\"groups\":2}", e->o.len);
	fetch_start(e, OBJ_MAX, false, 0, 0);
	answer_start(e, 200, meta);
	answer_start(e, 200, meta);   /* a second START */
	assert_true(e->done);
	assert_int_equal(e->outcome, PEER_FETCH_BAD_BYTES);
	(void)event_base_loop(e->base, EVLOOP_NONBLOCK);

	e->done = false;
	e->nreq = 0;
	fetch_start(e, OBJ_MAX, false, 0, 0);
	ans->on_data(e->f, e->o.ob, 32);   /* data before START */
	assert_true(e->done);
	assert_int_equal(e->outcome, PEER_FETCH_BAD_BYTES);
	(void)event_base_loop(e->base, EVLOOP_NONBLOCK);

	e->done = false;
	e->nreq = 0;
	fetch_start(e, OBJ_MAX, false, 0, 0);
	ans->on_end(e->f);   /* END before START */
	assert_true(e->done);
	assert_int_equal(e->outcome, PEER_FETCH_BAD_BYTES);
}

static void test_get_answer_must_match_outboard(void **state)
{
	env *e = *state;

	obj_make(&e->o, 3 * G);
	fetch_start(e, OBJ_MAX, false, 0, 0);
	answer_outboard(e, e->o.ob);
	/* another length than the outboard's */
	answer_start(e, 200, "{\"len\":1,\"start\":0,\"end\":0}");
	assert_true(e->done);
	assert_int_equal(e->outcome, PEER_FETCH_BAD_BYTES);
	assert_int_equal(e->got_len, 0);
}

static void test_short_body_and_extra_bytes(void **state)
{
	env *e = *state;
	char meta[128];

	obj_make(&e->o, 3 * G);
	fetch_start(e, OBJ_MAX, false, 0, 0);
	answer_outboard(e, e->o.ob);
	snprintf(meta, sizeof meta, "{\"len\":%" PRIu64 ",\"start\":0,\"end\":%" PRIu64 "}",
	         e->o.len, e->o.len - 1);
	answer_start(e, 200, meta);
	ans->on_data(e->f, e->o.data, G);
	ans->on_data(e->f, e->o.data + G, G / 2);
	ans->on_end(e->f);   /* stopped inside group 1 */
	assert_true(e->done);
	assert_int_equal(e->outcome, PEER_FETCH_BAD_BYTES);
	assert_int_equal(e->got_len, G);   /* group 0 was verified and delivered */
	(void)event_base_loop(e->base, EVLOOP_NONBLOCK);

	/* more bytes than the object */
	e->done = false;
	e->nreq = 0;
	e->got_len = 0;
	e->have_first = false;
	fetch_start(e, OBJ_MAX, false, 0, 0);
	answer_outboard(e, e->o.ob);
	answer_start(e, 200, meta);
	for (int i = 0; i < 3; i++)
		ans->on_data(e->f, e->o.data + (size_t)i * G, G);
	ans->on_data(e->f, e->o.data, 1);
	assert_true(e->done);
	assert_int_equal(e->outcome, PEER_FETCH_BAD_BYTES);
	assert_int_equal(e->got_len, 3 * G);
}

static void test_one_group_object_checked_against_cid(void **state)
{
	env *e = *state;
	uint8_t bad[1000];

	obj_make(&e->o, 1000);
	fetch_start(e, OBJ_MAX, false, 0, 0);
	answer_outboard(e, e->o.ob);
	memcpy(bad, e->o.data, sizeof bad);
	bad[999] ^= 0x10;
	answer_get(e, bad, 200, 0, 999);
	assert_true(e->done);
	assert_int_equal(e->outcome, PEER_FETCH_BAD_BYTES);
	assert_int_equal(e->got_len, 0);
	(void)event_base_loop(e->base, EVLOOP_NONBLOCK);

	e->done = false;
	e->nreq = 0;
	fetch_start(e, OBJ_MAX, false, 0, 0);
	answer_outboard(e, e->o.ob);
	answer_get(e, e->o.data, 200, 0, 999);
	assert_int_equal(e->outcome, PEER_FETCH_OK);
	assert_int_equal(e->got_len, 1000);
	assert_memory_equal(e->got, e->o.data, 1000);
}

static void test_empty_object(void **state)
{
	env *e = *state;

	obj_make(&e->o, 0);
	fetch_start(e, OBJ_MAX, false, 0, 0);
	answer_outboard(e, e->o.ob);
	expect_get_params(e, NULL);
	answer_start(e, 200, "{\"len\":0}");
	ans->on_end(e->f);
	assert_true(e->done);
	assert_int_equal(e->outcome, PEER_FETCH_OK);
	assert_int_equal(e->got_len, 0);
	(void)event_base_loop(e->base, EVLOOP_NONBLOCK);

	/* a peer claiming that some other cid is the empty object */
	e->done = false;
	e->nreq = 0;
	e->o.cid[0] ^= 1;
	b3_cid_format(e->o.cid, e->o.cid_text);
	fetch_start(e, OBJ_MAX, false, 0, 0);
	answer_outboard(e, e->o.ob);   /* one CV: proves nothing, passes */
	answer_start(e, 200, "{\"len\":0}");
	ans->on_end(e->f);
	assert_true(e->done);
	assert_int_equal(e->outcome, PEER_FETCH_BAD_BYTES);
}

static void test_range_fetches_only_its_groups(void **state)
{
	env *e = *state;
	const uint64_t s = 70000, end = 200000;

	obj_make(&e->o, 4 * G + 1000);
	fetch_start(e, OBJ_MAX, true, s, end);
	answer_outboard(e, e->o.ob);
	expect_get_params(e, "[65536,262143]");   /* groups 1..3 */
	answer_get(e, e->o.data, 206, G, 4 * G - 1);
	assert_true(e->done);
	assert_int_equal(e->outcome, PEER_FETCH_OK);
	assert_int_equal(e->first_off, s);
	assert_int_equal(e->got_len, end - s + 1);
	assert_memory_equal(e->got, e->o.data + s, end - s + 1);
}

static void test_range_past_end_and_clamped(void **state)
{
	env *e = *state;

	obj_make(&e->o, 2 * G);
	fetch_start(e, OBJ_MAX, true, 2 * G, 3 * G);
	answer_outboard(e, e->o.ob);
	assert_true(e->done);
	assert_int_equal(e->outcome, PEER_FETCH_RANGE);
	assert_int_equal(e->nreq, 1);
	(void)event_base_loop(e->base, EVLOOP_NONBLOCK);

	e->done = false;
	e->nreq = 0;
	fetch_start(e, OBJ_MAX, true, G + 5, UINT64_MAX);   /* end clamped to the object */
	answer_outboard(e, e->o.ob);
	expect_get_params(e, "[65536,131071]");
	answer_get(e, e->o.data, 206, G, 2 * G - 1);
	assert_int_equal(e->outcome, PEER_FETCH_OK);
	assert_int_equal(e->got_len, G - 5);
	assert_memory_equal(e->got, e->o.data + G + 5, G - 5);
}

/* The overlay builds a range result from the outboard: it comes with OK and
 * RANGE, never before it hashed to the cid. */
static void test_outboard_handed_over_once_verified(void **state)
{
	env *e = *state;

	obj_make(&e->o, 3 * G);
	fetch_start(e, OBJ_MAX, true, G, G + 9);
	answer_outboard(e, e->o.ob);
	answer_get(e, e->o.data, 206, G, 2 * G - 1);
	assert_int_equal(e->outcome, PEER_FETCH_OK);
	assert_true(e->info_ob_ok);
	(void)event_base_loop(e->base, EVLOOP_NONBLOCK);

	e->done = false;
	e->nreq = 0;
	fetch_start(e, OBJ_MAX, true, 3 * G, 3 * G);   /* past the end */
	answer_outboard(e, e->o.ob);
	assert_int_equal(e->outcome, PEER_FETCH_RANGE);
	assert_true(e->info_ob_ok);
	(void)event_base_loop(e->base, EVLOOP_NONBLOCK);

	uint8_t bad[OB_MAX];
	memcpy(bad, e->o.ob, e->o.ob_len);
	bad[5] ^= 1;
	e->done = false;
	e->nreq = 0;
	fetch_start(e, OBJ_MAX, true, 0, 9);
	answer_outboard(e, bad);
	assert_int_equal(e->outcome, PEER_FETCH_BAD_BYTES);
	assert_false(e->info_ob_ok);
}

/* A peer that refuses the range parameter (400) or ignores it (200 with the
 * whole object) does not serve ranges: no_range, nothing delivered, not
 * bad_bytes. A whole fetch answered 400 is still a refusal. */
static void test_range_not_served_is_no_range(void **state)
{
	env *e = *state;
	char meta[96];
	uint64_t before = fetches("no_range");

	obj_make(&e->o, 3 * G);
	snprintf(meta, sizeof meta, "{\"len\":%" PRIu64 ",\"start\":0,\"end\":%" PRIu64 "}",
	         e->o.len, e->o.len - 1);
	for (int i = 0; i < 2; i++) {
		e->done = false;
		e->nreq = 0;
		fetch_start(e, OBJ_MAX, true, G, G + 9);
		answer_outboard(e, e->o.ob);
		answer_start(e, i == 0 ? 400 : 200, i == 0 ? "{\"code\":\"bad_request\"}" : meta);
		assert_true(e->done);
		assert_int_equal(e->outcome, PEER_FETCH_NO_RANGE);
		assert_int_equal(e->got_len, 0);
		(void)event_base_loop(e->base, EVLOOP_NONBLOCK);
	}
	assert_int_equal(fetches("no_range"), before + 2);
	assert_string_equal(peer_fetch_outcome_name(PEER_FETCH_NO_RANGE), "no_range");
	e->done = false;
	e->nreq = 0;
	fetch_start(e, OBJ_MAX, false, 0, 0);
	answer_outboard(e, e->o.ob);
	answer_start(e, 400, "{\"code\":\"bad_request\"}");
	assert_int_equal(e->outcome, PEER_FETCH_REFUSED);
}

static void test_too_large_before_any_outboard_byte(void **state)
{
	env *e = *state;

	obj_make(&e->o, 3 * G);
	fetch_start(e, 3 * G - 1, false, 0, 0);
	answer_outboard(e, e->o.ob);
	assert_true(e->done);
	assert_int_equal(e->outcome, PEER_FETCH_TOO_LARGE);
	assert_int_equal(e->info_len, 3 * G);
	assert_int_equal(e->nreq, 1);
}

static void test_refusals_and_failures(void **state)
{
	env *e = *state;
	struct { int status; oap_client_error err; peer_fetch_outcome want; } cases[] = {
		{ 404, OAP_CLIENT_OK, PEER_FETCH_NOT_FOUND },
		{ 403, OAP_CLIENT_OK, PEER_FETCH_REFUSED },
		{ 401, OAP_CLIENT_OK, PEER_FETCH_REFUSED },
		{ 429, OAP_CLIENT_OK, PEER_FETCH_REFUSED },
		{ 503, OAP_CLIENT_OK, PEER_FETCH_REFUSED },
		{ 0, OAP_CLIENT_TIMEOUT, PEER_FETCH_STALLED },
		{ 0, OAP_CLIENT_PIN, PEER_FETCH_PIN },
		{ 0, OAP_CLIENT_CONNECT, PEER_FETCH_CONNECT },
		{ 0, OAP_CLIENT_TLS, PEER_FETCH_CONNECT },
		{ 0, OAP_CLIENT_PROTOCOL, PEER_FETCH_BAD_BYTES },
		{ 0, OAP_CLIENT_CLOSED, PEER_FETCH_REFUSED },
	};

	obj_make(&e->o, G);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		e->done = false;
		e->nreq = 0;
		fetch_start(e, OBJ_MAX, false, 0, 0);
		if (cases[i].status)
			answer_start(e, cases[i].status, "{\"code\":\"x\"}");
		else
			peer_fetch_test_error(e->f, cases[i].err, "test");
		assert_true(e->done);
		assert_int_equal(e->outcome, cases[i].want);
		assert_int_equal(e->got_len, 0);
		(void)event_base_loop(e->base, EVLOOP_NONBLOCK);
	}
	e->f = NULL;
}

static void test_deadline_is_stalled(void **state)
{
	env *e = *state;
	peer_fetch_req req = { .addr = "127.0.0.1:1", .cid = NULL, .max_len = OBJ_MAX,
	                       .deadline_ms = 20 };

	obj_make(&e->o, G);
	req.cid = e->o.cid;
	req.node_id = e->o.cid;
	e->f = peer_fetch_test_new(e->base, &req, sink, done, e, issue, e);
	assert_non_null(e->f);
	peer_fetch_test_ready(e->f);
	while (!e->done)
		(void)event_base_loop(e->base, EVLOOP_ONCE);
	assert_int_equal(e->outcome, PEER_FETCH_STALLED);
}

static void test_outcome_names(void **state)
{
	(void)state;
	assert_string_equal(peer_fetch_outcome_name(PEER_FETCH_OK), "ok");
	assert_string_equal(peer_fetch_outcome_name(PEER_FETCH_BAD_BYTES), "bad_bytes");
	assert_string_equal(peer_fetch_outcome_name(PEER_FETCH_TOO_LARGE), "too_large");
	assert_string_equal(peer_fetch_outcome_name(PEER_FETCH_OUTCOMES), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_whole_object_verified, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flip_in_group_3_sink_saw_groups_0_to_2, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_bad_outboard_stops_before_any_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outboard_too_long_or_short, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metadata_lies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_out_of_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_answer_must_match_outboard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_body_and_extra_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_group_object_checked_against_cid, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_empty_object, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outboard_handed_over_once_verified, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_range_not_served_is_no_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_fetches_only_its_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_past_end_and_clamped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_large_before_any_outboard_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals_and_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_is_stalled, setup, teardown),
		cmocka_unit_test(test_outcome_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
