/*
 * index_dht.c — the index service's DHT layer (see index_dht.h), on the dht
 * service's client (core/dht/dht_client.h): names are DHT_KIND_NAME values
 * under BLAKE3("macronode/name-key/v1" || name), judged by the dht
 * service's verifier for that kind (core/dht/dht_verify.c, which is
 * name_record_check) before they are stored or returned, and judged again
 * here by the index (the index trusts no other process with a signature).
 *
 * Puts are fire and forget: the record is already durable in the index; a
 * put the DHT did not confirm is counted (index_dht_requests_total
 * {op="put",result}) and logged at most INDEX_DHT_LOG_PER_S times a second,
 * and the republish loop (index_republish.c) puts it again later.
 */
#include "svc/index/index_dht.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "core/config/config.h"
#include "core/dht/dht_client.h"
#include "core/metrics/metrics.h"
#include "lib/log.h"
#include "lib/tbucket.h"
#include "lib/util.h"

#define INDEX_DHT_LOG_PER_S 5

_Static_assert(NAME_RECORD_MAX <= DHT_VALUE_MAX, "a name record fits a DHT value");
_Static_assert(INDEX_DHT_VALUES_MAX == DHT_GET_MAX, "one get's values");
_Static_assert(NAME_RECORD_KEY_LEN == DHT_KEY_LEN, "a name key is a DHT key");

struct index_dht {
	dht_client *c;
	tbucket     log_rate;
};

struct index_dht_get {
	index_dht          *d;
	dht_call           *call;
	index_dht_values_cb cb;
	void               *arg;
};

static void index_dht_count(const char *op, const char *result)
{
	char labels[64];

	snprintf(labels, sizeof labels, "op=\"%s\",result=\"%s\"", op, result);
	metrics_count("index_dht_requests_total", labels, 1);
}

index_dht *index_dht_new(struct event_base *base, const mn_config *cfg)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	index_dht *d;

	if (!(cfg->services & CONFIG_SVC_DHT))
		return NULL;
	if (config_socket_path(cfg, DHT_SOCKET, path, sizeof path) != 0) {
		log_kv(LOG_LEVEL_ERROR, "dht socket path too long; names stay local", LOG_END);
		return NULL;
	}
	if (!(d = calloc(1, sizeof *d)) || !(d->c = dht_client_new(base, path))) {
		free(d);
		log_kv(LOG_LEVEL_ERROR, "no dht client (out of memory); names stay local", LOG_END);
		return NULL;
	}
	tbucket_init(&d->log_rate, INDEX_DHT_LOG_PER_S, INDEX_DHT_LOG_PER_S, util_now_ms());
	return d;
}

void index_dht_free(index_dht *d)
{
	if (!d)
		return;
	dht_client_free(d->c);   /* pending calls dropped: their callbacks never run */
	free(d);
}

static void on_put_done(int status, const char *message, void *arg)
{
	index_dht *d = arg;

	index_dht_count("put", status == 200 ? "ok" : status == 504 ? "timeout" : "error");
	if (status != 200 && tbucket_take(&d->log_rate, 1, util_now_ms())) {
		char st[8];
		snprintf(st, sizeof st, "%d", status);
		log_kv(LOG_LEVEL_WARN, "name record not put into the DHT; republished later",
		       "status", st, "error", message ? message : "", LOG_END);
	}
}

void index_dht_put(index_dht *d, const name_record *rec)
{
	uint8_t buf[NAME_RECORD_MAX], key[NAME_RECORD_KEY_LEN];
	ssize_t n;

	if (!d)
		return;
	if ((n = name_record_encode(rec, buf, sizeof buf)) < 0) {
		(void)BUG("index: a held record does not encode");
		return;
	}
	name_record_key(rec->name, rec->name_len, key);
	/* NULL: not even queued; on_put_done still runs with 503. */
	(void)dht_put(d->c, DHT_KIND_NAME, key, buf, (size_t)n, on_put_done, d);
}

static void on_values(int status, const char *message, const dht_value *v, size_t n, void *arg)
{
	index_dht_get *g = arg;
	const uint8_t *vals[INDEX_DHT_VALUES_MAX];
	size_t lens[INDEX_DHT_VALUES_MAX];

	(void)message;
	if (n > INDEX_DHT_VALUES_MAX)
		n = INDEX_DHT_VALUES_MAX;
	for (size_t i = 0; i < n; i++) {
		vals[i] = v[i].data;
		lens[i] = v[i].len;
	}
	index_dht_count("get", status == 200 ? (n ? "found" : "empty")
	                       : status == 504 ? "timeout" : "error");
	if (g->cb)   /* NULL: cancelled while it could not be (no call handle) */
		g->cb(status == 200 && n == 0 ? 404 : status, vals, lens, status == 200 ? n : 0, g->arg);
	free(g);
}

index_dht_get *index_dht_get_start(index_dht *d, const uint8_t key[NAME_RECORD_KEY_LEN],
                                   index_dht_values_cb cb, void *arg)
{
	index_dht_get *g;

	if (!d || !(g = calloc(1, sizeof *g)))
		return NULL;
	*g = (index_dht_get){ .d = d, .cb = cb, .arg = arg };
	g->call = dht_get(d->c, DHT_KIND_NAME, key, on_values, g);
	/* A NULL call still answers (503) through on_values, which frees g. */
	return g;
}

void index_dht_get_cancel(index_dht_get *g)
{
	if (!g)
		return;
	if (g->call) {
		dht_call_cancel(g->call);
		free(g);
	}
	/* no handle: on_values still comes and frees g; its cb must not run */
	else
		g->cb = NULL;
}
