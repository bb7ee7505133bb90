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

/* Append a whole perfect subtree of 2^h leaves (size must be a multiple of
 * 2^h): the same state as pushing its leaves one by one. */
static int merkle_push_subtree(audit_merkle *m, unsigned h, const uint8_t root[B3_OUT_LEN])
{
	uint8_t carry[B3_OUT_LEN];
	unsigned k = h;

	if (h >= AUDIT_MERKLE_MAX_DEPTH - 1u || (m->size & (((uint64_t)1 << h) - 1u)) != 0)
		return -1;
	memcpy(carry, root, B3_OUT_LEN);
	while (k < AUDIT_MERKLE_MAX_DEPTH - 1u && (m->size & ((uint64_t)1 << k))) {
		audit_merkle_node(m->sub[k], carry, carry);
		k++;
	}
	memcpy(m->sub[k], carry, B3_OUT_LEN);
	m->size += (uint64_t)1 << h;
	return 0;
}

/* The path ranges below base->size come from base's subtrees. The left
 * siblings of a leaf at or past base->size tile [0, index) in aligned
 * power-of-two blocks, largest first, as base's subtrees tile [0, base->size):
 * the blocks of both agree until one straddles base->size, and that one
 * starts where base's remaining subtrees start. So a range below base->size
 * is one of base's subtrees, and the straddling one (at most one) begins
 * with base's subtrees from its lo. Fills path slots; leaves *sub holding the
 * straddling range's prefix. 0, or -1 when a range does not fit (a bug). */
static int merkle_from_base(const audit_merkle *base, const merkle_range *r, unsigned n,
                            audit_proof *out, audit_merkle *sub)
{
	uint64_t start = 0;

	for (unsigned k = 0; k < AUDIT_MERKLE_MAX_DEPTH; k++) {
		unsigned h = AUDIT_MERKLE_MAX_DEPTH - 1u - k;
		uint64_t w = (uint64_t)1 << h;
		bool used = false;
		if (!(base->size & w))
			continue;
		for (unsigned c = 0; c < n && !used; c++) {
			if (r[c].lo == start && r[c].hi == start + w) {
				memcpy(out->path[r[c].slot], base->sub[h], B3_OUT_LEN);
				used = true;
			} else if (r[c].lo <= start && r[c].hi > base->size) {
				if (sub->size == 0 && r[c].lo != start)
					return -1;
				used = merkle_push_subtree(sub, h, base->sub[h]) == 0;
			}
		}
		if (!used)
			return -1;
		start += w;
	}
	return 0;
}

int audit_merkle_prove(const audit_merkle *base, uint64_t index, uint64_t size,
                       audit_leaf_fn next, void *ctx, audit_proof *out,
                       uint8_t leaf[B3_OUT_LEN])
{
	merkle_range r[AUDIT_MERKLE_MAX_DEPTH];
	audit_merkle sub;
	uint8_t h[B3_OUT_LEN];
	uint64_t first = base ? base->size : 0;
	unsigned n, c = 0;

	if (index >= size || index < first)
		return -1;
	memset(out, 0, sizeof *out);
	out->index = index;
	out->size = size;
	n = merkle_path_ranges(index, size, r);
	out->len = n;
	audit_merkle_init(&sub);
	if (first && merkle_from_base(base, r, n, out, &sub) != 0)
		return -1;
	for (uint64_t i = first; i < size; i++) {
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
