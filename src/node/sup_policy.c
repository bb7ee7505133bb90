/*
 * sup_policy.c — the supervisor's hold on the policy bundle.
 *
 * The supervisor alone reads the bundle files: it verifies the signature
 * and the version floor (policy_load_bytes), keeps the verified bytes in a
 * sealed memfd and hands that memfd to every worker whose role takes the
 * policy (roles.h; gateway and omnigate) in CTL_POLICY, now and whenever a
 * worker (re)starts. So all workers enforce
 * exactly the bytes that were verified, and a worker restarted after a crash
 * cannot pick up a file that changed since.
 *
 * On start and on every reload (SIGHUP, POST /api/v1/reload):
 *   bundle file absent        → withdrawn: no policy, every public request
 *                               denied, /readyz not ready ("policy");
 *   bad signature, parse
 *   error or rollback         → refused: the bundle in force (if any) stays;
 *   valid                     → in force at once, in every worker.
 * Each outcome is counted (policy_reloads_total{result}) and audited.
 *
 * The version floor (the highest version accepted) survives restarts in
 * <data_dir>/policy-floor, so an old signed bundle cannot be replayed by
 * restarting the node; in amnesia mode it lives in memory only. A floor file
 * that cannot be parsed refuses every bundle until the operator fixes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/proto/ctl.h"
#include "core/metrics/metrics.h"
#include "core/auth/policy.h"
#include "lib/b3.h"
#include "lib/log.h"
#include "lib/util.h"
#include "core/audit/audit_client.h"
#include "node/node.h"

#define POLICY_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)
#define POLICY_FLOOR_FILE "policy-floor"

static int floor_path(const supervisor *s, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/%s", s->cfg.data_dir, POLICY_FLOOR_FILE);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Read the persisted floor. 0 when absent; -1 (err) when unusable. */
static int floor_load(supervisor *s, char *err, size_t errlen)
{
	char path[CONFIG_PATH_MAX + 32], *text = NULL;
	size_t len = 0;
	uint64_t v;

	if (s->cfg.amnesia || floor_path(s, path, sizeof path) != 0)
		return 0;
	if (util_read_file(path, 64, &text, &len) != 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%.400s: cannot read the policy version floor: %s", path,
		         strerror(errno));
		return -1;
	}
	if (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	int rc = util_parse_u64(text, &v);
	free(text);
	if (rc != 0) {
		snprintf(err, errlen, "%.400s: not a version number; fix or remove it (it guards "
		         "against policy rollback)", path);
		return -1;
	}
	if (v > s->policy.floor)
		s->policy.floor = v;
	return 0;
}

/* Persist a raised floor (util_write_atomic: a crash leaves the old floor or the new). */
static void floor_store(supervisor *s)
{
	char path[CONFIG_PATH_MAX + 32], body[32];

	if (s->cfg.amnesia || floor_path(s, path, sizeof path) != 0)
		return;
	int n = snprintf(body, sizeof body, "%llu\n", (unsigned long long)s->policy.floor);
	if (util_write_atomic(path, body, (size_t)n, 0600, 0) != UTIL_WRITE_OK)
		log_kv(LOG_LEVEL_ERROR, "cannot persist the policy version floor; rollback across a "
		       "restart is not prevented", "file", path, "error", strerror(errno), LOG_END);
}

static int sealed_copy(const char *buf, size_t len)
{
	int fd = memfd_create("mn-policy", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -1;
	if (util_write_all(fd, buf, len) != 0 || fcntl(fd, F_ADD_SEALS, POLICY_SEALS) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

void sup_policy_send(supervisor *s, sup_child *c)
{
	const sup_policy *p = &s->policy;
	ctl_policy m = { .present = p->fd >= 0, .version = p->version, .fd = p->fd };

	if (c->ctl_fd < 0 || !c->role->policy)
		return;
	snprintf(m.digest, sizeof m.digest, "%s", p->digest);
	if (ctl_compose_policy(c->ctl_fd, &m) != 0)
		log_kv(LOG_LEVEL_WARN, "cannot send policy to child", "role", c->role->name, LOG_END);
}

static void broadcast(supervisor *s)
{
	for (size_t i = 0; i < s->nchild; i++)
		sup_policy_send(s, &s->child[i]);
	metrics_gauge_set(metrics_get("policy_version", ""), s->policy.fd >= 0 ? s->policy.version : 0);
}

static void audit(supervisor *s, const char *result, const char *why, const sup_policy *p,
                  const char *err)
{
	char ver[24];

	audit_emit(s->audit, "policy", "policy_load", result, json_pack("{s:s}", "trigger", why), NULL,
	           p->fd >= 0 ? json_pack("{s:I, s:s, s:s}", "version", (json_int_t)p->version,
	                                  "digest", p->digest, "error", err ? err : "")
	                      : json_pack("{s:s}", "error", err ? err : ""));
	snprintf(ver, sizeof ver, "%llu", (unsigned long long)p->version);
	log_kv(err ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, "audit", "kind", "policy_reload",
	       "result", result, "trigger", why, "version", p->fd >= 0 ? ver : "-",
	       "digest", p->fd >= 0 ? p->digest : "-", "error", err ? err : "", LOG_END);
	char labels[48];
	snprintf(labels, sizeof labels, "result=\"%s\"", result);
	metrics_count("policy_reloads_total", labels, 1);
}

/* Send the state in force to the workers when it changed, and always the
 * first time (the gauge and the workers must hear "none" too). */
static void announce(supervisor *s, bool changed)
{
	if (changed || !s->policy.announced)
		broadcast(s);
	s->policy.announced = true;
}

/* A bundle (or the floor) was refused: what is in force stays. */
static int refuse(supervisor *s, const char *why, const char *err)
{
	sup_policy *p = &s->policy;

	snprintf(p->last_error, sizeof p->last_error, "%s", err);
	p->refused++;
	audit(s, "refused", why, p, err);
	announce(s, false);
	return -1;
}

static void withdraw(supervisor *s, const char *why, const char *path)
{
	sup_policy *p = &s->policy;
	bool had = p->fd >= 0;

	if (had)
		close(p->fd);
	p->fd = -1;
	/* Truncation is harmless here: a long path still names the file. */
	int n = snprintf(p->last_error, sizeof p->last_error, "%.400s: no such file", path);
	(void)n;
	audit(s, "withdrawn", why, p, p->last_error);
	announce(s, had);
}

int sup_policy_refresh(supervisor *s, const char *why, char *err, size_t errlen)
{
	sup_policy *p = &s->policy;
	char bundle[CONFIG_PATH_MAX], pub[CONFIG_PATH_MAX];
	policy *pol = NULL;
	char *bytes = NULL;
	size_t len = 0;
	struct stat st;

	if (!roles_want_policy(&s->cfg))
		return 0;
	if (!p->floor_loaded) {
		if (floor_load(s, err, errlen) != 0)
			return refuse(s, why, err);
		p->floor_loaded = true;
	}
	if (config_policy_file(&s->cfg, bundle, sizeof bundle) != 0 ||
	    config_policy_pubkey(&s->cfg, pub, sizeof pub) != 0) {
		snprintf(err, errlen, "policy.bundle_file: path too long");
		return -1;
	}
	if (stat(bundle, &st) != 0 && errno == ENOENT) {
		withdraw(s, why, bundle);
		return 0;
	}
	if (policy_load_bytes(bundle, pub, p->floor, &pol, &bytes, &len, err, errlen) != 0)
		return refuse(s, why, err);
	uint8_t d[B3_OUT_LEN];
	char cid[B3_CID_LEN + 1];
	b3_hash(bytes, len, d);
	b3_cid_format(d, cid);
	int fd = sealed_copy(bytes, len);
	int e = errno;
	uint64_t version = policy_version(pol);
	free(bytes);
	policy_free(pol);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot create the policy memfd: %s", bundle, strerror(e));
		return refuse(s, why, err);
	}
	bool same = p->fd >= 0 && strcmp(p->digest, cid) == 0;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = fd;
	p->version = version;
	if (version > p->floor) {
		p->floor = version;
		floor_store(s);
	}
	p->loaded_ms = util_now_ms();
	p->ok++;
	p->last_error[0] = '\0';
	snprintf(p->digest, sizeof p->digest, "%s", cid);
	audit(s, same ? "unchanged" : "ok", why, p, NULL);
	announce(s, !same);
	return 0;
}

void sup_policy_free(supervisor *s)
{
	if (s->policy.fd >= 0)
		close(s->policy.fd);
	s->policy.fd = -1;
}
