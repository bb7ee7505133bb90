/*
 * util.h — small OS helpers with no daemon knowledge.
 */
#ifndef MN_LIB_UTIL_H
#define MN_LIB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Monotonic milliseconds. */
uint64_t util_now_ms(void);
/* Wall clock milliseconds since the epoch. */
uint64_t util_wall_ms(void);
/* Uniform random 32-bit value from the kernel CSPRNG. */
uint32_t util_random_u32(void);

__attribute__((warn_unused_result)) int util_set_nonblock(int fd);
__attribute__((warn_unused_result)) int util_set_cloexec(int fd, bool on);

/*
 * Ensure path is a directory with exactly `mode` that this user owns,
 * creating it (and missing parents, 0700) if needed. A directory that exists
 * with looser permissions is tightened; one owned by someone else is refused.
 * err names the path and the problem.
 */
__attribute__((warn_unused_result))
int util_ensure_dir(const char *path, mode_t mode, char *err, size_t errlen);

/*
 * Bind + listen on addr (SO_REUSEADDR, non-blocking, cloexec). Returns the fd
 * or -1 with err naming the address and errno text.
 */
__attribute__((warn_unused_result))
int util_listen(const struct sockaddr *addr, socklen_t len, int backlog, char *err, size_t errlen);

/*
 * Bind + listen on a UNIX socket path (type SOCK_STREAM or SOCK_SEQPACKET;
 * non-blocking, cloexec), created with `mode` (no window where it is looser:
 * the umask is set around bind). A stale socket file at path is replaced;
 * any other file there is refused. Returns the fd or -1 with err.
 */
__attribute__((warn_unused_result))
int util_listen_unix(const char *path, int type, mode_t mode, char *err, size_t errlen);

/* The kernel's estimate of available entropy in bits, or -1. */
int util_entropy_bits(void);
/* True when the kernel CSPRNG is initialised (getrandom does not block). */
bool util_entropy_ready(void);

/* Strict unsigned decimal: digits only (no sign, space or suffix), no overflow. 0/-1. */
__attribute__((warn_unused_result)) int util_parse_u64(const char *s, uint64_t *out);

/* Format a sockaddr as "ip:port" / "[ip6]:port". */
void util_addr_str(const struct sockaddr *sa, char *out, size_t outlen);

/* write(2) all len bytes (retrying short writes and EINTR). 0/-1 (errno set). */
__attribute__((warn_unused_result))
int util_write_all(int fd, const void *data, size_t len);

/* Read a whole small file (at most max bytes) into a malloc'd NUL-terminated buffer. */
__attribute__((warn_unused_result))
int util_read_file(const char *path, size_t max, char **out, size_t *outlen);

#endif
