/* The mailbox table (src/svc/mailbox/mb_table.h): send, lease, ack, nack
 * backoff, DLQ after max_deliveries, requeue, quotas, idempotency (replay,
 * conflict, pending, window), a failed commit undone, and what each change
 * asks the disk to hold; a table loaded from the records holds the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

/* The sweep: waits that ended are found across recipients without a
 * receive, counted once (a later receive does not count them again),
 * bounded per call; past max_deliveries into the DLQ, as a receive does. */
static void test_sweep(void **state)
{
	mb_table *t = mb_table_new(&LIM);
	mb_entry *es[10];
	mb_batch b;
	uint64_t a[3], bid, to, moves;
	bool dlq;

	(void)state;
	assert_int_equal(mb_table_next_wake(t), UINT64_MAX);
	for (int i = 0; i < 3; i++)
		assert_int_equal(send1(t, "a", "m", "", 100, &a[i]), MB_OK);
	assert_int_equal(send1(t, "b", "n", "", 100, &bid), MB_OK);
	assert_int_equal(mb_table_next_wake(t), UINT64_MAX);   /* nothing waits */
	assert_int_equal(recv_n(t, "a", 100, 50, es), 3);       /* until 150 */
	assert_int_equal(recv_n(t, "b", 100, 20, es), 1);       /* until 120 */
	assert_int_equal(mb_table_next_wake(t), 120);
	mb_batch_init(&b);
	assert_int_equal(mb_table_sweep(t, 119, 100, &b), 0);
	assert_int_equal(mb_table_sweep(t, 120, 100, &b), 1);   /* b's, alone */
	assert_int_equal(b.n, 0);                               /* nothing to write */
	assert_int_equal(mb_table_next_wake(t), 150);
	mb_table_take_events(t, &to, &moves);
	assert_int_equal(to, 1);
	assert_int_equal(moves, 0);
	/* visible again; the receive does not count it a second time */
	assert_int_equal(recv_n(t, "b", 121, 1000, es), 1);
	assert_int_equal(es[0]->id, bid);
	assert_int_equal(es[0]->deliveries, 2);
	mb_table_take_events(t, &to, &moves);
	assert_int_equal(to, 0);
	assert_int_equal(mb_table_next_wake(t), 150);
	/* bounded: two now, the third next turn */
	assert_int_equal(mb_table_sweep(t, 200, 2, &b), 2);
	assert_int_equal(mb_table_next_wake(t), 150);
	assert_int_equal(mb_table_sweep(t, 200, 2, &b), 1);
	assert_int_equal(mb_table_next_wake(t), 1121);
	assert_int_equal(mb_table_sweep(t, 200, 2, &b), 0);
	mb_table_take_events(t, &to, &moves);
	assert_int_equal(to, 3);
	assert_int_equal(recv_n(t, "a", 201, 10, es), 3);       /* 2nd delivery: the last */
	assert_int_equal(es[0]->id, a[0]);
	mb_table_take_events(t, &to, &moves);
	assert_int_equal(to, 0);
	/* a nack's backoff that ends is no visibility timeout */
	assert_int_equal(mb_table_nack(t, "b", bid, 300, &b, &dlq, &to), MB_OK);
	assert_true(dlq);                                       /* b used its 2 deliveries */
	mb_batch_clear(&b);
	/* the last leases run out: into the DLQ at the sweep, recorded */
	assert_int_equal(mb_table_next_wake(t), 211);
	assert_int_equal(mb_table_sweep(t, 211, 100, &b), 3);
	assert_int_equal(b.n, 3);
	assert_int_equal(b.ops[0].kind, MB_OP_PUT_META);
	mb_batch_clear(&b);
	mb_table_take_events(t, &to, &moves);
	assert_int_equal(to, 3);
	assert_int_equal(moves, 4);                             /* 3 + the nack's */
	assert_int_equal(mb_table_dlq_depth(t), 4);
	assert_int_equal(mb_table_depth(t), 0);
	assert_int_equal(mb_table_ack(t, "a", a[1], &b), MB_IN_DLQ);
	assert_int_equal(mb_table_next_wake(t), UINT64_MAX);
	assert_int_equal(recv_n(t, "a", 300, 10, es), 0);
	mb_table_take_events(t, &to, &moves);
	assert_int_equal(to + moves, 0);
	/* requeued and nacked: the backoff's end wakes it, uncounted */
	assert_int_equal(mb_table_requeue(t, "a", a[2], 400, &b), MB_OK);
	assert_int_equal(recv_n(t, "a", 400, 1000, es), 1);
	assert_int_equal(mb_table_nack(t, "a", a[2], 401, &b, &dlq, &to), MB_OK);
	assert_false(dlq);
	assert_int_equal(mb_table_next_wake(t), 411);
	assert_int_equal(mb_table_sweep(t, 411, 100, &b), 1);
	mb_table_take_events(t, &to, &moves);
	assert_int_equal(to + moves, 0);
	assert_int_equal(mb_table_next_wake(t), UINT64_MAX);
	mb_batch_clear(&b);
	mb_table_free(t);
}

/* Many recipients, leases of many lengths, acks and receives between the
 * sweeps: each sweep handles exactly the leases that ended, and the next
 * wake is always the earliest lease left (the heap keeps its order). */
static void test_sweep_many_boxes(void **state)
{
	enum { BOXES = 300, PER = 3 };
	static uint64_t until[BOXES][PER], ids[BOXES][PER];
	mb_limits lim = LIM;
	mb_table *t;
	mb_entry *es[10];
	mb_batch b;
	uint32_t rnd = 12345;
	char name[16];
	uint64_t to, moves, left = 0, acks = 0;

	(void)state;
	lim.max_messages = BOXES * PER;
	lim.max_bytes = lim.quota_bytes = 1u << 20;
	lim.max_deliveries = 10;
	t = mb_table_new(&lim);
	for (int x = 0; x < BOXES; x++) {
		snprintf(name, sizeof name, "r%d", x);
		for (int i = 0; i < PER; i++) {
			uint32_t lease;
			rnd = rnd * 1103515245u + 12345u;
			lease = 1 + (rnd >> 16) % 1000;
			assert_int_equal(send1(t, name, "x", "", 1, &ids[x][i]), MB_OK);
			mb_batch_init(&b);
			assert_int_equal(mb_table_recv(t, name, 1, 1u << 20, lease, 1, &b, es), 1);
			mb_batch_clear(&b);
			until[x][i] = 1 + lease;
			left++;
		}
	}
	mb_batch_init(&b);
	for (uint64_t now = 0; now <= 1002; now += 7) {
		uint64_t due = 0, min = UINT64_MAX;
		for (int x = 0; x < BOXES; x++)
			for (int i = 0; i < PER; i++)
				if (until[x][i] && until[x][i] <= now)
					due++, until[x][i] = 0;
		/* now and then an ack on the way (no lease end to count) */
		if (now % 49 == 0) {
			int x = (int)(now % BOXES);
			for (int i = 0; i < PER; i++)
				if (until[x][i]) {
					snprintf(name, sizeof name, "r%d", x);
					assert_int_equal(mb_table_ack(t, name, ids[x][i], &b), MB_OK);
					until[x][i] = 0;
					left--;
					acks++;
					break;
				}
		}
		assert_int_equal(mb_table_sweep(t, now, BOXES * PER, &b), due);
		mb_table_take_events(t, &to, &moves);
		assert_int_equal(to, due);
		left -= due;
		for (int x = 0; x < BOXES; x++)
			for (int i = 0; i < PER; i++)
				if (until[x][i] && until[x][i] < min)
					min = until[x][i];
		assert_int_equal(mb_table_next_wake(t), min);
	}
	assert_int_equal(left, 0);
	assert_true(acks > 0);
	assert_int_equal(b.n, acks);   /* the acks' deletes; the wakes write nothing */
	mb_batch_clear(&b);
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
		cmocka_unit_test(test_sweep),
		cmocka_unit_test(test_sweep_many_boxes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
