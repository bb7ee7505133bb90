/*
 * overlay.c — the overlay service: fetches objects this node does not hold
 * from the nodes that do, verified group by group, into local storage.
 *
 * Served on the SOCK_SEQPACKET socket the supervisor bound (fd 5,
 * `<runtime_dir>/overlay.sock`; core/net/rpc_server.h, verbs in
 * core/objects/ovl_client.h). A FETCH joins or starts a fetch in the
 * coordinator (ovl_fetch.h), whose ops are plugged in here:
 *   find  — the dht service's verified provider records (dht_client);
 *   fetch — one provider: an upload slot from storage (PUT_BEGIN), then
 *           peer_fetch over the pinned peer plane, every 64 KiB group checked
 *           against the cid before it is written to the upload file, then
 *           PUT_COMMIT with the cid as the expected id (storage hashes the
 *           whole object again before it is visible), as a cache copy;
 *   stored — announce the new copy in the DHT.
 * Every fetched copy is committed as a cache copy (evictable past
 * storage.cache_bytes), whichever request started the fetch: concurrent
 * requests for one object share one fetch. A FETCH in OVL_MODE_PIN (a
 * REPLICATE) then PINs the object, so it is owned before the answer says
 * it is stored; an object already stored here is pinned without a fetch.
 * A FETCH_RANGE runs the same coordinator for one span (ovl_request_range):
 * each attempt is peer_fetch with that span (group-aligned here, so whole
 * groups arrive), every verified group pwritten into a sparse memfd of the
 * object's length, the verified outboard into a second memfd; both sealed
 * and handed to each waiter (dups, SCM_RIGHTS). Nothing is stored or
 * announced. A provider that does not serve ranges makes the answer 501
 * (the gateway then asks FETCH).
 * Replication (ovl_repair.c): this node's node record and the repair loop.
 * The DHT logic stays in the dht service; nothing here parses a record.
 *
 * Metrics: overlay_fetches_total{status}, overlay_peer_failures_total{reason},
 * overlay_fetch_bytes_total, overlay_fetches_active,
 * overlay_range_fetches_total{status}, overlay_range_fetch_bytes_total.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/audit/audit_client.h"
#include "core/dht/dht_client.h"
#include "core/metrics/metrics.h"
#include "core/net/rpc_server.h"
#include "core/objects/objstore.h"
#include "core/objects/ovl_client.h"
#include "core/objects/peer_fetch.h"
#include "core/objects/stor_client.h"
#include "core/tls.h"
#include "lib/b3tree.h"
#include "lib/log.h"
#include "lib/util.h"
#include "svc/overlay/ovl_fetch.h"
#include "svc/overlay/ovl_repair.h"
#include "svc/svc.h"

#define OVL_MAX_CONNS    64u    /* gateway workers + omnigate + CLI, with room */
#define OVL_CONN_PENDING 256u   /* requests in work per connection */
/* A range result can neither shrink, grow nor change once handed over. */
#define OVL_RANGE_SEALS  (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

typedef struct overlay {
	svc           *s;
	rpc_server    *srv;
	stor_client   *stor;
	dht_client    *dht;
	tls_peer      *peer;
	ovl_table     *tbl;
	ovl_repair    *repair;     /* NULL when storage.replicas is 1 */
	audit_client  *audit;      /* NULL without the audit service */
	oap_client_opts peer_opts; /* tor's SOCKS port for onion peers (tor.enabled) */
	bool           draining, drained;
	metrics_series *m_active, *m_bytes, *m_range_bytes;
} overlay;

/* A range fetch's result (ovl_ops got): the two sealed memfds. */
typedef struct ovl_range_got {
	int      blob, ob;
	uint64_t len;
} ovl_range_got;

typedef enum { OP_FIND, OP_FETCH } op_kind;

/* One running op of the coordinator: a DHT lookup or one provider attempt. */
typedef struct ovl_op {
	op_kind       kind;
	overlay      *o;
	uint8_t       cid[32];
	ovl_provider  prov;
	bool          ranged;
	ovl_span      span;
	struct event *go;          /* a range attempt's start, from the loop */
	ovl_range_got *got;        /* a range attempt's result, until handed over */
	ovl_found_fn  found;
	ovl_tried_fn  tried;
	void         *arg;
	dht_call     *dcall;
	stor_call    *scall;
	peer_fetch   *pf;
	int           fd;          /* the upload file, or -1 */
	uint64_t      handle;      /* the upload's, once begun */
	bool          begun;
	uint64_t      len;
	ovl_try       result;
} ovl_op;

/* ---- find --------------------------------------------------------------- */

static void on_providers(int status, const char *message, const dht_found *p, size_t n, void *arg)
{
	ovl_op *op = arg;
	ovl_provider prov[OVL_MAX_PROVIDERS];
	size_t k = 0;

	(void)message;
	op->dcall = NULL;
	const mn_config *cfg = &op->o->s->cfg;
	for (size_t i = 0; status == 200 && i < n && k < OVL_MAX_PROVIDERS; i++) {
		const char *addr = prov_pick_addr(cfg->tor_enabled, cfg->tor_only, p[i].oap_addr,
		                                  p[i].onion);
		if (!addr) {
			/* tor.only and no onion (or an onion and no Tor here): never
			 * dialed in the clear, never dialed at all. */
			metrics_count("overlay_peer_failures_total", "reason=\"no_onion\"", 1);
			continue;
		}
		memcpy(prov[k].node_id, p[i].node_id, OVL_ID_LEN);
		snprintf(prov[k].addr, sizeof prov[k].addr, "%s", addr);
		k++;
	}
	ovl_found_fn found = op->found;
	void *farg = op->arg;
	free(op);
	found(farg, status == 200 && k == 0 ? 404 : status, prov, k);
}

static void *op_find(void *ctx, const uint8_t cid[OVL_ID_LEN], ovl_found_fn done, void *arg)
{
	overlay *o = ctx;
	ovl_op *op = calloc(1, sizeof *op);

	if (!op)
		return NULL;
	op->kind = OP_FIND;
	op->o = o;
	op->found = done;
	op->arg = arg;
	op->fd = -1;
	memcpy(op->cid, cid, 32);
	/* dht_find_providers answers 503 from the loop when it cannot even queue. */
	op->dcall = dht_find_providers(o->dht, cid, on_providers, op);
	return op;
}

/* ---- one provider --------------------------------------------------------- */

static void range_got_free(ovl_range_got *g)
{
	if (!g)
		return;
	if (g->blob >= 0)
		close(g->blob);
	if (g->ob >= 0)
		close(g->ob);
	free(g);
}

static void op_release(ovl_op *op)
{
	if (op->go)
		event_free(op->go);
	range_got_free(op->got);
	if (op->pf)
		peer_fetch_cancel(op->pf);
	if (op->scall)
		stor_call_cancel(op->scall);
	if (op->begun)   /* the slot goes back; nobody waits for the answer */
		(void)stor_put_abort(op->o->stor, op->handle, NULL, NULL);
	if (op->fd >= 0)
		close(op->fd);
	free(op);
}

/* Report the attempt and free it. */
static void op_finish(ovl_op *op, ovl_try result)
{
	ovl_tried_fn tried = op->tried;
	void *arg = op->arg;
	uint64_t len = op->len;
	ovl_range_got *got = result == OVL_TRY_OK ? op->got : NULL;

	if (got)
		op->got = NULL;   /* the coordinator's now */
	op_release(op);   /* callers cleared the handle that just answered */
	tried(arg, result, len, got);
}

static ovl_try try_of(peer_fetch_outcome oc)
{
	switch (oc) {
	case PEER_FETCH_OK:        return OVL_TRY_OK;
	case PEER_FETCH_NOT_FOUND: return OVL_TRY_NOT_FOUND;
	case PEER_FETCH_REFUSED:   return OVL_TRY_REFUSED;
	case PEER_FETCH_STALLED:   return OVL_TRY_STALLED;
	case PEER_FETCH_PIN:       return OVL_TRY_PIN;
	case PEER_FETCH_CONNECT:   return OVL_TRY_CONNECT;
	case PEER_FETCH_TOO_LARGE: return OVL_TRY_TOO_LARGE;
	case PEER_FETCH_LOCAL:     return OVL_TRY_STORE;
	case PEER_FETCH_NO_RANGE:  return OVL_TRY_NO_RANGE;
	default:                   return OVL_TRY_BAD_BYTES;
	}
}

static void on_committed(const stor_result *res, void *arg)
{
	ovl_op *op = arg;

	op->scall = NULL;
	op->begun = false;          /* committed or refused: the slot is gone either way */
	op_finish(op, res->status == 200 ? OVL_TRY_OK : OVL_TRY_STORE);
}

/* Verified bytes only: peer_fetch checked their group against the cid. */
static void on_verified(void *arg, uint64_t off, const uint8_t *p, size_t n)
{
	ovl_op *op = arg;

	while (n > 0) {
		ssize_t w = pwrite(op->fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_kv(LOG_LEVEL_ERROR, "overlay cannot write the upload file", "error",
			       strerror(errno), LOG_END);
			op_finish(op, OVL_TRY_STORE);   /* cancels the fetch */
			return;
		}
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
}

static int range_seal(ovl_op *op, const peer_fetch_info *info);

static void on_fetched(void *arg, peer_fetch_outcome oc, const peer_fetch_info *info)
{
	ovl_op *op = arg;

	op->pf = NULL;
	/* A range past the end is an answer too: the length and the outboard
	 * say so, and the gateway answers 416 from them. */
	if (op->ranged && (oc == PEER_FETCH_OK || (oc == PEER_FETCH_RANGE && info->outboard))) {
		if (range_seal(op, info) != 0) {
			op_finish(op, OVL_TRY_STORE);
			return;
		}
		metrics_inc(op->o->m_range_bytes, info->delivered);
		op_finish(op, OVL_TRY_OK);
		return;
	}
	if (oc != PEER_FETCH_OK) {
		log_kv(LOG_LEVEL_WARN, "overlay provider failed", "peer", op->prov.addr,
		       "outcome", peer_fetch_outcome_name(oc), "detail",
		       info && info->detail ? info->detail : "", LOG_END);
		op_finish(op, try_of(oc));
		return;
	}
	op->len = info->len;
	op->scall = stor_put_commit(op->o->stor, op->handle, info->len, op->cid, true, on_committed,
	                            op);
}


/* Start one provider's peer_fetch (whole or a span); one that cannot start
 * ends the attempt as a connect failure. */
static void op_fetch_start(ovl_op *op, const peer_fetch_req *req)
{
	char err[PEER_FETCH_DETAIL_MAX];

	op->pf = peer_fetch_start(op->o->s->base, op->o->peer, req, on_verified, on_fetched, op,
	                          err, sizeof err);
	if (!op->pf) {
		log_kv(LOG_LEVEL_WARN, "overlay cannot start a fetch", "peer", op->prov.addr,
		       "error", err, LOG_END);
		op_finish(op, OVL_TRY_CONNECT);
	}
}

static void on_slot(const stor_result *res, void *arg)
{
	ovl_op *op = arg;
	overlay *o = op->o;

	op->scall = NULL;
	if (res->status != 200) {
		op_finish(op, OVL_TRY_STORE);
		return;
	}
	op->fd = res->fds[0];
	op->handle = res->handle;
	op->begun = true;
	peer_fetch_req req = { .addr = op->prov.addr, .node_id = op->prov.node_id, .cid = op->cid,
	                       .max_len = o->s->cfg.storage_max_object_bytes,
	                       .timeouts = &o->peer_opts,
	                       .deadline_ms = o->s->cfg.overlay_fetch_timeout_ms };
	op_fetch_start(op, &req);
}

/* ---- one provider, a range: verified groups into a memfd ------------------ */

/* The object's length, the outboard beside it, both sealed: the result. */
static int range_seal(ovl_op *op, const peer_fetch_info *info)
{
	ovl_range_got *g = calloc(1, sizeof *g);

	if (!g)
		return -1;
	g->blob = op->fd;
	op->fd = -1;
	g->len = info->len;
	g->ob = memfd_create("mn-range-outboard", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	op->got = g;              /* op_release frees it on failure */
	if (info->outboard_len != b3tree_outboard_len(info->len) ||
	    ftruncate(g->blob, (off_t)info->len) != 0 ||
	    fcntl(g->blob, F_ADD_SEALS, OVL_RANGE_SEALS) != 0 || g->ob < 0 ||
	    util_write_all(g->ob, info->outboard, info->outboard_len) != 0 ||
	    fcntl(g->ob, F_ADD_SEALS, OVL_RANGE_SEALS) != 0) {
		log_kv(LOG_LEVEL_ERROR, "overlay cannot build a range result", "error",
		       strerror(errno), LOG_END);
		return -1;
	}
	op->len = info->len;
	return 0;
}

static void on_range_go(evutil_socket_t fd, short what, void *arg)
{
	ovl_op *op = arg;
	overlay *o = op->o;

	(void)fd; (void)what;
	op->fd = memfd_create("mn-range", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (op->fd < 0) {
		log_kv(LOG_LEVEL_ERROR, "overlay cannot make a range memfd", "error", strerror(errno),
		       LOG_END);
		op_finish(op, OVL_TRY_STORE);
		return;
	}
	peer_fetch_req req = { .addr = op->prov.addr, .node_id = op->prov.node_id, .cid = op->cid,
	                       .max_len = o->s->cfg.storage_max_object_bytes,
	                       .timeouts = &o->peer_opts, .has_range = true, .start = op->span.start, .end = op->span.end,
	                       .deadline_ms = o->s->cfg.overlay_fetch_timeout_ms };
	op_fetch_start(op, &req);
}

static void *op_fetch(void *ctx, const uint8_t cid[OVL_ID_LEN], const ovl_span *span,
                      const ovl_provider *p, ovl_tried_fn done, void *arg)
{
	overlay *o = ctx;
	ovl_op *op = calloc(1, sizeof *op);

	if (!op)
		return NULL;
	op->kind = OP_FETCH;
	op->o = o;
	op->prov = *p;
	op->tried = done;
	op->arg = arg;
	op->fd = -1;
	memcpy(op->cid, cid, 32);
	if (span) {   /* started from the loop: every outcome comes from there */
		struct timeval now = { 0, 0 };
		op->ranged = true;
		op->span = *span;
		if (!(op->go = evtimer_new(o->s->base, on_range_go, op)) ||
		    evtimer_add(op->go, &now) != 0) {
			op_release(op);
			return NULL;
		}
		return op;
	}
	op->scall = stor_put_begin(o->stor, o->s->cfg.storage_max_object_bytes, "", "",
	                           on_slot, op);
	return op;
}

static void op_cancel(void *ctx, void *handle)
{
	ovl_op *op = handle;

	(void)ctx;
	if (op->kind == OP_FIND) {
		dht_call_cancel(op->dcall);
		free(op);
		return;
	}
	op_release(op);
}

static void on_announced(int status, const char *message, void *arg)
{
	(void)status; (void)message; (void)arg;   /* counted by the dht service */
}

static void op_drop(void *ctx, void *got)
{
	(void)ctx;
	range_got_free(got);
}

static void op_stored(void *ctx, const uint8_t cid[OVL_ID_LEN], uint64_t bytes)
{
	overlay *o = ctx;

	metrics_inc(o->m_bytes, bytes);
	(void)dht_announce(o->dht, cid, on_announced, NULL);
}

static void op_failed(void *ctx, const ovl_provider *p, ovl_try why)
{
	overlay *o = ctx;
	char labels[64];

	audit_count(o->audit, "overlay", "peer_failure", ovl_try_name(why), p ? p->addr : "");
	snprintf(labels, sizeof labels, "reason=\"%s\"", ovl_try_name(why));
	metrics_count("overlay_peer_failures_total", labels, 1);
}

static const ovl_ops overlay_ops_table = {
	.find = op_find, .fetch = op_fetch, .cancel = op_cancel, .drop = op_drop,
	.stored = op_stored, .failed = op_failed,
};

/* ---- requests --------------------------------------------------------------- */

typedef struct ovl_pending {
	overlay *o;
	rpc_req *q;
	uint8_t  cid[32];
	bool     pin;       /* OVL_MODE_PIN: the copy must be owned */
	bool     fetched;   /* the fetch ran: a failed PIN is not retried by one */
} ovl_pending;

/* Gauge, and the end of a drain once no fetch is left. */
static void overlay_settle(overlay *o)
{
	size_t active = ovl_table_active(o->tbl);

	metrics_gauge_set(o->m_active, (int64_t)active);
	if (o->draining && active == 0 && !o->drained) {
		o->drained = true;
		svc_drained(o->s);
	}
}

static void overlay_answer(rpc_req *q, int status, uint64_t len)
{
	uint8_t buf[OVL_MSG_MAX];
	char labels[32];
	const char *why = status == 404 ? "no provider of the object is known" :
	                  status == 502 ? "every provider failed; none sent verified bytes" :
	                  status == 504 ? "the fetch passed overlay.fetch_timeout" :
	                  status == 503 ? "overlay unavailable or over its bounds" : "";
	ssize_t n = ovl_msg_rep_encode(OVL_FETCH, (uint16_t)status, len, why, buf, sizeof buf);

	snprintf(labels, sizeof labels, "status=\"%d\"", status);
	metrics_count("overlay_fetches_total", labels, 1);
	rpc_server_reply(q, (uint16_t)status, buf, n > 0 ? (size_t)n : 0, NULL, 0);
}

static void on_local(const stor_result *res, void *arg);

static void overlay_done(ovl_pending *pd, int status, uint64_t len)
{
	overlay *o = pd->o;

	overlay_answer(pd->q, status, len);
	free(pd);
	overlay_settle(o);
}

static void on_fetch_done(void *arg, int status, uint64_t len, const void *got)
{
	ovl_pending *pd = arg;

	(void)got;
	if (status == 200 && pd->pin) {   /* stored as a cache copy: make it owned */
		pd->fetched = true;
		(void)stor_pin(pd->o->stor, pd->cid, on_local, pd);   /* on_local always comes */
		return;
	}
	overlay_done(pd, status, len);
}

/* A FETCH_RANGE's answer: on 200 this waiter's own dups of the memfds
 * (the server closes them once sent). */
static void overlay_answer_range(rpc_req *q, int status, const ovl_range_got *g)
{
	uint8_t buf[OVL_MSG_MAX];
	char labels[32];
	int fds[2] = { -1, -1 };

	if (status == 200 && ((fds[0] = fcntl(g->blob, F_DUPFD_CLOEXEC, 0)) < 0 ||
	                      (fds[1] = fcntl(g->ob, F_DUPFD_CLOEXEC, 0)) < 0)) {
		if (fds[0] >= 0)
			close(fds[0]);
		status = 503;
	}
	const char *why = status == 404 ? "no provider of the object is known" :
	                  status == 501 ? "no provider serves ranges; fetch the whole object" :
	                  status == 502 ? "every provider failed; none sent verified bytes" :
	                  status == 504 ? "the fetch passed overlay.fetch_timeout" :
	                  status == 503 ? "overlay unavailable or over its bounds" : "";
	ssize_t n = ovl_msg_rep_encode(OVL_FETCH_RANGE, (uint16_t)status, status == 200 ? g->len : 0,
	                               why, buf, sizeof buf);

	snprintf(labels, sizeof labels, "status=\"%d\"", status);
	metrics_count("overlay_range_fetches_total", labels, 1);
	rpc_server_reply(q, (uint16_t)status, buf, n > 0 ? (size_t)n : 0,
	                 status == 200 ? fds : NULL, status == 200 ? 2 : 0);
}

static void on_range_done(void *arg, int status, uint64_t len, const void *got)
{
	ovl_pending *pd = arg;
	overlay *o = pd->o;

	(void)len;
	overlay_answer_range(pd->q, status, got);
	free(pd);
	overlay_settle(o);
}

/* The span widened to whole groups: each group can be verified by itself,
 * and requests for bytes of the same groups share one fetch. */
static ovl_span overlay_group_span(uint64_t start, uint64_t end)
{
	uint64_t g_end = end / B3TREE_GROUP_LEN;
	ovl_span sp = { .start = start / B3TREE_GROUP_LEN * B3TREE_GROUP_LEN };

	sp.end = g_end >= UINT64_MAX / B3TREE_GROUP_LEN ? UINT64_MAX
	                                                 : (g_end + 1) * B3TREE_GROUP_LEN - 1;
	return sp;
}

/* Not asked of storage first: the gateway just missed there, and a range
 * result is never stored, so the worst a race costs is one range fetch. */
static void overlay_handle_range(overlay *o, rpc_req *q, const uint8_t *p, size_t n)
{
	ovl_pending *pd;
	uint64_t start, end;
	uint8_t cid[32];

	if (ovl_msg_range_decode(p, n, cid, &start, &end) != 0) {   /* the check passed it */
		(void)BUG("FETCH_RANGE passed the check but does not decode");
		overlay_answer_range(q, 503, NULL);
		return;
	}
	if (o->draining || !(pd = malloc(sizeof *pd))) {
		overlay_answer_range(q, 503, NULL);
		return;
	}
	pd->o = o;
	pd->q = q;
	memcpy(pd->cid, cid, sizeof pd->cid);
	ovl_span sp = overlay_group_span(start, end);
	(void)ovl_request_range(o->tbl, cid, &sp, on_range_done, pd);   /* NULL: 503 from the loop */
	metrics_gauge_set(o->m_active, (int64_t)ovl_table_active(o->tbl));
}

/* Stored meanwhile? A miss seen before another fetch of the same object
 * committed reaches us after that fetch ended: answer from storage rather
 * than fetch it twice. A PIN asks the same and makes the copy owned. After
 * the fetch, a PIN that fails (the copy evicted already) is a 503: retry. */
static void on_local(const stor_result *res, void *arg)
{
	ovl_pending *pd = arg;
	overlay *o = pd->o;

	if (res->status == 200 || pd->fetched) {
		overlay_done(pd, res->status == 200 ? 200 : 503, res->len);
		return;
	}
	(void)ovl_request(o->tbl, pd->cid, on_fetch_done, pd);   /* NULL: 503 from the loop */
	metrics_gauge_set(o->m_active, (int64_t)ovl_table_active(o->tbl));
}

static void overlay_handle(rpc_req *q, uint16_t verb, const uint8_t *p, size_t n, void *arg)
{
	overlay *o = arg;
	ovl_pending *pd;

	if (verb == OVL_PING) {
		rpc_server_reply(q, 200, NULL, 0, NULL, 0);
		return;
	}
	if (verb == OVL_FETCH_RANGE) {
		overlay_handle_range(o, q, p, n);
		return;
	}
	if (o->draining || !(pd = calloc(1, sizeof *pd))) {
		overlay_answer(q, 503, 0);
		return;
	}
	pd->o = o;
	pd->q = q;
	memcpy(pd->cid, p, sizeof pd->cid);
	pd->pin = p[32] == OVL_MODE_PIN;   /* the mode byte passed ovl_msg_req_check */
	if (pd->pin)
		(void)stor_pin(o->stor, pd->cid, on_local, pd);   /* on_local always comes */
	else
		(void)stor_stat(o->stor, pd->cid, on_local, pd);
}

/* ---- service ---------------------------------------------------------------- */

static void overlay_free(overlay *o)
{
	if (!o)
		return;
	ovl_repair_free(o->repair);
	ovl_table_free(o->tbl);
	rpc_server_free(o->srv);
	audit_client_free(o->audit);
	dht_client_free(o->dht);
	stor_client_free(o->stor);
	tls_peer_free(o->peer);
	free(o);
}

static int overlay_start(svc *s)
{
	overlay *o = calloc(1, sizeof *o);
	char err[256], path[CONFIG_PATH_MAX + 16];

	if (!o)
		return -1;
	o->s = s;
	s->priv = o;
	o->peer_opts.socks = s->cfg.tor_enabled ? s->cfg.tor_socks : NULL;
	if (!s->identity.sk || !(o->peer = tls_peer_new(&s->identity, err, sizeof err))) {
		log_kv(LOG_LEVEL_ERROR, "overlay cannot build its peer TLS context", "error",
		       s->identity.sk ? err : "no node identity", LOG_END);
		goto fail;
	}
	if (config_socket_path(&s->cfg, DHT_SOCKET, path, sizeof path) != 0 ||
	    !(o->dht = dht_client_new(s->base, path)) ||
	    !(o->stor = objstore_client_new(s->base, &s->cfg)) ||
	    !(o->tbl = ovl_table_new(s->base, &overlay_ops_table, o, s->identity.id,
	                             s->cfg.overlay_fetch_timeout_ms)))
		goto fail;
	rpc_server_opts so = { .name = "overlay", .app_proto = OVL_APP_PROTO,
	                       .max_conns = OVL_MAX_CONNS, .max_pending = OVL_CONN_PENDING,
	                       .check = ovl_msg_req_check, .verb_name = ovl_msg_verb_name,
	                       .handle = overlay_handle, .arg = o };
	if (s->listen_fd < 0 || evutil_make_socket_nonblocking(s->listen_fd) != 0 ||
	    !(o->srv = rpc_server_new(s->base, s->listen_fd, &so))) {
		log_kv(LOG_LEVEL_ERROR, "overlay has no listening socket", LOG_END);
		goto fail;
	}
	if (s->cfg.storage_replicas > 1 &&
	    !(o->repair = ovl_repair_new(s->base, &s->cfg, &s->identity, s->onion, o->stor, o->dht,
	                                 o->peer)))
		goto fail;
	o->audit = audit_client_new(s->base, &s->cfg, "overlay");
	o->m_active = metrics_get("overlay_fetches_active", "");
	o->m_bytes = metrics_get("overlay_fetch_bytes_total", "");
	o->m_range_bytes = metrics_get("overlay_range_fetch_bytes_total", "");
	log_kv(LOG_LEVEL_INFO, "overlay ready", "node_id", s->identity.id_text, LOG_END);
	return 0;
fail:
	overlay_free(o);
	s->priv = NULL;
	return -1;
}

static void overlay_drain(svc *s)
{
	overlay *o = s->priv;

	o->draining = true;
	audit_client_flush(o->audit);
	ovl_repair_free(o->repair);   /* no new copies asked for while draining */
	o->repair = NULL;
	rpc_server_drain(o->srv);
	overlay_settle(o);
}

static void overlay_stop(svc *s)
{
	overlay_free(s->priv);
	s->priv = NULL;
}

/* A new onion address: our node record names it at once. */
static void overlay_onion(svc *s)
{
	overlay *o = s->priv;

	if (o)
		ovl_repair_onion(o->repair);
}

const svc_ops overlay_ops = {
	.role = "overlay",
	.start = overlay_start,
	.drain = overlay_drain,
	.stop = overlay_stop,
	.onion = overlay_onion,
};
