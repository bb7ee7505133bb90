/* Content ids: the interop vectors (tests/vectors/README.md §1), strict
 * parsing, and agreement with b3sum (an independent BLAKE3) on random data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/b3.h"

static void cid_of(const char *s, size_t len, char out[B3_CID_LEN + 1])
{
	uint8_t d[B3_OUT_LEN];
	b3_hash(s, len, d);
	b3_cid_format(d, out);
}

static void test_vectors(void **st)
{
	char cid[B3_CID_LEN + 1];
	(void)st;
	cid_of("", 0, cid);
	assert_string_equal(cid, "b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
	cid_of("hello world", 11, cid);
	assert_string_equal(cid, "b3:d74981efa70a0c880b8d8c1985d075dbcbf679b99a5f9914e5aaf96b831a9e24");
	cid_of("hello rusty onions\n", 19, cid);
	assert_string_equal(cid, "b3:cb15b00d49a2c0b73974c1fed3081dd558e7307f0df80526093e44e00719307f");
}

static void test_parse_strict(void **st)
{
	const char *good = "b3:d74981efa70a0c880b8d8c1985d075dbcbf679b99a5f9914e5aaf96b831a9e24";
	uint8_t d[B3_OUT_LEN], e[B3_OUT_LEN];
	char again[B3_CID_LEN + 1];
	(void)st;
	assert_int_equal(b3_cid_parse(good, strlen(good), d), 0);
	b3_cid_format(d, again);
	assert_string_equal(again, good);
	b3_hash("hello world", 11, e);
	assert_true(b3_equal(d, e));
	char upper[B3_CID_LEN + 1];
	memcpy(upper, good, sizeof upper);
	upper[10] = 'F';
	assert_int_equal(b3_cid_parse(upper, strlen(upper), d), -1);
	assert_int_equal(b3_cid_parse(good + 3, 64, d), -1);            /* no prefix */
	assert_int_equal(b3_cid_parse(good, strlen(good) - 1, d), -1);  /* short */
	assert_int_equal(b3_cid_parse("b4:", 3, d), -1);
	char longer[80];
	snprintf(longer, sizeof longer, "%s0", good);
	assert_int_equal(b3_cid_parse(longer, strlen(longer), d), -1);
	char bad[B3_CID_LEN + 1];
	memcpy(bad, good, sizeof bad);
	bad[40] = 'g';
	assert_int_equal(b3_cid_parse(bad, strlen(bad), d), -1);
	e[0] ^= 1;
	assert_false(b3_equal(d, e));
}

/* Compare with b3sum on random data of awkward sizes (chunk and SIMD edges). */
static void test_against_b3sum(void **st)
{
	const char *b3sum = getenv("MN_B3SUM");
	static const size_t sizes[] = { 1, 63, 64, 65, 1023, 1024, 1025, 2048, 4097,
	                                65535, 65536, 65537, 1048576 + 7 };
	(void)st;
	if (!b3sum || !*b3sum || access(b3sum, X_OK) != 0)
		skip();
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t n = sizes[i];
		uint8_t *buf = malloc(n), d[B3_OUT_LEN];
		char hex[B3_HEX_LEN + 1], path[] = "/tmp/mn-b3-XXXXXX", cmd[256], out[128] = "";
		assert_non_null(buf);
		for (size_t j = 0; j < n; j++)
			buf[j] = (uint8_t)rand();
		int fd = mkstemp(path);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, buf, n), (ssize_t)n);
		close(fd);
		snprintf(cmd, sizeof cmd, "%s --no-names %s", b3sum, path);
		FILE *p = popen(cmd, "r");
		assert_non_null(p);
		assert_non_null(fgets(out, sizeof out, p));
		pclose(p);
		unlink(path);
		b3_hash(buf, n, d);
		b3_hex(d, hex);
		assert_memory_equal(out, hex, B3_HEX_LEN);
		free(buf);
	}
}

static void test_keyed(void **st)
{
	/* Vector A of the token format (tests/vectors/README.md §3): tag0. */
	static const uint8_t init[] = {
		0x83, 0x64, 0x74, 0x65, 0x73, 0x74, 0x62, 0x6b, 0x31, 0xa3, 0x66, 0x70, 0x72, 0x65,
		0x66, 0x69, 0x78, 0x67, 0x2f, 0x69, 0x6e, 0x64, 0x65, 0x78, 0x2f, 0x67, 0x6d, 0x65,
		0x74, 0x68, 0x6f, 0x64, 0x73, 0x81, 0x63, 0x47, 0x45, 0x54, 0x69, 0x6d, 0x61, 0x78,
		0x5f, 0x62, 0x79, 0x74, 0x65, 0x73, 0xf6 };
	uint8_t d[B3_OUT_LEN];
	char hex[B3_HEX_LEN + 1];
	(void)st;
	b3_keyed_hash((const uint8_t *)"0123456789abcdef0123456789abcdef", init, sizeof init, d);
	b3_hex(d, hex);
	assert_string_equal(hex, "f2e7bfb1cece432f9aa33f9f67409b9517500eb1f27c5d5a2db0e8f0ded9d899");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_parse_strict),
		cmocka_unit_test(test_against_b3sum),
		cmocka_unit_test(test_keyed),
	};
	return cmocka_run_group_tests_name("b3", tests, NULL, NULL);
}
