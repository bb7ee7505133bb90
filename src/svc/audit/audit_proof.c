/*
 * audit_proof.c — PROOF: an inclusion proof of one record in the newest
 * checkpoint's tree (docs/audit.md "The service"). Finding the record and
 * proving it read every segment (O(n) I/O), so it runs on one worker thread
 * (lib/workq.h) against a reader copy of the log (audit_log_reader: it shares
 * nothing with the log the loop goes on writing). Bounded: AUDIT_PROOF_JOBS
 * at once and AUDIT_PROOF_RATE per second; beyond either 503, counted in
 * audit_proofs_total{result="busy"|"limited"}.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/b3.h"
#include "lib/log.h"
#include "lib/util.h"
#include "svc/audit/audit_svc.h"

typedef struct proof_job {
	workq_job        job;
	auditd          *a;
	rpc_req         *q;
	audit_log       *reader;
	audit_checkpoint ckpt;
	char             stream[65];
	uint64_t         seq;
	int              status;
	char            *text;            /* the answer (malloc'd), or NULL */
	char             err[AUDIT_ERR_MAX];
} proof_job;

static const char *proof_result(int status)
{
	switch (status) {
	case 200: return "ok";
	case 404: return "not_found";
	case 409: return "not_checkpointed";
	case 429: return "limited";
	case 503: return "busy";
	default:  return "error";
	}
}

void auditd_answer(rpc_req *q, uint16_t verb, int status, const char *text, size_t len)
{
	uint8_t *buf = malloc(AUDIT_REPLY_MAX + 16);
	ssize_t n = -1;
	char labels[48];

	if (verb == AUDIT_PROOF || verb == AUDIT_RECENT) {
		snprintf(labels, sizeof labels, "result=\"%s\"", proof_result(status));
		metrics_count(verb == AUDIT_PROOF ? "audit_proofs_total" : "audit_recent_total",
		              labels, 1);
	}
	if (status == 429)
		status = 503;   /* the client's contract: 503 means busy or limited */
	if (buf)
		n = audit_msg_rep_encode(verb, (uint16_t)status, text, len, buf, AUDIT_REPLY_MAX + 16);
	if (n < 0) {
		static const char why[] = "answer does not fit";
		n = buf ? audit_msg_rep_encode(verb, 500, why, sizeof why - 1, buf,
		                               AUDIT_REPLY_MAX + 16) : -1;
	}
	rpc_server_reply(q, n < 0 ? 500 : (uint16_t)status, buf, n > 0 ? (size_t)n : 0, NULL, 0);
	free(buf);
}

void auditd_answer_msg(rpc_req *q, uint16_t verb, int status, const char *msg)
{
	auditd_answer(q, verb, status, msg, strlen(msg));
}

/* The answer's JSON: the record (its stored bytes, what the leaf hashes),
 * where it is, the audit path bottom first, and the checkpoint it is
 * proven in (its line and parsed). */
static char *proof_json(const proof_job *j, const char *rec, size_t rn, uint64_t index,
                        const audit_proof *p, const uint8_t leaf[B3_OUT_LEN])
{
	char line[AUDIT_CKPT_MAX + 1], hex[B3_CID_LEN + 1];
	size_t ln = 0;
	json_t *o, *path;
	char *txt = NULL;

	if (audit_checkpoint_encode(&j->ckpt, line, sizeof line - 1, &ln) != 0)
		return NULL;
	line[ln] = '\0';
	b3_cid_format(leaf, hex);
	o = json_pack("{s:s, s:I, s:I, s:s%, s:s, s:[], s:I, s:s, s:o}",
	              "stream", j->stream, "seq", (json_int_t)j->seq, "index", (json_int_t)index,
	              "record", rec, rn, "leaf", hex, "path", "tree_size", (json_int_t)p->size,
	              "checkpoint_line", line, "checkpoint", json_loads(line, 0, NULL));
	path = o ? json_object_get(o, "path") : NULL;
	for (unsigned i = 0; path && i < p->len; i++) {
		b3_cid_format(p->path[i], hex);
		(void)json_array_append_new(path, json_string(hex));
	}
	if (o)
		txt = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return txt;
}

static void proof_run(workq_job *job)
{
	proof_job *j = (proof_job *)job;
	audit_proof *p = malloc(sizeof *p);
	char *rec = malloc(AUDIT_RECORD_MAX + 1);
	uint8_t leaf[B3_OUT_LEN];
	uint64_t index = 0;
	size_t rn = 0;

	j->status = 500;
	if (!p || !rec) {
		snprintf(j->err, sizeof j->err, "out of memory");
	} else if (audit_log_get(j->reader, j->stream, j->seq, &index, rec, AUDIT_RECORD_MAX + 1,
	                         &rn, j->err, sizeof j->err) != 0) {
		j->status = 404;
	} else if (index >= j->ckpt.size) {
		j->status = 409;
		snprintf(j->err, sizeof j->err, "record %" PRIu64 " is not covered by the newest "
		         "checkpoint (size %" PRIu64 ") yet", index, j->ckpt.size);
	} else if (audit_log_prove(j->reader, index, j->ckpt.size, p, leaf, j->err,
	                           sizeof j->err) == 0) {
		j->text = proof_json(j, rec, rn, index, p, leaf);
		j->status = j->text ? 200 : 500;
	}
	free(p);
	free(rec);
}

static void proof_done(workq_job *job, bool ran)
{
	proof_job *j = (proof_job *)job;

	if (!ran)
		auditd_answer_msg(j->q, AUDIT_PROOF, 503, "audit service stopping");
	else if (j->status == 200)
		auditd_answer(j->q, AUDIT_PROOF, 200, j->text, strlen(j->text));
	else
		auditd_answer_msg(j->q, AUDIT_PROOF, j->status, j->err);
	audit_log_free(j->reader);
	free(j->text);
	free(j);
}

void auditd_proof(auditd *a, rpc_req *q, const uint8_t *p, size_t n)
{
	const audit_checkpoint *c = audit_log_last_checkpoint(a->log);
	proof_job *j;

	if (!tbucket_take(&a->proof_rate, 1, util_now_ms())) {
		auditd_answer_msg(q, AUDIT_PROOF, 429, "proof rate limit reached; retry");
		return;
	}
	if (!c) {
		auditd_answer_msg(q, AUDIT_PROOF, 409, "no checkpoint yet");
		return;
	}
	if (!a->wq || workq_pending(a->wq) >= AUDIT_PROOF_JOBS || !(j = calloc(1, sizeof *j))) {
		auditd_answer_msg(q, AUDIT_PROOF, 503, "proofs busy; retry");
		return;
	}
	j->job.run = proof_run;
	j->job.done = proof_done;
	j->a = a;
	j->q = q;
	j->ckpt = *c;
	if (audit_msg_proof_decode(p, n, j->stream, &j->seq) != 0 ||   /* the check passed it */
	    !(j->reader = audit_log_reader(a->log)) || workq_submit(a->wq, &j->job) != 0) {
		audit_log_free(j->reader);
		free(j);
		auditd_answer_msg(q, AUDIT_PROOF, 503, "proofs busy; retry");
	}
}

void auditd_proof_reap(auditd *a)
{
	(void)workq_reap(a->wq);
}
