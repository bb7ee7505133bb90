/*
 * audit_log_ram.c — the log kept in memory (amnesia mode; see audit_log.h):
 * one ring of stored lines bounded by ram_bytes. The writer's batch, chain
 * state, tree, checkpoints and proofs are the same code as on disk; only
 * where synced records go differs. The records that leave the ring are
 * folded into `base`, the tree state before the oldest record held — what
 * the first segment header's frontier is on disk.
 */
#include "core/audit/audit_log_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

audit_log *audit_ram_open(const audit_log_opts *o, char *err, size_t errlen)
{
	audit_log *l = calloc(1, sizeof *l);

	if (o->ram_bytes < AUDIT_RAM_MIN) {
		free(l);
		audit_log_fail(err, errlen, "a RAM log needs at least %u bytes", AUDIT_RAM_MIN);
		return NULL;
	}
	if (!l || !(l->ram = calloc(1, sizeof *l->ram)) ||
	    !(l->ram->buf = malloc((size_t)o->ram_bytes)) ||
	    !(l->batch = malloc(AUDIT_BATCH_MAX_BYTES))) {
		audit_log_free(l);
		audit_log_fail(err, errlen, "out of memory");
		return NULL;
	}
	l->ram->cap = (size_t)o->ram_bytes;
	audit_merkle_init(&l->ram->base);
	l->fd = l->ckfd = -1;
	l->id = o->id;
	l->segment_max = AUDIT_SEGMENT_MAX_DEFAULT;
	l->batch_max = audit_batch_max(o);
	snprintf(l->dir, sizeof l->dir, "(memory)");
	audit_state_init(&l->st);
	l->synced = l->st;
	return l;
}

/* Drop the oldest record: its leaf joins the base tree. */
static void ram_evict(audit_log *l)
{
	audit_ram *r = l->ram;
	const char *p = r->buf + r->start;
	const char *nl = memchr(p, '\n', r->end - r->start);
	uint8_t leaf[B3_OUT_LEN];
	size_t n = nl ? (size_t)(nl - p) : r->end - r->start;

	audit_merkle_leaf(p, n, leaf);
	if (audit_merkle_push(&r->base, leaf) != 0)
		return;   /* 2^64 records: unreachable */
	r->start += n + 1;
	if (r->start >= r->end)
		r->start = r->end = 0;
	l->first_index++;
}

void audit_ram_put(audit_log *l, const char *batch, size_t len)
{
	audit_ram *r = l->ram;

	/* A batch is at most AUDIT_BATCH_MAX_BYTES, the ring at least twice that. */
	while (r->end > r->start && r->end - r->start + len > r->cap)
		ram_evict(l);
	if (r->end + len > r->cap) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	memcpy(r->buf + r->end, batch, len);
	r->end += len;
}

audit_ram *audit_ram_copy(const audit_ram *r)
{
	audit_ram *c = calloc(1, sizeof *c);
	size_t n = r->end - r->start;

	if (!c || !(c->buf = malloc(n ? n : 1))) {
		free(c);
		return NULL;
	}
	memcpy(c->buf, r->buf + r->start, n);
	c->cap = n;
	c->end = n;
	c->base = r->base;
	return c;
}

void audit_ram_free(audit_ram *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}
