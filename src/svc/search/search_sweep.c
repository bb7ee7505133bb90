/*
 * search_sweep.c — the search service's catch-up from storage
 * (docs/search.md "Catch-up from the store"). The gateway tells the service of each PUT
 * it takes; objects that reach the store another way (OAP/1 through
 * omnigate, replicated; not cache copies, which LIST leaves out), that
 * were stored while the service was down or not configured, or whose
 * notice was dropped (a full queue) are found here: once at start and
 * every search.sweep_interval
 * the sweep walks the store's ids (STOR_LIST, a page of STOR_LIST_MAX at a
 * time), asks the index which of them it lacks, and for each of those:
 *
 *   META_GET  its length and recorded type (none, for an object that did
 *             not come through the gateway's PUT);
 *   OPEN      when it needs bytes: a text type (its text is indexed) or
 *             no type at all (it is sniffed with libmagic, as a PUT is);
 *   a job     on the writer's thread reads the head (search.max_text, or
 *             MEDIATYPE_SNIFF_MAX to sniff), checks every 64 KiB group it
 *             read against the object's id (lib/b3tree.h: the same check
 *             as serving), sniffs, and hands back a document;
 *
 * and the document joins the service's queue like an INDEX message. Then,
 * when the node runs the index service, the names it holds (INDEX_LIST,
 * 64 at a time): a name the search index lacks at its seq joins the queue
 * like a NAME message. One object or page at a time, one call or one job
 * in flight; the walk waits
 * while the queue is half full, so a sweep never crowds out the gateway's
 * notices for long and never grows the queue past search.queue. Nothing
 * here writes to the store: the sniffed type is only indexed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/dht/index_client.h"
#include "core/objects/mediatype.h"
#include "core/objects/objstore.h"
#include "core/objects/stor_client.h"
#include "lib/b3tree.h"
#include "lib/log.h"
#include "svc/search/search_int.h"

#define SWEEP_PAUSE_MS     100u        /* the queue half full: look again */
#define SWEEP_RETRY_MIN_MS 1000u       /* a walk failed: first retry, doubling */
/* The outboard read to check a head: 1 MiB covers objects up to 2 GiB.
 * The text of a larger object is not indexed (its type and size are). */
#define SWEEP_OUTBOARD_MAX (1024u * 1024u)
/* An object without a recorded type, or with one a /media read sniffed,
 * whose blob is younger than this (or than search.sweep_interval, if
 * shorter, but at least SWEEP_SETTLE_MIN_S) is left for the next walk: it
 * may be an upload between its commit and the type the gateway records next,
 * and the gateway's notice, with the uploader's type, should be the one
 * indexed (a document is indexed once: the first to arrive stays). */
#define SWEEP_SETTLE_S     60u
#define SWEEP_SETTLE_MIN_S 1u

typedef enum { SWEEP_JOB_CHECK, SWEEP_JOB_READ, SWEEP_JOB_NAMES } sweep_job_kind;

typedef enum {
	SWEEP_READ_OK,
	SWEEP_READ_UNVERIFIED,   /* a group did not match the id */
	SWEEP_READ_ERROR,        /* a read, fstat or memory */
	SWEEP_READ_YOUNG,        /* untyped and just written: the next walk */
} sweep_read_rc;

/* The one job in the writer's pool, if any. CHECK: which ids of the page
 * the index lacks (the writer's connection, on the writer's thread);
 * NAMES: the same for a page of names.
 * READ: the head of one object from its blob (fds owned by the job). */
typedef struct sweep_job {
	workq_job      job;
	search_sweep  *sw;
	sweep_job_kind kind;
	int            rc;           /* CHECK: search_db_missing's */
	/* READ: in */
	int            fds[2];       /* blob, outboard */
	uint8_t        id[32];
	uint64_t       len;
	size_t         want_text;    /* bytes of text to index: 0 unless a text type */
	bool           sniff;        /* no recorded type: sniff one */
	bool           settle;       /* none, or a read's: a young blob waits */
	uint64_t       settle_s;     /* how young */
	/* READ: out */
	sweep_read_rc  read_rc;
	char           ctype[MEDIATYPE_MAX];
	uint8_t       *text;         /* malloc'd; the document takes it */
	size_t         text_len;
} sweep_job;

struct search_sweep {
	search_svc   *srv;
	stor_client  *stor;
	mediatype_sniffer *sniffer;  /* the writer's thread only (a READ job) */
	struct event *timer;         /* the next walk, a retry, or a pause */
	uint64_t      interval_ms;
	uint64_t      retry_ms;      /* the next retry after a failed walk */
	bool          walking;
	bool          stopping;
	bool          job_busy;      /* sj is in the pool */
	/* A callback is owed: a stor or index call in flight. Its handle may
	 * be NULL (a call that could not be queued still answers, 503, from
	 * the loop), so this flag, not the handle, says a call is out. */
	bool          awaiting;
	stor_call    *call;          /* the stor call's handle, or NULL */
	index_client *index;         /* NULL: the node runs no index service */
	index_call   *icall;         /* the LIST's handle, or NULL */
	sweep_job     sj;
	/* the walk */
	bool          has_after;
	uint8_t       after[32];
	uint8_t       ids[STOR_LIST_MAX][32];
	bool          missing[STOR_LIST_MAX];
	size_t        nids, next;
	bool          more;
	/* the walk over names */
	bool          names_phase;
	index_list_cursor ncur;
	search_name   names[INDEX_LIST_MAX];
	bool          nmissing[INDEX_LIST_MAX];
	size_t        nnames, nnext;
	bool          nmore;
	/* the object in hand */
	uint8_t       id[32];
	uint64_t      len;
	char          ctype[MEDIATYPE_MAX];
	bool          ctype_by_read; /* sniffed on a /media read: an upload's may follow */
};

static void sweep_page(search_sweep *sw);
static void sweep_object_next(search_sweep *sw);
static void sweep_names_page(search_sweep *sw);
static void sweep_names_next(search_sweep *sw);

static void sweep_count(const char *family, const char *result)
{
	char l[40];

	snprintf(l, sizeof l, "result=\"%s\"", result);
	metrics_count(family, l, 1);
}

/* A call goes out: its callback is owed (one at a time). */
static void sweep_call(search_sweep *sw)
{
	if (sw->awaiting || sw->job_busy)
		(void)BUG("search sweep: a second call or job in flight");
	sw->awaiting = true;
}

static void sweep_arm(search_sweep *sw, uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000u), .tv_usec = (suseconds_t)(ms % 1000u) * 1000 };

	if (!sw->stopping)
		evtimer_add(sw->timer, &tv);
}

/* The walk is over: the next one after the interval, or after a retry
 * delay that doubles with each failed walk (up to the interval). */
static void sweep_end(search_sweep *sw, bool ok)
{
	sw->walking = false;
	sweep_count("search_sweeps_total", ok ? "done" : "failed");
	if (ok) {
		sw->retry_ms = SWEEP_RETRY_MIN_MS;
		sweep_arm(sw, sw->interval_ms);
		return;
	}
	sweep_arm(sw, sw->retry_ms < sw->interval_ms ? sw->retry_ms : sw->interval_ms);
	if (sw->retry_ms < sw->interval_ms)
		sw->retry_ms *= 2;
}

static void sweep_close_fds(int fds[2])
{
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/* ---- the read job (the writer's thread) ---------------------------------------- */

static int sweep_pread_all(int fd, uint8_t *buf, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* The groups holding the first head bytes of the blob, read and checked
 * against the id. *buf: the bytes read (whole groups, malloc'd). */
static sweep_read_rc sweep_read_head(sweep_job *j, size_t head, uint8_t **buf, size_t *nbuf)
{
	size_t groups = (head - 1) / B3TREE_GROUP_LEN + 1;
	size_t n = groups * (size_t)B3TREE_GROUP_LEN < j->len ? groups * (size_t)B3TREE_GROUP_LEN :
	           (size_t)j->len;
	size_t olen = b3tree_outboard_len(j->len);
	uint8_t *ob = NULL;
	sweep_read_rc rc = SWEEP_READ_ERROR;

	*buf = malloc(n);
	*nbuf = n;
	if (!*buf || sweep_pread_all(j->fds[0], *buf, n, 0) != 0)
		return SWEEP_READ_ERROR;
	if (b3tree_groups(j->len) > 1) {
		if (!(ob = malloc(olen)) || sweep_pread_all(j->fds[1], ob, olen, 0) != 0)
			goto out;
		if (!b3tree_outboard_ok(ob, j->len, j->id)) {
			rc = SWEEP_READ_UNVERIFIED;
			goto out;
		}
	}
	rc = SWEEP_READ_OK;
	for (size_t g = 0; g < groups && rc == SWEEP_READ_OK; g++) {
		int64_t glen = b3tree_group_len(j->len, g);

		if (glen < 0 || !b3tree_group_ok(*buf + g * B3TREE_GROUP_LEN, (size_t)glen, g, j->len,
		                                 ob, j->id))
			rc = SWEEP_READ_UNVERIFIED;
	}
out:
	free(ob);
	return rc;
}

static void sweep_read(sweep_job *j)
{
	struct stat st;
	size_t head = j->want_text, nbuf = 0;
	uint8_t *buf = NULL;

	j->text = NULL;
	j->text_len = 0;
	if (j->sniff && head < MEDIATYPE_SNIFF_MAX)
		head = MEDIATYPE_SNIFF_MAX;
	if (head > j->len)
		head = (size_t)j->len;
	/* the length is the blob's own (b3tree.h); a too large outboard: no text */
	if (fstat(j->fds[0], &st) != 0 || (uint64_t)st.st_size != j->len) {
		j->read_rc = SWEEP_READ_ERROR;
		return;
	}
	if (j->settle && (uint64_t)time(NULL) < (uint64_t)st.st_mtime + j->settle_s) {
		j->read_rc = SWEEP_READ_YOUNG;
		return;
	}
	if (b3tree_outboard_len(j->len) > SWEEP_OUTBOARD_MAX)
		head = 0;
	j->read_rc = head ? sweep_read_head(j, head, &buf, &nbuf) : SWEEP_READ_OK;
	if (j->read_rc != SWEEP_READ_OK) {
		free(buf);
		return;
	}
	if (j->sniff && (!buf || mediatype_sniff(j->sw->sniffer, buf,
	                                         nbuf < MEDIATYPE_SNIFF_MAX ? nbuf : MEDIATYPE_SNIFF_MAX,
	                                         j->ctype) != 0))
		snprintf(j->ctype, sizeof j->ctype, "%s", MEDIATYPE_DEFAULT);
	if (buf && mediatype_is_text(j->ctype) && j->want_text) {
		j->text = buf;
		j->text_len = j->want_text < nbuf ? j->want_text : nbuf;
		return;
	}
	free(buf);
}

static void on_job_run(workq_job *job)
{
	sweep_job *j = (sweep_job *)job;
	search_sweep *sw = j->sw;

	if (j->kind == SWEEP_JOB_CHECK)
		j->rc = search_db_missing(sw->srv->db, (const uint8_t (*)[32])sw->ids, sw->nids,
		                          sw->missing);
	else if (j->kind == SWEEP_JOB_NAMES)
		j->rc = search_db_names_missing(sw->srv->db, sw->names, sw->nnames, sw->nmissing);
	else
		sweep_read(j);
}

/* ---- the walk (the event loop) -------------------------------------------------- */

/* The object in hand, as a document, into the queue; it takes text
 * (malloc'd, or NULL). */
static void sweep_queue_doc(search_sweep *sw, const char *ctype, uint8_t *text, size_t text_len)
{
	search_pend *e = calloc(1, sizeof *e);

	if (!e) {
		free(text);
		sweep_count("search_sweep_objects_total", "error");
		return;
	}
	memcpy(e->d.id, sw->id, 32);
	e->d.size = sw->len;
	snprintf(e->d.ctype, sizeof e->d.ctype, "%s", ctype);
	e->d.text = text;
	e->d.text_len = text_len;
	sweep_count("search_sweep_objects_total", "queued");
	search_pend_enqueue(sw->srv, e);
}

/* A stor call about the object in hand failed: count it, go on. */
static void sweep_object_failed(search_sweep *sw, int status)
{
	sweep_count("search_sweep_objects_total", status == 404 ? "gone" : "error");
	sweep_object_next(sw);
}

static void on_job_done(workq_job *job, bool ran)
{
	sweep_job *j = (sweep_job *)job;
	search_sweep *sw = j->sw;

	sw->job_busy = false;
	sweep_close_fds(j->fds);
	if (sw->stopping || !ran) {
		free(j->text);
		j->text = NULL;
		return;
	}
	if (j->kind != SWEEP_JOB_READ && j->rc != 0) {
		log_kv(LOG_LEVEL_ERROR, "search sweep cannot read its index", LOG_END);
		sweep_end(sw, false);
		return;
	}
	if (j->kind == SWEEP_JOB_NAMES) {
		sw->nnext = 0;
		sweep_names_next(sw);
		return;
	}
	if (j->kind == SWEEP_JOB_CHECK) {
		sw->next = 0;
	} else if (j->read_rc == SWEEP_READ_OK) {
		sweep_queue_doc(sw, j->ctype, j->text, j->text_len);
		j->text = NULL;
	} else if (j->read_rc == SWEEP_READ_YOUNG) {
		sweep_count("search_sweep_objects_total", "young");
	} else {
		char cid[B3_CID_LEN + 1];

		b3_cid_format(sw->id, cid);
		sweep_count("search_sweep_objects_total",
		            j->read_rc == SWEEP_READ_UNVERIFIED ? "unverified" : "error");
		log_kv(LOG_LEVEL_WARN, j->read_rc == SWEEP_READ_UNVERIFIED ?
		       "search sweep: stored bytes do not match their id; not indexed" :
		       "search sweep cannot read an object", "cid", cid, LOG_END);
	}
	sweep_object_next(sw);
}

static void sweep_submit(search_sweep *sw)
{
	sw->sj.job.run = on_job_run;
	sw->sj.job.done = on_job_done;
	sw->sj.sw = sw;
	if (workq_submit(sw->srv->wq, &sw->sj.job) != 0) {   /* a slot is kept for it */
		sweep_close_fds(sw->sj.fds);
		if (!sw->stopping)
			(void)BUG("search sweep job refused by its worker pool");
		sweep_end(sw, false);
		return;
	}
	sw->job_busy = true;
}

/* Every stor callback's start: the call is back. false: the sweep is
 * stopping (fds that came with the answer are closed). */
static bool sweep_answered(search_sweep *sw, const stor_result *res)
{
	sw->awaiting = false;
	sw->call = NULL;
	if (!sw->stopping)
		return true;
	if (res->status == 200)
		for (int i = 0; i < 2; i++)
			if (res->fds[i] >= 0)
				close(res->fds[i]);
	return false;
}

static void on_open(const stor_result *res, void *arg)
{
	search_sweep *sw = arg;
	sweep_job *j = &sw->sj;

	if (!sweep_answered(sw, res))
		return;
	if (res->status != 200) {
		sweep_object_failed(sw, res->status);
		return;
	}
	memset(j, 0, sizeof *j);
	j->kind = SWEEP_JOB_READ;
	j->fds[0] = res->fds[0];
	j->fds[1] = res->fds[1];
	memcpy(j->id, sw->id, 32);
	j->len = sw->len;
	j->sniff = sw->ctype[0] == '\0';
	j->settle = j->sniff || sw->ctype_by_read;
	j->settle_s = sw->interval_ms / 1000u < SWEEP_SETTLE_S ? sw->interval_ms / 1000u :
	              SWEEP_SETTLE_S;
	if (j->settle_s < SWEEP_SETTLE_MIN_S)
		j->settle_s = SWEEP_SETTLE_MIN_S;
	snprintf(j->ctype, sizeof j->ctype, "%s", sw->ctype);
	j->want_text = (size_t)sw->srv->s->cfg.search_max_text;
	if (j->want_text > SEARCH_TEXT_MAX)
		j->want_text = SEARCH_TEXT_MAX;
	if (!j->sniff && !mediatype_is_text(sw->ctype))
		j->want_text = 0;
	sweep_submit(sw);
}

static void on_meta(const stor_result *res, void *arg)
{
	search_sweep *sw = arg;

	if (!sweep_answered(sw, res))
		return;
	if (res->status != 200) {
		sweep_object_failed(sw, res->status);
		return;
	}
	sw->len = res->len;
	snprintf(sw->ctype, sizeof sw->ctype, "%s", res->ctype ? res->ctype : "");
	sw->ctype_by_read = res->ctype_by_read;
	if (sw->ctype[0] && !sw->ctype_by_read && !mediatype_is_text(sw->ctype)) {
		/* an upload's type, not text: no bytes needed */
		sweep_queue_doc(sw, sw->ctype, NULL, 0);
		sweep_object_next(sw);
		return;
	}
	sweep_call(sw);
	sw->call = stor_open(sw->stor, sw->id, on_open, sw);   /* NULL: on_open gets 503 */
}

/* The objects are walked: the names next, when the node has an index. */
static void sweep_objects_done(search_sweep *sw)
{
	if (!sw->index) {
		sweep_end(sw, true);
		return;
	}
	sw->names_phase = true;
	memset(&sw->ncur, 0, sizeof sw->ncur);
	sweep_names_page(sw);
}

/* The queue half full: look again in a moment (the writer catches up). */
static bool sweep_queue_busy(search_sweep *sw)
{
	search_svc *srv = sw->srv;

	if (srv->npend > 0 && srv->npend * 2 >= srv->s->cfg.search_queue) {
		sweep_arm(sw, SWEEP_PAUSE_MS);
		return true;
	}
	return false;
}

/* The next object of the page the index lacks; then the next page. */
static void sweep_object_next(search_sweep *sw)
{
	if (sw->stopping)
		return;
	if (sweep_queue_busy(sw))
		return;
	while (sw->next < sw->nids && !sw->missing[sw->next])
		sw->next++;
	if (sw->next == sw->nids) {
		if (sw->more)
			sweep_page(sw);
		else
			sweep_objects_done(sw);
		return;
	}
	memcpy(sw->id, sw->ids[sw->next++], 32);
	sweep_call(sw);
	sw->call = stor_meta_get(sw->stor, sw->id, on_meta, sw);   /* NULL: on_meta gets 503 */
}

static void on_list(const stor_result *res, void *arg)
{
	search_sweep *sw = arg;

	if (!sweep_answered(sw, res))
		return;
	if (res->status != 200 || res->nids > STOR_LIST_MAX) {
		sweep_end(sw, false);
		return;
	}
	memcpy(sw->ids, res->ids, res->nids * 32);
	sw->nids = res->nids;
	sw->next = 0;
	sw->more = res->more && res->nids > 0;
	if (res->nids) {
		memcpy(sw->after, res->ids[res->nids - 1], 32);
		sw->has_after = true;
	}
	memset(&sw->sj, 0, sizeof sw->sj);
	sw->sj.kind = SWEEP_JOB_CHECK;
	sw->sj.fds[0] = sw->sj.fds[1] = -1;
	if (res->nids == 0)
		sweep_objects_done(sw);
	else
		sweep_submit(sw);
}

static void sweep_page(search_sweep *sw)
{
	sweep_call(sw);
	sw->call = stor_list(sw->stor, sw->has_after ? sw->after : NULL, STOR_LIST_MAX, on_list,
	                     sw);   /* NULL: on_list gets 503 */
}

/* ---- the names ------------------------------------------------------------------ */

/* The names of the page the index lacks, into the queue; then the next page. */
static void sweep_names_next(search_sweep *sw)
{
	if (sw->stopping)
		return;
	for (; sw->nnext < sw->nnames; sw->nnext++) {
		search_pend *e;

		if (!sw->nmissing[sw->nnext])
			continue;
		if (sweep_queue_busy(sw))
			return;
		if (!(e = calloc(1, sizeof *e))) {
			metrics_count("search_sweep_names_total", "result=\"error\"", 1);
			continue;
		}
		e->is_name = true;
		e->nm = sw->names[sw->nnext];
		metrics_count("search_sweep_names_total", "result=\"queued\"", 1);
		search_pend_enqueue(sw->srv, e);
	}
	if (sw->nmore)
		sweep_names_page(sw);
	else
		sweep_end(sw, true);
}

static void on_names(const index_result *res, void *arg)
{
	search_sweep *sw = arg;
	size_t n = res->nrecs < INDEX_LIST_MAX ? res->nrecs : INDEX_LIST_MAX;

	sw->awaiting = false;
	sw->icall = NULL;
	if (sw->stopping)
		return;
	if (res->status != 200 || !res->next) {
		sweep_end(sw, false);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		memset(&sw->names[i], 0, sizeof sw->names[i]);
		snprintf(sw->names[i].name, sizeof sw->names[i].name, "%s", res->recs[i].name);
		memcpy(sw->names[i].id, res->recs[i].cid, 32);
		sw->names[i].seq = res->recs[i].seq;
	}
	sw->nnames = n;
	sw->nnext = 0;
	sw->ncur = *res->next;
	sw->nmore = res->more && n > 0;
	if (n == 0) {
		sweep_end(sw, true);
		return;
	}
	memset(&sw->sj, 0, sizeof sw->sj);
	sw->sj.kind = SWEEP_JOB_NAMES;
	sw->sj.fds[0] = sw->sj.fds[1] = -1;
	sweep_submit(sw);
}

static void sweep_names_page(search_sweep *sw)
{
	sweep_call(sw);
	sw->icall = index_list(sw->index, &sw->ncur, on_names, sw);   /* NULL: on_names gets 503 */
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	search_sweep *sw = arg;

	(void)fd; (void)what;
	if (sw->stopping || sw->awaiting || sw->job_busy)
		return;
	if (sw->walking) {   /* a pause: go on where the walk was */
		if (sw->names_phase)
			sweep_names_next(sw);
		else
			sweep_object_next(sw);
		return;
	}
	sw->walking = true;
	sw->names_phase = false;
	sw->has_after = false;
	sw->nids = sw->next = 0;
	sweep_page(sw);
}

/* ---- life ------------------------------------------------------------------------ */

search_sweep *search_sweep_new(search_svc *srv)
{
	search_sweep *sw;

	if (srv->s->cfg.search_sweep_interval_ms == 0)
		return NULL;
	if (!(sw = calloc(1, sizeof *sw)))
		return NULL;
	sw->srv = srv;
	sw->sj.fds[0] = sw->sj.fds[1] = -1;
	sw->interval_ms = srv->s->cfg.search_sweep_interval_ms;
	sw->retry_ms = SWEEP_RETRY_MIN_MS;
	/* NULL is fine: untyped objects are then indexed as MEDIATYPE_DEFAULT */
	sw->sniffer = mediatype_sniffer_new();
	return sw;
}

int search_sweep_start(search_sweep *sw)
{
	search_svc *srv = sw->srv;

	if (!(sw->stor = objstore_client_new(srv->s->base, &srv->s->cfg)) ||
	    !(sw->timer = evtimer_new(srv->s->base, on_timer, sw)))
		return -1;
	if ((srv->s->cfg.services & CONFIG_SVC_INDEX) &&
	    !(sw->index = index_client_for(srv->s->base, &srv->s->cfg)))
		return -1;
	sweep_arm(sw, 0);   /* the first walk at once (storage may still be starting: retried) */
	return 0;
}

void search_sweep_stop(search_sweep *sw)
{
	if (!sw)
		return;
	sw->stopping = true;
	if (sw->call)
		stor_call_cancel(sw->call);
	sw->call = NULL;
	if (sw->icall)
		index_call_cancel(sw->icall);
	sw->icall = NULL;
	if (sw->timer)
		evtimer_del(sw->timer);
}

void search_sweep_free(search_sweep *sw)
{
	if (!sw)
		return;
	search_sweep_stop(sw);
	sweep_close_fds(sw->sj.fds);
	if (sw->timer)
		event_free(sw->timer);
	stor_client_free(sw->stor);
	index_client_free(sw->index);
	mediatype_sniffer_free(sw->sniffer);
	free(sw);
}
