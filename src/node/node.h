/*
 * node.h — macronode itself: the supervisor, its admin plane, readiness and
 * the CLI. The supervisor composes services and holds no service logic.
 */
#ifndef MN_NODE_NODE_H
#define MN_NODE_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/auth/captoken.h"
#include "core/config/config.h"
#include "core/dht/dht_client.h"
#include "core/identity/identity.h"
#include "core/keys/kek.h"
#include "core/proto/ctl.h"
#include "lib/backoff.h"
#include "node/roles.h"
#include "node/sdnotify.h"

struct event;
struct event_base;
struct dht_client;
struct audit_client;
struct http_server;
struct metrics_series;

#define NODE_MAX_OVERRIDES  16
#define NODE_MAX_CHILDREN   64
#define NODE_HARD_DRAIN_MS  5000u  /* canon: drain never exceeds 5 s */
#define NODE_BUILD_ID_MAX   CTL_BUILD_ID_MAX
#define NODE_DEFAULT_CONFIG_NAME "embedded default"
#define NODE_STORAGE_SOCKET "storage.sock"   /* in the runtime directory */
#define NODE_DHT_SOCKET     DHT_SOCKET       /* core/dht/dht_client.h */
#define NODE_INDEX_SOCKET   "index.sock"     /* INDEX_SOCK (core/dht/index_client.h) */
#define NODE_SOCIAL_SOCKET  "social.sock"    /* SOCIAL_SOCK (core/social/social_client.h) */
#define NODE_MAILBOX_SOCKET "mailbox.sock"   /* MB_SOCK (core/mailbox/mb_client.h) */

/* A config key set on the command line; re-applied on every reload. */
typedef struct node_override {
	const char *key;
	const char *value;
} node_override;

typedef struct node_opts {
	const char   *config_path;          /* NULL = embedded defaults (+ RON_CONFIG) */
	node_override ov[NODE_MAX_OVERRIDES];
	size_t        nov;
	const config_env_kept *kept;        /* secrets `run` took from the environment, or NULL */
} node_opts;

/* defaults → file → RON_* env → flags → validate. err names file/key/variable. */
__attribute__((warn_unused_result))
int node_load_config(const node_opts *o, mn_config *out, char *err, size_t errlen);

typedef enum {
	CHILD_IDLE = 0,    /* not started (or waiting in backoff) */
	CHILD_STARTING,    /* forked; no READY yet */
	CHILD_READY,       /* serving */
	CHILD_DRAINING,
} child_state;

typedef struct sup_child {
	const role   *role;           /* its row in the role table (static) */
	int           worker;
	int           listen_fd;      /* borrowed from the supervisor, or -1 */
	pid_t         pid;            /* 0 when not running */
	int           ctl_fd;         /* supervisor end, -1 when not running */
	struct event *ctl_ev;
	struct event *restart_ev;
	child_state   state;
	unsigned      attempt;        /* consecutive failures to reach READY */
	crashwin      crashes;
	bool          crashloop;
	uint8_t       dep[CTL_DEP_COUNT]; /* ctl_dep_state last reported (CTL_DEPS); UP at spawn */
	uint64_t      started_ms, ready_ms, exited_ms;
	uint64_t      restarts;
	int           last_status;    /* wait status of the last exit */
	char          build_id[NODE_BUILD_ID_MAX];
	struct supervisor *sup;
} sup_child;

/* The policy bundle in force (sup_policy.c). */
typedef struct sup_policy {
	int      fd;             /* sealed memfd of the verified bundle; -1: none (deny all) */
	uint64_t version;        /* of the bundle in force */
	uint64_t floor;          /* highest version accepted so far: lower ones are rollbacks */
	char     digest[CTL_DIGEST_MAX]; /* "b3:<hex>" of the bundle bytes */
	char     last_error[CONFIG_ERR_MAX];
	uint64_t loaded_ms, ok, refused;
	bool     announced;      /* the state has been sent (gauge, children) at least once */
	bool     floor_loaded;   /* <data_dir>/policy-floor has been read */
} sup_policy;

/* Capability key ages, read from the key files at start and reload
 * (sup_keys.c): /readyz and key_age_seconds{kid} use them. */
typedef struct sup_keys {
	size_t  n;
	int     mint;                                   /* index, -1: none */
	char    kid[CAPTOKEN_MAX_KEYS][CAPTOKEN_MAX_KID + 1];
	int64_t created_ms[CAPTOKEN_MAX_KEYS];          /* unix ms */
} sup_keys;

/* The Tor transport (sup_tor.c; docs/tor.md). */
#define SUP_TOR_TIMEOUT_MS  5000u   /* control connect and each reply */
#define SUP_TOR_POLL_MS     2000u   /* between bootstrap polls */
#define SUP_TOR_SOCK_MAX    108u    /* sun_path: the launched tor's control socket */
typedef struct sup_tor {
	struct torctl *ctl;             /* the control session, NULL between sessions */
	struct event  *retry_ev;        /* the next session, after backoff */
	struct event  *respawn_ev;      /* the launched tor's restart, after backoff */
	struct event  *wq_ev;
	struct workq  *wq;              /* onion.hostname writes, off the loop */
	unsigned       attempt;         /* sessions failed since the last good one */
	unsigned       spawn_attempt;
	pid_t          pid;             /* the launched tor, 0 = none */
	uint64_t       spawned_ms;
	bool           stopping;
	bool           up;              /* authenticated and the onion added */
	unsigned       bootstrap;       /* tor's PROGRESS, 0..100 */
	char           tag[64];         /* tor's bootstrap TAG, or our words */
	uint8_t       *key;             /* onion key in sodium memory; NULL in amnesia */
	uint16_t       virt_port;
	char           target[CONFIG_ADDR_MAX];
	char           control[CONFIG_PATH_MAX];
	char           dir[CONFIG_PATH_MAX - 64];     /* <runtime_dir>/tor (tor.launch) */
	char           onion[CTL_ONION_MAX];          /* "<name>.onion:port" or "" */
	char           last_error[CONFIG_ERR_MAX];
} sup_tor;

typedef struct supervisor {
	struct event_base  *base;
	node_opts           opts;
	mn_config           cfg;
	char                exe[1024];       /* binary re-exec'd for children */
	char                runtime_dir[CONFIG_PATH_MAX];
	bool                own_runtime_dir; /* amnesia: removed at exit */
	int                 admin_fd, metrics_fd;
	int                 role_fd[ROLES_MAX]; /* listener or socket of roles[i], or -1 */
	/* A TCP role with several processes: one listener each, in one
	 * SO_REUSEPORT group (role_fd[i] is then -1); -1 when unused. */
	int                 group_fd[ROLES_MAX][NODE_MAX_CHILDREN];
	struct http_server *admin;
	struct tls_server  *admin_tls;   /* admin.tls: the admin plane's TLS context, else NULL */
	sup_child           child[NODE_MAX_CHILDREN];
	size_t              nchild;
	struct event       *sig_ev[4];
	struct event       *drain_ev, *hard_ev, *tick_ev;
	sd_state            sd;         /* systemd notifications (sdnotify.h) */
	bool                draining;
	/* Entropy in bits, -1 while the CSPRNG is not ready; NULL = the kernel's
	 * (util_entropy_*). The readiness model test walks states with a probe. */
	int               (*entropy_probe)(void);
	int                 drain_tier;      /* tier being drained now (ROLE_TIER_*) */
	uint64_t            protocol_faults; /* children killed for a malformed message */
	uint64_t            start_ms, start_wall_ms;
	uint64_t            reloads_ok, reloads_failed;
	char                last_reload_error[CONFIG_ERR_MAX];
	sup_policy          policy;
	node_identity       identity;        /* loaded or made at start (core/identity) */
	struct {
		bool            drop;            /* started as root: become uid/gid after binding */
		uid_t           uid;
		gid_t           gid;
	} privs;                             /* node.user (sup_privs.c) */
	struct dht_client  *admin_dht;       /* admin plane's dht client (admin_find.c), made on first use */
	unsigned            admin_finds;     /* provider lookups in flight (≤ ADMIN_FIND_MAX) */
	kek                *kek;             /* sealed key files; NULL = none (amnesia) */
	sup_keys            keys;
	/* The supervisor's audit client (core/audit/audit_client.h): admin,
	 * policy, keys and supervisor records. NULL without the audit service. */
	struct audit_client *audit;
	unsigned            admin_audits;    /* audit queries in flight (≤ ADMIN_AUDIT_MAX) */
	char                keys_audited[CAPTOKEN_MAX_KEYS * (CAPTOKEN_MAX_KID + 1) + 8];
	sup_tor             tor;
	int                 exit_code;
} supervisor;

/* Policy (sup_policy.c): verify the bundle files and hand the result to the
 * workers. -1 with err when a bundle was refused (the old one stays). */
__attribute__((warn_unused_result))
int sup_policy_refresh(supervisor *s, const char *why, char *err, size_t errlen);
void sup_policy_send(supervisor *s, sup_child *c);
void sup_policy_free(supervisor *s);

/* `macronode run`: returns the process exit code. Takes ownership of cfg's secrets. */
int supervisor_run(const node_opts *o, mn_config *cfg);
/* Re-read config; apply live keys or refuse. 0 or -1 with err. */
int supervisor_reload(supervisor *s, const char *why, char *err, size_t errlen);
/* Begin graceful drain and exit. */
void supervisor_shutdown(supervisor *s, const char *why);

/* Admin plane (admin.c). */
__attribute__((warn_unused_result)) int admin_start(supervisor *s);
void admin_apply_limits(supervisor *s);
/* admin.tls: the certificate pair again after a reload (the old context
 * stays on error, logged). */
void admin_tls_reload(supervisor *s);
struct http_req;
/* GET /api/v1/providers/b3:<hex> (admin_find.c; arg: the supervisor). */
void admin_on_providers(struct http_req *r, void *arg);
/* GET /api/v1/audit/checkpoint, /proof and /recent (admin_audit.c). */
void admin_on_audit_checkpoint(struct http_req *r, void *arg);
void admin_on_audit_proof(struct http_req *r, void *arg);
void admin_on_audit_recent(struct http_req *r, void *arg);
/* The web console (admin_ui.c): GET /ui, /ui/… (arg: the supervisor). */
void admin_ui_on_request(struct http_req *r, void *arg);
/* May a browser page of this Origin (NULL: none sent) call the admin POST
 * routes when no admin token is configured? Only the admin plane's own. */
bool admin_ui_origin_ok(const supervisor *s, const char *origin);

/* Readiness (readiness.c): JSON body of /readyz (caller frees) and the verdict. */
typedef enum { READY_OK = 0, READY_DEGRADED, READY_NOT } ready_verdict;
char *readiness_report(supervisor *s, ready_verdict *verdict);
const char *readiness_name(ready_verdict v);
/* JSON of /api/v1/status (caller frees). */
/* Post-quantum posture for /version and `check`: false, and why, in
 * reason (sup_keys.c). */
#define NODE_PQ_REASON_MAX 320
bool node_pq_posture(char *reason, size_t len);

/* Keys at rest (sup_keys.c): find or create the KEK at start (0, or -1
 * with err); re-read key ages; set key_age_seconds; judge keys.max_age. */
__attribute__((warn_unused_result))
int sup_keys_kek(supervisor *s, char *err, size_t errlen);

/* sup_privs.c: root → node.user. resolve before binding (refuses root
 * without node.allow_root), drop once the TCP listeners are bound. 0/-1. */
int sup_privs_resolve(supervisor *s, char *err, size_t errlen);
int sup_privs_drop(supervisor *s, char *err, size_t errlen);
/* With zk.enabled: the ZK parameter pin must match this build's bundle
 * (zk_param_mismatch, counted). 0 or -1 with err naming the key. */
__attribute__((warn_unused_result))
int node_zk_pin_check(const mn_config *c, const kek *k, char *err, size_t errlen);
void sup_keys_scan(supervisor *s);
void sup_keys_gauges(const supervisor *s);
struct json_t;
struct json_t *sup_keys_eval(const supervisor *s, struct json_t *reasons, ready_verdict *v);
/* Tor (sup_tor.c): start the session (and our tor), the onion to a child,
 * a reaped pid that was our tor (true), deps.tor, teardown. */
__attribute__((warn_unused_result))
int  sup_tor_start(supervisor *s, char *err, size_t errlen);
void sup_tor_send(supervisor *s, sup_child *c);
bool sup_tor_reaped(supervisor *s, pid_t pid, int status);
struct json_t *sup_tor_eval(const supervisor *s, struct json_t *reasons, ready_verdict *v);
void sup_tor_free(supervisor *s);
void sup_tor_on_wq(int fd, short what, void *arg);
char *readiness_status(supervisor *s);

/* CLI (cli.c): main dispatch. */
int cli_main(int argc, char **argv);
/* No core file, not dumpable: every process may hold a secret (cli.c). */
void cli_harden_process(void);
/* `macronode doctor`. */
int doctor_run(const mn_config *cfg);
/* `macronode policy keygen|sign|verify|eval` (policy_cli.c). */
int policy_cli_main(int argc, char **argv);
/* `macronode token mint|attenuate|inspect` (token_cli.c). */
int token_cli_main(int argc, char **argv);
/* `macronode zk keygen|params|pin|prove` (cli/zk_cli.c, docs/zk.md). */
int zk_cli_main(int argc, char **argv);
/* The holder public key of `--holder-key FILE`: FILE.pub, or FILE when it
 * ends in .pub. 0, or -1 with err naming the file. */
__attribute__((warn_unused_result))
int zk_cli_read_public(const char *file, uint8_t pk[32], char *err, size_t errlen);
/* A Ron-Proof (ZK_PROOF_TEXT_MAX characters + NUL) with the secret in
 * keyfile for one request, timestamped now. 0, or -1 with err (also in a
 * build without ZK). */
__attribute__((warn_unused_result))
int zk_cli_proof(const char *keyfile, const char *method, const char *path, const char *aud,
                 const uint8_t body[32], char *out, char *err, size_t errlen);
/* `macronode init`: first-run keys, signed default policy, one write token. */
int init_cli_main(int argc, char **argv);
/* `macronode key ...` (cli/key_cli.c). */
int key_cli_main(int argc, char **argv);
/* The KEK for a CLI command, as `run` finds it (cli/key_cli.c). obtain:
 * from c, created beside the data dir when create and none is configured
 * (*created says so; path gets where); NULL after printing why. lookup:
 * from RON_CONFIG and RON_*; NULL with *failed false when there is none
 * (clear-text key files still load), NULL with *failed true after printing
 * why a KEK file is refused. */
kek *cli_kek_obtain(const mn_config *c, const char *prog, bool create, bool *created,
                    char *path, size_t pathlen);
kek *cli_kek_lookup(const char *prog, bool *failed);
/* cli_kek_lookup with the caller's config. */
kek *cli_kek_from(const mn_config *c, const char *prog, bool *failed);
/* `macronode peers` / `macronode find b3:CID` (dht_cli.c): ask the running
 * node's dht service. Exit codes: 0, 1 (no answer, none found), 2 (usage). */
int dht_cli_peers(const mn_config *cfg);
int dht_cli_find(const mn_config *cfg, const char *cid);
/* `macronode name publish|resolve` (cli/name_cli.c). */
int name_cli_main(int argc, char **argv);
/* `macronode audit verify|tail|pubkey` (cli/audit_cli.c) and its hidden test
 * helper `audit selftest-write` (cli/audit_selftest.c). */
int audit_cli_main(int argc, char **argv);
int audit_selftest_write(int argc, char **argv);

#endif
