/*
 * inflate.c — libFuzzer target for bounded decompression (src/lib/inflate.h:
 * gzip and zstd request bodies).
 *
 * The first byte picks the codec (gzip or zstd) and the size of the pieces
 * the rest is fed in (1..256 bytes, so every split point of a header is
 * seen); the rest is the compressed body. Run:
 *   build-fuzz/fuzz/fuzz_inflate -max_len=65536 fuzz/corpus/inflate
 *
 * Invariants checked (abort on violation):
 *   - the sink never sees an empty piece or one over INFLATE_PIECE;
 *   - at every sink call the output so far is within INFLATE_MAX_RATIO x the
 *     input fed so far (the current piece included) and within INFLATE_MAX_OUT;
 *   - total_out equals what the sink saw; total_in what was fed;
 *   - after an error, feed and finish return that same error again.
 */
#include <stdint.h>
#include <stdlib.h>

#include "lib/inflate.h"
#include "lib/inflate_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fz_state {
	uint64_t fed;      /* compressed bytes handed over, the current piece included */
	uint64_t out;      /* bytes the sink saw */
} fz_state;

static int fz_sink(const uint8_t *p, size_t len, void *arg)
{
	fz_state *st = arg;

	if (len == 0 || len > INFLATE_PIECE)
		abort();
	st->out += len;
	if (st->out > INFLATE_MAX_RATIO * st->fed || st->out > INFLATE_MAX_OUT)
		abort();
	(void)p[len - 1];   /* ASan checks the piece is readable */
	return 0;
}

static void fz_check_sticky(inflate_stream *s, inflate_status err)
{
	if (inflate_stream_feed(s, "x", 1) != err || inflate_stream_finish(s) != err)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_state st = { 0, 0 };
	inflate_status rc = INFLATE_OK;

	if (size < 1)
		return 0;
	inflate_codec codec = (data[0] & 1) ? INFLATE_ZSTD : INFLATE_GZIP;
	size_t piece = (size_t)(data[0] >> 1) * 2u + 1u + (data[0] & 1u);   /* 1..256 */
	inflate_stream *s = inflate_stream_new(codec, fz_sink, &st);
	if (!s)
		return 0;
	for (size_t off = 1; off < size && rc == INFLATE_OK; off += piece) {
		size_t n = size - off < piece ? size - off : piece;
		st.fed += n;
		rc = inflate_stream_feed(s, data + off, n);
	}
	if (rc == INFLATE_OK)
		rc = inflate_stream_finish(s);
	if (inflate_stream_total_out(s) != st.out)
		abort();
	if (rc == INFLATE_OK && inflate_stream_total_in(s) != st.fed)
		abort();
	if (rc != INFLATE_OK)
		fz_check_sticky(s, rc);
	inflate_stream_free(s);
	return 0;
}
