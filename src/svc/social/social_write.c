/*
 * social_write.c — the social service's writes (see social.h): the bounded
 * queue, one turn at a time, group commits with a fanout batch.
 *
 * A turn is one transaction: the queued FOLLOW/UNFOLLOW/POST ops in order,
 * then — when some post is still fanning out — up to social.fanout_batch
 * deliveries of the next job (round robin), whose cursor (the last follower served) is
 * stored in the same transaction. A crash loses at most the turn that had
 * not committed: its ops were not answered, and its deliveries are done
 * again from the stored cursor after the restart. Redone deliveries write
 * the same (follower, post) keys (social_db.h): nobody gets a post twice.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lib/log.h"
#include "lib/util.h"
#include "svc/social/social.h"

/* ---- the turn (writer thread, or the loop in memory) ------------------------ */

static social_db_status turn_op(social_wtxn *t, social_turn *tn, social_wop *op)
{
	const social_req *r = &op->req;

	switch (r->verb) {
	case SOCIAL_FOLLOW:
		return social_db_follow(t, r->user, r->other, tn->max_following, &op->flag);
	case SOCIAL_UNFOLLOW:
		return social_db_unfollow(t, r->user, r->other, &op->flag);
	case SOCIAL_POST:
		op->ts_ms = util_wall_ms();
		return social_db_post(t, r->user, r->cid, op->ts_ms, &op->post);
	default:
		return SOCIAL_DB_ERROR;
	}
}

static void on_turn_run(workq_job *job)
{
	social_turn *tn = (social_turn *)job;
	social_wtxn *t = social_db_begin(tn->d->db);
	social_db_status st = SOCIAL_DB_OK;

	if (!t) {
		tn->st = SOCIAL_DB_ERROR;
		return;
	}
	for (size_t i = 0; i < tn->nops && st != SOCIAL_DB_FULL && st != SOCIAL_DB_ERROR; i++)
		st = tn->ops[i]->st = turn_op(t, tn, tn->ops[i]);
	if (st == SOCIAL_DB_FULL || st == SOCIAL_DB_ERROR) {
		social_db_end(t, false);
		tn->st = st;
		return;
	}
	st = social_db_fanout(t, tn->batch, tn->feed_max, tn->fan_after, &tn->fan_post, &tn->delivered, &tn->fan_done,
	                      &tn->fan_ts);
	/* A fanout that cannot write (the map is full) must not hold the
	 * follows back: the ops commit, the batch is tried again next turn. */
	if (st != SOCIAL_DB_OK) {
		tn->fan_post = 0;
		tn->delivered = 0;
		social_db_end(t, false);
		if (!(t = social_db_begin(tn->d->db))) {
			tn->st = SOCIAL_DB_ERROR;
			return;
		}
		for (size_t i = 0; i < tn->nops; i++)
			tn->ops[i]->st = turn_op(t, tn, tn->ops[i]);
	}
	tn->st = social_db_end(t, true);
}

/* ---- answers (loop) --------------------------------------------------------- */

static void op_answer(social_svc *d, social_wop *op, social_db_status turn_st)
{
	social_rep *rep = &d->rep;
	social_db_status st = turn_st != SOCIAL_DB_OK ? turn_st : op->st;

	if (op->req.verb == SOCIAL_POST)
		d->posts_queued--;
	switch (st) {
	case SOCIAL_DB_OK:
		memset(rep, 0, offsetof(social_rep, names));
		rep->verb = op->req.verb;
		rep->status = 200;
		rep->flag = op->flag;
		rep->post = op->post;
		rep->ts_ms = op->ts_ms;
		rep->next[0] = '\0';
		if (op->req.verb == SOCIAL_POST)
			metrics_inc(d->m_posts, 1);
		social_answer(d, op->q, rep);
		break;
	case SOCIAL_DB_LIMIT:
		social_count_reject("too_many_follows");
		social_answer_err(d, op->q, op->req.verb, 409, "too_many_follows",
		                  "already following social.max_following users");
		break;
	case SOCIAL_DB_FULL:
		social_answer_err(d, op->q, op->req.verb, 507, "insufficient_storage",
		                  "the social table is full (social.max_bytes)");
		break;
	default:
		social_answer_err(d, op->q, op->req.verb, 500, "internal", "social table write failed");
		break;
	}
	free(op);
}

static void turn_fanout_done(social_svc *d, const social_turn *tn)
{
	metrics_inc(d->m_deliveries, tn->delivered);
	metrics_gauge_set(d->m_jobs, (int64_t)social_db_jobs(d->db));
	if (tn->fan_done) {
		uint64_t now = util_wall_ms();
		metrics_observe(d->m_fanout_s, now > tn->fan_ts ? (double)(now - tn->fan_ts) / 1e3 : 0.0);
	}
}

static void on_turn_done(workq_job *job, bool ran)
{
	social_turn *tn = (social_turn *)job;
	social_svc *d = tn->d;

	if (!ran)
		tn->st = SOCIAL_DB_ERROR;
	if (tn->st != SOCIAL_DB_OK)
		log_kv(LOG_LEVEL_ERROR, "social write turn failed",
		       "reason", tn->st == SOCIAL_DB_FULL ? "full" : "error", LOG_END);
	for (size_t i = 0; i < tn->nops; i++)
		op_answer(d, tn->ops[i], tn->st);
	if (tn->st == SOCIAL_DB_OK) {
		turn_fanout_done(d, tn);
		d->fan_last = tn->fan_post;
	}
	d->turn = NULL;
	free(tn);
	if (!d->stopping)
		social_write_kick(d);
}

static void on_wq(evutil_socket_t fd, short what, void *arg)
{
	social_svc *d = arg;

	(void)fd; (void)what;
	workq_reap(d->wq);
}

static void on_inline(evutil_socket_t fd, short what, void *arg)
{
	social_svc *d = arg;
	social_turn *tn = d->inline_turn;

	(void)fd; (void)what;
	d->inline_turn = NULL;
	if (tn)
		on_turn_done(&tn->job, true);
}

/* ---- queue and kick (loop) ---------------------------------------------------- */

void social_write_queue(social_svc *d, rpc_req *q, const social_req *req)
{
	social_wop *op;

	if (d->queued >= SOCIAL_WRITES_MAX || !(op = calloc(1, sizeof *op))) {
		social_count_reject("busy");
		social_answer_err(d, q, req->verb, 503, "busy", "too many social writes queued");
		return;
	}
	op->q = q;
	op->req = *req;
	if (req->verb == SOCIAL_POST)
		d->posts_queued++;
	STAILQ_INSERT_TAIL(&d->queue, op, link);
	d->queued++;
	social_write_kick(d);
}

void social_write_kick(social_svc *d)
{
	social_turn *tn;
	social_wop *op;

	if (d->turn || d->stopping || (d->queued == 0 && social_db_jobs(d->db) == 0))
		return;
	if (!(tn = calloc(1, sizeof *tn)))
		return;   /* the queue waits for the next request's kick */
	tn->d = d;
	tn->job.run = on_turn_run;
	tn->job.done = on_turn_done;
	tn->batch = d->s->cfg.social_fanout_batch;
	tn->feed_max = d->s->cfg.social_feed_max;
	tn->fan_after = d->fan_last;
	tn->max_following = d->s->cfg.social_max_following;
	while (tn->nops < SOCIAL_TURN_OPS && (op = STAILQ_FIRST(&d->queue)) != NULL) {
		STAILQ_REMOVE_HEAD(&d->queue, link);
		d->queued--;
		tn->ops[tn->nops++] = op;
	}
	d->turn = tn;
	if (d->wq) {
		if (workq_submit(d->wq, &tn->job) != 0)
			on_turn_done(&tn->job, false);
		return;
	}
	/* In memory: run now, answer from the loop (never inside the caller).
	 * A zero timer, not event_active: the loop polls its sockets before it
	 * fires, so a long fanout's turns take turns with the requests. */
	on_turn_run(&tn->job);
	d->inline_turn = tn;
	if (event_add(d->inline_ev, &(struct timeval){ 0, 0 }) != 0)
		event_active(d->inline_ev, EV_TIMEOUT, 0);
}

int social_write_start(social_svc *d)
{
	STAILQ_INIT(&d->queue);
	if (social_db_in_memory(d->db)) {
		d->inline_ev = event_new(d->s->base, -1, 0, on_inline, d);
		return d->inline_ev ? 0 : -1;
	}
	if (!(d->wq = workq_new(1, 1)))
		return -1;
	d->wq_ev = event_new(d->s->base, workq_fd(d->wq), EV_READ | EV_PERSIST, on_wq, d);
	return d->wq_ev && event_add(d->wq_ev, NULL) == 0 ? 0 : -1;
}

void social_write_stop(social_svc *d)
{
	social_wop *op;

	d->stopping = true;
	if (d->wq_ev)
		event_free(d->wq_ev);
	d->wq_ev = NULL;
	workq_free(d->wq);   /* a running turn commits; its answers are dropped */
	d->wq = NULL;
	if (d->inline_turn)
		on_inline(-1, 0, d);
	if (d->inline_ev)
		event_free(d->inline_ev);
	d->inline_ev = NULL;
	while ((op = STAILQ_FIRST(&d->queue)) != NULL) {
		STAILQ_REMOVE_HEAD(&d->queue, link);
		if (op->req.verb == SOCIAL_POST)
			d->posts_queued--;
		social_answer_err(d, op->q, op->req.verb, 503, "unavailable", "social service stopping");
		free(op);
	}
	d->queued = 0;
}
