/*
 * reject.c — refusal reasons and their cached series (see reject.h).
 */
#include "core/metrics/reject.h"
#include "core/metrics/reject_test.h"

#include <stdbool.h>
#include <stdio.h>

#include "core/metrics/metrics.h"

#define REJECT_LABELS_MAX 48   /* `reason="bad_request"` and room to spare */

/* Which families a reason is counted in. */
#define RF_NODE (1u << REJECT_FAMILY_NODE)
#define RF_OAP  (1u << REJECT_FAMILY_OAP)

static const struct reject_def {
	const char *name;
	unsigned    families;
} reject_defs[REJECT_COUNT] = {
	[REJECT_NONE]        = { "none", 0 },
	[REJECT_413]         = { "413", RF_NODE | RF_OAP },
	[REJECT_414]         = { "414", RF_NODE },
	[REJECT_415]         = { "415", RF_NODE },
	[REJECT_429]         = { "429", RF_NODE },
	[REJECT_431]         = { "431", RF_NODE },
	[REJECT_503]         = { "503", RF_NODE },
	[REJECT_501]         = { "501", RF_NODE },
	[REJECT_TIMEOUT]     = { "timeout", RF_NODE | RF_OAP },
	[REJECT_CONN_CAP]    = { "conn_cap", RF_NODE | RF_OAP },
	[REJECT_BAD_REQUEST] = { "bad_request", RF_NODE },
	[REJECT_UNAUTH]      = { "unauth", RF_NODE | RF_OAP },
	[REJECT_FORBIDDEN]   = { "forbidden", RF_NODE | RF_OAP },
	[REJECT_QUOTA]       = { "quota", RF_NODE | RF_OAP },
	[REJECT_DECOMPRESS]  = { "decompress", RF_NODE | RF_OAP },
	[REJECT_INTEGRITY]   = { "integrity", RF_NODE | RF_OAP },
	[REJECT_PEERCRED]    = { "peercred", RF_NODE },
	[REJECT_MALFORMED]   = { "malformed", RF_OAP },
	[REJECT_TOO_LARGE]   = { "too_large", RF_OAP },
	[REJECT_PROTOCOL]    = { "protocol", RF_OAP },
	[REJECT_HELLO]       = { "hello", RF_OAP },
	[REJECT_INFLIGHT]    = { "inflight", RF_OAP },
	[REJECT_H2_PROTOCOL] = { "h2_protocol", RF_NODE },
	[REJECT_H2_FLOOD]    = { "h2_flood", RF_NODE },
	[REJECT_H2_RATE]     = { "h2_rate", RF_NODE },
	[REJECT_H2_STALL]    = { "h2_stall", RF_NODE },
	[REJECT_CORS_ORIGIN] = { "cors_origin", RF_NODE },
};

static const char *const reject_families[REJECT_FAMILIES] = {
	[REJECT_FAMILY_NODE] = "rejected_total",
	[REJECT_FAMILY_OAP] = "oap_rejected_total",
};

/* Resolved slots, valid for the metrics mapping of generation `gen`. A slot
 * the table had no room for stays NULL (metrics_inc ignores it) and is not
 * asked for again: the table never frees one. */
struct reject_cache {
	unsigned        gen;
	metrics_series *s[REJECT_FAMILIES][REJECT_COUNT];
	bool            done[REJECT_FAMILIES][REJECT_COUNT];
};
static struct reject_cache g_reject;

const char *reject_name(reject_reason r)
{
	return (unsigned)r < REJECT_COUNT ? reject_defs[r].name : "none";
}

static bool reject_carries(reject_family f, reject_reason r)
{
	return (unsigned)f < REJECT_FAMILIES && r > REJECT_NONE && r < REJECT_COUNT &&
	    (reject_defs[r].families & (1u << f));
}

static metrics_series *reject_series(reject_family f, reject_reason r)
{
	char labels[REJECT_LABELS_MAX];
	unsigned gen = metrics_generation();

	if (g_reject.gen != gen) {
		struct reject_cache fresh = { .gen = gen };
		g_reject = fresh;
	}
	if (!g_reject.done[f][r]) {
		snprintf(labels, sizeof labels, "reason=\"%s\"", reject_defs[r].name);
		g_reject.s[f][r] = metrics_get(reject_families[f], labels);
		g_reject.done[f][r] = true;
	}
	return g_reject.s[f][r];
}

void reject_count(reject_family f, reject_reason r)
{
	if (reject_carries(f, r))
		metrics_inc(reject_series(f, r), 1);
}

void reject_prepare(reject_family f)
{
	for (unsigned r = REJECT_NONE + 1; r < REJECT_COUNT; r++)
		if (reject_carries(f, (reject_reason)r))
			(void)reject_series(f, (reject_reason)r);
}

uint64_t reject_value(reject_family f, reject_reason r)
{
	return reject_carries(f, r) ? metrics_value(reject_series(f, r)) : 0;
}
