/*
 * inflate.h — streaming, bounded decompression of request bodies
 * (Content-Encoding gzip and zstd).
 *
 * Feed compressed pieces of any size; decompressed bytes come out through
 * the sink callback in pieces of at most INFLATE_PIECE bytes, while the
 * input is being fed. Nothing is buffered beyond the codec's own state.
 *
 * The caps (a decompression bomb is refused before it costs anything):
 * at every moment, total output <= INFLATE_MAX_RATIO x the compressed bytes
 * fed so far (the current piece included), and <= INFLATE_MAX_OUT. The check
 * is made as output is produced, never after: the codec is never given room
 * for more than one byte past the allowance, and the sink never sees a byte
 * past it. Because "so far" is counted at every call, a stream whose final
 * ratio is just under 10 may still be refused if its output runs ahead of
 * its input (a zero run at the start); streams that compress that well are
 * what the cap is for.
 *
 * One gzip member (RFC 1952) or one zstd frame (RFC 8878) per body: bytes
 * after its end are an error (INFLATE_ERR_DATA), and a stream that ends
 * before the member/frame is complete is INFLATE_ERR_TRUNCATED at finish.
 * zstd windows are limited to 8 MiB (2^INFLATE_ZSTD_WINDOW_LOG), the bound
 * RFC 9659 sets for the zstd content coding, so a frame header cannot make
 * us allocate more.
 *
 * After any error the stream is failed for good: feed and finish return the
 * same error again.
 */
#ifndef MN_LIB_INFLATE_H
#define MN_LIB_INFLATE_H

#include <stddef.h>
#include <stdint.h>

#define INFLATE_MAX_RATIO          10u
#define INFLATE_MAX_OUT            ((uint64_t)32u * 1024u * 1024u)
#define INFLATE_PIECE              (64u * 1024u)  /* largest piece given to the sink */
#define INFLATE_ZSTD_WINDOW_LOG    23

typedef enum inflate_codec {
	INFLATE_GZIP = 1,
	INFLATE_ZSTD = 2,
} inflate_codec;

typedef enum inflate_status {
	INFLATE_OK = 0,
	INFLATE_ERR_RATIO,      /* output would pass INFLATE_MAX_RATIO x input */
	INFLATE_ERR_LIMIT,      /* output would pass INFLATE_MAX_OUT */
	INFLATE_ERR_DATA,       /* corrupt stream, or bytes after its end */
	INFLATE_ERR_TRUNCATED,  /* finish before the stream was complete */
	INFLATE_ERR_SINK,       /* the sink returned -1 */
	INFLATE_ERR_NOMEM,
} inflate_status;

typedef struct inflate_stream inflate_stream;

/* data (len bytes, 1..INFLATE_PIECE) is borrowed for the call. 0 or -1 to stop. */
typedef int (*inflate_sink_fn)(const uint8_t *data, size_t len, void *arg);

/* NULL on allocation failure or unknown codec. arg is borrowed. */
inflate_stream *inflate_stream_new(inflate_codec codec, inflate_sink_fn sink, void *arg);
void inflate_stream_free(inflate_stream *s);   /* NULL ok */

/* Content-Encoding value ("gzip", "x-gzip", "zstd"; case-insensitive) → codec.
 * 0, or -1 for anything else (the caller answers 415). */
__attribute__((warn_unused_result))
int inflate_codec_parse(const char *name, inflate_codec *out);

/* len bytes of compressed input (borrowed). */
__attribute__((warn_unused_result))
inflate_status inflate_stream_feed(inflate_stream *s, const void *in, size_t len);
/* End of input: INFLATE_OK only if exactly one complete member/frame was fed. */
__attribute__((warn_unused_result))
inflate_status inflate_stream_finish(inflate_stream *s);

const char *inflate_status_str(inflate_status st);

#endif
