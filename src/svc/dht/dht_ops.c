/*
 * dht_ops.c — the dht verbs and the operations in flight (see dht_svc.h).
 *
 * FIND and GET start a lookup (dht_node_get) bounded three ways: at most
 * dht.max_values_per_key values are read, at most DHT_GET_MAX verified ones
 * kept, and the answer leaves by dht.lookup_timeout with whatever was found.
 * Only values of the kind's own OpenDHT type are asked for. Each value is
 * judged by its kind's verifier (core/dht/dht_verify.h) and must carry its
 * signer's value id (core/dht/dht_value.h) before it is kept; a refused one
 * is counted by reason. Of each signer only the newest value is kept. PUT verifies
 * before it puts. ANNOUNCE is dht_publish.c's. PEERS and STATUS answer from
 * the routing table read at the last tick.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/dht/dht_value.h"
#include "core/dht/dht_verify.h"
#include "core/metrics/metrics.h"
#include "lib/log.h"
#include "lib/util.h"
#include "svc/dht/dht_bind.h"
#include "svc/dht/dht_svc.h"

void dht_count_reject_n(const char *reason, uint64_t n)
{
	char labels[64];

	snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
	metrics_count("dht_records_rejected_total", labels, n);
}

void dht_count_reject(const char *reason)
{
	dht_count_reject_n(reason, 1);
}

static void count_lookup(const char *result)
{
	char labels[64];

	snprintf(labels, sizeof labels, "result=\"%s\"", result);
	metrics_count("dht_lookups_total", labels, 1);
}

/* ---- ops -------------------------------------------------------------------- */

static void on_op_deadline(evutil_socket_t fd, short what, void *arg);

dht_op *dht_op_new(dht_svc *d, dht_conn *c, uint64_t corr, uint16_t verb, unsigned max_values)
{
	uint64_t ms = d->s->cfg.dht_lookup_timeout_ms;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
	uint64_t id = dht_node_op(d->node, max_values);
	dht_op *op;

	if (!id)
		return NULL;
	if (!(op = calloc(1, sizeof *op))) {
		dht_node_forget(d->node, id);
		return NULL;
	}
	*op = (dht_op){ .d = d, .id = id, .conn = c, .corr = corr, .verb = verb,
	                .t0_ms = util_now_ms() };
	op->timer = evtimer_new(d->s->base, on_op_deadline, op);
	if (!op->timer || evtimer_add(op->timer, &tv) != 0) {
		if (op->timer)
			event_free(op->timer);
		dht_node_forget(d->node, id);
		free(op);
		return NULL;
	}
	LIST_INSERT_HEAD(&d->ops, op, link);
	return op;
}

static void dht_op_free(dht_op *op)
{
	dht_node_forget(op->d->node, op->id);
	LIST_REMOVE(op, link);
	event_free(op->timer);
	free(op);
}

void dht_op_end(dht_op *op, const dht_rep *rep)
{
	dht_svc *d = op->d;
	dht_conn *c = op->conn;
	uint64_t corr = op->corr;

	/* Reply first: a GET reply's values point into op (op->vals). */
	if (c && rep)
		dht_conn_reply(c, corr, rep);
	dht_op_free(op);
	if (c)
		dht_conn_op_done(c);
	if (d->draining && LIST_EMPTY(&d->ops))
		svc_drained(d->s);
}

void dht_ops_detach(dht_svc *d, dht_conn *c)
{
	dht_op *op;

	LIST_FOREACH(op, &d->ops, link)
		if (op->conn == c)
			op->conn = NULL;
}

void dht_ops_free_all(dht_svc *d)
{
	dht_op *op;

	while ((op = LIST_FIRST(&d->ops)) != NULL) {
		LIST_REMOVE(op, link);
		event_free(op->timer);
		free(op);
	}
}

static dht_op *op_of(dht_svc *d, uint64_t id)
{
	dht_op *op;

	LIST_FOREACH(op, &d->ops, link)
		if (op->id == id)
			return op;
	return NULL;
}

/* Answer an op's caller with an error now (rep on the stack). */
static void op_fail(dht_op *op, uint16_t status, const char *message)
{
	dht_rep rep;

	dht_msg_rep_err(&rep, op->verb, status, message);
	dht_op_end(op, &rep);
}

/* A request that cannot start: answer at once, no op. */
static void dht_refuse(dht_conn *c, uint64_t corr, uint16_t verb, uint16_t status,
                       const char *message)
{
	dht_rep rep;

	dht_msg_rep_err(&rep, verb, status, message);
	dht_conn_reply(c, corr, &rep);
	dht_conn_op_done(c);
}

/* ---- lookups ---------------------------------------------------------------- */

/* The lookup's answer: what it kept, counted and timed. */
static void lookup_answer(dht_op *op, const char *result)
{
	dht_rep rep = { .verb = op->verb, .status = 200 };

	count_lookup(result);
	metrics_observe(metrics_get("dht_lookup_seconds", op->verb == DHT_FIND ?
	                            "verb=\"find\"" : "verb=\"get\""),
	                (double)(util_now_ms() - op->t0_ms) / 1000.0);
	if (op->verb == DHT_FIND) {
		rep.u.find.n = (uint8_t)op->n;
		memcpy(rep.u.find.p, op->prov, op->n * sizeof op->prov[0]);
	} else {
		rep.u.get.n = (uint8_t)op->n;
		for (size_t i = 0; i < op->n; i++) {
			rep.u.get.v[i] = op->vals[i];
			rep.u.get.len[i] = op->vlen[i];
		}
	}
	dht_op_end(op, &rep);
}

/* A verified provider record: kept if it is its provider's newest so far
 * (op->keep: one per provider, first come once DHT_GET_MAX are kept). */
static void find_keep(dht_op *op, const prov_record *r)
{
	int at = dht_keep_offer(&op->keep, r->node_pk, r->expires);

	if (at < 0)
		return;
	dht_provider *p = &op->prov[at];
	memcpy(p->node_pk, r->node_pk, sizeof p->node_pk);
	memcpy(p->oap_addr, r->oap_addr, sizeof p->oap_addr);
	memcpy(p->onion, r->onion, sizeof p->onion);
	p->expires = r->expires;
	op->n = op->keep.n;
}

/* A verified value: kept if it is its signer's newest so far (names: the
 * highest seq; node records: the latest expiry). Names displace the lowest
 * seq once DHT_GET_MAX signers are kept, so the highest seq read always
 * survives; other kinds are first come. */
static void get_keep(dht_op *op, const uint8_t *v, size_t len)
{
	dht_meta m;
	int at;

	if (dht_verify_meta((dht_kind)op->kind, v, len, &m) != 0)
		return;
	if ((at = dht_keep_offer(&op->keep, m.signer, m.order)) < 0)
		return;
	memcpy(op->vals[at], v, len);
	op->vlen[at] = len;
	op->n = op->keep.n;
}

/* One value of a lookup: judge it, keep it. A value whose id is not its
 * signer's was refused by every storing macronode node: a stale or foreign
 * copy, not counted as ours. */
static void lookup_value(dht_op *op, const dht_node_ev *ev)
{
	dht_reject why = ev->oversized ? DHT_REJECT_OVERSIZED :
	                 dht_verify((dht_kind)op->kind, op->key, ev->data, ev->len, dht_now_s());
	prov_record r;

	if (why == DHT_REJECT_NONE &&
	    ev->vid != dht_value_id_of((dht_kind)op->kind, ev->data, ev->len))
		why = DHT_REJECT_WRONG_ID;
	if (why != DHT_REJECT_NONE) {
		dht_count_reject(dht_reject_name(why));
		return;
	}
	if (op->verb == DHT_GET) {
		get_keep(op, ev->data, ev->len);
		return;
	}
	if (prov_record_decode(ev->data, ev->len, &r) == PROV_OK)
		find_keep(op, &r);
}

void dht_ops_on_event(const dht_node_ev *ev, void *arg)
{
	dht_op *op = op_of(arg, ev->op);

	if (!op)
		return;                  /* answered or timed out already */
	if (op->verb == DHT_ANNOUNCE) {
		if (ev->type == DHT_NODE_DONE)
			dht_publish_done(op, ev->ok, false);
		return;
	}
	if (op->verb == DHT_PUT) {
		if (ev->type == DHT_NODE_DONE) {
			dht_rep rep = { .verb = DHT_PUT, .status = 200 };
			if (ev->ok)
				dht_op_end(op, &rep);
			else
				op_fail(op, 503, "no DHT node stored the value");
		}
		return;
	}
	if (ev->type == DHT_NODE_VALUE)
		lookup_value(op, ev);
	if (ev->type == DHT_NODE_DONE)
		lookup_answer(op, op->n ? "found" : "empty");
}

static void on_op_deadline(evutil_socket_t fd, short what, void *arg)
{
	dht_op *op = arg;

	(void)fd; (void)what;
	if (op->verb == DHT_ANNOUNCE)
		dht_publish_done(op, false, true);
	else if (op->verb == DHT_PUT)
		op_fail(op, 504, "the DHT did not confirm the put in time (dht.lookup_timeout)");
	else
		lookup_answer(op, op->n ? "found" : "timeout");
}

/* The 20-byte InfoHash of a 32-byte key (never OpenDHT's own hash). */
static void infohash_of(const uint8_t key[DHT_KEY_LEN], uint8_t ih[DHT_NODE_ID_LEN])
{
	memcpy(ih, key, DHT_NODE_ID_LEN);
}

static void lookup_start(dht_svc *d, dht_conn *c, uint64_t corr, uint16_t verb, dht_kind kind,
                         const uint8_t key[DHT_KEY_LEN])
{
	uint8_t ih[DHT_NODE_ID_LEN];
	dht_op *op = dht_op_new(d, c, corr, verb, d->s->cfg.dht_max_values_per_key);

	if (!op) {
		count_lookup("busy");
		dht_refuse(c, corr, verb, 503, "too many DHT operations in flight");
		return;
	}
	op->kind = (uint8_t)kind;
	memcpy(op->key, key, DHT_KEY_LEN);
	dht_keep_init(&op->keep, kind == DHT_KIND_NAME);
	infohash_of(key, ih);
	dht_node_get(d->node, op->id, kind, ih);
}

/* ---- verbs ------------------------------------------------------------------ */

static void do_find(dht_svc *d, dht_conn *c, uint64_t corr, const dht_req *q)
{
	uint8_t key[DHT_KEY_LEN];

	prov_record_key(q->u.find.cid, key);
	lookup_start(d, c, corr, DHT_FIND, DHT_KIND_PROVIDER, key);
}

static void do_put(dht_svc *d, dht_conn *c, uint64_t corr, const dht_req *q)
{
	const dht_req_put *m = &q->u.put;
	uint8_t ih[DHT_NODE_ID_LEN];
	char msg[DHT_MSG_TEXT_MAX];
	dht_reject why = dht_verify((dht_kind)m->kind, m->key, m->value, m->len, dht_now_s());
	dht_op *op;

	if (why != DHT_REJECT_NONE) {
		dht_count_reject(dht_reject_name(why));
		snprintf(msg, sizeof msg, "value refused by its verifier: %s", dht_reject_name(why));
		dht_refuse(c, corr, DHT_PUT, 422, msg);
		return;
	}
	if (!(op = dht_op_new(d, c, corr, DHT_PUT, 1))) {
		dht_refuse(c, corr, DHT_PUT, 503, "too many DHT operations in flight");
		return;
	}
	op->kind = m->kind;
	memcpy(op->key, m->key, DHT_KEY_LEN);
	infohash_of(m->key, ih);
	/* It verified under m->key, so it decodes: its signer's value id. */
	dht_node_put(d->node, op->id, (dht_kind)m->kind,
	             dht_value_id_of((dht_kind)m->kind, m->value, m->len), ih, m->value, m->len);
}

static void do_peers(dht_svc *d, dht_conn *c, uint64_t corr)
{
	dht_rep rep = { .verb = DHT_PEERS, .status = 200 };
	dht_rep_peers *p = &rep.u.peers;

	p->good = d->snap.good;
	p->dubious = d->snap.dubious;
	p->n = (uint8_t)d->snap.n;
	memcpy(p->p, d->snap.peers, d->snap.n * sizeof d->snap.peers[0]);
	dht_conn_reply(c, corr, &rep);
	dht_conn_op_done(c);
}

static void do_status(dht_svc *d, dht_conn *c, uint64_t corr)
{
	dht_rep rep = { .verb = DHT_STATUS, .status = 200 };
	dht_rep_status *st = &rep.u.status;

	size_t n = strnlen(d->s->cfg.dht_addr, sizeof st->addr - 1);

	memcpy(st->addr, d->s->cfg.dht_addr, n);   /* dht.addr is numeric: it fits */
	st->good = d->snap.good;
	st->dubious = d->snap.dubious;
	st->bootstrapped = d->bootstrapped;
	st->ops = (uint32_t)dht_node_ops(d->node);
	dht_conn_reply(c, corr, &rep);
	dht_conn_op_done(c);
}

void dht_ops_dispatch(dht_svc *d, dht_conn *c, uint64_t corr, const dht_req *q)
{
	dht_rep rep = { .verb = q->verb, .status = 200 };

	switch (q->verb) {
	case DHT_ANNOUNCE:
		dht_publish_announce(d, c, corr, q->u.announce.cid, false);
		return;
	case DHT_FIND:
		do_find(d, c, corr, q);
		return;
	case DHT_PUT:
		do_put(d, c, corr, q);
		return;
	case DHT_GET:
		lookup_start(d, c, corr, DHT_GET, (dht_kind)q->u.get.kind, q->u.get.key);
		return;
	case DHT_PEERS:
		do_peers(d, c, corr);
		return;
	case DHT_STATUS:
		do_status(d, c, corr);
		return;
	default:   /* PING */
		dht_conn_reply(c, corr, &rep);
		dht_conn_op_done(c);
		return;
	}
}
