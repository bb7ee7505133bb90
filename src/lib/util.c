/*
 * util.c — small OS helpers (see util.h).
 */
#include "lib/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

uint64_t util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t util_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint32_t util_random_u32(void)
{
	uint32_t v = 0;

	while (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
		if (errno != EINTR)
			abort(); /* no randomness at all: nothing safe to do */
	}
	return v;
}

int util_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int util_set_cloexec(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFD);
	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFD, on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC));
}

static int ensure_one(const char *path, mode_t mode, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(path, mode) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot create directory: %s", path, strerror(errno));
		return -1;
	}
	if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", path);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s: owned by uid %u, not by this user (uid %u)", path,
		         (unsigned)st.st_uid, (unsigned)geteuid());
		return -1;
	}
	return 0;
}

int util_ensure_dir(const char *path, mode_t mode, char *err, size_t errlen)
{
	char buf[1024];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof buf) {
		snprintf(err, errlen, "%s: bad directory path", path);
		return -1;
	}
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		struct stat st;
		if (stat(buf, &st) != 0 && mkdir(buf, 0700) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: cannot create directory: %s", buf, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (ensure_one(path, mode, err, errlen) != 0)
		return -1;
	if (chmod(path, mode) != 0) {
		snprintf(err, errlen, "%s: cannot set mode %o: %s", path, (unsigned)mode, strerror(errno));
		return -1;
	}
	return 0;
}

int util_listen(const struct sockaddr *addr, socklen_t len, int backlog, char *err, size_t errlen)
{
	char as[128];
	int one = 1;
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	util_addr_str(addr, as, sizeof as);
	if (fd < 0) {
		snprintf(err, errlen, "%s: socket: %s", as, strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, addr, len) != 0 || listen(fd, backlog) != 0) {
		snprintf(err, errlen, "%s: cannot listen: %s", as, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int util_listen_unix(const char *path, int type, mode_t mode, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;

	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "%s: socket path too long (max %zu)", path, sizeof sun.sun_path - 1);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s: exists and is not a socket", path);
			return -1;
		}
		(void)unlink(path);
	}
	int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s: socket: %s", path, strerror(errno));
		return -1;
	}
	mode_t old = umask((mode_t)(~mode & 0777));
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	umask(old);
	if (rc != 0 || listen(fd, 128) != 0) {
		snprintf(err, errlen, "%s: cannot listen: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int util_entropy_bits(void)
{
	FILE *f = fopen("/proc/sys/kernel/random/entropy_avail", "re");
	int bits = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%d", &bits) != 1)
		bits = -1;
	fclose(f);
	return bits;
}

bool util_entropy_ready(void)
{
	uint8_t b;

	return getrandom(&b, 1, GRND_NONBLOCK) == 1;
}

int util_parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || !s[0] || s[0] < '0' || s[0] > '9')
		return -1;  /* strtoull would accept a sign or leading space */
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

void util_addr_str(const struct sockaddr *sa, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
		snprintf(out, outlen, "%s:%u", ip, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
		snprintf(out, outlen, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		snprintf(out, outlen, "unix");
	}
}

int util_read_file(const char *path, size_t max, char **out, size_t *outlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		close(fd);
		errno = EFBIG;
		return -1;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -1;
	}
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	if (outlen)
		*outlen = got;
	return 0;
}

int util_write_all(int fd, const void *data, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t w = write(fd, (const char *)data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		off += (size_t)w;
	}
	return 0;
}
