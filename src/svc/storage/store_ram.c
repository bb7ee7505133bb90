/*
 * store_ram.c — the RAM store for amnesia mode (see store.h): nothing is
 * written under any path. An upload is a memfd; at commit it is sealed
 * (no write, grow or shrink by anyone, the client's fd included) before its
 * bytes are hashed, so what was verified is what is served. Objects are
 * kept as that sealed memfd plus the outboard in heap memory, in an
 * open-addressed table keyed by SipHash of the id with a per-process random
 * key (ids are public, so an unkeyed index could be flooded with chosen
 * collisions).
 *
 * Threads (store.h): a commit's seal and read-back run on a worker; the
 * ingest (a dup of the memfd and a copy of the outboard) runs on the loop,
 * which alone reads and changes the object table, so nothing here is
 * shared between threads.
 *
 * Bounds: STORE_RAM_MAX_BYTES of object bytes, and at most
 * STORE_RAM_MAX_OBJECTS objects or what the fd limit allows (each object
 * holds one fd), whichever is lower. Over either, cached objects are
 * evicted (oldest first, at most STORE_CACHE_EVICT_MAX) to make room; if
 * that is not enough → 503.
 *
 * Cache (store.h): cached objects are also on a list in fetch order (the
 * oldest at its head), so an eviction pass takes them from the head.
 * Eviction removes the object from the table (backward-shift deletion, so
 * the probe chains stay whole) and closes the store's memfd; a reader's
 * fd from ram_open is its own open file and stays valid.
 */
#include "svc/storage/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "lib/b3tree.h"
#include "lib/log.h"
#include "lib/util.h"

#define RAM_FD_RESERVE   1024u   /* fds left for connections, uploads, opens */
#define RAM_MIN_SLOTS    64u
#define RAM_SEALS        (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

typedef struct ram_obj {
	uint8_t  id[B3_OUT_LEN];
	uint64_t len;
	int      blob_fd;        /* sealed memfd */
	uint8_t *outboard;
	size_t   ob_len;
	bool     quarantined;
	bool     cached;         /* on the cache list */
	char     ctype[STORE_CTYPE_MAX];   /* the recorded type, "" none (store_meta.c) */
	bool     ctype_by_read;            /* sniffed on a read: an upload's replaces it */
	struct ram_obj *cprev, *cnext;   /* the cache list, oldest first */
} ram_obj;

typedef struct store_ram {
	store     base;          /* first: a store_ram is a store */
	ram_obj **slots;         /* nslots (a power of two), linear probing */
	size_t    nslots;
	size_t    nobj;
	size_t    max_objects;
	uint64_t  bytes;
	ram_obj  *chead, *ctail; /* cached objects, oldest first */
	uint8_t   key[crypto_shorthash_KEYBYTES];
} store_ram;

static size_t ram_index(const store_ram *sr, const uint8_t id[B3_OUT_LEN], size_t nslots)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v = 0;

	crypto_shorthash(h, id, B3_OUT_LEN, sr->key);
	for (size_t i = 0; i < sizeof h; i++)
		v = (v << 8) | h[i];
	return (size_t)v & (nslots - 1);
}

static ram_obj *ram_find(const store_ram *sr, const uint8_t id[B3_OUT_LEN])
{
	for (size_t i = ram_index(sr, id, sr->nslots);; i = (i + 1) & (sr->nslots - 1)) {
		ram_obj *o = sr->slots[i];
		if (!o || memcmp(o->id, id, B3_OUT_LEN) == 0)
			return o;
	}
}

static void ram_place(store_ram *sr, ram_obj **slots, size_t nslots, ram_obj *o)
{
	size_t i = ram_index(sr, o->id, nslots);

	while (slots[i])
		i = (i + 1) & (nslots - 1);
	slots[i] = o;
}

/* Keep the load factor at or under one half. */
static int ram_grow(store_ram *sr)
{
	if ((sr->nobj + 1) * 2 <= sr->nslots)
		return 0;
	size_t n = sr->nslots * 2;
	ram_obj **slots = calloc(n, sizeof *slots);
	if (!slots)
		return -1;
	for (size_t i = 0; i < sr->nslots; i++)
		if (sr->slots[i])
			ram_place(sr, slots, n, sr->slots[i]);
	free(sr->slots);
	sr->slots = slots;
	sr->nslots = n;
	return 0;
}

static int ram_tmp_create(store *st, char **tmp_path)
{
	(void)st;
	*tmp_path = NULL;
	return memfd_create("mn-upload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
}

/* EBUSY here means the client still has a writable mapping of the file. */
static int ram_freeze(store *st, int fd)
{
	(void)st;
	return fcntl(fd, F_ADD_SEALS, RAM_SEALS);
}

static ram_obj *ram_obj_new(const store_ingest *in)
{
	ram_obj *o = calloc(1, sizeof *o);

	if (!o)
		return NULL;
	o->outboard = malloc(in->ob_len);
	o->blob_fd = fcntl(in->up->fd, F_DUPFD_CLOEXEC, 0);
	if (!o->outboard || o->blob_fd < 0) {
		if (o->blob_fd >= 0)
			close(o->blob_fd);
		free(o->outboard);
		free(o);
		return NULL;
	}
	memcpy(o->id, in->id, B3_OUT_LEN);
	memcpy(o->outboard, in->outboard, in->ob_len);
	o->ob_len = in->ob_len;
	o->len = in->len;
	return o;
}

static void ram_obj_free(ram_obj *o)
{
	if (!o)
		return;
	close(o->blob_fd);
	free(o->outboard);
	free(o);
}

/* ---- the cache ------------------------------------------------------------- */

static void ram_cache_add(store_ram *sr, ram_obj *o)
{
	o->cached = true;
	o->cnext = NULL;
	o->cprev = sr->ctail;
	if (sr->ctail)
		sr->ctail->cnext = o;
	else
		sr->chead = o;
	sr->ctail = o;
	atomic_fetch_add(&sr->base.cache_bytes, o->len);
	atomic_fetch_add(&sr->base.cache_objects, 1);
}

/* Off the cache list: evicted, or promoted to owned. */
static void ram_cache_del(store_ram *sr, ram_obj *o)
{
	if (!o->cached)
		return;
	if (o->cprev)
		o->cprev->cnext = o->cnext;
	else
		sr->chead = o->cnext;
	if (o->cnext)
		o->cnext->cprev = o->cprev;
	else
		sr->ctail = o->cprev;
	o->cached = false;
	o->cprev = o->cnext = NULL;
	atomic_fetch_sub(&sr->base.cache_bytes, o->len);
	atomic_fetch_sub(&sr->base.cache_objects, 1);
}

/* Take o out of the table: backward-shift deletion keeps every later
 * entry of its probe chain reachable from its home slot. */
static void ram_remove(store_ram *sr, ram_obj *o)
{
	size_t mask = sr->nslots - 1, i = ram_index(sr, o->id, sr->nslots);

	while (sr->slots[i] != o)
		i = (i + 1) & mask;
	for (size_t j = (i + 1) & mask; sr->slots[j]; j = (j + 1) & mask) {
		size_t home = ram_index(sr, sr->slots[j]->id, sr->nslots);
		/* j's entry may move to the hole at i unless its home lies in (i, j] */
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (stays)
			continue;
		sr->slots[i] = sr->slots[j];
		i = j;
	}
	sr->slots[i] = NULL;
	sr->nobj--;
	sr->bytes -= o->len;
}

static void ram_evict_one(store_ram *sr, ram_obj *o)
{
	ram_cache_del(sr, o);
	ram_remove(sr, o);
	ram_obj_free(o);
	atomic_fetch_add(&sr->base.cache_evictions, 1);
	store_removed(&sr->base);
}

/* Evict oldest-first while the cache is over its limit, or while the store
 * lacks room for `need` more bytes and one more object (need_obj); never
 * keep, at most STORE_CACHE_EVICT_MAX. */
static void ram_evict(store_ram *sr, const ram_obj *keep, uint64_t need, bool need_obj)
{
	uint64_t limit = atomic_load(&sr->base.cache_limit);

	for (unsigned n = 0; n < STORE_CACHE_EVICT_MAX && sr->chead && sr->chead != keep; n++) {
		bool over = atomic_load(&sr->base.cache_bytes) > limit;
		bool full = sr->bytes + need > STORE_RAM_MAX_BYTES ||
		            (need_obj && sr->nobj >= sr->max_objects);
		if (!over && !full)
			return;
		ram_evict_one(sr, sr->chead);
	}
}

/* A stored, not quarantined object: an owned commit promotes a cached copy. */
static store_status ram_ingest_existing(store_ram *sr, ram_obj *old, const store_ingest *in,
                                        bool *created)
{
	if (!in->cache)
		ram_cache_del(sr, old);
	*created = false;
	return STORE_OK;
}

static store_status ram_ingest(store *st, store_ingest *in, bool *created)
{
	store_ram *sr = (store_ram *)st;
	ram_obj *old = ram_find(sr, in->id);

	if (old && !old->quarantined)
		return ram_ingest_existing(sr, old, in, created);
	uint64_t freed = old ? old->len : 0;
	ram_evict(sr, old, in->len > freed ? in->len - freed : 0, !old);
	if ((!old && sr->nobj >= sr->max_objects) || sr->bytes - freed + in->len > STORE_RAM_MAX_BYTES)
		return STORE_BUSY;
	if (!old && ram_grow(sr) != 0)
		return STORE_ERROR;
	ram_obj *o = ram_obj_new(in);
	if (!o)
		return STORE_ERROR;
	if (old) {   /* a quarantined object replaced by bytes that hash to its id */
		ram_cache_del(sr, old);
		close(old->blob_fd);
		free(old->outboard);
		*old = *o;
		free(o);
		o = old;
	} else {
		ram_place(sr, sr->slots, sr->nslots, o);
		sr->nobj++;
	}
	sr->bytes = sr->bytes - freed + in->len;
	if (in->cache) {
		ram_cache_add(sr, o);
		ram_evict(sr, o, 0, false);
	}
	*created = true;
	return STORE_OK;
}

static store_status ram_pin(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len)
{
	store_ram *sr = (store_ram *)st;
	ram_obj *o = ram_find(sr, id);

	if (!o)
		return STORE_NOT_FOUND;
	if (o->quarantined)
		return STORE_QUARANTINED;
	ram_cache_del(sr, o);
	*len = o->len;
	return STORE_OK;
}

static store_status ram_stat(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len)
{
	ram_obj *o = ram_find((store_ram *)st, id);

	if (!o)
		return STORE_NOT_FOUND;
	if (o->quarantined)
		return STORE_QUARANTINED;
	*len = o->len;
	return STORE_OK;
}

/* A read-only fd with its own file offset (so concurrent readers do not move
 * each other's position); a dup (shared offset, still sealed) without /proc. */
static int ram_reopen(int fd)
{
	char proc[64];

	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	int r = open(proc, O_RDONLY | O_CLOEXEC);
	return r >= 0 ? r : fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

static int ram_outboard_fd(const ram_obj *o)
{
	int fd = memfd_create("mn-outboard", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -1;
	if (util_write_all(fd, o->outboard, o->ob_len) != 0 ||
	    fcntl(fd, F_ADD_SEALS, RAM_SEALS) != 0 || lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static store_status ram_open(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len,
                             int *blob_fd, int *ob_fd)
{
	ram_obj *o = ram_find((store_ram *)st, id);

	if (!o)
		return STORE_NOT_FOUND;
	if (o->quarantined)
		return STORE_QUARANTINED;
	*blob_fd = ram_reopen(o->blob_fd);
	*ob_fd = ram_outboard_fd(o);
	if (*blob_fd < 0 || *ob_fd < 0) {
		if (*blob_fd >= 0) close(*blob_fd);
		if (*ob_fd >= 0) close(*ob_fd);
		*blob_fd = *ob_fd = -1;
		return STORE_ERROR;
	}
	*len = o->len;
	return STORE_OK;
}

static store_status ram_quarantine(store *st, const uint8_t id[B3_OUT_LEN])
{
	ram_obj *o = ram_find((store_ram *)st, id);

	if (!o)
		return STORE_NOT_FOUND;
	o->quarantined = true;
	store_removed(st);
	return STORE_OK;
}

/* The RAM backend keeps the type beside the object: it goes with it
 * (amnesia keeps nothing once an object is gone). */
static int ram_meta_get(store *st, const uint8_t id[B3_OUT_LEN], char out[STORE_CTYPE_MAX],
                        bool *by_read)
{
	ram_obj *o = ram_find((store_ram *)st, id);

	out[0] = '\0';
	*by_read = false;
	if (o) {
		memcpy(out, o->ctype, sizeof o->ctype);
		*by_read = o->ctype_by_read;
	}
	return 0;
}

static int ram_meta_put(store *st, const uint8_t id[B3_OUT_LEN], const char *ctype,
                        bool by_read)
{
	ram_obj *o = ram_find((store_ram *)st, id);
	size_t n = strlen(ctype);

	if (!o || n >= sizeof o->ctype)
		return -1;
	if (o->ctype[0] && (by_read || !o->ctype_by_read))
		return 1;   /* kept: store_meta_set's rule */
	memcpy(o->ctype, ctype, n + 1);
	o->ctype_by_read = by_read;
	return 0;
}

static void ram_destroy(store *st)
{
	store_ram *sr = (store_ram *)st;

	store_base_release(st);
	for (size_t i = 0; i < sr->nslots; i++)
		ram_obj_free(sr->slots[i]);
	free(sr->slots);
	free(sr);
}

/* Each object holds an fd: raise the soft limit to the hard one and keep
 * RAM_FD_RESERVE for everything else. */
static size_t ram_max_objects(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return RAM_MIN_SLOTS;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = { rl.rlim_max, rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	rlim_t avail = rl.rlim_cur > 2 * RAM_FD_RESERVE ? rl.rlim_cur - RAM_FD_RESERVE : rl.rlim_cur / 2;
	return avail < STORE_RAM_MAX_OBJECTS ? (size_t)avail : STORE_RAM_MAX_OBJECTS;
}

/* Insert id into the sorted ids[0..*n) keeping the max smallest; *more
 * once one was left out. */
static void ram_list_keep(uint8_t (*ids)[B3_OUT_LEN], size_t max, size_t *n, bool *more,
                          const uint8_t id[B3_OUT_LEN])
{
	size_t i = *n;

	while (i > 0 && memcmp(ids[i - 1], id, B3_OUT_LEN) > 0)
		i--;
	if (i == max) {
		*more = true;
		return;
	}
	if (*n == max)
		*more = true;
	size_t keep = *n < max ? *n : max - 1;
	memmove(ids[i + 1], ids[i], (keep - i) * B3_OUT_LEN);
	memcpy(ids[i], id, B3_OUT_LEN);
	*n = keep + 1;
}

/* The table is a hash: one scan per page (≤ STORE_RAM_MAX_OBJECTS slots). */
static store_status ram_list(store *st, const uint8_t *after, uint8_t (*ids)[B3_OUT_LEN],
                             size_t max, size_t *n, bool *more)
{
	store_ram *sr = (store_ram *)st;

	for (size_t i = 0; i < sr->nslots && max > 0; i++) {
		const ram_obj *o = sr->slots[i];
		if (!o || o->quarantined || o->cached || (after && memcmp(o->id, after, B3_OUT_LEN) <= 0))
			continue;
		ram_list_keep(ids, max, n, more, o->id);
	}
	return STORE_OK;
}

static const store_backend ram_backend = {
	.name = "ram",
	.ingest_off_loop = false,   /* the object table is the loop's alone */
	.tmp_create = ram_tmp_create,
	.freeze = ram_freeze,
	.ingest = ram_ingest,
	.stat = ram_stat,
	.meta_get = ram_meta_get,
	.meta_put = ram_meta_put,
	.open = ram_open,
	.quarantine = ram_quarantine,
	.pin = ram_pin,
	.list = ram_list,
	.destroy = ram_destroy,
};

store *store_ram_new(const store_limits *lim, char *err, size_t errlen)
{
	store_ram *sr = calloc(1, sizeof *sr);

	if (!sr || sodium_init() < 0) {
		snprintf(err, errlen, "cannot set up the RAM store");
		free(sr);
		return NULL;
	}
	sr->nslots = RAM_MIN_SLOTS;
	sr->slots = calloc(sr->nslots, sizeof *sr->slots);
	if (store_base_init(&sr->base, &ram_backend, lim) != 0 || !sr->slots) {
		snprintf(err, errlen, "out of memory");
		ram_destroy(&sr->base);
		return NULL;
	}
	sr->max_objects = ram_max_objects();
	crypto_shorthash_keygen(sr->key);
	return &sr->base;
}
