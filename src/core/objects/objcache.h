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
 * epoch objcache_test_watch sets). NULL on allocation failure (callers
 * then run without a cache). */
objcache *objcache_new(stor_client *stor);
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
/* Give a buffer back (NULL ok). */
void objcache_buf_put(objcache *c, uint8_t *buf);
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
} objcache_info;
void objcache_stats(const objcache *c, objcache_info *out);

#endif
