/*
 * objcache.c — open objects kept between requests, the removal epoch that
 * keeps them honest, the group buffer pool and the verified groups
 * (objcache.h).
 */
#include "core/objects/objcache.h"
#include "core/objects/objcache_test.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/metrics/metrics.h"
#include "lib/b3tree.h"
#include "lib/log.h"
#include "lib/util.h"

#define OBJCACHE_SLOTS   (2u * OBJCACHE_MAX_ENTRIES)   /* hash slots, a power of two */
#define VS_NONE          UINT32_MAX
#define VS_EVICT_SCAN    32u      /* LRU slots looked at for one not in some output */

_Static_assert((OBJCACHE_SLOTS & (OBJCACHE_SLOTS - 1)) == 0, "slots: a power of two");

struct objcache {
	stor_client  *stor;                  /* borrowed */
	objh         *slots[OBJCACHE_SLOTS];
	objh         *head, *tail;           /* LRU: head most recent */
	size_t        n, cv_bytes;
	/* the removal epoch */
	const _Atomic uint64_t *epoch;       /* mapped read-only, or NULL */
	unsigned      epoch_gen;             /* stor gen the mapping belongs to */
	uint64_t      epoch_seen;
	bool          epoch_borrowed;        /* the unit tests' memory, not a mapping */
	stor_call    *watch;                 /* WATCH in flight */
	unsigned      watch_gen;
	uint64_t      watch_after_ms;        /* no new WATCH before (after a failure) */
	/* group buffers */
	uint8_t      *pool[OBJCACHE_POOL_MAX];
	size_t        nfree, bufs_out;
	bool          dying;                 /* objcache_free ran; buffers still out */
	uint64_t      hits, misses, flushes;
	metrics_series *m_hit, *m_miss, *m_flush, *m_open;
	/* verified groups: slot i's bytes are varena + i * B3TREE_GROUP_LEN */
	uint8_t      *vmap;                  /* the mapping (one group longer, for alignment) */
	size_t        vmap_len;
	uint8_t      *varena;                /* aligned to B3TREE_GROUP_LEN */
	struct vslot *vs;
	uint32_t     *vhash;                 /* chains of kept slots by (owner, group) */
	uint32_t      vn, vhmask;
	uint32_t      vfree;                 /* free slots (through next) */
	uint32_t      vhead, vtail;          /* kept slots, most recently used first */
	size_t        vkept, vrefs;
	uint64_t      vhits, vmisses;
	metrics_series *m_vhit, *m_vmiss, *m_vbytes;
};

/* A verified-group slot. FREE: on the free list. RESERVED: being filled by
 * one reader, seen by no lookup. KEPT: in the hash and the LRU list, on its
 * owner's chain; its bytes never change again. ORPHAN: dropped while still
 * in some output; FREE when the last reference comes back. */
enum { VS_FREE = 0, VS_RESERVED, VS_KEPT, VS_ORPHAN };

struct vslot {
	const objh *owner;    /* KEPT: the listed handle the group belongs to */
	uint64_t    gi;
	uint32_t    len, refs;
	uint32_t    hnext;    /* hash chain */
	uint32_t    prev, next;    /* LRU (KEPT); next: free list (FREE) */
	uint32_t    oprev, onext;  /* the owner's chain */
	uint8_t     state;
};

/* ---- handles -------------------------------------------------------------- */

static size_t objcache_slot(const uint8_t id[32])
{
	uint64_t h;

	memcpy(&h, id, sizeof h);   /* ids are BLAKE3 output: uniform already */
	return (size_t)(h & (OBJCACHE_SLOTS - 1));
}

static void objh_free(objh *h)
{
	if (h->blob >= 0)
		close(h->blob);
	free(h->cvs);
	free(h);
}

static void vs_drop_owner(objcache *c, objh *h);

/* Out of the table and the LRU list; freed when no request holds it. Its
 * verified groups go with it (a handle not listed keeps none). */
static void objcache_unlist(objcache *c, objh *h)
{
	objh **pp = &c->slots[objcache_slot(h->id)];

	vs_drop_owner(c, h);
	while (*pp && *pp != h)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = h->hnext;
	if (c->head == h)
		c->head = h->next;
	if (c->tail == h)
		c->tail = h->prev;
	if (h->prev)
		h->prev->next = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->prev = h->next = h->hnext = NULL;
	h->listed = false;
	c->n--;
	c->cv_bytes -= h->cvs_len;
	metrics_gauge_add(c->m_open, -1);
	objh_unref(h);   /* the table's reference */
}

static void objcache_flush(objcache *c)
{
	if (!c->head)
		return;
	while (c->head)
		objcache_unlist(c, c->head);
	c->flushes++;
	metrics_inc(c->m_flush, 1);
}

void objh_unref(objh *h)
{
	if (h && --h->refs == 0)
		objh_free(h);
}

static void objcache_lru_front(objcache *c, objh *h)
{
	if (c->head == h)
		return;
	/* unlink */
	h->prev->next = h->next;   /* h is not the head: it has a prev */
	if (h->next)
		h->next->prev = h->prev;
	else
		c->tail = h->prev;
	/* push */
	h->prev = NULL;
	h->next = c->head;
	c->head->prev = h;
	c->head = h;
}

/* ---- verified groups ------------------------------------------------------ */

static uint32_t vs_bucket(const objcache *c, const objh *owner, uint64_t gi)
{
	uint64_t k = ((uint64_t)(uintptr_t)owner >> 4) ^ (gi * 0x9e3779b97f4a7c15ull);

	k ^= k >> 29;
	return (uint32_t)(k & c->vhmask);
}

static uint8_t *vs_bytes(const objcache *c, uint32_t i)
{
	return c->varena + (size_t)i * B3TREE_GROUP_LEN;
}

/* The slot p points into, or VS_NONE (a pool buffer). */
static uint32_t vs_of(const objcache *c, const void *p)
{
	uintptr_t a = (uintptr_t)p, base = (uintptr_t)c->varena;

	if (!c->vn || a < base || a - base >= (uintptr_t)c->vn * B3TREE_GROUP_LEN)
		return VS_NONE;
	return (uint32_t)((a - base) / B3TREE_GROUP_LEN);
}

static void vs_free_push(objcache *c, uint32_t i)
{
	c->vs[i].state = VS_FREE;
	c->vs[i].owner = NULL;
	c->vs[i].next = c->vfree;
	c->vfree = i;
}

/* A KEPT slot out of the hash, the LRU list and its owner's chain: FREE,
 * or ORPHAN while some output still holds it. */
static void vs_drop(objcache *c, uint32_t i)
{
	struct vslot *v = &c->vs[i];
	uint32_t *pp = &c->vhash[vs_bucket(c, v->owner, v->gi)];
	objh *owner = (objh *)(uintptr_t)v->owner;

	if (v->state != VS_KEPT || !owner)   /* only kept slots are listed */
		return;
	while (*pp != VS_NONE && *pp != i)
		pp = &c->vs[*pp].hnext;
	if (*pp == i)
		*pp = v->hnext;
	if (v->prev != VS_NONE)
		c->vs[v->prev].next = v->next;
	else
		c->vhead = v->next;
	if (v->next != VS_NONE)
		c->vs[v->next].prev = v->prev;
	else
		c->vtail = v->prev;
	if (v->oprev != VS_NONE)
		c->vs[v->oprev].onext = v->onext;
	else
		owner->vfirst = v->onext;
	if (v->onext != VS_NONE)
		c->vs[v->onext].oprev = v->oprev;
	c->vkept--;
	metrics_gauge_add(c->m_vbytes, -(int64_t)v->len);
	if (v->refs) {
		v->state = VS_ORPHAN;
		v->owner = NULL;
	} else {
		vs_free_push(c, i);
	}
}

static void vs_drop_owner(objcache *c, objh *h)
{
	while (c->vn && h->vfirst != VS_NONE)
		vs_drop(c, h->vfirst);
}

static void vs_lru_front(objcache *c, uint32_t i)
{
	struct vslot *v = &c->vs[i];

	if (c->vhead == i)
		return;
	c->vs[v->prev].next = v->next;   /* not the head: it has a prev */
	if (v->next != VS_NONE)
		c->vs[v->next].prev = v->prev;
	else
		c->vtail = v->prev;
	v->prev = VS_NONE;
	v->next = c->vhead;
	c->vs[c->vhead].prev = i;
	c->vhead = i;
}

/* One reference fewer; a slot no lookup can see is free at the last. */
static void vs_unref(objcache *c, uint32_t i)
{
	struct vslot *v = &c->vs[i];

	v->refs--;
	c->vrefs--;
	c->bufs_out--;
	if (!v->refs && (v->state == VS_ORPHAN || v->state == VS_RESERVED))
		vs_free_push(c, i);
}

static int vs_arena_new(objcache *c, uint64_t bytes)
{
	uint64_t n = (bytes < OBJCACHE_VERIFIED_MAX ? bytes : OBJCACHE_VERIFIED_MAX) / B3TREE_GROUP_LEN;
	uint32_t hn = 1;
	uintptr_t a;

	if (!n)
		return 0;
	while (hn < 2 * n)
		hn <<= 1;
	c->vmap_len = ((size_t)n + 1) * B3TREE_GROUP_LEN;
	c->vmap = mmap(NULL, c->vmap_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->vmap == MAP_FAILED) {
		c->vmap = NULL;
		return -1;
	}
	/* Served bytes stay out of a core file, should one be written. */
	(void)madvise(c->vmap, c->vmap_len, MADV_DONTDUMP);
	a = ((uintptr_t)c->vmap + B3TREE_GROUP_LEN - 1) & ~(uintptr_t)(B3TREE_GROUP_LEN - 1);
	c->varena = (uint8_t *)a;
	c->vs = calloc((size_t)n, sizeof *c->vs);
	c->vhash = malloc((size_t)hn * sizeof *c->vhash);
	if (!c->vs || !c->vhash)
		return -1;
	memset(c->vhash, 0xff, (size_t)hn * sizeof *c->vhash);   /* VS_NONE */
	c->vn = (uint32_t)n;
	c->vhmask = hn - 1;
	c->vfree = VS_NONE;
	c->vhead = c->vtail = VS_NONE;
	for (uint32_t i = c->vn; i-- > 0;)
		vs_free_push(c, i);
	return 0;
}

static void objcache_release(objcache *c)
{
	if (c->vmap)
		(void)munmap(c->vmap, c->vmap_len);
	free(c->vs);
	free(c->vhash);
	free(c);
}

static void objh_stamp(objh *h, const struct stat *sb)
{
	h->st_ino = (uint64_t)sb->st_ino;
	h->st_size = (uint64_t)sb->st_size;
	h->st_mtime_ns = (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
	h->st_ctime_ns = (int64_t)sb->st_ctim.tv_sec * 1000000000 + sb->st_ctim.tv_nsec;
}

bool objcache_groups_fresh(objcache *c, objh *h)
{
	struct stat sb;
	objh now;

	if (!c || !c->vn || !h->listed || h->cache != c || fstat(h->blob, &sb) != 0)
		return false;
	objh_stamp(&now, &sb);
	if (now.st_ino != h->st_ino || now.st_size != h->st_size ||
	    now.st_mtime_ns != h->st_mtime_ns || now.st_ctime_ns != h->st_ctime_ns) {
		vs_drop_owner(c, h);   /* written since: read and check it all again */
		objh_stamp(h, &sb);
	}
	return true;
}

static uint32_t vs_lookup(const objcache *c, const objh *h, uint64_t gi)
{
	uint32_t i;

	for (i = c->vhash[vs_bucket(c, h, gi)]; i != VS_NONE; i = c->vs[i].hnext)
		if (c->vs[i].owner == h && c->vs[i].gi == gi)
			break;
	return i;
}

const uint8_t *objcache_group_find(objcache *c, const objh *h, uint64_t gi, size_t *len)
{
	uint32_t i;

	if (!c || !c->vn)
		return NULL;
	if ((i = vs_lookup(c, h, gi)) == VS_NONE) {
		c->vmisses++;
		metrics_inc(c->m_vmiss, 1);
		return NULL;
	}
	c->vhits++;
	metrics_inc(c->m_vhit, 1);
	vs_lru_front(c, i);
	c->vs[i].refs++;
	c->vrefs++;
	c->bufs_out++;
	*len = c->vs[i].len;
	return vs_bytes(c, i);
}

uint8_t *objcache_group_reserve(objcache *c)
{
	uint32_t i, scan = 0;

	if (!c || !c->vn || c->dying)
		return NULL;
	/* No free slot: the least recently used one no output holds. */
	for (i = c->vtail; c->vfree == VS_NONE && i != VS_NONE && scan < VS_EVICT_SCAN; scan++) {
		uint32_t prev = c->vs[i].prev;

		if (!c->vs[i].refs)
			vs_drop(c, i);
		i = prev;
	}
	if ((i = c->vfree) == VS_NONE)
		return NULL;
	c->vfree = c->vs[i].next;
	c->vs[i].state = VS_RESERVED;
	c->vs[i].refs = 1;
	c->vrefs++;
	c->bufs_out++;
	return vs_bytes(c, i);
}

void objcache_group_publish(objcache *c, const objh *h, uint64_t gi, uint8_t *buf, size_t len)
{
	uint32_t i = vs_of(c, buf), b;
	struct vslot *v;
	objh *owner = (objh *)(uintptr_t)h;

	if (i == VS_NONE || c->vs[i].state != VS_RESERVED || !h->listed || h->cache != c ||
	    vs_lookup(c, h, gi) != VS_NONE)   /* (never: one reader fills a group at a time) */
		return;
	v = &c->vs[i];
	v->state = VS_KEPT;
	v->owner = h;
	v->gi = gi;
	v->len = (uint32_t)len;
	b = vs_bucket(c, h, gi);
	v->hnext = c->vhash[b];
	c->vhash[b] = i;
	v->prev = VS_NONE;
	v->next = c->vhead;
	if (c->vhead != VS_NONE)
		c->vs[c->vhead].prev = i;
	c->vhead = i;
	if (c->vtail == VS_NONE)
		c->vtail = i;
	v->oprev = VS_NONE;
	v->onext = owner->vfirst;
	if (owner->vfirst != VS_NONE)
		c->vs[owner->vfirst].oprev = i;
	owner->vfirst = i;
	c->vkept++;
	metrics_gauge_add(c->m_vbytes, (int64_t)len);
}

/* ---- the removal epoch ---------------------------------------------------- */

/* stor NULL: the unit tests' cache, its epoch set by objcache_test_watch. */
static unsigned objcache_gen(const objcache *c)
{
	return c->stor ? stor_client_gen(c->stor) : 0;
}

static void objcache_unwatch(objcache *c)
{
	if (c->epoch && !c->epoch_borrowed)
		(void)munmap((void *)(uintptr_t)c->epoch, STOR_EPOCH_LEN);
	c->epoch = NULL;
}

void objcache_test_watch(objcache *c, const _Atomic uint64_t *epoch)
{
	objcache_unwatch(c);
	c->epoch = epoch;
	c->epoch_borrowed = epoch != NULL;
	c->epoch_gen = 0;
	c->epoch_seen = epoch ? atomic_load(epoch) : 0;
}

static void objcache_on_watch(const stor_result *res, void *arg)
{
	objcache *c = arg;
	int fd = res->fds[0];
	struct stat sb;
	void *m;

	c->watch = NULL;
	if (res->status != 200 || fd < 0 || objcache_gen(c) != c->watch_gen ||
	    fstat(fd, &sb) != 0 || (uint64_t)sb.st_size < STOR_EPOCH_LEN ||
	    (m = mmap(NULL, STOR_EPOCH_LEN, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		if (fd >= 0)
			close(fd);
		c->watch_after_ms = util_now_ms() + OBJCACHE_WATCH_RETRY_MS;
		return;
	}
	close(fd);
	objcache_flush(c);   /* nothing kept before the epoch was known survives */
	objcache_unwatch(c);
	c->epoch = m;
	c->epoch_borrowed = false;
	c->epoch_gen = c->watch_gen;
	c->epoch_seen = atomic_load(c->epoch);
}

/* May handles be used and kept now? Drops them all when the epoch moved or
 * storage is a new connection; asks for the epoch when there is none. */
static bool objcache_fresh(objcache *c)
{
	unsigned gen = objcache_gen(c);
	uint64_t e;

	if (c->epoch && c->epoch_gen == gen) {
		e = atomic_load(c->epoch);
		if (e != c->epoch_seen) {
			objcache_flush(c);
			c->epoch_seen = e;
		}
		return true;
	}
	objcache_flush(c);
	objcache_unwatch(c);
	return false;
}

/* Storage just answered an OPEN: ask for its epoch if we have none. Only
 * then, so that a storage that does not answer sees no extra call (each
 * timed-out call counts towards the client's breaker). */
static void objcache_watch(objcache *c)
{
	if (!c->stor || c->watch || (c->epoch && c->epoch_gen == objcache_gen(c)) ||
	    util_now_ms() < c->watch_after_ms)
		return;
	c->watch = stor_watch(c->stor, objcache_on_watch, c);
	c->watch_gen = objcache_gen(c);
}

objcache_stamp objcache_stamp_now(objcache *c)
{
	objcache_stamp st = { 0 };

	if (!c || !objcache_fresh(c))
		return st;
	st.ok = true;
	st.gen = c->epoch_gen;
	st.epoch = c->epoch_seen;
	return st;
}

/* ---- the cache ------------------------------------------------------------ */

objcache *objcache_new(stor_client *stor, uint64_t verified_bytes)
{
	objcache *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->stor = stor;
	if (vs_arena_new(c, verified_bytes) < 0) {
		log_kv(LOG_LEVEL_WARN, "no memory for the verified-group cache; serving without it",
		       LOG_END);
		objcache_release(c);
		return NULL;
	}
	c->m_hit = metrics_get("object_handle_lookups_total", "result=\"hit\"");
	c->m_miss = metrics_get("object_handle_lookups_total", "result=\"miss\"");
	c->m_flush = metrics_get("object_handle_flushes_total", "");
	c->m_open = metrics_get("object_handles", "");
	c->m_vhit = metrics_get("verified_cache_lookups_total", "result=\"hit\"");
	c->m_vmiss = metrics_get("verified_cache_lookups_total", "result=\"miss\"");
	c->m_vbytes = metrics_get("verified_cache_bytes", "");
	return c;
}

void objcache_free(objcache *c)
{
	if (!c)
		return;
	if (c->watch)
		stor_call_cancel(c->watch);
	while (c->head)
		objcache_unlist(c, c->head);
	objcache_unwatch(c);
	for (size_t i = 0; i < c->nfree; i++)
		free(c->pool[i]);
	c->nfree = 0;
	/* Buffers still in some output (libevent finalises a freed
	 * bufferevent later, from the loop or event_base_free): the last one
	 * back frees the cache. */
	c->dying = true;
	if (!c->bufs_out)
		objcache_release(c);
}

objh *objcache_find(objcache *c, const uint8_t id[32])
{
	objh *h;

	if (!c)
		return NULL;
	if (!objcache_fresh(c)) {
		c->misses++;
		metrics_inc(c->m_miss, 1);
		return NULL;
	}
	for (h = c->slots[objcache_slot(id)]; h; h = h->hnext)
		if (memcmp(h->id, id, sizeof h->id) == 0)
			break;
	if (!h) {
		c->misses++;
		metrics_inc(c->m_miss, 1);
		return NULL;
	}
	c->hits++;
	metrics_inc(c->m_hit, 1);
	objcache_lru_front(c, h);
	h->refs++;
	return h;
}

/* Keep h (fresh, and it fits): evict from the LRU tail to make room. */
static void objcache_keep(objcache *c, const objcache_stamp *st, objh *h)
{
	size_t slot;

	if (!st || !st->ok || !c->epoch || c->epoch_gen != st->gen ||
	    objcache_gen(c) != st->gen || atomic_load(c->epoch) != st->epoch ||
	    h->cvs_len > OBJCACHE_MAX_CV_BYTES / 4)
		return;
	objcache_forget(c, h->id);   /* an older handle of the same object */
	while (c->tail && (c->n >= OBJCACHE_MAX_ENTRIES ||
	                   c->cv_bytes + h->cvs_len > OBJCACHE_MAX_CV_BYTES))
		objcache_unlist(c, c->tail);
	slot = objcache_slot(h->id);
	h->hnext = c->slots[slot];
	c->slots[slot] = h;
	h->next = c->head;
	if (c->head)
		c->head->prev = h;
	c->head = h;
	if (!c->tail)
		c->tail = h;
	h->listed = true;
	h->cache = c;
	h->refs++;   /* the table's */
	c->n++;
	c->cv_bytes += h->cvs_len;
	metrics_gauge_add(c->m_open, 1);
}

objv_result objcache_adopt(objcache *c, const objcache_stamp *st, const uint8_t id[32],
                           uint64_t len, int blob_fd, int ob_fd, objh **out, const char **why)
{
	size_t want = b3tree_outboard_len(len);
	struct stat bs, os;
	objh *h;
	objv_result rc = OBJV_OK;

	*out = NULL;
	if (!(h = calloc(1, sizeof *h))) {
		*why = "out of memory";
		rc = OBJV_NOMEM;
		goto fail;
	}
	h->blob = -1;
	h->refs = 1;
	h->vfirst = VS_NONE;
	memcpy(h->id, id, sizeof h->id);
	h->len = len;
	if (fstat(blob_fd, &bs) < 0 || fstat(ob_fd, &os) < 0) {
		*why = "cannot stat the object";
		rc = OBJV_INTERNAL;
	} else if ((uint64_t)bs.st_size != len || want == 0 || (uint64_t)os.st_size != want) {
		*why = "blob or outboard size differs from the stored length";
		rc = OBJV_INTEGRITY;
	} else if (!(h->cvs = malloc(want))) {
		*why = "out of memory";
		rc = OBJV_NOMEM;
	} else if (util_pread_full(ob_fd, h->cvs, want, 0) != 0) {
		*why = "cannot read the outboard";
		rc = OBJV_INTERNAL;
	} else if (!b3tree_outboard_ok(h->cvs, len, id)) {
		*why = "outboard does not hash to the id";
		rc = OBJV_INTEGRITY;
	}
	if (rc != OBJV_OK)
		goto fail;
	h->cvs_len = want;
	h->blob = blob_fd;
	objh_stamp(h, &bs);
	close(ob_fd);
	if (c) {
		objcache_keep(c, st, h);
		objcache_watch(c);
	}
	*out = h;
	return OBJV_OK;
fail:
	if (h)
		objh_free(h);
	if (blob_fd >= 0)
		close(blob_fd);
	if (ob_fd >= 0)
		close(ob_fd);
	return rc;
}

void objcache_forget(objcache *c, const uint8_t id[32])
{
	if (!c)
		return;
	for (objh *h = c->slots[objcache_slot(id)]; h; h = h->hnext) {
		if (memcmp(h->id, id, sizeof h->id) == 0) {
			objcache_unlist(c, h);
			return;
		}
	}
}

/* ---- group buffers -------------------------------------------------------- */

uint8_t *objcache_buf_get(objcache *c)
{
	uint8_t *b;

	if (c && c->nfree) {
		c->bufs_out++;
		return c->pool[--c->nfree];
	}
	b = aligned_alloc(B3TREE_GROUP_LEN, B3TREE_GROUP_LEN);
	if (b && c)
		c->bufs_out++;
	return b;
}

void objcache_buf_put(objcache *c, uint8_t *buf)
{
	uint32_t i;

	if (!buf)
		return;
	if (!c) {
		free(buf);
		return;
	}
	if ((i = vs_of(c, buf)) != VS_NONE) {
		vs_unref(c, i);
	} else {
		c->bufs_out--;
		if (!c->dying && c->nfree < OBJCACHE_POOL_MAX) {
			c->pool[c->nfree++] = buf;
			return;
		}
		free(buf);
	}
	if (c->dying && !c->bufs_out)
		objcache_release(c);
}

void objcache_buf_release(const void *data, size_t len, void *c)
{
	uintptr_t p = (uintptr_t)data & ~(uintptr_t)(B3TREE_GROUP_LEN - 1);

	(void)len;
	objcache_buf_put(c, (uint8_t *)p);
}

void objcache_stats(const objcache *c, objcache_info *out)
{
	memset(out, 0, sizeof *out);
	if (!c)
		return;
	out->entries = c->n;
	out->cv_bytes = c->cv_bytes;
	out->pool_free = c->nfree;
	out->bufs_out = c->bufs_out;
	out->hits = c->hits;
	out->misses = c->misses;
	out->flushes = c->flushes;
	out->watching = c->epoch != NULL;
	out->vslots = c->vn;
	out->vkept = c->vkept;
	out->vrefs = c->vrefs;
	out->vhits = c->vhits;
	out->vmisses = c->vmisses;
}
