/*
 * search_db.h — the search index: SQLite with FTS5 (docs/search.md).
 * One connection, used by one thread at a time (the service's worker);
 * opened on the loop before the sandbox.
 *
 *   docs(id INTEGER PRIMARY KEY, cid BLOB UNIQUE, size, ctype)
 *   names(id INTEGER PRIMARY KEY, name TEXT UNIQUE, cid, seq)
 *   fts  USING fts5(ctype, body, name, content='', prefix='2 3')
 *        rowid = docs.id (ctype, body; name '') or names.id (name only)
 *
 * docs and names share the rowid space (a new row takes one above the
 * largest of both), so newest first holds across them. A name re-pointed
 * to another cid loses its row (FTS 'delete' with the values it was
 * inserted with) and gets a new, newest one; a record of a lower seq than
 * the one held changes nothing (the latest publish wins, whatever order
 * the notifications arrive in). A name's hit takes size and type from the
 * object's own row when there is one (meta), else carries none.
 *
 * Contentless FTS5: the index holds tokens, not the text (a copy of every
 * object's first search.max_text bytes would double what the node keeps).
 * Prefix indexes of 2 and 3 characters: a short prefix ("ab*", the
 * shortest search_query.c admits) is one doclist, not the merge of every
 * token that starts with it (measured: p99 of prefix queries over 10^6
 * documents 16.6 ms without, see docs/search.md).
 * Hits come newest first (rowid DESC), which FTS5 walks without sorting,
 * so a query stopped at its deadline has its newest hits already.
 */
#ifndef MN_SVC_SEARCH_SEARCH_DB_H
#define MN_SVC_SEARCH_SEARCH_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/search/search_msg.h"

typedef struct search_db search_db;

typedef enum search_db_rc {
	SEARCH_DB_OK = 0,
	SEARCH_DB_PARTIAL,     /* stopped at the deadline: the hits found so far */
	SEARCH_DB_BAD_QUERY,   /* FTS5 refused the query: msg says why */
	SEARCH_DB_ERROR,
} search_db_rc;

/* path: the database file (its directory exists), or NULL for an
 * in-memory database (amnesia). NULL with err set on failure. */
search_db *search_db_open(const char *path, char *err, size_t errlen);
/* Another connection to the same file, read-only (a query thread's; WAL
 * lets it read while the writer writes). The writer's open made the file. */
search_db *search_db_open_reader(const char *path, char *err, size_t errlen);
void search_db_close(search_db *db);   /* NULL ok */
/* Index docs[0..n) in one transaction; a cid already indexed is skipped.
 * Returns how many were new, or -1. */
int search_db_add(search_db *db, const search_doc *docs, size_t n);
/* What one write changed. */
typedef struct search_db_added {
	size_t docs;          /* documents new */
	size_t names_new;     /* names seen for the first time */
	size_t names_moved;   /* names re-pointed to another cid */
} search_db_added;

/* Write docs[0..nd) then names[0..nn) in one transaction. 0, or -1
 * (rolled back). */
int search_db_write(search_db *db, const search_doc *docs, size_t nd, const search_name *names,
                    size_t nn, search_db_added *added);
/* names[0..n) alone: how many were indexed anew (new or re-pointed), or -1. */
int search_db_names(search_db *db, const search_name *names, size_t n);
/* Documents indexed; names indexed. */
/* missing[i]: whether no document of ids[i] is indexed. 0, or -1 (an
 * SQLite error; missing is then unreliable). */
int search_db_missing(search_db *db, const uint8_t (*ids)[32], size_t n, bool *missing);
/* missing[i]: whether names[i] is not indexed at its seq (no row, or a
 * row of a lower seq). 0, or -1 (an SQLite error). */
int search_db_names_missing(search_db *db, const search_name *names, size_t n, bool *missing);
int64_t search_db_count(search_db *db);
int64_t search_db_count_names(search_db *db);
/* Up to limit hits of q (checked by search_query_check) into out, until
 * deadline_ns (CLOCK_MONOTONIC, util_now_ns). */
search_db_rc search_db_query(search_db *db, const char *q, unsigned limit, uint64_t deadline_ns,
                             search_hits *out, char *msg, size_t cap);

#endif
