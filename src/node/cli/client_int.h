/*
 * client_int.h — private to src/node/cli/client.c and client_peer.c: the
 * parsed command line of `put`/`get` and where a `get` body goes.
 */
#ifndef MN_NODE_CLIENT_INT_H
#define MN_NODE_CLIENT_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/auth/captoken.h"

typedef struct client_opts {
	const char *cmd;          /* "put" / "get": message prefix */
	const char *arg;          /* FILE or b3:… */
	const char *peer;
	const char *ca;
	const char *out;          /* get -o; NULL or "-" = stdout */
	const char *expect;       /* put --expect */
	const char *token_file;   /* --token-file; else env RON_TOKEN */
	const char *pin_node;     /* get --pin-node b3:NODEID: the peer plane */
	const char *socks;        /* get --socks IP:PORT: tor's SOCKS5 port, or NULL */
	const char *holder_key;   /* --holder-key FILE: prove each request (docs/zk.md) */
	const char *aud;          /* --aud: the node's audience; else env RON_AUDIENCE */
	char        token[CAPTOKEN_MAX_TOKEN + 1]; /* "" = none: anonymous */
	bool        insecure;
	bool        json;         /* --json: one JSON object on stdout instead of the id */
	uint64_t   *sent;         /* put: the bytes read from FILE end up here (caller's), or NULL */
	uint64_t    t0_ms;        /* when the command began (util_now_ms), for --json */
	bool        has_range;
	uint64_t    range_start, range_end;   /* inclusive */
	unsigned    timeout_s;
} client_opts;

/* Where a GET body goes: stdout, a device, or a temp file renamed on success. */
typedef struct client_out {
	int   fd;
	char *final;              /* -o path (borrowed), or NULL */
	char *tmp;                /* malloc'd temporary path, or NULL */
} client_out;

/* "macronode <cmd>: <message>" on stderr; returns rc. */
int client_err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* path NULL or "-": stdout; a device: in place; else a temp file beside it. 0/-1. */
int client_out_open(client_out *out, const char *path);
int client_out_write(client_out *out, const uint8_t *p, size_t n);
/* ok: rename the temp file into place; else remove it. 0/-1. */
int client_out_close(client_out *out, bool ok);

/* `get --pin-node`: a verified fetch over the peer plane (client_peer.c).
 * out is open; returns an exit code (client.h). */
int client_peer_get(const client_opts *o, const uint8_t cid[32], client_out *out);

#endif
