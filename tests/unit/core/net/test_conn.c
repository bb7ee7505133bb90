/*
 * test_conn.c — the shared transport (src/core/net/conn.c) in-process:
 *   - the listener's connection cap hands the excess to on_refuse;
 *   - a disabled listener (drain) leaves connections in the backlog;
 *   - fd exhaustion: with RLIMIT_NOFILE lowered so accept fails with EMFILE,
 *     the listener pauses (a handful of back-offs in 300 ms, not a busy
 *     spin) and accepts the waiting clients once fds are free again;
 *   - deferred free: closing inside a callback frees at the next safe point,
 *     never on the callback's stack;
 *   - flush then linger: the answer is delivered, the write side shut, late
 *     input discarded, the conn freed at the peer's EOF; past linger_bytes it
 *     is freed at once;
 *   - byte counters on both directions;
 *   - bounded input: never more than read_max buffered, reading resumes
 *     when the protocol drains it;
 *   - output the socket refuses waits and arrives whole, then direct
 *     writes resume.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/metrics/metrics.h"
#include "core/net/conn.h"
#include "lib/log.h"

#define WAIT_MS      2000
#define MAX_ACCEPTED 8
#define NCLIENTS     3
#define LINGER_BYTES 4096u

static struct event_base *g_base;
static struct rlimit g_nofile;   /* restored by teardown, even after a failure */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Run the loop for ms, or until *done. */
static void pump(uint64_t ms, const bool *done)
{
	uint64_t until = now_ms() + ms;

	while (now_ms() < until && !(done && *done)) {
		struct timeval tv = { 0, 5000 };

		event_base_loopexit(g_base, &tv);
		event_base_loop(g_base, 0);
	}
}

static int setup(void **state)
{
	(void)state;
	if (getrlimit(RLIMIT_NOFILE, &g_nofile) != 0)
		return -1;
	g_base = event_base_new();
	return g_base ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	(void)setrlimit(RLIMIT_NOFILE, &g_nofile);
	event_base_free(g_base);
	return 0;
}

/* ---- listener ---------------------------------------------------------- */

typedef struct lfix {
	int    lfd;
	struct sockaddr_in addr;
	int    accepted[MAX_ACCEPTED];
	size_t naccepted;
	size_t nrefused;
	bool   done;
	size_t want;
} lfix;

static void lfix_listen(lfix *f)
{
	socklen_t len = sizeof f->addr;

	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	memset(&f->addr, 0, sizeof f->addr);
	f->addr.sin_family = AF_INET;
	f->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&f->addr, sizeof f->addr), 0);
	assert_int_equal(listen(f->lfd, 16), 0);
	assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&f->addr, &len), 0);
}

/* Connect (loopback completes in the kernel's backlog without accept). */
static int lfix_connect(const lfix *f)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (const struct sockaddr *)&f->addr, sizeof f->addr), 0);
	return fd;
}

static void on_accept(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	lfix *f = arg;

	assert_non_null(sa);
	assert_true(salen > 0);
	assert_true(f->naccepted < MAX_ACCEPTED);
	f->accepted[f->naccepted++] = fd;
	f->done = f->naccepted + f->nrefused >= f->want;
}

static void on_refuse(void *arg, int fd, const struct sockaddr *sa, socklen_t salen)
{
	lfix *f = arg;

	(void)sa;
	(void)salen;
	close(fd);
	f->nrefused++;
	f->done = f->naccepted + f->nrefused >= f->want;
}

static size_t on_live(void *arg)
{
	return ((const lfix *)arg)->naccepted;
}

static conn_listener *lfix_listener(lfix *f, size_t cap)
{
	conn_listener_opts o = {
		.on_accept = on_accept, .on_refuse = on_refuse, .live = on_live,
		.max_conns = cap, .arg = f, .log_msg = "test accept failed", .own_fd = true,
	};
	conn_listener *l = conn_listener_new(g_base, f->lfd, &o);

	assert_non_null(l);
	return l;
}

static void lfix_close(lfix *f, int *cli, size_t ncli)
{
	for (size_t i = 0; i < f->naccepted; i++)
		close(f->accepted[i]);
	for (size_t i = 0; i < ncli; i++)
		close(cli[i]);
}

static void test_listener_cap(void **state)
{
	lfix f = { .want = NCLIENTS };
	int cli[NCLIENTS];
	conn_listener *l;

	(void)state;
	lfix_listen(&f);
	l = lfix_listener(&f, 1);
	for (size_t i = 0; i < NCLIENTS; i++)
		cli[i] = lfix_connect(&f);
	pump(WAIT_MS, &f.done);
	assert_int_equal(f.naccepted, 1);
	assert_int_equal(f.nrefused, NCLIENTS - 1);
	assert_int_equal(conn_listener_get_stats(l)->accepted, 1);
	assert_int_equal(conn_listener_get_stats(l)->refused_cap, NCLIENTS - 1);
	conn_listener_free(l);
	lfix_close(&f, cli, NCLIENTS);
}

static void test_listener_disabled(void **state)
{
	lfix f = { .want = 1 };
	int cli;
	conn_listener *l;

	(void)state;
	lfix_listen(&f);
	l = lfix_listener(&f, 0);
	conn_listener_enable(l, false);
	cli = lfix_connect(&f);
	pump(100, NULL);
	assert_int_equal(f.naccepted, 0);   /* waits in the backlog */
	conn_listener_enable(l, true);
	pump(WAIT_MS, &f.done);
	assert_int_equal(f.naccepted, 1);
	conn_listener_free(l);
	lfix_close(&f, &cli, 1);
}

/* Fill every free fd below the (lowered) limit; returns how many. */
static size_t fill_fds(int *fds, size_t max)
{
	size_t n = 0;

	while (n < max) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (fd < 0) {
			assert_int_equal(errno, EMFILE);
			break;
		}
		fds[n++] = fd;
	}
	return n;
}

static void test_listener_emfile_backoff(void **state)
{
	enum { SPARE = 64 };
	lfix f = { .want = NCLIENTS };
	int cli[NCLIENTS], fill[SPARE];
	struct rlimit low;
	conn_listener *l;
	size_t nfill;
	int probe;

	(void)state;
	lfix_listen(&f);
	l = lfix_listener(&f, 0);
	for (size_t i = 0; i < NCLIENTS; i++)
		cli[i] = lfix_connect(&f);
	/* The limit just above the fds in use, then every one of those taken. */
	probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(probe >= 0);
	close(probe);
	low = g_nofile;
	low.rlim_cur = (rlim_t)probe + 8;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	nfill = fill_fds(fill, SPARE);
	assert_true(nfill < SPARE);

	pump(300, NULL);
	/* Every accept failed; the listener paused instead of spinning: at
	 * 100 ms per back-off, 300 ms allow about three, a spin thousands. */
	assert_int_equal(f.naccepted, 0);
	assert_true(conn_listener_get_stats(l)->backoffs >= 2);   /* it did re-arm and retry */
	assert_true(conn_listener_get_stats(l)->backoffs <= 300 / CONN_ACCEPT_BACKOFF_MS + 2);

	for (size_t i = 0; i < nfill; i++)
		close(fill[i]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &g_nofile), 0);
	pump(WAIT_MS, &f.done);
	assert_int_equal(f.naccepted, NCLIENTS);
	assert_false(conn_listener_is_backing_off(l));
	conn_listener_free(l);
	lfix_close(&f, cli, NCLIENTS);
}

/* ---- connection -------------------------------------------------------- */

typedef struct cfix {
	conn  *c;
	int    peer;           /* the test's end of the socketpair */
	int    reads, closes;
	bool   close_in_read;  /* conn_close from inside on_read */
	bool   flush_in_read;  /* answer "pong" and flush (linger) from on_read */
	bool   hold_input;     /* on_read leaves the input buffered (the bound) */
	bool   in_read;
	bool   closed_in_callback;
	bool   freed;
	size_t got;
} cfix;

static void c_on_read(void *arg)
{
	cfix *f = arg;
	struct evbuffer *in = conn_input(f->c);

	f->in_read = true;
	f->reads++;
	if (f->hold_input) {
		f->in_read = false;
		return;
	}
	f->got += evbuffer_get_length(in);
	(void)evbuffer_drain(in, evbuffer_get_length(in));
	if (f->flush_in_read) {
		assert_int_equal(evbuffer_add(conn_output(f->c), "pong", 4), 0);
		conn_flush(f->c, true, 0);
		assert_true(conn_can_write(f->c));
	}
	if (f->close_in_read) {
		conn_close(f->c, false);
		/* Still safe to touch: the free is deferred. */
		assert_false(conn_can_write(f->c));
		conn_schedule(f->c);
		conn_arm(f->c, 10);
	}
	f->in_read = false;
}

static void c_on_event(void *arg, unsigned what)
{
	cfix *f = arg;

	(void)what;
	conn_close(f->c, false);
}

static void c_on_timer(void *arg)
{
	cfix *f = arg;

	conn_close(f->c, false);
}

static void c_on_close(void *arg)
{
	cfix *f = arg;

	f->closed_in_callback = f->in_read;
	f->closes++;
	f->freed = true;
	conn_free(f->c);
	f->c = NULL;
}

static void c_on_open(void *arg)
{
	(void)arg;
	fail_msg("plaintext never calls on_open");
}

static const conn_ops test_ops = {
	.on_open = c_on_open,
	.on_read = c_on_read,
	.on_event = c_on_event,
	.on_timer = c_on_timer,
	.on_close = c_on_close,
};

static void cfix_new(cfix *f)
{
	int sv[2];
	conn_opts o = {
		.ops = &test_ops, .arg = f, .read_max = 64 * 1024, .write_low = 0,
		.write_ms = 1000, .handshake_ms = 1000, .linger_ms = 1000,
		.linger_bytes = LINGER_BYTES,
		.m_in = metrics_get("oap_bytes_in_total", ""),
		.m_out = metrics_get("oap_bytes_out_total", ""),
	};

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	f->peer = sv[1];
	f->c = conn_new(g_base, sv[0], NULL, 0, NULL, &o);
	assert_non_null(f->c);
	assert_true(conn_start(f->c));
	assert_true(conn_is_open(f->c));
}

static void send_all(int fd, const void *p, size_t n)
{
	assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Read what the conn sent until EOF or the deadline; returns bytes, *eof set. */
static size_t recv_until_eof(cfix *f, char *buf, size_t len, bool *eof)
{
	uint64_t until = now_ms() + WAIT_MS;
	size_t got = 0;

	*eof = false;
	while (now_ms() < until && !*eof) {
		ssize_t n;

		pump(5, NULL);
		n = recv(f->peer, buf + got, len - got, MSG_DONTWAIT);
		if (n > 0)
			got += (size_t)n;
		else if (n == 0)
			*eof = true;
	}
	return got;
}

static void test_conn_deferred_free(void **state)
{
	cfix f = { .close_in_read = true };

	(void)state;
	cfix_new(&f);
	send_all(f.peer, "x", 1);
	pump(WAIT_MS, &f.freed);
	assert_int_equal(f.reads, 1);
	assert_int_equal(f.closes, 1);
	assert_false(f.closed_in_callback);
	assert_null(f.c);
	close(f.peer);
}

static void test_conn_flush_linger(void **state)
{
	metrics_series *in = metrics_get("oap_bytes_in_total", "");
	metrics_series *out = metrics_get("oap_bytes_out_total", "");
	uint64_t in0 = metrics_value(in), out0 = metrics_value(out);
	cfix f = { .flush_in_read = true };
	char buf[64];
	bool eof;

	(void)state;
	cfix_new(&f);
	send_all(f.peer, "ping", 4);
	/* The answer arrives whole, then EOF: our write side is shut. */
	assert_int_equal(recv_until_eof(&f, buf, sizeof buf, &eof), 4);
	assert_memory_equal(buf, "pong", 4);
	assert_true(eof);
	/* Lingering: late input is read and discarded, the conn stays. */
	memset(buf, 'y', sizeof buf);
	send_all(f.peer, buf, sizeof buf);
	pump(50, NULL);
	assert_int_equal(f.closes, 0);
	assert_int_equal(f.reads, 1);
	/* The peer's EOF ends the linger. */
	shutdown(f.peer, SHUT_WR);
	pump(WAIT_MS, &f.freed);
	assert_int_equal(f.closes, 1);
	assert_int_equal(metrics_value(in) - in0, 4 + sizeof buf);
	assert_int_equal(metrics_value(out) - out0, 4);
	close(f.peer);
}

static void test_conn_linger_bytes(void **state)
{
	cfix f = { .flush_in_read = true };
	char buf[LINGER_BYTES + 1024];
	bool eof;

	(void)state;
	cfix_new(&f);
	send_all(f.peer, "ping", 4);
	assert_int_equal(recv_until_eof(&f, buf, sizeof buf, &eof), 4);
	assert_true(eof);
	/* Past linger_bytes the conn gives up on a polite end. */
	memset(buf, 'z', sizeof buf);
	send_all(f.peer, buf, sizeof buf);
	pump(WAIT_MS, &f.freed);
	assert_int_equal(f.closes, 1);
	close(f.peer);
}

/* Bounded input: a protocol that does not consume its input has at most
 * read_max buffered; once it drains, reading resumes until all has come. */
static void test_conn_read_bound(void **state)
{
	enum { READ_MAX = 64 * 1024, TOTAL = 160 * 1024 };
	cfix f = { .hold_input = true };
	static char buf[TOTAL];
	size_t sent = 0, got = 0;
	uint64_t until = now_ms() + WAIT_MS;

	(void)state;
	cfix_new(&f);
	memset(buf, 'b', sizeof buf);
	while (got < TOTAL && now_ms() < until) {
		ssize_t n = sent < TOTAL ? send(f.peer, buf + sent, TOTAL - sent, MSG_DONTWAIT) : 0;
		size_t have;

		if (n > 0)
			sent += (size_t)n;
		pump(5, NULL);
		have = evbuffer_get_length(conn_input(f.c));
		assert_true(have <= READ_MAX);
		/* Consume only from a full buffer: reading must have stopped there. */
		if (have == READ_MAX || got + have == TOTAL) {
			got += have;
			(void)evbuffer_drain(conn_input(f.c), have);
		}
	}
	assert_int_equal(got, TOTAL);
	assert_true(f.reads > 2);
	conn_close(f.c, false);
	pump(WAIT_MS, &f.freed);
	close(f.peer);
}

/* Output the socket refuses waits (the bufferevent's write event takes it)
 * and arrives whole once the peer reads; then answers go out again. */
static void test_conn_write_backlog(void **state)
{
	enum { BIG = 4 * 1024 * 1024 };
	cfix f = { 0 };
	char *big = malloc(BIG), *rx = malloc(BIG + 4);
	size_t got = 0;
	uint64_t until = now_ms() + WAIT_MS;

	(void)state;
	assert_non_null(big);
	assert_non_null(rx);
	for (size_t i = 0; i < BIG; i++)
		big[i] = (char)('a' + i % 26);
	cfix_new(&f);
	assert_int_equal(evbuffer_add(conn_output(f.c), big, BIG), 0);
	pump(20, NULL);
	assert_true(conn_out_len(f.c) > 0);   /* more than a socketpair holds */
	while (got < BIG && now_ms() < until) {
		ssize_t n = recv(f.peer, rx + got, BIG + 4 - got, MSG_DONTWAIT);

		if (n > 0)
			got += (size_t)n;
		pump(1, NULL);
	}
	assert_int_equal(got, BIG);
	assert_memory_equal(rx, big, BIG);
	pump(20, NULL);
	assert_int_equal(conn_out_len(f.c), 0);
	/* Back to direct writes: a small answer goes out on its own. */
	assert_int_equal(evbuffer_add(conn_output(f.c), "tail", 4), 0);
	got = 0;
	until = now_ms() + WAIT_MS;
	while (got < 4 && now_ms() < until) {
		ssize_t n = recv(f.peer, rx + got, 4 - got, MSG_DONTWAIT);

		if (n > 0)
			got += (size_t)n;
		pump(1, NULL);
	}
	assert_int_equal(got, 4);
	assert_memory_equal(rx, "tail", 4);
	conn_close(f.c, false);
	pump(WAIT_MS, &f.freed);
	close(f.peer);
	free(big);
	free(rx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_listener_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listener_disabled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listener_emfile_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conn_deferred_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conn_flush_linger, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conn_linger_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conn_read_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conn_write_backlog, setup, teardown),
	};

	log_set_level(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
