/*
 * audit_log.c — appending, syncing, rotating, checkpoints and retention
 * (see audit_log.h). Recovery on open is audit_log_open.c; find and prove
 * are audit_log_read.c.
 */
#include "core/audit/audit_log_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"

int audit_log_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int audit_log_path(const audit_log *l, const char *name, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s/%s", l->dir, name);

	return n > 0 && (size_t)n < outlen ? 0 : -1;
}

int audit_log_new_segment(audit_log *l, const audit_state *s, char *err, size_t errlen)
{
	char name[AUDIT_SEG_NAME_LEN + 1], path[AUDIT_PATH_MAX];
	char *hdr = malloc(AUDIT_HEADER_MAX + 1);
	size_t n = 0;
	int fd;

	if (!hdr)
		return audit_log_fail(err, errlen, "out of memory");
	audit_segment_name(s->tree.size, name);
	if (audit_log_path(l, name, path, sizeof path) != 0 ||
	    audit_header_encode(s, hdr, AUDIT_HEADER_MAX, &n) != 0) {
		free(hdr);
		return audit_log_fail(err, errlen, "%s: header does not fit", name);
	}
	hdr[n++] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0 || util_write_all(fd, hdr, n) != 0 || fsync(fd) != 0 ||
	    audit_fsync_dir(l->dir) != 0) {
		int e = errno;
		free(hdr);
		if (fd >= 0)
			close(fd);
		return audit_log_fail(err, errlen, "%s: cannot create: %s", path, strerror(e));
	}
	free(hdr);
	if (l->fd >= 0)
		close(l->fd);
	l->fd = fd;
	l->seg_first = s->tree.size;
	l->seg_bytes = n;
	return 0;
}

void audit_log_free(audit_log *l)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd);
	if (l->ckfd >= 0)
		close(l->ckfd);
	audit_ram_free(l->ram);
	free(l->batch);
	free(l);
}

audit_append_result audit_log_append(audit_log *l, const audit_entry *e, uint64_t *seq,
                                     uint64_t *index, char *err, size_t errlen)
{
	const audit_head *h;
	audit_record r;
	size_t n = 0, room;

	if (l->broken) {
		audit_log_fail(err, errlen, "the log failed a write: reopen it");
		return AUDIT_LOG_BROKEN;
	}
	room = AUDIT_BATCH_MAX_BYTES - l->batch_len;
	if (l->batch_n >= l->batch_max || (l->batch_n > 0 && room <= AUDIT_RECORD_MAX)) {
		audit_log_fail(err, errlen, "batch full");
		return AUDIT_LOG_FULL;
	}
	if (!e->stream) {
		audit_log_fail(err, errlen, "no stream");
		return AUDIT_LOG_REFUSED;
	}
	memset(&r, 0, sizeof r);
	h = audit_state_head(&l->st, e->stream);
	r.seq = h ? h->next_seq : 0;
	if (!h && l->st.nstreams >= AUDIT_MAX_STREAMS) {
		audit_log_fail(err, errlen, "more than %u streams", AUDIT_MAX_STREAMS);
		return AUDIT_LOG_REFUSED;
	}
	if (audit_record_encode(e, r.seq, h ? h->prev : NULL, l->batch + l->batch_len, room - 1, &n,
	                        r.self_hash, err, errlen) != 0)
		return AUDIT_LOG_REFUSED;
	snprintf(r.stream, sizeof r.stream, "%s", e->stream);
	r.genesis = h == NULL;
	if (h)
		memcpy(r.prev, h->prev, B3_OUT_LEN);
	if (audit_state_apply(&l->st, &r, l->batch + l->batch_len, n, err, errlen) != 0)
		return AUDIT_LOG_REFUSED;
	l->batch[l->batch_len + n] = '\n';
	l->batch_len += n + 1;
	l->batch_n++;
	if (seq)
		*seq = r.seq;
	if (index)
		*index = l->st.tree.size - 1;
	return AUDIT_LOG_OK;
}

unsigned audit_log_pending(const audit_log *l)
{
	return l->batch_n;
}

int audit_log_sync(audit_log *l, char *err, size_t errlen)
{
	if (l->broken)
		return audit_log_fail(err, errlen, "the log failed a write: reopen it");
	if (l->batch_n == 0)
		return 0;
	if (l->ram) {
		audit_ram_put(l, l->batch, l->batch_len);
		goto synced;
	}
	/* Rotate at a record boundary: the new header is the state on disk. */
	if (l->seg_bytes + l->batch_len > l->segment_max && l->synced.tree.size > l->seg_first &&
	    audit_log_new_segment(l, &l->synced, err, errlen) != 0) {
		l->broken = true;
		return -1;
	}
	if (util_write_all(l->fd, l->batch, l->batch_len) != 0 || fdatasync(l->fd) != 0) {
		l->broken = true;
		return audit_log_fail(err, errlen, "%s: segment write/fsync failed: %s", l->dir,
		                      strerror(errno));
	}
	l->seg_bytes += l->batch_len;
synced:
	l->batch_len = 0;
	l->batch_n = 0;
	l->synced = l->st;
	return 0;
}

uint64_t audit_log_size(const audit_log *l)
{
	return l->synced.tree.size;
}

uint64_t audit_log_first_index(const audit_log *l)
{
	return l->first_index;
}

int audit_log_checkpoint(audit_log *l, uint64_t now_ms, audit_checkpoint *out, char *err,
                         size_t errlen)
{
	audit_checkpoint c;
	char line[AUDIT_CKPT_MAX + 1];
	size_t n = 0;

	if (audit_log_sync(l, err, errlen) != 0)
		return -1;
	if (!l->id)
		return audit_log_fail(err, errlen, "no identity to sign checkpoints with");
	memset(&c, 0, sizeof c);
	c.size = l->synced.tree.size;
	c.time_ms = now_ms;
	if (l->have_ckpt && c.time_ms < l->last_ckpt.time_ms)
		c.time_ms = l->last_ckpt.time_ms;   /* the clock stepped back: never sign a past */
	audit_merkle_root(&l->synced.tree, c.root);
	if (audit_checkpoint_sign(&c, l->id) != 0 ||
	    audit_checkpoint_encode(&c, line, AUDIT_CKPT_MAX, &n) != 0)
		return audit_log_fail(err, errlen, "cannot sign the checkpoint");
	line[n++] = '\n';
	if (!l->ram && (util_write_all(l->ckfd, line, n) != 0 || fdatasync(l->ckfd) != 0)) {
		l->broken = true;
		return audit_log_fail(err, errlen, "%s/%s: write/fsync failed: %s", l->dir,
		                      AUDIT_CKPT_FILE, strerror(errno));
	}
	l->last_ckpt = c;
	l->have_ckpt = true;
	if (out)
		*out = c;
	return 0;
}

const audit_checkpoint *audit_log_last_checkpoint(const audit_log *l)
{
	return l->have_ckpt ? &l->last_ckpt : NULL;
}

/* Should the oldest remaining segment go? */
static bool retain_drop(const struct stat *st, uint64_t total, uint64_t now_ms,
                        uint64_t max_age_ms, uint64_t max_bytes)
{
	uint64_t mtime_ms = (uint64_t)st->st_mtim.tv_sec * 1000u +
	                    (uint64_t)st->st_mtim.tv_nsec / 1000000u;

	if (max_bytes && total > max_bytes)
		return true;
	return max_age_ms && now_ms > mtime_ms && now_ms - mtime_ms > max_age_ms;
}

/* Copy the checkpoints still over present records (and always the newest)
 * from in to out. 0/-1. */
static int retain_copy(audit_log *l, int in, int out, audit_retain_report *rep)
{
	audit_lines *lr = malloc(sizeof *lr);
	const char *line;
	size_t n;
	uint64_t off;
	audit_checkpoint c;
	int r = 0;

	if (!lr)
		return -1;
	audit_lines_init(lr, in);
	while (r == 0 && audit_lines_next(lr, &line, &n, &off) == AUDIT_LINE_OK) {
		if (audit_checkpoint_parse(line, n, &c, NULL, 0) != 0)
			r = -1;
		else if (c.size < l->first_index && !(l->have_ckpt && c.size == l->last_ckpt.size))
			rep->checkpoints_removed++;
		else if (util_write_all(out, line, n) != 0 || util_write_all(out, "\n", 1) != 0)
			r = -1;
	}
	free(lr);
	return r;
}

/* checkpoints.log without the checkpoints over removed records, which can
 * no longer be checked against anything: crash-safe rewrite (temp file,
 * fsync, rename, directory fsync), then appends go to the new file. */
static int retain_checkpoints(audit_log *l, audit_retain_report *rep, char *err, size_t errlen)
{
	char path[AUDIT_PATH_MAX], tmp[AUDIT_PATH_MAX];
	int in, out, r;

	if (audit_log_path(l, AUDIT_CKPT_FILE, path, sizeof path) != 0 ||
	    util_tmp_name(path, tmp, sizeof tmp) != 0)
		return audit_log_fail(err, errlen, "%s: path too long", l->dir);
	in = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	r = in >= 0 && out >= 0 ? retain_copy(l, in, out, rep) : -1;
	if (r == 0 && fsync(out) != 0)
		r = -1;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (r == 0 && rep->checkpoints_removed == 0) {
		unlink(tmp);
		return 0;
	}
	if (r != 0 || rename(tmp, path) != 0 || audit_fsync_dir(l->dir) != 0) {
		unlink(tmp);
		return audit_log_fail(err, errlen, "%s: cannot rewrite: %s", path, strerror(errno));
	}
	close(l->ckfd);
	l->ckfd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (l->ckfd < 0) {
		l->broken = true;
		return audit_log_fail(err, errlen, "%s: cannot reopen: %s", path, strerror(errno));
	}
	return 0;
}

int audit_log_retain(audit_log *l, uint64_t now_ms, uint64_t max_age_ms, uint64_t max_bytes,
                     audit_retain_report *rep, char *err, size_t errlen)
{
	char name[AUDIT_SEG_NAME_LEN + 1], path[AUDIT_PATH_MAX];
	uint64_t *firsts = NULL, total = 0;
	size_t n = 0, i;
	struct stat st;

	memset(rep, 0, sizeof *rep);
	rep->first_index = l->first_index;
	if (l->ram)
		return 0;   /* the ring is its own bound */
	if (audit_segment_list(l->dir, &firsts, &n, err, errlen) != 0)
		return -1;
	for (i = 0; i < n; i++) {
		audit_segment_name(firsts[i], name);
		if (audit_log_path(l, name, path, sizeof path) == 0 && stat(path, &st) == 0)
			total += (uint64_t)st.st_size;
	}
	for (i = 0; i + 1 < n && firsts[i] < l->seg_first; i++) {
		audit_segment_name(firsts[i], name);
		if (audit_log_path(l, name, path, sizeof path) != 0 || stat(path, &st) != 0 ||
		    !retain_drop(&st, total, now_ms, max_age_ms, max_bytes))
			break;
		if (unlink(path) != 0) {
			free(firsts);
			return audit_log_fail(err, errlen, "%s: %s", path, strerror(errno));
		}
		total -= (uint64_t)st.st_size;
		rep->segments_removed++;
		rep->bytes_removed += (uint64_t)st.st_size;
	}
	l->first_index = i < n ? firsts[i] : l->seg_first;
	rep->first_index = l->first_index;
	free(firsts);
	if (rep->segments_removed && audit_fsync_dir(l->dir) != 0)
		return audit_log_fail(err, errlen, "%s: directory fsync failed", l->dir);
	return rep->segments_removed ? retain_checkpoints(l, rep, err, errlen) : 0;
}
