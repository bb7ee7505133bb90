/*
 * audit_log.h — the writer's side of the audit log: the library the audit
 * service (its only writer) is built on (docs/audit.md "API").
 *
 * Blocking file I/O throughout: the service calls it from its own loop on
 * its own timer (fsync_interval, checkpoint_interval), never from another
 * service's callback. One audit_log per directory and process; nothing here
 * is shared or global.
 *
 *   audit_log_open      recover: check every segment (a chain or tree break is
 *                       an error naming the file and offset), truncate a torn
 *                       last record or checkpoint and say so in *rec
 *   audit_log_append    chain one entry into the pending batch (seq, prev,
 *                       self_hash assigned here); nothing is on disk yet
 *   audit_log_sync      write the batch (rotating first when the segment
 *                       would pass segment_max), one fsync: only now are the
 *                       batch's records acknowledged
 *   audit_log_checkpoint  sync, then sign a tree head over every record and
 *                       append it to checkpoints.log (fsync)
 *   audit_log_retain    remove the oldest whole segments by age/size
 *   audit_log_find / audit_log_prove   stream+seq → index → inclusion proof
 *   audit_log_recent    the newest records (of a stream), newest first
 *
 * After a failed write or fsync the log refuses everything (AUDIT_LOG_BROKEN):
 * free it and open again, which recovers from what reached the disk.
 */
#ifndef MN_CORE_AUDIT_LOG_H
#define MN_CORE_AUDIT_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/audit/audit_checkpoint.h"
#include "core/audit/audit_merkle.h"
#include "core/audit/audit_record.h"
#include "core/audit/audit_segment.h"
#include "core/identity/identity.h"

#define AUDIT_SEGMENT_MAX_DEFAULT (64u * 1024u * 1024u)  /* rotate past 64 MiB */
#define AUDIT_SEGMENT_MAX_MIN     (64u * 1024u)          /* smaller is refused */
#define AUDIT_BATCH_MAX_RECORDS   1024u                  /* records per sync */
#define AUDIT_BATCH_MAX_BYTES     (1024u * 1024u)        /* bytes per sync */

typedef struct audit_log audit_log;

#define AUDIT_RAM_MIN             (2u * AUDIT_BATCH_MAX_BYTES)  /* smallest RAM log */

typedef struct audit_log_opts {
	const char          *dir;            /* <data>/audit; created 0700. NULL: in RAM */
	uint64_t             ram_bytes;      /* dir NULL: keep the newest ram_bytes of records
	                                        (≥ AUDIT_RAM_MIN); nothing touches a file */
	uint64_t             segment_max;    /* 0 = AUDIT_SEGMENT_MAX_DEFAULT */
	unsigned             batch_records;  /* records per sync, 1..AUDIT_BATCH_MAX_RECORDS;
	                                        0 = AUDIT_BATCH_MAX_RECORDS (others: tests) */
	const node_identity *id;             /* borrowed for the log's life; signs checkpoints */
} audit_log_opts;

/* What open found and repaired. */
typedef struct audit_recovery {
	uint64_t records;                    /* records in the log (index of the next) */
	uint64_t first_index;                /* first record still present */
	unsigned segments;
	uint64_t torn_bytes;                 /* cut from the last segment (0 = clean) */
	char     torn_file[AUDIT_SEG_NAME_LEN + 1];
	uint64_t torn_offset;
	uint64_t ckpt_torn_bytes;            /* cut from checkpoints.log */
} audit_recovery;

typedef enum {
	AUDIT_LOG_OK = 0,
	AUDIT_LOG_FULL,          /* the batch is full: sync first; nothing changed */
	AUDIT_LOG_REFUSED,       /* the entry is invalid (err says why); nothing changed */
	AUDIT_LOG_BROKEN,        /* an earlier I/O failure: free and reopen */
} audit_append_result;

typedef struct audit_retain_report {
	unsigned segments_removed;
	uint64_t bytes_removed;
	uint64_t first_index;                /* first record still present */
	unsigned checkpoints_removed;        /* over removed records (the newest always stays) */
} audit_retain_report;

/* RAM mode (amnesia: o->dir NULL): records live in one bounded ring; when a
 * sync would pass ram_bytes the oldest records leave it, their leaves folded
 * into the tree state that stands in for them (as a segment header's frontier
 * does after retention), so every record still held can be proven and every
 * checkpoint covers the whole log. audit_log_retain only reports there.
 *
 * Open (creating) the log in o->dir. NULL with err (naming file and offset
 * when a segment is corrupt). *rec may be NULL. */
audit_log *audit_log_open(const audit_log_opts *o, audit_recovery *rec, char *err, size_t errlen);
/* Close; pending (unsynced) records are dropped, never acknowledged. NULL ok. */
void audit_log_free(audit_log *l);

/* Chain e into the batch; *seq and *index (either may be NULL) say where it
 * will be. */
__attribute__((warn_unused_result))
audit_append_result audit_log_append(audit_log *l, const audit_entry *e, uint64_t *seq,
                                     uint64_t *index, char *err, size_t errlen);
/* Records waiting for audit_log_sync. */
unsigned audit_log_pending(const audit_log *l);
/* Write and fsync the batch. 0, or -1 with err (the log is then broken). */
__attribute__((warn_unused_result))
int audit_log_sync(audit_log *l, char *err, size_t errlen);
/* Acknowledged records (index of the next one after the batch). */
uint64_t audit_log_size(const audit_log *l);
/* First record still present (retention). */
uint64_t audit_log_first_index(const audit_log *l);

/* Sync, then sign and store a checkpoint over all records (*out may be NULL).
 * 0, or -1 with err. */
__attribute__((warn_unused_result))
int audit_log_checkpoint(audit_log *l, uint64_t now_ms, audit_checkpoint *out, char *err,
                         size_t errlen);
/* The newest checkpoint, or NULL when none was made. Borrowed. */
const audit_checkpoint *audit_log_last_checkpoint(const audit_log *l);

/* Remove the oldest segments (never the one being written) while the log is
 * larger than max_bytes or a segment was last written more than max_age_ms
 * before now_ms (0 = no limit), then fsync the directory; then rewrite
 * checkpoints.log without the checkpoints over removed records (their roots
 * can no longer be recomputed), keeping the newest one whatever it covers.
 * 0, or -1 with err. */
__attribute__((warn_unused_result))
int audit_log_retain(audit_log *l, uint64_t now_ms, uint64_t max_age_ms, uint64_t max_bytes,
                     audit_retain_report *rep, char *err, size_t errlen);

/* The global index of stream's record seq (reads the segments). 0, or -1
 * with err (not found, pruned). */
__attribute__((warn_unused_result))
int audit_log_find(audit_log *l, const char *stream, uint64_t seq, uint64_t *index,
                   char *err, size_t errlen);
/* stream's record seq: its index and its stored bytes (NUL-terminated) into
 * rec[0..cap) (rec may be NULL). As audit_log_find. */
__attribute__((warn_unused_result))
int audit_log_get(audit_log *l, const char *stream, uint64_t seq, uint64_t *index, char *rec,
                  size_t cap, size_t *len, char *err, size_t errlen);

/* The newest records, newest first (audit_log_recent). */
typedef struct audit_recent_rec {
	uint64_t index;                      /* global index */
	size_t   len;
	char    *text;                       /* stored bytes, NUL-terminated (malloc'd) */
} audit_recent_rec;

/* Up to max (1..AUDIT_RECENT_MAX) of the newest acknowledged records — of
 * stream only when stream is non-NULL and non-empty — newest first into
 * out[0..*count). Reads the segments newest first (the RAM ring in RAM
 * mode) and stops at the first segment that completes the count: usually
 * only the segment being written; a rare stream may read them all, like a
 * proof. Reads into one buffer of max * AUDIT_RECORD_MAX bytes. Blocking
 * I/O: run it on a reader copy off the loop. Free out with
 * audit_recent_free. 0, or -1 with err (nothing in out). */
__attribute__((warn_unused_result))
int audit_log_recent(audit_log *l, const char *stream, unsigned max, audit_recent_rec *out,
                     unsigned *count, char *err, size_t errlen);
void audit_recent_free(audit_recent_rec *out, unsigned count);

/* A read-only copy of l as acknowledged now (caller frees with
 * audit_log_free), for audit_log_get/find/prove on another thread while l
 * goes on writing: it shares nothing with l (a RAM log's records are
 * copied). Files removed by a later retention make its reads fail. NULL on
 * allocation failure. */
audit_log *audit_log_reader(const audit_log *l);

/* The inclusion proof of record index in the tree of the first size records
 * (size <= audit_log_size; usually the last checkpoint's), and the leaf's
 * hash. Reads the segments once from the first one present, whose header
 * frontier stands in for records retention removed; index itself must still
 * be present. 0, or -1 with err. */
__attribute__((warn_unused_result))
int audit_log_prove(audit_log *l, uint64_t index, uint64_t size, audit_proof *p,
                    uint8_t leaf[B3_OUT_LEN], char *err, size_t errlen);

#endif
