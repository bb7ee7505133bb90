/*
 * tls.c — TLS contexts. tls_ctx_build() is the one function in the code base
 * that calls SSL_CTX_new (tests/check_tls_ctx.sh enforces it), for the
 * server and for the `macronode put/get` client alike, so the policy below
 * is the whole of the node's TLS policy.
 *
 * Reload builds a complete new context and swaps it in only once it is
 * whole. Each SSL takes its own reference on the context it was made from
 * (SSL_new up-refs it), so dropping ours on reload leaves connections already
 * accepted on the old certificate running until they close.
 *
 * Files are read once into memory: the bytes pinned by tls.cert_pin are the
 * bytes loaded (no window to swap the file between check and load), and the
 * private key lives only in sodium_malloc memory, wiped after parsing.
 */
#include "core/tls.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/tls_int.h"
#include "lib/b3.h"
#include "lib/util.h"

/* A PEM chain of a handful of certificates is a few KiB; anything near these
 * sizes is not a certificate or key file. */
#define TLS_CERT_FILE_MAX   (1024u * 1024u)
#define TLS_KEY_FILE_MAX    (64u * 1024u)
/* Client chains longer than leaf + 3 intermediates are refused. */
#define TLS_VERIFY_DEPTH    4
/* The canon (DESIGN §1). Suites in our preference order. */
#define TLS_SUITES  "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS  "X25519:P-256"
/* Session tickets are bound to this context id (required for resumption
 * when client certificates are verified). */
#define TLS_SESSION_ID_CTX  "macronode"

struct tls_server {
	SSL_CTX  *ctx;   /* current context (one reference owned) */
	tls_peer *peer;  /* the peer plane (borrowed), or NULL */
	unsigned  alpn;  /* TLS_ALPN_* offered; 0: no ALPN answer */
	bool      admin; /* the admin plane's: client CA from admin.client_ca_file */
};

/* ALPN (RFC 7301): the first protocol of ours the client also offers, in
 * our order (h2 before http/1.1). A client offering none of ours is
 * served without ALPN (RFC 7301 §3.2 allows no_application_protocol; we
 * are lenient: the connection then speaks HTTP/1.1, or OAP/1). */
static int tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                           const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char both[] = "\x02h2\x08http/1.1";
	static const unsigned char h11[] = "\x08http/1.1";
	const tls_server *t = arg;
	const unsigned char *ours = (t->alpn & TLS_ALPN_H2) ? both : h11;
	unsigned int ourlen = (unsigned int)((t->alpn & TLS_ALPN_H2) ? sizeof both : sizeof h11) - 1;
	unsigned char *sel = NULL;
	unsigned char sellen = 0;

	(void)ssl;
	if (!(t->alpn & TLS_ALPN_HTTP11))
		return SSL_TLSEXT_ERR_NOACK;
	/* Server preference: walk our list, take the first the client has. */
	for (unsigned int i = 0; i < ourlen; i += 1u + ours[i]) {
		for (unsigned int j = 0; j < inlen; j += 1u + in[j]) {
			if (in[j] == ours[i] && j + 1u + in[j] <= inlen &&
			    memcmp(in + j + 1, ours + i + 1, ours[i]) == 0) {
				sel = (unsigned char *)(uintptr_t)(in + j + 1);
				sellen = in[j];
				break;
			}
		}
		if (sel)
			break;
	}
	if (!sel)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	*outlen = sellen;
	return SSL_TLSEXT_ERR_OK;
}

void tls_server_set_alpn(tls_server *t, unsigned protos)
{
	if (!t)
		return;
	t->alpn = protos;
	SSL_CTX_set_alpn_select_cb(t->ctx, tls_alpn_select, t);
}

/* A file read into memory: plain malloc for certificates, sodium_malloc for
 * keys (guarded, wiped on free). */
struct tls_file {
	uint8_t *buf;
	size_t   len;
	bool     secret;
};

int tls_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* The OpenSSL reason for the last failure (never key material: OpenSSL's
 * error strings are static texts), and a clean queue for the next caller. */
const char *tls_ossl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "unknown error");
	ERR_clear_error();
	return buf;
}

static int tls_fail_ossl(char *err, size_t errlen, const char *key, const char *path,
                         const char *what)
{
	char reason[256];

	return tls_fail(err, errlen, "%s: %s: %s: %s", key, path, what,
	                tls_ossl_reason(reason, sizeof reason));
}

/* Passphrases are never prompted for: a daemon has no terminal, and an
 * encrypted key would otherwise block start-up on one. */
static int tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static void tls_file_free(struct tls_file *f)
{
	if (!f->buf)
		return;
	if (f->secret) {
		sodium_memzero(f->buf, f->len);
		sodium_free(f->buf);
	} else {
		free(f->buf);
	}
	f->buf = NULL;
	f->len = 0;
}

/* Opens a certificate or key file: regular, 1..max bytes and, for a key,
 * not group/world readable (a key others can read is a key others may
 * have: refuse, like sshd). Checked on the open file, before a byte is read. */
static int tls_file_open(const char *key, const char *path, size_t max, bool secret,
                         struct stat *st, char *err, size_t errlen)
{
	int fd;

	switch (util_file_open(path, max, secret ? UTIL_FILE_SECRET : 0, &fd, st)) {
	case UTIL_FILE_OK:
		if (st->st_size > 0)
			return fd;
		close(fd);
		break;
	case UTIL_FILE_ERRNO:
		return tls_fail(err, errlen, "%s: %s: %s", key, path, strerror(errno));
	case UTIL_FILE_NOT_REGULAR:
		return tls_fail(err, errlen, "%s: %s: not a regular file", key, path);
	case UTIL_FILE_TOO_OPEN:
		return tls_fail(err, errlen, "%s: %s: must not be group/world readable (mode %04o)",
		                key, path, (unsigned)(st->st_mode & 07777));
	case UTIL_FILE_TOO_BIG:
		break;
	}
	return tls_fail(err, errlen, "%s: %s: size %lld outside 1..%zu bytes", key, path,
	                (long long)st->st_size, max);
}

static int tls_file_read(struct tls_file *f, const char *key, const char *path, size_t max,
                         char *err, size_t errlen)
{
	struct stat st;
	int fd = tls_file_open(key, path, max, f->secret, &st, err, errlen);

	if (fd < 0)
		return -1;
	f->len = (size_t)st.st_size;
	f->buf = f->secret ? sodium_malloc(f->len) : malloc(f->len);
	if (!f->buf) {
		close(fd);
		return tls_fail(err, errlen, "%s: %s: out of memory", key, path);
	}
	int r = util_read_full(fd, f->buf, f->len);
	close(fd);
	if (r != 0) {
		tls_file_free(f);
		return tls_fail(err, errlen, "%s: %s: short read", key, path);
	}
	return 0;
}

/* tls.cert_pin: the BLAKE3 of the certificate file, as read. */
static int tls_check_pin(const mn_config *cfg, const struct tls_file *cert, char *err,
                         size_t errlen)
{
	uint8_t want[B3_OUT_LEN], got[B3_OUT_LEN];
	char got_id[B3_CID_LEN + 1];

	if (!cfg->tls_cert_pin[0])
		return 0;
	if (b3_cid_parse(cfg->tls_cert_pin, strlen(cfg->tls_cert_pin), want) != 0)
		return tls_fail(err, errlen, "tls.cert_pin: expected \"b3:\" and 64 lowercase hex digits");
	b3_hash(cert->buf, cert->len, got);
	if (b3_equal(want, got))
		return 0;
	b3_cid_format(got, got_id);
	return tls_fail(err, errlen, "tls.cert_pin: %s is %s, tls.cert_pin is %s",
	                cfg->tls_cert_file, got_id, cfg->tls_cert_pin);
}

/* Leaf then chain from PEM bytes (what SSL_CTX_use_certificate_chain_file
 * does from a path). */
static int tls_use_chain(SSL_CTX *ctx, const struct tls_file *cert, const char *path,
                         char *err, size_t errlen)
{
	BIO *b = BIO_new_mem_buf(cert->buf, (int)cert->len);
	X509 *x = b ? PEM_read_bio_X509_AUX(b, NULL, tls_no_passphrase, NULL) : NULL;
	unsigned long e;
	int ok = x && SSL_CTX_use_certificate(ctx, x) == 1;

	X509_free(x);
	while (ok && (x = PEM_read_bio_X509(b, NULL, tls_no_passphrase, NULL)) != NULL) {
		if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
			X509_free(x);
			ok = 0;
		}
	}
	BIO_free(b);
	if (!ok)
		return tls_fail_ossl(err, errlen, "tls.cert_file", path, "cannot load certificate");
	/* The chain ends where the PEM blocks end: that "error" is the normal exit. */
	e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
		ERR_clear_error();
	else if (e)
		return tls_fail_ossl(err, errlen, "tls.cert_file", path, "bad certificate chain");
	return 0;
}

static int tls_use_key(SSL_CTX *ctx, const struct tls_file *key, const char *path, char *err,
                       size_t errlen)
{
	BIO *b = BIO_new_mem_buf(key->buf, (int)key->len);
	EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, tls_no_passphrase, NULL) : NULL;
	int ok;

	BIO_free(b);
	if (!pk)
		return tls_fail_ossl(err, errlen, "tls.key_file", path,
		                     "cannot load private key (PEM, unencrypted)");
	/* SSL_CTX_use_PrivateKey already refuses a key of another pair. */
	ok = SSL_CTX_use_PrivateKey(ctx, pk) == 1 && SSL_CTX_check_private_key(ctx) == 1;
	EVP_PKEY_free(pk);
	if (!ok)
		return tls_fail_ossl(err, errlen, "tls.key_file", path,
		                     "does not match tls.cert_file");
	return 0;
}

static int tls_load_pair(SSL_CTX *ctx, const mn_config *cfg, char *err, size_t errlen)
{
	struct tls_file cert = { .secret = false }, key = { .secret = true };
	int rc = -1;

	if (!cfg->tls_cert_file[0] || !cfg->tls_key_file[0])
		return tls_fail(err, errlen, "tls.cert_file and tls.key_file must both be set");
	if (tls_file_read(&cert, "tls.cert_file", cfg->tls_cert_file, TLS_CERT_FILE_MAX,
	                  err, errlen) == 0 &&
	    tls_check_pin(cfg, &cert, err, errlen) == 0 &&
	    tls_use_chain(ctx, &cert, cfg->tls_cert_file, err, errlen) == 0 &&
	    tls_file_read(&key, "tls.key_file", cfg->tls_key_file, TLS_KEY_FILE_MAX,
	                  err, errlen) == 0 &&
	    tls_use_key(ctx, &key, cfg->tls_key_file, err, errlen) == 0)
		rc = 0;
	tls_file_free(&key);
	tls_file_free(&cert);
	return rc;
}

/* mTLS: a client certificate is required and verified against the CA file. */
static int tls_load_client_ca(SSL_CTX *ctx, const char *key, const char *path, char *err,
                              size_t errlen)
{
	STACK_OF(X509_NAME) *names;

	if (!path[0])
		return 0;
	if (access(path, R_OK) != 0)
		return tls_fail(err, errlen, "%s: %s: %s", key, path, strerror(errno));
	if (SSL_CTX_load_verify_file(ctx, path) != 1)
		return tls_fail_ossl(err, errlen, key, path, "cannot load CA");
	names = SSL_load_client_CA_file(path);
	if (!names)
		return tls_fail_ossl(err, errlen, key, path, "no CA certificate");
	SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(ctx, TLS_VERIFY_DEPTH);
	return 0;
}

/* The protocol policy of DESIGN §1 shared by both ends: versions, suites,
 * groups. Nothing here depends on files. */
static int tls_set_protocol(SSL_CTX *ctx, char *err, size_t errlen)
{
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, TLS_SUITES) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1)
		return tls_fail_ossl(err, errlen, "tls", "policy", "cannot apply");
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_default_passwd_cb(ctx, tls_no_passphrase);
	return 0;
}

/* The server half of the policy. */
int tls_set_server_policy(SSL_CTX *ctx, char *err, size_t errlen)
{
	static const unsigned char sid[] = TLS_SESSION_ID_CTX;

	if (SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1) != 1)
		return tls_fail_ossl(err, errlen, "tls", "policy", "cannot apply");
	/* Our suite and group order wins, except that a client which puts
	 * ChaCha20 first (no AES hardware) gets it. No renegotiation (a TLS 1.2
	 * notion, refused anyway), no compression (CRIME): tls_set_protocol. */
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
	/* Stateless session tickets (TLS 1.3 resumption) on; no server-side
	 * session cache to grow with the number of clients; no 0-RTT early data
	 * (replayable) — OpenSSL's default max_early_data is 0, kept. */
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_max_early_data(ctx, 0);
	/* Idle keep-alive connections do not hold 2 × 16 KiB of record buffers. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return 0;
}

/* The one place a TLS context is created (server or client method), with
 * the shared protocol policy applied. NULL with err on failure. */
SSL_CTX *tls_ctx_build(const SSL_METHOD *method, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if (err && errlen)
		err[0] = '\0';
	if (sodium_init() < 0) {
		(void)tls_fail(err, errlen, "tls: libsodium initialisation failed");
		return NULL;
	}
	ERR_clear_error();
	ctx = SSL_CTX_new(method);
	if (!ctx) {
		(void)tls_fail_ossl(err, errlen, "tls", "context", "cannot create");
		return NULL;
	}
	if (tls_set_protocol(ctx, err, errlen) != 0) {
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return NULL;
	}
	return ctx;
}

/* A complete server context from cfg: the certificate files, or (with a
 * peer plane and no tls.cert_file) the node identity's certificate. With a
 * peer plane a ClientHello naming TLS_PEER_SNI moves the connection to the
 * identity context (tls_peer.c). The admin plane's (admin) verifies client
 * certificates against admin.client_ca_file instead of tls.client_ca_file.
 * NULL with err on failure. */
static SSL_CTX *tls_server_ctx(const mn_config *cfg, tls_peer *peer, bool admin, char *err,
                               size_t errlen)
{
	SSL_CTX *ctx;
	const char *ca_key = admin ? "admin.client_ca_file" : "tls.client_ca_file";
	const char *ca = admin ? cfg->admin_client_ca_file : cfg->tls_client_ca_file;

	if (peer && !cfg->tls_cert_file[0])
		return tls_peer_public_ctx(peer, err, errlen);
	if (!(ctx = tls_ctx_build(TLS_server_method(), err, errlen)))
		return NULL;
	if (tls_set_server_policy(ctx, err, errlen) != 0 ||
	    tls_load_pair(ctx, cfg, err, errlen) != 0 ||
	    tls_load_client_ca(ctx, ca_key, ca, err, errlen) != 0 ||
	    (peer && tls_peer_attach(ctx, peer, err, errlen) != 0)) {
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return NULL;
	}
	return ctx;
}

struct ssl_ctx_st *tls_client_new(const char *ca_file, bool insecure, char *err, size_t errlen)
{
	SSL_CTX *ctx = tls_ctx_build(TLS_client_method(), err, errlen);

	if (!ctx)
		return NULL;
	if (insecure) {
		/* --insecure: encrypted, but anyone can be the peer. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return ctx;
	}
	if (ca_file && ca_file[0]) {
		if (access(ca_file, R_OK) != 0) {
			(void)tls_fail(err, errlen, "--ca: %s: %s", ca_file, strerror(errno));
			SSL_CTX_free(ctx);
			return NULL;
		}
		if (SSL_CTX_load_verify_file(ctx, ca_file) != 1) {
			(void)tls_fail_ossl(err, errlen, "--ca", ca_file, "cannot load CA");
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		(void)tls_fail_ossl(err, errlen, "tls", "system CA store", "cannot load");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_verify_depth(ctx, TLS_VERIFY_DEPTH);
	return ctx;
}

tls_server *tls_server_new(const mn_config *cfg, char *err, size_t errlen)
{
	return tls_server_new_peer(cfg, NULL, err, errlen);
}

static tls_server *tls_server_make(const mn_config *cfg, tls_peer *peer, bool admin, char *err,
                                   size_t errlen)
{
	tls_server *t;
	SSL_CTX *ctx = tls_server_ctx(cfg, peer, admin, err, errlen);

	if (!ctx)
		return NULL;
	t = calloc(1, sizeof *t);
	if (!t) {
		SSL_CTX_free(ctx);
		(void)tls_fail(err, errlen, "tls: out of memory");
		return NULL;
	}
	t->ctx = ctx;
	t->peer = peer;
	t->admin = admin;
	return t;
}

tls_server *tls_server_new_peer(const mn_config *cfg, tls_peer *peer, char *err, size_t errlen)
{
	return tls_server_make(cfg, peer, false, err, errlen);
}

tls_server *tls_server_new_admin(const mn_config *cfg, char *err, size_t errlen)
{
	return tls_server_make(cfg, NULL, true, err, errlen);
}

void tls_server_free(tls_server *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);  /* connections still open hold their own references */
	free(t);
}

int tls_server_reload(tls_server *t, const mn_config *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if (!t)
		return tls_fail(err, errlen, "tls: not configured");
	ctx = tls_server_ctx(cfg, t->peer, t->admin, err, errlen);
	if (!ctx)
		return -1;  /* the old context stays */
	SSL_CTX_free(t->ctx);
	t->ctx = ctx;
	if (t->alpn)
		SSL_CTX_set_alpn_select_cb(t->ctx, tls_alpn_select, t);
	return 0;
}

struct ssl_st *tls_server_ssl_new(tls_server *t)
{
	SSL *ssl = t ? SSL_new(t->ctx) : NULL;

	if (!ssl)
		ERR_clear_error();
	return ssl;
}

bool tls_handshake_failure(struct bufferevent *bev, const char *why, char *reason, size_t len)
{
	unsigned long e = bufferevent_get_openssl_error(bev);
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	BIO *rbio = ssl ? SSL_get_rbio(ssl) : NULL;
	bool counts = why || (rbio && BIO_number_read(rbio) > 0);
	bool peer_counted = ssl && e && tls_peer_count_failure(ssl, e);
	unsigned long more;

	if (why)
		snprintf(reason, len, "%s", why);
	else if (e)
		ERR_error_string_n(e, reason, len);
	else
		snprintf(reason, len, "connection closed during handshake");
	while ((more = bufferevent_get_openssl_error(bev)) != 0)
		if (!peer_counted && ssl)
			peer_counted = tls_peer_count_failure(ssl, more);
	ERR_clear_error();
	return counts;
}
