/*
 * search_db.c — the search index on SQLite FTS5 (see search_db.h).
 */
#include "svc/search/search_db.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "lib/util.h"

/* The progress handler runs every this many VM instructions: often enough
 * to stop within a fraction of a millisecond of the deadline. */
#define SEARCH_DB_PROGRESS_OPS 100

/* PRAGMA user_version of the schema below; a file with tables and
 * another version is refused (say so, rather than fail at the first insert). */
#define SEARCH_DB_VERSION 2

struct search_db {
	sqlite3      *db;
	sqlite3_stmt *ins_doc, *ins_fts, *query, *doc, *name_hit;
	sqlite3_stmt *name_get, *name_del, *ins_name, *fts_del, *name_seq, *has_doc;
	uint64_t      deadline_ns;   /* of the query running; 0 none */
};

/* docs and names share the FTS rowids: a new row of either takes one
 * above the largest of both (the writer is the only one to insert). */
#define SEARCH_DB_NEXT_ID "(SELECT 1 + max(coalesce((SELECT max(id) FROM docs), 0)," \
                          " coalesce((SELECT max(id) FROM names), 0)))"

static const char *const search_db_schema =
	"CREATE TABLE IF NOT EXISTS docs(id INTEGER PRIMARY KEY, cid BLOB UNIQUE NOT NULL,"
	" size INTEGER NOT NULL, ctype TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS names(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,"
	" cid BLOB NOT NULL, seq INTEGER NOT NULL);"
	"CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(ctype, body, name, content='',"
	" tokenize='unicode61', prefix='2 3');"
	"PRAGMA user_version = 2;";

static const struct {
	size_t      off;
	const char *sql;
} search_db_stmts[] = {
	{ offsetof(search_db, ins_doc), "INSERT OR IGNORE INTO docs(id, cid, size, ctype) VALUES("
	  SEARCH_DB_NEXT_ID ", ?, ?, ?)" },
	{ offsetof(search_db, ins_fts), "INSERT INTO fts(rowid, ctype, body, name) VALUES(?, ?, ?, ?)" },
	{ offsetof(search_db, query), "SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY rowid DESC"
	  " LIMIT ?" },
	{ offsetof(search_db, doc), "SELECT cid, size, ctype FROM docs WHERE id = ?" },
	{ offsetof(search_db, name_hit), "SELECT n.cid, n.name, d.size, d.ctype FROM names n"
	  " LEFT JOIN docs d ON d.cid = n.cid WHERE n.id = ?" },
	{ offsetof(search_db, name_get), "SELECT id, cid, seq FROM names WHERE name = ?" },
	{ offsetof(search_db, name_del), "DELETE FROM names WHERE id = ?" },
	{ offsetof(search_db, ins_name), "INSERT INTO names(id, name, cid, seq) VALUES("
	  SEARCH_DB_NEXT_ID ", ?, ?, ?)" },
	/* contentless: a row is deleted with the values it was inserted with */
	{ offsetof(search_db, fts_del), "INSERT INTO fts(fts, rowid, ctype, body, name)"
	  " VALUES('delete', ?, '', '', ?)" },
	{ offsetof(search_db, name_seq), "UPDATE names SET seq = ? WHERE id = ?" },
	{ offsetof(search_db, has_doc), "SELECT 1 FROM docs WHERE cid = ?" },
};

#define SEARCH_DB_NSTMTS (sizeof search_db_stmts / sizeof search_db_stmts[0])

static sqlite3_stmt **search_db_stmt(search_db *db, size_t i)
{
	return (sqlite3_stmt **)(void *)((char *)db + search_db_stmts[i].off);
}

static int search_db_on_progress(void *arg)
{
	search_db *db = arg;

	return db->deadline_ns && util_now_ns() >= db->deadline_ns;
}

static int search_db_prepare(search_db *db)
{
	for (size_t i = 0; i < SEARCH_DB_NSTMTS; i++)
		if (sqlite3_prepare_v2(db->db, search_db_stmts[i].sql, -1, search_db_stmt(db, i),
		                       NULL) != SQLITE_OK)
			return -1;
	return 0;
}

/* The user_version, or -1; *tables: whether the file holds any table. */
static int search_db_version(search_db *db, bool *tables)
{
	sqlite3_stmt *st;
	int v = -1;

	*tables = false;
	if (sqlite3_prepare_v2(db->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db->db, "SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1",
	                       -1, &st, NULL) != SQLITE_OK)
		return -1;
	*tables = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return v;
}

/* The writer's: make the schema, or find it. 0, or -1 with err. */
static int search_db_schema_ok(search_db *db, const char *path, char *err, size_t errlen)
{
	bool tables;
	int v = search_db_version(db, &tables);

	if (v < 0 || (tables && v != SEARCH_DB_VERSION)) {
		snprintf(err, errlen, "%s: %s", path, v < 0 ? sqlite3_errmsg(db->db) :
		         "a search index of another schema version: remove the file (the index is "
		         "rebuilt by new uploads and name publishes)");
		return -1;
	}
	if (sqlite3_exec(db->db, search_db_schema, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db->db));
		return -1;
	}
	return 0;
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
	if (sqlite3_open_v2(path ? path : ":memory:", &db->db, flags, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path ? path : "in-memory search index",
		         db->db ? sqlite3_errmsg(db->db) : "cannot open");
		search_db_close(db);
		return NULL;
	}
	if (!reader && search_db_schema_ok(db, path ? path : "in-memory search index", err,
	                                   errlen) != 0) {
		search_db_close(db);
		return NULL;
	}
	if ((path && !reader &&
	     sqlite3_exec(db->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
	                  NULL, NULL, NULL) != SQLITE_OK) ||
	    search_db_prepare(db) != 0) {
		snprintf(err, errlen, "%s: %s", path ? path : "in-memory search index",
		         sqlite3_errmsg(db->db));
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
	for (size_t i = 0; i < SEARCH_DB_NSTMTS; i++)
		sqlite3_finalize(*search_db_stmt(db, i));
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
	sqlite3_bind_text(db->ins_fts, 4, "", 0, SQLITE_STATIC);
	rc = sqlite3_step(db->ins_fts);
	return rc == SQLITE_DONE ? 1 : -1;
}

/* Step st once (expecting no row) and reset it: 0 or -1. */
static int search_db_step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* The name's row now, if any: 1 found (id, cid, seq set), 0 none, -1 error. */
static int search_db_name_get(search_db *db, const char *name, sqlite3_int64 *id,
                              uint8_t cid[32], uint64_t *seq)
{
	int rc;

	sqlite3_reset(db->name_get);
	sqlite3_bind_text(db->name_get, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(db->name_get);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(db->name_get, 1) == 32) {
		*id = sqlite3_column_int64(db->name_get, 0);
		memcpy(cid, sqlite3_column_blob(db->name_get, 1), 32);
		*seq = (uint64_t)sqlite3_column_int64(db->name_get, 2);
		rc = 1;
	} else {
		rc = rc == SQLITE_DONE ? 0 : -1;
	}
	sqlite3_reset(db->name_get);
	return rc;
}

/* The name's row and its FTS tokens, gone. */
static int search_db_name_drop(search_db *db, sqlite3_int64 id, const char *name)
{
	sqlite3_bind_int64(db->fts_del, 1, id);
	sqlite3_bind_text(db->fts_del, 2, name, -1, SQLITE_STATIC);
	if (search_db_step_done(db->fts_del) != 0)
		return -1;
	sqlite3_bind_int64(db->name_del, 1, id);
	return search_db_step_done(db->name_del);
}

/* One name: 1 a new name, 2 one re-pointed (its row moves to the newest),
 * 0 nothing to change (a lower seq than held, or the same cid), -1 error. */
static int search_db_name_one(search_db *db, const search_name *nm)
{
	sqlite3_int64 id;
	uint8_t cid[32];
	uint64_t seq;
	int rc = search_db_name_get(db, nm->name, &id, cid, &seq);

	if (rc < 0)
		return -1;
	if (rc == 1 && nm->seq < seq)
		return 0;   /* an older record arriving late: the latest publish wins */
	if (rc == 1 && memcmp(cid, nm->id, 32) == 0) {
		sqlite3_bind_int64(db->name_seq, 1, (sqlite3_int64)nm->seq);
		sqlite3_bind_int64(db->name_seq, 2, id);
		return search_db_step_done(db->name_seq);
	}
	if (rc == 1 && search_db_name_drop(db, id, nm->name) != 0)
		return -1;
	sqlite3_bind_text(db->ins_name, 1, nm->name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(db->ins_name, 2, nm->id, 32, SQLITE_STATIC);
	sqlite3_bind_int64(db->ins_name, 3, (sqlite3_int64)nm->seq);
	if (search_db_step_done(db->ins_name) != 0)
		return -1;
	sqlite3_reset(db->ins_fts);
	sqlite3_bind_int64(db->ins_fts, 1, sqlite3_last_insert_rowid(db->db));
	sqlite3_bind_text(db->ins_fts, 2, "", 0, SQLITE_STATIC);
	sqlite3_bind_text(db->ins_fts, 3, "", 0, SQLITE_STATIC);
	sqlite3_bind_text(db->ins_fts, 4, nm->name, -1, SQLITE_STATIC);
	return search_db_step_done(db->ins_fts) == 0 ? 1 + rc : -1;
}

int search_db_write(search_db *db, const search_doc *docs, size_t nd, const search_name *names,
                    size_t nn, search_db_added *added)
{
	int rc;

	db->deadline_ns = 0;
	memset(added, 0, sizeof *added);
	if (sqlite3_exec(db->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	for (size_t i = 0; i < nd + nn; i++) {
		rc = i < nd ? search_db_add_one(db, &docs[i]) : search_db_name_one(db, &names[i - nd]);
		if (rc < 0) {
			sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		if (i < nd)
			added->docs += (size_t)rc;
		else if (rc == 1)
			added->names_new++;
		else if (rc == 2)
			added->names_moved++;
	}
	return sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

int search_db_add(search_db *db, const search_doc *docs, size_t n)
{
	search_db_added added;

	return search_db_write(db, docs, n, NULL, 0, &added) == 0 ? (int)added.docs : -1;
}

int search_db_names(search_db *db, const search_name *names, size_t n)
{
	search_db_added added;

	return search_db_write(db, NULL, 0, names, n, &added) == 0 ?
	       (int)(added.names_new + added.names_moved) : -1;
}

static int64_t search_db_count_of(search_db *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t n = -1;

	db->deadline_ns = 0;
	if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

int search_db_missing(search_db *db, const uint8_t (*ids)[32], size_t n, bool *missing)
{
	int rc = 0;

	db->deadline_ns = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		int st;

		sqlite3_reset(db->has_doc);
		sqlite3_bind_blob(db->has_doc, 1, ids[i], 32, SQLITE_STATIC);
		st = sqlite3_step(db->has_doc);
		missing[i] = st == SQLITE_DONE;
		if (st != SQLITE_DONE && st != SQLITE_ROW)
			rc = -1;
	}
	sqlite3_reset(db->has_doc);
	return rc;
}

int search_db_names_missing(search_db *db, const search_name *names, size_t n, bool *missing)
{
	db->deadline_ns = 0;
	for (size_t i = 0; i < n; i++) {
		sqlite3_int64 id;
		uint8_t cid[32];
		uint64_t seq;
		int rc = search_db_name_get(db, names[i].name, &id, cid, &seq);

		if (rc < 0)
			return -1;
		missing[i] = rc == 0 || seq < names[i].seq;
	}
	return 0;
}

int64_t search_db_count(search_db *db)
{
	return search_db_count_of(db, "SELECT count(*) FROM docs");
}

int64_t search_db_count_names(search_db *db)
{
	return search_db_count_of(db, "SELECT count(*) FROM names");
}

/* A name's row into h: the name, its cid, and the object's size and type
 * when the object is indexed too. SQLITE_ROW (found), SQLITE_DONE (no such
 * row), or the step's failure (SQLITE_INTERRUPT past the deadline). */
static int search_db_name_hit(search_db *db, sqlite3_int64 rowid, search_hit *h)
{
	sqlite3_stmt *st = db->name_hit;
	int rc;

	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, rowid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
		const unsigned char *name = sqlite3_column_text(st, 1), *t = sqlite3_column_text(st, 3);

		memset(h, 0, sizeof *h);
		memcpy(h->id, sqlite3_column_blob(st, 0), 32);
		snprintf(h->name, sizeof h->name, "%s", name ? (const char *)name : "");
		h->meta = sqlite3_column_type(st, 2) != SQLITE_NULL;
		if (h->meta) {
			h->size = (uint64_t)sqlite3_column_int64(st, 2);
			snprintf(h->ctype, sizeof h->ctype, "%s", t ? (const char *)t : "");
		}
	} else if (rc == SQLITE_ROW) {
		rc = SQLITE_DONE;   /* a malformed row: skipped like a missing one */
	}
	sqlite3_reset(st);
	return rc;
}

/* The hit of rowid into h: an object's row, else a name's. SQLITE_ROW
 * (found), SQLITE_DONE (no such row: skipped), or the step's failure: a
 * lookup the deadline interrupts is SQLITE_INTERRUPT, never a skip, so
 * the answer says "partial" instead of silently missing a hit. */
static int search_db_hit(search_db *db, sqlite3_int64 rowid, search_hit *h)
{
	int rc;

	sqlite3_reset(db->doc);
	sqlite3_bind_int64(db->doc, 1, rowid);
	rc = sqlite3_step(db->doc);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(db->doc, 0) == 32) {
		const unsigned char *t = sqlite3_column_text(db->doc, 2);

		memset(h, 0, sizeof *h);
		memcpy(h->id, sqlite3_column_blob(db->doc, 0), 32);
		h->meta = true;
		h->size = (uint64_t)sqlite3_column_int64(db->doc, 1);
		snprintf(h->ctype, sizeof h->ctype, "%s", t ? (const char *)t : "");
	} else if (rc == SQLITE_ROW) {
		rc = SQLITE_DONE;
	}
	sqlite3_reset(db->doc);
	return rc == SQLITE_DONE ? search_db_name_hit(db, rowid, h) : rc;
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
	while ((rc = sqlite3_step(db->query)) == SQLITE_ROW && out->n < SEARCH_HITS_MAX) {
		int hit = search_db_hit(db, sqlite3_column_int64(db->query, 0), &out->hit[out->n]);

		if (hit == SQLITE_ROW)
			out->n++;
		else if (hit != SQLITE_DONE) {   /* past the deadline: partial; else the index's fault */
			rc = hit == SQLITE_INTERRUPT ? SQLITE_INTERRUPT : SQLITE_INTERNAL;
			break;
		}
	}
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
