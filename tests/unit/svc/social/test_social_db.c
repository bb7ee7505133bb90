/* The social tables (src/svc/social/social_db.h) and cursors
 * (social_cursor.h), both backends (disk, memory) through one set of cases:
 * follow/unfollow keep both directions and the per-user count, the
 * max_following limit, pages in name order that continue after a position,
 * a fanout in batches that resumes from the job's stored cursor and never
 * writes a (follower, post) twice, feed pages newest first; cursors open
 * only for the list and user they were made for, and refuse any edit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "svc/social/social_cursor.h"
#include "svc/social/social_db.h"

#define MAP (64ull << 20)

static char dir[64];
static social_rep rep;

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/mn-social-db-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static social_db *open_db(bool disk)
{
	char err[SOCIAL_DB_ERR_MAX];
	social_db *db = social_db_open(disk ? dir : NULL, MAP, err, sizeof err);

	if (!db)
		fail_msg("open: %s", err);
	return db;
}

static social_db_status follow(social_db *db, const char *u, const char *o, uint32_t max,
                               bool *created)
{
	social_wtxn *t = social_db_begin(db);
	social_db_status st;

	assert_non_null(t);
	st = social_db_follow(t, u, o, max, created);
	assert_int_equal(social_db_end(t, true), SOCIAL_DB_OK);
	return st;
}

static void graph_cases(social_db *db)
{
	bool created, removed, more;
	social_wtxn *t;
	char name[16];

	assert_int_equal(follow(db, "bob", "alice", 3, &created), SOCIAL_DB_OK);
	assert_true(created);
	assert_int_equal(follow(db, "bob", "alice", 3, &created), SOCIAL_DB_OK);
	assert_false(created);   /* the same edge again changes nothing */
	assert_int_equal(follow(db, "bob", "carol", 3, &created), SOCIAL_DB_OK);
	assert_int_equal(follow(db, "bob", "dave", 3, &created), SOCIAL_DB_OK);
	assert_int_equal(follow(db, "bob", "erin", 3, &created), SOCIAL_DB_LIMIT);
	assert_false(created);
	/* both directions */
	assert_int_equal(social_db_list(db, SOCIAL_FOLLOWING, "bob", "", 10, &rep, &more), 0);
	assert_int_equal(rep.n, 3);
	assert_false(more);
	assert_string_equal(rep.names[0], "alice");
	assert_string_equal(rep.names[2], "dave");
	assert_int_equal(social_db_list(db, SOCIAL_FOLLOWERS, "alice", "", 10, &rep, &more), 0);
	assert_int_equal(rep.n, 1);
	assert_string_equal(rep.names[0], "bob");
	/* "bo" is not a prefix of bob's keys: no other user's list leaks in */
	assert_int_equal(social_db_list(db, SOCIAL_FOLLOWING, "bo", "", 10, &rep, &more), 0);
	assert_int_equal(rep.n, 0);
	/* unfollow frees a slot under the limit */
	t = social_db_begin(db);
	assert_int_equal(social_db_unfollow(t, "bob", "carol", &removed), SOCIAL_DB_OK);
	assert_true(removed);
	assert_int_equal(social_db_unfollow(t, "bob", "carol", &removed), SOCIAL_DB_OK);
	assert_false(removed);
	assert_int_equal(social_db_end(t, true), SOCIAL_DB_OK);
	assert_int_equal(follow(db, "bob", "erin", 3, &created), SOCIAL_DB_OK);
	assert_true(created);
	assert_int_equal(social_db_list(db, SOCIAL_FOLLOWERS, "carol", "", 10, &rep, &more), 0);
	assert_int_equal(rep.n, 0);
	/* pages: 25 followers of "star", 10 per page, continuing after the last */
	for (int i = 0; i < 25; i++) {
		snprintf(name, sizeof name, "f%02d", i);
		assert_int_equal(follow(db, name, "star", 10, &created), SOCIAL_DB_OK);
	}
	assert_int_equal(social_db_list(db, SOCIAL_FOLLOWERS, "star", "", 10, &rep, &more), 0);
	assert_int_equal(rep.n, 10);
	assert_true(more);
	assert_string_equal(rep.names[9], "f09");
	assert_int_equal(social_db_list(db, SOCIAL_FOLLOWERS, "star", "f09", 10, &rep, &more), 0);
	assert_string_equal(rep.names[0], "f10");
	assert_int_equal(social_db_list(db, SOCIAL_FOLLOWERS, "star", "f19", 10, &rep, &more), 0);
	assert_int_equal(rep.n, 5);
	assert_false(more);
	assert_string_equal(rep.names[4], "f24");
}

/* One turn of fanout; the job's post. */
static uint64_t fanout_turn(social_db *db, unsigned batch, unsigned *delivered, bool *done,
                            bool commit)
{
	social_wtxn *t = social_db_begin(db);
	uint64_t post, ts;

	assert_int_equal(social_db_fanout(t, batch, 1000, 0, &post, delivered, done, &ts), SOCIAL_DB_OK);
	assert_int_equal(social_db_end(t, commit), SOCIAL_DB_OK);
	return post;
}

static void feed_cases(social_db *db)
{
	uint8_t cid[32];
	uint64_t post, p2;
	unsigned delivered, total = 0;
	bool done, more;
	social_wtxn *t;

	memset(cid, 0xab, sizeof cid);
	t = social_db_begin(db);
	assert_int_equal(social_db_post(t, "star", cid, 1000, &post), SOCIAL_DB_OK);
	assert_int_equal(social_db_end(t, true), SOCIAL_DB_OK);
	assert_int_equal(post, 1);
	assert_int_equal(social_db_jobs(db), 1);
	/* a batch that is not committed (a crash) leaves the job where it was */
	assert_int_equal(fanout_turn(db, 10, &delivered, &done, false), 1);
	assert_int_equal(delivered, 10);
	assert_int_equal(social_db_jobs(db), 1);
	/* 25 followers, batches of 10: 10, 10, 5 and done */
	while (social_db_jobs(db) > 0) {
		assert_int_equal(fanout_turn(db, 10, &delivered, &done, true), 1);
		total += delivered;
	}
	assert_int_equal(total, 25);
	assert_true(done);
	assert_int_equal(fanout_turn(db, 10, &delivered, &done, true), 0);   /* no job */
	/* each follower has the post exactly once */
	assert_int_equal(social_db_feed(db, "f00", UINT64_MAX, 10, &rep, &more), 0);
	assert_int_equal(rep.n, 1);
	assert_int_equal(rep.items[0].post, 1);
	assert_string_equal(rep.items[0].author, "star");
	assert_memory_equal(rep.items[0].cid, cid, 32);
	assert_int_equal(rep.items[0].ts_ms, 1000);
	assert_int_equal(social_db_feed(db, "f24", UINT64_MAX, 10, &rep, &more), 0);
	assert_int_equal(rep.n, 1);
	/* a second post: newest first, and the page continues before it */
	t = social_db_begin(db);
	assert_int_equal(social_db_post(t, "star", cid, 2000, &p2), SOCIAL_DB_OK);
	assert_int_equal(social_db_end(t, true), SOCIAL_DB_OK);
	assert_int_equal(p2, 2);
	assert_int_equal(fanout_turn(db, 100, &delivered, &done, true), 2);
	assert_true(done);
	assert_int_equal(social_db_feed(db, "f07", UINT64_MAX, 1, &rep, &more), 0);
	assert_int_equal(rep.n, 1);
	assert_true(more);
	assert_int_equal(rep.items[0].post, 2);
	assert_int_equal(social_db_feed(db, "f07", 2, 10, &rep, &more), 0);
	assert_int_equal(rep.n, 1);
	assert_false(more);
	assert_int_equal(rep.items[0].post, 1);
}

static void test_memory(void **state)
{
	social_db *db = open_db(false);

	(void)state;
	assert_true(social_db_in_memory(db));
	graph_cases(db);
	feed_cases(db);
	social_db_free(db);
}

static void test_disk_resumes(void **state)
{
	social_db *db = open_db(true);
	uint8_t key[SOCIAL_CURSOR_KEY_LEN], cid[32] = { 1 };
	unsigned delivered;
	uint64_t post;
	bool done, more;
	social_wtxn *t;

	(void)state;
	graph_cases(db);
	memcpy(key, social_db_cursor_key(db), sizeof key);
	t = social_db_begin(db);
	assert_int_equal(social_db_post(t, "star", cid, 5, &post), SOCIAL_DB_OK);
	assert_int_equal(social_db_end(t, true), SOCIAL_DB_OK);
	assert_int_equal(fanout_turn(db, 7, &delivered, &done, true), post);
	assert_false(done);
	social_db_free(db);
	/* reopened (a restart): the job and the cursor key are still there; the
	 * fanout continues after the 7th follower */
	db = open_db(true);
	assert_memory_equal(social_db_cursor_key(db), key, sizeof key);
	assert_int_equal(social_db_jobs(db), 1);
	assert_int_equal(fanout_turn(db, 100, &delivered, &done, true), post);
	assert_int_equal(delivered, 18);
	assert_true(done);
	assert_int_equal(social_db_feed(db, "f06", UINT64_MAX, 10, &rep, &more), 0);
	assert_int_equal(rep.n, 1);
	assert_int_equal(social_db_feed(db, "f07", UINT64_MAX, 10, &rep, &more), 0);
	assert_int_equal(rep.n, 1);
	social_db_free(db);
}

/* Each feed keeps its newest feed_max entries; the others are dropped as
 * new ones arrive, and a follower's count stays its own. */
static void test_feed_max(void **state)
{
	social_db *db = open_db(false);
	uint8_t cid[32] = { 3 };
	uint64_t post, p, ts;
	unsigned delivered;
	bool created, done, more;
	social_wtxn *t;

	(void)state;
	assert_int_equal(follow(db, "r", "w", 10, &created), SOCIAL_DB_OK);
	assert_int_equal(follow(db, "s", "w", 10, &created), SOCIAL_DB_OK);
	assert_int_equal(follow(db, "r", "v", 10, &created), SOCIAL_DB_OK);
	for (int i = 0; i < 5; i++) {
		t = social_db_begin(db);
		assert_int_equal(social_db_post(t, i == 2 ? "v" : "w", cid, 10 + (uint64_t)i, &post),
		                 SOCIAL_DB_OK);
		assert_int_equal(social_db_fanout(t, 100, 3, 0, &p, &delivered, &done, &ts), SOCIAL_DB_OK);
		assert_int_equal(p, post);
		assert_true(done);
		assert_int_equal(social_db_end(t, true), SOCIAL_DB_OK);
	}
	assert_int_equal(social_db_feed(db, "r", UINT64_MAX, 10, &rep, &more), 0);
	assert_int_equal(rep.n, 3);
	assert_int_equal(rep.items[0].post, 5);
	assert_int_equal(rep.items[1].post, 4);
	assert_int_equal(rep.items[2].post, 3);
	assert_string_equal(rep.items[2].author, "v");
	assert_int_equal(social_db_feed(db, "s", UINT64_MAX, 10, &rep, &more), 0);
	assert_int_equal(rep.n, 3);   /* s never had post 3 (v's): 5, 4, 2 */
	assert_int_equal(rep.items[2].post, 2);
	social_db_free(db);
}

/* Jobs take turns: after serving one, the next turn serves the next post
 * (wrapping to the first), so a small fanout never waits for a large one. */
static void test_round_robin(void **state)
{
	social_db *db = open_db(false);
	uint8_t cid[32] = { 4 };
	uint64_t p1, p2, p, ts;
	unsigned delivered;
	bool created, done;
	social_wtxn *t;
	char name[16];

	(void)state;
	for (int i = 0; i < 30; i++) {
		snprintf(name, sizeof name, "x%02d", i);
		assert_int_equal(follow(db, name, "big", 10, &created), SOCIAL_DB_OK);
	}
	assert_int_equal(follow(db, "y", "small", 10, &created), SOCIAL_DB_OK);
	t = social_db_begin(db);
	assert_int_equal(social_db_post(t, "big", cid, 1, &p1), SOCIAL_DB_OK);
	assert_int_equal(social_db_post(t, "small", cid, 2, &p2), SOCIAL_DB_OK);
	/* the first turn serves big's job (the first), 10 of 30 */
	assert_int_equal(social_db_fanout(t, 10, 100, 0, &p, &delivered, &done, &ts), 0);
	assert_int_equal(p, p1);
	assert_false(done);
	/* the next serves small's: done while big's is still going */
	assert_int_equal(social_db_fanout(t, 10, 100, p1, &p, &delivered, &done, &ts), 0);
	assert_int_equal(p, p2);
	assert_true(done);
	/* and wraps back to big's, from where it stopped */
	assert_int_equal(social_db_fanout(t, 10, 100, p2, &p, &delivered, &done, &ts), 0);
	assert_int_equal(p, p1);
	assert_int_equal(delivered, 10);
	assert_int_equal(social_db_end(t, true), SOCIAL_DB_OK);
	assert_int_equal(social_db_jobs(db), 1);
	social_db_free(db);
}

static void test_cursor(void **state)
{
	uint8_t key[SOCIAL_CURSOR_KEY_LEN], key2[SOCIAL_CURSOR_KEY_LEN], pos[SOCIAL_CURSOR_POS_MAX];
	char c[SOCIAL_CURSOR_MAX + 1], bad[SOCIAL_CURSOR_MAX + 8];
	char longname[SOCIAL_USER_MAX + 1];
	size_t n;

	(void)state;
	memset(key, 7, sizeof key);
	memset(key2, 8, sizeof key2);
	assert_int_equal(social_cursor_make(key, SOCIAL_CURSOR_FOLLOWERS, "alice", "bob", 3, c), 0);
	assert_int_equal(social_cursor_open(key, SOCIAL_CURSOR_FOLLOWERS, "alice", c, pos, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(pos, "bob", 3);
	/* another list, another user, another key: not ours */
	assert_int_equal(social_cursor_open(key, SOCIAL_CURSOR_FOLLOWING, "alice", c, pos, &n), -1);
	assert_int_equal(social_cursor_open(key, SOCIAL_CURSOR_FOLLOWERS, "alicf", c, pos, &n), -1);
	assert_int_equal(social_cursor_open(key2, SOCIAL_CURSOR_FOLLOWERS, "alice", c, pos, &n), -1);
	/* every single-character edit is refused */
	for (size_t i = 0; c[i]; i++) {
		memcpy(bad, c, sizeof c);
		bad[i] = bad[i] == 'A' ? 'B' : 'A';
		assert_int_equal(social_cursor_open(key, SOCIAL_CURSOR_FOLLOWERS, "alice", bad, pos, &n),
		                 -1);
	}
	/* truncated, extended, empty, not base64url */
	memcpy(bad, c, sizeof c);
	bad[strlen(bad) - 1] = '\0';
	assert_int_equal(social_cursor_open(key, SOCIAL_CURSOR_FOLLOWERS, "alice", bad, pos, &n), -1);
	snprintf(bad, sizeof bad, "%sA", c);
	assert_int_equal(social_cursor_open(key, SOCIAL_CURSOR_FOLLOWERS, "alice", bad, pos, &n), -1);
	assert_int_equal(social_cursor_open(key, SOCIAL_CURSOR_FOLLOWERS, "alice", "", pos, &n), -1);
	assert_int_equal(social_cursor_open(key, SOCIAL_CURSOR_FOLLOWERS, "alice", "a+b/", pos, &n),
	                 -1);
	/* the longest position fits SOCIAL_CURSOR_MAX */
	memset(longname, 'z', SOCIAL_USER_MAX);
	longname[SOCIAL_USER_MAX] = '\0';
	assert_int_equal(social_cursor_make(key, SOCIAL_CURSOR_FEED, longname, longname,
	                                    SOCIAL_USER_MAX, c), 0);
	assert_true(strlen(c) <= SOCIAL_CURSOR_MAX);
	assert_int_equal(social_cursor_open(key, SOCIAL_CURSOR_FEED, longname, c, pos, &n), 0);
	assert_int_equal(n, SOCIAL_USER_MAX);
	assert_int_equal(social_cursor_make(key, SOCIAL_CURSOR_FEED, "a", longname,
	                                    SOCIAL_USER_MAX + 1, c), -1);
}

static void test_msg(void **state)
{
	static social_req q, q2;
	static social_rep p, p2;
	uint8_t buf[SOCIAL_MSG_MAX];
	ssize_t n;

	(void)state;
	assert_true(social_user_check("a.b_c-D9", 8));
	assert_false(social_user_check("", 0));
	assert_false(social_user_check("a/b", 3));
	assert_false(social_user_check("a\0b", 3));
	q = (social_req){ .verb = SOCIAL_LIST, .kind = SOCIAL_FOLLOWING, .limit = 7 };
	strcpy(q.user, "alice");
	strcpy(q.cursor, "abc");
	n = social_msg_req_encode(&q, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(social_msg_req_decode(SOCIAL_LIST, buf, (size_t)n, &q2), 0);
	assert_string_equal(q2.user, "alice");
	assert_string_equal(q2.cursor, "abc");
	assert_int_equal(q2.limit, 7);
	assert_int_equal(q2.kind, SOCIAL_FOLLOWING);
	assert_int_equal(social_msg_req_decode(SOCIAL_LIST, buf, (size_t)n - 1, &q2), -1);
	q.limit = SOCIAL_PAGE_MAX + 1;   /* out of bounds: does not encode */
	assert_int_equal(social_msg_req_encode(&q, buf, sizeof buf), -1);
	strcpy(q.user, "bad user");
	q.limit = 1;
	assert_int_equal(social_msg_req_encode(&q, buf, sizeof buf), -1);
	/* a full FEED page of the longest authors fits the frame */
	p = (social_rep){ .verb = SOCIAL_FEED, .status = 200, .n = SOCIAL_PAGE_MAX };
	for (size_t i = 0; i < SOCIAL_PAGE_MAX; i++) {
		memset(p.items[i].author, 'x', SOCIAL_USER_MAX);
		p.items[i].post = i + 1;
	}
	memset(p.next, 'c', SOCIAL_CURSOR_MAX);
	n = social_msg_rep_encode(&p, buf, sizeof buf);
	assert_true(n > 0);
	assert_int_equal(social_msg_rep_decode(SOCIAL_FEED, 200, buf, (size_t)n, &p2), 0);
	assert_int_equal(p2.n, SOCIAL_PAGE_MAX);
	assert_int_equal(p2.items[255].post, 256);
	social_msg_rep_err(&p, SOCIAL_FOLLOW, 409, "too_many_follows", "limit");
	n = social_msg_rep_encode(&p, buf, sizeof buf);
	assert_int_equal(social_msg_rep_decode(SOCIAL_FOLLOW, 409, buf, (size_t)n, &p2), 0);
	assert_string_equal(p2.code, "too_many_follows");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memory),
		cmocka_unit_test(test_disk_resumes),
		cmocka_unit_test(test_feed_max),
		cmocka_unit_test(test_round_robin),
		cmocka_unit_test(test_cursor),
		cmocka_unit_test(test_msg),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
