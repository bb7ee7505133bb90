/* Unit tests for core/audit/audit_client: the audit verbs' messages (both
 * ends decode exactly what the other encodes; a byte short or over is not
 * a message), and a NULL client (no audit service) accepting everything. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "core/audit/audit_client.h"
#include "core/audit/audit_record.h"

static void test_append_round_trip(void **state)
{
	static const char actor[] = "{\"peer\":\"127.0.0.1\"}", attrs[] = "{\"count\":3}";
	audit_msg_entry e = { .stream = "ingress", .kind = "capability_refused",
	                      .reason = "unauthorized", .writer_id = "gateway/0",
	                      .ts_ms = 1700000000123ull,
	                      .actor = (const uint8_t *)actor, .actor_len = sizeof actor - 1,
	                      .attrs = (const uint8_t *)attrs, .attrs_len = sizeof attrs - 1 };
	audit_msg_entry d;
	uint8_t buf[AUDIT_REQ_MAX];
	ssize_t n;

	(void)state;
	n = audit_msg_append_encode(&e, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(audit_msg_req_check(AUDIT_APPEND, buf, (size_t)n), 0);
	assert_int_equal(audit_msg_append_decode(buf, (size_t)n, &d), 0);
	assert_string_equal(d.stream, "ingress");
	assert_string_equal(d.kind, "capability_refused");
	assert_string_equal(d.reason, "unauthorized");
	assert_string_equal(d.writer_id, "gateway/0");
	assert_int_equal(d.ts_ms, 1700000000123ull);
	assert_int_equal(d.actor_len, sizeof actor - 1);
	assert_memory_equal(d.actor, actor, d.actor_len);
	assert_int_equal(d.subject_len, 0);
	assert_int_equal(d.attrs_len, sizeof attrs - 1);
	/* short, long, or for another verb: not a message */
	assert_int_equal(audit_msg_req_check(AUDIT_APPEND, buf, (size_t)n - 1), -1);
	assert_int_equal(audit_msg_req_check(AUDIT_APPEND, buf, (size_t)n + 1), -1);
	assert_int_equal(audit_msg_req_check(AUDIT_PING, buf, (size_t)n), -1);
	assert_int_equal(audit_msg_req_check(AUDIT_VERB_LAST + 1, NULL, 0), -1);
	/* a JSON text over the cap is refused by the encoder */
	e.attrs_len = AUDIT_JSON_MAX + 1;
	assert_int_equal(audit_msg_append_encode(&e, buf, sizeof buf), -1);
}

static void test_proof_and_replies(void **state)
{
	uint8_t buf[256];
	char stream[65];
	uint64_t seq = 0;
	const uint8_t *body;
	size_t len;
	ssize_t n;

	(void)state;
	n = audit_msg_proof_encode("admin", 42, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(audit_msg_req_check(AUDIT_PROOF, buf, (size_t)n), 0);
	assert_int_equal(audit_msg_proof_decode(buf, (size_t)n, stream, &seq), 0);
	assert_string_equal(stream, "admin");
	assert_int_equal(seq, 42);
	assert_int_equal(audit_msg_proof_encode("a-stream-name-longer-than-sixty-four-bytes-is-"
	                                        "not-a-stream-name-at-all", 1, buf, sizeof buf), -1);
	assert_int_equal(audit_msg_req_check(AUDIT_CHECKPOINT, NULL, 0), 0);

	n = audit_msg_rep_encode(AUDIT_CHECKPOINT, 200, "{\"v\":1}", 7, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(audit_msg_rep_decode(AUDIT_CHECKPOINT, 200, buf, (size_t)n, &body, &len), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(body, "{\"v\":1}", 7);
	assert_int_equal(audit_msg_rep_decode(AUDIT_CHECKPOINT, 200, buf, (size_t)n - 1, &body,
	                                      &len), -1);
	n = audit_msg_rep_encode(AUDIT_APPEND, 200, NULL, 0, buf, sizeof buf);
	assert_int_equal(n, 0);
	assert_int_equal(audit_msg_rep_decode(AUDIT_APPEND, 200, buf, 0, &body, &len), 0);
	n = audit_msg_rep_encode(AUDIT_APPEND, 503, "audit queue full", 16, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(audit_msg_rep_decode(AUDIT_APPEND, 503, buf, (size_t)n, &body, &len), 0);
	assert_int_equal(len, 16);
	assert_memory_equal(body, "audit queue full", 16);
	assert_int_equal(audit_msg_rep_decode(AUDIT_APPEND, 503, buf, 1, &body, &len), -1);
	assert_int_equal(audit_msg_rep_decode(AUDIT_APPEND, 302, buf, (size_t)n, &body, &len), -1);
}

/* Without the audit service there is no client; every call takes NULL. */
static void test_null_client(void **state)
{
	(void)state;
	audit_emit(NULL, "admin", "reload", "ok", json_pack("{s:s}", "a", "b"), NULL, NULL);
	audit_count(NULL, "ingress", "capability_refused", "unauthorized", "ip:127.0.0.1");
	assert_int_equal(audit_client_dropped(NULL), 0);
	assert_null(audit_get_checkpoint(NULL, NULL, NULL));
}

static void test_recent_request(void **state)
{
	uint8_t buf[128];
	char stream[65];
	unsigned cnt = 0;
	ssize_t n;

	(void)state;
	n = audit_msg_recent_encode("admin", 7, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(audit_msg_req_check(AUDIT_RECENT, buf, (size_t)n), 0);
	assert_int_equal(audit_msg_recent_decode(buf, (size_t)n, stream, &cnt), 0);
	assert_string_equal(stream, "admin");
	assert_int_equal(cnt, 7);
	assert_int_equal(audit_msg_req_check(AUDIT_RECENT, buf, (size_t)n - 1), -1);
	n = audit_msg_recent_encode("", AUDIT_RECENT_MAX, buf, sizeof buf);   /* every stream */
	assert_true(n > 0);
	assert_int_equal(audit_msg_recent_decode(buf, (size_t)n, stream, &cnt), 0);
	assert_string_equal(stream, "");
	assert_int_equal(cnt, AUDIT_RECENT_MAX);
	/* n out of 1..AUDIT_RECENT_MAX, a bad stream name: not a request */
	assert_int_equal(audit_msg_recent_encode("admin", 0, buf, sizeof buf), -1);
	assert_int_equal(audit_msg_recent_encode("admin", AUDIT_RECENT_MAX + 1, buf, sizeof buf), -1);
	assert_int_equal(audit_msg_recent_encode("a b", 1, buf, sizeof buf), -1);
	buf[0] = 0; buf[1] = 0; buf[2] = 0; buf[3] = 21;   /* "" and n = 21 */
	assert_int_equal(audit_msg_req_check(AUDIT_RECENT, buf, 4), -1);
	buf[3] = 20;
	assert_int_equal(audit_msg_req_check(AUDIT_RECENT, buf, 4), 0);
	n = audit_msg_rep_encode(AUDIT_RECENT, 200, "{}", 2, buf, sizeof buf);
	assert_true(n == 6);
	assert_null(audit_get_recent(NULL, "admin", 1, NULL, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_round_trip),
		cmocka_unit_test(test_proof_and_replies),
		cmocka_unit_test(test_null_client),
		cmocka_unit_test(test_recent_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
