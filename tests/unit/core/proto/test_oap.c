/*
 * test_oap.c — the OAP/1 codec: the four public vectors of
 * tests/vectors/README.md §2 decode to their exact fields and re-encode byte
 * for byte; every decoder rule, its boundary and its place in the check
 * order; encoder refusals; capped zstd decompression of COMP payloads.
 *
 * The vectors are copied here as hex (tests never read ../shared).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "core/proto/oap.h"

#define MAX_VEC        512
#define SKIP_MAGIC     0x184D2A50u   /* zstd skippable frame, LE on the wire */
#define SKIP_HDR       8u
#define BOMB_BYTES     (64u << 20)
#define BOMB_CHUNK     (1u << 20)

/* ---- helpers ---------------------------------------------------------- */

static size_t
hex_decode(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	int hi = -1;

	for (; *hex; hex++) {
		int v;
		if (*hex == ' ')
			continue;
		v = (*hex >= 'a') ? *hex - 'a' + 10 : *hex - '0';
		if (hi < 0) {
			hi = v;
			continue;
		}
		assert_true(n < cap);
		out[n++] = (uint8_t)(hi << 4 | v);
		hi = -1;
	}
	assert_int_equal(hi, -1);
	return n;
}

static uint32_t
rng_next(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* A valid 38-byte header with the given fields (len counts the frame). */
static void
put_hdr(uint8_t *b, uint32_t len, uint16_t ver, uint16_t flags, uint16_t cap_len)
{
	memset(b, 0, OAP_HDR_LEN);
	b[0] = (uint8_t)(len >> 24); b[1] = (uint8_t)(len >> 16);
	b[2] = (uint8_t)(len >> 8);  b[3] = (uint8_t)len;
	b[4] = (uint8_t)(ver >> 8);  b[5] = (uint8_t)ver;
	b[6] = (uint8_t)(flags >> 8); b[7] = (uint8_t)flags;
	b[28] = (uint8_t)(cap_len >> 8); b[29] = (uint8_t)cap_len;
}

static oap_status
hdr_status(uint32_t len, uint16_t ver, uint16_t flags, uint16_t cap_len)
{
	uint8_t b[OAP_HDR_LEN];
	oap_frame f;

	put_hdr(b, len, ver, flags, cap_len);
	return oap_decode_header(b, sizeof b, OAP_MAX_FRAME, &f);
}

/* ---- the public vectors ----------------------------------------------- */

struct vec {
	const char *hex;
	uint32_t    len;
	uint16_t    flags, code, app;
	uint8_t     tenant_lo;
	uint64_t    corr;
	const char *cap;
	const char *payload;
};

static const struct vec VECS[] = {
	{ "00000036 0001 0001 0000 0000 000000000000000000000000000000aa 0000 "
	  "000000000000002a 7b227561223a2273646b2f302e31227d",
	  0x36, OAP_F_REQ, 0, 0, 0xaa, 42, "", "{\"ua\":\"sdk/0.1\"}" },
	{ "0000008b 0001 0002 00c8 0000 000000000000000000000000000000bb 0000 "
	  "0000000000000007 7b226d61785f6672616d65223a313034383537362c226d61785f"
	  "696e666c69676874223a36342c22666c6167735f737570706f72746564223a323535"
	  "2c2276657273696f6e73223a5b315d2c227472616e73706f727473223a5b22746370"
	  "2b746c73225d7d",
	  0x8b, OAP_F_RESP, 200, 0, 0xbb, 7, "",
	  "{\"max_frame\":1048576,\"max_inflight\":64,\"flags_supported\":255,"
	  "\"versions\":[1],\"transports\":[\"tcp+tls\"]}" },
	{ "00000041 0001 0009 0000 0064 000000000000000000000000000000cc 001b "
	  "0000000000000063 6d616361726f6f6e3a73636f70653d726561643a74746c3d363073",
	  0x41, OAP_F_REQ | OAP_F_START, 0, 100, 0xcc, 99,
	  "macaroon:scope=read:ttl=60s", "" },
	{ "00000031 0001 0002 00c8 00c8 000000000000000000000000000000dd 0000 "
	  "000000000000007b 68656c6c6f20776f726c64",
	  0x31, OAP_F_RESP, 200, 200, 0xdd, 123, "", "hello world" },
};
#define NVECS (sizeof VECS / sizeof VECS[0])

static void
check_fields(const struct vec *v, const oap_frame *f)
{
	uint8_t tenant[16] = { 0 };

	tenant[15] = v->tenant_lo;
	assert_int_equal(f->len, v->len);
	assert_int_equal(f->ver, 1);
	assert_int_equal(f->flags, v->flags);
	assert_int_equal(f->code, v->code);
	assert_int_equal(f->app_proto_id, v->app);
	assert_memory_equal(f->tenant, tenant, 16);
	assert_int_equal(f->cap_len, strlen(v->cap));
	assert_int_equal(f->corr_id, v->corr);
	assert_int_equal(f->cap_size, strlen(v->cap));
	assert_int_equal(f->payload_len, strlen(v->payload));
	if (f->cap_size)
		assert_memory_equal(f->cap, v->cap, f->cap_size);
	if (f->payload_len)
		assert_memory_equal(f->payload, v->payload, f->payload_len);
}

static void
test_vectors_decode_reencode(void **state)
{
	(void)state;
	for (size_t i = 0; i < NVECS; i++) {
		uint8_t wire[MAX_VEC], out[MAX_VEC];
		size_t n = hex_decode(VECS[i].hex, wire, sizeof wire), used = 99;
		oap_frame f;

		assert_int_equal(n, VECS[i].len);
		assert_int_equal(oap_decode(wire, n, OAP_MAX_FRAME, &f, &used), OAP_OK);
		assert_int_equal(used, n);
		check_fields(&VECS[i], &f);
		assert_int_equal(oap_encoded_len(&f), n);
		assert_int_equal(oap_encode(&f, out, sizeof out), (ssize_t)n);
		assert_memory_equal(out, wire, n);
	}
}

/* Encoding from fields alone (ver 0, len/cap_len unset) gives the vector. */
static void
test_vectors_encode_from_fields(void **state)
{
	(void)state;
	for (size_t i = 0; i < NVECS; i++) {
		const struct vec *v = &VECS[i];
		uint8_t wire[MAX_VEC], out[MAX_VEC];
		size_t n = hex_decode(v->hex, wire, sizeof wire);
		oap_frame f = {
			.flags = v->flags, .code = v->code, .app_proto_id = v->app,
			.corr_id = v->corr,
			.cap = (const uint8_t *)v->cap, .cap_size = strlen(v->cap),
			.payload = (const uint8_t *)v->payload,
			.payload_len = strlen(v->payload),
		};
		f.tenant[15] = v->tenant_lo;
		assert_int_equal(oap_encode(&f, out, n), (ssize_t)n);
		assert_memory_equal(out, wire, n);
	}
}

/* All four back to back in one buffer, consumed one by one. */
static void
test_vectors_stream(void **state)
{
	uint8_t buf[4 * MAX_VEC];
	size_t n = 0, off = 0, used;
	oap_frame f;

	(void)state;
	for (size_t i = 0; i < NVECS; i++)
		n += hex_decode(VECS[i].hex, buf + n, sizeof buf - n);
	for (size_t i = 0; i < NVECS; i++) {
		assert_int_equal(oap_decode(buf + off, n - off, OAP_MAX_FRAME, &f, &used),
		                 OAP_OK);
		check_fields(&VECS[i], &f);
		off += used;
	}
	assert_int_equal(off, n);
	assert_int_equal(oap_decode(buf + off, 0, OAP_MAX_FRAME, &f, &used),
	                 OAP_NEED_MORE);
	assert_int_equal(used, OAP_HDR_LEN);
}

/* ---- incremental feeding ---------------------------------------------- */

/* The START vector fed one byte at a time, as a socket might deliver it. */
static void
test_split_feeds(void **state)
{
	uint8_t wire[MAX_VEC];
	size_t n = hex_decode(VECS[2].hex, wire, sizeof wire), used;
	oap_frame f;

	(void)state;
	for (size_t have = 0; have < OAP_HDR_LEN; have++) {
		used = 0;
		assert_int_equal(oap_decode(wire, have, OAP_MAX_FRAME, &f, &used),
		                 OAP_NEED_MORE);
		assert_int_equal(used, OAP_HDR_LEN);
		assert_int_equal(oap_decode_header(wire, have, OAP_MAX_FRAME, &f),
		                 OAP_NEED_MORE);
	}
	/* Header known: NEED_MORE now names the whole frame's size. */
	for (size_t have = OAP_HDR_LEN; have < n; have++) {
		assert_int_equal(oap_decode(wire, have, OAP_MAX_FRAME, &f, &used),
		                 OAP_NEED_MORE);
		assert_int_equal(used, n);
	}
	assert_int_equal(oap_decode(wire, n, OAP_MAX_FRAME, &f, &used), OAP_OK);
	assert_int_equal(used, n);
	check_fields(&VECS[2], &f);
}

/* ---- size rules ------------------------------------------------------- */

static void
test_len_boundary_1mib(void **state)
{
	size_t n = OAP_MAX_FRAME, used;
	uint8_t *buf = calloc(1, n + 1);
	oap_frame f;

	(void)state;
	assert_non_null(buf);
	put_hdr(buf, (uint32_t)n, 1, OAP_F_REQ, 0);
	assert_int_equal(oap_decode(buf, n, OAP_MAX_FRAME, &f, &used), OAP_OK);
	assert_int_equal(used, 1048576);
	assert_int_equal(f.payload_len, 1048576 - 38);

	put_hdr(buf, (uint32_t)n + 1, 1, OAP_F_REQ, 0);
	assert_int_equal(oap_decode(buf, n + 1, OAP_MAX_FRAME, &f, &used),
	                 OAP_E_TOO_LARGE);
	assert_int_equal(used, 0);
	free(buf);
}

/* Oversize is refused from the header alone: nothing more is supplied. */
static void
test_oversize_from_header_only(void **state)
{
	uint8_t b[OAP_HDR_LEN];
	oap_frame f;
	size_t used = 7;

	(void)state;
	put_hdr(b, 1048577, 1, OAP_F_REQ, 0);
	assert_int_equal(oap_decode(b, sizeof b, OAP_MAX_FRAME, &f, &used),
	                 OAP_E_TOO_LARGE);
	assert_int_equal(used, 0);
	put_hdr(b, UINT32_MAX, 1, OAP_F_REQ, 0);
	assert_int_equal(oap_decode_header(b, sizeof b, OAP_MAX_FRAME, &f),
	                 OAP_E_TOO_LARGE);
	/* The size rules need only the 4-byte len field. */
	assert_int_equal(oap_decode_header(b, 4, OAP_MAX_FRAME, &f), OAP_E_TOO_LARGE);
	assert_int_equal(oap_decode_header(b, 3, OAP_MAX_FRAME, &f), OAP_NEED_MORE);
}

static void
test_len_zero_and_short(void **state)
{
	uint8_t b[OAP_HDR_LEN];
	oap_frame f;
	size_t used;

	(void)state;
	assert_int_equal(hdr_status(0, 1, OAP_F_REQ, 0), OAP_E_TOO_LARGE);
	assert_int_equal(hdr_status(1, 1, OAP_F_REQ, 0), OAP_E_TRUNCATED_HEADER);
	assert_int_equal(hdr_status(37, 1, OAP_F_REQ, 0), OAP_E_TRUNCATED_HEADER);
	assert_int_equal(hdr_status(38, 1, OAP_F_REQ, 0), OAP_OK);
	put_hdr(b, 37, 1, OAP_F_REQ, 0);
	assert_int_equal(oap_decode_header(b, 4, OAP_MAX_FRAME, &f),
	                 OAP_E_TRUNCATED_HEADER);
	/* A bare 38-byte frame: empty cap and payload. */
	put_hdr(b, 38, 1, OAP_F_EVENT, 0);
	assert_int_equal(oap_decode(b, sizeof b, OAP_MAX_FRAME, &f, &used), OAP_OK);
	assert_int_equal(used, 38);
	assert_int_equal(f.cap_size, 0);
	assert_int_equal(f.payload_len, 0);
	assert_ptr_equal(f.payload, b + 38);
}

static void
test_max_frame_tightened(void **state)
{
	uint8_t b[OAP_HDR_LEN];
	oap_frame f;

	(void)state;
	put_hdr(b, OAP_INTERNAL_MAX_FRAME, 1, OAP_F_REQ, 0);
	assert_int_equal(oap_decode_header(b, sizeof b, OAP_INTERNAL_MAX_FRAME, &f),
	                 OAP_OK);
	put_hdr(b, OAP_INTERNAL_MAX_FRAME + 1, 1, OAP_F_REQ, 0);
	assert_int_equal(oap_decode_header(b, sizeof b, OAP_INTERNAL_MAX_FRAME, &f),
	                 OAP_E_TOO_LARGE);
	/* 0 means the canon; a caller cannot loosen it past 1 MiB. */
	assert_int_equal(oap_decode_header(b, sizeof b, 0, &f), OAP_OK);
	put_hdr(b, OAP_MAX_FRAME + 1, 1, OAP_F_REQ, 0);
	assert_int_equal(oap_decode_header(b, sizeof b, 0, &f), OAP_E_TOO_LARGE);
	assert_int_equal(oap_decode_header(b, sizeof b, 4u * OAP_MAX_FRAME, &f),
	                 OAP_E_TOO_LARGE);
}

/* ---- version, flags, cap rules ---------------------------------------- */

static void
test_bad_version(void **state)
{
	(void)state;
	assert_int_equal(hdr_status(38, 0, OAP_F_REQ, 0), OAP_E_BAD_VERSION);
	assert_int_equal(hdr_status(38, 2, OAP_F_REQ, 0), OAP_E_BAD_VERSION);
	assert_int_equal(hdr_status(38, 0x0100, OAP_F_REQ, 0), OAP_E_BAD_VERSION);
	assert_int_equal(hdr_status(38, 0xffff, OAP_F_REQ, 0), OAP_E_BAD_VERSION);
}

static void
test_bad_flags(void **state)
{
	(void)state;
	assert_int_equal(hdr_status(38, 1, 0x00ff, 0), OAP_OK);
	assert_int_equal(hdr_status(38, 1, 0x0100, 0), OAP_E_BAD_FLAGS);
	assert_int_equal(hdr_status(38, 1, 0x8000, 0), OAP_E_BAD_FLAGS);
	assert_int_equal(hdr_status(38, 1, 0xff01, 0), OAP_E_BAD_FLAGS);
}

static void
test_cap_without_start(void **state)
{
	(void)state;
	assert_int_equal(hdr_status(39, 1, OAP_F_REQ, 1), OAP_E_CAP_WITHOUT_START);
	assert_int_equal(hdr_status(39, 1, 0x00ff & ~OAP_F_START, 1),
	                 OAP_E_CAP_WITHOUT_START);
	assert_int_equal(hdr_status(39, 1, OAP_F_REQ | OAP_F_START, 1), OAP_OK);
	assert_int_equal(hdr_status(38, 1, OAP_F_START, 0), OAP_OK);
}

static void
test_cap_bounds(void **state)
{
	uint8_t b[64] = { 0 };
	oap_frame f;
	size_t used;
	uint16_t start = OAP_F_REQ | OAP_F_START;

	(void)state;
	/* cap ends exactly at the frame end: ok, empty payload. */
	put_hdr(b, 38 + 5, 1, start, 5);
	memcpy(b + 38, "abcde", 5);
	assert_int_equal(oap_decode(b, 43, OAP_MAX_FRAME, &f, &used), OAP_OK);
	assert_int_equal(f.cap_size, 5);
	assert_memory_equal(f.cap, "abcde", 5);
	assert_int_equal(f.payload_len, 0);
	/* one byte past the end */
	put_hdr(b, 38 + 5, 1, start, 6);
	assert_int_equal(oap_decode(b, 43, OAP_MAX_FRAME, &f, &used), OAP_E_CAP_OOB);
	assert_int_equal(used, 0);
	assert_int_equal(hdr_status(38, 1, start, 0xffff), OAP_E_CAP_OOB);
	assert_int_equal(hdr_status(38 + 0xffff, 1, start, 0xffff), OAP_OK);
}

/* The first failing rule in the documented order is the one reported. */
static void
test_check_order(void **state)
{
	(void)state;
	assert_int_equal(hdr_status(0, 9, 0xff00, 9), OAP_E_TOO_LARGE);
	assert_int_equal(hdr_status(OAP_MAX_FRAME + 1, 9, 0xff00, 9), OAP_E_TOO_LARGE);
	assert_int_equal(hdr_status(20, 9, 0xff00, 9), OAP_E_TRUNCATED_HEADER);
	assert_int_equal(hdr_status(38, 9, 0xff00, 9), OAP_E_BAD_VERSION);
	assert_int_equal(hdr_status(38, 1, 0xff00 | OAP_F_REQ, 9), OAP_E_BAD_FLAGS);
	assert_int_equal(hdr_status(38, 1, OAP_F_REQ, 9), OAP_E_CAP_WITHOUT_START);
	assert_int_equal(hdr_status(38, 1, OAP_F_START, 9), OAP_E_CAP_OOB);
}

/* ---- encoder ---------------------------------------------------------- */

/* oap_encode_head + the payload sent after it (by reference) is the same
 * frame oap_encode writes; the whole frame's cap still holds. */
static void
test_encode_head(void **state)
{
	static uint8_t payload[5000], whole[6000], head[64];
	uint8_t cap[3] = { 1, 2, 3 };
	oap_frame f = { .flags = OAP_F_RESP | OAP_F_START, .code = 200, .app_proto_id = 0x10,
	                .corr_id = 77, .cap = cap, .cap_size = sizeof cap,
	                .payload = payload, .payload_len = sizeof payload };
	ssize_t n, h;

	(void)state;
	for (size_t i = 0; i < sizeof payload; i++)
		payload[i] = (uint8_t)(i * 7);
	n = oap_encode(&f, whole, sizeof whole);
	assert_int_equal(n, OAP_HDR_LEN + sizeof cap + sizeof payload);
	f.payload = NULL;   /* the caller sends it: only its length is encoded */
	h = oap_encode_head(&f, head, sizeof head);
	assert_int_equal(h, OAP_HDR_LEN + sizeof cap);
	assert_memory_equal(head, whole, (size_t)h);
	assert_memory_equal(whole + h, payload, sizeof payload);
	f.payload_len = OAP_MAX_FRAME;   /* over the frame cap as a whole */
	assert_int_equal(oap_encode_head(&f, head, sizeof head), -1);
	f.payload_len = 1;
	assert_int_equal(oap_encode_head(&f, head, OAP_HDR_LEN), -1);   /* head does not fit */
}

static void
test_encode_refusals(void **state)
{
	static uint8_t big[OAP_MAX_FRAME + 64];
	static uint8_t capb[70000];
	uint8_t out[128];
	oap_frame f = { .flags = OAP_F_REQ, .payload = big,
	                .payload_len = OAP_MAX_FRAME - OAP_HDR_LEN };
	uint8_t *o = malloc(OAP_MAX_FRAME + 64);

	(void)state;
	assert_non_null(o);
	assert_int_equal(oap_encode(&f, o, OAP_MAX_FRAME + 64), (ssize_t)OAP_MAX_FRAME);
	f.payload_len++;                                   /* 1048577 total */
	assert_int_equal(oap_encode(&f, o, OAP_MAX_FRAME + 64), -1);
	free(o);

	f = (oap_frame){ .flags = OAP_F_REQ, .cap = capb, .cap_size = 1 };
	assert_int_equal(oap_encode(&f, out, sizeof out), -1);   /* cap, no START */
	f.flags |= OAP_F_START;
	assert_int_equal(oap_encode(&f, out, sizeof out), 39);
	assert_int_equal(oap_encode(&f, out, 38), -1);           /* out too small */
	f.cap_size = 65536;
	assert_int_equal(oap_encode(&f, capb, sizeof capb), -1); /* cap > u16 */

	f = (oap_frame){ .flags = 0x100 };
	assert_int_equal(oap_encode(&f, out, sizeof out), -1);   /* flags > 0xff */
	f = (oap_frame){ .flags = OAP_F_REQ, .ver = 2 };
	assert_int_equal(oap_encode(&f, out, sizeof out), -1);   /* not v1 */
	f = (oap_frame){ .flags = OAP_F_REQ, .payload_len = 3 };
	assert_int_equal(oap_encode(&f, out, sizeof out), -1);   /* NULL payload */
}

static void
test_encode_fills_len_and_cap_len(void **state)
{
	uint8_t out[64], exp[64];
	oap_frame f = { .len = 999, .cap_len = 77, .ver = 0,
	                .flags = OAP_F_START | OAP_F_END, .code = 0x1234,
	                .app_proto_id = 0xabcd, .corr_id = 0x0102030405060708u,
	                .cap = (const uint8_t *)"ab", .cap_size = 2,
	                .payload = (const uint8_t *)"xyz", .payload_len = 3 };

	(void)state;
	for (int i = 0; i < 16; i++)
		f.tenant[i] = (uint8_t)(0xf0 + i);
	size_t n = hex_decode("0000002b 0001 0018 1234 abcd "
	                      "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff 0002 "
	                      "0102030405060708 6162 78797a", exp, sizeof exp);
	assert_int_equal(oap_encoded_len(&f), n);
	assert_int_equal(oap_encode(&f, out, n), (ssize_t)n);
	assert_memory_equal(out, exp, n);
}

static void
test_status_str(void **state)
{
	(void)state;
	assert_string_equal(oap_status_str(OAP_OK), "ok");
	assert_string_equal(oap_status_str(OAP_NEED_MORE), "need more");
	assert_string_equal(oap_status_str(OAP_E_TOO_LARGE), "too large");
	assert_string_equal(oap_status_str(OAP_E_TRUNCATED_HEADER), "truncated header");
	assert_string_equal(oap_status_str(OAP_E_BAD_VERSION), "bad version");
	assert_string_equal(oap_status_str(OAP_E_BAD_FLAGS), "bad flags");
	assert_string_equal(oap_status_str(OAP_E_CAP_WITHOUT_START), "cap without start");
	assert_string_equal(oap_status_str(OAP_E_CAP_OOB), "cap out of bounds");
	assert_string_equal(oap_status_str((oap_status)99), "unknown");
}

/* ---- COMP: capped zstd decompression ---------------------------------- */

static size_t
zc(const uint8_t *src, size_t n, uint8_t *dst, size_t cap)
{
	size_t r = ZSTD_compress(dst, cap, src, n, 3);

	assert_false(ZSTD_isError(r));
	return r;
}

/* Append a skippable frame so the input is exactly `want` bytes long. */
static size_t
pad_to(uint8_t *buf, size_t have, size_t want)
{
	size_t body;

	assert_true(want >= have + SKIP_HDR);
	body = want - have - SKIP_HDR;
	for (unsigned i = 0; i < 4; i++) {
		buf[have + i] = (uint8_t)(SKIP_MAGIC >> (8 * i));
		buf[have + 4 + i] = (uint8_t)(body >> (8 * i));
	}
	memset(buf + have + SKIP_HDR, 0x5a, body);
	return want;
}

static void
expect_refused(const uint8_t *in, size_t n, size_t abs_cap)
{
	uint8_t *out = (uint8_t *)1;
	size_t outlen = 1;

	assert_int_equal(oap_decompress(in, n, abs_cap, &out, &outlen), -1);
	assert_null(out);
	assert_int_equal(outlen, 0);
}

static void
test_comp_round_trip(void **state)
{
	size_t n = 1u << 20, cn, outlen;
	uint8_t *src = malloc(n), *z = malloc(ZSTD_compressBound(n)), *out;
	uint32_t s = 12345;

	(void)state;
	assert_non_null(src);
	assert_non_null(z);
	for (size_t i = 0; i < n; i++)            /* 16 symbols: ratio about 2 */
		src[i] = (uint8_t)('a' + (rng_next(&s) & 15));
	cn = zc(src, n, z, ZSTD_compressBound(n));
	assert_int_equal(oap_decompress(z, cn, OAP_COMP_MAX_OUT, &out, &outlen), 0);
	assert_int_equal(outlen, n);
	assert_memory_equal(out, src, n);
	free(out);
	free(src);
	free(z);
}

/* Output of exactly 10 × inlen is accepted; one byte more is refused. */
static void
test_comp_ratio_boundary(void **state)
{
	enum { IN = 200, OUTN = IN * OAP_COMP_MAX_RATIO };
	static uint8_t zeros[OUTN + 1];
	uint8_t z[IN + 64], *out;
	size_t outlen, cn;

	(void)state;
	cn = pad_to(z, zc(zeros, OUTN, z, sizeof z), IN);
	assert_int_equal(oap_decompress(z, cn, OAP_COMP_MAX_OUT, &out, &outlen), 0);
	assert_int_equal(outlen, OUTN);
	assert_memory_equal(out, zeros, OUTN);
	free(out);

	cn = pad_to(z, zc(zeros, OUTN + 1, z, sizeof z), IN);
	expect_refused(z, cn, OAP_COMP_MAX_OUT);
}

/* The absolute cap binds when the ratio would allow more. */
static void
test_comp_abs_cap(void **state)
{
	enum { N = 1001 };
	uint8_t src[N], z[N + 128], *out;
	uint32_t s = 777;
	size_t cn, outlen;

	(void)state;
	for (size_t i = 0; i < N; i++)
		src[i] = (uint8_t)rng_next(&s);
	cn = zc(src, N, z, sizeof z);
	assert_true(cn * OAP_COMP_MAX_RATIO > N);  /* the ratio is not what binds */
	assert_int_equal(oap_decompress(z, cn, N, &out, &outlen), 0);
	assert_int_equal(outlen, N);
	assert_memory_equal(out, src, N);
	free(out);
	expect_refused(z, cn, N - 1);
	expect_refused(z, cn, 0);
}

static void
test_comp_truncated(void **state)
{
	uint8_t src[4096], z[4096 + 128];
	uint32_t s = 99;
	size_t cn;

	(void)state;
	for (size_t i = 0; i < sizeof src; i++)
		src[i] = (uint8_t)('a' + (rng_next(&s) & 7));
	cn = zc(src, sizeof src, z, sizeof z);
	for (size_t cut = 1; cut < cn; cut++)
		expect_refused(z, cut, OAP_COMP_MAX_OUT);
}

static void
test_comp_garbage_and_empty(void **state)
{
	uint8_t junk[256], *out;
	uint32_t s = 4242;
	size_t outlen;

	(void)state;
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (uint8_t)rng_next(&s);
	expect_refused(junk, sizeof junk, OAP_COMP_MAX_OUT);
	expect_refused((const uint8_t *)"hello world", 11, OAP_COMP_MAX_OUT);
	expect_refused(junk, 0, OAP_COMP_MAX_OUT);
	expect_refused(NULL, 0, OAP_COMP_MAX_OUT);
	/* A valid frame of empty content yields 0 bytes, not an error. */
	size_t cn = zc(junk, 0, junk, sizeof junk);
	assert_int_equal(oap_decompress(junk, cn, OAP_COMP_MAX_OUT, &out, &outlen), 0);
	assert_int_equal(outlen, 0);
	assert_non_null(out);
	free(out);
}

/* A frame followed by trailing garbage is corrupt as a whole. */
static void
test_comp_trailing_garbage(void **state)
{
	uint8_t z[128];
	size_t cn;

	(void)state;
	cn = zc((const uint8_t *)"hello world", 11, z, sizeof z);
	memcpy(z + cn, "\x01\x02\x03\x04\x05", 5);
	expect_refused(z, cn + 5, OAP_COMP_MAX_OUT);
}

/* Compress `total` bytes (`chunk` repeated) as a stream of unknown size, so
 * the frame header carries window_log rather than a content size. */
static size_t
zc_stream(const uint8_t *chunk, size_t clen, size_t total, int window_log,
          uint8_t *dst, size_t cap)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_outBuffer ob = { dst, cap, 0 };
	ZSTD_inBuffer empty = { NULL, 0, 0 };
	size_t rem;

	assert_non_null(cc);
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog,
	                                                 window_log)));
	for (size_t done = 0; done < total; done += clen) {
		ZSTD_inBuffer ib = { chunk, total - done < clen ? total - done : clen, 0 };
		while (ib.pos < ib.size)
			assert_false(ZSTD_isError(ZSTD_compressStream2(cc, &ob, &ib,
			                                               ZSTD_e_continue)));
	}
	do {
		rem = ZSTD_compressStream2(cc, &ob, &empty, ZSTD_e_end);
		assert_false(ZSTD_isError(rem));
	} while (rem != 0);
	ZSTD_freeCCtx(cc);
	return ob.pos;
}

/* 64 MiB of zeros in a few KiB: refused at 10× the input, not after. */
static void
test_comp_bomb(void **state)
{
	static uint8_t chunk[BOMB_CHUNK], z[1u << 20];
	size_t cn = zc_stream(chunk, sizeof chunk, BOMB_BYTES, 20, z, sizeof z);

	(void)state;
	assert_true(cn < BOMB_BYTES / 1000);
	expect_refused(z, cn, OAP_COMP_MAX_OUT);
	expect_refused(z, cn, SIZE_MAX);
}

/* A frame declaring a 16 MiB window (one step past the 8 MiB output cap) is
 * refused before that window is allocated, although plain zstd (default
 * limit 128 MiB) decodes it and both output caps would allow its content. */
static void
test_comp_window_too_large(void **state)
{
	uint8_t src[1000], z[2048], plain[2048], *out;
	uint32_t s = 31337;
	size_t cn, outlen;

	(void)state;
	for (size_t i = 0; i < sizeof src; i++)
		src[i] = (uint8_t)rng_next(&s);
	cn = zc_stream(src, sizeof src, sizeof src, 24, z, sizeof z);
	assert_int_equal(ZSTD_decompress(plain, sizeof plain, z, cn), sizeof src);
	expect_refused(z, cn, OAP_COMP_MAX_OUT);
	/* The same bytes with a window within the limit are accepted. */
	cn = zc_stream(src, sizeof src, sizeof src, 23, z, sizeof z);
	assert_int_equal(oap_decompress(z, cn, OAP_COMP_MAX_OUT, &out, &outlen), 0);
	assert_int_equal(outlen, sizeof src);
	assert_memory_equal(out, src, sizeof src);
	free(out);
}

/* A COMP frame end to end: encode, decode, decompress the payload. */
static void
test_comp_frame(void **state)
{
	const char *msg = "hello hello hello hello hello hello rusty onions";
	uint8_t z[256], wire[512], *out;
	size_t cn = zc((const uint8_t *)msg, strlen(msg), z, sizeof z), used, outlen;
	oap_frame f = { .flags = OAP_F_RESP | OAP_F_COMP, .code = 200,
	                .payload = z, .payload_len = cn }, d;
	ssize_t n = oap_encode(&f, wire, sizeof wire);

	(void)state;
	assert_int_equal(n, (ssize_t)(OAP_HDR_LEN + cn));
	assert_int_equal(oap_decode(wire, (size_t)n, OAP_MAX_FRAME, &d, &used), OAP_OK);
	assert_int_equal(d.flags, OAP_F_RESP | OAP_F_COMP);
	assert_int_equal(oap_decompress(d.payload, d.payload_len, OAP_COMP_MAX_OUT,
	                                &out, &outlen), 0);
	assert_int_equal(outlen, strlen(msg));
	assert_memory_equal(out, msg, outlen);
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_decode_reencode),
		cmocka_unit_test(test_vectors_encode_from_fields),
		cmocka_unit_test(test_vectors_stream),
		cmocka_unit_test(test_split_feeds),
		cmocka_unit_test(test_len_boundary_1mib),
		cmocka_unit_test(test_oversize_from_header_only),
		cmocka_unit_test(test_len_zero_and_short),
		cmocka_unit_test(test_max_frame_tightened),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_bad_flags),
		cmocka_unit_test(test_encode_head),
		cmocka_unit_test(test_cap_without_start),
		cmocka_unit_test(test_cap_bounds),
		cmocka_unit_test(test_check_order),
		cmocka_unit_test(test_encode_refusals),
		cmocka_unit_test(test_encode_fills_len_and_cap_len),
		cmocka_unit_test(test_status_str),
		cmocka_unit_test(test_comp_round_trip),
		cmocka_unit_test(test_comp_ratio_boundary),
		cmocka_unit_test(test_comp_abs_cap),
		cmocka_unit_test(test_comp_truncated),
		cmocka_unit_test(test_comp_garbage_and_empty),
		cmocka_unit_test(test_comp_trailing_garbage),
		cmocka_unit_test(test_comp_bomb),
		cmocka_unit_test(test_comp_window_too_large),
		cmocka_unit_test(test_comp_frame),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
