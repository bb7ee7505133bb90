/*
 * bench/social_model.c — the measurement behind the feed's design choice
 * (docs/social.md "Fan-out on write, and why"): the real social tables
 * (src/svc/social/social_db.h, LMDB on disk under $TMPDIR) timed in
 * process, no HTTP or RPC, for
 *
 *   write   one post fanned out to F followers (batches of 1000, one
 *           fsynced commit each): what fan-out-on-write pays per post
 *   read-w  a 50-entry feed page when feeds are written at post time
 *           (fan-out on write: one range read)
 *   read-r  the same page when feeds are assembled at read time (fan-out on
 *           read): one newest-entry read per followed author (K of them,
 *           up to social.max_following), then the merge of K heads
 *
 * Built by tests/meson.build as build/tests/social_model; run by
 * bench/facets.sh (drill "model") or alone: social_model [F] [K...].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svc/social/social_db.h"

static social_rep rep;

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void must(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "social_model: %s failed\n", what);
		exit(1);
	}
}

static void follow_range(social_db *db, const char *prefix, unsigned from, unsigned n,
                         const char *other)
{
	char u[SOCIAL_USER_MAX + 1];
	bool created;

	for (unsigned a = from; a < from + n; a += 1000) {
		social_wtxn *t = social_db_begin(db);
		must(t != NULL, "begin");
		for (unsigned i = a; i < a + 1000 && i < from + n; i++) {
			snprintf(u, sizeof u, "%s%07u", prefix, i);
			must(social_db_follow(t, u, other, 1000000, &created) == SOCIAL_DB_OK, "follow");
		}
		must(social_db_end(t, true) == SOCIAL_DB_OK, "commit");
	}
}

/* Post as author and fan out to every follower; ms. */
static double post_all(social_db *db, const char *author)
{
	uint8_t cid[32] = { 7 };
	uint64_t post, p, ts;
	unsigned delivered;
	bool done = false;
	double t0 = now_ms();
	social_wtxn *t = social_db_begin(db);

	must(t && social_db_post(t, author, cid, 1, &post) == SOCIAL_DB_OK, "post");
	must(social_db_end(t, true) == SOCIAL_DB_OK, "commit");
	while (!done) {
		t = social_db_begin(db);
		must(t && social_db_fanout(t, 1000, 1000, 0, &p, &delivered, &done, &ts) == SOCIAL_DB_OK, "fanout");
		must(social_db_end(t, true) == SOCIAL_DB_OK, "commit");
	}
	return now_ms() - t0;
}

/* Authors a0000000.. each with one post in its timeline, the feed of its one
 * follower tl<n>; the first 50 also followed by f0000042 (a full page). */
static void setup_timelines(social_db *db, unsigned kmax)
{
	char author[SOCIAL_USER_MAX + 1], tl[SOCIAL_USER_MAX + 1];
	uint8_t cid[32] = { 9 };
	uint64_t post, ts;
	unsigned delivered;
	bool created, done;

	for (unsigned a = 0; a < kmax; a += 1000) {
		social_wtxn *t = social_db_begin(db);
		must(t != NULL, "begin");
		for (unsigned i = a; i < a + 1000 && i < kmax; i++) {
			snprintf(author, sizeof author, "a%07u", i);
			snprintf(tl, sizeof tl, "tl%07u", i);
			must(social_db_follow(t, tl, author, 1000000, &created) == SOCIAL_DB_OK, "follow");
			if (i < 50)
				must(social_db_follow(t, "f0000042", author, 1000000, &created) ==
				     SOCIAL_DB_OK, "follow");
			must(social_db_post(t, author, cid, 2, &post) == SOCIAL_DB_OK, "post");
		}
		for (post = 1; post != 0;)
			must(social_db_fanout(t, 1000, 1000, 0, &post, &delivered, &done, &ts) == SOCIAL_DB_OK,
			     "fanout");
		must(social_db_end(t, true) == SOCIAL_DB_OK, "commit");
	}
}

int main(int argc, char **argv)
{
	char dir[256], err[SOCIAL_DB_ERR_MAX], u[SOCIAL_USER_MAX + 1], cmd[300];
	unsigned f = argc > 1 ? (unsigned)atoi(argv[1]) : 10000;
	unsigned ks[8] = { 100, 1000, 5000 }, nk = 3;
	const char *tmp = getenv("TMPDIR");
	social_db *db;
	bool more;

	if (argc > 2)
		for (nk = 0; nk < 8 && (int)nk + 2 < argc; nk++)
			ks[nk] = (unsigned)atoi(argv[nk + 2]);
	snprintf(dir, sizeof dir, "%s/mn-social-model-XXXXXX", tmp ? tmp : "/tmp");
	must(mkdtemp(dir) != NULL, "mkdtemp");
	must((db = social_db_open(dir, 8ull << 30, err, sizeof err)) != NULL, err);

	/* write: F followers of "star", one post */
	follow_range(db, "f", 0, f, "star");
	double w = post_all(db, "star");
	printf("MODEL write %u followers: %.1f ms (%.2f us per follower)\n", f, w, w * 1e3 / f);

	/* timelines for read-r: author a%05u's own entries live in the feed of
	 * its one follower tl%07u (the table has no per-author list; this is
	 * the same key shape and cost) */
	unsigned kmax = 0;
	for (unsigned i = 0; i < nk; i++)
		kmax = ks[i] > kmax ? ks[i] : kmax;
	setup_timelines(db, kmax);
	/* read-w: a follower's page, the table as fan-out on write leaves it */
	double t0 = now_ms();
	for (int i = 0; i < 1000; i++)
		must(social_db_feed(db, "f0000042", UINT64_MAX, 50, &rep, &more) == SOCIAL_DB_OK, "feed");
	printf("MODEL read-w page of %u: %.3f ms\n", (unsigned)rep.n, (now_ms() - t0) / 1000);
	/* read-r: K newest-entry reads, one per followed author (the merge of
	 * K heads is left out: it only adds) */
	for (unsigned i = 0; i < nk; i++) {
		unsigned k = ks[i];
		int reps = k >= 1000 ? 20 : 200;
		t0 = now_ms();
		for (int r = 0; r < reps; r++)
			for (unsigned a = 0; a < k; a++) {
				snprintf(u, sizeof u, "tl%07u", a);
				must(social_db_feed(db, u, UINT64_MAX, 1, &rep, &more) == SOCIAL_DB_OK, "feed");
			}
		printf("MODEL read-r page following %u: %.3f ms\n", k, (now_ms() - t0) / reps);
	}
	social_db_free(db);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}
