/*
 * mailbox.c — the mailbox service: per-recipient message queues with
 * idempotent sends, visibility leases, ack/nack with backoff and a
 * dead-letter queue (docs/mailbox.md), served to the node's other
 * processes on the SOCK_SEQPACKET socket the supervisor bound (fd 5,
 * `<runtime_dir>/mailbox.sock`) through core/net/rpc_server.h; verbs in
 * core/mailbox/mb_msg.h.
 *
 * State lives in mb_table (memory). Every change is also an mb_batch the
 * writer thread commits to LMDB (mb_db.c: one fsynced transaction) before
 * the request is answered, so a 200 to SEND or ACK is on disk. Batches
 * commit in the order they were made: one commit at a time, and the jobs
 * that arrive during it go together as the next one (group commit). Amnesia:
 * no database, no writer; answers at once.
 *
 * A SEND whose commit fails is undone and answered 507; any other failed
 * commit leaves memory ahead of the disk, so the service exits (fatal) and
 * the supervisor restarts it from what the disk holds: nothing answered
 * is lost, and what was not answered was not promised.
 *
 * Two timers: the tick (idempotency keys past the window) and the lease
 * sweep (leases and backoffs that ended, across recipients: counted,
 * visible again or dead-lettered without waiting for a receive).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/metrics/metrics.h"
#include "core/net/rpc_server.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "svc/mailbox/mailbox.h"
#include "svc/mailbox/mb_db.h"
#include "svc/svc.h"

/* ---- answers ------------------------------------------------------------------ */

static void mb_reply_rep(mailbox *m, rpc_req *q, const mb_rep *rep, int fd)
{
	ssize_t n = mb_msg_rep_encode(rep, m->buf, sizeof m->buf);

	if (n < 0) {
		mb_rep err;
		(void)BUG("mailbox reply does not encode");
		mb_msg_rep_err(&err, rep->verb, 500, "internal", "mailbox reply does not encode");
		n = mb_msg_rep_encode(&err, m->buf, sizeof m->buf);
		if (fd >= 0)
			close(fd);
		fd = -1;
		rpc_server_reply(q, 500, m->buf, n > 0 ? (size_t)n : 0, NULL, 0);
		return;
	}
	rpc_server_reply(q, rep->status, m->buf, (size_t)n, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
}

void mailbox_reply_err(mailbox *m, rpc_req *q, uint16_t verb, uint16_t status,
                       const char *code, const char *message)
{
	mb_rep rep;

	mb_msg_rep_err(&rep, verb, status, code, message);
	mb_reply_rep(m, q, &rep, -1);
}

/* ---- the writer thread: group commit ---------------------------------------------- *
 *
 * One commit runs at a time. Jobs that arrive meanwhile wait in m->queued;
 * when the commit ends they all go as the next group: one transaction, one
 * fsync, answered in order. Under load this turns N fsyncs into one; alone,
 * a job commits at once.
 */

void mailbox_job_free(mb_job *j)
{
	if (j->fd >= 0)
		close(j->fd);
	mb_batch_clear(&j->b);
	free(j->rep);
	free(j);
}

/* The batch is on disk (rc 0) or not: settle and answer. */
static void mb_job_finish(mb_job *j)
{
	mailbox *m = j->m;

	if (j->verb == MB_SEND)
		mb_table_send_done(m->t, j->send_id, j->rc == 0);
	if (j->rc != 0 && j->verb != MB_SEND)
		log_fatalx("mailbox database commit failed; restarting from the disk", LOG_END);
	if (j->q) {
		if (j->rc != 0) {
			mailbox_count_refusal("storage");
			mailbox_reply_err(m, j->q, j->verb, 507, "insufficient_storage",
			                  "mailbox database write failed; nothing was stored");
		} else {
			mb_reply_rep(m, j->q, j->rep, j->fd);
			j->fd = -1;
		}
	}
	mailbox_gauges(m);
	mailbox_job_free(j);
}

/* A job that will never be committed (shutting down): nothing of it was
 * promised. A SEND is undone; the rest of memory dies with the process. */
static void mb_job_drop(mb_job *j)
{
	if (j->verb == MB_SEND)
		mb_table_send_done(j->m->t, j->send_id, false);
	if (j->q)
		mailbox_reply_err(j->m, j->q, j->verb, 503, "unavailable", "mailbox shutting down");
	mailbox_job_free(j);
}

static void on_group_run(workq_job *job)
{
	mb_group *g = (mb_group *)job;

	g->rc = mb_db_commit_many(g->m->db, g->batches, g->n);
}

static void mb_group_flush(mailbox *m);

static void on_group_done(workq_job *job, bool ran)
{
	mb_group *g = (mb_group *)job;
	mailbox *m = g->m;
	size_t n = g->n;

	m->committing = false;
	for (size_t i = 0; i < n; i++) {
		mb_job *j = g->jobs[i];
		j->rc = g->rc;
		if (ran)
			mb_job_finish(j);
		else
			mb_job_drop(j);
	}
	m->writes -= n;
	g->n = 0;
	mb_group_flush(m);
}

static void mb_group_flush(mailbox *m)
{
	mb_group *g = &m->group;
	mb_job *j;

	if (m->committing || m->closing || STAILQ_EMPTY(&m->queued))
		return;
	while ((j = STAILQ_FIRST(&m->queued)) != NULL) {
		STAILQ_REMOVE_HEAD(&m->queued, qlink);
		g->jobs[g->n] = j;
		g->batches[g->n++] = &j->b;
	}
	g->m = m;
	g->rc = -1;
	g->job = (workq_job){ .run = on_group_run, .done = on_group_done };
	if (workq_submit(m->wq, &g->job) != 0) {   /* one job at most is ever in the pool */
		(void)BUG("mailbox writer refused a commit");
		on_group_done(&g->job, true);
		return;
	}
	m->committing = true;
}

static void on_writes_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	(void)workq_reap(((mailbox *)arg)->wq);
}

bool mailbox_can_write(const mailbox *m)
{
	return !m->wq || m->writes < MAILBOX_WRITES_MAX;
}

void mailbox_commit(mailbox *m, mb_job *j)
{
	if (j->b.nomem) {
		j->rc = -1;
		if (j->verb != MB_SEND)
			log_fatalx("mailbox out of memory recording a change; restarting", LOG_END);
		mb_job_finish(j);
		return;
	}
	if (!m->wq || j->b.n == 0) {
		j->rc = 0;
		mb_job_finish(j);
		return;
	}
	STAILQ_INSERT_TAIL(&m->queued, j, qlink);
	m->writes++;
	mb_group_flush(m);
}

/* Shutting down: the commit running finishes (and is answered); what
 * waits is dropped. */
static void mb_writer_free(mailbox *m)
{
	mb_job *j;

	m->closing = true;
	if (m->wq_ev)
		event_free(m->wq_ev);
	m->wq_ev = NULL;
	workq_free(m->wq);
	m->wq = NULL;
	while ((j = STAILQ_FIRST(&m->queued)) != NULL) {
		STAILQ_REMOVE_HEAD(&m->queued, qlink);
		m->writes--;
		mb_job_drop(j);
	}
}

mb_job *mailbox_job_new(mailbox *m, rpc_req *q, uint16_t verb)
{
	mb_job *j = calloc(1, sizeof *j);

	if (!j || !(j->rep = calloc(1, sizeof *j->rep))) {
		free(j);
		return NULL;
	}
	j->m = m;
	j->q = q;
	j->verb = verb;
	j->fd = -1;
	j->rep->verb = verb;
	j->rep->status = 200;
	mb_batch_init(&j->b);
	return j;
}

/* ---- upkeep --------------------------------------------------------------------------- */

void mailbox_gauges(mailbox *m)
{
	uint64_t timeouts, moves;

	mb_table_take_events(m->t, &timeouts, &moves);
	metrics_inc(m->m_timeouts, timeouts);
	metrics_inc(m->m_dlq_total, moves);
	metrics_gauge_set(m->m_depth, (int64_t)mb_table_depth(m->t));
	metrics_gauge_set(m->m_dlq_depth, (int64_t)mb_table_dlq_depth(m->t));
	metrics_gauge_set(m->m_idem, (int64_t)mb_table_idem_keys(m->t));
}

/* Once a second: idempotency keys past the window go (a bounded number). */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	mailbox *m = arg;
	mb_job *j;

	(void)fd; (void)what;
	if (m->draining || !mailbox_can_write(m) || !(j = mailbox_job_new(m, NULL, MB_PING)))
		return;
	(void)mb_table_expire_idem(m->t, util_wall_ms(), MAILBOX_EXPIRE_BATCH, &j->b);
	mailbox_commit(m, j);
}

/* Every MAILBOX_SWEEP_MS: the leases that ran out (and backoffs that are
 * over) since, across recipients, without waiting for a receive — so
 * mailbox_visibility_timeout_total, mailbox_dlq_total and the depths move
 * when it happens. A move to the DLQ is a change like any other: committed
 * by the writer thread (a failed commit exits, as for any change). Writer
 * full or draining: next turn. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	mailbox *m = arg;
	uint64_t now = util_wall_ms();
	mb_job *j;

	(void)fd; (void)what;
	if (mb_table_next_wake(m->t) > now || m->draining || !mailbox_can_write(m) ||
	    !(j = mailbox_job_new(m, NULL, MB_PING)))
		return;
	(void)mb_table_sweep(m->t, now, MAILBOX_SWEEP_MAX, &j->b);
	mailbox_commit(m, j);   /* nothing to write: the gauges at once */
}

static int mailbox_timers(mailbox *m)
{
	struct timeval tick = { MAILBOX_TICK_MS / 1000, (MAILBOX_TICK_MS % 1000) * 1000 };
	struct timeval sweep = { MAILBOX_SWEEP_MS / 1000, (MAILBOX_SWEEP_MS % 1000) * 1000 };

	m->tick = event_new(m->s->base, -1, EV_PERSIST, on_tick, m);
	m->sweep = event_new(m->s->base, -1, EV_PERSIST, on_sweep, m);
	return m->tick && m->sweep && event_add(m->tick, &tick) == 0 &&
	       event_add(m->sweep, &sweep) == 0 ? 0 : -1;
}

/* ---- service ---------------------------------------------------------------------------- */

static void mailbox_limits(const mn_config *cfg, mb_limits *lim)
{
	*lim = (mb_limits){
		.max_deliveries = cfg->mailbox_max_deliveries,
		.quota_count = cfg->mailbox_quota_count, .quota_bytes = cfg->mailbox_quota_bytes,
		.max_messages = cfg->mailbox_max_messages, .max_bytes = cfg->mailbox_max_bytes,
		.max_idem = cfg->mailbox_max_idempotency_keys,
		.idem_window_ms = cfg->mailbox_idempotency_window_ms,
		.backoff_base_ms = cfg->mailbox_nack_backoff_ms,
		.backoff_max_ms = cfg->mailbox_nack_backoff_max_ms,
		.keep_bodies = cfg->amnesia,
	};
}

static int mailbox_open(mailbox *m, const mn_config *cfg)
{
	char err[MB_DB_ERR_MAX];
	mb_limits lim;

	mailbox_limits(cfg, &lim);
	if (!(m->t = mb_table_new(&lim)))
		return -1;
	if (cfg->amnesia)
		return 0;
	if (!(m->db = mb_db_open(cfg->data_dir, cfg->mailbox_max_bytes, cfg->mailbox_max_messages,
	                         err, sizeof err)) ||
	    mb_db_load(m->db, m->t, err, sizeof err) != 0) {
		log_kv(LOG_LEVEL_ERROR, "mailbox cannot open its database", "error", err, LOG_END);
		return -1;
	}
	return 0;
}

static int mailbox_open_writer(mailbox *m)
{
	if (!m->db)
		return 0;
	if (!(m->wq = workq_new(1, 2)))   /* the group committing, the next submitted from its done() */
		return -1;
	m->wq_ev = event_new(m->s->base, workq_fd(m->wq), EV_READ | EV_PERSIST, on_writes_done, m);
	return m->wq_ev && event_add(m->wq_ev, NULL) == 0 ? 0 : -1;
}

static void mailbox_free(mailbox *m)
{
	if (!m)
		return;
	if (m->tick)
		event_free(m->tick);
	if (m->sweep)
		event_free(m->sweep);
	rpc_server_free(m->srv);   /* requests in work keep their handles */
	mb_writer_free(m);         /* a running commit finishes and is answered */
	mb_table_free(m->t);
	mb_db_close(m->db);
	free(m);
}

static void mailbox_on_drained(void *arg)
{
	svc_drained(((mailbox *)arg)->s);
}

static int mb_check(uint16_t verb, const uint8_t *p, size_t n)
{
	static mb_req q;   /* loop thread */

	return mb_msg_req_decode(verb, p, n, &q);
}

static int mailbox_start(svc *s)
{
	mailbox *m = calloc(1, sizeof *m);

	if (!m)
		return -1;
	m->s = s;
	s->priv = m;
	STAILQ_INIT(&m->queued);
	/* The database opens before the sandbox, the writer thread after it
	 * (Landlock binds only the threads made after it). */
	if (mailbox_open(m, &s->cfg) != 0 || svc_sandbox_enter(s) != 0 ||
	    mailbox_open_writer(m) != 0)
		goto fail;
	rpc_server_opts so = { .name = "mailbox", .app_proto = MB_APP_PROTO,
	                       .max_conns = MAILBOX_MAX_CONNS, .max_pending = MAILBOX_CONN_PENDING,
	                       .check = mb_check, .verb_name = mb_msg_verb_name,
	                       .handle = mailbox_dispatch, .arg = m,
	                       .drained = mailbox_on_drained, .request_fds = true };
	if (s->listen_fd < 0 || evutil_make_socket_nonblocking(s->listen_fd) != 0 ||
	    !(m->srv = rpc_server_new(s->base, s->listen_fd, &so))) {
		log_kv(LOG_LEVEL_ERROR, "mailbox has no listening socket", LOG_END);
		goto fail;
	}
	if (mailbox_timers(m) != 0)
		goto fail;
	m->m_depth = metrics_get("mailbox_depth", "");
	m->m_dlq_depth = metrics_get("mailbox_dlq_depth", "");
	m->m_idem = metrics_get("mailbox_idempotency_keys", "");
	m->m_timeouts = metrics_get("mailbox_visibility_timeout_total", "");
	m->m_dlq_total = metrics_get("mailbox_dlq_total", "");
	mailbox_gauges(m);
	log_kv(LOG_LEVEL_INFO, "mailbox serving", "backend", s->cfg.amnesia ? "ram" : "disk",
	       LOG_END);
	return 0;
fail:
	mailbox_free(m);
	s->priv = NULL;
	return -1;
}

static void mailbox_drain(svc *s)
{
	mailbox *m = s->priv;

	m->draining = true;
	rpc_server_drain(m->srv);
}

static void mailbox_stop(svc *s)
{
	mailbox_free(s->priv);
	s->priv = NULL;
}

const svc_ops mailbox_ops = {
	.role = "mailbox",
	.start = mailbox_start,
	.drain = mailbox_drain,
	.stop = mailbox_stop,
};
