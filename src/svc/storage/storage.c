/*
 * storage.c — the storage service: serves the store (store.h) to other
 * services of the node over the SOCK_SEQPACKET socket the supervisor bound
 * (fd 5, `<runtime_dir>/storage.sock`). Protocol: docs/internal.md — one
 * OAP/1 frame per datagram, the typed messages of core/objects/stor_msg.h
 * as payloads, blobs as fds.
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
 *
 * Only our own processes reach the socket (0600 in a 0700 directory, and
 * SO_PEERCRED), and they are this binary: a request that does not decode is
 * a bug, so it is fatal here (storage_fatal) and the supervisor restarts us.
 * Only a datagram over the frame cap is answered (413), from its header.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/audit/audit_client.h"
#include "core/metrics/metrics.h"
#include "core/metrics/reject.h"
#include "core/net/conn.h"
#include "core/proto/oap.h"
#include "core/objects/stor_msg.h"
#include "core/dht/dht_client.h"
#include "lib/b3.h"
#include "lib/b3tree.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/tbucket.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "svc/storage/store.h"
#include "svc/svc.h"

#define STORAGE_MAX_CONNS       256u  /* gateway workers + omnigate, with room */
#define STORAGE_READ_BATCH      16u   /* requests per connection per wake-up */
/* Commit workers: two hash in parallel on a two-core machine and leave the
 * loop a core; more only add fsyncs queueing on the same disk. */
#define STORAGE_COMMIT_THREADS  2u
/* Commits queued or running at once (each parks one connection and holds
 * one upload fd; ~128 KiB of scratch while running). Beyond → 503. */
#define STORAGE_COMMIT_MAX      64u
/* Metadata writes (META_SET, PIN, QUARANTINE: one small LMDB transaction
 * each) have a pool of their own, one thread, so they never queue behind
 * the commits' hashing nor take a commit's slot; one connection parks on
 * each, so the bound is the connection cap. */
#define STORAGE_META_THREADS    1u
#define STORAGE_META_MAX        STORAGE_MAX_CONNS
#define STORAGE_LOG_PER_S       10    /* share refusal log lines per second */
/* Announces handed to the dht service and not yet answered; a new object
 * beyond that is not announced now (counted dropped; republishing will). */
#define STORAGE_ANNOUNCE_MAX    64u

_Static_assert(STORE_KEY_MAX == STOR_KEY_MAX, "a share key fits the store as it fits the wire");

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
	workq        *mq;           /* metadata write workers (disk) */
	struct event *mq_ev;
	conn_listener *lst;         /* the shared accept rule (cap, fd back-off) */
	LIST_HEAD(, storage_conn) conns;
	size_t        nconns;
	uint64_t      next_owner;
	bool          draining;
	tbucket       log_rate;     /* share refusal log lines */
	dht_client   *dht;          /* announces new objects; NULL when dht is not enabled */
	audit_client *audit;        /* quarantine records; NULL without the audit service */
	size_t        announcing;   /* announces in flight */
	metrics_series *m_cache_bytes, *m_cache_objects, *m_cache_evictions;
	uint64_t      evictions_seen;   /* the store's evictions already counted */
	uint8_t       rbuf[OAP_INTERNAL_MAX_FRAME];
	uint8_t       wbuf[OAP_HDR_LEN + STOR_MSG_MAX];
};

/* A response under construction. */
typedef struct storage_reply {
	stor_rep rep;       /* rep.verb is set before the handler runs */
	int      fds[2];
	size_t   nfds;
	uint64_t corr;      /* the request's corr_id (a deferred answer needs it) */
	bool     deferred;  /* no reply now: a commit job will answer */
} storage_reply;

/* ---- replies -------------------------------------------------------------- */

/* The error reply; message is one of our own literals. Returns 0 so that
 * handlers can `return storage_fail(...)`. */
static int storage_fail(storage_reply *rp, int status, const char *message)
{
	stor_msg_rep_err(&rp->rep, rp->rep.verb, (uint16_t)status, message);
	if (status == 413)
		reject_count(REJECT_FAMILY_NODE, REJECT_413);
	else if (status == 503)
		reject_count(REJECT_FAMILY_NODE, REJECT_503);
	return 0;
}

static int storage_ok(storage_reply *rp)
{
	rp->rep.status = 200;
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

/*
 * Each handler gets a decoded request (stor_msg_req_decode checked every
 * field) and fills rp: a 200 reply with its verb's fields and fds, or an
 * error reply with the store's verdict.
 */
static int storage_do_stat(storage_conn *c, const stor_req *q, storage_reply *rp)
{
	store_status rc = store_stat(c->srv->st, q->u.stat.id, &rp->rep.u.stat.len);

	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, storage_status_msg(rc));
	return storage_ok(rp);
}

/* META_GET / META_SET: the object's recorded Content-Type (store_meta.c). */
static int storage_do_meta_get(storage_conn *c, const stor_req *q, storage_reply *rp)
{
	stor_rep_meta *m = &rp->rep.u.meta;
	store_status rc = store_meta_get(c->srv->st, q->u.meta_get.id, &m->len, m->ctype,
	                                 &m->by_read);

	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, storage_status_msg(rc));
	return storage_ok(rp);
}

/* ---- verbs that write the store's metadata -----------------------------------
 *
 * META_SET, PIN and QUARANTINE each commit an LMDB write transaction on
 * disk (an fsync). They run on the commit pool like a commit, their
 * connection parked, never on the loop; the RAM backend's records are
 * memory, written on the loop. Each verb is split: write (the store call,
 * on whichever thread the backend allows: store_writes_off_loop) and
 * finish (on the loop: what only the loop may do, and the answer). */

typedef struct storage_wverb {
	store_status (*write)(store *st, const stor_req *q, stor_rep *rep);
	int          (*finish)(storage *srv, const stor_req *q, store_status rc, storage_reply *rp);
} storage_wverb;

static int storage_write_start(storage_conn *c, const stor_req *q, storage_reply *rp,
                               const storage_wverb *v);

static store_status storage_meta_set_write(store *st, const stor_req *q, stor_rep *rep)
{
	_Static_assert(STORE_CTYPE_MAX == STOR_CTYPE_MAX, "the record is the message's field");
	return store_meta_set(st, q->u.meta_set.id, q->u.meta_set.ctype, q->u.meta_set.by_read,
	                      &rep->u.meta.len, rep->u.meta.ctype, &rep->u.meta.by_read);
}

static int storage_meta_set_finish(storage *srv, const stor_req *q, store_status rc,
                                   storage_reply *rp)
{
	(void)srv; (void)q;
	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, rc == STORE_BAD ? "not a media type" :
		                    storage_status_msg(rc));
	return storage_ok(rp);
}

static const storage_wverb storage_wverb_meta_set = { storage_meta_set_write,
                                                      storage_meta_set_finish };

static int storage_do_meta_set(storage_conn *c, const stor_req *q, storage_reply *rp)
{
	return storage_write_start(c, q, rp, &storage_wverb_meta_set);
}

/* The cache gauges and the eviction counter from the store's own counts
 * (a commit worker cannot count metrics: store_disk.c). */
static void storage_cache_publish(storage *srv)
{
	store_cache_info ci;

	store_cache_stats(srv->st, &ci);
	metrics_gauge_set(srv->m_cache_bytes, (int64_t)ci.bytes);
	metrics_gauge_set(srv->m_cache_objects, (int64_t)ci.objects);
	if (ci.evictions > srv->evictions_seen)
		metrics_inc(srv->m_cache_evictions, ci.evictions - srv->evictions_seen);
	srv->evictions_seen = ci.evictions;
}

/* PIN: a cache copy becomes owned (REPLICATE asked this node to keep it). */
static store_status storage_pin_write(store *st, const stor_req *q, stor_rep *rep)
{
	return store_pin(st, q->u.pin.id, &rep->u.pin.len);
}

static int storage_pin_finish(storage *srv, const stor_req *q, store_status rc, storage_reply *rp)
{
	(void)q;
	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, storage_status_msg(rc));
	storage_cache_publish(srv);
	return storage_ok(rp);
}

static const storage_wverb storage_wverb_pin = { storage_pin_write, storage_pin_finish };

static int storage_do_pin(storage_conn *c, const stor_req *q, storage_reply *rp)
{
	return storage_write_start(c, q, rp, &storage_wverb_pin);
}

static int storage_do_open(storage_conn *c, const stor_req *q, storage_reply *rp)
{
	stor_rep_open *m = &rp->rep.u.open;
	store_status rc = store_open(c->srv->st, q->u.open.id, &m->len, &rp->fds[0], &rp->fds[1]);

	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, storage_status_msg(rc));
	m->groups = b3tree_groups(m->len);
	rp->nfds = 2;
	return storage_ok(rp);
}

/* A PUT_BEGIN refused for a full table or a full share: the 503 names the
 * limit, and one log line (at most STORAGE_LOG_PER_S a second: a client
 * retrying against a full share must not flood the log) names whose. */
static int storage_busy(storage *srv, const stor_req_put_begin *m, storage_reply *rp)
{
	static const char *const msgs[] = {
		[STORE_SHARE_OK]     = "too many uploads open (storage.max_uploads)",
		[STORE_SHARE_TABLE]  = "too many uploads open (storage.max_uploads)",
		[STORE_SHARE_TENANT] = "too many uploads open for this tenant "
		                       "(storage.max_uploads_per_tenant)",
		[STORE_SHARE_PEER]   = "too many uploads open from this address "
		                       "(storage.max_uploads_per_peer)",
	};
	static const char *const names[] = {
		[STORE_SHARE_OK] = "table", [STORE_SHARE_TABLE] = "table",
		[STORE_SHARE_TENANT] = "tenant", [STORE_SHARE_PEER] = "peer",
	};
	store_who who = { .tenant = m->tenant, .peer = m->peer };
	store_share why = store_share_full(srv->st, &who);

	if (tbucket_take(&srv->log_rate, 1, util_now_ms()))
		log_kv(LOG_LEVEL_WARN, "upload refused: share full", "share", names[why],
		       "tenant", m->tenant, "peer", m->peer, LOG_END);
	return storage_fail(rp, 503, msgs[why]);
}

static int storage_do_put_begin(storage_conn *c, const stor_req *q, storage_reply *rp)
{
	const stor_req_put_begin *m = &q->u.put_begin;
	store_who who = { .tenant = m->tenant, .peer = m->peer };
	store_status rc = store_put_begin(c->srv->st, c->owner, m->max_len, &who,
	                                  &rp->rep.u.put_begin.handle, &rp->fds[0]);

	if (rc == STORE_TOO_LARGE)
		return storage_fail(rp, 413, "max_len exceeds storage.max_object");
	if (rc == STORE_BUSY)
		return storage_busy(c->srv, m, rp);
	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, storage_status_msg(rc));
	rp->nfds = 1;
	return storage_ok(rp);
}

static int storage_commit_start(storage_conn *c, storage_reply *rp,
                                const stor_req_put_commit *m);

static int storage_do_put_commit(storage_conn *c, const stor_req *q, storage_reply *rp)
{
	return storage_commit_start(c, rp, &q->u.put_commit);
}

/* The PUT_COMMIT answer, once its commit job is back on the loop. */
static int storage_commit_reply(storage_reply *rp, store_status rc,
                                const uint8_t id[B3_OUT_LEN], bool created)
{
	stor_rep_put_commit *out = &rp->rep.u.put_commit;
	char cid[B3_CID_LEN + 1];

	rp->rep.verb = STOR_PUT_COMMIT;
	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, storage_status_msg(rc));
	memcpy(out->id, id, B3_OUT_LEN);
	out->created = created;
	b3_cid_format(id, cid);
	if (created)
		log_kv(LOG_LEVEL_DEBUG, "object stored", "cid", cid, LOG_END);
	return storage_ok(rp);
}

static int storage_do_put_abort(storage_conn *c, const stor_req *q, storage_reply *rp)
{
	store_status rc = store_put_abort(c->srv->st, c->owner, q->u.put_abort.handle);

	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, "no such upload on this connection");
	return storage_ok(rp);
}

static store_status storage_quarantine_write(store *st, const stor_req *q, stor_rep *rep)
{
	(void)rep;
	return store_quarantine(st, q->u.quarantine.id);
}

static int storage_quarantine_finish(storage *srv, const stor_req *q, store_status rc,
                                     storage_reply *rp)
{
	char cid[B3_CID_LEN + 1];

	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, storage_status_msg(rc));
	b3_cid_format(q->u.quarantine.id, cid);
	log_kv(LOG_LEVEL_WARN, "object quarantined", "cid", cid, LOG_END);
	/* Aggregated: every serving process that catches the same object asks. */
	audit_count(srv->audit, "storage", "quarantined", "requested", cid);
	return storage_ok(rp);
}

static const storage_wverb storage_wverb_quarantine = { storage_quarantine_write,
                                                        storage_quarantine_finish };

static int storage_do_quarantine(storage_conn *c, const stor_req *q, storage_reply *rp)
{
	return storage_write_start(c, q, rp, &storage_wverb_quarantine);
}

static int storage_do_list(storage_conn *c, const stor_req *q, storage_reply *rp)
{
	stor_rep_list *m = &rp->rep.u.list;
	size_t n = 0;
	store_status rc = store_list(c->srv->st, q->u.list.has_after ? q->u.list.after : NULL,
	                             m->ids, q->u.list.max, &n, &m->more);

	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, storage_status_msg(rc));
	m->n = (uint16_t)n;
	return storage_ok(rp);
}

/* WATCH: the removal epoch's memfd (docs/internal.md), a new fd per reply. */
static int storage_do_watch(storage_conn *c, const stor_req *q, storage_reply *rp)
{
	(void)q;
	if ((rp->fds[0] = store_epoch_dup(c->srv->st)) < 0)
		return storage_fail(rp, 503, "no removal epoch");
	rp->nfds = 1;
	return storage_ok(rp);
}

static int storage_do_ping(storage_conn *c, const stor_req *q, storage_reply *rp)
{
	(void)c; (void)q;
	return storage_ok(rp);
}

/* A request that does not decode: one error line naming the verb, then exit
 * (docs/internal.md: fatal to the receiver; the supervisor restarts us). */
__attribute__((noreturn))
static void storage_fatal(uint16_t verb, const char *why)
{
	char code[8];

	snprintf(code, sizeof code, "%u", (unsigned)verb);
	log_fatalx("storage request does not decode; exiting", "verb", stor_msg_verb_name(verb),
	           "code", code, "reason", why, LOG_END);
}

static void storage_dispatch_client(storage_conn *c, const oap_frame *f, storage_reply *rp)
{
	static int (*const verbs[STOR_VERB_LAST + 1])(storage_conn *, const stor_req *,
	                                              storage_reply *) = {
		[STOR_PING] = storage_do_ping,           [STOR_STAT] = storage_do_stat,
		[STOR_OPEN] = storage_do_open,           [STOR_PUT_BEGIN] = storage_do_put_begin,
		[STOR_PUT_COMMIT] = storage_do_put_commit, [STOR_PUT_ABORT] = storage_do_put_abort,
		[STOR_QUARANTINE] = storage_do_quarantine, [STOR_LIST] = storage_do_list,
		[STOR_PIN] = storage_do_pin,             [STOR_WATCH] = storage_do_watch,
		[STOR_META_SET] = storage_do_meta_set,   [STOR_META_GET] = storage_do_meta_get,
	};
	stor_req q;

	if (f->flags != OAP_F_REQ || f->app_proto_id != STOR_APP_PROTO || f->cap_size != 0)
		storage_fatal(f->code, "not a storage request frame");
	if (stor_msg_req_decode(f->code, f->payload, f->payload_len, &q) != 0)
		storage_fatal(f->code, "unknown verb or malformed payload");
	rp->rep.verb = q.verb;   /* decoded: 1..STOR_VERB_LAST, every slot filled */
	(void)verbs[q.verb](c, &q, rp);
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
	uint8_t payload[STOR_MSG_MAX];
	ssize_t plen = stor_msg_rep_encode(&rp->rep, payload, sizeof payload);
	oap_frame f = { .flags = OAP_F_RESP, .code = rp->rep.status, .app_proto_id = STOR_APP_PROTO,
	                .corr_id = corr, .payload = payload,
	                .payload_len = plen > 0 ? (size_t)plen : 0 };
	ssize_t n = plen < 0 || rp->nfds != stor_msg_rep_nfds(&rp->rep)
	            ? -1 : oap_encode(&f, c->srv->wbuf, sizeof c->srv->wbuf);

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

/* One datagram of n bytes (or a truncated one when oversize). -1: close.
 * Only the size cap is answered; any other undecodable request is fatal. */
static int storage_handle(storage_conn *c, size_t n, bool oversize, size_t nfds, int *fds)
{
	storage_reply rp = { .fds = { -1, -1 } };
	oap_frame f;
	size_t used;

	for (size_t i = 0; i < nfds; i++)   /* no request carries fds */
		close(fds[i]);
	if (oversize) {                      /* rbuf is full: the header is there */
		storage_fail(&rp, 413, "frame exceeds the internal frame cap");
		return storage_send(c, oap_peek_corr_id(c->srv->rbuf), &rp);
	}
	if (oap_decode(c->srv->rbuf, n, OAP_INTERNAL_MAX_FRAME, &f, &used) != OAP_OK || used != n)
		storage_fatal(0, "malformed frame");
	if (nfds > 0)
		storage_fatal(f.code, "unexpected file descriptors");
	rp.corr = f.corr_id;
	storage_dispatch_client(c, &f, &rp);
	if (rp.deferred)
		return storage_conn_set(c, CONN_COMMITTING);
	return storage_send(c, f.corr_id, &rp);
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

/* ---- announcing new objects ------------------------------------------------- */

static void storage_count_announce(const char *result)
{
	char labels[48];

	snprintf(labels, sizeof labels, "result=\"%s\"", result);
	metrics_count("dht_announces_total", labels, 1);
}

static void on_announced(int status, const char *message, void *arg)
{
	storage *srv = arg;

	(void)message;
	srv->announcing--;
	/* The dht service counts what it did; only what never reached it is ours. */
	if (status == 503 && !dht_client_ready(srv->dht))
		storage_count_announce("dropped");
}

/* Fire and forget: a write never waits for, nor fails with, its announce. */
static void storage_announce(storage *srv, const uint8_t id[B3_OUT_LEN])
{
	if (!srv->dht)
		return;
	if (srv->announcing >= STORAGE_ANNOUNCE_MAX) {
		storage_count_announce("dropped");
		return;
	}
	srv->announcing++;
	(void)dht_announce(srv->dht, id, on_announced, srv);   /* on_announced always comes */
}

/* The dht client on <runtime_dir>/dht.sock when the dht service runs. */
static dht_client *storage_dht_client(svc *s)
{
	char path[CONFIG_PATH_MAX + 16];

	if (!(s->cfg.services & CONFIG_SVC_DHT))
		return NULL;
	if (config_socket_path(&s->cfg, DHT_SOCKET, path, sizeof path) != 0)
		return NULL;
	return dht_client_new(s->base, path);
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
	storage_cache_publish(c->srv);
	if (rc == STORE_OK && created)
		storage_announce(c->srv, id);
	(void)storage_commit_reply(&rp, rc, id, created);
	if (storage_conn_set(c, CONN_READING) != 0 || storage_send(c, corr, &rp) != 0)
		storage_conn_close(c);
}

/* PUT_COMMIT: take the upload and hand it to the pool (the reply is
 * deferred), or answer now: 404/413 from the take, 503 when the pool is
 * full (the upload is consumed either way, as always). */
static int storage_commit_start(storage_conn *c, storage_reply *rp,
                                const stor_req_put_commit *m)
{
	storage_job *job;
	store_commit *cm;
	store_status rc = store_commit_take(c->srv->st, c->owner, m->handle, m->len,
	                                    m->has_expect ? m->expect : NULL, m->cache, &cm);

	if (rc != STORE_OK)
		return storage_fail(rp, (int)rc, storage_status_msg(rc));
	if (!(job = calloc(1, sizeof *job))) {
		store_commit_free(cm);
		return storage_fail(rp, STORE_ERROR, storage_status_msg(STORE_ERROR));
	}
	*job = (storage_job){ .job = { .run = on_commit_run, .done = on_commit_done },
	                      .c = c, .st = c->srv->st, .cm = cm, .corr = rp->corr };
	if (workq_submit(c->srv->wq, &job->job) != 0) {
		store_commit_free(cm);
		free(job);
		return storage_fail(rp, STORE_BUSY, storage_status_msg(STORE_BUSY));
	}
	rp->deferred = true;
	return 0;
}

/* One metadata write in the pool (disk): the same parking as a commit.
 * The request and the reply under construction travel with it. */
typedef struct storage_wjob {
	workq_job            job;   /* first: the pool hands this back */
	storage_conn        *c;     /* loop thread only */
	store               *st;
	const storage_wverb *v;
	stor_req             q;
	storage_reply        rp;
	store_status         rc;    /* the worker's result */
} storage_wjob;

static void on_write_run(workq_job *j)
{
	storage_wjob *job = (storage_wjob *)j;

	job->rc = job->v->write(job->st, &job->q, &job->rp.rep);
}

static void on_write_done(workq_job *j, bool ran)
{
	storage_wjob *job = (storage_wjob *)j;
	storage_conn *c = job->c;

	if (ran) {   /* else dropped at shutdown: its connection closes next */
		(void)job->v->finish(c->srv, &job->q, job->rc, &job->rp);
		if (storage_conn_set(c, CONN_READING) != 0 || storage_send(c, job->rp.corr, &job->rp) != 0)
			storage_conn_close(c);
	}
	free(job);
}

/* The write on the pool (its answer deferred), or here when the backend
 * writes on the loop; 503 when the pool is full, as for a commit. */
static int storage_write_start(storage_conn *c, const stor_req *q, storage_reply *rp,
                               const storage_wverb *v)
{
	storage_wjob *job;

	if (!store_writes_off_loop(c->srv->st))
		return v->finish(c->srv, q, v->write(c->srv->st, q, &rp->rep), rp);
	if (!(job = calloc(1, sizeof *job)))
		return v->finish(c->srv, q, STORE_ERROR, rp);
	*job = (storage_wjob){ .job = { .run = on_write_run, .done = on_write_done },
	                       .c = c, .st = c->srv->st, .v = v, .q = *q, .rp = *rp };
	if (workq_submit(c->srv->mq, &job->job) != 0) {   /* one per parked connection: room */
		free(job);
		return v->finish(c->srv, q, STORE_BUSY, rp);
	}
	rp->deferred = true;
	return 0;
}

static void on_commits_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	(void)workq_reap(arg);
}

/* ---- accepting ------------------------------------------------------------ */

/* Accepted (the shared listener, core/net/conn.h, applied the cap and the
 * back-off when fds run out): only our own uid may talk to storage. */
static void storage_on_accept(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	storage *srv = arg;
	storage_conn *c;

	(void)sa; (void)salen;
	if (!svc_peer_ok(fd, "storage")) {
		close(fd);
		return;
	}
	if (!(c = calloc(1, sizeof *c))) {
		reject_count(REJECT_FAMILY_NODE, REJECT_503);
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

static void storage_on_refuse(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	(void)arg; (void)sa; (void)salen;
	reject_count(REJECT_FAMILY_NODE, REJECT_503);
	log_kv(LOG_LEVEL_WARN, "storage connection refused: too many connections", LOG_END);
	close(fd);
}

static size_t storage_live(void *arg)
{
	return ((storage *)arg)->nconns;
}

/* ---- service -------------------------------------------------------------- */

static void storage_limits_of(const mn_config *cfg, store_limits *lim)
{
	lim->max_object_bytes = cfg->storage_max_object_bytes;
	lim->max_uploads = cfg->storage_max_uploads;
	lim->max_per_tenant = cfg->storage_max_uploads_per_tenant;
	lim->max_per_peer = cfg->storage_max_uploads_per_peer;
	lim->cache_bytes = cfg->storage_cache_bytes;
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
		log_kv(LOG_LEVEL_ERROR, "storage cannot open its store", "error", err, LOG_END);
	return st;
}

static void storage_free(storage *srv)
{
	if (!srv)
		return;
	if (srv->wq_ev) event_free(srv->wq_ev);
	if (srv->mq_ev) event_free(srv->mq_ev);
	workq_free(srv->wq);   /* running commits finish and answer; queued ones are dropped */
	srv->wq = NULL;
	workq_free(srv->mq);   /* the same for metadata writes */
	srv->mq = NULL;
	for (storage_conn *c = LIST_FIRST(&srv->conns), *next; c; c = next) {
		next = LIST_NEXT(c, link);   /* closing c unlinks and frees c alone */
		storage_conn_close(c);
	}
	conn_listener_free(srv->lst);
	dht_client_free(srv->dht);
	audit_client_free(srv->audit);
	store_free(srv->st);
	free(srv);
}

/* The store found an object damaged on its own (store.h on_damage). */
static void storage_on_damage(void *arg, const char *cid, const char *object)
{
	storage *srv = arg;

	audit_count(srv->audit, "storage", "integrity_fail_quarantine", object, cid);
}

static int storage_start(svc *s)
{
	storage *srv = calloc(1, sizeof *srv);

	if (!srv)
		return -1;
	srv->s = s;
	srv->next_owner = 1;
	tbucket_init(&srv->log_rate, STORAGE_LOG_PER_S, STORAGE_LOG_PER_S, util_now_ms());
	LIST_INIT(&srv->conns);
	if (s->listen_fd < 0 || evutil_make_socket_nonblocking(s->listen_fd) != 0) {
		log_kv(LOG_LEVEL_ERROR, "storage has no listening socket", LOG_END);
		goto fail;
	}
	srv->st = storage_open_store(&s->cfg);
	/* Before the commit threads: Landlock binds only threads made after it. */
	if (!srv->st || svc_sandbox_enter(s) != 0)
		goto fail;
	srv->wq = workq_new(STORAGE_COMMIT_THREADS, STORAGE_COMMIT_MAX);
	srv->mq = workq_new(STORAGE_META_THREADS, STORAGE_META_MAX);
	if (!srv->wq || !srv->mq)
		goto fail;
	srv->wq_ev = event_new(s->base, workq_fd(srv->wq), EV_READ | EV_PERSIST, on_commits_done,
	                       srv->wq);
	srv->mq_ev = event_new(s->base, workq_fd(srv->mq), EV_READ | EV_PERSIST, on_commits_done,
	                       srv->mq);
	if (!srv->wq_ev || event_add(srv->wq_ev, NULL) != 0 || !srv->mq_ev ||
	    event_add(srv->mq_ev, NULL) != 0)
		goto fail;
	conn_listener_opts lo = { .on_accept = storage_on_accept, .on_refuse = storage_on_refuse,
	                          .live = storage_live, .max_conns = STORAGE_MAX_CONNS, .arg = srv,
	                          .log_msg = "storage accept failed" };
	if (!(srv->lst = conn_listener_new(s->base, s->listen_fd, &lo)))
		goto fail;
	srv->dht = storage_dht_client(s);
	srv->audit = audit_client_new(s->base, &s->cfg, "storage");
	srv->st->on_damage = storage_on_damage;
	srv->st->on_damage_arg = srv;
	srv->m_cache_bytes = metrics_get("storage_cache_bytes", "");
	srv->m_cache_objects = metrics_get("storage_cache_objects", "");
	srv->m_cache_evictions = metrics_get("storage_cache_evictions_total", "");
	storage_cache_publish(srv);
	s->priv = srv;
	log_kv(LOG_LEVEL_INFO, "storage serving", "backend", s->cfg.amnesia ? "ram" : "disk", LOG_END);
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
	audit_client_flush(srv->audit);
	conn_listener_enable(srv->lst, false);
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
