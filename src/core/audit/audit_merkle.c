/*
 * audit_merkle.c — RFC 6962-shaped Merkle tree on BLAKE3 (see audit_merkle.h).
 */
#include "core/audit/audit_merkle.h"

#include <string.h>

#include <blake3.h>

#define MERKLE_LEAF_PREFIX 0x00u
#define MERKLE_NODE_PREFIX 0x01u

void audit_merkle_leaf(const void *rec, size_t n, uint8_t out[B3_OUT_LEN])
{
	static const uint8_t p = MERKLE_LEAF_PREFIX;
	blake3_hasher h;

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, &p, 1);
	blake3_hasher_update(&h, rec, n);
	blake3_hasher_finalize(&h, out, B3_OUT_LEN);
}

void audit_merkle_node(const uint8_t l[B3_OUT_LEN], const uint8_t r[B3_OUT_LEN],
                       uint8_t out[B3_OUT_LEN])
{
	static const uint8_t p = MERKLE_NODE_PREFIX;
	blake3_hasher h;

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, &p, 1);
	blake3_hasher_update(&h, l, B3_OUT_LEN);
	blake3_hasher_update(&h, r, B3_OUT_LEN);
	blake3_hasher_finalize(&h, out, B3_OUT_LEN);
}

void audit_merkle_init(audit_merkle *m)
{
	memset(m, 0, sizeof *m);
}

/* Like a binary counter: equal-height subtrees merge as the carry moves up. */
int audit_merkle_push(audit_merkle *m, const uint8_t leaf[B3_OUT_LEN])
{
	uint8_t carry[B3_OUT_LEN];
	unsigned h = 0;

	if (m->size == UINT64_MAX)
		return -1;
	memcpy(carry, leaf, B3_OUT_LEN);
	while (m->size & ((uint64_t)1 << h)) {
		audit_merkle_node(m->sub[h], carry, carry);
		h++;
	}
	memcpy(m->sub[h], carry, B3_OUT_LEN);
	m->size++;
	return 0;
}

/* Higher bits are subtrees further left: fold from the smallest (rightmost). */
void audit_merkle_root(const audit_merkle *m, uint8_t out[B3_OUT_LEN])
{
	uint8_t acc[B3_OUT_LEN];
	bool have = false;

	if (m->size == 0) {
		b3_hash("", 0, out);
		return;
	}
	for (unsigned h = 0; h < AUDIT_MERKLE_MAX_DEPTH; h++) {
		if (!(m->size & ((uint64_t)1 << h)))
			continue;
		if (have)
			audit_merkle_node(m->sub[h], acc, acc);
		else
			memcpy(acc, m->sub[h], B3_OUT_LEN);
		have = true;
	}
	memcpy(out, acc, B3_OUT_LEN);
}

bool audit_merkle_equal(const audit_merkle *a, const audit_merkle *b)
{
	if (a->size != b->size)
		return false;
	for (unsigned h = 0; h < AUDIT_MERKLE_MAX_DEPTH; h++)
		if ((a->size & ((uint64_t)1 << h)) && memcmp(a->sub[h], b->sub[h], B3_OUT_LEN) != 0)
			return false;
	return true;
}

typedef struct merkle_range {
	uint64_t lo, hi;
	unsigned slot;            /* its place in the path */
} merkle_range;

static uint64_t merkle_split(uint64_t n)   /* largest power of two < n, n >= 2 */
{
	return (uint64_t)1 << (63 - __builtin_clzll(n - 1));
}

/* The sibling ranges of PATH(index, [0, size)), sorted by lo; slot 0 is the
 * leaf's sibling. Returns their count. */
static unsigned merkle_path_ranges(uint64_t index, uint64_t size,
                                   merkle_range r[AUDIT_MERKLE_MAX_DEPTH])
{
	merkle_range top[AUDIT_MERKLE_MAX_DEPTH];
	uint64_t lo = 0, hi = size;
	unsigned n = 0, left = 0;

	memset(top, 0, sizeof top);
	while (hi - lo > 1 && n < AUDIT_MERKLE_MAX_DEPTH) {
		uint64_t k = merkle_split(hi - lo);
		if (index - lo < k) {
			top[n++] = (merkle_range){ lo + k, hi, 0 };
			hi = lo + k;
		} else {
			top[n++] = (merkle_range){ lo, lo + k, 0 };
			lo += k;
		}
	}
	for (unsigned i = 0; i < n; i++)
		top[i].slot = n - 1 - i;           /* found top-down, listed bottom-up */
	/* Sorted by lo: the left siblings in the order found, then the right
	 * ones in reverse (each right sibling lies right of all deeper ones). */
	for (unsigned i = 0; i < n; i++)
		if (top[i].hi <= index)
			r[left++] = top[i];
	for (unsigned i = n; i-- > 0;)
		if (top[i].lo > index)
			r[left++] = top[i];
	return n;
}

int audit_merkle_prove(uint64_t index, uint64_t size, audit_leaf_fn next, void *ctx,
                       audit_proof *out, uint8_t leaf[B3_OUT_LEN])
{
	merkle_range r[AUDIT_MERKLE_MAX_DEPTH];
	audit_merkle sub;
	uint8_t h[B3_OUT_LEN];
	unsigned n, c = 0;

	if (index >= size)
		return -1;
	memset(out, 0, sizeof *out);
	out->index = index;
	out->size = size;
	n = merkle_path_ranges(index, size, r);
	out->len = n;
	audit_merkle_init(&sub);
	for (uint64_t i = 0; i < size; i++) {
		if (next(ctx, i, h) != 0)
			return -1;
		if (i == index) {
			if (leaf)
				memcpy(leaf, h, B3_OUT_LEN);
			continue;
		}
		while (c < n && r[c].hi <= i)
			c++;
		if (c >= n || i < r[c].lo || audit_merkle_push(&sub, h) != 0)
			return -1;                    /* cannot happen: ranges cover all but index */
		if (i + 1 == r[c].hi) {
			audit_merkle_root(&sub, out->path[r[c].slot]);
			audit_merkle_init(&sub);
		}
	}
	return 0;
}

bool audit_merkle_verify(const uint8_t leaf[B3_OUT_LEN], const audit_proof *p,
                         const uint8_t root[B3_OUT_LEN])
{
	uint64_t fn = p->index, sn;
	uint8_t r[B3_OUT_LEN];

	if (p->size == 0 || p->index >= p->size || p->len > AUDIT_MERKLE_MAX_DEPTH)
		return false;
	sn = p->size - 1;
	memcpy(r, leaf, B3_OUT_LEN);
	for (unsigned i = 0; i < p->len; i++) {
		if (sn == 0)
			return false;
		if ((fn & 1) || fn == sn) {
			audit_merkle_node(p->path[i], r, r);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			audit_merkle_node(r, p->path[i], r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && b3_equal(r, root);
}
