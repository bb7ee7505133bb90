/* The mailbox table (src/svc/mailbox/mb_table.h): send, lease, ack, nack
 * backoff, DLQ after max_deliveries, requeue, quotas, idempotency (replay,
 * conflict, pending, window), a failed commit undone, and what each change
 * asks the disk to hold; a table loaded from the records holds the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "svc/mailbox/mb_table.h"

static const mb_limits LIM = {
	.max_deliveries = 2, .quota_count = 3, .quota_bytes = 100, .max_messages = 10,
	.max_bytes = 1000, .max_idem = 4, .idem_window_ms = 1000, .backoff_base_ms = 10,
	.backoff_max_ms = 15, .keep_bodies = true,
};

static mb_status send1(mb_table *t, const char *to, const char *body, const char *key,
                       uint64_t now, uint64_t *id)
{
	mb_req_send q = { .kind = MB_KIND_TEXT, .body_len = (uint32_t)strlen(body) };
	mb_batch b;
	mb_entry *e = NULL;
	uint64_t rid = 0, rms = 0;
	mb_status st;

	strcpy(q.recipient, to);
	strcpy(q.sender, "t:s");
	strcpy(q.idem, key);
	mb_batch_init(&b);
	st = mb_table_send(t, &q, (const uint8_t *)body, now, &b, &e, &rid, &rms);
	if (st == MB_OK) {
		assert_true(b.n >= 2);   /* record, next id (and body, key) */
		*id = e->id;
		mb_table_send_done(t, e->id, true);
	} else if (st == MB_REPLAY) {
		*id = rid;
	}
	mb_batch_clear(&b);
	return st;
}

static size_t recv_n(mb_table *t, const char *name, uint64_t now, uint32_t lease, mb_entry **out)
{
	mb_batch b;
	size_t n;

	mb_batch_init(&b);
	n = mb_table_recv(t, name, 10, 1u << 20, lease, now, &b, out);
	mb_batch_clear(&b);
	return n;
}

static void test_lease_ack_nack_dlq(void **state)
{
	mb_table *t = mb_table_new(&LIM);
	mb_entry *es[10];
	mb_batch b;
	uint64_t a, c, vis, to, moves;
	bool dlq;

	(void)state;
	assert_int_equal(send1(t, "bob", "one", "", 100, &a), MB_OK);
	assert_int_equal(send1(t, "bob", "two", "", 100, &c), MB_OK);
	assert_int_equal(mb_table_depth(t), 2);
	assert_int_equal(recv_n(t, "bob", 100, 50, es), 2);
	assert_int_equal(es[0]->id, a);
	assert_int_equal(recv_n(t, "bob", 120, 50, es), 0);     /* leased */
	mb_batch_init(&b);
	assert_int_equal(mb_table_ack(t, "bob", a, &b), MB_OK);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.ops[0].kind, MB_OP_DEL_MSG);
	mb_batch_clear(&b);
	assert_int_equal(mb_table_ack(t, "bob", a, &b), MB_NOT_FOUND);
	assert_int_equal(mb_table_ack(t, "alice", c, &b), MB_NOT_FOUND);   /* not hers */
	/* the lease of c runs out: delivered again (2nd delivery), counted */
	assert_int_equal(recv_n(t, "bob", 151, 50, es), 1);
	assert_int_equal(es[0]->deliveries, 2);
	mb_table_take_events(t, &to, &moves);
	assert_int_equal(to, 1);
	/* nack at max_deliveries: into the DLQ */
	assert_int_equal(mb_table_nack(t, "bob", c, 160, &b, &dlq, &vis), MB_OK);
	assert_true(dlq);
	assert_int_equal(mb_table_dlq_depth(t), 1);
	assert_int_equal(mb_table_depth(t), 0);
	assert_int_equal(mb_table_ack(t, "bob", c, &b), MB_IN_DLQ);
	assert_int_equal(mb_table_dlq(t, "bob", 10, es), 1);
	assert_int_equal(mb_table_requeue(t, "bob", c, 170, &b), MB_OK);
	assert_int_equal(mb_table_requeue(t, "bob", c, 170, &b), MB_NOT_FOUND);
	assert_int_equal(recv_n(t, "bob", 170, 50, es), 1);
	assert_int_equal(es[0]->deliveries, 1);
	/* nack backoff: 10 ms after the first delivery */
	assert_int_equal(mb_table_nack(t, "bob", c, 180, &b, &dlq, &vis), MB_OK);
	assert_false(dlq);
	assert_int_equal(vis, 190);
	assert_int_equal(recv_n(t, "bob", 189, 50, es), 0);
	assert_int_equal(recv_n(t, "bob", 190, 50, es), 1);
	/* the lease runs out at max_deliveries: the next receive moves it */
	assert_int_equal(recv_n(t, "bob", 300, 50, es), 0);
	mb_table_take_events(t, &to, &moves);
	assert_int_equal(moves, 2);
	mb_batch_clear(&b);
	mb_table_free(t);
}

static void test_quotas_and_undo(void **state)
{
	mb_table *t = mb_table_new(&LIM);
	char big[101];
	uint64_t id;
	mb_req_send q = { .kind = MB_KIND_TEXT, .body_len = 1 };
	mb_batch b;
	mb_entry *e, *es[10];
	uint64_t rid, rms;

	(void)state;
	memset(big, 'x', 100);
	big[100] = 0;
	assert_int_equal(send1(t, "q", big, "", 1, &id), MB_OK);
	assert_int_equal(send1(t, "q", "y", "", 1, &id), MB_QUOTA_BYTES);
	assert_int_equal(send1(t, "r", "1", "", 1, &id), MB_OK);
	assert_int_equal(send1(t, "r", "2", "", 1, &id), MB_OK);
	assert_int_equal(send1(t, "r", "3", "", 1, &id), MB_OK);
	assert_int_equal(send1(t, "r", "4", "", 1, &id), MB_QUOTA_COUNT);
	/* a send whose commit failed is gone, its key too, never delivered */
	strcpy(q.recipient, "u");
	strcpy(q.sender, "t:s");
	strcpy(q.idem, "k");
	mb_batch_init(&b);
	assert_int_equal(mb_table_send(t, &q, (const uint8_t *)"z", 5, &b, &e, &rid, &rms), MB_OK);
	assert_int_equal(recv_n(t, "u", 5, 10, es), 0);   /* pending: invisible */
	assert_int_equal(send1(t, "u", "z", "k", 5, &id), MB_IDEM_PENDING);
	mb_table_send_done(t, e->id, false);
	mb_batch_clear(&b);
	assert_int_equal(recv_n(t, "u", 5, 10, es), 0);
	assert_int_equal(mb_table_idem_keys(t), 0);
	assert_int_equal(send1(t, "u", "z", "k", 6, &id), MB_OK);
	mb_table_free(t);
}

static void test_idempotency(void **state)
{
	mb_table *t = mb_table_new(&LIM);
	uint64_t a, b2;
	mb_batch b;

	(void)state;
	assert_int_equal(send1(t, "i", "m", "k1", 10, &a), MB_OK);
	assert_int_equal(send1(t, "i", "m", "k1", 500, &b2), MB_REPLAY);
	assert_int_equal(b2, a);
	assert_int_equal(send1(t, "i", "other", "k1", 500, &b2), MB_IDEM_CONFLICT);
	assert_int_equal(send1(t, "j", "m", "k1", 500, &b2), MB_IDEM_CONFLICT);
	/* past the window the key starts afresh */
	assert_int_equal(send1(t, "i", "m", "k1", 1010, &b2), MB_OK);
	assert_true(b2 != a);
	/* expiry forgets keys older than the window */
	mb_batch_init(&b);
	assert_int_equal(mb_table_expire_idem(t, 3000, 10, &b), 1);
	assert_int_equal(b.ops[0].kind, MB_OP_DEL_IDEM);
	mb_batch_clear(&b);
	mb_table_free(t);
}

static void test_reload(void **state)
{
	mb_table *t = mb_table_new(&LIM), *u = mb_table_new(&LIM);
	mb_entry *es[10];
	uint8_t rec[MB_REC_MAX];
	uint64_t id;
	ssize_t n;

	(void)state;
	assert_int_equal(send1(t, "w", "body", "", 1, &id), MB_OK);
	assert_int_equal(recv_n(t, "w", 1, 100, es), 1);
	n = mb_rec_encode(es[0], rec, sizeof rec);
	assert_true(n > 0);
	assert_int_equal(mb_table_load(u, rec, (size_t)n), 0);
	assert_int_equal(mb_table_load(u, rec, (size_t)n), -1);          /* the id twice */
	assert_int_equal(mb_table_load(u, rec, (size_t)n - 1), -1);      /* truncated */
	assert_int_equal(mb_table_depth(u), 1);
	/* the lease survives the reload: invisible until it ends */
	assert_int_equal(recv_n(u, "w", 50, 100, es), 0);
	assert_int_equal(recv_n(u, "w", 101, 100, es), 1);
	assert_int_equal(es[0]->deliveries, 2);
	mb_table_free(t);
	mb_table_free(u);
}

/* Many leases ahead of it never hide a visible message (the scan bound). */
static void test_many_leases(void **state)
{
	mb_limits lim = LIM;
	mb_table *t;
	mb_entry *es[10];
	uint64_t id, last = 0;
	size_t got = 0;

	(void)state;
	lim.quota_count = lim.max_messages = 6000;
	lim.quota_bytes = lim.max_bytes = 1u << 20;
	lim.max_deliveries = 5;
	t = mb_table_new(&lim);
	for (int i = 0; i < 5000; i++)
		assert_int_equal(send1(t, "m", "x", "", 1, &id), MB_OK);
	for (size_t n; (n = recv_n(t, "m", 2, 1000, es)) > 0; )
		got += n;
	assert_int_equal(got, 5000);
	assert_int_equal(send1(t, "m", "new", "", 3, &last), MB_OK);
	assert_int_equal(recv_n(t, "m", 4, 10, es), 1);
	assert_int_equal(es[0]->id, last);
	/* a short lease ends before the long ones: found at once */
	assert_int_equal(recv_n(t, "m", 15, 10, es), 1);
	assert_int_equal(es[0]->id, last);
	assert_int_equal(es[0]->deliveries, 2);
	/* every lease ended: visible again in the order the leases ended */
	assert_int_equal(recv_n(t, "m", 2000, 10, es), 10);
	assert_int_equal(es[0]->id, last);
	assert_int_equal(es[0]->deliveries, 3);
	assert_int_equal(es[1]->id, 1);
	assert_int_equal(es[1]->deliveries, 2);
	mb_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lease_ack_nack_dlq),
		cmocka_unit_test(test_quotas_and_undo),
		cmocka_unit_test(test_idempotency),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_many_leases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
