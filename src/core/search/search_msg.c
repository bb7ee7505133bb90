/*
 * search_msg.c — encoders and decoders of the search messages (see
 * search_msg.h), written with lib/wire.h: a compose and its reader are
 * the same list of fields.
 */
#include "core/search/search_msg.h"

#include <stdlib.h>
#include <string.h>

#include "lib/wire.h"

/* The longest QUERY answer fits the buffers sized for the longest INDEX. */
_Static_assert(3u + SEARCH_HITS_MAX * (32u + 2u + NAME_MAX_LEN + 1u + 8u + 2u + SEARCH_CTYPE_MAX)
               <= SEARCH_MSG_MAX, "search hits outgrow SEARCH_MSG_MAX");

const char *search_msg_verb_name(uint16_t verb)
{
	switch (verb) {
	case SEARCH_PING:  return "PING";
	case SEARCH_INDEX: return "INDEX";
	case SEARCH_QUERY: return "QUERY";
	case SEARCH_NAME:  return "NAME";
	default:           return "unknown";
	}
}

ssize_t search_msg_index_encode(const search_doc *d, uint8_t *buf, size_t cap)
{
	wire_w w;

	if (d->text_len > SEARCH_TEXT_MAX || !memchr(d->ctype, '\0', sizeof d->ctype))
		return -1;
	wire_w_init(&w, buf, cap);
	wire_put_raw(&w, d->id, 32);
	wire_put_u64(&w, d->size);
	wire_put_str(&w, d->ctype);
	wire_put_blob(&w, d->text_len ? d->text : (const uint8_t *)"", d->text_len);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int search_msg_index_decode(const uint8_t *p, size_t n, search_doc *d)
{
	wire_r r;

	memset(d, 0, sizeof *d);
	wire_r_init(&r, p, n);
	wire_get_raw(&r, d->id, 32);
	d->size = wire_get_u64(&r);
	wire_get_str(&r, d->ctype, sizeof d->ctype);
	wire_get_blob(&r, &d->text, &d->text_len, SEARCH_TEXT_MAX);
	return wire_end(&r);
}

/* A name as name.h admits it, and a seq a record can carry. */
static bool search_name_ok(const char *name, uint64_t seq)
{
	char msg[NAME_MSG_MAX];
	size_t n = strnlen(name, NAME_MAX_LEN + 1);

	return n <= NAME_MAX_LEN && seq >= 1 && name_check(name, n, msg, sizeof msg) == NAME_OK;
}

ssize_t search_msg_name_encode(const search_name *nm, uint8_t *buf, size_t cap)
{
	wire_w w;

	if (!search_name_ok(nm->name, nm->seq))
		return -1;
	wire_w_init(&w, buf, cap);
	wire_put_str(&w, nm->name);
	wire_put_raw(&w, nm->id, 32);
	wire_put_u64(&w, nm->seq);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int search_msg_name_decode(const uint8_t *p, size_t n, search_name *nm)
{
	wire_r r;

	memset(nm, 0, sizeof *nm);
	wire_r_init(&r, p, n);
	wire_get_str(&r, nm->name, sizeof nm->name);
	wire_get_raw(&r, nm->id, 32);
	nm->seq = wire_get_u64(&r);
	return wire_end(&r) == 0 && search_name_ok(nm->name, nm->seq) ? 0 : -1;
}

ssize_t search_msg_query_encode(const char *q, uint16_t limit, uint8_t *buf, size_t cap)
{
	wire_w w;

	if (strnlen(q, SEARCH_QUERY_MAX) >= SEARCH_QUERY_MAX || limit == 0 || limit > SEARCH_HITS_MAX)
		return -1;
	wire_w_init(&w, buf, cap);
	wire_put_u16(&w, limit);
	wire_put_str(&w, q);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int search_msg_query_decode(const uint8_t *p, size_t n, char q[SEARCH_QUERY_MAX], uint16_t *limit)
{
	wire_r r;

	wire_r_init(&r, p, n);
	*limit = wire_get_u16(&r);
	wire_get_str(&r, q, SEARCH_QUERY_MAX);
	if (wire_end(&r) != 0 || *limit == 0 || *limit > SEARCH_HITS_MAX)
		return -1;
	return 0;
}

ssize_t search_msg_hits_encode(const search_hits *h, uint8_t *buf, size_t cap)
{
	wire_w w;

	if (h->n > SEARCH_HITS_MAX)
		return -1;
	wire_w_init(&w, buf, cap);
	wire_put_u8(&w, h->partial);
	wire_put_u16(&w, h->n);
	for (size_t i = 0; i < h->n; i++) {
		const search_hit *x = &h->hit[i];

		if (!memchr(x->ctype, '\0', SEARCH_CTYPE_MAX) || !memchr(x->name, '\0', sizeof x->name) ||
		    (x->name[0] && !search_name_ok(x->name, 1)) || (!x->meta && (x->size || x->ctype[0])))
			return -1;
		wire_put_raw(&w, x->id, 32);
		wire_put_str(&w, x->name);
		wire_put_u8(&w, x->meta);
		if (x->meta) {
			wire_put_u64(&w, x->size);
			wire_put_str(&w, x->ctype);
		}
	}
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int search_msg_hits_decode(const uint8_t *p, size_t n, search_hits *h)
{
	wire_r r;

	memset(h, 0, sizeof *h);
	wire_r_init(&r, p, n);
	h->partial = wire_get_bool(&r);
	h->n = wire_get_u16(&r);
	if (h->n > SEARCH_HITS_MAX)
		return -1;
	for (size_t i = 0; i < h->n; i++) {
		search_hit *x = &h->hit[i];

		wire_get_raw(&r, x->id, 32);
		wire_get_str(&r, x->name, sizeof x->name);
		x->meta = wire_get_bool(&r);
		if (x->meta) {
			x->size = wire_get_u64(&r);
			wire_get_str(&r, x->ctype, SEARCH_CTYPE_MAX);
		}
		/* a name in a hit passes name.h: the gateway writes it into JSON as is */
		if (r.bad || (x->name[0] && !search_name_ok(x->name, 1)))
			return -1;
	}
	return wire_end(&r);
}

ssize_t search_msg_err_encode(const char *message, uint8_t *buf, size_t cap)
{
	char m[SEARCH_MSG_TEXT_MAX];
	size_t n = strnlen(message, sizeof m - 1);
	wire_w w;

	memcpy(m, message, n);
	m[n] = '\0';
	wire_w_init(&w, buf, cap);
	wire_put_str(&w, m);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int search_msg_err_decode(const uint8_t *p, size_t n, char msg[SEARCH_MSG_TEXT_MAX])
{
	wire_r r;

	wire_r_init(&r, p, n);
	wire_get_str(&r, msg, SEARCH_MSG_TEXT_MAX);
	return wire_end(&r);
}

int search_msg_req_check(uint16_t verb, const uint8_t *p, size_t n)
{
	search_doc d;
	search_name nm;
	char q[SEARCH_QUERY_MAX];
	uint16_t limit;

	switch (verb) {
	case SEARCH_PING:  return n == 0 ? 0 : -1;
	case SEARCH_INDEX: return search_msg_index_decode(p, n, &d);
	case SEARCH_QUERY: return search_msg_query_decode(p, n, q, &limit);
	case SEARCH_NAME:  return search_msg_name_decode(p, n, &nm);
	default:           return -1;
	}
}

int search_msg_rep_check(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, size_t nfds)
{
	char m[SEARCH_MSG_TEXT_MAX];
	search_hits *h;
	int rc;

	if (nfds != 0)
		return -1;
	if (status >= 400 && status <= 599)
		return search_msg_err_decode(p, n, m);
	if (status != 200)
		return -1;
	if (verb != SEARCH_QUERY)
		return n == 0 ? 0 : -1;
	if (!(h = malloc(sizeof *h)))
		return 0;   /* cannot check now; the caller's decode checks again */
	rc = search_msg_hits_decode(p, n, h);
	free(h);
	return rc;
}
