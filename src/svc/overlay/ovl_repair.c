/*
 * ovl_repair.c — replication: this node's node record, and the repair loop
 * that keeps every object stored here at storage.replicas distinct nodes
 * (docs/network.md "Replication").
 *
 * Node record: signed (core/dht/node_record.h), put under the one
 * well-known key once the DHT takes it (retried every REPAIR_PUB_RETRY_MS),
 * then refreshed every REPAIR_PUB_REFRESH_S; it lives 3 refreshes.
 *
 * A pass, every overlay.repair_interval:
 *   1. read the node records (dht_get, bounded by dht.max_values_per_key;
 *      at most REPAIR_PEERS_MAX peers kept, ourselves never) and PING each
 *      over the peer plane: a peer is alive for this pass when it answers;
 *   2. walk storage's objects a page at a time (STOR_LIST, REPAIR_PAGE ids),
 *      at most REPAIR_CONC objects at once, started at most REPAIR_PER_S per
 *      second: for each, dht_find_providers; a provider this pass has not
 *      heard from yet is PINGed at the address its record gives (at most
 *      REPAIR_KNOWN_MAX nodes known per pass, each asked once unless two
 *      objects ask at the same moment); the replicas observed are this node
 *      plus the providers that answered;
 *   3. only the leader acts: of the live holders (this node and the
 *      providers that answered) the one with the least node id. Every holder
 *      of an owned copy runs this loop, and without one actor per object
 *      they would all ask for the same missing copies at once (a 50-node
 *      swarm grew 9 copies per object that way). The leader asks alive peers
 *      that are not providers to REPLICATE it (oap_client, pinned), as many
 *      as are missing; when the leader dies, the next least id takes over;
 *   4. publish the pass's figures: rf_observed (the least of the pass),
 *      dht_missing_records (objects with fewer provider records than the
 *      target).
 * Nothing is remembered between passes but the peers of the last one: a
 * copy that vanishes is noticed by the next pass.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "core/config/config.h"
#include "core/dht/node_record.h"
#include "core/metrics/metrics.h"
#include "core/net/oap_client.h"
#include "lib/b3.h"
#include "lib/log.h"
#include "svc/overlay/ovl_repair.h"

#define REPAIR_PEERS_MAX     16u      /* peers read from node records per pass */
#define REPAIR_KNOWN_MAX     64u      /* nodes known per pass: those, then providers */
#define REPAIR_PROV_MAX      16u      /* providers of one object considered */
#define REPAIR_PAGE          64u      /* ids per STOR_LIST page */
#define REPAIR_CONC          4u       /* objects checked at once */
#define REPAIR_PER_S         20u      /* objects started per second */
#define REPAIR_JOBS_MAX      16u      /* REPLICATE requests of one object (≤ replicas max) */
#define REPAIR_PUB_RETRY_MS  2000u
#define REPAIR_PUB_REFRESH_S 3600u
#define REPAIR_PING_MS       5000u
#define REPAIR_FIRST_MS      3000u    /* the first pass, after start */
#define OG_VERB_PING_CODE    1u
#define OG_VERB_REPLICATE_CODE 6u

typedef struct rpeer {
	uint8_t id[32];
	char    addr[PROV_ONION_MAX + 1];   /* what we dial: prov_pick_addr's choice */
	bool    alive;
	bool    probed;       /* a PING of this pass answered or failed */
	bool    candidate;    /* from a node record: may be asked to REPLICATE */
} rpeer;

typedef enum rjob_kind { RJOB_PING, RJOB_PROBE, RJOB_REPLICATE } rjob_kind;

struct robj;

/* One OAP/1 exchange with one peer: a PING of the pass (robj NULL), a PING
 * of one object's provider (PROBE), or a REPLICATE. */
typedef struct rjob {
	struct rjob *next, *prev;   /* r->jobs: every exchange in flight */
	ovl_repair  *r;
	rjob_kind    kind;
	struct robj *o;
	size_t       peer;          /* index into r->peers */
	oap_client  *c;
	int          status;
	uint64_t     len;
} rjob;

typedef struct robj {
	struct ovl_repair *r;
	bool      used;
	uint8_t   cid[32];
	dht_call *call;
	size_t    jobs;             /* PROBEs, then REPLICATE requests, in flight */
	size_t    prov[REPAIR_PROV_MAX];   /* its providers: indexes into r->peers */
	size_t    nprov;
	uint64_t  records;          /* provider records found, ourselves included */
} robj;

struct ovl_repair {
	struct event_base *base;
	const mn_config   *cfg;
	const node_identity *id;
	stor_client       *stor;
	dht_client        *dht;
	tls_peer          *peer;
	char               addr[PROV_ADDR_MAX + 1];   /* what our node record says ("": tor.only) */
	const char        *onion;                     /* the svc's onion address (borrowed), or "" */
	struct event      *pub_ev, *pass_ev, *step_ev;
	dht_call          *pub_call, *get_call;
	stor_call         *list_call;
	rjob              *jobs;
	rpeer              peers[REPAIR_KNOWN_MAX];
	size_t             npeers, pings;
	/* the pass */
	bool               running;
	uint8_t            ids[REPAIR_PAGE][32];
	size_t             nids, next;
	bool               more, has_cursor;
	uint8_t            cursor[32];
	robj               objs[REPAIR_CONC];
	size_t             busy;
	uint64_t           min_rf, missing, objects;
	metrics_series    *m_target, *m_observed, *m_missing, *m_bytes, *m_passes, *m_deferred;
};

static void pass_step(ovl_repair *r);
static void pass_list(ovl_repair *r);

static uint64_t now_s(void)
{
	return (uint64_t)time(NULL);
}

static void count_request(const char *result)
{
	char labels[48];

	snprintf(labels, sizeof labels, "result=\"%s\"", result);
	metrics_count("repair_requests_total", labels, 1);
}

static void arm(struct event *ev, uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000u), .tv_usec = (suseconds_t)(ms % 1000u) * 1000 };

	evtimer_add(ev, &tv);
}

/* ---- the node record --------------------------------------------------------- */

/* oap.addr, or dht.addr's IP with oap.addr's port (as provider records). */
static void repair_addr(ovl_repair *r)
{
	struct sockaddr_storage oap, dht;
	unsigned len;
	bool lo;
	const struct sockaddr_storage *ip = &oap;
	char host[64] = "";
	in_port_t port;

	r->addr[0] = '\0';
	if (r->cfg->tor_enabled && r->cfg->tor_only)
		return;   /* no IP of this node in anything it publishes */
	if (config_parse_addr(r->cfg->oap_addr, &oap, &len, &lo) != 0 ||
	    config_parse_addr(r->cfg->dht_addr, &dht, &len, &lo) != 0)
		return;
	port = ntohs(oap.ss_family == AF_INET ? ((struct sockaddr_in *)&oap)->sin_port
	                                      : ((struct sockaddr_in6 *)&oap)->sin6_port);
	if (oap.ss_family == AF_INET ? ((struct sockaddr_in *)&oap)->sin_addr.s_addr == htonl(INADDR_ANY)
	                             : IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&oap)->sin6_addr))
		ip = &dht;
	if (ip->ss_family == AF_INET) {
		const struct in_addr *a = &((const struct sockaddr_in *)ip)->sin_addr;
		if (a->s_addr == htonl(INADDR_ANY))
			return;
		inet_ntop(AF_INET, a, host, INET_ADDRSTRLEN);   /* "255.255.255.255:65535" fits */
		if ((size_t)snprintf(r->addr, sizeof r->addr, "%s:%u", host, (unsigned)port) >=
		    sizeof r->addr)
			r->addr[0] = '\0';
	} else {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ip)->sin6_addr;
		if (IN6_IS_ADDR_UNSPECIFIED(a))
			return;
		inet_ntop(AF_INET6, a, host, sizeof host);
		if ((size_t)snprintf(r->addr, sizeof r->addr, "[%s]:%u", host, (unsigned)port) >=
		    sizeof r->addr)
			r->addr[0] = '\0';
	}
}

static void on_published(int status, const char *message, void *arg)
{
	ovl_repair *r = arg;

	r->pub_call = NULL;
	if (status != 200) {
		log_kv(LOG_LEVEL_DEBUG, "node record not published yet", "error", message, LOG_END);
		arm(r->pub_ev, REPAIR_PUB_RETRY_MS);
		return;
	}
	metrics_count("repair_node_records_published_total", "", 1);
	arm(r->pub_ev, REPAIR_PUB_REFRESH_S * 1000u);
}

static void on_pub_timer(evutil_socket_t fd, short what, void *arg)
{
	ovl_repair *r = arg;
	node_record rec;
	uint8_t buf[NODE_RECORD_MAX], key[32];
	ssize_t n;

	(void)fd; (void)what;
	if (!r->addr[0] && !r->onion[0]) {
		arm(r->pub_ev, REPAIR_PUB_RETRY_MS);   /* tor.only: no onion address yet */
		return;
	}
	if (node_record_sign_onion(&rec, r->id, r->addr, r->onion, now_s(),
	                           3u * REPAIR_PUB_REFRESH_S) != 0 ||
	    (n = node_record_encode(&rec, buf, sizeof buf)) < 0) {
		log_kv(LOG_LEVEL_ERROR, "cannot sign this node's record", "addr", r->addr, LOG_END);
		return;
	}
	node_record_key(key);
	r->pub_call = dht_put(r->dht, DHT_KIND_NODE, key, buf, (size_t)n, on_published, r);
}

/* ---- one exchange with a peer ----------------------------------------------- */

static void job_end(rjob *j);

static void job_on_start(void *arg, int status, const uint8_t *json, size_t len)
{
	rjob *j = arg;

	j->status = status;
	if (status == 200 && j->kind == RJOB_REPLICATE) {
		json_t *v = json_loadb((const char *)json, len, 0, NULL);
		json_int_t n = json_integer_value(json_object_get(v, "len"));
		j->len = n > 0 ? (uint64_t)n : 0;
		json_decref(v);
	}
}

static void job_on_data(void *arg, const uint8_t *p, size_t n)
{
	(void)arg; (void)p; (void)n;
}

static void job_on_end(void *arg)
{
	job_end(arg);
}

static void job_on_ready(void *arg)
{
	rjob *j = arg;
	char params[96] = "";
	static const oap_call_cbs cbs = { job_on_start, job_on_data, job_on_end };

	if (j->kind == RJOB_REPLICATE) {
		char cid[B3_CID_LEN + 1];
		b3_cid_format(j->o->cid, cid);
		snprintf(params, sizeof params, "{\"cid\":\"%s\"}", cid);
	}
	if (!oap_client_start(j->c, j->kind == RJOB_REPLICATE ? OG_VERB_REPLICATE_CODE
	                                                      : OG_VERB_PING_CODE,
	                      j->kind == RJOB_REPLICATE ? params : NULL, NULL, &cbs, j))
		job_end(j);
}

static void job_on_error(void *arg, oap_client_error e, const char *detail)
{
	rjob *j = arg;

	(void)detail;
	j->status = e == OAP_CLIENT_CONNECT ? -1 : e == OAP_CLIENT_PIN ? -2 : -3;
	job_end(j);
}

static void pings_done(ovl_repair *r);
static void obj_done(ovl_repair *r, robj *o);
static void obj_decide(ovl_repair *r, robj *o);

static void job_end(rjob *j)
{
	ovl_repair *r = j->r;
	robj *o = j->o;

	if (j->prev)
		j->prev->next = j->next;
	else
		r->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	oap_client_free(j->c);
	if (j->kind != RJOB_REPLICATE) {
		r->peers[j->peer].alive = j->status == 200;
		r->peers[j->peer].probed = true;
		free(j);
		if (!o) {
			if (--r->pings == 0)
				pings_done(r);
		} else if (--o->jobs == 0) {
			obj_decide(r, o);      /* every PROBE of the object answered */
		}
		return;
	}
	if (j->status == 200) {
		count_request("stored");
		metrics_inc(r->m_bytes, j->len);
	} else {
		count_request(j->status == -1 ? "connect" : j->status == -2 ? "pin" :
		              j->status < 0 ? "error" : j->status == 403 || j->status == 401 ? "refused" :
		              "failed");
		log_kv(LOG_LEVEL_WARN, "replicate request failed", "peer", r->peers[j->peer].addr,
		       LOG_END);
	}
	free(j);
	if (--o->jobs == 0)
		obj_done(r, o);
}

static bool job_start(ovl_repair *r, rjob_kind kind, robj *o, size_t peer)
{
	rjob *j = calloc(1, sizeof *j);
	char err[128];
	uint64_t frame = kind == RJOB_REPLICATE ? r->cfg->overlay_fetch_timeout_ms + 5000u
	                                        : REPAIR_PING_MS;
	oap_client_opts opts = { .connect_ms = REPAIR_PING_MS, .handshake_ms = REPAIR_PING_MS,
	                         .frame_ms = frame, .write_ms = REPAIR_PING_MS,
	                         .socks = r->cfg->tor_enabled ? r->cfg->tor_socks : NULL };
	static const oap_client_cbs cbs = { job_on_ready, job_on_error };

	if (!j)
		return false;
	j->r = r;
	j->kind = kind;
	j->o = o;
	j->peer = peer;
	j->c = oap_client_new(r->base, r->peer, r->peers[peer].addr, r->peers[peer].id, &opts,
	                      &cbs, j, err, sizeof err);
	if (!j->c) {
		free(j);
		return false;
	}
	j->next = r->jobs;
	if (r->jobs)
		r->jobs->prev = j;
	r->jobs = j;
	return true;
}

/* ---- one object --------------------------------------------------------------- */

static void obj_done(ovl_repair *r, robj *o)
{
	o->used = false;
	r->busy--;
	pass_step(r);
}

static bool among(const robj *o, size_t peer)
{
	for (size_t i = 0; i < o->nprov; i++)
		if (o->prov[i] == peer)
			return true;
	return false;
}

/* The index of node id in this pass's table, added (not yet probed) when
 * there is room; SIZE_MAX when it is not there and cannot be. */
static size_t peer_slot(ovl_repair *r, const uint8_t id[32], const char *oap_addr,
                        const char *onion)
{
	const char *addr = prov_pick_addr(r->cfg->tor_enabled, r->cfg->tor_only, oap_addr, onion);

	for (size_t k = 0; k < r->npeers; k++)
		if (memcmp(r->peers[k].id, id, 32) == 0)
			return k;
	if (r->npeers == REPAIR_KNOWN_MAX || !addr)
		return SIZE_MAX;
	rpeer *p = &r->peers[r->npeers];
	memset(p, 0, sizeof *p);
	memcpy(p->id, id, 32);
	snprintf(p->addr, sizeof p->addr, "%s", addr);
	return r->npeers++;
}

static void on_obj_providers(int status, const char *message, const dht_found *p, size_t n,
                             void *arg)
{
	robj *o = arg;
	ovl_repair *r = o->r;

	(void)message;
	o->call = NULL;
	o->nprov = 0;
	o->records = 1;   /* ourselves */
	o->jobs = 0;
	if (status != 200 && status != 404)
		n = 0;           /* the DHT did not answer: counted as no records */
	for (size_t i = 0; i < n; i++) {
		size_t k;
		if (memcmp(p[i].node_id, r->id->id, 32) == 0)
			continue;
		o->records++;
		if (o->nprov == REPAIR_PROV_MAX ||
		    (k = peer_slot(r, p[i].node_id, p[i].oap_addr, p[i].onion)) == SIZE_MAX || among(o, k))
			continue;        /* not counted as a live copy: erring towards more copies */
		o->prov[o->nprov++] = k;
		if (!r->peers[k].probed) {
			if (job_start(r, RJOB_PROBE, o, k))
				o->jobs++;
			else
				r->peers[k].probed = true;   /* alive stays false */
		}
	}
	if (o->jobs == 0)
		obj_decide(r, o);
}

static void obj_decide(ovl_repair *r, robj *o)
{
	uint64_t target = r->cfg->storage_replicas, seen = 1;   /* ourselves */
	bool leader = true;

	for (size_t i = 0; i < o->nprov; i++) {
		const rpeer *q = &r->peers[o->prov[i]];
		if (!q->alive)
			continue;
		seen++;
		if (memcmp(q->id, r->id->id, 32) < 0)
			leader = false;
	}
	r->objects++;
	if (seen < r->min_rf)
		r->min_rf = seen;
	if (o->records < target)
		r->missing++;
	if (seen < target && !leader)
		metrics_inc(r->m_deferred, 1);
	for (size_t k = 0; leader && k < r->npeers && seen + o->jobs < target &&
	                   o->jobs < REPAIR_JOBS_MAX; k++) {
		if (!r->peers[k].candidate || !r->peers[k].alive || among(o, k))
			continue;
		if (job_start(r, RJOB_REPLICATE, o, k))
			o->jobs++;
		else
			count_request("error");
	}
	if (o->jobs == 0)
		obj_done(r, o);
}

/* ---- the pass ----------------------------------------------------------------- */

static void pass_end(ovl_repair *r)
{
	r->running = false;
	metrics_gauge_set(r->m_observed, r->objects ? (int64_t)r->min_rf : 0);
	metrics_gauge_set(r->m_missing, (int64_t)r->missing);
	metrics_inc(r->m_passes, 1);
	char objects[24], rf[24];

	snprintf(objects, sizeof objects, "%llu", (unsigned long long)r->objects);
	snprintf(rf, sizeof rf, "%llu", (unsigned long long)(r->objects ? r->min_rf : 0));
	log_kv(LOG_LEVEL_INFO, "repair pass done", "objects", objects, "rf_observed_min", rf,
	       LOG_END);
	arm(r->pass_ev, r->cfg->overlay_repair_interval_ms);
}

static void on_page(const stor_result *res, void *arg)
{
	ovl_repair *r = arg;

	r->list_call = NULL;
	if (res->status != 200) {
		log_kv(LOG_LEVEL_WARN, "repair pass stopped: storage did not list", LOG_END);
		r->more = false;
		r->nids = r->next = 0;
		pass_step(r);
		return;
	}
	r->nids = res->nids < REPAIR_PAGE ? res->nids : REPAIR_PAGE;
	memcpy(r->ids, res->ids, r->nids * 32u);
	r->next = 0;
	r->more = res->more && r->nids > 0;
	if (r->nids) {
		memcpy(r->cursor, r->ids[r->nids - 1], 32);
		r->has_cursor = true;
	}
	pass_step(r);
}

static void pass_list(ovl_repair *r)
{
	r->list_call = stor_list(r->stor, r->has_cursor ? r->cursor : NULL, REPAIR_PAGE, on_page, r);
}

/* Start the next object when a slot is free and the pace allows. */
static void on_step(evutil_socket_t fd, short what, void *arg)
{
	ovl_repair *r = arg;

	(void)fd; (void)what;
	if (!r->running || r->busy >= REPAIR_CONC || r->next >= r->nids)
		return;
	for (size_t i = 0; i < REPAIR_CONC; i++) {
		robj *o = &r->objs[i];
		if (o->used)
			continue;
		memset(o, 0, sizeof *o);
		o->r = r;
		o->used = true;
		memcpy(o->cid, r->ids[r->next++], 32);
		r->busy++;
		o->call = dht_find_providers(r->dht, o->cid, on_obj_providers, o);
		break;
	}
	pass_step(r);
}

static void pass_step(ovl_repair *r)
{
	if (!r->running || r->list_call)
		return;
	if (r->next < r->nids) {
		if (r->busy < REPAIR_CONC && !evtimer_pending(r->step_ev, NULL))
			arm(r->step_ev, 1000u / REPAIR_PER_S);
		return;
	}
	if (r->busy)
		return;
	if (r->more) {
		pass_list(r);
		return;
	}
	pass_end(r);
}

static void pings_done(ovl_repair *r)
{
	size_t alive = 0;

	for (size_t i = 0; i < r->npeers; i++)
		alive += r->peers[i].alive;
	metrics_gauge_set(metrics_get("repair_peers_alive", ""), (int64_t)alive);
	pass_list(r);
}

static void on_nodes(int status, const char *message, const dht_value *v, size_t n, void *arg)
{
	ovl_repair *r = arg;
	node_record rec;
	uint8_t id[32], key[32];

	(void)message;
	r->get_call = NULL;
	r->npeers = 0;
	node_record_key(key);
	for (size_t i = 0; status == 200 && i < n && r->npeers < REPAIR_PEERS_MAX; i++) {
		bool dup = false;
		const char *addr;
		if (node_record_verify(v[i].data, v[i].len, key, now_s(), &rec) != PROV_OK)
			continue;   /* the dht service verified it; a clock step may have expired it */
		if (!(addr = prov_pick_addr(r->cfg->tor_enabled, r->cfg->tor_only, rec.oap_addr,
		                            rec.onion)))
			continue;   /* tor.only: a peer without an onion is not dialed */
		identity_id_of(rec.node_pk, id);
		if (memcmp(id, r->id->id, 32) == 0)
			continue;
		for (size_t k = 0; k < r->npeers && !dup; k++)
			if (memcmp(r->peers[k].id, id, 32) == 0) {
				dup = true;
				if (strcmp(r->peers[k].addr, addr) != 0)
					snprintf(r->peers[k].addr, sizeof r->peers[k].addr, "%s", addr);
			}
		if (dup)
			continue;
		memcpy(r->peers[r->npeers].id, id, 32);
		snprintf(r->peers[r->npeers].addr, sizeof r->peers[r->npeers].addr, "%s", addr);
		r->peers[r->npeers].alive = r->peers[r->npeers].probed = false;
		r->peers[r->npeers].candidate = true;
		r->npeers++;
	}
	r->pings = 0;
	for (size_t i = 0; i < r->npeers; i++)
		if (job_start(r, RJOB_PING, NULL, i))
			r->pings++;
	if (r->pings == 0)
		pings_done(r);
}

static void on_pass_timer(evutil_socket_t fd, short what, void *arg)
{
	ovl_repair *r = arg;
	uint8_t key[32];

	(void)fd; (void)what;
	if (r->running)
		return;
	r->running = true;
	r->has_cursor = r->more = false;
	r->nids = r->next = 0;
	r->min_rf = UINT64_MAX;
	r->missing = r->objects = 0;
	node_record_key(key);
	r->get_call = dht_get(r->dht, DHT_KIND_NODE, key, on_nodes, r);
}

/* ---- life ----------------------------------------------------------------------- */

ovl_repair *ovl_repair_new(struct event_base *base, const mn_config *cfg,
                           const node_identity *id, const char *onion, stor_client *stor,
                           dht_client *dht, tls_peer *peer)
{
	ovl_repair *r = calloc(1, sizeof *r);

	if (!r)
		return NULL;
	r->base = base;
	r->cfg = cfg;
	r->onion = onion;
	r->id = id;
	r->stor = stor;
	r->dht = dht;
	r->peer = peer;
	r->pub_ev = evtimer_new(base, on_pub_timer, r);
	r->pass_ev = evtimer_new(base, on_pass_timer, r);
	r->step_ev = evtimer_new(base, on_step, r);
	if (!r->pub_ev || !r->pass_ev || !r->step_ev) {
		ovl_repair_free(r);
		return NULL;
	}
	r->m_target = metrics_get("rf_target", "");
	r->m_observed = metrics_get("rf_observed", "");
	r->m_missing = metrics_get("dht_missing_records", "");
	r->m_bytes = metrics_get("repair_bytes_total", "");
	r->m_passes = metrics_get("repair_passes_total", "");
	r->m_deferred = metrics_get("repair_deferred_total", "");
	metrics_gauge_set(r->m_target, (int64_t)cfg->storage_replicas);
	repair_addr(r);
	if (!r->addr[0])
		log_kv(LOG_LEVEL_WARN, "no address for this node's record: oap.addr and dht.addr are "
		       "wildcards; other nodes cannot ask this one for copies", LOG_END);
	else
		arm(r->pub_ev, 0);
	arm(r->pass_ev, REPAIR_FIRST_MS < cfg->overlay_repair_interval_ms ?
	                REPAIR_FIRST_MS : cfg->overlay_repair_interval_ms);
	return r;
}

void ovl_repair_onion(ovl_repair *r)
{
	if (r && !r->pub_call)
		arm(r->pub_ev, 0);
}

void ovl_repair_free(ovl_repair *r)
{
	if (!r)
		return;
	while (r->jobs) {            /* no callback of theirs runs after this */
		rjob *j = r->jobs;
		r->jobs = j->next;
		oap_client_free(j->c);
		free(j);
	}
	dht_call_cancel(r->pub_call);
	dht_call_cancel(r->get_call);
	stor_call_cancel(r->list_call);
	for (size_t i = 0; i < REPAIR_CONC; i++)
		if (r->objs[i].used)
			dht_call_cancel(r->objs[i].call);
	if (r->pub_ev)
		event_free(r->pub_ev);
	if (r->pass_ev)
		event_free(r->pass_ev);
	if (r->step_ev)
		event_free(r->step_ev);
	free(r);
}
