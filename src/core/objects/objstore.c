/*
 * objstore.c — verify-before-serve, the upload writer and the storage
 * client path, shared by the gateway and omnigate (objstore.h).
 *
 * The outboard is read once per handle, checked against the id and kept
 * as a private copy (objcache.c: 32 bytes per 64 KiB); the blob is read
 * and hashed group by group, and each group that passed is kept in the
 * cache's verified slots for the next request (objcache.h says when they
 * are read again).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/audit/audit_client.h"
#include "core/metrics/metrics.h"
#include "core/metrics/reject.h"
#include "core/objects/objstore.h"
#include "lib/b3.h"
#include "lib/b3tree.h"
#include "lib/log.h"
#include "lib/util.h"

/* ---- objv --------------------------------------------------------------- */

void objv_init(objv *v, objcache *cache)
{
	memset(v, 0, sizeof *v);
	v->cache = cache;
	v->blob = v->ob = -1;
	v->group_idx = OBJV_NO_GROUP;
	v->kept = -1;
}

void objv_adopt(objv *v, int blob_fd, int ob_fd)
{
	objv_close(v);
	v->blob = blob_fd;
	v->ob = ob_fd;
}

void objv_close(objv *v)
{
	if (!v)
		return;
	objh_unref(v->h);
	if (v->blob >= 0)
		(void)close(v->blob);
	if (v->ob >= 0)
		(void)close(v->ob);
	objcache_buf_put(v->cache, v->buf);
	objv_init(v, v->cache);
}

const uint8_t *objv_outboard(const objv *v, size_t *len)
{
	*len = v->h ? v->h->cvs_len : 0;
	return v->h ? v->h->cvs : NULL;
}

objv_result objv_open(objv *v, const objcache_stamp *st, const uint8_t id[32], uint64_t len,
                      const char **why)
{
	objv_result rc = objcache_adopt(st ? v->cache : NULL, st, id, len, v->blob, v->ob, &v->h, why);

	v->blob = v->ob = -1;   /* taken, whatever the result */
	return rc;
}

void objv_attach(objv *v, objh *h)
{
	objv_close(v);
	v->h = h;
}

bool objv_is_open(const objv *v)
{
	return v->h != NULL;
}

objcache *objv_cache(const objv *v)
{
	return v->cache;
}

/* Read group gi whole into buf. 0/-1 (past the end, short file or I/O error). */
static int objv_read_group(objv *v, uint64_t gi)
{
	int64_t want = b3tree_group_len(v->h->len, gi);

	if (want < 0 || util_pread_full(v->h->blob, v->buf, (size_t)want, gi * B3TREE_GROUP_LEN) != 0)
		return -1;
	v->group_len = (size_t)want;
	return 0;
}

/* A kept slot is never written again: let go of one before reading. */
static void objv_let_go_slot(objv *v)
{
	if (v->buf && v->kept == 1) {
		objcache_buf_put(v->cache, v->buf);
		v->buf = NULL;
	}
}

objv_result objv_load(objv *v, uint64_t off, const char **why)
{
	uint64_t gi = v->h->len ? off / B3TREE_GROUP_LEN : 0;
	const uint8_t *kept;
	uint8_t *slot = NULL;
	size_t len;

	if (gi == v->group_idx)
		return OBJV_OK;
	v->group_idx = OBJV_NO_GROUP;
	if (v->kept < 0)   /* once per request: one fstat */
		v->kept = objcache_groups_fresh(v->cache, v->h) ? 1 : 0;
	if (v->kept == 1) {
		if ((kept = objcache_group_find(v->cache, v->h, gi, &len)) != NULL) {
			objcache_buf_put(v->cache, v->buf);
			v->buf = (uint8_t *)(uintptr_t)kept;
			v->group_len = len;
			v->group_idx = gi;
			return OBJV_OK;
		}
		objv_let_go_slot(v);
		if ((slot = objcache_group_reserve(v->cache)) != NULL) {
			objcache_buf_put(v->cache, v->buf);
			v->buf = slot;
		}
	}
	if (!v->buf && !(v->buf = objcache_buf_get(v->cache))) {
		*why = "out of memory";
		return OBJV_NOMEM;
	}
	if (objv_read_group(v, gi) < 0) {
		*why = "blob shorter than its length";
		return OBJV_INTEGRITY;
	}
	if (!b3tree_group_ok(v->buf, v->group_len, gi, v->h->len, v->h->cvs, v->h->id)) {
		*why = "group hash mismatch";
		return OBJV_INTEGRITY;
	}
	if (slot)
		objcache_group_publish(v->cache, v->h, gi, slot, v->group_len);
	v->group_idx = gi;
	return OBJV_OK;
}

const uint8_t *objv_bytes(const objv *v, uint64_t off, uint64_t max, size_t *n)
{
	uint64_t skip = off - v->group_idx * B3TREE_GROUP_LEN;
	uint64_t left = v->group_len - skip;

	*n = (size_t)(left < max ? left : max);
	return v->buf + skip;
}

const uint8_t *objv_take(objv *v, uint64_t off, uint64_t max, size_t *n)
{
	const uint8_t *p = objv_bytes(v, off, max, n);

	v->buf = NULL;
	v->group_idx = OBJV_NO_GROUP;
	return p;
}

static void objstore_on_quarantined(const stor_result *res, void *arg)
{
	(void)arg;
	if (res->status != 200)
		log_kv(LOG_LEVEL_WARN, "quarantine request failed", "status_msg",
		       res->message ? res->message : "", LOG_END);
}

void objstore_integrity_fail(stor_client *c, struct audit_client *audit, const uint8_t id[32],
                             const char *what, const char *corr_id)
{
	char cid[B3_CID_LEN + 1];

	b3_cid_format(id, cid);
	audit_count(audit, "storage", "integrity_fail_quarantine", what, cid);
	metrics_count("integrity_fail_total", "object=\"blob\"", 1);
	reject_count(REJECT_FAMILY_NODE, REJECT_INTEGRITY);
	log_kv(LOG_LEVEL_ERROR, "object failed verification", "cid", cid, "what", what,
	       "corr_id", corr_id, LOG_END);
	(void)stor_quarantine(c, id, objstore_on_quarantined, NULL);
}

/* ---- objput ------------------------------------------------------------- */

static void objput_noop(const stor_result *res, void *arg)
{
	(void)res;
	(void)arg;
}

void objput_init(objput *w, stor_client *stor, uint64_t cap)
{
	memset(w, 0, sizeof *w);
	w->stor = stor;
	w->fd = -1;
	w->cap = cap;
}

void objput_begin(objput *w, const char *tenant, const char *peer, stor_cb cb, void *arg)
{
	(void)stor_put_begin(w->stor, w->cap, tenant, peer, cb, arg);
}

void objput_begun(objput *w, const stor_result *res)
{
	if (res->status != 200)
		return;
	w->fd = res->fds[0];
	w->handle = res->handle;
	w->have_handle = true;
}

bool objput_has_fd(const objput *w)
{
	return w->fd >= 0;
}

objput_result objput_write(objput *w, const uint8_t *data, size_t n)
{
	if (n > w->cap - w->written)
		return OBJPUT_TOO_LARGE;
	while (n > 0) {
		size_t k = n > OBJSTORE_PIECE ? OBJSTORE_PIECE : n;
		ssize_t got = pwrite(w->fd, data, k, (off_t)w->written);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			log_kv(LOG_LEVEL_ERROR, "upload write failed", "error",
			       got < 0 ? strerror(errno) : "short write", LOG_END);
			return OBJPUT_IO;
		}
		w->written += (uint64_t)got;
		data += got;
		n -= (size_t)got;
	}
	return OBJPUT_OK;
}

static void objput_close_fd(objput *w)
{
	if (w->fd >= 0)
		(void)close(w->fd);
	w->fd = -1;
}

/*
 * Storage does not know the handle only when the upload died with the storage
 * process (a restart mid-body): for the client that is a retryable outage,
 * not a missing object.
 */
static void objput_on_commit(const stor_result *res, void *arg)
{
	objput *w = arg;
	stor_result lost;

	if (res->status != 404) {
		w->commit_cb(res, w->commit_arg);
		return;
	}
	lost = *res;
	lost.status = 503;
	lost.message = "upload lost: storage restarted during the upload; retry";
	w->commit_cb(&lost, w->commit_arg);
}

void objput_commit(objput *w, const uint8_t *expect, stor_cb cb, void *arg)
{
	objput_close_fd(w);
	w->have_handle = false;   /* COMMIT consumes it, whatever the answer */
	w->commit_cb = cb;
	w->commit_arg = arg;
	(void)stor_put_commit(w->stor, w->handle, w->written, expect, false, objput_on_commit, w);
}

void objput_abort(objput *w)
{
	objput_close_fd(w);
	if (w->have_handle)
		(void)stor_put_abort(w->stor, w->handle, objput_noop, NULL);
	w->have_handle = false;
}

/* ---- the storage client ------------------------------------------------- */

stor_client *objstore_client_new(struct event_base *base, const mn_config *cfg)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];

	if (config_socket_path(cfg, OBJSTORE_SOCK, path, sizeof path) != 0) {
		log_kv(LOG_LEVEL_ERROR, "storage socket path too long", "runtime_dir",
		       cfg->runtime_dir, LOG_END);
		return NULL;
	}
	return stor_client_new(base, path);
}
