/*
 * policy.h — signed policy bundles (ron-policy v1): loading and evaluation.
 *
 * A bundle is strict JSON (docs/policy.md):
 *
 *   { "version": N,                                   required, integer >= 1
 *     "defaults": { "max_body_bytes": N,              optional
 *                   "default_action": "allow"|"deny" },
 *     "rules": [ { "id": "...",                       required, unique, non-empty
 *                  "when": { "method": "GET"|"*",     all optional
 *                            "region": "...",
 *                            "max_body_bytes": N,
 *                            "require_tags_all": ["..."] },
 *                  "action": "allow"|"deny",
 *                  "reason": "..." } ] }             optional
 *
 * Any other field, at any depth, is refused; so are duplicate keys, wrong
 * types and out-of-range numbers. Errors name the JSON path ("$.rules[1].id").
 *
 * Signature: detached Ed25519 (libsodium) over BLAKE3-256 of the exact bundle
 * bytes, stored beside the bundle as "<bundle>.sig" (128 lowercase hex).
 */
#ifndef MN_CORE_POLICY_H
#define MN_CORE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A bundle larger than this is refused before it is parsed or hashed. */
#define POLICY_MAX_BYTES       (1024u * 1024u)
#define POLICY_MAX_RULES       4096u
#define POLICY_MAX_TAGS        64u     /* per rule and per request */
#define POLICY_MAX_STR         256u    /* id, method, region, tag, reason, tenant */
#define POLICY_MAX_META        64u     /* meta entries */
#define POLICY_MAX_OBLIGATIONS 16u     /* per rule */
#define POLICY_MAX_PARAMS      16u     /* per obligation */
#define POLICY_SIG_LEN         64u     /* Ed25519 signature bytes */
#define POLICY_PK_LEN          32u
#define POLICY_SK_LEN          64u     /* libsodium seed||pk form */
#define POLICY_SIG_SUFFIX      ".sig"

/* The reasons the evaluator itself produces (the vectors' spelling). */
#define POLICY_REASON_DEFAULT  "default"
#define POLICY_REASON_BODY     "body too large (defaults)"

typedef enum { POLICY_DENY = 0, POLICY_ALLOW = 1 } policy_decision;

typedef struct policy policy;

/* The request being judged. All pointers borrowed for the call; NULL = absent. */
typedef struct {
	const char *method;          /* "GET", "PUT", ... (compared exactly) */
	const char *region;          /* node region, or NULL */
	uint64_t body_bytes;
	const char *const *tags;     /* ntags strings */
	size_t ntags;
	const char *tenant;          /* when.tenant; NULL: no tenant (matches only "*") */
} policy_ctx;

typedef struct {
	policy_decision decision;
	/* Borrowed from the policy (or a static string); valid while it lives.
	 * NULL when the deciding rule has no reason (as in the reference). */
	const char *reason;
	const char *rule_id;         /* NULL when no rule matched */
} policy_result;

/*
 * Called once per step of an evaluation, in order: rule_id is NULL for the
 * defaults check; outcome is "match" or why the rule failed ("method",
 * "tenant", "region", "max_body_bytes", "require_tags_all") or, for the defaults
 * check, "ok"/"body too large". Both strings borrowed for the call.
 */
typedef void (*policy_trace_fn)(void *arg, const char *rule_id, const char *outcome);

/*
 * Strict parse of len bytes (no signature check). Returns a new policy
 * (caller frees with policy_free) or NULL with err naming the JSON path.
 */
__attribute__((warn_unused_result))
policy *policy_parse(const void *data, size_t len, char *err, size_t errlen);
void policy_free(policy *p);
uint64_t policy_version(const policy *p);
size_t policy_rule_count(const policy *p);

/* Evaluate per ron-policy v1 §5. trace may be NULL. Never fails. */
void policy_eval(const policy *p, const policy_ctx *ctx, policy_result *out,
                 policy_trace_fn trace, void *arg);
const char *policy_decision_name(policy_decision d);

/*
 * For a body whose size is not known yet (chunked, streamed): the largest L
 * such that policy_eval allows every size 0..L for ctx (ctx->body_bytes is
 * ignored); UINT64_MAX when unbounded. false when even an empty body is
 * denied. The caller admits the body and cuts it past L.
 */
bool policy_body_limit(const policy *p, const policy_ctx *ctx, uint64_t *out);

/* Signature over BLAKE3(data[0..len)): 0 when valid, -1 else. Signing is
 * the operator's (policy_sign.h). */
__attribute__((warn_unused_result))
int policy_sig_verify(const void *data, size_t len, const uint8_t sig[POLICY_SIG_LEN],
                      const uint8_t pk[POLICY_PK_LEN]);

/*
 * Read bundle_path (≤ POLICY_MAX_BYTES), verify "<bundle_path>.sig" with the
 * public key in pubkey_path, parse it, and refuse a version lower than
 * min_version (rollback). On success *out is a new policy (caller frees).
 */
__attribute__((warn_unused_result))
int policy_load(const char *bundle_path, const char *pubkey_path, uint64_t min_version,
                policy **out, char *err, size_t errlen);
/* The same, also handing back the verified bundle bytes (caller frees) so
 * they can be passed on unchanged: the supervisor gives them to its workers. */
__attribute__((warn_unused_result))
int policy_load_bytes(const char *bundle_path, const char *pubkey_path, uint64_t min_version,
                      policy **out, char **bytes, size_t *nbytes, char *err, size_t errlen);

#endif
