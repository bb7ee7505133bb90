/*
 * mb_table_send.c — SEND and the idempotency keys of the mailbox table
 * (see mb_table.h): a new message enters pending, with its key when it has
 * one; mb_table_send_done settles it once its batch is committed (or
 * undoes both). A key is (sender, Idempotency-Key) and binds the BLAKE3
 * of the request (recipient, kind, cid, body): within the window the same
 * request is a replay, another one a conflict.
 */
#include "svc/mailbox/mb_table.h"
#include "svc/mailbox/mb_table_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/b3.h"
#include "lib/wire.h"

static void batch_idem(mb_batch *b, const mb_idem *k, bool put)
{
	mb_op *op = batch_add(b, put ? MB_OP_PUT_IDEM : MB_OP_DEL_IDEM, k->id);

	if (!op)
		return;
	op->key = malloc(k->key_len);
	op->val = put ? malloc(MB_IDEM_VAL_LEN) : NULL;
	if (!op->key || (put && !op->val)) {
		b->nomem = true;
		return;
	}
	memcpy(op->key, k->key, k->key_len);
	op->key_len = k->key_len;
	if (put) {
		wire_w w;
		wire_w_init(&w, op->val, MB_IDEM_VAL_LEN);
		wire_put_u64(&w, k->id);
		wire_put_u64(&w, k->sent_ms);
		wire_put_raw(&w, k->digest, sizeof k->digest);
		op->val_len = w.len;
	}
}

static size_t idem_key(const char *sender, const char *key, uint8_t out[MB_IDEM_KEY_MAX])
{
	size_t s = strlen(sender), k = strlen(key);

	memcpy(out, sender, s);
	out[s] = 0;
	memcpy(out + s + 1, key, k);
	return s + 1 + k;
}

static mb_idem *idem_find(const mb_table *t, const uint8_t *key, size_t n, uint64_t h)
{
	mb_idem *k = t->idems[h & (t->nbuckets - 1)];

	while (k && (k->hash != h || k->key_len != n || memcmp(k->key, key, n) != 0))
		k = k->hnext;
	return k;
}

/* Within the window (a clock that stepped back keeps the key). */
static bool idem_is_live(const mb_table *t, const mb_idem *k, uint64_t now)
{
	return k->pending || now < k->sent_ms || now - k->sent_ms < t->lim.idem_window_ms;
}

static mb_idem *idem_insert(mb_table *t, const uint8_t *key, size_t n, uint64_t h)
{
	mb_idem *k = calloc(1, sizeof *k);

	if (!k)
		return NULL;
	memcpy(k->key, key, n);
	k->key_len = n;
	k->hash = h;
	k->hnext = t->idems[h & (t->nbuckets - 1)];
	t->idems[h & (t->nbuckets - 1)] = k;
	TAILQ_INSERT_TAIL(&t->idem_age, k, age);
	t->nidem++;
	return k;
}

void idem_remove(mb_table *t, mb_idem *k)
{
	mb_idem **p = &t->idems[k->hash & (t->nbuckets - 1)];

	while (*p && *p != k)
		p = &(*p)->hnext;
	if (*p)
		*p = k->hnext;
	TAILQ_REMOVE(&t->idem_age, k, age);
	t->nidem--;
	free(k);
}

int mb_table_load_idem(mb_table *t, const uint8_t *key, size_t klen, const uint8_t *val,
                       size_t vlen)
{
	uint64_t h = mb_hash(key, klen);
	mb_idem *k;
	wire_r r;

	if (klen == 0 || klen > MB_IDEM_KEY_MAX || idem_find(t, key, klen, h) ||
	    !(k = idem_insert(t, key, klen, h)))
		return -1;
	wire_r_init(&r, val, vlen);
	k->id = wire_get_u64(&r);
	k->sent_ms = wire_get_u64(&r);
	wire_get_raw(&r, k->digest, sizeof k->digest);
	if (wire_end(&r) != 0) {
		idem_remove(t, k);
		return -1;
	}
	return 0;
}

static void send_digest(const mb_req_send *q, const uint8_t *body, uint8_t out[32])
{
	uint8_t buf[MB_NAME_MAX + 2 + 32 + 32];
	size_t n = strlen(q->recipient);

	memcpy(buf, q->recipient, n);
	buf[n++] = 0;
	buf[n++] = q->kind;
	memcpy(buf + n, q->cid, 32);
	n += 32;
	b3_hash(body, q->body_len, buf + n);
	b3_hash(buf, n + 32, out);
}

static mb_status send_room(const mb_table *t, const mb_box *x, uint32_t len)
{
	if (t->nmsgs >= t->lim.max_messages || t->bytes + len > t->lim.max_bytes)
		return MB_FULL;
	if (x && x->count >= t->lim.quota_count)
		return MB_QUOTA_COUNT;
	if ((x ? x->bytes : 0) + len > t->lim.quota_bytes)
		return MB_QUOTA_BYTES;
	return MB_OK;
}

/* The key's earlier send, if any: replay, conflict or pending. */
static mb_status send_idem(mb_table *t, const mb_idem *k, const uint8_t digest[32],
                           uint64_t now, uint64_t *rep_id, uint64_t *rep_ms)
{
	(void)now;
	if (!b3_equal(k->digest, digest))
		return MB_IDEM_CONFLICT;
	if (k->pending)
		return MB_IDEM_PENDING;
	*rep_id = k->id;
	*rep_ms = k->sent_ms;
	(void)t;
	return MB_REPLAY;
}

static mb_entry *send_entry(mb_table *t, const mb_req_send *q, const uint8_t *body,
                            uint64_t now, mb_box *x)
{
	mb_entry *e = calloc(1, sizeof *e);

	if (!e)
		return NULL;
	if (t->lim.keep_bodies && q->body_len) {
		if (!(e->body = malloc(q->body_len))) {
			free(e);
			return NULL;
		}
		memcpy(e->body, body, q->body_len);
	}
	e->id = t->next_id++;
	e->box = x;
	snprintf(e->sender, sizeof e->sender, "%s", q->sender);
	e->kind = q->kind;
	e->pending = true;
	e->sent_ms = now;
	e->visible_ms = now;
	memcpy(e->cid, q->cid, sizeof e->cid);
	e->body_len = q->body_len;
	entry_link(t, e);
	return e;
}

mb_status mb_table_send(mb_table *t, const mb_req_send *q, const uint8_t *body, uint64_t now,
                        mb_batch *b, mb_entry **out, uint64_t *rep_id, uint64_t *rep_ms)
{
	uint8_t digest[32], key[MB_IDEM_KEY_MAX];
	size_t klen = 0;
	uint64_t h = 0;
	mb_idem *k = NULL;
	mb_box *x = box_get(t, q->recipient, false);
	mb_status st;
	mb_entry *e;

	*out = NULL;
	if (q->idem[0]) {
		send_digest(q, body, digest);
		klen = idem_key(q->sender, q->idem, key);
		h = mb_hash(key, klen);
		if ((k = idem_find(t, key, klen, h)) != NULL && idem_is_live(t, k, now))
			return send_idem(t, k, digest, now, rep_id, rep_ms);
	}
	if ((st = send_room(t, x, q->body_len)) != MB_OK)
		return st;
	if (q->idem[0] && !k && t->nidem >= t->lim.max_idem) {
		mb_table_expire_idem(t, now, 64, b);
		if (t->nidem >= t->lim.max_idem)
			return MB_IDEM_FULL;
	}
	if (!(x = box_get(t, q->recipient, true)) || !(e = send_entry(t, q, body, now, x))) {
		if (x)
			box_maybe_free(t, x);
		return MB_NOMEM;
	}
	if (q->idem[0]) {
		if (k)   /* past the window: the key starts afresh */
			idem_remove(t, k);
		if (!(k = idem_insert(t, key, klen, h))) {
			t->next_id--;
			entry_free(t, e);
			return MB_NOMEM;
		}
		k->id = e->id;
		k->sent_ms = now;
		k->pending = true;
		memcpy(k->digest, digest, sizeof digest);
		batch_idem(b, k, true);
	}
	batch_put_meta(b, e);
	if (q->body_len) {
		mb_op *op = batch_add(b, MB_OP_PUT_BODY, e->id);
		if (op && (op->val = malloc(q->body_len)) != NULL) {
			memcpy(op->val, body, q->body_len);
			op->val_len = q->body_len;
		} else {
			b->nomem = true;
		}
	}
	(void)batch_add(b, MB_OP_NEXT_ID, t->next_id);
	*out = e;
	return MB_OK;
}

void mb_table_send_done(mb_table *t, uint64_t id, bool ok)
{
	mb_entry *e = entry_find(t, id);
	mb_idem *k, *next;

	if (!e || !e->pending)
		return;
	for (k = TAILQ_LAST(&t->idem_age, mb_idem_age_q); k; k = next) {
		next = TAILQ_PREV(k, mb_idem_age_q, age);
		if (k->id == id && k->pending) {
			k->pending = false;
			if (!ok)
				idem_remove(t, k);
			break;
		}
	}
	if (!ok) {
		entry_free(t, e);
		return;
	}
	e->pending = false;
	t->depth++;
}

size_t mb_table_expire_idem(mb_table *t, uint64_t now, size_t max, mb_batch *b)
{
	mb_idem *k;
	size_t n = 0;

	while (n < max && (k = TAILQ_FIRST(&t->idem_age)) != NULL && !k->pending &&
	       !idem_is_live(t, k, now)) {
		batch_idem(b, k, false);
		idem_remove(t, k);
		n++;
	}
	return n;
}
