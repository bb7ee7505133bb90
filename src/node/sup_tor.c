/*
 * sup_tor.c — the supervisor's side of the Tor transport (docs/tor.md).
 *
 * With tor.enabled the supervisor
 *   - holds the onion service key: <data_dir>/node/onion.key, sealed under
 *     the KEK like the identity (AAD "macronode/onion/v1"), made at the
 *     first start (amnesia: none; tor makes an ephemeral one and discards
 *     it, NEW:ED25519-V3 Flags=DiscardPK);
 *   - with tor.launch, runs its own tor from a torrc it writes under
 *     <runtime_dir>/tor (cookie authentication, a control socket there,
 *     SocksPort tor.socks with ExtendedErrors so tor's refusals name the
 *     onion failure, __OwningControllerProcess: tor exits with us),
 *     restarting it with backoff when it exits;
 *   - keeps one control session (core/tor/torctl.h) that adds the onion
 *     service for oap.addr and polls the bootstrap phase, and starts a new
 *     one with backoff whenever it ends;
 *   - tells the roles that sign records (CTL_ONION) the onion address, and
 *     shows it in /version, /api/v1/status and (through onion.hostname)
 *     `macronode id`; readiness names it as deps.tor.
 *
 * tor down is a degraded node, never a dead one: nothing here exits.
 */
#include "node/node.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/keys/keyfile.h"
#include "core/metrics/metrics.h"
#include "lib/backoff.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "mn_build.h"

#if MN_TOR
#include "core/tor/onion.h"
#include "core/tor/torctl.h"

#define TOR_KEY_AAD        ONION_KEY_AAD
#define TOR_KEY_FILE       ONION_KEY_FILE
#define TOR_HOSTNAME_FILE  "node/onion.hostname"
#define TOR_DIR            "tor"
#define TOR_STOP_MS        2000u    /* SIGTERM, then SIGKILL */

/* The onion.hostname write, off the loop (util_write_atomic fsyncs). */
typedef struct tor_hostname_job {
	workq_job job;
	char      path[CONFIG_PATH_MAX];
	char      text[CTL_ONION_MAX + 1];
	bool      ok;
} tor_hostname_job;

static void tor_count_fail(torctl_fail why)
{
	char labels[48];

	snprintf(labels, sizeof labels, "reason=\"%s\"", torctl_fail_name(why));
	metrics_count("tor_control_failures_total", labels, 1);
}

static void tor_gauges(const sup_tor *t)
{
	metrics_gauge_set(metrics_get("tor_up", NULL), t->up);
	metrics_gauge_set(metrics_get("tor_bootstrap_percent", NULL), (int64_t)t->bootstrap);
}

/* ---- the key ---------------------------------------------------------------- */

static int tor_key_path(const supervisor *s, const char *rel, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/%s", s->cfg.data_dir, rel);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int tor_key_create(const supervisor *s, const char *path, uint8_t *key, char *err,
                          size_t errlen)
{
	char dir[CONFIG_PATH_MAX], why[CONFIG_ERR_MAX];
	const char *slash = strrchr(path, '/');

	if (!s->kek || !s->kek->key)
		return util_fail(err, errlen, "tor.enabled: no KEK to seal a new onion key (%s) with",
		                 path);
	snprintf(dir, sizeof dir, "%.*s", (int)(slash ? slash - path : 1), slash ? path : ".");
	if (util_ensure_dir(dir, 0700, err, errlen) != 0)
		return -1;
	onion_key_generate(key);
	if (keyfile_write(path, s->kek, TOR_KEY_AAD, key, ONION_KEY_LEN, 0600, UTIL_WRITE_NOREPLACE,
	                  why, sizeof why) != 0)
		return util_fail(err, errlen, "tor.enabled: cannot write the onion key: %s", why);
	log_kv(LOG_LEVEL_INFO, "onion service key created", "path", path, LOG_END);
	return 0;
}

/* Read (or make, the first time) the sealed onion key into s->tor.key. */
static int tor_key_load(supervisor *s, char *err, size_t errlen)
{
	char path[CONFIG_PATH_MAX];
	char *buf = NULL;
	size_t n = 0;
	int rc;

	if (tor_key_path(s, TOR_KEY_FILE, path, sizeof path) != 0)
		return util_fail(err, errlen, "paths.data_dir: too long for %s", TOR_KEY_FILE);
	if (!(s->tor.key = sodium_malloc(ONION_KEY_LEN)))
		return util_fail(err, errlen, "cannot allocate secure memory for the onion key");
	if (access(path, F_OK) != 0 && errno == ENOENT)
		return tor_key_create(s, path, s->tor.key, err, errlen);
	if (util_read_file(path, 4096, &buf, &n) != 0)
		return util_fail(err, errlen, "%s: cannot read the onion key: %s", path, strerror(errno));
	rc = keyfile_unseal((const uint8_t *)buf, n, s->kek, TOR_KEY_AAD, s->tor.key, ONION_KEY_LEN,
	                    NULL, path, err, errlen);
	sodium_memzero(buf, n);
	free(buf);
	if (rc == KEYFILE_CLEAR)
		return util_fail(err, errlen, "%s: not a sealed onion key", path);
	return rc;
}

/* ---- the tor we run (tor.launch) ---------------------------------------- */

static int tor_write_torrc(supervisor *s, char *err, size_t errlen)
{
	sup_tor *t = &s->tor;
	char path[CONFIG_PATH_MAX + 16], data[CONFIG_PATH_MAX + 16], text[4 * CONFIG_PATH_MAX + 1024];
	int n;

	snprintf(path, sizeof path, "%s/data", t->dir);
	if (util_ensure_dir(t->dir, 0700, err, errlen) != 0 ||
	    util_ensure_dir(path, 0700, err, errlen) != 0)
		return -1;
	snprintf(data, sizeof data, "%s", path);
	n = snprintf(text, sizeof text,
	        "# Written by macronode at every start (tor.launch); edits are lost.\n"
	        "DataDirectory %s\n"
	        "ControlSocket %s\n"
	        "CookieAuthentication 1\n"
	        "CookieAuthFile %s/control.authcookie\n"
	        "SocksPort %s ExtendedErrors\n"
	        "Log notice file %s/tor.log\n"
	        "RunAsDaemon 0\n"
	        "__OwningControllerProcess %ld\n"
	        "%s%s%s",
	        data, t->control, t->dir, s->cfg.tor_socks, t->dir, (long)getpid(),
	        s->cfg.tor_torrc_include[0] ? "%include " : "", s->cfg.tor_torrc_include,
	        s->cfg.tor_torrc_include[0] ? "\n" : "");
	if (n < 0 || (size_t)n >= sizeof text)
		return util_fail(err, errlen, "paths.runtime_dir: too long for the torrc");
	snprintf(path, sizeof path, "%s/torrc", t->dir);
	if (util_write_atomic(path, text, (size_t)n, 0600, 0) != UTIL_WRITE_OK)
		return util_fail(err, errlen, "%s: cannot write the torrc: %s", path, strerror(errno));
	return 0;
}

static void tor_exec(const sup_tor *t)
{
	char torrc[CONFIG_PATH_MAX + 16];
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	sigset_t none;

	/* tor dies with us even without __OwningControllerProcess's poll. */
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (null >= 0) {
		(void)dup2(null, 0);
		(void)dup2(null, 1);
		(void)dup2(null, 2);
	}
	(void)close_range(3, ~0u, 0);
	unsetenv("RON_ADMIN_TOKEN");   /* as for the services: tor needs no secret of ours */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	snprintf(torrc, sizeof torrc, "%s/torrc", t->dir);
	execlp("tor", "tor", "-f", torrc, "--defaults-torrc", "/dev/null", (char *)NULL);
	_exit(127);
}

static void tor_spawn(supervisor *s)
{
	sup_tor *t = &s->tor;
	pid_t pid = fork();
	char pidbuf[16];

	if (pid < 0) {
		log_kv(LOG_LEVEL_ERROR, "cannot fork tor", "error", strerror(errno), LOG_END);
		return;
	}
	if (pid == 0)
		tor_exec(t);
	t->pid = pid;
	t->spawned_ms = util_now_ms();
	snprintf(pidbuf, sizeof pidbuf, "%d", (int)pid);
	log_kv(LOG_LEVEL_INFO, "tor started", "pid", pidbuf, "torrc_dir", t->dir, LOG_END);
}

static void on_tor_respawn(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tor_spawn(arg);
}

bool sup_tor_reaped(supervisor *s, pid_t pid, int status)
{
	sup_tor *t = &s->tor;
	char st[32], msbuf[16];
	uint32_t ms;

	if (!t->pid || pid != t->pid)
		return false;
	t->pid = 0;
	if (s->draining || t->stopping)
		return true;
	snprintf(st, sizeof st, WIFSIGNALED(status) ? "signal %d" : "exit %d",
	         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	/* Quick deaths back off; a tor that ran a while starts over. */
	t->spawn_attempt = util_now_ms() - t->spawned_ms > 60000u ? 0 : t->spawn_attempt + 1;
	ms = backoff_delay_ms(t->spawn_attempt, util_random_u32());
	snprintf(msbuf, sizeof msbuf, "%u", ms);
	metrics_count("tor_restarts_total", NULL, 1);
	log_kv(LOG_LEVEL_WARN, "tor exited; restarting", "status", st, "delay_ms", msbuf, LOG_END);
	struct timeval tv = { (time_t)(ms / 1000u), (suseconds_t)((ms % 1000u) * 1000u) };
	(void)evtimer_add(t->respawn_ev, &tv);
	return true;
}

/* ---- the control session -------------------------------------------------- */

static void tor_session_start(supervisor *s);

/* Children that sign records hear the onion address at HELLO and on change. */
void sup_tor_send(supervisor *s, sup_child *c)
{
	if (!s->cfg.tor_enabled || !c->role->identity || c->ctl_fd < 0)
		return;
	if (ctl_compose_onion(c->ctl_fd, s->tor.onion) != 0)
		log_kv(LOG_LEVEL_WARN, "cannot send the onion address to child", "role", c->role->name,
		       LOG_END);
}

static void tor_hostname_run(workq_job *job)
{
	tor_hostname_job *j = (tor_hostname_job *)job;

	j->ok = util_write_atomic(j->path, j->text, strlen(j->text), 0644, 0) == UTIL_WRITE_OK;
}

static void tor_hostname_done(workq_job *job, bool ran)
{
	tor_hostname_job *j = (tor_hostname_job *)job;

	if (ran && !j->ok)
		log_kv(LOG_LEVEL_WARN, "cannot write the onion hostname file", "path", j->path, LOG_END);
	free(j);
}

/* onion.hostname for `macronode id` (as tor's own hostname file): public. */
static void tor_hostname_save(supervisor *s)
{
	tor_hostname_job *j;

	if (s->cfg.amnesia || !s->tor.wq || !(j = calloc(1, sizeof *j)))
		return;
	j->job.run = tor_hostname_run;
	j->job.done = tor_hostname_done;
	snprintf(j->text, sizeof j->text, "%s\n", s->tor.onion);
	if (tor_key_path(s, TOR_HOSTNAME_FILE, j->path, sizeof j->path) != 0 ||
	    workq_submit(s->tor.wq, &j->job) != 0)
		free(j);
}

static void on_tor_onion(void *arg, const char *service_id)
{
	supervisor *s = arg;
	sup_tor *t = &s->tor;
	char addr[CTL_ONION_MAX], name[ONION_NAME_LEN + 1];
	uint8_t want[ONION_PK_LEN], got[ONION_PK_LEN];

	snprintf(name, sizeof name, "%s.onion", service_id);
	/* tor must have used our key: the name carries its public half. */
	if (t->key && (onion_key_pubkey(t->key, want) != 0 ||
	               onion_name_pubkey(name, strlen(name), got) != 0 ||
	               sodium_memcmp(want, got, sizeof want) != 0)) {
		tor_count_fail(TORCTL_F_ONION);
		snprintf(t->last_error, sizeof t->last_error, "%s",
		         "onion: tor answered with the service of another key; not used");
		log_kv(LOG_LEVEL_ERROR, "tor published an onion of another key; not used", LOG_END);
		return;
	}
	snprintf(addr, sizeof addr, "%s:%u", name, (unsigned)t->virt_port);
	t->up = true;
	t->attempt = 0;
	t->last_error[0] = '\0';
	tor_gauges(t);
	if (strcmp(addr, t->onion) == 0)
		return;
	memcpy(t->onion, addr, sizeof addr);
	log_kv(LOG_LEVEL_INFO, "onion service added", "onion", t->onion, LOG_END);
	for (size_t i = 0; i < s->nchild; i++)
		if (s->child[i].state != CHILD_IDLE)
			sup_tor_send(s, &s->child[i]);
	tor_hostname_save(s);
}

static void on_tor_bootstrap(void *arg, unsigned pct, const char *tag)
{
	supervisor *s = arg;
	sup_tor *t = &s->tor;

	if (pct != t->bootstrap) {
		char p[8];
		snprintf(p, sizeof p, "%u", pct);
		log_kv(pct == 100 ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG, "tor bootstrap", "percent", p,
		       "tag", tag, LOG_END);
	}
	t->bootstrap = pct;
	snprintf(t->tag, sizeof t->tag, "%s", tag);
	tor_gauges(t);
}

static void on_tor_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tor_session_start(arg);
}

static void tor_retry_later(supervisor *s)
{
	sup_tor *t = &s->tor;
	uint32_t ms = backoff_delay_ms(t->attempt++, util_random_u32());
	struct timeval tv = { (time_t)(ms / 1000u), (suseconds_t)((ms % 1000u) * 1000u) };

	(void)evtimer_add(t->retry_ev, &tv);
}

static void on_tor_down(void *arg, torctl_fail why, const char *detail)
{
	supervisor *s = arg;
	sup_tor *t = &s->tor;
	bool was_up = t->up;

	/* detail lives in the client: copied before it is freed. */
	snprintf(t->last_error, sizeof t->last_error, "%s: %s", torctl_fail_name(why), detail);
	torctl_free(t->ctl);
	t->ctl = NULL;
	detail = t->last_error;
	t->up = false;
	t->bootstrap = 0;
	snprintf(t->tag, sizeof t->tag, "%s", "down");
	tor_count_fail(why);
	tor_gauges(t);
	/* Once per outage at warn (a tor still starting fails every 100 ms). */
	if (was_up || t->attempt == 0)
		log_kv(LOG_LEVEL_WARN, "tor control session ended; node degraded", "reason",
		       torctl_fail_name(why), "detail", detail, LOG_END);
	if (!s->draining)
		tor_retry_later(s);
}

static void tor_session_start(supervisor *s)
{
	sup_tor *t = &s->tor;
	char keyarg[16 + ONION_KEY_B64_MAX], cookie[CONFIG_PATH_MAX + 32], err[CONFIG_ERR_MAX];
	torctl_opts o = {
		.control = t->control, .virt_port = t->virt_port, .target = t->target,
		.timeout_ms = SUP_TOR_TIMEOUT_MS, .poll_ms = SUP_TOR_POLL_MS,
	};
	torctl_cbs cbs = { .on_onion = on_tor_onion, .on_bootstrap = on_tor_bootstrap,
	                   .on_down = on_tor_down };

	if (s->draining || t->ctl)
		return;
	if (t->key) {
		if (onion_key_arg(t->key, keyarg, sizeof keyarg) != 0)
			return;
		o.key_arg = keyarg;
	}
	if (s->cfg.tor_launch) {
		snprintf(cookie, sizeof cookie, "%s/control.authcookie", t->dir);
		o.cookie_file = cookie;
	}
	t->ctl = torctl_new(s->base, &o, &cbs, s, err, sizeof err);
	sodium_memzero(keyarg, sizeof keyarg);
	if (!t->ctl) {
		snprintf(t->last_error, sizeof t->last_error, "%s", err);
		tor_retry_later(s);
	}
}

/* The onion's port is oap.addr's; tor forwards it to oap.addr (a wildcard
 * listener is reached on loopback). */
static int tor_target(supervisor *s, char *err, size_t errlen)
{
	sup_tor *t = &s->tor;
	const char *colon = strrchr(s->cfg.oap_addr, ':');
	unsigned long port = colon ? strtoul(colon + 1, NULL, 10) : 0;

	if (!colon || port == 0 || port > 65535u)
		return util_fail(err, errlen, "oap.addr: no port to publish as an onion service");
	t->virt_port = (uint16_t)port;
	if (strncmp(s->cfg.oap_addr, "0.0.0.0:", 8) == 0)
		snprintf(t->target, sizeof t->target, "127.0.0.1:%lu", port);
	else if (strncmp(s->cfg.oap_addr, "[::]:", 5) == 0)
		snprintf(t->target, sizeof t->target, "[::1]:%lu", port);
	else
		snprintf(t->target, sizeof t->target, "%s", s->cfg.oap_addr);
	return 0;
}

int sup_tor_start(supervisor *s, char *err, size_t errlen)
{
	sup_tor *t = &s->tor;

	if (!s->cfg.tor_enabled)
		return 0;
	snprintf(t->tag, sizeof t->tag, "%s", "starting");
	if (tor_target(s, err, errlen) != 0)
		return -1;
	if (!s->cfg.amnesia && tor_key_load(s, err, errlen) != 0)
		return -1;
	t->retry_ev = evtimer_new(s->base, on_tor_retry, s);
	t->respawn_ev = evtimer_new(s->base, on_tor_respawn, s);
	t->wq = workq_new(1, 4);
	t->wq_ev = t->wq ? event_new(s->base, workq_fd(t->wq), EV_READ | EV_PERSIST, sup_tor_on_wq, s)
	                 : NULL;
	if (!t->retry_ev || !t->respawn_ev || !t->wq_ev || event_add(t->wq_ev, NULL) != 0)
		return util_fail(err, errlen, "cannot set up the tor control session");
	if (s->cfg.tor_launch) {
		/* Absolute: tor resolves relative paths against its own cwd. */
		char rt[PATH_MAX];
		if (!realpath(s->runtime_dir, rt))
			return util_fail(err, errlen, "paths.runtime_dir: %s: %s", s->runtime_dir,
			                 strerror(errno));
		int n = snprintf(t->dir, sizeof t->dir, "%s/%s", rt, TOR_DIR);
		if (n < 0 || (size_t)n >= sizeof t->dir || (size_t)n + 16 > SUP_TOR_SOCK_MAX)
			return util_fail(err, errlen, "paths.runtime_dir: too long for tor's control socket");
		snprintf(t->control, sizeof t->control, "%s/control", t->dir);
		if (tor_write_torrc(s, err, errlen) != 0)
			return -1;
		tor_spawn(s);
	} else {
		snprintf(t->control, sizeof t->control, "%s", s->cfg.tor_control);
	}
	tor_gauges(t);
	tor_session_start(s);
	return 0;
}

void sup_tor_on_wq(evutil_socket_t fd, short what, void *arg)
{
	supervisor *s = arg;

	(void)fd;
	(void)what;
	(void)workq_reap(s->tor.wq);
}

/* At exit (after the loop): the session, our tor (SIGTERM, then SIGKILL
 * past TOR_STOP_MS), the key. */
void sup_tor_free(supervisor *s)
{
	sup_tor *t = &s->tor;

	t->stopping = true;
	torctl_free(t->ctl);
	t->ctl = NULL;
	if (t->pid > 0) {
		int status;
		(void)kill(t->pid, SIGTERM);
		for (unsigned waited = 0; waited < TOR_STOP_MS; waited += 50u) {
			if (waitpid(t->pid, &status, WNOHANG) == t->pid) {
				t->pid = 0;
				break;
			}
			(void)usleep(50000);
		}
		if (t->pid > 0) {
			(void)kill(t->pid, SIGKILL);
			(void)waitpid(t->pid, &status, 0);
			t->pid = 0;
		}
	}
	workq_free(t->wq);
	t->wq = NULL;
	if (t->wq_ev)
		event_free(t->wq_ev);
	if (t->retry_ev)
		event_free(t->retry_ev);
	if (t->respawn_ev)
		event_free(t->respawn_ev);
	t->wq_ev = t->retry_ev = t->respawn_ev = NULL;
	sodium_free(t->key);
	t->key = NULL;
}

#else  /* !MN_TOR: config_validate refuses tor.enabled */

bool sup_tor_reaped(supervisor *s, pid_t pid, int status)
{
	(void)s; (void)pid; (void)status;
	return false;
}

void sup_tor_send(supervisor *s, sup_child *c)
{
	(void)s; (void)c;
}

int sup_tor_start(supervisor *s, char *err, size_t errlen)
{
	(void)err; (void)errlen;
	return s->cfg.tor_enabled ? -1 : 0;
}

void sup_tor_free(supervisor *s)
{
	(void)s;
}
#endif

/* deps.tor of /readyz (NULL when Tor is off): degraded until the onion is
 * added and tor has bootstrapped; never not ready. */
json_t *sup_tor_eval(const supervisor *s, json_t *reasons, ready_verdict *v)
{
	const sup_tor *t = &s->tor;
	const char *state;
	char buf[CONFIG_ERR_MAX + 64];

	if (!s->cfg.tor_enabled)
		return NULL;
	state = !t->up ? "down" : t->bootstrap < 100 ? "bootstrapping" : "up";
	if (!t->up || t->bootstrap < 100) {
		if (!t->up)
			snprintf(buf, sizeof buf, "tor: no control session (%s)",
			         t->last_error[0] ? t->last_error : "starting");
		else
			snprintf(buf, sizeof buf, "tor: bootstrapping (%u%%, %s)", t->bootstrap, t->tag);
		json_array_append_new(reasons, json_string(buf));
		if (*v < READY_DEGRADED)
			*v = READY_DEGRADED;
	}
	return json_pack("{s:s, s:i, s:s, s:s, s:s, s:b, s:b}", "state", state,
	                 "bootstrapped", (int)t->bootstrap, "tag", t->tag, "onion", t->onion,
	                 "last_error", t->last_error, "launched", s->cfg.tor_launch,
	                 "only", s->cfg.tor_only);
}
