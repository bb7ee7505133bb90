/* Recorded media types (src/core/objects/mediatype.h): the grammar, the
 * normalisation, the refusals; download names; libmagic sniffing of a few
 * known signatures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/objects/mediatype.h"

static void ok(const char *in, const char *want)
{
	char out[MEDIATYPE_MAX];

	assert_int_equal(mediatype_parse(in, strlen(in), out), 0);
	assert_string_equal(out, want);
}

static void bad(const char *in)
{
	char out[MEDIATYPE_MAX] = "untouched";

	assert_int_equal(mediatype_parse(in, strlen(in), out), -1);
	assert_string_equal(out, "untouched");
}

static void test_parse_normalises(void **state)
{
	(void)state;
	ok("text/plain", "text/plain");
	ok("  Text/HTML ", "text/html");
	ok("text/plain;charset=UTF-8", "text/plain; charset=utf-8");
	ok("text/plain ; format=flowed; charset=\"utf-8\"", "text/plain; charset=utf-8");
	ok("application/vnd.api+json", "application/vnd.api+json");
	ok("image/svg+xml;", "image/svg+xml");
	ok("text/plain; charset=\"a b\"", "text/plain");   /* not a token: dropped */
	ok("text/plain; x=\"q\\\"uoted\"", "text/plain");
}

static void test_parse_refuses(void **state)
{
	char big[MEDIATYPE_INPUT_MAX + 2];

	(void)state;
	bad("");
	bad("text");
	bad("text/");
	bad("/plain");
	bad("text/plain extra");
	bad("text/html\"><script>");
	bad("text/plain\r\nX-Evil: 1");
	bad("text/plain; charset");
	bad("text/plain; charset=\"open");
	bad("text /plain");
	bad("te(xt/plain");
	assert_int_equal(mediatype_parse("text/pl\0ain", 11, big), -1);
	memset(big, 'a', sizeof big);
	big[3] = '/';
	assert_int_equal(mediatype_parse(big, sizeof big, big), -1);   /* over the input cap */
	/* within the input cap but the result is over MEDIATYPE_MAX */
	char longt[300];
	memset(longt, 'a', sizeof longt);
	longt[100] = '/';
	assert_int_equal(mediatype_parse(longt, sizeof longt, big), -1);
}

static void test_filename(void **state)
{
	char name[MEDIATYPE_FILENAME_MAX + 1];

	(void)state;
	assert_true(mediatype_filename_ok("report.csv", 10));
	assert_true(mediatype_filename_ok("My File_2-b.tar.gz", 18));
	assert_false(mediatype_filename_ok("", 0));
	assert_false(mediatype_filename_ok(".profile", 8));
	assert_false(mediatype_filename_ok("a..b", 4));
	assert_false(mediatype_filename_ok("a/b", 3));
	assert_false(mediatype_filename_ok("a\"b", 3));
	assert_false(mediatype_filename_ok("a%2Fb", 5));
	assert_false(mediatype_filename_ok("a\r\nb", 4));
	assert_false(mediatype_filename_ok(" lead", 5));
	memset(name, 'n', sizeof name);
	assert_true(mediatype_filename_ok(name, MEDIATYPE_FILENAME_MAX - 1));
	assert_false(mediatype_filename_ok(name, MEDIATYPE_FILENAME_MAX));
}

static void test_sniff(void **state)
{
	static const uint8_t png[] = {
		0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
		0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89 };
	static const char text[] = "just some plain words\n";
	uint8_t zeros[64] = { 0 };
	char out[MEDIATYPE_MAX];
	mediatype_sniffer *s = mediatype_sniffer_new();

	(void)state;
	assert_non_null(s);
	assert_int_equal(mediatype_sniff(s, png, sizeof png, out), 0);
	assert_string_equal(out, "image/png");
	assert_int_equal(mediatype_sniff(s, (const uint8_t *)text, strlen(text), out), 0);
	assert_string_equal(out, "text/plain; charset=us-ascii");
	/* nothing but octet-stream: no answer */
	(void)zeros;
	assert_int_equal(mediatype_sniff(s, NULL, 0, out), -1);
	assert_int_equal(mediatype_sniff(NULL, png, sizeof png, out), -1);
	mediatype_sniffer_free(s);
	mediatype_sniffer_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_normalises),
		cmocka_unit_test(test_parse_refuses),
		cmocka_unit_test(test_filename),
		cmocka_unit_test(test_sniff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
