/*
 * metrics.c — process-shared metrics registry (see metrics.h).
 *
 * Region = header + METRICS_MAX_SERIES slots. A slot goes EMPTY → CLAIMING
 * (CAS, one winner) → READY (store-release after the key is written) and is
 * never freed, so a pointer handed out stays valid for the mapping's life.
 * Values are updated with relaxed atomics: each counter is independent and
 * /metrics only needs every value to be eventually visible.
 *
 * Children are less trusted than the supervisor that renders the region, and
 * any of them may die mid-write, so every reader here treats the region as
 * untrusted bytes: family indexes are bounds-checked, label strings are
 * length-bounded and checked for control characters, and no reader waits
 * unboundedly on a slot some other process is claiming.
 *
 * Not thread-safe: the lazy private mapping and the module state assume one
 * thread per process (every macronode process is a single event loop).
 */
#include "core/metrics/metrics.h"
#include "core/metrics/metrics_test.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"

/* The region is shared with other processes: only lock-free atomics work
 * there (a lock-based fallback would use a per-process lock). */
static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
static_assert(ATOMIC_LONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");

#define METRICS_MEMFD_NAME   "macronode-metrics"
#define METRICS_MAGIC        UINT64_C(0x4d4e4d4554524943) /* "MNMETRIC" */
#define METRICS_VERSION      2u
/* Yields a reader spends on a slot another process is claiming. A claim is
 * a memcpy of < 200 bytes, so a claimer still CLAIMING after this many
 * yields has almost surely been killed; the reader then probes on. */
#define METRICS_CLAIM_SPINS  1000
/* Latency above this is a clock bug; clamping keeps the ns sum in range. */
#define METRICS_OBSERVE_MAX_S 1.0e9
#define METRICS_NS_PER_S     UINT64_C(1000000000)
#define METRICS_RENDER_INIT  (64u * 1024u)
/* Worst case: every slot a histogram of ~13 lines of ~250 bytes. */
#define METRICS_RENDER_MAX   (64u * 1024u * 1024u)
/* Histogram slot values: buckets, then count, then sum in nanoseconds. */
#define METRICS_HIST_COUNT   METRICS_HIST_BUCKETS
#define METRICS_HIST_SUM     (METRICS_HIST_BUCKETS + 1)
#define METRICS_SLOT_VALUES  (METRICS_HIST_BUCKETS + 2)

static_assert((METRICS_MAX_SERIES & (METRICS_MAX_SERIES - 1)) == 0,
	"METRICS_MAX_SERIES must be a power of two (probe mask)");

enum metrics_slot_state {
	METRICS_SLOT_EMPTY = 0,
	METRICS_SLOT_CLAIMING = 1,
	METRICS_SLOT_READY = 2,
};

enum metrics_type {
	METRICS_COUNTER,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,
};

enum metrics_source {
	METRICS_SRC_SLOTS = 0,   /* series live in slots (the default) */
	METRICS_SRC_DROPPED,     /* one value, the header's dropped count */
};

struct metrics_family {
	const char          *name;
	enum metrics_type    type;
	enum metrics_source  source;
	const char          *help;
};

/*
 * Every family, in /metrics order. Names are part of the interface
 * (DESIGN §5); add a family by appending a line. Help text must not contain
 * a backslash or newline (it is printed verbatim).
 */
static const struct metrics_family metrics_families[] = {
	{ "request_latency_seconds", METRICS_HISTOGRAM, METRICS_SRC_SLOTS,
	  "Request latency by service, route template and method." },
	{ "http_requests_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "HTTP requests by service, route template and status code." },
	{ "rejected_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Requests or connections refused, by reason." },
	{ "service_restarts_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Service process restarts by the supervisor." },
	{ "sandbox_violations_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Service processes killed by their sandbox (SIGSYS: a system call outside the role's list)." },
	{ "sandbox_landlock_active", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "1 when the service's file system access is confined by Landlock, 0 when the kernel lacks it or sandbox.enabled is false." },
	{ "bus_lagged_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Bus events a service missed because it lagged." },
	{ "integrity_fail_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Content that failed verification against its address, by object kind." },
	{ "ready_state", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Readiness: 1 for the current state, 0 otherwise." },
	{ "tls_handshake_failures_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "TLS handshakes that failed." },
	{ "peer_tls_refused_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Peer-plane TLS handshakes refused by the identity check, by reason." },
	{ "oap_peer_connections_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "OAP/1 connections accepted on the peer plane (a node identity verified)." },
	{ "peer_fetch_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Verified fetches of an object from one peer, by outcome." },
	{ "build_info", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Build identity; always 1." },
	{ "process_start_time_seconds", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Supervisor start time, seconds since the Unix epoch." },
	{ "open_connections", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Open client connections." },
	{ "http_bytes_in_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "HTTP request bytes received." },
	{ "http_bytes_out_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "HTTP response bytes sent." },
	{ "config_reloads_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Configuration reloads by result." },
	{ "service_up", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "1 when the service process is running, else 0." },
	{ "service_crashloop", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "1 when the service is in a crash loop (degraded), else 0." },
	{ "key_age_seconds", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Age of each capability key (since it was sealed), by kid." },
	{ "key_load_refused_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Capability key loads refused (the keys in force stay), by reason." },
	{ "zk_verify_success_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Holder proofs accepted (docs/zk.md)." },
	{ "zk_verify_fail_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Holder proofs refused (401), by reason." },
	{ "zk_batch_proofs_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Holder proofs verified in an OAP/1 batch." },
	{ "zk_param_mismatch_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Starts and reloads refused: the ZK parameter pin does not match the bundle." },
	{ "bug_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Survivable internal invariant violations (BUG)." },
	{ "metrics_dropped_series_total", METRICS_COUNTER, METRICS_SRC_DROPPED,
	  "Series not recorded: metrics table full or labels invalid." },
	{ "oap_requests_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "OAP/1 requests by verb and outcome (status code)." },
	{ "oap_rejected_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "OAP/1 frames, streams or connections refused, by reason." },
	{ "oap_bytes_in_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "OAP/1 bytes received (after TLS)." },
	{ "oap_bytes_out_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "OAP/1 bytes sent (before TLS)." },
	{ "oap_open_connections", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Open OAP/1 connections." },
	{ "oap_open_streams", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Open OAP/1 request streams." },
	{ "policy_reloads_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Policy bundle loads by result (ok, unchanged, refused, withdrawn)." },
	{ "policy_version", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Version of the policy bundle in force; 0 when none (every request denied)." },
	{ "quota_evictions_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Tenants forgotten by the node-wide quota table to make room (their buckets start full again)." },
	{ "dht_records_rejected_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "DHT values refused by their kind's verifier or dropped, by reason (malformed, oversized, bad_signature, expired, wrong_key, unverifiable, wrong_id, stale, overflow)." },
	{ "dht_announces_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Provider announces by result (ok, failed, timeout, limited; dropped: storage could not hand one to the dht service)." },
	{ "dht_lookups_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "DHT lookups (find providers, get) by result (found, empty, timeout, busy)." },
	{ "dht_lookup_seconds", METRICS_HISTOGRAM, METRICS_SRC_SLOTS,
	  "Time from a DHT lookup's start to its answer (bounded by dht.lookup_timeout)." },
	{ "tor_up", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "1 while the tor control session is authenticated and the onion service added (tor.enabled), else 0." },
	{ "tor_bootstrap_percent", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "tor's bootstrap progress (GETINFO status/bootstrap-phase), 0..100." },
	{ "tor_control_failures_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "tor control sessions ended, by reason (connect, protocol, auth, onion, timeout); each is retried with backoff." },
	{ "tor_restarts_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Restarts of the tor the supervisor runs (tor.launch) after it exited." },
	{ "dht_routing_nodes", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Nodes in the DHT routing table, by state (good: heard from recently, dubious)." },
	{ "dht_stored_values", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Values this node's OpenDHT storage holds (its own and those other nodes put here), read every second." },
	{ "index_names", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Names the index service holds (published here or updated here)." },
	{ "index_cache_names", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Records the index keeps from the network for names it does not hold (bounded, least recently used forgotten)." },
	{ "index_publishes_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Name publishes by result (created, updated, full, error)." },
	{ "index_records_rejected_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Name records from elsewhere refused by the index, by reason." },
	{ "index_lookups_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "DHT lookups of names the index does not hold, by result (found, not_found, timeout, unavailable, busy)." },
	{ "index_dht_requests_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "The index's calls to the dht service by op (put, get) and result (ok, found, empty, timeout, error)." },
	{ "storage_cache_bytes", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Bytes of the cache copies stored here (objects fetched on a local miss; evictable past storage.cache_bytes)." },
	{ "storage_cache_objects", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Cache copies stored here." },
	{ "storage_cache_evictions_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Cache copies evicted, oldest fetched first, to keep the cache under storage.cache_bytes (or to make room in the RAM store)." },
	{ "overlay_fetches_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Fetches on a local miss by the status answered (200 stored here, 404 no provider, 502 every provider failed, 503 unavailable, 504 deadline)." },
	{ "overlay_peer_failures_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Failed attempts at one provider by reason (not_found, refused, bad_bytes, stalled, pin, connect, too_large, store, no_range); the next provider is tried." },
	{ "overlay_fetch_bytes_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Verified bytes the overlay stored from providers." },
	{ "overlay_range_fetches_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Range fetches on a local miss (only the groups a Range needs, not stored) by the status answered (200 served, 404, 501 no provider serves ranges: the whole object is fetched instead, 502, 503, 504)." },
	{ "overlay_range_fetch_bytes_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Verified group bytes range fetches took from providers (not stored)." },
	{ "overlay_fetches_active", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Fetches in progress (concurrent misses for one object share one)." },
	{ "rf_target", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "storage.replicas: distinct nodes that should hold every object stored here." },
	{ "rf_observed", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "The fewest live copies (this node and providers that answered a PING) of any object in the last repair pass; 0 when the pass saw no object." },
	{ "dht_missing_records", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Objects of the last repair pass with fewer provider records in the DHT than rf_target." },
	{ "repair_requests_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "REPLICATE requests the repair loop sent, by result (stored, failed, refused, connect, pin, error)." },
	{ "repair_bytes_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Bytes of the copies peers reported stored in answer to this node's REPLICATE requests." },
	{ "repair_passes_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Repair passes completed over the objects stored here." },
	{ "object_handle_lookups_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Lookups of an open object handle by a serving process (gateway worker, omnigate), by result: hit (served without asking storage) or miss (storage OPEN)." },
	{ "object_handle_flushes_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Times a serving process dropped every open object handle: storage's removal epoch moved (a quarantine or an eviction) or storage restarted." },
	{ "object_handles", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Open object handles kept between requests (at most 128 per serving process, each one open blob fd)." },
	{ "social_fanout_jobs", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Posts still fanning out to their followers' feeds (jobs in the social table)." },
	{ "social_fanout_deliveries_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Feed entries written by fanout (one per follower and post; a batch redone after a crash counts again)." },
	{ "social_fanout_seconds", METRICS_HISTOGRAM, METRICS_SRC_SLOTS,
	  "From a post to the last follower's feed holding it (the whole fanout)." },
	{ "social_fanout_resumed_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Fanout jobs found unfinished when the social service started (a crash or stop mid-fanout); each is finished." },
	{ "social_posts_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Posts accepted by POST /feed." },
	{ "social_rejected_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Graph and feed requests refused, by reason (bad_cursor, bad_limit, bad_body, too_large, bad_request, self_follow, too_many_follows, not_owner, not_stored, busy)." },
	{ "mailbox_depth", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Messages queued in all mailboxes (visible or leased), dead letters excluded." },
	{ "mailbox_dlq_depth", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Messages in the dead-letter queues." },
	{ "mailbox_idempotency_keys", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Idempotency keys the mailbox holds (within their window)." },
	{ "mailbox_visibility_timeout_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Leases that ended without an ack (the message became visible again)." },
	{ "mailbox_dlq_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Messages moved to a dead-letter queue (mailbox.max_deliveries reached)." },
	{ "mailbox_sends_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Mailbox sends, by result (created, replay)." },
	{ "mailbox_refused_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Mailbox requests refused, by reason." },
	{ "media_type_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Uploads by where their media type came from: given, sniffed, default, malformed (sniffed instead), unrecorded, busy (sniff pool full)." },
	{ "media_read_sniff_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "GET/HEAD /media of objects without a recorded type, by result: recorded, kept, unrecorded, default, busy." },
	{ "media_refused_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "GET /media requests refused (400), by reason: cid, query, filename." },
	{ "search_documents", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Documents in the search index." },
	{ "search_names", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Names in the search index." },
	{ "search_queue_depth", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Documents and names waiting to be indexed (bounded by search.queue)." },
	{ "search_indexed_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Documents added to the search index." },
	{ "search_names_indexed_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Names indexed by the search service: new names and names re-pointed to another cid." },
	{ "search_index_dropped_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Documents and names not indexed, by reason: queue_full, memory, write_failed, notify (the gateway could not send it)." },
	{ "search_sweeps_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Walks of the store by the search service's catch-up, by result: done, failed (storage unavailable or an index error; tried again at the next interval)." },
	{ "search_sweep_objects_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Objects the search catch-up found unindexed, by result: queued, gone (removed meanwhile), unverified (the head failed its BLAKE3 check: not indexed), young (untyped and just written: the next walk), error." },
	{ "search_sweep_names_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Names the search catch-up found held by the index service and not indexed at their seq, by result: queued, error." },
	{ "search_queries_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Search queries answered by the search service, by result: ok, partial, bad, busy, error." },
	{ "search_refused_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "GET /search requests refused (400), by reason: syntax, too_broad, limit, query, too_long." },
	{ "facet_latency_seconds", METRICS_HISTOGRAM, METRICS_SRC_SLOTS,
	  "Facet requests (media, graph, feed, search) from arrival to answer, by facet." },
	{ "facet_busy_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Facet requests refused because the facet was at its bound (503), by facet." },
	{ "facet_deadline_timeouts_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Facet requests past the facet's deadline (answered partial, or 504), by facet." },
	{ "verified_cache_lookups_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Lookups of a verified object group in a serving process's RAM (gateway.verified_cache), by result: hit (served without reading or hashing it again) or miss (read with pread and checked against the outboard)." },
	{ "verified_cache_bytes", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Bytes of verified object groups kept in RAM by a serving process (at most gateway.verified_cache)." },
	{ "range_fetch_fallback_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Ranges of a missed object fetched whole instead of by their groups, by reason (held: the worker already holds OBJECTS_RANGE_HELD_MAX range results)." },
	{ "range_refused_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "GET Range headers not served as asked, by reason: too_many (more than gateway.max_ranges; 416), unsatisfiable (no range names a byte; 416), malformed (ignored; 200 with the whole object)." },
	{ "range_multipart_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "GET answers sent as 206 multipart/byteranges (two or more ranges after merging)." },
	{ "repair_deferred_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Objects below rf_target that this node left to the leader (the live holder with the least node id), which asks for the missing copies." },
	{ "repair_peers_alive", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Peers (from node records) that answered a PING on the peer plane in the last repair pass." },
	{ "repair_node_records_published_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "This node's signed node record put into the DHT (at start, then hourly)." },
	{ "oap_replicate_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "REPLICATE requests omnigate answered, by result (stored, not_found, failed, not_peer, no_overlay)." },
	{ "audit_records_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Audit records appended and acknowledged (fsynced, or in the RAM log in amnesia), by stream." },
	{ "audit_dropped_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Audit entries that never became records, by reason: queue_full (the audit service's queue), refused (not a valid entry), client_busy (a sender's local buffer was full), unavailable (the audit service could not be reached), too_large (an entry over the message cap)." },
	{ "audit_checkpoints_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Signed audit checkpoints written (timer, shutdown)." },
	{ "audit_recovered_torn_bytes", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Bytes of a torn last record (and checkpoint) the audit service cut when it last opened the log; 0 when it was clean." },
	{ "audit_proofs_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Audit inclusion proofs asked for on the admin plane, by result (ok, not_found, not_checkpointed, busy, limited, error)." },
	{ "audit_recent_total", METRICS_COUNTER, METRICS_SRC_SLOTS,
	  "Reads of the newest audit records (admin plane, console), by result (ok, busy, limited, error)." },
	{ "audit_queue_depth", METRICS_GAUGE, METRICS_SRC_SLOTS,
	  "Audit entries waiting in the audit service's queue for the next sync." },
};
#define METRICS_NFAMILIES (sizeof metrics_families / sizeof metrics_families[0])
static_assert(METRICS_NFAMILIES < UINT16_MAX, "family index is a u16");

/* Upper bounds of the latency buckets, seconds (DESIGN §5). */
static const double metrics_hist_bounds[METRICS_HIST_BUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
};

struct metrics_series {
	_Atomic uint64_t v[METRICS_SLOT_VALUES]; /* counter/gauge use v[0] */
	_Atomic uint32_t state;                  /* enum metrics_slot_state */
	uint16_t         family;                 /* index in metrics_families */
	char             labels[METRICS_MAX_LABELS];
};

struct metrics_hdr {
	uint64_t         magic;
	uint32_t         version;
	uint32_t         nseries;
	uint32_t         slot_size;
	uint32_t         pad;
	_Atomic uint64_t dropped;
	uint64_t         annex_len;  /* bytes of the annex after the region (0 = none) */
};

struct metrics_region {
	struct metrics_hdr    hdr;
	struct metrics_series slots[METRICS_MAX_SERIES];
};

struct metrics_state {
	struct metrics_region *r;
	void                  *annex;     /* shared annex mapping, or NULL */
	size_t                 annex_len;
	bool                   shared;  /* memfd mapping vs lazy private one */
	bool                   in_hook; /* stops bug_total → BUG → hook loops */
	unsigned               gen;     /* bumped when r changes (metrics_generation) */
};
static struct metrics_state g_metrics;

/* ---- mapping ------------------------------------------------------------ */

static void metrics_on_bug(void)
{
	if (g_metrics.in_hook)
		return;
	g_metrics.in_hook = true;
	metrics_count("bug_total", "", 1);
	g_metrics.in_hook = false;
}

/* The annex starts on the first page after the region, so it is mapped on
 * its own and the region's mapping keeps its size (metrics_replace_private
 * maps the region over a private one of exactly that size). */
static size_t metrics_annex_off(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (sizeof(struct metrics_region) + page - 1) / page * page;
}

static void metrics_hdr_init(struct metrics_region *r)
{
	r->hdr.magic = METRICS_MAGIC;
	r->hdr.version = METRICS_VERSION;
	r->hdr.nseries = METRICS_MAX_SERIES;
	r->hdr.slot_size = (uint32_t)sizeof(struct metrics_series);
}

static bool metrics_hdr_is_valid(const struct metrics_region *r)
{
	return r->hdr.magic == METRICS_MAGIC &&
	    r->hdr.version == METRICS_VERSION &&
	    r->hdr.nseries == METRICS_MAX_SERIES &&
	    r->hdr.slot_size == sizeof(struct metrics_series);
}

static void metrics_adopt(struct metrics_region *r, bool shared)
{
	g_metrics.r = r;
	g_metrics.shared = shared;
	g_metrics.gen++;
	log_set_bug_hook(metrics_on_bug);
}

static struct metrics_region *metrics_map(int fd)
{
	int flags = fd < 0 ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED;
	void *p = mmap(NULL, sizeof(struct metrics_region),
	    PROT_READ | PROT_WRITE, flags, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Lazily give the process a private region. No BUG() on failure: the bug
 * hook comes back here. */
static struct metrics_region *metrics_region(void)
{
	struct metrics_region *r;

	if (g_metrics.r)
		return g_metrics.r;
	if (!(r = metrics_map(-1)))
		return NULL;
	metrics_hdr_init(r);
	metrics_adopt(r, false);
	return r;
}

/*
 * Seal the size: a child that could shrink the memfd would make the
 * supervisor fault (SIGBUS) on its next access to the region.
 */
static int metrics_seal(int fd)
{
	return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
}

/*
 * Move the shared region to where the private one was (MAP_FIXED), so
 * series pointers cached before metrics_create() stay valid and keep their
 * counts.
 */
static int metrics_replace_private(struct metrics_region *fresh, int fd)
{
	struct metrics_region *old = g_metrics.r;

	memcpy(fresh, old, sizeof *fresh);
	if (mmap(old, sizeof *old, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
	    fd, 0) == MAP_FAILED)
		return -1;
	munmap(fresh, sizeof *fresh);
	metrics_adopt(old, true);
	return 0;
}

/* The annex of a region in fd, mapped shared; NULL when there is none. */
static void *metrics_annex_map(int fd, size_t len)
{
	void *p;

	if (len == 0)
		return NULL;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
	    (off_t)metrics_annex_off());
	return p == MAP_FAILED ? NULL : p;
}

static void metrics_annex_adopt(void *annex, size_t len)
{
	g_metrics.annex = annex;
	g_metrics.annex_len = annex ? len : 0;
}

static int metrics_create_region(int fd, size_t annex_len)
{
	struct metrics_region *fresh;
	void *annex = NULL;

	if (ftruncate(fd, (off_t)(metrics_annex_off() + annex_len)) < 0 ||
	    metrics_seal(fd) < 0)
		return -1;
	if (annex_len > 0 && !(annex = metrics_annex_map(fd, annex_len)))
		return -1;
	if (!(fresh = metrics_map(fd)))
		goto fail;
	if (!g_metrics.r) {
		metrics_hdr_init(fresh);
		metrics_adopt(fresh, true);
	} else if (metrics_replace_private(fresh, fd) != 0) {
		munmap(fresh, sizeof *fresh);
		goto fail;
	}
	g_metrics.r->hdr.annex_len = annex_len;
	metrics_annex_adopt(annex, annex_len);
	return 0;
fail:
	if (annex)
		munmap(annex, annex_len);
	return -1;
}

int metrics_create(size_t annex_len)
{
	int fd;

	if (g_metrics.shared)
		return BUG("metrics region already mapped");
	if (annex_len > METRICS_ANNEX_MAX)
		return -1;
	/* Not CLOEXEC: children are exec'd and find the fd on their command line. */
	if ((fd = memfd_create(METRICS_MEMFD_NAME, MFD_ALLOW_SEALING)) < 0)
		return -1;
	if (metrics_create_region(fd, annex_len) == 0)
		return fd;
	close(fd);
	return -1;
}

/* Sealed against shrinking and at least a region long; the exact size is
 * checked against the header's annex length once mapped. */
static bool metrics_fd_is_valid(int fd, off_t *size)
{
	struct stat st;
	int seals;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size < (off_t)metrics_annex_off())
		return false;
	*size = st.st_size;
	seals = fcntl(fd, F_GET_SEALS);
	return seals >= 0 && (seals & F_SEAL_SHRINK);
}

int metrics_attach(int fd)
{
	struct metrics_region *r;
	void *annex = NULL;
	uint64_t annex_len;
	off_t size;

	if (!metrics_fd_is_valid(fd, &size) || !(r = metrics_map(fd)))
		return -1;
	annex_len = r->hdr.annex_len;
	if (!metrics_hdr_is_valid(r) || annex_len > METRICS_ANNEX_MAX ||
	    (uint64_t)size != metrics_annex_off() + annex_len ||
	    (annex_len > 0 && !(annex = metrics_annex_map(fd, (size_t)annex_len)))) {
		munmap(r, sizeof *r);
		return -1;
	}
	metrics_detach();
	metrics_adopt(r, true);
	metrics_annex_adopt(annex, (size_t)annex_len);
	return 0;
}

void *metrics_annex(size_t *len)
{
	*len = g_metrics.annex_len;
	return g_metrics.annex;
}

void metrics_detach(void)
{
	if (g_metrics.r)
		munmap(g_metrics.r, sizeof *g_metrics.r);
	if (g_metrics.annex)
		munmap(g_metrics.annex, g_metrics.annex_len);
	metrics_annex_adopt(NULL, 0);
	g_metrics.r = NULL;
	g_metrics.shared = false;
	g_metrics.gen++;
}

unsigned metrics_generation(void)
{
	return g_metrics.gen;
}

/* ---- lookup ------------------------------------------------------------- */

static int metrics_family_find(const char *name)
{
	for (size_t i = 0; i < METRICS_NFAMILIES; i++)
		if (strcmp(metrics_families[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* Family of a slot; NULL if a child scribbled an out-of-range index. */
static const struct metrics_family *metrics_family_of(const metrics_series *s)
{
	return s->family < METRICS_NFAMILIES ? &metrics_families[s->family] : NULL;
}

/* Control characters in a label string would inject lines into /metrics. */
static bool metrics_labels_are_valid(const char *labels, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)labels[i];
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* FNV-1a 64: cheap and well spread; nothing here needs collision resistance
 * (labels come from bounded, program-chosen sets). */
static uint64_t metrics_hash(uint16_t family, const char *labels, size_t len)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	const uint64_t prime = UINT64_C(0x100000001b3);

	h = (h ^ (family & 0xffu)) * prime;
	h = (h ^ (uint64_t)(family >> 8)) * prime;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)labels[i]) * prime;
	return h;
}

static uint32_t metrics_slot_wait(const metrics_series *s)
{
	uint32_t st = METRICS_SLOT_CLAIMING;

	for (int i = 0; i < METRICS_CLAIM_SPINS && st == METRICS_SLOT_CLAIMING; i++) {
		sched_yield();
		st = atomic_load_explicit(&s->state, memory_order_acquire);
	}
	return st;
}

static bool metrics_slot_claim(metrics_series *s, uint32_t *st, uint16_t family,
    const char *labels, size_t len)
{
	if (!atomic_compare_exchange_strong_explicit(&s->state, st,
	    METRICS_SLOT_CLAIMING, memory_order_acq_rel, memory_order_acquire))
		return false;
	s->family = family;
	memcpy(s->labels, labels, len);
	s->labels[len] = '\0';
	atomic_store_explicit(&s->state, METRICS_SLOT_READY, memory_order_release);
	return true;
}

/* True when s now holds (family, labels), claiming it if it was empty. */
static bool metrics_slot_try(metrics_series *s, uint16_t family,
    const char *labels, size_t len)
{
	uint32_t st = atomic_load_explicit(&s->state, memory_order_acquire);

	if (st == METRICS_SLOT_EMPTY &&
	    metrics_slot_claim(s, &st, family, labels, len))
		return true;
	/* Lost the race, or found it taken: st is the current state. */
	if (st == METRICS_SLOT_CLAIMING)
		st = metrics_slot_wait(s);
	if (st != METRICS_SLOT_READY)
		return false;   /* stuck or corrupt: occupied by someone else */
	return s->family == family &&
	    strncmp(s->labels, labels, METRICS_MAX_LABELS) == 0;
}

static metrics_series *metrics_dropped(struct metrics_region *r)
{
	atomic_fetch_add_explicit(&r->hdr.dropped, 1, memory_order_relaxed);
	return NULL;
}

metrics_series *metrics_get(const char *family, const char *labels)
{
	struct metrics_region *r;
	int fam = family ? metrics_family_find(family) : -1;
	size_t len;
	uint64_t h;

	if (fam < 0 || metrics_families[fam].source != METRICS_SRC_SLOTS) {
		BUG("unknown metric family");
		return NULL;
	}
	if (!(r = metrics_region()))
		return NULL;
	labels = labels ? labels : "";
	len = strnlen(labels, METRICS_MAX_LABELS);
	if (len >= METRICS_MAX_LABELS || !metrics_labels_are_valid(labels, len))
		return metrics_dropped(r);
	h = metrics_hash((uint16_t)fam, labels, len);
	for (size_t i = 0; i < METRICS_MAX_SERIES; i++) {
		metrics_series *s = &r->slots[(h + i) & (METRICS_MAX_SERIES - 1)];
		if (metrics_slot_try(s, (uint16_t)fam, labels, len))
			return s;
	}
	return metrics_dropped(r);
}

/* ---- updates ------------------------------------------------------------ */

static bool metrics_is_type(const metrics_series *s, enum metrics_type t)
{
	const struct metrics_family *f = metrics_family_of(s);

	if (f && f->type == t)
		return true;
	BUG("metric used as the wrong type");
	return false;
}

void metrics_inc(metrics_series *s, uint64_t n)
{
	const struct metrics_family *f;

	if (!s)
		return;
	/* Gauges may be counted up too (e.g. open_connections); histograms not. */
	if (!(f = metrics_family_of(s)) || f->type == METRICS_HISTOGRAM) {
		BUG("metric used as the wrong type");
		return;
	}
	atomic_fetch_add_explicit(&s->v[0], n, memory_order_relaxed);
}

/* Gauges are stored as u64 two's complement: fetch_add of a negative delta
 * cast to u64 wraps to the right signed result. */
void metrics_gauge_set(metrics_series *s, int64_t v)
{
	if (s && metrics_is_type(s, METRICS_GAUGE))
		atomic_store_explicit(&s->v[0], (uint64_t)v, memory_order_relaxed);
}

void metrics_gauge_add(metrics_series *s, int64_t d)
{
	if (s && metrics_is_type(s, METRICS_GAUGE))
		atomic_fetch_add_explicit(&s->v[0], (uint64_t)d, memory_order_relaxed);
}

static size_t metrics_hist_bucket(double seconds)
{
	size_t i = 0;

	while (i < METRICS_HIST_BUCKETS && seconds > metrics_hist_bounds[i])
		i++;
	return i;   /* METRICS_HIST_BUCKETS: only in +Inf */
}

void metrics_observe(metrics_series *s, double seconds)
{
	size_t b;

	if (!s || !metrics_is_type(s, METRICS_HISTOGRAM))
		return;
	/* Negative or NaN comes from a clock bug; keep the sum monotonic. */
	if (!(seconds >= 0))
		seconds = 0;
	if (seconds > METRICS_OBSERVE_MAX_S)
		seconds = METRICS_OBSERVE_MAX_S;
	if ((b = metrics_hist_bucket(seconds)) < METRICS_HIST_BUCKETS)
		atomic_fetch_add_explicit(&s->v[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->v[METRICS_HIST_SUM],
	    (uint64_t)(seconds * (double)METRICS_NS_PER_S + 0.5), memory_order_relaxed);
	atomic_fetch_add_explicit(&s->v[METRICS_HIST_COUNT], 1, memory_order_relaxed);
}

uint64_t metrics_value(const metrics_series *s)
{
	const struct metrics_family *f;

	if (!s || !(f = metrics_family_of(s)))
		return 0;
	if (f->type == METRICS_HISTOGRAM)
		return atomic_load_explicit(&s->v[METRICS_HIST_COUNT],
		    memory_order_relaxed);
	return atomic_load_explicit(&s->v[0], memory_order_relaxed);
}

void metrics_count(const char *family, const char *labels, uint64_t n)
{
	metrics_inc(metrics_get(family, labels), n);
}

int metrics_label_escape(char *dst, size_t dstlen, const char *value)
{
	size_t o = 0;

	for (const char *p = value; *p; p++) {
		char c = *p == '\n' ? 'n' : *p;
		bool esc = *p == '\\' || *p == '"' || *p == '\n';

		if (o + (esc ? 2 : 1) >= dstlen)
			return -1;
		if (esc)
			dst[o++] = '\\';
		dst[o++] = c;
	}
	if (dstlen == 0)
		return -1;
	dst[o] = '\0';
	return 0;
}

void metrics_test_set_state(metrics_series *s, int state)
{
	if (s)
		atomic_store_explicit(&s->state, (uint32_t)state, memory_order_release);
}

/* ---- rendering ---------------------------------------------------------- */

struct metrics_buf {
	char   *p;
	size_t  len, cap;
	int     err;
};

static int metrics_buf_grow(struct metrics_buf *b, size_t need)
{
	size_t cap = b->cap ? b->cap : METRICS_RENDER_INIT;
	char *p;

	while (cap < need && cap <= METRICS_RENDER_MAX / 2)
		cap *= 2;
	if (cap < need || !(p = realloc(b->p, cap)))
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

__attribute__((format(printf, 2, 3)))
static void metrics_buf_printf(struct metrics_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (int pass = 0; pass < 2 && !b->err; pass++) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->err = -1;
		} else if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		} else if (metrics_buf_grow(b, b->len + (size_t)n + 1) < 0) {
			b->err = -1;
		}
	}
}

/* A consistent-enough copy of one series (or the sum of duplicates). */
struct metrics_snap {
	uint64_t v[METRICS_SLOT_VALUES];
};

static void metrics_snap_add(struct metrics_snap *sn, const metrics_series *s)
{
	for (size_t i = 0; i < METRICS_SLOT_VALUES; i++)
		sn->v[i] += atomic_load_explicit(&s->v[i], memory_order_relaxed);
}

static int metrics_series_cmp(const void *a, const void *b)
{
	const metrics_series *x = *(const metrics_series *const *)a;
	const metrics_series *y = *(const metrics_series *const *)b;

	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	return strncmp(x->labels, y->labels, METRICS_MAX_LABELS);
}

static bool metrics_slot_is_renderable(const metrics_series *s)
{
	size_t len;

	if (atomic_load_explicit(&s->state, memory_order_acquire) != METRICS_SLOT_READY ||
	    !metrics_family_of(s))
		return false;
	len = strnlen(s->labels, METRICS_MAX_LABELS);
	return len < METRICS_MAX_LABELS && metrics_labels_are_valid(s->labels, len);
}

/* Ready slots sorted by (family, labels): deterministic output. */
static const metrics_series **metrics_collect(const struct metrics_region *r,
    size_t *n)
{
	const metrics_series **v = calloc(METRICS_MAX_SERIES, sizeof *v);

	*n = 0;
	if (!v)
		return NULL;
	for (size_t i = 0; i < METRICS_MAX_SERIES; i++)
		if (metrics_slot_is_renderable(&r->slots[i]))
			v[(*n)++] = &r->slots[i];
	qsort(v, *n, sizeof *v, metrics_series_cmp);
	return v;
}

static void metrics_render_scalar(struct metrics_buf *b,
    const struct metrics_family *f, const char *labels, uint64_t v)
{
	const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";

	if (f->type == METRICS_GAUGE)
		metrics_buf_printf(b, "%s%s%s%s %" PRId64 "\n", f->name, open, labels,
		    close, (int64_t)v);
	else
		metrics_buf_printf(b, "%s%s%s%s %" PRIu64 "\n", f->name, open, labels,
		    close, v);
}

static void metrics_render_hist(struct metrics_buf *b,
    const struct metrics_family *f, const char *labels,
    const struct metrics_snap *sn)
{
	const char *sep = *labels ? "," : "", *open = *labels ? "{" : "",
	    *close = *labels ? "}" : "";
	uint64_t cum = 0, sum = sn->v[METRICS_HIST_SUM];

	for (size_t i = 0; i < METRICS_HIST_BUCKETS; i++) {
		cum += sn->v[i];
		metrics_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n",
		    f->name, labels, sep, metrics_hist_bounds[i], cum);
	}
	/* Values are read without a lock: never let +Inf fall below a bucket. */
	if (sn->v[METRICS_HIST_COUNT] > cum)
		cum = sn->v[METRICS_HIST_COUNT];
	metrics_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n",
	    f->name, labels, sep, cum);
	metrics_buf_printf(b, "%s_sum%s%s%s %" PRIu64 ".%09" PRIu64 "\n", f->name,
	    open, labels, close, sum / METRICS_NS_PER_S, sum % METRICS_NS_PER_S);
	metrics_buf_printf(b, "%s_count%s%s%s %" PRIu64 "\n", f->name, open,
	    labels, close, cum);
}

static const char *metrics_type_name(enum metrics_type t)
{
	switch (t) {
	case METRICS_COUNTER:   return "counter";
	case METRICS_GAUGE:     return "gauge";
	case METRICS_HISTOGRAM: return "histogram";
	}
	return "untyped";
}

/*
 * Render the series of family fam from v[*i…], advancing *i. Equal keys can
 * exist twice only if a reader gave up on a slow (not dead) claimer; they are
 * summed so the exposition never repeats a series.
 */
static void metrics_render_family(struct metrics_buf *b, size_t fam,
    const metrics_series **v, size_t n, size_t *i)
{
	const struct metrics_family *f = &metrics_families[fam];

	while (*i < n && v[*i]->family == fam) {
		struct metrics_snap sn = { { 0 } };
		const metrics_series *first = v[*i];

		while (*i < n && metrics_series_cmp(&first, &v[*i]) == 0)
			metrics_snap_add(&sn, v[(*i)++]);
		if (f->type == METRICS_HISTOGRAM)
			metrics_render_hist(b, f, first->labels, &sn);
		else
			metrics_render_scalar(b, f, first->labels, sn.v[0]);
	}
}

int metrics_render(char **out, size_t *outlen)
{
	struct metrics_buf b = { 0 };
	struct metrics_region *r = metrics_region();
	const metrics_series **v;
	size_t n, i = 0;

	if (!r || !(v = metrics_collect(r, &n)))
		return -1;
	for (size_t fam = 0; fam < METRICS_NFAMILIES; fam++) {
		const struct metrics_family *f = &metrics_families[fam];

		metrics_buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", f->name,
		    f->help, f->name, metrics_type_name(f->type));
		if (f->source == METRICS_SRC_DROPPED)
			metrics_render_scalar(&b, f, "", atomic_load_explicit(
			    &r->hdr.dropped, memory_order_relaxed));
		else
			metrics_render_family(&b, fam, v, n, &i);
	}
	free(v);
	if (b.err || !b.p) {
		free(b.p);
		return -1;
	}
	*out = b.p;
	*outlen = b.len;
	return 0;
}
