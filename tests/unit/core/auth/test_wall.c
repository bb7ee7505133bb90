/*
 * test_wall.c — Auth → Policy → Quota as one judge (core/wall.c): each
 * step's refusal and its status, the order of the steps, the tags and
 * tenants the steps see, and the quota's Retry-After.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/auth/captoken.h"
#include "core/config/config.h"
#include "core/auth/policy.h"
#include "core/auth/wall.h"
#include "core/auth/wall_test.h"
#include "lib/util.h"
#include "mn_build.h"

static const uint8_t KEY[32] = "0123456789abcdef0123456789abcdef";
static const char KEY_HEX[] = "3031323334353637383961626364656630313233343536373839616263646566\n";

/* The bundle `macronode init` writes, plus a LEGAL rule and a region rule. */
static const char BUNDLE[] =
	"{\"version\":3,\"defaults\":{\"default_action\":\"deny\"},\"rules\":["
	"{\"id\":\"legal\",\"when\":{\"method\":\"DELETE\"},\"action\":\"deny\",\"reason\":\"LEGAL\"},"
	"{\"id\":\"eu-only\",\"when\":{\"method\":\"PATCH\",\"region\":\"eu\"},\"action\":\"allow\"},"
	"{\"id\":\"facet-read\",\"when\":{\"method\":\"GET\",\"require_tags_all\":[\"facet\"]},\"action\":\"allow\"},"
	"{\"id\":\"no-bob\",\"when\":{\"method\":\"GET\",\"require_tags_all\":[\"tenant:bob\"]},\"action\":\"deny\"},"
	"{\"id\":\"anonymous-get\",\"when\":{\"method\":\"GET\",\"require_tags_all\":[\"core\"]},\"action\":\"allow\"},"
	"{\"id\":\"anonymous-head\",\"when\":{\"method\":\"HEAD\",\"require_tags_all\":[\"core\"]},\"action\":\"allow\"},"
	"{\"id\":\"token-holders\",\"when\":{\"method\":\"*\",\"require_tags_all\":[\"core\",\"token\"]},\"action\":\"allow\"}]}";

struct fx {
	char     dir[64];
	mn_config cfg;
	wall    *w;
	policy  *pol;
	struct sockaddr_in peer;
};

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st; (void)flag; (void)f;
	return remove(p);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof *fx);
	char path[256], err[256];

	snprintf(fx->dir, sizeof fx->dir, "/tmp/mn-wall-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(path, sizeof path, "%s/k1.key", fx->dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, KEY_HEX, sizeof KEY_HEX - 1), (ssize_t)(sizeof KEY_HEX - 1));
	close(fd);
	config_defaults(&fx->cfg);
	snprintf(fx->cfg.auth_keys_dir, sizeof fx->cfg.auth_keys_dir, "%s", fx->dir);
	snprintf(fx->cfg.auth_audience, sizeof fx->cfg.auth_audience, "node-a");
	fx->cfg.quota_rps = 0;
	fx->w = wall_new();
	assert_non_null(fx->w);
	assert_int_equal(wall_configure(fx->w, &fx->cfg, err, sizeof err), 0);
	assert_int_equal(wall_key_count(fx->w), 1);
	fx->pol = policy_parse(BUNDLE, strlen(BUNDLE), err, sizeof err);
	assert_non_null(fx->pol);
	wall_set_policy(fx->w, fx->pol, "b3:00");
	fx->peer.sin_family = AF_INET;
	fx->peer.sin_addr.s_addr = htonl(0x7f000001);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	wall_free(fx->w);
	policy_free(fx->pol);
	config_free(&fx->cfg);
	(void)nftw(fx->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* A token: prefix "/o", methods from a comma list ("" = any), optional
 * tenant, byte limit, expiry offset, audience, Rate. */
struct tk {
	const char *methods, *tenant, *aud;
	uint64_t max_bytes, rate, burst;
	int64_t exp_off;            /* 0: no Exp */
	const uint8_t *key;         /* NULL: KEY */
	const char *kid;            /* NULL: "k1" */
	const uint8_t *holder;      /* a holder caveat binding this public key, or NULL */
};

static void mint(const struct tk *k, char *out, size_t cap)
{
	captoken *t = captoken_new();
	char list[64];

	assert_non_null(t);
	snprintf(t->tid, sizeof t->tid, "t-%s", k->tenant ? k->tenant : "none");
	snprintf(t->kid, sizeof t->kid, "%s", k->kid ? k->kid : "k1");
	t->has_prefix = true;
	snprintf(t->prefix, sizeof t->prefix, "/o");
	snprintf(list, sizeof list, "%s", k->methods ? k->methods : "");
	for (char *save = NULL, *m = strtok_r(list, ",", &save); m; m = strtok_r(NULL, ",", &save))
		assert_int_equal(captoken_method_set(&t->methods[t->nmethods++], m), 0);
	t->has_max_bytes = k->max_bytes != 0;
	t->max_bytes = k->max_bytes;
	if (k->tenant)
		assert_int_equal(captoken_caveat_set_text(&t->caveats[t->ncaveats++],
		                                          CAPTOKEN_CAV_TENANT, k->tenant), 0);
	if (k->aud)
		assert_int_equal(captoken_caveat_set_text(&t->caveats[t->ncaveats++],
		                                          CAPTOKEN_CAV_AUD, k->aud), 0);
	if (k->exp_off) {
		captoken_caveat *c = &t->caveats[t->ncaveats++];
		c->kind = CAPTOKEN_CAV_EXP;
		c->u = (uint64_t)((int64_t)time(NULL) + k->exp_off);
	}
	if (k->rate) {
		captoken_caveat *c = &t->caveats[t->ncaveats++];
		c->kind = CAPTOKEN_CAV_RATE;
		c->u = k->rate;
		c->u2 = k->burst;
	}
	if (k->holder)
		captoken_caveat_set_holder(&t->caveats[t->ncaveats++], k->holder);
	assert_int_equal(captoken_mint(t, k->key ? k->key : KEY, out, cap), 0);
	captoken_free(t);
}

/* What a ticket says, read through the accessors, for assertions. */
typedef struct wall_verdict {
	int           status;
	const char   *code;
	char          message[WALL_MSG_MAX];
	reject_reason reject;
	unsigned      retry_after_s;
	bool          challenge;
	bool          invalid_token;
	bool          body_capped;
	uint64_t      body_cap;
	bool          charge_body;
	uint64_t      body_reserved;
	char          tenant[WALL_TENANT_MAX];
} wall_verdict;

static void read_ticket(const wall_ticket *t, wall_verdict *v)
{
	const char *ch = wall_ticket_challenge(t);

	memset(v, 0, sizeof *v);
	v->status = wall_ticket_status(t);
	v->code = wall_ticket_code(t);
	snprintf(v->message, sizeof v->message, "%s", wall_ticket_message(t));
	v->reject = wall_ticket_reject(t);
	v->retry_after_s = wall_ticket_retry_after(t);
	v->challenge = ch != NULL;
	v->invalid_token = ch && strstr(ch, "error=\"invalid_token\"");
	v->body_capped = wall_ticket_body_cap(t, &v->body_cap);
	v->charge_body = wall_ticket_reserved(t, &v->body_reserved);
	snprintf(v->tenant, sizeof v->tenant, "%s", wall_ticket_tenant(t));
}

/* Judge, read and end the ticket having used what was reserved (a no-op
 * settle): the pool must be as full afterwards as before. */
static void check(wall *w, const wall_req *rq, uint64_t now_ms, wall_verdict *v)
{
	size_t out = wall_tickets_out(w);
	wall_ticket *t = wall_check(w, rq, now_ms);

	assert_non_null(t);
	assert_int_equal(wall_tickets_out(w), out + 1);
	read_ticket(t, v);
	wall_ticket_end(t, v->body_reserved);
	assert_int_equal(wall_tickets_out(w), out);
}

static void judge(struct fx *fx, const char *method, const char *path, int64_t body,
                  const char *token, wall_class cls, wall_verdict *v)
{
	wall_req rq = { .method = method, .path = path, .peer = (struct sockaddr *)&fx->peer,
	                .body_bytes = body, .token = token, .token_len = token ? strlen(token) : 0,
	                .cls = cls };

	check(fx->w, &rq, 1000, v);
}

static void test_bearer_parsing(void **state)
{
	const char *t;
	size_t n;

	(void)state;
	assert_true(wall_bearer("Bearer abc", &t, &n));
	assert_int_equal(n, 3);
	assert_memory_equal(t, "abc", 3);
	assert_true(wall_bearer("bearer \t xyz  ", &t, &n));
	assert_int_equal(n, 3);
	assert_false(wall_bearer("Basic abc", &t, &n));
	assert_false(wall_bearer("Bearer", &t, &n));
	assert_false(wall_bearer("Bearer   ", &t, &n));
	assert_false(wall_bearer("Bearerabc", &t, &n));
}

static void test_anonymous_read_allowed_write_401(void **state)
{
	struct fx *fx = *state;
	wall_verdict v;

	judge(fx, "GET", "/o/b3:aa", 0, NULL, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 0);
	assert_string_equal(v.tenant, "ip:127.0.0.1");
	judge(fx, "POST", "/o", 10, NULL, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 401);
	assert_true(v.challenge);
	assert_false(v.invalid_token);
	assert_int_equal(v.reject, REJECT_UNAUTH);
	assert_string_equal(reject_name(v.reject), "unauth");
	assert_non_null(strstr(v.message, "token-holders") ? v.message : strstr(v.message, "default"));
}

static void test_bad_credentials_401(void **state)
{
	struct fx *fx = *state;
	wall_verdict v;
	wall_req rq = { .method = "GET", .path = "/o/x", .bad_credentials = true };

	check(fx->w, &rq, 1000, &v);
	assert_int_equal(v.status, 401);
	assert_true(v.challenge);
}

static void test_token_write_allowed_with_tenant(void **state)
{
	struct fx *fx = *state;
	char tok[CAPTOKEN_MAX_TOKEN + 1];
	wall_verdict v;

	mint(&(struct tk){ .methods = "PUT,POST", .tenant = "owner", .aud = "node-a" }, tok, sizeof tok);
	judge(fx, "POST", "/o", 10, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 0);
	assert_string_equal(v.tenant, "t:owner");
	assert_int_equal(v.body_cap, 0);
}

static void test_bad_tokens_401_invalid(void **state)
{
	struct fx *fx = *state;
	char tok[CAPTOKEN_MAX_TOKEN + 1];
	static const uint8_t other[32] = "ffffffffffffffffffffffffffffffff";
	wall_verdict v;

	mint(&(struct tk){ .key = other }, tok, sizeof tok);           /* bad MAC */
	judge(fx, "GET", "/o/x", 0, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 401);
	assert_true(v.invalid_token);
	assert_null(strstr(v.message, tok));
	mint(&(struct tk){ .kid = "k9" }, tok, sizeof tok);             /* unknown kid */
	judge(fx, "GET", "/o/x", 0, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 401);
	mint(&(struct tk){ .exp_off = -3600 }, tok, sizeof tok);        /* expired */
	judge(fx, "GET", "/o/x", 0, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 401);
	mint(&(struct tk){ .aud = "node-b" }, tok, sizeof tok);         /* other audience */
	judge(fx, "GET", "/o/x", 0, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 401);
	judge(fx, "GET", "/o/x", 0, "not-a-token!", WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 401);
	/* A bad token is refused even where anonymous access is allowed. */
	assert_int_equal(v.reject, REJECT_UNAUTH);
}

static void test_scope_403_and_bytes_413(void **state)
{
	struct fx *fx = *state;
	char tok[CAPTOKEN_MAX_TOKEN + 1];
	wall_verdict v;

	mint(&(struct tk){ .methods = "GET" }, tok, sizeof tok);
	judge(fx, "PUT", "/o/b3:aa", 5, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 403);
	assert_int_equal(v.reject, REJECT_FORBIDDEN);
	judge(fx, "GET", "/x/other", 0, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 403);
	mint(&(struct tk){ .max_bytes = 10 }, tok, sizeof tok);
	judge(fx, "POST", "/o", 11, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 413);
	assert_int_equal(v.reject, REJECT_413);
	/* Unknown length (chunked): admitted, with the cap for the core. */
	judge(fx, "POST", "/o", -1, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 0);
	assert_int_equal(v.body_cap, 10);
}

static void test_policy_outcomes(void **state)
{
	struct fx *fx = *state;
	char tok[CAPTOKEN_MAX_TOKEN + 1];
	wall_verdict v;

	judge(fx, "DELETE", "/o/x", 0, NULL, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 451);
	mint(&(struct tk){ .tenant = "bob" }, tok, sizeof tok);
	judge(fx, "GET", "/o/x", 0, tok, WALL_CLASS_CORE, &v);      /* tenant:bob tag denied */
	assert_int_equal(v.status, 403);
	assert_non_null(strstr(v.message, "no-bob"));
	/* Region: PATCH is allowed in eu only (and anonymous elsewhere → 401). */
	judge(fx, "PATCH", "/o/x", 0, NULL, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 401);
	snprintf(fx->cfg.node_region, sizeof fx->cfg.node_region, "eu");
	char err[256];
	assert_int_equal(wall_configure(fx->w, &fx->cfg, err, sizeof err), 0);
	judge(fx, "PATCH", "/o/x", 0, NULL, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 0);
}

static void test_class_tags(void **state)
{
	struct fx *fx = *state;
	wall_verdict v;
	char err[256];

	/* Facet routes carry policy.tags_facet, not "core". */
	judge(fx, "GET", "/graph", 0, NULL, WALL_CLASS_FACET, &v);
	assert_int_equal(v.status, 0);
	snprintf(fx->cfg.policy_tags_facet, sizeof fx->cfg.policy_tags_facet, "media,x");
	assert_int_equal(wall_configure(fx->w, &fx->cfg, err, sizeof err), 0);
	judge(fx, "GET", "/graph", 0, NULL, WALL_CLASS_FACET, &v);
	assert_int_equal(v.status, 401);    /* no rule matches anonymously */
}

static void test_no_policy_denies_all(void **state)
{
	struct fx *fx = *state;
	char tok[CAPTOKEN_MAX_TOKEN + 1];
	wall_verdict v;

	wall_set_policy(fx->w, NULL, NULL);
	assert_false(wall_has_policy(fx->w));
	judge(fx, "GET", "/o/x", 0, NULL, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 403);
	assert_string_equal(v.code, "policy_unavailable");
	mint(&(struct tk){ 0 }, tok, sizeof tok);
	judge(fx, "GET", "/o/x", 0, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 403);
	/* Auth still comes first: a bad token is 401, not 403. */
	judge(fx, "GET", "/o/x", 0, "garbage", WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 401);
}

static void test_quota_per_tenant(void **state)
{
	struct fx *fx = *state;
	char a[CAPTOKEN_MAX_TOKEN + 1], b[CAPTOKEN_MAX_TOKEN + 1], err[256];
	wall_verdict v;

	fx->cfg.quota_rps = 1;
	fx->cfg.quota_burst = 2;
	assert_int_equal(wall_configure(fx->w, &fx->cfg, err, sizeof err), 0);
	mint(&(struct tk){ .tenant = "a" }, a, sizeof a);
	mint(&(struct tk){ .tenant = "b" }, b, sizeof b);
	for (int i = 0; i < 2; i++) {
		judge(fx, "GET", "/o/x", 0, a, WALL_CLASS_CORE, &v);
		assert_int_equal(v.status, 0);
	}
	judge(fx, "GET", "/o/x", 0, a, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 429);
	assert_int_equal(v.reject, REJECT_QUOTA);
	assert_int_equal(v.retry_after_s, 1);
	judge(fx, "GET", "/o/x", 0, b, WALL_CLASS_CORE, &v);   /* another tenant */
	assert_int_equal(v.status, 0);
	/* Refused by policy or auth: no quota spent. */
	judge(fx, "PUT", "/o/x", 0, NULL, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 401);
}

static void test_quota_rate_caveat_and_ipv6(void **state)
{
	struct fx *fx = *state;
	char tok[CAPTOKEN_MAX_TOKEN + 1], err[256];
	wall_verdict v;
	struct sockaddr_in6 p1 = { .sin6_family = AF_INET6 }, p2 = p1;

	fx->cfg.quota_rps = 100;
	fx->cfg.quota_burst = 100;
	assert_int_equal(wall_configure(fx->w, &fx->cfg, err, sizeof err), 0);
	/* The token's Rate caveat lowers the tenant's burst to 1. */
	mint(&(struct tk){ .tenant = "slow", .rate = 1, .burst = 1 }, tok, sizeof tok);
	judge(fx, "GET", "/o/x", 0, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 0);
	judge(fx, "GET", "/o/x", 0, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 429);
	/* Anonymous IPv6 clients in one /64 share a bucket key. */
	inet_pton(AF_INET6, "2001:db8:1:2::1", &p1.sin6_addr);
	inet_pton(AF_INET6, "2001:db8:1:2:ffff::9", &p2.sin6_addr);
	wall_req rq = { .method = "GET", .path = "/o/x", .peer = (struct sockaddr *)&p1,
	                .cls = WALL_CLASS_CORE };
	check(fx->w, &rq, 1000, &v);
	assert_int_equal(v.status, 0);
	char first[WALL_TENANT_MAX];
	snprintf(first, sizeof first, "%s", v.tenant);
	rq.peer = (struct sockaddr *)&p2;
	check(fx->w, &rq, 1000, &v);
	assert_string_equal(v.tenant, first);
	assert_string_equal(first, "ip:2001:db8:1:2::");
}

/* Unknown size: admitted with the policy's largest allowed size as the cap,
 * and the byte quota is charged afterwards (debt), not at admission. */
static void test_unknown_size(void **state)
{
	struct fx *fx = *state;
	char tok[CAPTOKEN_MAX_TOKEN + 1], err[256];
	static const char small[] =
		"{\"version\":4,\"defaults\":{\"default_action\":\"deny\",\"max_body_bytes\":100},"
		"\"rules\":[{\"id\":\"small\",\"when\":{\"method\":\"POST\",\"max_body_bytes\":10},"
		"\"action\":\"allow\"}]}";
	policy *p = policy_parse(small, strlen(small), err, sizeof err);
	wall_verdict v;

	assert_non_null(p);
	wall_set_policy(fx->w, p, NULL);
	judge(fx, "POST", "/o", -1, NULL, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 0);
	assert_true(v.body_capped);
	assert_int_equal(v.body_cap, 10);
	assert_true(v.charge_body);
	judge(fx, "POST", "/o", 11, NULL, WALL_CLASS_CORE, &v);     /* declared: judged as is */
	assert_int_equal(v.status, 401);
	judge(fx, "PUT", "/o", -1, NULL, WALL_CLASS_CORE, &v);      /* never allowed */
	assert_int_equal(v.status, 401);
	/* The token's own limit wins when lower. */
	mint(&(struct tk){ .max_bytes = 4 }, tok, sizeof tok);
	judge(fx, "POST", "/o", -1, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 0);
	assert_int_equal(v.body_cap, 4);
	wall_set_policy(fx->w, fx->pol, NULL);
	policy_free(p);

	/* Byte quota: 100 B/s, burst 100. A body of unknown size reserves what it
	 * may carry (body_max 1000) at admission, so a second concurrent one is
	 * refused; settling refunds what did not arrive. */
	fx->cfg.quota_bytes_per_s = 100;
	fx->cfg.quota_bytes_burst = 100;
	assert_int_equal(wall_configure(fx->w, &fx->cfg, err, sizeof err), 0);
	mint(&(struct tk){ .methods = "POST,GET", .tenant = "big" }, tok, sizeof tok);
	wall_req rq = { .method = "POST", .path = "/o", .body_bytes = -1, .body_max = 1000,
	                .token = tok, .token_len = strlen(tok), .cls = WALL_CLASS_CORE };
	/* The table's clock is the monotonic one it was made with: stay ahead. */
	uint64_t t0 = util_now_ms() + 60000;
	wall_ticket *first = wall_check(fx->w, &rq, t0);            /* held while its body arrives */
	read_ticket(first, &v);
	assert_int_equal(v.status, 0);
	assert_true(v.charge_body);
	assert_int_equal(v.body_reserved, 1000);
	check(fx->w, &rq, t0, &v);                                  /* concurrent: in debt */
	assert_int_equal(v.status, 429);
	assert_int_equal(v.retry_after_s, 10);
	wall_ticket_end(first, 50);                                 /* 950 refunded */
	assert_int_equal(wall_tickets_out(fx->w), 0);
	check(fx->w, &rq, t0, &v);
	assert_int_equal(v.status, 429);
	assert_int_equal(v.retry_after_s, 1);                       /* 50 of 100 there */
	check(fx->w, &rq, t0 + 500, &v);
	assert_int_equal(v.status, 0);
	judge(fx, "GET", "/o/x", 0, tok, WALL_CLASS_CORE, &v);      /* no body: not a byte charge */
	assert_int_equal(v.status, 0);
	assert_false(v.charge_body);
}

/* A token byte limit of 0 is a limit (no body), also for unknown sizes, and
 * a later looser BytesLe never widens it. */
static void test_zero_byte_limit(void **state)
{
	struct fx *fx = *state;
	char tok[CAPTOKEN_MAX_TOKEN + 1];
	wall_verdict v;
	captoken *t = captoken_new();

	snprintf(t->tid, sizeof t->tid, "zero");
	snprintf(t->kid, sizeof t->kid, "k1");
	t->has_max_bytes = true;
	t->max_bytes = 0;
	t->caveats[0].kind = CAPTOKEN_CAV_BYTES_LE;
	t->caveats[0].u = 100;
	t->ncaveats = 1;
	assert_int_equal(captoken_mint(t, KEY, tok, sizeof tok), 0);
	captoken_free(t);
	judge(fx, "POST", "/o", -1, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 0);
	assert_true(v.body_capped);
	assert_int_equal(v.body_cap, 0);
	judge(fx, "POST", "/o", 1, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 413);
}

static void test_token_cache(void **state)
{
	struct fx *fx = *state;
	char tok[CAPTOKEN_MAX_TOKEN + 1], other[CAPTOKEN_MAX_TOKEN + 1], path[300], err[256];
	static const uint8_t k2[32] = "ffffffffffffffffffffffffffffffff";
	wall_verdict v;

	mint(&(struct tk){ .methods = "POST" }, tok, sizeof tok);
	for (int i = 0; i < 3; i++) {
		judge(fx, "POST", "/o", 1, tok, WALL_CLASS_CORE, &v);
		assert_int_equal(v.status, 0);
	}
	judge(fx, "PUT", "/o", 1, tok, WALL_CLASS_CORE, &v);       /* caveats per request */
	assert_int_equal(v.status, 403);
	snprintf(other, sizeof other, "%s", tok);
	other[strlen(other) - 2] = other[strlen(other) - 2] == 'A' ? 'B' : 'A';
	judge(fx, "POST", "/o", 1, other, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 401);
	for (int i = 0; i < 20; i++) {                              /* more than the cache holds */
		char t2[CAPTOKEN_MAX_TOKEN + 1], tenant[16];
		snprintf(tenant, sizeof tenant, "t%d", i);
		mint(&(struct tk){ .methods = "POST", .tenant = tenant }, t2, sizeof t2);
		judge(fx, "POST", "/o", 1, t2, WALL_CLASS_CORE, &v);
		assert_int_equal(v.status, 0);
		snprintf(path, sizeof path, "t:%s", tenant);
		assert_string_equal(v.tenant, path);
	}
	judge(fx, "POST", "/o", 1, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 0);
	/* Rotate k1 to another key: the cached decode must not keep it valid. */
	snprintf(path, sizeof path, "%s/k1.key", fx->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (size_t i = 0; i < 32; i++)
		fprintf(f, "%02x", k2[i]);
	fclose(f);
	assert_int_equal(wall_configure(fx->w, &fx->cfg, err, sizeof err), 0);
	judge(fx, "POST", "/o", 1, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 401);
	assert_true(v.invalid_token);
}

static void test_missing_keys_dir(void **state)
{
	struct fx *fx = *state;
	char tok[CAPTOKEN_MAX_TOKEN + 1], err[256], path[300];
	wall_verdict v;

	mint(&(struct tk){ .methods = "POST" }, tok, sizeof tok);
	/* A key file the ring refuses (mode 0644) keeps the keys already loaded:
	 * one bad file must not cost the node its keys. */
	snprintf(path, sizeof path, "%s/k2.key", fx->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(KEY_HEX, f);
	fclose(f);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(wall_configure(fx->w, &fx->cfg, err, sizeof err), -1);
	assert_non_null(strstr(err, "k2.key"));
	assert_int_equal(wall_key_count(fx->w), 1);
	judge(fx, "POST", "/o", 1, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 0);
	assert_int_equal(unlink(path), 0);
	/* No key left (the dir gone, or empty): every key is withdrawn at once. */
	snprintf(fx->cfg.auth_keys_dir, sizeof fx->cfg.auth_keys_dir, "%s/absent", fx->dir);
	assert_int_equal(wall_configure(fx->w, &fx->cfg, err, sizeof err), -1);
	assert_non_null(strstr(err, "absent"));
	assert_int_equal(wall_key_count(fx->w), 0);
	judge(fx, "POST", "/o", 1, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 401);
	snprintf(fx->cfg.auth_keys_dir, sizeof fx->cfg.auth_keys_dir, "%s", fx->dir);
	assert_int_equal(wall_configure(fx->w, &fx->cfg, err, sizeof err), 0);
	judge(fx, "POST", "/o", 1, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 0);
	snprintf(path, sizeof path, "%s/k1.key", fx->dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(wall_configure(fx->w, &fx->cfg, err, sizeof err), -1);
	assert_int_equal(wall_key_count(fx->w), 0);
	judge(fx, "POST", "/o", 1, tok, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 401);
}

/* ---- the ticket pool -------------------------------------------------- */

#define POOL_ROUNDS 40

/* One request of every kind the wall judges, each holding its ticket like a
 * protocol would until the request ends; every round ends them all with the
 * bytes the body used. The pool is back to full after every round. */
static void test_ticket_pool_every_kind(void **state)
{
	struct fx *fx = *state;
	char tok[CAPTOKEN_MAX_TOKEN + 1], scoped[CAPTOKEN_MAX_TOKEN + 1], small[CAPTOKEN_MAX_TOKEN + 1];
	char bad[CAPTOKEN_MAX_TOKEN + 1], err[256];
	wall_ticket *held[16];

	fx->cfg.quota_bytes_per_s = 1u << 30;         /* reservations are settled */
	fx->cfg.quota_bytes_burst = 1u << 30;
	assert_int_equal(wall_configure(fx->w, &fx->cfg, err, sizeof err), 0);
	mint(&(struct tk){ .methods = "POST,GET,DELETE", .tenant = "amy" }, tok, sizeof tok);
	mint(&(struct tk){ .methods = "GET" }, scoped, sizeof scoped);
	mint(&(struct tk){ .methods = "POST", .max_bytes = 4 }, small, sizeof small);
	mint(&(struct tk){ .methods = "POST", .aud = "elsewhere" }, bad, sizeof bad);
	const struct { const char *method; int64_t body; const char *token; bool badcred; int status; }
	kinds[] = {
		{ "GET", 0, NULL, false, 0 },           /* anonymous, admitted */
		{ "POST", 3, NULL, false, 401 },        /* anonymous write */
		{ "POST", 3, NULL, true, 401 },         /* credentials of another kind */
		{ "POST", 3, bad, false, 401 },         /* token refused */
		{ "POST", 3, scoped, false, 403 },      /* scope */
		{ "POST", 9, small, false, 413 },       /* the token's byte limit */
		{ "DELETE", 0, tok, false, 451 },       /* LEGAL */
		{ "POST", 5, tok, false, 0 },           /* declared size */
		{ "POST", -1, tok, false, 0 },          /* unknown size: reserved, settled */
	};
	size_t nk = sizeof kinds / sizeof kinds[0];

	for (int round = 0; round < POOL_ROUNDS; round++) {
		for (size_t i = 0; i < nk; i++) {
			wall_req rq = { .method = kinds[i].method, .path = "/o",
			                .peer = (struct sockaddr *)&fx->peer, .body_bytes = kinds[i].body,
			                .body_max = 100, .token = kinds[i].token,
			                .token_len = kinds[i].token ? strlen(kinds[i].token) : 0,
			                .bad_credentials = kinds[i].badcred, .cls = WALL_CLASS_CORE };
			held[i] = wall_check(fx->w, &rq, 1000);
			assert_int_equal(wall_ticket_status(held[i]), kinds[i].status);
		}
		assert_int_equal(wall_tickets_out(fx->w), nk);
		for (size_t i = 0; i < nk; i++)
			wall_ticket_end(held[nk - 1 - i], (uint64_t)round);
		assert_int_equal(wall_tickets_out(fx->w), 0);
	}
	/* No policy: refused too, and still a ticket to end. */
	wall_set_policy(fx->w, NULL, NULL);
	wall_req rq = { .method = "GET", .path = "/o", .cls = WALL_CLASS_CORE };
	wall_ticket *t = wall_check(fx->w, &rq, 1000);
	assert_int_equal(wall_ticket_status(t), 403);
	assert_int_equal(wall_ticket_reject(t), REJECT_FORBIDDEN);
	wall_ticket_end(t, 0);
	assert_int_equal(wall_tickets_out(fx->w), 0);
	wall_set_policy(fx->w, fx->pol, NULL);
}

/* More tickets out at once than one chunk holds; all come back, and a
 * ticket ended twice is refused (BUG) without being recycled twice. */
static void test_ticket_chunks_and_double_end(void **state)
{
	struct fx *fx = *state;
	enum { N = WALL_TICKET_CHUNK * 2 + 3 };
	wall_ticket **t = calloc(N, sizeof *t);
	wall_req rq = { .method = "GET", .path = "/o", .peer = (struct sockaddr *)&fx->peer,
	                .cls = WALL_CLASS_CORE };

	assert_non_null(t);
	for (size_t i = 0; i < N; i++) {
		t[i] = wall_check(fx->w, &rq, 1000);
		assert_int_equal(wall_ticket_status(t[i]), 0);
		for (size_t j = 0; j < i && i < 8; j++)
			assert_ptr_not_equal(t[i], t[j]);
	}
	assert_int_equal(wall_tickets_out(fx->w), N);
	for (size_t i = 0; i < N; i++)
		wall_ticket_end(t[i], 0);
	assert_int_equal(wall_tickets_out(fx->w), 0);

	wall_ticket *a = wall_check(fx->w, &rq, 1000);
	wall_ticket_end(a, 0);
	wall_ticket_end(a, 0);                        /* ignored */
	wall_ticket_end(NULL, 0);                     /* no-op */
	assert_int_equal(wall_tickets_out(fx->w), 0);
	wall_ticket *b = wall_check(fx->w, &rq, 1000), *c = wall_check(fx->w, &rq, 1000);
	assert_ptr_not_equal(b, c);                   /* a was not put back twice */
	wall_ticket_end(b, 0);
	wall_ticket_end(c, 0);
	assert_int_equal(wall_tickets_out(fx->w), 0);
	free(t);
}

/* Past WALL_TICKETS_MAX the wall refuses (503, retryable) instead of
 * allocating; the refusal needs no pool slot and its end is harmless. */
/* A holder-bound token where no proof is verified (zk.enabled false, and
 * in the unit-min build -Dzk=disabled): never taken as a bearer token,
 * with or without a proof; 401 disabled naming why. A proof with a plain
 * token is 401 unbound. Runs in both builds. */
static void test_holder_token_refused_without_zk(void **state)
{
	struct fx *fx = *state;
	static const uint8_t pk[CAPTOKEN_HOLDER_LEN] = { 0xe2, 0xf2, 0xae, 0x0a };
	const char *why = MN_WITH_ZK ? "zk.enabled is false" : "-Dzk=disabled";
	char tok[1024], plain[1024];
	wall_verdict v;

	mint(&(struct tk){ .methods = "GET", .holder = pk }, tok, sizeof tok);
	mint(&(struct tk){ .methods = "GET" }, plain, sizeof plain);
	assert_false(wall_zk_active(fx->w));
	for (int with_proof = 0; with_proof < 2; with_proof++) {
		wall_req rq = { .method = "GET", .path = "/o/b3:aa", .peer = (struct sockaddr *)&fx->peer,
		                .token = tok, .token_len = strlen(tok), .cls = WALL_CLASS_CORE,
		                .proof = with_proof ? "AAAA" : NULL, .proof_len = with_proof ? 4 : 0 };

		check(fx->w, &rq, 1000, &v);
		assert_int_equal(v.status, 401);
		assert_int_equal(v.reject, REJECT_UNAUTH);
		assert_true(v.challenge && v.invalid_token);
		if (!strstr(v.message, "holder proof refused (disabled)") || !strstr(v.message, why))
			fail_msg("not refused as disabled (%s): %s", why, v.message);
	}
	/* the same token without its caveat: a bearer token, served */
	judge(fx, "GET", "/o/b3:aa", 0, plain, WALL_CLASS_CORE, &v);
	assert_int_equal(v.status, 0);
	wall_req rq = { .method = "GET", .path = "/o/b3:aa", .peer = (struct sockaddr *)&fx->peer,
	                .token = plain, .token_len = strlen(plain), .cls = WALL_CLASS_CORE,
	                .proof = "AAAA", .proof_len = 4 };
	check(fx->w, &rq, 1000, &v);
	assert_int_equal(v.status, 401);
	assert_non_null(strstr(v.message, "holder proof refused (unbound)"));
}

static void test_ticket_pool_exhausted(void **state)
{
	struct fx *fx = *state;
	wall_ticket **t = calloc(WALL_TICKETS_MAX, sizeof *t);
	wall_req rq = { .method = "GET", .path = "/o", .peer = (struct sockaddr *)&fx->peer,
	                .cls = WALL_CLASS_CORE };

	assert_non_null(t);
	for (size_t i = 0; i < WALL_TICKETS_MAX; i++) {
		t[i] = wall_check(fx->w, &rq, 1000);
		assert_int_equal(wall_ticket_status(t[i]), 0);
	}
	wall_ticket *busy = wall_check(fx->w, &rq, 1000);
	assert_int_equal(wall_ticket_status(busy), 503);
	assert_int_equal(wall_ticket_reject(busy), REJECT_503);
	assert_int_equal(wall_ticket_retry_after(busy), 1);
	assert_string_equal(wall_ticket_code(busy), "overloaded");
	assert_null(wall_ticket_challenge(busy));
	wall_ticket_end(busy, 0);
	wall_ticket_end(busy, 0);                     /* shared: never recycled, never a BUG */
	assert_int_equal(wall_tickets_out(fx->w), WALL_TICKETS_MAX);
	wall_ticket_end(t[7], 0);
	t[7] = wall_check(fx->w, &rq, 1000);          /* a slot again */
	assert_int_equal(wall_ticket_status(t[7]), 0);
	for (size_t i = 0; i < WALL_TICKETS_MAX; i++)
		wall_ticket_end(t[i], 0);
	assert_int_equal(wall_tickets_out(fx->w), 0);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bearer_parsing),
		cmocka_unit_test_setup_teardown(test_anonymous_read_allowed_write_401, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_credentials_401, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_write_allowed_with_tenant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_tokens_401_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope_403_and_bytes_413, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_outcomes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_class_tags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_policy_denies_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota_per_tenant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota_rate_caveat_and_ipv6, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_keys_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_byte_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ticket_pool_every_kind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ticket_chunks_and_double_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ticket_pool_exhausted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_holder_token_refused_without_zk, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
