/*
 * mb_table_wake.c — the waits that end (see mb_table.h): a lease that ran
 * out with no ack, a nack's backoff that is over.
 *
 * Each recipient keeps its waits in box->wait, ordered by the time they
 * end (visible_ms). The boxes whose wait is not empty sit in one binary
 * min-heap keyed by the end of their first wait (box->wake_ms), so the
 * earliest end of all is the heap's top: the service's sweep looks at it
 * and does nothing more when it lies ahead (O(1) when nothing ended). A
 * box's place follows every change of its first wait (wheap_update, from
 * wait_insert and entry_unqueue): O(log boxes), nothing when the first
 * wait did not change. Room for every box is made when the box is
 * created, so keeping the heap never fails.
 *
 * A wait that ended is handled by box_wake, the one place that does it,
 * whether the sweep or a RECV of the recipient finds it first: the lease
 * is counted as a visibility timeout and cleared in the same step, so the
 * other never counts it again.
 */
#include "svc/mailbox/mb_table.h"
#include "svc/mailbox/mb_table_int.h"

#include <stdlib.h>

#define WHEAP_MIN 64u

/* ---- the heap ------------------------------------------------------------------- */

int wheap_reserve(mb_table *t, size_t n)
{
	size_t cap = t->wheap_cap ? t->wheap_cap : WHEAP_MIN;
	mb_box **h;

	if (n <= t->wheap_cap)
		return 0;
	while (cap < n)
		cap *= 2;
	if (!(h = realloc(t->wheap, cap * sizeof *h)))
		return -1;
	t->wheap = h;
	t->wheap_cap = cap;
	return 0;
}

static void wheap_set(mb_table *t, size_t i, mb_box *x)
{
	t->wheap[i] = x;
	x->wpos = i + 1;
}

static void wheap_up(mb_table *t, size_t i)
{
	mb_box *x = t->wheap[i];

	while (i > 0 && t->wheap[(i - 1) / 2]->wake_ms > x->wake_ms) {
		wheap_set(t, i, t->wheap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	wheap_set(t, i, x);
}

static void wheap_down(mb_table *t, size_t i)
{
	mb_box *x = t->wheap[i];
	size_t c;

	while ((c = 2 * i + 1) < t->nwheap) {
		if (c + 1 < t->nwheap && t->wheap[c + 1]->wake_ms < t->wheap[c]->wake_ms)
			c++;
		if (t->wheap[c]->wake_ms >= x->wake_ms)
			break;
		wheap_set(t, i, t->wheap[c]);
		i = c;
	}
	wheap_set(t, i, x);
}

static void wheap_remove(mb_table *t, mb_box *x)
{
	size_t i = x->wpos - 1;
	mb_box *last = t->wheap[--t->nwheap];

	x->wpos = 0;
	if (last == x)
		return;
	wheap_set(t, i, last);
	wheap_up(t, i);
	wheap_down(t, last->wpos - 1);
}

void wheap_update(mb_table *t, mb_box *x)
{
	const mb_entry *first = TAILQ_FIRST(&x->wait);
	uint64_t was = x->wake_ms;

	if (!first) {
		if (x->wpos)
			wheap_remove(t, x);
		return;
	}
	x->wake_ms = first->visible_ms;
	if (!x->wpos) {
		/* Cannot be full: box_get made room for every box. Were it
		 * ever, the box's receives would still find its waits. */
		if (t->nwheap >= t->wheap_cap)
			return;
		wheap_set(t, t->nwheap++, x);
		wheap_up(t, x->wpos - 1);
	} else if (x->wake_ms < was) {
		wheap_up(t, x->wpos - 1);
	} else if (x->wake_ms > was) {
		wheap_down(t, x->wpos - 1);
	}
}

/* ---- waking ---------------------------------------------------------------------- */

size_t box_wake(mb_table *t, mb_box *x, uint64_t now, size_t max, mb_batch *b)
{
	mb_entry *e;
	size_t n = 0;

	while (n < max && (e = TAILQ_FIRST(&x->wait)) != NULL && e->visible_ms <= now) {
		n++;
		if (e->leased) {   /* its lease ran out with no ack: counted here, once */
			e->leased = false;
			t->ev_timeouts++;
		}
		if (e->deliveries >= t->lim.max_deliveries) {
			entry_to_dlq(t, e, b);
			continue;
		}
		entry_unqueue(t, e);
		TAILQ_INSERT_TAIL(&x->live, e, link);
	}
	return n;
}

uint64_t mb_table_next_wake(const mb_table *t)
{
	return t->nwheap ? t->wheap[0]->wake_ms : UINT64_MAX;
}

size_t mb_table_sweep(mb_table *t, uint64_t now, size_t max, mb_batch *b)
{
	size_t n = 0;

	/* The top's first wait has ended: box_wake handles at least it, so
	 * every turn makes progress, and max bounds the whole. */
	while (n < max && t->nwheap && t->wheap[0]->wake_ms <= now)
		n += box_wake(t, t->wheap[0], now, max - n, b);
	return n;
}
