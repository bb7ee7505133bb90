/*
 * audit_recent.c — RECENT: the newest records of the log, newest first, at
 * most AUDIT_RECENT_MAX, optionally of one stream (docs/audit.md "The
 * service"). Reading them is file I/O (the segments, newest first), so it
 * runs on the proof worker thread against a reader copy of the log, sharing
 * its AUDIT_PROOF_JOBS slots (retention waits while either reads), and is
 * rate-limited on its own bucket (AUDIT_RECENT_RATE per second). Refusals
 * and results are counted in audit_recent_total{result}.
 *
 * The answer: {records:[{index, record}], size, omitted, stream, checkpoint}
 * — the stored records, the log's size and the newest checkpoint (object, or
 * null before the first) as the reader copy saw them. It fits
 * AUDIT_REPLY_MAX: records are added newest first while they fit; the rest
 * are left out and counted in "omitted".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/log.h"
#include "lib/util.h"
#include "svc/audit/audit_svc.h"

#define RECENT_BUDGET (AUDIT_REPLY_MAX - 256u)   /* JSON text; room for the blob's frame */

typedef struct recent_job {
	workq_job        job;
	rpc_req         *q;
	audit_log       *reader;
	char             stream[65];
	unsigned         n;
	int              status;
	char            *text;            /* the answer (malloc'd), or NULL */
	char             err[AUDIT_ERR_MAX];
} recent_job;

/* Bytes r->text takes as a JSON string inside the answer, at most. */
static size_t escaped_len(const audit_recent_rec *r)
{
	size_t e = r->len + 2;

	for (size_t i = 0; i < r->len; i++)
		e += r->text[i] == '"' || r->text[i] == '\\' || (unsigned char)r->text[i] < 0x20 ? 5 : 0;
	return e;
}

/* The newest checkpoint of the copy as an object, or JSON null. */
static json_t *checkpoint_json(const audit_log *reader)
{
	const audit_checkpoint *c = audit_log_last_checkpoint(reader);
	char line[AUDIT_CKPT_MAX];
	size_t ln = 0;
	json_t *o;

	if (!c || audit_checkpoint_encode(c, line, sizeof line, &ln) != 0 ||
	    !(o = json_loadb(line, ln, 0, NULL)))
		return json_null();
	return o;
}

static char *recent_json(const recent_job *j, const audit_recent_rec *recs, unsigned count)
{
	json_t *o = json_pack("{s:[], s:I, s:I, s:s?, s:o}", "records",
	                      "size", (json_int_t)audit_log_size(j->reader), "omitted", (json_int_t)0,
	                      "stream", j->stream[0] ? j->stream : NULL,
	                      "checkpoint", checkpoint_json(j->reader));
	json_t *arr = o ? json_object_get(o, "records") : NULL;
	size_t used = 128 + AUDIT_CKPT_MAX + strlen(j->stream);
	unsigned i = 0;
	char *txt = NULL;

	for (; arr && i < count; i++) {
		size_t add = escaped_len(&recs[i]) + 48;   /* {"index":N,"record":...}, */
		if (used + add > RECENT_BUDGET)
			break;
		used += add;
		(void)json_array_append_new(arr, json_pack("{s:I, s:s%}", "index",
		                                           (json_int_t)recs[i].index, "record",
		                                           recs[i].text, recs[i].len));
	}
	if (!o)
		return NULL;
	json_object_set_new(o, "omitted", json_integer((json_int_t)(count - i)));
	txt = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (txt && strlen(txt) > RECENT_BUDGET) {   /* the estimate is an upper bound */
		free(txt);
		txt = NULL;
	}
	return txt;
}

static void recent_run(workq_job *job)
{
	recent_job *j = (recent_job *)job;
	audit_recent_rec recs[AUDIT_RECENT_MAX];
	unsigned count = 0;

	j->status = 500;
	if (audit_log_recent(j->reader, j->stream, j->n, recs, &count, j->err, sizeof j->err) != 0)
		return;
	j->text = recent_json(j, recs, count);
	audit_recent_free(recs, count);
	if (j->text)
		j->status = 200;
	else
		snprintf(j->err, sizeof j->err, "answer does not encode");
}

static void recent_done(workq_job *job, bool ran)
{
	recent_job *j = (recent_job *)job;

	if (!ran)
		auditd_answer_msg(j->q, AUDIT_RECENT, 503, "audit service stopping");
	else if (j->status == 200)
		auditd_answer(j->q, AUDIT_RECENT, 200, j->text, strlen(j->text));
	else
		auditd_answer_msg(j->q, AUDIT_RECENT, j->status, j->err);
	audit_log_free(j->reader);
	free(j->text);
	free(j);
}

void auditd_recent(auditd *a, rpc_req *q, const uint8_t *p, size_t n)
{
	recent_job *j;

	if (!tbucket_take(&a->recent_rate, 1, util_now_ms())) {
		auditd_answer_msg(q, AUDIT_RECENT, 429, "recent-records rate limit reached; retry");
		return;
	}
	if (!a->wq || workq_pending(a->wq) >= AUDIT_PROOF_JOBS || !(j = calloc(1, sizeof *j))) {
		auditd_answer_msg(q, AUDIT_RECENT, 503, "reads busy; retry");
		return;
	}
	j->job.run = recent_run;
	j->job.done = recent_done;
	j->q = q;
	if (audit_msg_recent_decode(p, n, j->stream, &j->n) != 0 ||   /* the check passed it */
	    !(j->reader = audit_log_reader(a->log)) || workq_submit(a->wq, &j->job) != 0) {
		audit_log_free(j->reader);
		free(j);
		auditd_answer_msg(q, AUDIT_RECENT, 503, "reads busy; retry");
	}
}
