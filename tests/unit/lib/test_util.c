/* Small OS helpers: strict number parsing, UNIX listeners, address text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/util.h"

static void test_parse_u64(void **st)
{
	uint64_t v = 7;
	(void)st;
	assert_int_equal(util_parse_u64("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(util_parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	static const char *const bad[] = { "", "-1", "+1", " 1", "1 ", "1k", "0x10",
	                                   "18446744073709551616", "99999999999999999999999" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		v = 7;
		assert_int_equal(util_parse_u64(bad[i], &v), -1);
		assert_int_equal(v, 7);  /* untouched on failure */
	}
	assert_int_equal(util_parse_u64(NULL, &v), -1);
}

static void test_listen_unix_mode_and_stale(void **st)
{
	char dir[] = "/tmp/mn-util-XXXXXX", path[128], err[256];
	struct stat sb;
	(void)st;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/s.sock", dir);
	int fd = util_listen_unix(path, SOCK_SEQPACKET, 0600, err, sizeof err);
	assert_true(fd >= 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	close(fd);
	/* a stale socket file is replaced */
	fd = util_listen_unix(path, SOCK_SEQPACKET, 0600, err, sizeof err);
	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	/* anything else at the path is refused, naming it */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(util_listen_unix(path, SOCK_SEQPACKET, 0600, err, sizeof err), -1);
	assert_non_null(strstr(err, "not a socket"));
	assert_non_null(strstr(err, path));
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_listen_unix_mode_and_stale),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
