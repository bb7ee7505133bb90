/*
 * dht_svc.h — the dht service's own parts (not for other folders):
 *   dht.c         the service: start, drain, its socket and connections;
 *   dht_ops.c     the verbs and the operations in flight (lookups, puts);
 *   dht_publish.c announces: signing, the rate, and republishing what
 *                 storage holds;
 *   dht_node.c    OpenDHT behind a bounded queue (dht_node.h).
 */
#ifndef MN_SVC_DHT_SVC_H
#define MN_SVC_DHT_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "core/config/config.h"
#include "core/dht/dht_msg.h"
#include "core/dht/dht_value.h"
#include "core/objects/stor_client.h"
#include "core/proto/oap.h"
#include "lib/tbucket.h"
#include "svc/dht/dht_node.h"
#include "svc/svc.h"

#define DHT_MAX_CONNS       64u    /* storage, the fronts, index, overlay, the CLI */
#define DHT_CONN_PENDING    64u    /* ops + unsent replies per connection: more → not read */
#define DHT_TICK_MS         1000u  /* routing table, bootstrap, republish pacing */
#define DHT_REPUBLISH_PAGE  64u    /* ids asked of storage per STOR_LIST */
#define DHT_BOOT_RETRY_S    5u     /* while the table is empty: ping the bootstrap nodes */
/* Test hook (tests/integration/test_dht.py only): when this variable is set
 * to 1 in the dht service's environment, every record it announces carries
 * a corrupted signature, so the other nodes must refuse and count it. */
#define DHT_TEST_BAD_SIG_ENV "MN_TEST_DHT_BAD_SIGNATURE"

typedef struct dht_svc dht_svc;
typedef struct dht_conn dht_conn;
typedef struct dht_op dht_op;

/* One operation in flight: a client's lookup or put, or an announce
 * (a client's or republishing's). */
struct dht_op {
	dht_svc      *d;
	uint64_t      id;              /* dht_node's op number */
	dht_conn     *conn;            /* who gets the answer; NULL: internal, or gone */
	uint64_t      corr;
	uint16_t      verb;
	uint8_t       kind;            /* dht_kind of the values */
	uint8_t       key[DHT_KEY_LEN];
	uint64_t      t0_ms;
	bool          republish;       /* an announce of the republish pass */
	struct event *timer;
	LIST_ENTRY(dht_op) link;       /* d->ops */
	size_t        n;               /* results kept (keep.n) */
	dht_keep      keep;            /* FIND, GET: who is kept in which slot */
	dht_provider  prov[DHT_GET_MAX];           /* FIND */
	size_t        vlen[DHT_GET_MAX];           /* GET */
	uint8_t       vals[DHT_GET_MAX][DHT_VALUE_MAX];
};

typedef struct dht_republish {
	bool     active;               /* a pass is under way */
	bool     asking;               /* a STOR_LIST is in flight */
	bool     end;                  /* storage said the last page was the last */
	uint64_t next_pass_ms;         /* when the next pass starts (0: once bootstrapped) */
	uint8_t  cursor[32];
	bool     has_cursor;
	uint8_t  ids[DHT_REPUBLISH_PAGE][32];
	size_t   nids, next;
	uint64_t announced;            /* this pass */
	tbucket  rate;                 /* half of dht.max_announces_per_second */
} dht_republish;

struct dht_svc {
	svc              *s;
	dht_node         *node;
	struct conn_listener *lst;
	LIST_HEAD(, dht_conn) conns;
	size_t            nconns;
	LIST_HEAD(, dht_op) ops;
	tbucket           announce_rate;
	stor_client      *stor;        /* STOR_LIST for republishing */
	struct event     *tick;
	dht_node_snap     snap;        /* the routing table at the last tick */
	bool              bootstrapped;
	uint64_t          last_boot_ms;
	struct sockaddr_storage boot[CONFIG_ADDR_LIST_N];
	socklen_t         bootlen[CONFIG_ADDR_LIST_N];
	size_t            nboot;
	char              oap_addr[PROV_ADDR_MAX + 1]; /* what records say; "" = cannot announce */
	bool              bad_sig;     /* the test hook above */
	bool              draining;
	dht_republish     rp;
	uint8_t           rbuf[OAP_INTERNAL_MAX_FRAME];
	uint8_t           wbuf[OAP_HDR_LEN + DHT_MSG_MAX];
};

/* dht.c: answer on a connection (the op, if any, is already detached). */
void dht_conn_reply(dht_conn *c, uint64_t corr, const dht_rep *rep);
/* An op ended: one pending slot of its connection is free again. */
void dht_conn_op_done(dht_conn *c);
uint64_t dht_now_s(void);

/* dht_ops.c */
void dht_ops_dispatch(dht_svc *d, dht_conn *c, uint64_t corr, const dht_req *q);
/* Drive an event of dht_node to its op. */
void dht_ops_on_event(const dht_node_ev *ev, void *arg);
/* A new op for verb, or NULL when too many are in flight. */
dht_op *dht_op_new(dht_svc *d, dht_conn *c, uint64_t corr, uint16_t verb, unsigned max_values);
/* Finish op: answer (rep may be NULL for internal ops), forget, free. */
void dht_op_end(dht_op *op, const dht_rep *rep);
/* The connection is closing: its ops keep running but answer nobody. */
void dht_ops_detach(dht_svc *d, dht_conn *c);
void dht_ops_free_all(dht_svc *d);
/* Count one (n) refused value(s). */
void dht_count_reject(const char *reason);
void dht_count_reject_n(const char *reason, uint64_t n);

/* dht_publish.c */
/* s->onion changed: republish soon. */
void dht_publish_onion(dht_svc *d);
/* Sign and put the provider record of cid (republish: an internal op).
 * Replies on c itself when it cannot start. */
void dht_publish_announce(dht_svc *d, dht_conn *c, uint64_t corr, const uint8_t cid[32],
                          bool republish);
void dht_publish_done(dht_op *op, bool ok, bool timed_out);
/* The advertised OAP address (oap.addr; a wildcard IP takes dht.addr's). */
void dht_publish_init(dht_svc *d);
void dht_publish_tick(dht_svc *d);

#endif
