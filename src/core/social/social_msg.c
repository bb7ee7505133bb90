/*
 * social_msg.c — encoding of the social verbs (see social_msg.h).
 */
#include "core/social/social_msg.h"

#include <stdio.h>
#include <string.h>

#include "lib/wire.h"

bool social_user_check(const char *s, size_t n)
{
	if (n == 0 || n > SOCIAL_USER_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

const char *social_msg_verb_name(uint16_t verb)
{
	static const char *const names[SOCIAL_NVERBS] = {
		"PING", "FOLLOW", "UNFOLLOW", "LIST", "POST", "FEED",
	};
	return verb < SOCIAL_NVERBS ? names[verb] : "UNKNOWN";
}

/* ---- fields ------------------------------------------------------------------ */

static void put_user(wire_w *w, const char *u)
{
	if (!social_user_check(u, strlen(u)))
		w->bad = true;
	else
		wire_put_str(w, u);
}

static void get_user(wire_r *r, char out[SOCIAL_USER_MAX + 1])
{
	wire_get_str(r, out, SOCIAL_USER_MAX + 1);
	if (!r->bad && !social_user_check(out, strlen(out)))
		r->bad = true;
}

static void put_cursor(wire_w *w, const char *c)
{
	if (strlen(c) > SOCIAL_CURSOR_MAX)
		w->bad = true;
	else
		wire_put_str(w, c);
}

static void get_limit(wire_r *r, uint16_t *limit)
{
	*limit = wire_get_u16(r);
	if (*limit == 0 || *limit > SOCIAL_PAGE_MAX)
		r->bad = true;
}

/* ---- requests ---------------------------------------------------------------- */

/* LIST and FEED: user, cursor, limit. */
static void put_page(wire_w *w, const social_req *q)
{
	put_user(w, q->user);
	put_cursor(w, q->cursor);
	wire_put_u16(w, q->limit);
	if (q->limit == 0 || q->limit > SOCIAL_PAGE_MAX)
		w->bad = true;
}

static void get_page(wire_r *r, social_req *out)
{
	get_user(r, out->user);
	wire_get_str(r, out->cursor, sizeof out->cursor);
	get_limit(r, &out->limit);
}

ssize_t social_msg_req_encode(const social_req *q, uint8_t *buf, size_t cap)
{
	wire_w w;

	wire_w_init(&w, buf, cap);
	switch (q->verb) {
	case SOCIAL_PING:
		break;
	case SOCIAL_FOLLOW:
	case SOCIAL_UNFOLLOW:
		put_user(&w, q->user);
		put_user(&w, q->other);
		break;
	case SOCIAL_LIST:
		wire_put_u8(&w, q->kind);
		if (q->kind > SOCIAL_FOLLOWING)
			w.bad = true;
		put_page(&w, q);
		break;
	case SOCIAL_FEED:
		put_page(&w, q);
		break;
	case SOCIAL_POST:
		put_user(&w, q->user);
		wire_put_raw(&w, q->cid, sizeof q->cid);
		break;
	default:
		return -1;
	}
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int social_msg_req_decode(uint16_t verb, const uint8_t *p, size_t n, social_req *out)
{
	wire_r r;

	memset(out, 0, sizeof *out);
	out->verb = verb;
	wire_r_init(&r, p, n);
	switch (verb) {
	case SOCIAL_PING:
		break;
	case SOCIAL_FOLLOW:
	case SOCIAL_UNFOLLOW:
		get_user(&r, out->user);
		get_user(&r, out->other);
		break;
	case SOCIAL_LIST:
		out->kind = wire_get_u8(&r);
		if (out->kind > SOCIAL_FOLLOWING)
			r.bad = true;
		get_page(&r, out);
		break;
	case SOCIAL_FEED:
		get_page(&r, out);
		break;
	case SOCIAL_POST:
		get_user(&r, out->user);
		wire_get_raw(&r, out->cid, sizeof out->cid);
		break;
	default:
		return -1;
	}
	return wire_end(&r);
}

int social_msg_req_check(uint16_t verb, const uint8_t *p, size_t n)
{
	static social_req q;   /* loop thread */

	return social_msg_req_decode(verb, p, n, &q);
}

/* ---- replies ----------------------------------------------------------------- */

void social_msg_rep_err(social_rep *p, uint16_t verb, uint16_t status, const char *code,
                        const char *message)
{
	p->verb = verb;
	p->status = status;
	snprintf(p->code, sizeof p->code, "%s", code);
	snprintf(p->message, sizeof p->message, "%s", message);
	p->n = 0;
	p->next[0] = '\0';
}

static void put_ok(wire_w *w, const social_rep *p)
{
	switch (p->verb) {
	case SOCIAL_FOLLOW:
	case SOCIAL_UNFOLLOW:
		wire_put_u8(w, p->flag ? 1 : 0);
		break;
	case SOCIAL_LIST:
		wire_put_u16(w, p->n);
		for (size_t i = 0; i < p->n && i < SOCIAL_PAGE_MAX; i++)
			put_user(w, p->names[i]);
		put_cursor(w, p->next);
		break;
	case SOCIAL_POST:
		wire_put_u64(w, p->post);
		wire_put_u64(w, p->ts_ms);
		break;
	case SOCIAL_FEED:
		wire_put_u16(w, p->n);
		for (size_t i = 0; i < p->n && i < SOCIAL_PAGE_MAX; i++) {
			wire_put_u64(w, p->items[i].post);
			wire_put_u64(w, p->items[i].ts_ms);
			put_user(w, p->items[i].author);
			wire_put_raw(w, p->items[i].cid, 32);
		}
		put_cursor(w, p->next);
		break;
	default:
		break;
	}
	if (p->n > SOCIAL_PAGE_MAX)
		w->bad = true;
}

ssize_t social_msg_rep_encode(const social_rep *p, uint8_t *buf, size_t cap)
{
	wire_w w;

	wire_w_init(&w, buf, cap);
	if (p->status != 200) {
		wire_put_str(&w, p->code);
		wire_put_str(&w, p->message);
	} else {
		put_ok(&w, p);
	}
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

static void get_ok(wire_r *r, social_rep *p)
{
	switch (p->verb) {
	case SOCIAL_FOLLOW:
	case SOCIAL_UNFOLLOW:
		p->flag = wire_get_bool(r);
		break;
	case SOCIAL_LIST:
		p->n = wire_get_u16(r);
		if (p->n > SOCIAL_PAGE_MAX) {
			r->bad = true;
			return;
		}
		for (size_t i = 0; i < p->n; i++)
			get_user(r, p->names[i]);
		wire_get_str(r, p->next, sizeof p->next);
		break;
	case SOCIAL_POST:
		p->post = wire_get_u64(r);
		p->ts_ms = wire_get_u64(r);
		break;
	case SOCIAL_FEED:
		p->n = wire_get_u16(r);
		if (p->n > SOCIAL_PAGE_MAX) {
			r->bad = true;
			return;
		}
		for (size_t i = 0; i < p->n; i++) {
			p->items[i].post = wire_get_u64(r);
			p->items[i].ts_ms = wire_get_u64(r);
			get_user(r, p->items[i].author);
			wire_get_raw(r, p->items[i].cid, 32);
		}
		wire_get_str(r, p->next, sizeof p->next);
		break;
	default:
		break;
	}
}

int social_msg_rep_decode(uint16_t verb, uint16_t status, const uint8_t *p, size_t n,
                          social_rep *out)
{
	wire_r r;

	if (verb >= SOCIAL_NVERBS)
		return -1;
	out->verb = verb;
	out->status = status;
	out->n = 0;
	out->next[0] = '\0';
	out->code[0] = out->message[0] = '\0';
	wire_r_init(&r, p, n);
	if (status != 200) {
		wire_get_str(&r, out->code, sizeof out->code);
		wire_get_str(&r, out->message, sizeof out->message);
	} else {
		get_ok(&r, out);
	}
	return wire_end(&r);
}
