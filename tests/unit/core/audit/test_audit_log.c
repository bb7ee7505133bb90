/* Unit tests for core/audit/audit_log (+ segment, checkpoint, verify):
 * chains across streams and reopenings, rotation, retention, torn-write
 * recovery, checkpoints, proofs from the files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/audit/audit_log.h"
#include "core/audit/audit_verify.h"
#include "lib/util.h"

static char dir[64];
static node_identity id;

static int setup(void **state)
{
	char err[128];

	(void)state;
	snprintf(dir, sizeof dir, "/tmp/mn-audit-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return identity_generate(&id, err, sizeof err);
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	identity_free(&id);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static audit_log *open_log(uint64_t segmax, audit_recovery *rec)
{
	audit_log_opts o = { .dir = dir, .segment_max = segmax, .id = &id };
	char err[512];
	audit_log *l = audit_log_open(&o, rec, err, sizeof err);

	if (!l)
		fail_msg("open: %s", err);
	return l;
}

/* n records round-robin over three streams, attrs padded to pad bytes. */
static void append_n(audit_log *l, unsigned n, size_t pad)
{
	static const char *const streams[] = { "admin", "ingress", "policy" };
	char err[AUDIT_ERR_MAX], *fill = malloc(pad + 1);

	memset(fill, 'p', pad);
	fill[pad] = '\0';
	for (unsigned i = 0; i < n; i++) {
		json_t *attrs = json_pack("{s:I,s:s}", "i", (json_int_t)i, "pad", fill);
		audit_entry e = { .stream = streams[i % 3], .kind = "test", .writer_id = "unit",
		                  .reason = "ok", .ts_ms = 1700000000000ull + i, .attrs = attrs };
		audit_append_result r = audit_log_append(l, &e, NULL, NULL, err, sizeof err);
		if (r == AUDIT_LOG_FULL) {
			assert_int_equal(audit_log_sync(l, err, sizeof err), 0);
			r = audit_log_append(l, &e, NULL, NULL, err, sizeof err);
		}
		assert_int_equal(r, AUDIT_LOG_OK);
		json_decref(attrs);
	}
	free(fill);
	assert_int_equal(audit_log_sync(l, err, sizeof err), 0);
}

static void verify_ok(audit_verify_report *rep)
{
	if (audit_verify_dir(dir, id.pk, rep) != 0)
		fail_msg("verify: %s offset %llu: %s", rep->file, (unsigned long long)rep->offset,
		         rep->what);
}

static void test_chain_and_reopen(void **state)
{
	audit_verify_report rep;
	audit_recovery rec;
	audit_checkpoint c;
	char err[256];
	uint64_t seq, idx;
	audit_log *l = open_log(0, &rec);

	(void)state;
	assert_int_equal(rec.records, 0);
	append_n(l, 10, 8);
	assert_int_equal(audit_log_size(l), 10);
	assert_int_equal(audit_log_checkpoint(l, 1000, &c, err, sizeof err), 0);
	assert_int_equal(c.size, 10);
	audit_log_free(l);
	verify_ok(&rep);
	assert_int_equal(rep.records, 10);
	assert_int_equal(rep.streams, 3);
	assert_int_equal(rep.checkpoints, 1);
	assert_memory_equal(rep.root, c.root, B3_OUT_LEN);
	/* Reopen: the chain continues where it stopped. */
	l = open_log(0, &rec);
	assert_int_equal(rec.records, 10);
	assert_int_equal(rec.torn_bytes, 0);
	audit_entry e = { .stream = "admin", .kind = "k", .writer_id = "w", .reason = "r" };
	assert_int_equal(audit_log_append(l, &e, &seq, &idx, err, sizeof err), AUDIT_LOG_OK);
	assert_int_equal(seq, 4);                  /* admin had 0,3,6,9 → seqs 0..3 */
	assert_int_equal(idx, 10);
	assert_int_equal(audit_log_size(l), 10);   /* not acknowledged before sync */
	assert_int_equal(audit_log_checkpoint(l, 2000, &c, err, sizeof err), 0);
	assert_int_equal(c.size, 11);
	/* Proofs from the files, for every record, against the checkpoint. */
	for (uint64_t i = 0; i < 11; i++) {
		audit_proof p;
		uint8_t leaf[B3_OUT_LEN];
		assert_int_equal(audit_log_prove(l, i, c.size, &p, leaf, err, sizeof err), 0);
		assert_true(audit_merkle_verify(leaf, &p, c.root));
	}
	assert_int_equal(audit_log_find(l, "admin", 4, &idx, err, sizeof err), 0);
	assert_int_equal(idx, 10);
	assert_int_equal(audit_log_find(l, "ingress", 1, &idx, err, sizeof err), 0);
	assert_int_equal(idx, 4);
	assert_int_equal(audit_log_find(l, "ingress", 9, &idx, err, sizeof err), -1);
	audit_log_free(l);
	verify_ok(&rep);
	assert_int_equal(rep.checkpoints, 2);
	/* Another key: every checkpoint is refused. */
	node_identity other;
	assert_int_equal(identity_generate(&other, err, sizeof err), 0);
	assert_int_equal(audit_verify_dir(dir, other.pk, &rep), -1);
	assert_string_equal(rep.file, "checkpoints.log");
	assert_non_null(strstr(rep.what, "another node"));
	/* ... and the log refuses to be opened by it. */
	audit_log_opts o = { .dir = dir, .id = &other };
	assert_null(audit_log_open(&o, NULL, err, sizeof err));
	assert_non_null(strstr(err, "another node's key"));
	identity_free(&other);
}

static void test_batch_limit(void **state)
{
	char err[AUDIT_ERR_MAX];
	audit_log *l = open_log(0, NULL);
	audit_entry e = { .stream = "s", .kind = "k", .writer_id = "w", .reason = "r" };
	unsigned i;

	(void)state;
	for (i = 0; i < AUDIT_BATCH_MAX_RECORDS; i++)
		assert_int_equal(audit_log_append(l, &e, NULL, NULL, err, sizeof err), AUDIT_LOG_OK);
	assert_int_equal(audit_log_pending(l), AUDIT_BATCH_MAX_RECORDS);
	assert_int_equal(audit_log_append(l, &e, NULL, NULL, err, sizeof err), AUDIT_LOG_FULL);
	e.stream = "bad stream";
	assert_int_equal(audit_log_sync(l, err, sizeof err), 0);
	assert_int_equal(audit_log_append(l, &e, NULL, NULL, err, sizeof err), AUDIT_LOG_REFUSED);
	assert_int_equal(audit_log_pending(l), 0);
	assert_int_equal(audit_log_size(l), AUDIT_BATCH_MAX_RECORDS);
	audit_log_free(l);
}

/* batch_records (tests of the service's early sync): FULL after that many.
 * A reopen finds its records and puts a wrong directory mode right; that it
 * makes no mkdir or chmod on a right one (the audit sandbox kills both) is
 * test_audit_service.py's failed-write test, inside the sandbox. */
static void test_batch_records_and_reopen(void **state)
{
	char err[AUDIT_ERR_MAX];
	audit_log_opts o = { .dir = dir, .id = &id, .batch_records = 3 };
	audit_entry e = { .stream = "s", .kind = "k", .writer_id = "w", .reason = "r" };
	audit_log *l = audit_log_open(&o, NULL, err, sizeof err);
	struct stat st;

	(void)state;
	assert_non_null(l);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(audit_log_append(l, &e, NULL, NULL, err, sizeof err), AUDIT_LOG_OK);
	assert_int_equal(audit_log_append(l, &e, NULL, NULL, err, sizeof err), AUDIT_LOG_FULL);
	assert_int_equal(audit_log_sync(l, err, sizeof err), 0);
	assert_int_equal(audit_log_append(l, &e, NULL, NULL, err, sizeof err), AUDIT_LOG_OK);
	assert_int_equal(audit_log_sync(l, err, sizeof err), 0);
	audit_log_free(l);
	o.batch_records = 0;
	assert_non_null(l = audit_log_open(&o, NULL, err, sizeof err));
	assert_int_equal(audit_log_size(l), 4);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	audit_log_free(l);
	assert_int_equal(chmod(dir, 0750), 0);
	assert_non_null(l = audit_log_open(&o, NULL, err, sizeof err));
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	audit_log_free(l);
}

static unsigned count_segments(void)
{
	uint64_t *f = NULL;
	size_t n = 0;
	char err[128];

	assert_int_equal(audit_segment_list(dir, &f, &n, err, sizeof err), 0);
	free(f);
	return (unsigned)n;
}

static void test_rotation_and_retention(void **state)
{
	audit_verify_report rep;
	audit_retain_report rr;
	char err[256];
	audit_log *l = open_log(AUDIT_SEGMENT_MAX_MIN, NULL);

	(void)state;
	for (unsigned round = 0; round < 6; round++) {
		append_n(l, 20, 1000);                  /* ~22 KiB a round */
		assert_int_equal(audit_log_checkpoint(l, 1000 + round, NULL, err, sizeof err), 0);
	}
	assert_true(count_segments() >= 2);
	verify_ok(&rep);
	assert_int_equal(rep.records, 120);
	assert_int_equal(rep.checkpoints, 6);
	/* Keep about 64 KiB: the oldest segments go, the rest still verifies from
	 * the first remaining header, and later checkpoints still match. */
	unsigned before = count_segments();
	assert_int_equal(audit_log_retain(l, 0, 0, AUDIT_SEGMENT_MAX_MIN, &rr, err, sizeof err), 0);
	assert_true(rr.segments_removed >= 1);
	assert_int_equal(count_segments(), before - rr.segments_removed);
	assert_true(rr.first_index > 0);
	append_n(l, 5, 10);
	assert_int_equal(audit_log_checkpoint(l, 2000, NULL, err, sizeof err), 0);
	/* Proofs still work for every record present, from the first header's
	 * frontier; the removed ones are refused. */
	audit_checkpoint c;
	audit_proof p;
	uint8_t leaf[B3_OUT_LEN];
	assert_int_equal(audit_log_checkpoint(l, 2001, &c, err, sizeof err), 0);
	for (uint64_t i = rr.first_index; i < 125; i++) {
		assert_int_equal(audit_log_prove(l, i, c.size, &p, leaf, err, sizeof err), 0);
		assert_true(audit_merkle_verify(leaf, &p, c.root));
	}
	assert_int_equal(audit_log_prove(l, rr.first_index - 1, c.size, &p, leaf, err, sizeof err), -1);
	assert_non_null(strstr(err, "retention"));
	audit_log_free(l);
	verify_ok(&rep);
	assert_int_equal(rep.first_index, rr.first_index);
	assert_int_equal(rep.first_index + rep.records, 125);
	/* Checkpoints over removed records were dropped from checkpoints.log;
	 * every one left is checked against the records. */
	assert_true(rr.checkpoints_removed >= 1);
	assert_int_equal(rep.checkpoints_pruned, 0);
	assert_int_equal(rep.checkpoints, 8 - rr.checkpoints_removed);
	/* Reopen after retention resumes too. */
	audit_recovery rec;
	l = open_log(AUDIT_SEGMENT_MAX_MIN, &rec);
	assert_int_equal(rec.records, 125);
	assert_int_equal(rec.first_index, rr.first_index);
	audit_log_free(l);
	/* Retention by age: everything but the current segment is older than 0 ms. */
	l = open_log(AUDIT_SEGMENT_MAX_MIN, NULL);
	assert_int_equal(audit_log_retain(l, util_wall_ms() + 10000, 1, 0, &rr, err, sizeof err), 0);
	assert_int_equal(count_segments(), 1);
	audit_log_free(l);
	verify_ok(&rep);
}

static void last_segment_path(char *out, size_t len)
{
	uint64_t *f = NULL;
	size_t n = 0;
	char err[128], name[AUDIT_SEG_NAME_LEN + 1];

	assert_int_equal(audit_segment_list(dir, &f, &n, err, sizeof err), 0);
	assert_true(n > 0);
	audit_segment_name(f[n - 1], name);
	snprintf(out, len, "%s/%s", dir, name);
	free(f);
}

static void append_bytes(const char *path, const char *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_APPEND);

	assert_true(fd >= 0);
	assert_int_equal(util_write_all(fd, data, n), 0);
	close(fd);
}

static void test_torn_write_recovery(void **state)
{
	char path[256], err[512];
	struct stat before, after;
	audit_verify_report rep;
	audit_recovery rec;
	audit_log *l = open_log(0, NULL);

	(void)state;
	append_n(l, 7, 8);
	audit_log_free(l);
	last_segment_path(path, sizeof path);
	assert_int_equal(stat(path, &before), 0);
	/* A crash mid-write: half a record, no newline. */
	append_bytes(path, "{\"actor\":{},\"attrs\":{\"i\":7", 26);
	assert_int_equal(audit_verify_dir(dir, id.pk, &rep), -1);
	assert_non_null(strstr(rep.what, "torn"));
	assert_int_equal(rep.offset, (uint64_t)before.st_size);
	assert_int_equal(rep.index, 7);
	l = open_log(0, &rec);
	assert_int_equal(rec.torn_bytes, 26);
	assert_int_equal(rec.torn_offset, (uint64_t)before.st_size);
	assert_int_equal(rec.records, 7);
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(after.st_size, before.st_size);
	append_n(l, 2, 8);
	assert_int_equal(audit_log_checkpoint(l, 5, NULL, err, sizeof err), 0);
	audit_log_free(l);
	verify_ok(&rep);
	assert_int_equal(rep.records, 9);
	/* A torn checkpoint line is cut the same way. */
	char ck[256];
	snprintf(ck, sizeof ck, "%s/checkpoints.log", dir);
	append_bytes(ck, "{\"node_id\":", 11);
	l = open_log(0, &rec);
	assert_int_equal(rec.ckpt_torn_bytes, 11);
	audit_log_free(l);
	verify_ok(&rep);
	/* A complete but corrupt record is not a crash: an error naming the place. */
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	off_t at = before.st_size - 20;
	char c;
	assert_int_equal(pread(fd, &c, 1, at), 1);
	c ^= 0x01;
	assert_int_equal(pwrite(fd, &c, 1, at), 1);
	close(fd);
	audit_log_opts o = { .dir = dir, .id = &id };
	assert_null(audit_log_open(&o, NULL, err, sizeof err));
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "offset"));
	assert_int_equal(audit_verify_dir(dir, id.pk, &rep), -1);
	assert_true(rep.has_index);
	assert_int_equal(rep.index, 6);
}

/* The in-memory verifier (the fuzz target's) judges the same bytes alike. */
static void test_verify_segment_bytes(void **state)
{
	char path[256];
	char *text = NULL;
	size_t n = 0;
	audit_verify_report rep;
	audit_log *l = open_log(0, NULL);

	(void)state;
	append_n(l, 5, 4);
	audit_log_free(l);
	last_segment_path(path, sizeof path);
	assert_int_equal(util_read_file(path, 1 << 20, &text, &n), 0);
	assert_int_equal(audit_verify_segment_bytes(text, n, &rep), 0);
	assert_int_equal(rep.records, 5);
	assert_int_equal(audit_verify_segment_bytes(text, n - 1, &rep), -1);
	text[n / 2] ^= 0x20;
	assert_int_equal(audit_verify_segment_bytes(text, n, &rep), -1);
	free(text);
}

/* Every index in [first, size) proves against the checkpoint's root, from
 * l itself and from a reader copy. */
static void prove_all(audit_log *l, const audit_checkpoint *c, uint64_t step)
{
	audit_log *rd = audit_log_reader(l);
	audit_proof *p = malloc(sizeof *p);
	uint8_t leaf[B3_OUT_LEN];
	char err[AUDIT_ERR_MAX];

	assert_non_null(rd);
	for (uint64_t i = audit_log_first_index(l); i < c->size; i += step) {
		assert_int_equal(audit_log_prove(rd, i, c->size, p, leaf, err, sizeof err), 0);
		assert_true(audit_merkle_verify(leaf, p, c->root));
		leaf[0] ^= 1;
		assert_false(audit_merkle_verify(leaf, p, c->root));
	}
	free(p);
	audit_log_free(rd);
}

/* RAM mode (amnesia): the same records give the same checkpoint root as on
 * disk; past ram_bytes the oldest leave, and what is left still proves
 * against a root over every record; nothing is written anywhere. */
static void test_ram_log(void **state)
{
	audit_log_opts ro = { .dir = NULL, .ram_bytes = AUDIT_RAM_MIN, .id = &id };
	char err[AUDIT_ERR_MAX];
	audit_checkpoint cr, cd;
	uint64_t idx;
	char rec[AUDIT_RECORD_MAX + 1];
	size_t rn = 0;
	audit_log *ram, *disk;

	(void)state;
	ro.ram_bytes = AUDIT_RAM_MIN - 1;
	assert_null(audit_log_open(&ro, NULL, err, sizeof err));
	ro.ram_bytes = AUDIT_RAM_MIN;
	ram = audit_log_open(&ro, NULL, err, sizeof err);
	assert_non_null(ram);
	disk = open_log(0, NULL);
	append_n(ram, 40, 16);
	append_n(disk, 40, 16);
	assert_int_equal(audit_log_checkpoint(ram, 1700000001000ull, &cr, err, sizeof err), 0);
	assert_int_equal(audit_log_checkpoint(disk, 1700000001000ull, &cd, err, sizeof err), 0);
	assert_int_equal(cr.size, 40);
	assert_memory_equal(cr.root, cd.root, B3_OUT_LEN);
	assert_int_equal(audit_log_first_index(ram), 0);
	prove_all(ram, &cr, 1);
	assert_int_equal(audit_log_get(ram, "ingress", 3, &idx, rec, sizeof rec, &rn, err,
	                               sizeof err), 0);
	assert_int_equal(idx, 10);
	assert_non_null(strstr(rec, "\"stream\":\"ingress\""));
	assert_int_equal(strlen(rec), rn);

	/* ~2.5 MiB more: the oldest records leave the 2 MiB ring. */
	append_n(ram, 5000, 480);
	append_n(disk, 5000, 480);
	assert_true(audit_log_first_index(ram) > 0);
	assert_int_equal(audit_log_checkpoint(ram, 1700000002000ull, &cr, err, sizeof err), 0);
	assert_int_equal(audit_log_checkpoint(disk, 1700000002000ull, &cd, err, sizeof err), 0);
	assert_int_equal(cr.size, 5040);
	assert_memory_equal(cr.root, cd.root, B3_OUT_LEN);
	prove_all(ram, &cr, 97);
	assert_int_equal(audit_log_find(ram, "admin", 0, &idx, err, sizeof err), -1);
	audit_retain_report rep;
	assert_int_equal(audit_log_retain(ram, 1, 1, 1, &rep, err, sizeof err), 0);
	assert_int_equal(rep.segments_removed, 0);
	audit_log_free(ram);
	audit_log_free(disk);
}

/* A reader copy is a snapshot: records appended to the log later are not
 * in it, and it proves while the log goes on. */
static void test_reader_snapshot(void **state)
{
	char err[AUDIT_ERR_MAX];
	audit_checkpoint c;
	uint64_t idx;
	audit_log *l = open_log(0, NULL), *rd;

	(void)state;
	append_n(l, 9, 4);
	assert_int_equal(audit_log_checkpoint(l, 1700000001000ull, &c, err, sizeof err), 0);
	rd = audit_log_reader(l);
	assert_non_null(rd);
	append_n(l, 9, 4);
	assert_int_equal(audit_log_find(l, "admin", 5, &idx, err, sizeof err), 0);
	assert_int_equal(audit_log_find(rd, "admin", 5, &idx, err, sizeof err), -1);
	assert_int_equal(audit_log_find(rd, "admin", 2, &idx, err, sizeof err), 0);
	assert_int_equal(idx, 6);
	audit_log_free(rd);
	prove_all(l, &c, 1);
	audit_log_free(l);
}

/* Check recs[0..count) are stream's (NULL: any) newest records with indexes
 * from top down in steps of step, each the bytes audit_log_get returns. */
static void check_recent(audit_log *l, const audit_recent_rec *recs, unsigned count,
                         uint64_t top, uint64_t step)
{
	static const char *const streams[] = { "admin", "ingress", "policy" };
	char err[AUDIT_ERR_MAX], *rec = malloc(AUDIT_RECORD_MAX + 1);
	uint64_t idx = 0;
	size_t rn = 0;

	for (unsigned i = 0; i < count; i++) {
		uint64_t want = top - i * step;
		assert_int_equal(recs[i].index, want);
		assert_int_equal(strlen(recs[i].text), recs[i].len);
		/* append_n: record i of a round is streams[i % 3] seq i / 3 */
		assert_int_equal(audit_log_get(l, streams[want % 3], want / 3, &idx, rec,
		                               AUDIT_RECORD_MAX + 1, &rn, err, sizeof err), 0);
		assert_int_equal(idx, want);
		assert_int_equal(rn, recs[i].len);
		assert_memory_equal(rec, recs[i].text, rn);
	}
	free(rec);
}

/* The newest records, newest first: across segments, by stream, bounded,
 * from a reader snapshot, and from a RAM log. */
static void test_recent(void **state)
{
	audit_recent_rec recs[AUDIT_RECENT_MAX];
	char err[AUDIT_ERR_MAX];
	unsigned n = 99;
	audit_log *l = open_log(AUDIT_SEGMENT_MAX_MIN, NULL), *rd;
	audit_log_opts ro = { .dir = NULL, .ram_bytes = AUDIT_RAM_MIN, .id = &id };

	(void)state;
	assert_int_equal(audit_log_recent(l, NULL, 5, recs, &n, err, sizeof err), 0);
	assert_int_equal(n, 0);                      /* empty log */
	for (int r = 0; r < 3; r++)                  /* ~100 KiB: two segments at least */
		append_n(l, 30, 1000);
	assert_true(count_segments() >= 2);
	assert_int_equal(audit_log_recent(l, NULL, 5, recs, &n, err, sizeof err), 0);
	assert_int_equal(n, 5);
	check_recent(l, recs, n, 89, 1);
	audit_recent_free(recs, n);
	assert_int_equal(audit_log_recent(l, "", 1, recs, &n, err, sizeof err), 0);
	assert_int_equal(n, 1);
	check_recent(l, recs, n, 89, 1);
	audit_recent_free(recs, n);
	/* one stream, 20 of its 30 records: back through the older segment */
	assert_int_equal(audit_log_recent(l, "policy", AUDIT_RECENT_MAX, recs, &n, err, sizeof err),
	                 0);
	assert_int_equal(n, AUDIT_RECENT_MAX);
	check_recent(l, recs, n, 89, 3);
	audit_recent_free(recs, n);
	assert_true(recs[0].text == NULL);
	assert_int_equal(audit_log_recent(l, "nothing", 3, recs, &n, err, sizeof err), 0);
	assert_int_equal(n, 0);
	/* bounded */
	assert_int_equal(audit_log_recent(l, NULL, 0, recs, &n, err, sizeof err), -1);
	assert_int_equal(audit_log_recent(l, NULL, AUDIT_RECENT_MAX + 1, recs, &n, err, sizeof err),
	                 -1);
	/* a reader sees the log as it was copied */
	rd = audit_log_reader(l);
	assert_non_null(rd);
	append_n(l, 3, 4);
	assert_int_equal(audit_log_recent(rd, "admin", 2, recs, &n, err, sizeof err), 0);
	assert_int_equal(n, 2);
	check_recent(l, recs, n, 87, 3);
	audit_recent_free(recs, n);
	audit_log_free(rd);
	assert_int_equal(audit_log_recent(l, "admin", 1, recs, &n, err, sizeof err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(recs[0].index, 90);
	audit_recent_free(recs, n);
	audit_log_free(l);

	/* RAM mode: the ring, after some records left it */
	l = audit_log_open(&ro, NULL, err, sizeof err);
	assert_non_null(l);
	append_n(l, 5000, 480);
	assert_true(audit_log_first_index(l) > 0);
	assert_int_equal(audit_log_recent(l, "ingress", 7, recs, &n, err, sizeof err), 0);
	assert_int_equal(n, 7);
	check_recent(l, recs, n, 4999, 3);
	audit_recent_free(recs, n);
	audit_log_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_chain_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_records_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_and_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_write_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_segment_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ram_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recent, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
