/*
 * social_db_write.c — the social tables' writes (see social_db.h): one
 * write transaction (a group commit of the service's turn), follows and
 * unfollows, posts and their fanout jobs, fanout batches.
 */
#include <stdlib.h>
#include <string.h>

#include "svc/social/social_db_int.h"

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
	return sdb_status(rc);
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
	MDB_val k = { sdb_edge_key(kf, user, other), kf }, v = { 0, "" }, vr;
	MDB_val k2 = { sdb_edge_key(kr, other, user), kr };
	uint32_t n;
	int rc;

	*created = false;
	if ((rc = mdb_get(t->txn, t->db->follows, &k, &vr)) == 0)
		return SOCIAL_DB_OK;   /* already following: nothing changes */
	if (rc != MDB_NOTFOUND || (rc = count_get(t, user, &n)) != 0)
		return sdb_status(rc);
	if (n >= max_following)
		return SOCIAL_DB_LIMIT;
	if ((rc = mdb_put(t->txn, t->db->follows, &k, &v, 0)) != 0 ||
	    (rc = mdb_put(t->txn, t->db->followers, &k2, &v, 0)) != 0 ||
	    (rc = count_set(t, user, n + 1)) != 0)
		return sdb_status(rc);
	*created = true;
	return SOCIAL_DB_OK;
}

social_db_status social_db_unfollow(social_wtxn *t, const char *user, const char *other,
                                    bool *removed)
{
	uint8_t kf[EDGE_KEY_MAX], kr[EDGE_KEY_MAX];
	MDB_val k = { sdb_edge_key(kf, user, other), kf }, k2 = { sdb_edge_key(kr, other, user), kr };
	uint32_t n;
	int rc;

	*removed = false;
	rc = mdb_del(t->txn, t->db->follows, &k, NULL);
	if (rc == MDB_NOTFOUND)
		return SOCIAL_DB_OK;
	if (rc != 0 || (rc = mdb_del(t->txn, t->db->followers, &k2, NULL)) != 0 ||
	    (rc = count_get(t, user, &n)) != 0 || (rc = count_set(t, user, n ? n - 1 : 0)) != 0)
		return sdb_status(rc);
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
		return sdb_status(rc);
	*post = (rc == 0 && v.mv_size == 8 ? sdb_be64_get(v.mv_data) : 0) + 1;
	sdb_be64_put(seqb, *post);
	v = (MDB_val){ 8, seqb };
	if ((rc = mdb_put(t->txn, t->db->meta, &k, &v, 0)) != 0)
		return sdb_status(rc);
	n = sdb_entry_encode(job, ts_ms, cid, author);
	job[n++] = 0;                 /* last: none yet */
	memset(job + n, 0, 4);        /* delivered */
	n += 4;
	sdb_be64_put(kb, *post);
	k = (MDB_val){ 8, kb };
	v = (MDB_val){ n, job };
	if ((rc = mdb_put(t->txn, t->db->jobs, &k, &v, MDB_NOOVERWRITE)) != 0)
		return sdb_status(rc);
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
	if (!sdb_entry_decode(&e, &j->it))
		return false;
	memcpy(j->last, p + 42 + alen, llen);
	j->last[llen] = '\0';
	memcpy(&j->delivered, p + 42 + alen + llen, 4);
	return true;
}

static int job_store(social_wtxn *t, MDB_val *k, const social_job *j)
{
	uint8_t buf[JOB_MAX];
	size_t n = sdb_entry_encode(buf, j->it.ts_ms, j->it.cid, j->it.author), llen = strlen(j->last);
	MDB_val v;

	buf[n++] = (uint8_t)llen;
	memcpy(buf + n, j->last, llen);
	n += llen;
	memcpy(buf + n, &j->delivered, 4);
	v = (MDB_val){ n + 4, buf };
	return mdb_put(t->txn, t->db->jobs, k, &v, 0);
}

/* Write the job's entry into up to batch followers' feeds after j->last. */
/* Delete the oldest entry of user's feed (fc: a cursor on feed). */
static int feed_drop_oldest(MDB_cursor *fc, const char *user)
{
	uint8_t key[FEED_KEY_LEN_MAX];
	size_t n = strlen(user);
	MDB_val k = { n + 9, key }, v;
	int rc;

	/* user 0x00 ~0 would be post 0, which no post is: the first key at or
	 * past it belongs to the next user (or there is none), and the one
	 * before it is user's oldest entry. */
	memcpy(key, user, n);
	key[n] = 0;
	memset(key + n + 1, 0xff, 8);
	rc = mdb_cursor_get(fc, &k, &v, MDB_SET_RANGE);
	rc = rc == MDB_NOTFOUND ? mdb_cursor_get(fc, &k, &v, MDB_LAST)
	                        : rc == 0 ? mdb_cursor_get(fc, &k, &v, MDB_PREV) : rc;
	if (rc == MDB_NOTFOUND || (rc == 0 && (k.mv_size != n + 9 || memcmp(k.mv_data, key, n + 1))))
		return 0;   /* nothing of user's: the count was out of step */
	return rc != 0 ? rc : mdb_cursor_del(fc, 0);
}

/* The entry ev into follower's feed, the newest feed_max kept. A delivery
 * done again (its key is there: a batch replayed after a crash) changes
 * nothing, the count included. */
static int feed_deliver(social_wtxn *t, MDB_cursor *fc, const char *follower, uint64_t post,
                        MDB_val *ev, uint32_t feed_max)
{
	uint8_t fk[FEED_KEY_LEN_MAX];
	MDB_val k = { sdb_feed_key(fk, follower, post), fk };
	MDB_val ck = { strlen(follower), (void *)follower }, cv;
	uint32_t n = 0;
	int rc = mdb_put(t->txn, t->db->feed, &k, ev, MDB_NOOVERWRITE);

	if (rc == MDB_KEYEXIST)
		return 0;
	if (rc != 0)
		return rc;
	rc = mdb_get(t->txn, t->db->fcounts, &ck, &cv);
	if (rc == 0 && cv.mv_size == 4)
		memcpy(&n, cv.mv_data, 4);
	else if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	if (++n > feed_max) {
		if ((rc = feed_drop_oldest(fc, follower)) != 0)
			return rc;
		n = feed_max;
	}
	cv = (MDB_val){ 4, &n };
	return mdb_put(t->txn, t->db->fcounts, &ck, &cv, 0);
}

static int fanout_batch(social_wtxn *t, uint64_t post, social_job *j, unsigned batch,
                        uint32_t feed_max, unsigned *delivered, bool *done)
{
	uint8_t pre[SOCIAL_USER_MAX + 1], entry[ENTRY_MAX];
	size_t npre = strlen(j->it.author) + 1, nentry = sdb_entry_encode(entry, j->it.ts_ms,
	                                                                j->it.cid, j->it.author);
	MDB_cursor *c, *fc;
	MDB_val k, v;
	int rc;

	memcpy(pre, j->it.author, npre);
	if ((rc = mdb_cursor_open(t->txn, t->db->followers, &c)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(t->txn, t->db->feed, &fc)) != 0) {
		mdb_cursor_close(c);
		return rc;
	}
	*done = true;
	for (rc = sdb_seek_after(c, pre, npre, (const uint8_t *)j->last, strlen(j->last), &k, &v);
	     rc == 0 && sdb_has_prefix(&k, pre, npre); rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		size_t n = k.mv_size - npre;
		char follower[SOCIAL_USER_MAX + 1];
		MDB_val ev = { nentry, entry };
		if (*delivered == batch) {
			*done = false;
			break;
		}
		if (n == 0 || n > SOCIAL_USER_MAX)
			continue;
		memcpy(follower, (const uint8_t *)k.mv_data + npre, n);
		follower[n] = '\0';
		if ((rc = feed_deliver(t, fc, follower, post, &ev, feed_max)) != 0)
			break;
		memcpy(j->last, follower, n + 1);
		(*delivered)++;
	}
	mdb_cursor_close(fc);
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : rc;
}

/* The job after post `after` (round robin), or the first. */
static int job_next(social_wtxn *t, uint64_t after, MDB_val *k, MDB_val *v)
{
	MDB_cursor *c;
	uint8_t kb[8];
	int rc;

	if ((rc = mdb_cursor_open(t->txn, t->db->jobs, &c)) != 0)
		return rc;
	sdb_be64_put(kb, after + 1);
	*k = (MDB_val){ 8, kb };
	rc = after == UINT64_MAX ? MDB_NOTFOUND : mdb_cursor_get(c, k, v, MDB_SET_RANGE);
	if (rc == MDB_NOTFOUND)
		rc = mdb_cursor_get(c, k, v, MDB_FIRST);
	mdb_cursor_close(c);
	return rc;
}

social_db_status social_db_fanout(social_wtxn *t, unsigned batch, uint32_t feed_max,
                                  uint64_t after, uint64_t *post, unsigned *delivered,
                                  bool *done, uint64_t *ts_ms)
{
	MDB_val k, v;
	social_job j;
	uint8_t kb[8];
	int rc;

	*post = 0;
	*delivered = 0;
	*done = false;
	rc = job_next(t, after, &k, &v);
	if (rc == MDB_NOTFOUND)
		return SOCIAL_DB_OK;
	if (rc != 0)
		return sdb_status(rc);
	if (k.mv_size != 8 || !job_decode(&v, &j))
		return SOCIAL_DB_ERROR;
	*post = sdb_be64_get(k.mv_data);
	*ts_ms = j.it.ts_ms;
	if ((rc = fanout_batch(t, *post, &j, batch, feed_max, delivered, done)) != 0)
		return sdb_status(rc);
	sdb_be64_put(kb, *post);
	k = (MDB_val){ 8, kb };
	if (*done) {
		if ((rc = mdb_del(t->txn, t->db->jobs, &k, NULL)) != 0)
			return sdb_status(rc);
		t->jobs_delta--;
		return SOCIAL_DB_OK;
	}
	j.delivered += *delivered;
	return sdb_status(job_store(t, &k, &j));
}
