/*
 * sandbox.h — the kernel's confinement calls, with no policy of their own
 * (the profile each service gets is in svc/svc_sandbox.c):
 *
 *   Landlock (raw syscalls, <linux/landlock.h>): the file hierarchies a
 *   process may still reach and what it may do beneath each, plus — where the
 *   kernel's ABI has them — no TCP bind/connect and no abstract UNIX socket
 *   or signal outside its domain. Only the access rights the running kernel
 *   knows are handled; a kernel without Landlock is reported, not an error.
 *
 *   seccomp (libseccomp): an allow list of system calls; anything else kills
 *   the whole process (SIGSYS), or, in log mode, is allowed and logged by the
 *   kernel while an explicit deny list still kills.
 *
 * Both bind the calling thread and the threads and processes it creates
 * afterwards; threads that already exist keep their freedom for Landlock
 * (seccomp is synchronised to them). Neither can be undone. The caller must
 * have set PR_SET_NO_NEW_PRIVS (or hold CAP_SYS_ADMIN).
 */
#ifndef MN_LIB_SANDBOX_H
#define MN_LIB_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

/* What may be done beneath a directory (sandbox_path.access). */
#define SANDBOX_FS_READ_FILES  0x1u   /* open files for reading */
#define SANDBOX_FS_LIST_DIRS   0x2u   /* open and list directories */
#define SANDBOX_FS_WRITE       0x4u   /* write, truncate, create, link, rename and
                                       * remove files and directories (no devices,
                                       * FIFOs, sockets or symlinks, never execute) */

#define SANDBOX_MAX_PATHS 16          /* rules one process gets */

typedef struct sandbox_path {
	const char *dir;       /* a directory (borrowed); one that does not exist is skipped */
	unsigned    access;    /* SANDBOX_FS_* */
} sandbox_path;

/* The Landlock ABI version the kernel offers, or 0 when it has none (not
 * built in, or disabled at boot). */
int sandbox_landlock_abi(void);

/* Confine the calling thread to paths (n ≤ SANDBOX_MAX_PATHS; n = 0: no file
 * system at all beyond the fds it holds) under ABI abi (≥ 1, from
 * sandbox_landlock_abi). TCP bind is refused from ABI 4 on, and TCP
 * connect too unless tcp_connect. 0, or -1 with err set. */
__attribute__((warn_unused_result))
int sandbox_landlock(const sandbox_path *paths, size_t n, int abi, bool tcp_connect,
                     char *err, size_t errlen);

typedef struct sandbox_filter sandbox_filter;

/* A filter that kills the process on any call not allowed (enforce) or lets
 * it through with a kernel log record (!enforce: for sanitizer builds, whose
 * runtime makes calls the services never do). Caller frees. NULL: no memory. */
sandbox_filter *sandbox_filter_new(bool enforce);
void sandbox_filter_free(sandbox_filter *f);
/* Allow the calls named in the NULL-terminated list. A name this architecture
 * does not have is skipped. 0 or -1. */
__attribute__((warn_unused_result))
int sandbox_filter_allow(sandbox_filter *f, const char *const *names);
/* Kill the process on these calls even in log mode. 0 or -1. */
__attribute__((warn_unused_result))
int sandbox_filter_deny(sandbox_filter *f, const char *const *names);
/* openat: for reading only (any write, create or truncate flag kills), or
 * also for writing. 0 or -1. */
__attribute__((warn_unused_result))
int sandbox_filter_allow_open(sandbox_filter *f, bool writable);
/* clone for new threads of this process only (CLONE_THREAD set; a new
 * process kills); clone3, whose flags a filter cannot read, fails with
 * ENOSYS so the C library falls back to clone; prctl(PR_SET_NAME) alone,
 * for a thread naming itself. 0 or -1. */
__attribute__((warn_unused_result))
int sandbox_filter_allow_threads(sandbox_filter *f);
/* Install the filter on every thread of the process. 0, or -1 with err set. */
__attribute__((warn_unused_result))
int sandbox_filter_load(sandbox_filter *f, char *err, size_t errlen);

#endif
