/*
 * index_verbs.c — what the index does for each verb (see index.h), and the
 * one path every record from elsewhere takes.
 *
 *   PUBLISH  sign name → cid at seq = held + 1 (above a cached network
 *            record's too) with the node identity, store it (the disk
 *            table's write runs on the writer thread: its commit fsyncs),
 *            drop the name from the network cache, answer, then put the
 *            record into the DHT.
 *   RESOLVE  the table's record, else the cache's while it is fresh
 *            (checked against the DHT within INDEX_CACHE_FRESH_MS), else
 *            (network = true and a dht service) a lookup (index_lookup.c)
 *            — which answers the cached record however old when the DHT has
 *            nothing better — else 404.
 *   HISTORY  the table's newest index.history records (seq rising), else
 *            the cached one, else 404.
 *   IMPORT   a record from elsewhere: checked (signature and all), then
 *            into the table if it holds the name, else into the cache. A
 *            seq lower than or equal to the held one is refused (409, no
 *            rollback) and counted, like every refused record.
 *
 * Metrics (docs/metrics.md): index_names, index_cache_names,
 * index_publishes_total{result}, index_records_rejected_total{reason}.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/metrics/metrics.h"
#include "core/metrics/reject.h"
#include "lib/log.h"
#include "svc/index/index.h"

/* ---- metrics --------------------------------------------------------------- */

void index_count_reject(const char *reason)
{
	char labels[64];

	snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
	metrics_count("index_records_rejected_total", labels, 1);
}

static void index_count_publish(const char *result)
{
	char labels[64];

	snprintf(labels, sizeof labels, "result=\"%s\"", result);
	metrics_count("index_publishes_total", labels, 1);
}

void index_gauges(index_svc *srv)
{
	metrics_gauge_set(metrics_get("index_names", ""), (int64_t)index_db_count(srv->table));
	metrics_gauge_set(metrics_get("index_cache_names", ""), (int64_t)index_db_count(srv->cache));
}

/* ---- answers -------------------------------------------------------------- */

static index_rep *index_rep_ok(index_svc *srv, uint16_t verb)
{
	index_rep *rep = &srv->rep;

	memset(rep, 0, offsetof(index_rep, u));
	rep->verb = verb;
	rep->status = 200;
	return rep;
}

void index_answer_record(index_op *op, const name_record *rec, index_source src)
{
	index_rep *rep = index_rep_ok(op->srv, INDEX_RESOLVE);

	rep->u.resolve.source = (uint8_t)src;
	rep->u.resolve.rec = *rec;
	index_answer(op, rep);
}

static void index_answer_db_error(index_op *op, index_db_status st)
{
	if (st == INDEX_DB_FULL) {
		char msg[INDEX_MSG_TEXT_MAX];
		snprintf(msg, sizeof msg, "index full: index.max_names (%" PRIu32 ") names held",
		         op->srv->s->cfg.index_max_names);
		index_answer_err(op, 507, msg);
		return;
	}
	index_answer_err(op, 500, "index database error");
}

/* ---- writes: inline for a RAM table, on the writer thread for LMDB ------- */

static void index_write_finish(index_op *op);

static void on_write_run(workq_job *job)
{
	index_op *op = (index_op *)job;

	index_db_write_run(op->srv->table, &op->w);
}

static void on_write_done(workq_job *job, bool ran)
{
	index_op *op = (index_op *)job;

	op->srv->writes--;
	if (!ran) {   /* dropped at shutdown: nothing was written or acknowledged */
		index_answer_err(op, 503, "index shutting down");
		return;
	}
	index_write_finish(op);
}

void index_writes_done(index_svc *srv)
{
	(void)workq_reap(srv->wq);
}

static void index_write_start(index_op *op)
{
	index_svc *srv = op->srv;

	if (!srv->wq) {
		index_db_write_run(srv->table, &op->w);
		index_write_finish(op);
		return;
	}
	op->job = (workq_job){ .run = on_write_run, .done = on_write_done };
	if (srv->writes >= INDEX_WRITES_MAX || workq_submit(srv->wq, &op->job) != 0) {
		reject_count(REJECT_FAMILY_NODE, REJECT_503);
		index_answer_err(op, 503, "too many index writes queued");
		return;
	}
	srv->writes++;
}

static void index_publish_finish(index_op *op)
{
	index_svc *srv = op->srv;
	index_db_write *w = &op->w;
	index_rep *rep;

	if (w->status != INDEX_DB_OK) {
		index_count_publish(w->status == INDEX_DB_FULL ? "full" : "error");
		index_answer_db_error(op, w->status);
		return;
	}
	index_db_forget(srv->cache, &w->name);   /* the table holds it now */
	index_count_publish(w->created ? "created" : "updated");
	index_gauges(srv);
	index_dht_put(srv->dht, &w->out);
	rep = index_rep_ok(srv, INDEX_PUBLISH);
	rep->u.publish.created = w->created;
	rep->u.publish.rec = w->out;
	index_answer(op, rep);
}

/* A record from elsewhere went into the table (IMPORT, or a lookup's
 * orphan op: its answer is dropped). */
static void index_import_finish(index_op *op)
{
	index_svc *srv = op->srv;
	index_db_write *w = &op->w;

	if (w->status == INDEX_DB_STALE || w->status == INDEX_DB_FULL)
		index_count_reject(w->status == INDEX_DB_STALE ? name_rec_result_name(NAME_REC_STALE_SEQ)
		                                               : "full");
	if (w->status == INDEX_DB_OK)
		index_gauges(srv);
	if (w->status == INDEX_DB_STALE)
		index_answer_err(op, 409, "stale_seq: the seq is not above the one held (no rollback)");
	else if (w->status != INDEX_DB_OK)
		index_answer_db_error(op, w->status);
	else
		index_answer(op, index_rep_ok(srv, INDEX_IMPORT));
}

static void index_write_finish(index_op *op)
{
	if (op->w.publish)
		index_publish_finish(op);
	else
		index_import_finish(op);
}

/* ---- records from elsewhere ------------------------------------------------ */

/* Into the cache (loop, instant). */
static void index_take_cached(index_svc *srv, const name_record *rec, index_op *op)
{
	index_db_write w = { .rec = *rec };

	index_db_write_run(srv->cache, &w);
	if (w.status == INDEX_DB_STALE)
		index_count_reject(name_rec_result_name(NAME_REC_STALE_SEQ));
	index_gauges(srv);
	if (!op)
		return;
	if (w.status == INDEX_DB_STALE)
		index_answer_err(op, 409, "stale_seq: the seq is not above the one held (no rollback)");
	else if (w.status != INDEX_DB_OK)
		index_answer_db_error(op, w.status);
	else
		index_answer(op, index_rep_ok(srv, INDEX_IMPORT));
}

void index_take_record(index_svc *srv, const name_record *rec, index_op *op)
{
	index_name name;
	name_record held;

	index_name_set(&name, rec->name, rec->name_len);
	if (index_db_get(srv->table, &name, &held) != INDEX_DB_OK) {
		index_take_cached(srv, rec, op);
		return;
	}
	if (!op && !(op = index_op_orphan(srv, INDEX_IMPORT)))
		return;
	memset(&op->w, 0, sizeof op->w);
	op->w.rec = *rec;
	index_write_start(op);
}

/* ---- verbs ---------------------------------------------------------------- */

static void index_do_publish(index_op *op, const index_req_publish *m)
{
	index_svc *srv = op->srv;
	name_record cached;
	index_db_write *w = &op->w;

	memset(w, 0, sizeof *w);
	w->publish = true;
	w->name = m->name;
	memcpy(w->cid, m->cid, sizeof w->cid);
	w->now = (uint64_t)time(NULL);
	w->id = &srv->s->identity;
	if (index_db_get(srv->cache, &m->name, &cached) == INDEX_DB_OK)
		w->floor = cached.seq;   /* no seq the network has seen is signed again */
	index_write_start(op);
}

static void index_do_resolve(index_op *op, const index_req_resolve *m)
{
	index_svc *srv = op->srv;
	name_record rec;
	index_db_status st = index_db_get(srv->table, &m->name, &rec);

	if (st == INDEX_DB_OK) {
		index_answer_record(op, &rec, INDEX_SOURCE_LOCAL);
		return;
	}
	if (st == INDEX_DB_NOT_FOUND && index_db_get(srv->cache, &m->name, &rec) == INDEX_DB_OK &&
	    (!m->network || !srv->dht ||
	     index_db_ram_is_fresh(srv->cache, &m->name, INDEX_CACHE_FRESH_MS))) {
		index_answer_record(op, &rec, INDEX_SOURCE_LOCAL);
		return;
	}
	if (st != INDEX_DB_NOT_FOUND) {
		index_answer_db_error(op, st);
		return;
	}
	if (m->network && srv->dht) {
		index_lookup_start(op, &m->name);
		return;
	}
	index_answer_err(op, 404, srv->dht || !m->network ? "no such name"
	                          : "no such name (and no dht service on this node to ask)");
}

static void index_do_history(index_op *op, const index_req_history *m)
{
	index_svc *srv = op->srv;
	index_rep *rep = index_rep_ok(srv, INDEX_HISTORY);
	size_t n = 0, max = srv->history < INDEX_HISTORY_MAX ? srv->history : INDEX_HISTORY_MAX;
	index_db_status st = index_db_history(srv->table, &m->name, rep->u.history.recs, max, &n);

	if (st == INDEX_DB_NOT_FOUND)
		st = index_db_history(srv->cache, &m->name, rep->u.history.recs, max, &n);
	if (st == INDEX_DB_NOT_FOUND) {
		index_answer_err(op, 404, "no such name");
		return;
	}
	if (st != INDEX_DB_OK || n == 0) {
		index_answer_db_error(op, INDEX_DB_ERROR);
		return;
	}
	rep->u.history.n = (uint8_t)n;
	index_answer(op, rep);
}

/* LIST: a page of the held table (not the network cache), for the search
 * service's catch-up. A read on the loop, like RESOLVE's. */
static void index_do_list(index_op *op, const index_req_list *m)
{
	index_svc *srv = op->srv;
	index_rep *rep = index_rep_ok(srv, INDEX_LIST);
	index_db_cursor cur = { .pos = m->from.pos };
	index_rep_list *l = &rep->u.list;

	cur.after = m->from.after;
	l->n = (uint8_t)index_db_scan(srv->table, &cur, l->recs, INDEX_LIST_MAX);
	l->next.after = cur.after;
	l->next.pos = cur.pos;
	/* Done when the scan went back to the start, or returned less than a
	 * page: the field the table does not use is echoed, so a crafted
	 * cursor cannot make a walk that never ends (a full page moves on). */
	l->more = l->n == INDEX_LIST_MAX && (cur.after.len != 0 || cur.pos != 0);
	index_answer(op, rep);
}

static void index_do_import(index_op *op, const index_req_import *m)
{
	char msg[INDEX_MSG_TEXT_MAX];
	name_record rec;
	name_rec_result res = name_record_check(m->rec, m->len, NULL, &rec);

	if (res != NAME_REC_OK) {
		index_count_reject(name_rec_result_name(res));
		snprintf(msg, sizeof msg, "%s: the record does not check", name_rec_result_name(res));
		index_answer_err(op, 400, msg);
		return;
	}
	index_take_record(op->srv, &rec, op);
}

void index_dispatch(index_op *op, const index_req *q)
{
	switch (q->verb) {
	case INDEX_PING:
		index_answer(op, index_rep_ok(op->srv, INDEX_PING));
		break;
	case INDEX_PUBLISH:
		index_do_publish(op, &q->u.publish);
		break;
	case INDEX_RESOLVE:
		index_do_resolve(op, &q->u.resolve);
		break;
	case INDEX_HISTORY:
		index_do_history(op, &q->u.history);
		break;
	case INDEX_IMPORT:
		index_do_import(op, &q->u.import);
		break;
	case INDEX_LIST:
		index_do_list(op, &q->u.list);
		break;
	default:   /* the decoder admits only the verbs above */
		(void)BUG("index verb without a handler");
		index_answer_err(op, 500, "no handler");
		break;
	}
}
