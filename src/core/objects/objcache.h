/*
 * objcache.h — open objects kept between requests, and the group buffers
 * verified bytes travel in (one per serving process: the gateway worker's,
 * omnigate's).
 *
 * A handle (objh) is one stored object as storage's OPEN handed it over:
 * the blob's fd (read-only) and the object's outboard — checked against the
 * id once, when the handle is made, and then kept as a private heap copy,
 * so a later change of the outboard file on disk cannot reach it. The blob
 * is NOT trusted: every group of it is still read and hashed against that
 * outboard on every request, before any of its bytes is sent (objstore.h,
 * objv). What the cache saves is the storage round trip, two fstat, the
 * outboard's mapping and its O(groups) check — the per-request cost of
 * small objects and the time to the first byte of a range in a big one.
 *
 * Bounds: at most OBJCACHE_MAX_ENTRIES handles (each holds one fd, counted
 * against the process's descriptor limit beside its connections) and
 * OBJCACHE_MAX_CV_BYTES of outboard copies (32 bytes per 64 KiB: 8 MiB is
 * the outboards of 16 GiB of objects); least recently used first out. An
 * object whose outboard is over a quarter of that is served from a private
 * handle, never kept.
 *
 * Freshness: a handle must not outlive the object being servable. Storage
 * keeps a removal epoch (a counter in a sealed memfd, stor_msg WATCH,
 * docs/internal.md) that it bumps before answering whenever an object is
 * quarantined or evicted; the cache maps it read-only, compares it before
 * every lookup and drops every handle when it moved. A new connection to
 * storage (storage restarted) drops everything and asks for the new
 * memfd (asked for after the next OPEN that storage answers, so a hung
 * storage sees no extra call); until it is there nothing is kept (every
 * request OPENs, as before). An OPEN whose answer may predate a removal (the epoch moved or
 * the connection changed since the request: objcache_stamp) makes a
 * private handle. A replaced file (new inode) keeps being read through the
 * old fd until the handle goes: the bytes are still checked against the id.
 *
 * Group buffers: 64 KiB, page-aligned, taken from a free list of at most
 * OBJCACHE_POOL_MAX (the rest are freed), so the hot path neither
 * allocates nor faults in fresh pages. A buffer holding verified bytes is
 * handed to the connection's output with evbuffer_add_reference and comes
 * back through objcache_buf_release when the socket took it: the bytes go
 * out from the very memory they were hashed in, never copied in user space.
 *
 * Verified groups (the hot set in RAM): a cache made with verified_bytes
 * > 0 also keeps groups that passed their check, in an arena of that many
 * bytes (verified_bytes / 64 KiB slots, one mapping made at start, pages
 * touched only as slots fill, MADV_DONTDUMP). A later request for the same
 * group of a kept handle is answered from the slot: no pread, no hash. The
 * trust line moves from "the blob on disk" to "this process's memory", the
 * same line every group crosses between its check and its send: the bytes
 * in a slot are the ones that hashed to the id, and a slot is never
 * written again while it is kept or referenced. What is given up is the
 * re-read of the disk: a blob that rots after its groups were kept is
 * noticed when they are read again — the first request after the slots
 * are evicted, after any write to the file (its ctime, mtime, size and
 * inode are compared with fstat once per request), or after storage's
 * epoch moved (a quarantine or eviction anywhere drops them all, with the
 * handles). Slots hold groups of listed (fresh) handles only; least
 * recently used first out, never one still in some output (refcounted:
 * evbuffer_add_reference's release gives the reference back).
 *
 * Loop thread only. objcache may be NULL wherever it is taken: then nothing
 * is kept and buffers are plain malloc/free.
 */
#ifndef MN_CORE_OBJCACHE_H
#define MN_CORE_OBJCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/objects/stor_client.h"

#define OBJCACHE_MAX_ENTRIES  128u
#define OBJCACHE_MAX_CV_BYTES (8u * 1024u * 1024u)
#define OBJCACHE_POOL_MAX     256u              /* free group buffers kept (16 MiB) */
#define OBJCACHE_WATCH_RETRY_MS 1000u           /* after a failed WATCH */
#define OBJCACHE_VERIFIED_MAX (16ull * 1024u * 1024u * 1024u)  /* arena cap (262,144 slots) */

typedef struct objcache objcache;

/* One open, outboard-checked object. Fields are private to objcache.c and
 * objstore.c. */
typedef struct objh {
	uint8_t      id[32];
	uint64_t     len;
	int          blob;        /* read-only, owned */
	uint8_t     *cvs;         /* the checked outboard (heap copy) */
	size_t       cvs_len;
	unsigned     refs;
	objcache    *cache;       /* NULL: private (never listed) */
	bool         listed;      /* in the cache's table and LRU list */
	/* the blob as fstat saw it when the handle was made: a write to the
	 * file since drops its verified groups (objcache_groups_fresh) */
	uint64_t     st_ino, st_size;
	int64_t      st_mtime_ns, st_ctime_ns;
	uint32_t     vfirst;      /* its first kept verified group (a slot index), or none */
	struct objh *prev, *next; /* LRU, most recent first */
	struct objh *hnext;       /* hash chain */
} objh;

/* What an OPEN's answer may be kept under: take it before sending OPEN. */
typedef struct objcache_stamp {
	bool     ok;              /* the cache could keep an answer now */
	unsigned gen;             /* stor_client_gen */
	uint64_t epoch;           /* the removal epoch */
} objcache_stamp;

/* stor borrowed (it must outlive the cache; NULL: the unit tests', whose
 * epoch objcache_test_watch sets). verified_bytes: the arena of verified
 * groups (rounded down to whole 64 KiB slots, at most
 * OBJCACHE_VERIFIED_MAX; 0: none kept). NULL on allocation failure
 * (callers then run without a cache). */
objcache *objcache_new(stor_client *stor, uint64_t verified_bytes);
/* Handles still referenced stay valid until their last objh_unref;
 * buffers still in some output come back later (libevent finalises freed
 * bufferevents from the loop) and the last of them frees what is left.
 * NULL ok. */
void objcache_free(objcache *c);

/* A handle for id (+1 reference), or NULL: not kept (or no longer fresh). */
objh *objcache_find(objcache *c, const uint8_t id[32]);
objcache_stamp objcache_stamp_now(objcache *c);

/* A handle for OPEN's answer: takes blob_fd and ob_fd (closed here, the
 * blob's kept by the handle), checks the sizes against len and the
 * outboard against id, copies the outboard. Kept in c (may be NULL) when
 * the stamp says the answer is fresh and it fits. *out gets a reference.
 * OBJV_OK, or OBJV_INTEGRITY / OBJV_INTERNAL / OBJV_NOMEM with *why (then
 * *out is NULL and both fds are closed). */
typedef enum objv_result {
	OBJV_OK = 0,
	OBJV_INTERNAL,    /* our failure (fstat, read): not the object's fault */
	OBJV_NOMEM,       /* no memory for a buffer or a handle */
	OBJV_INTEGRITY,   /* the object does not match its id: quarantine it */
} objv_result;
__attribute__((warn_unused_result))
objv_result objcache_adopt(objcache *c, const objcache_stamp *st, const uint8_t id[32],
                           uint64_t len, int blob_fd, int ob_fd, objh **out, const char **why);

/* id failed verification: drop its handle now (storage's epoch will move
 * too, once the quarantine lands). NULL ok. */
void objcache_forget(objcache *c, const uint8_t id[32]);
/* Let go of a reference; the last one of an unlisted handle frees it. NULL ok. */
void objh_unref(objh *h);

/* A group buffer (B3TREE_GROUP_LEN bytes, aligned to its size), or NULL. */
uint8_t *objcache_buf_get(objcache *c);
/* Give a buffer back (NULL ok): a pool buffer, or a reference to a
 * verified slot (objcache_group_find / objcache_group_reserve). */
void objcache_buf_put(objcache *c, uint8_t *buf);

/* ---- verified groups (objstore.c's objv uses these) ---- */
/* May h's groups be kept and used? h must be listed, and the blob as fstat
 * sees it now must be the one h was made from; if it is not, h's kept
 * groups are dropped and h takes the new stamp (the request reads and
 * checks again). One fstat: call once per request. */
bool objcache_groups_fresh(objcache *c, objh *h);
/* The kept verified group gi of h (+1 reference, give back with
 * objcache_buf_put or objcache_buf_release), *len its length; or NULL. */
const uint8_t *objcache_group_find(objcache *c, const objh *h, uint64_t gi, size_t *len);
/* A slot to read group bytes into (+1 reference; not visible to lookups
 * until objcache_group_publish), or NULL (no arena, or every slot is in
 * use: read into a pool buffer instead). */
uint8_t *objcache_group_reserve(objcache *c);
/* The reserved slot buf now holds group gi of h, checked: keep it. */
void objcache_group_publish(objcache *c, const objh *h, uint64_t gi, uint8_t *buf, size_t len);
/* For evbuffer_add_reference(out, p, n, objcache_buf_release, c) with p
 * inside a buffer from objcache_buf_get (n > 0): the buffer is found from
 * p by its alignment and given back to c. */
void objcache_buf_release(const void *data, size_t len, void *c);

/* Counts for tests and the gauges. */
typedef struct objcache_info {
	size_t   entries;
	size_t   cv_bytes;
	size_t   pool_free;
	size_t   bufs_out;        /* buffers handed out and not back */
	uint64_t hits, misses, flushes;
	bool     watching;        /* the epoch is mapped */
	size_t   vslots, vkept, vrefs;  /* verified slots: all, kept, referenced */
	uint64_t vhits, vmisses;
} objcache_info;
void objcache_stats(const objcache *c, objcache_info *out);

#endif
