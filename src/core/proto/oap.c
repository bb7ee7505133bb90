/*
 * oap.c — the OAP/1 frame codec: header decode, whole-frame decode, encode,
 * and capped zstd decompression of COMP payloads.
 *
 * Everything here reads untrusted bytes, so: no unaligned loads (fields are
 * assembled with byte shifts), no assertion on input, every length checked
 * before it is used, and no allocation until the header has been accepted.
 * The file deliberately depends on nothing but libc and libzstd so the fuzz
 * target can be built from it alone.
 */
#include "core/proto/oap.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* Header field offsets (tests/vectors/README.md §2). */
#define OAP_OFF_LEN      0u
#define OAP_OFF_VER      4u
#define OAP_OFF_FLAGS    6u
#define OAP_OFF_CODE     8u
#define OAP_OFF_APP      10u
#define OAP_OFF_TENANT   12u
#define OAP_OFF_CAP_LEN  28u
#define OAP_OFF_CORR     30u
#define OAP_LEN_FIELD    4u              /* bytes of `len`: enough to judge size */
#define OAP_CAP_MAX      UINT16_MAX      /* cap_len is a u16 on the wire */

/*
 * zstd may declare a window up to 2^27 (128 MiB) by default, which the
 * decoder would allocate before producing one byte. Output is capped at
 * OAP_COMP_MAX_OUT (8 MiB = 2^23) anyway, so a larger window buys nothing
 * legitimate and is refused.
 */
#define OAP_COMP_WINDOW_LOG_MAX 23
#define OAP_COMP_FIRST_BUF      (64u * 1024u)   /* grown ×2 up to cap + 1 */

/* ---- big-endian helpers (byte shifts: no alignment assumptions) ------- */

static uint16_t
oap_get_be16(const uint8_t *p)
{
	return (uint16_t)(((unsigned)p[0] << 8) | p[1]);
}

static uint32_t
oap_get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static uint64_t
oap_get_be64(const uint8_t *p)
{
	return ((uint64_t)oap_get_be32(p) << 32) | oap_get_be32(p + 4);
}

static void
oap_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
oap_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void
oap_put_be64(uint8_t *p, uint64_t v)
{
	oap_put_be32(p, (uint32_t)(v >> 32));
	oap_put_be32(p + 4, (uint32_t)v);
}

/* ---- decoder ---------------------------------------------------------- */

/*
 * The canon caps a frame at OAP_MAX_FRAME; a caller may only tighten it
 * (OAP_INTERNAL_MAX_FRAME between services). 0 means the canon.
 */
static size_t
oap_effective_max(size_t max_frame)
{
	if (max_frame == 0 || max_frame > OAP_MAX_FRAME)
		return OAP_MAX_FRAME;
	return max_frame;
}

/*
 * The size rules need only `len`, so they are decided from its 4 bytes: a
 * peer announcing a 4 GiB or a 10-byte frame is refused without waiting for
 * (or buffering) the rest of a header that can never be valid.
 */
static oap_status
oap_check_len(uint32_t flen, size_t max_frame)
{
	if (flen == 0 || flen > oap_effective_max(max_frame))
		return OAP_E_TOO_LARGE;
	if (flen < OAP_HDR_LEN)
		return OAP_E_TRUNCATED_HEADER;
	return OAP_OK;
}

/*
 * Checks run in this order, the first failure wins:
 *   1. len 0 or > max_frame     → OAP_E_TOO_LARGE        (from 4 bytes)
 *   2. len < 38                 → OAP_E_TRUNCATED_HEADER (from 4 bytes)
 *   3. ver != 1                 → OAP_E_BAD_VERSION
 *   4. flags & ~0x00ff          → OAP_E_BAD_FLAGS
 *   5. cap_len > 0, no START    → OAP_E_CAP_WITHOUT_START
 *   6. 38 + cap_len > len       → OAP_E_CAP_OOB
 * Rules 3–6 need the whole 38-byte header; fewer bytes → OAP_NEED_MORE.
 */
oap_status
oap_decode_header(const uint8_t *buf, size_t len, size_t max_frame, oap_frame *f)
{
	oap_frame h;
	oap_status st;

	if (len < OAP_LEN_FIELD)
		return OAP_NEED_MORE;
	h = (oap_frame){ .len = oap_get_be32(buf + OAP_OFF_LEN) };
	if ((st = oap_check_len(h.len, max_frame)) != OAP_OK)
		return st;
	if (len < OAP_HDR_LEN)
		return OAP_NEED_MORE;

	h.ver = oap_get_be16(buf + OAP_OFF_VER);
	h.flags = oap_get_be16(buf + OAP_OFF_FLAGS);
	h.code = oap_get_be16(buf + OAP_OFF_CODE);
	h.app_proto_id = oap_get_be16(buf + OAP_OFF_APP);
	memcpy(h.tenant, buf + OAP_OFF_TENANT, sizeof h.tenant);
	h.cap_len = oap_get_be16(buf + OAP_OFF_CAP_LEN);
	h.corr_id = oap_get_be64(buf + OAP_OFF_CORR);

	if (h.ver != OAP_VERSION)
		return OAP_E_BAD_VERSION;
	if ((h.flags & ~(unsigned)OAP_F_ALL) != 0)
		return OAP_E_BAD_FLAGS;
	if (h.cap_len > 0 && (h.flags & OAP_F_START) == 0)
		return OAP_E_CAP_WITHOUT_START;
	/* 32-bit sum cannot wrap: len ≤ 1 MiB and cap_len ≤ 65535. */
	if ((uint32_t)OAP_HDR_LEN + h.cap_len > h.len)
		return OAP_E_CAP_OOB;
	*f = h;
	return OAP_OK;
}

uint64_t
oap_peek_corr_id(const uint8_t hdr[OAP_HDR_LEN])
{
	return oap_get_be64(hdr + OAP_OFF_CORR);
}

void
oap_peek_reply_to(const uint8_t hdr[OAP_HDR_LEN], oap_frame *f)
{
	*f = (oap_frame){ .app_proto_id = oap_get_be16(hdr + OAP_OFF_APP),
	                  .corr_id = oap_get_be64(hdr + OAP_OFF_CORR) };
	memcpy(f->tenant, hdr + OAP_OFF_TENANT, sizeof f->tenant);
}

bool
oap_peek_is_shaped(const uint8_t hdr[OAP_HDR_LEN])
{
	return oap_get_be16(hdr + OAP_OFF_VER) == OAP_VERSION &&
	       (oap_get_be16(hdr + OAP_OFF_FLAGS) & ~(unsigned)OAP_F_ALL) == 0;
}

oap_status
oap_decode(const uint8_t *buf, size_t len, size_t max_frame, oap_frame *f,
           size_t *consumed)
{
	oap_frame h;
	oap_status st;

	*consumed = 0;
	st = oap_decode_header(buf, len, max_frame, &h);
	if (st == OAP_NEED_MORE) {
		*consumed = OAP_HDR_LEN;
		return st;
	}
	if (st != OAP_OK)
		return st;
	if (len < h.len) {
		/* The header is good: tell the caller the exact total to buffer. */
		*consumed = h.len;
		return OAP_NEED_MORE;
	}
	h.cap = buf + OAP_HDR_LEN;
	h.cap_size = h.cap_len;
	h.payload = h.cap + h.cap_size;
	h.payload_len = h.len - OAP_HDR_LEN - h.cap_size;
	*f = h;
	*consumed = h.len;
	return OAP_OK;
}

/* ---- encoder ---------------------------------------------------------- */

size_t
oap_encoded_len(const oap_frame *f)
{
	/* Saturate instead of wrapping so a huge claim can never look small. */
	if (f->cap_size > SIZE_MAX - OAP_HDR_LEN ||
	    f->payload_len > SIZE_MAX - OAP_HDR_LEN - f->cap_size)
		return SIZE_MAX;
	return OAP_HDR_LEN + f->cap_size + f->payload_len;
}

/* Refuse anything our own decoder would refuse: we never emit a bad frame. */
static int
oap_check_encodable(const oap_frame *f, size_t total, size_t outcap)
{
	if ((f->flags & ~(unsigned)OAP_F_ALL) != 0)
		return -1;
	if (f->ver != 0 && f->ver != OAP_VERSION)
		return -1;
	if (f->cap_size > OAP_CAP_MAX)
		return -1;
	if (f->cap_size > 0 && (f->flags & OAP_F_START) == 0)
		return -1;
	if ((f->cap_size > 0 && f->cap == NULL) ||
	    (f->payload_len > 0 && f->payload == NULL))
		return -1;
	if (total > OAP_MAX_FRAME || total > outcap)
		return -1;
	return 0;
}

ssize_t
oap_encode_head(const oap_frame *f, uint8_t *out, size_t outcap)
{
	size_t total = oap_encoded_len(f), head = total - f->payload_len;
	oap_frame probe = *f;

	/* The payload is the caller's to send: only its length counts here. */
	if (!f->payload && f->payload_len)
		probe.payload = out;
	if (total > OAP_MAX_FRAME || oap_check_encodable(&probe, head, outcap) != 0)
		return -1;
	oap_put_be32(out + OAP_OFF_LEN, (uint32_t)total);
	oap_put_be16(out + OAP_OFF_VER, OAP_VERSION);
	oap_put_be16(out + OAP_OFF_FLAGS, f->flags);
	oap_put_be16(out + OAP_OFF_CODE, f->code);
	oap_put_be16(out + OAP_OFF_APP, f->app_proto_id);
	memcpy(out + OAP_OFF_TENANT, f->tenant, sizeof f->tenant);
	oap_put_be16(out + OAP_OFF_CAP_LEN, (uint16_t)f->cap_size);
	oap_put_be64(out + OAP_OFF_CORR, f->corr_id);
	/* memcpy with a NULL source is UB even for 0 bytes: guard each copy. */
	if (f->cap_size > 0)
		memcpy(out + OAP_HDR_LEN, f->cap, f->cap_size);
	return (ssize_t)head;
}

ssize_t
oap_encode(const oap_frame *f, uint8_t *out, size_t outcap)
{
	size_t total = oap_encoded_len(f);
	ssize_t head;

	if (oap_check_encodable(f, total, outcap) != 0 || (head = oap_encode_head(f, out, outcap)) < 0)
		return -1;
	if (f->payload_len > 0)
		memcpy(out + head, f->payload, f->payload_len);
	return (ssize_t)total;
}

const char *
oap_status_str(oap_status s)
{
	switch (s) {
	case OAP_OK:                  return "ok";
	case OAP_NEED_MORE:           return "need more";
	case OAP_E_TOO_LARGE:         return "too large";
	case OAP_E_TRUNCATED_HEADER:  return "truncated header";
	case OAP_E_BAD_VERSION:       return "bad version";
	case OAP_E_BAD_FLAGS:         return "bad flags";
	case OAP_E_CAP_WITHOUT_START: return "cap without start";
	case OAP_E_CAP_OOB:           return "cap out of bounds";
	}
	return "unknown";
}

/* ---- COMP payloads ---------------------------------------------------- */

static size_t
oap_comp_cap(size_t inlen, size_t abs_cap)
{
	/* cap + 1 bytes are allocated at most: keep that sum from wrapping. */
	if (abs_cap == SIZE_MAX)
		abs_cap = SIZE_MAX - 1;
	if (inlen > abs_cap / OAP_COMP_MAX_RATIO)
		return abs_cap;
	return inlen * OAP_COMP_MAX_RATIO;
}

/*
 * Make room for at least one more output byte. The buffer never exceeds
 * cap + 1 bytes: the extra byte is how a breach is seen the moment zstd
 * produces it, without ever holding more than the cap allows.
 */
static int
oap_comp_grow(uint8_t **buf, size_t *size, size_t cap)
{
	size_t want;
	uint8_t *nb;

	if (*size > cap)
		return -1;
	want = *size == 0 ? OAP_COMP_FIRST_BUF : *size * 2;
	if (want < *size || want > cap + 1)
		want = cap + 1;
	nb = realloc(*buf, want);
	if (nb == NULL)
		return -1;
	*buf = nb;
	*size = want;
	return 0;
}

/*
 * Bounded loop: every turn must consume input or produce output (no
 * progress → error), output ≤ cap + 1 and input ≤ inlen, so it ends within
 * inlen + cap + 2 turns plus one per buffer growth.
 */
static int
oap_comp_run(ZSTD_DCtx *dc, const uint8_t *in, size_t inlen, size_t cap,
             uint8_t **buf, size_t *outlen)
{
	ZSTD_inBuffer ib = { in, inlen, 0 };
	size_t size = 0, pos = 0, ret;

	for (;;) {
		if (pos == size && oap_comp_grow(buf, &size, cap) != 0)
			return -1;
		ZSTD_outBuffer ob = { *buf, size, pos };
		size_t in_before = ib.pos;
		ret = ZSTD_decompressStream(dc, &ob, &ib);
		if (ZSTD_isError(ret) || ob.pos > cap)
			return -1;
		if (ob.pos == pos && ib.pos == in_before)
			return -1;           /* no progress: refuse rather than spin */
		pos = ob.pos;
		if (ret == 0 && ib.pos == ib.size)
			break;               /* last frame complete and flushed */
		if (ib.pos == ib.size && ob.pos < ob.size)
			return -1;           /* input exhausted mid-frame: truncated */
	}
	*outlen = pos;
	return 0;
}

int
oap_decompress(const uint8_t *in, size_t inlen, size_t abs_cap, uint8_t **out,
               size_t *outlen)
{
	ZSTD_DCtx *dc;
	uint8_t *buf = NULL;
	size_t n = 0;
	int rc = -1;

	*out = NULL;
	*outlen = 0;
	if (in == NULL || inlen == 0)
		return -1;           /* no zstd frame is empty */
	if ((dc = ZSTD_createDCtx()) == NULL)
		return -1;
	if (!ZSTD_isError(ZSTD_DCtx_setParameter(dc, ZSTD_d_windowLogMax,
	                                         OAP_COMP_WINDOW_LOG_MAX)))
		rc = oap_comp_run(dc, in, inlen, oap_comp_cap(inlen, abs_cap), &buf, &n);
	ZSTD_freeDCtx(dc);
	if (rc != 0) {
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = n;
	return 0;
}
