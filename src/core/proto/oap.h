/*
 * oap.h — the OAP/1 frame codec (wire format of the reference crate; see
 * tests/vectors/README.md §2). One codec for the public omnigate listener
 * and for every internal call between services.
 *
 * A frame is a 38-byte big-endian header followed by cap and payload:
 *   len(u32) ver(u16) flags(u16) code(u16) app_proto_id(u16) tenant(u128)
 *   cap_len(u16) corr_id(u64) cap[cap_len] payload[len - 38 - cap_len]
 * `len` counts the whole frame.
 *
 * Decoder rules (each a typed error): len 0 or > max_frame → TOO_LARGE;
 * len < 38 → TRUNCATED_HEADER; ver != 1 → BAD_VERSION; a flag bit outside
 * 0x00ff → BAD_FLAGS; cap_len > 0 without START → CAP_WITHOUT_START;
 * cap_len past the frame end → CAP_OOB. All of them are decided from the
 * first 38 bytes, before the rest of the frame is buffered, so an oversize
 * frame costs no memory.
 */
#ifndef MN_CORE_OAP_H
#define MN_CORE_OAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define OAP_HDR_LEN            38u
#define OAP_MAX_FRAME          1048576u        /* canon: 1 MiB total frame */
#define OAP_INTERNAL_MAX_FRAME (64u * 1024u)   /* between services: bulk goes as fds */
#define OAP_VERSION            1u
#define OAP_COMP_MAX_RATIO     10u             /* decompressed ≤ 10× compressed */
#define OAP_COMP_MAX_OUT       (8u << 20)      /* and ≤ 8 MiB */

enum {
	OAP_F_REQ     = 0x01,
	OAP_F_RESP    = 0x02,
	OAP_F_EVENT   = 0x04,
	OAP_F_START   = 0x08,
	OAP_F_END     = 0x10,
	OAP_F_ACK_REQ = 0x20,
	OAP_F_COMP    = 0x40,  /* payload is zstd */
	OAP_F_APP_E2E = 0x80,  /* opaque to the node: never inspected */
	OAP_F_ALL     = 0xff,
};

typedef enum {
	OAP_OK = 0,
	OAP_NEED_MORE,            /* not an error: feed more bytes */
	OAP_E_TOO_LARGE,
	OAP_E_TRUNCATED_HEADER,
	OAP_E_BAD_VERSION,
	OAP_E_BAD_FLAGS,
	OAP_E_CAP_WITHOUT_START,
	OAP_E_CAP_OOB,
} oap_status;

typedef struct oap_frame {
	uint32_t       len;           /* whole frame; filled by the encoder */
	uint16_t       ver;           /* OAP_VERSION; the encoder writes 1 if 0 */
	uint16_t       flags;
	uint16_t       code;
	uint16_t       app_proto_id;
	uint8_t        tenant[16];    /* u128 big-endian */
	uint16_t       cap_len;       /* decoder output; the encoder writes cap_size */
	uint64_t       corr_id;
	const uint8_t *cap;           /* borrowed (decoder: points into the input) */
	size_t         cap_size;      /* bytes at cap */
	const uint8_t *payload;       /* borrowed */
	size_t         payload_len;
} oap_frame;

/*
 * Decode the header from the first OAP_HDR_LEN bytes (fewer → NEED_MORE).
 * On OAP_OK, f's header fields are set (cap/payload not yet); on any other
 * result f is untouched. The size rules (TOO_LARGE, TRUNCATED_HEADER) need
 * only `len`, so they are reported as soon as 4 bytes are present. Checks
 * run in the order listed at the top of this file. max_frame can only
 * tighten OAP_MAX_FRAME; 0 (or anything larger) means OAP_MAX_FRAME.
 */
__attribute__((warn_unused_result))
oap_status oap_decode_header(const uint8_t *buf, size_t len, size_t max_frame, oap_frame *f);

/*
 * Decode one whole frame from buf[0..len). OAP_OK: *f set (cap and payload
 * point into buf) and *consumed = f->len. NEED_MORE: *consumed = bytes the
 * frame needs in total (once the header is known) or OAP_HDR_LEN.
 * Error: *consumed = 0 and the stream is unusable (close the connection).
 */
__attribute__((warn_unused_result))
oap_status oap_decode(const uint8_t *buf, size_t len, size_t max_frame, oap_frame *f,
                      size_t *consumed);

/*
 * Header fields read without judging the header, for a refusal that must
 * still answer on the frame's corr_id (a datagram or frame over the size
 * cap, which is never decoded). hdr holds at least OAP_HDR_LEN bytes.
 */
uint64_t oap_peek_corr_id(const uint8_t hdr[OAP_HDR_LEN]);
/* What a reply echoes: app_proto_id, tenant and corr_id into *f; the other
 * fields are zeroed. */
void oap_peek_reply_to(const uint8_t hdr[OAP_HDR_LEN], oap_frame *f);
/* ver is 1 and no flag bit lies above 0xff: the bytes read as a frame's
 * header whatever its length says (noise with a huge length does not). */
bool oap_peek_is_shaped(const uint8_t hdr[OAP_HDR_LEN]);

/* Bytes oap_encode will write for f (header + cap_size + payload_len). */
size_t oap_encoded_len(const oap_frame *f);
/* Encode f (len and cap_len computed from cap_size/payload_len; f->len and
 * f->cap_len are ignored) into out. Returns bytes written, or -1 when out is
 * too small, the frame exceeds OAP_MAX_FRAME, cap is > 65535 or given without
 * START, flags has bits outside 0xff, ver is neither 0 nor 1, or a non-empty
 * cap/payload pointer is NULL. */
__attribute__((warn_unused_result))
ssize_t oap_encode(const oap_frame *f, uint8_t *out, size_t outcap);

/* The same, but only the header and cap (the payload_len bytes that
 * follow are the caller's to send, e.g. by reference; f->payload may be
 * NULL). Returns the bytes written (total minus payload_len), or -1 as
 * oap_encode; outcap need only hold the head. */
__attribute__((warn_unused_result))
ssize_t oap_encode_head(const oap_frame *f, uint8_t *out, size_t outcap);

/* "too large", "truncated header", … */
const char *oap_status_str(oap_status s);

/*
 * COMP payloads: decompress zstd with output capped at min(OAP_COMP_MAX_RATIO
 * × inlen, abs_cap). Returns 0 with a malloc'd *out (caller frees), or -1 on
 * a breach of either cap, a corrupt or truncated stream (nothing allocated).
 */
__attribute__((warn_unused_result))
int oap_decompress(const uint8_t *in, size_t inlen, size_t abs_cap, uint8_t **out, size_t *outlen);

#endif
