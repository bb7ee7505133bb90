/*
 * search_route.h — the Search facet's route (private to src/svc/gateway):
 *   GET /search?q=…&limit=…
 * Behaviour: docs/search.md, docs/api.md "Search".
 */
#ifndef MN_SVC_GATEWAY_SEARCH_ROUTE_H
#define MN_SVC_GATEWAY_SEARCH_ROUTE_H

#include "svc/gateway/objects.h"

#define SEARCH_NROUTES 1u

void search_routes(objects *o, http_route out[SEARCH_NROUTES]);

#endif
