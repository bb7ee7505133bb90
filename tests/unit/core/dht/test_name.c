/* The name rules (src/core/dht/name.h): every rule refuses what it should,
 * with its name in the message, and lets through what it should; NFC vs NFD
 * "é" is the case the rules exist for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/dht/name.h"

static name_rule check(const char *s)
{
	return name_check(s, strlen(s), NULL, 0);
}

static void test_accepts(void **state)
{
	static const char *const ok[] = {
		"a", "alice", "alice/home", "alice/photos/2024-06_trip.v2", "Alice/Home",
		"caf\xc3\xa9",                          /* café, NFC (U+00E9) */
		"\xe6\x9d\xb1\xe4\xba\xac/\xe9\x83\xbd", /* 東京/都 */
		"\xd0\x9c\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0", /* Москва */
		"\xe0\xa4\xb9\xe0\xa4\xbf\xe0\xa4\x82\xe0\xa4\xa6\xe0\xa5\x80", /* हिंदी: marks after letters */
		"...", "a..b", ".hidden", "_/-/.x", "0/9",
	};

	(void)state;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		assert_int_equal(check(ok[i]), NAME_OK);
}

static void test_nfc_vs_nfd(void **state)
{
	const char nfc[] = "caf\xc3\xa9";      /* U+00E9 */
	const char nfd[] = "cafe\xcc\x81";     /* e + U+0301 COMBINING ACUTE ACCENT */
	char msg[NAME_MSG_MAX];

	(void)state;
	assert_int_equal(name_check(nfc, strlen(nfc), msg, sizeof msg), NAME_OK);
	assert_string_equal(msg, "");
	assert_int_equal(name_check(nfd, strlen(nfd), msg, sizeof msg), NAME_NOT_NFC);
	assert_non_null(strstr(msg, "not_nfc"));
	assert_non_null(strstr(msg, "NFC"));
	/* The same rule for a Hangul syllable written as its jamo. */
	assert_int_equal(check("\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab"), NAME_NOT_NFC);
	assert_int_equal(check("\xed\x95\x9c"), NAME_OK);   /* 한 precomposed */
}

static void test_length(void **state)
{
	char s[NAME_MAX_LEN + 2], msg[NAME_MSG_MAX];

	(void)state;
	memset(s, 'a', sizeof s);
	assert_int_equal(name_check(s, NAME_MAX_LEN, NULL, 0), NAME_OK);
	assert_int_equal(name_check(s, NAME_MAX_LEN + 1, msg, sizeof msg), NAME_TOO_LONG);
	assert_non_null(strstr(msg, "too_long"));
	assert_non_null(strstr(msg, "256 bytes"));
	assert_int_equal(name_check("", 0, msg, sizeof msg), NAME_EMPTY);
	assert_non_null(strstr(msg, "(empty)"));
	/* 85 three-byte characters are 255 bytes: the bound is bytes, not characters. */
	for (int i = 0; i < 85; i++)
		memcpy(s + 3 * i, "\xe6\x9d\xb1", 3);
	assert_int_equal(name_check(s, 255, NULL, 0), NAME_OK);
	s[255] = 'a';
	assert_int_equal(name_check(s, 256, NULL, 0), NAME_TOO_LONG);
}

static void test_segments(void **state)
{
	static const struct { const char *s; name_rule r; } bad[] = {
		{ "/a", NAME_EMPTY_SEGMENT }, { "a/", NAME_EMPTY_SEGMENT }, { "a//b", NAME_EMPTY_SEGMENT },
		{ "/", NAME_EMPTY_SEGMENT }, { ".", NAME_DOT_SEGMENT }, { "..", NAME_DOT_SEGMENT },
		{ "a/../b", NAME_DOT_SEGMENT }, { "a/.", NAME_DOT_SEGMENT }, { "../a", NAME_DOT_SEGMENT },
	};
	char msg[NAME_MSG_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(name_check(bad[i].s, strlen(bad[i].s), msg, sizeof msg), bad[i].r);
		assert_non_null(strstr(msg, name_rule_name(bad[i].r)));
	}
}

static void test_chars(void **state)
{
	static const char *const bad[] = {
		"a b", "a\tb", "a\nb", "a\x7f", "a\x01", "a\xc2\xa0" "b",   /* NBSP */
		"a:b", "a?b", "a#b", "a%b", "a\\b", "a+b", "a@b", "a~b",
		"\xe2\x80\x8b", /* U+200B ZERO WIDTH SPACE (Cf) */
		"\xe2\x80\xae" "abc", /* U+202E RIGHT-TO-LEFT OVERRIDE */
		"\xf0\x9f\x98\x80", /* U+1F600 emoji (So) */
		"\xcc\x81" "a",     /* a combining mark first */
		"a/\xcc\x81",       /* a combining mark first in its segment */
		"a-\xcc\x81",       /* a combining mark after '-' */
		"\xf3\xb0\x80\x80", /* U+F0000 private use */
		"\xcd\xb8",         /* U+0378 unassigned */
	};
	char msg[NAME_MSG_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(name_check(bad[i], strlen(bad[i]), msg, sizeof msg), NAME_BAD_CHAR);
		assert_non_null(strstr(msg, "bad_char"));
		assert_non_null(strstr(msg, "U+"));
	}
	/* A NUL inside is a control character, not the end. */
	assert_int_equal(name_check("a\0b", 3, msg, sizeof msg), NAME_BAD_CHAR);
	assert_non_null(strstr(msg, "U+0000 at byte 1"));
}

static void test_utf8(void **state)
{
	static const char *const bad[] = {
		"\xc3", "a\xff", "\xc0\xaf", "\xe0\x80\xaf", /* truncated, invalid, overlong */
		"\xed\xa0\x80",                                /* a surrogate */
		"\xf4\x90\x80\x80",                            /* past U+10FFFF */
	};
	char msg[NAME_MSG_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(name_check(bad[i], strlen(bad[i]), msg, sizeof msg), NAME_BAD_UTF8);
		assert_non_null(strstr(msg, "bad_utf8"));
	}
}

static void test_names_and_msg_bounds(void **state)
{
	char tiny[8];
	char s[300];

	(void)state;
	assert_string_equal(name_rule_name(NAME_OK), "ok");
	assert_string_equal(name_rule_name(NAME_NOT_NFC), "not_nfc");
	assert_string_equal(name_rule_name(NAME_RULE_COUNT), "unknown");
	assert_int_equal(name_check("a b", 3, tiny, sizeof tiny), NAME_BAD_CHAR);
	assert_int_equal(strlen(tiny), sizeof tiny - 1);
	/* The message never quotes the name. */
	memset(s, 'x', sizeof s);
	s[0] = ' ';
	char msg[NAME_MSG_MAX];
	assert_int_equal(name_check(s, 200, msg, sizeof msg), NAME_BAD_CHAR);
	assert_null(strstr(msg, "xx"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts),
		cmocka_unit_test(test_nfc_vs_nfd),
		cmocka_unit_test(test_length),
		cmocka_unit_test(test_segments),
		cmocka_unit_test(test_chars),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_names_and_msg_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
