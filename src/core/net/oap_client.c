/*
 * oap_client.c — the peer plane's OAP/1 client (oap_client.h).
 *
 * States: CONNECT (a non-blocking connect, its own deadline) → HANDSHAKE
 * (the transport's, core/net/conn) → HELLO (our HELLO sent, its answer
 * awaited under frame_ms) → READY (streams) → DEAD (failed or closed: one
 * on_error, then nothing). The struct is freed only at a safe point: from
 * the transport's on_close when it has one, else from our defer event, so
 * a callback may call oap_client_free and the code that called it still
 * finds the struct (marked freed) when the callback returns.
 */
#include "core/net/oap_client.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config/config.h"
#include "core/net/conn.h"
#include "core/proto/oap.h"
#include "lib/b3.h"
#include "mn_build.h"
#if MN_TOR
#include "core/tor/onion.h"
#include "core/tor/socks5.h"
#endif

#define OCL_APP_HELLO    0x0000u
#define OCL_APP_OBJECTS  0x0001u
#define OCL_CORR_HELLO   1u
#define OCL_HELLO        "{\"ua\":\"macronode-peer\"}"
#define OCL_LINGER_MS    0u

typedef enum ocl_state {
	OCL_CONNECT = 0, OCL_HANDSHAKE, OCL_HELLO_WAIT, OCL_READY, OCL_DEAD,
} ocl_state;

struct oap_call {
	oap_client  *c;
	oap_call    *next;
	uint64_t     corr;
	bool         started;    /* its RESP|START has arrived */
	bool         cancelled;  /* frames dropped until END */
	oap_call_cbs cbs;
	void        *arg;
};

struct oap_client {
	struct event_base      *base;
	tls_peer               *peer;       /* borrowed */
	conn                   *t;          /* the transport, from HANDSHAKE on */
	struct ssl_st          *ssl;        /* borrowed from t: the refusal's words */
	struct event           *conn_ev;    /* connect wait */
	struct event           *defer;      /* deferred error report / free */
	int                     fd;         /* during CONNECT */
	struct sockaddr_storage sa;
	unsigned                salen;
	uint8_t                 pin[IDENTITY_ID_LEN];
	oap_client_opts         o;
	oap_client_cbs          cbs;
	void                   *arg;
	ocl_state               state;
	bool                    freed;      /* the owner let go: free at the safe point */
	bool                    paused;
	bool                    progress;   /* bytes arrived since the deadline was armed */
	bool                    in_process;
	oap_client_error        pending;    /* to report from the defer event */
	char                    detail[OAP_CLIENT_DETAIL_MAX];
	oap_call               *calls;
	unsigned                ncalls;
	uint64_t                next_corr;
	char                    onion[OAP_CLIENT_HOST_MAX]; /* "" or the onion name dialed via SOCKS5 */
	uint16_t                onion_port;
#if MN_TOR
	struct socks5_dial     *socks;      /* during the SOCKS5 exchange */
#endif
};

static const char *const ocl_errors[] = {
	[OAP_CLIENT_OK] = "ok", [OAP_CLIENT_CONNECT] = "connect", [OAP_CLIENT_TLS] = "tls",
	[OAP_CLIENT_PIN] = "pin", [OAP_CLIENT_TIMEOUT] = "timeout",
	[OAP_CLIENT_PROTOCOL] = "protocol", [OAP_CLIENT_CLOSED] = "closed",
	[OAP_CLIENT_NOMEM] = "nomem",
};

const char *oap_client_error_name(oap_client_error e)
{
	return (unsigned)e < sizeof ocl_errors / sizeof ocl_errors[0] ? ocl_errors[e] : "unknown";
}

/* ---- calls ---------------------------------------------------------------- */

static oap_call *ocl_find(oap_client *c, uint64_t corr)
{
	for (oap_call *k = c->calls; k; k = k->next)
		if (k->corr == corr)
			return k;
	return NULL;
}

static void ocl_unlink(oap_client *c, oap_call *call)
{
	for (oap_call **pp = &c->calls; *pp; pp = &(*pp)->next) {
		if (*pp == call) {
			*pp = call->next;
			c->ncalls--;
			return;
		}
	}
}

static void ocl_free_calls(oap_client *c)
{
	while (c->calls) {
		oap_call *k = c->calls;

		c->calls = k->next;
		free(k);
	}
	c->ncalls = 0;
}

/* An answer is still owed (the progress deadline runs): the HELLO's, or
 * any open stream's (cancelled ones still owe their END). */
static bool ocl_awaiting(const oap_client *c)
{
	return c->state == OCL_HELLO_WAIT || c->calls != NULL;
}

/* ---- failure -------------------------------------------------------------- */

/* Report once and go DEAD: the calls die with the connection. */
static void ocl_fail(oap_client *c, oap_client_error e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void ocl_fail(oap_client *c, oap_client_error e, const char *fmt, ...)
{
	va_list ap;

	if (c->state == OCL_DEAD || c->freed)
		return;
	c->state = OCL_DEAD;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof c->detail, fmt, ap);
	va_end(ap);
	if (c->t)
		conn_close(c->t, false);
	if (c->cbs.on_error)
		c->cbs.on_error(c->arg, e, c->detail);
	if (!c->freed)
		ocl_free_calls(c);
}

/* A failure found inside oap_client_new or outside any callback of ours:
 * reported from the defer event. */
static void ocl_fail_later(oap_client *c, oap_client_error e, const char *detail)
{
	c->pending = e;
	snprintf(c->detail, sizeof c->detail, "%s", detail);
	event_active(c->defer, EV_TIMEOUT, 1);
}

static void ocl_destroy(oap_client *c)
{
	ocl_free_calls(c);
#if MN_TOR
	socks5_dial_free(c->socks);
#endif
	if (c->fd >= 0)
		close(c->fd);
	if (c->conn_ev)
		event_free(c->conn_ev);
	if (c->defer)
		event_free(c->defer);
	free(c);
}

static void on_defer_ev(evutil_socket_t fd, short what, void *arg)
{
	oap_client *c = arg;

	(void)fd;
	(void)what;
	if (c->freed) {
		if (!c->t)
			ocl_destroy(c);
		return;
	}
	if (c->pending != OAP_CLIENT_OK) {
		char detail[OAP_CLIENT_DETAIL_MAX];
		oap_client_error e = c->pending;

		c->pending = OAP_CLIENT_OK;
		snprintf(detail, sizeof detail, "%s", c->detail);
		ocl_fail(c, e, "%s", detail);
	}
}

/* ---- frames out ----------------------------------------------------------- */

static int ocl_send(oap_client *c, const oap_frame *f)
{
	struct evbuffer *out = conn_output(c->t);
	struct evbuffer_iovec v;
	size_t need = oap_encoded_len(f);
	ssize_t n;

	if (evbuffer_reserve_space(out, (ev_ssize_t)need, &v, 1) < 1 || v.iov_len < need)
		return -1;
	n = oap_encode(f, v.iov_base, v.iov_len);
	if (n < 0)
		return -1;
	v.iov_len = (size_t)n;
	return evbuffer_commit_space(out, &v, 1) == 0 ? 0 : -1;
}

/* The progress deadline: armed while an answer is awaited and we read. */
static void ocl_update(oap_client *c)
{
	if (c->state == OCL_DEAD || c->freed || !c->t || !conn_is_open(c->t))
		return;
	conn_read(c->t, !c->paused);
	if (c->paused || !ocl_awaiting(c)) {
		conn_disarm(c->t);
		return;
	}
	if (c->progress || !conn_is_armed(c->t)) {
		c->progress = false;
		conn_arm(c->t, c->o.frame_ms);
	}
}

oap_call *oap_client_start(oap_client *c, uint16_t verb, const char *params, const char *cap,
                           const oap_call_cbs *cbs, void *arg)
{
	size_t plen = params ? strlen(params) : 0, clen = cap ? strlen(cap) : 0;
	oap_frame f = { .flags = OAP_F_REQ | OAP_F_START | OAP_F_END, .code = verb,
	                .app_proto_id = OCL_APP_OBJECTS, .payload = (const uint8_t *)params,
	                .payload_len = plen, .cap = (const uint8_t *)cap, .cap_size = clen };
	oap_call *k;

	if (!c || c->freed || c->state != OCL_READY || c->ncalls >= OAP_CLIENT_MAX_CALLS ||
	    plen > OAP_CLIENT_PARAMS_MAX || clen > OAP_CLIENT_CAP_MAX || !(k = calloc(1, sizeof *k)))
		return NULL;
	k->c = c;
	k->corr = f.corr_id = c->next_corr++;
	k->cbs = *cbs;
	k->arg = arg;
	if (ocl_send(c, &f) != 0) {
		free(k);
		ocl_fail(c, OAP_CLIENT_NOMEM, "cannot queue a request frame");
		return NULL;
	}
	k->next = c->calls;
	c->calls = k;
	c->ncalls++;
	ocl_update(c);
	return k;
}

void oap_call_cancel(oap_call *call)
{
	if (call)
		call->cancelled = true;
}

/* ---- frames in ------------------------------------------------------------ */

static int ocl_on_hello(oap_client *c, const oap_frame *f)
{
	if (f->app_proto_id != OCL_APP_HELLO || f->corr_id != OCL_CORR_HELLO) {
		ocl_fail(c, OAP_CLIENT_PROTOCOL, "first answer is not the HELLO answer");
		return -1;
	}
	if (f->code != 200) {
		ocl_fail(c, OAP_CLIENT_PROTOCOL, "HELLO refused with %u", f->code);
		return -1;
	}
	c->state = OCL_READY;
	c->progress = true;
	if (c->cbs.on_ready)
		c->cbs.on_ready(c->arg);
	return 0;
}

/* End of a stream: unlinked before its callback, freed after it. */
static void ocl_call_end(oap_client *c, oap_call *k)
{
	ocl_unlink(c, k);
	if (!k->cancelled && k->cbs.on_end)
		k->cbs.on_end(k->arg);
	free(k);
}

static int ocl_on_stream(oap_client *c, const oap_frame *f)
{
	oap_call *k = ocl_find(c, f->corr_id);
	uint8_t *plain = NULL;
	const uint8_t *p = f->payload;
	size_t n = f->payload_len;

	if (!k || f->app_proto_id != OCL_APP_OBJECTS) {
		ocl_fail(c, OAP_CLIENT_PROTOCOL, "answer on an unknown stream %" PRIu64, f->corr_id);
		return -1;
	}
	if ((f->flags & OAP_F_START) ? k->started : !k->started) {
		ocl_fail(c, OAP_CLIENT_PROTOCOL, "stream %" PRIu64 ": %s", f->corr_id,
		         k->started ? "a second START" : "data before START");
		return -1;
	}
	if ((f->flags & OAP_F_COMP) && n &&
	    oap_decompress(f->payload, n, OAP_COMP_MAX_OUT, &plain, &n) != 0) {
		ocl_fail(c, OAP_CLIENT_PROTOCOL, "a compressed frame past the caps or corrupt");
		return -1;
	}
	if (plain)
		p = plain;
	if (f->flags & OAP_F_START) {
		k->started = true;
		if (!k->cancelled && k->cbs.on_start)
			k->cbs.on_start(k->arg, f->code, p, n);
	} else if (n && !k->cancelled && k->cbs.on_data) {
		k->cbs.on_data(k->arg, p, n);
	}
	free(plain);
	if ((f->flags & OAP_F_END) && !c->freed && c->state == OCL_READY)
		ocl_call_end(c, k);
	return 0;
}

static int ocl_on_frame(oap_client *c, const oap_frame *f)
{
	if (!(f->flags & OAP_F_RESP) || (f->flags & OAP_F_REQ)) {
		ocl_fail(c, OAP_CLIENT_PROTOCOL, "an answer frame must be flagged RESP");
		return -1;
	}
	return c->state == OCL_HELLO_WAIT ? ocl_on_hello(c, f) : ocl_on_stream(c, f);
}

/* 1: a frame handled; 0: need more bytes; -1: failed. */
static int ocl_next_frame(oap_client *c)
{
	struct evbuffer *in = conn_input(c->t);
	size_t avail = evbuffer_get_length(in), n = avail < OAP_HDR_LEN ? avail : OAP_HDR_LEN;
	uint8_t hdr[OAP_HDR_LEN], *buf;
	oap_frame f;
	oap_status st;
	size_t used = 0;
	int r;

	if (n == 0 || evbuffer_copyout(in, hdr, n) != (ev_ssize_t)n)
		return 0;
	st = oap_decode_header(hdr, n, OAP_MAX_FRAME, &f);
	if (st == OAP_NEED_MORE || (st == OAP_OK && avail < f.len))
		return 0;
	if (st == OAP_OK) {   /* whole: decode it in one piece (pullup fails only for want of memory) */
		buf = evbuffer_pullup(in, (ev_ssize_t)f.len);
		st = buf ? oap_decode(buf, f.len, OAP_MAX_FRAME, &f, &used) : OAP_E_TRUNCATED_HEADER;
	}
	if (st != OAP_OK) {
		ocl_fail(c, OAP_CLIENT_PROTOCOL, "bad frame from the peer: %s", oap_status_str(st));
		return -1;
	}
	r = ocl_on_frame(c, &f);
	(void)evbuffer_drain(in, used);   /* the transport outlives any callback */
	return r < 0 ? -1 : 1;
}

static void ocl_process(oap_client *c)
{
	if (c->in_process)
		return;
	c->in_process = true;
	while (!c->freed && !c->paused && c->t && conn_is_open(c->t) &&
	       (c->state == OCL_HELLO_WAIT || c->state == OCL_READY))
		if (ocl_next_frame(c) <= 0)
			break;
	c->in_process = false;
	ocl_update(c);
}

void oap_client_pause(oap_client *c, bool paused)
{
	if (!c || c->freed || c->paused == paused)
		return;
	c->paused = paused;
	c->progress = true;   /* the deadline restarts from the resume */
	if (c->t && conn_is_open(c->t)) {
		ocl_update(c);
		if (!paused)
			conn_schedule(c->t);   /* frames already buffered */
	}
}

/* ---- transport callbacks -------------------------------------------------- */

static void on_open(void *arg)
{
	oap_client *c = arg;
	oap_frame f = { .flags = OAP_F_REQ, .app_proto_id = OCL_APP_HELLO,
	                .corr_id = OCL_CORR_HELLO, .payload = (const uint8_t *)OCL_HELLO,
	                .payload_len = sizeof OCL_HELLO - 1 };

	if (c->freed)
		return;
	c->state = OCL_HELLO_WAIT;
	if (ocl_send(c, &f) != 0) {
		ocl_fail(c, OAP_CLIENT_NOMEM, "cannot queue HELLO");
		return;
	}
	ocl_process(c);
}

static void on_read(void *arg)
{
	oap_client *c = arg;

	c->progress = true;
	ocl_process(c);
}

static void on_event(void *arg, unsigned what)
{
	oap_client *c = arg;

	if (what & CONN_EV_TIMEOUT)
		ocl_fail(c, OAP_CLIENT_TIMEOUT, "the peer did not read our frames");
	else if (what & CONN_EV_ERROR)
		ocl_fail(c, OAP_CLIENT_CLOSED, "connection error");
	else
		ocl_fail(c, OAP_CLIENT_CLOSED, "the peer closed the connection");
}

static void on_timer(void *arg)
{
	oap_client *c = arg;

	ocl_fail(c, OAP_CLIENT_TIMEOUT, "no %s from the peer within %" PRIu64 " ms",
	         c->state == OCL_HELLO_WAIT ? "HELLO answer" : "progress", c->o.frame_ms);
}

static void on_defer(void *arg)
{
	ocl_process(arg);
}

static void on_close(void *arg)
{
	oap_client *c = arg;

	conn_free(c->t);
	c->t = NULL;
	c->ssl = NULL;
	if (c->freed) {
		ocl_destroy(c);
		return;
	}
	ocl_fail(c, OAP_CLIENT_CLOSED, "connection closed");
}

/* Our identity check refused the peer, or TLS itself failed. */
static void on_tls_fail(void *arg, bool timeout, const char *reason)
{
	oap_client *c = arg;
	uint8_t got[IDENTITY_ID_LEN];
	char want_t[IDENTITY_ID_TEXT], got_t[IDENTITY_ID_TEXT];
	bool has;
	tls_peer_refusal r = tls_peer_ssl_refusal(c->ssl, got, &has);

	identity_id_format(c->pin, want_t);
	if (r == TLS_PEER_PIN && has) {
		identity_id_format(got, got_t);
		ocl_fail(c, OAP_CLIENT_PIN, "peer is node %s, not %s", got_t, want_t);
	} else if (r != TLS_PEER_OK) {
		ocl_fail(c, OAP_CLIENT_PIN, "peer presents no identity of node %s (%s)", want_t,
		         tls_peer_refusal_name(r));
	} else {
		ocl_fail(c, timeout ? OAP_CLIENT_TIMEOUT : OAP_CLIENT_TLS, "tls handshake: %s", reason);
	}
}

static const conn_ops ocl_ops = {
	.on_open = on_open, .on_read = on_read, .on_event = on_event, .on_timer = on_timer,
	.on_defer = on_defer, .on_close = on_close, .on_tls_fail = on_tls_fail,
};

/* ---- connect -------------------------------------------------------------- */

static void ocl_begin_tls(oap_client *c)
{
	conn_opts o = {
		.ops = &ocl_ops, .arg = c, .read_max = OAP_MAX_FRAME, .write_low = 0,
		.write_ms = c->o.write_ms, .handshake_ms = c->o.handshake_ms,
		.linger_ms = OCL_LINGER_MS,
	};
	struct ssl_st *ssl = tls_peer_ssl_new(c->peer, c->pin);
	int fd = c->fd;

	c->fd = -1;
	if (!ssl) {
		close(fd);
		ocl_fail(c, OAP_CLIENT_NOMEM, "cannot make a TLS session");
		return;
	}
	c->t = conn_dial_new(c->base, fd, (const struct sockaddr *)&c->sa, (socklen_t)c->salen, ssl, &o);
	if (!c->t) {
		ocl_fail(c, OAP_CLIENT_NOMEM, "cannot make the connection");
		return;
	}
	c->ssl = ssl;
	c->state = OCL_HANDSHAKE;
	(void)conn_start(c->t);
}

#if MN_TOR
/* The tunnel through tor is up (or not): then TLS with the same pin as any
 * peer, so an onion never stands in for the node id. The proxy's words
 * about the onion's circuit stay out of the detail but for its code. */
static void on_socks_done(void *arg, socks5_result r, uint8_t rep)
{
	oap_client *c = arg;

	socks5_dial_free(c->socks);
	c->socks = NULL;
	if (r == SOCKS5_OK) {
		ocl_begin_tls(c);
		return;
	}
	if (r == SOCKS5_E_TIMEOUT)
		ocl_fail(c, OAP_CLIENT_CONNECT, "tor socks: no tunnel within %" PRIu64 " ms",
		         c->o.connect_ms);
	else if (r == SOCKS5_E_REPLY)
		ocl_fail(c, OAP_CLIENT_CONNECT, "tor socks: %s (0x%02x)", socks5_rep_name(rep), rep);
	else
		ocl_fail(c, OAP_CLIENT_CONNECT, "tor socks: %s", socks5_result_name(r));
}

/* Reaching an onion service takes descriptor fetches and two circuits:
 * the connect deadline covers the whole exchange, at least
 * OAP_CLIENT_ONION_MS. */
static void ocl_begin_socks(oap_client *c)
{
	uint64_t ms = c->o.connect_ms > OAP_CLIENT_ONION_MS ? c->o.connect_ms : OAP_CLIENT_ONION_MS;

	c->socks = socks5_dial_new(c->base, c->fd, c->onion, c->onion_port, ms, on_socks_done, c);
	if (!c->socks)
		ocl_fail(c, OAP_CLIENT_NOMEM, "cannot start the socks exchange");
}
#endif

static void on_connected(evutil_socket_t fd, short what, void *arg)
{
	oap_client *c = arg;
	int err = 0;
	socklen_t len = sizeof err;

	if (what & EV_TIMEOUT) {
		ocl_fail(c, OAP_CLIENT_CONNECT, "connect timed out after %" PRIu64 " ms", c->o.connect_ms);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err) {
		ocl_fail(c, OAP_CLIENT_CONNECT, "connect: %s", strerror(err));
		return;
	}
#if MN_TOR
	if (c->onion[0]) {
		ocl_begin_socks(c);
		return;
	}
#endif
	ocl_begin_tls(c);
}

static void ocl_connect(oap_client *c)
{
	struct timeval tv = { (time_t)(c->o.connect_ms / 1000u),
	                      (suseconds_t)((c->o.connect_ms % 1000u) * 1000u) };
	char why[OAP_CLIENT_DETAIL_MAX];

	c->fd = socket(c->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || (connect(c->fd, (const struct sockaddr *)&c->sa, (socklen_t)c->salen) != 0 &&
	                  errno != EINPROGRESS)) {
		snprintf(why, sizeof why, "connect: %s", strerror(errno));
		ocl_fail_later(c, OAP_CLIENT_CONNECT, why);
		return;
	}
	c->conn_ev = event_new(c->base, c->fd, EV_WRITE, on_connected, c);
	if (!c->conn_ev || event_add(c->conn_ev, &tv) != 0)
		ocl_fail_later(c, OAP_CLIENT_NOMEM, "cannot wait for connect");
}

/* Where to connect: addr itself, or tor's SOCKS port for an onion (whose
 * name then goes to tor alone: no DNS here). */
static int ocl_target(oap_client *c, const char *addr, const oap_client_opts *o, char *err,
                      size_t errlen)
{
	bool lo;

	if (config_parse_addr(addr, &c->sa, &c->salen, &lo) == 0)
		return 0;
#if MN_TOR
	if (onion_addr_split(addr, c->onion, sizeof c->onion, &c->onion_port) == 0) {
		if (!o || !o->socks || config_parse_addr(o->socks, &c->sa, &c->salen, &lo) != 0) {
			snprintf(err, errlen, "%s: an onion address, and no tor SOCKS port to reach it", addr);
			return -1;
		}
		return 0;
	}
#else
	(void)o;
#endif
	snprintf(err, errlen, "%s: expected a numeric ip:port%s", addr,
	         MN_TOR ? " or an onion address" : "");
	return -1;
}

static uint64_t ocl_ms(uint64_t v)
{
	return v ? v : OAP_CLIENT_DEFAULT_MS;
}

oap_client *oap_client_new(struct event_base *base, tls_peer *peer, const char *addr,
                           const uint8_t pin[IDENTITY_ID_LEN], const oap_client_opts *o,
                           const oap_client_cbs *cbs, void *arg, char *err, size_t errlen)
{
	oap_client *c = calloc(1, sizeof *c);
	
	if (!c || !(c->defer = event_new(base, -1, 0, on_defer_ev, c))) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->fd = -1;
	if (ocl_target(c, addr, o, err, errlen) != 0) {
		ocl_destroy(c);
		return NULL;
	}
	c->base = base;
	c->peer = peer;
	memcpy(c->pin, pin, sizeof c->pin);
	c->o.connect_ms = ocl_ms(o ? o->connect_ms : 0);
	c->o.handshake_ms = ocl_ms(o ? o->handshake_ms : 0);
	c->o.frame_ms = ocl_ms(o ? o->frame_ms : 0);
	c->o.write_ms = ocl_ms(o ? o->write_ms : 0);
	c->cbs = *cbs;
	c->arg = arg;
	c->next_corr = OCL_CORR_HELLO + 1;
	ocl_connect(c);
	return c;
}

void oap_client_free(oap_client *c)
{
	if (!c || c->freed)
		return;
	c->freed = true;
	ocl_free_calls(c);
#if MN_TOR
	socks5_dial_free(c->socks);   /* no callback of it after this */
	c->socks = NULL;
#endif
	if (c->conn_ev)
		event_del(c->conn_ev);
	if (c->t)
		conn_close(c->t, true);   /* its on_close frees us */
	else
		event_active(c->defer, EV_TIMEOUT, 1);
}
