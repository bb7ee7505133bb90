/*
 * client.c — `macronode put FILE` and `macronode get b3:…`: one OAP/1
 * connection over TLS 1.3, HELLO, then one request stream (docs/oap.md).
 *
 * Integrity is the point of the tool, so every path that moves bytes hashes
 * them: put streams the file in frames of at most OAP_MAX_FRAME and checks
 * that the id the node answers is the BLAKE3 of what was sent; get hashes
 * what it receives and, without a range, succeeds only when that equals the
 * requested id. An -o file is written under a temporary name in the same
 * directory and renamed into place only after the check, so a failed or
 * tampered transfer never leaves a file that looks complete.
 *
 * Blocking sockets with SO_RCVTIMEO/SO_SNDTIMEO: every read and write has a
 * deadline (--timeout), so a stalled peer cannot hang the command forever.
 */
#include "node/cli/client.h"
#include "node/cli/client_int.h"

#include <blake3.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/auth/captoken.h"
#include "core/auth/wall.h"
#include "core/proto/oap.h"
#include "core/tls.h"
#include "core/tor/onion.h"
#include "lib/b3.h"
#include "lib/util.h"
#include "mn_build.h"
#include "node/node.h"

#define CLIENT_TIMEOUT_S      30u                        /* default --timeout */
#define CLIENT_TIMEOUT_MAX_S  86400u
#define CLIENT_PUT_CHUNK      (OAP_MAX_FRAME - OAP_HDR_LEN) /* body bytes per frame */
#define CLIENT_PROGRESS_MIN   (1024u * 1024u)            /* progress only past 1 MiB */
#define CLIENT_PROGRESS_MS    100u                       /* at most 10 lines a second */
#define CLIENT_HOST_MAX       256u
#define CLIENT_JSON_MAX       4096u                      /* answer metadata, not bodies */

/* docs/oap.md registries. */
#define CLIENT_APP_HELLO      0u
#define CLIENT_APP_OBJECTS    1u
#define CLIENT_VERB_GET       3u
#define CLIENT_VERB_PUT       4u
#define CLIENT_CORR_HELLO     1u
#define CLIENT_CORR_STREAM    2u

typedef struct client_conn {
	int      fd;
	SSL_CTX *ctx;
	SSL     *ssl;
	uint8_t *rbuf;            /* one received frame (OAP_MAX_FRAME) */
	uint8_t *wbuf;            /* one frame to send (OAP_MAX_FRAME) */
	size_t   max_frame;       /* what the node accepts (HELLO), ≤ OAP_MAX_FRAME */
	const char *token;        /* capability sent in every START frame, or NULL */
} client_conn;

typedef struct client_progress {
	bool     on;
	bool     printed;
	uint64_t total;
	uint64_t done;
	uint64_t t0_ms;
	uint64_t last_ms;
} client_progress;

static const char *client_cmd = "client";

int client_err(int rc, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "macronode %s: ", client_cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return rc;
}

/* ------------------------------------------------------------------ progress */

static void client_progress_init(client_progress *p, uint64_t total)
{
	memset(p, 0, sizeof *p);
	p->on = total > CLIENT_PROGRESS_MIN && isatty(STDERR_FILENO);
	p->total = total;
	p->t0_ms = util_now_ms();
}

static void client_progress_print(client_progress *p, uint64_t now)
{
	double secs = (double)(now - p->t0_ms) / 1000.0;
	double mbs = secs > 0 ? (double)p->done / 1e6 / secs : 0.0;
	unsigned pct = p->total ? (unsigned)(p->done * 100u / p->total) : 100u;

	double left = mbs > 0 && p->total > p->done ? (double)(p->total - p->done) / 1e6 / mbs : 0.0;

	fprintf(stderr, "\r%" PRIu64 " / %" PRIu64 " bytes  %3u%%  %.1f MB/s  %4.0f s left ",
	        p->done, p->total, pct, mbs, left);
	fflush(stderr);
	p->printed = true;
	p->last_ms = now;
}

static void client_progress_add(client_progress *p, size_t n)
{
	uint64_t now;

	p->done += n;
	if (!p->on)
		return;
	now = util_now_ms();
	if (now - p->last_ms >= CLIENT_PROGRESS_MS)
		client_progress_print(p, now);
}

static void client_progress_end(client_progress *p)
{
	if (!p->on)
		return;
	client_progress_print(p, util_now_ms());
	fputc('\n', stderr);
}

/* --json: {"cid","bytes","seconds"[,"path"]} on one line of stdout. */
static void client_print_json(const char *cid, uint64_t bytes, uint64_t t0_ms, const char *path)
{
	json_t *j = json_pack("{s:s, s:I, s:f}", "cid", cid, "bytes", (json_int_t)bytes, "seconds",
	                      (double)(util_now_ms() - t0_ms) / 1000.0);
	char *txt;

	if (j && path)
		(void)json_object_set_new(j, "path", json_string(path));
	txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (txt)
		printf("%s\n", txt);
	free(txt);
	json_decref(j);
}

/* ------------------------------------------------------------------ transport */

static const char *client_ssl_reason(void)
{
	static char buf[256];
	unsigned long e = ERR_peek_last_error();

	if (!e)
		return errno ? strerror(errno) : "connection closed";
	ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	return buf;
}

/* Why an SSL_read/SSL_write failed, in words. */
static const char *client_io_reason(client_conn *c, int ret)
{
	int e = SSL_get_error(c->ssl, ret);

	if (e == SSL_ERROR_ZERO_RETURN)
		return "connection closed by the node";
	/* SO_RCVTIMEO/SO_SNDTIMEO expiring surfaces as EAGAIN on a blocking socket. */
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ||
	    (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)))
		return "timed out";
	if (e == SSL_ERROR_SYSCALL && ERR_peek_last_error() == 0)
		return errno ? strerror(errno) : "connection closed by the node";
	return client_ssl_reason();
}

static int client_write(client_conn *c, const uint8_t *p, size_t n)
{
	size_t done;

	while (n > 0) {
		errno = 0;
		int r = SSL_write_ex(c->ssl, p, n, &done);

		if (r <= 0)
			return client_err(-1, "send: %s", client_io_reason(c, r));
		p += done;
		n -= done;
	}
	return 0;
}

static int client_read(client_conn *c, uint8_t *p, size_t n)
{
	size_t got;

	while (n > 0) {
		errno = 0;
		int r = SSL_read_ex(c->ssl, p, n, &got);

		if (r <= 0)
			return client_err(-1, "receive: %s", client_io_reason(c, r));
		p += got;
		n -= got;
	}
	return 0;
}

static int client_send(client_conn *c, uint16_t flags, uint16_t code, uint16_t app,
                       uint64_t corr, const void *payload, size_t len)
{
	oap_frame f = { .flags = flags, .code = code, .app_proto_id = app, .corr_id = corr,
	                .payload = payload, .payload_len = len };

	/* The capability rides in the cap field of a request's START frame. */
	if ((flags & OAP_F_START) && app != CLIENT_APP_HELLO && c->token) {
		f.cap = (const uint8_t *)c->token;
		f.cap_size = strlen(c->token);
	}
	ssize_t n = oap_encode(&f, c->wbuf, OAP_MAX_FRAME);

	if (n < 0 || (size_t)n > c->max_frame)
		return client_err(-1, "internal: cannot encode a %zu-byte frame", len);
	return client_write(c, c->wbuf, (size_t)n);
}

/* One whole frame into c->rbuf; f's cap/payload point into it. The header
 * is checked before the rest is read, so a hostile node cannot make the
 * client buffer more than one OAP_MAX_FRAME. */
static int client_recv(client_conn *c, oap_frame *f)
{
	size_t used;
	oap_status st;

	if (client_read(c, c->rbuf, OAP_HDR_LEN) != 0)
		return -1;
	st = oap_decode_header(c->rbuf, OAP_HDR_LEN, OAP_MAX_FRAME, f);
	if (st != OAP_OK)
		return client_err(-1, "bad frame from the node: %s", oap_status_str(st));
	if (client_read(c, c->rbuf + OAP_HDR_LEN, f->len - OAP_HDR_LEN) != 0)
		return -1;
	st = oap_decode(c->rbuf, f->len, OAP_MAX_FRAME, f, &used);
	if (st != OAP_OK)
		return client_err(-1, "bad frame from the node: %s", oap_status_str(st));
	return 0;
}

/* Has the node sent something the application should read (an early error
 * answer while we are still uploading)? TLS 1.3 session tickets also make
 * the socket readable, so peek without blocking instead of trusting poll. */
static bool client_has_answer(client_conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	int fl, r;
	char b;

	if (SSL_pending(c->ssl) > 0)
		return true;
	if (poll(&pfd, 1, 0) <= 0)
		return false;
	fl = fcntl(c->fd, F_GETFL);
	if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) != 0)
		return false;
	r = SSL_peek(c->ssl, &b, 1);
	if (r <= 0 && SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ)
		r = 0;
	else
		r = 1;  /* data, or EOF/error: the next read reports it */
	ERR_clear_error();
	(void)fcntl(c->fd, F_SETFL, fl);
	return r != 0;
}

/* "host:port" or "[v6]:port". */
static int client_parse_peer(const char *peer, char *host, char *port)
{
	const char *colon = strrchr(peer, ':');
	size_t hl;

	if (!colon || colon == peer || !colon[1] || strlen(colon + 1) > 5)
		return -1;
	hl = (size_t)(colon - peer);
	if (peer[0] == '[') {
		if (hl < 3 || peer[hl - 1] != ']')
			return -1;
		peer++;
		hl -= 2;
	}
	if (hl >= CLIENT_HOST_MAX)
		return -1;
	memcpy(host, peer, hl);
	host[hl] = '\0';
	memcpy(port, colon + 1, strlen(colon + 1) + 1);
	return 0;
}

/* --peer names a .onion host: it must go through --socks, never to DNS. */
static bool client_peer_is_onion(const char *peer)
{
	char host[CLIENT_HOST_MAX], port[8];

	return client_parse_peer(peer, host, port) == 0 && onion_host_is_onion(host);
}

static int client_dial_one(const struct addrinfo *ai, unsigned timeout_s)
{
	struct timeval tv = { .tv_sec = (time_t)timeout_s };
	int one = 1;
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);

	if (fd < 0)
		return -1;
	/* SO_SNDTIMEO bounds connect() too (Linux). */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
	    connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		int e = errno;

		close(fd);
		errno = e == EINPROGRESS ? ETIMEDOUT : e;
		return -1;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static int client_dial(const char *host, const char *port, unsigned timeout_s)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res, *ai;
	int fd = -1, rc;

	if (onion_host_is_onion(host))   /* no DNS outside tor (client_check_onion) */
		return client_err(-1, "%s: an onion name is never resolved here", host);
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
		return client_err(-1, "%s:%s: %s", host, port, gai_strerror(rc));
	for (ai = res; ai && fd < 0; ai = ai->ai_next)
		fd = client_dial_one(ai, timeout_s);
	freeaddrinfo(res);
	if (fd < 0)
		return client_err(-1, "connect to %s:%s: %s", host, port, strerror(errno));
	return fd;
}

static bool client_is_ip(const char *host)
{
	unsigned char a[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* SNI for names; the certificate must name the host (or IP) we dialled. */
static int client_tls_handshake(client_conn *c, const client_opts *o, const char *host)
{
	long v;
	bool ip = client_is_ip(host);

	c->ssl = SSL_new(c->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 ||
	    (!ip && SSL_set_tlsext_host_name(c->ssl, host) != 1))
		return client_err(-1, "tls: %s", client_ssl_reason());
	if (!o->insecure &&
	    (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host) != 1
	        : SSL_set1_host(c->ssl, host) != 1))
		return client_err(-1, "tls: cannot check the name %s", host);
	errno = 0;
	if (SSL_connect(c->ssl) == 1)
		return 0;
	v = SSL_get_verify_result(c->ssl);
	if (v != X509_V_OK)
		return client_err(-1, "tls: %s: certificate not trusted: %s (--ca FILE, or --insecure "
		                  "for a test certificate)", o->peer, X509_verify_cert_error_string(v));
	return client_err(-1, "tls handshake with %s: %s", o->peer, client_io_reason(c, -1));
}

static void client_conn_close(client_conn *c)
{
	if (c->ssl) {
		(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	free(c->rbuf);
	free(c->wbuf);
	ERR_clear_error();
	memset(c, 0, sizeof *c);
	c->fd = -1;
}

static int client_conn_open(client_conn *c, const client_opts *o)
{
	char host[CLIENT_HOST_MAX], port[8], err[512];

	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->max_frame = OAP_MAX_FRAME;
	c->token = o->token[0] ? o->token : NULL;
	if (client_parse_peer(o->peer, host, port) != 0)
		return client_err(-1, "--peer %s: expected HOST:PORT", o->peer);
	c->rbuf = malloc(OAP_MAX_FRAME);
	c->wbuf = malloc(OAP_MAX_FRAME);
	if (!c->rbuf || !c->wbuf)
		return client_err(-1, "out of memory");
	c->ctx = tls_client_new(o->ca, o->insecure, err, sizeof err);
	if (!c->ctx)
		return client_err(-1, "%s", err);
	c->fd = client_dial(host, port, o->timeout_s);
	if (c->fd < 0)
		return -1;
	return client_tls_handshake(c, o, host);
}

/* ------------------------------------------------------------------ OAP/1 */

static json_t *client_json(const oap_frame *f)
{
	json_error_t e;
	json_t *j;

	if (f->payload_len > CLIENT_JSON_MAX)
		return NULL;
	j = json_loadb((const char *)f->payload, f->payload_len, JSON_REJECT_DUPLICATES, &e);
	if (j && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* An error answer in words: "404 not found" (the envelope's message). */
static int client_refused(int rc, const oap_frame *f)
{
	json_t *j = client_json(f);
	const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;

	(void)client_err(rc, "the node answered %u%s%s", f->code, msg ? ": " : "", msg ? msg : "");
	json_decref(j);
	return rc;
}

static int client_hello(client_conn *c)
{
	static const char ua[] = "{\"ua\":\"macronode/" MN_VERSION "\"}";
	oap_frame f;
	json_t *j, *mf;
	int rc = -1;

	if (client_send(c, OAP_F_REQ, 0, CLIENT_APP_HELLO, CLIENT_CORR_HELLO, ua, sizeof ua - 1) ||
	    client_recv(c, &f) != 0)
		return -1;
	if (!(f.flags & OAP_F_RESP) || f.corr_id != CLIENT_CORR_HELLO)
		return client_err(-1, "HELLO: unexpected answer (flags 0x%02x)", f.flags);
	if (f.code != 200)
		return client_refused(-1, &f);
	j = client_json(&f);
	mf = j ? json_object_get(j, "max_frame") : NULL;
	if (!json_is_integer(mf) || json_integer_value(mf) < (json_int_t)(OAP_HDR_LEN + 1))
		(void)client_err(-1, "HELLO: no usable max_frame in the answer");
	else
		rc = 0;
	if (rc == 0 && (uint64_t)json_integer_value(mf) < c->max_frame)
		c->max_frame = (size_t)json_integer_value(mf);
	json_decref(j);
	return rc;
}

/* The first answer frame of our stream (RESP|START). */
static int client_answer(client_conn *c, oap_frame *f)
{
	if (client_recv(c, f) != 0)
		return -1;
	if (f->corr_id != CLIENT_CORR_STREAM && f->corr_id != 0)
		return client_err(-1, "answer on an unknown stream %" PRIu64, f->corr_id);
	if (!(f->flags & OAP_F_RESP) || (f->code < 400 && !(f->flags & OAP_F_START)))
		return client_err(-1, "unexpected frame (flags 0x%02x, code %u)", f->flags, f->code);
	return 0;
}

/* ------------------------------------------------------------------ options */

static const char client_put_usage[] =
	"usage: macronode put FILE --peer HOST:PORT [--insecure | --ca FILE] [--expect b3:ID]\n"
	"\n"
	"Store FILE on a node over OAP/1 (TLS 1.3) and print its id (b3:...).\n"
	"The file is streamed in frames of at most 1 MiB and hashed on the way;\n"
	"the id the node answers must equal that hash.\n"
	"\n"
	"options:\n"
	"  --peer HOST:PORT   the node's OAP/1 listener (oap.addr)\n"
	"  --ca FILE          trust the node's certificate if it chains to this CA (PEM)\n"
	"                     (default: the system trust store)\n"
	"  --insecure         do not check the certificate (self-signed test nodes only)\n"
	"  --expect b3:ID     the file must hash to ID (checked here and by the node)\n"
	"  --timeout SECONDS  deadline for connecting and for each read/write (default 30)\n"
	"  --token-file FILE  capability token to present (default: env RON_TOKEN;\n"
	"                     none: anonymous, as the node's policy allows)\n"
	"  --holder-key FILE  the token is bound to this holder key (`macronode zk\n"
	"                     keygen`): send a proof of it bound to this request\n"
	"  --aud AUDIENCE     the node's auth.audience the proof binds (default:\n"
	"                     env RON_AUDIENCE)\n"
	"  --json             print {\"cid\",\"bytes\",\"seconds\"} instead of the id\n"
	"\n"
	"A progress line (bytes, percent, rate, time left) goes to standard error\n"
	"when it is a terminal and the file is over 1 MiB.\n"
	"\n"
	"exit: 0 stored, 1 runtime error or refusal, 2 usage, 3 integrity failure\n"
	"      (the id does not match the bytes, or --expect mismatch)\n";

static const char client_get_usage[] =
	"usage: macronode get b3:ID --peer HOST:PORT [-o FILE] [--range S-E]\n"
	"                     [--insecure | --ca FILE | --pin-node b3:NODEID [--socks ADDR]]\n"
	"\n"
	"Fetch an object from a node over OAP/1 (TLS 1.3) and write it to FILE\n"
	"(default: standard output), hashing it on the way.\n"
	"\n"
	"With --pin-node the node is reached on its peer plane and must prove the\n"
	"node id NODEID (`macronode id` on that node) instead of a CA-signed name;\n"
	"--peer is then a numeric IP:PORT. The object's outboard is fetched first\n"
	"and every 64 KiB group is checked against ID before any of it is written,\n"
	"ranges included, so even standard output only receives verified bytes.\n"
	"\n"
	"Whole objects are verified here: success only if the bytes hash to ID.\n"
	"With -o the file is written under a temporary name and appears only after\n"
	"that check; on standard output bytes are written as they come, so use -o\n"
	"when a consumer must never see a bad body.\n"
	"A range cannot be checked against ID without the object's outboard: for\n"
	"ranges the node verifies every 64 KiB group before serving it and this\n"
	"client checks the length only.\n"
	"\n"
	"options:\n"
	"  --peer HOST:PORT   the node's OAP/1 listener (oap.addr)\n"
	"  -o, --output FILE  write here instead of standard output\n"
	"  --range S-E        bytes S to E inclusive (0-based)\n"
	"  --ca FILE          trust the node's certificate if it chains to this CA (PEM)\n"
	"                     (default: the system trust store)\n"
	"  --insecure         do not check the certificate (self-signed test nodes only)\n"
	"  --pin-node b3:NODEID  the node must prove this node id (peer plane; no CA)\n"
	"  --socks IP:PORT    with --pin-node: tor's SOCKS5 port, through which --peer\n"
	"                     may be an onion (<v3>.onion:PORT; docs/tor.md), resolved by\n"
	"                     tor alone; the node id is still proven inside TLS\n"
	"  --timeout SECONDS  deadline for connecting and for each read/write (default 30)\n"
	"  --token-file FILE  capability token to present (default: env RON_TOKEN;\n"
	"                     none: anonymous, as the node's policy allows)\n"
	"  --holder-key FILE  the token is bound to this holder key (`macronode zk\n"
	"                     keygen`): send a proof of it bound to this request\n"
	"  --aud AUDIENCE     the node's auth.audience the proof binds (default:\n"
	"                     env RON_AUDIENCE)\n"
	"  --json             with -o FILE: print {\"cid\",\"bytes\",\"seconds\",\"path\"}\n"
	"\n"
	"A progress line (bytes, percent, rate, time left) goes to standard error\n"
	"when it is a terminal and the object is over 1 MiB.\n"
	"\n"
	"exit: 0 verified, 1 runtime error or refusal (404, a node that is not\n"
	"      NODEID, ...), 2 usage,\n"
	"      3 integrity failure (bad hash or length, or the node reports the\n"
	"      object corrupt: 502); no -o file is left behind on any failure\n";

static int client_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int (client_usage)(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "macronode %s: ", client_cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nRun `macronode %s --help` for usage.\n", client_cmd);
	return CLIENT_EXIT_USAGE;
}
#ifdef __clang_analyzer__
/* The static analyzer (make lint) does not inline variadic calls: show it the
 * constant, or it walks on past a refused command line. */
#define client_usage(...) ({ (void)client_usage(__VA_ARGS__); CLIENT_EXIT_USAGE; })
#endif

static int client_parse_u64(const char *s, const char *end, uint64_t *out)
{
	uint64_t v = 0;

	if (s == end)
		return -1;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static int client_parse_range(client_opts *o, const char *r)
{
	const char *dash = strchr(r, '-');

	if (!dash || client_parse_u64(r, dash, &o->range_start) != 0 ||
	    client_parse_u64(dash + 1, dash + strlen(dash), &o->range_end) != 0 ||
	    o->range_end < o->range_start)
		return -1;
	o->has_range = true;
	return 0;
}

/* The capability token: --token-file (first line), else RON_TOKEN. Never
 * from argv (visible to every local user in ps) and never printed. */
static int client_load_token(client_opts *o)
{
	const char *env = getenv("RON_TOKEN");
	size_t n = 0;

	if (o->token_file) {
		FILE *f = fopen(o->token_file, "r");
		if (!f)
			return client_usage("--token-file %s: %s", o->token_file, strerror(errno));
		if (!fgets(o->token, sizeof o->token, f))
			o->token[0] = '\0';
		fclose(f);
	} else if (env) {
		if (strlen(env) >= sizeof o->token)
			return client_usage("RON_TOKEN: longer than %d characters", CAPTOKEN_MAX_TOKEN);
		snprintf(o->token, sizeof o->token, "%s", env);
	}
	n = strcspn(o->token, "\r\n");
	o->token[n] = '\0';
	if ((o->token_file || env) && n == 0)
		return client_usage("%s: empty capability token", o->token_file ? o->token_file : "RON_TOKEN");
	return 0;
}

static int client_parse_opt(client_opts *o, int ch, const char *arg)
{
	uint64_t t;

	switch (ch) {
	case 'p': o->peer = arg; return 0;
	case 'c': o->ca = arg; return 0;
	case 'k': o->insecure = true; return 0;
	case 'o': o->out = arg; return 0;
	case 'e': o->expect = arg; return 0;
	case 'T': o->token_file = arg; return 0;
	case 'n': o->pin_node = arg; return 0;
	case 'S': o->socks = arg; return 0;
	case 'H': o->holder_key = arg; return 0;
	case 'a': o->aud = arg; return 0;
	case 'J': o->json = true; return 0;
	case 'r':
		return client_parse_range(o, arg) ? client_usage("--range %s: expected S-E, S <= E", arg) : 0;
	case 't':
		if (client_parse_u64(arg, arg + strlen(arg), &t) != 0 || t == 0 || t > CLIENT_TIMEOUT_MAX_S)
			return client_usage("--timeout %s: expected 1..86400 seconds", arg);
		o->timeout_s = (unsigned)t;
		return 0;
	default:
		return client_usage("unknown option");
	}
}

/* 0 = run, 0x100 = --help printed, else an exit code. */
static int client_parse(int argc, char **argv, client_opts *o, bool get)
{
	static const struct option put_opts[] = {
		{ "peer", required_argument, NULL, 'p' }, { "ca", required_argument, NULL, 'c' },
		{ "insecure", no_argument, NULL, 'k' }, { "expect", required_argument, NULL, 'e' },
		{ "timeout", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
		{ "token-file", required_argument, NULL, 'T' },
		{ "holder-key", required_argument, NULL, 'H' }, { "aud", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'J' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct option get_opts[] = {
		{ "peer", required_argument, NULL, 'p' }, { "ca", required_argument, NULL, 'c' },
		{ "insecure", no_argument, NULL, 'k' }, { "output", required_argument, NULL, 'o' },
		{ "range", required_argument, NULL, 'r' }, { "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' }, { "token-file", required_argument, NULL, 'T' },
		{ "pin-node", required_argument, NULL, 'n' }, { "socks", required_argument, NULL, 'S' },
		{ "holder-key", required_argument, NULL, 'H' }, { "aud", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'J' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, rc;

	o->timeout_s = CLIENT_TIMEOUT_S;
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, get ? "+:o:h" : "+:h", get ? get_opts : put_opts,
	                         NULL)) != -1 || optind < argc) {
		if (ch == -1) {  /* a positional argument: take it, keep parsing */
			if (o->arg)
				return client_usage("unexpected argument '%s'", argv[optind]);
			o->arg = argv[optind++];
			continue;
		}
		if (ch == 'h') {
			fputs(get ? client_get_usage : client_put_usage, stdout);
			return 0x100;
		}
		if (ch == '?' || ch == ':')
			return client_usage("unknown or incomplete option '%s'", argv[optind - 1]);
		if ((rc = client_parse_opt(o, ch, optarg)) != 0)
			return rc;
	}
	if (!o->arg)
		return client_usage("missing %s", get ? "b3:ID" : "FILE");
	if (!o->peer)
		return client_usage("missing --peer HOST:PORT");
	if (o->insecure && o->ca)
		return client_usage("--insecure and --ca exclude each other");
	if (o->pin_node && (o->insecure || o->ca))
		return client_usage("--pin-node authenticates the peer by its node id: "
		                    "no --ca or --insecure with it");
	if (o->socks && !o->pin_node)
		return client_usage("--socks needs --pin-node (onions are reached on the peer plane)");
	if (!o->pin_node && client_peer_is_onion(o->peer))
		return client_usage("--peer %s: an onion address is reached only through tor: "
		                    "--pin-node b3:NODEID --socks IP:PORT (no DNS outside tor)", o->peer);
	if (o->holder_key && o->pin_node)
		return client_usage("--holder-key proves a client's token; the peer plane "
		                    "(--pin-node) takes none");
	if (get && o->json && (!o->out || strcmp(o->out, "-") == 0))
		return client_usage("--json needs -o FILE (standard output carries the object)");
	if (o->holder_key && !o->aud && !(o->aud = getenv("RON_AUDIENCE")))
		return client_usage("--holder-key needs the node's audience: --aud or RON_AUDIENCE");
	return client_load_token(o);
}

/* ------------------------------------------------------------------ put */

static ssize_t client_read_chunk(int fd, uint8_t *buf, size_t cap)
{
	size_t got = 0;

	while (got < cap) {
		ssize_t n = read(fd, buf + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* "proof": a holder proof of o->holder_key bound to method, path, the
 * node's audience and body (docs/zk.md), as a JSON member, or "". */
static int client_proof_param(const client_opts *o, const char *method, const char *path,
                              const uint8_t body[B3_OUT_LEN], char *out, size_t cap)
{
	char proof[ZK_PROOF_TEXT_MAX + 1], err[512];

	out[0] = '\0';
	if (!o->holder_key)
		return 0;
	if (zk_cli_proof(o->holder_key, method, path, o->aud, body, proof, err, sizeof err) != 0)
		return client_err(-1, "%s", err);
	snprintf(out, cap, ",\"proof\":\"%s\"", proof);
	return 0;
}

/* The PUT's START parameters: "expect" (--expect, or with --holder-key the
 * file's hash, read once before sending: the proof binds it) and "proof". */
static int client_put_params(const client_opts *o, int fd, char *out, size_t cap)
{
	uint8_t body[B3_OUT_LEN], *buf;
	char cid[B3_CID_LEN + 1], proof[ZK_PROOF_TEXT_MAX + 16];
	blake3_hasher h;
	ssize_t n;

	if (!o->holder_key) {
		if (o->expect)
			snprintf(out, cap, "{\"expect\":\"%s\"}", o->expect);
		else
			snprintf(out, cap, "{}");
		return 0;
	}
	if (!(buf = malloc(CLIENT_PUT_CHUNK)))
		return client_err(-1, "out of memory");
	blake3_hasher_init(&h);
	while ((n = client_read_chunk(fd, buf, CLIENT_PUT_CHUNK)) > 0)
		blake3_hasher_update(&h, buf, (size_t)n);
	free(buf);
	if (n < 0 || lseek(fd, 0, SEEK_SET) != 0)
		return client_err(-1, "%s: --holder-key needs a regular file (it is hashed before "
		                  "sending): %s", o->arg, strerror(errno));
	blake3_hasher_finalize(&h, body, sizeof body);
	b3_cid_format(body, cid);
	if (o->expect && strcmp(o->expect, cid) != 0)
		return client_err(-1, "integrity: %s hashes to %s, not --expect %s", o->arg, cid,
		                  o->expect);
	if (client_proof_param(o, "PUT", "/o", body, proof, sizeof proof) != 0)
		return -1;
	snprintf(out, cap, "{\"expect\":\"%s\"%s}", cid, proof);
	return 0;
}

/* START, body frames, END; the hash of what was sent into digest. Stops
 * early (returns 0) when the node answers before the end: an error. */
static int client_put_body(client_conn *c, const client_opts *o, int fd, uint64_t total,
                           uint8_t digest[B3_OUT_LEN])
{
	char start[64 + B3_CID_LEN + ZK_PROOF_TEXT_MAX];
	uint8_t *chunk = malloc(CLIENT_PUT_CHUNK);
	size_t cap = c->max_frame - OAP_HDR_LEN;
	blake3_hasher h;
	client_progress p;
	ssize_t n;
	int rc = -1;

	if (!chunk)
		return client_err(-1, "out of memory");
	blake3_hasher_init(&h);
	client_progress_init(&p, total);
	if (client_put_params(o, fd, start, sizeof start) != 0) {
		free(chunk);
		return -1;
	}
	if (client_send(c, OAP_F_REQ | OAP_F_START, CLIENT_VERB_PUT, CLIENT_APP_OBJECTS,
	                CLIENT_CORR_STREAM, start, strlen(start)) != 0)
		goto out;
	while ((n = client_read_chunk(fd, chunk, cap)) > 0) {
		blake3_hasher_update(&h, chunk, (size_t)n);
		/* An answer before END is a refusal (413, 429, …): stop and read it. */
		if (client_has_answer(c))
			break;
		if (client_send(c, OAP_F_REQ, 0, CLIENT_APP_OBJECTS, CLIENT_CORR_STREAM, chunk,
		                (size_t)n) != 0)
			goto out;
		client_progress_add(&p, (size_t)n);
	}
	if (n < 0)
		(void)client_err(-1, "%s: %s", o->arg, strerror(errno));
	else if (n > 0 || client_send(c, OAP_F_REQ | OAP_F_END, 0, CLIENT_APP_OBJECTS,
	                              CLIENT_CORR_STREAM, NULL, 0) == 0)
		rc = 0;
	blake3_hasher_finalize(&h, digest, B3_OUT_LEN);
out:
	client_progress_end(&p);
	if (o->sent)
		*o->sent = p.done;
	free(chunk);
	return rc;
}

/* The answer to a PUT against the local hash. */
static int client_put_check(const oap_frame *f, const client_opts *o,
                            const uint8_t digest[B3_OUT_LEN])
{
	char mine[B3_CID_LEN + 1];
	json_t *j;
	const char *cid;
	uint8_t theirs[B3_OUT_LEN];
	int rc = CLIENT_EXIT_INTEGRITY;

	if (f->code == 422)
		return client_refused(CLIENT_EXIT_INTEGRITY, f);
	if (f->code != 200 && f->code != 201)
		return client_refused(CLIENT_EXIT_RUNTIME, f);
	b3_cid_format(digest, mine);
	j = client_json(f);
	cid = j ? json_string_value(json_object_get(j, "cid")) : NULL;
	if (!cid || b3_cid_parse(cid, strlen(cid), theirs) != 0)
		(void)client_err(rc, "the node answered %u without a valid cid", f->code);
	else if (!b3_equal(theirs, digest))
		(void)client_err(rc, "integrity: the node stored %s but %s hashes to %s", cid, o->arg,
		                 mine);
	else if (o->expect && strcmp(o->expect, mine) != 0)
		(void)client_err(rc, "integrity: %s hashes to %s, not --expect %s", o->arg, mine,
		                 o->expect);
	else
		rc = CLIENT_EXIT_OK;
	if (rc == CLIENT_EXIT_OK && !o->json)
		printf("%s\n", mine);
	else if (rc == CLIENT_EXIT_OK)
		client_print_json(mine, o->sent ? *o->sent : 0, o->t0_ms, NULL);
	json_decref(j);
	return rc;
}

static int client_put_run(const client_opts *o, int fd, uint64_t total)
{
	client_conn c;
	oap_frame f;
	uint8_t digest[B3_OUT_LEN] = { 0 };
	int rc = CLIENT_EXIT_RUNTIME;

	if (client_conn_open(&c, o) == 0 && client_hello(&c) == 0) {
		int sent = client_put_body(&c, o, fd, total, digest);

		/* Even when sending failed, the node may have said why (413). */
		if (client_answer(&c, &f) == 0)
			rc = sent == 0 ? client_put_check(&f, o, digest)
			               : client_refused(CLIENT_EXIT_RUNTIME, &f);
	}
	client_conn_close(&c);
	return rc;
}

int client_put_main(int argc, char **argv)
{
	client_opts o = { .cmd = "put" };
	struct stat st;
	uint8_t id[B3_OUT_LEN];
	uint64_t sent = 0;
	int fd, rc;

	o.sent = &sent;
	o.t0_ms = util_now_ms();

	client_cmd = "put";
	rc = client_parse(argc, argv, &o, false);
	if (rc)
		return rc == 0x100 ? 0 : rc;
	if (o.expect && b3_cid_parse(o.expect, strlen(o.expect), id) != 0)
		return client_usage("--expect %s: expected b3: and 64 lowercase hex digits", o.expect);
	fd = open(o.arg, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = client_err(CLIENT_EXIT_RUNTIME, "%s: %s", o.arg, strerror(errno));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return client_err(CLIENT_EXIT_RUNTIME, "%s: is a directory", o.arg);
	}
	(void)signal(SIGPIPE, SIG_IGN);
	rc = client_put_run(&o, fd, S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------ get */

int client_out_open(client_out *out, const char *path)
{
	struct stat st;
	char *dup = NULL, *base;
	mode_t um;
	size_t n;

	memset(out, 0, sizeof *out);
	out->fd = STDOUT_FILENO;
	if (!path || strcmp(path, "-") == 0)
		return 0;
	out->final = (char *)path;
	/* A device or FIFO (-o /dev/null) is written in place: nothing to rename. */
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		out->fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
		out->final = NULL;
		return out->fd < 0 ? client_err(-1, "%s: %s", path, strerror(errno)) : 0;
	}
	n = strlen(path) + 32;
	out->tmp = malloc(n);
	dup = strdup(path);
	if (!out->tmp || !dup) {
		free(dup);
		return client_err(-1, "out of memory");
	}
	base = basename(dup);
	snprintf(out->tmp, n, "%.*s.%s.partial-XXXXXX", (int)(strlen(path) - strlen(base)), path,
	         base);
	free(dup);
	out->fd = mkstemp(out->tmp);
	if (out->fd < 0)
		return client_err(-1, "%s: %s", path, strerror(errno));
	um = umask(0);
	umask(um);
	(void)fchmod(out->fd, 0666 & ~um);
	return 0;
}

int client_out_write(client_out *out, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(out->fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return client_err(-1, "write %s: %s", out->final ? out->final : "output",
			                  strerror(errno));
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ok: rename the temp file into place; else remove it. */
int client_out_close(client_out *out, bool ok)
{
	int rc = 0;

	if (out->fd > STDERR_FILENO && close(out->fd) != 0 && ok)
		rc = client_err(-1, "close %s: %s", out->final, strerror(errno));
	if (out->tmp) {
		if (ok && rc == 0 && rename(out->tmp, out->final) != 0)
			rc = client_err(-1, "rename to %s: %s", out->final, strerror(errno));
		if (!ok || rc != 0)
			(void)unlink(out->tmp);
		free(out->tmp);
	}
	memset(out, 0, sizeof *out);
	return rc;
}

/* What the first answer announces: the number of body bytes to expect. */
static int client_get_meta(const oap_frame *f, const client_opts *o, uint64_t *want)
{
	json_t *j;
	json_int_t len, s, e;

	if (f->code == 502)
		return client_refused(CLIENT_EXIT_INTEGRITY, f);
	if (f->code != (o->has_range ? 206 : 200))
		return client_refused(CLIENT_EXIT_RUNTIME, f);
	j = client_json(f);
	len = j ? json_integer_value(json_object_get(j, "len")) : -1;
	s = j ? json_integer_value(json_object_get(j, "start")) : -1;
	e = j ? json_integer_value(json_object_get(j, "end")) : -1;
	json_decref(j);
	if (!o->has_range && len >= 0) {
		*want = (uint64_t)len;
		return 0;
	}
	/* The node may end a range at the object's end, never elsewhere. */
	if (o->has_range && s >= 0 && e >= s && (uint64_t)s == o->range_start &&
	    (uint64_t)e <= o->range_end && (uint64_t)e < (uint64_t)len) {
		*want = (uint64_t)(e - s) + 1;
		return 0;
	}
	return client_err(CLIENT_EXIT_RUNTIME, "the node answered %u with unusable metadata",
	                  f->code);
}

/* One body frame: checked, hashed, written. */
static int client_get_frame(const oap_frame *f, client_out *out, blake3_hasher *h,
                            uint64_t *got, uint64_t want)
{
	uint8_t *dec = NULL;
	const uint8_t *p = f->payload;
	size_t n = f->payload_len;
	int rc = -1;

	if (f->corr_id != CLIENT_CORR_STREAM || !(f->flags & OAP_F_RESP) ||
	    (f->flags & OAP_F_START))
		return client_err(CLIENT_EXIT_RUNTIME, "unexpected frame (flags 0x%02x, stream %"
		                  PRIu64 ") in the body", f->flags, f->corr_id);
	if ((f->flags & OAP_F_COMP) && n > 0) {
		if (oap_decompress(p, n, OAP_COMP_MAX_OUT, &dec, &n) != 0)
			return client_err(CLIENT_EXIT_RUNTIME, "bad compressed frame from the node");
		p = dec;
	}
	if (n > want - *got)
		rc = client_err(CLIENT_EXIT_INTEGRITY, "integrity: the node sent more than the %"
		                PRIu64 " bytes it announced", want);
	else if (client_out_write(out, p, n) == 0)
		rc = 0;
	if (rc == 0) {
		blake3_hasher_update(h, p, n);
		*got += n;
	}
	free(dec);
	return rc < 0 ? CLIENT_EXIT_RUNTIME : rc;
}

static int client_get_check(const client_opts *o, const blake3_hasher *h, uint64_t got,
                            uint64_t want, const uint8_t id[B3_OUT_LEN])
{
	uint8_t digest[B3_OUT_LEN];
	char mine[B3_CID_LEN + 1];

	if (got != want)
		return client_err(CLIENT_EXIT_INTEGRITY, "integrity: received %" PRIu64 " of %" PRIu64
		                  " bytes", got, want);
	if (o->has_range)
		return CLIENT_EXIT_OK;  /* no outboard here: the node verified the groups */
	blake3_hasher_finalize(h, digest, B3_OUT_LEN);
	if (b3_equal(digest, id))
		return CLIENT_EXIT_OK;
	b3_cid_format(digest, mine);
	return client_err(CLIENT_EXIT_INTEGRITY, "integrity: the body hashes to %s, not %s", mine,
	                  o->arg);
}

static int client_get_body(client_conn *c, const client_opts *o, client_out *out,
                           const uint8_t id[B3_OUT_LEN])
{
	char req[64 + B3_CID_LEN + 2 * 20 + ZK_PROOF_TEXT_MAX + 16];
	char path[8 + B3_CID_LEN], proof[ZK_PROOF_TEXT_MAX + 16];
	uint8_t empty[B3_OUT_LEN];
	oap_frame f;
	blake3_hasher h;
	client_progress p;
	uint64_t want = 0, got = 0;
	int rc;

	b3_hash("", 0, empty);
	snprintf(path, sizeof path, "/o/%s", o->arg);
	if (client_proof_param(o, "GET", path, empty, proof, sizeof proof) != 0)
		return CLIENT_EXIT_RUNTIME;
	if (o->has_range)
		snprintf(req, sizeof req, "{\"cid\":\"%s\",\"range\":[%" PRIu64 ",%" PRIu64 "]%s}",
		         o->arg, o->range_start, o->range_end, proof);
	else
		snprintf(req, sizeof req, "{\"cid\":\"%s\"%s}", o->arg, proof);
	if (client_send(c, OAP_F_REQ | OAP_F_START | OAP_F_END, CLIENT_VERB_GET, CLIENT_APP_OBJECTS,
	                CLIENT_CORR_STREAM, req, strlen(req)) != 0 || client_answer(c, &f) != 0)
		return CLIENT_EXIT_RUNTIME;
	if ((rc = client_get_meta(&f, o, &want)) != 0)
		return rc;
	blake3_hasher_init(&h);
	client_progress_init(&p, want);
	while (!(f.flags & OAP_F_END)) {
		uint64_t before = got;

		if (client_recv(c, &f) != 0)
			return client_err(CLIENT_EXIT_RUNTIME, "the body stopped after %" PRIu64 " of %"
			                  PRIu64 " bytes: not verified", got, want);
		if ((rc = client_get_frame(&f, out, &h, &got, want)) != 0)
			return rc;
		client_progress_add(&p, (size_t)(got - before));
	}
	client_progress_end(&p);
	return client_get_check(o, &h, got, want, id);
}

int client_get_main(int argc, char **argv)
{
	client_opts o = { .cmd = "get" };
	client_conn c;
	client_out out;
	uint8_t id[B3_OUT_LEN];
	struct stat st;
	int rc;

	o.t0_ms = util_now_ms();

	client_cmd = "get";
	rc = client_parse(argc, argv, &o, true);
	if (rc)
		return rc == 0x100 ? 0 : rc;
	if (b3_cid_parse(o.arg, strlen(o.arg), id) != 0)
		return client_usage("%s: expected b3: and 64 lowercase hex digits", o.arg);
	(void)signal(SIGPIPE, SIG_IGN);
	if (client_out_open(&out, o.out) != 0) {
		(void)client_out_close(&out, false);
		return CLIENT_EXIT_RUNTIME;
	}
	rc = CLIENT_EXIT_RUNTIME;
	if (o.pin_node) {
		rc = client_peer_get(&o, id, &out);
	} else {
		if (client_conn_open(&c, &o) == 0 && client_hello(&c) == 0)
			rc = client_get_body(&c, &o, &out, id);
		client_conn_close(&c);
	}
	if (client_out_close(&out, rc == CLIENT_EXIT_OK) != 0 && rc == CLIENT_EXIT_OK)
		rc = CLIENT_EXIT_RUNTIME;
	if (rc == CLIENT_EXIT_OK && o.json)   /* -o FILE: the verified file's size */
		client_print_json(o.arg, stat(o.out, &st) == 0 ? (uint64_t)st.st_size : 0, o.t0_ms,
		                  o.out);
	return rc;
}
