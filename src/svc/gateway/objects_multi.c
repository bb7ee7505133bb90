/*
 * objects_multi.c — the framing of a 206 multipart/byteranges answer
 * (RFC 9110 §14.6, RFC 2046 §5.1.1): boundary, part headers, close
 * delimiter and the body's length. The bytes of each part are objects_get.c's
 * business (read and verified group by group like any range); nothing here
 * touches the object.
 *
 * The boundary is 16 bytes from the kernel's CSPRNG in hex: a client cannot
 * predict it, so an object's bytes cannot be crafted to contain it (a
 * parser that scans for the delimiter is not fooled), and its fixed length
 * makes every part head a function of (k, S, E, len) and the type alone — the
 * Content-Length is computed before the status line and keep-alive works.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "svc/gateway/objects.h"

objects_multi *objects_multi_new(const range_span *spans, size_t n, uint64_t len,
                                 const char *ctype)
{
	static const char hex[] = "0123456789abcdef";
	objects_multi *m = calloc(1, sizeof *m);

	if (!m)
		return NULL;
	m->spans = calloc(n, sizeof *m->spans);
	if (!m->spans) {
		free(m);
		return NULL;
	}
	memcpy(m->spans, spans, n * sizeof *spans);
	m->n = n;
	m->len = len;
	if (!ctype || !ctype[0] || strlen(ctype) >= sizeof m->ctype)
		ctype = OBJECTS_CONTENT_TYPE;
	memcpy(m->ctype, ctype, strlen(ctype) + 1);
	for (size_t i = 0; i < OBJECTS_BOUNDARY_LEN / 8u; i++) {
		uint32_t r = util_random_u32();

		for (size_t j = 0; j < 8u; j++, r >>= 4)
			m->boundary[i * 8u + j] = hex[r & 15u];
	}
	m->boundary[OBJECTS_BOUNDARY_LEN] = '\0';
	return m;
}

void objects_multi_free(objects_multi *m)
{
	if (!m)
		return;
	free(m->spans);
	free(m);
}

void objects_multi_content_type(const objects_multi *m, char *out, size_t cap)
{
	snprintf(out, cap, "multipart/byteranges; boundary=%s", m->boundary);
}

size_t objects_multi_head(const objects_multi *m, size_t k, char out[OBJECTS_PART_HEAD_MAX])
{
	int w = snprintf(out, OBJECTS_PART_HEAD_MAX,
	                 "%s--%s\r\nContent-Type: %s\r\n"
	                 "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n\r\n",
	                 k ? "\r\n" : "", m->boundary, m->ctype, m->spans[k].start,
	                 m->spans[k].end, m->len);

	/* 141 bytes and the type (< 128) at most (three 20-digit numbers):
	 * never truncated */
	return w > 0 && (size_t)w < OBJECTS_PART_HEAD_MAX ? (size_t)w : 0;
}

size_t objects_multi_tail(const objects_multi *m, char out[OBJECTS_PART_HEAD_MAX])
{
	int w = snprintf(out, OBJECTS_PART_HEAD_MAX, "\r\n--%s--\r\n", m->boundary);

	return w > 0 && (size_t)w < OBJECTS_PART_HEAD_MAX ? (size_t)w : 0;
}

int64_t objects_multi_body_len(const objects_multi *m)
{
	char buf[OBJECTS_PART_HEAD_MAX];
	uint64_t total = objects_multi_tail(m, buf);

	for (size_t k = 0; k < m->n; k++) {
		uint64_t part = objects_multi_head(m, k, buf) + (m->spans[k].end - m->spans[k].start);

		/* part + 1 bytes more; the spans are disjoint inside len, so only
		 * an object near 2^63 bytes can overflow */
		if (part >= (uint64_t)INT64_MAX - total)
			return -1;
		total += part + 1u;
	}
	return (int64_t)total;
}
