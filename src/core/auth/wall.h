/*
 * wall.h — Auth → Policy → Quota for every public request (DESIGN §4),
 * shared by the HTTP gateway and OAP/1 omnigate. The protocol adapters turn
 * their request into a wall_req and a refusal into their own error.
 *
 *   Auth    a capability token (ron-auth v1, core/captoken.h) if one was
 *           presented: it must verify (MAC by kid, Exp/Nbf with skew, Aud =
 *           auth.audience, every caveat, the token's scope). A bad token is
 *           401 whatever the policy says; an authentic token whose scope or
 *           caveats exclude this request is 403 (413 for its byte limit).
 *           No token: the request goes on as anonymous.
 *   Policy  the bundle the supervisor verified (core/policy.h); none loaded
 *           → 403 for everyone (fail secure). Context: method, node.region,
 *           body bytes, tags = the route class's configured tags, plus
 *           "token" for a verified token and "tenant:<t>" for a tenant.
 *           Deny → 403, 451 when the reason is "LEGAL", and 401 with
 *           WWW-Authenticate when the request was anonymous (a token might
 *           have been allowed).
 *   Quota   per-tenant request and byte buckets (core/quota.h), in the
 *           node-wide table of the metrics annex when the process has one
 *           (every worker and omnigate charge it). Tenant key:
 *           "t:<tenant>" (Tenant caveat or mTLS), "tid:<token id>", or
 *           "ip:<address>" (IPv6 by /64) for anonymous requests. → 429.
 *
 * One wall per worker process, owned by its event loop. Nothing here logs a
 * token or a key; ticket messages name the failing check only. Refusals are
 * named by the node's reasons (core/metrics/reject.h): unauth, forbidden,
 * quota, 413.
 */
#ifndef MN_CORE_WALL_H
#define MN_CORE_WALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/metrics/reject.h"

struct mn_config;
struct policy;

typedef enum {
	WALL_CLASS_CORE = 0,   /* objects, names, mailbox */
	WALL_CLASS_FACET,      /* graph, feed, search, media */
	WALL_CLASS_ADMIN,      /* never gated, never shed */
} wall_class;

typedef struct wall_req {
	const char *method;             /* "GET" */
	const char *path;               /* request path, no query */
	const struct sockaddr *peer;    /* may be NULL (IpCidr then fails) */
	int64_t     body_bytes;         /* declared body size; -1 unknown (chunked) */
	uint64_t    body_max;           /* the route's own cap on a body of unknown size */
	const char *token;              /* token characters, or NULL: none presented */
	size_t      token_len;
	bool        bad_credentials;    /* credentials presented in a form we do not take */
	const char *mtls_tenant;        /* tenant of a verified client certificate, or NULL */
	bool        peer_node;          /* another node, authenticated on the peer plane: tag "peer" */
	wall_class  cls;
	/* holder proofs (docs/zk.md): a token bound to a holder key needs one */
	const char *proof;              /* Ron-Proof text (OAP/1: START "proof"), or NULL */
	size_t      proof_len;
	const uint8_t *body_id;         /* 32 bytes the body is known to hash to (PUT /o/{b3},
	                                 * OAP/1 "expect"), or NULL */
	bool        body_digest_enforced; /* the handler holds the body to the proof's digest
	                                   * (wall_ticket_body_digest): object writes */
} wall_req;

#define WALL_MSG_MAX    192
#define ZK_PROOF_HEADER "Ron-Proof"   /* HTTP field carrying a holder proof (docs/zk.md) */
#define ZK_PROOF_TEXT_MAX 140         /* its text: base64url of 105 bytes */
#define WALL_MTLS_MAX   1024   /* entries in auth.mtls_tenants_file */
#define WALL_TENANT_MAX 320

/*
 * A ticket is the wall's judgement of one request, owned by the wall.
 * wall_check hands one out for every request, admitted or refused; the
 * caller keeps the pointer (never a copy of what it says), reads it through
 * the accessors below, and gives it back with wall_ticket_end exactly once,
 * when the request is over however it ended: answered, refused, aborted, or
 * its connection closed. After that the pointer and every string read from
 * it are dead. All tickets must be ended before wall_free.
 *
 * Tickets come from a pool of WALL_TICKETS_MAX per wall, allocated in chunks
 * as needed and reused, never freed before the wall. The bound covers the
 * defaults' worst case (1024 connections × 64 OAP/1 streams); past it
 * wall_check returns the wall's one embedded refusal (503, retryable) rather
 * than allocate: a shared ticket that wall_ticket_end knows not to recycle.
 */
typedef struct wall_ticket wall_ticket;
#define WALL_TICKETS_MAX   65536u
#define WALL_TICKET_CHUNK  256u


typedef struct wall wall;

/* NULL on allocation failure. Starts with no keys and no policy (deny all). */
wall *wall_new(void);
void wall_free(wall *w);
/*
 * (Re)apply config: audience, region, amnesia, class tags, quota limits, the
 * key ring from auth.keys_dir and the mTLS tenant map. A key directory or map
 * that cannot be loaded leaves the wall with what it had (no keys at start:
 * every token → 401) and returns -1 with err naming the file; the rest is
 * applied anyway.
 */
int wall_configure(wall *w, const struct mn_config *cfg, char *err, size_t errlen);
/* The policy in force (borrowed; must outlive its use), or NULL: deny all.
 * digest is the bundle's "b3:<hex>" (GovPolicyDigest caveats), or NULL. */
void wall_set_policy(wall *w, const struct policy *p, const char *digest);
/* The KEK that unseals key files at the next wall_configure (borrowed; the
 * service owns it; NULL = only clear-text key files load). */
struct kek;
void wall_set_kek(wall *w, const struct kek *k);

/* Judge one request at now_ms (monotonic, for quotas). Never NULL; the
 * ticket is the caller's to end (see above). */
wall_ticket *wall_check(wall *w, const wall_req *rq, uint64_t now_ms);

/* ---- reading a ticket (strings borrowed until wall_ticket_end) ---- */
/* 0 admitted; else the refusal status: 401, 403, 413, 429, 451 (503: the
 * ticket pool is exhausted). */
int wall_ticket_status(const wall_ticket *t);
const char *wall_ticket_code(const wall_ticket *t);      /* error envelope code (static) */
const char *wall_ticket_message(const wall_ticket *t);   /* names the failing check, never a token */
reject_reason wall_ticket_reject(const wall_ticket *t);  /* REJECT_NONE when admitted */
unsigned wall_ticket_retry_after(const wall_ticket *t);  /* 429/503: seconds, >= 1 */
/* 401: the WWW-Authenticate value to send (static), or NULL for none. */
const char *wall_ticket_challenge(const wall_ticket *t);
/* Admitted: true when the body must not pass *cap bytes (0 is a cap: no body
 * at all), the tightest of the token's and the policy's limits. */
bool wall_ticket_body_cap(const wall_ticket *t, uint64_t *cap);
/* Admitted with a body of unknown size: true, *bytes = what was reserved in
 * the tenant's byte bucket; wall_ticket_end settles it against the bytes
 * used. */
bool wall_ticket_reserved(const wall_ticket *t, uint64_t *bytes);
/* Admitted with a holder proof on a route that enforces it: true and the
 * BLAKE3 the body must hash to (the object id storage must compute). */
bool wall_ticket_body_digest(const wall_ticket *t, uint8_t out[32]);
/*
 * The write a holder proof bound to its body digest (wall_ticket_body_digest)
 * has been hashed by storage: matched says whether the body hashed to it.
 * The proof's success is counted only now; a mismatch is the proof's
 * failure, reason "binding" (zk_verify_fail_total, rejected_total{unauth}):
 * the handler answers 401 with WALL_ZK_BINDING_MESSAGE and the
 * WALL_CHALLENGE_INVALID_TOKEN header, not storage's 422. A mismatch is
 * also a capability refusal in the audit log (ingress, reason
 * proof_binding, aggregated under key: the ticket's tenant), as the gate's
 * own refusals are; audit may be NULL (no audit service).
 */
struct audit_client;
void wall_ticket_proof_settled(bool matched, struct audit_client *audit, const char *key);
#define WALL_ZK_BINDING_MESSAGE \
	"holder proof refused (binding): the body does not hash to the digest the proof names"
#define WALL_CHALLENGE_INVALID_TOKEN "Bearer realm=\"macronode\", error=\"invalid_token\""
/* The quota key ("t:<tenant>", "tid:<id>", "ip:<addr>"); loggable. */
const char *wall_ticket_tenant(const wall_ticket *t);

/*
 * The request is over: settle the byte bucket if a body of unknown size was
 * reserved (refund what did not arrive, or take what arrived past the
 * reservation as debt, at the current monotonic time) and release the
 * ticket. Exactly once per ticket; a second end is a BUG() and ignored.
 * NULL is a no-op.
 */
void wall_ticket_end(wall_ticket *t, uint64_t bytes_used);

/*
 * OAP/1 streams that arrive together: batch-verify the holder proofs among
 * rqs[0..n) (core/auth/wall_zk.h). wall_check then judges each request in
 * full, skipping only the group arithmetic of proofs the batch passed.
 * Returns how many proofs the batch passed.
 */
size_t wall_zk_batch(wall *w, const wall_req *rqs, size_t n);
/* Does this wall verify holder proofs (zk.enabled in a ZK build)? */
bool wall_zk_active(const wall *w);

/* The node's shared annex (metrics region): the quota table, then the ZK
 * replay table when zk.enabled. Size, and lay-out by the supervisor once. */
size_t wall_annex_size(const struct mn_config *cfg);
__attribute__((warn_unused_result))
int wall_annex_init(void *area, size_t len, const struct mn_config *cfg, uint64_t now_ms);

/*
 * Mutual TLS: the tenant auth.mtls_tenants_file maps the peer certificate
 * (an X509 *, verified by the TLS layer) to, by the BLAKE3 of its DER; NULL
 * when there is no certificate, no map, or no entry. Borrowed from the wall.
 */
const char *wall_peer_tenant(const wall *w, const void *x509);

/*
 * Extract a Bearer token from an Authorization header value. Returns true and
 * sets *tok and *len when the value is "Bearer <token>" (scheme
 * case-insensitive); false when it is anything else.
 */
bool wall_bearer(const char *authorization, const char **tok, size_t *len);

#endif
