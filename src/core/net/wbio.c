/*
 * wbio.c — the write side of a server TLS connection: an OpenSSL BIO that
 * gathers the records SSL_write makes and sends them with one send() per
 * pass of the loop instead of one per record (wbio.h).
 *
 * Records go into one linear buffer of WBIO_CAP bytes. The first record of
 * a pass schedules the flush (the event made active, so it runs after the
 * callback that is writing, in the same loop iteration); the flush sends
 * what the socket takes and, when it refuses the rest, waits for it to
 * become writable, bound by the write deadline. A full buffer tries a send
 * first, then answers "retry" (SSL_write: WANT_WRITE): libevent's own write
 * event brings the retry once the socket drains. BIO_flush (handshake
 * flights, close_notify) sends at once. Errors stick: after one, every
 * write fails and the owner is told.
 */
#include "core/net/wbio.h"

#include <errno.h>
#include <event2/event.h>
#include <openssl/bio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct wbio {
	int           fd;           /* borrowed: the bufferevent closes it */
	uint8_t      *buf;
	size_t        off, len;     /* unsent bytes: buf[off, off + len) */
	struct event *ev;           /* the flush: active now, or waiting for EV_WRITE */
	struct timeval wait;        /* the write deadline while waiting */
	bool          waiting;
	int           err;          /* sticky errno, 0 when fine */
	wbio_cb       cb;           /* drained or failed */
	void         *arg;
};

/* One BIO_METHOD for the process, made on first use (loop thread). */
static BIO_METHOD *wbio_method;

static struct wbio *wbio_of(BIO *b)
{
	return BIO_get_data(b);
}

/* Send what waits. 1: all out; 0: the socket refused some (EAGAIN); -1: error. */
static int wbio_send(struct wbio *w)
{
	while (w->len) {
		ssize_t n = send(w->fd, w->buf + w->off, w->len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			w->off += (size_t)n;
			w->len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		w->err = n < 0 ? errno : EPIPE;
		return -1;
	}
	w->off = 0;
	return 1;
}

static void wbio_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct wbio *w = arg;
	int rc;

	(void)fd;
	w->waiting = false;
	if (w->err)
		return;
	if ((what & EV_TIMEOUT) && !(what & EV_WRITE)) {
		w->err = ETIMEDOUT;
		if (w->cb)
			w->cb(w->arg, true);
		return;
	}
	rc = wbio_send(w);
	if (rc == 0) {
		w->waiting = true;
		(void)event_add(w->ev, &w->wait);
	} else if (w->cb) {
		w->cb(w->arg, rc < 0);
	}
}

static void wbio_schedule(struct wbio *w)
{
	if (!w->waiting && !event_pending(w->ev, EV_WRITE | EV_TIMEOUT, NULL))
		event_active(w->ev, EV_WRITE, 1);
}

static int wbio_write(BIO *b, const char *data, int n)
{
	struct wbio *w = wbio_of(b);
	size_t want = n > 0 ? (size_t)n : 0;

	BIO_clear_retry_flags(b);
	if (!w || w->err)
		return -1;
	if (!want)
		return 0;
	/* No room: send first, then close the gap at the front. */
	if (w->off + w->len + want > WBIO_CAP && w->len && wbio_send(w) < 0)
		return -1;
	if (!w->len) {
		w->off = 0;
	} else if (w->off + w->len + want > WBIO_CAP && w->off) {
		memmove(w->buf, w->buf + w->off, w->len);
		w->off = 0;
	}
	if (w->off + w->len + want > WBIO_CAP) {   /* the socket is full: SSL_write retries */
		wbio_schedule(w);
		BIO_set_retry_write(b);
		return -1;
	}
	memcpy(w->buf + w->off + w->len, data, want);
	w->len += want;
	wbio_schedule(w);
	return n;
}

static long wbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct wbio *w = wbio_of(b);
	int rc;

	(void)num;
	switch (cmd) {
	case BIO_C_GET_FD:   /* libevent learns the socket from the SSL's wbio */
		if (ptr)
			*(int *)ptr = w ? w->fd : -1;
		return w ? w->fd : -1;
	case BIO_CTRL_GET_CLOSE:
		return BIO_NOCLOSE;
	case BIO_CTRL_SET_CLOSE:
		return 1;
	case BIO_CTRL_WPENDING:
		return w ? (long)w->len : 0;
	case BIO_CTRL_PENDING:
		return 0;
	case BIO_CTRL_FLUSH:
		BIO_clear_retry_flags(b);
		if (!w || w->err)
			return -1;
		if ((rc = wbio_send(w)) < 0)
			return -1;
		if (rc == 0) {
			wbio_schedule(w);   /* the rest when the socket drains */
			BIO_set_retry_write(b);
			return -1;
		}
		return 1;
	default:
		return 0;
	}
}

static int wbio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static int wbio_destroy(BIO *b)
{
	struct wbio *w = b ? wbio_of(b) : NULL;

	if (w) {
		event_free(w->ev);
		free(w->buf);
		free(w);
		BIO_set_data(b, NULL);
	}
	return 1;
}

BIO *wbio_new(struct event_base *base, int fd, uint64_t write_ms)
{
	struct wbio *w;
	BIO *b;

	if (!wbio_method) {
		int type = BIO_get_new_index();

		if (type < 0 || !(wbio_method = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK, "mn-wbio")) ||
		    !BIO_meth_set_write(wbio_method, wbio_write) ||
		    !BIO_meth_set_ctrl(wbio_method, wbio_ctrl) ||
		    !BIO_meth_set_create(wbio_method, wbio_create) ||
		    !BIO_meth_set_destroy(wbio_method, wbio_destroy)) {
			BIO_meth_free(wbio_method);
			wbio_method = NULL;
			return NULL;
		}
	}
	if (!(w = calloc(1, sizeof *w)) || !(w->buf = malloc(WBIO_CAP)) ||
	    !(w->ev = event_new(base, fd, EV_WRITE, wbio_on_event, w)) ||
	    !(b = BIO_new(wbio_method))) {
		if (w) {
			if (w->ev)
				event_free(w->ev);
			free(w->buf);
		}
		free(w);
		return NULL;
	}
	w->fd = fd;
	w->wait.tv_sec = (time_t)(write_ms / 1000u);
	w->wait.tv_usec = (suseconds_t)((write_ms % 1000u) * 1000u);
	BIO_set_data(b, w);
	return b;
}

void wbio_set_cb(BIO *b, wbio_cb cb, void *arg)
{
	struct wbio *w = b ? wbio_of(b) : NULL;

	if (w) {
		w->cb = cb;
		w->arg = arg;
	}
}

size_t wbio_pending(BIO *b)
{
	struct wbio *w = b ? wbio_of(b) : NULL;

	return w ? w->len : 0;
}
