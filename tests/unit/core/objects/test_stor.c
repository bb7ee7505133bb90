/* The storage client (src/core/objects/stor_client.h) against the real storage
 * service (src/svc/storage) on one event_base, over a real SEQPACKET
 * listener in a temp dir: every verb end to end with fd passing, responses
 * in order, cancel, the breaker opening and recovering, the call timeout,
 * the SO_PEERCRED refusal, and the fatal rule on both ends: a request or a
 * reply that does not decode ends the process that received it (each such
 * case runs in a forked child). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include "core/config/config.h"
#include "core/metrics/metrics.h"
#include "core/proto/oap.h"
#include "core/objects/stor_client.h"
#include "core/objects/stor_client_test.h"
#include "lib/b3tree.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/util.h"
#include "svc/svc.h"

#define KIB        1024u
#define MAX_OBJ    (2u * 1024u * 1024u)
#define MAX_CALLS  64u
#define WAIT_MS    3000u
#define TIMEOUT_GAP_MS 500u                    /* between the first call and the next */
#define BIG_LEN    (64u * 1024u * 1024u)       /* a commit that takes a while to hash */
#define BIG_PIECE  (1024u * 1024u)
#define BIG_WAIT_MS 60000u

typedef struct got {
	bool        done;
	int         seq;        /* completion order */
	stor_result r;
	char        msg[128];
} got;

typedef struct env {
	char               dir[64];
	char               sock[128];
	struct event_base *base;
	struct event      *tick;
	svc                s;
	bool               up;
	stor_client       *c;
	int                seq;
} env;

static env *E;

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what; (void)arg;
}

static void on_result(const stor_result *r, void *arg)
{
	got *g = arg;

	assert_false(g->done);
	g->done = true;
	g->seq = E->seq++;
	g->r = *r;
	snprintf(g->msg, sizeof g->msg, "%s", r->message ? r->message : "(null)");
	g->r.message = g->msg;
}

/* Run the loop until *flag or ms pass. */
static void run_until(const bool *flag, uint64_t ms)
{
	uint64_t end = util_now_ms() + ms;

	while ((!flag || !*flag) && util_now_ms() < end)
		event_base_loop(E->base, EVLOOP_ONCE);
}

static got *wait_for(got *g)
{
	run_until(&g->done, WAIT_MS);
	assert_true(g->done);
	return g;
}

/* The server on base (E->base: the same loop as the client). */
static void server_start_on(struct event_base *base, bool amnesia)
{
	char err[256];

	config_defaults(&E->s.cfg);
	snprintf(E->s.cfg.data_dir, sizeof E->s.cfg.data_dir, "%s/data", E->dir);
	E->s.cfg.storage_max_object_bytes = MAX_OBJ;
	E->s.cfg.storage_max_uploads = 4;
	E->s.cfg.storage_max_uploads_per_tenant = 2;   /* calls without keys count in neither */
	E->s.cfg.storage_max_uploads_per_peer = 3;
	E->s.cfg.amnesia = amnesia;
	E->s.base = base;
	E->s.ops = &storage_ops;
	E->s.listen_fd = util_listen_unix(E->sock, SOCK_SEQPACKET, 0600, err, sizeof err);
	if (E->s.listen_fd < 0)
		fail_msg("listen: %s", err);
	assert_int_equal(storage_ops.start(&E->s), 0);
	E->up = true;
}

static void server_start(bool amnesia)
{
	server_start_on(E->base, amnesia);
}

static void server_stop(void)
{
	if (!E->up)
		return;
	storage_ops.stop(&E->s);
	close(E->s.listen_fd);
	unlink(E->sock);
	config_free(&E->s.cfg);
	E->up = false;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(path);
}

static int setup_common(void **state, bool amnesia)
{
	struct timeval tv = { 0, 20000 };

	E = calloc(1, sizeof *E);
	snprintf(E->dir, sizeof E->dir, "/tmp/mn-stor-XXXXXX");
	if (!mkdtemp(E->dir))
		return -1;
	snprintf(E->sock, sizeof E->sock, "%s/storage.sock", E->dir);
	E->base = event_base_new();
	E->tick = event_new(E->base, -1, EV_PERSIST, on_tick, NULL);   /* keeps EVLOOP_ONCE short */
	event_add(E->tick, &tv);
	server_start(amnesia);
	E->c = stor_client_new(E->base, E->sock);
	assert_non_null(E->c);
	*state = E;
	return 0;
}

static int setup(void **state) { return setup_common(state, false); }
static int setup_amnesia(void **state) { return setup_common(state, true); }

static int teardown(void **state)
{
	(void)state;
	stor_client_free(E->c);
	server_stop();
	event_free(E->tick);
	event_base_free(E->base);
	(void)nftw(E->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(E);
	E = NULL;
	return 0;
}

static uint8_t *make_data(size_t len, uint64_t seed)
{
	uint8_t *p = malloc(len ? len : 1);

	for (size_t i = 0; i < len; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(seed >> 33);
	}
	return p;
}

static size_t open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	size_t n = 0;

	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* PUT_BEGIN, write through the passed fd, PUT_COMMIT. */
static int memcmp_ids(const void *a, const void *b)
{
	return memcmp(a, b, B3_OUT_LEN);
}

static got put_object(const uint8_t *data, size_t len, const uint8_t *expect, uint64_t commit_len)
{
	got b = { 0 }, c = { 0 };

	assert_non_null(stor_put_begin(E->c, len, NULL, NULL, on_result, &b));
	assert_false(b.done);   /* never called from inside the call */
	wait_for(&b);
	assert_int_equal(b.r.status, 200);
	assert_true(b.r.fds[0] >= 0);
	assert_int_equal(b.r.fds[1], -1);
	for (size_t off = 0; off < len;) {
		ssize_t w = write(b.r.fds[0], data + off, len - off);
		assert_true(w > 0);
		off += (size_t)w;
	}
	close(b.r.fds[0]);
	assert_non_null(stor_put_commit(E->c, b.r.handle, commit_len, expect, false, on_result, &c));
	return *wait_for(&c);
}

static void test_ping(void **state)
{
	got g = { 0 };

	(void)state;
	assert_true(stor_client_ready(E->c));
	assert_non_null(stor_ping(E->c, on_result, &g));
	assert_false(g.done);
	assert_int_equal(wait_for(&g)->r.status, 200);
	assert_string_equal(g.msg, "");
	assert_int_equal(g.r.fds[0], -1);
}

static void roundtrip(size_t len, uint64_t seed)
{
	uint8_t *data = make_data(len, seed), id[B3_OUT_LEN];
	got c, s = { 0 }, o = { 0 };

	b3_hash(data, len, id);
	c = put_object(data, len, id, len);
	assert_int_equal(c.r.status, 200);
	assert_true(c.r.created);
	assert_int_equal(c.r.len, len);
	assert_memory_equal(c.r.id, id, B3_OUT_LEN);
	stor_stat(E->c, id, on_result, &s);
	assert_int_equal(wait_for(&s)->r.status, 200);
	assert_int_equal(s.r.len, len);
	stor_open(E->c, id, on_result, &o);
	assert_int_equal(wait_for(&o)->r.status, 200);
	assert_int_equal(o.r.len, len);
	uint8_t *back = malloc(len + 1), ob[64 * B3TREE_CV_LEN];
	assert_int_equal(pread(o.r.fds[0], back, len + 1, 0), (ssize_t)len);
	assert_memory_equal(back, data, len);
	size_t oblen = b3tree_outboard_len(len);
	assert_true(oblen <= sizeof ob);
	assert_int_equal(pread(o.r.fds[1], ob, sizeof ob, 0), (ssize_t)oblen);
	assert_true(b3tree_outboard_ok(ob, len, id));
	close(o.r.fds[0]);
	close(o.r.fds[1]);
	/* again: already there */
	c = put_object(data, len, NULL, len);
	assert_int_equal(c.r.status, 200);
	assert_false(c.r.created);
	free(back);
	free(data);
}

static void test_roundtrip(void **state)
{
	(void)state;
	roundtrip(0, 1);
	roundtrip(64 * KIB + 1, 2);
	roundtrip(1024 * KIB, 3);
}

static void test_errors(void **state)
{
	uint8_t *data = make_data(3000, 4), id[B3_OUT_LEN], other[B3_OUT_LEN];
	metrics_series *m413 = metrics_get("rejected_total", "reason=\"413\"");
	uint64_t before = metrics_value(m413);
	got g = { 0 };

	(void)state;
	b3_hash(data, 3000, id);
	b3_hash("x", 1, other);
	stor_stat(E->c, id, on_result, &g);
	assert_int_equal(wait_for(&g)->r.status, 404);
	assert_string_equal(g.msg, "not found");
	assert_int_equal(put_object(data, 3000, NULL, 2999).r.status, 400);
	got m = put_object(data, 3000, other, 3000);
	assert_int_equal(m.r.status, 422);
	assert_string_equal(m.msg, "content does not hash to expect");
	memset(&g, 0, sizeof g);
	stor_stat(E->c, id, on_result, &g);
	assert_int_equal(wait_for(&g)->r.status, 404);   /* nothing stored */
	memset(&g, 0, sizeof g);
	stor_put_begin(E->c, MAX_OBJ + 1, NULL, NULL, on_result, &g);
	assert_int_equal(wait_for(&g)->r.status, 413);
	assert_int_equal(g.r.fds[0], -1);
	assert_int_equal(metrics_value(m413), before + 1);
	/* abort: once 200, then 404 */
	memset(&g, 0, sizeof g);
	stor_put_begin(E->c, 10, NULL, NULL, on_result, &g);
	wait_for(&g);
	close(g.r.fds[0]);
	uint64_t h = g.r.handle;
	memset(&g, 0, sizeof g);
	stor_put_abort(E->c, h, on_result, &g);
	assert_int_equal(wait_for(&g)->r.status, 200);
	memset(&g, 0, sizeof g);
	stor_put_abort(E->c, h, on_result, &g);
	assert_int_equal(wait_for(&g)->r.status, 404);
	free(data);
}

/* One PUT_BEGIN as tenant/peer; its fd (if any) closed, *h its handle. */
static got begin_as(const char *tenant, const char *peer, uint64_t *h)
{
	got g = { 0 };

	stor_put_begin(E->c, 10, tenant, peer, on_result, &g);
	wait_for(&g);
	if (g.r.status == 200)
		close(g.r.fds[0]);
	*h = g.r.handle;
	return g;
}

/* The keys cross the wire and storage holds each to its share: 503, a
 * retryable error that names the share, counted. */
static void test_upload_shares(void **state)
{
	metrics_series *m503 = metrics_get("rejected_total", "reason=\"503\"");
	uint64_t before = metrics_value(m503), h[4], x;
	got g;

	(void)state;
	assert_int_equal(begin_as("t:a", "ip:1", &h[0]).r.status, 200);
	assert_int_equal(begin_as("t:a", "ip:1", &h[1]).r.status, 200);
	g = begin_as("t:a", "ip:2", &x);
	assert_int_equal(g.r.status, 503);
	assert_string_equal(g.msg, "too many uploads open for this tenant "
	                           "(storage.max_uploads_per_tenant)");
	assert_int_equal(begin_as("t:b", "ip:1", &h[2]).r.status, 200);
	g = begin_as("t:c", "ip:1", &x);
	assert_int_equal(g.r.status, 503);
	assert_string_equal(g.msg, "too many uploads open from this address "
	                           "(storage.max_uploads_per_peer)");
	assert_int_equal(begin_as("t:c", "ip:2", &h[3]).r.status, 200);
	g = begin_as(NULL, NULL, &x);
	assert_int_equal(g.r.status, 503);
	assert_string_equal(g.msg, "too many uploads open (storage.max_uploads)");
	assert_int_equal(metrics_value(m503), before + 3);
	for (unsigned i = 0; i < 4; i++) {
		memset(&g, 0, sizeof g);
		stor_put_abort(E->c, h[i], on_result, &g);
		assert_int_equal(wait_for(&g)->r.status, 200);
	}
	assert_int_equal(begin_as("t:a", "ip:1", &x).r.status, 200);   /* the slots came back */
}

/* LIST: pages in id order, `more` until the last; quarantined objects are
 * left out. Both backends (the amnesia setup runs it on RAM). */
typedef struct listed {
	bool    done;
	int     status;
	uint8_t ids[8][B3_OUT_LEN];
	size_t  n;
	bool    more;
} listed;

static void on_list(const stor_result *r, void *arg)
{
	listed *l = arg;

	l->done = true;
	l->status = r->status;
	l->n = r->nids;
	l->more = r->more;
	assert_true(r->nids <= 8);
	memcpy(l->ids, r->ids, r->nids * B3_OUT_LEN);
}

static listed list_page(const uint8_t *after, uint16_t max)
{
	listed l = { 0 };

	assert_non_null(stor_list(E->c, after, max, on_list, &l));
	run_until(&l.done, WAIT_MS);
	assert_true(l.done);
	assert_int_equal(l.status, 200);
	return l;
}

static void test_list(void **state)
{
	uint8_t ids[4][B3_OUT_LEN];
	got q = { 0 };

	(void)state;
	listed l = list_page(NULL, 8);
	assert_int_equal(l.n, 0);
	assert_false(l.more);
	for (int i = 0; i < 4; i++) {
		uint8_t *data = make_data(1000 + (size_t)i, 40 + (uint64_t)i);
		got c = put_object(data, 1000 + (size_t)i, NULL, 1000 + (size_t)i);
		assert_int_equal(c.r.status, 200);
		memcpy(ids[i], c.r.id, B3_OUT_LEN);
		free(data);
	}
	qsort(ids, 4, B3_OUT_LEN, memcmp_ids);
	l = list_page(NULL, 3);
	assert_int_equal(l.n, 3);
	assert_true(l.more);
	assert_memory_equal(l.ids, ids, 3 * B3_OUT_LEN);
	l = list_page(l.ids[2], 3);
	assert_int_equal(l.n, 1);
	assert_false(l.more);
	assert_memory_equal(l.ids[0], ids[3], B3_OUT_LEN);
	stor_quarantine(E->c, ids[1], on_result, &q);
	assert_int_equal(wait_for(&q)->r.status, 200);
	l = list_page(ids[0], 8);
	assert_int_equal(l.n, 2);
	assert_memory_equal(l.ids[0], ids[2], B3_OUT_LEN);
	assert_memory_equal(l.ids[1], ids[3], B3_OUT_LEN);
}

static void test_quarantine(void **state)
{
	uint8_t *data = make_data(100 * KIB, 5);
	got c = put_object(data, 100 * KIB, NULL, 100 * KIB), q = { 0 }, s = { 0 }, o = { 0 };

	(void)state;
	assert_int_equal(c.r.status, 200);
	stor_quarantine(E->c, c.r.id, on_result, &q);
	assert_int_equal(wait_for(&q)->r.status, 200);
	stor_stat(E->c, c.r.id, on_result, &s);
	assert_int_equal(wait_for(&s)->r.status, 502);
	stor_open(E->c, c.r.id, on_result, &o);
	assert_int_equal(wait_for(&o)->r.status, 502);
	assert_int_equal(o.r.fds[0], -1);
	assert_int_equal(o.r.fds[1], -1);
	free(data);
}

static void test_order_and_cancel(void **state)
{
	got g[MAX_CALLS];
	uint8_t id[B3_OUT_LEN];
	got p = { 0 };

	(void)state;
	stor_ping(E->c, on_result, &p);   /* connected: both ends' sockets counted */
	wait_for(&p);
	size_t fds_before = open_fds();
	memset(g, 0, sizeof g);
	b3_hash("y", 1, id);
	for (unsigned i = 0; i < MAX_CALLS; i++) {
		stor_call *call = i % 3 == 0 ? stor_ping(E->c, on_result, &g[i])
		                : i % 3 == 1 ? stor_stat(E->c, id, on_result, &g[i])
		                             : stor_put_begin(E->c, 10, NULL, NULL, on_result, &g[i]);
		assert_non_null(call);
		if (i % 3 == 2)
			stor_call_cancel(call);   /* its fd must be closed for us */
	}
	run_until(&g[MAX_CALLS - 1].done, WAIT_MS);   /* a ping: the last answered */
	int seq = -1;
	for (unsigned i = 0; i < MAX_CALLS; i++) {
		if (i % 3 == 2) {
			assert_false(g[i].done);
			continue;
		}
		assert_true(g[i].done);
		assert_int_equal(g[i].r.status, i % 3 == 0 ? 200 : 404);
		assert_true(g[i].seq > seq);
		seq = g[i].seq;
	}
	run_until(NULL, 100);
	/* the client closed every fd of a cancelled call; the server keeps one
	 * per upload it holds open (max_uploads of them, the rest got 503) */
	assert_int_equal(open_fds(), fds_before + 4);
}

/* Connect a fresh SEQPACKET socket to path. */
static int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0);

	memcpy(sa.sun_path, path, strlen(path) + 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

/* One frame of a request with a raw payload into buf; its length. */
static size_t raw_frame(uint8_t *buf, size_t cap, uint16_t flags, uint16_t code, uint16_t app,
                        const void *payload, size_t plen)
{
	oap_frame f = { .flags = flags, .code = code, .app_proto_id = app, .corr_id = 77,
	                .payload = payload, .payload_len = plen };
	ssize_t n = oap_encode(&f, buf, cap);

	assert_true(n > 0);
	return (size_t)n;
}

/* Send one raw frame on a fresh connection; the response's code (an error
 * reply must decode, and carry the corr_id). */
static int raw_call(uint16_t code, const void *payload, size_t plen, size_t padto)
{
	static uint8_t buf[OAP_INTERNAL_MAX_FRAME + 1024];
	size_t n = raw_frame(buf, sizeof buf, OAP_F_REQ, code, STOR_APP_PROTO, payload, plen);
	int fd = raw_connect(E->sock);
	oap_frame f;
	stor_rep rep;

	if (padto > n)
		n = padto;   /* a datagram longer than the frame cap */
	assert_int_equal(send(fd, buf, n, 0), (ssize_t)n);
	uint64_t end = util_now_ms() + WAIT_MS;
	ssize_t r = -1;
	while (r < 0 && util_now_ms() < end) {
		event_base_loop(E->base, EVLOOP_ONCE);
		r = recv(fd, buf, sizeof buf, 0);
	}
	close(fd);
	assert_true(r >= (ssize_t)OAP_HDR_LEN);
	assert_int_equal(oap_decode(buf, (size_t)r, OAP_INTERNAL_MAX_FRAME, &f, &(size_t){ 0 }), OAP_OK);
	assert_int_equal(f.corr_id, 77);
	assert_int_equal(f.flags, OAP_F_RESP);
	assert_int_equal(stor_msg_rep_decode(code, f.code, f.payload, f.payload_len, &rep), 0);
	return f.code;
}

/* In a child that serves the store: send one raw datagram (with one fd when
 * with_fd) and run the loop. The child must exit 1 (log_fatalx) and its one
 * log line must name want_verb. */
static void raw_fatal(const uint8_t *dgram, size_t n, bool with_fd, const char *want_verb)
{
	int lp[2], st = -1;
	char log[2048] = "", want[64];

	assert_int_equal(pipe(lp), 0);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = raw_connect(E->sock), extra = open("/dev/null", O_RDONLY);
		log_init("storage", LOG_LEVEL_INFO, lp[1]);
		if (event_reinit(E->base) != 0 ||
		    ipc_send(fd, dgram, n, &extra, with_fd ? 1 : 0) != 0)
			_exit(2);
		uint64_t end = util_now_ms() + WAIT_MS;
		while (util_now_ms() < end)
			event_base_loop(E->base, EVLOOP_ONCE);
		_exit(0);   /* survived: the test fails */
	}
	close(lp[1]);
	assert_true(waitpid(pid, &st, 0) == pid);
	ssize_t r = read(lp[0], log, sizeof log - 1);
	close(lp[0]);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	assert_true(r > 0);
	log[r] = '\0';
	assert_non_null(strstr(log, "\"level\":\"error\""));
	assert_non_null(strstr(log, "storage request does not decode"));
	snprintf(want, sizeof want, "\"verb\":\"%s\"", want_verb);
	assert_non_null(strstr(log, want));
	assert_true(strchr(log, '\n') == log + r - 1);   /* exactly one line */
}

static void raw_fatal_frame(uint16_t flags, uint16_t code, uint16_t app, const void *payload,
                            size_t plen, const char *want_verb)
{
	uint8_t buf[256];

	raw_fatal(buf, raw_frame(buf, sizeof buf, flags, code, app, payload, plen), false, want_verb);
}

/* Well-formed requests are answered; the oversize datagram is answered 413
 * from its header; every other undecodable request is fatal to storage. */
static void test_strict_requests(void **state)
{
	uint8_t zero[STOR_ID_LEN + 1] = { 0 }, commit[8 + 8 + 1] = { 0 }, buf[256];

	(void)state;
	assert_int_equal(raw_call(STOR_PING, NULL, 0, 0), 200);
	assert_int_equal(raw_call(STOR_STAT, zero, STOR_ID_LEN, 0), 404);
	assert_int_equal(raw_call(STOR_PING, NULL, 0, OAP_INTERNAL_MAX_FRAME + 100), 413);
	raw_fatal_frame(OAP_F_REQ, STOR_PING, STOR_APP_PROTO, zero, 1, "PING");   /* trailing byte */
	raw_fatal_frame(OAP_F_REQ, STOR_STAT, STOR_APP_PROTO, zero, STOR_ID_LEN - 1, "STAT");
	raw_fatal_frame(OAP_F_REQ, STOR_OPEN, STOR_APP_PROTO, zero, STOR_ID_LEN + 1, "OPEN");
	raw_fatal_frame(OAP_F_REQ, STOR_PUT_BEGIN, STOR_APP_PROTO, zero, 7, "PUT_BEGIN");
	raw_fatal_frame(OAP_F_REQ, STOR_PUT_ABORT, STOR_APP_PROTO, zero, 16, "PUT_ABORT");
	commit[16] = 2;                                                /* has_expect: not a bool */
	raw_fatal_frame(OAP_F_REQ, STOR_PUT_COMMIT, STOR_APP_PROTO, commit, sizeof commit,
	                "PUT_COMMIT");
	commit[16] = 1;                                                /* the expected id is missing */
	raw_fatal_frame(OAP_F_REQ, STOR_PUT_COMMIT, STOR_APP_PROTO, commit, sizeof commit,
	                "PUT_COMMIT");
	raw_fatal_frame(OAP_F_REQ, 99, STOR_APP_PROTO, NULL, 0, "unknown");
	raw_fatal_frame(OAP_F_REQ, 0, STOR_APP_PROTO, NULL, 0, "unknown");
	raw_fatal_frame(OAP_F_REQ, STOR_PING, 0x0200, NULL, 0, "PING");
	raw_fatal_frame(OAP_F_REQ | OAP_F_COMP, STOR_PING, STOR_APP_PROTO, NULL, 0, "PING");
	raw_fatal_frame(OAP_F_RESP, STOR_PING, STOR_APP_PROTO, NULL, 0, "PING");
	raw_fatal((const uint8_t *)"{}", 2, false, "unknown");      /* not a frame */
	raw_fatal(buf, raw_frame(buf, sizeof buf, OAP_F_REQ, STOR_PING, STOR_APP_PROTO, NULL, 0),
	          true, "PING");                                      /* an fd on a request */
	assert_int_equal(raw_call(STOR_PING, NULL, 0, 0), 200);    /* the parent's server is whole */
}

/* A lying server: the client (in a child) sends one PING and gets reply;
 * it must exit 1 without running the callback. */
static void on_result_exit(const stor_result *r, void *arg)
{
	(void)r; (void)arg;
	_exit(3);
}

static void bad_reply(uint16_t flags, uint16_t status, uint64_t corr, const void *payload,
                      size_t plen, bool with_fd)
{
	char path[160], err[256];
	uint8_t buf[256];
	int st = -1;

	snprintf(path, sizeof path, "%s/liar.sock", E->dir);
	unlink(path);
	int lfd = util_listen_unix(path, SOCK_SEQPACKET, 0600, err, sizeof err), lp[2];
	assert_true(lfd >= 0);
	assert_int_equal(pipe(lp), 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct event_base *b = event_base_new();
		stor_client *c = stor_client_new(b, path);
		log_init("gateway", LOG_LEVEL_ERROR, lp[1]);
		stor_ping(c, on_result_exit, NULL);
		event_base_dispatch(b);   /* the call timer ends it if nothing else does */
		_exit(0);
	}
	struct pollfd pl = { .fd = lfd, .events = POLLIN };
	assert_int_equal(poll(&pl, 1, WAIT_MS), 1);
	int fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	pl.fd = fd;
	assert_int_equal(poll(&pl, 1, WAIT_MS), 1);
	assert_true(recv(fd, buf, sizeof buf, MSG_DONTWAIT) >= (ssize_t)OAP_HDR_LEN);
	oap_frame f = { .flags = flags, .code = status, .app_proto_id = STOR_APP_PROTO,
	                .corr_id = corr, .payload = payload, .payload_len = plen };
	ssize_t n = oap_encode(&f, buf, sizeof buf);
	int extra = open("/dev/null", O_RDONLY);
	assert_true(n > 0);
	assert_int_equal(ipc_send(fd, buf, (size_t)n, &extra, with_fd ? 1 : 0), 0);
	close(extra);
	assert_true(waitpid(pid, &st, 0) == pid);
	close(lp[1]);
	ssize_t r = read(lp[0], err, sizeof err - 1);
	close(lp[0]);
	close(fd);
	close(lfd);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	assert_true(r > 0);
	err[r] = '\0';
	assert_non_null(strstr(err, "storage reply does not decode"));
	assert_non_null(strstr(err, "\"verb\":\"PING\""));
}

static void test_bad_replies(void **state)
{
	uint8_t b[4] = { 0 };

	(void)state;
	bad_reply(OAP_F_RESP, 200, 1, b, 1, false);           /* PING 200 has no fields */
	bad_reply(OAP_F_RESP, 404, 1, b, 2, false);           /* an error reply cut short */
	bad_reply(OAP_F_RESP, 302, 1, NULL, 0, false);        /* not a status storage sends */
	bad_reply(OAP_F_RESP, 200, 9, NULL, 0, false);        /* another call's corr_id */
	bad_reply(OAP_F_REQ, 200, 1, NULL, 0, false);         /* not a response */
	bad_reply(OAP_F_RESP, 200, 1, NULL, 0, true);         /* an fd PING never gets */
}

/* Server gone: 503s, the breaker opens after STOR_BREAKER_FAILURES, fails
 * fast while open; a new server → recovers after STOR_BREAKER_OPEN_MS. */
static void test_breaker(void **state)
{
	uint8_t *data = make_data(5000, 6);
	got c = put_object(data, 5000, NULL, 5000), g[8];

	(void)state;
	assert_int_equal(c.r.status, 200);
	server_stop();
	memset(g, 0, sizeof g);
	stor_ping(E->c, on_result, &g[0]);       /* the open connection is lost */
	assert_int_equal(wait_for(&g[0])->r.status, 503);
	for (unsigned i = 1; i < STOR_BREAKER_FAILURES; i++) {
		assert_true(stor_client_ready(E->c));
		stor_ping(E->c, on_result, &g[i]);   /* connect refused */
		assert_int_equal(wait_for(&g[i])->r.status, 503);
		assert_string_equal(g[i].msg, "storage unreachable");
	}
	assert_false(stor_client_ready(E->c));
	uint64_t t0 = util_now_ms();
	stor_ping(E->c, on_result, &g[5]);
	assert_int_equal(wait_for(&g[5])->r.status, 503);
	assert_string_equal(g[5].msg, "storage unavailable (breaker open)");
	assert_true(util_now_ms() - t0 < 100);
	server_start(false);
	run_until(NULL, STOR_BREAKER_OPEN_MS / 2);
	assert_false(stor_client_ready(E->c));   /* still open: no trial yet */
	run_until(NULL, STOR_BREAKER_OPEN_MS / 2 + 300);
	assert_true(stor_client_ready(E->c));    /* the probe closed it */
	stor_stat(E->c, c.r.id, on_result, &g[6]);
	assert_int_equal(wait_for(&g[6])->r.status, 200);   /* and the object survived */
	assert_int_equal(g[6].r.len, 5000);
	free(data);
}

/* A peer that accepts nothing and never answers: 503 after the timeout, for
 * every call stuck behind it; STOR_BREAKER_FAILURES of them open the breaker. */
static void test_timeout(void **state)
{
	char path[160], err[256];
	got g[STOR_BREAKER_FAILURES + 1];

	(void)state;
	memset(g, 0, sizeof g);
	snprintf(path, sizeof path, "%s/mute.sock", E->dir);
	int lfd = util_listen_unix(path, SOCK_SEQPACKET, 0600, err, sizeof err);
	assert_true(lfd >= 0);
	stor_client *c = stor_client_new(E->base, path);
	uint64_t t0 = util_now_ms();
	for (unsigned i = 0; i < STOR_BREAKER_FAILURES; i++)
		stor_ping(c, on_result, &g[i]);
	run_until(&g[STOR_BREAKER_FAILURES - 1].done, STOR_CALL_TIMEOUT_MS + 2000);
	assert_true(util_now_ms() - t0 >= STOR_CALL_TIMEOUT_MS - 10);
	for (unsigned i = 0; i < STOR_BREAKER_FAILURES; i++) {
		assert_true(g[i].done);
		assert_int_equal(g[i].r.status, 503);
		assert_string_equal(g[i].msg, "storage call timed out");
	}
	assert_false(stor_client_ready(c));
	t0 = util_now_ms();
	stor_ping(c, on_result, &g[STOR_BREAKER_FAILURES]);
	assert_int_equal(wait_for(&g[STOR_BREAKER_FAILURES])->r.status, 503);
	assert_string_equal(g[STOR_BREAKER_FAILURES].msg, "storage unavailable (breaker open)");
	assert_true(util_now_ms() - t0 < 100);
	stor_client_free(c);
	close(lfd);
}

static bool freed_in_cb;

static void on_result_free(const stor_result *r, void *arg)
{
	(void)r; (void)arg;
	stor_client_free(E->c);
	E->c = NULL;
	freed_in_cb = true;
}

/* Freeing the client inside a callback; the other calls are dropped silently. */
static void test_free_in_callback(void **state)
{
	got g = { 0 };

	(void)state;
	freed_in_cb = false;
	stor_ping(E->c, on_result_free, NULL);
	stor_ping(E->c, on_result, &g);
	run_until(&freed_in_cb, WAIT_MS);
	assert_true(freed_in_cb);
	run_until(NULL, 100);
	assert_false(g.done);
}

static void test_amnesia(void **state)
{
	char data_dir[128];
	struct stat sb;

	(void)state;
	roundtrip(70 * KIB, 7);
	snprintf(data_dir, sizeof data_dir, "%s/data", E->dir);
	assert_int_equal(stat(data_dir, &sb), -1);   /* never created */
	assert_int_equal(errno, ENOENT);
}

/* A peer of another uid is refused and counted. Needs root to setuid. */
static void test_peercred(void **state)
{
	metrics_series *m = metrics_get("rejected_total", "reason=\"peercred\"");
	uint64_t before = metrics_value(m);

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(chmod(E->dir, 0755), 0);
	assert_int_equal(chmod(E->sock, 0666), 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		char b[64];
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(2);
		int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
		memcpy(sa.sun_path, E->sock, strlen(E->sock) + 1);
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
			_exit(3);
		ssize_t r = recv(fd, b, sizeof b, 0);   /* closed by the server */
		_exit(r <= 0 ? 0 : 4);
	}
	int st = -1;
	uint64_t end = util_now_ms() + WAIT_MS;
	while (waitpid(pid, &st, WNOHANG) == 0 && util_now_ms() < end)
		event_base_loop(E->base, EVLOOP_ONCE);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(metrics_value(m), before + 1);
}

/* One timer per client, armed for the oldest call: a call answered before
 * its deadline hands the timer to the next one, so later calls time out at
 * their own deadline (not the first call's), in order. The server runs on
 * a loop of its own that the test turns only when it wants an answer. */
static void test_timeout_follows_oldest(void **state)
{
	struct event_base *sbase = event_base_new();
	got a = { 0 }, b = { 0 }, c = { 0 };

	(void)state;
	server_stop();
	server_start_on(sbase, false);
	uint64_t t0 = util_now_ms();
	stor_ping(E->c, on_result, &a);            /* sent; nobody reads it yet */
	run_until(NULL, TIMEOUT_GAP_MS);
	for (int i = 0; i < 20; i++)               /* accept, read a, answer it */
		event_base_loop(sbase, EVLOOP_NONBLOCK);
	uint64_t tb = util_now_ms();
	stor_ping(E->c, on_result, &b);            /* never answered */
	stor_ping(E->c, on_result, &c);
	run_until(&c.done, STOR_CALL_TIMEOUT_MS + 2000);
	assert_true(a.done && b.done && c.done);
	assert_int_equal(a.r.status, 200);
	assert_true(a.seq < b.seq && b.seq < c.seq);
	for (got *g = &b; g; g = g == &b ? &c : NULL) {
		assert_int_equal(g->r.status, 503);
		assert_string_equal(g->msg, "storage call timed out");
	}
	/* b's own deadline, well past a's */
	assert_true(util_now_ms() - tb >= STOR_CALL_TIMEOUT_MS - 10);
	assert_true(util_now_ms() - t0 >= STOR_CALL_TIMEOUT_MS + TIMEOUT_GAP_MS - 10);
	assert_true(stor_client_ready(E->c));      /* two failures: under the breaker's three */
	server_stop();
	event_base_free(sbase);
}

/* A large PUT_COMMIT runs off the storage loop: another connection's STAT,
 * sent after the commit reached the server, is answered first. (Inline, the
 * commit would hold the one loop both ends share until it was done.) */
static void commit_does_not_stall(void)
{
	uint8_t *piece = make_data(BIG_PIECE, 8), small_id[B3_OUT_LEN];
	stor_client *other = stor_client_new(E->base, E->sock);
	got b = { 0 }, c = { 0 }, s = { 0 };

	E->s.cfg.storage_max_object_bytes = BIG_LEN;
	storage_ops.reload(&E->s);
	got small = put_object(piece, 1000, NULL, 1000);
	assert_int_equal(small.r.status, 200);
	memcpy(small_id, small.r.id, B3_OUT_LEN);
	stor_put_begin(E->c, BIG_LEN, NULL, NULL, on_result, &b);
	assert_int_equal(wait_for(&b)->r.status, 200);
	for (size_t off = 0; off < BIG_LEN; off += BIG_PIECE)
		assert_int_equal(pwrite(b.r.fds[0], piece, BIG_PIECE, (off_t)off), BIG_PIECE);
	close(b.r.fds[0]);
	assert_non_null(stor_put_commit(E->c, b.r.handle, BIG_LEN, NULL, false, on_result, &c));
	event_base_loop(E->base, EVLOOP_ONCE);     /* the server takes the commit */
	stor_stat(other, small_id, on_result, &s);
	assert_int_equal(wait_for(&s)->r.status, 200);
	assert_int_equal(s.r.len, 1000);
	assert_false(c.done);                      /* the commit is still running */
	run_until(&c.done, BIG_WAIT_MS);
	assert_true(c.done);
	assert_int_equal(c.r.status, 200);
	assert_true(c.r.created);
	assert_int_equal(c.r.len, BIG_LEN);
	assert_true(s.seq < c.seq);
	memset(&s, 0, sizeof s);
	stor_stat(other, c.r.id, on_result, &s);   /* and it is stored */
	assert_int_equal(wait_for(&s)->r.status, 200);
	assert_int_equal(s.r.len, BIG_LEN);
	stor_client_free(other);
	free(piece);
}

static void test_commit_does_not_stall(void **state)
{
	(void)state;
	commit_does_not_stall();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upload_shares, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quarantine, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup_amnesia, teardown),
		cmocka_unit_test_setup_teardown(test_order_and_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_strict_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_replies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_breaker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_in_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_amnesia, setup_amnesia, teardown),
		cmocka_unit_test_setup_teardown(test_peercred, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_follows_oldest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_does_not_stall, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_does_not_stall, setup_amnesia, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
