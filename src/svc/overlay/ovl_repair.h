/*
 * ovl_repair.h — the overlay's replication (ovl_repair.c): publishes this
 * node's signed node record and runs the paced repair loop that asks peers
 * to REPLICATE objects held by fewer than storage.replicas nodes.
 *
 * Ownership: everything passed in is borrowed and must outlive the repair
 * (the overlay service owns it). Metrics: rf_target, rf_observed,
 * dht_missing_records, repair_requests_total{result}, repair_bytes_total,
 * repair_passes_total, repair_peers_alive, repair_node_records_published_total.
 */
#ifndef MN_SVC_OVL_REPAIR_H
#define MN_SVC_OVL_REPAIR_H

#include "core/config/config.h"
#include "core/dht/dht_client.h"
#include "core/identity/identity.h"
#include "core/objects/stor_client.h"
#include "core/tls.h"

struct event_base;
typedef struct ovl_repair ovl_repair;

/* Starts publishing and the first pass at once. NULL on allocation failure.
 * onion: the node's onion address as the svc holds it (borrowed, read at
 * each publish; "" while none). */
ovl_repair *ovl_repair_new(struct event_base *base, const mn_config *cfg,
                           const node_identity *id, const char *onion, stor_client *stor,
                           dht_client *dht, tls_peer *peer);
/* The onion address changed: publish the node record again now. */
void ovl_repair_onion(ovl_repair *r);
/* Stops everything in flight (no callback runs afterwards). NULL ok. */
void ovl_repair_free(ovl_repair *r);

#endif
