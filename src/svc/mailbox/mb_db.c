/*
 * mb_db.c — the mailbox's LMDB (see mb_db.h). The map is sized at open
 * from the limits: every body byte plus MB_DB_PER_MSG per message for the
 * record, the idempotency key and B-tree pages, plus slack. A commit that
 * still finds the map full fails like any other (the SEND gets 507).
 */
#include "svc/mailbox/mb_db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "lib/log.h"
#include "lib/util.h"

#define MB_DB_PATH_MAX  4096
#define MB_DB_PER_MSG   4096u
#define MB_DB_SLACK     ((size_t)32 << 20)
#define MB_DB_NEXT_KEY  "next_id"

struct mb_db {
	MDB_env *env;
	MDB_dbi  meta, body, idem, state;
};

static void put_be64(uint8_t out[8], uint64_t v)
{
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_be64(const uint8_t in[8])
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | in[i];
	return v;
}

/* ---- writes (the writer thread) -------------------------------------------------- */

static int db_apply(mb_db *db, MDB_txn *txn, const mb_op *op)
{
	uint8_t kb[8];
	MDB_val k = { 8, kb }, v = { op->val_len, op->val };
	int rc;

	put_be64(kb, op->id);
	switch (op->kind) {
	case MB_OP_PUT_META: return mdb_put(txn, db->meta, &k, &v, 0);
	case MB_OP_PUT_BODY: return mdb_put(txn, db->body, &k, &v, 0);
	case MB_OP_DEL_MSG:
		rc = mdb_del(txn, db->meta, &k, NULL);
		if (rc == 0 || rc == MDB_NOTFOUND)
			rc = mdb_del(txn, db->body, &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : rc;
	case MB_OP_PUT_IDEM:
		k = (MDB_val){ op->key_len, op->key };
		return mdb_put(txn, db->idem, &k, &v, 0);
	case MB_OP_DEL_IDEM:
		k = (MDB_val){ op->key_len, op->key };
		rc = mdb_del(txn, db->idem, &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : rc;
	case MB_OP_NEXT_ID:
		k = (MDB_val){ strlen(MB_DB_NEXT_KEY), (void *)MB_DB_NEXT_KEY };
		v = (MDB_val){ 8, kb };
		return mdb_put(txn, db->state, &k, &v, 0);
	}
	return EINVAL;
}

int mb_db_commit_many(mb_db *db, const mb_batch *const *bs, size_t n)
{
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)) != 0)
		goto fail;
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < bs[k]->n; i++)
			if ((rc = db_apply(db, txn, &bs[k]->ops[i])) != 0) {
				mdb_txn_abort(txn);
				goto fail;
			}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	return 0;
fail:
	log_kv(LOG_LEVEL_ERROR, "mailbox database write failed", "error", mdb_strerror(rc), LOG_END);
	return -1;
}

int mb_db_commit(mb_db *db, const mb_batch *b)
{
	return mb_db_commit_many(db, &b, 1);
}

/* ---- reads (the loop) ---------------------------------------------------------------- */

int mb_db_body(mb_db *db, uint64_t id, uint8_t *out, size_t len)
{
	uint8_t kb[8];
	MDB_val k = { 8, kb }, v;
	MDB_txn *txn;
	int rc;

	put_be64(kb, id);
	if (mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn) != 0)
		return -1;
	rc = mdb_get(txn, db->body, &k, &v);
	if (rc == 0 && v.mv_size == len)
		memcpy(out, v.mv_data, len);
	mdb_txn_abort(txn);
	if (rc != 0 || v.mv_size != len)
		return BUG("mailbox body missing or of the wrong length");
	return 0;
}

static int db_load_dbi(MDB_txn *txn, MDB_dbi dbi, mb_table *t, bool idem)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, dbi, &c), bad = 0;

	if (rc != 0)
		return -1;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
		if ((idem ? mb_table_load_idem(t, k.mv_data, k.mv_size, v.mv_data, v.mv_size)
		          : mb_table_load(t, v.mv_data, v.mv_size)) != 0)
			bad++;
	mdb_cursor_close(c);
	if (bad)
		log_kv(LOG_LEVEL_ERROR, "mailbox records that do not decode were skipped", LOG_END);
	return rc == MDB_NOTFOUND ? 0 : -1;
}

int mb_db_load(mb_db *db, mb_table *t, char *err, size_t errlen)
{
	MDB_val k = { strlen(MB_DB_NEXT_KEY), (void *)MB_DB_NEXT_KEY }, v;
	MDB_txn *txn;
	int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);

	if (rc != 0)
		return util_fail(err, errlen, "mailbox database: %s", mdb_strerror(rc));
	if (db_load_dbi(txn, db->meta, t, false) != 0 || db_load_dbi(txn, db->idem, t, true) != 0) {
		mdb_txn_abort(txn);
		return util_fail(err, errlen, "mailbox database cannot be read");
	}
	if (mdb_get(txn, db->state, &k, &v) == 0 && v.mv_size == 8)
		mb_table_set_next_id(t, get_be64(v.mv_data));
	mdb_txn_abort(txn);
	return 0;
}

/* ---- opening ------------------------------------------------------------------------- */

static int db_open_env(mb_db *db, const char *dir, size_t mapsize, char *err, size_t errlen)
{
	MDB_txn *txn;
	int dead, rc;

	if ((rc = mdb_env_create(&db->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(db->env, 4)) != 0 ||
	    (rc = mdb_env_set_mapsize(db->env, mapsize)) != 0 ||
	    (rc = mdb_env_open(db->env, dir, MDB_NOTLS, 0600)) != 0 ||
	    (rc = mdb_reader_check(db->env, &dead)) != 0 ||
	    (rc = mdb_txn_begin(db->env, NULL, 0, &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &db->meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "body", MDB_CREATE, &db->body)) != 0 ||
	    (rc = mdb_dbi_open(txn, "idem", MDB_CREATE, &db->idem)) != 0 ||
	    (rc = mdb_dbi_open(txn, "state", MDB_CREATE, &db->state)) != 0) {
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

mb_db *mb_db_open(const char *data_dir, uint64_t max_bytes, uint32_t max_messages,
                  char *err, size_t errlen)
{
	char dir[MB_DB_PATH_MAX];
	mb_db *db;
	size_t mapsize = (size_t)max_bytes + (size_t)max_messages * MB_DB_PER_MSG + MB_DB_SLACK;

	if ((size_t)snprintf(dir, sizeof dir, "%s/mailbox", data_dir) >= sizeof dir) {
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
	if (db_open_env(db, dir, mapsize, err, errlen) != 0) {
		mb_db_close(db);
		return NULL;
	}
	return db;
}

void mb_db_close(mb_db *db)
{
	if (!db)
		return;
	if (db->env)
		mdb_env_close(db->env);
	free(db);
}
