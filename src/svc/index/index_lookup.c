/*
 * index_lookup.c — RESOLVE of a name the index does not hold: read the
 * values under the name's DHT key, keep the valid record with the highest
 * seq, take it like any record from elsewhere (index_take_record: the
 * cache, or the table if it came to hold the name meanwhile), and answer
 * every request that waited for it.
 *
 * Bounds: one lookup per name at a time (later requests for it wait on
 * the first, at most INDEX_LOOKUP_WAITERS_MAX), at most INDEX_LOOKUPS_MAX
 * names at once (beyond: 503, retryable), and a deadline of
 * INDEX_LOOKUP_DEADLINE_MS (504, retryable) whatever the dht service does.
 * Every value that does not check — malformed, oversized, bad_version,
 * bad_name, bad_sig, wrong_name (a record for another name under this key)
 * — is counted in index_records_rejected_total{reason} and ignored; values
 * with a lower seq than the best are older records, not refusals.
 * index_lookups_total{result} counts the outcome: found, not_found,
 * timeout, unavailable, busy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/metrics/metrics.h"
#include "core/metrics/reject.h"
#include "lib/log.h"
#include "lib/util.h"
#include "svc/index/index.h"

static void index_lookup_count(const char *result)
{
	char labels[48];

	snprintf(labels, sizeof labels, "result=\"%s\"", result);
	metrics_count("index_lookups_total", labels, 1);
}

/* Unlink and free lk; its waiters are the caller's (already taken). */
static void index_lookup_free(index_lookup *lk)
{
	index_svc *srv = lk->srv;

	index_dht_get_cancel(lk->get);
	if (lk->deadline)
		event_free(lk->deadline);
	LIST_REMOVE(lk, link);
	srv->nlookups--;
	free(lk);
}

/* Answer every waiter with an error and end the lookup. */
static void index_lookup_fail(index_lookup *lk, uint16_t status, const char *message)
{
	index_op *op;

	while ((op = LIST_FIRST(&lk->waiters)) != NULL) {
		LIST_REMOVE(op, wlink);
		op->lk = NULL;
		index_answer_err(op, status, message);
	}
	index_lookup_free(lk);
}

/* The valid record with the highest seq among the values, or false. */
static bool index_lookup_best(const index_lookup *lk, const uint8_t *const *v, const size_t *len,
                              size_t n, name_record *best)
{
	bool found = false;
	name_record rec;

	for (size_t i = 0; i < n; i++) {
		name_rec_result res = name_record_check(v[i], len[i], lk->key, &rec);
		if (res != NAME_REC_OK) {
			index_count_reject(name_rec_result_name(res));
			continue;
		}
		if (!found || rec.seq > best->seq)
			*best = rec;
		found = true;
	}
	return found;
}

static void on_values(int status, const uint8_t *const *v, const size_t *len, size_t n, void *arg)
{
	index_lookup *lk = arg;
	index_svc *srv = lk->srv;
	name_record best;
	index_op *op;

	lk->get = NULL;   /* done: nothing to cancel */
	if (status == 504 || status == 503 || (status != 200 && status != 404)) {
		index_lookup_count(status == 504 ? "timeout" : "unavailable");
		index_lookup_fail(lk, status == 504 ? 504 : 503,
		                  status == 504 ? "the network lookup timed out"
		                                : "the dht service is unavailable");
		return;
	}
	if (!index_lookup_best(lk, v, len, status == 200 ? n : 0, &best)) {
		index_lookup_count("not_found");
		index_lookup_fail(lk, 404, "no such name (not held here, none valid in the DHT)");
		return;
	}
	index_lookup_count("found");
	while ((op = LIST_FIRST(&lk->waiters)) != NULL) {
		LIST_REMOVE(op, wlink);
		op->lk = NULL;
		index_take_record(srv, &best, op);   /* the first stores it; the rest find it held */
	}
	index_lookup_free(lk);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	index_lookup_count("timeout");
	index_lookup_fail(arg, 504, "the network lookup timed out");
}

static index_lookup *index_lookup_find(index_svc *srv, const index_name *name)
{
	index_lookup *lk;

	LIST_FOREACH(lk, &srv->lookups, link)
		if (lk->name.len == name->len && memcmp(lk->name.s, name->s, name->len) == 0)
			return lk;
	return NULL;
}

static index_lookup *index_lookup_new(index_svc *srv, const index_name *name)
{
	struct timeval tv = { INDEX_LOOKUP_DEADLINE_MS / 1000, (INDEX_LOOKUP_DEADLINE_MS % 1000) * 1000 };
	index_lookup *lk = calloc(1, sizeof *lk);

	if (!lk)
		return NULL;
	lk->srv = srv;
	lk->name = *name;
	name_record_key(name->s, name->len, lk->key);
	LIST_INIT(&lk->waiters);
	LIST_INSERT_HEAD(&srv->lookups, lk, link);
	srv->nlookups++;
	lk->deadline = evtimer_new(srv->s->base, on_deadline, lk);
	if (!lk->deadline || evtimer_add(lk->deadline, &tv) != 0) {
		index_lookup_free(lk);
		return NULL;
	}
	lk->get = index_dht_get_start(srv->dht, lk->key, on_values, lk);   /* NULL: see the caller */
	return lk;
}

void index_lookup_start(index_op *op, const index_name *name)
{
	index_svc *srv = op->srv;
	index_lookup *lk = index_lookup_find(srv, name);

	if (!lk && srv->nlookups >= INDEX_LOOKUPS_MAX) {
		index_lookup_count("busy");
		reject_count(REJECT_FAMILY_NODE, REJECT_503);
		index_answer_err(op, 503, "too many network lookups in flight");
		return;
	}
	if (lk && lk->nwaiters >= INDEX_LOOKUP_WAITERS_MAX) {
		index_lookup_count("busy");
		reject_count(REJECT_FAMILY_NODE, REJECT_503);
		index_answer_err(op, 503, "too many requests wait on this name's lookup");
		return;
	}
	if (!lk && !(lk = index_lookup_new(srv, name))) {
		index_answer_err(op, 503, "out of memory");
		return;
	}
	op->lk = lk;
	LIST_INSERT_HEAD(&lk->waiters, op, wlink);
	lk->nwaiters++;
	if (!lk->get) {   /* the dht layer could not even start it */
		index_lookup_count("unavailable");
		index_lookup_fail(lk, 503, "the dht service is unavailable");
	}
}

void index_lookups_free(index_svc *srv)
{
	index_lookup *lk;

	while ((lk = LIST_FIRST(&srv->lookups)) != NULL) {
		index_lookup_fail(lk, 503, "index shutting down");
		UTIL_ANALYZER_ASSUME(LIST_FIRST(&srv->lookups) != lk);   /* LIST_REMOVE did */
	}
}
