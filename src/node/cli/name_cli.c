/*
 * name_cli.c — `macronode name publish|resolve`: names over the gateway's
 * HTTP API (docs/api.md "Names"), one request per command.
 *
 *   name publish NAME b3:CID --gateway HOST:PORT   PUT /n/NAME {"cid":…}
 *   name resolve NAME --gateway HOST:PORT [--history]   GET /n/NAME[?history=1]
 *
 * The name is checked here first with the node's own rules (core/dht/name.h:
 * NFC, charset, segments), so a bad name is a usage error naming the rule
 * before anything is sent; it goes on the wire percent-encoded (every byte
 * but ASCII letters, digits, '-', '.', '_' and '/'), the form the wall's
 * token prefixes are written in. The capability token comes from
 * --token-file FILE or RON_TOKEN, never from the command line (every local
 * user can read a process's arguments), and is never printed.
 *
 * Plain HTTP by default (a loopback gateway); --ca FILE or --insecure speak
 * TLS 1.3 with the node's client policy (tls_client_new), the certificate
 * checked against the host dialled. Blocking sockets with deadlines
 * (--timeout): a tool, not an event loop. The answer's JSON is printed on
 * stdout; a refusal's envelope message on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "core/auth/captoken.h"
#include "core/dht/name.h"
#include "core/tls.h"
#include "core/tor/onion.h"
#include "lib/b3.h"
#include "node/node.h"

#define NAME_CLI_EXIT_OK       0
#define NAME_CLI_EXIT_FAIL     1   /* network, TLS, a refusal by the node */
#define NAME_CLI_EXIT_USAGE    2
#define NAME_CLI_TIMEOUT_S     30u
#define NAME_CLI_TIMEOUT_MAX_S 3600u
#define NAME_CLI_HOST_MAX      256u
#define NAME_CLI_PATH_MAX      (3u * NAME_MAX_LEN + 32u)     /* "/n/" + %XX per byte + query */
#define NAME_CLI_REQ_MAX       (NAME_CLI_PATH_MAX + CAPTOKEN_MAX_TOKEN + 512u)
#define NAME_CLI_REPLY_MAX     (256u * 1024u)               /* a history of 64 records fits */

static const char name_cli_usage[] =
	"usage: macronode name publish NAME b3:CID --gateway HOST:PORT [options]\n"
	"       macronode name resolve NAME --gateway HOST:PORT [--history] [options]\n"
	"\n"
	"Publish a name for an object, or resolve a name, through a node's gateway\n"
	"(PUT / GET /n/NAME, docs/api.md \"Names\"). Prints the record as JSON:\n"
	"{\"name\",\"cid\",\"seq\",\"node_id\"} (with --history, every record kept).\n"
	"\n"
	"options:\n"
	"  --gateway HOST:PORT  the node's gateway (required)\n"
	"  --token-file FILE    capability token (first line); else env RON_TOKEN;\n"
	"                       publish needs one whose scope covers /n/NAME\n"
	"  --history            resolve: every record kept, oldest first\n"
	"  --ca FILE            speak TLS; trust the gateway's certificate from FILE\n"
	"  --insecure           speak TLS without checking the certificate (tests)\n"
	"  --timeout SECONDS    deadline of each network step (default 30)\n"
	"  -h, --help           this text\n"
	"\n"
	"Names: 1..255 bytes of UTF-8 in NFC; letters, digits, combining marks,\n"
	"'-', '.', '_'; segments separated by '/', none empty, \".\" or \"..\"\n"
	"(docs/names.md). Exit codes: 0 ok, 1 refused or failed, 2 usage.\n";

typedef struct name_cli {
	const char *cmd;          /* "publish" / "resolve" */
	const char *name;
	const char *cid;
	const char *gateway;
	const char *ca;
	const char *token_file;
	bool        insecure;
	bool        tls;
	bool        history;
	unsigned    timeout_s;
	char        token[CAPTOKEN_MAX_TOKEN + 1];
	int         fd;
	SSL_CTX    *ctx;
	SSL        *ssl;
} name_cli;

__attribute__((format(printf, 3, 4)))
static int (name_cli_err)(const name_cli *c, int rc, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "macronode name %s: ", c->cmd ? c->cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return rc;
}
#ifdef __clang_analyzer__
/* The static analyzer (make lint) does not inline variadic calls: show it
 * the status, or it walks on past a refused command line. */
#define name_cli_err(c, rc, ...) ({ (void)(name_cli_err)(c, rc, __VA_ARGS__); (rc); })
#endif

/* ---- arguments ------------------------------------------------------------- */

static int name_cli_load_token(name_cli *c)
{
	const char *env = getenv("RON_TOKEN");
	FILE *f;

	if (c->token_file) {
		if (!(f = fopen(c->token_file, "r")))
			return name_cli_err(c, NAME_CLI_EXIT_USAGE, "--token-file %s: %s", c->token_file,
			                    strerror(errno));
		if (!fgets(c->token, sizeof c->token, f))
			c->token[0] = '\0';
		fclose(f);
	} else if (env) {
		if (strlen(env) >= sizeof c->token)
			return name_cli_err(c, NAME_CLI_EXIT_USAGE, "RON_TOKEN: longer than %d characters",
			                    CAPTOKEN_MAX_TOKEN);
		snprintf(c->token, sizeof c->token, "%s", env);
	}
	c->token[strcspn(c->token, "\r\n")] = '\0';
	if ((c->token_file || env) && !c->token[0])
		return name_cli_err(c, NAME_CLI_EXIT_USAGE, "%s: empty capability token",
		                    c->token_file ? c->token_file : "RON_TOKEN");
	return 0;
}

static int name_cli_opt(name_cli *c, int ch, const char *arg)
{
	char *end;
	unsigned long t;

	switch (ch) {
	case 'g': c->gateway = arg; return 0;
	case 'T': c->token_file = arg; return 0;
	case 'c': c->ca = arg; c->tls = true; return 0;
	case 'k': c->insecure = true; c->tls = true; return 0;
	case 'H': c->history = true; return 0;
	case 't':
		errno = 0;
		t = strtoul(arg, &end, 10);
		if (errno || *end || end == arg || t == 0 || t > NAME_CLI_TIMEOUT_MAX_S)
			return name_cli_err(c, NAME_CLI_EXIT_USAGE, "--timeout %s: expected 1..3600 seconds",
			                    arg);
		c->timeout_s = (unsigned)t;
		return 0;
	case 'x':
		return name_cli_err(c, NAME_CLI_EXIT_USAGE, "--token: a token on the command line is "
		                    "visible to every local user; use --token-file FILE or RON_TOKEN");
	default:
		return name_cli_err(c, NAME_CLI_EXIT_USAGE, "unknown or incomplete option (see --help)");
	}
}

/* Check what is known before anything is sent. */
static int name_cli_check(name_cli *c)
{
	char msg[NAME_MSG_MAX];
	uint8_t id[B3_OUT_LEN];
	size_t want = strcmp(c->cmd, "publish") == 0 ? 2 : 1;

	if (!c->name || (want == 2 && !c->cid)) {
		(void)name_cli_err(c, 0, "missing %s (see --help)", !c->name ? "NAME" : "b3:CID");
		return NAME_CLI_EXIT_USAGE;
	}
	if (!c->gateway) {
		(void)name_cli_err(c, 0, "missing --gateway HOST:PORT");
		return NAME_CLI_EXIT_USAGE;
	}
	if (c->insecure && c->ca)
		return name_cli_err(c, NAME_CLI_EXIT_USAGE, "--insecure and --ca exclude each other");
	if (c->history && want == 2)
		return name_cli_err(c, NAME_CLI_EXIT_USAGE, "--history is for resolve");
	if (name_check(c->name, strlen(c->name), msg, sizeof msg) != NAME_OK)
		return name_cli_err(c, NAME_CLI_EXIT_USAGE, "%s", msg);
	if (c->cid && b3_cid_parse(c->cid, strlen(c->cid), id) != 0)
		return name_cli_err(c, NAME_CLI_EXIT_USAGE, "%s: want b3:<64 lowercase hex>", c->cid);
	return name_cli_load_token(c);
}

/* 0 = run, 0x100 = --help printed, else an exit code. */
static int name_cli_parse(name_cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "gateway", required_argument, NULL, 'g' }, { "token-file", required_argument, NULL, 'T' },
		{ "token", required_argument, NULL, 'x' }, { "ca", required_argument, NULL, 'c' },
		{ "insecure", no_argument, NULL, 'k' }, { "history", no_argument, NULL, 'H' },
		{ "timeout", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char **pos[2] = { &c->name, &c->cid };
	size_t npos = 0, maxpos = strcmp(c->cmd, "publish") == 0 ? 2 : 1;
	int ch, rc;

	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:h", opts, NULL)) != -1 || optind < argc) {
		if (ch == -1) {   /* a positional argument */
			if (npos == maxpos)
				return name_cli_err(c, NAME_CLI_EXIT_USAGE, "unexpected argument '%s'",
				                    argv[optind]);
			*pos[npos++] = argv[optind++];
			continue;
		}
		if (ch == 'h') {
			fputs(name_cli_usage, stdout);
			return 0x100;
		}
		if (ch == '?' || ch == ':')
			return name_cli_err(c, NAME_CLI_EXIT_USAGE, "unknown or incomplete option '%s'",
			                    argv[optind - 1]);
		if ((rc = name_cli_opt(c, ch, optarg)) != 0)
			return rc;
	}
	return name_cli_check(c);
}

/* ---- transport ------------------------------------------------------------- */

static const char *name_cli_ssl_reason(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();

	if (!e)
		return errno ? strerror(errno) : "connection closed";
	ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	return buf;
}

/* "host:port" or "[v6]:port". */
static int name_cli_split(const char *gw, char *host, char *port)
{
	const char *colon = strrchr(gw, ':');
	size_t hl;

	if (!colon || colon == gw || !colon[1] || strlen(colon + 1) > 5)
		return -1;
	hl = (size_t)(colon - gw);
	if (gw[0] == '[') {
		if (hl < 3 || gw[hl - 1] != ']')
			return -1;
		gw++;
		hl -= 2;
	}
	if (hl >= NAME_CLI_HOST_MAX)
		return -1;
	memcpy(host, gw, hl);
	host[hl] = '\0';
	memcpy(port, colon + 1, strlen(colon + 1) + 1);
	return 0;
}

static int name_cli_dial(name_cli *c, const char *host, const char *port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	struct timeval tv = { .tv_sec = (time_t)c->timeout_s };
	int rc = getaddrinfo(host, port, &hints, &res);

	if (rc != 0)
		return name_cli_err(c, -1, "%s: %s", c->gateway, gai_strerror(rc));
	for (ai = res; ai && c->fd < 0; ai = ai->ai_next) {
		c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (c->fd < 0)
			continue;
		if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
		    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
		    connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			int e = errno;
			close(c->fd);
			c->fd = -1;
			errno = e == EINPROGRESS ? ETIMEDOUT : e;
		}
	}
	freeaddrinfo(res);
	if (c->fd < 0)
		return name_cli_err(c, -1, "connect to %s: %s", c->gateway, strerror(errno));
	return 0;
}

static int name_cli_tls(name_cli *c, const char *host)
{
	unsigned char a[sizeof(struct in6_addr)];
	bool ip = inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
	char err[512];
	long v;

	if (!(c->ctx = tls_client_new(c->ca, c->insecure, err, sizeof err)))
		return name_cli_err(c, -1, "%s", err);
	if (!(c->ssl = SSL_new(c->ctx)) || SSL_set_fd(c->ssl, c->fd) != 1 ||
	    (!ip && SSL_set_tlsext_host_name(c->ssl, host) != 1))
		return name_cli_err(c, -1, "tls: %s", name_cli_ssl_reason());
	if (!c->insecure && (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host) != 1
	                        : SSL_set1_host(c->ssl, host) != 1))
		return name_cli_err(c, -1, "tls: cannot check the name %s", host);
	errno = 0;
	if (SSL_connect(c->ssl) == 1)
		return 0;
	if ((v = SSL_get_verify_result(c->ssl)) != X509_V_OK)
		return name_cli_err(c, -1, "tls: %s: certificate not trusted: %s", c->gateway,
		                    X509_verify_cert_error_string(v));
	return name_cli_err(c, -1, "tls handshake with %s: %s", c->gateway, name_cli_ssl_reason());
}

static int name_cli_write(name_cli *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w;
		size_t done = 0;

		errno = 0;
		if (c->ssl)
			w = SSL_write_ex(c->ssl, p, n, &done) == 1 ? (ssize_t)done : -1;
		else
			w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return name_cli_err(c, -1, "send: %s", errno == EAGAIN ? "timed out"
			                    : c->ssl ? name_cli_ssl_reason() : strerror(errno));
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read to EOF (the request said Connection: close), at most cap bytes. */
static ssize_t name_cli_read_all(name_cli *c, char *buf, size_t cap)
{
	size_t got = 0;

	while (got < cap) {
		ssize_t r;
		size_t n = 0;

		errno = 0;
		if (c->ssl)
			r = SSL_read_ex(c->ssl, buf + got, cap - got, &n) == 1 ? (ssize_t)n : 0;
		else
			r = recv(c->fd, buf + got, cap - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || (r == 0 && errno == EAGAIN))
			return name_cli_err(c, -1, "receive: %s", errno == EAGAIN ? "timed out"
			                                                          : strerror(errno));
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static void name_cli_close(name_cli *c)
{
	if (c->ssl) {
		(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	ERR_clear_error();
	c->ssl = NULL;
	c->ctx = NULL;
	c->fd = -1;
}

/* ---- the exchange ------------------------------------------------------------ */

/* "/n/" + the name, every byte but [A-Za-z0-9-._/] as %XX. */
static void name_cli_path(const name_cli *c, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = (size_t)snprintf(out, cap, "/n/");

	for (const unsigned char *p = (const unsigned char *)c->name; *p && n + 4 < cap; p++) {
		bool lit = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		           (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '/';
		if (lit) {
			out[n++] = (char)*p;
		} else {
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	out[n] = '\0';
	if (c->history && n + sizeof "?history=1" <= cap)
		memcpy(out + n, "?history=1", sizeof "?history=1");
}

static int name_cli_request(name_cli *c, const char *host, char *req, size_t cap)
{
	char path[NAME_CLI_PATH_MAX], body[B3_CID_LEN + 16], auth[CAPTOKEN_MAX_TOKEN + 32] = "";
	bool put = c->cid != NULL;
	int n;

	name_cli_path(c, path, sizeof path);
	if (c->token[0])
		snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", c->token);
	snprintf(body, sizeof body, "{\"cid\":\"%s\"}", put ? c->cid : "");
	n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n"
	             "User-Agent: macronode-name\r\n",
	             put ? "PUT" : "GET", path, host, auth);
	if (n > 0 && (size_t)n < cap && put)
		n += snprintf(req + n, cap - (size_t)n, "Content-Type: application/json\r\n"
		              "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
	else if (n > 0 && (size_t)n < cap)
		n += snprintf(req + n, cap - (size_t)n, "\r\n");
	explicit_bzero(auth, sizeof auth);
	if (n < 0 || (size_t)n >= cap)
		return name_cli_err(c, -1, "internal: the request does not fit");
	return n;
}

/* Status line and body of the answer in buf (NUL-terminated). */
static int name_cli_answer(name_cli *c, char *buf)
{
	char *body = strstr(buf, "\r\n\r\n");
	int status = 0;
	json_t *j;

	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || !body || status < 100 || status > 599)
		return name_cli_err(c, NAME_CLI_EXIT_FAIL, "%s: no HTTP answer (not a macronode gateway?)",
		                    c->gateway);
	body += 4;
	if (status == 200 || status == 201) {
		printf("%s\n", body);
		return NAME_CLI_EXIT_OK;
	}
	j = json_loads(body, 0, NULL);
	const char *code = j ? json_string_value(json_object_get(j, "code")) : NULL;
	const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;
	(void)name_cli_err(c, NAME_CLI_EXIT_FAIL, "%d %s%s%s", status, code ? code : "error",
	                   msg ? ": " : "", msg ? msg : "");
	json_decref(j);
	return NAME_CLI_EXIT_FAIL;
}

static int name_cli_run(name_cli *c)
{
	char host[NAME_CLI_HOST_MAX], port[8], req[NAME_CLI_REQ_MAX];
	char *buf = NULL;
	ssize_t got;
	int n, rc = NAME_CLI_EXIT_FAIL;

	if (name_cli_split(c->gateway, host, port) != 0)
		return name_cli_err(c, NAME_CLI_EXIT_USAGE, "--gateway %s: expected HOST:PORT", c->gateway);
	if (onion_host_is_onion(host))   /* no DNS outside tor; this command has no tor route */
		return name_cli_err(c, NAME_CLI_EXIT_USAGE, "--gateway %s: an onion address, and "
		                    "macronode name does not go through tor (no DNS outside tor)",
		                    c->gateway);
	if (name_cli_dial(c, host, port) != 0 || (c->tls && name_cli_tls(c, host) != 0))
		goto out;
	n = name_cli_request(c, host, req, sizeof req);
	if (n < 0 || name_cli_write(c, req, (size_t)n) != 0)
		goto out;
	if (!(buf = malloc(NAME_CLI_REPLY_MAX + 1))) {
		(void)name_cli_err(c, 0, "out of memory");
		goto out;
	}
	if ((got = name_cli_read_all(c, buf, NAME_CLI_REPLY_MAX)) < 0)
		goto out;
	buf[got] = '\0';
	rc = name_cli_answer(c, buf);
out:
	explicit_bzero(req, sizeof req);
	free(buf);
	name_cli_close(c);
	return rc;
}

int name_cli_main(int argc, char **argv)
{
	name_cli c = { .fd = -1, .timeout_s = NAME_CLI_TIMEOUT_S };
	int rc;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(name_cli_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? NAME_CLI_EXIT_USAGE : NAME_CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "publish") != 0 && strcmp(argv[1], "resolve") != 0) {
		fprintf(stderr, "macronode name: unknown subcommand '%s' (publish|resolve)\n", argv[1]);
		return NAME_CLI_EXIT_USAGE;
	}
	c.cmd = argv[1];
	rc = name_cli_parse(&c, argc - 1, argv + 1);
	if (rc == 0x100)
		rc = NAME_CLI_EXIT_OK;
	else if (rc == 0)
		rc = name_cli_run(&c);
	explicit_bzero(c.token, sizeof c.token);
	return rc;
}
