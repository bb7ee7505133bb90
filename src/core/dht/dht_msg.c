/*
 * dht_msg.c — encoders and decoders of the dht messages (see dht_msg.h),
 * one put/get pair per request and per 200 reply, bound to their verb in
 * dht_verbs[]; the error reply is shared by every verb (as stor_msg.c).
 */
#include "core/dht/dht_msg.h"

#include <string.h>

#include "lib/wire.h"

#define DHT_STATUS_OK      200u
#define DHT_STATUS_ERR_MIN 400u
#define DHT_STATUS_ERR_MAX 599u

static bool kind_ok(uint8_t kind)
{
	return kind >= DHT_KIND_PROVIDER && kind <= DHT_KIND_LAST;
}

/* A C string that fits its array (so its reader can take it back). */
static void put_text(wire_w *w, const char *s, size_t cap)
{
	if (!memchr(s, '\0', cap)) {
		w->bad = true;
		return;
	}
	wire_put_str(w, s);
}

/* ---- requests ------------------------------------------------------------- */

static void put_cid(wire_w *w, const dht_req *q)
{
	wire_put_raw(w, q->u.find.cid, PROV_CID_LEN);   /* announce, find: one layout */
}

static void get_cid(wire_r *r, dht_req *q)
{
	wire_get_raw(r, q->u.find.cid, PROV_CID_LEN);
}

static void put_put(wire_w *w, const dht_req *q)
{
	const dht_req_put *m = &q->u.put;

	if (!kind_ok(m->kind) || m->len == 0 || m->len > DHT_VALUE_MAX) {
		w->bad = true;
		return;
	}
	wire_put_u8(w, m->kind);
	wire_put_raw(w, m->key, DHT_KEY_LEN);
	wire_put_blob(w, m->value, m->len);
}

static void get_put(wire_r *r, dht_req *q)
{
	dht_req_put *m = &q->u.put;

	m->kind = wire_get_u8(r);
	wire_get_raw(r, m->key, DHT_KEY_LEN);
	wire_get_blob(r, &m->value, &m->len, DHT_VALUE_MAX);
	if (!kind_ok(m->kind) || m->len == 0)
		r->bad = true;
}

static void put_get(wire_w *w, const dht_req *q)
{
	if (!kind_ok(q->u.get.kind)) {
		w->bad = true;
		return;
	}
	wire_put_u8(w, q->u.get.kind);
	wire_put_raw(w, q->u.get.key, DHT_KEY_LEN);
}

static void get_get(wire_r *r, dht_req *q)
{
	q->u.get.kind = wire_get_u8(r);
	wire_get_raw(r, q->u.get.key, DHT_KEY_LEN);
	if (!kind_ok(q->u.get.kind))
		r->bad = true;
}

/* ---- replies -------------------------------------------------------------- */

static void put_find_rep(wire_w *w, const dht_rep *p)
{
	const dht_rep_find *m = &p->u.find;

	if (m->n > DHT_GET_MAX) {
		w->bad = true;
		return;
	}
	wire_put_u8(w, m->n);
	for (size_t i = 0; i < m->n; i++) {
		wire_put_raw(w, m->p[i].node_pk, IDENTITY_PK_LEN);
		put_text(w, m->p[i].oap_addr, sizeof m->p[i].oap_addr);
		put_text(w, m->p[i].onion, sizeof m->p[i].onion);
		wire_put_u64(w, m->p[i].expires);
	}
}

static void get_find_rep(wire_r *r, dht_rep *p)
{
	dht_rep_find *m = &p->u.find;

	m->n = wire_get_u8(r);
	if (m->n > DHT_GET_MAX) {
		r->bad = true;
		return;
	}
	for (size_t i = 0; i < m->n; i++) {
		wire_get_raw(r, m->p[i].node_pk, IDENTITY_PK_LEN);
		wire_get_str(r, m->p[i].oap_addr, sizeof m->p[i].oap_addr);
		wire_get_str(r, m->p[i].onion, sizeof m->p[i].onion);
		m->p[i].expires = wire_get_u64(r);
		if (!m->p[i].oap_addr[0] && !m->p[i].onion[0])
			r->bad = true;
	}
}

static void put_get_rep(wire_w *w, const dht_rep *p)
{
	const dht_rep_get *m = &p->u.get;

	if (m->n > DHT_GET_MAX) {
		w->bad = true;
		return;
	}
	wire_put_u8(w, m->n);
	for (size_t i = 0; i < m->n; i++) {
		if (m->len[i] == 0 || m->len[i] > DHT_VALUE_MAX)
			w->bad = true;
		wire_put_blob(w, m->v[i], m->len[i]);
	}
}

static void get_get_rep(wire_r *r, dht_rep *p)
{
	dht_rep_get *m = &p->u.get;

	m->n = wire_get_u8(r);
	if (m->n > DHT_GET_MAX) {
		r->bad = true;
		return;
	}
	for (size_t i = 0; i < m->n; i++) {
		wire_get_blob(r, &m->v[i], &m->len[i], DHT_VALUE_MAX);
		if (m->len[i] == 0)
			r->bad = true;
	}
}

static void put_peers_rep(wire_w *w, const dht_rep *p)
{
	const dht_rep_peers *m = &p->u.peers;

	if (m->n > DHT_PEERS_MAX) {
		w->bad = true;
		return;
	}
	wire_put_u32(w, m->good);
	wire_put_u32(w, m->dubious);
	wire_put_u8(w, m->n);
	for (size_t i = 0; i < m->n; i++) {
		wire_put_raw(w, m->p[i].id, DHT_NODE_ID_LEN);
		put_text(w, m->p[i].addr, sizeof m->p[i].addr);
	}
}

static void get_peers_rep(wire_r *r, dht_rep *p)
{
	dht_rep_peers *m = &p->u.peers;

	m->good = wire_get_u32(r);
	m->dubious = wire_get_u32(r);
	m->n = wire_get_u8(r);
	if (m->n > DHT_PEERS_MAX) {
		r->bad = true;
		return;
	}
	for (size_t i = 0; i < m->n; i++) {
		wire_get_raw(r, m->p[i].id, DHT_NODE_ID_LEN);
		wire_get_str(r, m->p[i].addr, sizeof m->p[i].addr);
	}
}

static void put_status_rep(wire_w *w, const dht_rep *p)
{
	const dht_rep_status *m = &p->u.status;

	put_text(w, m->addr, sizeof m->addr);
	wire_put_raw(w, m->dht_id, DHT_NODE_ID_LEN);
	wire_put_u32(w, m->good);
	wire_put_u32(w, m->dubious);
	wire_put_u8(w, m->bootstrapped);
	wire_put_u32(w, m->ops);
}

static void get_status_rep(wire_r *r, dht_rep *p)
{
	dht_rep_status *m = &p->u.status;

	wire_get_str(r, m->addr, sizeof m->addr);
	wire_get_raw(r, m->dht_id, DHT_NODE_ID_LEN);
	m->good = wire_get_u32(r);
	m->dubious = wire_get_u32(r);
	m->bootstrapped = wire_get_bool(r);
	m->ops = wire_get_u32(r);
}

static void put_err_rep(wire_w *w, const dht_rep *p)
{
	const dht_rep_err *e = &p->u.err;

	if (e->code < DHT_ERR_BAD_REQUEST || e->code > DHT_ERR_LAST) {
		w->bad = true;
		return;
	}
	wire_put_u8(w, e->code);
	wire_put_u8(w, e->retryable);
	put_text(w, e->message, sizeof e->message);
}

static void get_err_rep(wire_r *r, dht_rep *p)
{
	dht_rep_err *e = &p->u.err;

	e->code = wire_get_u8(r);
	e->retryable = wire_get_bool(r);
	wire_get_str(r, e->message, sizeof e->message);
	if (e->code < DHT_ERR_BAD_REQUEST || e->code > DHT_ERR_LAST)
		r->bad = true;
}

/* ---- the verb table ------------------------------------------------------- */

typedef struct dht_verb {
	const char *name;
	void      (*req_put)(wire_w *, const dht_req *);   /* NULL: empty */
	void      (*req_get)(wire_r *, dht_req *);
	void      (*rep_put)(wire_w *, const dht_rep *);   /* the 200 reply; NULL: empty */
	void      (*rep_get)(wire_r *, dht_rep *);
} dht_verb;

static const dht_verb dht_verbs[DHT_VERB_LAST + 1] = {
	[DHT_PING]     = { "PING", NULL, NULL, NULL, NULL },
	[DHT_ANNOUNCE] = { "ANNOUNCE", put_cid, get_cid, NULL, NULL },
	[DHT_FIND]     = { "FIND", put_cid, get_cid, put_find_rep, get_find_rep },
	[DHT_PUT]      = { "PUT", put_put, get_put, NULL, NULL },
	[DHT_GET]      = { "GET", put_get, get_get, put_get_rep, get_get_rep },
	[DHT_PEERS]    = { "PEERS", NULL, NULL, put_peers_rep, get_peers_rep },
	[DHT_STATUS]   = { "STATUS", NULL, NULL, put_status_rep, get_status_rep },
};

static const dht_verb *dht_verb_of(uint16_t verb)
{
	return verb >= 1 && verb <= DHT_VERB_LAST ? &dht_verbs[verb] : NULL;
}

static bool dht_status_is_err(uint16_t status)
{
	return status >= DHT_STATUS_ERR_MIN && status <= DHT_STATUS_ERR_MAX;
}

const char *dht_msg_verb_name(uint16_t verb)
{
	const dht_verb *v = dht_verb_of(verb);

	return v ? v->name : "unknown";
}

/* ---- entry points --------------------------------------------------------- */

ssize_t dht_msg_req_encode(const dht_req *q, uint8_t *buf, size_t cap)
{
	const dht_verb *v = dht_verb_of(q->verb);
	wire_w w;

	if (!v)
		return -1;
	wire_w_init(&w, buf, cap);
	if (v->req_put)
		v->req_put(&w, q);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int dht_msg_req_decode(uint16_t verb, const uint8_t *p, size_t n, dht_req *q)
{
	const dht_verb *v = dht_verb_of(verb);
	wire_r r;

	memset(q, 0, sizeof *q);
	if (!v)
		return -1;
	q->verb = verb;
	wire_r_init(&r, p, n);
	if (v->req_get)
		v->req_get(&r, q);
	if (wire_end(&r) != 0) {
		memset(q, 0, sizeof *q);
		return -1;
	}
	return 0;
}

ssize_t dht_msg_rep_encode(const dht_rep *p, uint8_t *buf, size_t cap)
{
	const dht_verb *v = dht_verb_of(p->verb);
	wire_w w;

	if (!dht_status_is_err(p->status) && (!v || p->status != DHT_STATUS_OK))
		return -1;
	wire_w_init(&w, buf, cap);
	if (dht_status_is_err(p->status))
		put_err_rep(&w, p);
	else if (v->rep_put)
		v->rep_put(&w, p);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int dht_msg_rep_decode(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, dht_rep *out)
{
	const dht_verb *v = dht_verb_of(verb);
	wire_r r;

	memset(out, 0, sizeof *out);
	if (!v || (!dht_status_is_err(status) && status != DHT_STATUS_OK))
		return -1;
	out->verb = verb;
	out->status = status;
	wire_r_init(&r, p, n);
	if (dht_status_is_err(status))
		get_err_rep(&r, out);
	else if (v->rep_get)
		v->rep_get(&r, out);
	if (wire_end(&r) != 0) {
		memset(out, 0, sizeof *out);
		return -1;
	}
	return 0;
}

static dht_err dht_err_of(uint16_t status)
{
	switch (status) {
	case 400: return DHT_ERR_BAD_REQUEST;
	case 422: return DHT_ERR_REFUSED;
	case 429: return DHT_ERR_RATE_LIMITED;
	case 503: return DHT_ERR_UNAVAILABLE;
	case 504: return DHT_ERR_TIMEOUT;
	default:  return DHT_ERR_INTERNAL;
	}
}

void dht_msg_rep_err(dht_rep *r, uint16_t verb, uint16_t status, const char *message)
{
	size_t n = strnlen(message, DHT_MSG_TEXT_MAX - 1);

	memset(r, 0, sizeof *r);
	r->verb = verb;
	r->status = status;
	r->u.err.code = (uint8_t)dht_err_of(status);
	r->u.err.retryable = status == 503 || status == 504 || status == 429;
	memcpy(r->u.err.message, message, n);
}
