/* The overlay's messages (src/core/objects/ovl_client.h): FETCH_RANGE's
 * request round-trips exactly and every truncation, extension and bad span
 * is refused; replies decode only as the verb and status say (FETCH_RANGE's
 * 200 carries the length and two fds, errors a message). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/objects/ovl_client.h"

static void fill_cid(uint8_t cid[32])
{
	for (unsigned i = 0; i < 32; i++)
		cid[i] = (uint8_t)(0x40 + i * 5u);
}

static void test_range_request_round_trips(void **state)
{
	uint8_t cid[32], got[32], buf[OVL_RANGE_REQ_LEN + 8];
	uint64_t s, e;
	ssize_t n;

	(void)state;
	fill_cid(cid);
	n = ovl_msg_range_encode(cid, 1000, 1000 + OVL_RANGE_MAX - 1, buf, sizeof buf);
	assert_int_equal(n, OVL_RANGE_REQ_LEN);
	assert_int_equal(ovl_msg_range_decode(buf, (size_t)n, got, &s, &e), 0);
	assert_memory_equal(got, cid, 32);
	assert_int_equal(s, 1000);
	assert_int_equal(e, 1000 + OVL_RANGE_MAX - 1);
	assert_int_equal(ovl_msg_req_check(OVL_FETCH_RANGE, buf, (size_t)n), 0);
	/* big-endian, fields in order: cid, start, end */
	assert_int_equal(buf[32 + 7], 1000 & 0xff);
	assert_int_equal(buf[32 + 6], 1000 >> 8);
	/* every truncation and an extension are refused */
	for (size_t k = 0; k < (size_t)n; k++)
		assert_int_equal(ovl_msg_req_check(OVL_FETCH_RANGE, buf, k), -1);
	buf[n] = 0;
	assert_int_equal(ovl_msg_req_check(OVL_FETCH_RANGE, buf, (size_t)n + 1), -1);
	/* FETCH is exactly a cid and a mode byte (buf[32] is 0 here: cache);
	 * FETCH's length is not FETCH_RANGE's */
	assert_int_equal(ovl_msg_req_check(OVL_FETCH, buf, OVL_FETCH_REQ_LEN), 0);
	assert_int_equal(ovl_msg_req_check(OVL_FETCH, buf, 32), -1);
	assert_int_equal(ovl_msg_req_check(OVL_FETCH_RANGE, buf, 32), -1);
	assert_int_equal(ovl_msg_req_check(OVL_VERB_LAST + 1, buf, (size_t)n), -1);
}

static void test_range_request_bad_spans(void **state)
{
	uint8_t cid[32], buf[OVL_RANGE_REQ_LEN], got[32];
	uint64_t s, e;

	(void)state;
	fill_cid(cid);
	/* reversed, over the bound, the bound's edge */
	assert_int_equal(ovl_msg_range_encode(cid, 10, 9, buf, sizeof buf), -1);
	assert_int_equal(ovl_msg_range_encode(cid, 0, OVL_RANGE_MAX, buf, sizeof buf), -1);
	assert_int_equal(ovl_msg_range_encode(cid, 0, OVL_RANGE_MAX - 1, buf, sizeof buf),
	                 OVL_RANGE_REQ_LEN);
	assert_int_equal(ovl_msg_range_encode(cid, 5, 5, buf, sizeof buf), OVL_RANGE_REQ_LEN);
	assert_int_equal(ovl_msg_range_encode(cid, 5, 5, buf, sizeof buf - 1), -1);
	/* the decoder refuses the same spans written by hand */
	assert_int_equal(ovl_msg_range_encode(cid, 0, 0, buf, sizeof buf), OVL_RANGE_REQ_LEN);
	buf[32 + 7] = 2;   /* start 2 > end 0 */
	assert_int_equal(ovl_msg_range_decode(buf, sizeof buf, got, &s, &e), -1);
	memset(buf + 32, 0, 16);
	buf[40 + 4] = 0x02;  /* end = 0x0200000000 (8 GiB) */
	assert_int_equal(ovl_msg_range_decode(buf, sizeof buf, got, &s, &e), -1);
	/* near UINT64_MAX: no wrap-around accepted */
	memset(buf + 32, 0xff, 16);
	assert_int_equal(ovl_msg_range_decode(buf, sizeof buf, got, &s, &e), 0);
	assert_int_equal(s, UINT64_MAX);
	memset(buf + 32, 0, 8);
	assert_int_equal(ovl_msg_range_decode(buf, sizeof buf, got, &s, &e), -1);
}

static void test_replies(void **state)
{
	uint8_t buf[OVL_MSG_MAX + 8];
	char msg[OVL_MSG_TEXT_MAX];
	uint64_t len;
	ssize_t n;

	(void)state;
	n = ovl_msg_rep_encode(OVL_FETCH_RANGE, 200, 8u << 20, NULL, buf, sizeof buf);
	assert_int_equal(n, 8);
	assert_int_equal(ovl_msg_rep_decode(OVL_FETCH_RANGE, 200, buf, 8, &len, msg), 0);
	assert_int_equal(len, 8u << 20);
	assert_int_equal(ovl_msg_rep_decode(OVL_FETCH_RANGE, 200, buf, 7, &len, msg), -1);
	assert_int_equal(ovl_msg_rep_decode(OVL_FETCH_RANGE, 200, buf, 9, &len, msg), -1);
	assert_int_equal(ovl_msg_rep_fds(OVL_FETCH_RANGE, 200), 2);
	assert_int_equal(ovl_msg_rep_fds(OVL_FETCH_RANGE, 501), 0);
	assert_int_equal(ovl_msg_rep_fds(OVL_FETCH, 200), 0);
	assert_int_equal(ovl_msg_rep_fds(OVL_PING, 200), 0);
	/* 501: no provider serves ranges, with its message */
	n = ovl_msg_rep_encode(OVL_FETCH_RANGE, 501, 0, "no ranges", buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(ovl_msg_rep_decode(OVL_FETCH_RANGE, 501, buf, (size_t)n, &len, msg), 0);
	assert_string_equal(msg, "no ranges");
	assert_int_equal(len, 0);
	assert_int_equal(ovl_msg_rep_decode(OVL_FETCH_RANGE, 501, buf, (size_t)n - 1, &len, msg),
	                 -1);
	/* PING's 200 is empty; no status outside 200 and 400..599 */
	assert_int_equal(ovl_msg_rep_decode(OVL_PING, 200, buf, 0, &len, msg), 0);
	assert_int_equal(ovl_msg_rep_decode(OVL_PING, 200, buf, 1, &len, msg), -1);
	assert_int_equal(ovl_msg_rep_encode(OVL_FETCH_RANGE, 302, 0, "x", buf, sizeof buf), -1);
	assert_int_equal(ovl_msg_rep_decode(OVL_FETCH_RANGE, 302, buf, 0, &len, msg), -1);
	assert_string_equal(ovl_msg_verb_name(OVL_FETCH_RANGE), "FETCH_RANGE");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_range_request_round_trips),
		cmocka_unit_test(test_range_request_bad_spans),
		cmocka_unit_test(test_replies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
