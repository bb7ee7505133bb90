/*
 * social.c — the social service: the follow graph and the feeds
 * (docs/social.md), over the SOCK_SEQPACKET socket the supervisor bound
 * (fd 5, `<runtime_dir>/social.sock`), served by core/net/rpc_server.
 *
 * Reads (LIST, FEED) are answered at once from a read transaction on the
 * loop; writes (FOLLOW, UNFOLLOW, POST) go through the write queue
 * (social_write.c) and are answered after their commit. A POST is
 * answered once it and its fanout job are committed; the fanout runs on,
 * a batch per turn, and resumes after a restart from the job's cursor.
 *
 * Cursors are checked here (social_cursor.h): one that this node did not
 * issue for that list and user is 400 bad_cursor, counted in
 * social_rejected_total{reason="bad_cursor"}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lib/log.h"
#include "svc/social/social.h"
#include "svc/social/social_cursor.h"

/* ---- answers ---------------------------------------------------------------- */

void social_count_reject(const char *reason)
{
	char labels[64];

	snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
	metrics_count("social_rejected_total", labels, 1);
}

/* The series at zero, so a rate exists before the first refusal. */
static void social_count_reject_zero(const char *reason)
{
	char labels[64];

	snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
	(void)metrics_get("social_rejected_total", labels);
}

void social_answer(social_svc *d, rpc_req *q, const social_rep *rep)
{
	ssize_t n = social_msg_rep_encode(rep, d->payload, sizeof d->payload);

	if (n < 0) {
		social_rep err;
		(void)BUG("social reply does not encode");
		social_msg_rep_err(&err, rep->verb, 500, "internal", "social reply does not encode");
		n = social_msg_rep_encode(&err, d->payload, sizeof d->payload);
		rpc_server_reply(q, 500, d->payload, n > 0 ? (size_t)n : 0, NULL, 0);
		return;
	}
	rpc_server_reply(q, rep->status, d->payload, (size_t)n, NULL, 0);
}

void social_answer_err(social_svc *d, rpc_req *q, uint16_t verb, uint16_t status,
                       const char *code, const char *message)
{
	social_rep *rep = &d->rep;

	social_msg_rep_err(rep, verb, status, code, message);
	social_answer(d, q, rep);
}

static void social_bad_cursor(social_svc *d, rpc_req *q, uint16_t verb)
{
	social_count_reject("bad_cursor");
	social_answer_err(d, q, verb, 400, "bad_cursor",
	                  "cursor: not one this node issued for this list");
}

static void social_db_failed(social_svc *d, rpc_req *q, uint16_t verb)
{
	social_answer_err(d, q, verb, 500, "internal", "social table read failed");
}

/* ---- reads ------------------------------------------------------------------ */

static void social_list(social_svc *d, rpc_req *q, const social_req *r)
{
	const uint8_t *key = social_db_cursor_key(d->db);
	char kind = r->kind == SOCIAL_FOLLOWERS ? SOCIAL_CURSOR_FOLLOWERS : SOCIAL_CURSOR_FOLLOWING;
	char after[SOCIAL_USER_MAX + 1] = "";
	uint8_t pos[SOCIAL_CURSOR_POS_MAX];
	social_rep *rep = &d->rep;
	size_t plen = 0;
	bool more;

	if (r->cursor[0]) {
		if (social_cursor_open(key, kind, r->user, r->cursor, pos, &plen) != 0 ||
		    plen == 0 || !social_user_check((const char *)pos, plen)) {
			social_bad_cursor(d, q, r->verb);
			return;
		}
		memcpy(after, pos, plen);
		after[plen] = '\0';
	}
	if (social_db_list(d->db, r->kind, r->user, after, r->limit, rep, &more) != SOCIAL_DB_OK) {
		social_db_failed(d, q, r->verb);
		return;
	}
	rep->verb = r->verb;
	rep->status = 200;
	rep->next[0] = '\0';
	if (more && rep->n > 0) {
		const char *last = rep->names[rep->n - 1];
		(void)social_cursor_make(key, kind, r->user, last, strlen(last), rep->next);
	}
	social_answer(d, q, rep);
}

static void be64(uint8_t p[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void social_feed(social_svc *d, rpc_req *q, const social_req *r)
{
	const uint8_t *key = social_db_cursor_key(d->db);
	uint8_t pos[SOCIAL_CURSOR_POS_MAX];
	social_rep *rep = &d->rep;
	uint64_t before = UINT64_MAX;
	size_t plen = 0;
	bool more;

	if (r->cursor[0]) {
		if (social_cursor_open(key, SOCIAL_CURSOR_FEED, r->user, r->cursor, pos, &plen) != 0 ||
		    plen != 8) {
			social_bad_cursor(d, q, r->verb);
			return;
		}
		before = 0;
		for (size_t i = 0; i < 8; i++)
			before = before << 8 | pos[i];
	}
	if (social_db_feed(d->db, r->user, before, r->limit, rep, &more) != SOCIAL_DB_OK) {
		social_db_failed(d, q, r->verb);
		return;
	}
	rep->verb = r->verb;
	rep->status = 200;
	rep->next[0] = '\0';
	if (more && rep->n > 0) {
		be64(pos, rep->items[rep->n - 1].post);
		(void)social_cursor_make(key, SOCIAL_CURSOR_FEED, r->user, pos, 8, rep->next);
	}
	social_answer(d, q, rep);
}

/* ---- dispatch --------------------------------------------------------------- */

static void social_handle(rpc_req *q, uint16_t verb, const uint8_t *p, size_t n, void *arg)
{
	social_svc *d = arg;
	social_req r;

	if (social_msg_req_decode(verb, p, n, &r) != 0)   /* checked by rpc_server already */
		log_fatalx("social request does not decode; exiting", "verb",
		           social_msg_verb_name(verb), LOG_END);
	switch (verb) {
	case SOCIAL_LIST:
		social_list(d, q, &r);
		break;
	case SOCIAL_FEED:
		social_feed(d, q, &r);
		break;
	case SOCIAL_FOLLOW:
	case SOCIAL_UNFOLLOW:
		if (strcmp(r.user, r.other) == 0) {
			social_count_reject("self_follow");
			social_answer_err(d, q, verb, 400, "self_follow", "a user cannot follow itself");
			return;
		}
		social_write_queue(d, q, &r);
		break;
	case SOCIAL_POST:
		/* Posts not yet committed count too: the bound holds whatever
		 * the queue holds. */
		if (social_db_jobs(d->db) + d->posts_queued >= d->s->cfg.social_max_jobs) {
			social_count_reject("busy");
			social_answer_err(d, q, verb, 503, "busy",
			                  "too many posts still fanning out (social.max_jobs)");
			return;
		}
		social_write_queue(d, q, &r);
		break;
	default:
		rpc_server_reply(q, 200, NULL, 0, NULL, 0);   /* PING */
		break;
	}
}

/* ---- service ---------------------------------------------------------------- */

static void social_free(social_svc *d)
{
	if (!d)
		return;
	social_write_stop(d);
	rpc_server_free(d->srv);
	social_db_free(d->db);
	free(d);
}

static int social_open(social_svc *d, const mn_config *cfg)
{
	char err[SOCIAL_DB_ERR_MAX];
	char jobs[24];

	d->db = social_db_open(cfg->amnesia ? NULL : cfg->data_dir, cfg->social_max_bytes,
	                       err, sizeof err);
	if (!d->db) {
		log_kv(LOG_LEVEL_ERROR, "social cannot open its table", "error", err, LOG_END);
		return -1;
	}
	if (social_db_jobs(d->db) > 0) {   /* posts a crash or a stop left half fanned out */
		snprintf(jobs, sizeof jobs, "%llu", (unsigned long long)social_db_jobs(d->db));
		metrics_inc(d->m_resumed, social_db_jobs(d->db));
		log_kv(LOG_LEVEL_INFO, "social resumes fanouts", "jobs", jobs, LOG_END);
	}
	return 0;
}

static void social_metrics(social_svc *d)
{
	static const char *const reasons[] = {
		"bad_cursor", "self_follow", "too_many_follows", "busy", "bad_request",
		"bad_body", "too_large", "bad_limit", "not_owner", "not_stored",
	};

	d->m_jobs = metrics_get("social_fanout_jobs", "");
	d->m_deliveries = metrics_get("social_fanout_deliveries_total", "");
	d->m_posts = metrics_get("social_posts_total", "");
	d->m_fanout_s = metrics_get("social_fanout_seconds", "");
	d->m_resumed = metrics_get("social_fanout_resumed_total", "");
	for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
		social_count_reject_zero(reasons[i]);
}

static void social_on_drained(void *arg)
{
	svc_drained(((social_svc *)arg)->s);
}

static int social_start(svc *s)
{
	social_svc *d = calloc(1, sizeof *d);

	if (!d)
		return -1;
	d->s = s;
	social_metrics(d);
	/* The table opens before the sandbox (it may create <data_dir>/social),
	 * the writer thread after it (Landlock binds only later threads). */
	if (social_open(d, &s->cfg) != 0 || svc_sandbox_enter(s) != 0 ||
	    social_write_start(d) != 0)
		goto fail;
	rpc_server_opts so = { .name = "social", .app_proto = SOCIAL_APP_PROTO,
	                       .max_conns = SOCIAL_MAX_CONNS, .max_pending = SOCIAL_CONN_PENDING,
	                       .check = social_msg_req_check, .verb_name = social_msg_verb_name,
	                       .handle = social_handle, .arg = d, .drained = social_on_drained };
	if (s->listen_fd < 0 || evutil_make_socket_nonblocking(s->listen_fd) != 0 ||
	    !(d->srv = rpc_server_new(s->base, s->listen_fd, &so))) {
		log_kv(LOG_LEVEL_ERROR, "social has no listening socket", LOG_END);
		goto fail;
	}
	s->priv = d;
	metrics_gauge_set(d->m_jobs, (int64_t)social_db_jobs(d->db));
	social_write_kick(d);   /* resume fanouts left by the last run */
	log_kv(LOG_LEVEL_INFO, "social serving", "backend", s->cfg.amnesia ? "ram" : "disk",
	       LOG_END);
	return 0;
fail:
	social_free(d);
	return -1;
}

/* Answer what is in flight; done when the last connection closes or at the
 * drain deadline. Fanout jobs stay in the table and resume at the next start. */
static void social_drain(svc *s)
{
	social_svc *d = s->priv;

	rpc_server_drain(d->srv);
}

static void social_stop(svc *s)
{
	social_free(s->priv);
	s->priv = NULL;
}

const svc_ops social_ops = {
	.role = "social",
	.start = social_start,
	.drain = social_drain,
	.stop = social_stop,
};
