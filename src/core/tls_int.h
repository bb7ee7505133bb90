/*
 * tls_int.h — private to src/core/tls.c and src/core/tls_peer.c: the one
 * context builder (tls.c, the only caller of the OpenSSL constructor) and
 * the peer plane's hooks into the server context.
 */
#ifndef MN_CORE_TLS_INT_H
#define MN_CORE_TLS_INT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/tls.h"

/* Write the message to err; returns -1. */
int tls_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The OpenSSL reason of the last failure into buf (queue cleared). */
const char *tls_ossl_reason(char *buf, size_t len);
/* A context with the protocol policy (versions, suites, groups). NULL with err. */
SSL_CTX *tls_ctx_build(const SSL_METHOD *method, char *err, size_t errlen);
/* The server half of the policy (tickets, preference, buffers). 0/-1. */
int tls_set_server_policy(SSL_CTX *ctx, char *err, size_t errlen);

/* tls_peer.c: make a server context from files answer the peer plane too
 * (the SNI switch). 0/-1. */
int tls_peer_attach(SSL_CTX *ctx, tls_peer *p, char *err, size_t errlen);
/* A server context serving the identity certificate to everyone (no client
 * certificate asked), with the SNI switch. NULL with err. */
SSL_CTX *tls_peer_public_ctx(tls_peer *p, char *err, size_t errlen);
/* A failed handshake's OpenSSL error e on ssl: counts no_cert when a peer
 * plane connection presented no certificate. true when it counted. */
bool tls_peer_count_failure(SSL *ssl, unsigned long e);

#endif
