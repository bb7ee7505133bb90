/*
 * util.h — small OS helpers with no daemon knowledge.
 */
#ifndef MN_LIB_UTIL_H
#define MN_LIB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

/*
 * A fact the code guarantees that the clang static analyzer (make lint)
 * cannot see, e.g. that TAILQ_REMOVE unlinked a queue's head (it writes
 * through the element's back pointer, which the analyzer does not follow).
 * The analyzer drops the paths where cond is false; a build has no code.
 */
#ifdef __clang_analyzer__
#define UTIL_ANALYZER_ASSUME(cond) do { if (!(cond)) __builtin_unreachable(); } while (0)
#else
#define UTIL_ANALYZER_ASSUME(cond) do { } while (0)
#endif

/* Write the message into err (errlen bytes, truncated; err may be NULL)
 * and return -1: the one "fail with a message" helper (`return
 * util_fail(err, errlen, "%s: ...", path)`). */
__attribute__((format(printf, 3, 4)))
int util_fail(char *err, size_t errlen, const char *fmt, ...);

/* Monotonic milliseconds. */
uint64_t util_now_ms(void);
/* The monotonic clock in nanoseconds (latencies). */
uint64_t util_now_ns(void);
/* Wall clock milliseconds since the epoch. */
uint64_t util_wall_ms(void);
/* Uniform random 32-bit value from the kernel CSPRNG. */
uint32_t util_random_u32(void);

__attribute__((warn_unused_result)) int util_set_nonblock(int fd);

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
/* n listening sockets on addr in one SO_REUSEPORT group, one per worker
 * process: the kernel spreads new connections across them. Refused, like
 * util_listen, when anyone holds the address already. 0 with fds[0..n)
 * set, or -1 with err (nothing left open). */
__attribute__((warn_unused_result))
int util_listen_group(const struct sockaddr *addr, socklen_t len, int backlog, int *fds, size_t n,
                      char *err, size_t errlen);

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

/* Can the kernel CSPRNG serve secrets of min_bits now, and how was that
 * decided. *bits is entropy_avail and *source "entropy_avail" where
 * /proc/sys can be read; where it is hidden (systemd's ProcSubset=pid) *bits
 * is -1 and *source "getrandom": the answer is whether getrandom(2) with
 * GRND_NONBLOCK succeeds, i.e. the CRNG is initialised (since Linux 5.6
 * entropy_avail then reads 256 anyway). Not initialised: false, bits -1. */
bool util_entropy_sufficient(int min_bits, int *bits, const char **source);

/* Strict unsigned decimal: digits only (no sign, space or suffix), no overflow. 0/-1. */
__attribute__((warn_unused_result)) int util_parse_u64(const char *s, uint64_t *out);

/* The key a client address counts under for per-peer limits (the wall's
 * quota of anonymous requests, storage's upload share): "ip:<addr>", an IPv6
 * address cut to its /64 (one host hands out a whole /64, so its addresses
 * are one peer; v4-mapped addresses are kept whole), "ip:unknown" without
 * one. */
void util_peer_key(const struct sockaddr *sa, char *out, size_t len);

/* Format a sockaddr as "ip:port" / "[ip6]:port". */
void util_addr_str(const struct sockaddr *sa, char *out, size_t outlen);

/* write(2) all len bytes (retrying short writes and EINTR). 0/-1 (errno set). */
__attribute__((warn_unused_result))
int util_write_all(int fd, const void *data, size_t len);

/*
 * Files. util_file_open opens path read-only (cloexec, noctty, O_NONBLOCK so a
 * FIFO cannot stall a start-up) and checks the open descriptor, so a rename
 * between check and read cannot swap the file: a regular file of at most max
 * bytes and, with UTIL_FILE_SECRET, no group or other permission bits. It
 * says why it refused and the caller words the message (the callers' messages
 * differ and tests hold them).
 */
typedef enum {
	UTIL_FILE_OK = 0,
	UTIL_FILE_ERRNO,        /* open or fstat failed: errno says why */
	UTIL_FILE_NOT_REGULAR,
	UTIL_FILE_TOO_OPEN,     /* UTIL_FILE_SECRET and group/other bits set */
	UTIL_FILE_TOO_BIG,      /* st_size > max */
} util_file_status;

#define UTIL_FILE_SECRET   0x1u  /* refuse a file group or others may access */
#define UTIL_FILE_NOFOLLOW 0x2u  /* refuse a symbolic link as the last component */
/* With UTIL_FILE_SECRET: allow the group read bit (0440), nothing else. */
#define UTIL_FILE_GROUP_READ 0x4u

/* On UTIL_FILE_OK *fd is open (caller closes); otherwise *fd is -1. *st is
 * filled whenever fstat ran (so the caller can name a mode or a size). */
__attribute__((warn_unused_result))
util_file_status util_file_open(const char *path, size_t max, unsigned flags, int *fd,
                                struct stat *st);

/* read(2) exactly len bytes (EINTR retried). 0, or -1 with errno (EIO when
 * the file ends early). */
__attribute__((warn_unused_result))
int util_read_full(int fd, void *buf, size_t len);
/* The same with pread(2) from off (the fd's offset untouched: a dup'd or
 * shared fd stays as it was). */
__attribute__((warn_unused_result))
int util_pread_full(int fd, void *buf, size_t len, uint64_t off);

/* A whole regular file of at most max bytes into *out (malloc'd, caller
 * frees, NUL-terminated; *outlen excludes the NUL). 0, or -1 with errno:
 * EFBIG when larger than max, EINVAL when not a regular file. */
__attribute__((warn_unused_result))
int util_read_file(const char *path, size_t max, char **out, size_t *outlen);

/* "<dir>/.<base>.tmp": the temp name util_write_atomic uses for path (a
 * dot-name, so no loader picks it up). 0, or -1 when it does not fit. */
__attribute__((warn_unused_result))
int util_tmp_name(const char *path, char *out, size_t outlen);

#define UTIL_WRITE_NOREPLACE 0x1u  /* publish with link(2): EEXIST if path exists */

typedef enum {
	UTIL_WRITE_OK = 0,
	UTIL_WRITE_ETMP,       /* the temp file could not be written; path untouched */
	UTIL_WRITE_EPUBLISH,   /* rename/link failed (EEXIST with NOREPLACE); path untouched */
	UTIL_WRITE_ESYNC,      /* path is published but its directory fsync failed */
} util_write_status;

/*
 * Publish len bytes at path so a reader (or a crash) sees the old file or the
 * whole new one: written to util_tmp_name(path) with exactly mode (a leftover
 * temp file of a crashed run is replaced), fsync'd, renamed over path (or
 * linked, never replacing, with UTIL_WRITE_NOREPLACE), the directory fsync'd.
 * errno says why on failure; the temp file never survives.
 */
__attribute__((warn_unused_result))
util_write_status util_write_atomic(const char *path, const void *data, size_t len,
                                    mode_t mode, unsigned flags);

/* n bytes as 2n lowercase hex digits plus a NUL (out holds 2n + 1). The
 * time taken does not depend on the bytes, so it may encode keys. */
void util_hex_encode(const void *in, size_t n, char *out);
/* Exactly 2n lowercase hex digits (no uppercase: one spelling per value)
 * into n bytes. 0/-1; out may be partly written on failure. */
__attribute__((warn_unused_result))
int util_hex_decode(const char *s, size_t n, uint8_t *out);

#endif
