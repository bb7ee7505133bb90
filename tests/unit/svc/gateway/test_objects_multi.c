/*
 * test_objects_multi.c — the framing of a multipart/byteranges answer: the
 * exact part heads and close delimiter, a Content-Length that equals the
 * bytes the framing and the parts add up to (computed independently here),
 * widest numbers, and a fresh random boundary per answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "svc/gateway/objects.h"

static void test_heads_and_tail(void **state)
{
	range_span sp[2] = { { 0, 1 }, { 5, 9 } };
	objects_multi *m = objects_multi_new(sp, 2, 100, NULL);
	char buf[OBJECTS_PART_HEAD_MAX], want[OBJECTS_PART_HEAD_MAX];
	size_t n;

	(void)state;
	assert_non_null(m);
	n = objects_multi_head(m, 0, buf);
	snprintf(want, sizeof want, "--%s\r\nContent-Type: application/octet-stream\r\n"
	         "Content-Range: bytes 0-1/100\r\n\r\n", m->boundary);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, n);
	n = objects_multi_head(m, 1, buf);
	snprintf(want, sizeof want, "\r\n--%s\r\nContent-Type: application/octet-stream\r\n"
	         "Content-Range: bytes 5-9/100\r\n\r\n", m->boundary);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, n);
	n = objects_multi_tail(m, buf);
	snprintf(want, sizeof want, "\r\n--%s--\r\n", m->boundary);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, n);
	objects_multi_content_type(m, buf, sizeof buf);
	snprintf(want, sizeof want, "multipart/byteranges; boundary=%s", m->boundary);
	assert_string_equal(buf, want);
	objects_multi_free(m);
	objects_multi_free(NULL);
}

/* The body length against the body itself, assembled here. */
static void test_body_len(void **state)
{
	static const uint64_t lens[] = { 10, 100000, UINT64_C(1) << 40, UINT64_MAX / 4 };

	(void)state;
	for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
		uint64_t len = lens[t];
		range_span sp[3] = { { 0, 0 }, { 2, len / 2 }, { len - 3, len - 1 } };
		objects_multi *m = objects_multi_new(sp, 3, len, NULL);
		char buf[OBJECTS_PART_HEAD_MAX], one[OBJECTS_PART_HEAD_MAX];
		uint64_t want = 0;

		assert_non_null(m);
		for (size_t k = 0; k < 3; k++) {
			int w = snprintf(one, sizeof one, "%s--%s\r\nContent-Type: application/"
			                 "octet-stream\r\nContent-Range: bytes %llu-%llu/%llu\r\n\r\n",
			                 k ? "\r\n" : "", m->boundary,
			                 (unsigned long long)sp[k].start, (unsigned long long)sp[k].end,
			                 (unsigned long long)len);

			assert_int_equal(objects_multi_head(m, k, buf), (size_t)w);
			want += (uint64_t)w + sp[k].end - sp[k].start + 1;
		}
		want += strlen("\r\n--") + OBJECTS_BOUNDARY_LEN + strlen("--\r\n");
		assert_int_equal(objects_multi_body_len(m), (int64_t)want);
		objects_multi_free(m);
	}
}

/* Three 20-digit numbers still fit a part head; past INT64_MAX the body
 * length is refused rather than wrapped. */
static void test_extremes(void **state)
{
	range_span sp[2] = { { 0, UINT64_MAX / 2 }, { UINT64_MAX - 3, UINT64_MAX - 2 } };
	char longest[128];
	objects_multi *m;
	char buf[OBJECTS_PART_HEAD_MAX];

	(void)state;
	memset(longest, 'x', sizeof longest - 1);
	memcpy(longest, "application/", 12);
	longest[sizeof longest - 1] = '\0';   /* a recorded type's longest: 127 bytes */
	m = objects_multi_new(sp, 2, UINT64_MAX, longest);
	assert_non_null(m);
	assert_int_equal(objects_multi_head(m, 1, buf), 141 + 127);
	assert_non_null(strstr(buf, longest));
	assert_non_null(strstr(buf, "bytes 18446744073709551612-18446744073709551613/"
	                            "18446744073709551615\r\n\r\n"));
	assert_int_equal(objects_multi_body_len(m), -1);
	objects_multi_free(m);
}

/* The parts carry the representation's type (RFC 9110 §14.6); none, or one
 * too long for a record, is application/octet-stream. */
static void test_part_type(void **state)
{
	range_span sp[2] = { { 0, 1 }, { 5, 9 } };
	char big[200], buf[OBJECTS_PART_HEAD_MAX], want[OBJECTS_PART_HEAD_MAX];
	objects_multi *m = objects_multi_new(sp, 2, 100, "image/png");
	size_t n;

	(void)state;
	assert_non_null(m);
	n = objects_multi_head(m, 1, buf);
	snprintf(want, sizeof want, "\r\n--%s\r\nContent-Type: image/png\r\n"
	         "Content-Range: bytes 5-9/100\r\n\r\n", m->boundary);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, n);
	objects_multi_free(m);
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	for (int i = 0; i < 2; i++) {
		m = objects_multi_new(sp, 2, 100, i ? big : "");
		assert_non_null(m);
		assert_string_equal(m->ctype, "application/octet-stream");
		objects_multi_free(m);
	}
}

static void test_boundary_fresh(void **state)
{
	range_span sp[2] = { { 0, 1 }, { 5, 9 } };
	objects_multi *a = objects_multi_new(sp, 2, 100, NULL), *b = objects_multi_new(sp, 2, 100, NULL);

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(strlen(a->boundary), OBJECTS_BOUNDARY_LEN);
	assert_int_equal(strspn(a->boundary, "0123456789abcdef"), OBJECTS_BOUNDARY_LEN);
	assert_string_not_equal(a->boundary, b->boundary);
	/* the spans are a copy */
	sp[0].end = 7;
	assert_int_equal(a->spans[0].end, 1);
	objects_multi_free(a);
	objects_multi_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heads_and_tail),
		cmocka_unit_test(test_body_len),
		cmocka_unit_test(test_extremes),
		cmocka_unit_test(test_part_type),
		cmocka_unit_test(test_boundary_fresh),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
