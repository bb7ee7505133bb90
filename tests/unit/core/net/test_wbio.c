/*
 * test_wbio.c — the gathering TLS write BIO (core/net/wbio.h) on a
 * socketpair: records gather and leave in one pass, in order; a full socket
 * makes writers retry and the rest leaves when it drains; a socket that
 * stays full past the deadline, or a peer that is gone, is reported once
 * and every later write fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <openssl/bio.h>

#include "core/net/wbio.h"

typedef struct fx {
	struct event_base *base;
	int                sv[2];
	BIO               *b;
	int                calls, failed;
} fx;

static void on_cb(void *arg, bool failed)
{
	fx *f = arg;

	f->calls++;
	f->failed += failed;
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);

	assert_non_null(f);
	assert_non_null(f->base = event_base_new());
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, f->sv), 0);
	assert_non_null(f->b = wbio_new(f->base, f->sv[0], 200));
	wbio_set_cb(f->b, on_cb, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;

	BIO_free(f->b);
	close(f->sv[0]);
	if (f->sv[1] >= 0)
		close(f->sv[1]);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* Read everything the peer has now (non-blocking). */
static size_t drain(fx *f, uint8_t *into, size_t room)
{
	size_t got = 0;
	ssize_t n;

	while (got < room && (n = recv(f->sv[1], into + got, room - got, MSG_DONTWAIT)) > 0)
		got += (size_t)n;
	return got;
}

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31u + seed);
}

static void test_gathers_then_sends_in_one_pass(void **state)
{
	fx *f = *state;
	uint8_t rec[3][1000], got[4000];
	int fd = -1;

	assert_int_equal(BIO_get_fd(f->b, &fd), f->sv[0]);
	assert_int_equal(fd, f->sv[0]);
	for (int i = 0; i < 3; i++) {
		pattern(rec[i], sizeof rec[i], (unsigned)i);
		assert_int_equal(BIO_write(f->b, rec[i], sizeof rec[i]), (int)sizeof rec[i]);
	}
	assert_int_equal(wbio_pending(f->b), 3000);
	assert_int_equal(BIO_wpending(f->b), 3000);
	assert_int_equal(drain(f, got, sizeof got), 0);   /* nothing before the pass ends */
	(void)event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(wbio_pending(f->b), 0);
	assert_int_equal(f->calls, 1);
	assert_int_equal(f->failed, 0);
	assert_int_equal(drain(f, got, sizeof got), 3000);
	for (int i = 0; i < 3; i++)
		assert_memory_equal(got + i * 1000, rec[i], 1000);
	/* BIO_flush sends at once. */
	assert_int_equal(BIO_write(f->b, rec[0], 10), 10);
	assert_int_equal(BIO_flush(f->b), 1);
	assert_int_equal(wbio_pending(f->b), 0);
	assert_int_equal(drain(f, got, sizeof got), 10);
}

/* The socket refuses: writes past WBIO_CAP ask for a retry, never lose or
 * reorder a byte; draining the peer lets everything out. */
static void test_full_socket_retries_in_order(void **state)
{
	fx *f = *state;
	enum { REC = 16384, TOTAL = 64 * REC };
	uint8_t *src = malloc(TOTAL), *dst = malloc(TOTAL);
	size_t sent = 0, got = 0;
	int retries = 0, rounds = 0;

	assert_non_null(src);
	assert_non_null(dst);
	pattern(src, TOTAL, 7);
	while (got < TOTAL && rounds++ < 100000) {
		while (sent < TOTAL) {
			int n = BIO_write(f->b, src + sent, REC);

			if (n < 0) {
				assert_true(BIO_should_retry(f->b));
				assert_true(BIO_should_write(f->b));
				assert_true(wbio_pending(f->b) <= WBIO_CAP);
				retries++;
				break;
			}
			assert_int_equal(n, REC);
			sent += REC;
		}
		(void)event_base_loop(f->base, EVLOOP_NONBLOCK);
		got += drain(f, dst + got, TOTAL - got);
	}
	(void)event_base_loop(f->base, EVLOOP_NONBLOCK);
	got += drain(f, dst + got, TOTAL - got);
	assert_int_equal(got, TOTAL);
	assert_true(retries > 0);   /* 1 MiB does not fit a socketpair and the buffer at once */
	assert_memory_equal(dst, src, TOTAL);
	assert_int_equal(f->failed, 0);
	free(src);
	free(dst);
}

/* Full past the write deadline: reported as failed, later writes fail. */
static void test_stalled_peer_fails_at_deadline(void **state)
{
	fx *f = *state;
	uint8_t rec[16384] = { 0 };
	struct timeval tv = { 1, 0 };

	while (BIO_write(f->b, rec, sizeof rec) > 0)
		(void)event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_true(BIO_should_retry(f->b));
	(void)event_base_loopexit(f->base, &tv);   /* the 200 ms deadline ends it first */
	(void)event_base_dispatch(f->base);
	assert_int_equal(f->failed, 1);
	assert_int_equal(BIO_write(f->b, rec, 10), -1);
	assert_false(BIO_should_retry(f->b));
	assert_int_equal(BIO_flush(f->b), -1);
}

/* The peer is gone: the pass reports it; nothing is retried. */
static void test_gone_peer_fails(void **state)
{
	fx *f = *state;
	uint8_t rec[100] = { 1 };

	close(f->sv[1]);
	f->sv[1] = -1;
	assert_int_equal(BIO_write(f->b, rec, sizeof rec), (int)sizeof rec);
	(void)event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(f->failed, 1);
	assert_int_equal(BIO_write(f->b, rec, sizeof rec), -1);
	assert_false(BIO_should_retry(f->b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_gathers_then_sends_in_one_pass, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_socket_retries_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stalled_peer_fails_at_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gone_peer_fails, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
