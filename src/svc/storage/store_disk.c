/*
 * store_disk.c — the disk backend of the store (see store.h; the uploads
 * and the read-back of a commit are store_upload.c's).
 *
 * Layout under data_dir (all 0700, files 0600):
 *   meta/            LMDB environment: id (32 bytes) → record; storage.lock
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

#define DISK_PATH_MAX      4096
#define DISK_REC_LEN       24          /* version, flags, pad[6], len, created ms */
#define DISK_REC_VERSION   1u
#define DISK_F_QUARANTINED 0x01u
#define DISK_SUBDIR_LEN    2           /* objects/xx/ */
#define DISK_NAME_MAX      (DISK_SUBDIR_LEN + 1 + B3_HEX_LEN + 3 + 1)   /* xx/HEX.ob */
#define DISK_OB_SUFFIX     ".ob"
#define DISK_TMP_TEMPLATE  "up-XXXXXX"

/* ---- the disk backend ------------------------------------------------------ */

typedef struct store_disk {
	store    base;           /* first: a store_disk is a store */
	MDB_env *env;
	MDB_dbi  dbi;
	int      objects_fd;
	int      tmp_fd;
	int      lock_fd;
	atomic_bool no_tmpfile;      /* set by whichever thread finds out */
	pthread_mutex_t ingest_lock; /* one disk_ingest at a time */
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

/* 0 found, 1 absent, -1 error (a record we cannot read is an error: BUG). */
static int disk_rec_get(store_disk *sd, const uint8_t id[B3_OUT_LEN], disk_rec *r)
{
	MDB_txn *txn;
	MDB_val k = { B3_OUT_LEN, (void *)(uintptr_t)id }, v;
	int rc;

	if (mdb_txn_begin(sd->env, NULL, MDB_RDONLY, &txn) != 0)
		return -1;
	rc = mdb_get(txn, sd->dbi, &k, &v);
	if (rc == 0 && (v.mv_size != DISK_REC_LEN || ((uint8_t *)v.mv_data)[0] != DISK_REC_VERSION))
		rc = BUG("storage record of unknown shape");
	if (rc == 0) {
		const uint8_t *p = v.mv_data;
		r->flags = p[1];
		r->len = disk_get_u64(p + 8);
		r->created_ms = disk_get_u64(p + 16);
	}
	mdb_txn_abort(txn);
	return rc == 0 ? 0 : rc == MDB_NOTFOUND ? 1 : -1;
}

static store_status disk_rec_put(store_disk *sd, const uint8_t id[B3_OUT_LEN], const disk_rec *r)
{
	uint8_t buf[DISK_REC_LEN];
	MDB_txn *txn;
	MDB_val k = { B3_OUT_LEN, (void *)(uintptr_t)id }, v = { DISK_REC_LEN, buf };
	int rc;

	disk_rec_encode(r, buf);
	if ((rc = mdb_txn_begin(sd->env, NULL, 0, &txn)) != 0)
		goto fail;
	if ((rc = mdb_put(txn, sd->dbi, &k, &v, 0)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	return STORE_OK;
fail:
	log_kv(LOG_LEVEL_ERROR, "storage metadata write failed", "error", mdb_strerror(rc), LOG_END);
	return rc == MDB_MAP_FULL ? STORE_BUSY : STORE_ERROR;
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

static store_status disk_ingest_locked(store_disk *sd, store_ingest *in, bool *created)
{
	char bname[DISK_NAME_MAX], oname[DISK_NAME_MAX];
	store_status rc = STORE_ERROR;
	disk_rec r;
	int have = disk_rec_get(sd, in->id, &r);

	if (have < 0)
		return STORE_ERROR;
	if (have == 0 && !(r.flags & DISK_F_QUARANTINED)) {
		*created = false;
		return STORE_OK;
	}
	disk_name(in->id, false, bname);
	disk_name(in->id, true, oname);
	if (disk_place(sd, in, bname, oname) == 0) {
		r = (disk_rec){ .len = in->len, .flags = 0, .created_ms = util_wall_ms() };
		rc = disk_rec_put(sd, in->id, &r);
	}
	if (rc == STORE_OK) {
		*created = true;
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
	int have = disk_rec_get((store_disk *)st, id, &r);

	if (have < 0)
		return STORE_ERROR;
	if (have > 0)
		return STORE_NOT_FOUND;
	if (r.flags & DISK_F_QUARANTINED)
		return STORE_QUARANTINED;
	*len = r.len;
	return STORE_OK;
}

static store_status disk_quarantine(store *st, const uint8_t id[B3_OUT_LEN])
{
	store_disk *sd = (store_disk *)st;
	disk_rec r;
	int have = disk_rec_get(sd, id, &r);

	if (have < 0)
		return STORE_ERROR;
	if (have > 0)
		return STORE_NOT_FOUND;
	if (r.flags & DISK_F_QUARANTINED)
		return STORE_OK;
	r.flags |= DISK_F_QUARANTINED;
	return disk_rec_put(sd, id, &r);
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

/* A recorded object whose files are gone or the wrong size: never serve it. */
static store_status disk_open_broken(store *st, const uint8_t id[B3_OUT_LEN], const char *kind)
{
	char cid[B3_CID_LEN + 1], labels[32];

	b3_cid_format(id, cid);
	snprintf(labels, sizeof labels, "object=\"%s\"", kind);
	metrics_count("integrity_fail_total", labels, 1);
	log_kv(LOG_LEVEL_ERROR, "stored object damaged; quarantined", "cid", cid, "object", kind, LOG_END);
	(void)disk_quarantine(st, id);
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
	    (rc = mdb_env_open(sd->env, meta, MDB_NOTLS, 0600)) != 0 ||
	    (rc = mdb_reader_check(sd->env, &dead)) != 0 ||
	    (rc = mdb_txn_begin(sd->env, NULL, 0, &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, NULL, 0, &sd->dbi)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "%s: cannot open LMDB: %s", meta, mdb_strerror(rc));
	return -1;
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
		if (((const uint8_t *)v.mv_data)[1] & DISK_F_QUARANTINED)
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
	.list = disk_list,
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
