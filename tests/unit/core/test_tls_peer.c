/*
 * test_tls_peer.c — the peer plane's TLS (src/core/tls_peer.c): two node
 * identities handshake in-process over a socketpair. The server is the
 * real transport (core/net/conn) on a tls_server with the peer plane and
 * no certificate file, as omnigate runs it; the client is a non-blocking
 * OpenSSL client whose handshake pumps the event loop while it waits.
 *
 * Proves: pin ok (both sides learn the other's node id), pin mismatch
 * refused by the dialler with the presented id and counted, no client
 * certificate and an Ed448 client certificate refused by the server and
 * counted, a connection without the peer SNI gets the identity certificate
 * and no client certificate request, and the certificate's shape (CN,
 * Ed25519, self-signed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/config/config.h"
#include "core/identity/identity.h"
#include "core/metrics/metrics.h"
#include "core/net/conn.h"
#include "core/tls.h"

#define PUMP_MS 3000

typedef struct node {
	node_identity id;
	tls_peer     *peer;
} node;

typedef struct env {
	struct event_base *base;
	node               a, b, c;       /* a serves; b dials; c is a third node */
	mn_config          cfg;           /* no tls.cert_file */
	tls_server        *srv;
} env;

/* What the server side saw of one connection. */
typedef struct srv_conn {
	conn   *t;
	bool    opened, closed;
	int     id_rc;
	uint8_t id[IDENTITY_ID_LEN];
} srv_conn;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t refused(const char *reason)
{
	char labels[48];

	snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
	return metrics_value(metrics_get("peer_tls_refused_total", labels));
}

/* ---- the server side: the real transport ----------------------------------- */

static void on_open(void *arg)
{
	srv_conn *s = arg;

	s->opened = true;
	s->id_rc = conn_peer_node_id(s->t, s->id);
}

static void on_nothing(void *arg)
{
	(void)arg;
}

static void on_event(void *arg, unsigned what)
{
	srv_conn *s = arg;

	(void)what;
	conn_close(s->t, false);
}

static void on_close(void *arg)
{
	srv_conn *s = arg;

	conn_free(s->t);
	s->t = NULL;
	s->closed = true;
}

static const conn_ops srv_ops = {
	.on_open = on_open, .on_read = on_nothing, .on_event = on_event, .on_timer = on_nothing,
	.on_close = on_close,
};

static void srv_accept(env *e, srv_conn *s, int fd)
{
	conn_opts o = { .ops = &srv_ops, .arg = s, .read_max = 1u << 16, .write_ms = PUMP_MS,
	                .handshake_ms = PUMP_MS, .m_tls_fail = metrics_get("tls_handshake_failures_total", "") };

	memset(s, 0, sizeof *s);
	s->id_rc = -2;
	evutil_make_socket_nonblocking(fd);
	s->t = conn_new(e->base, fd, NULL, 0, e->srv, &o);
	assert_non_null(s->t);
	assert_false(conn_start(s->t));
}

/* ---- the client side: plain OpenSSL, non-blocking ------------------------- */

/* Handshake until both ends are through or one failed. Returns the client's
 * SSL_do_handshake result (1 ok). */
static int handshake(env *e, SSL *ssl, srv_conn *s)
{
	uint64_t until = now_ms() + PUMP_MS;
	int r = 0;

	while (now_ms() < until) {
		r = SSL_do_handshake(ssl);
		(void)event_base_loop(e->base, EVLOOP_NONBLOCK);
		if (r == 1 && (s->opened || s->closed))
			break;
		if (r <= 0) {
			int err = SSL_get_error(ssl, r);

			if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
				break;
		}
		usleep(1000);
	}
	return r;
}

/* After the client finished its side, let the server judge the client's
 * certificate (TLS 1.3: the server decides after the client is done) and
 * read whatever the server answered. */
static void settle(env *e, SSL *ssl, srv_conn *s)
{
	uint64_t until = now_ms() + PUMP_MS;
	char b;

	while (now_ms() < until && !s->opened && !s->closed) {
		if (ssl)
			(void)SSL_read(ssl, &b, 1);
		(void)event_base_loop(e->base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	ERR_clear_error();
}

static SSL *cli_ssl_on(SSL *ssl, int fd)
{
	assert_non_null(ssl);
	evutil_make_socket_nonblocking(fd);
	assert_int_equal(SSL_set_fd(ssl, fd), 1);
	SSL_set_connect_state(ssl);
	return ssl;
}

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

/* ---- fixtures ------------------------------------------------------------ */

static void node_make(node *n)
{
	char err[256];

	assert_int_equal(identity_generate(&n->id, err, sizeof err), 0);
	n->peer = tls_peer_new(&n->id, err, sizeof err);
	assert_non_null(n->peer);
}

static int setup(void **state)
{
	env *e = calloc(1, sizeof *e);
	char err[256];

	assert_non_null(e);
	e->base = event_base_new();
	node_make(&e->a);
	node_make(&e->b);
	node_make(&e->c);
	config_defaults(&e->cfg);
	e->srv = tls_server_new_peer(&e->cfg, e->a.peer, err, sizeof err);
	assert_non_null(e->srv);
	tls_peer_metrics_prepare();
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	env *e = *state;
	node *ns[] = { &e->a, &e->b, &e->c };

	tls_server_free(e->srv);
	for (size_t i = 0; i < 3; i++) {
		tls_peer_free(ns[i]->peer);
		identity_free(&ns[i]->id);
	}
	config_free(&e->cfg);
	event_base_free(e->base);
	free(e);
	return 0;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_pin_ok_both_sides_learn_the_id(void **state)
{
	env *e = *state;
	int sv[2];
	srv_conn s;
	uint8_t id[IDENTITY_ID_LEN];
	SSL *ssl;

	pair(sv);
	srv_accept(e, &s, sv[0]);
	ssl = cli_ssl_on(tls_peer_ssl_new(e->b.peer, e->a.id.id), sv[1]);
	assert_int_equal(handshake(e, ssl, &s), 1);
	settle(e, ssl, &s);
	assert_true(s.opened);
	/* the server knows the client as node b, the client the server as a */
	assert_int_equal(s.id_rc, 0);
	assert_memory_equal(s.id, e->b.id.id, IDENTITY_ID_LEN);
	assert_int_equal(tls_peer_node_id(ssl, id), 0);
	assert_memory_equal(id, e->a.id.id, IDENTITY_ID_LEN);
	assert_int_equal(tls_peer_ssl_refusal(ssl, NULL, NULL), TLS_PEER_OK);
	assert_int_equal(SSL_version(ssl), TLS1_3_VERSION);
	SSL_free(ssl);
	close(sv[1]);
	conn_close(s.t, false);
	(void)event_base_loop(e->base, EVLOOP_NONBLOCK);
	assert_true(s.closed);
}

static void test_pin_mismatch_refused_by_the_dialler(void **state)
{
	env *e = *state;
	int sv[2];
	srv_conn s;
	uint8_t got[IDENTITY_ID_LEN], id[IDENTITY_ID_LEN];
	bool has = false;
	uint64_t pins = refused("pin");
	SSL *ssl;

	pair(sv);
	srv_accept(e, &s, sv[0]);
	/* b dials a but expects c */
	ssl = cli_ssl_on(tls_peer_ssl_new(e->b.peer, e->c.id.id), sv[1]);
	assert_int_not_equal(handshake(e, ssl, &s), 1);
	assert_int_equal(tls_peer_ssl_refusal(ssl, got, &has), TLS_PEER_PIN);
	assert_true(has);
	assert_memory_equal(got, e->a.id.id, IDENTITY_ID_LEN);   /* who it really is */
	assert_int_equal(tls_peer_node_id(ssl, id), -1);
	assert_int_equal(refused("pin"), pins + 1);
	SSL_free(ssl);
	close(sv[1]);
	settle(e, NULL, &s);
	assert_false(s.opened);   /* the server never served the impostor check's victim */
	assert_true(s.closed);
}

static void test_no_client_certificate_refused_and_counted(void **state)
{
	env *e = *state;
	int sv[2];
	srv_conn s;
	char err[256];
	uint64_t before = refused("no_cert");
	SSL_CTX *ctx = tls_client_new(NULL, true, err, sizeof err);
	SSL *ssl;

	assert_non_null(ctx);
	pair(sv);
	srv_accept(e, &s, sv[0]);
	ssl = cli_ssl_on(SSL_new(ctx), sv[1]);
	assert_int_equal(SSL_set_tlsext_host_name(ssl, TLS_PEER_SNI), 1);
	(void)handshake(e, ssl, &s);
	settle(e, ssl, &s);
	assert_false(s.opened);
	assert_true(s.closed);
	assert_int_equal(refused("no_cert"), before + 1);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(sv[1]);
}

/* A self-signed certificate whose key is not Ed25519 (Ed448: it signs
 * without a digest, so no hash function is named here). */
static void test_ed448_client_certificate_refused(void **state)
{
	env *e = *state;
	int sv[2];
	srv_conn s;
	char err[256];
	uint64_t before = refused("not_ed25519");
	SSL_CTX *ctx = tls_client_new(NULL, true, err, sizeof err);
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
	X509 *x = X509_new();
	SSL *ssl;

	assert_non_null(ctx);
	assert_non_null(k);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_int_equal(X509_set_pubkey(x, k), 1);
	assert_int_equal(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                                            (const unsigned char *)"ed448", -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(x)), 1);
	assert_true(X509_sign(x, k, NULL) > 0);
	pair(sv);
	srv_accept(e, &s, sv[0]);
	ssl = cli_ssl_on(SSL_new(ctx), sv[1]);
	assert_int_equal(SSL_use_certificate(ssl, x), 1);
	assert_int_equal(SSL_use_PrivateKey(ssl, k), 1);
	assert_int_equal(SSL_set_tlsext_host_name(ssl, TLS_PEER_SNI), 1);
	(void)handshake(e, ssl, &s);
	settle(e, ssl, &s);
	assert_false(s.opened);
	assert_int_equal(refused("not_ed25519"), before + 1);
	SSL_free(ssl);
	X509_free(x);
	EVP_PKEY_free(k);
	SSL_CTX_free(ctx);
	close(sv[1]);
}

static void test_without_peer_sni_identity_cert_no_client_auth(void **state)
{
	env *e = *state;
	int sv[2];
	srv_conn s;
	char err[256], cn[128];
	uint8_t raw[32], id[IDENTITY_ID_LEN];
	size_t n = sizeof raw;
	SSL_CTX *ctx = tls_client_new(NULL, true, err, sizeof err);
	SSL *ssl;
	X509 *x;
	EVP_PKEY *pk;

	assert_non_null(ctx);
	pair(sv);
	srv_accept(e, &s, sv[0]);
	ssl = cli_ssl_on(SSL_new(ctx), sv[1]);
	assert_int_equal(handshake(e, ssl, &s), 1);
	settle(e, ssl, &s);
	assert_true(s.opened);
	assert_int_equal(s.id_rc, -1);    /* an ordinary client: no node id */
	/* the certificate: self-signed Ed25519 of node a, CN = its id's hex */
	x = SSL_get1_peer_certificate(ssl);
	assert_non_null(x);
	pk = X509_get0_pubkey(x);
	assert_int_equal(EVP_PKEY_get_id(pk), EVP_PKEY_ED25519);
	assert_int_equal(EVP_PKEY_get_raw_public_key(pk, raw, &n), 1);
	identity_id_of(raw, id);
	assert_memory_equal(id, e->a.id.id, IDENTITY_ID_LEN);
	assert_int_equal(X509_self_signed(x, 1), 1);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
	                                      sizeof cn) > 0);
	assert_string_equal(cn, e->a.id.id_text + 3);
	X509_free(x);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(sv[1]);
	conn_close(s.t, false);
	(void)event_base_loop(e->base, EVLOOP_NONBLOCK);
}

static void test_refusal_names(void **state)
{
	(void)state;
	assert_string_equal(tls_peer_refusal_name(TLS_PEER_PIN), "pin");
	assert_string_equal(tls_peer_refusal_name(TLS_PEER_NO_CERT), "no_cert");
	assert_string_equal(tls_peer_refusal_name(TLS_PEER_NOT_ED25519), "not_ed25519");
	assert_string_equal(tls_peer_refusal_name(TLS_PEER_BAD_SIG), "bad_signature");
	assert_string_equal(tls_peer_refusal_name(TLS_PEER_CHAIN), "chain");
	assert_string_equal(tls_peer_refusal_name(TLS_PEER_REFUSAL_COUNT), "unknown");
	assert_null(tls_peer_new(NULL, NULL, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pin_ok_both_sides_learn_the_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pin_mismatch_refused_by_the_dialler, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_client_certificate_refused_and_counted, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_ed448_client_certificate_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_without_peer_sni_identity_cert_no_client_auth, setup,
		                                teardown),
		cmocka_unit_test(test_refusal_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
