/*
 * svc.c — shared service process boilerplate (see svc.h).
 */
#include "svc/svc.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/keys/kek.h"
#include "core/proto/ctl.h"
#include "core/metrics/metrics.h"
#include "core/metrics/reject.h"
#include "core/net/conn.h"
#include "core/net/rpc_server.h"
#include "core/auth/policy.h"
#include "svc/svc_sandbox.h"
#include "lib/log.h"

#define SVC_EXIT_OK      0
#define SVC_EXIT_FAIL    1
#define SVC_EXIT_USAGE   2   /* SVC_EXIT_PROTOCOL (3) is in svc.h */

/* Process-wide state of this service process: one per process, owned here. */
struct svc_proc {
	svc           s;
	struct event *ctl_ev;
	struct event *sigterm_ev;
	struct event *sigint_ev;
	struct event *deadline_ev;
	struct event *trim_ev;
	uint64_t      trim_cpu_us;  /* the process's CPU time at the last look */
	bool          trimmed;      /* this quiet spell's trim is done */
	bool          started;
	bool          draining;
	svc_sandbox_probe probe;   /* test hook (svc_sandbox.h); NONE in production */
	int           exit_code;
	ctl_msg       msg;
};

void svc_drained(svc *s)
{
	event_base_loopexit(s->base, NULL);
}

/*
 * A process at rest gives back the heap it freed. Every SVC_TRIM_MS, when the
 * process used less than SVC_TRIM_IDLE_US of CPU since the last look
 * (nothing is being served) and more than SVC_TRIM_MIN_FREE bytes sit free
 * in the heap, malloc_trim(0) returns those pages to the kernel, once per
 * quiet spell. (It once judged rest by the heap bytes in use being
 * unchanged; under a steady load of pooled buffers they often are, and a
 * trim in the middle of serving cost hundreds of madvise calls, 0.1 ms each
 * under a hypervisor: a fifth of an HTTP/2 worker's time at 1 MiB GETs.)
 * Without it a worker's RSS stays where the last burst left it (64 KiB body
 * chunks scattered through the heap), so memory reads as the load's history
 * rather than what the process holds; bench/soak.py's 5 % rule saw exactly that.
 */
enum { SVC_TRIM_MS = 100, SVC_TRIM_MIN_FREE = 64 * 1024, SVC_TRIM_IDLE_US = 2000 };

/*
 * Blocks of SVC_MMAP_MIN or more (OAP frame buffers up to 1 MiB, large
 * outboards) always get their own mapping and go back to the kernel when
 * freed. glibc's default threshold is dynamic: it rises to the size of the
 * largest mapped block ever freed, after which such blocks come from the heap
 * and leave it fragmented for good. Fixing it keeps the heap to small blocks.
 */
#define SVC_MMAP_MIN (256 * 1024)

/*
 * Setting the mmap threshold also fixes glibc's trim threshold at its
 * default, 128 KiB: every time more than that lay free at the top of the
 * heap, free() gave it back with brk, and the next burst of output took
 * the same pages again — a page fault (and a cleared page) per 4 KiB of
 * every response that passed through a fresh buffer: a quarter of an
 * HTTP/2 worker's time at 1 MiB GETs. Trimming is the idle timer's job
 * (on_trim_tick): while serving, freed heap stays for the next request.
 */
#define SVC_TRIM_THRESHOLD (64 * 1024 * 1024)

static void on_trim_tick(evutil_socket_t fd, short what, void *arg)
{
	struct svc_proc *p = arg;
	struct timespec ts;
	uint64_t cpu;

	(void)fd; (void)what;
	/* clock_gettime: in every sandbox profile (getrusage is not). */
	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
		return;
	cpu = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	if (cpu - p->trim_cpu_us > SVC_TRIM_IDLE_US) {   /* busy: not now */
		p->trim_cpu_us = cpu;
		p->trimmed = false;
		return;
	}
	p->trim_cpu_us = cpu;
	/* mallinfo2 walks the arenas: only once the process rests. */
	if (!p->trimmed && mallinfo2().fordblks > SVC_TRIM_MIN_FREE)
		(void)malloc_trim(0);
	p->trimmed = true;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct svc_proc *p = arg;

	(void)fd; (void)what;
	log_kv(LOG_LEVEL_WARN, "drain deadline reached; exiting with work in flight", LOG_END);
	event_base_loopexit(p->s.base, NULL);
}

static void svc_begin_drain(struct svc_proc *p, const char *why)
{
	if (p->draining)
		return;
	p->draining = true;
	log_kv(LOG_LEVEL_INFO, "draining", "reason", why, LOG_END);
	uint64_t ms = p->s.cfg.drain_deadline_ms;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
	p->deadline_ev = evtimer_new(p->s.base, on_deadline, p);
	if (p->deadline_ev)
		evtimer_add(p->deadline_ev, &tv);
	if (p->started && p->s.ops->drain)
		p->s.ops->drain(&p->s);
	else
		event_base_loopexit(p->s.base, NULL);
}

static int svc_apply_config(struct svc_proc *p, const char *json)
{
	char err[CONFIG_ERR_MAX];
	mn_config nc;

	config_defaults(&nc);
	if (config_load_string(&nc, json, "supervisor", err, sizeof err) != 0) {
		log_kv(LOG_LEVEL_ERROR, "bad config from supervisor", "error", err, LOG_END);
		config_free(&nc);
		return -1;
	}
	config_free(&p->s.cfg);
	p->s.cfg = nc;
	log_set_level(nc.log_level);
	log_set_format(nc.log_format);
	return 0;
}

/*
 * The supervisor sent something this binary cannot have sent: a bug, not
 * input (both ends are the same build). Exit at once, naming the type; the
 * supervisor restarts the service.
 */
__attribute__((noreturn))
static void svc_fatal_msg(const char *why, uint32_t type)
{
	log_kv(LOG_LEVEL_ERROR, why, "type", ctl_type_name(type), LOG_END);
	exit(SVC_EXIT_PROTOCOL);
}

static void svc_on_config(struct svc_proc *p)
{
	ctl_config m;

	if (ctl_read_config(&p->msg, &m) != 0)
		svc_fatal_msg("malformed control message", p->msg.type);
	if (svc_apply_config(p, m.json) != 0) {
		if (!p->started) {
			p->exit_code = SVC_EXIT_FAIL;
			event_base_loopexit(p->s.base, NULL);
		}
		return;
	}
	if (p->started) {
		if (p->s.ops->reload)
			p->s.ops->reload(&p->s);
		return;
	}
	if (p->s.ops->start(&p->s) != 0) {
		p->exit_code = SVC_EXIT_FAIL;
		event_base_loopexit(p->s.base, NULL);
		return;
	}
	p->started = true;
	if (svc_sandbox_enter(&p->s) != 0) {
		p->exit_code = SVC_EXIT_FAIL;
		event_base_loopexit(p->s.base, NULL);
		return;
	}
	svc_sandbox_probe_run(p->probe);
	if (ctl_compose_ready(CTL_CHILD_FD) != 0)
		log_kv(LOG_LEVEL_WARN, "cannot report ready", "error", strerror(errno), LOG_END);
}

/* Read the sealed memfd of a CTL_POLICY message. The supervisor verified the
 * signature and the version; the memfd is sealed, so these are its bytes. */
static policy *svc_read_policy(int fd, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	policy *pol = NULL;

	if (fstat(fd, &st) != 0 || st.st_size <= 0 || (uint64_t)st.st_size > POLICY_MAX_BYTES) {
		snprintf(err, errlen, "policy memfd has a bad size");
		return NULL;
	}
	if (!(buf = malloc((size_t)st.st_size))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (pread(fd, buf, (size_t)st.st_size, 0) == st.st_size)
		pol = policy_parse(buf, (size_t)st.st_size, err, errlen);
	else
		snprintf(err, errlen, "cannot read the policy memfd");
	free(buf);
	return pol;
}

static void svc_on_policy(struct svc_proc *p)
{
	char err[256];
	policy *nw = NULL, *old = p->s.policy;
	ctl_policy m;

	if (ctl_read_policy(&p->msg, &m) != 0)
		svc_fatal_msg("malformed control message", p->msg.type);
	/* Fail secure: a bundle we cannot read denies everything. */
	if (m.present && !(nw = svc_read_policy(m.fd, err, sizeof err)))
		log_kv(LOG_LEVEL_ERROR, "policy from supervisor unusable; denying all",
		       "error", err, LOG_END);
	p->s.policy = nw;
	snprintf(p->s.policy_digest, sizeof p->s.policy_digest, "%s", nw ? m.digest : "");
	if (p->started && p->s.ops->policy)
		p->s.ops->policy(&p->s);
	policy_free(old);
	log_kv(LOG_LEVEL_INFO, nw ? "policy in force" : "no policy: denying every public request",
	       "digest", nw ? p->s.policy_digest : "-", LOG_END);
}

static void svc_dispatch(struct svc_proc *p);

/* The node identity from the supervisor: the seed is wiped from the
 * message and the stack as soon as the key is in secure memory. */
static void svc_on_identity(struct svc_proc *p)
{
	uint8_t seed[CTL_SEED_LEN];
	char err[128];
	int rc = ctl_read_identity(&p->msg, seed);

	explicit_bzero(p->msg.body, p->msg.len);
	if (rc != 0)
		svc_fatal_msg("malformed control message", p->msg.type);
	identity_free(&p->s.identity);
	rc = identity_from_seed(&p->s.identity, seed, err, sizeof err);
	explicit_bzero(seed, sizeof seed);
	if (rc != 0)
		log_fatalx("cannot hold the node identity", "error", err, LOG_END);
}

/* The KEK from the supervisor, wiped from the message and the stack once
 * it is in secure memory. */
static void svc_on_kek(struct svc_proc *p)
{
	uint8_t key[CTL_KEK_LEN];
	int rc = ctl_read_kek(&p->msg, key);

	explicit_bzero(p->msg.body, p->msg.len);
	if (rc != 0)
		svc_fatal_msg("malformed control message", p->msg.type);
	kek_free(p->s.kek);
	p->s.kek = kek_from_bytes(key);
	explicit_bzero(key, sizeof key);
	if (!p->s.kek)
		log_fatalx("cannot hold the KEK", LOG_END);
}

/* The node's onion address (or none): the service reads s->onion when it
 * signs a record; a started service hears of a change. */
static void svc_on_onion(struct svc_proc *p)
{
	char addr[CTL_ONION_MAX];

	if (ctl_read_onion(&p->msg, addr) != 0)
		svc_fatal_msg("malformed control message", p->msg.type);
	if (strcmp(addr, p->s.onion) == 0)
		return;
	memcpy(p->s.onion, addr, sizeof addr);
	if (p->started && p->s.ops->onion)
		p->s.ops->onion(&p->s);
}

static void on_ctl(evutil_socket_t fd, short what, void *arg)
{
	struct svc_proc *p = arg;
	int r = ctl_recv((int)fd, &p->msg);

	(void)what;
	if (r < 0 && errno == EBADMSG)
		svc_fatal_msg("malformed control message", p->msg.type);
	if (r <= 0) {
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		event_del(p->ctl_ev);
		svc_begin_drain(p, "supervisor gone");
		return;
	}
	svc_dispatch(p);
	if (p->msg.fd >= 0)
		close(p->msg.fd);
}

static void svc_dispatch(struct svc_proc *p)
{
	switch (p->msg.type) {
	case CTL_CONFIG:
		svc_on_config(p);
		break;
	case CTL_DRAIN:
		if (ctl_read_drain(&p->msg) != 0)
			svc_fatal_msg("malformed control message", p->msg.type);
		svc_begin_drain(p, "supervisor asked");
		break;
	case CTL_POLICY:
		svc_on_policy(p);
		break;
	case CTL_IDENTITY:
		svc_on_identity(p);
		break;
	case CTL_KEK:
		svc_on_kek(p);
		break;
	case CTL_ONION:
		svc_on_onion(p);
		break;
	default:
		/* Includes the child → supervisor types: never sent this way. */
		svc_fatal_msg("unknown control message", p->msg.type);
	}
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	svc_begin_drain(arg, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

bool svc_peer_ok(int fd, const char *service)
{
	return rpc_peer_is_us(fd, service);
}

void svc_report_dep(svc *s, ctl_dep dep, ctl_dep_state state)
{
	(void)s;
	if (ctl_compose_deps(CTL_CHILD_FD, dep, state) != 0)
		log_kv(LOG_LEVEL_WARN, "cannot report dependency state", "dependency",
		       ctl_dep_name(dep), LOG_END);
}

static int svc_parse_args(svc *s, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "worker", required_argument, NULL, 'w' },
		{ "listen", no_argument, NULL, 'l' },
		{ "log-level", required_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	s->listen_fd = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'w')
			s->worker = atoi(optarg);
		else if (c == 'l')
			s->listen_fd = CTL_LISTEN_FD;
		else if (c == 'v') {
			log_level lvl;
			if (log_level_parse(optarg, &lvl) != 0)
				return -1;
			log_set_level(lvl);
		}
		else
			return -1;
	}
	return optind == argc ? 0 : -1;
}

static int svc_setup(struct svc_proc *p)
{
	p->s.base = conn_base_new();
	if (!p->s.base)
		return -1;
	evutil_make_socket_nonblocking(CTL_CHILD_FD);
	p->ctl_ev = event_new(p->s.base, CTL_CHILD_FD, EV_READ | EV_PERSIST, on_ctl, p);
	p->sigterm_ev = evsignal_new(p->s.base, SIGTERM, on_signal, p);
	p->sigint_ev = evsignal_new(p->s.base, SIGINT, on_signal, p);
	p->trim_ev = event_new(p->s.base, -1, EV_PERSIST, on_trim_tick, p);
	if (!p->ctl_ev || !p->sigterm_ev || !p->sigint_ev || !p->trim_ev)
		return -1;
	struct timeval trim_tv = { 0, SVC_TRIM_MS * 1000 };
	event_add(p->trim_ev, &trim_tv);
	event_add(p->ctl_ev, NULL);
	event_add(p->sigterm_ev, NULL);
	event_add(p->sigint_ev, NULL);
	return 0;
}

static void svc_teardown(struct svc_proc *p)
{
	if (p->started && p->s.ops->stop)
		p->s.ops->stop(&p->s);
	if (p->ctl_ev) event_free(p->ctl_ev);
	if (p->sigterm_ev) event_free(p->sigterm_ev);
	if (p->sigint_ev) event_free(p->sigint_ev);
	if (p->deadline_ev) event_free(p->deadline_ev);
	if (p->trim_ev) event_free(p->trim_ev);
	if (p->s.base) event_base_free(p->s.base);
	config_free(&p->s.cfg);
	identity_free(&p->s.identity);
	kek_free(p->s.kek);
	p->s.kek = NULL;
	policy_free(p->s.policy);
	p->s.policy = NULL;
}

int svc_main(const svc_ops *ops, const struct svc_sandbox_profile *sandbox,
             int argc, char **argv)
{
	static struct svc_proc proc; /* lives for the whole process */
	struct svc_proc *p = &proc;
	char name[32];

	snprintf(name, sizeof name, "%s", ops ? ops->role : "service");
	log_init(name, LOG_LEVEL_INFO, STDERR_FILENO);
	(void)mallopt(M_MMAP_THRESHOLD, SVC_MMAP_MIN);
	(void)mallopt(M_TRIM_THRESHOLD, SVC_TRIM_THRESHOLD);
	p->s.ops = ops;
	p->s.sandbox = sandbox;
	if (!p->s.ops || svc_parse_args(&p->s, argc, argv) != 0) {
		fprintf(stderr, "macronode: __service: bad role or arguments (internal command)\n");
		return SVC_EXIT_USAGE;
	}
	/* Exit with the supervisor even if it dies without closing the channel. */
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGPIPE, SIG_IGN); /* libevent writes with writev: a gone peer must not kill us */
	(void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	/* No core file and not dumpable: cli_main did it before we got here
	 * (request buffers hold bearer tokens). */
	if (getppid() == 1)
		return SVC_EXIT_FAIL;
	config_defaults(&p->s.cfg);
	p->probe = svc_sandbox_probe_arm(name);
	if (metrics_attach(CTL_METRICS_FD) != 0) {
		log_kv(LOG_LEVEL_ERROR, "cannot attach metrics region", LOG_END);
		return SVC_EXIT_FAIL;
	}
	if (svc_setup(p) != 0) {
		log_kv(LOG_LEVEL_ERROR, "cannot set up event loop", LOG_END);
		svc_teardown(p);
		return SVC_EXIT_FAIL;
	}
	if (ctl_compose_hello(CTL_CHILD_FD, ctl_build_id()) != 0) {
		svc_teardown(p);
		return SVC_EXIT_FAIL;
	}
	event_base_dispatch(p->s.base);
	svc_teardown(p);
	return p->exit_code;
}
