/*
 * index_republish.c — keep the table's records alive in the DHT. The DHT
 * forgets a value after dht.record_ttl (24 h by default), so every
 * INDEX_REPUBLISH_TICK_MS the index puts the next batch of its table's
 * current records again, sized so that the whole table goes round once per
 * dht.republish (22 h by default): count × tick / republish names a tick,
 * at least 1 and at most INDEX_REPUBLISH_BATCH_MAX (past that bound a huge
 * table takes longer than dht.republish to go round, and the DHT is spared
 * the burst). The first batch goes INDEX_REPUBLISH_FIRST_MS after start, so
 * a node that was down finds its names in the DHT again soon.
 *
 * Only when the node runs the dht service (srv->dht). Every put is counted
 * in index_dht_requests_total{op="put"}; a failed one waits for its next
 * turn. The network cache is not republished: those records are other
 * nodes' to keep.
 */
#include <stdlib.h>

#include <event2/event.h>

#include "svc/index/index.h"

static void index_republish_arm(index_svc *srv, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };

	(void)evtimer_add(srv->republish_ev, &tv);
}

/* Names a tick puts: the table once per dht.republish. */
static size_t index_republish_batch(const index_svc *srv, uint64_t count)
{
	uint64_t period = srv->s->cfg.dht_republish_ms ? srv->s->cfg.dht_republish_ms : 1;
	uint64_t n = (count * INDEX_REPUBLISH_TICK_MS + period - 1) / period;

	if (n < 1)
		n = 1;
	return n > INDEX_REPUBLISH_BATCH_MAX ? INDEX_REPUBLISH_BATCH_MAX : (size_t)n;
}

static void on_republish(evutil_socket_t fd, short what, void *arg)
{
	index_svc *srv = arg;
	name_record *recs = calloc(INDEX_REPUBLISH_BATCH_MAX, sizeof *recs);
	size_t n = 0;

	(void)fd; (void)what;
	if (recs) {
		n = index_db_scan(srv->table, &srv->republish_at, recs,
		                  index_republish_batch(srv, index_db_count(srv->table)));
		for (size_t i = 0; i < n; i++)
			index_dht_put(srv->dht, &recs[i]);
		free(recs);
	}
	index_republish_arm(srv, INDEX_REPUBLISH_TICK_MS);
}

int index_republish_start(index_svc *srv)
{
	if (!srv->dht)
		return 0;
	srv->republish_ev = evtimer_new(srv->s->base, on_republish, srv);
	if (!srv->republish_ev)
		return -1;
	index_republish_arm(srv, INDEX_REPUBLISH_FIRST_MS);
	return 0;
}

void index_republish_stop(index_svc *srv)
{
	if (srv->republish_ev)
		event_free(srv->republish_ev);
	srv->republish_ev = NULL;
}
