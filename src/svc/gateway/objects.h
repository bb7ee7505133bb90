/*
 * objects.h — the gateway's object routes (private to src/svc/gateway).
 *
 *   POST /o, PUT /o       body → new object (201) or existing (200)
 *   PUT  /o/{b3}          body must hash to the id (422 otherwise)
 *   GET, HEAD /o/{b3}     verified before served
 *
 * objects.c owns the route table and the dispatch; objects_get.c and
 * objects_put.c the handlers; objects_multi.c the layout of a multipart
 * (several ranges) answer. Every route is HTTP_ROUTE_STREAM_BODY (the
 * gateway never buffers a request body) and HTTP_ROUTE_UPLOAD: the core
 * caps an upload's body by the object cap (storage.max_object), not by
 * limits.max_body.
 * Behaviour, statuses and headers: docs/api.md "Objects".
 */
#ifndef MN_SVC_GATEWAY_OBJECTS_H
#define MN_SVC_GATEWAY_OBJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/net/http.h"
#include "core/net/range.h"
#include "core/objects/mediatype.h"
#include "core/objects/objcache.h"
#include "core/objects/ovl_client.h"
#include "core/objects/stor_client.h"

#define OBJECTS_ETAG_LEN   66u             /* '"' + 64 hex + '"' */
#define OBJECTS_CONTENT_TYPE "application/octet-stream"   /* /o: every object, every part */
/* Range fetches on a miss one worker holds at once (from the ask to the
 * response's end): each keeps up to overlay.range_fetch_max + two groups of
 * memfd memory, so past this a missed range fetches the whole object
 * (disk-backed) instead, counted in range_fetch_fallback_total. */
#define OBJECTS_RANGE_HELD_MAX 8u

struct cors;
struct sniffq;
struct search_client;
struct media_types;

/* Shared by every request of one worker; outlives them all. */
typedef struct objects {
	const struct cors *cors;  /* gateway.cors_origins (owned by the gateway) */
	struct audit_client *audit; /* owned by the gateway; NULL: no audit service */
	stor_client *stor;        /* borrowed from the gateway */
	objcache    *cache;       /* open objects and group buffers (owned by the gateway), or NULL */
	ovl_client  *ovl;         /* the overlay's client when it runs, else NULL (borrowed) */
	bool         fetch_on_miss; /* overlay.fetch_on_miss (live reload) */
	uint64_t     max_object;  /* storage.max_object (live reload) */
	uint64_t     range_fetch_max; /* overlay.range_fetch_max (live reload) */
	uint32_t     max_ranges;  /* gateway.max_ranges (live reload) */
	unsigned     range_held;  /* range fetches in flight or being served */
	struct sniffq *sniff;              /* libmagic off the loop (sniff.h; owned by the gateway), or NULL */
	struct search_client *search;      /* the search service's client, or NULL (borrowed) */
	struct media_types *types;         /* recorded types remembered (media.h; owned by the gateway), or NULL */
	uint32_t     search_max_text;      /* search.max_text: text bytes sent to be indexed */
	uint32_t     search_max_query;     /* search.max_query (live reload) */
	uint32_t     search_max_limit;     /* search.max_limit (live reload) */
} objects;

#define OBJECTS_NROUTES    2u

/* objects.c: the object routes, each with arg o (borrowed: it must outlive
 * the HTTP server), written to out[0..OBJECTS_NROUTES). */
void objects_routes(objects *o, http_route out[OBJECTS_NROUTES]);

/* objects_get.c */
void objects_get(http_req *r, objects *o, const uint8_t id[32]);
/* How /media/{cid} differs from /o/{b3} (media.c): the type to send
 * (a recorded one: mediatype_parse's grammar), an attachment filename
 * (mediatype_filename_ok) or NULL, and the facet's clock. Borrowed for
 * the call. */
typedef struct objects_as {
	const char *ctype;
	const char *filename;
	bool        media;
	uint64_t    start_ns;
	/* No type is recorded: sniff the first verified bytes off the loop,
	 * record what libmagic names (media_type_learned) and serve it. */
	bool        sniff;
} objects_as;
void objects_get_as(http_req *r, objects *o, const uint8_t id[32], const objects_as *as);
/* search_route.c: tell the search service about a stored object (never
 * blocks, never fails the upload; a full queue drops, counted). head: the
 * first decoded bytes (the text indexed for text/ types). */
void objects_put_notify(objects *o, const uint8_t id[32], uint64_t len, const char *ctype,
                        const uint8_t *head, size_t head_len);
/* search_route.c: tell the search service that a name published through
 * this gateway now points at id (record seq), as objects_put_notify. */
void objects_name_notify(objects *o, const char *name, const uint8_t id[32], uint64_t seq);
/* objects_put.c; expect NULL for POST/PUT /o. */
void objects_put(http_req *r, objects *o, const uint8_t *expect);

/* objects_multi.c: the framing of a 206 multipart/byteranges body (RFC
 * 9110 §14.6) around parts whose bytes objects_get.c reads and verifies:
 *   --B CRLF Content-Type: T CRLF Content-Range: bytes S-E/L CRLF CRLF <bytes>
 *   CRLF --B CRLF ... <bytes> CRLF --B-- CRLF
 * Everything but the bytes is a function of the spans, the length and the
 * boundary, so the Content-Length is known before the status line. */
#define OBJECTS_BOUNDARY_LEN  32u    /* 16 random bytes in hex */
/* One part's delimiter and headers: 141 bytes and the type (at most
 * MEDIATYPE_MAX - 1 = 127), with room to spare. */
#define OBJECTS_PART_HEAD_MAX 320u

typedef struct objects_multi {
	range_span *spans;        /* owned: ascending, disjoint (range_parse) */
	size_t      n;            /* >= 2 */
	size_t      part;         /* the part being sent */
	bool        head_sent;    /* its delimiter and headers are queued */
	uint64_t    len;          /* the object's length */
	char        boundary[OBJECTS_BOUNDARY_LEN + 1];
	char        ctype[MEDIATYPE_MAX];   /* every part's Content-Type */
} objects_multi;

/* A copy of spans[0..n) (borrowed), the parts' type ctype (the
 * representation's, RFC 9110 §14.6: a recorded or sniffed type for /media,
 * OBJECTS_CONTENT_TYPE for /o; NULL or too long is OBJECTS_CONTENT_TYPE)
 * and a fresh random boundary; NULL on allocation failure. Caller frees
 * with objects_multi_free (NULL ok). */
objects_multi *objects_multi_new(const range_span *spans, size_t n, uint64_t len,
                                 const char *ctype);
void objects_multi_free(objects_multi *m);
/* "multipart/byteranges; boundary=B" into out (cap >= 64). */
void objects_multi_content_type(const objects_multi *m, char *out, size_t cap);
/* The whole body's length, or -1 if it would not fit an int64_t. */
int64_t objects_multi_body_len(const objects_multi *m);
/* Part k's delimiter and headers (a CRLF before every delimiter but the
 * first) into out[OBJECTS_PART_HEAD_MAX]; returns their length. */
size_t objects_multi_head(const objects_multi *m, size_t k, char out[OBJECTS_PART_HEAD_MAX]);
/* The close delimiter (CRLF --B-- CRLF) into out[OBJECTS_PART_HEAD_MAX]. */
size_t objects_multi_tail(const objects_multi *m, char out[OBJECTS_PART_HEAD_MAX]);

/* Shared answers (objects.c). */
/* Answer a failed storage call (404, 502 quarantined, 503 + Retry-After …). */
void objects_reply_stor_error(http_req *r, const stor_result *res);
/* Answer a failed overlay fetch (404, 502, 503 + Retry-After, 504). */
void objects_reply_ovl_error(http_req *r, int status, const char *message);
/* '"<64 hex>"' + NUL. */
void objects_etag(const uint8_t id[32], char out[OBJECTS_ETAG_LEN + 1]);

#endif
