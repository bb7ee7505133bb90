/*
 * social_db_int.h — what the two halves of the social tables share
 * (social_db.c: opening, reads; social_db_write.c: writes, fanout). Private
 * to src/svc/social; the layout is described in social_db.h.
 */
#ifndef MN_SVC_SOCIAL_DB_INT_H
#define MN_SVC_SOCIAL_DB_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "svc/social/social_db.h"

#define SOCIAL_DB_PATH_MAX 4096
#define SOCIAL_DB_NDBS     7
#define EDGE_KEY_MAX       (2u * SOCIAL_USER_MAX + 1u)
#define FEED_KEY_LEN_MAX   (SOCIAL_USER_MAX + 1u + 8u)
#define ENTRY_MAX          (8u + 32u + 1u + SOCIAL_USER_MAX)
#define JOB_MAX            (ENTRY_MAX + 1u + SOCIAL_USER_MAX + 4u)

struct social_db {
	MDB_env *env;
	MDB_dbi  follows, followers, counts, feed, fcounts, jobs, meta;
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

social_db_status sdb_status(int rc);
void sdb_be64_put(uint8_t *p, uint64_t v);
uint64_t sdb_be64_get(const uint8_t *p);
/* "a 0x00 b" into k (EDGE_KEY_MAX); its length. */
size_t sdb_edge_key(uint8_t *k, const char *a, const char *b);
/* "user 0x00 ~post" into k (FEED_KEY_LEN_MAX); its length. */
size_t sdb_feed_key(uint8_t *k, const char *user, uint64_t post);
bool sdb_has_prefix(const MDB_val *k, const uint8_t *pre, size_t n);
/* Position c at the first key of prefix pre[0..npre) after `after` (a key
 * suffix; none when nafter is 0). rc of the cursor. */
int sdb_seek_after(MDB_cursor *c, const uint8_t *pre, size_t npre, const uint8_t *after,
                   size_t nafter, MDB_val *k, MDB_val *v);
/* A feed entry (and a job's head): ts_ms | cid | author length | author. */
size_t sdb_entry_encode(uint8_t *p, uint64_t ts_ms, const uint8_t cid[32], const char *author);
bool sdb_entry_decode(const MDB_val *v, social_item *it);

#endif
