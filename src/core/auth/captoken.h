/*
 * captoken.h — capability tokens (ron-auth v1, tests/vectors/README.md §3).
 *
 * token = base64url_nopad(CBOR map{tid, kid, scope, caveats, mac}); the MAC is
 * a BLAKE3-keyed chain: tag0 = H(K, CBOR[tid, kid, scope]),
 * tag_i = H(K, tag_{i-1} || CBOR(caveat_i)), mac = tag_n.
 *
 * Decoding is strict: the decoded bytes must be exactly the canonical
 * encoding of what was decoded (definite lengths, shortest heads, keys in the
 * fixed order), so two different token strings never carry the same claims.
 * Appending a caveat needs the root key K with this MAC design.
 *
 * Secrets: keys live only in the key ring (sodium secure memory). Nothing
 * here logs; captoken_info is what callers may log (never the mac or a key).
 */
#ifndef MN_CORE_CAPTOKEN_H
#define MN_CORE_CAPTOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CAPTOKEN_KEY_LEN      32
#define CAPTOKEN_MAC_LEN      32
#define CAPTOKEN_MAX_TOKEN    4096  /* base64url characters */
#define CAPTOKEN_MAX_CAVEATS  64
#define CAPTOKEN_MAX_TEXT     255   /* any text field, bytes */
#define CAPTOKEN_MAX_METHODS  16
#define CAPTOKEN_MAX_METHOD   15    /* bytes of one method name */
#define CAPTOKEN_MAX_CUSTOM   255   /* Custom "cbor" payload bytes */
#define CAPTOKEN_MAX_DEPTH    8     /* CBOR nesting; the schema needs 5 */
#define CAPTOKEN_SKEW_S       60    /* allowed clock skew on Exp/Nbf */
#define CAPTOKEN_MAX_KEYS     16
#define CAPTOKEN_MAX_KID      64

typedef enum {
	CAPTOKEN_OK = 0,
	CAPTOKEN_MALFORMED,       /* base64, CBOR, schema, limits */
	CAPTOKEN_UNKNOWN_CAVEAT,  /* a caveat name this node does not know */
	CAPTOKEN_UNKNOWN_KID,
	CAPTOKEN_BAD_MAC,
	CAPTOKEN_EXPIRED,
	CAPTOKEN_NOT_YET,
	CAPTOKEN_AUDIENCE,
	CAPTOKEN_SCOPE_METHOD,    /* scope methods or a Method caveat */
	CAPTOKEN_SCOPE_PATH,      /* scope prefix or a PathPrefix caveat */
	CAPTOKEN_SCOPE_BYTES,     /* scope max_bytes or a BytesLe caveat */
	CAPTOKEN_IP,
	CAPTOKEN_TENANT,
	CAPTOKEN_AMNESIA,
	CAPTOKEN_GOV_POLICY,
	CAPTOKEN_CUSTOM,          /* Custom caveat outside the allow-list */
	CAPTOKEN_INTERNAL,        /* allocation failure or broken invariant */
	CAPTOKEN_HOLDER,          /* holder caveats that disagree or do not parse */
} captoken_result;

typedef enum {
	CAPTOKEN_CAV_EXP, CAPTOKEN_CAV_NBF, CAPTOKEN_CAV_AUD, CAPTOKEN_CAV_METHOD,
	CAPTOKEN_CAV_PATH_PREFIX, CAPTOKEN_CAV_IP_CIDR, CAPTOKEN_CAV_BYTES_LE,
	CAPTOKEN_CAV_RATE, CAPTOKEN_CAV_TENANT, CAPTOKEN_CAV_AMNESIA,
	CAPTOKEN_CAV_GOV_POLICY_DIGEST, CAPTOKEN_CAV_CUSTOM,
} captoken_cav_kind;

typedef struct {
	char   s[CAPTOKEN_MAX_METHOD + 1];
} captoken_method;

/*
 * The holder-key caveat (docs/auth.md "Holder-bound tokens", docs/zk.md):
 * a v1 Custom caveat {"ns":"macronode","name":"holder","cbor":h'<32 bytes>'}
 * whose value is a CBOR byte string holding the holder's Ristretto255 public
 * key. Being a Custom caveat it decodes, re-encodes and MACs exactly like
 * any other in the v1 set; this node allow-lists it, and the wall then
 * demands a proof of possession of the key (core/auth/zkproof.h).
 */
#define CAPTOKEN_HOLDER_NS    "macronode"
#define CAPTOKEN_HOLDER_NAME  "holder"
#define CAPTOKEN_HOLDER_LEN   32

typedef struct {
	captoken_cav_kind kind;
	uint64_t u;          /* Exp, Nbf, BytesLe; Rate per_s */
	uint64_t u2;         /* Rate burst */
	bool     b;          /* Amnesia */
	char     text[CAPTOKEN_MAX_TEXT + 1];  /* Aud, PathPrefix, IpCidr, Tenant, digest; Custom ns */
	char     text2[CAPTOKEN_MAX_TEXT + 1]; /* Custom name */
	uint8_t  bytes[CAPTOKEN_MAX_CUSTOM];   /* Custom cbor */
	size_t   nbytes;
	captoken_method methods[CAPTOKEN_MAX_METHODS];
	size_t   nmethods;
} captoken_caveat;

/* A decoded or to-be-minted token. Plain data, heap-allocated (it is big). */
typedef struct {
	char     tid[CAPTOKEN_MAX_TEXT + 1];
	char     kid[CAPTOKEN_MAX_KID + 1];
	bool     has_prefix;               /* false: prefix is null (any path) */
	char     prefix[CAPTOKEN_MAX_TEXT + 1];
	captoken_method methods[CAPTOKEN_MAX_METHODS]; /* none: any method */
	size_t   nmethods;
	bool     has_max_bytes;            /* false: max_bytes is null */
	uint64_t max_bytes;
	captoken_caveat caveats[CAPTOKEN_MAX_CAVEATS];
	size_t   ncaveats;
	uint8_t  mac[CAPTOKEN_MAC_LEN];
} captoken;

/* The request a token is checked against. All pointers borrowed. */
typedef struct {
	uint64_t now;                      /* unix seconds */
	const char *audience;              /* node's auth.audience; NULL: Aud fails */
	const char *method;
	const char *path;                  /* normalised request path */
	const struct sockaddr *peer;       /* NULL: IpCidr fails */
	uint64_t body_bytes;
	const char *tenant;                /* NULL: unknown, the token's is used */
	bool amnesia;                      /* node runs in amnesia mode */
	const char *gov_policy_digest;     /* NULL: GovPolicyDigest fails */
} captoken_ctx;

/* Loggable facts about a token; never the mac, never a key. */
typedef struct {
	char tid[CAPTOKEN_MAX_TEXT + 1];
	char kid[CAPTOKEN_MAX_KID + 1];
	char tenant[CAPTOKEN_MAX_TEXT + 1]; /* "" when none */
	bool has_rate;                      /* tightest Rate caveat */
	uint64_t rate_per_s;
	uint64_t rate_burst;
	bool     has_holder;                /* a holder caveat: the request must prove the key */
	uint8_t  holder[CAPTOKEN_HOLDER_LEN];
} captoken_info;

typedef struct captoken_keyring captoken_keyring;
struct kek;   /* core/keys/kek.h */

/* Tokens. captoken_new zeroes; captoken_free(NULL) is a no-op. */
captoken *captoken_new(void);
void captoken_free(captoken *t);
const char *captoken_result_name(captoken_result r);
const char *captoken_cav_name(captoken_cav_kind k);

/* Strict decode of len characters of s. *out (caller frees) only on OK. */
__attribute__((warn_unused_result))
captoken_result captoken_decode(const char *s, size_t len, captoken **out);

/* The same into a caller's token (reused across requests: no allocation, and
 * only the caveats present are cleared). t is garbage unless OK. */
__attribute__((warn_unused_result))
captoken_result captoken_decode_into(const char *s, size_t len, captoken *t);

/* Canonical CBOR of [tid, kid, scope] / of one caveat. 0 or -1 (too small). */
__attribute__((warn_unused_result))
int captoken_init_cbor(const captoken *t, uint8_t *buf, size_t cap, size_t *len);
__attribute__((warn_unused_result))
int captoken_caveat_cbor(const captoken_caveat *c, uint8_t *buf, size_t cap, size_t *len);

/* The MAC chain over t's fields with key. 0 or -1. */
__attribute__((warn_unused_result))
int captoken_compute_mac(const captoken *t, const uint8_t key[CAPTOKEN_KEY_LEN],
                         uint8_t out[CAPTOKEN_MAC_LEN]);

/*
 * Sets t->mac from key and writes the token string (NUL-terminated) to out.
 * -1 when a field breaks a limit or the token would exceed
 * CAPTOKEN_MAX_TOKEN or cap.
 */
__attribute__((warn_unused_result))
int captoken_mint(captoken *t, const uint8_t key[CAPTOKEN_KEY_LEN], char *out, size_t cap);

/*
 * Appends n caveats to t after checking t's MAC with key (the chain cannot be
 * extended without it), then re-mints into out. Returns OK, BAD_MAC, or
 * MALFORMED (limits).
 */
__attribute__((warn_unused_result))
captoken_result captoken_attenuate(captoken *t, const captoken_caveat *add, size_t n,
                                   const uint8_t key[CAPTOKEN_KEY_LEN], char *out, size_t cap);

/*
 * Full check of a token string: decode, key by kid, MAC (constant time),
 * scope, every caveat. info (may be NULL) is filled as far as decoding got.
 */
__attribute__((warn_unused_result))
captoken_result captoken_verify(const char *s, size_t len, const captoken_keyring *kr,
                                const captoken_ctx *ctx, captoken_info *info);
/* Same for an already decoded token. */
__attribute__((warn_unused_result))
captoken_result captoken_check(const captoken *t, const captoken_keyring *kr,
                               const captoken_ctx *ctx, captoken_info *info);

/* Caveat builders for callers (CLI, tests). 0 or -1 (too long / malformed). */
__attribute__((warn_unused_result))
int captoken_caveat_set_text(captoken_caveat *c, captoken_cav_kind k, const char *s);
__attribute__((warn_unused_result))
int captoken_method_set(captoken_method *m, const char *s);
/* The holder caveat binding the token to public key pk. */
void captoken_caveat_set_holder(captoken_caveat *c, const uint8_t pk[CAPTOKEN_HOLDER_LEN]);
/* Is c a holder caveat (ns and name)? Its key into pk when well formed:
 * true with *pk set, or true with *well_formed false. */
bool captoken_caveat_holder(const captoken_caveat *c, uint8_t pk[CAPTOKEN_HOLDER_LEN],
                            bool *well_formed);

/*
 * Key ring: kid → 32-byte key in sodium secure memory (read-only except while
 * loading). Several kids are valid at once; one is designated for minting.
 */
captoken_keyring *captoken_keyring_new(void);
void captoken_keyring_free(captoken_keyring *kr);
/* Adds a key (copied). -1 on a bad kid, a duplicate or a full ring. */
__attribute__((warn_unused_result))
int captoken_keyring_add(captoken_keyring *kr, const char *kid, const uint8_t key[CAPTOKEN_KEY_LEN]);
/*
 * Loads one key file (64 hex chars, optional trailing newline, regular file
 * owned by us with mode 0600 or stricter). err names the file, never its
 * content.
 */
__attribute__((warn_unused_result))
int captoken_keyring_load_file(captoken_keyring *kr, const char *path, const char *kid,
                               char *err, size_t errlen);
/* Loads every <kid>.key in dir: 0; -1 when a file (or the dir) cannot be
 * read or is refused; CAPTOKEN_KEYS_NONE when the dir does not exist or holds
 * no key file (the operator withdrew every key). err says which. */
#define CAPTOKEN_KEYS_NONE (-2)
__attribute__((warn_unused_result))
int captoken_keyring_load_dir(captoken_keyring *kr, const char *dir, char *err, size_t errlen);
/* Borrowed pointer into secure memory, or NULL. Do not copy it out. */
const uint8_t *captoken_keyring_find(const captoken_keyring *kr, const char *kid);
size_t captoken_keyring_count(const captoken_keyring *kr);

/* What the ring knows of a key besides its bytes. */
typedef struct {
	int64_t created_ms;    /* sealing time; clear-text files: their mtime */
	int64_t not_after_ms;  /* 0 = none; else stops verifying then (<kid>.expires) */
	bool    sealed;        /* false: a clear-text file of an earlier version */
} captoken_key_meta;

#define CAPTOKEN_EXPIRES_SUFFIX ".expires"
#define CAPTOKEN_MINTING_FILE   "minting"

/* Reads a standalone key file (same rules; sealed files are opened with k
 * and the AAD of kid) into secure memory; caller releases with sodium_free.
 * meta may be NULL. NULL with err on failure. */
uint8_t *captoken_key_read(const char *path, const struct kek *k, const char *kid,
                           captoken_key_meta *meta, char *err, size_t errlen);

/* The KEK that unseals key files at the next load (borrowed; NULL = none,
 * only clear-text files load). */
void captoken_keyring_set_kek(captoken_keyring *kr, const struct kek *k);
/* Like captoken_keyring_find, NULL also once the key's grace is over. */
const uint8_t *captoken_keyring_find_at(const captoken_keyring *kr, const char *kid,
                                        uint64_t now_s);
/* The minting kid: the one <keys_dir>/minting names (set_mint), else the
 * only key; NULL when several and none designated. */
__attribute__((warn_unused_result))
int captoken_keyring_set_mint(captoken_keyring *kr, const char *kid);
const char *captoken_keyring_mint_kid(const captoken_keyring *kr);
/* The i-th kid and its meta (may be NULL), or NULL past the end. */
const char *captoken_keyring_kid(const captoken_keyring *kr, size_t i, captoken_key_meta *meta);

/* A kid names a key file and appears in logs: 1..CAPTOKEN_MAX_KID of [A-Za-z0-9._-], not starting with '.'. */
bool captoken_kid_valid(const char *s, size_t n);

#endif
