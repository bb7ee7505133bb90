/*
 * oap_frame.c — libFuzzer target for the OAP/1 codec: arbitrary bytes are
 * decoded frame after frame, as a connection's read buffer would be.
 *
 * Build by hand (from the repository root; `make fuzz` builds the same
 * source through meson, linked against libmn):
 *   clang -g -O1 -std=c17 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
 *     -Isrc fuzz/oap_frame.c src/core/proto/oap.c -lzstd -o /tmp/fuzz_oap
 * Run:
 *   /tmp/fuzz_oap -max_len=65536 -timeout=10 fuzz/corpus/oap_frame
 *
 * Invariants checked (abort on violation, so libFuzzer reports them):
 *   - every OK frame re-encodes to exactly the bytes it was decoded from;
 *   - OK consumes exactly f.len ≥ 38 bytes and cap/payload lie inside it;
 *   - NEED_MORE asks for more than is buffered, never more than max_frame;
 *   - a COMP payload decompresses within the cap or fails with nothing
 *     returned (ASan catches a leak or overrun).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/proto/oap.h"

#define FUZZ_COMP_CAP   (64u * 1024u)  /* small: bombs are cut short fast */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t fz_out[OAP_MAX_FRAME];

static void
fz_check_roundtrip(const uint8_t *frame, const oap_frame *f)
{
	ssize_t n = oap_encode(f, fz_out, sizeof fz_out);

	if (n < 0 || (size_t)n != f->len || memcmp(fz_out, frame, f->len) != 0)
		abort();
}

static void
fz_check_comp(const oap_frame *f)
{
	uint8_t *out = (uint8_t *)1;
	size_t outlen = 1;

	if (oap_decompress(f->payload, f->payload_len, FUZZ_COMP_CAP, &out,
	                   &outlen) != 0) {
		if (out != NULL || outlen != 0)
			abort();
		return;
	}
	if (out == NULL || outlen > FUZZ_COMP_CAP ||
	    outlen > OAP_COMP_MAX_RATIO * f->payload_len)
		abort();
	if (outlen > 0)
		out[outlen - 1] ^= 1;   /* touch the last byte: ASan checks bounds */
	free(out);
}

static void
fz_check_frame(const uint8_t *frame, size_t avail, const oap_frame *f,
               size_t used)
{
	if (used != f->len || used < OAP_HDR_LEN || used > avail ||
	    f->cap != frame + OAP_HDR_LEN ||
	    f->payload + f->payload_len != frame + used ||
	    f->cap_size != f->cap_len)
		abort();
	fz_check_roundtrip(frame, f);
	if (f->flags & OAP_F_COMP)
		fz_check_comp(f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	/* Each turn consumes ≥ 38 bytes, so the loop ends within size/38 turns. */
	while (off < size) {
		oap_frame f;
		size_t used = 0;
		oap_status st = oap_decode(data + off, size - off, OAP_MAX_FRAME, &f,
		                           &used);

		if (st == OAP_NEED_MORE) {
			if (used <= size - off || used > OAP_MAX_FRAME)
				abort();
			break;
		}
		if (st != OAP_OK) {
			if (used != 0)
				abort();
			break;
		}
		fz_check_frame(data + off, size - off, &f, used);
		off += used;
	}
	return 0;
}
