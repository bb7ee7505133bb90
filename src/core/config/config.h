/*
 * config.h — the node's configuration model.
 *
 * Every key is declared once in the table in config.c (key path, type,
 * default, range, reload class, env var, secret flag, help). Parsing of the
 * JSON file, environment overrides, CLI overrides, validation, `config print`
 * and docs/config.md are all driven by that table.
 *
 * Precedence: defaults < JSON file < RON_* environment < command-line flags.
 *
 * The JSON file is strict: an unknown key is an error naming its full path
 * (e.g. "limits.max_bodyy"); a wrong type or out-of-range value names the key,
 * the expected type/range, and the file. Durations are strings like "5s",
 * "250ms", "1m"; sizes like "1MiB", "512KiB", "65536" (bare integer = bytes).
 *
 * Ownership: mn_config is a plain value type with fixed-size fields except
 * admin_token, which lives in sodium secure memory; call config_free() to wipe
 * and release it. config_copy() duplicates including the secret.
 */
#ifndef MN_CORE_CONFIG_H
#define MN_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/log.h"

#define CONFIG_ADDR_MAX   128
#define CONFIG_PATH_MAX   1024
#define CONFIG_ERR_MAX    512
#define CONFIG_TEXT_MAX   256         /* short free-text keys: audience, region, tag lists */
#define CONFIG_TAG_MAX    64          /* bytes of one policy tag */
#define CONFIG_TAGS_MAX   16          /* tags per route class */
#define CONFIG_TOKEN_MAX  256
#define CONFIG_TOKEN_MIN  16          /* shorter admin tokens are refused */
#define CONFIG_KEY_MAX    64          /* longest dotted key path */
#define CONFIG_FILE_MAX   (1u << 20)  /* a config file larger than 1 MiB is refused */
#define CONFIG_ADDR_LIST_N   16       /* addresses in one address list (dht.bootstrap) */
#define CONFIG_ADDR_LIST_MAX (CONFIG_ADDR_LIST_N * 48)  /* bytes of the list, comma-joined */
#define CONFIG_ORIGIN_LIST_N   16     /* origins in gateway.cors_origins */
#define CONFIG_ORIGIN_MAX      128    /* bytes of one origin, "https://host:port" */
#define CONFIG_ORIGIN_LIST_MAX (CONFIG_ORIGIN_LIST_N * 64)  /* bytes of the list, comma-joined */

/* Services the supervisor knows how to run. Bit flags in mn_config.services. */
enum {
	CONFIG_SVC_GATEWAY = 1u << 0,
	CONFIG_SVC_STORAGE = 1u << 1,
	CONFIG_SVC_OMNIGATE = 1u << 2,
	CONFIG_SVC_DHT = 1u << 3,
	CONFIG_SVC_INDEX = 1u << 4,
	CONFIG_SVC_OVERLAY = 1u << 5,
	CONFIG_SVC_AUDIT = 1u << 6,
	/* issue 17: reserved for the mailbox, social (graph, feed) and search services */
	CONFIG_SVC_MAILBOX = 1u << 7,
	CONFIG_SVC_SOCIAL = 1u << 8,
	CONFIG_SVC_SEARCH = 1u << 9,
};

typedef struct mn_config {
	/* admin plane */
	char     admin_addr[CONFIG_ADDR_MAX];      /* "127.0.0.1:9600" */
	char     admin_token_file[CONFIG_PATH_MAX];/* "" = none */
	bool     admin_tls;                        /* admin plane over TLS 1.3 (tls.cert_file) */
	char     admin_client_ca_file[CONFIG_PATH_MAX]; /* admin mTLS CA; "" = none */
	char    *admin_token;                      /* secure memory or NULL; never printed */
	/* gateway */
	char     gateway_addr[CONFIG_ADDR_MAX];    /* "127.0.0.1:9080" */
	uint32_t gateway_workers;                  /* 0 = number of CPUs */
	bool     gateway_allow_plaintext;          /* plaintext on a non-loopback address */
	uint64_t gateway_verified_cache;           /* bytes of verified groups kept per serving process */
	uint32_t gateway_max_ranges;               /* 16 ranges per GET; more → 416 */
	char     gateway_cors_origins[CONFIG_ORIGIN_LIST_MAX]; /* "https://a,http://b:8080"; "" = none */
	/* HTTP/2 on TLS listeners (core/net/http_h2.c; docs/http2.md) */
	bool     h2_enabled;                       /* offer h2 by ALPN */
	uint32_t h2_max_streams;                   /* SETTINGS_MAX_CONCURRENT_STREAMS, 100 */
	uint64_t h2_stream_window;                 /* 256 KiB */
	uint64_t h2_conn_window;                   /* 1 MiB */
	uint32_t h2_requests_per_s;                /* streams a connection may open per second, 4000 */
	uint32_t h2_control_per_s;                 /* control frames per second per connection, 200 */
	/* omnigate (OAP/1 over TLS) */
	char     oap_addr[CONFIG_ADDR_MAX];        /* "127.0.0.1:9443" */
	uint32_t oap_max_inflight;                 /* 64 streams per connection */
	/* storage */
	uint32_t storage_replicas;                 /* 3: nodes holding each object */
	uint64_t storage_max_object_bytes;         /* 1 MiB: largest object accepted */
	uint32_t storage_max_uploads;              /* 64: uploads open at once */
	uint32_t storage_max_uploads_per_tenant;   /* 16 of them per tenant; 0 = no share */
	uint32_t storage_max_uploads_per_peer;     /* 16 of them per client address; 0 = no share */
	uint64_t storage_cache_bytes;              /* 1 GiB: cache copies kept (fetched on a miss) */
	/* index (names; docs/names.md) */
	uint32_t index_max_names;                  /* 65536 names held at most */
	uint32_t index_history;                    /* 8 records kept per name */
	/* social (graph, feed; docs/social.md) */
	uint32_t social_max_following;             /* 5000 users one user may follow */
	uint32_t social_page_max;                  /* 100: largest ?limit= of a page */
	uint32_t social_fanout_batch;              /* 1000 feeds written per fanout turn */
	uint32_t social_max_jobs;                  /* 1024 posts fanning out at once; more: 503 */
	uint32_t social_feed_max;                  /* 1000 entries kept per feed (the newest) */
	uint64_t social_max_bytes;                 /* 1 GiB: the social table's map */
	/* mailbox (docs/mailbox.md) */
	uint32_t mailbox_max_deliveries;           /* 5 deliveries, then the DLQ */
	uint64_t mailbox_max_body;                 /* 64 KiB (MB_BODY_MAX) */
	uint32_t mailbox_quota_count;              /* 10000 messages per recipient */
	uint64_t mailbox_quota_bytes;              /* 64 MiB per recipient */
	uint32_t mailbox_max_messages;             /* 1000000 in all */
	uint64_t mailbox_max_bytes;                /* 4 GiB in all */
	uint64_t mailbox_lease_default_ms;         /* 30 s */
	uint64_t mailbox_lease_max_ms;             /* 12 h */
	uint64_t mailbox_nack_backoff_ms;          /* 1 s, doubling per delivery */
	uint64_t mailbox_nack_backoff_max_ms;      /* 5 min */
	uint64_t mailbox_idempotency_window_ms;    /* 24 h */
	uint32_t mailbox_max_idempotency_keys;     /* 1000000 */
	uint64_t search_max_text;                  /* 16 KiB of a text object indexed */
	uint64_t search_deadline_ms;               /* 100 ms per query, then partial */
	uint32_t search_queue;                     /* 4096 documents waiting to be indexed */
	uint32_t search_max_queries;               /* 64 queries waiting or running */
	uint32_t search_max_limit;                 /* 50 hits per answer at most */
	uint32_t search_max_query;                 /* 256 bytes of q */
	uint32_t search_readers;                   /* 2 query threads (disk) */
	uint64_t search_sweep_interval_ms;         /* 10 min between catch-ups from storage; 0 off */
	/* paths */
	char     data_dir[CONFIG_PATH_MAX];        /* "./var" */
	char     runtime_dir[CONFIG_PATH_MAX];     /* "" = <data_dir>/run */
	/* logging */
	log_level  log_level;
	log_format log_format;
	/* timeouts, milliseconds */
	uint64_t read_timeout_ms;                  /* 5000 */
	uint64_t write_timeout_ms;                 /* 5000 */
	uint64_t idle_timeout_ms;                  /* 60000 */
	uint64_t header_timeout_ms;                /* 5000: whole header block (slow-loris) */
	uint64_t body_grace_ms;                    /* 5000: before limits.min_body_rate applies */
	uint64_t drain_deadline_ms;                /* 3000 (hard limit 5000) */
	/* limits */
	uint64_t max_body_bytes;                   /* 128 KiB: every body but an object upload's */
	uint64_t max_header_bytes;                 /* 16 KiB */
	uint32_t max_inflight;                     /* 512 per instance */
	uint32_t requests_per_second;              /* 500 per instance */
	uint32_t max_connections;                  /* 1024 per instance */
	uint64_t memory_budget;                    /* 128 MiB of queued responses per instance */
	uint64_t min_body_rate;                    /* 1 KiB/s average of every body; 0 = off */
	/* services and modes */
	uint32_t services;                         /* CONFIG_SVC_* bits; default gateway */
	bool     amnesia;
	bool     sandbox_enabled;                  /* Landlock + seccomp per role (svc/svc_sandbox.c) */
	/* TLS (core/tls.c; docs/operations.md) */
	char     tls_cert_file[CONFIG_PATH_MAX];
	char     tls_key_file[CONFIG_PATH_MAX];
	char     tls_client_ca_file[CONFIG_PATH_MAX];
	char     tls_cert_pin[80];                 /* "" or "b3:<hex>" of the cert file */
	uint64_t tls_handshake_timeout_ms;         /* 5000 */
	/* the wall (docs/auth.md, docs/policy.md): "" paths resolve under data_dir */
	char     identity_file[CONFIG_PATH_MAX];   /* "" = <data_dir>/node/identity.key */
	/* keys at rest (docs/keys.md) */
	char     keys_kek_file[CONFIG_PATH_MAX];   /* "" = credentials dir, else <data_dir>.kek */
	uint64_t keys_grace_ms;                    /* 7d: a rotated-out key still verifies */
	uint64_t keys_max_age_ms;                  /* 30d: /readyz degraded past it */
	/* holder-key proofs (docs/zk.md) */
	bool     zk_enabled;                       /* needs a -Dzk=enabled build */
	uint64_t zk_skew_ms;                       /* a proof's timestamp within ± this */
	uint32_t zk_replay_cache;                  /* proofs remembered node-wide */
	char     zk_params_pin_file[CONFIG_PATH_MAX]; /* "" = <data_dir>/zk/params.pin */
	char     auth_keys_dir[CONFIG_PATH_MAX];   /* "" = <data_dir>/auth/keys */
	char     auth_audience[CONFIG_TEXT_MAX];   /* "" = a token with an Aud caveat is refused */
	char     auth_mtls_tenants_file[CONFIG_PATH_MAX]; /* "" = client certificates name no tenant */
	char     node_region[CONFIG_TEXT_MAX];     /* policy context "region"; "" = none */
	char     node_user[CONFIG_TEXT_MAX];       /* started as root: run as this user */
	bool     node_allow_root;                  /* started as root: may stay root */
	char     policy_bundle_file[CONFIG_PATH_MAX]; /* "" = <data_dir>/policy/policy.json */
	char     policy_pubkey_file[CONFIG_PATH_MAX]; /* "" = <data_dir>/policy/signing.pub */
	char     policy_tags_core[CONFIG_TEXT_MAX];   /* comma-separated tags of core routes */
	char     policy_tags_facet[CONFIG_TEXT_MAX];  /* ... of facet routes */
	uint32_t quota_rps;                        /* per tenant, node-wide; 0 = no cap */
	uint32_t quota_burst;
	uint64_t quota_bytes_per_s;                /* request body bytes; 0 = no cap */
	uint64_t quota_bytes_burst;
	uint32_t quota_max_tenants;                /* buckets kept node-wide (LRU per group) */
	/* dht (svc/dht; docs/network.md) */
	char     dht_addr[CONFIG_ADDR_MAX];        /* UDP "127.0.0.1:4222" */
	char     dht_bootstrap[CONFIG_ADDR_LIST_MAX]; /* "ip:port,ip:port"; "" = an island */
	uint64_t dht_republish_ms;                 /* 22h: re-announce what this node holds */
	uint64_t dht_record_ttl_ms;                /* 24h: lifetime of a provider record */
	uint64_t dht_lookup_timeout_ms;            /* 5s: a find/get answers by then */
	uint32_t dht_max_announces_per_second;     /* 50 */
	uint32_t dht_max_values_per_key;           /* 64 values read per key per lookup */
	/* overlay (svc/overlay; docs/network.md) */
	bool     overlay_fetch_on_miss;            /* true: a local miss asks the network */
	uint64_t overlay_fetch_timeout_ms;         /* 30s: a whole fetch, all providers */
	uint64_t overlay_range_fetch_max_bytes;    /* 16MiB: a miss's Range up to it fetches its groups only */
	uint64_t overlay_repair_interval_ms;       /* 10m: between repair passes */
	uint64_t audit_fsync_interval_ms;          /* 100ms: drain the queue, append, fsync */
	uint64_t audit_checkpoint_interval_ms;     /* 60s: sign a checkpoint */
	uint64_t audit_max_age_ms;                 /* 0: segments kept whatever their age */
	uint64_t audit_max_bytes;                  /* 1GiB: segments beyond it removed, oldest first */
	uint64_t audit_segment_max;                /* 64MiB: rotate past it */
	uint32_t audit_queue_max;                  /* 8192 entries waiting for the next sync */
	uint64_t audit_ram_bytes;                  /* 16MiB: the amnesia log's ring */
	/* tor (node/sup_tor.c; docs/tor.md) */
	bool     tor_enabled;                      /* publish OAP/1 as an onion service, dial onions */
	char     tor_control[CONFIG_PATH_MAX];     /* "host:port" or a control socket path; "" with launch */
	char     tor_socks[CONFIG_ADDR_MAX];       /* SOCKS5 "127.0.0.1:9050" */
	bool     tor_only;                         /* publish the onion only, never an IP; dial onions only */
	bool     tor_launch;                       /* the supervisor runs its own tor */
	char     tor_torrc_include[CONFIG_PATH_MAX]; /* %include'd by the generated torrc; "" = none */
} mn_config;

/* Reload classes (documented per key). */
typedef enum {
	CONFIG_RELOAD_LIVE = 0,   /* applied by SIGHUP / POST /api/v1/reload */
	CONFIG_RELOAD_RESTART,    /* needs a restart; a reload that changes it is refused */
} config_reload_class;

/*
 * Effective paths of the wall's files: the configured value, or its default
 * under paths.data_dir. -1 when the result does not fit len.
 */
__attribute__((warn_unused_result))
int config_keys_dir(const mn_config *c, char *out, size_t len);
__attribute__((warn_unused_result))
int config_policy_file(const mn_config *c, char *out, size_t len);
__attribute__((warn_unused_result))
int config_policy_pubkey(const mn_config *c, char *out, size_t len);
/* <runtime_dir>/<name>: where a service's internal socket lives (the
 * supervisor's runtime directory, or its default <data_dir>/run when the
 * config did not come from a supervisor). -1 when it does not fit len. */
__attribute__((warn_unused_result))
int config_socket_path(const mn_config *c, const char *name, char *out, size_t len);
/* The node identity key (core/identity): node.identity_file or <data_dir>/node/identity.key. */
__attribute__((warn_unused_result))
int config_identity_file(const mn_config *c, char *out, size_t len);
/* The sealed pin of the ZK parameter bundle: zk.params_pin_file or
 * <data_dir>/zk/params.pin. 0, or -1 (too long). */
__attribute__((warn_unused_result))
int config_zk_pin_file(const mn_config *c, char *out, size_t len);
/* The policy signing key `macronode init` creates: <data_dir>/policy/signing.key. */
__attribute__((warn_unused_result))
int config_policy_signing_key(const mn_config *c, char *out, size_t len);

/* Fill every field with its default. Never fails. */
void config_defaults(mn_config *c);
/* Wipe and free the secret fields; the struct may be reused after config_defaults. */
void config_free(mn_config *c);
/* Deep copy (dst must not hold secrets; call config_free on it first). 0/-1. */
__attribute__((warn_unused_result)) int config_copy(mn_config *dst, const mn_config *src);

/*
 * Load a JSON file over c (keys absent from the file keep their value).
 * On error returns -1 and writes "FILE: KEY: what is wrong" (or
 * "FILE:LINE:COL: parse error ...") into err.
 */
__attribute__((warn_unused_result))
int config_load_file(mn_config *c, const char *path, char *err, size_t errlen);
/* Same, from a string (name is used in messages). */
__attribute__((warn_unused_result))
int config_load_string(mn_config *c, const char *json, const char *name, char *err, size_t errlen);

/*
 * Apply RON_* environment variables through getenv (RON_HTTP_ADDR,
 * RON_GATEWAY_ADDR, RON_DATA_DIR, RON_LOG, RON_AMNESIA, RON_ADMIN_TOKEN, and
 * the env name of every table key that has one). err names the variable.
 */
__attribute__((warn_unused_result))
int config_apply_env(mn_config *c, char *err, size_t errlen);

/*
 * Secrets moved out of the environment (owned by `run`, which lives as long as
 * the node). config_env_take() copies the value of every secret key's variable
 * (RON_ADMIN_TOKEN) into sodium memory, zeroes its bytes where the process
 * environment holds them (what /proc/PID/environ and a core file would show)
 * and unsets it; config_apply_env_kept() then finds the value here, so every
 * reload judges the same secret without it living in the environment.
 */
enum { CONFIG_ENV_KEPT_MAX = 4 };
typedef struct config_env_kept {
	const char *env[CONFIG_ENV_KEPT_MAX];  /* variable name (static) */
	char       *val[CONFIG_ENV_KEPT_MAX];  /* sodium memory, read-only */
	size_t      n;
} config_env_kept;

__attribute__((warn_unused_result))
int config_env_take(config_env_kept *kept, char *err, size_t errlen);
void config_env_kept_free(config_env_kept *kept);

/* config_apply_env, with a secret variable that is unset taken from kept (may be NULL). */
__attribute__((warn_unused_result))
int config_apply_env_kept(mn_config *c, const config_env_kept *kept, char *err, size_t errlen);

/* The names of the RON_* variables config_apply_env would apply now (set and
 * non-empty), comma-separated into out ("" when none); for messages that say
 * where a value came from. Never a value. */
void config_env_names(char *out, size_t outlen);

/* Set one key by its dotted path from a string value (CLI flags use this). */
__attribute__((warn_unused_result))
int config_set(mn_config *c, const char *key, const char *value, char *err, size_t errlen);

/*
 * Cross-field validation and file checks that need no side effects:
 * addresses parse, admin on a non-loopback address requires a token, the
 * admin token file exists and is not group/world readable (its content is
 * loaded into admin_token here if admin_token is NULL), drain deadline <= 5s.
 */
__attribute__((warn_unused_result))
int config_validate(mn_config *c, char *err, size_t errlen);

/*
 * Compare old and new for a live reload: -1 (err names the first key) if a
 * RESTART-class key differs. 0 if the reload may be applied.
 */
__attribute__((warn_unused_result))
int config_reload_check(const mn_config *old, const mn_config *nw, char *err, size_t errlen);

/* What a reload from old to nw would change: one line per differing key,
 * "key: OLD -> NEW (live|restart)" (values as in `config print`; secrets
 * never shown or compared). Returns the number of keys that differ;
 * *restart: how many of them need a restart. */
int config_diff(const mn_config *old, const mn_config *nw, FILE *out, size_t *restart);

/* Print the effective config as pretty JSON (same shape as the file). Secrets are
 * omitted, not shown as "<redacted>": the output must load back as a config file
 * (`config print > f; config validate f`), and the file has no secret keys. */
__attribute__((warn_unused_result)) int config_print(const mn_config *c, FILE *out);
/* Same as compact JSON into a malloc'd string (caller frees); NULL on failure.
 * Secrets are never emitted, whatever include_secrets says: no child needs the
 * admin token, and the output must stay loadable by config_load_string (the
 * file format has no secret keys). The parameter is kept for API stability. */
char *config_to_json(const mn_config *c, bool include_secrets);

/* Render docs/config.md content (markdown table of every key) to out. */
__attribute__((warn_unused_result)) int config_write_docs(FILE *out);
/* The same reference as the mdoc page macronode.json(5) (docs/man/). */
__attribute__((warn_unused_result)) int config_write_man(FILE *out);

/* "host:port" / "[v6]:port" -> sockaddr storage; is_loopback set. 0/-1. */
struct sockaddr_storage;
__attribute__((warn_unused_result))
int config_parse_addr(const char *s, struct sockaddr_storage *ss, unsigned *sslen, bool *is_loopback);

/*
 * The table (config_table.c), one row per key. Only config.c and its tests
 * read it; everything else goes through the functions above.
 */
typedef enum {
	CONFIG_T_STRING = 0,
	CONFIG_T_ADDR,       /* "ip:port" / "[ip6]:port", numeric only */
	CONFIG_T_PATH,
	CONFIG_T_DURATION,   /* uint64_t milliseconds; "5s" */
	CONFIG_T_SIZE,       /* uint64_t bytes; "1MiB" or integer */
	CONFIG_T_U32,
	CONFIG_T_BOOL,
	CONFIG_T_ENUM,       /* int-sized C enum; names list */
	CONFIG_T_SERVICES,   /* uint32_t CONFIG_SVC_* bits; names list */
	CONFIG_T_SECRET,     /* char * in sodium memory; environment only */
	CONFIG_T_ADDR_LIST,  /* char[]: "ip:port" entries comma-joined; a JSON array in the file */
	CONFIG_T_ORIGIN_LIST, /* char[]: "scheme://host[:port]" entries comma-joined; a JSON array */
} config_type;

typedef struct config_enum_name {
	const char *name;    /* NULL ends the list */
	int         value;
	bool        alias;   /* accepted on input, never printed or documented */
} config_enum_name;

typedef struct config_key {
	const char             *key;      /* dotted path in the file: "limits.max_body" */
	config_type             type;
	size_t                  offset;   /* offsetof(mn_config, field) */
	size_t                  size;     /* sizeof field (string capacity incl. NUL) */
	const char             *def;      /* default in string form; NULL = unset secret */
	uint64_t                min, max; /* numbers: value (ms, bytes); strings: length */
	config_reload_class     reload;
	const char             *env;      /* RON_* variable or NULL */
	bool                    secret;   /* not a file key; never printed */
	const config_enum_name *names;    /* ENUM and SERVICES */
	const char             *help;
} config_key;

extern const config_key config_table[];
extern const size_t     config_table_len;

#endif
