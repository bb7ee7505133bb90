/*
 * audit_log_int.h — the audit_log struct, shared by audit_log.c (writing),
 * audit_log_open.c (recovery) and audit_log_read.c (find, prove). Not for
 * other modules.
 */
#ifndef MN_CORE_AUDIT_LOG_INT_H
#define MN_CORE_AUDIT_LOG_INT_H

#include "core/audit/audit_log.h"

#define AUDIT_PATH_MAX 4096u

/* RAM mode's records: stored lines ("...\n") at buf[start..end). */
typedef struct audit_ram {
	char        *buf;
	size_t       cap, start, end;
	audit_merkle base;                     /* tree of the records that left the ring */
} audit_ram;

struct audit_log {
	audit_ram           *ram;             /* RAM mode, else NULL */
	char                 dir[AUDIT_PATH_MAX];
	uint64_t             segment_max;
	const node_identity *id;              /* borrowed */
	bool                 broken;
	/* the segment being written */
	int                  fd;
	uint64_t             seg_first;
	uint64_t             seg_bytes;
	uint64_t             first_index;     /* of the oldest segment */
	/* chain state: with the pending batch (st) and as on disk (synced) */
	audit_state          st;
	audit_state          synced;
	/* the batch */
	char                *batch;           /* AUDIT_BATCH_MAX_BYTES */
	size_t               batch_len;
	unsigned             batch_n;
	unsigned             batch_max;       /* records per sync (audit_log_opts) */
	/* checkpoints */
	int                  ckfd;
	bool                 have_ckpt;
	audit_checkpoint     last_ckpt;
};

__attribute__((format(printf, 3, 4)))
int audit_log_fail(char *err, size_t errlen, const char *fmt, ...);
/* "<dir>/<name>" into out. 0, or -1 when it does not fit. */
int audit_log_path(const audit_log *l, const char *name, char *out, size_t outlen);
/* Create segment seg-<first>.log holding the header of s, fsync it and the
 * directory; l->fd then writes to it. 0, or -1 with err. */
int audit_log_new_segment(audit_log *l, const audit_state *s, char *err, size_t errlen);

/* Records per sync of o (batch_records, bounded; 0: the default). */
static inline unsigned audit_batch_max(const audit_log_opts *o)
{
	return o->batch_records && o->batch_records < AUDIT_BATCH_MAX_RECORDS ?
	       o->batch_records : AUDIT_BATCH_MAX_RECORDS;
}

/* RAM mode (audit_log_ram.c): take the synced batch into the ring, evicting
 * the oldest records; copy a ring; free one. */
void audit_ram_put(audit_log *l, const char *batch, size_t len);
audit_ram *audit_ram_copy(const audit_ram *r);
void audit_ram_free(audit_ram *r);
audit_log *audit_ram_open(const audit_log_opts *o, char *err, size_t errlen);

#endif
