/* The search facet's query check (src/core/search/search_query.h) and its
 * messages (search_msg.h): what is accepted, what is refused and how the
 * refusal is named; every message round-trips and every truncation or
 * extension is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/search/search_msg.h"
#include "core/search/search_query.h"

static search_q_status check(const char *q, char *msg, size_t cap)
{
	return search_query_check(q, strlen(q), msg, cap);
}

static void test_accepts(void **state)
{
	static const char *const good[] = {
		"fox", "fox dog", "fox AND dog", "fox OR dog", "fox NOT dog", "\"lazy dog\"",
		"gard*", "\"lazy d\"*", "(fox OR dog) AND cat", "body:fox", "ctype:text", "name:blog",
		"ctype:(text OR image)", "x", "f\xc3\xbcr", "a_b 12", "((a OR b) c)",
	};
	char msg[128];

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		assert_int_equal(check(good[i], msg, sizeof msg), SEARCH_Q_OK);
}

static void syntax(const char *q, const char *needle)
{
	char msg[128];

	assert_int_equal(check(q, msg, sizeof msg), SEARCH_Q_SYNTAX);
	assert_non_null(strstr(msg, needle));
}

static void test_syntax_refusals(void **state)
{
	(void)state;
	syntax("\"open", "unterminated phrase");
	syntax("fox AND", "a term is missing");
	syntax("OR fox", "operator");
	syntax("(fox", "missing ')'");
	syntax("fox)", "unbalanced ')'");
	syntax("NEAR(a b)", "NEAR");
	syntax("title:fox", "unknown column");
	syntax("fox -dog", "unexpected character");
	syntax("*", "'*' must follow");
	syntax("fox ^dog", "unexpected character");
	syntax("\"\"", "empty phrase");
	syntax("(((((a)))))", "nested too deep");
	syntax("a b c d e f g h i j k l m n o p q", "too many terms");
	syntax("fox {body}", "unexpected character");
	/* the message names the byte offset */
	char msg[128];
	assert_int_equal(check("fox AND )", msg, sizeof msg), SEARCH_Q_SYNTAX);
	assert_non_null(strstr(msg, "at byte 8"));
	assert_int_equal(search_query_check("a\0b", 3, msg, sizeof msg), SEARCH_Q_SYNTAX);
}

static void test_too_broad(void **state)
{
	char msg[128];

	(void)state;
	assert_int_equal(check("", msg, sizeof msg), SEARCH_Q_TOO_BROAD);
	assert_int_equal(check("   ", msg, sizeof msg), SEARCH_Q_TOO_BROAD);
	assert_int_equal(check("a*", msg, sizeof msg), SEARCH_Q_TOO_BROAD);
	assert_int_equal(check("fox a*", msg, sizeof msg), SEARCH_Q_TOO_BROAD);
	assert_int_equal(check("\"a\"*", msg, sizeof msg), SEARCH_Q_TOO_BROAD);
	assert_non_null(strstr(msg, "at least 2"));
	assert_int_equal(check("ab*", msg, sizeof msg), SEARCH_Q_OK);
}

/* NAME: a name as name.h admits it, its cid and seq; anything else does
 * not encode, and a message carrying it does not decode. */
static void test_name_msg(void **state)
{
	uint8_t buf[SEARCH_MSG_MAX];
	search_name nm = { .name = "alice/blog-post_2024", .seq = 3 }, back;
	ssize_t n;
	size_t at;

	(void)state;
	memset(nm.id, 0xab, 32);
	n = search_msg_name_encode(&nm, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(search_msg_name_decode(buf, (size_t)n, &back), 0);
	assert_string_equal(back.name, "alice/blog-post_2024");
	assert_memory_equal(back.id, nm.id, 32);
	assert_int_equal(back.seq, 3);
	assert_int_equal(search_msg_req_check(SEARCH_NAME, buf, (size_t)n), 0);
	for (ssize_t cut = 0; cut < n; cut++)
		assert_int_equal(search_msg_req_check(SEARCH_NAME, buf, (size_t)cut), -1);
	assert_string_equal(search_msg_verb_name(SEARCH_NAME), "NAME");
	assert_int_equal(search_msg_rep_check(SEARCH_NAME, 200, NULL, 0, 0), 0);

	/* a name that breaks a rule: not encoded; the same bytes forged: not decoded */
	at = 2 + strlen("alice");
	buf[at] = ' ';
	assert_int_equal(search_msg_name_decode(buf, (size_t)n, &back), -1);
	snprintf(nm.name, sizeof nm.name, "alice blog");
	assert_int_equal(search_msg_name_encode(&nm, buf, sizeof buf), -1);
	snprintf(nm.name, sizeof nm.name, "alice//blog");
	assert_int_equal(search_msg_name_encode(&nm, buf, sizeof buf), -1);
	snprintf(nm.name, sizeof nm.name, "alice/blog");
	nm.seq = 0;   /* no record has seq 0 */
	assert_int_equal(search_msg_name_encode(&nm, buf, sizeof buf), -1);
	nm.seq = 1;
	memset(nm.name, 'x', NAME_MAX_LEN);   /* the longest name */
	nm.name[NAME_MAX_LEN] = '\0';
	n = search_msg_name_encode(&nm, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(search_msg_name_decode(buf, (size_t)n, &back), 0);
	assert_int_equal(strlen(back.name), NAME_MAX_LEN);
}

static void test_msgs_roundtrip(void **state)
{
	uint8_t buf[SEARCH_MSG_MAX + 1];
	static uint8_t text[SEARCH_TEXT_MAX];
	search_doc d = { .size = 77, .ctype = "text/plain", .text = text, .text_len = sizeof text }, e;
	search_hits h, back;
	char q[SEARCH_QUERY_MAX], m[SEARCH_MSG_TEXT_MAX];
	uint16_t limit;
	ssize_t n;

	(void)state;
	memset(text, 'w', sizeof text);
	memset(d.id, 7, sizeof d.id);
	n = search_msg_index_encode(&d, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(search_msg_index_decode(buf, (size_t)n, &e), 0);
	assert_memory_equal(e.id, d.id, 32);
	assert_int_equal(e.size, 77);
	assert_string_equal(e.ctype, "text/plain");
	assert_int_equal(e.text_len, sizeof text);
	assert_int_equal(search_msg_req_check(SEARCH_INDEX, buf, (size_t)n), 0);
	assert_int_equal(search_msg_req_check(SEARCH_INDEX, buf, (size_t)n - 1), -1);
	d.text_len = SEARCH_TEXT_MAX + 1;
	assert_int_equal(search_msg_index_encode(&d, buf, sizeof buf), -1);

	n = search_msg_query_encode("fox AND dog", 10, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(search_msg_query_decode(buf, (size_t)n, q, &limit), 0);
	assert_string_equal(q, "fox AND dog");
	assert_int_equal(limit, 10);
	for (ssize_t cut = 0; cut < n; cut++)
		assert_int_equal(search_msg_req_check(SEARCH_QUERY, buf, (size_t)cut), -1);
	assert_int_equal(search_msg_query_encode("fox", 0, buf, sizeof buf), -1);
	assert_int_equal(search_msg_query_encode("fox", SEARCH_HITS_MAX + 1, buf, sizeof buf), -1);

	memset(&h, 0, sizeof h);
	h.partial = true;
	h.n = SEARCH_HITS_MAX;
	for (unsigned i = 0; i < h.n; i++) {
		memset(h.hit[i].id, (int)i, 32);
		h.hit[i].meta = true;
		h.hit[i].size = i;
		memset(h.hit[i].ctype, 'c', SEARCH_CTYPE_MAX - 1);
	}
	memset(h.hit[0].name, 'n', NAME_MAX_LEN);   /* the longest name */
	h.hit[1].meta = false;                       /* a name's hit, object not indexed */
	h.hit[1].size = 0;
	memset(h.hit[1].ctype, 0, SEARCH_CTYPE_MAX);
	snprintf(h.hit[1].name, sizeof h.hit[1].name, "alice/blog");
	n = search_msg_hits_encode(&h, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(search_msg_hits_decode(buf, (size_t)n, &back), 0);
	assert_memory_equal(&back, &h, sizeof h);
	assert_int_equal(search_msg_rep_check(SEARCH_QUERY, 200, buf, (size_t)n, 0), 0);
	assert_int_equal(search_msg_rep_check(SEARCH_QUERY, 200, buf, (size_t)n - 1, 0), -1);
	assert_int_equal(search_msg_rep_check(SEARCH_QUERY, 200, buf, (size_t)n, 1), -1);
	buf[n] = 0;
	assert_int_equal(search_msg_hits_decode(buf, (size_t)n + 1, &back), -1);

	h.hit[1].size = 5;   /* size without meta: not a hit the encoder writes */
	assert_int_equal(search_msg_hits_encode(&h, buf, sizeof buf), -1);
	h.hit[1].size = 0;
	snprintf(h.hit[1].name, sizeof h.hit[1].name, "bad name");   /* a space */
	assert_int_equal(search_msg_hits_encode(&h, buf, sizeof buf), -1);

	n = search_msg_err_encode("bad query at byte 3: x", buf, sizeof buf);
	assert_int_equal(search_msg_err_decode(buf, (size_t)n, m), 0);
	assert_string_equal(m, "bad query at byte 3: x");
	assert_int_equal(search_msg_rep_check(SEARCH_QUERY, 400, buf, (size_t)n, 0), 0);
	assert_int_equal(search_msg_rep_check(SEARCH_INDEX, 200, NULL, 0, 0), 0);
	assert_int_equal(search_msg_rep_check(SEARCH_INDEX, 302, NULL, 0, 0), -1);
	assert_int_equal(search_msg_req_check(SEARCH_PING, NULL, 0), 0);
	assert_int_equal(search_msg_req_check(9, NULL, 0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts),
		cmocka_unit_test(test_syntax_refusals),
		cmocka_unit_test(test_too_broad),
		cmocka_unit_test(test_msgs_roundtrip),
		cmocka_unit_test(test_name_msg),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
