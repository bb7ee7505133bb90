/*
 * search.c — the search service (docs/search.md, README.md here): FTS5
 * over object metadata, the text of text objects and the names published
 * through the gateway, on
 * <runtime_dir>/search.sock (core/search/search_msg.h).
 *
 * Every SQLite call runs on a worker thread (lib/workq.h), never in an
 * event callback: one writer thread with the writer connection, and on
 * disk search.readers query threads, each query taking one of as many
 * read-only connections (WAL: they read while the writer writes). In
 * amnesia the in-memory database has one connection, so queries run on
 * the writer's thread, one at a time. The loop only decodes, queues and
 * answers:
 *   INDEX  copied into the pending list (at most search.queue documents;
 *          one more is dropped, 503, search_index_dropped_total) and
 *          answered at once; the worker writes the pending documents in
 *          batches of SEARCH_BATCH_MAX, one transaction each.
 *   NAME   the same: one queue, one bound, one writer, for both.
 *   QUERY  checked again (search_query_check), then one job on the same
 *          worker (at most search.max_queries waiting or running; one more
 *          is 503, facet_busy_total); the job stops at search.deadline from
 *          the request's arrival and answers what it found, "partial".
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "core/metrics/facet.h"
#include "core/metrics/metrics.h"
#include "core/net/rpc_server.h"
#include "core/search/search_query.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "svc/search/search_int.h"

static void search_reply_err(rpc_req *q, uint16_t status, const char *msg)
{
	uint8_t buf[SEARCH_MSG_TEXT_MAX + 8];
	ssize_t n = search_msg_err_encode(msg, buf, sizeof buf);

	rpc_server_reply(q, status, buf, n < 0 ? 0 : (size_t)n, NULL, 0);
}

static void search_gauges(search_svc *srv)
{
	metrics_gauge_set(srv->m_docs, srv->ndocs);
	metrics_gauge_set(srv->m_names, srv->nnames);
	metrics_gauge_set(srv->m_pending, (int64_t)srv->npend);
}

/* ---- indexing ------------------------------------------------------------- */

static void search_pend_free(search_pend *p)
{
	while (p) {
		search_pend *next = p->next;

		free((void *)p->d.text);
		free(p);
		p = next;
	}
}

static void on_batch_run(workq_job *j)
{
	search_batch *b = (search_batch *)j;

	b->rc = search_db_write(b->srv->db, b->docs, b->nd, b->names, b->nn, &b->added);
}

static void search_write_next(search_svc *srv);

static void on_batch_done(workq_job *j, bool ran)
{
	search_batch *b = (search_batch *)j;
	search_svc *srv = b->srv;

	srv->writing = false;
	if (ran && b->rc == 0) {
		srv->ndocs += (int64_t)b->added.docs;
		srv->nnames += (int64_t)b->added.names_new;
		metrics_count("search_indexed_total", "", (uint64_t)b->added.docs);
		metrics_count("search_names_indexed_total", "",
		              (uint64_t)(b->added.names_new + b->added.names_moved));
	} else {
		metrics_count("search_index_dropped_total", "reason=\"write_failed\"", b->n);
		log_kv(LOG_LEVEL_ERROR, "search index write failed", LOG_END);
	}
	search_pend_free(b->list);
	free(b->docs);
	free(b->names);
	free(b);
	search_gauges(srv);
	search_write_next(srv);
}

/* Hand up to SEARCH_BATCH_MAX pending documents to the worker. */
static void search_write_next(search_svc *srv)
{
	search_batch *b;
	size_t n = srv->npend < SEARCH_BATCH_MAX ? srv->npend : SEARCH_BATCH_MAX;
	search_pend *p;

	if (srv->writing || n == 0 || !(b = calloc(1, sizeof *b)))
		return;
	if (!(b->docs = calloc(n, sizeof *b->docs)) || !(b->names = calloc(n, sizeof *b->names))) {
		free(b->docs);
		free(b);
		return;
	}
	b->srv = srv;
	b->list = srv->head;
	p = srv->head;
	for (size_t i = 0; i < n; i++) {
		if (p->is_name)
			b->names[b->nn++] = p->nm;
		else
			b->docs[b->nd++] = p->d;
		if (i + 1 == n) {
			srv->head = p->next;
			p->next = NULL;
		} else {
			p = p->next;
		}
	}
	if (!srv->head)
		srv->tail = NULL;
	srv->npend -= n;
	b->n = n;
	b->job.run = on_batch_run;
	b->job.done = on_batch_done;
	if (workq_submit(srv->wq, &b->job) != 0) {   /* cannot happen: a slot is kept for it */
		(void)BUG("search batch refused by its worker pool");
		on_batch_done(&b->job, false);
		return;
	}
	srv->writing = true;
}

/* A pending entry, or NULL: answered 503 (the queue full, or no memory). */
static search_pend *search_pend_new(search_svc *srv, rpc_req *q)
{
	search_pend *e = NULL;

	if (srv->npend >= srv->s->cfg.search_queue) {
		metrics_count("search_index_dropped_total", "reason=\"queue_full\"", 1);
		search_reply_err(q, 503, "search queue full");
	} else if (!(e = calloc(1, sizeof *e))) {
		metrics_count("search_index_dropped_total", "reason=\"memory\"", 1);
		search_reply_err(q, 503, "out of memory");
	}
	return e;
}

void search_pend_enqueue(search_svc *srv, search_pend *e)
{
	if (srv->tail)
		srv->tail->next = e;
	else
		srv->head = e;
	srv->tail = e;
	srv->npend++;
	search_write_next(srv);
	search_gauges(srv);
}

/* Queue e (last), answer 200, and wake the writer. */
static void search_pend_push(search_svc *srv, rpc_req *q, search_pend *e)
{
	rpc_server_reply(q, 200, NULL, 0, NULL, 0);
	search_pend_enqueue(srv, e);
}

static void search_do_index(search_svc *srv, rpc_req *q, const uint8_t *p, size_t n)
{
	search_pend *e = search_pend_new(srv, q);
	uint8_t *text = NULL;

	if (!e)
		return;
	if (search_msg_index_decode(p, n, &e->d) != 0 ||   /* rpc_server checked it */
	    (e->d.text_len && !(text = malloc(e->d.text_len)))) {
		free(e);
		metrics_count("search_index_dropped_total", "reason=\"memory\"", 1);
		search_reply_err(q, 503, "out of memory");
		return;
	}
	if (text)
		memcpy(text, e->d.text, e->d.text_len);
	e->d.text = text;
	search_pend_push(srv, q, e);
}

/* NAME: the same queue as INDEX, the same bounds. */
static void search_do_name(search_svc *srv, rpc_req *q, const uint8_t *p, size_t n)
{
	search_pend *e = search_pend_new(srv, q);

	if (!e)
		return;
	if (search_msg_name_decode(p, n, &e->nm) != 0) {   /* rpc_server checked it */
		free(e);
		search_reply_err(q, 503, "name message did not decode");
		return;
	}
	e->is_name = true;
	search_pend_push(srv, q, e);
}

/* ---- queries -------------------------------------------------------------- */

static search_db *search_reader_take(search_readers *rd)
{
	search_db *db = NULL;

	pthread_mutex_lock(&rd->lock);
	if (rd->nfree)
		db = rd->free[--rd->nfree];
	pthread_mutex_unlock(&rd->lock);
	return db;
}

static void search_reader_put(search_readers *rd, search_db *db)
{
	pthread_mutex_lock(&rd->lock);
	rd->free[rd->nfree++] = db;
	pthread_mutex_unlock(&rd->lock);
}

static void on_query_run(workq_job *j)
{
	search_qjob *x = (search_qjob *)j;
	search_svc *srv = x->srv;
	search_db *db = srv->rq ? search_reader_take(&srv->rd) : srv->db;

	if (!db) {   /* more jobs running than connections: a bug of the pool sizes */
		x->rc = SEARCH_DB_ERROR;
		snprintf(x->msg, sizeof x->msg, "no search connection free");
		return;
	}
	x->rc = search_db_query(db, x->q, x->limit, x->deadline_ns, &x->hits, x->msg, sizeof x->msg);
	if (srv->rq)
		search_reader_put(&srv->rd, db);
}

static void search_count_query(const char *result)
{
	char l[32];

	snprintf(l, sizeof l, "result=\"%s\"", result);
	metrics_count("search_queries_total", l, 1);
}

static void on_query_done(workq_job *j, bool ran)
{
	search_qjob *x = (search_qjob *)j;
	uint8_t *buf;
	ssize_t n;

	x->srv->nqueries--;
	if (!ran || x->rc == SEARCH_DB_ERROR) {
		search_count_query("error");
		search_reply_err(x->req, 503, ran ? x->msg : "search stopping");
	} else if (x->rc == SEARCH_DB_BAD_QUERY) {
		search_count_query("bad");
		search_reply_err(x->req, 400, x->msg);
	} else if (!(buf = malloc(SEARCH_MSG_MAX)) ||
	           (n = search_msg_hits_encode(&x->hits, buf, SEARCH_MSG_MAX)) < 0) {
		free(buf);
		search_reply_err(x->req, 503, "out of memory");
	} else {
		if (x->rc == SEARCH_DB_PARTIAL)
			facet_deadline_timeout(FACET_SEARCH);
		search_count_query(x->rc == SEARCH_DB_PARTIAL ? "partial" : "ok");
		rpc_server_reply(x->req, 200, buf, (size_t)n, NULL, 0);
		free(buf);
	}
	free(x);
}

static void search_do_query(search_svc *srv, rpc_req *q, const uint8_t *p, size_t n)
{
	search_qjob *x = calloc(1, sizeof *x);
	uint64_t now = util_now_ns();

	if (!x || search_msg_query_decode(p, n, x->q, &x->limit) != 0) {
		free(x);
		search_reply_err(q, 503, "out of memory");
		return;
	}
	/* The gateway checked it; what reaches SQLite is checked here too. */
	if (search_query_check(x->q, strlen(x->q), x->msg, sizeof x->msg) != SEARCH_Q_OK) {
		search_reply_err(q, 400, x->msg);
		free(x);
		return;
	}
	if (srv->nqueries >= srv->s->cfg.search_max_queries) {
		facet_busy(FACET_SEARCH);
		search_count_query("busy");
		search_reply_err(q, 503, "search busy");
		free(x);
		return;
	}
	x->srv = srv;
	x->req = q;
	x->deadline_ns = now + srv->s->cfg.search_deadline_ms * 1000000u;
	x->job.run = on_query_run;
	x->job.done = on_query_done;
	if (workq_submit(srv->rq ? srv->rq : srv->wq, &x->job) != 0) {
		facet_busy(FACET_SEARCH);
		search_reply_err(q, 503, "search busy");
		free(x);
		return;
	}
	srv->nqueries++;
}

static void search_handle(rpc_req *q, uint16_t verb, const uint8_t *p, size_t n, void *arg)
{
	search_svc *srv = arg;

	switch (verb) {
	case SEARCH_INDEX:
		search_do_index(srv, q, p, n);
		break;
	case SEARCH_QUERY:
		search_do_query(srv, q, p, n);
		break;
	case SEARCH_NAME:
		search_do_name(srv, q, p, n);
		break;
	default:   /* PING */
		rpc_server_reply(q, 200, NULL, 0, NULL, 0);
		break;
	}
}

/* ---- the service ---------------------------------------------------------- */

static void on_jobs_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	(void)workq_reap(arg);
}

static int search_open_readers(search_svc *srv, const char *path, uint32_t n)
{
	search_readers *rd = &srv->rd;
	char err[256];

	rd->lock_ok = pthread_mutex_init(&rd->lock, NULL) == 0;
	if (!rd->lock_ok)
		return -1;
	for (rd->n = 0; rd->n < n && rd->n < SEARCH_READERS_MAX; rd->n++) {
		if (!(rd->db[rd->n] = search_db_open_reader(path, err, sizeof err))) {
			log_kv(LOG_LEVEL_ERROR, "search cannot open a reader", "error", err, LOG_END);
			return -1;
		}
		rd->free[rd->nfree++] = rd->db[rd->n];
	}
	return 0;
}

static void search_close_readers(search_readers *rd)
{
	for (size_t i = 0; i < rd->n; i++)
		search_db_close(rd->db[i]);
	if (rd->lock_ok)
		pthread_mutex_destroy(&rd->lock);
}

static int search_open_db(search_svc *srv, const mn_config *cfg)
{
	char dir[CONFIG_PATH_MAX + 16], path[CONFIG_PATH_MAX + 32], err[256];

	if (cfg->amnesia) {
		srv->db = search_db_open(NULL, err, sizeof err);
	} else {
		snprintf(dir, sizeof dir, "%s/search", cfg->data_dir);
		snprintf(path, sizeof path, "%s/index.db", dir);
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			log_kv(LOG_LEVEL_ERROR, "search cannot make its directory", "path", dir, LOG_END);
			return -1;
		}
		srv->db = search_db_open(path, err, sizeof err);
	}
	if (!srv->db) {
		log_kv(LOG_LEVEL_ERROR, "search cannot open its index", "error", err, LOG_END);
		return -1;
	}
	srv->ndocs = search_db_count(srv->db);
	srv->nnames = search_db_count_names(srv->db);
	return cfg->amnesia ? 0 : search_open_readers(srv, path, cfg->search_readers);
}

static void search_free(search_svc *srv)
{
	if (!srv)
		return;
	rpc_server_free(srv->rpc);
	search_sweep_stop(srv->sweep);
	workq_free(srv->rq);   /* a running job finishes; queued ones are dropped */
	workq_free(srv->wq);
	if (srv->rq_ev)
		event_free(srv->rq_ev);
	if (srv->wq_ev)
		event_free(srv->wq_ev);
	search_sweep_free(srv->sweep);
	search_pend_free(srv->head);
	search_close_readers(&srv->rd);
	search_db_close(srv->db);
	free(srv);
}

static void search_on_drained(void *arg);

static int search_start(svc *s)
{
	search_svc *srv = calloc(1, sizeof *srv);

	if (!srv)
		return -1;
	srv->s = s;
	s->priv = srv;
	if (s->listen_fd < 0 || evutil_make_socket_nonblocking(s->listen_fd) != 0) {
		log_kv(LOG_LEVEL_ERROR, "search has no listening socket", LOG_END);
		goto fail;
	}
	/* The database opens before the sandbox, the worker after it
	 * (Landlock binds only the threads made after it). */
	if (search_open_db(srv, &s->cfg) != 0)
		goto fail;
	srv->sweep = search_sweep_new(srv);
	if ((s->cfg.search_sweep_interval_ms && !srv->sweep) || svc_sandbox_enter(s) != 0)
		goto fail;
	/* a slot each for the writer's batch and the sweep's job */
	if (!(srv->wq = workq_new(1, 2 + s->cfg.search_max_queries)) ||
	    !(srv->wq_ev = event_new(s->base, workq_fd(srv->wq), EV_READ | EV_PERSIST, on_jobs_done,
	                             srv->wq)) ||
	    event_add(srv->wq_ev, NULL) != 0)
		goto fail;
	if (srv->rd.n && (!(srv->rq = workq_new((unsigned)srv->rd.n, s->cfg.search_max_queries)) ||
	                  !(srv->rq_ev = event_new(s->base, workq_fd(srv->rq), EV_READ | EV_PERSIST,
	                                           on_jobs_done, srv->rq)) ||
	                  event_add(srv->rq_ev, NULL) != 0))
		goto fail;
	rpc_server_opts so = { .name = "search", .app_proto = SEARCH_APP_PROTO,
	                       .max_conns = SEARCH_MAX_CONNS, .max_pending = SEARCH_CONN_PENDING,
	                       .check = search_msg_req_check, .verb_name = search_msg_verb_name,
	                       .handle = search_handle, .arg = srv,
	                       .drained = search_on_drained };
	if (!(srv->rpc = rpc_server_new(s->base, s->listen_fd, &so)))
		goto fail;
	if (srv->sweep && search_sweep_start(srv->sweep) != 0)
		goto fail;
	srv->m_docs = metrics_get("search_documents", "");
	srv->m_names = metrics_get("search_names", "");
	srv->m_pending = metrics_get("search_queue_depth", "");
	facet_prepare();
	search_gauges(srv);
	log_kv(LOG_LEVEL_INFO, "search serving", "backend", s->cfg.amnesia ? "memory" : "disk", LOG_END);
	return 0;
fail:
	search_free(srv);
	s->priv = NULL;
	return -1;
}

static void search_on_drained(void *arg)
{
	search_svc *srv = arg;

	svc_drained(srv->s);
}

static void search_drain(svc *s)
{
	search_svc *srv = s->priv;

	rpc_server_drain(srv->rpc);
}

static void search_stop(svc *s)
{
	search_free(s->priv);
	s->priv = NULL;
}

const svc_ops search_ops = {
	.role = "search",
	.start = search_start,
	.drain = search_drain,
	.stop = search_stop,
};
