/* The mailbox messages (src/core/mailbox/mb_msg.h): every verb's request
 * and 200 reply round-trip exactly; every truncation and extension of an
 * encoded message is refused; a SEND's body is not in the frame (its fd); bad names, ids, counts and keys are refused;
 * the id text form is exactly 16 lowercase hex digits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/mailbox/mb_msg.h"

static uint8_t buf[MB_MSG_MAX];

/* Encode q, decode it, and check every shorter or longer message fails. */
static void roundtrip_req(const mb_req *q, mb_req *out)
{
	ssize_t n = mb_msg_req_encode(q, buf, sizeof buf);

	assert_true(n >= 0);
	assert_int_equal(mb_msg_req_decode(q->verb, buf, (size_t)n, out), 0);
	for (ssize_t cut = 0; cut < n; cut += 1 + n / 50)
		assert_int_equal(mb_msg_req_decode(q->verb, buf, (size_t)cut, out), -1);
	buf[n] = 0;
	assert_int_equal(mb_msg_req_decode(q->verb, buf, (size_t)n + 1, out), -1);
	assert_int_equal(mb_msg_req_decode(q->verb, buf, (size_t)n, out), 0);
}

static void test_requests(void **state)
{
	static mb_req q, out;
	uint8_t body[100];

	(void)state;
	memset(body, 7, sizeof body);
	q = (mb_req){ .verb = MB_SEND };
	strcpy(q.u.send.recipient, "bob");
	strcpy(q.u.send.sender, "t:alice");
	strcpy(q.u.send.idem, "key-1");
	q.u.send.kind = MB_KIND_BYTES;
	q.u.send.body = body;
	q.u.send.body_len = sizeof body;
	roundtrip_req(&q, &out);
	assert_string_equal(out.u.send.recipient, "bob");
	assert_string_equal(out.u.send.sender, "t:alice");
	assert_string_equal(out.u.send.idem, "key-1");
	assert_int_equal(out.u.send.body_len, sizeof body);
	assert_null(out.u.send.body);              /* the body travels in the fd */
	assert_true(mb_msg_req_has_fd(&out));
	q.u.send.body_len = 0;
	q.u.send.kind = MB_KIND_CID;
	roundtrip_req(&q, &out);
	assert_false(mb_msg_req_has_fd(&out));

	q = (mb_req){ .verb = MB_RECV };
	strcpy(q.u.recv.recipient, "bob");
	q.u.recv.max = 100;
	q.u.recv.lease_ms = 30000;
	roundtrip_req(&q, &out);
	assert_int_equal(out.u.recv.max, 100);
	assert_int_equal(out.u.recv.lease_ms, 30000);

	q = (mb_req){ .verb = MB_NACK };
	strcpy(q.u.id.recipient, "bob");
	q.u.id.id = 0x1234;
	roundtrip_req(&q, &out);
	assert_int_equal(out.u.id.id, 0x1234);
}

static void test_replies(void **state)
{
	static mb_rep r, out;
	ssize_t n;

	(void)state;
	r = (mb_rep){ .verb = MB_RECV, .status = 200 };
	r.u.items.n = MB_BATCH_MAX;
	for (unsigned i = 0; i < MB_BATCH_MAX; i++) {
		r.u.items.items[i] = (mb_item){ .id = i + 1, .kind = MB_KIND_TEXT, .deliveries = 2,
		                                .sent_ms = 5, .lease_until_ms = 9, .body_len = i };
		memset(r.u.items.items[i].sender, 's', MB_SENDER_MAX);   /* the longest */
	}
	n = mb_msg_rep_encode(&r, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(mb_msg_rep_decode(MB_RECV, 200, buf, (size_t)n, &out), 0);
	assert_memory_equal(&out.u.items, &r.u.items, sizeof r.u.items);
	assert_true(mb_msg_rep_has_fd(&out));
	assert_int_equal(mb_msg_rep_decode(MB_RECV, 200, buf, (size_t)n - 1, &out), -1);

	mb_msg_rep_err(&r, MB_SEND, 429, "quota_count", "full");
	n = mb_msg_rep_encode(&r, buf, sizeof buf);
	assert_int_equal(mb_msg_rep_decode(MB_SEND, 429, buf, (size_t)n, &out), 0);
	assert_string_equal(out.u.err.code, "quota_count");
	assert_false(mb_msg_rep_has_fd(&out));
	/* a status that is neither 200 nor an error */
	assert_int_equal(mb_msg_rep_decode(MB_SEND, 302, buf, (size_t)n, &out), -1);
}

static void test_refusals(void **state)
{
	static mb_req q;
	char msg[96];
	uint64_t id;

	(void)state;
	assert_int_equal(mb_name_check("ok.name_-1", 10, msg, sizeof msg), 0);
	assert_int_equal(mb_name_check("", 0, msg, sizeof msg), -1);
	assert_int_equal(mb_name_check("..", 2, msg, sizeof msg), -1);
	assert_int_equal(mb_name_check("a/b", 3, msg, sizeof msg), -1);
	assert_non_null(strstr(msg, "letters"));
	char longname[MB_NAME_MAX + 2];
	memset(longname, 'a', sizeof longname);
	assert_int_equal(mb_name_check(longname, MB_NAME_MAX + 1, NULL, 0), -1);
	assert_int_equal(mb_name_check(longname, MB_NAME_MAX, NULL, 0), 0);
	assert_false(mb_idem_is_valid("a b", 3));
	assert_false(mb_idem_is_valid("", 0));
	assert_true(mb_idem_is_valid("A-1_~", 5));

	q = (mb_req){ .verb = MB_RECV };
	strcpy(q.u.recv.recipient, "bob");
	q.u.recv.max = MB_BATCH_MAX + 1;
	q.u.recv.lease_ms = 1;
	assert_int_equal(mb_msg_req_encode(&q, buf, sizeof buf), -1);
	q.u.recv.max = 1;
	q.u.recv.lease_ms = 0;
	assert_int_equal(mb_msg_req_encode(&q, buf, sizeof buf), -1);
	q = (mb_req){ .verb = MB_ACK };
	strcpy(q.u.id.recipient, "bob");
	assert_int_equal(mb_msg_req_encode(&q, buf, sizeof buf), -1);   /* id 0 */
	q = (mb_req){ .verb = MB_SEND };
	strcpy(q.u.send.recipient, "bad name");
	strcpy(q.u.send.sender, "x");
	assert_int_equal(mb_msg_req_encode(&q, buf, sizeof buf), -1);
	q.verb = 99;
	assert_int_equal(mb_msg_req_encode(&q, buf, sizeof buf), -1);

	char text[MB_ID_TEXT];
	mb_id_format(0xabcdef, text);
	assert_string_equal(text, "0000000000abcdef");
	assert_int_equal(mb_id_parse(text, 16, &id), 0);
	assert_int_equal(id, 0xabcdef);
	assert_int_equal(mb_id_parse("0000000000ABCDEF", 16, &id), -1);
	assert_int_equal(mb_id_parse("0000000000000000", 16, &id), -1);
	assert_int_equal(mb_id_parse("abc", 3, &id), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
