/*
 * index_db_disk.c — the LMDB table (see index_db.h) under <data_dir>/index/
 * (0700; data.mdb and lock.mdb 0600). Two databases:
 *
 *   names    name bytes → the current record (encoded, name_record.h)
 *   history  name bytes || 0x00 || seq (u64 big-endian) → that record
 *
 * A name holds no NUL byte (name.h), so "name || 0x00" is a prefix no other
 * name's keys share, and big-endian seqs sort each name's history by seq:
 * one cursor range is one name's history, oldest first. A write keeps the
 * newest `history` entries and deletes the rest in the same transaction.
 *
 * Threads: MDB_NOTLS, so the loop's read transactions and the writer
 * thread's write transaction coexist (LMDB gives readers a snapshot); every
 * write is one transaction inside index_db_write_run, on the writer thread.
 * The commit fsyncs: an acknowledged publish survives a crash, and a seq is
 * never signed twice for different cids.
 *
 * The map is sized at open from the limits (INDEX_DISK_ENTRY bytes per
 * record slot, plus slack); MDB_MAP_FULL is reported as INDEX_DB_FULL.
 */
#include "svc/index/index_db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "lib/log.h"
#include "lib/util.h"

#define INDEX_DISK_PATH_MAX  4096
#define INDEX_DISK_ENTRY     1024u                 /* map bytes per record slot: key, value, pages */
#define INDEX_DISK_SLACK     ((size_t)16 << 20)
#define INDEX_DISK_KEY_MAX   (NAME_MAX_LEN + 1u + 8u)

typedef struct index_db_disk {
	index_db base;
	MDB_env *env;
	MDB_dbi  names, hist;
} index_db_disk;

/* ---- keys and values ------------------------------------------------------- */

static size_t disk_hist_key(const index_name *name, uint64_t seq, uint8_t key[INDEX_DISK_KEY_MAX])
{
	memcpy(key, name->s, name->len);
	key[name->len] = 0;
	for (int i = 0; i < 8; i++)
		key[name->len + 1 + (size_t)i] = (uint8_t)(seq >> (56 - 8 * i));
	return name->len + 1 + 8;
}

static bool disk_key_is_of(const MDB_val *k, const index_name *name)
{
	return k->mv_size == name->len + 9 && memcmp(k->mv_data, name->s, name->len) == 0 &&
	       ((const uint8_t *)k->mv_data)[name->len] == 0;
}

static int disk_decode(const MDB_val *v, name_record *out)
{
	if (name_record_decode(v->mv_data, v->mv_size, out) != NAME_REC_OK)
		return BUG("index database holds a record that does not decode");
	return 0;
}

static void disk_log(const char *what, int rc)
{
	log_kv(LOG_LEVEL_ERROR, what, "error", mdb_strerror(rc), LOG_END);
}

static index_db_status disk_status(int rc, const char *what)
{
	if (rc == MDB_MAP_FULL)
		return INDEX_DB_FULL;
	disk_log(what, rc);
	return INDEX_DB_ERROR;
}

/* ---- writes (the writer thread) --------------------------------------------- */

/* The held record's seq in txn, 0 when none. -1 on error. */
static int disk_held(index_db_disk *db, MDB_txn *txn, const index_name *name, uint64_t *seq)
{
	MDB_val k = { name->len, (void *)name->s }, v;
	name_record cur;
	int rc = mdb_get(txn, db->names, &k, &v);

	*seq = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0 || disk_decode(&v, &cur) != 0)
		return -1;
	*seq = cur.seq;
	return 0;
}

/* Keep the newest lim.history entries of name's history. */
static int disk_trim(index_db_disk *db, MDB_txn *txn, const index_name *name)
{
	uint8_t kb[INDEX_DISK_KEY_MAX];
	MDB_val k = { disk_hist_key(name, 0, kb), kb }, v;
	MDB_cursor *cur;
	size_t n = 0;
	int rc = mdb_cursor_open(txn, db->hist, &cur);

	if (rc != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && disk_key_is_of(&k, name);
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		n++;
	/* The oldest is always the first of the range: delete it, seek again
	 * (at most INDEX_HISTORY_MAX times, when index.history was lowered). */
	for (rc = 0; rc == 0 && n > db->base.lim.history; n--) {
		k = (MDB_val){ disk_hist_key(name, 0, kb), kb };
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && disk_key_is_of(&k, name))
			rc = mdb_cursor_del(cur, 0);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

static int disk_store(index_db_disk *db, MDB_txn *txn, const index_name *name,
                      const name_record *rec)
{
	uint8_t buf[NAME_RECORD_MAX], kb[INDEX_DISK_KEY_MAX];
	ssize_t n = name_record_encode(rec, buf, sizeof buf);
	MDB_val k = { name->len, (void *)name->s }, v = { (size_t)n, buf };
	MDB_val hk = { disk_hist_key(name, rec->seq, kb), kb };
	int rc;

	if (n < 0) {
		(void)BUG("index database given a record that does not encode");
		return EINVAL;
	}
	if ((rc = mdb_put(txn, db->names, &k, &v, 0)) != 0 ||
	    (rc = mdb_put(txn, db->hist, &hk, &v, 0)) != 0)
		return rc;
	return disk_trim(db, txn, name);
}

/* A new name must fit under max_names. */
static bool disk_room(index_db_disk *db, MDB_txn *txn)
{
	MDB_stat st;

	return mdb_stat(txn, db->names, &st) == 0 && st.ms_entries < db->base.lim.max_names;
}

static index_db_status disk_write_txn(index_db_disk *db, MDB_txn *txn, index_db_write *w)
{
	index_name nm;
	uint64_t held;
	int rc;

	if (w->publish)
		nm = w->name;
	else
		index_name_set(&nm, w->rec.name, w->rec.name_len);
	if (disk_held(db, txn, &nm, &held) != 0)
		return INDEX_DB_ERROR;
	if (!w->publish && held && w->rec.seq <= held)
		return INDEX_DB_STALE;
	if (!held && !disk_room(db, txn))
		return INDEX_DB_FULL;
	if (w->publish) {
		uint64_t seq = index_db_next_seq(held, w->floor);
		if (seq == 0 || name_record_make(&w->out, nm.s, nm.len, w->cid, seq, w->now, w->id) != 0)
			return INDEX_DB_ERROR;
	}
	if ((rc = disk_store(db, txn, &nm, w->publish ? &w->out : &w->rec)) != 0)
		return disk_status(rc, "index database write failed");
	w->created = held == 0;
	return INDEX_DB_OK;
}

static void disk_write(index_db *base, index_db_write *w)
{
	index_db_disk *db = (index_db_disk *)base;
	MDB_txn *txn;
	int rc = mdb_txn_begin(db->env, NULL, 0, &txn);

	if (rc != 0) {
		w->status = disk_status(rc, "index database write failed");
		return;
	}
	w->status = disk_write_txn(db, txn, w);
	if (w->status != INDEX_DB_OK) {
		mdb_txn_abort(txn);
		w->created = false;
		return;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		w->status = disk_status(rc, "index database commit failed");
		w->created = false;
	}
}

/* ---- reads (the loop) ---------------------------------------------------- */

static index_db_status disk_get(index_db *base, const index_name *name, name_record *out)
{
	index_db_disk *db = (index_db_disk *)base;
	MDB_val k = { name->len, (void *)name->s }, v;
	MDB_txn *txn;
	index_db_status st = INDEX_DB_OK;
	int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);

	if (rc != 0)
		return disk_status(rc, "index database read failed");
	rc = mdb_get(txn, db->names, &k, &v);
	if (rc == MDB_NOTFOUND)
		st = INDEX_DB_NOT_FOUND;
	else if (rc != 0)
		st = disk_status(rc, "index database read failed");
	else if (disk_decode(&v, out) != 0)
		st = INDEX_DB_ERROR;
	mdb_txn_abort(txn);
	return st;
}

/* Walk name's history; keep the newest max in a ring over out, then rotate
 * it oldest first. */
static index_db_status disk_history_txn(index_db_disk *db, MDB_txn *txn, const index_name *name,
                                        name_record *out, size_t max, size_t *n)
{
	uint8_t kb[INDEX_DISK_KEY_MAX];
	MDB_val k = { disk_hist_key(name, 0, kb), kb }, v;
	MDB_cursor *cur;
	size_t seen = 0;
	bool bad = false;
	int rc = mdb_cursor_open(txn, db->hist, &cur);

	if (rc != 0)
		return disk_status(rc, "index database read failed");
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0 && !bad && disk_key_is_of(&k, name);
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		bad = disk_decode(&v, &out[seen++ % max]) != 0;
	mdb_cursor_close(cur);
	if (bad)
		return INDEX_DB_ERROR;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return disk_status(rc, "index database read failed");
	if (seen == 0)
		return INDEX_DB_NOT_FOUND;
	*n = seen < max ? seen : max;
	if (seen > max) {   /* the ring starts at seen % max */
		size_t start = seen % max;
		name_record *tmp = malloc(max * sizeof *tmp);
		if (!tmp)
			return INDEX_DB_ERROR;
		for (size_t i = 0; i < max; i++)
			tmp[i] = out[(start + i) % max];
		memcpy(out, tmp, max * sizeof *tmp);
		free(tmp);
	}
	return INDEX_DB_OK;
}

static index_db_status disk_history(index_db *base, const index_name *name, name_record *out,
                                    size_t max, size_t *n)
{
	index_db_disk *db = (index_db_disk *)base;
	MDB_txn *txn;
	index_db_status st;
	int rc;

	if (max == 0)
		return INDEX_DB_NOT_FOUND;
	if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)) != 0)
		return disk_status(rc, "index database read failed");
	st = disk_history_txn(db, txn, name, out, max, n);
	mdb_txn_abort(txn);
	return st;
}

/* The disk table forgets nothing: a name published here stays. */
static void disk_forget(index_db *base, const index_name *name)
{
	(void)base; (void)name;
}

static uint64_t disk_count(index_db *base)
{
	index_db_disk *db = (index_db_disk *)base;
	MDB_txn *txn;
	MDB_stat st;
	uint64_t n = 0;

	if (mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn) != 0)
		return 0;
	if (mdb_stat(txn, db->names, &st) == 0)
		n = st.ms_entries;
	mdb_txn_abort(txn);
	return n;
}

/* The names database in key order, from the name after cur->after. */
static size_t disk_scan(index_db *base, index_db_cursor *cur, name_record *out, size_t max)
{
	index_db_disk *db = (index_db_disk *)base;
	MDB_val k = { cur->after.len, cur->after.s }, v;
	MDB_cursor *c;
	MDB_txn *txn;
	size_t n = 0;
	int rc;

	if (mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn) != 0)
		return 0;
	if (mdb_cursor_open(txn, db->names, &c) != 0) {
		mdb_txn_abort(txn);
		return 0;
	}
	rc = mdb_cursor_get(c, &k, &v, cur->after.len ? MDB_SET_RANGE : MDB_FIRST);
	if (rc == 0 && cur->after.len && k.mv_size == cur->after.len &&
	    memcmp(k.mv_data, cur->after.s, k.mv_size) == 0)
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	for (; rc == 0 && n < max; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
		if (k.mv_size <= NAME_MAX_LEN && disk_decode(&v, &out[n]) == 0)
			index_name_set(&cur->after, out[n++].name, k.mv_size);
	if (rc != 0)   /* MDB_NOTFOUND: the end; the next walk starts over */
		memset(&cur->after, 0, sizeof cur->after);
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return n;
}

static void disk_destroy(index_db *base)
{
	index_db_disk *db = (index_db_disk *)base;

	if (db->env)
		mdb_env_close(db->env);
	free(db);
}

static const index_db_ops disk_ops = {
	.name = "disk", .off_loop = true, .write = disk_write, .get = disk_get,
	.history = disk_history, .forget = disk_forget, .count = disk_count,
	.scan = disk_scan, .destroy = disk_destroy,
};

/* ---- opening ------------------------------------------------------------- */

static int disk_open_env(index_db_disk *db, const char *dir, size_t mapsize,
                         char *err, size_t errlen)
{
	MDB_txn *txn;
	int dead, rc;

	if ((rc = mdb_env_create(&db->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(db->env, 2)) != 0 ||
	    (rc = mdb_env_set_mapsize(db->env, mapsize)) != 0 ||
	    (rc = mdb_env_open(db->env, dir, MDB_NOTLS, 0600)) != 0 ||
	    (rc = mdb_reader_check(db->env, &dead)) != 0 ||
	    (rc = mdb_txn_begin(db->env, NULL, 0, &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, "names", MDB_CREATE, &db->names)) != 0 ||
	    (rc = mdb_dbi_open(txn, "history", MDB_CREATE, &db->hist)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "%s: cannot open LMDB: %s", dir, mdb_strerror(rc));
	return -1;
}

index_db *index_db_disk_new(const char *data_dir, const index_db_limits *lim,
                            char *err, size_t errlen)
{
	char dir[INDEX_DISK_PATH_MAX];
	index_db_disk *db;
	size_t mapsize;

	if (lim->max_names == 0 || lim->history == 0 || lim->history > INDEX_HISTORY_MAX) {
		snprintf(err, errlen, "index table limits out of range");
		return NULL;
	}
	mapsize = (size_t)lim->max_names * (lim->history + 1u) * INDEX_DISK_ENTRY + INDEX_DISK_SLACK;
	if ((size_t)snprintf(dir, sizeof dir, "%s/index", data_dir) >= sizeof dir) {
		snprintf(err, errlen, "%s: path too long", data_dir);
		return NULL;
	}
	if (util_ensure_dir(data_dir, 0700, err, errlen) != 0 ||
	    util_ensure_dir(dir, 0700, err, errlen) != 0)
		return NULL;
	if (!(db = calloc(1, sizeof *db))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	db->base.ops = &disk_ops;
	db->base.lim = *lim;
	db->base.lim.evict = false;
	if (disk_open_env(db, dir, mapsize, err, errlen) != 0) {
		disk_destroy(&db->base);
		return NULL;
	}
	return &db->base;
}
