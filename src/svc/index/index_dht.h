/*
 * index_dht.h — the index service's use of the DHT (private to
 * src/svc/index): publish each new record under its name's key, and read
 * the values under a key for a name the index does not hold. A thin layer
 * over core/dht/dht_client.h (the dht service), so that the index works —
 * names stay local — when the node runs no dht service: index_dht_new
 * then returns NULL and the callers skip the network.
 *
 * Values read are bytes from the network: this layer hands them over
 * unjudged; the index checks each (name_record_check) and counts refusals.
 */
#ifndef MN_SVC_INDEX_DHT_H
#define MN_SVC_INDEX_DHT_H

#include <stddef.h>
#include <stdint.h>

#include "core/dht/name_record.h"

struct event_base;
struct mn_config;

#define INDEX_DHT_VALUES_MAX 16u   /* values one get hands over at most (DHT_GET_MAX) */

typedef struct index_dht index_dht;
typedef struct index_dht_get index_dht_get;

/* status: 200 (n values, borrowed for the call; n may be 0), 404 (none),
 * 503 (the dht service is unavailable) or 504 (its lookup ran out of time). */
typedef void (*index_dht_values_cb)(int status, const uint8_t *const *v, const size_t *len,
                                    size_t n, void *arg);

/* The DHT client, or NULL when cfg runs no dht service (the index is then
 * local only). */
index_dht *index_dht_new(struct event_base *base, const struct mn_config *cfg);
void index_dht_free(index_dht *d);   /* pending gets dropped; NULL ok */

/* Put rec under its name's key; the outcome is counted
 * (index_dht_requests_total{op="put"}) and logged when it fails. */
void index_dht_put(index_dht *d, const name_record *rec);

/* Read the values under key; cb runs once, later, from the loop. NULL when
 * nothing could be started: cb will not run. */
index_dht_get *index_dht_get_start(index_dht *d, const uint8_t key[NAME_RECORD_KEY_LEN],
                                   index_dht_values_cb cb, void *arg);
/* cb will not run. NULL ok. */
void index_dht_get_cancel(index_dht_get *g);

#endif
