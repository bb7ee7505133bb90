/*
 * inflate.c — bounded gzip/zstd decompression (see inflate.h for the caps
 * and why they are checked while output is produced).
 */
#include "lib/inflate.h"
#include "lib/inflate_test.h"

#include <stdbool.h>
#include <stdlib.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>

struct inflate_stream {
	inflate_codec   codec;
	inflate_sink_fn sink;
	void           *arg;
	z_stream        z;
	bool            z_ready;
	ZSTD_DStream   *zd;
	uint64_t        in;      /* compressed bytes fed */
	uint64_t        out;     /* decompressed bytes produced */
	bool            ended;   /* the member/frame is complete */
	inflate_status  failed;  /* sticky */
	uint8_t         buf[INFLATE_PIECE];
};

int inflate_codec_parse(const char *name, inflate_codec *out)
{
	if (!name)
		return -1;
	if (strcasecmp(name, "gzip") == 0 || strcasecmp(name, "x-gzip") == 0)
		*out = INFLATE_GZIP;
	else if (strcasecmp(name, "zstd") == 0)
		*out = INFLATE_ZSTD;
	else
		return -1;
	return 0;
}

inflate_stream *inflate_stream_new(inflate_codec codec, inflate_sink_fn sink, void *arg)
{
	inflate_stream *s;

	if (!sink || (codec != INFLATE_GZIP && codec != INFLATE_ZSTD))
		return NULL;
	if (!(s = calloc(1, sizeof *s)))
		return NULL;
	s->codec = codec;
	s->sink = sink;
	s->arg = arg;
	if (codec == INFLATE_GZIP) {
		/* 16 + MAX_WBITS: gzip wrapper only (no zlib, no raw deflate). */
		if (inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK) {
			free(s);
			return NULL;
		}
		s->z_ready = true;
		return s;
	}
	s->zd = ZSTD_createDStream();
	if (!s->zd || ZSTD_isError(ZSTD_initDStream(s->zd)) ||
	    ZSTD_isError(ZSTD_DCtx_setParameter(s->zd, ZSTD_d_windowLogMax,
	                                        INFLATE_ZSTD_WINDOW_LOG))) {
		inflate_stream_free(s);
		return NULL;
	}
	return s;
}

void inflate_stream_free(inflate_stream *s)
{
	if (!s)
		return;
	if (s->z_ready)
		(void)inflateEnd(&s->z);
	ZSTD_freeDStream(s->zd);
	free(s);
}

/* Output the codec may still produce: the allowance, plus one byte so that
 * passing it is seen (and refused) rather than silently waited on. */
static size_t inflate_room(const inflate_stream *s, uint64_t *allow)
{
	uint64_t by_ratio = s->in > INFLATE_MAX_OUT / INFLATE_MAX_RATIO
	                  ? INFLATE_MAX_OUT : s->in * INFLATE_MAX_RATIO;
	uint64_t a = by_ratio < INFLATE_MAX_OUT ? by_ratio : INFLATE_MAX_OUT;
	uint64_t room = a - s->out + 1;  /* s->out <= a is an invariant */

	*allow = a;
	return room < sizeof s->buf ? (size_t)room : sizeof s->buf;
}

/* Account n freshly produced bytes and hand them on. */
static inflate_status inflate_emit(inflate_stream *s, size_t n, uint64_t allow)
{
	if (n == 0)
		return INFLATE_OK;
	if (s->out + n > allow)
		return allow >= INFLATE_MAX_OUT ? INFLATE_ERR_LIMIT : INFLATE_ERR_RATIO;
	s->out += n;
	return s->sink(s->buf, n, s->arg) == 0 ? INFLATE_OK : INFLATE_ERR_SINK;
}

static inflate_status inflate_feed_gzip(inflate_stream *s, const uint8_t *in, size_t len)
{
	bool full;

	s->z.next_in = (Bytef *)(uintptr_t)in;
	s->z.avail_in = (uInt)len;
	do {
		uint64_t allow;
		size_t room = inflate_room(s, &allow);
		inflate_status st;
		int rc;

		if (s->ended)
			return s->z.avail_in ? INFLATE_ERR_DATA : INFLATE_OK;
		s->z.next_out = s->buf;
		s->z.avail_out = (uInt)room;
		rc = inflate(&s->z, Z_NO_FLUSH);
		if (rc == Z_STREAM_END)
			s->ended = true;
		else if (rc != Z_OK && rc != Z_BUF_ERROR)
			return rc == Z_MEM_ERROR ? INFLATE_ERR_NOMEM : INFLATE_ERR_DATA;
		full = s->z.avail_out == 0;
		if ((st = inflate_emit(s, room - s->z.avail_out, allow)) != INFLATE_OK)
			return st;
		if (rc == Z_BUF_ERROR && !full)
			break;  /* no progress possible: needs more input */
	} while (s->z.avail_in > 0 || full || s->ended);
	return INFLATE_OK;
}

static inflate_status inflate_feed_zstd(inflate_stream *s, const uint8_t *in, size_t len)
{
	ZSTD_inBuffer zin = { in, len, 0 };
	bool full;

	do {
		uint64_t allow;
		ZSTD_outBuffer zout = { s->buf, inflate_room(s, &allow), 0 };
		inflate_status st;
		size_t rc;

		if (s->ended)
			return zin.pos < zin.size ? INFLATE_ERR_DATA : INFLATE_OK;
		rc = ZSTD_decompressStream(s->zd, &zout, &zin);
		if (ZSTD_isError(rc))
			return INFLATE_ERR_DATA;  /* allocation failures included: refused either way */
		if (rc == 0)
			s->ended = true;  /* frame decoded and fully flushed */
		full = zout.pos == zout.size;
		if ((st = inflate_emit(s, zout.pos, allow)) != INFLATE_OK)
			return st;
	} while (zin.pos < zin.size || full || s->ended);
	return INFLATE_OK;
}

inflate_status inflate_stream_feed(inflate_stream *s, const void *in, size_t len)
{
	inflate_status st;
	const uint8_t *p = in;

	if (s->failed)
		return s->failed;
	while (len > 0) {
		/* zlib counts input in uInt: feed at most 1 GiB per call. */
		size_t n = len > (1u << 30) ? (1u << 30) : len;

		s->in += n;
		st = s->codec == INFLATE_GZIP ? inflate_feed_gzip(s, p, n) : inflate_feed_zstd(s, p, n);
		if (st != INFLATE_OK)
			return s->failed = st;
		p += n;
		len -= n;
	}
	return INFLATE_OK;
}

inflate_status inflate_stream_finish(inflate_stream *s)
{
	if (s->failed)
		return s->failed;
	if (!s->ended)
		return s->failed = INFLATE_ERR_TRUNCATED;
	return INFLATE_OK;
}

uint64_t inflate_stream_total_in(const inflate_stream *s)
{
	return s->in;
}

uint64_t inflate_stream_total_out(const inflate_stream *s)
{
	return s->out;
}

const char *inflate_status_str(inflate_status st)
{
	switch (st) {
	case INFLATE_OK:            return "ok";
	case INFLATE_ERR_RATIO:     return "decompressed size exceeds 10x the compressed size";
	case INFLATE_ERR_LIMIT:     return "decompressed size exceeds 33554432 bytes";
	case INFLATE_ERR_DATA:      return "corrupt compressed body, or data after its end";
	case INFLATE_ERR_TRUNCATED: return "truncated compressed body";
	case INFLATE_ERR_SINK:      return "stopped by the consumer";
	case INFLATE_ERR_NOMEM:     return "out of memory";
	}
	return "unknown";
}
