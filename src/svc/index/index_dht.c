/*
 * index_dht.c — the index service's DHT layer (see index_dht.h).
 *
 * Until core/dht/dht_client (branch dht) is merged this layer has no DHT to
 * talk to: index_dht_new returns NULL and the index serves the names it
 * holds only. The calls below are the whole surface the index uses.
 */
#include "svc/index/index_dht.h"

#include <stdlib.h>

index_dht *index_dht_new(struct event_base *base, const struct mn_config *cfg)
{
	(void)base; (void)cfg;
	return NULL;
}

void index_dht_free(index_dht *d)
{
	(void)d;
}

void index_dht_put(index_dht *d, const name_record *rec)
{
	(void)d; (void)rec;
}

index_dht_get *index_dht_get_start(index_dht *d, const uint8_t key[NAME_RECORD_KEY_LEN],
                                   index_dht_values_cb cb, void *arg)
{
	(void)d; (void)key; (void)cb; (void)arg;
	return NULL;
}

void index_dht_get_cancel(index_dht_get *g)
{
	(void)g;
}
