/*
 * audit_verify.h — the offline verifier of an audit directory (what
 * `macronode audit verify DIR` runs; docs/audit.md "Verify").
 *
 * It reads the segments in order and checks: every header continues the
 * state the previous segment ended in (file name = first index, frontier,
 * stream heads), every record parses strictly and is canonical, its
 * self_hash, its prev link and its seq (no gap, no repeat) in its stream;
 * then every checkpoint in checkpoints.log: canonical, signed by the given
 * key (node_id = BLAKE3 of it), sizes and times never going back, and its
 * root equal to the root of the first `size` records. It stops at the FIRST
 * problem and says where: the file, the byte offset, the record's global
 * index, stream and seq when known, and what is wrong.
 *
 * Memory is bounded: one line buffer, one chain state; no record is kept.
 */
#ifndef MN_CORE_AUDIT_VERIFY_H
#define MN_CORE_AUDIT_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/audit/audit_checkpoint.h"
#include "core/audit/audit_record.h"
#include "core/audit/audit_segment.h"
#include "core/identity/identity.h"

typedef struct audit_verify_report {
	/* totals checked (up to the problem, if any) */
	uint64_t segments;
	uint64_t records;              /* records checked (first_index + records = log size) */
	uint64_t first_index;          /* index of the first record still present (retention) */
	uint64_t checkpoints;          /* checkpoints whose root was checked against records */
	uint64_t checkpoints_pruned;   /* signed, but over records retention removed */
	unsigned streams;
	uint8_t  root[B3_OUT_LEN];     /* root of all records */
	uint64_t last_ckpt_size;       /* 0 when none */
	bool     given_checked;        /* the outside checkpoint's root matched */
	/* the first problem (when the call returned -1) */
	char     file[64];             /* "seg-….log", "checkpoints.log", or "" */
	uint64_t offset;
	bool     has_index;
	uint64_t index;                /* global record index */
	char     stream[AUDIT_STREAM_MAX + 1];   /* "" when not known */
	bool     has_seq;
	uint64_t seq;
	char     what[AUDIT_ERR_MAX];
} audit_verify_report;

/* Verify dir against pk (NULL: the key in dir/node.pub). 0 when all holds,
 * -1 with *rep naming the first problem. */
__attribute__((warn_unused_result))
int audit_verify_dir(const char *dir, const uint8_t *pk, audit_verify_report *rep);

/* rep->file of a problem with the outside checkpoint. */
#define AUDIT_VERIFY_XCKPT "--checkpoint"

/* The same, and the log must also reach `given` — a checkpoint obtained
 * apart from the copy (GET /api/v1/audit/checkpoint): signed by the same
 * key, its size at most the log's, and its root that of the log's first
 * `size` records. This catches records cut from the unsigned tail (after
 * the newest checkpoint stored in dir), which alone is undetectable. */
__attribute__((warn_unused_result))
int audit_verify_dir_against(const char *dir, const uint8_t *pk, const audit_checkpoint *given,
                             audit_verify_report *rep);

/* The same rules over one segment's bytes in memory (a header line, then
 * records): what the fuzz target drives. 0, or -1 with rep. */
__attribute__((warn_unused_result))
int audit_verify_segment_bytes(const char *buf, size_t n, audit_verify_report *rep);

#endif
