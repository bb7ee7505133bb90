/* The storage messages (src/core/objects/stor_msg.h): every verb's request
 * and 200 reply, and the error reply, round-trip exactly; every truncation
 * and every extension of an encoded message is refused; fields out of range
 * (a bool of 2, an unknown error code, groups that disagree with len, an
 * unknown verb or status) are refused too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/objects/stor_msg.h"
#include "lib/b3tree.h"

static void fill_id(uint8_t id[STOR_ID_LEN], uint8_t seed)
{
	for (unsigned i = 0; i < STOR_ID_LEN; i++)
		id[i] = (uint8_t)(seed + i * 7u);
}

/* Samples are built field by field in zeroed memory, so that comparing
 * whole structs (padding included) with what the decoder produced, which
 * zeroes first, is meaningful. */
static stor_req *next_req(stor_req *q, size_t *n, uint16_t verb)
{
	memset(&q[*n], 0, sizeof q[*n]);
	q[*n].verb = verb;
	return &q[(*n)++];
}

/* One request of each verb (PUT_COMMIT with and without expect). */
static size_t sample_reqs(stor_req *q)
{
	size_t n = 0;
	stor_req *x;

	(void)next_req(q, &n, STOR_PING);
	fill_id(next_req(q, &n, STOR_STAT)->u.stat.id, 1);
	fill_id(next_req(q, &n, STOR_OPEN)->u.open.id, 2);
	fill_id(next_req(q, &n, STOR_QUARANTINE)->u.quarantine.id, 3);
	next_req(q, &n, STOR_PUT_BEGIN)->u.put_begin.max_len = UINT64_MAX - 1;
	x = next_req(q, &n, STOR_PUT_BEGIN);   /* with both share keys, the longest */
	x->u.put_begin.max_len = 5;
	memset(x->u.put_begin.tenant, 't', STOR_KEY_MAX - 1);
	memset(x->u.put_begin.peer, 'p', STOR_KEY_MAX - 1);
	x = next_req(q, &n, STOR_PUT_BEGIN);
	memcpy(x->u.put_begin.tenant, "tid:abc", 7);
	memcpy(x->u.put_begin.peer, "ip:2001:db8::", 13);
	next_req(q, &n, STOR_PUT_ABORT)->u.put_abort.handle = 0x0102030405060708ull;
	x = next_req(q, &n, STOR_PUT_COMMIT);
	x->u.put_commit.handle = 9;
	x->u.put_commit.len = 1u << 20;
	x = next_req(q, &n, STOR_PUT_COMMIT);
	x->u.put_commit.handle = 10;
	x->u.put_commit.has_expect = true;
	fill_id(x->u.put_commit.expect, 4);
	x = next_req(q, &n, STOR_PUT_COMMIT);   /* a cache copy (the overlay's fetch) */
	x->u.put_commit.handle = 11;
	x->u.put_commit.len = 7;
	x->u.put_commit.has_expect = true;
	x->u.put_commit.cache = true;
	fill_id(x->u.put_commit.expect, 6);
	fill_id(next_req(q, &n, STOR_PIN)->u.pin.id, 7);
	fill_id(next_req(q, &n, STOR_META_GET)->u.meta_get.id, 8);
	x = next_req(q, &n, STOR_META_SET);
	fill_id(x->u.meta_set.id, 9);
	memcpy(x->u.meta_set.ctype, "text/plain; charset=utf-8", 25);
	x = next_req(q, &n, STOR_META_SET);   /* the longest type, sniffed on a read */
	memset(x->u.meta_set.ctype, 'x', STOR_CTYPE_MAX - 1);
	x->u.meta_set.by_read = true;
	return n;
}

static stor_rep *next_rep(stor_rep *r, size_t *n, uint16_t verb)
{
	memset(&r[*n], 0, sizeof r[*n]);
	r[*n].verb = verb;
	r[*n].status = 200;
	return &r[(*n)++];
}

/* One 200 reply of each verb, and error replies (stor_msg_rep_err zeroes). */
static size_t sample_reps(stor_rep *r)
{
	size_t n = 0;
	stor_rep *x;

	(void)next_rep(r, &n, STOR_PING);
	next_rep(r, &n, STOR_STAT)->u.stat.len = 12345;
	x = next_rep(r, &n, STOR_OPEN);
	x->u.open.len = 3u << 16;
	x->u.open.groups = b3tree_groups(3u << 16);
	next_rep(r, &n, STOR_PUT_BEGIN)->u.put_begin.handle = 77;
	x = next_rep(r, &n, STOR_PUT_COMMIT);
	x->u.put_commit.created = true;
	fill_id(x->u.put_commit.id, 5);
	(void)next_rep(r, &n, STOR_PUT_ABORT);
	(void)next_rep(r, &n, STOR_QUARANTINE);
	next_rep(r, &n, STOR_PIN)->u.pin.len = 99;
	x = next_rep(r, &n, STOR_META_GET);   /* no type recorded */
	x->u.meta.len = 5;
	x = next_rep(r, &n, STOR_META_SET);
	x->u.meta.len = 1u << 30;
	memcpy(x->u.meta.ctype, "image/png", 9);
	x = next_rep(r, &n, STOR_META_GET);   /* a read's type */
	x->u.meta.len = 3;
	memcpy(x->u.meta.ctype, "image/gif", 9);
	x->u.meta.by_read = true;
	stor_msg_rep_err(&r[n++], STOR_META_SET, 400, "not a media type");
	stor_msg_rep_err(&r[n++], STOR_STAT, 404, "not found");
	stor_msg_rep_err(&r[n++], STOR_PUT_BEGIN, 503, "too many uploads open (storage.max_uploads)");
	stor_msg_rep_err(&r[n++], STOR_OPEN, 500, "");
	return n;
}

/* Every prefix and every one-byte extension of an encoded message fails. */
static void check_req_edges(const stor_req *q, const uint8_t *buf, size_t len)
{
	uint8_t big[STOR_MSG_MAX + 1];
	stor_req back;

	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(stor_msg_req_decode(q->verb, buf, cut, &back), -1);
	memcpy(big, buf, len);
	for (unsigned b = 0; b < 256; b += 51) {
		big[len] = (uint8_t)b;
		assert_int_equal(stor_msg_req_decode(q->verb, big, len + 1, &back), -1);
	}
}

static void check_rep_edges(const stor_rep *r, const uint8_t *buf, size_t len)
{
	uint8_t big[STOR_MSG_MAX + 1];
	stor_rep back;

	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(stor_msg_rep_decode(r->verb, r->status, buf, cut, &back), -1);
	memcpy(big, buf, len);
	for (unsigned b = 0; b < 256; b += 51) {
		big[len] = (uint8_t)b;
		assert_int_equal(stor_msg_rep_decode(r->verb, r->status, big, len + 1, &back), -1);
	}
}

static void test_req_roundtrip(void **state)
{
	stor_req q[16], back;
	uint8_t buf[STOR_MSG_MAX], again[STOR_MSG_MAX];
	size_t n = sample_reqs(q);

	(void)state;
	for (size_t i = 0; i < n; i++) {
		ssize_t len = stor_msg_req_encode(&q[i], buf, sizeof buf);
		assert_true(len >= 0);
		assert_int_equal(stor_msg_req_decode(q[i].verb, buf, (size_t)len, &back), 0);
		assert_memory_equal(&back, &q[i], sizeof back);
		assert_int_equal(stor_msg_req_encode(&back, again, sizeof again), len);
		assert_memory_equal(again, buf, (size_t)len);
		check_req_edges(&q[i], buf, (size_t)len);
		if (len > 0)   /* a buffer one byte short is a bug of the caller */
			assert_int_equal(stor_msg_req_encode(&q[i], buf, (size_t)len - 1), -1);
	}
}

static void test_rep_roundtrip(void **state)
{
	stor_rep r[16], back;
	uint8_t buf[STOR_MSG_MAX], again[STOR_MSG_MAX];
	size_t n = sample_reps(r);

	(void)state;
	for (size_t i = 0; i < n; i++) {
		ssize_t len = stor_msg_rep_encode(&r[i], buf, sizeof buf);
		assert_true(len >= 0);
		assert_int_equal(stor_msg_rep_decode(r[i].verb, r[i].status, buf, (size_t)len, &back), 0);
		assert_memory_equal(&back, &r[i], sizeof back);
		assert_int_equal(stor_msg_rep_encode(&back, again, sizeof again), len);
		assert_memory_equal(again, buf, (size_t)len);
		check_rep_edges(&r[i], buf, (size_t)len);
	}
}

static void test_req_sizes(void **state)
{
	stor_req q = { .verb = STOR_PUT_COMMIT, .u.put_commit.has_expect = true };
	uint8_t buf[STOR_MSG_MAX];

	(void)state;
	assert_int_equal(stor_msg_req_encode(&(stor_req){ .verb = STOR_PING }, buf, sizeof buf), 0);
	assert_int_equal(stor_msg_req_encode(&q, buf, sizeof buf), 8 + 8 + 1 + STOR_ID_LEN + 1);
	q.u.put_commit.has_expect = false;
	assert_int_equal(stor_msg_req_encode(&q, buf, sizeof buf), 8 + 8 + 1 + 1);
	q.u.put_commit.cache = true;   /* the cache flag is the last byte */
	assert_int_equal(stor_msg_req_encode(&q, buf, sizeof buf), 8 + 8 + 1 + 1);
	assert_int_equal(buf[17], 1);
	assert_int_equal(stor_msg_req_encode(&(stor_req){ .verb = STOR_PIN }, buf, sizeof buf),
	                 STOR_ID_LEN);
	/* PUT_BEGIN: max_len, then each key as a u16 length and its bytes */
	stor_req b = { .verb = STOR_PUT_BEGIN };
	assert_int_equal(stor_msg_req_encode(&b, buf, sizeof buf), 8 + 2 + 2);
	memset(b.u.put_begin.tenant, 't', STOR_KEY_MAX - 1);
	memset(b.u.put_begin.peer, 'p', STOR_KEY_MAX - 1);
	assert_int_equal(stor_msg_req_encode(&b, buf, sizeof buf), STOR_REQ_MAX);
	/* a key with no NUL in its array is the caller's bug */
	b.u.put_begin.peer[STOR_KEY_MAX - 1] = 'p';
	assert_int_equal(stor_msg_req_encode(&b, buf, sizeof buf), -1);
}

static void test_bad_fields(void **state)
{
	uint8_t commit[8 + 8 + 1 + 1] = { 0 }, open[16] = { 0 }, begin[8] = { 0 };
	uint8_t begin_keys[8 + 2 + 2 + 2] = { 0 };
	uint8_t created[STOR_ID_LEN + 1] = { 0 }, err[4] = { STOR_ERR_NOT_FOUND, 0, 0, 0 };
	stor_req q;
	stor_rep r;

	(void)state;
	commit[16] = 2;   /* has_expect is a bool */
	assert_int_equal(stor_msg_req_decode(STOR_PUT_COMMIT, commit, sizeof commit, &q), -1);
	commit[16] = 0;
	assert_int_equal(stor_msg_req_decode(STOR_PUT_COMMIT, commit, sizeof commit, &q), 0);
	assert_false(q.u.put_commit.has_expect);
	assert_false(q.u.put_commit.cache);
	commit[17] = 2;   /* so is cache */
	assert_int_equal(stor_msg_req_decode(STOR_PUT_COMMIT, commit, sizeof commit, &q), -1);
	commit[17] = 1;
	assert_int_equal(stor_msg_req_decode(STOR_PUT_COMMIT, commit, sizeof commit, &q), 0);
	assert_true(q.u.put_commit.cache);
	/* the commit of before the cache flag (17 bytes) is no longer a message */
	assert_int_equal(stor_msg_req_decode(STOR_PUT_COMMIT, commit, 17, &q), -1);
	/* a refused decode leaves nothing half-read (found by fuzz_stor_msg:
	 * the verb used to stay set) */
	static const uint8_t zero_req[sizeof(stor_req)], zero_rep[sizeof(stor_rep)];
	assert_int_equal(stor_msg_req_decode(STOR_STAT, begin, sizeof begin, &q), -1);
	assert_memory_equal(&q, zero_req, sizeof q);
	assert_int_equal(stor_msg_rep_decode(STOR_STAT, 200, commit, sizeof commit, &r), -1);
	assert_memory_equal(&r, zero_rep, sizeof r);
	/* PUT_BEGIN: the old 8-byte form lacks its keys; a key longer than
	 * STOR_KEY_MAX - 1 or holding a NUL is refused */
	assert_int_equal(stor_msg_req_decode(STOR_PUT_BEGIN, begin, sizeof begin, &q), -1);
	begin_keys[9] = 2;   /* tenant "\0x" */
	begin_keys[11] = 'x';
	assert_int_equal(stor_msg_req_decode(STOR_PUT_BEGIN, begin_keys, sizeof begin_keys, &q), -1);
	begin_keys[10] = 'y';
	assert_int_equal(stor_msg_req_decode(STOR_PUT_BEGIN, begin_keys, sizeof begin_keys, &q), 0);
	assert_string_equal(q.u.put_begin.tenant, "yx");
	assert_string_equal(q.u.put_begin.peer, "");
	uint8_t longkey[8 + 2 + STOR_KEY_MAX + 2] = { 0 };
	longkey[8] = (uint8_t)(STOR_KEY_MAX >> 8);
	longkey[9] = (uint8_t)STOR_KEY_MAX;
	memset(longkey + 10, 'k', STOR_KEY_MAX);
	assert_int_equal(stor_msg_req_decode(STOR_PUT_BEGIN, longkey, sizeof longkey, &q), -1);
	longkey[9] = (uint8_t)(STOR_KEY_MAX - 1);   /* the longest that fits */
	longkey[10 + STOR_KEY_MAX - 1] = 0;         /* then an empty peer */
	assert_int_equal(stor_msg_req_decode(STOR_PUT_BEGIN, longkey, sizeof longkey - 1, &q), 0);
	/* unknown verbs, both ways */
	assert_int_equal(stor_msg_req_decode(0, NULL, 0, &q), -1);
	assert_int_equal(stor_msg_req_decode(STOR_VERB_LAST + 1, NULL, 0, &q), -1);
	assert_int_equal(stor_msg_req_encode(&(stor_req){ .verb = 0 }, begin, sizeof begin), -1);
	assert_int_equal(stor_msg_rep_decode(0, 200, NULL, 0, &r), -1);
	/* OPEN: groups must be b3tree_groups(len) */
	open[15] = 1;     /* len 0 is one (empty) group */
	assert_int_equal(stor_msg_rep_decode(STOR_OPEN, 200, open, sizeof open, &r), 0);
	open[15] = 7;
	assert_int_equal(stor_msg_rep_decode(STOR_OPEN, 200, open, sizeof open, &r), -1);
	created[STOR_ID_LEN] = 2;
	assert_int_equal(stor_msg_rep_decode(STOR_PUT_COMMIT, 200, created, sizeof created, &r), -1);
	/* statuses: 200 or 400..599 only */
	assert_int_equal(stor_msg_rep_decode(STOR_PING, 201, NULL, 0, &r), -1);
	assert_int_equal(stor_msg_rep_decode(STOR_PING, 399, err, sizeof err, &r), -1);
	assert_int_equal(stor_msg_rep_decode(STOR_PING, 600, err, sizeof err, &r), -1);
	assert_int_equal(stor_msg_rep_decode(STOR_PING, 404, err, sizeof err, &r), 0);
	assert_string_equal(r.u.err.message, "");
	/* error code in range; retryable a bool; the message fits and has no NUL */
	err[0] = 0;
	assert_int_equal(stor_msg_rep_decode(STOR_PING, 404, err, sizeof err, &r), -1);
	err[0] = STOR_ERR_LAST + 1;
	assert_int_equal(stor_msg_rep_decode(STOR_PING, 404, err, sizeof err, &r), -1);
	err[0] = STOR_ERR_NOT_FOUND;
	err[1] = 2;
	assert_int_equal(stor_msg_rep_decode(STOR_PING, 404, err, sizeof err, &r), -1);
	uint8_t nul[5] = { STOR_ERR_NOT_FOUND, 0, 0, 1, 0 };
	assert_int_equal(stor_msg_rep_decode(STOR_PING, 404, nul, sizeof nul, &r), -1);
	uint8_t longmsg[4 + STOR_MSG_TEXT_MAX] = { STOR_ERR_NOT_FOUND, 0, 0, STOR_MSG_TEXT_MAX };
	memset(longmsg + 4, 'a', STOR_MSG_TEXT_MAX);
	assert_int_equal(stor_msg_rep_decode(STOR_PING, 404, longmsg, sizeof longmsg, &r), -1);
	longmsg[3] = STOR_MSG_TEXT_MAX - 1;   /* the longest that fits */
	assert_int_equal(stor_msg_rep_decode(STOR_PING, 404, longmsg, sizeof longmsg - 1, &r), 0);
}

/* A type that fills its array without a NUL is the caller's bug: refused. */
static void test_meta_unterminated(void **state)
{
	stor_req q;
	stor_rep r;
	uint8_t buf[STOR_MSG_MAX];

	(void)state;
	memset(&q, 0, sizeof q);
	q.verb = STOR_META_SET;
	memset(q.u.meta_set.ctype, 'a', sizeof q.u.meta_set.ctype);
	assert_int_equal(stor_msg_req_encode(&q, buf, sizeof buf), -1);
	memset(&r, 0, sizeof r);
	r.verb = STOR_META_GET;
	r.status = 200;
	memset(r.u.meta.ctype, 'a', sizeof r.u.meta.ctype);
	assert_int_equal(stor_msg_rep_encode(&r, buf, sizeof buf), -1);
}

static void test_err_and_nfds(void **state)
{
	char longer[2 * STOR_MSG_TEXT_MAX];
	stor_rep r;

	(void)state;
	stor_msg_rep_err(&r, STOR_OPEN, 503, "busy");
	assert_int_equal(r.u.err.code, STOR_ERR_UNAVAILABLE);
	assert_true(r.u.err.retryable);
	assert_int_equal(stor_msg_rep_nfds(&r), 0);
	stor_msg_rep_err(&r, STOR_OPEN, 422, "x");
	assert_int_equal(r.u.err.code, STOR_ERR_HASH_MISMATCH);
	assert_false(r.u.err.retryable);
	memset(longer, 'm', sizeof longer - 1);
	longer[sizeof longer - 1] = '\0';
	stor_msg_rep_err(&r, 0, 413, longer);   /* no verb: the oversize-datagram reply */
	assert_int_equal(strlen(r.u.err.message), STOR_MSG_TEXT_MAX - 1);
	uint8_t buf[STOR_MSG_MAX];
	assert_true(stor_msg_rep_encode(&r, buf, sizeof buf) > 0);
	assert_int_equal(stor_msg_rep_nfds(&(stor_rep){ .verb = STOR_OPEN, .status = 200 }), 2);
	assert_int_equal(stor_msg_rep_nfds(&(stor_rep){ .verb = STOR_PUT_BEGIN, .status = 200 }), 1);
	assert_int_equal(stor_msg_rep_nfds(&(stor_rep){ .verb = STOR_STAT, .status = 200 }), 0);
	assert_string_equal(stor_msg_verb_name(STOR_PUT_COMMIT), "PUT_COMMIT");
	assert_string_equal(stor_msg_verb_name(STOR_PIN), "PIN");
	assert_string_equal(stor_msg_verb_name(99), "unknown");
	/* a 200 reply needs a known verb */
	assert_int_equal(stor_msg_rep_encode(&(stor_rep){ .verb = 99, .status = 200 }, buf, sizeof buf), -1);
	assert_int_equal(stor_msg_rep_encode(&(stor_rep){ .verb = STOR_PING, .status = 302 }, buf,
	                                     sizeof buf), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_req_roundtrip),
		cmocka_unit_test(test_rep_roundtrip),
		cmocka_unit_test(test_req_sizes),
		cmocka_unit_test(test_bad_fields),
		cmocka_unit_test(test_err_and_nfds),
		cmocka_unit_test(test_meta_unterminated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
