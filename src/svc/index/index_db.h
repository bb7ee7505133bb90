/*
 * index_db.h — the index service's tables of names (private to
 * src/svc/index). One interface, two backends:
 *
 *   disk  LMDB under <data_dir>/index/ (index_db_disk.c): the names this
 *         node publishes, each with its current record and the last
 *         `history` records by seq. Writes (publish, import) run on the
 *         service's one writer thread: a write transaction fsyncs, which an
 *         event loop must not wait for. Reads run on the loop (MDB_NOTLS
 *         read transactions), concurrently with the writer.
 *   ram   a bounded hash table in memory (index_db_ram.c): the table itself
 *         in amnesia mode (nothing on disk), and in every mode the cache of
 *         records the DHT answered for names this node does not hold
 *         (history 1, least recently used evicted when full, so a flood of
 *         lookups can never crowd out the names the node publishes).
 *         Loop thread only: its writes are instant, no writer thread.
 *
 * Every record stored here was signed by this node (publish) or checked
 * (name_record_check) before it was handed in. Sequence numbers only rise:
 * a record whose seq is not above the one held is INDEX_DB_STALE and
 * changes nothing (no rollback).
 *
 * Ownership: the db owns what it stores; out-parameters are the caller's.
 */
#ifndef MN_SVC_INDEX_DB_H
#define MN_SVC_INDEX_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dht/index_msg.h"

#define INDEX_DB_ERR_MAX  512

typedef enum index_db_status {
	INDEX_DB_OK = 0,
	INDEX_DB_NOT_FOUND,
	INDEX_DB_STALE,     /* seq not above the held one: nothing changed */
	INDEX_DB_FULL,      /* a new name past max_names (a cache evicts instead) */
	INDEX_DB_ERROR,     /* I/O or LMDB failure, logged where it happened */
} index_db_status;

typedef struct index_db_limits {
	uint32_t max_names;   /* names held at most */
	uint32_t history;     /* records kept per name, 1..INDEX_HISTORY_MAX */
	bool     evict;       /* ram only: full → forget the least recently used */
} index_db_limits;

typedef struct index_db index_db;

/* What a write does: publish signs seq = max(held, floor) + 1 for cid;
 * import stores rec when its seq is above the held one. */
typedef struct index_db_write {
	bool                 publish;
	/* publish */
	index_name           name;
	uint8_t              cid[NAME_RECORD_CID_LEN];
	uint64_t             floor;     /* a seq the new one must pass (a cached record's) */
	uint64_t             now;       /* Unix seconds, the record's issued */
	const node_identity *id;        /* borrowed: the signer (thread-safe to read) */
	/* import */
	name_record          rec;
	/* results */
	index_db_status      status;
	bool                 created;   /* the name was not held */
	name_record          out;       /* publish: the record signed and stored */
} index_db_write;

/* <data_dir>/index/ (made 0700), an LMDB sized for the limits. NULL with err. */
index_db *index_db_disk_new(const char *data_dir, const index_db_limits *lim,
                            char *err, size_t errlen);
/* A table in memory. NULL with err. */
index_db *index_db_ram_new(const index_db_limits *lim, char *err, size_t errlen);
void index_db_free(index_db *db);   /* NULL ok */

/* Writes must run on the writer thread (index_db_write_run from a workq
 * job) rather than the loop. */
bool index_db_writes_off_loop(const index_db *db);
/* Apply w (any one thread at a time); w->status and the results are set. */
void index_db_write_run(index_db *db, index_db_write *w);

/* The current record of name. OK or NOT_FOUND (or ERROR). A ram db with
 * eviction counts this as a use. */
index_db_status index_db_get(index_db *db, const index_name *name, name_record *out);
/* The newest records of name, at most max, oldest first (seq rising). */
index_db_status index_db_history(index_db *db, const index_name *name, name_record *out,
                                 size_t max, size_t *n);
/* Forget name (ram: the cache drops a record once the table holds the name). */
void index_db_forget(index_db *db, const index_name *name);
/* Names held. */
uint64_t index_db_count(index_db *db);

/* A walk over the whole table in batches (the DHT republish): the position
 * after the last name returned. Zeroed: the start. */
typedef struct index_db_cursor {
	index_name after;   /* disk: the last name returned ("" = from the first) */
	uint64_t   pos;     /* ram: bucket << 32 | entries of it already returned */
} index_db_cursor;

/* Up to max current records of the names after *cur, into out; *cur moves
 * past them, and back to the start once the walk reached the end. Names
 * added or removed meanwhile may be met twice or missed in one walk. The
 * number of records. Loop thread. */
size_t index_db_scan(index_db *db, index_db_cursor *cur, name_record *out, size_t max);

/* ---- the network cache (ram tables only) --------------------------------- */

/* Was name written or touched within max_age_ms (monotonic)? false when not held. */
bool index_db_ram_is_fresh(index_db *db, const index_name *name, uint64_t max_age_ms);
/* Mark name as just checked against the network. */
void index_db_ram_touch(index_db *db, const index_name *name);

/* ---- backends (index_db.c dispatches) ------------------------------------ */

typedef struct index_db_ops {
	const char *name;
	bool        off_loop;
	void            (*write)(index_db *db, index_db_write *w);
	index_db_status (*get)(index_db *db, const index_name *name, name_record *out);
	index_db_status (*history)(index_db *db, const index_name *name, name_record *out,
	                           size_t max, size_t *n);
	void            (*forget)(index_db *db, const index_name *name);
	uint64_t        (*count)(index_db *db);
	size_t          (*scan)(index_db *db, index_db_cursor *cur, name_record *out, size_t max);
	void            (*destroy)(index_db *db);
} index_db_ops;

struct index_db {
	const index_db_ops *ops;
	index_db_limits     lim;
};

/* The seq a publish signs: one above both the held seq and the floor; 0 when
 * no seq is left (NAME_RECORD_SEQ_MAX held: the name is spent). */
uint64_t index_db_next_seq(uint64_t held, uint64_t floor);

#endif
