/*
 * test_policy.c — ron-policy v1: every row of the vectors' §5 table with its
 * exact decision and reason, the strict schema's refusals (with the JSON path
 * in the message), and the signature chain: sign → verify, then every way a
 * bundle, signature, key or version can be wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/auth/policy.h"
#include "core/auth/policy_sign.h"
#include "core/keys/seal.h"

#ifndef MN_TEST_VECTORS
#error "MN_TEST_VECTORS must point at tests/vectors"
#endif

/* ---- helpers ------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = malloc(POLICY_MAX_BYTES + 2);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, POLICY_MAX_BYTES + 1, f);
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static policy *load_vector(const char *name)
{
	char path[512], err[256];
	size_t len;
	char *buf;
	policy *p;

	snprintf(path, sizeof path, "%s/policy/%s.json", MN_TEST_VECTORS, name);
	buf = slurp(path, &len);
	p = policy_parse(buf, len, err, sizeof err);
	if (!p)
		fail_msg("%s: %s", name, err);
	free(buf);
	return p;
}

typedef struct {
	char ids[16][64];
	char outcomes[16][32];
	size_t n;
} trace_log;

static void on_trace(void *arg, const char *rule_id, const char *outcome)
{
	trace_log *t = arg;

	assert_true(t->n < 16);
	snprintf(t->ids[t->n], sizeof t->ids[0], "%s", rule_id ? rule_id : "(defaults)");
	snprintf(t->outcomes[t->n], sizeof t->outcomes[0], "%s", outcome);
	t->n++;
}

static void expect(const char *bundle, const char *method, const char *region, uint64_t bytes,
                   const char *const *tags, size_t ntags, policy_decision d, const char *reason,
                   const char *rule_id)
{
	policy *p = load_vector(bundle);
	policy_ctx ctx = { .method = method, .region = region, .body_bytes = bytes,
	                   .tags = tags, .ntags = ntags, .tenant = "t" };
	policy_result r;
	trace_log t = { .n = 0 };

	policy_eval(p, &ctx, &r, on_trace, &t);
	/* reason NULL: the deciding rule has none, and the decision says none */
	if (r.decision != d || (reason ? !r.reason || strcmp(r.reason, reason) != 0 : r.reason != NULL))
		fail_msg("%s %s: got %s \"%s\", want %s \"%s\"", bundle, method,
		         policy_decision_name(r.decision), r.reason ? r.reason : "(none)",
		         policy_decision_name(d), reason ? reason : "(none)");
	if (rule_id)
		assert_string_equal(r.rule_id, rule_id);
	else
		assert_null(r.rule_id);
	policy_free(p);
}

/* Bundles written for the reference: meta, obligations and when.tenant are
 * accepted, when.tenant takes effect, methods and tags compare without case. */
static void test_reference_fields(void **state)
{
	static const char json[] =
		"{\"version\":2,\"meta\":{\"owner\":\"ops\",\"note\":\"x\"},"
		"\"defaults\":{\"default_action\":\"deny\"},\"rules\":["
		"{\"id\":\"acme-puts\",\"when\":{\"tenant\":\"acme\",\"method\":\"put\"},"
		"\"action\":\"allow\",\"obligations\":[{\"kind\":\"log-audit\","
		"\"params\":{\"level\":\"info\"}}],\"reason\":\"acme writes\"},"
		"{\"id\":\"paid\",\"when\":{\"tenant\":\"*\",\"require_tags_all\":[\"Paid\"]},"
		"\"action\":\"allow\"}]}";
	static const char *const paid[] = { "paid" };
	char err[256] = "";
	policy *p = policy_parse(json, sizeof json - 1, err, sizeof err);
	policy_result r;

	(void)state;
	if (!p)
		fail_msg("refused: %s", err);
	policy_ctx c = { .method = "PUT", .tenant = "acme" };
	policy_eval(p, &c, &r, NULL, NULL);
	assert_int_equal(r.decision, POLICY_ALLOW);      /* "put" is PUT */
	assert_string_equal(r.reason, "acme writes");
	c.tenant = "other";                               /* when.tenant takes effect */
	policy_eval(p, &c, &r, NULL, NULL);
	assert_int_equal(r.decision, POLICY_DENY);
	assert_string_equal(r.reason, POLICY_REASON_DEFAULT);
	c.tenant = NULL;                                  /* no tenant matches only "*" */
	policy_eval(p, &c, &r, NULL, NULL);
	assert_int_equal(r.decision, POLICY_DENY);
	c.tags = paid;                                    /* "Paid" is "paid" */
	c.ntags = 1;
	policy_eval(p, &c, &r, NULL, NULL);
	assert_int_equal(r.decision, POLICY_ALLOW);
	assert_string_equal(r.rule_id, "paid");
	assert_null(r.reason);                            /* no reason given: none */
	uint64_t lim;                                     /* the body limit sees the tenant too */
	c.tags = NULL;
	c.ntags = 0;
	c.tenant = "other";
	assert_false(policy_body_limit(p, &c, &lim));
	c.tenant = "acme";
	assert_true(policy_body_limit(p, &c, &lim));
	assert_true(lim == UINT64_MAX);
	policy_free(p);
}

static char *parse_err(const char *json)
{
	static char err[256];
	policy *p;

	err[0] = '\0';
	p = policy_parse(json, strlen(json), err, sizeof err);
	if (p)
		fail_msg("accepted: %s", json);
	assert_true(err[0] != '\0');
	return err;
}

static void refuse(const char *json, const char *want_in_err)
{
	const char *e = parse_err(json);

	if (!strstr(e, want_in_err))
		fail_msg("error \"%s\" lacks \"%s\" for %s", e, want_in_err, json);
}

/* ---- §5 table --------------------------------------------------------------------- */

static void test_vectors_table(void **state)
{
	static const char *const paid_verified[] = { "paid", "verified" };
	static const char *const paid[] = { "paid" };

	(void)state;
	expect("method_matrix", "GET", NULL, 0, NULL, 0, POLICY_ALLOW, "get ok", "allow-get");
	expect("method_matrix", "PUT", NULL, 0, NULL, 0, POLICY_DENY, "put blocked", "deny-put");
	expect("method_matrix", "POST", NULL, 0, NULL, 0, POLICY_DENY, "default", NULL);
	expect("eu_only", "GET", "EU", 0, NULL, 0, POLICY_ALLOW, "eu residency", "allow-eu");
	expect("eu_only", "GET", "US", 0, NULL, 0, POLICY_DENY, "default", NULL);
	expect("tags_all", "GET", NULL, 0, paid_verified, 2, POLICY_ALLOW,
	       "all-required-tags-present", "allow-paid-verified");
	expect("tags_all", "GET", NULL, 0, paid, 1, POLICY_DENY, "default", NULL);
	expect("large_body_default_deny", "PUT", NULL, 524288, NULL, 0, POLICY_DENY,
	       "body too large (defaults)", NULL);
	expect("decompress_guard", "PUT", "US", 512, NULL, 0, POLICY_DENY, "per-rule cap",
	       "deny-large-put");
}

/* The rows the table does not list, and the edges around them. */
static void test_vectors_more(void **state)
{
	(void)state;
	expect("deny_region", "GET", "US-FL", 0, NULL, 0, POLICY_DENY, "region denied", "deny-us-fl");
	expect("deny_region", "GET", "EU", 0, NULL, 0, POLICY_ALLOW, "fallback allow", "allow-rest");
	expect("deny_region", "GET", NULL, 0, NULL, 0, POLICY_ALLOW, "fallback allow", "allow-rest");
	expect("body_too_large", "GET", NULL, 1025, NULL, 0, POLICY_DENY,
	       "body too large (defaults)", NULL);
	/* At the cap the body is not too large; a rule without reason gives no
	 * reason (the reference's None), only its id. */
	expect("body_too_large", "GET", NULL, 1024, NULL, 0, POLICY_ALLOW, NULL, "allow-gets");
	expect("large_body_default_deny", "PUT", NULL, 262144, NULL, 0, POLICY_DENY, "default", NULL);
	/* decompress_guard: over the rule's cap the rule does not hold. */
	expect("decompress_guard", "PUT", "US", 513, NULL, 0, POLICY_ALLOW, NULL, "allow-others");
	expect("decompress_guard", "GET", "US", 10, NULL, 0, POLICY_ALLOW, NULL, "allow-others");
	expect("eu_only", "GET", "eu", 0, NULL, 0, POLICY_DENY, "default", NULL);
}

static void test_trace(void **state)
{
	policy *p = load_vector("decompress_guard");
	policy_ctx ctx = { .method = "PUT", .region = "US", .body_bytes = 512 };
	policy_result r;
	trace_log t = { .n = 0 };

	(void)state;
	policy_eval(p, &ctx, &r, on_trace, &t);
	assert_int_equal(t.n, 1);              /* the only rule hit */
	assert_string_equal(t.ids[0], "deny-large-put");
	assert_string_equal(t.outcomes[0], "match");
	policy_free(p);

	p = load_vector("method_matrix");
	ctx = (policy_ctx){ .method = "POST" };
	t.n = 0;
	policy_eval(p, &ctx, &r, on_trace, &t);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.outcomes[0], "method");
	assert_string_equal(t.outcomes[1], "method");
	policy_free(p);

	p = load_vector("body_too_large");
	ctx = (policy_ctx){ .method = "GET", .body_bytes = 5000 };
	t.n = 0;
	policy_eval(p, &ctx, &r, on_trace, &t);
	assert_int_equal(t.n, 1);
	assert_string_equal(t.ids[0], "(defaults)");
	assert_string_equal(t.outcomes[0], "body too large");
	policy_free(p);
}

/* Exact-method rules are tried before wildcard ones, whatever the file order. */
static void test_order(void **state)
{
	static const char json[] =
		"{\"version\":1,\"rules\":["
		"{\"id\":\"any\",\"when\":{},\"action\":\"allow\",\"reason\":\"any\"},"
		"{\"id\":\"star\",\"when\":{\"method\":\"*\"},\"action\":\"allow\"},"
		"{\"id\":\"put\",\"when\":{\"method\":\"PUT\"},\"action\":\"deny\",\"reason\":\"p\"}]}";
	char err[256];
	policy *p = policy_parse(json, sizeof json - 1, err, sizeof err);
	policy_ctx ctx = { .method = "PUT" };
	policy_result r;

	(void)state;
	assert_non_null(p);
	policy_eval(p, &ctx, &r, NULL, NULL);
	assert_int_equal(r.decision, POLICY_DENY);
	assert_string_equal(r.reason, "p");
	ctx.method = "GET";
	policy_eval(p, &ctx, &r, NULL, NULL);
	assert_int_equal(r.decision, POLICY_ALLOW);
	assert_string_equal(r.rule_id, "any");
	policy_free(p);
}

/* ---- strict schema ---------------------------------------------------------------------- */

#define RULE_OK "{\"id\":\"a\",\"when\":{},\"action\":\"allow\"}"

static void test_schema_refusals(void **state)
{
	(void)state;
	refuse("{\"version\":1,\"rules\":[],\"extra\":1}", "$: unknown field \"extra\"");
	refuse("{\"version\":1,\"defaults\":{\"x\":1},\"rules\":[]}", "$.defaults: unknown field \"x\"");
	refuse("{\"version\":1,\"rules\":[{\"id\":\"a\",\"when\":{},\"action\":\"allow\",\"x\":0}]}",
	       "$.rules[0]: unknown field \"x\"");
	refuse("{\"version\":1,\"rules\":[" RULE_OK ",{\"id\":\"b\",\"when\":{\"tenantt\":\"t\"},"
	       "\"action\":\"allow\"}]}", "$.rules[1].when: unknown field \"tenantt\"");
	/* the reference's fields, with strict types */
	refuse("{\"version\":1,\"meta\":{\"owner\":1},\"rules\":[]}",
	       "$.meta.owner: expected a string");
	refuse("{\"version\":1,\"meta\":[],\"rules\":[]}", "$.meta: expected an object of strings");
	refuse("{\"version\":1,\"rules\":[{\"id\":\"a\",\"when\":{},\"action\":\"allow\","
	       "\"obligations\":[{\"params\":{}}]}]}", "$.rules[0].obligations[0].kind: missing");
	refuse("{\"version\":1,\"rules\":[{\"id\":\"a\",\"when\":{},\"action\":\"allow\","
	       "\"obligations\":[{\"kind\":\"log\",\"x\":1}]}]}",
	       "$.rules[0].obligations[0]: unknown field \"x\"");
	refuse("{\"version\":1,\"rules\":[{\"id\":\"a\",\"when\":{},\"action\":\"allow\","
	       "\"obligations\":[{\"kind\":\"log\",\"params\":{\"n\":2}}]}]}",
	       "$.rules[0].obligations[0].params.n: expected a string");
	refuse("{\"version\":1,\"rules\":[{\"id\":\"a\",\"when\":{\"tenant\":7},\"action\":\"allow\"}]}",
	       "$.rules[0].when.tenant: expected a string");
	/* wrong types */
	refuse("{\"version\":\"1\",\"rules\":[]}", "$.version: expected an integer");
	refuse("{\"version\":1.0,\"rules\":[]}", "$.version: expected an integer");
	refuse("{\"version\":0,\"rules\":[]}", "$.version: must be at least 1");
	refuse("{\"version\":-3,\"rules\":[]}", "$.version: must be at least 1");
	refuse("{\"version\":1,\"rules\":{}}", "$.rules: expected an array");
	refuse("{\"version\":1,\"rules\":[1]}", "$.rules[0]: expected an object");
	refuse("{\"version\":1,\"defaults\":[],\"rules\":[]}", "$.defaults: expected an object");
	refuse("{\"version\":1,\"defaults\":{\"max_body_bytes\":-1},\"rules\":[]}",
	       "$.defaults.max_body_bytes: must be at least 0");
	refuse("{\"version\":1,\"defaults\":{\"default_action\":\"maybe\"},\"rules\":[]}",
	       "$.defaults.default_action: expected \"allow\" or \"deny\"");
	refuse("{\"version\":1,\"rules\":[{\"id\":7,\"when\":{},\"action\":\"allow\"}]}",
	       "$.rules[0].id: expected a string");
	refuse("{\"version\":1,\"rules\":[{\"id\":\"a\",\"when\":{\"method\":1},\"action\":\"allow\"}]}",
	       "$.rules[0].when.method: expected a string");
	/* "get" is a method (case does not matter); "GE T" is not */
	refuse("{\"version\":1,\"rules\":[{\"id\":\"a\",\"when\":{\"method\":\"GE T\"},\"action\":\"allow\"}]}",
	       "$.rules[0].when.method: expected \"*\" or a method (letters)");
	refuse("{\"version\":1,\"rules\":[{\"id\":\"a\",\"when\":{\"max_body_bytes\":\"5\"},"
	       "\"action\":\"allow\"}]}", "$.rules[0].when.max_body_bytes: expected an integer");
	refuse("{\"version\":1,\"rules\":[{\"id\":\"a\",\"when\":{\"require_tags_all\":\"paid\"},"
	       "\"action\":\"allow\"}]}", "$.rules[0].when.require_tags_all: expected an array");
	refuse("{\"version\":1,\"rules\":[{\"id\":\"a\",\"when\":{\"require_tags_all\":[\"x\",2]},"
	       "\"action\":\"allow\"}]}", "$.rules[0].when.require_tags_all[1]: expected a string");
	refuse("{\"version\":1,\"rules\":[{\"id\":\"a\",\"when\":[],\"action\":\"allow\"}]}",
	       "$.rules[0].when: expected an object");
	refuse("{\"version\":1,\"rules\":[{\"id\":\"a\",\"when\":{},\"action\":true}]}",
	       "$.rules[0].action: expected a string");
	refuse("{\"version\":1,\"rules\":[{\"id\":\"a\",\"when\":{},\"action\":\"allow\",\"reason\":null}]}",
	       "$.rules[0].reason: expected a string");
	/* missing required fields */
	refuse("{\"rules\":[]}", "$.version: missing");
	refuse("{\"version\":1}", "$.rules: missing");
	refuse("{\"version\":1,\"rules\":[{\"when\":{},\"action\":\"allow\"}]}", "$.rules[0].id: missing");
	refuse("{\"version\":1,\"rules\":[{\"id\":\"a\",\"action\":\"allow\"}]}", "$.rules[0].when: missing");
	refuse("{\"version\":1,\"rules\":[{\"id\":\"a\",\"when\":{}}]}", "$.rules[0].action: missing");
	/* ids */
	refuse("{\"version\":1,\"rules\":[{\"id\":\"\",\"when\":{},\"action\":\"allow\"}]}",
	       "$.rules[0].id: must not be empty");
	refuse("{\"version\":1,\"rules\":[" RULE_OK "," RULE_OK "]}",
	       "$.rules[1].id: duplicate id (also $.rules[0])");
	/* JSON itself */
	refuse("{\"version\":1,\"version\":2,\"rules\":[]}", "$: invalid JSON");
	refuse("[]", "$: expected an object");
	refuse("{\"version\":1,\"rules\":[]} x", "$: invalid JSON");
	refuse("", "$: invalid JSON");
	refuse("{\"version\":1,\"rules\":[{\"id\":\"a\\u0001\",\"when\":{},\"action\":\"allow\"}]}",
	       "$.rules[0].id: contains a control character");
}

static void test_oversize_parse(void **state)
{
	size_t n = POLICY_MAX_BYTES + 1;
	char *big = malloc(n), err[256];

	(void)state;
	assert_non_null(big);
	memset(big, ' ', n);
	memcpy(big, "{\"version\":1,\"rules\":[]}", 24);
	assert_null(policy_parse(big, n, err, sizeof err));
	assert_non_null(strstr(err, "more than 1048576"));
	/* The same bytes one shorter parse: the limit is the only reason. */
	policy *p = policy_parse(big, n - 1, err, sizeof err);
	assert_non_null(p);
	policy_free(p);
	free(big);
}

/* ---- signatures ---------------------------------------------------------------------------- */

static char tmpdir[64];

/* The KEK the signing keys of these tests are sealed with. */
static kek *test_kek(void)
{
	static kek *k;
	uint8_t b[KEK_LEN];

	if (!k) {
		memset(b, 0x33, sizeof b);
		k = kek_from_bytes(b);
	}
	return k;
}

static void tpath(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void flip_byte(const char *path, long off, char to)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, &to, 1, off), 1);
	close(fd);
}

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mn-test-policy-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char bundle_v2[] =
	"{\"version\":2,\"rules\":[{\"id\":\"g\",\"when\":{\"method\":\"GET\"},\"action\":\"allow\"}]}\n";

/* keygen A and B, write bundle.json (v2) and sign it with A. */
static void make_signed(char *bundle, char *pub_a, char *pub_b, char *key_a, size_t n)
{
	char err[512], pa[128], pb[128];

	tpath(pa, sizeof pa, "a");
	tpath(pb, sizeof pb, "b");
	snprintf(pub_a, n, "%s.pub", pa);
	snprintf(pub_b, n, "%s.pub", pb);
	snprintf(key_a, n, "%s.key", pa);
	tpath(bundle, n, "bundle.json");
	if (access(key_a, F_OK) != 0) {
		assert_int_equal(policy_keygen_files(pa, test_kek(), err, sizeof err), 0);
		assert_int_equal(policy_keygen_files(pb, test_kek(), err, sizeof err), 0);
	}
	write_file(bundle, bundle_v2, sizeof bundle_v2 - 1, 0644);
	if (policy_sign_file(bundle, key_a, test_kek(), err, sizeof err) != 0)
		fail_msg("sign: %s", err);
}

static void expect_load_fails(const char *bundle, const char *pub, uint64_t minv, const char *in_err)
{
	char err[512];
	policy *p = NULL;

	if (policy_load(bundle, pub, minv, &p, err, sizeof err) == 0)
		fail_msg("loaded %s with %s", bundle, pub);
	assert_null(p);
	if (!strstr(err, in_err))
		fail_msg("error \"%s\" lacks \"%s\"", err, in_err);
}

static void test_keygen_files(void **state)
{
	char pa[256], path[300], err[512];
	struct stat st;

	(void)state;
	tpath(pa, sizeof pa, "k");
	assert_int_equal(policy_keygen_files(pa, test_kek(), err, sizeof err), 0);
	snprintf(path, sizeof path, "%s.key", pa);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 64 + SEAL_OVERHEAD);   /* sealed */
	snprintf(path, sizeof path, "%s.pub", pa);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 65);
	/* Never overwrite an existing key. */
	assert_int_equal(policy_keygen_files(pa, test_kek(), err, sizeof err), -1);
	assert_non_null(strstr(err, "already exists"));
	/* No KEK: nothing is written in the clear. */
	tpath(pa, sizeof pa, "nokek");
	assert_int_equal(policy_keygen_files(pa, NULL, err, sizeof err), -1);
	assert_non_null(strstr(err, "no KEK"));
	snprintf(path, sizeof path, "%s.key", pa);
	assert_int_not_equal(access(path, F_OK), 0);
}

static void test_sign_verify(void **state)
{
	char bundle[256], pub_a[256], pub_b[256], key_a[256], err[512];
	policy *p = NULL;

	(void)state;
	make_signed(bundle, pub_a, pub_b, key_a, sizeof bundle);
	if (policy_load(bundle, pub_a, 0, &p, err, sizeof err) != 0)
		fail_msg("load: %s", err);
	assert_int_equal(policy_version(p), 2);
	assert_int_equal(policy_rule_count(p), 1);
	policy_free(p);
	/* Same version is not a rollback. */
	assert_int_equal(policy_load(bundle, pub_a, 2, &p, err, sizeof err), 0);
	policy_free(p);
}

static void test_tamper(void **state)
{
	char bundle[256], pub_a[256], pub_b[256], key_a[256], sig[300];

	(void)state;
	make_signed(bundle, pub_a, pub_b, key_a, sizeof bundle);
	expect_load_fails(bundle, pub_b, 0, "does not verify");        /* wrong key */
	flip_byte(bundle, 11, '3');                                     /* "version":3 */
	expect_load_fails(bundle, pub_a, 0, "does not verify");
	make_signed(bundle, pub_a, pub_b, key_a, sizeof bundle);
	flip_byte(bundle, (long)sizeof bundle_v2 - 2, ' ');            /* trailing newline */
	expect_load_fails(bundle, pub_a, 0, "does not verify");
	make_signed(bundle, pub_a, pub_b, key_a, sizeof bundle);
	snprintf(sig, sizeof sig, "%s.sig", bundle);
	{
		char c;
		FILE *f = fopen(sig, "rb");

		assert_non_null(f);
		assert_int_equal(fseek(f, 40, SEEK_SET), 0);
		c = (char)fgetc(f);
		fclose(f);
		flip_byte(sig, 40, c == '0' ? '1' : '0');
	}
	expect_load_fails(bundle, pub_a, 0, "does not verify");
	flip_byte(sig, 3, 'G');                                         /* not hex */
	expect_load_fails(bundle, pub_a, 0, "not a signature");
	unlink(sig);
	expect_load_fails(bundle, pub_a, 0, "No such file");
}

static void test_rollback(void **state)
{
	char bundle[256], pub_a[256], pub_b[256], key_a[256];

	(void)state;
	make_signed(bundle, pub_a, pub_b, key_a, sizeof bundle);
	expect_load_fails(bundle, pub_a, 3, "version 2 is lower than 3 (rollback refused)");
}

static void test_bad_files(void **state)
{
	char bundle[256], pub_a[256], pub_b[256], key_a[256], err[512];
	char *big;

	(void)state;
	make_signed(bundle, pub_a, pub_b, key_a, sizeof bundle);
	/* A readable secret key is refused for signing. */
	assert_int_equal(chmod(key_a, 0640), 0);
	assert_int_equal(policy_sign_file(bundle, key_a, test_kek(), err, sizeof err), -1);
	assert_non_null(strstr(err, "must be 0600"));
	assert_int_equal(chmod(key_a, 0600), 0);
	/* A public key of the wrong length or case. */
	write_file(pub_b, "abcd\n", 5, 0644);
	expect_load_fails(bundle, pub_b, 0, "not a public key");
	/* A signed bundle that fails the schema. */
	write_file(bundle, "{\"version\":1,\"rules\":[],\"x\":1}", 30, 0644);
	assert_int_equal(policy_sign_file(bundle, key_a, test_kek(), err, sizeof err), 0);
	expect_load_fails(bundle, pub_a, 0, "$: unknown field \"x\"");
	/* An oversize bundle is refused before it is read. */
	big = calloc(1, POLICY_MAX_BYTES + 1);
	assert_non_null(big);
	memset(big, ' ', POLICY_MAX_BYTES + 1);
	write_file(bundle, big, POLICY_MAX_BYTES + 1, 0644);
	free(big);
	assert_int_equal(policy_sign_file(bundle, key_a, test_kek(), err, sizeof err), -1);
	expect_load_fails(bundle, pub_a, 0, "more than 1048576");
}

/* policy_body_limit agrees with policy_eval at every size around every
 * threshold: allowed exactly for 0..limit. */
static void check_limit(const char *json, const char *method, bool want_ok, uint64_t want)
{
	char err[256];
	policy *p = policy_parse(json, strlen(json), err, sizeof err);
	policy_ctx ctx = { .method = method };
	policy_result res;
	uint64_t limit = 0;

	assert_non_null(p);
	assert_int_equal(policy_body_limit(p, &ctx, &limit), want_ok);
	if (want_ok)
		assert_int_equal(limit, want);
	static const uint64_t probe[] = { 0, 1, 9, 10, 11, 49, 50, 51, 99, 100, 101, 1000 };
	for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
		ctx.body_bytes = probe[i];
		policy_eval(p, &ctx, &res, NULL, NULL);
		if (want_ok && probe[i] <= limit)
			assert_int_equal(res.decision, POLICY_ALLOW);
		else if (want_ok && limit != UINT64_MAX && probe[i] == limit + 1)
			assert_int_equal(res.decision, POLICY_DENY);
	}
	policy_free(p);
}

static void test_body_limit(void **state)
{
	(void)state;
	/* defaults cap, then a small allow rule ahead of a bigger one */
	check_limit("{\"version\":1,\"defaults\":{\"default_action\":\"deny\",\"max_body_bytes\":100},"
	            "\"rules\":[{\"id\":\"small\",\"when\":{\"method\":\"POST\",\"max_body_bytes\":10},"
	            "\"action\":\"allow\"},{\"id\":\"mid\",\"when\":{\"max_body_bytes\":50},"
	            "\"action\":\"allow\"}]}", "POST", true, 50);
	/* an allow prefix interrupted by a deny */
	check_limit("{\"version\":1,\"rules\":[{\"id\":\"a\",\"when\":{\"method\":\"PUT\",\"max_body_bytes\":10},"
	            "\"action\":\"allow\"},{\"id\":\"d\",\"when\":{\"method\":\"PUT\",\"max_body_bytes\":50},"
	            "\"action\":\"deny\"},{\"id\":\"b\",\"when\":{\"max_body_bytes\":100},\"action\":\"allow\"}]}",
	            "PUT", true, 10);
	/* unbounded allow; the defaults cap still applies */
	check_limit("{\"version\":1,\"defaults\":{\"default_action\":\"allow\"},\"rules\":[]}", "PUT",
	            true, UINT64_MAX);
	check_limit("{\"version\":1,\"defaults\":{\"default_action\":\"allow\",\"max_body_bytes\":99},"
	            "\"rules\":[]}", "PUT", true, 99);
	/* denied even empty; a rule for another method does not count */
	check_limit("{\"version\":1,\"rules\":[{\"id\":\"g\",\"when\":{\"method\":\"GET\"},"
	            "\"action\":\"allow\"}]}", "PUT", false, 0);
	/* allowed up to 10, default allow beyond a deny covering 11..50: stop at 10 */
	check_limit("{\"version\":1,\"defaults\":{\"default_action\":\"allow\"},\"rules\":["
	            "{\"id\":\"a\",\"when\":{\"max_body_bytes\":10},\"action\":\"allow\"},"
	            "{\"id\":\"d\",\"when\":{\"max_body_bytes\":50},\"action\":\"deny\"}]}", "PUT", true, 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_body_limit),
		cmocka_unit_test(test_vectors_table),
		cmocka_unit_test(test_vectors_more),
		cmocka_unit_test(test_reference_fields),
		cmocka_unit_test(test_trace),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_schema_refusals),
		cmocka_unit_test(test_oversize_parse),
		cmocka_unit_test(test_keygen_files),
		cmocka_unit_test(test_sign_verify),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_rollback),
		cmocka_unit_test(test_bad_files),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
