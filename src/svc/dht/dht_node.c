/*
 * dht_node.c — OpenDHT behind a bounded queue (see dht_node.h).
 *
 * Threads: OpenDHT's (its loop, its socket reader) call get_cb, done_cb and
 * put_done here; they take q_lock for a few copies and write the eventfd.
 * The service loop drains under the same lock, one event at a time. The
 * worker of `wq` reads the routing table. judge_cb, OpenDHT's store and
 * edit policy, shares only the atomic refusal counters. Nothing else is
 * shared.
 *
 * Callbacks carry only the op number (OpenDHT may keep or drop a callback
 * after we stopped caring); they reach the queue through dht_node_live, the
 * one node of this process, which outlives OpenDHT's threads: dht_node_free
 * deletes the runner (joining them) before it clears the pointer and frees
 * the queue.
 */
#include "svc/dht/dht_node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/config/config.h"
#include "core/dht/dht_value.h"
#include "lib/log.h"
#include "lib/workq.h"
#include "svc/dht/dht_bind.h"

_Static_assert(DHT_NODE_ID_LEN == DHT_BIND_ID_LEN, "one InfoHash length");
_Static_assert((DHT_NODE_OPS & (DHT_NODE_OPS - 1)) == 0, "op slots: a power of two");
_Static_assert(DHT_BIND_KINDS == DHT_KIND_LAST, "a value type per kind");
_Static_assert(DHT_VALUE_IH_LEN == DHT_BIND_ID_LEN, "one InfoHash length");

typedef struct node_slot {
	uint64_t op;           /* 0: free */
	unsigned nvalues, max_values;
} node_slot;

typedef struct node_done {
	uint64_t op;
	bool     ok;
} node_done;

typedef struct node_snap_job {
	workq_job     job;     /* first: the pool hands this back */
	dht_node     *n;
	dht_node_snap snap;
} node_snap_job;

struct dht_node {
	dht_node_cfg     cfg;
	dht_runner      *runner;
	int              efd;
	struct event    *ev, *wq_ev;
	workq           *wq;
	node_snap_job    snap_job;
	bool             snap_busy;
	pthread_mutex_t  q_lock;          /* everything below */
	node_slot        slots[DHT_NODE_OPS];
	size_t           live;
	uint64_t         gen;
	dht_node_ev      q[DHT_NODE_QUEUE];   /* ring of values */
	size_t           qhead, qlen;
	node_done        done[DHT_NODE_OPS];  /* ring: one DONE per live op at most */
	size_t           dhead, dlen;
	uint64_t         overflow;
	_Atomic uint64_t refused[DHT_REJECT_COUNT];   /* by OpenDHT's judge: no lock */
};

static dht_node *_Atomic dht_node_live;   /* the one node of the process (see top) */

/* ---- OpenDHT's threads ------------------------------------------------------ */

static node_slot *slot_of(dht_node *n, uint64_t op)
{
	node_slot *s = &n->slots[op & (DHT_NODE_OPS - 1)];

	return op && s->op == op ? s : NULL;
}

static void node_wake(dht_node *n)
{
	uint64_t one = 1;

	(void)!write(n->efd, &one, sizeof one);   /* the counter only saturates: never blocks */
}

/* A value: copy it (or mark it oversized) unless its op is gone or full.
 * false stops OpenDHT's lookup. */
static bool get_cb(const uint8_t *data, size_t size, uint64_t vid, void *arg)
{
	dht_node *n = dht_node_live;
	uint64_t op = (uint64_t)(uintptr_t)arg;
	bool more = false, queued = false;

	if (!n)
		return false;
	pthread_mutex_lock(&n->q_lock);
	node_slot *s = slot_of(n, op);
	if (s && s->nvalues < s->max_values) {
		s->nvalues++;
		more = s->nvalues < s->max_values;
		if (n->qlen == DHT_NODE_QUEUE) {
			n->overflow++;
		} else {
			dht_node_ev *e = &n->q[(n->qhead + n->qlen++) % DHT_NODE_QUEUE];
			e->op = op;
			e->type = DHT_NODE_VALUE;
			e->oversized = size > DHT_VALUE_MAX;
			e->vid = vid;
			e->len = e->oversized ? 0 : size;
			if (e->len)
				memcpy(e->data, data, e->len);
			queued = true;
		}
	}
	pthread_mutex_unlock(&n->q_lock);
	if (queued)
		node_wake(n);
	return more;
}

static void done_cb(bool ok, void *arg)
{
	dht_node *n = dht_node_live;
	uint64_t op = (uint64_t)(uintptr_t)arg;
	bool queued = false;

	if (!n)
		return;
	pthread_mutex_lock(&n->q_lock);
	if (slot_of(n, op) && n->dlen < DHT_NODE_OPS) {
		n->done[(n->dhead + n->dlen++) % DHT_NODE_OPS] = (node_done){ .op = op, .ok = ok };
		queued = true;
	}
	pthread_mutex_unlock(&n->q_lock);
	if (queued)
		node_wake(n);
}

/* OpenDHT's store and edit policy of our types (dht_bind_judge): a value
 * another node puts here. Verifying costs one Ed25519 check; nothing
 * blocks; a refusal is counted in an atomic. */
static bool judge_cb(uint8_t kind, const uint8_t ih[DHT_BIND_ID_LEN], uint64_t id,
                     const uint8_t *old, size_t oldn, const uint8_t *v, size_t len, void *arg)
{
	dht_node *n = arg;
	uint64_t now = (uint64_t)time(NULL);
	dht_reject why = old ? dht_value_judge_edit((dht_kind)kind, ih, id, old, oldn, v, len, now)
	                     : dht_value_judge((dht_kind)kind, ih, id, v, len, now, NULL);

	if (why == DHT_REJECT_NONE)
		return true;
	if ((size_t)why < DHT_REJECT_COUNT)
		atomic_fetch_add_explicit(&n->refused[why], 1, memory_order_relaxed);
	return false;
}

/* ---- the loop --------------------------------------------------------------- */

/* Take one event out under the lock: a value first, else a done. */
static bool node_pop(dht_node *n, dht_node_ev *out)
{
	bool got = true;

	pthread_mutex_lock(&n->q_lock);
	if (n->qlen) {
		*out = n->q[n->qhead];
		n->qhead = (n->qhead + 1) % DHT_NODE_QUEUE;
		n->qlen--;
	} else if (n->dlen) {
		node_done d = n->done[n->dhead];
		n->dhead = (n->dhead + 1) % DHT_NODE_OPS;
		n->dlen--;
		out->op = d.op;
		out->type = DHT_NODE_DONE;
		out->ok = d.ok;
		out->len = 0;
	} else {
		got = false;
	}
	pthread_mutex_unlock(&n->q_lock);
	return got;
}

/* Values before dones: a lookup's values were queued before its end, and
 * an event of a forgotten op is dropped by the service (it knows no such op). */
static void on_events(evutil_socket_t fd, short what, void *arg)
{
	dht_node *n = arg;
	uint64_t cnt;
	static dht_node_ev ev;   /* one event at a time; large, so not on the stack */

	(void)what;
	(void)!read((int)fd, &cnt, sizeof cnt);
	for (unsigned i = 0; i < DHT_NODE_QUEUE + DHT_NODE_OPS && node_pop(n, &ev); i++)
		n->cfg.on_event(&ev, n->cfg.arg);
	pthread_mutex_lock(&n->q_lock);
	bool more = n->qlen || n->dlen;
	pthread_mutex_unlock(&n->q_lock);
	if (more)   /* more than one batch: come back after other events */
		node_wake(n);
}

uint64_t dht_node_op(dht_node *n, unsigned max_values)
{
	uint64_t op = 0;

	pthread_mutex_lock(&n->q_lock);
	for (size_t i = 0; i < DHT_NODE_OPS && n->live < DHT_NODE_OPS; i++) {
		node_slot *s = &n->slots[(n->gen + i) & (DHT_NODE_OPS - 1)];
		if (s->op)
			continue;
		n->gen += i + 1;
		op = n->gen * DHT_NODE_OPS + (uint64_t)(s - n->slots);
		*s = (node_slot){ .op = op, .max_values = max_values ? max_values : 1 };
		n->live++;
		break;
	}
	pthread_mutex_unlock(&n->q_lock);
	return op;
}

void dht_node_forget(dht_node *n, uint64_t op)
{
	pthread_mutex_lock(&n->q_lock);
	node_slot *s = slot_of(n, op);
	if (s) {
		s->op = 0;
		n->live--;
	}
	pthread_mutex_unlock(&n->q_lock);
}

size_t dht_node_ops(const dht_node *n)
{
	return n->live;   /* loop thread only changes it; a racy read is a gauge */
}

uint64_t dht_node_overflow(dht_node *n)
{
	pthread_mutex_lock(&n->q_lock);
	uint64_t v = n->overflow;
	n->overflow = 0;
	pthread_mutex_unlock(&n->q_lock);
	return v;
}

void dht_node_refused(dht_node *n, uint64_t out[DHT_REJECT_COUNT])
{
	for (size_t i = 0; i < DHT_REJECT_COUNT; i++)
		out[i] = atomic_exchange_explicit(&n->refused[i], 0, memory_order_relaxed);
}

void dht_node_get(dht_node *n, uint64_t op, dht_kind kind, const uint8_t ih[DHT_NODE_ID_LEN])
{
	dht_bind_get(n->runner, ih, (uint8_t)kind, get_cb, done_cb, (void *)(uintptr_t)op);
}

void dht_node_put(dht_node *n, uint64_t op, dht_kind kind, uint64_t vid,
                  const uint8_t ih[DHT_NODE_ID_LEN], const uint8_t *v, size_t len)
{
	dht_bind_put(n->runner, ih, (uint8_t)kind, vid, v, len, done_cb, (void *)(uintptr_t)op);
}

void dht_node_bootstrap(dht_node *n, const struct sockaddr *sa, socklen_t len)
{
	dht_runner_ping(n->runner, (struct sockaddr *)(uintptr_t)sa, len, NULL, NULL);
}

/* ---- the routing table, on the worker --------------------------------------- */

static void snap_addr(const struct sockaddr_storage *ss, char out[DHT_ADDR_MAX])
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
		snprintf(out, DHT_ADDR_MAX, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
		snprintf(out, DHT_ADDR_MAX, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
	} else {
		snprintf(out, DHT_ADDR_MAX, "?");
	}
}

static void on_snap_run(workq_job *j)
{
	node_snap_job *job = (node_snap_job *)j;
	uint8_t ids[DHT_PEERS_MAX][DHT_BIND_ID_LEN];
	struct sockaddr_storage addrs[DHT_PEERS_MAX];
	socklen_t lens[DHT_PEERS_MAX];

	memset(&job->snap, 0, sizeof job->snap);
	dht_bind_nodes(job->n->runner, &job->snap.good, &job->snap.dubious);
	job->snap.stored = dht_bind_stored(job->n->runner);
	job->snap.n = dht_bind_export(job->n->runner, ids, addrs, lens, DHT_PEERS_MAX);
	for (size_t i = 0; i < job->snap.n; i++) {
		memcpy(job->snap.peers[i].id, ids[i], DHT_NODE_ID_LEN);
		snap_addr(&addrs[i], job->snap.peers[i].addr);
	}
}

static void on_snap_done(workq_job *j, bool ran)
{
	node_snap_job *job = (node_snap_job *)j;

	job->n->snap_busy = false;
	if (ran)
		job->n->cfg.on_snap(&job->snap, job->n->cfg.arg);
}

static void on_snaps(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	(void)workq_reap(((dht_node *)arg)->wq);
}

int dht_node_snapshot(dht_node *n)
{
	if (n->snap_busy)
		return -1;
	n->snap_job = (node_snap_job){ .job = { .run = on_snap_run, .done = on_snap_done }, .n = n };
	if (workq_submit(n->wq, &n->snap_job.job) != 0)
		return -1;
	n->snap_busy = true;
	return 0;
}

/* ---- life ------------------------------------------------------------------- */

static int node_start(dht_node *n, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	unsigned sslen;
	bool lo;

	if (config_parse_addr(n->cfg.addr, &ss, &sslen, &lo) != 0) {
		snprintf(err, errlen, "dht.addr: invalid address");
		return -1;
	}
	dht_bind_cfg bc = { .addr = (const struct sockaddr *)&ss, .addrlen = (socklen_t)sslen,
	                    .network = DHT_NODE_NETWORK, .value_ttl_s = n->cfg.value_ttl_s,
	                    .value_max = DHT_VALUE_MAX, .judge = judge_cb, .judge_arg = n };
	if (!(n->runner = dht_runner_new())) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	dht_node_live = n;
	return dht_bind_run(n->runner, &bc, err, errlen);
}

dht_node *dht_node_new(struct event_base *base, const dht_node_cfg *cfg, char *err, size_t errlen)
{
	dht_node *n = calloc(1, sizeof *n);

	if (!n) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n->cfg = *cfg;
	n->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&n->q_lock, NULL);
	n->wq = workq_new(1, 1);
	n->ev = n->efd >= 0 ? event_new(base, n->efd, EV_READ | EV_PERSIST, on_events, n) : NULL;
	n->wq_ev = n->wq ? event_new(base, workq_fd(n->wq), EV_READ | EV_PERSIST, on_snaps, n) : NULL;
	if (!n->ev || !n->wq_ev || event_add(n->ev, NULL) != 0 || event_add(n->wq_ev, NULL) != 0) {
		snprintf(err, errlen, "cannot set up the event queue: %s", strerror(errno));
		dht_node_free(n);
		return NULL;
	}
	return n;
}

int dht_node_run(dht_node *n, char *err, size_t errlen)
{
	return node_start(n, err, errlen);
}

void dht_node_free(dht_node *n)
{
	if (!n)
		return;
	workq_free(n->wq);                 /* a running read of the table finishes first */
	if (n->runner)
		dht_runner_delete(n->runner);  /* joins OpenDHT's threads: no callback after this */
	dht_node_live = NULL;
	if (n->ev) event_free(n->ev);
	if (n->wq_ev) event_free(n->wq_ev);
	if (n->efd >= 0)
		close(n->efd);
	pthread_mutex_destroy(&n->q_lock);
	free(n);
}
