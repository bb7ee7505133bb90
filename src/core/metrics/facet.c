/*
 * facet.c — the facets' shared service-level metrics (see facet.h).
 */
#include "core/metrics/facet.h"

#include <stdbool.h>
#include <stdio.h>

#include "core/metrics/metrics.h"

enum { FACET_LAT = 0, FACET_BUSY, FACET_TIMEOUT, FACET_FAMILIES };

static const char *const facet_names[FACET_COUNT] = {
	[FACET_MEDIA] = "media", [FACET_GRAPH] = "graph",
	[FACET_FEED] = "feed",   [FACET_SEARCH] = "search",
};
static const char *const facet_families[FACET_FAMILIES] = {
	[FACET_LAT] = "facet_latency_seconds",
	[FACET_BUSY] = "facet_busy_total",
	[FACET_TIMEOUT] = "facet_deadline_timeouts_total",
};

/* Series pointers of this process, valid while the mapping generation holds. */
struct facet_cache {
	unsigned        gen;
	metrics_series *s[FACET_FAMILIES][FACET_COUNT];
	bool            done[FACET_FAMILIES][FACET_COUNT];
};
static struct facet_cache g_facet;

const char *facet_name(facet_id f)
{
	return (unsigned)f < FACET_COUNT ? facet_names[f] : "none";
}

static metrics_series *facet_series(int fam, facet_id f)
{
	unsigned gen = metrics_generation();
	char labels[32];

	if ((unsigned)f >= FACET_COUNT)
		return NULL;
	if (g_facet.gen != gen) {
		struct facet_cache fresh = { .gen = gen };
		g_facet = fresh;
	}
	if (!g_facet.done[fam][f]) {
		snprintf(labels, sizeof labels, "facet=\"%s\"", facet_names[f]);
		g_facet.s[fam][f] = metrics_get(facet_families[fam], labels);
		g_facet.done[fam][f] = true;
	}
	return g_facet.s[fam][f];
}

void facet_observe(facet_id f, double seconds)
{
	metrics_observe(facet_series(FACET_LAT, f), seconds);
}

void facet_busy(facet_id f)
{
	metrics_inc(facet_series(FACET_BUSY, f), 1);
}

void facet_deadline_timeout(facet_id f)
{
	metrics_inc(facet_series(FACET_TIMEOUT, f), 1);
}

void facet_prepare(void)
{
	for (int fam = 0; fam < FACET_FAMILIES; fam++)
		for (unsigned f = 0; f < FACET_COUNT; f++)
			(void)facet_series(fam, (facet_id)f);
}
