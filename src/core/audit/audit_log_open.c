/*
 * audit_log_open.c — opening the log is recovering it (see audit_log.h).
 *
 * Every segment is read and judged with the verifier's rules (header
 * continuity, strict parse, self_hash, chain, tree), so the writer resumes
 * from a state it has checked, never from one it was told. The one repair
 * made without asking is the only damage a crash can do to an append-only
 * file: bytes after the last newline of the LAST segment (or of
 * checkpoints.log) are a write that never completed — never acknowledged,
 * since acknowledgement follows the fsync — and are cut off and reported.
 * A last segment without a complete header line is a rotation the crash
 * interrupted: it is removed and made again. Anything else is an error
 * naming the file and the offset: the operator decides (docs/audit.md
 * "Recovery").
 */
#include "core/audit/audit_log_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"

/* node.pub: written once; a log never changes hands between identities. */
static int open_pubkey(audit_log *l, char *err, size_t errlen)
{
	char path[AUDIT_PATH_MAX], hex[2 * IDENTITY_PK_LEN + 2];
	uint8_t pk[IDENTITY_PK_LEN];

	if (!l->id)
		return 0;
	if (audit_log_path(l, AUDIT_PUBKEY_FILE, path, sizeof path) != 0)
		return audit_log_fail(err, errlen, "%s: path too long", l->dir);
	if (access(path, F_OK) == 0) {
		if (audit_pubkey_load(path, pk, err, errlen) != 0)
			return -1;
		if (memcmp(pk, l->id->pk, IDENTITY_PK_LEN) != 0)
			return audit_log_fail(err, errlen, "%s holds another node's key: this log was "
			                      "written by another identity", path);
		return 0;
	}
	util_hex_encode(l->id->pk, IDENTITY_PK_LEN, hex);
	hex[2 * IDENTITY_PK_LEN] = '\n';
	if (util_write_atomic(path, hex, 2 * IDENTITY_PK_LEN + 1, 0644, 0) != UTIL_WRITE_OK)
		return audit_log_fail(err, errlen, "%s: cannot write: %s", path, strerror(errno));
	return 0;
}

/* The header of one segment; 1 when it is a half-made last segment (removed). */
static int scan_header(audit_log *l, const char *name, const char *path, uint64_t first,
                       bool is_first, bool is_last, audit_lines *lr, char *err, size_t errlen)
{
	const char *line;
	size_t n;
	uint64_t off;
	audit_state h;
	audit_line_status s = audit_lines_next(lr, &line, &n, &off);

	if (s == AUDIT_LINE_EOF || s == AUDIT_LINE_TORN) {
		if (!is_last || (is_first && first != 0))
			return audit_log_fail(err, errlen, "%s offset 0: no complete header line", path);
		if (unlink(path) != 0 || audit_fsync_dir(l->dir) != 0)
			return audit_log_fail(err, errlen, "%s: cannot remove: %s", path, strerror(errno));
		return 1;
	}
	if (s != AUDIT_LINE_OK)
		return audit_log_fail(err, errlen, "%s offset 0: unreadable header", path);
	if (audit_header_parse(line, n, &h, err, errlen) != 0) {
		char why[AUDIT_ERR_MAX];
		snprintf(why, sizeof why, "%s", err ? err : "");
		return audit_log_fail(err, errlen, "%s offset 0: segment header: %s", path, why);
	}
	if (h.tree.size != first || (!is_first && !audit_state_equal(&h, &l->st)))
		return audit_log_fail(err, errlen, "%s offset 0: header does not continue the "
		                      "previous segment (records or a segment missing)", name);
	if (is_first) {
		l->st = h;
		l->first_index = first;
	}
	return 0;
}

static int scan_torn(audit_log *l, int fd, const char *path, const char *name, uint64_t off,
                     size_t n, bool is_last, audit_recovery *rec, char *err, size_t errlen)
{
	(void)l;
	if (!is_last)
		return audit_log_fail(err, errlen, "%s offset %" PRIu64 ": torn record in a segment "
		                      "that is not the last", path, off);
	if (ftruncate(fd, (off_t)off) != 0 || fsync(fd) != 0)
		return audit_log_fail(err, errlen, "%s: cannot truncate: %s", path, strerror(errno));
	rec->torn_bytes = n;
	rec->torn_offset = off;
	snprintf(rec->torn_file, sizeof rec->torn_file, "%s", name);
	return 0;
}

static int scan_segment(audit_log *l, uint64_t first, bool is_first, bool is_last,
                        audit_recovery *rec, audit_lines *lr, char *err, size_t errlen)
{
	char name[AUDIT_SEG_NAME_LEN + 1], path[AUDIT_PATH_MAX], why[AUDIT_ERR_MAX];
	const char *line;
	size_t n;
	uint64_t off = 0;
	audit_line_status s;
	audit_record r;
	int fd, rc;

	audit_segment_name(first, name);
	if (audit_log_path(l, name, path, sizeof path) != 0)
		return audit_log_fail(err, errlen, "%s: path too long", l->dir);
	fd = open(path, (is_last ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return audit_log_fail(err, errlen, "%s: %s", path, strerror(errno));
	audit_lines_init(lr, fd);
	rc = scan_header(l, name, path, first, is_first, is_last, lr, err, errlen);
	while (rc == 0 && (s = audit_lines_next(lr, &line, &n, &off)) == AUDIT_LINE_OK) {
		if (audit_record_parse(line, n, &r, why, sizeof why) != 0 ||
		    audit_state_apply(&l->st, &r, line, n, why, sizeof why) != 0)
			rc = audit_log_fail(err, errlen, "%s offset %" PRIu64 ": record %" PRIu64
			                    ": %s", path, off, l->st.tree.size, why);
	}
	if (rc == 0 && s == AUDIT_LINE_TORN)
		rc = scan_torn(l, fd, path, name, off, n, is_last, rec, err, errlen);
	else if (rc == 0 && s != AUDIT_LINE_EOF)
		rc = audit_log_fail(err, errlen, "%s offset %" PRIu64 ": %s", path, off,
		                    s == AUDIT_LINE_TOO_LONG ? "line too long" : "read error");
	if (rc == 0 && is_last) {
		struct stat st;
		if (fstat(fd, &st) != 0 ||
		    (l->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW)) < 0) {
			close(fd);
			return audit_log_fail(err, errlen, "%s: %s", path, strerror(errno));
		}
		l->seg_first = first;
		l->seg_bytes = (uint64_t)st.st_size;
	}
	close(fd);
	return rc;
}

/* checkpoints.log: keep the newest, cut a torn tail. */
static int open_checkpoints(audit_log *l, audit_recovery *rec, audit_lines *lr, char *err,
                            size_t errlen)
{
	char path[AUDIT_PATH_MAX], why[AUDIT_ERR_MAX];
	const char *line;
	size_t n;
	uint64_t off = 0;
	audit_line_status s;

	if (audit_log_path(l, AUDIT_CKPT_FILE, path, sizeof path) != 0)
		return audit_log_fail(err, errlen, "%s: path too long", l->dir);
	bool existed = access(path, F_OK) == 0;
	l->ckfd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (l->ckfd < 0 || (!existed && audit_fsync_dir(l->dir) != 0))
		return audit_log_fail(err, errlen, "%s: %s", path, strerror(errno));
	audit_lines_init(lr, l->ckfd);
	while ((s = audit_lines_next(lr, &line, &n, &off)) == AUDIT_LINE_OK) {
		if (audit_checkpoint_parse(line, n, &l->last_ckpt, why, sizeof why) != 0)
			return audit_log_fail(err, errlen, "%s offset %" PRIu64 ": %s", path, off, why);
		l->have_ckpt = true;
	}
	if (s == AUDIT_LINE_TORN) {
		if (ftruncate(l->ckfd, (off_t)off) != 0 || fsync(l->ckfd) != 0)
			return audit_log_fail(err, errlen, "%s: cannot truncate: %s", path, strerror(errno));
		rec->ckpt_torn_bytes = n;
	} else if (s != AUDIT_LINE_EOF) {
		return audit_log_fail(err, errlen, "%s offset %" PRIu64 ": unreadable", path, off);
	}
	if (l->have_ckpt && l->last_ckpt.size > l->st.tree.size)
		return audit_log_fail(err, errlen, "%s: the last checkpoint covers %" PRIu64
		                      " records, the segments hold %" PRIu64 " (records lost)",
		                      path, l->last_ckpt.size, l->st.tree.size);
	return 0;
}

static int open_scan(audit_log *l, audit_recovery *rec, audit_lines *lr, char *err,
                     size_t errlen)
{
	uint64_t *firsts = NULL;
	size_t n = 0;
	int rc = 0;

	if (audit_segment_list(l->dir, &firsts, &n, err, errlen) != 0)
		return -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = scan_segment(l, firsts[i], i == 0, i + 1 == n, rec, lr, err, errlen);
		if (rc == 0)
			rec->segments++;
	}
	free(firsts);
	if (rc < 0)
		return -1;
	/* No segment yet, or a half-made last one removed (rc 1): start one. */
	if (l->fd < 0)
		return audit_log_new_segment(l, &l->st, err, errlen);
	return 0;
}

audit_log *audit_log_open(const audit_log_opts *o, audit_recovery *rec, char *err, size_t errlen)
{
	audit_recovery dummy;
	audit_lines *lr = malloc(sizeof *lr);
	audit_log *l = calloc(1, sizeof *l);

	if (!rec)
		rec = &dummy;
	memset(rec, 0, sizeof *rec);
	if (!o->dir) {
		free(lr);
		free(l);
		return audit_ram_open(o, err, errlen);
	}
	if (!l || !lr || !(l->batch = malloc(AUDIT_BATCH_MAX_BYTES))) {
		audit_log_fail(err, errlen, "out of memory");
		goto fail;
	}
	l->fd = l->ckfd = -1;
	l->id = o->id;
	l->segment_max = o->segment_max ? o->segment_max : AUDIT_SEGMENT_MAX_DEFAULT;
	l->batch_max = audit_batch_max(o);
	if (l->segment_max < AUDIT_SEGMENT_MAX_MIN) {
		audit_log_fail(err, errlen, "segment size below %u bytes", AUDIT_SEGMENT_MAX_MIN);
		goto fail;
	}
	if (snprintf(l->dir, sizeof l->dir, "%s", o->dir) >= (int)sizeof l->dir ||
	    util_ensure_dir(l->dir, 0700, err, errlen) != 0 ||
	    open_pubkey(l, err, errlen) != 0)
		goto fail;
	audit_state_init(&l->st);
	if (open_scan(l, rec, lr, err, errlen) != 0 || open_checkpoints(l, rec, lr, err, errlen) != 0)
		goto fail;
	l->synced = l->st;
	rec->records = l->st.tree.size;
	rec->first_index = l->first_index;
	free(lr);
	return l;
fail:
	free(lr);
	audit_log_free(l);
	return NULL;
}
