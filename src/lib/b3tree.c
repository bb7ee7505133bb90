/*
 * b3tree.c — BLAKE3 outboard per 64 KiB group (see b3tree.h).
 *
 * Built on the internals of the official C implementation (blake3_impl.h):
 * blake3_hash_many hashes many full chunks, and many parent nodes, at once
 * with SIMD, exactly as blake3_hasher_update does, so a group costs the same
 * as hashing its bytes with b3_hash.
 */
#include "lib/b3tree.h"
#include "lib/b3tree_test.h"

#include <stdlib.h>
#include <string.h>

#include <blake3_impl.h>

/* Subtree merges pending while walking the outboard: one per set bit of the
 * group count, and B3TREE_MAX_LEN has at most 46 bits of groups. */
#define B3TREE_MAX_DEPTH 64
#define B3TREE_BLOCKS_PER_CHUNK (BLAKE3_CHUNK_LEN / BLAKE3_BLOCK_LEN)

_Static_assert(B3TREE_GROUP_LEN == B3TREE_CHUNKS_PER_GROUP * BLAKE3_CHUNK_LEN,
               "a group is a whole number of chunks");
_Static_assert((B3TREE_CHUNKS_PER_GROUP & (B3TREE_CHUNKS_PER_GROUP - 1)) == 0,
               "a group must be a power of two of chunks to be a subtree");
_Static_assert(SIZE_MAX / B3TREE_CV_LEN >= B3TREE_MAX_LEN / B3TREE_GROUP_LEN + 1,
               "outboard sizes must fit in size_t");

size_t b3tree_groups(uint64_t len)
{
	if (len > B3TREE_MAX_LEN)
		return 0;
	if (len == 0)
		return 1;
	return (size_t)((len - 1) / B3TREE_GROUP_LEN + 1);
}

size_t b3tree_outboard_len(uint64_t len)
{
	return b3tree_groups(len) * B3TREE_CV_LEN;
}

int64_t b3tree_group_len(uint64_t len, uint64_t group_index)
{
	size_t n = b3tree_groups(len);

	if (n == 0 || group_index >= n)
		return -1;
	uint64_t start = group_index * B3TREE_GROUP_LEN;
	uint64_t rest = len - start;
	return (int64_t)(rest < B3TREE_GROUP_LEN ? rest : B3TREE_GROUP_LEN);
}

/* Non-root CV of the one chunk that is shorter than BLAKE3_CHUNK_LEN (the
 * object's last), block by block as blake3.c's chunk state does. n may be 0:
 * the empty input is one empty block. */
static void b3tree_chunk_cv_partial(const uint8_t *p, size_t n,
                                    uint64_t counter, uint8_t out[32])
{
	uint32_t cv[8];
	uint8_t flags = CHUNK_START;
	uint8_t block[BLAKE3_BLOCK_LEN] = { 0 };

	memcpy(cv, IV, sizeof cv);
	while (n > BLAKE3_BLOCK_LEN) {
		blake3_compress_in_place(cv, p, BLAKE3_BLOCK_LEN, counter, flags);
		flags = 0;
		p += BLAKE3_BLOCK_LEN;
		n -= BLAKE3_BLOCK_LEN;
	}
	if (n > 0)
		memcpy(block, p, n);
	blake3_compress_in_place(cv, block, (uint8_t)n, counter,
	                         (uint8_t)(flags | CHUNK_END));
	store_cv_words(out, cv);
}

/* Reduce n adjacent CVs to one, a tree level at a time: pair neighbours
 * (SIMD), carry an odd last one up. This yields BLAKE3's left-complete layout
 * (left subtree = largest power of two < n), as compress_subtree_to_parent_node
 * in blake3.c does. Never ROOT: a group is never the whole tree here. */
static void b3tree_merge_level(uint8_t *cvs, size_t n, uint8_t *tmp)
{
	const uint8_t *inputs[B3TREE_CHUNKS_PER_GROUP / 2];

	while (n > 1) {
		size_t pairs = n / 2;

		for (size_t i = 0; i < pairs; i++)
			inputs[i] = cvs + i * BLAKE3_BLOCK_LEN;
		/* Separate output buffer: the SIMD code may read a batch's inputs
		 * after writing an earlier batch's outputs. */
		blake3_hash_many(inputs, pairs, 1, IV, 0, false, PARENT, 0, 0, tmp);
		if (n & 1)
			memcpy(tmp + pairs * BLAKE3_OUT_LEN,
			       cvs + (n - 1) * BLAKE3_OUT_LEN, BLAKE3_OUT_LEN);
		n = pairs + (n & 1);
		memcpy(cvs, tmp, n * BLAKE3_OUT_LEN);
	}
}

int b3tree_group_cv(const uint8_t *data, size_t glen, uint64_t group_index,
                    uint8_t cv[B3TREE_CV_LEN])
{
	uint8_t cvs[B3TREE_CHUNKS_PER_GROUP * BLAKE3_OUT_LEN];
	uint8_t tmp[B3TREE_CHUNKS_PER_GROUP / 2 * BLAKE3_OUT_LEN];
	const uint8_t *inputs[B3TREE_CHUNKS_PER_GROUP];

	if (glen > B3TREE_GROUP_LEN || (glen > 0 && !data) || !cv ||
	    group_index >= B3TREE_MAX_LEN / B3TREE_GROUP_LEN ||
	    (glen == 0 && group_index != 0))
		return -1;
	uint64_t counter = group_index * B3TREE_CHUNKS_PER_GROUP;
	size_t full = glen / BLAKE3_CHUNK_LEN, tail = glen % BLAKE3_CHUNK_LEN;

	for (size_t i = 0; i < full; i++)
		inputs[i] = data + i * BLAKE3_CHUNK_LEN;
	if (full > 0)
		blake3_hash_many(inputs, full, B3TREE_BLOCKS_PER_CHUNK, IV, counter,
		                 true, 0, CHUNK_START, CHUNK_END, cvs);
	size_t n = full;
	if (tail > 0 || glen == 0) {
		b3tree_chunk_cv_partial(data + full * BLAKE3_CHUNK_LEN, tail,
		                        counter + full, cvs + full * BLAKE3_OUT_LEN);
		n++;
	}
	b3tree_merge_level(cvs, n, tmp);
	memcpy(cv, cvs, B3TREE_CV_LEN);
	return 0;
}

/* Parent node of two CVs; out may alias left or right. */
static void b3tree_parent(const uint8_t *left, const uint8_t *right,
                          uint8_t flags, uint8_t out[32])
{
	uint8_t block[BLAKE3_BLOCK_LEN];
	uint32_t cv[8];

	memcpy(block, left, BLAKE3_OUT_LEN);
	memcpy(block + BLAKE3_OUT_LEN, right, BLAKE3_OUT_LEN);
	memcpy(cv, IV, sizeof cv);
	blake3_compress_in_place(cv, block, BLAKE3_BLOCK_LEN, 0, flags);
	store_cv_words(out, cv);
}

int b3tree_root_from_outboard(const uint8_t *outboard, size_t ngroups,
                              uint64_t len, uint8_t root[B3_OUT_LEN])
{
	uint8_t stack[B3TREE_MAX_DEPTH][BLAKE3_OUT_LEN];
	uint8_t cv[BLAKE3_OUT_LEN];
	size_t depth = 0;

	if (!outboard || !root || ngroups < 2 || ngroups != b3tree_groups(len))
		return -1;
	/* Every group but the last: merge complete subtrees eagerly, as
	 * blake3.c's cv stack does. That is safe because a later group always
	 * exists, so none of these merges is the root. */
	for (size_t g = 0; g + 1 < ngroups; g++) {
		uint64_t total = (uint64_t)g + 1;

		memcpy(cv, outboard + g * BLAKE3_OUT_LEN, BLAKE3_OUT_LEN);
		for (; (total & 1) == 0; total >>= 1)
			b3tree_parent(stack[--depth], cv, PARENT, cv);
		memcpy(stack[depth++], cv, BLAKE3_OUT_LEN);
	}
	/* The last group closes every pending subtree right to left; the final
	 * merge is the root. depth >= 1 because ngroups >= 2. */
	memcpy(cv, outboard + (ngroups - 1) * BLAKE3_OUT_LEN, BLAKE3_OUT_LEN);
	while (depth > 1)
		b3tree_parent(stack[--depth], cv, PARENT, cv);
	b3tree_parent(stack[0], cv, PARENT | ROOT, root);
	return 0;
}

bool b3tree_outboard_ok(const uint8_t *outboard, uint64_t len,
                        const uint8_t id[B3_OUT_LEN])
{
	uint8_t root[B3_OUT_LEN];
	size_t n = b3tree_groups(len);

	if (n == 0 || !id)
		return false;
	if (n == 1)
		return true; /* see b3tree.h: the group is checked against id */
	if (b3tree_root_from_outboard(outboard, n, len, root) != 0)
		return false;
	return b3_equal(root, id);
}

bool b3tree_group_ok(const uint8_t *data, size_t glen, uint64_t group_index,
                     uint64_t len, const uint8_t *outboard,
                     const uint8_t id[B3_OUT_LEN])
{
	uint8_t cv[B3TREE_CV_LEN];
	int64_t want = b3tree_group_len(len, group_index);

	if (want < 0 || (uint64_t)want != glen || (glen > 0 && !data) || !id)
		return false;
	if (b3tree_groups(len) == 1) {
		b3_hash(data, glen, cv);
		return b3_equal(cv, id);
	}
	if (!outboard || b3tree_group_cv(data, glen, group_index, cv) != 0)
		return false;
	return b3_equal(cv, outboard + group_index * B3TREE_CV_LEN);
}

b3tree_builder *b3tree_builder_new(uint8_t *outboard, size_t outboard_cap)
{
	b3tree_builder *b = malloc(sizeof *b);

	if (b)
		b3tree_builder_init(b, outboard, outboard_cap);
	return b;
}

void b3tree_builder_free(b3tree_builder *b)
{
	free(b);
}

void b3tree_builder_init(b3tree_builder *b, uint8_t *outboard,
                         size_t outboard_cap)
{
	b->outboard = outboard;
	b->cap_groups = outboard ? outboard_cap / B3TREE_CV_LEN : 0;
	b->done_groups = 0;
	b->len = 0;
	b->buf_len = 0;
	b->failed = false;
	b->finished = false;
}

/* Write the CV of the next group, whose glen bytes are at p. */
static int b3tree_builder_emit(b3tree_builder *b, const uint8_t *p, size_t glen)
{
	if (b->done_groups >= b->cap_groups)
		return -1; /* update's capacity check makes this unreachable */
	if (b3tree_group_cv(p, glen, b->done_groups,
	                    b->outboard + b->done_groups * B3TREE_CV_LEN) != 0)
		return -1;
	b->done_groups++;
	return 0;
}

/* May a full group be hashed now? Yes unless it is group 0: only a
 * one-group object's id needs the bytes themselves (ROOT on the group's last
 * compression); from the second group on the outboard CVs are enough. */
static bool b3tree_builder_may_emit(const b3tree_builder *b, size_t avail)
{
	return avail > B3TREE_GROUP_LEN ||
	       (avail == B3TREE_GROUP_LEN && b->done_groups > 0);
}

/* Consume bytes. Whole groups are hashed in place from the caller's buffer
 * when possible (the 64 KiB writes of the gateway cost no copy); the rest is
 * gathered in buf. */
static int b3tree_builder_absorb(b3tree_builder *b, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (b->buf_len == B3TREE_GROUP_LEN) {
			if (b3tree_builder_emit(b, b->buf, b->buf_len) != 0)
				return -1;
			b->buf_len = 0;
		}
		if (b->buf_len == 0 && b3tree_builder_may_emit(b, n)) {
			if (b3tree_builder_emit(b, p, B3TREE_GROUP_LEN) != 0)
				return -1;
			p += B3TREE_GROUP_LEN;
			n -= B3TREE_GROUP_LEN;
			continue;
		}
		size_t take = B3TREE_GROUP_LEN - b->buf_len;
		if (take > n)
			take = n;
		memcpy(b->buf + b->buf_len, p, take);
		b->buf_len += take;
		p += take;
		n -= take;
		if (b->buf_len == B3TREE_GROUP_LEN && b->done_groups > 0) {
			if (b3tree_builder_emit(b, b->buf, b->buf_len) != 0)
				return -1;
			b->buf_len = 0;
		}
	}
	return 0;
}

int b3tree_builder_update(b3tree_builder *b, const void *data, size_t n)
{
	if (!b || b->failed || b->finished || (n > 0 && !data))
		goto fail;
	if (n == 0)
		return 0;
	/* Refuse before consuming anything: the caller learns the object is
	 * too big while the outboard is still consistent with b->len. */
	if (n > B3TREE_MAX_LEN - b->len ||
	    b3tree_groups(b->len + n) > b->cap_groups)
		goto fail;
	if (b3tree_builder_absorb(b, data, n) != 0)
		goto fail;
	b->len += n;
	return 0;
fail:
	if (b)
		b->failed = true;
	return -1;
}

int b3tree_builder_finish(b3tree_builder *b, uint8_t root[B3_OUT_LEN])
{
	if (!b || !root || b->failed || b->finished || b->cap_groups == 0)
		goto fail;
	b->finished = true;
	/* A pending group is the last one: partial, or group 0 held back (see
	 * b3tree_builder_may_emit), or the empty object's one empty group. */
	if ((b->buf_len > 0 || b->len == 0) &&
	    b3tree_builder_emit(b, b->buf, b->buf_len) != 0)
		goto fail;
	if (b->done_groups == 1) {
		b3_hash(b->buf, b->buf_len, root);
		return 0;
	}
	if (b3tree_root_from_outboard(b->outboard, b->done_groups, b->len,
	                              root) != 0)
		goto fail;
	return 0;
fail:
	if (b)
		b->failed = true;
	return -1;
}

uint64_t b3tree_builder_len(const b3tree_builder *b)
{
	return b->len;
}
