/* Unit tests for core/audit/audit_merkle: incremental roots against a naive
 * RFC 6962 recomputation, audit paths for every index of many sizes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/audit/audit_merkle.h"
#include "lib/b3.h"

#define MAXN 70u

static uint8_t leaves[MAXN][B3_OUT_LEN];

static void make_leaves(void)
{
	for (unsigned i = 0; i < MAXN; i++) {
		char rec[32];
		int n = snprintf(rec, sizeof rec, "{\"record\":%u}", i);
		audit_merkle_leaf(rec, (size_t)n, leaves[i]);
	}
}

/* MTH(D[lo:hi]) exactly as RFC 6962 §2.1 writes it. */
static void naive_root(unsigned lo, unsigned hi, uint8_t out[B3_OUT_LEN])
{
	uint8_t l[B3_OUT_LEN], r[B3_OUT_LEN];
	unsigned n = hi - lo, k = 1;

	if (n == 1) {
		memcpy(out, leaves[lo], B3_OUT_LEN);
		return;
	}
	while (k * 2 < n)
		k *= 2;
	naive_root(lo, lo + k, l);
	naive_root(lo + k, hi, r);
	audit_merkle_node(l, r, out);
}

static void test_leaf_and_node_prefixes(void **state)
{
	uint8_t a[B3_OUT_LEN], b[B3_OUT_LEN], buf[1 + 2 * B3_OUT_LEN];

	(void)state;
	audit_merkle_leaf("abc", 3, a);
	memcpy(buf, "\x00" "abc", 4);
	b3_hash(buf, 4, b);
	assert_memory_equal(a, b, B3_OUT_LEN);
	audit_merkle_node(leaves[0], leaves[1], a);
	buf[0] = 0x01;
	memcpy(buf + 1, leaves[0], B3_OUT_LEN);
	memcpy(buf + 1 + B3_OUT_LEN, leaves[1], B3_OUT_LEN);
	b3_hash(buf, sizeof buf, b);
	assert_memory_equal(a, b, B3_OUT_LEN);
}

static void test_roots_match_naive(void **state)
{
	audit_merkle m;
	uint8_t got[B3_OUT_LEN], want[B3_OUT_LEN];

	(void)state;
	audit_merkle_init(&m);
	audit_merkle_root(&m, got);
	b3_hash("", 0, want);
	assert_memory_equal(got, want, B3_OUT_LEN);
	for (unsigned n = 1; n <= MAXN; n++) {
		assert_int_equal(audit_merkle_push(&m, leaves[n - 1]), 0);
		assert_int_equal(m.size, n);
		audit_merkle_root(&m, got);
		naive_root(0, n, want);
		if (memcmp(got, want, B3_OUT_LEN) != 0)
			fail_msg("root of %u leaves differs from the naive MTH", n);
	}
	/* The shape, spelled out for 3 leaves: H(H(l0,l1), l2). */
	uint8_t l01[B3_OUT_LEN];
	audit_merkle_init(&m);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(audit_merkle_push(&m, leaves[i]), 0);
	audit_merkle_node(leaves[0], leaves[1], l01);
	audit_merkle_node(l01, leaves[2], want);
	audit_merkle_root(&m, got);
	assert_memory_equal(got, want, B3_OUT_LEN);
}

typedef struct { unsigned calls; } leaf_ctx;

static int next_leaf(void *ctx, uint64_t i, uint8_t out[B3_OUT_LEN])
{
	leaf_ctx *c = ctx;

	assert_int_equal(i, c->calls);    /* in order, once each */
	c->calls++;
	memcpy(out, leaves[i], B3_OUT_LEN);
	return 0;
}

static void test_proofs_every_index(void **state)
{
	uint8_t root[B3_OUT_LEN], leaf[B3_OUT_LEN], other[B3_OUT_LEN];
	audit_proof p, q;

	(void)state;
	for (unsigned n = 1; n <= MAXN; n++) {
		naive_root(0, n, root);
		for (unsigned i = 0; i < n; i++) {
			leaf_ctx c = { 0 };
			assert_int_equal(audit_merkle_prove(NULL, i, n, next_leaf, &c, &p, leaf), 0);
			assert_int_equal(c.calls, n);
			assert_memory_equal(leaf, leaves[i], B3_OUT_LEN);
			if (!audit_merkle_verify(leaf, &p, root))
				fail_msg("proof of %u in %u does not verify", i, n);
			/* Wrong leaf, wrong index, a changed or missing hash: all fail. */
			assert_false(audit_merkle_verify(leaves[(i + 1) % MAXN], &p, root));
			q = p;
			q.index = (i + 1) % n;
			if (n > 1)
				assert_false(audit_merkle_verify(leaf, &q, root));
			/* (The size alone is not bound by a path: the signed tree head
			 * carries it. RFC 6962 proofs are the same.) */
			if (p.len > 0) {
				q = p;
				q.path[p.len - 1][0] ^= 1;
				assert_false(audit_merkle_verify(leaf, &q, root));
				q = p;
				q.len--;
				assert_false(audit_merkle_verify(leaf, &q, root));
			}
			naive_root(0, n == 1 ? 1 : n - 1, other);
			if (n > 1)
				assert_false(audit_merkle_verify(leaf, &p, other));
		}
	}
}

typedef struct { uint64_t next; } base_ctx;

static int next_leaf_from(void *ctx, uint64_t i, uint8_t out[B3_OUT_LEN])
{
	base_ctx *c = ctx;

	assert_int_equal(i, c->next);      /* from base->size on, in order */
	c->next++;
	memcpy(out, leaves[i], B3_OUT_LEN);
	return 0;
}

/* After retention: the first P leaves are gone, only their subtree roots
 * (a segment header's frontier) remain. Every later index still proves, with
 * the same path as from all the leaves. */
static void test_proofs_from_a_base(void **state)
{
	uint8_t root[B3_OUT_LEN], leaf[B3_OUT_LEN];
	audit_proof p, full;
	audit_merkle base;

	(void)state;
	for (unsigned n = 2; n <= MAXN; n++) {
		naive_root(0, n, root);
		for (unsigned P = 1; P < n; P++) {
			audit_merkle_init(&base);
			for (unsigned i = 0; i < P; i++)
				assert_int_equal(audit_merkle_push(&base, leaves[i]), 0);
			for (unsigned i = P; i < n; i++) {
				base_ctx c = { P };
				leaf_ctx fc = { 0 };
				if (audit_merkle_prove(&base, i, n, next_leaf_from, &c, &p, leaf) != 0)
					fail_msg("no proof of %u in %u from a base of %u", i, n, P);
				assert_int_equal(c.next, n);
				assert_true(audit_merkle_verify(leaf, &p, root));
				assert_int_equal(audit_merkle_prove(NULL, i, n, next_leaf, &fc, &full, NULL), 0);
				assert_int_equal(p.len, full.len);
				assert_memory_equal(p.path, full.path, (size_t)p.len * B3_OUT_LEN);
			}
			base_ctx c = { P };
			assert_int_equal(audit_merkle_prove(&base, P - 1, n, next_leaf_from, &c, &p, leaf), -1);
		}
	}
}

static int failing_leaf(void *ctx, uint64_t i, uint8_t out[B3_OUT_LEN])
{
	(void)ctx;
	memcpy(out, leaves[i], B3_OUT_LEN);
	return i == 5 ? -1 : 0;
}

static void test_proof_refusals(void **state)
{
	audit_proof p;
	leaf_ctx c = { 0 };

	(void)state;
	assert_int_equal(audit_merkle_prove(NULL, 3, 3, next_leaf, &c, &p, NULL), -1);
	assert_int_equal(audit_merkle_prove(NULL, 1, 9, failing_leaf, NULL, &p, NULL), -1);
	p.size = 0;
	assert_false(audit_merkle_verify(leaves[0], &p, leaves[0]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leaf_and_node_prefixes),
		cmocka_unit_test(test_roots_match_naive),
		cmocka_unit_test(test_proofs_every_index),
		cmocka_unit_test(test_proofs_from_a_base),
		cmocka_unit_test(test_proof_refusals),
	};
	make_leaves();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
