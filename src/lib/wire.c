/*
 * wire.c — bounded big-endian readers and writers (see wire.h).
 */
#include "lib/wire.h"

#include <string.h>

void wire_w_init(wire_w *w, void *buf, size_t cap)
{
	*w = (wire_w){ .buf = buf, .cap = buf ? cap : 0 };
}

/* Reserve n bytes at the end, or mark the writer bad. */
static uint8_t *wire_w_take(wire_w *w, size_t n)
{
	if (w->bad || n > w->cap - w->len) {
		w->bad = true;
		return NULL;
	}
	uint8_t *p = w->buf + w->len;
	w->len += n;
	return p;
}

static void wire_put_be(wire_w *w, uint64_t v, size_t width)
{
	uint8_t *p = wire_w_take(w, width);
	if (!p)
		return;
	for (size_t i = 0; i < width; i++)
		p[i] = (uint8_t)(v >> (8 * (width - 1 - i)));
}

void wire_put_u8(wire_w *w, uint8_t v)   { wire_put_be(w, v, 1); }
void wire_put_u16(wire_w *w, uint16_t v) { wire_put_be(w, v, 2); }
void wire_put_u32(wire_w *w, uint32_t v) { wire_put_be(w, v, 4); }
void wire_put_u64(wire_w *w, uint64_t v) { wire_put_be(w, v, 8); }

void wire_put_raw(wire_w *w, const void *p, size_t n)
{
	uint8_t *d = wire_w_take(w, n);
	if (d && n)
		memcpy(d, p, n);
}

void wire_put_blob(wire_w *w, const void *p, size_t n)
{
	if (n > UINT32_MAX) {
		w->bad = true;
		return;
	}
	wire_put_u32(w, (uint32_t)n);
	wire_put_raw(w, p, n);
}

void wire_put_str(wire_w *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n > WIRE_MAX_STR) {
		w->bad = true;
		return;
	}
	wire_put_u16(w, (uint16_t)n);
	wire_put_raw(w, s, n);
}

int wire_w_ok(const wire_w *w)
{
	return w->bad ? -1 : 0;
}

void wire_r_init(wire_r *r, const void *p, size_t len)
{
	*r = (wire_r){ .p = p, .len = p ? len : 0 };
}

/* The next n bytes, or NULL (and the reader marked bad). */
static const uint8_t *wire_r_take(wire_r *r, size_t n)
{
	if (r->bad || n > r->len - r->off) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}

static uint64_t wire_get_be(wire_r *r, size_t width)
{
	const uint8_t *p = wire_r_take(r, width);
	uint64_t v = 0;
	for (size_t i = 0; p && i < width; i++)
		v = v << 8 | p[i];
	return v;
}

uint8_t  wire_get_u8(wire_r *r)  { return (uint8_t)wire_get_be(r, 1); }
uint16_t wire_get_u16(wire_r *r) { return (uint16_t)wire_get_be(r, 2); }
uint32_t wire_get_u32(wire_r *r) { return (uint32_t)wire_get_be(r, 4); }
uint64_t wire_get_u64(wire_r *r) { return wire_get_be(r, 8); }

void wire_get_raw(wire_r *r, void *out, size_t n)
{
	const uint8_t *p = wire_r_take(r, n);
	if (p)
		memcpy(out, p, n);
	else if (n)
		memset(out, 0, n);
}

void wire_get_blob(wire_r *r, const uint8_t **p, size_t *n, size_t max)
{
	uint32_t len = wire_get_u32(r);
	if (len > max)
		r->bad = true;
	const uint8_t *d = r->bad ? NULL : wire_r_take(r, len);
	*p = d;
	*n = d ? len : 0;
}

void wire_get_str(wire_r *r, char *out, size_t outlen)
{
	uint16_t len = wire_get_u16(r);
	const uint8_t *d = NULL;
	if (!r->bad && (outlen == 0 || len >= outlen))
		r->bad = true;
	if (!r->bad)
		d = wire_r_take(r, len);
	if (d && memchr(d, 0, len)) {
		r->bad = true;
		d = NULL;
	}
	if (outlen == 0)
		return;
	if (d)
		memcpy(out, d, len);
	out[d ? len : 0] = '\0';
}

bool wire_get_bool(wire_r *r)
{
	uint8_t v = wire_get_u8(r);
	if (v > 1)
		r->bad = true;
	return v == 1;
}

int wire_end(const wire_r *r)
{
	return !r->bad && r->off == r->len ? 0 : -1;
}
