/*
 * social_db.c — the social tables in LMDB (see social_db.h): shared
 * helpers, opening, reads. Writes and fanout: social_db_write.c.
 */
#include "svc/social/social_db_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sodium.h>

#include "lib/util.h"

social_db_status sdb_status(int rc)
{
	if (rc == 0)
		return SOCIAL_DB_OK;
	return rc == MDB_MAP_FULL || rc == MDB_TXN_FULL ? SOCIAL_DB_FULL : SOCIAL_DB_ERROR;
}

void sdb_be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

uint64_t sdb_be64_get(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* "a 0x00 b" into k (EDGE_KEY_MAX); its length. */
size_t sdb_edge_key(uint8_t *k, const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);

	memcpy(k, a, na);
	k[na] = 0;
	memcpy(k + na + 1, b, nb);
	return na + 1 + nb;
}

size_t sdb_feed_key(uint8_t *k, const char *user, uint64_t post)
{
	size_t n = strlen(user);

	memcpy(k, user, n);
	k[n] = 0;
	sdb_be64_put(k + n + 1, UINT64_MAX - post);
	return n + 9;
}

bool sdb_has_prefix(const MDB_val *k, const uint8_t *pre, size_t n)
{
	return k->mv_size >= n && memcmp(k->mv_data, pre, n) == 0;
}

/* Position c at the first key of prefix pre[0..npre) after `after` (a key
 * suffix; none when nafter is 0). rc of the cursor. */
int sdb_seek_after(MDB_cursor *c, const uint8_t *pre, size_t npre, const uint8_t *after,
                   size_t nafter, MDB_val *k, MDB_val *v)
{
	uint8_t key[FEED_KEY_LEN_MAX + SOCIAL_USER_MAX];
	int rc;

	memcpy(key, pre, npre);
	memcpy(key + npre, after, nafter);
	*k = (MDB_val){ npre + nafter, key };
	rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
	if (rc == 0 && nafter > 0 && k->mv_size == npre + nafter &&
	    memcmp(k->mv_data, key, npre + nafter) == 0)
		rc = mdb_cursor_get(c, k, v, MDB_NEXT);
	return rc;
}

bool sdb_entry_decode(const MDB_val *v, social_item *it)
{
	const uint8_t *p = v->mv_data;
	size_t alen;

	if (v->mv_size < 41 || (alen = p[40]) > SOCIAL_USER_MAX || v->mv_size != 41 + alen)
		return false;
	it->ts_ms = sdb_be64_get(p);
	memcpy(it->cid, p + 8, 32);
	memcpy(it->author, p + 41, alen);
	it->author[alen] = '\0';
	return true;
}

size_t sdb_entry_encode(uint8_t *p, uint64_t ts_ms, const uint8_t cid[32], const char *author)
{
	size_t alen = strlen(author);

	sdb_be64_put(p, ts_ms);
	memcpy(p + 8, cid, 32);
	p[40] = (uint8_t)alen;
	memcpy(p + 41, author, alen);
	return 41 + alen;
}

/* ---- opening -------------------------------------------------------------- */

static int db_open_dbis(social_db *db, MDB_txn *txn)
{
	int rc;

	if ((rc = mdb_dbi_open(txn, "follows", MDB_CREATE, &db->follows)) != 0 ||
	    (rc = mdb_dbi_open(txn, "followers", MDB_CREATE, &db->followers)) != 0 ||
	    (rc = mdb_dbi_open(txn, "counts", MDB_CREATE, &db->counts)) != 0 ||
	    (rc = mdb_dbi_open(txn, "feed", MDB_CREATE, &db->feed)) != 0 ||
	    (rc = mdb_dbi_open(txn, "fcounts", MDB_CREATE, &db->fcounts)) != 0 ||
	    (rc = mdb_dbi_open(txn, "jobs", MDB_CREATE, &db->jobs)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &db->meta)) != 0)
		return rc;
	return 0;
}

/* The cursor key: the stored one, or a new one stored now. */
static int db_cursor_key(social_db *db, MDB_txn *txn)
{
	MDB_val k = { 4, "ckey" }, v;
	int rc = mdb_get(txn, db->meta, &k, &v);

	if (rc == 0 && v.mv_size == SOCIAL_CURSOR_KEY_LEN) {
		memcpy(db->ckey, v.mv_data, SOCIAL_CURSOR_KEY_LEN);
		return 0;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	randombytes_buf(db->ckey, sizeof db->ckey);
	v = (MDB_val){ sizeof db->ckey, db->ckey };
	return mdb_put(txn, db->meta, &k, &v, 0);
}

static int db_open_env(social_db *db, const char *path, unsigned flags, uint64_t map_bytes)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc, dead;

	if ((rc = mdb_env_create(&db->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(db->env, SOCIAL_DB_NDBS)) != 0 ||
	    (rc = mdb_env_set_mapsize(db->env, (size_t)map_bytes)) != 0 ||
	    (rc = mdb_env_open(db->env, path, flags | MDB_NOTLS, 0600)) != 0)
		return rc;
	if (!(flags & MDB_NOLOCK) && (rc = mdb_reader_check(db->env, &dead)) != 0)
		return rc;
	if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)) != 0)
		return rc;
	if ((rc = db_open_dbis(db, txn)) != 0 || (rc = db_cursor_key(db, txn)) != 0 ||
	    (rc = mdb_stat(txn, db->jobs, &st)) != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	atomic_store(&db->njobs, st.ms_entries);
	return mdb_txn_commit(txn);
}

/* In memory: LMDB over a memfd (no file system), without a lock file; the
 * caller runs every call on one thread. */
static int db_open_memory(social_db *db, uint64_t map_bytes, char *err, size_t errlen)
{
	char path[64];
	int rc;

	if ((db->memfd = memfd_create("social", MFD_CLOEXEC)) < 0) {
		snprintf(err, errlen, "social: memfd_create: %s", strerror(errno));
		return -1;
	}
	snprintf(path, sizeof path, "/proc/self/fd/%d", db->memfd);
	rc = db_open_env(db, path, MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOSYNC | MDB_NOMETASYNC,
	                 map_bytes);
	if (rc != 0) {
		snprintf(err, errlen, "social: cannot open the table in memory: %s", mdb_strerror(rc));
		return -1;
	}
	return 0;
}

static int db_open_disk(social_db *db, const char *data_dir, uint64_t map_bytes,
                        char *err, size_t errlen)
{
	char dir[SOCIAL_DB_PATH_MAX];
	int rc;

	if ((size_t)snprintf(dir, sizeof dir, "%s/social", data_dir) >= sizeof dir) {
		snprintf(err, errlen, "%s: path too long", data_dir);
		return -1;
	}
	if (util_ensure_dir(data_dir, 0700, err, errlen) != 0 ||
	    util_ensure_dir(dir, 0700, err, errlen) != 0)
		return -1;
	if ((rc = db_open_env(db, dir, 0, map_bytes)) != 0) {
		snprintf(err, errlen, "%s: cannot open LMDB: %s", dir, mdb_strerror(rc));
		return -1;
	}
	return 0;
}

social_db *social_db_open(const char *data_dir, uint64_t map_bytes, char *err, size_t errlen)
{
	social_db *db = calloc(1, sizeof *db);
	int rc;

	if (!db) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	db->memfd = -1;
	rc = data_dir ? db_open_disk(db, data_dir, map_bytes, err, errlen)
	              : db_open_memory(db, map_bytes, err, errlen);
	if (rc != 0) {
		social_db_free(db);
		return NULL;
	}
	return db;
}

void social_db_free(social_db *db)
{
	if (!db)
		return;
	if (db->env)
		mdb_env_close(db->env);
	if (db->memfd >= 0)
		close(db->memfd);
	sodium_memzero(db->ckey, sizeof db->ckey);
	free(db);
}

bool social_db_in_memory(const social_db *db)
{
	return db->memfd >= 0;
}

const uint8_t *social_db_cursor_key(const social_db *db)
{
	return db->ckey;
}

uint64_t social_db_jobs(social_db *db)
{
	return atomic_load(&db->njobs);
}

/* ---- reads ---------------------------------------------------------------- */

social_db_status social_db_list(social_db *db, social_list_kind kind, const char *user,
                                const char *after, unsigned limit, social_rep *rep, bool *more)
{
	uint8_t pre[SOCIAL_USER_MAX + 1];
	size_t npre = strlen(user) + 1;
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	memcpy(pre, user, npre);   /* the NUL is the separator */
	rep->n = 0;
	*more = false;
	if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)) != 0)
		return sdb_status(rc);
	if ((rc = mdb_cursor_open(txn, kind == SOCIAL_FOLLOWERS ? db->followers : db->follows,
	                          &c)) != 0) {
		mdb_txn_abort(txn);
		return sdb_status(rc);
	}
	for (rc = sdb_seek_after(c, pre, npre, (const uint8_t *)after, strlen(after), &k, &v);
	     rc == 0 && sdb_has_prefix(&k, pre, npre); rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		size_t n = k.mv_size - npre;
		if (rep->n == limit) {
			*more = true;
			break;
		}
		if (n > SOCIAL_USER_MAX)
			continue;   /* not a key we wrote */
		memcpy(rep->names[rep->n], (const uint8_t *)k.mv_data + npre, n);
		rep->names[rep->n++][n] = '\0';
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return rc == 0 || rc == MDB_NOTFOUND ? SOCIAL_DB_OK : sdb_status(rc);
}

social_db_status social_db_feed(social_db *db, const char *user, uint64_t before,
                                unsigned limit, social_rep *rep, bool *more)
{
	uint8_t pre[SOCIAL_USER_MAX + 1], after[8];
	size_t npre = strlen(user) + 1;
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	memcpy(pre, user, npre);
	sdb_be64_put(after, UINT64_MAX - before);
	rep->n = 0;
	*more = false;
	if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)) != 0)
		return sdb_status(rc);
	if ((rc = mdb_cursor_open(txn, db->feed, &c)) != 0) {
		mdb_txn_abort(txn);
		return sdb_status(rc);
	}
	for (rc = sdb_seek_after(c, pre, npre, after, before == UINT64_MAX ? 0 : 8, &k, &v);
	     rc == 0 && sdb_has_prefix(&k, pre, npre); rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		social_item *it = &rep->items[rep->n];
		if (rep->n == limit) {
			*more = true;
			break;
		}
		if (k.mv_size != npre + 8 || !sdb_entry_decode(&v, it))
			continue;
		it->post = UINT64_MAX - sdb_be64_get((const uint8_t *)k.mv_data + npre);
		rep->n++;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return rc == 0 || rc == MDB_NOTFOUND ? SOCIAL_DB_OK : sdb_status(rc);
}
