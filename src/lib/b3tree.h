/*
 * b3tree.h — BLAKE3 outboard: one chaining value (CV) per 64 KiB group, so a
 * byte range of a stored object can be verified against its id by hashing only
 * the groups the range touches.
 *
 * Why 64 KiB groups work: BLAKE3 hashes 1 KiB chunks into a binary tree whose
 * left subtree always holds the largest power of two of chunks strictly less
 * than the total. A group is 64 chunks aligned at 64 chunks, so every group
 * (the last, possibly partial, one included) is a whole subtree, and the id is
 * the ROOT-flagged merge of the group CVs in the same tree layout.
 *
 * The outboard of an object of len bytes is b3tree_outboard_len(len) bytes:
 * the non-root CV of group 0, 1, ... in order. An object of one group
 * (len <= 64 KiB, len 0 included) has a one-entry outboard that proves
 * nothing: its id is the ROOT hash of the group's bytes, which cannot be
 * derived from a non-root CV. For such objects b3tree_group_ok() compares the
 * bytes with the id directly and b3tree_outboard_ok() has nothing to check.
 *
 * Verifying a range: b3tree_outboard_ok() once (O(groups) compressions, no
 * data read), then b3tree_group_ok() for each group before its bytes are
 * used. All pointers are borrowed for the duration of the call.
 *
 * The length is bound only in part by the outboard: a len with another group
 * count fails b3tree_outboard_ok, but a len off by a few bytes inside the
 * last group passes it and fails only b3tree_group_ok of the last group.
 * Take len from the blob itself (fstat), or check the last group, before
 * trusting a stored length.
 */
#ifndef MN_LIB_B3TREE_H
#define MN_LIB_B3TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/b3.h"

#define B3TREE_CHUNKS_PER_GROUP 64u
#define B3TREE_GROUP_LEN        (64u * 1024u)
#define B3TREE_CV_LEN           B3_OUT_LEN
/* 2^62 bytes: far beyond any object, and keeps group counts (2^46) and
 * outboard sizes (2^51) inside a 64-bit size_t and the merge stack small. */
#define B3TREE_MAX_LEN          ((uint64_t)1 << 62)

/* Number of groups of an object of len bytes: 1 for len 0 (BLAKE3 hashes the
 * empty input as one empty chunk). 0 if len > B3TREE_MAX_LEN. */
size_t b3tree_groups(uint64_t len);
/* Outboard size in bytes: B3TREE_CV_LEN * b3tree_groups(len). */
size_t b3tree_outboard_len(uint64_t len);
/* Length of group g of an object of len bytes (0 only for the empty object),
 * or -1 if g is past the end. */
__attribute__((warn_unused_result))
int64_t b3tree_group_len(uint64_t len, uint64_t group_index);

/* Non-root CV of group group_index from its glen bytes. glen must be
 * B3TREE_GROUP_LEN for every group but the last; 0 is accepted only for group
 * 0 (the empty object). 0 or -1 (bad arguments). */
__attribute__((warn_unused_result))
int b3tree_group_cv(const uint8_t *data, size_t glen, uint64_t group_index,
                    uint8_t cv[B3TREE_CV_LEN]);

/* Id (root hash) from the outboard of an object of len bytes made of ngroups
 * groups. -1 if ngroups != b3tree_groups(len) or ngroups == 1 (the id of a
 * one-group object needs its bytes: use b3_hash). O(ngroups) time, constant
 * stack (at most 46 pending CVs). */
__attribute__((warn_unused_result))
int b3tree_root_from_outboard(const uint8_t *outboard, size_t ngroups,
                              uint64_t len, uint8_t root[B3_OUT_LEN]);

/* Does the outboard (b3tree_outboard_len(len) bytes) hash to id? true for a
 * one-group object: there is nothing to check, b3tree_group_ok() checks its
 * bytes against id. Constant-time comparison. */
bool b3tree_outboard_ok(const uint8_t *outboard, uint64_t len,
                        const uint8_t id[B3_OUT_LEN]);

/* Do the glen bytes of group group_index match? Multi-group objects: against
 * the outboard entry (so the outboard must have passed b3tree_outboard_ok).
 * One-group objects: the ROOT hash of the bytes against id; outboard unused
 * and may be NULL. false also if glen is not the group's length. */
bool b3tree_group_ok(const uint8_t *data, size_t glen, uint64_t group_index,
                     uint64_t len, const uint8_t *outboard,
                     const uint8_t id[B3_OUT_LEN]);

/*
 * Streaming builder: feed an object in pieces of any size, get its outboard
 * and id. Memory is this fixed-size struct (one group buffer, ~64 KiB) plus
 * the outboard buffer, which the caller supplies with a fixed capacity
 * (b3tree_outboard_len(max object size)) and owns; the builder never
 * allocates. An object that would need more groups than the capacity makes
 * update fail, and the builder stays failed.
 *
 * Group 0 is held back until more bytes arrive or finish is called: a
 * one-group object's id is the ROOT hash of that group's bytes. Later full
 * groups are hashed as soon as complete, in place when the caller's piece
 * holds a whole group.
 */
typedef struct b3tree_builder {
	uint8_t *outboard;      /* borrowed, caller-owned */
	size_t cap_groups;      /* CVs that fit in outboard */
	size_t done_groups;     /* CVs written so far */
	uint64_t len;           /* bytes accepted so far */
	size_t buf_len;         /* bytes of the pending group in buf */
	bool failed;            /* sticky: over capacity, or used after finish */
	bool finished;
	uint8_t buf[B3TREE_GROUP_LEN];
} b3tree_builder;

/* For a builder embedded in a larger struct. */
void b3tree_builder_init(b3tree_builder *b, uint8_t *outboard,
                         size_t outboard_cap);
/* Append n bytes (borrowed). 0 or -1 (capacity, B3TREE_MAX_LEN, finished). */
__attribute__((warn_unused_result))
int b3tree_builder_update(b3tree_builder *b, const void *data, size_t n);
/* Complete the outboard (b3tree_outboard_len(b->len) bytes) and write the
 * id. 0 or -1 (failed builder, or finish called twice). */
__attribute__((warn_unused_result))
int b3tree_builder_finish(b3tree_builder *b, uint8_t root[B3_OUT_LEN]);

#endif
