/*
 * audit_log_read.c — reading the log back: a record's index by stream and
 * seq, and inclusion proofs (see audit_log.h). Both stream the segments
 * once with one line buffer; nothing grows with the log.
 */
#include "core/audit/audit_log_int.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct seg_iter {
	audit_log   *l;
	uint64_t    *firsts;
	size_t       n, i;
	int          fd;
	bool         in_records;     /* past the current segment's header */
	uint64_t     index;          /* of the next record */
	audit_lines *lr;
	size_t       roff;           /* RAM mode: offset of the next line in the ring */
} seg_iter;

static int iter_open(seg_iter *it, audit_log *l, char *err, size_t errlen)
{
	memset(it, 0, sizeof *it);
	it->l = l;
	it->fd = -1;
	if (l->ram) {
		it->roff = l->ram->start;
		it->index = l->first_index;
		return 0;
	}
	it->lr = malloc(sizeof *it->lr);
	if (!it->lr)
		return audit_log_fail(err, errlen, "out of memory");
	if (audit_segment_list(l->dir, &it->firsts, &it->n, err, errlen) != 0) {
		free(it->lr);
		return -1;
	}
	it->index = it->n ? it->firsts[0] : 0;
	return 0;
}

static void iter_close(seg_iter *it)
{
	if (it->fd >= 0)
		close(it->fd);
	free(it->firsts);
	free(it->lr);
}

/* The next record: 0 with line/len/index, 1 at the end, -1 with err. */
static int iter_next(seg_iter *it, const char **line, size_t *len, char *err, size_t errlen)
{
	char name[AUDIT_SEG_NAME_LEN + 1], path[AUDIT_PATH_MAX];
	uint64_t off;
	const audit_ram *r = it->l->ram;

	if (r) {
		const char *p = r->buf + it->roff, *nl;

		if (it->roff >= r->end || !(nl = memchr(p, '\n', r->end - it->roff)))
			return 1;
		*line = p;
		*len = (size_t)(nl - p);
		it->roff += *len + 1;
		return 0;
	}
	for (;;) {
		if (it->fd < 0) {
			if (it->i >= it->n)
				return 1;
			audit_segment_name(it->firsts[it->i++], name);
			if (audit_log_path(it->l, name, path, sizeof path) != 0 ||
			    (it->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
				return audit_log_fail(err, errlen, "%s: cannot open", name);
			audit_lines_init(it->lr, it->fd);
			it->in_records = false;
		}
		if (audit_lines_next(it->lr, line, len, &off) != AUDIT_LINE_OK) {
			close(it->fd);            /* EOF (a torn tail was cut at open) */
			it->fd = -1;
			continue;
		}
		if (!it->in_records) {
			it->in_records = true;    /* the header */
			continue;
		}
		return 0;
	}
}

int audit_log_get(audit_log *l, const char *stream, uint64_t seq, uint64_t *index, char *rec,
                  size_t cap, size_t *len, char *err, size_t errlen)
{
	const audit_head *h = audit_state_head(&l->synced, stream);
	seg_iter it;
	const char *line = NULL;
	size_t n = 0;
	audit_record r;
	int rc;

	if (!h || seq >= h->next_seq)
		return audit_log_fail(err, errlen, "stream %s has no acknowledged seq %" PRIu64,
		                      stream, seq);
	if (iter_open(&it, l, err, errlen) != 0)
		return -1;
	while ((rc = iter_next(&it, &line, &n, err, errlen)) == 0 && it.index < l->synced.tree.size) {
		if (audit_record_parse(line, n, &r, NULL, 0) == 0 && r.seq == seq &&
		    strcmp(r.stream, stream) == 0) {
			*index = it.index;
			rc = 0;
			if (rec && n >= cap)
				rc = audit_log_fail(err, errlen, "record larger than the buffer");
			else if (rec) {
				memcpy(rec, line, n);
				rec[n] = '\0';
			}
			if (len)
				*len = n;
			iter_close(&it);
			return rc;
		}
		it.index++;
	}
	iter_close(&it);
	return rc < 0 ? -1 : audit_log_fail(err, errlen, "stream %s seq %" PRIu64 " is no longer "
	                                    "in the log (retention)", stream, seq);
}

int audit_log_find(audit_log *l, const char *stream, uint64_t seq, uint64_t *index,
                   char *err, size_t errlen)
{
	return audit_log_get(l, stream, seq, index, NULL, 0, NULL, err, errlen);
}

audit_log *audit_log_reader(const audit_log *l)
{
	audit_log *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	memcpy(c->dir, l->dir, sizeof c->dir);
	c->segment_max = l->segment_max;
	c->fd = c->ckfd = -1;
	c->broken = true;              /* never written through */
	c->first_index = l->first_index;
	c->seg_first = l->seg_first;
	c->st = l->synced;
	c->synced = l->synced;
	c->have_ckpt = l->have_ckpt;
	c->last_ckpt = l->last_ckpt;
	if (l->ram && !(c->ram = audit_ram_copy(l->ram))) {
		free(c);
		return NULL;
	}
	return c;
}

static int prove_leaf(void *ctx, uint64_t i, uint8_t leaf[B3_OUT_LEN])
{
	seg_iter *it = ctx;
	const char *line = NULL;
	size_t n = 0;

	if (i < it->index || iter_next(it, &line, &n, NULL, 0) != 0 || !line)
		return -1;                 /* a leaf below the first present record: pruned */
	it->index++;
	audit_merkle_leaf(line, n, leaf);
	return 0;
}

/* Open the first segment and read its header (the state before its first
 * record: what retention left); iter_next goes on with its records. */
static int iter_base(seg_iter *it, audit_state *base, char *err, size_t errlen)
{
	char name[AUDIT_SEG_NAME_LEN + 1], path[AUDIT_PATH_MAX];
	const char *line = NULL;
	size_t n = 0;
	uint64_t off;

	if (it->n == 0)
		return audit_log_fail(err, errlen, "no segment");
	audit_segment_name(it->firsts[0], name);
	if (audit_log_path(it->l, name, path, sizeof path) != 0 ||
	    (it->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return audit_log_fail(err, errlen, "%s: cannot open", name);
	it->i = 1;
	audit_lines_init(it->lr, it->fd);
	if (audit_lines_next(it->lr, &line, &n, &off) != AUDIT_LINE_OK || !line ||
	    audit_header_parse(line, n, base, err, errlen) != 0)
		return audit_log_fail(err, errlen, "%s: header unreadable", name);
	it->in_records = true;
	return 0;
}

int audit_log_prove(audit_log *l, uint64_t index, uint64_t size, audit_proof *p,
                    uint8_t leaf[B3_OUT_LEN], char *err, size_t errlen)
{
	audit_state *base = calloc(1, sizeof *base);
	seg_iter it;
	int rc = 0;

	if (!base)
		return audit_log_fail(err, errlen, "out of memory");
	if (size > l->synced.tree.size || index >= size || index < l->first_index) {
		free(base);
		return audit_log_fail(err, errlen, "record %" PRIu64 " is not in a tree of %" PRIu64
		                      " acknowledged records starting at %" PRIu64 " (retention)",
		                      index, size, l->first_index);
	}
	if (iter_open(&it, l, err, errlen) != 0) {
		free(base);
		return -1;
	}
	if (l->ram)
		base->tree = l->ram->base;
	else
		rc = iter_base(&it, base, err, errlen);
	if (rc == 0 && base->tree.size != it.index)
		rc = audit_log_fail(err, errlen, "first segment header does not fit its name");
	if (rc == 0 && audit_merkle_prove(&base->tree, index, size, prove_leaf, &it, p, leaf) != 0)
		rc = audit_log_fail(err, errlen, "cannot read the records of the proof");
	iter_close(&it);
	free(base);
	return rc;
}

/* ---- the newest records ------------------------------------------------------ */

void audit_recent_free(audit_recent_rec *out, unsigned count)
{
	for (unsigned i = 0; out && i < count; i++) {
		free(out[i].text);
		out[i].text = NULL;
	}
}

/* Read one stretch of records [it->index, end) and keep the last `need`
 * matching ones in ring (slots whose text points into one buffer of
 * AUDIT_RECENT_MAX * (AUDIT_RECORD_MAX + 1) bytes). *seen counts the
 * matches. 0, or -1 with err. */
static int recent_scan(seg_iter *it, uint64_t end, const char *stream, audit_recent_rec *ring,
                       unsigned need, uint64_t *seen, char *err, size_t errlen)
{
	const char *line = NULL;
	size_t n = 0;
	audit_record r;
	int rc = 0;

	*seen = 0;
	while (it->index < end && (rc = iter_next(it, &line, &n, err, errlen)) == 0) {
		uint64_t idx = it->index++;
		audit_recent_rec *slot;

		if (!line || n > AUDIT_RECORD_MAX)
			continue;              /* not a record (open refuses such a log) */
		if (stream && (audit_record_parse(line, n, &r, NULL, 0) != 0 ||
		               strcmp(r.stream, stream) != 0))
			continue;
		slot = &ring[*seen % need];
		memcpy(slot->text, line, n);
		slot->text[n] = '\0';
		slot->len = n;
		slot->index = idx;
		(*seen)++;
	}
	return rc < 0 ? -1 : 0;
}

/* Copy the ring's matches into out, newest first, up to max in all. 0, or
 * -1 with err. */
static int recent_take(const audit_recent_rec *ring, unsigned need, uint64_t seen,
                       audit_recent_rec *out, unsigned *count, unsigned max, char *err,
                       size_t errlen)
{
	unsigned have = seen < need ? (unsigned)seen : need;

	for (unsigned j = 0; j < have && *count < max; j++) {
		const audit_recent_rec *src = &ring[(seen - 1 - j) % need];
		char *t = malloc(src->len + 1);

		if (!t)
			return audit_log_fail(err, errlen, "out of memory");
		memcpy(t, src->text, src->len + 1);
		out[*count] = *src;
		out[(*count)++].text = t;
	}
	return 0;
}

int audit_log_recent(audit_log *l, const char *stream, unsigned max, audit_recent_rec *out,
                     unsigned *count, char *err, size_t errlen)
{
	audit_recent_rec ring[AUDIT_RECENT_MAX];
	uint64_t end = l->synced.tree.size, seen = 0;
	char *buf;
	seg_iter it;
	int rc = 0;

	*count = 0;
	if (max == 0 || max > AUDIT_RECENT_MAX)
		return audit_log_fail(err, errlen, "asked for %u records (1..%u)", max,
		                      AUDIT_RECENT_MAX);
	if (stream && !stream[0])
		stream = NULL;
	memset(ring, 0, sizeof ring);
	if (!(buf = malloc((size_t)max * (AUDIT_RECORD_MAX + 1))))
		return audit_log_fail(err, errlen, "out of memory");
	for (unsigned j = 0; j < max; j++)
		ring[j].text = buf + (size_t)j * (AUDIT_RECORD_MAX + 1);
	if (iter_open(&it, l, err, errlen) != 0) {
		free(buf);
		return -1;
	}
	if (l->ram) {
		rc = recent_scan(&it, end, stream, ring, max, &seen, err, errlen);
		if (rc == 0)
			rc = recent_take(ring, max, seen, out, count, max, err, errlen);
	} else {
		size_t nseg = it.n;
		/* Newest segment first; each read alone (it.n cut to it) and only
		 * up to the records acknowledged when l was copied. */
		for (size_t k = nseg; rc == 0 && k-- > 0 && *count < max;) {
			unsigned need = max - *count;
			uint64_t seg_end = k + 1 < nseg && it.firsts[k + 1] < end ? it.firsts[k + 1] : end;

			if (it.fd >= 0)
				close(it.fd);
			it.fd = -1;
			it.i = k;
			it.n = k + 1;
			it.index = it.firsts[k];
			rc = recent_scan(&it, seg_end, stream, ring, need, &seen, err, errlen);
			if (rc == 0)
				rc = recent_take(ring, need, seen, out, count, max, err, errlen);
		}
		it.n = nseg;
	}
	free(buf);
	iter_close(&it);
	if (rc != 0) {
		audit_recent_free(out, *count);
		*count = 0;
		return -1;
	}
	return 0;
}
