/*
 * store_disk.c — the disk backend of the store (see store.h; the uploads
 * and the read-back of a commit are store_upload.c's).
 *
 * Layout under data_dir (all 0700, files 0600):
 *   meta/            LMDB environment: the main database id (32 bytes) →
 *                    record; the "cache" database (created ms BE, id) →
 *                    len for every cached object, in eviction order, and
 *                    "totals" → its bytes and objects; storage.lock
 *   objects/xx/HEX   blob files (xx = first two hex digits of the id)
 *   objects/xx/HEX.ob  outboard files (one 32-byte CV per 64 KiB group)
 *   tmp/             uploads: O_TMPFILE (or named temp files without it)
 *
 * Commit order (a crash at any step leaves the whole object or nothing):
 * fsync the blob, write and fsync the outboard, link both to their final
 * names, fsync objects/xx/, and only then write the record and commit the
 * LMDB transaction. An object is visible only through its record, so files
 * without one are strays; store_disk_new removes them, and tmp/ is emptied.
 *
 * Threads (store.h): disk_ingest runs on the service's commit workers while
 * the loop thread serves stat, open, quarantine and new uploads. What they
 * share is safe so:
 *   - LMDB is opened MDB_NOTLS, so a read transaction may be begun on any
 *     thread; a write transaction lives inside one function on one thread,
 *     and LMDB's own writer lock serialises the loop's quarantine write with
 *     a worker's record write (held for one put and its commit, never for
 *     the hashing or the file fsyncs).
 *   - ingest_lock makes ingests one at a time: two commits of the same bytes
 *     would otherwise both find no record and replace each other's files
 *     under a reader. The loop never takes it.
 *   - no_tmpfile is atomic; the directory fds and paths never change after
 *     store_disk_new.
 *   - a worker may log (one write(2) per line); it counts no metric except
 *     through BUG(), whose counter update is an atomic in the shared region.
 */
#include "svc/storage/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "core/metrics/metrics.h"
#include "lib/b3tree.h"
#include "lib/log.h"
#include "lib/util.h"
#include "svc/storage/store_disk_meta.h"

#define DISK_PATH_MAX      4096
#define DISK_REC_LEN       24          /* version, flags, pad[6], len, created ms */
#define DISK_REC_VERSION   1u
#define DISK_F_QUARANTINED 0x01u
#define DISK_F_CACHED      0x02u       /* a cache copy: in the cache database */
#define DISK_CACHE_DB      "cache"
#define DISK_CTYPE_DB      "ctype"             /* id → version byte, type (store_disk_meta.c) */
#define DISK_CACHE_KEY_LEN (8 + B3_OUT_LEN)   /* created ms big-endian, id */
#define DISK_TOTALS_KEY    "totals"           /* sorts after every entry */
#define DISK_TOTALS_LEN    16                 /* bytes, objects */
#define DISK_SUBDIR_LEN    2           /* objects/xx/ */
#define DISK_NAME_MAX      (DISK_SUBDIR_LEN + 1 + B3_HEX_LEN + 3 + 1)   /* xx/HEX.ob */
#define DISK_OB_SUFFIX     ".ob"
#define DISK_TMP_TEMPLATE  "up-XXXXXX"

/* ---- the disk backend ------------------------------------------------------ */

typedef struct store_disk {
	store    base;           /* first: a store_disk is a store */
	MDB_env *env;
	MDB_dbi  dbi;
	MDB_dbi  cache_dbi;
	MDB_dbi  ctype_dbi;
	int      objects_fd;
	int      tmp_fd;
	int      lock_fd;
	atomic_bool no_tmpfile;      /* set by whichever thread finds out */
	pthread_mutex_t ingest_lock; /* one disk_ingest at a time */
	uint64_t last_cache_ms;      /* under ingest_lock: the newest cache key's time */
	bool     ingest_lock_ok;     /* initialised (destroy it) */
	char     tmp_dir[DISK_PATH_MAX];
} store_disk;

typedef struct disk_rec {
	uint64_t len;
	uint8_t  flags;
	uint64_t created_ms;
} disk_rec;

static void disk_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t disk_get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void disk_rec_encode(const disk_rec *r, uint8_t out[DISK_REC_LEN])
{
	memset(out, 0, DISK_REC_LEN);
	out[0] = DISK_REC_VERSION;
	out[1] = r->flags;
	disk_put_u64(out + 8, r->len);
	disk_put_u64(out + 16, r->created_ms);
}

/* The record in v: 0, or MDB_CORRUPTED for one of unknown shape (a BUG). */
static int disk_rec_decode(const MDB_val *v, disk_rec *r)
{
	const uint8_t *p = v->mv_data;

	if (v->mv_size != DISK_REC_LEN || p[0] != DISK_REC_VERSION) {
		(void)BUG("storage record of unknown shape");
		return MDB_CORRUPTED;
	}
	r->flags = p[1];
	r->len = disk_get_u64(p + 8);
	r->created_ms = disk_get_u64(p + 16);
	return 0;
}

/* In txn: 0 found, MDB_NOTFOUND, or another LMDB error. */
static int disk_txn_rec_get(store_disk *sd, MDB_txn *txn, const uint8_t id[B3_OUT_LEN],
                            disk_rec *r)
{
	MDB_val k = { B3_OUT_LEN, (void *)(uintptr_t)id }, v;
	int rc = mdb_get(txn, sd->dbi, &k, &v);

	return rc == 0 ? disk_rec_decode(&v, r) : rc;
}

static int disk_txn_rec_put(store_disk *sd, MDB_txn *txn, const uint8_t id[B3_OUT_LEN],
                            const disk_rec *r)
{
	uint8_t buf[DISK_REC_LEN];
	MDB_val k = { B3_OUT_LEN, (void *)(uintptr_t)id }, v = { DISK_REC_LEN, buf };

	disk_rec_encode(r, buf);
	return mdb_put(txn, sd->dbi, &k, &v, 0);
}

/* 0 found, 1 absent, -1 error (a record we cannot read is an error: BUG). */
static int disk_rec_get(store_disk *sd, const uint8_t id[B3_OUT_LEN], disk_rec *r)
{
	MDB_txn *txn;
	int rc;

	if (mdb_txn_begin(sd->env, NULL, MDB_RDONLY, &txn) != 0)
		return -1;
	rc = disk_txn_rec_get(sd, txn, id, r);
	mdb_txn_abort(txn);
	return rc == 0 ? 0 : rc == MDB_NOTFOUND ? 1 : -1;
}

/* ---- the cache database ------------------------------------------------------ */

typedef struct disk_totals {
	uint64_t bytes;
	uint64_t objects;
} disk_totals;

/* (created ms big-endian, id): LMDB's byte order is then fetch order. */
static void disk_cache_key(uint64_t ms, const uint8_t id[B3_OUT_LEN],
                           uint8_t out[DISK_CACHE_KEY_LEN])
{
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(ms >> (56 - 8 * i));
	memcpy(out + 8, id, B3_OUT_LEN);
}

static int disk_totals_get(store_disk *sd, MDB_txn *txn, disk_totals *t)
{
	MDB_val k = { strlen(DISK_TOTALS_KEY), (void *)(uintptr_t)DISK_TOTALS_KEY }, v;
	int rc = mdb_get(txn, sd->cache_dbi, &k, &v);

	*t = (disk_totals){ 0, 0 };
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (v.mv_size != DISK_TOTALS_LEN) {
		(void)BUG("storage cache totals of unknown shape");
		return MDB_CORRUPTED;
	}
	t->bytes = disk_get_u64(v.mv_data);
	t->objects = disk_get_u64((const uint8_t *)v.mv_data + 8);
	return 0;
}

static int disk_totals_put(store_disk *sd, MDB_txn *txn, const disk_totals *t)
{
	uint8_t buf[DISK_TOTALS_LEN];
	MDB_val k = { strlen(DISK_TOTALS_KEY), (void *)(uintptr_t)DISK_TOTALS_KEY },
	        v = { DISK_TOTALS_LEN, buf };

	disk_put_u64(buf, t->bytes);
	disk_put_u64(buf + 8, t->objects);
	return mdb_put(txn, sd->cache_dbi, &k, &v, 0);
}

/* Count a cached record in: its entry, and the totals. */
static int disk_cache_link(store_disk *sd, MDB_txn *txn, const uint8_t id[B3_OUT_LEN],
                           const disk_rec *r, disk_totals *t)
{
	uint8_t key[DISK_CACHE_KEY_LEN], len[8];
	MDB_val k = { sizeof key, key }, v = { sizeof len, len };

	disk_cache_key(r->created_ms, id, key);
	disk_put_u64(len, r->len);
	int rc = mdb_put(txn, sd->cache_dbi, &k, &v, 0);
	if (rc == 0) {
		t->bytes += r->len;
		t->objects++;
	}
	return rc;
}

/* Count a cached record out (promoted, or replaced). No entry: nothing. */
static int disk_cache_unlink(store_disk *sd, MDB_txn *txn, const uint8_t id[B3_OUT_LEN],
                             const disk_rec *r, disk_totals *t)
{
	uint8_t key[DISK_CACHE_KEY_LEN];
	MDB_val k = { sizeof key, key };

	disk_cache_key(r->created_ms, id, key);
	int rc = mdb_del(txn, sd->cache_dbi, &k, NULL);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == 0) {
		t->bytes = t->bytes > r->len ? t->bytes - r->len : 0;
		t->objects = t->objects > 0 ? t->objects - 1 : 0;
	}
	return rc;
}

static void disk_totals_mirror(store_disk *sd, const disk_totals *t)
{
	atomic_store(&sd->base.cache_bytes, t->bytes);
	atomic_store(&sd->base.cache_objects, t->objects);
}

/* A change inside one write transaction: returns 0 or an LMDB error; sets
 * *st to a result other than STORE_OK to abort without an error (404…). */
typedef int (*disk_txn_fn)(store_disk *sd, MDB_txn *txn, disk_totals *t, void *arg,
                           store_status *st);

/* Run fn in one write transaction with the cache totals read before and
 * written after it; the in-memory counters follow a commit. */
static store_status disk_write(store_disk *sd, disk_txn_fn fn, void *arg)
{
	store_status st = STORE_OK;
	disk_totals t;
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(sd->env, NULL, 0, &txn)) != 0)
		goto fail;
	if ((rc = disk_totals_get(sd, txn, &t)) != 0 || (rc = fn(sd, txn, &t, arg, &st)) != 0 ||
	    st != STORE_OK || (rc = disk_totals_put(sd, txn, &t)) != 0) {
		mdb_txn_abort(txn);
		if (rc == 0)
			return st;
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	disk_totals_mirror(sd, &t);
	return STORE_OK;
fail:
	log_kv(LOG_LEVEL_ERROR, "storage metadata write failed", "error", mdb_strerror(rc), LOG_END);
	return rc == MDB_MAP_FULL ? STORE_BUSY : STORE_ERROR;
}

typedef struct disk_store_arg {
	const uint8_t *id;
	uint64_t       len;
	bool           cache;
	uint64_t       ms;        /* the record's created time */
} disk_store_arg;

/* The record of a new object (or of one replacing a quarantined record),
 * in the cache if it is a cache copy. */
static int disk_txn_store(store_disk *sd, MDB_txn *txn, disk_totals *t, void *arg,
                          store_status *st)
{
	const disk_store_arg *a = arg;
	disk_rec old, r = { .len = a->len, .flags = a->cache ? DISK_F_CACHED : 0,
	                    .created_ms = a->ms };
	int rc = disk_txn_rec_get(sd, txn, a->id, &old);

	(void)st;
	if (rc == 0 && (old.flags & DISK_F_CACHED))
		rc = disk_cache_unlink(sd, txn, a->id, &old, t);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	if ((rc = disk_txn_rec_put(sd, txn, a->id, &r)) != 0)
		return rc;
	return a->cache ? disk_cache_link(sd, txn, a->id, &r, t) : 0;
}

typedef struct disk_pin_arg {
	const uint8_t *id;
	uint64_t       len;
} disk_pin_arg;

static int disk_txn_pin(store_disk *sd, MDB_txn *txn, disk_totals *t, void *arg,
                        store_status *st)
{
	disk_pin_arg *a = arg;
	disk_rec r;
	int rc = disk_txn_rec_get(sd, txn, a->id, &r);

	if (rc == MDB_NOTFOUND) {
		*st = STORE_NOT_FOUND;
		return 0;
	}
	if (rc != 0)
		return rc;
	if (r.flags & DISK_F_QUARANTINED) {
		*st = STORE_QUARANTINED;
		return 0;
	}
	a->len = r.len;
	if (!(r.flags & DISK_F_CACHED))
		return 0;
	if ((rc = disk_cache_unlink(sd, txn, a->id, &r, t)) != 0)
		return rc;
	r.flags &= (uint8_t)~DISK_F_CACHED;
	return disk_txn_rec_put(sd, txn, a->id, &r);
}

static int disk_txn_quarantine(store_disk *sd, MDB_txn *txn, disk_totals *t, void *arg,
                               store_status *st)
{
	const uint8_t *id = arg;
	disk_rec r;
	int rc = disk_txn_rec_get(sd, txn, id, &r);

	(void)t;
	if (rc == MDB_NOTFOUND) {
		*st = STORE_NOT_FOUND;
		return 0;
	}
	if (rc != 0 || (r.flags & DISK_F_QUARANTINED))
		return rc;
	r.flags |= DISK_F_QUARANTINED;
	return disk_txn_rec_put(sd, txn, id, &r);
}

typedef struct disk_evict_arg {
	const uint8_t *keep;                         /* never this one; NULL: none */
	uint8_t        ids[STORE_CACHE_EVICT_MAX][B3_OUT_LEN];
	size_t         n;                            /* records removed */
} disk_evict_arg;

/* The oldest cache entries and their records, while over the limit. */
static int disk_txn_evict(store_disk *sd, MDB_txn *txn, disk_totals *t, void *arg,
                          store_status *st)
{
	disk_evict_arg *ev = arg;
	uint64_t limit = atomic_load(&sd->base.cache_limit);
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	(void)st;
	if ((rc = mdb_cursor_open(txn, sd->cache_dbi, &cur)) != 0)
		return rc;
	for (unsigned i = 0; i < STORE_CACHE_EVICT_MAX && t->bytes > limit; i++) {
		uint8_t id[B3_OUT_LEN];
		disk_rec r;
		if ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) != 0 || k.mv_size != DISK_CACHE_KEY_LEN)
			break;
		memcpy(id, (const uint8_t *)k.mv_data + 8, B3_OUT_LEN);
		if (ev->keep && b3_equal(id, ev->keep))
			break;
		uint64_t len = v.mv_size == 8 ? disk_get_u64(v.mv_data) : 0;
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
		t->bytes = t->bytes > len ? t->bytes - len : 0;
		t->objects = t->objects > 0 ? t->objects - 1 : 0;
		rc = disk_txn_rec_get(sd, txn, id, &r);
		if (rc == 0 && !(r.flags & DISK_F_CACHED))
			(void)BUG("cache entry of an owned object");   /* the entry alone goes */
		else if (rc == 0 && (rc = mdb_del(txn, sd->dbi, &(MDB_val){ B3_OUT_LEN, id }, NULL)) == 0)
			memcpy(ev->ids[ev->n++], id, B3_OUT_LEN);
		if (rc != 0 && rc != MDB_NOTFOUND)
			break;
		rc = 0;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* "xx/HEX" or "xx/HEX.ob" relative to objects/. */
static void disk_name(const uint8_t id[B3_OUT_LEN], bool outboard, char out[DISK_NAME_MAX])
{
	char hex[B3_HEX_LEN + 1];

	b3_hex(id, hex);
	snprintf(out, DISK_NAME_MAX, "%.2s/%s%s", hex, hex, outboard ? DISK_OB_SUFFIX : "");
}

static int disk_tmp_named(store_disk *sd, char **tmp_path)
{
	char path[DISK_PATH_MAX];

	if ((size_t)snprintf(path, sizeof path, "%s/%s", sd->tmp_dir, DISK_TMP_TEMPLATE) >= sizeof path)
		return -1;
	int fd = mkostemp(path, O_CLOEXEC);   /* mode 0600 */
	if (fd < 0)
		return -1;
	*tmp_path = strdup(path);
	if (!*tmp_path) {
		(void)unlink(path);
		close(fd);
		return -1;
	}
	return fd;
}

/* O_TMPFILE when the file system has it: the file has no name until commit,
 * so a crash can leave nothing behind. */
static int disk_tmp_create(store *st, char **tmp_path)
{
	store_disk *sd = (store_disk *)st;

	*tmp_path = NULL;
	if (!atomic_load(&sd->no_tmpfile)) {
		int fd = openat(sd->tmp_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
			return -1;
		if (!atomic_exchange(&sd->no_tmpfile, true))
			log_kv(LOG_LEVEL_WARN, "O_TMPFILE unsupported under data_dir; using named temp files",
			       LOG_END);
	}
	return disk_tmp_named(sd, tmp_path);
}

/* objects/xx/, created (and objects/ fsynced) the first time. Returns a dir fd. */
static int disk_subdir(store_disk *sd, const char name[DISK_NAME_MAX])
{
	char sub[DISK_SUBDIR_LEN + 1];

	memcpy(sub, name, DISK_SUBDIR_LEN);
	sub[DISK_SUBDIR_LEN] = '\0';
	if (mkdirat(sd->objects_fd, sub, 0700) == 0) {
		if (fsync(sd->objects_fd) != 0)
			return -1;
	} else if (errno != EEXIST) {
		return -1;
	}
	return openat(sd->objects_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Give the file its final name. A named temp file is renamed; an O_TMPFILE
 * one is linked from /proc/self/fd (linkat with AT_EMPTY_PATH needs
 * CAP_DAC_READ_SEARCH: only the fallback). A file already at the name has
 * no live record (a stray, or a quarantined object being replaced) and is
 * replaced. */
static int disk_link(store_disk *sd, int fd, char **tmp_path, const char *name)
{
	char proc[64];

	if (*tmp_path) {
		if (renameat(AT_FDCWD, *tmp_path, sd->objects_fd, name) != 0)
			return -1;
		free(*tmp_path);
		*tmp_path = NULL;
		return 0;
	}
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	for (int attempt = 0; attempt < 2; attempt++) {
		if (linkat(AT_FDCWD, proc, sd->objects_fd, name, AT_SYMLINK_FOLLOW) == 0)
			return 0;
		if (errno == ENOENT)   /* no /proc here: works where we hold CAP_DAC_READ_SEARCH */
			return linkat(fd, "", sd->objects_fd, name, AT_EMPTY_PATH);
		if (errno != EEXIST || attempt > 0 || unlinkat(sd->objects_fd, name, 0) != 0)
			return -1;
	}
	return -1;
}

static int disk_write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Blob and outboard durable under their final names (not yet visible). */
static int disk_place(store_disk *sd, store_ingest *in, const char *bname, const char *oname)
{
	char *ob_path = NULL;
	int ob_fd = -1, dir_fd = -1, rc = -1;

	if (fsync(in->up->fd) != 0)
		goto out;
	ob_fd = disk_tmp_create(&sd->base, &ob_path);
	if (ob_fd < 0 || disk_write_all(ob_fd, in->outboard, in->ob_len) != 0 || fsync(ob_fd) != 0)
		goto out;
	dir_fd = disk_subdir(sd, bname);
	if (dir_fd < 0)
		goto out;
	if (disk_link(sd, in->up->fd, &in->up->tmp_path, bname) != 0 ||
	    disk_link(sd, ob_fd, &ob_path, oname) != 0)
		goto out;
	rc = fsync(dir_fd);
out:
	if (rc != 0)
		log_kv(LOG_LEVEL_ERROR, "storage cannot place object files", "error", strerror(errno), LOG_END);
	if (ob_path) {
		(void)unlink(ob_path);
		free(ob_path);
	}
	if (ob_fd >= 0)
		close(ob_fd);
	if (dir_fd >= 0)
		close(dir_fd);
	return rc;
}

/* Unlink the files of evicted objects (their records are gone already). */
static void disk_unlink_files(store_disk *sd, const uint8_t id[B3_OUT_LEN])
{
	char name[DISK_NAME_MAX];

	disk_name(id, false, name);
	(void)unlinkat(sd->objects_fd, name, 0);
	disk_name(id, true, name);
	(void)unlinkat(sd->objects_fd, name, 0);
}

/* One bounded eviction pass, when the cache is over its limit. Under
 * ingest_lock, or before the store is shared (store_disk_new). */
static void disk_evict(store_disk *sd, const uint8_t *keep)
{
	disk_evict_arg *ev;

	if (atomic_load(&sd->base.cache_bytes) <= atomic_load(&sd->base.cache_limit))
		return;
	if (!(ev = calloc(1, sizeof *ev)))
		return;
	ev->keep = keep;
	if (disk_write(sd, disk_txn_evict, ev) == STORE_OK) {
		if (ev->n)
			store_removed(&sd->base);
		for (size_t i = 0; i < ev->n; i++)
			disk_unlink_files(sd, ev->ids[i]);
		atomic_fetch_add(&sd->base.cache_evictions, ev->n);
	}
	free(ev);
}

/* id's record when the object may be served: 200, or 404 (unknown), 502
 * (quarantined), 500 (LMDB failed). */
static store_status disk_rec_servable(store_disk *sd, const uint8_t id[B3_OUT_LEN], disk_rec *r)
{
	int have = disk_rec_get(sd, id, r);

	if (have < 0)
		return STORE_ERROR;
	if (have > 0)
		return STORE_NOT_FOUND;
	return r->flags & DISK_F_QUARANTINED ? STORE_QUARANTINED : STORE_OK;
}

static store_status disk_pin(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len)
{
	store_disk *sd = (store_disk *)st;
	disk_pin_arg a = { .id = id };
	disk_rec r;
	store_status st_rc = disk_rec_servable(sd, id, &r);

	if (st_rc != STORE_OK)
		return st_rc;
	if (!(r.flags & DISK_F_CACHED)) {   /* owned already: no write */
		*len = r.len;
		return STORE_OK;
	}
	store_status rc = disk_write(sd, disk_txn_pin, &a);
	if (rc == STORE_OK)
		*len = a.len;
	return rc;
}

static store_status disk_ingest_locked(store_disk *sd, store_ingest *in, bool *created)
{
	char bname[DISK_NAME_MAX], oname[DISK_NAME_MAX];
	store_status rc = STORE_ERROR;
	disk_rec r;
	int have = disk_rec_get(sd, in->id, &r);

	if (have < 0)
		return STORE_ERROR;
	if (have == 0 && !(r.flags & DISK_F_QUARANTINED)) {
		uint64_t len;
		*created = false;
		/* an owned commit promotes a cached copy; a cache commit changes nothing */
		return in->cache || !(r.flags & DISK_F_CACHED) ? STORE_OK : disk_pin(&sd->base, in->id, &len);
	}
	disk_name(in->id, false, bname);
	disk_name(in->id, true, oname);
	/* Cache keys in strictly increasing time: fetch order even within a ms. */
	uint64_t ms = util_wall_ms();
	if (in->cache) {
		ms = ms > sd->last_cache_ms ? ms : sd->last_cache_ms + 1;
		sd->last_cache_ms = ms;
	}
	if (disk_place(sd, in, bname, oname) == 0)
		rc = disk_write(sd, disk_txn_store,
		                &(disk_store_arg){ .id = in->id, .len = in->len, .cache = in->cache,
		                                   .ms = ms });
	if (rc == STORE_OK) {
		*created = true;
		if (in->cache)
			disk_evict(sd, in->id);
		return STORE_OK;
	}
	if (have == 1) {   /* files with no record are strays: remove them now */
		(void)unlinkat(sd->objects_fd, bname, 0);
		(void)unlinkat(sd->objects_fd, oname, 0);
	}
	return rc;
}

static store_status disk_ingest(store *st, store_ingest *in, bool *created)
{
	store_disk *sd = (store_disk *)st;

	pthread_mutex_lock(&sd->ingest_lock);
	store_status rc = disk_ingest_locked(sd, in, created);
	pthread_mutex_unlock(&sd->ingest_lock);
	return rc;
}

static store_status disk_stat(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len)
{
	disk_rec r;
	store_status rc = disk_rec_servable((store_disk *)st, id, &r);

	if (rc == STORE_OK)
		*len = r.len;
	return rc;
}

/* Read and write in one transaction: an eviction between them cannot
 * bring a record back. */
static store_status disk_quarantine(store *st, const uint8_t id[B3_OUT_LEN])
{
	store_status rc = disk_write((store_disk *)st, disk_txn_quarantine, (void *)(uintptr_t)id);

	if (rc == STORE_OK)
		store_removed(st);
	return rc;
}

/* Open objects/<name> read-only and check its size; -1 if missing or wrong. */
static int disk_open_sized(store_disk *sd, const char *name, uint64_t want)
{
	struct stat sb;
	int fd = openat(sd->objects_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != want) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A recorded object whose files are gone or the wrong size: never serve it.
 * Unless its record is gone too: a cached copy evicted since we read it. */
static store_status disk_open_broken(store *st, const uint8_t id[B3_OUT_LEN], const char *kind)
{
	char cid[B3_CID_LEN + 1], labels[32];
	disk_rec r;

	if (disk_rec_get((store_disk *)st, id, &r) == 1)
		return STORE_NOT_FOUND;

	b3_cid_format(id, cid);
	snprintf(labels, sizeof labels, "object=\"%s\"", kind);
	metrics_count("integrity_fail_total", labels, 1);
	log_kv(LOG_LEVEL_ERROR, "stored object damaged; quarantined", "cid", cid, "object", kind, LOG_END);
	(void)disk_quarantine(st, id);
	if (st->on_damage)
		st->on_damage(st->on_damage_arg, cid, kind);
	return STORE_QUARANTINED;
}

static store_status disk_open(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len,
                              int *blob_fd, int *ob_fd)
{
	store_disk *sd = (store_disk *)st;
	char name[DISK_NAME_MAX];
	store_status rc = disk_stat(st, id, len);

	if (rc != STORE_OK)
		return rc;
	disk_name(id, false, name);
	*blob_fd = disk_open_sized(sd, name, *len);
	if (*blob_fd < 0)
		return disk_open_broken(st, id, "blob");
	disk_name(id, true, name);
	*ob_fd = disk_open_sized(sd, name, b3tree_outboard_len(*len));
	if (*ob_fd < 0) {
		close(*blob_fd);
		*blob_fd = -1;
		return disk_open_broken(st, id, "outboard");
	}
	return STORE_OK;
}

/* ---- start-up: open, lock, sweep -------------------------------------------- */

/* Parse "HEX" or "HEX.ob" into id. 0 or -1 (not a name this store makes). */
static int disk_parse_name(const char *name, uint8_t id[B3_OUT_LEN])
{
	size_t n = strlen(name);

	if (n == B3_HEX_LEN + strlen(DISK_OB_SUFFIX) &&
	    strcmp(name + B3_HEX_LEN, DISK_OB_SUFFIX) == 0)
		n = B3_HEX_LEN;
	if (n != B3_HEX_LEN)
		return -1;
	return b3_hex_parse(name, B3_HEX_LEN, id);
}

/* Remove every entry of dirfd for which keep() is false. Returns the count. */
static size_t disk_sweep_dir(store_disk *sd, int dirfd,
                             bool (*keep)(store_disk *, const char *))
{
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	size_t removed = 0;
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
			continue;
		if (keep(sd, e->d_name))
			continue;
		if (unlinkat(dirfd, e->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	return removed;
}

static bool disk_keep_none(store_disk *sd, const char *name)
{
	(void)sd; (void)name;
	return false;
}

/* A blob or outboard file is kept only if its object has a record; a name
 * this store never makes is left alone (and logged): not ours to delete. */
static bool disk_keep_object_file(store_disk *sd, const char *name)
{
	uint8_t id[B3_OUT_LEN];
	disk_rec r;

	if (disk_parse_name(name, id) != 0) {
		log_kv(LOG_LEVEL_WARN, "unexpected file under objects/ left alone", "name", name, LOG_END);
		return true;
	}
	return disk_rec_get(sd, id, &r) != 1;
}

static size_t disk_sweep(store_disk *sd)
{
	size_t removed = disk_sweep_dir(sd, sd->tmp_fd, disk_keep_none);

	for (unsigned i = 0; i < 256; i++) {
		char sub[DISK_SUBDIR_LEN + 1];
		snprintf(sub, sizeof sub, "%02x", i);
		int fd = openat(sd->objects_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		size_t n = disk_sweep_dir(sd, fd, disk_keep_object_file);
		if (n > 0)
			(void)fsync(fd);
		removed += n;
		close(fd);
	}
	return removed;
}

static int disk_mkdir(const char *data_dir, const char *sub, char *path, size_t pathlen,
                      char *err, size_t errlen)
{
	if ((size_t)snprintf(path, pathlen, "%s/%s", data_dir, sub) >= pathlen) {
		snprintf(err, errlen, "%s: path too long", data_dir);
		return -1;
	}
	return util_ensure_dir(path, 0700, err, errlen);
}

static int disk_open_dirs(store_disk *sd, const char *data_dir, char *meta, size_t metalen,
                          char *err, size_t errlen)
{
	char objects[DISK_PATH_MAX];

	if (util_ensure_dir(data_dir, 0700, err, errlen) != 0 ||
	    disk_mkdir(data_dir, "meta", meta, metalen, err, errlen) != 0 ||
	    disk_mkdir(data_dir, "objects", objects, sizeof objects, err, errlen) != 0 ||
	    disk_mkdir(data_dir, "tmp", sd->tmp_dir, sizeof sd->tmp_dir, err, errlen) != 0)
		return -1;
	sd->objects_fd = open(objects, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	sd->tmp_fd = open(sd->tmp_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sd->objects_fd < 0 || sd->tmp_fd < 0) {
		snprintf(err, errlen, "%s: cannot open store directories: %s", data_dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* One store per data_dir: its sweep would delete another's uploads. */
static int disk_lock(store_disk *sd, const char *meta, char *err, size_t errlen)
{
	char path[DISK_PATH_MAX];

	if ((size_t)snprintf(path, sizeof path, "%s/storage.lock", meta) >= sizeof path) {
		snprintf(err, errlen, "%s: path too long", meta);
		return -1;
	}
	sd->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (sd->lock_fd < 0 || flock(sd->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		snprintf(err, errlen, "%s: cannot lock (another storage process?): %s", path,
		         strerror(errno));
		return -1;
	}
	return 0;
}

static int disk_open_env(store_disk *sd, const char *meta, char *err, size_t errlen)
{
	MDB_txn *txn;
	int dead, rc;

	if ((rc = mdb_env_create(&sd->env)) != 0 ||
	    (rc = mdb_env_set_mapsize(sd->env, STORE_DISK_MAP_SIZE)) != 0 ||
	    (rc = mdb_env_set_maxdbs(sd->env, 2)) != 0 ||
	    (rc = mdb_env_open(sd->env, meta, MDB_NOTLS, 0600)) != 0 ||
	    (rc = mdb_reader_check(sd->env, &dead)) != 0 ||
	    (rc = mdb_txn_begin(sd->env, NULL, 0, &txn)) != 0)
		goto fail;
	disk_totals t;
	if ((rc = mdb_dbi_open(txn, NULL, 0, &sd->dbi)) != 0 ||
	    (rc = mdb_dbi_open(txn, DISK_CACHE_DB, MDB_CREATE, &sd->cache_dbi)) != 0 ||
	    (rc = mdb_dbi_open(txn, DISK_CTYPE_DB, MDB_CREATE, &sd->ctype_dbi)) != 0 ||
	    (rc = disk_totals_get(sd, txn, &t)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	disk_totals_mirror(sd, &t);
	return 0;
fail:
	snprintf(err, errlen, "%s: cannot open LMDB: %s", meta, mdb_strerror(rc));
	return -1;
}

/* The type record (store_meta.c; the LMDB side in store_disk_meta.c). */
static int disk_meta_get(store *st, const uint8_t id[B3_OUT_LEN], char out[STORE_CTYPE_MAX],
                         bool *by_read)
{
	return disk_ctype_get(((store_disk *)st)->env, ((store_disk *)st)->ctype_dbi, id, out,
	                      by_read);
}

static int disk_meta_put(store *st, const uint8_t id[B3_OUT_LEN], const char *ctype,
                         bool by_read)
{
	return disk_ctype_put(((store_disk *)st)->env, ((store_disk *)st)->ctype_dbi, id, ctype,
	                      by_read);
}

static void disk_destroy(store *st)
{
	store_disk *sd = (store_disk *)st;

	store_base_release(st);
	if (sd->env)
		mdb_env_close(sd->env);
	if (sd->objects_fd >= 0) close(sd->objects_fd);
	if (sd->tmp_fd >= 0) close(sd->tmp_fd);
	if (sd->lock_fd >= 0) close(sd->lock_fd);
	if (sd->ingest_lock_ok)
		pthread_mutex_destroy(&sd->ingest_lock);
	free(sd);
}

/* An LMDB cursor from the first key after `after`, in key (= id) order. */
static store_status disk_list(store *st, const uint8_t *after, uint8_t (*ids)[B3_OUT_LEN],
                              size_t max, size_t *n, bool *more)
{
	store_disk *sd = (store_disk *)st;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = { B3_OUT_LEN, (void *)(uintptr_t)after }, v;
	int rc;

	if (mdb_txn_begin(sd->env, NULL, MDB_RDONLY, &txn) != 0)
		return STORE_ERROR;
	if (mdb_cursor_open(txn, sd->dbi, &cur) != 0) {
		mdb_txn_abort(txn);
		return STORE_ERROR;
	}
	rc = after ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	if (rc == 0 && after && k.mv_size == B3_OUT_LEN && memcmp(k.mv_data, after, B3_OUT_LEN) == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != B3_OUT_LEN || v.mv_size != DISK_REC_LEN)
			continue;
		if (((const uint8_t *)v.mv_data)[1] & (DISK_F_QUARANTINED | DISK_F_CACHED))
			continue;
		if (*n == max) {
			*more = true;
			break;
		}
		memcpy(ids[(*n)++], k.mv_data, B3_OUT_LEN);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc == 0 || rc == MDB_NOTFOUND ? STORE_OK : STORE_ERROR;
}

static const store_backend disk_backend = {
	.name = "disk",
	.ingest_off_loop = true,
	.tmp_create = disk_tmp_create,
	.freeze = NULL,
	.ingest = disk_ingest,
	.stat = disk_stat,
	.open = disk_open,
	.quarantine = disk_quarantine,
	.pin = disk_pin,
	.list = disk_list,
	.meta_get = disk_meta_get,
	.meta_put = disk_meta_put,
	.destroy = disk_destroy,
};

store *store_disk_new(const char *data_dir, const store_limits *lim, unsigned flags,
                      char *err, size_t errlen)
{
	store_disk *sd = calloc(1, sizeof *sd);
	char meta[DISK_PATH_MAX];

	if (!sd) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	sd->objects_fd = sd->tmp_fd = sd->lock_fd = -1;
	atomic_init(&sd->no_tmpfile, (flags & STORE_DISK_NO_TMPFILE) != 0);
	sd->ingest_lock_ok = pthread_mutex_init(&sd->ingest_lock, NULL) == 0;
	if (!sd->ingest_lock_ok || store_base_init(&sd->base, &disk_backend, lim) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (disk_open_dirs(sd, data_dir, meta, sizeof meta, err, errlen) != 0 ||
	    disk_lock(sd, meta, err, errlen) != 0 ||
	    disk_open_env(sd, meta, err, errlen) != 0)
		goto fail;
	size_t removed = disk_sweep(sd);
	disk_evict(sd, NULL);   /* a limit lowered while we were down */
	if (removed > 0) {
		char n[24];
		snprintf(n, sizeof n, "%zu", removed);
		log_kv(LOG_LEVEL_INFO, "removed files a crash left behind", "count", n, LOG_END);
	}
	return &sd->base;
fail:
	disk_destroy(&sd->base);
	return NULL;
}
