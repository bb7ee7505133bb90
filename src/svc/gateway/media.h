/*
 * media.h — the Media facet's route (private to src/svc/gateway):
 *   GET, HEAD /media/{cid}[?download=<name>]
 * Behaviour: docs/media.md, docs/api.md "Media".
 */
#ifndef MN_SVC_GATEWAY_MEDIA_H
#define MN_SVC_GATEWAY_MEDIA_H

#include "svc/gateway/objects.h"

#define MEDIA_NROUTES 1u

/* The route, with arg o (borrowed: it must outlive the HTTP server). */
void media_routes(objects *o, http_route out[MEDIA_NROUTES]);

#endif
