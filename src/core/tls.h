/*
 * tls.h — TLS contexts: the server's (tls_server_new) and the one of the
 * `macronode put/get` client (tls_client_new). Both are built by one
 * function in tls.c, the only place in the code base that calls
 * the OpenSSL context constructor; tests/check_tls_ctx.sh fails the build if it
 * is called anywhere else.
 *
 * Policy (canon): TLS 1.3 only; suites TLS_AES_128_GCM_SHA256,
 * TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256; groups X25519 then
 * P-256; session tickets on; client certificates verified against
 * tls.client_ca_file when set (required then: mTLS). The key file must not
 * be group/world readable; tls.cert_pin, when set, must equal the BLAKE3 of
 * the certificate file at every load.
 */
#ifndef MN_CORE_TLS_H
#define MN_CORE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config/config.h"

typedef struct tls_server tls_server;
struct ssl_st;
struct ssl_ctx_st;

/* Build from cfg->tls_*. NULL with err naming the file and problem. */
tls_server *tls_server_new(const mn_config *cfg, char *err, size_t errlen);
void tls_server_free(tls_server *t);
/* Reload certificate/key/CA (SIGHUP): new connections use the new context,
 * existing ones keep theirs. On error the old context stays. 0/-1. */
__attribute__((warn_unused_result))
int tls_server_reload(tls_server *t, const mn_config *cfg, char *err, size_t errlen);
/* A new SSL object for one accepted connection (caller owns), or NULL. */
struct ssl_st *tls_server_ssl_new(tls_server *t);

/*
 * A client context with the same versions, suites and groups. The peer's
 * certificate is verified against ca_file (PEM; NULL or "" → the system
 * store), or not at all when insecure (self-signed test certificates). The
 * caller checks the host name per connection (SSL_set1_host) and frees the
 * context with SSL_CTX_free. NULL with err on failure.
 */
struct ssl_ctx_st *tls_client_new(const char *ca_file, bool insecure, char *err, size_t errlen);

struct bufferevent;
/*
 * A TLS handshake on bev ended in failure (why: our own reason, e.g. the
 * deadline, or NULL to take OpenSSL's). Writes the reason and returns true
 * when it counts as a failed handshake; a peer that went away without
 * sending a byte (a TCP probe) never attempted one and returns false.
 * Drains the OpenSSL error queues either way.
 */
bool tls_handshake_failure(struct bufferevent *bev, const char *why, char *reason, size_t len);

#endif
