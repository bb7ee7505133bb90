/*
 * tls_peer.c — the peer plane's TLS (tls.h, "The peer plane"): a
 * self-signed certificate made in memory from the node's Ed25519 key, the
 * identity check both sides run on the other's certificate, the dialer's
 * pin, and the SNI switch that moves an omnigate connection naming
 * TLS_PEER_SNI onto the identity context. The contexts themselves come
 * from tls_ctx_build in tls.c, the one constructor.
 *
 * Why a pin and not a CA: a node id is BLAKE3 of the node's public key, so
 * "this peer holds the key of node X" is exactly "the key in its
 * certificate hashes to X, and it proved possession in the handshake".
 * Chain errors on a self-signed certificate are therefore expected; every
 * other verification error still refuses.
 *
 * The private key lives in OpenSSL's heap inside the two contexts for the
 * life of the tls_peer (OpenSSL has no hook for sodium memory); the seed
 * copy used to make it is wiped at once.
 */
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics/metrics.h"
#include "core/tls_int.h"
#include "lib/b3.h"

/* The key is the identity: the dates are wide enough that no clock skew
 * between nodes ever fails a handshake (9999-12-31: RFC 5280 §4.1.2.5's
 * "no well-defined expiration"). */
#define TLS_PEER_NOT_BEFORE "20000101000000Z"
#define TLS_PEER_NOT_AFTER  "99991231235959Z"
#define TLS_PEER_SERIAL_LEN 16u
/* A session resumed on the peer plane must have been made there. */
#define TLS_PEER_SID_CTX    "macronode-peer"

struct tls_peer {
	SSL_CTX *srv;   /* peer plane, server side: client certificate required */
	SSL_CTX *cli;   /* peer plane, dialer */
};

/* Per dialling SSL (ex_data, freed with the SSL): the pin and what the
 * peer presented. */
typedef struct tls_peer_dial {
	uint8_t          pin[IDENTITY_ID_LEN];
	uint8_t          got[IDENTITY_ID_LEN];
	bool             has_got;
	tls_peer_refusal why;
} tls_peer_dial;

static int tls_peer_ex_idx = -1;

static const char *const tls_peer_reasons[TLS_PEER_REFUSAL_COUNT] = {
	[TLS_PEER_OK] = "ok", [TLS_PEER_PIN] = "pin", [TLS_PEER_NO_CERT] = "no_cert",
	[TLS_PEER_NOT_ED25519] = "not_ed25519", [TLS_PEER_BAD_SIG] = "bad_signature",
	[TLS_PEER_CHAIN] = "chain",
};

const char *tls_peer_refusal_name(tls_peer_refusal r)
{
	return (unsigned)r < TLS_PEER_REFUSAL_COUNT ? tls_peer_reasons[r] : "unknown";
}

static void tls_peer_count(tls_peer_refusal r)
{
	char labels[48];

	snprintf(labels, sizeof labels, "reason=\"%s\"", tls_peer_refusal_name(r));
	metrics_count("peer_tls_refused_total", labels, 1);
}

void tls_peer_metrics_prepare(void)
{
	char labels[48];

	for (int r = TLS_PEER_PIN; r < TLS_PEER_REFUSAL_COUNT; r++) {
		snprintf(labels, sizeof labels, "reason=\"%s\"", tls_peer_reasons[r]);
		(void)metrics_get("peer_tls_refused_total", labels);
	}
}

/* ---- the identity check --------------------------------------------------- */

/* Is x one self-signed Ed25519 certificate whose signature verifies? *id
 * gets the node id of its key whenever the key is Ed25519. */
static tls_peer_refusal tls_peer_judge(X509 *x, uint8_t id[IDENTITY_ID_LEN], bool *has_id)
{
	EVP_PKEY *pk = x ? X509_get0_pubkey(x) : NULL;
	uint8_t raw[IDENTITY_PK_LEN];
	size_t n = sizeof raw;
	int self;

	*has_id = false;
	if (!x)
		return TLS_PEER_NO_CERT;
	if (!pk || EVP_PKEY_get_id(pk) != EVP_PKEY_ED25519 ||
	    EVP_PKEY_get_raw_public_key(pk, raw, &n) != 1 || n != sizeof raw)
		return TLS_PEER_NOT_ED25519;
	identity_id_of(raw, id);
	*has_id = true;
	ERR_set_mark();
	self = X509_self_signed(x, 1);
	ERR_pop_to_mark();
	return self == 1 ? TLS_PEER_OK : TLS_PEER_BAD_SIG;
}

/* The verify callback of both sides. Called per certificate and per error;
 * the verdict rests on the leaf alone, and only a missing trust anchor for
 * it (it is its own issuer) is forgiven. Refusals are counted once: a 0
 * ends the verification. */
static int tls_peer_verify(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	tls_peer_dial *d = ssl && tls_peer_ex_idx >= 0 ? SSL_get_ex_data(ssl, tls_peer_ex_idx) : NULL;
	STACK_OF(X509) *sent = X509_STORE_CTX_get0_untrusted(xs);
	int err = X509_STORE_CTX_get_error(xs);
	uint8_t id[IDENTITY_ID_LEN];
	bool has;
	tls_peer_refusal why = tls_peer_judge(X509_STORE_CTX_get0_cert(xs), id, &has);

	if (why == TLS_PEER_OK && ((sent && sk_X509_num(sent) > 1) ||
	                           (!ok && err != X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT)))
		why = TLS_PEER_CHAIN;
	if (d && has) {
		memcpy(d->got, id, sizeof d->got);
		d->has_got = true;
	}
	if (why == TLS_PEER_OK && d && !b3_equal(id, d->pin))
		why = TLS_PEER_PIN;
	if (why != TLS_PEER_OK) {
		if (d)
			d->why = why;
		tls_peer_count(why);
		X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	X509_STORE_CTX_set_error(xs, X509_V_OK);
	return 1;
}

int tls_peer_node_id(struct ssl_st *ssl, uint8_t id[IDENTITY_ID_LEN])
{
	bool has;

	/* Only a certificate our callback judged counts (the peer plane's
	 * contexts, or a connection the SNI switch moved there). */
	if (!ssl || SSL_get_verify_callback(ssl) != tls_peer_verify ||
	    SSL_get_verify_result(ssl) != X509_V_OK)
		return -1;
	return tls_peer_judge(SSL_get0_peer_certificate(ssl), id, &has) == TLS_PEER_OK ? 0 : -1;
}

tls_peer_refusal tls_peer_ssl_refusal(struct ssl_st *ssl, uint8_t presented[IDENTITY_ID_LEN],
                                      bool *has)
{
	tls_peer_dial *d = ssl && tls_peer_ex_idx >= 0 ? SSL_get_ex_data(ssl, tls_peer_ex_idx) : NULL;

	if (has)
		*has = d && d->has_got;
	if (presented && d && d->has_got)
		memcpy(presented, d->got, IDENTITY_ID_LEN);
	return d ? d->why : TLS_PEER_OK;
}

bool tls_peer_count_failure(SSL *ssl, unsigned long e)
{
	if (SSL_get_verify_callback(ssl) != tls_peer_verify || ERR_GET_LIB(e) != ERR_LIB_SSL ||
	    ERR_GET_REASON(e) != SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
		return false;
	tls_peer_count(TLS_PEER_NO_CERT);
	return true;
}

/* ---- the certificate ------------------------------------------------------ */

/* The Ed25519 key of id, from a wiped copy of its seed; checked against
 * the identity's public key. */
static EVP_PKEY *tls_peer_key(const node_identity *id, char *err, size_t errlen)
{
	uint8_t seed[IDENTITY_SEED_LEN], pk[IDENTITY_PK_LEN];
	size_t n = sizeof pk;
	EVP_PKEY *k;

	if (!id || !id->sk) {
		(void)tls_fail(err, errlen, "tls: no node identity for the peer plane");
		return NULL;
	}
	identity_seed(id, seed);
	k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof seed);
	sodium_memzero(seed, sizeof seed);
	if (!k || EVP_PKEY_get_raw_public_key(k, pk, &n) != 1 || n != sizeof pk ||
	    memcmp(pk, id->pk, sizeof pk) != 0) {
		EVP_PKEY_free(k);
		ERR_clear_error();
		(void)tls_fail(err, errlen, "tls: cannot use the node identity as a TLS key");
		return NULL;
	}
	return k;
}

static bool tls_peer_serial(X509 *x)
{
	uint8_t r[TLS_PEER_SERIAL_LEN];
	BIGNUM *bn;
	bool ok;

	randombytes_buf(r, sizeof r);
	r[0] = (uint8_t)((r[0] & 0x7fu) | 0x01u);   /* positive, 16 bytes (RFC 5280: ≤ 20) */
	bn = BN_bin2bn(r, (int)sizeof r, NULL);
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok;
}

/* Self-signed, subject = issuer = CN <the node id's 64 hex digits> (the id
 * without "b3:": a CN holds at most 64 characters, RFC 5280
 * ub-common-name), no extensions (nothing for a verifier to misread; a key
 * usage without keyCertSign would even make OpenSSL stop calling it
 * self-signed). */
static X509 *tls_peer_cert(EVP_PKEY *k, const char *cn)
{
	X509 *x = X509_new();
	X509_NAME *n = x ? X509_get_subject_name(x) : NULL;
	bool ok = n && X509_set_version(x, X509_VERSION_3) == 1 && tls_peer_serial(x) &&
	          ASN1_TIME_set_string_X509(X509_getm_notBefore(x), TLS_PEER_NOT_BEFORE) == 1 &&
	          ASN1_TIME_set_string_X509(X509_getm_notAfter(x), TLS_PEER_NOT_AFTER) == 1 &&
	          X509_set_pubkey(x, k) == 1 &&
	          X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
	                                     -1, 0) == 1 &&
	          X509_set_issuer_name(x, n) == 1 &&
	          X509_sign(x, k, NULL) > 0;   /* Ed25519 signs the message itself: no digest */

	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* ---- contexts ------------------------------------------------------------- */

static int tls_peer_use(SSL_CTX *ctx, X509 *x, EVP_PKEY *k, char *err, size_t errlen)
{
	char reason[256];

	if (SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, k) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		return tls_fail(err, errlen, "tls: identity certificate: %s",
		                tls_ossl_reason(reason, sizeof reason));
	return 0;
}

/* Server side: a client certificate is required and judged by identity;
 * no tickets (one connection per fetch; and a ticket is no proof of key). */
static SSL_CTX *tls_peer_srv_ctx(X509 *x, EVP_PKEY *k, char *err, size_t errlen)
{
	static const unsigned char sid[] = TLS_PEER_SID_CTX;
	SSL_CTX *ctx = tls_ctx_build(TLS_server_method(), err, errlen);

	if (!ctx)
		return NULL;
	if (tls_set_server_policy(ctx, err, errlen) != 0 || tls_peer_use(ctx, x, k, err, errlen) != 0 ||
	    SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, tls_peer_verify);
	SSL_CTX_set_verify_depth(ctx, 1);
	return ctx;
}

static SSL_CTX *tls_peer_cli_ctx(X509 *x, EVP_PKEY *k, char *err, size_t errlen)
{
	SSL_CTX *ctx = tls_ctx_build(TLS_client_method(), err, errlen);

	if (!ctx)
		return NULL;
	if (tls_peer_use(ctx, x, k, err, errlen) != 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls_peer_verify);
	SSL_CTX_set_verify_depth(ctx, 1);
	return ctx;
}

static void tls_peer_dial_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                               void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	free(ptr);
}

tls_peer *tls_peer_new(const node_identity *id, char *err, size_t errlen)
{
	tls_peer *p = calloc(1, sizeof *p);
	EVP_PKEY *k = NULL;
	X509 *x = NULL;

	if (!p) {
		(void)tls_fail(err, errlen, "tls: out of memory");
		return NULL;
	}
	/* Services are single-threaded; the index is taken before any dial. */
	if (tls_peer_ex_idx < 0)
		tls_peer_ex_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_peer_dial_free);
	if (tls_peer_ex_idx < 0)
		(void)tls_fail(err, errlen, "tls: no SSL ex_data index");
	else if (!(k = tls_peer_key(id, err, errlen)))
		;
	else if (!(x = tls_peer_cert(k, id->id_text + 3)))
		(void)tls_fail(err, errlen, "tls: cannot make the identity certificate");
	else if ((p->srv = tls_peer_srv_ctx(x, k, err, errlen)) != NULL)
		p->cli = tls_peer_cli_ctx(x, k, err, errlen);
	X509_free(x);
	EVP_PKEY_free(k);
	ERR_clear_error();
	if (!p->cli) {
		tls_peer_free(p);
		return NULL;
	}
	return p;
}

void tls_peer_free(tls_peer *p)
{
	if (!p)
		return;
	SSL_CTX_free(p->srv);
	SSL_CTX_free(p->cli);
	free(p);
}

struct ssl_st *tls_peer_ssl_new(tls_peer *p, const uint8_t pin[IDENTITY_ID_LEN])
{
	SSL *ssl = SSL_new(p->cli);
	tls_peer_dial *d = calloc(1, sizeof *d);

	if (!ssl || !d || SSL_set_tlsext_host_name(ssl, TLS_PEER_SNI) != 1 ||
	    SSL_set_ex_data(ssl, tls_peer_ex_idx, d) != 1) {
		free(d);
		SSL_free(ssl);
		ERR_clear_error();
		return NULL;
	}
	memcpy(d->pin, pin, sizeof d->pin);
	return ssl;
}

/* ---- the SNI switch (omnigate) ------------------------------------------ */

/* Runs for every ClientHello (OpenSSL calls it with or without SNI). Only
 * TLS_PEER_SNI moves: onto the identity certificate, with the identity
 * check on a required client certificate. Other names are not acknowledged,
 * as before the peer plane existed. */
static int tls_peer_on_sni(SSL *ssl, int *alert, void *arg)
{
	tls_peer *p = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	if (!name || strcmp(name, TLS_PEER_SNI) != 0)
		return SSL_TLSEXT_ERR_NOACK;
	if (SSL_set_SSL_CTX(ssl, p->srv) != p->srv) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	/* The context's certificate moves with SSL_set_SSL_CTX; its verify
	 * settings and options do not (nginx does the same per server). */
	SSL_set_verify(ssl, SSL_CTX_get_verify_mode(p->srv), SSL_CTX_get_verify_callback(p->srv));
	SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(p->srv));
	SSL_set_options(ssl, SSL_OP_NO_TICKET);
	return SSL_TLSEXT_ERR_OK;
}

int tls_peer_attach(SSL_CTX *ctx, tls_peer *p, char *err, size_t errlen)
{
	if (SSL_CTX_set_tlsext_servername_callback(ctx, tls_peer_on_sni) != 1 ||
	    SSL_CTX_set_tlsext_servername_arg(ctx, p) != 1)
		return tls_fail(err, errlen, "tls: cannot install the peer plane");
	return 0;
}

SSL_CTX *tls_peer_public_ctx(tls_peer *p, char *err, size_t errlen)
{
	SSL_CTX *ctx = tls_ctx_build(TLS_server_method(), err, errlen);
	X509 *x = SSL_CTX_get0_certificate(p->srv);
	EVP_PKEY *k = SSL_CTX_get0_privatekey(p->srv);

	if (!ctx)
		return NULL;
	if (!x || !k || tls_set_server_policy(ctx, err, errlen) != 0 ||
	    tls_peer_use(ctx, x, k, err, errlen) != 0 || tls_peer_attach(ctx, p, err, errlen) != 0) {
		if (!x || !k)
			(void)tls_fail(err, errlen, "tls: the peer plane has no certificate");
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return NULL;
	}
	return ctx;
}
