/*
 * supervisor.c — `macronode run`: binds listeners, spawns each service by
 * fork + exec of this binary with a role argument, restarts children with
 * jittered backoff, drains on SIGTERM, reloads on SIGHUP. Composition only:
 * no service logic lives here, and no service is named: what to run comes
 * from the role table (roles.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/proto/ctl.h"
#include "core/auth/quota.h"
#include "core/auth/wall.h"
#include "core/net/conn.h"
#include "core/net/http.h"
#include "core/tls.h"
#include "core/metrics/metrics.h"
#include "lib/log.h"
#include "lib/util.h"
#include "core/dht/dht_client.h"
#include "core/audit/audit_client.h"
#include "node/node.h"

#define SUP_LISTEN_BACKLOG   1024
#define SUP_TICK_MS          1000u   /* readiness gauge and crash-loop upkeep */
#define SUP_CRASHLOOP_CLEAR_MS 10000u /* ready this long after a loop → cleared */

static void child_spawn(sup_child *c);
static void sup_maybe_exit(supervisor *s);

/* ---- children ---------------------------------------------------------- */

static void child_close_ctl(sup_child *c)
{
	if (c->ctl_ev) {
		event_free(c->ctl_ev);
		c->ctl_ev = NULL;
	}
	if (c->ctl_fd >= 0) {
		close(c->ctl_fd);
		c->ctl_fd = -1;
	}
}

static void child_send_config(sup_child *c)
{
	/* Children get the runtime directory the supervisor actually uses. A
	 * shallow copy is enough: config_to_json never emits secrets. */
	mn_config view = c->sup->cfg;
	view.admin_token = NULL;
	snprintf(view.runtime_dir, sizeof view.runtime_dir, "%s", c->sup->runtime_dir);
	char *json = config_to_json(&view, false);

	if (!json || ctl_compose_config(c->ctl_fd, json, strlen(json)) != 0)
		log_kv(LOG_LEVEL_WARN, "cannot send config to child", "role", c->role->name, LOG_END);
	free(json);
}

static int child_on_hello(sup_child *c, const ctl_msg *m)
{
	ctl_hello h;

	if (ctl_read_hello(m, &h) != 0)
		return -1;
	snprintf(c->build_id, sizeof c->build_id, "%s", h.build_id);
	if (c->role->identity) {     /* before CONFIG: held when it starts */
		uint8_t seed[CTL_SEED_LEN];
		identity_seed(&c->sup->identity, seed);
		if (ctl_compose_identity(c->ctl_fd, seed) != 0)
			log_kv(LOG_LEVEL_WARN, "cannot send the identity to child", "role", c->role->name,
			       LOG_END);
		explicit_bzero(seed, sizeof seed);
	}
	if (c->role->policy && c->sup->kek) {   /* before CONFIG: its wall unseals keys */
		if (ctl_compose_kek(c->ctl_fd, c->sup->kek->key) != 0)
			log_kv(LOG_LEVEL_WARN, "cannot send the KEK to child", "role", c->role->name,
			       LOG_END);
	}
	sup_tor_send(c->sup, c);     /* before CONFIG: its records carry it from the start */
	sup_policy_send(c->sup, c);  /* before CONFIG: in force when it starts */
	child_send_config(c);
	return 0;
}

static int child_on_ready(sup_child *c, const ctl_msg *m)
{
	if (ctl_read_ready(m) != 0)
		return -1;
	c->state = CHILD_READY;
	c->ready_ms = util_now_ms();
	c->attempt = 0; /* backoff doubles only while a child fails to come up */
	log_kv(LOG_LEVEL_INFO, "service ready", "role", c->role->name, LOG_END);
	if (c->sup->sd.on && !c->sup->sd.ready_sent) {   /* READY=1 without waiting for the tick */
		ready_verdict v;

		free(readiness_report(c->sup, &v));
		sdn_readiness(&c->sup->sd, v != READY_NOT && !c->sup->draining, readiness_name(v), false);
	}
	return 0;
}

/* Readiness reads the states through the role's rules (readiness.c). */
static int child_on_deps(sup_child *c, const ctl_msg *m)
{
	ctl_deps d;

	if (ctl_read_deps(m, &d) != 0)
		return -1;
	c->dep[d.dep] = (uint8_t)d.state;
	return 0;
}

/* -1: the message is malformed or of a type a child never sends. */
static int child_dispatch(sup_child *c, const ctl_msg *m)
{
	switch (m->type) {
	case CTL_HELLO: return child_on_hello(c, m);
	case CTL_READY: return child_on_ready(c, m);
	case CTL_DEPS:  return child_on_deps(c, m);
	default:        return -1;
	}
}

/*
 * A child sent a malformed message: a bug in it. The supervisor is the last
 * thing to fail, so it does not die of it; it kills the child (which is
 * restarted like any crashed child) and counts the fault (bug_total).
 */
static void child_protocol_fault(sup_child *c, uint32_t type)
{
	char pid[16];

	snprintf(pid, sizeof pid, "%d", (int)c->pid);
	log_kv(LOG_LEVEL_ERROR, "malformed control message from child; killing it",
	       "role", c->role->name, "pid", pid, "type", ctl_type_name(type), LOG_END);
	c->sup->protocol_faults++;
	(void)BUG("control protocol fault");
	if (c->pid > 0)
		kill(c->pid, SIGKILL);
	child_close_ctl(c);
}

static void on_child_ctl(evutil_socket_t fd, short what, void *arg)
{
	static ctl_msg msg; /* 64 KiB; the supervisor is single-threaded */
	sup_child *c = arg;
	int r = ctl_recv((int)fd, &msg);

	(void)what;
	if (r > 0) {
		int rc = child_dispatch(c, &msg);
		if (msg.fd >= 0)
			close(msg.fd);  /* children have no descriptor to give us */
		if (rc != 0)
			child_protocol_fault(c, msg.type);
		return;
	}
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r < 0 && errno == EBADMSG) {
		child_protocol_fault(c, msg.type);
		return;
	}
	/* EOF or a socket error: the child is gone; SIGCHLD does the rest. */
	child_close_ctl(c);
}

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
	sup_child *c = arg;

	(void)fd; (void)what;
	if (c->sup->draining)
		return;
	c->restarts++;
	char labels[64];
	snprintf(labels, sizeof labels, "service=\"%s\"", c->role->name);
	metrics_count("service_restarts_total", labels, 1);
	child_spawn(c);
}

/* Children never need a secret from the environment; drop every one before exec
 * (after fork, so the supervisor keeps them for reloads). */
static void child_scrub_env(void)
{
	/* and systemd's notification variables: the supervisor alone speaks
	 * for the unit (sdnotify.h) */
	static const char *const secrets[] = { "RON_ADMIN_TOKEN", "NOTIFY_SOCKET", "WATCHDOG_USEC",
	                                       "WATCHDOG_PID" };

	for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
		unsetenv(secrets[i]);
}

/*
 * Move the child's fds to their fixed numbers. The sources may already sit on
 * 3..5 (the metrics memfd usually does), so first copy each above the target
 * range, then dup2 the copies down; dup2 also clears close-on-exec.
 */
static void child_place_fds(int ctl_child, int metrics_fd, int listen_fd)
{
	enum { FD_SCRATCH = 16 };
	int src[3] = { ctl_child, metrics_fd, listen_fd };
	int dst[3] = { CTL_CHILD_FD, CTL_METRICS_FD, CTL_LISTEN_FD };

	for (int i = 0; i < 3; i++)
		if (src[i] >= 0 && (src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, FD_SCRATCH)) < 0)
			_exit(1);
	for (int i = 0; i < 3; i++)
		if (src[i] >= 0 && dup2(src[i], dst[i]) < 0)
			_exit(1);
	int first_free = listen_fd >= 0 ? CTL_LISTEN_FD + 1 : CTL_LISTEN_FD;
	if (close_range((unsigned)first_free, ~0u, 0) != 0)
		for (int fd = first_free; fd < 4096; fd++)
			close(fd);
}

static void child_exec(sup_child *c, int ctl_child, int metrics_fd)
{
	char worker[16];
	char *argv[10];
	int n = 0;

	child_place_fds(ctl_child, metrics_fd, c->listen_fd);
	snprintf(worker, sizeof worker, "%d", c->worker);
	argv[n++] = (char *)"macronode";
	argv[n++] = (char *)"__service";
	argv[n++] = (char *)c->role->name;
	argv[n++] = (char *)"--worker";
	argv[n++] = worker;
	/* The level is known before the first CONFIG message arrives. */
	argv[n++] = (char *)"--log-level";
	argv[n++] = (char *)log_level_name(c->sup->cfg.log_level);
	if (c->listen_fd >= 0)
		argv[n++] = (char *)"--listen";
	argv[n] = NULL;
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	child_scrub_env();
	execv(c->sup->exe, argv);
	_exit(127);
}

static void child_spawn(sup_child *c)
{
	int sv[2];
	supervisor *s = c->sup;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		log_kv(LOG_LEVEL_ERROR, "socketpair failed", "error", strerror(errno), LOG_END);
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		log_kv(LOG_LEVEL_ERROR, "fork failed", "error", strerror(errno), LOG_END);
		close(sv[0]);
		close(sv[1]);
		return;
	}
	if (pid == 0)
		child_exec(c, sv[1], s->metrics_fd);
	close(sv[1]);
	c->pid = pid;
	c->ctl_fd = sv[0];
	c->state = CHILD_STARTING;
	memset(c->dep, CTL_DEP_UP, sizeof c->dep);  /* a new process reports afresh */
	c->started_ms = util_now_ms();
	c->build_id[0] = '\0';
	if (util_set_nonblock(c->ctl_fd) != 0)
		log_kv(LOG_LEVEL_WARN, "cannot make control socket non-blocking", LOG_END);
	c->ctl_ev = event_new(s->base, c->ctl_fd, EV_READ | EV_PERSIST, on_child_ctl, c);
	if (c->ctl_ev)
		event_add(c->ctl_ev, NULL);
	char pidbuf[16], wbuf[16];
	snprintf(pidbuf, sizeof pidbuf, "%d", (int)pid);
	snprintf(wbuf, sizeof wbuf, "%d", c->worker);
	log_kv(LOG_LEVEL_INFO, "service started", "role", c->role->name, "worker", wbuf, "pid", pidbuf, LOG_END);
}

/* The seccomp filter killed it: a call outside the role's list (a bug in the
 * list, or code that should not run there). Restarted like any crash. */
static void child_sandbox_violation(sup_child *c)
{
	char labels[64];

	/* Labelled by role, as the sandbox profile is the role's. */
	snprintf(labels, sizeof labels, "role=\"%s\"", c->role->name);
	metrics_count("sandbox_violations_total", labels, 1);
	log_kv(LOG_LEVEL_ERROR, "service killed by its sandbox (SIGSYS)", "role", c->role->name, LOG_END);
}

static void child_exited(sup_child *c, int status)
{
	supervisor *s = c->sup;
	uint64_t now = util_now_ms();
	char st[32];

	child_close_ctl(c);
	c->pid = 0;
	c->last_status = status;
	c->exited_ms = now;
	bool was_ready = c->state == CHILD_READY;
	c->state = CHILD_IDLE;
	if (WIFSIGNALED(status))
		snprintf(st, sizeof st, "signal %d", WTERMSIG(status));
	else
		snprintf(st, sizeof st, "exit %d", WEXITSTATUS(status));
	if (s->draining) {
		log_kv(LOG_LEVEL_INFO, "service stopped", "role", c->role->name, "status", st, LOG_END);
		sup_maybe_exit(s);
		return;
	}
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
		child_sandbox_violation(c);
	if (crashwin_record(&c->crashes, now) && !c->crashloop) {
		c->crashloop = true;
		log_kv(LOG_LEVEL_ERROR, "service is crash-looping", "role", c->role->name, LOG_END);
		audit_emit(s->audit, "supervisor", "crashloop", c->role->name, NULL,
		           json_pack("{s:s, s:i}", "service", c->role->name, "worker", c->worker),
		           json_pack("{s:s}", "status", st));
	}
	if (!was_ready)
		c->attempt++;
	uint32_t ms = backoff_delay_ms(c->attempt, util_random_u32());
	audit_emit(s->audit, "supervisor", "restart", WIFSIGNALED(status) ? "signal" : "exit", NULL,
	           json_pack("{s:s, s:i}", "service", c->role->name, "worker", c->worker),
	           json_pack("{s:s, s:i, s:I, s:b}", "status", st, "delay_ms", (int)ms,
	                     "restarts", (json_int_t)c->restarts, "was_ready", was_ready));
	char msbuf[16];
	snprintf(msbuf, sizeof msbuf, "%u", ms);
	log_kv(LOG_LEVEL_WARN, "service exited; restarting", "role", c->role->name, "status", st,
	       "delay_ms", msbuf, LOG_END);
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
	if (!c->restart_ev)
		c->restart_ev = evtimer_new(s->base, on_restart, c);
	if (c->restart_ev)
		evtimer_add(c->restart_ev, &tv);
}

static void on_sigchld(supervisor *s)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (sup_tor_reaped(s, pid, status))
			continue;
		for (size_t i = 0; i < s->nchild; i++) {
			if (s->child[i].pid == pid) {
				child_exited(&s->child[i], status);
				break;
			}
		}
	}
}

/* ---- drain and exit ---------------------------------------------------- */

static bool sup_children_alive(const supervisor *s)
{
	for (size_t i = 0; i < s->nchild; i++)
		if (s->child[i].pid > 0)
			return true;
	return false;
}

static void sup_drain_advance(supervisor *s);

static void sup_maybe_exit(supervisor *s)
{
	if (s->draining)
		sup_drain_advance(s);
	if (s->draining && !sup_children_alive(s) && !s->admin)
		event_base_loopexit(s->base, NULL);
}

static void on_admin_drained(void *arg)
{
	supervisor *s = arg;

	http_server_free(s->admin);
	tls_server_free(s->admin_tls);   /* after the server: its connections hold SSLs of it */
	s->admin = NULL;
	sup_maybe_exit(s);
}

static void on_hard_deadline(evutil_socket_t fd, short what, void *arg)
{
	supervisor *s = arg;

	(void)fd; (void)what;
	log_kv(LOG_LEVEL_WARN, "hard drain limit reached; killing what is left", LOG_END);
	for (size_t i = 0; i < s->nchild; i++)
		if (s->child[i].pid > 0)
			kill(s->child[i].pid, SIGKILL);
	event_base_loopexit(s->base, NULL);
}

/* Ask every running child of one tier to drain. */
static void sup_drain_tier(supervisor *s, int tier)
{
	s->drain_tier = tier;
	for (size_t i = 0; i < s->nchild; i++) {
		sup_child *c = &s->child[i];
		if (c->role->tier != tier || c->pid <= 0)
			continue;
		c->state = CHILD_DRAINING;
		if (c->ctl_fd < 0 || ctl_compose_drain(c->ctl_fd) != 0)
			kill(c->pid, SIGTERM);
	}
}

static bool sup_tier_alive(const supervisor *s, int tier)
{
	for (size_t i = 0; i < s->nchild; i++)
		if (s->child[i].role->tier == tier && s->child[i].pid > 0)
			return true;
	return false;
}

/* Tier by tier: the next tier is asked once every child of this one exited. */
static void sup_drain_advance(supervisor *s)
{
	while (s->drain_tier + 1 < ROLE_TIERS && !sup_tier_alive(s, s->drain_tier))
		sup_drain_tier(s, s->drain_tier + 1);
}

static void on_drain_start(evutil_socket_t fd, short what, void *arg)
{
	supervisor *s = arg;

	(void)fd; (void)what;
	for (size_t i = 0; i < s->nchild; i++)
		if (s->child[i].restart_ev)
			evtimer_del(s->child[i].restart_ev);
	/* Front services first: in-flight requests may still need the back ones. */
	sup_drain_tier(s, ROLE_TIER_FRONT);
	sup_drain_advance(s);
	if (s->admin)
		http_server_drain(s->admin, on_admin_drained, s);
	else
		sup_maybe_exit(s);
}

void supervisor_shutdown(supervisor *s, const char *why)
{
	if (s->draining)
		return;
	s->draining = true;
	log_kv(LOG_LEVEL_INFO, "shutting down", "reason", why, LOG_END);
	sdn_stopping(&s->sd, why);
	audit_client_flush(s->audit);   /* this second's refused admin calls */
	audit_emit(s->audit, "supervisor", "shutdown", why, NULL, NULL, NULL);
	/* Deferred one loop turn so an admin POST can still be answered. */
	struct timeval zero = { 0, 0 };
	struct timeval hard = { NODE_HARD_DRAIN_MS / 1000, 0 };
	s->drain_ev = evtimer_new(s->base, on_drain_start, s);
	s->hard_ev = evtimer_new(s->base, on_hard_deadline, s);
	if (s->drain_ev)
		evtimer_add(s->drain_ev, &zero);
	if (s->hard_ev)
		evtimer_add(s->hard_ev, &hard);
	if (!s->drain_ev)
		on_drain_start(-1, 0, s);
}

/* ---- reload ------------------------------------------------------------ */

static int config_reload(supervisor *s, const char *why, char *err, size_t errlen);

/* Config first, then the policy bundle (whatever became of the config: an
 * operator who fixed the policy wants it in force even if a config edit is
 * refused). The first refusal's message is the one returned. */
int supervisor_reload(supervisor *s, const char *why, char *err, size_t errlen)
{
	char perr[CONFIG_ERR_MAX];
	int rc;

	sdn_reloading(&s->sd);
	rc = config_reload(s, why, err, errlen);

	sup_keys_scan(s);   /* a rotated or retired key: ages for /readyz */

	if (sup_policy_refresh(s, why, perr, sizeof perr) != 0) {
		log_kv(LOG_LEVEL_ERROR, "policy reload refused; the bundle in force stays", "trigger", why,
		       "error", perr, LOG_END);
		if (rc == 0)
			snprintf(err, errlen, "%s", perr);
		rc = -1;
	}
	sdn_reloaded(&s->sd, rc == 0);
	return rc;
}

static int config_reload(supervisor *s, const char *why, char *err, size_t errlen)
{
	mn_config nc;
	char labels[32];

	if (node_load_config(&s->opts, &nc, err, errlen) != 0 ||
	    config_reload_check(&s->cfg, &nc, err, errlen) != 0 ||
	    node_zk_pin_check(&nc, s->kek, err, errlen) != 0) {
		config_free(&nc);
		s->reloads_failed++;
		snprintf(s->last_reload_error, sizeof s->last_reload_error, "%s", err);
		snprintf(labels, sizeof labels, "result=\"refused\"");
		metrics_count("config_reloads_total", labels, 1);
		log_kv(LOG_LEVEL_ERROR, "config reload refused; old config kept", "trigger", why,
		       "error", err, LOG_END);
		return -1;
	}
	config_free(&s->cfg);
	s->cfg = nc;
	log_set_level(s->cfg.log_level);
	log_set_format(s->cfg.log_format);
	admin_apply_limits(s);
	admin_tls_reload(s);
	for (size_t i = 0; i < s->nchild; i++)
		if (s->child[i].ctl_fd >= 0 && s->child[i].build_id[0])
			child_send_config(&s->child[i]);
	s->reloads_ok++;
	s->last_reload_error[0] = '\0';
	metrics_count("config_reloads_total", "result=\"ok\"", 1);
	log_kv(LOG_LEVEL_INFO, "config reloaded", "trigger", why, LOG_END);
	return 0;
}

/* ---- signals and ticks ------------------------------------------------- */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	supervisor *s = arg;
	char err[CONFIG_ERR_MAX];

	(void)what;
	switch (sig) {
	case SIGCHLD:
		on_sigchld(s);
		break;
	case SIGHUP: {
		int rc = supervisor_reload(s, "SIGHUP", err, sizeof err);
		audit_emit(s->audit, "admin", "reload", rc == 0 ? "ok" : "refused",
		           json_pack("{s:s}", "signal", "SIGHUP"), NULL,
		           rc == 0 ? NULL : json_pack("{s:s}", "error", err));
		break;
	}
	default:
		supervisor_shutdown(s, sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	supervisor *s = arg;
	uint64_t now = util_now_ms();
	ready_verdict v;

	(void)fd; (void)what;
	for (size_t i = 0; i < s->nchild; i++) {
		sup_child *c = &s->child[i];
		if (c->crashloop && c->state == CHILD_READY && now - c->ready_ms >= SUP_CRASHLOOP_CLEAR_MS) {
			c->crashloop = false;
			log_kv(LOG_LEVEL_INFO, "service recovered from crash loop", "role", c->role->name, LOG_END);
		}
	}
	free(readiness_report(s, &v)); /* refreshes ready_state / service_up gauges */
	sdn_readiness(&s->sd, v != READY_NOT && !s->draining, readiness_name(v), true);
}

static int sup_signals(supervisor *s)
{
	static const int sigs[4] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT };

	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < 4; i++) {
		s->sig_ev[i] = evsignal_new(s->base, sigs[i], on_signal, s);
		if (!s->sig_ev[i] || event_add(s->sig_ev[i], NULL) != 0)
			return -1;
	}
	struct timeval tick = { SUP_TICK_MS / 1000, 0 };
	s->tick_ev = event_new(s->base, -1, EV_PERSIST, on_tick, s);
	return s->tick_ev ? event_add(s->tick_ev, &tick) : -1;
}

/* ---- start-up ---------------------------------------------------------- */

/* Listen on addr: one socket (n == 1, *fds), or one per process of a
 * role that runs n of them, in one SO_REUSEPORT group (util_listen_group):
 * the kernel spreads connections across the workers. On one shared socket
 * whichever worker woke first took a whole burst (measured: 29 of wrk's 32
 * connections on one of two gateway workers, the other idle). A worker that
 * restarts finds its socket kept here, with what queued meanwhile. 0/-1. */
static int sup_listen(const char *addr, int *fds, size_t n, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	unsigned len;
	bool lo;

	if (config_parse_addr(addr, &ss, &len, &lo) != 0) {
		snprintf(err, errlen, "%s: not an address", addr);
		return -1;
	}
	if (n > 1)
		return util_listen_group((struct sockaddr *)&ss, (socklen_t)len, SUP_LISTEN_BACKLOG, fds,
		                         n, err, errlen);
	fds[0] = util_listen((struct sockaddr *)&ss, (socklen_t)len, SUP_LISTEN_BACKLOG, err, errlen);
	return fds[0] < 0 ? -1 : 0;
}

/* Where the sockets live: paths.runtime_dir, <data_dir>/run, or (amnesia)
 * a tmpfs directory of ours. Only the path: sup_runtime_dir makes it. */
static int sup_runtime_path(supervisor *s, char *err, size_t errlen)
{
	if (s->cfg.runtime_dir[0])
		snprintf(s->runtime_dir, sizeof s->runtime_dir, "%s", s->cfg.runtime_dir);
	else if (s->cfg.amnesia) {
		/* RAM only: tmpfs, removed at exit. */
		snprintf(s->runtime_dir, sizeof s->runtime_dir, "/dev/shm/macronode-%d", (int)getpid());
		s->own_runtime_dir = true;
	} else if ((size_t)snprintf(s->runtime_dir, sizeof s->runtime_dir, "%s/run",
	                            s->cfg.data_dir) >= sizeof s->runtime_dir) {
		snprintf(err, errlen, "paths.data_dir: too long for a runtime directory under it");
		return -1;
	}
	return 0;
}

static int sup_runtime_dir(supervisor *s, char *err, size_t errlen)
{
	if (!s->cfg.amnesia && util_ensure_dir(s->cfg.data_dir, 0700, err, errlen) != 0)
		return -1;
	return util_ensure_dir(s->runtime_dir, 0700, err, errlen);
}

static void sup_add_child(supervisor *s, const role *r, int worker, int listen_fd)
{
	if (s->nchild >= NODE_MAX_CHILDREN) {
		log_kv(LOG_LEVEL_WARN, "too many service processes; not started", "role", r->name, LOG_END);
		return;
	}
	sup_child *c = &s->child[s->nchild++];
	c->role = r;
	c->worker = worker;
	c->listen_fd = listen_fd;
	c->ctl_fd = -1;
	c->sup = s;
}

/* Every enabled role, in table order, each with its number of processes. */
static void sup_add_children(supervisor *s)
{
	for (size_t i = 0; i < roles_count; i++) {
		const role *r = &roles[i];
		if (!role_is_enabled(r, &s->cfg))
			continue;
		unsigned n = role_instances(r, &s->cfg);
		for (unsigned w = 0; w < n; w++)
			sup_add_child(s, r, (int)w, w < NODE_MAX_CHILDREN && s->group_fd[i][w] >= 0
			                                ? s->group_fd[i][w] : s->role_fd[i]);
	}
}

/* A role's UNIX socket: SEQPACKET, 0600, in the 0700 runtime directory. */
static int sup_listen_unix(supervisor *s, const char *name, char *err, size_t errlen)
{
	char path[CONFIG_PATH_MAX + 32];

	if ((size_t)snprintf(path, sizeof path, "%s/%s", s->runtime_dir, name) >= sizeof path) {
		snprintf(err, errlen, "paths.runtime_dir: too long for %s", name);
		return -1;
	}
	return util_listen_unix(path, SOCK_SEQPACKET, 0600, err, errlen);
}

/* Bind what each enabled role serves: a TCP listener or a UNIX socket. */
/* The TCP listeners of the enabled roles (bound before privileges drop). */
static int sup_listen_roles_tcp(supervisor *s, char *err, size_t errlen)
{
	for (size_t i = 0; i < roles_count; i++) {
		const role *r = &roles[i];
		unsigned n;

		if (!role_is_enabled(r, &s->cfg) || r->listen == ROLE_LISTEN_NONE)
			continue;
		n = role_instances(r, &s->cfg);
		if (n > NODE_MAX_CHILDREN)   /* more are not started (sup_add_child) */
			n = NODE_MAX_CHILDREN;
		if (sup_listen(role_listen_addr(r, &s->cfg), n > 1 ? s->group_fd[i] : &s->role_fd[i],
		               n, err, errlen) != 0)
			return -1;
	}
	return 0;
}

/* The UNIX sockets of the enabled back roles, in the runtime directory
 * (bound as node.user, so its services can connect). */
static int sup_listen_roles_unix(supervisor *s, char *err, size_t errlen)
{
	for (size_t i = 0; i < roles_count; i++) {
		const role *r = &roles[i];

		if (!role_is_enabled(r, &s->cfg) || r->listen != ROLE_LISTEN_NONE || !r->socket)
			continue;
		if ((s->role_fd[i] = sup_listen_unix(s, r->socket, err, errlen)) < 0)
			return -1;
	}
	return 0;
}

/* The node identity: made in memory in amnesia mode, else read from its
 * file, which the first run creates (as `macronode init` does). */
static int sup_identity(supervisor *s, char *err, size_t errlen)
{
	char path[CONFIG_PATH_MAX];
	bool created = false;

	if (s->cfg.amnesia) {
		if (identity_generate(&s->identity, err, errlen) != 0)
			return -1;
	} else if (config_identity_file(&s->cfg, path, sizeof path) != 0) {
		snprintf(err, errlen, "node.identity_file: path too long");
		return -1;
	} else if (identity_load_or_create(&s->identity, path, s->kek, &created, err, errlen) != 0) {
		return -1;
	}
	log_kv(LOG_LEVEL_INFO, created ? "node identity created" : "node identity",
	       "node_id", s->identity.id_text, "amnesia", s->cfg.amnesia ? "true" : "false", LOG_END);
	return 0;
}

static int sup_start(supervisor *s, char *err, size_t errlen)
{
	ssize_t n = readlink("/proc/self/exe", s->exe, sizeof s->exe - 1);
	if (n <= 0) {
		snprintf(err, errlen, "cannot find own binary: %s", strerror(errno));
		return -1;
	}
	s->exe[n] = '\0';
	/* Root's part: the user, the TCP listeners (ports below 1024); then
	 * never root again (sup_privs.c). */
	if (sup_runtime_path(s, err, errlen) != 0 || sup_privs_resolve(s, err, errlen) != 0 ||
	    sup_listen(s->cfg.admin_addr, &s->admin_fd, 1, err, errlen) != 0 ||
	    sup_listen_roles_tcp(s, err, errlen) != 0 || sup_privs_drop(s, err, errlen) != 0)
		return -1;
	if (sup_runtime_dir(s, err, errlen) != 0)
		return -1;
	if (sup_keys_kek(s, err, errlen) != 0 || sup_identity(s, err, errlen) != 0 ||
	    node_zk_pin_check(&s->cfg, s->kek, err, errlen) != 0)
		return -1;
	sup_keys_scan(s);
	/* The quota table (and the ZK replay table) ride in the metrics memfd:
	 * every child maps them. */
	size_t qlen;
	s->metrics_fd = metrics_create(wall_annex_size(&s->cfg));
	void *qarea = metrics_annex(&qlen);
	if (s->metrics_fd < 0 || wall_annex_init(qarea, qlen, &s->cfg, util_now_ms()) != 0) {
		snprintf(err, errlen, "cannot create the shared metrics region");
		return -1;
	}
	if (sup_listen_roles_unix(s, err, errlen) != 0)
		return -1;
	s->base = conn_base_new();
	if (!s->base || sup_signals(s) != 0 || admin_start(s) != 0) {
		snprintf(err, errlen, "cannot start the admin plane on %s", s->cfg.admin_addr);
		return -1;
	}
	/* The audit socket is bound already: entries wait there for the service. */
	if (s->cfg.services & CONFIG_SVC_AUDIT) {
		char sock[CONFIG_PATH_MAX + 16];
		snprintf(sock, sizeof sock, "%s/%s", s->runtime_dir, AUDIT_SOCKET);
		s->audit = audit_client_new_at(s->base, sock, "supervisor");
	}
	if ((s->cfg.services & CONFIG_SVC_AUDIT) && !s->audit) {
		snprintf(err, errlen, "cannot make the supervisor's audit client");
		return -1;
	}
	audit_emit(s->audit, "supervisor", "start", "run", NULL, NULL,
	           json_pack("{s:s, s:b}", "node_id", s->identity.id_text, "amnesia", s->cfg.amnesia));
	sup_keys_scan(s);   /* again, now that it can be audited */
	char perr[CONFIG_ERR_MAX];
	if (sup_policy_refresh(s, "start", perr, sizeof perr) != 0)
		log_kv(LOG_LEVEL_ERROR, "policy bundle refused; denying every public request",
		       "error", perr, LOG_END);
	if (sup_tor_start(s, err, errlen) != 0)
		return -1;
	sup_add_children(s);
	for (size_t i = 0; i < s->nchild; i++)
		child_spawn(&s->child[i]);
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void sup_free(supervisor *s)
{
	sup_tor_free(s);   /* before the base: its events */
	for (size_t i = 0; i < s->nchild; i++) {
		child_close_ctl(&s->child[i]);
		if (s->child[i].restart_ev)
			event_free(s->child[i].restart_ev);
	}
	http_server_free(s->admin);
	dht_client_free(s->admin_dht);   /* after the admin plane: its lookups are cancelled */
	audit_client_free(s->audit);
	for (size_t i = 0; i < 4; i++)
		if (s->sig_ev[i])
			event_free(s->sig_ev[i]);
	if (s->drain_ev) event_free(s->drain_ev);
	if (s->hard_ev) event_free(s->hard_ev);
	if (s->tick_ev) event_free(s->tick_ev);
	if (s->base) event_base_free(s->base);
	if (s->admin_fd >= 0) close(s->admin_fd);
	for (size_t i = 0; i < ROLES_MAX; i++) {
		if (s->role_fd[i] >= 0)
			close(s->role_fd[i]);
		for (size_t w = 0; w < NODE_MAX_CHILDREN; w++)
			if (s->group_fd[i][w] >= 0)
				close(s->group_fd[i][w]);
	}
	sup_policy_free(s);
	if (s->own_runtime_dir)
		(void)nftw(s->runtime_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	config_free(&s->cfg);
	identity_free(&s->identity);
	kek_free(s->kek);   /* wipes */
	s->kek = NULL;
}

int supervisor_run(const node_opts *o, mn_config *cfg)
{
	static supervisor sup; /* one per process; admin callbacks point into it */
	supervisor *s = &sup;
	char err[CONFIG_ERR_MAX];

	s->opts = *o;
	s->cfg = *cfg; /* ownership of secrets moves here */
	memset(cfg, 0, sizeof *cfg);
	s->admin_fd = s->metrics_fd = -1;
	for (size_t i = 0; i < ROLES_MAX; i++) {
		s->role_fd[i] = -1;
		for (size_t w = 0; w < NODE_MAX_CHILDREN; w++)
			s->group_fd[i][w] = -1;
	}
	s->policy.fd = -1;
	s->start_ms = util_now_ms();
	s->start_wall_ms = util_wall_ms();
	sdn_init(&s->sd);
	log_init("macronode", s->cfg.log_level, STDERR_FILENO);
	log_set_format(s->cfg.log_format);
	if (sup_start(s, err, sizeof err) != 0) {
		log_kv(LOG_LEVEL_ERROR, "cannot start", "error", err, LOG_END);
		fprintf(stderr, "macronode: %s\n", err);
		sup_free(s);
		return 1;
	}
	log_kv(LOG_LEVEL_INFO, "node started", "admin", s->cfg.admin_addr,
	       "gateway", s->cfg.gateway_addr, "version", ctl_build_id(), LOG_END);
	event_base_dispatch(s->base);
	/* Reap whatever is left (hard deadline path). */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	log_kv(LOG_LEVEL_INFO, "node stopped", LOG_END);
	sup_free(s);
	return s->exit_code;
}
