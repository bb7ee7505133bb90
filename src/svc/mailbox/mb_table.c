/*
 * mb_table.c — the mailbox's state in memory (see mb_table.h).
 *
 * Three chained hash tables with a fixed number of buckets (sized from the
 * limits at creation, so nothing grows with input): entries by id (ids are
 * sequential: the low bits spread them), boxes by name and idempotency keys
 * by sender and key (both by the first 8 bytes of their BLAKE3). Idempotency
 * keys also sit on a list in the order they were made, so the ones past the
 * window are forgotten from its head.
 *
 * Rules (docs/mailbox.md):
 *   - each recipient has three queues: live (visible, in queue order),
 *     wait (leased or backing off, by the time it ends) and dlq;
 *   - a wait that ended (mb_table_wake.c: the service's sweep, every
 *     MAILBOX_SWEEP_MS, or a RECV of that recipient, whichever comes
 *     first) moves the message back to the tail of live; one whose lease
 *     ran out is counted as a visibility timeout (once), and one that
 *     reached max_deliveries moves to the DLQ instead;
 *   - a RECV leases from the head of live: deliveries + 1, into wait until
 *     now + lease;
 *   - ACK deletes a message that was delivered; NACK makes it visible after
 *     backoff_base << (deliveries - 1) (capped), or moves it to the DLQ
 *     when its deliveries reached max_deliveries;
 *   - a requeued dead letter starts again: deliveries 0, visible now;
 *   - quotas count live and dead messages of the recipient, and bytes.
 */
#include "svc/mailbox/mb_table.h"
#include "svc/mailbox/mb_table_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/b3.h"
#include "lib/wire.h"

/* ---- batches ----------------------------------------------------------------- */

void mb_batch_init(mb_batch *b)
{
	memset(b, 0, sizeof *b);
}

void mb_batch_clear(mb_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->ops[i].key);
		if (!b->ops[i].val_borrowed)
			free(b->ops[i].val);
	}
	free(b->ops);
	mb_batch_init(b);
}

mb_op *batch_add(mb_batch *b, mb_op_kind kind, uint64_t id)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8;
		mb_op *ops = realloc(b->ops, cap * sizeof *ops);
		if (!ops) {
			b->nomem = true;
			return NULL;
		}
		b->ops = ops;
		b->cap = cap;
	}
	b->ops[b->n] = (mb_op){ .kind = kind, .id = id };
	return &b->ops[b->n++];
}

void batch_put_meta(mb_batch *b, const mb_entry *e)
{
	uint8_t buf[MB_REC_MAX];
	ssize_t n = mb_rec_encode(e, buf, sizeof buf);
	mb_op *op = n > 0 ? batch_add(b, MB_OP_PUT_META, e->id) : NULL;

	if (n <= 0) {
		b->nomem = true;
		return;
	}
	if (!op)
		return;
	if (!(op->val = malloc((size_t)n))) {
		b->nomem = true;
		return;
	}
	memcpy(op->val, buf, (size_t)n);
	op->val_len = (size_t)n;
}

/* ---- records ------------------------------------------------------------------ */

ssize_t mb_rec_encode(const mb_entry *e, uint8_t *buf, size_t cap)
{
	wire_w w;

	wire_w_init(&w, buf, cap);
	wire_put_u8(&w, MB_REC_VERSION);
	wire_put_u64(&w, e->id);
	wire_put_str(&w, e->box->name);
	wire_put_str(&w, e->sender);
	wire_put_u8(&w, e->kind);
	wire_put_u8(&w, e->dlq);
	wire_put_u32(&w, e->deliveries);
	wire_put_u64(&w, e->sent_ms);
	wire_put_u64(&w, e->visible_ms);
	wire_put_raw(&w, e->cid, sizeof e->cid);
	wire_put_u32(&w, e->body_len);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

/* ---- hashing -------------------------------------------------------------------- */

uint64_t mb_hash(const void *p, size_t n)
{
	uint8_t d[B3_OUT_LEN];
	uint64_t h = 0;

	b3_hash(p, n, d);
	for (int i = 0; i < 8; i++)
		h = h << 8 | d[i];
	return h;
}

mb_entry *entry_find(const mb_table *t, uint64_t id)
{
	mb_entry *e = t->ids[id & (t->nbuckets - 1)];

	while (e && e->id != id)
		e = e->hnext;
	return e;
}

static void entry_unhash(mb_table *t, mb_entry *e)
{
	mb_entry **p = &t->ids[e->id & (t->nbuckets - 1)];

	while (*p && *p != e)
		p = &(*p)->hnext;
	if (*p)
		*p = e->hnext;
}

static mb_box *box_find(const mb_table *t, const char *name, uint64_t h)
{
	mb_box *x = t->boxes[h & (t->nbuckets - 1)];

	while (x && (x->hash != h || strcmp(x->name, name) != 0))
		x = x->hnext;
	return x;
}

mb_box *box_get(mb_table *t, const char *name, bool create)
{
	size_t n = strlen(name);
	uint64_t h = mb_hash(name, n);
	mb_box *found = box_find(t, name, h), *x;

	if (found || !create || n > MB_NAME_MAX)
		return found;
	if (wheap_reserve(t, t->nboxes + 1) != 0 || !(x = calloc(1, sizeof *x)))
		return NULL;
	memcpy(x->name, name, n + 1);
	x->hash = h;
	TAILQ_INIT(&x->live);
	TAILQ_INIT(&x->wait);
	TAILQ_INIT(&x->dlq);
	x->hnext = t->boxes[h & (t->nbuckets - 1)];
	t->boxes[h & (t->nbuckets - 1)] = x;
	t->nboxes++;
	return x;
}

/* An empty box goes (a flood of recipients leaves nothing behind). */
void box_maybe_free(mb_table *t, mb_box *x)
{
	mb_box **p = &t->boxes[x->hash & (t->nbuckets - 1)];

	if (x->count)
		return;
	while (*p && *p != x)
		p = &(*p)->hnext;
	if (*p)
		*p = x->hnext;
	wheap_update(t, x);   /* its wait is empty: out of the heap (it is already) */
	t->nboxes--;
	free(x);
}

/* ---- life of an entry -------------------------------------------------------------- */

static struct mb_queue *entry_queue(mb_entry *e)
{
	return e->dlq ? &e->box->dlq : e->waiting ? &e->box->wait : &e->box->live;
}

/* Into box->wait, kept in visible_ms order. From the tail: leases of one
 * length arrive in order, so this is one step in the usual case (at worst
 * the recipient's quota_count). The box's place in the wake heap follows. */
static void wait_insert(mb_table *t, mb_entry *e)
{
	struct mb_queue *w = &e->box->wait;
	mb_entry *p = TAILQ_LAST(w, mb_queue);

	while (p && p->visible_ms > e->visible_ms)
		p = TAILQ_PREV(p, mb_queue, link);
	if (p)
		TAILQ_INSERT_AFTER(w, p, e, link);
	else
		TAILQ_INSERT_HEAD(w, e, link);
	e->waiting = true;
	wheap_update(t, e->box);
}

void entry_unqueue(mb_table *t, mb_entry *e)
{
	bool waited = e->waiting;

	TAILQ_REMOVE(entry_queue(e), e, link);
	e->waiting = false;
	if (waited)
		wheap_update(t, e->box);
}

void entry_free(mb_table *t, mb_entry *e)
{
	mb_box *x = e->box;

	entry_unqueue(t, e);
	entry_unhash(t, e);
	x->count--;
	x->bytes -= e->body_len;
	t->nmsgs--;
	t->bytes -= e->body_len;
	if (e->dlq)
		t->dlq_depth--;
	else if (!e->pending)
		t->depth--;
	free(e->body);
	free(e);
	box_maybe_free(t, x);
}

/* Link e (its box, id, dlq set) into the table. */
void entry_link(mb_table *t, mb_entry *e)
{
	mb_box *x = e->box;

	if (e->dlq)
		TAILQ_INSERT_TAIL(&x->dlq, e, link);
	else if (e->deliveries > 0)   /* loaded: its lease or backoff stands */
		wait_insert(t, e);
	else
		TAILQ_INSERT_TAIL(&x->live, e, link);
	e->hnext = t->ids[e->id & (t->nbuckets - 1)];
	t->ids[e->id & (t->nbuckets - 1)] = e;
	x->count++;
	x->bytes += e->body_len;
	t->nmsgs++;
	t->bytes += e->body_len;
	if (e->dlq)
		t->dlq_depth++;
	else if (!e->pending)
		t->depth++;
}

void entry_to_dlq(mb_table *t, mb_entry *e, mb_batch *b)
{
	entry_unqueue(t, e);
	TAILQ_INSERT_TAIL(&e->box->dlq, e, link);
	e->dlq = true;
	e->leased = false;
	t->depth--;
	t->dlq_depth++;
	t->ev_dlq++;
	batch_put_meta(b, e);
}

/* ---- table -------------------------------------------------------------------------- */

mb_table *mb_table_new(const mb_limits *lim)
{
	mb_table *t = calloc(1, sizeof *t);
	size_t nb = 1024;

	if (!t)
		return NULL;
	while (nb < lim->max_messages && nb < ((size_t)1 << 22))
		nb <<= 1;
	t->lim = *lim;
	t->nbuckets = nb;
	t->next_id = 1;
	TAILQ_INIT(&t->idem_age);
	t->ids = calloc(nb, sizeof *t->ids);
	t->boxes = calloc(nb, sizeof *t->boxes);
	t->idems = calloc(nb, sizeof *t->idems);
	if (!t->ids || !t->boxes || !t->idems) {
		mb_table_free(t);
		return NULL;
	}
	return t;
}

void mb_table_free(mb_table *t)
{
	mb_idem *k;

	if (!t)
		return;
	for (size_t i = 0; t->ids && i < t->nbuckets; i++)
		while (t->ids[i])
			entry_free(t, t->ids[i]);
	while ((k = TAILQ_FIRST(&t->idem_age)) != NULL)
		idem_remove(t, k);
	free(t->ids);
	free(t->boxes);
	free(t->idems);
	free(t->wheap);
	free(t);
}

void mb_table_set_next_id(mb_table *t, uint64_t next)
{
	if (next > t->next_id)
		t->next_id = next;
}

int mb_table_load(mb_table *t, const uint8_t *rec, size_t n)
{
	char name[MB_NAME_MAX + 1];
	mb_entry *e = calloc(1, sizeof *e);
	wire_r r;

	if (!e)
		return -1;
	wire_r_init(&r, rec, n);
	if (wire_get_u8(&r) != MB_REC_VERSION)
		r.bad = true;
	e->id = wire_get_u64(&r);
	wire_get_str(&r, name, sizeof name);
	wire_get_str(&r, e->sender, sizeof e->sender);
	e->kind = wire_get_u8(&r);
	e->dlq = wire_get_bool(&r);
	e->deliveries = wire_get_u32(&r);
	e->sent_ms = wire_get_u64(&r);
	e->visible_ms = wire_get_u64(&r);
	wire_get_raw(&r, e->cid, sizeof e->cid);
	e->body_len = wire_get_u32(&r);
	if (wire_end(&r) != 0 || e->id == 0 || entry_find(t, e->id) ||
	    mb_name_check(name, strlen(name), NULL, 0) != 0 || !(e->box = box_get(t, name, true))) {
		free(e);
		return -1;
	}
	entry_link(t, e);
	mb_table_set_next_id(t, e->id + 1);
	return 0;
}

/* ---- RECV, ACK, NACK ------------------------------------------------------------------ */

size_t mb_table_recv(mb_table *t, const char *name, unsigned max, uint64_t max_bytes,
                     uint32_t lease_ms, uint64_t now, mb_batch *b, mb_entry **out)
{
	mb_box *x = box_get(t, name, false);
	mb_entry *e, *next;
	size_t n = 0, seen = 0;
	uint64_t bytes = 0;

	if (!x)
		return 0;
	/* The waits that ended and the sweep has not seen yet (box_wake). */
	(void)box_wake(t, x, now, MB_SCAN_MAX, b);
	for (e = TAILQ_FIRST(&x->live); e && n < max && seen < MB_SCAN_MAX; e = next, seen++) {
		next = TAILQ_NEXT(e, link);
		if (e->pending)
			continue;
		if (n > 0 && bytes + e->body_len > max_bytes)
			break;
		bytes += e->body_len;
		out[n++] = e;
	}
	for (size_t i = 0; i < n; i++) {
		e = out[i];
		entry_unqueue(t, e);
		e->deliveries++;
		e->leased = true;
		e->visible_ms = now + lease_ms;
		wait_insert(t, e);
		batch_put_meta(b, e);
	}
	return n;
}

static mb_entry *entry_of(mb_table *t, const char *name, uint64_t id)
{
	mb_entry *e = entry_find(t, id);

	return e && !e->pending && strcmp(e->box->name, name) == 0 ? e : NULL;
}

mb_status mb_table_ack(mb_table *t, const char *name, uint64_t id, mb_batch *b)
{
	mb_entry *e = entry_of(t, name, id);

	if (!e)
		return MB_NOT_FOUND;
	if (e->dlq)
		return MB_IN_DLQ;
	if (e->deliveries == 0)
		return MB_NOT_DELIVERED;
	(void)batch_add(b, MB_OP_DEL_MSG, id);
	entry_free(t, e);
	return MB_OK;
}

static uint64_t nack_backoff(const mb_limits *lim, uint32_t deliveries)
{
	uint64_t d = lim->backoff_base_ms;

	for (uint32_t i = 1; i < deliveries && d < lim->backoff_max_ms; i++)
		d <<= 1;
	return d < lim->backoff_max_ms ? d : lim->backoff_max_ms;
}

mb_status mb_table_nack(mb_table *t, const char *name, uint64_t id, uint64_t now, mb_batch *b,
                        bool *dlq, uint64_t *visible_ms)
{
	mb_entry *e = entry_of(t, name, id);

	*dlq = false;
	*visible_ms = 0;
	if (!e)
		return MB_NOT_FOUND;
	if (e->dlq)
		return MB_IN_DLQ;
	if (e->deliveries == 0)
		return MB_NOT_DELIVERED;
	if (e->deliveries >= t->lim.max_deliveries) {
		entry_to_dlq(t, e, b);
		*dlq = true;
		return MB_OK;
	}
	entry_unqueue(t, e);
	e->leased = false;
	e->visible_ms = now + nack_backoff(&t->lim, e->deliveries);
	wait_insert(t, e);
	*visible_ms = e->visible_ms;
	batch_put_meta(b, e);
	return MB_OK;
}

/* ---- the dead-letter queue ---------------------------------------------------------------- */

size_t mb_table_dlq(mb_table *t, const char *name, unsigned max, mb_entry **out)
{
	mb_box *x = box_get(t, name, false);
	mb_entry *e;
	size_t n = 0;

	if (!x)
		return 0;
	TAILQ_FOREACH(e, &x->dlq, link) {
		if (n == max)
			break;
		out[n++] = e;
	}
	return n;
}

mb_status mb_table_requeue(mb_table *t, const char *name, uint64_t id, uint64_t now,
                           mb_batch *b)
{
	mb_entry *e = entry_of(t, name, id);

	if (!e || !e->dlq)
		return MB_NOT_FOUND;
	TAILQ_REMOVE(&e->box->dlq, e, link);
	TAILQ_INSERT_TAIL(&e->box->live, e, link);
	e->dlq = false;
	e->leased = false;
	e->deliveries = 0;
	e->visible_ms = now;
	t->dlq_depth--;
	t->depth++;
	batch_put_meta(b, e);
	return MB_OK;
}

/* ---- counts ------------------------------------------------------------------------------- */

uint64_t mb_table_depth(const mb_table *t)
{
	return t->depth;
}

uint64_t mb_table_dlq_depth(const mb_table *t)
{
	return t->dlq_depth;
}

uint64_t mb_table_idem_keys(const mb_table *t)
{
	return t->nidem;
}

void mb_table_take_events(mb_table *t, uint64_t *timeouts, uint64_t *dlq_moves)
{
	*timeouts = t->ev_timeouts;
	*dlq_moves = t->ev_dlq;
	t->ev_timeouts = t->ev_dlq = 0;
}
