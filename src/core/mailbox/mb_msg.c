/*
 * mb_msg.c — encoders and decoders of the mailbox messages (see mb_msg.h).
 * Each verb has one put/get pair for its request and one for its 200 reply,
 * written with lib/wire.h so a compose and its reader are the same list of
 * fields; mb_verbs[] binds them to the verb. The error reply is shared.
 */
#include "core/mailbox/mb_msg.h"

#include <stdio.h>
#include <string.h>

#include "lib/wire.h"

#define MB_STATUS_OK       200u
#define MB_STATUS_ERR_MIN  400u
#define MB_STATUS_ERR_MAX  599u

/* ---- names, keys, ids ------------------------------------------------------ */

static bool mb_name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

int mb_name_check(const char *s, size_t n, char *msg, size_t msglen)
{
	const char *why = NULL;

	if (n == 0)
		why = "empty";
	else if (n > MB_NAME_MAX)
		why = "longer than 64 bytes";
	else if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		why = "\".\" and \"..\" are not mailbox names";
	for (size_t i = 0; !why && i < n; i++)
		if (!mb_name_char((unsigned char)s[i]))
			why = "only letters, digits, '.', '_' and '-' are allowed";
	if (!why)
		return 0;
	if (msg && msglen)
		snprintf(msg, msglen, "bad mailbox name: %s", why);
	return -1;
}

bool mb_idem_is_valid(const char *s, size_t n)
{
	if (n == 0 || n > MB_IDEM_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

void mb_id_format(uint64_t id, char out[MB_ID_TEXT])
{
	snprintf(out, MB_ID_TEXT, "%016llx", (unsigned long long)id);
}

int mb_id_parse(const char *s, size_t n, uint64_t *id)
{
	uint64_t v = 0;

	if (n != MB_ID_TEXT - 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return -1;
		v = v << 4 | d;
	}
	if (v == 0)
		return -1;
	*id = v;
	return 0;
}

/* ---- shared fields ---------------------------------------------------------- */

static void put_name(wire_w *w, const char *s)
{
	if (mb_name_check(s, strnlen(s, MB_NAME_MAX + 1), NULL, 0) != 0) {
		w->bad = true;
		return;
	}
	wire_put_str(w, s);
}

static void get_name(wire_r *r, char out[MB_NAME_MAX + 1])
{
	wire_get_str(r, out, MB_NAME_MAX + 1);
	if (!r->bad && mb_name_check(out, strlen(out), NULL, 0) != 0)
		r->bad = true;
}

static void put_text(wire_w *w, const char *s, size_t cap)
{
	if (!memchr(s, '\0', cap)) {
		w->bad = true;
		return;
	}
	wire_put_str(w, s);
}

static uint16_t get_count(wire_r *r)
{
	uint16_t n = wire_get_u16(r);

	if (n > MB_BATCH_MAX)
		r->bad = true;
	return n;
}

/* ---- requests --------------------------------------------------------------- */

static void put_send_req(wire_w *w, const mb_req *q)
{
	const mb_req_send *m = &q->u.send;

	put_name(w, m->recipient);
	put_text(w, m->sender, sizeof m->sender);
	put_text(w, m->idem, sizeof m->idem);
	if (m->sender[0] == '\0' || m->kind > MB_KIND_LAST ||
	    (m->idem[0] && !mb_idem_is_valid(m->idem, strlen(m->idem))) ||
	    m->body_len > MB_BODY_HARD_MAX || (m->kind == MB_KIND_CID && m->body_len)) {
		w->bad = true;
		return;
	}
	wire_put_u8(w, m->kind);
	wire_put_u32(w, m->body_len);
	wire_put_raw(w, m->cid, sizeof m->cid);
}

static void get_send_req(wire_r *r, mb_req *q)
{
	mb_req_send *m = &q->u.send;

	get_name(r, m->recipient);
	wire_get_str(r, m->sender, sizeof m->sender);
	wire_get_str(r, m->idem, sizeof m->idem);

	m->kind = wire_get_u8(r);
	m->body_len = wire_get_u32(r);
	wire_get_raw(r, m->cid, sizeof m->cid);
	if (!r->bad && (m->sender[0] == '\0' || m->kind > MB_KIND_LAST ||
	                (m->idem[0] && !mb_idem_is_valid(m->idem, strlen(m->idem))) ||
	                m->body_len > MB_BODY_HARD_MAX || (m->kind == MB_KIND_CID && m->body_len)))
		r->bad = true;
}

static void put_recv_req(wire_w *w, const mb_req *q)
{
	put_name(w, q->u.recv.recipient);
	if (q->u.recv.max == 0 || q->u.recv.max > MB_BATCH_MAX || q->u.recv.lease_ms == 0)
		w->bad = true;
	wire_put_u16(w, q->u.recv.max);
	wire_put_u32(w, q->u.recv.lease_ms);
}

static void get_recv_req(wire_r *r, mb_req *q)
{
	get_name(r, q->u.recv.recipient);
	q->u.recv.max = get_count(r);
	q->u.recv.lease_ms = wire_get_u32(r);
	if (q->u.recv.max == 0 || q->u.recv.lease_ms == 0)
		r->bad = true;
}

static void put_id_req(wire_w *w, const mb_req *q)
{
	put_name(w, q->u.id.recipient);
	if (q->u.id.id == 0)
		w->bad = true;
	wire_put_u64(w, q->u.id.id);
}

static void get_id_req(wire_r *r, mb_req *q)
{
	get_name(r, q->u.id.recipient);
	q->u.id.id = wire_get_u64(r);
	if (q->u.id.id == 0)
		r->bad = true;
}

static void put_dlq_req(wire_w *w, const mb_req *q)
{
	put_name(w, q->u.dlq.recipient);
	if (q->u.dlq.max == 0 || q->u.dlq.max > MB_BATCH_MAX)
		w->bad = true;
	wire_put_u16(w, q->u.dlq.max);
}

static void get_dlq_req(wire_r *r, mb_req *q)
{
	get_name(r, q->u.dlq.recipient);
	q->u.dlq.max = get_count(r);
	if (q->u.dlq.max == 0)
		r->bad = true;
}

/* ---- replies ---------------------------------------------------------------- */

static void put_send_rep(wire_w *w, const mb_rep *p)
{
	if (p->u.send.id == 0)
		w->bad = true;
	wire_put_u64(w, p->u.send.id);
	wire_put_u8(w, p->u.send.replay);
	wire_put_u64(w, p->u.send.sent_ms);
}

static void get_send_rep(wire_r *r, mb_rep *p)
{
	p->u.send.id = wire_get_u64(r);
	p->u.send.replay = wire_get_bool(r);
	p->u.send.sent_ms = wire_get_u64(r);
	if (p->u.send.id == 0)
		r->bad = true;
}

static void put_item(wire_w *w, const mb_item *it)
{
	if (it->id == 0 || it->kind > MB_KIND_LAST || it->body_len > MB_BODY_HARD_MAX ||
	    (it->kind == MB_KIND_CID && it->body_len)) {
		w->bad = true;
		return;
	}
	wire_put_u64(w, it->id);
	put_text(w, it->sender, sizeof it->sender);
	wire_put_u8(w, it->kind);
	wire_put_u32(w, it->deliveries);
	wire_put_u64(w, it->sent_ms);
	wire_put_u64(w, it->lease_until_ms);
	wire_put_u32(w, it->body_len);
	wire_put_raw(w, it->cid, sizeof it->cid);
}

static void get_item(wire_r *r, mb_item *it)
{
	it->id = wire_get_u64(r);
	wire_get_str(r, it->sender, sizeof it->sender);
	it->kind = wire_get_u8(r);
	it->deliveries = wire_get_u32(r);
	it->sent_ms = wire_get_u64(r);
	it->lease_until_ms = wire_get_u64(r);
	it->body_len = wire_get_u32(r);
	wire_get_raw(r, it->cid, sizeof it->cid);
	if (it->id == 0 || it->kind > MB_KIND_LAST || it->body_len > MB_BODY_HARD_MAX ||
	    (it->kind == MB_KIND_CID && it->body_len))
		r->bad = true;
}

static void put_items_rep(wire_w *w, const mb_rep *p)
{
	const mb_rep_items *m = &p->u.items;

	if (m->n > MB_BATCH_MAX) {
		w->bad = true;
		return;
	}
	wire_put_u16(w, m->n);
	for (unsigned i = 0; i < m->n && !w->bad; i++)
		put_item(w, &m->items[i]);
}

static void get_items_rep(wire_r *r, mb_rep *p)
{
	mb_rep_items *m = &p->u.items;

	m->n = get_count(r);
	for (unsigned i = 0; i < m->n && !r->bad; i++)
		get_item(r, &m->items[i]);
}

static void put_nack_rep(wire_w *w, const mb_rep *p)
{
	wire_put_u8(w, p->u.nack.dlq);
	wire_put_u64(w, p->u.nack.visible_ms);
}

static void get_nack_rep(wire_r *r, mb_rep *p)
{
	p->u.nack.dlq = wire_get_bool(r);
	p->u.nack.visible_ms = wire_get_u64(r);
}

static void put_err_rep(wire_w *w, const mb_rep *p)
{
	put_text(w, p->u.err.code, sizeof p->u.err.code);
	put_text(w, p->u.err.message, sizeof p->u.err.message);
	if (!p->u.err.code[0])
		w->bad = true;
}

static void get_err_rep(wire_r *r, mb_rep *p)
{
	wire_get_str(r, p->u.err.code, sizeof p->u.err.code);
	wire_get_str(r, p->u.err.message, sizeof p->u.err.message);
	if (!r->bad && !p->u.err.code[0])
		r->bad = true;
}

/* ---- the verb table --------------------------------------------------------- */

typedef struct mb_verb {
	const char *name;
	void      (*req_put)(wire_w *, const mb_req *);   /* NULL: empty */
	void      (*req_get)(wire_r *, mb_req *);
	void      (*rep_put)(wire_w *, const mb_rep *);   /* the 200 reply; NULL: empty */
	void      (*rep_get)(wire_r *, mb_rep *);
} mb_verb;

static const mb_verb mb_verbs[MB_VERB_LAST + 1] = {
	[MB_PING]    = { "PING", NULL, NULL, NULL, NULL },
	[MB_SEND]    = { "SEND", put_send_req, get_send_req, put_send_rep, get_send_rep },
	[MB_RECV]    = { "RECV", put_recv_req, get_recv_req, put_items_rep, get_items_rep },
	[MB_ACK]     = { "ACK", put_id_req, get_id_req, NULL, NULL },
	[MB_NACK]    = { "NACK", put_id_req, get_id_req, put_nack_rep, get_nack_rep },
	[MB_DLQ]     = { "DLQ", put_dlq_req, get_dlq_req, put_items_rep, get_items_rep },
	[MB_REQUEUE] = { "REQUEUE", put_id_req, get_id_req, NULL, NULL },
};

static const mb_verb *mb_verb_of(uint16_t verb)
{
	return verb >= 1 && verb <= MB_VERB_LAST ? &mb_verbs[verb] : NULL;
}

static bool mb_status_is_err(uint16_t status)
{
	return status >= MB_STATUS_ERR_MIN && status <= MB_STATUS_ERR_MAX;
}

const char *mb_msg_verb_name(uint16_t verb)
{
	const mb_verb *v = mb_verb_of(verb);

	return v ? v->name : "unknown";
}

/* ---- entry points ----------------------------------------------------------- */

ssize_t mb_msg_req_encode(const mb_req *q, uint8_t *buf, size_t cap)
{
	const mb_verb *v = mb_verb_of(q->verb);
	wire_w w;

	if (!v)
		return -1;
	wire_w_init(&w, buf, cap);
	if (v->req_put)
		v->req_put(&w, q);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int mb_msg_req_decode(uint16_t verb, const uint8_t *p, size_t n, mb_req *q)
{
	const mb_verb *v = mb_verb_of(verb);
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

ssize_t mb_msg_rep_encode(const mb_rep *p, uint8_t *buf, size_t cap)
{
	const mb_verb *v = mb_verb_of(p->verb);
	wire_w w;

	if (!v || (!mb_status_is_err(p->status) && p->status != MB_STATUS_OK))
		return -1;
	wire_w_init(&w, buf, cap);
	if (mb_status_is_err(p->status))
		put_err_rep(&w, p);
	else if (v->rep_put)
		v->rep_put(&w, p);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int mb_msg_rep_decode(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, mb_rep *out)
{
	const mb_verb *v = mb_verb_of(verb);
	wire_r r;

	memset(out, 0, sizeof *out);
	if (!v || (!mb_status_is_err(status) && status != MB_STATUS_OK))
		return -1;
	out->verb = verb;
	out->status = status;
	wire_r_init(&r, p, n);
	if (mb_status_is_err(status))
		get_err_rep(&r, out);
	else if (v->rep_get)
		v->rep_get(&r, out);
	if (wire_end(&r) != 0) {
		memset(out, 0, sizeof *out);
		return -1;
	}
	return 0;
}

bool mb_msg_req_has_fd(const mb_req *q)
{
	return q->verb == MB_SEND && q->u.send.body_len > 0;
}

bool mb_msg_rep_has_fd(const mb_rep *r)
{
	if (r->status != MB_STATUS_OK || (r->verb != MB_RECV && r->verb != MB_DLQ))
		return false;
	for (unsigned i = 0; i < r->u.items.n; i++)
		if (r->u.items.items[i].body_len)
			return true;
	return false;
}

void mb_msg_rep_err(mb_rep *r, uint16_t verb, uint16_t status, const char *code,
                    const char *message)
{
	memset(r, 0, sizeof *r);
	r->verb = verb;
	r->status = status;
	snprintf(r->u.err.code, sizeof r->u.err.code, "%s", code);
	snprintf(r->u.err.message, sizeof r->u.err.message, "%s", message);
}
