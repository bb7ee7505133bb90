/* Small OS helpers: strict number parsing, UNIX listeners, files, hex. */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
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

/* ---- files and hex ---- */

static void put(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_file_open_checks(void **st)
{
	char dir[] = "/tmp/mn-util-XXXXXX", path[128], link_path[160];
	struct stat sb;
	int fd;
	(void)st;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/f", dir);
	put(path, "12345", 0644);
	assert_int_equal(util_file_open(path, 5, 0, &fd, &sb), UTIL_FILE_OK);
	assert_true(fd >= 0);
	assert_int_equal(sb.st_size, 5);
	close(fd);
	/* One byte over the limit. */
	assert_int_equal(util_file_open(path, 4, 0, &fd, &sb), UTIL_FILE_TOO_BIG);
	assert_int_equal(fd, -1);
	assert_int_equal(sb.st_size, 5);
	/* A secret readable by others is refused; 0600 is not. */
	assert_int_equal(util_file_open(path, 5, UTIL_FILE_SECRET, &fd, &sb), UTIL_FILE_TOO_OPEN);
	assert_int_equal(sb.st_mode & 0777, 0644);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(util_file_open(path, 5, UTIL_FILE_SECRET, &fd, &sb), UTIL_FILE_OK);
	close(fd);
	/* A directory, a missing file, a symlink with NOFOLLOW. */
	assert_int_equal(util_file_open(dir, 1 << 20, 0, &fd, &sb), UTIL_FILE_NOT_REGULAR);
	snprintf(link_path, sizeof link_path, "%s/missing", dir);
	assert_int_equal(util_file_open(link_path, 5, 0, &fd, &sb), UTIL_FILE_ERRNO);
	assert_int_equal(errno, ENOENT);
	snprintf(link_path, sizeof link_path, "%s/l", dir);
	assert_int_equal(symlink(path, link_path), 0);
	assert_int_equal(util_file_open(link_path, 5, 0, &fd, &sb), UTIL_FILE_OK);
	close(fd);
	assert_int_equal(util_file_open(link_path, 5, UTIL_FILE_NOFOLLOW, &fd, &sb), UTIL_FILE_ERRNO);
	assert_int_equal(errno, ELOOP);
	unlink(link_path);
	unlink(path);
	rmdir(dir);
}

static void test_read_file(void **st)
{
	char dir[] = "/tmp/mn-util-XXXXXX", path[128], *buf = NULL;
	size_t len = 0;
	uint8_t tmp[8];
	(void)st;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/f", dir);
	put(path, "hello\n", 0600);
	assert_int_equal(util_read_file(path, 6, &buf, &len), 0);
	assert_int_equal(len, 6);
	assert_string_equal(buf, "hello\n");   /* NUL-terminated */
	free(buf);
	assert_int_equal(util_read_file(path, 5, &buf, &len), -1);
	assert_int_equal(errno, EFBIG);
	assert_int_equal(util_read_file(dir, 5, &buf, &len), -1);
	assert_int_equal(errno, EINVAL);
	/* util_read_full: exactly len bytes, EIO when the file is shorter. */
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(util_read_full(fd, tmp, 5), 0);
	assert_memory_equal(tmp, "hello", 5);
	assert_int_equal(util_read_full(fd, tmp, 2), -1);
	assert_int_equal(errno, EIO);
	close(fd);
	unlink(path);
	rmdir(dir);
}

static void expect_file(const char *path, const char *text, mode_t mode)
{
	char *buf;
	size_t len;
	struct stat sb;
	assert_int_equal(util_read_file(path, 1024, &buf, &len), 0);
	assert_string_equal(buf, text);
	free(buf);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, mode);
}

static void test_write_atomic(void **st)
{
	char dir[] = "/tmp/mn-util-XXXXXX", path[128], tmp[160];
	(void)st;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/f.json", dir);
	assert_int_equal(util_tmp_name(path, tmp, sizeof tmp), 0);
	assert_true(strstr(tmp, "/.f.json.tmp") != NULL);
	assert_int_equal(strncmp(tmp, dir, strlen(dir)), 0);
	assert_int_equal(util_tmp_name(path, tmp, 8), -1);
	/* A leftover temp file of a crashed run does not stop the write. */
	assert_int_equal(util_tmp_name(path, tmp, sizeof tmp), 0);
	put(tmp, "stale", 0644);
	/* The mode is exactly what was asked, whatever the umask. */
	mode_t old = umask(0077);
	assert_int_equal(util_write_atomic(path, "one", 3, 0644, 0), UTIL_WRITE_OK);
	umask(old);
	expect_file(path, "one", 0644);
	assert_int_equal(access(tmp, F_OK), -1);
	/* Without NOREPLACE a newer file replaces it... */
	assert_int_equal(util_write_atomic(path, "two", 3, 0600, 0), UTIL_WRITE_OK);
	expect_file(path, "two", 0600);
	/* ...with it the existing file stays and EEXIST says why. */
	assert_int_equal(util_write_atomic(path, "six", 3, 0600, UTIL_WRITE_NOREPLACE),
	                 UTIL_WRITE_EPUBLISH);
	assert_int_equal(errno, EEXIST);
	expect_file(path, "two", 0600);
	assert_int_equal(access(tmp, F_OK), -1);
	unlink(path);
	assert_int_equal(util_write_atomic(path, "new", 3, 0600, UTIL_WRITE_NOREPLACE),
	                 UTIL_WRITE_OK);
	expect_file(path, "new", 0600);
	unlink(path);
	/* A directory that does not exist: nothing is written. */
	snprintf(path, sizeof path, "%s/no/f", dir);
	assert_int_equal(util_write_atomic(path, "x", 1, 0600, 0), UTIL_WRITE_ETMP);
	assert_int_equal(errno, ENOENT);
	rmdir(dir);
}

static void test_hex(void **st)
{
	uint8_t all[256], back[256];
	char hex[2 * sizeof all + 1];
	(void)st;
	for (size_t i = 0; i < sizeof all; i++)
		all[i] = (uint8_t)i;
	util_hex_encode(all, sizeof all, hex);
	assert_int_equal(strlen(hex), 512);
	assert_memory_equal(hex, "000102030405060708090a0b0c0d0e0f10", 34);
	assert_string_equal(hex + 500, "fafbfcfdfeff");
	assert_int_equal(util_hex_decode(hex, sizeof all, back), 0);
	assert_memory_equal(all, back, sizeof all);
	util_hex_encode(all, 0, hex);
	assert_string_equal(hex, "");
	/* One spelling only: uppercase and non-hex are refused. */
	assert_int_equal(util_hex_decode("0A", 1, back), -1);
	assert_int_equal(util_hex_decode("0g", 1, back), -1);
	assert_int_equal(util_hex_decode(":0", 1, back), -1);
	assert_int_equal(util_hex_decode("ff", 1, back), 0);
	assert_int_equal(back[0], 0xff);
}

/* One key per peer: an IPv6 /64 is one host, a v4-mapped address whole. */
static void test_peer_key(void **st)
{
	struct sockaddr_in v4 = { .sin_family = AF_INET };
	struct sockaddr_in6 a = { .sin6_family = AF_INET6 }, b = a, m = a;
	char k[64], k2[64];

	(void)st;
	inet_pton(AF_INET, "192.0.2.7", &v4.sin_addr);
	util_peer_key((struct sockaddr *)&v4, k, sizeof k);
	assert_string_equal(k, "ip:192.0.2.7");
	inet_pton(AF_INET6, "2001:db8:1:2:aaaa::1", &a.sin6_addr);
	inet_pton(AF_INET6, "2001:db8:1:2:bbbb::9", &b.sin6_addr);
	util_peer_key((struct sockaddr *)&a, k, sizeof k);
	util_peer_key((struct sockaddr *)&b, k2, sizeof k2);
	assert_string_equal(k, "ip:2001:db8:1:2::");
	assert_string_equal(k, k2);
	inet_pton(AF_INET6, "::ffff:192.0.2.7", &m.sin6_addr);
	util_peer_key((struct sockaddr *)&m, k, sizeof k);
	assert_string_equal(k, "ip:::ffff:192.0.2.7");
	util_peer_key(NULL, k, sizeof k);
	assert_string_equal(k, "ip:unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_listen_unix_mode_and_stale),
		cmocka_unit_test(test_file_open_checks),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_write_atomic),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_peer_key),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
