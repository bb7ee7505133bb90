/*
 * svc.h — what every service process shares (after Postfix's
 * multi_server_main): argument parsing, attaching to the supervisor's
 * metrics region, the control channel, signals, the drain deadline, and
 * exit when the supervisor goes away. A service supplies only svc_ops.
 *
 * Life of a service process:
 *   exec'd by the supervisor as `macronode __service ROLE --worker N`
 *   with fds CTL_CHILD_FD, CTL_METRICS_FD and (if it listens) CTL_LISTEN_FD;
 *   sends CTL_HELLO with its build id; gets CTL_POLICY (the verified policy
 *   bundle, or none) and waits for CTL_CONFIG; calls ops->start; sends
 *   CTL_READY. Later CTL_CONFIG messages call ops->reload, later CTL_POLICY
 *   messages ops->policy.
 *   CTL_DRAIN, SIGTERM or the loss of the control channel call ops->drain,
 *   and the process exits 0 when the service reports it is done, or at the
 *   drain deadline.
 *   A malformed or unknown control message is a bug in the supervisor: the
 *   process logs it once and exits SVC_EXIT_PROTOCOL (and is restarted).
 */
#ifndef MN_SVC_SVC_H
#define MN_SVC_SVC_H

#include <stdbool.h>

#include "core/config/config.h"
#include "core/identity/identity.h"
#include "core/proto/ctl.h"

#define SVC_EXIT_PROTOCOL 3   /* a malformed control message was received */

struct policy;
struct svc_sandbox_profile;

struct event_base;
typedef struct svc svc;

typedef struct svc_ops {
	const char *role;
	/* Start serving with s->cfg. 0 or -1 (the process then exits 1). */
	int  (*start)(svc *s);
	/* s->cfg has been replaced by a reloaded config (live keys only differ). */
	void (*reload)(svc *s);
	/* Stop accepting and finish in-flight work; call svc_drained(s) when done. */
	void (*drain)(svc *s);
	/* Release everything (after the loop ends). */
	void (*stop)(svc *s);
	/* s->policy changed (a new verified bundle, or NULL: deny all). The old
	 * one is freed after this returns. Optional. */
	void (*policy)(svc *s);
	/* s->onion changed (CTL_ONION). Optional. */
	void (*onion)(svc *s);
} svc_ops;

struct svc {
	const svc_ops     *ops;
	struct event_base *base;
	mn_config          cfg;
	int                listen_fd;  /* -1 if none */
	int                worker;     /* worker index for multi-process services */
	void              *priv;       /* the service's own state */
	/* The policy bundle the supervisor verified (CTL_POLICY), or NULL when
	 * there is none: the wall then denies everything. Owned here. */
	struct policy     *policy;
	char               policy_digest[CTL_DIGEST_MAX];  /* "b3:<hex>" of the bundle, or "" */
	/* The node identity (CTL_IDENTITY, roles with `identity`), before start;
	 * identity.sk is NULL for the other roles. Owned here, wiped at exit. */
	node_identity      identity;
	/* The KEK (CTL_KEK, roles with `policy`): unseals capability key
	 * files at every wall load. NULL = none. Owned here, wiped at exit. */
	struct kek        *kek;
	/* The node's onion address "<name>.onion:port" (CTL_ONION, roles with
	 * `identity`), or "" while there is none: records put it beside (or,
	 * with tor.only, instead of) the IP address (docs/tor.md). */
	char               onion[CTL_ONION_MAX];
	const struct svc_sandbox_profile *sandbox;  /* the role's profile (static), or NULL */
	bool               sandboxed;  /* svc_sandbox_enter has run */
};

/* Entry point for `macronode __service ROLE ...` with the role's ops and
 * sandbox profile (from the role table, node/roles.h; NULL ops: an unknown
 * role). Returns the exit code. */
int svc_main(const svc_ops *ops, const struct svc_sandbox_profile *sandbox,
             int argc, char **argv);
/* Enter the role's sandbox (svc/svc_sandbox.h) unless sandbox.enabled is
 * false; runs once. svc_main calls it when ops->start returned; a service
 * that starts threads calls it itself first, since Landlock binds only the
 * threads created after it (storage: before its commit pool). 0, or -1: the
 * process cannot be confined as configured and must not serve. */
__attribute__((warn_unused_result))
int svc_sandbox_enter(svc *s);
/* The service has finished draining. */
void svc_drained(svc *s);
/* Tell the supervisor the state of a dependency changed (CTL_DEPS; what it
 * does to readiness is the role's rule). */
void svc_report_dep(svc *s, ctl_dep dep, ctl_dep_state state);

/* May the peer of this accepted UNIX connection call the service? Only
 * processes of the node's own uid may; a refusal is counted
 * (rejected_total{reason="peercred"}) and logged naming the service. */
bool svc_peer_ok(int fd, const char *service);

/* Each service folder's entry points, listed in the role table. */
extern const svc_ops gateway_ops;
extern const svc_ops storage_ops;
extern const svc_ops omnigate_ops;
extern const svc_ops dht_ops;
extern const svc_ops index_ops;
extern const svc_ops overlay_ops;
extern const svc_ops audit_ops;
extern const svc_ops social_ops;
extern const svc_ops mailbox_ops;
extern const svc_ops search_ops;

#endif
