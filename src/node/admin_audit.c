/*
 * admin_audit.c — the audit log on the admin plane (docs/audit.md "The
 * service"):
 *   GET /api/v1/audit/checkpoint              the newest signed checkpoint
 *   GET /api/v1/audit/proof?stream=S&seq=N    record, leaf, audit path and the
 *                                             checkpoint it is proven in
 *   GET /api/v1/audit/recent?n=N&stream=S     the newest N (1..20, default 10)
 *                                             records, newest first (stream
 *                                             optional: every stream)
 * Read-only, like /api/v1/status. Asked of the audit service over its socket
 * with the supervisor's audit client, asynchronously (admin_find.c's
 * pattern); the service computes proofs off its loop and bounds them (503
 * busy or rate-limited; the newest records are read the same way). A bad
 * query: 400 bad_query naming the parameter, rejected_total{reason=
 * "bad_request"} (recent). Here at most ADMIN_AUDIT_MAX queries wait at once
 * (more: 503, rejected_total{reason="503"}). Without the audit service: 404
 * audit_disabled; with it down: 503 audit_unavailable.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit/audit_client.h"
#include "core/audit/audit_record.h"
#include "core/metrics/reject.h"
#include "core/net/http.h"
#include "node/node.h"

#define ADMIN_AUDIT_MAX   8u
#define ADMIN_AUDIT_QUERY 256u   /* bytes of a query string worth reading */

typedef struct admin_aq {
	supervisor *s;
	http_req   *r;
	audit_call *call;
} admin_aq;

static void aq_end(admin_aq *q)
{
	q->s->admin_audits--;
	free(q);
}

static void on_answer(int status, const char *text, size_t len, void *arg)
{
	admin_aq *q = arg;
	char *body;

	q->call = NULL;
	if (!q->r) {
		aq_end(q);
		return;
	}
	body = malloc(len + 1);
	if (body) {
		memcpy(body, text ? text : "", len);
		body[len] = '\0';
	}
	if (!body)
		(void)http_reply_error(q->r, 500, "internal", "out of memory", true, 0);
	else if (status == 200)
		(void)http_reply_json(q->r, 200, body);
	else if (status == 404)
		(void)http_reply_error(q->r, 404, "not_found", body, false, 0);
	else if (status == 409)
		(void)http_reply_error(q->r, 409, "not_checkpointed", body, true, 0);
	else if (status == 503 || status == 504)
		(void)http_reply_error(q->r, 503, "audit_unavailable", body, true, 1);
	else
		(void)http_reply_error(q->r, 502, "audit_error", body, true, 0);
	free(body);
	aq_end(q);
}

static void on_gone(http_req *r, void *arg)
{
	admin_aq *q = arg;

	(void)r;
	q->r = NULL;
	if (!q->call)
		return;                     /* no handle: on_answer ends it */
	audit_call_cancel(q->call);
	aq_end(q);
}

/* A query can go to the service: 0, or -1 answered. */
static int aq_admit(supervisor *s, http_req *r)
{
	if (!(s->cfg.services & CONFIG_SVC_AUDIT) || !s->audit) {
		(void)http_reply_error(r, 404, "audit_disabled",
		                       "the audit service is not running (`services` does not list audit)",
		                       false, 0);
		return -1;
	}
	if (s->admin_audits >= ADMIN_AUDIT_MAX) {
		reject_count(REJECT_FAMILY_NODE, REJECT_503);
		(void)http_reply_error(r, 503, "overloaded", "too many audit queries at once", true, 1);
		return -1;
	}
	return 0;
}

static admin_aq *aq_new(supervisor *s, http_req *r)
{
	admin_aq *q = calloc(1, sizeof *q);

	if (!q) {
		(void)http_reply_error(r, 500, "internal", "out of memory", true, 0);
		return NULL;
	}
	q->s = s;
	q->r = r;
	s->admin_audits++;
	http_req_on_close(r, on_gone, q);
	return q;
}

void admin_on_audit_checkpoint(http_req *r, void *arg)
{
	supervisor *s = arg;
	admin_aq *q;

	if (aq_admit(s, r) != 0 || !(q = aq_new(s, r)))
		return;
	q->call = audit_get_checkpoint(s->audit, on_answer, q);
	/* NULL: no memory for the call; on_answer still runs (503) and ends it. */
}

/* "stream=S&seq=N" (either order, nothing else): 0, or -1. */
static int proof_query(const char *qs, char stream[AUDIT_STREAM_MAX + 1], uint64_t *seq)
{
	char buf[ADMIN_AUDIT_QUERY], *save = NULL, *kv;
	bool have_stream = false, have_seq = false;

	if (strlen(qs) >= sizeof buf)
		return -1;
	snprintf(buf, sizeof buf, "%s", qs);
	for (kv = strtok_r(buf, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
		char *v = strchr(kv, '=');
		if (!v)
			return -1;
		*v++ = '\0';
		if (strcmp(kv, "stream") == 0 && !have_stream && audit_stream_is_valid(v, strlen(v))) {
			snprintf(stream, AUDIT_STREAM_MAX + 1, "%s", v);
			have_stream = true;
		} else if (strcmp(kv, "seq") == 0 && !have_seq && v[0] && strlen(v) <= 19 &&
		           strspn(v, "0123456789") == strlen(v)) {
			*seq = strtoull(v, NULL, 10);
			have_seq = true;
		} else {
			return -1;
		}
	}
	return have_stream && have_seq ? 0 : -1;
}

void admin_on_audit_proof(http_req *r, void *arg)
{
	supervisor *s = arg;
	char stream[AUDIT_STREAM_MAX + 1];
	uint64_t seq = 0;
	admin_aq *q;

	if (proof_query(http_req_query(r), stream, &seq) != 0) {
		(void)http_reply_error(r, 400, "bad_query",
		                       "expected ?stream=<name>&seq=<number> (stream: [A-Za-z0-9._:@-], "
		                       "1..64 bytes)", false, 0);
		return;
	}
	if (aq_admit(s, r) != 0 || !(q = aq_new(s, r)))
		return;
	q->call = audit_get_proof(s->audit, stream, seq, on_answer, q);
}

#define RECENT_DEFAULT 10u

/* "n=N&stream=S" (either, either order, each once). 0, or -1 with the
 * offending parameter's complaint in why. */
static int recent_query(const char *qs, char stream[AUDIT_STREAM_MAX + 1], unsigned *n,
                        char *why, size_t whylen)
{
	char buf[ADMIN_AUDIT_QUERY], *save = NULL, *kv;
	bool have_stream = false, have_n = false;

	*n = RECENT_DEFAULT;
	stream[0] = '\0';
	if (strlen(qs) >= sizeof buf) {
		snprintf(why, whylen, "query longer than %u bytes", ADMIN_AUDIT_QUERY - 1);
		return -1;
	}
	snprintf(buf, sizeof buf, "%s", qs);
	for (kv = strtok_r(buf, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
		char *v = strchr(kv, '=');
		if (v)
			*v++ = '\0';
		if (strcmp(kv, "n") == 0) {
			if (have_n || !v || !v[0] || strlen(v) > 2 || strspn(v, "0123456789") != strlen(v) ||
			    (*n = (unsigned)strtoul(v, NULL, 10)) < 1 || *n > AUDIT_RECENT_MAX) {
				snprintf(why, whylen, "n: expected a number 1..%u, once", AUDIT_RECENT_MAX);
				return -1;
			}
			have_n = true;
		} else if (strcmp(kv, "stream") == 0) {
			if (have_stream || !v || !audit_stream_is_valid(v, strlen(v))) {
				snprintf(why, whylen, "stream: expected a stream name ([A-Za-z0-9._:@-], "
				         "1..64 bytes), once");
				return -1;
			}
			snprintf(stream, AUDIT_STREAM_MAX + 1, "%s", v);
			have_stream = true;
		} else {
			snprintf(why, whylen, "%.32s: unknown parameter (expected n, stream)", kv);
			return -1;
		}
	}
	return 0;
}

void admin_on_audit_recent(http_req *r, void *arg)
{
	supervisor *s = arg;
	char stream[AUDIT_STREAM_MAX + 1], why[128];
	unsigned n = 0;
	admin_aq *q;

	if (recent_query(http_req_query(r), stream, &n, why, sizeof why) != 0) {
		reject_count(REJECT_FAMILY_NODE, REJECT_BAD_REQUEST);
		(void)http_reply_error(r, 400, "bad_query", why, false, 0);
		return;
	}
	if (aq_admit(s, r) != 0 || !(q = aq_new(s, r)))
		return;
	q->call = audit_get_recent(s->audit, stream, n, on_answer, q);
}
