/*
 * socks5.c — SOCKS5 CONNECT by domain name (RFC 1928), for tor's SOCKS
 * port. See socks5.h.
 */
#include "core/tor/socks5.h"

#include <errno.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define SOCKS5_VERSION      5u
#define SOCKS5_METHOD_NONE  0x00u
#define SOCKS5_METHOD_NO    0xFFu   /* "no acceptable methods" */
#define SOCKS5_CMD_CONNECT  1u
#define SOCKS5_ATYP_V4      1u
#define SOCKS5_ATYP_NAME    3u
#define SOCKS5_ATYP_V6      4u

typedef enum { S5_GREET = 0, S5_METHOD, S5_REQUEST, S5_REPLY, S5_DONE } s5_state;

struct socks5_dial {
	struct event  *rd, *wr, *tm;   /* readable, writable, the one deadline */
	int            fd;
	s5_state       state;
	uint8_t        out[SOCKS5_REQUEST_MAX];
	size_t         out_len, out_off;
	uint8_t        in[SOCKS5_REPLY_MAX];
	size_t         in_len;
	uint8_t        request[SOCKS5_REQUEST_MAX];
	size_t         request_len;
	socks5_done_fn done;
	void          *arg;
};

static const char *const s5_results[] = {
	[SOCKS5_OK] = "ok", [SOCKS5_MORE] = "more", [SOCKS5_E_PROTOCOL] = "protocol",
	[SOCKS5_E_AUTH] = "auth", [SOCKS5_E_REPLY] = "reply", [SOCKS5_E_IO] = "io",
	[SOCKS5_E_TIMEOUT] = "timeout", [SOCKS5_E_NOMEM] = "nomem",
};

const char *socks5_result_name(socks5_result r)
{
	return (unsigned)r < sizeof s5_results / sizeof s5_results[0] ? s5_results[r] : "unknown";
}

const char *socks5_rep_name(uint8_t rep)
{
	switch (rep) {
	case 0x00: return "succeeded";
	case 0x01: return "general failure";
	case 0x02: return "not allowed by ruleset";
	case 0x03: return "network unreachable";
	case 0x04: return "host unreachable";
	case 0x05: return "connection refused";
	case 0x06: return "TTL expired";
	case 0x07: return "command not supported";
	case 0x08: return "address type not supported";
	/* tor's extended codes (SOCKSPort ExtendedErrors; socks-extensions.txt) */
	case 0xF0: return "onion descriptor not found";
	case 0xF1: return "onion descriptor invalid";
	case 0xF2: return "onion introduction failed";
	case 0xF3: return "onion rendezvous failed";
	case 0xF4: return "onion client authorization missing";
	case 0xF5: return "onion client authorization wrong";
	case 0xF6: return "onion address invalid";
	case 0xF7: return "onion introduction timed out";
	default:   return "unknown reply code";
	}
}

size_t socks5_encode_greeting(uint8_t out[3])
{
	out[0] = SOCKS5_VERSION;
	out[1] = 1;                  /* one method offered */
	out[2] = SOCKS5_METHOD_NONE;
	return 3;
}

ssize_t socks5_encode_connect(uint8_t *out, size_t cap, const char *host, uint16_t port)
{
	size_t hl = strnlen(host, SOCKS5_HOST_MAX + 1);

	if (hl == 0 || hl > SOCKS5_HOST_MAX || cap < 4u + 1u + hl + 2u)
		return -1;
	for (size_t i = 0; i < hl; i++)
		if ((unsigned char)host[i] <= 0x20 || (unsigned char)host[i] == 0x7f)
			return -1;
	out[0] = SOCKS5_VERSION;
	out[1] = SOCKS5_CMD_CONNECT;
	out[2] = 0;                  /* reserved */
	out[3] = SOCKS5_ATYP_NAME;
	out[4] = (uint8_t)hl;
	memcpy(out + 5, host, hl);
	out[5 + hl] = (uint8_t)(port >> 8);
	out[6 + hl] = (uint8_t)(port & 0xffu);
	return (ssize_t)(7u + hl);
}

socks5_result socks5_parse_method(const uint8_t *p, size_t n)
{
	if (n < 2)
		return n == 1 && p[0] != SOCKS5_VERSION ? SOCKS5_E_PROTOCOL : SOCKS5_MORE;
	if (p[0] != SOCKS5_VERSION || n > 2)
		return SOCKS5_E_PROTOCOL;    /* the proxy speaks before we asked */
	if (p[1] == SOCKS5_METHOD_NONE)
		return SOCKS5_OK;
	return p[1] == SOCKS5_METHOD_NO ? SOCKS5_E_AUTH : SOCKS5_E_PROTOCOL;
}

socks5_result socks5_parse_reply(const uint8_t *p, size_t n, size_t *used, uint8_t *rep)
{
	size_t need;

	*used = 0;
	*rep = 0;
	if (n >= 1 && p[0] != SOCKS5_VERSION)
		return SOCKS5_E_PROTOCOL;
	if (n >= 3 && p[2] != 0)
		return SOCKS5_E_PROTOCOL;
	if (n < 4)
		return SOCKS5_MORE;
	switch (p[3]) {
	case SOCKS5_ATYP_V4: need = 4u + 4u + 2u; break;
	case SOCKS5_ATYP_V6: need = 4u + 16u + 2u; break;
	case SOCKS5_ATYP_NAME:
		if (n < 5)
			return SOCKS5_MORE;
		need = 4u + 1u + p[4] + 2u;
		break;
	default:
		return SOCKS5_E_PROTOCOL;
	}
	if (n < need)
		return SOCKS5_MORE;
	if (n > need)
		return SOCKS5_E_PROTOCOL;    /* data before we sent any: not a tunnel we know */
	*used = need;
	*rep = p[1];
	return p[1] == 0 ? SOCKS5_OK : SOCKS5_E_REPLY;
}

/* ---- the exchange on the loop ------------------------------------------- */

/* Ends the exchange: done is the last thing that touches d. */
static void s5_finish(socks5_dial *d, socks5_result r, uint8_t rep)
{
	socks5_done_fn done = d->done;
	void *arg = d->arg;

	d->state = S5_DONE;
	(void)event_del(d->rd);
	(void)event_del(d->wr);
	(void)event_del(d->tm);
	done(arg, r, rep);
}

static void s5_queue(socks5_dial *d, const uint8_t *p, size_t n)
{
	memcpy(d->out, p, n);
	d->out_len = n;
	d->out_off = 0;
}

/* Write what is queued: 1 all sent, 0 wait for EV_WRITE, -1 failed. */
static int s5_flush(socks5_dial *d)
{
	while (d->out_off < d->out_len) {
		ssize_t w = send(d->fd, d->out + d->out_off, d->out_len - d->out_off, MSG_NOSIGNAL);
		if (w > 0) {
			d->out_off += (size_t)w;
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return 0;
		return -1;
	}
	return 1;
}

/* Read what the step may take (never past its reply's bound): 1 read some,
 * 0 nothing yet, -1 closed or failed. */
static int s5_fill(socks5_dial *d)
{
	ssize_t r = recv(d->fd, d->in + d->in_len, sizeof d->in - d->in_len, 0);

	if (r > 0) {
		d->in_len += (size_t)r;
		return 1;
	}
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	return -1;
}

static void s5_arm(socks5_dial *d, short what)
{
	(void)event_del(what == EV_READ ? d->wr : d->rd);
	(void)event_add(what == EV_READ ? d->rd : d->wr, NULL);
}

static void s5_step(socks5_dial *d);

static void on_socks_io(evutil_socket_t fd, short what, void *arg)
{
	socks5_dial *d = arg;

	(void)fd;
	if (what == EV_TIMEOUT) {
		s5_finish(d, SOCKS5_E_TIMEOUT, 0);
		return;
	}
	s5_step(d);
}

/* Greeting out, method in, CONNECT out, reply in. */
static void s5_step(socks5_dial *d)
{
	socks5_result r;
	size_t used;
	uint8_t rep;
	int st;

	for (;;) {
		if (d->state == S5_GREET || d->state == S5_REQUEST) {
			if ((st = s5_flush(d)) < 0) {
				s5_finish(d, SOCKS5_E_IO, 0);
				return;
			}
			if (st == 0) {
				s5_arm(d, EV_WRITE);
				return;
			}
			d->state = d->state == S5_GREET ? S5_METHOD : S5_REPLY;
			d->in_len = 0;
			s5_arm(d, EV_READ);
			continue;
		}
		if ((st = s5_fill(d)) < 0) {
			s5_finish(d, SOCKS5_E_IO, 0);
			return;
		}
		if (d->state == S5_METHOD) {
			r = socks5_parse_method(d->in, d->in_len);
			if (r == SOCKS5_MORE && st == 1)
				continue;
			if (r == SOCKS5_MORE)
				return;
			if (r != SOCKS5_OK) {
				s5_finish(d, r, 0);
				return;
			}
			s5_queue(d, d->request, d->request_len);
			d->state = S5_REQUEST;
			continue;
		}
		r = socks5_parse_reply(d->in, d->in_len, &used, &rep);
		if (r == SOCKS5_MORE && st == 1 && d->in_len < sizeof d->in)
			continue;
		if (r == SOCKS5_MORE && st == 0)
			return;
		s5_finish(d, r == SOCKS5_MORE ? SOCKS5_E_PROTOCOL : r, rep);
		return;
	}
}

socks5_dial *socks5_dial_new(struct event_base *base, int fd, const char *host, uint16_t port,
                             uint64_t timeout_ms, socks5_done_fn done, void *arg)
{
	socks5_dial *d = calloc(1, sizeof *d);
	struct timeval tv = { (time_t)(timeout_ms / 1000u), (suseconds_t)((timeout_ms % 1000u) * 1000u) };
	uint8_t g[3];
	ssize_t n;

	if (!d)
		return NULL;
	n = socks5_encode_connect(d->request, sizeof d->request, host, port);
	d->rd = event_new(base, fd, EV_READ | EV_PERSIST, on_socks_io, d);
	d->wr = event_new(base, fd, EV_WRITE | EV_PERSIST, on_socks_io, d);
	d->tm = event_new(base, -1, 0, on_socks_io, d);
	if (n < 0 || !d->rd || !d->wr || !d->tm || event_add(d->wr, NULL) != 0 ||
	    event_add(d->tm, &tv) != 0) {
		socks5_dial_free(d);
		return NULL;
	}
	d->request_len = (size_t)n;
	d->fd = fd;
	d->done = done;
	d->arg = arg;
	s5_queue(d, g, socks5_encode_greeting(g));
	return d;
}

void socks5_dial_free(socks5_dial *d)
{
	if (!d)
		return;
	if (d->rd)
		event_free(d->rd);
	if (d->wr)
		event_free(d->wr);
	if (d->tm)
		event_free(d->tm);
	free(d);
}
