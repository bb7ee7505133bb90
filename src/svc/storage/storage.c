/*
 * storage.c — the storage service: serves the store (store.h) to other
 * services of the node over the SOCK_SEQPACKET socket the supervisor bound
 * (fd 5, `<runtime_dir>/storage.sock`). Protocol: docs/internal.md — one
 * OAP/1 frame per datagram, strict JSON payloads, blobs as fds.
 *
 * Every accepted connection must come from our own uid (SO_PEERCRED).
 * A connection's requests are handled one at a time, so its responses leave
 * in request order; a connection whose peer does not read its responses is
 * not read from until the pending response is sent (one response of
 * buffering per connection). Uploads belong to the connection that began
 * them and are dropped when it closes.
 *
 * PUT_COMMIT is the one slow verb (read back and hash the whole upload,
 * fsync, rename, LMDB): it runs on a pool of STORAGE_COMMIT_THREADS worker
 * threads (lib/workq.h), at most STORAGE_COMMIT_MAX commits at once (more →
 * 503, like the upload slots). Its connection is parked (CONN_COMMITTING:
 * not read, so its order holds) until the result comes back through the
 * pool's eventfd; every other connection is served meanwhile. The store is
 * touched off the loop only inside store_commit_run (store.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "core/metrics/metrics.h"
#include "core/proto/oap.h"
#include "core/objects/stor_client.h"
#include "lib/b3tree.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/workq.h"
#include "svc/storage/store.h"
#include "svc/svc.h"

#define STORAGE_MAX_CONNS       256u  /* gateway workers + omnigate, with room */
#define STORAGE_ACCEPT_BATCH    32u   /* accepts per wake-up */
#define STORAGE_READ_BATCH      16u   /* requests per connection per wake-up */
#define STORAGE_BODY_MAX        512u  /* response payload: short JSON only */
#define STORAGE_EMFILE_PAUSE_MS 100u  /* out of fds: stop accepting this long */
#define STORAGE_CORR_OFF        30u   /* corr_id's offset in the OAP header */
/* Commit workers: two hash in parallel on a two-core machine and leave the
 * loop a core; more only add fsyncs queueing on the same disk. */
#define STORAGE_COMMIT_THREADS  2u
/* Commits queued or running at once (each parks one connection and holds
 * one upload fd; ~128 KiB of scratch while running). Beyond → 503. */
#define STORAGE_COMMIT_MAX      64u

typedef enum { CONN_READING, CONN_WRITING, CONN_COMMITTING } conn_state;

typedef struct storage storage;

typedef struct storage_conn {
	storage      *srv;
	int           fd;
	uint64_t      owner;        /* the store's owner id for its uploads */
	conn_state    state;
	struct event *ev;
	uint8_t      *out;          /* CONN_WRITING: the response not yet sent */
	size_t        out_len;
	int           out_fds[2];
	size_t        out_nfds;
	LIST_ENTRY(storage_conn) link;
} storage_conn;

struct storage {
	svc          *s;
	store        *st;
	workq        *wq;           /* commit workers */
	struct event *wq_ev;        /* the pool's completion eventfd */
	struct event *accept_ev;
	struct event *pause_ev;
	LIST_HEAD(, storage_conn) conns;
	size_t        nconns;
	uint64_t      next_owner;
	bool          draining;
	uint8_t       rbuf[OAP_INTERNAL_MAX_FRAME];
	uint8_t       wbuf[OAP_HDR_LEN + STORAGE_BODY_MAX];
};

/* A response under construction. */
typedef struct storage_reply {
	int    status;
	char   body[STORAGE_BODY_MAX];
	int    fds[2];
	size_t nfds;
	bool   deferred;            /* no reply now: a commit job will answer */
} storage_reply;

/* ---- replies -------------------------------------------------------------- */

static const char *storage_err_code(int status)
{
	switch (status) {
	case 400: return "bad_request";
	case 404: return "not_found";
	case 413: return "payload_too_large";
	case 422: return "hash_mismatch";
	case 502: return "quarantined";
	case 503: return "unavailable";
	default:  return "internal";
	}
}

/* The error envelope; message is one of our own literals (no escaping).
 * Returns 0 so that handlers can `return storage_fail(...)`. */
static int storage_fail(storage_reply *rp, int status, const char *message, uint64_t corr)
{
	rp->status = status;
	snprintf(rp->body, sizeof rp->body,
	         "{\"code\":\"%s\",\"message\":\"%s\",\"retryable\":%s,\"corr_id\":\"%016" PRIx64 "\"}",
	         storage_err_code(status), message, status == 503 ? "true" : "false", corr);
	if (status == 413)
		metrics_count("rejected_total", "reason=\"413\"", 1);
	else if (status == 503)
		metrics_count("rejected_total", "reason=\"503\"", 1);
	return 0;
}

static int storage_ok(storage_reply *rp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int storage_ok(storage_reply *rp, const char *fmt, ...)
{
	va_list ap;

	rp->status = 200;
	va_start(ap, fmt);
	vsnprintf(rp->body, sizeof rp->body, fmt, ap);
	va_end(ap);
	return 0;
}

static const char *storage_status_msg(store_status rc)
{
	switch (rc) {
	case STORE_BAD:         return "file length differs from len";
	case STORE_NOT_FOUND:   return "not found";
	case STORE_TOO_LARGE:   return "object exceeds storage.max_object";
	case STORE_MISMATCH:    return "content does not hash to expect";
	case STORE_QUARANTINED: return "object quarantined";
	case STORE_BUSY:        return "storage busy: too many uploads or store full";
	default:                return "storage error";
	}
}

/* ---- verbs ---------------------------------------------------------------- */

typedef struct storage_req {
	storage_conn *c;
	uint64_t      corr;
	json_t       *body;
} storage_req;

static bool storage_unpack(const storage_req *rq, const char *fmt, ...)
{
	json_error_t e;
	va_list ap;

	va_start(ap, fmt);
	int r = json_vunpack_ex(rq->body, &e, 0, fmt, ap);
	va_end(ap);
	return r == 0;
}

static bool storage_get_cid(const storage_req *rq, uint8_t id[B3_OUT_LEN])
{
	const char *cid;
	size_t n;

	return storage_unpack(rq, "{s:s%!}", "cid", &cid, &n) && b3_cid_parse(cid, n, id) == 0;
}

static bool storage_get_u64(const storage_req *rq, const char *key, uint64_t *v)
{
	json_int_t i;

	if (!storage_unpack(rq, "{s:I!}", key, &i) || i < 0)
		return false;
	*v = (uint64_t)i;
	return true;
}

static int storage_do_stat(const storage_req *rq, storage_reply *rp)
{
	uint8_t id[B3_OUT_LEN];
	uint64_t len;
	store_status rc;

	if (!storage_get_cid(rq, id))
		return storage_fail(rp, 400, "payload must be {\"cid\":\"b3:<hex>\"}", rq->corr);
	rc = store_stat(rq->c->srv->st, id, &len);
	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, storage_status_msg(rc), rq->corr);
	return storage_ok(rp, "{\"len\":%" PRIu64 "}", len);
}

static int storage_do_open(const storage_req *rq, storage_reply *rp)
{
	uint8_t id[B3_OUT_LEN];
	uint64_t len;
	store_status rc;

	if (!storage_get_cid(rq, id))
		return storage_fail(rp, 400, "payload must be {\"cid\":\"b3:<hex>\"}", rq->corr);
	rc = store_open(rq->c->srv->st, id, &len, &rp->fds[0], &rp->fds[1]);
	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, storage_status_msg(rc), rq->corr);
	rp->nfds = 2;
	return storage_ok(rp, "{\"len\":%" PRIu64 ",\"groups\":%zu}", len, b3tree_groups(len));
}

static int storage_do_put_begin(const storage_req *rq, storage_reply *rp)
{
	uint64_t max_len, handle;
	store_status rc;

	if (!storage_get_u64(rq, "max_len", &max_len))
		return storage_fail(rp, 400, "payload must be {\"max_len\":N}", rq->corr);
	rc = store_put_begin(rq->c->srv->st, rq->c->owner, max_len, &handle, &rp->fds[0]);
	if (rc == STORE_TOO_LARGE)
		return storage_fail(rp, 413, "max_len exceeds storage.max_object", rq->corr);
	if (rc == STORE_BUSY)
		return storage_fail(rp, 503, "too many uploads open (storage.max_uploads)", rq->corr);
	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, storage_status_msg(rc), rq->corr);
	rp->nfds = 1;
	return storage_ok(rp, "{\"handle\":%" PRIu64 "}", handle);
}

static int storage_commit_start(const storage_req *rq, storage_reply *rp, uint64_t handle,
                                uint64_t len, const uint8_t *expect);

static int storage_do_put_commit(const storage_req *rq, storage_reply *rp)
{
	json_int_t handle, len;
	json_t *expect = NULL;
	uint8_t want[B3_OUT_LEN];

	if (!storage_unpack(rq, "{s:I,s:I,s?o!}", "handle", &handle, "len", &len, "expect", &expect) ||
	    handle < 0 || len < 0 ||
	    (expect && !json_is_null(expect) &&
	     (!json_is_string(expect) ||
	      b3_cid_parse(json_string_value(expect), json_string_length(expect), want) != 0)))
		return storage_fail(rp, 400,
		                    "payload must be {\"handle\":H,\"len\":N,\"expect\":\"b3:<hex>\"|null}",
		                    rq->corr);
	bool has_expect = expect && json_is_string(expect);
	return storage_commit_start(rq, rp, (uint64_t)handle, (uint64_t)len,
	                            has_expect ? want : NULL);
}

/* The PUT_COMMIT answer, once its commit job is back on the loop. */
static int storage_commit_reply(storage_reply *rp, uint64_t corr, store_status rc,
                                const uint8_t id[B3_OUT_LEN], bool created)
{
	char cid[B3_CID_LEN + 1];

	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, storage_status_msg(rc), corr);
	b3_cid_format(id, cid);
	if (created)
		log_kv(LOG_LEVEL_DEBUG, "object stored", "cid", cid, NULL);
	return storage_ok(rp, "{\"cid\":\"%s\",\"created\":%s}", cid, created ? "true" : "false");
}

static int storage_do_put_abort(const storage_req *rq, storage_reply *rp)
{
	uint64_t handle;

	if (!storage_get_u64(rq, "handle", &handle))
		return storage_fail(rp, 400, "payload must be {\"handle\":H}", rq->corr);
	store_status rc = store_put_abort(rq->c->srv->st, rq->c->owner, handle);
	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, "no such upload on this connection", rq->corr);
	return storage_ok(rp, "{}");
}

static int storage_do_quarantine(const storage_req *rq, storage_reply *rp)
{
	uint8_t id[B3_OUT_LEN];
	char cid[B3_CID_LEN + 1];

	if (!storage_get_cid(rq, id))
		return storage_fail(rp, 400, "payload must be {\"cid\":\"b3:<hex>\"}", rq->corr);
	store_status rc = store_quarantine(rq->c->srv->st, id);
	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, storage_status_msg(rc), rq->corr);
	b3_cid_format(id, cid);
	log_kv(LOG_LEVEL_WARN, "object quarantined", "cid", cid, NULL);
	return storage_ok(rp, "{}");
}

static int storage_do_ping(const storage_req *rq, storage_reply *rp)
{
	if (!storage_unpack(rq, "{!}"))
		return storage_fail(rp, 400, "payload must be {}", rq->corr);
	return storage_ok(rp, "{}");
}

static void storage_dispatch_client(storage_conn *c, const oap_frame *f, storage_reply *rp)
{
	static int (*const verbs[])(const storage_req *, storage_reply *) = {
		[STOR_PING] = storage_do_ping,           [STOR_STAT] = storage_do_stat,
		[STOR_OPEN] = storage_do_open,           [STOR_PUT_BEGIN] = storage_do_put_begin,
		[STOR_PUT_COMMIT] = storage_do_put_commit, [STOR_PUT_ABORT] = storage_do_put_abort,
		[STOR_QUARANTINE] = storage_do_quarantine,
	};
	storage_req rq = { .c = c, .corr = f->corr_id };
	json_error_t e;

	if (f->flags != OAP_F_REQ || f->app_proto_id != STOR_APP_PROTO || f->cap_size != 0) {
		storage_fail(rp, 400, "not a storage request frame", f->corr_id);
		return;
	}
	if (f->code >= sizeof verbs / sizeof verbs[0] || !verbs[f->code]) {
		storage_fail(rp, 400, "unknown verb", f->corr_id);
		return;
	}
	rq.body = json_loadb((const char *)f->payload, f->payload_len, JSON_REJECT_DUPLICATES, &e);
	if (!rq.body || !json_is_object(rq.body))
		storage_fail(rp, 400, "payload is not a JSON object", f->corr_id);
	else
		(void)verbs[f->code](&rq, rp);
	json_decref(rq.body);
}

/* ---- connections ---------------------------------------------------------- */

static void on_conn(evutil_socket_t fd, short what, void *arg);

static void storage_conn_close(storage_conn *c)
{
	storage *srv = c->srv;

	store_abort_owner(srv->st, c->owner);
	for (size_t i = 0; i < c->out_nfds; i++)
		close(c->out_fds[i]);
	free(c->out);
	if (c->ev)
		event_free(c->ev);
	close(c->fd);
	LIST_REMOVE(c, link);
	free(c);
	srv->nconns--;
	if (srv->draining && srv->nconns == 0)
		svc_drained(srv->s);
}

/* Wait for readable (CONN_READING) or writable (CONN_WRITING), or for
 * nothing (CONN_COMMITTING: its commit job will set the next state). */
static int storage_conn_set(storage_conn *c, conn_state st)
{
	c->state = st;
	if (c->ev)
		event_free(c->ev);
	c->ev = NULL;
	if (st == CONN_COMMITTING)
		return 0;
	c->ev = event_new(c->srv->s->base, c->fd, (st == CONN_READING ? EV_READ : EV_WRITE) | EV_PERSIST,
	                  on_conn, c);
	return c->ev && event_add(c->ev, NULL) == 0 ? 0 : -1;
}

static void storage_reply_drop(storage_reply *rp)
{
	for (size_t i = 0; i < rp->nfds; i++)
		close(rp->fds[i]);
	rp->nfds = 0;
}

/* Send the reply, or keep it for when the socket is writable. -1: close. */
static int storage_send(storage_conn *c, uint64_t corr, storage_reply *rp)
{
	oap_frame f = { .flags = OAP_F_RESP, .code = (uint16_t)rp->status, .app_proto_id = STOR_APP_PROTO,
	                .corr_id = corr, .payload = (const uint8_t *)rp->body,
	                .payload_len = strlen(rp->body) };
	ssize_t n = oap_encode(&f, c->srv->wbuf, sizeof c->srv->wbuf);

	if (n < 0) {
		storage_reply_drop(rp);
		return BUG("storage reply does not encode");
	}
	if (ipc_send(c->fd, c->srv->wbuf, (size_t)n, rp->fds, rp->nfds) == 0) {
		storage_reply_drop(rp);
		return 0;
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK) {
		storage_reply_drop(rp);
		return -1;
	}
	c->out = malloc((size_t)n);
	if (!c->out) {
		storage_reply_drop(rp);
		return -1;
	}
	memcpy(c->out, c->srv->wbuf, (size_t)n);
	c->out_len = (size_t)n;
	memcpy(c->out_fds, rp->fds, sizeof c->out_fds);
	c->out_nfds = rp->nfds;
	rp->nfds = 0;
	return storage_conn_set(c, CONN_WRITING);
}

/* One datagram of n bytes (or a truncated one when oversize). -1: close. */
static int storage_handle(storage_conn *c, size_t n, bool oversize, size_t nfds, int *fds)
{
	storage_reply rp = { .fds = { -1, -1 } };
	oap_frame f;
	size_t used;
	uint64_t corr = 0;

	for (size_t i = 0; i < nfds; i++)   /* no request carries fds */
		close(fds[i]);
	if (n < OAP_HDR_LEN)
		return -1;                       /* cannot even say which request failed */
	for (unsigned i = 0; i < 8; i++)
		corr = (corr << 8) | c->srv->rbuf[STORAGE_CORR_OFF + i];
	if (oversize)
		storage_fail(&rp, 413, "frame exceeds the internal frame cap", corr);
	else if (nfds > 0)
		storage_fail(&rp, 400, "unexpected file descriptors", corr);
	else if (oap_decode(c->srv->rbuf, n, OAP_INTERNAL_MAX_FRAME, &f, &used) != OAP_OK || used != n)
		storage_fail(&rp, 400, "malformed frame", corr);
	else
		storage_dispatch_client(c, &f, &rp);
	if (rp.deferred)
		return storage_conn_set(c, CONN_COMMITTING);
	return storage_send(c, corr, &rp);
}

static void storage_conn_read(storage_conn *c)
{
	for (unsigned i = 0; i < STORAGE_READ_BATCH && c->state == CONN_READING; i++) {
		int fds[IPC_MAX_FDS];
		size_t nfds = 0;
		ssize_t n = ipc_recv(c->fd, c->srv->rbuf, sizeof c->srv->rbuf, fds, &nfds);
		bool oversize = n < 0 && errno == EMSGSIZE;

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if ((n <= 0 && !oversize) ||
		    storage_handle(c, oversize ? sizeof c->srv->rbuf : (size_t)n, oversize, nfds, fds) != 0) {
			storage_conn_close(c);
			return;
		}
	}
}

static void storage_conn_flush(storage_conn *c)
{
	if (ipc_send(c->fd, c->out, c->out_len, c->out_fds, c->out_nfds) != 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			storage_conn_close(c);
		return;
	}
	for (size_t i = 0; i < c->out_nfds; i++)
		close(c->out_fds[i]);
	c->out_nfds = 0;
	free(c->out);
	c->out = NULL;
	if (storage_conn_set(c, CONN_READING) != 0)
		storage_conn_close(c);
}

static void on_conn(evutil_socket_t fd, short what, void *arg)
{
	storage_conn *c = arg;

	(void)fd; (void)what;
	if (c->state == CONN_WRITING)
		storage_conn_flush(c);
	else
		storage_conn_read(c);
}

/* ---- commits off the loop -------------------------------------------------- */

/* One PUT_COMMIT in the pool. While it is there its connection is parked
 * (CONN_COMMITTING) and cannot close, except in storage_free, which
 * finishes the pool first. */
typedef struct storage_job {
	workq_job     job;          /* first: the pool hands this back */
	storage_conn *c;            /* loop thread only */
	store        *st;
	store_commit *cm;           /* the worker's while it runs */
	uint64_t      corr;
} storage_job;

static void on_commit_run(workq_job *j)
{
	storage_job *job = (storage_job *)j;

	store_commit_run(job->st, job->cm);
}

/* Back on the loop: finish, answer, read the connection again. A job the
 * pool dropped at shutdown is not answered: its connection closes next. */
static void on_commit_done(workq_job *j, bool ran)
{
	storage_job *job = (storage_job *)j;
	storage_conn *c = job->c;
	storage_reply rp = { .fds = { -1, -1 } };
	uint64_t corr = job->corr;
	uint8_t id[B3_OUT_LEN];
	bool created = false;

	if (!ran) {
		store_commit_free(job->cm);
		free(job);
		return;
	}
	store_status rc = store_commit_finish(job->st, job->cm, id, &created);
	free(job);
	(void)storage_commit_reply(&rp, corr, rc, id, created);
	if (storage_conn_set(c, CONN_READING) != 0 || storage_send(c, corr, &rp) != 0)
		storage_conn_close(c);
}

/* PUT_COMMIT: take the upload and hand it to the pool (the reply is
 * deferred), or answer now: 404/413 from the take, 503 when the pool is
 * full (the upload is consumed either way, as always). */
static int storage_commit_start(const storage_req *rq, storage_reply *rp, uint64_t handle,
                                uint64_t len, const uint8_t *expect)
{
	storage_conn *c = rq->c;
	storage_job *job;
	store_commit *cm;
	store_status rc = store_commit_take(c->srv->st, c->owner, handle, len, expect, &cm);

	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, storage_status_msg(rc), rq->corr);
	if (!(job = calloc(1, sizeof *job))) {
		store_commit_free(cm);
		return storage_fail(rp, STORE_ERROR, storage_status_msg(STORE_ERROR), rq->corr);
	}
	*job = (storage_job){ .job = { .run = on_commit_run, .done = on_commit_done },
	                      .c = c, .st = c->srv->st, .cm = cm, .corr = rq->corr };
	if (workq_submit(c->srv->wq, &job->job) != 0) {
		store_commit_free(cm);
		free(job);
		return storage_fail(rp, STORE_BUSY, storage_status_msg(STORE_BUSY), rq->corr);
	}
	rp->deferred = true;
	return 0;
}

static void on_commits_done(evutil_socket_t fd, short what, void *arg)
{
	storage *srv = arg;

	(void)fd; (void)what;
	(void)workq_reap(srv->wq);
}

/* ---- accepting ------------------------------------------------------------ */

/* Only processes of our own uid may call the store. */
static bool storage_peer_ok(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof cr;
	char uid[16], pid[16];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.uid == geteuid())
		return true;
	metrics_count("rejected_total", "reason=\"peercred\"", 1);
	snprintf(uid, sizeof uid, "%ld", len == sizeof cr ? (long)cr.uid : -1L);
	snprintf(pid, sizeof pid, "%ld", len == sizeof cr ? (long)cr.pid : -1L);
	log_kv(LOG_LEVEL_WARN, "storage connection refused: peer uid", "uid", uid, "pid", pid, NULL);
	return false;
}

static void storage_adopt(storage *srv, int fd)
{
	storage_conn *c;

	if (!storage_peer_ok(fd)) {
		close(fd);
		return;
	}
	if (srv->nconns >= STORAGE_MAX_CONNS || !(c = calloc(1, sizeof *c))) {
		metrics_count("rejected_total", "reason=\"503\"", 1);
		log_kv(LOG_LEVEL_WARN, "storage connection refused: too many connections", NULL);
		close(fd);
		return;
	}
	c->srv = srv;
	c->fd = fd;
	c->owner = srv->next_owner++;
	LIST_INSERT_HEAD(&srv->conns, c, link);
	srv->nconns++;
	if (storage_conn_set(c, CONN_READING) != 0)
		storage_conn_close(c);
}

static void on_pause_end(evutil_socket_t fd, short what, void *arg)
{
	storage *srv = arg;

	(void)fd; (void)what;
	if (!srv->draining)
		event_add(srv->accept_ev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	storage *srv = arg;

	(void)what;
	for (unsigned i = 0; i < STORAGE_ACCEPT_BATCH; i++) {
		int fd = accept4((int)lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			storage_adopt(srv, fd);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
			struct timeval tv = { 0, STORAGE_EMFILE_PAUSE_MS * 1000 };
			log_kv(LOG_LEVEL_WARN, "storage cannot accept", "error", strerror(errno), NULL);
			event_del(srv->accept_ev);
			evtimer_add(srv->pause_ev, &tv);
		}
		return;
	}
}

/* ---- service -------------------------------------------------------------- */

static void storage_limits_of(const mn_config *cfg, store_limits *lim)
{
	lim->max_object_bytes = cfg->storage_max_object_bytes;
	lim->max_uploads = cfg->storage_max_uploads;
}

static store *storage_open_store(const mn_config *cfg)
{
	store_limits lim;
	char err[512];
	store *st;

	storage_limits_of(cfg, &lim);
	st = cfg->amnesia ? store_ram_new(&lim, err, sizeof err)
	                  : store_disk_new(cfg->data_dir, &lim, 0, err, sizeof err);
	if (!st)
		log_kv(LOG_LEVEL_ERROR, "storage cannot open its store", "error", err, NULL);
	return st;
}

static void storage_free(storage *srv)
{
	if (!srv)
		return;
	if (srv->wq_ev) event_free(srv->wq_ev);
	workq_free(srv->wq);   /* running commits finish and answer; queued ones are dropped */
	srv->wq = NULL;
	while (!LIST_EMPTY(&srv->conns))
		storage_conn_close(LIST_FIRST(&srv->conns));
	if (srv->accept_ev) event_free(srv->accept_ev);
	if (srv->pause_ev) event_free(srv->pause_ev);
	store_free(srv->st);
	free(srv);
}

static int storage_start(svc *s)
{
	storage *srv = calloc(1, sizeof *srv);

	if (!srv)
		return -1;
	srv->s = s;
	srv->next_owner = 1;
	LIST_INIT(&srv->conns);
	if (s->listen_fd < 0 || evutil_make_socket_nonblocking(s->listen_fd) != 0) {
		log_kv(LOG_LEVEL_ERROR, "storage has no listening socket", NULL);
		goto fail;
	}
	srv->st = storage_open_store(&s->cfg);
	srv->wq = workq_new(STORAGE_COMMIT_THREADS, STORAGE_COMMIT_MAX);
	if (!srv->st || !srv->wq)
		goto fail;
	srv->wq_ev = event_new(s->base, workq_fd(srv->wq), EV_READ | EV_PERSIST, on_commits_done, srv);
	if (!srv->wq_ev || event_add(srv->wq_ev, NULL) != 0)
		goto fail;
	srv->accept_ev = event_new(s->base, s->listen_fd, EV_READ | EV_PERSIST, on_accept, srv);
	srv->pause_ev = evtimer_new(s->base, on_pause_end, srv);
	if (!srv->st || !srv->accept_ev || !srv->pause_ev || event_add(srv->accept_ev, NULL) != 0)
		goto fail;
	s->priv = srv;
	log_kv(LOG_LEVEL_INFO, "storage serving", "backend", s->cfg.amnesia ? "ram" : "disk", NULL);
	return 0;
fail:
	storage_free(srv);
	return -1;
}

static void storage_reload(svc *s)
{
	storage *srv = s->priv;
	store_limits lim;

	storage_limits_of(&s->cfg, &lim);
	store_set_limits(srv->st, &lim);
}

/* Keep serving the connections we have (uploads in flight may still commit,
 * and a connection waiting on a commit job stays open until it is
 * answered); done when the last one closes or at the drain deadline. */
static void storage_drain(svc *s)
{
	storage *srv = s->priv;

	srv->draining = true;
	event_del(srv->accept_ev);
	event_del(srv->pause_ev);
	if (srv->nconns == 0)
		svc_drained(s);
}

static void storage_stop(svc *s)
{
	storage_free(s->priv);
	s->priv = NULL;
}

const svc_ops storage_ops = {
	.role = "storage",
	.start = storage_start,
	.reload = storage_reload,
	.drain = storage_drain,
	.stop = storage_stop,
};
