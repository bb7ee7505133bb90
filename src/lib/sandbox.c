/*
 * sandbox.c — Landlock and seccomp, the mechanism only (see sandbox.h).
 */
#include "lib/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/landlock.h>
#include <seccomp.h>
#include <sys/prctl.h>

/* Rights newer than the oldest <linux/landlock.h> we build against (Debian
 * 12 ships the ABI 2 header); the kernel is asked which it knows. */
#define LL_FS_TRUNCATE       (1ULL << 14)   /* ABI 3 */
#define LL_FS_IOCTL_DEV      (1ULL << 15)   /* ABI 5 */
#define LL_NET_BIND_TCP      (1ULL << 0)    /* ABI 4 */
#define LL_NET_CONNECT_TCP   (1ULL << 1)
#define LL_SCOPE_ABSTRACT    (1ULL << 0)    /* ABI 6: abstract UNIX sockets */
#define LL_SCOPE_SIGNAL      (1ULL << 1)
#define LL_FS_ABI1           ((1ULL << 13) - 1)   /* EXECUTE … MAKE_SYM */

/* The ruleset attribute as of ABI 6; older kernels get a prefix of it. */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

#define LL_ATTR_SIZE_FS     sizeof(uint64_t)        /* ABI 1–3 */
#define LL_ATTR_SIZE_NET    (2 * sizeof(uint64_t))  /* ABI 4–5 */
#define LL_ATTR_SIZE_SCOPE  (3 * sizeof(uint64_t))  /* ABI 6– */

struct sandbox_filter {
	scmp_filter_ctx ctx;
	bool            enforce;
};

/* ---- Landlock ------------------------------------------------------------ */

int sandbox_landlock_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

	return v > 0 && v < 1000 ? (int)v : 0;
}

static uint64_t ll_handled_fs(int abi)
{
	uint64_t fs = LL_FS_ABI1;

	if (abi >= 2) fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3) fs |= LL_FS_TRUNCATE;
	if (abi >= 5) fs |= LL_FS_IOCTL_DEV;
	return fs;
}

static uint64_t ll_rule_access(unsigned access, uint64_t handled)
{
	uint64_t a = 0;

	if (access & SANDBOX_FS_READ_FILES)
		a |= LANDLOCK_ACCESS_FS_READ_FILE;
	if (access & SANDBOX_FS_LIST_DIRS)
		a |= LANDLOCK_ACCESS_FS_READ_DIR;
	if (access & SANDBOX_FS_WRITE)
		a |= LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |
		     LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_DIR |
		     LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_REFER | LL_FS_TRUNCATE;
	return a & handled;
}

static int ll_ruleset_new(int abi, bool tcp_connect)
{
	struct ll_ruleset_attr attr = { .handled_access_fs = ll_handled_fs(abi) };
	size_t size = LL_ATTR_SIZE_FS;

	if (abi >= 4) {
		/* No service binds TCP itself: its listener is inherited. Only a
		 * service that dials peers (overlay) may connect, to any port. */
		attr.handled_access_net = LL_NET_BIND_TCP | (tcp_connect ? 0 : LL_NET_CONNECT_TCP);
		size = LL_ATTR_SIZE_NET;
	}
	if (abi >= 6) {
		attr.scoped = LL_SCOPE_ABSTRACT | LL_SCOPE_SIGNAL;
		size = LL_ATTR_SIZE_SCOPE;
	}
	return (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
}

/* 0, 1 when the directory does not exist (nothing to allow), or -1. */
static int ll_add_path(int ruleset, const sandbox_path *p, uint64_t handled)
{
	struct landlock_path_beneath_attr pb = { .allowed_access = ll_rule_access(p->access, handled) };

	pb.parent_fd = open(p->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pb.parent_fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? 1 : -1;
	long r = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
	int saved = errno;
	close(pb.parent_fd);
	errno = saved;
	return r == 0 ? 0 : -1;
}

static bool ll_wants_write(const sandbox_path *paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (paths[i].access & SANDBOX_FS_WRITE)
			return true;
	return false;
}

int sandbox_landlock(const sandbox_path *paths, size_t n, int abi, bool tcp_connect,
                     char *err, size_t errlen)
{
	uint64_t handled = ll_handled_fs(abi);
	int rs, saved;

	if (abi < 1 || n > SANDBOX_MAX_PATHS) {
		snprintf(err, errlen, "landlock: bad arguments");
		return -1;
	}
	/* ABI 1 refuses every link or rename across directories (commits do that). */
	if (abi < 2 && ll_wants_write(paths, n)) {
		snprintf(err, errlen, "landlock ABI 1 cannot allow renames across directories");
		errno = ENOTSUP;
		return -1;
	}
	if ((rs = ll_ruleset_new(abi, tcp_connect)) < 0) {
		snprintf(err, errlen, "landlock_create_ruleset: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (ll_add_path(rs, &paths[i], handled) < 0) {
			saved = errno;
			snprintf(err, errlen, "landlock rule for %s: %s", paths[i].dir, strerror(saved));
			close(rs);
			errno = saved;
			return -1;
		}
	long r = syscall(SYS_landlock_restrict_self, rs, 0);
	saved = errno;
	close(rs);
	if (r != 0) {
		snprintf(err, errlen, "landlock_restrict_self: %s", strerror(saved));
		errno = saved;
		return -1;
	}
	return 0;
}

/* ---- seccomp --------------------------------------------------------------- */

/* openat flags that make an open a write (O_TMPFILE without O_DIRECTORY). */
#define SANDBOX_OPEN_WRITE_BITS \
	((uint64_t)(O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND | (O_TMPFILE & ~O_DIRECTORY)))

sandbox_filter *sandbox_filter_new(bool enforce)
{
	sandbox_filter *f = calloc(1, sizeof *f);

	if (!f)
		return NULL;
	f->enforce = enforce;
	f->ctx = seccomp_init(enforce ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_LOG);
	if (!f->ctx || seccomp_attr_set(f->ctx, SCMP_FLTATR_CTL_TSYNC, 1) != 0) {
		sandbox_filter_free(f);
		return NULL;
	}
	return f;
}

void sandbox_filter_free(sandbox_filter *f)
{
	if (!f)
		return;
	if (f->ctx)
		seccomp_release(f->ctx);
	free(f);
}

static int sf_add(sandbox_filter *f, uint32_t action, const char *const *names)
{
	for (; *names; names++) {
		int nr = seccomp_syscall_resolve_name(*names);
		if (nr == __NR_SCMP_ERROR)
			continue;
		if (seccomp_rule_add(f->ctx, action, nr, 0) != 0)
			return -1;
	}
	return 0;
}

int sandbox_filter_allow(sandbox_filter *f, const char *const *names)
{
	return sf_add(f, SCMP_ACT_ALLOW, names);
}

int sandbox_filter_deny(sandbox_filter *f, const char *const *names)
{
	/* libseccomp refuses a rule whose action is the default one. */
	return f->enforce ? 0 : sf_add(f, SCMP_ACT_KILL_PROCESS, names);
}

int sandbox_filter_allow_open(sandbox_filter *f, bool writable)
{
	int nr = SCMP_SYS(openat);

	if (writable)
		return seccomp_rule_add(f->ctx, SCMP_ACT_ALLOW, nr, 0) == 0 ? 0 : -1;
	if (seccomp_rule_add(f->ctx, SCMP_ACT_ALLOW, nr, 1,
	                     SCMP_A2(SCMP_CMP_MASKED_EQ, SANDBOX_OPEN_WRITE_BITS, 0)) != 0)
		return -1;
	if (f->enforce)
		return 0;
	/* Log mode: the default lets a write through, so each write bit kills. */
	for (uint64_t bit = 1; bit <= SANDBOX_OPEN_WRITE_BITS; bit <<= 1)
		if ((bit & SANDBOX_OPEN_WRITE_BITS) &&
		    seccomp_rule_add(f->ctx, SCMP_ACT_KILL_PROCESS, nr, 1,
		                     SCMP_A2(SCMP_CMP_MASKED_EQ, bit, bit)) != 0)
			return -1;
	return 0;
}

int sandbox_filter_allow_threads(sandbox_filter *f)
{
	if (seccomp_rule_add(f->ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
	                     SCMP_A0(SCMP_CMP_MASKED_EQ, (uint64_t)CLONE_THREAD,
	                             (uint64_t)CLONE_THREAD)) != 0)
		return -1;
	/* A new thread names itself (lib/workq.c); no other prctl. */
	if (seccomp_rule_add(f->ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
	                     SCMP_A0(SCMP_CMP_EQ, (uint64_t)PR_SET_NAME, 0)) != 0)
		return -1;
	int nr = seccomp_syscall_resolve_name("clone3");
	if (nr == __NR_SCMP_ERROR)
		return 0;
	return seccomp_rule_add(f->ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0) == 0 ? 0 : -1;
}

int sandbox_filter_load(sandbox_filter *f, char *err, size_t errlen)
{
	int rc = seccomp_load(f->ctx);

	if (rc != 0) {
		snprintf(err, errlen, "seccomp_load: %s", strerror(-rc));
		return -1;
	}
	return 0;
}
