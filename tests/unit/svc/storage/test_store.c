/* The object store (src/svc/storage/store.h), both backends: round trips at
 * the group edges with the outboard proved against the id, every refusal
 * with its exact status, quarantine, and what a crash leaves behind
 * (uploads never committed, blob files with no record, tmp files) swept on
 * re-open. The RAM backend must write nothing anywhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/metrics/metrics.h"
#include "lib/b3tree.h"
#include "svc/storage/store.h"
#include "svc/storage/store_test.h"

#define KIB      1024u
#define MIB      (1024u * 1024u)
#define CAP      (4u * MIB)
#define UPLOADS  3u
#define OWNER    7u

typedef struct fx {
	char   dir[64];
	bool   ram;
	unsigned flags;
	store *st;
} fx;

static const store_limits limits = { .max_object_bytes = CAP, .max_uploads = UPLOADS };

static uint8_t *make_data(size_t len, uint64_t seed)
{
	uint8_t *p = malloc(len ? len : 1);

	assert_non_null(p);
	for (size_t i = 0; i < len; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(seed >> 33);
	}
	return p;
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t w = pwrite(fd, p + off, n - off, (off_t)off);
		assert_true(w > 0);
		off += (size_t)w;
	}
}

static uint8_t *read_all(int fd, size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	size_t off = 0;

	assert_non_null(p);
	while (off < n) {
		ssize_t r = pread(fd, p + off, n - off, (off_t)off);
		assert_true(r > 0);
		off += (size_t)r;
	}
	assert_int_equal(pread(fd, p, 1, (off_t)n), 0);   /* nothing past len */
	return p;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(path);
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void fx_open(fx *f)
{
	char err[512] = "";

	f->st = f->ram ? store_ram_new(&limits, err, sizeof err)
	               : store_disk_new(f->dir, &limits, f->flags, err, sizeof err);
	if (!f->st)
		fail_msg("store: %s", err);
}

static int fx_setup(void **state, bool ram, unsigned flags)
{
	fx *f = calloc(1, sizeof *f);

	if (!f)
		return -1;
	snprintf(f->dir, sizeof f->dir, "/tmp/mn-store-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->ram = ram;
	f->flags = flags;
	fx_open(f);
	*state = f;
	return 0;
}

static int setup_disk(void **state) { return fx_setup(state, false, 0); }
static int setup_disk_named(void **state) { return fx_setup(state, false, STORE_DISK_NO_TMPFILE); }
static int setup_ram(void **state) { return fx_setup(state, true, 0); }

static int teardown(void **state)
{
	fx *f = *state;

	store_free(f->st);
	(void)nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Upload data (len bytes) and commit with expect; returns the status. */
static store_status put(store *st, const uint8_t *data, size_t len, const uint8_t *expect,
                        uint8_t id[B3_OUT_LEN], bool *created)
{
	uint64_t h;
	int fd = -1;

	assert_int_equal(store_put_begin(st, OWNER, len, NULL, &h, &fd), STORE_OK);
	assert_true(fd >= 0);
	write_all(fd, data, len);
	close(fd);
	return store_put_commit(st, OWNER, h, len, expect, false, id, created);
}

/* The outboard proves the id, and every group proves its bytes. */
static void check_outboard(const uint8_t *data, size_t len, const uint8_t *ob,
                           const uint8_t id[B3_OUT_LEN])
{
	size_t groups = b3tree_groups(len);

	assert_true(b3tree_outboard_ok(ob, len, id));
	for (size_t g = 0; g < groups; g++) {
		int64_t glen = b3tree_group_len(len, g);
		assert_true(glen >= 0);
		assert_true(b3tree_group_ok(data + g * B3TREE_GROUP_LEN, (size_t)glen, g, len, ob, id));
	}
	if (len > 0) {   /* and a flipped byte is caught (the check can fail) */
		uint8_t *bad = malloc(len);
		memcpy(bad, data, len);
		bad[len - 1] ^= 1;
		size_t g = groups - 1;
		assert_false(b3tree_group_ok(bad + g * B3TREE_GROUP_LEN,
		                             (size_t)b3tree_group_len(len, g), g, len, ob, id));
		free(bad);
	}
}

static void roundtrip(fx *f, size_t len, uint64_t seed)
{
	uint8_t *data = make_data(len, seed), want[B3_OUT_LEN], id[B3_OUT_LEN];
	bool created = false;
	uint64_t got_len = 0;
	int bfd = -1, ofd = -1;

	b3_hash(data, len, want);
	assert_int_equal(put(f->st, data, len, want, id, &created), STORE_OK);
	assert_true(created);
	assert_memory_equal(id, want, B3_OUT_LEN);
	assert_int_equal(store_stat(f->st, id, &got_len), STORE_OK);
	assert_int_equal(got_len, len);
	assert_int_equal(store_open(f->st, id, &got_len, &bfd, &ofd), STORE_OK);
	assert_int_equal(got_len, len);
	uint8_t *back = read_all(bfd, len);
	assert_memory_equal(back, data, len);
	uint8_t *ob = read_all(ofd, b3tree_outboard_len(len));
	check_outboard(data, len, ob, id);
	assert_int_equal(write(bfd, "x", 1), -1);   /* served fds are read-only */
	assert_int_equal(write(ofd, "x", 1), -1);
	close(bfd);
	close(ofd);
	assert_int_equal(store_uploads_open(f->st), 0);
	free(back);
	free(ob);
	free(data);
}

static void test_roundtrip_sizes(void **state)
{
	static const size_t sizes[] = { 0, 1, 64 * KIB, 64 * KIB + 1, 3 * MIB };

	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		roundtrip(*state, sizes[i], 1000 + i);
}

static void test_duplicate(void **state)
{
	fx *f = *state;
	uint8_t *data = make_data(100 * KIB, 5), id1[B3_OUT_LEN], id2[B3_OUT_LEN];
	bool created = true;

	assert_int_equal(put(f->st, data, 100 * KIB, NULL, id1, &created), STORE_OK);
	assert_true(created);
	assert_int_equal(put(f->st, data, 100 * KIB, NULL, id2, &created), STORE_OK);
	assert_false(created);
	assert_memory_equal(id1, id2, B3_OUT_LEN);
	free(data);
}

static void test_expect_mismatch(void **state)
{
	fx *f = *state;
	uint8_t *data = make_data(70 * KIB, 6), wrong[B3_OUT_LEN], id[B3_OUT_LEN], real[B3_OUT_LEN];
	bool created = false;
	uint64_t len;

	b3_hash("something else", 14, wrong);
	b3_hash(data, 70 * KIB, real);
	assert_int_equal(put(f->st, data, 70 * KIB, wrong, id, &created), STORE_MISMATCH);
	assert_int_equal(store_stat(f->st, real, &len), STORE_NOT_FOUND);
	assert_int_equal(store_stat(f->st, wrong, &len), STORE_NOT_FOUND);
	assert_int_equal(store_uploads_open(f->st), 0);
	if (!f->ram) {   /* nothing stored: no file left under objects/ or tmp/ */
		char sub[128];
		snprintf(sub, sizeof sub, "%s/objects", f->dir);
		assert_int_equal(count_entries(sub), 0);
		snprintf(sub, sizeof sub, "%s/tmp", f->dir);
		assert_int_equal(count_entries(sub), 0);
	}
	free(data);
}

static void test_length_and_caps(void **state)
{
	fx *f = *state;
	uint8_t *data = make_data(1000, 7), id[B3_OUT_LEN];
	bool created;
	uint64_t h;
	int fd = -1;

	assert_int_equal(store_put_begin(f->st, OWNER, CAP + 1, NULL, &h, &fd), STORE_TOO_LARGE);
	assert_int_equal(fd, -1);
	/* announced len differs from the file */
	assert_int_equal(store_put_begin(f->st, OWNER, 2000, NULL, &h, &fd), STORE_OK);
	write_all(fd, data, 1000);
	close(fd);
	assert_int_equal(store_put_commit(f->st, OWNER, h, 999, NULL, false, id, &created), STORE_BAD);
	/* the upload is consumed by any commit */
	assert_int_equal(store_put_commit(f->st, OWNER, h, 1000, NULL, false, id, &created), STORE_NOT_FOUND);
	/* len over the upload's own max_len */
	assert_int_equal(store_put_begin(f->st, OWNER, 500, NULL, &h, &fd), STORE_OK);
	write_all(fd, data, 1000);
	close(fd);
	assert_int_equal(store_put_commit(f->st, OWNER, h, 1000, NULL, false, id, &created), STORE_TOO_LARGE);
	assert_int_equal(store_uploads_open(f->st), 0);
	free(data);
}

static void test_upload_slots_and_owners(void **state)
{
	fx *f = *state;
	uint64_t h[UPLOADS + 1];
	int fd[UPLOADS + 1];
	uint8_t id[B3_OUT_LEN];
	bool created;

	for (unsigned i = 0; i < UPLOADS; i++) {
		assert_int_equal(store_put_begin(f->st, i == 0 ? OWNER + 1 : OWNER, 10, NULL, &h[i], &fd[i]),
		                 STORE_OK);
		close(fd[i]);
	}
	assert_int_equal(store_put_begin(f->st, OWNER, 10, NULL, &h[UPLOADS], &fd[UPLOADS]), STORE_BUSY);
	/* another owner's handle is not ours */
	assert_int_equal(store_put_abort(f->st, OWNER, h[0]), STORE_NOT_FOUND);
	assert_int_equal(store_put_commit(f->st, OWNER, h[0], 0, NULL, false, id, &created), STORE_NOT_FOUND);
	assert_int_equal(store_put_abort(f->st, OWNER, h[1]), STORE_OK);
	assert_int_equal(store_put_abort(f->st, OWNER, h[1]), STORE_NOT_FOUND);
	assert_int_equal(store_uploads_open(f->st), UPLOADS - 1);
	store_abort_owner(f->st, OWNER);
	assert_int_equal(store_uploads_open(f->st), 1);
	store_abort_owner(f->st, OWNER + 1);
	assert_int_equal(store_uploads_open(f->st), 0);
	if (f->flags & STORE_DISK_NO_TMPFILE) {   /* named temp files are gone too */
		char tmp[128];
		snprintf(tmp, sizeof tmp, "%s/tmp", f->dir);
		assert_int_equal(count_entries(tmp), 0);
	}
}

/* Open an upload for tenant/peer; its fd is closed at once (the store keeps
 * its own). The status, and the handle in *h. */
static store_status begin_as(store *st, const char *tenant, const char *peer, uint64_t *h)
{
	store_who who = { .tenant = tenant, .peer = peer };
	int fd = -1;
	store_status rc = store_put_begin(st, OWNER, 10, &who, h, &fd);

	if (rc == STORE_OK)
		close(fd);
	else
		assert_int_equal(fd, -1);
	return rc;
}

/* One tenant, or one address, holds at most its share of the slots; the
 * others still get theirs; "" / NULL keys count against no share. */
static void test_upload_shares(void **state)
{
	fx *f = *state;
	store_limits lim = { .max_object_bytes = CAP, .max_uploads = 6, .max_per_tenant = 2,
	                     .max_per_peer = 3 };
	store_who a = { .tenant = "t:a", .peer = "ip:1" }, c = { .tenant = "t:c", .peer = "ip:1" };
	uint64_t h[8], x;
	uint8_t id[B3_OUT_LEN];
	bool created;

	store_set_limits(f->st, &lim);
	assert_int_equal(begin_as(f->st, "t:a", "ip:1", &h[0]), STORE_OK);
	assert_int_equal(begin_as(f->st, "t:a", "ip:1", &h[1]), STORE_OK);
	assert_int_equal(store_share_full(f->st, &a), STORE_SHARE_TENANT);
	assert_int_equal(begin_as(f->st, "t:a", "ip:2", &x), STORE_BUSY);   /* any address */
	assert_int_equal(begin_as(f->st, "t:b", "ip:1", &h[2]), STORE_OK);
	assert_int_equal(store_share_full(f->st, &c), STORE_SHARE_PEER);
	assert_int_equal(begin_as(f->st, "t:c", "ip:1", &x), STORE_BUSY);
	assert_int_equal(begin_as(f->st, "t:c", "ip:2", &h[3]), STORE_OK);
	assert_int_equal(begin_as(f->st, "", "", &h[4]), STORE_OK);          /* no keys */
	assert_int_equal(begin_as(f->st, NULL, NULL, &h[5]), STORE_OK);
	assert_int_equal(store_uploads_open(f->st), 6);
	assert_int_equal(store_share_full(f->st, NULL), STORE_SHARE_TABLE);
	assert_int_equal(begin_as(f->st, "t:d", "ip:3", &x), STORE_BUSY);
	/* an abort and a commit each give the slot back to its tenant */
	assert_int_equal(store_put_abort(f->st, OWNER, h[4]), STORE_OK);
	assert_int_equal(store_put_abort(f->st, OWNER, h[0]), STORE_OK);
	assert_int_equal(begin_as(f->st, "t:a", "ip:2", &h[0]), STORE_OK);
	assert_int_equal(begin_as(f->st, "t:a", "ip:2", &x), STORE_BUSY);
	assert_int_equal(store_put_commit(f->st, OWNER, h[1], 0, NULL, false, id, &created), STORE_OK);
	assert_int_equal(store_share_full(f->st, &a), STORE_SHARE_OK);
	assert_int_equal(begin_as(f->st, "t:a", "ip:2", &h[1]), STORE_OK);
	/* 0 is no share: the table is the only limit */
	store_abort_owner(f->st, OWNER);
	lim.max_per_tenant = lim.max_per_peer = 0;
	store_set_limits(f->st, &lim);
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(begin_as(f->st, "t:a", "ip:1", &h[i]), STORE_OK);
	assert_int_equal(store_share_full(f->st, &a), STORE_SHARE_TABLE);
	store_abort_owner(f->st, OWNER);
	assert_int_equal(store_uploads_open(f->st), 0);
}

/* A key is kept cut to STORE_KEY_MAX - 1 bytes: two that differ only past
 * that are one share (stricter, never looser). */
static void test_upload_share_long_keys(void **state)
{
	fx *f = *state;
	store_limits lim = { .max_object_bytes = CAP, .max_uploads = 4, .max_per_tenant = 1 };
	char k1[STORE_KEY_MAX + 8], k2[STORE_KEY_MAX + 8];
	uint64_t h;

	memset(k1, 'k', sizeof k1 - 1);
	k1[sizeof k1 - 1] = '\0';
	memcpy(k2, k1, sizeof k2);
	k2[STORE_KEY_MAX] = 'z';
	store_set_limits(f->st, &lim);
	assert_int_equal(begin_as(f->st, k1, "", &h), STORE_OK);
	assert_int_equal(begin_as(f->st, k2, "", &h), STORE_BUSY);
	k2[STORE_KEY_MAX - 2] = 'z';
	assert_int_equal(begin_as(f->st, k2, "", &h), STORE_OK);
	store_abort_owner(f->st, OWNER);
}

static void test_quarantine(void **state)
{
	fx *f = *state;
	uint8_t *data = make_data(200 * KIB, 8), id[B3_OUT_LEN], unknown[B3_OUT_LEN] = { 1 };
	bool created;
	uint64_t len;
	int bfd = -1, ofd = -1;

	assert_int_equal(put(f->st, data, 200 * KIB, NULL, id, &created), STORE_OK);
	assert_int_equal(store_quarantine(f->st, id), STORE_OK);
	assert_int_equal(store_quarantine(f->st, id), STORE_OK);
	assert_int_equal(store_quarantine(f->st, unknown), STORE_NOT_FOUND);
	assert_int_equal(store_stat(f->st, id, &len), STORE_QUARANTINED);
	assert_int_equal(store_open(f->st, id, &len, &bfd, &ofd), STORE_QUARANTINED);
	assert_int_equal(bfd, -1);
	assert_int_equal(ofd, -1);
	if (!f->ram) {   /* durable */
		store_free(f->st);
		fx_open(f);
		assert_int_equal(store_stat(f->st, id, &len), STORE_QUARANTINED);
	}
	/* the same bytes again (they hash to the id) replace it */
	assert_int_equal(put(f->st, data, 200 * KIB, NULL, id, &created), STORE_OK);
	assert_true(created);
	assert_int_equal(store_open(f->st, id, &len, &bfd, &ofd), STORE_OK);
	uint8_t *back = read_all(bfd, len);
	assert_memory_equal(back, data, 200 * KIB);
	close(bfd);
	close(ofd);
	free(back);
	free(data);
}

/* The type record (store_meta.c): first type stays, grammar enforced,
 * durable on disk, refused for an unknown object. */
static void test_meta_type(void **state)
{
	fx *f = *state;
	uint8_t *data = make_data(3 * KIB, 9), id[B3_OUT_LEN], unknown[B3_OUT_LEN] = { 2 };
	char t[STORE_CTYPE_MAX];
	bool created, rd = true;
	uint64_t len = 0;

	assert_int_equal(put(f->st, data, 3 * KIB, NULL, id, &created), STORE_OK);
	assert_int_equal(store_meta_get(f->st, id, &len, t, &rd), STORE_OK);
	assert_int_equal(len, 3 * KIB);
	assert_string_equal(t, "");
	assert_false(rd);
	assert_int_equal(store_meta_set(f->st, id, "text/x\"evil", false, &len, t, &rd), STORE_BAD);
	assert_int_equal(store_meta_set(f->st, unknown, "text/plain", false, &len, t, &rd),
	                 STORE_NOT_FOUND);
	assert_int_equal(store_meta_set(f->st, id, "Text/CSV; charset=UTF-8", false, &len, t, &rd),
	                 STORE_OK);
	assert_string_equal(t, "text/csv; charset=utf-8");
	assert_int_equal(store_meta_set(f->st, id, "image/gif", false, &len, t, &rd), STORE_OK);
	assert_string_equal(t, "text/csv; charset=utf-8");   /* the first stays */
	/* a read's sniff never replaces an upload's type */
	assert_int_equal(store_meta_set(f->st, id, "image/png", true, &len, t, &rd), STORE_OK);
	assert_string_equal(t, "text/csv; charset=utf-8");
	assert_false(rd);
	if (!f->ram) {   /* durable */
		store_free(f->st);
		fx_open(f);
	}
	assert_int_equal(store_meta_get(f->st, id, &len, t, &rd), STORE_OK);
	assert_string_equal(t, "text/csv; charset=utf-8");
	assert_false(rd);
	assert_int_equal(store_quarantine(f->st, id), STORE_OK);
	assert_int_equal(store_meta_get(f->st, id, &len, t, &rd), STORE_QUARANTINED);
	free(data);
}

/* A type sniffed on a read: recorded (so it is sniffed once), kept against
 * another read's, durable, and replaced by the first upload's type — which
 * then stays, against reads and uploads alike. */
static void test_meta_read_type(void **state)
{
	fx *f = *state;
	uint8_t *data = make_data(2 * KIB, 11), id[B3_OUT_LEN];
	char t[STORE_CTYPE_MAX];
	bool created, rd = false;
	uint64_t len = 0;

	assert_int_equal(put(f->st, data, 2 * KIB, NULL, id, &created), STORE_OK);
	assert_int_equal(store_meta_set(f->st, id, "image/png", true, &len, t, &rd), STORE_OK);
	assert_string_equal(t, "image/png");
	assert_true(rd);
	assert_int_equal(store_meta_set(f->st, id, "image/gif", true, &len, t, &rd), STORE_OK);
	assert_string_equal(t, "image/png");   /* another read: the first read's stays */
	assert_true(rd);
	if (!f->ram) {   /* durable, and still a read's */
		store_free(f->st);
		fx_open(f);
	}
	assert_int_equal(store_meta_get(f->st, id, &len, t, &rd), STORE_OK);
	assert_string_equal(t, "image/png");
	assert_true(rd);
	assert_int_equal(store_meta_set(f->st, id, "text/plain", false, &len, t, &rd), STORE_OK);
	assert_string_equal(t, "text/plain");   /* the upload's replaces the read's */
	assert_false(rd);
	assert_int_equal(store_meta_set(f->st, id, "image/png", true, &len, t, &rd), STORE_OK);
	assert_int_equal(store_meta_set(f->st, id, "text/csv", false, &len, t, &rd), STORE_OK);
	assert_string_equal(t, "text/plain");
	assert_false(rd);
	assert_int_equal(store_meta_get(f->st, id, &len, t, &rd), STORE_OK);
	assert_string_equal(t, "text/plain");
	assert_false(rd);
	free(data);
}

/* Crash: an upload never committed, a blob and outboard with no record, a
 * tmp file; a committed object and a quarantine mark survive. */
static void test_crash_sweep(void **state)
{
	fx *f = *state;
	uint8_t *data = make_data(130 * KIB, 9), id[B3_OUT_LEN], stray[B3_OUT_LEN];
	char hex[B3_HEX_LEN + 1], path[256], sub[128];
	bool created;
	uint64_t h, len;
	int fd;

	assert_int_equal(put(f->st, data, 130 * KIB, NULL, id, &created), STORE_OK);
	assert_int_equal(store_put_begin(f->st, OWNER, 10, NULL, &h, &fd), STORE_OK);
	write_all(fd, (const uint8_t *)"half", 4);
	close(fd);
	b3_hash("stray", 5, stray);
	b3_hex(stray, hex);
	snprintf(sub, sizeof sub, "%s/objects/%.2s", f->dir, hex);
	(void)mkdir(sub, 0700);
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/%s%s", sub, hex, i ? ".ob" : "");
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	snprintf(path, sizeof path, "%s/tmp/up-junk", f->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);

	char err[256];
	assert_null(store_disk_new(f->dir, &limits, 0, err, sizeof err));   /* locked */
	store_free(f->st);   /* the "crash": the upload is never committed */
	fx_open(f);
	snprintf(path, sizeof path, "%s/tmp", f->dir);
	assert_int_equal(count_entries(path), 0);
	assert_int_equal(count_entries(sub), 0);
	assert_int_equal(store_stat(f->st, stray, &len), STORE_NOT_FOUND);
	assert_int_equal(store_stat(f->st, id, &len), STORE_OK);
	assert_int_equal(len, 130 * KIB);
	assert_int_equal(store_uploads_open(f->st), 0);
	free(data);
}

/* A recorded object whose blob changed size on disk is never served. */
static void test_damaged_blob(void **state)
{
	fx *f = *state;
	uint8_t *data = make_data(90 * KIB, 10), id[B3_OUT_LEN];
	char hex[B3_HEX_LEN + 1], path[256];
	bool created;
	uint64_t len;
	int bfd = -1, ofd = -1;
	metrics_series *m = metrics_get("integrity_fail_total", "object=\"blob\"");
	uint64_t before = metrics_value(m);

	assert_int_equal(put(f->st, data, 90 * KIB, NULL, id, &created), STORE_OK);
	b3_hex(id, hex);
	snprintf(path, sizeof path, "%s/objects/%.2s/%s", f->dir, hex, hex);
	assert_int_equal(truncate(path, 1000), 0);
	assert_int_equal(store_open(f->st, id, &len, &bfd, &ofd), STORE_QUARANTINED);
	assert_int_equal(bfd, -1);
	assert_int_equal(metrics_value(m), before + 1);
	assert_int_equal(store_stat(f->st, id, &len), STORE_QUARANTINED);
	free(data);
}

/* RAM: the upload is sealed at commit (the client's fd can no longer change
 * the bytes), and nothing appears in any directory. */
static void test_ram_sealed_and_diskless(void **state)
{
	fx *f = *state;
	uint8_t *data = make_data(5000, 11), id[B3_OUT_LEN];
	bool created;
	uint64_t h;
	int fd = -1;

	assert_int_equal(store_put_begin(f->st, OWNER, 5000, NULL, &h, &fd), STORE_OK);
	write_all(fd, data, 5000);
	assert_int_equal(store_put_commit(f->st, OWNER, h, 5000, NULL, false, id, &created), STORE_OK);
	errno = 0;
	assert_int_equal(pwrite(fd, "x", 1, 0), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(fd, 1), -1);
	close(fd);
	assert_int_equal(count_entries(f->dir), 0);
	free(data);
}

/* Two workers recording a type for one object at once (storage.c runs
 * META_SET on the commit pool on disk). Two uploads' types: exactly one is
 * recorded and both are told that one. An upload's and a read's: the
 * upload's is recorded in the end, whichever came first, and the upload is
 * told its own. The rule is applied inside the write transaction. */
typedef struct meta_racer {
	store             *st;
	const uint8_t     *id;
	const char        *want;
	bool               by_read;
	pthread_barrier_t *go;
	store_status       rc;
	char               got[STORE_CTYPE_MAX];
	bool               got_by_read;
} meta_racer;

static void *meta_race_run(void *arg)
{
	meta_racer *r = arg;
	uint64_t len;

	pthread_barrier_wait(r->go);
	r->rc = store_meta_set(r->st, r->id, r->want, r->by_read, &len, r->got, &r->got_by_read);
	return NULL;
}

static void test_meta_set_race(void **state)
{
	fx *f = *state;

	assert_true(store_writes_off_loop(f->st));
	for (unsigned i = 0; i < 64; i++) {
		uint8_t *data = make_data(KIB + i, 20u + i), id[B3_OUT_LEN];
		char t[STORE_CTYPE_MAX];
		pthread_barrier_t go;
		pthread_t th[2];
		bool read_race = i % 2 == 1;   /* r[1] a read's sniffed type */
		meta_racer r[2] = {
			{ .st = f->st, .id = id, .want = "text/plain", .go = &go },
			{ .st = f->st, .id = id, .want = "image/png", .by_read = read_race, .go = &go },
		};
		bool created, by_read;
		uint64_t len;

		assert_int_equal(put(f->st, data, KIB + i, NULL, id, &created), STORE_OK);
		assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
		for (int k = 0; k < 2; k++)
			assert_int_equal(pthread_create(&th[k], NULL, meta_race_run, &r[k]), 0);
		for (int k = 0; k < 2; k++)
			pthread_join(th[k], NULL);
		pthread_barrier_destroy(&go);
		assert_int_equal(store_meta_get(f->st, id, &len, t, &by_read), STORE_OK);
		for (int k = 0; k < 2; k++)
			assert_int_equal(r[k].rc, STORE_OK);
		if (read_race) {
			assert_string_equal(t, "text/plain");
			assert_false(by_read);
			assert_string_equal(r[0].got, "text/plain");
		} else {
			assert_string_equal(r[0].got, t);
			assert_string_equal(r[1].got, t);
			assert_true(strcmp(t, "text/plain") == 0 || strcmp(t, "image/png") == 0);
		}
		free(data);
	}
}

#define BOTH(fn) \
	cmocka_unit_test_setup_teardown(fn, setup_disk, teardown), \
	cmocka_unit_test_setup_teardown(fn, setup_ram, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_roundtrip_sizes),
		cmocka_unit_test_setup_teardown(test_roundtrip_sizes, setup_disk_named, teardown),
		BOTH(test_duplicate),
		BOTH(test_expect_mismatch),
		BOTH(test_length_and_caps),
		BOTH(test_upload_slots_and_owners),
		cmocka_unit_test_setup_teardown(test_upload_slots_and_owners, setup_disk_named, teardown),
		BOTH(test_upload_shares),
		BOTH(test_upload_share_long_keys),
		BOTH(test_quarantine),
		BOTH(test_meta_type),
		BOTH(test_meta_read_type),
		cmocka_unit_test_setup_teardown(test_meta_set_race, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_crash_sweep, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_crash_sweep, setup_disk_named, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_blob, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_ram_sealed_and_diskless, setup_ram, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
