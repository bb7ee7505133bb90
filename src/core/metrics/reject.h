/*
 * reject.h — the node's refusal reasons: one enum and one name table for
 * every protocol (the HTTP core, the gateway, omnigate, the wall). A reason
 * is counted in rejected_total{reason} and, for OAP/1, in
 * oap_rejected_total{reason}. The names are label values on /metrics and
 * part of the interface (docs/metrics.md): never rename one.
 *
 * Series are cached: each (family, reason) slot is resolved once per process
 * and reused, so counting a refusal formats no label and searches no table.
 * rejected_total series appear on /metrics the first time their reason is
 * counted; reject_prepare creates a family's series up front (OAP/1 shows
 * every reason from start-up, at 0).
 *
 * State: the cache is owned by this module (struct reject_cache in
 * reject.c), one per process, and follows the metrics mapping: it is dropped
 * when metrics_attach / metrics_detach change the region.
 */
#ifndef MN_CORE_REJECT_H
#define MN_CORE_REJECT_H

#include <stdint.h>

typedef enum reject_reason {
	REJECT_NONE = 0,       /* not a refusal: counted nowhere */
	REJECT_413,            /* body or frame too large, a token's byte limit */
	REJECT_414,            /* request target too long */
	REJECT_415,            /* unsupported Content-Encoding */
	REJECT_429,            /* the node-wide request rate cap */
	REJECT_431,            /* header block too large */
	REJECT_503,            /* in-flight pressure, shedding, overload */
	REJECT_501,            /* a transfer coding not implemented */
	REJECT_TIMEOUT,        /* a deadline passed */
	REJECT_CONN_CAP,       /* limits.max_connections */
	REJECT_BAD_REQUEST,    /* malformed HTTP request */
	REJECT_UNAUTH,         /* the wall: 401 */
	REJECT_FORBIDDEN,      /* the wall: 403 / 451 */
	REJECT_QUOTA,          /* the wall: a tenant's bucket, 429 */
	REJECT_DECOMPRESS,     /* a body past the decompression caps */
	REJECT_INTEGRITY,      /* content that failed verification */
	REJECT_PEERCRED,       /* an internal socket peer of another uid */
	REJECT_MALFORMED,      /* OAP/1: bytes that are not a frame */
	REJECT_TOO_LARGE,      /* OAP/1: a header announcing > 1 MiB */
	REJECT_PROTOCOL,       /* OAP/1: a valid frame breaking the stream rules */
	REJECT_HELLO,          /* OAP/1: first frame not a HELLO */
	REJECT_INFLIGHT,       /* OAP/1: a stream over oap.max_inflight */
	REJECT_H2_PROTOCOL,    /* HTTP/2: frames breaking RFC 9113 (GOAWAY or RST_STREAM PROTOCOL_ERROR) */
	REJECT_H2_FLOOD,       /* HTTP/2: control frame, reset or header floods (GOAWAY ENHANCE_YOUR_CALM) */
	REJECT_H2_RATE,        /* HTTP/2: streams opened past http2.requests_per_second */
	REJECT_H2_STALL,       /* HTTP/2: a response held by a flow-control window that never opened */
	REJECT_CORS_ORIGIN,    /* a preflight or a write from an Origin not in gateway.cors_origins */
	REJECT_COUNT,
} reject_reason;

typedef enum reject_family {
	REJECT_FAMILY_NODE = 0,   /* rejected_total */
	REJECT_FAMILY_OAP,        /* oap_rejected_total */
	REJECT_FAMILIES,
} reject_family;

/* The label value ("413", "unauth"); "none" for REJECT_NONE or out of range. */
const char *reject_name(reject_reason r);
/* Count one refusal in family f. REJECT_NONE, or a reason f does not
 * carry (an HTTP-only reason in oap_rejected_total), counts nothing. */
void reject_count(reject_family f, reject_reason r);
/* Resolve (create at 0) every series of family f now. */
void reject_prepare(reject_family f);

#endif
