/*
 * index_msg.c — encoders and decoders of the index messages (see
 * index_msg.h). Each verb has one put/get pair for its request and one for
 * its 200 reply, written with lib/wire.h so that a compose and its reader
 * are the same list of fields; index_verbs[] binds them to the verb. The
 * error reply is shared by every verb.
 */
#include "core/dht/index_msg.h"

#include <string.h>

#include "lib/wire.h"

#define INDEX_STATUS_OK       200u
#define INDEX_STATUS_ERR_MIN  400u
#define INDEX_STATUS_ERR_MAX  599u

void index_name_set(index_name *n, const char *s, size_t len)
{
	memset(n, 0, sizeof *n);
	if (len > NAME_MAX_LEN)
		len = NAME_MAX_LEN;   /* the caller's bug: the encoder refuses what does not check */
	memcpy(n->s, s, len);
	n->len = len;
}

/* ---- shared fields -------------------------------------------------------- */

static void put_name(wire_w *w, const index_name *n)
{
	if (n->len > NAME_MAX_LEN || n->s[n->len] != '\0' ||
	    name_check(n->s, n->len, NULL, 0) != NAME_OK) {
		w->bad = true;
		return;
	}
	wire_put_str(w, n->s);
}

static void get_name(wire_r *r, index_name *n)
{
	wire_get_str(r, n->s, sizeof n->s);
	n->len = strlen(n->s);
	if (!r->bad && name_check(n->s, n->len, NULL, 0) != NAME_OK)
		r->bad = true;
}

/* A record we hand on (signed here, or checked when it came in). */
static void put_record(wire_w *w, const name_record *rec)
{
	uint8_t buf[NAME_RECORD_MAX];
	ssize_t n = name_record_encode(rec, buf, sizeof buf);

	if (n < 0) {
		w->bad = true;
		return;
	}
	wire_put_blob(w, buf, (size_t)n);
}

static void get_record(wire_r *r, name_record *rec)
{
	const uint8_t *p = NULL;
	size_t n = 0;

	wire_get_blob(r, &p, &n, NAME_RECORD_MAX);
	if (!r->bad && name_record_decode(p, n, rec) != NAME_REC_OK)
		r->bad = true;
}

/* ---- per-verb fields ------------------------------------------------------ */

static void put_publish_req(wire_w *w, const index_req *q)
{
	put_name(w, &q->u.publish.name);
	wire_put_raw(w, q->u.publish.cid, NAME_RECORD_CID_LEN);
}

static void get_publish_req(wire_r *r, index_req *q)
{
	get_name(r, &q->u.publish.name);
	wire_get_raw(r, q->u.publish.cid, NAME_RECORD_CID_LEN);
}

static void put_resolve_req(wire_w *w, const index_req *q)
{
	put_name(w, &q->u.resolve.name);
	wire_put_u8(w, q->u.resolve.network);
}

static void get_resolve_req(wire_r *r, index_req *q)
{
	get_name(r, &q->u.resolve.name);
	q->u.resolve.network = wire_get_bool(r);
}

static void put_history_req(wire_w *w, const index_req *q)
{
	put_name(w, &q->u.history.name);
}

static void get_history_req(wire_r *r, index_req *q)
{
	get_name(r, &q->u.history.name);
}

/* A LIST cursor: "" or a valid name, and the position. */
static void put_cursor(wire_w *w, const index_list_cursor *c)
{
	if (c->after.len)
		put_name(w, &c->after);
	else
		wire_put_str(w, "");
	wire_put_u64(w, c->pos);
}

static void get_cursor(wire_r *r, index_list_cursor *c)
{
	wire_get_str(r, c->after.s, sizeof c->after.s);
	c->after.len = strlen(c->after.s);
	if (!r->bad && c->after.len && name_check(c->after.s, c->after.len, NULL, 0) != NAME_OK)
		r->bad = true;
	c->pos = wire_get_u64(r);
}

static void put_list_req(wire_w *w, const index_req *q)
{
	put_cursor(w, &q->u.list.from);
}

static void get_list_req(wire_r *r, index_req *q)
{
	get_cursor(r, &q->u.list.from);
}

/* The record is the network's bytes: bounded here, judged by the index. */
static void put_import_req(wire_w *w, const index_req *q)
{
	const index_req_import *m = &q->u.import;

	if (m->len == 0 || m->len > NAME_RECORD_MAX) {
		w->bad = true;
		return;
	}
	wire_put_blob(w, m->rec, m->len);
}

static void get_import_req(wire_r *r, index_req *q)
{
	index_req_import *m = &q->u.import;
	const uint8_t *p = NULL;

	wire_get_blob(r, &p, &m->len, NAME_RECORD_MAX);
	if (r->bad || m->len == 0) {
		r->bad = true;
		return;
	}
	memcpy(m->rec, p, m->len);
}

static void put_publish_rep(wire_w *w, const index_rep *p)
{
	wire_put_u8(w, p->u.publish.created);
	put_record(w, &p->u.publish.rec);
}

static void get_publish_rep(wire_r *r, index_rep *p)
{
	p->u.publish.created = wire_get_bool(r);
	get_record(r, &p->u.publish.rec);
}

static void put_resolve_rep(wire_w *w, const index_rep *p)
{
	if (p->u.resolve.source > INDEX_SOURCE_LAST) {
		w->bad = true;
		return;
	}
	wire_put_u8(w, p->u.resolve.source);
	put_record(w, &p->u.resolve.rec);
}

static void get_resolve_rep(wire_r *r, index_rep *p)
{
	p->u.resolve.source = wire_get_u8(r);
	if (p->u.resolve.source > INDEX_SOURCE_LAST)
		r->bad = true;
	get_record(r, &p->u.resolve.rec);
}

/* One name's records, seq strictly rising: the count is bounded, and a
 * reply that mixes names or repeats a seq is no history. */
static bool history_is_sound(const index_rep_history *h)
{
	if (h->n == 0 || h->n > INDEX_HISTORY_MAX)
		return false;
	for (unsigned i = 1; i < h->n; i++)
		if (h->recs[i].seq <= h->recs[i - 1].seq || strcmp(h->recs[i].name, h->recs[0].name) != 0)
			return false;
	return true;
}

static void put_history_rep(wire_w *w, const index_rep *p)
{
	const index_rep_history *h = &p->u.history;

	if (!history_is_sound(h)) {
		w->bad = true;
		return;
	}
	wire_put_u8(w, h->n);
	for (unsigned i = 0; i < h->n; i++)
		put_record(w, &h->recs[i]);
}

static void get_history_rep(wire_r *r, index_rep *p)
{
	index_rep_history *h = &p->u.history;

	h->n = wire_get_u8(r);
	if (h->n == 0 || h->n > INDEX_HISTORY_MAX) {
		r->bad = true;
		return;
	}
	for (unsigned i = 0; i < h->n && !r->bad; i++)
		get_record(r, &h->recs[i]);
	if (!r->bad && !history_is_sound(h))
		r->bad = true;
}

static void put_list_rep(wire_w *w, const index_rep *p)
{
	const index_rep_list *l = &p->u.list;

	if (l->n > INDEX_LIST_MAX) {
		w->bad = true;
		return;
	}
	wire_put_u8(w, l->n);
	for (unsigned i = 0; i < l->n; i++)
		put_record(w, &l->recs[i]);
	put_cursor(w, &l->next);
	wire_put_u8(w, l->more);
}

static void get_list_rep(wire_r *r, index_rep *p)
{
	index_rep_list *l = &p->u.list;

	l->n = wire_get_u8(r);
	if (l->n > INDEX_LIST_MAX) {
		r->bad = true;
		return;
	}
	for (unsigned i = 0; i < l->n && !r->bad; i++)
		get_record(r, &l->recs[i]);
	get_cursor(r, &l->next);
	l->more = wire_get_bool(r);
}

static void put_err_rep(wire_w *w, const index_rep *p)
{
	const index_rep_err *e = &p->u.err;

	if (e->code < INDEX_ERR_BAD_REQUEST || e->code > INDEX_ERR_LAST ||
	    !memchr(e->message, '\0', sizeof e->message)) {
		w->bad = true;
		return;
	}
	wire_put_u8(w, e->code);
	wire_put_u8(w, e->retryable);
	wire_put_str(w, e->message);
}

static void get_err_rep(wire_r *r, index_rep *p)
{
	index_rep_err *e = &p->u.err;

	e->code = wire_get_u8(r);
	e->retryable = wire_get_bool(r);
	wire_get_str(r, e->message, sizeof e->message);
	if (e->code < INDEX_ERR_BAD_REQUEST || e->code > INDEX_ERR_LAST)
		r->bad = true;
}

/* ---- the verb table ------------------------------------------------------- */

typedef struct index_verb {
	const char *name;
	void      (*req_put)(wire_w *, const index_req *);   /* NULL: empty */
	void      (*req_get)(wire_r *, index_req *);
	void      (*rep_put)(wire_w *, const index_rep *);   /* the 200 reply; NULL: empty */
	void      (*rep_get)(wire_r *, index_rep *);
} index_verb;

static const index_verb index_verbs[INDEX_VERB_LAST + 1] = {
	[INDEX_PING]    = { "PING", NULL, NULL, NULL, NULL },
	[INDEX_PUBLISH] = { "PUBLISH", put_publish_req, get_publish_req,
	                    put_publish_rep, get_publish_rep },
	[INDEX_RESOLVE] = { "RESOLVE", put_resolve_req, get_resolve_req,
	                    put_resolve_rep, get_resolve_rep },
	[INDEX_HISTORY] = { "HISTORY", put_history_req, get_history_req,
	                    put_history_rep, get_history_rep },
	[INDEX_IMPORT]  = { "IMPORT", put_import_req, get_import_req, NULL, NULL },
	[INDEX_LIST]    = { "LIST", put_list_req, get_list_req, put_list_rep, get_list_rep },
};

static const index_verb *index_verb_of(uint16_t verb)
{
	return verb >= 1 && verb <= INDEX_VERB_LAST ? &index_verbs[verb] : NULL;
}

static bool index_status_is_err(uint16_t status)
{
	return status >= INDEX_STATUS_ERR_MIN && status <= INDEX_STATUS_ERR_MAX;
}

const char *index_msg_verb_name(uint16_t verb)
{
	const index_verb *v = index_verb_of(verb);

	return v ? v->name : "unknown";
}

/* ---- entry points --------------------------------------------------------- */

ssize_t index_msg_req_encode(const index_req *q, uint8_t *buf, size_t cap)
{
	const index_verb *v = index_verb_of(q->verb);
	wire_w w;

	if (!v)
		return -1;
	wire_w_init(&w, buf, cap);
	if (v->req_put)
		v->req_put(&w, q);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int index_msg_req_decode(uint16_t verb, const uint8_t *p, size_t n, index_req *q)
{
	const index_verb *v = index_verb_of(verb);
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

ssize_t index_msg_rep_encode(const index_rep *p, uint8_t *buf, size_t cap)
{
	const index_verb *v = index_verb_of(p->verb);
	wire_w w;

	if (!index_status_is_err(p->status) && (!v || p->status != INDEX_STATUS_OK))
		return -1;
	wire_w_init(&w, buf, cap);
	if (index_status_is_err(p->status))
		put_err_rep(&w, p);
	else if (v->rep_put)
		v->rep_put(&w, p);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int index_msg_rep_decode(uint16_t verb, uint16_t status, const uint8_t *p, size_t n,
                         index_rep *out)
{
	const index_verb *v = index_verb_of(verb);
	wire_r r;

	memset(out, 0, sizeof *out);
	if (!index_status_is_err(status) && (!v || status != INDEX_STATUS_OK))
		return -1;
	out->verb = verb;
	out->status = status;
	wire_r_init(&r, p, n);
	if (index_status_is_err(status))
		get_err_rep(&r, out);
	else if (v->rep_get)
		v->rep_get(&r, out);
	if (wire_end(&r) != 0) {
		memset(out, 0, sizeof *out);
		return -1;
	}
	return 0;
}

static index_err index_err_of(uint16_t status)
{
	switch (status) {
	case 400: return INDEX_ERR_BAD_REQUEST;
	case 404: return INDEX_ERR_NOT_FOUND;
	case 409: return INDEX_ERR_STALE;
	case 503: return INDEX_ERR_UNAVAILABLE;
	case 504: return INDEX_ERR_TIMEOUT;
	case 507: return INDEX_ERR_FULL;
	default:  return INDEX_ERR_INTERNAL;
	}
}

void index_msg_rep_err(index_rep *r, uint16_t verb, uint16_t status, const char *message)
{
	size_t n = strnlen(message, INDEX_MSG_TEXT_MAX - 1);

	memset(r, 0, sizeof *r);
	r->verb = verb;
	r->status = status;
	r->u.err.code = (uint8_t)index_err_of(status);
	r->u.err.retryable = status == 503 || status == 504;
	memcpy(r->u.err.message, message, n);
}
