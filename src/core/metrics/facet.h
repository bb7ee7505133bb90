/*
 * facet.h — the facets' shared service-level metrics (issue 17): Media,
 * Graph, Feed, Search. Each facet's gateway routes and its back service
 * report here, so one family per kind of measure carries every facet:
 *
 *   facet_latency_seconds{facet}          histogram: a facet request, start to answer
 *   facet_busy_total{facet}               refused because the facet was at its bound
 *   facet_deadline_timeouts_total{facet}  past the facet's deadline (answered partial or 504)
 *
 * Label values come from the fixed table in facet.c, never from input.
 * State: a series cache per process (struct facet_cache in facet.c), reset
 * when the metrics mapping changes.
 */
#ifndef MN_CORE_METRICS_FACET_H
#define MN_CORE_METRICS_FACET_H

typedef enum facet_id {
	FACET_MEDIA = 0,
	FACET_GRAPH,
	FACET_FEED,
	FACET_SEARCH,
	FACET_COUNT
} facet_id;

/* "media", "graph", "feed", "search"; "none" out of range. */
const char *facet_name(facet_id f);
void facet_observe(facet_id f, double seconds);
void facet_busy(facet_id f);
void facet_deadline_timeout(facet_id f);
/* Create every facet's series at zero (so rates exist before the first event). */
void facet_prepare(void);

#endif
