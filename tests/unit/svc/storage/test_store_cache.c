/* The store's cache (src/svc/storage/store.h "Cache copies"), both
 * backends: a cache commit is counted and not listed; an owned commit or a
 * PIN promotes it, a cache commit of an owned object leaves it owned;
 * eviction takes the oldest-fetched cache copies, never an owned object
 * nor the copy just stored, and an fd opened before stays readable; the
 * disk backend's accounting survives a re-open, and a lower limit at open
 * evicts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/b3tree.h"
#include "svc/storage/store.h"

#define KIB      1024u
#define OBJ      (100u * KIB)
#define OWNER    7u

typedef struct fx {
	char   dir[64];
	bool   ram;
	store *st;
} fx;

static store_limits limits_of(uint64_t cache_bytes)
{
	return (store_limits){ .max_object_bytes = 4u << 20, .max_uploads = 4,
	                       .cache_bytes = cache_bytes };
}

static uint8_t *make_data(size_t len, uint64_t seed)
{
	uint8_t *p = malloc(len);

	assert_non_null(p);
	for (size_t i = 0; i < len; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(seed >> 33);
	}
	return p;
}

static void fx_open(fx *f, uint64_t cache_bytes)
{
	char err[512] = "";
	store_limits lim = limits_of(cache_bytes);

	f->st = f->ram ? store_ram_new(&lim, err, sizeof err)
	               : store_disk_new(f->dir, &lim, 0, err, sizeof err);
	if (!f->st)
		fail_msg("store: %s", err);
}

static int setup(void **state, bool ram)
{
	fx *f = calloc(1, sizeof *f);

	if (!f)
		return -1;
	snprintf(f->dir, sizeof f->dir, "/tmp/mn-cache-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->ram = ram;
	fx_open(f, 250u * KIB);   /* two objects of OBJ fit, three do not */
	*state = f;
	return 0;
}

static int setup_disk(void **state) { return setup(state, false); }
static int setup_ram(void **state) { return setup(state, true); }

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	fx *f = *state;

	store_free(f->st);
	(void)nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Store OBJ bytes of seed as a cache copy or owned; returns created. */
static bool put(store *st, uint64_t seed, bool cache, uint8_t id[B3_OUT_LEN])
{
	uint8_t *data = make_data(OBJ, seed);
	bool created = false;
	uint64_t h;
	int fd = -1;

	assert_int_equal(store_put_begin(st, OWNER, OBJ, NULL, &h, &fd), STORE_OK);
	assert_int_equal(pwrite(fd, data, OBJ, 0), (ssize_t)OBJ);
	close(fd);
	assert_int_equal(store_put_commit(st, OWNER, h, OBJ, NULL, cache, id, &created), STORE_OK);
	free(data);
	return created;
}

static void expect_cache(store *st, uint64_t bytes, uint64_t objects, uint64_t evictions)
{
	store_cache_info ci;

	store_cache_stats(st, &ci);
	assert_int_equal(ci.bytes, bytes);
	assert_int_equal(ci.objects, objects);
	assert_int_equal(ci.evictions, evictions);
}

static bool listed(store *st, const uint8_t id[B3_OUT_LEN])
{
	uint8_t ids[16][B3_OUT_LEN];
	size_t n;
	bool more;

	assert_int_equal(store_list(st, NULL, ids, 16, &n, &more), STORE_OK);
	for (size_t i = 0; i < n; i++)
		if (memcmp(ids[i], id, B3_OUT_LEN) == 0)
			return true;
	return false;
}

static bool present(store *st, const uint8_t id[B3_OUT_LEN])
{
	uint64_t len;
	store_status rc = store_stat(st, id, &len);

	assert_true(rc == STORE_OK || rc == STORE_NOT_FOUND);
	return rc == STORE_OK;
}

static void test_commit_and_promote(void **state)
{
	fx *f = *state;
	uint8_t a[B3_OUT_LEN], b[B3_OUT_LEN], c[B3_OUT_LEN], unknown[B3_OUT_LEN] = { 3 };
	uint64_t len = 0;

	assert_true(put(f->st, 1, true, a));
	expect_cache(f->st, OBJ, 1, 0);
	assert_true(present(f->st, a));
	assert_false(listed(f->st, a));          /* not this node's to replicate */
	assert_false(put(f->st, 1, false, a));   /* a client PUT of it: promoted */
	expect_cache(f->st, 0, 0, 0);
	assert_true(listed(f->st, a));

	assert_true(put(f->st, 2, false, b));
	assert_false(put(f->st, 2, true, b));    /* a fetch of an owned object: still owned */
	expect_cache(f->st, 0, 0, 0);
	assert_true(listed(f->st, b));

	assert_true(put(f->st, 3, true, c));
	expect_cache(f->st, OBJ, 1, 0);
	assert_int_equal(store_pin(f->st, c, &len), STORE_OK);
	assert_int_equal(len, OBJ);
	expect_cache(f->st, 0, 0, 0);
	assert_true(listed(f->st, c));
	assert_int_equal(store_pin(f->st, c, &len), STORE_OK);   /* owned already */
	assert_int_equal(store_pin(f->st, unknown, &len), STORE_NOT_FOUND);

	/* a quarantined cache copy replaced by an owned commit leaves the cache */
	uint8_t d[B3_OUT_LEN];
	assert_true(put(f->st, 4, true, d));
	assert_int_equal(store_quarantine(f->st, d), STORE_OK);
	assert_int_equal(store_pin(f->st, d, &len), STORE_QUARANTINED);
	expect_cache(f->st, OBJ, 1, 0);
	assert_true(put(f->st, 4, false, d));
	expect_cache(f->st, 0, 0, 0);
	assert_true(listed(f->st, d));
}

/* Limit 250 KiB, objects of 100 KiB: the third cache copy evicts the first. */
static void test_eviction_order(void **state)
{
	fx *f = *state;
	uint8_t c1[B3_OUT_LEN], c2[B3_OUT_LEN], c3[B3_OUT_LEN], c4[B3_OUT_LEN], o[B3_OUT_LEN];
	uint64_t len;
	int bfd = -1, ofd = -1;

	assert_true(put(f->st, 10, false, o));   /* owned: never counted, never evicted */
	assert_true(put(f->st, 11, true, c1));
	assert_true(put(f->st, 12, true, c2));
	expect_cache(f->st, 2 * OBJ, 2, 0);
	assert_true(put(f->st, 13, true, c3));
	expect_cache(f->st, 2 * OBJ, 2, 1);
	assert_false(present(f->st, c1));
	assert_true(present(f->st, c2));
	assert_true(present(f->st, c3));
	assert_true(present(f->st, o));

	/* c2 is being served: its fds outlive its eviction */
	assert_int_equal(store_open(f->st, c2, &len, &bfd, &ofd), STORE_OK);
	assert_true(put(f->st, 14, true, c4));
	expect_cache(f->st, 2 * OBJ, 2, 2);
	assert_false(present(f->st, c2));
	uint8_t *want = make_data(OBJ, 12), *got = malloc(OBJ);
	assert_non_null(got);
	assert_int_equal(pread(bfd, got, OBJ, 0), (ssize_t)OBJ);
	assert_memory_equal(got, want, OBJ);
	close(bfd);
	close(ofd);
	free(want);
	free(got);

	/* a PIN takes c3 out of the cache: c4 and a new one fit, nothing goes */
	assert_int_equal(store_pin(f->st, c3, &len), STORE_OK);
	assert_true(put(f->st, 15, true, c1));
	expect_cache(f->st, 2 * OBJ, 2, 2);
	assert_true(present(f->st, c3));
	assert_true(present(f->st, o));

	/* a lower limit (reload): the next cache commit evicts down to it, but
	 * never the copy it just stored */
	store_limits lim = limits_of(0);
	store_set_limits(f->st, &lim);
	assert_true(put(f->st, 16, true, c2));
	expect_cache(f->st, OBJ, 1, 4);
	assert_true(present(f->st, c2));
	assert_false(present(f->st, c4));
	assert_false(present(f->st, c1));
	assert_true(present(f->st, c3));
	assert_true(present(f->st, o));
}

/* Disk: the totals are durable, and a limit lowered while closed is met at
 * open; the evicted object's files are gone. */
static void test_reopen(void **state)
{
	fx *f = *state;
	uint8_t c1[B3_OUT_LEN], c2[B3_OUT_LEN], o[B3_OUT_LEN];
	char hex[B3_HEX_LEN + 1], path[256];
	struct stat sb;

	assert_true(put(f->st, 21, true, c1));
	assert_true(put(f->st, 22, true, c2));
	assert_true(put(f->st, 23, false, o));
	store_free(f->st);
	fx_open(f, 250u * KIB);
	expect_cache(f->st, 2 * OBJ, 2, 0);
	assert_false(listed(f->st, c1));
	assert_true(listed(f->st, o));
	store_free(f->st);
	fx_open(f, OBJ);
	expect_cache(f->st, OBJ, 1, 1);
	assert_false(present(f->st, c1));
	assert_true(present(f->st, c2));
	assert_true(present(f->st, o));
	b3_hex(c1, hex);
	snprintf(path, sizeof path, "%s/objects/%.2s/%s", f->dir, hex, hex);
	assert_int_equal(stat(path, &sb), -1);
	snprintf(path, sizeof path, "%s/objects/%.2s/%s.ob", f->dir, hex, hex);
	assert_int_equal(stat(path, &sb), -1);
	/* and the promotion is durable too */
	uint64_t len;
	assert_int_equal(store_pin(f->st, c2, &len), STORE_OK);
	store_free(f->st);
	fx_open(f, 0);
	expect_cache(f->st, 0, 0, 0);
	assert_true(present(f->st, c2));
	assert_true(listed(f->st, c2));
}

#define BOTH(fn) \
	cmocka_unit_test_setup_teardown(fn, setup_disk, teardown), \
	cmocka_unit_test_setup_teardown(fn, setup_ram, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_commit_and_promote),
		BOTH(test_eviction_order),
		cmocka_unit_test_setup_teardown(test_reopen, setup_disk, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
