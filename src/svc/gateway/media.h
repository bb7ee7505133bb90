/*
 * media.h — the Media facet's route (private to src/svc/gateway):
 *   GET, HEAD /media/{cid}[?download=<name>]
 * Behaviour: docs/media.md, docs/api.md "Media".
 */
#ifndef MN_SVC_GATEWAY_MEDIA_H
#define MN_SVC_GATEWAY_MEDIA_H

#include "core/objects/mediatype.h"
#include "svc/gateway/objects.h"

#define MEDIA_NROUTES 1u
/* Recorded types a worker remembers (direct-mapped by id), saving the
 * META_GET round trip; whether the object may be served is still asked
 * (objects_get.c). Upload types only: one never changes while its record
 * lives (the first stays, docs/media.md), where a type sniffed on a read
 * gives way to an upload's and is asked for each time; the RAM store drops the record with an evicted
 * object, so the table is forgotten whenever storage's removal epoch
 * moves or storage restarts (objcache_stamp, as the open handles are).
 * ~170 KiB per worker. */
#define MEDIA_TYPES_SLOTS 1024u

typedef struct media_types media_types;
/* cache borrowed (its stamp says when to forget); NULL when cache is
 * NULL or out of memory (then every request asks storage). */
media_types *media_types_new(objcache *cache);
void media_types_free(media_types *t);   /* NULL ok */
/* Remember a recorded (non-empty) type of id that storage gave in answer
 * to a call sent at stamp `asked` (objcache_stamp_now before the call);
 * kept only if no removal happened since. t NULL ok. */
void media_types_put(media_types *t, const uint8_t id[32], const char *ctype,
                     const objcache_stamp *asked);

/* A type sniffed on a /media read (objects_get.c), and storage's answer to
 * its META_SET: count it in media_read_sniff_total{result} (recorded;
 * kept: storage held a type already, which goes into ctype and is served;
 * unrecorded: META_SET failed, the sniffed type is served), and remember
 * the type in force. ctype: in, the sniffed type; out, the one to serve. */
void media_type_recorded(objects *o, const uint8_t id[32], const stor_result *res,
                         const objcache_stamp *asked, char ctype[MEDIATYPE_MAX]);
/* Count a /media read that found no type and sniffed none: "default"
 * (libmagic had no answer) or "busy" (the sniff pool was full). */
void media_type_read_count(const char *result);

/* The route, with arg o (borrowed: it must outlive the HTTP server). */
void media_routes(objects *o, http_route out[MEDIA_NROUTES]);

#endif
