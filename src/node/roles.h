/*
 * roles.h — the table of services (after Postfix's master.cf): one row per
 * service says everything the supervisor, readiness and the policy hand-off
 * need to know about it. The supervisor spawns from the table and names no
 * service in code; a new service is one row here and one folder in src/svc/
 * (with its svc_ops). The table order is the spawn order and the order of
 * the services in /readyz.
 */
#ifndef MN_NODE_ROLES_H
#define MN_NODE_ROLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config/config.h"
#include "core/proto/ctl.h"
#include "svc/svc.h"
#include "svc/svc_sandbox.h"

#define ROLES_MAX              12   /* rows the table may grow to */
#define ROLE_INSTANCES_WORKERS 0u   /* instances: gateway.workers (0 = one per CPU) */
#define ROLE_TIER_FRONT        0    /* drained first: in-flight requests still need... */
#define ROLE_TIER_BACK         1    /* ...the back services, drained once the front exited */
#define ROLE_TIERS             2

/* The TCP listener the supervisor binds for a role (it hands it over as
 * CTL_LISTEN_FD). */
typedef enum {
	ROLE_LISTEN_NONE = 0,
	ROLE_LISTEN_GATEWAY,   /* gateway.addr */
	ROLE_LISTEN_OAP,       /* oap.addr */
} role_listen;

/* What a dependency a worker reports (CTL_DEPS) does to /readyz. */
typedef enum {
	ROLE_DEP_IGNORED = 0,
	ROLE_DEP_CUTS_OFF,   /* not ready when every serving worker has it down, else degraded */
	ROLE_DEP_DEGRADES,   /* degraded while any serving worker reports it not up */
} role_dep_rule;

typedef struct role {
	const char    *name;        /* service name: `__service <name>`, `services` list, labels */
	const svc_ops *ops;         /* the service's entry points (ops->role == name) */
	uint32_t       service_bit; /* CONFIG_SVC_*: enabled when `services` lists it */
	unsigned       instances;   /* fixed count, or ROLE_INSTANCES_WORKERS */
	role_listen    listen;      /* TCP listener it accepts on, if any */
	const char    *socket;      /* UNIX socket it serves in the runtime directory, or NULL */
	bool           required;    /* /readyz is not ready without it */
	role_dep_rule  deps[CTL_DEP_COUNT];
	int            tier;        /* drain order: ROLE_TIER_FRONT first */
	bool           policy;      /* receives the verified policy bundle (CTL_POLICY) */
	bool           identity;    /* receives the node identity (CTL_IDENTITY): signs or pins */
	const svc_sandbox_profile *sandbox; /* what its processes may do once started */
} role;

extern const role   roles[];
extern const size_t roles_count;

/* The row of a service name, or NULL. Borrowed from the static table. */
const role *role_find(const char *name);
bool role_is_enabled(const role *r, const mn_config *cfg);
/* Processes to run for the role under cfg (≥ 1). */
unsigned role_instances(const role *r, const mn_config *cfg);
/* The address its listener binds, or NULL for ROLE_LISTEN_NONE. Borrows cfg. */
const char *role_listen_addr(const role *r, const mn_config *cfg);
/* Some enabled role takes the listener / the policy bundle. */
bool roles_listen_enabled(const mn_config *cfg, role_listen l);
bool roles_want_policy(const mn_config *cfg);

#endif
