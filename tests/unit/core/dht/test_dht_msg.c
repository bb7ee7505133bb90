/* The dht service's messages (src/core/dht/dht_msg.h): every request and
 * reply round-trips; every cut and every trailing byte is refused; values
 * out of range (kind, empty or oversized value, counts past their caps,
 * unknown verbs and statuses) are refused by the decoder and the encoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/dht/dht_msg.h"
#include "lib/wire.h"

static uint8_t buf[DHT_MSG_MAX + 1], again[DHT_MSG_MAX];
static dht_rep rep, back;

static void req_round_trip(const dht_req *q)
{
	dht_req b;
	ssize_t n = dht_msg_req_encode(q, buf, DHT_MSG_MAX);

	assert_true(n >= 0);
	assert_int_equal(dht_msg_req_decode(q->verb, buf, (size_t)n, &b), 0);
	assert_int_equal(dht_msg_req_encode(&b, again, sizeof again), n);
	assert_memory_equal(again, buf, (size_t)n);
	for (size_t cut = 0; cut < (size_t)n; cut++)
		assert_int_equal(dht_msg_req_decode(q->verb, buf, cut, &b), -1);
	buf[n] = 7;
	assert_int_equal(dht_msg_req_decode(q->verb, buf, (size_t)n + 1, &b), -1);
}

static void rep_round_trip(const dht_rep *r)
{
	ssize_t n = dht_msg_rep_encode(r, buf, DHT_MSG_MAX);

	assert_true(n >= 0);
	assert_int_equal(dht_msg_rep_decode(r->verb, r->status, buf, (size_t)n, &back), 0);
	assert_int_equal(dht_msg_rep_encode(&back, again, sizeof again), n);
	assert_memory_equal(again, buf, (size_t)n);
	for (size_t cut = 0; cut < (size_t)n; cut += 1 + (size_t)n / 64)
		assert_int_equal(dht_msg_rep_decode(r->verb, r->status, buf, cut, &back), -1);
	buf[n] = 7;
	assert_int_equal(dht_msg_rep_decode(r->verb, r->status, buf, (size_t)n + 1, &back), -1);
}

static void test_requests(void **state)
{
	static const uint8_t v[DHT_VALUE_MAX] = { 1 };
	dht_req q = { .verb = DHT_ANNOUNCE };

	(void)state;
	memset(q.u.announce.cid, 0xab, 32);
	req_round_trip(&q);
	q.verb = DHT_FIND;
	req_round_trip(&q);
	q = (dht_req){ .verb = DHT_PUT, .u.put = { .kind = DHT_KIND_NAME, .value = v, .len = DHT_VALUE_MAX } };
	req_round_trip(&q);
	q = (dht_req){ .verb = DHT_GET, .u.get = { .kind = DHT_KIND_PROVIDER } };
	req_round_trip(&q);
	for (uint16_t verb = DHT_PING; verb <= DHT_VERB_LAST; verb++)
		if (verb == DHT_PING || verb == DHT_PEERS || verb == DHT_STATUS)
			req_round_trip(&(dht_req){ .verb = verb });
	assert_string_equal(dht_msg_verb_name(DHT_FIND), "FIND");
	assert_string_equal(dht_msg_verb_name(99), "unknown");
}

static void test_request_limits(void **state)
{
	static const uint8_t v[DHT_VALUE_MAX + 1] = { 1 };
	dht_req q = { .verb = DHT_PUT, .u.put = { .kind = DHT_KIND_PROVIDER, .value = v,
	                                          .len = DHT_VALUE_MAX + 1 } };
	dht_req b;

	(void)state;
	assert_int_equal(dht_msg_req_encode(&q, buf, DHT_MSG_MAX), -1);   /* oversized value */
	q.u.put.len = 0;
	assert_int_equal(dht_msg_req_encode(&q, buf, DHT_MSG_MAX), -1);   /* empty value */
	q.u.put.len = 1;
	q.u.put.kind = 0;
	assert_int_equal(dht_msg_req_encode(&q, buf, DHT_MSG_MAX), -1);   /* unknown kind */
	/* the same on the decoding side, written by hand */
	wire_w w;
	wire_w_init(&w, buf, DHT_MSG_MAX);
	wire_put_u8(&w, DHT_KIND_LAST + 1);
	wire_put_raw(&w, v, DHT_KEY_LEN);
	wire_put_blob(&w, v, 1);
	assert_int_equal(wire_w_ok(&w), 0);
	assert_int_equal(dht_msg_req_decode(DHT_PUT, buf, w.len, &b), -1);
	wire_w_init(&w, buf, DHT_MSG_MAX);
	wire_put_u8(&w, DHT_KIND_PROVIDER);
	wire_put_raw(&w, v, DHT_KEY_LEN);
	wire_put_blob(&w, v, DHT_VALUE_MAX + 1);
	assert_int_equal(wire_w_ok(&w), 0);
	assert_int_equal(dht_msg_req_decode(DHT_PUT, buf, w.len, &b), -1);
	assert_int_equal(dht_msg_req_decode(0, NULL, 0, &b), -1);
	assert_int_equal(dht_msg_req_decode(DHT_VERB_LAST + 1, NULL, 0, &b), -1);
}

static void test_replies(void **state)
{
	static const uint8_t v[DHT_VALUE_MAX] = { 2 };

	(void)state;
	memset(&rep, 0, sizeof rep);
	rep = (dht_rep){ .verb = DHT_FIND, .status = 200 };
	rep.u.find.n = DHT_GET_MAX;
	for (unsigned i = 0; i < DHT_GET_MAX; i++) {
		memset(rep.u.find.p[i].node_pk, (int)i, 32);
		memcpy(rep.u.find.p[i].oap_addr, "127.0.0.1:9443", 15);
		rep.u.find.p[i].expires = 1700000000u + (uint64_t)i;
	}
	rep_round_trip(&rep);
	memset(&rep, 0, sizeof rep);
	rep = (dht_rep){ .verb = DHT_GET, .status = 200 };
	rep.u.get.n = DHT_GET_MAX;
	for (unsigned i = 0; i < DHT_GET_MAX; i++) {
		rep.u.get.v[i] = v;
		rep.u.get.len[i] = DHT_VALUE_MAX;
	}
	rep_round_trip(&rep);   /* the largest message */
	assert_int_equal(dht_msg_rep_encode(&rep, buf, DHT_MSG_MAX), DHT_MSG_MAX);
	memset(&rep, 0, sizeof rep);
	rep = (dht_rep){ .verb = DHT_PEERS, .status = 200 };
	rep.u.peers = (dht_rep_peers){ .good = 3, .dubious = 1, .n = 2 };
	memcpy(rep.u.peers.p[1].addr, "[::1]:4222", 11);
	rep_round_trip(&rep);
	memset(&rep, 0, sizeof rep);
	rep = (dht_rep){ .verb = DHT_STATUS, .status = 200 };
	rep.u.status = (dht_rep_status){ .good = 1, .bootstrapped = true, .ops = 4 };
	memcpy(rep.u.status.addr, "127.0.0.1:4222", 15);
	rep_round_trip(&rep);
	dht_msg_rep_err(&rep, DHT_ANNOUNCE, 429, "too many announces");
	assert_int_equal(rep.u.err.code, DHT_ERR_RATE_LIMITED);
	assert_true(rep.u.err.retryable);
	rep_round_trip(&rep);
	for (uint16_t verb = DHT_PING; verb <= DHT_VERB_LAST; verb++)
		if (verb == DHT_PING || verb == DHT_ANNOUNCE || verb == DHT_PUT)
			rep_round_trip(&(dht_rep){ .verb = verb, .status = 200 });
}

static void test_reply_limits(void **state)
{
	(void)state;
	memset(&rep, 0, sizeof rep);
	rep = (dht_rep){ .verb = DHT_FIND, .status = 200 };
	rep.u.find.n = DHT_GET_MAX + 1;
	assert_int_equal(dht_msg_rep_encode(&rep, buf, DHT_MSG_MAX), -1);
	buf[0] = DHT_GET_MAX + 1;                               /* count over the cap */
	assert_int_equal(dht_msg_rep_decode(DHT_FIND, 200, buf, 1, &back), -1);
	assert_int_equal(dht_msg_rep_decode(DHT_GET, 200, buf, 1, &back), -1);
	buf[0] = 1;                                             /* one provider, empty address */
	memset(buf + 1, 0, 32 + 2 + 8);
	assert_int_equal(dht_msg_rep_decode(DHT_FIND, 200, buf, 1 + 32 + 2 + 8, &back), -1);
	assert_int_equal(dht_msg_rep_decode(DHT_PING, 302, NULL, 0, &back), -1);   /* not a status */
	rep = (dht_rep){ .verb = DHT_PING, .status = 201 };
	assert_int_equal(dht_msg_rep_encode(&rep, buf, DHT_MSG_MAX), -1);
	uint8_t err[] = { 0, 1, 0, 0 };                         /* error code 0 */
	assert_int_equal(dht_msg_rep_decode(DHT_PING, 503, err, sizeof err, &back), -1);
	err[0] = DHT_ERR_LAST + 1;
	assert_int_equal(dht_msg_rep_decode(DHT_PING, 503, err, sizeof err, &back), -1);
	err[0] = DHT_ERR_UNAVAILABLE;
	err[1] = 2;                                             /* retryable must be 0/1 */
	assert_int_equal(dht_msg_rep_decode(DHT_PING, 503, err, sizeof err, &back), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_request_limits),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_reply_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
