/* The index messages (src/core/dht/index_msg.h): every verb's request and
 * 200 reply, and the error reply, round-trip exactly; every truncation and
 * extension of an encoded message is refused; names that break a rule, a
 * record that does not decode, a history that is not one name's rising
 * seqs, a bool of 2, an unknown source or error code are refused too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/dht/index_msg.h"

static node_identity ident;

static int setup(void **state)
{
	char err[128];

	(void)state;
	return identity_generate(&ident, err, sizeof err);
}

static int teardown(void **state)
{
	(void)state;
	identity_free(&ident);
	return 0;
}

static void rec(name_record *r, const char *name, uint64_t seq)
{
	uint8_t cid[32];

	memset(cid, (int)seq, sizeof cid);
	assert_int_equal(name_record_make(r, name, strlen(name), cid, seq, 1700000000u + seq,
	                                  &ident), 0);
}

/* Encode, decode, compare; then every shorter and one longer buffer fails. */
static void req_roundtrip(const index_req *q)
{
	uint8_t buf[INDEX_MSG_MAX + 1];
	index_req d;
	ssize_t n = index_msg_req_encode(q, buf, sizeof buf);

	assert_true(n >= 0);
	assert_int_equal(index_msg_req_decode(q->verb, buf, (size_t)n, &d), 0);
	assert_memory_equal(&d, q, sizeof d);
	for (ssize_t k = 0; k < n; k++)
		assert_int_equal(index_msg_req_decode(q->verb, buf, (size_t)k, &d), -1);
	buf[n] = 0;
	assert_int_equal(index_msg_req_decode(q->verb, buf, (size_t)n + 1, &d), -1);
}

static void rep_roundtrip(const index_rep *r)
{
	static uint8_t buf[INDEX_MSG_MAX + 1];
	static index_rep d;
	ssize_t n = index_msg_rep_encode(r, buf, sizeof buf);

	assert_true(n >= 0);
	assert_true((size_t)n <= INDEX_MSG_MAX);
	assert_int_equal(index_msg_rep_decode(r->verb, r->status, buf, (size_t)n, &d), 0);
	assert_memory_equal(&d, r, sizeof d);
	for (ssize_t k = 0; k < n; k += (n > 2000 ? 97 : 1))
		assert_int_equal(index_msg_rep_decode(r->verb, r->status, buf, (size_t)k, &d), -1);
	buf[n] = 0;
	assert_int_equal(index_msg_rep_decode(r->verb, r->status, buf, (size_t)n + 1, &d), -1);
}

static void test_requests(void **state)
{
	index_req q;

	(void)state;
	memset(&q, 0, sizeof q);
	q.verb = INDEX_PING;
	req_roundtrip(&q);
	memset(&q, 0, sizeof q);
	q.verb = INDEX_PUBLISH;
	index_name_set(&q.u.publish.name, "alice/home", 10);
	memset(q.u.publish.cid, 0xab, 32);
	req_roundtrip(&q);
	memset(&q, 0, sizeof q);
	q.verb = INDEX_RESOLVE;
	index_name_set(&q.u.resolve.name, "caf\xc3\xa9", 5);
	q.u.resolve.network = true;
	req_roundtrip(&q);
	memset(&q, 0, sizeof q);
	q.verb = INDEX_HISTORY;
	char longest[NAME_MAX_LEN];
	memset(longest, 'n', sizeof longest);
	index_name_set(&q.u.history.name, longest, sizeof longest);
	req_roundtrip(&q);
	memset(&q, 0, sizeof q);
	q.verb = INDEX_IMPORT;
	q.u.import.len = 3;   /* the network's bytes: only bounded here */
	memcpy(q.u.import.rec, "abc", 3);
	req_roundtrip(&q);
	q.u.import.len = NAME_RECORD_MAX;
	req_roundtrip(&q);
	memset(&q, 0, sizeof q);
	q.verb = INDEX_LIST;   /* from the start */
	req_roundtrip(&q);
	index_name_set(&q.u.list.from.after, longest, sizeof longest);
	q.u.list.from.pos = 7u << 31;
	req_roundtrip(&q);
}

static void test_replies(void **state)
{
	static index_rep r;

	(void)state;
	memset(&r, 0, sizeof r);
	r.verb = INDEX_PING;
	r.status = 200;
	rep_roundtrip(&r);
	memset(&r, 0, sizeof r);
	r.verb = INDEX_PUBLISH;
	r.status = 200;
	r.u.publish.created = true;
	rec(&r.u.publish.rec, "alice/home", 1);
	rep_roundtrip(&r);
	memset(&r, 0, sizeof r);
	r.verb = INDEX_RESOLVE;
	r.status = 200;
	r.u.resolve.source = INDEX_SOURCE_NETWORK;
	rec(&r.u.resolve.rec, "bob", 77);
	rep_roundtrip(&r);
	memset(&r, 0, sizeof r);
	r.verb = INDEX_HISTORY;
	r.status = 200;
	char longest[NAME_MAX_LEN + 1];
	memset(longest, 'h', NAME_MAX_LEN);
	longest[NAME_MAX_LEN] = '\0';
	r.u.history.n = INDEX_HISTORY_MAX;
	for (unsigned i = 0; i < INDEX_HISTORY_MAX; i++)
		rec(&r.u.history.recs[i], longest, 10 + 2 * i);
	rep_roundtrip(&r);
	memset(&r, 0, sizeof r);
	r.verb = INDEX_LIST;
	r.status = 200;
	rep_roundtrip(&r);   /* an empty table: n 0, the start, no more */
	r.u.list.n = INDEX_LIST_MAX;
	for (unsigned i = 0; i < INDEX_LIST_MAX; i++) {
		longest[0] = (char)('a' + i % 26);
		longest[1] = (char)('a' + i / 26);
		rec(&r.u.list.recs[i], longest, 1 + i);
	}
	index_name_set(&r.u.list.next.after, longest, NAME_MAX_LEN);
	r.u.list.next.pos = 3;
	r.u.list.more = true;
	rep_roundtrip(&r);   /* the longest payload there is */
	memset(&r, 0, sizeof r);
	r.verb = INDEX_IMPORT;
	r.status = 200;
	rep_roundtrip(&r);
	index_msg_rep_err(&r, INDEX_RESOLVE, 504, "lookup timed out");
	assert_int_equal(r.u.err.code, INDEX_ERR_TIMEOUT);
	assert_true(r.u.err.retryable);
	rep_roundtrip(&r);
	index_msg_rep_err(&r, INDEX_PUBLISH, 507, "index full");
	assert_int_equal(r.u.err.code, INDEX_ERR_FULL);
	assert_false(r.u.err.retryable);
	rep_roundtrip(&r);
}

static void test_refusals(void **state)
{
	static index_rep r, d;
	static uint8_t buf[INDEX_MSG_MAX];
	index_req q;
	ssize_t n;

	(void)state;
	/* Names that break a rule are not encoded, and not decoded. */
	memset(&q, 0, sizeof q);
	q.verb = INDEX_RESOLVE;
	index_name_set(&q.u.resolve.name, "a/../b", 6);
	assert_int_equal(index_msg_req_encode(&q, buf, sizeof buf), -1);
	static const uint8_t dots[] = { 0, 6, 'a', '/', '.', '.', '/', 'b', 0 };
	assert_int_equal(index_msg_req_decode(INDEX_RESOLVE, dots, sizeof dots, &q), -1);
	static const uint8_t nfd[] = { 0, 6, 'c', 'a', 'f', 'e', 0xcc, 0x81, 0 };
	assert_int_equal(index_msg_req_decode(INDEX_RESOLVE, nfd, sizeof nfd, &q), -1);
	static const uint8_t ok[] = { 0, 4, 'c', 'a', 'f', 'e', 1 };
	assert_int_equal(index_msg_req_decode(INDEX_RESOLVE, ok, sizeof ok, &q), 0);
	static const uint8_t two[] = { 0, 4, 'c', 'a', 'f', 'e', 2 };   /* a bool of 2 */
	assert_int_equal(index_msg_req_decode(INDEX_RESOLVE, two, sizeof two, &q), -1);
	static const uint8_t empty_import[] = { 0, 0, 0, 0 };
	assert_int_equal(index_msg_req_decode(INDEX_IMPORT, empty_import, 4, &q), -1);
	assert_int_equal(index_msg_req_decode(0, NULL, 0, &q), -1);
	assert_int_equal(index_msg_req_decode(INDEX_VERB_LAST + 1, NULL, 0, &q), -1);

	/* A LIST cursor is "" or a valid name; a page holds at most INDEX_LIST_MAX. */
	static const uint8_t bad_cursor[] = { 0, 6, 'a', '/', '.', '.', '/', 'b',
	                                      0, 0, 0, 0, 0, 0, 0, 0 };
	assert_int_equal(index_msg_req_decode(INDEX_LIST, bad_cursor, sizeof bad_cursor, &q), -1);
	memset(&r, 0, sizeof r);
	r.verb = INDEX_LIST;
	r.status = 200;
	r.u.list.n = INDEX_LIST_MAX + 1;
	assert_int_equal(index_msg_rep_encode(&r, buf, sizeof buf), -1);
	static const uint8_t too_many[] = { INDEX_LIST_MAX + 1 };
	assert_int_equal(index_msg_rep_decode(INDEX_LIST, 200, too_many, 1, &d), -1);

	/* A history that repeats a seq or mixes names does not encode. */
	memset(&r, 0, sizeof r);
	r.verb = INDEX_HISTORY;
	r.status = 200;
	r.u.history.n = 2;
	rec(&r.u.history.recs[0], "x", 5);
	rec(&r.u.history.recs[1], "x", 5);
	assert_int_equal(index_msg_rep_encode(&r, buf, sizeof buf), -1);
	rec(&r.u.history.recs[1], "y", 6);
	assert_int_equal(index_msg_rep_encode(&r, buf, sizeof buf), -1);
	r.u.history.n = 0;
	assert_int_equal(index_msg_rep_encode(&r, buf, sizeof buf), -1);

	/* A resolve reply with an unknown source, or a record that does not decode. */
	memset(&r, 0, sizeof r);
	r.verb = INDEX_RESOLVE;
	r.status = 200;
	rec(&r.u.resolve.rec, "z", 1);
	n = index_msg_rep_encode(&r, buf, sizeof buf);
	assert_true(n > 0);
	buf[0] = 2;
	assert_int_equal(index_msg_rep_decode(INDEX_RESOLVE, 200, buf, (size_t)n, &d), -1);
	buf[0] = 0;
	buf[5] = 9;   /* the record's version */
	assert_int_equal(index_msg_rep_decode(INDEX_RESOLVE, 200, buf, (size_t)n, &d), -1);

	/* Errors: a known code only; a 200 needs a known verb. */
	index_msg_rep_err(&r, INDEX_PUBLISH, 400, "x");
	r.u.err.code = 0;
	assert_int_equal(index_msg_rep_encode(&r, buf, sizeof buf), -1);
	r.u.err.code = INDEX_ERR_LAST + 1;
	assert_int_equal(index_msg_rep_encode(&r, buf, sizeof buf), -1);
	memset(&r, 0, sizeof r);
	r.verb = 99;
	r.status = 200;
	assert_int_equal(index_msg_rep_encode(&r, buf, sizeof buf), -1);
	r.verb = INDEX_PING;
	r.status = 302;
	assert_int_equal(index_msg_rep_encode(&r, buf, sizeof buf), -1);
	assert_string_equal(index_msg_verb_name(INDEX_HISTORY), "HISTORY");
	assert_string_equal(index_msg_verb_name(0), "unknown");
	/* a long message is cut, never overflows */
	char longer[INDEX_MSG_TEXT_MAX * 2];
	memset(longer, 'm', sizeof longer - 1);
	longer[sizeof longer - 1] = '\0';
	index_msg_rep_err(&r, INDEX_IMPORT, 409, longer);
	assert_int_equal(strlen(r.u.err.message), INDEX_MSG_TEXT_MAX - 1);
	assert_int_equal(r.u.err.code, INDEX_ERR_STALE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
