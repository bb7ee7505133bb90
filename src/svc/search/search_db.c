/*
 * search_db.c — the search index on SQLite FTS5 (see search_db.h).
 */
#include "svc/search/search_db.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "lib/util.h"

/* The progress handler runs every this many VM instructions: often enough
 * to stop within a fraction of a millisecond of the deadline. */
#define SEARCH_DB_PROGRESS_OPS 100

struct search_db {
	sqlite3      *db;
	sqlite3_stmt *ins_doc, *ins_fts, *query, *doc;
	uint64_t      deadline_ns;   /* of the query running; 0 none */
};

static const char *const search_db_schema =
	"CREATE TABLE IF NOT EXISTS docs(id INTEGER PRIMARY KEY, cid BLOB UNIQUE NOT NULL,"
	" size INTEGER NOT NULL, ctype TEXT NOT NULL);"
	"CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(ctype, body, content='',"
	" tokenize='unicode61', prefix='2 3');";

static int search_db_on_progress(void *arg)
{
	search_db *db = arg;

	return db->deadline_ns && util_now_ns() >= db->deadline_ns;
}

static int search_db_prepare(search_db *db)
{
	return sqlite3_prepare_v2(db->db, "INSERT OR IGNORE INTO docs(cid, size, ctype) VALUES(?, ?, ?)",
	                          -1, &db->ins_doc, NULL) != SQLITE_OK ||
	       sqlite3_prepare_v2(db->db, "INSERT INTO fts(rowid, ctype, body) VALUES(?, ?, ?)",
	                          -1, &db->ins_fts, NULL) != SQLITE_OK ||
	       sqlite3_prepare_v2(db->db, "SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY rowid DESC"
	                          " LIMIT ?", -1, &db->query, NULL) != SQLITE_OK ||
	       sqlite3_prepare_v2(db->db, "SELECT cid, size, ctype FROM docs WHERE id = ?",
	                          -1, &db->doc, NULL) != SQLITE_OK ? -1 : 0;
}

static search_db *search_db_open_flags(const char *path, bool reader, char *err, size_t errlen)
{
	search_db *db = calloc(1, sizeof *db);
	int flags = (reader ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
	            SQLITE_OPEN_NOMUTEX;

	if (!db) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (sqlite3_open_v2(path ? path : ":memory:", &db->db, flags, NULL) != SQLITE_OK ||
	    (path && !reader &&
	     sqlite3_exec(db->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
	                  NULL, NULL, NULL) != SQLITE_OK) ||
	    (!reader && sqlite3_exec(db->db, search_db_schema, NULL, NULL, NULL) != SQLITE_OK) ||
	    search_db_prepare(db) != 0) {
		snprintf(err, errlen, "%s: %s", path ? path : "in-memory search index",
		         db->db ? sqlite3_errmsg(db->db) : "cannot open");
		search_db_close(db);
		return NULL;
	}
	sqlite3_progress_handler(db->db, SEARCH_DB_PROGRESS_OPS, search_db_on_progress, db);
	return db;
}

search_db *search_db_open(const char *path, char *err, size_t errlen)
{
	return search_db_open_flags(path, false, err, errlen);
}

search_db *search_db_open_reader(const char *path, char *err, size_t errlen)
{
	return search_db_open_flags(path, true, err, errlen);
}

void search_db_close(search_db *db)
{
	if (!db)
		return;
	sqlite3_finalize(db->ins_doc);
	sqlite3_finalize(db->ins_fts);
	sqlite3_finalize(db->query);
	sqlite3_finalize(db->doc);
	sqlite3_close(db->db);
	free(db);
}

/* One document: 1 new, 0 there already, -1 error. */
static int search_db_add_one(search_db *db, const search_doc *d)
{
	sqlite3_int64 rowid;
	int rc;

	sqlite3_reset(db->ins_doc);
	sqlite3_bind_blob(db->ins_doc, 1, d->id, 32, SQLITE_STATIC);
	sqlite3_bind_int64(db->ins_doc, 2, (sqlite3_int64)d->size);
	sqlite3_bind_text(db->ins_doc, 3, d->ctype, -1, SQLITE_STATIC);
	if (sqlite3_step(db->ins_doc) != SQLITE_DONE)
		return -1;
	if (sqlite3_changes(db->db) == 0)
		return 0;
	rowid = sqlite3_last_insert_rowid(db->db);
	sqlite3_reset(db->ins_fts);
	sqlite3_bind_int64(db->ins_fts, 1, rowid);
	sqlite3_bind_text(db->ins_fts, 2, d->ctype, -1, SQLITE_STATIC);
	sqlite3_bind_text(db->ins_fts, 3, d->text_len ? (const char *)d->text : "",
	                  (int)d->text_len, SQLITE_STATIC);
	rc = sqlite3_step(db->ins_fts);
	return rc == SQLITE_DONE ? 1 : -1;
}

int search_db_add(search_db *db, const search_doc *docs, size_t n)
{
	int added = 0, rc;

	db->deadline_ns = 0;
	if (sqlite3_exec(db->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if ((rc = search_db_add_one(db, &docs[i])) < 0) {
			sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		added += rc;
	}
	return sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? added : -1;
}

int64_t search_db_count(search_db *db)
{
	sqlite3_stmt *st;
	int64_t n = -1;

	db->deadline_ns = 0;
	if (sqlite3_prepare_v2(db->db, "SELECT count(*) FROM docs", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* The hit of rowid into h: 0, or -1 (no such doc: skipped). */
static int search_db_hit(search_db *db, sqlite3_int64 rowid, search_hit *h)
{
	int rc = -1;

	sqlite3_reset(db->doc);
	sqlite3_bind_int64(db->doc, 1, rowid);
	if (sqlite3_step(db->doc) == SQLITE_ROW && sqlite3_column_bytes(db->doc, 0) == 32) {
		const unsigned char *t = sqlite3_column_text(db->doc, 2);

		memcpy(h->id, sqlite3_column_blob(db->doc, 0), 32);
		h->size = (uint64_t)sqlite3_column_int64(db->doc, 1);
		snprintf(h->ctype, sizeof h->ctype, "%s", t ? (const char *)t : "");
		rc = 0;
	}
	sqlite3_reset(db->doc);
	return rc;
}

search_db_rc search_db_query(search_db *db, const char *q, unsigned limit, uint64_t deadline_ns,
                             search_hits *out, char *msg, size_t cap)
{
	int rc;

	out->n = 0;
	out->partial = false;
	db->deadline_ns = deadline_ns;
	sqlite3_reset(db->query);
	sqlite3_bind_text(db->query, 1, q, -1, SQLITE_STATIC);
	sqlite3_bind_int(db->query, 2, (int)limit);
	while ((rc = sqlite3_step(db->query)) == SQLITE_ROW && out->n < SEARCH_HITS_MAX)
		if (search_db_hit(db, sqlite3_column_int64(db->query, 0), &out->hit[out->n]) == 0)
			out->n++;
	db->deadline_ns = 0;
	sqlite3_reset(db->query);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return SEARCH_DB_OK;
	if (rc == SQLITE_INTERRUPT) {
		out->partial = true;
		return SEARCH_DB_PARTIAL;
	}
	if (rc == SQLITE_ERROR) {   /* FTS5's parser: the query, not the database */
		snprintf(msg, cap, "bad query: %s", sqlite3_errmsg(db->db));
		return SEARCH_DB_BAD_QUERY;
	}
	snprintf(msg, cap, "search index error");
	return SEARCH_DB_ERROR;
}
