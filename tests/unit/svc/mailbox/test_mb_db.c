/* The mailbox's LMDB (src/svc/mailbox/mb_db.h): batches committed alone and
 * as a group come back at load — records, bodies, idempotency keys and the
 * next id — an ack's delete is gone, and a reopened table is the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "svc/mailbox/mb_db.h"

static const mb_limits LIM = {
	.max_deliveries = 3, .quota_count = 100, .quota_bytes = 1u << 20, .max_messages = 1000,
	.max_bytes = 1u << 20, .max_idem = 100, .idem_window_ms = 100000, .backoff_base_ms = 10,
	.backoff_max_ms = 100, .keep_bodies = false,
};

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/mn-ut-mbdb-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static uint64_t send_to(mb_table *t, mb_batch *b, const char *to, const char *body,
                        const char *key)
{
	mb_req_send q = { .kind = MB_KIND_TEXT, .body_len = (uint32_t)strlen(body) };
	mb_entry *e = NULL;
	uint64_t rid, rms;

	strcpy(q.recipient, to);
	strcpy(q.sender, "t:a");
	strcpy(q.idem, key);
	assert_int_equal(mb_table_send(t, &q, (const uint8_t *)body, 50, b, &e, &rid, &rms), MB_OK);
	return e->id;
}

static void test_commit_and_load(void **state)
{
	char err[MB_DB_ERR_MAX];
	mb_db *db = mb_db_open(dir, LIM.max_bytes, LIM.max_messages, err, sizeof err);
	mb_table *t = mb_table_new(&LIM), *u;
	mb_batch b1, b2, b3;
	const mb_batch *group[2] = { &b2, &b3 };
	mb_entry *es[4];
	uint64_t a, c, d, id;
	uint8_t body[16];

	(void)state;
	assert_non_null(db);
	mb_batch_init(&b1);
	mb_batch_init(&b2);
	mb_batch_init(&b3);
	a = send_to(t, &b1, "bob", "first", "k1");
	assert_int_equal(mb_db_commit(db, &b1), 0);
	mb_table_send_done(t, a, true);
	c = send_to(t, &b2, "bob", "second", "");
	d = send_to(t, &b3, "carol", "third", "");
	assert_int_equal(mb_db_commit_many(db, group, 2), 0);   /* one transaction */
	mb_table_send_done(t, c, true);
	mb_table_send_done(t, d, true);
	mb_batch_clear(&b1);
	mb_batch_clear(&b2);
	mb_batch_clear(&b3);
	/* lease both of bob's, ack the first */
	assert_int_equal(mb_table_recv(t, "bob", 4, 1u << 20, 1000, 60, &b1, es), 2);
	assert_int_equal(mb_table_ack(t, "bob", a, &b1), MB_OK);
	assert_int_equal(mb_db_commit(db, &b1), 0);
	mb_batch_clear(&b1);
	assert_int_equal(mb_db_body(db, c, body, 6), 0);
	assert_memory_equal(body, "second", 6);
	assert_int_equal(mb_db_body(db, a, body, 5), -1);   /* acked: gone */
	mb_table_free(t);
	mb_db_close(db);

	/* reopen: what was committed is there */
	db = mb_db_open(dir, LIM.max_bytes, LIM.max_messages, err, sizeof err);
	u = mb_table_new(&LIM);
	assert_non_null(db);
	assert_int_equal(mb_db_load(db, u, err, sizeof err), 0);
	assert_int_equal(mb_table_depth(u), 2);
	assert_int_equal(mb_table_idem_keys(u), 1);
	/* c's lease (until 1060) holds after the reload; carol's message is free */
	assert_int_equal(mb_table_recv(u, "bob", 4, 1u << 20, 10, 100, &b1, es), 0);
	assert_int_equal(mb_table_recv(u, "bob", 4, 1u << 20, 10, 1060, &b1, es), 1);
	assert_int_equal(es[0]->id, c);
	assert_int_equal(es[0]->deliveries, 2);
	assert_int_equal(mb_table_recv(u, "carol", 4, 1u << 20, 10, 100, &b1, es), 1);
	mb_batch_clear(&b1);
	/* the key still answers the first send; ids are never reused */
	{
		mb_req_send q = { .kind = MB_KIND_TEXT, .body_len = 5 };
		mb_entry *e;
		uint64_t rid = 0, rms = 0;
		strcpy(q.recipient, "bob");
		strcpy(q.sender, "t:a");
		strcpy(q.idem, "k1");
		assert_int_equal(mb_table_send(u, &q, (const uint8_t *)"first", 70, &b1, &e, &rid, &rms),
		                 MB_REPLAY);
		assert_int_equal(rid, a);
	}
	id = send_to(u, &b1, "bob", "fourth", "");
	assert_true(id > d);
	mb_batch_clear(&b1);
	mb_table_free(u);
	mb_db_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commit_and_load),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
