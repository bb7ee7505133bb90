/* JSON-lines logging: shape, escaping, levels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "lib/log.h"

static size_t capture(int fd, char *buf, size_t cap)
{
	ssize_t n = read(fd, buf, cap - 1);
	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

static void test_json_line(void **st)
{
	int p[2];
	char buf[4096];
	(void)st;
	assert_int_equal(pipe(p), 0);
	log_init("gateway", LOG_LEVEL_INFO, p[1]);
	log_kv(LOG_LEVEL_WARN, "refused \"x\"", "route", "/o/{b3}", "reason", "a\nb", LOG_END);
	capture(p[0], buf, sizeof buf);
	assert_non_null(strchr(buf, '\n'));
	json_error_t e;
	json_t *j = json_loads(buf, 0, &e);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
	assert_string_equal(json_string_value(json_object_get(j, "service")), "gateway");
	assert_string_equal(json_string_value(json_object_get(j, "msg")), "refused \"x\"");
	assert_string_equal(json_string_value(json_object_get(j, "route")), "/o/{b3}");
	assert_string_equal(json_string_value(json_object_get(j, "reason")), "a\nb");
	assert_non_null(json_string_value(json_object_get(j, "ts")));
	json_decref(j);
	close(p[0]);
	close(p[1]);
}

static void test_level_filter(void **st)
{
	int p[2];
	char buf[4096];
	log_level l;
	(void)st;
	assert_int_equal(pipe(p), 0);
	log_init("x", LOG_LEVEL_WARN, p[1]);
	log_kv(LOG_LEVEL_INFO, "hidden 1", LOG_END);
	log_kv(LOG_LEVEL_ERROR, "shown 2", LOG_END);
	capture(p[0], buf, sizeof buf);
	assert_null(strstr(buf, "hidden"));
	assert_non_null(strstr(buf, "\"msg\":\"shown 2\""));
	assert_int_equal(log_level_parse("debug", &l), 0);
	assert_int_equal(l, LOG_LEVEL_DEBUG);
	assert_int_equal(log_level_parse("trace", &l), 0);
	assert_int_equal(l, LOG_LEVEL_DEBUG);
	assert_int_equal(log_level_parse("loud", &l), -1);
	close(p[0]);
	close(p[1]);
}

static void test_escape_controls(void **st)
{
	char out[64];
	(void)st;
	log_json_escape(out, sizeof out, "a\x01\t\\");
	assert_string_equal(out, "a\\u0001\\t\\\\");
	log_json_escape(out, 5, "abcdefgh");
	assert_string_equal(out, "abcd");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_line),
		cmocka_unit_test(test_level_filter),
		cmocka_unit_test(test_escape_controls),
	};
	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
