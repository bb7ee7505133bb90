/*
 * audit_segment.h — segment files and the state a log carries across them
 * (docs/audit.md "Segments").
 *
 * A segment is "seg-<20-digit first index>.log" in the audit directory: one
 * header line, then one stored record per line ('\n' after each; canonical
 * JSON never holds a raw newline). The header is the canonical JSON
 *   {"first_index":N,"frontier":["<hex>",...],"streams":{"S":{"next_seq":K,
 *    "prev":"b3:…"},...},"type":"ron-audit-segment","v":1}
 * — the log's state before the segment's first record: the Merkle subtree
 * roots of records 0..N-1 (largest subtree first) and each stream's chain
 * head. A segment therefore verifies on its own, and retention can remove
 * the oldest segments without breaking the chain or the tree: what remains
 * starts from a header, and every later signed checkpoint binds that header's
 * frontier (a root over a forged frontier would not match the signature).
 *
 * audit_state is that state (chain heads and tree); audit_state_apply is the
 * one place where the chain rules are judged, for the writer, the recovery
 * scan and the offline verifier alike.
 */
#ifndef MN_CORE_AUDIT_SEGMENT_H
#define MN_CORE_AUDIT_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/audit/audit_merkle.h"
#include "core/audit/audit_record.h"

#define AUDIT_MAX_STREAMS   64u                  /* streams in one log */
#define AUDIT_HEADER_MAX    24576u               /* bytes of a segment header line */
#define AUDIT_LINE_MAX      AUDIT_HEADER_MAX     /* the longest line of any audit file */
#define AUDIT_SEG_PREFIX    "seg-"
#define AUDIT_SEG_SUFFIX    ".log"
#define AUDIT_SEG_NAME_LEN  (4u + 20u + 4u)      /* "seg-" + 20 digits + ".log" */
#define AUDIT_MAX_SEGMENTS  65536u               /* segment files one directory may hold */

typedef struct audit_head {
	char     stream[AUDIT_STREAM_MAX + 1];
	uint64_t next_seq;
	uint8_t  prev[B3_OUT_LEN];                   /* self_hash of seq next_seq-1 */
} audit_head;

typedef struct audit_state {
	audit_merkle tree;
	unsigned     nstreams;
	audit_head   heads[AUDIT_MAX_STREAMS];       /* sorted by stream name */
} audit_state;

void audit_state_init(audit_state *s);
/* The head of stream (NULL when the stream has no record yet). */
const audit_head *audit_state_head(const audit_state *s, const char *stream);
/* Does r continue its stream? 0, or -1 with err (seq gap/reorder, prev link,
 * too many streams). Nothing changes on -1. */
__attribute__((warn_unused_result))
int audit_state_check(const audit_state *s, const audit_record *r, char *err, size_t errlen);
/* audit_state_check, then take r (stored bytes line[0..n)) in: head moves,
 * leaf appended. */
__attribute__((warn_unused_result))
int audit_state_apply(audit_state *s, const audit_record *r, const char *line, size_t n,
                      char *err, size_t errlen);
bool audit_state_equal(const audit_state *a, const audit_state *b);

/* The header line of a segment starting at state s into out[0..cap) (no
 * newline). 0, or -1 when it does not fit. */
__attribute__((warn_unused_result))
int audit_header_encode(const audit_state *s, char *out, size_t cap, size_t *len);
/* Strictly parse a header line into *s. 0, or -1 with err. */
__attribute__((warn_unused_result))
int audit_header_parse(const char *line, size_t n, audit_state *s, char *err, size_t errlen);

/* "seg-<20 digits>.log" for first index. */
void audit_segment_name(uint64_t first, char out[AUDIT_SEG_NAME_LEN + 1]);
/* Is name a segment file name? Its first index into *first. */
bool audit_segment_parse_name(const char *name, uint64_t *first);
/* The first indexes of the segments in dir, sorted ascending, into a new
 * array (caller frees) of *n. 0, or -1 with err (unreadable dir, more than
 * AUDIT_MAX_SEGMENTS). */
__attribute__((warn_unused_result))
int audit_segment_list(const char *dir, uint64_t **firsts, size_t *n, char *err, size_t errlen);

/* Reading a file one line at a time with offsets; lines are at most
 * AUDIT_LINE_MAX bytes. */
typedef enum {
	AUDIT_LINE_OK = 0,       /* *line, *len (no '\n'), *off = the line's offset */
	AUDIT_LINE_EOF,          /* the file ends after a '\n' (or is empty) */
	AUDIT_LINE_TORN,         /* bytes after the last '\n': *off, *len say where */
	AUDIT_LINE_TOO_LONG,     /* no '\n' within AUDIT_LINE_MAX bytes of *off */
	AUDIT_LINE_ERROR,        /* read(2) failed: errno */
} audit_line_status;

typedef struct audit_lines {
	int      fd;             /* borrowed */
	uint64_t base;           /* file offset of buf[0] */
	size_t   start, end;
	char     buf[AUDIT_LINE_MAX + 1];
} audit_lines;

void audit_lines_init(audit_lines *l, int fd);
audit_line_status audit_lines_next(audit_lines *l, const char **line, size_t *len,
                                   uint64_t *off);

/* fsync a directory by path. 0/-1 (errno). */
__attribute__((warn_unused_result))
int audit_fsync_dir(const char *dir);

#endif
