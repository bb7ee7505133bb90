/*
 * rpc_server.h — the serving half of an internal service socket
 * (docs/internal.md): accepts on the role's SOCK_SEQPACKET listener, reads
 * one OAP/1 frame per datagram, hands each request to the service and sends
 * its reply whenever the service has it, in any order (the client,
 * core/proto/rpc_client.h, matches replies by corr_id).
 *
 * Only processes of the node's own uid may connect (SO_PEERCRED; a refusal
 * is counted in rejected_total{reason="peercred"}). A connection may have
 * o->max_pending requests in work plus replies waiting for room in the
 * socket; past that it is not read until one ends. At most o->max_conns
 * connections (503 for one more, counted).
 *
 * The peers are this binary: a request that does not decode (not a request
 * frame of o->app_proto, fds where none belong, a payload o->check refuses)
 * is a bug, fatal here (log_fatalx naming the verb; a service that opts in
 * with o->request_fds may get one fd per request); only a datagram over
 * the frame cap is answered (413, from its header).
 *
 * Every request is answered exactly once with rpc_server_reply — also when
 * its connection went away meanwhile (the reply is then dropped, and the
 * handle freed). Callbacks run from the event loop.
 */
#ifndef MN_CORE_NET_RPC_SERVER_H
#define MN_CORE_NET_RPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

typedef struct rpc_server rpc_server;
typedef struct rpc_req rpc_req;

typedef struct rpc_server_opts {
	const char *name;            /* the service, for logs (static) */
	uint16_t    app_proto;
	unsigned    max_conns;
	unsigned    max_pending;     /* per connection: requests in work + unsent replies */
	/* Is p[0..n) exactly a request of verb? 0, or -1: fatal. */
	int         (*check)(uint16_t verb, const uint8_t *p, size_t n);
	const char *(*verb_name)(uint16_t verb);
	/* A request (payload borrowed for the call). Answer it with
	 * rpc_server_reply, now or later. */
	void        (*handle)(rpc_req *q, uint16_t verb, const uint8_t *p, size_t n, void *arg);
	void         *arg;
	/* The last connection closed while draining. May be NULL. */
	void        (*drained)(void *arg);
	/* A request may carry one file descriptor (rpc_req_take_fd); without
	 * it any fd in a request is fatal. The service checks that the verb
	 * wanted it. */
	bool          request_fds;
} rpc_server_opts;

/* Serve on listen_fd (listening, non-blocking; not closed by free). *o is
 * copied. NULL on failure. */
rpc_server *rpc_server_new(struct event_base *base, int listen_fd, const rpc_server_opts *o);
/* Closes every connection; requests in work keep their handles until
 * answered (their replies are dropped). NULL ok. */
void rpc_server_free(rpc_server *srv);
/* Stop accepting; o->drained runs once no connection is left. */
void rpc_server_drain(rpc_server *srv);
size_t rpc_server_conns(const rpc_server *srv);

/* May the peer of this accepted UNIX connection call a service? Only
 * processes of the node's own uid may; a refusal is counted
 * (rejected_total{reason="peercred"}) and logged naming the service. */
bool rpc_peer_is_us(int fd, const char *name);

/* Answer q with status (200, or 400..599) and payload[0..n) (copied); fds
 * (at most IPC_MAX_FDS) pass to the server, which closes them once sent or
 * dropped. Frees q. */
void rpc_server_reply(rpc_req *q, uint16_t status, const uint8_t *payload, size_t n,
                      const int *fds, size_t nfds);
/* The fd the request carried (request_fds), now the caller's; -1 when
 * none (or taken). An fd not taken is closed with the request. */
int rpc_req_take_fd(rpc_req *q);
/* Has the requester gone away (the reply would be dropped)? */
bool rpc_req_is_orphan(const rpc_req *q);

#endif
