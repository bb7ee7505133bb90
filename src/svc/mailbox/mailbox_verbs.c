/*
 * mailbox_verbs.c — what the mailbox does for each verb (see mailbox.h):
 *
 *   SEND     a new message (or, for an Idempotency-Key seen within the
 *            window, the first send's id: replay), committed before 200
 *   RECV     lease up to max visible messages; their bodies in one memfd
 *   ACK      delete a delivered message (committed before 200: never again)
 *   NACK     visible again after the backoff, or into the DLQ
 *   DLQ      list dead letters (no change)
 *   REQUEUE  a dead letter back into the queue, deliveries 0
 *
 * Refusals are counted in mailbox_refused_total{reason}.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/metrics/metrics.h"
#include "core/metrics/reject.h"
#include "core/net/rpc_server.h"
#include "lib/log.h"
#include "lib/util.h"
#include "svc/mailbox/mailbox.h"
#include "svc/mailbox/mb_db.h"

void mailbox_count_refusal(const char *reason)
{
	char labels[64];

	snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
	metrics_count("mailbox_refused_total", labels, 1);
}

static void mb_count_send(const char *result)
{
	char labels[64];

	snprintf(labels, sizeof labels, "result=\"%s\"", result);
	metrics_count("mailbox_sends_total", labels, 1);
}

/* A table status as an error answer. */
static void mb_answer_status(mailbox *m, rpc_req *q, uint16_t verb, mb_status st)
{
	const mn_config *c = &m->s->cfg;
	char msg[MB_TEXT_MAX];

	switch (st) {
	case MB_NOT_FOUND:
		mailbox_count_refusal("not_found");
		mailbox_reply_err(m, q, verb, 404, "not_found", "no such message in this mailbox");
		return;
	case MB_NOT_DELIVERED:
		mailbox_count_refusal("not_delivered");
		mailbox_reply_err(m, q, verb, 409, "not_delivered",
		                  "the message has not been delivered (receive it first)");
		return;
	case MB_IN_DLQ:
		mailbox_count_refusal("in_dlq");
		mailbox_reply_err(m, q, verb, 409, "in_dlq",
		                  "the message is in the dead-letter queue (requeue it first)");
		return;
	case MB_QUOTA_COUNT:
		mailbox_count_refusal("quota_count");
		snprintf(msg, sizeof msg, "recipient's mailbox is full: mailbox.quota_count (%u) messages",
		         c->mailbox_quota_count);
		mailbox_reply_err(m, q, verb, 429, "quota_count", msg);
		return;
	case MB_QUOTA_BYTES:
		mailbox_count_refusal("quota_bytes");
		snprintf(msg, sizeof msg, "recipient's mailbox is full: mailbox.quota_bytes (%llu) bytes",
		         (unsigned long long)c->mailbox_quota_bytes);
		mailbox_reply_err(m, q, verb, 429, "quota_bytes", msg);
		return;
	case MB_FULL:
		mailbox_count_refusal("full");
		mailbox_reply_err(m, q, verb, 507, "insufficient_storage",
		                  "mailbox full: mailbox.max_messages or mailbox.max_bytes reached");
		return;
	case MB_IDEM_CONFLICT:
		mailbox_count_refusal("idempotency_conflict");
		mailbox_reply_err(m, q, verb, 422, "idempotency_conflict",
		                  "Idempotency-Key already used for a different message");
		return;
	case MB_IDEM_PENDING:
		mailbox_count_refusal("idempotency_pending");
		mailbox_reply_err(m, q, verb, 409, "idempotency_pending",
		                  "the first send with this Idempotency-Key is still in progress; retry");
		return;
	case MB_IDEM_FULL:
		mailbox_count_refusal("idempotency_full");
		mailbox_reply_err(m, q, verb, 503, "unavailable",
		                  "too many idempotency keys held (mailbox.max_idempotency_keys)");
		return;
	default:
		mailbox_reply_err(m, q, verb, 500, "internal", "out of memory");
		return;
	}
}

/* ---- SEND ------------------------------------------------------------------------- */

static void mb_send(mailbox *m, rpc_req *q, const mb_req_send *r)
{
	mb_job *j = mailbox_job_new(m, q, MB_SEND);
	uint64_t now = util_wall_ms(), rep_id = 0, rep_ms = 0;
	mb_entry *e;
	mb_status st;

	if (!j) {
		mailbox_reply_err(m, q, MB_SEND, 503, "unavailable", "out of memory");
		return;
	}
	st = mb_table_send(m->t, r, r->body, now, &j->b, &e, &rep_id, &rep_ms);
	if (st == MB_REPLAY) {
		mb_count_send("replay");
		j->rep->u.send = (mb_rep_send){ .id = rep_id, .replay = true, .sent_ms = rep_ms };
		j->verb = MB_PING;   /* nothing to settle */
		mb_batch_clear(&j->b);
		mailbox_commit(m, j);
		return;
	}
	if (st != MB_OK) {
		mb_answer_status(m, q, MB_SEND, st);
		j->q = NULL;
		j->verb = MB_PING;
		mailbox_commit(m, j);   /* an expiry of keys may be in the batch */
		return;
	}
	mb_count_send("created");
	j->send_id = e->id;
	j->rep->u.send = (mb_rep_send){ .id = e->id, .replay = false, .sent_ms = e->sent_ms };
	mailbox_commit(m, j);
}

/* ---- items and their bodies --------------------------------------------------------- */

static int mb_body_of(mailbox *m, const mb_entry *e, uint8_t *out)
{
	if (!e->body_len)
		return 0;
	if (e->body) {
		memcpy(out, e->body, e->body_len);
		return 0;
	}
	return m->db ? mb_db_body(m->db, e->id, out, e->body_len) : -1;
}

/* The items of es[0..n) into rep, their bodies into one sealed memfd
 * (*fd, -1 when no body has a byte). 0, or -1. */
static int mb_items(mailbox *m, mb_entry **es, size_t n, bool lease, mb_rep *rep, int *fd)
{
	uint64_t total = 0;
	uint8_t *buf = NULL;
	int rc = 0;

	*fd = -1;
	rep->u.items.n = (uint16_t)n;
	for (size_t i = 0; i < n; i++) {
		mb_item *it = &rep->u.items.items[i];
		*it = (mb_item){ .id = es[i]->id, .kind = es[i]->kind,
		                 .deliveries = es[i]->deliveries, .sent_ms = es[i]->sent_ms,
		                 .lease_until_ms = lease ? es[i]->visible_ms : 0,
		                 .body_len = es[i]->body_len };
		snprintf(it->sender, sizeof it->sender, "%s", es[i]->sender);
		memcpy(it->cid, es[i]->cid, sizeof it->cid);
		total += es[i]->body_len;
	}
	if (total == 0)
		return 0;
	if (!(buf = malloc(MB_BODY_MAX)) ||
	    (*fd = memfd_create("mailbox-bodies", MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0) {
		free(buf);
		return -1;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (!es[i]->body_len)
			continue;
		rc = mb_body_of(m, es[i], buf) == 0 &&
		     util_write_all(*fd, buf, es[i]->body_len) == 0 ? 0 : -1;
	}
	free(buf);
	if (rc == 0 && fcntl(*fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
	                                       F_SEAL_SEAL) != 0)
		rc = -1;
	if (rc != 0) {
		close(*fd);
		*fd = -1;
	}
	return rc;
}

/* ---- RECV, DLQ ------------------------------------------------------------------------- */

static void mb_recv(mailbox *m, rpc_req *q, const mb_req_recv *r)
{
	mb_job *j = mailbox_job_new(m, q, MB_RECV);
	mb_entry *es[MB_BATCH_MAX];
	size_t n;

	if (!j) {
		mailbox_reply_err(m, q, MB_RECV, 503, "unavailable", "out of memory");
		return;
	}
	n = mb_table_recv(m->t, r->recipient, r->max, MAILBOX_REPLY_BYTES, r->lease_ms,
	                  util_wall_ms(), &j->b, es);
	if (mb_items(m, es, n, true, j->rep, &j->fd) != 0)
		/* The leases stand (committed below): the messages come again
		 * once they end. */
		mb_msg_rep_err(j->rep, MB_RECV, 503, "unavailable", "mailbox cannot read the bodies");
	mailbox_commit(m, j);
}

static void mb_dlq(mailbox *m, rpc_req *q, const mb_req_dlq *r)
{
	mb_job *j = mailbox_job_new(m, q, MB_DLQ);
	mb_entry *es[MB_BATCH_MAX];
	size_t n;

	if (!j) {
		mailbox_reply_err(m, q, MB_DLQ, 503, "unavailable", "out of memory");
		return;
	}
	n = mb_table_dlq(m->t, r->recipient, r->max, es);
	if (mb_items(m, es, n, false, j->rep, &j->fd) != 0)
		mb_msg_rep_err(j->rep, MB_DLQ, 503, "unavailable", "mailbox cannot read the bodies");
	mailbox_commit(m, j);   /* an empty batch: answered at once */
}

/* ---- ACK, NACK, REQUEUE ------------------------------------------------------------------ */

static void mb_by_id(mailbox *m, rpc_req *q, uint16_t verb, const mb_req_id *r)
{
	mb_job *j = mailbox_job_new(m, q, verb);
	uint64_t now = util_wall_ms();
	mb_status st;

	if (!j) {
		mailbox_reply_err(m, q, verb, 503, "unavailable", "out of memory");
		return;
	}
	if (verb == MB_ACK)
		st = mb_table_ack(m->t, r->recipient, r->id, &j->b);
	else if (verb == MB_NACK)
		st = mb_table_nack(m->t, r->recipient, r->id, now, &j->b, &j->rep->u.nack.dlq,
		                   &j->rep->u.nack.visible_ms);
	else
		st = mb_table_requeue(m->t, r->recipient, r->id, now, &j->b);
	if (st != MB_OK) {
		mb_answer_status(m, q, verb, st);
		mailbox_job_free(j);
		return;
	}
	mailbox_commit(m, j);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

/* A SEND's body from its memfd (exactly body_len bytes) into a buffer the
 * caller frees. The fd is the peer's (this binary): a wrong size is a bug. */
static uint8_t *mb_read_body(int fd, uint32_t len)
{
	struct stat st;
	uint8_t *buf;

	if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != len)
		log_fatalx("mailbox SEND body fd does not match its length; exiting", LOG_END);
	if (!(buf = malloc(len)))
		return NULL;
	if (util_pread_full(fd, buf, len, 0) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void mb_send_fd(mailbox *m, rpc_req *q, mb_req_send *r)
{
	int fd = rpc_req_take_fd(q);
	uint8_t *body = NULL;

	if ((fd >= 0) != (r->body_len > 0))
		log_fatalx("mailbox SEND with a body and no fd (or the reverse); exiting", LOG_END);
	if (fd >= 0) {
		body = mb_read_body(fd, r->body_len);
		close(fd);
		if (!body) {
			mailbox_reply_err(m, q, MB_SEND, 503, "unavailable", "cannot read the body");
			return;
		}
	}
	r->body = body;
	mb_send(m, q, r);
	free(body);
}

void mailbox_dispatch(rpc_req *q, uint16_t verb, const uint8_t *p, size_t n, void *arg)
{
	static mb_req r;   /* loop thread; large */
	mailbox *m = arg;

	if (mb_msg_req_decode(verb, p, n, &r) != 0) {   /* passed the check: cannot happen */
		mailbox_reply_err(m, q, verb, 500, "internal", "request does not decode");
		return;
	}
	if (verb != MB_SEND && rpc_req_take_fd(q) >= 0)
		log_fatalx("mailbox request carries an fd its verb does not take; exiting", LOG_END);
	if (verb == MB_PING) {
		rpc_server_reply(q, 200, NULL, 0, NULL, 0);
		return;
	}
	if (m->draining || !mailbox_can_write(m)) {
		reject_count(REJECT_FAMILY_NODE, REJECT_503);
		mailbox_count_refusal("busy");
		mailbox_reply_err(m, q, verb, 503, "unavailable",
		                  m->draining ? "mailbox draining" : "too many mailbox writes queued");
		return;
	}
	switch (verb) {
	case MB_SEND:    mb_send_fd(m, q, &r.u.send); break;
	case MB_RECV:    mb_recv(m, q, &r.u.recv); break;
	case MB_DLQ:     mb_dlq(m, q, &r.u.dlq); break;
	default:         mb_by_id(m, q, verb, &r.u.id); break;
	}
}
