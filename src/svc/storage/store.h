/*
 * store.h — the object store behind the storage service: one interface, two
 * backends (disk: LMDB + files under data_dir; RAM: memfds, for amnesia).
 *
 * Uploads: store_put_begin hands out a writable anonymous file; the caller
 * passes it to the client, which writes the object into it; store_put_commit
 * then reads the file back, computes the id and the outboard itself (the
 * client's word is never trusted), and stores the object. An object is
 * visible (stat/open) only once complete; a crash at any point leaves either
 * the whole object or nothing, and the disk backend sweeps what a crash left
 * behind when it is opened.
 *
 * Every upload belongs to an owner (the service uses one per connection):
 * only the owner may commit or abort it, and store_abort_owner drops all of
 * an owner's uploads when its connection goes away, so a dead client never
 * holds an upload slot.
 *
 * Results are store_status values, which are the HTTP-like codes of the
 * internal protocol (docs/internal.md), so the service answers with them
 * as they are.
 *
 * Threads: every call belongs to the owner thread (the service's event
 * loop) except store_commit_run, which may run on a worker thread while the
 * loop goes on serving other calls. A commit is split for that: take (loop:
 * the upload leaves the table, so nothing else can reach it), run (worker:
 * read back, hash, and the backend's ingest where that is thread-safe),
 * finish (loop: the rest of the ingest, the result). What run touches
 * besides the commit itself is documented per backend (store_disk.c,
 * store_ram.c). store_put_commit does all three inline.
 *
 * Cache copies: a commit says whether its object is a cache copy (the
 * overlay fetched it on a local miss) or owned (a client wrote it, or a
 * REPLICATE asked this node to keep it). Cached objects are evictable:
 * when their bytes pass storage.cache_bytes, a cache commit evicts the
 * oldest-fetched ones (at most STORE_CACHE_EVICT_MAX per commit, never the
 * object it just stored). An owned commit of a cached object, or
 * store_pin, promotes it to owned; a cache commit of an owned object leaves
 * it owned. Cached objects are not listed (store_list): the repair loop
 * replicates what this node owns, not what it happens to cache. Eviction
 * unlinks the files; an fd opened before (a response being served) stays
 * valid.
 */
#ifndef MN_SVC_STORAGE_STORE_H
#define MN_SVC_STORAGE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/b3.h"

/* LMDB map size: the metadata of ~20 million objects (a record is 24 bytes
 * plus the 32-byte key and LMDB's per-entry overhead). */
#define STORE_DISK_MAP_SIZE     ((size_t)1 << 30)
/* RAM backend bounds (amnesia): objects kept and their total bytes. */
#define STORE_RAM_MAX_OBJECTS   65536u
#define STORE_RAM_MAX_BYTES     ((uint64_t)1 << 30)
/* Cached objects one eviction pass removes at most (bounded work per
 * commit; a limit lowered by a reload is met over the next commits). */
#define STORE_CACHE_EVICT_MAX   64u
/* Reads during commit go in pieces of one BLAKE3 group (DESIGN §1). */
#define STORE_IO_PIECE          (64u * 1024u)

typedef enum store_status {
	STORE_OK          = 200,
	STORE_BAD         = 400,  /* the file's length is not the announced one */
	STORE_NOT_FOUND   = 404,  /* unknown object, or an upload handle not ours */
	STORE_TOO_LARGE   = 413,  /* over the object cap or the upload's max_len */
	STORE_MISMATCH    = 422,  /* the bytes do not hash to `expect` */
	STORE_ERROR       = 500,  /* I/O or allocation failure */
	STORE_QUARANTINED = 502,  /* marked bad: never served */
	STORE_BUSY        = 503,  /* too many uploads open, or the store is full */
} store_status;

typedef struct store_limits {
	uint64_t max_object_bytes;   /* storage.max_object */
	uint32_t max_uploads;        /* storage.max_uploads */
	uint32_t max_per_tenant;     /* storage.max_uploads_per_tenant; 0: no share */
	uint32_t max_per_peer;       /* storage.max_uploads_per_peer; 0: no share */
	uint64_t cache_bytes;        /* storage.cache_bytes: cached bytes kept */
} store_limits;

/* The cache's state (store_cache_stats). */
typedef struct store_cache_info {
	uint64_t bytes;              /* of cached objects now stored */
	uint64_t objects;
	uint64_t evictions;          /* objects evicted since the store was opened */
} store_cache_info;

/* A share key, NUL included (the wire's STOR_KEY_MAX; longer is cut). */
#define STORE_KEY_MAX 320u

/* On whose behalf an upload is opened: the keys its slot counts against.
 * NULL or "": that share does not apply. Borrowed; the store copies them. */
typedef struct store_who {
	const char *tenant;   /* the wall's quota key */
	const char *peer;     /* the client address key */
} store_who;

/* Which limit a PUT_BEGIN would pass (store_share_full). */
typedef enum store_share {
	STORE_SHARE_OK = 0,
	STORE_SHARE_TABLE,    /* max_uploads are open */
	STORE_SHARE_TENANT,   /* the tenant holds max_per_tenant of them */
	STORE_SHARE_PEER,     /* the client address holds max_per_peer of them */
} store_share;

/* Disk backend option: behave as if O_TMPFILE were unsupported (tests). */
#define STORE_DISK_NO_TMPFILE 0x1u

typedef struct store store;

/*
 * Open the disk store under data_dir (created 0700 with meta/, objects/,
 * tmp/), take its lock (a second store on the same directory is refused),
 * and sweep what a crash left (tmp files, blob and outboard files with no
 * record). NULL with err set on failure. data_dir and lim are copied.
 */
store *store_disk_new(const char *data_dir, const store_limits *lim, unsigned flags,
                      char *err, size_t errlen);
/* The RAM store: nothing is ever written to a file system path. */
store *store_ram_new(const store_limits *lim, char *err, size_t errlen);
/* Close everything; open uploads are dropped. NULL ok. */
void store_free(store *st);
/* New limits apply to later calls (config reload). */
void store_set_limits(store *st, const store_limits *lim);

/* 413 if max_len is over the object cap; 503 if max_uploads are open, or
 * who's tenant or peer already holds its share of them (so one slow client
 * cannot hold every slot; store_share_full says which). who NULL: no keys.
 * On 200, *fd is a new writable fd (caller owns it: hand it over, close it). */
__attribute__((warn_unused_result))
store_status store_put_begin(store *st, uint64_t owner, uint64_t max_len, const store_who *who,
                             uint64_t *handle, int *fd);
/* The limit a PUT_BEGIN of who would pass now, or STORE_SHARE_OK. A scan of
 * the open uploads: bounded by max_uploads. */
store_share store_share_full(const store *st, const store_who *who);
/* Consumes the upload whatever the result. expect: the id the bytes must
 * hash to, or NULL. cache: a cache copy (see above). On 200, id is the
 * object id and *created is false when the object was already stored.
 * Inline: take + run + finish. */
__attribute__((warn_unused_result))
store_status store_put_commit(store *st, uint64_t owner, uint64_t handle, uint64_t len,
                              const uint8_t *expect, bool cache, uint8_t id[B3_OUT_LEN],
                              bool *created);

/* A commit in three steps, for running the slow part off the loop. */
typedef struct store_commit store_commit;
/* Loop thread. Take owner's upload out of the table for commit (consumed
 * whatever happens next). 200: *out is the commit, the caller owns it and
 * must pass it to store_commit_finish (after store_commit_run) or
 * store_commit_free. 404 for a handle that is not an open upload of owner;
 * 413 if len is over the object cap or the upload's max_len; 500 out of
 * memory. expect is copied (NULL: none). */
__attribute__((warn_unused_result))
store_status store_commit_take(store *st, uint64_t owner, uint64_t handle, uint64_t len,
                               const uint8_t *expect, bool cache, store_commit **out);
/* Any one thread at a time: freeze, length check, read back and hash, and
 * the backend's ingest if it may run off the loop. Touches cm and, through
 * the backend, only what the backend documents as thread-safe. */
void store_commit_run(store *st, store_commit *cm);
/* Loop thread, after store_commit_run: the result as store_put_commit
 * gives it. Frees cm. */
__attribute__((warn_unused_result))
store_status store_commit_finish(store *st, store_commit *cm, uint8_t id[B3_OUT_LEN],
                                 bool *created);
/* Drop a commit that was never run (shutdown). NULL ok. */
void store_commit_free(store_commit *cm);
/* 200, or 404 for a handle that is not an open upload of owner. */
__attribute__((warn_unused_result))
store_status store_put_abort(store *st, uint64_t owner, uint64_t handle);
/* Drop every upload of owner (its connection closed). */
void store_abort_owner(store *st, uint64_t owner);

/* 200 with *len, 404, 502. */
__attribute__((warn_unused_result))
store_status store_stat(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len);
/* 200 with *len and two new read-only fds the caller owns (blob, outboard of
 * b3tree_outboard_len(len) bytes); 404; 502 if quarantined, or if the files
 * do not have the recorded sizes (then counted in integrity_fail_total and
 * quarantined). */
__attribute__((warn_unused_result))
store_status store_open(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len,
                        int *blob_fd, int *ob_fd);
/* Mark the object bad, durably: 200, 404. A later commit of the same bytes
 * (which then hash to the id again) replaces the files and clears the mark.
 * Loop thread, or a worker when store_writes_off_loop (below). */
__attribute__((warn_unused_result))
store_status store_quarantine(store *st, const uint8_t id[B3_OUT_LEN]);

/* Make the object owned (no longer an evictable cache copy), durably: 200
 * with *len (owned already, or now), 404, 502 if quarantined. Loop thread,
 * or a worker when store_writes_off_loop (below). */
__attribute__((warn_unused_result))
store_status store_pin(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len);
/* The cache's bytes, objects and evictions (loop thread; a commit running
 * on a worker may change them meanwhile). */
void store_cache_stats(const store *st, store_cache_info *out);
/* A new descriptor of the removal epoch memfd for a WATCH reply (the
 * caller sends and closes it), or -1 (none, or dup failed). */
int store_epoch_dup(const store *st);

/* Up to max ids of owned objects (not cached, not quarantined) greater than after
 * (NULL: from the first), in byte order, into ids; *n how many, *more
 * whether any follow. 200 or 500. Bounded work: disk reads max + 1 records;
 * RAM scans its table (at most STORE_RAM_MAX_OBJECTS). */
__attribute__((warn_unused_result))
store_status store_list(store *st, const uint8_t *after, uint8_t (*ids)[B3_OUT_LEN], size_t max,
                        size_t *n, bool *more);

/* The Content-Type record (store_meta.c): at most STORE_CTYPE_MAX - 1
 * bytes, mediatype_parse's grammar. Loop thread. */
#define STORE_CTYPE_MAX 128u
/* 200 with *len, ctype ("" when none is recorded) and *by_read (the type
 * was sniffed on a read, not named by an upload), 404, 502, 500. */
__attribute__((warn_unused_result))
store_status store_meta_get(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len,
                            char ctype[STORE_CTYPE_MAX], bool *by_read);
/* Record want — named by an upload, or by_read: sniffed on a read of an
 * object stored without one — unless an upload's type is recorded (the
 * first stays), or any type is and want is a read's: an upload's type
 * replaces a read's, nothing else is ever replaced. 200 with *len, the
 * type in force in ctype and *in_force_by_read, 400 (want is not a type),
 * 404, 502, 500. Loop thread; or any worker thread when
 * store_writes_off_loop(st) (disk: the rule is applied inside the
 * record's own LMDB write transaction, so two workers cannot both win;
 * safe beside the loop's reads and the commits' ingests, as an ingest is). */
__attribute__((warn_unused_result))
store_status store_meta_set(store *st, const uint8_t id[B3_OUT_LEN], const char *want,
                            bool by_read, uint64_t *len, char ctype[STORE_CTYPE_MAX],
                            bool *in_force_by_read);
/* Whether store_meta_set, store_pin and store_quarantine may run on a
 * worker thread (any number at once, beside the loop's reads and the
 * commits): the backend's ingest may (disk: each is one LMDB write
 * transaction, as an ingest's record is). */
bool store_writes_off_loop(const store *st);

/* ---- backend interface (store_upload.c ↔ store_disk.c, store_ram.c) ------- */

typedef struct store_upload {
	uint64_t handle;
	uint64_t owner;
	uint64_t max_len;
	char     tenant[STORE_KEY_MAX];   /* share keys ("": none) */
	char     peer[STORE_KEY_MAX];
	int      fd;         /* the store's own fd of the file */
	char    *tmp_path;   /* named temp file (no O_TMPFILE), or NULL; owned */
} store_upload;

/* A verified object about to be stored: id and outboard were computed by
 * the store from the upload's bytes. All borrowed. */
typedef struct store_ingest {
	store_upload  *up;       /* the backend may take up->tmp_path (set it NULL) */
	uint64_t       len;
	const uint8_t *id;
	const uint8_t *outboard; /* b3tree_outboard_len(len) bytes */
	size_t         ob_len;
	bool           cache;    /* a cache copy (store.h above) */
} store_ingest;

typedef struct store_backend {
	const char *name;
	/* ingest may run on a worker thread, concurrently with the loop's
	 * stat/open/quarantine and with other workers' ingests (disk: yes;
	 * RAM: no, it runs in store_commit_finish on the loop). */
	bool ingest_off_loop;
	/* A new writable anonymous file; *tmp_path (malloc'd) if it has a name. */
	int  (*tmp_create)(store *st, char **tmp_path);
	/* Make the upload's bytes immutable before they are hashed, or -1
	 * (NULL: the backend cannot; see README). */
	int  (*freeze)(store *st, int fd);
	/* Store it (created) or find it stored (not created). */
	store_status (*ingest)(store *st, store_ingest *in, bool *created);
	store_status (*stat)(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len);
	store_status (*open)(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len,
	                     int *blob_fd, int *ob_fd);
	store_status (*quarantine)(store *st, const uint8_t id[B3_OUT_LEN]);
	store_status (*pin)(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len);
	store_status (*list)(store *st, const uint8_t *after, uint8_t (*ids)[B3_OUT_LEN], size_t max,
	                     size_t *n, bool *more);
	/* The type record and whether a read named it: 0 (out[0] == '\0'
	 * when none), -1 error. */
	int  (*meta_get)(store *st, const uint8_t id[B3_OUT_LEN], char out[STORE_CTYPE_MAX],
	                 bool *by_read);
	/* Write it (a parsed type) unless store_meta_set's rule keeps the one
	 * recorded, decided in the write itself: 0 written, 1 kept, -1 error. */
	int  (*meta_put)(store *st, const uint8_t id[B3_OUT_LEN], const char *ctype, bool by_read);
	void (*destroy)(store *st);
} store_backend;

/* The part every backend shares (store_upload.c); a backend's struct
 * starts with it. Loop thread only: a running commit holds its upload
 * outside this table. */
struct store {
	const store_backend    *be;
	store_limits            lim;
	store_upload           *up;        /* open uploads, nup of them, cap slots */
	size_t                  nup;
	size_t                  cap;
	uint64_t                next_handle;
	/* Written by the backend (on a commit worker for disk), read by
	 * store_cache_stats on the loop; the limit is set on the loop and read
	 * by the backend's eviction. */
	_Atomic uint64_t        cache_limit;
	_Atomic uint64_t        cache_bytes;
	_Atomic uint64_t        cache_objects;
	_Atomic uint64_t        cache_evictions;
	/* The removal epoch (stor_msg WATCH, docs/internal.md): a sealed
	 * memfd whose first 8 bytes count removals; mapped writable here only.
	 * -1 / the local counter when the memfd could not be made (then
	 * WATCH answers 503 and clients keep no handles). */
	int                     epoch_fd;
	_Atomic uint64_t       *epoch;
	_Atomic uint64_t        epoch_local;
	/* Damage the store found itself (files gone or the wrong size) and
	 * quarantined: the service records it in the audit log. Called on the
	 * loop thread; NULL = nobody listens. */
	void                  (*on_damage)(void *arg, const char *cid, const char *object);
	void                   *on_damage_arg;
};

/* An object stopped being servable (quarantined, evicted): bump the
 * removal epoch before the caller answers anyone. Any thread. */
void store_removed(store *st);

/* Set up / release the shared part (backends call these). 0 or -1. */
__attribute__((warn_unused_result))
int store_base_init(store *st, const store_backend *be, const store_limits *lim);
void store_base_release(store *st);

#endif
