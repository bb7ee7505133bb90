/*
 * wall.c — Auth → Policy → Quota (see wall.h).
 */
#include "core/auth/wall.h"
#include "core/auth/wall_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "core/audit/audit_client.h"
#include "core/auth/captoken.h"
#include "core/config/config.h"
#include "core/auth/policy.h"
#include "core/auth/quota.h"
#include "core/auth/wall_zk.h"
#include "core/metrics/metrics.h"
#include "lib/b3.h"
#include "lib/log.h"
#include "lib/util.h"

#define WALL_CLASSES      2                    /* core, facet carry tags */
#define WALL_EXTRA_TAGS   3                    /* "token", "tenant:<t>", "peer" */
#define WALL_DIGEST_MAX   80
#define WALL_ZK_BATCH     64                   /* proofs in one batch (ZK_BATCH_MAX) */
/* Decoded tokens kept per worker: decoding (base64, CBOR tree, canonical
 * re-encode) is most of a token's cost and is a pure function of the string,
 * so a hit needs no invalidation. The MAC and every caveat are still checked
 * on every request. 8 × ~70 KiB. */
#define WALL_TOKEN_CACHE  8

struct wall_tok {
	captoken *t;
	char      s[CAPTOKEN_MAX_TOKEN];  /* the token string; len 0 = empty slot */
	size_t    len;
	uint64_t  used;
};

/* What wall_check decided (wall.h: the caller holds only the pointer). */
struct wall_ticket {
	wall         *w;
	wall_ticket  *next;              /* free list */
	bool          out;               /* handed out, not yet ended */
	bool          pooled;            /* false: the wall's embedded "busy" refusal */
	int           status;            /* 0 admitted; else 401, 403, 413, 429, 451, 503 */
	const char   *code;              /* error envelope code (static) */
	reject_reason reject;
	unsigned      retry_after_s;     /* 429/503 */
	bool          challenge;         /* 401: send WWW-Authenticate */
	bool          invalid_token;     /* 401: the challenge says error="invalid_token" */
	bool          body_capped;       /* admitted: the body must not pass body_cap (which may be 0) */
	uint64_t      body_cap;          /* the tightest of the token's and the policy's limits */
	bool          charge_body;       /* admitted with an unknown size: settled at the end */
	uint64_t      body_reserved;     /* charge_body: bytes reserved in the byte bucket */
	bool          has_body_digest;   /* admitted by a holder proof on an object write */
	uint8_t       body_digest[B3_OUT_LEN];
	char          message[WALL_MSG_MAX];
	char          tenant[WALL_TENANT_MAX]; /* quota key (loggable) */
};

#define WALL_TICKET_CHUNKS (WALL_TICKETS_MAX / WALL_TICKET_CHUNK)

struct wall_mtls {
	uint8_t digest[B3_OUT_LEN];
	char    tenant[CAPTOKEN_MAX_TEXT + 1];
};

struct wall {
	captoken_keyring *keys;
	struct wall_mtls *mtls;                      /* auth.mtls_tenants_file (≤ 1024, linear search) */
	size_t            nmtls;
	struct wall_tok   cache[WALL_TOKEN_CACHE];   /* decoded tokens, LRU */
	uint64_t          cache_tick;
	const policy     *pol;                       /* borrowed; NULL: deny all */
	char              digest[WALL_DIGEST_MAX];   /* "" when unknown */
	char              audience[CONFIG_TEXT_MAX];
	char              region[CONFIG_TEXT_MAX];
	bool              amnesia;
	const struct kek *kek;        /* borrowed from the service: unseals key files */
	char              tags[WALL_CLASSES][CONFIG_TAGS_MAX][CONFIG_TAG_MAX + 1];
	size_t            ntags[WALL_CLASSES];
	quota_table      *quota;
	wall_zk          *zk;                        /* holder proofs (wall_zk.c) */
	/* ticket pool: chunks allocated on demand, tickets recycled through
	 * free_tickets, everything freed with the wall */
	wall_ticket      *chunks[WALL_TICKET_CHUNKS];
	size_t            nchunks;
	wall_ticket      *free_tickets;
	size_t            tickets_out;
	wall_ticket       busy;                      /* the refusal when the pool is empty */
};

wall *wall_new(void)
{
	wall *w = calloc(1, sizeof *w);

	if (!w)
		return NULL;
	w->keys = captoken_keyring_new();
	w->zk = wall_zk_new();
	for (size_t i = 0; i < WALL_TOKEN_CACHE; i++)
		if (!(w->cache[i].t = captoken_new())) {
			wall_free(w);
			return NULL;
		}
	if (!w->keys || !w->zk) {
		wall_free(w);
		return NULL;
	}
	return w;
}

void wall_free(wall *w)
{
	if (!w)
		return;
	captoken_keyring_free(w->keys);
	for (size_t i = 0; i < WALL_TOKEN_CACHE; i++)
		captoken_free(w->cache[i].t);
	quota_free(w->quota);
	wall_zk_free(w->zk);
	free(w->mtls);
	for (size_t i = 0; i < w->nchunks; i++)
		free(w->chunks[i]);
	free(w);
}

/* Split a validated (config_validate) comma-separated tag list. */
static size_t split_tags(const char *list, char out[][CONFIG_TAG_MAX + 1])
{
	size_t n = 0;

	for (const char *p = list; *p && n < CONFIG_TAGS_MAX;) {
		size_t len = strcspn(p, ",");
		if (len > 0 && len <= CONFIG_TAG_MAX) {
			memcpy(out[n], p, len);
			out[n++][len] = '\0';
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return n;
}

static void configure_quota(wall *w, const mn_config *cfg)
{
	quota_limits l = {
		.rps = cfg->quota_rps, .burst = cfg->quota_burst,
		.bytes_per_s = cfg->quota_bytes_per_s, .bytes_burst = cfg->quota_bytes_burst,
		.max_tenants = cfg->quota_max_tenants,
	};
	struct timespec ts;

	size_t len;
	void *area;

	if (w->quota) {
		quota_set_limits(w->quota, &l);
		return;
	}
	/* The node's table, laid out by the supervisor in the metrics annex;
	 * a process without one (tests, tools) keeps a table of its own. */
	if ((area = metrics_annex(&len)) != NULL) {
		size_t qlen = quota_area_size(cfg->quota_max_tenants);
		w->quota = qlen <= len ? quota_open(area, qlen, &l) : NULL;
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	w->quota = quota_new(&l, (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

/* The annex: [quota table][pad to 64][zk replay table]. */
static size_t annex_zk_off(const mn_config *cfg)
{
	return (quota_area_size(cfg->quota_max_tenants) + 63u) / 64u * 64u;
}

size_t wall_annex_size(const mn_config *cfg)
{
	size_t z = wall_zk_area_size(cfg);

	return z ? annex_zk_off(cfg) + z : quota_area_size(cfg->quota_max_tenants);
}

int wall_annex_init(void *area, size_t len, const mn_config *cfg, uint64_t now_ms)
{
	size_t z = wall_zk_area_size(cfg);

	if (!area || len < wall_annex_size(cfg) ||
	    quota_area_init(area, quota_area_size(cfg->quota_max_tenants), cfg->quota_max_tenants,
	                    now_ms) != 0)
		return -1;
	return z ? wall_zk_area_init((uint8_t *)area + annex_zk_off(cfg), z, cfg) : 0;
}

static int configure_zk(wall *w, const mn_config *cfg, char *err, size_t errlen)
{
	size_t len = 0, z = wall_zk_area_size(cfg);
	uint8_t *area = metrics_annex(&len);

	if (area && z && len >= annex_zk_off(cfg) + z)
		return wall_zk_configure(w->zk, cfg, area + annex_zk_off(cfg), z, err, errlen);
	return wall_zk_configure(w->zk, cfg, NULL, 0, err, errlen);
}

static bool tenant_name_ok(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > CAPTOKEN_MAX_TEXT)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e)
			return false;
	return true;
}

/* Load the mTLS map (strict: a bad entry refuses the whole file, naming it). */
static int load_mtls(wall *w, const char *path, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j, *v;
	const char *k;
	struct wall_mtls *m = NULL;
	size_t n = 0;

	if (!path[0]) {
		free(w->mtls);
		w->mtls = NULL;
		w->nmtls = 0;
		return 0;
	}
	if (!(j = json_load_file(path, JSON_REJECT_DUPLICATES, &je)) || !json_is_object(j) ||
	    json_object_size(j) > WALL_MTLS_MAX) {
		snprintf(err, errlen, "%s: %s", path, j ? "must be a JSON object of at most 1024 entries"
		                                          : je.text);
		json_decref(j);
		return -1;
	}
	if (json_object_size(j) && !(m = calloc(json_object_size(j), sizeof *m))) {
		json_decref(j);
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	json_object_foreach(j, k, v) {
		const char *t = json_string_value(v);
		if (b3_cid_parse(k, strlen(k), m[n].digest) != 0 || !t || !tenant_name_ok(t)) {
			snprintf(err, errlen, "%s: entry \"%.80s\": want \"b3:<64 hex>\": \"<tenant, "
			         "printable ASCII, no spaces>\"", path, k);
			free(m);
			json_decref(j);
			return -1;
		}
		snprintf(m[n++].tenant, sizeof m->tenant, "%s", t);
	}
	json_decref(j);
	free(w->mtls);
	w->mtls = m;
	w->nmtls = n;
	return 0;
}

const char *wall_peer_tenant(const wall *w, const void *x509)
{
	unsigned char *der = NULL;
	uint8_t d[B3_OUT_LEN];
	const char *found = NULL;

	if (!x509 || !w->nmtls)
		return NULL;
	int len = i2d_X509((X509 *)x509, &der);
	if (len <= 0)
		return NULL;
	b3_hash(der, (size_t)len, d);
	OPENSSL_free(der);
	for (size_t i = 0; i < w->nmtls && !found; i++)
		if (b3_equal(d, w->mtls[i].digest))
			found = w->mtls[i].tenant;
	return found;
}

/* Load into a fresh ring and swap only on success: a broken key file on
 * reload must not cost the node the keys it has. */
static int load_keys(wall *w, const mn_config *cfg, char *err, size_t errlen)
{
	char dir[CONFIG_PATH_MAX];
	captoken_keyring *kr;

	if (config_keys_dir(cfg, dir, sizeof dir) != 0) {
		snprintf(err, errlen, "auth.keys_dir: path too long");
		return -1;
	}
	if (!(kr = captoken_keyring_new())) {
		snprintf(err, errlen, "out of memory for the key ring");
		return -1;
	}
	captoken_keyring_set_kek(kr, w->kek);
	int rc = captoken_keyring_load_dir(kr, dir, err, errlen);
	/* No key at all is a revocation (every key removed): in force at once.
	 * A file that cannot be read or is refused keeps what was loaded. */
	if (rc != 0 && rc != CAPTOKEN_KEYS_NONE) {
		metrics_count("key_load_refused_total", strstr(err, "unseal") || strstr(err, "KEK") ?
		              "reason=\"unseal\"" : "reason=\"file\"", 1);
		captoken_keyring_free(kr);
		return -1;
	}
	captoken_keyring_free(w->keys);
	w->keys = kr;
	return rc == 0 ? 0 : -1;
}

int wall_configure(wall *w, const mn_config *cfg, char *err, size_t errlen)
{
	snprintf(w->audience, sizeof w->audience, "%s", cfg->auth_audience);
	snprintf(w->region, sizeof w->region, "%s", cfg->node_region);
	w->amnesia = cfg->amnesia;
	w->ntags[WALL_CLASS_CORE] = split_tags(cfg->policy_tags_core, w->tags[WALL_CLASS_CORE]);
	w->ntags[WALL_CLASS_FACET] = split_tags(cfg->policy_tags_facet, w->tags[WALL_CLASS_FACET]);
	configure_quota(w, cfg);
	if (!w->quota) {
		snprintf(err, errlen, "cannot open the node's quota table");
		return -1;
	}
	/* Each part independently: a bad mTLS map (or a replay table that
	 * cannot open: holder tokens are then refused) must not cost the keys. */
	char zerr[WALL_MSG_MAX];
	int zrc = configure_zk(w, cfg, zerr, sizeof zerr);
	int rc = load_keys(w, cfg, err, errlen);
	if (rc == 0)
		rc = load_mtls(w, cfg->auth_mtls_tenants_file, err, errlen);
	else {
		char ignored[8];
		(void)load_mtls(w, cfg->auth_mtls_tenants_file, ignored, sizeof ignored);
	}
	if (rc == 0 && zrc != 0) {
		snprintf(err, errlen, "%s", zerr);
		return -1;
	}
	return rc;
}

void wall_set_kek(wall *w, const struct kek *k)
{
	w->kek = k;
}

void wall_set_policy(wall *w, const policy *p, const char *digest)
{
	w->pol = p;
	snprintf(w->digest, sizeof w->digest, "%s", p && digest ? digest : "");
}

bool wall_has_policy(const wall *w)
{
	return w->pol != NULL;
}

size_t wall_key_count(const wall *w)
{
	return captoken_keyring_count(w->keys);
}

bool wall_bearer(const char *h, const char **tok, size_t *len)
{
	static const char scheme[] = "Bearer";
	size_t n = sizeof scheme - 1;

	if (!h || strncasecmp(h, scheme, n) != 0 || (h[n] != ' ' && h[n] != '\t'))
		return false;
	h += n;
	while (*h == ' ' || *h == '\t')
		h++;
	size_t l = strlen(h);
	while (l > 0 && (h[l - 1] == ' ' || h[l - 1] == '\t'))
		l--;
	if (l == 0)
		return false;
	*tok = h;
	*len = l;
	return true;
}

/* ---- verdicts ----------------------------------------------------------- */

__attribute__((format(printf, 5, 6)))
static void refuse(wall_ticket *v, int status, const char *code, reject_reason why,
                   const char *fmt, ...)
{
	va_list ap;

	v->status = status;
	v->code = code;
	v->reject = why;
	va_start(ap, fmt);
	vsnprintf(v->message, sizeof v->message, fmt, ap);
	va_end(ap);
}

static void unauth(wall_ticket *v, bool invalid, const char *what, const char *detail)
{
	refuse(v, 401, "unauthenticated", REJECT_UNAUTH, "%s%s", what, detail);
	v->challenge = true;
	v->invalid_token = invalid;
}

/* ---- auth --------------------------------------------------------------- */

/* Lower the verdict's body cap to n (0 is a cap: no body at all). */
static void cap_body(wall_ticket *v, uint64_t n)
{
	if (!v->body_capped || n < v->body_cap) {
		v->body_cap = n;
		v->body_capped = true;
	}
}

/* The token's byte limits: scope max_bytes and every BytesLe caveat. */
static void token_byte_cap(const captoken *t, wall_ticket *v)
{
	if (t->has_max_bytes)
		cap_body(v, t->max_bytes);
	for (size_t i = 0; i < t->ncaveats; i++)
		if (t->caveats[i].kind == CAPTOKEN_CAV_BYTES_LE)
			cap_body(v, t->caveats[i].u);
}

/* The decoded token for s, from the cache or decoded into the least recently
 * used slot. NULL with *r set when it does not decode. */
static const captoken *token_decoded(wall *w, const char *s, size_t len, captoken_result *r)
{
	struct wall_tok *slot = &w->cache[0];

	for (size_t i = 0; i < WALL_TOKEN_CACHE; i++) {
		struct wall_tok *e = &w->cache[i];
		if (e->len == len && memcmp(e->s, s, len) == 0) {
			e->used = ++w->cache_tick;
			*r = CAPTOKEN_OK;
			return e->t;
		}
		if (e->used < slot->used)
			slot = e;
	}
	slot->len = 0;
	if (len > sizeof slot->s) {
		*r = CAPTOKEN_MALFORMED;
		return NULL;
	}
	if ((*r = captoken_decode_into(s, len, slot->t)) != CAPTOKEN_OK)
		return NULL;
	memcpy(slot->s, s, len);
	slot->len = len;
	slot->used = ++w->cache_tick;
	return slot->t;
}

/* The request a token is checked against. */
static void token_ctx(const wall *w, const wall_req *rq, captoken_ctx *ctx)
{
	*ctx = (captoken_ctx){
		.now = (uint64_t)time(NULL),
		.audience = w->audience[0] ? w->audience : NULL,
		.method = rq->method, .path = rq->path, .peer = rq->peer,
		.body_bytes = rq->body_bytes > 0 ? (uint64_t)rq->body_bytes : 0,
		.tenant = rq->mtls_tenant, .amnesia = w->amnesia,
		.gov_policy_digest = w->digest[0] ? w->digest : NULL,
	};
}

/* Verify a presented token. false: refused (v filled). */
static bool auth_token(wall *w, const wall_req *rq, captoken_info *info, wall_ticket *v)
{
	captoken_ctx ctx;
	captoken_result r;
	const captoken *t = token_decoded(w, rq->token, rq->token_len, &r);

	token_ctx(w, rq, &ctx);
	if (t && (r = captoken_check(t, w->keys, &ctx, info)) == CAPTOKEN_OK)
		token_byte_cap(t, v);
	switch (r) {
	case CAPTOKEN_OK:
		return true;
	case CAPTOKEN_SCOPE_METHOD: case CAPTOKEN_SCOPE_PATH: case CAPTOKEN_IP:
	case CAPTOKEN_TENANT: case CAPTOKEN_AMNESIA: case CAPTOKEN_GOV_POLICY:
	case CAPTOKEN_CUSTOM: case CAPTOKEN_HOLDER:
		refuse(v, 403, "forbidden", REJECT_FORBIDDEN,
		       "the capability does not allow this request (%s)", captoken_result_name(r));
		return false;
	case CAPTOKEN_SCOPE_BYTES:
		refuse(v, 413, "payload_too_large", REJECT_413,
		       "the request body exceeds the capability's byte limit (%s)",
		       captoken_result_name(r));
		return false;
	default:
		unauth(v, true, "capability token refused: ", captoken_result_name(r));
		return false;
	}
}

/* ---- policy ------------------------------------------------------------- */

static bool policy_step(wall *w, const wall_req *rq, bool token, const char *tenant,
                        wall_ticket *v)
{
	const char *tags[CONFIG_TAGS_MAX + WALL_EXTRA_TAGS];
	char tenant_tag[WALL_TENANT_MAX + 8];
	size_t n = 0;

	if (!w->pol) {
		refuse(v, 403, "policy_unavailable", REJECT_FORBIDDEN,
		       "no valid policy bundle is loaded: every request is denied");
		return false;
	}
	if (rq->cls < WALL_CLASSES)
		for (size_t i = 0; i < w->ntags[rq->cls]; i++)
			tags[n++] = w->tags[rq->cls][i];
	if (token)
		tags[n++] = "token";
	if (rq->peer_node)
		tags[n++] = "peer";
	if (tenant && tenant[0]) {
		snprintf(tenant_tag, sizeof tenant_tag, "tenant:%s", tenant);
		tags[n++] = tenant_tag;
	}
	policy_ctx ctx = {
		.method = rq->method, .region = w->region[0] ? w->region : NULL,
		.body_bytes = rq->body_bytes > 0 ? (uint64_t)rq->body_bytes : 0,
		.tags = tags, .ntags = n, .tenant = tenant,
	};
	policy_result res;
	uint64_t limit;

	/* Unknown size (chunked, OAP/1 PUT): admitted up to the largest size the
	 * policy allows here, and cut past it by the protocol (body_cap). A size
	 * the policy never allows is judged as an empty body, for the reason. */
	if (rq->body_bytes < 0 && policy_body_limit(w->pol, &ctx, &limit)) {
		if (limit != UINT64_MAX)
			cap_body(v, limit);
		return true;
	}
	policy_eval(w->pol, &ctx, &res, NULL, NULL);
	if (res.decision == POLICY_ALLOW)
		return true;
	if (res.reason && strcmp(res.reason, "LEGAL") == 0)
		refuse(v, 451, "unavailable_for_legal_reasons", REJECT_FORBIDDEN,
		       "denied by policy for legal reasons (rule %s)", res.rule_id ? res.rule_id : "default");
	else if (!token)
		unauth(v, false, "authentication required: the policy does not allow this "
		       "anonymously; rule ", res.rule_id ? res.rule_id : "default");
	else
		refuse(v, 403, "forbidden", REJECT_FORBIDDEN, "denied by policy (rule %s)",
		       res.rule_id ? res.rule_id : "default");
	return false;
}

/* ---- quota -------------------------------------------------------------- */

/* Anonymous requests are keyed by address; IPv6 by its /64 (one host owns a
 * whole /64 routinely). */
static bool quota_step(wall *w, const wall_req *rq, const captoken_info *info, bool token,
                       const char *tenant, uint64_t now_ms, wall_ticket *v)
{
	unsigned retry = 1;

	if (tenant && tenant[0])
		snprintf(v->tenant, sizeof v->tenant, "t:%s", tenant);
	else if (token)
		snprintf(v->tenant, sizeof v->tenant, "tid:%s", info->tid);
	else
		util_peer_key(rq->peer, v->tenant, sizeof v->tenant);
	if (!w->quota)
		return true;
	/* Unknown size: reserve as much as the body may carry (so concurrent
	 * streams cannot outrun the bucket); the caller settles with what
	 * actually arrived when the request ends (wall_settle). */
	uint64_t bytes = rq->body_bytes > 0 ? (uint64_t)rq->body_bytes : 0;
	if (rq->body_bytes < 0) {
		bytes = rq->body_max ? rq->body_max : 1;
		if (v->body_capped && v->body_cap < bytes)
			bytes = v->body_cap;
		v->charge_body = true;
		v->body_reserved = bytes;
	}
	quota_result r = quota_charge(w->quota, v->tenant, bytes,
	                              token && info->has_rate ? info->rate_per_s : 0,
	                              token && info->has_rate ? info->rate_burst : 0, now_ms, &retry);
	if (r == QUOTA_OK)
		return true;
	refuse(v, 429, "quota_exceeded", REJECT_QUOTA, "tenant quota exceeded (%s)",
	       quota_result_name(r));
	v->retry_after_s = retry ? retry : 1;
	return false;
}

/* A cleared ticket from the pool, or NULL when WALL_TICKETS_MAX are out. */
static wall_ticket *ticket_get(wall *w)
{
	wall_ticket *t = w->free_tickets;

	if (!t && w->nchunks < WALL_TICKET_CHUNKS &&
	    (t = calloc(WALL_TICKET_CHUNK, sizeof *t))) {
		w->chunks[w->nchunks++] = t;
		for (size_t i = 1; i < WALL_TICKET_CHUNK; i++) {
			t[i].next = w->free_tickets;
			w->free_tickets = &t[i];
		}
	} else if (t) {
		w->free_tickets = t->next;
	}
	if (!t)
		return NULL;
	memset(t, 0, sizeof *t);
	t->w = w;
	t->pooled = true;
	t->out = true;
	w->tickets_out++;
	return t;
}

/* The pool is empty: every caller shares the embedded refusal, which
 * wall_ticket_end leaves alone. */
static wall_ticket *ticket_busy(wall *w)
{
	wall_ticket *t = &w->busy;

	memset(t, 0, sizeof *t);
	t->w = w;
	refuse(t, 503, "overloaded", REJECT_503, "too many requests in progress");
	t->retry_after_s = 1;
	return t;
}

/* Holder proofs: a token bound to a key needs one, a proof needs such a
 * token (a client that sends a proof means it). false: refused. */
static bool zk_step(wall *w, const wall_req *rq, const captoken_info *info, wall_ticket *v)
{
	wall_zk_verdict zv;

	if (!info->has_holder && !rq->proof)
		return true;
	wall_zk_check(w->zk, rq, info, w->audience[0] ? w->audience : NULL, &zv);
	if (!zv.ok) {
		refuse(v, 401, "unauthenticated", REJECT_UNAUTH, "holder proof refused (%s): %s",
		       zv.reason, zv.detail);
		v->challenge = true;
		v->invalid_token = true;
		return false;
	}
	v->has_body_digest = zv.has_digest;
	memcpy(v->body_digest, zv.digest, sizeof v->body_digest);
	return true;
}

bool wall_zk_active(const wall *w)
{
	return wall_zk_enabled(w->zk);
}

size_t wall_zk_batch(wall *w, const wall_req *rqs, size_t n)
{
	const uint8_t *holders[WALL_ZK_BATCH];
	uint8_t keys[WALL_ZK_BATCH][CAPTOKEN_HOLDER_LEN];
	captoken_result r;
	captoken_info info;
	captoken_ctx ctx;

	if (!wall_zk_enabled(w->zk))
		return 0;
	if (n > WALL_ZK_BATCH)
		n = WALL_ZK_BATCH;
	/* Only tokens that verify (MAC and caveats, as the wall will check them
	 * anyway) bring their proofs into a batch: a forged token costs a
	 * BLAKE3, never group arithmetic. */
	for (size_t i = 0; i < n; i++) {
		const captoken *t = rqs[i].token && rqs[i].proof ?
		                    token_decoded(w, rqs[i].token, rqs[i].token_len, &r) : NULL;
		holders[i] = NULL;
		token_ctx(w, &rqs[i], &ctx);
		if (t && captoken_check(t, w->keys, &ctx, &info) == CAPTOKEN_OK && info.has_holder) {
			memcpy(keys[i], info.holder, sizeof keys[i]);
			holders[i] = keys[i];
		}
	}
	return wall_zk_prepare(w->zk, rqs, holders, n, w->audience[0] ? w->audience : NULL);
}

static void judge(wall *w, const wall_req *rq, uint64_t now_ms, wall_ticket *v)
{
	captoken_info info;
	bool token = rq->token != NULL;
	const char *tenant = rq->mtls_tenant;

	memset(&info, 0, sizeof info);
	if (rq->bad_credentials) {
		unauth(v, false, "credentials must be a capability token: ",
		       "Authorization: Bearer <token>");
		return;
	}
	if (token && !auth_token(w, rq, &info, v))
		return;
	if (!zk_step(w, rq, &info, v))
		return;
	if (token && !tenant && info.tenant[0])
		tenant = info.tenant;
	if (!policy_step(w, rq, token, tenant, v))
		return;
	(void)quota_step(w, rq, &info, token, tenant, now_ms, v);
}

wall_ticket *wall_check(wall *w, const wall_req *rq, uint64_t now_ms)
{
	wall_ticket *t = ticket_get(w);

	if (!t)
		return ticket_busy(w);
	judge(w, rq, now_ms, t);
	return t;
}

void wall_ticket_end(wall_ticket *t, uint64_t bytes_used)
{
	wall *w;

	if (!t || !t->pooled)
		return;
	if (!t->out) {
		(void)BUG("wall ticket ended twice");
		return;
	}
	w = t->w;
	if (t->status == 0 && t->charge_body)
		quota_settle(w->quota, t->tenant, t->body_reserved, bytes_used, util_now_ms());
	t->out = false;
	t->next = w->free_tickets;
	w->free_tickets = t;
	w->tickets_out--;
}

size_t wall_tickets_out(const wall *w)
{
	return w->tickets_out;
}

/* ---- reading a ticket --------------------------------------------------- */

int wall_ticket_status(const wall_ticket *t)
{
	return t->status;
}

const char *wall_ticket_code(const wall_ticket *t)
{
	return t->code;
}

const char *wall_ticket_message(const wall_ticket *t)
{
	return t->message;
}

reject_reason wall_ticket_reject(const wall_ticket *t)
{
	return t->reject;
}

unsigned wall_ticket_retry_after(const wall_ticket *t)
{
	return t->retry_after_s;
}

const char *wall_ticket_challenge(const wall_ticket *t)
{
	if (!t->challenge)
		return NULL;
	return t->invalid_token ? WALL_CHALLENGE_INVALID_TOKEN : "Bearer realm=\"macronode\"";
}

bool wall_ticket_body_cap(const wall_ticket *t, uint64_t *cap)
{
	*cap = t->body_cap;
	return t->status == 0 && t->body_capped;
}

bool wall_ticket_reserved(const wall_ticket *t, uint64_t *bytes)
{
	*bytes = t->body_reserved;
	return t->status == 0 && t->charge_body;
}

void wall_ticket_proof_settled(bool matched, struct audit_client *audit, const char *key)
{
	wall_zk_settled(matched);
	if (matched)
		return;
	reject_count(REJECT_FAMILY_NODE, REJECT_UNAUTH);
	audit_count(audit, "ingress", "capability_refused", "proof_binding", key);
}

bool wall_ticket_body_digest(const wall_ticket *t, uint8_t out[32])
{
	if (t->status != 0 || !t->has_body_digest)
		return false;
	memcpy(out, t->body_digest, B3_OUT_LEN);
	return true;
}

const char *wall_ticket_tenant(const wall_ticket *t)
{
	return t->tenant;
}
