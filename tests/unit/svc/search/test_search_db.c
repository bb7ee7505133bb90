/* The search index (src/svc/search/search_db.h) on both backings (a file
 * in WAL mode with a reader connection, and the in-memory database):
 * documents are indexed once, found by text and type, newest first; a
 * query past its deadline stops and says partial, wherever the deadline
 * falls (never a short answer that says whole); FTS5's own refusal is a
 * bad query, not an error; the file survives a reopen. Names: found by a
 * word of the name with the object's size and type when it is indexed,
 * re-pointed to the latest publish (a late, lower seq changes nothing),
 * kept across a reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "lib/util.h"
#include "svc/search/search_db.h"

#define FAR_NS (util_now_ns() + 10ull * 1000000000ull)

typedef struct fx {
	char       dir[64], path[96];
	bool       mem;
	search_db *db;   /* the writer */
	search_db *rd;   /* file: a reader; memory: the writer again */
} fx;

static void doc(search_doc *d, uint8_t seed, const char *ctype, const char *text)
{
	memset(d, 0, sizeof *d);
	memset(d->id, seed, sizeof d->id);
	d->size = strlen(text);
	snprintf(d->ctype, sizeof d->ctype, "%s", ctype);
	d->text = (const uint8_t *)text;
	d->text_len = strlen(text);
}

static int setup(void **state, bool mem)
{
	fx *f = calloc(1, sizeof *f);
	char err[256];

	if (!f)
		return -1;
	f->mem = mem;
	if (!mem) {
		snprintf(f->dir, sizeof f->dir, "/tmp/mn-search-db-XXXXXX");
		if (!mkdtemp(f->dir))
			return -1;
		snprintf(f->path, sizeof f->path, "%s/index.db", f->dir);
	}
	f->db = search_db_open(mem ? NULL : f->path, err, sizeof err);
	if (!f->db)
		fail_msg("open: %s", err);
	f->rd = mem ? f->db : search_db_open_reader(f->path, err, sizeof err);
	if (!f->rd)
		fail_msg("reader: %s", err);
	*state = f;
	return 0;
}

static int setup_file(void **state) { return setup(state, false); }
static int setup_mem(void **state) { return setup(state, true); }

static int teardown(void **state)
{
	fx *f = *state;
	char p[128];

	if (f->rd != f->db)
		search_db_close(f->rd);
	search_db_close(f->db);
	if (!f->mem) {
		static const char *const sfx[] = { "", "-wal", "-shm" };
		for (size_t i = 0; i < 3; i++) {
			snprintf(p, sizeof p, "%s%s", f->path, sfx[i]);
			(void)unlink(p);
		}
		(void)rmdir(f->dir);
	}
	free(f);
	return 0;
}

static void test_index_and_find(void **state)
{
	fx *f = *state;
	search_doc d[3];
	search_hits h;
	char msg[192];

	(void)state;
	doc(&d[0], 1, "text/plain", "the quick brown fox");
	doc(&d[1], 2, "text/markdown", "a lazy fox sleeps");
	doc(&d[2], 3, "image/png", "");
	assert_int_equal(search_db_add(f->db, d, 3), 3);
	assert_int_equal(search_db_add(f->db, d, 2), 0);   /* indexed once */
	assert_int_equal(search_db_count(f->db), 3);
	assert_int_equal(search_db_query(f->rd, "fox", 10, FAR_NS, &h, msg, sizeof msg), SEARCH_DB_OK);
	assert_int_equal(h.n, 2);
	assert_false(h.partial);
	assert_int_equal(h.hit[0].id[0], 2);   /* newest first */
	assert_int_equal(h.hit[1].id[0], 1);
	assert_string_equal(h.hit[1].ctype, "text/plain");
	assert_int_equal(h.hit[1].size, 19);
	assert_int_equal(search_db_query(f->rd, "ctype:png", 10, FAR_NS, &h, msg, sizeof msg),
	                 SEARCH_DB_OK);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.hit[0].id[0], 3);
	assert_int_equal(search_db_query(f->rd, "fo*", 1, FAR_NS, &h, msg, sizeof msg), SEARCH_DB_OK);
	assert_int_equal(h.n, 1);   /* the limit */
	assert_int_equal(search_db_query(f->rd, "\"quick brown\"", 10, FAR_NS, &h, msg, sizeof msg),
	                 SEARCH_DB_OK);
	assert_int_equal(h.n, 1);
}

/* n documents with distinct ids and the same text ("common ..."), indexed. */
static void add_common(fx *f, unsigned n)
{
	search_doc *d = calloc(n, sizeof *d);

	assert_non_null(d);
	for (unsigned i = 0; i < n; i++) {
		doc(&d[i], 0, "text/plain", "common words in every document");
		d[i].id[0] = (uint8_t)i;
		d[i].id[1] = (uint8_t)(i >> 8);
	}
	assert_int_equal(search_db_add(f->db, d, n), (int)n);
	free(d);
}

/* A deadline already past: stopped at the first check, partial, no error. */
static void test_deadline_partial(void **state)
{
	fx *f = *state;
	search_hits h;
	char msg[192];

	add_common(f, 2000);
	assert_int_equal(search_db_query(f->rd, "common", 100, 1, &h, msg, sizeof msg),
	                 SEARCH_DB_PARTIAL);
	assert_true(h.partial);
	assert_true(h.n < 100);
	/* the same query with time is whole, and the connection is usable */
	assert_int_equal(search_db_query(f->rd, "common", 100, FAR_NS, &h, msg, sizeof msg),
	                 SEARCH_DB_OK);
	assert_false(h.partial);
	assert_int_equal(h.n, 100);
}

/* A deadline at any moment of a query: the answer is whole or says partial.
 * Deadlines are swept across the time a whole query takes, so some land in
 * the per-hit lookups; an interrupted lookup used to be skipped like a
 * missing row and the answer came back short without "partial" (seen on
 * CI: 99 of 100 hits). */
static void test_deadline_anywhere_is_whole_or_partial(void **state)
{
	fx *f = *state;
	search_hits h;
	char msg[192];
	uint64_t t0, whole_ns;
	unsigned partial = 0, whole = 0;

	add_common(f, 300);
	t0 = util_now_ns();
	assert_int_equal(search_db_query(f->rd, "common", 100, FAR_NS, &h, msg, sizeof msg),
	                 SEARCH_DB_OK);
	whole_ns = util_now_ns() - t0;
	assert_int_equal(h.n, 100);
	for (unsigned i = 0; i < 4000; i++) {
		search_db_rc rc = search_db_query(f->rd, "common", 100,
		                                  util_now_ns() + whole_ns * (i % 200) / 100, &h,
		                                  msg, sizeof msg);

		assert_true(rc == SEARCH_DB_OK || rc == SEARCH_DB_PARTIAL);
		assert_int_equal(rc == SEARCH_DB_PARTIAL, h.partial);
		if (!h.partial)
			assert_int_equal(h.n, 100);
		partial += h.partial;
		whole += !h.partial;
	}
	assert_true(partial > 0);   /* the sweep did cut queries short */
	assert_true(whole > 0);
}

/* What FTS5 itself refuses is the query's fault (400), not the index's. */
static void test_fts_refusal_is_bad_query(void **state)
{
	fx *f = *state;
	search_hits h;
	char msg[192];

	assert_int_equal(search_db_query(f->rd, "title:fox", 10, FAR_NS, &h, msg, sizeof msg),
	                 SEARCH_DB_BAD_QUERY);
	assert_non_null(strstr(msg, "bad query"));
	assert_int_equal(search_db_query(f->rd, "\"open", 10, FAR_NS, &h, msg, sizeof msg),
	                 SEARCH_DB_BAD_QUERY);
}

/* Close both connections and open the file again: what a restart sees. */
static void reopen(fx *f)
{
	char err[256];

	search_db_close(f->rd);
	search_db_close(f->db);
	f->db = search_db_open(f->path, err, sizeof err);
	assert_non_null(f->db);
	f->rd = search_db_open_reader(f->path, err, sizeof err);
	assert_non_null(f->rd);
}

static void test_reopen_keeps_the_index(void **state)
{
	fx *f = *state;
	search_doc d;
	search_hits h;
	char msg[192];

	doc(&d, 9, "text/plain", "durable words");
	assert_int_equal(search_db_add(f->db, &d, 1), 1);
	reopen(f);
	assert_int_equal(search_db_count(f->db), 1);
	assert_int_equal(search_db_query(f->rd, "durable", 10, FAR_NS, &h, msg, sizeof msg),
	                 SEARCH_DB_OK);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.hit[0].id[0], 9);
}

static void name(search_name *nm, const char *n, uint8_t seed, uint64_t seq)
{
	memset(nm, 0, sizeof *nm);
	snprintf(nm->name, sizeof nm->name, "%s", n);
	memset(nm->id, seed, sizeof nm->id);
	nm->seq = seq;
}

static void test_names(void **state)
{
	fx *f = *state;
	search_doc d;
	search_name nm[3];
	search_db_added a;
	search_hits h;
	char msg[192];

	doc(&d, 1, "text/plain", "nothing about the name here");
	name(&nm[0], "alice/holiday-photos", 1, 1);   /* the object is indexed */
	name(&nm[1], "bob/notes_2024", 2, 1);         /* the object is not */
	assert_int_equal(search_db_write(f->db, &d, 1, nm, 2, &a), 0);
	assert_int_equal(a.docs, 1);
	assert_int_equal(a.names_new, 2);
	assert_int_equal(a.names_moved, 0);
	assert_int_equal(search_db_count_names(f->db), 2);

	/* a word of the name finds it: the name, the cid, the object's meta */
	assert_int_equal(search_db_query(f->rd, "holiday", 10, FAR_NS, &h, msg, sizeof msg),
	                 SEARCH_DB_OK);
	assert_int_equal(h.n, 1);
	assert_string_equal(h.hit[0].name, "alice/holiday-photos");
	assert_int_equal(h.hit[0].id[0], 1);
	assert_true(h.hit[0].meta);
	assert_string_equal(h.hit[0].ctype, "text/plain");
	assert_int_equal(h.hit[0].size, strlen("nothing about the name here"));
	/* the object's own row has no name */
	assert_int_equal(search_db_query(f->rd, "nothing", 10, FAR_NS, &h, msg, sizeof msg),
	                 SEARCH_DB_OK);
	assert_int_equal(h.n, 1);
	assert_string_equal(h.hit[0].name, "");
	/* an object not indexed: no size, no type */
	assert_int_equal(search_db_query(f->rd, "name:notes", 10, FAR_NS, &h, msg, sizeof msg),
	                 SEARCH_DB_OK);
	assert_int_equal(h.n, 1);
	assert_string_equal(h.hit[0].name, "bob/notes_2024");
	assert_int_equal(h.hit[0].id[0], 2);
	assert_false(h.hit[0].meta);
	assert_int_equal(h.hit[0].size, 0);
	/* the column is the name's: the object's text does not hold "alice" */
	assert_int_equal(search_db_query(f->rd, "body:alice", 10, FAR_NS, &h, msg, sizeof msg),
	                 SEARCH_DB_OK);
	assert_int_equal(h.n, 0);

	/* re-pointed (seq 2): the new cid, not the old, and the newest row */
	name(&nm[2], "alice/holiday-photos", 3, 2);
	assert_int_equal(search_db_names(f->db, &nm[2], 1), 1);
	assert_int_equal(search_db_count_names(f->db), 2);
	assert_int_equal(search_db_query(f->rd, "alice OR bob", 10, FAR_NS, &h, msg, sizeof msg),
	                 SEARCH_DB_OK);
	assert_int_equal(h.n, 2);
	assert_int_equal(h.hit[0].id[0], 3);
	assert_string_equal(h.hit[0].name, "alice/holiday-photos");
	assert_false(h.hit[0].meta);
	assert_int_equal(h.hit[1].id[0], 2);
	/* the old record arriving late (seq 1) changes nothing */
	assert_int_equal(search_db_write(f->db, NULL, 0, &nm[0], 1, &a), 0);
	assert_int_equal(a.names_new + a.names_moved, 0);
	assert_int_equal(search_db_query(f->rd, "holiday", 10, FAR_NS, &h, msg, sizeof msg),
	                 SEARCH_DB_OK);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.hit[0].id[0], 3);
	/* the same cid again (a later seq): nothing to re-index */
	nm[2].seq = 3;
	assert_int_equal(search_db_names(f->db, &nm[2], 1), 0);
	/* a document indexed after the name is newer than it */
	doc(&d, 4, "text/plain", "holiday plans");
	assert_int_equal(search_db_add(f->db, &d, 1), 1);
	assert_int_equal(search_db_query(f->rd, "holiday", 10, FAR_NS, &h, msg, sizeof msg),
	                 SEARCH_DB_OK);
	assert_int_equal(h.n, 2);
	assert_int_equal(h.hit[0].id[0], 4);
	assert_int_equal(h.hit[1].id[0], 3);
}

static void test_reopen_keeps_the_names(void **state)
{
	fx *f = *state;
	search_name nm;
	search_hits h;
	char msg[192];

	name(&nm, "carol/durable-name", 5, 1);
	assert_int_equal(search_db_names(f->db, &nm, 1), 1);
	reopen(f);
	assert_int_equal(search_db_count_names(f->db), 1);
	assert_int_equal(search_db_query(f->rd, "durable", 10, FAR_NS, &h, msg, sizeof msg),
	                 SEARCH_DB_OK);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.hit[0].id[0], 5);
	assert_string_equal(h.hit[0].name, "carol/durable-name");
}

/* A file of the schema before names (no user_version): refused at open,
 * the message saying what to do, rather than failing at the first insert. */
static void test_old_schema_refused(void **state)
{
	fx *f = *state;
	sqlite3 *raw;
	char err[256] = "";

	search_db_close(f->rd);
	search_db_close(f->db);
	f->rd = f->db = NULL;
	(void)unlink(f->path);
	assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw, "CREATE TABLE docs(id INTEGER PRIMARY KEY, cid BLOB);"
	                              "CREATE VIRTUAL TABLE fts USING fts5(ctype, body, content='');",
	                              NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(raw);
	assert_null(search_db_open(f->path, err, sizeof err));
	assert_non_null(strstr(err, "schema version"));
	assert_non_null(strstr(err, "remove the file"));
}

#define BOTH(t) cmocka_unit_test_setup_teardown(t, setup_file, teardown), \
                cmocka_unit_test_setup_teardown(t, setup_mem, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_index_and_find),
		BOTH(test_deadline_partial),
		BOTH(test_deadline_anywhere_is_whole_or_partial),
		BOTH(test_fts_refusal_is_bad_query),
		BOTH(test_names),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_the_index, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_the_names, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_old_schema_refused, setup_file, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
