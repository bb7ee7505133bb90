/*
 * config_table.c — every configuration key, declared once.
 *
 * Parsing (file, environment, flags), validation, `config print`, reload
 * checks and docs/config.md are all driven by this table; adding a key here
 * is the whole job (plus the field in mn_config). Keep rows in file order:
 * print and the docs follow it.
 */
#include <stddef.h>

#include "core/config/config.h"

/* Ranges. Durations are milliseconds, sizes bytes. */
#define CONFIG_TIMEOUT_MIN_MS    10u                  /* below this a timer is noise */
#define CONFIG_TIMEOUT_MAX_MS    (60u * 60u * 1000u)  /* 1h */
#define CONFIG_DRAIN_MAX_MS      5000u                /* DESIGN: drain is hard-capped at 5 s */
#define CONFIG_BODY_MIN          1u
#define CONFIG_BODY_MAX          (1ull << 40)         /* 1 TiB */
#define CONFIG_HEADER_MIN        (1u << 10)           /* 1 KiB */
#define CONFIG_HEADER_MAX        (1u << 20)           /* 1 MiB */
#define CONFIG_INFLIGHT_MAX      65536u
#define CONFIG_RPS_MAX           1000000u
#define CONFIG_CONNECTIONS_MAX   1000000u
#define CONFIG_WORKERS_MAX       256u
#define CONFIG_UPLOADS_MAX       4096u
#define CONFIG_OAP_INFLIGHT_MAX  1024u

#define FIELD(f) .offset = offsetof(mn_config, f), .size = sizeof(((mn_config *)0)->f)
/* Strings: min is the minimum length; the maximum is the field's capacity. */
#define TEXT(f, minlen) FIELD(f), .min = (minlen), .max = sizeof(((mn_config *)0)->f) - 1

static const config_enum_name config_log_levels[] = {
	{ .name = "debug", .value = LOG_LEVEL_DEBUG },
	{ .name = "info",  .value = LOG_LEVEL_INFO },
	{ .name = "warn",  .value = LOG_LEVEL_WARN },
	{ .name = "error", .value = LOG_LEVEL_ERROR },
	{ .name = "trace", .value = LOG_LEVEL_DEBUG, .alias = true },
	{ .name = NULL },
};

static const config_enum_name config_log_formats[] = {
	{ .name = "json", .value = LOG_FORMAT_JSON },
	{ .name = "text", .value = LOG_FORMAT_TEXT },
	{ .name = NULL },
};

static const config_enum_name config_services[] = {
	{ .name = "gateway", .value = CONFIG_SVC_GATEWAY },
	{ .name = "storage", .value = CONFIG_SVC_STORAGE },
	{ .name = "omnigate", .value = CONFIG_SVC_OMNIGATE },
	{ .name = NULL },
};

const config_key config_table[] = {
	{ .key = "admin.addr", .type = CONFIG_T_ADDR, TEXT(admin_addr, 1),
	  .def = "127.0.0.1:9600", .reload = CONFIG_RELOAD_RESTART, .env = "RON_HTTP_ADDR",
	  .help = "Admin plane listen address (numeric IP:port). A non-loopback address requires an admin token." },
	{ .key = "admin.token_file", .type = CONFIG_T_PATH, TEXT(admin_token_file, 0),
	  .def = "", .reload = CONFIG_RELOAD_RESTART, .env = "RON_ADMIN_TOKEN_FILE",
	  .help = "File holding the admin bearer token (mode 0600 or stricter; one trailing newline is stripped). Used when RON_ADMIN_TOKEN is unset." },
	{ .key = "admin.token", .type = CONFIG_T_SECRET, .offset = offsetof(mn_config, admin_token),
	  .size = sizeof(char *), .min = CONFIG_TOKEN_MIN, .max = CONFIG_TOKEN_MAX,
	  .def = NULL, .reload = CONFIG_RELOAD_LIVE, .env = "RON_ADMIN_TOKEN", .secret = true,
	  .help = "Admin bearer token, printable ASCII. Environment only: not accepted in the file, never printed." },
	{ .key = "gateway.addr", .type = CONFIG_T_ADDR, TEXT(gateway_addr, 1),
	  .def = "127.0.0.1:9080", .reload = CONFIG_RELOAD_RESTART, .env = "RON_GATEWAY_ADDR",
	  .help = "Gateway listen address (numeric IP:port); must differ from admin.addr." },
	{ .key = "gateway.workers", .type = CONFIG_T_U32, FIELD(gateway_workers),
	  .def = "0", .min = 0, .max = CONFIG_WORKERS_MAX, .reload = CONFIG_RELOAD_RESTART,
	  .help = "Gateway worker processes; 0 = one per CPU." },
	{ .key = "gateway.allow_plaintext", .type = CONFIG_T_BOOL, FIELD(gateway_allow_plaintext),
	  .def = "false", .reload = CONFIG_RELOAD_RESTART,
	  .help = "Allow a gateway on a non-loopback address without TLS (refused otherwise)." },
	{ .key = "oap.addr", .type = CONFIG_T_ADDR, TEXT(oap_addr, 1),
	  .def = "127.0.0.1:9443", .reload = CONFIG_RELOAD_RESTART, .env = "RON_OAP_ADDR",
	  .help = "OAP/1 listener of the omnigate service (TLS only; numeric IP:port). Also the peer plane: SNI peer.macronode.invalid gets the node identity certificate and mutual TLS (docs/oap.md)." },
	{ .key = "oap.max_inflight", .type = CONFIG_T_U32, FIELD(oap_max_inflight),
	  .def = "64", .min = 1, .max = CONFIG_OAP_INFLIGHT_MAX, .reload = CONFIG_RELOAD_LIVE,
	  .help = "Open request streams per OAP/1 connection; one more gets a 429 error frame." },
	{ .key = "storage.max_object", .type = CONFIG_T_SIZE, FIELD(storage_max_object_bytes),
	  .def = "1MiB", .min = CONFIG_BODY_MIN, .max = CONFIG_BODY_MAX, .reload = CONFIG_RELOAD_LIVE,
	  .help = "Largest object accepted (decoded bytes); larger uploads get 413." },
	{ .key = "storage.max_uploads", .type = CONFIG_T_U32, FIELD(storage_max_uploads),
	  .def = "64", .min = 1, .max = CONFIG_UPLOADS_MAX, .reload = CONFIG_RELOAD_LIVE,
	  .help = "Uploads the storage service keeps open at once; beyond it PUTs get 503." },
	{ .key = "storage.max_uploads_per_tenant", .type = CONFIG_T_U32,
	  FIELD(storage_max_uploads_per_tenant), .def = "16", .min = 0, .max = CONFIG_UPLOADS_MAX,
	  .reload = CONFIG_RELOAD_LIVE,
	  .help = "Of those, uploads one tenant (its wall quota key) may hold open; beyond it its PUTs get 503, so one slow client cannot hold every slot; 0 = no share." },
	{ .key = "storage.max_uploads_per_peer", .type = CONFIG_T_U32,
	  FIELD(storage_max_uploads_per_peer), .def = "16", .min = 0, .max = CONFIG_UPLOADS_MAX,
	  .reload = CONFIG_RELOAD_LIVE,
	  .help = "Of those, uploads one client address (IPv6 by its /64) may hold open; beyond it its PUTs get 503; 0 = no share." },
	{ .key = "paths.data_dir", .type = CONFIG_T_PATH, TEXT(data_dir, 1),
	  .def = "./var", .reload = CONFIG_RELOAD_RESTART, .env = "RON_DATA_DIR",
	  .help = "Directory for persistent state." },
	{ .key = "paths.runtime_dir", .type = CONFIG_T_PATH, TEXT(runtime_dir, 0),
	  .def = "", .reload = CONFIG_RELOAD_RESTART, .env = "RON_RUNTIME_DIR",
	  .help = "Directory for sockets and pid files (created mode 0700); empty = paths.data_dir + \"/run\"." },
	{ .key = "log.level", .type = CONFIG_T_ENUM, FIELD(log_level), .names = config_log_levels,
	  .def = "info", .reload = CONFIG_RELOAD_LIVE, .env = "RON_LOG",
	  .help = "Minimum log level; trace is accepted as debug." },
	{ .key = "log.format", .type = CONFIG_T_ENUM, FIELD(log_format), .names = config_log_formats,
	  .def = "json", .reload = CONFIG_RELOAD_LIVE, .env = "RON_LOG_FORMAT",
	  .help = "Log line format: JSON lines or human-readable text." },
	{ .key = "timeouts.read", .type = CONFIG_T_DURATION, FIELD(read_timeout_ms),
	  .def = "5s", .min = CONFIG_TIMEOUT_MIN_MS, .max = CONFIG_TIMEOUT_MAX_MS,
	  .reload = CONFIG_RELOAD_LIVE,
	  .help = "Longest wait for the next bytes of a request body." },
	{ .key = "timeouts.write", .type = CONFIG_T_DURATION, FIELD(write_timeout_ms),
	  .def = "5s", .min = CONFIG_TIMEOUT_MIN_MS, .max = CONFIG_TIMEOUT_MAX_MS,
	  .reload = CONFIG_RELOAD_LIVE,
	  .help = "Longest wait for a client to accept response bytes." },
	{ .key = "timeouts.idle", .type = CONFIG_T_DURATION, FIELD(idle_timeout_ms),
	  .def = "60s", .min = CONFIG_TIMEOUT_MIN_MS, .max = CONFIG_TIMEOUT_MAX_MS,
	  .reload = CONFIG_RELOAD_LIVE,
	  .help = "Keep-alive connection idle time before it is closed." },
	{ .key = "timeouts.header", .type = CONFIG_T_DURATION, FIELD(header_timeout_ms),
	  .def = "5s", .min = CONFIG_TIMEOUT_MIN_MS, .max = CONFIG_TIMEOUT_MAX_MS,
	  .reload = CONFIG_RELOAD_LIVE,
	  .help = "Deadline for the whole request header block (slow-loris guard)." },
	{ .key = "timeouts.body_grace", .type = CONFIG_T_DURATION, FIELD(body_grace_ms),
	  .def = "5s", .min = CONFIG_TIMEOUT_MIN_MS, .max = CONFIG_TIMEOUT_MAX_MS,
	  .reload = CONFIG_RELOAD_LIVE,
	  .help = "Time a request body (HTTP, or an OAP PUT stream) is given before limits.min_body_rate applies to it." },
	{ .key = "limits.max_body", .type = CONFIG_T_SIZE, FIELD(max_body_bytes),
	  .def = "1MiB", .min = CONFIG_BODY_MIN, .max = CONFIG_BODY_MAX,
	  .reload = CONFIG_RELOAD_LIVE,
	  .help = "Largest request body accepted; larger is refused with 413." },
	{ .key = "limits.max_header_bytes", .type = CONFIG_T_SIZE, FIELD(max_header_bytes),
	  .def = "16KiB", .min = CONFIG_HEADER_MIN, .max = CONFIG_HEADER_MAX,
	  .reload = CONFIG_RELOAD_LIVE,
	  .help = "Largest request header block; larger is refused with 431." },
	{ .key = "limits.max_inflight", .type = CONFIG_T_U32, FIELD(max_inflight),
	  .def = "512", .min = 1, .max = CONFIG_INFLIGHT_MAX, .reload = CONFIG_RELOAD_LIVE,
	  .help = "Concurrent requests per instance; beyond it requests get 503." },
	{ .key = "limits.requests_per_second", .type = CONFIG_T_U32, FIELD(requests_per_second),
	  .def = "500", .min = 0, .max = CONFIG_RPS_MAX, .reload = CONFIG_RELOAD_LIVE,
	  .help = "Request rate per instance (token bucket); 0 = unlimited." },
	{ .key = "limits.max_connections", .type = CONFIG_T_U32, FIELD(max_connections),
	  .def = "1024", .min = 1, .max = CONFIG_CONNECTIONS_MAX, .reload = CONFIG_RELOAD_LIVE,
	  .help = "Open client connections per instance; beyond it new ones are closed." },
	{ .key = "limits.memory_budget", .type = CONFIG_T_SIZE, FIELD(memory_budget),
	  .def = "128MiB", .min = 0, .max = CONFIG_BODY_MAX, .reload = CONFIG_RELOAD_LIVE,
	  .help = "Response bytes queued in memory per instance; past 3/4 of it facet routes get 503, past it core routes too (admin never); 0 = no budget." },
	{ .key = "limits.min_body_rate", .type = CONFIG_T_SIZE, FIELD(min_body_rate),
	  .def = "1KiB", .min = 0, .max = CONFIG_BODY_MAX, .reload = CONFIG_RELOAD_LIVE,
	  .help = "Bytes per second a request body must average since it began, once timeouts.body_grace has passed (time spent waiting on the node does not count); slower: HTTP 408 and the connection closed, an OAP PUT stream refused with 408; 0 = off." },
	{ .key = "drain.deadline", .type = CONFIG_T_DURATION, FIELD(drain_deadline_ms),
	  .def = "3s", .min = 0, .max = CONFIG_DRAIN_MAX_MS, .reload = CONFIG_RELOAD_LIVE,
	  .help = "Graceful shutdown: time given to in-flight requests (hard limit 5s)." },
	{ .key = "services", .type = CONFIG_T_SERVICES, FIELD(services), .names = config_services,
	  .def = "gateway,storage", .reload = CONFIG_RELOAD_RESTART,
	  .help = "Services the supervisor runs (JSON array; comma-separated in flags)." },
	{ .key = "amnesia", .type = CONFIG_T_BOOL, FIELD(amnesia),
	  .def = "false", .reload = CONFIG_RELOAD_RESTART, .env = "RON_AMNESIA",
	  .help = "RAM-only mode: nothing written to disk, secrets zeroized at exit (env: 1/0/true/false)." },
	{ .key = "sandbox.enabled", .type = CONFIG_T_BOOL, FIELD(sandbox_enabled),
	  .def = "true", .reload = CONFIG_RELOAD_RESTART,
	  .help = "Confine each service process after start-up (Landlock + seccomp; docs/operations.md \"Sandboxes\"). Off only for kernels that refuse it." },
	{ .key = "tls.cert_file", .type = CONFIG_T_PATH, TEXT(tls_cert_file, 0),
	  .def = "", .reload = CONFIG_RELOAD_RESTART, .env = "RON_TLS_CERT",
	  .help = "PEM certificate chain; set together with tls.key_file. Unset, omnigate serves the node identity's self-signed Ed25519 certificate to every client (docs/oap.md \"Peer plane\")." },
	{ .key = "tls.key_file", .type = CONFIG_T_PATH, TEXT(tls_key_file, 0),
	  .def = "", .reload = CONFIG_RELOAD_RESTART, .env = "RON_TLS_KEY",
	  .help = "PEM private key for tls.cert_file." },
	{ .key = "tls.client_ca_file", .type = CONFIG_T_PATH, TEXT(tls_client_ca_file, 0),
	  .def = "", .reload = CONFIG_RELOAD_RESTART, .env = "RON_TLS_CLIENT_CA",
	  .help = "PEM CA bundle for client certificates (mutual TLS); needs tls.cert_file." },
	{ .key = "tls.cert_pin", .type = CONFIG_T_STRING, TEXT(tls_cert_pin, 0),
	  .def = "", .reload = CONFIG_RELOAD_RESTART,
	  .help = "Optional \"b3:<64 hex>\" BLAKE3 of the certificate file, checked at every load." },
	{ .key = "tls.handshake_timeout", .type = CONFIG_T_DURATION, FIELD(tls_handshake_timeout_ms),
	  .def = "5s", .min = CONFIG_TIMEOUT_MIN_MS, .max = CONFIG_TIMEOUT_MAX_MS,
	  .reload = CONFIG_RELOAD_LIVE,
	  .help = "Deadline for a TLS handshake; failures count in tls_handshake_failures_total." },
	{ .key = "auth.keys_dir", .type = CONFIG_T_PATH, TEXT(auth_keys_dir, 0),
	  .def = "", .reload = CONFIG_RELOAD_LIVE, .env = "RON_AUTH_KEYS_DIR",
	  .help = "Capability MAC keys, one file <kid>.key per key (64 hex, mode 0600); empty = paths.data_dir + \"/auth/keys\". Reloaded live." },
	{ .key = "auth.audience", .type = CONFIG_T_STRING, TEXT(auth_audience, 0),
	  .def = "", .reload = CONFIG_RELOAD_LIVE, .env = "RON_AUDIENCE",
	  .help = "This node's audience: a token's Aud caveat must equal it (empty = tokens with Aud are refused)." },
	{ .key = "auth.mtls_tenants_file", .type = CONFIG_T_PATH, TEXT(auth_mtls_tenants_file, 0),
	  .def = "", .reload = CONFIG_RELOAD_LIVE, .env = "RON_MTLS_TENANTS",
	  .help = "JSON object mapping \"b3:<hex>\" (BLAKE3 of a client certificate's DER) to a tenant, for mutual TLS; empty = none. Reloaded live." },
	{ .key = "node.identity_file", .type = CONFIG_T_PATH, TEXT(identity_file, 0),
	  .def = "", .reload = CONFIG_RELOAD_RESTART, .env = "RON_IDENTITY_FILE",
	  .help = "The node's Ed25519 identity key (128 hex, mode 0600; created by init or the first run); empty = paths.data_dir + \"/node/identity.key\". Amnesia: unused, a fresh identity per run." },
	{ .key = "node.region", .type = CONFIG_T_STRING, TEXT(node_region, 0),
	  .def = "", .reload = CONFIG_RELOAD_LIVE, .env = "RON_REGION",
	  .help = "Region this node serves, matched by policy rules' when.region (empty = none)." },
	{ .key = "policy.bundle_file", .type = CONFIG_T_PATH, TEXT(policy_bundle_file, 0),
	  .def = "", .reload = CONFIG_RELOAD_RESTART, .env = "RON_POLICY_FILE",
	  .help = "Signed ron-policy v1 bundle (signature in <file>.sig); empty = paths.data_dir + \"/policy/policy.json\". Content reloaded live; no valid bundle = deny all." },
	{ .key = "policy.pubkey_file", .type = CONFIG_T_PATH, TEXT(policy_pubkey_file, 0),
	  .def = "", .reload = CONFIG_RELOAD_RESTART, .env = "RON_POLICY_PUBKEY",
	  .help = "Ed25519 public key (64 hex) that must have signed the bundle; empty = paths.data_dir + \"/policy/signing.pub\"." },
	{ .key = "policy.tags_core", .type = CONFIG_T_STRING, TEXT(policy_tags_core, 0),
	  .def = "core", .reload = CONFIG_RELOAD_LIVE,
	  .help = "Comma-separated policy tags of core routes (objects, names, mailbox)." },
	{ .key = "policy.tags_facet", .type = CONFIG_T_STRING, TEXT(policy_tags_facet, 0),
	  .def = "facet", .reload = CONFIG_RELOAD_LIVE,
	  .help = "Comma-separated policy tags of facet routes (graph, feed, search, media)." },
	{ .key = "quota.requests_per_second", .type = CONFIG_T_U32, FIELD(quota_rps),
	  .def = "200", .min = 0, .max = CONFIG_RPS_MAX, .reload = CONFIG_RELOAD_LIVE,
	  .help = "Requests per second per tenant, node-wide (token bucket shared by every worker and omnigate); 0 = no per-tenant cap. A token's Rate caveat can only lower it." },
	{ .key = "quota.burst", .type = CONFIG_T_U32, FIELD(quota_burst),
	  .def = "400", .min = 1, .max = CONFIG_RPS_MAX, .reload = CONFIG_RELOAD_LIVE,
	  .help = "Requests a tenant may make at once before quota.requests_per_second applies." },
	{ .key = "quota.bytes_per_second", .type = CONFIG_T_SIZE, FIELD(quota_bytes_per_s),
	  .def = "0", .min = 0, .max = CONFIG_BODY_MAX, .reload = CONFIG_RELOAD_LIVE,
	  .help = "Request body bytes per second per tenant, node-wide; 0 = no byte quota." },
	{ .key = "quota.bytes_burst", .type = CONFIG_T_SIZE, FIELD(quota_bytes_burst),
	  .def = "64MiB", .min = 1, .max = CONFIG_BODY_MAX, .reload = CONFIG_RELOAD_LIVE,
	  .help = "Body bytes a tenant may send at once before quota.bytes_per_second applies." },
	{ .key = "quota.max_tenants", .type = CONFIG_T_U32, FIELD(quota_max_tenants),
	  .def = "4096", .min = 16, .max = CONFIG_CONNECTIONS_MAX, .reload = CONFIG_RELOAD_RESTART,
	  .help = "Tenants whose buckets the node keeps (shared memory, rounded up to a multiple of 16); the least recently seen in a full group of 16 is forgotten first." },
};

const size_t config_table_len = sizeof config_table / sizeof config_table[0];
