/*
 * index_db_ram.c — the in-memory table (see index_db.h): the whole table in
 * amnesia mode, and the cache of records from the network in every mode.
 *
 * A chained hash table with a fixed number of buckets (a power of two
 * ≥ max_names, at most RAM_BUCKETS_MAX), keyed by the first 8 bytes of the
 * name's DHT key — BLAKE3, so no client can aim names at one chain. Each
 * name keeps a ring of at most `history` records, stored encoded (a record
 * is ≤ NAME_RECORD_MAX bytes, its name usually far shorter than the 255 a
 * decoded struct reserves) and decoded on read. Every name is also on an
 * LRU list: with `evict`, a new name past max_names forgets the least
 * recently read or written one; without it, the write is INDEX_DB_FULL.
 *
 * Memory is bounded by max_names × (history × (record + 2 bytes) + ~100).
 * Loop thread only.
 */
#include "svc/index/index_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "lib/log.h"
#include "lib/util.h"

#define RAM_BUCKETS_MAX (1u << 20)

typedef struct ram_rec {
	uint16_t len;
	uint8_t  bytes[];           /* an encoded record */
} ram_rec;

typedef struct ram_name {
	struct ram_name *next;      /* hash chain */
	TAILQ_ENTRY(ram_name) lru;  /* head: least recently used */
	uint64_t         hash;
	index_name       name;
	uint32_t         n;         /* records in the ring */
	uint32_t         first;     /* the oldest */
	uint64_t         checked_ms;/* last written or touched (util_now_ms) */
	ram_rec        **ring;      /* lim.history slots */
} ram_name;

static const index_db_ops ram_ops;

typedef struct index_db_ram {
	index_db    base;           /* first: an index_db_ram is an index_db */
	ram_name  **buckets;
	size_t      nbuckets;       /* a power of two */
	uint64_t    count;
	TAILQ_HEAD(, ram_name) lru;
} index_db_ram;

static uint64_t ram_hash(const index_name *name)
{
	uint8_t key[NAME_RECORD_KEY_LEN];
	uint64_t h = 0;

	name_record_key(name->s, name->len, key);
	for (int i = 0; i < 8; i++)
		h = h << 8 | key[i];
	return h;
}

static ram_name **ram_slot(index_db_ram *db, const index_name *name, uint64_t h)
{
	ram_name **p = &db->buckets[h & (db->nbuckets - 1)];

	while (*p && ((*p)->hash != h || (*p)->name.len != name->len ||
	              memcmp((*p)->name.s, name->s, name->len) != 0))
		p = &(*p)->next;
	return p;
}

static ram_name *ram_find(index_db_ram *db, const index_name *name)
{
	return *ram_slot(db, name, ram_hash(name));
}

static void ram_touch(index_db_ram *db, ram_name *e)
{
	TAILQ_REMOVE(&db->lru, e, lru);
	TAILQ_INSERT_TAIL(&db->lru, e, lru);
}

static void ram_name_free(const index_db_ram *db, ram_name *e)
{
	for (uint32_t i = 0; i < e->n; i++)
		free(e->ring[(e->first + i) % db->base.lim.history]);
	free(e->ring);
	free(e);
}

static void ram_remove(index_db_ram *db, ram_name *e)
{
	ram_name **p = ram_slot(db, &e->name, e->hash);

	*p = e->next;
	TAILQ_REMOVE(&db->lru, e, lru);
	db->count--;
	ram_name_free(db, e);
}

/* The i-th record of e, oldest first. */
static int ram_decode(const index_db_ram *db, const ram_name *e, uint32_t i, name_record *out)
{
	const ram_rec *r = e->ring[(e->first + i) % db->base.lim.history];

	if (name_record_decode(r->bytes, r->len, out) != NAME_REC_OK)
		return BUG("index ram table holds a record that does not decode");
	return 0;
}

static uint64_t ram_held_seq(const index_db_ram *db, const ram_name *e)
{
	name_record cur;

	return e && e->n && ram_decode(db, e, e->n - 1, &cur) == 0 ? cur.seq : 0;
}

/* A new entry for name, evicting the least recently used when full (with
 * evict). NULL: full or out of memory (*full says which). */
static ram_name *ram_add(index_db_ram *db, const index_name *name, bool *full)
{
	uint64_t h = ram_hash(name);
	ram_name *e;

	*full = false;
	if (db->count >= db->base.lim.max_names) {
		if (!db->base.lim.evict || TAILQ_EMPTY(&db->lru)) {
			*full = true;
			return NULL;
		}
		ram_remove(db, TAILQ_FIRST(&db->lru));
	}
	if (!(e = calloc(1, sizeof *e)) ||
	    !(e->ring = calloc(db->base.lim.history, sizeof *e->ring))) {
		free(e);
		return NULL;
	}
	e->hash = h;
	e->name = *name;
	ram_name **p = ram_slot(db, name, h);
	*p = e;
	TAILQ_INSERT_TAIL(&db->lru, e, lru);
	db->count++;
	return e;
}

/* Append rec, the oldest falling out of a full ring. */
static index_db_status ram_append(index_db_ram *db, ram_name *e, const name_record *rec)
{
	uint8_t buf[NAME_RECORD_MAX];
	ssize_t n = name_record_encode(rec, buf, sizeof buf);
	ram_rec *r;
	uint32_t cap = db->base.lim.history;   /* ≥ 1: index_db_ram_new checked */

	if (n < 0 || cap == 0) {
		(void)BUG("index ram table given a record that does not encode");
		return INDEX_DB_ERROR;
	}
	if (!(r = malloc(sizeof *r + (size_t)n)))
		return INDEX_DB_ERROR;
	r->len = (uint16_t)n;
	memcpy(r->bytes, buf, (size_t)n);
	if (e->n == cap) {
		free(e->ring[e->first]);
		e->ring[e->first] = r;
		e->first = (e->first + 1) % cap;
	} else {
		e->ring[(e->first + e->n) % cap] = r;
		e->n++;
	}
	e->checked_ms = util_now_ms();
	ram_touch(db, e);
	return INDEX_DB_OK;
}

static void ram_write(index_db *base, index_db_write *w)
{
	index_db_ram *db = (index_db_ram *)base;
	index_name nm;
	const index_name *name = &nm;
	ram_name *e;
	bool full;

	if (w->publish)
		nm = w->name;
	else
		index_name_set(&nm, w->rec.name, w->rec.name_len);
	e = ram_find(db, name);
	uint64_t held = ram_held_seq(db, e);
	if (!w->publish && e && e->n && w->rec.seq <= held) {
		w->status = INDEX_DB_STALE;
		return;
	}
	if (w->publish) {
		uint64_t seq = index_db_next_seq(held, w->floor);
		if (seq == 0 || name_record_make(&w->out, name->s, name->len, w->cid, seq, w->now,
		                                 w->id) != 0) {
			w->status = INDEX_DB_ERROR;
			return;
		}
	}
	if (!e) {
		if (!(e = ram_add(db, name, &full))) {
			w->status = full ? INDEX_DB_FULL : INDEX_DB_ERROR;
			return;
		}
		w->created = true;
	}
	w->status = ram_append(db, e, w->publish ? &w->out : &w->rec);
	if (w->status != INDEX_DB_OK && e->n == 0)
		ram_remove(db, e);
}

static index_db_status ram_get(index_db *base, const index_name *name, name_record *out)
{
	index_db_ram *db = (index_db_ram *)base;
	ram_name *e = ram_find(db, name);

	if (!e || e->n == 0)
		return INDEX_DB_NOT_FOUND;
	ram_touch(db, e);
	return ram_decode(db, e, e->n - 1, out) == 0 ? INDEX_DB_OK : INDEX_DB_ERROR;
}

static index_db_status ram_history(index_db *base, const index_name *name, name_record *out,
                                   size_t max, size_t *n)
{
	index_db_ram *db = (index_db_ram *)base;
	ram_name *e = ram_find(db, name);

	if (!e || e->n == 0)
		return INDEX_DB_NOT_FOUND;
	uint32_t skip = e->n > max ? e->n - (uint32_t)max : 0;
	for (uint32_t i = skip; i < e->n; i++)
		if (ram_decode(db, e, i, &out[(*n)++]) != 0)
			return INDEX_DB_ERROR;
	return INDEX_DB_OK;
}

static void ram_forget(index_db *base, const index_name *name)
{
	index_db_ram *db = (index_db_ram *)base;
	ram_name *e = ram_find(db, name);

	if (e)
		ram_remove(db, e);
}

bool index_db_ram_is_fresh(index_db *base, const index_name *name, uint64_t max_age_ms)
{
	index_db_ram *db = (index_db_ram *)base;
	ram_name *e = base->ops == &ram_ops ? ram_find(db, name) : NULL;

	return e && e->n && util_now_ms() - e->checked_ms < max_age_ms;
}

void index_db_ram_touch(index_db *base, const index_name *name)
{
	index_db_ram *db = (index_db_ram *)base;
	ram_name *e = base->ops == &ram_ops ? ram_find(db, name) : NULL;

	if (e)
		e->checked_ms = util_now_ms();
}

static uint64_t ram_count(index_db *base)
{
	return ((index_db_ram *)base)->count;
}

/* Whole chains from the cursor's bucket on; within a bucket, skip what the
 * last batch returned of it. */
static size_t ram_scan(index_db *base, index_db_cursor *cur, name_record *out, size_t max)
{
	index_db_ram *db = (index_db_ram *)base;
	uint64_t b = cur->pos >> 32, skip = cur->pos & 0xffffffffu;
	size_t n = 0;

	for (; b < db->nbuckets; b++, skip = 0) {
		uint64_t i = 0;
		for (ram_name *e = db->buckets[b]; e; e = e->next, i++) {
			if (i < skip || e->n == 0)
				continue;
			if (n == max) {
				cur->pos = b << 32 | i;
				return n;
			}
			if (ram_decode(db, e, e->n - 1, &out[n]) == 0)
				n++;
		}
	}
	cur->pos = 0;   /* the end: the next walk starts over */
	return n;
}

static void ram_destroy(index_db *base)
{
	index_db_ram *db = (index_db_ram *)base;
	ram_name *e;

	while ((e = TAILQ_FIRST(&db->lru)) != NULL) {
		ram_remove(db, e);
		UTIL_ANALYZER_ASSUME(TAILQ_FIRST(&db->lru) != e);   /* TAILQ_REMOVE did; the analyzer misses it */
	}
	free(db->buckets);
	free(db);
}

static const index_db_ops ram_ops = {
	.name = "ram", .off_loop = false, .write = ram_write, .get = ram_get,
	.history = ram_history, .forget = ram_forget, .count = ram_count, .scan = ram_scan,
	.destroy = ram_destroy,
};

index_db *index_db_ram_new(const index_db_limits *lim, char *err, size_t errlen)
{
	index_db_ram *db;
	size_t nb = 1;

	if (lim->max_names == 0 || lim->history == 0 || lim->history > INDEX_HISTORY_MAX) {
		snprintf(err, errlen, "index table limits out of range");
		return NULL;
	}
	while (nb < lim->max_names && nb < RAM_BUCKETS_MAX)
		nb <<= 1;
	if (!(db = calloc(1, sizeof *db)) || !(db->buckets = calloc(nb, sizeof *db->buckets))) {
		free(db);
		snprintf(err, errlen, "out of memory for the index table");
		return NULL;
	}
	db->base.ops = &ram_ops;
	db->base.lim = *lim;
	db->nbuckets = nb;
	TAILQ_INIT(&db->lru);
	return &db->base;
}
