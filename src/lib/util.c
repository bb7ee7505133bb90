/*
 * util.c — small OS helpers (see util.h).
 */
#include "lib/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
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

uint64_t util_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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

static int ensure_one(const char *path, mode_t mode, char *err, size_t errlen)
{
	struct stat st;

	/* Asked before made: a sandboxed service reopening its own directory
	 * makes no mkdir (nor chmod, below) its filter would kill it for. */
	if (lstat(path, &st) != 0 && mkdir(path, mode) != 0 && errno != EEXIST) {
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
	struct stat st;

	if (ensure_one(path, mode, err, errlen) != 0)
		return -1;
	if (stat(path, &st) == 0 && (st.st_mode & 07777) == mode)
		return 0;
	if (chmod(path, mode) != 0) {
		snprintf(err, errlen, "%s: cannot set mode %o: %s", path, (unsigned)mode, strerror(errno));
		return -1;
	}
	return 0;
}

/* A TCP socket bound to addr (SO_REUSEADDR; SO_REUSEPORT when asked),
 * listening when backlog >= 0. */
static int util_bind_tcp(const struct sockaddr *addr, socklen_t len, bool reuseport, int backlog,
                         char *err, size_t errlen)
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
	if ((reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
	    bind(fd, addr, len) != 0 || (backlog >= 0 && listen(fd, backlog) != 0)) {
		snprintf(err, errlen, "%s: cannot listen: %s", as, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int util_listen(const struct sockaddr *addr, socklen_t len, int backlog, char *err, size_t errlen)
{
	return util_bind_tcp(addr, len, false, backlog, err, errlen);
}

int util_listen_group(const struct sockaddr *addr, socklen_t len, int backlog, int *fds, size_t n,
                      char *err, size_t errlen)
{
	struct sockaddr_storage at;
	socklen_t atlen = sizeof at;
	int probe;
	size_t i;

	/* Nobody may hold the address now: a plain bind says so (with
	 * SO_REUSEPORT alone, a second node of the same user would join the
	 * first one's group and take half its connections, silently). It
	 * also fixes the port when addr asks for any (port 0). */
	memset(&at, 0, sizeof at);
	if ((probe = util_bind_tcp(addr, len, false, -1, err, errlen)) < 0)
		return -1;
	if (getsockname(probe, (struct sockaddr *)&at, &atlen) != 0) {
		snprintf(err, errlen, "getsockname: %s", strerror(errno));
		close(probe);
		return -1;
	}
	close(probe);
	for (i = 0; i < n; i++) {
		if ((fds[i] = util_bind_tcp((struct sockaddr *)&at, atlen, true, backlog, err,
		                            errlen)) < 0) {
			while (i > 0)
				close(fds[--i]);
			return -1;
		}
	}
	return 0;
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

bool util_entropy_sufficient(int min_bits, int *bits, const char **source)
{
	*bits = -1;
	*source = "getrandom";
	if (!util_entropy_ready())
		return false;
	int b = util_entropy_bits();
	if (b < 0)
		return true;    /* /proc/sys hidden: the initialised CRNG decides */
	*bits = b;
	*source = "entropy_avail";
	return b >= min_bits;
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

/* ---- files ---------------------------------------------------------------- */

util_file_status util_file_open(const char *path, size_t max, unsigned flags, int *fdp,
                                struct stat *st)
{
	int oflags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	util_file_status why = UTIL_FILE_OK;

	*fdp = -1;
	memset(st, 0, sizeof *st);
	if (flags & UTIL_FILE_NOFOLLOW)
		oflags |= O_NOFOLLOW;
	int fd = open(path, oflags);
	if (fd < 0)
		return UTIL_FILE_ERRNO;
	if (fstat(fd, st) != 0)
		why = UTIL_FILE_ERRNO;
	else if (!S_ISREG(st->st_mode))
		why = UTIL_FILE_NOT_REGULAR;
	else if ((flags & UTIL_FILE_SECRET) &&
	         (st->st_mode & ((flags & UTIL_FILE_GROUP_READ) ? 037 : 077)))
		why = UTIL_FILE_TOO_OPEN;
	else if ((uint64_t)st->st_size > max)
		why = UTIL_FILE_TOO_BIG;
	if (why != UTIL_FILE_OK) {
		int e = errno;
		close(fd);
		errno = e;
		return why;
	}
	*fdp = fd;
	return UTIL_FILE_OK;
}

int util_read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = read(fd, (char *)buf + got, len - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;   /* the file is shorter than it said */
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

int util_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;   /* the file is shorter than it said */
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

int util_read_file(const char *path, size_t max, char **out, size_t *outlen)
{
	struct stat st;
	int fd;
	char *buf;

	switch (util_file_open(path, max, 0, &fd, &st)) {
	case UTIL_FILE_OK:
		break;
	case UTIL_FILE_NOT_REGULAR:
		errno = EINVAL;
		return -1;
	case UTIL_FILE_TOO_BIG:
		errno = EFBIG;
		return -1;
	default:
		return -1;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf || util_read_full(fd, buf, (size_t)st.st_size) != 0) {
		int e = buf ? errno : ENOMEM;
		free(buf);
		close(fd);
		errno = e;
		return -1;
	}
	close(fd);
	buf[st.st_size] = '\0';
	*out = buf;
	if (outlen)
		*outlen = (size_t)st.st_size;
	return 0;
}

int util_tmp_name(const char *path, char *out, size_t outlen)
{
	const char *base = strrchr(path, '/');
	int n = base ? snprintf(out, outlen, "%.*s/.%s.tmp", (int)(base - path), path, base + 1)
	             : snprintf(out, outlen, ".%s.tmp", path);

	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

static int util_fsync_dir_of(const char *path)
{
	const char *base = strrchr(path, '/');
	char dir[PATH_MAX];
	int n = base ? snprintf(dir, sizeof dir, "%.*s", base == path ? 1 : (int)(base - path), path)
	             : snprintf(dir, sizeof dir, ".");

	if (n < 0 || (size_t)n >= sizeof dir) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return r;
}

/* A fresh tmp file with exactly mode, fsync'd. 0/-1 (errno), nothing left on failure. */
static int util_write_tmp(const char *tmp, const void *data, size_t len, mode_t mode)
{
	if (unlink(tmp) != 0 && errno != ENOENT)   /* a leftover of a crashed run */
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	/* fchmod: the umask must not loosen or tighten what the caller asked for. */
	if (fchmod(fd, mode) != 0 || util_write_all(fd, data, len) != 0 || fsync(fd) != 0) {
		int e = errno;
		close(fd);
		(void)unlink(tmp);
		errno = e;
		return -1;
	}
	if (close(fd) != 0) {
		int e = errno;
		(void)unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

util_write_status util_write_atomic(const char *path, const void *data, size_t len,
                                    mode_t mode, unsigned flags)
{
	char tmp[PATH_MAX];
	int r, e;

	if (util_tmp_name(path, tmp, sizeof tmp) != 0) {
		errno = ENAMETOOLONG;
		return UTIL_WRITE_ETMP;
	}
	if (util_write_tmp(tmp, data, len, mode) != 0)
		return UTIL_WRITE_ETMP;
	/* link(2) fails with EEXIST where rename(2) would silently replace. */
	r = (flags & UTIL_WRITE_NOREPLACE) ? link(tmp, path) : rename(tmp, path);
	e = errno;
	(void)unlink(tmp);
	if (r != 0) {
		errno = e;
		return UTIL_WRITE_EPUBLISH;
	}
	return util_fsync_dir_of(path) == 0 ? UTIL_WRITE_OK : UTIL_WRITE_ESYNC;
}

/* ---- hex ------------------------------------------------------------------ */

/* One nibble as a lowercase digit, without a table or a branch on the value:
 * the same instructions run for every byte of a key. */
static char util_hex_digit(unsigned v)
{
	/* (9 - v) >> 8 is all ones when v > 9: then add the gap from '9'+1 to 'a'. */
	return (char)('0' + v + (((9u - v) >> 8) & ('a' - '0' - 10)));
}

void util_hex_encode(const void *in, size_t n, char *out)
{
	const uint8_t *p = in;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = util_hex_digit(p[i] >> 4);
		out[2 * i + 1] = util_hex_digit(p[i] & 15u);
	}
	out[2 * n] = '\0';
}

static int util_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;   /* uppercase is refused on purpose: one spelling per value */
}

int util_hex_decode(const char *s, size_t n, uint8_t *out)
{
	for (size_t i = 0; i < n; i++) {
		int hi = util_hex_value(s[2 * i]), lo = util_hex_value(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void util_peer_key(const struct sockaddr *sa, char *out, size_t len)
{
	char buf[INET6_ADDRSTRLEN] = "unknown";

	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
	} else if (sa && sa->sa_family == AF_INET6) {
		struct in6_addr a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		if (!IN6_IS_ADDR_V4MAPPED(&a))
			memset(a.s6_addr + 8, 0, 8);
		inet_ntop(AF_INET6, &a, buf, sizeof buf);
	}
	snprintf(out, len, "ip:%s", buf);
}

int util_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}
