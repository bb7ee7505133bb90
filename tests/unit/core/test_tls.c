/*
 * test_tls.c — the server TLS context (tls.c) and the HTTP core speaking TLS.
 *
 * Certificates are made at test time with OpenSSL's C API in a mkdtemp
 * directory (Ed25519 keys: signing needs no digest, so no hash function is
 * named here). The server and a non-blocking in-process OpenSSL client share
 * one thread: the client's handshake and I/O pump the event loop
 * (EVLOOP_NONBLOCK) while they wait, as test_http.c does for plaintext.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/config/config.h"
#include "core/net/http.h"
#include "core/net/http_test.h"
#include "core/metrics/metrics.h"
#include "core/tls.h"
#include "lib/b3.h"
#include "lib/log.h"

#define PUMP_MS       3000   /* upper bound on any wait */
#define HANDSHAKE_MS  200    /* the server's handshake deadline in these tests */
#define PATHLEN       1200

/* ---- certificates ----------------------------------------------------- */

static char g_dir[256];

enum {
	F_CA, F_CA2, F_A_CERT, F_A_KEY, F_B_CERT, F_B_KEY, F_OTHER_KEY,
	F_CLI_CERT, F_CLI_KEY, F_ROGUE_CERT, F_ROGUE_KEY, F_OPEN_KEY, F_JUNK, F_COUNT,
};
static const char *const f_names[F_COUNT] = {
	"ca.pem", "ca2.pem", "a.pem", "a.key", "b.pem", "b.key", "other.key",
	"cli.pem", "cli.key", "rogue.pem", "rogue.key", "open.key", "junk.pem",
};

static const char *fpath(int f)
{
	static char buf[F_COUNT][PATHLEN];

	snprintf(buf[f], sizeof buf[f], "%s/%s", g_dir, f_names[f]);
	return buf[f];
}

static EVP_PKEY *key_new(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

	assert_non_null(k);
	return k;
}

static void cert_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *e;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	assert_non_null(e);
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/* A certificate for key, signed by ikey (self-signed when issuer is NULL). */
static X509 *cert_new(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey, bool ca)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *n;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	n = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	                                            (const unsigned char *)cn, -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n), 1);
	if (ca) {
		cert_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE");
		cert_ext(x, issuer ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		cert_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
		cert_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
		cert_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
		cert_ext(x, issuer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
	}
	/* Ed25519 signs the message itself: no digest. */
	assert_true(X509_sign(x, ikey ? ikey : key, NULL) > 0);
	return x;
}

static void write_cert(int f, X509 *x)
{
	FILE *fp = fopen(fpath(f), "w");

	assert_non_null(fp);
	assert_int_equal(PEM_write_X509(fp, x), 1);
	assert_int_equal(fclose(fp), 0);
}

static void write_key(int f, EVP_PKEY *k, mode_t mode)
{
	FILE *fp = fopen(fpath(f), "w");

	assert_non_null(fp);
	assert_int_equal(PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(fpath(f), mode), 0);
}

/* A leaf for cn signed by (ca, cakey), written to fc / fk. */
static void make_leaf(const char *cn, X509 *ca, EVP_PKEY *cakey, int fc, int fk)
{
	EVP_PKEY *k = key_new();
	X509 *x = cert_new(cn, k, ca, cakey, false);

	write_cert(fc, x);
	write_key(fk, k, 0600);
	X509_free(x);
	EVP_PKEY_free(k);
}

static int group_setup(void **state)
{
	EVP_PKEY *cak, *ca2k, *other;
	X509 *ca, *ca2;
	FILE *fp;

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	log_init("test", LOG_LEVEL_ERROR, 2);
	snprintf(g_dir, sizeof g_dir, "%s/mn-tls-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(g_dir));
	cak = key_new();
	ca2k = key_new();
	ca = cert_new("macronode test CA", cak, NULL, NULL, true);
	ca2 = cert_new("rogue CA", ca2k, NULL, NULL, true);
	write_cert(F_CA, ca);
	write_cert(F_CA2, ca2);
	make_leaf("node-a", ca, cak, F_A_CERT, F_A_KEY);
	make_leaf("node-b", ca, cak, F_B_CERT, F_B_KEY);
	make_leaf("client-1", ca, cak, F_CLI_CERT, F_CLI_KEY);
	make_leaf("client-rogue", ca2, ca2k, F_ROGUE_CERT, F_ROGUE_KEY);
	other = key_new();
	write_key(F_OTHER_KEY, other, 0600);
	write_key(F_OPEN_KEY, other, 0644);
	fp = fopen(fpath(F_JUNK), "w");
	assert_non_null(fp);
	fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n", fp);
	assert_int_equal(fclose(fp), 0);
	EVP_PKEY_free(other);
	X509_free(ca);
	X509_free(ca2);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(ca2k);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	for (int f = 0; f < F_COUNT; f++)
		(void)unlink(fpath(f));
	(void)rmdir(g_dir);
	return 0;
}

/* ---- configuration ---------------------------------------------------- */

static mn_config g_cfg;

static void cfg_set(const char *cert, const char *key, const char *ca, const char *pin)
{
	config_free(&g_cfg);
	config_defaults(&g_cfg);
	snprintf(g_cfg.tls_cert_file, sizeof g_cfg.tls_cert_file, "%s", cert ? cert : "");
	snprintf(g_cfg.tls_key_file, sizeof g_cfg.tls_key_file, "%s", key ? key : "");
	snprintf(g_cfg.tls_client_ca_file, sizeof g_cfg.tls_client_ca_file, "%s", ca ? ca : "");
	snprintf(g_cfg.tls_cert_pin, sizeof g_cfg.tls_cert_pin, "%s", pin ? pin : "");
}

/* "b3:<hex>" of a file's bytes. */
static void file_cid(const char *path, char out[B3_CID_LEN + 1])
{
	uint8_t buf[65536], d[B3_OUT_LEN];
	FILE *fp = fopen(path, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, sizeof buf, fp);
	assert_true(n > 0 && n < sizeof buf);
	fclose(fp);
	b3_hash(buf, n, d);
	b3_cid_format(d, out);
}

/* tls_server_new must refuse cfg; err must contain every needle. */
static void expect_refused(const char *n1, const char *n2, const char *n3)
{
	char err[1024] = "";
	tls_server *t = tls_server_new(&g_cfg, err, sizeof err);

	if (t)
		fail_msg("tls_server_new accepted a bad configuration");
	if (!strstr(err, n1) || (n2 && !strstr(err, n2)) || (n3 && !strstr(err, n3)))
		fail_msg("unexpected error text: %s", err);
	assert_int_equal(ERR_peek_error(), 0);  /* the error queue is left clean */
}

static void test_key_mode_refused(void **state)
{
	(void)state;
	cfg_set(fpath(F_A_CERT), fpath(F_OPEN_KEY), NULL, NULL);
	expect_refused("tls.key_file", fpath(F_OPEN_KEY), "must not be group/world readable (mode 0644)");
	/* 0640 is group-readable: refused too. */
	assert_int_equal(chmod(fpath(F_OPEN_KEY), 0640), 0);
	expect_refused("tls.key_file", "(mode 0640)", NULL);
	assert_int_equal(chmod(fpath(F_OPEN_KEY), 0644), 0);
}

static void test_missing_files(void **state)
{
	char path[PATHLEN];

	(void)state;
	snprintf(path, sizeof path, "%s/nope.pem", g_dir);
	cfg_set(path, fpath(F_A_KEY), NULL, NULL);
	expect_refused("tls.cert_file", path, "No such file");
	cfg_set(fpath(F_A_CERT), path, NULL, NULL);
	expect_refused("tls.key_file", path, "No such file");
	cfg_set(fpath(F_A_CERT), fpath(F_A_KEY), path, NULL);
	expect_refused("tls.client_ca_file", path, "No such file");
	cfg_set(NULL, NULL, NULL, NULL);
	expect_refused("tls.cert_file", "tls.key_file", NULL);
	/* A directory is not a certificate. */
	cfg_set(g_dir, fpath(F_A_KEY), NULL, NULL);
	expect_refused("tls.cert_file", "not a regular file", NULL);
}

static void test_bad_contents(void **state)
{
	(void)state;
	/* Key of another pair: OpenSSL's reason is given with the file. */
	cfg_set(fpath(F_A_CERT), fpath(F_OTHER_KEY), NULL, NULL);
	expect_refused("tls.key_file", fpath(F_OTHER_KEY), "does not match tls.cert_file");
	cfg_set(fpath(F_JUNK), fpath(F_A_KEY), NULL, NULL);
	expect_refused("tls.cert_file", fpath(F_JUNK), "cannot load certificate: error:");
	/* A certificate file given as key. */
	assert_int_equal(chmod(fpath(F_JUNK), 0600), 0);
	cfg_set(fpath(F_A_CERT), fpath(F_JUNK), NULL, NULL);
	expect_refused("tls.key_file", "cannot load private key", NULL);
	assert_int_equal(chmod(fpath(F_JUNK), 0644), 0);
}

static void test_pin(void **state)
{
	char a[B3_CID_LEN + 1], b[B3_CID_LEN + 1], err[1024] = "";
	tls_server *t;

	(void)state;
	file_cid(fpath(F_A_CERT), a);
	file_cid(fpath(F_B_CERT), b);
	cfg_set(fpath(F_A_CERT), fpath(F_A_KEY), NULL, b);
	/* Names the file and both ids. */
	expect_refused(fpath(F_A_CERT), a, b);
	cfg_set(fpath(F_A_CERT), fpath(F_A_KEY), NULL, "b3:00");
	expect_refused("tls.cert_pin", NULL, NULL);
	cfg_set(fpath(F_A_CERT), fpath(F_A_KEY), NULL, a);
	t = tls_server_new(&g_cfg, err, sizeof err);
	if (!t)
		fail_msg("right pin refused: %s", err);
	/* Reload checks the pin again: B under A's pin is refused, A stays. */
	cfg_set(fpath(F_B_CERT), fpath(F_B_KEY), NULL, a);
	assert_int_equal(tls_server_reload(t, &g_cfg, err, sizeof err), -1);
	assert_non_null(strstr(err, b));
	tls_server_free(t);
	tls_server_free(NULL);
}

/* ---- the HTTP server over TLS ------------------------------------------ */

struct fix {
	struct event_base *base;
	http_server       *srv;
	tls_server        *tls;
	struct sockaddr_in addr;
};
static struct fix F;

static void h_hello(http_req *r, void *arg)
{
	(void)arg;
	assert_int_equal(http_reply(r, 200, "text/plain", "hello", 5), 0);
}

static const http_route routes[] = {
	{ HTTP_M_GET, "/hello", "/hello", 0, h_hello, NULL },
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t tls_failures(void)
{
	return metrics_value(metrics_get("tls_handshake_failures_total", ""));
}

static void srv_start(const char *cert, const char *key, const char *ca, uint32_t max_conns)
{
	http_limits l = {
		.read_timeout_ms = 2000, .write_timeout_ms = 2000, .idle_timeout_ms = 5000,
		.header_timeout_ms = 2000, .max_body_bytes = 1024, .max_header_bytes = 16384,
		.max_inflight = 8, .max_connections = max_conns,
	};
	http_server_opts o = { .service = "tlstest", .limits = l, .routes = routes, .nroutes = 1 };
	socklen_t alen = sizeof F.addr;
	char err[1024] = "";
	int lfd;

	cfg_set(cert, key, ca, NULL);
	F.tls = tls_server_new(&g_cfg, err, sizeof err);
	if (!F.tls)
		fail_msg("tls_server_new: %s", err);
	F.base = event_base_new();
	assert_non_null(F.base);
	F.srv = http_server_new(F.base, &o);
	assert_non_null(F.srv);
	http_server_set_tls(F.srv, F.tls, HANDSHAKE_MS);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	memset(&F.addr, 0, sizeof F.addr);
	F.addr.sin_family = AF_INET;
	F.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&F.addr, sizeof F.addr), 0);
	assert_int_equal(listen(lfd, 64), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&F.addr, &alen), 0);
	assert_int_equal(http_server_listen_fd(F.srv, lfd, true), 0);
}

static int setup_plain_tls(void **state)
{
	(void)state;
	srv_start(fpath(F_A_CERT), fpath(F_A_KEY), NULL, 16);
	return 0;
}

static int setup_mtls(void **state)
{
	(void)state;
	srv_start(fpath(F_A_CERT), fpath(F_A_KEY), fpath(F_CA), 16);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	http_server_free(F.srv);
	tls_server_free(F.tls);
	event_base_free(F.base);
	memset(&F, 0, sizeof F);
	return 0;
}

/* One turn of the server loop, then wait up to 1 ms for fd. */
static void pump(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };

	event_base_loop(F.base, EVLOOP_NONBLOCK);
	(void)poll(&p, fd >= 0 ? 1 : 0, 1);
}

static void pump_ms(unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (now_ms() < end)
		pump(-1);
}

/* Pump until the failure counter reaches want (or the deadline). */
static void pump_failures(uint64_t want)
{
	uint64_t end = now_ms() + PUMP_MS;

	while (tls_failures() < want && now_ms() < end)
		pump(-1);
}

static int tcp_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&F.addr, sizeof F.addr), 0);
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	return fd;
}

/* Wait for the server to close fd: ms until EOF/reset, or -1 past PUMP_MS. */
static int64_t wait_closed(int fd)
{
	uint64_t t0 = now_ms();
	char buf[4096];

	while (now_ms() - t0 < PUMP_MS) {
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return (int64_t)(now_ms() - t0);
		pump(fd);
	}
	return -1;
}

/* ---- in-process client -------------------------------------------------- */

struct cli_opts {
	int           min, max;      /* protocol versions; 0 = TLS 1.3 only */
	const char   *suites;        /* TLS 1.3 suites; NULL = OpenSSL's default */
	const char   *groups;
	const char   *cert, *key;    /* client certificate */
	SSL_SESSION  *session;       /* resume */
};

struct cli {
	int      fd;
	SSL_CTX *ctx;
	SSL     *ssl;
};

static SSL_CTX *cli_ctx(const struct cli_opts *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_set_min_proto_version(ctx, o->min ? o->min : TLS1_3_VERSION), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(ctx, o->max ? o->max : TLS1_3_VERSION), 1);
	if (o->suites)
		assert_int_equal(SSL_CTX_set_ciphersuites(ctx, o->suites), 1);
	if (o->groups)
		assert_int_equal(SSL_CTX_set1_groups_list(ctx, o->groups), 1);
	/* The client checks the server against the test CA, like a real one. */
	assert_int_equal(SSL_CTX_load_verify_file(ctx, fpath(F_CA)), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (o->cert) {
		assert_int_equal(SSL_CTX_use_certificate_file(ctx, o->cert, SSL_FILETYPE_PEM), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM), 1);
	}
	return ctx;
}

static void cli_close(struct cli *c)
{
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->ctx)
		SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	memset(c, 0, sizeof *c);
	c->fd = -1;
	ERR_clear_error();
}

/* Connect and handshake. 0, or -1 when the handshake failed. */
static int cli_open(struct cli *c, const struct cli_opts *o)
{
	uint64_t end = now_ms() + PUMP_MS;

	c->fd = tcp_connect();
	c->ctx = cli_ctx(o);
	c->ssl = SSL_new(c->ctx);
	assert_non_null(c->ssl);
	assert_int_equal(SSL_set_fd(c->ssl, c->fd), 1);
	assert_int_equal(SSL_set1_host(c->ssl, "localhost"), 1);
	if (o->session)
		assert_int_equal(SSL_set_session(c->ssl, o->session), 1);
	while (now_ms() < end) {
		int r = SSL_connect(c->ssl);
		int e;

		if (r == 1)
			return 0;
		e = SSL_get_error(c->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return -1;
		pump(c->fd);
	}
	fail_msg("client handshake did not finish");
	return -1;
}

static int cli_write(struct cli *c, const char *s)
{
	size_t len = strlen(s), off = 0;
	uint64_t end = now_ms() + PUMP_MS;

	while (off < len && now_ms() < end) {
		int r = SSL_write(c->ssl, s + off, (int)(len - off));

		if (r > 0) {
			off += (size_t)r;
			continue;
		}
		r = SSL_get_error(c->ssl, r);
		if (r != SSL_ERROR_WANT_READ && r != SSL_ERROR_WANT_WRITE)
			return -1;
		pump(c->fd);
	}
	return off == len ? 0 : -1;
}

/* Read one response with a Content-Length body. Its status, or -1. */
static int cli_read_response(struct cli *c, char *body, size_t bodylen)
{
	char buf[8192];
	size_t len = 0;
	uint64_t end = now_ms() + PUMP_MS;

	while (now_ms() < end && len < sizeof buf - 1) {
		int r = SSL_read(c->ssl, buf + len, (int)(sizeof buf - 1 - len));
		const char *eoh, *cl;

		if (r <= 0) {
			int e = SSL_get_error(c->ssl, r);

			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				return -1;
			pump(c->fd);
			continue;
		}
		len += (size_t)r;
		buf[len] = '\0';
		eoh = strstr(buf, "\r\n\r\n");
		cl = strstr(buf, "Content-Length: ");
		if (eoh && cl && len >= (size_t)(eoh + 4 - buf) + strtoul(cl + 16, NULL, 10)) {
			size_t blen = len - (size_t)(eoh + 4 - buf);

			snprintf(body, bodylen, "%.*s", (int)blen, eoh + 4);
			return atoi(buf + 9);
		}
	}
	return -1;
}

static int cli_get(struct cli *c, bool close_after, char *body, size_t bodylen)
{
	char req[128];

	snprintf(req, sizeof req, "GET /hello HTTP/1.1\r\nHost: localhost\r\n%s\r\n",
	         close_after ? "Connection: close\r\n" : "");
	if (cli_write(c, req) < 0)
		return -1;
	return cli_read_response(c, body, bodylen);
}

static void peer_cn(struct cli *c, char *cn, size_t len)
{
	X509 *x = SSL_get1_peer_certificate(c->ssl);

	assert_non_null(x);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
	                                      (int)len) > 0);
	X509_free(x);
}

/* A whole successful exchange with opts; returns the open client. */
static void cli_ok(struct cli *c, const struct cli_opts *o)
{
	char body[64];

	if (cli_open(c, o) != 0)
		fail_msg("handshake failed");
	assert_int_equal(cli_get(c, false, body, sizeof body), 200);
	assert_string_equal(body, "hello");
}

/* A client with these options must be refused: handshake (or, for a
 * missing client certificate under TLS 1.3, the first read) fails, the
 * server counts it once and closes. */
static void cli_refused(const struct cli_opts *o)
{
	struct cli c = { .fd = -1 };
	uint64_t before = tls_failures();
	char body[64];

	if (cli_open(&c, o) == 0)
		assert_int_equal(cli_get(&c, false, body, sizeof body), -1);
	pump_failures(before + 1);
	assert_int_equal(tls_failures(), before + 1);
	cli_close(&c);
	pump_ms(20);
	assert_int_equal(http_server_connections(F.srv), 0);
	assert_int_equal(tls_failures(), before + 1);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_tls13_x25519(void **state)
{
	struct cli c = { .fd = -1 };
	struct cli_opts o = { 0 };
	uint64_t before = tls_failures();
	char cn[64];

	(void)state;
	cli_ok(&c, &o);
	assert_int_equal(SSL_version(c.ssl), TLS1_3_VERSION);
	assert_int_equal(SSL_get_negotiated_group(c.ssl), NID_X25519);
	/* Server preference: the canon's first suite, though the client
	 * (OpenSSL's default order) lists AES-256 first. */
	assert_string_equal(SSL_CIPHER_get_name(SSL_get_current_cipher(c.ssl)),
	                    "TLS_AES_128_GCM_SHA256");
	peer_cn(&c, cn, sizeof cn);
	assert_string_equal(cn, "node-a");
	/* Keep-alive over TLS. */
	{
		char body[64];

		assert_int_equal(cli_get(&c, false, body, sizeof body), 200);
	}
	cli_close(&c);
	assert_int_equal(tls_failures(), before);
}

static void test_allowed_suites_and_p256(void **state)
{
	static const char *const suites[] = {
		"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
	};
	uint64_t before = tls_failures();

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		struct cli c = { .fd = -1 };
		struct cli_opts o = { .suites = suites[i] };

		cli_ok(&c, &o);
		assert_string_equal(SSL_CIPHER_get_name(SSL_get_current_cipher(c.ssl)), suites[i]);
		cli_close(&c);
	}
	{
		struct cli c = { .fd = -1 };
		struct cli_opts o = { .groups = "P-256" };

		cli_ok(&c, &o);
		assert_int_equal(SSL_get_negotiated_group(c.ssl), NID_X9_62_prime256v1);
		cli_close(&c);
	}
	assert_int_equal(tls_failures(), before);
}

static void test_refused_clients(void **state)
{
	struct cli_opts v12 = { .min = TLS1_2_VERSION, .max = TLS1_2_VERSION };
	struct cli_opts ccm = { .suites = "TLS_AES_128_CCM_SHA256" };
	struct cli_opts p384 = { .groups = "P-384" };

	(void)state;
	cli_refused(&v12);
	cli_refused(&ccm);
	cli_refused(&p384);
}

static void test_garbage_refused(void **state)
{
	static const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
	uint64_t before = tls_failures();
	int fd = tcp_connect();
	int64_t ms;

	(void)state;
	assert_int_equal(send(fd, req, sizeof req - 1, 0), (ssize_t)(sizeof req - 1));
	ms = wait_closed(fd);
	assert_true(ms >= 0 && ms < HANDSHAKE_MS);  /* refused at once, not at the deadline */
	pump_failures(before + 1);
	assert_int_equal(tls_failures(), before + 1);
	close(fd);
}

static void test_handshake_deadline(void **state)
{
	/* A record header promising a 512-byte ClientHello that never comes. */
	static const unsigned char partial[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01 };
	uint64_t before = tls_failures();
	int fd = tcp_connect();
	int64_t ms;

	(void)state;
	/* Silent client: cut at the deadline, counted. */
	ms = wait_closed(fd);
	assert_true(ms >= HANDSHAKE_MS - 20 && ms < HANDSHAKE_MS + 800);
	pump_failures(before + 1);
	assert_int_equal(tls_failures(), before + 1);
	close(fd);
	/* Stalled mid-handshake: the same. */
	fd = tcp_connect();
	assert_int_equal(send(fd, partial, sizeof partial, 0), (ssize_t)sizeof partial);
	ms = wait_closed(fd);
	assert_true(ms >= HANDSHAKE_MS - 20 && ms < HANDSHAKE_MS + 800);
	pump_failures(before + 2);
	assert_int_equal(tls_failures(), before + 2);
	close(fd);
	/* A TCP probe (connect, close, no byte) is not a handshake attempt. */
	fd = tcp_connect();
	pump_ms(10);
	close(fd);
	pump_ms(50);
	assert_int_equal(http_server_connections(F.srv), 0);
	assert_int_equal(tls_failures(), before + 2);
}

static void test_close_notify(void **state)
{
	struct cli c = { .fd = -1 };
	struct cli_opts o = { 0 };
	uint64_t end = now_ms() + PUMP_MS;
	char body[64], b;
	int r = -1, e = 0;

	(void)state;
	assert_int_equal(cli_open(&c, &o), 0);
	assert_int_equal(cli_get(&c, true, body, sizeof body), 200);
	/* After Connection: close the server ends cleanly: close_notify, so
	 * the client reads a TLS EOF, not a truncation. */
	while (now_ms() < end) {
		r = SSL_read(c.ssl, &b, 1);
		e = SSL_get_error(c.ssl, r);
		if (e != SSL_ERROR_WANT_READ)
			break;
		pump(c.fd);
	}
	assert_int_equal(r, 0);
	assert_int_equal(e, SSL_ERROR_ZERO_RETURN);
	cli_close(&c);
}

static void test_session_ticket_resumption(void **state)
{
	struct cli c1 = { .fd = -1 }, c2 = { .fd = -1 };
	struct cli_opts o = { 0 };
	SSL_SESSION *s;

	(void)state;
	cli_ok(&c1, &o);
	assert_int_equal(SSL_session_reused(c1.ssl), 0);
	s = SSL_get1_session(c1.ssl);
	assert_non_null(s);
	assert_int_equal(SSL_SESSION_is_resumable(s), 1);  /* a ticket arrived */
	o.session = s;
	cli_ok(&c2, &o);
	assert_int_equal(SSL_session_reused(c2.ssl), 1);
	SSL_SESSION_free(s);
	cli_close(&c1);
	cli_close(&c2);
}

static void test_mtls(void **state)
{
	struct cli_opts none = { 0 };
	struct cli_opts rogue = { .cert = fpath(F_ROGUE_CERT), .key = fpath(F_ROGUE_KEY) };
	struct cli_opts good = { .cert = fpath(F_CLI_CERT), .key = fpath(F_CLI_KEY) };
	struct cli c = { .fd = -1 };
	uint64_t before;

	(void)state;
	cli_refused(&none);
	cli_refused(&rogue);
	before = tls_failures();
	cli_ok(&c, &good);
	cli_close(&c);
	assert_int_equal(tls_failures(), before);
}

static void test_reload_swaps_cert(void **state)
{
	struct cli old = { .fd = -1 }, nw = { .fd = -1 }, again = { .fd = -1 };
	struct cli_opts o = { 0 };
	char cn[64], body[64], err[1024] = "";

	(void)state;
	cli_ok(&old, &o);
	peer_cn(&old, cn, sizeof cn);
	assert_string_equal(cn, "node-a");
	cfg_set(fpath(F_B_CERT), fpath(F_B_KEY), NULL, NULL);
	if (tls_server_reload(F.tls, &g_cfg, err, sizeof err) != 0)
		fail_msg("reload: %s", err);
	cli_ok(&nw, &o);
	peer_cn(&nw, cn, sizeof cn);
	assert_string_equal(cn, "node-b");
	/* The connection made before the reload keeps its context. */
	assert_int_equal(cli_get(&old, false, body, sizeof body), 200);
	/* A failed reload keeps the current context. */
	cfg_set(fpath(F_A_CERT), fpath(F_OTHER_KEY), NULL, NULL);
	assert_int_equal(tls_server_reload(F.tls, &g_cfg, err, sizeof err), -1);
	assert_non_null(strstr(err, "does not match"));
	cli_ok(&again, &o);
	peer_cn(&again, cn, sizeof cn);
	assert_string_equal(cn, "node-b");
	cli_close(&old);
	cli_close(&nw);
	cli_close(&again);
}

static int g_drained;

static void on_drained(void *arg)
{
	(void)arg;
	g_drained++;
}

/* Drain does not wait for a handshake that may never finish. */
static void test_drain_closes_handshakes(void **state)
{
	uint64_t before = tls_failures();
	int fd = tcp_connect();

	(void)state;
	pump_ms(10);
	assert_int_equal(http_server_connections(F.srv), 1);
	g_drained = 0;
	http_server_drain(F.srv, on_drained, NULL);
	pump_ms(10);
	assert_int_equal(g_drained, 1);
	assert_true(wait_closed(fd) >= 0);
	assert_int_equal(tls_failures(), before);
	close(fd);
}

/* Over the connection cap a TLS listener closes without a plaintext 503. */
static void test_conn_cap(void **state)
{
	metrics_series *cap = metrics_get("rejected_total", "reason=\"conn_cap\"");
	uint64_t before = metrics_value(cap);
	int fd1, fd2;
	char b;

	(void)state;
	teardown(NULL);
	srv_start(fpath(F_A_CERT), fpath(F_A_KEY), NULL, 1);
	fd1 = tcp_connect();
	pump_ms(10);
	fd2 = tcp_connect();
	assert_true(wait_closed(fd2) >= 0);
	assert_int_equal(recv(fd2, &b, 1, MSG_DONTWAIT), 0);  /* nothing was written */
	assert_int_equal(metrics_value(cap), before + 1);
	close(fd1);
	close(fd2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_mode_refused),
		cmocka_unit_test(test_missing_files),
		cmocka_unit_test(test_bad_contents),
		cmocka_unit_test(test_pin),
		cmocka_unit_test_setup_teardown(test_tls13_x25519, setup_plain_tls, teardown),
		cmocka_unit_test_setup_teardown(test_allowed_suites_and_p256, setup_plain_tls, teardown),
		cmocka_unit_test_setup_teardown(test_refused_clients, setup_plain_tls, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_refused, setup_plain_tls, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_deadline, setup_plain_tls, teardown),
		cmocka_unit_test_setup_teardown(test_close_notify, setup_plain_tls, teardown),
		cmocka_unit_test_setup_teardown(test_session_ticket_resumption, setup_plain_tls, teardown),
		cmocka_unit_test_setup_teardown(test_mtls, setup_mtls, teardown),
		cmocka_unit_test_setup_teardown(test_reload_swaps_cert, setup_plain_tls, teardown),
		cmocka_unit_test_setup_teardown(test_drain_closes_handshakes, setup_plain_tls, teardown),
		cmocka_unit_test_setup_teardown(test_conn_cap, setup_plain_tls, teardown),
	};
	int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);

	config_free(&g_cfg);
	return rc;
}
