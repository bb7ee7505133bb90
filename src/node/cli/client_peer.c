/*
 * client_peer.c — `macronode get b3:ID --peer IP:PORT --pin-node b3:NODEID`:
 * the object fetched over the peer plane with core/objects/peer_fetch, the
 * code the node itself uses to fetch from other nodes, on a private event
 * loop.
 *
 * The command presents a fresh identity of its own (made in memory, never
 * written): the peer plane requires a client certificate, and a command
 * line tool is not the node. The peer must prove NODEID inside the TLS
 * handshake; every 64 KiB group is checked against ID (through the
 * outboard) before its bytes are written, so the output never holds an
 * unverified byte, and an -o file still appears only once the whole
 * object (or range) is in.
 */
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/identity/identity.h"
#include "core/objects/peer_fetch.h"
#include "core/tls.h"
#include "node/cli/client.h"
#include "node/cli/client_int.h"

#define CLIENT_PEER_MAX_LEN UINT64_MAX   /* the outboard cap bounds it (peer_fetch.h) */
#define CLIENT_PEER_REAP_ROUNDS 4

typedef struct client_peer_run {
	struct event_base  *base;
	client_out         *out;
	peer_fetch         *f;
	bool                write_failed;
	bool                over;
	peer_fetch_outcome  outcome;
	char                detail[PEER_FETCH_DETAIL_MAX];
	uint64_t            len, delivered;
} client_peer_run;

/* Verified bytes, in order: straight to the output. A write error stops
 * the fetch (a blocking write: this is a command line tool's own loop). */
static void client_peer_sink(void *arg, uint64_t off, const uint8_t *p, size_t n)
{
	client_peer_run *r = arg;

	(void)off;
	if (client_out_write(r->out, p, n) != 0) {
		r->write_failed = true;
		peer_fetch_cancel(r->f);
		r->over = true;
		event_base_loopbreak(r->base);
	}
}

static void client_peer_done(void *arg, peer_fetch_outcome o, const peer_fetch_info *info)
{
	client_peer_run *r = arg;

	r->outcome = o;
	r->len = info->len;
	r->delivered = info->delivered;
	snprintf(r->detail, sizeof r->detail, "%s", info->detail);
	r->over = true;
	event_base_loopbreak(r->base);
}

static int client_peer_verdict(const client_opts *o, const client_peer_run *r)
{
	if (r->write_failed)
		return CLIENT_EXIT_RUNTIME;   /* client_out_write said why */
	switch (r->outcome) {
	case PEER_FETCH_OK:
		return CLIENT_EXIT_OK;
	case PEER_FETCH_BAD_BYTES:
		return client_err(CLIENT_EXIT_INTEGRITY, "integrity: %s: %s (nothing unverified was "
		                  "written)", o->peer, r->detail);
	case PEER_FETCH_PIN:
		return client_err(CLIENT_EXIT_RUNTIME, "%s: %s (--pin-node %s)", o->peer, r->detail,
		                  o->pin_node);
	case PEER_FETCH_NOT_FOUND:
		return client_err(CLIENT_EXIT_RUNTIME, "%s: no such object (404)", o->peer);
	default:
		return client_err(CLIENT_EXIT_RUNTIME, "%s: %s: %s", o->peer,
		                  peer_fetch_outcome_name(r->outcome), r->detail);
	}
}

static int client_peer_run_fetch(const client_opts *o, tls_peer *tp, const uint8_t cid[32],
                                 const uint8_t pin[IDENTITY_ID_LEN], client_out *out)
{
	uint64_t ms = (uint64_t)o->timeout_s * 1000u;
	oap_client_opts to = { .connect_ms = ms, .handshake_ms = ms, .frame_ms = ms, .write_ms = ms,
	                       .socks = o->socks };
	peer_fetch_req req = {
		.addr = o->peer, .node_id = pin, .cid = cid, .max_len = CLIENT_PEER_MAX_LEN,
		.has_range = o->has_range, .start = o->range_start, .end = o->range_end,
		.cap = o->token[0] ? o->token : NULL, .timeouts = &to,
	};
	client_peer_run r = { .out = out, .outcome = PEER_FETCH_LOCAL };
	char err[PEER_FETCH_DETAIL_MAX];
	int rc;

	if (!(r.base = event_base_new()))
		return client_err(CLIENT_EXIT_RUNTIME, "out of memory");
	r.f = peer_fetch_start(r.base, tp, &req, client_peer_sink, client_peer_done, &r, err,
	                       sizeof err);
	if (!r.f) {
		event_base_free(r.base);
		return client_err(CLIENT_EXIT_USAGE, "--peer %s", err);
	}
	while (!r.over && event_base_loop(r.base, EVLOOP_ONCE) >= 0)
		;
	rc = client_peer_verdict(o, &r);
	/* Let the fetch and its connection free themselves (deferred events,
	 * one round each: the fetch's reap, the connection's close). */
	for (int i = 0; i < CLIENT_PEER_REAP_ROUNDS; i++)
		(void)event_base_loop(r.base, EVLOOP_NONBLOCK);
	event_base_free(r.base);
	return rc;
}

int client_peer_get(const client_opts *o, const uint8_t cid[32], client_out *out)
{
	uint8_t pin[IDENTITY_ID_LEN];
	node_identity me = { 0 };
	tls_peer *tp = NULL;
	char err[256];
	int rc;

	if (identity_id_parse(o->pin_node, pin) != 0)
		return client_err(CLIENT_EXIT_USAGE, "--pin-node %s: expected b3: and 64 lowercase hex "
		                  "digits (the node's `macronode id`)", o->pin_node);
	if (identity_generate(&me, err, sizeof err) != 0 || !(tp = tls_peer_new(&me, err, sizeof err))) {
		identity_free(&me);
		return client_err(CLIENT_EXIT_RUNTIME, "%s", err);
	}
	identity_free(&me);   /* the contexts hold the key now */
	rc = client_peer_run_fetch(o, tp, cid, pin, out);
	tls_peer_free(tp);
	return rc;
}
