/*
 * tls.h — TLS contexts: the server's (tls_server_new), the one of the
 * `macronode put/get` client (tls_client_new) and the peer plane's, made
 * from the node identity (tls_peer_new). All are built by one function in
 * tls.c, the only place in the code base that calls the OpenSSL context
 * constructor; tests/check_tls_ctx.sh fails the build if it is called
 * anywhere else.
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
#include <stdint.h>

#include "core/config/config.h"
#include "core/identity/identity.h"

typedef struct tls_server tls_server;
typedef struct tls_peer tls_peer;
struct ssl_st;
struct ssl_ctx_st;

/* Build from cfg->tls_*. NULL with err naming the file and problem. */
tls_server *tls_server_new(const mn_config *cfg, char *err, size_t errlen);
void tls_server_free(tls_server *t);
/* The same, also serving the peer plane (below): a ClientHello whose SNI is
 * TLS_PEER_SNI is moved to peer's identity context (client certificate
 * required and verified as an identity); without tls.cert_file every other
 * connection gets the identity certificate too (no client certificate
 * asked). peer is borrowed and must outlive t and every SSL made from it. */
tls_server *tls_server_new_peer(const mn_config *cfg, tls_peer *peer, char *err, size_t errlen);
/* The admin plane's (admin.tls): the same certificate pair; client
 * certificates required and verified against admin.client_ca_file when it
 * is set (tls.client_ca_file does not apply). */
tls_server *tls_server_new_admin(const mn_config *cfg, char *err, size_t errlen);
/* Reload certificate/key/CA (SIGHUP): new connections use the new context,
 * existing ones keep theirs. On error the old context stays. 0/-1. */
__attribute__((warn_unused_result))
int tls_server_reload(tls_server *t, const mn_config *cfg, char *err, size_t errlen);
/* ALPN protocols the server answers (RFC 7301), in this order of
 * preference: h2, then http/1.1. Kept across reloads. Without a call (OAP
 * listeners) no protocol is selected. */
enum { TLS_ALPN_HTTP11 = 1u << 0, TLS_ALPN_H2 = 1u << 1 };
void tls_server_set_alpn(tls_server *t, unsigned protos);
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

/*
 * The peer plane: node-to-node TLS 1.3 authenticated by the node identity,
 * not by a CA (DESIGN §3, docs/oap.md "Peer plane").
 *
 * Each side presents a self-signed X.509 certificate made in memory from the
 * node's Ed25519 key (subject CN = the node id's 64 hex digits, validity
 * 2000 to 9999: the key is the identity, not the dates). A certificate is accepted
 * only when it is one self-signed Ed25519 certificate whose self-signature
 * verifies; its node id is BLAKE3 of its raw 32-byte public key. The dialer
 * pins the node id it dialled inside the handshake, before its own
 * certificate is sent, so a wrong peer never sees our proof of identity.
 * Refusals count in peer_tls_refused_total{reason}.
 */
#define TLS_PEER_SNI "peer.macronode.invalid"   /* .invalid: never a real name (RFC 6761) */

typedef enum tls_peer_refusal {
	TLS_PEER_OK = 0,
	TLS_PEER_PIN,          /* a valid identity, but not the node id dialled */
	TLS_PEER_NO_CERT,      /* no certificate presented (server side) */
	TLS_PEER_NOT_ED25519,  /* a certificate whose key is not Ed25519 */
	TLS_PEER_BAD_SIG,      /* not self-signed, or its self-signature does not verify */
	TLS_PEER_CHAIN,        /* more than one certificate, or another verification error */
	TLS_PEER_REFUSAL_COUNT,
} tls_peer_refusal;

/* Both contexts (server: client certificate required; client) from id
 * (borrowed for the call: the seed is copied out and wiped). NULL with err. */
tls_peer *tls_peer_new(const node_identity *id, char *err, size_t errlen);
void tls_peer_free(tls_peer *p);   /* NULL ok; SSLs made from it keep their contexts */
/* A client SSL for one dial (caller owns; SSL_free): SNI TLS_PEER_SNI, our
 * identity certificate, and the peer's certificate pinned to node id pin
 * (copied). NULL on allocation failure. */
struct ssl_st *tls_peer_ssl_new(tls_peer *p, const uint8_t pin[IDENTITY_ID_LEN]);
/* The node id of ssl's peer: 0 when the handshake verified its certificate
 * as an identity (peer plane, either side), else -1. */
__attribute__((warn_unused_result))
int tls_peer_node_id(struct ssl_st *ssl, uint8_t id[IDENTITY_ID_LEN]);
/* Why a client SSL's handshake was refused by our side (TLS_PEER_OK: not by
 * the identity check). *presented (may be NULL) gets the node id the peer
 * presented, when it presented an Ed25519 key; *has says whether it did. */
tls_peer_refusal tls_peer_ssl_refusal(struct ssl_st *ssl, uint8_t presented[IDENTITY_ID_LEN],
                                      bool *has);
/* "pin", "no_cert", "not_ed25519", "bad_signature", "chain" ("ok"). */
const char *tls_peer_refusal_name(tls_peer_refusal r);
/* Put every peer_tls_refused_total series on /metrics at 0. */
void tls_peer_metrics_prepare(void);

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
