/*
 * social_db.h — the social tables (private to src/svc/social), one LMDB
 * environment: on disk under <data_dir>/social/, or in amnesia inside a
 * memfd (RAM; nothing written to any file system).
 *
 *   follows    user 0x00 other        → ""     (user follows other)
 *   followers  other 0x00 user        → ""     (the same edge, the other way)
 *   counts     user                   → u32    (how many user follows)
 *   feed       user 0x00 ~post (be64) → ts_ms (be64) | cid (32) | author
 *   fcounts    user                   → u32    (entries in user's feed, ≤ feed_max)
 *   jobs       post (be64)            → ts_ms | cid | author | last | delivered
 *   meta       "seq" → u64 last post id; "ckey" → the cursor key (32)
 *
 * A user holds no 0x00 byte (social_user_check), so "user 0x00" is a prefix
 * no other user's keys share: one cursor range is one user's list, in name
 * order. A feed key holds ~post so a range is newest first. The feed key
 * of a (follower, post) pair is unique: delivering a post twice (a fanout
 * batch replayed after a crash) rewrites the same entry — nobody gets a
 * post twice.
 *
 * A job is a post still fanning out; `last` is the last follower whose feed
 * has it (the job's cursor), written in the same transaction as the
 * entries, so a fanout resumes exactly where its last commit ended.
 *
 * Threads: reads (social_db_list, social_db_feed) on the loop thread in
 * their own read transaction; writes in a social_wtxn on the writer thread
 * (disk) — MDB_NOTLS lets both coexist. In memory (MDB_NOLOCK) every call
 * runs on the loop thread, one after another.
 */
#ifndef MN_SVC_SOCIAL_DB_H
#define MN_SVC_SOCIAL_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/social/social_msg.h"
#include "svc/social/social_cursor.h"

#define SOCIAL_DB_ERR_MAX 256

typedef enum social_db_status {
	SOCIAL_DB_OK = 0,
	SOCIAL_DB_LIMIT,    /* FOLLOW: user already follows max_following */
	SOCIAL_DB_FULL,     /* the map is full (507) */
	SOCIAL_DB_ERROR,    /* LMDB failed (500) */
} social_db_status;

typedef struct social_db social_db;
typedef struct social_wtxn social_wtxn;

/* data_dir NULL: in memory. map_bytes bounds the table. NULL with err. */
social_db *social_db_open(const char *data_dir, uint64_t map_bytes, char *err, size_t errlen);
void social_db_free(social_db *db);   /* NULL ok */
bool social_db_in_memory(const social_db *db);
const uint8_t *social_db_cursor_key(const social_db *db);   /* SOCIAL_CURSOR_KEY_LEN */
/* Posts still fanning out (jobs). */
uint64_t social_db_jobs(social_db *db);

/* ---- reads: one page into rep (n, names/items); *last the position of the
 * last entry when more follow (else *more false) ---- */
social_db_status social_db_list(social_db *db, social_list_kind kind, const char *user,
                                const char *after, unsigned limit, social_rep *rep, bool *more);
/* Feed entries older than `before` (UINT64_MAX: from the newest). */
social_db_status social_db_feed(social_db *db, const char *user, uint64_t before,
                                unsigned limit, social_rep *rep, bool *more);

/* ---- writes: one transaction (a group commit) ---- */
social_wtxn *social_db_begin(social_db *db);
social_db_status social_db_follow(social_wtxn *t, const char *user, const char *other,
                                  uint32_t max_following, bool *created);
social_db_status social_db_unfollow(social_wtxn *t, const char *user, const char *other,
                                    bool *removed);
/* A new post and its fanout job; *post its id (ids rise from 1). */
social_db_status social_db_post(social_wtxn *t, const char *author, const uint8_t cid[32],
                                uint64_t ts_ms, uint64_t *post);
/* Deliver the next `batch` followers of the job after post `after` (the
 * one served last; round robin, so a post to few followers never waits for
 * a whole large fanout), each feed keeping its newest feed_max entries.
 * *post the job served (0: none), *delivered followers served, *done the
 * job ended (deleted), *ts_ms its post time. */
social_db_status social_db_fanout(social_wtxn *t, unsigned batch, uint32_t feed_max,
                                  uint64_t after, uint64_t *post, unsigned *delivered,
                                  bool *done, uint64_t *ts_ms);
/* Commit (or abort when commit is false) and free t. */
social_db_status social_db_end(social_wtxn *t, bool commit);

#endif
