/*
 * wire.h — bounded binary readers and writers for the node's internal
 * messages (the control channel and the storage verbs), in the manner of
 * OpenBSD's imsg (m_add_* / m_get_* / m_end): every message type has one
 * compose function and one reader built from these calls, shared by both ends.
 *
 * Encoding: integers big-endian, fixed width; a blob is a u32 length then the
 * bytes; a string is a u16 length then the bytes (no NUL inside, none after).
 *
 * Both sides keep a sticky error flag, so a compose or read function is a
 * straight run of calls with one check at the end (wire_w_ok / wire_end):
 * a short buffer, a length past the end, an over-long string or bytes left
 * over all make the message malformed. Nothing here allocates; a reader
 * borrows the message buffer (blob pointers point into it).
 *
 * Peers inside the node are the same binary: a malformed internal message is
 * a bug, not input, and the receiver treats it as fatal (see docs/internal.md).
 */
#ifndef MN_LIB_WIRE_H
#define MN_LIB_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_MAX_STR 0xffffu          /* a u16 length prefix */

typedef struct wire_w {
	uint8_t *buf;   /* borrowed */
	size_t   cap;
	size_t   len;
	bool     bad;   /* the buffer was too small: the message is incomplete */
} wire_w;

typedef struct wire_r {
	const uint8_t *p;   /* borrowed */
	size_t         len;
	size_t         off;
	bool           bad; /* read past the end, or a field out of its bounds */
} wire_r;

void wire_w_init(wire_w *w, void *buf, size_t cap);
void wire_put_u8(wire_w *w, uint8_t v);
void wire_put_u16(wire_w *w, uint16_t v);
void wire_put_u32(wire_w *w, uint32_t v);
void wire_put_u64(wire_w *w, uint64_t v);
/* n raw bytes (a fixed-size field: the reader knows n). */
void wire_put_raw(wire_w *w, const void *p, size_t n);
/* u32 length + bytes. */
void wire_put_blob(wire_w *w, const void *p, size_t n);
/* u16 length + bytes of a C string (over WIRE_MAX_STR marks the writer bad). */
void wire_put_str(wire_w *w, const char *s);
/* 0 when everything fit (w->len is the message length), -1 otherwise. */
__attribute__((warn_unused_result)) int wire_w_ok(const wire_w *w);

void wire_r_init(wire_r *r, const void *p, size_t len);
/* Each returns 0 (and marks the reader bad) when the field is not there. */
uint8_t  wire_get_u8(wire_r *r);
uint16_t wire_get_u16(wire_r *r);
uint32_t wire_get_u32(wire_r *r);
uint64_t wire_get_u64(wire_r *r);
/* n raw bytes into out (zeroed when short). */
void wire_get_raw(wire_r *r, void *out, size_t n);
/* A blob of at most max bytes: *p borrows the message buffer. */
void wire_get_blob(wire_r *r, const uint8_t **p, size_t *n, size_t max);
/* A string into out (NUL-terminated); it must fit in outlen - 1 bytes and
 * contain no NUL byte. */
void wire_get_str(wire_r *r, char *out, size_t outlen);
/* A u8 that must be 0 or 1. */
bool wire_get_bool(wire_r *r);
/* 0 when every read succeeded and no byte is left over, -1 otherwise. */
__attribute__((warn_unused_result)) int wire_end(const wire_r *r);

#endif
