/*
 * readiness.c — /readyz and /api/v1/status bodies.
 *
 * Ready means every required dependency holds: config loaded, listeners
 * bound, entropy ≥ READY_MIN_ENTROPY_BITS, every child on the same build as
 * the supervisor (version parity), and every required service serving and
 * not crash-looping. A required service with some workers down is
 * `degraded` (still ready: readiness degrades before it fails). What a
 * dependency a worker reports (CTL_DEPS) does is the role's rule (roles.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/proto/ctl.h"
#include "core/metrics/metrics.h"
#include "lib/util.h"
#include "node/node.h"

#define READY_MIN_ENTROPY_BITS 128

static const char *const verdict_names[] = { "ready", "degraded", "not_ready" };

const char *readiness_name(ready_verdict v)
{
	return verdict_names[v];
}

static void worsen(ready_verdict *v, ready_verdict w)
{
	if (w > *v)
		*v = w;
}

static const char *child_state_name(child_state st)
{
	switch (st) {
	case CHILD_STARTING: return "starting";
	case CHILD_READY:    return "ready";
	case CHILD_DRAINING: return "draining";
	default:             return "down";
	}
}

/* How a reported dependency reads in a reason: "<role>: <pre> N of M workers<post>". */
static const struct {
	const char *pre, *post;
} dep_phrase[CTL_DEP_COUNT] = {
	[CTL_DEP_STORAGE]  = { "storage unreachable from", " (circuit open)" },
	[CTL_DEP_CAPACITY] = { "shedding load on", "" },
	[CTL_DEP_DHT]      = { "DHT not bootstrapped on", "" },
	[CTL_DEP_ZK]       = { "holder proofs unavailable (zk replay table) on", ": holder-bound tokens refused" },
};

/* The workers of one role, counted. */
typedef struct svc_tally {
	unsigned total, up, looping;
	unsigned dep_hit[CTL_DEP_COUNT];   /* serving workers reporting it not up */
	unsigned dep_down[CTL_DEP_COUNT];  /* serving workers reporting it down */
	uint64_t restarts;
} svc_tally;

static void service_tally(const supervisor *s, const role *r, svc_tally *t)
{
	memset(t, 0, sizeof *t);
	for (size_t i = 0; i < s->nchild; i++) {
		const sup_child *c = &s->child[i];
		if (c->role != r)
			continue;
		t->total++;
		t->up += c->state == CHILD_READY;
		t->looping += c->crashloop;
		t->restarts += c->restarts;
		for (size_t d = 0; d < CTL_DEP_COUNT && c->state == CHILD_READY; d++) {
			t->dep_hit[d] += c->dep[d] != CTL_DEP_UP;
			t->dep_down[d] += c->dep[d] == CTL_DEP_DOWN;
		}
	}
}

static void dep_reason(json_t *reasons, const role *r, size_t d, unsigned n, unsigned of)
{
	char buf[160];

	snprintf(buf, sizeof buf, "%s: %s %u of %u workers%s", r->name, dep_phrase[d].pre, n, of,
	         dep_phrase[d].post);
	json_array_append_new(reasons, json_string(buf));
}

/* The first dependency the role cannot serve without that some serving
 * worker reports not up, or CTL_DEP_COUNT. */
static size_t dep_cut_off(const role *r, const svc_tally *t)
{
	for (size_t d = 0; d < CTL_DEP_COUNT; d++)
		if (r->deps[d] == ROLE_DEP_CUTS_OFF && t->dep_hit[d])
			return d;
	return CTL_DEP_COUNT;
}

/* Aggregate the workers of one role into deps.services[role]. */
static void service_eval(supervisor *s, const role *r, json_t *svcs, json_t *reasons,
                         ready_verdict *v)
{
	const char *name = r->name;
	bool required = r->required;
	svc_tally t;
	size_t cut;
	char buf[160];

	service_tally(s, r, &t);
	unsigned total = t.total, up = t.up, looping = t.looping;
	const char *st = "ready";
	if (looping) {
		st = "crashloop";
		snprintf(buf, sizeof buf, "%s: crash-looping (%u of %u workers)", name, looping, total);
		json_array_append_new(reasons, json_string(buf));
		worsen(v, required ? READY_NOT : READY_DEGRADED);
	} else if (up == 0) {
		st = "down";
		snprintf(buf, sizeof buf, "%s: no worker serving", name);
		json_array_append_new(reasons, json_string(buf));
		worsen(v, required ? READY_NOT : READY_DEGRADED);
	} else if ((cut = dep_cut_off(r, &t)) < CTL_DEP_COUNT) {
		/* Serving processes that cannot reach storage cannot serve content. */
		bool all = t.dep_down[cut] == up;
		st = all ? "down" : "degraded";
		dep_reason(reasons, r, cut, t.dep_hit[cut], up);
		worsen(v, all && required ? READY_NOT : READY_DEGRADED);
	} else if (up < total) {
		st = "degraded";
		snprintf(buf, sizeof buf, "%s: %u of %u workers serving", name, up, total);
		json_array_append_new(reasons, json_string(buf));
		worsen(v, READY_DEGRADED);
	}
	for (size_t d = 0; d < CTL_DEP_COUNT; d++) {
		if (r->deps[d] != ROLE_DEP_DEGRADES || !t.dep_hit[d])
			continue;
		/* Still ready: shedding load is the node protecting itself, not failing. */
		if (strcmp(st, "ready") == 0)
			st = "degraded";
		dep_reason(reasons, r, d, t.dep_hit[d], up);
		worsen(v, READY_DEGRADED);
	}
	json_object_set_new(svcs, name, json_pack("{s:s, s:b, s:i, s:i, s:b, s:I}",
		"state", st, "required", (int)required, "workers", (int)total,
		"ready_workers", (int)up, "crashloop", looping > 0, "restarts", (json_int_t)t.restarts));
	snprintf(buf, sizeof buf, "service=\"%s\"", name);
	metrics_gauge_set(metrics_get("service_up", buf), up);
	metrics_gauge_set(metrics_get("service_crashloop", buf), looping > 0);
}

static json_t *parity_eval(supervisor *s, json_t *reasons, ready_verdict *v)
{
	const char *want = ctl_build_id();
	unsigned odd = 0;

	for (size_t i = 0; i < s->nchild; i++) {
		const sup_child *c = &s->child[i];
		if (c->pid > 0 && c->build_id[0] && strcmp(c->build_id, want) != 0)
			odd++;
	}
	if (odd) {
		json_array_append_new(reasons, json_string("version_parity: a child runs another build"));
		worsen(v, READY_NOT);
	}
	return json_pack("{s:s, s:s, s:i}", "state", odd ? "mismatch" : "ok", "build_id", want,
	                 "mismatched", (int)odd);
}

/* Entropy (docs/operations.md "Readiness"): the probe's bits (the model
 * test), else the kernel's, with where the answer came from: entropy_avail,
 * or getrandom(GRND_NONBLOCK) where /proc/sys is hidden (ProcSubset=pid). */
static json_t *entropy_eval(const supervisor *s, json_t *reasons, ready_verdict *v)
{
	int bits;
	const char *source;
	bool ok;

	if (s->entropy_probe) {
		bits = s->entropy_probe();
		source = "probe";
		ok = bits >= READY_MIN_ENTROPY_BITS;
	} else {
		ok = util_entropy_sufficient(READY_MIN_ENTROPY_BITS, &bits, &source);
	}
	if (!ok) {
		json_array_append_new(reasons, json_string("entropy: fewer than 128 bits available"));
		worsen(v, READY_NOT);
	}
	return json_pack("{s:s, s:i, s:s}", "state", ok ? "ok" : "low", "bits", bits,
	                 "source", source);
}

/* No valid policy bundle: the wall denies everything, so the node cannot
 * serve its purpose (fail secure, reported as not ready). */
static json_t *policy_eval_ready(supervisor *s, json_t *reasons, ready_verdict *v)
{
	const sup_policy *p = &s->policy;
	char buf[CONFIG_ERR_MAX + 64];

	if (!roles_want_policy(&s->cfg))
		return json_pack("{s:s}", "state", "unused");
	if (p->fd < 0) {
		snprintf(buf, sizeof buf, "policy: no valid bundle; every public request is denied (%s)",
		         p->last_error[0] ? p->last_error : "none loaded");
		json_array_append_new(reasons, json_string(buf));
		worsen(v, READY_NOT);
	}
	return json_pack("{s:s, s:I, s:s, s:s, s:I, s:I}",
		"state", p->fd >= 0 ? "ok" : "none", "version", (json_int_t)(p->fd >= 0 ? p->version : 0),
		"digest", p->fd >= 0 ? p->digest : "", "last_error", p->last_error,
		"reloads_ok", (json_int_t)p->ok, "reloads_refused", (json_int_t)p->refused);
}

/* deps.dht: what the workers that report on the DHT say (bootstrapped, as
 * CTL_DEP_DHT), and the routing table's size (the dht_routing_nodes gauge).
 * Informational: the role's rule (roles.h) decides what it does to the
 * verdict. NULL (no deps.dht) when no enabled role reports it. */
static json_t *dht_eval(const supervisor *s)
{
	unsigned serving = 0, up = 0;
	uint64_t nodes = metrics_value(metrics_get("dht_routing_nodes", "state=\"good\"")) +
	                 metrics_value(metrics_get("dht_routing_nodes", "state=\"dubious\""));

	for (size_t i = 0; i < s->nchild; i++) {
		const sup_child *c = &s->child[i];
		if (c->role->deps[CTL_DEP_DHT] == ROLE_DEP_IGNORED)
			continue;
		serving += c->state == CHILD_READY;
		up += c->state == CHILD_READY && c->dep[CTL_DEP_DHT] == CTL_DEP_UP;
	}
	for (size_t i = 0; i < roles_count; i++)
		if (roles[i].deps[CTL_DEP_DHT] != ROLE_DEP_IGNORED && role_is_enabled(&roles[i], &s->cfg))
			return json_pack("{s:s, s:b, s:I}", "state", !serving ? "down" : up ? "ok" : "bootstrapping",
			                 "bootstrapped", serving && up == serving, "routing_nodes",
			                 (json_int_t)nodes);
	return NULL;
}

static void set_ready_gauges(ready_verdict v)
{
	for (int i = 0; i < 3; i++) {
		char labels[32];
		snprintf(labels, sizeof labels, "state=\"%s\"", verdict_names[i]);
		metrics_gauge_set(metrics_get("ready_state", labels), (int)v == i);
	}
}

char *readiness_report(supervisor *s, ready_verdict *verdict)
{
	ready_verdict v = READY_OK;
	json_t *reasons = json_array(), *svcs = json_object();

	if (s->draining) {
		json_array_append_new(reasons, json_string("draining: shutting down"));
		v = READY_NOT;
	}
	for (size_t i = 0; i < roles_count; i++) {
		bool present = false;
		for (size_t j = 0; j < s->nchild; j++)
			present |= s->child[j].role == &roles[i];
		if (present)
			service_eval(s, &roles[i], svcs, reasons, &v);
	}
	json_t *deps = json_pack("{s:{s:s, s:s}, s:{s:s, s:s, s:s}, s:o, s:o, s:o, s:o}",
		"config", "state", "ok", "last_reload_error", s->last_reload_error,
		"listeners", "state", "ok", "admin", s->cfg.admin_addr, "gateway",
		roles_listen_enabled(&s->cfg, ROLE_LISTEN_GATEWAY) ? s->cfg.gateway_addr : "",
		"entropy", entropy_eval(s, reasons, &v),
		"version_parity", parity_eval(s, reasons, &v),
		"policy", policy_eval_ready(s, reasons, &v),
		"services", svcs);
	json_t *dht = dht_eval(s);
	if (deps && dht)
		json_object_set_new(deps, "dht", dht);
	else
		json_decref(dht);
	json_t *keys = sup_keys_eval(s, reasons, &v);
	if (deps && keys)
		json_object_set_new(deps, "keys", keys);
	else
		json_decref(keys);
	json_t *tor = sup_tor_eval(s, reasons, &v);
	if (deps && tor)
		json_object_set_new(deps, "tor", tor);
	else
		json_decref(tor);
	json_t *body = json_pack("{s:s, s:b, s:o, s:o}", "status", verdict_names[v],
	                         "ready", v != READY_NOT, "deps", deps, "reasons", reasons);
	char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	set_ready_gauges(v);
	*verdict = v;
	return txt;
}

static json_t *child_json(const sup_child *c, uint64_t now)
{
	return json_pack("{s:s, s:i, s:i, s:s, s:I, s:b, s:b, s:s, s:I}",
		"service", c->role->name, "worker", c->worker, "pid", (int)c->pid,
		"state", child_state_name(c->state), "restarts", (json_int_t)c->restarts,
		"crashloop", c->crashloop, "storage_reachable",
		c->dep[CTL_DEP_STORAGE] != CTL_DEP_DOWN, "build_id", c->build_id,
		"uptime_ms", (json_int_t)(c->pid > 0 ? now - c->started_ms : 0));
}

char *readiness_status(supervisor *s)
{
	uint64_t now = util_now_ms();
	ready_verdict v;
	json_t *kids = json_array();

	free(readiness_report(s, &v));
	for (size_t i = 0; i < s->nchild; i++)
		json_array_append_new(kids, child_json(&s->child[i], now));
	json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:I, s:i, s:b, s:s, s:s, s:s, s:s, s:{s:I, s:I, s:s}, s:o}",
		"version", ctl_build_id(), "node_id", s->identity.id_text, "onion", s->tor.onion,
		"state", readiness_name(v),
		"uptime_ms", (json_int_t)(now - s->start_ms), "pid", (int)getpid(),
		"amnesia", s->cfg.amnesia, "admin_addr", s->cfg.admin_addr,
		"gateway_addr", s->cfg.gateway_addr, "data_dir", s->cfg.data_dir,
		"runtime_dir", s->runtime_dir,
		"reloads", "ok", (json_int_t)s->reloads_ok, "refused", (json_int_t)s->reloads_failed,
		"last_error", s->last_reload_error, "children", kids);
	char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	return txt;
}
