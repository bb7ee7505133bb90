/*
 * roles.c — the table of services (see roles.h).
 */
#include "node/roles.h"

#include <string.h>
#include <unistd.h>

#include "core/audit/audit_client.h"
#include "core/objects/ovl_client.h"
#include "core/search/search_msg.h"
#include "node/node.h"

const role roles[] = {
	{
		/* The audit log's only writer: first, so that every other service's
		 * start-up entries find it; drained with the back tier (it takes
		 * the entries the front sent while draining, then checkpoints).
		 * Required: a node that cannot record what it decides is not ready
		 * (while it is down, entries are dropped and counted). */
		.name = "audit", .ops = &audit_ops, .service_bit = CONFIG_SVC_AUDIT,
		.instances = 1, .listen = ROLE_LISTEN_NONE, .socket = AUDIT_SOCKET,
		.required = true, .tier = ROLE_TIER_BACK, .policy = false, .identity = true,
		.sandbox = &svc_sandbox_audit,
	},
	{
		/* Owns the object store; the front services reach it over its socket. */
		.name = "storage", .ops = &storage_ops, .service_bit = CONFIG_SVC_STORAGE,
		.instances = 1, .listen = ROLE_LISTEN_NONE, .socket = NODE_STORAGE_SOCKET,
		.required = true, .tier = ROLE_TIER_BACK, .policy = false,
		.sandbox = &svc_sandbox_store,
	},
	{
		/* Names → cids: signs records with the node identity; the gateway
		 * reaches it over its socket (opt-in: `services` lists "index"). */
		.name = "index", .ops = &index_ops, .service_bit = CONFIG_SVC_INDEX,
		.instances = 1, .listen = ROLE_LISTEN_NONE, .socket = NODE_INDEX_SOCKET,
		.required = true, .tier = ROLE_TIER_BACK, .policy = false, .identity = true,
		.sandbox = &svc_sandbox_index,
	},
	{
		/* Mailboxes: queues per recipient in LMDB; the gateway reaches it
		 * over its socket (opt-in: `services` lists "mailbox"). */
		.name = "mailbox", .ops = &mailbox_ops, .service_bit = CONFIG_SVC_MAILBOX,
		.instances = 1, .listen = ROLE_LISTEN_NONE, .socket = NODE_MAILBOX_SOCKET,
		.required = true, .tier = ROLE_TIER_BACK, .policy = false,
		.sandbox = &svc_sandbox_mailbox,
	},
	{
		/* HTTP front: a process per worker, all accepting on one listener. */
		.name = "gateway", .ops = &gateway_ops, .service_bit = CONFIG_SVC_GATEWAY,
		.instances = ROLE_INSTANCES_WORKERS, .listen = ROLE_LISTEN_GATEWAY,
		.required = true, .tier = ROLE_TIER_FRONT, .policy = true,
		.deps = { [CTL_DEP_STORAGE] = ROLE_DEP_CUTS_OFF,
		          [CTL_DEP_CAPACITY] = ROLE_DEP_DEGRADES,
		          [CTL_DEP_ZK] = ROLE_DEP_DEGRADES },
		.sandbox = &svc_sandbox_gateway,
	},
	{
		/* OAP/1 front over TLS; the node identity is its peer-plane
		 * certificate (and its only one without tls.cert_file). */
		.name = "omnigate", .ops = &omnigate_ops, .service_bit = CONFIG_SVC_OMNIGATE,
		.instances = 1, .listen = ROLE_LISTEN_OAP,
		.required = true, .tier = ROLE_TIER_FRONT, .policy = true, .identity = true,
		.deps = { [CTL_DEP_STORAGE] = ROLE_DEP_CUTS_OFF,
		          [CTL_DEP_CAPACITY] = ROLE_DEP_DEGRADES,
		          [CTL_DEP_ZK] = ROLE_DEP_DEGRADES },
		.sandbox = &svc_sandbox_front,
	},
	{
		/* The OpenDHT node: provider records, lookups. Not required: a
		 * node without peers still serves what it holds (an island); its
		 * bootstrap state degrades /readyz, never fails it. */
		.name = "dht", .ops = &dht_ops, .service_bit = CONFIG_SVC_DHT,
		.instances = 1, .listen = ROLE_LISTEN_NONE, .socket = NODE_DHT_SOCKET,
		.required = false, .tier = ROLE_TIER_BACK, .policy = false, .identity = true,
		.deps = { [CTL_DEP_DHT] = ROLE_DEP_DEGRADES },
		.sandbox = &svc_sandbox_dht,
	},
	{
		/* Fetches on a miss from the providers the DHT names, verified. */
		.name = "overlay", .ops = &overlay_ops, .service_bit = CONFIG_SVC_OVERLAY,
		.instances = 1, .listen = ROLE_LISTEN_NONE, .socket = OVL_SOCKET,
		.required = false, .tier = ROLE_TIER_BACK, .policy = false, .identity = true,
		.sandbox = &svc_sandbox_overlay,
	},
	{
		/* The follow graph and the feeds (facets graph, feed); the gateway
		 * reaches it over its socket (opt-in: `services` lists "social").
		 * Not required: the facets are shed first anyway, and a node
		 * without them still serves objects. */
		.name = "social", .ops = &social_ops, .service_bit = CONFIG_SVC_SOCIAL,
		.instances = 1, .listen = ROLE_LISTEN_NONE, .socket = NODE_SOCIAL_SOCKET,
		.required = false, .tier = ROLE_TIER_BACK, .policy = false,
		.sandbox = &svc_sandbox_social,
	},
	{
		/* FTS5 over object metadata and text (docs/search.md); the
		 * gateway tells it of each PUT and asks it on GET /search.
		 * Opt-in (`services` lists "search"); a facet, so not required:
		 * while it is down /search answers 503 and the node stays ready. */
		.name = "search", .ops = &search_ops, .service_bit = CONFIG_SVC_SEARCH,
		.instances = 1, .listen = ROLE_LISTEN_NONE, .socket = SEARCH_SOCKET,
		.required = false, .tier = ROLE_TIER_BACK, .policy = false,
		.sandbox = &svc_sandbox_search,
	},
};
const size_t roles_count = sizeof roles / sizeof roles[0];

_Static_assert(sizeof roles / sizeof roles[0] <= ROLES_MAX, "raise ROLES_MAX");

const role *role_find(const char *name)
{
	for (size_t i = 0; i < roles_count; i++)
		if (strcmp(roles[i].name, name) == 0)
			return &roles[i];
	return NULL;
}

bool role_is_enabled(const role *r, const mn_config *cfg)
{
	return (cfg->services & r->service_bit) != 0;
}

unsigned role_instances(const role *r, const mn_config *cfg)
{
	if (r->instances != ROLE_INSTANCES_WORKERS)
		return r->instances;
	if (cfg->gateway_workers)
		return cfg->gateway_workers;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	return ncpu > 0 ? (unsigned)ncpu : 1u;
}

const char *role_listen_addr(const role *r, const mn_config *cfg)
{
	switch (r->listen) {
	case ROLE_LISTEN_GATEWAY: return cfg->gateway_addr;
	case ROLE_LISTEN_OAP:     return cfg->oap_addr;
	default:                  return NULL;
	}
}

bool roles_listen_enabled(const mn_config *cfg, role_listen l)
{
	for (size_t i = 0; i < roles_count; i++)
		if (roles[i].listen == l && role_is_enabled(&roles[i], cfg))
			return true;
	return false;
}

bool roles_want_policy(const mn_config *cfg)
{
	for (size_t i = 0; i < roles_count; i++)
		if (roles[i].policy && role_is_enabled(&roles[i], cfg))
			return true;
	return false;
}
