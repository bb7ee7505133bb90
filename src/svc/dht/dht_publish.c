/*
 * dht_publish.c — provider announces (see dht_svc.h).
 *
 * An announce signs a provider record with the node identity (oap address:
 * oap.addr, its IP replaced by dht.addr's when it is a wildcard; lifetime
 * dht.record_ttl) and puts it under the cid's key. Announces from clients
 * (storage, on every new object) are held to dht.max_announces_per_second:
 * beyond it 429, counted as limited.
 *
 * Republishing keeps records alive without a table of our own: every
 * dht.republish (and once the routing table has a node after start, so a
 * restarted service republishes at once) a pass walks storage's objects a
 * page at a time (STOR_LIST by cursor, DHT_REPUBLISH_PAGE ids) and announces
 * each, paced by its own bucket at half the announce rate, leaving the
 * other half to new objects; it holds back while half the op slots are busy.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config/config.h"
#include "core/dht/dht_value.h"
#include "core/dht/prov_record.h"
#include "core/metrics/metrics.h"
#include "lib/log.h"
#include "lib/util.h"
#include "svc/dht/dht_svc.h"

static void count_announce(const char *result)
{
	char labels[64];

	snprintf(labels, sizeof labels, "result=\"%s\"", result);
	metrics_count("dht_announces_total", labels, 1);
}

/* "ip:port" of sa (numeric), or "" when it does not fit. */
static void addr_format(const struct sockaddr_storage *ss, in_port_t port, char *out, size_t n)
{
	char ip[64] = "";
	int w = -1;

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof ip);
		w = snprintf(out, n, "%s:%u", ip, (unsigned)port);
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof ip);
		w = snprintf(out, n, "[%s]:%u", ip, (unsigned)port);
	}
	if (w < 0 || (size_t)w >= n)
		out[0] = '\0';
}

static bool addr_is_wild(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static in_port_t addr_port(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
	                                      : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* What records say: oap.addr, or dht.addr's IP with oap.addr's port; with
 * tor.only no IP at all (the onion alone, s->onion, docs/tor.md). */
static void publish_addr(dht_svc *d)
{
	struct sockaddr_storage oap, dht;
	unsigned len;
	bool lo;
	const mn_config *cfg = &d->s->cfg;

	d->oap_addr[0] = '\0';
	if (cfg->tor_enabled && cfg->tor_only)
		return;
	if (config_parse_addr(cfg->oap_addr, &oap, &len, &lo) != 0 ||
	    config_parse_addr(cfg->dht_addr, &dht, &len, &lo) != 0)
		return;
	if (!addr_is_wild(&oap))
		addr_format(&oap, addr_port(&oap), d->oap_addr, sizeof d->oap_addr);
	else if (!addr_is_wild(&dht))
		addr_format(&dht, addr_port(&oap), d->oap_addr, sizeof d->oap_addr);
	if (!d->oap_addr[0] && !cfg->tor_enabled)
		log_kv(LOG_LEVEL_WARN, "no address to announce: oap.addr and dht.addr are wildcards; "
		       "announces are refused", LOG_END);
}

void dht_publish_init(dht_svc *d)
{
	const mn_config *cfg = &d->s->cfg;
	uint64_t now = util_now_ms();
	uint32_t half = cfg->dht_max_announces_per_second / 2u;
	const char *hook = getenv(DHT_TEST_BAD_SIG_ENV);

	tbucket_init(&d->announce_rate, cfg->dht_max_announces_per_second,
	             cfg->dht_max_announces_per_second, now);
	tbucket_init(&d->rp.rate, half ? half : 1u, half ? half : 1u, now);
	publish_addr(d);
	d->bad_sig = hook && strcmp(hook, "1") == 0;
	if (d->bad_sig)
		log_kv(LOG_LEVEL_WARN, "test hook: announcing records with a corrupted signature",
		       "env", DHT_TEST_BAD_SIG_ENV, LOG_END);
}

/* ---- announcing ------------------------------------------------------------- */

static void announce_refuse(dht_svc *d, dht_conn *c, uint64_t corr, uint16_t status,
                            const char *msg, const char *result)
{
	dht_rep rep;

	(void)d;
	count_announce(result);
	if (!c)
		return;
	dht_msg_rep_err(&rep, DHT_ANNOUNCE, status, msg);
	dht_conn_reply(c, corr, &rep);
	dht_conn_op_done(c);
}

/* The signed record of cid, encoded; -1 when it cannot be made. */
static ssize_t announce_record(dht_svc *d, const uint8_t cid[32], uint8_t *buf, size_t cap)
{
	prov_record r;
	uint64_t ttl_s = d->s->cfg.dht_record_ttl_ms / 1000u;

	if (prov_record_sign_onion(&r, &d->s->identity, cid, d->oap_addr, d->s->onion, dht_now_s(),
	                           ttl_s) != 0)
		return -1;
	if (d->bad_sig)
		r.sig[0] ^= 0x01;   /* the test hook: every other node must refuse this */
	return prov_record_encode(&r, buf, cap);
}

void dht_publish_announce(dht_svc *d, dht_conn *c, uint64_t corr, const uint8_t cid[32],
                          bool republish)
{
	uint8_t rec[PROV_RECORD_MAX], key[DHT_KEY_LEN];
	ssize_t n;
	dht_op *op;

	if (!republish && !tbucket_take(&d->announce_rate, 1, util_now_ms())) {
		announce_refuse(d, c, corr, 429, "too many announces (dht.max_announces_per_second)",
		                "limited");
		return;
	}
	if ((!d->oap_addr[0] && !d->s->onion[0]) || (n = announce_record(d, cid, rec, sizeof rec)) < 0) {
		announce_refuse(d, c, corr, 503, d->s->cfg.tor_only ?
		                "cannot sign a provider record (tor.only: no onion address yet)" :
		                "cannot sign a provider record (no address to announce)", "failed");
		return;
	}
	if (!(op = dht_op_new(d, c, corr, DHT_ANNOUNCE, 1))) {
		announce_refuse(d, c, corr, 503, "too many DHT operations in flight", "failed");
		return;
	}
	op->republish = republish;
	prov_record_key(cid, key);
	memcpy(op->key, key, sizeof key);
	/* The first 20 bytes of key: the InfoHash. Our own value id for this
	 * cid: the record replaces the one we announced before. */
	dht_node_put(d->node, op->id, DHT_KIND_PROVIDER,
	             dht_value_derive_id(DHT_KIND_PROVIDER, d->s->identity.pk, key), key, rec, (size_t)n);
}

void dht_publish_done(dht_op *op, bool ok, bool timed_out)
{
	dht_rep rep = { .verb = DHT_ANNOUNCE, .status = 200 };

	count_announce(ok ? "ok" : timed_out ? "timeout" : "failed");
	if (ok) {
		dht_op_end(op, &rep);
		return;
	}
	dht_msg_rep_err(&rep, DHT_ANNOUNCE, timed_out ? 504 : 503,
	                timed_out ? "the DHT did not confirm the announce in time"
	                          : "no DHT node stored the record");
	dht_op_end(op, &rep);
}

/* ---- republishing ----------------------------------------------------------- */

static void on_list(const stor_result *res, void *arg)
{
	dht_svc *d = arg;
	dht_republish *rp = &d->rp;

	rp->asking = false;
	if (res->status != 200) {
		log_kv(LOG_LEVEL_WARN, "republish: storage did not list its objects; retrying",
		       "error", res->message, LOG_END);
		return;
	}
	rp->nids = res->nids < DHT_REPUBLISH_PAGE ? res->nids : DHT_REPUBLISH_PAGE;
	rp->next = 0;
	memcpy(rp->ids, res->ids, rp->nids * sizeof rp->ids[0]);
	rp->end = !res->more;
	if (rp->nids) {
		memcpy(rp->cursor, rp->ids[rp->nids - 1], sizeof rp->cursor);
		rp->has_cursor = true;
	}
}

static void republish_pass_end(dht_svc *d)
{
	dht_republish *rp = &d->rp;
	char n[24];

	snprintf(n, sizeof n, "%llu", (unsigned long long)rp->announced);
	log_kv(LOG_LEVEL_INFO, "republish pass done", "objects", n, LOG_END);
	rp->active = false;
	rp->next_pass_ms = util_now_ms() + d->s->cfg.dht_republish_ms;
}

/* The node's onion address changed (tor added the service, or amnesia's
 * new one): records announced so far name the old one or none, so a
 * republish pass starts at the next tick. */
void dht_publish_onion(dht_svc *d)
{
	if (!d->rp.active)
		d->rp.next_pass_ms = util_now_ms();
}

void dht_publish_tick(dht_svc *d)
{
	dht_republish *rp = &d->rp;
	uint64_t now = util_now_ms();

	if (d->draining || d->snap.good + d->snap.dubious == 0)
		return;                       /* nobody to publish to */
	if (!rp->active) {
		if (now < rp->next_pass_ms)
			return;
		*rp = (dht_republish){ .active = true, .rate = rp->rate };
		log_kv(LOG_LEVEL_INFO, "republish pass started", LOG_END);
	}
	while (rp->next < rp->nids && dht_node_ops(d->node) < DHT_NODE_OPS / 2 &&
	       tbucket_take(&rp->rate, 1, now)) {
		dht_publish_announce(d, NULL, 0, rp->ids[rp->next++], true);
		rp->announced++;
	}
	if (rp->next < rp->nids || rp->asking)
		return;
	if (rp->end) {
		republish_pass_end(d);
		return;
	}
	rp->asking = true;
	/* NULL or not, on_list comes (a 503 when the call could not start). */
	(void)stor_list(d->stor, rp->has_cursor ? rp->cursor : NULL, DHT_REPUBLISH_PAGE, on_list, d);
}
