/*
 * audit_verify.c — the offline verifier (see audit_verify.h).
 */
#include "core/audit/audit_verify.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/audit/audit_checkpoint.h"

typedef struct vctx {
	const char          *dir;
	uint8_t              pk[IDENTITY_PK_LEN];
	audit_verify_report *rep;
	audit_state          st;
	/* checkpoints.log, read alongside the records */
	int                  ckfd;
	audit_lines         *ckl;
	bool                 ck_have;          /* ck is the next one to settle */
	audit_checkpoint     ck;
	uint64_t             ck_off;
	bool                 ck_prev_have;
	audit_checkpoint     ck_prev;
	/* an outside checkpoint the log must reach (audit_verify_dir_against) */
	bool                 x_have;           /* not judged yet */
	audit_checkpoint     x;
} vctx;

__attribute__((format(printf, 4, 5)))
static int v_fail(audit_verify_report *rep, const char *file, uint64_t off, const char *fmt, ...)
{
	va_list ap;

	snprintf(rep->file, sizeof rep->file, "%s", file);
	rep->offset = off;
	va_start(ap, fmt);
	vsnprintf(rep->what, sizeof rep->what, fmt, ap);
	va_end(ap);
	return -1;
}

/* Read, parse and authenticate the next checkpoint (ck_have false at EOF). */
static int ck_next(vctx *v)
{
	char err[AUDIT_ERR_MAX];
	const char *line;
	size_t n;
	audit_line_status s;

	v->ck_have = false;
	if (v->ckfd < 0)
		return 0;
	s = audit_lines_next(v->ckl, &line, &n, &v->ck_off);
	if (s == AUDIT_LINE_EOF)
		return 0;
	if (s != AUDIT_LINE_OK)
		return v_fail(v->rep, AUDIT_CKPT_FILE, v->ck_off, "%s",
		              s == AUDIT_LINE_TORN ? "torn last checkpoint (no newline)"
		                                   : "unreadable or overlong checkpoint line");
	if (audit_checkpoint_parse(line, n, &v->ck, err, sizeof err) != 0)
		return v_fail(v->rep, AUDIT_CKPT_FILE, v->ck_off, "checkpoint: %s", err);
	if (audit_checkpoint_verify(&v->ck, v->pk, err, sizeof err) != 0)
		return v_fail(v->rep, AUDIT_CKPT_FILE, v->ck_off, "checkpoint of size %" PRIu64 ": %s",
		              v->ck.size, err);
	if (v->ck_prev_have && (v->ck.size < v->ck_prev.size || v->ck.time_ms < v->ck_prev.time_ms))
		return v_fail(v->rep, AUDIT_CKPT_FILE, v->ck_off,
		              "stale checkpoint: size %" PRIu64 " at %" PRIu64 " ms after one of size "
		              "%" PRIu64 " at %" PRIu64 " ms (checkpoints never go back)",
		              v->ck.size, v->ck.time_ms, v->ck_prev.size, v->ck_prev.time_ms);
	v->ck_prev = v->ck;
	v->ck_prev_have = true;
	v->ck_have = true;
	return 0;
}

/* The outside checkpoint, once the records reach its size. */
static int x_settle(vctx *v)
{
	uint8_t root[B3_OUT_LEN];

	if (!v->x_have || v->x.size > v->st.tree.size)
		return 0;
	v->x_have = false;
	if (v->x.size < v->st.tree.size)   /* only when the log starts past it */
		return v_fail(v->rep, AUDIT_VERIFY_XCKPT, 0, "the given checkpoint of size %" PRIu64
		              " covers records retention removed (the log starts at record %" PRIu64
		              "): it cannot be checked here", v->x.size, v->rep->first_index);
	audit_merkle_root(&v->st.tree, root);
	if (!b3_equal(root, v->x.root))
		return v_fail(v->rep, AUDIT_VERIFY_XCKPT, 0, "the given checkpoint of size %" PRIu64
		              ": its root does not match the first %" PRIu64 " records of this log "
		              "(records changed, reordered or replaced)", v->x.size, v->x.size);
	v->rep->given_checked = true;
	return 0;
}

/* Judge every checkpoint the records so far reach. */
static int ck_settle(vctx *v)
{
	uint8_t root[B3_OUT_LEN];

	if (x_settle(v) != 0)
		return -1;

	while (v->ck_have && v->ck.size <= v->st.tree.size) {
		if (v->ck.size == v->st.tree.size) {
			audit_merkle_root(&v->st.tree, root);
			if (!b3_equal(root, v->ck.root))
				return v_fail(v->rep, AUDIT_CKPT_FILE, v->ck_off,
				              "checkpoint of size %" PRIu64 ": its root does not match the "
				              "first %" PRIu64 " records (forged, or records changed)",
				              v->ck.size, v->ck.size);
			v->rep->checkpoints++;
			v->rep->last_ckpt_size = v->ck.size;
		} else if (v->ck.size < v->rep->first_index) {
			v->rep->checkpoints_pruned++;
		} else {
			return v_fail(v->rep, AUDIT_CKPT_FILE, v->ck_off, "checkpoint of size %" PRIu64
			              " out of order", v->ck.size);
		}
		if (ck_next(v) != 0)
			return -1;
	}
	return 0;
}

/* One record line at global index st.tree.size. */
static int v_record(vctx *v, const char *file, const char *line, size_t n, uint64_t off)
{
	audit_verify_report *rep = v->rep;
	char err[AUDIT_ERR_MAX];
	audit_record r;
	int bad;

	rep->has_index = true;
	rep->index = v->st.tree.size;
	bad = audit_record_parse(line, n, &r, err, sizeof err);
	snprintf(rep->stream, sizeof rep->stream, "%s", r.stream);
	rep->has_seq = r.stream[0] != '\0';
	rep->seq = r.seq;
	if (bad == 0)
		bad = audit_state_apply(&v->st, &r, line, n, err, sizeof err);
	if (bad)
		return v_fail(rep, file, off, "%s", err);
	rep->records++;
	rep->has_index = rep->has_seq = false;
	rep->stream[0] = '\0';
	return ck_settle(v);
}

static int v_header(vctx *v, const char *file, uint64_t first, const char *line, size_t n,
                    bool is_first)
{
	char err[AUDIT_ERR_MAX];
	audit_state h;

	if (audit_header_parse(line, n, &h, err, sizeof err) != 0)
		return v_fail(v->rep, file, 0, "segment header: %s", err);
	if (h.tree.size != first)
		return v_fail(v->rep, file, 0, "segment header says first index %" PRIu64
		              " but the file is named for %" PRIu64, h.tree.size, first);
	if (is_first) {
		v->st = h;
		v->rep->first_index = first;
		return ck_settle(v);
	}
	if (!audit_state_equal(&h, &v->st))
		return v_fail(v->rep, file, 0, "segment does not continue the previous one: it starts "
		              "at record %" PRIu64 " with other chain heads, the log so far has %" PRIu64
		              " records (records or a segment removed, or a header changed)",
		              h.tree.size, v->st.tree.size);
	return 0;
}

static int v_segment(vctx *v, uint64_t first, bool is_first, audit_lines *l)
{
	char file[AUDIT_SEG_NAME_LEN + 1], path[4096];
	const char *line;
	size_t n;
	uint64_t off;
	audit_line_status s;
	int fd, r = 0;
	bool header = true;

	audit_segment_name(first, file);
	snprintf(path, sizeof path, "%s/%s", v->dir, file);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return v_fail(v->rep, file, 0, "cannot open: %s", strerror(errno));
	audit_lines_init(l, fd);
	while (r == 0 && (s = audit_lines_next(l, &line, &n, &off)) == AUDIT_LINE_OK) {
		if (header)
			r = v_header(v, file, first, line, n, is_first);
		else
			r = v_record(v, file, line, n, off);
		header = false;
	}
	close(fd);
	if (r != 0)
		return -1;
	if (header)
		return v_fail(v->rep, file, 0, "segment has no complete header line");
	if (s == AUDIT_LINE_TORN) {
		v->rep->has_index = true;
		v->rep->index = v->st.tree.size;
		return v_fail(v->rep, file, off, "torn record: %zu bytes after the last newline "
		              "(a cut file or a crash mid-write; the log service truncates it on open)",
		              n);
	}
	if (s != AUDIT_LINE_EOF)
		return v_fail(v->rep, file, off, "%s", s == AUDIT_LINE_TOO_LONG ? "line too long"
		              : "read error");
	v->rep->segments++;
	return 0;
}

static int v_open_checkpoints(vctx *v)
{
	char path[4096];

	snprintf(path, sizeof path, "%s/%s", v->dir, AUDIT_CKPT_FILE);
	v->ckfd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (v->ckfd < 0 && errno != ENOENT)
		return v_fail(v->rep, AUDIT_CKPT_FILE, 0, "cannot open: %s", strerror(errno));
	if (v->ckfd >= 0)
		audit_lines_init(v->ckl, v->ckfd);
	return ck_next(v);
}

static int v_run(vctx *v, audit_lines *l)
{
	uint64_t *firsts = NULL;
	size_t nseg = 0;
	char err[AUDIT_ERR_MAX];
	int r = 0;

	if (audit_segment_list(v->dir, &firsts, &nseg, err, sizeof err) != 0)
		return v_fail(v->rep, "", 0, "%s", err);
	if (nseg == 0)
		r = v_fail(v->rep, "", 0, "%s: no segment files (seg-*.log)", v->dir);
	if (r == 0)
		r = v_open_checkpoints(v);
	for (size_t i = 0; r == 0 && i < nseg; i++)
		r = v_segment(v, firsts[i], i == 0, l);
	free(firsts);
	if (r != 0)
		return -1;
	if (v->ck_have)
		return v_fail(v->rep, AUDIT_CKPT_FILE, v->ck_off, "checkpoint covers %" PRIu64
		              " records but the log holds %" PRIu64 " (truncated, or records removed)",
		              v->ck.size, v->st.tree.size);
	if (v->x_have)
		return v_fail(v->rep, AUDIT_VERIFY_XCKPT, 0, "the given checkpoint covers %" PRIu64
		              " records but the log holds %" PRIu64 " (records cut from its end, "
		              "perhaps after its newest stored checkpoint)", v->x.size,
		              v->st.tree.size);
	return 0;
}

int audit_verify_dir(const char *dir, const uint8_t *pk, audit_verify_report *rep)
{
	return audit_verify_dir_against(dir, pk, NULL, rep);
}

int audit_verify_dir_against(const char *dir, const uint8_t *pk, const audit_checkpoint *given,
                             audit_verify_report *rep)
{
	vctx *v = calloc(1, sizeof *v);
	audit_lines *l = malloc(sizeof *l);
	char path[4096], err[AUDIT_ERR_MAX];
	int r = -1;

	memset(rep, 0, sizeof *rep);
	if (!v || !l || !(v->ckl = malloc(sizeof *v->ckl))) {
		v_fail(rep, "", 0, "out of memory");
		goto out;
	}
	v->dir = dir;
	v->rep = rep;
	v->ckfd = -1;
	audit_state_init(&v->st);
	if (pk) {
		memcpy(v->pk, pk, IDENTITY_PK_LEN);
	} else {
		snprintf(path, sizeof path, "%s/%s", dir, AUDIT_PUBKEY_FILE);
		if (audit_pubkey_load(path, v->pk, err, sizeof err) != 0) {
			v_fail(rep, AUDIT_PUBKEY_FILE, 0, "%s (or pass --pubkey FILE)", err);
			goto out;
		}
	}
	if (given && audit_checkpoint_verify(given, v->pk, err, sizeof err) != 0) {
		v_fail(rep, AUDIT_VERIFY_XCKPT, 0, "the given checkpoint: %s", err);
		goto out;
	}
	if (given) {
		v->x = *given;
		v->x_have = true;
	}
	r = v_run(v, l);
	rep->streams = v->st.nstreams;
	audit_merkle_root(&v->st.tree, rep->root);
out:
	if (v && v->ckfd >= 0)
		close(v->ckfd);
	if (v)
		free(v->ckl);
	free(v);
	free(l);
	return r;
}

int audit_verify_segment_bytes(const char *buf, size_t n, audit_verify_report *rep)
{
	vctx *v = calloc(1, sizeof *v);
	size_t pos = 0;
	int r = 0;
	bool header = true;

	memset(rep, 0, sizeof *rep);
	if (!v)
		return v_fail(rep, "", 0, "out of memory");
	v->rep = rep;
	v->ckfd = -1;
	audit_state_init(&v->st);
	while (r == 0 && pos < n) {
		const char *nl = memchr(buf + pos, '\n', n - pos);
		size_t len;
		if (!nl) {
			r = v_fail(rep, "segment", pos, "torn record");
			break;
		}
		len = (size_t)(nl - (buf + pos));
		if (len > AUDIT_LINE_MAX)
			r = v_fail(rep, "segment", pos, "line too long");
		else if (header)
			r = v_header(v, "segment", 0, buf + pos, len, true);
		else
			r = v_record(v, "segment", buf + pos, len, pos);
		header = false;
		pos += len + 1;
	}
	free(v);
	return r;
}
