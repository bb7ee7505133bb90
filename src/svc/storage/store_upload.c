/*
 * store_upload.c — the part of the store (store.h) that does not depend on
 * the backend: the table of open uploads, and the commit that reads an
 * upload back, computes its id and outboard, and hands the verified object
 * to the backend's ingest.
 *
 * The table is the loop thread's alone. A commit first takes its upload out
 * of the table (store_commit_take), so while the slow part runs on a worker
 * (store_commit_run) the upload is reachable from nowhere else: not by
 * another commit, an abort, or store_abort_owner of a closing connection.
 * The worker's scratch (a tree builder and one read piece, ~128 KiB) is
 * allocated per run, so a queued commit holds only its small struct and
 * the upload's fd.
 */
#include "svc/storage/store.h"
#include "svc/storage/store_test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/objects/stor_msg.h"   /* STOR_EPOCH_LEN */
#include "lib/b3tree.h"
#include "lib/log.h"

#define STORE_TABLE_FIRST 16u   /* upload slots allocated at first use */

struct store_commit {
	store_upload up;            /* out of the table: the commit's alone */
	uint64_t     len;
	bool         has_expect;
	uint8_t      expect[B3_OUT_LEN];
	bool         cache;         /* a cache copy (store.h) */
	bool         ran;           /* store_commit_run done */
	store_status rc;            /* its result */
	uint8_t      id[B3_OUT_LEN];
	bool         created;
	uint8_t     *ob;            /* the outboard, for an ingest still to come */
	size_t       ob_len;
};

/* What one read-back needs; too big for a worker's stack. */
typedef struct store_scratch {
	b3tree_builder bld;
	uint8_t        piece[STORE_IO_PIECE];
} store_scratch;

/* ---- life and limits --------------------------------------------------------- */

/* The removal epoch: a page of shared memory, sealed so that nobody else
 * can write it (F_SEAL_FUTURE_WRITE, Linux 5.1) or change its size. Without
 * it the store works as before; WATCH answers 503 and clients keep no
 * handles between requests. */
static void store_epoch_init(store *st)
{
	const size_t len = STOR_EPOCH_LEN;
	int fd = memfd_create("macronode-epoch", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	void *m = MAP_FAILED;

	atomic_init(&st->epoch_local, 0);
	st->epoch = &st->epoch_local;
	st->epoch_fd = -1;
	if (fd < 0 || ftruncate(fd, (off_t)len) != 0 ||
	    (m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) != 0) {
		log_kv(LOG_LEVEL_WARN, "no removal epoch; clients will not keep open objects",
		       "error", strerror(errno), LOG_END);
		if (m != MAP_FAILED)
			(void)munmap(m, len);
		if (fd >= 0)
			close(fd);
		return;
	}
	st->epoch = m;
	atomic_init(st->epoch, 0);
	st->epoch_fd = fd;
}

void store_removed(store *st)
{
	atomic_fetch_add(st->epoch, 1);
}

int store_epoch_dup(const store *st)
{
	return st->epoch_fd < 0 ? -1 : fcntl(st->epoch_fd, F_DUPFD_CLOEXEC, 0);
}

int store_base_init(store *st, const store_backend *be, const store_limits *lim)
{
	st->be = be;
	st->lim = *lim;
	st->next_handle = 1;
	atomic_init(&st->cache_limit, lim->cache_bytes);
	atomic_init(&st->cache_bytes, 0);
	atomic_init(&st->cache_objects, 0);
	atomic_init(&st->cache_evictions, 0);
	store_epoch_init(st);
	return 0;
}

static void store_upload_drop(store_upload *u)
{
	if (u->fd >= 0)
		close(u->fd);
	if (u->tmp_path) {
		(void)unlink(u->tmp_path);
		free(u->tmp_path);
	}
	u->fd = -1;
	u->tmp_path = NULL;
}

void store_base_release(store *st)
{
	for (size_t i = 0; i < st->nup; i++)
		store_upload_drop(&st->up[i]);
	free(st->up);
	st->up = NULL;
	st->nup = st->cap = 0;
	if (st->epoch && st->epoch != &st->epoch_local) {   /* NULL: never initialised */
		(void)munmap((void *)st->epoch, STOR_EPOCH_LEN);
		close(st->epoch_fd);
		st->epoch_fd = -1;
		st->epoch = &st->epoch_local;
	}
}

void store_free(store *st)
{
	if (st)
		st->be->destroy(st);
}

void store_set_limits(store *st, const store_limits *lim)
{
	st->lim = *lim;
	atomic_store(&st->cache_limit, lim->cache_bytes);
}

void store_cache_stats(const store *st, store_cache_info *out)
{
	out->bytes = atomic_load(&st->cache_bytes);
	out->objects = atomic_load(&st->cache_objects);
	out->evictions = atomic_load(&st->cache_evictions);
}

size_t store_uploads_open(const store *st)
{
	return st->nup;
}

/* ---- the upload table --------------------------------------------------------- */

static store_upload *store_upload_find(store *st, uint64_t owner, uint64_t handle)
{
	for (size_t i = 0; i < st->nup; i++)
		if (st->up[i].handle == handle && st->up[i].owner == owner)
			return &st->up[i];
	return NULL;
}

/* Remove u from the table (order is not kept); u's contents are moved to *out. */
static void store_upload_take(store *st, store_upload *u, store_upload *out)
{
	*out = *u;
	*u = st->up[--st->nup];
}

static int store_upload_reserve(store *st)
{
	if (st->nup < st->cap)
		return 0;
	size_t ncap = st->cap ? st->cap * 2 : STORE_TABLE_FIRST;
	store_upload *n = realloc(st->up, ncap * sizeof *n);
	if (!n)
		return -1;
	st->up = n;
	st->cap = ncap;
	return 0;
}

static bool store_key_is_set(const char *key)
{
	return key && key[0];
}

/* Open uploads of this tenant (by_peer false) or this peer. The keys were
 * cut to STORE_KEY_MAX - 1 when stored, so compare no further. */
static size_t store_count_key(const store *st, bool by_peer, const char *key)
{
	size_t n = 0;

	for (size_t i = 0; i < st->nup; i++) {
		const char *k = by_peer ? st->up[i].peer : st->up[i].tenant;
		if (strncmp(k, key, STORE_KEY_MAX - 1) == 0)
			n++;
	}
	return n;
}

store_share store_share_full(const store *st, const store_who *who)
{
	const store_limits *l = &st->lim;

	if (st->nup >= l->max_uploads)
		return STORE_SHARE_TABLE;
	if (who && l->max_per_tenant && store_key_is_set(who->tenant) &&
	    store_count_key(st, false, who->tenant) >= l->max_per_tenant)
		return STORE_SHARE_TENANT;
	if (who && l->max_per_peer && store_key_is_set(who->peer) &&
	    store_count_key(st, true, who->peer) >= l->max_per_peer)
		return STORE_SHARE_PEER;
	return STORE_SHARE_OK;
}

store_status store_put_begin(store *st, uint64_t owner, uint64_t max_len, const store_who *who,
                             uint64_t *handle, int *fd)
{
	store_upload u = { .owner = owner, .max_len = max_len, .fd = -1 };

	if (max_len > st->lim.max_object_bytes || max_len > B3TREE_MAX_LEN)
		return STORE_TOO_LARGE;
	if (store_share_full(st, who) != STORE_SHARE_OK)
		return STORE_BUSY;
	if (who && who->tenant)
		snprintf(u.tenant, sizeof u.tenant, "%s", who->tenant);
	if (who && who->peer)
		snprintf(u.peer, sizeof u.peer, "%s", who->peer);
	if (store_upload_reserve(st) != 0)
		return STORE_ERROR;
	u.fd = st->be->tmp_create(st, &u.tmp_path);
	if (u.fd < 0)
		return STORE_ERROR;
	*fd = fcntl(u.fd, F_DUPFD_CLOEXEC, 0);
	if (*fd < 0) {
		store_upload_drop(&u);
		return STORE_ERROR;
	}
	u.handle = st->next_handle++;
	st->up[st->nup++] = u;
	*handle = u.handle;
	return STORE_OK;
}

store_status store_put_abort(store *st, uint64_t owner, uint64_t handle)
{
	store_upload *u = store_upload_find(st, owner, handle);
	store_upload gone;

	if (!u)
		return STORE_NOT_FOUND;
	store_upload_take(st, u, &gone);
	store_upload_drop(&gone);
	return STORE_OK;
}

/* Backwards: take() fills slot i from the end, which is already checked. */
void store_abort_owner(store *st, uint64_t owner)
{
	for (size_t i = st->nup; i-- > 0;) {
		if (st->up[i].owner == owner) {
			store_upload gone;
			store_upload_take(st, &st->up[i], &gone);
			store_upload_drop(&gone);
		}
	}
}

/* ---- commit ----------------------------------------------------------------- */

store_status store_commit_take(store *st, uint64_t owner, uint64_t handle, uint64_t len,
                               const uint8_t *expect, bool cache, store_commit **out)
{
	store_upload *u = store_upload_find(st, owner, handle);
	store_commit *cm;
	store_upload mine;

	*out = NULL;
	if (!u)
		return STORE_NOT_FOUND;
	store_upload_take(st, u, &mine);
	if (len > st->lim.max_object_bytes || len > mine.max_len) {
		store_upload_drop(&mine);
		return STORE_TOO_LARGE;
	}
	if (!(cm = calloc(1, sizeof *cm))) {
		store_upload_drop(&mine);
		return STORE_ERROR;
	}
	cm->up = mine;
	cm->len = len;
	cm->cache = cache;
	cm->rc = STORE_ERROR;
	if (expect) {
		cm->has_expect = true;
		memcpy(cm->expect, expect, B3_OUT_LEN);
	}
	*out = cm;
	return STORE_OK;
}

void store_commit_free(store_commit *cm)
{
	if (!cm)
		return;
	store_upload_drop(&cm->up);
	free(cm->ob);
	free(cm);
}

/* Read len bytes of fd back through the tree builder: the outboard (into ob,
 * sized for len) and the id. Short reads mean the file changed: STORE_BAD. */
static store_status store_digest(store_scratch *sc, int fd, uint64_t len, uint8_t *ob,
                                 size_t ob_len, uint8_t id[B3_OUT_LEN])
{
	uint64_t off = 0;

	b3tree_builder_init(&sc->bld, ob, ob_len);
	while (off < len) {
		uint64_t want = len - off < STORE_IO_PIECE ? len - off : STORE_IO_PIECE;
		ssize_t r = pread(fd, sc->piece, (size_t)want, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return STORE_ERROR;
		if (r == 0)
			return STORE_BAD;
		if (b3tree_builder_update(&sc->bld, sc->piece, (size_t)r) != 0)
			return STORE_ERROR;
		off += (uint64_t)r;
	}
	return b3tree_builder_finish(&sc->bld, id) == 0 ? STORE_OK : STORE_ERROR;
}

/* Freeze, length and hash checks: on 200 cm->id and cm->ob are the store's
 * own computation of what the upload holds. */
static store_status store_commit_verify(store *st, store_commit *cm)
{
	struct stat sb;
	store_scratch *sc;

	if (st->be->freeze && st->be->freeze(st, cm->up.fd) != 0)
		return STORE_BAD;
	if (fstat(cm->up.fd, &sb) != 0)
		return STORE_ERROR;
	if (sb.st_size < 0 || (uint64_t)sb.st_size != cm->len)
		return STORE_BAD;
	cm->ob_len = b3tree_outboard_len(cm->len);
	cm->ob = malloc(cm->ob_len ? cm->ob_len : 1);
	sc = malloc(sizeof *sc);
	if (!cm->ob || !sc) {
		free(sc);
		return STORE_ERROR;
	}
	store_status rc = store_digest(sc, cm->up.fd, cm->len, cm->ob, cm->ob_len, cm->id);
	free(sc);
	if (rc == STORE_OK && cm->has_expect && !b3_equal(cm->expect, cm->id))
		rc = STORE_MISMATCH;
	return rc;
}

static store_status store_commit_ingest(store *st, store_commit *cm)
{
	store_ingest in = { .up = &cm->up, .len = cm->len, .id = cm->id,
	                    .outboard = cm->ob, .ob_len = cm->ob_len, .cache = cm->cache };

	return st->be->ingest(st, &in, &cm->created);
}

void store_commit_run(store *st, store_commit *cm)
{
	cm->rc = store_commit_verify(st, cm);
	if (cm->rc == STORE_OK && st->be->ingest_off_loop)
		cm->rc = store_commit_ingest(st, cm);
	cm->ran = true;
}

store_status store_commit_finish(store *st, store_commit *cm, uint8_t id[B3_OUT_LEN],
                                 bool *created)
{
	store_status rc = cm->ran ? cm->rc : (BUG("store commit finished before it ran"), STORE_ERROR);

	if (rc == STORE_OK && !st->be->ingest_off_loop)
		rc = store_commit_ingest(st, cm);
	memcpy(id, cm->id, B3_OUT_LEN);
	*created = cm->created;
	store_commit_free(cm);
	return rc;
}

store_status store_put_commit(store *st, uint64_t owner, uint64_t handle, uint64_t len,
                              const uint8_t *expect, bool cache, uint8_t id[B3_OUT_LEN],
                              bool *created)
{
	store_commit *cm;
	store_status rc = store_commit_take(st, owner, handle, len, expect, cache, &cm);

	if (rc != STORE_OK)
		return rc;
	store_commit_run(st, cm);
	return store_commit_finish(st, cm, id, created);
}

/* ---- reads, through the backend ------------------------------------------------ */

store_status store_stat(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len)
{
	return st->be->stat(st, id, len);
}

store_status store_list(store *st, const uint8_t *after, uint8_t (*ids)[B3_OUT_LEN], size_t max,
                        size_t *n, bool *more)
{
	*n = 0;
	*more = false;
	return st->be->list(st, after, ids, max, n, more);
}

store_status store_open(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len,
                        int *blob_fd, int *ob_fd)
{
	*blob_fd = *ob_fd = -1;
	return st->be->open(st, id, len, blob_fd, ob_fd);
}

store_status store_quarantine(store *st, const uint8_t id[B3_OUT_LEN])
{
	return st->be->quarantine(st, id);
}

store_status store_pin(store *st, const uint8_t id[B3_OUT_LEN], uint64_t *len)
{
	return st->be->pin(st, id, len);
}
