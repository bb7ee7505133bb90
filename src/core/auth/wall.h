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
 *   Quota   per-tenant request and byte buckets (core/quota.h). Tenant key:
 *           "t:<tenant>" (Tenant caveat or mTLS), "tid:<token id>", or
 *           "ip:<address>" (IPv6 by /64) for anonymous requests. → 429.
 *
 * One wall per worker process, owned by its event loop. Nothing here logs a
 * token or a key; verdict messages name the failing check only.
 */
#ifndef MN_CORE_WALL_H
#define MN_CORE_WALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct mn_config;
struct policy;

typedef enum {
	WALL_CLASS_CORE = 0,   /* objects, names, mailbox */
	WALL_CLASS_FACET,      /* graph, feed, search, media */
	WALL_CLASS_ADMIN,      /* never gated, never shed */
} wall_class;

/* rejected_total reasons a wall refusal counts under. */
typedef enum {
	WALL_REJ_NONE = 0,
	WALL_REJ_UNAUTH,       /* "unauth"   401 */
	WALL_REJ_FORBIDDEN,    /* "forbidden" 403 / 451 */
	WALL_REJ_QUOTA,        /* "quota"    429 */
	WALL_REJ_413,          /* "413"      the token's byte limit */
} wall_reject;

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
	wall_class  cls;
} wall_req;

#define WALL_MSG_MAX    192
#define WALL_MTLS_MAX   1024   /* entries in auth.mtls_tenants_file */
#define WALL_TENANT_MAX 320

typedef struct wall_verdict {
	int         status;             /* 0 admitted; else 401, 403, 413, 429, 451 */
	const char *code;               /* error envelope code (static) */
	char        message[WALL_MSG_MAX];
	wall_reject reject;
	unsigned    retry_after_s;      /* 429: seconds until the bucket has a token */
	bool        challenge;          /* 401: send WWW-Authenticate */
	bool        invalid_token;      /* 401: the challenge says error="invalid_token" */
	bool        body_capped;        /* admitted: the body must not pass body_cap (which may be 0) */
	uint64_t    body_cap;           /* the tightest of the token's and the policy's limits */
	uint64_t    body_reserved;      /* charge_body: bytes reserved in the byte bucket at admission */
	bool        charge_body;        /* admitted with an unknown size: wall_settle when it ends */
	char        tenant[WALL_TENANT_MAX]; /* quota key (loggable) */
} wall_verdict;

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
bool wall_has_policy(const wall *w);
size_t wall_key_count(const wall *w);

/* Judge one request at now_ms (monotonic, for quotas); fills v. */
void wall_check(wall *w, const wall_req *rq, uint64_t now_ms, wall_verdict *v);

/*
 * Mutual TLS: the tenant auth.mtls_tenants_file maps the peer certificate
 * (an X509 *, verified by the TLS layer) to, by the BLAKE3 of its DER; NULL
 * when there is no certificate, no map, or no entry. Borrowed from the wall.
 */
const char *wall_peer_tenant(const wall *w, const void *x509);

/* A request admitted with charge_body has ended: settle the tenant's byte
 * bucket (the verdict's tenant) from the reserved bytes to the used ones. */
void wall_settle(wall *w, const char *tenant, uint64_t reserved, uint64_t used, uint64_t now_ms);

/* "unauth", "forbidden", "quota", "413" (rejected_total reasons). */
const char *wall_reject_name(wall_reject r);

/*
 * Extract a Bearer token from an Authorization header value. Returns true and
 * sets *tok and *len when the value is "Bearer <token>" (scheme
 * case-insensitive); false when it is anything else.
 */
bool wall_bearer(const char *authorization, const char **tok, size_t *len);

#endif
