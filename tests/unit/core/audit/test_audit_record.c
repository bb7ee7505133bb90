/* Unit tests for core/audit/audit_json and audit_record: vector R1, the
 * canonical form, and everything the strict parser must refuse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit/audit_json.h"
#include "core/audit/audit_record.h"
#include "lib/b3.h"
#include "lib/util.h"

static char *read_vector(const char *name, size_t *n)
{
	char path[512], *text = NULL;

	snprintf(path, sizeof path, "%s/audit/%s", MN_TEST_VECTORS, name);
	assert_int_equal(util_read_file(path, 65536, &text, n), 0);
	while (*n > 0 && text[*n - 1] == '\n')      /* the file's own newline */
		text[--*n] = '\0';
	return text;
}

/* R1 as the vector describes it: attrs given unsorted and not in NFC. */
static void r1_entry(audit_entry *e, json_t **actor, json_t **subject, json_t **attrs)
{
	size_t n;
	char *in = read_vector("r1_input_attrs.json", &n);

	*attrs = json_loadb(in, n, 0, NULL);
	free(in);
	assert_non_null(*attrs);
	*actor = json_pack("{s:s}", "cap_id", "cap-1");
	*subject = json_pack("{s:s}", "content_id",
	                     "b3:d74981efa70a0c880b8d8c1985d075dbcbf679b99a5f9914e5aaf96b831a9e24");
	*e = (audit_entry){ .stream = "ingress", .kind = "cap_issued",
	                    .writer_id = "svc-gateway@inst-1", .reason = "ok",
	                    .ts_ms = 1700000000000ull, .actor = *actor, .subject = *subject,
	                    .attrs = *attrs };
}

static void test_r1_vector(void **state)
{
	audit_entry e;
	json_t *a, *s, *t;
	char out[AUDIT_RECORD_MAX], err[AUDIT_ERR_MAX], hash[B3_CID_LEN + 1];
	size_t n, want_n, hn;
	char *want = read_vector("r1_canonical.json", &want_n);
	char *want_hash = read_vector("r1_self_hash.txt", &hn);
	uint8_t h[B3_OUT_LEN];
	audit_record r;

	(void)state;
	r1_entry(&e, &a, &s, &t);
	assert_int_equal(audit_record_canonical(&e, 0, NULL, out, sizeof out, &n, err, sizeof err), 0);
	assert_int_equal(n, want_n);
	assert_memory_equal(out, want, n);
	b3_hash(out, n, h);
	b3_cid_format(h, hash);
	assert_string_equal(hash, want_hash);
	/* The stored form carries the same self_hash and parses back. */
	assert_int_equal(audit_record_encode(&e, 0, NULL, out, sizeof out, &n, h, err, sizeof err), 0);
	b3_cid_format(h, hash);
	assert_string_equal(hash, want_hash);
	assert_non_null(strstr(out, "\"self_hash\":\"b3:419d8e30"));
	assert_int_equal(audit_record_parse(out, n, &r, err, sizeof err), 0);
	assert_string_equal(r.stream, "ingress");
	assert_int_equal(r.seq, 0);
	assert_true(r.genesis);
	assert_memory_equal(r.self_hash, h, B3_OUT_LEN);
	free(want);
	free(want_hash);
	json_decref(a);
	json_decref(s);
	json_decref(t);
}

static void test_canonical_roundtrip(void **state)
{
	static const char *const in[] = {
		"{\"b\":[1,-2,{\"z\":null,\"a\":false}],\"a\":\"x\\ny\\u0001\\u007f/\\\"\\\\\"}",
		"{\"\\u00e9\":1,\"e\\u0301x\":2,\"Z\":\"\\t\\b\\f\\r\"}",
		"[]", "{}", "[\"\",9223372036854775807,-9223372036854775808]",
	};
	char buf[1024], again[1024], err[AUDIT_JSON_ERR_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
		json_t *v = json_loads(in[i], JSON_DECODE_ANY, NULL), *p;
		audit_buf b = { .data = buf, .cap = sizeof buf };
		audit_buf b2 = { .data = again, .cap = sizeof again };
		assert_non_null(v);
		assert_int_equal(audit_json_encode(v, AUDIT_JSON_NORMALIZE, &b, err, sizeof err), 0);
		p = audit_json_parse(buf, b.len, sizeof buf, err, sizeof err);
		if (!p)
			fail_msg("%.*s: %s", (int)b.len, buf, err);
		assert_int_equal(audit_json_encode(p, AUDIT_JSON_STRICT, &b2, err, sizeof err), 0);
		assert_int_equal(b.len, b2.len);
		assert_memory_equal(buf, again, b.len);
		json_decref(v);
		json_decref(p);
	}
	/* The exact spellings: serde_json's escapes, sorted keys, NFC keys. */
	json_t *v = json_loads(in[0], 0, NULL);
	audit_buf b = { .data = buf, .cap = sizeof buf };
	assert_int_equal(audit_json_encode(v, AUDIT_JSON_NORMALIZE, &b, err, sizeof err), 0);
	assert_int_equal(b.len, strlen("{\"a\":\"x\\ny\\u0001\x7f/\\\"\\\\\",\"b\":[1,-2,{\"a\":false,\"z\":null}]}"));
	assert_memory_equal(buf, "{\"a\":\"x\\ny\\u0001\x7f/\\\"\\\\\",\"b\":[1,-2,{\"a\":false,\"z\":null}]}", b.len);
	json_decref(v);
	/* "é" and "e\u0301" are the same key after NFC: refused, not merged. */
	v = json_loads("{\"\\u00e9\":1,\"e\\u0301\":2}", 0, NULL);
	b.len = 0;
	assert_int_equal(audit_json_encode(v, AUDIT_JSON_NORMALIZE, &b, err, sizeof err), -1);
	assert_non_null(strstr(err, "duplicate"));
	json_decref(v);
}

static void refuse(const char *text, const char *why)
{
	char err[AUDIT_JSON_ERR_MAX];
	json_t *v = audit_json_parse(text, strlen(text), 64, err, sizeof err);

	if (v)
		fail_msg("accepted %s", text);
	if (!strstr(err, why))
		fail_msg("%s: error \"%s\" does not say \"%s\"", text, err, why);
}

static void test_strict_refusals(void **state)
{
	(void)state;
	refuse("{\"a\": 1}", "not canonical");
	refuse("{\"b\":1,\"a\":2}", "not canonical");
	refuse("{\"a\":1,\"a\":1}", "not JSON");              /* duplicate key */
	refuse("{\"a\":1.0}", "float");
	refuse("{\"a\":1e2}", "float");
	refuse("{\"a\":-0}", "not canonical");
	refuse("{\"a\":\"\\u0041\"}", "not canonical");
	refuse("{\"a\":\"\\/\"}", "not canonical");
	refuse("{\"a\":\"\\u001F\"}", "not canonical");
	refuse("{\"a\":\"Cafe\xcc\x81\"}", "NFC");
	refuse("{\"a\":\"\xff\"}", "not JSON");                /* bad UTF-8 */
	refuse("{\"a\":\"\xed\xa0\x80\"}", "not JSON");        /* a surrogate */
	refuse("{\"a\":1}\n", "not canonical");
	refuse("{\"a\":\"0123456789012345678901234567890123456789012345678901234567890\"}",
	       "more than");
	refuse("{\"a\":[[[[[[[[[[1]]]]]]]]]]}", "nested");
	refuse("{\"a\":99999999999999999999}", "not JSON");
}

static void stored(char *out, size_t *n, const char *reason)
{
	audit_entry e = { .stream = "s", .kind = "k", .writer_id = "w", .reason = reason, .ts_ms = 5 };
	uint8_t h[B3_OUT_LEN];
	char err[AUDIT_ERR_MAX];

	assert_int_equal(audit_record_encode(&e, 0, NULL, out, AUDIT_RECORD_MAX, n, h, err,
	                                     sizeof err), 0);
	out[*n] = '\0';
}

static void refuse_record(const char *text, const char *why)
{
	char err[AUDIT_ERR_MAX];
	audit_record r;

	if (audit_record_parse(text, strlen(text), &r, err, sizeof err) == 0)
		fail_msg("accepted %s", text);
	if (!strstr(err, why))
		fail_msg("%s: error \"%s\" does not say \"%s\"", text, err, why);
}

static void test_record_refusals(void **state)
{
	static char out[AUDIT_RECORD_MAX + 1], big[AUDIT_RECORD_MAX + 64];
	char err[AUDIT_ERR_MAX], *p;
	size_t n;
	audit_record r;

	(void)state;
	stored(out, &n, "ok");
	assert_int_equal(audit_record_parse(out, n, &r, err, sizeof err), 0);
	p = strstr(out, "\"reason\":\"ok\"");
	p[10] = 'O';                                  /* one byte: self_hash no longer fits */
	refuse_record(out, "self_hash does not match");
	refuse_record("{\"a\":1}", "missing key");
	stored(out, &n, "ok");
	p = strstr(out, "\"v\":1");
	p[4] = '2';
	refuse_record(out, "\"v\" is not 1");
	stored(out, &n, "ok");
	p = strstr(out, "\"seq\":0");
	p[6] = '3';
	refuse_record(out, "b3:0");
	/* An unknown key, however canonical. */
	stored(out, &n, "ok");
	memmove(out + 10, out + 1, n);
	memcpy(out + 1, "\"aaa\":1,\"", 9);
	out[10] = 'a';
	refuse_record(out, "");
	/* Too large to store: refused by the encoder, not truncated. */
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	audit_entry e = { .stream = "s", .kind = "k", .writer_id = "w", .reason = big };
	uint8_t h[B3_OUT_LEN];
	assert_int_equal(audit_record_encode(&e, 0, NULL, out, sizeof out, &n, h, err, sizeof err), -1);
	assert_non_null(strstr(err, "too large"));
	/* Streams are names, floats are not integers. */
	e.reason = "r";
	e.stream = "bad stream";
	assert_int_equal(audit_record_encode(&e, 0, NULL, out, sizeof out, &n, h, err, sizeof err), -1);
	e.stream = "s";
	json_t *attrs = json_pack("{s:f}", "x", 1.5);
	e.attrs = attrs;
	assert_int_equal(audit_record_encode(&e, 0, NULL, out, sizeof out, &n, h, err, sizeof err), -1);
	assert_non_null(strstr(err, "float"));
	json_decref(attrs);
}

/* prev links: seq 1 carries seq 0's self_hash. */
static void test_chain_fields(void **state)
{
	audit_entry e = { .stream = "admin", .kind = "reload", .writer_id = "node", .reason = "ok" };
	char out[AUDIT_RECORD_MAX], err[AUDIT_ERR_MAX];
	uint8_t h0[B3_OUT_LEN], h1[B3_OUT_LEN];
	size_t n;
	audit_record r;

	(void)state;
	assert_int_equal(audit_record_encode(&e, 0, NULL, out, sizeof out, &n, h0, err, sizeof err), 0);
	assert_int_equal(audit_record_encode(&e, 1, h0, out, sizeof out, &n, h1, err, sizeof err), 0);
	assert_int_equal(audit_record_parse(out, n, &r, err, sizeof err), 0);
	assert_int_equal(r.seq, 1);
	assert_false(r.genesis);
	assert_memory_equal(r.prev, h0, B3_OUT_LEN);
	assert_memory_equal(r.self_hash, h1, B3_OUT_LEN);
	/* seq 1 without prev, seq 0 with one: refused. */
	assert_int_equal(audit_record_encode(&e, 1, NULL, out, sizeof out, &n, h1, err, sizeof err), -1);
	assert_int_equal(audit_record_encode(&e, 0, h0, out, sizeof out, &n, h1, err, sizeof err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_r1_vector),
		cmocka_unit_test(test_canonical_roundtrip),
		cmocka_unit_test(test_strict_refusals),
		cmocka_unit_test(test_record_refusals),
		cmocka_unit_test(test_chain_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
