/*
 * test_captoken.c — ron-auth v1 tokens against Vector A
 * (tests/vectors/README.md §3): every intermediate value, the verdicts, every
 * single-character tamper, each caveat's pass and fail, skew edges, limits,
 * the key ring's file rules, mint/attenuate round trips.
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
#include <netinet/in.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/auth/captoken.h"
#include "core/keys/kek.h"
#include "core/keys/keyfile.h"

static const char VEC_A[] =
	"pWN0aWRkdGVzdGNraWRiazFlc2NvcGWjZnByZWZpeGcvaW5kZXgvZ21ldGhvZHOBY0dFVGltYXhfYnl0ZXP2Z2NhdmVhdHOFomF0Y0F1ZGF2aGF1ZC1kZW1vomF0alBhdGhQcmVmaXhhdmcvaW5kZXgvomF0Zk1ldGhvZGF2gWNHRVSiYXRmVGVuYW50YXZkdGVzdKJhdGNFeHBhdhplU_IsY21hY1ggI5-hnX8okqQKezhMA2VI6nuI3SuOmuFWEPRYfFD86PU";
static const uint8_t KEY_A[32] = "0123456789abcdef0123456789abcdef";
static const char INIT_HEX[] =
	"836474657374626b31a366707265666978672f696e6465782f676d6574686f64738163474554696d61785f6279746573f6";
static const char TAG0_HEX[] = "f2e7bfb1cece432f9aa33f9f67409b9517500eb1f27c5d5a2db0e8f0ded9d899";
static const char *const CAV_HEX[5] = {
	"a26174634175646176686175642d64656d6f",
	"a261746a506174685072656669786176672f696e6465782f",
	"a26174664d6574686f6461768163474554",
	"a261746654656e616e7461766474657374",
	"a261746345787061761a6553f22c",
};
static const char *const TAG_HEX[5] = {
	"0668c8cd92ae5b923c827c772421f0780bc4963118e9d340f8a62be0b3bcfd0f",
	"298451a81b627a44fc36a4b9d00470fb0280556b15ccb6b5a5a6f787ac43f84b",
	"c08246063ae36fab0f1a41d2b069da6c0b5c3f4c1a757c0d06656d0408927ee1",
	"7f14911a969f90f4926f2bf6fa2661a68d135f0bd074c0c8c43ddf8ca8dc27ab",
	"239fa19d7f2892a40a7b384c036548ea7b88dd2b8e9ae15610f4587c50fce8f5",
};
#define NOW_A 1700000000ull
#define EXP_A 1700000300ull

#include "lib/b3.h"

static captoken_keyring *ring_a(void)
{
	captoken_keyring *kr = captoken_keyring_new();

	assert_non_null(kr);
	assert_int_equal(captoken_keyring_add(kr, "k1", KEY_A), 0);
	return kr;
}

static captoken_ctx ctx_a(const char *method, const char *path)
{
	captoken_ctx c = { .now = NOW_A, .audience = "aud-demo", .method = method,
	                   .path = path, .tenant = "test" };
	return c;
}

static void hex_of(const uint8_t *b, size_t n, char *out)
{
	sodium_bin2hex(out, 2 * n + 1, b, n);
}

static void test_vector_a_intermediates(void **state)
{
	(void)state;
	captoken *t;
	uint8_t buf[512], tag[32], chain[600];
	char hex[1100];
	size_t n;

	assert_int_equal(captoken_decode(VEC_A, strlen(VEC_A), &t), CAPTOKEN_OK);
	assert_string_equal(t->tid, "test");
	assert_string_equal(t->kid, "k1");
	assert_true(t->has_prefix);
	assert_string_equal(t->prefix, "/index/");
	assert_int_equal(t->nmethods, 1);
	assert_string_equal(t->methods[0].s, "GET");
	assert_false(t->has_max_bytes);
	assert_int_equal(t->ncaveats, 5);
	assert_int_equal(captoken_init_cbor(t, buf, sizeof buf, &n), 0);
	hex_of(buf, n, hex);
	assert_string_equal(hex, INIT_HEX);
	b3_keyed_hash(KEY_A, buf, n, tag);
	hex_of(tag, 32, hex);
	assert_string_equal(hex, TAG0_HEX);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(captoken_caveat_cbor(&t->caveats[i], buf, sizeof buf, &n), 0);
		hex_of(buf, n, hex);
		assert_string_equal(hex, CAV_HEX[i]);
		memcpy(chain, tag, 32);
		memcpy(chain + 32, buf, n);
		b3_keyed_hash(KEY_A, chain, 32 + n, tag);
		hex_of(tag, 32, hex);
		assert_string_equal(hex, TAG_HEX[i]);
	}
	hex_of(t->mac, 32, hex);
	assert_string_equal(hex, TAG_HEX[4]);
	assert_int_equal(captoken_compute_mac(t, KEY_A, tag), 0);
	assert_memory_equal(tag, t->mac, 32);
	/* Re-minting the decoded fields reproduces the token exactly. */
	char out[CAPTOKEN_MAX_TOKEN + 1];
	assert_int_equal(captoken_mint(t, KEY_A, out, sizeof out), 0);
	assert_string_equal(out, VEC_A);
	captoken_free(t);
}

static void test_vector_a_verdicts(void **state)
{
	(void)state;
	captoken_keyring *kr = ring_a();
	captoken_info info;
	captoken_ctx c = ctx_a("GET", "/index/items/42");

	assert_int_equal(captoken_verify(VEC_A, strlen(VEC_A), kr, &c, &info), CAPTOKEN_OK);
	assert_string_equal(info.tid, "test");
	assert_string_equal(info.kid, "k1");
	assert_string_equal(info.tenant, "test");
	assert_false(info.has_rate);
	c = ctx_a("POST", "/index/items/42");
	assert_int_equal(captoken_verify(VEC_A, strlen(VEC_A), kr, &c, &info), CAPTOKEN_SCOPE_METHOD);
	c = ctx_a("GET", "/other");
	assert_int_equal(captoken_verify(VEC_A, strlen(VEC_A), kr, &c, &info), CAPTOKEN_SCOPE_PATH);
	c = ctx_a("GET", "/index/../admin");
	assert_int_equal(captoken_verify(VEC_A, strlen(VEC_A), kr, &c, &info), CAPTOKEN_SCOPE_PATH);
	c = ctx_a("GET", "/index/items/42");
	c.audience = "aud-other";
	assert_int_equal(captoken_verify(VEC_A, strlen(VEC_A), kr, &c, &info), CAPTOKEN_AUDIENCE);
	c.audience = NULL;
	assert_int_equal(captoken_verify(VEC_A, strlen(VEC_A), kr, &c, &info), CAPTOKEN_AUDIENCE);
	c = ctx_a("GET", "/index/items/42");
	c.tenant = "other";
	assert_int_equal(captoken_verify(VEC_A, strlen(VEC_A), kr, &c, &info), CAPTOKEN_TENANT);
	c.tenant = NULL;  /* tenant comes from the token */
	assert_int_equal(captoken_verify(VEC_A, strlen(VEC_A), kr, &c, &info), CAPTOKEN_OK);
	assert_string_equal(info.tenant, "test");
	/* Skew edges on Exp. */
	c = ctx_a("GET", "/index/items/42");
	c.now = EXP_A + 60;
	assert_int_equal(captoken_verify(VEC_A, strlen(VEC_A), kr, &c, &info), CAPTOKEN_OK);
	c.now = EXP_A + 61;
	assert_int_equal(captoken_verify(VEC_A, strlen(VEC_A), kr, &c, &info), CAPTOKEN_EXPIRED);
	/* Time is checked before scope (as the reference): expired and outside the
	 * prefix and method is "expired", so the client refreshes. */
	c = ctx_a("POST", "/other");
	c.now = EXP_A + 61;
	assert_int_equal(captoken_verify(VEC_A, strlen(VEC_A), kr, &c, &info), CAPTOKEN_EXPIRED);
	/* Wrong key, unknown kid. */
	captoken_keyring *k2 = captoken_keyring_new();
	uint8_t other[32] = { 1 };
	assert_int_equal(captoken_keyring_add(k2, "k1", other), 0);
	c = ctx_a("GET", "/index/items/42");
	assert_int_equal(captoken_verify(VEC_A, strlen(VEC_A), k2, &c, &info), CAPTOKEN_BAD_MAC);
	captoken_keyring_free(k2);
	k2 = captoken_keyring_new();
	assert_int_equal(captoken_keyring_add(k2, "k2", KEY_A), 0);
	assert_int_equal(captoken_verify(VEC_A, strlen(VEC_A), k2, &c, &info), CAPTOKEN_UNKNOWN_KID);
	captoken_keyring_free(k2);
	captoken_keyring_free(kr);
}

static void test_every_char_tampered(void **state)
{
	(void)state;
	static const char alpha[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	captoken_keyring *kr = ring_a();
	captoken_ctx c = ctx_a("GET", "/index/items/42");
	size_t n = strlen(VEC_A);
	char s[sizeof VEC_A];

	for (size_t i = 0; i < n; i++) {
		for (size_t a = 0; a < 64; a++) {
			if (alpha[a] == VEC_A[i])
				continue;
			memcpy(s, VEC_A, sizeof VEC_A);
			s[i] = alpha[a];
			captoken_result r = captoken_verify(s, n, kr, &c, NULL);
			if (r == CAPTOKEN_OK)
				fail_msg("position %zu char %c verified", i, alpha[a]);
		}
		/* A non-alphabet byte too. */
		memcpy(s, VEC_A, sizeof VEC_A);
		s[i] = '=';
		assert_int_equal(captoken_verify(s, n, kr, &c, NULL), CAPTOKEN_MALFORMED);
	}
	/* Truncation and extension. */
	assert_int_not_equal(captoken_verify(VEC_A, n - 1, kr, &c, NULL), CAPTOKEN_OK);
	memcpy(s, VEC_A, sizeof VEC_A);
	assert_int_not_equal(captoken_verify("", 0, kr, &c, NULL), CAPTOKEN_OK);
	captoken_keyring_free(kr);
}

/* A fresh token with scope "any" and the one given caveat, minted with KEY_A. */
static void mint_one(const captoken_caveat *cv, char *out, size_t cap)
{
	captoken *t = captoken_new();

	strcpy(t->tid, "t1");
	strcpy(t->kid, "k1");
	if (cv)
		t->caveats[t->ncaveats++] = *cv;
	assert_int_equal(captoken_mint(t, KEY_A, out, cap), 0);
	captoken_free(t);
}

static captoken_result run_one(const captoken_caveat *cv, const captoken_ctx *c,
                               captoken_info *info)
{
	char tok[CAPTOKEN_MAX_TOKEN + 1];
	captoken_keyring *kr = ring_a();

	mint_one(cv, tok, sizeof tok);
	captoken_result r = captoken_verify(tok, strlen(tok), kr, c, info);
	captoken_keyring_free(kr);
	return r;
}

static captoken_caveat cav_u(captoken_cav_kind k, uint64_t u)
{
	captoken_caveat c;

	memset(&c, 0, sizeof c);
	c.kind = k;
	c.u = u;
	return c;
}

static captoken_caveat cav_s(captoken_cav_kind k, const char *s)
{
	captoken_caveat c;

	assert_int_equal(captoken_caveat_set_text(&c, k, s), 0);
	return c;
}

static void test_each_caveat(void **state)
{
	(void)state;
	captoken_ctx c = ctx_a("GET", "/a/b");
	captoken_info info;
	captoken_caveat cv;
	struct sockaddr_in v4 = { .sin_family = AF_INET };
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6 };

	assert_int_equal(run_one(NULL, &c, NULL), CAPTOKEN_OK);
	cv = cav_u(CAPTOKEN_CAV_EXP, NOW_A);
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_OK);
	cv = cav_u(CAPTOKEN_CAV_EXP, NOW_A - 61);
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_EXPIRED);
	cv = cav_u(CAPTOKEN_CAV_NBF, NOW_A + 60);
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_OK);
	cv = cav_u(CAPTOKEN_CAV_NBF, NOW_A + 61);
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_NOT_YET);
	cv = cav_s(CAPTOKEN_CAV_AUD, "aud-demo");
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_OK);
	cv = cav_s(CAPTOKEN_CAV_AUD, "aud-dem");
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_AUDIENCE);
	memset(&cv, 0, sizeof cv);
	cv.kind = CAPTOKEN_CAV_METHOD;
	cv.nmethods = 2;
	strcpy(cv.methods[0].s, "PUT");
	strcpy(cv.methods[1].s, "GET");
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_OK);
	cv.nmethods = 1;
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_SCOPE_METHOD);
	cv = cav_s(CAPTOKEN_CAV_PATH_PREFIX, "/a/");
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_OK);
	cv = cav_s(CAPTOKEN_CAV_PATH_PREFIX, "/b/");
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_SCOPE_PATH);
	cv = cav_u(CAPTOKEN_CAV_BYTES_LE, 10);
	c.body_bytes = 10;
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_OK);
	c.body_bytes = 11;
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_SCOPE_BYTES);
	c.body_bytes = 0;
	cv = cav_s(CAPTOKEN_CAV_TENANT, "test");
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_OK);
	cv = cav_s(CAPTOKEN_CAV_TENANT, "nope");
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_TENANT);
	memset(&cv, 0, sizeof cv);
	cv.kind = CAPTOKEN_CAV_AMNESIA;
	cv.b = true;
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_AMNESIA);
	c.amnesia = true;
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_OK);
	c.amnesia = false;
	cv = cav_s(CAPTOKEN_CAV_GOV_POLICY_DIGEST, "b3:abc");
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_GOV_POLICY);
	c.gov_policy_digest = "b3:abc";
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_OK);
	c.gov_policy_digest = "b3:abd";
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_GOV_POLICY);
	cv = cav_u(CAPTOKEN_CAV_RATE, 5);
	cv.u2 = 9;
	assert_int_equal(run_one(&cv, &c, &info), CAPTOKEN_OK);
	assert_true(info.has_rate);
	assert_int_equal(info.rate_per_s, 5);
	assert_int_equal(info.rate_burst, 9);
	memset(&cv, 0, sizeof cv);
	cv.kind = CAPTOKEN_CAV_CUSTOM;
	strcpy(cv.text, "acme");
	strcpy(cv.text2, "x");
	cv.nbytes = 1;
	cv.bytes[0] = 0xf5;
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_CUSTOM);
	/* IpCidr, v4 and v6, plus v4-mapped peers. */
	cv = cav_s(CAPTOKEN_CAV_IP_CIDR, "10.1.0.0/16");
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_IP);  /* no peer */
	inet_pton(AF_INET, "10.1.200.3", &v4.sin_addr);
	c.peer = (const struct sockaddr *)&v4;
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_OK);
	inet_pton(AF_INET, "10.2.0.1", &v4.sin_addr);
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_IP);
	inet_pton(AF_INET6, "::ffff:10.1.0.9", &v6.sin6_addr);
	c.peer = (const struct sockaddr *)&v6;
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_OK);
	cv = cav_s(CAPTOKEN_CAV_IP_CIDR, "2001:db8::/33");
	inet_pton(AF_INET6, "2001:db8:7fff::1", &v6.sin6_addr);
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_OK);
	inet_pton(AF_INET6, "2001:db8:8000::1", &v6.sin6_addr);
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_IP);
	cv = cav_s(CAPTOKEN_CAV_IP_CIDR, "2001:db8::/129");
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_IP);
	c.peer = (const struct sockaddr *)&v4;
	cv = cav_s(CAPTOKEN_CAV_IP_CIDR, "10.2.0.1");
	assert_int_equal(run_one(&cv, &c, NULL), CAPTOKEN_OK);
}

/* Scope: prefix, methods, max_bytes. */
static void test_scope(void **state)
{
	(void)state;
	captoken *t = captoken_new();
	char tok[CAPTOKEN_MAX_TOKEN + 1];
	captoken_keyring *kr = ring_a();
	captoken_ctx c = ctx_a("PUT", "/o/x");

	strcpy(t->tid, "s");
	strcpy(t->kid, "k1");
	t->has_max_bytes = true;
	t->max_bytes = 100;
	assert_int_equal(captoken_mint(t, KEY_A, tok, sizeof tok), 0);
	c.body_bytes = 100;
	assert_int_equal(captoken_verify(tok, strlen(tok), kr, &c, NULL), CAPTOKEN_OK);
	c.body_bytes = 101;
	assert_int_equal(captoken_verify(tok, strlen(tok), kr, &c, NULL), CAPTOKEN_SCOPE_BYTES);
	captoken_free(t);
	captoken_keyring_free(kr);
}

static void test_limits(void **state)
{
	(void)state;
	captoken *t = captoken_new(), *d;
	char tok[2 * CAPTOKEN_MAX_TOKEN];
	captoken_keyring *kr = ring_a();
	captoken_ctx c = ctx_a("GET", "/");

	strcpy(t->tid, "lim");
	strcpy(t->kid, "k1");
	for (size_t i = 0; i < CAPTOKEN_MAX_CAVEATS; i++)
		t->caveats[t->ncaveats++] = cav_u(CAPTOKEN_CAV_BYTES_LE, 1);
	assert_int_equal(captoken_mint(t, KEY_A, tok, sizeof tok), 0);
	assert_int_equal(captoken_verify(tok, strlen(tok), kr, &c, NULL), CAPTOKEN_OK);
	/* 65 caveats: refused by mint, and by decode when hand-made. */
	t->ncaveats = CAPTOKEN_MAX_CAVEATS + 1;
	assert_int_equal(captoken_mint(t, KEY_A, tok, sizeof tok), -1);
	{
		uint8_t b[1024];
		size_t n = 0;
		static const uint8_t head[] = {
			0xa5, 0x63, 't', 'i', 'd', 0x61, 'x', 0x63, 'k', 'i', 'd', 0x62, 'k', '1',
			0x65, 's', 'c', 'o', 'p', 'e', 0xa3, 0x66, 'p', 'r', 'e', 'f', 'i', 'x', 0xf6,
			0x67, 'm', 'e', 't', 'h', 'o', 'd', 's', 0x80,
			0x69, 'm', 'a', 'x', '_', 'b', 'y', 't', 'e', 's', 0xf6,
			0x67, 'c', 'a', 'v', 'e', 'a', 't', 's', 0x98, 65,
		};
		static const uint8_t cav[] = { 0xa2, 0x61, 't', 0x67, 'B', 'y', 't', 'e', 's', 'L', 'e', 0x61, 'v', 0x01 };
		memcpy(b, head, sizeof head);
		n = sizeof head;
		for (int i = 0; i < 65; i++) {
			memcpy(b + n, cav, sizeof cav);
			n += sizeof cav;
		}
		b[n++] = 0x63; b[n++] = 'm'; b[n++] = 'a'; b[n++] = 'c'; b[n++] = 0x58; b[n++] = 32;
		memset(b + n, 0, 32);
		n += 32;
		sodium_bin2base64(tok, sizeof tok, b, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		assert_int_equal(captoken_decode(tok, strlen(tok), &d), CAPTOKEN_MALFORMED);
		/* Same with 64: decodes (bad MAC, but well-formed). */
		b[sizeof head - 1] = 64;
		memmove(b + sizeof head + 64 * sizeof cav, b + sizeof head + 65 * sizeof cav, 38);
		n -= sizeof cav;
		sodium_bin2base64(tok, sizeof tok, b, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		assert_int_equal(captoken_decode(tok, strlen(tok), &d), CAPTOKEN_OK);
		captoken_free(d);
	}
	/* Oversize string: refused before decoding. */
	memset(tok, 'A', CAPTOKEN_MAX_TOKEN + 4);
	assert_int_equal(captoken_decode(tok, CAPTOKEN_MAX_TOKEN + 4, &d), CAPTOKEN_MALFORMED);
	/* A long tid pushing the token over 4096 characters cannot be minted. */
	t->ncaveats = CAPTOKEN_MAX_CAVEATS;
	for (size_t i = 0; i < CAPTOKEN_MAX_CAVEATS; i++)
		t->caveats[i] = cav_s(CAPTOKEN_CAV_AUD, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(captoken_mint(t, KEY_A, tok, sizeof tok), -1);
	captoken_free(t);
	captoken_keyring_free(kr);
}

static captoken_result decode_bin(const uint8_t *b, size_t n)
{
	char tok[2 * CAPTOKEN_MAX_TOKEN];
	captoken *d = NULL;

	sodium_bin2base64(tok, sizeof tok, b, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	captoken_result r = captoken_decode(tok, strlen(tok), &d);
	captoken_free(d);
	return r;
}

static void test_bad_cbor(void **state)
{
	(void)state;
	uint8_t b[3100];
	char s[CAPTOKEN_MAX_TOKEN + 1];
	size_t n;

	/* Deep nesting. */
	memset(b, 0x81, 2000);
	b[2000] = 0x00;
	assert_int_equal(decode_bin(b, 2001), CAPTOKEN_MALFORMED);
	/* Indefinite map / array / string at the top. */
	assert_int_equal(decode_bin((const uint8_t *)"\xbf\xff", 2), CAPTOKEN_MALFORMED);
	assert_int_equal(decode_bin((const uint8_t *)"\x9f\xff", 2), CAPTOKEN_MALFORMED);
	assert_int_equal(decode_bin((const uint8_t *)"\x7f\xff", 2), CAPTOKEN_MALFORMED);
	/* A huge declared length must not allocate. */
	assert_int_equal(decode_bin((const uint8_t *)"\x9b\xff\xff\xff\xff\xff\xff\xff\xff", 9),
	                 CAPTOKEN_MALFORMED);
	/* Vector A with a non-shortest head: the tid length 0x64 as 0x78 0x04. */
	const char *end;
	assert_int_equal(sodium_base642bin(b, sizeof b, VEC_A, strlen(VEC_A), NULL, &n, &end,
	                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
	assert_int_equal(b[5], 0x64);
	memmove(b + 7, b + 6, n - 6);
	b[5] = 0x78;
	b[6] = 0x04;
	assert_int_equal(decode_bin(b, n + 1), CAPTOKEN_MALFORMED);
	/* Trailing garbage after the map. */
	assert_int_equal(sodium_base642bin(b, sizeof b, VEC_A, strlen(VEC_A), NULL, &n, &end,
	                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
	b[n] = 0x00;
	assert_int_equal(decode_bin(b, n + 1), CAPTOKEN_MALFORMED);
	assert_int_equal(decode_bin(b, n), CAPTOKEN_OK);
	/* Unknown caveat name: "Tenant" → "Tenans" keeps every length. */
	uint8_t *p = memmem(b, n, "Tenant", 6);
	assert_non_null(p);
	p[5] = 's';
	assert_int_equal(decode_bin(b, n), CAPTOKEN_UNKNOWN_CAVEAT);
	/* Padding is refused. */
	snprintf(s, sizeof s, "%s=", VEC_A);
	captoken *d;
	assert_int_equal(captoken_decode(s, strlen(s), &d), CAPTOKEN_MALFORMED);
}

static void test_mint_attenuate(void **state)
{
	(void)state;
	captoken *t = captoken_new(), *d;
	char tok[CAPTOKEN_MAX_TOKEN + 1], tok2[CAPTOKEN_MAX_TOKEN + 1];
	captoken_keyring *kr = ring_a();
	captoken_ctx c = ctx_a("GET", "/o/x");
	captoken_caveat add[2];
	uint8_t wrong[32] = { 7 };

	strcpy(t->tid, "rt");
	strcpy(t->kid, "k1");
	t->has_prefix = true;
	strcpy(t->prefix, "/o/");
	t->nmethods = 2;
	strcpy(t->methods[0].s, "GET");
	strcpy(t->methods[1].s, "PUT");
	assert_int_equal(captoken_mint(t, KEY_A, tok, sizeof tok), 0);
	assert_int_equal(captoken_verify(tok, strlen(tok), kr, &c, NULL), CAPTOKEN_OK);
	c.method = "PUT";
	assert_int_equal(captoken_verify(tok, strlen(tok), kr, &c, NULL), CAPTOKEN_OK);
	/* Attenuate: GET only, and a rate. */
	memset(add, 0, sizeof add);
	add[0].kind = CAPTOKEN_CAV_METHOD;
	add[0].nmethods = 1;
	strcpy(add[0].methods[0].s, "GET");
	add[1] = cav_u(CAPTOKEN_CAV_RATE, 3);
	add[1].u2 = 4;
	assert_int_equal(captoken_decode(tok, strlen(tok), &d), CAPTOKEN_OK);
	assert_int_equal(captoken_attenuate(d, add, 2, wrong, tok2, sizeof tok2), CAPTOKEN_BAD_MAC);
	assert_int_equal(captoken_attenuate(d, add, 2, KEY_A, tok2, sizeof tok2), CAPTOKEN_OK);
	captoken_free(d);
	captoken_info info;
	assert_int_equal(captoken_verify(tok2, strlen(tok2), kr, &c, NULL), CAPTOKEN_SCOPE_METHOD);
	c.method = "GET";
	assert_int_equal(captoken_verify(tok2, strlen(tok2), kr, &c, &info), CAPTOKEN_OK);
	assert_int_equal(info.rate_per_s, 3);
	/* Dropping the appended caveats is not possible without the key. */
	assert_string_not_equal(tok, tok2);
	captoken_free(t);
	captoken_keyring_free(kr);
}

/* Custom caveat, as the reference encodes it: {"ns","name","cbor": <value>}
 * with the value itself embedded (not a byte string wrapping it). */
/* One spelling per token: libsodium's decoder reads any byte >= 0x80 as
 * '_', so the alphabet is checked before it (every '_' of Vector A swapped
 * for a high byte must not decode). */
static void test_b64_high_bytes_refused(void **state)
{
	(void)state;
	char s[sizeof VEC_A];
	captoken *t = NULL;
	int swapped = 0;

	for (size_t i = 0; i < sizeof VEC_A - 1; i++) {
		if (VEC_A[i] != '_')
			continue;
		memcpy(s, VEC_A, sizeof s);
		s[i] = (char)0xbf;
		assert_int_equal(captoken_decode(s, strlen(s), &t), CAPTOKEN_MALFORMED);
		assert_null(t);
		swapped++;
	}
	assert_true(swapped > 0);
	assert_int_equal(captoken_decode(VEC_A, strlen(VEC_A), &t), CAPTOKEN_OK);
	captoken_free(t);
}

static void test_custom_caveat_wire(void **state)
{
	(void)state;
	/* The value {"k": -2, "l": [true, null]} */
	static const uint8_t val[] = { 0xa2, 0x61, 'k', 0x21, 0x61, 'l', 0x82, 0xf5, 0xf6 };
	captoken_caveat cv;
	uint8_t buf[256];
	size_t n;

	memset(&cv, 0, sizeof cv);
	cv.kind = CAPTOKEN_CAV_CUSTOM;
	strcpy(cv.text, "acme");
	strcpy(cv.text2, "tier");
	memcpy(cv.bytes, val, sizeof val);
	cv.nbytes = sizeof val;
	assert_int_equal(captoken_caveat_cbor(&cv, buf, sizeof buf, &n), 0);
	static const uint8_t want[] = {
		0xa2, 0x61, 't', 0x66, 'C', 'u', 's', 't', 'o', 'm', 0x61, 'v',
		0xa3, 0x62, 'n', 's', 0x64, 'a', 'c', 'm', 'e',
		0x64, 'n', 'a', 'm', 'e', 0x64, 't', 'i', 'e', 'r',
		0x64, 'c', 'b', 'o', 'r',
		0xa2, 0x61, 'k', 0x21, 0x61, 'l', 0x82, 0xf5, 0xf6,
	};
	assert_int_equal(n, sizeof want);
	assert_memory_equal(buf, want, sizeof want);

	/* A token carrying it decodes, re-mints to the same string, and is refused
	 * by the verifier (no handler for namespace "acme"). */
	captoken *t = captoken_new(), *d = NULL;
	char tok[CAPTOKEN_MAX_TOKEN + 1], tok2[CAPTOKEN_MAX_TOKEN + 1];
	captoken_keyring *kr = ring_a();
	captoken_ctx c = ctx_a("GET", "/o/x");
	strcpy(t->tid, "ct");
	strcpy(t->kid, "k1");
	t->caveats[0] = cv;
	t->ncaveats = 1;
	assert_int_equal(captoken_mint(t, KEY_A, tok, sizeof tok), 0);
	assert_int_equal(captoken_decode(tok, strlen(tok), &d), CAPTOKEN_OK);
	assert_int_equal(d->ncaveats, 1);
	assert_int_equal(d->caveats[0].kind, CAPTOKEN_CAV_CUSTOM);
	assert_string_equal(d->caveats[0].text, "acme");
	assert_string_equal(d->caveats[0].text2, "tier");
	assert_int_equal(d->caveats[0].nbytes, sizeof val);
	assert_memory_equal(d->caveats[0].bytes, val, sizeof val);
	assert_int_equal(captoken_mint(d, KEY_A, tok2, sizeof tok2), 0);
	assert_string_equal(tok, tok2);
	assert_int_equal(captoken_verify(tok, strlen(tok), kr, &c, NULL), CAPTOKEN_CUSTOM);
	captoken_free(d);

	/* A value that is not exactly one item is not minted. */
	t->caveats[0].nbytes = 0;
	assert_int_not_equal(captoken_mint(t, KEY_A, tok, sizeof tok), 0);
	t->caveats[0].bytes[0] = 0x01;
	t->caveats[0].bytes[1] = 0x02;
	t->caveats[0].nbytes = 2;             /* two items */
	assert_int_not_equal(captoken_mint(t, KEY_A, tok, sizeof tok), 0);
	t->caveats[0].bytes[0] = 0x62;        /* text of 2, only 1 byte there */
	t->caveats[0].nbytes = 2;
	assert_int_not_equal(captoken_mint(t, KEY_A, tok, sizeof tok), 0);
	captoken_free(t);
	captoken_keyring_free(kr);
}

static void write_key(const char *path, const char *content, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(content, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_keyring_files(void **state)
{
	(void)state;
	char dir[] = "/tmp/captoken-test-XXXXXX", p[256], err[512];
	const char *hex = "3031323334353637383961626364656630313233343536373839616263646566\n";
	captoken_keyring *kr;

	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof p, "%s/k1.key", dir);
	write_key(p, hex, 0644);
	kr = captoken_keyring_new();
	assert_int_equal(captoken_keyring_load_dir(kr, dir, err, sizeof err), -1);
	assert_non_null(strstr(err, "k1.key"));
	assert_non_null(strstr(err, "0644"));
	assert_null(strstr(err, "3031"));
	captoken_keyring_free(kr);
	assert_int_equal(chmod(p, 0600), 0);
	snprintf(p, sizeof p, "%s/k2.key", dir);
	write_key(p, "3031323334353637383961626364656630313233343536373839616263646566", 0400);
	kr = captoken_keyring_new();
	assert_int_equal(captoken_keyring_load_dir(kr, dir, err, sizeof err), 0);
	assert_int_equal(captoken_keyring_count(kr), 2);
	assert_null(captoken_keyring_mint_kid(kr));
	assert_int_equal(captoken_keyring_set_mint(kr, "k2"), 0);
	assert_string_equal(captoken_keyring_mint_kid(kr), "k2");
	assert_memory_equal(captoken_keyring_find(kr, "k1"), KEY_A, 32);
	captoken_ctx c = ctx_a("GET", "/index/items/42");
	assert_int_equal(captoken_verify(VEC_A, strlen(VEC_A), kr, &c, NULL), CAPTOKEN_OK);
	captoken_keyring_free(kr);
	/* Bad content: 63 hex chars; non-hex. */
	write_key(p, "303132333435363738396162636465663031323334353637383961626364656", 0600);
	kr = captoken_keyring_new();
	assert_int_equal(captoken_keyring_load_file(kr, p, "k2", err, sizeof err), -1);
	assert_null(strstr(err, "3031"));
	write_key(p, "zz31323334353637383961626364656630313233343536373839616263646566", 0600);
	assert_int_equal(captoken_keyring_load_file(kr, p, "k2", err, sizeof err), -1);
	captoken_keyring_free(kr);
	unlink(p);
	snprintf(p, sizeof p, "%s/k1.key", dir);
	unlink(p);
	rmdir(dir);
}

/* Sealed key files: bound to their kid, the minting file, a grace that ends
 * verification by itself, and a ring without a KEK refusing sealed files. */
static void test_keyring_sealed_rotation(void **state)
{
	char dir[] = "/tmp/mn-ring-XXXXXX", p[128], err[512], aad[KEYFILE_AAD_MAX];
	uint8_t kb[KEK_LEN];

	(void)state;
	assert_non_null(mkdtemp(dir));
	memset(kb, 9, sizeof kb);
	kek *k = kek_from_bytes(kb);
	snprintf(p, sizeof p, "%s/k1.key", dir);
	assert_int_equal(keyfile_cap_aad(aad, sizeof aad, "k1"), 0);
	assert_int_equal(keyfile_write_at(p, k, aad, (const uint8_t *)KEY_A, 32, 1000, 0600, 0,
	                                  err, sizeof err), 0);
	snprintf(p, sizeof p, "%s/k1.expires", dir);
	FILE *f = fopen(p, "w");
	fputs("1700000100000\n", f);   /* ms */
	fclose(f);
	snprintf(p, sizeof p, "%s/minting", dir);
	f = fopen(p, "w");
	fputs("k1\n", f);
	fclose(f);
	captoken_keyring *kr = captoken_keyring_new();
	/* no KEK: a sealed file is refused, naming the file */
	assert_int_equal(captoken_keyring_load_dir(kr, dir, err, sizeof err), -1);
	assert_non_null(strstr(err, "k1.key"));
	assert_non_null(strstr(err, "no KEK"));
	captoken_keyring_set_kek(kr, k);
	assert_int_equal(captoken_keyring_load_dir(kr, dir, err, sizeof err), 0);
	assert_string_equal(captoken_keyring_mint_kid(kr), "k1");
	captoken_key_meta m;
	assert_string_equal(captoken_keyring_kid(kr, 0, &m), "k1");
	assert_true(m.sealed);
	assert_int_equal(m.created_ms, 1000);
	assert_int_equal(m.not_after_ms, 1700000100000);
	assert_null(captoken_keyring_kid(kr, 1, NULL));
	/* vector A at its own time verifies; past the grace the kid is unknown */
	captoken_ctx c = ctx_a("GET", "/index/items/42");
	assert_int_equal(captoken_verify(VEC_A, strlen(VEC_A), kr, &c, NULL), CAPTOKEN_OK);
	c.now = 1700000100;
	assert_int_equal(captoken_verify(VEC_A, strlen(VEC_A), kr, &c, NULL), CAPTOKEN_UNKNOWN_KID);
	captoken_keyring_free(kr);
	/* the same sealed bytes under another kid's name do not unseal */
	char q[128];
	snprintf(p, sizeof p, "%s/k1.key", dir);
	snprintf(q, sizeof q, "%s/k2.key", dir);
	assert_int_equal(rename(p, q), 0);
	kr = captoken_keyring_new();
	captoken_keyring_set_kek(kr, k);
	assert_int_equal(captoken_keyring_load_dir(kr, dir, err, sizeof err), -1);
	assert_non_null(strstr(err, "does not unseal"));
	captoken_keyring_free(kr);
	kek_free(k);
	unlink(q);
	snprintf(p, sizeof p, "%s/k1.expires", dir);
	unlink(p);
	snprintf(p, sizeof p, "%s/minting", dir);
	unlink(p);
	rmdir(dir);
}

/* decode_into a reused token gives exactly what a fresh decode gives, even
 * after a token with more caveats filled it. */
static void test_decode_into_reuse(void **state)
{
	(void)state;
	captoken *big = captoken_new(), *fresh, *reused = captoken_new();
	char tok[CAPTOKEN_MAX_TOKEN + 1];

	assert_non_null(big);
	assert_non_null(reused);
	snprintf(big->tid, sizeof big->tid, "big");
	snprintf(big->kid, sizeof big->kid, "k1");
	for (size_t i = 0; i < 40; i++) {
		char cust[32];
		snprintf(cust, sizeof cust, "/pfx/%zu/", i);
		assert_int_equal(captoken_caveat_set_text(&big->caveats[big->ncaveats++],
		                                          CAPTOKEN_CAV_PATH_PREFIX, cust), 0);
	}
	assert_int_equal(captoken_mint(big, KEY_A, tok, sizeof tok), 0);
	assert_int_equal(captoken_decode_into(tok, strlen(tok), reused), CAPTOKEN_OK);
	assert_int_equal(reused->ncaveats, 40);
	assert_int_equal(captoken_decode_into(VEC_A, strlen(VEC_A), reused), CAPTOKEN_OK);
	assert_int_equal(captoken_decode(VEC_A, strlen(VEC_A), &fresh), CAPTOKEN_OK);
	assert_memory_equal(reused, fresh, offsetof(captoken, caveats));
	assert_int_equal(reused->ncaveats, fresh->ncaveats);
	assert_memory_equal(reused->caveats, fresh->caveats, fresh->ncaveats * sizeof fresh->caveats[0]);
	assert_memory_equal(reused->mac, fresh->mac, CAPTOKEN_MAC_LEN);
	/* And it verifies the same. */
	captoken_keyring *kr = ring_a();
	captoken_ctx c = ctx_a("GET", "/index/a");
	assert_int_equal(captoken_check(reused, kr, &c, NULL), captoken_check(fresh, kr, &c, NULL));
	/* A bad string leaves no half-decoded claims usable: the result says so. */
	assert_int_equal(captoken_decode_into("!!", 2, reused), CAPTOKEN_MALFORMED);
	captoken_keyring_free(kr);
	captoken_free(fresh);
	captoken_free(reused);
	captoken_free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_into_reuse),
		cmocka_unit_test(test_vector_a_intermediates),
		cmocka_unit_test(test_vector_a_verdicts),
		cmocka_unit_test(test_every_char_tampered),
		cmocka_unit_test(test_each_caveat),
		cmocka_unit_test(test_scope),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_bad_cbor),
		cmocka_unit_test(test_mint_attenuate),
		cmocka_unit_test(test_custom_caveat_wire),
		cmocka_unit_test(test_b64_high_bytes_refused),
		cmocka_unit_test(test_keyring_files),
		cmocka_unit_test(test_keyring_sealed_rotation),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
