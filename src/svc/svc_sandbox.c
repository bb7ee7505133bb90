/*
 * svc_sandbox.c — the profile of each role and the test probe (see
 * svc_sandbox.h). The lists were taken from strace of the integration suite
 * (every call a service makes after it reported ready, and on its commit
 * threads); a call missing here shows up as a SIGSYS exit counted in
 * sandbox_violations_total.
 */
#include "svc/svc_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/metrics/metrics.h"
#include "lib/log.h"
#include "svc/svc.h"

#define SVC_PROBE_ENV      "MN_TEST_SANDBOX_PROBE"
#define SVC_PROBE_MAX      16      /* bytes of a probe file worth reading */

/* Every service: its event loop (epoll, eventfd, timers), sockets it was
 * given or accepted, fd passing, memory, time, randomness, signals, exit. */
static const char *const svc_sandbox_common[] = {
	"read", "readv", "pread64", "write", "writev", "pwrite64", "close", "lseek",
	"fstat", "newfstatat", "statx", "fcntl", "ioctl", "dup", "dup2", "dup3",
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
	"poll", "ppoll", "eventfd2", "pipe2",
	"socket", "connect", "accept", "accept4", "recvmsg", "sendmsg", "recvfrom",
	"sendto", "shutdown", "getsockopt", "setsockopt", "getsockname", "getpeername",
	"mmap", "munmap", "mprotect", "madvise", "mremap", "brk", "mlock", "munlock",
	"futex", "sched_yield", "set_robust_list", "rseq",
	"clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep",
	"clock_nanosleep", "getrandom",
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
	"getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid",
	"tgkill", "restart_syscall", "exit", "exit_group",
	NULL,
};

/* Reload reads capability keys (a directory), certificates (OpenSSL checks
 * the CA file with access()), the mTLS map. A mailbox send's body goes to
 * the mailbox service in a sealed memfd (RAM; no file system). */
static const char *const svc_sandbox_front_calls[] = {
	"getdents64", "sendfile", "access", "faccessat", "faccessat2",
	"memfd_create",
	NULL,
};

/* The store: temp files, fsync, links and renames into objects/, LMDB
 * (msync, pread/pwrite), sealed memfds in amnesia mode, flock. */
static const char *const svc_sandbox_store_calls[] = {
	"getdents64", "fsync", "fdatasync", "msync", "ftruncate", "fallocate",
	"linkat", "renameat", "renameat2", "unlinkat", "mkdirat", "flock",
	"memfd_create", "fchmod", "umask",
	NULL,
};

/* OpenDHT (svc/dht): its UDP socket is bound after the sandbox is entered
 * (Landlock binds only threads made after it, and OpenDHT's start with the
 * socket); its receive thread waits in pselect6 on the socket and a pipe
 * (pipe2, common). Taken from strace of tests/integration/test_dht.py. */
static const char *const svc_sandbox_dht_calls[] = {
	"bind", "pselect6",
	NULL,
};

/* The index: LMDB (opened before the sandbox) writes with pwrite and
 * commits with fdatasync on the writer thread, which names itself with
 * prctl(PR_SET_NAME) (allowed with threads). Open for writing is not
 * fatal: Landlock keeps it to the index's directory. */
static const char *const svc_sandbox_index_calls[] = {
	"fsync", "fdatasync", "msync",
	NULL,
};

/* The mailbox: LMDB (opened before the sandbox) commits with fdatasync on
 * the writer thread; a receive's bodies go out in a sealed memfd. */
static const char *const svc_sandbox_mailbox_calls[] = {
	"fsync", "fdatasync", "msync", "memfd_create",
	NULL,
};

/* The audit log: appends with fdatasync, new segments (fsync of the file
 * and the directory), retention (unlink, the checkpoint file rewritten and
 * renamed), a reopen after a failed write (access, ftruncate of a torn
 * tail, mkdir of a directory that exists). */
static const char *const svc_sandbox_audit_calls[] = {
	"getdents64", "fsync", "fdatasync", "ftruncate", "renameat", "renameat2", "unlinkat",
	"mkdirat", "access", "faccessat", "faccessat2", "fchmod",
	NULL,
};

/* Fatal even in log mode: running another program is the escape the
 * sandbox exists to stop. (Not ptrace: LeakSanitizer's exit check needs it.) */
static const char *const svc_sandbox_never[] = {
	"execve", "execveat", "fork", "vfork",
	NULL,
};

static void paths_add(svc_sandbox_paths *out, const char *dir, unsigned access)
{
	if (!dir[0] || out->n >= SANDBOX_MAX_PATHS)
		return;
	snprintf(out->buf[out->n], sizeof out->buf[out->n], "%s", dir);
	out->rule[out->n].dir = out->buf[out->n];
	out->rule[out->n].access = access;
	out->n++;
}

/* The directory of file, and of where it really lives (a symlinked
 * certificate is read from its target: certbot's live/ → archive/). A file
 * replaced in either directory is still readable after a reload. */
static void paths_add_file_dirs(svc_sandbox_paths *out, const char *file)
{
	char copy[CONFIG_PATH_MAX], real[PATH_MAX];

	if (!file[0])
		return;
	snprintf(copy, sizeof copy, "%s", file);
	paths_add(out, dirname(copy), SANDBOX_FS_READ_FILES);
	if (realpath(file, real) && strcmp(real, file) != 0)
		paths_add(out, dirname(real), SANDBOX_FS_READ_FILES);
}

static void front_paths(const mn_config *cfg, svc_sandbox_paths *out)
{
	char keys[CONFIG_PATH_MAX];

	if (config_keys_dir(cfg, keys, sizeof keys) == 0)
		paths_add(out, keys, SANDBOX_FS_READ_FILES | SANDBOX_FS_LIST_DIRS);
	paths_add_file_dirs(out, cfg->tls_cert_file);
	paths_add_file_dirs(out, cfg->tls_key_file);
	paths_add_file_dirs(out, cfg->tls_client_ca_file);
	paths_add_file_dirs(out, cfg->auth_mtls_tenants_file);
}

static void store_paths(const mn_config *cfg, svc_sandbox_paths *out)
{
	static const char *const subs[] = { "objects", "tmp", "meta" };
	char dir[CONFIG_PATH_MAX];

	if (cfg->amnesia)
		return;
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
		if ((size_t)snprintf(dir, sizeof dir, "%s/%s", cfg->data_dir, subs[i]) < sizeof dir)
			paths_add(out, dir, SANDBOX_FS_READ_FILES | SANDBOX_FS_LIST_DIRS | SANDBOX_FS_WRITE);
}

const svc_sandbox_profile svc_sandbox_mailbox = {
	.name = "mailbox", .syscalls = svc_sandbox_mailbox_calls,
	.open_write = true, .threads = true, .data_subdir = "mailbox",
};

const svc_sandbox_profile svc_sandbox_audit = {
	.name = "audit", .syscalls = svc_sandbox_audit_calls,
	.open_write = true, .threads = true, .data_subdir = "audit",
};

const svc_sandbox_profile svc_sandbox_front = {
	.name = "front", .syscalls = svc_sandbox_front_calls,
	.open_write = false, .threads = false, .paths = front_paths,
};

/* The gateway: the front's calls and paths, and threads of its own (the
 * libmagic sniff thread, svc/gateway/sniff.h, made after entering). */
const svc_sandbox_profile svc_sandbox_gateway = {
	.name = "gateway", .syscalls = svc_sandbox_front_calls,
	.open_write = false, .threads = true, .paths = front_paths,
};

const svc_sandbox_profile svc_sandbox_dht = {
	.name = "dht", .syscalls = svc_sandbox_dht_calls,
	.open_write = false, .threads = true, .paths = NULL,   /* it opens no file */
};

/* The overlay: a range fetch's result is two memfds, sized and sealed. */
static const char *const svc_sandbox_overlay_calls[] = {
	"memfd_create", "ftruncate",
	NULL,
};

const svc_sandbox_profile svc_sandbox_overlay = {
	.name = "overlay", .syscalls = svc_sandbox_overlay_calls,
	.open_write = false, .threads = false, .tcp_connect = true, .paths = NULL,   /* it opens no file */
};

const svc_sandbox_profile svc_sandbox_store = {
	.name = "store", .syscalls = svc_sandbox_store_calls,
	.open_write = true, .threads = true, .paths = store_paths,
};

const svc_sandbox_profile svc_sandbox_index = {
	.name = "index", .syscalls = svc_sandbox_index_calls,
	.open_write = true, .threads = true, .data_subdir = "index",
};

/* The social tables: LMDB like the index (pwrite, fdatasync on the writer
 * thread); in amnesia the map is a memfd made before the sandbox, grown
 * with ftruncate/pwrite. */
static const char *const svc_sandbox_social_calls[] = {
	"fsync", "fdatasync", "msync", "ftruncate",
	NULL,
};

const svc_sandbox_profile svc_sandbox_social = {
	.name = "social", .syscalls = svc_sandbox_social_calls,
	.open_write = true, .threads = true, .data_subdir = "social",
};

/* The search index: SQLite in WAL mode (opened before the sandbox) writes
 * with pwrite, syncs, truncates the WAL at checkpoints, maps the -shm file. */
static const char *const svc_sandbox_search_calls[] = {
	"fsync", "fdatasync", "msync", "ftruncate", "fallocate", "unlinkat", "getcwd",
	NULL,
};

const svc_sandbox_profile svc_sandbox_search = {
	.name = "search", .syscalls = svc_sandbox_search_calls,
	.open_write = true, .threads = true, .data_subdir = "search",
};

bool svc_sandbox_is_sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
	return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
	return true;
#else
	return false;
#endif
#else
	return false;
#endif
}

void svc_sandbox_paths_of(const svc_sandbox_profile *p, const mn_config *cfg,
                          svc_sandbox_paths *out)
{
	char dir[CONFIG_PATH_MAX];

	memset(out, 0, sizeof *out);
	if (p->data_subdir && !cfg->amnesia &&
	    (size_t)snprintf(dir, sizeof dir, "%s/%s", cfg->data_dir, p->data_subdir) < sizeof dir)
		paths_add(out, dir, SANDBOX_FS_READ_FILES | SANDBOX_FS_LIST_DIRS | SANDBOX_FS_WRITE);
	if (p->paths)
		p->paths(cfg, out);
	/* The sanitizer runtime reads /proc/self/maps and, at exit, /proc/self/task. */
	if (svc_sandbox_is_sanitized())
		paths_add(out, "/proc", SANDBOX_FS_READ_FILES | SANDBOX_FS_LIST_DIRS);
}

sandbox_filter *svc_sandbox_filter(const svc_sandbox_profile *p, bool enforce)
{
	sandbox_filter *f = sandbox_filter_new(enforce);

	if (!f)
		return NULL;
	if (sandbox_filter_allow(f, svc_sandbox_common) != 0 ||
	    sandbox_filter_allow(f, p->syscalls) != 0 ||
	    sandbox_filter_deny(f, svc_sandbox_never) != 0 ||
	    sandbox_filter_allow_open(f, p->open_write) != 0 ||
	    (p->threads && sandbox_filter_allow_threads(f) != 0)) {
		sandbox_filter_free(f);
		return NULL;
	}
	return f;
}

/* ---- the test probe --------------------------------------------------------- */

svc_sandbox_probe svc_sandbox_probe_arm(const char *role)
{
	static const char *const names[] = { [SVC_PROBE_OPEN] = "open",
	                                     [SVC_PROBE_WRITE] = "write", [SVC_PROBE_EXEC] = "exec" };
	const char *dir = getenv(SVC_PROBE_ENV);
	char path[CONFIG_PATH_MAX], what[SVC_PROBE_MAX] = "";

	if (!dir || !dir[0] || (size_t)snprintf(path, sizeof path, "%s/%s", dir, role) >= sizeof path)
		return SVC_PROBE_NONE;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return SVC_PROBE_NONE;
	ssize_t n = read(fd, what, sizeof what - 1);
	close(fd);
	/* Of several workers of a role, the one that removes the file probes. */
	if (n <= 0 || unlink(path) != 0)
		return SVC_PROBE_NONE;
	what[strcspn(what, "\n")] = '\0';
	for (int i = SVC_PROBE_OPEN; i <= SVC_PROBE_EXEC; i++)
		if (strcmp(what, names[i]) == 0)
			return (svc_sandbox_probe)i;
	return SVC_PROBE_NONE;
}

void svc_sandbox_probe_run(svc_sandbox_probe probe)
{
	char buf[64];
	int fd = -1;

	if (probe == SVC_PROBE_NONE)
		return;
	log_kv(LOG_LEVEL_WARN, "sandbox probe (test hook) running", LOG_END);
	if (probe == SVC_PROBE_OPEN)
		fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	else if (probe == SVC_PROBE_WRITE)
		fd = open("/tmp/macronode-sandbox-probe", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	else if (probe == SVC_PROBE_EXEC) {
		char *const argv[] = { (char *)"true", NULL };
		execv("/bin/true", argv);
	}
	int saved = errno;
	if (fd >= 0 && read(fd, buf, sizeof buf) > 0) {
		log_kv(LOG_LEVEL_ERROR, "sandbox probe: a forbidden file was read", LOG_END);
		exit(1);
	}
	if (fd >= 0) {
		close(fd);
		log_kv(LOG_LEVEL_ERROR, "sandbox probe: a forbidden file was opened", LOG_END);
		exit(1);
	}
	log_kv(LOG_LEVEL_WARN, "sandbox probe refused", "error", strerror(saved), LOG_END);
}

/* ---- entering ------------------------------------------------------------------ */

static void sandbox_gauge(const svc *s, int64_t on)
{
	char labels[64];

	snprintf(labels, sizeof labels, "role=\"%s\"", s->ops->role);
	metrics_gauge_set(metrics_get("sandbox_landlock_active", labels), on);
}

/* A kernel without Landlock (or with only ABI 1 for a writer) is a warning
 * and a 0 on the gauge: seccomp still applies. Any other failure is fatal. */
static int sandbox_enter_landlock(svc *s)
{
	svc_sandbox_paths sp;
	char err[256];
	int abi = sandbox_landlock_abi();

	if (abi < 1) {
		log_kv(LOG_LEVEL_WARN, "kernel has no Landlock: file system not confined",
		       "role", s->ops->role, LOG_END);
		sandbox_gauge(s, 0);
		return 0;
	}
	svc_sandbox_paths_of(s->sandbox, &s->cfg, &sp);
	if (sandbox_landlock(sp.rule, sp.n, abi, s->sandbox->tcp_connect, err, sizeof err) != 0) {
		if (errno != ENOTSUP) {
			log_kv(LOG_LEVEL_ERROR, "cannot enter the sandbox", "error", err, LOG_END);
			return -1;
		}
		log_kv(LOG_LEVEL_WARN, "Landlock too old: file system not confined", "error", err, LOG_END);
		sandbox_gauge(s, 0);
		return 0;
	}
	sandbox_gauge(s, 1);
	return 0;
}

static int sandbox_enter_seccomp(svc *s)
{
	char err[256] = "out of memory";
	sandbox_filter *f = svc_sandbox_filter(s->sandbox, !svc_sandbox_is_sanitized());
	int rc = f ? sandbox_filter_load(f, err, sizeof err) : -1;

	sandbox_filter_free(f);
	if (rc != 0)
		log_kv(LOG_LEVEL_ERROR, "cannot load the system call filter", "error", err, LOG_END);
	return rc;
}

int svc_sandbox_enter(svc *s)
{
	if (s->sandboxed || !s->sandbox)
		return 0;
	s->sandboxed = true;
	if (!s->cfg.sandbox_enabled) {
		log_kv(LOG_LEVEL_WARN, "sandbox disabled (sandbox.enabled = false)", LOG_END);
		sandbox_gauge(s, 0);
		return 0;
	}
	if (sandbox_enter_landlock(s) != 0 || sandbox_enter_seccomp(s) != 0)
		return -1;
	log_kv(LOG_LEVEL_INFO, "sandbox entered", "profile", s->sandbox->name, LOG_END);
	return 0;
}
