/*
 * stor_msg.c — encoders and decoders of the storage messages (see
 * stor_msg.h). Each verb has one put/get pair for its request and one for
 * its 200 reply, written with lib/wire.h so that a compose and its reader
 * are the same list of fields; stor_verbs[] binds them to the verb. The
 * error reply is shared by every verb.
 */
#include "core/objects/stor_msg.h"

#include <string.h>

#include "lib/b3tree.h"
#include "lib/wire.h"

#define STOR_STATUS_OK       200u
#define STOR_STATUS_ERR_MIN  400u
#define STOR_STATUS_ERR_MAX  599u

/* ---- per-verb fields ------------------------------------------------------ */

static void put_id(wire_w *w, const stor_req *q)
{
	wire_put_raw(w, q->u.stat.id, STOR_ID_LEN);   /* stat, open, quarantine, pin: one layout */
}

static void get_id(wire_r *r, stor_req *q)
{
	wire_get_raw(r, q->u.stat.id, STOR_ID_LEN);
}

/* A key that is not NUL-terminated in its array is the caller's bug. */
static void put_key(wire_w *w, const char *key)
{
	if (!memchr(key, '\0', STOR_KEY_MAX)) {
		w->bad = true;
		return;
	}
	wire_put_str(w, key);
}

static void put_begin_req(wire_w *w, const stor_req *q)
{
	const stor_req_put_begin *m = &q->u.put_begin;

	wire_put_u64(w, m->max_len);
	put_key(w, m->tenant);
	put_key(w, m->peer);
}

static void get_begin_req(wire_r *r, stor_req *q)
{
	stor_req_put_begin *m = &q->u.put_begin;

	m->max_len = wire_get_u64(r);
	wire_get_str(r, m->tenant, sizeof m->tenant);
	wire_get_str(r, m->peer, sizeof m->peer);
}

/* The expected id is there only when has_expect says so. */
static void put_commit_req(wire_w *w, const stor_req *q)
{
	const stor_req_put_commit *m = &q->u.put_commit;

	wire_put_u64(w, m->handle);
	wire_put_u64(w, m->len);
	wire_put_u8(w, m->has_expect);
	if (m->has_expect)
		wire_put_raw(w, m->expect, STOR_ID_LEN);
	wire_put_u8(w, m->cache);
}

static void get_commit_req(wire_r *r, stor_req *q)
{
	stor_req_put_commit *m = &q->u.put_commit;

	m->handle = wire_get_u64(r);
	m->len = wire_get_u64(r);
	m->has_expect = wire_get_bool(r);
	if (m->has_expect)
		wire_get_raw(r, m->expect, STOR_ID_LEN);
	m->cache = wire_get_bool(r);
}

static void put_abort_req(wire_w *w, const stor_req *q)
{
	wire_put_u64(w, q->u.put_abort.handle);
}

static void get_abort_req(wire_r *r, stor_req *q)
{
	q->u.put_abort.handle = wire_get_u64(r);
}

static void put_stat_rep(wire_w *w, const stor_rep *p)
{
	wire_put_u64(w, p->u.stat.len);
}

static void get_stat_rep(wire_r *r, stor_rep *p)
{
	p->u.stat.len = wire_get_u64(r);
}

static void put_open_rep(wire_w *w, const stor_rep *p)
{
	wire_put_u64(w, p->u.open.len);
	wire_put_u64(w, p->u.open.groups);
}

/* groups is redundant by design: a server and client that disagree on the
 * outboard layout must not exchange fds silently. */
static void get_open_rep(wire_r *r, stor_rep *p)
{
	p->u.open.len = wire_get_u64(r);
	p->u.open.groups = wire_get_u64(r);
	if (p->u.open.groups != b3tree_groups(p->u.open.len))
		r->bad = true;
}

static void put_begin_rep(wire_w *w, const stor_rep *p)
{
	wire_put_u64(w, p->u.put_begin.handle);
}

static void get_begin_rep(wire_r *r, stor_rep *p)
{
	p->u.put_begin.handle = wire_get_u64(r);
}

static void put_commit_rep(wire_w *w, const stor_rep *p)
{
	wire_put_raw(w, p->u.put_commit.id, STOR_ID_LEN);
	wire_put_u8(w, p->u.put_commit.created);
}

static void get_commit_rep(wire_r *r, stor_rep *p)
{
	wire_get_raw(r, p->u.put_commit.id, STOR_ID_LEN);
	p->u.put_commit.created = wire_get_bool(r);
}

static void put_list_req(wire_w *w, const stor_req *q)
{
	const stor_req_list *m = &q->u.list;

	if (m->max == 0 || m->max > STOR_LIST_MAX) {
		w->bad = true;
		return;
	}
	wire_put_u8(w, m->has_after);
	if (m->has_after)
		wire_put_raw(w, m->after, STOR_ID_LEN);
	wire_put_u16(w, m->max);
}

static void get_list_req(wire_r *r, stor_req *q)
{
	stor_req_list *m = &q->u.list;

	m->has_after = wire_get_bool(r);
	if (m->has_after)
		wire_get_raw(r, m->after, STOR_ID_LEN);
	m->max = wire_get_u16(r);
	if (m->max == 0 || m->max > STOR_LIST_MAX)
		r->bad = true;
}

static void put_list_rep(wire_w *w, const stor_rep *p)
{
	const stor_rep_list *m = &p->u.list;

	if (m->n > STOR_LIST_MAX) {
		w->bad = true;
		return;
	}
	wire_put_u16(w, m->n);
	for (size_t i = 0; i < m->n; i++)
		wire_put_raw(w, m->ids[i], STOR_ID_LEN);
	wire_put_u8(w, m->more);
}

static void get_list_rep(wire_r *r, stor_rep *p)
{
	stor_rep_list *m = &p->u.list;

	m->n = wire_get_u16(r);
	if (m->n > STOR_LIST_MAX) {
		r->bad = true;
		return;
	}
	for (size_t i = 0; i < m->n; i++)
		wire_get_raw(r, m->ids[i], STOR_ID_LEN);
	m->more = wire_get_bool(r);
}

/* A type not NUL-terminated in its array is the caller's bug. */
static void put_ctype(wire_w *w, const char *t)
{
	if (!memchr(t, '\0', STOR_CTYPE_MAX)) {
		w->bad = true;
		return;
	}
	wire_put_str(w, t);
}

static void put_meta_req(wire_w *w, const stor_req *q)
{
	wire_put_raw(w, q->u.meta_set.id, STOR_ID_LEN);
	put_ctype(w, q->u.meta_set.ctype);
	wire_put_u8(w, q->u.meta_set.by_read);
}

static void get_meta_req(wire_r *r, stor_req *q)
{
	wire_get_raw(r, q->u.meta_set.id, STOR_ID_LEN);
	wire_get_str(r, q->u.meta_set.ctype, sizeof q->u.meta_set.ctype);
	q->u.meta_set.by_read = wire_get_bool(r);
}

static void put_meta_rep(wire_w *w, const stor_rep *p)
{
	wire_put_u64(w, p->u.meta.len);
	put_ctype(w, p->u.meta.ctype);
	wire_put_u8(w, p->u.meta.by_read);
}

static void get_meta_rep(wire_r *r, stor_rep *p)
{
	p->u.meta.len = wire_get_u64(r);
	wire_get_str(r, p->u.meta.ctype, sizeof p->u.meta.ctype);
	p->u.meta.by_read = wire_get_bool(r);
}

static void put_err_rep(wire_w *w, const stor_rep *p)
{
	const stor_rep_err *e = &p->u.err;

	if (e->code < STOR_ERR_BAD_REQUEST || e->code > STOR_ERR_LAST ||
	    !memchr(e->message, '\0', sizeof e->message)) {
		w->bad = true;
		return;
	}
	wire_put_u8(w, e->code);
	wire_put_u8(w, e->retryable);
	wire_put_str(w, e->message);
}

static void get_err_rep(wire_r *r, stor_rep *p)
{
	stor_rep_err *e = &p->u.err;

	e->code = wire_get_u8(r);
	e->retryable = wire_get_bool(r);
	wire_get_str(r, e->message, sizeof e->message);
	if (e->code < STOR_ERR_BAD_REQUEST || e->code > STOR_ERR_LAST)
		r->bad = true;
}

/* ---- the verb table ------------------------------------------------------- */

typedef struct stor_verb {
	const char *name;
	void      (*req_put)(wire_w *, const stor_req *);   /* NULL: empty */
	void      (*req_get)(wire_r *, stor_req *);
	void      (*rep_put)(wire_w *, const stor_rep *);   /* the 200 reply; NULL: empty */
	void      (*rep_get)(wire_r *, stor_rep *);
	uint8_t     rep_nfds;                               /* fds beside the 200 reply */
} stor_verb;

static const stor_verb stor_verbs[STOR_VERB_LAST + 1] = {
	[STOR_PING]       = { "PING", NULL, NULL, NULL, NULL, 0 },
	[STOR_STAT]       = { "STAT", put_id, get_id, put_stat_rep, get_stat_rep, 0 },
	[STOR_OPEN]       = { "OPEN", put_id, get_id, put_open_rep, get_open_rep, 2 },
	[STOR_PUT_BEGIN]  = { "PUT_BEGIN", put_begin_req, get_begin_req,
	                      put_begin_rep, get_begin_rep, 1 },
	[STOR_PUT_COMMIT] = { "PUT_COMMIT", put_commit_req, get_commit_req,
	                      put_commit_rep, get_commit_rep, 0 },
	[STOR_PUT_ABORT]  = { "PUT_ABORT", put_abort_req, get_abort_req, NULL, NULL, 0 },
	[STOR_QUARANTINE] = { "QUARANTINE", put_id, get_id, NULL, NULL, 0 },
	[STOR_LIST]       = { "LIST", put_list_req, get_list_req, put_list_rep, get_list_rep, 0 },
	[STOR_PIN]        = { "PIN", put_id, get_id, put_stat_rep, get_stat_rep, 0 },
	[STOR_WATCH]      = { "WATCH", NULL, NULL, NULL, NULL, 1 },
	[STOR_META_SET]   = { "META_SET", put_meta_req, get_meta_req, put_meta_rep, get_meta_rep, 0 },
	[STOR_META_GET]   = { "META_GET", put_id, get_id, put_meta_rep, get_meta_rep, 0 },
};

static const stor_verb *stor_verb_of(uint16_t verb)
{
	return verb >= 1 && verb <= STOR_VERB_LAST ? &stor_verbs[verb] : NULL;
}

static bool stor_status_is_err(uint16_t status)
{
	return status >= STOR_STATUS_ERR_MIN && status <= STOR_STATUS_ERR_MAX;
}

const char *stor_msg_verb_name(uint16_t verb)
{
	const stor_verb *v = stor_verb_of(verb);

	return v ? v->name : "unknown";
}

/* ---- entry points --------------------------------------------------------- */

ssize_t stor_msg_req_encode(const stor_req *q, uint8_t *buf, size_t cap)
{
	const stor_verb *v = stor_verb_of(q->verb);
	wire_w w;

	if (!v)
		return -1;
	wire_w_init(&w, buf, cap);
	if (v->req_put)
		v->req_put(&w, q);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int stor_msg_req_decode(uint16_t verb, const uint8_t *p, size_t n, stor_req *q)
{
	const stor_verb *v = stor_verb_of(verb);
	wire_r r;

	memset(q, 0, sizeof *q);
	if (!v)
		return -1;
	q->verb = verb;
	wire_r_init(&r, p, n);
	if (v->req_get)
		v->req_get(&r, q);
	if (wire_end(&r) != 0) {
		memset(q, 0, sizeof *q);   /* no half-read message survives a refusal */
		return -1;
	}
	return 0;
}

ssize_t stor_msg_rep_encode(const stor_rep *p, uint8_t *buf, size_t cap)
{
	const stor_verb *v = stor_verb_of(p->verb);
	wire_w w;

	if (!stor_status_is_err(p->status) && (!v || p->status != STOR_STATUS_OK))
		return -1;
	wire_w_init(&w, buf, cap);
	if (stor_status_is_err(p->status))
		put_err_rep(&w, p);
	else if (v->rep_put)
		v->rep_put(&w, p);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int stor_msg_rep_decode(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, stor_rep *out)
{
	const stor_verb *v = stor_verb_of(verb);
	wire_r r;

	memset(out, 0, sizeof *out);
	if (!stor_status_is_err(status) && (!v || status != STOR_STATUS_OK))
		return -1;
	out->verb = verb;
	out->status = status;
	wire_r_init(&r, p, n);
	if (stor_status_is_err(status))
		get_err_rep(&r, out);
	else if (v->rep_get)
		v->rep_get(&r, out);
	if (wire_end(&r) != 0) {
		memset(out, 0, sizeof *out);
		return -1;
	}
	return 0;
}

size_t stor_msg_rep_nfds(const stor_rep *r)
{
	const stor_verb *v = stor_verb_of(r->verb);

	return v && r->status == STOR_STATUS_OK ? v->rep_nfds : 0;
}

static stor_err stor_err_of(uint16_t status)
{
	switch (status) {
	case 400: return STOR_ERR_BAD_REQUEST;
	case 404: return STOR_ERR_NOT_FOUND;
	case 413: return STOR_ERR_TOO_LARGE;
	case 422: return STOR_ERR_HASH_MISMATCH;
	case 502: return STOR_ERR_QUARANTINED;
	case 503: return STOR_ERR_UNAVAILABLE;
	default:  return STOR_ERR_INTERNAL;
	}
}

void stor_msg_rep_err(stor_rep *r, uint16_t verb, uint16_t status, const char *message)
{
	size_t n = strnlen(message, STOR_MSG_TEXT_MAX - 1);

	memset(r, 0, sizeof *r);
	r->verb = verb;
	r->status = status;
	r->u.err.code = (uint8_t)stor_err_of(status);
	r->u.err.retryable = status == 503;
	memcpy(r->u.err.message, message, n);
}
