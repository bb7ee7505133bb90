/*
 * index_lookup.c — RESOLVE of a name the index does not hold (or holds
 * only in its network cache, last checked more than INDEX_CACHE_FRESH_MS
 * ago): read the values under the name's DHT key, keep the valid record
 * with the highest seq, take it like any record from elsewhere (the cache,
 * or the table if it came to hold the name meanwhile) unless the node
 * already knows one as new, and answer every request that waited with the
 * newest record the node knows. When the DHT has nothing (or fails, or runs
 * out of time) a cached record, however old, is the answer; only a name
 * known nowhere gets the error.
 *
 * Bounds: one lookup per name at a time (later requests for it wait on
 * the first, at most INDEX_LOOKUP_WAITERS_MAX), at most INDEX_LOOKUPS_MAX
 * names at once (beyond: 503, retryable), and a deadline of
 * dht.lookup_timeout + 1 s, at most INDEX_LOOKUP_DEADLINE_MS (504,
 * retryable), whatever the dht service does.
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

/* Answer every waiter with rec (or the error when rec is NULL) and end the
 * lookup. */
static void index_lookup_end(index_lookup *lk, const name_record *rec, index_source src,
                             uint16_t status, const char *message)
{
	index_op *op;

	while ((op = LIST_FIRST(&lk->waiters)) != NULL) {
		LIST_REMOVE(op, wlink);
		op->lk = NULL;
		if (rec)
			index_answer_record(op, rec, src);
		else
			index_answer_err(op, status, message);
	}
	index_lookup_free(lk);
}

/* The DHT gave nothing: a cached record, however old, beats an error (and
 * is not looked up again before INDEX_CACHE_FRESH_MS). */
static void index_lookup_fail(index_lookup *lk, uint16_t status, const char *message)
{
	index_svc *srv = lk->srv;
	name_record cached;

	if (index_db_get(srv->cache, &lk->name, &cached) == INDEX_DB_OK) {
		index_db_ram_touch(srv->cache, &lk->name);
		index_lookup_end(lk, &cached, INDEX_SOURCE_LOCAL, 0, NULL);
		return;
	}
	index_lookup_end(lk, NULL, INDEX_SOURCE_LOCAL, status, message);
}

/* The best record the DHT had: kept (into the table through an import on
 * the writer thread when the table came to hold the name, else into the
 * cache), and every waiter gets the newest record the node now knows. A
 * record older than the one held is a refused rollback; the same one again
 * only says the cached one is still current. */
static void index_lookup_take(index_lookup *lk, const name_record *best)
{
	index_svc *srv = lk->srv;
	name_record held;

	if (index_db_get(srv->table, &lk->name, &held) == INDEX_DB_OK) {
		if (best->seq > held.seq)
			index_take_record(srv, best, NULL);
		index_lookup_end(lk, best->seq > held.seq ? best : &held, INDEX_SOURCE_NETWORK, 0, NULL);
		return;
	}
	if (index_db_get(srv->cache, &lk->name, &held) == INDEX_DB_OK && best->seq <= held.seq) {
		if (best->seq < held.seq)
			index_count_reject(name_rec_result_name(NAME_REC_STALE_SEQ));
		index_db_ram_touch(srv->cache, &lk->name);
		index_lookup_end(lk, &held, INDEX_SOURCE_NETWORK, 0, NULL);
		return;
	}
	index_take_record(srv, best, NULL);   /* into the cache: a higher seq, or a new name */
	index_lookup_end(lk, best, INDEX_SOURCE_NETWORK, 0, NULL);
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
	name_record best;

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
	index_lookup_take(lk, &best);
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

static uint64_t index_lookup_deadline_ms(const index_svc *srv)
{
	uint64_t ms = srv->s->cfg.dht_lookup_timeout_ms + INDEX_LOOKUP_SLACK_MS;

	return ms < INDEX_LOOKUP_DEADLINE_MS ? ms : INDEX_LOOKUP_DEADLINE_MS;
}

static index_lookup *index_lookup_new(index_svc *srv, const index_name *name)
{
	uint64_t ms = index_lookup_deadline_ms(srv);
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
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
