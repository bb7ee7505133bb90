/*
 * objstore.h — what every service that serves or takes objects through
 * storage shares (the gateway's /o routes, omnigate's GET/PUT verbs):
 *
 *   objv      verify before serve: one stored object, opened from the blob
 *             and outboard fds storage's OPEN handed over; its sizes are
 *             checked with fstat against the stored length and its outboard
 *             (mapped read-only) against the id before any byte is used,
 *             and each 64 KiB group is read with pread and checked against
 *             the outboard before the caller sends any of it;
 *   objput    the upload writer: decoded body pieces pwritten to the file
 *             PUT_BEGIN handed over, counted against the object cap, then
 *             PUT_COMMIT (or PUT_ABORT);
 *   objstore_integrity_fail   the bookkeeping of a blob that does not match
 *             its id: counters, one log line, quarantine;
 *   objstore_client_new       the stor_client on <runtime_dir>/storage.sock.
 *
 * Answering the peer (status, envelope, cutting a stream) stays with the
 * service: these functions only say what happened and why.
 */
#ifndef MN_CORE_OBJSTORE_H
#define MN_CORE_OBJSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config/config.h"
#include "core/objects/objcache.h"
#include "core/objects/stor_client.h"

#define OBJSTORE_SOCK  "storage.sock"
#define OBJSTORE_PIECE (64u * 1024u)   /* largest single pwrite to an upload file */

struct event_base;
struct sockaddr;

/* ---- objv: a verified reader of one stored object ----------------------- */

/* Embedded in the request state; the fields are private to objstore.c. */
typedef struct objv {
	objcache      *cache;       /* borrowed, NULL ok: handles and buffers */
	objh          *h;           /* the open object (one reference), or NULL */
	int            blob, ob;    /* adopted fds not yet opened, -1 when none */
	uint8_t       *buf;         /* the group buffer held, or NULL */
	uint64_t       group_idx;   /* verified group held in buf, or OBJV_NO_GROUP */
	size_t         group_len;
	signed char    kept;        /* may groups be kept/found in the cache: -1 not asked yet */
} objv;

#define OBJV_NO_GROUP UINT64_MAX

/* An empty reader (no object) that takes handles and buffers from cache
 * (NULL: none kept, plain malloc). objv_close on it is a no-op. */
void objv_init(objv *v, objcache *cache);
/* Take ownership of OPEN's fds (-1 for none); objv_open or objv_close
 * closes them. */
void objv_adopt(objv *v, int blob_fd, int ob_fd);
/* Check the adopted blob and outboard against len and id (objcache_adopt:
 * sizes, then the outboard against the id; no blob byte is read) and hold
 * the handle; kept in the cache when st (the stamp taken before OPEN) says
 * the answer is fresh; st NULL: private. On failure *why is a static reason
 * for the log or the answer. */
__attribute__((warn_unused_result))
objv_result objv_open(objv *v, const objcache_stamp *st, const uint8_t id[32], uint64_t len,
                      const char **why);
/* Read through a handle objcache_find gave (its reference passes to v). */
void objv_attach(objv *v, objh *h);
/* Is there an object to read (opened or attached)? */
bool objv_is_open(const objv *v);
/* Make the group holding byte off (0 for the empty object) the one held:
 * unless it already is, take it from the cache's verified groups (a kept
 * handle's group that passed its check before, objcache.h), or read it
 * whole with pread into a group buffer (a cache slot when there is one, so
 * the next request finds it) and check it against the outboard. OBJV_OK, OBJV_NOMEM, or OBJV_INTEGRITY
 * (short blob, I/O error, hash mismatch), with *why; after a failure no
 * group is held. */
__attribute__((warn_unused_result))
objv_result objv_load(objv *v, uint64_t off, const char **why);
/* The verified bytes of the held group from off (which it must hold) to the
 * group's end, at most max of them; *n their count. Borrowed until the next
 * objv_load or objv_close. */
const uint8_t *objv_bytes(const objv *v, uint64_t off, uint64_t max, size_t *n);
/* The same, but the group buffer itself passes to the caller, who hands it
 * to an evbuffer with evbuffer_add_reference(out, p, *n,
 * objcache_buf_release, objv_cache(v)) (or gives it back with
 * objcache_buf_put on the page-aligned start); no group is held after. */
const uint8_t *objv_take(objv *v, uint64_t off, uint64_t max, size_t *n);
objcache *objv_cache(const objv *v);
/* The checked outboard (*len bytes), or NULL before open. Borrowed until
 * objv_close. */
const uint8_t *objv_outboard(const objv *v, size_t *len);
/* Let go of the handle, fds and buffer; back to empty (same cache). NULL ok. */
void objv_close(objv *v);

/* The blob of id failed verification: integrity_fail_total{object="blob"},
 * rejected_total{reason="integrity"}, one error log line (what: the reason;
 * corr_id borrowed), and a QUARANTINE call so the next request gets 502 at
 * once. c is borrowed. */
struct audit_client;
/* audit (borrowed, NULL ok) gets an aggregated storage/integrity_fail record. */
void objstore_integrity_fail(stor_client *c, struct audit_client *audit, const uint8_t id[32],
                             const char *what, const char *corr_id);

/* ---- objput: the upload writer ------------------------------------------ */

typedef enum objput_result {
	OBJPUT_OK = 0,
	OBJPUT_TOO_LARGE,   /* the piece would pass the cap: nothing written */
	OBJPUT_IO,          /* pwrite failed (logged): storage cannot take it now */
} objput_result;

/* Embedded in the request state; the fields are private to objstore.c. */
typedef struct objput {
	stor_client *stor;          /* borrowed */
	int          fd;            /* upload file, -1 when closed */
	uint64_t     handle;
	bool         have_handle;   /* storage holds an upload we must end */
	uint64_t     cap;           /* decoded bytes allowed */
	uint64_t     written;       /* decoded bytes written */
	stor_cb      commit_cb;     /* the caller's PUT_COMMIT callback */
	void        *commit_arg;
} objput;

void objput_init(objput *w, stor_client *stor, uint64_t cap);
/* PUT_BEGIN(max_len = cap) on behalf of tenant and peer, the share keys
 * storage counts the upload against (stor_put_begin; borrowed for the
 * call, NULL: none). The call is never cancelled: its answer may carry an
 * upload that must be aborted, so cb must pass res to objput_begun. */
void objput_begin(objput *w, const char *tenant, const char *peer, stor_cb cb, void *arg);
/* PUT_BEGIN answered: a 200's fd and handle become w's (even if the caller
 * then drops the upload: objput_abort ends it). */
void objput_begun(objput *w, const stor_result *res);
bool objput_has_fd(const objput *w);
/* Append n bytes (borrowed) at the current length, OBJSTORE_PIECE at a time. */
__attribute__((warn_unused_result))
objput_result objput_write(objput *w, const uint8_t *data, size_t n);
/* Close the fd (storage reads the file through its own) and PUT_COMMIT
 * (len = bytes written, expect NULL or the id the body must hash to). The
 * handle is consumed whatever the answer; cb always comes. */
void objput_commit(objput *w, const uint8_t *expect, stor_cb cb, void *arg);
/* Close the fd and PUT_ABORT the upload if storage holds one. Idempotent. */
void objput_abort(objput *w);

/* ---- the storage client ------------------------------------------------- */

/* The stor_client on <runtime_dir>/storage.sock (<data_dir>/run/ when the
 * supervisor did not resolve runtime_dir). NULL (logged) when the path is
 * too long for a UNIX socket or on allocation failure. */
stor_client *objstore_client_new(struct event_base *base, const mn_config *cfg);

#endif
