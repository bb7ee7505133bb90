/*
 * torctl.h — a non-blocking client of tor's control port (control-spec.txt)
 * for one session: connect (TCP "ip:port" or a UNIX socket path),
 * PROTOCOLINFO, AUTHENTICATE (cookie, or none where tor offers NULL),
 * ADD_ONION (our key, or NEW:ED25519-V3 with Flags=DiscardPK in amnesia),
 * then GETINFO status/bootstrap-phase every poll_ms.
 *
 * The onion service lives as long as this connection (no Flags=Detach):
 * when the session ends — tor gone, a bad answer, a deadline — on_down is
 * called once and the owner frees the client and starts another (with
 * backoff); tor removes the service on its side by itself.
 *
 * SAFECOOKIE is not offered: it needs HMAC-SHA256, and BLAKE3 is the only
 * hash here. COOKIE sends the cookie's hex to the control port, so the port
 * must be tor's: a loopback port or a socket in a directory only tor and
 * the node can write (tor.launch puts it under the runtime dir).
 *
 * Bounds: a line is at most TORCTL_LINE_MAX bytes, a reply at most
 * TORCTL_REPLY_LINES lines; more ends the session. Every request has a
 * deadline (timeout_ms). Nothing is logged here: the key and the cookie
 * never leave this file but to tor.
 */
#ifndef MN_CORE_TOR_TORCTL_H
#define MN_CORE_TOR_TORCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

#define TORCTL_LINE_MAX     4096u
#define TORCTL_REPLY_LINES  64u
#define TORCTL_COOKIE_LEN   32u    /* tor's control_auth_cookie */
#define TORCTL_DETAIL_MAX   256u
#define TORCTL_TAG_MAX      64u

typedef struct torctl torctl;

typedef struct torctl_opts {
	const char *control;     /* "ip:port" or "/path/to/socket" (copied) */
	const char *cookie_file; /* NULL: the COOKIEFILE tor names in PROTOCOLINFO (copied) */
	const char *key_arg;     /* "ED25519-V3:<base64>" or NULL: NEW + DiscardPK (copied, wiped) */
	uint16_t    virt_port;   /* the onion's port */
	const char *target;      /* where tor forwards it: numeric "ip:port" (copied) */
	uint64_t    timeout_ms;  /* connect and each reply */
	uint64_t    poll_ms;     /* between bootstrap polls */
} torctl_opts;

/* Why a session ended (the reason label of tor_control_failures_total). */
typedef enum torctl_fail {
	TORCTL_F_CONNECT = 0,   /* no control port there, or it closed */
	TORCTL_F_PROTOCOL,      /* an answer that is not the control protocol */
	TORCTL_F_AUTH,          /* no method we can use, no cookie, or refused */
	TORCTL_F_ONION,         /* ADD_ONION refused or answered without a v3 ServiceID */
	TORCTL_F_TIMEOUT,
	TORCTL_F_COUNT
} torctl_fail;

typedef struct torctl_cbs {
	/* ADD_ONION answered: service_id is the 56-character name (borrowed). */
	void (*on_onion)(void *arg, const char *service_id);
	/* A bootstrap poll answered: PROGRESS (0..100) and TAG (borrowed). */
	void (*on_bootstrap)(void *arg, unsigned pct, const char *tag);
	/* The session ended (at most once, from its own event; no callback
	 * after it): free the client, here or later. */
	void (*on_down)(void *arg, torctl_fail why, const char *detail);
} torctl_cbs;

/* "connect", "protocol", "auth", "onion", "timeout". */
const char *torctl_fail_name(torctl_fail f);

/* Start a session. NULL (err set) on a bad argument or no memory; every
 * later failure comes through on_down, never from inside this call. */
torctl *torctl_new(struct event_base *base, const torctl_opts *o, const torctl_cbs *cbs,
                   void *arg, char *err, size_t errlen);
/* End it (no callback after this). NULL ok; safe from inside on_down, the
 * last thing the client does in a callback. */
void torctl_free(torctl *t);

/* Parsers, exposed for unit tests and fuzzing (p borrowed, NUL-free lines). */
/* PROTOCOLINFO's "AUTH METHODS=... [COOKIEFILE="..."]" line (without the
 * "250-" prefix): methods bits and the cookie path (unescaped). 0 or -1. */
#define TORCTL_AUTH_NULL    1u
#define TORCTL_AUTH_COOKIE  2u
#define TORCTL_AUTH_SAFE    4u
#define TORCTL_AUTH_PASS    8u
int torctl_parse_auth(const char *line, unsigned *methods, char *cookie, size_t cap);
/* "status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=N TAG=t ...". 0 or -1. */
int torctl_parse_bootstrap(const char *line, unsigned *pct, char *tag, size_t cap);

#endif
