/*
 * test_inflate.c — bounded decompression: gzip and zstd round trips in
 * random piece sizes; the 10x ratio cap exactly at the bound and one byte
 * past it; the 32 MiB absolute cap; a zero-stream bomb; truncated streams,
 * garbage and trailing data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <zlib.h>
#include <zstd.h>

#include "lib/inflate.h"
#include "lib/inflate_test.h"

#define MIB (1024u * 1024u)

static uint64_t prng_state;

static uint64_t prng_next(void)
{
	uint64_t z = (prng_state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* random bytes [0, rnd) then zeros up to len: compressibility is tunable. */
static uint8_t *make_data(size_t len, size_t rnd, uint64_t seed)
{
	uint8_t *p = calloc(1, len ? len : 1);

	assert_non_null(p);
	prng_state = seed;
	for (size_t i = 0; i < rnd && i < len; i++)
		p[i] = (uint8_t)prng_next();
	return p;
}

static uint8_t *gz(const uint8_t *in, size_t len, size_t *outlen)
{
	z_stream z = { 0 };
	size_t cap = len + len / 100 + 1024;
	uint8_t *out = malloc(cap);

	assert_non_null(out);
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	*outlen = z.total_out;
	deflateEnd(&z);
	return out;
}

static uint8_t *zs(const uint8_t *in, size_t len, size_t *outlen)
{
	size_t cap = ZSTD_compressBound(len);
	uint8_t *out = malloc(cap);
	size_t n;

	assert_non_null(out);
	n = ZSTD_compress(out, cap, in, len, 3);
	assert_false(ZSTD_isError(n));
	*outlen = n;
	return out;
}

typedef struct sink_state {
	uint8_t *buf;
	size_t   len, cap;
	size_t   max_piece;
} sink_state;

static int sink(const uint8_t *data, size_t len, void *arg)
{
	sink_state *s = arg;

	assert_true(len >= 1 && len <= INFLATE_PIECE);
	if (len > s->max_piece)
		s->max_piece = len;
	if (s->buf) {
		assert_true(s->len + len <= s->cap);
		memcpy(s->buf + s->len, data, len);
	}
	s->len += len;
	return 0;
}

/* Decompress comp in pieces (random sizes when piece_max > 0, else one
 * piece); returns the first error of feed or finish. */
static inflate_status run(inflate_codec codec, const uint8_t *comp, size_t clen,
                          size_t piece_max, sink_state *ss)
{
	inflate_stream *s = inflate_stream_new(codec, sink, ss);
	inflate_status st = INFLATE_OK;
	size_t off = 0;

	assert_non_null(s);
	while (off < clen && st == INFLATE_OK) {
		size_t n = piece_max ? 1 + (size_t)(prng_next() % piece_max) : clen;

		if (n > clen - off)
			n = clen - off;
		st = inflate_stream_feed(s, comp + off, n);
		off += n;
	}
	if (st == INFLATE_OK)
		st = inflate_stream_finish(s);
	if (st == INFLATE_OK) {
		assert_int_equal(inflate_stream_total_in(s), clen);
		assert_int_equal(inflate_stream_total_out(s), ss->len);
	}
	inflate_stream_free(s);
	return st;
}

static void round_trip(inflate_codec codec, size_t len, size_t rnd, size_t piece_max)
{
	uint8_t *data = make_data(len, rnd, len * 7 + piece_max);
	size_t clen;
	uint8_t *comp = codec == INFLATE_GZIP ? gz(data, len, &clen) : zs(data, len, &clen);
	sink_state ss = { .buf = malloc(len + 1), .cap = len };

	assert_non_null(ss.buf);
	assert_int_equal(run(codec, comp, clen, piece_max, &ss), INFLATE_OK);
	assert_int_equal(ss.len, len);
	assert_memory_equal(ss.buf, data, len);
	free(ss.buf);
	free(comp);
	free(data);
}

static void test_round_trips(void **state)
{
	static const size_t sizes[] = { 0, 1, 1000, 65535, 65536, 65537, 3 * MIB + 17 };
	static const size_t pieces[] = { 0, 1, 7, 4096, 100000 };

	(void)state;
	for (int c = INFLATE_GZIP; c <= INFLATE_ZSTD; c++)
		for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
			for (size_t j = 0; j < sizeof pieces / sizeof pieces[0]; j++) {
				if (pieces[j] == 1 && sizes[i] > 70000)
					continue;  /* byte at a time over MiBs is slow, not stronger */
				/* mostly random: the ratio stays well under 10 */
				round_trip((inflate_codec)c, sizes[i], sizes[i], pieces[j]);
			}
}

static void test_output_pieces_bounded(void **state)
{
	uint8_t *data = make_data(4 * MIB, 4 * MIB, 9);
	size_t clen;
	uint8_t *comp = zs(data, 4 * MIB, &clen);
	sink_state ss = { 0 };

	(void)state;
	assert_int_equal(run(INFLATE_ZSTD, comp, clen, 0, &ss), INFLATE_OK);
	assert_int_equal(ss.len, 4 * MIB);
	assert_int_equal(ss.max_piece, INFLATE_PIECE);
	free(comp);
	free(data);
}

/* Find a zero-padded object whose compressed size c gives len == 10c + delta
 * exactly, and check the cap's verdict on it (fed in one piece). */
static void ratio_edge(inflate_codec codec, long delta, inflate_status want)
{
	for (size_t zeros = 5000; zeros < 40000; zeros++) {
		size_t len = 1000 + zeros, clen;
		uint8_t *data = make_data(len, 1000, 42);
		uint8_t *comp = codec == INFLATE_GZIP ? gz(data, len, &clen) : zs(data, len, &clen);
		sink_state ss = { 0 };

		if ((long)len == 10 * (long)clen + delta) {
			inflate_status st = run(codec, comp, clen, 0, &ss);

			assert_int_equal(st, want);
			if (want == INFLATE_OK)
				assert_int_equal(ss.len, len);
			else  /* refused as produced: the sink never saw a byte past 10x */
				assert_true(ss.len <= 10 * clen);
			free(comp);
			free(data);
			return;
		}
		free(comp);
		free(data);
	}
	fail_msg("no object with len == 10 * clen + %ld found", delta);
}

static void test_ratio_exactly_10x_ok(void **state)
{
	(void)state;
	ratio_edge(INFLATE_GZIP, 0, INFLATE_OK);
	ratio_edge(INFLATE_ZSTD, 0, INFLATE_OK);
}

static void test_ratio_one_byte_over(void **state)
{
	(void)state;
	ratio_edge(INFLATE_GZIP, 1, INFLATE_ERR_RATIO);
	ratio_edge(INFLATE_ZSTD, 1, INFLATE_ERR_RATIO);
}

static void test_zero_bomb(void **state)
{
	size_t len = 32 * MIB, clen;
	uint8_t *data = make_data(len, 0, 1);

	(void)state;
	for (int c = INFLATE_GZIP; c <= INFLATE_ZSTD; c++) {
		uint8_t *comp = c == INFLATE_GZIP ? gz(data, len, &clen) : zs(data, len, &clen);
		sink_state ss = { 0 };

		assert_true(clen < 64 * 1024);  /* a few KiB of input */
		assert_int_equal(run((inflate_codec)c, comp, clen, 0, &ss), INFLATE_ERR_RATIO);
		assert_true(ss.len <= 10 * clen);
		ss.len = 0;
		assert_int_equal(run((inflate_codec)c, comp, clen, 512, &ss), INFLATE_ERR_RATIO);
		assert_true(ss.len <= 10 * clen);
		free(comp);
	}
	free(data);
}

/* Compressible enough to pass 32 MiB, not enough to pass 10x. */
static void test_absolute_cap(void **state)
{
	size_t rnd = 4 * MIB, clen;

	(void)state;
	for (int c = INFLATE_GZIP; c <= INFLATE_ZSTD; c++) {
		size_t len = rnd + 28 * MIB + 1;  /* 32 MiB + 1 */
		uint8_t *data = make_data(len, rnd, 3);
		uint8_t *comp = c == INFLATE_GZIP ? gz(data, len, &clen) : zs(data, len, &clen);
		sink_state ss = { 0 };

		assert_true(10 * clen >= len);
		assert_int_equal(run((inflate_codec)c, comp, clen, 0, &ss), INFLATE_ERR_LIMIT);
		assert_int_equal(ss.len, INFLATE_MAX_OUT);  /* exactly up to the cap */
		free(comp);
		free(data);
		/* exactly 32 MiB passes */
		len = rnd + 28 * MIB;
		data = make_data(len, rnd, 3);
		comp = c == INFLATE_GZIP ? gz(data, len, &clen) : zs(data, len, &clen);
		ss.len = 0;
		assert_int_equal(run((inflate_codec)c, comp, clen, 0, &ss), INFLATE_OK);
		assert_int_equal(ss.len, INFLATE_MAX_OUT);
		free(comp);
		free(data);
	}
}

static void test_truncated(void **state)
{
	size_t len = 200000, clen;
	uint8_t *data = make_data(len, len, 5);

	(void)state;
	for (int c = INFLATE_GZIP; c <= INFLATE_ZSTD; c++) {
		uint8_t *comp = c == INFLATE_GZIP ? gz(data, len, &clen) : zs(data, len, &clen);
		static const size_t cuts[] = { 1, 4, 8, 100, 5000 };

		for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
			sink_state ss = { 0 };

			assert_int_equal(run((inflate_codec)c, comp, clen - cuts[i], 1000, &ss),
			                 INFLATE_ERR_TRUNCATED);
		}
		{
			sink_state ss = { 0 };   /* nothing at all */
			inflate_stream *s = inflate_stream_new((inflate_codec)c, sink, &ss);

			assert_int_equal(inflate_stream_finish(s), INFLATE_ERR_TRUNCATED);
			inflate_stream_free(s);
		}
		free(comp);
	}
	free(data);
}

static void test_garbage(void **state)
{
	uint8_t *junk = make_data(5000, 5000, 77);
	sink_state ss = { 0 };

	(void)state;
	assert_int_equal(run(INFLATE_GZIP, junk, 5000, 100, &ss), INFLATE_ERR_DATA);
	assert_int_equal(run(INFLATE_ZSTD, junk, 5000, 100, &ss), INFLATE_ERR_DATA);
	/* gzip body sent as zstd and the other way round */
	{
		size_t len = 1000, clen;
		uint8_t *data = make_data(len, len, 8);
		uint8_t *g = gz(data, len, &clen);

		assert_int_equal(run(INFLATE_ZSTD, g, clen, 0, &ss), INFLATE_ERR_DATA);
		free(g);
		g = zs(data, len, &clen);
		assert_int_equal(run(INFLATE_GZIP, g, clen, 0, &ss), INFLATE_ERR_DATA);
		free(g);
		free(data);
	}
	free(junk);
}

static void test_trailing(void **state)
{
	size_t len = 10000, clen;
	uint8_t *data = make_data(len, len, 6);

	(void)state;
	for (int c = INFLATE_GZIP; c <= INFLATE_ZSTD; c++) {
		uint8_t *comp = c == INFLATE_GZIP ? gz(data, len, &clen) : zs(data, len, &clen);
		uint8_t *two = malloc(2 * clen);
		sink_state ss = { 0 };

		assert_non_null(two);
		memcpy(two, comp, clen);
		two[clen] = 'x';
		assert_int_equal(run((inflate_codec)c, two, clen + 1, 0, &ss), INFLATE_ERR_DATA);
		ss.len = 0;
		assert_int_equal(run((inflate_codec)c, two, clen + 1, 3, &ss), INFLATE_ERR_DATA);
		/* a second member/frame is trailing data too */
		memcpy(two + clen, comp, clen);
		ss.len = 0;
		assert_int_equal(run((inflate_codec)c, two, 2 * clen, 1000, &ss), INFLATE_ERR_DATA);
		free(two);
		free(comp);
	}
	free(data);
}

static int sink_stop(const uint8_t *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	(void)arg;
	return -1;
}

static void test_sink_stop_and_sticky(void **state)
{
	size_t len = 1000, clen;
	uint8_t *data = make_data(len, len, 10);
	uint8_t *comp = gz(data, len, &clen);
	inflate_stream *s = inflate_stream_new(INFLATE_GZIP, sink_stop, NULL);

	(void)state;
	assert_int_equal(inflate_stream_feed(s, comp, clen), INFLATE_ERR_SINK);
	assert_int_equal(inflate_stream_feed(s, comp, 1), INFLATE_ERR_SINK);
	assert_int_equal(inflate_stream_finish(s), INFLATE_ERR_SINK);
	inflate_stream_free(s);
	inflate_stream_free(NULL);
	free(comp);
	free(data);
}

static void test_codec_names(void **state)
{
	inflate_codec c;

	(void)state;
	assert_int_equal(inflate_codec_parse("gzip", &c), 0);
	assert_int_equal(c, INFLATE_GZIP);
	assert_int_equal(inflate_codec_parse("X-GZIP", &c), 0);
	assert_int_equal(c, INFLATE_GZIP);
	assert_int_equal(inflate_codec_parse("zstd", &c), 0);
	assert_int_equal(c, INFLATE_ZSTD);
	assert_int_equal(inflate_codec_parse("br", &c), -1);
	assert_int_equal(inflate_codec_parse("deflate", &c), -1);
	assert_int_equal(inflate_codec_parse("gzip, zstd", &c), -1);
	assert_int_equal(inflate_codec_parse("", &c), -1);
	assert_int_equal(inflate_codec_parse(NULL, &c), -1);
	assert_null(inflate_stream_new((inflate_codec)9, sink, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_output_pieces_bounded),
		cmocka_unit_test(test_ratio_exactly_10x_ok),
		cmocka_unit_test(test_ratio_one_byte_over),
		cmocka_unit_test(test_zero_bomb),
		cmocka_unit_test(test_absolute_cap),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_trailing),
		cmocka_unit_test(test_sink_stop_and_sticky),
		cmocka_unit_test(test_codec_names),
	};

	prng_state = 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
