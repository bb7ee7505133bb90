/* The index tables (src/svc/index/index_db.h), both backends through one
 * set of cases: a publish signs seq 1, then held + 1; the history keeps the
 * newest `history` records oldest first; a record from elsewhere with seq
 * lower than or equal to the held one is stale and changes nothing; a
 * higher one becomes current; a new name past max_names is full (the disk
 * table after a reopen too), while a ram cache with eviction forgets the
 * least recently used name instead. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "svc/index/index_db.h"

static node_identity me, other;
static char dir[64];

static int setup(void **state)
{
	char err[128];

	(void)state;
	snprintf(dir, sizeof dir, "/tmp/mn-index-db-XXXXXX");
	return (mkdtemp(dir) && identity_generate(&me, err, sizeof err) == 0 &&
	        identity_generate(&other, err, sizeof err) == 0) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	identity_free(&me);
	identity_free(&other);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static index_name nm(const char *s)
{
	index_name n;

	index_name_set(&n, s, strlen(s));
	return n;
}

static index_db_status publish(index_db *db, const char *name, uint8_t cidb, uint64_t floor,
                               name_record *out, bool *created)
{
	index_db_write w;

	memset(&w, 0, sizeof w);
	w.publish = true;
	w.name = nm(name);
	memset(w.cid, cidb, sizeof w.cid);
	w.floor = floor;
	w.now = 1700000000u;
	w.id = &me;
	index_db_write_run(db, &w);
	if (out)
		*out = w.out;
	if (created)
		*created = w.created;
	return w.status;
}

static index_db_status import(index_db *db, const char *name, uint64_t seq, bool *created)
{
	index_db_write w;
	uint8_t cid[32];

	memset(&w, 0, sizeof w);
	memset(cid, 0xee, sizeof cid);
	assert_int_equal(name_record_make(&w.rec, name, strlen(name), cid, seq, 1, &other), 0);
	index_db_write_run(db, &w);
	if (created)
		*created = w.created;
	return w.status;
}

static index_db *open_db(bool disk, uint32_t max_names, uint32_t history, bool evict)
{
	index_db_limits lim = { .max_names = max_names, .history = history, .evict = evict };
	char err[INDEX_DB_ERR_MAX];
	index_db *db = disk ? index_db_disk_new(dir, &lim, err, sizeof err)
	                    : index_db_ram_new(&lim, err, sizeof err);

	assert_non_null(db);
	return db;
}

static void cases_publish_and_history(bool disk)
{
	index_db *db = open_db(disk, 100, 3, false);
	index_name a = nm("alice/home");
	name_record r, h[INDEX_HISTORY_MAX];
	bool created;
	size_t n;

	assert_int_equal(index_db_get(db, &a, &r), INDEX_DB_NOT_FOUND);
	assert_int_equal(index_db_history(db, &a, h, INDEX_HISTORY_MAX, &n), INDEX_DB_NOT_FOUND);
	assert_int_equal(publish(db, "alice/home", 1, 0, &r, &created), INDEX_DB_OK);
	assert_true(created);
	assert_int_equal(r.seq, 1);
	assert_int_equal(name_record_verify(&r), NAME_REC_OK);
	assert_memory_equal(r.node_pk, me.pk, 32);
	for (uint8_t i = 2; i <= 5; i++) {
		assert_int_equal(publish(db, "alice/home", i, 0, &r, &created), INDEX_DB_OK);
		assert_false(created);
		assert_int_equal(r.seq, i);
	}
	assert_int_equal(index_db_get(db, &a, &r), INDEX_DB_OK);
	assert_int_equal(r.seq, 5);
	assert_int_equal(r.cid[0], 5);
	/* history 3: seqs 3, 4, 5, oldest first */
	assert_int_equal(index_db_history(db, &a, h, INDEX_HISTORY_MAX, &n), INDEX_DB_OK);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(h[i].seq, 3 + i);
		assert_int_equal(h[i].cid[0], 3 + i);
		assert_int_equal(name_record_verify(&h[i]), NAME_REC_OK);
	}
	/* at most max, the newest */
	assert_int_equal(index_db_history(db, &a, h, 2, &n), INDEX_DB_OK);
	assert_int_equal(n, 2);
	assert_int_equal(h[0].seq, 4);
	assert_int_equal(h[1].seq, 5);
	/* a floor (a cached seq) lifts the next seq */
	assert_int_equal(publish(db, "alice/home", 9, 40, &r, NULL), INDEX_DB_OK);
	assert_int_equal(r.seq, 41);
	assert_int_equal(index_db_count(db), 1);
	index_db_free(db);
}

static void cases_import(bool disk)
{
	index_db *db = open_db(disk, 100, 4, false);
	index_name b = nm("bob");
	name_record r;
	bool created;

	assert_int_equal(import(db, "bob", 7, &created), INDEX_DB_OK);
	assert_true(created);
	/* no rollback: lower or equal seq is stale and changes nothing */
	assert_int_equal(import(db, "bob", 7, NULL), INDEX_DB_STALE);
	assert_int_equal(import(db, "bob", 3, NULL), INDEX_DB_STALE);
	assert_int_equal(index_db_get(db, &b, &r), INDEX_DB_OK);
	assert_int_equal(r.seq, 7);
	assert_memory_equal(r.node_pk, other.pk, 32);
	assert_int_equal(import(db, "bob", 8, &created), INDEX_DB_OK);
	assert_false(created);
	/* a publish here continues above what came in */
	assert_int_equal(publish(db, "bob", 1, 0, &r, NULL), INDEX_DB_OK);
	assert_int_equal(r.seq, 9);
	assert_int_equal(import(db, "bob", 9, NULL), INDEX_DB_STALE);
	index_db_free(db);
}

static void cases_full(bool disk)
{
	index_db *db = open_db(disk, 2, 2, false);
	index_name c = nm("c");

	assert_int_equal(publish(db, "a", 1, 0, NULL, NULL), INDEX_DB_OK);
	assert_int_equal(import(db, "b", 1, NULL), INDEX_DB_OK);
	assert_int_equal(publish(db, "c", 1, 0, NULL, NULL), INDEX_DB_FULL);
	assert_int_equal(import(db, "c", 1, NULL), INDEX_DB_FULL);
	/* names held may still change */
	assert_int_equal(publish(db, "a", 2, 0, NULL, NULL), INDEX_DB_OK);
	assert_int_equal(index_db_count(db), 2);
	name_record r;
	assert_int_equal(index_db_get(db, &c, &r), INDEX_DB_NOT_FOUND);
	index_db_free(db);
}

static void test_ram(void **state)
{
	(void)state;
	cases_publish_and_history(false);
	cases_import(false);
	cases_full(false);
}

static void test_disk(void **state)
{
	char cmd[128];

	(void)state;
	cases_publish_and_history(true);
	/* It persists: the next open continues the seq. */
	index_db *db = open_db(true, 100, 3, false);
	name_record r;
	assert_int_equal(publish(db, "alice/home", 1, 0, &r, NULL), INDEX_DB_OK);
	assert_int_equal(r.seq, 42);
	index_db_free(db);
	snprintf(cmd, sizeof cmd, "rm -rf %s/index", dir);
	assert_int_equal(system(cmd), 0);
	cases_import(true);
	assert_int_equal(system(cmd), 0);
	cases_full(true);
	assert_int_equal(system(cmd), 0);
}

/* The cache: full → the least recently used name goes. */
static void test_ram_evicts(void **state)
{
	index_db *db = open_db(false, 2, 1, true);
	index_name a = nm("a"), b = nm("b"), c = nm("c");
	name_record r;

	(void)state;
	assert_int_equal(import(db, "a", 1, NULL), INDEX_DB_OK);
	assert_int_equal(import(db, "b", 1, NULL), INDEX_DB_OK);
	assert_int_equal(index_db_get(db, &a, &r), INDEX_DB_OK);   /* a used: b is oldest */
	assert_int_equal(import(db, "c", 5, NULL), INDEX_DB_OK);
	assert_int_equal(index_db_count(db), 2);
	assert_int_equal(index_db_get(db, &b, &r), INDEX_DB_NOT_FOUND);
	assert_int_equal(index_db_get(db, &a, &r), INDEX_DB_OK);
	assert_int_equal(index_db_get(db, &c, &r), INDEX_DB_OK);
	assert_int_equal(r.seq, 5);
	index_db_forget(db, &c);
	assert_int_equal(index_db_get(db, &c, &r), INDEX_DB_NOT_FOUND);
	assert_int_equal(index_db_count(db), 1);
	/* history 1: the cache keeps only the current record */
	assert_int_equal(import(db, "a", 2, NULL), INDEX_DB_OK);
	name_record h[4];
	size_t n;
	assert_int_equal(index_db_history(db, &a, h, 4, &n), INDEX_DB_OK);
	assert_int_equal(n, 1);
	assert_int_equal(h[0].seq, 2);
	index_db_free(db);
}

/* A walk in batches meets every name once, then starts over. */
static void cases_scan(bool disk)
{
	index_db *db = open_db(disk, 100, 2, false);
	index_db_cursor cur;
	name_record out[7];
	bool seen[40] = { false };
	char name[16];
	size_t total = 0, n;

	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof name, "n%02d", i);
		assert_int_equal(publish(db, name, (uint8_t)i, 0, NULL, NULL), INDEX_DB_OK);
	}
	assert_int_equal(publish(db, "n07", 99, 0, NULL, NULL), INDEX_DB_OK);   /* seq 2 */
	memset(&cur, 0, sizeof cur);
	do {
		n = index_db_scan(db, &cur, out, 7);
		for (size_t i = 0; i < n; i++) {
			int k = atoi(out[i].name + 1);
			assert_false(seen[k]);
			seen[k] = true;
			assert_int_equal(out[i].seq, k == 7 ? 2 : 1);   /* the current record */
			assert_int_equal(name_record_verify(&out[i]), NAME_REC_OK);
		}
		total += n;
	} while (n == 7 && total < 80);
	assert_int_equal(total, 40);
	/* the walk ended: the next batch starts over */
	assert_int_equal(index_db_scan(db, &cur, out, 7), 7);
	assert_int_equal(index_db_scan(db, &cur, out, 0), 0);
	index_db_free(db);
}

static void test_scan(void **state)
{
	char cmd[128];

	(void)state;
	cases_scan(false);
	snprintf(cmd, sizeof cmd, "rm -rf %s/index", dir);
	assert_int_equal(system(cmd), 0);
	cases_scan(true);
	assert_int_equal(system(cmd), 0);
}

static void test_next_seq(void **state)
{
	(void)state;
	assert_int_equal(index_db_next_seq(0, 0), 1);
	assert_int_equal(index_db_next_seq(5, 2), 6);
	assert_int_equal(index_db_next_seq(2, 5), 6);
	assert_int_equal(index_db_next_seq(NAME_RECORD_SEQ_MAX - 1, 0), NAME_RECORD_SEQ_MAX);
	assert_int_equal(index_db_next_seq(NAME_RECORD_SEQ_MAX, 0), 0);   /* spent */
	char err[64];
	index_db_limits bad = { .max_names = 1, .history = INDEX_HISTORY_MAX + 1 };
	assert_null(index_db_ram_new(&bad, err, sizeof err));
	assert_null(index_db_disk_new(dir, &bad, err, sizeof err));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ram),
		cmocka_unit_test(test_disk),
		cmocka_unit_test(test_ram_evicts),
		cmocka_unit_test(test_scan),
		cmocka_unit_test(test_next_seq),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
