/*
 * test_objstore.c — verify-before-serve and the upload writer on real files:
 * a blob and outboard built with b3tree_builder into temp files pass
 * objv_open and every objv_load; a flipped blob byte fails its group
 * and only that group; a wrong length, a short or flipped outboard fail
 * objv_open with the reason the services log; a blob cut short after open
 * fails its last group. objput writes, caps and commits; integrity failures
 * are counted; the storage socket path is built or refused. The handle
 * cache (objcache.h) keeps a handle only under a fresh stamp, drops them
 * all when the removal epoch moves, stays within its entry bound, still
 * reads and checks every group of a kept handle (a byte flipped after it
 * was kept is caught), and lends aligned group buffers that come back.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <event2/event.h>

#include "core/metrics/metrics.h"
#include "core/objects/objcache.h"
#include "core/objects/objcache_test.h"
#include "core/objects/objstore.h"
#include "lib/b3tree.h"
#include "lib/b3tree_test.h"

#define GROUP   B3TREE_GROUP_LEN
#define OBJ_LEN (3u * GROUP + 5u)   /* four groups, the last partial */

typedef struct fixture {
	char     dir[64], blob_path[96], ob_path[96];
	uint8_t *data;
	uint64_t len;
	uint8_t  id[B3_OUT_LEN];
} fixture;

static void write_file(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* Blob and outboard of len pseudo-random bytes, in dir. */
static void build(fixture *F, uint64_t len)
{
	size_t oblen = b3tree_outboard_len(len);
	uint8_t *ob = malloc(oblen);
	b3tree_builder *b = b3tree_builder_new(ob, oblen);
	uint32_t x = 2463534242u;

	assert_non_null(b);
	F->len = len;
	F->data = malloc(len ? len : 1);
	for (uint64_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		F->data[i] = (uint8_t)x;
	}
	assert_int_equal(b3tree_builder_update(b, F->data, len), 0);
	assert_int_equal(b3tree_builder_finish(b, F->id), 0);
	write_file(F->blob_path, F->data, len);
	write_file(F->ob_path, ob, oblen);
	b3tree_builder_free(b);
	free(ob);
}

static int setup(void **state)
{
	fixture *F = calloc(1, sizeof *F);

	snprintf(F->dir, sizeof F->dir, "/tmp/mn-objstore-XXXXXX");
	if (!mkdtemp(F->dir))
		return -1;
	snprintf(F->blob_path, sizeof F->blob_path, "%s/blob", F->dir);
	snprintf(F->ob_path, sizeof F->ob_path, "%s/outboard", F->dir);
	build(F, OBJ_LEN);
	*state = F;
	return 0;
}

static int teardown(void **state)
{
	fixture *F = *state;

	unlink(F->blob_path);
	unlink(F->ob_path);
	rmdir(F->dir);
	free(F->data);
	free(F);
	return 0;
}

/* objv_open on fresh fds of the fixture's files, against len. */
static objv_result open_v(fixture *F, objv *v, uint64_t len, const char **why)
{
	int blob = open(F->blob_path, O_RDONLY), ob = open(F->ob_path, O_RDONLY);

	assert_true(blob >= 0 && ob >= 0);
	objv_init(v, NULL);
	objv_adopt(v, blob, ob);
	*why = NULL;
	return objv_open(v, NULL, F->id, len, why);
}

/* Flip one byte of a file at off. */
static void flip(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t c;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x01;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

/* objv_load of group gi; its bytes, whole, in *p and *n. */
static objv_result load(objv *v, uint64_t gi, const uint8_t **p, size_t *n, const char **why)
{
	objv_result rc = objv_load(v, gi * GROUP, why);

	*p = NULL;   /* set on failure too: the static analyzer does not know a */
	*n = 0;      /* failed cmocka assert longjmps out of the test */
	if (rc == OBJV_OK)
		*p = objv_bytes(v, gi * GROUP, UINT64_MAX, n);
	return rc;
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

static void test_good_object(void **state)
{
	fixture *F = *state;
	objv v;
	const char *why;
	const uint8_t *p;
	size_t glen;
	int blob_fd;

	assert_int_equal(open_v(F, &v, F->len, &why), OBJV_OK);
	for (uint64_t gi = 0; gi < 4; gi++) {
		assert_int_equal(load(&v, gi, &p, &glen, &why), OBJV_OK);
		assert_int_equal(glen, gi < 3 ? GROUP : 5u);
		assert_memory_equal(p, F->data + gi * GROUP, glen);
	}
	/* Inside the held group: no read; bytes from an offset, capped. */
	assert_int_equal(objv_load(&v, 3 * GROUP + 2, &why), OBJV_OK);
	p = objv_bytes(&v, 3 * GROUP + 2, 2, &glen);
	assert_int_equal(glen, 2);
	assert_memory_equal(p, F->data + 3 * GROUP + 2, 2);
	/* Past the end: no group to read. */
	assert_int_equal(load(&v, 4, &p, &glen, &why), OBJV_INTEGRITY);
	assert_string_equal(why, "blob shorter than its length");
	blob_fd = v.blob;
	objv_close(&v);
	assert_false(fd_is_open(blob_fd));
	assert_int_equal(v.blob, -1);
	objv_close(&v);    /* idempotent */
	objv_close(NULL);
}

static void test_one_group_objects(void **state)
{
	fixture *F = *state;
	static const uint64_t lens[] = { 0, 1, GROUP };
	objv v;
	const char *why;
	const uint8_t *p;
	size_t glen;

	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		free(F->data);
		build(F, lens[i]);
		assert_int_equal(open_v(F, &v, F->len, &why), OBJV_OK);
		assert_int_equal(load(&v, 0, &p, &glen, &why), OBJV_OK);
		assert_int_equal(glen, lens[i]);
		objv_close(&v);
		if (lens[i]) {
			flip(F->blob_path, (off_t)lens[i] - 1);
			assert_int_equal(open_v(F, &v, F->len, &why), OBJV_OK);
			assert_int_equal(load(&v, 0, &p, &glen, &why), OBJV_INTEGRITY);
			assert_string_equal(why, "group hash mismatch");
			objv_close(&v);
		}
	}
}

static void test_flipped_blob_byte_fails_only_its_group(void **state)
{
	fixture *F = *state;
	objv v;
	const char *why;
	const uint8_t *p;
	size_t glen;

	flip(F->blob_path, (off_t)(GROUP + 1234));
	/* The outboard is untouched: open reads no blob byte. */
	assert_int_equal(open_v(F, &v, F->len, &why), OBJV_OK);
	for (uint64_t gi = 0; gi < 4; gi++) {
		why = NULL;
		if (gi == 1) {
			assert_int_equal(load(&v, gi, &p, &glen, &why), OBJV_INTEGRITY);
			assert_string_equal(why, "group hash mismatch");
		} else {
			assert_int_equal(load(&v, gi, &p, &glen, &why), OBJV_OK);
			assert_null(why);
		}
	}
	objv_close(&v);
}

static void test_wrong_length(void **state)
{
	fixture *F = *state;
	objv v;
	const char *why;

	/* Same group count, so only the size check can catch it. */
	assert_int_equal(open_v(F, &v, F->len - 1, &why), OBJV_INTEGRITY);
	assert_string_equal(why, "blob or outboard size differs from the stored length");
	objv_close(&v);
	assert_int_equal(open_v(F, &v, F->len + GROUP, &why), OBJV_INTEGRITY);
	assert_string_equal(why, "blob or outboard size differs from the stored length");
	objv_close(&v);
}

static void test_truncated_outboard(void **state)
{
	fixture *F = *state;
	objv v;
	const char *why;

	assert_int_equal(truncate(F->ob_path, (off_t)b3tree_outboard_len(F->len) - 1), 0);
	assert_int_equal(open_v(F, &v, F->len, &why), OBJV_INTEGRITY);
	assert_string_equal(why, "blob or outboard size differs from the stored length");
	objv_close(&v);
}

static void test_flipped_outboard(void **state)
{
	fixture *F = *state;
	objv v;
	const char *why;

	flip(F->ob_path, 2 * B3TREE_CV_LEN + 7);
	assert_int_equal(open_v(F, &v, F->len, &why), OBJV_INTEGRITY);
	assert_string_equal(why, "outboard does not hash to the id");
	objv_close(&v);
}

static void test_blob_cut_after_open(void **state)
{
	fixture *F = *state;
	objv v;
	const char *why;
	const uint8_t *p;
	size_t glen;

	assert_int_equal(open_v(F, &v, F->len, &why), OBJV_OK);
	assert_int_equal(truncate(F->blob_path, (off_t)F->len - 1), 0);
	assert_int_equal(load(&v, 0, &p, &glen, &why), OBJV_OK);
	assert_int_equal(load(&v, 3, &p, &glen, &why), OBJV_INTEGRITY);
	assert_string_equal(why, "blob shorter than its length");
	objv_close(&v);
}

static void test_bad_fds(void **state)
{
	fixture *F = *state;
	objv v;
	const char *why = NULL;

	objv_init(&v, NULL);
	assert_int_equal(objv_open(&v, NULL, F->id, F->len, &why), OBJV_INTERNAL);
	assert_string_equal(why, "cannot stat the object");
	objv_close(&v);
}

static void test_integrity_fail_counts(void **state)
{
	fixture *F = *state;
	metrics_series *mi = metrics_get("integrity_fail_total", "object=\"blob\"");
	metrics_series *mr = metrics_get("rejected_total", "reason=\"integrity\"");
	uint64_t bi = metrics_value(mi), br = metrics_value(mr);
	struct event_base *base = event_base_new();
	stor_client *c = stor_client_new(base, "/nonexistent/storage.sock");

	assert_non_null(c);
	objstore_integrity_fail(c, NULL, F->id, "group hash mismatch", "0123456789abcdef");
	assert_int_equal(metrics_value(mi), bi + 1);
	assert_int_equal(metrics_value(mr), br + 1);
	stor_client_free(c);
	event_base_free(base);
}

static int g_commit_status;

static void on_commit(const stor_result *res, void *arg)
{
	(void)arg;
	g_commit_status = res->status;
}

static void test_objput(void **state)
{
	fixture *F = *state;
	struct event_base *base = event_base_new();
	stor_client *c = stor_client_new(base, "/nonexistent/storage.sock");
	int fd = open(F->blob_path, O_RDWR | O_TRUNC);
	stor_result res = { .status = 200, .handle = 7, .fds = { fd, -1 } };
	objput w;
	struct stat st;

	assert_non_null(c);
	assert_true(fd >= 0);
	objput_init(&w, c, 2 * GROUP + 10);
	assert_false(objput_has_fd(&w));
	objput_begun(&w, &res);
	assert_true(objput_has_fd(&w));
	/* A piece larger than OBJSTORE_PIECE goes out in several pwrites. */
	assert_int_equal(objput_write(&w, F->data, 2 * GROUP), OBJPUT_OK);
	assert_int_equal(objput_write(&w, F->data + 2 * GROUP, 10), OBJPUT_OK);
	assert_int_equal(w.written, 2 * GROUP + 10);
	/* Past the cap: refused whole, nothing written. */
	assert_int_equal(objput_write(&w, F->data, 1), OBJPUT_TOO_LARGE);
	assert_int_equal(w.written, 2 * GROUP + 10);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 2 * GROUP + 10);
	g_commit_status = 0;
	objput_commit(&w, NULL, on_commit, NULL);
	assert_false(fd_is_open(fd));
	assert_false(w.have_handle);
	for (int i = 0; i < 200 && !g_commit_status; i++) {
		(void)event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(10000);
	}
	assert_int_equal(g_commit_status, 503);   /* no storage at that path */
	objput_abort(&w);                         /* handle consumed: nothing to do */
	stor_client_free(c);
	event_base_free(base);
}

static void test_objput_io_error(void **state)
{
	fixture *F = *state;
	int fd = open(F->blob_path, O_RDONLY);
	stor_result res = { .status = 200, .handle = 1, .fds = { fd, -1 } };
	stor_result refused = { .status = 503, .fds = { -1, -1 } };
	objput w;

	assert_true(fd >= 0);
	objput_init(&w, NULL, 100);
	objput_begun(&w, &refused);
	assert_false(objput_has_fd(&w));
	objput_begun(&w, &res);
	assert_int_equal(objput_write(&w, F->data, 10), OBJPUT_IO);
	assert_int_equal(w.written, 0);
	w.have_handle = false;   /* no client to abort through */
	objput_abort(&w);
	assert_false(fd_is_open(fd));
}

static void test_client_path(void **state)
{
	struct event_base *base = event_base_new();
	mn_config *cfg = calloc(1, sizeof *cfg);
	stor_client *c;

	(void)state;
	snprintf(cfg->runtime_dir, sizeof cfg->runtime_dir, "/tmp/run");
	assert_non_null(c = objstore_client_new(base, cfg));
	stor_client_free(c);
	cfg->runtime_dir[0] = '\0';
	snprintf(cfg->data_dir, sizeof cfg->data_dir, "./var");
	assert_non_null(c = objstore_client_new(base, cfg));
	stor_client_free(c);
	/* Longer than sun_path (108 bytes): refused, not truncated. */
	memset(cfg->runtime_dir, 'd', 100);
	cfg->runtime_dir[0] = '/';
	cfg->runtime_dir[100] = '\0';
	assert_null(objstore_client_new(base, cfg));
	free(cfg);
	event_base_free(base);
}

/* ---- the handle cache --------------------------------------------------- */

/* A handle for the fixture's object through v (cache c, stamp st). */
static objv_result open_c(fixture *F, objv *v, objcache *c, const objcache_stamp *st,
                          const char **why)
{
	int blob = open(F->blob_path, O_RDONLY), ob = open(F->ob_path, O_RDONLY);

	assert_true(blob >= 0 && ob >= 0);
	objv_init(v, c);
	objv_adopt(v, blob, ob);
	*why = NULL;
	return objv_open(v, st, F->id, F->len, why);
}

static void test_cache_keeps_under_fresh_stamp(void **state)
{
	fixture *F = *state;
	_Atomic uint64_t epoch = 7;
	objcache *c = objcache_new(NULL, 0);
	objcache_stamp st;
	objcache_info ci;
	const char *why;
	objv v;
	objh *h;

	assert_non_null(c);
	/* No epoch: nothing can be kept. */
	st = objcache_stamp_now(c);
	assert_false(st.ok);
	assert_int_equal(open_c(F, &v, c, &st, &why), OBJV_OK);
	objv_close(&v);
	assert_null(objcache_find(c, F->id));
	/* With one: kept, found, and read like a fresh open. */
	objcache_test_watch(c, &epoch);
	st = objcache_stamp_now(c);
	assert_true(st.ok);
	assert_int_equal(open_c(F, &v, c, &st, &why), OBJV_OK);
	objv_close(&v);
	h = objcache_find(c, F->id);
	assert_non_null(h);
	objv_init(&v, c);
	objv_attach(&v, h);
	for (uint64_t gi = 0; gi < 4; gi++) {
		const uint8_t *p;
		size_t n;

		assert_int_equal(objv_load(&v, gi * GROUP, &why), OBJV_OK);
		p = objv_bytes(&v, gi * GROUP, UINT64_MAX, &n);
		assert_int_equal(n, gi < 3 ? GROUP : 5);
		assert_memory_equal(p, F->data + gi * GROUP, n);
	}
	objv_close(&v);
	objcache_stats(c, &ci);
	assert_int_equal(ci.entries, 1);
	assert_int_equal(ci.hits, 1);
	assert_int_equal(ci.cv_bytes, b3tree_outboard_len(F->len));
	/* A stamp taken before a removal: the answer is not kept. */
	st = objcache_stamp_now(c);
	epoch++;
	assert_null(objcache_find(c, F->id));   /* the move dropped the first one */
	assert_int_equal(open_c(F, &v, c, &st, &why), OBJV_OK);
	objv_close(&v);
	assert_null(objcache_find(c, F->id));
	objcache_stats(c, &ci);
	assert_int_equal(ci.entries, 0);
	assert_int_equal(ci.flushes, 1);
	objcache_free(c);
}

/* A kept handle trusts its outboard copy, never the blob: a byte flipped
 * after the handle was kept fails its group on the next read. */
static void test_cache_still_checks_every_group(void **state)
{
	fixture *F = *state;
	_Atomic uint64_t epoch = 0;
	objcache *c = objcache_new(NULL, 0);
	objcache_stamp st;
	const char *why;
	objv v;

	objcache_test_watch(c, &epoch);
	st = objcache_stamp_now(c);
	assert_int_equal(open_c(F, &v, c, &st, &why), OBJV_OK);
	objv_close(&v);
	flip(F->blob_path, 2 * GROUP + 9);
	objv_init(&v, c);
	objv_attach(&v, objcache_find(c, F->id));
	assert_true(objv_is_open(&v));
	assert_int_equal(objv_load(&v, GROUP, &why), OBJV_OK);
	assert_int_equal(objv_load(&v, 2 * GROUP, &why), OBJV_INTEGRITY);
	assert_string_equal(why, "group hash mismatch");
	objv_close(&v);
	/* the service forgets it at once (storage's epoch follows) */
	objcache_forget(c, F->id);
	assert_null(objcache_find(c, F->id));
	objcache_free(c);
}

/* At most OBJCACHE_MAX_ENTRIES handles: the least recently used go first;
 * a handle a request still holds outlives its eviction. */
static void test_cache_bound(void **state)
{
	fixture *F = *state, *G = calloc(1, sizeof *G);
	_Atomic uint64_t epoch = 0;
	objcache *c = objcache_new(NULL, 0);
	objcache_info ci;
	uint8_t first[B3_OUT_LEN];
	objh *held = NULL;
	const char *why;
	objv v;

	objcache_test_watch(c, &epoch);
	memcpy(G, F, sizeof *G);
	for (unsigned i = 0; i <= OBJCACHE_MAX_ENTRIES; i++) {
		objcache_stamp st = objcache_stamp_now(c);

		build(G, 100 + i);   /* one-group objects, all different */
		G->data = (free(G->data), NULL);
		assert_int_equal(open_c(G, &v, c, &st, &why), OBJV_OK);
		objv_close(&v);
		if (i == 0) {
			memcpy(first, G->id, sizeof first);
			held = objcache_find(c, first);   /* a request still reading it */
			assert_non_null(held);
		}
	}
	objcache_stats(c, &ci);
	assert_int_equal(ci.entries, OBJCACHE_MAX_ENTRIES);
	assert_null(objcache_find(c, first));     /* the oldest went */
	objh_unref(objcache_find(c, G->id));      /* the newest stayed */
	objv_init(&v, c);
	objv_attach(&v, held);                    /* still readable after eviction */
	objv_close(&v);
	objcache_free(c);
	free(G);
}

/* Group buffers: aligned to their size, lent and given back by a pointer
 * anywhere inside (the evbuffer reference's cleanup), reused. */
static void test_cache_buffers(void **state)
{
	fixture *F = *state;
	objcache *c = objcache_new(NULL, 0);
	objcache_info ci;
	const uint8_t *p;
	uint8_t *b;
	const char *why;
	size_t n;
	objv v;

	b = objcache_buf_get(c);
	assert_non_null(b);
	assert_int_equal((uintptr_t)b % GROUP, 0);
	objcache_buf_release(b + 1000, 10, c);
	objcache_stats(c, &ci);
	assert_int_equal(ci.pool_free, 1);
	assert_int_equal(ci.bufs_out, 0);
	/* objv_take hands the verified group's own buffer over */
	assert_int_equal(open_c(F, &v, c, NULL, &why), OBJV_OK);
	assert_int_equal(objv_load(&v, GROUP + 3, &why), OBJV_OK);
	p = objv_take(&v, GROUP + 3, 100, &n);
	assert_int_equal(n, 100);
	assert_ptr_equal(p, b + 3);               /* the pooled buffer, reused */
	assert_memory_equal(p, F->data + GROUP + 3, 100);
	objcache_stats(c, &ci);
	assert_int_equal(ci.bufs_out, 1);
	objv_close(&v);                           /* v no longer owns it */
	objcache_stats(c, &ci);
	assert_int_equal(ci.bufs_out, 1);
	objcache_buf_release(p, n, c);
	objcache_stats(c, &ci);
	assert_int_equal(ci.bufs_out, 0);
	assert_int_equal(ci.pool_free, 1);
	/* freed with a buffer still in some output: it comes back after */
	b = objcache_buf_get(c);
	objcache_free(c);
	objcache_buf_release(b + 7, 1, c);   /* frees the cache (ASan: no leak, no use after free) */
}

/* ---- verified groups ---------------------------------------------------- */

/* A write to the blob as the node would see it: the byte and a later mtime
 * (a flip within the same clock tick as the handle's fstat keeps the file's
 * times; objcache.h says so). */
static void flip_later(const char *path, off_t off)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, 0 } };
	struct stat sb;

	assert_int_equal(stat(path, &sb), 0);
	flip(path, off);
	ts[1].tv_sec = sb.st_mtim.tv_sec + 1;
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* A kept handle with c's epoch: opened under a fresh stamp. */
static objh *kept_handle(fixture *F, objcache *c)
{
	objcache_stamp st = objcache_stamp_now(c);
	const char *why;
	objv v;

	assert_true(st.ok);
	assert_int_equal(open_c(F, &v, c, &st, &why), OBJV_OK);
	objv_close(&v);
	return objcache_find(c, F->id);
}

/* Load group gi through a new reader of a kept handle; its bytes checked. */
static objv_result load_kept(fixture *F, objcache *c, uint64_t gi, objv *v)
{
	objh *h = objcache_find(c, F->id);
	const char *why;
	objv_result rc;

	assert_non_null(h);
	objv_init(v, c);
	objv_attach(v, h);
	rc = objv_load(v, gi * GROUP, &why);
	if (rc == OBJV_OK) {
		size_t n;
		const uint8_t *p = objv_bytes(v, gi * GROUP, UINT64_MAX, &n);

		assert_int_equal(n, gi < 3 ? GROUP : 5);
		assert_memory_equal(p, F->data + gi * GROUP, n);
	}
	return rc;
}

/* Groups that passed their check are served again from RAM (no read, no
 * hash: the counters say which); the least recently used slot goes when
 * the arena is full. */
static void test_verified_groups_kept(void **state)
{
	fixture *F = *state;
	_Atomic uint64_t epoch = 1;
	objcache *c = objcache_new(NULL, 2 * GROUP + GROUP / 2);   /* two slots */
	objcache_info ci;
	objv v;

	objcache_test_watch(c, &epoch);
	objh_unref(kept_handle(F, c));
	objcache_stats(c, &ci);
	assert_int_equal(ci.vslots, 2);
	for (uint64_t gi = 0; gi < 2; gi++) {   /* misses: read, checked, kept */
		assert_int_equal(load_kept(F, c, gi, &v), OBJV_OK);
		objv_close(&v);
	}
	objcache_stats(c, &ci);
	assert_int_equal(ci.vkept, 2);
	assert_int_equal(ci.vmisses, 2);
	assert_int_equal(ci.vhits, 0);
	for (uint64_t gi = 0; gi < 2; gi++) {   /* hits */
		assert_int_equal(load_kept(F, c, gi, &v), OBJV_OK);
		objv_close(&v);
	}
	objcache_stats(c, &ci);
	assert_int_equal(ci.vhits, 2);
	assert_int_equal(ci.vrefs, 0);
	/* A third group: the least recently used (group 0) makes room. */
	assert_int_equal(load_kept(F, c, 3, &v), OBJV_OK);
	objv_close(&v);
	assert_int_equal(load_kept(F, c, 1, &v), OBJV_OK);   /* still kept */
	objv_close(&v);
	objcache_stats(c, &ci);
	assert_int_equal(ci.vkept, 2);
	assert_int_equal(ci.vhits, 3);
	assert_int_equal(load_kept(F, c, 0, &v), OBJV_OK);   /* went: read again */
	objv_close(&v);
	objcache_stats(c, &ci);
	assert_int_equal(ci.vhits, 3);
	assert_int_equal(ci.vmisses, 4);
	/* The epoch moved (a quarantine somewhere): handles and groups go. */
	epoch++;
	assert_null(objcache_find(c, F->id));
	objcache_stats(c, &ci);
	assert_int_equal(ci.vkept, 0);
	objcache_free(c);
}

/* A write to the blob after its groups were kept: the next request reads
 * and checks again, and fails the flipped group. */
static void test_verified_groups_reread_after_write(void **state)
{
	fixture *F = *state;
	_Atomic uint64_t epoch = 0;
	objcache *c = objcache_new(NULL, 8 * GROUP);
	objcache_info ci;
	const char *why;
	objv v;

	objcache_test_watch(c, &epoch);
	objh_unref(kept_handle(F, c));
	for (uint64_t gi = 0; gi < 4; gi++) {
		assert_int_equal(load_kept(F, c, gi, &v), OBJV_OK);
		objv_close(&v);
	}
	flip_later(F->blob_path, 2 * GROUP + 9);
	assert_int_equal(load_kept(F, c, 1, &v), OBJV_OK);   /* dropped, read again: fine */
	assert_int_equal(objv_load(&v, 2 * GROUP, &why), OBJV_INTEGRITY);
	assert_string_equal(why, "group hash mismatch");
	objv_close(&v);
	objcache_stats(c, &ci);
	assert_int_equal(ci.vkept, 1);      /* group 1, read after the write */
	assert_int_equal(ci.vmisses, 6);
	assert_int_equal(ci.vrefs, 0);      /* the failed group's slot came back */
	/* Without a stamp (a private handle) nothing is kept or found. */
	assert_int_equal(open_c(F, &v, c, NULL, &why), OBJV_OK);
	assert_int_equal(objv_load(&v, GROUP, &why), OBJV_OK);
	objv_close(&v);
	objcache_stats(c, &ci);
	assert_int_equal(ci.vmisses, 6);
	objcache_free(c);
}

/* A slot in some output is never evicted or rewritten: while the only slot
 * is referenced, another group travels in a pool buffer; a slot dropped
 * while referenced (the epoch moved) is freed by its last reference, and so
 * is the cache freed with one still out. */
static void test_verified_groups_refs(void **state)
{
	fixture *F = *state;
	_Atomic uint64_t epoch = 0;
	objcache *c = objcache_new(NULL, GROUP);   /* one slot */
	objcache_info ci;
	const uint8_t *p, *q;
	const char *why;
	size_t n, m;
	objv v;

	objcache_test_watch(c, &epoch);
	objh_unref(kept_handle(F, c));
	assert_int_equal(load_kept(F, c, 0, &v), OBJV_OK);
	p = objv_take(&v, 10, 100, &n);          /* now the output's */
	objv_close(&v);
	assert_int_equal(load_kept(F, c, 1, &v), OBJV_OK);   /* no slot free: a pool buffer */
	q = objv_take(&v, GROUP, UINT64_MAX, &m);
	assert_true((uintptr_t)q - (uintptr_t)p >= GROUP || (uintptr_t)p - (uintptr_t)q >= GROUP);
	objv_close(&v);
	objcache_buf_release(q, m, c);
	objcache_stats(c, &ci);
	assert_int_equal(ci.vkept, 1);
	assert_int_equal(ci.vrefs, 1);
	assert_memory_equal(p, F->data + 10, 100);
	/* The epoch moves while the slot is out: an orphan until it is back. */
	epoch++;
	assert_null(objcache_find(c, F->id));
	objcache_stats(c, &ci);
	assert_int_equal(ci.vkept, 0);
	assert_int_equal(ci.vrefs, 1);
	assert_memory_equal(p, F->data + 10, 100);   /* untouched */
	objcache_buf_release(p, n, c);
	objh_unref(kept_handle(F, c));
	assert_int_equal(load_kept(F, c, 2, &v), OBJV_OK);   /* the slot is free again */
	objv_close(&v);
	objcache_stats(c, &ci);
	assert_int_equal(ci.vkept, 1);
	assert_int_equal(load_kept(F, c, 2, &v), OBJV_OK);
	p = objv_take(&v, 2 * GROUP, 1, &n);
	objv_close(&v);
	objcache_free(c);
	objcache_buf_release(p, n, c);   /* frees the cache (ASan: no leak, no use after free) */
	(void)why;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_object, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_group_objects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_blob_byte_fails_only_its_group, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_wrong_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_outboard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_outboard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_cut_after_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_integrity_fail_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_objput, setup, teardown),
		cmocka_unit_test_setup_teardown(test_objput_io_error, setup, teardown),
		cmocka_unit_test(test_client_path),
		cmocka_unit_test_setup_teardown(test_cache_keeps_under_fresh_stamp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_still_checks_every_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verified_groups_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verified_groups_reread_after_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verified_groups_refs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_buffers, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
