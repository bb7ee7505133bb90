/*
 * socks5.h — the client half of a SOCKS5 CONNECT (RFC 1928) by domain
 * name, for dialing onion services through tor's SOCKS port (docs/tor.md).
 *
 * The name goes to the proxy as ATYP 3 (DOMAINNAME): nothing is resolved
 * here, so no DNS query for a peer's name ever leaves the host. Only the
 * "no authentication" method is offered (tor's SOCKS port on loopback).
 *
 * Two layers: pure encoders/parsers (socks5_encode_*, socks5_parse_*),
 * which never read past n and are unit-tested and fuzzable, and
 * socks5_dial, which runs the exchange on a connected non-blocking socket
 * on the caller's event loop: greeting, method, CONNECT, reply, all within
 * one deadline; nothing blocks. The reply carries the proxy's view of the
 * peer's address: it is read and dropped, never logged.
 */
#ifndef MN_CORE_TOR_SOCKS5_H
#define MN_CORE_TOR_SOCKS5_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;

#define SOCKS5_HOST_MAX     255u   /* a DOMAINNAME is one length byte */
#define SOCKS5_REQUEST_MAX  (4u + 1u + SOCKS5_HOST_MAX + 2u)
#define SOCKS5_REPLY_MAX    (4u + 1u + 255u + 2u)

/* Results of the exchange; SOCKS5_E_REPLY carries the proxy's REP code. */
typedef enum socks5_result {
	SOCKS5_OK = 0,
	SOCKS5_MORE,        /* parser: need more bytes */
	SOCKS5_E_PROTOCOL,  /* not a SOCKS5 answer */
	SOCKS5_E_AUTH,      /* the proxy accepts none of our methods */
	SOCKS5_E_REPLY,     /* CONNECT refused (rep: 1..8, tor's 0xF0.. onion codes) */
	SOCKS5_E_IO,        /* the socket failed or closed */
	SOCKS5_E_TIMEOUT,
	SOCKS5_E_NOMEM,
} socks5_result;

/* "ok", "protocol", "auth", "reply", "io", "timeout", "nomem". */
const char *socks5_result_name(socks5_result r);
/* Words for a REP code ("host unreachable", "onion descriptor not found"...). */
const char *socks5_rep_name(uint8_t rep);

/* The greeting: version 5, one method, "no authentication". 3 bytes. */
size_t socks5_encode_greeting(uint8_t out[3]);
/* CONNECT host:port by DOMAINNAME. The length, or -1 (host empty, too long
 * or holding a NUL/control byte, cap too small). */
ssize_t socks5_encode_connect(uint8_t *out, size_t cap, const char *host, uint16_t port);
/* The method answer p[0..n): SOCKS5_OK (2 bytes consumed), MORE,
 * E_AUTH or E_PROTOCOL. */
socks5_result socks5_parse_method(const uint8_t *p, size_t n);
/* The CONNECT reply p[0..n): SOCKS5_OK with *used its length, MORE,
 * E_REPLY with *rep, or E_PROTOCOL. */
socks5_result socks5_parse_reply(const uint8_t *p, size_t n, size_t *used, uint8_t *rep);

typedef struct socks5_dial socks5_dial;
/* Called once: SOCKS5_OK and the socket is now a tunnel to host:port (the
 * caller owns fd again), or an error (the caller still owns and closes fd).
 * rep is the proxy's REP code for SOCKS5_E_REPLY, else 0. */
typedef void (*socks5_done_fn)(void *arg, socks5_result r, uint8_t rep);

/* Start the exchange on fd (connected to the proxy, non-blocking; borrowed
 * until done). The whole exchange ends by timeout_ms. NULL: bad host or no
 * memory (nothing called). done may free the dial. */
socks5_dial *socks5_dial_new(struct event_base *base, int fd, const char *host, uint16_t port,
                             uint64_t timeout_ms, socks5_done_fn done, void *arg);
/* Stop (done is not called) and free. NULL ok; safe from inside done. */
void socks5_dial_free(socks5_dial *d);

#endif
