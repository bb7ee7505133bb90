/*
 * peer_fetch.c — libFuzzer target for the verified peer fetch
 * (src/core/objects/peer_fetch.c): the input is a script of answers a peer
 * could send (START with any status and JSON, data frames, END, connection
 * errors), played through peer_fetch_test.h against a fixed 3-group object
 * (2 × 64 KiB + 1000 bytes). Run:
 *   build-fuzz/fuzz/fuzz_peer_fetch -max_len=512 fuzz/corpus/peer_fetch
 *
 * Script, one op after another (a short op ends the script):
 *   0 START  status:u16 n:u8 json[n]
 *   1 DATA   n:u8 bytes[n]
 *   2 TRUE   src:u8 off:u32 n:u16 flip:u16   (n 0 = 65536; a slice of the true outboard
 *            (src even) or object (src odd), byte flip XOR 1 unless 0xffff:
 *            lets the fuzzer say correct things compactly)
 *   3 END
 *   4 ERROR  code:u8
 *   5 META   the correct START 200 metadata for the current request
 *   6 RANGE  (first op only) s:u32 e:u32: fetch that range
 *
 * Invariant (abort on violation): every byte the sink receives is the true
 * object's byte at that offset, offsets are contiguous, and done comes at
 * most once; OK only when the sink got exactly the bytes asked for.
 */
#include <event2/event.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/objects/peer_fetch.h"
#include "core/objects/peer_fetch_test.h"
#include "lib/b3tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_LEN  (2u * B3TREE_GROUP_LEN + 1000u)
#define FZ_OBL  (3u * B3TREE_CV_LEN)

static struct event_base *fz_base;
static uint8_t fz_obj[FZ_LEN], fz_ob[FZ_OBL], fz_cid[B3_OUT_LEN];
static char fz_cid_text[B3_CID_LEN + 1];

typedef struct fz_run {
	peer_fetch *f;
	int         nreq;
	uint16_t    verb;
	char        params[256];
	bool        done;
	peer_fetch_outcome outcome;
	bool        have_first;
	uint64_t    first, next, got;
	uint64_t    want_s, want_e;
} fz_run;

static void fz_init(void)
{
	static b3tree_builder b;

	for (size_t i = 0; i < FZ_LEN; i++)
		fz_obj[i] = (uint8_t)(i * 131u + 7u);
	b3tree_builder_init(&b, fz_ob, sizeof fz_ob);
	if (b3tree_builder_update(&b, fz_obj, FZ_LEN) != 0 || b3tree_builder_finish(&b, fz_cid) != 0)
		abort();
	b3_cid_format(fz_cid, fz_cid_text);
	fz_base = event_base_new();
	if (!fz_base)
		abort();
}

static int fz_issue(void *arg, uint16_t verb, const char *params)
{
	fz_run *r = arg;

	r->nreq++;
	r->verb = verb;
	snprintf(r->params, sizeof r->params, "%s", params);
	return 0;
}

static void fz_sink(void *arg, uint64_t off, const uint8_t *p, size_t n)
{
	fz_run *r = arg;

	if (!r->have_first) {
		r->have_first = true;
		r->first = r->next = off;
	}
	if (off != r->next || off + n > FZ_LEN || memcmp(p, fz_obj + off, n) != 0)
		abort();   /* an unverified or misplaced byte reached the sink */
	r->next += n;
	r->got += n;
}

static void fz_done(void *arg, peer_fetch_outcome o, const peer_fetch_info *info)
{
	fz_run *r = arg;

	(void)info;
	if (r->done)
		abort();
	r->done = true;
	r->outcome = o;
}

/* The correct START metadata for the request last issued. */
static void fz_meta(fz_run *r)
{
	char j[160];
	unsigned long long s = 0, e = FZ_LEN - 1;
	int status = 200;

	if (r->verb == PEER_FETCH_VERB_OUTBOARD) {
		snprintf(j, sizeof j, "{\"len\":%u,\"groups\":3}", FZ_LEN);
	} else {
		const char *rg = strstr(r->params, "\"range\":[");

		if (rg && sscanf(rg, "\"range\":[%llu,%llu]", &s, &e) == 2)
			status = 206;
		snprintf(j, sizeof j, "{\"len\":%u,\"start\":%llu,\"end\":%llu}", FZ_LEN, s, e);
	}
	peer_fetch_test_answer.on_start(r->f, status, (const uint8_t *)j, strlen(j));
}

static uint32_t fz_u(const uint8_t *p, size_t n)
{
	uint32_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* One op at p (avail bytes): its length, or 0 when the script ends. */
static size_t fz_op(fz_run *r, const uint8_t *p, size_t avail)
{
	const oap_call_cbs *a = &peer_fetch_test_answer;

	switch (p[0] % 6) {
	case 0:
		if (avail < 4 || avail < 4u + p[3])
			return 0;
		a->on_start(r->f, (int)fz_u(p + 1, 2), p + 4, p[3]);
		return 4u + p[3];
	case 1:
		if (avail < 2 || avail < 2u + p[1])
			return 0;
		a->on_data(r->f, p + 2, p[1]);
		return 2u + p[1];
	case 2: {
		uint8_t buf[B3TREE_GROUP_LEN];
		const uint8_t *src;
		size_t total;
		uint32_t off, n, flip;

		if (avail < 10)
			return 0;
		src = (p[1] & 1) ? fz_obj : fz_ob;
		total = (p[1] & 1) ? FZ_LEN : FZ_OBL;
		off = fz_u(p + 2, 4) % (uint32_t)total;
		n = fz_u(p + 6, 2);
		if (n == 0)
			n = B3TREE_GROUP_LEN;
		flip = fz_u(p + 8, 2);
		if (n > total - off)
			n = (uint32_t)(total - off);
		memcpy(buf, src + off, n);
		if (flip != 0xffff && n)
			buf[flip % n] ^= 1;
		a->on_data(r->f, buf, n);
		return 10;
	}
	case 3:
		a->on_end(r->f);
		return 1;
	case 4:
		if (avail < 2)
			return 0;
		peer_fetch_test_error(r->f, (oap_client_error)(1 + p[1] % 7), "fuzz");
		return 2;
	default:
		fz_meta(r);
		return 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	peer_fetch_req req = { .addr = "127.0.0.1:1", .node_id = fz_cid, .cid = fz_cid,
	                       .max_len = FZ_LEN };
	fz_run r = { 0 };
	size_t used;

	if (!fz_base)
		fz_init();
	if (size >= 9 && data[0] == 6) {
		req.has_range = true;
		req.start = fz_u(data + 1, 4);
		req.end = fz_u(data + 5, 4);
		if (req.end < req.start)
			req.end = req.start;
		data += 9;
		size -= 9;
	}
	r.f = peer_fetch_test_new(fz_base, &req, fz_sink, fz_done, &r, fz_issue, &r);
	if (!r.f)
		abort();
	peer_fetch_test_ready(r.f);
	while (size > 0 && !r.done && (used = fz_op(&r, data, size)) != 0) {
		data += used;
		size -= used;
	}
	if (r.done && r.outcome == PEER_FETCH_OK) {
		uint64_t last = FZ_LEN - 1, s = req.has_range ? req.start : 0;
		uint64_t e = req.has_range && req.end < last ? req.end : last;

		if (r.got != e - s + 1 || (r.got && r.first != s))
			abort();   /* "ok" without exactly the bytes asked for */
	}
	if (!r.done)
		peer_fetch_cancel(r.f);
	(void)event_base_loop(fz_base, EVLOOP_NONBLOCK);   /* the reap */
	return 0;
}
