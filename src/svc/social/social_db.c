/*
 * social_db.c — the social tables in LMDB (see social_db.h).
 */
#include "svc/social/social_db.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lmdb.h>
#include <sodium.h>

#include "lib/util.h"

#define SOCIAL_DB_PATH_MAX 4096
#define SOCIAL_DB_NDBS     6
#define EDGE_KEY_MAX       (2u * SOCIAL_USER_MAX + 1u)
#define FEED_KEY_LEN_MAX   (SOCIAL_USER_MAX + 1u + 8u)
#define ENTRY_MAX          (8u + 32u + 1u + SOCIAL_USER_MAX)
#define JOB_MAX            (ENTRY_MAX + 1u + SOCIAL_USER_MAX + 4u)

struct social_db {
	MDB_env *env;
	MDB_dbi  follows, followers, counts, feed, jobs, meta;
	int      memfd;            /* in memory: the memfd the map lives in, else -1 */
	uint8_t  ckey[SOCIAL_CURSOR_KEY_LEN];
	/* Entries in jobs: written by the writer's commits, read by the loop. */
	_Atomic uint64_t njobs;
};

struct social_wtxn {
	social_db *db;
	MDB_txn   *txn;
	int64_t    jobs_delta;     /* applied to db->njobs at commit */
};

static social_db_status db_status(int rc)
{
	if (rc == 0)
		return SOCIAL_DB_OK;
	return rc == MDB_MAP_FULL || rc == MDB_TXN_FULL ? SOCIAL_DB_FULL : SOCIAL_DB_ERROR;
}

static void be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t be64_get(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* "a 0x00 b" into k (EDGE_KEY_MAX); its length. */
static size_t edge_key(uint8_t *k, const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);

	memcpy(k, a, na);
	k[na] = 0;
	memcpy(k + na + 1, b, nb);
	return na + 1 + nb;
}

static size_t feed_key(uint8_t *k, const char *user, uint64_t post)
{
	size_t n = strlen(user);

	memcpy(k, user, n);
	k[n] = 0;
	be64_put(k + n + 1, UINT64_MAX - post);
	return n + 9;
}

static bool has_prefix(const MDB_val *k, const uint8_t *pre, size_t n)
{
	return k->mv_size >= n && memcmp(k->mv_data, pre, n) == 0;
}

/* ---- opening -------------------------------------------------------------- */

static int db_open_dbis(social_db *db, MDB_txn *txn)
{
	int rc;

	if ((rc = mdb_dbi_open(txn, "follows", MDB_CREATE, &db->follows)) != 0 ||
	    (rc = mdb_dbi_open(txn, "followers", MDB_CREATE, &db->followers)) != 0 ||
	    (rc = mdb_dbi_open(txn, "counts", MDB_CREATE, &db->counts)) != 0 ||
	    (rc = mdb_dbi_open(txn, "feed", MDB_CREATE, &db->feed)) != 0 ||
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

/* Position c at the first key of prefix pre[0..npre) after `after` (a key
 * suffix; none when nafter is 0). rc of the cursor. */
static int seek_after(MDB_cursor *c, const uint8_t *pre, size_t npre, const uint8_t *after,
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
		return db_status(rc);
	if ((rc = mdb_cursor_open(txn, kind == SOCIAL_FOLLOWERS ? db->followers : db->follows,
	                          &c)) != 0) {
		mdb_txn_abort(txn);
		return db_status(rc);
	}
	for (rc = seek_after(c, pre, npre, (const uint8_t *)after, strlen(after), &k, &v);
	     rc == 0 && has_prefix(&k, pre, npre); rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
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
	return rc == 0 || rc == MDB_NOTFOUND ? SOCIAL_DB_OK : db_status(rc);
}

static bool entry_decode(const MDB_val *v, social_item *it)
{
	const uint8_t *p = v->mv_data;
	size_t alen;

	if (v->mv_size < 41 || (alen = p[40]) > SOCIAL_USER_MAX || v->mv_size != 41 + alen)
		return false;
	it->ts_ms = be64_get(p);
	memcpy(it->cid, p + 8, 32);
	memcpy(it->author, p + 41, alen);
	it->author[alen] = '\0';
	return true;
}

static size_t entry_encode(uint8_t *p, uint64_t ts_ms, const uint8_t cid[32], const char *author)
{
	size_t alen = strlen(author);

	be64_put(p, ts_ms);
	memcpy(p + 8, cid, 32);
	p[40] = (uint8_t)alen;
	memcpy(p + 41, author, alen);
	return 41 + alen;
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
	be64_put(after, UINT64_MAX - before);
	rep->n = 0;
	*more = false;
	if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)) != 0)
		return db_status(rc);
	if ((rc = mdb_cursor_open(txn, db->feed, &c)) != 0) {
		mdb_txn_abort(txn);
		return db_status(rc);
	}
	for (rc = seek_after(c, pre, npre, after, before == UINT64_MAX ? 0 : 8, &k, &v);
	     rc == 0 && has_prefix(&k, pre, npre); rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		social_item *it = &rep->items[rep->n];
		if (rep->n == limit) {
			*more = true;
			break;
		}
		if (k.mv_size != npre + 8 || !entry_decode(&v, it))
			continue;
		it->post = UINT64_MAX - be64_get((const uint8_t *)k.mv_data + npre);
		rep->n++;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return rc == 0 || rc == MDB_NOTFOUND ? SOCIAL_DB_OK : db_status(rc);
}

/* ---- writes --------------------------------------------------------------- */

social_wtxn *social_db_begin(social_db *db)
{
	social_wtxn *t = calloc(1, sizeof *t);

	if (!t)
		return NULL;
	t->db = db;
	if (mdb_txn_begin(db->env, NULL, 0, &t->txn) != 0) {
		free(t);
		return NULL;
	}
	return t;
}

social_db_status social_db_end(social_wtxn *t, bool commit)
{
	int rc = 0;

	if (commit) {
		rc = mdb_txn_commit(t->txn);
		if (rc == 0)
			atomic_fetch_add(&t->db->njobs, (uint64_t)t->jobs_delta);   /* mod 2^64: a decrement too */
	} else {
		mdb_txn_abort(t->txn);
	}
	free(t);
	return db_status(rc);
}

static int count_get(social_wtxn *t, const char *user, uint32_t *n)
{
	MDB_val k = { strlen(user), (void *)user }, v;
	int rc = mdb_get(t->txn, t->db->counts, &k, &v);

	*n = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == 0 && v.mv_size == 4)
		memcpy(n, v.mv_data, 4);
	return rc;
}

static int count_set(social_wtxn *t, const char *user, uint32_t n)
{
	MDB_val k = { strlen(user), (void *)user }, v = { 4, &n };

	return n == 0 ? mdb_del(t->txn, t->db->counts, &k, NULL)
	              : mdb_put(t->txn, t->db->counts, &k, &v, 0);
}

social_db_status social_db_follow(social_wtxn *t, const char *user, const char *other,
                                  uint32_t max_following, bool *created)
{
	uint8_t kf[EDGE_KEY_MAX], kr[EDGE_KEY_MAX];
	MDB_val k = { edge_key(kf, user, other), kf }, v = { 0, "" }, vr;
	MDB_val k2 = { edge_key(kr, other, user), kr };
	uint32_t n;
	int rc;

	*created = false;
	if ((rc = mdb_get(t->txn, t->db->follows, &k, &vr)) == 0)
		return SOCIAL_DB_OK;   /* already following: nothing changes */
	if (rc != MDB_NOTFOUND || (rc = count_get(t, user, &n)) != 0)
		return db_status(rc);
	if (n >= max_following)
		return SOCIAL_DB_LIMIT;
	if ((rc = mdb_put(t->txn, t->db->follows, &k, &v, 0)) != 0 ||
	    (rc = mdb_put(t->txn, t->db->followers, &k2, &v, 0)) != 0 ||
	    (rc = count_set(t, user, n + 1)) != 0)
		return db_status(rc);
	*created = true;
	return SOCIAL_DB_OK;
}

social_db_status social_db_unfollow(social_wtxn *t, const char *user, const char *other,
                                    bool *removed)
{
	uint8_t kf[EDGE_KEY_MAX], kr[EDGE_KEY_MAX];
	MDB_val k = { edge_key(kf, user, other), kf }, k2 = { edge_key(kr, other, user), kr };
	uint32_t n;
	int rc;

	*removed = false;
	rc = mdb_del(t->txn, t->db->follows, &k, NULL);
	if (rc == MDB_NOTFOUND)
		return SOCIAL_DB_OK;
	if (rc != 0 || (rc = mdb_del(t->txn, t->db->followers, &k2, NULL)) != 0 ||
	    (rc = count_get(t, user, &n)) != 0 || (rc = count_set(t, user, n ? n - 1 : 0)) != 0)
		return db_status(rc);
	*removed = true;
	return SOCIAL_DB_OK;
}

social_db_status social_db_post(social_wtxn *t, const char *author, const uint8_t cid[32],
                                uint64_t ts_ms, uint64_t *post)
{
	uint8_t job[JOB_MAX], seqb[8], kb[8];
	MDB_val k = { 3, "seq" }, v;
	size_t n;
	int rc = mdb_get(t->txn, t->db->meta, &k, &v);

	if (rc != 0 && rc != MDB_NOTFOUND)
		return db_status(rc);
	*post = (rc == 0 && v.mv_size == 8 ? be64_get(v.mv_data) : 0) + 1;
	be64_put(seqb, *post);
	v = (MDB_val){ 8, seqb };
	if ((rc = mdb_put(t->txn, t->db->meta, &k, &v, 0)) != 0)
		return db_status(rc);
	n = entry_encode(job, ts_ms, cid, author);
	job[n++] = 0;                 /* last: none yet */
	memset(job + n, 0, 4);        /* delivered */
	n += 4;
	be64_put(kb, *post);
	k = (MDB_val){ 8, kb };
	v = (MDB_val){ n, job };
	if ((rc = mdb_put(t->txn, t->db->jobs, &k, &v, MDB_NOOVERWRITE)) != 0)
		return db_status(rc);
	t->jobs_delta++;
	return SOCIAL_DB_OK;
}

/* A job's value: the entry, then last and delivered. */
typedef struct social_job {
	social_item it;
	char        last[SOCIAL_USER_MAX + 1];
	uint32_t    delivered;
} social_job;

static bool job_decode(const MDB_val *v, social_job *j)
{
	const uint8_t *p = v->mv_data;
	size_t alen, llen;
	MDB_val e;

	if (v->mv_size < 46 || (alen = p[40]) > SOCIAL_USER_MAX || v->mv_size < 46 + alen ||
	    (llen = p[41 + alen]) > SOCIAL_USER_MAX || v->mv_size != 46 + alen + llen)
		return false;
	e = (MDB_val){ 41 + alen, (void *)p };
	if (!entry_decode(&e, &j->it))
		return false;
	memcpy(j->last, p + 42 + alen, llen);
	j->last[llen] = '\0';
	memcpy(&j->delivered, p + 42 + alen + llen, 4);
	return true;
}

static int job_store(social_wtxn *t, MDB_val *k, const social_job *j)
{
	uint8_t buf[JOB_MAX];
	size_t n = entry_encode(buf, j->it.ts_ms, j->it.cid, j->it.author), llen = strlen(j->last);
	MDB_val v;

	buf[n++] = (uint8_t)llen;
	memcpy(buf + n, j->last, llen);
	n += llen;
	memcpy(buf + n, &j->delivered, 4);
	v = (MDB_val){ n + 4, buf };
	return mdb_put(t->txn, t->db->jobs, k, &v, 0);
}

/* Write the job's entry into up to batch followers' feeds after j->last. */
static int fanout_batch(social_wtxn *t, uint64_t post, social_job *j, unsigned batch,
                        unsigned *delivered, bool *done)
{
	uint8_t pre[SOCIAL_USER_MAX + 1], entry[ENTRY_MAX], fk[FEED_KEY_LEN_MAX];
	size_t npre = strlen(j->it.author) + 1, nentry = entry_encode(entry, j->it.ts_ms,
	                                                                j->it.cid, j->it.author);
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	memcpy(pre, j->it.author, npre);
	if ((rc = mdb_cursor_open(t->txn, t->db->followers, &c)) != 0)
		return rc;
	*done = true;
	for (rc = seek_after(c, pre, npre, (const uint8_t *)j->last, strlen(j->last), &k, &v);
	     rc == 0 && has_prefix(&k, pre, npre); rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		size_t n = k.mv_size - npre;
		char follower[SOCIAL_USER_MAX + 1];
		MDB_val fkv, ev = { nentry, entry };
		if (*delivered == batch) {
			*done = false;
			break;
		}
		if (n == 0 || n > SOCIAL_USER_MAX)
			continue;
		memcpy(follower, (const uint8_t *)k.mv_data + npre, n);
		follower[n] = '\0';
		fkv = (MDB_val){ feed_key(fk, follower, post), fk };
		if ((rc = mdb_put(t->txn, t->db->feed, &fkv, &ev, 0)) != 0)
			break;
		memcpy(j->last, follower, n + 1);
		(*delivered)++;
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : rc;
}

social_db_status social_db_fanout(social_wtxn *t, unsigned batch, uint64_t *post,
                                  unsigned *delivered, bool *done, uint64_t *ts_ms)
{
	MDB_cursor *c;
	MDB_val k, v;
	social_job j;
	uint8_t kb[8];
	int rc;

	*post = 0;
	*delivered = 0;
	*done = false;
	if ((rc = mdb_cursor_open(t->txn, t->db->jobs, &c)) != 0)
		return db_status(rc);
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		return SOCIAL_DB_OK;
	if (rc != 0)
		return db_status(rc);
	if (k.mv_size != 8 || !job_decode(&v, &j))
		return SOCIAL_DB_ERROR;
	*post = be64_get(k.mv_data);
	*ts_ms = j.it.ts_ms;
	if ((rc = fanout_batch(t, *post, &j, batch, delivered, done)) != 0)
		return db_status(rc);
	be64_put(kb, *post);
	k = (MDB_val){ 8, kb };
	if (*done) {
		if ((rc = mdb_del(t->txn, t->db->jobs, &k, NULL)) != 0)
			return db_status(rc);
		t->jobs_delta--;
		return SOCIAL_DB_OK;
	}
	j.delivered += *delivered;
	return db_status(job_store(t, &k, &j));
}
