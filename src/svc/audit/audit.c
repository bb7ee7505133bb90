/*
 * audit.c — the audit service: the only writer of the audit log
 * (docs/audit.md "The service").
 *
 * Owns <data_dir>/audit/ (a RAM ring in amnesia mode: core/audit/audit_log.h)
 * and signs its checkpoints with the node identity (CTL_IDENTITY). Other
 * processes send APPEND over <runtime_dir>/audit.sock (core/net/rpc_server.h,
 * verbs in core/audit/audit_client.h); each entry is answered once the batch
 * it was in is fsynced (senders do not wait for the answer: fire-and-forget;
 * one the service never answered, e.g. it was killed, the sender counts as
 * dropped and reports). The queue is bounded
 * (audit.queue_max entries, AUDIT_QUEUE_BYTES); one more is refused (503),
 * counted in audit_dropped_total{reason="queue_full"}, and once the queue
 * has drained one record says how many were refused.
 *
 * Timers on this loop only: every audit.fsync_interval up to
 * AUDIT_DRAIN_TURN entries are appended and fsynced (audit_records_total
 * counts them then), and sooner once AUDIT_EARLY_TURN entries are queued; every audit.checkpoint_interval, and at shutdown, a
 * signed checkpoint, then retention (audit.max_age, audit.max_bytes) unless
 * a proof or a RECENT read is reading the segments. Proofs: audit_proof.c;
 * the newest records: audit_recent.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "core/config/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "svc/audit/audit_svc.h"

/* ---- test hooks ----------------------------------------------------------- */

/* Only a build with assertions (not -Dbuildtype=release) reads them, and
 * they can only lose records (counted by their senders), never forge one:
 * AUDIT_TEST_BATCH_ENV=N syncs every N records (a batch fills early);
 * AUDIT_TEST_FAIL_ENV=1 fails the closing sync of the first turn in which a
 * batch filled (the write failure after an early sync, docs/audit.md). */
#define AUDIT_TEST_BATCH_ENV "MN_TEST_AUDIT_BATCH"
#define AUDIT_TEST_FAIL_ENV  "MN_TEST_AUDIT_FAIL_AFTER_FULL"

static unsigned auditd_test_batch(void)
{
#ifndef NDEBUG
	const char *v = getenv(AUDIT_TEST_BATCH_ENV);
	uint64_t n = 0;

	if (v && util_parse_u64(v, &n) == 0 && n >= 1 && n < AUDIT_BATCH_MAX_RECORDS) {
		log_kv(LOG_LEVEL_WARN, "test hook: audit batches of a few records", "env",
		       AUDIT_TEST_BATCH_ENV, "records", v, LOG_END);
		return (unsigned)n;
	}
#endif
	return 0;
}

static bool auditd_test_fail_armed(void)
{
#ifndef NDEBUG
	const char *v = getenv(AUDIT_TEST_FAIL_ENV);

	return v && strcmp(v, "1") == 0;
#else
	return false;
#endif
}

/* ---- opening the log ------------------------------------------------------ */

/* v as decimal in buf (log fields are strings). */
static const char *u64s(char buf[24], uint64_t v)
{
	snprintf(buf, 24, "%" PRIu64, v);
	return buf;
}

static int auditd_open(auditd *a, audit_recovery *rec)
{
	const mn_config *cfg = &a->s->cfg;
	char dir[CONFIG_PATH_MAX + 8], err[AUDIT_ERR_MAX];
	audit_log_opts o = { .segment_max = cfg->audit_segment_max, .id = &a->s->identity,
	                     .ram_bytes = cfg->audit_ram_bytes,
	                     .batch_records = a->test_batch };

	if (!cfg->amnesia) {
		if ((size_t)snprintf(dir, sizeof dir, "%s/audit", cfg->data_dir) >= sizeof dir)
			return -1;
		o.dir = dir;
	}
	a->log = audit_log_open(&o, rec, err, sizeof err);
	if (!a->log) {
		log_kv(LOG_LEVEL_ERROR, "audit log does not open", "dir", o.dir ? o.dir : "(memory)",
		       "error", err, LOG_END);
		return -1;
	}
	const audit_checkpoint *c = audit_log_last_checkpoint(a->log);
	a->ckpt_size = c ? c->size : UINT64_MAX;
	return 0;
}

/* Append one entry the service makes itself (stream "audit"). */
static void auditd_self(auditd *a, const char *kind, const char *reason, json_t *attrs)
{
	char err[AUDIT_ERR_MAX];
	audit_entry e = { .stream = "audit", .kind = kind, .writer_id = "audit", .reason = reason,
	                  .ts_ms = util_wall_ms(), .attrs = attrs };

	audit_append_result r = audit_log_append(a->log, &e, NULL, NULL, err, sizeof err);

	if (r == AUDIT_LOG_FULL && audit_log_sync(a->log, err, sizeof err) == 0)
		r = audit_log_append(a->log, &e, NULL, NULL, err, sizeof err);
	if (r == AUDIT_LOG_OK)
		a->self_pending++;
	else   /* BROKEN: the next sync fails and reopens */
		log_kv(LOG_LEVEL_WARN, "audit record of the service itself not appended", "kind", kind,
		       "error", err, LOG_END);
	json_decref(attrs);
}

/* The recovery report: logged, and audited as the first record of this run. */
static void auditd_report(auditd *a, const audit_recovery *r)
{
	char b1[24], b2[24], b3[24];

	metrics_gauge_set(a->m_torn, (int64_t)(r->torn_bytes + r->ckpt_torn_bytes));
	if (r->torn_bytes || r->ckpt_torn_bytes) {
		log_kv(LOG_LEVEL_WARN, "audit log recovered a torn write", "file", r->torn_file,
		       "offset", u64s(b1, r->torn_offset), "bytes", u64s(b2, r->torn_bytes),
		       "checkpoint_bytes", u64s(b3, r->ckpt_torn_bytes), LOG_END);
		auditd_self(a, "recovered", "torn_write",
		            json_pack("{s:s, s:I, s:I, s:I}", "file", r->torn_file,
		                      "offset", (json_int_t)r->torn_offset,
		                      "bytes", (json_int_t)r->torn_bytes,
		                      "checkpoint_bytes", (json_int_t)r->ckpt_torn_bytes));
	}
	log_kv(LOG_LEVEL_INFO, "audit log open", "records", u64s(b1, r->records),
	       "first_index", u64s(b2, r->first_index), "segments", u64s(b3, r->segments), LOG_END);
	auditd_self(a, "opened", a->s->cfg.amnesia ? "memory" : "disk",
	            json_pack("{s:I, s:I, s:I}", "records", (json_int_t)r->records,
	                      "first_index", (json_int_t)r->first_index,
	                      "segments", (json_int_t)r->segments));
}

/* After a failed write the log refuses everything: free it and open again,
 * which recovers from what reached the disk. */
static void auditd_reopen(auditd *a)
{
	audit_recovery rec;

	audit_log_free(a->log);
	a->log = NULL;
	if (auditd_open(a, &rec) == 0) {   /* the dir exists: no mkdir, no chmod (sandbox) */
		auditd_report(a, &rec);
		return;
	}
	log_fatalx("audit log cannot be reopened after a failed write; exiting", LOG_END);
}

/* ---- the sync turn ------------------------------------------------------ */

/* Per-stream counts of one turn, for audit_records_total after the fsync. */
typedef struct turn_count {
	char     stream[AUDIT_STREAM_MAX + 1];
	uint64_t n;
} turn_count;

/* One turn: the entries appended since the last fsync (answered once it
 * returns) and their per-stream counts. */
typedef struct turn {
	turn_count  *t;      /* NULL (no memory): appended, not counted */
	size_t       nt;
	audit_item  *done, **dtail;
	uint64_t     acked;  /* answered after an early sync (the batch filled) */
} turn;

static void turn_add(turn *tu, const char *stream)
{
	turn_count *t = tu->t;

	if (!t)
		return;
	for (size_t i = 0; i < tu->nt; i++)
		if (strcmp(t[i].stream, stream) == 0) {
			t[i].n++;
			return;
		}
	if (tu->nt < AUDIT_MAX_STREAMS + 1) {
		snprintf(t[tu->nt].stream, sizeof t[tu->nt].stream, "%s", stream);
		t[tu->nt++].n = 1;
	}
}

/* Answer every entry of a batch (status: each one's, or 500 when the batch
 * was not written) and free them; how many. A refusal carries its reason as
 * the verb's reply encodes it: the sender takes a reply that does not
 * decode for a broken peer and exits. */
static uint64_t batch_answer(audit_item *done, uint16_t status)
{
	uint64_t n = 0;

	for (; done; n++) {
		audit_item *next = done->next;
		uint16_t st = status ? status : done->status;
		if (st == 200)
			rpc_server_reply(done->q, 200, NULL, 0, NULL, 0);
		else
			auditd_answer_msg(done->q, AUDIT_APPEND, st, st == 500 ?
			                  "audit batch not written" : "audit entry refused");
		free(done);
		done = next;
	}
	return n;
}

/* An fsync returned: what was appended before it is on disk. Answer those
 * entries and count them in audit_records_total, now — a later failure in
 * the same turn must not report them lost. */
static void turn_synced(auditd *a, turn *tu)
{
	char labels[AUDIT_STREAM_MAX * 2 + 16];

	tu->acked += batch_answer(tu->done, 0);
	tu->done = NULL;
	tu->dtail = &tu->done;
	if (a->self_pending)
		metrics_count("audit_records_total", "stream=\"audit\"", a->self_pending);
	a->self_pending = 0;
	for (size_t i = 0; tu->t && i < tu->nt; i++) {
		char esc[AUDIT_STREAM_MAX * 2 + 1];
		if (metrics_label_escape(esc, sizeof esc, tu->t[i].stream) < 0)
			continue;
		snprintf(labels, sizeof labels, "stream=\"%s\"", esc);
		metrics_count("audit_records_total", labels, tu->t[i].n);
	}
	tu->nt = 0;
}

static json_t *json_obj(const uint8_t *p, size_t n, bool *bad)
{
	json_t *o;

	if (n == 0)
		return NULL;
	o = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(o)) {
		*bad = true;
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Chain one queued message into the batch (the batch full: fsync what it
 * holds, answer those, then chain). 1 appended, 0 refused, -1 broken. */
static int turn_append(auditd *a, const audit_item *it, turn *tu)
{
	audit_msg_entry m;
	char err[AUDIT_ERR_MAX];
	bool bad = false;
	audit_append_result r = AUDIT_LOG_REFUSED;

	if (audit_msg_append_decode(it->p, it->n, &m) != 0)   /* checked on arrival */
		return 0;
	json_t *actor = json_obj(m.actor, m.actor_len, &bad);
	json_t *subject = json_obj(m.subject, m.subject_len, &bad);
	json_t *attrs = json_obj(m.attrs, m.attrs_len, &bad);
	audit_entry e = { .stream = m.stream, .kind = m.kind, .writer_id = m.writer_id,
	                  .reason = m.reason, .ts_ms = m.ts_ms, .actor = actor,
	                  .subject = subject, .attrs = attrs };

	if (!bad) {
		r = audit_log_append(a->log, &e, NULL, NULL, err, sizeof err);
		if (r == AUDIT_LOG_FULL) {
			if (audit_log_sync(a->log, err, sizeof err) != 0) {
				r = AUDIT_LOG_BROKEN;
			} else {
				turn_synced(a, tu);
				r = audit_log_append(a->log, &e, NULL, NULL, err, sizeof err);
			}
		}
	}
	json_decref(actor);
	json_decref(subject);
	json_decref(attrs);
	if (r == AUDIT_LOG_OK) {
		turn_add(tu, m.stream);
		return 1;
	}
	if (r == AUDIT_LOG_BROKEN)
		return -1;
	metrics_inc(a->m_refused, 1);
	log_kv(LOG_LEVEL_WARN, "audit entry refused", "stream", m.stream, "kind", m.kind,
	       "writer", m.writer_id, "error", bad ? "actor/subject/attrs not a JSON object" : err,
	       LOG_END);
	return 0;
}

static audit_item *queue_pop(auditd *a)
{
	audit_item *it = a->head;

	if (!it)
		return NULL;
	a->head = it->next;
	if (!a->head)
		a->tail = NULL;
	a->queued--;
	a->queued_bytes -= it->n;
	return it;
}

/* Up to max entries from the queue into the log, then one fsync; only then
 * are they answered (acknowledged: on disk). A batch that fills syncs
 * early (turn_append): those entries are answered 200 then, so a failure
 * afterwards answers 500 only to the entries it really lost. */
static void auditd_turn(auditd *a, unsigned max)
{
	turn tu = { .t = calloc(AUDIT_MAX_STREAMS + 1, sizeof *tu.t) };
	char err[AUDIT_ERR_MAX];
	audit_item *it;
	int rc = 0;

	tu.dtail = &tu.done;
	for (unsigned i = 0; i < max && rc >= 0 && (it = queue_pop(a)); i++) {
		rc = turn_append(a, it, &tu);
		it->status = rc == 1 ? 200 : 422;
		it->next = NULL;
		*tu.dtail = it;
		tu.dtail = &it->next;
	}
	if (rc >= 0 && !a->head && a->dropped_full) {
		/* Drained: say how many entries the full queue refused. */
		auditd_self(a, "dropped", "queue_full",
		            json_pack("{s:I}", "count", (json_int_t)a->dropped_full));
		a->dropped_full = 0;
	}
	metrics_gauge_set(a->m_depth, (int64_t)a->queued);
	bool hook = a->test_fail && tu.acked > 0;
	if (hook) {
		a->test_fail = false;
		snprintf(err, sizeof err, "test hook %s", AUDIT_TEST_FAIL_ENV);
	}
	if (rc < 0 || hook || audit_log_sync(a->log, err, sizeof err) != 0) {
		char b1[24], b2[24];
		/* never acknowledged: the senders count these lost */
		uint64_t lost = batch_answer(tu.done, 500);

		log_kv(LOG_LEVEL_ERROR, "audit log write failed; reopening", "error",
		       rc < 0 ? "append refused: log broken" : err,
		       "acknowledged", u64s(b1, tu.acked), "lost", u64s(b2, lost), LOG_END);
		free(tu.t);
		a->self_pending = 0;
		auditd_reopen(a);
		return;
	}
	turn_synced(a, &tu);
	free(tu.t);
}

static void on_sync(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	auditd_turn(arg, AUDIT_DRAIN_TURN);
}

/* ---- checkpoints and retention -------------------------------------------- */

static void auditd_checkpoint(auditd *a, bool final)
{
	const mn_config *cfg = &a->s->cfg;
	char err[AUDIT_ERR_MAX];
	audit_checkpoint c;
	audit_retain_report rep;
	char b1[24], b2[24], b3[24];

	if (audit_log_size(a->log) == a->ckpt_size && audit_log_pending(a->log) == 0)
		return;   /* nothing new to sign */
	if (audit_log_checkpoint(a->log, util_wall_ms(), &c, err, sizeof err) != 0) {
		log_kv(LOG_LEVEL_ERROR, "audit checkpoint failed", "error", err, LOG_END);
		if (!final)
			auditd_reopen(a);
		return;
	}
	a->ckpt_size = c.size;
	metrics_inc(a->m_ckpts, 1);
	/* A proof reading the segments must not see one vanish under it. */
	if (final || (a->wq && workq_pending(a->wq) > 0))
		return;
	if (audit_log_retain(a->log, util_wall_ms(), cfg->audit_max_age_ms, cfg->audit_max_bytes,
	                     &rep, err, sizeof err) != 0)
		log_kv(LOG_LEVEL_ERROR, "audit retention failed", "error", err, LOG_END);
	else if (rep.segments_removed)
		log_kv(LOG_LEVEL_INFO, "audit retention removed segments",
		       "segments", u64s(b1, rep.segments_removed), "bytes", u64s(b2, rep.bytes_removed),
		       "first_index", u64s(b3, rep.first_index), LOG_END);
}

static void on_checkpoint(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	auditd_checkpoint(arg, false);
}

/* ---- requests ---------------------------------------------------------------- */

static void auditd_append(auditd *a, rpc_req *q, const uint8_t *p, size_t n)
{
	audit_item *it;

	if (a->queued >= a->s->cfg.audit_queue_max || a->queued_bytes + n > AUDIT_QUEUE_BYTES ||
	    !(it = malloc(sizeof *it + n))) {
		a->dropped_full++;
		metrics_inc(a->m_full, 1);
		auditd_answer_msg(q, AUDIT_APPEND, 503, "audit queue full");
		return;
	}
	it->next = NULL;
	it->q = q;   /* answered after the fsync of its batch (auditd_turn) */
	it->status = 0;
	it->n = n;
	memcpy(it->p, p, n);
	if (a->tail)
		a->tail->next = it;
	else
		a->head = it;
	a->tail = it;
	a->queued++;
	a->queued_bytes += n;
	/* A sender may have only AUDIT_CLIENT_PENDING entries unanswered: do not
	 * let a long fsync_interval hold that many (they would be refused on its
	 * side as client_busy). An ordinary turn, run as soon as the loop is
	 * free; activating it again while it waits changes nothing. */
	if (a->queued >= AUDIT_EARLY_TURN && a->early_ev)
		event_active(a->early_ev, EV_TIMEOUT, 1);
}

static void auditd_get_checkpoint(auditd *a, rpc_req *q)
{
	const audit_checkpoint *c = audit_log_last_checkpoint(a->log);
	char line[AUDIT_CKPT_MAX];
	size_t n = 0;

	if (!c) {
		auditd_answer_msg(q, AUDIT_CHECKPOINT, 404, "no checkpoint yet");
		return;
	}
	if (audit_checkpoint_encode(c, line, sizeof line, &n) != 0) {
		auditd_answer_msg(q, AUDIT_CHECKPOINT, 500, "checkpoint does not encode");
		return;
	}
	auditd_answer(q, AUDIT_CHECKPOINT, 200, line, n);
}

static void auditd_handle(rpc_req *q, uint16_t verb, const uint8_t *p, size_t n, void *arg)
{
	auditd *a = arg;

	switch (verb) {
	case AUDIT_APPEND:     auditd_append(a, q, p, n); break;
	case AUDIT_CHECKPOINT: auditd_get_checkpoint(a, q); break;
	case AUDIT_PROOF:      auditd_proof(a, q, p, n); break;
	case AUDIT_RECENT:     auditd_recent(a, q, p, n); break;
	default:               rpc_server_reply(q, 200, NULL, 0, NULL, 0); break;   /* PING */
	}
}

static void on_workq(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	auditd_proof_reap(arg);
}

/* ---- service ------------------------------------------------------------------ */

static void auditd_free(auditd *a)
{
	audit_item *it;

	if (!a)
		return;
	if (a->workq_ev)
		event_free(a->workq_ev);
	workq_free(a->wq);   /* running proofs finish; their answers are dropped */
	rpc_server_free(a->srv);
	if (a->sync_ev)
		event_free(a->sync_ev);
	if (a->early_ev)
		event_free(a->early_ev);
	if (a->ckpt_ev)
		event_free(a->ckpt_ev);
	if (a->drain_ev)
		event_free(a->drain_ev);
	while ((it = queue_pop(a))) {   /* never written: answered (dropped), freed */
		it->next = NULL;
		batch_answer(it, 500);
	}
	audit_log_free(a->log);
	free(a);
}

static struct timeval tv_ms(uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000u),
	                      .tv_usec = (suseconds_t)(ms % 1000u * 1000u) };
	return tv;
}

static int auditd_timers(auditd *a)
{
	struct timeval ts = tv_ms(a->s->cfg.audit_fsync_interval_ms);
	struct timeval tc = tv_ms(a->s->cfg.audit_checkpoint_interval_ms);

	a->sync_ev = event_new(a->s->base, -1, EV_PERSIST, on_sync, a);
	a->early_ev = event_new(a->s->base, -1, 0, on_sync, a);
	a->ckpt_ev = event_new(a->s->base, -1, EV_PERSIST, on_checkpoint, a);
	a->workq_ev = event_new(a->s->base, workq_fd(a->wq), EV_READ | EV_PERSIST, on_workq, a);
	return a->sync_ev && a->early_ev && a->ckpt_ev && a->workq_ev &&
	       event_add(a->sync_ev, &ts) == 0 &&
	       event_add(a->ckpt_ev, &tc) == 0 && event_add(a->workq_ev, NULL) == 0 ? 0 : -1;
}

static int audit_start(svc *s)
{
	auditd *a = calloc(1, sizeof *a);
	audit_recovery rec;

	if (!a)
		return -1;
	a->s = s;
	s->priv = a;
	a->test_fail = auditd_test_fail_armed();
	a->test_batch = auditd_test_batch();
	a->m_full = metrics_get("audit_dropped_total", "reason=\"queue_full\"");
	a->m_refused = metrics_get("audit_dropped_total", "reason=\"refused\"");
	a->m_ckpts = metrics_get("audit_checkpoints_total", "");
	a->m_depth = metrics_get("audit_queue_depth", "");
	a->m_torn = metrics_get("audit_recovered_torn_bytes", "");
	if (!s->identity.sk) {
		log_kv(LOG_LEVEL_ERROR, "audit has no node identity to sign with", LOG_END);
		goto fail;
	}
	/* Before the sandbox: the first open may create <data_dir>/audit. */
	if (auditd_open(a, &rec) != 0)
		goto fail;
	auditd_report(a, &rec);
	/* The proof thread is made after the sandbox (Landlock binds only the
	 * threads made after it). */
	if (svc_sandbox_enter(s) != 0 || !(a->wq = workq_new(1, AUDIT_PROOF_JOBS)))
		goto fail;
	tbucket_init(&a->proof_rate, AUDIT_PROOF_RATE, AUDIT_PROOF_RATE, util_now_ms());
	tbucket_init(&a->recent_rate, AUDIT_RECENT_RATE, AUDIT_RECENT_RATE, util_now_ms());
	rpc_server_opts so = { .name = "audit", .app_proto = AUDIT_APP_PROTO,
	                       .max_conns = AUDIT_MAX_CONNS, .max_pending = AUDIT_CONN_PENDING,
	                       .check = audit_msg_req_check, .verb_name = audit_msg_verb_name,
	                       .handle = auditd_handle, .arg = a };
	if (s->listen_fd < 0 || evutil_make_socket_nonblocking(s->listen_fd) != 0 ||
	    !(a->srv = rpc_server_new(s->base, s->listen_fd, &so)) || auditd_timers(a) != 0) {
		log_kv(LOG_LEVEL_ERROR, "audit has no listening socket", LOG_END);
		goto fail;
	}
	auditd_turn(a, AUDIT_DRAIN_TURN);   /* the open records, on disk before READY */
	log_kv(LOG_LEVEL_INFO, "audit ready", "node_id", s->identity.id_text,
	       "mode", s->cfg.amnesia ? "memory" : "disk", LOG_END);
	return 0;
fail:
	auditd_free(a);
	s->priv = NULL;
	return -1;
}

/* The last turn: every queued entry, then a checkpoint over all of them. */
static void on_drain_end(evutil_socket_t fd, short what, void *arg)
{
	auditd *a = arg;
	char b1[24];

	(void)fd; (void)what;
	while (a->head)
		auditd_turn(a, AUDIT_DRAIN_TURN);
	auditd_turn(a, 0);   /* a drop record, if any */
	auditd_checkpoint(a, true);
	log_kv(LOG_LEVEL_INFO, "audit log closed", "records", u64s(b1, audit_log_size(a->log)),
	       LOG_END);
	svc_drained(a->s);
}

static void audit_drain(svc *s)
{
	auditd *a = s->priv;
	struct timeval tv = tv_ms(AUDIT_DRAIN_GRACE_MS);

	if (a->draining)
		return;
	a->draining = true;
	/* Entries already in the socket (a shutdown's own record) are still
	 * taken for a moment: the senders drained before us. */
	if (!(a->drain_ev = event_new(s->base, -1, 0, on_drain_end, a)) ||
	    event_add(a->drain_ev, &tv) != 0)
		on_drain_end(-1, 0, a);
}

static void audit_stop(svc *s)
{
	auditd_free(s->priv);
	s->priv = NULL;
}

const svc_ops audit_ops = {
	.role = "audit",
	.start = audit_start,
	.drain = audit_drain,
	.stop = audit_stop,
};
